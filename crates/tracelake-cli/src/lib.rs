//! The `tracelake` command-line tool: argument parsing and the embedded (serverless) verbs.
//!
//! - [`cli`]: the clap definition of every verb and flag.
//! - [`commands`]: one module per verb (`sql`, `ingest`, `gen`, `demo`).
//! - [`output`]: result formats (`table`, `csv`, `json`, `parquet`, `arrow`).
//! - [`error`]: the CLI error type and exit codes.

pub mod cli;
pub mod commands;
pub mod error;
pub mod output;
pub mod progress;

pub use error::{CliError, Result};
