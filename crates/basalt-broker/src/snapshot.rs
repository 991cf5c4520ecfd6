//! Producer-state snapshots: the idempotent producer table of one partition as of an offset, so
//! opening a partition reads only the batch headers after its newest snapshot instead of the
//! whole log (Kafka's `<offset>.snapshot` files, in a format of Basalt's own).
//!
//! # Format (version 2, big-endian)
//! A file `<log dir>/<offset, 20 digits>.snapshot` holds the table built from every batch below
//! `offset`:
//! ```text
//! magic        4  "BPSS"
//! version      2  1
//! crc          4  CRC-32C (Castagnoli) of every byte after this field
//! offset       8  the snapshot's offset, equal to the one in the file name
//! producers    4  count, then for each producer, by increasing id:
//!   producer_id  8
//!   epoch        2
//!   txn_first    8  first offset of the producer's open transaction here, or -1
//!   last_ts      8  max timestamp of its last batch, or -1
//!   batches      1  at most 5 (`BATCHES_KEPT`), then for each, oldest first:
//!     first_seq    4
//!     last_seq     4
//!     base_offset  8
//!     last_offset  8
//! ```
//! Nothing may follow the last producer. Version 1 (written before transactions) is still read:
//! it has no `txn_first` and `last_ts`, which read as -1.
//!
//! # When they are written
//! - When an append rolls the log to a new segment: the table after that append, at the new log
//!   end offset; temporary file, fsync, rename, directory fsync (under the partition's producer
//!   lock, like the roll's own fsyncs under the log's writer lock).
//! - At clean shutdown, at the log end offset, without a sync per file: closing the data
//!   directory syncs the whole filesystem before it writes the clean-shutdown marker.
//!
//! # Invariants
//! - `SNAP-1`: a snapshot is used only if its magic, version, CRC, framing and offset all check
//!   and `log start <= offset <= log end`. Anything else is ignored (and deleted), and the
//!   partition falls back to an older snapshot or to a scan of the whole log. Nothing here panics
//!   or allocates more than the file's size justifies, whatever the file holds.
//! - `SNAP-2`: snapshots above the log end (their batches were lost with a torn tail) are deleted
//!   at open; snapshots below the log start are deleted at open and whenever retention or
//!   DeleteRecords moves the log start, as their segments go.
//! - `SNAP-3`: a snapshot plus the scan after it build the table a scan from the log start would
//!   build: batches that end below the log start are dropped on load
//!   ([`ProducerTable::restore`](crate::producer::ProducerTable::restore)).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::producer::{BATCHES_KEPT, KeptBatch, ProducerState};

const MAGIC: &[u8; 4] = b"BPSS";
const VERSION: u16 = 2;
/// Magic, version and CRC.
const PREFIX_BYTES: usize = 4 + 2 + 4;
const PRODUCER_BYTES: usize = 8 + 2 + 1;
/// What version 2 adds per producer.
const PRODUCER_V2_BYTES: usize = 8 + 8;
const BATCH_BYTES: usize = 4 + 4 + 8 + 8;
const SUFFIX: &str = ".snapshot";

/// Why a snapshot file was not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// The bytes are not a snapshot this version reads.
    #[error("not a producer snapshot: {0}")]
    Format(&'static str),
    /// The CRC does not match the contents.
    #[error("CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Crc {
        /// CRC in the file.
        stored: u32,
        /// CRC of the contents.
        computed: u32,
    },
    /// The offset inside differs from the file name's.
    #[error("holds offset {found}, but its name says {expected}")]
    Offset {
        /// The offset in the name.
        expected: i64,
        /// The offset in the file.
        found: i64,
    },
}

/// The path of the snapshot at `offset` in log directory `dir`.
pub fn path(dir: &Path, offset: i64) -> PathBuf {
    dir.join(format!("{offset:020}{SUFFIX}"))
}

