//! Rendering a [`GateReport`]: a terminal table, Markdown for a pull-request comment, and JSON
//! for tools. All three show the same numbers.

use std::fmt::Write as _;

use serde::Serialize;

use crate::compare::{Comparison, RuleResult, SideStats, Verdict};
use crate::gate::{GateMode, GateReport};
use crate::threshold::{Allowance, Metric};

/// What the two sides are, for people reading the report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GateContext {
    /// `spans` or `traces`.
    pub unit: String,
    /// How the baseline was selected (predicate, window, source).
    pub baseline: String,
    /// How the candidate was selected.
    pub candidate: String,
}

/// Human-readable duration with 3 significant digits: `812ns`, `12.3µs`, `4.56ms`, `1.20s`.
pub fn format_duration(ns: f64) -> String {
    let (value, unit) = match ns.abs() {
        a if a < 1e3 => (ns, "ns"),
        a if a < 1e6 => (ns / 1e3, "µs"),
        a if a < 1e9 => (ns / 1e6, "ms"),
        _ => (ns / 1e9, "s"),
    };
    let digits = match value.abs() {
        a if a >= 100.0 => 0,
        a if a >= 10.0 => 1,
        _ => 2,
    };
    let text = format!("{value:.digits$}");
    // Trim "1.50" → "1.5", "2.00" → "2" for readability.
    let text = if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.').to_string() } else { text };
    format!("{text}{unit}")
}

/// A change in the unit of its rule: `+31.2%`, `+2.1ms`, `+0.41pp`.
pub fn format_change(allowance: Allowance, change: Option<f64>) -> String {
    let Some(c) = change else { return "n/a".into() };
    if c == f64::INFINITY {
        return "+∞%".into();
    }
    if !c.is_finite() {
        return "n/a".into();
    }
    match allowance {
        Allowance::Relative(_) => format!("{:+.1}%", c * 100.0),
        Allowance::AbsoluteNs(_) => {
            let sign = if c < 0.0 { "-" } else { "+" };
            format!("{sign}{}", format_duration(c.abs()))
        }
        Allowance::PercentagePoints(_) => format!("{:+.2}pp", c * 100.0),
    }
}

/// A p-value: `0.031`, `2.1e-9`, `<1e-300`.
pub fn format_p(p: f64) -> String {
    if p <= 0.0 {
        "<1e-300".into()
    } else if p >= 0.001 {
        format!("{:.3}", p).trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        format!("{p:.1e}")
    }
}

