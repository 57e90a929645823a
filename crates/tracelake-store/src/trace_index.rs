//! The trace-id index: which partitions hold a trace's spans, so that a lookup by id reads a
//! handful of span files instead of every file's footer and bloom filter.
//!
//! Each write of span files (a `gen` or `ingest` run, a server flush) adds one *segment*,
//! `<root>/trace_index/<ulid>.parquet`, with one row per distinct (trace, partition):
//! `trace_key` (the first 64 bits of the trace id, as the bits of an Int64) and `partition`
//! (`date=…/hour=…/service=…`), sorted by `trace_key` in small row groups, so that row-group
//! statistics narrow a lookup to one row group per segment. The segment's key/value metadata
//! lists the span files it covers (paths relative to `spans/`).
//!
//! A lookup lists the span files and the segments; it scans the covered files of the
//! partitions the segments name, plus every file that no segment covers (written before the
//! index existed, by another tool, or by a writer that stopped between its files and its
//! segment). The index can therefore only make a lookup cheaper; it can never hide a span.
//! Key collisions on 64 bits only add a partition to the scan, whose filter is exact.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{Array, AsArray, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};
// `ParquetObjectReader` is deprecated in parquet 59 in favour of a hand-written
// `AsyncFileReader`; it is still what DataFusion 55's own reader wraps, and does what we need.
#[allow(deprecated)]
use parquet::arrow::async_reader::{ParquetObjectReader, ParquetRecordBatchStreamBuilder};
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::file::statistics::Statistics;
use tracelake_schema::schema::col;

use crate::error::{Error, Result};
use crate::layout::{FILE_EXTENSION, PartitionKey, SPANS_DIR};
use crate::location::DataLocation;

/// Directory of the index segments under a data location (next to `spans/`).
pub const TRACE_INDEX_DIR: &str = "trace_index";

/// Key of the covered span files (newline-separated, relative to `spans/`) in a segment.
const COVERS_KEY: &str = "tracelake.trace_index.covers";

/// Rows per row group of a segment: one row group is what a lookup decodes per segment.
const ROW_GROUP_ROWS: usize = 8 * 1024;

/// The index key of a trace id: its first 16 hex digits as the bits of an i64, or `None` if
/// the id is not lowercase hex (such spans are simply not indexed).
pub fn trace_key(trace_id: &str) -> Option<i64> {
    let prefix = trace_id.get(..16)?;
    if !prefix.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return None;
    }
    u64::from_str_radix(prefix, 16).ok().map(|k| k as i64)
}

/// Collects the (trace, partition) pairs of span files as they are written, then writes them
/// as one segment.
#[derive(Debug, Default)]
pub struct TraceIndexBuilder {
    entries: Vec<(i64, u32)>,
    partitions: Vec<String>,
    partition_ids: HashMap<String, u32>,
    covers: Vec<String>,
}

impl TraceIndexBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the span file `file` (object path) of partition `key` holding `batches`. A file
    /// with a trace id the index cannot key is left uncovered, so lookups still scan it.
    pub fn add_file(&mut self, key: &PartitionKey, file: &Path, batches: &[RecordBatch]) {
        self.add_file_in(&key.relative_dir(), file, batches);
    }

    /// Like [`TraceIndexBuilder::add_file`], naming the partition by its directory relative
    /// to `spans/` (`date=…/hour=…/service=…`).
    pub fn add_file_in(&mut self, partition: &str, file: &Path, batches: &[RecordBatch]) {
        let mut keys = HashSet::new();
        for batch in batches {
            let Some(ids) = batch.column_by_name(col::TRACE_ID).and_then(|c| c.as_string_opt::<i32>()) else { return };
            for id in ids.iter() {
                match id.and_then(trace_key) {
                    Some(k) => {
                        keys.insert(k);
                    }
                    None => return,
                }
            }
        }
        let next = self.partitions.len() as u32;
        let pid = *self.partition_ids.entry(partition.to_owned()).or_insert(next);
        if pid == next {
            self.partitions.push(partition.to_owned());
        }
        self.entries.extend(keys.into_iter().map(|k| (k, pid)));
        self.covers.push(relative_to_spans(file));
    }

    /// True when no file was added.
    pub fn is_empty(&self) -> bool {
        self.covers.is_empty()
    }

    /// Writes the segment `name` into `location` (nothing if no file was added). Writing the
    /// same name again replaces the segment, so a redone flush does not add a second one.
    pub async fn write(mut self, location: &DataLocation, name: ulid::Ulid) -> Result<Option<Path>> {
        if self.is_empty() {
            return Ok(None);
        }
        self.entries.sort_unstable();
        self.entries.dedup();
        let keys = Int64Array::from_iter_values(self.entries.iter().map(|(k, _)| *k));
        let parts = StringArray::from_iter_values(self.entries.iter().map(|(_, p)| self.partitions[*p as usize].as_str()));
        let batch = RecordBatch::try_new(segment_schema(), vec![Arc::new(keys), Arc::new(parts)])?;
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).map_err(|e| parquet_error(&name, e))?))
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .set_column_dictionary_enabled("trace_key".into(), false)
            .set_column_encoding("trace_key".into(), Encoding::DELTA_BINARY_PACKED)
            .set_key_value_metadata(Some(vec![KeyValue::new(COVERS_KEY.to_owned(), self.covers.join("\n"))]))
            .build();
        let mut buffer = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut buffer, segment_schema(), Some(props)).map_err(|e| parquet_error(&name, e))?;
        writer.write(&batch).map_err(|e| parquet_error(&name, e))?;
        writer.close().map_err(|e| parquet_error(&name, e))?;
        let path = segment_path(location, &name.to_string());
        location
            .store()
            .put(&path, buffer.into())
            .await
            .map_err(|source| Error::ObjectStore { path: path.to_string(), source })?;
        tracing::debug!(%path, entries = self.entries.len(), files = self.covers.len(), "wrote trace index segment");
        Ok(Some(path))
    }
}

