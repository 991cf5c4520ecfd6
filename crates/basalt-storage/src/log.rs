//! One partition's log: an ordered list of segments, the newest of which takes appends.
//!
//! # Concurrency
//! Appends, rolls and close are serialised by the writer mutex; reads take the segment list's read
//! lock only long enough to clone an `Arc<Segment>`, and never take the writer mutex, so a reader
//! never waits for a write and a write never waits for a reader's I/O. Retention and DeleteRecords
//! are serialised by a maintenance mutex and remove segments from the list with a short write lock.
//! `truncate_to` and `reset_to` take both mutexes (writer first) and publish the new segment list,
//! offsets and aborted transactions under the list's write lock; a reader still holding a segment
//! they removed or replaced gets an error, a short read, or whole batches written there since,
//! and never panics; a sync request for such a segment moves no durable offset.
//!
//! # Invariants
//! - `LOG-1`: offsets are dense and in order: each appended batch's base offset is the previous
//!   batch's last offset + 1, starting at the log end offset. They are assigned here, except for
//!   replica appends (`append_replica`), whose batches keep the leader's offsets and are refused
//!   unless they continue the log exactly so.
//! - `LOG-2`: `log_start_offset <= durable_end_offset <= log_end_offset`. None decreases, except
//!   when recovery truncates a torn tail before the log is handed out, when `truncate_to` cuts the
//!   end (the log end and durable end drop to the cut; the log start too if the cut batch spans
//!   it), and when `reset_to` sets all three to its offset.
//! - `LOG-3`: the segment list is never empty; its last segment is the only unsealed one.
//! - `LOG-4`: a poisoned log (failed fsync, or a `truncate_to`/`reset_to` that failed part way)
//!   accepts no append; a damaged log serves no offset at or past the damage and accepts no
//!   append.
//! - `LOG-5`: the leader-epoch cache (`leader-epoch-checkpoint`) holds only entries within
//!   `[log_start_offset, log_end_offset]`, obeys `REP-1`, and is on disk (written atomically)
//!   before any batch stamped with a new epoch is written (for a replica append, every epoch its
//!   batches start, at their base offsets); a missing or damaged checkpoint is rebuilt from the
//!   batches' `partition_leader_epoch` at open. `truncate_to` and `reset_to` remove the checkpoint
//!   before they change any segment and write it again, truncated, afterwards, so a crash between
//!   rebuilds it from the batches that are left.
//! - `LOG-6`: the stored high watermark (`high-watermark`, advisory, never synced) is served
//!   clamped to `[log_start_offset, log_end_offset]`; `truncate_to` lowers it to the cut before
//!   cutting anything.

use std::fs;
use std::io::IoSlice;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Instant;

use basalt_record::{
    BATCH_HEADER_SIZE, BatchHeader, BatchIter, ControlType, RecordError, parse_control,
};
use bytes::Bytes;
use parking_lot::{Mutex, RwLock};

use crate::config::LogConfig;
use crate::epoch_cache::LeaderEpochCache;
use crate::error::{Damage, Result, StorageError};
use crate::flusher::{FlushMsg, SyncTicket};
use crate::index::{IndexBuilder, Indexes};
use crate::segment::{HeaderReadError, Segment, parse_log_name};
use crate::storage::Shared;
use crate::txnindex::{self, AbortedTxn};

const LOG_START_FILE: &str = "log-start-offset";
/// The advisory high-watermark checkpoint ([`Log::store_high_watermark`]).
const HIGH_WATERMARK_FILE: &str = "high-watermark";
/// The leader-epoch checkpoint, in Kafka's text format (see [`Log::leader_epochs`]).
pub const LEADER_EPOCH_FILE: &str = "leader-epoch-checkpoint";

/// One partition's log. Shared as `Arc<Log>`; all methods take `&self`.
#[derive(Debug)]
pub struct Log {
    name: String,
    dir: PathBuf,
    shared: Arc<Shared>,
    config: RwLock<LogConfig>,
    writer: Mutex<Writer>,
    maintenance: Mutex<()>,
    /// Held (write) by `truncate_to` and `reset_to` while they change files and the segment list,
    /// and (read) by every segment sync, so a sync never sees a segment half removed.
    reshaping: RwLock<()>,
    segments: RwLock<Vec<Arc<Segment>>>,
    /// Every aborted-transaction entry of every segment, by `(last_offset, producer_id)`
    /// (`TXN-1`); changed under the writer mutex (and the maintenance mutex for sealed segments).
    txns: RwLock<Vec<AbortedTxn>>,
    /// Leader epoch → first offset, mirrored in `LEADER_EPOCH_FILE` (`LOG-5`).
    epochs: Mutex<LeaderEpochCache>,
    log_start_offset: AtomicI64,
    log_end_offset: AtomicI64,
    durable_end_offset: AtomicI64,
    /// The high watermark stored in `HIGH_WATERMARK_FILE` (or loaded at open), kept within
    /// `[log_start_offset, log_end_offset]` when read.
    high_watermark: Mutex<i64>,
    damage: Mutex<Option<Damage>>,
    poisoned: AtomicBool,
    closed: AtomicBool,
    /// Set by an append under the interval policy until the background sync clears it.
    dirty: AtomicBool,
    /// The log's directory was created without syncing it (policies other than `always`).
    dir_sync_pending: AtomicBool,
    me: Weak<Log>,
}

#[derive(Debug)]
struct Writer {
    active: Arc<Segment>,
    builder: IndexBuilder,
    /// When the active segment took its first append (for `segment.ms`).
    first_append_ms: Option<i64>,
}

/// What an append did.
#[derive(Debug)]
pub struct Appended {
    /// Offset assigned to the first record.
    pub base_offset: i64,
    /// Offset of the last record.
    pub last_offset: i64,
    /// Headers of the appended batches, with their assigned base offsets.
    pub batches: Vec<BatchHeader>,
    /// Log start offset after the append.
    pub log_start_offset: i64,
    /// Completes when the append is durable under the log's fsync policy.
    pub durable: SyncTicket,
    /// Whether this append rolled to a new segment first (its batches open that segment).
    pub rolled: bool,
}

/// Bytes read from a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadResult {
    /// Whole batches, starting with the one that contains the requested offset; empty when
    /// nothing is available below the read's upper bound.
    pub records: Bytes,
    /// Offset after the last returned batch (the requested offset when nothing was returned).
    pub next_offset: i64,
    /// First offset the log holds.
    pub log_start_offset: i64,
    /// Next offset the log will assign.
    pub log_end_offset: i64,
}

/// Where the batches of a read are, left in their segment file: what a fetch sends with
/// `sendfile` instead of reading.
#[derive(Debug, Clone)]
pub struct FileRead {
    /// `len` bytes of whole batches at `position` of `file`, starting with the batch that
    /// contains the requested offset; `None` when nothing is available below the upper bound.
    pub region: Option<(Arc<std::fs::File>, u64, usize)>,
    /// Offset after the last batch in the region (the requested offset when there is none).
    pub next_offset: i64,
    /// First offset the log holds.
    pub log_start_offset: i64,
    /// Next offset the log will assign.
    pub log_end_offset: i64,
}

/// How an append treats its batches' base offsets and leader epochs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Producer batches: offsets are assigned from the log end (`LOG-1`), and every batch is
    /// stamped with the leader epoch when there is one.
    Assign { leader_epoch: Option<i32> },
    /// A follower's batches from its leader: kept as they are, and they must continue the log.
    Replica,
}

/// Where a read starts ([`Log::read_start`]).
struct ReadStart {
    log_start: i64,
    log_end: i64,
    /// The read's upper bound, capped at the log end.
    upper: i64,
    /// The batch containing the requested offset, when the read returns it.
    first: Option<FirstBatch>,
}

/// The first batch of a read and the segment it is in.
struct FirstBatch {
    seg: Arc<Segment>,
    idx: Arc<Indexes>,
    file: Arc<std::fs::File>,
    /// The segment's valid bytes when the read started.
    valid: u64,
    position: u64,
    header: BatchHeader,
}

/// What opening a log found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecoveryReport {
    /// The log's name.
    pub name: String,
    /// Whether the data directory was shut down cleanly (no scan needed).
    pub clean: bool,
    /// Segments found.
    pub segments: usize,
    /// Segments whose batches were read and checked.
    pub scanned_segments: usize,
    /// Bytes of a torn tail cut from the active segment.
    pub truncated_bytes: u64,
    /// Position of the cut, when there was one.
    pub truncated_at: Option<u64>,
    /// Damage found in the middle of the log, if any.
    pub damage: Option<Damage>,
    /// Offsets of the log after recovery.
    pub log_start_offset: i64,
    /// Next offset.
    pub log_end_offset: i64,
}

/// What retention removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetentionOutcome {
    /// Segments deleted.
    pub deleted_segments: usize,
    /// Bytes deleted.
    pub deleted_bytes: u64,
    /// Log start offset afterwards.
    pub log_start_offset: i64,
}

