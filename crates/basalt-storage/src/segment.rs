//! One segment: a `.log` file of whole batches plus its sparse indexes.
//!
//! A segment is named by its base offset, zero-padded to 20 digits
//! (`00000000000000000042.log`, `.index`, `.timeindex`, and `.txnindex` once it has an aborted
//! transaction, see [`txnindex`](crate::txnindex)). It holds no file descriptor: files come from
//! the [`FdCache`](crate::fdcache::FdCache) on each use.
//!
//! # Invariants
//! - `SEG-1`: `valid_bytes` only grows while the segment is active, and only after the bytes below it
//!   were completely written; readers never look past it, so they never see a partial batch. The
//!   exception is a segment value `Log::truncate_to` or `Log::reset_to` replaced or removed: it
//!   shrinks to the cut (or to nothing), so a reader still holding it sees no byte written since.
//! - `SEG-2`: every byte below `valid_bytes` belongs to a batch whose framing and CRC were checked
//!   when it was appended or recovered.
//! - `SEG-3`: a sealed segment never changes again until it is deleted, except that its
//!   `.txnindex` may take an entry re-added after a crash, synced at once (`TXN-2`), and that
//!   `Log::truncate_to` may cut it: its `.log` is cut at a batch boundary and synced, its `.index`
//!   and `.timeindex` are removed, and a new active segment value takes its place.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use basalt_record::{BATCH_HEADER_SIZE, BatchError, BatchHeader};
use parking_lot::RwLock;

use crate::error::{Damage, Result, StorageError};
use crate::fdcache::{FdCache, FileId};
use crate::index::{IndexBuilder, Indexes};

/// File name stem of a segment with `base_offset`.
pub(crate) fn stem(base_offset: i64) -> String {
    format!("{base_offset:020}")
}

/// Parses a segment's base offset from a `.log` file name.
pub(crate) fn parse_log_name(name: &str) -> Option<i64> {
    let stem = name.strip_suffix(".log")?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) base_offset: i64,
    pub(crate) log_path: PathBuf,
    pub(crate) index_path: PathBuf,
    pub(crate) time_path: PathBuf,
    pub(crate) txn_path: PathBuf,
    /// The `.txnindex` file was written since it was last synced.
    pub(crate) txn_unsynced: AtomicBool,
    pub(crate) file_id: FileId,
    /// Bytes of complete, checked batches (`SEG-1`, `SEG-2`).
    pub(crate) valid_bytes: AtomicU64,
    /// Offset after the last batch; for sealed segments loaded without a scan, the next segment's
    /// base offset.
    pub(crate) next_offset: AtomicI64,
    pub(crate) sealed: AtomicBool,
    /// Largest batch timestamp of the active segment (sealed ones keep it in their time index).
    pub(crate) max_timestamp: AtomicI64,
    /// Indexes of the active segment, extended by the writer after each append.
    pub(crate) live_indexes: RwLock<Indexes>,
    /// Indexes of a sealed segment, loaded (or rebuilt) on first use.
    pub(crate) sealed_indexes: OnceLock<Arc<Indexes>>,
}

impl Segment {
    pub(crate) fn new(dir: &Path, base_offset: i64, file_id: FileId) -> Self {
        let stem = stem(base_offset);
        Segment {
            base_offset,
            log_path: dir.join(format!("{stem}.log")),
            index_path: dir.join(format!("{stem}.index")),
            time_path: dir.join(format!("{stem}.timeindex")),
            txn_path: dir.join(format!("{stem}{}", crate::txnindex::SUFFIX)),
            txn_unsynced: AtomicBool::new(false),
            file_id,
            valid_bytes: AtomicU64::new(0),
            next_offset: AtomicI64::new(base_offset),
            sealed: AtomicBool::new(false),
            max_timestamp: AtomicI64::new(-1),
            live_indexes: RwLock::new(Indexes::default()),
            sealed_indexes: OnceLock::new(),
        }
    }

    pub(crate) fn is_sealed(&self) -> bool {
        self.sealed.load(Ordering::Acquire)
    }

