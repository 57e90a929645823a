//! Tests of [`Ingester`]: flushes, crash recovery, backpressure, fresh-data visibility.

use super::*;
use crate::flush::write_flush;
use std::path::Path;
use tracelake_store::split_by_partition;
use parquet::file::reader::{FileReader, SerializedFileReader};
use tracelake_schema::{PayloadFormat, decode_payload};

/// `n` spans of two services in one hour, with distinct span ids starting at `first`.
fn request(first: u64, n: u64) -> ExportTraceServiceRequest {
    let spans = |service: &str, range: std::ops::Range<u64>| {
        let spans: Vec<String> = range
            .map(|i| {
                format!(
                    r#"{{"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"{i:016x}","name":"op",
                    "startTimeUnixNano":"1705312800000000000","endTimeUnixNano":"1705312800000000100"}}"#
                )
            })
            .collect();
        format!(
            r#"{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"{service}"}}}}]}},"scopeSpans":[{{"spans":[{}]}}]}}"#,
            spans.join(",")
        )
    };
    let half = first + n / 2;
    let json = format!(r#"{{"resourceSpans":[{},{}]}}"#, spans("a", first..half), spans("b", half..first + n));
    decode_payload(json.as_bytes(), PayloadFormat::Json).unwrap().remove(0)
}

/// Span files and their rows (under `spans/`; the trace index next to it is not spans).
fn parquet_rows(dir: &Path) -> (usize, usize) {
    let (mut files, mut rows) = (0, 0);
    let mut stack = vec![dir.join("spans")];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(d) else { continue };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                let reader = SerializedFileReader::new(std::fs::File::open(&p).unwrap()).unwrap();
                rows += reader.metadata().file_metadata().num_rows() as usize;
                files += 1;
            }
        }
    }
    (files, rows)
}

struct Setup {
    data: tempfile::TempDir,
    wal: tempfile::TempDir,
    config: IngestConfig,
}

