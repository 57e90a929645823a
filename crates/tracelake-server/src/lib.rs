//! Query serving for `tracelake serve`: Arrow Flight SQL (BI tools, ADBC, JDBC) and an HTTP
//! query API, both over one [`QueryEngine`] so that both enforce the same safety rules.
//!
//! - [`engine`]: read-only planning, `?` placeholders and parameters, per-query memory limit,
//!   timeout with cancellation, concurrency limit with a bounded queue.
//! - [`deadline`]: timeout and cancellation checked inside every operator of a plan.
//! - [`error`]: [`QueryError`] and its mapping to gRPC codes and HTTP statuses.
//! - [`placeholders`]: `?` → `$n` on SQL tokens.
//! - [`metrics`]: query counters and latency histogram.
//! - [`auth`]: optional bearer-token authentication.
//! - [`flight`]: the Arrow Flight SQL service (statements, prepared statements, metadata).
//! - [`http_api`]: `POST /api/v1/query` and `GET /api/traces/{trace_id}`.
//! - [`trace_json`]: a trace's rows back to OTLP JSON.
#![warn(missing_docs)]

pub mod auth;
pub mod deadline;
pub mod engine;
pub mod error;
pub mod flight;
pub mod http_api;
pub mod metrics;
pub mod placeholders;
pub mod trace_json;

pub use engine::{PlannedQuery, QueryEngine, QueryLimits, QueryStream, SessionSource};
pub use error::QueryError;
pub use auth::Auth;
pub use flight::TracelakeFlightSql;
