//! One scope's comparison: summary statistics of both sides, the whole-distribution tests,
//! and each threshold rule measured as (change, confidence interval, one-sided p-value).
//! Verdicts need every scope's p-values (for the multiple-comparison correction) and are
//! decided in [`crate::gate`].
//!
//! How each rule's change is measured (one-sided p-value for "worse", interval at the gate's
//! confidence level):
//! - quantiles: the seeded bootstrap of [`crate::bootstrap`]; relative rules on
//!   log(candidate/baseline), absolute rules on candidate − baseline; percentile interval,
//!   p-value from the bootstrap standard error (z = change / SE).
//! - mean: Welch's normal approximation (a bootstrap of a mean converges to it, and resampling
//!   1M values thousands of times would cost seconds); ratio interval by the delta method.
//! - error rate: two-proportion z-test (pooled), Wald interval.
//! - throughput: ratio of Poisson rates, z on the log ratio (SE² = 1/n₁ + 1/n₂).

use serde::Serialize;

use crate::bootstrap::{bootstrap_quantiles, percentile_interval, standard_error};
use crate::stats::{KsTest, MannWhitney, ks_test, mann_whitney, mean_variance, normal_sf, quantile};
use crate::threshold::{Allowance, Metric, Threshold};

/// Latencies and errors of one side of one scope.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    /// Durations in ns, sorted ascending.
    durations: Vec<i64>,
    /// Spans (or traces) with status ERROR.
    pub errors: u64,
    /// Length of the side's time window in seconds, for throughput (`None`: unknown).
    pub window_secs: Option<f64>,
}

impl Sample {
    /// A sample from unsorted durations.
    pub fn new(mut durations: Vec<i64>, errors: u64, window_secs: Option<f64>) -> Self {
        durations.sort_unstable();
        Sample { durations, errors, window_secs }
    }

    /// Durations, sorted ascending.
    pub fn durations(&self) -> &[i64] {
        &self.durations
    }

    /// Number of spans (or traces).
    pub fn len(&self) -> usize {
        self.durations.len()
    }

    /// Whether the sample is empty.
    pub fn is_empty(&self) -> bool {
        self.durations.is_empty()
    }
}

/// What a comparison covers: every selected span, or one (service, operation).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ScopeKey {
    /// `service_name`, if the scope is restricted to one.
    pub service: Option<String>,
    /// `span_name` (operation), if restricted to one.
    pub operation: Option<String>,
}

impl std::fmt::Display for ScopeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.service, &self.operation) {
            (Some(s), Some(o)) => write!(f, "{s} / {o}"),
            (Some(s), None) => write!(f, "{s}"),
            (None, Some(o)) => write!(f, "{o}"),
            (None, None) => write!(f, "all selected"),
        }
    }
}

/// Summary statistics of one side.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SideStats {
    /// Spans (or traces).
    pub count: usize,
    /// Of which status ERROR.
    pub errors: u64,
    /// errors / count.
    pub error_rate: Option<f64>,
    /// Mean duration, ns.
    pub mean_ns: Option<f64>,
    /// Quantiles, ns.
    pub p50_ns: Option<f64>,
    /// 90th percentile, ns.
    pub p90_ns: Option<f64>,
    /// 95th percentile, ns.
    pub p95_ns: Option<f64>,
    /// 99th percentile, ns.
    pub p99_ns: Option<f64>,
    /// 99.9th percentile, ns.
    pub p999_ns: Option<f64>,
    /// count / window, per second.
    pub throughput_per_s: Option<f64>,
    /// The time window used for throughput, seconds.
    pub window_secs: Option<f64>,
}

impl SideStats {
    fn of(sample: &Sample) -> Self {
        let d = sample.durations();
        let count = d.len();
        let q = |p: f64| quantile(d, p);
        SideStats {
            count,
            errors: sample.errors,
            error_rate: (count > 0).then(|| sample.errors as f64 / count as f64),
            mean_ns: mean_variance(d).map(|(m, _)| m),
            p50_ns: q(0.5),
            p90_ns: q(0.9),
            p95_ns: q(0.95),
            p99_ns: q(0.99),
            p999_ns: q(0.999),
            throughput_per_s: sample.window_secs.filter(|w| *w > 0.0).map(|w| count as f64 / w),
            window_secs: sample.window_secs,
        }
    }

