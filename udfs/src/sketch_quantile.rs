//! `sketch_quantile(sketch, q)`: the quantile `q` of the values in a sketch from
//! [`latency_sketch`](crate::latency_sketch) or [`sketch_merge`](crate::sketch_merge), as Float64.
//!
//! The result estimates the order statistic ⌊q·(n − 1)⌋ (0-based) of the n values — the lower
//! of the two values the exact `percentile(value, q)` interpolates between — within 0.5 %
//! relative error; `q = 0` and `q = 1` give the exact minimum and maximum (see
//! [`LatencySketch::quantile`]). `q` is a constant or a column, between 0 and 1 (anything else,
//! including NaN, is an execution error). A NULL sketch or q, or an empty sketch, gives NULL.
//! Bytes that are not a serialized sketch are an execution error
//! (`sketch_quantile: not a tracelake sketch: …`).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Builder};
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::common::{Result, ScalarValue, exec_err, plan_err, utils::take_function_args};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, DocumentationBuilder, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
    scalar_doc_sections::DOC_SECTION_OTHER,
};

use crate::latency_sketch::{as_binary, parse_sketch};
use crate::sketch::LatencySketch;
use crate::sketch_merge::is_binary;

/// The `sketch_quantile` scalar function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct SketchQuantileFunc {
    signature: Signature,
}

