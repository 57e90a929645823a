//! tracelake's SQL functions for DataFusion: trace semantics inside SQL.
//!
//! One function per module; [`register_all`] adds every function to a `SessionContext`, and is
//! what every front end (CLI, Flight SQL, HTTP, Ballista executors) calls.
//!
//! - [`attr`]: `attr(map, key)` — one attribute value from an attribute map.
//! - [`percentile`]: `percentile(value, q)` — exact interpolated percentile (DuckDB's `quantile_cont`).
#![warn(missing_docs)]

pub mod attr;
pub mod percentile;
pub mod span_tree;

use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::{AggregateUDF, ScalarUDF};

/// Registers all tracelake functions with `registry` (e.g. a `SessionContext`).
pub fn register_all(registry: &mut dyn FunctionRegistry) -> datafusion::error::Result<()> {
    registry.register_udf(std::sync::Arc::new(ScalarUDF::from(attr::AttrFunc::new())))?;
    registry.register_udaf(std::sync::Arc::new(AggregateUDF::from(percentile::PercentileFunc::new())))?;
    Ok(())
}
