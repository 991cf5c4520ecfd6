//! [`MetadataQuorum`]: one node's handle on the metadata quorum. It starts the Raft node
//! (openraft) on the disk log ([`super::store`]), the state machine
//! ([`super::state_machine`]) and the TCP transport ([`super::rpc`]); it proposes commands,
//! forwarding them to the leader, and hands out the latest applied image.
//!
//! The voters are fixed at start (Kafka's `controller.quorum.voters`, `1@host:port,...`); a
//! node started without voters is a quorum of one, itself. A node started with voters that do
//! not include it is an observer: it asks them to add it as a learner, then holds the whole
//! log and image and proposes through the leader, but never votes or leads.
//!
//! # Invariants
//! - `QRM-1`: a node whose data directory holds no Raft state initializes the cluster with
//!   the configured voters; every node given the same voters proposes the same membership, so
//!   any of them may do it. A node with state never initializes again.
//! - `QRM-2`: a proposal is forwarded at most once, to the leader this node knows; a node that
//!   is not the leader when a forwarded proposal arrives answers `NotLeader` rather than
//!   forwarding it on, so proposals never loop.
//! - `QRM-3`: when the leader changes after a proposal was appended but before it committed,
//!   the proposer gets [`ProposeError::OutcomeUnknown`], never a silent retry: the command may
//!   still commit.
//! - `QRM-4`: an observer never initializes the cluster and never enters the voters; only the
//!   leader adds it, as a learner, and adding a node already in the membership changes nothing.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use openraft::errors::{ClientWriteError, InitializeError, RaftError};
use openraft::{BasicNode, Config, SnapshotPolicy};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::image::{Command, MetadataImage, NodeId, Outcome, Rejection};
use super::rpc::{self, Connection, Network, Request, Response};
use super::state_machine::StateMachine;
use super::store::{LogStore, StoreError, lock_dir};
use super::types::Raft;

/// Longest wait at start for the local log to be applied up to the saved commit point.
const RESTORE_WAIT: Duration = Duration::from_secs(30);

/// A voter of the quorum: its node id and the address of its quorum listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voter {
    /// The node id.
    pub id: NodeId,
    /// `host:port` of the node's quorum listener.
    pub addr: String,
}

/// Parses Kafka's `controller.quorum.voters` form: `1@host:port,2@host:port,...`.
pub fn parse_voters(s: &str) -> Result<Vec<Voter>, QuorumError> {
    let mut voters: Vec<Voter> = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = |why: &str| QuorumError::InvalidVoters(format!("{part:?}: {why}"));
        let (id, addr) = part
            .split_once('@')
            .ok_or_else(|| bad("expected id@host:port"))?;
        let id: NodeId = id.parse().map_err(|_| bad("the id is not a number"))?;
        if id < 0 {
            return Err(bad("the id is negative"));
        }
        let (host, port) = addr
            .rsplit_once(':')
            .ok_or_else(|| bad("expected host:port"))?;
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err(bad("expected host:port"));
        }
        if voters.iter().any(|v| v.id == id) {
            return Err(bad("the id is repeated"));
        }
        voters.push(Voter {
            id,
            addr: addr.to_owned(),
        });
    }
    Ok(voters)
}

/// Timing and compaction settings of the quorum.
#[derive(Debug, Clone)]
pub struct QuorumSettings {
    /// How often the leader sends heartbeats.
    pub heartbeat_interval_ms: u64,
    /// A follower that hears nothing for a random time in `min..max` starts an election.
    pub election_timeout_min_ms: u64,
    /// See `election_timeout_min_ms`.
    pub election_timeout_max_ms: u64,
    /// Build a snapshot once this many entries were applied since the last one.
    pub snapshot_after_entries: u64,
    /// Entries kept in the log behind a snapshot, for followers that are only a little behind.
    pub entries_kept_after_snapshot: u64,
}

impl Default for QuorumSettings {
    fn default() -> Self {
        QuorumSettings {
            heartbeat_interval_ms: 150,
            election_timeout_min_ms: 1_000,
            election_timeout_max_ms: 2_000,
            snapshot_after_entries: 10_000,
            entries_kept_after_snapshot: 1_000,
        }
    }
}