impl Setup {
    fn new() -> Self {
        Self { data: tempfile::tempdir().unwrap(), wal: tempfile::tempdir().unwrap(), config: IngestConfig::default() }
    }
    async fn open(&self) -> Ingester {
        let location = DataLocation::open(self.data.path().to_str().unwrap()).unwrap();
        Ingester::open(location, WalConfig::new(self.wal.path()), self.config).await.unwrap()
    }
    fn wal_files(&self) -> Vec<String> {
        let mut v: Vec<String> =
            std::fs::read_dir(self.wal.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        v.sort();
        v
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_writes_once_and_trims_the_wal() {
    let s = Setup::new();
    let ingester = s.open().await;
    assert_eq!(ingester.ingest(&request(1, 10), 0).await.unwrap().accepted, 10);
    assert_eq!(ingester.buffered_rows(), 10);
    let stats = ingester.flush().await.unwrap();
    assert_eq!((stats.files, stats.rows), (2, 10));
    assert_eq!(ingester.buffered_rows(), 0);
    assert_eq!(parquet_rows(s.data.path()), (2, 10));
    assert_eq!(s.wal_files().len(), 1, "only the open segment remains: {:?}", s.wal_files());
    // Nothing new: a second flush writes nothing.
    assert_eq!(ingester.flush().await.unwrap().files, 0);
    // Unflushed data survives a restart (in the WAL) and is flushed once.
    ingester.ingest(&request(100, 4), 0).await.unwrap();
    drop(ingester);
    let again = s.open().await;
    assert_eq!(again.buffered_rows(), 4);
    again.flush().await.unwrap();
    assert_eq!(parquet_rows(s.data.path()).1, 14);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_in_the_middle_of_a_flush_is_redone_exactly_once() {
    let s = Setup::new();
    let ingester = s.open().await;
    ingester.ingest(&request(1, 10), 0).await.unwrap();
    // Crash after the marker and one of the two partition files: do the first steps of a
    // flush by hand, writing only service "a"'s rows.
    let segment = ingester.wal.rotate().await.unwrap();
    write_marker(s.wal.path(), segment, "pending", "1700000000000").unwrap();
    let batches = ingester.snapshot().batches;
    let (_, only_a) = split_by_partition(&batches[0]).unwrap().into_iter().find(|(k, _)| k.service == "a").unwrap();
    write_flush(&ingester.writer, segment, 1_700_000_000_000, &[only_a]).await.unwrap();
    assert_eq!(parquet_rows(s.data.path()), (1, 5));
    drop(ingester);

    let recovered = s.open().await;
    assert_eq!(parquet_rows(s.data.path()), (2, 10), "the a-file was replaced, not duplicated");
    assert_eq!(recovered.buffered_rows(), 0);
    assert!(s.wal_files().iter().all(|f| !f.starts_with("flush-")), "{:?}", s.wal_files());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_after_a_complete_flush_does_not_rewrite() {
    let s = Setup::new();
    let ingester = s.open().await;
    ingester.ingest(&request(1, 6), 0).await.unwrap();
    let segment = ingester.wal.rotate().await.unwrap();
    write_marker(s.wal.path(), segment, "pending", "1700000000000").unwrap();
    write_flush(&ingester.writer, segment, 1_700_000_000_000, &ingester.snapshot().batches).await.unwrap();
    write_marker(s.wal.path(), segment, "done", "").unwrap();
    drop(ingester); // crash before the WAL was trimmed
    let recovered = s.open().await;
    assert_eq!(recovered.buffered_rows(), 0);
    assert_eq!(parquet_rows(s.data.path()), (2, 6));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_spans_are_reported_and_valid_ones_kept() {
    let s = Setup::new();
    let ingester = s.open().await;
    let mut req = request(1, 4);
    req.resource_spans[0].scope_spans[0].spans[0].trace_id.truncate(3);
    let outcome = ingester.ingest(&req, 0).await.unwrap();
    assert_eq!(outcome.accepted, 3);
    assert_eq!(outcome.rejected.len(), 1);
    assert!(outcome.rejected[0].reason.contains("trace_id must be 16 bytes, got 3"));
}


#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_buffer_refuses_until_a_flush_frees_it() {
    let mut s = Setup::new();
    let one_request = convert_request_with(&request(1, 10), AcceptMode::Partial, AttributeLimits::default())
        .unwrap()
        .batch
        .get_array_memory_size();
    // Room for one request and a half.
    s.config.max_buffered_bytes = one_request * 3 / 2;
    let ingester = s.open().await;
    assert_eq!(ingester.ingest(&request(1, 10), 0).await.unwrap().accepted, 10);
    let refused = ingester.ingest(&request(100, 10), 0).await.unwrap_err();
    assert!(matches!(refused, Error::Overloaded { .. }), "{refused}");
    assert!(refused.to_string().contains("retry"), "{refused}");
    assert_eq!(ingester.metrics().refused_total(RefusalReason::Overloaded), 10);
    assert_eq!(ingester.buffered_rows(), 10, "the refused request left nothing behind");
    ingester.flush().await.unwrap();
    assert_eq!(ingester.buffered_bytes(), 0);
    assert_eq!(ingester.ingest(&request(100, 10), 0).await.unwrap().accepted, 10);
    // A request bigger than the whole budget still gets in when the buffer is empty.
    ingester.flush().await.unwrap();
    assert_eq!(ingester.ingest(&request(200, 40), 0).await.unwrap().accepted, 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attribute_limits_truncate_and_count() {
    let mut s = Setup::new();
    s.config.attribute_limits = AttributeLimits { max_attributes: 1, max_value_bytes: 3 };
    let ingester = s.open().await;
    let mut req = request(1, 2);
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
    let kv = |k: &str, v: &str| KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(Value::StringValue(v.into())) }),
        ..Default::default()
    };
    req.resource_spans[0].scope_spans[0].spans[0].attributes = vec![kv("http.route", "/orders"), kv("b", "x")];
    ingester.ingest(&req, 0).await.unwrap();
    let text = ingester.metrics_text();
    // Resource attributes: service.name "a" fits. Span: one dropped, one value cut.
    assert!(text.contains("tracelake_attributes_dropped_total 1\n"), "{text}");
    assert!(text.contains("tracelake_attribute_values_truncated_total 1\n"), "{text}");
    let batch = &ingester.snapshot().batches[0];
    let route = batch.column_by_name("http_route").unwrap();
    assert_eq!(arrow::array::AsArray::as_string::<i32>(route.as_ref()).value(0), "/or");
}

/// Counts `spans` through DataFusion with the ingester's buffer unioned in.
async fn count_spans(s: &Setup, fresh: Arc<dyn FreshSpans>) -> i64 {
    let location = DataLocation::open(s.data.path().to_str().unwrap()).unwrap();
    let ctx = datafusion::prelude::SessionContext::new();
    ctx.runtime_env().register_object_store(location.store_url(), location.store());
    let parquet = ctx.state().table_options().parquet.clone();
    let table = tracelake_store::SpansTable::try_new(&location, parquet).unwrap().with_fresh(fresh);
    ctx.register_table("spans", Arc::new(table)).unwrap();
    let batches = ctx
        .sql("SELECT count(*) AS n, count(DISTINCT span_id) AS d FROM spans WHERE service_name IN ('a', 'b')")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let n = arrow::array::AsArray::as_primitive::<arrow::datatypes::Int64Type>(batches[0].column(0).as_ref()).value(0);
    let d = arrow::array::AsArray::as_primitive::<arrow::datatypes::Int64Type>(batches[0].column(1).as_ref()).value(0);
    assert_eq!(n, d, "no span seen twice");
    n
}

/// A scan whose snapshot was taken before a flush that completed before its listing.
#[derive(Debug)]
struct SnapshotFromBefore {
    snapshot: FreshSnapshot,
    ingester: Arc<Ingester>,
}

impl FreshSpans for SnapshotFromBefore {
    fn snapshot(&self) -> FreshSnapshot {
        self.snapshot.clone()
    }
    fn files_flushed_after(&self, mark: u64) -> datafusion::error::Result<HashSet<String>> {
        self.ingester.files_flushed_after(mark)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffered_spans_are_queryable_and_counted_once_across_a_flush() {
    let s = Setup::new();
    let ingester = Arc::new(s.open().await);
    ingester.ingest(&request(1, 10), 0).await.unwrap();
    assert_eq!(count_spans(&s, ingester.clone()).await, 10, "visible before any flush");
    let before = ingester.snapshot();
    ingester.flush().await.unwrap();
    assert_eq!(parquet_rows(s.data.path()).1, 10);
    assert_eq!(count_spans(&s, ingester.clone()).await, 10, "after the flush: from Parquet only");
    let racing = Arc::new(SnapshotFromBefore { snapshot: before, ingester: ingester.clone() });
    assert_eq!(count_spans(&s, racing).await, 10, "snapshot before, listing after the flush");
    ingester.ingest(&request(100, 6), 0).await.unwrap();
    assert_eq!(count_spans(&s, ingester.clone()).await, 16, "Parquet + buffer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
/// Also covers a flush cancelled half-way (its task aborted at shutdown): the flush is recorded
/// as unfinished before its first file is written, so failure and cancellation take the same
/// path. (Found by a test that dropped the flush future mid-write: 10 spans were duplicated
/// before; that test was timing-dependent with the local store, whose writes can complete
/// within one poll.)
async fn a_failed_flush_is_redone_with_the_same_file_names() {
    let s = Setup::new();
    let ingester = s.open().await;
    ingester.ingest(&request(1, 10), 0).await.unwrap();
    // Make the data directory unwritable for the first attempt: a file where `spans/` goes.
    let blocker = s.data.path().join("spans");
    std::fs::write(&blocker, b"not a directory").unwrap();
    assert!(ingester.flush().await.is_err());
    assert_eq!(ingester.buffered_rows(), 10, "nothing lost");
    let pending: Vec<String> = s.wal_files().into_iter().filter(|f| f.ends_with(".pending")).collect();
    assert_eq!(pending.len(), 1, "{:?}", s.wal_files());
    // More data arrives; the retry writes only the first flush's spans, then the next flush the rest.
    ingester.ingest(&request(100, 4), 0).await.unwrap();
    std::fs::remove_file(&blocker).unwrap();
    // The redo writes the first flush's spans with their original names, then the same call
    // flushes what arrived since (a shutdown's final flush must leave nothing behind).
    assert_eq!(ingester.flush().await.unwrap().rows, 14);
    assert_eq!(ingester.buffered_rows(), 0);
    assert_eq!(parquet_rows(s.data.path()).1, 14);
}
