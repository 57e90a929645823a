//! The logical codec: Ballista's own, plus the `spans` table.

use std::sync::Arc;

use ballista_core::serde::BallistaLogicalExtensionCodec;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::common::{Result, TableReference, exec_datafusion_err};
use datafusion::config::TableOptions;
use datafusion::datasource::file_format::FileFormatFactory;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Extension, LogicalPlan};
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use serde::{Deserialize, Serialize};
use tracelake_store::{DataLocation, SpansTable};

/// What is sent for a `spans` table: where its data is.
#[derive(Debug, Serialize, Deserialize)]
struct SpansTableRef {
    location: String,
}

/// Ballista's logical codec, extended with tracelake's `spans` table.
#[derive(Debug, Default)]
pub struct TracelakeLogicalCodec {
    inner: BallistaLogicalExtensionCodec,
}

impl LogicalExtensionCodec for TracelakeLogicalCodec {
    fn try_decode(&self, buf: &[u8], inputs: &[LogicalPlan], ctx: &TaskContext) -> Result<Extension> {
        self.inner.try_decode(buf, inputs, ctx)
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> Result<()> {
        self.inner.try_encode(node, buf)
    }

    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        table_ref: &TableReference,
        schema: SchemaRef,
        ctx: &TaskContext,
    ) -> Result<Arc<dyn TableProvider>> {
        let Ok(spans) = serde_json::from_slice::<SpansTableRef>(buf) else {
            return self.inner.try_decode_table_provider(buf, table_ref, schema, ctx);
        };
        let location = DataLocation::open_existing(&spans.location)
            .map_err(|e| exec_datafusion_err!("table {table_ref}: {e}"))?;
        // The scheduler lists the files: it needs the location's store (S3 included).
        ctx.runtime_env().register_object_store(location.store_url(), location.store());
        let parquet = TableOptions::default_from_session_config(ctx.session_config().options()).parquet;
        Ok(Arc::new(SpansTable::try_new(&location, parquet)?))
    }

    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        match node.downcast_ref::<SpansTable>() {
            Some(spans) => {
                let reference = SpansTableRef { location: spans.location().to_absolute_string() };
                serde_json::to_writer(buf, &reference).map_err(|e| exec_datafusion_err!("encoding {table_ref}: {e}"))
            }
            None => self.inner.try_encode_table_provider(table_ref, node, buf),
        }
    }

    fn try_decode_file_format(&self, buf: &[u8], ctx: &TaskContext) -> Result<Arc<dyn FileFormatFactory>> {
        self.inner.try_decode_file_format(buf, ctx)
    }

    fn try_encode_file_format(&self, buf: &mut Vec<u8>, node: Arc<dyn FileFormatFactory>) -> Result<()> {
        self.inner.try_encode_file_format(buf, node)
    }
}
