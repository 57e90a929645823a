//! Errors of the ingest path.

use std::path::PathBuf;

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Ingest errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A WAL file could not be read or written.
    #[error("write-ahead log {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },

    /// A WAL segment other than the newest one is damaged: data that was acknowledged cannot be
    /// read back. Never silently skipped.
    #[error("write-ahead log segment {path} is corrupt at byte {offset}: {reason}")]
    Corrupt {
        /// The segment.
        path: PathBuf,
        /// Where the damage starts.
        offset: u64,
        /// What is wrong.
        reason: String,
    },

    /// Encoding or decoding a batch failed.
    #[error("write-ahead log record: {0}")]
    Arrow(#[from] arrow::error::ArrowError),

    /// The request could not be converted.
    #[error(transparent)]
    Schema(tracelake_schema::Error),

    /// Writing Parquet failed.
    #[error(transparent)]
    Store(#[from] tracelake_store::Error),

    /// The buffer of acknowledged, unflushed spans is at its memory limit: retry later.
    #[error("ingest buffer is full ({buffered_bytes} of {limit} bytes held until the next flush); retry later")]
    Overloaded {
        /// Bytes buffered now.
        buffered_bytes: usize,
        /// The limit (`max_buffered_bytes`).
        limit: usize,
    },

    /// The WAL writer has stopped (after an earlier I/O error, or at shutdown).
    #[error("write-ahead log is closed{}", .0.as_deref().map(|r| format!(": {r}")).unwrap_or_default())]
    Closed(Option<String>),
}
