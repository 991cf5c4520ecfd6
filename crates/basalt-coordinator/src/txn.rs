//! The transaction coordinator as a pure state machine: one [`Txn`] per transactional id, the
//! rules of KIP-98 for moving it between states, and the epoch rules that fence old producers.
//!
//! The caller (the broker) persists each changed [`Txn`] as it is returned (its JSON is the
//! value of the transactional id's record in `__transaction_state`), writes the transaction
//! markers an [`EndPlan`] lists, and then calls [`Transactions::complete`]. Nothing here does
//! I/O or reads a clock.
//!
//! States: `Empty` → `Ongoing` (first AddPartitionsToTxn / AddOffsetsToTxn) → `PrepareCommit` or
//! `PrepareAbort` (EndTxn, a timeout, or a new producer fencing the old one) → `CompleteCommit`
//! or `CompleteAbort` (markers written) → `Ongoing` again with the next transaction.
//!
//! # Invariants
//! - `TXN-1`: a transaction's partitions and pending offsets are only added while it is
//!   `Ongoing` and only by its current producer id and epoch; anything else is refused and
//!   changes nothing.
//! - `TXN-2`: the producer epoch of a transactional id only grows (or the id moves to a new
//!   producer id at epoch 0 when the epoch is exhausted). Fencing (a new InitProducerId while a
//!   transaction is open, or a timeout) bumps it before the abort markers are written, so the
//!   markers and every later request carry an epoch the fenced producer no longer has.
//! - `TXN-3`: an EndTxn moves a transaction out of `Ongoing` only once; a retried EndTxn of the
//!   same outcome is answered from the completed state and never ends a later transaction.
//!   Under transaction version 2 (KIP-890) every transaction ends with an epoch bump, so a late
//!   EndTxn carries an epoch older than any later transaction's and is refused.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use basalt_protocol::ErrorCode;
use serde::{Deserialize, Serialize};

use crate::offsets::CommittedOffset;

/// Settings of the transaction coordinator, under Kafka's broker config names.
#[derive(Debug, Clone)]
pub struct TxnConfig {
    /// `transaction.max.timeout.ms`: the longest `transaction.timeout.ms` a producer may ask for.
    pub max_timeout_ms: i32,
    /// `transactional.id.expiration.ms`: how long an idle transactional id is remembered.
    pub id_expiration_ms: i64,
}

impl Default for TxnConfig {
    fn default() -> Self {
        TxnConfig {
            max_timeout_ms: 900_000,
            id_expiration_ms: 7 * 24 * 60 * 60 * 1000,
        }
    }
}

/// The state of a transactional id, with Kafka's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnState {
    /// No transaction yet for the current producer epoch.
    Empty,
    /// A transaction is open.
    Ongoing,
    /// Committing: the decision is durable, markers are being written.
    PrepareCommit,
    /// Aborting: the decision is durable, markers are being written.
    PrepareAbort,
    /// The last transaction committed.
    CompleteCommit,
    /// The last transaction aborted.
    CompleteAbort,
}

impl TxnState {
    /// Kafka's name of the state, as DescribeTransactions and ListTransactions report it.
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
        }
    }

    /// Parses Kafka's name of a state.
    pub fn from_name(name: &str) -> Option<TxnState> {
        [
            TxnState::Empty,
            TxnState::Ongoing,
            TxnState::PrepareCommit,
            TxnState::PrepareAbort,
            TxnState::CompleteCommit,
            TxnState::CompleteAbort,
        ]
        .into_iter()
        .find(|s| s.name() == name)
    }

    fn is_prepare(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }
}

/// One transactional id and its current transaction, exactly as persisted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Txn {
    /// The transactional id.
    pub id: String,
    /// The producer id.
    pub producer_id: i64,
    /// The current producer epoch.
    pub producer_epoch: i16,
    /// The producer id before the last one (after an epoch exhaustion), or -1.
    pub previous_producer_id: i64,
    /// The epoch the client held before the last transaction-ending bump (transaction version
    /// 2), or -1: a retried EndTxn carries it.
    pub last_producer_epoch: i16,
    /// `transaction.timeout.ms` of the producer.
    pub timeout_ms: i32,
    /// The state.
    pub state: TxnState,
    /// Partitions written in the current transaction.
    pub partitions: BTreeSet<(String, i32)>,
    /// Groups whose offsets the transaction commits (AddOffsetsToTxn), with the offsets sent so
    /// far (TxnOffsetCommit), applied to the groups only on commit. Persisted as lists of
    /// `[topic, partition, offset]` (JSON map keys must be strings).
    #[serde(with = "group_offsets")]
    pub groups: BTreeMap<String, BTreeMap<(String, i32), CommittedOffset>>,
    /// When the current transaction started (its first partition or group), or -1.
    pub start_ms: i64,
    /// When the state last changed.
    pub update_ms: i64,
    /// Whether the current transaction uses transaction version 2 (ended by EndTxn v5+).
    #[serde(default)]
    pub tv2: bool,
}

