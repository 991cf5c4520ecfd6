//! Crash recovery: cut or corrupt the active segment and the index files at random places, then
//! reopen without a clean-shutdown marker. Every batch that was completely written and synced
//! before the damage must come back byte for byte, and nothing corrupt may ever be served.

use std::fs;
use std::path::{Path, PathBuf};

use basalt_storage::{FsyncPolicy, StorageError};
use bytes::Bytes;
use proptest::prelude::*;

use crate::{at_offset, batch, open, small_config};

/// Writes `sizes.len()` batches (synced) and crashes; returns the stored batches (at their
/// offsets) in order.
fn write_and_crash(dir: &Path, sizes: &[(usize, usize)]) -> Vec<(i64, Vec<u8>)> {
    let storage = open(dir);
    let (log, _) = storage
        .open_log("t-0", small_config(FsyncPolicy::Always))
        .unwrap();
    let mut stored = Vec::new();
    for (i, (records, value)) in sizes.iter().enumerate() {
        let b = batch(i as u64, *records, *value, 1000 + i as i64);
        let appended = log.append(&b, 0).unwrap();
        appended.durable.wait().unwrap();
        stored.push((appended.base_offset, at_offset(&b, appended.base_offset)));
    }
    stored
    // Dropped without close: no clean-shutdown marker.
}

fn segment_files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir.join("t-0"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    files
}

fn base_of(path: &Path) -> i64 {
    path.file_stem().unwrap().to_str().unwrap().parse().unwrap()
}

/// Reads the log from its start, batch by batch, until the end or an error; returns the batches
/// served and the error that stopped it, if any.
fn read_all(log: &basalt_storage::Log) -> (Vec<Bytes>, Option<StorageError>) {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        match log.read(offset, 1, i64::MAX) {
            Ok(r) if r.records.is_empty() => break,
            Ok(r) => {
                offset = r.next_offset;
                out.push(r.records);
            }
            Err(e) => return (out, Some(e)),
        }
    }
    (out, None)
}

