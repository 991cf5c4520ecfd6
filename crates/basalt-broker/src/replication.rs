//! This node's part in the replication of one partition: the [`Role`] it plays (sole replica,
//! leader of followers, follower of another node, or none), the leader's answer to a follower
//! fetch, the follower's handling of what it fetched, and acks=all readiness.
//!
//! The decisions are basalt-cluster's pure state machines ([`LeaderState`], [`FollowerState`]);
//! this module feeds them from the partition's log and carries their answers out on it.
//! The metadata image decides the roles (`Partition::apply_leadership`, called from
//! `reconcile`); the fetcher (`fetcher.rs`) carries follower fetches; the Fetch handler answers
//! them on the leader.
//!
//! # Invariants
//! - `REPL-1`: with more than one replica, consumers see only offsets below the replicated high
//!   watermark: on the leader the HW of its [`LeaderState`] (never above what every member of
//!   the ISR holds, and held while the ISR is below `min.insync.replicas`, `REP-2`); the
//!   leader's own log end in it is its durable end under `flush.policy=always`, so acknowledged
//!   records are on the leader's disk and in every ISR member's log.
//! - `REPL-2`: roles change under the producer lock and then the role lock, in that order; a
//!   node becoming leader first syncs its log (so its model's log end is durable) and records
//!   its epoch at the log end before any batch of the new epoch is appended.
//! - `REPL-3`: a follower appends only what continues its log (`Log::append_replica` keeps the
//!   leader's offsets and epochs) and only from an answer to a fetch that still describes its
//!   log; it truncates only on a divergence (or out-of-range) answer to such a fetch, then
//!   rebuilds its producer state and its model from the log. Its producer table follows every
//!   batch it appends, so it can lead with the same idempotence state.
//! - `REPL-4`: an acks=all produce is answered only once [`LeaderState::acks_all_ready`] says
//!   Ready for its last offset; NOT_ENOUGH_REPLICAS before the append when the ISR is below
//!   `min.insync.replicas`.
//! - `REPL-5`: with more than one replica, only the leader appends batches of its own (client
//!   produces, markers, group and transaction records); a follower's log grows only by
//!   `append_replica`, so it stays a prefix-copy of its leader's.

use std::sync::atomic::Ordering;

use basalt_cluster::replication::{
    AcksAll, DivergingEpoch, FetchAnswer, FollowerFetch, FollowerState, IsrApplied, IsrProposal,
    LeaderConfig, LeaderState, LocalLog, PartitionLeadership,
};
use basalt_protocol::ErrorCode;
use basalt_record::{BatchHeader, ControlType};
use basalt_storage::{AbortedTxn, StorageError};

use crate::partition::{Partition, ProduceError, rebuild_producers};

/// This node's role for one partition.
#[derive(Debug)]
pub enum Role {
    /// The only replica (or no cluster): the log's visible end is the HW (`PART-2`).
    Solo,
    /// Leads followers.
    Leader(Box<LeaderState>),
    /// Follows another node.
    Follower(Box<FollowerState>),
    /// A replica of a partition with no leader, or not a replica at all.
    Idle,
}

/// What a leadership change asks of the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LeadershipChange {
    /// The node this one now fetches the partition from, if it follows.
    pub follow: Option<i32>,
    /// The HW advanced: wake waiting fetches and acks=all produces.
    pub hw_advanced: bool,
    /// This node just became the leader (state kept beside the log, such as the coordinators'
    /// of internal topics, must be rebuilt from it).
    pub became_leader: bool,
}

/// The leader's answer to one partition of a follower fetch.
#[derive(Debug)]
pub struct ReplicaFetch {
    /// What to answer.
    pub answer: FetchAnswer,
    /// The HW to send.
    pub high_watermark: i64,
    /// The fetch moved the HW.
    pub hw_advanced: bool,
    /// An ISR change to propose.
    pub proposal: Option<IsrProposal>,
}

/// One partition of a fetch answer, as the follower needs it.
#[derive(Debug)]
pub struct Fetched<'a> {
    /// The error code.
    pub error: ErrorCode,
    /// The leader's HW.
    pub high_watermark: i64,
    /// The leader's log start offset.
    pub log_start_offset: i64,
    /// Fetch v12's diverging epoch, when the leader set one.
    pub diverging: Option<DivergingEpoch>,
    /// The records (whole batches).
    pub records: &'a [u8],
}

