//! [`QueryError`]: what can go wrong with a client's query, classified so that every front end
//! answers with the right status (gRPC code / HTTP status) and DataFusion's own message.

use std::time::Duration;

use datafusion::error::DataFusionError;

use crate::engine::QueryLimits;

/// A query failure, by kind.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The SQL does not parse or does not plan (unknown column, type error, …).
    #[error("{0}")]
    InvalidSql(String),
    /// A table (or other object) the query names does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The statement is not allowed over the network (DDL, DML, COPY, SET, …).
    #[error("{0}")]
    NotAllowed(String),
    /// The query needed more memory than its limit.
    #[error("query exceeded its memory limit of {limit} bytes: {message}")]
    MemoryLimit {
        /// The limit.
        limit: usize,
        /// DataFusion's message (which operator, how much).
        message: String,
    },
    /// The query ran longer than the time limit and was cancelled.
    #[error("query exceeded the time limit of {} s and was cancelled", .0.as_secs_f64())]
    Timeout(Duration),
    /// Too many queries are running and waiting.
    #[error("server busy: {running} queries running and {queued} waiting; retry later")]
    Busy {
        /// Concurrency limit.
        running: usize,
        /// Queue limit.
        queued: usize,
    },
    /// Missing or wrong credentials.
    #[error("{0}")]
    Unauthenticated(String),
    /// The client stopped reading the results.
    #[error("query cancelled by the client")]
    Cancelled,
    /// A bug or an I/O failure on our side.
    #[error("internal error: {0}")]
    Internal(String),
}

impl QueryError {
    /// Classifies an error from parsing or planning (policy refusals included).
    pub fn from_query_error(e: tracelake_query::Error) -> Self {
        match e {
            tracelake_query::Error::DataFusion(e) => Self::from(e),
            tracelake_query::Error::Refused(m) => Self::NotAllowed(m),
            other => Self::Internal(other.to_string()),
        }
    }

    /// Classifies an error from execution.
    pub fn from_execution_error(e: DataFusionError, limits: QueryLimits) -> Self {
        match root(&e) {
            DataFusionError::ResourcesExhausted(message) => {
                Self::MemoryLimit { limit: limits.memory_bytes, message: message.clone() }
            }
            DataFusionError::External(inner) => match inner.downcast_ref::<QueryError>() {
                Some(QueryError::Timeout(d)) => Self::Timeout(*d),
                Some(QueryError::Cancelled) => Self::Cancelled,
                _ => Self::from(e),
            },
            _ => Self::from(e),
        }
    }

    /// A stable, machine-readable code (HTTP API `error.code`).
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidSql(_) => "invalid_sql",
            Self::NotFound(_) => "not_found",
            Self::NotAllowed(_) => "not_allowed",
            Self::MemoryLimit { .. } => "memory_limit",
            Self::Timeout(_) => "timeout",
            Self::Busy { .. } => "busy",
            Self::Unauthenticated(_) => "unauthenticated",
            Self::Cancelled => "cancelled",
            Self::Internal(_) => "internal",
        }
    }

    /// The HTTP status of this error.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::InvalidSql(_) => 400,
            Self::NotFound(_) => 404,
            Self::NotAllowed(_) => 403,
            Self::MemoryLimit { .. } => 422,
            Self::Timeout(_) => 408,
            Self::Busy { .. } => 503,
            Self::Unauthenticated(_) => 401,
            Self::Cancelled => 499,
            Self::Internal(_) => 500,
        }
    }

    /// The gRPC status of this error.
    pub fn to_status(&self) -> tonic::Status {
        let message = self.to_string();
        match self {
            Self::InvalidSql(_) => tonic::Status::invalid_argument(message),
            Self::NotFound(_) => tonic::Status::not_found(message),
            Self::NotAllowed(_) => tonic::Status::permission_denied(message),
            Self::MemoryLimit { .. } | Self::Busy { .. } => tonic::Status::resource_exhausted(message),
            Self::Timeout(_) => tonic::Status::deadline_exceeded(message),
            Self::Unauthenticated(_) => tonic::Status::unauthenticated(message),
            Self::Cancelled => tonic::Status::cancelled(message),
            Self::Internal(_) => tonic::Status::internal(message),
        }
    }
}

impl From<DataFusionError> for QueryError {
    fn from(e: DataFusionError) -> Self {
        let message = e.strip_backtrace();
        match root(&e) {
            DataFusionError::SQL(..) => Self::InvalidSql(message),
            DataFusionError::Plan(m) if m.contains("not found") && m.starts_with("table") => Self::NotFound(message),
            DataFusionError::Plan(m) if is_policy_refusal(m) => Self::NotAllowed(message),
            DataFusionError::Plan(_) | DataFusionError::SchemaError(..) | DataFusionError::NotImplemented(_) => {
                Self::InvalidSql(message)
            }
            DataFusionError::ResourcesExhausted(m) => Self::MemoryLimit { limit: 0, message: m.clone() },
            // Failures on the query's own values (division by zero, a bad cast, an overflow) are
            // the client's to fix: 400, not "the server is broken".
            DataFusionError::ArrowError(e, _) if is_value_error(e) => Self::InvalidSql(message),
            DataFusionError::Execution(_) => Self::InvalidSql(message),
            _ => Self::Internal(message),
        }
    }
}

/// DataFusion's `SQLOptions` refusals ("DDL not supported: …", "DML not supported: …",
/// "Statement not supported: …").
fn is_policy_refusal(message: &str) -> bool {
    ["DDL not supported", "DML not supported", "Statement not supported"].iter().any(|p| message.starts_with(p))
}

fn is_value_error(e: &datafusion::arrow::error::ArrowError) -> bool {
    use datafusion::arrow::error::ArrowError as A;
    matches!(
        e,
        A::DivideByZero
            | A::CastError(_)
            | A::ParseError(_)
            | A::ComputeError(_)
            | A::InvalidArgumentError(_)
            | A::ArithmeticOverflow(_)
    )
}

/// The innermost error (through `Context` and `Shared` wrappers).
fn root(e: &DataFusionError) -> &DataFusionError {
    match e {
        DataFusionError::Context(_, inner) => root(inner),
        DataFusionError::Shared(inner) => root(inner),
        DataFusionError::Diagnostic(_, inner) => root(inner),
        other => other,
    }
}
