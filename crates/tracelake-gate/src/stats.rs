//! Distribution statistics on sorted samples: quantiles (the same definition as the
//! `percentile` SQL function and numpy's default), the two-sample Kolmogorov–Smirnov and
//! Mann–Whitney U tests (the asymptotic forms of `scipy.stats.ks_2samp(method="asymp")` and
//! `scipy.stats.mannwhitneyu(method="asymptotic")`), normal tail probabilities and the Holm /
//! Benjamini–Hochberg corrections for many comparisons.
//!
//! Every function here takes samples sorted ascending; they are sorted once by the caller.

use serde::Serialize;

/// The linearly interpolated quantile of sorted values (numpy's default, DuckDB's
/// `quantile_cont`, tracelake's `percentile`): with r = q·(n−1), `x[⌊r⌋] + (r−⌊r⌋)·(x[⌈r⌉]−x[⌊r⌋])`.
/// `None` for an empty sample.
pub fn quantile(sorted: &[i64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let q = q.clamp(0.0, 1.0);
    let rank = q * (sorted.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    let frac = rank - lo as f64;
    Some(sorted[lo] as f64 + frac * (sorted[hi] as f64 - sorted[lo] as f64))
}

/// Mean and unbiased variance (Welford), `None` for fewer than one value; the variance of one
/// value is 0.
pub fn mean_variance(values: &[i64]) -> Option<(f64, f64)> {
    if values.is_empty() {
        return None;
    }
    let mut mean = 0.0;
    let mut m2 = 0.0;
    for (i, &v) in values.iter().enumerate() {
        let v = v as f64;
        let delta = v - mean;
        mean += delta / (i + 1) as f64;
        m2 += delta * (v - mean);
    }
    let var = if values.len() > 1 { m2 / (values.len() - 1) as f64 } else { 0.0 };
    Some((mean, var))
}

/// P(Z > z) for a standard normal Z, accurate in the far tail (via `erfc`).
pub fn normal_sf(z: f64) -> f64 {
    0.5 * libm::erfc(z / std::f64::consts::SQRT_2)
}

/// The two-sample Kolmogorov–Smirnov test (two-sided).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct KsTest {
    /// D = sup |F_baseline(x) − F_candidate(x)|.
    pub statistic: f64,
    /// Asymptotic p-value: the Kolmogorov distribution's survival function at √(n·m/(n+m))·D.
    pub p_value: f64,
}

/// Two-sample KS test of two sorted samples; `None` if either is empty.
pub fn ks_test(a: &[i64], b: &[i64]) -> Option<KsTest> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let (n, m) = (a.len() as f64, b.len() as f64);
    let (mut i, mut j) = (0usize, 0usize);
    let mut d: f64 = 0.0;
    // Walk the merged order; evaluate the ECDF difference after all copies of a value.
    while i < a.len() && j < b.len() {
        let x = a[i].min(b[j]);
        while i < a.len() && a[i] == x {
            i += 1;
        }
        while j < b.len() && b[j] == x {
            j += 1;
        }
        d = d.max((i as f64 / n - j as f64 / m).abs());
    }
    let en = n * m / (n + m);
    Some(KsTest { statistic: d, p_value: kolmogorov_sf(en.sqrt() * d) })
}

/// Survival function of the Kolmogorov distribution, Q(x) = 2 Σ (−1)^(k−1) e^(−2k²x²)
/// (scipy's `kstwobign.sf`); the alternating series is used for x ≥ 1 and the Jacobi theta
/// form 1 − √(2π)/x Σ e^(−(2k−1)²π²/(8x²)) below, where the first converges slowly.
pub fn kolmogorov_sf(x: f64) -> f64 {
    if x.is_nan() || x <= 0.0 {
        return 1.0;
    }
    if x < 1.0 {
        let pi2 = std::f64::consts::PI * std::f64::consts::PI;
        let mut sum = 0.0;
        for k in 1..=20 {
            let odd = (2 * k - 1) as f64;
            sum += (-odd * odd * pi2 / (8.0 * x * x)).exp();
        }
        (1.0 - (2.0 * std::f64::consts::PI).sqrt() / x * sum).clamp(0.0, 1.0)
    } else {
        let mut sum = 0.0;
        for k in 1..=100 {
            let k = k as f64;
            let term = (-2.0 * k * k * x * x).exp();
            sum += if k as u64 % 2 == 1 { term } else { -term };
            if term < 1e-300 {
                break;
            }
        }
        (2.0 * sum).clamp(0.0, 1.0)
    }
}

