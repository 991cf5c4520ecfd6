//! Unit tests of the disk log: what is written comes back after a reopen, truncation and purge
//! survive a reopen, a torn tail is cut and other damage is reported (`STORE-1..4`).

use std::fs;

use openraft::entry::RaftEntry;
use openraft::impls::leader_id_adv::LeaderId;
use openraft::storage::{IOFlushed, RaftLogReader, RaftLogStorage};
use openraft::{LogId as RaftLogId, Vote as RaftVote};

use super::*;
use crate::metadata::image::Command;

fn log_id(term: u64, index: u64) -> LogId {
    RaftLogId::new(LeaderId { term, node_id: 1 }, index)
}

fn entry(term: u64, index: u64) -> Entry {
    Entry::new_normal(log_id(term, index), Command::FenceNode { id: index as i32 })
}

async fn append(store: &mut LogStore, entries: impl IntoIterator<Item = Entry>) {
    store
        .append(entries.into_iter().collect::<Vec<_>>(), IOFlushed::noop())
        .await
        .unwrap();
}

async fn indexes(store: &mut LogStore) -> Vec<u64> {
    store
        .try_get_log_entries(..)
        .await
        .unwrap()
        .iter()
        .map(|e| e.index())
        .collect()
}

#[tokio::test]
async fn entries_vote_and_committed_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = LogStore::open(dir.path()).unwrap();
    append(&mut store, (0..5).map(|i| entry(1, i))).await;
    let vote = RaftVote::new_committed(1, 1);
    store.save_vote(&vote).await.unwrap();
    store.save_committed(Some(log_id(1, 3))).await.unwrap();
    drop(store);
    let mut store = LogStore::open(dir.path()).unwrap();
    assert_eq!(indexes(&mut store).await, vec![0, 1, 2, 3, 4]);
    assert_eq!(store.read_vote().await.unwrap(), Some(vote));
    assert_eq!(store.read_committed().await.unwrap(), Some(log_id(1, 3)));
    let state = store.get_log_state().await.unwrap();
    assert_eq!(state.last_log_id, Some(log_id(1, 4)));
    assert_eq!(state.last_purged_log_id, None);
    assert_eq!(
        store.try_get_log_entries(2..4).await.unwrap(),
        vec![entry(1, 2), entry(1, 3)]
    );
}

#[tokio::test]
async fn appends_out_of_sequence_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = LogStore::open(dir.path()).unwrap();
    append(&mut store, [entry(1, 0)]).await;
    let r = store.append(vec![entry(1, 2)], IOFlushed::noop()).await;
    assert_eq!(r.unwrap_err().kind(), io::ErrorKind::InvalidInput);
    assert_eq!(indexes(&mut store).await, vec![0]);
}

#[tokio::test]
async fn truncation_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = LogStore::open(dir.path()).unwrap();
    append(&mut store, (0..6).map(|i| entry(1, i))).await;
    store.truncate_after(Some(log_id(1, 2))).await.unwrap();
    // A new leader's entries replace the truncated ones.
    append(&mut store, (3..5).map(|i| entry(2, i))).await;
    drop(store);
    let mut store = LogStore::open(dir.path()).unwrap();
    let entries = store.try_get_log_entries(..).await.unwrap();
    let ids: Vec<_> = entries.iter().map(|e| e.log_id()).collect();
    assert_eq!(
        ids,
        vec![
            log_id(1, 0),
            log_id(1, 1),
            log_id(1, 2),
            log_id(2, 3),
            log_id(2, 4)
        ]
    );
    store.truncate_after(None).await.unwrap();
    drop(store);
    let mut store = LogStore::open(dir.path()).unwrap();
    assert!(indexes(&mut store).await.is_empty());
}

