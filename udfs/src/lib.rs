//! tracelake's SQL functions for DataFusion: trace semantics inside SQL.
//!
//! One function per module; [`register_all`] adds the scalar and aggregate functions to a
//! `SessionContext` (or any `FunctionRegistry`), and [`register_table_functions`] adds the
//! table functions that read the `spans` table. Every front end (CLI, Flight SQL, HTTP,
//! Ballista executors) calls both through the query crate's session builder.
//!
//! - [`attr`]: `attr(map, key)` — one attribute value from an attribute map.
//! - [`is_root`]: `is_root(parent_span_id)` — true for root spans.
//! - [`percentile`]: `percentile(value, q)` — exact interpolated percentile (DuckDB's `quantile_cont`).
//! - [`trace_tables`]: `trace_tree(trace_id)`, `critical_path(trace_id)`.
//! - [`trace_aggregates`]: `critical_path_agg(...)`, `self_time_agg(...)` per trace.
//! - [`latency_sketch`], [`sketch_merge`], [`sketch_quantile`]: `latency_sketch(value)`,
//!   `sketch_merge(sketch)`, `sketch_quantile(sketch, q)` — mergeable quantile sketches (≤ 0.5 % error).
//! - [`sketch`]: the sketch itself (DDSketch) and its byte format, without Arrow.
//! - [`span_tree`]: the algorithms (tree, self time, critical path) without Arrow.
//! - [`trace_columns`]: Arrow ⇄ span model conversions shared by the trace functions.
#![warn(missing_docs)]

pub mod attr;
pub mod date_trunc;
pub mod is_root;
pub mod latency_sketch;
pub mod percentile;
pub mod sketch;
pub mod sketch_merge;
pub mod sketch_quantile;
pub mod span_tree;
pub mod trace_aggregates;
pub mod trace_columns;
pub mod trace_root;
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
    // Replaces DataFusion's date_trunc (same name): a fast path for UTC hour/day truncation.
    registry.register_udf(Arc::new(ScalarUDF::from(date_trunc::UtcDateTrunc::new())))?;
    registry.register_udf(Arc::new(ScalarUDF::from(is_root::IsRootFunc::new())))?;
    registry.register_udaf(Arc::new(AggregateUDF::from(percentile::PercentileFunc::new())))?;
    registry.register_udaf(Arc::new(AggregateUDF::from(trace_root::TraceRootFunc::new())))?;
    registry.register_udaf(Arc::new(AggregateUDF::from(TraceAggFunc::new(TraceAggKind::CriticalPath))))?;
    registry.register_udaf(Arc::new(AggregateUDF::from(TraceAggFunc::new(TraceAggKind::SelfTime))))?;
    registry.register_udaf(Arc::new(AggregateUDF::from(latency_sketch::LatencySketchFunc::new())))?;
    registry.register_udaf(Arc::new(AggregateUDF::from(sketch_merge::SketchMergeFunc::new())))?;
    registry.register_udf(Arc::new(ScalarUDF::from(sketch_quantile::SketchQuantileFunc::new())))?;
    Ok(())
}

/// Registers the table functions (`trace_tree`, `critical_path`) reading spans from `spans`.
pub fn register_table_functions(ctx: &SessionContext, spans: Arc<dyn TableProvider>) {
    for kind in [TraceTableKind::Tree, TraceTableKind::CriticalPath] {
        let func = TraceTableFunc::new(kind, Arc::clone(&spans));
        ctx.register_udtf(func.name(), Arc::new(func));
    }
}
