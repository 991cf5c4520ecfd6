//! OffsetCommit (key 8), v2–9: stores a group's committed offsets in `__consumer_offsets` and
//! answers once they are durable (`GC-2`). Members commit with their generation (classic) or
//! member epoch (consumer groups, v9); commits with generation -1 and no member id come from
//! outside the group protocol and are accepted only while the group has no members.

use basalt_coordinator::{CommittedOffset, Effects, Group, GroupKind, Record};
use basalt_protocol::ErrorCode;
use basalt_protocol::messages::offset_commit_request::OffsetCommitRequest;
use basalt_protocol::messages::offset_commit_response::{
    OffsetCommitResponse, OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};

use crate::Broker;
use crate::acl::{Operation, ResourceType, Session};
use crate::groups::{self, is_internal};

/// Highest version handled (v10 names topics by id).
pub const MAX_VERSION: i16 = 9;

/// Validates and applies the commits now (in request order, `GC-1`); the returned future waits
/// for their durability and builds the answer.
pub fn handle(
    broker: &Broker,
    session: &Session,
    req: OffsetCommitRequest,
) -> impl Future<Output = OffsetCommitResponse> + Send + 'static {
    let coordinator = broker.coordinator();
    let max_metadata = coordinator.config().offset_metadata_max_bytes;
    let group_error =
        if !broker.authorize(session, Operation::Read, ResourceType::Group, &req.group_id) {
            Some(ErrorCode::GroupAuthorizationFailed)
        } else if req.group_id.is_empty() {
            Some(ErrorCode::InvalidGroupId)
        } else {
            (!broker.coordinates_group(&req.group_id)).then_some(ErrorCode::NotCoordinator)
        };
    let readable: Vec<bool> = req
        .topics
        .iter()
        .map(|t| broker.authorize(session, Operation::Read, ResourceType::Topic, &t.name))
        .collect();
    // Which partitions exist, decided before taking the group lock.
    let exists: Vec<Vec<bool>> = req
        .topics
        .iter()
        .map(|t| {
            let topic = broker.topic(&t.name).filter(|_| !is_internal(&t.name));
            t.partitions
                .iter()
                .map(|p| {
                    topic.as_ref().is_some_and(|topic| {
                        (0..topic.meta.partitions).contains(&p.partition_index)
                    })
                })
                .collect()
        })
        .collect();
    let anonymous = req.generation_id_or_member_epoch < 0 && req.member_id.is_empty();
    let (codes, durable) = match group_error {
        Some(code) => (
            req.topics
                .iter()
                .map(|t| vec![code; t.partitions.len()])
                .collect::<Vec<_>>(),
            Vec::new(),
        ),
        None => coordinator.with_group(
            broker,
            &req.group_id,
            |now| anonymous.then(|| Group::new_classic(&req.group_id, now)),
            |group, now| {
                let mut effects = Effects::default();
                let Some(group) = group else {
                    let codes = req
                        .topics
                        .iter()
                        .map(|t| vec![ErrorCode::UnknownMemberId; t.partitions.len()])
                        .collect();
                    return (codes, effects);
                };
                let allowed = match &mut group.kind {
                    GroupKind::Classic(g) => g.check_commit(
                        &req.member_id,
                        req.group_instance_id.as_deref(),
                        req.generation_id_or_member_epoch,
                        now,
                    ),
                    GroupKind::Consumer(g) => {
                        g.check_commit(&req.member_id, req.generation_id_or_member_epoch)
                    }
                };
                let mut codes = Vec::with_capacity(req.topics.len());
                for ((t, exists), readable) in req.topics.iter().zip(&exists).zip(&readable) {
                    let mut topic_codes = Vec::with_capacity(t.partitions.len());
                    for (p, exists) in t.partitions.iter().zip(exists) {
                        let code = if let Err(code) = allowed {
                            code
                        } else if !readable {
                            ErrorCode::TopicAuthorizationFailed
                        } else if !exists {
                            ErrorCode::UnknownTopicOrPartition
                        } else if p
                            .committed_metadata
                            .as_ref()
                            .is_some_and(|m| m.len() > max_metadata)
                        {
                            ErrorCode::OffsetMetadataTooLarge
                        } else {
                            let value = CommittedOffset {
                                offset: p.committed_offset,
                                leader_epoch: p.committed_leader_epoch,
                                metadata: p.committed_metadata.clone(),
                                commit_timestamp: now,
                            };
                            effects.records.push(Record::offset(
                                &group.id,
                                &t.name,
                                p.partition_index,
                                &value,
                            ));
                            group.offsets.commit(&t.name, p.partition_index, value);
                            ErrorCode::None
                        };
                        topic_codes.push(code);
                    }
                    codes.push(topic_codes);
                }
                (codes, effects)
            },
        ),
    };
    async move {
        let stored = groups::durable(durable).await;
        OffsetCommitResponse {
            topics: req
                .topics
                .into_iter()
                .zip(codes)
                .map(|(t, codes)| OffsetCommitResponseTopic {
                    name: t.name,
                    topic_id: t.topic_id,
                    partitions: t
                        .partitions
                        .into_iter()
                        .zip(codes)
                        .map(|(p, code)| OffsetCommitResponsePartition {
                            partition_index: p.partition_index,
                            error_code: if code == ErrorCode::None && !stored {
                                ErrorCode::KafkaStorageError.into()
                            } else {
                                code.into()
                            },
                            ..OffsetCommitResponsePartition::default()
                        })
                        .collect(),
                    ..OffsetCommitResponseTopic::default()
                })
                .collect(),
            ..OffsetCommitResponse::default()
        }
    }
}
