//! Share groups (KIP-932), the queue semantics of Kafka, as two pure state machines.
//!
//! [`ShareGroup`] is a group's membership as the group coordinator keeps it
//! (ShareGroupHeartbeat): members join with epoch 0 under a member id they chose, heartbeat with
//! their epoch, leave with -1, and are removed when their session times out. The partitions of
//! each topic are spread round-robin over the members subscribed to it (in member id order);
//! when a topic has fewer partitions than subscribers, each subscriber gets one partition and
//! partitions are shared. Members read records, not partitions, so an assignment change needs no
//! revocation: each member takes its new assignment at its next heartbeat.
//!
//! [`SharePartition`] is one group's state on one partition, kept by the partition's leader
//! (ShareFetch, ShareAcknowledge). Offsets below the start offset (Kafka's SPSO) are done; the
//! offsets from there to the end offset (SPEO) are *in flight*, each Available, Acquired by one
//! member until its lock expires, Acknowledged or Archived; offsets at or past the end were never
//! delivered. A delivery acquires Available offsets and new ones from the end; an
//! acknowledgement accepts (Acknowledged), releases (Available again) or rejects (Archived) the
//! offsets its member holds. A record delivered `delivery_limit` times is archived instead of
//! being made available again. The start offset moves past every leading offset that is done.
//!
//! # Invariants
//! - `SHR-1`: an offset is Acquired by at most one member at a time, and only its holder can
//!   acknowledge it; anything else is INVALID_RECORD_STATE and changes nothing.
//! - `SHR-2`: the in-flight window (end − start) never exceeds `max_in_flight` through new
//!   acquisitions, so a partition's state stays bounded whatever the consumers do.
//! - `SHR-3`: the persisted [`ShareSnapshot`] holds the start offset and every offset's
//!   delivery count and final state; restoring it makes every offset that was Acquired
//!   Available again (locks do not survive a restart), so no record is lost and none that was
//!   acknowledged is delivered again.
//! - `SHR-4`: a member epoch only grows; a heartbeat with another epoch is FENCED_MEMBER_EPOCH
//!   and changes nothing.

use std::collections::{BTreeMap, BTreeSet};

use basalt_protocol::ErrorCode;
use serde::{Deserialize, Serialize};

use crate::assignor::Assignment;
use crate::{GroupError, TopicLookup};

/// Settings of share groups and share partitions, under Kafka's config names.
#[derive(Debug, Clone)]
pub struct ShareConfig {
    /// `group.share.session.timeout.ms`.
    pub session_timeout_ms: i32,
    /// `group.share.heartbeat.interval.ms`.
    pub heartbeat_interval_ms: i32,
    /// `group.share.max.size`: most members of one share group.
    pub max_size: usize,
    /// `group.share.record.lock.duration.ms`.
    pub record_lock_duration_ms: i32,
    /// `group.share.delivery.count.limit`.
    pub delivery_limit: i16,
    /// `group.share.partition.max.record.locks`: most in-flight offsets of a share partition.
    pub max_in_flight: i64,
}

impl Default for ShareConfig {
    fn default() -> Self {
        ShareConfig {
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 5_000,
            max_size: 200,
            record_lock_duration_ms: 30_000,
            delivery_limit: 5,
            max_in_flight: 2_000,
        }
    }
}

/// One ShareGroupHeartbeat.
#[derive(Debug, Clone, Default)]
pub struct ShareHeartbeat {
    /// The member id, chosen by the client.
    pub member_id: String,
    /// 0 to join, -1 to leave, else the member's epoch.
    pub member_epoch: i32,
    /// The rack, when it changed.
    pub rack_id: Option<String>,
    /// The subscribed topics, when they changed.
    pub subscribed_topic_names: Option<Vec<String>>,
    /// The client id of the request.
    pub client_id: String,
    /// The client's address.
    pub client_host: String,
}

/// What a heartbeat is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareReply {
    /// The member id.
    pub member_id: String,
    /// The member's epoch (-1 after a leave).
    pub member_epoch: i32,
    /// How often to heartbeat.
    pub heartbeat_interval_ms: i32,
    /// The assignment, when it changed (or on join).
    pub assignment: Option<Assignment>,
}

