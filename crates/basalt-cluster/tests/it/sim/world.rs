//! The simulated cluster: three replicas of one partition, a controller that holds the partition
//! record as the metadata quorum would (one view, changes applied atomically), and a producer
//! writing with acks=all, all exchanging messages over a network that delays, drops, duplicates
//! and reorders them, driven by one seeded event scheduler in virtual time.
//!
//! A node runs the replication state machines as a broker would: it takes its role from the
//! controller's record, fetches as a follower, answers fetches and produces as a leader, and
//! sends ISR proposals. A crash keeps the node's durable state ([`Disk`]: the whole log, as with
//! fsync before ack, its incarnation and a HW checkpoint written now and then) and loses the rest;
//! a restarted node rebuilds its epoch cache from the log and registers again with a new
//! incarnation. The controller fences a node that misses heartbeats for the session timeout and
//! treats a new incarnation as the death of the old one, then applies the election rules of
//! `replication` (unclean election off).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

use basalt_cluster::replication::{
    AcksAll, DivergingEpoch, FetchAnswer, FollowerFetch, FollowerState, IsrApplied, IsrProposal,
    LeaderConfig, LeaderEpochCache, LeaderState, LocalLog, PartitionLeadership,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::checks::Oracle;

/// The partition's assignment.
pub const REPLICAS: [i32; 3] = [1, 2, 3];
const TICK_MS: i64 = 10;
const CHAOS_EVERY_MS: i64 = 50;
const FETCH_RECORDS_MAX: usize = 16;
const FETCH_TIMEOUT_MS: i64 = 100;
const PROPOSAL_RESEND_MS: i64 = 60;
const BROADCAST_EVERY_TICKS: u64 = 10;
const PRODUCE_TIMEOUT_MS: i64 = 500;
const PRODUCER_IN_FLIGHT_MAX: usize = 3;
const METADATA_REFRESH_MS: i64 = 200;
const WAITER_TIMEOUT_MS: i64 = 1_000;
const TRACE_LINES_MAX: usize = 400;

/// A deliberate fault in the simulated broker, to show the checks catch what they claim to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bug {
    /// The leader acknowledges acks=all produces as soon as it appended them.
    AckOnAppend,
    /// The controller elects out-of-sync replicas when no ISR member is live.
    UncleanElection,
}

/// The knobs of one run, drawn from its seed.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// `min.insync.replicas`.
    pub min_isr: usize,
    /// `replica.lag.time.max.ms`.
    pub lag_max_ms: i64,
    /// How long the controller waits for a heartbeat before fencing a node.
    pub session_timeout_ms: i64,
    /// Messages lost, per thousand.
    pub drop_per_mille: u32,
    /// Messages delivered twice, per thousand.
    pub dup_per_mille: u32,
    /// Chance of a crash at each chaos tick, per thousand.
    pub crash_per_mille: u32,
    /// Chance of a network partition at each chaos tick, per thousand.
    pub isolate_per_mille: u32,
    /// A deliberate fault, for the checks' own tests.
    pub bug: Option<Bug>,
}

impl Settings {
    fn draw(rng: &mut StdRng) -> Settings {
        Settings {
            min_isr: [1, 2, 2, 2, 2, 2, 3][rng.random_range(0..7)],
            lag_max_ms: rng.random_range(60..400),
            session_timeout_ms: rng.random_range(80..400),
            drop_per_mille: rng.random_range(0..80),
            dup_per_mille: rng.random_range(0..20),
            crash_per_mille: rng.random_range(20..120),
            isolate_per_mille: rng.random_range(20..120),
            bug: None,
        }
    }

    fn leader_config(&self) -> LeaderConfig {
        LeaderConfig {
            min_insync_replicas: self.min_isr,
            replica_lag_time_max_ms: self.lag_max_ms,
        }
    }
}

/// A party on the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Addr {
    /// A broker holding a replica.
    Node(i32),
    /// The controller.
    Controller,
    /// The producer.
    Producer,
}

/// One record (a batch of one): the leader epoch stamped in it and a unique id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rec {
    /// Partition leader epoch of the batch.
    pub epoch: i32,
    /// Unique per produce attempt.
    pub id: u64,
}

/// Why a produce failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProduceError {
    /// NOT_LEADER_OR_FOLLOWER.
    NotLeader,
    /// NOT_ENOUGH_REPLICAS (before or after the append).
    NotEnoughReplicas,
}

