//! Transactions in the log: markers appended as batches, the aborted-transaction index beside each
//! segment (range queries, reopen clean and after a crash, damaged files, retention, idempotent
//! re-adds) and the scan that reports marker types.

use std::fs;
use std::path::{Path, PathBuf};

use basalt_record::{BatchBuilder, ControlType, control_batch};
use basalt_storage::{AbortedTxn, FsyncPolicy, Log, LogConfig, StorageError};
use bytes::Bytes;

use crate::{open, small_config};

/// A transactional batch of `records` records from `producer_id`.
fn txn_batch(producer_id: i64, sequence: i32, records: usize) -> Bytes {
    let mut b = BatchBuilder::new(0)
        .producer(producer_id, 0, sequence)
        .transactional();
    for r in 0..records {
        b.push(1000, Some(b"k"), Some(format!("v{r}").as_bytes()), &[]);
    }
    b.build()
}

/// Appends `records` transactional records of `producer_id` and returns the first offset.
fn append_data(log: &Log, producer_id: i64, records: usize) -> i64 {
    log.append(&txn_batch(producer_id, 0, records), 0)
        .unwrap()
        .base_offset
}

/// Appends a marker of `producer_id` and returns its offset.
fn append_marker(log: &Log, producer_id: i64, control: ControlType) -> i64 {
    let appended = log
        .append(&control_batch(producer_id, 0, control, 5, 2000), 0)
        .unwrap();
    appended.durable.wait().unwrap();
    appended.base_offset
}

/// Appends data, an ABORT marker and the entry for it; returns the entry.
fn aborted(log: &Log, producer_id: i64, records: usize) -> AbortedTxn {
    let first_offset = append_data(log, producer_id, records);
    let last_offset = append_marker(log, producer_id, ControlType::Abort);
    let txn = AbortedTxn {
        producer_id,
        first_offset,
        last_offset,
        last_stable_offset: last_offset + 1,
    };
    log.append_aborted_txn(txn).unwrap();
    txn
}

fn txn_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir.join("t-0"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txnindex"))
        .collect();
    files.sort();
    files
}

fn file_name(offset: i64) -> String {
    format!("{offset:020}.txnindex")
}

fn config() -> LogConfig {
    small_config(FsyncPolicy::Always)
}

#[test]
fn aborted_entries_are_served_by_range_and_survive_a_clean_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path());
    let (log, _) = storage.open_log("t-0", config()).unwrap();
    assert!(
        txn_files(dir.path()).is_empty(),
        "created on the first entry only"
    );
    let a = aborted(&log, 1, 3); // 0..=2, marker 3
    append_data(&log, 2, 2); // 4..=5, committed below
    append_marker(&log, 2, ControlType::Commit); // 6
    let b = aborted(&log, 3, 4); // 7..=10, marker 11
    assert_eq!((a.first_offset, a.last_offset), (0, 3));
    assert_eq!((b.first_offset, b.last_offset), (7, 11));

    assert_eq!(log.aborted_txns(0, i64::MAX), vec![a, b]);
    assert_eq!(log.aborted_txns(4, i64::MAX), vec![b]);
    assert_eq!(
        log.aborted_txns(0, 7),
        vec![a],
        "b starts at the upper bound"
    );
    assert_eq!(log.aborted_txns(3, 8), vec![a, b]);
    assert_eq!(log.aborted_txns(12, i64::MAX), vec![]);

    // Kafka's file: 34-byte big-endian entries in the segment holding the marker.
    let files = txn_files(dir.path());
    assert_eq!(files.len(), 1);
    assert!(files[0].ends_with(file_name(0)));
    let raw = fs::read(&files[0]).unwrap();
    assert_eq!(raw.len(), 68);
    assert_eq!(&raw[34..36], &0i16.to_be_bytes());
    assert_eq!(&raw[36..44], &3i64.to_be_bytes());
    assert_eq!(&raw[44..52], &7i64.to_be_bytes());
    assert_eq!(&raw[52..60], &11i64.to_be_bytes());
    assert_eq!(&raw[60..68], &12i64.to_be_bytes());

    storage.close().unwrap();
    let storage = open(dir.path());
    let (log, report) = storage.open_log("t-0", config()).unwrap();
    assert!(report.clean);
    assert_eq!(log.aborted_txns(0, i64::MAX), vec![a, b]);
    let c = aborted(&log, 4, 1);
    assert_eq!(log.aborted_txns(0, i64::MAX), vec![a, b, c]);
    assert_eq!(fs::read(&files[0]).unwrap().len(), 3 * 34);
    storage.close().unwrap();
}

