//! The transaction coordinator on this node: runs the pure state machine of
//! `basalt-coordinator::txn`, persists every change of a transactional id in the internal
//! `__transaction_state` topic and replays it at start, writes the transaction markers, commits
//! the offsets of committed transactions to their groups, and aborts transactions that time out.
//!
//! Ending a transaction: the prepare state (the decision) is made durable first; then a marker is
//! appended to every partition of the transaction and to the `__consumer_offsets` partition of
//! every group it added (where the group coordinator commits or drops the offsets the
//! transaction staged with it); once all of that is durable the complete state is appended.
//! Partitions this node leads get their markers here, the others through WriteTxnMarkers to
//! their leaders. Leaders and group coordinators on other nodes verify with this coordinator
//! (AddPartitionsToTxn `verify_only`) before they take a transaction's first batch on a
//! partition or its offsets. A restart between
//! those steps finds the prepare state in `__transaction_state` and finishes the same plan, so a
//! decided commit is never lost and an abort never half-applied.
//!
//! For crash tests, the environment variable `BASALT_FAIL_POINT=txn-after-prepare-commit` makes
//! the process abort right after a commit decision is durable and before any marker is written,
//! as a `kill -9` at the worst moment would.
//!
//! # Invariants
//! - `TC-1`: records are appended to `__transaction_state` under the lock that changed the state
//!   they describe, so the log order is the order of the changes.
//! - `TC-2`: markers are written only after the prepare record is durable, and the complete
//!   record only after every marker and every committed offset is durable.
//! - `TC-3`: a transactional id is being finished by at most one task at a time.
//! - `TC-5`: per transactional id, requests are taken only from the newest connection that sent
//!   one (separately for the coordinator's own requests and for TxnOffsetCommit, which clients
//!   send over their group coordinator connection). A client moves to a new connection only
//!   after giving up on the old one, so a request still read from an older connection is a late
//!   copy of one the client already retried: it is refused (CONCURRENT_TRANSACTIONS) before it
//!   can end or extend a later transaction. This is the guard for clients on transaction
//!   version 1, which carry no per-transaction epoch (KIP-890 bumps one under version 2).
//! - `TC-6`: a transaction completes only once every partition of it and every group it added
//!   has its marker, durable and held by the ISR on that partition's leader, wherever the
//!   leader is; a marker that could not be written (no leader, a node that does not answer)
//!   leaves the transaction in its prepare state, and the timer tries again. Writing a marker
//!   twice is harmless: a partition without an open transaction of the producer takes none.
//! - `TC-4`: no lock is held across an `.await` (`BRK-3`); the state lock is never taken while a
//!   partition's producer lock is held by this module (the produce path takes them the other
//!   way round, producer lock first).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use basalt_cluster::metadata::NodeId;
use basalt_coordinator::txn::{EndOutcome, EndPlan, InitOutcome, Transactions, Txn, TxnConfig};
use basalt_coordinator::{CommittedOffset, Effects, Group, Record};
use basalt_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use basalt_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic, WriteTxnMarkersRequest,
};
use basalt_protocol::{ApiKey, ErrorCode, RequestBody, ResponseBody};
use basalt_record::{BatchBuilder, ControlType};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::groups::{Durable, OFFSETS_TOPIC, Persisted, durable, partition_for, replay};
use crate::peer::Peers;
use crate::{Broker, Topic, now_ms};

/// AddPartitionsToTxn version of a verification (v4: several transactions, `verify_only`).
const VERIFY_VERSION: i16 = 4;
/// WriteTxnMarkers version sent to other nodes.
const MARKERS_VERSION: i16 = 1;
/// How long another node may take to write markers (an fsync and the ISR's fetches).
const PEER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);
/// How long a verification may take: the produce it guards holds its connection's next
/// request meanwhile, and a coordinator that cannot answer sooner is better asked again.
const VERIFY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The internal topic holding the state of every transactional id.
pub const TXN_TOPIC: &str = "__transaction_state";

/// The key of a transactional id's record.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Key {
    Txn { id: String },
}

/// A record's key and value (`None`: a tombstone).
type KeyValue = (Vec<u8>, Option<Vec<u8>>);