    /// The value of `metric` on this side.
    pub fn value(&self, metric: Metric) -> Option<f64> {
        match metric {
            Metric::P50 => self.p50_ns,
            Metric::P90 => self.p90_ns,
            Metric::P95 => self.p95_ns,
            Metric::P99 => self.p99_ns,
            Metric::P999 => self.p999_ns,
            Metric::Mean => self.mean_ns,
            Metric::ErrorRate => self.error_rate,
            Metric::Throughput => self.throughput_per_s,
        }
    }
}

/// Outcome of a rule, of a scope, or of the whole gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Within the threshold, or not significantly worse.
    Pass,
    /// Not evaluated: too few samples for this rule (per-operation mode only).
    Skipped,
    /// Too few samples, or worse than the threshold but within noise.
    Inconclusive,
    /// Worse than the threshold, and significantly so.
    Regression,
}

impl Verdict {
    /// The process exit code of a gate with this verdict.
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Pass | Verdict::Skipped => 0,
            Verdict::Regression => 1,
            Verdict::Inconclusive => 2,
        }
    }

    /// Lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Skipped => "skipped",
            Verdict::Inconclusive => "inconclusive",
            Verdict::Regression => "regression",
        }
    }
}

/// One threshold rule on one scope.
#[derive(Debug, Clone, Serialize)]
pub struct RuleResult {
    /// The rule.
    pub threshold: Threshold,
    /// Baseline value of the metric (ns, fraction, or per second).
    pub baseline: Option<f64>,
    /// Candidate value.
    pub candidate: Option<f64>,
    /// Observed change in the rule's unit: a fraction for `%` rules, ns for time rules, a
    /// fraction (of 1) for `pp` rules.
    pub change: Option<f64>,
    /// Confidence interval of the change, same unit.
    pub ci_low: Option<f64>,
    /// Upper end of the interval.
    pub ci_high: Option<f64>,
    /// One-sided p-value of "the candidate is worse" (no correction).
    pub p_value: Option<f64>,
    /// After the multiple-comparison correction over every evaluated rule of the gate.
    pub p_adjusted: Option<f64>,
    /// The rule's verdict.
    pub verdict: Verdict,
    /// Beyond the allowance but not significant: passed (or inconclusive with `strict`).
    pub noisy: bool,
    /// Why, in words.
    pub reason: String,
}

impl RuleResult {
    /// Whether the observed change is beyond the allowance in the bad direction.
    pub fn beyond_threshold(&self) -> bool {
        let Some(change) = self.change else { return false };
        match self.threshold.allowance {
            Allowance::Relative(a) if self.threshold.metric == Metric::Throughput => change < a,
            Allowance::Relative(a) | Allowance::AbsoluteNs(a) | Allowance::PercentagePoints(a) => change > a,
        }
    }

    /// How far beyond the allowance the change is, as a multiple of it (for ranking).
    pub fn severity(&self) -> f64 {
        let Some(change) = self.change else { return f64::NEG_INFINITY };
        let allowance = match self.threshold.allowance {
            Allowance::Relative(a) | Allowance::AbsoluteNs(a) | Allowance::PercentagePoints(a) => a,
        };
        if allowance == 0.0 { change.signum() * f64::MAX.sqrt() } else { change / allowance }
    }
}

/// One scope's comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// Service / operation, or everything selected.
    pub scope: ScopeKey,
    /// The baseline's statistics.
    pub baseline: SideStats,
    /// The candidate's statistics.
    pub candidate: SideStats,
    /// Kolmogorov–Smirnov test of the whole latency distributions (two-sided).
    pub kolmogorov_smirnov: Option<KsTest>,
    /// Mann–Whitney U test: is the candidate slower (one-sided)?
    pub mann_whitney: Option<MannWhitney>,
    /// Each threshold rule.
    pub rules: Vec<RuleResult>,
    /// The scope's verdict (worst of its rules).
    pub verdict: Verdict,
}