fn sizes() -> impl Strategy<Value = Vec<(usize, usize)>> {
    proptest::collection::vec((1usize..6, 1usize..1500), 1..25)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn a_cut_anywhere_in_the_active_segment_keeps_every_batch_before_it(
        sizes in sizes(),
        cut in 0.0f64..1.0,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let stored = write_and_crash(dir.path(), &sizes);
        let active = segment_files(dir.path(), "log").pop().unwrap();
        let len = fs::metadata(&active).unwrap().len();
        let cut_at = (len as f64 * cut) as u64;
        fs::OpenOptions::new().write(true).open(&active).unwrap().set_len(cut_at).unwrap();

        // Expected: every batch of earlier segments, and those of the active one wholly below.
        let active_base = base_of(&active);
        let mut position = 0u64;
        let expected: Vec<&Vec<u8>> = stored
            .iter()
            .filter(|(base, bytes)| {
                if *base < active_base {
                    return true;
                }
                position += bytes.len() as u64;
                position <= cut_at
            })
            .map(|(_, b)| b)
            .collect();

        let storage = open(dir.path());
        let (log, report) = storage.open_log("t-0", small_config(FsyncPolicy::Always)).unwrap();
        prop_assert!(!report.clean);
        prop_assert!(report.damage.is_none());
        let (served, err) = read_all(&log);
        prop_assert!(err.is_none(), "{:?}", err);
        prop_assert_eq!(served.len(), expected.len());
        for (got, want) in served.iter().zip(&expected) {
            prop_assert_eq!(&got[..], &want[..]);
        }
        // The log goes on from where the kept data ends.
        let next = expected.len();
        let end = stored.get(next).map_or_else(|| log.log_end_offset(), |(base, _)| *base);
        prop_assert_eq!(log.log_end_offset(), end);
        let appended = log.append(&batch(99, 1, 10, 1), 0).unwrap();
        prop_assert_eq!(appended.base_offset, end);
    }

    #[test]
    fn a_corrupt_byte_in_the_active_segment_is_never_served(
        sizes in sizes(),
        at in 0.0f64..1.0,
        flip in 1u8..=255,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let stored = write_and_crash(dir.path(), &sizes);
        let active = segment_files(dir.path(), "log").pop().unwrap();
        let mut raw = fs::read(&active).unwrap();
        prop_assume!(!raw.is_empty());
        let mut pos = ((raw.len() as f64) * at) as usize;
        // The partition leader epoch (bytes 12..16 of a batch) is outside the CRC by the format's
        // design and belongs to the broker; it is checked against the leader-epoch history once
        // replication exists. Move off it.
        let active_base = base_of(&active);
        let in_active: Vec<&(i64, Vec<u8>)> =
            stored.iter().filter(|(b, _)| *b >= active_base).collect();
        let mut start = 0usize;
        let mut hit = 0usize;
        for (i, (_, bytes)) in in_active.iter().enumerate() {
            if pos < start + bytes.len() {
                hit = i;
                if (12..16).contains(&(pos - start)) {
                    pos = start + 16;
                }
                break;
            }
            start += bytes.len();
        }
        raw[pos] ^= flip;
        fs::write(&active, &raw).unwrap();

        let storage = open(dir.path());
        let (log, report) = storage.open_log("t-0", small_config(FsyncPolicy::Always)).unwrap();
        let (served, err) = read_all(&log);
        // Everything served is exactly what was written, in order.
        for (got, (_, want)) in served.iter().zip(&stored) {
            prop_assert_eq!(&got[..], &want[..]);
        }
        // Every batch before the damaged one is served.
        let before = stored.len() - in_active.len() + hit;
        prop_assert!(served.len() >= before);
        prop_assert!(served.len() <= before, "the damaged batch must not be served");
        match report.damage {
            // Damage in place (valid batches follow): reported, nothing cut, reads stop there.
            Some(d) => {
                prop_assert_eq!(d.path, active);
                prop_assert_eq!(d.position, start as u64);
                prop_assert!(err.is_none());
                // The log ends at the damage; reading there says why, and nothing is appended.
                let damaged_base = in_active[hit].0;
                prop_assert_eq!(d.offset, damaged_base);
                prop_assert_eq!(log.log_end_offset(), damaged_base);
                let at_damage = log.read(damaged_base, 1, i64::MAX);
                prop_assert!(matches!(at_damage, Err(StorageError::Damaged(_))));
                let append = log.append(&batch(99, 1, 1, 1), 0);
                prop_assert!(matches!(append, Err(StorageError::Damaged(_))));
                prop_assert_eq!(report.truncated_bytes, 0);
            }
            // The damaged batch was the last one: a torn tail, cut away.
            None => {
                prop_assert!(err.is_none());
                prop_assert_eq!(hit, in_active.len() - 1);
                prop_assert_eq!(report.truncated_at, Some(start as u64));
            }
        }
    }

    #[test]
    fn damaged_or_missing_index_files_are_rebuilt(
        sizes in sizes(),
        victim in 0usize..100,
        action in 0u8..3,
        at in 0.0f64..1.0,
        clean in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let stored = {
            let storage = open(dir.path());
            let (log, _) = storage
                .open_log("t-0", small_config(FsyncPolicy::Always))
                .unwrap();
            let mut stored = Vec::new();
            for (i, (records, value)) in sizes.iter().enumerate() {
                let b = batch(i as u64, *records, *value, 1000 + i as i64);
                let appended = log.append(&b, 0).unwrap();
                appended.durable.wait().unwrap();
                stored.push((appended.base_offset, at_offset(&b, appended.base_offset)));
            }
            drop(log);
            if clean {
                storage.close().unwrap();
            }
            stored
        };
        let mut files = segment_files(dir.path(), "index");
        files.extend(segment_files(dir.path(), "timeindex"));
        prop_assume!(!files.is_empty());
        let file = &files[victim % files.len()];
        match action {
            0 => fs::remove_file(file).unwrap(),
            1 => {
                let len = fs::metadata(file).unwrap().len();
                fs::OpenOptions::new().write(true).open(file).unwrap()
                    .set_len((len as f64 * at) as u64).unwrap();
            }
            _ => {
                let mut raw = fs::read(file).unwrap();
                if !raw.is_empty() {
                    let i = ((raw.len() as f64) * at) as usize % raw.len();
                    raw[i] ^= 0x5a;
                    fs::write(file, raw).unwrap();
                }
            }
        }
        let storage = open(dir.path());
        let (log, report) = storage.open_log("t-0", small_config(FsyncPolicy::Always)).unwrap();
        prop_assert!(report.damage.is_none());
        let (served, err) = read_all(&log);
        prop_assert!(err.is_none(), "{:?}", err);
        prop_assert_eq!(served.len(), stored.len());
        for (got, (_, want)) in served.iter().zip(&stored) {
            prop_assert_eq!(&got[..], &want[..]);
        }
        for (i, (base, _)) in stored.iter().enumerate() {
            let found = log.find_by_timestamp(1000 + i as i64).unwrap().unwrap();
            prop_assert_eq!(found.base_offset, *base);
        }
        prop_assert!(log.damage().is_none());
    }
}
