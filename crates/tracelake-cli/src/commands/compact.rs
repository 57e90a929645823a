//! `tracelake compact`: merge each partition's small span files (see
//! `tracelake_store::compaction` for how scans stay exact while it runs).

use std::time::{Duration, SystemTime};

use tracelake_store::DataLocation;
use tracelake_store::compaction::manifest::CompactionLock;
use tracelake_store::compaction::{self, CompactionOptions};
use tracelake_store::tenant::TenantId;

use crate::cli::CompactArgs;
use crate::error::{CliError, Result};
use crate::progress;

/// The data location a maintenance verb works on: the default tenant's, or `--tenant`'s.
pub fn maintenance_location(data: &str, tenant: Option<&str>) -> Result<DataLocation> {
    let location = DataLocation::open_existing(data)?;
    match tenant {
        None => Ok(location),
        Some(id) => Ok(location.for_tenant(&TenantId::parse(id).map_err(CliError::Usage)?)),
    }
}

/// Runs `tracelake compact`.
pub async fn run(args: CompactArgs) -> Result<()> {
    if args.target_file_bytes < 1 << 20 {
        return Err(CliError::Usage("--target-file-bytes must be at least 1048576 (1 MiB)".into()));
    }
    let location = maintenance_location(&args.data.data, args.tenant.as_deref())?;
    let options = CompactionOptions {
        target_file_bytes: args.target_file_bytes,
        min_file_age: Duration::from_secs(args.min_file_age_secs),
        grace: Duration::from_secs(args.grace_secs),
    };
    let jobs = compaction::plan(&location, &options, SystemTime::now()).await?;
    let files: usize = jobs.iter().map(|j| j.files.len()).sum();
    let bytes: u64 = jobs.iter().map(|j| j.input_bytes()).sum();
    if args.dry_run {
        for job in &jobs {
            println!("{}: {} files, {} bytes → 1 file", job.partition, job.files.len(), job.input_bytes());
        }
        eprintln!("dry run: would merge {files} files ({bytes} bytes) into {} in {location}", jobs.len());
        return Ok(());
    }
    let holder = format!("tracelake compact (pid {})", std::process::id());
    // The lease outlives any sane run; a crashed run's lock expires on its own.
    let lock = CompactionLock::acquire(&location, &holder, Duration::from_secs(3600) + options.grace).await?;
    let result = compact_with_lock(&location, &options, &jobs).await;
    lock.release().await?;
    let (written, rows) = result?;
    eprintln!("merged {files} files ({bytes} bytes, {rows} spans) into {written} in {location}");
    Ok(())
}

async fn compact_with_lock(
    location: &DataLocation,
    options: &CompactionOptions,
    jobs: &[compaction::CompactionJob],
) -> Result<(usize, usize)> {
    // Earlier runs' merges first (their grace may be over), then this run's.
    compaction::finish(location, options.grace, SystemTime::now()).await?;
    let bar = progress::bar(jobs.iter().map(|j| j.input_bytes()).sum(), "bytes merged");
    let mut rows = 0;
    for job in jobs {
        bar.set_message(job.partition.clone());
        let outcome = compaction::run_job(location, job).await?;
        rows += outcome.rows;
        bar.inc(job.input_bytes());
    }
    bar.finish_and_clear();
    if !jobs.is_empty() {
        if !options.grace.is_zero() {
            eprintln!("waiting {} s before deleting the replaced files (--grace-secs) ...", options.grace.as_secs());
        }
        tokio::time::sleep(options.grace).await;
        compaction::finish(location, options.grace, SystemTime::now()).await?;
    }
    Ok((jobs.len(), rows))
}
