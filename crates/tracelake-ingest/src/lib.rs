//! The durable ingest path of `tracelake serve`.
//!
//! - [`wal`]: the write-ahead log — record batches are acknowledged only once they are on disk
//!   (fsync, with group commit so concurrent requests share one fsync), replayed after a crash,
//!   and dropped segment by segment once flushed to Parquet.
//! - [`ingester`]: [`Ingester`] — convert (with attribute limits), log, buffer under a memory
//!   limit (backpressure), flush by size and age; the buffer is visible to queries.
//! - [`flush`]: exactly-once flushes of whole WAL segments to Parquet, also across crashes.
//! - [`tenants`]: one ingester per tenant (`X-Scope-OrgID`), recovered at start.
//! - [`metrics`]: Prometheus counters, flush-latency histogram, ingest-rate and drop-rate SLIs.
//! - [`grpc`]: the OTLP/gRPC receiver (`TraceService/Export`) as a tonic service.
//! - [`http`]: the OTLP/HTTP receiver (`POST /v1/traces`) as an axum router (body size and
//!   time limits, 429 under backpressure).
//! - [`http_server`]: serving a router with a header-read timeout and graceful shutdown.
//! - [`otlp_http`]: OTLP/HTTP request decoding (content types, gzip with a bound, size limits)
//!   and `partial_success` responses, independent of the HTTP framework.

pub mod error;
pub mod flush;
pub mod grpc;
pub mod http;
pub mod http_server;
pub mod ingester;
pub mod metrics;
pub mod otlp_http;
pub mod tenants;
pub mod wal;

pub use error::{Error, Result};
pub use ingester::{IngestConfig, IngestOutcome, Ingester};
pub use metrics::{IngestMetrics, RefusalReason};
pub use tenants::{FlushPolicy, TenantIngesters};
pub use wal::{Wal, WalConfig, WalPosition, WalStats};
