//! Shared helpers: fixture stores and paths.

use std::path::{Path, PathBuf};

use tracelake::commands::ingest::ingest_files;
use tracelake_schema::AcceptMode;
use tracelake_store::DataLocation;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repo root")
}

/// A temporary store holding every hand-written fixture under `sql/fixtures/`.
pub async fn fixture_store() -> (tempfile::TempDir, DataLocation) {
    let dir = tempfile::tempdir().expect("tempdir");
    let location = DataLocation::open(dir.path().to_str().expect("utf8 path")).expect("open");
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo_root().join("sql/fixtures"))
        .expect("fixtures dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let report = ingest_files(&location, &files, AcceptMode::AllOrNothing, false).await.expect("ingest");
    assert!(report.failed.is_empty(), "fixtures failed: {:?}", report.failed);
    (dir, location)
}