fn segment_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("trace_key", DataType::Int64, false),
        Field::new("partition", DataType::Utf8, false),
    ]))
}

fn parquet_error(name: &ulid::Ulid, source: parquet::errors::ParquetError) -> Error {
    Error::Parquet { partition: format!("{TRACE_INDEX_DIR}/{name}"), source }
}

fn index_dir(location: &DataLocation) -> Path {
    location.prefix().parts().chain(Path::from(TRACE_INDEX_DIR).parts()).collect()
}

fn segment_path(location: &DataLocation, stem: &str) -> Path {
    index_dir(location).parts().chain(Path::from(format!("{stem}{FILE_EXTENSION}").as_str()).parts()).collect()
}

/// The part of a span file's path after `spans/` (`date=…/hour=…/service=…/<ulid>.parquet`).
fn relative_to_spans(file: &Path) -> String {
    let parts: Vec<_> = file.parts().collect();
    let start = parts.iter().rposition(|p| p.as_ref() == SPANS_DIR).map_or(0, |i| i + 1);
    parts[start..].iter().map(|p| p.as_ref()).collect::<Vec<_>>().join("/")
}

/// The partition directory of a span file (`date=…/hour=…/service=…`).
fn partition_of(relative: &str) -> &str {
    relative.rsplit_once('/').map_or("", |(dir, _)| dir)
}

/// What a lookup found.
#[derive(Debug)]
pub struct LookupFiles {
    /// The span files to scan.
    pub files: Vec<ObjectMeta>,
    /// Segments read.
    pub segments: usize,
    /// Span files no segment covers (included in `files`).
    pub uncovered: usize,
}

/// The span files that may hold spans of `trace_ids`, or `None` when the location has no index
/// (then nothing else is listed: the caller scans as without an index). Segments that disappear while they are read
/// (merged or removed meanwhile) are skipped, which leaves their files uncovered, not missed.
pub async fn lookup(location: &DataLocation, trace_ids: &[String]) -> Result<Option<LookupFiles>> {
    let store = location.store();
    let segments = list_parquet(location, &index_dir(location)).await?;
    if segments.is_empty() {
        return Ok(None);
    }
    let span_files = list_parquet(location, &location.spans_path()).await?;
    // Ids the index cannot key could be anywhere: no narrowing.
    let Some(keys) = trace_ids.iter().map(|id| trace_key(id)).collect::<Option<Vec<i64>>>() else {
        return Ok(Some(LookupFiles { uncovered: 0, segments: 0, files: span_files }));
    };
    let mut covered = HashSet::new();
    let mut hit_partitions = HashSet::new();
    let mut read = 0;
    for segment in &segments {
        if let Some(found) = read_segment(&store, segment, &keys).await? {
            read += 1;
            covered.extend(found.covers);
            hit_partitions.extend(found.partitions);
        }
    }
    let mut uncovered = 0;
    let files = span_files
        .into_iter()
        .filter(|meta| {
            let relative = relative_to_spans(&meta.location);
            if !covered.contains(&relative) {
                uncovered += 1;
                return true;
            }
            hit_partitions.contains(partition_of(&relative))
        })
        .collect();
    Ok(Some(LookupFiles { files, segments: read, uncovered }))
}