/// The body of a fetch answer.
#[derive(Clone)]
pub enum FetchBody {
    /// Records from the fetch offset.
    Records(Vec<Rec>),
    /// Fetch v12's diverging epoch.
    Diverging(DivergingEpoch),
    /// OFFSET_OUT_OF_RANGE with the leader's LEO.
    OutOfRange(i64),
    /// Another error.
    Refused(FetchAnswer),
}

impl fmt::Debug for FetchBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchBody::Records(recs) => match (recs.first(), recs.last()) {
                (Some(a), Some(b)) => write!(
                    f,
                    "{} records (epoch {} id {} .. epoch {} id {})",
                    recs.len(),
                    a.epoch,
                    a.id,
                    b.epoch,
                    b.id
                ),
                _ => write!(f, "no records"),
            },
            FetchBody::Diverging(d) => write!(f, "{d:?}"),
            FetchBody::OutOfRange(leo) => write!(f, "OffsetOutOfRange(leo {leo})"),
            FetchBody::Refused(a) => write!(f, "{a:?}"),
        }
    }
}

/// A message.
#[derive(Debug, Clone)]
pub enum Msg {
    /// Node → controller, every other tick.
    Heartbeat {
        /// The sender's incarnation.
        incarnation: u32,
    },
    /// Controller → node: the partition record, for that incarnation of the node only.
    LeaderAndIsr {
        /// The record.
        state: PartitionLeadership,
        /// The incarnation of the node the controller knows.
        incarnation: u32,
    },
    /// Leader → controller.
    AlterIsr(IsrProposal),
    /// Follower → leader.
    Fetch(FollowerFetch),
    /// Leader → follower.
    FetchResponse {
        /// The fetch this answers (the follower's fetcher keeps it with the outstanding fetch).
        request: FollowerFetch,
        /// The leader's HW.
        hw: i64,
        /// What it carries.
        body: FetchBody,
    },
    /// Producer → leader.
    Produce {
        /// Request id.
        req: u64,
        /// The record's id.
        rec_id: u64,
    },
    /// Leader → producer: the offset, or why not.
    ProduceResponse {
        /// Request id.
        req: u64,
        /// The outcome.
        result: Result<i64, ProduceError>,
    },
    /// Producer → controller.
    MetadataRequest,
    /// Controller → producer.
    MetadataResponse {
        /// The leader.
        leader: Option<i32>,
    },
}

enum Event {
    Deliver { from: Addr, to: Addr, msg: Msg },
    Tick(Addr),
    Chaos,
    Restart(i32),
    Heal(i32),
}

/// Which links a network partition cuts for a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    /// Everything.
    All,
    /// The other nodes and the producer; the controller still hears it.
    Peers,
    /// The controller only.
    Controller,
}

/// The last lines of what happened, kept when tracing.
pub struct Trace {
    lines: VecDeque<String>,
}

impl Trace {
    /// The last `n` lines (heartbeats and metadata requests left out), oldest first.
    pub fn last(&self, n: usize) -> impl Iterator<Item = &String> {
        self.lines.iter().skip(self.lines.len().saturating_sub(n))
    }
}

/// Virtual time, the event queue, the seeded RNG and the network's faults.
pub struct Net {
    /// Virtual time.
    pub now_ms: i64,
    seq: u64,
    queue: BTreeMap<(i64, u64), Event>,
    rng: StdRng,
    isolation: BTreeMap<i32, (Cut, i64)>,
    /// Whether faults (loss, duplicates, crashes, partitions) happen.
    pub faults: bool,
    drop_per_mille: u32,
    dup_per_mille: u32,
    /// Kept only when asked, formatting costs.
    pub trace: Option<Trace>,
}

impl Net {
    fn schedule(&mut self, at_ms: i64, event: Event) {
        self.seq += 1;
        self.queue.insert((at_ms, self.seq), event);
    }

    fn note(&mut self, line: impl FnOnce() -> String) {
        if let Some(trace) = &mut self.trace {
            if trace.lines.len() == TRACE_LINES_MAX {
                trace.lines.pop_front();
            }
            let line = format!("{:>6}ms {}", self.now_ms, line());
            trace.lines.push_back(line);
        }
    }

    fn link_up(&self, a: Addr, b: Addr) -> bool {
        let cut = |node: Addr, other: Addr| match node {
            Addr::Node(n) => match self.isolation.get(&n) {
                Some((Cut::All, _)) => true,
                Some((Cut::Peers, _)) => other != Addr::Controller,
                Some((Cut::Controller, _)) => other == Addr::Controller,
                None => false,
            },
            _ => false,
        };
        !cut(a, b) && !cut(b, a)
    }

