//! Behaviours of one log: offsets, batch-aligned reads, time lookups, rolls, retention,
//! DeleteRecords, clean and unclean reopen, locking, and damage reporting.

use std::fs;

use basalt_storage::{FsyncPolicy, LogConfig, StorageError, StorageOptions};

use crate::{at_offset, batch, open, small_config};

#[test]
fn appends_get_dense_offsets_and_reads_return_whole_batches() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path());
    let (log, _) = storage
        .open_log("t-0", LogConfig::default())
        .expect("open log");
    let batches = [
        batch(1, 3, 10, 100),
        batch(2, 2, 10, 200),
        batch(3, 4, 10, 300),
    ];
    let mut bases = Vec::new();
    for b in &batches {
        let appended = log.append(b, 0).unwrap();
        appended.durable.wait().unwrap();
        bases.push(appended.base_offset);
    }
    assert_eq!(bases, vec![0, 3, 5]);
    assert_eq!(log.log_end_offset(), 9);
    assert_eq!(log.durable_end_offset(), 9);

    // A read inside the second batch returns it whole, and what follows within the budget.
    let r = log.read(4, 1 << 20, i64::MAX).unwrap();
    let mut expected = at_offset(&batches[1], 3);
    expected.extend_from_slice(&at_offset(&batches[2], 5));
    assert_eq!(&r.records[..], &expected[..]);
    assert_eq!(r.next_offset, 9);

    // A budget smaller than a batch still returns one whole batch.
    let r = log.read(0, 1, i64::MAX).unwrap();
    assert_eq!(&r.records[..], &at_offset(&batches[0], 0)[..]);
    assert_eq!(r.next_offset, 3);

    // The upper bound (a high watermark) stops before batches starting at or past it.
    let r = log.read(0, 1 << 20, 5).unwrap();
    assert_eq!(r.next_offset, 5);
    assert_eq!(log.read(5, 1 << 20, 5).unwrap().records.len(), 0);

    // At the end: empty; past it: out of range.
    assert!(log.read(9, 100, i64::MAX).unwrap().records.is_empty());
    assert!(matches!(
        log.read(10, 100, i64::MAX),
        Err(StorageError::OffsetOutOfRange {
            offset: 10,
            log_start_offset: 0,
            log_end_offset: 9
        })
    ));
    storage.close().unwrap();
}

#[test]
fn one_call_appends_several_batches_and_invalid_input_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path());
    let (log, _) = storage.open_log("t-0", LogConfig::default()).unwrap();
    let mut two = batch(1, 2, 5, 1).to_vec();
    two.extend_from_slice(&batch(2, 3, 5, 2));
    let appended = log.append(&two, 0).unwrap();
    assert_eq!(appended.batches.len(), 2);
    assert_eq!(appended.batches[1].base_offset, 2);
    assert_eq!(appended.last_offset, 4);

    let mut bad = batch(3, 1, 5, 3).to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 0x55;
    let mut mixed = batch(4, 1, 5, 4).to_vec();
    let position = mixed.len();
    mixed.extend_from_slice(&bad);
    match log.append(&mixed, 0) {
        Err(StorageError::InvalidBatch { position: p, .. }) => assert_eq!(p, position),
        other => panic!("expected InvalidBatch, got {other:?}"),
    }
    assert!(matches!(log.append(&[], 0), Err(StorageError::EmptyAppend)));
    assert!(matches!(
        log.append(&two[..10], 0),
        Err(StorageError::InvalidBatch { .. })
    ));
    assert_eq!(
        log.log_end_offset(),
        5,
        "a rejected append leaves the log as it was"
    );
    let r = log.read(0, 1 << 20, i64::MAX).unwrap();
    assert_eq!(r.records.len(), two.len());
}

#[test]
fn timestamp_lookup_finds_the_first_batch_reaching_the_time() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path());
    let (log, _) = storage
        .open_log("t-0", small_config(FsyncPolicy::Os))
        .unwrap();
    // Timestamps that are not monotonic, across several segments.
    let stamps = [100, 300, 200, 400, 350, 500, 450, 600];
    for (i, ts) in stamps.iter().enumerate() {
        for _ in 0..4 {
            log.append(&batch(i as u64, 5, 200, *ts), 0).unwrap();
        }
    }
    assert!(log.segment_count() > 2, "the test needs several segments");
    for t in [0, 100, 150, 250, 300, 301, 450, 599, 600] {
        let found = log.find_by_timestamp(t).unwrap().expect("a batch");
        // The first batch (in offset order) whose max timestamp reaches t.
        let first = stamps.iter().position(|ts| *ts >= t).unwrap();
        assert_eq!(found.base_offset, first as i64 * 20, "t = {t}");
    }
    assert!(log.find_by_timestamp(601).unwrap().is_none());
    let max = log.max_timestamp().unwrap().unwrap();
    assert_eq!(max.max_timestamp, 600);
    assert_eq!(max.base_offset, 7 * 20);
}

