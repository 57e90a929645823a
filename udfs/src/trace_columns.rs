//! Conversions between Arrow columns and the span model of [`crate::span_tree`], shared by the
//! trace table functions and aggregates.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch, StringArray, TimestampNanosecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, SchemaRef, TimeUnit};
use datafusion::common::{Result, exec_err};

use crate::span_tree::{Segment, SpanNode};

/// Spans plus the names the outputs need, in input order.
#[derive(Debug, Default)]
pub struct SpanColumns {
    /// The spans as the algorithms see them.
    pub spans: Vec<SpanNode>,
    /// `span_name` per span.
    pub names: Vec<String>,
    /// `service_name` per span.
    pub services: Vec<String>,
}

impl SpanColumns {
    /// Appends rows from the six arrays (span_id, parent_span_id, start_time, end_time,
    /// service_name, span_name) — the argument order of the trace aggregates. Rows with a NULL
    /// span id or start time are skipped; a NULL end is taken as the start.
    pub fn append(&mut self, columns: &[ArrayRef]) -> Result<()> {
        let [span_id, parent, start, end, service, name] = columns else {
            return exec_err!("expected 6 columns (span_id, parent_span_id, start_time, end_time, service_name, span_name), got {}", columns.len());
        };
        let text = |a: &ArrayRef| datafusion::arrow::compute::cast(a, &DataType::Utf8);
        let (span_id, parent, service, name) = (text(span_id)?, text(parent)?, text(service)?, text(name)?);
        let (span_id, parent, service, name) =
            (span_id.as_string::<i32>(), parent.as_string::<i32>(), service.as_string::<i32>(), name.as_string::<i32>());
        let start = nanos(start)?;
        let end = nanos(end)?;
        for i in 0..span_id.len() {
            if span_id.is_null(i) || start.is_null(i) {
                continue;
            }
            let s = start.value(i);
            let e = if end.is_null(i) { s } else { end.value(i) };
            self.spans.push(SpanNode {
                span_id: span_id.value(i).to_owned(),
                parent_span_id: parent.is_valid(i).then(|| parent.value(i).to_owned()).filter(|p| !p.is_empty()),
                start: s,
                end: e,
            });
            self.services.push(if service.is_valid(i) { service.value(i).to_owned() } else { String::new() });
            self.names.push(if name.is_valid(i) { name.value(i).to_owned() } else { String::new() });
        }
        Ok(())
    }
}

/// Timestamps (any unit) or integers as Unix nanoseconds.
fn nanos(array: &ArrayRef) -> Result<Int64Array> {
    let as_ns = match array.data_type() {
        DataType::Timestamp(TimeUnit::Nanosecond, _) | DataType::Int64 => Arc::clone(array),
        DataType::Timestamp(_, tz) => {
            datafusion::arrow::compute::cast(array, &DataType::Timestamp(TimeUnit::Nanosecond, tz.clone()))?
        }
        other => return exec_err!("start_time/end_time must be timestamps, got {other}"),
    };
    let ints = datafusion::arrow::compute::cast(&as_ns, &DataType::Int64)?;
    Ok(ints.as_primitive::<Int64Type>().clone())
}

/// Reads the span columns of a `spans`-schema batch.
pub fn span_nodes(batch: &RecordBatch) -> Result<SpanColumns> {
    let mut columns = Vec::with_capacity(6);
    for name in ["span_id", "parent_span_id", "start_time", "end_time", "service_name", "span_name"] {
        match batch.column_by_name(name) {
            Some(c) => columns.push(Arc::clone(c)),
            None => return exec_err!("spans has no column {name}"),
        }
    }
    let mut out = SpanColumns::default();
    out.append(&columns)?;
    Ok(out)
}

/// Fields of a critical-path segment: the columns of `critical_path` and the struct fields of
/// `critical_path_agg`.
pub fn segment_fields() -> Vec<Field> {
    let ts = DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()));
    vec![
        Field::new("span_id", DataType::Utf8, false),
        Field::new("service_name", DataType::Utf8, false),
        Field::new("span_name", DataType::Utf8, false),
        Field::new("start_time", ts.clone(), false),
        Field::new("end_time", ts, false),
        Field::new("segment_ns", DataType::Int64, false),
    ]
}

/// The segment columns, in the order of [`segment_fields`].
pub fn segment_columns(nodes: &SpanColumns, segments: &[Segment]) -> Vec<ArrayRef> {
    vec![
        Arc::new(StringArray::from_iter_values(segments.iter().map(|g| nodes.spans[g.index].span_id.as_str()))),
        Arc::new(StringArray::from_iter_values(segments.iter().map(|g| nodes.services[g.index].as_str()))),
        Arc::new(StringArray::from_iter_values(segments.iter().map(|g| nodes.names[g.index].as_str()))),
        Arc::new(TimestampNanosecondArray::from_iter_values(segments.iter().map(|g| g.start)).with_timezone("UTC")),
        Arc::new(TimestampNanosecondArray::from_iter_values(segments.iter().map(|g| g.end)).with_timezone("UTC")),
        Arc::new(Int64Array::from_iter_values(segments.iter().map(|g| g.end - g.start))),
    ]
}

/// The segments as a batch of `schema` (the `critical_path` table).
pub fn segments_batch(nodes: &SpanColumns, segments: &[Segment], schema: &SchemaRef) -> Result<RecordBatch> {
    Ok(RecordBatch::try_new(Arc::clone(schema), segment_columns(nodes, segments))?)
}
