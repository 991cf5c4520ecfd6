//! ListOffsets (key 2), v1–7: earliest (-2), latest (-1), max timestamp (-3), or the first
//! offset whose timestamp is at least a given time.
//!
//! A time lookup finds the first batch whose max timestamp reaches the time, then, for an
//! uncompressed batch, the first record in it that does; for a compressed batch it answers the
//! batch's first offset. A `current_leader_epoch` older than the partition's answers
//! FENCED_LEADER_EPOCH, a newer one UNKNOWN_LEADER_EPOCH.
//!
//! With `isolation_level` = READ_COMMITTED (v2+), everything is bounded by the last stable
//! offset instead of the high watermark: latest is the last stable offset, and time lookups
//! past it find nothing.

use basalt_protocol::ErrorCode;
use basalt_protocol::messages::list_offsets_request::ListOffsetsRequest;
use basalt_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsResponse, ListOffsetsTopicResponse,
};
use basalt_record::{BatchHeader, Compression};

use crate::Broker;
use crate::acl::{Operation, ResourceType, Session};
use crate::errors::storage_error_code;
use crate::partition::Partition;

/// Highest ListOffsets version handled.
pub const MAX_VERSION: i16 = 7;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;

pub fn handle(
    broker: &Broker,
    session: &Session,
    req: ListOffsetsRequest,
    version: i16,
) -> ListOffsetsResponse {
    let read_committed = version >= 2 && req.isolation_level == 1;
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let authorized =
                broker.authorize(session, Operation::Describe, ResourceType::Topic, &t.name);
            let topic = broker.topic(&t.name);
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let mut resp = ListOffsetsPartitionResponse {
                        partition_index: p.partition_index,
                        timestamp: -1,
                        offset: -1,
                        leader_epoch: -1,
                        ..ListOffsetsPartitionResponse::default()
                    };
                    let partition = topic.as_ref().and_then(|topic| {
                        usize::try_from(p.partition_index)
                            .ok()
                            .and_then(|i| topic.partitions.get(i))
                    });
                    match partition {
                        _ if !authorized => {
                            resp.error_code = ErrorCode::TopicAuthorizationFailed.into();
                        }
                        None => resp.error_code = ErrorCode::UnknownTopicOrPartition.into(),
                        // CLU-2
                        Some(_)
                            if topic.as_ref().is_some_and(|t| {
                                !t.is_led_by(p.partition_index, broker.config().node_id)
                            }) =>
                        {
                            resp.error_code = ErrorCode::NotLeaderOrFollower.into()
                        }
                        Some(partition) => match partition
                            .check_leader_epoch(p.current_leader_epoch)
                            .and_then(|()| lookup(partition, p.timestamp, read_committed))
                        {
                            Ok((timestamp, offset)) => {
                                resp.timestamp = timestamp;
                                resp.offset = offset;
                            }
                            Err(code) => resp.error_code = code.into(),
                        },
                    }
                    resp
                })
                .collect();
            ListOffsetsTopicResponse {
                name: t.name,
                partitions,
                ..ListOffsetsTopicResponse::default()
            }
        })
        .collect();
    ListOffsetsResponse {
        topics,
        ..ListOffsetsResponse::default()
    }
}

/// `(timestamp, offset)` for one partition.
fn lookup(
    partition: &Partition,
    timestamp: i64,
    read_committed: bool,
) -> Result<(i64, i64), ErrorCode> {
    let log = &partition.log;
    // The end of what this reader may see.
    let hw = if read_committed {
        partition.last_stable_offset()
    } else {
        partition.high_watermark()
    };
    match timestamp {
        LATEST => Ok((-1, hw)),
        EARLIEST => Ok((-1, log.log_start_offset())),
        MAX_TIMESTAMP => match log.max_timestamp().map_err(|e| storage_error_code(&e))? {
            Some(h) if h.base_offset < hw => Ok((h.max_timestamp, record_with_max(partition, &h))),
            _ => Ok((-1, -1)),
        },
        t if t < 0 => Err(ErrorCode::InvalidRequest),
        t => match log
            .find_by_timestamp(t)
            .map_err(|e| storage_error_code(&e))?
        {
            Some(h) if h.base_offset < hw => Ok(first_record_at(partition, &h, t)),
            _ => Ok((-1, -1)),
        },
    }
}

/// Records of an uncompressed batch, read back from the log.
fn records_of(partition: &Partition, h: &BatchHeader) -> Option<Vec<basalt_record::Record>> {
    if h.compression() != Compression::None {
        return None;
    }
    let read = partition.log.read(h.base_offset, 1, i64::MAX).ok()?;
    let batch = read.records.slice(..h.total_size().min(read.records.len()));
    basalt_record::decode_records(&batch).ok()
}

fn first_record_at(partition: &Partition, h: &BatchHeader, t: i64) -> (i64, i64) {
    let start = partition.log.log_start_offset();
    records_of(partition, h)
        .and_then(|recs| {
            recs.into_iter()
                .find(|r| r.timestamp >= t && r.offset >= start)
                .map(|r| (r.timestamp, r.offset))
        })
        .unwrap_or((h.max_timestamp, h.base_offset.max(start)))
}

fn record_with_max(partition: &Partition, h: &BatchHeader) -> i64 {
    records_of(partition, h)
        .and_then(|recs| {
            recs.into_iter()
                .find(|r| r.timestamp == h.max_timestamp)
                .map(|r| r.offset)
        })
        .unwrap_or(h.last_offset())
}
