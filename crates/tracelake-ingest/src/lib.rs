//! The durable ingest path of `tracelake serve` (issue #4, in progress).
//!
//! - [`wal`]: the write-ahead log — record batches are acknowledged only once they are on disk
//!   (fsync, with group commit so concurrent requests share one fsync), replayed after a crash,
//!   and dropped segment by segment once flushed to Parquet.
//! - [`flush`]: [`Ingester`] — convert, log, buffer, and flush whole WAL segments to Parquet
//!   exactly once, also across crashes.
//! - [`grpc`]: the OTLP/gRPC receiver (`TraceService/Export`) as a tonic service.
//! - [`http`]: the OTLP/HTTP receiver (`POST /v1/traces`) as an axum router.
//! - [`otlp_http`]: OTLP/HTTP request decoding (content types, gzip with a bound, size limits)
//!   and `partial_success` responses, independent of the HTTP framework.

pub mod error;
pub mod flush;
pub mod grpc;
pub mod http;
pub mod otlp_http;
pub mod wal;

pub use error::{Error, Result};
pub use flush::{IngestOutcome, Ingester};
pub use wal::{Wal, WalConfig, WalPosition, WalStats};