/// The offset a snapshot file name stands for, if it is one.
fn parse_name(name: &str) -> Option<i64> {
    let digits = name.strip_suffix(SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The offsets of the snapshots in `dir`, ascending.
pub fn list(dir: &Path) -> std::io::Result<Vec<i64>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if let Some(offset) = entry.file_name().to_str().and_then(parse_name) {
            out.push(offset);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// The bytes of a snapshot of `producers` at `offset`.
pub fn encode(offset: i64, producers: &[ProducerState]) -> Vec<u8> {
    let mut body = Vec::with_capacity(
        12 + producers.len() * (PRODUCER_BYTES + PRODUCER_V2_BYTES + BATCH_BYTES),
    );
    body.extend_from_slice(&offset.to_be_bytes());
    body.extend_from_slice(&(producers.len() as u32).to_be_bytes());
    for p in producers {
        body.extend_from_slice(&p.producer_id.to_be_bytes());
        body.extend_from_slice(&p.epoch.to_be_bytes());
        body.extend_from_slice(&p.txn_first_offset.to_be_bytes());
        body.extend_from_slice(&p.last_timestamp.to_be_bytes());
        let kept = &p.batches[p.batches.len().saturating_sub(BATCHES_KEPT)..];
        body.push(kept.len() as u8);
        for b in kept {
            body.extend_from_slice(&b.first_seq.to_be_bytes());
            body.extend_from_slice(&b.last_seq.to_be_bytes());
            body.extend_from_slice(&b.base_offset.to_be_bytes());
            body.extend_from_slice(&b.last_offset.to_be_bytes());
        }
    }
    let mut out = Vec::with_capacity(PREFIX_BYTES + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// A cursor over untrusted bytes: every read checks the length first.
struct Reader<'a> {
    buf: &'a [u8],
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], SnapshotError> {
        let (head, rest) = self
            .buf
            .split_first_chunk::<N>()
            .ok_or(SnapshotError::Format("truncated"))?;
        self.buf = rest;
        Ok(*head)
    }
    fn i64(&mut self) -> Result<i64, SnapshotError> {
        Ok(i64::from_be_bytes(self.take()?))
    }
    fn i32(&mut self) -> Result<i32, SnapshotError> {
        Ok(i32::from_be_bytes(self.take()?))
    }
    fn i16(&mut self) -> Result<i16, SnapshotError> {
        Ok(i16::from_be_bytes(self.take()?))
    }
}

/// Reads a snapshot that should be at `expected_offset` (`SNAP-1`).
pub fn decode(bytes: &[u8], expected_offset: i64) -> Result<Vec<ProducerState>, SnapshotError> {
    let mut r = Reader { buf: bytes };
    if &r.take::<4>()? != MAGIC {
        return Err(SnapshotError::Format("bad magic"));
    }
    let version = u16::from_be_bytes(r.take()?);
    if !(1..=VERSION).contains(&version) {
        return Err(SnapshotError::Format("unknown version"));
    }
    let stored = u32::from_be_bytes(r.take()?);
    let computed = crc32c::crc32c(r.buf);
    if stored != computed {
        return Err(SnapshotError::Crc { stored, computed });
    }
    let found = r.i64()?;
    if found != expected_offset {
        return Err(SnapshotError::Offset {
            expected: expected_offset,
            found,
        });
    }
    let count = u32::from_be_bytes(r.take()?) as usize;
    if count > r.buf.len() / PRODUCER_BYTES {
        return Err(SnapshotError::Format("more producers than bytes"));
    }
    let mut producers = Vec::with_capacity(count);
    for _ in 0..count {
        let producer_id = r.i64()?;
        let epoch = r.i16()?;
        let (txn_first_offset, last_timestamp) = if version >= 2 {
            (r.i64()?, r.i64()?)
        } else {
            (-1, -1)
        };
        if txn_first_offset < -1 || txn_first_offset >= found {
            return Err(SnapshotError::Format(
                "open transaction offset out of range",
            ));
        }
        let [n] = r.take::<1>()?;
        if usize::from(n) > BATCHES_KEPT {
            return Err(SnapshotError::Format("too many batches for one producer"));
        }
        let mut batches = Vec::with_capacity(usize::from(n));
        for _ in 0..n {
            let b = KeptBatch {
                first_seq: r.i32()?,
                last_seq: r.i32()?,
                base_offset: r.i64()?,
                last_offset: r.i64()?,
            };
            if b.base_offset > b.last_offset || b.last_offset >= found {
                return Err(SnapshotError::Format("batch offsets out of order"));
            }
            batches.push(b);
        }
        producers.push(ProducerState {
            producer_id,
            epoch,
            txn_first_offset,
            last_timestamp,
            batches,
        });
    }
    if !r.buf.is_empty() {
        return Err(SnapshotError::Format("bytes after the last producer"));
    }
    Ok(producers)
}

/// Writes the snapshot of `producers` at `offset` into `dir`, replacing one of the same offset;
/// with `sync`, the file and the directory are synced before this returns.
pub fn write(
    dir: &Path,
    offset: i64,
    producers: &[ProducerState],
    sync: bool,
) -> std::io::Result<()> {
    let target = path(dir, offset);
    // The `.tmp` suffix makes the log's open remove a temporary file left by a crash.
    let tmp = dir.join(format!("{offset:020}{SUFFIX}.tmp"));
    let mut f = fs::File::create(&tmp)?;
    f.write_all(&encode(offset, producers))?;
    if sync {
        f.sync_data()?;
    }
    drop(f);
    fs::rename(&tmp, &target)?;
    if sync {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// What [`load`] found.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The newest usable snapshot: its offset and producers.
    pub snapshot: Option<(i64, Vec<ProducerState>)>,
    /// Snapshot files ignored: damaged, unreadable, above the log end or below its start (all
    /// but the unreadable ones are deleted).
    pub discarded: usize,
}

/// The newest usable snapshot in `dir` for a log holding `log_start..log_end` (`SNAP-1`),
/// deleting the unusable ones met on the way (`SNAP-2`). Never fails: a directory that cannot be
/// listed or a file that cannot be read means no snapshot, and the caller scans the log.
pub fn load(dir: &Path, log_start: i64, log_end: i64) -> Loaded {
    let mut loaded = Loaded::default();
    let offsets = match list(dir) {
        Ok(o) => o,
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot list producer snapshots");
            return loaded;
        }
    };
    for &offset in offsets.iter().rev() {
        let file = path(dir, offset);
        if loaded.snapshot.is_some() {
            if offset < log_start {
                discard(&file, &mut loaded, "below the log start");
            }
            continue;
        }
        if offset > log_end {
            discard(&file, &mut loaded, "above the log end");
            continue;
        }
        if offset < log_start {
            discard(&file, &mut loaded, "below the log start");
            continue;
        }
        match fs::read(&file) {
            Ok(bytes) => match decode(&bytes, offset) {
                Ok(producers) => loaded.snapshot = Some((offset, producers)),
                Err(e) => {
                    tracing::warn!(file = %file.display(), error = %e, "damaged producer snapshot; using an older one or the log");
                    discard(&file, &mut loaded, "damaged");
                }
            },
            Err(e) => {
                tracing::warn!(file = %file.display(), error = %e, "cannot read producer snapshot");
                loaded.discarded += 1;
            }
        }
    }
    loaded
}

fn discard(file: &Path, loaded: &mut Loaded, why: &str) {
    loaded.discarded += 1;
    tracing::debug!(file = %file.display(), why, "removing producer snapshot");
    if let Err(e) = fs::remove_file(file) {
        tracing::warn!(file = %file.display(), error = %e, "cannot remove producer snapshot");
    }
}

/// Deletes the snapshots of `dir` below `offset` (the new log start, `SNAP-2`); how many.
pub fn delete_below(dir: &Path, offset: i64) -> std::io::Result<usize> {
    let mut deleted = 0;
    for old in list(dir)?.into_iter().filter(|&o| o < offset) {
        match fs::remove_file(path(dir, old)) {
            Ok(()) => deleted += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(deleted)
}

/// Deletes the snapshots of `dir` above `offset` (a follower truncated its log to it); how
/// many.
pub fn delete_above(dir: &Path, offset: i64) -> std::io::Result<usize> {
    let mut deleted = 0;
    for old in list(dir)?.into_iter().filter(|&o| o > offset) {
        match fs::remove_file(path(dir, old)) {
            Ok(()) => deleted += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> Vec<ProducerState> {
        vec![
            ProducerState {
                producer_id: 3,
                epoch: 1,
                txn_first_offset: 12,
                last_timestamp: 1_700_000_000_000,
                batches: vec![
                    KeptBatch {
                        first_seq: 0,
                        last_seq: 4,
                        base_offset: 10,
                        last_offset: 14,
                    },
                    KeptBatch {
                        first_seq: 5,
                        last_seq: 5,
                        base_offset: 20,
                        last_offset: 20,
                    },
                ],
            },
            ProducerState {
                producer_id: 9,
                epoch: 0,
                txn_first_offset: -1,
                last_timestamp: -1,
                batches: Vec::new(),
            },
        ]
    }

    #[test]
    fn snapshots_round_trip() {
        let bytes = encode(21, &state());
        assert_eq!(decode(&bytes, 21).unwrap(), state());
        assert!(matches!(
            decode(&bytes, 22),
            Err(SnapshotError::Offset { .. })
        ));
        assert_eq!(parse_name("00000000000000000021.snapshot"), Some(21));
        assert_eq!(parse_name("21.snapshot"), None);
        assert_eq!(parse_name("00000000000000000021.snapshot.tmp"), None);
    }

    #[test]
    fn every_damage_is_an_error_not_a_panic() {
        let bytes = encode(21, &state());
        // Every truncation and every single-bit flip is refused.
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len], 21).is_err(), "truncated to {len}");
        }
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut b = bytes.clone();
                b[i] ^= 1 << bit;
                assert!(decode(&b, 21).is_err(), "byte {i} bit {bit}");
            }
        }
        // A valid CRC over a hostile count does not allocate for it.
        let mut body = 21i64.to_be_bytes().to_vec();
        body.extend_from_slice(&u32::MAX.to_be_bytes());
        let mut hostile = MAGIC.to_vec();
        hostile.extend_from_slice(&VERSION.to_be_bytes());
        hostile.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
        hostile.extend_from_slice(&body);
        assert!(matches!(
            decode(&hostile, 21),
            Err(SnapshotError::Format(_))
        ));
    }

    #[test]
    fn load_picks_the_newest_usable_snapshot_and_deletes_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        for offset in [5, 10, 21, 40] {
            write(dir.path(), offset, &[], true).unwrap();
        }
        write(dir.path(), 30, &state(), false).unwrap();
        // 40 is above the log end; 30 is damaged; 21 is used; 5 is below the log start.
        let p30 = path(dir.path(), 30);
        let mut damaged = fs::read(&p30).unwrap();
        let last = damaged.len() - 1;
        damaged[last] ^= 0xff;
        fs::write(&p30, damaged).unwrap();
        let loaded = load(dir.path(), 8, 35);
        assert_eq!(loaded.snapshot.map(|(o, _)| o), Some(21));
        assert_eq!(loaded.discarded, 3);
        assert_eq!(list(dir.path()).unwrap(), vec![10, 21]);
        assert_eq!(delete_below(dir.path(), 21).unwrap(), 1);
        assert_eq!(list(dir.path()).unwrap(), vec![21]);
    }
}
