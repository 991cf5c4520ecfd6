//! The leader's side of one partition: its followers' progress, the ISR and its version, the
//! high watermark, ISR proposals, and acks=all completion.
//!
//! A [`LeaderState`] lives for one leader epoch on one node: the caller creates it when the
//! controller names this node leader (taking over the [`LocalLog`] of the previous role), and
//! turns it back into a [`LocalLog`] when a newer epoch arrives. Every follower starts with an
//! unknown LEO, so the HW holds still until each member of the ISR has fetched once.
//!
//! The caller's loop: [`LeaderState::on_append`] after each local append (with the leader epoch
//! stamped in the batch); [`LeaderState::on_follower_fetch`] for each follower fetch, sending the
//! records it names with the HW it returns; [`LeaderState::tick`] now and then for ISR shrinks;
//! every [`IsrProposal`] to the quorum, resending [`LeaderState::pending_proposal`] while it goes
//! unanswered; [`LeaderState::apply_isr`] with each committed ISR of this leader epoch; and, when
//! the HW moved or the ISR changed, [`LeaderState::acks_all_ready`] for the waiting acks=all
//! produces.
//!
//! # Invariants
//! `REP-2` (HW), `REP-3` (ISR versions and the outstanding proposal), `REP-4` (ISR join),
//! `REP-5` (follower LEOs only from agreeing fetches) and `REP-6` (acks=all), as the module docs
//! of `replication` state them.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    DivergingEpoch, EpochEndOffset, FollowerFetch, IsrProposal, LeaderEpochCache, LocalLog,
    PartitionLeadership,
};

/// The leader's settings, under Kafka's config names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaderConfig {
    /// `min.insync.replicas`. Used as `min(min.insync.replicas, replicas)`, Kafka's effective
    /// minimum, so a topic with fewer replicas than the setting can still commit.
    pub min_insync_replicas: usize,
    /// `replica.lag.time.max.ms`: how long a follower may go without catching up before it is
    /// proposed for removal from the ISR.
    pub replica_lag_time_max_ms: i64,
}

impl Default for LeaderConfig {
    fn default() -> Self {
        LeaderConfig {
            min_insync_replicas: 1,
            replica_lag_time_max_ms: 30_000,
        }
    }
}

/// What the leader answers a follower fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchAnswer {
    /// Send the records of `[from_offset, to_offset)` (possibly empty; the caller may send fewer,
    /// whole batches only, to respect its size limits).
    Records {
        /// The follower's fetch offset.
        from_offset: i64,
        /// The leader's LEO.
        to_offset: i64,
    },
    /// The follower's log disagrees with the leader's; it must truncate (`REP-7`).
    Diverging(DivergingEpoch),
    /// OFFSET_OUT_OF_RANGE: the fetch offset is past the leader's log, or the follower's last
    /// fetched epoch is unknown here.
    OffsetOutOfRange {
        /// The leader's LEO.
        log_end_offset: i64,
    },
    /// FENCED_LEADER_EPOCH: the follower's leader epoch is older than the leader's.
    FencedLeaderEpoch,
    /// UNKNOWN_LEADER_EPOCH: the follower's leader epoch is newer; this leader is stale.
    UnknownLeaderEpoch,
    /// NOT_LEADER_OR_FOLLOWER: the fetcher is not a follower of this partition.
    NotFollower,
}

/// The outcome of a follower fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchOutcome {
    /// What to answer.
    pub answer: FetchAnswer,
    /// The leader's HW after the fetch, which the answer carries.
    pub high_watermark: i64,
    /// Whether the fetch moved the HW (acks=all produces up to it may now be answered).
    pub hw_advanced: bool,
    /// An ISR expansion to send to the quorum (`REP-4`).
    pub proposal: Option<IsrProposal>,
}

/// Whether an acks=all produce can be answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcksAll {
    /// Every ISR member has it and the ISR is large enough: answer success.
    Ready,
    /// Not yet replicated to every ISR member: keep waiting (or time out).
    Wait,
    /// The committed ISR has fewer than `min.insync.replicas` members: NOT_ENOUGH_REPLICAS
    /// before the append, NOT_ENOUGH_REPLICAS_AFTER_APPEND after it.
    NotEnoughReplicas,
}

/// The result of [`LeaderState::apply_isr`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsrApplied {
    /// The committed ISR was replaced; the HW may have moved.
    Applied {
        /// Whether the HW advanced (removing a lagging member can let it).
        hw_advanced: bool,
    },
    /// Not newer than the partition epoch the leader has: ignored (`REP-3`).
    Stale,
    /// Not an ISR of this leader (missing the leader, or naming a non-replica): ignored.
    Invalid,
}

