//! `tracelake ballista-scheduler` and `tracelake ballista-executor`: a Ballista cluster that
//! runs tracelake's SQL (see `tracelake_ballista`).

use tracelake_ballista::cluster::{ExecutorSettings, run_executor, run_scheduler};

use crate::cli::{BallistaExecutorArgs, BallistaSchedulerArgs};
use crate::error::{CliError, Result};

/// Runs the scheduler until the process is stopped.
pub async fn scheduler(args: BallistaSchedulerArgs) -> Result<()> {
    eprintln!("tracelake ballista-scheduler: listening on {} (clients: --ballista df://{})", args.bind, args.bind);
    run_scheduler(args.bind).await.map_err(|e| CliError::Output(format!("ballista scheduler: {e}")))
}

/// Runs an executor until the process is stopped.
pub async fn executor(args: BallistaExecutorArgs) -> Result<()> {
    let (host, port) = args
        .scheduler
        .rsplit_once(':')
        .and_then(|(h, p)| p.parse::<u16>().ok().map(|p| (h.to_owned(), p)))
        .ok_or_else(|| CliError::Usage(format!("--scheduler {}: expected HOST:PORT", args.scheduler)))?;
    let work_dir = match args.work_dir {
        Some(dir) => dir,
        None => std::env::temp_dir().join(format!("tracelake-ballista-executor-{}", std::process::id())),
    };
    std::fs::create_dir_all(&work_dir)?;
    let settings = ExecutorSettings {
        host: args.host,
        flight_port: args.flight_port,
        grpc_port: args.grpc_port,
        scheduler: (host, port),
        vcores: args.vcores.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        work_dir: work_dir.to_string_lossy().into_owned(),
    };
    run_executor(settings).await.map_err(|e| CliError::Output(format!("ballista executor: {e}")))
}
