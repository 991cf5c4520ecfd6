//! A follower's log: replica appends of the leader's batches as they are, truncation of a
//! divergent end (`truncate_to`), starting again at another offset (`reset_to`), and the
//! advisory high-watermark checkpoint. Every check reads the log back, and again after a clean
//! and an unclean reopen.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use basalt_record::{BatchBuilder, BatchHeader, ControlType, control_batch};
use basalt_storage::{AbortedTxn, FsyncPolicy, LEADER_EPOCH_FILE, Log, LogConfig, StorageError};
use bytes::Bytes;

use crate::{batch, open, small_config};

const NAME: &str = "t-0";

fn config() -> LogConfig {
    small_config(FsyncPolicy::Always)
}

fn log_dir(dir: &Path) -> PathBuf {
    dir.join(NAME)
}

fn pairs(log: &Log) -> Vec<(i32, i64)> {
    log.leader_epochs()
        .entries()
        .iter()
        .map(|e| (e.epoch, e.start_offset))
        .collect()
}

/// Every batch of the log from its start, as one byte string (reads cross segments).
fn all_bytes(log: &Log) -> Vec<u8> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let r = log.read(offset, 1 << 30, i64::MAX).unwrap();
        assert!(!r.records.is_empty(), "nothing at {offset}");
        out.extend_from_slice(&r.records);
        offset = r.next_offset;
    }
    out
}

/// (base offset, last offset, leader epoch) of every batch.
fn headers(log: &Log) -> Vec<(i64, i64, i32)> {
    let mut out = Vec::new();
    log.for_each_batch_header(0, |h: &BatchHeader| {
        out.push((h.base_offset, h.last_offset(), h.partition_leader_epoch))
    })
    .unwrap();
    out
}

/// The batches in `bytes` with their own offsets, checking every CRC.
fn split(bytes: &[u8]) -> Vec<(BatchHeader, Vec<u8>)> {
    basalt_record::BatchIter::verified(bytes)
        .map(|item| {
            let (h, range) = item.unwrap();
            (h, bytes[range].to_vec())
        })
        .collect()
}

