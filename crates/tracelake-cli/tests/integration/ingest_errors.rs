//! Bad input to `ingest`: each case is a clear error naming the problem, or a correct result,
//! and never loses what was already accepted.

use std::path::PathBuf;

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::Int64Type;
use tracelake::commands::ingest::ingest_files;
use tracelake_query::{QueryPolicy, SessionBuilder};
use tracelake_schema::AcceptMode;
use tracelake_store::DataLocation;

const GOOD: &str = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc"}}]},
"scopeSpans":[{"spans":[
 {"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"b7ad6b7169203331","name":"ok-1","kind":2,
  "startTimeUnixNano":"1705312800000000000","endTimeUnixNano":"1705312800100000000"},
 {"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"00f067aa0ba902b7","parentSpanId":"b7ad6b7169203331","name":"ok-2",
  "kind":42,"status":{"code":7},"startTimeUnixNano":"1705312800010000000","endTimeUnixNano":"1705312800020000000"}
]}]}]}"#;

struct Store {
    _dir: tempfile::TempDir,
    location: DataLocation,
    files: tempfile::TempDir,
}

impl Store {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let location = DataLocation::open(dir.path().to_str().expect("utf8")).expect("open");
        Self { _dir: dir, location, files: tempfile::tempdir().expect("tempdir") }
    }

    fn file(&self, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let path = self.files.path().join(name);
        std::fs::write(&path, bytes).expect("write");
        path
    }

    async fn count(&self, sql: &str) -> i64 {
        let ctx = SessionBuilder::new(self.location.clone()).build().await.expect("session");
        let batches = QueryPolicy::ReadOnly.plan(&ctx, sql).await.expect("plan").collect().await.expect("run");
        batches[0].column(0).as_primitive::<Int64Type>().value(0)
    }
}

#[tokio::test]
async fn truncated_protobuf_is_a_clear_error_and_other_files_still_load() {
    use prost::Message;
    let store = Store::new();
    let request = &tracelake_schema::decode_payload(GOOD.as_bytes(), tracelake_schema::PayloadFormat::Json).expect("decode")[0];
    let bytes = request.encode_to_vec();
    let truncated = store.file("cut.pb", &bytes[..bytes.len() - 5]);
    let good = store.file("good.pb", &bytes);
    let report = ingest_files(&store.location, &[truncated.clone(), good], AcceptMode::AllOrNothing, false)
        .await
        .expect("ingest");
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].0, truncated);
    assert!(report.failed[0].1.contains("invalid OTLP protobuf"), "{}", report.failed[0].1);
    assert_eq!(store.count("SELECT count(*) FROM spans").await, 2);
}

#[tokio::test]
async fn garbage_and_empty_payloads() {
    let store = Store::new();
    let garbage = store.file("garbage.json", "{not json");
    let empty = store.file("empty.json", r#"{"resourceSpans":[]}"#);
    let empty_object = store.file("empty2.json", "{}");
    let report = ingest_files(&store.location, &[garbage, empty, empty_object], AcceptMode::AllOrNothing, false)
        .await
        .expect("ingest");
    assert_eq!(report.failed.len(), 1);
    assert!(report.failed[0].1.contains("invalid OTLP JSON"), "{}", report.failed[0].1);
    assert_eq!(report.files_ok, 2);
    assert_eq!(report.spans, 0);
    assert_eq!(report.written.files, 0);
}

#[tokio::test]
async fn wrong_length_ids_name_the_span_and_partial_keeps_the_valid_ones() {
    let store = Store::new();
    // The second span's trace id has 15 bytes.
    let bad = GOOD.replacen(
        r#""traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"00f067aa0ba902b7""#,
        r#""traceId":"0af7651916cd43dd8448eb211c8031","spanId":"00f067aa0ba902b7""#,
        1,
    );
    assert_ne!(bad, GOOD);
    let path = store.file("bad-id.json", &bad);
    let strict = ingest_files(&store.location, std::slice::from_ref(&path), AcceptMode::AllOrNothing, false)
        .await
        .expect("ingest");
    assert_eq!(strict.failed.len(), 1);
    let message = &strict.failed[0].1;
    assert!(message.contains("span 'ok-2'") && message.contains("trace_id must be 16 bytes, got 15"), "{message}");
    assert_eq!(strict.spans, 0, "all-or-nothing refuses the whole file");

    let partial = ingest_files(&store.location, &[path], AcceptMode::Partial, false).await.expect("ingest");
    assert!(partial.failed.is_empty());
    assert_eq!(partial.spans, 1);
    assert_eq!(partial.rejected.len(), 1);
    assert_eq!(partial.rejected[0].1.span_name, "ok-2");
    assert_eq!(store.count("SELECT count(*) FROM spans WHERE span_name = 'ok-1'").await, 1);
}

#[tokio::test]
async fn odd_length_hex_id_is_a_json_error() {
    let store = Store::new();
    let bad = GOOD.replacen("b7ad6b7169203331\",\"name", "b7ad6b716920333\",\"name", 1);
    let path = store.file("odd.json", &bad);
    let report = ingest_files(&store.location, &[path], AcceptMode::AllOrNothing, false).await.expect("ingest");
    assert_eq!(report.failed.len(), 1);
    assert!(report.failed[0].1.contains("invalid OTLP JSON"), "{}", report.failed[0].1);
}

#[tokio::test]
async fn unknown_enum_values_are_unspecified_and_unset() {
    let store = Store::new();
    let path = store.file("enums.json", GOOD);
    ingest_files(&store.location, &[path], AcceptMode::AllOrNothing, false).await.expect("ingest");
    let n = store
        .count("SELECT count(*) FROM spans WHERE span_name = 'ok-2' AND span_kind = 'UNSPECIFIED' AND status_code = 'UNSET'")
        .await;
    assert_eq!(n, 1);
}

#[tokio::test]
async fn one_megabyte_attribute_is_stored_whole() {
    let store = Store::new();
    let big = "x".repeat(1 << 20);
    let with_big = GOOD.replacen(
        r#""name":"ok-1","#,
        &format!(r#""name":"ok-1","attributes":[{{"key":"big","value":{{"stringValue":"{big}"}}}}],"#),
        1,
    );
    let path = store.file("big.json", with_big);
    ingest_files(&store.location, &[path], AcceptMode::AllOrNothing, false).await.expect("ingest");
    let len = store.count("SELECT CAST(length(span_attributes['big']) AS BIGINT) FROM spans WHERE span_name = 'ok-1'").await;
    assert_eq!(len, 1 << 20);
}

#[tokio::test]
async fn gzipped_json_lines() {
    use std::io::Write;
    let store = Store::new();
    let line = GOOD.replace('\n', "");
    let second = line.replace("0af7651916cd43dd8448eb211c80319c", "1af7651916cd43dd8448eb211c80319c");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    write!(gz, "{line}\n{second}\n").expect("gzip");
    let path = store.file("batch.jsonl.gz", gz.finish().expect("gzip"));
    let report = ingest_files(&store.location, &[path], AcceptMode::AllOrNothing, false).await.expect("ingest");
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(store.count("SELECT count(DISTINCT trace_id) FROM spans").await, 2);
}
