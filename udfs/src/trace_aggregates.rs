//! Per-trace aggregates: `critical_path_agg(...)` and `self_time_agg(...)`, both over
//! `(span_id, parent_span_id, start_time, end_time, service_name, span_name)` and used with
//! `GROUP BY trace_id`. Each returns `List<Struct>`; `unnest` it for per-service reports:
//!
//! ```sql
//! SELECT s['service_name'] AS service, sum(s['segment_ns']) AS critical_ns
//! FROM (SELECT unnest(critical_path_agg(span_id, parent_span_id, start_time, end_time,
//!                                       service_name, span_name)) AS s
//!       FROM spans GROUP BY trace_id)
//! GROUP BY 1 ORDER BY 2 DESC
//! ```

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array, ListArray, StringArray, StructArray};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields};
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, DocumentationBuilder, Signature, Volatility,
    aggregate_doc_sections::DOC_SECTION_GENERAL,
};

use crate::span_tree::{SpanTree, critical_path, self_times};
use crate::trace_columns::{SpanColumns, segment_columns, segment_fields};

/// Which per-trace aggregate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TraceAggKind {
    /// `critical_path_agg`: the critical path's segments.
    CriticalPath,
    /// `self_time_agg`: every span's self time.
    SelfTime,
}

/// `critical_path_agg` / `self_time_agg`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TraceAggFunc {
    kind: TraceAggKind,
    signature: Signature,
}

impl TraceAggFunc {
    /// Creates the aggregate of `kind`.
    pub fn new(kind: TraceAggKind) -> Self {
        Self { kind, signature: Signature::any(6, Volatility::Immutable) }
    }

    fn item_fields(&self) -> Fields {
        match self.kind {
            TraceAggKind::CriticalPath => Fields::from(segment_fields()),
            TraceAggKind::SelfTime => Fields::from(vec![
                Field::new("span_id", DataType::Utf8, false),
                Field::new("service_name", DataType::Utf8, false),
                Field::new("span_name", DataType::Utf8, false),
                Field::new("self_time_ns", DataType::Int64, false),
            ]),
        }
    }

    fn item_field(&self) -> FieldRef {
        Arc::new(Field::new_list_field(DataType::Struct(self.item_fields()), true))
    }
}

