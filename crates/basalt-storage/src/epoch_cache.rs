//! The leader-epoch cache of one replica's log: for each leader epoch whose batches the log
//! holds, the offset of the first of them, as Kafka's `LeaderEpochFileCache` keeps it.
//!
//! A leader assigns its epoch at its LEO when it is elected; a follower assigns the epoch of each
//! batch it appends (a no-op unless the epoch is new). Truncating the log truncates the cache
//! ([`LeaderEpochCache::truncate_from`]); deleting old segments moves its start
//! ([`LeaderEpochCache::truncate_to_start`]). The cache answers OffsetForLeaderEpoch
//! ([`LeaderEpochCache::end_offset_for`]) and gives a follower its last fetched epoch.
//!
//! It serializes (serde) as the list of its entries, so storage can checkpoint it; a
//! deserialized list is checked against `REP-1` and refused with [`EpochCacheError`] if it breaks
//! it.
//!
//! # Invariants
//! - `REP-1` (see the module docs of `basalt_cluster::replication`): entries strictly increase in epoch and in
//!   start offset and are never negative; [`LeaderEpochCache::assign`] keeps it by removing the
//!   entries a new one contradicts.

use serde::{Deserialize, Serialize};

/// Kafka's `UNDEFINED_EPOCH`.
pub const UNDEFINED_EPOCH: i32 = -1;
/// Kafka's `UNDEFINED_EPOCH_OFFSET`.
pub const UNDEFINED_EPOCH_OFFSET: i64 = -1;

/// One entry: the first offset of `epoch` in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochEntry {
    /// The leader epoch.
    pub epoch: i32,
    /// The offset of its first batch.
    pub start_offset: i64,
}

/// An OffsetForLeaderEpoch answer: the largest epoch not above the requested one and the offset
/// where it ends (the start of the next epoch, or the LEO for the latest), or
/// [`EpochEndOffset::UNDEFINED`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEndOffset {
    /// The epoch found, or [`UNDEFINED_EPOCH`].
    pub epoch: i32,
    /// Where it ends (exclusive), or [`UNDEFINED_EPOCH_OFFSET`].
    pub end_offset: i64,
}

impl EpochEndOffset {
    /// Kafka's (-1, -1): the epoch is unknown here.
    pub const UNDEFINED: EpochEndOffset = EpochEndOffset {
        epoch: UNDEFINED_EPOCH,
        end_offset: UNDEFINED_EPOCH_OFFSET,
    };

    /// Whether either half is undefined (Kafka treats both the same way).
    pub fn is_undefined(&self) -> bool {
        self.epoch == UNDEFINED_EPOCH || self.end_offset == UNDEFINED_EPOCH_OFFSET
    }
}

/// A list of entries that breaks `REP-1`, found when loading a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EpochCacheError {
    /// An entry with a negative epoch or start offset.
    #[error("leader epoch entry {index} is negative: epoch {epoch}, start offset {start_offset}")]
    Negative {
        /// Position in the list.
        index: usize,
        /// Its epoch.
        epoch: i32,
        /// Its start offset.
        start_offset: i64,
    },
    /// An entry whose epoch or start offset is not above the previous entry's.
    #[error(
        "leader epoch entry {index} (epoch {epoch}, start offset {start_offset}) does not follow the previous one"
    )]
    NotMonotonic {
        /// Position in the list.
        index: usize,
        /// Its epoch.
        epoch: i32,
        /// Its start offset.
        start_offset: i64,
    },
}

/// Leader epoch → start offset of one replica's log (`REP-1`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<EpochEntry>", into = "Vec<EpochEntry>")]
pub struct LeaderEpochCache {
    /// Sorted by epoch and by start offset; few entries (one per leader change), so a vector.
    entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    /// An empty cache (an empty log, or a log without epochs).
    pub fn new() -> LeaderEpochCache {
        LeaderEpochCache::default()
    }