impl Log {
    /// Opens (or creates) the log in `dir`, recovering it as `clean` says (see the crate docs).
    pub(crate) fn open(
        name: &str,
        dir: PathBuf,
        config: LogConfig,
        shared: Arc<Shared>,
        clean: bool,
    ) -> Result<(Arc<Log>, RecoveryReport)> {
        let started = Instant::now();
        // Under `always` a new log's directory entries are durable before its first append is;
        // under the other policies they are synced with the first background sync or at close.
        let sync_now = config.fsync == crate::FsyncPolicy::Always;
        let created = !dir.exists();
        if created {
            fs::create_dir_all(&dir).map_err(|e| StorageError::io("create dir", &dir, e))?;
            if sync_now && let Some(parent) = dir.parent() {
                sync_dir(parent)?;
            }
        }
        let mut bases = Vec::new();
        let mut txn_bases = Vec::new();
        let mut index_files = Vec::new();
        let entries = if created {
            None
        } else {
            Some(fs::read_dir(&dir).map_err(|e| StorageError::io("read dir", &dir, e))?)
        };
        for entry in entries.into_iter().flatten() {
            let entry = entry.map_err(|e| StorageError::io("read dir", &dir, e))?;
            let file_name = entry.file_name();
            let Some(file_name) = file_name.to_str() else {
                continue;
            };
            if file_name.ends_with(".tmp") {
                let path = entry.path();
                fs::remove_file(&path).map_err(|e| StorageError::io("remove", &path, e))?;
            } else if let Some(base) = parse_log_name(file_name) {
                bases.push(base);
            } else if let Some(base) = txnindex::parse_name(file_name) {
                txn_bases.push(base);
            } else if let Some(base) = parse_index_name(file_name) {
                index_files.push((base, entry.path()));
            }
        }
        bases.sort_unstable();
        // Offset and time indexes whose segment is gone (deleted or truncated away just before a
        // crash): a later segment with the same base must not find them.
        for (base, path) in index_files {
            if bases.binary_search(&base).is_err()
                && let Err(e) = fs::remove_file(&path)
            {
                tracing::warn!(file = %path.display(), error = %e, "cannot remove orphaned index");
            }
        }
        // An aborted-transaction index whose segment is gone (deleted just before a crash).
        txn_bases.retain(|base| {
            if bases.binary_search(base).is_ok() {
                return true;
            }
            let path = dir.join(format!("{}{}", crate::segment::stem(*base), txnindex::SUFFIX));
            if let Err(e) = fs::remove_file(&path) {
                tracing::warn!(file = %path.display(), error = %e, "cannot remove orphaned aborted-transaction index");
            }
            false
        });
        let checkpoint = read_log_start(&dir)?;
        let mut report = RecoveryReport {
            name: name.to_owned(),
            clean,
            segments: bases.len(),
            ..RecoveryReport::default()
        };
        let fds = &shared.fds;
        let mut segments: Vec<Arc<Segment>> = Vec::with_capacity(bases.len().max(1));
        for (i, &base) in bases.iter().enumerate() {
            let segment = Segment::new(&dir, base, fds.allocate_id());
            if let Some(&next) = bases.get(i + 1) {
                let len = fs::metadata(&segment.log_path)
                    .map_err(|e| StorageError::io("stat", &segment.log_path, e))?
                    .len();
                segment.valid_bytes.store(len, Ordering::Release);
                segment.next_offset.store(next, Ordering::Release);
                segment.sealed.store(true, Ordering::Release);
            }
            segments.push(Arc::new(segment));
        }
        let active = match segments.pop() {
            Some(last) => last,
            None => {
                let base = checkpoint.unwrap_or(0).max(0);
                let segment = Arc::new(Segment::new(&dir, base, fds.allocate_id()));
                create_segment_file(&segment, fds)?;
                if sync_now {
                    sync_dir(&dir)?;
                }
                segment
            }
        };
        let dir_sync_pending = created && !sync_now;
        let mut scanned = false;
        let builder;
        let loaded = if created {
            // Nothing to recover in a log created just now.
            Some((Indexes::default(), 0, active.base_offset, -1))
        } else if clean {
            let len = fs::metadata(&active.log_path)
                .map_err(|e| StorageError::io("stat", &active.log_path, e))?
                .len();
            // A small active segment is closed without index files (see `close_inner`).
            let stored = Indexes::load(&active.index_path, &active.time_path, len).or_else(|| {
                (!active.index_path.exists() && !active.time_path.exists()).then(Indexes::default)
            });
            stored.and_then(|mut idx| {
                let (next_offset, max_timestamp) = walk_tail(&active, fds, &idx, len)?;
                idx.times.pop(); // the final entry; new entries follow the last sparse one
                Some((idx, len, next_offset, max_timestamp))
            })
        } else {
            None
        };
        match loaded {
            Some((idx, len, next_offset, max_timestamp)) => {
                builder = IndexBuilder::resume(config.index_interval_bytes, max_timestamp);
                active.valid_bytes.store(len, Ordering::Release);
                active.next_offset.store(next_offset, Ordering::Release);
                active.max_timestamp.store(max_timestamp, Ordering::Release);
                *active.live_indexes.write() = idx;
            }
            None => {
                scanned = true;
                report.scanned_segments += 1;
                let file = active.file(fds)?;
                let outcome = active.scan(&file, config.index_interval_bytes)?;
                let mut valid = outcome.valid_bytes;
                if let Some(stop) = &outcome.stop {
                    if is_torn_tail(
                        &active,
                        &file,
                        stop.position,
                        outcome.next_offset,
                        outcome.file_bytes,
                    ) {
                        tracing::warn!(
                            log = name,
                            segment = %active.log_path.display(),
                            position = stop.position,
                            bytes = outcome.file_bytes - stop.position,
                            reason = %stop.reason,
                            "truncating torn tail"
                        );
                        file.set_len(stop.position)
                            .map_err(|e| StorageError::io("truncate", &active.log_path, e))?;
                        report.truncated_bytes = outcome.file_bytes - stop.position;
                        report.truncated_at = Some(stop.position);
                    } else {
                        let damage =
                            active.damage(outcome.next_offset, stop.position, &stop.reason);
                        tracing::error!(log = name, damage = %damage, "log damaged");
                        report.damage = Some(damage);
                    }
                    valid = stop.position;
                }
                // Whatever survived a crash is made durable before it can be acknowledged again.
                file.sync_data()
                    .map_err(|e| StorageError::io("fdatasync", &active.log_path, e))?;
                builder = outcome.builder;
                active.valid_bytes.store(valid, Ordering::Release);
                active
                    .next_offset
                    .store(outcome.next_offset, Ordering::Release);
                active
                    .max_timestamp
                    .store(builder.max_timestamp(), Ordering::Release);
                *active.live_indexes.write() = outcome.indexes;
            }
        }
        let log_end = active.next_offset();
        let mut txns = Vec::new();
        for seg in segments
            .iter()
            .filter(|s| txn_bases.contains(&s.base_offset))
        {
            // Sealed segments' files were synced when they were sealed (`TXN-2`).
            txns.extend(txnindex::load(
                &seg.txn_path,
                seg.base_offset,
                seg.next_offset(),
                true,
                |_| true,
            ));
        }
        if txn_bases.contains(&active.base_offset) {
            // The active segment's file was written unsynced: after a crash, each entry must name
            // an ABORT marker of its producer in what the log kept (`TXN-3`). A damaged log takes
            // no writes and keeps its file as found.
            txns.extend(txnindex::load(
                &active.txn_path,
                active.base_offset,
                log_end,
                report.damage.is_none(),
                |txn| !scanned || is_abort_marker(&active, fds, txn),
            ));
        }
        segments.push(Arc::clone(&active));
        let first_base = segments.first().map_or(0, |s| s.base_offset);
        let log_start = checkpoint
            .unwrap_or(first_base)
            .max(first_base)
            .min(log_end);
        report.log_start_offset = log_start;
        report.log_end_offset = log_end;
        let high_watermark = read_high_watermark(&dir).unwrap_or(log_start);
        let log = Arc::new_cyclic(|me| Log {
            name: name.to_owned(),
            dir,
            shared,
            config: RwLock::new(config),
            writer: Mutex::new(Writer {
                active,
                builder,
                first_append_ms: None,
            }),
            maintenance: Mutex::new(()),
            reshaping: RwLock::new(()),
            segments: RwLock::new(segments),
            txns: RwLock::new(txns),
            epochs: Mutex::new(LeaderEpochCache::new()),
            log_start_offset: AtomicI64::new(log_start),
            log_end_offset: AtomicI64::new(log_end),
            durable_end_offset: AtomicI64::new(log_end),
            high_watermark: Mutex::new(high_watermark),
            damage: Mutex::new(report.damage.clone()),
            poisoned: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            dirty: AtomicBool::new(false),
            dir_sync_pending: AtomicBool::new(dir_sync_pending),
            me: me.clone(),
        });
        log.load_leader_epochs(created, report.damage.is_none());
        tracing::debug!(
            log = name,
            clean,
            segments = report.segments,
            log_start,
            log_end,
            elapsed_us = started.elapsed().as_micros() as u64,
            "opened log"
        );
        Ok((log, report))
    }

    /// The leader-epoch cache: each leader epoch whose batches the log holds and the offset of
    /// the first of them, as kept in `<dir>/leader-epoch-checkpoint` (`LOG-5`).
    pub fn leader_epochs(&self) -> LeaderEpochCache {
        self.epochs.lock().clone()
    }

    /// Records that `epoch` starts at `start_offset` (a node becoming leader records its epoch
    /// at its log end offset), rewriting the checkpoint if the cache changed (`LOG-5`).
    pub fn assign_leader_epoch(&self, epoch: i32, start_offset: i64) -> Result<()> {
        if epoch < 0 || start_offset < 0 {
            return Err(StorageError::InvalidLeaderEpoch { epoch });
        }
        // Unchanged (and not written) when `epoch` is the latest and starts at or before it.
        self.update_leader_epochs(|cache| {
            cache.assign(epoch, start_offset);
            Ok(())
        })
    }

    /// Changes the leader-epoch cache with `change`, writing the checkpoint (atomically) before
    /// the cache in memory changes, and only if it changed (`LOG-5`). An error from `change`
    /// leaves both as they were.
    fn update_leader_epochs(
        &self,
        change: impl FnOnce(&mut LeaderEpochCache) -> Result<()>,
    ) -> Result<()> {
        let mut epochs = self.epochs.lock();
        let mut changed = epochs.clone();
        change(&mut changed)?;
        if changed != *epochs {
            write_leader_epochs(&self.dir, &changed)?;
            *epochs = changed;
        }
        Ok(())
    }

    /// The log now starts at `start_offset`: the cache's start moves with it (`LOG-5`).
    fn move_leader_epochs_start(&self, start_offset: i64) -> Result<()> {
        self.update_leader_epochs(|cache| {
            cache.truncate_to_start(start_offset);
            Ok(())
        })
    }

    /// Loads the checkpoint at open; a missing or unreadable one is rebuilt from the batches'
    /// `partition_leader_epoch` and written again. Entries beyond the log's end (a torn tail cut
    /// off) or before its start are dropped (`LOG-5`).
    fn load_leader_epochs(&self, created: bool, undamaged: bool) {
        let path = self.dir.join(LEADER_EPOCH_FILE);
        let loaded = if created {
            Some(LeaderEpochCache::new())
        } else {
            match fs::read_to_string(&path) {
                Ok(text) => match parse_leader_epochs(&text) {
                    Ok(cache) => Some(cache),
                    Err(reason) => {
                        tracing::warn!(log = self.name, file = %path.display(), reason, "leader-epoch checkpoint is damaged; rebuilding it from the log");
                        None
                    }
                },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => {
                    tracing::warn!(log = self.name, file = %path.display(), error = %e, "cannot read the leader-epoch checkpoint; rebuilding it from the log");
                    None
                }
            }
        };
        let mut rewrite = false;
        let mut cache = match loaded {
            Some(cache) => cache,
            None => {
                rewrite = undamaged;
                let mut pairs = Vec::new();
                let walked = self.walk_batches(self.log_start_offset(), |_, _, _, h| {
                    pairs.push((h.partition_leader_epoch, h.base_offset));
                    Ok(())
                });
                if let Err(e) = walked {
                    tracing::warn!(log = self.name, error = %e, "cannot rebuild the leader-epoch cache from the log");
                    rewrite = false;
                }
                LeaderEpochCache::rebuild(pairs)
            }
        };
        let before = cache.clone();
        // An epoch starting at the log end (a leader elected that wrote nothing yet) is kept.
        cache.truncate_from(self.log_end_offset() + 1);
        cache.truncate_to_start(self.log_start_offset());
        rewrite |= cache != before && undamaged;
        if rewrite && let Err(e) = write_leader_epochs(&self.dir, &cache) {
            tracing::warn!(log = self.name, error = %e, "cannot write the leader-epoch checkpoint");
        }
        *self.epochs.lock() = cache;
    }