/// What the leader knows of one follower, Kafka's `ReplicaState`.
#[derive(Debug, Clone, Copy)]
struct Progress {
    /// The follower's LEO from its last agreeing fetch (`REP-5`); `None` until it fetched in
    /// this leader epoch.
    log_end_offset: Option<i64>,
    /// When it last fetched.
    last_fetch_ms: i64,
    /// The leader's LEO when it last fetched.
    last_fetch_leader_leo: Option<i64>,
    /// The last time its LEO was at the leader's LEO (Kafka's `lastCaughtUpTimeMs`).
    last_caught_up_ms: i64,
}

/// The leader of one partition for one leader epoch.
#[derive(Debug, Clone)]
pub struct LeaderState {
    replica_id: i32,
    leader_epoch: i32,
    partition_epoch: i32,
    replicas: Vec<i32>,
    /// The committed ISR (leader included).
    isr: BTreeSet<i32>,
    /// The outstanding proposal, if any (`REP-3`).
    pending: Option<IsrProposal>,
    config: LeaderConfig,
    log: LocalLog,
    /// The leader's LEO when it was elected: where its epoch starts (`REP-4`).
    epoch_start_offset: i64,
    followers: BTreeMap<i32, Progress>,
}

impl LeaderState {
    /// Becomes leader of `leadership` (which must name `replica_id` as leader) at `now_ms`,
    /// taking over `log`: assigns the leader epoch at the log end, and treats every ISR member as
    /// caught up now (Kafka's rule, so none is dropped before it had a chance to fetch).
    ///
    /// # Panics
    /// If `leadership` does not name `replica_id` leader or its ISR does not contain it: the
    /// controller never produces such a record (`REP-8`).
    pub fn new(
        replica_id: i32,
        leadership: &PartitionLeadership,
        config: LeaderConfig,
        mut log: LocalLog,
        now_ms: i64,
    ) -> LeaderState {
        assert_eq!(
            leadership.leader,
            Some(replica_id),
            "{replica_id} is not the leader of {leadership:?}"
        );
        assert!(
            leadership.isr.contains(&replica_id),
            "leader {replica_id} outside its ISR {:?}",
            leadership.isr
        );
        log.epochs
            .assign(leadership.leader_epoch, log.log_end_offset);
        let isr: BTreeSet<i32> = leadership.isr.iter().copied().collect();
        let followers = leadership
            .replicas
            .iter()
            .filter(|&&r| r != replica_id)
            .map(|&r| {
                let progress = Progress {
                    log_end_offset: None,
                    last_fetch_ms: 0,
                    last_fetch_leader_leo: None,
                    last_caught_up_ms: if isr.contains(&r) { now_ms } else { 0 },
                };
                (r, progress)
            })
            .collect();
        LeaderState {
            replica_id,
            leader_epoch: leadership.leader_epoch,
            partition_epoch: leadership.partition_epoch,
            replicas: leadership.replicas.clone(),
            isr,
            pending: None,
            config,
            epoch_start_offset: log.log_end_offset,
            log,
            followers,
        }
    }

    /// This replica.
    pub fn replica_id(&self) -> i32 {
        self.replica_id
    }

