//! The Raft log of the metadata quorum on disk: one append-only file of framed entries, plus
//! small files for the vote, the committed log id and the purge point, in the quorum's data
//! directory.
//!
//! Files (all frames are `[len: u32 BE][crc32c(payload): u32 BE][payload]`, payloads JSON):
//! - `log`: the 12-byte header `BASALTML` + version `u32 BE` (1), then one frame per entry, in
//!   index order.
//! - `vote`, `committed`, `purged`: one frame each, replaced atomically.
//! - `lock`: held with an exclusive file lock while the quorum runs.
//!
//! The log is small (a snapshot lets it be purged), so every entry is also kept in memory and
//! reads never touch the disk.
//!
//! # Contract
//! - `STORE-1`: `append`, `truncate_after`, `save_vote` and `purge` return (and `append`
//!   signals its callback) only after their bytes are fsynced; a small file is written to a
//!   temporary name, fsynced, renamed over the old one and the directory fsynced, so a crash
//!   leaves the old file or the new one, never a mix. `committed` is the one exception: it is
//!   only a hint that lets a restart re-apply committed entries before hearing from a leader
//!   (an older value is safe), so it is replaced by rename without an fsync on every commit,
//!   and a damaged one is read as absent.
//! - `STORE-2`: a failed write or fsync poisons the store: every later write fails, because
//!   after a failed fsync the state of the file is unknown and retrying could hide lost bytes.
//! - `STORE-3`: at open, a torn tail (a last frame cut short, or the last frame failing its
//!   CRC) is the only damage repaired, by truncating it; any other damage (a bad frame with
//!   data after it, entries out of sequence) is reported with the file and byte position.
//! - `STORE-4`: a purge records the purge point before rewriting the log without the purged
//!   entries, so a crash in between only leaves entries that open skips.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::ops::RangeBounds;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::types::{Entry, LogId, TypeConfig, Vote};

/// Largest frame written or accepted, in bytes.
pub const FRAME_BYTES_MAX: usize = 64 * 1024 * 1024;
const FRAME_HEADER_BYTES: usize = 8;
const LOG_MAGIC: &[u8; 8] = b"BASALTML";
const LOG_VERSION: u32 = 1;
const LOG_HEADER_BYTES: u64 = 12;

/// What went wrong opening or writing the metadata store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An I/O call failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The failure.
        source: io::Error,
    },
    /// A file holds something it should not (`STORE-3`).
    #[error("{path} is damaged at byte {position}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Where the damage starts.
        position: u64,
        /// What is wrong.
        reason: String,
    },
    /// Another quorum holds the directory.
    #[error("{path} is locked by another process")]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// An earlier write failed (`STORE-2`).
    #[error("the metadata log is poisoned by an earlier failed write")]
    Poisoned,
}

impl From<StoreError> for io::Error {
    fn from(e: StoreError) -> io::Error {
        let kind = match &e {
            StoreError::Io { source, .. } => source.kind(),
            StoreError::Corrupt { .. } => io::ErrorKind::InvalidData,
            StoreError::Locked { .. } => io::ErrorKind::WouldBlock,
            StoreError::Poisoned => io::ErrorKind::Other,
        };
        io::Error::new(kind, e.to_string())
    }
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Appends one frame holding `payload` to `out`.
pub(crate) fn encode_frame(payload: &[u8], out: &mut Vec<u8>) {
    assert!(
        payload.len() <= FRAME_BYTES_MAX,
        "frame of {} bytes",
        payload.len()
    );
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_be_bytes());
    out.extend_from_slice(payload);
}

/// How reading one frame at a position went.
enum FrameRead<'a> {
    /// A whole, valid frame and where the next one starts.
    Frame(&'a [u8], usize),
    /// The frame runs past the end of the data, or is the last one and fails its CRC.
    Torn(String),
    /// The frame is bad and data follows it.
    Corrupt(String),
}

fn read_frame(data: &[u8], pos: usize) -> FrameRead<'_> {
    let rest = &data[pos..];
    if rest.len() < FRAME_HEADER_BYTES {
        return FrameRead::Torn(format!("{} bytes of a frame header", rest.len()));
    }
    let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
    let crc = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]);
    let end = FRAME_HEADER_BYTES.saturating_add(len);
    if end > rest.len() {
        return FrameRead::Torn(format!(
            "a frame of {len} bytes with {} bytes left",
            rest.len() - FRAME_HEADER_BYTES
        ));
    }
    if len > FRAME_BYTES_MAX {
        return FrameRead::Corrupt(format!("a frame of {len} bytes"));
    }
    let payload = &rest[FRAME_HEADER_BYTES..end];
    if crc32c::crc32c(payload) != crc {
        let reason = "CRC mismatch".to_owned();
        return if end == rest.len() {
            FrameRead::Torn(reason)
        } else {
            FrameRead::Corrupt(reason)
        };
    }
    FrameRead::Frame(payload, pos + end)
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_at(dir))
}

