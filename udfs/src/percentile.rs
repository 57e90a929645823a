//! `percentile(value, q)`: the exact, linearly interpolated percentile — the same definition
//! as DuckDB's `quantile_cont` and PostgreSQL's `percentile_cont`:
//!
//! with the n non-null values sorted as x₀ ≤ … ≤ xₙ₋₁, r = q·(n−1), lo = ⌊r⌋, hi = ⌈r⌉:
//! `percentile = x_lo + (r − lo)·(x_hi − x_lo)`; NULL for no values. `q` is a constant in [0, 1].
//!
//! DataFusion's built-in `percentile_cont` quantizes the interpolation weight to 1e-6, which
//! puts tail percentiles off by up to 1e-6 of the gap between neighbouring values (tens of ns
//! on slow tails); this function does not.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Float64Array, ListArray};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type};
use datafusion::common::{Result, ScalarValue, exec_err, not_impl_err, plan_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, DocumentationBuilder, EmitTo, GroupsAccumulator, Signature, Volatility,
    aggregate_doc_sections::DOC_SECTION_GENERAL,
};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::Schema;
use datafusion::logical_expr::ColumnarValue;
use datafusion::physical_expr::PhysicalExpr;

use crate::latency_sketch::for_each_value;

/// The `percentile` aggregate function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PercentileFunc {
    signature: Signature,
}

impl Default for PercentileFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl PercentileFunc {
    /// Creates the function.
    pub fn new() -> Self {
        Self { signature: Signature::any(2, Volatility::Immutable) }
    }
}

impl AggregateUDFImpl for PercentileFunc {
    fn name(&self) -> &str {
        "percentile"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types {
            [value, q] if (value.is_numeric() || value.is_null()) && (q.is_numeric() || q.is_null()) => {
                Ok(DataType::Float64)
            }
            [value, q] => plan_err!("percentile(value, q) needs a numeric value and a numeric q, got ({value}, {q})"),
            _ => plan_err!("percentile takes 2 arguments: percentile(value, q)"),
        }
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let item = Arc::new(Field::new_list_field(DataType::Float64, true));
        Ok(vec![Arc::new(Field::new(format!("{}[values]", args.name), DataType::List(item), true))])
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        if args.is_distinct {
            return not_impl_err!("percentile(DISTINCT ...) is not supported; use a subquery with SELECT DISTINCT");
        }
        let q = constant_q(args.exprs.get(1))?;
        Ok(Box::new(PercentileAccumulator { q, values: Vec::new() }))
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        !args.is_distinct
    }

    fn create_groups_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        let q = constant_q(args.exprs.get(1))?;
        Ok(Box::new(PercentileGroupsAccumulator { q, groups: Vec::new(), values_cap: 0 }))
    }

    fn documentation(&self) -> Option<&Documentation> {
        static DOC: std::sync::OnceLock<Documentation> = std::sync::OnceLock::new();
        Some(DOC.get_or_init(|| {
            DocumentationBuilder::new_with_details(
                DOC_SECTION_GENERAL,
                "Exact percentile with linear interpolation between the two nearest values (DuckDB's quantile_cont).",
                "percentile(duration_ns, 0.99)",
            )
            .with_argument("value", "numeric expression")
            .with_argument("q", "constant between 0 and 1")
            .build()
        }))
    }
}

fn constant_q(expr: Option<&Arc<dyn PhysicalExpr>>) -> Result<f64> {
    let not_constant = || plan_err!("percentile: q must be a constant, e.g. percentile(duration_ns, 0.99)");
    let Some(expr) = expr else { return not_constant() };
    // A constant evaluates without any input column.
    let empty = RecordBatch::new_empty(Arc::new(Schema::empty()));
    let Ok(ColumnarValue::Scalar(value)) = expr.evaluate(&empty) else { return not_constant() };
    let q = match value.cast_to(&DataType::Float64)? {
        ScalarValue::Float64(Some(q)) => q,
        other => return plan_err!("percentile: q must be a number between 0 and 1, got {other}"),
    };
    if !(0.0..=1.0).contains(&q) {
        return plan_err!("percentile: q must be between 0 and 1, got {q}");
    }
    Ok(q)
}

