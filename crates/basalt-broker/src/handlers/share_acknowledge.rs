//! ShareAcknowledge (key 79), v1: a share group member acknowledges records it acquired,
//! without fetching (KIP-932). The session epoch must be the session's next one, or -1 to close
//! the session after acknowledging (which releases the member's other records here); 0 is
//! INVALID_SHARE_SESSION_EPOCH, since acknowledging needs an open session. Each partition
//! answers its own error (INVALID_RECORD_STATE for records the member does not hold, `SHR-1`);
//! the answer comes once the new state is durable (`SHR-5`).
//!
//! Authorization: READ on the group and on each topic, as ShareFetch.

use std::collections::BTreeMap;

use basalt_protocol::messages::share_acknowledge_request::ShareAcknowledgeRequest;
use basalt_protocol::messages::share_acknowledge_response::{
    LeaderIdAndEpoch, PartitionData, ShareAcknowledgeResponse, ShareAcknowledgeTopicResponse,
};
use basalt_protocol::{ErrorCode, Uuid};

use super::share_fetch::{Batches, acknowledge_all, check_partition, share_member};
use crate::Broker;
use crate::acl::Session;
use crate::shares::{SessionStep, write_all};

/// Highest version handled.
pub const MAX_VERSION: i16 = 1;

fn top_error(code: ErrorCode, message: String) -> ShareAcknowledgeResponse {
    ShareAcknowledgeResponse {
        error_code: code.into(),
        error_message: Some(message),
        ..ShareAcknowledgeResponse::default()
    }
}

pub async fn handle(
    broker: &Broker,
    session: &Session,
    req: ShareAcknowledgeRequest,
) -> ShareAcknowledgeResponse {
    let (group, member) = match share_member(
        broker,
        session,
        (&req.group_id, &req.member_id),
        "share acknowledgement",
    ) {
        Ok(m) => m,
        Err((code, message)) => return top_error(code, message),
    };
    if req.share_session_epoch == 0 {
        return top_error(
            ErrorCode::InvalidShareSessionEpoch,
            "acknowledging needs an open share session".into(),
        );
    }
    let shares = broker.shares();
    let step = match shares.session_step(&group, &member, req.share_session_epoch, &[], &[]) {
        Ok((step, _)) => step,
        Err((code, message)) => return top_error(code, message),
    };
    let mut acks: BTreeMap<(Uuid, i32), Batches> = BTreeMap::new();
    for t in &req.topics {
        for p in &t.partitions {
            acks.entry((t.topic_id, p.partition_index))
                .or_default()
                .extend(
                    p.acknowledgement_batches
                        .iter()
                        .map(|b| (b.first_offset, b.last_offset, b.acknowledge_types.clone())),
                );
        }
    }
    let (mut results, persists) = acknowledge_all(broker, session, &group, &member, &acks);
    if let Err((code, e)) = write_all(broker, persists).await {
        tracing::warn!(group, error = %e, "cannot write share state");
        for r in results.values_mut().filter(|r| r.is_none()) {
            *r = Some((code, e.clone()));
        }
    }
    if step == SessionStep::Closing {
        shares.close_session(&group, &member);
    }
    let mut topics: BTreeMap<Uuid, Vec<PartitionData>> = BTreeMap::new();
    for ((topic, index), error) in results {
        let leader = match &error {
            Some((ErrorCode::NotLeaderOrFollower, _)) => {
                check_partition(broker, session, topic, index)
                    .err()
                    .and_then(|(_, _, l)| l)
            }
            _ => None,
        };
        let (leader_id, leader_epoch) = leader.unwrap_or((-1, -1));
        topics.entry(topic).or_default().push(PartitionData {
            partition_index: index,
            error_code: error.as_ref().map_or(0, |e| e.0.into()),
            error_message: error.map(|e| e.1),
            current_leader: LeaderIdAndEpoch {
                leader_id,
                leader_epoch,
                ..LeaderIdAndEpoch::default()
            },
            ..PartitionData::default()
        });
    }
    ShareAcknowledgeResponse {
        responses: topics
            .into_iter()
            .map(|(topic_id, partitions)| ShareAcknowledgeTopicResponse {
                topic_id,
                partitions,
                ..ShareAcknowledgeTopicResponse::default()
            })
            .collect(),
        ..ShareAcknowledgeResponse::default()
    }
}
