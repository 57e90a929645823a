//! Errors of the storage layer, each with the context needed to act on it.

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Storage errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The `--data` value is neither a usable path nor a supported URL.
    #[error("invalid data location '{location}': {reason}")]
    InvalidLocation {
        /// What the user gave.
        location: String,
        /// Why it cannot be used.
        reason: String,
    },

    /// Reading from or writing to the object store failed.
    #[error("object store error at '{path}': {source}")]
    ObjectStore {
        /// The object path involved.
        path: String,
        /// The store's error.
        source: object_store::Error,
    },

    /// Encoding a Parquet file failed.
    #[error("writing Parquet for partition {partition}: {source}")]
    Parquet {
        /// The partition directory.
        partition: String,
        /// The encoder's error.
        source: parquet::errors::ParquetError,
    },

    /// An Arrow compute kernel failed.
    #[error("arrow error: {0}")]
    Arrow(#[from] arrow::error::ArrowError),

    /// A batch does not have the columns of the `spans` schema.
    #[error("batch does not match the spans schema: {0}")]
    Schema(String),

    /// Compaction cannot proceed (another compactor runs, a manifest is invalid, …).
    #[error("compaction: {0}")]
    Compaction(String),

    /// A DataFusion error while setting up the table.
    #[error(transparent)]
    DataFusion(#[from] datafusion::error::DataFusionError),
}
