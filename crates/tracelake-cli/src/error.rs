//! CLI errors: each says what failed and on which input, and maps to an exit code.

use std::path::PathBuf;

/// Result type of the CLI.
pub type Result<T, E = CliError> = std::result::Result<T, E>;

/// Errors of the CLI verbs.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Opening or writing the store failed.
    #[error(transparent)]
    Store(#[from] tracelake_store::Error),

    /// Planning or running a query failed.
    #[error(transparent)]
    Query(#[from] tracelake_query::Error),

    /// DataFusion error outside planning (e.g. while streaming results).
    #[error("{0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),

    /// Writing results failed.
    #[error("writing output: {0}")]
    Output(String),

    /// A Ballista scheduler could not be reached or failed the query.
    #[error("Ballista scheduler {url}: {message}")]
    Ballista {
        /// The scheduler's URL (`df://host:port`).
        url: String,
        /// What went wrong.
        message: String,
    },

    /// An input file could not be read or decoded.
    #[error("{path}: {reason}")]
    Input {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },

    /// Writing to the store failed part-way; `cleanup` says what was done about it.
    #[error("writing to the store failed: {cause}; {cleanup}")]
    StoreWrite {
        /// The store error.
        cause: tracelake_store::Error,
        /// What happened to the files this run had already written.
        cleanup: String,
    },

    /// Some input files failed; the others were ingested.
    #[error("{failed} of {total} file(s) failed; the other files were ingested")]
    PartialIngest {
        /// Files that failed.
        failed: usize,
        /// Files given.
        total: usize,
    },

    /// The workload generator refused its configuration.
    #[error("invalid workload configuration: {0}")]
    Gen(String),

    /// The reader of our output went away (e.g. `| head`): not an error for the user.
    #[error("output closed")]
    BrokenPipe,

    /// Bad combination of flags.
    #[error("{0}")]
    Usage(String),
}

impl CliError {
    /// Process exit code: 2 for usage errors, 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
            _ => 1,
        }
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            return CliError::BrokenPipe;
        }
        CliError::Output(e.to_string())
    }
}

impl From<datafusion::arrow::error::ArrowError> for CliError {
    fn from(e: datafusion::arrow::error::ArrowError) -> Self {
        match e {
            datafusion::arrow::error::ArrowError::IoError(_, io) => io.into(),
            other if other.to_string().contains("Broken pipe") => CliError::BrokenPipe,
            other => CliError::Output(other.to_string()),
        }
    }
}
