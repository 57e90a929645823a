//! Shared helpers: fixture stores and paths.

use std::path::{Path, PathBuf};

use tracelake::commands::ingest::ingest_files;
use tracelake_schema::AcceptMode;
use tracelake_store::DataLocation;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repo root")
}

/// Files with extension `ext` in the repository directory `dir`, sorted by name.
pub fn repo_files(dir: &str, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo_root().join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    files
}

/// A temporary store holding every hand-written fixture directly under `sql/fixtures/`.
pub async fn fixture_store() -> (tempfile::TempDir, DataLocation) {
    fixture_store_with(None).await
}

/// Like [`fixture_store`], plus the fixtures in `sql/fixtures/<extra>/` when that exists (an
/// `.slt` file named `<extra>.slt` gets its own extra traces without changing the others).
pub async fn fixture_store_with(extra: Option<&str>) -> (tempfile::TempDir, DataLocation) {
    let dir = tempfile::tempdir().expect("tempdir");
    let location = DataLocation::open(dir.path().to_str().expect("utf8 path")).expect("open");
    let mut files = repo_files("sql/fixtures", "json");
    if let Some(extra) = extra {
        let sub = format!("sql/fixtures/{extra}");
        if repo_root().join(&sub).is_dir() {
            files.extend(repo_files(&sub, "json"));
        }
    }
    let report = ingest_files(&location, &files, AcceptMode::AllOrNothing, false).await.expect("ingest");
    assert!(report.failed.is_empty(), "fixtures failed: {:?}", report.failed);
    (dir, location)
}
