//! Exactly-once flushes of WAL segments to Parquet (design: `docs/ingest-design.md`).
//!
//! A flush covers whole WAL segments ≤ S: marker `flush-S.pending` (with the flush time T) →
//! Parquet files with names derived from (T, S, partition) → marker `flush-S.done` → delete
//! segments ≤ S → delete markers. After a crash, a `done` flush only needs its segments
//! deleted; a `pending` one is redone from the WAL with the same names, so files that were
//! already written are replaced, never duplicated. A flush that fails while running is
//! retried the same way, with the same (T, S), before any new flush starts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use tracelake_store::{PartitionKey, SpanFileWriter, TraceIndexBuilder, WriteStats, split_by_partition};

use crate::error::{Error, Result};

/// The files of one flush: partition, its spans, and the file's name.
pub type FlushPlan = Vec<(PartitionKey, Vec<RecordBatch>, ulid::Ulid)>;

/// Groups `batches` by partition and names each partition's file after (time, segment, partition).
pub fn plan_flush(segment: u64, time_ms: u64, batches: &[RecordBatch]) -> Result<FlushPlan> {
    let mut parts: BTreeMap<PartitionKey, Vec<RecordBatch>> = BTreeMap::new();
    for batch in batches {
        for (key, part) in split_by_partition(batch)? {
            parts.entry(key).or_default().push(part);
        }
    }
    Ok(parts
        .into_iter()
        .map(|(key, batches)| {
            let name = ulid::Ulid::from_parts(time_ms, flush_file_id(segment, &key));
            (key, batches, name)
        })
        .collect())
}

/// Writes the files of a plan, then their trace-id index segment. The segment's name comes
/// from the plan's first file name, so a redone flush replaces it instead of adding another.
pub async fn write_plan(writer: &SpanFileWriter, plan: &FlushPlan) -> Result<WriteStats> {
    let mut stats = WriteStats::default();
    let mut index = TraceIndexBuilder::new();
    for (key, batches, name) in plan {
        let written = writer.write_partition_as(key, batches, *name).await?;
        index.add_file(key, &written.path, batches);
        stats.files += 1;
        stats.rows += written.rows;
        stats.bytes += written.bytes;
    }
    if let Some((_, _, name)) = plan.first() {
        // Without its segment the files are only unindexed (lookups scan them), not lost.
        if let Err(e) = index.write(writer.location(), *name).await {
            tracing::warn!("could not write the trace-id index segment: {e}");
        }
        // One segment per flush would make lookups read thousands a day: merge by size class.
        if let Err(e) = tracelake_store::trace_index::merge_segments(writer.location()).await {
            tracing::warn!("could not merge trace-id index segments: {e}");
        }
    }
    Ok(stats)
}

/// Plans and writes one flush: one file per partition, named after (time, segment, partition).
pub async fn write_flush(writer: &SpanFileWriter, segment: u64, time_ms: u64, batches: &[RecordBatch]) -> Result<WriteStats> {
    write_plan(writer, &plan_flush(segment, time_ms, batches)?).await
}

/// 80 stable bits from (segment, partition): FNV-1a, twice with different seeds.
fn flush_file_id(segment: u64, key: &PartitionKey) -> u128 {
    let fnv = |seed: u64| {
        let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
        for b in segment.to_le_bytes().iter().chain(key.relative_dir().as_bytes()) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h
    };
    (u128::from(fnv(1)) << 64) | u128::from(fnv(2))
}

pub(crate) enum Marker {
    Pending(u64),
    Done,
}

pub(crate) fn marker_path(dir: &Path, segment: u64, kind: &str) -> PathBuf {
    dir.join(format!("flush-{segment:020}.{kind}"))
}

pub(crate) fn write_marker(dir: &Path, segment: u64, kind: &str, content: &str) -> Result<()> {
    let path = marker_path(dir, segment, kind);
    let io = |source| Error::Io { path: path.clone(), source };
    let file = std::fs::File::create(&path).map_err(io)?;
    std::io::Write::write_all(&mut &file, content.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|source| Error::Io { path: dir.to_path_buf(), source })
}

pub(crate) fn remove_markers(dir: &Path, segment: u64) -> Result<()> {
    for kind in ["pending", "done"] {
        let path = marker_path(dir, segment, kind);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(Error::Io { path, source }),
        }
    }
    Ok(())
}

/// Flush markers in the WAL directory, oldest segment first; `done` wins over `pending`.
pub(crate) fn markers(dir: &Path) -> Result<Vec<(u64, Marker)>> {
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Io { path: dir.to_path_buf(), source })?;
    let mut found: BTreeMap<u64, Marker> = BTreeMap::new();
    for entry in entries {
        let path = entry.map_err(|source| Error::Io { path: dir.to_path_buf(), source })?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
        let Some((segment, kind)) = name.strip_prefix("flush-").and_then(|r| r.split_once('.')) else { continue };
        let Ok(segment) = segment.parse::<u64>() else { continue };
        match kind {
            "done" => {
                found.insert(segment, Marker::Done);
            }
            "pending" if !matches!(found.get(&segment), Some(Marker::Done)) => {
                let text = std::fs::read_to_string(&path).map_err(|source| Error::Io { path: path.clone(), source })?;
                let time_ms = text.trim().parse::<u64>().map_err(|_| Error::Corrupt {
                    path: path.clone(),
                    offset: 0,
                    reason: format!("flush marker holds '{}', not a time", text.trim()),
                })?;
                found.insert(segment, Marker::Pending(time_ms));
            }
            _ => {}
        }
    }
    Ok(found.into_iter().collect())
}
