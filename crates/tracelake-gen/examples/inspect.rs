//! Prints the topology and workload statistics of a configuration (development aid).
use std::collections::HashMap;
use tracelake_gen::{GenConfig, Generator};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let spans: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let seed: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1);
    let services: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(12);
    let operations: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(60);
    let cfg = GenConfig { seed, spans, services, operations, ..GenConfig::default() };
    let g = Generator::new(cfg).expect("config");
    for (i, s) in g.topology().services.iter().enumerate() {
        println!("{i:2} {:16} {:7} hosts={} down={:?}", s.name, s.language, s.hosts.len(), s.downstream);
        for (j, o) in s.operations.iter().enumerate() {
            let calls: Vec<String> = o
                .calls
                .iter()
                .map(|c| {
                    format!(
                        "{}:{}{}{}",
                        c.service,
                        c.operation,
                        if c.probability < 1.0 { format!("?{:.2}", c.probability) } else { String::new() },
                        if c.parallel { "||" } else { "" }
                    )
                })
                .collect();
            println!(
                "     {j:2} {:40} med={:6.2}ms sig={:.2} err={:.4} depth={:?} calls={}",
                o.name,
                o.median_ms,
                o.sigma,
                o.error_rate,
                o.depth,
                calls.join(" ")
            );
        }
    }
    println!("mean spans/trace {:.2}, expected traces {:.0}", g.mean_spans_per_trace(), g.expected_traces());
    // Pure generation throughput (this build's profile).
    let t = std::time::Instant::now();
    let pure: usize = Generator::new(g.config().clone())
        .expect("config")
        .map(|r| r.resource_spans.iter().flat_map(|rs| &rs.scope_spans).map(|ss| ss.spans.len()).sum::<usize>())
        .sum();
    println!("generation only: {pure} spans, {:.0} spans/s", pure as f64 / t.elapsed().as_secs_f64());
    let t = std::time::Instant::now();
    let mut n = 0u64;
    let mut errs = 0u64;
    let mut kinds: HashMap<i32, u64> = HashMap::new();
    let mut traces: HashMap<Vec<u8>, (u64, u64, u64)> = HashMap::new();
    let mut min_start = u64::MAX;
    let mut max_start = 0;
    let mut max_end = 0;
    let mut reqs = 0;
    for req in g {
        reqs += 1;
        for rs in req.resource_spans {
            for ss in rs.scope_spans {
                for sp in ss.spans {
                    n += 1;
                    if sp.status.as_ref().is_some_and(|s| s.code == 2) {
                        errs += 1;
                    }
                    *kinds.entry(sp.kind).or_default() += 1;
                    min_start = min_start.min(sp.start_time_unix_nano);
                    max_start = max_start.max(sp.start_time_unix_nano);
                    max_end = max_end.max(sp.end_time_unix_nano);
                    let e = traces.entry(sp.trace_id.clone()).or_insert((u64::MAX, 0, 0));
                    e.0 = e.0.min(sp.start_time_unix_nano);
                    e.1 = e.1.max(sp.end_time_unix_nano);
                    e.2 += 1;
                }
            }
        }
    }
    let el = t.elapsed();
    println!("spans {n} in {reqs} requests, {:.0} spans/s", n as f64 / el.as_secs_f64());
    println!("error rate {:.4}, kinds {:?}", errs as f64 / n as f64, {
        let mut k: Vec<_> = kinds.into_iter().collect();
        k.sort();
        k
    });
    let mut durs: Vec<u64> = traces.values().map(|t| t.1 - t.0).collect();
    durs.sort();
    let mut sizes: Vec<u64> = traces.values().map(|t| t.2).collect();
    sizes.sort();
    let q = |v: &Vec<u64>, p: f64| v[((v.len() - 1) as f64 * p) as usize];
    println!(
        "traces {} ; size p50 {} p90 {} p99 {} max {}",
        traces.len(),
        q(&sizes, 0.5),
        q(&sizes, 0.9),
        q(&sizes, 0.99),
        q(&sizes, 1.0)
    );
    println!(
        "trace dur ms p50 {:.1} p90 {:.1} p99 {:.1} max {:.1}",
        q(&durs, 0.5) as f64 / 1e6,
        q(&durs, 0.9) as f64 / 1e6,
        q(&durs, 0.99) as f64 / 1e6,
        q(&durs, 1.0) as f64 / 1e6
    );
    let st = tracelake_gen::DEFAULT_START_UNIX_NANOS;
    println!(
        "start offset min {:.1}s max start {:.1}s max end {:.1}s (window {}s)",
        (min_start - st) as f64 / 1e9,
        (max_start - st) as f64 / 1e9,
        (max_end - st) as f64 / 1e9,
        24 * 3600
    );
}
