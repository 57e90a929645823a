//! Spans that are acknowledged but not yet in Parquet, as part of the `spans` table.
//!
//! A server's ingest buffer implements [`FreshSpans`]. A flush moves spans from memory to
//! Parquet: it writes files, then drops the spans from the buffer. A scan of [`SpansTable`]
//! takes a [`FreshSnapshot`] of the buffer first — its batches and the number of the last
//! flush that had dropped its spans (the `flush_mark`) — then lists the Parquet files, and
//! leaves out the files of every later flush: their spans are either in the snapshot (a flush
//! that was still writing) or arrived after it. Each acknowledged span is seen exactly once.
//!
//! [`SpansTable`]: crate::SpansTable

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::compute::kernels::cast::cast;
use arrow::compute::kernels::temporal::{DatePart, date_part};
use arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::{DFSchema, Statistics};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfig, FileScanConfigBuilder};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::utils::conjunction;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::filter::FilterExecBuilder;
use tracelake_schema::schema::col;

/// A source of spans that are not in Parquet yet.
pub trait FreshSpans: std::fmt::Debug + Send + Sync {
    /// The buffered spans and the flush mark, taken atomically.
    fn snapshot(&self) -> FreshSnapshot;

    /// File stems (`<ULID>`, no extension) written by flushes numbered above `flush_mark`.
    /// Errors if those flushes are too old to be remembered (the query should be retried).
    fn files_flushed_after(&self, flush_mark: u64) -> DfResult<HashSet<String>>;
}

/// What [`FreshSpans::snapshot`] returns.
#[derive(Debug, Clone, Default)]
pub struct FreshSnapshot {
    /// Buffered spans, in the `spans` schema (without partition columns).
    pub batches: Vec<RecordBatch>,
    /// The number of the last flush whose spans are no longer in the buffer.
    pub flush_mark: u64,
}

/// `batch` with the partition columns (`date`, `hour`, `service`) appended, as `table_schema`
/// (the listing table's schema: file columns then partition columns) expects.
pub fn with_partition_columns(batch: &RecordBatch, table_schema: &SchemaRef) -> DfResult<RecordBatch> {
    let start = batch.column_by_name(col::START_TIME).ok_or_else(|| missing(col::START_TIME))?;
    let service = batch.column_by_name(col::SERVICE_NAME).ok_or_else(|| missing(col::SERVICE_NAME))?;
    let date = cast(start, &DataType::Date32)?;
    let hours = date_part(start.as_ref(), DatePart::Hour)?;
    let hours = arrow::array::AsArray::as_primitive::<arrow::datatypes::Int32Type>(hours.as_ref());
    let hour: StringArray = hours.iter().map(|h| h.map(|h| format!("{h:02}"))).collect();
    let mut columns = batch.columns().to_vec();
    columns.extend([date, Arc::new(hour) as ArrayRef, Arc::clone(service)]);
    Ok(RecordBatch::try_new(Arc::clone(table_schema), columns)?)
}

fn missing(column: &str) -> datafusion::error::DataFusionError {
    datafusion::error::DataFusionError::Internal(format!("buffered spans lack column {column}"))
}

/// An in-memory scan of `batches` (already with partition columns) that applies every filter
/// itself — the table may have told the planner that partition filters are exact — and then
/// projects.
pub fn memory_plan(
    state: &dyn Session,
    table_schema: &SchemaRef,
    batches: Vec<RecordBatch>,
    filters: &[Expr],
    projection: Option<&[usize]>,
) -> DfResult<Arc<dyn ExecutionPlan>> {
    let scan = MemorySourceConfig::try_new_exec(&[batches], Arc::clone(table_schema), None)?;
    let predicate = match conjunction(filters.iter().cloned()) {
        Some(predicate) => predicate,
        None => datafusion::logical_expr::lit(true),
    };
    let df_schema = DFSchema::try_from(table_schema.as_ref().clone())?;
    let predicate = state.create_physical_expr(predicate, &df_schema)?;
    let filter = FilterExecBuilder::new(predicate, scan).apply_projection(projection.map(<[usize]>::to_vec))?.build()?;
    Ok(Arc::new(filter))
}