impl Default for SketchQuantileFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl SketchQuantileFunc {
    /// Creates the function.
    pub fn new() -> Self {
        Self { signature: Signature::any(2, Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for SketchQuantileFunc {
    fn name(&self) -> &str {
        "sketch_quantile"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types {
            [sketch, q] if is_binary(sketch) && (q.is_numeric() || q.is_null()) => Ok(DataType::Float64),
            [sketch, q] => plan_err!(
                "sketch_quantile(sketch, q) needs a Binary sketch from latency_sketch and a numeric q, got ({sketch}, {q})"
            ),
            _ => plan_err!("sketch_quantile takes 2 arguments: sketch_quantile(sketch, q)"),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let [sketch, q] = take_function_args(self.name(), args.args)?;
        let all_scalar = matches!((&sketch, &q), (ColumnarValue::Scalar(_), ColumnarValue::Scalar(_)));
        let sketch_is_scalar = matches!(sketch, ColumnarValue::Scalar(_));
        let sketches = as_binary(self.name(), &sketch.into_array(rows)?)?;
        let sketches = sketches.as_binary::<i32>();
        let qs = datafusion::arrow::compute::cast(&q.into_array(rows)?, &DataType::Float64)?;
        let qs = qs.as_primitive::<Float64Type>();

        // A constant sketch is parsed once.
        let mut constant: Option<LatencySketch> = None;
        let mut out = Float64Builder::with_capacity(rows);
        for row in 0..rows {
            if qs.is_null(row) {
                out.append_null();
                continue;
            }
            let q = qs.value(row);
            if !(0.0..=1.0).contains(&q) {
                return exec_err!("sketch_quantile: q must be between 0 and 1, got {q}");
            }
            if sketches.is_null(row) {
                out.append_null();
                continue;
            }
            let value = if sketch_is_scalar {
                if constant.is_none() {
                    constant = Some(parse_sketch(self.name(), sketches.value(row))?);
                }
                constant.as_ref().and_then(|s| s.quantile(q))
            } else {
                parse_sketch(self.name(), sketches.value(row))?.quantile(q)
            };
            out.append_option(value);
        }
        let result: ArrayRef = Arc::new(out.finish());
        if all_scalar && result.len() == 1 {
            // Scalar in, scalar out, so that constant folding works.
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&result, 0)?));
        }
        Ok(ColumnarValue::Array(result))
    }

    fn documentation(&self) -> Option<&Documentation> {
        static DOC: std::sync::OnceLock<Documentation> = std::sync::OnceLock::new();
        Some(DOC.get_or_init(|| {
            DocumentationBuilder::new_with_details(
                DOC_SECTION_OTHER,
                "Returns the quantile q of the values in a sketch (from latency_sketch or sketch_merge), within \
                 0.5 % relative error: an estimate of the value of rank floor(q * (n - 1)) of the n values, \
                 exact for q = 0 (minimum) and q = 1 (maximum). NULL for a NULL or empty sketch.",
                "sketch_quantile(sketch_merge(hourly_sketch), 0.99)",
            )
            .with_argument("sketch", "Binary sketch produced by latency_sketch or sketch_merge")
            .with_argument("q", "number between 0 and 1, constant or column")
            .build()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::latency_sketch::tests::{column, sketch_session};

    fn float(v: &ScalarValue) -> Option<f64> {
        match v {
            ScalarValue::Float64(f) => *f,
            other => panic!("expected Float64, got {other:?}"),
        }
    }

    async fn error_of(ctx: &datafusion::prelude::SessionContext, sql: &str) -> String {
        match column(ctx, sql).await {
            Ok(rows) => panic!("{sql}: expected an error, got {rows:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn within(got: Option<f64>, want: f64) -> bool {
        got.is_some_and(|g| (g - want).abs() <= want.abs() * 0.01)
    }

    #[tokio::test]
    async fn quantile_of_merged_group_sketches() {
        let ctx = sketch_session();
        // Three groups (v % 3) of 1..=150.
        ctx.sql(
            "CREATE TABLE t AS SELECT value % 3 AS g, CAST(value AS BIGINT) AS v \
             FROM generate_series(1, 150) AS s(value)",
        )
        .await
        .unwrap();
        let q = |q: f64| {
            format!(
                "SELECT sketch_quantile(sketch_merge(s), {q}) FROM (SELECT g, latency_sketch(v) s FROM t GROUP BY g)"
            )
        };
        // By hand: n = 150, q = 0.5 → rank ⌊74.5⌋ = 74 → the 75th smallest value, 75.
        let got = column(&ctx, &q(0.5)).await.unwrap();
        assert!(within(float(&got[0]), 75.0), "{got:?}");
        // q = 0.9 → ⌊134.1⌋ = 134 → 135; q = 0.99 → ⌊147.51⌋ = 147 → 148.
        assert!(within(float(&column(&ctx, &q(0.9)).await.unwrap()[0]), 135.0));
        assert!(within(float(&column(&ctx, &q(0.99)).await.unwrap()[0]), 148.0));
        // The extremes are exact.
        assert_eq!(float(&column(&ctx, &q(0.0)).await.unwrap()[0]), Some(1.0));
        assert_eq!(float(&column(&ctx, &q(1.0)).await.unwrap()[0]), Some(150.0));

        // Per group, with q an integer literal and q as a column.
        let got = column(
            &ctx,
            "SELECT sketch_quantile(latency_sketch(v), 1) FROM t GROUP BY g ORDER BY g",
        )
        .await
        .unwrap();
        assert_eq!(got.iter().map(float).collect::<Vec<_>>(), vec![Some(150.0), Some(148.0), Some(149.0)]);
        let got = column(
            &ctx,
            "SELECT sketch_quantile(s, qs) FROM (SELECT latency_sketch(v) s FROM t) \
             CROSS JOIN (VALUES (0.0), (0.5), (CAST(NULL AS DOUBLE))) AS w(qs) ORDER BY qs NULLS LAST",
        )
        .await
        .unwrap();
        assert_eq!(float(&got[0]), Some(1.0));
        assert!(within(float(&got[1]), 75.0));
        assert_eq!(float(&got[2]), None, "NULL q");
        for t in ["BinaryView", "LargeBinary"] {
            let sql = format!("SELECT sketch_quantile(arrow_cast(latency_sketch(v), '{t}'), 1.0) FROM t");
            assert_eq!(float(&column(&ctx, &sql).await.unwrap()[0]), Some(150.0), "{t}");
        }
    }

    #[tokio::test]
    async fn nulls_empty_sketches_and_errors() {
        let ctx = sketch_session();
        let empty: String = LatencySketch::new().to_bytes().iter().map(|b| format!("{b:02x}")).collect();
        for (sql, want) in [
            ("SELECT sketch_quantile(NULL, 0.5)".to_string(), None),
            ("SELECT sketch_quantile(CAST(NULL AS BYTEA), 0.5)".to_string(), None),
            (format!("SELECT sketch_quantile(X'{empty}', 0.5)"), None),
            ("SELECT sketch_quantile(latency_sketch(v), 0.5) FROM (VALUES (CAST(NULL AS BIGINT))) AS t(v)".into(), None),
        ] {
            let got = column(&ctx, &sql).await.unwrap();
            assert_eq!(got.iter().map(float).collect::<Vec<_>>(), vec![want], "{sql}");
        }

        let err = |sql: &'static str| error_of(&ctx, sql);
        let e = err("SELECT sketch_quantile(latency_sketch(v), 1.5) FROM (VALUES (1), (2)) AS t(v)").await;
        assert!(e.contains("sketch_quantile: q must be between 0 and 1, got 1.5"), "{e}");
        let e = err("SELECT sketch_quantile(s, q) FROM (SELECT latency_sketch(1) s) CROSS JOIN (VALUES (0.5), (-0.5)) AS w(q)").await;
        assert!(e.contains("q must be between 0 and 1, got -0.5"), "{e}");
        let e = err("SELECT sketch_quantile(X'00ff', 0.5)").await;
        assert!(e.contains("sketch_quantile: not a tracelake sketch: unsupported format version 0"), "{e}");
        let e = err("SELECT sketch_quantile(s, 0.5) FROM (VALUES (X'0102'), (X'01')) AS t(s)").await;
        assert!(e.contains("sketch_quantile: not a tracelake sketch: truncated input"), "{e}");
        let e = err("SELECT sketch_quantile('abc', 0.5)").await;
        assert!(e.contains("needs a Binary sketch"), "{e}");
    }
}
