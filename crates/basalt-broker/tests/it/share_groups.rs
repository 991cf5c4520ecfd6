//! Share groups (KIP-932): ShareGroupHeartbeat, ShareFetch, ShareAcknowledge,
//! ShareGroupDescribe and the group configs they read, at version 1 through the wire encoding.

use std::sync::Arc;

use basalt_broker::Broker;
use basalt_protocol::messages::describe_configs_request::{
    DescribeConfigsRequest, DescribeConfigsResource,
};
use basalt_protocol::messages::incremental_alter_configs_request as inc;
use basalt_protocol::messages::list_groups_request::ListGroupsRequest;
use basalt_protocol::messages::share_acknowledge_request::{
    AcknowledgePartition, AcknowledgeTopic, AcknowledgementBatch as AckBatch,
    ShareAcknowledgeRequest,
};
use basalt_protocol::messages::share_acknowledge_response::ShareAcknowledgeResponse;
use basalt_protocol::messages::share_fetch_request::{
    AcknowledgementBatch, FetchPartition, FetchTopic, ShareFetchRequest,
};
use basalt_protocol::messages::share_fetch_response::ShareFetchResponse;
use basalt_protocol::messages::share_group_describe_request::ShareGroupDescribeRequest;
use basalt_protocol::messages::share_group_heartbeat_request::ShareGroupHeartbeatRequest;
use basalt_protocol::messages::share_group_heartbeat_response::ShareGroupHeartbeatResponse;
use basalt_protocol::{ErrorCode, RequestBody, ResponseBody, Uuid};

use crate::{call, create, open, produce};

const GROUP: i8 = 32;

async fn set_group_config(broker: &Arc<Broker>, group: &str, name: &str, value: &str) -> i16 {
    let req = inc::IncrementalAlterConfigsRequest {
        resources: vec![inc::AlterConfigsResource {
            resource_type: GROUP,
            resource_name: group.into(),
            configs: vec![inc::AlterableConfig {
                name: name.into(),
                config_operation: 0,
                value: Some(value.into()),
                ..inc::AlterableConfig::default()
            }],
            ..inc::AlterConfigsResource::default()
        }],
        ..inc::IncrementalAlterConfigsRequest::default()
    };
    match call(broker, 1, RequestBody::IncrementalAlterConfigs(req)).await {
        ResponseBody::IncrementalAlterConfigs(r) => r.responses[0].error_code,
        other => panic!("{other:?}"),
    }
}

async fn heartbeat(
    broker: &Arc<Broker>,
    member: &str,
    epoch: i32,
    topics: Option<&[&str]>,
) -> ShareGroupHeartbeatResponse {
    let req = ShareGroupHeartbeatRequest {
        group_id: "g".into(),
        member_id: member.into(),
        member_epoch: epoch,
        subscribed_topic_names: topics.map(|t| t.iter().map(|s| (*s).to_owned()).collect()),
        ..ShareGroupHeartbeatRequest::default()
    };
    match call(broker, 1, RequestBody::ShareGroupHeartbeat(req)).await {
        ResponseBody::ShareGroupHeartbeat(r) => r,
        other => panic!("{other:?}"),
    }
}

/// The partitions of `topic` a heartbeat assigned.
fn assigned(r: &ShareGroupHeartbeatResponse, topic: Uuid) -> Vec<i32> {
    r.assignment
        .as_ref()
        .and_then(|a| a.topic_partitions.iter().find(|tp| tp.topic_id == topic))
        .map(|tp| tp.partitions.clone())
        .unwrap_or_default()
}

