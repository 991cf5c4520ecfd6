//! The follower's side of one partition: what it fetches next, how it truncates when the leader
//! reports a divergence, and the HW it learns from the leader.
//!
//! A [`FollowerState`] lives for one leader epoch on one node, created from the [`LocalLog`] of
//! the previous role. The caller's loop: send [`FollowerState::fetch_request`] to the leader,
//! keeping it with the outstanding fetch; on records for a fetch that
//! [`FollowerState::is_current`], append them to the log and call [`FollowerState::on_batch`]
//! for each batch, then [`FollowerState::on_high_watermark`]; on a divergence, call
//! [`FollowerState::on_diverging`] with the fetch it answers and truncate the log to the offset
//! it returns, then fetch again. A fetch-based truncation
//! needs no separate OffsetForLeaderEpoch round (Fetch v12+); one divergence answer may take
//! several rounds when the follower lacks the leader's epoch, each truncating further.
//!
//! Every answer is applied together with the fetch it answers: an answer to an older fetch (a
//! delayed or repeated message, or a fetch that timed out and was sent again) describes a log the
//! follower may no longer have, and a divergence computed for it could cut records fetched since.
//! [`FollowerState::is_current`] tells whether a fetch still describes the log; the divergence
//! handlers check it themselves and ignore stale answers.
//!
//! # Invariants
//! `REP-7` (see the module docs of `replication`): a follower truncates only where its epochs
//! disagree with the leader's, never past its LEO, and only on an answer to a fetch that still
//! describes its log; its HW stays at or below its LEO.

use super::{DivergingEpoch, FollowerFetch, LeaderEpochCache, LocalLog};

/// A fetched batch that cannot follow the follower's log: the answer was stale or the leader
/// broke its contract.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FollowerError {
    /// The batch does not start at the follower's LEO, or is empty.
    #[error(
        "batch [{base_offset}, {next_offset}) does not continue the log ending at {log_end_offset}"
    )]
    NotContiguous {
        /// The batch's base offset.
        base_offset: i64,
        /// The offset after its last record.
        next_offset: i64,
        /// The follower's LEO.
        log_end_offset: i64,
    },
    /// The batch's leader epoch is negative, newer than the leader's, or older than the epoch
    /// of the follower's last batch (the divergence check should have truncated first).
    #[error("batch epoch {epoch} cannot follow epoch {latest:?} under leader epoch {leader_epoch}")]
    BadEpoch {
        /// The batch's partition leader epoch.
        epoch: i32,
        /// The follower's latest epoch.
        latest: Option<i32>,
        /// The leader epoch being followed.
        leader_epoch: i32,
    },
}

/// A follower of one partition for one leader epoch.
#[derive(Debug, Clone)]
pub struct FollowerState {
    replica_id: i32,
    leader_id: i32,
    leader_epoch: i32,
    log: LocalLog,
}

impl FollowerState {
    /// Follows `leader_id` in `leader_epoch`, taking over `log`. Epoch entries with no batch
    /// behind them (a leader that was elected but appended nothing) are dropped first, so the
    /// last fetched epoch is the epoch of the last batch.
    pub fn new(replica_id: i32, leader_id: i32, leader_epoch: i32, mut log: LocalLog) -> Self {
        log.epochs.truncate_from(log.log_end_offset);
        FollowerState {
            replica_id,
            leader_id,
            leader_epoch,
            log,
        }
    }

    /// This replica.
    pub fn replica_id(&self) -> i32 {
        self.replica_id
    }

    /// The leader it follows.
    pub fn leader_id(&self) -> i32 {
        self.leader_id
    }

