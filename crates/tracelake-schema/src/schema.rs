//! The Arrow schema of the `spans` table, as fixed by SPEC.md ("The `spans` table"),
//! plus dedicated columns for hot attributes (the maps still hold those attributes).
//!
//! Partition columns (`date`, `hour`, `service`) are not stored in the files; they come from
//! the directory layout and are added by the table provider.

use std::sync::{Arc, LazyLock};

use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};

/// Column names of the `spans` table.
pub mod col {
    #![allow(missing_docs)]
    pub const TRACE_ID: &str = "trace_id";
    pub const SPAN_ID: &str = "span_id";
    pub const PARENT_SPAN_ID: &str = "parent_span_id";
    pub const TRACE_STATE: &str = "trace_state";
    pub const SERVICE_NAME: &str = "service_name";
    pub const SPAN_NAME: &str = "span_name";
    pub const SPAN_KIND: &str = "span_kind";
    pub const START_TIME: &str = "start_time";
    pub const END_TIME: &str = "end_time";
    pub const DURATION_NS: &str = "duration_ns";
    pub const STATUS_CODE: &str = "status_code";
    pub const STATUS_MESSAGE: &str = "status_message";
    pub const RESOURCE_ATTRIBUTES: &str = "resource_attributes";
    pub const SPAN_ATTRIBUTES: &str = "span_attributes";
    pub const SCOPE_NAME: &str = "scope_name";
    pub const SCOPE_VERSION: &str = "scope_version";
    pub const EVENTS: &str = "events";
    pub const LINKS: &str = "links";
    pub const SERVICE_VERSION: &str = "service_version";
    pub const DEPLOYMENT_ENVIRONMENT: &str = "deployment_environment";
    pub const HTTP_ROUTE: &str = "http_route";
    pub const HTTP_RESPONSE_STATUS_CODE: &str = "http_response_status_code";
    pub const DB_SYSTEM: &str = "db_system";
    /// Partition column: `YYYY-MM-DD` of `start_time` (UTC).
    pub const DATE: &str = "date";
    /// Partition column: hour of day (0–23) of `start_time` (UTC).
    pub const HOUR: &str = "hour";
    /// Partition column: `service.name`, the same value as `service_name`.
    pub const SERVICE: &str = "service";
}

/// Where a dedicated attribute column takes its value from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttributeScope {
    /// A resource attribute.
    Resource,
    /// A span attribute.
    Span,
}

/// A well-known attribute that is also stored in a column of its own (faster filters).
#[derive(Debug, Clone, Copy)]
pub struct DedicatedColumn {
    /// Column name in `spans`.
    pub column: &'static str,
    /// Attribute key in the map.
    pub key: &'static str,
    /// Which map the attribute lives in.
    pub scope: AttributeScope,
}

/// The dedicated attribute columns, in schema order.
pub const DEDICATED_COLUMNS: &[DedicatedColumn] = &[
    DedicatedColumn { column: col::SERVICE_VERSION, key: "service.version", scope: AttributeScope::Resource },
    DedicatedColumn {
        column: col::DEPLOYMENT_ENVIRONMENT,
        key: "deployment.environment",
        scope: AttributeScope::Resource,
    },
    DedicatedColumn { column: col::HTTP_ROUTE, key: "http.route", scope: AttributeScope::Span },
    DedicatedColumn {
        column: col::HTTP_RESPONSE_STATUS_CODE,
        key: "http.response.status_code",
        scope: AttributeScope::Span,
    },
    DedicatedColumn { column: col::DB_SYSTEM, key: "db.system", scope: AttributeScope::Span },
];

/// Version of the on-disk Parquet layout, written into each file's key/value metadata.
/// Bump it (and keep a reader for the old one) whenever the file schema changes.
pub const LAYOUT_VERSION: &str = "1";

/// Key of the layout version in Parquet key/value metadata.
pub const LAYOUT_VERSION_KEY: &str = "tracelake.layout_version";

/// `Timestamp(ns, "UTC")`.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
}

/// The struct field `entries` of `Map<Utf8, Utf8>` (keys non-null, values nullable).
pub fn map_entries_field() -> Arc<Field> {
    Arc::new(Field::new(
        "entries",
        DataType::Struct(Fields::from(vec![
            Field::new("keys", DataType::Utf8, false),
            Field::new("values", DataType::Utf8, true),
        ])),
        false,
    ))
}