/// The JSON form of [`Txn::groups`]: group → `[[topic, partition, offset], ...]`.
mod group_offsets {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::CommittedOffset;

    type Groups = BTreeMap<String, BTreeMap<(String, i32), CommittedOffset>>;

    pub fn serialize<S: Serializer>(groups: &Groups, s: S) -> Result<S::Ok, S::Error> {
        let lists: BTreeMap<&String, Vec<(&String, i32, &CommittedOffset)>> = groups
            .iter()
            .map(|(g, offsets)| {
                let list = offsets.iter().map(|((t, p), o)| (t, *p, o)).collect();
                (g, list)
            })
            .collect();
        lists.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Groups, D::Error> {
        let lists: BTreeMap<String, Vec<(String, i32, CommittedOffset)>> =
            BTreeMap::deserialize(d)?;
        Ok(lists
            .into_iter()
            .map(|(g, list)| (g, list.into_iter().map(|(t, p, o)| ((t, p), o)).collect()))
            .collect())
    }
}

/// Offsets of one group by topic and partition, as a transaction commits them.
pub type PartitionOffsets = Vec<(String, i32, CommittedOffset)>;

/// The markers to write to end a transaction, then [`Transactions::complete`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndPlan {
    /// The transactional id.
    pub id: String,
    /// Producer id of the markers.
    pub producer_id: i64,
    /// Producer epoch of the markers.
    pub producer_epoch: i16,
    /// Commit (true) or abort.
    pub commit: bool,
    /// Partitions that get a marker.
    pub partitions: Vec<(String, i32)>,
    /// Groups the transaction commits offsets for (AddOffsetsToTxn): their partitions of
    /// `__consumer_offsets` get the marker too, which commits or drops the offsets staged there.
    pub groups: Vec<String>,
    /// Offsets to commit to each group, as transactions persisted by earlier versions kept them
    /// with the transaction (empty for an abort, and for every transaction this version opens).
    pub offsets: Vec<(String, PartitionOffsets)>,
}

/// What an InitProducerId gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitOutcome {
    /// The producer id and epoch to use.
    Ready {
        /// Producer id.
        producer_id: i64,
        /// Producer epoch.
        producer_epoch: i16,
    },
    /// An open transaction is being aborted first (CONCURRENT_TRANSACTIONS: retry); the plan
    /// is the abort to carry out.
    Fencing(EndPlan),
}

/// What an EndTxn gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndOutcome {
    /// Write the markers, then complete.
    Plan(EndPlan),
    /// A retry of the transaction that just ended this way: nothing to do.
    AlreadyDone,
}

/// Every transactional id this coordinator knows.
#[derive(Debug, Default)]
pub struct Transactions {
    txns: HashMap<String, Txn>,
    /// Producer id → transactional id.
    by_producer: HashMap<i64, String>,
}

/// Highest epoch handed out; one below it is kept for the fencing bump.
const MAX_EPOCH: i16 = i16::MAX - 1;

impl Transactions {
    /// The transaction of `id`.
    pub fn get(&self, id: &str) -> Option<&Txn> {
        self.txns.get(id)
    }

    /// The transaction of a producer id.
    pub fn by_producer(&self, producer_id: i64) -> Option<&Txn> {
        self.by_producer
            .get(&producer_id)
            .and_then(|id| self.txns.get(id))
    }

