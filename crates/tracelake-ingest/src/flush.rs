//! [`Ingester`]: WAL-backed buffering of accepted spans and exactly-once flushes to Parquet
//! (design: `docs/ingest-design.md`).
//!
//! A flush covers whole WAL segments ≤ S: marker `flush-S.pending` (with the flush time T) →
//! Parquet files with names derived from (T, S, partition) → marker `flush-S.done` → delete
//! segments ≤ S → delete markers. After a crash, a `done` flush only needs its segments
//! deleted; a `pending` one is redone from the WAL with the same names, so files that were
//! already written are replaced, never duplicated.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use tracelake_schema::{AcceptMode, SpanRejection, convert_request};
use tracelake_store::{DataLocation, PartitionKey, SpanFileWriter, WriteStats, split_by_partition};

use crate::error::{Error, Result};
use crate::wal::{Wal, WalConfig};

/// What happened to one request.
#[derive(Debug, Default)]
pub struct IngestOutcome {
    /// Spans made durable.
    pub accepted: usize,
    /// Spans refused, with reasons (OTLP `partial_success`).
    pub rejected: Vec<SpanRejection>,
}

impl IngestOutcome {
    /// The `partial_success.error_message` for the refused spans (empty when none).
    pub fn refusal_message(&self) -> String {
        match self.rejected.as_slice() {
            [] => String::new(),
            [only] => only.to_string(),
            [first, ..] => format!("{} spans refused; first: {first}", self.rejected.len()),
        }
    }
}

/// Durable ingest into one data location.
pub struct Ingester {
    wal: Wal,
    writer: SpanFileWriter,
    /// Appends hold it shared; a flush's rotation holds it exclusively, so every append
    /// acknowledged before the rotation is in the buffer when the flush takes its snapshot.
    gate: tokio::sync::RwLock<()>,
    flushing: tokio::sync::Mutex<()>,
    buffer: std::sync::Mutex<Vec<(u64, RecordBatch)>>,
    counters: IngestCounters,
}

/// Ingest counters, for `/metrics`.
#[derive(Debug, Default)]
pub struct IngestCounters {
    /// Spans received (accepted + refused).
    pub received: std::sync::atomic::AtomicU64,
    /// Spans made durable.
    pub accepted: std::sync::atomic::AtomicU64,
    /// Spans refused as invalid.
    pub refused_invalid: std::sync::atomic::AtomicU64,
    /// Spans refused because the WAL could not take them.
    pub refused_unavailable: std::sync::atomic::AtomicU64,
    /// Spans written to Parquet.
    pub flushed: std::sync::atomic::AtomicU64,
    /// Completed flushes and their total duration.
    pub flushes: std::sync::atomic::AtomicU64,
    /// Sum of flush durations in microseconds.
    pub flush_micros: std::sync::atomic::AtomicU64,
}

impl Ingester {
    /// Opens the WAL in `wal`, finishes any flush a crash interrupted, and buffers the rest.
    pub async fn open(location: DataLocation, wal: WalConfig) -> Result<Self> {
        let (wal, replayed) = Wal::open(wal)?;
        let writer = SpanFileWriter::new(location);
        let mut buffer = replayed.into_iter().map(|(p, b)| (p.segment, b)).collect::<Vec<_>>();
        for (segment, marker) in markers(wal.dir())? {
            match marker {
                Marker::Done => {}
                Marker::Pending(time_ms) => {
                    let batches: Vec<RecordBatch> =
                        buffer.iter().filter(|(s, _)| *s <= segment).map(|(_, b)| b.clone()).collect();
                    write_flush(&writer, segment, time_ms, &batches).await?;
                    write_marker(wal.dir(), segment, "done", "")?;
                }
            }
            wal.remove_through(segment)?;
            remove_markers(wal.dir(), segment)?;
            buffer.retain(|(s, _)| *s > segment);
        }
        Ok(Self {
            wal,
            writer,
            gate: tokio::sync::RwLock::new(()),
            flushing: tokio::sync::Mutex::new(()),
            buffer: std::sync::Mutex::new(buffer),
            counters: IngestCounters::default(),
        })
    }

