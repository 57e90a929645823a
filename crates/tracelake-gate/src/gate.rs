//! The gate over one or many scopes: corrects the p-values of every evaluated rule together,
//! decides each rule, each scope and the whole gate, and ranks scopes worst first.
//!
//! A rule is a **regression** when its observed change is beyond the allowance *and* the
//! change is significant (corrected one-sided p-value < α = 1 − confidence); **inconclusive**
//! when a side has too few samples for it; otherwise **pass**. A change beyond the allowance
//! that is not significant passes, marked *noisy* in the report (`strict` makes it
//! inconclusive instead). A scope takes its worst rule's verdict.
//!
//! Single-scope gate: the scope's verdict. Per-operation gate: scopes with fewer than
//! `min_samples` on a side are skipped (listed), rules lacking tail samples are skipped;
//! the gate is a regression if any scope is; otherwise (with `strict`) inconclusive if any
//! scope is; otherwise pass if any scope passed, else inconclusive.

use serde::Serialize;

use crate::compare::{Comparison, GateSettings, Sample, ScopeKey, Verdict, measure};
use crate::stats::adjust_p_values;

/// Single scope, or every (service, operation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GateMode {
    /// One comparison of everything selected.
    Single,
    /// One comparison per (service, operation).
    PerOperation,
}

/// A scope left out of a per-operation gate.
#[derive(Debug, Clone, Serialize)]
pub struct SkippedScope {
    /// Service / operation.
    pub scope: ScopeKey,
    /// Baseline spans (or traces).
    pub baseline_count: usize,
    /// Candidate spans (or traces).
    pub candidate_count: usize,
}

/// The gate's result.
#[derive(Debug, Clone, Serialize)]
pub struct GateReport {
    /// Overall verdict; its exit code is the process's.
    pub verdict: Verdict,
    /// One line saying why.
    pub summary: String,
    /// Single or per-operation.
    pub mode: GateMode,
    /// Settings used.
    pub settings: GateSettings,
    /// Compared scopes, worst first.
    pub comparisons: Vec<Comparison>,
    /// Scopes with too few samples to compare (per-operation mode).
    pub skipped: Vec<SkippedScope>,
}

impl GateReport {
    /// The worst comparison (first), if any.
    pub fn worst(&self) -> Option<&Comparison> {
        self.comparisons.first()
    }
}

/// Runs the gate over `scopes` (each with its baseline and candidate sample).
pub fn run_gate(scopes: Vec<(ScopeKey, Sample, Sample)>, settings: &GateSettings, mode: GateMode) -> GateReport {
    let mut comparisons = Vec::new();
    let mut skipped = Vec::new();
    for (scope, baseline, candidate) in scopes {
        let too_small = baseline.len() < settings.min_samples || candidate.len() < settings.min_samples;
        if mode == GateMode::PerOperation && too_small {
            skipped.push(SkippedScope { scope, baseline_count: baseline.len(), candidate_count: candidate.len() });
            continue;
        }
        let insufficient = match mode {
            GateMode::Single => Verdict::Inconclusive,
            GateMode::PerOperation => Verdict::Skipped,
        };
        comparisons.push(measure(scope, &baseline, &candidate, settings, insufficient));
    }
    decide(&mut comparisons, settings);
    comparisons.sort_by(|a, b| b.verdict.cmp(&a.verdict).then(severity(b).total_cmp(&severity(a))).then(a.scope.cmp(&b.scope)));

    let count = |v: Verdict| comparisons.iter().filter(|c| c.verdict == v).count();
    let (regressions, passes, noisy) = (count(Verdict::Regression), count(Verdict::Pass), count(Verdict::Inconclusive));
    let verdict = match mode {
        GateMode::Single => comparisons.first().map_or(Verdict::Inconclusive, |c| c.verdict),
        GateMode::PerOperation if regressions > 0 => Verdict::Regression,
        GateMode::PerOperation if settings.strict && noisy > 0 => Verdict::Inconclusive,
        GateMode::PerOperation if passes > 0 => Verdict::Pass,
        GateMode::PerOperation => Verdict::Inconclusive,
    };
    let summary = summarize(verdict, mode, &comparisons, skipped.len(), regressions, passes, noisy);
    skipped.sort_by(|a, b| a.scope.cmp(&b.scope));
    GateReport { verdict, summary, mode, settings: settings.clone(), comparisons, skipped }
}

/// Corrected p-values and verdicts of every rule and comparison.
fn decide(comparisons: &mut [Comparison], settings: &GateSettings) {
    let alpha = 1.0 - settings.confidence;
    let mut index = Vec::new();
    let mut raw = Vec::new();
    for (ci, c) in comparisons.iter().enumerate() {
        for (ri, r) in c.rules.iter().enumerate() {
            if let Some(p) = r.p_value {
                index.push((ci, ri));
                raw.push(p);
            }
        }
    }
    let adjusted = adjust_p_values(&raw, settings.correction);
    for (&(ci, ri), p_adj) in index.iter().zip(adjusted) {
        let rule = &mut comparisons[ci].rules[ri];
        rule.p_adjusted = Some(p_adj);
        let change = crate::report::format_change(rule.threshold.allowance, rule.change);
        let allowed = rule.threshold.change_text();
        let p_text = crate::report::p_clause(p_adj);
        (rule.verdict, rule.reason) = match (rule.beyond_threshold(), p_adj < alpha) {
            (true, true) => (Verdict::Regression, format!("{change} is beyond {allowed} and significant ({p_text})")),
            (true, false) => {
                rule.noisy = true;
                let verdict = if settings.strict { Verdict::Inconclusive } else { Verdict::Pass };
                (verdict, format!("{change} is beyond {allowed} but not significant ({p_text}): noise can explain it; more samples would tell"))
            }
            (false, _) => (Verdict::Pass, format!("{change} is within {allowed}")),
        };
    }
    for c in comparisons.iter_mut() {
        let evaluated = c.rules.iter().map(|r| r.verdict).filter(|v| *v != Verdict::Skipped);
        c.verdict = evaluated.max().unwrap_or(Verdict::Skipped);
    }
}

