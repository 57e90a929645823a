//! Errors of the span model: invalid spans and undecodable payloads.

use std::fmt;

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why one span of a request was refused. Names the span so a user can find it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpanRejection {
    /// Index of the `ResourceSpans` in the request.
    pub resource_index: usize,
    /// Index of the `ScopeSpans` inside the resource.
    pub scope_index: usize,
    /// Index of the span inside the scope.
    pub span_index: usize,
    /// The span's name as sent.
    pub span_name: String,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for SpanRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "span '{}' (resourceSpans[{}].scopeSpans[{}].spans[{}]): {}",
            self.span_name, self.resource_index, self.scope_index, self.span_index, self.reason
        )
    }
}

/// Errors of the span model.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// At least one span is invalid and the caller asked for all-or-nothing acceptance.
    #[error("{} invalid span(s) in request; first: {}", .0.len(), .0[0])]
    InvalidSpans(Vec<SpanRejection>),

    /// The payload is not a valid OTLP protobuf message.
    #[error("invalid OTLP protobuf payload: {0}")]
    Protobuf(#[from] prost::DecodeError),

    /// The payload is not valid OTLP JSON.
    #[error("invalid OTLP JSON payload{}: {source}", line.map(|l| format!(" (line {l})")).unwrap_or_default())]
    Json {
        /// 1-based line number for JSON lines input.
        line: Option<usize>,
        /// The parser's error (carries line and column inside the document).
        source: serde_json::Error,
    },

    /// Building the Arrow batch failed (a bug, or memory exhaustion).
    #[error("building Arrow batch: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
}
