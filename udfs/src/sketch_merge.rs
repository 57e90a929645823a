//! `sketch_merge(sketch)`: merges the sketches of a group (from
//! [`latency_sketch`](crate::latency_sketch) or an earlier `sketch_merge`) into the sketch of the
//! union of their values, as Binary.
//!
//! The merge is exact: `sketch_merge` over hourly `latency_sketch` rollups gives byte for byte
//! the `latency_sketch` of the whole day's values. NULL inputs are ignored; a group with only
//! NULLs (or only empty sketches) gives NULL, like `latency_sketch` over no values. Bytes that
//! are not a serialized sketch are an execution error
//! (`sketch_merge: not a tracelake sketch: …`).

use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{Result, not_impl_err, plan_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, DocumentationBuilder, GroupsAccumulator, Signature, Volatility,
    aggregate_doc_sections::DOC_SECTION_APPROXIMATE,
};

use crate::latency_sketch::{SketchAccumulator, SketchGroupsAccumulator, SketchInput, sketch_state_field};

/// The `sketch_merge` aggregate function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct SketchMergeFunc {
    signature: Signature,
}

impl Default for SketchMergeFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl SketchMergeFunc {
    /// Creates the function.
    pub fn new() -> Self {
        Self { signature: Signature::any(1, Volatility::Immutable) }
    }
}

/// Whether `t` can hold serialized sketches.
pub(crate) fn is_binary(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_) | DataType::Null
    )
}

impl AggregateUDFImpl for SketchMergeFunc {
    fn name(&self) -> &str {
        "sketch_merge"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types {
            [sketch] if is_binary(sketch) => Ok(DataType::Binary),
            [sketch] => plan_err!("sketch_merge(sketch) needs a Binary sketch from latency_sketch, got {sketch}"),
            _ => plan_err!("sketch_merge takes 1 argument: sketch_merge(sketch)"),
        }
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![sketch_state_field(args.name)])
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        if args.is_distinct {
            return not_impl_err!("sketch_merge(DISTINCT ...) is not supported");
        }
        Ok(Box::new(SketchAccumulator::new(SketchInput::Sketches)))
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        !args.is_distinct
    }

    fn create_groups_accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(SketchGroupsAccumulator::new(SketchInput::Sketches)))
    }

    fn documentation(&self) -> Option<&Documentation> {
        static DOC: std::sync::OnceLock<Documentation> = std::sync::OnceLock::new();
        Some(DOC.get_or_init(|| {
            DocumentationBuilder::new_with_details(
                DOC_SECTION_APPROXIMATE,
                "Merges quantile sketches (from latency_sketch or sketch_merge) into the sketch of all their \
                 values, exactly; NULLs are ignored, NULL when there is no sketch. E.g. a daily rollup from \
                 hourly sketches.",
                "sketch_quantile(sketch_merge(hourly_sketch), 0.99)",
            )
            .with_argument("sketch", "Binary sketch produced by latency_sketch or sketch_merge")
            .build()
        }))
    }
}

#[cfg(test)]
mod tests {
    use crate::latency_sketch::tests::{column, sketch_session};
    use crate::sketch::LatencySketch;
    use datafusion::common::ScalarValue;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// 24 "hours" of values 1..=2400 ns (hour h holds h·100 + 1 ..= h·100 + 100).
    async fn hourly_table(ctx: &datafusion::prelude::SessionContext) {
        ctx.sql(
            "CREATE TABLE spans AS \
             SELECT CAST(value / 100 AS BIGINT) AS hour, CAST(value + 1 AS BIGINT) AS duration_ns \
             FROM generate_series(0, 2399) AS s(value)",
        )
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn merge_of_hourly_rollups_equals_the_daily_sketch() {
        let ctx = sketch_session();
        hourly_table(&ctx).await;
        let daily = column(&ctx, "SELECT latency_sketch(duration_ns) FROM spans").await.unwrap();
        let merged = column(
            &ctx,
            "SELECT sketch_merge(s) FROM (SELECT hour, latency_sketch(duration_ns) s FROM spans GROUP BY hour)",
        )
        .await
        .unwrap();
        let want = LatencySketch::from_iter((1..=2400).map(f64::from)).to_bytes();
        assert_eq!(daily, vec![ScalarValue::Binary(Some(want.clone()))]);
        assert_eq!(merged, daily);
        // Grouped merge of rollups of rollups (two levels: hour → 6-hour → day).
        let merged = column(
            &ctx,
            "SELECT sketch_merge(s6) FROM ( \
               SELECT hour / 6 AS quarter, sketch_merge(s) s6 FROM \
                 (SELECT hour, latency_sketch(duration_ns) s FROM spans GROUP BY hour) GROUP BY hour / 6)",
        )
        .await
        .unwrap();
        assert_eq!(merged, daily);
        // Sketches read back from Parquet arrive as BinaryView (or LargeBinary).
        for t in ["BinaryView", "LargeBinary"] {
            let merged = column(
                &ctx,
                &format!(
                    "SELECT sketch_merge(arrow_cast(s, '{t}')) FROM \
                     (SELECT hour, latency_sketch(duration_ns) s FROM spans GROUP BY hour)"
                ),
            )
            .await
            .unwrap();
            assert_eq!(merged, daily, "{t}");
        }
    }

    #[tokio::test]
    async fn nulls_are_ignored_and_garbage_is_an_error() {
        let ctx = sketch_session();
        let one = hex(&LatencySketch::from_iter([10.0]).to_bytes());
        let two = hex(&LatencySketch::from_iter([20.0, 30.0]).to_bytes());
        ctx.sql(&format!(
            "CREATE TABLE r AS SELECT * FROM (VALUES ('a', X'{one}'), ('a', NULL), ('a', X'{two}'), ('b', NULL)) AS v(g, s)"
        ))
        .await
        .unwrap();
        let got = column(&ctx, "SELECT sketch_merge(s) FROM r GROUP BY g ORDER BY g").await.unwrap();
        let want = LatencySketch::from_iter([10.0, 20.0, 30.0]).to_bytes();
        assert_eq!(got, vec![ScalarValue::Binary(Some(want)), ScalarValue::Binary(None)]);
        let got = column(&ctx, "SELECT sketch_merge(s) FROM r WHERE g = 'b'").await.unwrap();
        assert_eq!(got, vec![ScalarValue::Binary(None)]);

        for sql in [
            "SELECT sketch_merge(X'00ff')",
            "SELECT sketch_merge(s) FROM (VALUES (X'01'), (NULL)) AS v(s)",
            "SELECT g, sketch_merge(s) FROM (VALUES (1, X'0102'), (2, NULL)) AS v(g, s) GROUP BY g",
        ] {
            let err = column(&ctx, sql).await.unwrap_err().to_string();
            assert!(err.contains("sketch_merge: not a tracelake sketch: "), "{sql}: {err}");
        }
        let err = column(&ctx, "SELECT sketch_merge(1.5)").await.unwrap_err().to_string();
        assert!(err.contains("needs a Binary sketch"), "{err}");
    }
}