#[test]
fn re_adds_are_idempotent_and_misfits_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path());
    let (log, _) = storage.open_log("t-0", config()).unwrap();
    let a = aborted(&log, 1, 2);
    let b = aborted(&log, 2, 2);
    log.append_aborted_txn(a).unwrap();
    log.append_aborted_txn(b).unwrap();
    // Same producer and marker: already there, whatever the other fields say.
    log.append_aborted_txn(AbortedTxn {
        first_offset: 1,
        ..a
    })
    .unwrap();
    assert_eq!(log.aborted_txns(0, i64::MAX), vec![a, b]);
    assert_eq!(fs::read(&txn_files(dir.path())[0]).unwrap().len(), 68);

    let end = log.log_end_offset();
    for bad in [
        AbortedTxn {
            last_offset: end,
            ..b
        },
        AbortedTxn {
            first_offset: b.last_offset + 1,
            last_offset: b.last_offset,
            ..b
        },
        AbortedTxn {
            first_offset: -1,
            ..b
        },
        AbortedTxn {
            first_offset: -5,
            last_offset: -1,
            ..b
        },
    ] {
        assert!(
            matches!(
                log.append_aborted_txn(bad),
                Err(StorageError::InvalidAbortedTxn { .. })
            ),
            "{bad:?}"
        );
    }
    assert_eq!(log.aborted_txns(0, i64::MAX), vec![a, b]);
    storage.close().unwrap();
}

#[test]
fn an_entry_added_out_of_order_keeps_the_file_ordered() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path());
    let (log, _) = storage.open_log("t-0", config()).unwrap();
    let first = append_data(&log, 1, 2);
    let m1 = append_marker(&log, 1, ControlType::Abort);
    let second = append_data(&log, 2, 2);
    let m2 = append_marker(&log, 2, ControlType::Abort);
    let a = AbortedTxn {
        producer_id: 1,
        first_offset: first,
        last_offset: m1,
        last_stable_offset: m1 + 1,
    };
    let b = AbortedTxn {
        producer_id: 2,
        first_offset: second,
        last_offset: m2,
        last_stable_offset: m2 + 1,
    };
    // Re-added after a crash lost the first one: the later entry is already stored.
    log.append_aborted_txn(b).unwrap();
    log.append_aborted_txn(a).unwrap();
    assert_eq!(log.aborted_txns(0, i64::MAX), vec![a, b]);
    drop(log);
    storage.close().unwrap();
    // The file is in order, so reopening (here after a crash, which checks every entry) keeps both.
    let storage = open(dir.path());
    let (log, _) = storage.open_log("t-0", config()).unwrap();
    assert_eq!(log.aborted_txns(0, i64::MAX), vec![a, b]);
    drop(log);
    drop(storage);
    let storage = open(dir.path());
    let (log, report) = storage.open_log("t-0", config()).unwrap();
    assert!(!report.clean);
    assert_eq!(log.aborted_txns(0, i64::MAX), vec![a, b]);
}

#[test]
fn entries_past_a_torn_log_tail_are_dropped_at_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, cut_at) = {
        let storage = open(dir.path());
        let (log, _) = storage.open_log("t-0", config()).unwrap();
        let a = aborted(&log, 1, 3);
        let cut_at = log.size_bytes();
        let b = aborted(&log, 2, 3);
        (a, b, cut_at)
        // Dropped without close: no clean-shutdown marker.
    };
    // The crash tore the log inside the batches of the second transaction.
    let active = dir.path().join("t-0").join("00000000000000000000.log");
    fs::OpenOptions::new()
        .write(true)
        .open(&active)
        .unwrap()
        .set_len(cut_at + 30)
        .unwrap();

    let storage = open(dir.path());
    let (log, report) = storage.open_log("t-0", config()).unwrap();
    assert_eq!(report.truncated_at, Some(cut_at));
    assert_eq!(log.log_end_offset(), a.last_offset + 1);
    assert_eq!(log.aborted_txns(0, i64::MAX), vec![a]);
    assert!(b.last_offset >= log.log_end_offset());
    let file = dir.path().join("t-0").join(file_name(0));
    assert_eq!(fs::read(&file).unwrap().len(), 34, "the file is cut too");

    // New data at the offsets the entry named is not taken for an aborted transaction.
    append_data(&log, 9, 10);
    assert_eq!(log.aborted_txns(0, i64::MAX), vec![a]);
    storage.close().unwrap();
    let storage = open(dir.path());
    let (log, _) = storage.open_log("t-0", config()).unwrap();
    assert_eq!(log.aborted_txns(0, i64::MAX), vec![a]);
    storage.close().unwrap();
}

