//! [`SessionBuilder`]: one `SessionContext` per query session, configured the same way for
//! every front end.

use std::sync::Arc;

use datafusion::execution::context::{SessionConfig, SessionContext};
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::cache::cache_manager::{CacheManagerConfig, FileMetadataCache};
use datafusion::execution::cache::default_cache::DefaultCache;
use tracelake_store::dedicated::DedicatedColumnFilters;
use tracelake_store::{DataLocation, FreshSpans, SpansTable};

use crate::error::Result;
use crate::views::ALL_VIEWS;

/// Knobs of a session. Defaults suit an interactive query on this machine.
#[derive(Debug, Clone, Default)]
pub struct SessionOptions {
    /// Parallelism of plans (`datafusion.execution.target_partitions`); default: CPU count.
    pub target_partitions: Option<usize>,
    /// Memory limit in bytes for query execution (spilling operators spill beyond it).
    pub memory_limit: Option<usize>,
}

/// Builds sessions over one data location.
#[derive(Debug, Clone)]
pub struct SessionBuilder {
    location: DataLocation,
    options: SessionOptions,
    fresh: Option<Arc<dyn FreshSpans>>,
    metadata_cache: Option<Arc<FileMetadataCache>>,
}

/// Bound of the list-files cache, which holds at most the listings of the scans being planned.
const LIST_FILES_HANDOFF_BYTES: usize = 64 << 20;

/// A cache of Parquet footers and page indexes that sessions can share (see
/// [`SessionBuilder::with_metadata_cache`]), bounded to `limit_bytes`.
pub fn shared_metadata_cache(limit_bytes: usize) -> Arc<FileMetadataCache> {
    Arc::new(DefaultCache::new(limit_bytes).with_name("tracelake-file-metadata"))
}

impl SessionBuilder {
    /// A builder for `location` with default options.
    pub fn new(location: DataLocation) -> Self {
        Self { location, options: SessionOptions::default(), fresh: None, metadata_cache: None }
    }

    /// Shares one footer/page-index cache between the sessions built (a server's queries):
    /// span files are immutable, and DataFusion checks each entry against the file's size and
    /// modification time, so an entry is never used for a file that changed. Without it every
    /// session starts cold and re-reads every footer it touches.
    pub fn with_metadata_cache(mut self, cache: Arc<FileMetadataCache>) -> Self {
        self.metadata_cache = Some(cache);
        self
    }

    /// Makes `spans` include spans not yet flushed to Parquet (a server's ingest buffer).
    pub fn with_fresh(mut self, fresh: Arc<dyn FreshSpans>) -> Self {
        self.fresh = Some(fresh);
        self
    }

    /// Sets the options.
    pub fn with_options(mut self, options: SessionOptions) -> Self {
        self.options = options;
        self
    }

    /// The location sessions read.
    pub fn location(&self) -> &DataLocation {
        &self.location
    }

    /// The DataFusion configuration tracelake runs with.
    pub fn session_config(&self) -> SessionConfig {
        // DataFusion's own `DATAFUSION_*` variables (e.g. `DATAFUSION_EXECUTION_BATCH_SIZE`) are
        // honoured for experiments; the settings below always win.
        let base = SessionConfig::from_env().unwrap_or_else(|e| {
            tracing::warn!("ignoring DATAFUSION_* environment variables: {e}");
            SessionConfig::new()
        });
        self.session_config_on(base)
    }

    /// tracelake's settings applied on top of `base` (e.g. a Ballista client's configuration).
    pub fn session_config_on(&self, base: SessionConfig) -> SessionConfig {
        let mut config = base
            .with_information_schema(true)
            .with_create_default_catalog_and_schema(true);
        if let Some(n) = self.options.target_partitions {
            config = config.with_target_partitions(n.max(1));
        }
        let options = config.options_mut();
        // Late materialisation: evaluate filters while decoding so that trace-id lookups and
        // selective attribute filters read only matching rows (measured: 10x on lookups).
        options.execution.parquet.pushdown_filters = true;
        options.execution.parquet.reorder_filters = true;
        options.execution.parquet.bloom_filter_on_read = true;
        // Our files store Utf8; reading them as views would only add casts to the table schema.
        options.execution.parquet.schema_force_view_types = false;
        config
    }