/// The transaction coordinator.
#[derive(Debug)]
pub struct TxnCoordinator {
    config: TxnConfig,
    partitions: i32,
    segment_bytes: i64,
    state: Mutex<Transactions>,
    /// Transactional ids being finished (`TC-3`).
    finishing: Mutex<HashSet<String>>,
    /// Each partition's size right after its last compaction.
    compacted_size: Mutex<BTreeMap<i32, u64>>,
    /// Abort the process after a durable commit decision (`BASALT_FAIL_POINT`).
    crash_after_prepare_commit: bool,
    /// The newest connection each transactional id was heard from, per channel (`TC-5`).
    connections: Mutex<std::collections::HashMap<(String, Channel), u64>>,
    /// Connections to the other nodes: markers for partitions they lead, verifications with
    /// the coordinators they are.
    peers: Peers,
}

/// Which of a client's connections a transactional request comes over (`TC-5`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn, EndTxn.
    Coordinator,
    /// TxnOffsetCommit.
    Group,
}

impl TxnCoordinator {
    /// An empty coordinator of node `node_id`; it reaches other nodes with `security`.
    pub fn new(
        config: TxnConfig,
        partitions: i32,
        segment_bytes: i64,
        node_id: i32,
        security: crate::peer::PeerSecurity,
    ) -> Self {
        TxnCoordinator {
            config,
            partitions: partitions.max(1),
            segment_bytes: segment_bytes.max(1024),
            state: Mutex::new(Transactions::default()),
            finishing: Mutex::new(HashSet::new()),
            compacted_size: Mutex::new(BTreeMap::new()),
            crash_after_prepare_commit: std::env::var("BASALT_FAIL_POINT").as_deref()
                == Ok("txn-after-prepare-commit"),
            connections: Mutex::new(std::collections::HashMap::new()),
            peers: Peers::new(node_id, security),
        }
    }

    /// The settings.
    pub fn config(&self) -> &TxnConfig {
        &self.config
    }

    /// Admits a request for `id` arriving on connection `conn` over `channel` (`TC-5`):
    /// CONCURRENT_TRANSACTIONS if a newer connection has been heard from for it. Only requests
    /// of the id's current producer id and epoch (`producer`) are checked and move the newest
    /// connection: anything else is refused by the epoch rules anyway (a fenced producer must
    /// hear that it is fenced), and must not block the current producer's connection.
    /// InitProducerId (`producer = None`) only moves it. A coordinator request for an id this
    /// node does not coordinate (`coordinated` false: another node leads its partition of
    /// `__transaction_state`) is NOT_COORDINATOR, so the client looks the coordinator up again.
    pub fn admit(
        &self,
        id: &str,
        channel: Channel,
        conn: u64,
        producer: Option<(i64, i16)>,
        coordinated: bool,
    ) -> Result<(), ErrorCode> {
        if channel == Channel::Coordinator && !coordinated {
            return Err(ErrorCode::NotCoordinator);
        }
        if let Some(producer) = producer {
            let current = self
                .state
                .lock()
                .get(id)
                .map(|t| (t.producer_id, t.producer_epoch));
            if current != Some(producer) {
                return Ok(());
            }
        }
        let mut connections = self.connections.lock();
        let newest = connections.entry((id.to_owned(), channel)).or_insert(conn);
        if producer.is_some() && conn < *newest {
            tracing::debug!(
                txn = id,
                conn,
                newest = *newest,
                "refusing a request from an abandoned connection"
            );
            return Err(ErrorCode::ConcurrentTransactions);
        }
        *newest = (*newest).max(conn);
        Ok(())
    }

    /// Reads the transactions under the lock.
    pub fn read<R>(&self, f: impl FnOnce(&Transactions) -> R) -> R {
        f(&self.state.lock())
    }

    /// InitProducerId with a transactional id: the producer id and epoch, once durable.
    pub async fn init_producer_id(
        self: &Arc<Self>,
        broker: &Arc<Broker>,
        id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
    ) -> Result<(i64, i16), ErrorCode> {
        let (outcome, tickets) = {
            let mut state = self.state.lock();
            let (outcome, txn) = state.init_producer_id(
                &self.config,
                id,
                timeout_ms,
                expected,
                now_ms(),
                &mut allocator(broker),
            )?;
            if let InitOutcome::Fencing(plan) = &outcome {
                self.claim(&plan.id);
            }
            // TC-1: append under the lock.
            let tickets = self.append(broker, &[(txn.id.clone(), Some(txn))]);
            (outcome, tickets)
        };
        match outcome {
            InitOutcome::Ready {
                producer_id,
                producer_epoch,
            } => {
                if !durable(tickets).await {
                    return Err(ErrorCode::CoordinatorNotAvailable);
                }
                Ok((producer_id, producer_epoch))
            }
            InitOutcome::Fencing(plan) => {
                // The old producer's transaction is aborted in the background; the new one
                // retries until it is done (as with Kafka).
                self.spawn_finish(broker, plan, tickets);
                Err(ErrorCode::ConcurrentTransactions)
            }
        }
    }