/// Gate settings shared by every comparison.
#[derive(Debug, Clone, Serialize)]
pub struct GateSettings {
    /// Threshold rules.
    pub thresholds: Vec<Threshold>,
    /// Confidence level of intervals; α = 1 − confidence for significance.
    pub confidence: f64,
    /// Bootstrap resamples per comparison.
    pub bootstrap_resamples: usize,
    /// Bootstrap seed: the same seed and data give the same report.
    pub seed: u64,
    /// Each side needs at least this many spans (or traces) to be compared at all.
    pub min_samples: usize,
    /// A quantile q is compared only with this many values beyond it on each side
    /// (n ≥ min_tail_samples / (1 − q): p99 needs 1 000 values with the default 10).
    pub min_tail_samples: usize,
    /// Correction over all evaluated rules of the gate.
    pub correction: crate::stats::Correction,
    /// A change beyond its allowance that is not significant makes the rule inconclusive
    /// (exit 2) instead of passing.
    pub strict: bool,
}

impl Default for GateSettings {
    fn default() -> Self {
        GateSettings {
            thresholds: Threshold::defaults(),
            confidence: 0.95,
            bootstrap_resamples: 2000,
            seed: 42,
            min_samples: 100,
            min_tail_samples: 10,
            correction: crate::stats::Correction::Holm,
            strict: false,
        }
    }
}

impl GateSettings {
    /// Samples each side needs for `metric`.
    pub fn samples_needed(&self, metric: Metric) -> usize {
        match metric.quantile() {
            Some(q) if q < 1.0 => self.min_samples.max((self.min_tail_samples as f64 / (1.0 - q) - 1e-9).ceil() as usize),
            _ => self.min_samples,
        }
    }
}

/// Measures one scope: statistics, distribution tests and every rule's change, interval and
/// raw p-value. Rules lacking samples get `insufficient` as their verdict.
pub fn measure(scope: ScopeKey, baseline: &Sample, candidate: &Sample, settings: &GateSettings, insufficient: Verdict) -> Comparison {
    let stats_b = SideStats::of(baseline);
    let stats_c = SideStats::of(candidate);
    let (db, dc) = (baseline.durations(), candidate.durations());
    let z = z_for_confidence(settings.confidence);

    let quantile_metrics: Vec<Metric> = {
        let mut m: Vec<Metric> = settings.thresholds.iter().map(|t| t.metric).filter(|m| m.quantile().is_some()).collect();
        m.sort();
        m.dedup();
        m
    };
    let boot = (!db.is_empty() && !dc.is_empty() && !quantile_metrics.is_empty()).then(|| {
        let qs: Vec<f64> = quantile_metrics.iter().filter_map(|m| m.quantile()).collect();
        bootstrap_quantiles(db, dc, &qs, settings.bootstrap_resamples, scope_seed(settings.seed, &scope))
    });

    let rules = settings
        .thresholds
        .iter()
        .map(|&threshold| {
            let metric = threshold.metric;
            let mut rule = RuleResult {
                threshold,
                baseline: stats_b.value(metric),
                candidate: stats_c.value(metric),
                change: None,
                ci_low: None,
                ci_high: None,
                p_value: None,
                p_adjusted: None,
                verdict: Verdict::Pass,
                noisy: false,
                reason: String::new(),
            };
            let needed = settings.samples_needed(metric);
            if baseline.len() < needed || candidate.len() < needed {
                rule.verdict = insufficient;
                rule.reason = format!(
                    "too few samples for {metric}: baseline {}, candidate {}, need ≥ {needed} each",
                    baseline.len(),
                    candidate.len()
                );
                return rule;
            }
            let measured = match metric.quantile() {
                Some(_) => {
                    let k = quantile_metrics.iter().position(|m| *m == metric).unwrap_or(0);
                    boot.as_ref().map(|b| quantile_change(&rule, &b.log_ratio[k], &b.difference[k], settings.confidence))
                }
                None if metric == Metric::Mean => mean_change(&rule, db, dc, z),
                None if metric == Metric::ErrorRate => error_rate_change(&rule, &stats_b, &stats_c, z),
                None => throughput_change(&rule, &stats_b, &stats_c, z),
            };
            match measured {
                Some((change, (lo, hi), p)) => {
                    rule.change = Some(change);
                    rule.ci_low = Some(lo);
                    rule.ci_high = Some(hi);
                    rule.p_value = Some(p.clamp(0.0, 1.0));
                }
                None => {
                    rule.verdict = insufficient;
                    rule.reason = if metric == Metric::Throughput {
                        "throughput cannot be compared: a side has no spans in its window".into()
                    } else {
                        format!("{metric} cannot be compared as a relative change: the baseline {metric} is zero (use an absolute rule)")
                    };
                }
            }
            rule
        })
        .collect();

    Comparison {
        scope,
        baseline: stats_b,
        candidate: stats_c,
        kolmogorov_smirnov: ks_test(db, dc),
        mann_whitney: mann_whitney(db, dc),
        rules,
        verdict: Verdict::Pass,
    }
}

