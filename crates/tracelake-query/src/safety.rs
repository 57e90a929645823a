//! What SQL a front end may run. Enforced by DataFusion's `SQLOptions` on the parsed
//! statement (not by string matching).

use datafusion::dataframe::DataFrame;
use datafusion::execution::context::{SQLOptions, SessionContext};

use crate::error::Result;

/// Which statements a caller may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryPolicy {
    /// Queries only: no DDL, no DML (INSERT, COPY), no statements (SET). Servers use this.
    ReadOnly,
    /// Queries plus `SET` of session options. The embedded CLI uses this: the user owns the
    /// process and may tune it, but still cannot change stored data through SQL.
    ReadOnlyWithSettings,
}

impl QueryPolicy {
    /// The DataFusion options enforcing this policy.
    pub fn sql_options(self) -> SQLOptions {
        SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(self == QueryPolicy::ReadOnlyWithSettings)
    }

    /// Plans `sql` under this policy.
    pub async fn plan(self, ctx: &SessionContext, sql: &str) -> Result<DataFrame> {
        Ok(ctx.sql_with_options(sql, self.sql_options()).await?)
    }
}
