//! Sparse offset and time indexes of one segment, in memory and in their files.
//!
//! File formats (big-endian; the entries are Kafka's, the checksum is ours):
//! - `.index`: 8-byte entries `(relative offset: u32, file position: u32)`, strictly increasing in
//!   both fields. An entry points at the start of the batch whose base offset it names.
//! - `.timeindex`: 12-byte entries `(timestamp: i64, relative offset: u32)`, both non-decreasing.
//!   An entry `(t, o)` promises that every batch *before* relative offset `o` has a max timestamp
//!   `<= t`. The last entry, written when the segment is sealed, names the offset after the last
//!   batch, so its timestamp is the segment's largest.
//! - Both files end with the CRC-32C of their entries (4 bytes), so a damaged index is rebuilt
//!   rather than trusted: a wrong position would misroute reads and a wrong timestamp could let
//!   retention delete a segment early.
//!
//! # Invariants
//! - `IDX-1`: index files are only ever written whole, to a temporary name that is synced and
//!   renamed, so an index file that exists is complete; one that fails validation is rebuilt from
//!   the log.
//! - `IDX-2`: entries never point past the segment's valid bytes (checked at load).

use std::fs;
use std::io::Write;
use std::path::Path;

use crate::error::{Result, StorageError};

/// One offset index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    pub(crate) relative_offset: u32,
    pub(crate) position: u32,
}

/// One time index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    pub(crate) timestamp: i64,
    pub(crate) relative_offset: u32,
}

/// Both indexes of a segment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Indexes {
    pub(crate) offsets: Vec<OffsetEntry>,
    pub(crate) times: Vec<TimeEntry>,
}

impl Indexes {
    /// Position of the last indexed batch whose base offset is `<= relative_offset`, bounded by
    /// `valid_bytes`; 0 when none is.
    pub(crate) fn position_for(&self, relative_offset: u32, valid_bytes: u64) -> u64 {
        let i = self
            .offsets
            .partition_point(|e| e.relative_offset <= relative_offset);
        self.offsets[..i]
            .iter()
            .rev()
            .map(|e| u64::from(e.position))
            .find(|p| *p < valid_bytes)
            .unwrap_or(0)
    }

    /// Relative offset from which to scan for the first batch with max timestamp `>= timestamp`.
    pub(crate) fn scan_start_for_time(&self, timestamp: i64) -> u32 {
        let i = self.times.partition_point(|e| e.timestamp < timestamp);
        if i == 0 {
            0
        } else {
            self.times[i - 1].relative_offset
        }
    }

    /// The largest timestamp the time index records, if any.
    pub(crate) fn max_timestamp(&self) -> Option<i64> {
        self.times.last().map(|e| e.timestamp)
    }

    /// Writes both files atomically (`IDX-1`): temp file, sync, rename. The caller syncs the dir.
    pub(crate) fn write_files(
        &self,
        index_path: &Path,
        time_path: &Path,
        sync: bool,
    ) -> Result<()> {
        let mut buf = Vec::with_capacity(self.offsets.len() * 8 + 4);
        for e in &self.offsets {
            buf.extend_from_slice(&e.relative_offset.to_be_bytes());
            buf.extend_from_slice(&e.position.to_be_bytes());
        }
        let crc = crc32c::crc32c(&buf);
        buf.extend_from_slice(&crc.to_be_bytes());
        write_atomically(index_path, &buf, sync)?;
        buf.clear();
        for e in &self.times {
            buf.extend_from_slice(&e.timestamp.to_be_bytes());
            buf.extend_from_slice(&e.relative_offset.to_be_bytes());
        }
        let crc = crc32c::crc32c(&buf);
        buf.extend_from_slice(&crc.to_be_bytes());
        write_atomically(time_path, &buf, sync)
    }