    /// The leader epoch it follows in.
    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch
    }

    /// Its LEO.
    pub fn log_end_offset(&self) -> i64 {
        self.log.log_end_offset
    }

    /// The HW it knows.
    pub fn high_watermark(&self) -> i64 {
        self.log.high_watermark
    }

    /// Its epoch cache.
    pub fn epochs(&self) -> &LeaderEpochCache {
        &self.log.epochs
    }

    /// Gives the log back, for the next role.
    pub fn into_log(self) -> LocalLog {
        self.log
    }

    /// The next fetch: from its LEO, with the epoch of its last batch.
    pub fn fetch_request(&self) -> FollowerFetch {
        FollowerFetch {
            replica_id: self.replica_id,
            current_leader_epoch: self.leader_epoch,
            fetch_offset: self.log.log_end_offset,
            last_fetched_epoch: self.log.epochs.latest_epoch(),
        }
    }

    /// Whether `fetch` (one of its earlier [`FollowerFetch`]es) still describes the log: same
    /// leader epoch, fetch offset and last fetched epoch as a fetch sent now. Answers to any
    /// other fetch are stale.
    pub fn is_current(&self, fetch: &FollowerFetch) -> bool {
        *fetch == self.fetch_request()
    }

    /// A fetched batch `[base_offset, next_offset)` of partition leader epoch `epoch` was
    /// appended to the log. Refused (and nothing changes) if it does not continue the log.
    pub fn on_batch(
        &mut self,
        epoch: i32,
        base_offset: i64,
        next_offset: i64,
    ) -> Result<(), FollowerError> {
        if base_offset != self.log.log_end_offset || next_offset <= base_offset {
            return Err(FollowerError::NotContiguous {
                base_offset,
                next_offset,
                log_end_offset: self.log.log_end_offset,
            });
        }
        let latest = self.log.epochs.latest_epoch();
        if epoch < 0 || epoch > self.leader_epoch || latest.is_some_and(|l| epoch < l) {
            return Err(FollowerError::BadEpoch {
                epoch,
                latest,
                leader_epoch: self.leader_epoch,
            });
        }
        self.log.epochs.assign(epoch, base_offset);
        self.log.log_end_offset = next_offset;
        Ok(())
    }

    /// The leader's HW arrived with a fetch answer: the follower's HW becomes the smaller of it
    /// and its own LEO, never moving backwards (`REP-7`). Returns whether it advanced.
    pub fn on_high_watermark(&mut self, leader_high_watermark: i64) -> bool {
        let hw = leader_high_watermark.min(self.log.log_end_offset);
        if hw > self.log.high_watermark {
            self.log.high_watermark = hw;
            true
        } else {
            false
        }
    }

    /// The leader answered `fetch` with a divergence: returns the offset to truncate the log to
    /// (its LEO if nothing is to be removed), already applied to the follower's LEO, epochs and
    /// HW, or `None` if `fetch` is stale ([`FollowerState::is_current`]). Kafka's rule
    /// (`REP-7`): if the follower has the leader's epoch, to the smaller end of that epoch in
    /// the two logs; if it lacks that epoch, to the end of its own largest epoch below it (the
    /// next fetch compares again); if it has no epoch at or below it, to the leader's end
    /// offset.
    pub fn on_diverging(
        &mut self,
        fetch: &FollowerFetch,
        diverging: DivergingEpoch,
    ) -> Option<i64> {
        if !self.is_current(fetch) {
            return None;
        }
        let leo = self.log.log_end_offset;
        let own = self.log.epochs.end_offset_for(diverging.epoch, leo);
        let target = if own.is_undefined() {
            diverging.end_offset
        } else if own.epoch != diverging.epoch {
            own.end_offset
        } else {
            own.end_offset.min(diverging.end_offset)
        };
        Some(self.truncate_to(target))
    }

    /// The leader answered `fetch` with OFFSET_OUT_OF_RANGE and its LEO: a follower whose log
    /// is longer than the leader's (only after an unclean election) truncates to it. Returns the
    /// offset to truncate to, if any (never for a stale `fetch`).
    pub fn on_offset_out_of_range(
        &mut self,
        fetch: &FollowerFetch,
        leader_log_end_offset: i64,
    ) -> Option<i64> {
        if self.is_current(fetch)
            && leader_log_end_offset >= 0
            && leader_log_end_offset < self.log.log_end_offset
        {
            Some(self.truncate_to(leader_log_end_offset))
        } else {
            None
        }
    }

    fn truncate_to(&mut self, offset: i64) -> i64 {
        let target = offset.clamp(0, self.log.log_end_offset);
        self.log.log_end_offset = target;
        // Always, even when nothing is removed: an epoch entry with no batch behind it would
        // otherwise be sent again as the last fetched epoch.
        self.log.epochs.truncate_from(target);
        self.log.high_watermark = self.log.high_watermark.min(target);
        target
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replication::EpochEntry;

    /// A follower of leader 1 in epoch 5 whose log holds records of `epochs` (one per record).
    fn follower(epochs: &[i32], hw: i64) -> FollowerState {
        let cache =
            LeaderEpochCache::rebuild(epochs.iter().enumerate().map(|(o, &e)| (e, o as i64)));
        FollowerState::new(2, 1, 5, LocalLog::new(epochs.len() as i64, hw, cache))
    }

    fn div(epoch: i32, end_offset: i64) -> DivergingEpoch {
        DivergingEpoch { epoch, end_offset }
    }

    /// A divergence answering the follower's current fetch.
    fn diverge(f: &mut FollowerState, d: DivergingEpoch) -> i64 {
        let fetch = f.fetch_request();
        f.on_diverging(&fetch, d).expect("current fetch")
    }

    #[test]
    fn fetches_from_its_log_end_with_its_last_epoch() {
        let f = follower(&[], 0);
        assert_eq!(
            f.fetch_request(),
            FollowerFetch {
                replica_id: 2,
                current_leader_epoch: 5,
                fetch_offset: 0,
                last_fetched_epoch: None
            }
        );
        let f = follower(&[1, 1, 3], 0);
        assert_eq!(f.fetch_request().fetch_offset, 3);
        assert_eq!(f.fetch_request().last_fetched_epoch, Some(3));
    }

    #[test]
    fn an_epoch_entry_without_batches_is_not_sent_as_the_last_fetched_epoch() {
        // A former leader of epoch 4 that appended nothing in it.
        let mut cache = LeaderEpochCache::rebuild([(1, 0)]);
        cache.assign(4, 2);
        let f = FollowerState::new(2, 1, 5, LocalLog::new(2, 0, cache));
        assert_eq!(f.fetch_request().last_fetched_epoch, Some(1));
    }

    #[test]
    fn appended_batches_extend_the_log_and_its_epochs() {
        let mut f = follower(&[1], 0);
        f.on_batch(1, 1, 3).unwrap();
        f.on_batch(5, 3, 4).unwrap();
        assert_eq!(f.log_end_offset(), 4);
        assert_eq!(
            f.epochs().entries(),
            [
                EpochEntry {
                    epoch: 1,
                    start_offset: 0
                },
                EpochEntry {
                    epoch: 5,
                    start_offset: 3
                }
            ]
        );
    }

    #[test]
    fn batches_that_do_not_continue_the_log_are_refused() {
        let mut f = follower(&[1, 3], 0);
        for (epoch, base, next) in [(3, 1, 3), (3, 3, 4), (3, 2, 2)] {
            assert!(matches!(
                f.on_batch(epoch, base, next),
                Err(FollowerError::NotContiguous { .. })
            ));
        }
        for epoch in [-1, 2, 6] {
            assert!(matches!(
                f.on_batch(epoch, 2, 3),
                Err(FollowerError::BadEpoch { .. })
            ));
        }
        assert_eq!(f.log_end_offset(), 2);
        assert_eq!(f.epochs().latest_epoch(), Some(3));
    }

    #[test]
    fn the_hw_follows_the_leader_within_the_log_and_never_back() {
        let mut f = follower(&[1, 1, 1], 1);
        assert!(f.on_high_watermark(10));
        assert_eq!(f.high_watermark(), 3, "clamped to the LEO");
        assert!(!f.on_high_watermark(2), "a lagging new leader's HW");
        assert_eq!(f.high_watermark(), 3);
    }

    #[test]
    fn divergence_within_a_shared_epoch_truncates_to_the_smaller_end() {
        let mut f = follower(&[1, 1, 2, 2, 2], 1);
        assert_eq!(diverge(&mut f, div(2, 3)), 3);
        assert_eq!(f.log_end_offset(), 3);
        assert_eq!(f.fetch_request().last_fetched_epoch, Some(2));
        // The leader's end past the follower's: nothing to remove.
        let mut f = follower(&[1, 1, 2], 1);
        assert_eq!(diverge(&mut f, div(2, 7)), 3);
    }

    #[test]
    fn divergence_on_an_epoch_the_follower_lacks_truncates_to_its_floor_epoch_end() {
        // Follower epochs 1 at [0,2), 3 at [2,5); the leader answers epoch 2 ending at 4.
        let mut f = follower(&[1, 1, 3, 3, 3], 0);
        assert_eq!(diverge(&mut f, div(2, 4)), 2);
        assert_eq!(f.fetch_request().last_fetched_epoch, Some(1));
        assert_eq!(f.fetch_request().fetch_offset, 2);
    }

    #[test]
    fn divergence_below_every_epoch_of_the_follower() {
        // Follower epochs start at 3; the leader's answer is epoch 1 ending at 0.
        let mut f = follower(&[3, 3], 0);
        assert_eq!(diverge(&mut f, div(1, 0)), 0);
        assert!(f.epochs().is_empty());
        assert_eq!(f.fetch_request().last_fetched_epoch, None);
    }

    #[test]
    fn truncation_lowers_the_hw_with_the_log() {
        let mut f = follower(&[1, 1, 2, 2], 4);
        assert_eq!(diverge(&mut f, div(1, 2)), 2);
        assert_eq!(f.high_watermark(), 2);
    }

    #[test]
    fn out_of_range_truncates_only_a_longer_log() {
        let mut f = follower(&[1, 1, 1, 1], 0);
        let fetch = f.fetch_request();
        assert_eq!(f.on_offset_out_of_range(&fetch, 6), None);
        assert_eq!(f.on_offset_out_of_range(&fetch, 3), Some(3));
        assert_eq!(f.log_end_offset(), 3);
        assert_eq!(f.on_offset_out_of_range(&fetch, 1), None, "stale");
    }

    #[test]
    fn answers_to_an_older_fetch_are_ignored() {
        // The follower's fetch at offset 3 with epoch 1 diverged and it truncated to 2; it then
        // fetched a record of epoch 5 at 2. A delayed copy of the old answer, or one to a repeat
        // of the old fetch, must not cut that record.
        let mut f = follower(&[1, 1, 1], 0);
        let old = f.fetch_request();
        assert_eq!(f.on_diverging(&old, div(1, 2)), Some(2));
        f.on_batch(5, 2, 3).unwrap();
        assert_eq!(f.fetch_request().fetch_offset, old.fetch_offset);
        assert!(!f.is_current(&old));
        assert_eq!(f.on_diverging(&old, div(1, 2)), None);
        assert_eq!(f.log_end_offset(), 3);
        assert!(f.is_current(&f.fetch_request()));
    }
}
