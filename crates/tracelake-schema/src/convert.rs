//! OTLP → Arrow: turns `ExportTraceServiceRequest`s into `RecordBatch`es of the `spans` schema.
//!
//! Every span is validated before any of its values are appended, so a rejected span never
//! leaves a half-written row. Under [`AcceptMode::Partial`] (OTLP `partial_success`), valid spans
//! of a request are kept and the invalid ones are reported with a reason that names them.

use std::sync::Arc;

use arrow::array::{
    ArrayBuilder, ArrayRef, Int64Builder, ListArray, MapBuilder, MapFieldNames, StringBuilder, StructArray,
    TimestampNanosecondBuilder,
};
use arrow::buffer::OffsetBuffer;
use arrow::record_batch::RecordBatch;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span};

use crate::attributes::render_attributes;
use crate::limits::{AttributeLimits, LimitCounts, limit_attributes};
use crate::error::{Error, Result, SpanRejection};
use crate::schema::{
    AttributeScope, DEDICATED_COLUMNS, UNKNOWN_SERVICE, event_fields, event_item_field, link_fields,
    link_item_field, span_kind_name, spans_schema, status_code_name,
};

/// What to do with a request that contains invalid spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptMode {
    /// Keep the valid spans, report the invalid ones (OTLP `partial_success`).
    Partial,
    /// Refuse the whole request if any span is invalid.
    AllOrNothing,
}

/// The result of converting one or more requests.
#[derive(Debug)]
pub struct Conversion {
    /// The accepted spans.
    pub batch: RecordBatch,
    /// The refused spans, with reasons (empty under `AllOrNothing`, which errors instead).
    pub rejected: Vec<SpanRejection>,
    /// Attributes dropped or truncated by the [`AttributeLimits`].
    pub limited: LimitCounts,
}

/// Converts a whole request, without attribute limits.
pub fn convert_request(request: &ExportTraceServiceRequest, mode: AcceptMode) -> Result<Conversion> {
    convert_resource_spans(&request.resource_spans, mode, AttributeLimits::UNLIMITED)
}

/// Converts a whole request under attribute limits.
pub fn convert_request_with(
    request: &ExportTraceServiceRequest,
    mode: AcceptMode,
    limits: AttributeLimits,
) -> Result<Conversion> {
    convert_resource_spans(&request.resource_spans, mode, limits)
}

/// Converts a list of `ResourceSpans` (the body of a request).
pub fn convert_resource_spans(
    resource_spans: &[ResourceSpans],
    mode: AcceptMode,
    limits: AttributeLimits,
) -> Result<Conversion> {
    let mut builder = SpanBatchBuilder::with_capacity(span_count(resource_spans)).with_limits(limits);
    let rejected = builder.append_resource_spans(resource_spans);
    if mode == AcceptMode::AllOrNothing && !rejected.is_empty() {
        return Err(Error::InvalidSpans(rejected));
    }
    let limited = builder.take_limit_counts();
    Ok(Conversion { batch: builder.finish()?, rejected, limited })
}

/// Number of spans in a request body.
pub fn span_count(resource_spans: &[ResourceSpans]) -> usize {
    resource_spans.iter().flat_map(|r| &r.scope_spans).map(|s| s.spans.len()).sum()
}

/// Accumulates spans into Arrow builders for the `spans` schema.
pub struct SpanBatchBuilder {
    trace_id: StringBuilder,
    span_id: StringBuilder,
    parent_span_id: StringBuilder,
    trace_state: StringBuilder,
    service_name: StringBuilder,
    span_name: StringBuilder,
    span_kind: StringBuilder,
    start_time: TimestampNanosecondBuilder,
    end_time: TimestampNanosecondBuilder,
    duration_ns: Int64Builder,
    status_code: StringBuilder,
    status_message: StringBuilder,
    resource_attributes: MapBuilder<StringBuilder, StringBuilder>,
    span_attributes: MapBuilder<StringBuilder, StringBuilder>,
    scope_name: StringBuilder,
    scope_version: StringBuilder,
    events: NestedListBuilder,
    links: NestedListBuilder,
    dedicated: Vec<StringBuilder>,
    rows: usize,
    limits: AttributeLimits,
    limited: LimitCounts,
}

/// A span that passed validation, with its values already decoded.
struct ValidSpan {
    start: i64,
    end: i64,
    parent: Option<String>,
    events: Vec<i64>,
}