    /// The indexes to look things up in: the loaded ones once sealed, the live ones while active.
    /// A sealed segment's indexes are loaded, or rebuilt from the log when missing or invalid, on
    /// first use; a rebuild that finds damage shrinks `valid_bytes` to the good part and says where.
    pub(crate) fn indexes(
        &self,
        fds: &FdCache,
        index_interval_bytes: u64,
    ) -> Result<(Arc<Indexes>, Option<Damage>)> {
        if let Some(idx) = self.sealed_indexes.get() {
            return Ok((Arc::clone(idx), None));
        }
        if !self.is_sealed() {
            return Ok((Arc::new(self.live_indexes.read().clone()), None));
        }
        let valid = self.valid_bytes();
        if let Some(idx) = Indexes::load(&self.index_path, &self.time_path, valid) {
            let idx = Arc::new(idx);
            let _ = self.sealed_indexes.set(Arc::clone(&idx));
            return Ok((idx, None));
        }
        tracing::warn!(segment = %self.log_path.display(), "index missing or invalid; rebuilding from the log");
        let file = self.file(fds)?;
        let outcome = self.scan(&file, index_interval_bytes)?;
        let idx = Arc::new(
            outcome
                .builder
                .finished(&outcome.indexes, self.relative(outcome.next_offset)),
        );
        let damage = outcome.stop.as_ref().map(|stop| {
            self.valid_bytes
                .store(outcome.valid_bytes, Ordering::Release);
            self.damage(outcome.next_offset, stop.position, &stop.reason)
        });
        if damage.is_none()
            && let Err(err) = idx.write_files(&self.index_path, &self.time_path, true)
        {
            tracing::warn!(error = %err, "could not store the rebuilt index");
        }
        let _ = self.sealed_indexes.set(Arc::clone(&idx));
        Ok((idx, damage))
    }

    /// Largest batch timestamp in the segment (-1 when empty).
    pub(crate) fn max_timestamp(&self, fds: &FdCache, index_interval_bytes: u64) -> Result<i64> {
        if !self.is_sealed() {
            return Ok(self.max_timestamp.load(Ordering::Acquire));
        }
        let (idx, _) = self.indexes(fds, index_interval_bytes)?;
        Ok(idx.max_timestamp().unwrap_or(-1))
    }

    pub(crate) fn valid_bytes(&self) -> u64 {
        self.valid_bytes.load(Ordering::Acquire)
    }

    pub(crate) fn next_offset(&self) -> i64 {
        self.next_offset.load(Ordering::Acquire)
    }

    pub(crate) fn file(&self, fds: &FdCache) -> Result<Arc<File>> {
        fds.get(self.file_id, &self.log_path)
            .map_err(|e| StorageError::io("open", &self.log_path, e))
    }

    /// Offset relative to the base, for index entries.
    pub(crate) fn relative(&self, offset: i64) -> u32 {
        (offset - self.base_offset).clamp(0, i64::from(u32::MAX)) as u32
    }

    pub(crate) fn damage(&self, offset: i64, position: u64, reason: impl ToString) -> Damage {
        Damage {
            offset,
            path: self.log_path.clone(),
            position,
            reason: reason.to_string(),
        }
    }

