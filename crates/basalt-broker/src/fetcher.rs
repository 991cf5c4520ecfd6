//! Follower fetching: one task per leader node this node follows partitions of, sending Kafka
//! Fetch requests with this node's replica id over the leader's inter-broker listener
//! (`peer.rs`) and handing
//! each partition's answer to `Partition::on_fetched` (`replication.rs`).
//!
//! The set of partitions per leader comes from `reconcile` ([`Fetchers::update`]); a task with
//! no partitions left ends. A failed connection or request is retried after a short backoff;
//! an answer is applied only to the fetch it answers (`REPL-3`).
//!
//! # Invariants
//! - `FET-1`: one outstanding fetch per leader connection; each partition's answer is applied
//!   with the `FollowerFetch` it was sent with, so a partition whose role changed meanwhile
//!   ignores it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use basalt_cluster::metadata::{MetadataQuorum, NodeId};
use basalt_cluster::replication::{DivergingEpoch, FollowerFetch};
use basalt_protocol::messages::fetch_request::{FetchPartition, FetchRequest, FetchTopic};
use basalt_protocol::{ApiKey, ErrorCode, RequestBody, ResponseBody};
use parking_lot::Mutex;
use tokio::sync::{Notify, watch};

use crate::now_ms;
use crate::partition::Partition;
use crate::peer::{PeerConnection, PeerSecurity, node_address};
use crate::replication::Fetched;

/// The Fetch version followers send (topic names, diverging epochs).
const FETCH_VERSION: i16 = 12;
/// How long a follower fetch may wait at the leader for new data.
const MAX_WAIT_MS: i32 = 500;
/// Bytes per partition per fetch.
const PARTITION_MAX_BYTES: i32 = 1 << 20;
/// Bytes per fetch.
const MAX_BYTES: i32 = 16 << 20;
/// Wait before reconnecting after a failure.
const BACKOFF: Duration = Duration::from_millis(200);
/// Longest a fetch may take before the connection is dropped.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

type PartitionSet = Arc<Mutex<Vec<Arc<Partition>>>>;

#[derive(Debug)]
struct Fetcher {
    partitions: PartitionSet,
    wake: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

/// This node's fetch tasks, by leader.
#[derive(Debug, Default)]
pub struct Fetchers {
    by_leader: Mutex<BTreeMap<NodeId, Fetcher>>,
}

impl Fetchers {
    /// Makes the tasks match `follow` (leader → the partitions this node follows there):
    /// starts tasks for new leaders, changes the partition sets of running ones, and stops
    /// the tasks of leaders no longer followed.
    pub fn update(
        &self,
        quorum: &Arc<MetadataQuorum>,
        security: &PeerSecurity,
        visible: &Arc<watch::Sender<u64>>,
        mut follow: BTreeMap<NodeId, Vec<Arc<Partition>>>,
    ) {
        let mut by_leader = self.by_leader.lock();
        by_leader.retain(|leader, fetcher| {
            let keep = follow.contains_key(leader) && !fetcher.task.is_finished();
            if !keep {
                fetcher.task.abort();
            }
            keep
        });
        for (leader, partitions) in std::mem::take(&mut follow) {
            if let Some(fetcher) = by_leader.get(&leader) {
                *fetcher.partitions.lock() = partitions;
                fetcher.wake.notify_one();
                continue;
            }
            let set: PartitionSet = Arc::new(Mutex::new(partitions));
            let wake = Arc::new(Notify::new());
            let task = tokio::spawn(run(
                Arc::clone(quorum),
                security.clone(),
                leader,
                Arc::clone(&set),
                Arc::clone(&wake),
                Arc::clone(visible),
            ));
            by_leader.insert(
                leader,
                Fetcher {
                    partitions: set,
                    wake,
                    task,
                },
            );
        }
    }

