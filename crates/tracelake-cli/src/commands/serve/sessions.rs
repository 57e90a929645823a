//! The query sessions of `tracelake serve`: the tenant of a request (`X-Scope-OrgID`, when
//! tenants are enabled) picks its data location and its ingest buffer, so a tenant's queries
//! see exactly its own spans — flushed or not — and nobody else's.

use std::sync::Arc;

use tracelake_ingest::TenantIngesters;
use datafusion::execution::cache::cache_manager::FileMetadataCache;
use tracelake_query::SessionBuilder;
use tracelake_server::{QueryError, SessionSource};
use tracelake_store::{DataLocation, FreshSpans, TenantId};

/// Sessions per tenant over one data location.
#[derive(Debug)]
pub struct ServeSessions {
    /// The data location (default tenant at its root).
    pub location: DataLocation,
    /// The ingesters, for buffered spans.
    pub ingesters: Arc<TenantIngesters>,
    /// Parquet footers and page indexes, shared by every query of every tenant.
    pub metadata_cache: Arc<FileMetadataCache>,
}

#[async_trait::async_trait]
impl SessionSource for ServeSessions {
    async fn sessions(&self, org_id: Option<&str>) -> Result<SessionBuilder, QueryError> {
        let tenant = match org_id {
            Some(id) if self.ingesters.enabled() => Some(TenantId::parse(id).map_err(QueryError::InvalidSql)?),
            _ => None,
        };
        let location = tenant.as_ref().map_or_else(|| self.location.clone(), |t| self.location.for_tenant(t));
        let mut sessions = SessionBuilder::new(location).with_metadata_cache(Arc::clone(&self.metadata_cache));
        if let Some(ingester) = self.ingesters.existing(tenant.as_ref()) {
            sessions = sessions.with_fresh(ingester as Arc<dyn FreshSpans>);
        }
        Ok(sessions)
    }
}
