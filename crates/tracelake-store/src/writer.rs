//! Writing one partition's spans as an immutable Parquet file.
//!
//! Layout choices (see PERFORMANCE-NOTES in the shared docs and `docs/storage.md`):
//! - rows sorted by (`span_name`, `start_time`) inside each service/hour file, so operation and
//!   time predicates prune pages;
//! - zstd compression; dictionary encoding for low-cardinality strings, none for ids/times;
//! - page-level statistics (the page index) and a bloom filter on `trace_id`;
//! - the file is encoded in memory and stored with one `put`, which is atomic on every
//!   `object_store` backend (local: temp file + rename), so readers never see a partial file.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch};
use arrow::compute::{SortColumn, concat_batches, lexsort_to_indices, take_record_batch};
use bytes::Bytes;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::metadata::KeyValue;
use tracelake_schema::schema::{LAYOUT_VERSION, LAYOUT_VERSION_KEY, col, spans_schema};

use crate::error::{Error, Result};
use crate::layout::PartitionKey;
use crate::location::DataLocation;

/// Rows per row group: small enough that the trace_id bloom filter and statistics prune well.
pub const ROW_GROUP_ROWS: usize = 128 * 1024;

/// Columns whose values are (nearly) unique per row: dictionary encoding only costs there.
const HIGH_CARDINALITY: &[&str] =
    &[col::TRACE_ID, col::SPAN_ID, col::PARENT_SPAN_ID, col::START_TIME, col::END_TIME, col::DURATION_NS];

/// zstd level of span files. Level 6 was measured at 10M `gen` spans: 41.4 → 40.7 B/span
/// (−1.9 %) for 14 % more write time (98.8 → 113.1 s), so flushes keep level 3.
const ZSTD_LEVEL: i32 = 3;

/// Integer columns written with DELTA_BINARY_PACKED.
const DELTA_ENCODED: &[&str] = &[col::START_TIME, col::END_TIME, col::DURATION_NS];

/// A file that was written.
#[derive(Debug, Clone)]
pub struct WrittenFile {
    /// Object path of the file.
    pub path: Path,
    /// Spans in the file.
    pub rows: usize,
    /// Size of the file in bytes.
    pub bytes: usize,
}

/// Writes span files into a data location.
#[derive(Debug, Clone)]
pub struct SpanFileWriter {
    location: DataLocation,
    zstd_level: i32,
}

impl SpanFileWriter {
    /// A writer into `location` with the default settings.
    pub fn new(location: DataLocation) -> Self {
        Self { location, zstd_level: ZSTD_LEVEL }
    }

    /// The location written to.
    pub fn location(&self) -> &DataLocation {
        &self.location
    }

    /// Sorts, encodes and stores `batches` (all of partition `key`) as one new file.
    pub async fn write_partition(&self, key: &PartitionKey, batches: &[RecordBatch]) -> Result<WrittenFile> {
        self.write_partition_as(key, batches, ulid::Ulid::new()).await
    }

    /// Like [`SpanFileWriter::write_partition`], with a chosen file name. Writing the same name
    /// again replaces the file atomically — the basis of idempotent (exactly-once) flushes.
    pub async fn write_partition_as(
        &self,
        key: &PartitionKey,
        batches: &[RecordBatch],
        name: ulid::Ulid,
    ) -> Result<WrittenFile> {
        let path = key.file_path(self.location.prefix(), &name.to_string());
        self.write_file(&path, &key.relative_dir(), batches).await
    }

    /// Sorts, encodes and stores `batches` as the file `path` (in partition `partition`, for
    /// messages). Compaction uses it to write into the directory of the files it merges.
    pub async fn write_file(&self, path: &Path, partition: &str, batches: &[RecordBatch]) -> Result<WrittenFile> {
        let encoded = encode_file(batches, self.zstd_level)
            .map_err(|source| Error::Parquet { partition: partition.to_owned(), source })?;
        let path = path.clone();
        let bytes = encoded.bytes.len();
        self.location
            .store()
            .put(&path, encoded.bytes.into())
            .await
            .map_err(|source| Error::ObjectStore { path: path.to_string(), source })?;
        tracing::debug!(%path, rows = encoded.rows, bytes, "wrote span file");
        Ok(WrittenFile { path, rows: encoded.rows, bytes })
    }
}

struct EncodedFile {
    bytes: Bytes,
    rows: usize,
}

fn encode_file(batches: &[RecordBatch], zstd_level: i32) -> parquet::errors::Result<EncodedFile> {
    let schema = spans_schema();
    let batch = concat_batches(&schema, batches)?;
    let batch = sort_for_pruning(&batch)?;
    let distinct_traces = batch
        .column_by_name(col::TRACE_ID)
        .map(|c| c.as_string::<i32>().iter().flatten().collect::<HashSet<_>>().len())
        .unwrap_or(batch.num_rows());
    let props = writer_properties(zstd_level, distinct_traces.max(1) as u64)?;
    let mut buffer = Vec::with_capacity(batch.get_array_memory_size() / 4);
    let mut writer = ArrowWriter::try_new(&mut buffer, schema, Some(props))?;
    writer.write(&batch)?;
    writer.close()?;
    Ok(EncodedFile { bytes: Bytes::from(buffer), rows: batch.num_rows() })
}