/// A member of a share group.
#[derive(Debug, Clone)]
pub struct ShareMember {
    /// The member id.
    pub member_id: String,
    /// The member's epoch.
    pub epoch: i32,
    /// The rack.
    pub rack_id: Option<String>,
    /// The client id.
    pub client_id: String,
    /// The client's address.
    pub client_host: String,
    /// The subscribed topics.
    pub subscribed: BTreeSet<String>,
    /// The partitions assigned.
    pub assignment: Assignment,
    /// When the member is removed unless it heartbeats.
    pub deadline_ms: i64,
}

/// A share group's membership.
#[derive(Debug, Clone)]
pub struct ShareGroup {
    id: String,
    epoch: i32,
    members: BTreeMap<String, ShareMember>,
    state_timestamp: i64,
}

impl ShareGroup {
    /// A new, empty share group.
    pub fn new(id: &str, now_ms: i64) -> Self {
        ShareGroup {
            id: id.to_owned(),
            epoch: 0,
            members: BTreeMap::new(),
            state_timestamp: now_ms,
        }
    }

    /// The group id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The group epoch.
    pub fn epoch(&self) -> i32 {
        self.epoch
    }

    /// The members, by id.
    pub fn members(&self) -> &BTreeMap<String, ShareMember> {
        &self.members
    }

    /// When the membership last changed.
    pub fn state_timestamp(&self) -> i64 {
        self.state_timestamp
    }

    /// `Empty` or `Stable`, as ListGroups and ShareGroupDescribe name the states.
    pub fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else {
            "Stable"
        }
    }

    /// Handles one heartbeat (`SHR-4`).
    pub fn heartbeat(
        &mut self,
        hb: ShareHeartbeat,
        now_ms: i64,
        config: &ShareConfig,
        topics: &dyn TopicLookup,
    ) -> Result<ShareReply, GroupError> {
        if hb.member_id.is_empty() {
            return Err(GroupError::new(
                ErrorCode::InvalidRequest,
                "the member id must be set by the client",
            ));
        }
        let deadline = now_ms + i64::from(config.session_timeout_ms);
        match hb.member_epoch {
            -1 => {
                if self.members.remove(&hb.member_id).is_none() {
                    return Err(unknown_member(&hb.member_id));
                }
                self.bump(now_ms);
                Ok(ShareReply {
                    member_id: hb.member_id,
                    member_epoch: -1,
                    heartbeat_interval_ms: config.heartbeat_interval_ms,
                    assignment: None,
                })
            }
            0 => {
                let Some(subscribed) = hb.subscribed_topic_names else {
                    return Err(GroupError::new(
                        ErrorCode::InvalidRequest,
                        "a joining member must name its subscribed topics",
                    ));
                };
                if !self.members.contains_key(&hb.member_id)
                    && self.members.len() >= config.max_size
                {
                    return Err(GroupError::new(
                        ErrorCode::GroupMaxSizeReached,
                        format!("share group {} has {} members", self.id, config.max_size),
                    ));
                }
                self.bump(now_ms);
                let member = ShareMember {
                    member_id: hb.member_id.clone(),
                    epoch: self.epoch,
                    rack_id: hb.rack_id,
                    client_id: hb.client_id,
                    client_host: hb.client_host,
                    subscribed: subscribed.into_iter().collect(),
                    assignment: Assignment::new(),
                    deadline_ms: deadline,
                };
                self.members.insert(hb.member_id.clone(), member);
                let assignment = self.target(&hb.member_id, topics);
                if let Some(m) = self.members.get_mut(&hb.member_id) {
                    m.assignment = assignment.clone();
                }
                Ok(ShareReply {
                    member_id: hb.member_id,
                    member_epoch: self.epoch,
                    heartbeat_interval_ms: config.heartbeat_interval_ms,
                    assignment: Some(assignment),
                })
            }
            epoch => {
                let Some(member) = self.members.get_mut(&hb.member_id) else {
                    return Err(unknown_member(&hb.member_id));
                };
                if epoch != member.epoch {
                    return Err(GroupError::new(
                        ErrorCode::FencedMemberEpoch,
                        format!(
                            "member {} has epoch {}, not {epoch}",
                            hb.member_id, member.epoch
                        ),
                    ));
                }
                member.deadline_ms = deadline;
                if let Some(rack) = hb.rack_id {
                    member.rack_id = Some(rack);
                }
                if let Some(subscribed) = hb.subscribed_topic_names {
                    let subscribed: BTreeSet<String> = subscribed.into_iter().collect();
                    if subscribed != member.subscribed {
                        member.subscribed = subscribed;
                        self.bump(now_ms);
                    }
                }
                // Members joining or leaving, and topics created, deleted or grown since,
                // change the assignment too.
                let target = self.target(&hb.member_id, topics);
                let member = self
                    .members
                    .get_mut(&hb.member_id)
                    .expect("looked up above");
                if target == member.assignment {
                    return Ok(ShareReply {
                        member_id: hb.member_id,
                        member_epoch: member.epoch,
                        heartbeat_interval_ms: config.heartbeat_interval_ms,
                        assignment: None,
                    });
                }
                member.epoch = self.epoch;
                member.assignment = target.clone();
                Ok(ShareReply {
                    member_id: hb.member_id,
                    member_epoch: member.epoch,
                    heartbeat_interval_ms: config.heartbeat_interval_ms,
                    assignment: Some(target),
                })
            }
        }
    }

    /// Removes the members whose session ran out; their ids.
    pub fn expire(&mut self, now_ms: i64) -> Vec<String> {
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| m.deadline_ms <= now_ms)
            .map(|m| m.member_id.clone())
            .collect();
        for id in &gone {
            self.members.remove(id);
        }
        if !gone.is_empty() {
            self.bump(now_ms);
        }
        gone
    }

    fn bump(&mut self, now_ms: i64) {
        self.epoch += 1;
        self.state_timestamp = now_ms;
    }

    /// The partitions `member` should read now: its round-robin share of each topic it
    /// subscribes to.
    fn target(&self, member: &str, topics: &dyn TopicLookup) -> Assignment {
        let mut a = Assignment::new();
        let Some(m) = self.members.get(member) else {
            return a;
        };
        for name in &m.subscribed {
            let Some((id, partitions)) = topics.topic(name) else {
                continue;
            };
            if partitions <= 0 {
                continue;
            }
            let subscribers: Vec<&String> = self
                .members
                .values()
                .filter(|x| x.subscribed.contains(name))
                .map(|x| &x.member_id)
                .collect();
            let n = subscribers.len() as i32;
            let Some(index) = subscribers.iter().position(|x| *x == member) else {
                continue;
            };
            let index = index as i32;
            let mine: BTreeSet<i32> = if n <= partitions {
                (0..partitions).filter(|p| p % n == index).collect()
            } else {
                BTreeSet::from([index % partitions])
            };
            a.insert(id, mine);
        }
        a
    }
}

