//! Group coordination as pure state machines: no I/O, no clock, no async runtime.
//!
//! A [`Group`] is one consumer group of either kind Kafka knows: a *classic* group
//! ([`classic::ClassicGroup`], the JoinGroup/SyncGroup/Heartbeat/LeaveGroup protocol with
//! client-side assignment) or a *consumer* group ([`consumer::ConsumerGroup`], KIP-848's
//! ConsumerGroupHeartbeat with server-side assignment). Both kinds keep committed offsets
//! ([`offsets::Offsets`]).
//!
//! The caller (the broker) owns time and delivery: every operation takes `now_ms`, requests that
//! must wait (a JoinGroup until the rebalance completes, a follower's SyncGroup until the leader's
//! assignment arrives) are parked under a caller-chosen [`Ticket`], and their answers come back
//! later as [`Completion`]s from other operations or from [`Group::tick`]. What must be persisted
//! is returned as [`Record`]s, in the order they must be written.
//!
//! # Invariants
//! - `GRP-1`: every parked ticket is completed exactly once: answered, or failed when its member
//!   is removed or replaced.
//! - `GRP-2`: a generation (classic) or member epoch (consumer) only grows; requests carrying an
//!   older one are refused and never change state.
//! - `GRP-3`: in a consumer group a partition is owned by at most one member at a time: it is
//!   handed to a new owner only after the previous owner has revoked it (or was removed).
//! - `GRP-4`: offsets committed in a transaction are never visible as committed offsets before
//!   the transaction's COMMIT reaches the group; an ABORT drops them. They are persisted as
//!   staged sets (one record per producer) so a restart or a new coordinator keeps them.

pub mod assignor;
pub mod classic;
pub mod consumer;
pub mod offsets;
pub mod record;
pub mod share;
pub mod txn;

use std::collections::BTreeMap;

use basalt_protocol::ErrorCode;
use bytes::Bytes;

pub use classic::ClassicGroup;
pub use consumer::ConsumerGroup;
pub use offsets::{CommittedOffset, Offsets};
pub use record::Record;

/// Identifies a parked request; chosen by the caller, unique among the requests it has parked.
pub type Ticket = u64;