/// Replaces `path` by a file of `frames`, atomically and durably (`STORE-1`).
pub(crate) fn write_file_atomic(path: &Path, frames: &[&[u8]]) -> Result<(), StoreError> {
    let mut buf = Vec::new();
    for f in frames {
        encode_frame(f, &mut buf);
    }
    write_raw_atomic(path, &buf)
}

/// Reads a file written by [`write_file_atomic`]: `None` if it does not exist.
pub(crate) fn read_file_frames(path: &Path) -> Result<Option<Vec<Vec<u8>>>, StoreError> {
    let data = match fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_at(path)(e)),
    };
    let mut frames = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        match read_frame(&data, pos) {
            FrameRead::Frame(payload, next) => {
                frames.push(payload.to_vec());
                pos = next;
            }
            // An atomically replaced file is never torn: any bad frame is damage.
            FrameRead::Torn(reason) | FrameRead::Corrupt(reason) => {
                return Err(StoreError::Corrupt {
                    path: path.to_owned(),
                    position: pos as u64,
                    reason,
                });
            }
        }
    }
    Ok(Some(frames))
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("metadata types serialize to JSON")
}

fn from_json<T: DeserializeOwned>(
    path: &Path,
    position: u64,
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        path: path.to_owned(),
        position,
        reason: format!("undecodable record: {e}"),
    })
}

fn read_one<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, StoreError> {
    match read_file_frames(path)? {
        None => Ok(None),
        Some(frames) if frames.len() == 1 => from_json(path, 0, &frames[0]).map(Some),
        Some(frames) => Err(StoreError::Corrupt {
            path: path.to_owned(),
            position: 0,
            reason: format!("{} records where one belongs", frames.len()),
        }),
    }
}

/// Creates `dir` if needed and takes the exclusive lock of its `lock` file; the lock lasts
/// as long as the returned file is open.
pub fn lock_dir(dir: &Path) -> Result<File, StoreError> {
    fs::create_dir_all(dir).map_err(io_at(dir))?;
    let path = dir.join("lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_at(&path))?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(_) => Err(StoreError::Locked { path }),
    }
}

/// What readers see: the entries and the saved vote, updated after each durable write.
#[derive(Debug, Default)]
struct Mem {
    entries: BTreeMap<u64, Entry>,
    vote: Option<Vote>,
    committed: Option<LogId>,
    purged: Option<LogId>,
}

/// The writer's side: the open log file and where each entry's frame starts.
#[derive(Debug)]
struct Files {
    dir: PathBuf,
    log: File,
    /// Length of the valid data in `log`.
    end: u64,
    /// Entry index → position of its frame in `log`.
    positions: BTreeMap<u64, u64>,
    poisoned: bool,
}

impl Files {
    fn log_path(&self) -> PathBuf {
        self.dir.join("log")
    }

    /// Runs a write; a failure poisons the store (`STORE-2`).
    fn write<T>(&mut self, f: impl FnOnce(&mut Files) -> Result<T, StoreError>) -> io::Result<T> {
        if self.poisoned {
            return Err(StoreError::Poisoned.into());
        }
        f(self).map_err(|e| {
            tracing::error!(error = %e, "metadata log write failed; the log is poisoned");
            self.poisoned = true;
            e.into()
        })
    }
}

/// The metadata quorum's Raft log and vote, on disk (`STORE-1..4`).
#[derive(Debug, Clone)]
pub struct LogStore {
    mem: Arc<RwLock<Mem>>,
    files: Arc<Mutex<Files>>,
}

