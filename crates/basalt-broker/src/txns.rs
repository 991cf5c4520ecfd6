//! The transaction coordinator on this node: runs the pure state machine of
//! `basalt-coordinator::txn`, persists every change of a transactional id in the internal
//! `__transaction_state` topic and replays it at start, writes the transaction markers, commits
//! the offsets of committed transactions to their groups, and aborts transactions that time out.
//!
//! Ending a transaction: the prepare state (the decision) is made durable first; then a marker is
//! appended to every partition of the transaction and the transaction's offsets are committed to
//! their groups; once all of that is durable the complete state is appended. A restart between
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
//! - `TC-4`: no lock is held across an `.await` (`BRK-3`); the state lock is never taken while a
//!   partition's producer lock is held by this module (the produce path takes them the other
//!   way round, producer lock first).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use basalt_coordinator::txn::{EndOutcome, EndPlan, InitOutcome, Transactions, Txn, TxnConfig};
use basalt_coordinator::{CommittedOffset, Effects, Group, Record};
use basalt_protocol::ErrorCode;
use basalt_record::{BatchBuilder, ControlType};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::groups::{Durable, Persisted, durable, partition_for, replay};
use crate::{Broker, Topic, now_ms};

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
    /// An empty coordinator.
    pub fn new(config: TxnConfig, partitions: i32, segment_bytes: i64) -> Self {
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

    /// TxnOffsetCommit: records the offsets the open transaction commits for `group`, durably.
    pub async fn add_offsets(
        &self,
        broker: &Broker,
        id: &str,
        producer_id: i64,
        epoch: i16,
        group: &str,
        offsets: Vec<(String, i32, CommittedOffset)>,
    ) -> Result<(), ErrorCode> {
        let tickets = {
            let mut state = self.state.lock();
            let txn = state.add_offsets(id, producer_id, epoch, group, offsets, now_ms())?;
            self.append(broker, &[(txn.id.clone(), Some(txn))])
        };
        if durable(tickets).await {
            Ok(())
        } else {
            Err(ErrorCode::CoordinatorNotAvailable)
        }
    }

    /// Whether a transactional batch of `producer_id` at `epoch` may go to `topic`-`partition`
    /// (`PART-4`).
    pub fn verify_produce(
        &self,
        producer_id: i64,
        epoch: i16,
        topic: &str,
        partition: i32,
    ) -> Result<(), ErrorCode> {
        self.state
            .lock()
            .verify_produce(producer_id, epoch, topic, partition)
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
        let now = now_ms();
        let control = if plan.commit {
            ControlType::Commit
        } else {
            ControlType::Abort
        };
        let mut tickets: Durable = Vec::new();
        let mut ok = true;
        for (topic, index) in &plan.partitions {
            // A partition whose topic was deleted meanwhile has nothing left to mark.
            let Some(partition) = broker.partition(topic, *index) else {
                continue;
            };
            // A partition another node leads took no batch of this transaction: its leader
            // verifies transactional batches with its own coordinator, which does not know this
            // one (`PART-4`), so there is no marker to write there.
            if broker
                .topic(topic)
                .is_some_and(|t| !t.is_led_by(*index, broker.config().node_id))
            {
                tracing::debug!(txn = %plan.id, topic, partition = index, "no marker for a partition led elsewhere");
                continue;
            }
            match partition.write_marker(plan.producer_id, plan.producer_epoch, control, 0, now) {
                Ok(t) => tickets.extend(t.map(|(t, end)| Persisted::new(&partition, t, end))),
                Err(e) => {
                    tracing::error!(txn = %plan.id, topic, partition = index, error = %e.message, "cannot write transaction marker");
                    ok = false;
                }
            }
        }
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
        if !ok || !durable(tickets).await {
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
            match partition.produce(&b.build(), now, |_| Err(ErrorCode::InvalidTxnState)) {
                Ok(produced) => tickets.extend(
                    produced
                        .durable
                        .map(|t| Persisted::new(partition, t, produced.last_offset + 1)),
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