    /// A cache of the given entries, checked against `REP-1`.
    pub fn from_entries(entries: Vec<EpochEntry>) -> Result<LeaderEpochCache, EpochCacheError> {
        for (index, e) in entries.iter().enumerate() {
            if e.epoch < 0 || e.start_offset < 0 {
                return Err(EpochCacheError::Negative {
                    index,
                    epoch: e.epoch,
                    start_offset: e.start_offset,
                });
            }
            if let Some(prev) = index.checked_sub(1).map(|i| entries[i])
                && (e.epoch <= prev.epoch || e.start_offset <= prev.start_offset)
            {
                return Err(EpochCacheError::NotMonotonic {
                    index,
                    epoch: e.epoch,
                    start_offset: e.start_offset,
                });
            }
        }
        Ok(LeaderEpochCache { entries })
    }

    /// The entries, oldest first.
    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The latest entry.
    pub fn latest(&self) -> Option<EpochEntry> {
        self.entries.last().copied()
    }

    /// The latest epoch: for a follower, the epoch of its last batch.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.latest().map(|e| e.epoch)
    }

    /// The epoch of the batch holding `offset` (the latest entry starting at or before it).
    pub fn epoch_for_offset(&self, offset: i64) -> Option<i32> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.start_offset <= offset)
            .map(|e| e.epoch)
    }

    /// Records that `epoch` starts at `start_offset`. Kafka's rule: nothing changes if `epoch`
    /// is already the latest epoch and starts at or before `start_offset`; otherwise every entry
    /// of `epoch` or later, or starting at or after `start_offset`, is removed first (`REP-1`),
    /// which is how a log that was truncated and written again by a newer leader replaces the
    /// epochs it lost. Returns whether the cache changed.
    ///
    /// # Panics
    /// If `epoch` or `start_offset` is negative: callers validate batch epochs first.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        assert!(
            epoch >= 0 && start_offset >= 0,
            "invalid leader epoch entry: epoch {epoch}, start offset {start_offset}"
        );
        if let Some(latest) = self.latest()
            && latest.epoch == epoch
            && latest.start_offset <= start_offset
        {
            return false;
        }
        // REP-1: drop what the new entry contradicts, from the end.
        while let Some(last) = self.entries.last()
            && (last.epoch >= epoch || last.start_offset >= start_offset)
        {
            self.entries.pop();
        }
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        true
    }

    /// OffsetForLeaderEpoch for `requested_epoch` on a log ending at `log_end_offset`, with
    /// Kafka's semantics:
    /// - [`UNDEFINED_EPOCH`] requested, or an epoch above every known one (or an empty cache):
    ///   [`EpochEndOffset::UNDEFINED`];
    /// - the latest epoch: that epoch and `log_end_offset` (a leader is still writing it);
    /// - an epoch below every known one: the requested epoch and the first entry's start offset
    ///   (older epochs may have been removed with old segments);
    /// - otherwise the largest known epoch not above the requested one, ending where the next
    ///   known epoch starts.
    pub fn end_offset_for(&self, requested_epoch: i32, log_end_offset: i64) -> EpochEndOffset {
        if requested_epoch == UNDEFINED_EPOCH {
            return EpochEndOffset::UNDEFINED;
        }
        if self.latest_epoch() == Some(requested_epoch) {
            return EpochEndOffset {
                epoch: requested_epoch,
                end_offset: log_end_offset,
            };
        }
        let Some(higher) = self.entries.iter().find(|e| e.epoch > requested_epoch) else {
            return EpochEndOffset::UNDEFINED;
        };
        match self
            .entries
            .iter()
            .rev()
            .find(|e| e.epoch <= requested_epoch)
        {
            None => EpochEndOffset {
                epoch: requested_epoch,
                end_offset: higher.start_offset,
            },
            Some(floor) => EpochEndOffset {
                epoch: floor.epoch,
                end_offset: higher.start_offset,
            },
        }
    }

    /// The log was truncated to end at `end_offset`: removes every entry starting at or after
    /// it. A negative offset changes nothing (Kafka's guard).
    pub fn truncate_from(&mut self, end_offset: i64) {
        if end_offset < 0 {
            return;
        }
        while self
            .entries
            .last()
            .is_some_and(|e| e.start_offset >= end_offset)
        {
            self.entries.pop();
        }
    }

    /// The log now starts at `start_offset` (old segments deleted): removes the entries that
    /// start at or before it, then puts the last of them back starting at `start_offset`, since
    /// the log's first remaining batches belong to that epoch. A negative offset, or one not
    /// past the first entry's start, changes nothing.
    pub fn truncate_to_start(&mut self, start_offset: i64) {
        let Some(first) = self.entries.first() else {
            return;
        };
        if start_offset < 0 || first.start_offset >= start_offset {
            return;
        }
        let removed = self
            .entries
            .iter()
            .take_while(|e| e.start_offset <= start_offset)
            .count();
        let kept_epoch = self.entries[removed - 1].epoch;
        self.entries.drain(..removed);
        self.entries.insert(
            0,
            EpochEntry {
                epoch: kept_epoch,
                start_offset,
            },
        );
    }

    /// Rebuilds the cache from the epochs of a log's batches, given as (epoch, base offset) in
    /// log order, as recovery does when the checkpoint is missing. Batches with a negative epoch
    /// (written without one) are skipped.
    pub fn rebuild<I: IntoIterator<Item = (i32, i64)>>(batches: I) -> LeaderEpochCache {
        let mut cache = LeaderEpochCache::new();
        for (epoch, base_offset) in batches {
            if epoch >= 0 && base_offset >= 0 {
                cache.assign(epoch, base_offset);
            }
        }
        cache
    }
}