    /// The log's name (its directory name).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// First offset the log holds.
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset.load(Ordering::Acquire)
    }

    /// Next offset the log will assign.
    pub fn log_end_offset(&self) -> i64 {
        self.log_end_offset.load(Ordering::Acquire)
    }

    /// Offset below which every batch is durable under the fsync policy's promise: synced under
    /// `always` and `interval`; for `os`, what was synced at a roll or close.
    pub fn durable_end_offset(&self) -> i64 {
        self.durable_end_offset.load(Ordering::Acquire)
    }

    /// The log's settings.
    pub fn config(&self) -> LogConfig {
        self.config.read().clone()
    }

    /// Replaces the log's settings; they apply from the next append or retention pass.
    pub fn set_config(&self, config: LogConfig) {
        *self.config.write() = config;
    }

    /// Damage found in this log, if any.
    pub fn damage(&self) -> Option<Damage> {
        self.damage.lock().clone()
    }

    /// Total bytes of all segments.
    pub fn size_bytes(&self) -> u64 {
        self.segments.read().iter().map(|s| s.valid_bytes()).sum()
    }

    /// Number of segments.
    pub fn segment_count(&self) -> usize {
        self.segments.read().len()
    }

    /// Appends one or more producer batches (concatenated v2 batches, as in a produce request).
    ///
    /// Every batch is validated (framing, CRC, one offset per record) before anything is written;
    /// offsets are assigned by rewriting only each batch's base offset (`LOG-1`); the bytes are
    /// written with one vectored write, without copying the input. The returned ticket completes
    /// when the append is durable under the log's fsync policy.
    pub fn append(&self, batches: &[u8], now_ms: i64) -> Result<Appended> {
        self.append_inner(batches, Mode::Assign { leader_epoch: None }, now_ms)
    }

    /// Like [`Log::append`], and stamps every batch with `leader_epoch` (its
    /// `partition_leader_epoch`, outside the CRC), as a leader does; a new epoch is recorded at
    /// the log end offset in the leader-epoch checkpoint first (`LOG-5`).
    pub fn append_stamped(
        &self,
        batches: &[u8],
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<Appended> {
        self.append_inner(
            batches,
            Mode::Assign {
                leader_epoch: Some(leader_epoch),
            },
            now_ms,
        )
    }

    /// Appends batches fetched from the leader exactly as they are, as a follower does: their
    /// base offsets and `partition_leader_epoch` are kept and the input is written with one
    /// write (`LOG-1`).
    ///
    /// Before anything is written, every batch must parse with a valid CRC (control,
    /// transactional and compacted batches are all accepted), the first must start at the log end
    /// offset and each next one where the previous ends ([`StorageError::NotContiguous`]), and
    /// their leader epochs must be `>= 0`, never decrease, and not be below the latest epoch in
    /// the leader-epoch cache ([`StorageError::InvalidLeaderEpoch`]). Each batch that starts a new
    /// epoch is recorded at its base offset in the checkpoint before the bytes are written
    /// (`LOG-5`). Rolling, indexes and the fsync policy work as for [`Log::append`].
    pub fn append_replica(&self, batches: &[u8], now_ms: i64) -> Result<Appended> {
        self.append_inner(batches, Mode::Replica, now_ms)
    }

    /// Parses and checks `batches` as `mode` requires; nothing is written.
    fn validate_batches(batches: &[u8], mode: Mode) -> Result<Vec<BatchHeader>> {
        if let Mode::Assign {
            leader_epoch: Some(epoch),
        } = mode
            && epoch < 0
        {
            return Err(StorageError::InvalidLeaderEpoch { epoch });
        }
        let mut headers: Vec<BatchHeader> = Vec::new();
        let mut at = 0usize;
        while at < batches.len() {
            let bytes = &batches[at..];
            let invalid = |source| StorageError::InvalidBatch {
                position: at,
                source,
            };
            let header = match mode {
                Mode::Assign { .. } => BatchHeader::validate_produced(bytes).map_err(invalid)?,
                Mode::Replica => {
                    let header = BatchHeader::parse(bytes).map_err(invalid)?;
                    header.verify_crc(bytes).map_err(invalid)?;
                    if let Some(prev) = headers.last()
                        && header.base_offset != prev.next_offset()
                    {
                        return Err(StorageError::NotContiguous {
                            expected: prev.next_offset(),
                            found: header.base_offset,
                        });
                    }
                    header
                }
            };
            at += header.total_size();
            headers.push(header);
        }
        if headers.is_empty() {
            return Err(StorageError::EmptyAppend);
        }
        Ok(headers)
    }

    /// Checks that replica batches may follow `cache`: epochs `>= 0`, never decreasing, and not
    /// below the cache's latest.
    fn check_replica_epochs(cache: &LeaderEpochCache, headers: &[BatchHeader]) -> Result<()> {
        let mut latest = cache.latest_epoch().unwrap_or(0);
        for h in headers {
            let epoch = h.partition_leader_epoch;
            if epoch < 0 || epoch < latest {
                return Err(StorageError::InvalidLeaderEpoch { epoch });
            }
            latest = epoch;
        }
        Ok(())
    }

    fn append_inner(&self, batches: &[u8], mode: Mode, now_ms: i64) -> Result<Appended> {
        let mut headers = Self::validate_batches(batches, mode)?;
        let config = self.config();
        let limit = config.segment_limit();
        // A batch larger than a segment can never be stored; several batches of one append stay
        // together in one segment even if that takes the segment past its size.
        let largest = headers.iter().map(|h| h.total_size()).max().unwrap_or(0);
        if largest as u64 > limit || batches.len() as u64 > crate::SEGMENT_BYTES_LIMIT {
            return Err(StorageError::AppendTooLarge {
                size: largest.max(batches.len()),
                limit,
            });
        }

        let mut writer = self.writer.lock();
        self.check_writable()?;
        let log_end = self.log_end_offset();
        if mode == Mode::Replica {
            if headers[0].base_offset != log_end {
                return Err(StorageError::NotContiguous {
                    expected: log_end,
                    found: headers[0].base_offset,
                });
            }
            // Checked again when the epochs are recorded; here so a refusal writes nothing.
            Self::check_replica_epochs(&self.epochs.lock(), &headers)?;
        }
        let offsets: i64 = headers
            .iter()
            .map(|h| i64::from(h.last_offset_delta) + 1)
            .sum();
        let active_bytes = writer.active.valid_bytes();
        let too_old = writer
            .first_append_ms
            .is_some_and(|first| now_ms.saturating_sub(first) >= config.segment_age_ms_max);
        let offsets_overflow = log_end + offsets - writer.active.base_offset > i64::from(u32::MAX);
        let rolled = active_bytes > 0
            && (active_bytes + batches.len() as u64 > limit || too_old || offsets_overflow);
        if rolled {
            self.roll_locked(&mut writer)?;
        }
        let mut prefixes = Vec::new();
        let next = match mode {
            Mode::Assign { leader_epoch } => {
                if let Some(epoch) = leader_epoch {
                    self.assign_leader_epoch(epoch, log_end)?;
                }
                // Patch base offsets (and leader epochs) through separate 16-byte buffers holding
                // the base offset, batch length and leader epoch: the input stays untouched.
                prefixes.reserve(headers.len());
                let mut next = log_end;
                let mut at = 0usize;
                for header in &mut headers {
                    header.base_offset = next;
                    if let Some(epoch) = leader_epoch {
                        header.partition_leader_epoch = epoch;
                    }
                    let mut prefix = [0u8; 16];
                    prefix[..8].copy_from_slice(&next.to_be_bytes());
                    prefix[8..12].copy_from_slice(&batches[at + 8..at + 12]);
                    prefix[12..].copy_from_slice(&header.partition_leader_epoch.to_be_bytes());
                    prefixes.push(prefix);
                    next = header.next_offset();
                    at += header.total_size();
                }
                next
            }
            Mode::Replica => {
                // LOG-5: each new epoch is on disk before its batches are.
                self.update_leader_epochs(|cache| {
                    Self::check_replica_epochs(cache, &headers)?;
                    for h in &headers {
                        cache.assign(h.partition_leader_epoch, h.base_offset);
                    }
                    Ok(())
                })?;
                headers.last().map_or(log_end, BatchHeader::next_offset)
            }
        };
        let mut slices = Vec::with_capacity(headers.len() * 2);
        if prefixes.is_empty() {
            // Replica batches are written exactly as fetched.
            slices.push(IoSlice::new(batches));
        } else {
            let mut at = 0usize;
            for (header, prefix) in headers.iter().zip(&prefixes) {
                slices.push(IoSlice::new(prefix));
                slices.push(IoSlice::new(&batches[at + 16..at + header.total_size()]));
                at += header.total_size();
            }
        }
        let active = Arc::clone(&writer.active);
        let file = active.file(&self.shared.fds)?;
        let position = active.valid_bytes();
        if let Err(err) = write_all_vectored_at(&file, &mut slices, position) {
            // Nothing below valid_bytes changed; drop whatever part of the write landed.
            let _ = file.set_len(position);
            if mode == Mode::Replica {
                // Epochs recorded past the log end for batches that were not written go again
                // (one starting at the log end may stay, as for a leader that wrote nothing).
                let _ = self.update_leader_epochs(|cache| {
                    cache.truncate_from(log_end + 1);
                    Ok(())
                });
            }
            return Err(StorageError::io("write", &active.log_path, err));
        }

        let mut max_timestamp = active.max_timestamp.load(Ordering::Relaxed);
        {
            let mut idx = active.live_indexes.write();
            let mut pos = position;
            for header in &headers {
                writer.builder.on_batch(
                    &mut idx,
                    active.relative(header.base_offset),
                    pos as u32,
                    header.total_size() as u64,
                    header.max_timestamp,
                );
                max_timestamp = max_timestamp.max(header.max_timestamp);
                pos += header.total_size() as u64;
            }
        }
        writer.first_append_ms.get_or_insert(now_ms);
        active.max_timestamp.store(max_timestamp, Ordering::Release);
        active.next_offset.store(next, Ordering::Release);
        // SEG-1: publish the bytes only after they are completely written.
        active
            .valid_bytes
            .store(position + batches.len() as u64, Ordering::Release);
        self.log_end_offset.store(next, Ordering::Release);

        let durable = match config.fsync {
            crate::FsyncPolicy::Always => {
                let log = self.me.upgrade().ok_or_else(|| StorageError::Closed {
                    name: self.name.clone(),
                })?;
                let (ticket, msg) = SyncTicket::pending(log, active, next);
                self.shared.flush(msg);
                ticket
            }
            crate::FsyncPolicy::Interval { interval_ms } => {
                if !self.dirty.swap(true, Ordering::AcqRel) {
                    self.shared.flush(FlushMsg::Dirty {
                        log: self.me.clone(),
                        interval_ms,
                    });
                }
                SyncTicket::ready()
            }
            crate::FsyncPolicy::Os => SyncTicket::ready(),
        };
        drop(writer);
        Ok(Appended {
            base_offset: log_end,
            last_offset: next - 1,
            batches: headers,
            log_start_offset: self.log_start_offset(),
            durable,
            rolled,
        })
    }

    /// Reads whole batches starting with the one that contains `offset`, up to `max_bytes` (but
    /// always at least one whole batch), and only batches that start below `upper_offset` (for
    /// example the high watermark; it is capped at the log end offset).
    pub fn read(&self, offset: i64, max_bytes: usize, upper_offset: i64) -> Result<ReadResult> {
        self.read_inner(offset, max_bytes, upper_offset, true)
    }

    /// Like [`Log::read`], but returns nothing (not one oversized batch) when the first batch is
    /// larger than `max_bytes`: for a fetch's later partitions, which must stay within what is
    /// left of the request's budget.
    pub fn read_within(
        &self,
        offset: i64,
        max_bytes: usize,
        upper_offset: i64,
    ) -> Result<ReadResult> {
        self.read_inner(offset, max_bytes, upper_offset, false)
    }

    /// Like [`Log::read`] (or [`Log::read_within`] when `at_least_one` is false), but the
    /// batches stay in the segment file: the result says where they are. Finding the end reads
    /// batch headers only, jumping by the offset index, so the cost does not grow with the bytes
    /// returned. The open file keeps the bytes readable even if retention deletes the segment.
    pub fn read_file(
        &self,
        offset: i64,
        max_bytes: usize,
        upper_offset: i64,
        at_least_one: bool,
    ) -> Result<FileRead> {
        let start = self.read_start(offset, max_bytes, upper_offset, at_least_one)?;
        let Some(FirstBatch {
            seg,
            idx,
            file,
            valid,
            position,
            header,
        }) = start.first
        else {
            return Ok(FileRead {
                region: None,
                next_offset: offset,
                log_start_offset: start.log_start,
                log_end_offset: start.log_end,
            });
        };
        let upper = start.upper;
        let first = header.total_size();
        let limit = valid.min(position + max_bytes.max(first) as u64);
        let mut end = position + first as u64;
        let mut next_offset = header.next_offset();
        // Jump over whole batches by the index: every batch before an entry that lies within
        // the limit and below the upper bound belongs to the read.
        let reach = idx.offsets.partition_point(|e| {
            u64::from(e.position) <= limit && seg.base_offset + i64::from(e.relative_offset) < upper
        });
        if let Some(e) = reach.checked_sub(1).map(|i| idx.offsets[i])
            && u64::from(e.position) > end
        {
            end = u64::from(e.position);
            next_offset = seg.base_offset + i64::from(e.relative_offset);
        }
        while end < limit {
            let h = match self.header_at(&seg, &file, end, valid) {
                Ok(h) => h,
                // The batches before it are still served; the damage is recorded.
                Err(StorageError::Damaged(_)) => break,
                Err(e) => return Err(e),
            };
            if h.base_offset >= upper || end + h.total_size() as u64 > limit {
                break;
            }
            end += h.total_size() as u64;
            next_offset = h.next_offset();
        }
        if seg.valid_bytes() < end {
            // Cut or removed by a truncation while the region was found.
            return Err(self.truncated_away(&seg));
        }
        Ok(FileRead {
            region: Some((file, position, (end - position) as usize)),
            next_offset,
            log_start_offset: start.log_start,
            log_end_offset: start.log_end,
        })
    }

    fn read_inner(
        &self,
        offset: i64,
        max_bytes: usize,
        upper_offset: i64,
        at_least_one: bool,
    ) -> Result<ReadResult> {
        let start = self.read_start(offset, max_bytes, upper_offset, at_least_one)?;
        let Some(FirstBatch {
            seg,
            file,
            valid,
            position,
            header,
            ..
        }) = start.first
        else {
            return Ok(ReadResult {
                records: Bytes::new(),
                next_offset: offset,
                log_start_offset: start.log_start,
                log_end_offset: start.log_end,
            });
        };
        let upper = start.upper;
        let want = (valid - position).min(max_bytes.max(header.total_size()) as u64) as usize;
        let buf = seg.read_exact(&file, position, want)?;
        // A truncation may have cut or removed the segment since `valid` was read, and new
        // batches may be being written past the cut: only what it still holds is returned.
        let still_valid = seg.valid_bytes().saturating_sub(position);
        let mut end = 0usize;
        let mut next_offset = offset;
        for item in BatchIter::new(&buf) {
            match item {
                Ok((h, range)) if h.base_offset < upper && range.end as u64 <= still_valid => {
                    end = range.end;
                    next_offset = h.next_offset();
                }
                Ok(_) => break,
                Err(basalt_record::BatchError::Truncated { .. }) => break,
                Err(_) if end as u64 >= still_valid => break,
                Err(err) => {
                    let damage = self.damaged_at(&seg, position + end as u64, err.to_string());
                    if end == 0 {
                        return Err(damage);
                    }
                    break;
                }
            }
        }
        if end == 0 {
            return Err(self.truncated_away(&seg));
        }
        let mut records = Bytes::from(buf);
        records.truncate(end);
        Ok(ReadResult {
            records,
            next_offset,
            log_start_offset: start.log_start,
            log_end_offset: start.log_end,
        })
    }

    /// Where a read of `offset` starts, for [`Log::read`] and [`Log::read_file`] alike: the log's
    /// bounds, the read's upper bound (capped at the log end), and the batch that contains
    /// `offset` when it starts below that bound (and, unless `at_least_one`, fits `max_bytes`).
    fn read_start(
        &self,
        offset: i64,
        max_bytes: usize,
        upper_offset: i64,
        at_least_one: bool,
    ) -> Result<ReadStart> {
        let log_start = self.log_start_offset();
        let log_end = self.log_end_offset();
        if offset < log_start || offset > log_end {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start_offset: log_start,
                log_end_offset: log_end,
            });
        }
        self.check_readable(offset)?;
        let mut start = ReadStart {
            log_start,
            log_end,
            upper: upper_offset.min(log_end),
            first: None,
        };
        if offset >= start.upper {
            return Ok(start);
        }
        let interval = self.config.read().index_interval_bytes;
        let fds = &self.shared.fds;
        let mut segment = Some(self.floor_segment(offset));
        while let Some(seg) = segment.take() {
            let (idx, damage) = seg.indexes(fds, interval)?;
            if let Some(damage) = damage {
                self.mark_segment_damaged(&seg, damage);
            }
            let valid = seg.valid_bytes();
            let file = seg.file(fds).map_err(|e| self.gone_or(e, offset))?;
            let mut position = idx.position_for(seg.relative(offset), valid);
            while position < valid {
                let header = self.header_at(&seg, &file, position, valid)?;
                if header.last_offset() < offset {
                    position += header.total_size() as u64;
                    continue;
                }
                if header.base_offset < start.upper
                    && (at_least_one || header.total_size() <= max_bytes)
                {
                    start.first = Some(FirstBatch {
                        seg,
                        idx,
                        file,
                        valid,
                        position,
                        header,
                    });
                }
                return Ok(start);
            }
            segment = self.segment_after(seg.base_offset);
        }
        Ok(start)
    }

    /// The first batch whose max timestamp is `>= timestamp`, at or after the log start.
    pub fn find_by_timestamp(&self, timestamp: i64) -> Result<Option<BatchHeader>> {
        let interval = self.config.read().index_interval_bytes;
        let fds = &self.shared.fds;
        let log_start = self.log_start_offset();
        let segments = self.segments.read().clone();
        for seg in segments {
            if seg.next_offset() <= log_start {
                continue;
            }
            if seg.max_timestamp(fds, interval)? < timestamp {
                continue;
            }
            let (idx, damage) = seg.indexes(fds, interval)?;
            if let Some(damage) = damage {
                self.mark_segment_damaged(&seg, damage);
            }
            let valid = seg.valid_bytes();
            let file = seg.file(fds)?;
            let start = idx.scan_start_for_time(timestamp);
            let mut position = idx.position_for(start, valid);
            while position < valid {
                let header = self.header_at(&seg, &file, position, valid)?;
                if header.max_timestamp >= timestamp && header.last_offset() >= log_start {
                    return Ok(Some(header));
                }
                position += header.total_size() as u64;
            }
        }
        Ok(None)
    }

    /// Calls `f` with the header of every batch from the one containing `from_offset` to the end
    /// of the log, in order, reading headers only (for rebuilding producer state).
    pub fn for_each_batch_header(
        &self,
        from_offset: i64,
        mut f: impl FnMut(&BatchHeader),
    ) -> Result<()> {
        self.walk_batches(from_offset, |_, _, _, header| {
            f(header);
            Ok(())
        })
    }

    /// Like [`Log::for_each_batch_header`], and tells the transaction marker each control batch
    /// holds: `f` gets `Some(ControlType)` for an ABORT or COMMIT marker, `None` for every other
    /// batch. Only control batches are read beyond their header (they are tiny). A control batch
    /// whose CRC fails is damage; one whose record cannot be read as a marker is reported as
    /// `None` with a warning (it is what was appended).
    pub fn for_each_batch_control(
        &self,
        from_offset: i64,
        mut f: impl FnMut(&BatchHeader, Option<ControlType>),
    ) -> Result<()> {
        self.walk_batches(from_offset, |seg, file, position, header| {
            let control = if header.is_control() {
                let bytes = seg.read_exact(file, position, header.total_size())?;
                match parse_control(&bytes) {
                    Ok(control) => control,
                    Err(RecordError::Batch(err)) => {
                        return Err(self.damaged_at(seg, position, err.to_string()));
                    }
                    Err(err) => {
                        tracing::warn!(
                            log = %self.name,
                            offset = header.base_offset,
                            error = %err,
                            "control batch is not a readable transaction marker"
                        );
                        None
                    }
                }
            } else {
                None
            };
            f(header, control);
            Ok(())
        })
    }

    /// Walks every batch from the one containing `from_offset` to the end of the log, calling `f`
    /// with its segment, file, position and header.
    fn walk_batches(
        &self,
        from_offset: i64,
        mut f: impl FnMut(&Segment, &std::fs::File, u64, &BatchHeader) -> Result<()>,
    ) -> Result<()> {
        let interval = self.config.read().index_interval_bytes;
        let fds = &self.shared.fds;
        let from = from_offset.max(self.log_start_offset());
        let mut segment = Some(self.floor_segment(from));
        while let Some(seg) = segment.take() {
            let (idx, damage) = seg.indexes(fds, interval)?;
            if let Some(damage) = damage {
                self.mark_segment_damaged(&seg, damage);
            }
            let valid = seg.valid_bytes();
            let file = seg.file(fds)?;
            let mut position = idx.position_for(seg.relative(from), valid);
            while position < valid {
                let header = self.header_at(&seg, &file, position, valid)?;
                if header.last_offset() >= from {
                    f(&seg, &file, position, &header)?;
                }
                position += header.total_size() as u64;
            }
            segment = self.segment_after(seg.base_offset);
        }
        Ok(())
    }

    /// Records an aborted transaction whose ABORT marker the caller appended at
    /// `txn.last_offset`, in memory and in the `.txnindex` of the segment holding that offset.
    ///
    /// Idempotent: an entry with the same producer id and last offset is not added again (the
    /// layer above re-adds entries it finds while rebuilding its state after a crash). Refuses an
    /// entry with `first_offset < 0`, `first_offset > last_offset`, or a last offset outside
    /// `[log_start_offset, log_end_offset)`. Entries of the active segment are written without a
    /// sync (synced when it is sealed or closed); one that lands in a sealed segment is synced
    /// before this returns (`TXN-2`).
    pub fn append_aborted_txn(&self, txn: AbortedTxn) -> Result<()> {
        let _writer = self.writer.lock();
        self.check_writable()?;
        let misfit = || StorageError::InvalidAbortedTxn {
            producer_id: txn.producer_id,
            first_offset: txn.first_offset,
            last_offset: txn.last_offset,
            log_start_offset: self.log_start_offset(),
            log_end_offset: self.log_end_offset(),
        };
        let fits = |txn: &AbortedTxn| {
            0 <= txn.first_offset
                && txn.first_offset <= txn.last_offset
                && self.log_start_offset() <= txn.last_offset
                && txn.last_offset < self.log_end_offset()
        };
        if !fits(&txn) {
            return Err(misfit());
        }
        let segment = self.floor_segment(txn.last_offset);
        let sealed = segment.is_sealed();
        // Retention removes sealed segments under the maintenance mutex; hold it so this one stays.
        let _maintenance = sealed.then(|| self.maintenance.lock());
        if sealed
            && !(fits(&txn)
                && self
                    .segments
                    .read()
                    .iter()
                    .any(|s| Arc::ptr_eq(s, &segment)))
        {
            return Err(misfit());
        }
        let mut txns = self.txns.write();
        let at = txns.partition_point(|t| t.key() < txn.key());
        if txns.get(at).is_some_and(|t| t.key() == txn.key()) {
            return Ok(());
        }
        let seg_end = if sealed {
            segment.next_offset()
        } else {
            i64::MAX
        };
        let first = txns.partition_point(|t| t.last_offset < segment.base_offset);
        let end = txns.partition_point(|t| t.last_offset < seg_end);
        let created = if at == end {
            txnindex::write_entry(&segment.txn_path, end - first, &txn)?
        } else {
            // Sorts before entries already stored: rewrite the file in order (`TXN-1`).
            let mut entries = txns[first..end].to_vec();
            entries.insert(at - first, txn);
            txnindex::rewrite(&segment.txn_path, &entries, sealed)?;
            true
        };
        if sealed {
            if let Err(err) = txnindex::sync(&segment.txn_path) {
                self.poison(&err);
                return Err(StorageError::io("fdatasync", &segment.txn_path, err));
            }
            if created {
                sync_dir(&self.dir)?;
            }
        } else {
            segment.txn_unsynced.store(true, Ordering::Release);
        }
        txns.insert(at, txn);
        Ok(())
    }

    /// Every aborted transaction with `last_offset >= from_offset` and
    /// `first_offset < upper_offset`, ordered by last offset: the aborted transactions a
    /// read_committed fetch of `[from_offset, upper_offset)` returns. Served from memory; the
    /// walk stops at the first entry whose last stable offset reaches `upper_offset` (every later
    /// transaction started at or after it), so a fetch reads only the entries near its range.
    pub fn aborted_txns(&self, from_offset: i64, upper_offset: i64) -> Vec<AbortedTxn> {
        let txns = self.txns.read();
        let start = txns.partition_point(|t| t.last_offset < from_offset);
        let mut out = Vec::new();
        for t in &txns[start..] {
            if t.first_offset < upper_offset {
                out.push(*t);
            }
            // Every transaction aborted after this one started at or after its last stable
            // offset, so none of them can start below `upper_offset` any more (Kafka's stop).
            if t.last_stable_offset >= upper_offset {
                break;
            }
        }
        out
    }

    /// The largest batch max timestamp in the log and the batch that holds it (for ListOffsets
    /// `MAX_TIMESTAMP`); `None` when the log is empty.
    pub fn max_timestamp(&self) -> Result<Option<BatchHeader>> {
        let interval = self.config.read().index_interval_bytes;
        let fds = &self.shared.fds;
        let segments = self.segments.read().clone();
        let mut best: Option<(i64, Arc<Segment>)> = None;
        for seg in segments {
            let ts = seg.max_timestamp(fds, interval)?;
            if seg.valid_bytes() > 0 && best.as_ref().is_none_or(|(b, _)| ts > *b) {
                best = Some((ts, seg));
            }
        }
        let Some((ts, _)) = best else {
            return Ok(None);
        };
        self.find_by_timestamp(ts)
    }

    /// Deletes closed segments past `retention.ms` or beyond `retention.bytes`, and those wholly
    /// below the log start offset. The active segment is never deleted.
    pub fn enforce_retention(&self, now_ms: i64) -> Result<RetentionOutcome> {
        let _maintenance = self.maintenance.lock();
        let config = self.config();
        let fds = &self.shared.fds;
        let segments = self.segments.read().clone();
        let mut total: u64 = segments.iter().map(|s| s.valid_bytes()).sum();
        let log_start = self.log_start_offset();
        let mut doomed = 0usize;
        for seg in segments.iter().filter(|s| s.is_sealed()) {
            let size = seg.valid_bytes();
            let below_start = seg.next_offset() <= log_start;
            let expired = config.retention_ms >= 0
                && seg.max_timestamp(fds, config.index_interval_bytes)?
                    < now_ms.saturating_sub(config.retention_ms);
            let oversize =
                config.retention_bytes >= 0 && total - size >= config.retention_bytes as u64;
            if !(below_start || expired || oversize) {
                break;
            }
            total -= size;
            doomed += 1;
        }
        self.delete_oldest(doomed)
    }

    /// Moves the log start offset forward to `offset` (DeleteRecords), persisting it, and deletes
    /// the segments that fall wholly below it. Never rewrites files.
    pub fn delete_records(&self, offset: i64) -> Result<i64> {
        let _maintenance = self.maintenance.lock();
        let log_end = self.log_end_offset();
        let current = self.log_start_offset();
        if offset > log_end || offset < 0 {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start_offset: current,
                log_end_offset: log_end,
            });
        }
        if offset <= current {
            return Ok(current);
        }
        self.write_log_start(offset)?;
        self.log_start_offset.fetch_max(offset, Ordering::AcqRel);
        self.move_leader_epochs_start(self.log_start_offset())?;
        let segments = self.segments.read().clone();
        let doomed = segments
            .iter()
            .take_while(|s| s.is_sealed() && s.next_offset() <= offset)
            .count();
        drop(segments);
        self.delete_oldest(doomed)?;
        Ok(self.log_start_offset())
    }

    /// Removes every batch whose last offset is `>= offset`, as a follower cuts the divergent end
    /// of its log (Kafka's `truncateTo`; a batch spanning `offset` goes whole), and returns the
    /// new log end offset (`<= offset`). Nothing changes when `offset >= log_end_offset`;
    /// `offset < log_start_offset` is [`StorageError::OffsetOutOfRange`]. When the batch that
    /// spans `offset` starts below the log start offset, the log start moves down to the new end
    /// (the log is then empty).
    ///
    /// Segments wholly at or past the cut are deleted, the segment holding it is cut at the batch
    /// boundary, synced, and becomes the active segment; aborted transactions, leader epochs
    /// (`LOG-5`) and the stored high watermark past the new end go, on disk too. Everything kept
    /// is durable afterwards. Refuses a closed, poisoned or damaged log. A crash inside leaves a
    /// log that opens cleanly with or without the removed tail; a failure inside poisons the log
    /// (`LOG-4`) until it is opened again.
    pub fn truncate_to(&self, offset: i64) -> Result<i64> {
        let mut writer = self.writer.lock();
        let _maintenance = self.maintenance.lock();
        self.check_writable()?;
        let log_start = self.log_start_offset();
        let log_end = self.log_end_offset();
        if offset < log_start {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start_offset: log_start,
                log_end_offset: log_end,
            });
        }
        if offset >= log_end {
            return Ok(log_end);
        }
        let (cut, position, new_end) = self.find_cut(offset)?;
        let _reshaping = self.reshaping.write();
        let result = self.truncate_locked(&mut writer, &cut, position, new_end);
        if let Err(err) = &result {
            self.fail_stop("truncate", err);
        }
        let new_end = result?;
        tracing::info!(log = %self.name, offset, log_end_offset = new_end, "truncated log");
        Ok(new_end)
    }

    /// The segment holding `offset`, and the position and base offset of the batch that holds it.
    fn find_cut(&self, offset: i64) -> Result<(Arc<Segment>, u64, i64)> {
        let interval = self.config.read().index_interval_bytes;
        let fds = &self.shared.fds;
        let seg = self.floor_segment(offset);
        let (idx, damage) = seg.indexes(fds, interval)?;
        if let Some(damage) = damage {
            self.mark_damaged(damage.clone());
            return Err(StorageError::Damaged(damage));
        }
        let valid = seg.valid_bytes();
        let file = seg.file(fds)?;
        let mut position = idx.position_for(seg.relative(offset), valid);
        while position < valid {
            let h = self.header_at(&seg, &file, position, valid)?;
            if h.last_offset() >= offset {
                if h.base_offset < seg.base_offset || h.base_offset > offset {
                    break;
                }
                return Ok((seg, position, h.base_offset));
            }
            position += h.total_size() as u64;
        }
        Err(self.damaged_at(&seg, position, format!("no batch holds offset {offset}")))
    }

    /// The steps of [`Log::truncate_to`], in an order that keeps the directory a valid log after
    /// a crash at any point: the epoch checkpoint goes first (rebuilt from the batches if the
    /// crash comes before it is written again), then the segments past the cut, newest first,
    /// then the cut, then the aborted-transaction index (opening drops entries past the log end).
    fn truncate_locked(
        &self,
        writer: &mut Writer,
        cut: &Arc<Segment>,
        position: u64,
        new_end: i64,
    ) -> Result<i64> {
        let fds = &self.shared.fds;
        let interval = self.config.read().index_interval_bytes;
        let log_start = self.log_start_offset();
        // A lower high watermark is always safe to store first.
        self.clamp_high_watermark(new_end);
        self.sync_new_dir()?;
        remove_if_present(&self.dir.join(LEADER_EPOCH_FILE))?;
        let segments = self.segments.read().clone();
        let k = segments
            .iter()
            .position(|s| Arc::ptr_eq(s, cut))
            .ok_or_else(|| StorageError::Closed {
                name: self.name.clone(),
            })?;
        for seg in segments[k + 1..].iter().rev() {
            remove_segment_files(fds, seg)?;
        }
        sync_dir(&self.dir)?;

        let file = cut.file(fds)?;
        file.set_len(position)
            .map_err(|e| StorageError::io("truncate", &cut.log_path, e))?;
        if let Err(err) = file.sync_data() {
            self.poison(&err);
            return Err(StorageError::io("fdatasync", &cut.log_path, err));
        }
        // Stale once cut; sealing or closing writes them again.
        remove_if_present(&cut.index_path)?;
        remove_if_present(&cut.time_path)?;
        // A new segment value (and file id): readers and sync requests holding the old one keep
        // its old bounds, never the new ones (see `sync_segment`).
        let segment = Arc::new(Segment::new(&self.dir, cut.base_offset, fds.allocate_id()));
        fds.evict(cut.file_id);
        fds.insert(segment.file_id, Arc::clone(&file));
        let outcome = segment.scan(&file, interval)?;
        let damage = outcome
            .stop
            .as_ref()
            .map(|stop| segment.damage(outcome.next_offset, stop.position, &stop.reason));
        let new_end = outcome.next_offset.min(new_end);
        segment
            .valid_bytes
            .store(outcome.valid_bytes, Ordering::Release);
        segment.next_offset.store(new_end, Ordering::Release);
        segment
            .max_timestamp
            .store(outcome.builder.max_timestamp(), Ordering::Release);
        *segment.live_indexes.write() = outcome.indexes;

        let kept: Vec<AbortedTxn> = self
            .txns
            .read()
            .iter()
            .filter(|t| t.last_offset >= cut.base_offset && t.last_offset < new_end)
            .copied()
            .collect();
        if kept.is_empty() {
            remove_if_present(&cut.txn_path)?;
        } else {
            txnindex::rewrite(&cut.txn_path, &kept, true)?;
        }
        sync_dir(&self.dir)?;

        let new_start = log_start.min(new_end);
        {
            let mut list = self.segments.write();
            list.truncate(k);
            list.push(Arc::clone(&segment));
            let mut txns = self.txns.write();
            let keep = txns.partition_point(|t| t.last_offset < new_end);
            txns.truncate(keep);
            if new_start < log_start {
                self.log_start_offset.store(new_start, Ordering::Release);
            }
            self.log_end_offset.store(new_end, Ordering::Release);
            // Every batch kept is synced: sealed segments at their roll, this one just now.
            self.durable_end_offset.store(new_end, Ordering::Release);
            // Readers still holding the old values see them end at the cut (`SEG-1`), and never
            // rebuild (and store) indexes from a file that is now another segment's.
            cut.valid_bytes.fetch_min(position, Ordering::AcqRel);
            let _ = cut.sealed_indexes.set(Arc::new(Indexes::default()));
            for seg in &segments[k + 1..] {
                retire(seg);
            }
        }
        writer.active = segment;
        writer.builder = outcome.builder;
        writer.first_append_ms = None;
        if let Some(damage) = damage {
            self.mark_damaged(damage);
        }
        if new_start < log_start {
            self.write_log_start(new_start)?;
        }
        {
            let mut epochs = self.epochs.lock();
            let mut changed = epochs.clone();
            changed.truncate_from(new_end);
            write_leader_epochs(&self.dir, &changed)?;
            *epochs = changed;
        }
        Ok(new_end)
    }

    /// Deletes every segment, index, aborted transaction and leader epoch and starts the log
    /// again, empty, at `offset` (Kafka's `truncateFullyAndStartAt`, for a follower whose leader's
    /// log starts past its own end): log start, log end and durable end are all `offset`, and the
    /// log start offset is persisted as [`Log::delete_records`] does. Clears damage; refuses a
    /// closed or poisoned log and a negative offset. A crash inside leaves either a prefix of the
    /// old log or the new empty one; a failure inside poisons the log until it is opened again.
    pub fn reset_to(&self, offset: i64) -> Result<()> {
        let mut writer = self.writer.lock();
        let _maintenance = self.maintenance.lock();
        if self.closed.load(Ordering::Acquire) {
            return Err(StorageError::Closed {
                name: self.name.clone(),
            });
        }
        if self.poisoned.load(Ordering::Acquire) {
            return Err(StorageError::Poisoned {
                name: self.name.clone(),
            });
        }
        if offset < 0 {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start_offset: self.log_start_offset(),
                log_end_offset: self.log_end_offset(),
            });
        }
        let _reshaping = self.reshaping.write();
        let result = self.reset_locked(&mut writer, offset);
        if let Err(err) = &result {
            self.fail_stop("reset", err);
        }
        result?;
        tracing::info!(log = %self.name, offset, "reset log");
        Ok(())
    }

    /// The steps of [`Log::reset_to`]: the epoch checkpoint goes first (a crash before it is
    /// written again rebuilds it from what is left), then the segments, newest first, then the
    /// new log start is stored and the new segment created.
    fn reset_locked(&self, writer: &mut Writer, offset: i64) -> Result<()> {
        let fds = &self.shared.fds;
        self.sync_new_dir()?;
        remove_if_present(&self.dir.join(LEADER_EPOCH_FILE))?;
        let segments = self.segments.read().clone();
        for seg in segments.iter().rev() {
            remove_segment_files(fds, seg)?;
        }
        sync_dir(&self.dir)?;
        self.write_log_start(offset)?;
        let segment = Arc::new(Segment::new(&self.dir, offset, fds.allocate_id()));
        create_segment_file(&segment, fds)?;
        sync_dir(&self.dir)?;
        {
            let mut list = self.segments.write();
            for seg in list.iter() {
                retire(seg);
            }
            *list = vec![Arc::clone(&segment)];
            self.txns.write().clear();
            self.log_end_offset.store(offset, Ordering::Release);
            self.log_start_offset.store(offset, Ordering::Release);
            self.durable_end_offset.store(offset, Ordering::Release);
            *self.damage.lock() = None;
        }
        writer.active = segment;
        writer.builder = IndexBuilder::new(self.config.read().index_interval_bytes);
        writer.first_append_ms = None;
        {
            let mut epochs = self.epochs.lock();
            let empty = LeaderEpochCache::new();
            write_leader_epochs(&self.dir, &empty)?;
            *epochs = empty;
        }
        let mut hw = self.high_watermark.lock();
        *hw = offset;
        self.write_high_watermark(offset);
        Ok(())
    }

    /// Persists the log start offset (atomically, synced), as DeleteRecords does.
    fn write_log_start(&self, offset: i64) -> Result<()> {
        crate::index::write_atomically(
            &self.dir.join(LOG_START_FILE),
            offset.to_string().as_bytes(),
            true,
        )?;
        sync_dir(&self.dir)
    }

    /// A truncation or reset failed part way: the files and the state in memory may disagree,
    /// so the log takes no more writes until it is opened again (`LOG-4`), which recovers it.
    fn fail_stop(&self, what: &'static str, err: &StorageError) {
        if !self.poisoned.swap(true, Ordering::AcqRel) {
            tracing::error!(log = %self.name, error = %err, what, "log changed part way; refusing writes until reopened");
        }
    }

    /// Stores `high_watermark` in `<dir>/high-watermark` (temporary file and rename, not synced:
    /// it is advisory) for [`Log::stored_high_watermark`] to return, now and after a reopen.
    pub fn store_high_watermark(&self, high_watermark: i64) -> Result<()> {
        let mut hw = self.high_watermark.lock();
        crate::index::write_atomically(
            &self.dir.join(HIGH_WATERMARK_FILE),
            high_watermark.to_string().as_bytes(),
            false,
        )?;
        *hw = high_watermark;
        Ok(())
    }

    /// The high watermark last stored, or loaded at open, within
    /// `[log_start_offset, log_end_offset]`; the log start offset when none was stored or the file
    /// is unreadable. Never fails.
    pub fn stored_high_watermark(&self) -> i64 {
        let start = self.log_start_offset();
        let end = self.log_end_offset().max(start);
        (*self.high_watermark.lock()).clamp(start, end)
    }

    /// Lowers the stored high watermark to `end` if it is above (truncation), in memory and, as
    /// far as possible, on disk.
    fn clamp_high_watermark(&self, end: i64) {
        let mut hw = self.high_watermark.lock();
        if *hw > end {
            *hw = end;
            self.write_high_watermark(end);
        }
    }

    /// Writes the high-watermark file, warning on failure (it is advisory).
    fn write_high_watermark(&self, hw: i64) {
        let path = self.dir.join(HIGH_WATERMARK_FILE);
        if let Err(e) = crate::index::write_atomically(&path, hw.to_string().as_bytes(), false) {
            tracing::warn!(log = %self.name, error = %e, "cannot store the high watermark");
        }
    }

    /// Syncs the active segment now, whatever the policy.
    pub fn flush(&self) -> Result<()> {
        let writer = self.writer.lock();
        let end = self.log_end_offset();
        self.dirty.store(false, Ordering::Release);
        let active = Arc::clone(&writer.active);
        drop(writer);
        self.sync_new_dir()?;
        self.sync_segment(&active, end)
    }

    fn sync_new_dir(&self) -> Result<()> {
        if self.dir_sync_pending.swap(false, Ordering::AcqRel) {
            sync_dir(&self.dir)?;
            if let Some(parent) = self.dir.parent() {
                sync_dir(parent)?;
            }
        }
        Ok(())
    }

    /// Forces a roll to a new segment (for tests and operators).
    pub fn roll(&self) -> Result<()> {
        let mut writer = self.writer.lock();
        self.check_writable()?;
        if writer.active.valid_bytes() == 0 {
            return Ok(());
        }
        self.roll_locked(&mut writer)
    }

    /// Syncs and stores the active segment's indexes, then refuses further use. Idempotent.
    pub fn close(&self) -> Result<()> {
        self.close_inner(true)
    }

    /// Closes the log; with `sync` unset, writes without syncing, for a caller that syncs the
    /// whole filesystem afterwards (a data directory closing thousands of logs at once).
    pub(crate) fn close_inner(&self, sync: bool) -> Result<()> {
        let writer = self.writer.lock();
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let active = &writer.active;
        let fds = &self.shared.fds;
        if !self.poisoned.load(Ordering::Acquire) {
            if sync {
                let file = active.file(fds)?;
                file.sync_data()
                    .map_err(|e| StorageError::io("fdatasync", &active.log_path, e))?;
                if active.txn_unsynced.swap(false, Ordering::AcqRel) {
                    txnindex::sync(&active.txn_path)
                        .map_err(|e| StorageError::io("fdatasync", &active.txn_path, e))?;
                }
            }
            if self.damage.lock().is_none() {
                let idx = active.live_indexes.read();
                if idx.offsets.is_empty() {
                    // Small enough to walk at open: no index files to write (thousands of small
                    // partitions close quickly), and none stale to trust.
                    remove_if_present(&active.index_path)?;
                    remove_if_present(&active.time_path)?;
                } else {
                    let stored = writer
                        .builder
                        .finished(&idx, active.relative(active.next_offset()));
                    stored.write_files(&active.index_path, &active.time_path, sync)?;
                }
            }
            if sync {
                sync_dir(&self.dir)?;
                self.sync_new_dir()?;
            }
            self.durable_end_offset
                .fetch_max(self.log_end_offset(), Ordering::AcqRel);
        }
        for seg in self.segments.read().iter() {
            fds.evict(seg.file_id);
        }
        Ok(())
    }

    /// Whether the log was closed.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Syncs `segment` and marks the log durable up to `end_offset`. A segment no longer in the
    /// log is not synced and moves nothing: retention deletes only sealed segments, synced when
    /// they were sealed, and `truncate_to`/`reset_to` synced what they kept of a segment they
    /// replaced, whose old end offsets may name offsets written again since.
    pub(crate) fn sync_segment(&self, segment: &Segment, end_offset: i64) -> Result<()> {
        // A truncation cannot come between the check and the mark.
        let _reshaping = self.reshaping.read();
        if !holds(&self.segments.read(), segment) {
            return Ok(());
        }
        let file = segment.file(&self.shared.fds)?;
        if let Err(err) = file.sync_data() {
            self.poison(&err);
            return Err(StorageError::io("fdatasync", &segment.log_path, err));
        }
        self.durable_end_offset
            .fetch_max(end_offset, Ordering::AcqRel);
        Ok(())
    }

    /// Marks the log unusable for writes after a failed fsync (`LOG-4`).
    pub(crate) fn poison(&self, err: &std::io::Error) {
        if !self.poisoned.swap(true, Ordering::AcqRel) {
            tracing::error!(log = %self.name, error = %err, "fsync failed; log poisoned");
        }
    }

    pub(crate) fn mark_durable(&self, end_offset: i64) {
        self.durable_end_offset
            .fetch_max(end_offset, Ordering::AcqRel);
    }

    pub(crate) fn clear_dirty(&self) -> bool {
        self.dirty.swap(false, Ordering::AcqRel)
    }

    fn check_writable(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StorageError::Closed {
                name: self.name.clone(),
            });
        }
        if self.poisoned.load(Ordering::Acquire) {
            return Err(StorageError::Poisoned {
                name: self.name.clone(),
            });
        }
        if let Some(damage) = self.damage.lock().clone() {
            return Err(StorageError::Damaged(damage));
        }
        Ok(())
    }

    fn check_readable(&self, offset: i64) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StorageError::Closed {
                name: self.name.clone(),
            });
        }
        match &*self.damage.lock() {
            Some(damage) if offset >= damage.offset => Err(StorageError::Damaged(damage.clone())),
            _ => Ok(()),
        }
    }

    fn mark_damaged(&self, damage: Damage) {
        tracing::error!(log = %self.name, damage = %damage, "log damaged");
        let mut current = self.damage.lock();
        if current.as_ref().is_none_or(|d| damage.offset < d.offset) {
            *current = Some(damage);
        }
    }

    /// The header of the batch at `position` of `segment`; bad framing there is damage, recorded
    /// on the log and returned as its error.
    fn header_at(
        &self,
        segment: &Segment,
        file: &std::fs::File,
        position: u64,
        valid: u64,
    ) -> Result<BatchHeader> {
        segment
            .header_at(file, position, valid)
            .map_err(|err| match err {
                HeaderReadError::Io(e) => e,
                HeaderReadError::Batch(err) => self.damaged_at(segment, position, err.to_string()),
            })
    }

    /// Records damage found in `segment`, unless the segment is no longer the log's (a reader
    /// that picked it before a truncation replaced it may find anything in its file).
    fn mark_segment_damaged(&self, segment: &Segment, damage: Damage) {
        if holds(&self.segments.read(), segment) {
            self.mark_damaged(damage);
        } else {
            tracing::debug!(log = %self.name, damage = %damage, "bad bytes in a segment truncated away");
        }
    }

    /// The error for a read that picked `segment` before a truncation removed or cut it.
    fn truncated_away(&self, segment: &Segment) -> StorageError {
        StorageError::OffsetOutOfRange {
            offset: segment.base_offset,
            log_start_offset: self.log_start_offset(),
            log_end_offset: self.log_end_offset(),
        }
    }

    /// Records damage found by a read at `position` of `segment` and returns the error for it.
    fn damaged_at(&self, segment: &Segment, position: u64, reason: String) -> StorageError {
        if !holds(&self.segments.read(), segment) {
            return self.truncated_away(segment);
        }
        // The offset of the damaged batch is unknown; the first offset not yet served from this
        // segment is the conservative bound. Reads route by the index, so use the indexed floor.
        let offset = self.offset_at_position(segment, position);
        let damage = segment.damage(offset, position, reason);
        self.mark_damaged(damage.clone());
        StorageError::Damaged(damage)
    }

    /// The offset of the batch at `position`, found by walking from the segment start.
    fn offset_at_position(&self, segment: &Segment, position: u64) -> i64 {
        let Ok(file) = segment.file(&self.shared.fds) else {
            return segment.base_offset;
        };
        let valid = segment.valid_bytes();
        let mut at = 0u64;
        let mut offset = segment.base_offset;
        while at < position {
            match segment.header_at(&file, at, valid) {
                Ok(h) => {
                    offset = h.next_offset();
                    at += h.total_size() as u64;
                }
                Err(_) => break,
            }
        }
        offset
    }

    fn gone_or(&self, err: StorageError, offset: i64) -> StorageError {
        // A segment deleted by retention after this read picked it: the offset is now below start.
        match &err {
            StorageError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                StorageError::OffsetOutOfRange {
                    offset,
                    log_start_offset: self.log_start_offset(),
                    log_end_offset: self.log_end_offset(),
                }
            }
            _ => err,
        }
    }

    fn floor_segment(&self, offset: i64) -> Arc<Segment> {
        let segments = self.segments.read();
        let i = segments.partition_point(|s| s.base_offset <= offset);
        // LOG-3: never empty; an offset below the first base reads from the first segment.
        Arc::clone(&segments[i.saturating_sub(1)])
    }

    fn segment_after(&self, base_offset: i64) -> Option<Arc<Segment>> {
        let segments = self.segments.read();
        let i = segments.partition_point(|s| s.base_offset <= base_offset);
        segments.get(i).cloned()
    }

    fn roll_locked(&self, writer: &mut Writer) -> Result<()> {
        let fds = &self.shared.fds;
        let active = Arc::clone(&writer.active);
        let file = active.file(fds)?;
        if let Err(err) = file.sync_data() {
            self.poison(&err);
            return Err(StorageError::io("fdatasync", &active.log_path, err));
        }
        // TXN-2: the sealed segment's aborted transactions are durable before the append that
        // rolled returns (its directory entry is synced with the index files' below).
        if active.txn_unsynced.swap(false, Ordering::AcqRel)
            && let Err(err) = txnindex::sync(&active.txn_path)
        {
            self.poison(&err);
            return Err(StorageError::io("fdatasync", &active.txn_path, err));
        }
        let next = self.log_end_offset();
        let sealed_indexes = {
            let idx = active.live_indexes.read();
            Arc::new(writer.builder.finished(&idx, active.relative(next)))
        };
        sealed_indexes.write_files(&active.index_path, &active.time_path, true)?;
        self.sync_new_dir()?;
        sync_dir(&self.dir)?;
        let _ = active.sealed_indexes.set(sealed_indexes);
        active.sealed.store(true, Ordering::Release);
        *active.live_indexes.write() = Indexes::default();
        self.mark_durable(next);

        let segment = Arc::new(Segment::new(&self.dir, next, fds.allocate_id()));
        create_segment_file(&segment, fds)?;
        sync_dir(&self.dir)?;
        self.segments.write().push(Arc::clone(&segment));
        writer.active = segment;
        writer.builder = IndexBuilder::new(self.config.read().index_interval_bytes);
        writer.first_append_ms = None;
        tracing::debug!(log = %self.name, base_offset = next, "rolled segment");
        Ok(())
    }

    /// Removes the `count` oldest segments (all sealed) and their files.
    fn delete_oldest(&self, count: usize) -> Result<RetentionOutcome> {
        if count == 0 {
            return Ok(RetentionOutcome {
                log_start_offset: self.log_start_offset(),
                ..RetentionOutcome::default()
            });
        }
        let removed: Vec<Arc<Segment>> = {
            let mut segments = self.segments.write();
            let count = count.min(segments.len() - 1); // LOG-3
            let removed = segments.drain(..count).collect();
            if let Some(first) = segments.first() {
                self.log_start_offset
                    .fetch_max(first.base_offset, Ordering::AcqRel);
                let mut txns = self.txns.write();
                let gone = txns.partition_point(|t| t.last_offset < first.base_offset);
                txns.drain(..gone);
            }
            removed
        };
        let mut outcome = RetentionOutcome::default();
        for seg in &removed {
            debug_assert!(seg.is_sealed());
            remove_segment_files(&self.shared.fds, seg)?;
            outcome.deleted_segments += 1;
            outcome.deleted_bytes += seg.valid_bytes();
        }
        sync_dir(&self.dir)?;
        outcome.log_start_offset = self.log_start_offset();
        self.move_leader_epochs_start(outcome.log_start_offset)?;
        tracing::info!(
            log = %self.name,
            segments = outcome.deleted_segments,
            bytes = outcome.deleted_bytes,
            log_start_offset = outcome.log_start_offset,
            "deleted segments"
        );
        Ok(outcome)
    }
}