    /// Converts, logs (durably) and buffers a request; returns once accepted spans are durable.
    pub async fn ingest(&self, request: &ExportTraceServiceRequest) -> Result<IngestOutcome> {
        use std::sync::atomic::Ordering::Relaxed;
        let conversion = convert_request(request, AcceptMode::Partial).map_err(Error::Schema)?;
        let accepted = conversion.batch.num_rows();
        let c = &self.counters;
        c.received.fetch_add((accepted + conversion.rejected.len()) as u64, Relaxed);
        c.refused_invalid.fetch_add(conversion.rejected.len() as u64, Relaxed);
        if accepted > 0 {
            let _shared = self.gate.read().await;
            let position = match self.wal.append(&conversion.batch).await {
                Ok(p) => p,
                Err(e) => {
                    c.refused_unavailable.fetch_add(accepted as u64, Relaxed);
                    return Err(e);
                }
            };
            self.lock_buffer().push((position.segment, conversion.batch));
            c.accepted.fetch_add(accepted as u64, Relaxed);
        }
        Ok(IngestOutcome { accepted, rejected: conversion.rejected })
    }

    /// Spans accepted and not yet in Parquet.
    pub fn buffered_rows(&self) -> usize {
        self.lock_buffer().iter().map(|(_, b)| b.num_rows()).sum()
    }

    /// The buffered batches (for queries that must see fresh data).
    pub fn buffered_batches(&self) -> Vec<RecordBatch> {
        self.lock_buffer().iter().map(|(_, b)| b.clone()).collect()
    }

    /// Writes everything acknowledged so far to Parquet and drops it from the WAL.
    pub async fn flush(&self) -> Result<WriteStats> {
        let _one_at_a_time = self.flushing.lock().await;
        let segment = {
            let _exclusive = self.gate.write().await;
            self.wal.rotate().await?
        };
        let time_ms = u64::try_from(chrono_now_ms()).unwrap_or(0);
        let batches: Vec<RecordBatch> =
            self.lock_buffer().iter().filter(|(s, _)| *s <= segment).map(|(_, b)| b.clone()).collect();
        if batches.is_empty() {
            return Ok(WriteStats::default());
        }
        let started = std::time::Instant::now();
        write_marker(self.wal.dir(), segment, "pending", &time_ms.to_string())?;
        let stats = write_flush(&self.writer, segment, time_ms, &batches).await?;
        write_marker(self.wal.dir(), segment, "done", "")?;
        self.lock_buffer().retain(|(s, _)| *s > segment);
        self.wal.remove_through(segment)?;
        remove_markers(self.wal.dir(), segment)?;
        use std::sync::atomic::Ordering::Relaxed;
        self.counters.flushed.fetch_add(stats.rows as u64, Relaxed);
        self.counters.flushes.fetch_add(1, Relaxed);
        self.counters.flush_micros.fetch_add(started.elapsed().as_micros() as u64, Relaxed);
        Ok(stats)
    }

    /// Prometheus text exposition of the ingest counters and WAL state.
    pub fn metrics_text(&self) -> String {
        use std::fmt::Write as _;
        use std::sync::atomic::Ordering::Relaxed;
        let c = &self.counters;
        let wal = self.wal.stats();
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        metric("tracelake_spans_received_total", "counter", "Spans received over OTLP.", &[("", c.received.load(Relaxed))]);
        metric("tracelake_spans_accepted_total", "counter", "Spans made durable (acknowledged).", &[("", c.accepted.load(Relaxed))]);
        metric(
            "tracelake_spans_refused_total",
            "counter",
            "Spans refused, by reason.",
            &[
                ("{reason=\"invalid\"}", c.refused_invalid.load(Relaxed)),
                ("{reason=\"unavailable\"}", c.refused_unavailable.load(Relaxed)),
            ],
        );
        metric("tracelake_spans_flushed_total", "counter", "Spans written to Parquet.", &[("", c.flushed.load(Relaxed))]);
        metric("tracelake_spans_buffered", "gauge", "Spans acknowledged and not yet in Parquet.", &[("", self.buffered_rows() as u64)]);
        metric("tracelake_flushes_total", "counter", "Completed flushes.", &[("", c.flushes.load(Relaxed))]);
        metric("tracelake_wal_records_total", "counter", "Records written to the WAL.", &[("", wal.records.load(Relaxed))]);
        metric("tracelake_wal_syncs_total", "counter", "WAL fsyncs (group commits).", &[("", wal.syncs.load(Relaxed))]);
        metric("tracelake_wal_bytes_total", "counter", "Bytes written to the WAL.", &[("", wal.bytes.load(Relaxed))]);
        let _ = writeln!(
            out,
            "# HELP tracelake_flush_seconds_total Time spent flushing to Parquet.\n# TYPE tracelake_flush_seconds_total counter\ntracelake_flush_seconds_total {}",
            c.flush_micros.load(Relaxed) as f64 / 1e6
        );
        out
    }

