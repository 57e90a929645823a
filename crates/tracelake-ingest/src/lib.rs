//! The durable ingest path of `tracelake serve` (issue #4, in progress).
//!
//! - [`wal`]: the write-ahead log — record batches are acknowledged only once they are on disk
//!   (fsync, with group commit so concurrent requests share one fsync), replayed after a crash,
//!   and dropped segment by segment once flushed to Parquet.

pub mod error;
pub mod wal;

pub use error::{Error, Result};
pub use wal::{Wal, WalConfig, WalPosition, WalStats};