/// After a scan of the active segment stopped at `position` (where offset `next_offset` was
/// expected): a torn tail unless a complete batch with a valid CRC and a later offset follows.
///
/// A crash can only leave garbage after the last write that completed; valid data *after* a bad
/// batch means the bad batch was damaged in place, which is reported rather than cut away (cutting
/// would silently drop the valid batches behind it).
fn is_torn_tail(
    segment: &Segment,
    file: &std::fs::File,
    position: u64,
    next_offset: i64,
    file_bytes: u64,
) -> bool {
    const CHUNK: u64 = 1 << 20;
    let header_bytes = BATCH_HEADER_SIZE as u64;
    let mut chunk_start = position + 1;
    while chunk_start + header_bytes <= file_bytes {
        let end = (chunk_start + CHUNK + header_bytes).min(file_bytes);
        let Ok(buf) = segment.read_exact(file, chunk_start, (end - chunk_start) as usize) else {
            return true;
        };
        let candidates = (buf.len() + 1)
            .saturating_sub(BATCH_HEADER_SIZE)
            .min(CHUNK as usize);
        for i in 0..candidates {
            if buf[i + 16] != basalt_record::MAGIC_V2 as u8 {
                continue;
            }
            let Ok(h) = BatchHeader::parse_header(&buf[i..]) else {
                continue;
            };
            let at = chunk_start + i as u64;
            if h.base_offset < next_offset || at + h.total_size() as u64 > file_bytes {
                continue;
            }
            let Ok(bytes) = segment.read_exact(file, at, h.total_size()) else {
                continue;
            };
            if h.verify_crc(&bytes).is_ok() {
                return false;
            }
        }
        chunk_start += CHUNK;
    }
    true
}