fn unknown_member(id: &str) -> GroupError {
    GroupError::new(
        ErrorCode::UnknownMemberId,
        format!("member {id} is not in the share group"),
    )
}

/// The state of one in-flight offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecordState {
    /// May be delivered.
    Available,
    /// Delivered to a member that has not acknowledged it yet.
    Acquired,
    /// Accepted: done.
    Acknowledged,
    /// Rejected, a gap, or delivered too often: done.
    Archived,
}

/// How a member acknowledges an offset (the wire's AcknowledgeTypes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckType {
    /// 0: not a record (a gap in the log, or a control record).
    Gap,
    /// 1: processed.
    Accept,
    /// 2: give it back for another delivery.
    Release,
    /// 3: cannot be processed.
    Reject,
}

impl AckType {
    /// The type with wire code `code`.
    pub fn from_code(code: i8) -> Option<AckType> {
        match code {
            0 => Some(AckType::Gap),
            1 => Some(AckType::Accept),
            2 => Some(AckType::Release),
            3 => Some(AckType::Reject),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
struct InFlight {
    state: RecordState,
    delivery_count: i16,
    holder: Option<String>,
    lock_deadline_ms: i64,
}

/// A range of acquired offsets, as ShareFetch answers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acquired {
    /// The first offset.
    pub first: i64,
    /// The last offset (inclusive).
    pub last: i64,
    /// How many times these offsets have been delivered, this time included.
    pub delivery_count: i16,
}

/// What is persisted of a share partition (`SHR-3`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareSnapshot {
    /// The start offset.
    pub start: i64,
    /// The end offset.
    pub end: i64,
    /// In-flight offsets that were delivered or are done: (offset, state, delivery count), in
    /// offset order. Acquired is stored as Available.
    pub records: Vec<(i64, RecordState, i16)>,
}

/// One share group's state on one partition.
#[derive(Debug, Clone)]
pub struct SharePartition {
    start: i64,
    end: i64,
    in_flight: BTreeMap<i64, InFlight>,
}

impl SharePartition {
    /// A share partition whose first record to deliver is `start`.
    pub fn new(start: i64) -> Self {
        SharePartition {
            start,
            end: start,
            in_flight: BTreeMap::new(),
        }
    }