/// Holds every value of the group; the percentile is selected when the group is complete.
#[derive(Debug)]
struct PercentileAccumulator {
    q: f64,
    values: Vec<f64>,
}

impl Accumulator for PercentileAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let Some(input) = values.first() else { return exec_err!("percentile: missing input") };
        let input = datafusion::arrow::compute::cast(input, &DataType::Float64)?;
        let input = input.as_primitive::<Float64Type>();
        self.values.reserve(input.len() - input.null_count());
        self.values.extend(input.iter().flatten().map(canonical));
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let Some(lists) = states.first() else { return exec_err!("percentile: missing state") };
        let lists = lists.as_list::<i32>();
        for i in 0..lists.len() {
            if lists.is_valid(i) {
                let part = lists.value(i);
                self.values.extend(part.as_primitive::<Float64Type>().iter().flatten());
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let values = Float64Array::from(std::mem::take(&mut self.values));
        let offsets = OffsetBuffer::from_lengths([values.len()]);
        let item = Arc::new(Field::new_list_field(DataType::Float64, true));
        let list = ListArray::try_new(item, offsets, Arc::new(values), None)?;
        Ok(vec![ScalarValue::List(Arc::new(list))])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Float64(interpolated_percentile(&mut self.values, self.q)))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.values.capacity() * std::mem::size_of::<f64>()
    }
}

/// The values of every group of a GROUP BY, in one accumulator: DataFusion's hash aggregation
/// calls it once per batch with each row's group index, instead of once per group and batch.
#[derive(Debug)]
struct PercentileGroupsAccumulator {
    q: f64,
    groups: Vec<Vec<f64>>,
    /// Sum of the groups' capacities, kept current so that `size()` is O(1).
    values_cap: usize,
}

impl PercentileGroupsAccumulator {
    /// The values of `emit_to`'s groups, taken out of the accumulator.
    fn take(&mut self, emit_to: EmitTo) -> Vec<Vec<f64>> {
        let taken = emit_to.take_needed(&mut self.groups);
        self.values_cap -= taken.iter().map(Vec::capacity).sum::<usize>();
        taken
    }
}

/// One NaN bit pattern, so that NaN sorts above +inf whatever its sign bit (as in DuckDB).
fn canonical(v: f64) -> f64 {
    if v.is_nan() { f64::NAN } else { v }
}

