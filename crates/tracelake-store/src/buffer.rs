//! Per-partition buffering: many small inputs (OTLP requests, generated traces) become few,
//! large, sorted files.

use std::collections::BTreeMap;

use arrow::array::RecordBatch;
use object_store::ObjectStoreExt;

use crate::error::Result;
use crate::layout::PartitionKey;
use crate::partition::split_by_partition;
use crate::trace_index::TraceIndexBuilder;
use crate::writer::SpanFileWriter;

/// Totals of what a buffer wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Files written.
    pub files: usize,
    /// Spans written.
    pub rows: usize,
    /// Bytes written.
    pub bytes: usize,
}

#[derive(Default)]
struct Pending {
    batches: Vec<RecordBatch>,
    rows: usize,
    /// Sequence number of the last push that added rows (for least-recently-used flushing).
    last_push: u64,
}

/// Buffers spans by partition and writes a file when a partition reaches `max_rows_per_file`,
/// or on [`PartitionedBuffer::finish`]. When the whole buffer exceeds `max_buffered_rows`, the
/// partitions that received rows least recently are written until half the budget is free:
/// spans mostly arrive in time order, so those are the hours that are complete, and files stay
/// large.
pub struct PartitionedBuffer {
    writer: SpanFileWriter,
    pending: BTreeMap<PartitionKey, Pending>,
    buffered_rows: usize,
    max_rows_per_file: usize,
    max_buffered_rows: usize,
    stats: WriteStats,
    written: Vec<object_store::path::Path>,
    pushes: u64,
    index: TraceIndexBuilder,
}

impl PartitionedBuffer {
    /// Default rows per file (about 30–60 MB of Parquet for typical spans).
    pub const DEFAULT_MAX_ROWS_PER_FILE: usize = 1_000_000;
    /// Default bound on buffered rows across all partitions (bounds memory to ~1–2 GB).
    pub const DEFAULT_MAX_BUFFERED_ROWS: usize = 2_000_000;

    /// A buffer writing through `writer` with default limits.
    pub fn new(writer: SpanFileWriter) -> Self {
        Self::with_limits(writer, Self::DEFAULT_MAX_ROWS_PER_FILE, Self::DEFAULT_MAX_BUFFERED_ROWS)
    }

    /// A buffer with explicit limits.
    pub fn with_limits(writer: SpanFileWriter, max_rows_per_file: usize, max_buffered_rows: usize) -> Self {
        Self {
            writer,
            pending: BTreeMap::new(),
            buffered_rows: 0,
            max_rows_per_file: max_rows_per_file.max(1),
            max_buffered_rows: max_buffered_rows.max(1),
            stats: WriteStats::default(),
            written: Vec::new(),
            pushes: 0,
            index: TraceIndexBuilder::new(),
        }
    }

    /// Adds spans; may write files.
    pub async fn push(&mut self, batch: &RecordBatch) -> Result<()> {
        let mut full = Vec::new();
        self.pushes += 1;
        for (key, part) in split_by_partition(batch)? {
            let pending = self.pending.entry(key.clone()).or_default();
            pending.last_push = self.pushes;
            pending.rows += part.num_rows();
            self.buffered_rows += part.num_rows();
            pending.batches.push(part);
            if pending.rows >= self.max_rows_per_file {
                full.push(key);
            }
        }
        for key in full {
            self.flush_partition(&key).await?;
        }
        if self.buffered_rows > self.max_buffered_rows {
            let mut by_age: Vec<(u64, PartitionKey)> =
                self.pending.iter().map(|(k, p)| (p.last_push, k.clone())).collect();
            by_age.sort();
            for (_, key) in by_age {
                if self.buffered_rows <= self.max_buffered_rows / 2 {
                    break;
                }
                self.flush_partition(&key).await?;
            }
        }
        Ok(())
    }

    /// Spans buffered and not yet written.
    pub fn buffered_rows(&self) -> usize {
        self.buffered_rows
    }

    /// What has been written so far.
    pub fn stats(&self) -> WriteStats {
        self.stats
    }

