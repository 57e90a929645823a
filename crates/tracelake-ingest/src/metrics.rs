//! Ingest metrics in the Prometheus text format: counters, a flush-latency histogram, and the
//! SLIs that need no query — ingest rate and span drop rate over the last minute.
//!
//! "Dropped" means refused: tracelake never drops an acknowledged span, so every span it does
//! not keep was answered with an error or a `partial_success` the sender can see.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use tracelake_schema::LimitCounts;

/// Why spans were refused (the `reason` label of `tracelake_spans_refused_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalReason {
    /// The span failed validation (ids, timestamps).
    Invalid,
    /// The buffer was over its memory limit (429 / RESOURCE_EXHAUSTED).
    Overloaded,
    /// The write-ahead log could not take the data (503 / UNAVAILABLE).
    Unavailable,
}

impl RefusalReason {
    const ALL: [RefusalReason; 3] = [Self::Invalid, Self::Overloaded, Self::Unavailable];

    fn label(self) -> &'static str {
        match self {
            Self::Invalid => "invalid",
            Self::Overloaded => "overloaded",
            Self::Unavailable => "unavailable",
        }
    }
}

/// Upper bounds (seconds) of the flush-latency histogram buckets.
const FLUSH_BUCKETS: [f64; 11] = [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
/// Window of the rate SLIs.
const WINDOW_SECS: usize = 60;

/// Every ingest counter; shared by the receivers and the flusher.
#[derive(Debug)]
pub struct IngestMetrics {
    received: AtomicU64,
    accepted: AtomicU64,
    refused: [AtomicU64; 3],
    request_bytes: AtomicU64,
    dropped_attributes: AtomicU64,
    truncated_values: AtomicU64,
    flushed: AtomicU64,
    flush_failures: AtomicU64,
    flush_buckets: [AtomicU64; FLUSH_BUCKETS.len()],
    flush_count: AtomicU64,
    flush_micros: AtomicU64,
    window: Mutex<RateWindow>,
}

impl Default for IngestMetrics {
    fn default() -> Self {
        Self {
            received: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            refused: Default::default(),
            request_bytes: AtomicU64::new(0),
            dropped_attributes: AtomicU64::new(0),
            truncated_values: AtomicU64::new(0),
            flushed: AtomicU64::new(0),
            flush_failures: AtomicU64::new(0),
            flush_buckets: Default::default(),
            flush_count: AtomicU64::new(0),
            flush_micros: AtomicU64::new(0),
            window: Mutex::new(RateWindow::new(Instant::now())),
        }
    }
}

/// Gauges read at scrape time from the ingester and its WAL.
#[derive(Debug, Clone, Copy, Default)]
pub struct IngestGauges {
    /// Spans acknowledged and not yet in Parquet.
    pub buffered_spans: u64,
    /// Arrow bytes of those spans.
    pub buffered_bytes: u64,
    /// The buffer's memory limit.
    pub max_buffered_bytes: u64,
    /// WAL segments on disk, in bytes.
    pub wal_disk_bytes: u64,
    /// WAL records, fsyncs and bytes written since start.
    pub wal_records: u64,
    /// See `wal_records`.
    pub wal_syncs: u64,
    /// See `wal_records`.
    pub wal_bytes: u64,
}

impl IngestGauges {
    /// Sums of two sets of gauges (several tenants' ingesters).
    pub fn add(self, o: IngestGauges) -> IngestGauges {
        IngestGauges {
            buffered_spans: self.buffered_spans + o.buffered_spans,
            buffered_bytes: self.buffered_bytes + o.buffered_bytes,
            max_buffered_bytes: self.max_buffered_bytes + o.max_buffered_bytes,
            wal_disk_bytes: self.wal_disk_bytes + o.wal_disk_bytes,
            wal_records: self.wal_records + o.wal_records,
            wal_syncs: self.wal_syncs + o.wal_syncs,
            wal_bytes: self.wal_bytes + o.wal_bytes,
        }
    }
}

impl IngestMetrics {
    /// A request of `bytes` arrived.
    pub fn request(&self, bytes: usize) {
        self.request_bytes.fetch_add(bytes as u64, Relaxed);
    }

    /// `accepted` spans were made durable; attribute limits changed what `limited` says.
    pub fn accepted(&self, accepted: usize, limited: LimitCounts) {
        self.received.fetch_add(accepted as u64, Relaxed);
        self.accepted.fetch_add(accepted as u64, Relaxed);
        self.dropped_attributes.fetch_add(limited.dropped_attributes, Relaxed);
        self.truncated_values.fetch_add(limited.truncated_values, Relaxed);
        self.lock_window().add(Instant::now(), accepted as u64, 0);
    }

    /// `spans` were refused for `reason`.
    pub fn refused(&self, spans: usize, reason: RefusalReason) {
        self.received.fetch_add(spans as u64, Relaxed);
        self.refused[reason as usize].fetch_add(spans as u64, Relaxed);
        self.lock_window().add(Instant::now(), 0, spans as u64);
    }

    /// A flush wrote `spans` in `took`.
    pub fn flushed(&self, spans: usize, took: Duration) {
        self.flushed.fetch_add(spans as u64, Relaxed);
        let secs = took.as_secs_f64();
        if let Some(i) = FLUSH_BUCKETS.iter().position(|upper| secs <= *upper) {
            self.flush_buckets[i].fetch_add(1, Relaxed);
        }
        self.flush_count.fetch_add(1, Relaxed);
        self.flush_micros.fetch_add(took.as_micros() as u64, Relaxed);
    }

    /// A flush failed (it is retried).
    pub fn flush_failed(&self) {
        self.flush_failures.fetch_add(1, Relaxed);
    }

    /// Spans refused for `reason` so far.
    pub fn refused_total(&self, reason: RefusalReason) -> u64 {
        self.refused[reason as usize].load(Relaxed)
    }

    /// The Prometheus text exposition.
    pub fn render(&self, gauges: IngestGauges) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, String)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        let one = |v: u64| vec![(String::new(), v.to_string())];
        let counter = |c: &AtomicU64| one(c.load(Relaxed));
        metric("tracelake_spans_received_total", "counter", "Spans received over OTLP.", &counter(&self.received));
        metric("tracelake_spans_accepted_total", "counter", "Spans made durable (acknowledged).", &counter(&self.accepted));
        let refused: Vec<(String, String)> = RefusalReason::ALL
            .iter()
            .map(|r| (format!("{{reason=\"{}\"}}", r.label()), self.refused_total(*r).to_string()))
            .collect();
        metric("tracelake_spans_refused_total", "counter", "Spans refused, by reason.", &refused);
        metric("tracelake_request_bytes_total", "counter", "Bytes of OTLP request bodies received.", &counter(&self.request_bytes));
        metric(
            "tracelake_attributes_dropped_total",
            "counter",
            "Attributes dropped because a list was over the attribute count limit.",
            &counter(&self.dropped_attributes),
        );
        metric(
            "tracelake_attribute_values_truncated_total",
            "counter",
            "Attribute values cut to the value length limit.",
            &counter(&self.truncated_values),
        );
        metric("tracelake_spans_flushed_total", "counter", "Spans written to Parquet.", &counter(&self.flushed));
        metric("tracelake_flush_failures_total", "counter", "Flushes that failed and were retried.", &counter(&self.flush_failures));
        metric("tracelake_spans_buffered", "gauge", "Spans acknowledged and not yet in Parquet.", &one(gauges.buffered_spans));
        metric("tracelake_buffered_bytes", "gauge", "Memory held by buffered spans (Arrow bytes).", &one(gauges.buffered_bytes));
        metric("tracelake_buffered_bytes_limit", "gauge", "Buffer memory limit; above it requests get 429/RESOURCE_EXHAUSTED.", &one(gauges.max_buffered_bytes));
        metric("tracelake_wal_disk_bytes", "gauge", "Size of the write-ahead log on disk.", &one(gauges.wal_disk_bytes));
        metric("tracelake_wal_records_total", "counter", "Records written to the WAL.", &one(gauges.wal_records));
        metric("tracelake_wal_syncs_total", "counter", "WAL fsyncs (group commits).", &one(gauges.wal_syncs));
        metric("tracelake_wal_bytes_total", "counter", "Bytes written to the WAL.", &one(gauges.wal_bytes));
        let mut cumulative = 0;
        let mut buckets: Vec<(String, String)> = FLUSH_BUCKETS
            .iter()
            .zip(&self.flush_buckets)
            .map(|(upper, count)| {
                cumulative += count.load(Relaxed);
                (format!("_bucket{{le=\"{upper}\"}}"), cumulative.to_string())
            })
            .collect();
        let count = self.flush_count.load(Relaxed);
        buckets.push(("_bucket{le=\"+Inf\"}".into(), count.to_string()));
        buckets.push(("_sum".into(), (self.flush_micros.load(Relaxed) as f64 / 1e6).to_string()));
        buckets.push(("_count".into(), count.to_string()));
        metric("tracelake_flush_duration_seconds", "histogram", "Time to write buffered spans to Parquet.", &buckets);
        let (accepted, refused) = self.lock_window().sums(Instant::now());
        let rate = accepted as f64 / WINDOW_SECS as f64;
        let drop_ratio = if accepted + refused == 0 { 0.0 } else { refused as f64 / (accepted + refused) as f64 };
        metric(
            "tracelake_ingest_spans_per_second",
            "gauge",
            "SLI: spans accepted per second, averaged over the last 60 s.",
            &[(String::new(), rate.to_string())],
        );
        metric(
            "tracelake_span_drop_ratio",
            "gauge",
            "SLI: refused / received spans over the last 60 s (0 when nothing arrived).",
            &[(String::new(), drop_ratio.to_string())],
        );
        out
    }

    fn lock_window(&self) -> std::sync::MutexGuard<'_, RateWindow> {
        self.window.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Per-second (accepted, refused) totals of the last [`WINDOW_SECS`] seconds.
