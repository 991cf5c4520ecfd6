//! OffsetForLeaderEpoch (key 23), v2–4: the end offset of a leader epoch, for clients checking
//! their position for log truncation after a leader change.
//!
//! A single node has had one leader since each partition was created, so every partition has
//! exactly one leader epoch, 0, covering the whole log. Answers follow Kafka's leader for that
//! history (`LeaderEpochFileCache.endOffsetFor`):
//! - requested epoch 0 (the current one): epoch 0 and the high watermark (the end of what
//!   consumers can have read, `PART-2`);
//! - requested epoch -1 (undefined) or above 0 (unknown to this leader): epoch -1, offset -1,
//!   which clients take as "nothing to validate against";
//! - a `current_leader_epoch` other than -1 (not given) and 0 is fenced like Kafka does: below →
//!   FENCED_LEADER_EPOCH, above → UNKNOWN_LEADER_EPOCH (the client refreshes its metadata).
//!
//! Metadata reports leader epochs as -1, so librdkafka and Java clients do not send this request
//! in practice; the answers above stay consistent with that (a client that never learnt an epoch
//! sends -1 and gets -1). Requests from a follower (`replica_id` ≥ 0) are answered the same way.

use basalt_protocol::ErrorCode;
use basalt_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderEpochRequest, OffsetForLeaderPartition,
};
use basalt_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderEpochResponse, OffsetForLeaderTopicResult,
};

use crate::Broker;
use crate::acl::{Operation, ResourceType, Session};
use crate::partition::Partition;

/// The only leader epoch of every partition on this node.
pub const LEADER_EPOCH: i32 = 0;

/// An epoch a request did not give.
const UNDEFINED_EPOCH: i32 = -1;

pub fn handle(
    broker: &Broker,
    session: &Session,
    req: OffsetForLeaderEpochRequest,
    _version: i16,
) -> OffsetForLeaderEpochResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let authorized =
                broker.authorize(session, Operation::Describe, ResourceType::Topic, &t.topic);
            let topic = broker.topic(&t.topic);
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let partition = topic.as_ref().and_then(|topic| {
                        usize::try_from(p.partition)
                            .ok()
                            .and_then(|i| topic.partitions.get(i))
                    });
                    let unusable = if !authorized {
                        Some(ErrorCode::TopicAuthorizationFailed)
                    } else if partition.is_none() {
                        Some(ErrorCode::UnknownTopicOrPartition)
                    } else if topic
                        .as_ref()
                        .is_some_and(|t| !t.is_led_by(p.partition, broker.config().node_id))
                    {
                        // CLU-2
                        Some(ErrorCode::NotLeaderOrFollower)
                    } else {
                        None
                    };
                    match partition.filter(|_| unusable.is_none()) {
                        None => EpochEndOffset {
                            error_code: unusable.unwrap_or_default().into(),
                            partition: p.partition,
                            leader_epoch: UNDEFINED_EPOCH,
                            end_offset: -1,
                            ..EpochEndOffset::default()
                        },
                        Some(partition) => end_offset(partition, &p),
                    }
                })
                .collect();
            OffsetForLeaderTopicResult {
                topic: t.topic,
                partitions,
                ..OffsetForLeaderTopicResult::default()
            }
        })
        .collect();
    OffsetForLeaderEpochResponse {
        topics,
        ..OffsetForLeaderEpochResponse::default()
    }
}

fn end_offset(partition: &Partition, p: &OffsetForLeaderPartition) -> EpochEndOffset {
    let mut out = EpochEndOffset {
        partition: p.partition,
        leader_epoch: UNDEFINED_EPOCH,
        end_offset: -1,
        ..EpochEndOffset::default()
    };
    if p.current_leader_epoch != UNDEFINED_EPOCH {
        if p.current_leader_epoch < LEADER_EPOCH {
            out.error_code = ErrorCode::FencedLeaderEpoch.into();
            return out;
        }
        if p.current_leader_epoch > LEADER_EPOCH {
            out.error_code = ErrorCode::UnknownLeaderEpoch.into();
            return out;
        }
    }
    if p.leader_epoch == LEADER_EPOCH {
        out.leader_epoch = LEADER_EPOCH;
        out.end_offset = partition.high_watermark();
    }
    out
}