impl SpanBatchBuilder {
    /// A builder with room for `capacity` spans.
    pub fn with_capacity(capacity: usize) -> Self {
        let s = || StringBuilder::with_capacity(capacity, capacity * 8);
        let ts = || TimestampNanosecondBuilder::with_capacity(capacity).with_timezone("UTC");
        Self {
            trace_id: StringBuilder::with_capacity(capacity, capacity * 32),
            span_id: StringBuilder::with_capacity(capacity, capacity * 16),
            parent_span_id: StringBuilder::with_capacity(capacity, capacity * 16),
            trace_state: s(),
            service_name: s(),
            span_name: s(),
            span_kind: s(),
            start_time: ts(),
            end_time: ts(),
            duration_ns: Int64Builder::with_capacity(capacity),
            status_code: s(),
            status_message: s(),
            resource_attributes: new_map_builder(),
            span_attributes: new_map_builder(),
            scope_name: s(),
            scope_version: s(),
            events: NestedListBuilder::new(),
            links: NestedListBuilder::new(),
            dedicated: DEDICATED_COLUMNS.iter().map(|_| s()).collect(),
            rows: 0,
            limits: AttributeLimits::UNLIMITED,
            limited: LimitCounts::default(),
        }
    }

    /// Applies `limits` to every attribute list appended from now on.
    pub fn with_limits(mut self, limits: AttributeLimits) -> Self {
        self.limits = limits;
        self
    }

    /// What the limits dropped or truncated since the last call.
    pub fn take_limit_counts(&mut self) -> LimitCounts {
        std::mem::take(&mut self.limited)
    }

    /// Renders an attribute list under the limits.
    fn render<'a>(&mut self, attributes: &'a [KeyValue]) -> Vec<(&'a str, Option<String>)> {
        let mut rendered = render_attributes(attributes);
        limit_attributes(&mut rendered, self.limits, &mut self.limited);
        rendered
    }

    /// Number of spans appended so far.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// True when no span has been appended.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Appends every valid span of `resource_spans`; returns the rejected ones.
    pub fn append_resource_spans(&mut self, resource_spans: &[ResourceSpans]) -> Vec<SpanRejection> {
        let mut rejected = Vec::new();
        for (ri, rs) in resource_spans.iter().enumerate() {
            let resource_attrs: &[KeyValue] = rs.resource.as_ref().map(|r| &r.attributes[..]).unwrap_or(&[]);
            let resource = ResourceContext::new(resource_attrs, self.render(resource_attrs));
            for (si, ss) in rs.scope_spans.iter().enumerate() {
                for (pi, span) in ss.spans.iter().enumerate() {
                    match validate(span) {
                        Ok(valid) => self.append_valid(&resource, ss.scope.as_ref(), span, valid),
                        Err(reason) => rejected.push(SpanRejection {
                            resource_index: ri,
                            scope_index: si,
                            span_index: pi,
                            span_name: span.name.clone(),
                            reason,
                        }),
                    }
                }
            }
        }
        rejected
    }

    fn append_valid(
        &mut self,
        resource: &ResourceContext<'_>,
        scope: Option<&InstrumentationScope>,
        span: &Span,
        valid: ValidSpan,
    ) {
        self.trace_id.append_value(hex::encode(&span.trace_id));
        self.span_id.append_value(hex::encode(&span.span_id));
        self.parent_span_id.append_option(valid.parent);
        self.trace_state.append_option((!span.trace_state.is_empty()).then_some(&span.trace_state));
        self.service_name.append_value(&resource.service_name);
        self.span_name.append_value(&span.name);
        self.span_kind.append_value(span_kind_name(span.kind));
        self.start_time.append_value(valid.start);
        self.end_time.append_value(valid.end);
        self.duration_ns.append_value(valid.end - valid.start);
        let status = span.status.as_ref();
        self.status_code.append_value(status_code_name(status.map_or(0, |s| s.code)));
        self.status_message
            .append_option(status.map(|s| s.message.as_str()).filter(|m| !m.is_empty()));
        append_map(&mut self.resource_attributes, &resource.attributes);
        let span_attrs = self.render(&span.attributes);
        append_map(&mut self.span_attributes, &span_attrs);
        self.scope_name.append_option(scope.map(|s| s.name.as_str()).filter(|n| !n.is_empty()));
        self.scope_version.append_option(scope.map(|s| s.version.as_str()).filter(|v| !v.is_empty()));

        for (event, time) in span.events.iter().zip(valid.events) {
            self.events.time.append_value(time);
            self.events.name.append_value(&event.name);
            let attrs = self.render(&event.attributes);
            append_map(&mut self.events.attributes, &attrs);
        }
        self.events.close_row();
        for link in &span.links {
            self.links.time_or_trace.append_value(hex::encode(&link.trace_id));
            self.links.name.append_value(hex::encode(&link.span_id));
            let attrs = self.render(&link.attributes);
            append_map(&mut self.links.attributes, &attrs);
        }
        self.links.close_row();

        for (builder, dedicated) in self.dedicated.iter_mut().zip(DEDICATED_COLUMNS) {
            let attrs = match dedicated.scope {
                AttributeScope::Resource => &resource.attributes,
                AttributeScope::Span => &span_attrs,
            };
            builder.append_option(lookup(attrs, dedicated.key));
        }
        self.rows += 1;
    }

    /// Builds the batch and resets the builder.
    pub fn finish(&mut self) -> Result<RecordBatch> {
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(self.trace_id.finish()),
            Arc::new(self.span_id.finish()),
            Arc::new(self.parent_span_id.finish()),
            Arc::new(self.trace_state.finish()),
            Arc::new(self.service_name.finish()),
            Arc::new(self.span_name.finish()),
            Arc::new(self.span_kind.finish()),
            Arc::new(self.start_time.finish()),
            Arc::new(self.end_time.finish()),
            Arc::new(self.duration_ns.finish()),
            Arc::new(self.status_code.finish()),
            Arc::new(self.status_message.finish()),
            Arc::new(self.resource_attributes.finish()),
            Arc::new(self.span_attributes.finish()),
            Arc::new(self.scope_name.finish()),
            Arc::new(self.scope_version.finish()),
            self.events.finish(event_item_field(), event_fields())?,
            self.links.finish(link_item_field(), link_fields())?,
        ];
        columns.extend(self.dedicated.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
        self.rows = 0;
        Ok(RecordBatch::try_new(spans_schema(), columns)?)
    }
}