    /// Stops every task.
    pub fn stop(&self) {
        for (_, f) in std::mem::take(&mut *self.by_leader.lock()) {
            f.task.abort();
        }
    }
}

impl Drop for Fetchers {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn run(
    quorum: Arc<MetadataQuorum>,
    security: PeerSecurity,
    leader: NodeId,
    partitions: PartitionSet,
    wake: Arc<Notify>,
    visible: Arc<watch::Sender<u64>>,
) {
    let me = quorum.node_id();
    let mut conn: Option<PeerConnection> = None;
    let mut warned = false;
    loop {
        let wanted: Vec<(Arc<Partition>, FollowerFetch)> = partitions
            .lock()
            .iter()
            .filter_map(|p| match p.replica_fetch_request() {
                Some((l, fetch)) if l == leader => Some((Arc::clone(p), fetch)),
                _ => None,
            })
            .collect();
        if wanted.is_empty() {
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            continue;
        }
        if conn.as_ref().is_some_and(PeerConnection::expired) {
            conn = None;
        }
        if conn.is_none() {
            let Some(to) = node_address(&quorum.image(), me, leader, &security) else {
                if !warned {
                    tracing::warn!(leader, listener = ?security.listener, "the leader has no listener to fetch from");
                    warned = true;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            };
            match PeerConnection::connect(&to, &security, "basalt-replica-fetcher", REQUEST_TIMEOUT)
                .await
            {
                Ok(c) => {
                    warned = false;
                    conn = Some(c);
                }
                Err(e) => {
                    if !warned {
                        tracing::warn!(leader, addr = %to.addr, error = %e, "cannot connect to the leader");
                        warned = true;
                    }
                    tokio::time::sleep(BACKOFF).await;
                    continue;
                }
            }
        }
        let request = build_request(me, &wanted);
        let c = conn.as_mut().expect("connected above");
        let answer = tokio::time::timeout(
            REQUEST_TIMEOUT + Duration::from_millis(MAX_WAIT_MS as u64),
            c.request(ApiKey::Fetch, FETCH_VERSION, &RequestBody::Fetch(request)),
        )
        .await;
        let response = match answer {
            Ok(Ok(ResponseBody::Fetch(r))) => r,
            Ok(Ok(_)) => {
                tracing::debug!(leader, "the leader answered a fetch with another API");
                conn = None;
                tokio::time::sleep(BACKOFF).await;
                continue;
            }
            Ok(Err(e)) => {
                tracing::debug!(leader, error = %e, "follower fetch failed");
                conn = None;
                tokio::time::sleep(BACKOFF).await;
                continue;
            }
            Err(_) => {
                tracing::debug!(leader, "follower fetch timed out");
                conn = None;
                continue;
            }
        };
        let now = now_ms();
        let mut waiting_for_metadata = false;
        for topic in response.responses {
            for pd in topic.partitions {
                let Some((partition, fetch)) = wanted
                    .iter()
                    .find(|(p, _)| p.topic == topic.topic && p.index == pd.partition_index)
                else {
                    continue;
                };
                let error =
                    ErrorCode::try_from(pd.error_code).unwrap_or(ErrorCode::UnknownServerError);
                let records = pd.records.as_ref().and_then(|r| r.as_bytes());
                let fetched = Fetched {
                    error,
                    high_watermark: pd.high_watermark,
                    log_start_offset: pd.log_start_offset,
                    diverging: (pd.diverging_epoch.epoch >= 0
                        && pd.diverging_epoch.end_offset >= 0)
                        .then_some(DivergingEpoch {
                            epoch: pd.diverging_epoch.epoch,
                            end_offset: pd.diverging_epoch.end_offset,
                        }),
                    records: records.map_or(&[][..], |b| &b[..]),
                };
                if !matches!(error, ErrorCode::None | ErrorCode::OffsetOutOfRange) {
                    waiting_for_metadata = true;
                    tracing::debug!(topic = %partition.topic, partition = partition.index, leader, %error, "follower fetch refused");
                }
                match partition.on_fetched(fetch, fetched, now) {
                    Ok(_) => {}
                    Err(e) => {
                        tracing::error!(topic = %partition.topic, partition = partition.index, error = %e, "cannot apply fetched records");
                        waiting_for_metadata = true;
                    }
                }
            }
        }
        // Waiting acks=all produces are on the leader; here only local readers of the HW.
        visible.send_modify(|v| *v = v.wrapping_add(1));
        if waiting_for_metadata {
            // The leader disagrees about the epoch: give the metadata a moment to arrive.
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(BACKOFF) => {}
            }
        }
    }
}

fn build_request(me: NodeId, wanted: &[(Arc<Partition>, FollowerFetch)]) -> FetchRequest {
    let mut topics: Vec<FetchTopic> = Vec::new();
    for (p, fetch) in wanted {
        let partition = FetchPartition {
            partition: p.index,
            current_leader_epoch: fetch.current_leader_epoch,
            fetch_offset: fetch.fetch_offset,
            last_fetched_epoch: fetch.last_fetched_epoch.unwrap_or(-1),
            log_start_offset: p.log.log_start_offset(),
            partition_max_bytes: PARTITION_MAX_BYTES,
            ..FetchPartition::default()
        };
        match topics.iter_mut().find(|t| t.topic == p.topic) {
            Some(t) => t.partitions.push(partition),
            None => topics.push(FetchTopic {
                topic: p.topic.clone(),
                partitions: vec![partition],
                ..FetchTopic::default()
            }),
        }
    }
    FetchRequest {
        replica_id: me,
        max_wait_ms: MAX_WAIT_MS,
        min_bytes: 1,
        max_bytes: MAX_BYTES,
        isolation_level: 0,
        session_id: 0,
        session_epoch: -1,
        topics,
        ..FetchRequest::default()
    }
}