    /// Reads exactly `len` bytes at `position`.
    pub(crate) fn read_exact(&self, file: &File, position: u64, len: usize) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        file.read_exact_at(&mut buf, position)
            .map_err(|e| StorageError::io("read", &self.log_path, e))?;
        Ok(buf)
    }

    /// Reads and checks the framing of the batch header at `position` (below `valid_bytes`).
    pub(crate) fn header_at(
        &self,
        file: &File,
        position: u64,
        valid_bytes: u64,
    ) -> Result<BatchHeader, HeaderReadError> {
        let available = valid_bytes.saturating_sub(position);
        if available < BATCH_HEADER_SIZE as u64 {
            return Err(HeaderReadError::Batch(BatchError::Truncated {
                needed: BATCH_HEADER_SIZE,
                available: available as usize,
            }));
        }
        let mut buf = [0u8; BATCH_HEADER_SIZE];
        file.read_exact_at(&mut buf, position)
            .map_err(|e| HeaderReadError::Io(StorageError::io("read", &self.log_path, e)))?;
        let header = BatchHeader::parse_header(&buf).map_err(HeaderReadError::Batch)?;
        if header.total_size() as u64 > available {
            return Err(HeaderReadError::Batch(BatchError::Truncated {
                needed: header.total_size(),
                available: available as usize,
            }));
        }
        Ok(header)
    }

    /// Scans the whole `.log` file, checking framing and CRC of every batch, and rebuilds the
    /// indexes. Stops at the first bad batch and says where.
    pub(crate) fn scan(&self, file: &File, index_interval_bytes: u64) -> Result<ScanOutcome> {
        let len = file
            .metadata()
            .map_err(|e| StorageError::io("stat", &self.log_path, e))?
            .len();
        let mut reader = WindowReader::new(file, &self.log_path);
        let mut builder = IndexBuilder::new(index_interval_bytes);
        let mut indexes = Indexes::default();
        let mut position = 0u64;
        let mut next_offset = self.base_offset;
        let mut stop = None;
        while position < len {
            let stop_here = |reason: String| Some(Stop { position, reason });
            if len - position < BATCH_HEADER_SIZE as u64 {
                stop = stop_here("batch truncated at end of file".into());
                break;
            }
            let header = match BatchHeader::parse_header(reader.get(position, BATCH_HEADER_SIZE)?) {
                Ok(h) => h,
                Err(err) => {
                    stop = stop_here(err.to_string());
                    break;
                }
            };
            let size = header.total_size();
            if position + size as u64 > len {
                stop = stop_here("batch truncated at end of file".into());
                break;
            }
            if let Err(err) = header.verify_crc(reader.get(position, size)?) {
                stop = stop_here(err.to_string());
                break;
            }
            if let Some(bad) = self.check_sequence(&header, next_offset, position) {
                stop = Some(bad);
                break;
            }
            builder.on_batch(
                &mut indexes,
                self.relative(header.base_offset),
                position as u32,
                size as u64,
                header.max_timestamp,
            );
            next_offset = header.next_offset();
            position += size as u64;
        }
        Ok(ScanOutcome {
            valid_bytes: position,
            file_bytes: len,
            next_offset,
            builder,
            indexes,
            stop,
        })
    }

    /// Offsets must follow densely from batch to batch, starting at the segment's base offset, as
    /// appends assign them (`LOG-1`). (Compaction will allow gaps and must relax this.)
    fn check_sequence(
        &self,
        header: &BatchHeader,
        next_offset: i64,
        position: u64,
    ) -> Option<Stop> {
        let in_range = header.base_offset == next_offset
            && header.last_offset() - self.base_offset <= i64::from(u32::MAX);
        (!in_range).then(|| Stop {
            position,
            reason: format!(
                "batch base offset {} does not follow offset {} in a segment based at {}",
                header.base_offset,
                next_offset - 1,
                self.base_offset
            ),
        })
    }
}

/// Why reading a header at a position failed.
#[derive(Debug)]
pub(crate) enum HeaderReadError {
    Io(StorageError),
    Batch(BatchError),
}

/// Where and why a scan stopped before the end of the file.
#[derive(Debug, Clone)]
pub(crate) struct Stop {
    pub(crate) position: u64,
    pub(crate) reason: String,
}

/// Result of scanning a segment file.
#[derive(Debug)]
pub(crate) struct ScanOutcome {
    pub(crate) valid_bytes: u64,
    pub(crate) file_bytes: u64,
    pub(crate) next_offset: i64,
    pub(crate) builder: IndexBuilder,
    pub(crate) indexes: Indexes,
    pub(crate) stop: Option<Stop>,
}

/// Reads a file through a large window so scanning many small batches costs few syscalls.
struct WindowReader<'a> {
    file: &'a File,
    path: &'a Path,
    start: u64,
    buf: Vec<u8>,
}

impl<'a> WindowReader<'a> {
    const WINDOW_BYTES: usize = 4 << 20;

    fn new(file: &'a File, path: &'a Path) -> Self {
        WindowReader {
            file,
            path,
            start: 0,
            buf: Vec::new(),
        }
    }

    /// The `len` bytes at `position`, which the caller checked lie within the file.
    fn get(&mut self, position: u64, len: usize) -> Result<&[u8]> {
        let inside =
            position >= self.start && position + len as u64 <= self.start + self.buf.len() as u64;
        if !inside {
            let want = len.max(Self::WINDOW_BYTES);
            self.buf.resize(want, 0);
            let mut filled = 0;
            while filled < len {
                let n = self
                    .file
                    .read_at(&mut self.buf[filled..], position + filled as u64)
                    .map_err(|e| StorageError::io("read", self.path, e))?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            if filled < len {
                return Err(StorageError::io(
                    "read",
                    self.path,
                    std::io::Error::from(std::io::ErrorKind::UnexpectedEof),
                ));
            }
            self.buf.truncate(filled);
            self.start = position;
        }
        let at = (position - self.start) as usize;
        Ok(&self.buf[at..at + len])
    }
}