/// A fraction as a percentage without float noise: 0.57 → "57".
fn percent(fraction: f64) -> String {
    let text = format!("{:.4}", fraction * 100.0);
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// `p = 0.031`, or `p < 1e-300` when the p-value underflows.
pub fn p_clause(p: f64) -> String {
    let text = format_p(p);
    if text.starts_with('<') { format!("p {text}") } else { format!("p = {text}") }
}

fn format_value(metric: Metric, v: Option<f64>) -> String {
    match (metric, v) {
        (_, None) => "n/a".into(),
        (Metric::ErrorRate, Some(v)) => format!("{:.2}%", v * 100.0),
        (Metric::Throughput, Some(v)) => format!("{}/s", significant(v)),
        (_, Some(v)) => format_duration(v),
    }
}

/// Three significant digits without exponent for everyday magnitudes: 0.0213, 4.56, 1234.
fn significant(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let digits = (2 - v.abs().log10().floor() as i32).max(0) as usize;
    format!("{v:.digits$}")
}

fn format_ci(rule: &RuleResult) -> String {
    match (rule.ci_low, rule.ci_high) {
        (Some(lo), Some(hi)) => {
            format!("[{}, {}]", format_change(rule.threshold.allowance, Some(lo)), format_change(rule.threshold.allowance, Some(hi)))
        }
        _ => "n/a".into(),
    }
}

fn headline(report: &GateReport) -> String {
    let word = match report.verdict {
        Verdict::Pass | Verdict::Skipped => "PASS",
        Verdict::Regression => "REGRESSION",
        Verdict::Inconclusive => "INCONCLUSIVE",
    };
    format!("{word}: {}", report.summary)
}

/// The rows of one comparison's rule table: metric, baseline, candidate, rule, change, CI, p, verdict.
fn rule_rows(c: &Comparison) -> Vec<[String; 8]> {
    c.rules
        .iter()
        .map(|r| {
            let m = r.threshold.metric;
            [
                m.name().to_string(),
                format_value(m, r.baseline),
                format_value(m, r.candidate),
                r.threshold.change_text(),
                format_change(r.threshold.allowance, r.change),
                format_ci(r),
                r.p_adjusted.map(format_p).unwrap_or_else(|| "n/a".into()),
                if r.noisy && r.verdict == Verdict::Pass { "pass (noisy)".to_string() } else { r.verdict.name().to_string() },
            ]
        })
        .collect()
}

/// Other statistics of both sides (not gated): every quantile, mean, error rate, throughput.
fn stats_rows(c: &Comparison) -> Vec<[String; 4]> {
    Metric::ALL
        .iter()
        .map(|&m| {
            let (b, x) = (c.baseline.value(m), c.candidate.value(m));
            let change = match (b, x) {
                (Some(b), Some(x)) if m == Metric::ErrorRate => format!("{:+.2}pp", (x - b) * 100.0),
                (Some(b), Some(x)) if b > 0.0 => format!("{:+.1}%", (x / b - 1.0) * 100.0),
                _ => "n/a".into(),
            };
            [m.name().to_string(), format_value(m, b), format_value(m, x), change]
        })
        .collect()
}

fn distribution_line(c: &Comparison) -> String {
    let mut parts = Vec::new();
    if let Some(ks) = &c.kolmogorov_smirnov {
        parts.push(format!("Kolmogorov–Smirnov D = {:.4} ({})", ks.statistic, p_clause(ks.p_value)));
    }
    if let Some(mw) = &c.mann_whitney {
        parts.push(format!(
            "Mann–Whitney P(candidate slower) = {:.3} (one-sided {})",
            mw.prob_candidate_slower,
            p_clause(mw.p_value)
        ));
    }
    if parts.is_empty() { "distribution tests: n/a (a side is empty)".into() } else { parts.join("; ") }
}

fn counts(s: &SideStats, unit: &str) -> String {
    format!("{} {unit}, {} errors", s.count, s.errors)
}

/// Renders rows as an aligned text table.
fn text_table<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
        let _ = writeln!(out, "  {}", padded.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

fn markdown_table<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
    let escape = |s: &str| s.replace('|', "\\|");
    let mut out = format!("| {} |\n|{}\n", header.join(" | "), "---|".repeat(N));
    for row in rows {
        let cells: Vec<String> = row.iter().map(|c| escape(c)).collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    out
}

const RULE_HEADER: [&str; 8] = ["metric", "baseline", "candidate", "allowed", "change", "CI", "p (adj.)", "verdict"];
const STATS_HEADER: [&str; 4] = ["metric", "baseline", "candidate", "change"];
const OPS_HEADER: [&str; 7] = ["verdict", "service", "operation", "baseline n", "candidate n", "worst rule", "p (adj.)"];

fn operation_rows<'a>(comparisons: impl Iterator<Item = &'a Comparison>) -> Vec<[String; 7]> {
    comparisons
        .map(|c| {
            let worst = c.rules.iter().filter(|r| r.verdict == c.verdict).max_by(|a, b| a.severity().total_cmp(&b.severity()));
            let (rule, p) = match worst {
                Some(r) if r.change.is_some() => (
                    format!("{} {} (CI {})", r.threshold.metric, format_change(r.threshold.allowance, r.change), format_ci(r)),
                    r.p_adjusted.map(format_p).unwrap_or_else(|| "n/a".into()),
                ),
                Some(r) => (r.reason.clone(), "n/a".into()),
                None => ("n/a".into(), "n/a".into()),
            };
            let noisy = c.verdict == Verdict::Pass && c.rules.iter().any(|r| r.noisy);
            [
                if noisy { "pass (noisy)".to_string() } else { c.verdict.name().to_string() },
                c.scope.service.clone().unwrap_or_default(),
                c.scope.operation.clone().unwrap_or_default(),
                c.baseline.count.to_string(),
                c.candidate.count.to_string(),
                rule,
                p,
            ]
        })
        .collect()
}

/// The terminal report.
pub fn render_text(report: &GateReport, context: &GateContext) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "tracelake gate — {}\n", headline(report));
    let _ = writeln!(out, "  baseline:  {}", context.baseline);
    let _ = writeln!(out, "  candidate: {}", context.candidate);
    let confidence = percent(report.settings.confidence);
    match report.mode {
        GateMode::Single => {
            if let Some(c) = report.comparisons.first() {
                let _ = writeln!(out, "  scope: {} · baseline {} · candidate {}\n", c.scope, counts(&c.baseline, &context.unit), counts(&c.candidate, &context.unit));
                out.push_str(&text_table(RULE_HEADER, &rule_rows(c)));
                let _ = writeln!(out, "\n  statistics (not gated unless a rule above names them):");
                out.push_str(&text_table(STATS_HEADER, &stats_rows(c)));
                let _ = writeln!(out, "\n  {}", distribution_line(c));
            }
        }
        GateMode::PerOperation => {
            out.push('\n');
            let shown = 25;
            let rows = operation_rows(report.comparisons.iter().take(shown));
            out.push_str(&text_table(OPS_HEADER, &rows));
            if report.comparisons.len() > shown {
                let _ = writeln!(out, "  … {} more compared operation(s); --json has all", report.comparisons.len() - shown);
            }
            if let Some(worst) = report.worst().filter(|w| w.verdict == Verdict::Regression) {
                let _ = writeln!(out, "\n  worst: {}", worst.scope);
                out.push_str(&text_table(RULE_HEADER, &rule_rows(worst)));
                let _ = writeln!(out, "  {}", distribution_line(worst));
            }
        }
    }
    let _ = writeln!(
        out,
        "\n  {confidence}% intervals; p-values one-sided, {} correction over {} rule(s); bootstrap {} resamples, seed {}",
        report.settings.correction,
        report.comparisons.iter().flat_map(|c| &c.rules).filter(|r| r.p_adjusted.is_some()).count(),
        report.settings.bootstrap_resamples,
        report.settings.seed
    );
    out
}