    /// A share partition as `snapshot` left it (`SHR-3`).
    pub fn restore(snapshot: &ShareSnapshot) -> Self {
        let mut p = SharePartition::new(snapshot.start);
        p.end = snapshot.end.max(snapshot.start);
        for &(offset, state, delivery_count) in &snapshot.records {
            if offset < p.start || offset >= p.end {
                continue;
            }
            let state = if state == RecordState::Acquired {
                RecordState::Available
            } else {
                state
            };
            p.in_flight.insert(
                offset,
                InFlight {
                    state,
                    delivery_count,
                    holder: None,
                    lock_deadline_ms: 0,
                },
            );
        }
        p.advance();
        p
    }

    /// What to persist.
    pub fn snapshot(&self) -> ShareSnapshot {
        ShareSnapshot {
            start: self.start,
            end: self.end,
            records: self
                .in_flight
                .iter()
                .map(|(o, r)| (*o, r.state, r.delivery_count))
                .collect(),
        }
    }

    /// The start offset.
    pub fn start(&self) -> i64 {
        self.start
    }

    /// The end offset.
    pub fn end(&self) -> i64 {
        self.end
    }

    /// The state and delivery count of `offset`: offsets below the start are Acknowledged
    /// (done), those at or past the end Available and never delivered.
    pub fn state_of(&self, offset: i64) -> (RecordState, i16) {
        if offset < self.start {
            return (RecordState::Acknowledged, 0);
        }
        match self.in_flight.get(&offset) {
            Some(r) => (r.state, r.delivery_count),
            None => (RecordState::Available, 0),
        }
    }

    /// Moves the partition to `log_start` if the log no longer holds offsets below it.
    pub fn truncate_to(&mut self, log_start: i64) {
        if log_start > self.start {
            self.in_flight = self.in_flight.split_off(&log_start);
            self.start = log_start;
            self.end = self.end.max(log_start);
            self.advance();
        }
    }

    /// Makes every lock that ran out at `now_ms` Available again (or Archived after the
    /// delivery limit); whether any record was archived (a change to persist).
    pub fn expire_locks(&mut self, now_ms: i64, delivery_limit: i16) -> bool {
        let mut released = false;
        let mut archived = false;
        for r in self.in_flight.values_mut() {
            if r.state == RecordState::Acquired && r.lock_deadline_ms <= now_ms {
                release(r, delivery_limit);
                released = true;
                archived |= r.state == RecordState::Archived;
            }
        }
        if released {
            self.advance();
        }
        archived
    }

    /// Whether a lock has run out at `now_ms`.
    pub fn has_expired_lock(&self, now_ms: i64) -> bool {
        self.in_flight
            .values()
            .any(|r| r.state == RecordState::Acquired && r.lock_deadline_ms <= now_ms)
    }

    /// The earliest moment a lock runs out.
    pub fn next_lock_deadline(&self) -> Option<i64> {
        self.in_flight
            .values()
            .filter(|r| r.state == RecordState::Acquired)
            .map(|r| r.lock_deadline_ms)
            .min()
    }

    /// The first offset a delivery would start at, below `upper` (the high watermark), if any:
    /// the first Available in-flight offset, else the end offset when the window has room
    /// (`SHR-2`).
    pub fn next_available(&self, upper: i64, max_in_flight: i64) -> Option<i64> {
        let in_flight = self
            .in_flight
            .iter()
            .find(|(_, r)| r.state == RecordState::Available)
            .map(|(o, _)| *o);
        let from_end =
            (self.end < upper && self.end - self.start < max_in_flight).then_some(self.end);
        match (in_flight, from_end) {
            (Some(o), _) => Some(o).filter(|o| *o < upper),
            (None, e) => e,
        }
    }

