//! A data location: where a tracelake store lives (`--data`).
//!
//! A plain path is a local directory (created if missing); `s3://bucket/prefix` is S3 or any
//! S3-compatible server, configured from the usual `AWS_*` environment variables
//! (`AWS_ENDPOINT_URL`/`AWS_ENDPOINT`, `AWS_ALLOW_HTTP=true`, credentials, region). Both give an
//! `object_store` plus the URL DataFusion uses to list the same objects.

use std::fmt;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use url::Url;

use crate::error::{Error, Result};
use crate::layout::SPANS_DIR;

/// An opened data location.
#[derive(Clone)]
pub struct DataLocation {
    store: Arc<dyn ObjectStore>,
    /// Store root URL (`file:///` or `s3://bucket/`), for registering the store with DataFusion.
    store_url: Url,
    /// Object path of the location's root inside the store.
    prefix: Path,
    /// What the user typed, for messages.
    display: String,
}

impl fmt::Debug for DataLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataLocation").field("location", &self.display).finish()
    }
}

/// How long one S3 request is retried (inside `object_store`) before the operation fails:
/// `TRACELAKE_S3_RETRY_TIMEOUT_SECS` (default 180) and `TRACELAKE_S3_MAX_RETRIES` (default 10).
/// A failed flush is retried by the server anyway (the spans stay in the WAL), so a short
/// budget only makes outages visible sooner in `/metrics` and the log.
fn s3_retry_from_env() -> std::result::Result<object_store::RetryConfig, String> {
    let mut retry = object_store::RetryConfig::default();
    let number = |name: &str| -> std::result::Result<Option<u64>, String> {
        match std::env::var(name) {
            Ok(v) => v.trim().parse().map(Some).map_err(|_| format!("{name}={v} is not a whole number")),
            Err(_) => Ok(None),
        }
    };
    if let Some(secs) = number("TRACELAKE_S3_RETRY_TIMEOUT_SECS")? {
        retry.retry_timeout = std::time::Duration::from_secs(secs);
    }
    if let Some(n) = number("TRACELAKE_S3_MAX_RETRIES")? {
        retry.max_retries = n as usize;
    }
    Ok(retry)
}

impl DataLocation {
    /// Opens `location`: a local path (created if missing) or an `s3://` URL.
    pub fn open(location: &str) -> Result<Self> {
        let invalid = |reason: String| Error::InvalidLocation { location: location.to_owned(), reason };
        if let Some(rest) = location.strip_prefix("s3://") {
            let url = Url::parse(location).map_err(|e| invalid(e.to_string()))?;
            let bucket = url.host_str().filter(|b| !b.is_empty()).ok_or_else(|| invalid("missing bucket".into()))?;
            let store = AmazonS3Builder::from_env()
                .with_url(location)
                .with_bucket_name(bucket)
                .with_retry(s3_retry_from_env().map_err(invalid)?)
                .build()
                .map_err(|e| invalid(format!("S3 configuration: {e}")))?;
            let prefix_str = rest.split_once('/').map(|(_, p)| p).unwrap_or("");
            let prefix = Path::parse(prefix_str).map_err(|e| invalid(e.to_string()))?;
            let store_url = Url::parse(&format!("s3://{bucket}/")).map_err(|e| invalid(e.to_string()))?;
            return Ok(Self { store: Arc::new(store), store_url, prefix, display: location.to_owned() });
        }
        if location.contains("://") {
            return Err(invalid("only local paths and s3:// URLs are supported".into()));
        }
        std::fs::create_dir_all(location).map_err(|e| invalid(format!("cannot create directory: {e}")))?;
        Self::open_local(location)
    }

    /// Opens an existing location for reading: like [`DataLocation::open`], but a local
    /// directory that does not exist is an error instead of being created.
    pub fn open_existing(location: &str) -> Result<Self> {
        if location.starts_with("s3://") || location.contains("://") {
            return Self::open(location);
        }
        if !std::path::Path::new(location).is_dir() {
            return Err(Error::InvalidLocation {
                location: location.to_owned(),
                reason: "no such directory (create one with `tracelake ingest` or `tracelake gen --data`)".into(),
            });
        }
        Self::open_local(location)
    }

    fn open_local(location: &str) -> Result<Self> {
        let invalid = |reason: String| Error::InvalidLocation { location: location.to_owned(), reason };
        if location.contains('%') {
            // DataFusion percent-decodes table paths, so `%41` in a directory name would be
            // read as `A` and the table would appear empty.
            return Err(invalid("a local path containing '%' is not supported; rename or symlink the directory".into()));
        }
        let prefix = Path::from_filesystem_path(location).map_err(|e| invalid(e.to_string()))?;
        let store_url = Url::parse("file:///").map_err(|e| invalid(e.to_string()))?;
        Ok(Self { store: Arc::new(LocalFileSystem::new()), store_url, prefix, display: location.to_owned() })
    }

    /// The location as an absolute URL-like string that [`DataLocation::open_existing`] opens
    /// again anywhere (an absolute path for a local directory, `s3://bucket/prefix` for S3).
    pub fn to_absolute_string(&self) -> String {
        if self.is_local() {
            format!("/{}", self.prefix)
        } else {
            let bucket = self.store_url.host_str().unwrap_or_default();
            format!("s3://{bucket}/{}", self.prefix)
        }
    }

    /// The object store holding this location.
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        Arc::clone(&self.store)
    }

    /// The store's root URL (`file:///` or `s3://bucket/`).
    pub fn store_url(&self) -> &Url {
        &self.store_url
    }

    /// Root of this location inside the store.
    pub fn prefix(&self) -> &Path {
        &self.prefix
    }

    /// URL of the `spans` table directory, ending in `/` (what DataFusion lists).
    pub fn spans_url(&self) -> String {
        // Build through `Url` so that characters like `#`, `?` and `%` in directory names are
        // escaped for the URL (DataFusion decodes the URL path back into the object path).
        let mut url = self.store_url.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty();
            for part in self.prefix.parts() {
                let raw = part.as_ref().to_owned();
                let decoded = percent_encoding::percent_decode_str(&raw).decode_utf8_lossy().into_owned();
                segments.push(&decoded);
            }
            segments.push(SPANS_DIR);
            segments.push("");
        }
        url.to_string()
    }

    /// Object path of the `spans` table directory.
    pub fn spans_path(&self) -> Path {
        self.prefix.clone().join(SPANS_DIR)
    }

    /// A location below this one (same store): `parts` appended to the prefix.
    pub fn child(&self, parts: &[&str]) -> DataLocation {
        let mut prefix = self.prefix.clone();
        for part in parts {
            prefix = prefix.join(*part);
        }
        let display = format!("{}/{}", self.display.trim_end_matches('/'), parts.join("/"));
        Self { store: Arc::clone(&self.store), store_url: self.store_url.clone(), prefix, display }
    }

    /// Whether this is a local directory.
    pub fn is_local(&self) -> bool {
        self.store_url.scheme() == "file"
    }
}

impl fmt::Display for DataLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_location_urls() {
        let dir = std::env::temp_dir().join(format!("tl-loc-{}", std::process::id()));
        let loc = DataLocation::open(dir.to_str().unwrap()).unwrap();
        assert!(loc.is_local());
        let canonical = std::fs::canonicalize(&dir).unwrap();
        assert_eq!(loc.spans_url(), format!("file://{}/spans/", canonical.display()));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn rejects_unknown_schemes() {
        let err = DataLocation::open("ftp://x/y").unwrap_err().to_string();
        assert!(err.contains("only local paths and s3:// URLs"), "{err}");
    }
}