    /// Every transaction, ordered by id.
    pub fn all(&self) -> Vec<&Txn> {
        let mut v: Vec<&Txn> = self.txns.values().collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// Number of transactional ids.
    pub fn len(&self) -> usize {
        self.txns.len()
    }

    /// Whether no transactional id is known.
    pub fn is_empty(&self) -> bool {
        self.txns.is_empty()
    }

    fn insert(&mut self, txn: Txn) -> Txn {
        if let Some(old) = self.txns.get(&txn.id)
            && old.producer_id != txn.producer_id
        {
            self.by_producer.remove(&old.producer_id);
        }
        self.by_producer.insert(txn.producer_id, txn.id.clone());
        self.txns.insert(txn.id.clone(), txn.clone());
        txn
    }

    /// Forgets every transactional id `keep` refuses (its state is about to be replayed again).
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.txns.retain(|id, _| keep(id));
        let txns = &self.txns;
        self.by_producer.retain(|_, id| txns.contains_key(id));
    }

    /// Replays a persisted record: the transaction's state, or its removal (`None`).
    pub fn apply(&mut self, id: &str, value: Option<Txn>) {
        match value {
            Some(t) => {
                self.insert(t);
            }
            None => {
                if let Some(old) = self.txns.remove(id) {
                    self.by_producer.remove(&old.producer_id);
                }
            }
        }
    }

    /// InitProducerId with a transactional id. `allocate` reserves a new producer id. Returns
    /// the outcome and the changed transaction to persist.
    #[allow(clippy::too_many_arguments)]
    pub fn init_producer_id(
        &mut self,
        config: &TxnConfig,
        id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        now_ms: i64,
        allocate: &mut dyn FnMut() -> Result<i64, ErrorCode>,
    ) -> Result<(InitOutcome, Txn), ErrorCode> {
        if id.is_empty() {
            return Err(ErrorCode::InvalidRequest);
        }
        if timeout_ms <= 0 || timeout_ms > config.max_timeout_ms {
            return Err(ErrorCode::InvalidTransactionTimeout);
        }
        let Some(current) = self.txns.get(id).cloned() else {
            if expected.is_some() {
                // KIP-360: the producer asks to bump an id this coordinator never gave out.
                return Err(ErrorCode::InvalidProducerIdMapping);
            }
            let txn = Txn {
                id: id.to_owned(),
                producer_id: allocate()?,
                producer_epoch: 0,
                previous_producer_id: -1,
                last_producer_epoch: -1,
                timeout_ms,
                state: TxnState::Empty,
                partitions: BTreeSet::new(),
                groups: BTreeMap::new(),
                start_ms: -1,
                update_ms: now_ms,
                tv2: false,
            };
            let txn = self.insert(txn);
            return Ok((
                InitOutcome::Ready {
                    producer_id: txn.producer_id,
                    producer_epoch: txn.producer_epoch,
                },
                txn,
            ));
        };
        if current.state.is_prepare() {
            return Err(ErrorCode::ConcurrentTransactions);
        }
        if let Some((pid, epoch)) = expected {
            let is_current = pid == current.producer_id && epoch == current.producer_epoch;
            // A retry after the id moved to a new producer id: answer with what was given.
            let is_retry = pid == current.previous_producer_id
                && current.producer_epoch == 0
                && current.state != TxnState::Ongoing;
            if is_retry {
                return Ok((
                    InitOutcome::Ready {
                        producer_id: current.producer_id,
                        producer_epoch: current.producer_epoch,
                    },
                    current,
                ));
            }
            if !is_current {
                return Err(ErrorCode::ProducerFenced);
            }
        }
        let mut txn = current;
        txn.timeout_ms = timeout_ms;
        txn.update_ms = now_ms;
        if txn.state == TxnState::Ongoing {
            // TXN-2: fence the producer of the open transaction, then abort it.
            bump_epoch(&mut txn, allocate)?;
            let plan = prepare(&mut txn, false, now_ms);
            let txn = self.insert(txn);
            return Ok((InitOutcome::Fencing(plan), txn));
        }
        bump_epoch(&mut txn, allocate)?;
        txn.state = TxnState::Empty;
        txn.last_producer_epoch = -1;
        txn.partitions.clear();
        txn.groups.clear();
        txn.start_ms = -1;
        let txn = self.insert(txn);
        Ok((
            InitOutcome::Ready {
                producer_id: txn.producer_id,
                producer_epoch: txn.producer_epoch,
            },
            txn,
        ))
    }

