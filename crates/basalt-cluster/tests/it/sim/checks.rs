//! The invariants the simulation checks, after every event and at the end, under the names of
//! `basalt_cluster::replication`:
//!
//! - `REP-8` one leader per leader epoch: no two `LeaderState`s are ever created for one epoch
//!   (not even by two incarnations of one node).
//! - `REP-2` HW monotonic: a leader's HW never decreases within its epoch.
//! - `REP-2` HW held: every leader's HW is at or below the end of a log prefix that at least
//!   `min.insync.replicas` replicas hold identically (crashed ones included: their log is
//!   durable).
//! - `SIM-1` no divergent committed data: every record below any running replica's HW equals
//!   the record at that offset in the *committed prefix* (the union of all those prefixes, which
//!   must therefore be one log), and no replica ever truncates a record of it.
//! - `SIM-2` no acknowledged record lost: an acknowledged record is in the committed prefix at
//!   its offset; at every step every member of the controller's ISR holds the committed prefix
//!   up to the last acknowledged offset; at the end the final leader and every ISR member hold
//!   each acknowledged record at its offset.
//!
//! Logs are compared through their prefix hashes ([`super::world::Disk::prefix`]), so a check
//! costs O(1) per replica; the end checks compare records one by one.

use std::collections::BTreeMap;

use super::world::{Disk, Node, REPLICAS, Rec, Role, World};

/// What the checks remember between steps.
pub struct Oracle {
    committed: Vec<Rec>,
    /// `committed_prefix[i]` is the prefix hash of `committed[..i]`.
    committed_prefix: Vec<u64>,
    leaders: BTreeMap<i32, (i32, u32)>,
    hw_by_epoch: BTreeMap<i32, i64>,
    acked_end: usize,
    violation: Option<String>,
}

impl Oracle {
    /// Nothing seen yet.
    pub fn new() -> Oracle {
        Oracle {
            committed: Vec::new(),
            committed_prefix: vec![0],
            leaders: BTreeMap::new(),
            hw_by_epoch: BTreeMap::new(),
            acked_end: 0,
            violation: None,
        }
    }

    /// The committed prefix's length.
    pub fn committed_len(&self) -> usize {
        self.committed.len()
    }

    /// Records a violation found inside an event.
    pub fn fail(&mut self, violation: String) {
        self.violation.get_or_insert(violation);
    }

    /// REP-8: `node` (in `incarnation`) becomes leader of `epoch`.
    pub fn on_leader(&mut self, epoch: i32, node: i32, incarnation: u32) {
        if let Some((other, other_inc)) = self.leaders.insert(epoch, (node, incarnation)) {
            self.fail(format!(
                "REP-8: leader epoch {epoch} led by node {other} (incarnation {other_inc}) and \
                 again by node {node} (incarnation {incarnation})"
            ));
        }
    }

    /// SIM-1: `node` is about to truncate its log to `to`.
    pub fn on_truncate(&mut self, node: i32, disk: &Disk, to: i64) {
        let to = to as usize;
        if to < disk.len()
            && to < self.committed.len()
            && disk.prefix[to + 1] == self.committed_prefix[to + 1]
        {
            self.fail(format!(
                "SIM-1: node {node} truncates to {to}, dropping committed record {:?} at offset {to}",
                self.committed[to]
            ));
        }
    }

    /// SIM-2: the producer got an acknowledgement for `id` at `offset`.
    pub fn on_ack(&mut self, offset: i64, id: u64) {
        let o = offset as usize;
        match self.committed.get(o) {
            Some(rec) if rec.id == id => self.acked_end = self.acked_end.max(o + 1),
            found => self.fail(format!(
                "SIM-2: record {id} acknowledged at offset {offset}, committed there: {found:?} \
                 (committed prefix {})",
                self.committed.len()
            )),
        }
    }

