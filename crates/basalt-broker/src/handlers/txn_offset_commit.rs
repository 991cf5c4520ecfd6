//! TxnOffsetCommit (key 28), v0–5: offsets a transactional producer commits for a group as part
//! of its open transaction (`send_offsets_to_transaction`), sent to the group's coordinator.
//! It checks with the transaction coordinator (on this node or another) that the transaction
//! added the group, then stages the offsets with the group; the transaction's COMMIT marker on
//! the group's partition of `__consumer_offsets` makes them committed offsets, an ABORT drops
//! them (`GRP-4`). From v3 the request
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
use crate::groups::{OFFSETS_TOPIC, durable, is_internal, partition_for};
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
    } else if !broker.coordinates_group(&req.group_id) {
        Some(ErrorCode::NotCoordinator)
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
            stage(&broker, &req, offsets)
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

/// Verifies with the transaction coordinator (here or on another node) that the producer's open
/// transaction added this group, then stages the offsets with the group until the
/// transaction's marker reaches it (`GRP-4`), durably.
async fn stage(
    broker: &Arc<Broker>,
    req: &TxnOffsetCommitRequest,
    offsets: Vec<(String, i32, CommittedOffset)>,
) -> Result<(), ErrorCode> {
    let count = broker
        .coordinator()
        .offsets_topic(broker)
        .map_err(|_| ErrorCode::CoordinatorNotAvailable)?
        .meta
        .partitions;
    broker
        .txns()
        .verify(
            broker,
            &req.transactional_id,
            req.producer_id,
            req.producer_epoch,
            OFFSETS_TOPIC,
            partition_for(&req.group_id, count),
        )
        .await
        .map_err(|code| match code {
            // The coordinator could not be asked now: retriable.
            None => ErrorCode::CoordinatorLoadInProgress,
            Some(ErrorCode::InvalidProducerEpoch) => ErrorCode::ProducerFenced,
            Some(code) => code,
        })?;
    let tickets = broker.coordinator().stage_txn_offsets(
        broker,
        &req.group_id,
        req.producer_id,
        req.producer_epoch,
        offsets,
    );
    if durable(tickets).await {
        Ok(())
    } else {
        Err(ErrorCode::CoordinatorNotAvailable)
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
