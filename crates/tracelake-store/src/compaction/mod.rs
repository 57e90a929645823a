//! Compaction: a partition's small span files merged into fewer files of a target size,
//! re-sorted like every new file, without a moment where a scan sees both or neither.
//!
//! Ingest writes one file per partition per flush (every 30 s by default), so an hour of a
//! busy service is ~120 small files; every file costs a listing entry, a footer read and its
//! own row groups. A run ([`plan`] then [`run_job`] per job, then [`finish`]):
//! 1. **plan**: per partition, the files smaller than ¾ of the target and older than
//!    `min_file_age` (so a flush that is still settling, and a server's view of its own
//!    recent flushes, are never touched), in name (= time) order, packed into groups of at
//!    most the target size; groups of ≥ 2 files are jobs. Files named by a pending manifest
//!    are left alone.
//! 2. **job**: read the group, write the manifest ([`manifest`]), write the merged file
//!    (sorted, same encoding as a flush) and a trace-index segment covering it. The manifest
//!    makes scans that list the new file leave out the old ones.
//! 3. **finish**: once a manifest is older than the grace period (longer than a query may
//!    take between listing files and opening them), delete the replaced files, then the
//!    manifest.
//!
//! Row counts are checked: a merged file must hold exactly the rows of its inputs.

pub mod manifest;

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, SystemTime};

use arrow::array::RecordBatch;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStoreExt};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::error::{Error, Result};
use crate::layout::FILE_EXTENSION;
use crate::location::DataLocation;
use crate::trace_index::TraceIndexBuilder;
use crate::writer::SpanFileWriter;
use manifest::Manifest;

/// Settings of a compaction run.
#[derive(Debug, Clone, Copy)]
pub struct CompactionOptions {
    /// Size a merged file aims for (compressed bytes of the inputs).
    pub target_file_bytes: u64,
    /// Files younger than this (by their ULID name) are not merged yet.
    pub min_file_age: Duration,
    /// How long replaced files stay after their merged file exists.
    pub grace: Duration,
}

impl CompactionOptions {
    /// Default target size of a merged file: 64 MiB.
    pub const DEFAULT_TARGET_FILE_BYTES: u64 = 64 << 20;
    /// Default minimum file age: 5 minutes.
    pub const DEFAULT_MIN_FILE_AGE: Duration = Duration::from_secs(300);
    /// Default grace period: 120 s, twice the server's default query timeout.
    pub const DEFAULT_GRACE: Duration = Duration::from_secs(120);
}

impl Default for CompactionOptions {
    fn default() -> Self {
        Self {
            target_file_bytes: Self::DEFAULT_TARGET_FILE_BYTES,
            min_file_age: Self::DEFAULT_MIN_FILE_AGE,
            grace: Self::DEFAULT_GRACE,
        }
    }
}

/// Files of one partition to merge into one.
#[derive(Debug, Clone)]
pub struct CompactionJob {
    /// Partition directory relative to `spans/`.
    pub partition: String,
    /// The files, in name order.
    pub files: Vec<ObjectMeta>,
}

impl CompactionJob {
    /// Bytes of the input files.
    pub fn input_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// What a job did.
#[derive(Debug, Clone)]
pub struct JobOutcome {
    /// The merged file.
    pub output: Path,
    /// Rows in it (= rows of the inputs).
    pub rows: usize,
    /// Its size.
    pub bytes: usize,
}

/// What [`finish`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Finished {
    /// Replaced files deleted.
    pub files_deleted: usize,
    /// Manifests completed (their replaced files are gone).
    pub manifests_completed: usize,
    /// Manifests waiting for their grace period.
    pub manifests_waiting: usize,
    /// Manifests of merges that never wrote their file (removed after an hour).
    pub manifests_abandoned: usize,
}

/// A manifest whose output never appeared for this long belongs to a crashed compactor.
const ABANDONED_AFTER: Duration = Duration::from_secs(3600);

fn stem(path: &Path) -> Option<&str> {
    path.filename()?.strip_suffix(FILE_EXTENSION)
}

/// When a span file was written: its ULID name's time, else the object's modification time.
fn written_at(meta: &ObjectMeta) -> SystemTime {
    stem(&meta.location)
        .and_then(|s| ulid::Ulid::from_string(s).ok())
        .map(|u| u.datetime())
        .unwrap_or_else(|| meta.last_modified.into())
}

/// The partition directory of a span file, relative to `spans/`.
fn partition_of(location: &DataLocation, file: &Path) -> Option<String> {
    let spans = location.spans_path();
    let rest: Vec<String> = file.prefix_match(&spans)?.map(|p| p.as_ref().to_owned()).collect();
    (rest.len() > 1).then(|| rest[..rest.len() - 1].join("/"))
}

async fn list_span_files(location: &DataLocation) -> Result<Vec<ObjectMeta>> {
    let spans = location.spans_path();
    match location.store().list(Some(&spans)).try_collect::<Vec<ObjectMeta>>().await {
        Ok(files) => Ok(files.into_iter().filter(|m| m.location.as_ref().ends_with(FILE_EXTENSION)).collect()),
        Err(object_store::Error::NotFound { .. }) => Ok(Vec::new()),
        Err(source) => Err(Error::ObjectStore { path: spans.to_string(), source }),
    }
}