/// Whether the batch holding `txn.last_offset` in `segment` is an ABORT marker of
/// `txn.producer_id` (for entries written unsynced before a crash, `TXN-3`).
fn is_abort_marker(segment: &Segment, fds: &crate::fdcache::FdCache, txn: &AbortedTxn) -> bool {
    let Ok(file) = segment.file(fds) else {
        return false;
    };
    let valid = segment.valid_bytes();
    let mut position = segment
        .live_indexes
        .read()
        .position_for(segment.relative(txn.last_offset), valid);
    while position < valid {
        let Ok(h) = segment.header_at(&file, position, valid) else {
            return false;
        };
        if h.last_offset() >= txn.last_offset {
            if h.base_offset > txn.last_offset
                || !h.is_control()
                || h.producer_id != txn.producer_id
            {
                return false;
            }
            return segment
                .read_exact(&file, position, h.total_size())
                .is_ok_and(|bytes| parse_control(&bytes) == Ok(Some(ControlType::Abort)));
        }
        position += h.total_size() as u64;
    }
    false
}

/// Checks the active segment against the indexes stored at a clean close and finds where it
/// ends: walks the batch headers from the last indexed batch to the end of the file, which must be
/// reached exactly, with dense offsets, at the offset the final time entry names (when there is
/// one). Returns the next offset and the segment's largest timestamp. Costs a few header reads:
/// without index entries the segment holds at most one index interval of batches plus one.
fn walk_tail(
    segment: &Segment,
    fds: &crate::fdcache::FdCache,
    idx: &Indexes,
    len: u64,
) -> Option<(i64, i64)> {
    let file = segment.file(fds).ok()?;
    let (mut position, mut expected) = idx.offsets.last().map_or((0, segment.base_offset), |e| {
        (
            u64::from(e.position),
            segment.base_offset + i64::from(e.relative_offset),
        )
    });
    let mut max_timestamp = idx.max_timestamp().unwrap_or(-1);
    while position < len {
        match segment.header_at(&file, position, len) {
            Ok(h) if h.base_offset == expected => {
                expected = h.next_offset();
                max_timestamp = max_timestamp.max(h.max_timestamp);
                position += h.total_size() as u64;
            }
            _ => return None,
        }
    }
    let consistent = idx
        .times
        .last()
        .is_none_or(|e| segment.base_offset + i64::from(e.relative_offset) == expected);
    (position == len && consistent).then_some((expected, max_timestamp))
}

