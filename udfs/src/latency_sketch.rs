//! `latency_sketch(value)`: the serialized [`LatencySketch`] of a group's values, as Binary — a
//! mergeable quantile sketch with ≤ 0.5 % relative error (DDSketch), for rollups that
//! [`sketch_merge`](crate::sketch_merge) combines and [`sketch_quantile`](crate::sketch_quantile)
//! reads.
//!
//! `value` is any numeric column (usually `duration_ns`, Int64), converted to f64. NULL, NaN and
//! ±∞ values are skipped. A group without any counted value gives NULL (not an empty sketch), as
//! `SUM` and `percentile` do; `sketch_merge` ignores NULLs, so a rollup of NULLs stays NULL.
//! The bytes depend only on the group's multiset of values, not on partitioning or row order.
//!
//! The aggregate's intermediate state is the same serialized sketch (one Binary field).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BinaryArray, BinaryBuilder, BooleanArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type};
use datafusion::common::{Result, ScalarValue, exec_err, not_impl_err, plan_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, DocumentationBuilder, EmitTo, GroupsAccumulator, Signature,
    Volatility, aggregate_doc_sections::DOC_SECTION_APPROXIMATE,
};

use crate::sketch::LatencySketch;

/// The `latency_sketch` aggregate function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct LatencySketchFunc {
    signature: Signature,
}

impl Default for LatencySketchFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencySketchFunc {
    /// Creates the function.
    pub fn new() -> Self {
        Self { signature: Signature::any(1, Volatility::Immutable) }
    }
}

impl AggregateUDFImpl for LatencySketchFunc {
    fn name(&self) -> &str {
        "latency_sketch"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types {
            [value] if value.is_numeric() || value.is_null() => Ok(DataType::Binary),
            [value] => plan_err!("latency_sketch(value) needs a numeric value, got {value}"),
            _ => plan_err!("latency_sketch takes 1 argument: latency_sketch(duration_ns)"),
        }
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![sketch_state_field(args.name)])
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        if args.is_distinct {
            return not_impl_err!("latency_sketch(DISTINCT ...) is not supported; use a subquery with SELECT DISTINCT");
        }
        Ok(Box::new(SketchAccumulator::new(SketchInput::Values)))
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        !args.is_distinct
    }

    fn create_groups_accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(SketchGroupsAccumulator::new(SketchInput::Values)))
    }

    fn documentation(&self) -> Option<&Documentation> {
        static DOC: std::sync::OnceLock<Documentation> = std::sync::OnceLock::new();
        Some(DOC.get_or_init(|| {
            DocumentationBuilder::new_with_details(
                DOC_SECTION_APPROXIMATE,
                "Builds a mergeable quantile sketch (DDSketch, relative error at most 0.5 %) of the values, \
                 as Binary; NULL when the group has no values. Combine sketches with sketch_merge and read \
                 quantiles with sketch_quantile. NULL, NaN and infinite values are skipped.",
                "sketch_quantile(latency_sketch(duration_ns), 0.99)",
            )
            .with_argument("value", "numeric expression, e.g. duration_ns")
            .build()
        }))
    }
}

/// The one state field of `latency_sketch` and `sketch_merge`: the serialized sketch.
pub(crate) fn sketch_state_field(name: &str) -> FieldRef {
    Arc::new(Field::new(format_state_name(name, "sketch"), DataType::Binary, true))
}

/// What an accumulator's `update_batch` receives.
#[derive(Debug, Clone, Copy)]
pub(crate) enum SketchInput {
    /// Numeric values (`latency_sketch`).
    Values,
    /// Serialized sketches (`sketch_merge`).
    Sketches,
}

impl SketchInput {
    fn function_name(self) -> &'static str {
        match self {
            Self::Values => "latency_sketch",
            Self::Sketches => "sketch_merge",
        }
    }
}

/// Parses a serialized sketch from a Binary column, with the SQL-facing error message.
pub(crate) fn parse_sketch(function: &str, bytes: &[u8]) -> Result<LatencySketch> {
    match LatencySketch::from_bytes(bytes) {
        Ok(sketch) => Ok(sketch),
        Err(e) => exec_err!("{function}: not a tracelake sketch: {e}"),
    }
}