/// The jobs of a run at time `now`.
pub async fn plan(location: &DataLocation, options: &CompactionOptions, now: SystemTime) -> Result<Vec<CompactionJob>> {
    let pending = manifest::read_all(location).await?;
    let busy: HashSet<&str> = pending
        .iter()
        .flat_map(|m| std::iter::once(m.manifest.output.as_str()).chain(m.manifest.replaces.iter().map(String::as_str)))
        .collect();
    let small = options.target_file_bytes.saturating_mul(3) / 4;
    let mut partitions: BTreeMap<String, Vec<ObjectMeta>> = BTreeMap::new();
    for file in list_span_files(location).await? {
        let settled = now.duration_since(written_at(&file)).is_ok_and(|age| age >= options.min_file_age);
        let free = stem(&file.location).is_some_and(|s| !busy.contains(s));
        if file.size > 0
            && file.size < small
            && settled
            && free
            && let Some(partition) = partition_of(location, &file.location)
        {
            partitions.entry(partition).or_default().push(file);
        }
    }
    let mut jobs = Vec::new();
    for (partition, mut files) in partitions {
        files.sort_by(|a, b| a.location.cmp(&b.location));
        let mut group: Vec<ObjectMeta> = Vec::new();
        let mut group_bytes = 0;
        for file in files {
            if !group.is_empty() && group_bytes + file.size > options.target_file_bytes {
                if group.len() >= 2 {
                    jobs.push(CompactionJob { partition: partition.clone(), files: std::mem::take(&mut group) });
                }
                group.clear();
                group_bytes = 0;
            }
            group_bytes += file.size;
            group.push(file);
        }
        if group.len() >= 2 {
            jobs.push(CompactionJob { partition, files: group });
        }
    }
    Ok(jobs)
}

async fn read_file(location: &DataLocation, file: &ObjectMeta) -> Result<Vec<RecordBatch>> {
    let path = file.location.to_string();
    let bytes = location
        .store()
        .get(&file.location)
        .await
        .map_err(|source| Error::ObjectStore { path: path.clone(), source })?
        .bytes()
        .await
        .map_err(|source| Error::ObjectStore { path: path.clone(), source })?;
    let context = |source| Error::Parquet { partition: path.clone(), source };
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(context)?.with_batch_size(64 * 1024).build().map_err(context)?;
    Ok(reader.collect::<std::result::Result<Vec<_>, _>>()?)
}

/// Merges one job's files into one new file (see the module docs for the order of writes).
pub async fn run_job(location: &DataLocation, job: &CompactionJob) -> Result<JobOutcome> {
    let mut batches = Vec::new();
    for file in &job.files {
        batches.extend(read_file(location, file).await?);
    }
    let rows_in: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let name = ulid::Ulid::new();
    let output = file_in(location, &job.partition, &name.to_string())?;
    let manifest = Manifest {
        output: name.to_string(),
        partition: job.partition.clone(),
        replaces: job.files.iter().filter_map(|f| stem(&f.location).map(str::to_owned)).collect(),
    };
    manifest::write(location, &manifest).await?;
    let written = SpanFileWriter::new(location.clone()).write_file(&output, &job.partition, &batches).await?;
    if written.rows != rows_in {
        // Never expected; undo so that the old files stay the visible ones.
        let _ = location.store().delete(&output).await;
        return Err(Error::Compaction(format!(
            "merged file {output} has {} rows, its inputs {rows_in}; left the inputs in place",
            written.rows
        )));
    }
    let mut index = TraceIndexBuilder::new();
    index.add_file_in(&job.partition, &output, &batches);
    index.write(location, name).await?;
    Ok(JobOutcome { output, rows: written.rows, bytes: written.bytes })
}

/// Completes the manifests older than `grace` at time `now`: deletes the files they replace,
/// then the manifest.
pub async fn finish(location: &DataLocation, grace: Duration, now: SystemTime) -> Result<Finished> {
    let mut done = Finished::default();
    let store = location.store();
    for stored in manifest::read_all(location).await? {
        let age = now.duration_since(stored.meta.last_modified.into()).unwrap_or_default();
        if age < grace {
            done.manifests_waiting += 1;
            continue;
        }
        let output = file_in(location, &stored.manifest.partition, &stored.manifest.output)?;
        match store.head(&output).await {
            Ok(_) => {}
            Err(object_store::Error::NotFound { .. }) => {
                if age >= ABANDONED_AFTER {
                    manifest::remove(location, &stored).await?;
                    done.manifests_abandoned += 1;
                } else {
                    done.manifests_waiting += 1;
                }
                continue;
            }
            Err(source) => return Err(Error::ObjectStore { path: output.to_string(), source }),
        }
        for replaced in &stored.manifest.replaces {
            let path = file_in(location, &stored.manifest.partition, replaced)?;
            match store.delete(&path).await {
                Ok(()) => done.files_deleted += 1,
                Err(object_store::Error::NotFound { .. }) => {}
                Err(source) => return Err(Error::ObjectStore { path: path.to_string(), source }),
            }
        }
        manifest::remove(location, &stored).await?;
        done.manifests_completed += 1;
    }
    Ok(done)
}

/// The object path of span file `stem` in `partition` (already escaped, as listed).
fn file_in(location: &DataLocation, partition: &str, stem: &str) -> Result<Path> {
    let raw = format!("{}/{partition}/{stem}{FILE_EXTENSION}", location.spans_path());
    Path::parse(&raw).map_err(|e| Error::Compaction(format!("bad file path {raw}: {e}")))
}
