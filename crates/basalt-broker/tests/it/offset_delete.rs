//! OffsetDelete under an authorizer: DELETE on the group, and READ on each topic, whose
//! commits otherwise stay.

use basalt_broker::acl::{Operation, ResourceType};
use basalt_protocol::messages::offset_commit_request::{
    OffsetCommitRequest, OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use basalt_protocol::messages::offset_delete_request::{
    OffsetDeleteRequest, OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use basalt_protocol::{ErrorCode, RequestBody, ResponseBody};

use crate::{allow, call, create};

#[tokio::test(flavor = "multi_thread")]
async fn offset_delete_needs_read_on_each_topic() {
    let dir = tempfile::tempdir().unwrap();
    // Commits made before the authorizer is on.
    {
        let broker = basalt_broker::Broker::open(dir.path(), Default::default()).unwrap();
        create(&broker, "readable", 1, &[]);
        create(&broker, "hidden", 1, &[]);
        let topic = |name: &str| OffsetCommitRequestTopic {
            name: name.into(),
            partitions: vec![OffsetCommitRequestPartition {
                partition_index: 0,
                committed_offset: 5,
                ..OffsetCommitRequestPartition::default()
            }],
            ..OffsetCommitRequestTopic::default()
        };
        let ResponseBody::OffsetCommit(r) = call(
            &broker,
            8,
            RequestBody::OffsetCommit(OffsetCommitRequest {
                group_id: "g".into(),
                generation_id_or_member_epoch: -1,
                topics: vec![topic("readable"), topic("hidden")],
                ..OffsetCommitRequest::default()
            }),
        )
        .await
        else {
            panic!("not an OffsetCommit response")
        };
        assert!(
            r.topics
                .iter()
                .all(|t| t.partitions.iter().all(|p| p.error_code == 0)),
            "{r:?}"
        );
        broker.shutdown().unwrap();
    }
    let broker = basalt_broker::Broker::open(dir.path(), {
        let mut c = basalt_broker::BrokerConfig::default();
        c.authorizer.enabled = true;
        c
    })
    .unwrap();
    broker
        .create_acls(vec![
            allow(ResourceType::Group, "g", Operation::Delete),
            allow(ResourceType::Group, "g", Operation::Describe),
            allow(ResourceType::Topic, "readable", Operation::Read),
        ])
        .unwrap();
    let topic = |name: &str| OffsetDeleteRequestTopic {
        name: name.into(),
        partitions: vec![OffsetDeleteRequestPartition { partition_index: 0 }],
    };
    let ResponseBody::OffsetDelete(r) = call(
        &broker,
        0,
        RequestBody::OffsetDelete(OffsetDeleteRequest {
            group_id: "g".into(),
            topics: vec![topic("readable"), topic("hidden")],
        }),
    )
    .await
    else {
        panic!("not an OffsetDelete response")
    };
    assert_eq!(r.error_code, 0);
    let codes: Vec<(String, i16)> = r
        .topics
        .iter()
        .map(|t| (t.name.clone(), t.partitions[0].error_code))
        .collect();
    assert_eq!(
        codes,
        vec![
            ("readable".to_owned(), 0),
            (
                "hidden".to_owned(),
                ErrorCode::TopicAuthorizationFailed.into()
            ),
        ]
    );
    // The refused topic's commit is still there (read in-process: the fetch would need READ).
    let left = broker.coordinator().read("g", |g| {
        g.map(|g| {
            g.offsets
                .iter()
                .map(|(t, _, o)| (t.to_owned(), o.offset))
                .collect::<Vec<_>>()
        })
    });
    assert_eq!(left, Some(vec![("hidden".to_owned(), 5)]));
}
