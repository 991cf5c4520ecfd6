//! Fetch (key 1), v4–12: batch-aligned bytes straight from the logs, with long polling.
//!
//! The batches are not read here: each partition's answer is a region of its segment file
//! ([`Records::File`]), which the connection writer sends with `sendfile` on plaintext listeners
//! and through one reused buffer on TLS.
//!
//! Each partition returns whole batches from the one containing the fetch offset, up to its
//! partition budget and the request's overall budget (the first non-empty partition always
//! returns at least one whole batch). Only offsets below the high watermark are served. If less
//! than `min_bytes` is ready, the request waits up to `max_wait_ms` for new data. Fetch sessions
//! are answered sessionless (session id 0), which every client handles by sending full fetches.
//! Authorization: READ on each topic (TOPIC_AUTHORIZATION_FAILED). A `current_leader_epoch`
//! older than the partition's answers FENCED_LEADER_EPOCH, a newer one UNKNOWN_LEADER_EPOCH.
//! Capped at v12 until fetches by topic id (v13+) are handled.
//!
//! A fetch with a replica id (a follower of this node, `fetcher.rs` on the other side) is
//! answered by the partition's leader state (`replication.rs`): records up to the log end, not
//! the high watermark, a diverging epoch when the follower's log disagrees, and the HW; the
//! follower's progress moves the HW and may propose it for the ISR. It needs CLUSTER_ACTION.

use std::time::Duration;

use basalt_cluster::replication::{FetchAnswer, FollowerFetch};
use basalt_protocol::messages::fetch_request::FetchRequest;
use basalt_protocol::messages::fetch_response::{
    AbortedTransaction, EpochEndOffset, FetchResponse, FetchableTopicResponse, PartitionData,
};
use basalt_protocol::{ErrorCode, FileRegion, Records};
use basalt_storage::StorageError;

use crate::acl::{Operation, ResourceType, Session};
use crate::errors::storage_error_code;
use crate::{Broker, now_ms};

/// Highest Fetch version handled.
pub const MAX_VERSION: i16 = 12;

/// Longest a fetch may wait, whatever it asks for.
const MAX_WAIT_MS_CAP: i32 = 30_000;