/// A share fetch of `partitions` of `topic` (added to the session) with acknowledgements
/// `acks` of (partition, first, last, type).
async fn share_fetch(
    broker: &Arc<Broker>,
    member: &str,
    epoch: i32,
    topic: Uuid,
    partitions: &[i32],
    acks: &[(i32, i64, i64, i8)],
    max_wait_ms: i32,
) -> ShareFetchResponse {
    let mut fetch: Vec<FetchPartition> = partitions
        .iter()
        .map(|p| FetchPartition {
            partition_index: *p,
            ..FetchPartition::default()
        })
        .collect();
    for (p, first, last, t) in acks {
        let batch = AcknowledgementBatch {
            first_offset: *first,
            last_offset: *last,
            acknowledge_types: vec![*t],
            ..AcknowledgementBatch::default()
        };
        match fetch.iter_mut().find(|f| f.partition_index == *p) {
            Some(f) => f.acknowledgement_batches.push(batch),
            None => fetch.push(FetchPartition {
                partition_index: *p,
                acknowledgement_batches: vec![batch],
                ..FetchPartition::default()
            }),
        }
    }
    let req = ShareFetchRequest {
        group_id: Some("g".into()),
        member_id: Some(member.into()),
        share_session_epoch: epoch,
        max_wait_ms,
        min_bytes: 1,
        max_bytes: 1 << 20,
        max_records: 500,
        batch_size: 500,
        topics: vec![FetchTopic {
            topic_id: topic,
            partitions: fetch,
            ..FetchTopic::default()
        }],
        ..ShareFetchRequest::default()
    };
    match call(broker, 1, RequestBody::ShareFetch(req)).await {
        ResponseBody::ShareFetch(r) => r,
        other => panic!("{other:?}"),
    }
}

async fn share_ack(
    broker: &Arc<Broker>,
    member: &str,
    epoch: i32,
    topic: Uuid,
    acks: &[(i32, i64, i64, i8)],
) -> ShareAcknowledgeResponse {
    let req = ShareAcknowledgeRequest {
        group_id: Some("g".into()),
        member_id: Some(member.into()),
        share_session_epoch: epoch,
        topics: vec![AcknowledgeTopic {
            topic_id: topic,
            partitions: acks
                .iter()
                .map(|(p, first, last, t)| AcknowledgePartition {
                    partition_index: *p,
                    acknowledgement_batches: vec![AckBatch {
                        first_offset: *first,
                        last_offset: *last,
                        acknowledge_types: vec![*t],
                        ..AckBatch::default()
                    }],
                    ..AcknowledgePartition::default()
                })
                .collect(),
            ..AcknowledgeTopic::default()
        }],
        ..ShareAcknowledgeRequest::default()
    };
    match call(broker, 1, RequestBody::ShareAcknowledge(req)).await {
        ResponseBody::ShareAcknowledge(r) => r,
        other => panic!("{other:?}"),
    }
}

/// Every (partition, first, last, delivery count) acquired, with whether each partition with
/// acquired records also carried records.
fn acquired(r: &ShareFetchResponse) -> Vec<(i32, i64, i64, i16)> {
    let mut out = Vec::new();
    for t in &r.responses {
        for p in &t.partitions {
            assert_eq!(p.error_code, 0, "{p:?}");
            if !p.acquired_records.is_empty() {
                assert!(p.records.as_ref().is_some_and(|r| !r.is_empty()));
            }
            for a in &p.acquired_records {
                out.push((
                    p.partition_index,
                    a.first_offset,
                    a.last_offset,
                    a.delivery_count,
                ));
            }
        }
    }
    out
}

fn ack_errors(r: &ShareFetchResponse) -> Vec<(i32, i16)> {
    r.responses
        .iter()
        .flat_map(|t| t.partitions.iter())
        .map(|p| (p.partition_index, p.acknowledge_error_code))
        .collect()
}

const ACCEPT: i8 = 1;
const RELEASE: i8 = 2;
const REJECT: i8 = 3;