/// Values shared by all spans of one resource.
struct ResourceContext<'a> {
    service_name: String,
    attributes: Vec<(&'a str, Option<String>)>,
}

impl<'a> ResourceContext<'a> {
    fn new(attributes: &'a [KeyValue], rendered: Vec<(&'a str, Option<String>)>) -> Self {
        let service_name = attributes
            .iter()
            .rev()
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                Value::StringValue(s) if !s.is_empty() => Some(s.clone()),
                _ => None,
            })
            .unwrap_or_else(|| UNKNOWN_SERVICE.to_owned());
        Self { service_name: crate::limits::cut_service_name(service_name), attributes: rendered }
    }
}

fn lookup<'v>(attrs: &'v [(&str, Option<String>)], key: &str) -> Option<&'v str> {
    attrs.iter().find(|(k, _)| *k == key).and_then(|(_, v)| v.as_deref())
}

/// Checks one span against the OTLP rules tracelake relies on; the reason names the field.
fn validate(span: &Span) -> std::result::Result<ValidSpan, String> {
    if span.trace_id.len() != 16 {
        return Err(format!("trace_id must be 16 bytes, got {}", span.trace_id.len()));
    }
    if span.trace_id.iter().all(|b| *b == 0) {
        return Err("trace_id is all zeros (invalid per W3C trace context)".into());
    }
    if span.span_id.len() != 8 {
        return Err(format!("span_id must be 8 bytes, got {}", span.span_id.len()));
    }
    if span.span_id.iter().all(|b| *b == 0) {
        return Err("span_id is all zeros (invalid per W3C trace context)".into());
    }
    let parent = match span.parent_span_id.len() {
        0 => None,
        8 if span.parent_span_id.iter().all(|b| *b == 0) => None,
        8 => Some(hex::encode(&span.parent_span_id)),
        n => return Err(format!("parent_span_id must be empty (root) or 8 bytes, got {n}")),
    };
    let start = timestamp(span.start_time_unix_nano, "start_time_unix_nano")?;
    let end = timestamp(span.end_time_unix_nano, "end_time_unix_nano")?;
    if start == 0 {
        return Err("start_time_unix_nano is missing (0)".into());
    }
    if end < start {
        return Err(format!("end_time_unix_nano ({end}) is before start_time_unix_nano ({start})"));
    }
    let mut events = Vec::with_capacity(span.events.len());
    for (i, event) in span.events.iter().enumerate() {
        events.push(timestamp(event.time_unix_nano, &format!("events[{i}].time_unix_nano"))?);
    }
    for (i, link) in span.links.iter().enumerate() {
        if link.trace_id.len() != 16 || link.span_id.len() != 8 {
            return Err(format!(
                "links[{i}]: trace_id must be 16 bytes and span_id 8 bytes, got {} and {}",
                link.trace_id.len(),
                link.span_id.len()
            ));
        }
    }
    Ok(ValidSpan { start, end, parent, events })
}