fn files(dir: &Path, ext: &str) -> Vec<i64> {
    let mut out: Vec<i64> = fs::read_dir(log_dir(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .map(|p| p.file_stem().unwrap().to_str().unwrap().parse().unwrap())
        .collect();
    out.sort_unstable();
    out
}

fn txn_batch(producer_id: i64, records: usize) -> Bytes {
    let mut b = BatchBuilder::new(0)
        .producer(producer_id, 0, 0)
        .transactional();
    for r in 0..records {
        b.push(1000, Some(b"k"), Some(format!("v{r}").as_bytes()), &[]);
    }
    b.build()
}

/// What a log looks like from outside, for comparing two logs or one log across a reopen.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    start: i64,
    end: i64,
    bytes: Vec<u8>,
    epochs: Vec<(i32, i64)>,
    txns: Vec<AbortedTxn>,
    high_watermark: i64,
}

fn snapshot(log: &Log) -> Snapshot {
    Snapshot {
        start: log.log_start_offset(),
        end: log.log_end_offset(),
        bytes: all_bytes(log),
        epochs: pairs(log),
        txns: log.aborted_txns(0, i64::MAX),
        high_watermark: log.stored_high_watermark(),
    }
}

/// Reopens the log as it was left (cleanly, if it was closed) and then after a crash, and checks
/// it is `expected` both times.
fn assert_reopens_as(dir: &Path, expected: &Snapshot) {
    for crashed in [false, true] {
        let storage = open(dir);
        if crashed {
            assert!(!storage.was_clean_shutdown());
        }
        let (log, report) = storage.open_log(NAME, config()).unwrap();
        assert!(report.damage.is_none(), "crashed {crashed}: {report:?}");
        assert_eq!(&snapshot(&log), expected, "crashed {crashed}");
        drop(log);
        if crashed {
            storage.close().unwrap();
        } else {
            drop(storage); // a crash: no clean-shutdown marker
        }
    }
}

/// A leader's log: stamped batches of epochs 1, 3 and 5, a transaction of producer 7 aborted in
/// epoch 3 and one of producer 8 committed in epoch 5, over several segments. Returns the batches'
/// (base offset, epoch) pairs.
fn write_leader(log: &Log) -> Vec<(i64, i32)> {
    let mut out = Vec::new();
    let mut stamped = |bytes: &[u8], epoch: i32| {
        let a = log.append_stamped(bytes, epoch, 0).unwrap();
        a.durable.wait().unwrap();
        out.push((a.base_offset, epoch));
        a.base_offset
    };
    for i in 0..6 {
        stamped(&batch(i, 4, 600, 100 + i as i64), 1);
    }
    let first = stamped(&txn_batch(7, 3), 3);
    for i in 6..12 {
        stamped(&batch(i, 3, 1000, 200 + i as i64), 3);
    }
    let abort = stamped(&control_batch(7, 0, ControlType::Abort, 1, 300), 3);
    log.append_aborted_txn(AbortedTxn {
        producer_id: 7,
        first_offset: first,
        last_offset: abort,
        last_stable_offset: first,
    })
    .unwrap();
    stamped(&txn_batch(8, 2), 5);
    for i in 12..20 {
        stamped(&batch(i, 5, 800, 300 + i as i64), 5);
    }
    stamped(&control_batch(8, 0, ControlType::Commit, 1, 400), 5);
    out
}

/// Copies `leader` into `follower` through replica appends of the leader's reads, `chunk` bytes
/// at a time at most (whole batches).
fn replicate(leader: &Log, follower: &Log, chunk: usize) {
    while follower.log_end_offset() < leader.log_end_offset() {
        let r = leader
            .read(follower.log_end_offset(), chunk, i64::MAX)
            .unwrap();
        let a = follower.append_replica(&r.records, 0).unwrap();
        assert_eq!(a.base_offset, r.records_base());
        assert_eq!(a.last_offset + 1, r.next_offset);
        a.durable.wait().unwrap();
    }
}

trait RecordsBase {
    fn records_base(&self) -> i64;
}

impl RecordsBase for basalt_storage::ReadResult {
    fn records_base(&self) -> i64 {
        BatchHeader::parse(&self.records).unwrap().base_offset
    }
}

#[test]
fn replica_appends_copy_a_leader_byte_for_byte_with_its_epochs() {
    let leader_dir = tempfile::tempdir().unwrap();
    let follower_dir = tempfile::tempdir().unwrap();
    let leader_storage = open(leader_dir.path());
    let (leader, _) = leader_storage.open_log(NAME, config()).unwrap();
    let stamped = write_leader(&leader);
    assert!(leader.segment_count() > 3, "the leader spans segments");

    let follower_storage = open(follower_dir.path());
    let (follower, _) = follower_storage.open_log(NAME, config()).unwrap();
    replicate(&leader, &follower, 3000);

    assert_eq!(follower.log_end_offset(), leader.log_end_offset());
    assert_eq!(follower.durable_end_offset(), follower.log_end_offset());
    assert_eq!(all_bytes(&follower), all_bytes(&leader));
    assert_eq!(headers(&follower), headers(&leader));
    let epochs: Vec<i32> = headers(&follower).iter().map(|h| h.2).collect();
    assert_eq!(epochs, stamped.iter().map(|s| s.1).collect::<Vec<_>>());
    assert_eq!(pairs(&follower), pairs(&leader));
    assert_eq!(pairs(&follower).len(), 3);
    assert_eq!(
        fs::read_to_string(log_dir(follower_dir.path()).join(LEADER_EPOCH_FILE)).unwrap(),
        fs::read_to_string(log_dir(leader_dir.path()).join(LEADER_EPOCH_FILE)).unwrap()
    );
    assert!(follower.segment_count() > 3, "the follower rolled too");
    // Reads by offset and by time agree in the middle of the log.
    for offset in [0, 7, 25, 40, leader.log_end_offset() - 1] {
        assert_eq!(
            follower.read(offset, 2000, i64::MAX).unwrap(),
            leader.read(offset, 2000, i64::MAX).unwrap(),
            "offset {offset}"
        );
    }
    for ts in [0, 105, 210, 315] {
        assert_eq!(
            follower.find_by_timestamp(ts).unwrap(),
            leader.find_by_timestamp(ts).unwrap()
        );
    }
    // The follower takes the entry for the aborted transaction like the leader did.
    for txn in leader.aborted_txns(0, i64::MAX) {
        follower.append_aborted_txn(txn).unwrap();
    }
    let expected = snapshot(&follower);
    assert_eq!(expected.bytes, all_bytes(&leader));
    leader_storage.close().unwrap();
    drop(follower);
    follower_storage.close().unwrap();
    assert_reopens_as(follower_dir.path(), &expected);
}

#[test]
fn replica_appends_that_do_not_fit_are_refused_and_write_nothing() {
    let leader_dir = tempfile::tempdir().unwrap();
    let follower_dir = tempfile::tempdir().unwrap();
    let leader_storage = open(leader_dir.path());
    let (leader, _) = leader_storage.open_log(NAME, config()).unwrap();
    write_leader(&leader);
    let batches = split(&all_bytes(&leader));

    let storage = open(follower_dir.path());
    let (log, _) = storage.open_log(NAME, config()).unwrap();
    log.append_replica(&batches[0].1, 0).unwrap();
    log.append_replica(&batches[1].1, 0).unwrap();
    let size = log.size_bytes();
    let checkpoint = fs::read_to_string(log_dir(follower_dir.path()).join(LEADER_EPOCH_FILE));
    let unchanged = |log: &Log| {
        assert_eq!(log.log_end_offset(), batches[2].0.base_offset);
        assert_eq!(log.size_bytes(), size);
        assert_eq!(pairs(log), [(1, 0)]);
        assert_eq!(
            fs::read_to_string(log_dir(follower_dir.path()).join(LEADER_EPOCH_FILE)).unwrap(),
            *checkpoint.as_ref().unwrap()
        );
    };

    // Not at the log end: a batch already held, and one past a gap.
    for b in [&batches[1], &batches[3]] {
        match log.append_replica(&b.1, 0) {
            Err(StorageError::NotContiguous { expected, found }) => {
                assert_eq!(expected, batches[2].0.base_offset);
                assert_eq!(found, b.0.base_offset);
            }
            other => panic!("{other:?}"),
        }
        unchanged(&log);
    }
    // A gap inside one append: the good first batch is not written either.
    let mut gap = batches[2].1.clone();
    gap.extend_from_slice(&batches[4].1);
    assert!(matches!(
        log.append_replica(&gap, 0),
        Err(StorageError::NotContiguous { expected, found })
            if expected == batches[3].0.base_offset && found == batches[4].0.base_offset
    ));
    unchanged(&log);
    // A flipped bit in the records fails the CRC.
    let mut bad = batches[2].1.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0x40;
    let mut two = batches[2].1.clone();
    two.extend_from_slice(&bad);
    for input in [&bad, &two] {
        assert!(matches!(
            log.append_replica(input, 0),
            Err(StorageError::InvalidBatch { .. })
        ));
        unchanged(&log);
    }
    // A torn batch.
    assert!(matches!(
        log.append_replica(&batches[2].1[..batches[2].1.len() - 1], 0),
        Err(StorageError::InvalidBatch { .. })
    ));
    assert!(matches!(
        log.append_replica(&[], 0),
        Err(StorageError::EmptyAppend)
    ));
    unchanged(&log);
    // Epochs: unstamped (-1), below the latest recorded, decreasing inside one append.
    let mut unstamped = batches[2].1.clone();
    basalt_record::set_partition_leader_epoch(&mut unstamped, -1);
    let mut older = batches[2].1.clone();
    log.assign_leader_epoch(2, batches[2].0.base_offset)
        .unwrap();
    basalt_record::set_partition_leader_epoch(&mut older, 1);
    for input in [&unstamped, &older] {
        assert!(matches!(
            log.append_replica(input, 0),
            Err(StorageError::InvalidLeaderEpoch { .. })
        ));
        assert_eq!(log.log_end_offset(), batches[2].0.base_offset);
        assert_eq!(log.size_bytes(), size);
        assert_eq!(pairs(&log), [(1, 0), (2, batches[2].0.base_offset)]);
    }
    let mut first = batches[2].1.clone();
    basalt_record::set_partition_leader_epoch(&mut first, 4);
    let mut second = batches[3].1.clone();
    basalt_record::set_partition_leader_epoch(&mut second, 3);
    first.extend_from_slice(&second);
    assert!(matches!(
        log.append_replica(&first, 0),
        Err(StorageError::InvalidLeaderEpoch { epoch: 3 })
    ));
    assert_eq!(log.size_bytes(), size);
    assert_eq!(pairs(&log), [(1, 0), (2, batches[2].0.base_offset)]);

    // Several new epochs in one append are each recorded at their first batch.
    let mut rising = Vec::new();
    for (i, b) in batches[2..5].iter().enumerate() {
        let mut bytes = b.1.clone();
        basalt_record::set_partition_leader_epoch(&mut bytes, 2 + i as i32 * 2);
        rising.extend_from_slice(&bytes);
    }
    let a = log.append_replica(&rising, 0).unwrap();
    assert_eq!(a.base_offset, batches[2].0.base_offset);
    assert_eq!(
        pairs(&log),
        [
            (1, 0),
            (2, batches[2].0.base_offset),
            (4, batches[3].0.base_offset),
            (6, batches[4].0.base_offset)
        ]
    );
    let expected = snapshot(&log);
    drop(log);
    storage.close().unwrap();
    leader_storage.close().unwrap();
    assert_reopens_as(follower_dir.path(), &expected);
}

/// A log of 40 single-batch appends of 3 records each (epoch 1, then 2 from batch 20), with
/// small segments; returns the batches as stored.
fn write_plain(log: &Log) -> Vec<(BatchHeader, Vec<u8>)> {
    for i in 0..40u64 {
        let epoch = if i < 20 { 1 } else { 2 };
        log.append_stamped(&batch(i, 3, 700, 1000 + i as i64), epoch, 0)
            .unwrap()
            .durable
            .wait()
            .unwrap();
    }
    split(&all_bytes(log))
}

/// What the log must hold after truncating `stored` at `offset` and appending `extra`.
fn expected_after(stored: &[(BatchHeader, Vec<u8>)], offset: i64) -> (i64, Vec<u8>) {
    let kept: Vec<&(BatchHeader, Vec<u8>)> = stored
        .iter()
        .filter(|(h, _)| h.last_offset() < offset)
        .collect();
    let end = kept.last().map_or(0, |(h, _)| h.next_offset());
    (end, kept.iter().flat_map(|(_, b)| b.clone()).collect())
}

/// Truncates a fresh 40-batch log at `offset` (chosen by `pick` from the segments' bases and the
/// batches), checks it, appends and reads back, and reopens it (after a close, or a crash).
fn truncate_case(crash: bool, pick: impl Fn(&[i64], &[(BatchHeader, Vec<u8>)]) -> i64) {
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path());
    let (log, _) = storage.open_log(NAME, config()).unwrap();
    let stored = write_plain(&log);
    log.store_high_watermark(log.log_end_offset()).unwrap();
    let bases = files(dir.path(), "log");
    assert!(bases.len() >= 5, "{bases:?}");
    let offset = pick(&bases, &stored);
    let (end, mut bytes) = expected_after(&stored, offset);

    assert_eq!(log.truncate_to(offset).unwrap(), end);
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(log.durable_end_offset(), end);
    assert_eq!(log.stored_high_watermark(), end);
    assert_eq!(all_bytes(&log), bytes);
    assert!(log.read(end, 1 << 20, i64::MAX).unwrap().records.is_empty());
    assert!(matches!(
        log.read(end + 1, 1 << 20, i64::MAX),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    // No segment file lies past the cut; the one holding it has no stale indexes.
    let now = files(dir.path(), "log");
    let holder = *now.last().unwrap();
    assert!(now.iter().all(|&b| b <= end), "{now:?} end {end}");
    assert_eq!(
        now,
        bases
            .iter()
            .copied()
            .filter(|&b| b <= end)
            .collect::<Vec<_>>()
    );
    assert!(!files(dir.path(), "index").contains(&holder));
    assert!(!files(dir.path(), "timeindex").contains(&holder));
    assert!(files(dir.path(), "index").iter().all(|b| now.contains(b)));
    let epochs = if end > stored[20].0.base_offset {
        vec![(1, 0), (2, stored[20].0.base_offset)]
    } else if end > 0 {
        vec![(1, 0)]
    } else {
        vec![]
    };
    assert_eq!(pairs(&log), epochs);

    // Appends continue at the new end, through rolls, and read back whole.
    let mut offsets = end;
    for i in 100..130u64 {
        let b = batch(i, 2, 600, 5000 + i as i64);
        let a = log.append_stamped(&b, 4, 0).unwrap();
        a.durable.wait().unwrap();
        assert_eq!(a.base_offset, offsets);
        bytes.extend_from_slice(&crate::at_offset_epoch(&b, offsets, 4));
        offsets = a.last_offset + 1;
    }
    assert_eq!(all_bytes(&log), bytes);
    assert_eq!(log.durable_end_offset(), log.log_end_offset());
    let mut expected_epochs = epochs.clone();
    expected_epochs.push((4, end));
    assert_eq!(pairs(&log), expected_epochs);
    assert_eq!(log.find_by_timestamp(5100).unwrap().unwrap().base_offset, {
        split(&bytes)
            .iter()
            .find(|(h, _)| h.max_timestamp >= 5100)
            .unwrap()
            .0
            .base_offset
    });
    let expected = snapshot(&log);
    drop(log);
    if crash {
        drop(storage);
    } else {
        storage.close().unwrap();
    }
    assert_reopens_as(dir.path(), &expected);
}

#[test]
fn truncate_in_the_middle_of_the_active_segment() {
    truncate_case(false, |bases, stored| {
        let active = *bases.last().unwrap();
        let b = stored.iter().find(|(h, _)| h.base_offset > active).unwrap();
        b.0.base_offset + 1 // inside a batch: the batch goes whole
    });
}

#[test]
fn truncate_at_a_sealed_segment_boundary() {
    truncate_case(true, |bases, _| bases[bases.len() - 3]);
}

#[test]
fn truncate_inside_a_sealed_segment() {
    truncate_case(true, |bases, stored| {
        let (from, to) = (bases[1], bases[2]);
        let inside: Vec<i64> = stored
            .iter()
            .map(|(h, _)| h.base_offset)
            .filter(|&b| b > from && b < to)
            .collect();
        inside[inside.len() / 2] + 2
    });
}

#[test]
fn truncate_everything_down_to_the_first_offset() {
    truncate_case(false, |_, _| 0);
}

#[test]
fn truncate_drops_aborted_transactions_and_epochs_past_the_cut() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path());
    let (log, _) = storage.open_log(NAME, config()).unwrap();
    write_leader(&log);
    let aborted = log.aborted_txns(0, i64::MAX);
    assert_eq!(aborted.len(), 1);
    let txn = aborted[0];
    // A second aborted transaction late in the log, in epoch 5.
    let first = log
        .append_stamped(&txn_batch(9, 2), 5, 0)
        .unwrap()
        .base_offset;
    let abort = log
        .append_stamped(&control_batch(9, 0, ControlType::Abort, 1, 500), 5, 0)
        .unwrap()
        .base_offset;
    let late = AbortedTxn {
        producer_id: 9,
        first_offset: first,
        last_offset: abort,
        last_stable_offset: first,
    };
    log.append_aborted_txn(late).unwrap();
    log.roll().unwrap();
    log.append_stamped(&batch(50, 2, 10, 600), 5, 0).unwrap();
    let epochs = pairs(&log);
    assert_eq!(epochs.len(), 3);
    let txn_files = files(dir.path(), "txnindex");
    assert_eq!(txn_files.len(), 2);

    // Cutting at the late abort marker drops its entry (and the file of its segment) only.
    assert_eq!(log.truncate_to(abort).unwrap(), abort);
    assert_eq!(log.aborted_txns(0, i64::MAX), [txn]);
    assert_eq!(pairs(&log), epochs);
    assert_eq!(files(dir.path(), "txnindex"), txn_files[..1]);
    let expected = snapshot(&log);
    drop(log);
    storage.close().unwrap();
    assert_reopens_as(dir.path(), &expected);

    // Cutting into epoch 3, past the first abort: epoch 5 goes, the first entry stays.
    let storage = open(dir.path());
    let (log, _) = storage.open_log(NAME, config()).unwrap();
    let cut = txn.last_offset + 1;
    assert_eq!(log.truncate_to(cut).unwrap(), cut);
    assert_eq!(pairs(&log), epochs[..2]);
    assert_eq!(log.aborted_txns(0, i64::MAX), [txn]);
    assert_eq!(
        fs::read_to_string(log_dir(dir.path()).join(LEADER_EPOCH_FILE)).unwrap(),
        format!(
            "0\n2\n{} {}\n{} {}\n",
            epochs[0].0, epochs[0].1, epochs[1].0, epochs[1].1
        )
    );
    // Cutting at the first abort marker: its entry goes, the segment's file with it.
    assert_eq!(log.truncate_to(txn.last_offset).unwrap(), txn.last_offset);
    assert!(log.aborted_txns(0, i64::MAX).is_empty());
    assert!(files(dir.path(), "txnindex").is_empty());
    // The leader's ABORT marker fetched again is indexed again, in a new file.
    let marker = control_batch(7, 0, ControlType::Abort, 1, 300);
    let a = log
        .append_replica(&at_epoch(&marker, txn.last_offset, 3), 0)
        .unwrap();
    assert_eq!(a.base_offset, txn.last_offset);
    log.append_aborted_txn(txn).unwrap();
    assert_eq!(log.aborted_txns(0, i64::MAX), [txn]);
    assert_eq!(files(dir.path(), "txnindex"), txn_files[..1]);
    assert_eq!(pairs(&log), epochs[..2]);
    let expected = snapshot(&log);
    drop(log);
    drop(storage); // a crash right after the truncation
    assert_reopens_as(dir.path(), &expected);
}