#[tokio::test]
async fn purge_survives_reopen_and_appends_continue() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = LogStore::open(dir.path()).unwrap();
    append(&mut store, (0..10).map(|i| entry(1, i))).await;
    store.purge(log_id(1, 6)).await.unwrap();
    assert_eq!(indexes(&mut store).await, vec![7, 8, 9]);
    append(&mut store, [entry(1, 10)]).await;
    store.truncate_after(Some(log_id(1, 8))).await.unwrap();
    drop(store);
    let mut store = LogStore::open(dir.path()).unwrap();
    assert_eq!(indexes(&mut store).await, vec![7, 8]);
    let state = store.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 6)));
    // A purge past the end (a snapshot installed from the leader) empties the log; the next
    // entry follows the purge point.
    store.purge(log_id(3, 20)).await.unwrap();
    let state = store.get_log_state().await.unwrap();
    assert_eq!(state.last_log_id, Some(log_id(3, 20)));
    append(&mut store, [entry(3, 21)]).await;
    drop(store);
    let mut store = LogStore::open(dir.path()).unwrap();
    assert_eq!(indexes(&mut store).await, vec![21]);
}

#[tokio::test]
async fn a_crash_between_purge_point_and_rewrite_is_harmless() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = LogStore::open(dir.path()).unwrap();
    append(&mut store, (0..5).map(|i| entry(1, i))).await;
    drop(store);
    // STORE-4: the purge point is written, the log not yet rewritten.
    write_file_atomic(&dir.path().join("purged"), &[&to_json(&log_id(1, 2))]).unwrap();
    let mut store = LogStore::open(dir.path()).unwrap();
    assert_eq!(indexes(&mut store).await, vec![3, 4]);
}

#[tokio::test]
async fn a_torn_tail_is_cut_and_writing_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = LogStore::open(dir.path()).unwrap();
    append(&mut store, (0..3).map(|i| entry(1, i))).await;
    drop(store);
    let path = dir.path().join("log");
    let len = fs::metadata(&path).unwrap().len();
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(len - 5).unwrap();
    drop(f);
    let mut store = LogStore::open(dir.path()).unwrap();
    assert_eq!(indexes(&mut store).await, vec![0, 1]);
    append(&mut store, [entry(1, 2), entry(1, 3)]).await;
    drop(store);
    let mut store = LogStore::open(dir.path()).unwrap();
    assert_eq!(indexes(&mut store).await, vec![0, 1, 2, 3]);

    // A last frame whose bytes are garbled (length intact) is a torn tail too.
    drop(store);
    let mut data = fs::read(&path).unwrap();
    let n = data.len();
    data[n - 2] ^= 0xff;
    fs::write(&path, &data).unwrap();
    let mut store = LogStore::open(dir.path()).unwrap();
    assert_eq!(indexes(&mut store).await, vec![0, 1, 2]);
}

#[tokio::test]
async fn damage_before_the_tail_is_reported_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = LogStore::open(dir.path()).unwrap();
    append(&mut store, (0..3).map(|i| entry(1, i))).await;
    drop(store);
    let path = dir.path().join("log");
    let mut data = fs::read(&path).unwrap();
    // Inside the first frame's payload.
    data[LOG_HEADER_BYTES as usize + 10] ^= 0xff;
    fs::write(&path, &data).unwrap();
    match LogStore::open(dir.path()) {
        Err(StoreError::Corrupt { position, .. }) => assert_eq!(position, LOG_HEADER_BYTES),
        other => panic!("expected corruption, got {other:?}"),
    }
    fs::write(&path, b"not a log").unwrap();
    assert!(matches!(
        LogStore::open(dir.path()),
        Err(StoreError::Corrupt { position: 0, .. })
    ));
    fs::write(dir.path().join("vote"), b"\0\0\0\x05\0\0\0\0abcde").unwrap();
    assert!(matches!(
        LogStore::open(dir.path()),
        Err(StoreError::Corrupt { .. })
    ));
}

#[test]
fn the_directory_lock_is_exclusive() {
    let dir = tempfile::tempdir().unwrap();
    let lock = lock_dir(dir.path()).unwrap();
    assert!(matches!(
        lock_dir(dir.path()),
        Err(StoreError::Locked { .. })
    ));
    drop(lock);
    lock_dir(dir.path()).unwrap();
}
