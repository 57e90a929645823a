//! Compaction manifests: which span files a compacted file replaces, and the compactor lock.
//!
//! Object stores cannot swap a set of files atomically, so the switch is a rule every scan
//! applies. Before a compacted file `C` is written, a manifest `<data>/compaction/C.json`
//! names the files it replaces. A scan whose file list contains `C` leaves out the files C's
//! manifest names; a manifest whose output is not (yet) in the list hides nothing. So a scan
//! sees the old files (before C exists) or C (after), never both and never neither, at every
//! step of: manifest → C → (grace period) delete replaced files → delete manifest.
//!
//! One compactor runs per data location at a time: it holds `<data>/compaction/lock`,
//! created with a conditional put (create-if-absent) and taken over only once it has expired.

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStoreExt, PutMode, PutOptions};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::location::DataLocation;

/// Directory of compaction manifests (and the lock) under a data location.
pub const COMPACTION_DIR: &str = "compaction";

const MANIFEST_EXTENSION: &str = ".json";
const LOCK_NAME: &str = "lock";

/// What one compacted file replaces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// File stem (ULID) of the compacted file.
    pub output: String,
    /// Partition directory, relative to `spans/` (`date=…/hour=…/service=…`).
    pub partition: String,
    /// File stems of the files it replaces, all in `partition`.
    pub replaces: Vec<String>,
}

/// A manifest as stored, with its object's metadata.
#[derive(Debug, Clone)]
pub struct StoredManifest {
    /// The manifest.
    pub manifest: Manifest,
    /// Where it is stored and when it was written.
    pub meta: ObjectMeta,
}

fn dir(location: &DataLocation) -> Path {
    location.prefix().clone().join(COMPACTION_DIR)
}

fn object_error(path: &Path) -> impl FnOnce(object_store::Error) -> Error + '_ {
    move |source| Error::ObjectStore { path: path.to_string(), source }
}

/// Stores `manifest` (before its output file is written).
pub async fn write(location: &DataLocation, manifest: &Manifest) -> Result<Path> {
    let path = dir(location).join(format!("{}{MANIFEST_EXTENSION}", manifest.output));
    let body = serde_json::to_vec_pretty(manifest).map_err(|e| Error::Compaction(format!("encoding a manifest: {e}")))?;
    location.store().put(&path, body.into()).await.map_err(object_error(&path))?;
    Ok(path)
}

/// Every stored manifest. A manifest removed while it is being read is skipped.
pub async fn read_all(location: &DataLocation) -> Result<Vec<StoredManifest>> {
    let dir = dir(location);
    let store = location.store();
    let metas: Vec<ObjectMeta> = match store.list(Some(&dir)).try_collect().await {
        Ok(metas) => metas,
        Err(object_store::Error::NotFound { .. }) => return Ok(Vec::new()),
        Err(source) => return Err(Error::ObjectStore { path: dir.to_string(), source }),
    };
    let mut out = Vec::new();
    for meta in metas.into_iter().filter(|m| m.location.as_ref().ends_with(MANIFEST_EXTENSION)) {
        let bytes = match store.get(&meta.location).await {
            Ok(got) => got.bytes().await.map_err(object_error(&meta.location))?,
            Err(object_store::Error::NotFound { .. }) => continue,
            Err(source) => return Err(Error::ObjectStore { path: meta.location.to_string(), source }),
        };
        let manifest: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| Error::Compaction(format!("manifest {} is not valid: {e}", meta.location)))?;
        out.push(StoredManifest { manifest, meta });
    }
    Ok(out)
}

/// File stems a scan must leave out, given the stems in its file list: the files replaced by
/// every manifest whose output is in the list.
pub fn hidden_stems(manifests: &[StoredManifest], listed: &HashSet<String>) -> HashSet<String> {
    manifests
        .iter()
        .filter(|m| listed.contains(&m.manifest.output))
        .flat_map(|m| m.manifest.replaces.iter().cloned())
        .collect()
}

/// Removes a manifest (after the files it replaces are gone, or when it was abandoned).
pub async fn remove(location: &DataLocation, manifest: &StoredManifest) -> Result<()> {
    match location.store().delete(&manifest.meta.location).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(source) => Err(Error::ObjectStore { path: manifest.meta.location.to_string(), source }),
    }
}

/// The compactor lock of a data location, held until [`CompactionLock::release`].
#[derive(Debug)]
pub struct CompactionLock {
    location: DataLocation,
    path: Path,
}

