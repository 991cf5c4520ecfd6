//! The aborted-transaction index: which offset ranges hold records of aborted transactions.
//!
//! Each segment may have a `<base offset, 20 digits>.txnindex` file beside its `.log`, created on
//! its first entry. The format is Kafka's: entries of 34 bytes, big-endian, with no header or
//! checksum: version (i16, 0), producer id (i64), first offset (i64), last offset (i64), last
//! stable offset (i64). `last offset` is the offset of the ABORT marker; an entry belongs to the
//! segment that holds that offset. A [`Log`](crate::Log) keeps every entry of all its segments in
//! memory (they are few and small), so a read_committed fetch never reads these files.
//!
//! # Invariants
//! - `TXN-1`: a segment's file holds exactly the log's in-memory entries whose last offset lies in
//!   that segment, in strictly increasing `(last offset, producer id)` order. An entry that sorts
//!   after the others is appended in place; one that sorts earlier (re-added after a crash) makes
//!   the file be rewritten whole through a temporary file and a rename.
//! - `TXN-2`: a sealed segment's file is durable: it is fsynced by the roll that seals the segment
//!   before that append returns, and an entry added to a sealed segment later is synced before
//!   [`Log::append_aborted_txn`](crate::Log::append_aborted_txn) returns. The active segment's
//!   file is written without a sync (the layer above rebuilds lost entries from the markers in the
//!   log) and synced at close. `Log::truncate_to` rewrites the file of the segment it cuts without
//!   the entries past the new end (synced), or removes it when none is left, after the cut.
//! - `TXN-3`: no entry names an offset at or past the log end, and every entry's offsets satisfy
//!   `0 <= first <= last`. Opening a log cuts a file at its first entry that is torn, has another
//!   version, breaks the order, falls outside its segment or past the recovered log end, or (after
//!   an unclean stop, in the active segment) does not name an ABORT marker of its producer; it warns
//!   and goes on. A bad index file never fails the open and never panics.

use std::fs;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::error::{Result, StorageError};

/// Bytes of one entry on disk.
pub(crate) const ENTRY_BYTES: usize = 34;
/// The only entry version written and accepted.
const VERSION: i16 = 0;

/// One aborted transaction of one producer in a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AbortedTxn {
    /// The producer whose transaction was aborted.
    pub producer_id: i64,
    /// Offset of the transaction's first record in this partition.
    pub first_offset: i64,
    /// Offset of the ABORT marker that ended it.
    pub last_offset: i64,
    /// The partition's last stable offset when the marker was written.
    pub last_stable_offset: i64,
}

impl AbortedTxn {
    /// The order entries are kept and stored in (`TXN-1`).
    pub(crate) fn key(&self) -> (i64, i64) {
        (self.last_offset, self.producer_id)
    }

    fn encode(&self) -> [u8; ENTRY_BYTES] {
        let mut out = [0u8; ENTRY_BYTES];
        out[0..2].copy_from_slice(&VERSION.to_be_bytes());
        out[2..10].copy_from_slice(&self.producer_id.to_be_bytes());
        out[10..18].copy_from_slice(&self.first_offset.to_be_bytes());
        out[18..26].copy_from_slice(&self.last_offset.to_be_bytes());
        out[26..34].copy_from_slice(&self.last_stable_offset.to_be_bytes());
        out
    }

    /// The version and entry of one 34-byte chunk.
    fn decode(raw: &[u8; ENTRY_BYTES]) -> (i16, AbortedTxn) {
        let i64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&raw[at..at + 8]);
            i64::from_be_bytes(b)
        };
        let txn = AbortedTxn {
            producer_id: i64_at(2),
            first_offset: i64_at(10),
            last_offset: i64_at(18),
            last_stable_offset: i64_at(26),
        };
        (i16::from_be_bytes([raw[0], raw[1]]), txn)
    }
}

/// File name suffix of the index.
pub(crate) const SUFFIX: &str = ".txnindex";

/// Parses a segment's base offset from a `.txnindex` file name.
pub(crate) fn parse_name(name: &str) -> Option<i64> {
    let stem = name.strip_suffix(SUFFIX)?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// Loads the file of a segment holding offsets `[base_offset, end_offset)`, keeping the entries
/// before the first bad one (`TXN-3`); `accept` is a further check of each entry. When
/// `may_cut` is set the file is truncated after the kept entries and the cut synced; otherwise
/// (a damaged log, which takes no writes) the file stays as it is. Never fails: an unreadable
/// file loads as empty, with a warning.
pub(crate) fn load(
    path: &Path,
    base_offset: i64,
    end_offset: i64,
    may_cut: bool,
    mut accept: impl FnMut(&AbortedTxn) -> bool,
) -> Vec<AbortedTxn> {
    let raw = match fs::read(path) {
        Ok(raw) => raw,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "cannot read aborted-transaction index; ignoring it");
            return Vec::new();
        }
    };
    let mut entries: Vec<AbortedTxn> = Vec::with_capacity(raw.len() / ENTRY_BYTES);
    let mut problem = None;
    for chunk in raw.chunks(ENTRY_BYTES) {
        let Ok(chunk) = <&[u8; ENTRY_BYTES]>::try_from(chunk) else {
            problem = Some("torn trailing entry");
            break;
        };
        let (version, txn) = AbortedTxn::decode(chunk);
        let why = if version != VERSION {
            Some("unknown entry version")
        } else if txn.first_offset < 0 || txn.first_offset > txn.last_offset {
            Some("first offset negative or after last offset")
        } else if txn.last_offset < base_offset {
            Some("last offset below the segment")
        } else if txn.last_offset >= end_offset {
            Some("last offset at or past the segment's end (the log end for the active segment)")
        } else if entries.last().is_some_and(|prev| prev.key() >= txn.key()) {
            Some("entry out of order")
        } else if !accept(&txn) {
            Some("last offset is not an ABORT marker of the producer")
        } else {
            None
        };
        if why.is_some() {
            problem = why;
            break;
        }
        entries.push(txn);
    }
    if let Some(reason) = problem {
        let keep = (entries.len() * ENTRY_BYTES) as u64;
        tracing::warn!(
            file = %path.display(),
            position = keep,
            bytes = raw.len() as u64 - keep,
            reason,
            "cutting aborted-transaction index"
        );
        if may_cut && let Err(e) = cut(path, keep) {
            tracing::warn!(file = %path.display(), error = %e, "cannot cut aborted-transaction index");
        }
    }
    entries
}