type Measured = (f64, (f64, f64), f64);

/// One-sided p-value of "worse" from a change and its standard error.
fn p_worse(change: f64, se: f64) -> f64 {
    if se > 0.0 && se.is_finite() {
        normal_sf(change / se)
    } else if change > 0.0 {
        0.0
    } else {
        1.0
    }
}

fn quantile_change(rule: &RuleResult, log_ratio: &[f64], difference: &[f64], confidence: f64) -> Measured {
    let (b, c) = (rule.baseline.unwrap_or(0.0), rule.candidate.unwrap_or(0.0));
    match rule.threshold.allowance {
        Allowance::AbsoluteNs(_) => {
            let change = c - b;
            (change, percentile_interval(difference, confidence), p_worse(change, standard_error(difference)))
        }
        _ => {
            let log_change = c.max(1.0).ln() - b.max(1.0).ln();
            let (lo, hi) = percentile_interval(log_ratio, confidence);
            (log_change.exp() - 1.0, (lo.exp() - 1.0, hi.exp() - 1.0), p_worse(log_change, standard_error(log_ratio)))
        }
    }
}

fn mean_change(rule: &RuleResult, db: &[i64], dc: &[i64], z: f64) -> Option<Measured> {
    let (mb, vb) = mean_variance(db)?;
    let (mc, vc) = mean_variance(dc)?;
    let (nb, nc) = (db.len() as f64, dc.len() as f64);
    let se_diff = (vb / nb + vc / nc).sqrt();
    let p = p_worse(mc - mb, se_diff);
    match rule.threshold.allowance {
        Allowance::AbsoluteNs(_) => Some((mc - mb, (mc - mb - z * se_diff, mc - mb + z * se_diff), p)),
        _ => {
            if mb <= 0.0 {
                return None;
            }
            let ratio = mc / mb;
            let se_ratio = ratio * (vc / (nc * mc.max(1.0) * mc.max(1.0)) + vb / (nb * mb * mb)).sqrt();
            Some((ratio - 1.0, (ratio - 1.0 - z * se_ratio, ratio - 1.0 + z * se_ratio), p))
        }
    }
}

fn error_rate_change(rule: &RuleResult, b: &SideStats, c: &SideStats, z: f64) -> Option<Measured> {
    let (pb, pc) = (b.error_rate?, c.error_rate?);
    let (nb, nc) = (b.count as f64, c.count as f64);
    let pooled = (b.errors + c.errors) as f64 / (nb + nc);
    let se_pooled = (pooled * (1.0 - pooled) * (1.0 / nb + 1.0 / nc)).sqrt();
    let p = p_worse(pc - pb, se_pooled);
    let se = (pb * (1.0 - pb) / nb + pc * (1.0 - pc) / nc).sqrt();
    match rule.threshold.allowance {
        Allowance::Relative(_) if pb <= 0.0 => {
            // From no errors to some is an unbounded relative increase; significance still
            // decides (the z-test above). From none to none is no change.
            let change = if pc > 0.0 { f64::INFINITY } else { 0.0 };
            Some((change, (if pc - z * se > 0.0 { f64::INFINITY } else { 0.0 }, change), p))
        }
        Allowance::Relative(_) => Some((pc / pb - 1.0, ((pc - pb - z * se) / pb, (pc - pb + z * se) / pb), p)),
        _ => Some((pc - pb, (pc - pb - z * se, pc - pb + z * se), p)),
    }
}

