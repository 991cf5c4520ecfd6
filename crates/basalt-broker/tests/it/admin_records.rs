//! DeleteRecords and OffsetForLeaderEpoch.

use basalt_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsRequest, DeleteRecordsTopic,
};
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
async fn offset_for_leader_epoch_knows_epoch_zero_only() {
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