/// A segment value removed by a truncation or reset: readers still holding it see it empty.
fn retire(segment: &Segment) {
    segment.valid_bytes.store(0, Ordering::Release);
    let _ = segment.sealed_indexes.set(Arc::new(Indexes::default()));
}

/// Whether `segment` is (still) one of `segments`; looked up from the newest, where syncs are.
fn holds(segments: &[Arc<Segment>], segment: &Segment) -> bool {
    segments
        .iter()
        .rev()
        .any(|s| std::ptr::eq(Arc::as_ptr(s), segment))
}

/// Parses a segment's base offset from a `.index` or `.timeindex` file name.
fn parse_index_name(name: &str) -> Option<i64> {
    let stem = name
        .strip_suffix(".index")
        .or_else(|| name.strip_suffix(".timeindex"))?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// The stored high watermark; `None` when missing or unreadable (it is advisory).
fn read_high_watermark(dir: &Path) -> Option<i64> {
    let path = dir.join(HIGH_WATERMARK_FILE);
    match fs::read_to_string(&path) {
        Ok(s) => match s.trim().parse::<i64>() {
            Ok(hw) => Some(hw),
            Err(_) => {
                tracing::warn!(file = %path.display(), "high-watermark checkpoint is not an offset; ignoring it");
                None
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "cannot read the high-watermark checkpoint; ignoring it");
            None
        }
    }
}

/// Deletes a segment's files, the `.log` first: a crash between leaves indexes without their
/// segment, which opening the log removes.
fn remove_segment_files(fds: &crate::fdcache::FdCache, seg: &Segment) -> Result<()> {
    fds.evict(seg.file_id);
    for path in [
        &seg.log_path,
        &seg.index_path,
        &seg.time_path,
        &seg.txn_path,
    ] {
        remove_if_present(path)?;
    }
    Ok(())
}

fn remove_if_present(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StorageError::io("remove", path, e)),
    }
}

