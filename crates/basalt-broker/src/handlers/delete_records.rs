//! DeleteRecords (key 21), v0–2: moves partitions' log start offsets forward.
//!
//! Offset -1 means the high watermark. An offset above the high watermark, or negative other
//! than -1, is OFFSET_OUT_OF_RANGE; one at or below the current log start changes nothing. The
//! new start is persisted and the segments wholly below it deleted before the answer
//! ([`basalt_storage::Log::delete_records`]); the answer's low watermark is the log start offset
//! afterwards (-1 on error). On a single node there is nothing to wait for, so `timeout_ms` is
//! not used.

use basalt_protocol::ErrorCode;
use basalt_protocol::messages::delete_records_request::DeleteRecordsRequest;
use basalt_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsResponse, DeleteRecordsTopicResult,
};

use crate::Broker;
use crate::acl::{Operation, ResourceType, Session};
use crate::errors::storage_error_code;
use crate::partition::Partition;

/// The offset standing for the high watermark.
const HIGH_WATERMARK: i64 = -1;

pub fn handle(
    broker: &Broker,
    session: &Session,
    req: DeleteRecordsRequest,
    _version: i16,
) -> DeleteRecordsResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let authorized =
                broker.authorize(session, Operation::Delete, ResourceType::Topic, &t.name);
            let topic = broker.topic(&t.name);
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let mut result = DeleteRecordsPartitionResult {
                        partition_index: p.partition_index,
                        low_watermark: -1,
                        ..DeleteRecordsPartitionResult::default()
                    };
                    let partition = topic.as_ref().and_then(|topic| {
                        usize::try_from(p.partition_index)
                            .ok()
                            .and_then(|i| topic.partitions.get(i))
                    });
                    // CLU-2
                    let not_led = partition.is_some()
                        && topic.as_ref().is_some_and(|t| {
                            !t.is_led_by(p.partition_index, broker.config().node_id)
                        });
                    match partition
                        .filter(|_| authorized && !not_led)
                        .map(|partition| delete(partition, p.offset))
                    {
                        _ if !authorized => {
                            result.error_code = ErrorCode::TopicAuthorizationFailed.into();
                        }
                        _ if not_led => result.error_code = ErrorCode::NotLeaderOrFollower.into(),
                        None => result.error_code = ErrorCode::UnknownTopicOrPartition.into(),
                        Some(Ok(low_watermark)) => result.low_watermark = low_watermark,
                        Some(Err(code)) => result.error_code = code.into(),
                    }
                    result
                })
                .collect();
            DeleteRecordsTopicResult {
                name: t.name,
                partitions,
                ..DeleteRecordsTopicResult::default()
            }
        })
        .collect();
    broker.notify_visible();
    DeleteRecordsResponse {
        topics,
        ..DeleteRecordsResponse::default()
    }
}

/// Deletes the records of `partition` below `offset`; the new log start offset.
fn delete(partition: &Partition, offset: i64) -> Result<i64, ErrorCode> {
    let hw = partition.high_watermark();
    let offset = if offset == HIGH_WATERMARK { hw } else { offset };
    if offset < 0 || offset > hw {
        return Err(ErrorCode::OffsetOutOfRange);
    }
    match partition.delete_records(offset) {
        Ok(low_watermark) => {
            tracing::info!(topic = %partition.topic, partition = partition.index, low_watermark, "deleted records");
            Ok(low_watermark)
        }
        Err(e) => {
            tracing::warn!(topic = %partition.topic, partition = partition.index, error = %e, "delete records failed");
            Err(storage_error_code(&e))
        }
    }
}