    fn lock_buffer(&self) -> std::sync::MutexGuard<'_, Vec<(u64, RecordBatch)>> {
        // A panic while holding the lock cannot leave the Vec half-updated: recover it.
        self.buffer.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn chrono_now_ms() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0)
}

/// Writes one file per partition with a name that depends only on (time, segment, partition).
pub async fn write_flush(writer: &SpanFileWriter, segment: u64, time_ms: u64, batches: &[RecordBatch]) -> Result<WriteStats> {
    let mut parts: BTreeMap<PartitionKey, Vec<RecordBatch>> = BTreeMap::new();
    for batch in batches {
        for (key, part) in split_by_partition(batch)? {
            parts.entry(key).or_default().push(part);
        }
    }
    let mut stats = WriteStats::default();
    for (key, batches) in parts {
        let name = ulid::Ulid::from_parts(time_ms, flush_file_id(segment, &key));
        let written = writer.write_partition_as(&key, &batches, name).await?;
        stats.files += 1;
        stats.rows += written.rows;
        stats.bytes += written.bytes;
    }
    Ok(stats)
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

enum Marker {
    Pending(u64),
    Done,
}

fn marker_path(dir: &Path, segment: u64, kind: &str) -> PathBuf {
    dir.join(format!("flush-{segment:020}.{kind}"))
}

fn write_marker(dir: &Path, segment: u64, kind: &str, content: &str) -> Result<()> {
    let path = marker_path(dir, segment, kind);
    let io = |source| Error::Io { path: path.clone(), source };
    let file = std::fs::File::create(&path).map_err(io)?;
    std::io::Write::write_all(&mut &file, content.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|source| Error::Io { path: dir.to_path_buf(), source })
}

fn remove_markers(dir: &Path, segment: u64) -> Result<()> {
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
fn markers(dir: &Path) -> Result<Vec<(u64, Marker)>> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use tracelake_schema::{PayloadFormat, decode_payload};

    /// `n` spans of two services in one hour, with distinct span ids starting at `first`.
    fn request(first: u64, n: u64) -> ExportTraceServiceRequest {
        let spans = |service: &str, range: std::ops::Range<u64>| {
            let spans: Vec<String> = range
                .map(|i| {
                    format!(
                        r#"{{"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"{i:016x}","name":"op",
                        "startTimeUnixNano":"1705312800000000000","endTimeUnixNano":"1705312800000000100"}}"#
                    )
                })
                .collect();
            format!(
                r#"{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"{service}"}}}}]}},"scopeSpans":[{{"spans":[{}]}}]}}"#,
                spans.join(",")
            )
        };
        let half = first + n / 2;
        let json = format!(r#"{{"resourceSpans":[{},{}]}}"#, spans("a", first..half), spans("b", half..first + n));
        decode_payload(json.as_bytes(), PayloadFormat::Json).unwrap().remove(0)
    }

    fn parquet_rows(dir: &Path) -> (usize, usize) {
        let (mut files, mut rows) = (0, 0);
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "parquet") {
                    let reader = SerializedFileReader::new(std::fs::File::open(&p).unwrap()).unwrap();
                    rows += reader.metadata().file_metadata().num_rows() as usize;
                    files += 1;
                }
            }
        }
        (files, rows)
    }

    struct Setup {
        data: tempfile::TempDir,
        wal: tempfile::TempDir,
    }

    impl Setup {
        fn new() -> Self {
            Self { data: tempfile::tempdir().unwrap(), wal: tempfile::tempdir().unwrap() }
        }
        async fn open(&self) -> Ingester {
            let location = DataLocation::open(self.data.path().to_str().unwrap()).unwrap();
            Ingester::open(location, WalConfig::new(self.wal.path())).await.unwrap()
        }
        fn wal_files(&self) -> Vec<String> {
            let mut v: Vec<String> =
                std::fs::read_dir(self.wal.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
            v.sort();
            v
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn flush_writes_once_and_trims_the_wal() {
        let s = Setup::new();
        let ingester = s.open().await;
        assert_eq!(ingester.ingest(&request(1, 10)).await.unwrap().accepted, 10);
        assert_eq!(ingester.buffered_rows(), 10);
        let stats = ingester.flush().await.unwrap();
        assert_eq!((stats.files, stats.rows), (2, 10));
        assert_eq!(ingester.buffered_rows(), 0);
        assert_eq!(parquet_rows(s.data.path()), (2, 10));
        assert_eq!(s.wal_files().len(), 1, "only the open segment remains: {:?}", s.wal_files());
        // Nothing new: a second flush writes nothing.
        assert_eq!(ingester.flush().await.unwrap().files, 0);
        // Unflushed data survives a restart (in the WAL) and is flushed once.
        ingester.ingest(&request(100, 4)).await.unwrap();
        drop(ingester);
        let again = s.open().await;
        assert_eq!(again.buffered_rows(), 4);
        again.flush().await.unwrap();
        assert_eq!(parquet_rows(s.data.path()).1, 14);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn crash_in_the_middle_of_a_flush_is_redone_exactly_once() {
        let s = Setup::new();
        let ingester = s.open().await;
        ingester.ingest(&request(1, 10)).await.unwrap();
        // Crash after the marker and one of the two partition files: do the first steps of a
        // flush by hand, writing only service "a"'s rows.
        let segment = ingester.wal.rotate().await.unwrap();
        write_marker(s.wal.path(), segment, "pending", "1700000000000").unwrap();
        let batches = ingester.buffered_batches();
        let (_, only_a) = split_by_partition(&batches[0]).unwrap().into_iter().find(|(k, _)| k.service == "a").unwrap();
        write_flush(&ingester.writer, segment, 1_700_000_000_000, &[only_a]).await.unwrap();
        assert_eq!(parquet_rows(s.data.path()), (1, 5));
        drop(ingester);

        let recovered = s.open().await;
        assert_eq!(parquet_rows(s.data.path()), (2, 10), "the a-file was replaced, not duplicated");
        assert_eq!(recovered.buffered_rows(), 0);
        assert!(s.wal_files().iter().all(|f| !f.starts_with("flush-")), "{:?}", s.wal_files());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn crash_after_a_complete_flush_does_not_rewrite() {
        let s = Setup::new();
        let ingester = s.open().await;
        ingester.ingest(&request(1, 6)).await.unwrap();
        let segment = ingester.wal.rotate().await.unwrap();
        write_marker(s.wal.path(), segment, "pending", "1700000000000").unwrap();
        write_flush(&ingester.writer, segment, 1_700_000_000_000, &ingester.buffered_batches()).await.unwrap();
        write_marker(s.wal.path(), segment, "done", "").unwrap();
        drop(ingester); // crash before the WAL was trimmed
        let recovered = s.open().await;
        assert_eq!(recovered.buffered_rows(), 0);
        assert_eq!(parquet_rows(s.data.path()), (2, 6));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn invalid_spans_are_reported_and_valid_ones_kept() {
        let s = Setup::new();
        let ingester = s.open().await;
        let mut req = request(1, 4);
        req.resource_spans[0].scope_spans[0].spans[0].trace_id.truncate(3);
        let outcome = ingester.ingest(&req).await.unwrap();
        assert_eq!(outcome.accepted, 3);
        assert_eq!(outcome.rejected.len(), 1);
        assert!(outcome.rejected[0].reason.contains("trace_id must be 16 bytes, got 3"));
    }
}