pub async fn handle(
    broker: &Broker,
    session: &Session,
    req: FetchRequest,
    _version: i16,
) -> FetchResponse {
    if req.replica_id >= 0 {
        return handle_replica(broker, session, req).await;
    }
    let readable: Vec<bool> = req
        .topics
        .iter()
        .map(|t| broker.authorize(session, Operation::Read, ResourceType::Topic, &t.topic))
        .collect();
    let deadline = tokio::time::Instant::now()
        + Duration::from_millis(req.max_wait_ms.clamp(0, MAX_WAIT_MS_CAP) as u64);
    let mut visible = broker.watch_visible();
    loop {
        visible.borrow_and_update();
        let (response, bytes, errors) = read_once(broker, &req, &readable);
        let satisfied = bytes >= i64::from(req.min_bytes.max(1)) || errors;
        if satisfied || tokio::time::Instant::now() >= deadline {
            return response;
        }
        tokio::select! {
            changed = visible.changed() => if changed.is_err() { return response },
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

/// A partition's answer before anything is known: no offsets, no records.
fn unanswered(partition_index: i32) -> PartitionData {
    PartitionData {
        partition_index,
        high_watermark: -1,
        last_stable_offset: -1,
        log_start_offset: -1,
        preferred_read_replica: -1,
        records: Some(Records::default()),
        aborted_transactions: None,
        ..PartitionData::default()
    }
}

/// A follower's fetch: answers at once when there are records, a divergence or an error, or
/// when the fetch moved the HW; otherwise waits for new data like a consumer fetch.
async fn handle_replica(broker: &Broker, session: &Session, req: FetchRequest) -> FetchResponse {
    let allowed =
        broker.cluster().is_some() && broker.authorize_cluster(session, Operation::ClusterAction);
    let deadline = tokio::time::Instant::now()
        + Duration::from_millis(req.max_wait_ms.clamp(0, MAX_WAIT_MS_CAP) as u64);
    let mut visible = broker.watch_visible();
    loop {
        visible.borrow_and_update();
        let (response, bytes, urgent) = read_replica_once(broker, &req, allowed);
        if bytes >= i64::from(req.min_bytes.max(1))
            || urgent
            || tokio::time::Instant::now() >= deadline
        {
            return response;
        }
        tokio::select! {
            changed = visible.changed() => if changed.is_err() { return response },
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

/// One pass of a follower fetch: the response, bytes returned, and whether it must be answered
/// now (an error, a divergence, or a moved HW).
fn read_replica_once(
    broker: &Broker,
    req: &FetchRequest,
    allowed: bool,
) -> (FetchResponse, i64, bool) {
    let now = now_ms();
    let mut budget = if req.max_bytes <= 0 {
        i64::from(i32::MAX)
    } else {
        i64::from(req.max_bytes)
    };
    let mut total = 0i64;
    let mut urgent = false;
    let mut moved = false;
    let mut responses = Vec::with_capacity(req.topics.len());
    for t in &req.topics {
        let topic = broker.topic(&t.topic);
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for fp in &t.partitions {
            let mut pd = PartitionData {
                diverging_epoch: EpochEndOffset {
                    epoch: -1,
                    end_offset: -1,
                    ..EpochEndOffset::default()
                },
                ..unanswered(fp.partition)
            };
            let partition = topic.as_ref().and_then(|topic| {
                usize::try_from(fp.partition)
                    .ok()
                    .and_then(|i| topic.partitions.get(i))
            });
            let Some(partition) = partition.filter(|_| allowed) else {
                pd.error_code = if allowed {
                    ErrorCode::UnknownTopicOrPartition
                } else {
                    ErrorCode::ClusterAuthorizationFailed
                }
                .into();
                urgent = true;
                partitions.push(pd);
                continue;
            };
            let fetch = FollowerFetch {
                replica_id: req.replica_id,
                current_leader_epoch: fp.current_leader_epoch,
                fetch_offset: fp.fetch_offset,
                last_fetched_epoch: (fp.last_fetched_epoch >= 0).then_some(fp.last_fetched_epoch),
            };
            let outcome = partition.on_replica_fetch(&fetch, now);
            if let Some(proposal) = outcome.proposal {
                broker.propose_isr(&t.topic, partition.index, proposal);
            }
            moved |= outcome.hw_advanced;
            pd.high_watermark = outcome.high_watermark;
            pd.last_stable_offset = partition.last_stable_offset();
            pd.log_start_offset = partition.log.log_start_offset();
            pd.current_leader.leader_epoch = partition.leader_epoch();
            match outcome.answer {
                FetchAnswer::Records {
                    from_offset,
                    to_offset,
                } => {
                    let max_bytes = i64::from(fp.partition_max_bytes.max(0)).min(budget).max(1);
                    if from_offset < to_offset && budget > 0 {
                        match partition.log.read_file(
                            from_offset,
                            max_bytes as usize,
                            to_offset,
                            total == 0,
                        ) {
                            Ok(read) => {
                                if let Some((file, position, len)) = read.region {
                                    let records = Records::File(FileRegion {
                                        file,
                                        position,
                                        len,
                                    });
                                    let n = records.len() as i64;
                                    total += n;
                                    budget -= n;
                                    pd.records = Some(records);
                                }
                            }
                            Err(e) => {
                                pd.error_code = storage_error_code(&e).into();
                                urgent = true;
                            }
                        }
                    }
                }
                FetchAnswer::Diverging(d) => {
                    pd.diverging_epoch.epoch = d.epoch;
                    pd.diverging_epoch.end_offset = d.end_offset;
                    urgent = true;
                }
                FetchAnswer::OffsetOutOfRange { .. } => {
                    pd.error_code = ErrorCode::OffsetOutOfRange.into();
                    urgent = true;
                }
                FetchAnswer::FencedLeaderEpoch => {
                    pd.error_code = ErrorCode::FencedLeaderEpoch.into();
                    urgent = true;
                }
                FetchAnswer::UnknownLeaderEpoch => {
                    pd.error_code = ErrorCode::UnknownLeaderEpoch.into();
                    urgent = true;
                }
                FetchAnswer::NotFollower => {
                    pd.error_code = ErrorCode::NotLeaderOrFollower.into();
                    urgent = true;
                }
            }
            partitions.push(pd);
        }
        responses.push(FetchableTopicResponse {
            topic: t.topic.clone(),
            partitions,
            ..FetchableTopicResponse::default()
        });
    }
    if moved {
        broker.notify_visible();
    }
    let response = FetchResponse {
        responses,
        session_id: 0,
        ..FetchResponse::default()
    };
    (response, total, urgent || moved)
}

/// One pass over the requested partitions: the response, bytes returned, and whether any
/// partition had an error (which answers at once).
fn read_once(broker: &Broker, req: &FetchRequest, readable: &[bool]) -> (FetchResponse, i64, bool) {
    let mut budget = if req.max_bytes <= 0 {
        i64::from(i32::MAX)
    } else {
        i64::from(req.max_bytes)
    };
    let mut total = 0i64;
    let mut errors = false;
    let read_committed = req.isolation_level == 1;
    let mut responses = Vec::with_capacity(req.topics.len());
    for (t, readable) in req.topics.iter().zip(readable) {
        let topic = broker.topic(&t.topic);
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for fp in &t.partitions {
            let mut pd = unanswered(fp.partition);
            let partition = topic.as_ref().and_then(|topic| {
                usize::try_from(fp.partition)
                    .ok()
                    .and_then(|i| topic.partitions.get(i))
            });
            let fenced =
                partition.and_then(|p| p.check_leader_epoch(fp.current_leader_epoch).err());
            // CLU-2
            let not_led = topic
                .as_ref()
                .is_some_and(|t| !t.is_led_by(fp.partition, broker.config().node_id));
            match partition {
                _ if !readable => {
                    pd.error_code = ErrorCode::TopicAuthorizationFailed.into();
                    errors = true;
                }
                None => {
                    pd.error_code = ErrorCode::UnknownTopicOrPartition.into();
                    errors = true;
                }
                Some(partition) if not_led => {
                    pd.error_code = ErrorCode::NotLeaderOrFollower.into();
                    pd.current_leader.leader_epoch = partition.leader_epoch();
                    // v12+: where the partition went (node endpoints need v16).
                    if let Some(&leader) = topic.as_ref().and_then(|t| {
                        usize::try_from(fp.partition)
                            .ok()
                            .and_then(|i| t.leaders.get(i))
                    }) {
                        pd.current_leader.leader_id = leader;
                    }
                    errors = true;
                }
                Some(partition) if fenced.is_some() => {
                    pd.error_code = fenced.map_or(0, i16::from);
                    pd.current_leader.leader_epoch = partition.leader_epoch();
                    pd.current_leader.leader_id = broker.config().node_id;
                    errors = true;
                }
                Some(partition) => {
                    let hw = partition.high_watermark();
                    let lso = partition.last_stable_offset();
                    pd.high_watermark = hw;
                    pd.last_stable_offset = lso;
                    let upper = if read_committed { lso } else { hw };
                    pd.log_start_offset = partition.log.log_start_offset();
                    let partition_budget = i64::from(fp.partition_max_bytes.max(0)).min(budget);
                    // The first non-empty partition returns at least one batch (max(.., 1)).
                    let max_bytes = if total == 0 {
                        partition_budget.max(1)
                    } else {
                        partition_budget
                    };
                    if max_bytes > 0 || total == 0 {
                        // Only the first non-empty partition may exceed the budget (with its
                        // first batch); later ones return what fits, or nothing.
                        let read = partition.log.read_file(
                            fp.fetch_offset,
                            max_bytes as usize,
                            upper,
                            total == 0,
                        );
                        match read {
                            Ok(read) => {
                                let records = match read.region {
                                    Some((file, position, len)) => Records::File(FileRegion {
                                        file,
                                        position,
                                        len,
                                    }),
                                    None => Records::default(),
                                };
                                let n = records.len() as i64;
                                total += n;
                                budget -= n;
                                if read_committed {
                                    pd.aborted_transactions = Some(
                                        partition
                                            .aborted_txns(fp.fetch_offset, read.next_offset)
                                            .into_iter()
                                            .map(|t| AbortedTransaction {
                                                producer_id: t.producer_id,
                                                first_offset: t.first_offset,
                                                ..AbortedTransaction::default()
                                            })
                                            .collect(),
                                    );
                                }
                                pd.records = Some(records);
                            }
                            Err(e) => {
                                // Past the visible end but within the log: nothing visible yet.
                                let not_yet_visible = matches!(e, StorageError::OffsetOutOfRange { offset, .. } if offset > upper && offset <= partition.log.log_end_offset());
                                if !not_yet_visible {
                                    pd.error_code = storage_error_code(&e).into();
                                    errors = true;
                                }
                            }
                        }
                    }
                }
            }
            partitions.push(pd);
        }
        responses.push(FetchableTopicResponse {
            topic: t.topic.clone(),
            partitions,
            ..FetchableTopicResponse::default()
        });
    }
    let response = FetchResponse {
        responses,
        session_id: 0,
        ..FetchResponse::default()
    };
    (response, total, errors)
}
