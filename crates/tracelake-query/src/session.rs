//! [`SessionBuilder`]: one `SessionContext` per query session, configured the same way for
//! every front end.

use std::sync::Arc;

use datafusion::execution::context::{SessionConfig, SessionContext};
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::cache::cache_manager::CacheManagerConfig;
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
}

impl SessionBuilder {
    /// A builder for `location` with default options.
    pub fn new(location: DataLocation) -> Self {
        Self { location, options: SessionOptions::default(), fresh: None }
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
        let mut config = SessionConfig::new()
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
        // No cached file listings: ingest flushes and compaction change the files under us,
        // and DataFusion's default cache never expires.
        let caches = CacheManagerConfig::default().with_list_files_cache_limit(0);
        let mut runtime = RuntimeEnvBuilder::new().with_cache_manager(caches);
        if let Some(limit) = self.options.memory_limit {
            runtime = runtime.with_memory_pool(Arc::new(FairSpillPool::new(limit)));
        }
        let runtime = Arc::new(runtime.build()?);
        runtime.register_object_store(self.location.store_url(), self.location.store());
        let mut ctx = SessionContext::new_with_config_rt(self.session_config(), runtime);

        let parquet_options = ctx.state().table_options().parquet.clone();
        let mut table = SpansTable::try_new(&self.location, parquet_options)?;
        if let Some(fresh) = &self.fresh {
            table = table.with_fresh(Arc::clone(fresh));
        }
        let spans: Arc<dyn datafusion::catalog::TableProvider> = Arc::new(table);
        ctx.register_table("spans", Arc::clone(&spans))?;
        tracelake_udfs::register_all(&mut ctx)?;
        tracelake_udfs::register_table_functions(&ctx, spans);
        for (_, sql) in ALL_VIEWS {
            ctx.sql(sql).await?;
        }
        Ok(ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracelake_schema::{AcceptMode, PayloadFormat, convert_request, decode_payload};
    use tracelake_store::{PartitionKey, SpanFileWriter};

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
}
