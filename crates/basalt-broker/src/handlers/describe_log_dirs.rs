//! DescribeLogDirs (key 35), v1–4: the node's one log dir (its data directory) and the size of
//! each partition in it.
//!
//! Topics null means every partition; otherwise only the requested partitions that exist are
//! listed (unknown ones are left out, as in Kafka). With a single replica there is no lag and no
//! future replica (`offset_lag` 0, `is_future_key` false). From v4 the file system's total and
//! usable bytes are reported (from `statvfs`; -1 if that fails). v5 (log dir cordoning, Kafka 4.2)
//! is not advertised, matching Kafka 4.1.

use basalt_protocol::messages::describe_log_dirs_request::DescribeLogDirsRequest;
use basalt_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResponse, DescribeLogDirsResult, DescribeLogDirsTopic,
};

use crate::acl::{Operation, Session};
use crate::{Broker, Topic};

/// Highest DescribeLogDirs version handled.
pub const MAX_VERSION: i16 = 4;

pub fn handle(
    broker: &Broker,
    session: &Session,
    req: DescribeLogDirsRequest,
    _version: i16,
) -> DescribeLogDirsResponse {
    if !broker.authorize_cluster(session, Operation::Describe) {
        return DescribeLogDirsResponse {
            error_code: basalt_protocol::ErrorCode::ClusterAuthorizationFailed.into(),
            ..DescribeLogDirsResponse::default()
        };
    }
    let topics: Vec<DescribeLogDirsTopic> = match req.topics {
        None => broker
            .topics()
            .iter()
            .map(|t| entry(t, 0..t.meta.partitions))
            .collect(),
        Some(requested) => requested
            .into_iter()
            .filter_map(|r| {
                let topic = broker.topic(&r.topic)?;
                let wanted = r
                    .partitions
                    .into_iter()
                    .filter(|p| (0..topic.meta.partitions).contains(p));
                let e = entry(&topic, wanted);
                (!e.partitions.is_empty()).then_some(e)
            })
            .collect(),
    };
    let dir = broker.data_dir();
    let log_dir = std::fs::canonicalize(dir)
        .unwrap_or_else(|_| dir.to_path_buf())
        .display()
        .to_string();
    let (total_bytes, usable_bytes) = match rustix::fs::statvfs(dir) {
        Ok(s) => (
            to_i64(s.f_blocks.saturating_mul(s.f_frsize)),
            to_i64(s.f_bavail.saturating_mul(s.f_frsize)),
        ),
        Err(e) => {
            tracing::debug!(error = %e, "statvfs of the data directory failed");
            (-1, -1)
        }
    };
    DescribeLogDirsResponse {
        results: vec![DescribeLogDirsResult {
            error_code: 0,
            log_dir,
            topics,
            total_bytes,
            usable_bytes,
            ..DescribeLogDirsResult::default()
        }],
        ..DescribeLogDirsResponse::default()
    }
}

fn entry(topic: &Topic, partitions: impl Iterator<Item = i32>) -> DescribeLogDirsTopic {
    DescribeLogDirsTopic {
        name: topic.meta.name.clone(),
        partitions: partitions
            .filter_map(|p| {
                let partition = topic.partitions.get(usize::try_from(p).ok()?)?;
                Some(DescribeLogDirsPartition {
                    partition_index: p,
                    partition_size: to_i64(partition.log.size_bytes()),
                    offset_lag: 0,
                    is_future_key: false,
                    ..DescribeLogDirsPartition::default()
                })
            })
            .collect(),
        ..DescribeLogDirsTopic::default()
    }
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
