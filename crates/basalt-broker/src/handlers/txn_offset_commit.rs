//! TxnOffsetCommit (key 28), v0–5: offsets a transactional producer commits for a group as part
//! of its open transaction (`send_offsets_to_transaction`). They are kept with the transaction
//! and applied to the group only when it commits; an abort drops them. From v3 the request
//! carries the consumer's member id and generation (KIP-447), checked like an OffsetCommit's
//! when given.

use std::sync::Arc;

use basalt_coordinator::{CommittedOffset, Effects, GroupKind};
use basalt_protocol::ErrorCode;
use basalt_protocol::messages::txn_offset_commit_request::TxnOffsetCommitRequest;
use basalt_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponse, TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};

use crate::acl::{Operation, ResourceType, Session};
use crate::groups::is_internal;
use crate::txns::{Channel, fenced_for};
use crate::{Broker, now_ms};

/// Highest version handled.
pub const MAX_VERSION: i16 = 5;

pub async fn handle(
    broker: Arc<Broker>,
    session: Session,
    req: TxnOffsetCommitRequest,
    version: i16,
    conn: u64,
) -> TxnOffsetCommitResponse {
    let max_metadata = broker.coordinator().config().offset_metadata_max_bytes;
    let now = now_ms();
    // Per partition: Ok(offset) to commit, or the error it answers.
    let mut per_partition: Vec<Vec<Result<CommittedOffset, ErrorCode>>> = Vec::new();
    // The whole request is refused without WRITE on the transactional id or READ on the group.
    let denied = if !broker.authorize(
        &session,
        Operation::Write,
        ResourceType::TransactionalId,
        &req.transactional_id,
    ) {
        Some(ErrorCode::TransactionalIdAuthorizationFailed)
    } else if !broker.authorize(
        &session,
        Operation::Read,
        ResourceType::Group,
        &req.group_id,
    ) {
        Some(ErrorCode::GroupAuthorizationFailed)
    } else {
        None
    };
    for t in &req.topics {
        let topic = broker.topic(&t.name).filter(|_| !is_internal(&t.name));
        let readable = broker.authorize(&session, Operation::Read, ResourceType::Topic, &t.name);
        per_partition.push(
            t.partitions
                .iter()
                .map(|p| {
                    if let Some(code) = denied {
                        Err(code)
                    } else if !readable {
                        Err(ErrorCode::TopicAuthorizationFailed)
                    } else if !topic.as_ref().is_some_and(|topic| {
                        (0..topic.meta.partitions).contains(&p.partition_index)
                    }) {
                        Err(ErrorCode::UnknownTopicOrPartition)
                    } else if p
                        .committed_metadata
                        .as_ref()
                        .is_some_and(|m| m.len() > max_metadata)
                    {
                        Err(ErrorCode::OffsetMetadataTooLarge)
                    } else {
                        Ok(CommittedOffset {
                            offset: p.committed_offset,
                            leader_epoch: p.committed_leader_epoch,
                            metadata: p.committed_metadata.clone(),
                            commit_timestamp: now,
                        })
                    }
                })
                .collect(),
        );
    }
    let admitted = broker.txns().admit(
        &req.transactional_id,
        Channel::Group,
        conn,
        Some((req.producer_id, req.producer_epoch)),
        true,
    );
    let request_code = if let Some(code) = denied {
        Some(code)
    } else if req.group_id.is_empty() {
        Some(ErrorCode::InvalidGroupId)
    } else if let Err(code) = admitted {
        Some(code)
    } else if req.member_id.is_empty() && req.generation_id < 0 {
        None
    } else {
        check_member(&broker, &req).err()
    };
    let request_code = match request_code {
        Some(code) => code,
        None => {
            let offsets: Vec<(String, i32, CommittedOffset)> = req
                .topics
                .iter()
                .zip(&per_partition)
                .flat_map(|(t, ps)| {
                    t.partitions.iter().zip(ps).filter_map(|(p, r)| {
                        r.as_ref()
                            .ok()
                            .map(|o| (t.name.clone(), p.partition_index, o.clone()))
                    })
                })
                .collect();
            broker
                .txns()
                .add_offsets(
                    &broker,
                    &req.transactional_id,
                    req.producer_id,
                    req.producer_epoch,
                    &req.group_id,
                    offsets,
                )
                .await
                .err()
                .map_or(ErrorCode::None, |c| fenced_for(c, version, 3))
        }
    };
    TxnOffsetCommitResponse {
        topics: req
            .topics
            .iter()
            .zip(per_partition)
            .map(|(t, ps)| TxnOffsetCommitResponseTopic {
                name: t.name.clone(),
                partitions: t
                    .partitions
                    .iter()
                    .zip(ps)
                    .map(|(p, r)| TxnOffsetCommitResponsePartition {
                        partition_index: p.partition_index,
                        error_code: match r {
                            Err(code) => code,
                            Ok(_) => request_code,
                        }
                        .into(),
                        ..TxnOffsetCommitResponsePartition::default()
                    })
                    .collect(),
                ..TxnOffsetCommitResponseTopic::default()
            })
            .collect(),
        ..TxnOffsetCommitResponse::default()
    }
}

/// Checks the member id and generation the request carries against the group.
fn check_member(broker: &Broker, req: &TxnOffsetCommitRequest) -> Result<(), ErrorCode> {
    let (result, _) = broker.coordinator().with_group(
        broker,
        &req.group_id,
        |_| None,
        |group, now| {
            let result = match group {
                None => Err(ErrorCode::UnknownMemberId),
                Some(g) => match &mut g.kind {
                    GroupKind::Classic(c) => c.check_commit(
                        &req.member_id,
                        req.group_instance_id.as_deref(),
                        req.generation_id,
                        now,
                    ),
                    GroupKind::Consumer(c) => c.check_commit(&req.member_id, req.generation_id),
                },
            };
            (result, Effects::default())
        },
    );
    result
}
