//! `authorized_operations` in Metadata, DescribeGroups and DescribeCluster: the operations
//! Kafka defines on the resource that the principal may perform, as a bit field of
//! `AclOperation` codes; every one of them without an authorizer, and `i32::MIN` when not
//! asked for.

use basalt_broker::acl::{Operation, ResourceType};
use basalt_protocol::messages::describe_cluster_request::DescribeClusterRequest;
use basalt_protocol::messages::describe_groups_request::DescribeGroupsRequest;
use basalt_protocol::messages::metadata_request::{MetadataRequest, MetadataRequestTopic};
use basalt_protocol::messages::offset_commit_request::{
    OffsetCommitRequest, OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use basalt_protocol::{RequestBody, ResponseBody};

use crate::{allow, call, create};

fn bits(ops: &[i8]) -> i32 {
    ops.iter().fold(0, |b, op| b | (1 << op))
}

async fn topic_operations(broker: &std::sync::Arc<basalt_broker::Broker>, asked: bool) -> i32 {
    let ResponseBody::Metadata(r) = call(
        broker,
        12,
        RequestBody::Metadata(MetadataRequest {
            topics: Some(vec![MetadataRequestTopic {
                name: Some("t".into()),
                ..MetadataRequestTopic::default()
            }]),
            include_topic_authorized_operations: asked,
            ..MetadataRequest::default()
        }),
    )
    .await
    else {
        panic!("not a Metadata response")
    };
    assert_eq!(r.topics[0].error_code, 0);
    r.topics[0].topic_authorized_operations
}

async fn cluster_operations(broker: &std::sync::Arc<basalt_broker::Broker>) -> i32 {
    let ResponseBody::DescribeCluster(r) = call(
        broker,
        1,
        RequestBody::DescribeCluster(DescribeClusterRequest {
            include_cluster_authorized_operations: true,
            endpoint_type: 1,
            ..DescribeClusterRequest::default()
        }),
    )
    .await
    else {
        panic!("not a DescribeCluster response")
    };
    r.cluster_authorized_operations
}

#[tokio::test(flavor = "multi_thread")]
async fn authorized_operations_are_what_the_principal_may_do() {
    // READ 3, WRITE 4, CREATE 5, DELETE 6, ALTER 7, DESCRIBE 8, CLUSTER_ACTION 9,
    // DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11, IDEMPOTENT_WRITE 12.
    let (_dir, open) = crate::open(|_| {});
    create(&open, "t", 1, &[]);
    assert_eq!(topic_operations(&open, false).await, i32::MIN);
    assert_eq!(
        topic_operations(&open, true).await,
        bits(&[3, 4, 5, 6, 7, 8, 10, 11])
    );
    assert_eq!(
        cluster_operations(&open).await,
        bits(&[5, 7, 8, 9, 10, 11, 12])
    );

    let (_dir, broker) = crate::open(|c| c.authorizer.enabled = true);
    create(&broker, "t", 1, &[]);
    broker
        .create_acls(vec![
            allow(ResourceType::Topic, "t", Operation::Read),
            allow(ResourceType::Topic, "t", Operation::DescribeConfigs),
            allow(ResourceType::Group, "g", Operation::Read),
            allow(ResourceType::Cluster, "kafka-cluster", Operation::Describe),
        ])
        .unwrap();
    // READ implies DESCRIBE.
    assert_eq!(topic_operations(&broker, true).await, bits(&[3, 8, 10]));
    assert_eq!(cluster_operations(&broker).await, bits(&[8]));
    let ResponseBody::OffsetCommit(r) = call(
        &broker,
        8,
        RequestBody::OffsetCommit(OffsetCommitRequest {
            group_id: "g".into(),
            generation_id_or_member_epoch: -1,
            topics: vec![OffsetCommitRequestTopic {
                name: "t".into(),
                partitions: vec![OffsetCommitRequestPartition {
                    partition_index: 0,
                    committed_offset: 1,
                    ..OffsetCommitRequestPartition::default()
                }],
                ..OffsetCommitRequestTopic::default()
            }],
            ..OffsetCommitRequest::default()
        }),
    )
    .await
    else {
        panic!("not an OffsetCommit response")
    };
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
    let ResponseBody::DescribeGroups(r) = call(
        &broker,
        5,
        RequestBody::DescribeGroups(DescribeGroupsRequest {
            groups: vec!["g".into()],
            include_authorized_operations: true,
            ..DescribeGroupsRequest::default()
        }),
    )
    .await
    else {
        panic!("not a DescribeGroups response")
    };
    assert_eq!(r.groups[0].error_code, 0);
    assert_eq!(r.groups[0].authorized_operations, bits(&[3, 8]));
}
