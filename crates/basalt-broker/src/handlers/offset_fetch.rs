//! OffsetFetch (key 9), v1–9: a group's committed offsets, for named partitions or (topics =
//! null) all of them; v8+ asks for several groups at once; v9 carries the member id and epoch
//! of a consumer-group member. Partitions without a commit answer offset -1. With
//! `require_stable` (v7+, KIP-447), a partition whose offset an open transaction is committing
//! answers UNSTABLE_OFFSET_COMMIT, and the client asks again.

use std::collections::BTreeSet;

use basalt_coordinator::{Group, GroupKind};
use basalt_protocol::ErrorCode;
use basalt_protocol::messages::offset_fetch_request::OffsetFetchRequest;
use basalt_protocol::messages::offset_fetch_response::{
    OffsetFetchResponse, OffsetFetchResponseGroup, OffsetFetchResponsePartition,
    OffsetFetchResponsePartitions, OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};

use crate::Broker;
use crate::acl::{Operation, ResourceType, Session};

/// Highest version handled (v10 names topics by id).
pub const MAX_VERSION: i16 = 9;

/// One partition's answer: offset, leader epoch, metadata, error.
type Fetched = (i32, i64, i32, Option<String>, ErrorCode);

/// Drops (all topics asked for) or marks TOPIC_AUTHORIZATION_FAILED (topics named) the topics
/// the session may not DESCRIBE, as Kafka does.
fn authorized_topics(
    broker: &Broker,
    session: &Session,
    explicit: bool,
    fetched: Vec<(String, Vec<Fetched>)>,
) -> Vec<(String, Vec<Fetched>)> {
    fetched
        .into_iter()
        .filter_map(|(name, partitions)| {
            if broker.authorize(session, Operation::Describe, ResourceType::Topic, &name) {
                Some((name, partitions))
            } else if explicit {
                let denied = partitions
                    .into_iter()
                    .map(|(p, ..)| (p, -1, -1, None, ErrorCode::TopicAuthorizationFailed))
                    .collect();
                Some((name, denied))
            } else {
                None
            }
        })
        .collect()
}

/// What one group asks: topics with partitions, or `None` for everything committed.
fn fetch_group(
    group: Option<&Group>,
    topics: Option<Vec<(String, Vec<i32>)>>,
    member: Option<(Option<&str>, i32)>,
    unstable: &BTreeSet<(String, i32)>,
) -> (ErrorCode, Vec<(String, Vec<Fetched>)>) {
    if let (
        Some(Group {
            kind: GroupKind::Consumer(g),
            ..
        }),
        Some((member_id, epoch)),
    ) = (group, member)
        && let Err(code) = g.check_fetch(member_id, epoch)
    {
        return (code, Vec::new());
    }
    let wanted: Vec<(String, Vec<i32>)> = match topics {
        Some(t) => t,
        None => {
            let Some(g) = group else {
                return (ErrorCode::None, Vec::new());
            };
            let mut by_topic: Vec<(String, Vec<i32>)> = Vec::new();
            for (topic, partition, _) in g.offsets.iter() {
                match by_topic.last_mut() {
                    Some((t, ps)) if t == topic => ps.push(partition),
                    _ => by_topic.push((topic.to_owned(), vec![partition])),
                }
            }
            by_topic
        }
    };
    let out = wanted
        .into_iter()
        .map(|(topic, partitions)| {
            let fetched = partitions
                .into_iter()
                .map(|p| match group.and_then(|g| g.offsets.get(&topic, p)) {
                    _ if unstable.contains(&(topic.clone(), p)) => {
                        (p, -1, -1, None, ErrorCode::UnstableOffsetCommit)
                    }
                    Some(o) => (
                        p,
                        o.offset,
                        o.leader_epoch,
                        Some(o.metadata.clone().unwrap_or_default()),
                        ErrorCode::None,
                    ),
                    None => (p, -1, -1, Some(String::new()), ErrorCode::None),
                })
                .collect();
            (topic, fetched)
        })
        .collect();
    (ErrorCode::None, out)
}