#[tokio::test]
async fn members_share_records_each_delivered_once_until_released_or_its_lock_runs_out() {
    let (_dir, broker) = open(|_| {});
    create(&broker, "q", 2, &[]);
    let topic = broker.topic("q").unwrap().id;
    produce(&broker, "q", 0, 10).await;
    produce(&broker, "q", 1, 4).await;
    assert_eq!(
        set_group_config(&broker, "g", "share.auto.offset.reset", "bogus").await,
        i16::from(ErrorCode::InvalidConfig)
    );
    assert_eq!(
        set_group_config(&broker, "g", "share.auto.offset.reset", "earliest").await,
        0
    );
    assert_eq!(
        set_group_config(&broker, "g", "share.record.lock.duration.ms", "1000").await,
        0
    );
    let described = match call(
        &broker,
        4,
        RequestBody::DescribeConfigs(DescribeConfigsRequest {
            resources: vec![DescribeConfigsResource {
                resource_type: GROUP,
                resource_name: "g".into(),
                configuration_keys: Some(vec!["share.auto.offset.reset".into()]),
                ..DescribeConfigsResource::default()
            }],
            ..DescribeConfigsRequest::default()
        }),
    )
    .await
    {
        ResponseBody::DescribeConfigs(mut r) => r.results.remove(0),
        other => panic!("{other:?}"),
    };
    assert_eq!(described.configs.len(), 1);
    assert_eq!(described.configs[0].value.as_deref(), Some("earliest"));
    assert_eq!(described.configs[0].config_source, 8, "GROUP_CONFIG");

    // Two members split the two partitions once both have heartbeated.
    let m1 = heartbeat(&broker, "m1", 0, Some(&["q"])).await;
    assert_eq!(m1.error_code, 0, "{m1:?}");
    assert_eq!(assigned(&m1, topic), vec![0, 1]);
    let m2 = heartbeat(&broker, "m2", 0, Some(&["q"])).await;
    assert_eq!(assigned(&m2, topic), vec![1]);
    let m1 = heartbeat(&broker, "m1", m1.member_epoch, None).await;
    assert_eq!(assigned(&m1, topic), vec![0]);
    let stale = heartbeat(&broker, "m1", m1.member_epoch - 1, None).await;
    assert_eq!(stale.error_code, i16::from(ErrorCode::FencedMemberEpoch));

    // m1 acquires partition 0; m2, fetching the same partition, gets none of those records.
    let r = share_fetch(&broker, "m1", 0, topic, &[0], &[], 0).await;
    assert_eq!(r.acquisition_lock_timeout_ms, 1000);
    assert_eq!(acquired(&r), vec![(0, 0, 9, 1)]);
    let r = share_fetch(&broker, "m2", 0, topic, &[0, 1], &[], 0).await;
    assert_eq!(acquired(&r), vec![(1, 0, 3, 1)]);

    // m1 accepts 0..=4 and releases 5..=9; m2 then gets 5..=9 as a second delivery.
    let r = share_ack(&broker, "m1", 1, topic, &[(0, 0, 4, ACCEPT)]).await;
    assert_eq!(r.responses[0].partitions[0].error_code, 0, "{r:?}");
    let r = share_ack(&broker, "m1", 2, topic, &[(0, 5, 9, RELEASE)]).await;
    assert_eq!(r.responses[0].partitions[0].error_code, 0, "{r:?}");
    let r = share_fetch(&broker, "m2", 1, topic, &[], &[(1, 0, 3, REJECT)], 0).await;
    assert_eq!(ack_errors(&r), vec![(0, 0), (1, 0)]);
    assert_eq!(acquired(&r), vec![(0, 5, 9, 2)]);

    // Records the member does not hold cannot be acknowledged; bad epochs are refused.
    let r = share_ack(&broker, "m2", 2, topic, &[(0, 0, 9, ACCEPT)]).await;
    assert_eq!(
        r.responses[0].partitions[0].error_code,
        i16::from(ErrorCode::InvalidRecordState)
    );
    let r = share_ack(&broker, "m2", 9, topic, &[(0, 5, 9, ACCEPT)]).await;
    assert_eq!(r.error_code, i16::from(ErrorCode::InvalidShareSessionEpoch));
    let r = share_ack(&broker, "m3", 1, topic, &[(0, 5, 9, ACCEPT)]).await;
    assert_eq!(r.error_code, i16::from(ErrorCode::ShareSessionNotFound));

    // m2 never acknowledges 5..=9: once their lock runs out, m1's waiting fetch gets them.
    let r = share_fetch(&broker, "m1", 3, topic, &[], &[], 10_000).await;
    assert_eq!(acquired(&r), vec![(0, 5, 9, 3)]);
    let r = share_ack(&broker, "m1", 4, topic, &[(0, 5, 9, ACCEPT)]).await;
    assert_eq!(r.responses[0].partitions[0].error_code, 0);
    assert_eq!(broker.shares().offsets_of("g", topic, 0), Some((10, 10)));
    assert_eq!(broker.shares().offsets_of("g", topic, 1), Some((4, 4)));

    // The group is described and listed as a share group.
    let d = match call(
        &broker,
        1,
        RequestBody::ShareGroupDescribe(ShareGroupDescribeRequest {
            group_ids: vec!["g".into(), "nope".into()],
            ..ShareGroupDescribeRequest::default()
        }),
    )
    .await
    {
        ResponseBody::ShareGroupDescribe(r) => r,
        other => panic!("{other:?}"),
    };
    assert_eq!(d.groups[0].error_code, 0);
    assert_eq!(d.groups[0].members.len(), 2);
    assert_eq!(d.groups[0].group_state, "Stable");
    assert_eq!(
        d.groups[1].error_code,
        i16::from(ErrorCode::GroupIdNotFound)
    );
    let listed = match call(
        &broker,
        5,
        RequestBody::ListGroups(ListGroupsRequest {
            types_filter: vec!["share".into()],
            ..ListGroupsRequest::default()
        }),
    )
    .await
    {
        ResponseBody::ListGroups(r) => r.groups,
        other => panic!("{other:?}"),
    };
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].group_id.as_str(), listed[0].group_type.as_str()),
        ("g", "share")
    );

    // Leaving keeps the session for the last acknowledgements, which close it.
    assert_eq!(heartbeat(&broker, "m2", -1, None).await.member_epoch, -1);
    let r = share_ack(&broker, "m2", -1, topic, &[]).await;
    assert_eq!(r.error_code, 0);
    let r = share_ack(&broker, "m2", 3, topic, &[]).await;
    assert_eq!(r.error_code, i16::from(ErrorCode::ShareSessionNotFound));
}