    /// Loads and validates both files; `None` when either is missing or invalid for a segment of
    /// `log_bytes` bytes, so the caller rebuilds from the log.
    pub(crate) fn load(index_path: &Path, time_path: &Path, log_bytes: u64) -> Option<Self> {
        let raw = fs::read(index_path).ok()?;
        let raw = checked_entries(&raw, 8)?;
        let offsets: Vec<OffsetEntry> = raw
            .chunks_exact(8)
            .map(|c| OffsetEntry {
                relative_offset: u32::from_be_bytes([c[0], c[1], c[2], c[3]]),
                position: u32::from_be_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect();
        let offsets_ok = offsets
            .windows(2)
            .all(|w| w[0].relative_offset < w[1].relative_offset && w[0].position < w[1].position)
            && offsets.iter().all(|e| u64::from(e.position) < log_bytes);
        if !offsets_ok {
            return None;
        }
        let raw = fs::read(time_path).ok()?;
        let raw = checked_entries(&raw, 12)?;
        let times: Vec<TimeEntry> = raw
            .chunks_exact(12)
            .map(|c| {
                let mut ts = [0u8; 8];
                ts.copy_from_slice(&c[..8]);
                TimeEntry {
                    timestamp: i64::from_be_bytes(ts),
                    relative_offset: u32::from_be_bytes([c[8], c[9], c[10], c[11]]),
                }
            })
            .collect();
        let times_ok = times.windows(2).all(|w| {
            w[0].timestamp <= w[1].timestamp && w[0].relative_offset <= w[1].relative_offset
        });
        // A non-empty segment sealed by us always has the final time entry.
        if !times_ok || (log_bytes > 0 && times.is_empty()) {
            return None;
        }
        Some(Indexes { offsets, times })
    }
}

/// Decides when batches get index entries, as they are appended or scanned.
#[derive(Debug, Clone)]
pub(crate) struct IndexBuilder {
    interval_bytes: u64,
    bytes_since_entry: u64,
    max_timestamp: i64,
}

impl IndexBuilder {
    pub(crate) fn new(interval_bytes: u64) -> Self {
        IndexBuilder {
            interval_bytes: interval_bytes.max(1),
            bytes_since_entry: 0,
            max_timestamp: -1,
        }
    }

    /// Continues an active segment whose batches so far reach `max_timestamp`.
    pub(crate) fn resume(interval_bytes: u64, max_timestamp: i64) -> Self {
        IndexBuilder {
            max_timestamp,
            ..Self::new(interval_bytes)
        }
    }

    /// Records a batch at `position` with `relative_offset`, `size` bytes and `max_timestamp`,
    /// adding entries to `indexes` when an interval's worth of bytes went by.
    pub(crate) fn on_batch(
        &mut self,
        indexes: &mut Indexes,
        relative_offset: u32,
        position: u32,
        size: u64,
        max_timestamp: i64,
    ) {
        if position > 0 && self.bytes_since_entry >= self.interval_bytes {
            indexes.offsets.push(OffsetEntry {
                relative_offset,
                position,
            });
            indexes.times.push(TimeEntry {
                timestamp: self.max_timestamp,
                relative_offset,
            });
            self.bytes_since_entry = 0;
        }
        self.bytes_since_entry += size;
        self.max_timestamp = self.max_timestamp.max(max_timestamp);
    }

    /// Largest timestamp seen so far (-1 when none).
    pub(crate) fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }

    /// `indexes` as stored for a segment ending at `next_relative_offset`: the sparse entries plus
    /// the final time entry that carries the segment's largest timestamp.
    pub(crate) fn finished(&self, indexes: &Indexes, next_relative_offset: u32) -> Indexes {
        let mut out = indexes.clone();
        if next_relative_offset > 0 {
            out.times.push(TimeEntry {
                timestamp: self.max_timestamp,
                relative_offset: next_relative_offset,
            });
        }
        out
    }
}

/// The entries of an index file whose trailing CRC-32C matches, if their size fits `entry_bytes`.
fn checked_entries(raw: &[u8], entry_bytes: usize) -> Option<&[u8]> {
    let split = raw.len().checked_sub(4)?;
    let (entries, crc) = raw.split_at(split);
    let stored = u32::from_be_bytes(crc.try_into().ok()?);
    (entries.len() % entry_bytes == 0 && crc32c::crc32c(entries) == stored).then_some(entries)
}

/// Writes `data` to `path` through a temporary file and a rename, syncing the temporary file
/// first when `sync` is set (otherwise the caller syncs the whole filesystem later).
pub(crate) fn write_atomically(path: &Path, data: &[u8], sync: bool) -> Result<()> {
    let tmp = path.with_extension(format!(
        "{}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    let mut file = fs::File::create(&tmp).map_err(|e| StorageError::io("create", &tmp, e))?;
    file.write_all(data)
        .map_err(|e| StorageError::io("write", &tmp, e))?;
    if sync {
        file.sync_data()
            .map_err(|e| StorageError::io("fdatasync", &tmp, e))?;
    }
    fs::rename(&tmp, path).map_err(|e| StorageError::io("rename", &tmp, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_round_trip_and_damage_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let (ip, tp) = (dir.path().join("0.index"), dir.path().join("0.timeindex"));
        let mut b = IndexBuilder::new(100);
        let mut idx = Indexes::default();
        let mut pos = 0u32;
        for i in 0..50u32 {
            b.on_batch(&mut idx, i, pos, 60, i64::from(i) * 10);
            pos += 60;
        }
        let idx = b.finished(&idx, 50);
        idx.write_files(&ip, &tp, true).unwrap();
        let loaded = Indexes::load(&ip, &tp, u64::from(pos)).unwrap();
        assert_eq!(loaded, idx);
        assert_eq!(loaded.max_timestamp(), Some(490));
        // An entry pointing past the log is damage.
        assert!(Indexes::load(&ip, &tp, 100).is_none());
        // A torn file is damage.
        let raw = fs::read(&ip).unwrap();
        fs::write(&ip, &raw[..raw.len() - 3]).unwrap();
        assert!(Indexes::load(&ip, &tp, u64::from(pos)).is_none());
        // So is a flipped bit anywhere, even one that keeps the entries plausible.
        let mut flipped = raw.clone();
        flipped[5] ^= 0x01;
        fs::write(&ip, &flipped).unwrap();
        assert!(Indexes::load(&ip, &tp, u64::from(pos)).is_none());
        fs::write(&ip, &raw).unwrap();
        let mut times = fs::read(&tp).unwrap();
        times[3] ^= 0x10;
        fs::write(&tp, &times).unwrap();
        assert!(Indexes::load(&ip, &tp, u64::from(pos)).is_none());
        fs::remove_file(&ip).unwrap();
        assert!(Indexes::load(&ip, &tp, u64::from(pos)).is_none());
    }

    #[test]
    fn lookups_floor_to_the_right_entry() {
        let mut b = IndexBuilder::new(100);
        let mut idx = Indexes::default();
        for i in 0..10u32 {
            b.on_batch(&mut idx, i * 2, i * 60, 60, 1000 + i64::from(i));
        }
        let idx = b.finished(&idx, 20);
        // Entries every second batch after the first 100 bytes.
        for rel in 0..20u32 {
            let pos = idx.position_for(rel, 600);
            assert!(pos <= u64::from(rel / 2) * 60);
        }
        assert_eq!(idx.position_for(19, 60), 0, "bounded by valid bytes");
        assert_eq!(idx.scan_start_for_time(0), 0);
        let start = idx.scan_start_for_time(1005);
        assert!(
            start <= 10,
            "batch 5 (rel 10) has ts 1005, scan must start at or before it"
        );
    }
}