/// The Mann–Whitney U test, one-sided: is the candidate stochastically larger (slower)?
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MannWhitney {
    /// U of the candidate: pairs (candidate, baseline) with candidate > baseline, ties count ½.
    pub u: f64,
    /// U / (n·m): the probability that a random candidate span is slower than a random
    /// baseline span (ties ½); 0.5 means no shift.
    pub prob_candidate_slower: f64,
    /// Normal approximation with tie correction and continuity correction, one-sided.
    pub p_value: f64,
}

/// Mann–Whitney U of sorted `candidate` against sorted `baseline`; `None` if either is empty.
pub fn mann_whitney(baseline: &[i64], candidate: &[i64]) -> Option<MannWhitney> {
    if baseline.is_empty() || candidate.is_empty() {
        return None;
    }
    let (n1, n2) = (candidate.len() as f64, baseline.len() as f64);
    let n = n1 + n2;
    // Rank sum of the candidate with average ranks for ties, and Σ(t³ − t) over tie groups.
    let (mut i, mut j) = (0usize, 0usize);
    let mut rank_sum = 0.0;
    let mut tie_term = 0.0;
    let mut next_rank = 1.0;
    while i < candidate.len() || j < baseline.len() {
        let x = match (candidate.get(i), baseline.get(j)) {
            (Some(&c), Some(&b)) => c.min(b),
            (Some(&c), None) => c,
            (None, Some(&b)) => b,
            (None, None) => break,
        };
        let (start_i, start_j) = (i, j);
        while i < candidate.len() && candidate[i] == x {
            i += 1;
        }
        while j < baseline.len() && baseline[j] == x {
            j += 1;
        }
        let in_candidate = (i - start_i) as f64;
        let t = in_candidate + (j - start_j) as f64;
        let average_rank = next_rank + (t - 1.0) / 2.0;
        rank_sum += in_candidate * average_rank;
        tie_term += t * t * t - t;
        next_rank += t;
    }
    let u = rank_sum - n1 * (n1 + 1.0) / 2.0;
    let mu = n1 * n2 / 2.0;
    let sigma = (n1 * n2 / 12.0 * ((n + 1.0) - tie_term / (n * (n - 1.0)))).sqrt();
    let p_value = if sigma > 0.0 && sigma.is_finite() { normal_sf((u - mu - 0.5) / sigma) } else { 1.0 };
    Some(MannWhitney { u, prob_candidate_slower: u / (n1 * n2), p_value })
}

/// How p-values of many comparisons are adjusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Correction {
    /// Holm–Bonferroni: controls the family-wise error rate (any false alarm).
    Holm,
    /// Benjamini–Hochberg: controls the false discovery rate (share of false alarms).
    Bh,
    /// No adjustment.
    None,
}

impl std::str::FromStr for Correction {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "holm" => Ok(Correction::Holm),
            "bh" | "benjamini-hochberg" | "fdr" => Ok(Correction::Bh),
            "none" => Ok(Correction::None),
            other => Err(format!("unknown correction {other:?} (use holm, bh or none)")),
        }
    }
}

impl std::fmt::Display for Correction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Correction::Holm => "holm",
            Correction::Bh => "bh",
            Correction::None => "none",
        })
    }
}