#[tokio::test]
async fn acknowledged_state_survives_a_restart_and_held_records_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let topic;
    {
        let broker = Broker::open(dir.path(), basalt_broker::BrokerConfig::default()).unwrap();
        create(&broker, "q", 1, &[]);
        topic = broker.topic("q").unwrap().id;
        produce(&broker, "q", 0, 6).await;
        assert_eq!(
            set_group_config(&broker, "g", "share.auto.offset.reset", "earliest").await,
            0
        );
        let r = share_fetch(&broker, "m1", 0, topic, &[0], &[], 0).await;
        assert_eq!(acquired(&r), vec![(0, 0, 5, 1)]);
        // Accept 0..=1 and 4, reject 3; 2 and 5 stay held when the broker stops.
        for (epoch, (first, last, t)) in [(0, 1, ACCEPT), (3, 3, REJECT), (4, 4, ACCEPT)]
            .into_iter()
            .enumerate()
        {
            let r = share_ack(
                &broker,
                "m1",
                epoch as i32 + 1,
                topic,
                &[(0, first, last, t)],
            )
            .await;
            assert_eq!(r.responses[0].partitions[0].error_code, 0);
        }
        broker.shutdown().unwrap();
    }
    let broker = Broker::open(dir.path(), basalt_broker::BrokerConfig::default()).unwrap();
    // The group configs persisted too: a new record is delivered from where the group was.
    produce(&broker, "q", 0, 1).await;
    let r = share_fetch(&broker, "m9", 0, topic, &[0], &[], 0).await;
    assert_eq!(
        acquired(&r),
        vec![(0, 2, 2, 2), (0, 5, 5, 2), (0, 6, 6, 1)],
        "only the records never acknowledged, counted as second deliveries"
    );
}

