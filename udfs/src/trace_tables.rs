//! Table functions over one trace: `trace_tree(trace_id)` and `critical_path(trace_id)`.
//!
//! Both read the trace's spans from the `spans` table (a predicate on `trace_id`, so files are
//! pruned by statistics and the trace_id bloom filter), run the algorithms of
//! [`crate::span_tree`], and return the result as an in-memory table.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int64Array, RecordBatch, StringArray, UInt32Array,
};
use datafusion::arrow::compute::{concat_batches, take_record_batch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::provider_as_source;
use datafusion::logical_expr::{Expr, LogicalPlanBuilder, col, lit};
use datafusion::physical_plan::{ExecutionPlan, collect};

use crate::span_tree::{SpanTree, critical_path, depth_first, path_of, self_times};
use crate::trace_columns::{segment_fields, span_nodes};

/// Which table a [`TraceTableFunc`] produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceTableKind {
    /// `trace_tree`: the trace's spans in depth-first order with tree columns.
    Tree,
    /// `critical_path`: the critical path's segments in time order.
    CriticalPath,
}

/// `trace_tree(trace_id)` / `critical_path(trace_id)`, reading spans from `spans`.
pub struct TraceTableFunc {
    kind: TraceTableKind,
    spans: Arc<dyn TableProvider>,
}

impl fmt::Debug for TraceTableFunc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TraceTableFunc").field("kind", &self.kind).finish()
    }
}

impl TraceTableFunc {
    /// A table function of `kind` over the `spans` table `spans`.
    pub fn new(kind: TraceTableKind, spans: Arc<dyn TableProvider>) -> Self {
        Self { kind, spans }
    }

    /// The SQL name.
    pub fn name(&self) -> &'static str {
        match self.kind {
            TraceTableKind::Tree => "trace_tree",
            TraceTableKind::CriticalPath => "critical_path",
        }
    }
}

impl TableFunctionImpl for TraceTableFunc {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let name = self.name();
        let trace_id = match args.exprs() {
            [Expr::Literal(ScalarValue::Utf8(Some(id)) | ScalarValue::Utf8View(Some(id)) | ScalarValue::LargeUtf8(Some(id)), _)] => {
                id.trim().to_ascii_lowercase()
            }
            [_] => return plan_err!("{name}(trace_id): trace_id must be a string literal, e.g. {name}('5b8efff798038103d269b633813fc60c')"),
            other => return plan_err!("{name} takes 1 argument (a trace id), got {}", other.len()),
        };
        if trace_id.len() != 32 || !trace_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return plan_err!("{name}: '{trace_id}' is not a trace id (32 hex characters)");
        }
        let schema = match self.kind {
            TraceTableKind::Tree => tree_schema(&self.spans.schema()),
            TraceTableKind::CriticalPath => Arc::new(Schema::new(segment_fields())),
        };
        Ok(Arc::new(TraceTable { kind: self.kind, spans: Arc::clone(&self.spans), trace_id, schema }))
    }
}

fn tree_schema(spans: &SchemaRef) -> SchemaRef {
    let mut fields: Vec<Field> = spans.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.extend([
        Field::new("depth", DataType::Int64, false),
        Field::new("path", DataType::Utf8, false),
        Field::new("child_count", DataType::Int64, false),
        Field::new("self_time_ns", DataType::Int64, false),
        Field::new("is_orphan", DataType::Boolean, false),
    ]);
    Arc::new(Schema::new(fields))
}

/// The result table of one call.
struct TraceTable {
    kind: TraceTableKind,
    spans: Arc<dyn TableProvider>,
    trace_id: String,
    schema: SchemaRef,
}

impl fmt::Debug for TraceTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TraceTable").field("kind", &self.kind).field("trace_id", &self.trace_id).finish()
    }
}

#[async_trait]
impl TableProvider for TraceTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let spans = self.read_trace(state).await?;
        let batch = match self.kind {
            TraceTableKind::Tree => tree_batch(&spans, &self.schema)?,
            TraceTableKind::CriticalPath => path_batch(&spans, &self.schema)?,
        };
        Ok(MemorySourceConfig::try_new_exec(&[vec![batch]], Arc::clone(&self.schema), projection.cloned())?)
    }
}

impl TraceTable {
    /// All spans of the trace, as one batch of the `spans` schema.
    async fn read_trace(&self, state: &dyn Session) -> Result<RecordBatch> {
        // Plan through the session's optimizers (not `TableProvider::scan` directly): the
        // physical filter pushdown is what hands the predicate to the Parquet reader, so that
        // bloom filters and late materialisation skip everything but this trace.
        let filter = col("trace_id").eq(lit(self.trace_id.clone()));
        let plan = LogicalPlanBuilder::scan("spans", provider_as_source(Arc::clone(&self.spans)), None)?
            .filter(filter)?
            .build()?;
        let plan = state.create_physical_plan(&plan).await?;
        let batches = collect(plan, state.task_ctx()).await?;
        let schema = self.spans.schema();
        let all = concat_batches(&schema, &batches)?;
        // Belt and braces: keep exactly this trace's rows.
        let Some(ids) = all.column_by_name("trace_id") else { return exec_err!("spans has no trace_id column") };
        let ids = datafusion::arrow::compute::cast(ids, &DataType::Utf8)?;
        let ids = ids.as_string::<i32>();
        let keep: UInt32Array = (0..all.num_rows() as u32)
            .filter(|&i| ids.is_valid(i as usize) && ids.value(i as usize) == self.trace_id)
            .collect();
        Ok(take_record_batch(&all, &keep)?)
    }
}

fn tree_batch(spans: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let nodes = span_nodes(spans)?;
    let tree = SpanTree::build(&nodes.spans);
    let rows = depth_first(&nodes.spans, &tree);
    let self_time = self_times(&nodes.spans, &tree);
    let order: UInt32Array = rows.iter().map(|r| r.index as u32).collect();
    let ordered = take_record_batch(spans, &order)?;
    let mut columns: Vec<ArrayRef> = ordered.columns().to_vec();
    columns.push(Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.depth as i64))));
    columns.push(Arc::new(StringArray::from_iter_values((0..rows.len()).map(|r| {
        path_of(&rows, r).iter().map(|i| i.map_or("…", |i| nodes.names[i].as_str())).collect::<Vec<_>>().join(" > ")
    }))));
    columns.push(Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.child_count as i64))));
    columns.push(Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| self_time[r.index]))));
    columns.push(Arc::new(BooleanArray::from_iter(rows.iter().map(|r| Some(tree.is_orphan[r.index])))));
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

fn path_batch(spans: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let nodes = span_nodes(spans)?;
    let tree = SpanTree::build(&nodes.spans);
    let segments = critical_path(&nodes.spans, &tree);
    crate::trace_columns::segments_batch(&nodes, &segments, schema)
}