    /// AddPartitionsToTxn / AddOffsetsToTxn: adds partitions (and a group) to the open
    /// transaction, durably.
    pub async fn add(
        &self,
        broker: &Broker,
        id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
        group: Option<&str>,
    ) -> Result<(), ErrorCode> {
        let tickets = {
            let mut state = self.state.lock();
            match state.add(id, producer_id, epoch, partitions, group, now_ms())? {
                Some(txn) => self.append(broker, &[(txn.id.clone(), Some(txn))]),
                None => Vec::new(),
            }
        };
        if durable(tickets).await {
            Ok(())
        } else {
            Err(ErrorCode::CoordinatorNotAvailable)
        }
    }

    /// Whether a transactional batch of `producer_id` at `epoch` may go to `topic`-`partition`
    /// (`PART-4`), as this node's coordinator knows it. For a partition of
    /// `__consumer_offsets` (a group coordinator staging transactional offsets), whether the
    /// transaction added a group that hashes to it.
    pub fn verify_here(
        &self,
        broker: &Broker,
        producer_id: i64,
        epoch: i16,
        topic: &str,
        partition: i32,
    ) -> Result<(), ErrorCode> {
        if topic == OFFSETS_TOPIC {
            let count = broker
                .coordinator()
                .offsets_topic(broker)
                .map_err(|_| ErrorCode::CoordinatorNotAvailable)?
                .meta
                .partitions;
            return self
                .state
                .lock()
                .verify_offsets(producer_id, epoch, |g| partition_for(g, count) == partition);
        }
        self.state
            .lock()
            .verify_produce(producer_id, epoch, topic, partition)
    }

    /// Verifies with the coordinator of `transactional_id`, here or on another node
    /// (AddPartitionsToTxn v4 with `verify_only`, as KIP-890 leaders do), that `topic`-
    /// `partition` is in the producer's open transaction. `Err(Some(code))` when it is not,
    /// `Err(None)` when the coordinator cannot be asked now (the caller answers with a
    /// retriable error).
    pub async fn verify(
        &self,
        broker: &Broker,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        topic: &str,
        partition: i32,
    ) -> Result<(), Option<ErrorCode>> {
        let node = match self.coordinator_node(broker, transactional_id) {
            Ok(None) => {
                return self
                    .verify_here(broker, producer_id, epoch, topic, partition)
                    .map_err(Some);
            }
            Ok(Some(node)) => node,
            Err(()) => return Err(None),
        };
        let Some(image) = broker.image() else {
            return Err(None);
        };
        let request = AddPartitionsToTxnRequest {
            transactions: vec![AddPartitionsToTxnTransaction {
                transactional_id: transactional_id.to_owned(),
                producer_id,
                producer_epoch: epoch,
                verify_only: true,
                topics: vec![AddPartitionsToTxnTopic {
                    name: topic.to_owned(),
                    partitions: vec![partition],
                    ..AddPartitionsToTxnTopic::default()
                }],
                ..AddPartitionsToTxnTransaction::default()
            }],
            ..AddPartitionsToTxnRequest::default()
        };
        let answer = self
            .peers
            .call(
                &image,
                node,
                ApiKey::AddPartitionsToTxn,
                VERIFY_VERSION,
                RequestBody::AddPartitionsToTxn(request),
                VERIFY_TIMEOUT,
            )
            .await;
        let response = match answer {
            Ok(ResponseBody::AddPartitionsToTxn(r)) => r,
            Ok(_) => return Err(None),
            Err(e) => {
                tracing::debug!(txn = transactional_id, node, error = %e, "cannot verify with the transaction coordinator");
                return Err(None);
            }
        };
        let code = if response.error_code != 0 {
            response.error_code
        } else {
            response
                .results_by_transaction
                .iter()
                .flat_map(|t| &t.topic_results)
                .flat_map(|t| &t.results_by_partition)
                .find(|p| p.partition_index == partition)
                .map_or(ErrorCode::UnknownServerError.into(), |p| {
                    p.partition_error_code
                })
        };
        match ErrorCode::try_from(code).unwrap_or(ErrorCode::UnknownServerError) {
            ErrorCode::None => Ok(()),
            ErrorCode::NotCoordinator
            | ErrorCode::CoordinatorNotAvailable
            | ErrorCode::CoordinatorLoadInProgress
            | ErrorCode::ConcurrentTransactions
            | ErrorCode::UnknownServerError => Err(None),
            code => Err(Some(code)),
        }
    }