/// `bytes` stored at `base_offset` with leader epoch `epoch`.
fn at_epoch(bytes: &[u8], base_offset: i64, epoch: i32) -> Vec<u8> {
    crate::at_offset_epoch(bytes, base_offset, epoch)
}

#[test]
fn truncate_is_a_no_op_at_or_past_the_end_and_refuses_below_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path());
    let (log, _) = storage.open_log(NAME, config()).unwrap();
    let stored = write_plain(&log);
    let end = log.log_end_offset();
    let before = snapshot(&log);
    assert_eq!(log.truncate_to(end).unwrap(), end);
    assert_eq!(log.truncate_to(end + 100).unwrap(), end);
    assert_eq!(snapshot(&log), before);

    log.delete_records(stored[10].0.base_offset + 1).unwrap();
    let start = log.log_start_offset();
    assert!(matches!(
        log.truncate_to(start - 1),
        Err(StorageError::OffsetOutOfRange { offset, .. }) if offset == start - 1
    ));
    assert_eq!(log.log_end_offset(), end);
    // The batch spanning the start goes whole: the log is empty at that batch's base, and the
    // lowered start survives a reopen.
    let spanning = stored[10].0.base_offset;
    assert_eq!(log.truncate_to(start).unwrap(), spanning);
    assert_eq!(log.log_start_offset(), spanning);
    assert_eq!(log.log_end_offset(), spanning);
    let b = batch(77, 2, 10, 0);
    let a = log.append_replica(&at_epoch(&b, spanning, 3), 0).unwrap();
    assert_eq!(a.base_offset, spanning);
    assert_eq!(pairs(&log), [(3, spanning)]);
    let expected = snapshot(&log);
    drop(log);
    storage.close().unwrap();
    assert_reopens_as(dir.path(), &expected);
}