    fn send(&mut self, from: Addr, to: Addr, msg: Msg) {
        if !self.link_up(from, to) {
            return;
        }
        if self.faults && self.rng.random_ratio(self.drop_per_mille, 1000) {
            self.note(|| format!("lost {from:?} -> {to:?}: {msg:?}"));
            return;
        }
        if self.faults && self.rng.random_ratio(self.dup_per_mille, 1000) {
            let at = self.now_ms + self.delay_ms();
            self.schedule(
                at,
                Event::Deliver {
                    from,
                    to,
                    msg: msg.clone(),
                },
            );
        }
        let at = self.now_ms + self.delay_ms();
        self.schedule(at, Event::Deliver { from, to, msg });
    }

    fn delay_ms(&mut self) -> i64 {
        if self.rng.random_ratio(1, 10) {
            self.rng.random_range(15..150)
        } else {
            self.rng.random_range(1..12)
        }
    }
}

/// What survives a crash.
pub struct Disk {
    /// The log.
    pub log: Vec<Rec>,
    /// `prefix[i]` is a hash of `log[..i]`, so two logs' prefixes compare in O(1).
    pub prefix: Vec<u64>,
    /// The last HW checkpoint.
    pub hw_checkpoint: i64,
    /// Bumped at each restart.
    pub incarnation: u32,
}

impl Disk {
    /// The LEO.
    pub fn len(&self) -> usize {
        self.log.len()
    }

    fn push(&mut self, rec: Rec) {
        let last = *self
            .prefix
            .last()
            .expect("prefix starts with the empty log");
        self.log.push(rec);
        self.prefix.push(chain(last, rec));
    }

    fn truncate(&mut self, len: usize) {
        self.log.truncate(len);
        self.prefix.truncate(len + 1);
        self.hw_checkpoint = self.hw_checkpoint.min(len as i64);
    }
}

