//! Rendering of OTLP attribute values as strings, the value format of the attribute maps.
//!
//! SPEC.md: booleans `true`/`false`, integers in decimal, doubles so that they parse back to
//! the same value, bytes as base64, arrays and kvlists as JSON. An empty `AnyValue` is NULL.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use serde_json::{Map as JsonMap, Value as Json};

/// Renders one attribute value; `None` for an empty `AnyValue`.
pub fn render_any_value(value: &AnyValue) -> Option<String> {
    match value.value.as_ref()? {
        Value::StringValue(s) => Some(s.clone()),
        Value::BoolValue(b) => Some(b.to_string()),
        Value::IntValue(i) => Some(i.to_string()),
        Value::DoubleValue(d) => Some(render_double(*d)),
        Value::BytesValue(b) => Some(BASE64.encode(b)),
        Value::ArrayValue(a) => Some(Json::Array(a.values.iter().map(to_json).collect()).to_string()),
        Value::KvlistValue(kv) => Some(Json::Object(kvlist_to_json(&kv.values)).to_string()),
        // A string-table reference is only meaningful in the profiles signal; traces have no
        // string table to resolve it against.
        Value::StringValueStrindex(_) => None,
    }
}

/// Shortest text that parses back to the same `f64` (Rust's `Display` is round-trip exact);
/// non-finite values as `NaN`, `Infinity`, `-Infinity` (the spellings JSON tools accept).
pub fn render_double(d: f64) -> String {
    if d.is_nan() {
        "NaN".to_owned()
    } else if d.is_infinite() {
        if d > 0.0 { "Infinity".to_owned() } else { "-Infinity".to_owned() }
    } else {
        d.to_string()
    }
}

fn kvlist_to_json(values: &[KeyValue]) -> JsonMap<String, Json> {
    values
        .iter()
        .map(|kv| (kv.key.clone(), kv.value.as_ref().map(to_json).unwrap_or(Json::Null)))
        .collect()
}

fn to_json(value: &AnyValue) -> Json {
    match &value.value {
        None => Json::Null,
        Some(Value::StringValue(s)) => Json::String(s.clone()),
        Some(Value::BoolValue(b)) => Json::Bool(*b),
        Some(Value::IntValue(i)) => Json::from(*i),
        Some(Value::DoubleValue(d)) => serde_json::Number::from_f64(*d)
            .map(Json::Number)
            .unwrap_or_else(|| Json::String(render_double(*d))),
        Some(Value::BytesValue(b)) => Json::String(BASE64.encode(b)),
        Some(Value::ArrayValue(a)) => Json::Array(a.values.iter().map(to_json).collect()),
        Some(Value::KvlistValue(kv)) => Json::Object(kvlist_to_json(&kv.values)),
        Some(Value::StringValueStrindex(_)) => Json::Null,
    }
}

/// Key/value pairs of an attribute list, rendered, with duplicate keys resolved
/// "last one wins" (OTLP requires unique keys; some senders do not comply).
pub fn render_attributes(attributes: &[KeyValue]) -> Vec<(&str, Option<String>)> {
    let mut out: Vec<(&str, Option<String>)> = Vec::with_capacity(attributes.len());
    // Linear search is fastest for the usual handful of attributes; an index keeps
    // hostile requests with huge attribute lists linear.
    let mut index: Option<std::collections::HashMap<&str, usize>> =
        (attributes.len() > 32).then(std::collections::HashMap::new);
    for kv in attributes {
        let rendered = kv.value.as_ref().and_then(render_any_value);
        let key = kv.key.as_str();
        let existing = match &mut index {
            Some(index) => index.get(key).copied(),
            None => out.iter().position(|(k, _)| *k == key),
        };
        match existing {
            Some(i) => out[i].1 = rendered,
            None => {
                if let Some(index) = &mut index {
                    index.insert(key, out.len());
                }
                out.push((key, rendered));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};

    fn v(value: Value) -> AnyValue {
        AnyValue { value: Some(value) }
    }

    #[test]
    fn scalars_render_as_spec_says() {
        assert_eq!(render_any_value(&v(Value::StringValue("x y".into()))).unwrap(), "x y");
        assert_eq!(render_any_value(&v(Value::BoolValue(false))).unwrap(), "false");
        assert_eq!(render_any_value(&v(Value::IntValue(-9_007_199_254_740_993))).unwrap(), "-9007199254740993");
        assert_eq!(render_any_value(&v(Value::BytesValue(vec![0xde, 0xad, 0xbe, 0xef]))).unwrap(), "3q2+7w==");
        assert_eq!(render_any_value(&AnyValue { value: None }), None);
    }

    #[test]
    fn doubles_round_trip() {
        for d in [0.1, 1.0 / 3.0, 1e300, -2.5e-310, 123456789.125, 0.0] {
            let s = render_any_value(&v(Value::DoubleValue(d))).unwrap();
            assert_eq!(s.parse::<f64>().unwrap(), d, "{s}");
        }
        assert_eq!(render_double(f64::NAN), "NaN");
        assert_eq!(render_double(f64::NEG_INFINITY), "-Infinity");
    }

    #[test]
    fn arrays_and_kvlists_are_json() {
        let arr = v(Value::ArrayValue(ArrayValue {
            values: vec![v(Value::StringValue("a".into())), v(Value::IntValue(2)), v(Value::BoolValue(true))],
        }));
        assert_eq!(render_any_value(&arr).unwrap(), r#"["a",2,true]"#);
        let kv = v(Value::KvlistValue(KeyValueList {
            values: vec![
                KeyValue { key: "k".into(), value: Some(v(Value::DoubleValue(1.5))), ..Default::default() },
                KeyValue { key: "n".into(), value: Some(arr.clone()), ..Default::default() },
            ],
        }));
        assert_eq!(render_any_value(&kv).unwrap(), r#"{"k":1.5,"n":["a",2,true]}"#);
    }

    #[test]
    fn duplicate_keys_last_wins() {
        let attrs = vec![
            KeyValue { key: "a".into(), value: Some(v(Value::IntValue(1))), ..Default::default() },
            KeyValue { key: "b".into(), value: Some(v(Value::IntValue(2))), ..Default::default() },
            KeyValue { key: "a".into(), value: Some(v(Value::IntValue(3))), ..Default::default() },
        ];
        let r = render_attributes(&attrs);
        assert_eq!(r, vec![("a", Some("3".to_owned())), ("b", Some("2".to_owned()))]);
    }
}