fn throughput_change(_rule: &RuleResult, b: &SideStats, c: &SideStats, z: f64) -> Option<Measured> {
    let (rb, rc) = (b.throughput_per_s?, c.throughput_per_s?);
    if rb <= 0.0 || rc <= 0.0 {
        return None;
    }
    let log_ratio = (rc / rb).ln();
    let se = (1.0 / b.count as f64 + 1.0 / c.count as f64).sqrt();
    // Worse is slower: the p-value is for a decrease.
    Some((log_ratio.exp() - 1.0, ((log_ratio - z * se).exp() - 1.0, (log_ratio + z * se).exp() - 1.0), p_worse(-log_ratio, se)))
}

/// The two-sided normal quantile for a confidence level (1.96 for 0.95), by bisection.
pub fn z_for_confidence(confidence: f64) -> f64 {
    let tail = (1.0 - confidence.clamp(0.5, 0.999_999)) / 2.0;
    let (mut lo, mut hi) = (0.0f64, 10.0f64);
    for _ in 0..100 {
        let mid = (lo + hi) / 2.0;
        if normal_sf(mid) > tail { lo = mid } else { hi = mid }
    }
    (lo + hi) / 2.0
}

/// A per-scope bootstrap seed: the user's seed mixed with the scope's name (FNV-1a), so a
/// scope's interval does not depend on which other scopes are in the report.
fn scope_seed(seed: u64, scope: &ScopeKey) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
    for part in [&scope.service, &scope.operation] {
        for byte in part.as_deref().unwrap_or("\u{0}").bytes().chain([0xff]) {
            h ^= byte as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn z_values() {
        assert!((z_for_confidence(0.95) - 1.959964).abs() < 1e-5);
        assert!((z_for_confidence(0.99) - 2.575829).abs() < 1e-5);
    }

    #[test]
    fn samples_needed_by_quantile() {
        let s = GateSettings::default();
        assert_eq!(s.samples_needed(Metric::P50), 100);
        assert_eq!(GateSettings { min_samples: 2, ..s.clone() }.samples_needed(Metric::P90), 100);
        assert_eq!(s.samples_needed(Metric::P99), 1000);
        assert_eq!(s.samples_needed(Metric::P999), 10_000);
        assert_eq!(s.samples_needed(Metric::ErrorRate), 100);
    }

    #[test]
    fn error_rate_by_hand() {
        // 10/1000 vs 30/1000: +2pp; pooled 0.02, SE = sqrt(0.02·0.98·0.002) = 0.00626, z = 3.194.
        let b = Sample::new(vec![1; 1000], 10, None);
        let c = Sample::new(vec![1; 1000], 30, None);
        let settings = GateSettings { thresholds: vec![Threshold::parse("error_rate +0.5pp").unwrap()], ..Default::default() };
        let cmp = measure(ScopeKey::default(), &b, &c, &settings, Verdict::Inconclusive);
        let rule = &cmp.rules[0];
        assert!((rule.change.unwrap() - 0.02).abs() < 1e-12);
        assert!((rule.p_value.unwrap() - normal_sf(0.02 / (0.02f64 * 0.98 * 0.002).sqrt())).abs() < 1e-15);
        assert!(rule.beyond_threshold());
    }

    #[test]
    fn scaled_candidate_is_measured_as_scaled() {
        let base: Vec<i64> = (1..=5000).map(|i| i * 1000).collect();
        let cand: Vec<i64> = base.iter().map(|v| v * 13 / 10).collect();
        let settings = GateSettings {
            thresholds: vec![Threshold::parse("p99 +10%").unwrap(), Threshold::parse("mean +10%").unwrap()],
            ..Default::default()
        };
        let cmp = measure(ScopeKey::default(), &Sample::new(base, 0, None), &Sample::new(cand, 0, None), &settings, Verdict::Inconclusive);
        for rule in &cmp.rules {
            assert!((rule.change.unwrap() - 0.3).abs() < 1e-3, "{rule:?}");
            assert!(rule.ci_low.unwrap() < 0.3 && rule.ci_high.unwrap() > 0.3, "{rule:?}");
            assert!(rule.p_value.unwrap() < 1e-6, "{rule:?}");
        }
    }
}