    /// The node coordinating `transactional_id`: `Ok(None)` for this node (and on a single
    /// node), `Err` when its partition of `__transaction_state` has no leader now.
    pub(crate) fn coordinator_node(
        &self,
        broker: &Broker,
        transactional_id: &str,
    ) -> Result<Option<NodeId>, ()> {
        if broker.cluster().is_none() {
            return Ok(None);
        }
        let topic = self.topic(broker).map_err(|_| ())?;
        let index = partition_for(transactional_id, topic.meta.partitions);
        match usize::try_from(index)
            .ok()
            .and_then(|i| topic.leaders.get(i))
        {
            Some(&l) if l == broker.config().node_id => Ok(None),
            Some(&l) if l >= 0 => Ok(Some(l)),
            _ => Err(()),
        }
    }

    /// EndTxn: ends the open transaction and answers once its markers and offsets are durable
    /// (the producer id and epoch to continue with).
    pub async fn end(
        self: &Arc<Self>,
        broker: &Arc<Broker>,
        id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        tv2: bool,
    ) -> Result<(i64, i16), ErrorCode> {
        let (outcome, tickets) = {
            let mut state = self.state.lock();
            let (outcome, txn) = state.end(
                id,
                producer_id,
                epoch,
                commit,
                tv2,
                now_ms(),
                &mut allocator(broker),
            )?;
            if let EndOutcome::Plan(plan) = &outcome {
                // TC-3: claimed under the lock that made the plan, before the timer sees it.
                self.claim(&plan.id);
            }
            let tickets = match txn {
                Some(txn) => self.append(broker, &[(txn.id.clone(), Some(txn))]),
                None => Vec::new(),
            };
            (outcome, tickets)
        };
        // TC-2: the decision is durable before any marker.
        let decided = durable(tickets).await;
        if let EndOutcome::Plan(plan) = outcome {
            if decided && plan.commit && self.crash_after_prepare_commit {
                tracing::error!(txn = %plan.id, "fail point txn-after-prepare-commit: aborting the process");
                std::process::abort();
            }
            let done = decided && self.finish(broker, &plan).await;
            self.release(&plan.id);
            if !done {
                return Err(ErrorCode::CoordinatorNotAvailable);
            }
        } else if !decided {
            return Err(ErrorCode::CoordinatorNotAvailable);
        }
        let state = self.state.lock();
        let txn = state.get(id).ok_or(ErrorCode::InvalidProducerIdMapping)?;
        Ok((txn.producer_id, txn.producer_epoch))
    }

    fn claim(&self, id: &str) -> bool {
        self.finishing.lock().insert(id.to_owned())
    }

    fn release(&self, id: &str) {
        self.finishing.lock().remove(id);
    }

    /// Finishes `plan`, already claimed, in a task of its own once `decision` is durable
    /// (`TC-2`).
    fn spawn_finish(self: &Arc<Self>, broker: &Arc<Broker>, plan: EndPlan, decision: Durable) {
        let me = Arc::clone(self);
        let broker = Arc::clone(broker);
        tokio::spawn(async move {
            if durable(decision).await {
                me.finish(&broker, &plan).await;
            }
            me.release(&plan.id);
        });
    }

