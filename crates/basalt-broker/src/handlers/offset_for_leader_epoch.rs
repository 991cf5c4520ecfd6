//! OffsetForLeaderEpoch (key 23), v2–4: the end offset of a leader epoch, for clients checking
//! their position for log truncation after a leader change.
//!
//! Answers come from the partition's leader-epoch checkpoint (`Log::leader_epochs`), with Kafka's
//! leader rules (`LeaderEpochFileCache.endOffsetFor`):
//! - a `current_leader_epoch` other than -1 (not given) and the partition's current epoch is
//!   fenced: below → FENCED_LEADER_EPOCH, above → UNKNOWN_LEADER_EPOCH (the client refreshes its
//!   metadata);
//! - the current epoch: that epoch and the high watermark (the end of what consumers can have
//!   read, `PART-2`);
//! - an older epoch: the largest known epoch not above it and where the next one starts (capped
//!   at the high watermark); one older than every kept epoch: itself and the first kept start;
//! - -1 (undefined) or above the current epoch: epoch -1, offset -1, which clients take as
//!   "nothing to validate against".
//!
//! Requests from a follower (`replica_id` ≥ 0) are answered the same way.

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
    let current = partition.leader_epoch();
    if p.current_leader_epoch != UNDEFINED_EPOCH {
        if p.current_leader_epoch < current {
            out.error_code = ErrorCode::FencedLeaderEpoch.into();
            return out;
        }
        if p.current_leader_epoch > current {
            out.error_code = ErrorCode::UnknownLeaderEpoch.into();
            return out;
        }
    }
    let hw = partition.high_watermark();
    let mut epochs = partition.log.leader_epochs();
    // A log that holds no batch of the current epoch yet (or only unstamped batches from before
    // epochs were kept) is answered as if the epoch started at its end, as a new leader records.
    if epochs.latest_epoch().is_none_or(|latest| latest < current) {
        epochs.assign(current, partition.log.log_end_offset());
    }
    let found = epochs.end_offset_for(p.leader_epoch, hw);
    out.leader_epoch = found.epoch;
    out.end_offset = found.end_offset.min(hw);
    out
}