#[test]
fn reset_starts_an_empty_log_at_any_offset() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path());
    let (log, _) = storage.open_log(NAME, config()).unwrap();
    write_leader(&log);
    log.store_high_watermark(30).unwrap();
    assert!(!log.aborted_txns(0, i64::MAX).is_empty());

    log.reset_to(1000).unwrap();
    assert_eq!(log.log_start_offset(), 1000);
    assert_eq!(log.log_end_offset(), 1000);
    assert_eq!(log.durable_end_offset(), 1000);
    assert_eq!(log.stored_high_watermark(), 1000);
    assert_eq!(log.segment_count(), 1);
    assert!(log.leader_epochs().is_empty());
    assert!(log.aborted_txns(0, i64::MAX).is_empty());
    assert_eq!(files(dir.path(), "log"), [1000]);
    assert!(files(dir.path(), "index").is_empty());
    assert!(files(dir.path(), "txnindex").is_empty());
    assert_eq!(
        fs::read_to_string(log_dir(dir.path()).join("log-start-offset")).unwrap(),
        "1000"
    );
    assert!(matches!(
        log.read(999, 100, i64::MAX),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    assert!(log.read(1000, 100, i64::MAX).unwrap().records.is_empty());

    let b = batch(1, 3, 100, 0);
    let a = log.append_replica(&at_epoch(&b, 1000, 9), 0).unwrap();
    a.durable.wait().unwrap();
    assert_eq!((a.base_offset, a.last_offset), (1000, 1002));
    let a = log.append_stamped(&batch(2, 2, 100, 0), 9, 0).unwrap();
    assert_eq!(a.base_offset, 1003);
    assert_eq!(pairs(&log), [(9, 1000)]);
    assert_eq!(headers(&log), [(1000, 1002, 9), (1003, 1004, 9)]);
    let expected = snapshot(&log);
    drop(log);
    storage.close().unwrap();
    assert_reopens_as(dir.path(), &expected);

    // Back down to a lower offset, too.
    let storage = open(dir.path());
    let (log, _) = storage.open_log(NAME, config()).unwrap();
    log.reset_to(5).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (5, 5));
    log.append(&batch(3, 1, 10, 0), 0).unwrap();
    let expected = snapshot(&log);
    assert_eq!(expected.end, 6);
    drop(log);
    storage.close().unwrap();
    assert_reopens_as(dir.path(), &expected);
    assert!(matches!(
        open(tempfile::tempdir().unwrap().path())
            .open_log(NAME, config())
            .unwrap()
            .0
            .reset_to(-1),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn the_high_watermark_is_stored_loaded_and_clamped() {
    let dir = tempfile::tempdir().unwrap();
    let file = log_dir(dir.path()).join("high-watermark");
    let storage = open(dir.path());
    let (log, _) = storage.open_log(NAME, config()).unwrap();
    assert_eq!(log.stored_high_watermark(), 0, "none stored");
    let stored = write_plain(&log);
    log.store_high_watermark(50).unwrap();
    assert_eq!(log.stored_high_watermark(), 50);
    assert_eq!(fs::read_to_string(&file).unwrap(), "50");
    log.store_high_watermark(10_000).unwrap();
    assert_eq!(log.stored_high_watermark(), log.log_end_offset(), "clamped");
    log.store_high_watermark(70).unwrap();
    drop(log);
    storage.close().unwrap();

    let storage = open(dir.path());
    let (log, _) = storage.open_log(NAME, config()).unwrap();
    assert_eq!(log.stored_high_watermark(), 70);
    // Truncation lowers it, on disk too: appending past it again does not bring it back.
    let cut = stored[15].0.base_offset;
    log.truncate_to(cut).unwrap();
    assert_eq!(log.stored_high_watermark(), cut);
    for i in 0..10 {
        log.append(&batch(i, 3, 10, 0), 0).unwrap();
    }
    assert_eq!(log.stored_high_watermark(), cut);
    log.delete_records(cut + 3).unwrap();
    assert_eq!(log.stored_high_watermark(), cut + 3, "not below the start");
    drop(log);
    drop(storage);

    for (content, expected) in [
        (Some("garbage"), 3 + cut),
        (None, 3 + cut),
        (Some("-5"), 3 + cut),
        (Some(" 50\n"), 50),
    ] {
        match content {
            Some(text) => fs::write(&file, text).unwrap(),
            None => fs::remove_file(&file).unwrap(),
        }
        let storage = open(dir.path());
        let (log, _) = storage.open_log(NAME, config()).unwrap();
        assert_eq!(log.stored_high_watermark(), expected, "{content:?}");
        drop(log);
        storage.close().unwrap();
    }
}

#[test]
fn replica_appends_and_truncation_keep_the_durable_end_honest() {
    for fsync in [
        FsyncPolicy::Always,
        FsyncPolicy::Interval { interval_ms: 5 },
        FsyncPolicy::Os,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let storage = open(dir.path());
        let cfg = small_config(fsync);
        let (log, _) = storage.open_log(NAME, cfg.clone()).unwrap();
        let mut tickets = Vec::new();
        for i in 0..30u64 {
            let b = at_epoch(&batch(i, 2, 900, 0), log.log_end_offset(), 1);
            let a = log.append_replica(&b, 0).unwrap();
            assert_eq!(a.durable.is_immediate(), fsync != FsyncPolicy::Always);
            tickets.push(a.durable);
        }
        // Truncate while syncs may still be pending: the durable end is the cut at once.
        assert_eq!(log.truncate_to(31).unwrap(), 30);
        assert_eq!(log.durable_end_offset(), 30);
        for t in tickets {
            t.wait().unwrap();
        }
        assert!(log.durable_end_offset() <= log.log_end_offset());
        assert_eq!(log.durable_end_offset(), 30);
        let a = log
            .append_replica(&at_epoch(&batch(99, 2, 900, 0), 30, 2), 0)
            .unwrap();
        assert_eq!(a.base_offset, 30);
        a.durable.wait().unwrap();
        log.flush().unwrap();
        assert_eq!(log.durable_end_offset(), 32);
        drop(log);
        storage.close().unwrap();
    }
}

#[test]
fn a_crash_at_any_step_of_a_truncation_leaves_a_log_that_opens() {
    // The states a crash inside truncate_to can leave, made by hand from a log before and after
    // one: each must open without damage, hold a prefix of the old log at least as long as the
    // truncated one, and agree with its own batches about epochs.
    let before = tempfile::tempdir().unwrap();
    let storage = open(before.path());
    let (log, _) = storage.open_log(NAME, config()).unwrap();
    let stored = write_plain(&log);
    drop(log);
    storage.close().unwrap();
    let bases = files(before.path(), "log");
    let cut_offset = stored
        .iter()
        .map(|(h, _)| h.base_offset)
        .find(|&b| b > bases[1] + 3 && b < bases[2])
        .unwrap();
    let old_bytes: Vec<u8> = stored.iter().flat_map(|(_, b)| b.clone()).collect();

    let copy = |to: &Path| {
        fs::create_dir_all(log_dir(to)).unwrap();
        for e in fs::read_dir(log_dir(before.path())).unwrap() {
            let e = e.unwrap();
            fs::copy(e.path(), log_dir(to).join(e.file_name())).unwrap();
        }
    };
    let name = |base: i64, ext: &str| format!("{base:020}.{ext}");
    type Step = Box<dyn Fn(&Path)>;
    let steps: Vec<(&str, Step)> = vec![
        (
            "checkpoint removed",
            Box::new(|d: &Path| fs::remove_file(log_dir(d).join(LEADER_EPOCH_FILE)).unwrap()),
        ),
        (
            "newest segment's log removed, its indexes not",
            Box::new(move |d: &Path| {
                fs::remove_file(log_dir(d).join(LEADER_EPOCH_FILE)).unwrap();
                let last = *files(d, "log").last().unwrap();
                fs::remove_file(log_dir(d).join(name(last, "log"))).unwrap();
                // Make it look like a sealed segment's leftovers.
                fs::write(log_dir(d).join(name(last, "index")), [0, 0, 0, 0]).unwrap();
            }),
        ),
        (
            "later segments gone, cut not made",
            Box::new(move |d: &Path| {
                fs::remove_file(log_dir(d).join(LEADER_EPOCH_FILE)).unwrap();
                for b in files(d, "log").into_iter().filter(|&b| b > bases[1]) {
                    for ext in ["log", "index", "timeindex"] {
                        let _ = fs::remove_file(log_dir(d).join(name(b, ext)));
                    }
                }
            }),
        ),
    ];
    for (what, step) in steps {
        let dir = tempfile::tempdir().unwrap();
        copy(dir.path());
        step(dir.path());
        let storage = open(dir.path());
        let (log, report) = storage.open_log(NAME, config()).unwrap();
        assert!(report.damage.is_none(), "{what}: {report:?}");
        let bytes = all_bytes(&log);
        assert!(
            bytes.len() >= expected_after(&stored, cut_offset).1.len(),
            "{what}"
        );
        assert_eq!(bytes[..], old_bytes[..bytes.len()], "{what}");
        let rebuilt = basalt_storage::epoch_cache::LeaderEpochCache::rebuild(
            headers(&log).iter().map(|h| (h.2, h.0)),
        );
        assert_eq!(log.leader_epochs(), rebuilt, "{what}");
        // And it takes the truncation and appends again.
        let end = log.truncate_to(cut_offset).unwrap();
        assert_eq!(end, cut_offset);
        log.append(&batch(5, 1, 10, 0), 0).unwrap();
        assert!(
            files(dir.path(), "index")
                .iter()
                .all(|b| files(dir.path(), "log").contains(b))
        );
        drop(log);
        drop(storage);
    }

    // After the cut, before the aborted-transaction index and checkpoint are written again: the
    // old files come back (an unclean reopen) and are cut to the log.
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path());
    let (log, _) = storage.open_log(NAME, config()).unwrap();
    write_leader(&log);
    let txn = log.aborted_txns(0, i64::MAX)[0];
    let old_checkpoint = fs::read(log_dir(dir.path()).join(LEADER_EPOCH_FILE)).unwrap();
    let holder = *files(dir.path(), "txnindex").first().unwrap();
    let txn_path = log_dir(dir.path()).join(name(holder, "txnindex"));
    let old_txns = fs::read(&txn_path).unwrap();
    log.truncate_to(txn.last_offset).unwrap();
    let expected = snapshot(&log);
    drop(log);
    drop(storage);
    fs::write(&txn_path, &old_txns).unwrap();
    fs::write(log_dir(dir.path()).join(LEADER_EPOCH_FILE), &old_checkpoint).unwrap();
    let storage = open(dir.path());
    let (log, report) = storage.open_log(NAME, config()).unwrap();
    assert!(report.damage.is_none());
    assert_eq!(snapshot(&log), expected);
}

#[test]
fn readers_racing_a_truncation_get_batches_or_errors_never_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path());
    let (log, _) = storage
        .open_log(NAME, small_config(FsyncPolicy::Os))
        .unwrap();
    write_plain(&log);
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|n| {
            let log = Arc::clone(&log);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut served = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let end = log.log_end_offset();
                    let offset = (served * 7 + n) as i64 % end.max(1);
                    if let Ok(r) = log.read(offset, 4096, i64::MAX) {
                        for item in basalt_record::BatchIter::verified(&r.records) {
                            assert!(item.is_ok(), "a read served a broken batch");
                        }
                    }
                    let _ = log.read_file(offset, 4096, i64::MAX, true);
                    served += 1;
                }
                served
            })
        })
        .collect();
    for round in 0..30u64 {
        let end = log.log_end_offset();
        log.truncate_to(end - 1 - (round * 13) as i64 % (end / 2))
            .unwrap();
        while log.log_end_offset() < 120 {
            log.append(&batch(round, 3, 700, 0), 0).unwrap();
        }
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    assert!(log.damage().is_none());
}
