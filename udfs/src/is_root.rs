//! `is_root(parent_span_id)`: true for a span without a parent (NULL or empty parent id).
//!
//! `SELECT count(*) FROM spans WHERE is_root(parent_span_id)` counts traces' root spans.

use std::sync::Arc;

use datafusion::arrow::array::{Array, BooleanArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue, plan_err, utils::take_function_args};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, DocumentationBuilder, ScalarFunctionArgs, ScalarUDFImpl, Signature,
    Volatility, scalar_doc_sections::DOC_SECTION_OTHER,
};

/// The `is_root` scalar function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct IsRootFunc {
    signature: Signature,
}

impl Default for IsRootFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl IsRootFunc {
    /// Creates the function.
    pub fn new() -> Self {
        Self { signature: Signature::any(1, Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for IsRootFunc {
    fn name(&self) -> &str {
        "is_root"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types {
            [DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 | DataType::Null] => Ok(DataType::Boolean),
            [other] => plan_err!("is_root(parent_span_id) expects a string, got {other}"),
            _ => plan_err!("is_root takes 1 argument (parent_span_id)"),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [parent] = take_function_args(self.name(), args.args)?;
        match parent {
            ColumnarValue::Scalar(s) => {
                let root = s.is_null() || matches!(&s, ScalarValue::Utf8(Some(v)) | ScalarValue::Utf8View(Some(v)) | ScalarValue::LargeUtf8(Some(v)) if v.is_empty());
                Ok(ColumnarValue::Scalar(ScalarValue::Boolean(Some(root))))
            }
            ColumnarValue::Array(array) => {
                let text = datafusion::arrow::compute::cast(&array, &DataType::Utf8)?;
                let text = datafusion::arrow::array::AsArray::as_string::<i32>(&text);
                let roots: BooleanArray = (0..text.len()).map(|i| Some(text.is_null(i) || text.value(i).is_empty())).collect();
                Ok(ColumnarValue::Array(Arc::new(roots)))
            }
        }
    }

    fn documentation(&self) -> Option<&Documentation> {
        static DOC: std::sync::OnceLock<Documentation> = std::sync::OnceLock::new();
        Some(DOC.get_or_init(|| {
            DocumentationBuilder::new_with_details(
                DOC_SECTION_OTHER,
                "True for a root span: its parent span id is NULL or empty.",
                "is_root(parent_span_id)",
            )
            .with_argument("parent_span_id", "the span's parent id")
            .build()
        }))
    }
}
