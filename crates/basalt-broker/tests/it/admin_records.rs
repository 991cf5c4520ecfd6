//! DeleteRecords and OffsetForLeaderEpoch.

use basalt_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsRequest, DeleteRecordsTopic,
};
use basalt_protocol::messages::metadata_request::{MetadataRequest, MetadataRequestTopic};
use basalt_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderEpochRequest, OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use basalt_protocol::{ErrorCode, RequestBody, ResponseBody};

use crate::{call, create, open, produce};

async fn delete_records(
    broker: &std::sync::Arc<basalt_broker::Broker>,
    version: i16,
    topic: &str,
    partitions: &[(i32, i64)],
) -> Vec<(i32, i64, i16)> {
    let req = DeleteRecordsRequest {
        topics: vec![DeleteRecordsTopic {
            name: topic.into(),
            partitions: partitions
                .iter()
                .map(|(p, o)| DeleteRecordsPartition {
                    partition_index: *p,
                    offset: *o,
                    ..DeleteRecordsPartition::default()
                })
                .collect(),
            ..DeleteRecordsTopic::default()
        }],
        timeout_ms: 1000,
        ..DeleteRecordsRequest::default()
    };
    match call(broker, version, RequestBody::DeleteRecords(req)).await {
        ResponseBody::DeleteRecords(mut r) => r
            .topics
            .remove(0)
            .partitions
            .into_iter()
            .map(|p| (p.partition_index, p.low_watermark, p.error_code))
            .collect(),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn delete_records_moves_the_log_start() {
    let (_dir, broker) = open(|_| {});
    create(&broker, "t", 2, &[]);
    produce(&broker, "t", 0, 5).await;
    produce(&broker, "t", 1, 2).await;
    let oor = i16::from(ErrorCode::OffsetOutOfRange);
    let r = delete_records(&broker, 0, "t", &[(0, 3), (1, 3), (2, 0)]).await;
    assert_eq!(
        r,
        vec![
            (0, 3, 0),
            (1, -1, oor),
            (2, -1, i16::from(ErrorCode::UnknownTopicOrPartition)),
        ]
    );
    assert_eq!(broker.partition("t", 0).unwrap().log.log_start_offset(), 3);
    // Lower than the start: nothing changes. -1: up to the high watermark. -2: refused.
    let r = delete_records(&broker, 2, "t", &[(0, 1), (1, -1)]).await;
    assert_eq!(r, vec![(0, 3, 0), (1, 2, 0)]);
    let r = delete_records(&broker, 1, "t", &[(0, -2)]).await;
    assert_eq!(r, vec![(0, -1, oor)]);
    let r = delete_records(&broker, 1, "t", &[(0, -1)]).await;
    assert_eq!(r, vec![(0, 5, 0)]);
    let r = delete_records(&broker, 1, "missing", &[(0, 0)]).await;
    assert_eq!(
        r,
        vec![(0, -1, i16::from(ErrorCode::UnknownTopicOrPartition))]
    );
}

#[tokio::test]
async fn offset_for_leader_epoch_answers_epoch_zero_on_a_single_node() {
    let (_dir, broker) = open(|_| {});
    create(&broker, "t", 1, &[]);
    produce(&broker, "t", 0, 4).await;
    let req = |current: i32, epoch: i32, partition: i32| OffsetForLeaderEpochRequest {
        replica_id: -1,
        topics: vec![OffsetForLeaderTopic {
            topic: "t".into(),
            partitions: vec![OffsetForLeaderPartition {
                partition,
                current_leader_epoch: current,
                leader_epoch: epoch,
                ..OffsetForLeaderPartition::default()
            }],
            ..OffsetForLeaderTopic::default()
        }],
        ..OffsetForLeaderEpochRequest::default()
    };
    let cases = [
        (-1, 0, 0, (0, 0, 4)),
        (0, 0, 0, (0, 0, 4)),
        (-1, -1, 0, (0, -1, -1)),
        (-1, 3, 0, (0, -1, -1)),
        (2, 0, 0, (i16::from(ErrorCode::UnknownLeaderEpoch), -1, -1)),
        (
            -1,
            0,
            1,
            (i16::from(ErrorCode::UnknownTopicOrPartition), -1, -1),
        ),
    ];
    for version in 2..=4 {
        for (current, epoch, partition, expected) in cases {
            let r = call(
                &broker,
                version,
                RequestBody::OffsetForLeaderEpoch(req(current, epoch, partition)),
            )
            .await;
            let ResponseBody::OffsetForLeaderEpoch(mut r) = r else {
                panic!("{r:?}")
            };
            let p = r.topics.remove(0).partitions.remove(0);
            assert_eq!((p.error_code, p.leader_epoch, p.end_offset), expected);
        }
    }
}

async fn offset_for_epoch(
    broker: &std::sync::Arc<basalt_broker::Broker>,
    current: i32,
    epoch: i32,
) -> (i16, i32, i64) {
    let req = OffsetForLeaderEpochRequest {
        replica_id: -1,
        topics: vec![OffsetForLeaderTopic {
            topic: "t".into(),
            partitions: vec![OffsetForLeaderPartition {
                partition: 0,
                current_leader_epoch: current,
                leader_epoch: epoch,
                ..OffsetForLeaderPartition::default()
            }],
            ..OffsetForLeaderTopic::default()
        }],
        ..OffsetForLeaderEpochRequest::default()
    };
    let ResponseBody::OffsetForLeaderEpoch(mut r) =
        call(broker, 4, RequestBody::OffsetForLeaderEpoch(req)).await
    else {
        panic!()
    };
    let p = r.topics.remove(0).partitions.remove(0);
    (p.error_code, p.leader_epoch, p.end_offset)
}

#[tokio::test]
async fn produced_batches_carry_the_leader_epoch_and_offset_for_leader_epoch_answers_it() {
    let (dir, broker) = open(|_| {});
    create(&broker, "t", 1, &[]);
    produce(&broker, "t", 0, 4).await;
    let partition = broker.partition("t", 0).unwrap();
    // A new leadership at epoch 3 starts at the log end offset.
    partition.become_leader(3).unwrap();
    produce(&broker, "t", 0, 2).await;
    let mut stamped = Vec::new();
    partition
        .log
        .for_each_batch_header(0, |h| {
            stamped.push((h.base_offset, h.partition_leader_epoch))
        })
        .unwrap();
    assert_eq!(stamped, [(0, 0), (1, 0), (2, 0), (3, 0), (4, 3), (5, 3)]);
    let checkpoint = dir.path().join("t-0").join("leader-epoch-checkpoint");
    assert_eq!(
        std::fs::read_to_string(checkpoint).unwrap(),
        "0\n2\n0 0\n3 4\n"
    );

    let fenced = i16::from(ErrorCode::FencedLeaderEpoch);
    let unknown = i16::from(ErrorCode::UnknownLeaderEpoch);
    for (current, epoch, expected) in [
        (-1, 0, (0, 0, 4)),
        (-1, 1, (0, 0, 4)),
        (-1, 3, (0, 3, 6)),
        (3, 3, (0, 3, 6)),
        (3, 2, (0, 0, 4)),
        (-1, 4, (0, -1, -1)),
        (-1, -1, (0, -1, -1)),
        (0, 0, (fenced, -1, -1)),
        (4, 3, (unknown, -1, -1)),
    ] {
        assert_eq!(
            offset_for_epoch(&broker, current, epoch).await,
            expected,
            "current {current}, epoch {epoch}"
        );
    }

    // Metadata reports the epoch.
    let req = MetadataRequest {
        topics: Some(vec![MetadataRequestTopic {
            name: Some("t".into()),
            ..MetadataRequestTopic::default()
        }]),
        ..MetadataRequest::default()
    };
    let ResponseBody::Metadata(r) = call(&broker, 12, RequestBody::Metadata(req)).await else {
        panic!()
    };
    assert_eq!(r.topics[0].partitions[0].leader_epoch, 3);
}