    /// Writes the markers and commits the offsets of `plan`, waits for them to be durable, then
    /// appends the complete state (`TC-2`). False if something could not be written; the
    /// transaction then stays in its prepare state and is tried again by the timer.
    async fn finish(&self, broker: &Broker, plan: &EndPlan) -> bool {
        let mut ok = self.write_plan_markers(broker, plan).await;
        // Offsets kept with the transaction by earlier versions, committed here.
        let mut tickets: Durable = Vec::new();
        for (group, offsets) in &plan.offsets {
            let (_, t) = broker.coordinator().with_group(
                broker,
                group,
                |now| Some(Group::new_classic(group, now)),
                |g, now| {
                    let mut effects = Effects::default();
                    if let Some(g) = g {
                        for (topic, partition, offset) in offsets {
                            let value = CommittedOffset {
                                commit_timestamp: now,
                                ..offset.clone()
                            };
                            effects
                                .records
                                .push(Record::offset(&g.id, topic, *partition, &value));
                            g.offsets.commit(topic, *partition, value);
                        }
                    }
                    ((), effects)
                },
            );
            tickets.extend(t);
        }
        ok &= durable(tickets).await;
        if !ok {
            return false;
        }
        broker.notify_visible();
        let tickets = {
            let mut state = self.state.lock();
            match state.complete(plan, now_ms()) {
                Some(txn) => self.append(broker, &[(txn.id.clone(), Some(txn))]),
                None => Vec::new(),
            }
        };
        // The outcome is decided and applied; the complete record only saves work at restart.
        let _ = durable(tickets).await;
        tracing::debug!(txn = %plan.id, commit = plan.commit, partitions = plan.partitions.len(), "transaction ended");
        true
    }

    /// Writes the markers of `plan` (`TC-6`): to every partition of the transaction and to the
    /// partition of `__consumer_offsets` of every group it added, on this node for those it
    /// leads and with WriteTxnMarkers to the leaders of the others. True once every marker is
    /// durable where it was written; a partition whose topic was deleted meanwhile needs none.
    async fn write_plan_markers(&self, broker: &Broker, plan: &EndPlan) -> bool {
        let mut targets: Vec<(String, i32)> = plan.partitions.clone();
        if !plan.groups.is_empty() {
            match broker.coordinator().offsets_topic(broker) {
                Ok(t) => {
                    for g in &plan.groups {
                        let p = (
                            OFFSETS_TOPIC.to_owned(),
                            partition_for(g, t.meta.partitions),
                        );
                        if !targets.contains(&p) {
                            targets.push(p);
                        }
                    }
                }
                Err(e) => {
                    tracing::error!(txn = %plan.id, error = %e.message, "cannot find {OFFSETS_TOPIC}");
                    return false;
                }
            }
        }
        let me = broker.config().node_id;
        let clustered = broker.cluster().is_some();
        let mut ok = true;
        let mut here = Vec::new();
        let mut remote: BTreeMap<NodeId, Vec<(String, i32)>> = BTreeMap::new();
        for (topic, index) in targets {
            let Some(t) = broker
                .topic(&topic)
                .filter(|t| (0..t.meta.partitions).contains(&index))
            else {
                continue;
            };
            let leader = usize::try_from(index)
                .ok()
                .and_then(|i| t.leaders.get(i))
                .copied()
                .unwrap_or(-1);
            if !clustered || leader == me {
                here.push((topic, index));
            } else if leader >= 0 {
                remote.entry(leader).or_default().push((topic, index));
            } else {
                tracing::debug!(txn = %plan.id, topic, partition = index, "no leader to take a marker");
                ok = false;
            }
        }
        let local = async {
            let codes = write_markers(
                broker,
                plan.producer_id,
                plan.producer_epoch,
                plan.commit,
                &here,
            )
            .await;
            let mut ok = true;
            for ((topic, index), code) in here.iter().zip(codes) {
                if code != ErrorCode::None {
                    tracing::warn!(txn = %plan.id, topic, partition = index, %code, "cannot write transaction marker");
                    ok = false;
                }
            }
            ok
        };
        let others = async {
            let mut ok = true;
            for (node, partitions) in &remote {
                ok &= self.send_markers(broker, plan, *node, partitions).await;
            }
            ok
        };
        let (a, b) = tokio::join!(local, others);
        ok && a && b
    }