#[test]
fn segments_roll_by_size_and_by_age_and_reads_cross_them() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path());
    let config = LogConfig {
        segment_age_ms_max: 1000,
        ..small_config(FsyncPolicy::Os)
    };
    let (log, _) = storage.open_log("t-0", config).unwrap();
    let b = batch(7, 4, 1000, 1);
    for _ in 0..10 {
        log.append(&b, 0).unwrap();
    }
    let by_size = log.segment_count();
    assert!(by_size >= 3, "16 KiB segments of 4 KiB batches: {by_size}");
    log.append(&b, 5000).unwrap();
    assert_eq!(log.segment_count(), by_size + 1, "rolled by age");
    let names: Vec<String> = fs::read_dir(log.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".log"))
        .collect();
    assert!(names.contains(&"00000000000000000000.log".to_string()));
    assert!(names.iter().all(|n| n.len() == 24));
    // Read everything back batch by batch.
    let mut offset = 0;
    while offset < log.log_end_offset() {
        let r = log.read(offset, 1, i64::MAX).unwrap();
        assert_eq!(&r.records[..], &at_offset(&b, offset)[..]);
        offset = r.next_offset;
    }
    assert_eq!(offset, 44);
}

#[test]
fn retention_deletes_closed_segments_by_age_and_by_size() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path());
    let config = LogConfig {
        retention_ms: 1000,
        ..small_config(FsyncPolicy::Os)
    };
    let (log, _) = storage.open_log("t-0", config.clone()).unwrap();
    for i in 0..20 {
        // Old timestamps first, then recent ones.
        let ts = if i < 10 { 1_000 } else { 100_000 };
        log.append(&batch(i, 4, 1000, ts), 0).unwrap();
    }
    let before = log.segment_count();
    let out = log.enforce_retention(100_500).unwrap();
    assert!(out.deleted_segments > 0);
    assert_eq!(log.segment_count(), before - out.deleted_segments);
    let start = log.log_start_offset();
    assert_eq!(start, out.log_start_offset);
    assert!(
        start > 0 && start <= 40,
        "only old batches go: start {start}"
    );
    assert!(matches!(
        log.read(0, 100, i64::MAX),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    assert!(log.read(start, 100, i64::MAX).is_ok());
    // Nothing is old enough any more.
    assert_eq!(log.enforce_retention(100_500).unwrap().deleted_segments, 0);

    // By size: keep at most ~20 KiB; the active segment always stays.
    log.set_config(LogConfig {
        retention_ms: -1,
        retention_bytes: 20 * 1024,
        ..config
    });
    log.enforce_retention(100_500).unwrap();
    let size = log.size_bytes();
    assert!(size <= 20 * 1024 + 16 * 1024, "size {size}");
    assert!(log.segment_count() >= 1);
    let r = log.read(log.log_start_offset(), 1 << 20, i64::MAX).unwrap();
    assert!(!r.records.is_empty());
}

#[test]
fn delete_records_moves_the_start_durably_without_rewriting() {
    let dir = tempfile::tempdir().unwrap();
    {
        let storage = open(dir.path());
        let (log, _) = storage
            .open_log("t-0", small_config(FsyncPolicy::Os))
            .unwrap();
        for i in 0..12 {
            log.append(&batch(i, 4, 1000, 1), 0).unwrap();
        }
        let segments = log.segment_count();
        assert_eq!(log.delete_records(22).unwrap(), 22);
        assert!(log.segment_count() < segments, "wholly deleted segments go");
        assert!(matches!(
            log.read(21, 10, i64::MAX),
            Err(StorageError::OffsetOutOfRange { .. })
        ));
        // Reading at the new start returns the batch that contains it.
        let r = log.read(22, 1, i64::MAX).unwrap();
        assert_eq!(r.next_offset, 24);
        assert_eq!(log.delete_records(10).unwrap(), 22, "never moves back");
        assert!(log.delete_records(49).is_err(), "past the end");
        // Crash: no clean close.
    }
    let storage = open(dir.path());
    let (log, report) = storage
        .open_log("t-0", small_config(FsyncPolicy::Os))
        .unwrap();
    assert!(!report.clean);
    assert_eq!(log.log_start_offset(), 22);
    assert_eq!(log.log_end_offset(), 48);
}

#[test]
fn clean_reopen_skips_the_scan_and_unclean_reopen_scans() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(FsyncPolicy::Always);
    let storage = open(dir.path());
    let (log, _) = storage.open_log("t-0", config.clone()).unwrap();
    for i in 0..10 {
        log.append(&batch(i, 3, 700, i as i64), 0)
            .unwrap()
            .durable
            .wait()
            .unwrap();
    }
    let before = log.read(0, 1 << 20, i64::MAX).unwrap();
    let max_before = log.max_timestamp().unwrap();
    drop(log);
    storage.close().unwrap();

    let storage = open(dir.path());
    assert!(storage.was_clean_shutdown());
    let (log, report) = storage.open_log("t-0", config.clone()).unwrap();
    assert!(report.clean);
    assert_eq!(report.scanned_segments, 0);
    assert_eq!(log.log_end_offset(), 30);
    assert_eq!(log.read(0, 1 << 20, i64::MAX).unwrap(), before);
    assert_eq!(log.max_timestamp().unwrap(), max_before);
    // Appending after a clean reopen continues the active segment and its indexes.
    log.append(&batch(99, 1, 10, 99), 0).unwrap();
    drop(log);
    drop(storage); // a crash: no marker

    let storage = open(dir.path());
    assert!(!storage.was_clean_shutdown());
    let (log, report) = storage.open_log("t-0", config).unwrap();
    assert!(!report.clean);
    assert_eq!(report.scanned_segments, 1);
    assert_eq!(report.truncated_bytes, 0);
    assert_eq!(log.log_end_offset(), 31);
    assert_eq!(log.find_by_timestamp(99).unwrap().unwrap().base_offset, 30);
}

