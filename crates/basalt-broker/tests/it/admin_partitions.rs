//! CreatePartitions.

use basalt_protocol::messages::create_partitions_request::{
    CreatePartitionsAssignment, CreatePartitionsRequest, CreatePartitionsTopic,
};
use basalt_protocol::{ErrorCode, RequestBody, ResponseBody};

use crate::{call, create, produce};

fn topic(name: &str, count: i32, assignments: Option<Vec<Vec<i32>>>) -> CreatePartitionsTopic {
    CreatePartitionsTopic {
        name: name.into(),
        count,
        assignments: assignments.map(|a| {
            a.into_iter()
                .map(|broker_ids| CreatePartitionsAssignment {
                    broker_ids,
                    ..CreatePartitionsAssignment::default()
                })
                .collect()
        }),
        ..CreatePartitionsTopic::default()
    }
}

async fn create_partitions(
    broker: &std::sync::Arc<basalt_broker::Broker>,
    version: i16,
    topics: Vec<CreatePartitionsTopic>,
    validate_only: bool,
) -> Vec<(String, i16)> {
    let req = CreatePartitionsRequest {
        topics,
        timeout_ms: 1000,
        validate_only,
        ..CreatePartitionsRequest::default()
    };
    match call(broker, version, RequestBody::CreatePartitions(req)).await {
        ResponseBody::CreatePartitions(r) => r
            .results
            .into_iter()
            .map(|r| (r.name, r.error_code))
            .collect(),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn partitions_grow_persist_and_keep_data() {
    let dir = tempfile::tempdir().unwrap();
    let broker = basalt_broker::Broker::open(dir.path(), Default::default()).unwrap();
    create(&broker, "t", 1, &[("segment.bytes", "4096")]);
    produce(&broker, "t", 0, 3).await;

    let r = create_partitions(&broker, 0, vec![topic("t", 3, None)], true).await;
    assert_eq!(r, vec![("t".to_owned(), 0)]);
    assert_eq!(broker.topic("t").unwrap().partitions.len(), 1);

    let r = create_partitions(&broker, 3, vec![topic("t", 3, None)], false).await;
    assert_eq!(r, vec![("t".to_owned(), 0)]);
    let t = broker.topic("t").unwrap();
    assert_eq!(t.meta.partitions, 3);
    assert_eq!(t.partitions.len(), 3);
    assert_eq!(t.partitions[0].log.log_end_offset(), 3);
    assert_eq!(t.partitions[2].config().log.segment_bytes_max, 4096);
    produce(&broker, "t", 2, 1).await;

    // Assignments on this node are accepted.
    let r = create_partitions(
        &broker,
        1,
        vec![topic("t", 5, Some(vec![vec![0], vec![0]]))],
        false,
    )
    .await;
    assert_eq!(r, vec![("t".to_owned(), 0)]);

    broker.shutdown().unwrap();
    drop(t);
    drop(broker);
    let broker = basalt_broker::Broker::open(dir.path(), Default::default()).unwrap();
    let t = broker.topic("t").unwrap();
    assert_eq!(t.partitions.len(), 5);
    assert_eq!(t.partitions[0].log.log_end_offset(), 3);
    assert_eq!(t.partitions[2].log.log_end_offset(), 1);
}

#[tokio::test]
async fn bad_growth_is_refused_per_topic() {
    let (_dir, broker) = crate::open(|_| {});
    create(&broker, "a", 2, &[]);
    create(&broker, "b", 1, &[]);
    let r = create_partitions(
        &broker,
        2,
        vec![
            topic("a", 2, None),
            topic("a", 1, None),
            topic("b", 1, None),
            topic("missing", 4, None),
            topic("c", 0, None),
        ],
        false,
    )
    .await;
    let code = |e: ErrorCode| i16::from(e);
    assert_eq!(
        r,
        vec![
            ("a".to_owned(), code(ErrorCode::InvalidRequest)),
            ("a".to_owned(), code(ErrorCode::InvalidRequest)),
            ("b".to_owned(), code(ErrorCode::InvalidPartitions)),
            (
                "missing".to_owned(),
                code(ErrorCode::UnknownTopicOrPartition)
            ),
            ("c".to_owned(), code(ErrorCode::UnknownTopicOrPartition)),
        ]
    );
    let r = create_partitions(
        &broker,
        2,
        vec![
            topic("a", 4, Some(vec![vec![0], vec![1]])),
            topic("b", 3, Some(vec![vec![0]])),
        ],
        false,
    )
    .await;
    assert_eq!(
        r,
        vec![
            ("a".to_owned(), code(ErrorCode::InvalidReplicaAssignment)),
            ("b".to_owned(), code(ErrorCode::InvalidReplicaAssignment)),
        ]
    );
    assert_eq!(broker.topic("a").unwrap().partitions.len(), 2);
    assert_eq!(broker.topic("b").unwrap().partitions.len(), 1);
}
