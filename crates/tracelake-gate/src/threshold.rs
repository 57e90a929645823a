//! Threshold rules: how much worse a metric may get before the gate fails.
//!
//! Syntax (flags `--threshold "p99 +10%"`, or the gate file's `[thresholds]` table):
//!
//! | rule | fails when |
//! |---|---|
//! | `p99 +10%` | candidate p99 > baseline p99 × 1.10 |
//! | `p99 +5ms` (`ns`, `us`/`µs`, `ms`, `s`) | candidate p99 > baseline p99 + 5 ms |
//! | `mean +10%` | same for the mean |
//! | `error_rate +0.5pp` | candidate error rate > baseline + 0.5 percentage points |
//! | `error_rate +20%` | candidate error rate > baseline × 1.2 |
//! | `throughput -10%` | candidate spans/s < baseline × 0.90 |
//!
//! …and in each case the change is statistically significant (see `compare`).

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

/// A compared metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    /// Median latency.
    P50,
    /// 90th percentile latency.
    P90,
    /// 95th percentile latency.
    P95,
    /// 99th percentile latency.
    P99,
    /// 99.9th percentile latency.
    P999,
    /// Mean latency.
    Mean,
    /// Share of spans (or traces) with status ERROR.
    ErrorRate,
    /// Spans (or traces) per second over the side's time window.
    Throughput,
}

impl Metric {
    /// Every metric, in report order.
    pub const ALL: [Metric; 8] = [
        Metric::P50,
        Metric::P90,
        Metric::P95,
        Metric::P99,
        Metric::P999,
        Metric::Mean,
        Metric::ErrorRate,
        Metric::Throughput,
    ];

    /// The latency quantiles, in report order.
    pub const QUANTILES: [Metric; 5] = [Metric::P50, Metric::P90, Metric::P95, Metric::P99, Metric::P999];

    /// Name as users write it.
    pub fn name(self) -> &'static str {
        match self {
            Metric::P50 => "p50",
            Metric::P90 => "p90",
            Metric::P95 => "p95",
            Metric::P99 => "p99",
            Metric::P999 => "p99.9",
            Metric::Mean => "mean",
            Metric::ErrorRate => "error_rate",
            Metric::Throughput => "throughput",
        }
    }

    /// The quantile in [0, 1] for latency quantiles.
    pub fn quantile(self) -> Option<f64> {
        match self {
            Metric::P50 => Some(0.5),
            Metric::P90 => Some(0.9),
            Metric::P95 => Some(0.95),
            Metric::P99 => Some(0.99),
            Metric::P999 => Some(0.999),
            _ => None,
        }
    }

    /// Whether the metric is a latency (quantile or mean, in ns).
    pub fn is_latency(self) -> bool {
        matches!(self, Metric::Mean) || self.quantile().is_some()
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Metric {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl FromStr for Metric {
    type Err = ThresholdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let name = s.trim().to_ascii_lowercase();
        Metric::ALL
            .into_iter()
            .find(|m| m.name() == name || (name == "p999" && *m == Metric::P999) || (name == "median" && *m == Metric::P50))
            .ok_or_else(|| ThresholdError::UnknownMetric(s.trim().to_string()))
    }
}

/// How a threshold's amount is measured.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "unit", content = "amount", rename_all = "snake_case")]
pub enum Allowance {
    /// Relative change as a fraction (`+10%` → 0.10; `-10%` → −0.10 for throughput).
    Relative(f64),
    /// Absolute change of a latency, in ns.
    AbsoluteNs(f64),
    /// Absolute change of the error rate, as a fraction (`+0.5pp` → 0.005).
    PercentagePoints(f64),
}

/// One rule: `metric` may change by at most `allowance` in the bad direction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Threshold {
    /// The metric.
    pub metric: Metric,
    /// The allowed change.
    pub allowance: Allowance,
}

impl Threshold {
    /// Parses `"METRIC CHANGE"`, e.g. `p99 +10%`.
    pub fn parse(rule: &str) -> Result<Self, ThresholdError> {
        let rule = rule.trim();
        let split = rule.find(|c: char| c.is_whitespace() || c == '+' || c == '-').ok_or_else(|| {
            ThresholdError::Syntax(rule.to_string(), "expected METRIC CHANGE, e.g. \"p99 +10%\"".into())
        })?;
        let (metric, change) = rule.split_at(split);
        Threshold::parse_change(metric.parse()?, change)
    }