/// How to start one node of the quorum.
#[derive(Debug, Clone)]
pub struct QuorumOptions {
    /// This node's id.
    pub node_id: NodeId,
    /// The voters, this node among them; empty for a quorum of this node alone.
    pub voters: Vec<Voter>,
    /// Where the log, vote and snapshot live (one directory per node).
    pub data_dir: PathBuf,
    /// Timings and compaction.
    pub settings: QuorumSettings,
    /// TLS between the quorum's nodes (`RPC-4`); `None` for plain TCP.
    pub tls: Option<super::rpc::QuorumTls>,
}

/// Why the quorum could not start.
#[derive(Debug, thiserror::Error)]
pub enum QuorumError {
    /// The voter list is malformed.
    #[error("invalid quorum voters: {0}")]
    InvalidVoters(String),
    /// The data directory could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The quorum listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The failure.
        source: std::io::Error,
    },
    /// openraft refused to start.
    #[error("raft: {0}")]
    Raft(String),
}

/// Why a proposal did not produce an outcome.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ProposeError {
    /// The command was applied and refused by the state machine; nothing changed.
    #[error(transparent)]
    Rejected(Rejection),
    /// No leader is known, or the leader changed while the proposal was forwarded; nothing was
    /// written. Retry, at `leader` if known.
    #[error("not the quorum leader (leader: {leader:?})")]
    NotLeader {
        /// The leader, if known.
        leader: Option<NodeId>,
    },
    /// The leader changed after the command was written and before it committed: it may still
    /// be applied (`QRM-3`).
    #[error(
        "the quorum leader changed; the command may or may not be applied (leader: {leader:?})"
    )]
    OutcomeUnknown {
        /// The new leader, if known.
        leader: Option<NodeId>,
    },
    /// The quorum is shut down or the leader could not be reached.
    #[error("the metadata quorum is unavailable: {reason}")]
    Unavailable {
        /// Why.
        reason: String,
    },
}

/// A summary of this node's Raft state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumStatus {
    /// This node.
    pub node_id: NodeId,
    /// The leader it knows.
    pub leader: Option<NodeId>,
    /// Its current term.
    pub term: u64,
    /// Index of its last log entry.
    pub last_log_index: Option<u64>,
    /// Index of the last entry it knows committed.
    pub committed_index: Option<u64>,
    /// Index of the last entry applied to its image.
    pub applied_index: Option<u64>,
    /// Index of its latest snapshot.
    pub snapshot_index: Option<u64>,
    /// Index up to which its log is purged.
    pub purged_index: Option<u64>,
    /// The voters.
    pub voters: Vec<NodeId>,
}

/// Sends the followers a heartbeat now, which carries the commit index of an entry just
/// committed: they apply it within a round trip instead of at the next periodic heartbeat (up
/// to `heartbeat_interval_ms` later), so a change answered to a client is in force on the other
/// nodes almost at once (a group config a share partition on another node reads, an ACL).
async fn announce_commit(raft: &Raft) {
    if let Err(e) = raft.trigger().heartbeat().await {
        tracing::debug!(error = %e, "cannot announce a commit");
    }
}

/// Writes `cmd` through this node's Raft, without forwarding (`QRM-2`, `QRM-3`); the outcome
/// and the index of the log entry that carried it.
pub(crate) async fn propose_local(
    raft: &Raft,
    cmd: Command,
) -> Result<(Outcome, u64), ProposeError> {
    match raft.client_write(cmd).await {
        Ok(resp) => {
            announce_commit(raft).await;
            let index = resp.log_id.index();
            resp.data
                .map(|o| (o, index))
                .map_err(ProposeError::Rejected)
        }
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
            Err(ProposeError::NotLeader {
                leader: f.leader_id,
            })
        }
        Err(RaftError::APIError(ClientWriteError::LogEntryDiscarded(f))) => {
            Err(ProposeError::OutcomeUnknown {
                leader: f.leader_id,
            })
        }
        Err(e) => Err(ProposeError::Unavailable {
            reason: e.to_string(),
        }),
    }
}

