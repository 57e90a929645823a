//! `tracelake demo`: generate → store → SLO report, in one command.

use tracelake_gen::GenConfig;
use tracelake_query::SessionOptions;
use tracelake_store::DataLocation;

use crate::cli::{DemoArgs, OutputFormat};
use crate::commands::generate::generate_into_store;
use crate::commands::sql::query_to;
use crate::error::{CliError, Result};

/// The SLO report the demo prints (also shipped in `sql/reports/`).
pub const SLO_REPORT: &str = include_str!("../../../../sql/reports/slo_by_operation.sql");

const MARKER: &str = ".tracelake-demo";

/// Runs `tracelake demo`.
pub async fn run(args: DemoArgs) -> Result<()> {
    let dir = std::path::Path::new(&args.data);
    if dir.exists() {
        if !dir.join(MARKER).exists() {
            return Err(CliError::Usage(format!(
                "{} exists and was not made by `tracelake demo`; choose another --data",
                dir.display()
            )));
        }
        std::fs::remove_dir_all(dir).map_err(|e| CliError::Usage(format!("cannot clear {}: {e}", dir.display())))?;
    }
    let location = DataLocation::open(&args.data)?;
    std::fs::write(dir.join(MARKER), "made by tracelake demo; safe to delete\n")
        .map_err(|e| CliError::Output(e.to_string()))?;

    eprintln!("1/2 generating {} spans (seed {}) into {} ...", args.spans, args.seed, args.data);
    let started = std::time::Instant::now();
    let config = GenConfig { seed: args.seed, spans: args.spans, ..GenConfig::default() };
    let stats = generate_into_store(config, &location, true).await?;
    eprintln!(
        "    {} spans in {} Parquet files, {:.1} bytes/span, {:.1} s",
        stats.rows,
        stats.files,
        stats.bytes as f64 / stats.rows.max(1) as f64,
        started.elapsed().as_secs_f64()
    );
    eprintln!("2/2 SLO report (sql/reports/slo_by_operation.sql):");
    let started = std::time::Instant::now();
    query_to(&location, SessionOptions::default(), SLO_REPORT, OutputFormat::Table, std::io::stdout()).await?;
    eprintln!("query took {:.2} s. Try: tracelake sql --data {} \"SELECT * FROM service_edges\"", started.elapsed().as_secs_f64(), args.data);
    Ok(())
}