    /// Parses the change part (`+10%`, `+5ms`, `+0.5pp`, `-10%`) for `metric`.
    pub fn parse_change(metric: Metric, change: &str) -> Result<Self, ThresholdError> {
        let text = change.trim();
        let bad = |why: &str| ThresholdError::Syntax(format!("{metric} {text}"), why.to_string());
        let (sign, rest) = match text.chars().next() {
            Some('+') => (1.0, &text[1..]),
            Some('-') => (-1.0, &text[1..]),
            _ => return Err(bad("the change must start with + (or - for throughput), e.g. +10%")),
        };
        let rest = rest.trim();
        let unit_at = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let (number, unit) = rest.split_at(unit_at);
        let amount: f64 = number.parse().map_err(|_| bad("the amount is not a number"))?;
        if !amount.is_finite() || amount < 0.0 {
            return Err(bad("the amount must be a finite number ≥ 0"));
        }
        let unit = unit.trim().to_ascii_lowercase();
        let allowance = match unit.as_str() {
            "%" => Allowance::Relative(sign * amount / 100.0),
            "pp" if metric == Metric::ErrorRate => Allowance::PercentagePoints(sign * amount / 100.0),
            "pp" => return Err(bad("percentage points (pp) apply to error_rate only")),
            "ns" | "us" | "µs" | "ms" | "s" if metric.is_latency() => {
                let scale = match unit.as_str() {
                    "ns" => 1.0,
                    "us" | "µs" => 1e3,
                    "ms" => 1e6,
                    _ => 1e9,
                };
                Allowance::AbsoluteNs(sign * amount * scale)
            }
            "ns" | "us" | "µs" | "ms" | "s" => return Err(bad("time units apply to latency metrics only")),
            "" => return Err(bad("missing unit: use %, pp (error_rate), or ns/us/ms/s (latency)")),
            _ => return Err(bad("unknown unit: use %, pp (error_rate), or ns/us/ms/s (latency)")),
        };
        // The bad direction: up for latency and errors, down for throughput.
        let wants_decrease = metric == Metric::Throughput;
        if wants_decrease != (sign < 0.0) {
            return Err(bad(if wants_decrease {
                "throughput regresses downwards: write it as -N%"
            } else {
                "latency and error rate regress upwards: write it as +N"
            }));
        }
        Ok(Threshold { metric, allowance })
    }

    /// The default rules: p50 and p99 may grow by 10 %, the error rate by 0.5 points.
    pub fn defaults() -> Vec<Threshold> {
        vec![
            Threshold { metric: Metric::P50, allowance: Allowance::Relative(0.10) },
            Threshold { metric: Metric::P99, allowance: Allowance::Relative(0.10) },
            Threshold { metric: Metric::ErrorRate, allowance: Allowance::PercentagePoints(0.005) },
        ]
    }

    /// The change part as written, e.g. `+10%`.
    pub fn change_text(&self) -> String {
        match self.allowance {
            Allowance::Relative(f) => format!("{:+}%", round_for_display(f * 100.0)),
            Allowance::AbsoluteNs(ns) => format!("+{}", crate::report::format_duration(ns)),
            Allowance::PercentagePoints(f) => format!("+{}pp", round_for_display(f * 100.0)),
        }
    }
}

fn round_for_display(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.metric, self.change_text())
    }
}

impl Serialize for Threshold {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// A rule that does not parse.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ThresholdError {
    /// Unknown metric name.
    #[error("unknown metric {0:?} (metrics: p50, p90, p95, p99, p99.9, mean, error_rate, throughput)")]
    UnknownMetric(String),
    /// Malformed rule.
    #[error("threshold {0:?}: {1}")]
    Syntax(String, String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rules() {
        let t = Threshold::parse("p99 +10%").unwrap();
        assert_eq!((t.metric, t.allowance), (Metric::P99, Allowance::Relative(0.10)));
        assert_eq!(Threshold::parse("p99.9 +5ms").unwrap().allowance, Allowance::AbsoluteNs(5e6));
        assert_eq!(Threshold::parse("p95+250us").unwrap().allowance, Allowance::AbsoluteNs(250e3));
        assert_eq!(Threshold::parse("error_rate +0.5pp").unwrap().allowance, Allowance::PercentagePoints(0.005));
        assert_eq!(Threshold::parse("throughput -10%").unwrap().allowance, Allowance::Relative(-0.10));
        assert_eq!(Threshold::parse("median +3%").unwrap().metric, Metric::P50);
        assert_eq!(Threshold::parse("p99 +10%").unwrap().to_string(), "p99 +10%");
        assert_eq!(Threshold::parse("p99 +1.5ms").unwrap().to_string(), "p99 +1.5ms");
    }

    #[test]
    fn rejects_nonsense_with_reasons() {
        let err = |r: &str| Threshold::parse(r).unwrap_err().to_string();
        assert!(err("p98 +10%").contains("unknown metric"));
        assert!(err("p99 10%").contains("must start with +"));
        assert!(err("p99 +ten%").contains("not a number"));
        assert!(err("p99 +10").contains("missing unit"));
        assert!(err("p99 +1pp").contains("error_rate only"));
        assert!(err("error_rate +1ms").contains("latency metrics only"));
        assert!(err("throughput +10%").contains("-N%"));
        assert!(err("p99 -10%").contains("upwards"));
        assert!(err("p99").contains("METRIC CHANGE"));
    }
}
