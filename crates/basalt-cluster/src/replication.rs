//! Partition replication as pure state machines: no I/O, no clock, no async runtime. Callers
//! pass `now_ms`, carry the messages, read and write the log, and feed the answers back.
//!
//! This module owns, so far:
//!
//! - [`LeaderEpochCache`] (`epoch_cache`): leader epoch → start offset of the local log, and the
//!   OffsetForLeaderEpoch answer computed from it.
//! - [`PartitionLeadership`] and [`elect_leader`] (`election`): the partition record the
//!   controller (the metadata quorum) keeps (leader, leader epoch, ISR, partition epoch), the
//!   choice of a new leader, and the checks an ISR proposal must pass to be committed.
//!
//! Offsets are Kafka's `i64` offsets, epochs Kafka's `i32` epochs, replicas Kafka's `i32` node
//! ids.
//!
//! # Invariants
//! - `REP-1`: the entries of a [`LeaderEpochCache`] are strictly increasing in epoch and in start
//!   offset, and never negative. Assigning an epoch first removes every entry that would break
//!   this (entries of that epoch or later, or starting at or after the new start offset).
//! - `REP-3` (quorum side): an ISR proposal is committed only if it was made from the current
//!   partition epoch by the current leader in its leader epoch.
//! - `REP-8`: a clean election picks a live member of the ISR; every change of leader bumps the
//!   leader epoch and every change of the partition record bumps the partition epoch, so one
//!   leader epoch names at most one leader.

mod election;
mod epoch_cache;

pub use election::{AlterIsrError, Elected, PartitionLeadership, elect_leader};
pub use epoch_cache::{
    EpochCacheError, EpochEndOffset, EpochEntry, LeaderEpochCache, UNDEFINED_EPOCH,
    UNDEFINED_EPOCH_OFFSET,
};

/// An ISR change the leader asks the quorum to commit (Kafka's AlterPartition).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrProposal {
    /// The proposing leader.
    pub leader_id: i32,
    /// Its leader epoch.
    pub leader_epoch: i32,
    /// The partition epoch of the committed ISR the proposal was made from.
    pub partition_epoch: i32,
    /// The proposed ISR, leader included, in assignment order.
    pub isr: Vec<i32>,
}
