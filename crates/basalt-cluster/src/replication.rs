//! Partition replication as pure state machines: no I/O, no clock, no async runtime. Callers
//! pass `now_ms`, carry the messages, read and write the log, and feed the answers back.
//!
//! This module owns, so far:
//!
//! - [`LeaderEpochCache`] (`epoch_cache`): leader epoch → start offset of the local log, and the
//!   OffsetForLeaderEpoch answer computed from it.
//!
//! Offsets are Kafka's `i64` offsets, epochs Kafka's `i32` epochs.
//!
//! # Invariants
//! - `REP-1`: the entries of a [`LeaderEpochCache`] are strictly increasing in epoch and in start
//!   offset, and never negative. Assigning an epoch first removes every entry that would break
//!   this (entries of that epoch or later, or starting at or after the new start offset).

mod epoch_cache;

pub use epoch_cache::{
    EpochCacheError, EpochEndOffset, EpochEntry, LeaderEpochCache, UNDEFINED_EPOCH,
    UNDEFINED_EPOCH_OFFSET,
};