#[test]
fn a_data_directory_is_used_by_one_process_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path());
    assert!(matches!(
        basalt_storage::Storage::open(dir.path(), StorageOptions::default()),
        Err(StorageError::Locked { .. })
    ));
    drop(storage);
    open(dir.path());
}

#[test]
fn logs_are_listed_deleted_and_names_checked() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path());
    for name in ["a-0", "a-1", "b-0"] {
        let (log, _) = storage.open_log(name, LogConfig::default()).unwrap();
        log.append(&batch(1, 1, 1, 1), 0)
            .unwrap()
            .durable
            .wait()
            .unwrap();
    }
    assert_eq!(storage.log_names().unwrap(), vec!["a-0", "a-1", "b-0"]);
    storage.delete_log("a-1").unwrap();
    assert_eq!(storage.log_names().unwrap(), vec!["a-0", "b-0"]);
    assert!(storage.log("a-1").is_none());
    for bad in ["", ".", "..", "a/b", ".hidden"] {
        assert!(matches!(
            storage.open_log(bad, LogConfig::default()),
            Err(StorageError::InvalidName { .. })
        ));
    }
}

#[test]
fn damage_in_an_older_segment_is_reported_with_file_and_position() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(FsyncPolicy::Os);
    let b = batch(5, 4, 1000, 1);
    let size = b.len() as u64;
    {
        let storage = open(dir.path());
        let (log, _) = storage.open_log("t-0", config.clone()).unwrap();
        for _ in 0..12 {
            log.append(&b, 0).unwrap();
        }
        assert!(log.segment_count() >= 3);
        drop(log);
        storage.close().unwrap();
    }
    // Flip a payload byte of the second batch of the first segment and drop its index, so the
    // segment is rebuilt (and checked) on first use.
    let seg0 = dir.path().join("t-0/00000000000000000000.log");
    let mut raw = fs::read(&seg0).unwrap();
    raw[(size + 100) as usize] ^= 0xff;
    fs::write(&seg0, raw).unwrap();
    fs::remove_file(dir.path().join("t-0/00000000000000000000.index")).unwrap();

    let storage = open(dir.path());
    let (log, _) = storage.open_log("t-0", config).unwrap();
    // Before the damage: served.
    let r = log.read(0, 1, i64::MAX).unwrap();
    assert_eq!(&r.records[..], &at_offset(&b, 0)[..]);
    // At or past it: a clear error naming the file and byte position.
    match log.read(4, 1, i64::MAX) {
        Err(StorageError::Damaged(d)) => {
            assert_eq!(d.path, seg0);
            assert_eq!(d.position, size);
            assert_eq!(d.offset, 4);
            assert!(d.reason.contains("crc"), "{}", d.reason);
        }
        other => panic!("expected Damaged, got {other:?}"),
    }
    assert!(matches!(
        log.read(20, 1, i64::MAX),
        Err(StorageError::Damaged(_))
    ));
    assert!(matches!(log.append(&b, 0), Err(StorageError::Damaged(_))));
    assert!(log.damage().is_some());
}