/// Asks the voters, until one of them (the leader) accepts, to add this observer as a learner;
/// gives up when the quorum node stops.
async fn join(
    node_id: NodeId,
    voters: Vec<Voter>,
    addr: String,
    mut stop: watch::Receiver<bool>,
    tls: Option<super::rpc::QuorumTls>,
) {
    let mut warned = false;
    loop {
        for v in &voters {
            let mut conn = Connection::new(v.id, v.addr.clone(), tls.clone());
            let request = Request::Join {
                id: node_id,
                addr: addr.clone(),
            };
            match conn.call(request, Duration::from_secs(5)).await {
                Ok(Response::Joined(Ok(()))) => {
                    tracing::info!(
                        node_id,
                        via = v.id,
                        "joined the metadata quorum as an observer"
                    );
                    return;
                }
                Ok(other) => tracing::debug!(voter = v.id, answer = ?other, "join not accepted"),
                Err(e) => tracing::debug!(voter = v.id, error = %e, "join not sent"),
            }
        }
        if !warned {
            tracing::info!(
                node_id,
                "waiting for the metadata quorum's leader to add this observer"
            );
            warned = true;
        }
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(Duration::from_millis(300)) => {}
        }
    }
}

/// One node's handle on the metadata quorum.
#[derive(Debug)]
pub struct MetadataQuorum {
    node_id: NodeId,
    raft: Raft,
    image: watch::Receiver<Arc<MetadataImage>>,
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    server: Mutex<Option<JoinHandle<()>>>,
    /// Idle connections to leaders for forwarded proposals, by node id; a proposal takes one
    /// out for its call (a lock never held across an await).
    forward: Mutex<BTreeMap<NodeId, Connection>>,
    lock: Mutex<Option<File>>,
    forward_timeout: Duration,
    /// TLS of the connections this node opens and accepts.
    tls: Option<super::rpc::QuorumTls>,
}

impl MetadataQuorum {
    /// Binds the quorum listener on `bind` and starts the node.
    pub async fn start(
        options: QuorumOptions,
        bind: SocketAddr,
    ) -> Result<MetadataQuorum, QuorumError> {
        let listener = TcpListener::bind(bind)
            .await
            .map_err(|source| QuorumError::Bind { addr: bind, source })?;
        Self::start_on(options, listener).await
    }

    /// Starts the node with an already bound quorum listener.
    pub async fn start_on(
        options: QuorumOptions,
        listener: TcpListener,
    ) -> Result<MetadataQuorum, QuorumError> {
        let QuorumOptions {
            node_id,
            voters,
            data_dir,
            settings,
            tls,
        } = options;
        let local_addr = listener.local_addr().map_err(|source| QuorumError::Bind {
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            source,
        })?;
        let members: BTreeMap<NodeId, BasicNode> = if voters.is_empty() {
            BTreeMap::from([(node_id, BasicNode::new(local_addr.to_string()))])
        } else {
            voters
                .iter()
                .map(|v| (v.id, BasicNode::new(v.addr.clone())))
                .collect()
        };
        if members.len() != voters.len().max(1) {
            return Err(QuorumError::InvalidVoters("a voter id is repeated".into()));
        }
        // A node outside the voters is an observer (`QRM-4`): it joins as a learner.
        let observer = !members.contains_key(&node_id);
        let dir = data_dir.clone();
        let (lock, log, sm) = tokio::task::spawn_blocking(move || {
            let lock = lock_dir(&dir)?;
            let log = LogStore::open(&dir)?;
            let sm = StateMachine::open(&dir)?;
            Ok::<_, StoreError>((lock, log, sm))
        })
        .await
        .map_err(|e| QuorumError::Raft(e.to_string()))??;
        let image = sm.subscribe();
        let config = Config {
            cluster_name: "basalt-metadata".into(),
            heartbeat_interval: settings.heartbeat_interval_ms,
            election_timeout_min: settings.election_timeout_min_ms,
            election_timeout_max: settings.election_timeout_max_ms,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(settings.snapshot_after_entries),
            max_in_snapshot_log_to_keep: settings.entries_kept_after_snapshot,
            purge_batch_size: 1,
            ..Default::default()
        }
        .validate()
        .map_err(|e| QuorumError::Raft(e.to_string()))?;
        let committed = log.committed();
        let raft = Raft::new(
            node_id,
            Arc::new(config),
            Network {
                node_id,
                tls: tls.clone(),
            },
            log,
            sm,
        )
        .await
        .map_err(|e| QuorumError::Raft(e.to_string()))?;
        let (stop, stop_rx) = watch::channel(false);
        let server = tokio::spawn(rpc::serve(
            listener,
            node_id,
            raft.clone(),
            stop_rx,
            tls.clone(),
        ));
        let quorum = MetadataQuorum {
            node_id,
            raft,
            image,
            local_addr,
            stop,
            server: Mutex::new(Some(server)),
            forward: Mutex::new(BTreeMap::new()),
            lock: Mutex::new(Some(lock)),
            forward_timeout: Duration::from_millis(
                settings
                    .election_timeout_max_ms
                    .saturating_mul(4)
                    .max(5_000),
            ),
            tls: tls.clone(),
        };
        if observer {
            if local_addr.ip().is_unspecified() {
                tracing::warn!(addr = %local_addr, "an observer's quorum address should be one the voters can reach");
            }
            tokio::spawn(join(
                node_id,
                voters.clone(),
                local_addr.to_string(),
                quorum.stop.subscribe(),
                tls,
            ));
        } else if let Err(e) = quorum.initialize(members).await {
            quorum.shutdown().await;
            return Err(e);
        }
        // What was committed before the stop is applied again from the local log: wait for it,
        // so the first image() a caller reads is no older than the last one it could have read.
        if let Some(committed) = committed {
            let index = committed.index();
            let mut image = quorum.image.clone();
            let restored = image.wait_for(|i| i.applied_index >= index);
            if tokio::time::timeout(RESTORE_WAIT, restored).await.is_err() {
                tracing::warn!(
                    index,
                    "metadata image not restored to the committed index yet"
                );
            }
        }
        tracing::info!(
            node_id,
            addr = %local_addr,
            dir = %data_dir.display(),
            applied_index = quorum.image().applied_index,
            "metadata quorum node started"
        );
        Ok(quorum)
    }