pub fn handle(
    broker: &Broker,
    session: &Session,
    req: OffsetFetchRequest,
    version: i16,
) -> OffsetFetchResponse {
    let coordinator = broker.coordinator();
    let require_stable = version >= 7 && req.require_stable;
    // Read before the group lock: the two coordinators' locks are never nested.
    let unstable = |group: &str| {
        if require_stable {
            let mut pending = broker.txns().read(|t| t.pending_offsets(group));
            pending.extend(coordinator.read(group, |g| {
                g.map(|g| g.pending_partitions()).unwrap_or_default()
            }));
            pending
        } else {
            BTreeSet::new()
        }
    };
    let readable_group =
        |group: &str| broker.authorize(session, Operation::Read, ResourceType::Group, group);
    if version >= 8 {
        let groups = req
            .groups
            .into_iter()
            .map(|g| {
                let topics = g.topics.map(|ts| {
                    ts.into_iter()
                        .map(|t| (t.name, t.partition_indexes))
                        .collect::<Vec<_>>()
                });
                let explicit = topics.is_some();
                let (code, fetched) = if !readable_group(&g.group_id) {
                    (ErrorCode::GroupAuthorizationFailed, Vec::new())
                } else if g.group_id.is_empty() {
                    (ErrorCode::InvalidGroupId, Vec::new())
                } else if !broker.coordinates_group(&g.group_id) {
                    (ErrorCode::NotCoordinator, Vec::new())
                } else {
                    let unstable = unstable(&g.group_id);
                    coordinator.read(&g.group_id, |group| {
                        fetch_group(
                            group,
                            topics,
                            Some((g.member_id.as_deref(), g.member_epoch)),
                            &unstable,
                        )
                    })
                };
                let fetched = authorized_topics(broker, session, explicit, fetched);
                OffsetFetchResponseGroup {
                    group_id: g.group_id,
                    error_code: code.into(),
                    topics: fetched
                        .into_iter()
                        .map(|(name, ps)| OffsetFetchResponseTopics {
                            name,
                            partitions: ps
                                .into_iter()
                                .map(|(p, o, e, m, c)| OffsetFetchResponsePartitions {
                                    partition_index: p,
                                    committed_offset: o,
                                    committed_leader_epoch: e,
                                    metadata: m,
                                    error_code: c.into(),
                                    ..OffsetFetchResponsePartitions::default()
                                })
                                .collect(),
                            ..OffsetFetchResponseTopics::default()
                        })
                        .collect(),
                    ..OffsetFetchResponseGroup::default()
                }
            })
            .collect();
        return OffsetFetchResponse {
            groups,
            ..OffsetFetchResponse::default()
        };
    }
    let topics = req.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name, t.partition_indexes))
            .collect::<Vec<_>>()
    });
    let explicit = topics.is_some();
    let (code, fetched) = if !readable_group(&req.group_id) {
        (ErrorCode::GroupAuthorizationFailed, Vec::new())
    } else if req.group_id.is_empty() {
        (ErrorCode::InvalidGroupId, Vec::new())
    } else if !broker.coordinates_group(&req.group_id) {
        (ErrorCode::NotCoordinator, Vec::new())
    } else {
        let unstable = unstable(&req.group_id);
        coordinator.read(&req.group_id, |group| {
            fetch_group(group, topics, None, &unstable)
        })
    };
    let fetched = authorized_topics(broker, session, explicit, fetched);
    OffsetFetchResponse {
        error_code: code.into(),
        topics: fetched
            .into_iter()
            .map(|(name, ps)| OffsetFetchResponseTopic {
                name,
                partitions: ps
                    .into_iter()
                    .map(|(p, o, e, m, c)| OffsetFetchResponsePartition {
                        partition_index: p,
                        committed_offset: o,
                        committed_leader_epoch: e,
                        metadata: m,
                        error_code: c.into(),
                        ..OffsetFetchResponsePartition::default()
                    })
                    .collect(),
                ..OffsetFetchResponseTopic::default()
            })
            .collect(),
        ..OffsetFetchResponse::default()
    }
}
