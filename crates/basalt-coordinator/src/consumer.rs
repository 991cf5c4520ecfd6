//! KIP-848 consumer groups: ConsumerGroupHeartbeat with server-side assignment, member epochs
//! and incremental reconciliation.
//!
//! The group epoch grows whenever membership, subscriptions or the subscribed topics' partition
//! counts change; the target assignment is recomputed for each group epoch by the assignor. Each
//! member then moves to the target in steps: first it is told to revoke what the target takes away
//! (its epoch stays), once it no longer reports those partitions it advances to the target epoch
//! and receives the new partitions that no other member still holds.
//!
//! # Invariants
//! - `GRP-3` (see the crate docs): a partition in a member's assignment or pending revocation is
//!   never handed to another member.
//! - `CNS-1`: a member's epoch only advances when it holds nothing outside its target.

use std::collections::{BTreeMap, BTreeSet};

use basalt_protocol::ErrorCode;
use serde::{Deserialize, Serialize};

use crate::assignor::{self, Assignment, AssignmentSpec};
use crate::record::hex;
use crate::{Effects, GroupConfig, GroupError, TopicLookup};

/// A member of a consumer group.
#[derive(Debug, Clone)]
pub struct ConsumerMember {
    /// Member id.
    pub member_id: String,
    /// `group.instance.id`.
    pub instance_id: Option<String>,
    /// Rack.
    pub rack_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Subscribed topic names.
    pub subscribed_topic_names: Vec<String>,
    /// Subscribed topic regex.
    pub subscribed_topic_regex: Option<String>,
    /// Preferred server assignor.
    pub server_assignor: Option<String>,
    /// Rebalance timeout.
    pub rebalance_timeout_ms: i32,
    /// The member epoch.
    pub member_epoch: i32,
    /// The epoch before the last bump.
    pub previous_member_epoch: i32,
    /// What it owns.
    pub assigned: Assignment,
    /// What it must give up.
    pub pending_revocation: Assignment,
    session_deadline: i64,
    revocation_deadline: Option<i64>,
    /// The assignment last sent to it.
    last_sent: Option<Assignment>,
    /// A static member that left temporarily (epoch -2): kept for its instance id.
    left_static: bool,
}

impl ConsumerMember {
    /// Whether it is at the target epoch with nothing left to revoke or receive.
    pub fn is_stable(&self, target: Option<&Assignment>, epoch: i32) -> bool {
        self.member_epoch == epoch
            && self.pending_revocation.is_empty()
            && target.map_or(self.assigned.is_empty(), |t| *t == self.assigned)
    }
}

/// A ConsumerGroupHeartbeat, as the coordinator needs it.
#[derive(Debug, Clone, Default)]
pub struct HeartbeatRequest {
    /// Member id (empty on a v0 join).
    pub member_id: String,
    /// 0 to join, -1 to leave, -2 for a static member's temporary leave.
    pub member_epoch: i32,
    /// `group.instance.id`.
    pub instance_id: Option<String>,
    /// Rack.
    pub rack_id: Option<String>,
    /// Rebalance timeout, -1 if unchanged.
    pub rebalance_timeout_ms: i32,
    /// Subscribed names, `None` if unchanged.
    pub subscribed_topic_names: Option<Vec<String>>,
    /// Subscribed regex, `None` if unchanged.
    pub subscribed_topic_regex: Option<String>,
    /// Preferred assignor, `None` if unchanged.
    pub server_assignor: Option<String>,
    /// Partitions the member owns, `None` if unchanged.
    pub topic_partitions: Option<Assignment>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
}

/// A ConsumerGroupHeartbeat answer.
#[derive(Debug, Clone, PartialEq)]
pub struct HeartbeatReply {
    /// The member id.
    pub member_id: String,
    /// The member epoch.
    pub member_epoch: i32,
    /// How often to heartbeat.
    pub heartbeat_interval_ms: i32,
    /// The assignment, when it changed.
    pub assignment: Option<Assignment>,
}