fn cut(path: &Path, len: u64) -> io::Result<()> {
    let file = fs::OpenOptions::new().write(true).open(path)?;
    file.set_len(len)?;
    file.sync_data()
}

/// Writes `txn` as the entry at `index` of the file, creating it when missing. A failed write
/// leaves the file at its previous length. Returns whether the file was created.
pub(crate) fn write_entry(path: &Path, index: usize, txn: &AbortedTxn) -> Result<bool> {
    let created = !path.exists();
    let file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| StorageError::io("open", path, e))?;
    let position = (index * ENTRY_BYTES) as u64;
    if let Err(e) = file.write_all_at(&txn.encode(), position) {
        let _ = file.set_len(position);
        return Err(StorageError::io("write", path, e));
    }
    Ok(created)
}

/// Replaces the file with `entries` through a temporary file and a rename (`TXN-1`), syncing the
/// new file first when `sync` is set. The caller syncs the directory.
pub(crate) fn rewrite(path: &Path, entries: &[AbortedTxn], sync: bool) -> Result<()> {
    let mut buf = Vec::with_capacity(entries.len() * ENTRY_BYTES);
    for e in entries {
        buf.extend_from_slice(&e.encode());
    }
    crate::index::write_atomically(path, &buf, sync)
}

/// Fsyncs the file's data.
pub(crate) fn sync(path: &Path) -> io::Result<()> {
    fs::File::open(path)?.sync_data()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(producer_id: i64, first_offset: i64, last_offset: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id,
            first_offset,
            last_offset,
            last_stable_offset: first_offset,
        }
    }

    #[test]
    fn entries_are_kafkas_34_bytes_and_round_trip() {
        let t = AbortedTxn {
            producer_id: 0x0102030405060708,
            first_offset: 10,
            last_offset: 20,
            last_stable_offset: 15,
        };
        let raw = t.encode();
        assert_eq!(&raw[..2], &[0, 0]);
        assert_eq!(&raw[2..10], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&raw[18..26], &20i64.to_be_bytes());
        assert_eq!(AbortedTxn::decode(&raw), (0, t));
        assert_eq!(parse_name("00000000000000000042.txnindex"), Some(42));
        assert_eq!(parse_name("42.txnindex"), None);
        assert_eq!(parse_name("00000000000000000042.log"), None);
    }

    #[test]
    fn loading_keeps_the_good_prefix_and_cuts_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000100.txnindex");
        let good = [txn(1, 100, 105), txn(2, 101, 110), txn(1, 111, 120)];
        for (i, t) in good.iter().enumerate() {
            write_entry(&path, i, t).unwrap();
        }
        assert_eq!(load(&path, 100, 200, true, |_| true), good);

        let bad_entries = [
            {
                let mut raw = txn(3, 121, 130).encode();
                raw[1] = 1; // version 1
                raw
            },
            txn(3, 131, 130).encode(), // first after last
            txn(3, 121, 200).encode(), // past the segment
            txn(3, 90, 99).encode(),   // below the segment
            txn(1, 111, 120).encode(), // not after the previous entry
            txn(3, -1, 130).encode(),  // negative first offset
        ];
        for bad in bad_entries {
            let mut raw = fs::read(&path).unwrap();
            raw.extend_from_slice(&bad);
            raw.extend_from_slice(&txn(4, 150, 160).encode());
            fs::write(&path, &raw).unwrap();
            assert_eq!(load(&path, 100, 200, true, |_| true), good);
            assert_eq!(fs::metadata(&path).unwrap().len(), 3 * ENTRY_BYTES as u64);
        }

        // A torn entry is cut; without permission to cut, the file is left alone.
        let mut raw = fs::read(&path).unwrap();
        raw.extend_from_slice(&txn(4, 150, 160).encode()[..20]);
        fs::write(&path, &raw).unwrap();
        assert_eq!(load(&path, 100, 200, false, |_| true), good);
        assert_eq!(fs::metadata(&path).unwrap().len(), raw.len() as u64);
        assert_eq!(load(&path, 100, 200, true, |_| true), good);
        assert_eq!(fs::metadata(&path).unwrap().len(), 3 * ENTRY_BYTES as u64);

        // The end of the log cuts what lies past it, and so does a failed check.
        assert_eq!(load(&path, 100, 115, true, |_| true), &good[..2]);
        assert_eq!(
            load(&path, 100, 200, true, |t| t.producer_id != 2),
            &good[..1]
        );
        assert_eq!(fs::metadata(&path).unwrap().len(), ENTRY_BYTES as u64);

        // A missing file is empty; a rewrite replaces it whole.
        assert!(load(&dir.path().join("none.txnindex"), 0, 10, true, |_| true).is_empty());
        rewrite(&path, &good, true).unwrap();
        assert_eq!(load(&path, 100, 200, true, |_| true), good);
    }
}
