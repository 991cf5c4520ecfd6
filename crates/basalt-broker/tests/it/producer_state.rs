//! Idempotent producer state across restarts: rebuilt from the newest producer snapshot and the
//! batches after it, falling back to an older snapshot or the whole log when one is damaged, and
//! snapshots deleted with the segments below the log start. Produces go over real TCP.

use std::path::Path;
use std::sync::Arc;

use basalt_broker::{Broker, BrokerConfig, snapshot};
use basalt_protocol::messages::produce_request::{
    PartitionProduceData, ProduceRequest, TopicProduceData,
};
use basalt_protocol::{ErrorCode, RequestBody, ResponseBody};

use crate::create;
use crate::wire::{Client, serve};

const BATCHES: i32 = 20;

fn reopen(dir: &Path) -> Arc<Broker> {
    Broker::open(dir, BrokerConfig::default()).unwrap()
}

/// Sends one idempotent one-record batch; the partition's error code and base offset.
async fn send(client: &mut Client, producer_id: i64, seq: i32) -> (i16, i64) {
    let mut b = basalt_record::BatchBuilder::new(0).producer(producer_id, 0, seq);
    b.push(basalt_broker::now_ms(), None, Some(b"value"), &[]);
    let req = RequestBody::Produce(ProduceRequest {
        acks: -1,
        timeout_ms: 5_000,
        topic_data: vec![TopicProduceData {
            name: "t".into(),
            partition_data: vec![PartitionProduceData {
                index: 0,
                records: Some(b.build()),
                ..PartitionProduceData::default()
            }],
            ..TopicProduceData::default()
        }],
        ..ProduceRequest::default()
    });
    match client.request(9, req).await {
        ResponseBody::Produce(r) => {
            let p = &r.responses[0].partition_responses[0];
            (p.error_code, p.base_offset)
        }
        other => panic!("{other:?}"),
    }
}

/// A broker on `dir` with topic `t` whose small segments roll every few batches, and
/// [`BATCHES`] batches of one producer in it; the producer id.
async fn fill(dir: &Path) -> i64 {
    let broker = reopen(dir);
    create(&broker, "t", 1, &[("segment.bytes", "400")]);
    let producer_id = broker.allocate_producer_id().unwrap();
    let served = serve(&broker).await;
    let mut client = Client::connect(served.addr).await;
    for seq in 0..BATCHES {
        assert_eq!(
            send(&mut client, producer_id, seq).await,
            (0, i64::from(seq))
        );
    }
    served.stop().await;
    let partition = broker.partition("t", 0).unwrap();
    assert!(
        partition.log.segment_count() > 3,
        "the test needs several rolls"
    );
    drop(partition);
    broker.shutdown().unwrap();
    producer_id
}

fn log_dir(dir: &Path) -> std::path::PathBuf {
    dir.join("t-0")
}

/// After a restart, a retry of the last batch is answered with its original offset, a gap is
/// out of order, and the next sequence is appended.
async fn check_state(broker: &Arc<Broker>, producer_id: i64, last_seq: i32) {
    let served = serve(broker).await;
    let mut client = Client::connect(served.addr).await;
    assert_eq!(
        send(&mut client, producer_id, last_seq).await,
        (0, i64::from(last_seq)),
        "a retry gets its original offset"
    );
    let (code, _) = send(&mut client, producer_id, last_seq + 5).await;
    assert_eq!(code, i16::from(ErrorCode::OutOfOrderSequenceNumber));
    assert_eq!(
        send(&mut client, producer_id, last_seq + 1).await,
        (0, i64::from(last_seq + 1))
    );
    served.stop().await;
}

