//! Metadata (key 3), v0–12: on a single node, this node as the only broker and the leader of
//! every partition, at the advertised address of the listener the client came in on; in a
//! cluster, every unfenced node of the metadata image at its endpoint for that listener, the
//! quorum leader as the controller, and each partition's leader, replicas and ISR from the image.
//!
//! Topics are named or (v10+) given by id; a missing named topic is auto-created when the client
//! allows it (always before v4) and `auto.create.topics.enable` is on. Leader epochs are -1 until
//! replication exists, so clients do not validate positions with OffsetForLeaderEpoch.
//!
//! Authorization: a topic the session may not DESCRIBE is left out of an all-topics answer and
//! answers TOPIC_AUTHORIZATION_FAILED when named; auto-creation needs CREATE on the cluster or
//! the topic (else the topic is unknown).

use basalt_cluster::metadata::MetadataImage;
use basalt_protocol::messages::metadata_request::MetadataRequest;
use basalt_protocol::messages::metadata_response::{
    MetadataResponse, MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use basalt_protocol::{ErrorCode, Uuid};

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
    let topics_req = req.topics;
    // Auto-creation (below) may change the image: read it afterwards.
    let image = broker.image();
    let topics = match topics_req {
        None => broker
            .topics()
            .iter()
            .filter(|t| describe(&t.meta.name))
            .map(|t| topic_entry(t, node_id, image.as_deref()))
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
                    // A topic created just now is in a newer image than the one this request
                    // started with: answer from that one, with its placed leaders.
                    Ok(topic) => match image.as_deref() {
                        Some(i) if i.topic(&name).is_none() => {
                            topic_entry(&topic, node_id, broker.image().as_deref())
                        }
                        _ => topic_entry(&topic, node_id, image.as_deref()),
                    },
                    Err(e) => MetadataResponseTopic {
                        error_code: e.code.into(),
                        name: Some(name),
                        ..MetadataResponseTopic::default()
                    },
                },
                None => match broker.topic_by_id(&t.topic_id) {
                    Some(topic) if !describe(&topic.meta.name) => denied(None, t.topic_id),
                    Some(topic) => topic_entry(&topic, node_id, image.as_deref()),
                    None => MetadataResponseTopic {
                        error_code: ErrorCode::UnknownTopicId.into(),
                        topic_id: t.topic_id,
                        ..MetadataResponseTopic::default()
                    },
                },
            })
            .collect(),
    };
    let mut topics: Vec<MetadataResponseTopic> = topics;
    if version >= 8 && req.include_topic_authorized_operations {
        for t in &mut topics {
            if let (0, Some(name)) = (t.error_code, &t.name) {
                t.topic_authorized_operations =
                    broker.authorized_operations(session, ResourceType::Topic, name);
            }
        }
    }
    let cluster_authorized_operations =
        if (8..=10).contains(&version) && req.include_cluster_authorized_operations {
            broker.authorized_operations(session, ResourceType::Cluster, crate::acl::CLUSTER_NAME)
        } else {
            i32::MIN
        };
    let (brokers, controller_id) = match broker.image() {
        Some(image) => (
            cluster_brokers(&image, conn.listener_name()),
            broker
                .cluster()
                .and_then(|c| c.quorum.leader())
                .unwrap_or(-1),
        ),
        None => (
            vec![MetadataResponseBroker {
                node_id,
                host,
                port,
                rack: config.rack.clone(),
                ..MetadataResponseBroker::default()
            }],
            node_id,
        ),
    };
    MetadataResponse {
        brokers,
        cluster_id: Some(config.cluster_id.clone()),
        controller_id,
        topics,
        cluster_authorized_operations,
        ..MetadataResponse::default()
    }
}

/// Every unfenced node of `image` at its endpoint for `listener` (nodes without one are left
/// out).
pub(crate) fn cluster_brokers(
    image: &MetadataImage,
    listener: &str,
) -> Vec<MetadataResponseBroker> {
    image
        .live_nodes()
        .filter_map(|n| {
            let e = n.endpoints.iter().find(|e| e.name == listener)?;
            Some(MetadataResponseBroker {
                node_id: n.id,
                host: e.host.clone(),
                port: i32::from(e.port),
                rack: n.rack.clone(),
                ..MetadataResponseBroker::default()
            })
        })
        .collect()
}

fn topic_entry(
    topic: &Topic,
    node_id: i32,
    image: Option<&MetadataImage>,
) -> MetadataResponseTopic {
    if let Some(record) = image.and_then(|i| i.topic(&topic.meta.name)) {
        return MetadataResponseTopic {
            error_code: 0,
            name: Some(topic.meta.name.clone()),
            topic_id: Uuid::from_bytes(record.id.0),
            is_internal: crate::groups::is_internal(&topic.meta.name),
            partitions: record
                .partitions
                .iter()
                .enumerate()
                .map(|(i, p)| MetadataResponsePartition {
                    error_code: if p.leader.is_some() {
                        0
                    } else {
                        ErrorCode::LeaderNotAvailable.into()
                    },
                    partition_index: i as i32,
                    leader_id: p.leader.unwrap_or(-1),
                    // Stamped in the leader's batches and answered by OffsetForLeaderEpoch.
                    leader_epoch: p.leader_epoch,
                    replica_nodes: p.replicas.clone(),
                    isr_nodes: p.isr.clone(),
                    offline_replicas: p
                        .replicas
                        .iter()
                        .copied()
                        .filter(|r| !image.is_some_and(|i| i.is_live(*r)))
                        .collect(),
                    ..MetadataResponsePartition::default()
                })
                .collect(),
            topic_authorized_operations: i32::MIN,
            ..MetadataResponseTopic::default()
        };
    }
    if image.is_some() {
        // In a cluster, a topic the image does not show yet has no known leader: the client
        // asks again (never this node by default, which may not lead it).
        return MetadataResponseTopic {
            error_code: ErrorCode::LeaderNotAvailable.into(),
            name: Some(topic.meta.name.clone()),
            topic_id: topic.id,
            is_internal: crate::groups::is_internal(&topic.meta.name),
            topic_authorized_operations: i32::MIN,
            ..MetadataResponseTopic::default()
        };
    }
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
                leader_epoch: topic
                    .partitions
                    .get(p as usize)
                    .map_or(0, |partition| partition.leader_epoch()),
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
