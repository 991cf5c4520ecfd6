//! AlterPartitionReassignments, ListPartitionReassignments and ElectLeaders on a single node,
//! answered as a one-broker Kafka cluster answers them.

use basalt_protocol::messages::alter_partition_reassignments_request::{
    AlterPartitionReassignmentsRequest, ReassignablePartition, ReassignableTopic,
};
use basalt_protocol::messages::elect_leaders_request::{ElectLeadersRequest, TopicPartitions};
use basalt_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsRequest;
use basalt_protocol::{ErrorCode, RequestBody, ResponseBody};

use crate::{call, create};

fn code(e: ErrorCode) -> i16 {
    e.into()
}

#[tokio::test(flavor = "multi_thread")]
async fn v1_can_forbid_changing_the_replication_factor() {
    let (_dir, broker) = crate::open(|_| {});
    create(&broker, "rf", 1, &[]);
    let me = broker.config().node_id;
    let request = |allow| {
        RequestBody::AlterPartitionReassignments(AlterPartitionReassignmentsRequest {
            allow_replication_factor_change: allow,
            topics: vec![ReassignableTopic {
                name: "rf".into(),
                partitions: vec![
                    ReassignablePartition {
                        partition_index: 0,
                        replicas: Some(vec![me, me + 1]),
                        ..ReassignablePartition::default()
                    },
                    ReassignablePartition {
                        partition_index: 0,
                        replicas: Some(vec![me]),
                        ..ReassignablePartition::default()
                    },
                ],
                ..ReassignableTopic::default()
            }],
            ..AlterPartitionReassignmentsRequest::default()
        })
    };
    let codes = |r: &ResponseBody| match r {
        ResponseBody::AlterPartitionReassignments(r) => r.responses[0]
            .partitions
            .iter()
            .map(|p| p.error_code)
            .collect::<Vec<_>>(),
        other => panic!("{other:?}"),
    };
    // Forbidden: two replicas for a one-replica partition; the same count is fine.
    let r = call(&broker, 1, request(false)).await;
    assert_eq!(
        codes(&r),
        vec![code(ErrorCode::InvalidReplicationFactor), 0]
    );
    // Allowed: the target is judged on its nodes (node me + 1 does not exist).
    let r = call(&broker, 1, request(true)).await;
    assert_eq!(
        codes(&r),
        vec![code(ErrorCode::InvalidReplicaAssignment), 0]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_single_node_reassigns_only_to_itself_and_needs_no_election() {
    let (_dir, broker) = crate::open(|_| {});
    create(&broker, "t", 2, &[]);
    let me = broker.config().node_id;
    let partition = |index, replicas| ReassignablePartition {
        partition_index: index,
        replicas,
        ..ReassignablePartition::default()
    };
    let req = AlterPartitionReassignmentsRequest {
        topics: vec![
            ReassignableTopic {
                name: "t".into(),
                partitions: vec![
                    partition(0, Some(vec![me])),
                    partition(1, Some(vec![me, me + 1])),
                    partition(1, None),
                    partition(7, Some(vec![me])),
                ],
                ..ReassignableTopic::default()
            },
            ReassignableTopic {
                name: "nope".into(),
                partitions: vec![partition(0, Some(vec![me]))],
                ..ReassignableTopic::default()
            },
        ],
        ..AlterPartitionReassignmentsRequest::default()
    };
    let ResponseBody::AlterPartitionReassignments(r) =
        call(&broker, 0, RequestBody::AlterPartitionReassignments(req)).await
    else {
        panic!("not an AlterPartitionReassignments response")
    };
    assert_eq!(r.error_code, 0);
    let codes: Vec<i16> = r
        .responses
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
        .collect();
    assert_eq!(
        codes,
        vec![
            0,
            code(ErrorCode::InvalidReplicaAssignment),
            code(ErrorCode::NoReassignmentInProgress),
            code(ErrorCode::UnknownTopicOrPartition),
            code(ErrorCode::UnknownTopicOrPartition),
        ]
    );

    let ResponseBody::ListPartitionReassignments(r) = call(
        &broker,
        0,
        RequestBody::ListPartitionReassignments(ListPartitionReassignmentsRequest {
            topics: None,
            ..ListPartitionReassignmentsRequest::default()
        }),
    )
    .await
    else {
        panic!("not a ListPartitionReassignments response")
    };
    assert_eq!((r.error_code, r.topics.len()), (0, 0));

    for version in 0..=2 {
        let req = ElectLeadersRequest {
            topic_partitions: Some(vec![TopicPartitions {
                topic: "t".into(),
                partitions: vec![0, 5],
                ..TopicPartitions::default()
            }]),
            ..ElectLeadersRequest::default()
        };
        let ResponseBody::ElectLeaders(r) =
            call(&broker, version, RequestBody::ElectLeaders(req)).await
        else {
            panic!("not an ElectLeaders response")
        };
        let codes: Vec<i16> = r.replica_election_results[0]
            .partition_result
            .iter()
            .map(|p| p.error_code)
            .collect();
        assert_eq!(
            codes,
            vec![
                code(ErrorCode::ElectionNotNeeded),
                code(ErrorCode::UnknownTopicOrPartition)
            ],
            "v{version}"
        );
    }
    // Over every partition, the ones that needed no election are left out.
    let req = ElectLeadersRequest {
        election_type: 0,
        topic_partitions: None,
        ..ElectLeadersRequest::default()
    };
    let ResponseBody::ElectLeaders(r) = call(&broker, 2, RequestBody::ElectLeaders(req)).await
    else {
        panic!("not an ElectLeaders response")
    };
    assert_eq!((r.error_code, r.replica_election_results.len()), (0, 0));
    // An unknown election type is refused at the top.
    let req = ElectLeadersRequest {
        election_type: 5,
        ..ElectLeadersRequest::default()
    };
    let ResponseBody::ElectLeaders(r) = call(&broker, 1, RequestBody::ElectLeaders(req)).await
    else {
        panic!("not an ElectLeaders response")
    };
    assert_eq!(r.error_code, code(ErrorCode::InvalidRequest));
}

#[tokio::test(flavor = "multi_thread")]
async fn moves_and_elections_need_the_cluster_operations() {
    let (_dir, broker) = crate::open(|c| c.authorizer.enabled = true);
    create(&broker, "t", 1, &[]);
    let denied = code(ErrorCode::ClusterAuthorizationFailed);
    let req = AlterPartitionReassignmentsRequest {
        topics: vec![ReassignableTopic {
            name: "t".into(),
            partitions: vec![ReassignablePartition {
                partition_index: 0,
                replicas: Some(vec![1]),
                ..ReassignablePartition::default()
            }],
            ..ReassignableTopic::default()
        }],
        ..AlterPartitionReassignmentsRequest::default()
    };
    let ResponseBody::AlterPartitionReassignments(r) =
        call(&broker, 0, RequestBody::AlterPartitionReassignments(req)).await
    else {
        panic!("not an AlterPartitionReassignments response")
    };
    assert_eq!(r.error_code, denied);
    assert_eq!(r.responses[0].partitions[0].error_code, denied);

    let ResponseBody::ListPartitionReassignments(r) = call(
        &broker,
        0,
        RequestBody::ListPartitionReassignments(ListPartitionReassignmentsRequest::default()),
    )
    .await
    else {
        panic!("not a ListPartitionReassignments response")
    };
    assert_eq!(r.error_code, denied);

    let req = ElectLeadersRequest {
        topic_partitions: Some(vec![TopicPartitions {
            topic: "t".into(),
            partitions: vec![0],
            ..TopicPartitions::default()
        }]),
        ..ElectLeadersRequest::default()
    };
    let ResponseBody::ElectLeaders(r) =
        call(&broker, 0, RequestBody::ElectLeaders(req.clone())).await
    else {
        panic!("not an ElectLeaders response")
    };
    assert_eq!(
        r.replica_election_results[0].partition_result[0].error_code,
        denied
    );
    let ResponseBody::ElectLeaders(r) = call(&broker, 2, RequestBody::ElectLeaders(req)).await
    else {
        panic!("not an ElectLeaders response")
    };
    assert_eq!(r.error_code, denied);
}
