//! Background maintenance of `tracelake serve`: every `maintenance_interval_secs`, for the
//! default tenant and (with tenants) every tenant, drop partitions past the retention, then
//! compact small files (`tracelake_store::compaction`). Replaced files are deleted by a later
//! round, once their grace period (twice the query timeout) is over.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use tracelake_store::compaction::manifest::CompactionLock;
use tracelake_store::compaction::{self, CompactionOptions};
use tracelake_store::retention::{self, parse_retention};
use tracelake_store::tenant::{TENANTS_DIR, TenantId};
use tracelake_store::{DataLocation, Result as StoreResult};

use super::config::ServeConfig;
use crate::error::{CliError, Result};

/// What the background task does, resolved from the configuration.
#[derive(Debug, Clone)]
pub struct Maintenance {
    location: DataLocation,
    tenants: bool,
    interval: Duration,
    compaction: CompactionOptions,
    retention: Option<Duration>,
    tenant_retention: BTreeMap<String, Duration>,
}

impl Maintenance {
    /// Checks the settings; `None` when maintenance is off (`maintenance_interval_secs = 0`).
    pub fn from_config(config: &ServeConfig, location: &DataLocation) -> Result<Option<Self>> {
        let parse = |what: &str, text: &str| parse_retention(text).map_err(|e| CliError::Usage(format!("{what}: {e}")));
        let retention = config.retention.as_deref().map(|r| parse("retention", r)).transpose()?;
        let mut tenant_retention = BTreeMap::new();
        for (tenant, text) in &config.tenant_retention {
            TenantId::parse(tenant).map_err(|e| CliError::Usage(format!("tenant_retention: {e}")))?;
            tenant_retention.insert(tenant.clone(), parse(&format!("tenant_retention.{tenant}"), text)?);
        }
        if config.maintenance_interval_secs == 0 {
            return Ok(None);
        }
        let compaction = CompactionOptions {
            target_file_bytes: config.compaction_target_file_bytes,
            min_file_age: Duration::from_secs(config.compaction_min_file_age_secs),
            grace: Duration::from_secs(config.query_timeout_secs.saturating_mul(2)),
        };
        Ok(Some(Self {
            location: location.clone(),
            tenants: config.tenants,
            interval: Duration::from_secs(config.maintenance_interval_secs),
            compaction,
            retention,
            tenant_retention,
        }))
    }

    /// Runs rounds until `stop` turns true.
    pub fn spawn(self, mut stop: tokio::sync::watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(self.interval) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                self.round().await;
            }
        })
    }

    /// One round over every tenant; failures are logged and retried next round.
    pub async fn round(&self) {
        let locations = match self.locations().await {
            Ok(locations) => locations,
            Err(e) => {
                tracing::warn!(error = %e, "maintenance: cannot list tenants");
                vec![(None, self.location.clone())]
            }
        };
        for (tenant, location) in locations {
            let keep = tenant.as_ref().and_then(|t| self.tenant_retention.get(t)).or(self.retention.as_ref());
            if let Some(keep) = keep
                && let Err(e) = retain(&location, *keep).await
            {
                tracing::warn!(error = %e, %location, "retention failed; retrying next round");
            }
            if let Err(e) = self.compact(&location).await {
                tracing::warn!(error = %e, %location, "compaction failed; retrying next round");
            }
        }
    }

    async fn locations(&self) -> StoreResult<Vec<(Option<String>, DataLocation)>> {
        let mut out = vec![(None, self.location.clone())];
        if self.tenants {
            let dir = self.location.prefix().clone().join(TENANTS_DIR);
            let listing = match self.location.store().list_with_delimiter(Some(&dir)).await {
                Ok(listing) => listing.common_prefixes,
                Err(object_store::Error::NotFound { .. }) => Vec::new(),
                Err(source) => return Err(tracelake_store::Error::ObjectStore { path: dir.to_string(), source }),
            };
            for prefix in listing {
                let Some(name) = prefix.filename() else { continue };
                if let Ok(id) = TenantId::parse(name) {
                    out.push((Some(id.as_str().to_owned()), self.location.for_tenant(&id)));
                }
            }
        }
        Ok(out)
    }

    async fn compact(&self, location: &DataLocation) -> StoreResult<()> {
        let holder = format!("tracelake serve (pid {})", std::process::id());
        let lease = self.interval + self.compaction.grace + Duration::from_secs(3600);
        let lock = match CompactionLock::acquire(location, &holder, lease).await {
            Ok(lock) => lock,
            Err(tracelake_store::Error::Compaction(held)) => {
                tracing::info!(%location, "compaction skipped this round: {held}");
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let result = async {
            let finished = compaction::finish(location, self.compaction.grace, SystemTime::now()).await?;
            let jobs = compaction::plan(location, &self.compaction, SystemTime::now()).await?;
            let mut merged = 0;
            for job in &jobs {
                compaction::run_job(location, job).await?;
                merged += job.files.len();
            }
            if merged > 0 || finished.files_deleted > 0 {
                tracing::info!(%location, merged_files = merged, new_files = jobs.len(), deleted_files = finished.files_deleted, "compaction round");
            }
            StoreResult::Ok(())
        }
        .await;
        lock.release().await?;
        result
    }
}

async fn retain(location: &DataLocation, keep: Duration) -> StoreResult<()> {
    let Ok(keep) = chrono::Duration::from_std(keep) else { return Ok(()) };
    let cutoff = chrono::Utc::now() - keep;
    for partition in retention::expired(location, cutoff).await? {
        let deleted = retention::drop_partition(location, &partition).await?;
        tracing::info!(%location, partition = %partition.name(), deleted, "retention dropped a partition");
    }
    Ok(())
}