/// Settings of the coordinator, under Kafka's broker config names.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// `group.min.session.timeout.ms`.
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`.
    pub max_session_timeout_ms: i32,
    /// `group.initial.rebalance.delay.ms`: how long a rebalance of an empty group waits for
    /// more members.
    pub initial_rebalance_delay_ms: i64,
    /// `group.max.size`.
    pub max_size: usize,
    /// `offset.metadata.max.bytes`.
    pub offset_metadata_max_bytes: usize,
    /// `offsets.retention.minutes`, in milliseconds.
    pub offsets_retention_ms: i64,
    /// `group.consumer.session.timeout.ms`.
    pub consumer_session_timeout_ms: i32,
    /// `group.consumer.heartbeat.interval.ms`.
    pub consumer_heartbeat_interval_ms: i32,
    /// `group.consumer.max.size`.
    pub consumer_max_size: usize,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            initial_rebalance_delay_ms: 3_000,
            max_size: i32::MAX as usize,
            offset_metadata_max_bytes: 4096,
            offsets_retention_ms: 7 * 24 * 60 * 60 * 1000,
            consumer_session_timeout_ms: 45_000,
            consumer_heartbeat_interval_ms: 5_000,
            consumer_max_size: i32::MAX as usize,
        }
    }
}

/// The answer to a parked request.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// A JoinGroup answer.
    Join(classic::JoinReply),
    /// A SyncGroup answer.
    Sync(classic::SyncReply),
}

/// A parked request's answer, ready to be sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The ticket the request was parked under.
    pub ticket: Ticket,
    /// Its answer.
    pub reply: Reply,
}

/// What an operation produced besides its direct answer.
#[derive(Debug, Default)]
pub struct Effects {
    /// Parked requests to answer now.
    pub completions: Vec<Completion>,
    /// Records to persist, in order.
    pub records: Vec<Record>,
}

impl Effects {
    fn complete(&mut self, ticket: Ticket, reply: Reply) {
        self.completions.push(Completion { ticket, reply });
    }
}

/// The kind of a group, with its membership state.
#[derive(Debug)]
pub enum GroupKind {
    /// A classic group.
    Classic(ClassicGroup),
    /// A KIP-848 consumer group.
    Consumer(ConsumerGroup),
}

/// One group: its membership and its committed offsets.
#[derive(Debug)]
pub struct Group {
    /// The group id.
    pub id: String,
    /// Membership.
    pub kind: GroupKind,
    /// Committed offsets.
    pub offsets: Offsets,
    /// Offsets that open transactions commit (TxnOffsetCommit), by producer id: applied to
    /// `offsets` when the transaction's COMMIT marker reaches this group's partition of
    /// `__consumer_offsets`, dropped on ABORT (`GRP-4`).
    pub pending_txn: BTreeMap<i64, TxnOffsets>,
}

/// The offsets one producer's open transaction commits for a group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TxnOffsets {
    /// The producer epoch that sent them last.
    pub producer_epoch: i16,
    /// The offsets by topic and partition.
    pub offsets: BTreeMap<(String, i32), CommittedOffset>,
}

/// A group's type as ListGroups names it.
pub fn type_name(kind: &GroupKind) -> &'static str {
    match kind {
        GroupKind::Classic(_) => "classic",
        GroupKind::Consumer(_) => "consumer",
    }
}

impl Group {
    /// A new, empty classic group.
    pub fn new_classic(id: &str, now_ms: i64) -> Self {
        Group {
            id: id.to_owned(),
            kind: GroupKind::Classic(ClassicGroup::new(id, now_ms)),
            offsets: Offsets::default(),
            pending_txn: BTreeMap::new(),
        }
    }

    /// A new, empty consumer group.
    pub fn new_consumer(id: &str, now_ms: i64) -> Self {
        Group {
            id: id.to_owned(),
            kind: GroupKind::Consumer(ConsumerGroup::new(id, now_ms)),
            offsets: Offsets::default(),
            pending_txn: BTreeMap::new(),
        }
    }

    /// The state name as DescribeGroups and ListGroups report it.
    pub fn state_name(&self) -> &'static str {
        match &self.kind {
            GroupKind::Classic(g) => g.state().name(),
            GroupKind::Consumer(g) => g.state_name(),
        }
    }

    /// Whether the group has no members.
    pub fn is_empty(&self) -> bool {
        match &self.kind {
            GroupKind::Classic(g) => g.members().is_empty(),
            GroupKind::Consumer(g) => g.members().is_empty(),
        }
    }

    /// The protocol type (`consumer` for consumer groups).
    pub fn protocol_type(&self) -> String {
        match &self.kind {
            GroupKind::Classic(g) => g.protocol_type().unwrap_or_default().to_owned(),
            GroupKind::Consumer(_) => "consumer".to_owned(),
        }
    }

    /// Advances timers: expires members whose session ran out, completes rebalances whose
    /// deadline passed, expires offsets of empty groups past their retention.
    pub fn tick(&mut self, now_ms: i64, config: &GroupConfig, topics: &dyn TopicLookup) -> Effects {
        let mut effects = match &mut self.kind {
            GroupKind::Classic(g) => g.tick(now_ms, config),
            GroupKind::Consumer(g) => g.tick(now_ms, config, topics),
        };
        if self.is_empty() {
            let empty_since = match &self.kind {
                GroupKind::Classic(g) => g.has_protocol().then(|| g.state_timestamp()),
                GroupKind::Consumer(g) => Some(g.state_timestamp()),
            };
            let expired = self
                .offsets
                .expire(now_ms, empty_since, config.offsets_retention_ms);
            for (topic, partition) in expired {
                effects
                    .records
                    .push(Record::offset_tombstone(&self.id, &topic, partition));
            }
        }
        effects
    }

    /// The next time [`Group::tick`] has something to do, if any.
    pub fn next_deadline(&self, config: &GroupConfig) -> Option<i64> {
        match &self.kind {
            GroupKind::Classic(g) => g.next_deadline(),
            GroupKind::Consumer(g) => g.next_deadline(config),
        }
    }

    /// Stages offsets of producer `producer_id`'s open transaction (TxnOffsetCommit); the
    /// record that persists the producer's whole pending set.
    pub fn stage_txn_offsets(
        &mut self,
        producer_id: i64,
        producer_epoch: i16,
        offsets: Vec<(String, i32, CommittedOffset)>,
    ) -> Record {
        let pending = self.pending_txn.entry(producer_id).or_default();
        pending.producer_epoch = producer_epoch;
        for (topic, partition, offset) in offsets {
            pending.offsets.insert((topic, partition), offset);
        }
        Record::txn_offsets(&self.id, producer_id, pending)
    }

    /// Ends producer `producer_id`'s transaction for this group (`GRP-4`): on commit its staged
    /// offsets become committed offsets (stamped `now_ms`), on abort they are dropped. The
    /// records to persist, in order: the commits, then the removal of the staged set; nothing
    /// if the producer staged nothing here.
    pub fn end_txn(&mut self, producer_id: i64, commit: bool, now_ms: i64) -> Vec<Record> {
        let Some(pending) = self.pending_txn.remove(&producer_id) else {
            return Vec::new();
        };
        let mut records = Vec::new();
        if commit {
            for ((topic, partition), offset) in pending.offsets {
                let value = CommittedOffset {
                    commit_timestamp: now_ms,
                    ..offset
                };
                records.push(Record::offset(&self.id, &topic, partition, &value));
                self.offsets.commit(&topic, partition, value);
            }
        }
        records.push(Record::txn_offsets_tombstone(&self.id, producer_id));
        records
    }

    /// Partitions whose offsets an open transaction is committing (OffsetFetch's
    /// `require_stable`).
    pub fn pending_partitions(&self) -> std::collections::BTreeSet<(String, i32)> {
        self.pending_txn
            .values()
            .flat_map(|p| p.offsets.keys().cloned())
            .collect()
    }

    /// The records that persist the staged transactional offsets (for compaction).
    pub fn txn_records(&self) -> Vec<Record> {
        self.pending_txn
            .iter()
            .map(|(pid, p)| Record::txn_offsets(&self.id, *pid, p))
            .collect()
    }

    /// The record that persists this group's membership metadata.
    pub fn metadata_record(&self) -> Record {
        match &self.kind {
            GroupKind::Classic(g) => Record::classic_group(&self.id, g),
            GroupKind::Consumer(g) => Record::consumer_group(&self.id, g),
        }
    }
}

/// What the coordinator needs to know of topics (for consumer groups' server-side assignment).
pub trait TopicLookup {
    /// The id and partition count of topic `name`, if it exists.
    fn topic(&self, name: &str) -> Option<([u8; 16], i32)>;
    /// The name of the topic with this id, if it exists.
    fn topic_name(&self, id: &[u8; 16]) -> Option<String>;
    /// Every topic name (for regex subscriptions).
    fn topic_names(&self) -> Vec<String>;
}

/// A [`TopicLookup`] over a fixed map, for tests and replays.
#[derive(Debug, Default, Clone)]
pub struct StaticTopics(pub BTreeMap<String, ([u8; 16], i32)>);

impl TopicLookup for StaticTopics {
    fn topic(&self, name: &str) -> Option<([u8; 16], i32)> {
        self.0.get(name).copied()
    }
    fn topic_name(&self, id: &[u8; 16]) -> Option<String> {
        self.0
            .iter()
            .find(|(_, (i, _))| i == id)
            .map(|(n, _)| n.clone())
    }
    fn topic_names(&self) -> Vec<String> {
        self.0.keys().cloned().collect()
    }
}

/// An error answer: a Kafka code and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupError {
    /// The code.
    pub code: ErrorCode,
    /// Why, for the client.
    pub message: String,
}

impl GroupError {
    /// An error with a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        GroupError {
            code,
            message: message.into(),
        }
    }
}

/// Bytes helper: an empty assignment.
pub(crate) fn empty() -> Bytes {
    Bytes::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offset(o: i64) -> CommittedOffset {
        CommittedOffset {
            offset: o,
            leader_epoch: -1,
            metadata: None,
            commit_timestamp: 0,
        }
    }

    #[test]
    fn staged_offsets_are_committed_only_by_a_commit() {
        let mut g = Group::new_classic("g", 0);
        g.stage_txn_offsets(7, 0, vec![("t".into(), 0, offset(5))]);
        g.stage_txn_offsets(8, 0, vec![("t".into(), 1, offset(9))]);
        assert!(g.offsets.is_empty());
        assert_eq!(g.pending_partitions().len(), 2);
        assert_eq!(g.txn_records().len(), 2);
        // Producer 8 aborts: its offsets are dropped, only the removal is persisted.
        let records = g.end_txn(8, false, 10);
        assert_eq!(records, vec![Record::txn_offsets_tombstone("g", 8)]);
        // Producer 7 commits: its offsets become committed, stamped with the commit time.
        let records = g.end_txn(7, true, 11);
        assert_eq!(records.len(), 2);
        let committed: Vec<_> = g.offsets.iter().collect();
        assert_eq!(committed.len(), 1);
        assert_eq!(committed[0].2.offset, 5);
        assert_eq!(committed[0].2.commit_timestamp, 11);
        assert!(g.pending_partitions().is_empty());
        // A retried marker finds nothing left to do.
        assert!(g.end_txn(7, true, 12).is_empty());
    }
}