#[test]
fn a_torn_or_garbled_txnindex_is_cut_without_failing_the_open() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t-0").join(file_name(0));
    let (a, b) = {
        let storage = open(dir.path());
        let (log, _) = storage.open_log("t-0", config()).unwrap();
        let a = aborted(&log, 1, 2);
        let b = aborted(&log, 2, 2);
        storage.close().unwrap();
        (a, b)
    };
    let good = fs::read(&file).unwrap();
    // Opens the log, returns whether that open was clean and the entries, then closes it (or
    // not, so the next open recovers).
    let reopen = |close: bool| {
        let storage = open(dir.path());
        let (log, report) = storage.open_log("t-0", config()).unwrap();
        assert!(report.damage.is_none());
        let txns = log.aborted_txns(0, i64::MAX);
        if close {
            storage.close().unwrap();
        }
        (report.clean, txns)
    };

    // A torn trailing entry.
    let mut torn = good.clone();
    torn.extend_from_slice(&[0, 0, 0, 0, 0, 7]);
    fs::write(&file, &torn).unwrap();
    assert_eq!(reopen(true), (true, vec![a, b]));
    assert_eq!(fs::read(&file).unwrap(), good);

    // The second entry has an unknown version: cut there.
    let mut garbled = good.clone();
    garbled[35] = 9;
    fs::write(&file, &garbled).unwrap();
    assert_eq!(reopen(true), (true, vec![a]));
    assert_eq!(fs::read(&file).unwrap(), &good[..34]);

    // Pure garbage, shorter and longer than an entry.
    for junk in [vec![0xffu8; 5], vec![0xa5u8; 100]] {
        fs::write(&file, &junk).unwrap();
        assert_eq!(reopen(true), (true, vec![]));
        assert_eq!(fs::read(&file).unwrap().len(), 0);
    }

    // After a crash the active segment's entries must name ABORT markers: a zero-filled entry
    // (a write the crash lost) names offset 0, which holds data, not a marker.
    assert_eq!(reopen(false), (true, vec![]));
    let mut zeroed = vec![0u8; 34];
    zeroed.extend_from_slice(&good);
    fs::write(&file, &zeroed).unwrap();
    assert_eq!(reopen(false), (false, vec![]));
    assert_eq!(fs::read(&file).unwrap().len(), 0);
    // Entries that do name ABORT markers of their producers pass the check.
    fs::write(&file, &good).unwrap();
    assert_eq!(reopen(true), (false, vec![a, b]));
}

#[test]
fn entries_go_to_the_segment_of_their_marker_and_retention_deletes_them() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path());
    let (log, _) = storage.open_log("t-0", config()).unwrap();
    // An aborted transaction whose entry a crash lost; the layer above re-adds it later.
    let lost_first = append_data(&log, 5, 1);
    let lost_marker = append_marker(&log, 5, ControlType::Abort);
    let a = aborted(&log, 1, 2);
    // A transaction that spans a roll: its entry belongs to the segment of its marker.
    let first = append_data(&log, 2, 2);
    log.roll().unwrap();
    let second_base = log.log_end_offset();
    let marker = append_marker(&log, 2, ControlType::Abort);
    let b = AbortedTxn {
        producer_id: 2,
        first_offset: first,
        last_offset: marker,
        last_stable_offset: marker + 1,
    };
    log.append_aborted_txn(b).unwrap();
    // The lost entry goes into the sealed first segment's file, before `a`.
    let lost = AbortedTxn {
        producer_id: 5,
        first_offset: lost_first,
        last_offset: lost_marker,
        last_stable_offset: lost_marker + 1,
    };
    log.append_aborted_txn(lost).unwrap();
    assert_eq!(log.aborted_txns(0, i64::MAX), vec![lost, a, b]);
    let first_file = dir.path().join("t-0").join(file_name(0));
    let raw = fs::read(&first_file).unwrap();
    assert_eq!(raw.len(), 68);
    assert_eq!(&raw[2..10], &5i64.to_be_bytes());
    assert_eq!(&raw[36..44], &1i64.to_be_bytes());
    log.roll().unwrap();
    assert_eq!(
        txn_files(dir.path())
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap().to_owned())
            .collect::<Vec<_>>(),
        vec![file_name(0), file_name(second_base)]
    );
    assert_eq!(log.aborted_txns(0, i64::MAX), vec![lost, a, b]);

    // DeleteRecords past the first segment deletes it and its aborted transactions.
    log.delete_records(second_base).unwrap();
    assert_eq!(log.log_start_offset(), second_base);
    assert_eq!(log.aborted_txns(0, i64::MAX), vec![b]);
    assert_eq!(txn_files(dir.path()).len(), 1);
    assert!(matches!(
        log.append_aborted_txn(AbortedTxn {
            producer_id: 7,
            ..a
        }),
        Err(StorageError::InvalidAbortedTxn { .. })
    ));

    // Time retention deletes the second one too (the active segment stays).
    log.set_config(LogConfig {
        retention_ms: 1,
        ..config()
    });
    let outcome = log.enforce_retention(1_000_000_000).unwrap();
    assert_eq!(outcome.deleted_segments, 1);
    assert_eq!(log.aborted_txns(0, i64::MAX), vec![]);
    assert!(txn_files(dir.path()).is_empty());
    storage.close().unwrap();
}