    /// WriteTxnMarkers to node `node` for `partitions` of `plan`: true once it wrote them all.
    async fn send_markers(
        &self,
        broker: &Broker,
        plan: &EndPlan,
        node: NodeId,
        partitions: &[(String, i32)],
    ) -> bool {
        let Some(image) = broker.image() else {
            return false;
        };
        let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (t, p) in partitions {
            topics.entry(t.as_str()).or_default().push(*p);
        }
        let request = WriteTxnMarkersRequest {
            markers: vec![WritableTxnMarker {
                producer_id: plan.producer_id,
                producer_epoch: plan.producer_epoch,
                transaction_result: plan.commit,
                topics: topics
                    .into_iter()
                    .map(|(name, partition_indexes)| WritableTxnMarkerTopic {
                        name: name.to_owned(),
                        partition_indexes,
                        ..WritableTxnMarkerTopic::default()
                    })
                    .collect(),
                coordinator_epoch: 0,
                ..WritableTxnMarker::default()
            }],
            ..WriteTxnMarkersRequest::default()
        };
        let answer = self
            .peers
            .call(
                &image,
                node,
                ApiKey::WriteTxnMarkers,
                MARKERS_VERSION,
                RequestBody::WriteTxnMarkers(request),
                PEER_TIMEOUT,
            )
            .await;
        let response = match answer {
            Ok(ResponseBody::WriteTxnMarkers(r)) => r,
            Ok(_) => return false,
            Err(e) => {
                tracing::debug!(txn = %plan.id, node, error = %e, "cannot send transaction markers");
                return false;
            }
        };
        let mut written = 0;
        for topic in response.markers.iter().flat_map(|m| &m.topics) {
            for p in &topic.partitions {
                let code =
                    ErrorCode::try_from(p.error_code).unwrap_or(ErrorCode::UnknownServerError);
                let gone = broker.partition(&topic.name, p.partition_index).is_none();
                if code == ErrorCode::None || (code == ErrorCode::UnknownTopicOrPartition && gone) {
                    written += 1;
                } else {
                    tracing::debug!(txn = %plan.id, node, topic = %topic.name, partition = p.partition_index, %code, "transaction marker refused");
                }
            }
        }
        written == partitions.len()
    }

    /// Aborts timed-out transactions, finishes those left in a prepare state (after a restart
    /// or a failed write) and forgets expired transactional ids.
    pub fn tick(self: &Arc<Self>, broker: &Arc<Broker>) {
        let (plans, tickets, pending) = {
            let mut state = self.state.lock();
            // Plans left in a prepare state by a restart or a failed write: their decision is
            // durable already.
            let pending: Vec<EndPlan> = state
                .pending_plans()
                .into_iter()
                .filter(|p| self.claim(&p.id))
                .collect();
            let (plans, changes) = state.tick(&self.config, now_ms(), &mut allocator(broker));
            for p in &plans {
                self.claim(&p.id);
            }
            let tickets = self.append(broker, &changes);
            let removed: Vec<&String> = changes
                .iter()
                .filter(|(_, t)| t.is_none())
                .map(|(id, _)| id)
                .collect();
            if !removed.is_empty() {
                self.connections
                    .lock()
                    .retain(|(id, _), _| !removed.contains(&id));
            }
            (plans, tickets, pending)
        };
        for plan in pending {
            tracing::info!(txn = %plan.id, commit = plan.commit, "finishing a decided transaction");
            self.spawn_finish(broker, plan, Vec::new());
        }
        if plans.is_empty() {
            return;
        }
        for plan in &plans {
            tracing::info!(txn = %plan.id, producer_id = plan.producer_id, "aborting a transaction past its timeout");
        }
        // One append holds every decision of this tick: wait for it once, then finish each.
        let me = Arc::clone(self);
        let broker = Arc::clone(broker);
        tokio::spawn(async move {
            let decided = durable(tickets).await;
            for plan in plans {
                if decided {
                    me.finish(&broker, &plan).await;
                }
                me.release(&plan.id);
            }
        });
    }

