//! Write-ahead log: a batch is acknowledged only after it is durable.
//!
//! Layout: `<dir>/<segment:020>.wal`, each segment starting with the 8-byte magic
//! `TLWAL001`, followed by records `[len: u32 LE][crc32: u32 LE][payload: len bytes]` where the
//! payload is one Arrow IPC stream holding one record batch and the CRC covers the payload.
//!
//! - **Group commit**: one writer thread drains every append waiting in its queue, writes them,
//!   calls `fsync` (`sync_data`) once, then acknowledges them all.
//! - **Rotation**: a new segment starts when the current one passes `segment_bytes`, so flushed
//!   data can be dropped a whole segment at a time ([`Wal::remove_through`]).
//! - **Replay** ([`Wal::open`]): every segment is read in order. A damaged or incomplete record
//!   at the end of the newest segment is a write that was never acknowledged (the crash hit
//!   before its fsync returned): the segment is truncated there. Damage anywhere else is an
//!   error — acknowledged data is never skipped silently.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::RecordBatch;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};

const MAGIC: &[u8; 8] = b"TLWAL001";
const HEADER: usize = 8;
/// Largest record accepted (bounds memory on replay of a damaged length field).
const MAX_RECORD: u32 = 1 << 30;

/// WAL settings.
#[derive(Debug, Clone)]
pub struct WalConfig {
    /// Directory of the segments (created if missing).
    pub dir: PathBuf,
    /// Size after which a new segment is started.
    pub segment_bytes: u64,
    /// Appends waiting for the writer before callers are made to wait (backpressure).
    pub queue_depth: usize,
    /// Group commit: one `fsync` for every append waiting at that moment (default). When
    /// false, each append gets its own `fsync` (for benchmarks; much slower).
    pub group_commit: bool,
}

impl WalConfig {
    /// Defaults: 64 MiB segments, 1024 queued appends, group commit.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into(), segment_bytes: 64 << 20, queue_depth: 1024, group_commit: true }
    }
}

/// Where a record was written: the segment it lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct WalPosition {
    /// Segment sequence number.
    pub segment: u64,
}

/// Counters (for `/metrics` and tests).
#[derive(Debug, Default)]
pub struct WalStats {
    /// Records written.
    pub records: AtomicU64,
    /// `fsync` calls.
    pub syncs: AtomicU64,
    /// Bytes written, including framing.
    pub bytes: AtomicU64,
}

struct Append {
    payload: Vec<u8>,
    ack: oneshot::Sender<std::result::Result<WalPosition, String>>,
}

/// Messages to the writer thread.
enum Command {
    Append(Append),
    /// Close the current segment if it holds records; answer the newest segment that may hold
    /// records (everything acknowledged so far is in segments ≤ it).
    Rotate(oneshot::Sender<std::result::Result<u64, String>>),
}

/// A write-ahead log; cheap to clone and share between request handlers.
#[derive(Clone)]
pub struct Wal {
    tx: mpsc::Sender<Command>,
    dir: PathBuf,
    stats: Arc<WalStats>,
}

impl Wal {
    /// Opens the log in `config.dir`, returning it and every batch recorded in it (oldest
    /// first, with the segment each came from) so the caller can rebuild its buffers.
    pub fn open(config: WalConfig) -> Result<(Self, Vec<(WalPosition, RecordBatch)>)> {
        std::fs::create_dir_all(&config.dir).map_err(|source| Error::Io { path: config.dir.clone(), source })?;
        let segments = list_segments(&config.dir)?;
        let mut replayed = Vec::new();
        for (i, (segment, path)) in segments.iter().enumerate() {
            let newest = i + 1 == segments.len();
            for batch in read_segment(path, newest)? {
                replayed.push((WalPosition { segment: *segment }, batch));
            }
        }
        // Always write into a fresh segment: replayed segments stay untouched until removed.
        let next = segments.last().map_or(1, |(s, _)| s + 1);
        let stats = Arc::new(WalStats::default());
        let (tx, rx) = mpsc::channel(config.queue_depth.max(1));
        let writer = SegmentWriter::create(&config.dir, next, config.segment_bytes, Arc::clone(&stats))?;
        let group_commit = config.group_commit;
        std::thread::Builder::new()
            .name("tracelake-wal".into())
            .spawn(move || writer.run(rx, group_commit))
            .map_err(|source| Error::Io { path: config.dir.clone(), source })?;
        Ok((Self { tx, dir: config.dir, stats }, replayed))
    }