#[derive(Debug, Serialize, Deserialize)]
struct LockBody {
    holder: String,
    expires_unix_ms: u64,
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl CompactionLock {
    /// Takes the lock for `lease` (a compactor that dies leaves it to expire), or says who
    /// holds it.
    pub async fn acquire(location: &DataLocation, holder: &str, lease: Duration) -> Result<Self> {
        let path = dir(location).join(LOCK_NAME);
        let store = location.store();
        let body = LockBody { holder: holder.to_owned(), expires_unix_ms: unix_ms(SystemTime::now() + lease) };
        let body = serde_json::to_vec(&body).map_err(|e| Error::Compaction(e.to_string()))?;
        for _ in 0..2 {
            let create = PutOptions { mode: PutMode::Create, ..Default::default() };
            match store.put_opts(&path, body.clone().into(), create).await {
                Ok(_) => return Ok(Self { location: location.clone(), path }),
                Err(object_store::Error::AlreadyExists { .. }) => {}
                Err(source) => return Err(Error::ObjectStore { path: path.to_string(), source }),
            }
            let held: Option<LockBody> = match store.get(&path).await {
                Ok(got) => serde_json::from_slice(&got.bytes().await.map_err(object_error(&path))?).ok(),
                Err(object_store::Error::NotFound { .. }) => continue,
                Err(source) => return Err(Error::ObjectStore { path: path.to_string(), source }),
            };
            match held {
                Some(held) if held.expires_unix_ms > unix_ms(SystemTime::now()) => {
                    return Err(Error::Compaction(format!(
                        "another compactor ({}) holds {path} until {}; only one may run per data location",
                        held.holder,
                        chrono::DateTime::from_timestamp_millis(held.expires_unix_ms as i64)
                            .map(|t| t.to_rfc3339())
                            .unwrap_or_default()
                    )));
                }
                // Expired (or unreadable): take it over.
                _ => match store.delete(&path).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(source) => return Err(Error::ObjectStore { path: path.to_string(), source }),
                },
            }
        }
        Err(Error::Compaction(format!("could not take the compactor lock {path}: it keeps changing hands")))
    }

    /// Releases the lock.
    pub async fn release(self) -> Result<()> {
        match self.location.store().delete(&self.path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(source) => Err(Error::ObjectStore { path: self.path.to_string(), source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(output: &str, replaces: &[&str]) -> StoredManifest {
        StoredManifest {
            manifest: Manifest {
                output: output.into(),
                partition: "date=2024-01-15/hour=10/service=a".into(),
                replaces: replaces.iter().map(|s| s.to_string()).collect(),
            },
            meta: ObjectMeta {
                location: Path::from(format!("compaction/{output}.json")),
                last_modified: chrono::Utc::now(),
                size: 1,
                e_tag: None,
                version: None,
            },
        }
    }

    #[test]
    fn only_manifests_whose_output_is_listed_hide_files() {
        let manifests = [stored("C", &["A", "B"]), stored("F", &["D", "E"])];
        let listed: HashSet<String> = ["A", "B", "C", "D", "E"].iter().map(|s| s.to_string()).collect();
        let hidden = hidden_stems(&manifests, &listed);
        assert_eq!(hidden, ["A", "B"].iter().map(|s| s.to_string()).collect(), "F is not written yet: D, E stay");
    }

    #[tokio::test]
    async fn manifests_round_trip_and_the_lock_is_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let location = DataLocation::open(dir.path().to_str().unwrap()).unwrap();
        assert!(read_all(&location).await.unwrap().is_empty(), "no compaction directory yet");
        let m = stored("01ABC", &["01AAA", "01AAB"]).manifest;
        write(&location, &m).await.unwrap();
        let all = read_all(&location).await.unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].manifest, m);

        let lock = CompactionLock::acquire(&location, "first", Duration::from_secs(60)).await.unwrap();
        let err = CompactionLock::acquire(&location, "second", Duration::from_secs(60)).await.unwrap_err();
        assert!(err.to_string().contains("another compactor (first)"), "{err}");
        lock.release().await.unwrap();
        let expired = CompactionLock::acquire(&location, "third", Duration::ZERO).await.unwrap();
        // An expired lock is taken over.
        let fourth = CompactionLock::acquire(&location, "fourth", Duration::from_secs(60)).await.unwrap();
        drop(expired);
        fourth.release().await.unwrap();
        remove(&location, &all[0]).await.unwrap();
        assert!(read_all(&location).await.unwrap().is_empty());
    }
}
