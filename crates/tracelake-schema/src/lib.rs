//! The span model of tracelake: the Arrow schema of the `spans` table (as fixed by SPEC.md)
//! and the conversion of OpenTelemetry OTLP trace requests into Arrow record batches.
//!
//! - [`schema`]: column names and the `spans` Arrow schema, including dedicated attribute columns.
//! - [`convert`]: `ExportTraceServiceRequest` / `ResourceSpans` → `RecordBatch`, with id
//!   validation and OTLP partial-success semantics.
//! - [`limits`]: attribute count and value-length limits (drop/truncate, counted).
//! - [`attributes`]: rendering of OTLP `AnyValue`s as strings (the map value format).
//! - [`decode`]: reading OTLP payloads (protobuf, JSON, JSON lines) into requests.
#![warn(missing_docs)]

pub mod attributes;
pub mod convert;
pub mod decode;
pub mod error;
pub mod limits;
pub mod schema;

pub use convert::{AcceptMode, Conversion, SpanBatchBuilder, convert_request, convert_request_with, span_count};
pub use limits::{AttributeLimits, LimitCounts};
pub use decode::{PayloadFormat, decode_payload};
pub use error::{Error, Result, SpanRejection};
pub use schema::spans_schema;

/// Re-export of the OTLP protobuf types used at this crate's API boundary.
pub use opentelemetry_proto::tonic as otlp;