#[tokio::test]
async fn a_read_committed_group_never_receives_an_aborted_transaction() {
    let (_dir, broker) = open(|_| {});
    create(&broker, "q", 1, &[]);
    let topic = broker.topic("q").unwrap().id;
    produce(&broker, "q", 0, 2).await;
    let partition = broker.partition("q", 0).unwrap();
    let mut b = basalt_record::BatchBuilder::new(0)
        .producer(1000, 0, 0)
        .transactional();
    for _ in 0..3 {
        b.push(basalt_broker::now_ms(), None, Some(b"aborted"), &[]);
    }
    let produced = partition
        .produce(&b.build(), basalt_broker::now_ms(), |_, _| Ok(()))
        .unwrap();
    if let Some(t) = produced.durable {
        t.await.unwrap();
    }
    let (marker, _) = partition
        .write_marker(
            1000,
            0,
            basalt_record::ControlType::Abort,
            0,
            basalt_broker::now_ms(),
        )
        .unwrap()
        .unwrap();
    marker.await.unwrap();
    produce(&broker, "q", 0, 1).await;
    assert_eq!(
        set_group_config(&broker, "g", "share.auto.offset.reset", "earliest").await,
        0
    );
    assert_eq!(
        set_group_config(&broker, "g", "share.isolation.level", "read_committed").await,
        0
    );
    let r = share_fetch(&broker, "m1", 0, topic, &[0], &[], 0).await;
    // Offsets 2..=4 are the aborted records; 5 is the ABORT marker, which the client skips.
    assert_eq!(acquired(&r), vec![(0, 0, 1, 1), (0, 5, 6, 1)]);
}

#[tokio::test]
async fn a_record_released_as_often_as_the_delivery_limit_is_archived() {
    let (_dir, broker) = open(|c| c.shares.delivery_limit = 2);
    create(&broker, "q", 1, &[]);
    let topic = broker.topic("q").unwrap().id;
    produce(&broker, "q", 0, 1).await;
    assert_eq!(
        set_group_config(&broker, "g", "share.auto.offset.reset", "earliest").await,
        0
    );
    let r = share_fetch(&broker, "m1", 0, topic, &[0], &[], 0).await;
    assert_eq!(acquired(&r), vec![(0, 0, 0, 1)]);
    let r = share_fetch(&broker, "m1", 1, topic, &[], &[(0, 0, 0, RELEASE)], 0).await;
    assert_eq!(
        acquired(&r),
        vec![(0, 0, 0, 2)],
        "released, then delivered again"
    );
    let r = share_fetch(&broker, "m1", 2, topic, &[], &[(0, 0, 0, RELEASE)], 0).await;
    assert_eq!(ack_errors(&r), vec![(0, 0)]);
    assert!(acquired(&r).is_empty(), "the second release archived it");
    assert_eq!(broker.shares().offsets_of("g", topic, 0), Some((1, 1)));
}

#[tokio::test]
async fn share_groups_need_read_on_the_group_and_on_each_topic() {
    use basalt_broker::acl::{Operation, ResourceType};
    let (_dir, broker) = open(|c| c.authorizer.enabled = true);
    create(&broker, "q", 1, &[]);
    create(&broker, "secret", 1, &[]);
    let q = broker.topic("q").unwrap().id;
    let secret = broker.topic("secret").unwrap().id;
    let hb = heartbeat(&broker, "m1", 0, Some(&["q"])).await;
    assert_eq!(
        hb.error_code,
        i16::from(ErrorCode::GroupAuthorizationFailed)
    );
    let r = share_fetch(&broker, "m1", 0, q, &[0], &[], 0).await;
    assert_eq!(r.error_code, i16::from(ErrorCode::GroupAuthorizationFailed));
    broker
        .create_acls(vec![
            crate::allow(ResourceType::Group, "g", Operation::Read),
            crate::allow(ResourceType::Topic, "q", Operation::Read),
        ])
        .unwrap();
    assert_eq!(
        heartbeat(&broker, "m1", 0, Some(&["q"])).await.error_code,
        0
    );
    let r = share_fetch(&broker, "m1", 0, q, &[0], &[], 0).await;
    assert_eq!(r.error_code, 0);
    let r = share_fetch(&broker, "m1", 1, secret, &[0], &[], 0).await;
    let refused: Vec<(Uuid, i16)> = r
        .responses
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (t.topic_id, p.error_code)))
        .collect();
    assert_eq!(
        refused,
        vec![(secret, i16::from(ErrorCode::TopicAuthorizationFailed))]
    );
}
