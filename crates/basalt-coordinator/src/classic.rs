//! The classic group protocol: JoinGroup, SyncGroup, Heartbeat and LeaveGroup, with client-side
//! assignment, as Kafka's classic group coordinator runs it.
//!
//! States: `Empty` → (a member joins) `PreparingRebalance` → (every member rejoined, or the
//! rebalance timeout passed) `CompletingRebalance` → (the leader's SyncGroup) `Stable`; any
//! membership or subscription change from `CompletingRebalance` or `Stable` goes back to
//! `PreparingRebalance`. A group that loses its last member is `Empty` again; a deleted group is
//! `Dead`.
//!
//! # Invariants
//! - `CLS-1`: a JoinGroup answer of generation `g` is sent only when the group has entered
//!   `CompletingRebalance` for `g`; the leader's answer lists every member of `g`.
//! - `CLS-2`: a SyncGroup answer carries exactly the bytes the leader sent for that member (empty
//!   if the leader sent none).
//! - `CLS-3`: a static member (`group.instance.id`) that rejoins with a new member id replaces its
//!   old member id; the old id is fenced (FENCED_INSTANCE_ID) from then on.

use std::collections::{BTreeMap, BTreeSet};

use basalt_protocol::ErrorCode;
use bytes::Bytes;

use crate::{Effects, GroupConfig, Reply, Ticket, empty};

/// A classic group's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// No members (offsets may still be committed).
    Empty,
    /// Waiting for members to (re)join.
    PreparingRebalance,
    /// Waiting for the leader's assignment.
    CompletingRebalance,
    /// Every member has its assignment.
    Stable,
    /// Deleted.
    Dead,
}

impl State {
    /// The name Kafka's DescribeGroups and ListGroups use.
    pub fn name(self) -> &'static str {
        match self {
            State::Empty => "Empty",
            State::PreparingRebalance => "PreparingRebalance",
            State::CompletingRebalance => "CompletingRebalance",
            State::Stable => "Stable",
            State::Dead => "Dead",
        }
    }
}

/// One member of a classic group.
#[derive(Debug, Clone)]
pub struct Member {
    /// The member id.
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub group_instance_id: Option<String>,
    /// The client id of its last JoinGroup.
    pub client_id: String,
    /// The client's host.
    pub client_host: String,
    /// Session timeout.
    pub session_timeout_ms: i32,
    /// Rebalance timeout.
    pub rebalance_timeout_ms: i32,
    /// Supported protocols with their metadata, in preference order.
    pub protocols: Vec<(String, Bytes)>,
    /// The assignment of the current generation.
    pub assignment: Bytes,
    awaiting_join: Option<Ticket>,
    awaiting_sync: Option<Ticket>,
    /// When its session expires unless it heartbeats.
    session_deadline: i64,
    /// Whether it has sent SyncGroup in this generation.
    synced: bool,
}

impl Member {
    /// The metadata it sent for `protocol`.
    pub fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    fn same_protocols(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }
}

/// A JoinGroup request, as the coordinator needs it.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    /// The member id, empty for a new member.
    pub member_id: String,
    /// `group.instance.id`.
    pub group_instance_id: Option<String>,
    /// The client id from the request header.
    pub client_id: String,
    /// The client's host.
    pub client_host: String,
    /// Session timeout.
    pub session_timeout_ms: i32,
    /// Rebalance timeout (v0: the session timeout).
    pub rebalance_timeout_ms: i32,
    /// Protocol type (`consumer` for consumers).
    pub protocol_type: String,
    /// Protocols with their metadata.
    pub protocols: Vec<(String, Bytes)>,
    /// Whether a new dynamic member must first obtain its id (JoinGroup v4+).
    pub require_known_member_id: bool,
}

/// A JoinGroup answer.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct JoinReply {
    /// The error, `None` on success.
    pub error: ErrorCode,
    /// The generation.
    pub generation_id: i32,
    /// The protocol type.
    pub protocol_type: Option<String>,
    /// The chosen protocol.
    pub protocol_name: Option<String>,
    /// The leader's member id.
    pub leader: String,
    /// Whether the (static) leader must skip computing an assignment (KIP-814).
    pub skip_assignment: bool,
    /// The member's id.
    pub member_id: String,
    /// For the leader: every member with its metadata for the chosen protocol.
    pub members: Vec<(String, Option<String>, Bytes)>,
}

impl JoinReply {
    fn error(code: ErrorCode, member_id: &str) -> Self {
        JoinReply {
            error: code,
            generation_id: -1,
            member_id: member_id.to_owned(),
            ..JoinReply::default()
        }
    }
}

/// A SyncGroup answer.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SyncReply {
    /// The error, `None` on success.
    pub error: ErrorCode,
    /// The protocol type.
    pub protocol_type: Option<String>,
    /// The chosen protocol.
    pub protocol_name: Option<String>,
    /// The member's assignment.
    pub assignment: Bytes,
}

impl SyncReply {
    fn error(code: ErrorCode) -> Self {
        SyncReply {
            error: code,
            ..SyncReply::default()
        }
    }
}

/// What a request gets now: an answer, or nothing yet (parked under its ticket).
#[derive(Debug)]
pub enum Answer<T> {
    /// Answer now.
    Now(T),
    /// Parked: the answer comes later as a completion.
    Parked,
}

/// A member to remove in LeaveGroup.
#[derive(Debug, Clone)]
pub struct Leaving {
    /// The member id (may be empty for a static member named by instance id).
    pub member_id: String,
    /// `group.instance.id`.
    pub group_instance_id: Option<String>,
}