impl TryFrom<Vec<EpochEntry>> for LeaderEpochCache {
    type Error = EpochCacheError;

    fn try_from(entries: Vec<EpochEntry>) -> Result<Self, Self::Error> {
        LeaderEpochCache::from_entries(entries)
    }
}

impl From<LeaderEpochCache> for Vec<EpochEntry> {
    fn from(cache: LeaderEpochCache) -> Self {
        cache.entries
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn cache(entries: &[(i32, i64)]) -> LeaderEpochCache {
        LeaderEpochCache::from_entries(
            entries
                .iter()
                .map(|&(epoch, start_offset)| EpochEntry {
                    epoch,
                    start_offset,
                })
                .collect(),
        )
        .unwrap()
    }

    fn pairs(c: &LeaderEpochCache) -> Vec<(i32, i64)> {
        c.entries()
            .iter()
            .map(|e| (e.epoch, e.start_offset))
            .collect()
    }

    fn eo(epoch: i32, end_offset: i64) -> EpochEndOffset {
        EpochEndOffset { epoch, end_offset }
    }

    #[test]
    fn assign_appends_new_epochs_and_ignores_repeats() {
        let mut c = LeaderEpochCache::new();
        assert!(c.assign(2, 0));
        assert!(!c.assign(2, 5), "same epoch, later offset: no change");
        assert!(!c.assign(2, 0));
        assert!(c.assign(4, 10));
        assert_eq!(pairs(&c), [(2, 0), (4, 10)]);
        assert_eq!(c.latest_epoch(), Some(4));
    }

    #[test]
    fn assign_of_the_latest_epoch_at_an_earlier_offset_moves_its_start() {
        let mut c = cache(&[(1, 0), (3, 10)]);
        assert!(c.assign(3, 8));
        assert_eq!(pairs(&c), [(1, 0), (3, 8)]);
    }

    #[test]
    fn assign_removes_the_entries_it_contradicts() {
        // An older epoch at a later offset drops the newer epochs.
        let mut c = cache(&[(1, 0), (3, 10), (5, 20)]);
        assert!(c.assign(4, 25));
        assert_eq!(pairs(&c), [(1, 0), (3, 10), (4, 25)]);
        // A newer epoch at an earlier offset drops the entries starting at or after it.
        let mut c = cache(&[(1, 0), (3, 10), (5, 20)]);
        assert!(c.assign(6, 10));
        assert_eq!(pairs(&c), [(1, 0), (6, 10)]);
        // Both at once.
        let mut c = cache(&[(1, 0), (3, 10), (5, 20)]);
        assert!(c.assign(2, 15));
        assert_eq!(pairs(&c), [(1, 0), (2, 15)]);
    }

    #[test]
    #[should_panic(expected = "invalid leader epoch entry")]
    fn assign_refuses_negative_epochs() {
        LeaderEpochCache::new().assign(-1, 0);
    }

    #[test]
    fn end_offset_for_undefined_or_empty_is_undefined() {
        let c = cache(&[(1, 0), (3, 10)]);
        assert_eq!(
            c.end_offset_for(UNDEFINED_EPOCH, 20),
            EpochEndOffset::UNDEFINED
        );
        assert_eq!(
            LeaderEpochCache::new().end_offset_for(0, 0),
            EpochEndOffset::UNDEFINED
        );
        assert_eq!(
            LeaderEpochCache::new().end_offset_for(5, 7),
            EpochEndOffset::UNDEFINED
        );
    }

    #[test]
    fn end_offset_for_the_latest_epoch_is_the_log_end() {
        let c = cache(&[(1, 0), (3, 10)]);
        assert_eq!(c.end_offset_for(3, 20), eo(3, 20));
    }

    #[test]
    fn end_offset_for_an_epoch_above_every_known_one_is_undefined() {
        let c = cache(&[(1, 0), (3, 10)]);
        assert_eq!(c.end_offset_for(4, 20), EpochEndOffset::UNDEFINED);
    }

    #[test]
    fn end_offset_for_a_known_older_epoch_ends_where_the_next_starts() {
        let c = cache(&[(1, 0), (3, 10), (5, 20)]);
        assert_eq!(c.end_offset_for(1, 30), eo(1, 10));
        assert_eq!(c.end_offset_for(3, 30), eo(3, 20));
    }

    #[test]
    fn end_offset_for_a_missing_epoch_answers_the_floor_epoch() {
        let c = cache(&[(1, 0), (3, 10), (5, 20)]);
        assert_eq!(c.end_offset_for(2, 30), eo(1, 10));
        assert_eq!(c.end_offset_for(4, 30), eo(3, 20));
    }

    #[test]
    fn end_offset_for_an_epoch_below_every_known_one_is_the_first_start() {
        let c = cache(&[(2, 5), (3, 10)]);
        assert_eq!(c.end_offset_for(1, 30), eo(1, 5));
        assert_eq!(c.end_offset_for(0, 30), eo(0, 5));
    }

    #[test]
    fn truncate_from_removes_entries_at_or_after_the_offset() {
        let mut c = cache(&[(1, 0), (3, 10), (5, 20)]);
        c.truncate_from(25);
        assert_eq!(pairs(&c), [(1, 0), (3, 10), (5, 20)]);
        c.truncate_from(20);
        assert_eq!(pairs(&c), [(1, 0), (3, 10)]);
        c.truncate_from(11);
        assert_eq!(pairs(&c), [(1, 0), (3, 10)]);
        c.truncate_from(-1);
        assert_eq!(pairs(&c), [(1, 0), (3, 10)], "negative: no change");
        c.truncate_from(0);
        assert!(c.is_empty());
    }

    #[test]
    fn truncate_to_start_keeps_the_epoch_of_the_new_first_offset() {
        let mut c = cache(&[(1, 0), (3, 10), (5, 20)]);
        c.truncate_to_start(0);
        assert_eq!(pairs(&c), [(1, 0), (3, 10), (5, 20)], "not past the first");
        c.truncate_to_start(15);
        assert_eq!(pairs(&c), [(3, 15), (5, 20)]);
        c.truncate_to_start(20);
        assert_eq!(pairs(&c), [(5, 20)]);
        c.truncate_to_start(40);
        assert_eq!(
            pairs(&c),
            [(5, 40)],
            "past every entry: the last epoch stays"
        );
        c.truncate_to_start(-3);
        assert_eq!(pairs(&c), [(5, 40)]);
        let mut empty = LeaderEpochCache::new();
        empty.truncate_to_start(10);
        assert!(empty.is_empty());
    }

    #[test]
    fn epoch_for_offset_finds_the_covering_entry() {
        let c = cache(&[(1, 5), (3, 10)]);
        assert_eq!(c.epoch_for_offset(4), None);
        assert_eq!(c.epoch_for_offset(5), Some(1));
        assert_eq!(c.epoch_for_offset(9), Some(1));
        assert_eq!(c.epoch_for_offset(10), Some(3));
        assert_eq!(c.epoch_for_offset(1000), Some(3));
    }

    #[test]
    fn rebuild_takes_the_first_offset_of_each_epoch() {
        let c = LeaderEpochCache::rebuild([(1, 0), (1, 3), (-1, 4), (2, 5), (2, 9), (4, 12)]);
        assert_eq!(pairs(&c), [(1, 0), (2, 5), (4, 12)]);
    }

    #[test]
    fn serializes_as_its_entries_and_refuses_broken_checkpoints() {
        let c = cache(&[(1, 0), (3, 10)]);
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(
            json,
            r#"[{"epoch":1,"start_offset":0},{"epoch":3,"start_offset":10}]"#
        );
        assert_eq!(serde_json::from_str::<LeaderEpochCache>(&json).unwrap(), c);
        for bad in [
            r#"[{"epoch":3,"start_offset":0},{"epoch":3,"start_offset":10}]"#,
            r#"[{"epoch":1,"start_offset":10},{"epoch":3,"start_offset":10}]"#,
            r#"[{"epoch":-1,"start_offset":0}]"#,
        ] {
            assert!(
                serde_json::from_str::<LeaderEpochCache>(bad).is_err(),
                "{bad}"
            );
        }
        assert_eq!(
            LeaderEpochCache::from_entries(vec![
                EpochEntry {
                    epoch: 2,
                    start_offset: 4
                },
                EpochEntry {
                    epoch: 1,
                    start_offset: 8
                },
            ]),
            Err(EpochCacheError::NotMonotonic {
                index: 1,
                epoch: 1,
                start_offset: 8
            })
        );
    }

    #[derive(Debug, Clone)]
    enum Op {
        Assign(i32, i64),
        TruncateFrom(i64),
        TruncateToStart(i64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0..20i32, 0..100i64).prop_map(|(e, o)| Op::Assign(e, o)),
            1 => (-2..100i64).prop_map(Op::TruncateFrom),
            1 => (-2..100i64).prop_map(Op::TruncateToStart),
        ]
    }