fn timestamp(nanos: u64, field: &str) -> std::result::Result<i64, String> {
    i64::try_from(nanos).map_err(|_| format!("{field} ({nanos}) is past the year 2262"))
}

fn new_map_builder() -> MapBuilder<StringBuilder, StringBuilder> {
    let names = MapFieldNames { entry: "entries".into(), key: "keys".into(), value: "values".into() };
    MapBuilder::new(Some(names), StringBuilder::new(), StringBuilder::new())
}

fn append_map(builder: &mut MapBuilder<StringBuilder, StringBuilder>, attrs: &[(&str, Option<String>)]) {
    for (k, v) in attrs {
        builder.keys().append_value(k);
        builder.values().append_option(v.as_deref());
    }
    // Appending a non-null map entry never fails (only key/value length mismatch does).
    builder.append(true).expect("keys and values appended in pairs");
}

/// `List<Struct<a, b, attributes>>` with two leading scalar fields: events (time, name) and
/// links (trace_id, span_id). The first field's builder differs, so it is an enum.
struct NestedListBuilder {
    offsets: Vec<i32>,
    time: TimestampNanosecondBuilder,
    time_or_trace: StringBuilder,
    name: StringBuilder,
    attributes: MapBuilder<StringBuilder, StringBuilder>,
}

impl NestedListBuilder {
    fn new() -> Self {
        Self {
            offsets: vec![0],
            time: TimestampNanosecondBuilder::new().with_timezone("UTC"),
            time_or_trace: StringBuilder::new(),
            name: StringBuilder::new(),
            attributes: new_map_builder(),
        }
    }

    fn close_row(&mut self) {
        let len = i32::try_from(self.name.len()).expect("fewer than 2^31 events per batch");
        self.offsets.push(len);
    }

