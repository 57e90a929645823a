//! `tracelake ingest`: load OTLP files into a data location.
//!
//! Each file is converted completely before any of it is buffered, so a file is loaded whole
//! or not at all (unless `--partial`, which keeps a file's valid spans and reports the rest).
//! A file that fails does not stop the others; the exit status says whether all succeeded.

use std::io::Read;
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use tracelake_schema::{AcceptMode, PayloadFormat, SpanRejection, convert_request, decode_payload};
use tracelake_store::{DataLocation, PartitionedBuffer, SpanFileWriter, WriteStats};

use crate::cli::IngestArgs;
use crate::error::{CliError, Result};
use crate::progress;

/// Largest file accepted (after decompression): protects memory from gzip bombs.
pub const MAX_FILE_BYTES: u64 = 4 << 30;

/// What an ingest run did.
#[derive(Debug, Default)]
pub struct IngestReport {
    /// Files read successfully.
    pub files_ok: usize,
    /// Files that failed, with the reason.
    pub failed: Vec<(PathBuf, String)>,
    /// Spans accepted.
    pub spans: usize,
    /// Spans refused (only with partial acceptance), with reasons.
    pub rejected: Vec<(PathBuf, SpanRejection)>,
    /// Files written to the store.
    pub written: WriteStats,
}

/// Runs `tracelake ingest`.
pub async fn run(args: IngestArgs) -> Result<()> {
    let location = DataLocation::open(&args.data.data)?;
    let mode = if args.partial { AcceptMode::Partial } else { AcceptMode::AllOrNothing };
    let report = ingest_files(&location, &args.files, mode, true).await?;
    for (path, rejection) in &report.rejected {
        eprintln!("warning: {}: refused {rejection}", path.display());
    }
    for (path, reason) in &report.failed {
        eprintln!("error: {}: {reason}", path.display());
    }
    eprintln!(
        "ingested {} span(s) from {} file(s) into {} ({} Parquet file(s), {} bytes){}",
        report.spans,
        report.files_ok,
        location,
        report.written.files,
        report.written.bytes,
        if report.rejected.is_empty() { String::new() } else { format!("; refused {} invalid span(s)", report.rejected.len()) }
    );
    if report.failed.is_empty() {
        Ok(())
    } else {
        Err(CliError::PartialIngest { failed: report.failed.len(), total: args.files.len() })
    }
}

/// Loads `files` into `location`. Per-file failures are collected in the report; store
/// failures abort with an error.
pub async fn ingest_files(
    location: &DataLocation,
    files: &[PathBuf],
    mode: AcceptMode,
    show_progress: bool,
) -> Result<IngestReport> {
    let mut buffer = PartitionedBuffer::new(SpanFileWriter::new(location.clone()));
    let mut report = IngestReport::default();
    let bar = (show_progress && files.len() > 1).then(|| progress::bar(files.len() as u64, "files"));
    for path in files {
        match load_file(path, mode) {
            Ok((batches, rejected)) => {
                for batch in &batches {
                    report.spans += batch.num_rows();
                    if let Err(e) = buffer.push(batch).await {
                        return Err(abort_run(buffer, e).await);
                    }
                }
                report.rejected.extend(rejected.into_iter().map(|r| (path.clone(), r)));
                report.files_ok += 1;
            }
            Err(reason) => report.failed.push((path.clone(), reason)),
        }
        if let Some(bar) = &bar {
            bar.inc(1);
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if let Err(e) = buffer.flush_all().await {
        return Err(abort_run(buffer, e).await);
    }
    report.written = buffer.stats();
    Ok(report)
}

/// A store write failed: delete what this run wrote so that the store is unchanged and the
/// same command can be run again without duplicating spans.
pub(crate) async fn abort_run(buffer: PartitionedBuffer, cause: tracelake_store::Error) -> CliError {
    match buffer.abort().await {
        Ok(deleted) => CliError::StoreWrite { cause, cleanup: format!("removed the {deleted} file(s) this run had written; the store is unchanged, run the command again once the cause is fixed") },
        Err(e) => CliError::StoreWrite { cause, cleanup: format!("could not remove this run's files ({e}); some spans of this run may be stored") },
    }
}

/// Reads, decodes and converts one file; `Err` carries a message naming what is wrong.
fn load_file(path: &Path, mode: AcceptMode) -> std::result::Result<(Vec<RecordBatch>, Vec<SpanRejection>), String> {
    let bytes = read_maybe_gzipped(path)?;
    let named = path.file_name().and_then(|n| n.to_str()).and_then(PayloadFormat::from_file_name);
    let requests = match named {
        Some(format) => decode_payload(&bytes, format).map_err(|e| e.to_string())?,
        // A guess from the content can be wrong (a protobuf request may start with bytes that
        // look like JSON), so on failure try the other encoding before giving up.
        None => {
            let guess = PayloadFormat::sniff(&bytes);
            let other = if guess == PayloadFormat::Json { PayloadFormat::Protobuf } else { PayloadFormat::Json };
            decode_payload(&bytes, guess).or_else(|first| decode_payload(&bytes, other).map_err(|_| first.to_string()))?
        }
    };
    let mut batches = Vec::with_capacity(requests.len());
    let mut rejected = Vec::new();
    for (i, request) in requests.iter().enumerate() {
        let conversion = convert_request(request, mode).map_err(|e| {
            if requests.len() > 1 { format!("request {} of {}: {e}", i + 1, requests.len()) } else { e.to_string() }
        })?;
        rejected.extend(conversion.rejected);
        if conversion.batch.num_rows() > 0 {
            batches.push(conversion.batch);
        }
    }
    Ok((batches, rejected))
}

fn read_maybe_gzipped(path: &Path) -> std::result::Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    // Peek at the first bytes through the buffer instead of opening the file twice.
    let mut buffered = std::io::BufReader::new(file);
    let head = std::io::BufRead::fill_buf(&mut buffered).map_err(|e| format!("cannot read: {e}"))?;
    let gzipped = head.starts_with(&[0x1f, 0x8b]);
    let reader: Box<dyn Read> =
        if gzipped { Box::new(flate2::read::MultiGzDecoder::new(buffered)) } else { Box::new(buffered) };
    let mut bytes = Vec::new();
    reader
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read{}: {e}", if gzipped { " (gzip)" } else { "" }))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!("larger than {} bytes (after decompression); split it", MAX_FILE_BYTES));
    }
    Ok(bytes)
}