    /// Checks that `producer_id` at `epoch` owns `id`'s current epoch.
    fn owned(&self, id: &str, producer_id: i64, epoch: i16) -> Result<&Txn, ErrorCode> {
        let txn = self
            .txns
            .get(id)
            .ok_or(ErrorCode::InvalidProducerIdMapping)?;
        if txn.producer_id != producer_id {
            return Err(ErrorCode::InvalidProducerIdMapping);
        }
        if txn.producer_epoch != epoch {
            return Err(ErrorCode::ProducerFenced);
        }
        Ok(txn)
    }

    /// AddPartitionsToTxn (and AddOffsetsToTxn, with a group): adds partitions and groups to
    /// the open transaction, opening one if there is none (`TXN-1`). Returns the transaction to
    /// persist, or `None` when nothing changed.
    pub fn add(
        &mut self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
        group: Option<&str>,
        now_ms: i64,
    ) -> Result<Option<Txn>, ErrorCode> {
        let txn = self.owned(id, producer_id, epoch)?;
        if txn.state.is_prepare() {
            return Err(ErrorCode::ConcurrentTransactions);
        }
        let new_partitions = partitions.iter().any(|p| !txn.partitions.contains(p));
        let new_group = group.is_some_and(|g| !txn.groups.contains_key(g));
        if txn.state == TxnState::Ongoing && !new_partitions && !new_group {
            return Ok(None);
        }
        let mut txn = txn.clone();
        if txn.state != TxnState::Ongoing {
            txn.state = TxnState::Ongoing;
            txn.start_ms = now_ms;
            txn.partitions.clear();
            txn.groups.clear();
            txn.tv2 = false;
        }
        txn.partitions.extend(partitions.iter().cloned());
        if let Some(g) = group {
            txn.groups.entry(g.to_owned()).or_default();
        }
        txn.update_ms = now_ms;
        Ok(Some(self.insert(txn)))
    }

    /// Whether a transactional produce of `producer_id` at `epoch` to `topic`-`partition` is
    /// part of its open transaction: Ok, or the error for the produce (an unknown or older
    /// epoch is INVALID_PRODUCER_EPOCH, a partition not added INVALID_TXN_STATE).
    pub fn verify_produce(
        &self,
        producer_id: i64,
        epoch: i16,
        topic: &str,
        partition: i32,
    ) -> Result<(), ErrorCode> {
        let txn = self
            .by_producer(producer_id)
            .ok_or(ErrorCode::InvalidProducerIdMapping)?;
        if txn.producer_epoch != epoch {
            return Err(ErrorCode::InvalidProducerEpoch);
        }
        if txn.state != TxnState::Ongoing
            || !txn.partitions.contains(&(topic.to_owned(), partition))
        {
            return Err(ErrorCode::InvalidTxnState);
        }
        Ok(())
    }

    /// Whether producer `producer_id` at `epoch` has an open transaction that added a group
    /// `matches` accepts (TxnOffsetCommit at the group's coordinator): Ok, or the error as
    /// [`Transactions::verify_produce`] gives it.
    pub fn verify_offsets(
        &self,
        producer_id: i64,
        epoch: i16,
        matches: impl Fn(&str) -> bool,
    ) -> Result<(), ErrorCode> {
        let txn = self
            .by_producer(producer_id)
            .ok_or(ErrorCode::InvalidProducerIdMapping)?;
        if txn.producer_epoch != epoch {
            return Err(ErrorCode::InvalidProducerEpoch);
        }
        if txn.state != TxnState::Ongoing || !txn.groups.keys().any(|g| matches(g)) {
            return Err(ErrorCode::InvalidTxnState);
        }
        Ok(())
    }

