//! One module per verb; [`run`] dispatches.

pub mod demo;
pub mod generate;
pub mod ingest;
pub mod serve;
pub mod sql;

use crate::cli::{Cli, Command};
use crate::error::Result;

/// Runs the verb given on the command line.
pub async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Sql(args) => sql::run(args).await,
        Command::Ingest(args) => ingest::run(args).await,
        Command::Gen(args) => generate::run(args).await,
        Command::Demo(args) => demo::run(args).await,
        Command::Serve(args) => serve::run(args).await,
    }
}