/// Adjusted p-values in the input order (the step-down Holm and step-up BH procedures, as
/// `statsmodels.stats.multitest.multipletests` computes them).
pub fn adjust_p_values(p: &[f64], correction: Correction) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut adjusted = vec![0.0; m];
    match correction {
        Correction::None => return p.to_vec(),
        Correction::Holm => {
            let mut running: f64 = 0.0;
            for (rank, &idx) in order.iter().enumerate() {
                running = running.max(((m - rank) as f64 * p[idx]).min(1.0));
                adjusted[idx] = running;
            }
        }
        Correction::Bh => {
            let mut running: f64 = 1.0;
            for (rank, &idx) in order.iter().enumerate().rev() {
                running = running.min((m as f64 / (rank + 1) as f64 * p[idx]).min(1.0));
                adjusted[idx] = running;
            }
        }
    }
    adjusted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate() {
        let x = [10, 20, 30, 40];
        assert_eq!(quantile(&x, 0.0), Some(10.0));
        assert_eq!(quantile(&x, 1.0), Some(40.0));
        // r = 0.5·3 = 1.5 → 20 + 0.5·10
        assert_eq!(quantile(&x, 0.5), Some(25.0));
        // r = 0.99·3 = 2.97 → 30 + 0.97·10
        assert!((quantile(&x, 0.99).unwrap() - 39.7).abs() < 1e-9);
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(quantile(&[7], 0.99), Some(7.0));
    }

    #[test]
    fn mean_and_variance() {
        let (m, v) = mean_variance(&[2, 4, 4, 4, 5, 5, 7, 9]).unwrap();
        assert_eq!(m, 5.0);
        assert!((v - 32.0 / 7.0).abs() < 1e-12);
    }

    #[test]
    fn ks_by_hand() {
        // ECDFs of {1,2,3} and {2,3,4,5}: after 1: 1/3 − 0; after 2: 2/3 − 1/4; after 3: 1 − 2/4.
        let t = ks_test(&[1, 2, 3], &[2, 3, 4, 5]).unwrap();
        assert!((t.statistic - 0.5).abs() < 1e-12);
        assert_eq!(ks_test(&[1, 2], &[1, 2]).unwrap().statistic, 0.0);
        assert_eq!(ks_test(&[], &[1]), None);
    }

    #[test]
    fn kolmogorov_tail_matches_both_forms() {
        // Both series are valid everywhere; they must agree around the switch point.
        for x in [0.6f64, 0.9, 1.0, 1.2] {
            let alt: f64 = 2.0 * (1..100).map(|k| {
                let k = k as f64;
                let t = (-2.0 * k * k * x * x).exp();
                if k as u64 % 2 == 1 { t } else { -t }
            }).sum::<f64>();
            assert!((kolmogorov_sf(x) - alt).abs() < 1e-10, "x={x}");
        }
        // Known value: Q(1.36) ≈ 0.0494 (the 5 % critical value of the KS test).
        assert!((kolmogorov_sf(1.3581) - 0.05).abs() < 1e-4);
    }

    #[test]
    fn mann_whitney_by_hand() {
        // candidate {3,4} vs baseline {1,2,3}: pairs with c > b: 3>1,3>2, 4>1,4>2,4>3 = 5, tie 3=3 → ½.
        let t = mann_whitney(&[1, 2, 3], &[3, 4]).unwrap();
        assert_eq!(t.u, 5.5);
        assert!((t.prob_candidate_slower - 5.5 / 6.0).abs() < 1e-12);
        // Identical samples: no evidence either way.
        let same = mann_whitney(&[1, 2, 3, 4], &[1, 2, 3, 4]).unwrap();
        assert_eq!(same.u, 8.0);
        assert!(same.p_value > 0.5);
    }

    #[test]
    fn corrections() {
        let p = [0.01, 0.04, 0.03, 0.005];
        // Holm: sorted 0.005·4=0.02, 0.01·3=0.03, 0.03·2=0.06, 0.04·1 → max so far 0.06.
        let holm = adjust_p_values(&p, Correction::Holm);
        for (got, want) in holm.iter().zip([0.03, 0.06, 0.06, 0.02]) {
            assert!((got - want).abs() < 1e-12, "{holm:?}");
        }
        // BH: sorted 0.005·4/1=0.02, 0.01·4/2=0.02, 0.03·4/3=0.04, 0.04·4/4=0.04.
        let bh = adjust_p_values(&p, Correction::Bh);
        for (got, want) in bh.iter().zip([0.02, 0.04, 0.04, 0.02]) {
            assert!((got - want).abs() < 1e-12, "{bh:?}");
        }
        assert_eq!(adjust_p_values(&p, Correction::None), p.to_vec());
    }

    #[test]
    fn normal_tail() {
        assert!((normal_sf(0.0) - 0.5).abs() < 1e-15);
        assert!((normal_sf(1.959963984540054) - 0.025).abs() < 1e-12);
        assert!((normal_sf(30.0) / 4.906713927148187e-198 - 1.0).abs() < 1e-6);
    }
}