    /// EndTxn: decides the open transaction's outcome (`TXN-3`). `tv2` is true for EndTxn v5+,
    /// where the epoch is bumped as the transaction ends and the client continues with the
    /// bumped epoch. Returns the outcome and the transaction to persist (when it changed).
    #[allow(clippy::too_many_arguments)]
    pub fn end(
        &mut self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        tv2: bool,
        now_ms: i64,
        allocate: &mut dyn FnMut() -> Result<i64, ErrorCode>,
    ) -> Result<(EndOutcome, Option<Txn>), ErrorCode> {
        let txn = self
            .txns
            .get(id)
            .ok_or(ErrorCode::InvalidProducerIdMapping)?;
        let done_state = if commit {
            TxnState::CompleteCommit
        } else {
            TxnState::CompleteAbort
        };
        let prepare_state = if commit {
            TxnState::PrepareCommit
        } else {
            TxnState::PrepareAbort
        };
        // A retry under transaction version 2 carries the epoch from before the bump.
        let tv2_retry = tv2
            && txn.last_producer_epoch >= 0
            && epoch == txn.last_producer_epoch
            && (producer_id == txn.producer_id || producer_id == txn.previous_producer_id);
        if tv2_retry {
            return match txn.state {
                s if s == done_state => Ok((EndOutcome::AlreadyDone, None)),
                s if s == prepare_state => Err(ErrorCode::ConcurrentTransactions),
                _ => Err(ErrorCode::ProducerFenced),
            };
        }
        if txn.producer_id != producer_id {
            return Err(ErrorCode::InvalidProducerIdMapping);
        }
        if txn.producer_epoch != epoch {
            return Err(ErrorCode::ProducerFenced);
        }
        match txn.state {
            TxnState::Ongoing => {}
            s if s == done_state && !tv2 => return Ok((EndOutcome::AlreadyDone, None)),
            s if s.is_prepare() => {
                return Err(if s == prepare_state {
                    ErrorCode::ConcurrentTransactions
                } else {
                    ErrorCode::InvalidTxnState
                });
            }
            TxnState::Empty if tv2 => {
                // KIP-890: ending an empty transaction still bumps the epoch.
                let mut txn = txn.clone();
                let before = txn.producer_epoch;
                bump_epoch(&mut txn, allocate)?;
                txn.last_producer_epoch = before;
                txn.state = done_state;
                txn.update_ms = now_ms;
                let txn = self.insert(txn);
                return Ok((EndOutcome::AlreadyDone, Some(txn)));
            }
            _ => return Err(ErrorCode::InvalidTxnState),
        }
        let mut txn = txn.clone();
        if tv2 {
            let before = txn.producer_epoch;
            bump_epoch(&mut txn, allocate)?;
            txn.last_producer_epoch = before;
            txn.tv2 = true;
        }
        let plan = prepare(&mut txn, commit, now_ms);
        let txn = self.insert(txn);
        Ok((EndOutcome::Plan(plan), Some(txn)))
    }

    /// Marks the transaction of `plan` complete once its markers are written; the transaction
    /// to persist, or `None` if it moved on meanwhile.
    pub fn complete(&mut self, plan: &EndPlan, now_ms: i64) -> Option<Txn> {
        let txn = self.txns.get(&plan.id)?;
        let expected = if plan.commit {
            TxnState::PrepareCommit
        } else {
            TxnState::PrepareAbort
        };
        if txn.state != expected || txn.producer_id != plan.producer_id {
            return None;
        }
        let mut txn = txn.clone();
        txn.state = if plan.commit {
            TxnState::CompleteCommit
        } else {
            TxnState::CompleteAbort
        };
        txn.partitions.clear();
        txn.groups.clear();
        txn.start_ms = -1;
        txn.update_ms = now_ms;
        Some(self.insert(txn))
    }

    /// The transactions left in a prepare state (after a restart): their plans, to finish.
    pub fn pending_plans(&self) -> Vec<EndPlan> {
        let mut plans: Vec<EndPlan> = self
            .txns
            .values()
            .filter(|t| t.state.is_prepare())
            .map(|t| plan_of(t, t.state == TxnState::PrepareCommit))
            .collect();
        plans.sort_by(|a, b| a.id.cmp(&b.id));
        plans
    }

    /// Aborts open transactions past their timeout, bumping their epoch to fence the producer
    /// (`TXN-2`), and forgets ids idle past `transactional.id.expiration.ms`. Returns the
    /// aborts to carry out and the changes to persist (`(id, None)` removes an id).
    pub fn tick(
        &mut self,
        config: &TxnConfig,
        now_ms: i64,
        allocate: &mut dyn FnMut() -> Result<i64, ErrorCode>,
    ) -> (Vec<EndPlan>, Vec<(String, Option<Txn>)>) {
        let mut plans = Vec::new();
        let mut changes = Vec::new();
        let mut ids: Vec<String> = self.txns.keys().cloned().collect();
        ids.sort();
        for id in ids {
            let Some(txn) = self.txns.get(&id) else {
                continue;
            };
            if txn.state == TxnState::Ongoing
                && now_ms.saturating_sub(txn.start_ms) > i64::from(txn.timeout_ms)
            {
                let mut txn = txn.clone();
                if bump_epoch(&mut txn, allocate).is_err() {
                    continue;
                }
                let plan = prepare(&mut txn, false, now_ms);
                let txn = self.insert(txn);
                plans.push(plan);
                changes.push((id, Some(txn)));
            } else if matches!(
                txn.state,
                TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
            ) && now_ms.saturating_sub(txn.update_ms) > config.id_expiration_ms
            {
                self.apply(&id, None);
                changes.push((id, None));
            }
        }
        (plans, changes)
    }