    /// Initializes a pristine node with the voters (`QRM-1`).
    async fn initialize(&self, members: BTreeMap<NodeId, BasicNode>) -> Result<(), QuorumError> {
        let initialized = self
            .raft
            .is_initialized()
            .await
            .map_err(|e| QuorumError::Raft(e.to_string()))?;
        if initialized {
            return Ok(());
        }
        let voters: Vec<NodeId> = members.keys().copied().collect();
        match self.raft.initialize(members).await {
            Ok(()) => {
                tracing::info!(
                    node_id = self.node_id,
                    ?voters,
                    "metadata quorum initialized"
                );
                Ok(())
            }
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(()),
            Err(e) => Err(QuorumError::Raft(e.to_string())),
        }
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// The address the quorum listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The latest applied image.
    pub fn image(&self) -> Arc<MetadataImage> {
        Arc::clone(&self.image.borrow())
    }

    /// A receiver that sees every newly applied image.
    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.image.clone()
    }

    /// The leader this node knows.
    pub fn leader(&self) -> Option<NodeId> {
        self.raft.metrics().borrow_watched().current_leader
    }

    /// This node's Raft state.
    pub fn status(&self) -> QuorumStatus {
        let m = self.raft.metrics().borrow_watched().clone();
        QuorumStatus {
            node_id: self.node_id,
            leader: m.current_leader,
            term: m.current_term,
            last_log_index: m.last_log_index,
            committed_index: m.local_committed.as_ref().map(|l| l.index()),
            applied_index: m.last_applied.as_ref().map(|l| l.index()),
            snapshot_index: m.snapshot.as_ref().map(|l| l.index()),
            purged_index: m.purged.as_ref().map(|l| l.index()),
            voters: m.membership_config.membership().voter_ids().collect(),
        }
    }

