//! A trace's spans (rows of `spans`) back into OTLP JSON — the shape `POST /v1/traces` takes,
//! so any OTLP-aware tool can read it. Spans are grouped by resource (its attributes) and then
//! by instrumentation scope. Attribute values come back as `stringValue`s: tracelake stores
//! them rendered as strings (SPEC.md), so the original type of an int or bool is not kept.
//!
//! [`TraceJsonStyle::TempoBatches`] wraps the same resource spans as `{"batches": [...]}`, the
//! shape of Grafana Tempo's `/api/traces/{id}` (v1).

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::json;
use serde_json::{Map, Value, json};

use crate::error::QueryError;

/// The JSON envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceJsonStyle {
    /// `{"resourceSpans": [...]}` (an OTLP `ExportTraceServiceRequest`).
    Otlp,
    /// `{"batches": [...]}` (Tempo v1).
    TempoBatches,
}

const KINDS: [&str; 6] = ["UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER"];
const STATUSES: [&str; 3] = ["UNSET", "OK", "ERROR"];

/// Converts rows of `spans` (all columns) to OTLP JSON.
pub fn trace_to_otlp_json(batches: &[RecordBatch], style: TraceJsonStyle) -> Result<Value, QueryError> {
    // resource attributes (as JSON text, the grouping key) → scope (name, version) → spans
    let mut resources: BTreeMap<String, (Value, BTreeMap<(String, String), Vec<Value>>)> = BTreeMap::new();
    for batch in batches {
        for row in rows_as_json(batch)? {
            let resource = row.get("resource_attributes").cloned().unwrap_or(Value::Null);
            let scope = (text(&row, "scope_name"), text(&row, "scope_version"));
            let entry = resources.entry(resource.to_string()).or_insert_with(|| (resource, BTreeMap::new()));
            entry.1.entry(scope).or_default().push(span_json(&row));
        }
    }
    let resource_spans: Vec<Value> = resources
        .into_values()
        .map(|(attributes, scopes)| {
            let scope_spans: Vec<Value> = scopes
                .into_iter()
                .map(|((name, version), spans)| json!({ "scope": { "name": name, "version": version }, "spans": spans }))
                .collect();
            json!({ "resource": { "attributes": key_values(&attributes) }, "scopeSpans": scope_spans })
        })
        .collect();
    Ok(match style {
        TraceJsonStyle::Otlp => json!({ "resourceSpans": resource_spans }),
        TraceJsonStyle::TempoBatches => json!({ "batches": resource_spans }),
    })
}

fn text(row: &Map<String, Value>, key: &str) -> String {
    row.get(key).and_then(Value::as_str).unwrap_or_default().to_owned()
}

fn nanos(row: &Map<String, Value>, key: &str) -> String {
    row.get(key).and_then(Value::as_i64).map(|n| n.to_string()).unwrap_or_else(|| "0".into())
}

fn span_json(row: &Map<String, Value>) -> Value {
    let kind = KINDS.iter().position(|k| *k == text(row, "span_kind")).unwrap_or(0);
    let status = STATUSES.iter().position(|s| *s == text(row, "status_code")).unwrap_or(0);
    let mut span = json!({
        "traceId": text(row, "trace_id"),
        "spanId": text(row, "span_id"),
        "parentSpanId": text(row, "parent_span_id"),
        "name": text(row, "span_name"),
        "kind": kind,
        "startTimeUnixNano": nanos(row, "start_time"),
        "endTimeUnixNano": nanos(row, "end_time"),
        "attributes": key_values(row.get("span_attributes").unwrap_or(&Value::Null)),
        "status": { "code": status, "message": text(row, "status_message") },
    });
    if let Some(state) = row.get("trace_state").and_then(Value::as_str) {
        span["traceState"] = json!(state);
    }
    let events: Vec<Value> = list(row, "events")
        .iter()
        .map(|e| {
            json!({
                "timeUnixNano": e.get("time").and_then(Value::as_i64).unwrap_or(0).to_string(),
                "name": e.get("name").and_then(Value::as_str).unwrap_or_default(),
                "attributes": key_values(e.get("attributes").unwrap_or(&Value::Null)),
            })
        })
        .collect();
    let links: Vec<Value> = list(row, "links")
        .iter()
        .map(|l| {
            json!({
                "traceId": l.get("trace_id").and_then(Value::as_str).unwrap_or_default(),
                "spanId": l.get("span_id").and_then(Value::as_str).unwrap_or_default(),
                "attributes": key_values(l.get("attributes").unwrap_or(&Value::Null)),
            })
        })
        .collect();
    span["events"] = Value::Array(events);
    span["links"] = Value::Array(links);
    span
}

fn list<'a>(row: &'a Map<String, Value>, key: &str) -> &'a [Value] {
    row.get(key).and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default()
}

/// A JSON object of string values (a rendered attribute map) as OTLP `KeyValue`s.
fn key_values(map: &Value) -> Vec<Value> {
    map.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| match v {
                    Value::Null => json!({ "key": k, "value": {} }),
                    Value::String(s) => json!({ "key": k, "value": { "stringValue": s } }),
                    other => json!({ "key": k, "value": { "stringValue": other.to_string() } }),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Each row as a JSON object, with every timestamp (also inside events) as integer nanoseconds.
fn rows_as_json(batch: &RecordBatch) -> Result<Vec<Map<String, Value>>, QueryError> {
    let internal = |e: &dyn std::fmt::Display| QueryError::Internal(format!("rendering the trace: {e}"));
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        let target = without_timestamps(field.data_type());
        let column = if &target == field.data_type() { Arc::clone(column) } else { cast(column, &target).map_err(|e| internal(&e))? };
        fields.push(Field::new(field.name(), target, true));
        columns.push(column);
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(|e| internal(&e))?;
    let mut writer = json::WriterBuilder::new().with_explicit_nulls(true).build::<_, json::writer::JsonArray>(Vec::new());
    writer.write(&batch).map_err(|e| internal(&e))?;
    writer.finish().map_err(|e| internal(&e))?;
    let rows: Vec<Map<String, Value>> = serde_json::from_slice(&writer.into_inner()).map_err(|e| internal(&e))?;
    Ok(rows)
}

/// `t` with every `Timestamp` (at any depth) replaced by `Int64`.
fn without_timestamps(t: &DataType) -> DataType {
    match t {
        DataType::Timestamp(..) => DataType::Int64,
        DataType::List(f) => DataType::List(Arc::new(f.as_ref().clone().with_data_type(without_timestamps(f.data_type())))),
        DataType::Struct(fields) => DataType::Struct(
            fields.iter().map(|f| Arc::new(f.as_ref().clone().with_data_type(without_timestamps(f.data_type())))).collect(),
        ),
        other => other.clone(),
    }
}
