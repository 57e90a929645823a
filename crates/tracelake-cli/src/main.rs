//! `tracelake` binary entry point: parse arguments, run the verb, map errors to exit codes.

use clap::Parser;
use tracelake::cli::Cli;

/// mimalloc instead of glibc malloc: the OTLP ingest path allocates per attribute and per id,
/// and glibc's allocator took ~40 % of the server's CPU under load (perf, BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `tracelake gate` reserves exit codes 1 and 2 for its verdicts; its usage and data errors
/// exit 3 (so a typo in CI is never read as "inconclusive").
const GATE_ERROR_EXIT: u8 = 3;

fn main() -> std::process::ExitCode {
    let is_gate = std::env::args().nth(1).as_deref() == Some("gate");
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            let code = match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0,
                _ if is_gate => GATE_ERROR_EXIT,
                _ => 2,
            };
            return std::process::ExitCode::from(code);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TRACELAKE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::from(if is_gate { GATE_ERROR_EXIT } else { 1 });
        }
    };
    match runtime.block_on(tracelake::commands::run(cli)) {
        Ok(code) => std::process::ExitCode::from(code),
        Err(tracelake::CliError::BrokenPipe) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::from(if is_gate { GATE_ERROR_EXIT } else { e.exit_code() })
        }
    }
}
