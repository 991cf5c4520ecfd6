//! The leader-epoch checkpoint (`LOG-5`): stamping, reload, rebuild of a damaged or missing
//! file, and the start moving with DeleteRecords.

use std::fs;

use basalt_record::BatchHeader;
use basalt_storage::epoch_cache::EpochEntry;
use basalt_storage::{FsyncPolicy, LEADER_EPOCH_FILE, StorageError};

use crate::{batch, open, small_config};

fn pairs(log: &basalt_storage::Log) -> Vec<(i32, i64)> {
    log.leader_epochs()
        .entries()
        .iter()
        .map(|e: &EpochEntry| (e.epoch, e.start_offset))
        .collect()
}

fn stored_epochs(log: &basalt_storage::Log) -> Vec<(i64, i32)> {
    let mut out = Vec::new();
    log.for_each_batch_header(0, |h: &BatchHeader| {
        out.push((h.base_offset, h.partition_leader_epoch))
    })
    .unwrap();
    out
}

#[test]
fn stamped_appends_carry_the_epoch_and_new_epochs_are_checkpointed() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path());
    let (log, _) = storage
        .open_log("t-0", small_config(FsyncPolicy::Always))
        .unwrap();
    let file = dir.path().join("t-0").join(LEADER_EPOCH_FILE);
    assert!(!file.exists());
    log.append_stamped(&batch(1, 3, 10, 0), 0, 0).unwrap();
    log.append_stamped(&batch(2, 2, 10, 0), 0, 0).unwrap();
    assert_eq!(fs::read_to_string(&file).unwrap(), "0\n1\n0 0\n");
    log.assign_leader_epoch(2, log.log_end_offset()).unwrap();
    log.append_stamped(&batch(3, 1, 10, 0), 2, 0).unwrap();
    log.append_stamped(&batch(4, 1, 10, 0), 5, 0).unwrap();
    // An unstamped append keeps the producer's -1 and records nothing.
    log.append(&batch(5, 1, 10, 0), 0).unwrap();
    assert_eq!(pairs(&log), [(0, 0), (2, 5), (5, 6)]);
    assert_eq!(fs::read_to_string(&file).unwrap(), "0\n3\n0 0\n2 5\n5 6\n");
    assert_eq!(
        stored_epochs(&log),
        [(0, 0), (3, 0), (5, 2), (6, 5), (7, -1)]
    );
    // Every stamped batch still passes its CRC check when read back.
    let r = log.read(0, 1 << 20, i64::MAX).unwrap();
    assert_eq!(
        basalt_record::BatchIter::verified(&r.records)
            .map(|b| b.unwrap().0.partition_leader_epoch)
            .collect::<Vec<_>>(),
        [0, 0, 2, 5, -1]
    );
    assert!(matches!(
        log.append_stamped(&batch(6, 1, 10, 0), -1, 0),
        Err(StorageError::InvalidLeaderEpoch { epoch: -1 })
    ));
    storage.close().unwrap();

    // Reloaded as written, clean or not.
    let storage = open(dir.path());
    let (log, _) = storage
        .open_log("t-0", small_config(FsyncPolicy::Always))
        .unwrap();
    assert_eq!(pairs(&log), [(0, 0), (2, 5), (5, 6)]);
    assert_eq!(
        log.leader_epochs()
            .end_offset_for(2, log.log_end_offset())
            .end_offset,
        6
    );
    storage.close().unwrap();
}

#[test]
fn a_missing_or_damaged_checkpoint_is_rebuilt_from_the_batches() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t-0").join(LEADER_EPOCH_FILE);
    {
        let storage = open(dir.path());
        let (log, _) = storage
            .open_log("t-0", small_config(FsyncPolicy::Always))
            .unwrap();
        for (i, epoch) in [1, 1, 3, 3, 4].into_iter().enumerate() {
            log.append_stamped(&batch(i as u64, 2, 10, 0), epoch, 0)
                .unwrap();
        }
        storage.close().unwrap();
    }
    for damage in [
        None,
        Some("garbage"),
        Some("0\n3\n1 0\n3 4\n"),
        Some("0\n2\n3 0\n1 4\n"),
        Some("1\n1\n1 0\n"),
        Some("0\n1\n1 0\n9 9\n"),
        Some(""),
    ] {
        match damage {
            None => fs::remove_file(&file).unwrap(),
            Some(text) => fs::write(&file, text).unwrap(),
        }
        let storage = open(dir.path());
        let (log, _) = storage
            .open_log("t-0", small_config(FsyncPolicy::Always))
            .unwrap();
        assert_eq!(pairs(&log), [(1, 0), (3, 4), (4, 8)], "{damage:?}");
        assert_eq!(
            fs::read_to_string(&file).unwrap(),
            "0\n3\n1 0\n3 4\n4 8\n",
            "{damage:?}"
        );
        storage.close().unwrap();
    }
}

#[test]
fn entries_past_the_log_end_are_dropped_and_the_start_follows_delete_records() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t-0").join(LEADER_EPOCH_FILE);
    {
        let storage = open(dir.path());
        let (log, _) = storage
            .open_log("t-0", small_config(FsyncPolicy::Always))
            .unwrap();
        for (i, epoch) in [1, 1, 2, 2, 3].into_iter().enumerate() {
            log.append_stamped(&batch(i as u64, 2, 10, 0), epoch, 0)
                .unwrap();
        }
        // A leader elected at the end that wrote nothing yet.
        log.assign_leader_epoch(7, 10).unwrap();
        log.delete_records(5).unwrap();
        assert_eq!(pairs(&log), [(2, 5), (3, 8), (7, 10)]);
        assert_eq!(fs::read_to_string(&file).unwrap(), "0\n3\n2 5\n3 8\n7 10\n");
        storage.close().unwrap();
    }
    // A checkpoint ahead of the log (its tail lost) is cut back to the log at open.
    fs::write(&file, "0\n4\n2 5\n3 8\n7 10\n8 20\n").unwrap();
    let storage = open(dir.path());
    let (log, _) = storage
        .open_log("t-0", small_config(FsyncPolicy::Always))
        .unwrap();
    assert_eq!(pairs(&log), [(2, 5), (3, 8), (7, 10)]);
    assert_eq!(fs::read_to_string(&file).unwrap(), "0\n3\n2 5\n3 8\n7 10\n");
    storage.close().unwrap();
}