    /// The checks after an event.
    pub fn check(
        &mut self,
        world_nodes: &[Node],
        isr: &[i32],
        min_isr: usize,
    ) -> Result<(), String> {
        if let Some(v) = self.violation.take() {
            return Err(v);
        }
        for node in world_nodes {
            if let Some(hw) = node.hw() {
                self.verify_committed(node, hw)?;
            }
        }
        for node in world_nodes {
            let Role::Leader(l) = &node.role else {
                continue;
            };
            let (epoch, hw) = (l.leader_epoch(), l.high_watermark());
            let seen = self.hw_by_epoch.entry(epoch).or_insert(hw);
            if hw < *seen {
                return Err(format!(
                    "REP-2: HW of node {} in leader epoch {epoch} moved back from {seen} to {hw}",
                    node.id
                ));
            }
            *seen = hw;
            let h = hw as usize;
            let holders = world_nodes
                .iter()
                .filter(|m| m.disk.len() >= h && m.disk.prefix[h] == node.disk.prefix[h])
                .count();
            if holders < min_isr.min(REPLICAS.len()) {
                return Err(format!(
                    "REP-2: HW {hw} of node {} (epoch {epoch}) is held by {holders} replicas, \
                     fewer than min.insync.replicas {min_isr}",
                    node.id
                ));
            }
        }
        let a = self.acked_end;
        for &r in isr {
            let disk = &world_nodes[(r - 1) as usize].disk;
            if disk.len() < a || disk.prefix[a] != self.committed_prefix[a] {
                return Err(format!(
                    "SIM-2: ISR member {r} lacks acknowledged records below offset {a} (its log \
                     ends at {}, first difference at {})",
                    disk.len(),
                    self.first_difference(disk)
                ));
            }
        }
        Ok(())
    }

    /// SIM-1: the log of `node` below its HW is the committed prefix; extends the prefix.
    fn verify_committed(&mut self, node: &Node, hw: i64) -> Result<(), String> {
        let disk = &node.disk;
        let h = hw as usize;
        if h > disk.len() {
            return Err(format!(
                "REP-7: node {} has HW {hw} above its log end {}",
                node.id,
                disk.len()
            ));
        }
        let k = h.min(self.committed.len());
        if disk.prefix[k] != self.committed_prefix[k] {
            return Err(format!(
                "SIM-1: node {} below its HW {hw} differs from the committed records at offset {}",
                node.id,
                self.first_difference(disk)
            ));
        }
        for o in self.committed.len()..h {
            self.committed.push(disk.log[o]);
            self.committed_prefix.push(disk.prefix[o + 1]);
        }
        Ok(())
    }

    fn first_difference(&self, disk: &Disk) -> usize {
        disk.log
            .iter()
            .zip(&self.committed)
            .position(|(a, b)| a != b)
            .unwrap_or(disk.len().min(self.committed.len()))
    }
}

/// The end checks, after the faults stopped and the cluster settled: SIM-2 record by record,
/// and that the cluster recovered (one leader, every replica back in the ISR with the leader's
/// log, and acknowledged produces after the faults).
pub fn final_checks(world: &World, acked_before_heal: usize) -> Result<(), String> {
    let state = &world.controller.state;
    let Some(leader) = state.leader else {
        return Err(format!("no leader after the faults ended: {state:?}"));
    };
    let leader_node = world.node(leader);
    match &leader_node.role {
        Role::Leader(l) if l.leader_epoch() == state.leader_epoch => {}
        _ => {
            return Err(format!(
                "node {leader} does not lead epoch {} after the faults ended",
                state.leader_epoch
            ));
        }
    }
    let holders = std::iter::once(leader).chain(state.isr.iter().copied());
    for r in holders {
        let log = &world.node(r).disk.log;
        for &(offset, id) in &world.producer.acked {
            let found = log.get(offset as usize);
            if found.map(|rec| rec.id) != Some(id) {
                return Err(format!(
                    "SIM-2: acknowledged record {id} at offset {offset} is {found:?} on node {r} \
                     (leader {leader}, ISR {:?})",
                    state.isr
                ));
            }
        }
    }
    if state.isr != REPLICAS {
        return Err(format!("the ISR did not recover: {state:?}"));
    }
    for node in &world.nodes {
        if node.disk.log != leader_node.disk.log {
            return Err(format!(
                "node {} did not converge on the leader's log ({} vs {} records)",
                node.id,
                node.disk.len(),
                leader_node.disk.len()
            ));
        }
    }
    if leader_node.hw() != Some(leader_node.disk.len() as i64) {
        return Err(format!(
            "the leader's HW {:?} did not reach its log end {}",
            leader_node.hw(),
            leader_node.disk.len()
        ));
    }
    if world.producer.acked.len() <= acked_before_heal {
        return Err("no produce was acknowledged after the faults ended".to_owned());
    }
    Ok(())
}