#[test]
fn a_broken_batch_frame_found_by_a_read_is_damage_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig::default();
    let b = batch(5, 2, 100, 1);
    {
        let storage = open(dir.path());
        let (log, _) = storage.open_log("t-0", config.clone()).unwrap();
        for _ in 0..5 {
            log.append(&b, 0).unwrap().durable.wait().unwrap();
        }
        drop(log);
        storage.close().unwrap();
    }
    // Break the length field of the third batch; the clean marker means no scan at open.
    let seg0 = dir.path().join("t-0/00000000000000000000.log");
    let mut raw = fs::read(&seg0).unwrap();
    let at = 2 * b.len() + 8;
    raw[at..at + 4].copy_from_slice(&(-7i32).to_be_bytes());
    fs::write(&seg0, raw).unwrap();
    let storage = open(dir.path());
    let (log, _) = storage.open_log("t-0", config).unwrap();
    assert!(log.read(0, 1, i64::MAX).is_ok());
    match log.read(4, 1, i64::MAX) {
        Err(StorageError::Damaged(d)) => {
            assert_eq!(d.position, 2 * b.len() as u64);
            assert_eq!(d.offset, 4);
        }
        other => panic!("expected Damaged, got {other:?}"),
    }
}

#[test]
fn interval_policy_syncs_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path());
    let config = LogConfig {
        fsync: FsyncPolicy::Interval { interval_ms: 20 },
        ..LogConfig::default()
    };
    let (log, _) = storage.open_log("t-0", config).unwrap();
    let appended = log.append(&batch(1, 2, 10, 1), 0).unwrap();
    assert!(appended.durable.is_immediate());
    // Wait (bounded) for the background sync; no timing is asserted.
    for _ in 0..500 {
        if log.durable_end_offset() == 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(log.durable_end_offset(), 2);
}

/// `read_file` names exactly the bytes `read` and `read_within` return, for every offset, budget
/// and upper bound, across segments and index entries (small segments and a small index
/// interval, so the index jump and the header walk both run), before and after reopening.
#[test]
fn file_reads_name_the_same_batches_as_copying_reads() {
    use std::os::unix::fs::FileExt;
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(FsyncPolicy::Always);
    let check = |log: &basalt_storage::Log| {
        let end = log.log_end_offset();
        for offset in (0..=end).step_by(3) {
            for max_bytes in [1usize, 200, 700, 3000, 1 << 20] {
                for upper in [offset, offset + 5, end - 7, end, i64::MAX] {
                    for at_least_one in [true, false] {
                        let copied = if at_least_one {
                            log.read(offset, max_bytes, upper)
                        } else {
                            log.read_within(offset, max_bytes, upper)
                        }
                        .unwrap();
                        let named = log
                            .read_file(offset, max_bytes, upper, at_least_one)
                            .unwrap();
                        let bytes = match named.region {
                            Some((file, position, len)) => {
                                let mut buf = vec![0; len];
                                file.read_exact_at(&mut buf, position).unwrap();
                                buf
                            }
                            None => Vec::new(),
                        };
                        let case = format!(
                            "offset {offset} max {max_bytes} upper {upper} at_least_one {at_least_one}"
                        );
                        assert_eq!(&bytes[..], &copied.records[..], "{case}");
                        assert_eq!(named.next_offset, copied.next_offset, "{case}");
                    }
                }
            }
        }
    };
    {
        let storage = open(dir.path());
        let (log, _) = storage.open_log("t-0", config.clone()).unwrap();
        for i in 0..120u64 {
            // Batches of 1 to 6 records of varying size: some smaller than the index interval,
            // some larger.
            let b = batch(
                i,
                1 + (i % 6) as usize,
                10 + (i as usize * 37) % 300,
                1000 + i as i64,
            );
            log.append(&b, 0).unwrap().durable.wait().unwrap();
        }
        assert!(log.segment_count() > 2, "the log rolled");
        check(&log);
        storage.close().unwrap();
    }
    let storage = open(dir.path());
    let (log, _) = storage.open_log("t-0", config).unwrap();
    check(&log);
    assert!(matches!(
        log.read_file(log.log_end_offset() + 1, 100, i64::MAX, true),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    storage.close().unwrap();
}
