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
        refuse_file_statements(ctx, sql)?;
        Ok(ctx.sql_with_options(sql, self.sql_options()).await?)
    }
}

/// `COPY … TO` and `CREATE EXTERNAL TABLE` (DataFusion's statement extensions) write or read
/// arbitrary files. `SQLOptions` refuses them only after planning, and planning them can already
/// fail with an unrelated message (a missing file format), so they are refused on the parsed
/// statement first — with the same message `SQLOptions` gives.
fn refuse_file_statements(ctx: &SessionContext, sql: &str) -> Result<()> {
    use datafusion::sql::parser::Statement;
    let state = ctx.state();
    let dialect = state.config().options().sql_parser.dialect;
    // Unparseable SQL is left to the planner, which reports the parse error.
    let Ok(statement) = state.sql_to_statement(sql, &dialect) else { return Ok(()) };
    let refused = |what: &str| Err(crate::Error::Refused(format!("{what} not supported: tracelake serves read-only SQL")));
    match statement {
        Statement::CopyTo(_) => refused("DML not supported: COPY"),
        Statement::CreateExternalTable(_) => refused("DDL not supported: CREATE EXTERNAL TABLE"),
        Statement::Explain(explain) => match *explain.statement {
            Statement::CopyTo(_) | Statement::CreateExternalTable(_) => refused("DDL not supported: EXPLAIN of a file statement"),
            _ => Ok(()),
        },
        _ => Ok(()),
    }
}