fn create_segment_file(segment: &Segment, fds: &crate::fdcache::FdCache) -> Result<()> {
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&segment.log_path)
        .map_err(|e| StorageError::io("create", &segment.log_path, e))?;
    fds.insert(segment.file_id, Arc::new(file));
    Ok(())
}

fn read_log_start(dir: &Path) -> Result<Option<i64>> {
    let path = dir.join(LOG_START_FILE);
    match fs::read_to_string(&path) {
        Ok(s) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| StorageError::BadFile {
                path,
                reason: format!("not an offset: {:?}", s.trim()),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StorageError::io("read", path, e)),
    }
}

/// Kafka's leader-epoch checkpoint text: version `0`, the entry count, then `epoch startOffset`
/// per line.
fn format_leader_epochs(cache: &LeaderEpochCache) -> String {
    let mut out = format!("0\n{}\n", cache.entries().len());
    for e in cache.entries() {
        out.push_str(&format!("{} {}\n", e.epoch, e.start_offset));
    }
    out
}

/// Parses [`format_leader_epochs`]' text, checked against `REP-1`.
fn parse_leader_epochs(text: &str) -> std::result::Result<LeaderEpochCache, String> {
    let mut lines = text.lines();
    match lines.next().map(str::trim) {
        Some("0") => {}
        other => return Err(format!("unknown version {other:?}")),
    }
    let count: usize = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or("no entry count")?;
    let mut entries = Vec::with_capacity(count.min(1024));
    for i in 0..count {
        let line = lines
            .next()
            .ok_or(format!("{count} entries announced, {i} found"))?;
        let mut parts = line.split_whitespace();
        let (Some(epoch), Some(start), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!("bad entry {line:?}"));
        };
        let (Ok(epoch), Ok(start_offset)) = (epoch.parse(), start.parse()) else {
            return Err(format!("bad entry {line:?}"));
        };
        entries.push(crate::epoch_cache::EpochEntry {
            epoch,
            start_offset,
        });
    }
    if lines.any(|l| !l.trim().is_empty()) {
        return Err(format!("more than the {count} entries announced"));
    }
    LeaderEpochCache::from_entries(entries).map_err(|e| e.to_string())
}

