//! `tracelake retain`: delete the hourly partitions older than a retention.

use tracelake_store::retention::{self, parse_retention};

use crate::cli::RetainArgs;
use crate::commands::compact::maintenance_location;
use crate::error::{CliError, Result};
use crate::progress;

/// Runs `tracelake retain`.
pub async fn run(args: RetainArgs) -> Result<()> {
    let keep = parse_retention(&args.older_than).map_err(|e| CliError::Usage(format!("--older-than {e}")))?;
    let keep = chrono::Duration::from_std(keep).map_err(|_| CliError::Usage("--older-than is too long".into()))?;
    let location = maintenance_location(&args.data.data, args.tenant.as_deref())?;
    let cutoff = chrono::Utc::now() - keep;
    let expired = retention::expired(&location, cutoff).await?;
    let files: usize = expired.iter().map(|p| p.files.len()).sum();
    let bytes: u64 = expired.iter().map(|p| p.bytes).sum();
    let verb = if args.dry_run { "would delete" } else { "deleting" };
    for partition in &expired {
        println!("{verb} {} ({} files, {} bytes)", partition.name(), partition.files.len(), partition.bytes);
    }
    if args.dry_run {
        eprintln!(
            "dry run: {} partitions ({files} files, {bytes} bytes) of {location} ended before {}",
            expired.len(),
            cutoff.to_rfc3339()
        );
        return Ok(());
    }
    let bar = progress::bar(files as u64, "files");
    for partition in &expired {
        retention::drop_partition(&location, partition).await?;
        bar.inc(partition.files.len() as u64);
    }
    bar.finish_and_clear();
    eprintln!("deleted {} partitions ({files} files, {bytes} bytes) of {location} that ended before {}", expired.len(), cutoff.to_rfc3339());
    Ok(())
}