    /// Builds a session: config, runtime, the `spans` table, trace functions and views.
    pub async fn build(&self) -> Result<SessionContext> {
        self.build_with_config(self.session_config()).await
    }

    /// The runtime of a session: caches, memory pool, the location's object store.
    pub fn runtime_env(&self) -> Result<Arc<RuntimeEnv>> {
        // The list-files cache only hands a trace-id lookup's files to its scan: every scan
        // removes the listing it made (`tracelake_store::lookup`), so flushes and compaction
        // are seen by the next scan, as without a cache.
        let mut caches = CacheManagerConfig::default().with_list_files_cache_limit(LIST_FILES_HANDOFF_BYTES);
        if let Some(cache) = &self.metadata_cache {
            caches = caches.with_file_metadata_cache(Some(Arc::clone(cache))).with_metadata_cache_limit(cache.cache_limit());
        }
        let mut runtime = RuntimeEnvBuilder::new().with_cache_manager(caches);
        if let Some(limit) = self.options.memory_limit {
            runtime = runtime.with_memory_pool(Arc::new(FairSpillPool::new(limit)));
        }
        let runtime = Arc::new(runtime.build()?);
        runtime.register_object_store(self.location.store_url(), self.location.store());
        Ok(runtime)
    }

    /// Like [`SessionBuilder::build`], with `config` (from [`SessionBuilder::session_config_on`]).
    pub async fn build_with_config(&self, config: SessionConfig) -> Result<SessionContext> {
        let mut ctx = SessionContext::new_with_config_rt(config, self.runtime_env()?);
        self.register_into(&mut ctx).await?;
        Ok(ctx)
    }