/// Writes the checkpoint atomically (temporary file, fsync, rename, directory fsync).
fn write_leader_epochs(dir: &Path, cache: &LeaderEpochCache) -> Result<()> {
    crate::index::write_atomically(
        &dir.join(LEADER_EPOCH_FILE),
        format_leader_epochs(cache).as_bytes(),
        true,
    )?;
    sync_dir(dir)
}

/// Fsyncs a directory so entries created, renamed or removed in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    let d = fs::File::open(dir).map_err(|e| StorageError::io("open dir", dir, e))?;
    d.sync_all()
        .map_err(|e| StorageError::io("fsync dir", dir, e))
}

/// Writes every slice at `position`, continuing after short writes.
fn write_all_vectored_at(
    file: &std::fs::File,
    slices: &mut [IoSlice<'_>],
    mut position: u64,
) -> std::io::Result<()> {
    // IOV_MAX is 1024 on Linux.
    const IOV_MAX: usize = 1024;
    let mut slices = slices;
    while !slices.is_empty() {
        let chunk = slices.len().min(IOV_MAX);
        let n = match rustix::io::pwritev(file, &slices[..chunk], position) {
            Ok(n) => n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        position += n as u64;
        IoSlice::advance_slices(&mut slices, n);
    }
    Ok(())
}