    fn finish(
        &mut self,
        item: Arc<arrow::datatypes::Field>,
        fields: arrow::datatypes::Fields,
    ) -> Result<ArrayRef> {
        let first: ArrayRef = if matches!(fields[0].data_type(), arrow::datatypes::DataType::Timestamp(..)) {
            Arc::new(self.time.finish())
        } else {
            Arc::new(self.time_or_trace.finish())
        };
        let children: Vec<ArrayRef> = vec![first, Arc::new(self.name.finish()), Arc::new(self.attributes.finish())];
        let structs = StructArray::try_new(fields, children, None)?;
        let offsets = OffsetBuffer::new(std::mem::replace(&mut self.offsets, vec![0]).into());
        Ok(Arc::new(ListArray::try_new(item, offsets, Arc::new(structs), None)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray, MapArray};
    use arrow::datatypes::TimestampNanosecondType;
    use opentelemetry_proto::tonic::common::v1::AnyValue;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ScopeSpans, Status, span::Event, span::Link};

    fn kv(key: &str, value: Value) -> KeyValue {
        KeyValue { key: key.into(), value: Some(AnyValue { value: Some(value) }), ..Default::default() }
    }

    fn span(name: &str, trace: u8, id: u8, parent: Option<u8>) -> Span {
        Span {
            trace_id: vec![trace; 16],
            span_id: vec![id; 8],
            parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
            name: name.into(),
            kind: 3,
            start_time_unix_nano: 1_000,
            end_time_unix_nano: 1_500,
            ..Default::default()
        }
    }

    fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![
                        kv("service.name", Value::StringValue("cart".into())),
                        kv("service.version", Value::StringValue("v2".into())),
                    ],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
                ..Default::default()
            }],
        }
    }

    fn map_get(map: &MapArray, row: usize, key: &str) -> Option<String> {
        let entries = map.value(row);
        let keys = entries.column(0).as_string::<i32>();
        let values = entries.column(1).as_string::<i32>();
        (0..keys.len()).find(|&i| keys.value(i) == key).map(|i| values.value(i).to_owned())
    }

    #[test]
    fn converts_every_field() {
        let mut s = span("GET /cart", 0xab, 0x01, Some(0x02));
        s.attributes = vec![
            kv("http.route", Value::StringValue("/cart".into())),
            kv("http.response.status_code", Value::IntValue(500)),
        ];
        s.status = Some(Status { code: 2, message: "boom".into() });
        s.trace_state = "k=v".into();
        s.events = vec![Event { time_unix_nano: 1_200, name: "exception".into(), ..Default::default() }];
        s.links = vec![Link { trace_id: vec![0x11; 16], span_id: vec![0x22; 8], ..Default::default() }];
        let c = convert_request(&request(vec![s]), AcceptMode::AllOrNothing).unwrap();
        let b = &c.batch;
        assert_eq!(b.num_rows(), 1);
        let str_col = |name: &str| b.column_by_name(name).unwrap().as_string::<i32>().value(0).to_owned();
        assert_eq!(str_col("trace_id"), "abababababababababababababababab");
        assert_eq!(str_col("span_id"), "0101010101010101");
        assert_eq!(str_col("parent_span_id"), "0202020202020202");
        assert_eq!(str_col("service_name"), "cart");
        assert_eq!(str_col("span_kind"), "CLIENT");
        assert_eq!(str_col("status_code"), "ERROR");
        assert_eq!(str_col("status_message"), "boom");
        assert_eq!(str_col("trace_state"), "k=v");
        assert_eq!(str_col("service_version"), "v2");
        assert_eq!(str_col("http_response_status_code"), "500");
        let dur = b.column_by_name("duration_ns").unwrap().as_primitive::<arrow::datatypes::Int64Type>();
        assert_eq!(dur.value(0), 500);
        let attrs = b.column_by_name("span_attributes").unwrap().as_map();
        assert_eq!(map_get(attrs, 0, "http.response.status_code").as_deref(), Some("500"));
        let events = b.column_by_name("events").unwrap().as_list::<i32>().value(0);
        let events = events.as_struct();
        assert_eq!(events.len(), 1);
        assert_eq!(events.column(0).as_primitive::<TimestampNanosecondType>().value(0), 1_200);
        let links = b.column_by_name("links").unwrap().as_list::<i32>().value(0);
        assert_eq!(links.as_struct().column(1).as_string::<i32>().value(0), "2222222222222222");
        assert!(b.column_by_name("scope_name").unwrap().is_null(0));
    }

    #[test]
    fn partial_acceptance_keeps_valid_spans() {
        let mut bad_trace = span("bad-trace", 0x01, 0x03, None);
        bad_trace.trace_id.truncate(15);
        let zero_trace = span("zero-trace", 0x00, 0x04, None);
        let mut bad_parent = span("bad-parent", 0x01, 0x05, None);
        bad_parent.parent_span_id = vec![1, 2, 3];
        let mut backwards = span("backwards", 0x01, 0x06, None);
        backwards.end_time_unix_nano = 10;
        let req = request(vec![span("ok1", 1, 1, None), bad_trace, zero_trace, bad_parent, backwards, span("ok2", 1, 2, Some(1))]);

        let c = convert_request(&req, AcceptMode::Partial).unwrap();
        assert_eq!(c.batch.num_rows(), 2);
        let names: Vec<_> = c.rejected.iter().map(|r| r.span_name.as_str()).collect();
        assert_eq!(names, ["bad-trace", "zero-trace", "bad-parent", "backwards"]);
        assert!(c.rejected[0].to_string().contains("trace_id must be 16 bytes, got 15"));
        assert!(c.rejected[0].to_string().contains("spans[1]"));
        assert!(c.batch.column_by_name("parent_span_id").unwrap().is_null(0));

        let err = convert_request(&req, AcceptMode::AllOrNothing).unwrap_err().to_string();
        assert!(err.starts_with("4 invalid span(s)"), "{err}");
    }

    #[test]
    fn missing_service_name_and_empty_request() {
        let mut req = request(vec![span("x", 1, 1, None)]);
        req.resource_spans[0].resource = None;
        let c = convert_request(&req, AcceptMode::AllOrNothing).unwrap();
        let svc = c.batch.column_by_name("service_name").unwrap().as_string::<i32>().value(0).to_owned();
        assert_eq!(svc, "unknown_service");
        let empty = convert_request(&ExportTraceServiceRequest::default(), AcceptMode::Partial).unwrap();
        assert_eq!(empty.batch.num_rows(), 0);
    }

    #[test]
    fn builder_is_reusable_after_finish() {
        let mut b = SpanBatchBuilder::with_capacity(4);
        let req = request(vec![span("a", 1, 1, None), span("b", 1, 2, Some(1))]);
        assert!(b.append_resource_spans(&req.resource_spans).is_empty());
        assert_eq!(b.finish().unwrap().num_rows(), 2);
        assert!(b.append_resource_spans(&req.resource_spans[..]).is_empty());
        let second = b.finish().unwrap();
        assert_eq!(second.num_rows(), 2);
        assert_eq!(second.column_by_name("events").unwrap().as_list::<i32>().value_offsets(), &[0, 0, 0]);
    }
}
