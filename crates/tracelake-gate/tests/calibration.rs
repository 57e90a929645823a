//! Calibration of the gate's p-values: with no real change and a zero allowance, a rule must
//! flag a regression in about α = 5 % of runs — no more (crying wolf), not far less (blind).
//! Slow in a debug build; run with
//! `cargo test --release -p tracelake-gate --test calibration -- --ignored --nocapture`.
//! Measured 2026-11-26 (400 runs each): p99 n=1000 4.8 %, n=5000 5.0 %, n=20000 6.5 %;
//! p50 n=5000 3.3 %; p99.9 n=2000 3.8 %.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal};
use tracelake_gate::{GateMode, GateSettings, Sample, ScopeKey, Threshold, Verdict, run_gate};

/// Log-normal body with a 2 % slow tail, like a real operation.
fn draw(rng: &mut ChaCha8Rng, n: usize) -> Sample {
    let body = LogNormal::new(15.0, 0.5).expect("valid");
    let tail = LogNormal::new(17.0, 0.7).expect("valid");
    let durations = (0..n)
        .map(|_| {
            let u: f64 = rand::Rng::random(rng);
            (if u < 0.02 { tail.sample(rng) } else { body.sample(rng) }) as i64
        })
        .collect();
    Sample::new(durations, 0, None)
}

#[test]
#[ignore = "slow; a calibration measurement, run in release"]
fn false_alarm_rate_is_close_to_alpha() {
    for (n, rule) in [(1000usize, "p99 +0%"), (5000, "p99 +0%"), (5000, "p50 +0%"), (20000, "p99 +0%"), (2000, "p99.9 +0%")] {
        let settings =
            GateSettings { thresholds: vec![Threshold::parse(rule).expect("rule")], min_tail_samples: 1, ..Default::default() };
        let runs = 400;
        let alarms = (0..runs)
            .filter(|&seed| {
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                let (b, c) = (draw(&mut rng, n), draw(&mut rng, n));
                run_gate(vec![(ScopeKey::default(), b, c)], &settings, GateMode::Single).verdict == Verdict::Regression
            })
            .count();
        let rate = alarms as f64 / runs as f64;
        eprintln!("n={n} {rule}: false regressions {alarms}/{runs} = {:.1} % (α = 5 %)", rate * 100.0);
        assert!(rate <= 0.09, "{rule} at n={n}: {rate}");
        assert!(rate >= 0.01, "{rule} at n={n}: {rate} — far below α, the test has lost power");
    }
}