    /// Acquires for `member` the Available offsets in `range`, at most `max_records` of them,
    /// locking them until `now_ms + lock_ms`. Offsets at or past the end become in flight, within the
    /// window (`SHR-2`). The acquired ranges, in offset order.
    pub fn acquire(
        &mut self,
        member: &str,
        range: std::ops::Range<i64>,
        max_records: i64,
        now_ms: i64,
        lock_ms: i64,
        max_in_flight: i64,
    ) -> Vec<Acquired> {
        let (from, to) = (range.start, range.end);
        let mut out: Vec<Acquired> = Vec::new();
        let mut taken = 0i64;
        let limit = to
            .min(self.start + max_in_flight.max(1))
            .max(self.end.min(to));
        let mut offset = from.max(self.start);
        while offset < limit && taken < max_records.max(1) {
            let entry = self.in_flight.entry(offset).or_insert(InFlight {
                state: RecordState::Available,
                delivery_count: 0,
                holder: None,
                lock_deadline_ms: 0,
            });
            if entry.state == RecordState::Available {
                entry.state = RecordState::Acquired;
                entry.delivery_count = entry.delivery_count.saturating_add(1);
                entry.holder = Some(member.to_owned());
                entry.lock_deadline_ms = now_ms + lock_ms;
                taken += 1;
                match out.last_mut() {
                    Some(a) if a.last + 1 == offset && a.delivery_count == entry.delivery_count => {
                        a.last = offset;
                    }
                    _ => out.push(Acquired {
                        first: offset,
                        last: offset,
                        delivery_count: entry.delivery_count,
                    }),
                }
            }
            offset += 1;
            self.end = self.end.max(offset);
        }
        out
    }

    /// Archives the Available offsets in `range` without delivering them (records of aborted
    /// transactions, for groups that read committed records only).
    pub fn archive(&mut self, range: std::ops::Range<i64>) {
        for offset in range.start.max(self.start)..range.end {
            let entry = self.in_flight.entry(offset).or_insert(InFlight {
                state: RecordState::Available,
                delivery_count: 0,
                holder: None,
                lock_deadline_ms: 0,
            });
            if entry.state == RecordState::Available {
                entry.state = RecordState::Archived;
            }
            self.end = self.end.max(offset + 1);
        }
        self.advance();
    }

    /// Applies `member`'s acknowledgement of `[first, last]`: one type for every offset, or
    /// one per offset (`SHR-1`).
    pub fn acknowledge(
        &mut self,
        member: &str,
        first: i64,
        last: i64,
        types: &[AckType],
        delivery_limit: i16,
    ) -> Result<(), GroupError> {
        let count = last - first + 1;
        if first < 0 || count <= 0 || types.is_empty() {
            return Err(GroupError::new(
                ErrorCode::InvalidRequest,
                format!("bad acknowledgement range {first}..={last}"),
            ));
        }
        if types.len() != 1 && types.len() as i64 != count {
            return Err(GroupError::new(
                ErrorCode::InvalidRequest,
                format!(
                    "{} acknowledge types for {count} offsets ({first}..={last})",
                    types.len()
                ),
            ));
        }
        for offset in first..=last {
            let held = self.in_flight.get(&offset).is_some_and(|r| {
                r.state == RecordState::Acquired && r.holder.as_deref() == Some(member)
            });
            if !held {
                return Err(GroupError::new(
                    ErrorCode::InvalidRecordState,
                    format!("offset {offset} is not acquired by member {member}"),
                ));
            }
        }
        for (i, offset) in (first..=last).enumerate() {
            let t = if types.len() == 1 { types[0] } else { types[i] };
            if let Some(r) = self.in_flight.get_mut(&offset) {
                match t {
                    AckType::Accept => settle(r, RecordState::Acknowledged),
                    AckType::Gap | AckType::Reject => settle(r, RecordState::Archived),
                    AckType::Release => release(r, delivery_limit),
                }
            }
        }
        self.advance();
        Ok(())
    }

    /// Releases every offset `member` holds (its session closed or it left the group);
    /// whether anything changed.
    pub fn release_member(&mut self, member: &str, delivery_limit: i16) -> bool {
        let mut changed = false;
        for r in self.in_flight.values_mut() {
            if r.state == RecordState::Acquired && r.holder.as_deref() == Some(member) {
                release(r, delivery_limit);
                changed = true;
            }
        }
        if changed {
            self.advance();
        }
        changed
    }