/// The non-empty Parquet files under `dir` (none if it does not exist).
async fn list_parquet(location: &DataLocation, dir: &Path) -> Result<Vec<ObjectMeta>> {
    match location.store().list(Some(dir)).try_collect::<Vec<ObjectMeta>>().await {
        Ok(files) => Ok(files.into_iter().filter(|m| m.size > 0 && m.location.as_ref().ends_with(FILE_EXTENSION)).collect()),
        Err(object_store::Error::NotFound { .. }) => Ok(Vec::new()),
        Err(source) => Err(Error::ObjectStore { path: dir.to_string(), source }),
    }
}

#[allow(deprecated)]
type SegmentBuilder = ParquetRecordBatchStreamBuilder<ParquetObjectReader>;

/// A reader of one segment, or `None` if it is gone (merged or removed since it was listed).
async fn open_segment(store: &Arc<dyn ObjectStore>, segment: &ObjectMeta) -> Result<Option<SegmentBuilder>> {
    #[allow(deprecated)]
    let reader = ParquetObjectReader::new(Arc::clone(store), segment.location.clone()).with_file_size(segment.size);
    match ParquetRecordBatchStreamBuilder::new(reader).await {
        Ok(builder) => Ok(Some(builder)),
        Err(parquet::errors::ParquetError::External(e)) if is_not_found(e.as_ref()) => Ok(None),
        Err(source) => Err(Error::Parquet { partition: segment.location.to_string(), source }),
    }
}

struct SegmentHits {
    covers: Vec<String>,
    partitions: Vec<String>,
}

/// The covered files of one segment and the partitions it names for `keys`; `None` if the
/// segment is gone.
async fn read_segment(store: &Arc<dyn ObjectStore>, segment: &ObjectMeta, keys: &[i64]) -> Result<Option<SegmentHits>> {
    let context = |source| Error::Parquet { partition: segment.location.to_string(), source };
    let Some(builder) = open_segment(store, segment).await? else { return Ok(None) };
    let metadata = builder.metadata().clone();
    let covers = covered_files(&metadata);
    let row_groups: Vec<usize> = (0..metadata.num_row_groups())
        .filter(|&i| match metadata.row_group(i).column(0).statistics() {
            Some(Statistics::Int64(s)) => match (s.min_opt(), s.max_opt()) {
                (Some(lo), Some(hi)) => keys.iter().any(|k| lo <= k && k <= hi),
                _ => true,
            },
            _ => true,
        })
        .collect();
    let mut partitions = Vec::new();
    if !row_groups.is_empty() {
        let mask = ProjectionMask::roots(metadata.file_metadata().schema_descr(), [0, 1]);
        let stream = builder.with_row_groups(row_groups).with_projection(mask).build().map_err(context)?;
        let batches: Vec<RecordBatch> = stream.try_collect().await.map_err(context)?;
        for batch in &batches {
            let (k, p) = segment_columns(batch, segment)?;
            for row in 0..batch.num_rows() {
                if keys.contains(&k.value(row)) && p.is_valid(row) {
                    partitions.push(p.value(row).to_owned());
                }
            }
        }
    }
    Ok(Some(SegmentHits { covers, partitions }))
}

/// Segments merged at once, and how many segments of one size class trigger a merge.
const MERGE_FAN_IN: usize = 4;

/// Size classes are powers of 4 above this (bytes).
const SMALLEST_CLASS_BYTES: u64 = 64 * 1024;

/// Keeps the number of segments logarithmic in the data (a server writes one per flush): when
/// [`MERGE_FAN_IN`] segments fall in the same size class (×4 steps), they are merged into one.
/// The merged segment is written before the old ones are deleted, so a concurrent lookup sees
/// both (harmless) or, if an old one vanishes under it, treats its files as uncovered (scans
/// them): never a missed span. Returns the number of segments merged away.
pub async fn merge_segments(location: &DataLocation) -> Result<usize> {
    let store = location.store();
    let mut by_class: HashMap<u32, Vec<ObjectMeta>> = HashMap::new();
    for segment in list_parquet(location, &index_dir(location)).await? {
        let class = (segment.size / SMALLEST_CLASS_BYTES).max(1).ilog(4);
        by_class.entry(class).or_default().push(segment);
    }
    let Some(mut group) = by_class.into_values().filter(|g| g.len() >= MERGE_FAN_IN).min_by_key(|g| g[0].size) else {
        return Ok(0);
    };
    group.sort_by(|a, b| a.location.cmp(&b.location));
    group.truncate(MERGE_FAN_IN * 4);
    let mut merged = TraceIndexBuilder::new();
    for segment in &group {
        let Some(contents) = read_whole_segment(&store, segment).await? else { continue };
        merged.covers.extend(contents.covers);
        for (key, partition) in contents.entries {
            let next = merged.partitions.len() as u32;
            let pid = *merged.partition_ids.entry(partition.clone()).or_insert(next);
            if pid == next {
                merged.partitions.push(partition);
            }
            merged.entries.push((key, pid));
        }
    }
    merged.write(location, ulid::Ulid::new()).await?;
    for segment in &group {
        match store.delete(&segment.location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(source) => return Err(Error::ObjectStore { path: segment.location.to_string(), source }),
        }
    }
    Ok(group.len())
}