/// `Map<Utf8, Utf8>` as used for attributes.
pub fn attribute_map_type() -> DataType {
    DataType::Map(map_entries_field(), false)
}

/// Fields of one event struct.
pub fn event_fields() -> Fields {
    Fields::from(vec![
        Field::new("time", timestamp_type(), false),
        Field::new("name", DataType::Utf8, false),
        Field::new("attributes", attribute_map_type(), false),
    ])
}

/// Fields of one link struct.
pub fn link_fields() -> Fields {
    Fields::from(vec![
        Field::new("trace_id", DataType::Utf8, false),
        Field::new("span_id", DataType::Utf8, false),
        Field::new("attributes", attribute_map_type(), false),
    ])
}

/// The list item field of `events`.
pub fn event_item_field() -> Arc<Field> {
    Arc::new(Field::new("item", DataType::Struct(event_fields()), false))
}

/// The list item field of `links`.
pub fn link_item_field() -> Arc<Field> {
    Arc::new(Field::new("item", DataType::Struct(link_fields()), false))
}

static SPANS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut fields = vec![
        Field::new(col::TRACE_ID, DataType::Utf8, false),
        Field::new(col::SPAN_ID, DataType::Utf8, false),
        Field::new(col::PARENT_SPAN_ID, DataType::Utf8, true),
        Field::new(col::TRACE_STATE, DataType::Utf8, true),
        Field::new(col::SERVICE_NAME, DataType::Utf8, false),
        Field::new(col::SPAN_NAME, DataType::Utf8, false),
        Field::new(col::SPAN_KIND, DataType::Utf8, false),
        Field::new(col::START_TIME, timestamp_type(), false),
        Field::new(col::END_TIME, timestamp_type(), false),
        Field::new(col::DURATION_NS, DataType::Int64, false),
        Field::new(col::STATUS_CODE, DataType::Utf8, false),
        Field::new(col::STATUS_MESSAGE, DataType::Utf8, true),
        Field::new(col::RESOURCE_ATTRIBUTES, attribute_map_type(), false),
        Field::new(col::SPAN_ATTRIBUTES, attribute_map_type(), false),
        Field::new(col::SCOPE_NAME, DataType::Utf8, true),
        Field::new(col::SCOPE_VERSION, DataType::Utf8, true),
        Field::new(col::EVENTS, DataType::List(event_item_field()), false),
        Field::new(col::LINKS, DataType::List(link_item_field()), false),
    ];
    fields.extend(DEDICATED_COLUMNS.iter().map(|d| Field::new(d.column, DataType::Utf8, true)));
    Arc::new(Schema::new(fields))
});

/// The schema of the span rows as stored in each Parquet file (no partition columns).
pub fn spans_schema() -> SchemaRef {
    Arc::clone(&SPANS_SCHEMA)
}

/// The default `service_name` when a resource has no `service.name` (as the OTel SDKs do).
pub const UNKNOWN_SERVICE: &str = "unknown_service";

/// Text of an OTLP span kind enum value, as stored in `span_kind`.
pub fn span_kind_name(kind: i32) -> &'static str {
    match kind {
        1 => "INTERNAL",
        2 => "SERVER",
        3 => "CLIENT",
        4 => "PRODUCER",
        5 => "CONSUMER",
        // 0 and any value this version of OTLP does not know.
        _ => "UNSPECIFIED",
    }
}

/// Text of an OTLP status code enum value, as stored in `status_code`.
pub fn status_code_name(code: i32) -> &'static str {
    match code {
        1 => "OK",
        2 => "ERROR",
        // 0 and unknown future values.
        _ => "UNSET",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_has_spec_columns_in_order() {
        let schema = spans_schema();
        let names: Vec<_> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(
            &names[..18],
            &[
                "trace_id", "span_id", "parent_span_id", "trace_state", "service_name", "span_name",
                "span_kind", "start_time", "end_time", "duration_ns", "status_code",
                "status_message", "resource_attributes", "span_attributes", "scope_name",
                "scope_version", "events", "links"
            ]
        );
        assert!(schema.field_with_name("parent_span_id").unwrap().is_nullable());
        assert!(!schema.field_with_name("trace_id").unwrap().is_nullable());
    }

    #[test]
    fn enum_names_cover_unknown_values() {
        assert_eq!(span_kind_name(2), "SERVER");
        assert_eq!(span_kind_name(42), "UNSPECIFIED");
        assert_eq!(status_code_name(2), "ERROR");
        assert_eq!(status_code_name(-1), "UNSET");
    }
}