    /// Moves the start past every leading offset that is done.
    fn advance(&mut self) {
        while self.start < self.end {
            match self.in_flight.get(&self.start) {
                Some(r) if matches!(r.state, RecordState::Acknowledged | RecordState::Archived) => {
                    self.in_flight.remove(&self.start);
                    self.start += 1;
                }
                _ => break,
            }
        }
    }
}

fn settle(r: &mut InFlight, state: RecordState) {
    r.state = state;
    r.holder = None;
}

fn release(r: &mut InFlight, delivery_limit: i16) {
    r.holder = None;
    r.state = if r.delivery_count >= delivery_limit {
        RecordState::Archived
    } else {
        RecordState::Available
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StaticTopics;

    fn topics() -> StaticTopics {
        StaticTopics(BTreeMap::from([
            ("a".to_owned(), ([1; 16], 3)),
            ("b".to_owned(), ([2; 16], 1)),
        ]))
    }

    fn hb(member: &str, epoch: i32, subs: Option<&[&str]>) -> ShareHeartbeat {
        ShareHeartbeat {
            member_id: member.into(),
            member_epoch: epoch,
            subscribed_topic_names: subs.map(|s| s.iter().map(|x| (*x).to_owned()).collect()),
            ..ShareHeartbeat::default()
        }
    }

    #[test]
    fn members_share_every_partition_and_stale_epochs_are_fenced() {
        let c = ShareConfig::default();
        let mut g = ShareGroup::new("g", 0);
        let r1 = g
            .heartbeat(hb("m1", 0, Some(&["a"])), 0, &c, &topics())
            .unwrap();
        assert_eq!(
            r1.assignment.unwrap()[&[1; 16]].len(),
            3,
            "alone, m1 reads all of a"
        );
        let r2 = g
            .heartbeat(hb("m2", 0, Some(&["a", "b"])), 0, &c, &topics())
            .unwrap();
        let a2 = r2.assignment.unwrap();
        assert_eq!(
            a2[&[1; 16]],
            BTreeSet::from([1]),
            "a is spread over m1 and m2"
        );
        assert_eq!(a2[&[2; 16]], BTreeSet::from([0]), "only m2 reads b");
        // m1 takes its smaller share at its next heartbeat; then nothing changes.
        let r1 = g
            .heartbeat(hb("m1", r1.member_epoch, None), 1, &c, &topics())
            .unwrap();
        assert_eq!(r1.assignment.unwrap()[&[1; 16]], BTreeSet::from([0, 2]));
        let same = g
            .heartbeat(hb("m1", r1.member_epoch, None), 1, &c, &topics())
            .unwrap();
        assert_eq!(same.assignment, None);
        // A third member on b (one partition) shares it with m2.
        let r3 = g
            .heartbeat(hb("m3", 0, Some(&["b"])), 1, &c, &topics())
            .unwrap();
        assert_eq!(r3.assignment.unwrap()[&[2; 16]], BTreeSet::from([0]));
        // A stale epoch is fenced (SHR-4).
        let err = g
            .heartbeat(hb("m1", r1.member_epoch + 5, None), 1, &c, &topics())
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::FencedMemberEpoch);
        // A new subscription moves the epoch and the assignment.
        let moved = g
            .heartbeat(hb("m1", r1.member_epoch, Some(&["b"])), 2, &c, &topics())
            .unwrap();
        assert!(moved.member_epoch > r1.member_epoch);
        assert_eq!(
            moved.assignment.unwrap().keys().collect::<Vec<_>>(),
            vec![&[2; 16]]
        );
        // Leaving, then expiry of the silent member.
        assert_eq!(
            g.heartbeat(hb("m1", moved.member_epoch, None), 3, &c, &topics())
                .unwrap()
                .member_epoch,
            moved.member_epoch
        );
        let left = g.heartbeat(hb("m1", -1, None), 4, &c, &topics()).unwrap();
        assert_eq!(left.member_epoch, -1);
        let timeout = i64::from(c.session_timeout_ms);
        assert_eq!(g.expire(timeout), vec!["m2".to_owned()]);
        assert_eq!(g.expire(timeout + 1), vec!["m3".to_owned()]);
        assert_eq!(g.state_name(), "Empty");
    }

    #[test]
    fn records_are_acquired_once_acknowledged_by_their_holder_and_the_start_moves() {
        let mut p = SharePartition::new(0);
        let a = p.acquire("m1", 0..10, 4, 0, 100, 2000);
        assert_eq!(
            a,
            vec![Acquired {
                first: 0,
                last: 3,
                delivery_count: 1
            }]
        );
        // Another member gets the next ones, never the same (SHR-1).
        let b = p.acquire("m2", 0..10, 100, 0, 100, 2000);
        assert_eq!(
            b,
            vec![Acquired {
                first: 4,
                last: 9,
                delivery_count: 1
            }]
        );
        let err = p
            .acknowledge("m2", 0, 1, &[AckType::Accept], 5)
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRecordState);
        assert_eq!(
            p.state_of(0).0,
            RecordState::Acquired,
            "a refused ack changes nothing"
        );
        // m1 accepts 0, releases 1, rejects 2 and 3 (one type per offset).
        p.acknowledge(
            "m1",
            0,
            3,
            &[
                AckType::Accept,
                AckType::Release,
                AckType::Reject,
                AckType::Reject,
            ],
            5,
        )
        .unwrap();
        assert_eq!(p.start(), 1);
        assert_eq!(p.state_of(1), (RecordState::Available, 1));
        // The released record goes out again, counted as a second delivery.
        assert_eq!(p.next_available(10, 2000), Some(1));
        let again = p.acquire("m2", 1..10, 100, 0, 100, 2000);
        assert_eq!(
            again,
            vec![Acquired {
                first: 1,
                last: 1,
                delivery_count: 2
            }]
        );
        p.acknowledge("m2", 1, 9, &[AckType::Accept], 5)
            .unwrap_err();
        p.acknowledge("m2", 4, 9, &[AckType::Accept], 5).unwrap();
        p.acknowledge("m2", 1, 1, &[AckType::Accept], 5).unwrap();
        assert_eq!(p.start(), 10);
        assert_eq!(p.next_available(10, 2000), None);
    }

