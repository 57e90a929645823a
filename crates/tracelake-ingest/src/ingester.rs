//! [`Ingester`]: convert → write-ahead log → memory buffer → exactly-once flush to Parquet,
//! with a memory limit that turns into backpressure, and the buffer visible to queries.
//!
//! Memory: the buffer holds acknowledged spans until a flush. Its Arrow size is reserved
//! before a request is logged; a request that would take it over
//! [`IngestConfig::max_buffered_bytes`] is refused with [`Error::Overloaded`] (the receivers
//! answer 429 / `RESOURCE_EXHAUSTED`, and the sender retries) and the flusher is woken.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use tracelake_schema::{AcceptMode, AttributeLimits, SpanRejection, convert_request_with, span_count};
use tracelake_store::{DataLocation, FreshSnapshot, FreshSpans, SpanFileWriter, WriteStats};

use crate::error::{Error, Result};
use crate::flush::{Marker, markers, plan_flush, remove_markers, write_flush, write_marker, write_plan};
use crate::metrics::{IngestGauges, IngestMetrics, RefusalReason};
use crate::wal::{Wal, WalConfig};

/// Limits of an [`Ingester`].
#[derive(Debug, Clone, Copy)]
pub struct IngestConfig {
    /// Attribute count and value-length limits (drop / truncate, counted).
    pub attribute_limits: AttributeLimits,
    /// Memory for acknowledged, unflushed spans (Arrow bytes); above it requests are refused.
    pub max_buffered_bytes: usize,
}

impl Default for IngestConfig {
    /// Server defaults: default attribute limits, 512 MiB of buffer.
    fn default() -> Self {
        Self { attribute_limits: AttributeLimits::default(), max_buffered_bytes: 512 << 20 }
    }
}

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

/// Flushes remembered for scans that started before them (see [`FreshSpans`]).
const REMEMBERED_FLUSHES: usize = 1024;

struct Buffered {
    segment: u64,
    batch: RecordBatch,
    bytes: usize,
}

#[derive(Default)]
struct BufferState {
    entries: Vec<Buffered>,
    rows: usize,
    /// Bytes of `entries` plus reservations of requests being logged.
    bytes: usize,
    /// Number of the last flush whose spans left `entries`.
    flush_mark: u64,
    /// Number of the last flush started.
    last_flush: u64,
    /// File stems of recent flushes, oldest first.
    flush_files: VecDeque<(u64, Vec<String>)>,
}

/// A flush that failed after naming its files: redone with the same names.
#[derive(Clone, Copy)]
struct UnfinishedFlush {
    number: u64,
    segment: u64,
    time_ms: u64,
}

/// Durable ingest into one data location.
pub struct Ingester {
    wal: Wal,
    writer: SpanFileWriter,
    config: IngestConfig,
    /// Appends hold it shared; a flush's rotation holds it exclusively, so every append
    /// acknowledged before the rotation is in the buffer when the flush takes its snapshot.
    gate: tokio::sync::RwLock<()>,
    /// One flush at a time; holds the flush to redo after a failure.
    flushing: tokio::sync::Mutex<Option<UnfinishedFlush>>,
    state: std::sync::Mutex<BufferState>,
    metrics: Arc<IngestMetrics>,
    flush_wanted: tokio::sync::Notify,
}

impl std::fmt::Debug for Ingester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingester").field("wal", &self.wal.dir()).field("config", &self.config).finish_non_exhaustive()
    }
}

impl Ingester {
    /// Opens the WAL, finishes any flush a crash interrupted, and buffers the rest.
    pub async fn open(location: DataLocation, wal: WalConfig, config: IngestConfig) -> Result<Self> {
        Self::open_with_metrics(location, wal, config, Arc::default()).await
    }

    /// Like [`Ingester::open`], counting into shared `metrics` (one set for all tenants).
    pub async fn open_with_metrics(
        location: DataLocation,
        wal: WalConfig,
        config: IngestConfig,
        metrics: Arc<IngestMetrics>,
    ) -> Result<Self> {
        let (wal, replayed) = Wal::open(wal)?;
        let writer = SpanFileWriter::new(location);
        let mut buffer: Vec<(u64, RecordBatch)> = replayed.into_iter().map(|(p, b)| (p.segment, b)).collect();
        for (segment, marker) in markers(wal.dir())? {
            if let Marker::Pending(time_ms) = marker {
                let batches: Vec<RecordBatch> =
                    buffer.iter().filter(|(s, _)| *s <= segment).map(|(_, b)| b.clone()).collect();
                write_flush(&writer, segment, time_ms, &batches).await?;
                write_marker(wal.dir(), segment, "done", "")?;
            }
            wal.remove_through(segment)?;
            remove_markers(wal.dir(), segment)?;
            buffer.retain(|(s, _)| *s > segment);
        }
        let mut state = BufferState::default();
        for (segment, batch) in buffer {
            let bytes = batch.get_array_memory_size();
            state.rows += batch.num_rows();
            state.bytes += bytes;
            state.entries.push(Buffered { segment, batch, bytes });
        }
        Ok(Self {
            wal,
            writer,
            config,
            gate: tokio::sync::RwLock::new(()),
            flushing: tokio::sync::Mutex::new(None),
            state: std::sync::Mutex::new(state),
            metrics,
            flush_wanted: tokio::sync::Notify::new(),
        })
    }

