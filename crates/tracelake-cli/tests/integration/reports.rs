//! Every example report in `sql/reports/` runs on a generated workload, and the SLO report's
//! numbers agree with a second, independent formulation.

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Float64Type, Int64Type};
use tracelake::commands::generate::generate_into_store;
use tracelake_gen::GenConfig;
use tracelake_query::{QueryPolicy, SessionBuilder};
use tracelake_store::DataLocation;

use super::common::{repo_files, repo_root};

async fn run(ctx: &datafusion::prelude::SessionContext, sql: &str) -> Vec<RecordBatch> {
    QueryPolicy::ReadOnly.plan(ctx, sql).await.unwrap_or_else(|e| panic!("{e}\n{sql}")).collect().await.expect("run")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_report_runs_on_a_generated_workload() {
    let dir = tempfile::tempdir().expect("tempdir");
    let location = DataLocation::open(dir.path().to_str().expect("utf8")).expect("open");
    let config = GenConfig { seed: 7, spans: 20_000, ..GenConfig::default() };
    let stats = generate_into_store(config, &location, false).await.expect("gen");
    assert_eq!(stats.rows, 20_000);
    let ctx = SessionBuilder::new(location).build().await.expect("session");

    let reports = repo_files("sql/reports", "sql");
    assert!(reports.len() >= 4, "{reports:?}");
    for report in &reports {
        let sql = std::fs::read_to_string(report).expect("read");
        let batches = run(&ctx, &sql).await;
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        assert!(rows > 0, "{} returned no rows", report.display());
    }

    // The SLO report's request counts add up to the number of server spans.
    let slo = std::fs::read_to_string(repo_root().join("sql/reports/slo_by_operation.sql")).expect("read");
    let total: i64 = run(&ctx, &format!("SELECT sum(requests) FROM ({slo})")).await[0]
        .column(0)
        .as_primitive::<Int64Type>()
        .value(0);
    let server: i64 = run(&ctx, "SELECT count(*) FROM spans WHERE span_kind = 'SERVER'").await[0]
        .column(0)
        .as_primitive::<Int64Type>()
        .value(0);
    assert_eq!(total, server);

    // p99 of one operation equals a hand-rolled linear interpolation over the sorted durations.
    let batches = run(
        &ctx,
        "SELECT duration_ns FROM spans WHERE span_kind = 'SERVER' AND span_name = \
         (SELECT span_name FROM spans WHERE span_kind = 'SERVER' GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1) \
         ORDER BY duration_ns",
    )
    .await;
    let durations: Vec<f64> = batches
        .iter()
        .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
        .map(|d| d as f64)
        .collect();
    assert!(durations.len() > 100);
    let pos = 0.99 * (durations.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    let expected = durations[lo] + (durations[hi] - durations[lo]) * (pos - lo as f64);
    let got = run(
        &ctx,
        "SELECT percentile(duration_ns, 0.99) FROM spans WHERE span_kind = 'SERVER' AND span_name = \
         (SELECT span_name FROM spans WHERE span_kind = 'SERVER' GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1)",
    )
    .await[0]
        .column(0)
        .as_primitive::<Float64Type>()
        .value(0);
    assert!((got - expected).abs() <= 1e-12 * expected.abs().max(1.0), "{got} vs {expected}");

    // Daily p99 from merged hourly sketches is within the sketch's 0.5 % of the exact p99 at the
    // same rank (the sketch estimates the value at rank floor(q·(n−1))).
    let sketched = run(
        &ctx,
        "WITH hourly AS (SELECT service_name, span_name, hour, latency_sketch(duration_ns) AS sk FROM spans          WHERE span_kind = 'SERVER' GROUP BY 1, 2, 3)          SELECT service_name, span_name, sketch_quantile(sketch_merge(sk), 0.99) FROM hourly GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .await;
    let exact = run(
        &ctx,
        "SELECT service_name, span_name, array_agg(duration_ns ORDER BY duration_ns) FROM spans          WHERE span_kind = 'SERVER' GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .await;
    let sketched: Vec<f64> =
        sketched.iter().flat_map(|b| b.column(2).as_primitive::<Float64Type>().values().to_vec()).collect();
    let mut checked = 0;
    for batch in &exact {
        let lists = batch.column(2).as_list::<i32>();
        for i in 0..lists.len() {
            let values = lists.value(i);
            let values = values.as_primitive::<Int64Type>();
            let rank = (0.99 * (values.len() - 1) as f64).floor() as usize;
            let want = values.value(rank) as f64;
            let got = sketched[checked];
            assert!((got - want).abs() <= 0.005 * want + 1e-9, "sketch p99 {got} vs exact {want}");
            checked += 1;
        }
    }
    assert_eq!(checked, sketched.len());
    assert!(checked > 20);

    // The critical-path report's segments tile the slow traces: they add up to their durations.
    let report = std::fs::read_to_string(repo_root().join("sql/reports/critical_path_slowest.sql")).expect("read");
    let critical_ms: f64 = run(&ctx, &format!("SELECT sum(critical_ms) FROM ({report})")).await[0]
        .column(0)
        .as_primitive::<Float64Type>()
        .value(0);
    let slow_ms: f64 = run(
        &ctx,
        "WITH roots AS (SELECT duration_ns FROM spans WHERE parent_span_id IS NULL AND service_name = 'frontend'          AND span_name = 'POST /checkout')          SELECT CAST(sum(duration_ns) AS DOUBLE) / 1e6 FROM roots WHERE duration_ns >= (SELECT percentile(duration_ns, 0.99) FROM roots)",
    )
    .await[0]
        .column(0)
        .as_primitive::<Float64Type>()
        .value(0);
    assert!(slow_ms > 0.0);
    assert!((critical_ms - slow_ms).abs() < 0.01, "{critical_ms} vs {slow_ms}");
}