/// `input` (a Binary-like or Null column) as Binary.
pub(crate) fn as_binary(function: &str, input: &ArrayRef) -> Result<ArrayRef> {
    match input.data_type() {
        DataType::Binary => Ok(Arc::clone(input)),
        DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_) | DataType::Null => {
            Ok(datafusion::arrow::compute::cast(input, &DataType::Binary)?)
        }
        other => exec_err!("{function}: expected a Binary sketch, got {other}"),
    }
}

/// Calls `f(row, sketch)` for every non-null, unfiltered row of `input` (a column of sketches).
fn for_each_sketch(
    function: &str,
    input: &ArrayRef,
    filter: Option<&BooleanArray>,
    mut f: impl FnMut(usize, LatencySketch),
) -> Result<()> {
    let input = as_binary(function, input)?;
    let input = input.as_binary::<i32>();
    for row in 0..input.len() {
        if input.is_valid(row) && filter.is_none_or(|m| m.is_valid(row) && m.value(row)) {
            f(row, parse_sketch(function, input.value(row))?);
        }
    }
    Ok(())
}

/// Calls `f(row, value)` for every non-null, unfiltered row of `input` (a numeric column).
pub(crate) fn for_each_value(input: &ArrayRef, filter: Option<&BooleanArray>, mut f: impl FnMut(usize, f64)) -> Result<()> {
    let input = datafusion::arrow::compute::cast(input, &DataType::Float64)?;
    let input = input.as_primitive::<Float64Type>();
    let values = input.values();
    match (input.nulls(), filter) {
        // The common case, without a per-row validity check.
        (None, None) => values.iter().enumerate().for_each(|(row, v)| f(row, *v)),
        _ => (0..input.len())
            .filter(|&row| input.is_valid(row) && filter.is_none_or(|m| m.is_valid(row) && m.value(row)))
            .for_each(|row| f(row, values[row])),
    }
    Ok(())
}

/// The sketch as a Binary scalar; NULL when empty.
fn sketch_scalar(sketch: &LatencySketch) -> ScalarValue {
    ScalarValue::Binary((!sketch.is_empty()).then(|| sketch.to_bytes()))
}

/// The accumulator of `latency_sketch` and `sketch_merge` for one group.
#[derive(Debug)]
pub(crate) struct SketchAccumulator {
    input: SketchInput,
    sketch: LatencySketch,
}

impl SketchAccumulator {
    pub(crate) fn new(input: SketchInput) -> Self {
        Self { input, sketch: LatencySketch::new() }
    }
}

impl Accumulator for SketchAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let name = self.input.function_name();
        let Some(input) = values.first() else { return exec_err!("{name}: missing input") };
        let sketch = &mut self.sketch;
        match self.input {
            SketchInput::Values => for_each_value(input, None, |_, v| sketch.add(v)),
            SketchInput::Sketches => for_each_sketch(name, input, None, |_, s| sketch.merge(&s)),
        }
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let name = self.input.function_name();
        let Some(states) = states.first() else { return exec_err!("{name}: missing state") };
        let sketch = &mut self.sketch;
        for_each_sketch(name, states, None, |_, s| sketch.merge(&s))
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![sketch_scalar(&self.sketch)])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(sketch_scalar(&self.sketch))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.sketch.heap_size()
    }
}

/// The accumulator of `latency_sketch` and `sketch_merge` for all groups at once.
pub(crate) struct SketchGroupsAccumulator {
    input: SketchInput,
    sketches: Vec<LatencySketch>,
    /// Sum of the sketches' `heap_size()`, kept up to date so that `size()` is O(1).
    heap_bytes: usize,
}

impl SketchGroupsAccumulator {
    pub(crate) fn new(input: SketchInput) -> Self {
        Self { input, sketches: Vec::new(), heap_bytes: 0 }
    }

    /// Applies `f` to the sketch of `group`, keeping `heap_bytes` current.
    fn update_group(sketches: &mut [LatencySketch], heap_bytes: &mut usize, group: usize, f: impl FnOnce(&mut LatencySketch)) {
        if let Some(sketch) = sketches.get_mut(group) {
            let before = sketch.heap_size();
            f(sketch);
            *heap_bytes = (*heap_bytes + sketch.heap_size()).saturating_sub(before);
        }
    }