    #[test]
    fn expired_locks_come_back_until_the_delivery_limit_archives_them() {
        let mut p = SharePartition::new(5);
        for round in 1..=3 {
            let a = p.acquire("m", 5..6, 10, round * 100, 50, 2000);
            assert_eq!(a[0].delivery_count, round as i16);
            assert_eq!(p.next_lock_deadline(), Some(round * 100 + 50));
            assert!(p.has_expired_lock(round * 100 + 50));
            // Only the third expiry archives (a change to persist).
            assert_eq!(p.expire_locks(round * 100 + 50, 3), round == 3);
        }
        assert_eq!(p.start(), 6, "archived after the third delivery");
        assert!(p.acquire("m", 5..6, 10, 1000, 50, 2000).is_empty());
    }

    #[test]
    fn the_window_is_bounded_and_a_snapshot_restores_without_locks() {
        let mut p = SharePartition::new(0);
        let a = p.acquire("m", 0..100, 1000, 0, 50, 10);
        assert_eq!(
            a,
            vec![Acquired {
                first: 0,
                last: 9,
                delivery_count: 1
            }]
        );
        assert_eq!(p.next_available(100, 10), None, "SHR-2: the window is full");
        p.acknowledge("m", 0, 1, &[AckType::Accept], 5).unwrap();
        p.acknowledge("m", 3, 3, &[AckType::Reject], 5).unwrap();
        let restored = SharePartition::restore(&p.snapshot());
        assert_eq!(restored.start(), 2);
        assert_eq!(restored.state_of(2), (RecordState::Available, 1), "SHR-3");
        assert_eq!(restored.state_of(3), (RecordState::Archived, 1));
        assert_eq!(restored.end(), 10);
        p.release_member("m", 5);
        assert_eq!(p.state_of(4), (RecordState::Available, 1));
        // Archived offsets (an aborted transaction's) are skipped by the next delivery.
        let mut p = SharePartition::new(0);
        p.archive(0..3);
        assert_eq!(p.start(), 3);
        p.archive(5..6);
        assert_eq!(
            p.acquire("m", 3..7, 10, 0, 50, 10),
            vec![
                Acquired {
                    first: 3,
                    last: 4,
                    delivery_count: 1
                },
                Acquired {
                    first: 6,
                    last: 6,
                    delivery_count: 1
                },
            ]
        );
    }
}