impl LogStore {
    /// Opens (or creates) the store in `dir`, repairing a torn tail (`STORE-3`). The caller
    /// holds the directory's [`lock_dir`].
    pub fn open(dir: &Path) -> Result<LogStore, StoreError> {
        fs::create_dir_all(dir).map_err(io_at(dir))?;
        let vote: Option<Vote> = read_one(&dir.join("vote"))?;
        let committed: Option<LogId> = match read_one(&dir.join("committed")) {
            Ok(c) => c,
            Err(e @ StoreError::Corrupt { .. }) => {
                // STORE-1: the hint was not fsynced; without it a restart waits for a leader.
                tracing::warn!(error = %e, "ignoring a damaged committed log id");
                None
            }
            Err(e) => return Err(e),
        };
        let purged: Option<LogId> = read_one(&dir.join("purged"))?;
        let log_path = dir.join("log");
        if !log_path.exists() {
            let mut header = LOG_MAGIC.to_vec();
            header.extend_from_slice(&LOG_VERSION.to_be_bytes());
            write_raw_atomic(&log_path, &header)?;
        }
        let data = fs::read(&log_path).map_err(io_at(&log_path))?;
        let corrupt = |position: u64, reason: String| StoreError::Corrupt {
            path: log_path.clone(),
            position,
            reason,
        };
        if data.len() < LOG_HEADER_BYTES as usize || &data[..8] != LOG_MAGIC {
            return Err(corrupt(0, "not a metadata log (bad header)".into()));
        }
        let version = u32::from_be_bytes([data[8], data[9], data[10], data[11]]);
        if version != LOG_VERSION {
            return Err(corrupt(8, format!("unknown log version {version}")));
        }
        let mut entries = BTreeMap::new();
        let mut positions = BTreeMap::new();
        let mut pos = LOG_HEADER_BYTES as usize;
        let mut previous: Option<u64> = None;
        let mut torn = None;
        while pos < data.len() {
            match read_frame(&data, pos) {
                FrameRead::Frame(payload, next) => {
                    let entry: Entry = from_json(&log_path, pos as u64, payload)?;
                    let index = entry.index();
                    if previous.is_some_and(|p| p + 1 != index) {
                        return Err(corrupt(
                            pos as u64,
                            format!("entry {index} follows entry {previous:?}"),
                        ));
                    }
                    previous = Some(index);
                    if purged.as_ref().is_none_or(|p| index > p.index()) {
                        positions.insert(index, pos as u64);
                        entries.insert(index, entry);
                    }
                    pos = next;
                }
                FrameRead::Torn(reason) => {
                    torn = Some(reason);
                    break;
                }
                FrameRead::Corrupt(reason) => return Err(corrupt(pos as u64, reason)),
            }
        }
        let expected_first = purged.as_ref().map_or(0, |p| p.index() + 1);
        if let Some((&first, _)) = entries.first_key_value()
            && first != expected_first
        {
            return Err(corrupt(
                positions[&first],
                format!("the log starts at entry {first}, expected {expected_first}"),
            ));
        }
        let log = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&log_path)
            .map_err(io_at(&log_path))?;
        if let Some(reason) = torn {
            tracing::warn!(
                path = %log_path.display(),
                position = pos,
                reason,
                "truncating the torn tail of the metadata log"
            );
            log.set_len(pos as u64).map_err(io_at(&log_path))?;
            log.sync_all().map_err(io_at(&log_path))?;
        }
        tracing::debug!(
            dir = %dir.display(),
            entries = entries.len(),
            purged = ?purged,
            "metadata log opened"
        );
        Ok(LogStore {
            mem: Arc::new(RwLock::new(Mem {
                entries,
                vote,
                committed,
                purged,
            })),
            files: Arc::new(Mutex::new(Files {
                dir: dir.to_owned(),
                log,
                end: pos as u64,
                positions,
                poisoned: false,
            })),
        })
    }

    /// The committed log id saved before the last stop, if any.
    pub fn committed(&self) -> Option<LogId> {
        self.mem.read().committed
    }

    /// Index of the last entry (or of the purge point when the log is empty).
    fn last_index(mem: &Mem) -> Option<u64> {
        mem.entries
            .last_key_value()
            .map(|(i, _)| *i)
            .or(mem.purged.as_ref().map(|p| p.index()))
    }

    /// Runs `f` on the files off the async threads (fsync blocks).
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Files) -> Result<T, StoreError> + Send + 'static,
    ) -> io::Result<T> {
        let files = Arc::clone(&self.files);
        tokio::task::spawn_blocking(move || files.lock().write(f))
            .await
            .map_err(|e| io::Error::other(format!("metadata log writer stopped: {e}")))?
    }
}