    /// Converts, logs (durably) and buffers a request of `wire_bytes`; returns once the
    /// accepted spans are durable.
    pub async fn ingest(&self, request: &ExportTraceServiceRequest, wire_bytes: usize) -> Result<IngestOutcome> {
        self.metrics.request(wire_bytes);
        if let Some(e) = self.overloaded(0) {
            self.metrics.refused(span_count(&request.resource_spans), RefusalReason::Overloaded);
            return Err(e);
        }
        let conversion =
            convert_request_with(request, AcceptMode::Partial, self.config.attribute_limits).map_err(Error::Schema)?;
        let accepted = conversion.batch.num_rows();
        if accepted > 0 {
            let bytes = conversion.batch.get_array_memory_size();
            if let Err(e) = self.reserve(bytes) {
                self.metrics.refused(accepted + conversion.rejected.len(), RefusalReason::Overloaded);
                return Err(e);
            }
            let _shared = self.gate.read().await;
            let position = match self.wal.append(&conversion.batch).await {
                Ok(p) => p,
                Err(e) => {
                    self.lock_state().bytes -= bytes;
                    self.metrics.refused(accepted, RefusalReason::Unavailable);
                    return Err(e);
                }
            };
            let mut state = self.lock_state();
            state.rows += accepted;
            state.entries.push(Buffered { segment: position.segment, batch: conversion.batch, bytes });
        }
        self.metrics.accepted(accepted, conversion.limited);
        self.metrics.refused(conversion.rejected.len(), RefusalReason::Invalid);
        Ok(IngestOutcome { accepted, rejected: conversion.rejected })
    }

    /// `Some(Overloaded)` if `more` bytes do not fit (an empty buffer always takes a request).
    fn overloaded(&self, more: usize) -> Option<Error> {
        let state = self.lock_state();
        let limit = self.config.max_buffered_bytes;
        let over = if more == 0 { state.bytes >= limit } else { state.bytes > 0 && state.bytes + more > limit };
        over.then(|| {
            self.flush_wanted.notify_one();
            Error::Overloaded { buffered_bytes: state.bytes, limit }
        })
    }

    fn reserve(&self, bytes: usize) -> Result<()> {
        if let Some(e) = self.overloaded(bytes) {
            return Err(e);
        }
        self.lock_state().bytes += bytes;
        Ok(())
    }

    /// Spans accepted and not yet in Parquet.
    pub fn buffered_rows(&self) -> usize {
        self.lock_state().rows
    }

    /// Bytes held (or reserved) by the buffer.
    pub fn buffered_bytes(&self) -> usize {
        self.lock_state().bytes
    }

    /// The ingest counters.
    pub fn metrics(&self) -> &IngestMetrics {
        &self.metrics
    }

    /// Writes everything acknowledged so far to Parquet and drops it from the WAL.
    /// A flush left unfinished by a failure or a cancelled task is redone first (same file
    /// names), then everything acknowledged since is flushed too.
    pub async fn flush(&self) -> Result<WriteStats> {
        let mut total = WriteStats::default();
        loop {
            let (stats, was_redo) = self.flush_once().await?;
            total.files += stats.files;
            total.rows += stats.rows;
            total.bytes += stats.bytes;
            if !was_redo {
                return Ok(total);
            }
        }
    }