struct SegmentContents {
    covers: Vec<String>,
    entries: Vec<(i64, String)>,
}

async fn read_whole_segment(store: &Arc<dyn ObjectStore>, segment: &ObjectMeta) -> Result<Option<SegmentContents>> {
    let context = |source| Error::Parquet { partition: segment.location.to_string(), source };
    let Some(builder) = open_segment(store, segment).await? else { return Ok(None) };
    let covers = covered_files(builder.metadata());
    let batches: Vec<RecordBatch> = builder.build().map_err(context)?.try_collect().await.map_err(context)?;
    let mut entries = Vec::new();
    for batch in &batches {
        let (k, p) = segment_columns(batch, segment)?;
        entries.extend((0..batch.num_rows()).filter(|&r| p.is_valid(r)).map(|r| (k.value(r), p.value(r).to_owned())));
    }
    Ok(Some(SegmentContents { covers, entries }))
}

fn covered_files(metadata: &parquet::file::metadata::ParquetMetaData) -> Vec<String> {
    metadata
        .file_metadata()
        .key_value_metadata()
        .and_then(|kv| kv.iter().find(|k| k.key == COVERS_KEY))
        .and_then(|k| k.value.as_deref())
        .map(|v| v.lines().map(str::to_owned).collect())
        .unwrap_or_default()
}

fn segment_columns<'b>(
    batch: &'b RecordBatch,
    segment: &ObjectMeta,
) -> Result<(&'b arrow::array::PrimitiveArray<Int64Type>, &'b arrow::array::StringArray)> {
    match (batch.column(0).as_primitive_opt::<Int64Type>(), batch.column(1).as_string_opt::<i32>()) {
        (Some(k), Some(p)) => Ok((k, p)),
        _ => Err(Error::Schema(format!("trace index segment {} has unexpected columns", segment.location))),
    }
}