    async fn flush_partition(&mut self, key: &PartitionKey) -> Result<()> {
        let Some(pending) = self.pending.get(key) else { return Ok(()) };
        // Removed from the buffer only once written, so a failed write loses nothing.
        let written = self.writer.write_partition(key, &pending.batches).await?;
        self.index.add_file(key, &written.path, &pending.batches);
        if let Some(pending) = self.pending.remove(key) {
            self.buffered_rows -= pending.rows;
        }
        self.written.push(written.path.clone());
        self.stats.files += 1;
        self.stats.rows += written.rows;
        self.stats.bytes += written.bytes;
        Ok(())
    }

    /// Writes every buffered partition, then the trace-id index segment of every file written
    /// since the last one.
    pub async fn flush_all(&mut self) -> Result<()> {
        let keys: Vec<_> = self.pending.keys().cloned().collect();
        for key in keys {
            self.flush_partition(&key).await?;
        }
        let index = std::mem::take(&mut self.index);
        // Without its segment the files are only unindexed (lookups scan them), not lost.
        if let Err(e) = index.write(self.writer.location(), ulid::Ulid::new()).await {
            tracing::warn!("could not write the trace-id index segment: {e}");
        }
        Ok(())
    }

    /// Abandons the run: drops what is buffered and deletes every file this buffer wrote, so
    /// that a failed load leaves the store as it was and can simply be run again. Returns the
    /// number of files deleted.
    pub async fn abort(self) -> Result<usize> {
        let store = self.writer.location().store();
        for path in &self.written {
            store
                .delete(path)
                .await
                .map_err(|source| crate::Error::ObjectStore { path: path.to_string(), source })?;
        }
        Ok(self.written.len())
    }

    /// Writes everything still buffered (and the index segment) and returns the totals.
    pub async fn finish(mut self) -> Result<WriteStats> {
        self.flush_all().await?;
        Ok(self.stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::location::DataLocation;
    use tracelake_schema::{AcceptMode, PayloadFormat, convert_request, decode_payload};

    fn spans_at_hour(hour: u64, n: usize) -> RecordBatch {
        let start = 1_705_312_800_000_000_000u64 + hour * 3_600_000_000_000;
        let spans: Vec<String> = (0..n)
            .map(|i| {
                format!(
                    r#"{{"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"{:016x}","name":"op","startTimeUnixNano":"{}","endTimeUnixNano":"{}"}}"#,
                    i + 1,
                    start,
                    start + 1
                )
            })
            .collect();
        let json = format!(r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{}]}}]}}]}}"#, spans.join(","));
        let request = &decode_payload(json.as_bytes(), PayloadFormat::Json).unwrap()[0];
        convert_request(request, AcceptMode::AllOrNothing).unwrap().batch
    }

    #[tokio::test]
    async fn over_budget_flushes_least_recent_partitions_and_abort_removes_files() {
        let dir = tempfile::tempdir().unwrap();
        let location = DataLocation::open(dir.path().to_str().unwrap()).unwrap();
        let mut buffer = PartitionedBuffer::with_limits(SpanFileWriter::new(location), 1000, 10);
        buffer.push(&spans_at_hour(0, 4)).await.unwrap();
        buffer.push(&spans_at_hour(1, 4)).await.unwrap();
        assert_eq!(buffer.stats().files, 0);
        // 12 rows > 10: hour 0 (least recent) is written, leaving 8 > 5, so hour 1 too; hour 2 stays.
        buffer.push(&spans_at_hour(2, 4)).await.unwrap();
        assert_eq!(buffer.stats().files, 2);
        assert_eq!(buffer.buffered_rows(), 4);
        let files = |d: &std::path::Path| {
            let mut n = 0;
            let mut stack = vec![d.to_path_buf()];
            while let Some(p) = stack.pop() {
                for e in std::fs::read_dir(p).unwrap() {
                    let e = e.unwrap().path();
                    if e.is_dir() { stack.push(e) } else { n += 1 }
                }
            }
            n
        };
        assert_eq!(files(dir.path()), 2);
        assert_eq!(buffer.abort().await.unwrap(), 2);
        assert_eq!(files(dir.path()), 0);
    }
}