impl GroupsAccumulator for PercentileGroupsAccumulator {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        let Some(input) = values.first() else { return exec_err!("percentile: missing input") };
        if group_indices.len() != input.len() {
            return exec_err!("percentile: {} group indices for {} values", group_indices.len(), input.len());
        }
        self.groups.resize_with(total_num_groups, Vec::new);
        let (groups, cap) = (&mut self.groups, &mut self.values_cap);
        for_each_value(input, opt_filter, |row, v| {
            let v = canonical(v);
            if let Some(group) = groups.get_mut(group_indices[row]) {
                let before = group.capacity();
                group.push(v);
                *cap += group.capacity() - before;
            }
        })
    }

    fn merge_batch(&mut self, values: &[ArrayRef], group_indices: &[usize], total_num_groups: usize) -> Result<()> {
        let Some(lists) = values.first() else { return exec_err!("percentile: missing state") };
        let lists = lists.as_list::<i32>();
        if group_indices.len() != lists.len() {
            return exec_err!("percentile: {} group indices for {} states", group_indices.len(), lists.len());
        }
        self.groups.resize_with(total_num_groups, Vec::new);
        let offsets = lists.value_offsets();
        let items = lists.values().as_primitive::<Float64Type>();
        for (row, &group) in group_indices.iter().enumerate() {
            if lists.is_null(row) {
                continue;
            }
            let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
            let Some(target) = self.groups.get_mut(group) else { continue };
            let before = target.capacity();
            if items.null_count() == 0 {
                target.extend_from_slice(&items.values()[start..end]);
            } else {
                target.extend((start..end).filter(|&i| items.is_valid(i)).map(|i| items.value(i)));
            }
            self.values_cap += target.capacity() - before;
        }
        Ok(())
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let taken = self.take(emit_to);
        let offsets = OffsetBuffer::from_lengths(taken.iter().map(Vec::len));
        let values = Float64Array::from(taken.into_iter().flatten().collect::<Vec<_>>());
        let item = Arc::new(Field::new_list_field(DataType::Float64, true));
        Ok(vec![Arc::new(ListArray::try_new(item, offsets, Arc::new(values), None)?)])
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let q = self.q;
        let taken = self.take(emit_to);
        Ok(Arc::new(taken.into_iter().map(|mut v| interpolated_percentile(&mut v, q)).collect::<Float64Array>()))
    }

    fn convert_to_state(&self, values: &[ArrayRef], opt_filter: Option<&BooleanArray>) -> Result<Vec<ArrayRef>> {
        let Some(input) = values.first() else { return exec_err!("percentile: missing input") };
        // Each row is its own group: a one-value list, or an empty list for a null or filtered row.
        let mut lengths = vec![0usize; input.len()];
        let mut items = Vec::with_capacity(input.len());
        for_each_value(input, opt_filter, |row, v| {
            let v = canonical(v);
            lengths[row] = 1;
            items.push(v);
        })?;
        let item = Arc::new(Field::new_list_field(DataType::Float64, true));
        let list = ListArray::try_new(item, OffsetBuffer::from_lengths(lengths), Arc::new(Float64Array::from(items)), None)?;
        Ok(vec![Arc::new(list)])
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + self.groups.capacity() * std::mem::size_of::<Vec<f64>>()
            + self.values_cap * std::mem::size_of::<f64>()
    }
}