/// Extends a prefix hash by one record (order-sensitive).
pub fn chain(prefix: u64, rec: Rec) -> u64 {
    mix(prefix ^ mix(rec.id ^ ((rec.epoch as u64) << 48)))
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A node's role: what it keeps in memory.
pub enum Role {
    /// Crashed.
    Down,
    /// No leader, or not told yet.
    Idle(LocalLog),
    /// Leading.
    Leader(LeaderState),
    /// Following.
    Follower(FollowerState),
}

struct Waiter {
    req: u64,
    offset: i64,
    since_ms: i64,
}

/// A broker with one replica.
pub struct Node {
    /// Its id.
    pub id: i32,
    /// Whether it runs.
    pub up: bool,
    /// Durable state.
    pub disk: Disk,
    /// In-memory state.
    pub role: Role,
    known_leader_epoch: i32,
    fetch_sent_ms: Option<i64>,
    proposal_sent_ms: i64,
    waiters: Vec<Waiter>,
    ticks: u64,
}

impl Node {
    fn new(id: i32) -> Node {
        Node {
            id,
            up: true,
            disk: Disk {
                log: Vec::new(),
                prefix: vec![0],
                hw_checkpoint: 0,
                incarnation: 1,
            },
            role: Role::Idle(LocalLog::default()),
            known_leader_epoch: -1,
            fetch_sent_ms: None,
            proposal_sent_ms: 0,
            waiters: Vec::new(),
            ticks: 0,
        }
    }

    /// The HW in memory, if running.
    pub fn hw(&self) -> Option<i64> {
        match &self.role {
            Role::Down => None,
            Role::Idle(log) => Some(log.high_watermark),
            Role::Leader(l) => Some(l.high_watermark()),
            Role::Follower(f) => Some(f.high_watermark()),
        }
    }

    /// A short description for failure reports.
    pub fn describe(&self) -> String {
        let role = match &self.role {
            Role::Down => "down".to_owned(),
            Role::Idle(_) => "idle".to_owned(),
            Role::Leader(l) => format!(
                "leader epoch {} isr {:?} maximal {:?} pe {}",
                l.leader_epoch(),
                l.isr(),
                l.maximal_isr(),
                l.partition_epoch()
            ),
            Role::Follower(f) => {
                format!("follower of {} epoch {}", f.leader_id(), f.leader_epoch())
            }
        };
        let epochs: Vec<(i32, usize)> = {
            let mut v: Vec<(i32, usize)> = Vec::new();
            for (o, r) in self.disk.log.iter().enumerate() {
                if v.last().is_none_or(|&(e, _)| e != r.epoch) {
                    v.push((r.epoch, o));
                }
            }
            v
        };
        format!(
            "node {} (incarnation {}): {role}, leo {}, hw {:?}, epochs (epoch, start) {epochs:?}",
            self.id,
            self.disk.incarnation,
            self.disk.len(),
            self.hw()
        )
    }

    fn take_log(&mut self) -> LocalLog {
        match std::mem::replace(&mut self.role, Role::Down) {
            Role::Down => unreachable!("a running node has a log"),
            Role::Idle(log) => log,
            Role::Leader(l) => l.into_log(),
            Role::Follower(f) => f.into_log(),
        }
    }

    fn fail_waiters(&mut self, net: &mut Net, error: ProduceError) {
        for w in self.waiters.drain(..) {
            let msg = Msg::ProduceResponse {
                req: w.req,
                result: Err(error),
            };
            net.send(Addr::Node(self.id), Addr::Producer, msg);
        }
    }

    /// REP-6: answers the acks=all produces the leader can answer.
    fn answer_waiters(&mut self, net: &mut Net) {
        let Role::Leader(l) = &self.role else {
            return;
        };
        let from = Addr::Node(self.id);
        let now_ms = net.now_ms;
        self.waiters.retain(|w| {
            let result = match l.acks_all_ready(w.offset + 1) {
                AcksAll::Ready => Ok(w.offset),
                AcksAll::NotEnoughReplicas => Err(ProduceError::NotEnoughReplicas),
                AcksAll::Wait => return now_ms - w.since_ms < WAITER_TIMEOUT_MS,
            };
            net.send(
                from,
                Addr::Producer,
                Msg::ProduceResponse { req: w.req, result },
            );
            false
        });
    }

    fn send_fetch(&mut self, net: &mut Net) {
        let Role::Follower(f) = &self.role else {
            return;
        };
        let to = Addr::Node(f.leader_id());
        net.send(Addr::Node(self.id), to, Msg::Fetch(f.fetch_request()));
        self.fetch_sent_ms = Some(net.now_ms);
    }

    fn tick(&mut self, net: &mut Net) {
        self.ticks += 1;
        if self.ticks.is_multiple_of(2) {
            let msg = Msg::Heartbeat {
                incarnation: self.disk.incarnation,
            };
            net.send(Addr::Node(self.id), Addr::Controller, msg);
        }
        if net.rng.random_ratio(3, 10)
            && let Some(hw) = self.hw()
        {
            self.disk.hw_checkpoint = hw;
        }
        let now_ms = net.now_ms;
        match &mut self.role {
            Role::Leader(l) => {
                let proposal = match l.tick(now_ms) {
                    Some(p) => Some(p),
                    None => l
                        .pending_proposal()
                        .filter(|_| now_ms - self.proposal_sent_ms >= PROPOSAL_RESEND_MS)
                        .cloned(),
                };
                if let Some(p) = proposal {
                    net.note(|| format!("node {} proposes {:?}", self.id, p));
                    net.send(Addr::Node(self.id), Addr::Controller, Msg::AlterIsr(p));
                    self.proposal_sent_ms = now_ms;
                }
                self.answer_waiters(net);
            }
            Role::Follower(_) => {
                if self
                    .fetch_sent_ms
                    .is_none_or(|t| now_ms - t >= FETCH_TIMEOUT_MS)
                {
                    self.send_fetch(net);
                }
            }
            Role::Idle(_) | Role::Down => {}
        }
    }

    fn on_leader_and_isr(
        &mut self,
        state: PartitionLeadership,
        incarnation: u32,
        net: &mut Net,
        oracle: &mut Oracle,
        settings: &Settings,
    ) {
        if incarnation != self.disk.incarnation {
            return;
        }
        // A newer leader epoch changes the role. Within one, only the leader cares, and it
        // judges stale or reordered ISR versions itself (REP-3).
        if state.leader_epoch > self.known_leader_epoch {
            self.known_leader_epoch = state.leader_epoch;
            let log = self.take_log();
            self.fail_waiters(net, ProduceError::NotLeader);
            self.fetch_sent_ms = None;
            self.role = match state.leader {
                Some(l) if l == self.id => {
                    net.note(|| format!("node {} leads epoch {}", self.id, state.leader_epoch));
                    oracle.on_leader(state.leader_epoch, self.id, self.disk.incarnation);
                    let config = settings.leader_config();
                    Role::Leader(LeaderState::new(self.id, &state, config, log, net.now_ms))
                }
                Some(l) => Role::Follower(FollowerState::new(self.id, l, state.leader_epoch, log)),
                None => Role::Idle(log),
            };
            self.send_fetch(net);
        } else if state.leader_epoch == self.known_leader_epoch
            && let Role::Leader(l) = &mut self.role
            && let IsrApplied::Applied { .. } = l.apply_isr(&state.isr, state.partition_epoch)
        {
            net.note(|| format!("node {} applies isr {:?}", self.id, state.isr));
            self.answer_waiters(net);
        }
    }

    fn on_fetch(&mut self, fetch: FollowerFetch, net: &mut Net) {
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        let outcome = l.on_follower_fetch(&fetch, net.now_ms);
        let body = match outcome.answer {
            FetchAnswer::Records {
                from_offset,
                to_offset,
            } => {
                let from = from_offset as usize;
                let to = (to_offset as usize).min(from + FETCH_RECORDS_MAX);
                FetchBody::Records(self.disk.log[from..to].to_vec())
            }
            FetchAnswer::Diverging(d) => FetchBody::Diverging(d),
            FetchAnswer::OffsetOutOfRange { log_end_offset } => {
                FetchBody::OutOfRange(log_end_offset)
            }
            other => FetchBody::Refused(other),
        };
        let msg = Msg::FetchResponse {
            request: fetch,
            hw: outcome.high_watermark,
            body,
        };
        let me = Addr::Node(self.id);
        net.send(me, Addr::Node(fetch.replica_id), msg);
        if let Some(p) = outcome.proposal {
            net.note(|| format!("node {} proposes {:?}", self.id, p));
            net.send(me, Addr::Controller, Msg::AlterIsr(p));
            self.proposal_sent_ms = net.now_ms;
        }
        if outcome.hw_advanced {
            self.answer_waiters(net);
        }
    }

    fn on_fetch_response(
        &mut self,
        from: Addr,
        (request, hw, body): (FollowerFetch, i64, FetchBody),
        net: &mut Net,
        oracle: &mut Oracle,
    ) {
        let Role::Follower(f) = &mut self.role else {
            return;
        };
        // REP-7: only answers to a fetch that still describes the log.
        if from != Addr::Node(f.leader_id()) || !f.is_current(&request) {
            return;
        }
        self.fetch_sent_ms = None;
        let fetch_offset = request.fetch_offset;
        let truncate_to = match body {
            FetchBody::Records(recs) => {
                for (i, &rec) in recs.iter().enumerate() {
                    let offset = fetch_offset + i as i64;
                    if let Err(e) = f.on_batch(rec.epoch, offset, offset + 1) {
                        oracle.fail(format!("node {} refused a fetched batch: {e}", self.id));
                        return;
                    }
                    self.disk.push(rec);
                }
                f.on_high_watermark(hw);
                if recs.is_empty() {
                    return;
                }
                None
            }
            FetchBody::Diverging(d) => f.on_diverging(&request, d),
            FetchBody::OutOfRange(leo) => f.on_offset_out_of_range(&request, leo),
            FetchBody::Refused(_) => return,
        };
        if let Some(to) = truncate_to {
            net.note(|| format!("node {} truncates {} -> {to}", self.id, self.disk.len()));
            oracle.on_truncate(self.id, &self.disk, to);
            self.disk.truncate(to as usize);
        }
        self.send_fetch(net);
    }

    fn on_produce(&mut self, req: u64, rec_id: u64, net: &mut Net, settings: &Settings) {
        let me = Addr::Node(self.id);
        let Role::Leader(l) = &mut self.role else {
            let result = Err(ProduceError::NotLeader);
            net.send(me, Addr::Producer, Msg::ProduceResponse { req, result });
            return;
        };
        if !l.min_isr_met() {
            let result = Err(ProduceError::NotEnoughReplicas);
            net.send(me, Addr::Producer, Msg::ProduceResponse { req, result });
            return;
        }
        let offset = self.disk.len() as i64;
        self.disk.push(Rec {
            epoch: l.leader_epoch(),
            id: rec_id,
        });
        l.on_append(offset + 1);
        if settings.bug == Some(Bug::AckOnAppend) {
            let result = Ok(offset);
            net.send(me, Addr::Producer, Msg::ProduceResponse { req, result });
            return;
        }
        self.waiters.push(Waiter {
            req,
            offset,
            since_ms: net.now_ms,
        });
        self.answer_waiters(net);
    }

    fn crash(&mut self) {
        self.up = false;
        self.role = Role::Down;
        self.waiters.clear();
        self.fetch_sent_ms = None;
    }

    fn restart(&mut self, net: &mut Net) {
        self.up = true;
        self.disk.incarnation += 1;
        let epochs = LeaderEpochCache::rebuild(
            self.disk
                .log
                .iter()
                .enumerate()
                .map(|(o, r)| (r.epoch, o as i64)),
        );
        let log = LocalLog::new(self.disk.len() as i64, self.disk.hw_checkpoint, epochs);
        self.role = Role::Idle(log);
        self.known_leader_epoch = -1;
        let msg = Msg::Heartbeat {
            incarnation: self.disk.incarnation,
        };
        net.send(Addr::Node(self.id), Addr::Controller, msg);
    }
}

/// The controller: the partition record as the quorum holds it, and node liveness.
pub struct Controller {
    /// The partition record.
    pub state: PartitionLeadership,
    last_heartbeat_ms: BTreeMap<i32, i64>,
    incarnations: BTreeMap<i32, u32>,
    /// Nodes not fenced.
    pub live: BTreeSet<i32>,
    ticks: u64,
    /// Leader changes made.
    pub elections: u64,
}

impl Controller {
    fn new() -> Controller {
        Controller {
            state: PartitionLeadership::new(REPLICAS.to_vec()),
            last_heartbeat_ms: REPLICAS.iter().map(|&n| (n, 0)).collect(),
            incarnations: REPLICAS.iter().map(|&n| (n, 1)).collect(),
            live: REPLICAS.iter().copied().collect(),
            ticks: 0,
            elections: 0,
        }
    }

    fn send_state(&self, node: i32, net: &mut Net) {
        let msg = Msg::LeaderAndIsr {
            state: self.state.clone(),
            incarnation: self.incarnations[&node],
        };
        net.send(Addr::Controller, Addr::Node(node), msg);
    }

    fn broadcast(&self, net: &mut Net) {
        for n in REPLICAS {
            self.send_state(n, net);
        }
    }

    fn install(&mut self, next: PartitionLeadership, net: &mut Net) {
        net.note(|| format!("controller commits {next:?}"));
        if next.leader != self.state.leader {
            self.elections += 1;
        }
        self.state = next;
        self.broadcast(net);
    }

    fn reconcile(&mut self, live: &BTreeSet<i32>, net: &mut Net, settings: &Settings) {
        let unclean = settings.bug == Some(Bug::UncleanElection);
        if let Some(next) = self.state.on_live_nodes(live, unclean) {
            self.install(next, net);
        }
    }

    fn tick(&mut self, net: &mut Net, settings: &Settings) {
        self.ticks += 1;
        let now_ms = net.now_ms;
        let fenced: Vec<i32> = self
            .live
            .iter()
            .copied()
            .filter(|n| now_ms - self.last_heartbeat_ms[n] > settings.session_timeout_ms)
            .collect();
        for n in fenced {
            net.note(|| format!("controller fences node {n}"));
            self.live.remove(&n);
        }
        let live = self.live.clone();
        self.reconcile(&live, net, settings);
        if self.ticks.is_multiple_of(BROADCAST_EVERY_TICKS) {
            self.broadcast(net);
        }
    }

    fn on_heartbeat(&mut self, node: i32, incarnation: u32, net: &mut Net, settings: &Settings) {
        let known = self.incarnations[&node];
        if incarnation < known {
            return;
        }
        if incarnation > known {
            // A new incarnation: whatever the old one held is void.
            net.note(|| format!("controller registers node {node} incarnation {incarnation}"));
            self.incarnations.insert(node, incarnation);
            let mut without = self.live.clone();
            without.remove(&node);
            self.reconcile(&without, net, settings);
            self.send_state(node, net);
        }
        self.last_heartbeat_ms.insert(node, net.now_ms);
        self.live.insert(node);
    }

    fn on_alter_isr(&mut self, node: i32, proposal: IsrProposal, net: &mut Net) {
        match self.state.alter_isr(&proposal) {
            Ok(next) => self.install(next, net),
            Err(e) => {
                net.note(|| format!("controller refuses {proposal:?}: {e}"));
                self.send_state(node, net);
            }
        }
    }
}

/// The producer: acks=all, a few requests in flight, each attempt a new record.
pub struct Producer {
    leader: Option<i32>,
    in_flight: BTreeMap<u64, (u64, i64)>,
    next_req: u64,
    next_rec_id: u64,
    metadata_sent_ms: i64,
    /// No new produces once set.
    pub stopped: bool,
    /// Acknowledged (offset, record id).
    pub acked: Vec<(i64, u64)>,
    /// Produce attempts.
    pub sent: u64,
}

impl Producer {
    fn tick(&mut self, net: &mut Net) {
        let now_ms = net.now_ms;
        self.in_flight
            .retain(|_, &mut (_, sent)| now_ms - sent < PRODUCE_TIMEOUT_MS);
        let refresh = if self.leader.is_some() {
            METADATA_REFRESH_MS
        } else {
            3 * TICK_MS
        };
        if now_ms - self.metadata_sent_ms >= refresh {
            net.send(Addr::Producer, Addr::Controller, Msg::MetadataRequest);
            self.metadata_sent_ms = now_ms;
        }
        if self.stopped || self.in_flight.len() >= PRODUCER_IN_FLIGHT_MAX {
            return;
        }
        let Some(leader) = self.leader else {
            return;
        };
        self.next_req += 1;
        self.next_rec_id += 1;
        self.sent += 1;
        self.in_flight
            .insert(self.next_req, (self.next_rec_id, now_ms));
        let msg = Msg::Produce {
            req: self.next_req,
            rec_id: self.next_rec_id,
        };
        net.send(Addr::Producer, Addr::Node(leader), msg);
    }

    fn on_response(&mut self, req: u64, result: Result<i64, ProduceError>, oracle: &mut Oracle) {
        let Some((rec_id, _)) = self.in_flight.remove(&req) else {
            return;
        };
        match result {
            Ok(offset) => {
                self.acked.push((offset, rec_id));
                oracle.on_ack(offset, rec_id);
            }
            Err(ProduceError::NotLeader) => self.leader = None,
            Err(ProduceError::NotEnoughReplicas) => {}
        }
    }
}

/// Everything in one run.
pub struct World {
    /// The scheduler and network.
    pub net: Net,
    /// The settings drawn from the seed.
    pub settings: Settings,
    /// Nodes 1, 2, 3 at indexes 0, 1, 2.
    pub nodes: Vec<Node>,
    /// The controller.
    pub controller: Controller,
    /// The producer.
    pub producer: Producer,
    /// The checks.
    pub oracle: Oracle,
    /// Crashes so far.
    pub crashes: u64,
    /// Network partitions so far.
    pub partitions: u64,
    /// Events run so far.
    pub steps: u64,
}

impl World {
    /// A fresh cluster for `seed`, its settings drawn from the seed (then `bug` set).
    pub fn new(seed: u64, bug: Option<Bug>, trace: bool) -> World {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut settings = Settings::draw(&mut rng);
        settings.bug = bug;
        let mut net = Net {
            now_ms: 0,
            seq: 0,
            queue: BTreeMap::new(),
            rng,
            isolation: BTreeMap::new(),
            faults: true,
            drop_per_mille: settings.drop_per_mille,
            dup_per_mille: settings.dup_per_mille,
            trace: trace.then(|| Trace {
                lines: VecDeque::new(),
            }),
        };
        for n in REPLICAS {
            net.schedule(n as i64, Event::Tick(Addr::Node(n)));
        }
        net.schedule(0, Event::Tick(Addr::Controller));
        net.schedule(5, Event::Tick(Addr::Producer));
        net.schedule(CHAOS_EVERY_MS, Event::Chaos);
        let controller = Controller::new();
        controller.broadcast(&mut net);
        World {
            net,
            settings,
            nodes: REPLICAS.iter().map(|&n| Node::new(n)).collect(),
            controller,
            producer: Producer {
                leader: None,
                in_flight: BTreeMap::new(),
                next_req: 0,
                next_rec_id: 0,
                metadata_sent_ms: -METADATA_REFRESH_MS,
                stopped: false,
                acked: Vec::new(),
                sent: 0,
            },
            oracle: Oracle::new(),
            crashes: 0,
            partitions: 0,
            steps: 0,
        }
    }

    /// The node with `id`.
    pub fn node(&self, id: i32) -> &Node {
        &self.nodes[(id - 1) as usize]
    }

    /// Runs the next event.
    pub fn step(&mut self) {
        let Some(((at_ms, _), event)) = self.net.queue.pop_first() else {
            unreachable!("ticks always reschedule themselves");
        };
        self.net.now_ms = at_ms;
        self.steps += 1;
        match event {
            Event::Tick(addr) => {
                self.tick(addr);
                let at = at_ms + TICK_MS + self.net.rng.random_range(0..3);
                self.net.schedule(at, Event::Tick(addr));
            }
            Event::Chaos => {
                if self.net.faults {
                    self.chaos();
                }
                self.net.schedule(at_ms + CHAOS_EVERY_MS, Event::Chaos);
            }
            Event::Restart(n) => self.restart(n),
            Event::Heal(n) => {
                if self
                    .net
                    .isolation
                    .get(&n)
                    .is_some_and(|&(_, until)| until <= at_ms)
                {
                    self.net.note(|| format!("node {n} reconnected"));
                    self.net.isolation.remove(&n);
                }
            }
            Event::Deliver { from, to, msg } => {
                if self.net.link_up(from, to) {
                    self.deliver(from, to, msg);
                }
            }
        }
    }

    /// Ends the faults: restarts every crashed node and heals every partition.
    pub fn heal(&mut self) {
        self.net.faults = false;
        self.net.isolation.clear();
        self.net.note(|| "faults end".to_owned());
        for n in REPLICAS {
            self.restart(n);
        }
    }

    fn tick(&mut self, addr: Addr) {
        let World {
            net,
            settings,
            nodes,
            controller,
            producer,
            ..
        } = self;
        match addr {
            Addr::Node(n) => {
                let node = &mut nodes[(n - 1) as usize];
                if node.up {
                    node.tick(net);
                }
            }
            Addr::Controller => controller.tick(net, settings),
            Addr::Producer => producer.tick(net),
        }
    }

    fn deliver(&mut self, from: Addr, to: Addr, msg: Msg) {
        let World {
            net,
            settings,
            nodes,
            controller,
            producer,
            oracle,
            ..
        } = self;
        let chatter = matches!(
            msg,
            Msg::Heartbeat { .. } | Msg::MetadataRequest | Msg::MetadataResponse { .. }
        );
        if net.trace.is_some() && !chatter {
            let line = format!("{from:?} -> {to:?}: {msg:?}");
            net.note(|| line);
        }
        match to {
            Addr::Node(n) => {
                let node = &mut nodes[(n - 1) as usize];
                if !node.up {
                    return;
                }
                match msg {
                    Msg::LeaderAndIsr { state, incarnation } => {
                        node.on_leader_and_isr(state, incarnation, net, oracle, settings)
                    }
                    Msg::Fetch(fetch) => node.on_fetch(fetch, net),
                    Msg::FetchResponse { request, hw, body } => {
                        node.on_fetch_response(from, (request, hw, body), net, oracle)
                    }
                    Msg::Produce { req, rec_id } => node.on_produce(req, rec_id, net, settings),
                    other => unreachable!("node got {other:?}"),
                }
            }
            Addr::Controller => match (msg, from) {
                (Msg::Heartbeat { incarnation }, Addr::Node(n)) => {
                    controller.on_heartbeat(n, incarnation, net, settings)
                }
                (Msg::AlterIsr(p), Addr::Node(n)) => controller.on_alter_isr(n, p, net),
                (Msg::MetadataRequest, _) => {
                    let leader = controller.state.leader;
                    net.send(to, from, Msg::MetadataResponse { leader });
                }
                (other, _) => unreachable!("controller got {other:?}"),
            },
            Addr::Producer => match msg {
                Msg::ProduceResponse { req, result } => producer.on_response(req, result, oracle),
                Msg::MetadataResponse { leader } => producer.leader = leader,
                other => unreachable!("producer got {other:?}"),
            },
        }
    }

    fn chaos(&mut self) {
        let roll = self.net.rng.random_range(0..1000);
        let crash = roll < self.settings.crash_per_mille;
        let isolate =
            !crash && roll < self.settings.crash_per_mille + self.settings.isolate_per_mille;
        if !crash && !isolate {
            return;
        }
        // Half the faults hit the leader, where they matter most.
        let leader = self.controller.state.leader;
        let target = match leader {
            Some(l) if self.net.rng.random_bool(0.5) => l,
            _ => REPLICAS[self.net.rng.random_range(0..REPLICAS.len())],
        };
        let now_ms = self.net.now_ms;
        if crash {
            let down = self.nodes.iter().filter(|n| !n.up).count();
            let node = &mut self.nodes[(target - 1) as usize];
            if !node.up || down >= 2 {
                return;
            }
            node.crash();
            self.crashes += 1;
            self.net.note(|| format!("node {target} crashes"));
            let at = now_ms + self.net.rng.random_range(30..1_000);
            self.net.schedule(at, Event::Restart(target));
        } else {
            if self.net.isolation.contains_key(&target) {
                return;
            }
            let cut =
                [Cut::All, Cut::All, Cut::Peers, Cut::Controller][self.net.rng.random_range(0..4)];
            let until = now_ms + self.net.rng.random_range(30..1_500);
            self.net.isolation.insert(target, (cut, until));
            self.partitions += 1;
            self.net
                .note(|| format!("node {target} cut off ({cut:?}) until {until}ms"));
            self.net.schedule(until, Event::Heal(target));
        }
    }

    fn restart(&mut self, n: i32) {
        let node = &mut self.nodes[(n - 1) as usize];
        if node.up {
            return;
        }
        node.restart(&mut self.net);
        self.net.note(|| format!("node {n} restarts"));
    }
}
