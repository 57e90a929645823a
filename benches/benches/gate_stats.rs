//! The gate's statistics on 2 × 1M latencies (no I/O): sorting, summary statistics, the
//! order-statistic bootstrap (2000 resamples), KS and Mann–Whitney, the default rules.
//! `cargo bench -p tracelake-benches --bench gate_stats`; results in BENCHMARKS.md.

use criterion::{Criterion, criterion_group, criterion_main};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal};
use tracelake_gate::bootstrap::bootstrap_quantiles;
use tracelake_gate::stats::{ks_test, mann_whitney};
use tracelake_gate::{GateMode, GateSettings, Sample, ScopeKey, run_gate};

fn latencies(seed: u64, n: usize, factor: f64) -> Vec<i64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let body = LogNormal::new(15.0, 0.6).expect("valid");
    (0..n).map(|_| (body.sample(&mut rng) * factor) as i64).collect()
}

fn gate_stats(c: &mut Criterion) {
    let n = 1_000_000;
    let (b, cand) = (latencies(1, n, 1.0), latencies(2, n, 1.05));
    let (sb, sc) = (Sample::new(b.clone(), 10_000, None), Sample::new(cand.clone(), 10_000, None));
    let mut group = c.benchmark_group("gate_2x1M");
    group.sample_size(10);
    group.bench_function("sort both sides", |bench| {
        bench.iter(|| (Sample::new(b.clone(), 0, None), Sample::new(cand.clone(), 0, None)))
    });
    group.bench_function("bootstrap 5 quantiles x 2000", |bench| {
        bench.iter(|| bootstrap_quantiles(sb.durations(), sc.durations(), &[0.5, 0.9, 0.95, 0.99, 0.999], 2000, 42))
    });
    group.bench_function("ks + mann-whitney", |bench| {
        bench.iter(|| (ks_test(sb.durations(), sc.durations()), mann_whitney(sb.durations(), sc.durations())))
    });
    let settings = GateSettings::default();
    group.bench_function("run_gate default rules (sorted input)", |bench| {
        bench.iter(|| run_gate(vec![(ScopeKey::default(), sb.clone(), sc.clone())], &settings, GateMode::Single))
    });
    group.finish();
}

criterion_group!(benches, gate_stats);
criterion_main!(benches);