/// The interpolated percentile of `values` (reordered in place); `None` when empty.
pub fn interpolated_percentile(values: &mut [f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let rank = q * (values.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    let (_, lo_value, upper) = values.select_nth_unstable_by(lo, f64::total_cmp);
    let lo_value = *lo_value;
    if hi == lo {
        return Some(lo_value);
    }
    // The next order statistic is the minimum of the upper partition.
    let Some(hi_value) = upper.iter().copied().min_by(f64::total_cmp) else { return Some(lo_value) };
    Some(lo_value + (rank - lo as f64) * (hi_value - lo_value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolates_like_quantile_cont() {
        // Worked by hand: n = 4, q = 0.5 → r = 1.5 → 20 + 0.5·(30 − 20) = 25.
        assert_eq!(interpolated_percentile(&mut [40.0, 10.0, 30.0, 20.0], 0.5), Some(25.0));
        // q = 0.99, n = 101 values 0..=100 → r = 99 exactly → 99.
        let mut v: Vec<f64> = (0..=100).rev().map(f64::from).collect();
        assert_eq!(interpolated_percentile(&mut v, 0.99), Some(99.0));
        // n = 2, q = 0.95 → 70 + 0.95·30 = 98.5.
        assert_eq!(interpolated_percentile(&mut [100.0, 70.0], 0.95), Some(98.5));
        assert_eq!(interpolated_percentile(&mut [5.0], 0.3), Some(5.0));
        assert_eq!(interpolated_percentile(&mut [], 0.3), None);
        assert_eq!(interpolated_percentile(&mut [3.0, 1.0, 2.0], 0.0), Some(1.0));
        assert_eq!(interpolated_percentile(&mut [3.0, 1.0, 2.0], 1.0), Some(3.0));
        // NaN sorts last: the median of [1, NaN] interpolates towards NaN.
        assert!(interpolated_percentile(&mut [f64::NAN, 1.0], 0.5).is_some_and(f64::is_nan));
        assert_eq!(interpolated_percentile(&mut [f64::NAN, 1.0, 2.0], 0.5), Some(2.0));
    }

    fn values(v: &[Option<f64>]) -> ArrayRef {
        Arc::new(Float64Array::from(v.to_vec()))
    }

    #[test]
    fn groups_accumulator_agrees_with_the_per_group_accumulator() {
        // Three groups fed over two batches, with a null and a filtered-out row; one group is
        // moved through state/merge (as a two-phase aggregation does) before evaluation.
        let q = 0.9;
        let mut acc = PercentileGroupsAccumulator { q, groups: Vec::new(), values_cap: 0 };
        let batch1 = values(&[Some(5.0), Some(1.0), None, Some(7.0), Some(100.0)]);
        let filter = BooleanArray::from(vec![true, true, true, true, false]);
        acc.update_batch(&[batch1], &[0, 1, 0, 2, 0], Some(&filter), 3).unwrap();
        let batch2 = values(&[Some(3.0), Some(2.0), Some(9.0), Some(4.0)]);
        acc.update_batch(&[batch2], &[0, 1, 2, 0], None, 3).unwrap();
        // Group 0: {5, 3, 4}; group 1: {1, 2}; group 2: {7, 9}.
        let state = acc.state(EmitTo::First(1)).unwrap();
        let mut other = PercentileGroupsAccumulator { q, groups: Vec::new(), values_cap: 0 };
        other.merge_batch(&state, &[1], 2).unwrap();
        other.update_batch(&[values(&[Some(6.0)])], &[1], None, 2).unwrap();
        // `other` group 1 is now {5, 3, 4, 6}; `acc` now holds old groups 1 and 2 as 0 and 1.
        let merged = other.evaluate(EmitTo::All).unwrap();
        let rest = acc.evaluate(EmitTo::All).unwrap();
        let by_hand = |v: &mut [f64]| interpolated_percentile(v, q);
        let merged = merged.as_primitive::<Float64Type>();
        assert!(merged.is_null(0), "a group with no values is NULL");
        assert_eq!(Some(merged.value(1)), by_hand(&mut [5.0, 3.0, 4.0, 6.0]));
        let rest = rest.as_primitive::<Float64Type>();
        assert_eq!(Some(rest.value(0)), by_hand(&mut [1.0, 2.0]));
        assert_eq!(Some(rest.value(1)), by_hand(&mut [7.0, 9.0]));
        assert_eq!(rest.value(1), 7.0 + 0.9 * 2.0);
        assert_eq!(acc.size(), std::mem::size_of_val(&acc) + acc.groups.capacity() * std::mem::size_of::<Vec<f64>>());
    }

    #[test]
    fn convert_to_state_makes_one_group_per_row() {
        let acc = PercentileGroupsAccumulator { q: 0.5, groups: Vec::new(), values_cap: 0 };
        let filter = BooleanArray::from(vec![true, true, false]);
        let state = acc.convert_to_state(&[values(&[Some(2.0), None, Some(3.0)])], Some(&filter)).unwrap();
        let lists = state[0].as_list::<i32>();
        let lens: Vec<usize> = (0..lists.len()).map(|i| lists.value(i).len()).collect();
        assert_eq!(lens, [1, 0, 0]);
        let mut merged = PercentileGroupsAccumulator { q: 0.5, groups: Vec::new(), values_cap: 0 };
        merged.merge_batch(&state, &[0, 0, 0], 1).unwrap();
        assert_eq!(merged.evaluate(EmitTo::All).unwrap().as_primitive::<Float64Type>().value(0), 2.0);
    }

    #[test]
    fn tail_percentile_is_not_quantized() {
        // n = 3914 as in a real workload: r = 0.99·3913 = 3873.87, weight 0.87 exactly enough
        // that a 1e-6 quantization would show on a 1e8 gap.
        let mut v: Vec<f64> = (0..3914).map(|i| if i < 3874 { i as f64 } else { 1e8 + i as f64 }).collect();
        let got = interpolated_percentile(&mut v, 0.99).unwrap();
        let rank = 0.99 * 3913.0;
        let expected = 3873.0 + (rank - 3873.0) * (1e8 + 3874.0 - 3873.0);
        assert_eq!(got, expected);
    }
}
