//! [`TenantIngesters`]: one [`Ingester`] per tenant (own WAL directory, buffer and flushes),
//! created on the tenant's first request and reopened at start for every tenant whose WAL
//! directory exists, so that unflushed spans of every tenant are recovered.
//!
//! Layout: the default tenant's WAL is `<wal>`, tenant `t`'s is `<wal>/tenants/t`; data as in
//! [`tracelake_store::tenant`]. Limits (`max_buffered_bytes`, …) apply per tenant.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tracelake_store::tenant::TENANTS_DIR;
use tracelake_store::{DataLocation, TenantId, WriteStats};

use crate::error::{Error, Result};
use crate::ingester::{IngestConfig, Ingester};
use crate::metrics::{IngestGauges, IngestMetrics};
use crate::wal::WalConfig;

/// When buffered spans are flushed (see [`Ingester::run_flusher`]).
#[derive(Debug, Clone, Copy)]
pub struct FlushPolicy {
    /// Oldest data age that triggers a flush.
    pub interval: Duration,
    /// Buffer size that triggers a flush.
    pub bytes: usize,
}

/// Picks the ingester for a request from its `X-Scope-OrgID` (`None`: no header).
#[async_trait::async_trait]
pub trait IngestRouter: Send + Sync + 'static {
    /// The ingester, or why the request cannot be taken.
    async fn route(&self, org_id: Option<&str>) -> std::result::Result<Arc<Ingester>, RouteError>;
}

/// Why a request has no ingester.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// The `X-Scope-OrgID` is not a valid org id (400 / INVALID_ARGUMENT).
    #[error("{0}")]
    InvalidTenant(String),
    /// The tenant's ingester could not be opened (503 / UNAVAILABLE).
    #[error(transparent)]
    Ingest(#[from] Error),
}

/// One ingester for everything; `X-Scope-OrgID` is ignored (tenants disabled).
#[derive(Debug, Clone)]
pub struct SingleTenant(pub Arc<Ingester>);

#[async_trait::async_trait]
impl IngestRouter for SingleTenant {
    async fn route(&self, _org_id: Option<&str>) -> std::result::Result<Arc<Ingester>, RouteError> {
        Ok(Arc::clone(&self.0))
    }
}

#[async_trait::async_trait]
impl IngestRouter for TenantIngesters {
    async fn route(&self, org_id: Option<&str>) -> std::result::Result<Arc<Ingester>, RouteError> {
        match org_id {
            Some(id) if self.enabled => {
                let tenant = TenantId::parse(id).map_err(RouteError::InvalidTenant)?;
                Ok(self.get(Some(&tenant)).await?)
            }
            _ => Ok(Arc::clone(&self.default)),
        }
    }
}

/// The ingesters of all tenants.
pub struct TenantIngesters {
    enabled: bool,
    location: DataLocation,
    wal: WalConfig,
    config: IngestConfig,
    policy: FlushPolicy,
    metrics: Arc<IngestMetrics>,
    default: Arc<Ingester>,
    tenants: std::sync::RwLock<BTreeMap<TenantId, Arc<Ingester>>>,
    /// Serializes the opening of new tenants.
    opening: tokio::sync::Mutex<()>,
    flushers: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for TenantIngesters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantIngesters").field("location", &self.location).finish_non_exhaustive()
    }
}