fn is_not_found(e: &(dyn std::error::Error + Send + Sync + 'static)) -> bool {
    e.downcast_ref::<object_store::Error>().is_some_and(|e| matches!(e, object_store::Error::NotFound { .. }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PartitionedBuffer, SpanFileWriter};
    use tracelake_schema::{AcceptMode, PayloadFormat, convert_request, decode_payload};

    /// Spans of `traces` traces (ids `t{i}…`), each in services a and b, at hours 0 and 1.
    fn spans(traces: u64, hour: u64) -> RecordBatch {
        let start = 1_705_312_800_000_000_000u64 + hour * 3_600_000_000_000;
        let resource = |service: &str, spans: Vec<String>| {
            format!(r#"{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"{service}"}}}}]}},"scopeSpans":[{{"spans":[{}]}}]}}"#, spans.join(","))
        };
        let span = |t: u64, s: u64| {
            format!(
                r#"{{"traceId":"{:016x}{hour:016x}","spanId":"{s:016x}","name":"op","startTimeUnixNano":"{start}","endTimeUnixNano":"{}"}}"#,
                hour * 1000 + t,
                start + 10
            )
        };
        let a = resource("a", (0..traces).map(|t| span(t + 1, 1)).collect());
        let b = resource("b", (0..traces).filter(|t| t % 2 == 0).map(|t| span(t + 1, 2)).collect());
        let json = format!(r#"{{"resourceSpans":[{a},{b}]}}"#);
        let request = &decode_payload(json.as_bytes(), PayloadFormat::Json).unwrap()[0];
        convert_request(request, AcceptMode::AllOrNothing).unwrap().batch
    }

    async fn listing(location: &DataLocation) -> Vec<ObjectMeta> {
        list_parquet(location, &location.spans_path()).await.unwrap()
    }

    fn partitions(found: &LookupFiles) -> Vec<String> {
        let mut p: Vec<String> = found.files.iter().map(|m| partition_of(&relative_to_spans(&m.location)).to_owned()).collect();
        p.sort();
        p.dedup();
        p
    }

    #[test]
    fn keys_are_the_first_64_bits() {
        assert_eq!(trace_key("0af7651916cd43dd8448eb211c80319c"), Some(0x0af7651916cd43dd));
        assert_eq!(trace_key("ffffffffffffffff0000000000000000"), Some(-1));
        assert_eq!(trace_key("0AF7651916CD43DD8448EB211C80319C"), None, "not lowercase hex");
        assert_eq!(trace_key("0af7"), None);
    }

    #[tokio::test]
    async fn lookup_names_the_trace_partitions_and_every_uncovered_file() {
        let dir = tempfile::tempdir().unwrap();
        let location = DataLocation::open(dir.path().to_str().unwrap()).unwrap();
        assert!(lookup(&location, &["00".repeat(16)]).await.unwrap().is_none(), "no index yet");
        let mut buffer = PartitionedBuffer::new(SpanFileWriter::new(location.clone()));
        buffer.push(&spans(10, 0)).await.unwrap();
        buffer.push(&spans(10, 1)).await.unwrap();
        buffer.finish().await.unwrap();
        let all = listing(&location).await;
        assert_eq!(all.len(), 4, "a and b at hours 0 and 1");

        // Trace 2 (odd index 1) of hour 0 is only in service a; trace 1 of hour 1 in a and b.
        let only_a = format!("{:016x}{:016x}", 2, 0);
        let found = lookup(&location, std::slice::from_ref(&only_a)).await.unwrap().unwrap();
        assert_eq!((found.segments, found.uncovered), (1, 0));
        assert_eq!(partitions(&found), ["date=2024-01-15/hour=10/service=a"]);
        let both = format!("{:016x}{:016x}", 1001, 1);
        // Ids are keyed by their first 64 bits: a colliding id only adds partitions to scan.
        let collides = format!("{:016x}{:016x}", 2, 99);
        let found = lookup(&location, std::slice::from_ref(&collides)).await.unwrap().unwrap();
        assert_eq!(partitions(&found), ["date=2024-01-15/hour=10/service=a"], "the partitions of trace 2");
        let found = lookup(&location, std::slice::from_ref(&both)).await.unwrap().unwrap();
        assert_eq!(partitions(&found), ["date=2024-01-15/hour=11/service=a", "date=2024-01-15/hour=11/service=b"]);
        let absent = lookup(&location, &["ab".repeat(16)]).await.unwrap().unwrap();
        assert!(absent.files.is_empty());

        // A file written without the index (another tool, an older version) is always scanned.
        let key = PartitionKey::for_span(1_705_312_800_000_000_000 + 5 * 3_600_000_000_000, "c");
        SpanFileWriter::new(location.clone()).write_partition(&key, &[spans(1, 5)]).await.unwrap();
        let found = lookup(&location, std::slice::from_ref(&only_a)).await.unwrap().unwrap();
        assert_eq!(found.uncovered, 1);
        assert_eq!(partitions(&found), ["date=2024-01-15/hour=10/service=a", "date=2024-01-15/hour=15/service=c"]);
    }

    #[tokio::test]
    async fn merging_segments_keeps_every_answer() {
        let dir = tempfile::tempdir().unwrap();
        let location = DataLocation::open(dir.path().to_str().unwrap()).unwrap();
        for hour in 0..MERGE_FAN_IN as u64 {
            let mut buffer = PartitionedBuffer::new(SpanFileWriter::new(location.clone()));
            buffer.push(&spans(6, hour)).await.unwrap();
            buffer.finish().await.unwrap();
        }
        let ids: Vec<String> = (0..MERGE_FAN_IN as u64).flat_map(|h| (1..=6).map(move |t| format!("{:016x}{h:016x}", h * 1000 + t))).collect();
        let mut before = Vec::new();
        for id in &ids {
            before.push(partitions(&lookup(&location, std::slice::from_ref(id)).await.unwrap().unwrap()));
        }
        assert_eq!(merge_segments(&location).await.unwrap(), MERGE_FAN_IN);
        let segments: Vec<ObjectMeta> = location.store().list(Some(&index_dir(&location))).try_collect().await.unwrap();
        assert_eq!(segments.len(), 1);
        for (id, expected) in ids.iter().zip(&before) {
            let found = lookup(&location, std::slice::from_ref(id)).await.unwrap().unwrap();
            assert_eq!((found.segments, found.uncovered), (1, 0));
            assert_eq!(&partitions(&found), expected, "trace {id}");
        }
        assert_eq!(merge_segments(&location).await.unwrap(), 0, "one segment: nothing to merge");
    }
}
