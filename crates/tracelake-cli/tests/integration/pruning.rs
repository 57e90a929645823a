//! Partition pruning: predicates on `service_name` and `start_time` read only the matching
//! partition directories (checked on the physical plan's file list).

use datafusion::physical_plan::displayable;
use tracelake_query::{QueryPolicy, SessionBuilder};

use super::common::fixture_store;

/// The Parquet files a query's plan will read.
async fn files_read(sql: &str) -> Vec<String> {
    let (_dir, location) = fixture_store().await;
    let ctx = SessionBuilder::new(location).build().await.expect("session");
    let plan = QueryPolicy::ReadOnly.plan(&ctx, sql).await.expect("plan").create_physical_plan().await.expect("physical");
    let text = displayable(plan.as_ref()).indent(true).to_string();
    let re = regex::Regex::new(r"[^\s\[\],]+\.parquet").expect("regex");
    let mut files: Vec<String> = re.find_iter(&text).map(|m| m.as_str().to_owned()).collect();
    files.sort();
    files.dedup();
    files
}

#[tokio::test]
async fn service_predicate_reads_only_that_service() {
    let files = files_read("SELECT count(*) FROM spans WHERE service_name = 'cart' AND duration_ns > 0").await;
    // cart has spans in hours 10 and 11 of 2024-01-15: two partitions, one file each.
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(files.iter().all(|f| f.contains("/service=cart/")), "{files:?}");
}

#[tokio::test]
async fn escaped_service_names_prune_too() {
    let files = files_read("SELECT span_name FROM spans WHERE service_name = 'payment svc'").await;
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].contains("/date=2024-01-15/hour=10/service=payment%20svc/"), "{files:?}");
}

#[tokio::test]
async fn time_range_reads_only_matching_hours() {
    let files = files_read(
        "SELECT count(*) FROM spans WHERE start_time >= TIMESTAMP '2024-01-15T11:00:00Z' AND start_time < TIMESTAMP '2024-01-15T12:00:00Z'",
    )
    .await;
    // Hour 11 holds cart (3 spans) and frontend (1 span).
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(files.iter().all(|f| f.contains("/date=2024-01-15/hour=11/")), "{files:?}");
}

#[tokio::test]
async fn service_and_time_together_read_one_file() {
    let files = files_read(
        "SELECT count(*) FROM spans WHERE service_name = 'frontend' AND start_time > TIMESTAMP '2024-01-15T11:00:00Z'",
    )
    .await;
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].contains("/hour=11/service=frontend/"), "{files:?}");
}

#[tokio::test]
async fn unfiltered_query_reads_every_file() {
    // 6 partitions (see spans.slt), one file each.
    assert_eq!(files_read("SELECT count(*) FROM spans WHERE duration_ns > 0").await.len(), 6);
}

/// Service names with characters that need escaping, in a data directory whose own name needs
/// URL escaping, are found by every kind of lookup: a full partition equality (DataFusion then
/// lists exactly one directory), a service predicate, and a scan.
#[tokio::test]
async fn awkward_service_and_directory_names() {
    use tracelake::commands::ingest::ingest_files;
    use tracelake_schema::AcceptMode;
    use tracelake_store::DataLocation;

    let names = ["api:v2", "[x]*", "a b", "ä/ö", "..", "50%"];
    let spans: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            format!(
                r#"{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":{name:?}}}}}]}},
                "scopeSpans":[{{"spans":[{{"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"000000000000000{}",
                "name":"op","startTimeUnixNano":"1705312800000000000","endTimeUnixNano":"1705312800000000001"}}]}}]}}"#,
                i + 1
            )
        })
        .collect();
    let body = format!(r#"{{"resourceSpans":[{}]}}"#, spans.join(","));
    let root = tempfile::tempdir().expect("tempdir");
    let data = root.path().join("run#1 ?[x]*");
    let input = root.path().join("in.json");
    std::fs::write(&input, body).expect("write");
    let location = DataLocation::open(data.to_str().expect("utf8")).expect("open");
    let report = ingest_files(&location, &[input], AcceptMode::AllOrNothing, false).await.expect("ingest");
    assert!(report.failed.is_empty(), "{:?}", report.failed);

    let ctx = SessionBuilder::new(location).build().await.expect("session");
    for name in names {
        let quoted = name.replace('\'', "''");
        for sql in [
            format!("SELECT count(*) FROM spans WHERE date = '2024-01-15' AND hour = '10' AND service_name = '{quoted}'"),
            format!("SELECT count(*) FROM spans WHERE date = '2024-01-15' AND hour = '10' AND service = '{quoted}'"),
            format!("SELECT count(*) FROM spans WHERE service_name = '{quoted}'"),
            format!("SELECT count(*) FROM (SELECT * FROM spans) WHERE service || '' = '{quoted}'"),
        ] {
            let batches = QueryPolicy::ReadOnly.plan(&ctx, &sql).await.expect("plan").collect().await.expect("run");
            let n = datafusion::arrow::array::AsArray::as_primitive::<datafusion::arrow::datatypes::Int64Type>(batches[0].column(0)).value(0);
            assert_eq!(n, 1, "{sql}");
        }
    }
}