fn file_scan_config(plan: &Arc<dyn ExecutionPlan>) -> Option<&FileScanConfig> {
    plan.downcast_ref::<DataSourceExec>()?.data_source().downcast_ref::<FileScanConfig>()
}

fn file_stem(file: &datafusion::datasource::listing::PartitionedFile) -> &str {
    let name = file.object_meta.location.filename().unwrap_or_default();
    name.strip_suffix(crate::layout::FILE_EXTENSION).unwrap_or(name)
}

/// The stems (`<ULID>`) of the files `plan` (a Parquet scan of the listing table) reads.
pub fn listed_stems(plan: &Arc<dyn ExecutionPlan>) -> HashSet<String> {
    file_scan_config(plan)
        .map(|config| config.file_groups.iter().flat_map(|g| g.files()).map(|f| file_stem(f).to_owned()).collect())
        .unwrap_or_default()
}

/// `plan` (a Parquet scan of the listing table) without the files in `hidden`. Statistics
/// become unknown so that no optimizer answers from the removed files' row counts.
pub fn hide_files(plan: Arc<dyn ExecutionPlan>, hidden: &HashSet<String>) -> DfResult<Arc<dyn ExecutionPlan>> {
    if hidden.is_empty() {
        return Ok(plan);
    }
    let Some(config) = file_scan_config(&plan) else {
        return Ok(plan); // an empty scan: no files to hide
    };
    let is_hidden = |file: &datafusion::datasource::listing::PartitionedFile| hidden.contains(file_stem(file));
    if !config.file_groups.iter().flat_map(|g| g.files()).any(is_hidden) {
        return Ok(plan);
    }
    let groups: Vec<FileGroup> = config
        .file_groups
        .iter()
        .map(|g| FileGroup::new(g.files().iter().filter(|f| !is_hidden(f)).cloned().collect()))
        .collect();
    let table_schema = config.file_source.table_schema().table_schema();
    let rebuilt = FileScanConfigBuilder::from(config.clone())
        .with_file_groups(groups)
        .with_statistics(Statistics::new_unknown(table_schema))
        .build();
    Ok(DataSourceExec::from_data_source(rebuilt))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{AsArray, TimestampNanosecondArray};
    use arrow::datatypes::{Field, Schema, TimeUnit};

    #[test]
    fn partition_columns_follow_start_time_in_utc() {
        let file_schema = Schema::new(vec![
            Field::new(col::START_TIME, DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())), false),
            Field::new(col::SERVICE_NAME, DataType::Utf8, false),
        ]);
        let mut fields = file_schema.fields().to_vec();
        for (name, t) in crate::table::partition_columns() {
            fields.push(Arc::new(Field::new(name, t, true)));
        }
        let table_schema = Arc::new(Schema::new(fields));
        // 2024-01-15T09:59:59.999999999Z and 2024-01-15T23:00:00Z
        let start = TimestampNanosecondArray::from(vec![1_705_312_799_999_999_999, 1_705_359_600_000_000_000]).with_timezone("UTC");
        let batch = RecordBatch::try_new(
            Arc::new(file_schema),
            vec![Arc::new(start), Arc::new(StringArray::from(vec!["a", "b/c"]))],
        )
        .unwrap();
        let out = with_partition_columns(&batch, &table_schema).unwrap();
        let date = out.column(2).as_primitive::<arrow::datatypes::Date32Type>();
        assert_eq!((date.value(0), date.value(1)), (19737, 19737)); // days since 1970 of 2024-01-15
        let hour = out.column(3).as_string::<i32>();
        assert_eq!((hour.value(0), hour.value(1)), ("09", "23"));
        assert_eq!(out.column(4).as_string::<i32>().value(1), "b/c");
    }
}