    /// Offsets pending in open transactions for `group`: (topic, partition) pairs, for
    /// OffsetFetch's `require_stable`.
    pub fn pending_offsets(&self, group: &str) -> BTreeSet<(String, i32)> {
        self.txns
            .values()
            .filter(|t| t.state != TxnState::CompleteCommit && t.state != TxnState::CompleteAbort)
            .filter_map(|t| t.groups.get(group))
            .flat_map(|o| o.keys().cloned())
            .collect()
    }
}

/// Moves `txn` to its prepare state and returns the markers to write.
fn prepare(txn: &mut Txn, commit: bool, now_ms: i64) -> EndPlan {
    txn.state = if commit {
        TxnState::PrepareCommit
    } else {
        TxnState::PrepareAbort
    };
    txn.update_ms = now_ms;
    plan_of(txn, commit)
}

fn plan_of(txn: &Txn, commit: bool) -> EndPlan {
    EndPlan {
        id: txn.id.clone(),
        producer_id: txn.producer_id,
        producer_epoch: txn.producer_epoch,
        commit,
        partitions: txn.partitions.iter().cloned().collect(),
        groups: txn.groups.keys().cloned().collect(),
        offsets: if commit {
            txn.groups
                .iter()
                .filter(|(_, o)| !o.is_empty())
                .map(|(g, o)| {
                    (
                        g.clone(),
                        o.iter()
                            .map(|((t, p), v)| (t.clone(), *p, v.clone()))
                            .collect(),
                    )
                })
                .collect()
        } else {
            Vec::new()
        },
    }
}