/// What the follower did with a fetch answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FetchApplied {
    /// Bytes appended.
    pub appended_bytes: usize,
    /// The log was truncated.
    pub truncated: bool,
    /// The answer was for an older fetch, another epoch, or not followed: ignored.
    pub stale: bool,
}

impl Partition {
    /// Whether this node leads the partition with followers.
    pub fn is_replicated(&self) -> bool {
        self.replicated.load(Ordering::Acquire)
    }

    /// The role, for status and tests: `("solo" | "leader" | "follower" | "idle", ISR as the
    /// leader knows it)`.
    pub fn role_summary(&self) -> (&'static str, Vec<i32>) {
        match &*self.role.lock() {
            Role::Solo => ("solo", Vec::new()),
            Role::Leader(l) => ("leader", l.isr()),
            Role::Follower(_) => ("follower", Vec::new()),
            Role::Idle => ("idle", Vec::new()),
        }
    }

    fn leader_config(&self, lag_ms: i64) -> LeaderConfig {
        LeaderConfig {
            min_insync_replicas: self.config().min_insync_replicas.max(1) as usize,
            replica_lag_time_max_ms: lag_ms,
        }
    }

    /// Makes this node's role match the image's record of the partition (`REPL-2`).
    pub fn apply_leadership(
        &self,
        me: i32,
        record: &PartitionLeadership,
        replica_lag_time_max_ms: i64,
        now_ms: i64,
    ) -> Result<LeadershipChange, StorageError> {
        let _producers = self.producers.lock();
        let mut role = self.role.lock();
        let mut change = LeadershipChange::default();
        if record.replicas.len() <= 1 {
            self.replicated.store(false, Ordering::Release);
            *role = Role::Solo;
            if record.leader == Some(me) {
                self.record_epoch_locked(record.leader_epoch)?;
            } else {
                self.leader_epoch
                    .store(record.leader_epoch, Ordering::Release);
            }
            return Ok(change);
        }
        self.replicated.store(true, Ordering::Release);
        match record.leader {
            Some(leader) if leader == me => {
                if let Role::Leader(state) = &mut *role
                    && state.leader_epoch() == record.leader_epoch
                {
                    state.set_config(self.leader_config(replica_lag_time_max_ms));
                    if let IsrApplied::Applied { hw_advanced } =
                        state.apply_isr(&record.isr, record.partition_epoch)
                    {
                        change.hw_advanced = hw_advanced;
                    }
                    change.hw_advanced |= self.feed_leader(state);
                    self.publish_hw(self.leader_hw(state));
                    return Ok(change);
                }
                // A new leader's model starts from a durable log (REPL-2).
                self.log.flush()?;
                self.record_epoch_locked(record.leader_epoch)?;
                let local = LocalLog::new(
                    self.log.log_end_offset(),
                    self.known_hw(),
                    self.log.leader_epochs(),
                );
                let state = LeaderState::new(
                    me,
                    record,
                    self.leader_config(replica_lag_time_max_ms),
                    local,
                    now_ms,
                );
                tracing::info!(topic = %self.topic, partition = self.index, epoch = record.leader_epoch, isr = ?record.isr, hw = state.high_watermark(), "leading");
                self.publish_hw(self.leader_hw(&state));
                *role = Role::Leader(Box::new(state));
                change.hw_advanced = true;
                change.became_leader = true;
            }
            Some(leader) if record.replicas.contains(&me) => {
                change.follow = Some(leader);
                if let Role::Follower(f) = &*role
                    && f.leader_id() == leader
                    && f.leader_epoch() == record.leader_epoch
                {
                    return Ok(change);
                }
                self.leader_epoch
                    .store(record.leader_epoch, Ordering::Release);
                let state = FollowerState::new(me, leader, record.leader_epoch, self.local_log());
                tracing::info!(topic = %self.topic, partition = self.index, leader, epoch = record.leader_epoch, log_end = state.log_end_offset(), "following");
                *role = Role::Follower(Box::new(state));
            }
            _ => {
                self.leader_epoch
                    .store(record.leader_epoch, Ordering::Release);
                *role = Role::Idle;
            }
        }
        Ok(change)
    }

    /// The HW this node knows (the leader's, or the last one it learnt), within its log.
    fn known_hw(&self) -> i64 {
        self.replicated_hw
            .load(Ordering::Acquire)
            .clamp(self.log.log_start_offset(), self.log.log_end_offset())
    }