/// Orders rows by (`span_name`, `start_time`).
fn sort_for_pruning(batch: &RecordBatch) -> arrow::error::Result<RecordBatch> {
    let column = |name: &str| {
        batch.column_by_name(name).cloned().ok_or_else(|| {
            arrow::error::ArrowError::SchemaError(format!("missing column {name}"))
        })
    };
    let sort = [
        SortColumn { values: column(col::SPAN_NAME)?, options: None },
        SortColumn { values: column(col::START_TIME)?, options: None },
    ];
    let indices = lexsort_to_indices(&sort, None)?;
    take_record_batch(batch, &indices)
}

fn writer_properties(zstd_level: i32, distinct_traces: u64) -> parquet::errors::Result<WriterProperties> {
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(zstd_level)?))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_dictionary_enabled(true)
        .set_column_bloom_filter_enabled(col::TRACE_ID.into(), true)
        .set_column_bloom_filter_fpp(col::TRACE_ID.into(), 0.01)
        .set_column_bloom_filter_max_ndv(col::TRACE_ID.into(), distinct_traces)
        .set_key_value_metadata(Some(vec![KeyValue::new(LAYOUT_VERSION_KEY.to_owned(), LAYOUT_VERSION.to_owned())]))
        .set_created_by(format!("tracelake {}", env!("CARGO_PKG_VERSION")));
    for name in HIGH_CARDINALITY {
        builder = builder.set_column_dictionary_enabled((*name).into(), false);
    }
    // Sorted start times (and end times and durations near them) delta-pack to ~4.5 B/span
    // instead of ~5.7 with PLAIN + zstd (measured on `gen` output: 47.2 → 44.5 B/span).
    for name in DELTA_ENCODED {
        builder = builder.set_column_encoding((*name).into(), Encoding::DELTA_BINARY_PACKED);
    }
    Ok(builder.build())
}

/// Shared, cheaply clonable writer.
pub type SharedWriter = Arc<SpanFileWriter>;

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::AsArray;
    use object_store::ObjectStoreExt;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::file::properties::ReaderProperties;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::file::serialized_reader::ReadOptionsBuilder;
    use tracelake_schema::{AcceptMode, PayloadFormat, convert_request, decode_payload};

    const REQUEST: &str = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc"}}]},
    "scopeSpans":[{"spans":[
     {"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"0000000000000003","name":"b","startTimeUnixNano":"1705312800300000000","endTimeUnixNano":"1705312800400000000"},
     {"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"0000000000000001","name":"a","startTimeUnixNano":"1705312800200000000","endTimeUnixNano":"1705312800400000000"},
     {"traceId":"1af7651916cd43dd8448eb211c80319c","spanId":"0000000000000002","name":"a","startTimeUnixNano":"1705312800100000000","endTimeUnixNano":"1705312800400000000"}
    ]}]}]}"#;

    #[tokio::test]
    async fn file_is_sorted_compressed_bloomed_and_versioned() {
        let dir = tempfile::tempdir().unwrap();
        let location = DataLocation::open(dir.path().to_str().unwrap()).unwrap();
        let request = &decode_payload(REQUEST.as_bytes(), PayloadFormat::Json).unwrap()[0];
        let batch = convert_request(request, AcceptMode::AllOrNothing).unwrap().batch;
        let key = PartitionKey::for_span(1_705_312_800_000_000_000, "svc");
        let written = SpanFileWriter::new(location.clone()).write_partition(&key, &[batch]).await.unwrap();
        assert_eq!(written.rows, 3);
        assert!(written.path.as_ref().contains("spans/date=2024-01-15/hour=10/service=svc/"));

        let bytes = location.store().get(&written.path).await.unwrap().bytes().await.unwrap();
        assert_eq!(bytes.len(), written.bytes);
        let options = ReadOptionsBuilder::new()
            .with_page_index()
            .with_reader_properties(ReaderProperties::builder().set_read_bloom_filter(true).build())
            .build();
        let reader = SerializedFileReader::new_with_options(bytes.clone(), options).unwrap();
        let meta = reader.metadata();
        let kv = meta.file_metadata().key_value_metadata().unwrap();
        assert!(kv.iter().any(|k| k.key == LAYOUT_VERSION_KEY && k.value.as_deref() == Some(LAYOUT_VERSION)));
        let row_group = meta.row_group(0);
        let trace_col = row_group.columns().iter().position(|c| c.column_path().string() == "trace_id").unwrap();
        assert!(row_group.column(trace_col).bloom_filter_offset().is_some(), "bloom filter on trace_id");
        assert!(matches!(row_group.column(trace_col).compression(), Compression::ZSTD(_)));
        assert!(meta.column_index().is_some() && meta.offset_index().is_some(), "page index");
        let bloom = reader.get_row_group(0).unwrap().get_column_bloom_filter(trace_col).cloned();
        let bloom = bloom.expect("bloom filter readable");
        assert!(bloom.check(&"0af7651916cd43dd8448eb211c80319c"));

        // Sorted by (span_name, start_time).
        let batches: Vec<_> = ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap().build().unwrap().collect();
        let batch = batches[0].as_ref().unwrap();
        let ids: Vec<_> = batch.column_by_name("span_id").unwrap().as_string::<i32>().iter().flatten().collect();
        assert_eq!(ids, ["0000000000000002", "0000000000000001", "0000000000000003"]);
    }
}