#[tokio::test]
async fn producer_state_survives_restarts_and_the_scan_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let producer_id = fill(dir.path()).await;
    let snapshots = snapshot::list(&log_dir(dir.path())).unwrap();
    // One per roll, and one at the log end from the clean shutdown.
    assert!(snapshots.len() > 3, "{snapshots:?}");
    assert_eq!(snapshots.last(), Some(&i64::from(BATCHES)));

    // Clean restart: the shutdown snapshot covers everything; no batch is read.
    let broker = reopen(dir.path());
    let recovery = broker.partition("t", 0).unwrap().producer_recovery();
    assert_eq!(recovery.snapshot_offset, Some(i64::from(BATCHES)));
    assert_eq!(recovery.scanned_batches, 0);
    assert_eq!(recovery.discarded_snapshots, 0);
    check_state(&broker, producer_id, BATCHES - 1).await;
    // Appended: BATCHES + 1 batches. Some more so a roll snapshot lands after the shutdown one.
    let served = serve(&broker).await;
    let mut client = Client::connect(served.addr).await;
    for seq in BATCHES + 1..2 * BATCHES {
        assert_eq!(send(&mut client, producer_id, seq).await.0, 0);
    }
    served.stop().await;
    let log_end = broker.partition("t", 0).unwrap().log.log_end_offset();
    assert_eq!(log_end, i64::from(2 * BATCHES));

    // Unclean stop (no shutdown): the newest roll snapshot is used and only the batches after
    // it are read.
    drop(broker);
    let newest = *snapshot::list(&log_dir(dir.path()))
        .unwrap()
        .last()
        .unwrap();
    assert!(newest > i64::from(BATCHES) && newest < log_end, "{newest}");
    let broker = reopen(dir.path());
    let recovery = broker.partition("t", 0).unwrap().producer_recovery();
    assert_eq!(recovery.snapshot_offset, Some(newest));
    // One record per batch: the batches after the snapshot are log_end - newest.
    assert_eq!(recovery.scanned_batches, (log_end - newest) as u64);
    assert!(recovery.scanned_batches < log_end as u64 / 2);
    check_state(&broker, producer_id, 2 * BATCHES - 1).await;
    broker.shutdown().unwrap();
}

#[tokio::test]
async fn a_damaged_snapshot_falls_back_to_an_older_one_then_to_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let producer_id = fill(dir.path()).await;
    let ldir = log_dir(dir.path());
    let snapshots = snapshot::list(&ldir).unwrap();
    let (newest, older) = (
        snapshots[snapshots.len() - 1],
        snapshots[snapshots.len() - 2],
    );

    // Flip one byte of the newest: the one before it is used.
    let path = snapshot::path(&ldir, newest);
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&path, bytes).unwrap();
    let broker = reopen(dir.path());
    let recovery = broker.partition("t", 0).unwrap().producer_recovery();
    assert_eq!(recovery.snapshot_offset, Some(older));
    assert_eq!(recovery.discarded_snapshots, 1);
    assert_eq!(recovery.scanned_batches, (newest - older) as u64);
    assert!(!path.exists(), "the damaged snapshot is removed");
    check_state(&broker, producer_id, BATCHES - 1).await;
    drop(broker);

    // Every snapshot garbage (truncated, empty, random): the whole log is read, state intact.
    let snapshots = snapshot::list(&ldir).unwrap();
    for (i, offset) in snapshots.iter().enumerate() {
        let garbage: &[u8] = match i % 3 {
            0 => b"",
            1 => b"BPSS\x00",
            _ => b"not a snapshot at all, just bytes",
        };
        std::fs::write(snapshot::path(&ldir, *offset), garbage).unwrap();
    }
    let broker = reopen(dir.path());
    let partition = broker.partition("t", 0).unwrap();
    let recovery = partition.producer_recovery();
    assert_eq!(recovery.snapshot_offset, None);
    assert_eq!(recovery.discarded_snapshots, snapshots.len());
    assert_eq!(
        recovery.scanned_batches,
        partition.log.log_end_offset() as u64
    );
    drop(partition);
    check_state(&broker, producer_id, BATCHES).await;
    broker.shutdown().unwrap();
}

#[tokio::test]
async fn snapshots_below_the_log_start_are_deleted_with_their_segments() {
    let dir = tempfile::tempdir().unwrap();
    let producer_id = fill(dir.path()).await;
    let ldir = log_dir(dir.path());
    let before = snapshot::list(&ldir).unwrap();
    let broker = reopen(dir.path());
    let partition = broker.partition("t", 0).unwrap();
    let log_start = partition.delete_records(15).unwrap();
    assert_eq!(log_start, 15);
    let after = snapshot::list(&ldir).unwrap();
    assert!(after.len() < before.len(), "{before:?} -> {after:?}");
    assert!(after.iter().all(|&o| o >= log_start), "{after:?}");
    drop(partition);
    broker.shutdown().unwrap();
    drop(broker);

    // The producer's batches above the log start still answer retries after a restart.
    let broker = reopen(dir.path());
    let recovery = broker.partition("t", 0).unwrap().producer_recovery();
    assert_eq!(recovery.snapshot_offset, Some(i64::from(BATCHES)));
    check_state(&broker, producer_id, BATCHES - 1).await;
    broker.shutdown().unwrap();
}