/// Bumps the producer epoch, moving to a new producer id at epoch 0 when it is exhausted
/// (`TXN-2`).
fn bump_epoch(
    txn: &mut Txn,
    allocate: &mut dyn FnMut() -> Result<i64, ErrorCode>,
) -> Result<(), ErrorCode> {
    if txn.producer_epoch >= MAX_EPOCH {
        txn.previous_producer_id = txn.producer_id;
        txn.producer_id = allocate()?;
        txn.producer_epoch = 0;
    } else {
        txn.producer_epoch += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alloc() -> impl FnMut() -> Result<i64, ErrorCode> {
        let mut next = 1000;
        move || {
            next += 1;
            Ok(next)
        }
    }

    fn ready(o: &InitOutcome) -> (i64, i16) {
        match o {
            InitOutcome::Ready {
                producer_id,
                producer_epoch,
            } => (*producer_id, *producer_epoch),
            other => panic!("{other:?}"),
        }
    }

    fn p(t: &str, i: i32) -> (String, i32) {
        (t.to_owned(), i)
    }

    #[test]
    fn a_transaction_with_offsets_round_trips_through_json() {
        let mut t = Transactions::default();
        let c = TxnConfig::default();
        let (o, _) = t
            .init_producer_id(&c, "a", 60_000, None, 0, &mut alloc())
            .unwrap();
        let (pid, epoch) = ready(&o);
        let mut txn = t.get("a").unwrap().clone();
        let offset = CommittedOffset {
            offset: 42,
            leader_epoch: 3,
            metadata: Some("m".into()),
            commit_timestamp: 7,
        };
        txn.groups.insert(
            "g".into(),
            BTreeMap::from([(p("in", 0), offset.clone()), (p("in", 2), offset)]),
        );
        txn.partitions.insert(p("out", 1));
        assert_eq!((txn.producer_id, txn.producer_epoch), (pid, epoch));
        let json = serde_json::to_vec(&txn).expect("a transaction with offsets serializes");
        let back: Txn = serde_json::from_slice(&json).unwrap();
        assert_eq!(back, txn);
    }

    #[test]
    fn timeout_above_the_maximum_is_refused() {
        let mut t = Transactions::default();
        let c = TxnConfig::default();
        let err = t
            .init_producer_id(&c, "a", 900_001, None, 0, &mut alloc())
            .unwrap_err();
        assert_eq!(err, ErrorCode::InvalidTransactionTimeout);
        assert!(t.is_empty());
    }

    #[test]
    fn commit_cycle_and_retry() {
        let mut t = Transactions::default();
        let c = TxnConfig::default();
        let mut a = alloc();
        let (o, _) = t
            .init_producer_id(&c, "a", 60_000, None, 0, &mut a)
            .unwrap();
        let (pid, epoch) = ready(&o);
        assert_eq!(epoch, 0);
        assert!(
            t.add("a", pid, epoch, &[p("x", 0)], None, 1)
                .unwrap()
                .is_some()
        );
        assert!(
            t.add("a", pid, epoch, &[p("x", 0)], None, 2)
                .unwrap()
                .is_none()
        );
        assert_eq!(t.verify_produce(pid, epoch, "x", 0), Ok(()));
        assert_eq!(
            t.verify_produce(pid, epoch, "x", 1),
            Err(ErrorCode::InvalidTxnState)
        );
        let (out, changed) = t.end("a", pid, epoch, true, false, 3, &mut a).unwrap();
        let EndOutcome::Plan(plan) = out else {
            panic!()
        };
        assert_eq!(plan.partitions, vec![p("x", 0)]);
        assert_eq!(changed.unwrap().state, TxnState::PrepareCommit);
        // While markers are written, the producer must wait.
        assert_eq!(
            t.add("a", pid, epoch, &[p("x", 1)], None, 4),
            Err(ErrorCode::ConcurrentTransactions)
        );
        assert_eq!(
            t.complete(&plan, 5).unwrap().state,
            TxnState::CompleteCommit
        );
        // A retried commit is answered; an abort of the finished commit is not.
        assert_eq!(
            t.end("a", pid, epoch, true, false, 6, &mut a).unwrap().0,
            EndOutcome::AlreadyDone
        );
        assert_eq!(
            t.end("a", pid, epoch, false, false, 6, &mut a).unwrap_err(),
            ErrorCode::InvalidTxnState
        );
        // Produce after the end is refused until the partition is added again.
        assert_eq!(
            t.verify_produce(pid, epoch, "x", 0),
            Err(ErrorCode::InvalidTxnState)
        );
    }

    #[test]
    fn a_new_producer_fences_the_open_transaction() {
        let mut t = Transactions::default();
        let c = TxnConfig::default();
        let mut a = alloc();
        let (o, _) = t
            .init_producer_id(&c, "a", 60_000, None, 0, &mut a)
            .unwrap();
        let (pid, e0) = ready(&o);
        t.add("a", pid, e0, &[p("x", 0)], None, 1).unwrap();
        let (o, txn) = t
            .init_producer_id(&c, "a", 60_000, None, 2, &mut a)
            .unwrap();
        let InitOutcome::Fencing(plan) = o else {
            panic!()
        };
        assert!(!plan.commit);
        assert_eq!(plan.producer_epoch, e0 + 1);
        assert_eq!(txn.state, TxnState::PrepareAbort);
        // The old producer is fenced everywhere.
        assert_eq!(
            t.end("a", pid, e0, true, false, 3, &mut a).unwrap_err(),
            ErrorCode::ProducerFenced
        );
        assert_eq!(
            t.init_producer_id(&c, "a", 60_000, None, 3, &mut a)
                .unwrap_err(),
            ErrorCode::ConcurrentTransactions
        );
        t.complete(&plan, 4).unwrap();
        let (o, _) = t
            .init_producer_id(&c, "a", 60_000, None, 5, &mut a)
            .unwrap();
        assert_eq!(ready(&o), (pid, e0 + 2));
        assert_eq!(
            t.verify_produce(pid, e0, "x", 0),
            Err(ErrorCode::InvalidProducerEpoch)
        );
    }

    #[test]
    fn timed_out_transactions_are_aborted_with_a_bumped_epoch() {
        let mut t = Transactions::default();
        let c = TxnConfig::default();
        let mut a = alloc();
        let (o, _) = t.init_producer_id(&c, "a", 1_000, None, 0, &mut a).unwrap();
        let (pid, e) = ready(&o);
        t.add("a", pid, e, &[p("x", 0)], None, 10).unwrap();
        assert!(t.tick(&c, 1_000, &mut a).0.is_empty());
        let (plans, changes) = t.tick(&c, 1_011, &mut a);
        assert_eq!(plans.len(), 1);
        assert_eq!(plans[0].producer_epoch, e + 1);
        assert_eq!(changes[0].1.as_ref().unwrap().state, TxnState::PrepareAbort);
        t.complete(&plans[0], 1_012);
        assert_eq!(
            t.end("a", pid, e, true, false, 1_013, &mut a).unwrap_err(),
            ErrorCode::ProducerFenced
        );
    }

    #[test]
    fn tv2_bumps_the_epoch_per_transaction_and_refuses_late_ends() {
        let mut t = Transactions::default();
        let c = TxnConfig::default();
        let mut a = alloc();
        let (o, _) = t
            .init_producer_id(&c, "a", 60_000, None, 0, &mut a)
            .unwrap();
        let (pid, e) = ready(&o);
        t.add("a", pid, e, &[p("x", 0)], None, 1).unwrap();
        let (out, txn) = t.end("a", pid, e, true, true, 2, &mut a).unwrap();
        let EndOutcome::Plan(plan) = out else {
            panic!()
        };
        assert_eq!(plan.producer_epoch, e + 1);
        assert_eq!(txn.unwrap().producer_epoch, e + 1);
        t.complete(&plan, 3);
        // The next transaction runs at e + 1.
        t.add("a", pid, e + 1, &[p("x", 0)], None, 4).unwrap();
        // A late retry of the first EndTxn (epoch e) must not end it.
        assert_eq!(
            t.end("a", pid, e, true, true, 5, &mut a).unwrap_err(),
            ErrorCode::ProducerFenced
        );
        assert_eq!(t.get("a").unwrap().state, TxnState::Ongoing);
    }

    #[test]
    fn offsets_need_add_offsets_first() {
        let mut t = Transactions::default();
        let c = TxnConfig::default();
        let mut a = alloc();
        let (o, _) = t
            .init_producer_id(&c, "a", 60_000, None, 0, &mut a)
            .unwrap();
        let (pid, e) = ready(&o);
        assert_eq!(
            t.verify_offsets(pid, e, |g| g == "g").unwrap_err(),
            ErrorCode::InvalidTxnState
        );
        t.add("a", pid, e, &[], Some("g"), 1).unwrap();
        t.verify_offsets(pid, e, |g| g == "g").unwrap();
        assert_eq!(
            t.verify_offsets(pid, e, |g| g == "other").unwrap_err(),
            ErrorCode::InvalidTxnState
        );
        assert_eq!(
            t.verify_offsets(pid, e + 1, |g| g == "g").unwrap_err(),
            ErrorCode::InvalidProducerEpoch
        );
        let (EndOutcome::Plan(plan), _) = t.end("a", pid, e, true, false, 3, &mut a).unwrap()
        else {
            panic!()
        };
        // The group gets the marker; the offsets wait with the group, not here.
        assert_eq!(plan.groups, vec!["g".to_owned()]);
        assert!(plan.offsets.is_empty());
        t.complete(&plan, 4);
        assert_eq!(
            t.verify_offsets(pid, e, |g| g == "g").unwrap_err(),
            ErrorCode::InvalidTxnState
        );
    }

    #[test]
    fn offsets_persisted_with_the_transaction_are_still_committed() {
        let mut t = Transactions::default();
        let c = TxnConfig::default();
        let mut a = alloc();
        let (o, _) = t
            .init_producer_id(&c, "a", 60_000, None, 0, &mut a)
            .unwrap();
        let (pid, e) = ready(&o);
        let mut txn = t.add("a", pid, e, &[], Some("g"), 1).unwrap().unwrap();
        let off = CommittedOffset {
            offset: 5,
            leader_epoch: -1,
            metadata: None,
            commit_timestamp: 0,
        };
        // As an earlier version persisted a TxnOffsetCommit.
        txn.groups
            .get_mut("g")
            .unwrap()
            .insert(("x".into(), 0), off.clone());
        t.apply("a", Some(txn));
        assert_eq!(t.pending_offsets("g").len(), 1);
        let (EndOutcome::Plan(plan), _) = t.end("a", pid, e, true, false, 3, &mut a).unwrap()
        else {
            panic!()
        };
        assert_eq!(plan.offsets, vec![("g".into(), vec![("x".into(), 0, off)])]);
        t.complete(&plan, 4);
        assert!(t.pending_offsets("g").is_empty());
    }
}
