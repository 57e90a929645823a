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

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array, ListArray};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type};
use datafusion::common::{Result, ScalarValue, exec_err, not_impl_err, plan_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, DocumentationBuilder, Signature, Volatility,
    aggregate_doc_sections::DOC_SECTION_GENERAL,
};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::Schema;
use datafusion::logical_expr::ColumnarValue;
use datafusion::physical_expr::PhysicalExpr;

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
        // One NaN bit pattern, so that NaN sorts above +inf whatever its sign bit (as in DuckDB).
        self.values.extend(input.iter().flatten().map(|v| if v.is_nan() { f64::NAN } else { v }));
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