    /// Proposes `cmd` and waits until it is applied here or on the leader, forwarding it to
    /// the leader when this node is not (`QRM-2`).
    pub async fn propose(&self, cmd: Command) -> Result<Outcome, ProposeError> {
        let leader = match self.raft.client_write(cmd.clone()).await {
            Ok(resp) => {
                announce_commit(&self.raft).await;
                return resp.data.map_err(ProposeError::Rejected);
            }
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                match (f.leader_id, f.leader_node) {
                    (Some(id), Some(node)) if id != self.node_id => (id, node.addr),
                    (leader, _) => return Err(ProposeError::NotLeader { leader }),
                }
            }
            Err(RaftError::APIError(ClientWriteError::LogEntryDiscarded(f))) => {
                return Err(ProposeError::OutcomeUnknown {
                    leader: f.leader_id,
                });
            }
            Err(e) => {
                return Err(ProposeError::Unavailable {
                    reason: e.to_string(),
                });
            }
        };
        let (outcome, index) = self.forward(leader.0, leader.1, cmd).await?;
        // Read your writes: the leader applied it; give this node the time to apply it too,
        // so the caller's next image() shows it. It is committed either way.
        let mut image = self.image.clone();
        let applied = image.wait_for(|i| i.applied_index >= index);
        if tokio::time::timeout(self.forward_timeout, applied)
            .await
            .is_err()
        {
            tracing::debug!(index, "forwarded proposal not applied here yet");
        }
        Ok(outcome)
    }

    async fn forward(
        &self,
        leader: NodeId,
        addr: String,
        cmd: Command,
    ) -> Result<(Outcome, u64), ProposeError> {
        let idle = self.forward.lock().remove(&leader);
        let mut conn = idle.unwrap_or_else(|| Connection::new(leader, addr, self.tls.clone()));
        let answer = conn.call(Request::Propose(cmd), self.forward_timeout).await;
        if answer.is_ok() {
            self.forward.lock().insert(leader, conn);
        }
        match answer {
            Ok(Response::Propose(r)) => r,
            Ok(other) => Err(ProposeError::Unavailable {
                reason: format!("node {leader} answered {other:?}"),
            }),
            // The request may have reached the leader before the connection failed.
            Err(e @ rpc::CallError::Connect { .. }) => Err(ProposeError::Unavailable {
                reason: e.to_string(),
            }),
            Err(_) => Err(ProposeError::OutcomeUnknown {
                leader: Some(leader),
            }),
        }
    }

    /// Proposes fencing for every unfenced node that has not heartbeated for more than
    /// `session_timeout_ms` before `now_ms`; only the leader does. Returns the nodes fenced.
    pub async fn fence_stale_nodes(&self, now_ms: i64, session_timeout_ms: i64) -> Vec<NodeId> {
        if self.leader() != Some(self.node_id) {
            return Vec::new();
        }
        let mut fenced = Vec::new();
        for id in self.image().stale_nodes(now_ms, session_timeout_ms) {
            match propose_local(&self.raft, Command::FenceNode { id }).await {
                Ok(_) => {
                    tracing::info!(node = id, "fenced a node that stopped heartbeating");
                    fenced.push(id);
                }
                Err(e) => {
                    tracing::debug!(node = id, error = %e, "could not fence a node");
                    break;
                }
            }
        }
        fenced
    }

    /// Builds a snapshot now (and lets the log behind it be purged).
    pub async fn snapshot(&self) -> Result<(), ProposeError> {
        self.raft
            .trigger()
            .snapshot()
            .await
            .map_err(|e| ProposeError::Unavailable {
                reason: e.to_string(),
            })
    }

    /// Stops the node: the listener, the Raft node, and the hold on the data directory.
    pub async fn shutdown(&self) {
        self.stop.send_replace(true);
        let server = self.server.lock().take();
        if let Some(server) = server {
            server.await.ok();
        }
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "metadata raft did not stop cleanly");
        }
        self.forward.lock().clear();
        self.lock.lock().take();
        tracing::info!(node_id = self.node_id, "metadata quorum node stopped");
    }
}

impl Drop for MetadataQuorum {
    fn drop(&mut self) {
        // Without shutdown(): stop serving; the Raft tasks end once no handle is left.
        self.stop.send_replace(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The broker drives the quorum from spawned tasks: its futures must be `Send`.
    #[allow(dead_code)]
    fn futures_are_send(q: &'static MetadataQuorum, options: QuorumOptions, l: TcpListener) {
        fn send<T: Send>(_: T) {}
        send(MetadataQuorum::start_on(options, l));
        send(q.propose(Command::FenceNode { id: 1 }));
        send(q.fence_stale_nodes(0, 0));
        send(q.snapshot());
        send(q.shutdown());
    }
}
