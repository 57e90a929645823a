//! Query metrics for `/metrics`: queries by outcome and a latency histogram.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::error::QueryError;

const OUTCOMES: [&str; 10] =
    ["ok", "invalid_sql", "not_found", "not_allowed", "memory_limit", "timeout", "busy", "unauthenticated", "cancelled", "internal"];
const BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0];

/// Counters of finished queries.
#[derive(Debug, Default)]
pub struct QueryMetrics {
    outcomes: [AtomicU64; OUTCOMES.len()],
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    micros: AtomicU64,
}

impl QueryMetrics {
    /// A query finished after `took`, with `error` or successfully.
    pub fn record(&self, took: Duration, error: Option<&QueryError>) {
        let outcome = error.map_or("ok", QueryError::code);
        if let Some(i) = OUTCOMES.iter().position(|o| *o == outcome) {
            self.outcomes[i].fetch_add(1, Relaxed);
        }
        let secs = took.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|upper| secs <= *upper) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.micros.fetch_add(took.as_micros() as u64, Relaxed);
    }

    /// Queries finished with `outcome` (`"ok"` or a [`QueryError::code`]).
    pub fn total(&self, outcome: &str) -> u64 {
        OUTCOMES.iter().position(|o| *o == outcome).map_or(0, |i| self.outcomes[i].load(Relaxed))
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::from(
            "# HELP tracelake_queries_total Queries finished, by outcome.\n# TYPE tracelake_queries_total counter\n",
        );
        for (outcome, count) in OUTCOMES.iter().zip(&self.outcomes) {
            let _ = writeln!(out, "tracelake_queries_total{{outcome=\"{outcome}\"}} {}", count.load(Relaxed));
        }
        let errors: u64 = self.outcomes.iter().skip(1).map(|c| c.load(Relaxed)).sum();
        let _ = writeln!(
            out,
            "# HELP tracelake_query_errors_total Queries that failed.\n# TYPE tracelake_query_errors_total counter\ntracelake_query_errors_total {errors}"
        );
        out.push_str("# HELP tracelake_query_duration_seconds Query time, planning to last batch.\n# TYPE tracelake_query_duration_seconds histogram\n");
        let mut cumulative = 0;
        for (upper, count) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += count.load(Relaxed);
            let _ = writeln!(out, "tracelake_query_duration_seconds_bucket{{le=\"{upper}\"}} {cumulative}");
        }
        let count = self.count.load(Relaxed);
        let _ = writeln!(out, "tracelake_query_duration_seconds_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "tracelake_query_duration_seconds_sum {}", self.micros.load(Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "tracelake_query_duration_seconds_count {count}");
        out
    }
}