#[test]
fn an_orphaned_txnindex_is_removed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path());
    let (log, _) = storage.open_log("t-0", config()).unwrap();
    aborted(&log, 1, 2);
    storage.close().unwrap();
    let orphan = dir.path().join("t-0").join(file_name(12345));
    fs::copy(dir.path().join("t-0").join(file_name(0)), &orphan).unwrap();
    let storage = open(dir.path());
    let (log, _) = storage.open_log("t-0", config()).unwrap();
    assert!(!orphan.exists());
    assert_eq!(log.aborted_txns(0, i64::MAX).len(), 1);
    storage.close().unwrap();
}

#[test]
fn deleting_the_log_deletes_its_txnindex() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path());
    let (log, _) = storage.open_log("t-0", config()).unwrap();
    aborted(&log, 1, 2);
    drop(log);
    storage.delete_log("t-0").unwrap();
    assert!(!dir.path().join("t-0").exists());
    let (log, _) = storage.open_log("t-0", config()).unwrap();
    assert_eq!(log.aborted_txns(0, i64::MAX), vec![]);
    storage.close().unwrap();
}

#[test]
fn the_control_scan_reports_each_markers_type() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path());
    let (log, _) = storage.open_log("t-0", config()).unwrap();
    append_data(&log, 1, 3); // 0..=2
    append_marker(&log, 1, ControlType::Commit); // 3
    log.append(&crate::batch(1, 2, 10, 5), 0).unwrap(); // 4..=5, not transactional
    log.roll().unwrap();
    append_data(&log, 2, 1); // 6
    append_marker(&log, 2, ControlType::Abort); // 7
    // A control batch of another type (LEADER_CHANGE) is no transaction marker.
    let mut other = BatchBuilder::new(0).producer(3, 0, -1);
    other.push(1, Some(&[0, 0, 0, 2]), Some(&[0, 0]), &[]);
    let mut other = other.build().to_vec();
    other[22] |= 0x20; // control attribute
    let crc = crc32c::crc32c(&other[21..]);
    other[17..21].copy_from_slice(&crc.to_be_bytes());
    log.append(&other, 0).unwrap(); // 8
    // One whose key is unreadable is reported as no marker, not as an error.
    let mut garbled = BatchBuilder::new(0).producer(3, 0, -1);
    garbled.push(1, Some(&[0]), None, &[]);
    let mut garbled = garbled.build().to_vec();
    garbled[22] |= 0x20;
    let crc = crc32c::crc32c(&garbled[21..]);
    garbled[17..21].copy_from_slice(&crc.to_be_bytes());
    log.append(&garbled, 0).unwrap(); // 9

    let mut seen = Vec::new();
    log.for_each_batch_control(0, |h, control| {
        seen.push((h.base_offset, h.is_control(), control))
    })
    .unwrap();
    assert_eq!(
        seen,
        vec![
            (0, false, None),
            (3, true, Some(ControlType::Commit)),
            (4, false, None),
            (6, false, None),
            (7, true, Some(ControlType::Abort)),
            (8, true, None),
            (9, true, None),
        ]
    );
    let mut from_six = Vec::new();
    log.for_each_batch_control(6, |h, control| from_six.push((h.base_offset, control)))
        .unwrap();
    assert_eq!(
        from_six,
        vec![
            (6, None),
            (7, Some(ControlType::Abort)),
            (8, None),
            (9, None)
        ]
    );
    storage.close().unwrap();
}