/// A classic group.
#[derive(Debug)]
pub struct ClassicGroup {
    id: String,
    state: State,
    state_timestamp: i64,
    protocol_type: Option<String>,
    protocol_name: Option<String>,
    generation_id: i32,
    leader_id: Option<String>,
    members: BTreeMap<String, Member>,
    /// Join order of members, for choosing a leader.
    join_order: Vec<String>,
    static_members: BTreeMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, with when they expire.
    pending_members: BTreeMap<String, i64>,
    /// When the join phase ends (PreparingRebalance) or the sync phase gives up
    /// (CompletingRebalance).
    rebalance_deadline: Option<i64>,
    /// For the first rebalance of an empty group: the latest the delay may extend to.
    initial_delay_limit: Option<i64>,
    /// Whether persistent metadata changed since it was last taken.
    dirty: bool,
}

impl ClassicGroup {
    /// A new empty group.
    pub fn new(id: &str, now_ms: i64) -> Self {
        ClassicGroup {
            id: id.to_owned(),
            state: State::Empty,
            state_timestamp: now_ms,
            protocol_type: None,
            protocol_name: None,
            generation_id: 0,
            leader_id: None,
            members: BTreeMap::new(),
            join_order: Vec::new(),
            static_members: BTreeMap::new(),
            pending_members: BTreeMap::new(),
            rebalance_deadline: None,
            initial_delay_limit: None,
            dirty: false,
        }
    }

    /// Restores a group from its persisted metadata: its members come back as of the last
    /// stable generation and must heartbeat within their session timeout to stay.
    #[allow(clippy::too_many_arguments)]
    pub fn restore(
        id: &str,
        now_ms: i64,
        protocol_type: Option<String>,
        protocol_name: Option<String>,
        generation_id: i32,
        leader_id: Option<String>,
        members: Vec<Member>,
    ) -> Self {
        let mut g = ClassicGroup::new(id, now_ms);
        g.protocol_type = protocol_type;
        g.protocol_name = protocol_name;
        g.generation_id = generation_id;
        g.leader_id = leader_id;
        for mut m in members {
            m.session_deadline = now_ms + i64::from(m.session_timeout_ms);
            m.synced = true;
            if let Some(i) = &m.group_instance_id {
                g.static_members.insert(i.clone(), m.member_id.clone());
            }
            g.join_order.push(m.member_id.clone());
            g.members.insert(m.member_id.clone(), m);
        }
        g.state = if g.members.is_empty() {
            State::Empty
        } else {
            State::Stable
        };
        g
    }

    /// A restored member (see [`ClassicGroup::restore`]).
    #[allow(clippy::too_many_arguments)]
    pub fn restored_member(
        member_id: String,
        group_instance_id: Option<String>,
        client_id: String,
        client_host: String,
        session_timeout_ms: i32,
        rebalance_timeout_ms: i32,
        protocols: Vec<(String, Bytes)>,
        assignment: Bytes,
    ) -> Member {
        Member {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            session_timeout_ms,
            rebalance_timeout_ms,
            protocols,
            assignment,
            awaiting_join: None,
            awaiting_sync: None,
            session_deadline: 0,
            synced: true,
        }
    }

    /// The state.
    pub fn state(&self) -> State {
        self.state
    }

    /// When the state last changed.
    pub fn state_timestamp(&self) -> i64 {
        self.state_timestamp
    }

    /// The generation.
    pub fn generation_id(&self) -> i32 {
        self.generation_id
    }

    /// The protocol type, once a member joined.
    pub fn protocol_type(&self) -> Option<&str> {
        self.protocol_type.as_deref()
    }

    /// The chosen protocol of the current generation.
    pub fn protocol_name(&self) -> Option<&str> {
        self.protocol_name.as_deref()
    }

    /// Whether the group has ever had members with a protocol (it is not a group used only for
    /// committing offsets).
    pub fn has_protocol(&self) -> bool {
        self.protocol_type.is_some()
    }

    /// The leader's member id.
    pub fn leader(&self) -> Option<&str> {
        self.leader_id.as_deref()
    }

    /// The members, by id.
    pub fn members(&self) -> &BTreeMap<String, Member> {
        &self.members
    }