    /// Registers the `spans` table, the trace functions, the analyzer rule and the views in
    /// `ctx` (a context made elsewhere, e.g. a Ballista client's).
    pub async fn register_into(&self, ctx: &mut SessionContext) -> Result<()> {
        let parquet_options = ctx.state().table_options().parquet.clone();
        let mut table = SpansTable::try_new(&self.location, parquet_options)?;
        if let Some(fresh) = &self.fresh {
            table = table.with_fresh(Arc::clone(fresh));
        }
        let spans: Arc<dyn datafusion::catalog::TableProvider> = Arc::new(table);
        ctx.register_table("spans", Arc::clone(&spans))?;
        tracelake_udfs::register_all(ctx)?;
        ctx.add_analyzer_rule(Arc::new(DedicatedColumnFilters));
        tracelake_udfs::register_table_functions(ctx, spans);
        for (_, sql) in ALL_VIEWS {
            ctx.sql(sql).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracelake_schema::{AcceptMode, PayloadFormat, convert_request, decode_payload};
    use tracelake_store::{PartitionKey, SpanFileWriter};

    /// The spans of OTLP JSON `resourceSpans` entries as one batch.
    fn batch_of(resource_spans: &[String]) -> datafusion::arrow::array::RecordBatch {
        let json = format!(r#"{{"resourceSpans":[{}]}}"#, resource_spans.join(","));
        let request = decode_payload(json.as_bytes(), PayloadFormat::Json).unwrap().remove(0);
        convert_request(&request, AcceptMode::AllOrNothing).unwrap().batch
    }

    /// Writes `batch` as a flush does: files per partition plus a trace-index segment.
    async fn write_flush(location: &DataLocation, batch: &datafusion::arrow::array::RecordBatch) {
        let mut buffer = tracelake_store::PartitionedBuffer::new(SpanFileWriter::new(location.clone()));
        buffer.push(batch).await.unwrap();
        buffer.finish().await.unwrap();
    }

    /// The result of `sql` as a pretty-printed table.
    async fn pretty(ctx: &SessionContext, sql: impl AsRef<str>) -> String {
        let batches = ctx.sql(sql.as_ref()).await.unwrap().collect().await.unwrap();
        datafusion::arrow::util::pretty::pretty_format_batches(&batches).unwrap().to_string()
    }

    async fn count(ctx: &SessionContext) -> i64 {
        let batches = ctx.sql("SELECT count(*) FROM spans").await.unwrap().collect().await.unwrap();
        datafusion::arrow::array::AsArray::as_primitive::<datafusion::arrow::datatypes::Int64Type>(batches[0].column(0).as_ref()).value(0)
    }

    #[tokio::test]
    async fn a_long_lived_session_sees_files_written_after_it_started() {
        let dir = tempfile::tempdir().unwrap();
        let location = DataLocation::open(dir.path().to_str().unwrap()).unwrap();
        let json = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0af7651916cd43dd8448eb211c80319c",
            "spanId":"b7ad6b7169203331","name":"op","startTimeUnixNano":"1705312800000000000","endTimeUnixNano":"1705312800000000100"}]}]}]}"#;
        let request = decode_payload(json.as_bytes(), PayloadFormat::Json).unwrap().remove(0);
        let batch = convert_request(&request, AcceptMode::AllOrNothing).unwrap().batch;
        let writer = SpanFileWriter::new(location.clone());
        let key = PartitionKey::for_span(1_705_312_800_000_000_000, "unknown_service");
        writer.write_partition(&key, std::slice::from_ref(&batch)).await.unwrap();
        let ctx = SessionBuilder::new(location).build().await.unwrap();
        assert_eq!(count(&ctx).await, 1);
        writer.write_partition(&key, &[batch]).await.unwrap();
        assert_eq!(count(&ctx).await, 2, "the second file is listed, not served from a stale cache");
    }

    #[tokio::test]
    async fn lookups_through_the_trace_index_equal_a_full_scan() {
        let dir = tempfile::tempdir().unwrap();
        let location = DataLocation::open(dir.path().to_str().unwrap()).unwrap();
        // 30 traces over 3 services and 3 hours; each trace in one hour, in 1–3 services.
        let mut spans = Vec::new();
        for t in 0..30u64 {
            let start = 1_705_312_800_000_000_000u64 + (t % 3) * 3_600_000_000_000 + t;
            for s in 0..=(t % 3) {
                spans.push(format!(
                    r#"{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"svc{s}"}}}}]}},"scopeSpans":[{{"spans":[{{"traceId":"{:032x}","spanId":"{:016x}","name":"op","startTimeUnixNano":"{start}","endTimeUnixNano":"{}"}}]}}]}}"#,
                    t * 7919 + 1, s + 1, start + 5
                ));
            }
        }
        let batch = batch_of(&spans);
        write_flush(&location, &batch).await;
        // One more span of trace 0 in a file no index segment covers.
        let extra = batch.slice(0, 1);
        let key = PartitionKey::for_span(1_705_312_800_000_000_000 + 7 * 3_600_000_000_000, "svc9");
        SpanFileWriter::new(location.clone()).write_partition(&key, &[extra]).await.unwrap();

        let ctx = SessionBuilder::new(location).build().await.unwrap();
        for t in [0u64, 1, 2, 13, 29] {
            let id = format!("{:032x}", t * 7919 + 1);
            let select = "SELECT service_name, span_id, date, hour FROM spans";
            let indexed = pretty(&ctx, format!("{select} WHERE trace_id = '{id}' ORDER BY 1, 2")).await;
            // `concat(trace_id, '')` is not a literal comparison on the column: no index, full scan.
            let scanned = pretty(&ctx, format!("{select} WHERE concat(trace_id, '') = '{id}' ORDER BY 1, 2")).await;
            assert_eq!(indexed, scanned, "trace {t}");
            let expected_rows = (t % 3 + 1) as usize + usize::from(t == 0);
            assert_eq!(indexed.lines().count(), expected_rows + 4, "trace {t}:\n{indexed}");
        }
        let both = format!("'{:032x}', '{:032x}'", 1, 13 * 7919 + 1);
        let indexed = pretty(&ctx, format!("SELECT count(*) FROM spans WHERE trace_id IN ({both})")).await;
        assert!(indexed.contains("| 4 "), "trace 0 (1 + 1 unindexed) and 13 (2): {indexed}");
    }

    #[tokio::test]
    async fn map_filters_prune_by_dedicated_columns_without_changing_results() {
        let dir = tempfile::tempdir().unwrap();
        let location = DataLocation::open(dir.path().to_str().unwrap()).unwrap();
        let writer = SpanFileWriter::new(location.clone());
        let key = PartitionKey::for_span(1_705_312_800_000_000_000, "unknown_service");
        // Two files of one partition: routes /a and /b, status codes 200 and 500, plus spans
        // without any route.
        for (file, route) in ["/a", "/b"].into_iter().enumerate() {
            let spans: Vec<String> = (0..6u64)
                .map(|i| {
                    let attrs = match i % 3 {
                        0 => String::new(),
                        1 => format!(r#"{{"key":"http.route","value":{{"stringValue":"{route}"}}}},{{"key":"http.response.status_code","value":{{"intValue":"200"}}}}"#),
                        _ => format!(r#"{{"key":"http.route","value":{{"stringValue":"{route}"}}}},{{"key":"http.response.status_code","value":{{"intValue":"500"}}}}"#),
                    };
                    format!(
                        r#"{{"traceId":"{:032x}","spanId":"{:016x}","name":"op","startTimeUnixNano":"1705312800000000000","endTimeUnixNano":"1705312800000000100","attributes":[{attrs}]}}"#,
                        file * 10 + i as usize + 1, i + 1
                    )
                })
                .collect();
            let json = format!(r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{}]}}]}}]}}"#, spans.join(","));
            let request = decode_payload(json.as_bytes(), PayloadFormat::Json).unwrap().remove(0);
            let batch = convert_request(&request, AcceptMode::AllOrNothing).unwrap().batch;
            writer.write_partition(&key, &[batch]).await.unwrap();
        }
        let ctx = SessionBuilder::new(location).build().await.unwrap();
        let filter = "span_attributes['http.route'] = '/a' AND attr(span_attributes, 'http.response.status_code') = '500'";
        let select = "SELECT trace_id, span_id FROM spans";
        let rewritten = pretty(&ctx, format!("{select} WHERE {filter} ORDER BY 1")).await;
        // `concat(…, '')` hides the map lookup from the rewrite: the plain map filter.
        let plain = pretty(&ctx, format!(
            "{select} WHERE concat(span_attributes['http.route'], '') = '/a' \
             AND concat(attr(span_attributes, 'http.response.status_code'), '') = '500' ORDER BY 1"
        ))
        .await;
        assert_eq!(rewritten, plain);
        assert_eq!(rewritten.lines().count(), 2 + 4, "spans 3 and 6 of the /a file:\n{rewritten}");
        let explain = pretty(&ctx, format!("EXPLAIN ANALYZE SELECT count(*) FROM spans WHERE {filter}")).await;
        assert!(
            explain.contains("files_ranges_pruned_statistics=2 total → 1 matched"),
            "the /b file is pruned by http_route statistics:\n{explain}"
        );
    }

    #[tokio::test]
    async fn compaction_keeps_every_scan_exact_at_every_step() {
        use std::time::{Duration, SystemTime};
        use tracelake_store::compaction::{self, CompactionOptions, manifest};
        let dir = tempfile::tempdir().unwrap();
        let location = DataLocation::open(dir.path().to_str().unwrap()).unwrap();
        // 5 flushes of 20 spans each into the same 2 partitions (services a, b): 10 files.
        for flush in 0..5u64 {
            let spans: Vec<String> = (0..20u64)
                .map(|i| {
                    let n = flush * 20 + i;
                    format!(
                        r#"{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"{}"}}}}]}},"scopeSpans":[{{"spans":[{{"traceId":"{:032x}","spanId":"{:016x}","name":"op","startTimeUnixNano":"{}","endTimeUnixNano":"{}"}}]}}]}}"#,
                        if n % 2 == 0 { "a" } else { "b" }, n / 3 + 1, n + 1, 1_705_312_800_000_000_000u64 + n, 1_705_312_800_000_000_100u64 + n
                    )
                })
                .collect();
            write_flush(&location, &batch_of(&spans)).await;
        }
        let files = || {
            walk(dir.path().join("spans")).into_iter().filter(|p| p.extension().is_some_and(|e| e == "parquet")).count()
        };
        assert_eq!(files(), 10);
        let ctx = SessionBuilder::new(location.clone()).build().await.unwrap();
        let summary = "SELECT service_name, count(*), count(DISTINCT span_id), min(span_id), max(span_id) FROM spans GROUP BY 1 ORDER BY 1";
        let lookup = "SELECT span_id FROM spans WHERE trace_id = '0000000000000000000000000000000a' ORDER BY 1";
        let (before, before_lookup) = (pretty(&ctx, summary).await, pretty(&ctx, lookup).await);
        assert_eq!(count(&ctx).await, 100);
        assert_eq!(before_lookup.lines().count(), 3 + 4, "trace 10 has spans 28, 29, 30:\n{before_lookup}");

        let options = CompactionOptions { target_file_bytes: 64 << 20, min_file_age: Duration::ZERO, grace: Duration::ZERO };
        let jobs = compaction::plan(&location, &options, SystemTime::now()).await.unwrap();
        assert_eq!(jobs.len(), 2, "one job per partition");
        assert!(jobs.iter().all(|j| j.files.len() == 5));
        // A manifest whose file is not written yet hides nothing.
        let pending = manifest::Manifest { output: ulid::Ulid::new().to_string(), partition: jobs[0].partition.clone(), replaces: vec![] };
        let mut early = pending.clone();
        early.replaces = jobs[0].files.iter().map(|f| f.location.filename().unwrap().trim_end_matches(".parquet").to_owned()).collect();
        manifest::write(&location, &early).await.unwrap();
        assert_eq!(pretty(&ctx, summary).await, before, "manifest without its file");
        for job in &jobs {
            compaction::run_job(&location, job).await.unwrap();
        }
        assert_eq!(files(), 12, "new files written, old ones still there");
        assert_eq!(pretty(&ctx, summary).await, before, "old files hidden by the manifests");
        assert_eq!(pretty(&ctx, lookup).await, before_lookup);
        // Files named by a pending manifest are not planned again.
        assert!(compaction::plan(&location, &options, SystemTime::now()).await.unwrap().is_empty());
        let done = compaction::finish(&location, Duration::ZERO, SystemTime::now()).await.unwrap();
        assert_eq!((done.files_deleted, done.manifests_completed, done.manifests_waiting), (10, 2, 1));
        assert_eq!(files(), 2);
        assert_eq!(pretty(&ctx, summary).await, before, "after the old files are gone");
        assert_eq!(pretty(&ctx, lookup).await, before_lookup, "the trace index covers the merged files");
        // The abandoned manifest goes after an hour.
        let later = SystemTime::now() + Duration::from_secs(3601);
        let done = compaction::finish(&location, Duration::ZERO, later).await.unwrap();
        assert_eq!(done.manifests_abandoned, 1);
        assert!(manifest::read_all(&location).await.unwrap().is_empty());
    }

    fn walk(dir: std::path::PathBuf) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() { out.extend(walk(path)) } else { out.push(path) }
        }
        out
    }
}