/// The Markdown report (a pull-request comment).
pub fn render_markdown(report: &GateReport, context: &GateContext) -> String {
    let icon = match report.verdict {
        Verdict::Pass | Verdict::Skipped => "✅",
        Verdict::Regression => "❌",
        Verdict::Inconclusive => "⚠️",
    };
    let mut out = format!("### {icon} tracelake gate: {}\n\n", headline(report));
    let _ = writeln!(out, "- **baseline**: `{}`\n- **candidate**: `{}`\n", context.baseline.replace('`', "'"), context.candidate.replace('`', "'"));
    match report.mode {
        GateMode::Single => {
            if let Some(c) = report.comparisons.first() {
                let _ = writeln!(out, "Scope: {} · baseline {} · candidate {}\n", c.scope, counts(&c.baseline, &context.unit), counts(&c.candidate, &context.unit));
                out.push_str(&markdown_table(RULE_HEADER, &rule_rows(c)));
                let _ = writeln!(out, "\n{}\n", distribution_line(c));
                let _ = writeln!(out, "<details><summary>All statistics</summary>\n");
                out.push_str(&markdown_table(STATS_HEADER, &stats_rows(c)));
                out.push_str("\n</details>\n");
            }
        }
        GateMode::PerOperation => {
            let flagged: Vec<&Comparison> = report.comparisons.iter().filter(|c| c.verdict != Verdict::Pass).collect();
            if !flagged.is_empty() {
                out.push_str(&markdown_table(OPS_HEADER, &operation_rows(flagged.into_iter())));
                out.push('\n');
            }
            if let Some(worst) = report.worst().filter(|w| w.verdict == Verdict::Regression) {
                let _ = writeln!(out, "**Worst: {}**\n", worst.scope);
                out.push_str(&markdown_table(RULE_HEADER, &rule_rows(worst)));
                let _ = writeln!(out, "\n{}\n", distribution_line(worst));
            }
            let _ = writeln!(out, "<details><summary>All {} compared operations</summary>\n", report.comparisons.len());
            out.push_str(&markdown_table(OPS_HEADER, &operation_rows(report.comparisons.iter())));
            out.push_str("\n</details>\n");
        }
    }
    let _ = writeln!(
        out,
        "\n<sub>{}% intervals · one-sided p-values, {} correction · bootstrap {} resamples, seed {} · min {} {} per side</sub>",
        percent(report.settings.confidence),
        report.settings.correction,
        report.settings.bootstrap_resamples,
        report.settings.seed,
        report.settings.min_samples,
        context.unit
    );
    out
}

/// The JSON report: the whole [`GateReport`] plus the exit code and the context.
pub fn render_json(report: &GateReport, context: &GateContext) -> String {
    #[derive(Serialize)]
    struct Json<'a> {
        exit_code: u8,
        context: &'a GateContext,
        #[serde(flatten)]
        report: &'a GateReport,
    }
    let json = Json { exit_code: report.verdict.exit_code(), context, report };
    serde_json::to_string_pretty(&json).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(format_duration(812.0), "812ns");
        assert_eq!(format_duration(12_345.0), "12.3µs");
        assert_eq!(format_duration(4_560_000.0), "4.56ms");
        assert_eq!(format_duration(1_500_000_000.0), "1.5s");
        assert_eq!(format_duration(2_000_000.0), "2ms");
    }

    #[test]
    fn changes_and_p_values() {
        assert_eq!(format_change(Allowance::Relative(0.1), Some(0.3123)), "+31.2%");
        assert_eq!(format_change(Allowance::AbsoluteNs(1e6), Some(-2.5e6)), "-2.5ms");
        assert_eq!(format_change(Allowance::PercentagePoints(0.005), Some(0.0041)), "+0.41pp");
        assert_eq!(format_p(0.031), "0.031");
        assert_eq!(format_p(2.1e-9), "2.1e-9");
        assert_eq!(format_p(0.0), "<1e-300");
        assert_eq!(format_p(1.0), "1");
    }
}