#[derive(Debug)]
struct RateWindow {
    origin: Instant,
    /// (second since origin, accepted, refused), indexed by second % WINDOW_SECS.
    slots: [(u64, u64, u64); WINDOW_SECS],
}

impl RateWindow {
    fn new(origin: Instant) -> Self {
        Self { origin, slots: [(u64::MAX, 0, 0); WINDOW_SECS] }
    }

    fn add(&mut self, now: Instant, accepted: u64, refused: u64) {
        let second = now.saturating_duration_since(self.origin).as_secs();
        let slot = &mut self.slots[(second % WINDOW_SECS as u64) as usize];
        if slot.0 != second {
            *slot = (second, 0, 0);
        }
        slot.1 += accepted;
        slot.2 += refused;
    }

    /// Sums over the seconds (now − 60 s, now].
    fn sums(&self, now: Instant) -> (u64, u64) {
        let second = now.saturating_duration_since(self.origin).as_secs();
        self.slots
            .iter()
            .filter(|(s, _, _)| *s != u64::MAX && *s + WINDOW_SECS as u64 > second && *s <= second)
            .fold((0, 0), |(a, r), (_, sa, sr)| (a + sa, r + sr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_window_forgets_seconds_older_than_a_minute() {
        let t0 = Instant::now();
        let mut w = RateWindow::new(t0);
        w.add(t0, 100, 1);
        w.add(t0 + Duration::from_secs(30), 50, 0);
        assert_eq!(w.sums(t0 + Duration::from_secs(30)), (150, 1));
        assert_eq!(w.sums(t0 + Duration::from_secs(60)), (50, 0), "second 0 left the window");
        // Slot reuse: second 61 shares a slot with second 1.
        w.add(t0 + Duration::from_secs(61), 7, 3);
        assert_eq!(w.sums(t0 + Duration::from_secs(61)), (57, 3));
        assert_eq!(w.sums(t0 + Duration::from_secs(200)), (0, 0));
    }

    #[test]
    fn exposition_has_histogram_and_slis() {
        let m = IngestMetrics::default();
        m.accepted(90, LimitCounts { dropped_attributes: 2, truncated_values: 1 });
        m.refused(10, RefusalReason::Overloaded);
        m.flushed(90, Duration::from_millis(70));
        m.flushed(10, Duration::from_secs(100));
        let text = m.render(IngestGauges::default());
        for line in [
            "tracelake_spans_received_total 100",
            "tracelake_spans_refused_total{reason=\"overloaded\"} 10",
            "tracelake_attributes_dropped_total 2",
            "tracelake_flush_duration_seconds_bucket{le=\"0.05\"} 0",
            "tracelake_flush_duration_seconds_bucket{le=\"0.1\"} 1",
            "tracelake_flush_duration_seconds_bucket{le=\"60\"} 1",
            "tracelake_flush_duration_seconds_bucket{le=\"+Inf\"} 2",
            "tracelake_flush_duration_seconds_count 2",
            "tracelake_ingest_spans_per_second 1.5",
            "tracelake_span_drop_ratio 0.1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
    }
}