/// The write of `entries` at the end of the log, encoded now and run on the writer thread.
fn append_now(
    entries: &[Entry],
) -> impl FnOnce(&mut Files) -> Result<(), StoreError> + Send + 'static {
    let mut buf = Vec::new();
    let mut sizes = Vec::with_capacity(entries.len());
    for e in entries {
        let before = buf.len();
        encode_frame(&to_json(e), &mut buf);
        sizes.push((e.index(), (buf.len() - before) as u64));
    }
    move |files: &mut Files| {
        let path = files.log_path();
        files
            .log
            .write_all_at(&buf, files.end)
            .map_err(io_at(&path))?;
        files.log.sync_data().map_err(io_at(&path))?;
        for (index, size) in sizes {
            files.positions.insert(index, files.end);
            files.end += size;
        }
        Ok(())
    }
}

fn write_raw_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp).map_err(io_at(&tmp))?;
    file.write_all(bytes).map_err(io_at(&tmp))?;
    file.sync_all().map_err(io_at(&tmp))?;
    fs::rename(&tmp, path).map_err(io_at(path))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let mem = self.mem.read();
        Ok(mem.entries.range(range).map(|(_, e)| e.clone()).collect())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        Ok(self.mem.read().vote)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let mem = self.mem.read();
        let last = mem
            .entries
            .last_key_value()
            .map(|(_, e)| e.log_id())
            .or_else(|| mem.purged);
        Ok(LogState {
            last_purged_log_id: mem.purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        let bytes = to_json(vote);
        self.blocking(move |files| write_file_atomic(&files.dir.join("vote"), &[&bytes]))
            .await?;
        self.mem.write().vote = Some(*vote);
        Ok(())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        let bytes = to_json(&committed);
        self.blocking(move |files| {
            let path = files.dir.join("committed");
            let tmp = path.with_extension("tmp");
            let mut buf = Vec::new();
            encode_frame(&bytes, &mut buf);
            fs::write(&tmp, &buf).map_err(io_at(&tmp))?;
            fs::rename(&tmp, &path).map_err(io_at(&path))
        })
        .await?;
        self.mem.write().committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(self.mem.read().committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let first = Self::last_index(&self.mem.read()).map_or(0, |i| i + 1);
        for (next, e) in (first..).zip(&entries) {
            if e.index() != next {
                let err = io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("append of entry {} where entry {next} is next", e.index()),
                );
                callback.io_completed(Err(io::Error::new(err.kind(), err.to_string())));
                return Err(err);
            }
        }
        let write = append_now(&entries);
        match self.blocking(write).await {
            Ok(()) => {
                let mut mem = self.mem.write();
                for e in entries {
                    mem.entries.insert(e.index(), e);
                }
                drop(mem);
                callback.io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.io_completed(Err(io::Error::new(e.kind(), e.to_string())));
                Err(e)
            }
        }
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let from = last_log_id.as_ref().map_or(0, |l| l.index() + 1);
        self.blocking(move |files| {
            let Some((_, &pos)) = files.positions.range(from..).next() else {
                return Ok(());
            };
            let path = files.log_path();
            files.log.set_len(pos).map_err(io_at(&path))?;
            files.log.sync_data().map_err(io_at(&path))?;
            files.end = pos;
            files.positions.retain(|i, _| *i < from);
            Ok(())
        })
        .await?;
        self.mem.write().entries.retain(|i, _| *i < from);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        let upto = log_id.index();
        let bytes = to_json(&log_id);
        self.blocking(move |files| {
            // STORE-4: the purge point first, then the log without the purged entries.
            write_file_atomic(&files.dir.join("purged"), &[&bytes])?;
            let path = files.log_path();
            let keep_from = files
                .positions
                .range(upto + 1..)
                .next()
                .map_or(files.end, |(_, p)| *p);
            if keep_from == LOG_HEADER_BYTES {
                return Ok(());
            }
            let mut tail = vec![0u8; (files.end - keep_from) as usize];
            files
                .log
                .read_exact_at(&mut tail, keep_from)
                .map_err(io_at(&path))?;
            let mut rewritten = LOG_MAGIC.to_vec();
            rewritten.extend_from_slice(&LOG_VERSION.to_be_bytes());
            rewritten.extend_from_slice(&tail);
            write_raw_atomic(&path, &rewritten)?;
            files.log = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(io_at(&path))?;
            let shift = keep_from - LOG_HEADER_BYTES;
            files.positions = files
                .positions
                .range(upto + 1..)
                .map(|(i, p)| (*i, p - shift))
                .collect();
            files.end -= shift;
            Ok(())
        })
        .await?;
        let mut mem = self.mem.write();
        mem.entries.retain(|i, _| *i > upto);
        mem.purged = Some(log_id);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