/// A consumer group.
#[derive(Debug)]
pub struct ConsumerGroup {
    id: String,
    group_epoch: i32,
    assignment_epoch: i32,
    target: BTreeMap<String, Assignment>,
    members: BTreeMap<String, ConsumerMember>,
    /// The subscribed topics as of the last target computation.
    topics_seen: BTreeMap<String, ([u8; 16], i32)>,
    state_timestamp: i64,
    dirty: bool,
}

/// A consumer group as persisted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Image {
    /// Group epoch.
    pub group_epoch: i32,
    /// Members.
    pub members: Vec<MemberImage>,
}

/// A consumer group member as persisted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemberImage {
    /// Member id.
    pub member_id: String,
    /// Instance id.
    pub instance_id: Option<String>,
    /// Rack.
    pub rack_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Subscribed names.
    pub subscribed_topic_names: Vec<String>,
    /// Subscribed regex.
    pub subscribed_topic_regex: Option<String>,
    /// Assignor.
    pub server_assignor: Option<String>,
    /// Rebalance timeout.
    pub rebalance_timeout_ms: i32,
    /// Member epoch.
    pub member_epoch: i32,
    /// Owned partitions: topic id (hex) and partitions.
    pub assigned: Vec<(String, Vec<i32>)>,
}

fn owned_by(a: &Assignment, id: &[u8; 16], p: i32) -> bool {
    a.get(id).is_some_and(|s| s.contains(&p))
}

fn minus(a: &Assignment, b: &Assignment) -> Assignment {
    let mut out = Assignment::new();
    for (id, ps) in a {
        let rest: BTreeSet<i32> = ps
            .iter()
            .copied()
            .filter(|p| !owned_by(b, id, *p))
            .collect();
        if !rest.is_empty() {
            out.insert(*id, rest);
        }
    }
    out
}

fn intersects(a: &Assignment, b: &Assignment) -> bool {
    a.iter()
        .any(|(id, ps)| ps.iter().any(|p| owned_by(b, id, *p)))
}

fn add(a: &mut Assignment, id: [u8; 16], p: i32) {
    a.entry(id).or_default().insert(p);
}

/// Whether `name` fully matches `regex` (Kafka matches whole names; internal topics never).
fn regex_matches(regex: &str, name: &str) -> bool {
    if name.starts_with("__") {
        return false;
    }
    regex::Regex::new(&format!("^(?:{regex})$")).is_ok_and(|r| r.is_match(name))
}

impl ConsumerGroup {
    /// A new empty group.
    pub fn new(id: &str, now_ms: i64) -> Self {
        ConsumerGroup {
            id: id.to_owned(),
            group_epoch: 0,
            assignment_epoch: 0,
            target: BTreeMap::new(),
            members: BTreeMap::new(),
            topics_seen: BTreeMap::new(),
            state_timestamp: now_ms,
            dirty: false,
        }
    }

    /// The group id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The group epoch.
    pub fn group_epoch(&self) -> i32 {
        self.group_epoch
    }

    /// The epoch of the target assignment.
    pub fn assignment_epoch(&self) -> i32 {
        self.assignment_epoch
    }

    /// The members.
    pub fn members(&self) -> &BTreeMap<String, ConsumerMember> {
        &self.members
    }

    /// A member's target assignment.
    pub fn target(&self, member_id: &str) -> Option<&Assignment> {
        self.target.get(member_id)
    }

    /// When the group last became empty or was created.
    pub fn state_timestamp(&self) -> i64 {
        self.state_timestamp
    }