    /// Removes the groups `emit_to` asks for, as a Binary array (NULL for empty sketches).
    fn emit(&mut self, emit_to: EmitTo) -> ArrayRef {
        let taken = emit_to.take_needed(&mut self.sketches);
        let taken_heap: usize = taken.iter().map(LatencySketch::heap_size).sum();
        self.heap_bytes = self.heap_bytes.saturating_sub(taken_heap);
        let mut out = BinaryBuilder::with_capacity(taken.len(), 0);
        for sketch in &taken {
            if sketch.is_empty() {
                out.append_null();
            } else {
                out.append_value(sketch.to_bytes());
            }
        }
        Arc::new(out.finish())
    }
}

impl GroupsAccumulator for SketchGroupsAccumulator {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        let name = self.input.function_name();
        let Some(input) = values.first() else { return exec_err!("{name}: missing input") };
        self.sketches.resize_with(total_num_groups, LatencySketch::new);
        let (sketches, heap) = (&mut self.sketches, &mut self.heap_bytes);
        let group = |row: usize| group_indices.get(row).copied().unwrap_or(usize::MAX);
        match self.input {
            SketchInput::Values => for_each_value(input, opt_filter, |row, v| {
                Self::update_group(sketches, heap, group(row), |s| s.add(v));
            }),
            SketchInput::Sketches => for_each_sketch(name, input, opt_filter, |row, other| {
                Self::update_group(sketches, heap, group(row), |s| s.merge(&other));
            }),
        }
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        Ok(self.emit(emit_to))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        Ok(vec![self.emit(emit_to)])
    }

    fn merge_batch(&mut self, values: &[ArrayRef], group_indices: &[usize], total_num_groups: usize) -> Result<()> {
        let name = self.input.function_name();
        let Some(states) = values.first() else { return exec_err!("{name}: missing state") };
        self.sketches.resize_with(total_num_groups, LatencySketch::new);
        let (sketches, heap) = (&mut self.sketches, &mut self.heap_bytes);
        for_each_sketch(name, states, None, |row, other| {
            let group = group_indices.get(row).copied().unwrap_or(usize::MAX);
            Self::update_group(sketches, heap, group, |s| s.merge(&other));
        })
    }

    fn convert_to_state(&self, values: &[ArrayRef], opt_filter: Option<&BooleanArray>) -> Result<Vec<ArrayRef>> {
        let name = self.input.function_name();
        let Some(input) = values.first() else { return exec_err!("{name}: missing input") };
        // Each row is its own group: the sketch of its one value (or the row's sketch itself).
        let mut rows: Vec<Option<Vec<u8>>> = vec![None; input.len()];
        match self.input {
            SketchInput::Values => for_each_value(input, opt_filter, |row, v| {
                let sketch = LatencySketch::from_iter([v]);
                if let Some(slot) = rows.get_mut(row) {
                    *slot = (!sketch.is_empty()).then(|| sketch.to_bytes());
                }
            })?,
            SketchInput::Sketches => for_each_sketch(name, input, opt_filter, |row, sketch| {
                if let Some(slot) = rows.get_mut(row) {
                    *slot = (!sketch.is_empty()).then(|| sketch.to_bytes());
                }
            })?,
        }
        Ok(vec![Arc::new(BinaryArray::from_iter(rows))])
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.sketches.capacity() * std::mem::size_of::<LatencySketch>() + self.heap_bytes
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use datafusion::arrow::array::{Float64Array, Int64Array, RecordBatch};
    use datafusion::arrow::datatypes::Schema;
    use datafusion::datasource::MemTable;
    use datafusion::logical_expr::AggregateUDF;
    use datafusion::prelude::SessionContext;

    /// A session with the three sketch functions.
    pub(crate) fn sketch_session() -> SessionContext {
        let ctx = SessionContext::new();
        ctx.register_udaf(AggregateUDF::from(LatencySketchFunc::new()));
        ctx.register_udaf(AggregateUDF::from(crate::sketch_merge::SketchMergeFunc::new()));
        ctx.register_udf(datafusion::logical_expr::ScalarUDF::from(crate::sketch_quantile::SketchQuantileFunc::new()));
        ctx
    }

    /// Runs `sql` and returns the single column of the result as rows of scalars.
    pub(crate) async fn column(ctx: &SessionContext, sql: &str) -> Result<Vec<ScalarValue>> {
        let batches = ctx.sql(sql).await?.collect().await?;
        let mut out = Vec::new();
        for batch in batches {
            for row in 0..batch.num_rows() {
                out.push(ScalarValue::try_from_array(batch.column(0), row)?);
            }
        }
        Ok(out)
    }

    fn bytes(v: &ScalarValue) -> Option<Vec<u8>> {
        match v {
            ScalarValue::Binary(b) => b.clone(),
            other => panic!("expected Binary, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn sketch_of_a_group_equals_the_sketch_of_its_values() {
        let ctx = sketch_session();
        // Groups a: 1..=100 (and a NULL), b: 1000, 2000, c: only NULL.
        let mut rows: Vec<String> = (1..=100).map(|v| format!("('a', {v})")).collect();
        rows.extend(["('a', NULL)", "('b', 1000)", "('b', 2000)", "('c', NULL)"].map(String::from));
        ctx.sql(&format!(
            "CREATE TABLE t AS SELECT column1 AS g, CAST(column2 AS BIGINT) AS v FROM (VALUES {})",
            rows.join(", ")
        ))
        .await
        .unwrap();
        let got = column(&ctx, "SELECT latency_sketch(v) FROM t GROUP BY g ORDER BY g").await.unwrap();
        assert_eq!(got.len(), 3);
        let a: LatencySketch = (1..=100).map(f64::from).collect();
        let b: LatencySketch = [1000.0, 2000.0].into_iter().collect();
        assert_eq!(bytes(&got[0]), Some(a.to_bytes()));
        assert_eq!(bytes(&got[1]), Some(b.to_bytes()));
        assert_eq!(bytes(&got[2]), None, "a group of NULLs has no sketch");

        // Without GROUP BY (the plain Accumulator), and over no rows at all.
        let got = column(&ctx, "SELECT latency_sketch(v) FROM t WHERE g = 'a'").await.unwrap();
        assert_eq!(bytes(&got[0]), Some(a.to_bytes()));
        let got = column(&ctx, "SELECT latency_sketch(v) FROM t WHERE g = 'zzz'").await.unwrap();
        assert_eq!(bytes(&got[0]), None);
        // FILTER goes through the groups accumulator's filter.
        let got =
            column(&ctx, "SELECT latency_sketch(v) FILTER (WHERE v > 50) FROM t GROUP BY g ORDER BY g").await.unwrap();
        assert_eq!(bytes(&got[0]), Some((51..=100).map(f64::from).collect::<LatencySketch>().to_bytes()));
        // Other numeric types.
        let got = column(&ctx, "SELECT latency_sketch(CAST(v AS DOUBLE) / 2) FROM t WHERE g = 'b'").await.unwrap();
        assert_eq!(bytes(&got[0]), Some(LatencySketch::from_iter([500.0, 1000.0]).to_bytes()));
        // Not numeric: a planning error.
        let err = column(&ctx, "SELECT latency_sketch(g) FROM t").await.unwrap_err();
        assert!(err.to_string().contains("latency_sketch(value) needs a numeric value"), "{err}");
    }

    #[tokio::test]
    async fn partitioned_input_gives_the_same_bytes() {
        // Many partitions and small batches, so partial states are merged in some order.
        let ctx = SessionContext::new_with_config(
            datafusion::prelude::SessionConfig::new().with_target_partitions(4).with_batch_size(64),
        );
        ctx.register_udaf(AggregateUDF::from(LatencySketchFunc::new()));
        let schema = Arc::new(Schema::new(vec![
            Field::new("g", DataType::Int64, false),
            Field::new("v", DataType::Float64, true),
        ]));
        let mut rng = crate::sketch::tests::Rng::new(5);
        let mut partitions = Vec::new();
        let mut all: Vec<Vec<f64>> = vec![Vec::new(); 3];
        for _ in 0..4 {
            let mut batches = Vec::new();
            for _ in 0..5 {
                let g: Vec<i64> = (0..300).map(|_| (rng.next_u64() % 3) as i64).collect();
                let v: Vec<f64> = (0..300).map(|_| (17.0 + 2.0 * rng.normal()).exp()).collect();
                for (&g, &v) in g.iter().zip(&v) {
                    all[g as usize].push(v);
                }
                let batch = RecordBatch::try_new(
                    Arc::clone(&schema),
                    vec![Arc::new(Int64Array::from(g)), Arc::new(Float64Array::from(v))],
                )
                .unwrap();
                batches.push(batch);
            }
            partitions.push(batches);
        }
        ctx.register_table("t", Arc::new(MemTable::try_new(schema, partitions).unwrap())).unwrap();
        let got = column(&ctx, "SELECT latency_sketch(v) FROM t GROUP BY g ORDER BY g").await.unwrap();
        for (g, values) in all.iter().enumerate() {
            let want: LatencySketch = values.iter().rev().copied().collect();
            assert_eq!(bytes(&got[g]), Some(want.to_bytes()), "group {g}");
        }
    }

    #[tokio::test]
    async fn skipped_partial_aggregation_gives_the_same_bytes() {
        // Thresholds lowered so that the partial aggregation gives up and passes rows on as
        // states (`convert_to_state`), for both functions.
        let mut config = datafusion::prelude::SessionConfig::new().with_target_partitions(2).with_batch_size(16);
        let options = config.options_mut();
        options.execution.skip_partial_aggregation_probe_rows_threshold = 1;
        options.execution.skip_partial_aggregation_probe_ratio_threshold = 0.0;
        let ctx = SessionContext::new_with_config(config);
        ctx.register_udaf(AggregateUDF::from(LatencySketchFunc::new()));
        ctx.register_udaf(AggregateUDF::from(crate::sketch_merge::SketchMergeFunc::new()));
        ctx.sql(
            "CREATE TABLE t AS SELECT value % 97 AS g, CASE WHEN value % 5 = 0 THEN NULL ELSE value END AS v \
             FROM generate_series(1, 2000) AS s(value)",
        )
        .await
        .unwrap();
        let mut want: Vec<LatencySketch> = vec![LatencySketch::new(); 97];
        for value in 1..=2000u32 {
            if value % 5 != 0 {
                want[(value % 97) as usize].add(f64::from(value));
            }
        }
        let got = column(&ctx, "SELECT latency_sketch(v) FROM t GROUP BY g ORDER BY g").await.unwrap();
        let want: Vec<ScalarValue> = want.iter().map(|s| ScalarValue::Binary(Some(s.to_bytes()))).collect();
        assert_eq!(got, want);
        let got = column(
            &ctx,
            "SELECT sketch_merge(s) FROM (SELECT g, v, latency_sketch(v) s FROM t GROUP BY g, v) GROUP BY g ORDER BY g",
        )
        .await
        .unwrap();
        assert_eq!(got, want);
    }

    #[test]
    fn groups_accumulator_emits_first_groups_and_converts_rows() {
        let mut acc = SketchGroupsAccumulator::new(SketchInput::Values);
        let values: ArrayRef = Arc::new(Float64Array::from(vec![Some(1.0), None, Some(3.0), Some(f64::NAN), Some(5.0)]));
        acc.update_batch(&[Arc::clone(&values)], &[0, 1, 2, 1, 0], None, 3).unwrap();
        let first = acc.evaluate(EmitTo::First(2)).unwrap();
        let first = first.as_binary::<i32>();
        assert_eq!(first.value(0), LatencySketch::from_iter([1.0, 5.0]).to_bytes());
        assert!(first.is_null(1), "group 1 saw only NULL and NaN");
        // Group 2 is now group 0.
        acc.update_batch(&[Arc::clone(&values)], &[0, 0, 0, 0, 0], None, 1).unwrap();
        let rest = acc.evaluate(EmitTo::All).unwrap();
        assert_eq!(rest.as_binary::<i32>().value(0), LatencySketch::from_iter([3.0, 1.0, 3.0, 5.0]).to_bytes());
        assert_eq!(acc.heap_bytes, 0);

        let filter = BooleanArray::from(vec![true, true, false, true, true]);
        let state = acc.convert_to_state(&[values], Some(&filter)).unwrap();
        let state = state[0].as_binary::<i32>();
        assert_eq!(state.value(0), LatencySketch::from_iter([1.0]).to_bytes());
        assert!(state.is_null(1) && state.is_null(2) && state.is_null(3));
        assert_eq!(state.value(4), LatencySketch::from_iter([5.0]).to_bytes());
    }
}
