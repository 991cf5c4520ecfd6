//! Partition replication as pure state machines: no I/O, no clock, no async runtime. Callers
//! pass `now_ms`, carry the messages, read and write the log, and feed the answers back.
//!
//! One partition has a set of replicas (the assignment), one of which leads. This module owns:
//!
//! - [`LeaderEpochCache`] (`epoch_cache`): leader epoch → start offset of the local log, and the
//!   OffsetForLeaderEpoch answer computed from it.
//! - [`LeaderState`] (`leader`): the leader's view of its followers (their log end offsets and
//!   when each last caught up), the in-sync replica set (ISR) with its version (the partition
//!   epoch), the high watermark (HW), ISR shrink and expand proposals, and acks=all completion.
//! - [`FollowerState`] (`follower`): what a follower fetches next, its truncation when the
//!   leader reports a divergence, and the HW it learns from the leader.
//! - [`PartitionLeadership`] and [`elect_leader`] (`election`): the partition record the
//!   controller (the metadata quorum) keeps (leader, leader epoch, ISR, partition epoch), the
//!   choice of a new leader, and the checks an ISR proposal must pass to be committed.
//!
//! What it does not own: the records (storage holds them; the leader stamps its leader epoch in
//! each batch it appends), the transport, timers, and the quorum that commits ISR changes. An
//! ISR change is only ever an [`IsrProposal`] until the quorum has committed it and the caller
//! hands the committed ISR back with [`LeaderState::apply_isr`].
//!
//! Offsets are Kafka's `i64` offsets, epochs Kafka's `i32` epochs, replicas Kafka's `i32` node
//! ids. A log end offset (LEO) is the offset the next record will get.
//!
//! # Invariants
//! - `REP-1`: the entries of a [`LeaderEpochCache`] are strictly increasing in epoch and in start
//!   offset, and never negative. Assigning an epoch first removes every entry that would break
//!   this (entries of that epoch or later, or starting at or after the new start offset).
//! - `REP-2`: the leader's HW never moves backwards. It advances only to the smallest LEO among
//!   the leader and the members of the *maximal ISR* (the committed ISR plus a replica being
//!   added by an outstanding proposal; a replica being removed still counts until the removal is
//!   committed), an unknown LEO holds it back, and it advances only while the committed ISR has
//!   at least `min.insync.replicas` members (KIP-966's rule). So the HW is never above what
//!   `min.insync.replicas` replicas hold, and never above what any member of the quorum's ISR
//!   holds: the quorum's ISR is always a subset of the maximal ISR.
//! - `REP-3`: the committed ISR changes only through [`LeaderState::apply_isr`] with a partition
//!   epoch newer than the one the leader has; older or equal versions are ignored. At most one
//!   proposal is outstanding; it stays outstanding (and counts for `REP-2`) until a newer
//!   committed ISR arrives, whatever the quorum answered, because only the committed state says
//!   whether it was applied.
//! - `REP-4`: a follower is proposed for the ISR only when its LEO has reached both the HW and
//!   the start offset of the current leader epoch. The second condition matters right after an
//!   election, when the new leader's HW may lag the old leader's: a follower that reached only
//!   the lagging HW could be missing committed records.
//! - `REP-5`: the leader takes a follower's LEO only from a fetch whose last fetched epoch and
//!   offset agree with the leader's own epochs; a fetch that diverges (or carries a stale leader
//!   epoch) changes nothing in the leader.
//! - `REP-6`: acks=all is answered Ready only when the HW has passed the batch and the committed
//!   ISR has at least `min.insync.replicas` members; with fewer it is NotEnoughReplicas.
//! - `REP-7`: a follower truncates only the part of its log that does not agree with the leader's
//!   epochs: to the end offset of the largest epoch both have, never past its own LEO, and only
//!   on the answer to a fetch that still describes its log (a delayed answer to an older fetch
//!   could otherwise cut records fetched since). Its HW is never above its LEO and never moves
//!   backwards except by such a truncation.
//! - `REP-8`: a clean election picks a live member of the ISR; every change of leader bumps the
//!   leader epoch and every change of the partition record bumps the partition epoch, so one
//!   leader epoch names at most one leader.
//!
//! The simulation in `tests/it/sim.rs` checks these end to end under message loss, delay,
//! crashes and partitions, under the same names.

mod election;
mod follower;
mod leader;

pub use basalt_storage::epoch_cache::{
    EpochCacheError, EpochEndOffset, EpochEntry, LeaderEpochCache, UNDEFINED_EPOCH,
    UNDEFINED_EPOCH_OFFSET,
};
pub use election::{AlterIsrError, Elected, PartitionLeadership, elect_leader};
pub use follower::{FollowerError, FollowerState};
pub use leader::{AcksAll, FetchAnswer, FetchOutcome, IsrApplied, LeaderConfig, LeaderState};

/// What a replica knows of its local copy of the partition's log, carried from one role to the
/// next (follower → leader → follower): where the log ends, how much of it is known committed,
/// and the leader epochs of its batches.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LocalLog {
    /// The offset the next record will get.
    pub log_end_offset: i64,
    /// The high watermark this replica knows (at most `log_end_offset`).
    pub high_watermark: i64,
    /// Leader epoch → first offset, for the batches of the log.
    pub epochs: LeaderEpochCache,
}

impl LocalLog {
    /// A log ending at `log_end_offset`, with the high watermark clamped to the log end (a
    /// checkpointed HW may be ahead of a log that lost an unflushed tail).
    pub fn new(log_end_offset: i64, high_watermark: i64, epochs: LeaderEpochCache) -> LocalLog {
        assert!(
            log_end_offset >= 0,
            "negative log end offset {log_end_offset}"
        );
        LocalLog {
            log_end_offset,
            high_watermark: high_watermark.clamp(0, log_end_offset),
            epochs,
        }
    }
}

/// A follower's fetch, as the leader needs it (Fetch v12+ fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerFetch {
    /// The fetching replica.
    pub replica_id: i32,
    /// The leader epoch the follower believes current.
    pub current_leader_epoch: i32,
    /// The follower's LEO: the first offset it wants.
    pub fetch_offset: i64,
    /// The epoch of the last batch the follower holds, or `None` for an empty log.
    pub last_fetched_epoch: Option<i32>,
}

/// Fetch v12+'s `DivergingEpoch`: the follower's log disagrees with the leader's after
/// `end_offset`; `epoch` is the largest epoch of the leader not above the follower's last
/// fetched epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DivergingEpoch {
    /// The leader's epoch the follower should compare with.
    pub epoch: i32,
    /// Where that epoch ends in the leader's log.
    pub end_offset: i64,
}

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