    fn local_log(&self) -> LocalLog {
        LocalLog::new(
            self.log.log_end_offset(),
            self.known_hw(),
            self.log.leader_epochs(),
        )
    }

    fn publish_hw(&self, hw: i64) {
        if self.replicated_hw.fetch_max(hw, Ordering::AcqRel) < hw {
            self.hw_changed.notify_waiters();
        }
    }

    /// Waits until the HW passes `end` on this leader (`REPL-4`), at most `timeout`; false when
    /// the ISR is below `min.insync.replicas`, this node stopped leading, or time ran out.
    pub async fn wait_replicated(&self, end: i64, timeout: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.hw_changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.acks_all(end) {
                Ok(AcksAll::Ready) => return true,
                Ok(AcksAll::Wait) => {}
                Ok(AcksAll::NotEnoughReplicas) | Err(_) => return false,
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep_until(deadline) => return false,
                // ISR changes from the quorum move it too.
                _ = tokio::time::sleep(std::time::Duration::from_millis(100)) => {}
            }
        }
    }

    /// Records `epoch` as this node's leader epoch, at the log end if it is new (under the
    /// producer lock).
    pub(crate) fn record_epoch_locked(&self, epoch: i32) -> Result<(), StorageError> {
        self.leader_epoch.store(epoch, Ordering::Release);
        if epoch >= 0
            && self
                .log
                .leader_epochs()
                .latest_epoch()
                .is_none_or(|latest| latest < epoch)
        {
            self.log
                .assign_leader_epoch(epoch, self.log.log_end_offset())?;
        }
        Ok(())
    }

    /// Tells the leader's model where its log ends; whether the HW moved. Followers may fetch
    /// records the leader has not synced yet; the HW published stays below the leader's
    /// durable end too ([`Partition::leader_hw`], `REPL-1`).
    fn feed_leader(&self, state: &mut LeaderState) -> bool {
        let end = self.log.log_end_offset();
        end > state.log_end_offset() && state.on_append(end)
    }

    /// The HW the leader publishes: its model's, capped at what is durable here (`REPL-1`).
    fn leader_hw(&self, state: &LeaderState) -> i64 {
        state.high_watermark().min(self.local_end())
    }

    /// On the leader: local appends became durable (or were written, by policy); whether the
    /// HW moved (with an ISR of the leader alone).
    pub fn on_local_progress(&self) -> bool {
        let mut role = self.role.lock();
        let Role::Leader(state) = &mut *role else {
            return false;
        };
        let before = self.replicated_hw.load(Ordering::Acquire);
        self.feed_leader(state);
        self.publish_hw(self.leader_hw(state));
        self.replicated_hw.load(Ordering::Acquire) > before
    }

    /// On the leader: one partition of a follower fetch (`REP-5`).
    pub fn on_replica_fetch(&self, fetch: &FollowerFetch, now_ms: i64) -> ReplicaFetch {
        let mut role = self.role.lock();
        let Role::Leader(state) = &mut *role else {
            return ReplicaFetch {
                answer: FetchAnswer::NotFollower,
                high_watermark: self.high_watermark(),
                hw_advanced: false,
                proposal: None,
            };
        };
        let before = self.replicated_hw.load(Ordering::Acquire);
        self.feed_leader(state);
        let outcome = state.on_follower_fetch(fetch, now_ms);
        let hw = self.leader_hw(state);
        self.publish_hw(hw);
        ReplicaFetch {
            answer: outcome.answer,
            high_watermark: hw,
            hw_advanced: hw > before,
            proposal: outcome.proposal,
        }
    }

    /// On the leader: ISR shrinks due at `now_ms`, and the outstanding proposal to resend.
    pub fn leader_tick(&self, now_ms: i64) -> Option<IsrProposal> {
        let mut role = self.role.lock();
        let Role::Leader(state) = &mut *role else {
            return None;
        };
        self.feed_leader(state);
        self.publish_hw(self.leader_hw(state));
        state
            .tick(now_ms)
            .or_else(|| state.pending_proposal().cloned())
    }

    /// NOT_LEADER_OR_FOLLOWER unless this node may append to the partition: it is its only
    /// replica, or it leads it (`REPL-5`). Called under the producer lock.
    pub(crate) fn check_leads(&self) -> Result<(), ProduceError> {
        if !self.is_replicated() {
            return Ok(());
        }
        match &*self.role.lock() {
            Role::Leader(_) | Role::Solo => Ok(()),
            _ => Err(ProduceError::new(
                ErrorCode::NotLeaderOrFollower,
                format!("this node does not lead {}-{}", self.topic, self.index),
            )),
        }
    }

    /// The quorum rejected `proposal`: a new one may be made.
    pub fn isr_proposal_rejected(&self, proposal: &IsrProposal) {
        if let Role::Leader(state) = &mut *self.role.lock() {
            state.proposal_rejected(proposal);
        }
    }

    /// NOT_ENOUGH_REPLICAS when the leader's committed ISR is below `min.insync.replicas`
    /// (`REPL-4`); NOT_LEADER_OR_FOLLOWER when this node does not lead.
    pub(crate) fn check_min_isr(&self) -> Result<(), ProduceError> {
        match &*self.role.lock() {
            Role::Leader(state) if state.min_isr_met() => Ok(()),
            Role::Leader(state) => Err(ProduceError::new(
                ErrorCode::NotEnoughReplicas,
                format!(
                    "the in-sync replicas {:?} of {}-{} are fewer than min.insync.replicas {}",
                    state.isr(),
                    self.topic,
                    self.index,
                    state.min_insync_replicas()
                ),
            )),
            _ => Err(ProduceError::new(
                ErrorCode::NotLeaderOrFollower,
                format!("this node does not lead {}-{}", self.topic, self.index),
            )),
        }
    }

    /// Whether an acks=all produce ending before `required_offset` can be answered
    /// (`REPL-4`). A node that no longer leads answers NOT_LEADER_OR_FOLLOWER.
    pub fn acks_all(&self, required_offset: i64) -> Result<AcksAll, ErrorCode> {
        if !self.is_replicated() {
            return Ok(AcksAll::Ready);
        }
        let mut role = self.role.lock();
        match &mut *role {
            Role::Leader(state) => {
                self.feed_leader(state);
                self.publish_hw(self.leader_hw(state));
                match state.acks_all_ready(required_offset) {
                    AcksAll::Ready if self.local_end() < required_offset => Ok(AcksAll::Wait),
                    ready => Ok(ready),
                }
            }
            _ => Err(ErrorCode::NotLeaderOrFollower),
        }
    }

    /// On a follower: the fetch to send, with the leader it goes to, if it follows.
    pub fn replica_fetch_request(&self) -> Option<(i32, FollowerFetch)> {
        match &*self.role.lock() {
            Role::Follower(f) => Some((f.leader_id(), f.fetch_request())),
            _ => None,
        }
    }

    /// On a follower: applies the leader's answer to `fetch` (`REPL-3`).
    pub fn on_fetched(
        &self,
        fetch: &FollowerFetch,
        answer: Fetched<'_>,
        now_ms: i64,
    ) -> Result<FetchApplied, StorageError> {
        let mut producers = self.producers.lock();
        let mut role = self.role.lock();
        let stale = FetchApplied {
            stale: true,
            ..FetchApplied::default()
        };
        let Role::Follower(state) = &mut *role else {
            return Ok(stale);
        };
        if !state.is_current(fetch) {
            return Ok(stale);
        }
        let mut applied = FetchApplied::default();
        let truncate_to = match answer.error {
            ErrorCode::None => match answer.diverging {
                Some(d) => state.on_diverging(fetch, d),
                None => None,
            },
            ErrorCode::OffsetOutOfRange => {
                if fetch.fetch_offset < answer.log_start_offset {
                    // The leader's log starts past ours: start over at its start.
                    self.log.reset_to(answer.log_start_offset)?;
                    self.after_truncation(&mut producers, state)?;
                    applied.truncated = true;
                    tracing::info!(topic = %self.topic, partition = self.index, offset = answer.log_start_offset, "follower log reset to the leader's log start");
                    return Ok(applied);
                }
                // Only after an unclean election may a follower be ahead; keep what is
                // committed.
                state.on_offset_out_of_range(fetch, answer.high_watermark.max(0))
            }
            _ => return Ok(applied),
        };
        if let Some(target) = truncate_to {
            let end = self.log.truncate_to(target)?;
            tracing::info!(topic = %self.topic, partition = self.index, target, end, "follower truncated divergent records");
            self.after_truncation(&mut producers, state)?;
            applied.truncated = true;
            return Ok(applied);
        }
        if !answer.records.is_empty() {
            let appended = match self.log.append_replica(answer.records, now_ms) {
                Ok(a) => a,
                Err(e @ StorageError::NotContiguous { .. }) => {
                    tracing::warn!(topic = %self.topic, partition = self.index, error = %e, "fetched records do not continue the log");
                    **state = FollowerState::new(
                        state.replica_id(),
                        state.leader_id(),
                        state.leader_epoch(),
                        self.local_log(),
                    );
                    return Ok(stale);
                }
                Err(e) => return Err(e),
            };
            let mut at = 0usize;
            for h in &appended.batches {
                let batch = &answer.records[at..at + h.total_size()];
                at += h.total_size();
                if let Err(e) =
                    state.on_batch(h.partition_leader_epoch, h.base_offset, h.next_offset())
                {
                    tracing::warn!(topic = %self.topic, partition = self.index, error = %e, "follower model out of step with its log; rebuilding it");
                    **state = FollowerState::new(
                        state.replica_id(),
                        state.leader_id(),
                        state.leader_epoch(),
                        self.local_log(),
                    );
                    break;
                }
                self.follow_producers(&mut producers, h, batch)?;
            }
            self.first_unstable.store(
                producers.first_unstable_offset().unwrap_or(i64::MAX),
                Ordering::Release,
            );
            if appended.rolled {
                self.write_roll_snapshot(&producers, appended.last_offset + 1);
            }
            applied.appended_bytes = answer.records.len();
        }
        state.on_high_watermark(answer.high_watermark);
        self.publish_hw(state.high_watermark());
        // DeleteRecords and retention on the leader move the follower's log start too (within
        // what it holds).
        let start = answer.log_start_offset.min(self.log.log_end_offset());
        if start > self.log.log_start_offset() {
            drop(role);
            drop(producers);
            if let Err(e) = self.delete_records(start) {
                tracing::warn!(topic = %self.topic, partition = self.index, error = %e, "cannot move the log start with the leader's");
            }
        }
        Ok(applied)
    }

    /// A replicated batch updates the producer table as a local append or marker would.
    fn follow_producers(
        &self,
        producers: &mut crate::producer::ProducerTable,
        h: &BatchHeader,
        batch: &[u8],
    ) -> Result<(), StorageError> {
        if !h.is_control() {
            producers.on_appended(h);
            return Ok(());
        }
        let control = basalt_record::parse_control(batch).ok().flatten();
        let ended = producers.on_marker(h);
        if let (Some(ended), Some(ControlType::Abort)) = (ended, control) {
            self.log.append_aborted_txn(AbortedTxn {
                producer_id: h.producer_id,
                first_offset: ended.first_offset,
                last_offset: h.base_offset,
                last_stable_offset: producers
                    .first_unstable_offset()
                    .unwrap_or(h.base_offset + 1),
            })?;
        }
        Ok(())
    }

    /// After a truncation: the producer state and the follower's model come again from the
    /// log (`REPL-3`), and the HW stays within it.
    fn after_truncation(
        &self,
        producers: &mut crate::producer::ProducerTable,
        state: &mut FollowerState,
    ) -> Result<(), StorageError> {
        if let Err(e) = crate::snapshot::delete_above(self.log.dir(), self.log.log_end_offset()) {
            tracing::warn!(topic = %self.topic, partition = self.index, error = %e, "cannot delete producer snapshots past the truncation");
        }
        let (table, _) = rebuild_producers(&self.topic, self.index, &self.log)?;
        *producers = table;
        self.first_unstable.store(
            producers.first_unstable_offset().unwrap_or(i64::MAX),
            Ordering::Release,
        );
        let end = self.log.log_end_offset();
        self.replicated_hw.fetch_min(end, Ordering::AcqRel);
        *state = FollowerState::new(
            state.replica_id(),
            state.leader_id(),
            state.leader_epoch(),
            self.local_log(),
        );
        Ok(())
    }

    /// Stores the HW in the log's checkpoint (periodically and at shutdown), so a restarted
    /// leader does not start from 0.
    pub fn checkpoint_high_watermark(&self) {
        if self.is_replicated()
            && let Err(e) = self.log.store_high_watermark(self.high_watermark())
        {
            tracing::debug!(topic = %self.topic, partition = self.index, error = %e, "cannot store the high watermark");
        }
    }
}