impl AggregateUDFImpl for TraceAggFunc {
    fn name(&self) -> &str {
        match self.kind {
            TraceAggKind::CriticalPath => "critical_path_agg",
            TraceAggKind::SelfTime => "self_time_agg",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        let time_ok = |t: &DataType| matches!(t, DataType::Timestamp(_, _) | DataType::Int64 | DataType::Null);
        match arg_types {
            [_, _, start, end, _, _] if time_ok(start) && time_ok(end) => Ok(DataType::List(self.item_field())),
            [_, _, start, end, _, _] => plan_err!("{}: start_time and end_time must be timestamps, got {start} and {end}", self.name()),
            _ => plan_err!(
                "{}(span_id, parent_span_id, start_time, end_time, service_name, span_name) takes 6 arguments, got {}",
                self.name(),
                arg_types.len()
            ),
        }
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let list = |name: &str, t: DataType| {
            Arc::new(Field::new(format!("{}[{name}]", args.name), DataType::List(Arc::new(Field::new_list_field(t, true))), true))
        };
        Ok(vec![
            list("span_id", DataType::Utf8),
            list("parent_span_id", DataType::Utf8),
            list("start", DataType::Int64),
            list("end", DataType::Int64),
            list("service_name", DataType::Utf8),
            list("span_name", DataType::Utf8),
        ])
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        if args.is_distinct {
            return plan_err!("{}(DISTINCT ...) is not supported", self.name());
        }
        Ok(Box::new(TraceAccumulator { kind: self.kind, item: self.item_field(), fields: self.item_fields(), rows: SpanColumns::default() }))
    }

    fn documentation(&self) -> Option<&Documentation> {
        static CRITICAL: std::sync::OnceLock<Documentation> = std::sync::OnceLock::new();
        static SELF_TIME: std::sync::OnceLock<Documentation> = std::sync::OnceLock::new();
        let (cell, text, example) = match self.kind {
            TraceAggKind::CriticalPath => (
                &CRITICAL,
                "The critical path of each group (a trace) as a list of segments {span_id, service_name, span_name, start_time, end_time, segment_ns} in time order; they tile the root span.",
                "critical_path_agg(span_id, parent_span_id, start_time, end_time, service_name, span_name)",
            ),
            TraceAggKind::SelfTime => (
                &SELF_TIME,
                "Self time of every span of each group (a trace): duration minus the union of its children's intervals clipped to the span, as a list of {span_id, service_name, span_name, self_time_ns}.",
                "self_time_agg(span_id, parent_span_id, start_time, end_time, service_name, span_name)",
            ),
        };
        Some(cell.get_or_init(|| {
            DocumentationBuilder::new_with_details(DOC_SECTION_GENERAL, text, example)
                .with_argument("span_id, parent_span_id", "span ids (parent NULL for a root)")
                .with_argument("start_time, end_time", "span timestamps")
                .with_argument("service_name, span_name", "carried into the output")
                .build()
        }))
    }
}

/// Collects a trace's spans; the algorithm runs once the group is complete.
#[derive(Debug)]
struct TraceAccumulator {
    kind: TraceAggKind,
    item: FieldRef,
    fields: Fields,
    rows: SpanColumns,
}

impl Accumulator for TraceAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.rows.append(values)
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let lists: Vec<&ListArray> = states.iter().map(|s| s.as_list::<i32>()).collect();
        let Some(first) = lists.first() else { return exec_err!("trace aggregate: empty state") };
        for row in 0..first.len() {
            if first.is_null(row) {
                continue;
            }
            let columns: Vec<ArrayRef> = lists.iter().map(|l| l.value(row)).collect();
            self.rows.append(&columns)?;
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let rows = std::mem::take(&mut self.rows);
        let spans = &rows.spans;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(spans.iter().map(|s| s.span_id.as_str()))),
            Arc::new(StringArray::from_iter(spans.iter().map(|s| s.parent_span_id.as_deref()))),
            Arc::new(Int64Array::from_iter_values(spans.iter().map(|s| s.start))),
            Arc::new(Int64Array::from_iter_values(spans.iter().map(|s| s.end))),
            Arc::new(StringArray::from_iter_values(rows.services.iter())),
            Arc::new(StringArray::from_iter_values(rows.names.iter())),
        ];
        columns.into_iter().map(|c| Ok(ScalarValue::List(Arc::new(single_list(c)?)))).collect()
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let tree = SpanTree::build(&self.rows.spans);
        let columns: Vec<ArrayRef> = match self.kind {
            TraceAggKind::CriticalPath => segment_columns(&self.rows, &critical_path(&self.rows.spans, &tree)),
            TraceAggKind::SelfTime => {
                let st = self_times(&self.rows.spans, &tree);
                vec![
                    Arc::new(StringArray::from_iter_values(self.rows.spans.iter().map(|s| s.span_id.as_str()))),
                    Arc::new(StringArray::from_iter_values(self.rows.services.iter())),
                    Arc::new(StringArray::from_iter_values(self.rows.names.iter())),
                    Arc::new(Int64Array::from(st)),
                ]
            }
        };
        let structs = StructArray::try_new(self.fields.clone(), columns, None)?;
        let offsets = OffsetBuffer::from_lengths([structs.len()]);
        let list = ListArray::try_new(Arc::clone(&self.item), offsets, Arc::new(structs), None)?;
        Ok(ScalarValue::List(Arc::new(list)))
    }

    fn size(&self) -> usize {
        let strings: usize = self.rows.spans.iter().map(|s| s.span_id.len() + s.parent_span_id.as_ref().map_or(0, String::len) + 96).sum();
        let names: usize = self.rows.names.iter().chain(&self.rows.services).map(String::len).sum();
        std::mem::size_of_val(self) + strings + names
    }
}

fn single_list(values: ArrayRef) -> Result<ListArray> {
    let item = Arc::new(Field::new_list_field(values.data_type().clone(), true));
    let offsets = OffsetBuffer::from_lengths([values.len()]);
    Ok(ListArray::try_new(item, offsets, values, None)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array as I64;
    use datafusion::arrow::datatypes::Int64Type;

    #[test]
    fn state_round_trips_through_merge() {
        let func = TraceAggFunc::new(TraceAggKind::CriticalPath);
        let mut a = TraceAccumulator { kind: func.kind, item: func.item_field(), fields: func.item_fields(), rows: SpanColumns::default() };
        let cols: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec!["r", "c"])),
            Arc::new(StringArray::from(vec![None, Some("r")])),
            Arc::new(I64::from(vec![0, 10])),
            Arc::new(I64::from(vec![100, 60])),
            Arc::new(StringArray::from(vec!["s1", "s2"])),
            Arc::new(StringArray::from(vec!["root", "child"])),
        ];
        a.update_batch(&cols).unwrap();
        let state: Vec<ArrayRef> = a.state().unwrap().into_iter().map(|s| s.to_array().unwrap()).collect();
        let mut b = TraceAccumulator { kind: func.kind, item: func.item_field(), fields: func.item_fields(), rows: SpanColumns::default() };
        b.merge_batch(&state).unwrap();
        let ScalarValue::List(list) = b.evaluate().unwrap() else { panic!("list") };
        let segments = list.value(0);
        let segments = segments.as_struct();
        // By hand: root [60,100], child [10,60], root [0,10] → in time order root, child, root.
        let ns = segments.column_by_name("segment_ns").unwrap().as_primitive::<Int64Type>();
        assert_eq!(ns.values().to_vec(), vec![10, 50, 40]);
    }
}