    /// Appends the changed transactions to their partitions of `__transaction_state`, creating
    /// the topic on first use.
    fn append(&self, broker: &Broker, changes: &[(String, Option<Txn>)]) -> Durable {
        if changes.is_empty() {
            return Vec::new();
        }
        let topic = match self.topic(broker) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e.message, "cannot create {TXN_TOPIC}");
                return Vec::new();
            }
        };
        let mut by_partition: BTreeMap<i32, Vec<KeyValue>> = BTreeMap::new();
        for (id, txn) in changes {
            let key = serde_json::to_vec(&Key::Txn { id: id.clone() }).unwrap_or_default();
            let value = txn
                .as_ref()
                .map(|t| serde_json::to_vec(t).unwrap_or_default());
            by_partition
                .entry(partition_for(id, topic.meta.partitions))
                .or_default()
                .push((key, value));
        }
        let now = now_ms();
        let mut tickets = Vec::new();
        for (p, records) in by_partition {
            let Some(partition) = usize::try_from(p)
                .ok()
                .and_then(|i| topic.partitions.get(i))
            else {
                continue;
            };
            let mut b = BatchBuilder::new(0);
            for (k, v) in &records {
                b.push(now, Some(k), v.as_deref(), &[]);
            }
            match partition.produce(&b.build(), now, |_, _| Err(ErrorCode::InvalidTxnState)) {
                Ok(produced) => tickets.extend(
                    produced
                        .durable
                        .map(|t| Persisted::new(broker, partition, t, produced.last_offset + 1)),
                ),
                Err(e) => {
                    tracing::error!(partition = p, error = %e.message, "cannot persist transaction state")
                }
            }
        }
        tickets
    }

    pub(crate) fn topic(&self, broker: &Broker) -> Result<Arc<Topic>, crate::TopicError> {
        if let Some(t) = broker.topic(TXN_TOPIC) {
            return Ok(t);
        }
        let configs = BTreeMap::from([
            ("retention.ms".to_owned(), "-1".to_owned()),
            ("retention.bytes".to_owned(), "-1".to_owned()),
            ("segment.bytes".to_owned(), self.segment_bytes.to_string()),
        ]);
        match broker.create_topic(TXN_TOPIC, self.partitions, -1, configs, false) {
            Ok(t) => Ok(t),
            Err(e) if e.code == ErrorCode::TopicAlreadyExists => broker.topic(TXN_TOPIC).ok_or(e),
            Err(e) => Err(e),
        }
    }

    /// Compacts partitions of `__transaction_state` past the segment size and twice their size
    /// after the last compaction: the live state of their transactional ids is appended again,
    /// and once durable the log start moves to it (as `GC-4` does for groups).
    pub async fn compact(&self, broker: &Broker) {
        let Some(topic) = broker.topic(TXN_TOPIC) else {
            return;
        };
        let threshold = u64::try_from(self.segment_bytes).unwrap_or(u64::MAX);
        let due: Vec<_> = {
            let compacted = self.compacted_size.lock();
            topic
                .partitions
                .iter()
                .filter(|p| {
                    let size = p.log.size_bytes();
                    size > threshold && size > 2 * compacted.get(&p.index).copied().unwrap_or(0)
                })
                .cloned()
                .collect()
        };
        for partition in due {
            let (start, tickets) = {
                let state = self.state.lock();
                let live: Vec<(String, Option<Txn>)> = state
                    .all()
                    .into_iter()
                    .filter(|t| partition_for(&t.id, topic.meta.partitions) == partition.index)
                    .map(|t| (t.id.clone(), Some(t.clone())))
                    .collect();
                // TC-1: under the lock nothing is appended between `start` and the records.
                let start = partition.log.log_end_offset();
                (start, self.append(broker, &live))
            };
            if !durable(tickets).await {
                continue;
            }
            match partition.delete_records(start) {
                Ok(_) => {
                    self.compacted_size
                        .lock()
                        .insert(partition.index, partition.log.size_bytes());
                }
                Err(e) => {
                    tracing::warn!(partition = partition.index, error = %e, "compaction of {TXN_TOPIC} failed")
                }
            }
        }
    }

    /// Rebuilds the transactional ids of partition `index` of `__transaction_state` from its
    /// log: this node just became its leader, and what it holds in memory may be stale.
    pub fn load_partition(&self, broker: &Broker, index: i32) {
        let Some(topic) = broker.topic(TXN_TOPIC) else {
            return;
        };
        let Some(partition) = usize::try_from(index)
            .ok()
            .and_then(|i| topic.partitions.get(i))
        else {
            return;
        };
        let count = topic.meta.partitions;
        let mut state = self.state.lock();
        state.retain(|id| partition_for(id, count) != index);
        crate::groups::replay_partition(&topic, partition, |key, value| {
            let Ok(Key::Txn { id }) = serde_json::from_slice::<Key>(key) else {
                return;
            };
            match value.map(serde_json::from_slice::<Txn>) {
                None => state.apply(&id, None),
                Some(Ok(t)) => state.apply(&id, Some(t)),
                Some(Err(e)) => {
                    tracing::warn!(txn = %id, error = %e, "skipping a damaged transaction record")
                }
            }
        });
        tracing::info!(
            partition = index,
            "loaded the transactions of a partition this node now leads"
        );
    }

    /// Rebuilds every transactional id from `__transaction_state`, if it exists. Transactions
    /// left in a prepare state are finished by the first [`TxnCoordinator::tick`].
    pub fn load(&self, broker: &Broker) {
        let Some(topic) = broker.topic(TXN_TOPIC) else {
            return;
        };
        let mut state = self.state.lock();
        let mut count = 0usize;
        replay(&topic, |key, value| {
            let Ok(Key::Txn { id }) = serde_json::from_slice::<Key>(key) else {
                tracing::warn!("skipping a transaction record with an unknown key");
                return;
            };
            let value = match value.map(serde_json::from_slice::<Txn>) {
                None => None,
                Some(Ok(t)) => Some(t),
                Some(Err(e)) => {
                    tracing::warn!(txn = %id, error = %e, "skipping a damaged transaction record");
                    return;
                }
            };
            state.apply(&id, value);
            count += 1;
        });
        tracing::info!(
            transactional_ids = state.len(),
            pending = state.pending_plans().len(),
            records = count,
            "loaded transactions"
        );
    }
}