    /// The leader epoch it leads in.
    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch
    }

    /// The partition epoch (ISR version) of the committed ISR it has.
    pub fn partition_epoch(&self) -> i32 {
        self.partition_epoch
    }

    /// The assignment.
    pub fn replicas(&self) -> &[i32] {
        &self.replicas
    }

    /// The committed ISR, in assignment order.
    pub fn isr(&self) -> Vec<i32> {
        self.in_order(|r| self.isr.contains(&r))
    }

    /// The committed ISR plus a member an outstanding proposal adds, in assignment order: the
    /// replicas the HW waits for (`REP-2`).
    pub fn maximal_isr(&self) -> Vec<i32> {
        self.in_order(|r| self.in_maximal_isr(r))
    }

    /// The outstanding ISR proposal, to resend while it goes unanswered.
    pub fn pending_proposal(&self) -> Option<&IsrProposal> {
        self.pending.as_ref()
    }

    /// The high watermark.
    pub fn high_watermark(&self) -> i64 {
        self.log.high_watermark
    }

    /// The leader's LEO.
    pub fn log_end_offset(&self) -> i64 {
        self.log.log_end_offset
    }

    /// Where this leader epoch starts in the log.
    pub fn epoch_start_offset(&self) -> i64 {
        self.epoch_start_offset
    }

    /// The leader's epoch cache.
    pub fn epochs(&self) -> &LeaderEpochCache {
        &self.log.epochs
    }

    /// A follower's LEO as the leader last saw it, `None` if it has not fetched in this epoch.
    pub fn follower_log_end_offset(&self, replica_id: i32) -> Option<i64> {
        self.followers
            .get(&replica_id)
            .and_then(|p| p.log_end_offset)
    }

    /// The effective `min.insync.replicas`.
    pub fn min_insync_replicas(&self) -> usize {
        self.config
            .min_insync_replicas
            .min(self.replicas.len())
            .max(1)
    }

    /// Takes new settings (a topic's `min.insync.replicas` changed). A larger minimum holds the
    /// HW from now on; a smaller one lets it advance at the next append or fetch.
    pub fn set_config(&mut self, config: LeaderConfig) {
        self.config = config;
    }

    /// Whether the committed ISR is large enough for acks=all produces (checked before the
    /// append: NOT_ENOUGH_REPLICAS otherwise).
    pub fn min_isr_met(&self) -> bool {
        self.isr.len() >= self.min_insync_replicas()
    }

    /// Gives the log back, for the next role.
    pub fn into_log(self) -> LocalLog {
        self.log
    }

    /// Records were appended locally; the log now ends at `log_end_offset`. Returns whether the
    /// HW advanced (only with an ISR of the leader alone).
    ///
    /// # Panics
    /// If the log end moves backwards: a leader never truncates its own log.
    pub fn on_append(&mut self, log_end_offset: i64) -> bool {
        assert!(
            log_end_offset >= self.log.log_end_offset,
            "leader log end moved back from {} to {log_end_offset}",
            self.log.log_end_offset
        );
        self.log.log_end_offset = log_end_offset;
        self.maybe_advance_hw()
    }

    /// OffsetForLeaderEpoch on the leader: where `requested_epoch` ends in its log.
    pub fn offset_for_leader_epoch(&self, requested_epoch: i32) -> EpochEndOffset {
        self.log
            .epochs
            .end_offset_for(requested_epoch, self.log.log_end_offset)
    }

    /// A follower fetch at `now_ms`. If the follower's last fetched epoch agrees with the
    /// leader's log (Fetch v12+'s check), takes its fetch offset as its LEO (`REP-5`), updates
    /// when it last caught up, moves the HW (`REP-2`) and proposes it for the ISR if it may join
    /// (`REP-4`); otherwise answers the divergence and changes nothing.
    pub fn on_follower_fetch(&mut self, fetch: &FollowerFetch, now_ms: i64) -> FetchOutcome {
        if let Some(answer) = self.check_fetch(fetch) {
            return FetchOutcome {
                answer,
                high_watermark: self.log.high_watermark,
                hw_advanced: false,
                proposal: None,
            };
        }
        let leader_leo = self.log.log_end_offset;
        let Some(progress) = self.followers.get_mut(&fetch.replica_id) else {
            unreachable!("check_fetch accepted a non-follower");
        };
        // Kafka's lastCaughtUpTimeMs: caught up now if at the leader's end; caught up at the
        // previous fetch if it has reached what the leader had then.
        if fetch.fetch_offset >= leader_leo {
            progress.last_caught_up_ms = progress.last_caught_up_ms.max(now_ms);
        } else if progress
            .last_fetch_leader_leo
            .is_some_and(|prev| fetch.fetch_offset >= prev)
        {
            progress.last_caught_up_ms = progress.last_caught_up_ms.max(progress.last_fetch_ms);
        }
        progress.log_end_offset = Some(fetch.fetch_offset);
        progress.last_fetch_ms = now_ms;
        progress.last_fetch_leader_leo = Some(leader_leo);

        let hw_advanced = self.maybe_advance_hw();
        let proposal = self.maybe_expand(fetch.replica_id, fetch.fetch_offset);
        FetchOutcome {
            answer: FetchAnswer::Records {
                from_offset: fetch.fetch_offset,
                to_offset: leader_leo,
            },
            high_watermark: self.log.high_watermark,
            hw_advanced,
            proposal,
        }
    }

    /// Periodic work at `now_ms`: proposes removing from the ISR every follower that has not
    /// caught up within `replica.lag.time.max.ms` (and is not at the leader's end), unless a
    /// proposal is outstanding.
    pub fn tick(&mut self, now_ms: i64) -> Option<IsrProposal> {
        if self.pending.is_some() {
            return None;
        }
        let lagging: Vec<i32> = self
            .isr
            .iter()
            .copied()
            .filter(|&r| r != self.replica_id && !self.caught_up(r, now_ms))
            .collect();
        if lagging.is_empty() {
            return None;
        }
        let isr = self.in_order(|r| self.isr.contains(&r) && !lagging.contains(&r));
        Some(self.propose(isr))
    }

    /// The quorum committed `isr` at `partition_epoch` for this leader epoch. Ignored unless the
    /// version is newer (`REP-3`); clears the outstanding proposal, whether this was it or not,
    /// since only a proposal made from the current version can be committed later.
    pub fn apply_isr(&mut self, isr: &[i32], partition_epoch: i32) -> IsrApplied {
        if partition_epoch <= self.partition_epoch {
            return IsrApplied::Stale;
        }
        if !isr.contains(&self.replica_id) || isr.iter().any(|r| !self.replicas.contains(r)) {
            return IsrApplied::Invalid;
        }
        self.isr = isr.iter().copied().collect();
        self.partition_epoch = partition_epoch;
        self.pending = None;
        IsrApplied::Applied {
            hw_advanced: self.maybe_advance_hw(),
        }
    }

    /// The quorum refused `proposal` outright (it was applied and rejected, so the committed ISR
    /// did not change): it is no longer outstanding, and a new one may be made. An answer that
    /// leaves the outcome unknown must not be reported here (`REP-3`).
    pub fn proposal_rejected(&mut self, proposal: &IsrProposal) {
        if self.pending.as_ref() == Some(proposal) {
            self.pending = None;
        }
    }

    /// Whether an acks=all produce whose batch ends before `required_offset` (the LEO right
    /// after its append) can be answered (`REP-6`).
    pub fn acks_all_ready(&self, required_offset: i64) -> AcksAll {
        if !self.min_isr_met() {
            AcksAll::NotEnoughReplicas
        } else if self.log.high_watermark >= required_offset {
            AcksAll::Ready
        } else {
            AcksAll::Wait
        }
    }

    /// `Some(answer)` if the fetch must be refused or diverges; `None` if it agrees.
    fn check_fetch(&self, fetch: &FollowerFetch) -> Option<FetchAnswer> {
        if fetch.replica_id == self.replica_id || !self.followers.contains_key(&fetch.replica_id) {
            return Some(FetchAnswer::NotFollower);
        }
        if fetch.current_leader_epoch < self.leader_epoch {
            return Some(FetchAnswer::FencedLeaderEpoch);
        }
        if fetch.current_leader_epoch > self.leader_epoch {
            return Some(FetchAnswer::UnknownLeaderEpoch);
        }
        let leo = self.log.log_end_offset;
        if let Some(last_epoch) = fetch.last_fetched_epoch {
            let end = self.log.epochs.end_offset_for(last_epoch, leo);
            if end.is_undefined() {
                return Some(FetchAnswer::OffsetOutOfRange {
                    log_end_offset: leo,
                });
            }
            if end.epoch < last_epoch || end.end_offset < fetch.fetch_offset {
                return Some(FetchAnswer::Diverging(DivergingEpoch {
                    epoch: end.epoch,
                    end_offset: end.end_offset,
                }));
            }
        }
        if fetch.fetch_offset < 0 || fetch.fetch_offset > leo {
            return Some(FetchAnswer::OffsetOutOfRange {
                log_end_offset: leo,
            });
        }
        None
    }

    fn in_maximal_isr(&self, replica_id: i32) -> bool {
        self.isr.contains(&replica_id)
            || self
                .pending
                .as_ref()
                .is_some_and(|p| p.isr.contains(&replica_id))
    }

    /// Kafka's `isCaughtUp`: at the leader's end, or caught up within the lag time.
    fn caught_up(&self, replica_id: i32, now_ms: i64) -> bool {
        self.followers.get(&replica_id).is_some_and(|p| {
            p.log_end_offset == Some(self.log.log_end_offset)
                || now_ms - p.last_caught_up_ms <= self.config.replica_lag_time_max_ms
        })
    }

    /// REP-2: the smallest LEO over the leader and the maximal ISR, forwards only, and only
    /// with a committed ISR of at least `min.insync.replicas`.
    fn maybe_advance_hw(&mut self) -> bool {
        if !self.min_isr_met() {
            return false;
        }
        let mut hw = self.log.log_end_offset;
        for (&r, p) in &self.followers {
            if !self.in_maximal_isr(r) {
                continue;
            }
            match p.log_end_offset {
                Some(leo) => hw = hw.min(leo),
                None => return false,
            }
        }
        if hw > self.log.high_watermark {
            self.log.high_watermark = hw;
            true
        } else {
            false
        }
    }

    /// REP-4: a follower outside the maximal ISR that has reached the HW and this epoch's start.
    fn maybe_expand(&mut self, replica_id: i32, follower_leo: i64) -> Option<IsrProposal> {
        if self.pending.is_some()
            || self.isr.contains(&replica_id)
            || follower_leo < self.log.high_watermark
            || follower_leo < self.epoch_start_offset
        {
            return None;
        }
        let isr = self.in_order(|r| self.isr.contains(&r) || r == replica_id);
        Some(self.propose(isr))
    }

    fn propose(&mut self, isr: Vec<i32>) -> IsrProposal {
        let proposal = IsrProposal {
            leader_id: self.replica_id,
            leader_epoch: self.leader_epoch,
            partition_epoch: self.partition_epoch,
            isr,
        };
        self.pending = Some(proposal.clone());
        proposal
    }

    fn in_order(&self, keep: impl Fn(i32) -> bool) -> Vec<i32> {
        self.replicas.iter().copied().filter(|&r| keep(r)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replication::{EpochEntry, FollowerState};

    const LAG_MS: i64 = 100;

    fn leadership(leader: i32, leader_epoch: i32, isr: &[i32]) -> PartitionLeadership {
        PartitionLeadership {
            replicas: vec![1, 2, 3],
            isr: isr.to_vec(),
            leader: Some(leader),
            leader_epoch,
            partition_epoch: 10,
        }
    }

    fn config(min_insync_replicas: usize) -> LeaderConfig {
        LeaderConfig {
            min_insync_replicas,
            replica_lag_time_max_ms: LAG_MS,
        }
    }

    /// Leader 1 of epoch 5 over `isr`, with a log of `leo` records (epoch 5 starting at `leo`).
    fn leader(isr: &[i32], min_isr: usize, leo: i64) -> LeaderState {
        let log = LocalLog::new(leo, 0, LeaderEpochCache::new());
        LeaderState::new(1, &leadership(1, 5, isr), config(min_isr), log, 0)
    }

    fn fetch(replica_id: i32, fetch_offset: i64, last_fetched_epoch: Option<i32>) -> FollowerFetch {
        FollowerFetch {
            replica_id,
            current_leader_epoch: 5,
            fetch_offset,
            last_fetched_epoch,
        }
    }

    fn records(outcome: &FetchOutcome) -> (i64, i64) {
        match outcome.answer {
            FetchAnswer::Records {
                from_offset,
                to_offset,
            } => (from_offset, to_offset),
            other => panic!("expected records, got {other:?}"),
        }
    }

    #[test]
    fn a_new_leader_assigns_its_epoch_at_its_log_end() {
        let l = leader(&[1, 2, 3], 2, 7);
        assert_eq!(
            l.epochs().entries(),
            [EpochEntry {
                epoch: 5,
                start_offset: 7
            }]
        );
        assert_eq!(l.epoch_start_offset(), 7);
        assert_eq!(l.offset_for_leader_epoch(5).end_offset, 7);
    }

    #[test]
    fn hw_waits_for_every_isr_member_and_is_their_smallest_leo() {
        let mut l = leader(&[1, 2, 3], 2, 0);
        assert!(!l.on_append(10));
        assert_eq!(l.high_watermark(), 0);
        let o = l.on_follower_fetch(&fetch(2, 10, Some(5)), 1);
        assert_eq!(records(&o), (10, 10));
        assert!(!o.hw_advanced, "replica 3 has not fetched yet (REP-2)");
        let o = l.on_follower_fetch(&fetch(3, 4, Some(5)), 2);
        assert!(o.hw_advanced);
        assert_eq!(o.high_watermark, 4);
        let o = l.on_follower_fetch(&fetch(3, 10, Some(5)), 3);
        assert_eq!(o.high_watermark, 10);
    }

    #[test]
    fn hw_never_moves_backwards() {
        let mut l = leader(&[1, 2], 1, 0);
        l.on_append(8);
        assert!(l.on_follower_fetch(&fetch(2, 8, Some(5)), 1).hw_advanced);
        // A delayed, older fetch of the same follower.
        let o = l.on_follower_fetch(&fetch(2, 3, Some(5)), 2);
        assert_eq!(o.high_watermark, 8);
        assert!(!o.hw_advanced);
        assert_eq!(l.high_watermark(), 8);
    }

    #[test]
    fn hw_holds_while_the_isr_is_below_min_isr() {
        let mut l = leader(&[1], 2, 0);
        assert!(!l.on_append(5));
        assert_eq!(l.high_watermark(), 0);
        assert_eq!(l.acks_all_ready(5), AcksAll::NotEnoughReplicas);
        assert!(!l.min_isr_met());
        // The same ISR with min.insync.replicas 1 commits on append alone.
        let mut alone = leader(&[1], 1, 0);
        assert!(alone.on_append(5));
        assert_eq!(alone.acks_all_ready(5), AcksAll::Ready);
    }

    #[test]
    fn effective_min_isr_is_capped_by_the_replica_count() {
        let l = leader(&[1, 2, 3], 5, 0);
        assert_eq!(l.min_insync_replicas(), 3);
        assert!(l.min_isr_met());
    }

    #[test]
    fn acks_all_waits_for_the_hw_then_answers() {
        let mut l = leader(&[1, 2, 3], 2, 0);
        l.on_append(3);
        assert_eq!(l.acks_all_ready(3), AcksAll::Wait);
        l.on_follower_fetch(&fetch(2, 3, Some(5)), 1);
        assert_eq!(l.acks_all_ready(3), AcksAll::Wait, "replica 3 lacks it");
        l.on_follower_fetch(&fetch(3, 2, Some(5)), 1);
        assert_eq!(l.acks_all_ready(2), AcksAll::Ready);
        assert_eq!(l.acks_all_ready(3), AcksAll::Wait);
        l.on_follower_fetch(&fetch(3, 3, Some(5)), 2);
        assert_eq!(l.acks_all_ready(3), AcksAll::Ready);
    }

    #[test]
    fn a_lagging_follower_is_proposed_for_removal_and_the_hw_moves_when_committed() {
        let mut l = leader(&[1, 2, 3], 2, 0);
        l.on_append(10);
        l.on_follower_fetch(&fetch(2, 10, Some(5)), 10);
        l.on_follower_fetch(&fetch(3, 2, Some(5)), 10);
        assert_eq!(l.high_watermark(), 2);
        assert_eq!(l.tick(LAG_MS), None, "within the lag time");
        let p = l.tick(LAG_MS + 1).expect("replica 3 lags");
        assert_eq!(p.isr, [1, 2]);
        assert_eq!((p.leader_id, p.leader_epoch, p.partition_epoch), (1, 5, 10));
        assert_eq!(l.tick(LAG_MS + 2), None, "one proposal at a time (REP-3)");
        assert_eq!(l.pending_proposal(), Some(&p));
        // REP-2: the member being removed still holds the HW back.
        assert_eq!(l.maximal_isr(), [1, 2, 3]);
        assert_eq!(l.high_watermark(), 2);
        assert_eq!(
            l.apply_isr(&[1, 2], 11),
            IsrApplied::Applied { hw_advanced: true }
        );
        assert_eq!(l.high_watermark(), 10);
        assert_eq!(l.pending_proposal(), None);
        assert_eq!(l.isr(), [1, 2]);
    }

    #[test]
    fn a_follower_at_the_leaders_end_is_never_lagging() {
        let mut l = leader(&[1, 2], 1, 4);
        l.on_follower_fetch(&fetch(2, 4, Some(5)), 0);
        assert_eq!(l.tick(10 * LAG_MS), None, "no new records: still caught up");
        l.on_append(5);
        assert!(l.tick(10 * LAG_MS).is_some());
    }

    #[test]
    fn a_follower_keeping_pace_with_the_previous_fetch_stays_caught_up() {
        let mut l = leader(&[1, 2], 1, 0);
        let mut leo = 0;
        for step in 1..=20 {
            let now = step * 30;
            // The follower always ends where the leader ended at its previous fetch.
            l.on_follower_fetch(&fetch(2, leo, Some(5)), now);
            leo = l.log_end_offset();
            l.on_append(leo + 3);
            assert_eq!(l.tick(now), None, "step {step}");
        }
    }

    #[test]
    fn a_follower_that_never_fetches_is_dropped_after_the_lag_time() {
        let mut l = leader(&[1, 2, 3], 2, 0);
        l.on_append(1);
        l.on_follower_fetch(&fetch(2, 1, Some(5)), 50);
        assert_eq!(l.tick(LAG_MS + 1).map(|p| p.isr), Some(vec![1, 2]));
    }

    #[test]
    fn a_follower_reaching_the_hw_and_the_epoch_start_is_proposed_for_the_isr() {
        // REP-4: leader elected at offset 10 with a lagging HW of 4.
        let log = LocalLog::new(10, 4, LeaderEpochCache::rebuild([(3, 0)]));
        let mut l = LeaderState::new(1, &leadership(1, 5, &[1, 2]), config(1), log, 0);
        l.on_follower_fetch(&fetch(2, 10, Some(3)), 1);
        assert_eq!(l.high_watermark(), 10);
        let o = l.on_follower_fetch(&fetch(3, 6, Some(3)), 2);
        assert_eq!(o.proposal, None, "below the HW");
        // A follower at the old HW but short of the epoch start must not join.
        let log = LocalLog::new(10, 4, LeaderEpochCache::rebuild([(3, 0)]));
        let mut l = LeaderState::new(1, &leadership(1, 5, &[1, 2]), config(1), log, 0);
        let o = l.on_follower_fetch(&fetch(3, 6, Some(3)), 1);
        assert_eq!(l.high_watermark(), 4);
        assert_eq!(
            o.proposal, None,
            "above the lagging HW, below the epoch start"
        );
        let o = l.on_follower_fetch(&fetch(3, 10, Some(3)), 2);
        let p = o.proposal.expect("caught up");
        assert_eq!(p.isr, [1, 2, 3]);
        assert_eq!(l.maximal_isr(), [1, 2, 3]);
        assert_eq!(l.isr(), [1, 2]);
    }

    #[test]
    fn a_replica_being_added_holds_the_hw_back_until_the_proposal_settles() {
        let mut l = leader(&[1], 1, 0);
        l.on_append(5);
        assert_eq!(l.high_watermark(), 5);
        let o = l.on_follower_fetch(&fetch(2, 5, Some(5)), 1);
        assert_eq!(o.proposal.map(|p| p.isr), Some(vec![1, 2]));
        l.on_append(9);
        assert_eq!(l.high_watermark(), 5, "replica 2 counts already (REP-2)");
        // The quorum committed another change instead (a newer version without replica 2).
        assert_eq!(
            l.apply_isr(&[1], 11),
            IsrApplied::Applied { hw_advanced: true }
        );
        assert_eq!(l.high_watermark(), 9);
        assert_eq!(l.pending_proposal(), None);
    }

    #[test]
    fn stale_or_invalid_isr_versions_are_ignored() {
        let mut l = leader(&[1, 2, 3], 2, 0);
        assert_eq!(l.apply_isr(&[1, 2], 10), IsrApplied::Stale);
        assert_eq!(l.apply_isr(&[1, 2], 9), IsrApplied::Stale);
        assert_eq!(l.apply_isr(&[2, 3], 11), IsrApplied::Invalid);
        assert_eq!(l.apply_isr(&[1, 4], 11), IsrApplied::Invalid);
        assert_eq!(l.isr(), [1, 2, 3]);
        assert_eq!(l.partition_epoch(), 10);
        assert!(matches!(
            l.apply_isr(&[1, 3], 12),
            IsrApplied::Applied { .. }
        ));
        assert_eq!(l.apply_isr(&[1, 2, 3], 11), IsrApplied::Stale, "reordered");
        assert_eq!(l.isr(), [1, 3]);
    }

    #[test]
    fn a_divergent_fetch_is_answered_and_changes_nothing() {
        // Leader log: epoch 2 at [0, 5), epoch 5 from 5, LEO 8.
        let log = LocalLog::new(5, 0, LeaderEpochCache::rebuild([(2, 0)]));
        let mut l = LeaderState::new(1, &leadership(1, 5, &[1, 2]), config(1), log, 0);
        l.on_append(8);
        // The follower has epoch 2 up to 7: epoch 2 ends at 5 on the leader.
        let o = l.on_follower_fetch(&fetch(2, 7, Some(2)), 1);
        assert_eq!(
            o.answer,
            FetchAnswer::Diverging(DivergingEpoch {
                epoch: 2,
                end_offset: 5
            })
        );
        assert_eq!(l.follower_log_end_offset(2), None, "REP-5");
        assert_eq!(l.high_watermark(), 0);
        // The follower has epoch 4, which the leader never had: compare with epoch 2.
        let o = l.on_follower_fetch(&fetch(2, 6, Some(4)), 1);
        assert_eq!(
            o.answer,
            FetchAnswer::Diverging(DivergingEpoch {
                epoch: 2,
                end_offset: 5
            })
        );
        // Agreeing fetches: within epoch 2, and within the current epoch.
        assert_eq!(
            records(&l.on_follower_fetch(&fetch(2, 5, Some(2)), 2)),
            (5, 8)
        );
        assert_eq!(
            records(&l.on_follower_fetch(&fetch(2, 8, Some(5)), 3)),
            (8, 8)
        );
        assert_eq!(l.high_watermark(), 8);
    }

    #[test]
    fn fetches_with_other_epochs_or_from_strangers_are_refused() {
        let mut l = leader(&[1, 2, 3], 2, 0);
        let mut f = fetch(2, 0, None);
        f.current_leader_epoch = 4;
        assert_eq!(
            l.on_follower_fetch(&f, 0).answer,
            FetchAnswer::FencedLeaderEpoch
        );
        f.current_leader_epoch = 6;
        assert_eq!(
            l.on_follower_fetch(&f, 0).answer,
            FetchAnswer::UnknownLeaderEpoch
        );
        assert_eq!(
            l.on_follower_fetch(&fetch(4, 0, None), 0).answer,
            FetchAnswer::NotFollower
        );
        assert_eq!(
            l.on_follower_fetch(&fetch(1, 0, None), 0).answer,
            FetchAnswer::NotFollower
        );
        assert_eq!(
            l.on_follower_fetch(&fetch(2, 3, None), 0).answer,
            FetchAnswer::OffsetOutOfRange { log_end_offset: 0 }
        );
        assert_eq!(
            l.on_follower_fetch(&fetch(2, 3, Some(9)), 0).answer,
            FetchAnswer::OffsetOutOfRange { log_end_offset: 0 },
            "an epoch above the leader's"
        );
        assert!(l.followers.values().all(|p| p.log_end_offset.is_none()));
    }

    /// Drives a follower against a leader, as a fetcher would, until it has caught up; each log
    /// is the epochs of its records. Returns the follower's log.
    fn replicate(
        leader: &mut LeaderState,
        leader_log: &[i32],
        mut follower: FollowerState,
        mut log: Vec<i32>,
    ) -> Vec<i32> {
        for round in 0..20 {
            let fetch = follower.fetch_request();
            let outcome = leader.on_follower_fetch(&fetch, round);
            match outcome.answer {
                FetchAnswer::Records {
                    from_offset,
                    to_offset,
                } => {
                    for offset in from_offset..to_offset {
                        let epoch = leader_log[offset as usize];
                        log.push(epoch);
                        follower.on_batch(epoch, offset, offset + 1).unwrap();
                    }
                    follower.on_high_watermark(outcome.high_watermark);
                    if from_offset == to_offset {
                        return log;
                    }
                }
                FetchAnswer::Diverging(d) => {
                    let to = follower.on_diverging(&fetch, d).expect("current fetch");
                    log.truncate(to as usize);
                }
                other => panic!("{other:?}"),
            }
        }
        panic!("did not converge: {log:?}");
    }

    #[test]
    fn a_rejoining_follower_truncates_to_the_epoch_boundary_and_catches_up() {
        // KIP-279's case: the follower led epoch 3 and wrote 3 records nobody else has; the
        // leader of epoch 4 then wrote over those offsets, and now leads epoch 5.
        let leader_log = [1, 1, 2, 2, 4, 4, 4, 5];
        let mut cache = LeaderEpochCache::rebuild([(1, 0), (2, 2), (4, 4)]);
        cache.assign(5, 7);
        let log = LocalLog::new(7, 0, cache);
        let mut l = LeaderState::new(1, &leadership(1, 5, &[1, 3]), config(1), log, 0);
        l.on_append(8);
        let follower_log = vec![1, 1, 2, 3, 3, 3];
        let cache = LeaderEpochCache::rebuild([(1, 0), (2, 2), (3, 3)]);
        let f = FollowerState::new(2, 1, 5, LocalLog::new(6, 2, cache));
        let log = replicate(&mut l, &leader_log, f, follower_log);
        assert_eq!(log, leader_log);
    }

    #[test]
    fn a_follower_lacking_the_leaders_epoch_truncates_to_its_own_earlier_epoch() {
        // The follower led epoch 3 right after epoch 0 and never saw epoch 2, which the leader
        // (of epoch 4, now 5) holds at [2, 5). Epoch 3's records must all go, even those below
        // where the leader's epoch 2 ends.
        let leader_log = [0, 0, 2, 2, 2, 4, 5];
        let mut cache = LeaderEpochCache::rebuild([(0, 0), (2, 2), (4, 5)]);
        cache.assign(5, 6);
        let log = LocalLog::new(6, 0, cache);
        let mut l = LeaderState::new(1, &leadership(1, 5, &[1, 3]), config(1), log, 0);
        l.on_append(7);
        let follower_log = vec![0, 0, 3, 3];
        let cache = LeaderEpochCache::rebuild([(0, 0), (3, 2)]);
        let f = FollowerState::new(2, 1, 5, LocalLog::new(4, 2, cache));
        let log = replicate(&mut l, &leader_log, f, follower_log);
        assert_eq!(log, leader_log);
    }
}
