//! Errors of session setup and query planning.

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Query errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The data location could not be opened.
    #[error(transparent)]
    Store(#[from] tracelake_store::Error),

    /// DataFusion refused or failed the query (bad SQL, unknown column, ...).
    #[error("{0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),

    /// A statement that would change data or settings was refused.
    #[error("refused: {0}")]
    Refused(String),
}