    /// Whether the metadata changed since the last call, clearing the flag.
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    /// `Empty`, `Reconciling` or `Stable`, as Kafka names consumer group states.
    pub fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.assignment_epoch < self.group_epoch {
            "Assigning"
        } else if self
            .members
            .values()
            .all(|m| m.is_stable(self.target.get(&m.member_id), self.assignment_epoch))
        {
            "Stable"
        } else {
            "Reconciling"
        }
    }

    /// The persisted form.
    pub fn image(&self) -> Image {
        Image {
            group_epoch: self.group_epoch,
            members: self
                .members
                .values()
                .map(|m| MemberImage {
                    member_id: m.member_id.clone(),
                    instance_id: m.instance_id.clone(),
                    rack_id: m.rack_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    subscribed_topic_names: m.subscribed_topic_names.clone(),
                    subscribed_topic_regex: m.subscribed_topic_regex.clone(),
                    server_assignor: m.server_assignor.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    member_epoch: m.member_epoch,
                    assigned: m
                        .assigned
                        .iter()
                        .chain(m.pending_revocation.iter())
                        .map(|(id, ps)| (hex(id), ps.iter().copied().collect()))
                        .collect(),
                })
                .collect(),
        }
    }

    /// Restores a group; members must heartbeat within the session timeout to stay.
    pub fn restore(id: &str, image: Image, now_ms: i64, config: &GroupConfig) -> Self {
        let mut g = ConsumerGroup::new(id, now_ms);
        g.group_epoch = image.group_epoch;
        g.assignment_epoch = image.group_epoch;
        for m in image.members {
            let mut assigned = Assignment::new();
            for (id_hex, ps) in m.assigned {
                let raw = crate::record::unhex(&id_hex);
                if let Ok(id) = <[u8; 16]>::try_from(&raw[..]) {
                    assigned.entry(id).or_default().extend(ps);
                }
            }
            g.target.insert(m.member_id.clone(), assigned.clone());
            g.members.insert(
                m.member_id.clone(),
                ConsumerMember {
                    member_id: m.member_id,
                    instance_id: m.instance_id,
                    rack_id: m.rack_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    subscribed_topic_names: m.subscribed_topic_names,
                    subscribed_topic_regex: m.subscribed_topic_regex,
                    server_assignor: m.server_assignor,
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    member_epoch: m.member_epoch,
                    previous_member_epoch: m.member_epoch,
                    assigned,
                    pending_revocation: Assignment::new(),
                    session_deadline: now_ms + i64::from(config.consumer_session_timeout_ms),
                    revocation_deadline: None,
                    last_sent: None,
                    left_static: false,
                },
            );
        }
        g
    }

    /// Every topic name some member subscribes to (by name or regex), with id and partitions.
    fn subscribed_topics(&self, topics: &dyn TopicLookup) -> BTreeMap<String, ([u8; 16], i32)> {
        let mut out = BTreeMap::new();
        let mut names: BTreeSet<String> = BTreeSet::new();
        let mut regexes: BTreeSet<&str> = BTreeSet::new();
        for m in self.members.values() {
            names.extend(m.subscribed_topic_names.iter().cloned());
            if let Some(r) = &m.subscribed_topic_regex {
                regexes.insert(r);
            }
        }
        if !regexes.is_empty() {
            for n in topics.topic_names() {
                if regexes.iter().any(|r| regex_matches(r, &n)) {
                    names.insert(n);
                }
            }
        }
        for n in names {
            if let Some(t) = topics.topic(&n) {
                out.insert(n, t);
            }
        }
        out
    }

    fn member_subscriptions(
        &self,
        topics: &BTreeMap<String, ([u8; 16], i32)>,
    ) -> BTreeMap<String, BTreeSet<String>> {
        self.members
            .values()
            .filter(|m| !m.left_static)
            .map(|m| {
                let mut set: BTreeSet<String> = m
                    .subscribed_topic_names
                    .iter()
                    .filter(|n| topics.contains_key(*n))
                    .cloned()
                    .collect();
                if let Some(r) = &m.subscribed_topic_regex {
                    set.extend(topics.keys().filter(|n| regex_matches(r, n)).cloned());
                }
                (m.member_id.clone(), set)
            })
            .collect()
    }

    fn bump(&mut self) {
        self.group_epoch = self.group_epoch.saturating_add(1);
        self.dirty = true;
    }

    /// Recomputes the target assignment if the group epoch moved or topics changed.
    /// `changed`: membership or subscriptions changed, so the group epoch must move (once).
    fn refresh_target(&mut self, topics: &dyn TopicLookup, changed: bool) {
        let seen = self.subscribed_topics(topics);
        let mut bump = changed;
        if seen != self.topics_seen {
            self.topics_seen = seen;
            bump |= !self.members.is_empty();
        }
        if bump {
            self.bump();
        }
        if self.assignment_epoch >= self.group_epoch {
            return;
        }
        let subs = self.member_subscriptions(&self.topics_seen);
        // The most requested assignor wins; ties and absence give the default.
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(a) = m.server_assignor.as_deref() {
                *votes.entry(a).or_default() += 1;
            }
        }
        let chosen = votes
            .iter()
            .max_by_key(|(name, v)| (**v, std::cmp::Reverse(**name)))
            .map(|(n, _)| (*n).to_owned());
        let mut target = assignor::assign(
            chosen.as_deref(),
            &AssignmentSpec {
                members: &subs,
                topics: &self.topics_seen,
                previous: &self.target,
            },
        );
        // A static member that left keeps its partitions reserved.
        for m in self.members.values().filter(|m| m.left_static) {
            if let Some(prev) = self.target.get(&m.member_id) {
                target.insert(m.member_id.clone(), prev.clone());
            }
        }
        self.target = target;
        self.assignment_epoch = self.group_epoch;
        self.dirty = true;
    }

    /// Partitions held (owned or pending revocation) by members other than `member_id`.
    fn held_by_others(&self, member_id: &str) -> Assignment {
        let mut out = Assignment::new();
        for m in self.members.values().filter(|m| m.member_id != member_id) {
            for (id, ps) in m.assigned.iter().chain(m.pending_revocation.iter()) {
                out.entry(*id).or_default().extend(ps.iter().copied());
            }
        }
        out
    }

    fn reconcile(&mut self, member_id: &str, reported: Option<&Assignment>, now_ms: i64) {
        let held = self.held_by_others(member_id);
        let target = self.target.get(member_id).cloned().unwrap_or_default();
        let epoch = self.assignment_epoch;
        let Some(m) = self.members.get_mut(member_id) else {
            return;
        };
        if !m.pending_revocation.is_empty()
            && let Some(rep) = reported
            && !intersects(rep, &m.pending_revocation)
        {
            m.pending_revocation.clear();
            m.revocation_deadline = None;
        }
        if !m.pending_revocation.is_empty() {
            return;
        }
        let revoke = minus(&m.assigned, &target);
        if !revoke.is_empty() {
            m.assigned = minus(&m.assigned, &revoke);
            m.pending_revocation = revoke;
            m.revocation_deadline = Some(now_ms + i64::from(m.rebalance_timeout_ms.max(0)));
            return;
        }
        if m.member_epoch < epoch {
            m.previous_member_epoch = m.member_epoch;
            m.member_epoch = epoch;
        }
        for (id, ps) in &target {
            for p in ps {
                if !owned_by(&m.assigned, id, *p) && !owned_by(&held, id, *p) {
                    add(&mut m.assigned, *id, *p);
                }
            }
        }
    }

    /// Removes a member; whether it was there. The caller refreshes the target.
    fn remove_member(&mut self, member_id: &str, now_ms: i64) -> bool {
        if self.members.remove(member_id).is_none() {
            return false;
        }
        self.target.remove(member_id);
        self.dirty = true;
        if self.members.is_empty() {
            self.state_timestamp = now_ms;
        }
        true
    }

    /// Handles ConsumerGroupHeartbeat.
    pub fn heartbeat(
        &mut self,
        req: HeartbeatRequest,
        now_ms: i64,
        config: &GroupConfig,
        topics: &dyn TopicLookup,
        new_member_id: impl FnOnce() -> String,
    ) -> Result<HeartbeatReply, GroupError> {
        if let Some(a) = req.server_assignor.as_deref()
            && !assignor::ASSIGNORS.contains(&a)
        {
            return Err(GroupError::new(
                ErrorCode::UnsupportedAssignor,
                format!(
                    "unknown assignor {a}; this broker has {:?}",
                    assignor::ASSIGNORS
                ),
            ));
        }
        if let Some(r) = req.subscribed_topic_regex.as_deref()
            && regex::Regex::new(r).is_err()
        {
            return Err(GroupError::new(
                ErrorCode::InvalidRegularExpression,
                format!("invalid regular expression {r:?}"),
            ));
        }
        let interval = config.consumer_heartbeat_interval_ms;
        match req.member_epoch {
            -1 | -2 => {
                let leaving = if req.member_id.is_empty() {
                    req.instance_id.as_ref().and_then(|i| {
                        self.members
                            .values()
                            .find(|m| m.instance_id.as_ref() == Some(i))
                            .map(|m| m.member_id.clone())
                    })
                } else {
                    Some(req.member_id.clone())
                };
                let Some(id) = leaving.filter(|id| self.members.contains_key(id)) else {
                    return Err(GroupError::new(
                        ErrorCode::UnknownMemberId,
                        format!("member {} is not in group {}", req.member_id, self.id),
                    ));
                };
                if req.member_epoch == -2 && req.instance_id.is_some() {
                    if let Some(m) = self.members.get_mut(&id) {
                        m.left_static = true;
                        m.session_deadline = now_ms + i64::from(config.consumer_session_timeout_ms);
                    }
                } else {
                    let removed = self.remove_member(&id, now_ms);
                    self.refresh_target(topics, removed);
                }
                return Ok(HeartbeatReply {
                    member_id: id,
                    member_epoch: req.member_epoch,
                    heartbeat_interval_ms: interval,
                    assignment: None,
                });
            }
            0 => {}
            e if e < 0 => {
                return Err(GroupError::new(
                    ErrorCode::InvalidRequest,
                    format!("invalid member epoch {e}"),
                ));
            }
            _ => {}
        }
        let mut member_id = req.member_id.clone();
        let mut changed = false;
        if req.member_epoch == 0 {
            if member_id.is_empty() {
                member_id = new_member_id();
            }
            if req.subscribed_topic_names.is_none() && req.subscribed_topic_regex.is_none() {
                return Err(GroupError::new(
                    ErrorCode::InvalidRequest,
                    "a joining member must name its subscription",
                ));
            }
            // A static member takes over its instance's previous member.
            if let Some(instance) = &req.instance_id {
                let previous = self
                    .members
                    .values()
                    .find(|m| m.instance_id.as_ref() == Some(instance) && m.member_id != member_id)
                    .cloned();
                if let Some(prev) = previous {
                    if !prev.left_static {
                        return Err(GroupError::new(
                            ErrorCode::UnreleasedInstanceId,
                            format!(
                                "instance {instance} is still used by member {}",
                                prev.member_id
                            ),
                        ));
                    }
                    self.members.remove(&prev.member_id);
                    let target = self.target.remove(&prev.member_id);
                    let mut m = prev;
                    m.member_id.clone_from(&member_id);
                    m.left_static = false;
                    // The new incarnation owns nothing yet; it receives the same partitions.
                    m.assigned = Assignment::new();
                    m.pending_revocation = Assignment::new();
                    m.last_sent = None;
                    self.members.insert(member_id.clone(), m);
                    if let Some(t) = target {
                        self.target.insert(member_id.clone(), t);
                    }
                    self.dirty = true;
                }
            }
            if !self.members.contains_key(&member_id) {
                if self.members.len() >= config.consumer_max_size {
                    return Err(GroupError::new(
                        ErrorCode::GroupMaxSizeReached,
                        format!("group {} has {} members", self.id, self.members.len()),
                    ));
                }
                self.members.insert(
                    member_id.clone(),
                    ConsumerMember {
                        member_id: member_id.clone(),
                        instance_id: req.instance_id.clone(),
                        rack_id: None,
                        client_id: String::new(),
                        client_host: String::new(),
                        subscribed_topic_names: Vec::new(),
                        subscribed_topic_regex: None,
                        server_assignor: None,
                        rebalance_timeout_ms: 0,
                        member_epoch: 0,
                        previous_member_epoch: 0,
                        assigned: Assignment::new(),
                        pending_revocation: Assignment::new(),
                        session_deadline: 0,
                        revocation_deadline: None,
                        last_sent: None,
                        left_static: false,
                    },
                );
                changed = true;
            } else if let Some(m) = self.members.get_mut(&member_id) {
                // A rejoin: the client owns nothing now.
                m.assigned = Assignment::new();
                m.pending_revocation = Assignment::new();
                m.last_sent = None;
                m.member_epoch = 0;
            }
        } else {
            let Some(m) = self.members.get(&member_id) else {
                return Err(GroupError::new(
                    ErrorCode::UnknownMemberId,
                    format!("member {member_id} is not in group {}", self.id),
                ));
            };
            if req.member_epoch != m.member_epoch {
                let tolerated = req.member_epoch == m.previous_member_epoch
                    && req
                        .topic_partitions
                        .as_ref()
                        .is_some_and(|rep| minus(rep, &m.assigned).is_empty());
                if !tolerated {
                    return Err(GroupError::new(
                        ErrorCode::FencedMemberEpoch,
                        format!(
                            "member epoch {} is not the current {}",
                            req.member_epoch, m.member_epoch
                        ),
                    ));
                }
            }
        }
        if let Some(m) = self.members.get_mut(&member_id) {
            m.client_id = req.client_id;
            m.client_host = req.client_host;
            m.session_deadline = now_ms + i64::from(config.consumer_session_timeout_ms);
            if req.rack_id.is_some() {
                m.rack_id = req.rack_id;
            }
            if req.rebalance_timeout_ms >= 0 {
                m.rebalance_timeout_ms = req.rebalance_timeout_ms;
            }
            if let Some(names) = req.subscribed_topic_names {
                let mut names = names;
                names.sort();
                names.dedup();
                if names != m.subscribed_topic_names {
                    m.subscribed_topic_names = names;
                    changed = true;
                }
            }
            if let Some(r) = req.subscribed_topic_regex {
                let r = (!r.is_empty()).then_some(r);
                if r != m.subscribed_topic_regex {
                    m.subscribed_topic_regex = r;
                    changed = true;
                }
            }
            if let Some(a) = req.server_assignor
                && Some(&a) != m.server_assignor.as_ref()
            {
                m.server_assignor = Some(a);
                changed = true;
            }
        }
        self.refresh_target(topics, changed);
        self.reconcile(&member_id, req.topic_partitions.as_ref(), now_ms);
        let Some(m) = self.members.get_mut(&member_id) else {
            return Err(GroupError::new(
                ErrorCode::UnknownMemberId,
                "member vanished",
            ));
        };
        let differs_from_report = req
            .topic_partitions
            .as_ref()
            .is_some_and(|rep| *rep != m.assigned);
        let assignment = if m.last_sent.as_ref() != Some(&m.assigned) || differs_from_report {
            m.last_sent = Some(m.assigned.clone());
            Some(m.assigned.clone())
        } else {
            None
        };
        Ok(HeartbeatReply {
            member_id,
            member_epoch: m.member_epoch,
            heartbeat_interval_ms: interval,
            assignment,
        })
    }

    /// Checks an OffsetCommit's member id and epoch.
    pub fn check_commit(&self, member_id: &str, epoch: i32) -> Result<(), ErrorCode> {
        if member_id.is_empty() && epoch < 0 {
            return if self.members.is_empty() {
                Ok(())
            } else {
                Err(ErrorCode::UnknownMemberId)
            };
        }
        let Some(m) = self.members.get(member_id) else {
            return Err(ErrorCode::UnknownMemberId);
        };
        if epoch > m.member_epoch {
            return Err(ErrorCode::FencedMemberEpoch);
        }
        if epoch < m.member_epoch && epoch != m.previous_member_epoch {
            return Err(ErrorCode::StaleMemberEpoch);
        }
        Ok(())
    }

    /// Checks an OffsetFetch's member id and epoch (v9+; `-1`/`None` means not a member).
    pub fn check_fetch(&self, member_id: Option<&str>, epoch: i32) -> Result<(), ErrorCode> {
        let Some(member_id) = member_id.filter(|_| epoch >= 0) else {
            return Ok(());
        };
        let Some(m) = self.members.get(member_id) else {
            return Err(ErrorCode::UnknownMemberId);
        };
        if epoch != m.member_epoch {
            return Err(ErrorCode::StaleMemberEpoch);
        }
        Ok(())
    }

    /// The topics subscribed to (for OffsetDelete's check).
    pub fn subscribed_topic_names(&self) -> BTreeSet<String> {
        self.topics_seen.keys().cloned().collect()
    }

    /// Expires sessions and stuck revocations.
    pub fn tick(
        &mut self,
        now_ms: i64,
        _config: &GroupConfig,
        topics: &dyn TopicLookup,
    ) -> Effects {
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                m.session_deadline <= now_ms || m.revocation_deadline.is_some_and(|d| d <= now_ms)
            })
            .map(|m| m.member_id.clone())
            .collect();
        let mut removed = false;
        for id in &expired {
            removed |= self.remove_member(id, now_ms);
        }
        if removed {
            self.refresh_target(topics, true);
        }
        Effects::default()
    }

    /// The next time [`ConsumerGroup::tick`] has something to do.
    pub fn next_deadline(&self, _config: &GroupConfig) -> Option<i64> {
        self.members
            .values()
            .flat_map(|m| [Some(m.session_deadline), m.revocation_deadline])
            .flatten()
            .min()
    }

    /// Removes every member (the group is being deleted or converted).
    pub fn clear(&mut self, now_ms: i64) {
        if !self.members.is_empty() {
            self.members.clear();
            self.target.clear();
            self.bump();
            self.state_timestamp = now_ms;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StaticTopics;

    fn topics(parts: i32) -> StaticTopics {
        StaticTopics(BTreeMap::from([("t".to_owned(), ([7; 16], parts))]))
    }

    fn join(id: &str) -> HeartbeatRequest {
        HeartbeatRequest {
            member_id: id.to_owned(),
            member_epoch: 0,
            rebalance_timeout_ms: 30_000,
            subscribed_topic_names: Some(vec!["t".into()]),
            topic_partitions: Some(Assignment::new()),
            ..HeartbeatRequest::default()
        }
    }

    fn beat(id: &str, epoch: i32, owned: &Assignment) -> HeartbeatRequest {
        HeartbeatRequest {
            member_id: id.to_owned(),
            member_epoch: epoch,
            rebalance_timeout_ms: -1,
            topic_partitions: Some(owned.clone()),
            ..HeartbeatRequest::default()
        }
    }

    fn n(a: &Assignment) -> usize {
        a.values().map(BTreeSet::len).sum()
    }

    #[test]
    fn second_member_gets_partitions_only_after_revocation() {
        let c = GroupConfig::default();
        let t = topics(4);
        let mut g = ConsumerGroup::new("g", 0);
        let a = g
            .heartbeat(join("a"), 0, &c, &t, || unreachable!())
            .expect("join a");
        assert_eq!(a.member_epoch, 1);
        let a_owned = a.assignment.expect("assignment");
        assert_eq!(n(&a_owned), 4);

        let b = g
            .heartbeat(join("b"), 1, &c, &t, || unreachable!())
            .expect("join b");
        // b is at the new epoch but a still holds everything: b gets nothing yet.
        assert_eq!(n(&b.assignment.clone().unwrap_or_default()), 0);
        // a is told to revoke two partitions, keeping its epoch.
        let a2 = g
            .heartbeat(beat("a", 1, &a_owned), 2, &c, &t, || unreachable!())
            .expect("a");
        assert_eq!(a2.member_epoch, 1);
        let a_kept = a2.assignment.expect("revocation");
        assert_eq!(n(&a_kept), 2);
        // b still waits while a has not confirmed.
        let b2 = g
            .heartbeat(
                beat("b", 2, &Assignment::new()),
                3,
                &c,
                &t,
                || unreachable!(),
            )
            .expect("b");
        assert!(b2.assignment.is_none_or(|x| n(&x) == 0));
        // a confirms; it advances to epoch 2.
        let a3 = g
            .heartbeat(beat("a", 1, &a_kept), 4, &c, &t, || unreachable!())
            .expect("a");
        assert_eq!(a3.member_epoch, 2);
        let b3 = g
            .heartbeat(
                beat("b", 2, &Assignment::new()),
                5,
                &c,
                &t,
                || unreachable!(),
            )
            .expect("b");
        let b_owned = b3.assignment.expect("b gets partitions");
        assert_eq!(n(&b_owned), 2);
        assert!(!intersects(&b_owned, &a_kept));
        assert_eq!(g.state_name(), "Stable");
    }

    #[test]
    fn commits_check_the_member_epoch() {
        let c = GroupConfig::default();
        let t = topics(2);
        let mut g = ConsumerGroup::new("g", 0);
        let a = g
            .heartbeat(join("a"), 0, &c, &t, || unreachable!())
            .expect("a");
        let epoch = a.member_epoch;
        assert_eq!(g.check_commit("a", epoch), Ok(()));
        assert_eq!(
            g.check_commit("a", epoch + 1),
            Err(ErrorCode::FencedMemberEpoch)
        );
        // b joins: the group epoch moves on, and a advances once it has revoked.
        let _ = g
            .heartbeat(join("b"), 1, &c, &t, || unreachable!())
            .expect("b");
        let owned = a.assignment.expect("a's partitions");
        let a2 = g
            .heartbeat(beat("a", epoch, &owned), 2, &c, &t, || unreachable!())
            .expect("a");
        let kept = a2.assignment.expect("revocation");
        let a3 = g
            .heartbeat(beat("a", epoch, &kept), 3, &c, &t, || unreachable!())
            .expect("a");
        assert!(a3.member_epoch > epoch);
        assert_eq!(
            g.check_commit("a", epoch - 1),
            Err(ErrorCode::StaleMemberEpoch)
        );
        assert_eq!(g.check_commit("x", 1), Err(ErrorCode::UnknownMemberId));
    }

    #[test]
    fn stale_epoch_is_fenced_and_expiry_frees_partitions() {
        let c = GroupConfig::default();
        let t = topics(2);
        let mut g = ConsumerGroup::new("g", 0);
        let a = g
            .heartbeat(join("a"), 0, &c, &t, || unreachable!())
            .expect("a");
        let err = g
            .heartbeat(
                beat("a", 7, &Assignment::new()),
                1,
                &c,
                &t,
                || unreachable!(),
            )
            .expect_err("fenced");
        assert_eq!(err.code, ErrorCode::FencedMemberEpoch);
        let _ = a;
        let _ = g.tick(i64::from(c.consumer_session_timeout_ms) + 1, &c, &t);
        assert!(g.members().is_empty());
        assert_eq!(g.state_name(), "Empty");
    }
}