/// Writes markers of `producer_id` at `epoch` to `partitions`, which this node must lead
/// (WriteTxnMarkers, and the coordinator for the partitions it leads), and waits until each
/// is durable and, where replicated, held by the ISR: one code per partition. On a partition
/// of `__consumer_offsets` the marker commits or drops the offsets the producer staged for
/// the groups there (`GRP-4`). A partition without an open transaction of the producer needs
/// no marker and answers NONE, so a retried marker is harmless.
pub async fn write_markers(
    broker: &Broker,
    producer_id: i64,
    epoch: i16,
    commit: bool,
    partitions: &[(String, i32)],
) -> Vec<ErrorCode> {
    let now = now_ms();
    let control = if commit {
        ControlType::Commit
    } else {
        ControlType::Abort
    };
    let clustered = broker.cluster().is_some();
    let me = broker.config().node_id;
    let mut pending: Vec<(ErrorCode, Durable)> = Vec::with_capacity(partitions.len());
    for (topic, index) in partitions {
        let Some(partition) = broker.partition(topic, *index) else {
            pending.push((ErrorCode::UnknownTopicOrPartition, Vec::new()));
            continue;
        };
        if clustered && !broker.topic(topic).is_some_and(|t| t.is_led_by(*index, me)) {
            pending.push((ErrorCode::NotLeaderOrFollower, Vec::new()));
            continue;
        }
        if topic == OFFSETS_TOPIC {
            let tickets = broker
                .coordinator()
                .end_txn(broker, *index, producer_id, commit);
            pending.push((ErrorCode::None, tickets));
            continue;
        }
        match partition.write_marker(producer_id, epoch, control, 0, now) {
            Ok(t) => pending.push((
                ErrorCode::None,
                t.map(|(t, end)| Persisted::new(broker, &partition, t, end))
                    .into_iter()
                    .collect(),
            )),
            Err(e) => {
                tracing::warn!(topic, partition = index, error = %e.message, "cannot write transaction marker");
                pending.push((e.code, Vec::new()));
            }
        }
    }
    let mut codes = Vec::with_capacity(pending.len());
    for (code, tickets) in pending {
        codes.push(if code == ErrorCode::None && !durable(tickets).await {
            ErrorCode::NotEnoughReplicasAfterAppend
        } else {
            code
        });
    }
    broker.notify_visible();
    codes
}

fn allocator(broker: &Broker) -> impl FnMut() -> Result<i64, ErrorCode> + '_ {
    move || {
        broker.allocate_producer_id().map_err(|e| {
            tracing::error!(error = %e, "could not reserve producer ids");
            ErrorCode::KafkaStorageError
        })
    }
}

/// PRODUCER_FENCED as versions before `since` know it: INVALID_PRODUCER_EPOCH (KIP-588).
pub fn fenced_for(code: ErrorCode, version: i16, since: i16) -> ErrorCode {
    if code == ErrorCode::ProducerFenced && version < since {
        ErrorCode::InvalidProducerEpoch
    } else {
        code
    }
}
