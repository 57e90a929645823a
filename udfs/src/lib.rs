//! tracelake's SQL functions for DataFusion: trace semantics inside SQL.
//!
//! One function per module; [`register_all`] adds the scalar and aggregate functions to a
//! `SessionContext` (or any `FunctionRegistry`), and [`register_table_functions`] adds the
//! table functions that read the `spans` table. Every front end (CLI, Flight SQL, HTTP,
//! Ballista executors) calls both through the query crate's session builder.
//!
//! - [`attr`]: `attr(map, key)` — one attribute value from an attribute map.
//! - [`percentile`]: `percentile(value, q)` — exact interpolated percentile (DuckDB's `quantile_cont`).
//! - [`trace_tables`]: `trace_tree(trace_id)`, `critical_path(trace_id)`.
//! - [`trace_aggregates`]: `critical_path_agg(...)`, `self_time_agg(...)` per trace.
//! - [`span_tree`]: the algorithms (tree, self time, critical path) without Arrow.
//! - [`trace_columns`]: Arrow ⇄ span model conversions shared by the trace functions.
#![warn(missing_docs)]

pub mod attr;
pub mod percentile;
pub mod span_tree;
pub mod trace_aggregates;
pub mod trace_columns;
pub mod trace_tables;

use std::sync::Arc;

use datafusion::catalog::TableProvider;
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::{AggregateUDF, ScalarUDF};
use datafusion::prelude::SessionContext;

use trace_aggregates::{TraceAggFunc, TraceAggKind};
use trace_tables::{TraceTableFunc, TraceTableKind};

/// Registers the scalar and aggregate functions with `registry` (e.g. a `SessionContext`).
pub fn register_all(registry: &mut dyn FunctionRegistry) -> datafusion::error::Result<()> {
    registry.register_udf(Arc::new(ScalarUDF::from(attr::AttrFunc::new())))?;
    registry.register_udaf(Arc::new(AggregateUDF::from(percentile::PercentileFunc::new())))?;
    registry.register_udaf(Arc::new(AggregateUDF::from(TraceAggFunc::new(TraceAggKind::CriticalPath))))?;
    registry.register_udaf(Arc::new(AggregateUDF::from(TraceAggFunc::new(TraceAggKind::SelfTime))))?;
    Ok(())
}

/// Registers the table functions (`trace_tree`, `critical_path`) reading spans from `spans`.
pub fn register_table_functions(ctx: &SessionContext, spans: Arc<dyn TableProvider>) {
    for kind in [TraceTableKind::Tree, TraceTableKind::CriticalPath] {
        let func = TraceTableFunc::new(kind, Arc::clone(&spans));
        ctx.register_udtf(func.name(), Arc::new(func));
    }
}