/// Ranking key of a comparison: its worst rule's change as a multiple of the allowance.
fn severity(c: &Comparison) -> f64 {
    c.rules.iter().filter(|r| r.verdict == c.verdict).map(|r| r.severity()).fold(f64::NEG_INFINITY, f64::max)
}

fn summarize(
    verdict: Verdict,
    mode: GateMode,
    comparisons: &[Comparison],
    skipped: usize,
    regressions: usize,
    passes: usize,
    noisy: usize,
) -> String {
    let worst_rule = comparisons.first().and_then(|c| {
        c.rules.iter().filter(|r| r.verdict == c.verdict).max_by(|a, b| a.severity().total_cmp(&b.severity())).map(|r| (c, r))
    });
    let worst_text = worst_rule.map(|(c, r)| format!("{} {}: {}", c.scope, r.threshold.metric, r.reason)).unwrap_or_default();
    match mode {
        GateMode::Single => match verdict {
            Verdict::Pass => "no regression beyond the thresholds".to_string(),
            _ => worst_text,
        },
        GateMode::PerOperation => {
            let counts = format!(
                "{} operation(s) compared: {regressions} regressed, {noisy} inconclusive, {passes} passed; {skipped} skipped (too few samples)",
                comparisons.len()
            );
            match verdict {
                Verdict::Regression => format!("{counts}. Worst: {worst_text}"),
                Verdict::Inconclusive if comparisons.iter().all(|c| c.verdict == Verdict::Skipped) => {
                    format!("{counts}. No operation had enough samples for any rule")
                }
                _ => counts,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::threshold::Threshold;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use rand_distr::{Distribution, LogNormal};

    /// Latencies like a real operation: log-normal body plus a 2 % slow tail, 1 % errors.
    fn draw(rng: &mut ChaCha8Rng, n: usize, factor: f64) -> Sample {
        let body = LogNormal::new(15.0, 0.5).expect("valid");
        let tail = LogNormal::new(17.0, 0.7).expect("valid");
        let mut errors = 0;
        let durations = (0..n)
            .map(|_| {
                let u: f64 = rand::Rng::random(rng);
                if u < 0.01 {
                    errors += 1;
                }
                let v = if u < 0.02 { tail.sample(rng) } else { body.sample(rng) };
                (v * factor) as i64
            })
            .collect();
        Sample::new(durations, errors, None)
    }

    /// False-positive rate: two samples of the same distribution (different seeds) pass in
    /// at least 95 of 100 runs with the default rules; a planted +30 % is found in all.
    #[test]
    fn same_distribution_passes_and_shift_fails() {
        let settings = GateSettings::default();
        let mut passes = 0;
        let mut regressions_found = 0;
        for seed in 0..100u64 {
            let mut rng = ChaCha8Rng::seed_from_u64(1000 + seed);
            let base = draw(&mut rng, 5000, 1.0);
            let same = draw(&mut rng, 5000, 1.0);
            let slower = draw(&mut rng, 5000, 1.3);
            let scope = ScopeKey::default();
            let run = |cand: Sample| run_gate(vec![(scope.clone(), base.clone(), cand)], &settings, GateMode::Single).verdict;
            if run(same) == Verdict::Pass {
                passes += 1;
            }
            if run(slower) == Verdict::Regression {
                regressions_found += 1;
            }
        }
        assert!(passes >= 95, "{passes}/100 same-distribution runs passed");
        assert_eq!(regressions_found, 100);
    }

    #[test]
    fn too_few_samples_is_inconclusive() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let (b, c) = (draw(&mut rng, 20, 1.0), draw(&mut rng, 20, 3.0));
        let report = run_gate(vec![(ScopeKey::default(), b, c)], &GateSettings::default(), GateMode::Single);
        assert_eq!(report.verdict, Verdict::Inconclusive);
        assert!(report.summary.contains("too few samples"), "{}", report.summary);
    }

    #[test]
    fn per_operation_finds_the_one_regressed_operation() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let mut scopes = Vec::new();
        for op in 0..20 {
            let factor = if op == 13 { 1.3 } else { 1.0 };
            let key = ScopeKey { service: Some("svc".into()), operation: Some(format!("op{op}")) };
            scopes.push((key, draw(&mut rng, 20_000, 1.0), draw(&mut rng, 20_000, factor)));
        }
        scopes.push((ScopeKey { service: Some("svc".into()), operation: Some("rare".into()) }, draw(&mut rng, 5, 1.0), draw(&mut rng, 5, 1.0)));
        let settings = GateSettings { thresholds: vec![Threshold::parse("p99 +10%").unwrap()], ..Default::default() };
        let report = run_gate(scopes, &settings, GateMode::PerOperation);
        assert_eq!(report.verdict, Verdict::Regression);
        let regressed: Vec<_> = report.comparisons.iter().filter(|c| c.verdict == Verdict::Regression).collect();
        assert_eq!(regressed.len(), 1);
        assert_eq!(regressed[0].scope.operation.as_deref(), Some("op13"));
        assert_eq!(report.worst().map(|c| c.scope.operation.clone()), Some(Some("op13".into())));
        assert_eq!(report.skipped.len(), 1);
    }
}