    /// Whether the metadata changed since the last call, clearing the flag.
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    /// Marks the group deleted, failing every parked request.
    pub fn mark_dead(&mut self, now_ms: i64) -> Effects {
        let mut effects = Effects::default();
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            self.remove_member(&id, ErrorCode::CoordinatorNotAvailable, &mut effects);
        }
        self.pending_members.clear();
        self.set_state(State::Dead, now_ms);
        effects
    }

    fn set_state(&mut self, state: State, now_ms: i64) {
        if self.state != state {
            self.state = state;
            self.state_timestamp = now_ms;
        }
    }

    /// The topics the members subscribe to, as far as their `consumer` protocol metadata tells.
    pub fn subscribed_topics(&self) -> Option<BTreeSet<String>> {
        if self.protocol_type.as_deref() != Some("consumer") {
            return None;
        }
        let protocol = self.protocol_name.as_deref()?;
        let mut topics = BTreeSet::new();
        for m in self.members.values() {
            let metadata = m.metadata(protocol);
            topics.extend(crate::record::subscription_topics(&metadata)?);
        }
        Some(topics)
    }

    fn check_session_timeout(req: &JoinRequest, config: &GroupConfig) -> Result<(), ErrorCode> {
        if req.session_timeout_ms < config.min_session_timeout_ms
            || req.session_timeout_ms > config.max_session_timeout_ms
        {
            return Err(ErrorCode::InvalidSessionTimeout);
        }
        Ok(())
    }

    /// Whether the protocols of a joining member fit the group.
    fn protocols_fit(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if protocols.is_empty() || protocol_type.is_empty() {
            return false;
        }
        if self.members.is_empty() {
            return true;
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        let candidates = self.candidate_protocols();
        protocols.iter().any(|(n, _)| candidates.contains(n))
    }

    /// Protocols every member supports.
    fn candidate_protocols(&self) -> BTreeSet<String> {
        let mut it = self.members.values();
        let Some(first) = it.next() else {
            return BTreeSet::new();
        };
        let mut set: BTreeSet<String> = first.protocols.iter().map(|(n, _)| n.clone()).collect();
        for m in it {
            let theirs: BTreeSet<String> = m.protocols.iter().map(|(n, _)| n.clone()).collect();
            set = set.intersection(&theirs).cloned().collect();
        }
        set
    }

    /// Chooses the protocol by vote: each member votes for its most preferred candidate.
    fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidate_protocols();
        let mut votes: BTreeMap<String, usize> = BTreeMap::new();
        for id in &self.join_order {
            let Some(m) = self.members.get(id) else {
                continue;
            };
            if let Some((name, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(n)) {
                *votes.entry(name.clone()).or_default() += 1;
            }
        }
        // Highest vote; ties go to the first member's preference order.
        let best = votes.values().copied().max()?;
        let first = self.join_order.iter().find_map(|id| self.members.get(id))?;
        first
            .protocols
            .iter()
            .find(|(n, _)| votes.get(n) == Some(&best))
            .map(|(n, _)| n.clone())
            .or_else(|| votes.into_iter().find(|(_, v)| *v == best).map(|(n, _)| n))
    }

    /// Handles JoinGroup. `ticket` parks the request if its answer must wait.
    pub fn join(
        &mut self,
        req: JoinRequest,
        ticket: Ticket,
        now_ms: i64,
        config: &GroupConfig,
        new_member_id: impl FnOnce() -> String,
    ) -> (Answer<JoinReply>, Effects) {
        let mut effects = Effects::default();
        if let Err(code) = Self::check_session_timeout(&req, config) {
            return (Answer::Now(JoinReply::error(code, &req.member_id)), effects);
        }
        if self.state == State::Dead {
            return (
                Answer::Now(JoinReply::error(
                    ErrorCode::CoordinatorNotAvailable,
                    &req.member_id,
                )),
                effects,
            );
        }
        if req.member_id.is_empty() {
            if !self.protocols_fit(&req.protocol_type, &req.protocols) {
                return (
                    Answer::Now(JoinReply::error(ErrorCode::InconsistentGroupProtocol, "")),
                    effects,
                );
            }
            let member_id = new_member_id();
            if let Some(instance) = req.group_instance_id.clone() {
                if let Some(old_id) = self.static_members.get(&instance).cloned() {
                    let answer = self.replace_static_member(
                        &old_id,
                        member_id,
                        req,
                        ticket,
                        now_ms,
                        config,
                        &mut effects,
                    );
                    return (answer, effects);
                }
                if self.members.len() >= config.max_size {
                    return (
                        Answer::Now(JoinReply::error(ErrorCode::GroupMaxSizeReached, "")),
                        effects,
                    );
                }
                self.add_member_and_rebalance(member_id, req, ticket, now_ms, config, &mut effects);
                return (Answer::Parked, effects);
            }
            if self.members.len() + self.pending_members.len() >= config.max_size {
                return (
                    Answer::Now(JoinReply::error(ErrorCode::GroupMaxSizeReached, "")),
                    effects,
                );
            }
            if req.require_known_member_id {
                self.pending_members.insert(
                    member_id.clone(),
                    now_ms + i64::from(req.session_timeout_ms),
                );
                return (
                    Answer::Now(JoinReply::error(ErrorCode::MemberIdRequired, &member_id)),
                    effects,
                );
            }
            self.add_member_and_rebalance(member_id, req, ticket, now_ms, config, &mut effects);
            return (Answer::Parked, effects);
        }

        // A known member id.
        let member_id = req.member_id.clone();
        if self.pending_members.remove(&member_id).is_some() {
            if !self.protocols_fit(&req.protocol_type, &req.protocols) {
                return (
                    Answer::Now(JoinReply::error(
                        ErrorCode::InconsistentGroupProtocol,
                        &member_id,
                    )),
                    effects,
                );
            }
            self.add_member_and_rebalance(member_id, req, ticket, now_ms, config, &mut effects);
            return (Answer::Parked, effects);
        }
        if let Err(code) = self.check_static(&member_id, req.group_instance_id.as_deref()) {
            return (Answer::Now(JoinReply::error(code, &member_id)), effects);
        }
        let Some(member) = self.members.get(&member_id) else {
            return (
                Answer::Now(JoinReply::error(ErrorCode::UnknownMemberId, &member_id)),
                effects,
            );
        };
        let same = member.same_protocols(&req.protocols);
        let others_fit = {
            // The member's own old protocols do not count against its new ones.
            let mut set: Option<BTreeSet<String>> = None;
            for m in self.members.values().filter(|m| m.member_id != member_id) {
                let theirs: BTreeSet<String> = m.protocols.iter().map(|(n, _)| n.clone()).collect();
                set = Some(match set {
                    None => theirs,
                    Some(s) => s.intersection(&theirs).cloned().collect(),
                });
            }
            match set {
                None => !req.protocols.is_empty(),
                Some(s) => req.protocols.iter().any(|(n, _)| s.contains(n)),
            }
        };
        if self.protocol_type.as_deref() != Some(req.protocol_type.as_str()) || !others_fit {
            return (
                Answer::Now(JoinReply::error(
                    ErrorCode::InconsistentGroupProtocol,
                    &member_id,
                )),
                effects,
            );
        }
        let is_leader = self.leader_id.as_deref() == Some(member_id.as_str());
        match self.state {
            State::PreparingRebalance => {
                self.update_member(&member_id, req, ticket, now_ms, &mut effects);
                self.maybe_complete_join(now_ms, &mut effects);
                (Answer::Parked, effects)
            }
            State::CompletingRebalance if same => {
                // The member missed the answer: give it again.
                let reply = self.join_reply_for(&member_id);
                self.touch(&member_id, now_ms);
                (Answer::Now(reply), effects)
            }
            State::Stable if same && !is_leader => {
                let reply = self.join_reply_for(&member_id);
                self.touch(&member_id, now_ms);
                (Answer::Now(reply), effects)
            }
            State::CompletingRebalance | State::Stable => {
                self.update_member(&member_id, req, ticket, now_ms, &mut effects);
                self.prepare_rebalance(now_ms, config, &mut effects);
                (Answer::Parked, effects)
            }
            State::Empty | State::Dead => (
                Answer::Now(JoinReply::error(ErrorCode::UnknownMemberId, &member_id)),
                effects,
            ),
        }
    }

    /// FENCED_INSTANCE_ID when `instance` belongs to another member id.
    fn check_static(&self, member_id: &str, instance: Option<&str>) -> Result<(), ErrorCode> {
        let Some(instance) = instance else {
            return Ok(());
        };
        match self.static_members.get(instance) {
            Some(owner) if owner != member_id => Err(ErrorCode::FencedInstanceId),
            Some(_) => Ok(()),
            None if self.members.contains_key(member_id) => Err(ErrorCode::FencedInstanceId),
            None => Ok(()),
        }
    }

    fn touch(&mut self, member_id: &str, now_ms: i64) {
        if let Some(m) = self.members.get_mut(member_id) {
            m.session_deadline = now_ms + i64::from(m.session_timeout_ms);
        }
    }

    fn join_reply_for(&self, member_id: &str) -> JoinReply {
        let is_leader = self.leader_id.as_deref() == Some(member_id);
        let protocol = self.protocol_name.clone().unwrap_or_default();
        JoinReply {
            error: ErrorCode::None,
            generation_id: self.generation_id,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader_id.clone().unwrap_or_default(),
            skip_assignment: false,
            member_id: member_id.to_owned(),
            members: if is_leader {
                self.join_order
                    .iter()
                    .filter_map(|id| self.members.get(id))
                    .map(|m| {
                        (
                            m.member_id.clone(),
                            m.group_instance_id.clone(),
                            m.metadata(&protocol),
                        )
                    })
                    .collect()
            } else {
                Vec::new()
            },
        }
    }

    fn new_member(member_id: String, req: JoinRequest, ticket: Ticket, now_ms: i64) -> Member {
        Member {
            member_id,
            group_instance_id: req.group_instance_id,
            client_id: req.client_id,
            client_host: req.client_host,
            session_timeout_ms: req.session_timeout_ms,
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            protocols: req.protocols,
            assignment: empty(),
            awaiting_join: Some(ticket),
            awaiting_sync: None,
            session_deadline: now_ms + i64::from(req.session_timeout_ms),
            synced: false,
        }
    }

    fn add_member_and_rebalance(
        &mut self,
        member_id: String,
        req: JoinRequest,
        ticket: Ticket,
        now_ms: i64,
        config: &GroupConfig,
        effects: &mut Effects,
    ) {
        if self.members.is_empty() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        if let Some(i) = &req.group_instance_id {
            self.static_members.insert(i.clone(), member_id.clone());
        }
        let member = Self::new_member(member_id.clone(), req, ticket, now_ms);
        self.members.insert(member_id.clone(), member);
        self.join_order.push(member_id);
        match self.state {
            State::PreparingRebalance => {
                // An initial delayed join stretches while members keep arriving.
                if let (Some(limit), Some(deadline)) =
                    (self.initial_delay_limit, self.rebalance_deadline)
                {
                    let extended = (now_ms + config.initial_rebalance_delay_ms).min(limit);
                    self.rebalance_deadline = Some(deadline.max(extended));
                }
                self.maybe_complete_join(now_ms, effects);
            }
            _ => self.prepare_rebalance(now_ms, config, effects),
        }
    }

    fn update_member(
        &mut self,
        member_id: &str,
        req: JoinRequest,
        ticket: Ticket,
        now_ms: i64,
        effects: &mut Effects,
    ) {
        let Some(m) = self.members.get_mut(member_id) else {
            return;
        };
        if let Some(old) = m.awaiting_join.replace(ticket) {
            // A newer JoinGroup of the same member supersedes the parked one.
            effects.complete(
                old,
                Reply::Join(JoinReply::error(ErrorCode::RebalanceInProgress, member_id)),
            );
        }
        m.protocols = req.protocols;
        m.client_id = req.client_id;
        m.client_host = req.client_host;
        m.session_timeout_ms = req.session_timeout_ms;
        m.rebalance_timeout_ms = req.rebalance_timeout_ms;
        m.session_deadline = now_ms + i64::from(m.session_timeout_ms);
    }

    #[allow(clippy::too_many_arguments)]
    fn replace_static_member(
        &mut self,
        old_id: &str,
        new_id: String,
        req: JoinRequest,
        ticket: Ticket,
        now_ms: i64,
        config: &GroupConfig,
        effects: &mut Effects,
    ) -> Answer<JoinReply> {
        let Some(mut member) = self.members.remove(old_id) else {
            return Answer::Now(JoinReply::error(ErrorCode::UnknownServerError, ""));
        };
        // CLS-3: the old id is fenced; its parked requests learn it.
        if let Some(t) = member.awaiting_join.take() {
            effects.complete(
                t,
                Reply::Join(JoinReply::error(ErrorCode::FencedInstanceId, old_id)),
            );
        }
        if let Some(t) = member.awaiting_sync.take() {
            effects.complete(
                t,
                Reply::Sync(SyncReply::error(ErrorCode::FencedInstanceId)),
            );
        }
        let same = member.same_protocols(&req.protocols);
        member.member_id = new_id.clone();
        member.client_id = req.client_id;
        member.client_host = req.client_host;
        member.session_timeout_ms = req.session_timeout_ms;
        member.rebalance_timeout_ms = req.rebalance_timeout_ms;
        member.session_deadline = now_ms + i64::from(req.session_timeout_ms);
        for id in &mut self.join_order {
            if id == old_id {
                id.clone_from(&new_id);
            }
        }
        if let Some(instance) = &member.group_instance_id {
            self.static_members.insert(instance.clone(), new_id.clone());
        }
        let was_leader = self.leader_id.as_deref() == Some(old_id);
        if was_leader {
            self.leader_id = Some(new_id.clone());
        }
        self.dirty = true;
        match self.state {
            State::Stable if same => {
                self.members.insert(new_id.clone(), member);
                // No rebalance: the member gets the current generation back (KIP-345).
                let mut reply = self.join_reply_for(&new_id);
                reply.skip_assignment = was_leader;
                Answer::Now(reply)
            }
            State::PreparingRebalance => {
                member.protocols = req.protocols;
                member.awaiting_join = Some(ticket);
                self.members.insert(new_id, member);
                let mut e = Effects::default();
                self.maybe_complete_join(now_ms, &mut e);
                effects.completions.extend(e.completions);
                effects.records.extend(e.records);
                Answer::Parked
            }
            _ => {
                member.protocols = req.protocols;
                member.awaiting_join = Some(ticket);
                self.members.insert(new_id, member);
                self.prepare_rebalance(now_ms, config, effects);
                Answer::Parked
            }
        }
    }

    /// Enters PreparingRebalance. The initial delay applies only to a group that was Empty.
    fn prepare_rebalance(&mut self, now_ms: i64, config: &GroupConfig, effects: &mut Effects) {
        if self.state == State::CompletingRebalance {
            // Members waiting for the old generation's assignment must rejoin.
            for m in self.members.values_mut() {
                m.assignment = empty();
                if let Some(t) = m.awaiting_sync.take() {
                    effects.complete(
                        t,
                        Reply::Sync(SyncReply::error(ErrorCode::RebalanceInProgress)),
                    );
                }
            }
        }
        let max_rebalance = self
            .members
            .values()
            .map(|m| i64::from(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0);
        if self.state == State::Empty {
            let delay = config.initial_rebalance_delay_ms.min(max_rebalance);
            self.rebalance_deadline = Some(now_ms + delay);
            self.initial_delay_limit = Some(now_ms + max_rebalance);
        } else {
            self.rebalance_deadline = Some(now_ms + max_rebalance);
            self.initial_delay_limit = None;
        }
        self.set_state(State::PreparingRebalance, now_ms);
        if self.initial_delay_limit.is_none() {
            self.maybe_complete_join(now_ms, effects);
        }
    }

    fn all_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.values().all(|m| m.awaiting_join.is_some())
    }

    fn maybe_complete_join(&mut self, now_ms: i64, effects: &mut Effects) {
        if self.state != State::PreparingRebalance {
            return;
        }
        let initial = self.initial_delay_limit.is_some();
        let due = self.rebalance_deadline.is_some_and(|d| now_ms >= d);
        if (!initial && self.all_joined()) || due {
            self.complete_join(now_ms, effects);
        }
    }

    fn complete_join(&mut self, now_ms: i64, effects: &mut Effects) {
        // Members that did not rejoin in time leave the group.
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| m.awaiting_join.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        for id in gone {
            self.remove_member(&id, ErrorCode::UnknownMemberId, effects);
        }
        self.pending_members.clear();
        self.rebalance_deadline = None;
        self.initial_delay_limit = None;
        self.generation_id = self.generation_id.wrapping_add(1).max(1);
        self.dirty = true;
        if self.members.is_empty() {
            self.protocol_name = None;
            self.leader_id = None;
            self.set_state(State::Empty, now_ms);
            return;
        }
        self.protocol_name = self.select_protocol();
        if self
            .leader_id
            .as_ref()
            .is_none_or(|l| !self.members.contains_key(l))
        {
            self.leader_id = self
                .join_order
                .iter()
                .find(|id| self.members.contains_key(*id))
                .cloned();
        }
        self.set_state(State::CompletingRebalance, now_ms);
        // The sync phase gives up after the longest rebalance timeout.
        let max_rebalance = self
            .members
            .values()
            .map(|m| i64::from(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0);
        self.rebalance_deadline = Some(now_ms + max_rebalance);
        let ids: Vec<String> = self.join_order.clone();
        for id in ids {
            let reply = self.join_reply_for(&id);
            if let Some(m) = self.members.get_mut(&id) {
                m.synced = false;
                m.assignment = empty();
                m.session_deadline = now_ms + i64::from(m.session_timeout_ms);
                if let Some(t) = m.awaiting_join.take() {
                    effects.complete(t, Reply::Join(reply));
                }
            }
        }
    }

    fn remove_member(&mut self, member_id: &str, code: ErrorCode, effects: &mut Effects) {
        let Some(m) = self.members.remove(member_id) else {
            return;
        };
        if let Some(t) = m.awaiting_join {
            effects.complete(t, Reply::Join(JoinReply::error(code, member_id)));
        }
        if let Some(t) = m.awaiting_sync {
            effects.complete(t, Reply::Sync(SyncReply::error(code)));
        }
        if let Some(i) = &m.group_instance_id
            && self.static_members.get(i).map(String::as_str) == Some(member_id)
        {
            self.static_members.remove(i);
        }
        self.join_order.retain(|id| id != member_id);
        if self.leader_id.as_deref() == Some(member_id) {
            self.leader_id = None;
        }
        self.dirty = true;
    }

    /// Removes a member and rebalances what is left.
    fn remove_and_rebalance(
        &mut self,
        member_id: &str,
        now_ms: i64,
        config: &GroupConfig,
        effects: &mut Effects,
    ) {
        self.remove_member(member_id, ErrorCode::UnknownMemberId, effects);
        match self.state {
            State::Stable | State::CompletingRebalance => {
                if self.members.is_empty() {
                    self.generation_id = self.generation_id.wrapping_add(1).max(1);
                    self.protocol_name = None;
                    self.rebalance_deadline = None;
                    self.set_state(State::Empty, now_ms);
                } else {
                    self.prepare_rebalance(now_ms, config, effects);
                }
            }
            State::PreparingRebalance => self.maybe_complete_join(now_ms, effects),
            State::Empty | State::Dead => {}
        }
    }

    /// Handles SyncGroup.
    #[allow(clippy::too_many_arguments)]
    pub fn sync(
        &mut self,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        assignments: Vec<(String, Bytes)>,
        ticket: Ticket,
        now_ms: i64,
    ) -> (Answer<SyncReply>, Effects) {
        let mut effects = Effects::default();
        let now = |code| (Answer::Now(SyncReply::error(code)), Effects::default());
        if self.state == State::Dead {
            return now(ErrorCode::CoordinatorNotAvailable);
        }
        if let Err(code) = self.check_static(member_id, group_instance_id) {
            return now(code);
        }
        if !self.members.contains_key(member_id) {
            return now(ErrorCode::UnknownMemberId);
        }
        if generation_id != self.generation_id {
            return now(ErrorCode::IllegalGeneration);
        }
        if protocol_type.is_some_and(|p| Some(p) != self.protocol_type.as_deref())
            || protocol_name.is_some_and(|p| Some(p) != self.protocol_name.as_deref())
        {
            return now(ErrorCode::InconsistentGroupProtocol);
        }
        match self.state {
            State::Empty | State::Dead => now(ErrorCode::UnknownMemberId),
            State::PreparingRebalance => now(ErrorCode::RebalanceInProgress),
            State::Stable => {
                self.touch(member_id, now_ms);
                let reply = self.sync_reply_for(member_id);
                (Answer::Now(reply), effects)
            }
            State::CompletingRebalance => {
                self.touch(member_id, now_ms);
                let is_leader = self.leader_id.as_deref() == Some(member_id);
                if let Some(m) = self.members.get_mut(member_id) {
                    m.synced = true;
                    if let Some(old) = m.awaiting_sync.replace(ticket) {
                        effects.complete(
                            old,
                            Reply::Sync(SyncReply::error(ErrorCode::RebalanceInProgress)),
                        );
                    }
                }
                if is_leader {
                    let mut given: BTreeMap<String, Bytes> = assignments.into_iter().collect();
                    for m in self.members.values_mut() {
                        m.assignment = given.remove(&m.member_id).unwrap_or_default();
                    }
                    self.dirty = true;
                    self.rebalance_deadline = None;
                    self.set_state(State::Stable, now_ms);
                    let ids: Vec<String> = self.members.keys().cloned().collect();
                    for id in ids {
                        let reply = self.sync_reply_for(&id);
                        if let Some(t) = self
                            .members
                            .get_mut(&id)
                            .and_then(|m| m.awaiting_sync.take())
                        {
                            effects.complete(t, Reply::Sync(reply));
                        }
                    }
                }
                (Answer::Parked, effects)
            }
        }
    }

    fn sync_reply_for(&self, member_id: &str) -> SyncReply {
        SyncReply {
            error: ErrorCode::None,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            assignment: self
                .members
                .get(member_id)
                .map(|m| m.assignment.clone())
                .unwrap_or_default(),
        }
    }

    /// Handles Heartbeat.
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
        now_ms: i64,
    ) -> ErrorCode {
        if self.state == State::Dead {
            return ErrorCode::CoordinatorNotAvailable;
        }
        if let Err(code) = self.check_static(member_id, group_instance_id) {
            return code;
        }
        if !self.members.contains_key(member_id) {
            return ErrorCode::UnknownMemberId;
        }
        if generation_id != self.generation_id {
            return ErrorCode::IllegalGeneration;
        }
        match self.state {
            State::Empty | State::Dead => ErrorCode::UnknownMemberId,
            State::PreparingRebalance => {
                self.touch(member_id, now_ms);
                ErrorCode::RebalanceInProgress
            }
            State::CompletingRebalance | State::Stable => {
                self.touch(member_id, now_ms);
                ErrorCode::None
            }
        }
    }

    /// Checks that a member may commit offsets for `generation_id`, refreshing its session.
    pub fn check_commit(
        &mut self,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
        now_ms: i64,
    ) -> Result<(), ErrorCode> {
        if self.state == State::Dead {
            return Err(ErrorCode::CoordinatorNotAvailable);
        }
        if generation_id < 0 && member_id.is_empty() && group_instance_id.is_none() {
            // A commit from outside the group protocol (an admin, a standalone consumer).
            return if self.members.is_empty() {
                Ok(())
            } else {
                Err(ErrorCode::UnknownMemberId)
            };
        }
        self.check_static(member_id, group_instance_id)?;
        if !self.members.contains_key(member_id) {
            return Err(ErrorCode::UnknownMemberId);
        }
        if generation_id != self.generation_id {
            return Err(ErrorCode::IllegalGeneration);
        }
        if self.state == State::CompletingRebalance {
            return Err(ErrorCode::RebalanceInProgress);
        }
        self.touch(member_id, now_ms);
        Ok(())
    }

    /// Handles LeaveGroup for each member; returns each one's error.
    pub fn leave(
        &mut self,
        leaving: &[Leaving],
        now_ms: i64,
        config: &GroupConfig,
    ) -> (Vec<ErrorCode>, Effects) {
        let mut effects = Effects::default();
        let mut errors = Vec::with_capacity(leaving.len());
        for l in leaving {
            if self.state == State::Dead {
                errors.push(ErrorCode::CoordinatorNotAvailable);
                continue;
            }
            let member_id = match (&l.group_instance_id, l.member_id.as_str()) {
                (Some(instance), given) => match self.static_members.get(instance) {
                    Some(owner) if given.is_empty() || owner == given => owner.clone(),
                    Some(_) => {
                        errors.push(ErrorCode::FencedInstanceId);
                        continue;
                    }
                    None => {
                        errors.push(ErrorCode::UnknownMemberId);
                        continue;
                    }
                },
                (None, given) => given.to_owned(),
            };
            if self.pending_members.remove(&member_id).is_some() {
                errors.push(ErrorCode::None);
                self.maybe_complete_join(now_ms, &mut effects);
                continue;
            }
            if !self.members.contains_key(&member_id) {
                errors.push(ErrorCode::UnknownMemberId);
                continue;
            }
            self.remove_and_rebalance(&member_id, now_ms, config, &mut effects);
            errors.push(ErrorCode::None);
        }
        (errors, effects)
    }

    /// Expires sessions and completes due rebalances.
    pub fn tick(&mut self, now_ms: i64, config: &GroupConfig) -> Effects {
        let mut effects = Effects::default();
        self.pending_members
            .retain(|_, deadline| *deadline > now_ms);
        // Members parked in JoinGroup during a rebalance are alive.
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                m.session_deadline <= now_ms
                    && !(self.state == State::PreparingRebalance && m.awaiting_join.is_some())
                    && m.awaiting_sync.is_none()
            })
            .map(|m| m.member_id.clone())
            .collect();
        for id in expired {
            self.remove_and_rebalance(&id, now_ms, config, &mut effects);
        }
        match self.state {
            State::PreparingRebalance => self.maybe_complete_join(now_ms, &mut effects),
            State::CompletingRebalance if self.rebalance_deadline.is_some_and(|d| now_ms >= d) => {
                // The leader never sent its assignment: drop those that did not sync.
                let lagging: Vec<String> = self
                    .members
                    .values()
                    .filter(|m| !m.synced || self.leader_id.as_deref() == Some(&m.member_id))
                    .map(|m| m.member_id.clone())
                    .collect();
                for id in lagging {
                    self.remove_member(&id, ErrorCode::RebalanceInProgress, &mut effects);
                }
                if self.members.is_empty() {
                    self.generation_id = self.generation_id.wrapping_add(1).max(1);
                    self.protocol_name = None;
                    self.rebalance_deadline = None;
                    self.set_state(State::Empty, now_ms);
                } else {
                    self.prepare_rebalance(now_ms, config, &mut effects);
                }
            }
            _ => {}
        }
        effects
    }

    /// The next time [`ClassicGroup::tick`] has something to do.
    pub fn next_deadline(&self) -> Option<i64> {
        let sessions = self.members.values().map(|m| m.session_deadline).min();
        let pending = self.pending_members.values().copied().min();
        [sessions, pending, self.rebalance_deadline]
            .into_iter()
            .flatten()
            .min()
    }

    /// The group id.
    pub fn id(&self) -> &str {
        &self.id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(member_id: &str, instance: Option<&str>) -> JoinRequest {
        JoinRequest {
            member_id: member_id.to_owned(),
            group_instance_id: instance.map(str::to_owned),
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 20_000,
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::from_static(b"m"))],
            require_known_member_id: true,
        }
    }

    fn cfg() -> GroupConfig {
        GroupConfig {
            initial_rebalance_delay_ms: 0,
            ..GroupConfig::default()
        }
    }

    fn joined(effects: &Effects, ticket: Ticket) -> JoinReply {
        effects
            .completions
            .iter()
            .find_map(|c| match (&c.reply, c.ticket == ticket) {
                (Reply::Join(r), true) => Some(r.clone()),
                _ => None,
            })
            .expect("join completion")
    }

    #[test]
    fn two_members_rebalance_and_sync() {
        let c = cfg();
        let mut g = ClassicGroup::new("g", 0);
        let (a, _) = g.join(req("", None), 1, 0, &c, || "m1".into());
        let Answer::Now(r) = a else { panic!() };
        assert_eq!(r.error, ErrorCode::MemberIdRequired);
        let (a, e) = g.join(req("m1", None), 2, 0, &c, || unreachable!());
        assert!(matches!(a, Answer::Parked));
        // Initial delay is zero here: the tick completes the join.
        let e2 = if e.completions.is_empty() {
            g.tick(1, &c)
        } else {
            e
        };
        let r1 = joined(&e2, 2);
        assert_eq!(r1.generation_id, 1);
        assert_eq!(r1.leader, "m1");
        assert_eq!(r1.members.len(), 1);
        let (a, e) = g.sync(
            "m1",
            None,
            1,
            None,
            None,
            vec![("m1".into(), Bytes::from_static(b"A"))],
            3,
            1,
        );
        assert!(matches!(a, Answer::Parked));
        assert_eq!(e.completions.len(), 1);
        assert_eq!(g.state(), State::Stable);

        // A second member joins: the first must rejoin.
        let (_, _) = g.join(req("", None), 4, 2, &c, || "m2".into());
        let (a, _) = g.join(req("m2", None), 5, 2, &c, || unreachable!());
        assert!(matches!(a, Answer::Parked));
        assert_eq!(g.state(), State::PreparingRebalance);
        assert_eq!(
            g.heartbeat("m1", None, 1, 3),
            ErrorCode::RebalanceInProgress
        );
        let (_, e) = g.join(req("m1", None), 6, 3, &c, || unreachable!());
        let leader = joined(&e, 6);
        let follower = joined(&e, 5);
        assert_eq!(leader.generation_id, 2);
        assert_eq!(leader.members.len(), 2);
        assert!(follower.members.is_empty());
        let (a, e) = g.sync("m2", None, 2, None, None, vec![], 7, 4);
        assert!(matches!(a, Answer::Parked) && e.completions.is_empty());
        let (_, e) = g.sync(
            "m1",
            None,
            2,
            None,
            None,
            vec![
                ("m1".into(), Bytes::from_static(b"A")),
                ("m2".into(), Bytes::from_static(b"B")),
            ],
            8,
            4,
        );
        let got: BTreeMap<Ticket, Bytes> = e
            .completions
            .iter()
            .map(|c| match &c.reply {
                Reply::Sync(s) => (c.ticket, s.assignment.clone()),
                Reply::Join(_) => panic!(),
            })
            .collect();
        assert_eq!(got[&7], Bytes::from_static(b"B"));
        assert_eq!(got[&8], Bytes::from_static(b"A"));
    }

    #[test]
    fn commits_from_a_stale_generation_are_refused() {
        let c = cfg();
        let mut g = ClassicGroup::new("g", 0);
        let mut r = req("", None);
        r.require_known_member_id = false;
        let _ = g.join(r, 1, 0, &c, || "m1".into());
        let _ = g.tick(0, &c);
        let _ = g.sync("m1", None, 1, None, None, vec![], 2, 0);
        assert_eq!(g.check_commit("m1", None, 1, 1), Ok(()));
        assert_eq!(
            g.check_commit("m1", None, 0, 1),
            Err(ErrorCode::IllegalGeneration)
        );
        assert_eq!(
            g.check_commit("nobody", None, 1, 1),
            Err(ErrorCode::UnknownMemberId)
        );
        // An admin commit (generation -1, no member) is refused while the group has members.
        assert_eq!(
            g.check_commit("", None, -1, 1),
            Err(ErrorCode::UnknownMemberId)
        );
    }

    #[test]
    fn session_expiry_removes_member() {
        let c = cfg();
        let mut g = ClassicGroup::new("g", 0);
        let mut r = req("", None);
        r.require_known_member_id = false;
        let _ = g.join(r, 1, 0, &c, || "m1".into());
        let _ = g.tick(0, &c);
        let _ = g.sync("m1", None, 1, None, None, vec![], 2, 0);
        assert_eq!(g.state(), State::Stable);
        let _ = g.tick(9_999, &c);
        assert_eq!(g.members().len(), 1);
        let _ = g.tick(10_001, &c);
        assert!(g.members().is_empty());
        assert_eq!(g.state(), State::Empty);
    }

    #[test]
    fn static_member_rejoins_without_rebalance() {
        let c = cfg();
        let mut g = ClassicGroup::new("g", 0);
        let _ = g.join(req("", Some("i1")), 1, 0, &c, || "m1".into());
        let _ = g.tick(0, &c);
        let _ = g.sync(
            "m1",
            Some("i1"),
            1,
            None,
            None,
            vec![("m1".into(), Bytes::from_static(b"A"))],
            2,
            0,
        );
        assert_eq!(g.state(), State::Stable);
        let (a, _) = g.join(req("", Some("i1")), 3, 5, &c, || "m1b".into());
        let Answer::Now(r) = a else { panic!("parked") };
        assert_eq!(r.error, ErrorCode::None);
        assert_eq!(r.generation_id, 1);
        assert_eq!(r.member_id, "m1b");
        assert_eq!(g.state(), State::Stable);
        assert_eq!(
            g.heartbeat("m1", Some("i1"), 1, 6),
            ErrorCode::FencedInstanceId
        );
        let (a, _) = g.sync("m1b", Some("i1"), 1, None, None, vec![], 4, 6);
        let Answer::Now(s) = a else { panic!() };
        assert_eq!(s.assignment, Bytes::from_static(b"A"));
    }
}