    proptest! {
        /// REP-1 holds after any sequence of operations, and an assigned entry is always the
        /// latest afterwards (unless it repeated the latest epoch).
        #[test]
        fn entries_stay_monotonic(ops in proptest::collection::vec(op(), 0..40)) {
            let mut c = LeaderEpochCache::new();
            for op in ops {
                match op {
                    Op::Assign(e, o) => {
                        let latest = c.latest();
                        c.assign(e, o);
                        let now = c.latest().unwrap();
                        prop_assert_eq!(now.epoch, e);
                        if latest.is_some_and(|l| l.epoch == e) {
                            prop_assert!(now.start_offset <= o);
                        } else {
                            prop_assert_eq!(now.start_offset, o);
                        }
                    }
                    Op::TruncateFrom(o) => {
                        c.truncate_from(o);
                        if o >= 0 {
                            prop_assert!(c.entries().iter().all(|e| e.start_offset < o));
                        }
                    }
                    Op::TruncateToStart(o) => {
                        c.truncate_to_start(o);
                        if o >= 0 && !c.is_empty() {
                            prop_assert!(c.entries()[0].start_offset >= o);
                        }
                    }
                }
                prop_assert!(LeaderEpochCache::from_entries(c.entries().to_vec()).is_ok());
            }
        }
    }
}