    /// One flush; `true` when it was the redo of an unfinished one.
    async fn flush_once(&self) -> Result<(WriteStats, bool)> {
        let mut unfinished = self.flushing.lock().await;
        let was_redo = unfinished.is_some();
        let flush = match *unfinished {
            Some(flush) => flush,
            None => {
                let segment = {
                    let _exclusive = self.gate.write().await;
                    self.wal.rotate().await?
                };
                let time_ms = now_ms();
                if !self.lock_state().entries.iter().any(|e| e.segment <= segment) {
                    return Ok((WriteStats::default(), false));
                }
                UnfinishedFlush { number: 0, segment, time_ms }
            }
        };
        let batches: Vec<RecordBatch> =
            self.lock_state().entries.iter().filter(|e| e.segment <= flush.segment).map(|e| e.batch.clone()).collect();
        let plan = plan_flush(flush.segment, flush.time_ms, &batches)?;
        let flush = if flush.number == 0 {
            // Name the files before writing them, so scans can leave them out (see `fresh`).
            let mut state = self.lock_state();
            state.last_flush += 1;
            let number = state.last_flush;
            state.flush_files.push_back((number, plan.iter().map(|(_, _, name)| name.to_string()).collect()));
            while state.flush_files.len() > REMEMBERED_FLUSHES {
                state.flush_files.pop_front();
            }
            UnfinishedFlush { number, ..flush }
        } else {
            flush
        };
        // Until it completes, this flush is the one to redo — also if this future is dropped
        // (a cancelled task) half-way through writing.
        *unfinished = Some(flush);
        let started = Instant::now();
        let written = async {
            write_marker(self.wal.dir(), flush.segment, "pending", &flush.time_ms.to_string())?;
            let stats = write_plan(&self.writer, &plan).await?;
            write_marker(self.wal.dir(), flush.segment, "done", "")?;
            Ok::<_, Error>(stats)
        }
        .await;
        let stats = match written {
            Ok(stats) => stats,
            Err(e) => {
                self.metrics.flush_failed();
                return Err(e);
            }
        };
        *unfinished = None;
        {
            let mut state = self.lock_state();
            let (mut rows, mut bytes) = (0, 0);
            state.entries.retain(|e| {
                let keep = e.segment > flush.segment;
                if !keep {
                    rows += e.batch.num_rows();
                    bytes += e.bytes;
                }
                keep
            });
            state.rows -= rows;
            state.bytes -= bytes;
            state.flush_mark = flush.number;
        }
        self.wal.remove_through(flush.segment)?;
        remove_markers(self.wal.dir(), flush.segment)?;
        self.metrics.flushed(stats.rows, started.elapsed());
        Ok((stats, was_redo))
    }

    /// Flushes when the oldest data is `interval` old, when the buffer passes `flush_bytes`, or
    /// when a request was refused for lack of memory; retries failures with backoff. Runs
    /// until the task is dropped.
    pub async fn run_flusher(self: Arc<Self>, interval: Duration, flush_bytes: usize) {
        let mut last = tokio::time::Instant::now();
        let mut backoff = Duration::from_secs(1);
        loop {
            let woken = tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(100)) => false,
                () = self.flush_wanted.notified() => true,
            };
            let (rows, bytes) = {
                let state = self.lock_state();
                (state.rows, state.bytes)
            };
            let due = rows > 0 && (last.elapsed() >= interval || bytes >= flush_bytes || woken);
            if !due {
                continue;
            }
            match self.flush().await {
                Ok(_) => backoff = Duration::from_secs(1),
                Err(e) => {
                    // The spans stay in the WAL and the buffer; the same flush is redone.
                    tracing::error!(error = %e, retry_in = ?backoff, "flush failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
            last = tokio::time::Instant::now();
        }
    }

    /// Prometheus text exposition of the ingest metrics.
    pub fn metrics_text(&self) -> String {
        self.metrics.render(self.gauges())
    }

    /// This ingester's gauges (buffer and WAL).
    pub fn gauges(&self) -> IngestGauges {
        use std::sync::atomic::Ordering::Relaxed;
        let wal = self.wal.stats();
        let (rows, bytes) = {
            let state = self.lock_state();
            (state.rows, state.bytes)
        };
        IngestGauges {
            buffered_spans: rows as u64,
            buffered_bytes: bytes as u64,
            max_buffered_bytes: self.config.max_buffered_bytes as u64,
            wal_disk_bytes: self.wal.disk_bytes(),
            wal_records: wal.records.load(Relaxed),
            wal_syncs: wal.syncs.load(Relaxed),
            wal_bytes: wal.bytes.load(Relaxed),
        }
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, BufferState> {
        // Every update of the state is a few field writes with no panics in between: a
        // poisoned lock still guards a consistent state.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl FreshSpans for Ingester {
    fn snapshot(&self) -> FreshSnapshot {
        let state = self.lock_state();
        FreshSnapshot { batches: state.entries.iter().map(|e| e.batch.clone()).collect(), flush_mark: state.flush_mark }
    }

    fn files_flushed_after(&self, flush_mark: u64) -> datafusion::error::Result<HashSet<String>> {
        let state = self.lock_state();
        if state.last_flush > flush_mark && state.flush_files.front().is_none_or(|(n, _)| *n > flush_mark + 1) {
            return Err(datafusion::error::DataFusionError::Execution(
                "the ingest buffer was flushed too often while this query was planned; run it again".into(),
            ));
        }
        Ok(state.flush_files.iter().filter(|(n, _)| *n > flush_mark).flat_map(|(_, files)| files.iter().cloned()).collect())
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
#[path = "ingester_tests.rs"]
mod tests;