impl TenantIngesters {
    /// Opens the default tenant and every tenant with a WAL directory; starts their flushers.
    /// With `enabled` false, `X-Scope-OrgID` is ignored (everything goes to the default tenant).
    pub async fn open(
        location: DataLocation,
        wal: WalConfig,
        config: IngestConfig,
        policy: FlushPolicy,
        enabled: bool,
    ) -> Result<Self> {
        let metrics = Arc::new(IngestMetrics::default());
        let default = Arc::new(Ingester::open_with_metrics(location.clone(), wal.clone(), config, Arc::clone(&metrics)).await?);
        let this = Self {
            enabled,
            location,
            wal,
            config,
            policy,
            metrics,
            default: Arc::clone(&default),
            tenants: std::sync::RwLock::new(BTreeMap::new()),
            opening: tokio::sync::Mutex::new(()),
            flushers: std::sync::Mutex::new(Vec::new()),
        };
        this.start_flusher(default);
        let root = this.wal.dir.join(TENANTS_DIR);
        if root.is_dir() {
            let entries = std::fs::read_dir(&root).map_err(|source| Error::Io { path: root.clone(), source })?;
            for entry in entries {
                let entry = entry.map_err(|source| Error::Io { path: root.clone(), source })?;
                let name = entry.file_name().to_string_lossy().into_owned();
                match TenantId::parse(&name) {
                    Ok(tenant) => {
                        this.get(Some(&tenant)).await?;
                    }
                    Err(e) => tracing::warn!(directory = %entry.path().display(), "skipping: {e}"),
                }
            }
        }
        Ok(this)
    }

    /// The tenant's ingester (`None`: the default tenant), opened on first use.
    pub async fn get(&self, tenant: Option<&TenantId>) -> Result<Arc<Ingester>> {
        let Some(tenant) = tenant else { return Ok(Arc::clone(&self.default)) };
        if let Some(found) = self.existing(Some(tenant)) {
            return Ok(found);
        }
        let _one_at_a_time = self.opening.lock().await;
        if let Some(found) = self.existing(Some(tenant)) {
            return Ok(found);
        }
        let mut wal = self.wal.clone();
        wal.dir = self.wal_dir(tenant);
        let location = self.location.for_tenant(tenant);
        let ingester = Arc::new(Ingester::open_with_metrics(location, wal, self.config, Arc::clone(&self.metrics)).await?);
        self.tenants.write().unwrap_or_else(|p| p.into_inner()).insert(tenant.clone(), Arc::clone(&ingester));
        self.start_flusher(Arc::clone(&ingester));
        Ok(ingester)
    }

    /// Whether `X-Scope-OrgID` selects tenants.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The tenant's ingester if it exists (queries do not create tenants).
    pub fn existing(&self, tenant: Option<&TenantId>) -> Option<Arc<Ingester>> {
        match tenant {
            None => Some(Arc::clone(&self.default)),
            Some(t) => self.tenants.read().unwrap_or_else(|p| p.into_inner()).get(t).cloned(),
        }
    }

    fn all(&self) -> Vec<Arc<Ingester>> {
        let mut all = vec![Arc::clone(&self.default)];
        all.extend(self.tenants.read().unwrap_or_else(|p| p.into_inner()).values().cloned());
        all
    }

    fn wal_dir(&self, tenant: &TenantId) -> PathBuf {
        self.wal.dir.join(TENANTS_DIR).join(tenant.as_str())
    }

    fn start_flusher(&self, ingester: Arc<Ingester>) {
        let task = tokio::spawn(ingester.run_flusher(self.policy.interval, self.policy.bytes));
        self.flushers.lock().unwrap_or_else(|p| p.into_inner()).push(task);
    }

    /// Stops the background flushers and flushes every tenant (at shutdown).
    pub async fn flush_all(&self) -> Result<WriteStats> {
        for task in self.flushers.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
            task.abort();
        }
        let mut total = WriteStats::default();
        for ingester in self.all() {
            let stats = ingester.flush().await?;
            total.files += stats.files;
            total.rows += stats.rows;
            total.bytes += stats.bytes;
        }
        Ok(total)
    }

    /// Spans buffered across tenants.
    pub fn buffered_rows(&self) -> usize {
        self.all().iter().map(|i| i.buffered_rows()).sum()
    }

    /// Prometheus text: shared counters, gauges summed over tenants.
    pub fn metrics_text(&self) -> String {
        let gauges = self.all().iter().map(|i| i.gauges()).fold(IngestGauges::default(), IngestGauges::add);
        self.metrics.render(gauges)
    }
}