    /// Appends `batch` and returns once it is durable.
    pub async fn append(&self, batch: &RecordBatch) -> Result<WalPosition> {
        let mut payload = Vec::with_capacity(batch.get_array_memory_size() / 2);
        {
            let mut writer = StreamWriter::try_new(&mut payload, &batch.schema())?;
            writer.write(batch)?;
            writer.finish()?;
        }
        if payload.len() > MAX_RECORD as usize {
            return Err(Error::Closed(Some(format!("a batch of {} bytes is larger than a WAL record may be", payload.len()))));
        }
        let (ack, done) = oneshot::channel();
        self.tx.send(Command::Append(Append { payload, ack })).await.map_err(|_| Error::Closed(None))?;
        match done.await {
            Ok(Ok(position)) => Ok(position),
            Ok(Err(reason)) => Err(Error::Closed(Some(reason))),
            Err(_) => Err(Error::Closed(None)),
        }
    }

    /// Closes the segment being written (if it holds records) and returns the newest segment
    /// that may hold records: every append acknowledged before this call is in a segment ≤ it,
    /// every later one in a segment after it.
    pub async fn rotate(&self) -> Result<u64> {
        let (ack, done) = oneshot::channel();
        self.tx.send(Command::Rotate(ack)).await.map_err(|_| Error::Closed(None))?;
        match done.await {
            Ok(Ok(segment)) => Ok(segment),
            Ok(Err(reason)) => Err(Error::Closed(Some(reason))),
            Err(_) => Err(Error::Closed(None)),
        }
    }

    /// The directory of the segments.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Deletes every segment up to and including `segment` (their data is in Parquet now).
    /// The segment being written is never deleted.
    pub fn remove_through(&self, segment: u64) -> Result<usize> {
        let mut removed = 0;
        let segments = list_segments(&self.dir)?;
        let newest = segments.last().map(|(s, _)| *s);
        for (seq, path) in segments {
            if seq <= segment && Some(seq) != newest {
                std::fs::remove_file(&path).map_err(|source| Error::Io { path: path.clone(), source })?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Counters.
    pub fn stats(&self) -> &WalStats {
        &self.stats
    }

    /// Bytes of all segments on disk (acknowledged spans not yet flushed, plus the open segment).
    pub fn disk_bytes(&self) -> u64 {
        list_segments(&self.dir)
            .map(|segments| segments.iter().filter_map(|(_, p)| std::fs::metadata(p).ok()).map(|m| m.len()).sum())
            .unwrap_or(0)
    }
}

fn segment_path(dir: &Path, segment: u64) -> PathBuf {
    dir.join(format!("{segment:020}.wal"))
}

fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Io { path: dir.to_path_buf(), source })?;
    let mut segments = Vec::new();
    for entry in entries {
        let path = entry.map_err(|source| Error::Io { path: dir.to_path_buf(), source })?.path();
        let seq = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".wal"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(seq) = seq {
            segments.push((seq, path));
        }
    }
    segments.sort();
    Ok(segments)
}

/// Reads a segment's records. In the newest segment, a torn tail is cut off (it was never
/// acknowledged); elsewhere it is corruption.
fn read_segment(path: &Path, newest: bool) -> Result<Vec<RecordBatch>> {
    let io = |source| Error::Io { path: path.to_path_buf(), source };
    let mut bytes = Vec::new();
    File::open(path).and_then(|mut f| f.read_to_end(&mut bytes)).map_err(io)?;
    let corrupt = |offset: usize, reason: String| Error::Corrupt { path: path.to_path_buf(), offset: offset as u64, reason };
    if bytes.len() < HEADER || &bytes[..HEADER] != MAGIC {
        if newest && bytes.len() < HEADER {
            // Crashed while creating the segment: nothing in it was acknowledged.
            std::fs::write(path, MAGIC).map_err(io)?;
            return Ok(Vec::new());
        }
        return Err(corrupt(0, "not a tracelake WAL segment (bad magic)".into()));
    }
    let mut batches = Vec::new();
    let mut offset = HEADER;
    while offset < bytes.len() {
        match parse_record(&bytes[offset..]) {
            Ok((payload, used)) => {
                let reader = StreamReader::try_new(payload, None)?;
                for batch in reader {
                    batches.push(batch?);
                }
                offset += used;
            }
            Err(reason) if newest => {
                tracing::warn!(path = %path.display(), offset, %reason, "truncating unacknowledged WAL tail");
                let file = OpenOptions::new().write(true).open(path).map_err(io)?;
                file.set_len(offset as u64).map_err(io)?;
                file.sync_all().map_err(io)?;
                break;
            }
            Err(reason) => return Err(corrupt(offset, reason)),
        }
    }
    Ok(batches)
}

/// Splits one record off `bytes`: `(payload, bytes consumed)`.
fn parse_record(bytes: &[u8]) -> std::result::Result<(&[u8], usize), String> {
    if bytes.len() < 8 {
        return Err(format!("incomplete record header ({} bytes)", bytes.len()));
    }
    let len = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let crc = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    if len > MAX_RECORD {
        return Err(format!("record length {len} is implausible"));
    }
    let end = 8 + len as usize;
    let Some(payload) = bytes.get(8..end) else {
        return Err(format!("incomplete record: {} of {len} payload bytes", bytes.len() - 8));
    };
    if crc32fast::hash(payload) != crc {
        return Err("checksum mismatch".into());
    }
    Ok((payload, end))
}

/// The writer thread's state.
struct SegmentWriter {
    dir: PathBuf,
    segment: u64,
    file: File,
    written: u64,
    segment_bytes: u64,
    stats: Arc<WalStats>,
}

impl SegmentWriter {
    fn create(dir: &Path, segment: u64, segment_bytes: u64, stats: Arc<WalStats>) -> Result<Self> {
        let path = segment_path(dir, segment);
        let io = |source| Error::Io { path: path.clone(), source };
        let mut file = OpenOptions::new().create_new(true).append(true).open(&path).map_err(io)?;
        file.write_all(MAGIC).map_err(io)?;
        file.sync_all().map_err(io)?;
        // Make the new file's directory entry durable too.
        File::open(dir).and_then(|d| d.sync_all()).map_err(|source| Error::Io { path: dir.to_path_buf(), source })?;
        Ok(Self { dir: dir.to_path_buf(), segment, file, written: HEADER as u64, segment_bytes, stats })
    }

