//! `attr(map, key)`: the value of `key` in an attribute map (`Map<Utf8, Utf8>`), NULL when the
//! key is absent. Same result as `map['key']`; reads well in reports and works with a key that
//! is a column.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue, exec_err, utils::take_function_args};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, DocumentationBuilder, ScalarFunctionArgs, ScalarUDFImpl, Signature,
    Volatility, scalar_doc_sections::DOC_SECTION_OTHER,
};

/// The `attr` scalar function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct AttrFunc {
    signature: Signature,
}

impl Default for AttrFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl AttrFunc {
    /// Creates the function.
    pub fn new() -> Self {
        Self { signature: Signature::any(2, Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for AttrFunc {
    fn name(&self) -> &str {
        "attr"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types {
            [DataType::Map(_, _), k] if is_string(k) => Ok(DataType::Utf8),
            [m, k] => exec_err!("attr(map, key) expects a Map<Utf8, Utf8> and a string key, got ({m}, {k})"),
            _ => exec_err!("attr takes 2 arguments"),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let [map, key] = take_function_args(self.name(), args.args)?;
        let all_scalar = matches!((&map, &key), (ColumnarValue::Scalar(_), ColumnarValue::Scalar(_)));
        let map = map.into_array(rows)?;
        let Some(map) = map.as_map_opt() else { return exec_err!("attr: first argument must be a map") };
        let key_array = key.into_array(rows)?;
        let key_array = datafusion::arrow::compute::cast(&key_array, &DataType::Utf8)?;
        let keys = key_array.as_string::<i32>();
        let map_keys = datafusion::arrow::compute::cast(map.keys(), &DataType::Utf8)?;
        let map_keys = map_keys.as_string::<i32>();
        let map_values = datafusion::arrow::compute::cast(map.values(), &DataType::Utf8)?;
        let map_values = map_values.as_string::<i32>();
        let offsets = map.value_offsets();

        let mut out = StringBuilder::with_capacity(rows, rows * 8);
        for row in 0..rows {
            if map.is_null(row) || keys.is_null(row) {
                out.append_null();
                continue;
            }
            let wanted = keys.value(row);
            let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
            match (start..end).find(|&i| map_keys.value(i) == wanted) {
                Some(i) if !map_values.is_null(i) => out.append_value(map_values.value(i)),
                _ => out.append_null(),
            }
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
                "Returns the value of an attribute from an attribute map, or NULL if absent.",
                "attr(span_attributes, 'http.route')",
            )
            .with_argument("map", "resource_attributes, span_attributes, or an event/link attribute map")
            .with_argument("key", "attribute key, e.g. 'http.route'")
            .build()
        }))
    }
}

fn is_string(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 | DataType::Null)
}
