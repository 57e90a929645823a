//! One module per verb; [`run`] dispatches.

pub mod ballista;
pub mod compact;
pub mod demo;
pub mod gate;
pub mod generate;
pub mod ingest;
pub mod retain;
pub mod serve;
pub mod sql;

use crate::cli::{Cli, Command};
use crate::error::Result;

/// Runs the verb given on the command line; returns the process exit code on success (0,
/// except for `gate`, whose verdicts have their own codes).
pub async fn run(cli: Cli) -> Result<u8> {
    match cli.command {
        Command::Sql(args) => sql::run(args).await.map(|()| 0),
        Command::Ingest(args) => ingest::run(args).await.map(|()| 0),
        Command::Gen(args) => generate::run(args).await.map(|()| 0),
        Command::Demo(args) => demo::run(args).await.map(|()| 0),
        Command::Serve(args) => serve::run(args).await.map(|()| 0),
        Command::Gate(args) => gate::run(*args).await,
        Command::Compact(args) => compact::run(args).await.map(|()| 0),
        Command::Retain(args) => retain::run(args).await.map(|()| 0),
        Command::BallistaScheduler(args) => ballista::scheduler(args).await.map(|()| 0),
        Command::BallistaExecutor(args) => ballista::executor(args).await.map(|()| 0),
    }
}