    fn run(mut self, mut rx: mpsc::Receiver<Command>, group_commit: bool) {
        while let Some(first) = rx.blocking_recv() {
            let mut pending = Some(first);
            // Group every append waiting right now (stopping at a rotation, handled in order).
            while let Some(command) = pending.take() {
                match command {
                    Command::Rotate(ack) => {
                        let result = self.rotate().map_err(|e| e.to_string());
                        let failed = result.is_err();
                        let _ = ack.send(result);
                        if failed {
                            return;
                        }
                    }
                    Command::Append(first) => {
                        let mut group = vec![first];
                        while group_commit && let Ok(more) = rx.try_recv() {
                            match more {
                                Command::Append(a) => group.push(a),
                                rotate @ Command::Rotate(_) => {
                                    pending = Some(rotate);
                                    break;
                                }
                            }
                        }
                        let result = self.write_group(&group).map_err(|e| e.to_string());
                        let failed = result.is_err();
                        for append in group {
                            let _ = append.ack.send(result.clone());
                        }
                        if failed {
                            // Nothing after a failed write may be acknowledged: stop.
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Starts a new segment if the current one holds records; returns the newest segment that
    /// may hold records.
    fn rotate(&mut self) -> Result<u64> {
        if self.written > HEADER as u64 {
            let closed = self.segment;
            *self = Self::create(&self.dir, self.segment + 1, self.segment_bytes, Arc::clone(&self.stats))?;
            Ok(closed)
        } else {
            Ok(self.segment.saturating_sub(1))
        }
    }

    fn write_group(&mut self, group: &[Append]) -> Result<WalPosition> {
        if self.written > HEADER as u64 && self.written >= self.segment_bytes {
            let next = Self::create(&self.dir, self.segment + 1, self.segment_bytes, Arc::clone(&self.stats))?;
            *self = next;
        }
        let path = segment_path(&self.dir, self.segment);
        let io = |source| Error::Io { path: path.clone(), source };
        let mut buffer = Vec::with_capacity(group.iter().map(|a| a.payload.len() + 8).sum());
        for append in group {
            let len = u32::try_from(append.payload.len())
                .ok()
                .filter(|l| *l <= MAX_RECORD)
                .ok_or_else(|| Error::Closed(Some(format!("record of {} bytes is too large", append.payload.len()))))?;
            buffer.extend_from_slice(&len.to_le_bytes());
            buffer.extend_from_slice(&crc32fast::hash(&append.payload).to_le_bytes());
            buffer.extend_from_slice(&append.payload);
        }
        self.file.write_all(&buffer).map_err(io)?;
        self.file.sync_data().map_err(io)?;
        self.written += buffer.len() as u64;
        self.stats.records.fetch_add(group.len() as u64, Ordering::Relaxed);
        self.stats.syncs.fetch_add(1, Ordering::Relaxed);
        self.stats.bytes.fetch_add(buffer.len() as u64, Ordering::Relaxed);
        Ok(WalPosition { segment: self.segment })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    fn batch(n: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false), Field::new("s", DataType::Utf8, false)]));
        RecordBatch::try_new(
            schema,
            vec![Arc::new(Int64Array::from(vec![n, n + 1])), Arc::new(StringArray::from(vec![format!("a{n}"), format!("b{n}")]))],
        )
        .unwrap()
    }

    fn values(replayed: &[(WalPosition, RecordBatch)]) -> Vec<i64> {
        replayed
            .iter()
            .flat_map(|(_, b)| b.column(0).as_any().downcast_ref::<Int64Array>().unwrap().values().to_vec())
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn appends_survive_reopen_and_torn_tails_are_cut() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, replayed) = Wal::open(WalConfig::new(dir.path())).unwrap();
        assert!(replayed.is_empty());
        for n in [10, 20, 30] {
            wal.append(&batch(n)).await.unwrap();
        }
        drop(wal);
        // A crash in the middle of a write leaves a partial record at the end.
        let newest = list_segments(dir.path()).unwrap().last().unwrap().1.clone();
        let mut f = OpenOptions::new().append(true).open(&newest).unwrap();
        f.write_all(&[200, 0, 0, 0, 1, 2, 3, 4, 9, 9]).unwrap();
        drop(f);

        let (wal, replayed) = Wal::open(WalConfig::new(dir.path())).unwrap();
        assert_eq!(values(&replayed), vec![10, 11, 20, 21, 30, 31]);
        wal.append(&batch(40)).await.unwrap();
        drop(wal);
        let (_wal, replayed) = Wal::open(WalConfig::new(dir.path())).unwrap();
        assert_eq!(values(&replayed), vec![10, 11, 20, 21, 30, 31, 40, 41]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_appends_share_fsyncs() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = Wal::open(WalConfig::new(dir.path())).unwrap();
        let tasks: Vec<_> = (0..200)
            .map(|n| {
                let wal = wal.clone();
                tokio::spawn(async move { wal.append(&batch(n * 10)).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let records = wal.stats().records.load(Ordering::Relaxed);
        let syncs = wal.stats().syncs.load(Ordering::Relaxed);
        assert_eq!(records, 200);
        assert!(syncs < records, "group commit: {syncs} fsyncs for {records} records");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rotation_and_removal_of_flushed_segments() {
        let dir = tempfile::tempdir().unwrap();
        let config = WalConfig { segment_bytes: 1, ..WalConfig::new(dir.path()) };
        let (wal, _) = Wal::open(config.clone()).unwrap();
        let mut positions = Vec::new();
        for n in 0..4 {
            positions.push(wal.append(&batch(n * 10)).await.unwrap());
        }
        // Every append after the first starts a new segment (segment_bytes = 1).
        assert!(positions.windows(2).all(|w| w[0].segment < w[1].segment), "{positions:?}");
        assert_eq!(wal.remove_through(positions[2].segment).unwrap(), 3);
        drop(wal);
        let (_wal, replayed) = Wal::open(config).unwrap();
        assert_eq!(values(&replayed), vec![30, 31]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rotate_separates_acknowledged_appends() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = Wal::open(WalConfig::new(dir.path())).unwrap();
        assert_eq!(wal.rotate().await.unwrap(), 0, "nothing written yet");
        let a = wal.append(&batch(1)).await.unwrap();
        let closed = wal.rotate().await.unwrap();
        assert_eq!(closed, a.segment);
        let b = wal.append(&batch(2)).await.unwrap();
        assert!(b.segment > closed);
        assert_eq!(wal.rotate().await.unwrap(), b.segment);
        assert_eq!(wal.rotate().await.unwrap(), b.segment, "empty segment: unchanged");
    }

    #[test]
    fn damage_before_the_newest_segment_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(segment_path(dir.path(), 1), b"TLWAL001\x05\x00\x00\x00garbage").unwrap();
        std::fs::write(segment_path(dir.path(), 2), b"TLWAL001").unwrap();
        let err = Wal::open(WalConfig::new(dir.path())).err().unwrap().to_string();
        assert!(err.contains("corrupt at byte 8"), "{err}");
    }
}
