//! Metadata (key 3), v0–12: this node as the only broker and the leader of every partition,
//! at the advertised address of the listener the client came in on.
//!
//! Topics are named or (v10+) given by id; a missing named topic is auto-created when the client
//! allows it (always before v4) and `auto.create.topics.enable` is on. Leader epochs are -1 until
//! replication exists, so clients do not validate positions with OffsetForLeaderEpoch.
//!
//! Authorization: a topic the session may not DESCRIBE is left out of an all-topics answer and
//! answers TOPIC_AUTHORIZATION_FAILED when named; auto-creation needs CREATE on the cluster or
//! the topic (else the topic is unknown).

use basalt_protocol::ErrorCode;
use basalt_protocol::messages::metadata_request::MetadataRequest;
use basalt_protocol::messages::metadata_response::{
    MetadataResponse, MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};

use crate::acl::{Operation, ResourceType, Session};
use crate::{Broker, Topic};
use basalt_server::ConnectionInfo;

/// Highest Metadata version handled.
pub const MAX_VERSION: i16 = 12;

pub fn handle(
    broker: &Broker,
    session: &Session,
    conn: &ConnectionInfo,
    req: MetadataRequest,
    version: i16,
) -> MetadataResponse {
    let config = broker.config();
    let (host, port) = broker.advertised_for(conn);
    let node_id = config.node_id;
    let allow_auto_create = version < 4 || req.allow_auto_topic_creation;
    let describe =
        |name: &str| broker.authorize(session, Operation::Describe, ResourceType::Topic, name);
    let denied = |name: Option<String>, topic_id| MetadataResponseTopic {
        error_code: ErrorCode::TopicAuthorizationFailed.into(),
        name,
        topic_id,
        ..MetadataResponseTopic::default()
    };
    let topics = match req.topics {
        None => broker
            .topics()
            .iter()
            .filter(|t| describe(&t.meta.name))
            .map(|t| topic_entry(t, node_id))
            .collect(),
        Some(requested) => requested
            .into_iter()
            .map(|t| match t.name {
                Some(name) if !describe(&name) => denied(Some(name), t.topic_id),
                Some(name) => match broker.topic_or_auto_create(
                    &name,
                    allow_auto_create
                        && (broker.authorize_cluster(session, Operation::Create)
                            || broker.authorize(
                                session,
                                Operation::Create,
                                ResourceType::Topic,
                                &name,
                            )),
                ) {
                    Ok(topic) => topic_entry(&topic, node_id),
                    Err(e) => MetadataResponseTopic {
                        error_code: e.code.into(),
                        name: Some(name),
                        ..MetadataResponseTopic::default()
                    },
                },
                None => match broker.topic_by_id(&t.topic_id) {
                    Some(topic) if !describe(&topic.meta.name) => denied(None, t.topic_id),
                    Some(topic) => topic_entry(&topic, node_id),
                    None => MetadataResponseTopic {
                        error_code: ErrorCode::UnknownTopicId.into(),
                        topic_id: t.topic_id,
                        ..MetadataResponseTopic::default()
                    },
                },
            })
            .collect(),
    };
    MetadataResponse {
        brokers: vec![MetadataResponseBroker {
            node_id,
            host,
            port,
            rack: config.rack.clone(),
            ..MetadataResponseBroker::default()
        }],
        cluster_id: Some(config.cluster_id.clone()),
        controller_id: node_id,
        topics,
        cluster_authorized_operations: i32::MIN,
        ..MetadataResponse::default()
    }
}

fn topic_entry(topic: &Topic, node_id: i32) -> MetadataResponseTopic {
    MetadataResponseTopic {
        error_code: 0,
        name: Some(topic.meta.name.clone()),
        topic_id: topic.id,
        is_internal: crate::groups::is_internal(&topic.meta.name),
        partitions: (0..topic.meta.partitions)
            .map(|p| MetadataResponsePartition {
                error_code: 0,
                partition_index: p,
                leader_id: node_id,
                leader_epoch: -1,
                replica_nodes: vec![node_id],
                isr_nodes: vec![node_id],
                offline_replicas: Vec::new(),
                ..MetadataResponsePartition::default()
            })
            .collect(),
        topic_authorized_operations: i32::MIN,
        ..MetadataResponseTopic::default()
    }
}
