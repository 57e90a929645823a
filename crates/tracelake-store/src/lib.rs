//! Storage of spans: where data lives and how it is laid out and written.
//!
//! - [`location`]: a data location (`--data`): a local directory or `s3://bucket/prefix`,
//!   both behind `object_store`.
//! - [`layout`]: the Hive-style partition layout `spans/date=…/hour=…/service=…/<ulid>.parquet`.
//! - [`partition`]: splitting a batch of spans into per-partition batches.
//! - [`writer`]: sorted, zstd-compressed Parquet files with page index and a `trace_id` bloom
//!   filter, written atomically.
//! - [`buffer`]: per-partition buffering so that many small inputs become few files.
//! - [`table`]: the `spans` DataFusion table provider (partition pruning from `service_name` and
//!   `start_time` predicates).
//! - [`compaction`]: merging small files of a partition, with manifests that keep scans exact.
//! - [`dedicated`]: attribute-map filters also applied to the dedicated attribute columns.
//! - [`retention`]: dropping hourly partitions past a retention.
//! - [`tenant`]: validated org ids and each tenant's data location.
//! - [`fresh`]: spans still in an ingest buffer, unioned into the `spans` scan exactly once.
//! - [`trace_index`]: which partitions hold a trace (segments written next to the span files);
//!   [`lookup`]: scans by trace id that read only those partitions' files.

pub mod buffer;
pub mod compaction;
pub mod dedicated;
pub mod error;
pub mod fresh;
pub mod layout;
pub mod location;
pub mod lookup;
pub mod partition;
pub mod retention;
pub mod table;
pub mod tenant;
pub mod trace_index;
pub mod writer;

pub use buffer::{PartitionedBuffer, WriteStats};
pub use error::{Error, Result};
pub use fresh::{FreshSnapshot, FreshSpans};
pub use layout::PartitionKey;
pub use location::DataLocation;
pub use table::SpansTable;
pub use tenant::TenantId;
pub use trace_index::TraceIndexBuilder;
pub use partition::split_by_partition;
pub use writer::{SpanFileWriter, WrittenFile};
