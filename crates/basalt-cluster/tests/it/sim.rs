//! Seeded simulations of partition replication and leader election.
//!
//! Each seed builds a [`world::World`]: three replicas of one partition, a controller holding the
//! partition record as the metadata quorum would, and an acks=all producer, over a network that
//! delays, loses, duplicates and reorders messages, with nodes crashing (keeping their durable
//! log, losing memory) and being cut off for a while. The seed draws the settings
//! (`min.insync.replicas`, lag and session timeouts, fault rates) and every random choice, so a
//! run replays exactly. After `BASALT_SIM_STEPS` events (default 3000) of faults, the faults stop
//! and the cluster gets a few virtual seconds to settle. [`checks`] names what is checked after
//! every event and at the end.
//!
//! - `BASALT_SIM_SEEDS=n`: run seeds `0..n` (default 500).
//! - `BASALT_SIM_SEED=n`: run only seed `n` and print its trace.
//!
//! A failure prints the seed, the violation, the state of every node and the last events.

mod checks;
mod world;

use std::time::Instant;

use world::{Bug, World};

const STEPS_DEFAULT: usize = 3_000;
const SEEDS_DEFAULT: u64 = 500;
const SHARDS: u64 = 2;
/// Trace lines in a failure report: a few dozen in a batch, more when replaying one seed.
const TRACE_LINES_BATCH: usize = 60;
const TRACE_LINES_REPLAY: usize = 400;
/// Virtual time the cluster gets after the faults end, and when the producer stops within it
/// (so the followers can reach the leader's end).
const SETTLE_MS: i64 = 3_000;
const SETTLE_PRODUCE_MS: i64 = 1_500;

struct Failure {
    seed: u64,
    report: String,
}

struct Summary {
    steps: u64,
    acked: usize,
    sent: u64,
    elections: u64,
    crashes: u64,
    partitions: u64,
    committed: usize,
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, not {v:?}")),
    )
}

/// Runs one seed; on a violation, the report with the state and the trace (if kept).
/// `trace_lines` is how much of the trace a report shows (none kept if 0).
fn run(seed: u64, steps: usize, bug: Option<Bug>, trace_lines: usize) -> Result<Summary, Failure> {
    let mut w = World::new(seed, bug, trace_lines > 0);
    let fail = |w: &World, violation: String| Failure {
        seed,
        report: report(w, seed, &violation, trace_lines),
    };
    for _ in 0..steps {
        w.step();
        let min_isr = w.settings.min_isr;
        if let Err(v) = w.oracle.check(&w.nodes, &w.controller.state.isr, min_isr) {
            return Err(fail(&w, v));
        }
    }
    let acked_before_heal = w.producer.acked.len();
    w.heal();
    let settle_start_ms = w.net.now_ms;
    while w.net.now_ms < settle_start_ms + SETTLE_MS {
        if w.net.now_ms >= settle_start_ms + SETTLE_PRODUCE_MS {
            w.producer.stopped = true;
        }
        w.step();
        let min_isr = w.settings.min_isr;
        if let Err(v) = w.oracle.check(&w.nodes, &w.controller.state.isr, min_isr) {
            return Err(fail(&w, v));
        }
    }
    if let Err(v) = checks::final_checks(&w, acked_before_heal) {
        return Err(fail(&w, v));
    }
    Ok(Summary {
        steps: w.steps,
        acked: w.producer.acked.len(),
        sent: w.producer.sent,
        elections: w.controller.elections,
        crashes: w.crashes,
        partitions: w.partitions,
        committed: w.oracle.committed_len(),
    })
}

fn report(w: &World, seed: u64, violation: &str, trace_lines: usize) -> String {
    let mut out = format!(
        "seed {seed} at {}ms: {violation}\nsettings: {:?}\ncontroller: {:?}, live {:?}\n",
        w.net.now_ms, w.settings, w.controller.state, w.controller.live
    );
    for node in &w.nodes {
        out.push_str(&format!("  {}\n", node.describe()));
    }
    out.push_str(&format!(
        "acknowledged: {}, committed prefix: {}\n",
        w.producer.acked.len(),
        w.oracle.committed_len()
    ));
    if let Some(trace) = &w.net.trace {
        out.push_str("last events:\n");
        for line in trace.last(trace_lines) {
            out.push_str(&format!("  {line}\n"));
        }
    }
    out
}

/// Runs the seeds of one shard; panics with a replayable report on the first failure.
fn run_shard(shard: u64) {
    let steps = env_u64("BASALT_SIM_STEPS").map_or(STEPS_DEFAULT, |s| s as usize);
    if let Some(seed) = env_u64("BASALT_SIM_SEED") {
        if shard == 0 {
            match run(seed, steps, None, TRACE_LINES_REPLAY) {
                Ok(s) => eprintln!("seed {seed} passed: {}", describe(&s)),
                Err(f) => panic!("{}", f.report),
            }
        }
        return;
    }
    let seeds = env_u64("BASALT_SIM_SEEDS").unwrap_or(SEEDS_DEFAULT);
    let started = Instant::now();
    let mut total = Summary {
        steps: 0,
        acked: 0,
        sent: 0,
        elections: 0,
        crashes: 0,
        partitions: 0,
        committed: 0,
    };
    let mut ran = 0;
    for seed in (shard..seeds).step_by(SHARDS as usize) {
        match run(seed, steps, None, 0) {
            Ok(s) => {
                total.steps += s.steps;
                total.acked += s.acked;
                total.sent += s.sent;
                total.elections += s.elections;
                total.crashes += s.crashes;
                total.partitions += s.partitions;
                total.committed += s.committed;
                ran += 1;
            }
            Err(f) => {
                // Replay with the trace on: the run is deterministic.
                let traced = run(f.seed, steps, None, TRACE_LINES_BATCH)
                    .err()
                    .map_or(f.report, |t| t.report);
                panic!(
                    "{traced}\nreplay: BASALT_SIM_SEED={} cargo nextest run -p basalt-cluster sim",
                    f.seed
                );
            }
        }
    }
    eprintln!(
        "{ran} seeds x {steps} steps under faults ({} events in all, settling included) in \
         {:.1?}: {}",
        total.steps,
        started.elapsed(),
        describe(&total)
    );
    // The runs must exercise something: faults, elections, and acknowledged writes.
    if ran > 20 {
        assert!(
            total.acked as u64 * 4 > total.sent,
            "few produces acknowledged"
        );
        assert!(total.elections > ran && total.crashes > ran && total.partitions > ran);
    }
}

fn describe(s: &Summary) -> String {
    format!(
        "{} of {} produces acknowledged, {} records committed, {} leader changes, {} crashes, \
         {} partitions",
        s.acked, s.sent, s.committed, s.elections, s.crashes, s.partitions
    )
}

#[test]
fn replication_keeps_its_invariants_under_faults_shard_0() {
    run_shard(0);
}

#[test]
fn replication_keeps_its_invariants_under_faults_shard_1() {
    run_shard(1);
}

/// The checks catch the faults they claim to: a leader acknowledging before replication, and
/// unclean elections, each lose acknowledged records within a few seeds.
#[test]
fn the_checks_catch_broken_replication() {
    for (bug, expected) in [(Bug::AckOnAppend, "SIM-"), (Bug::UncleanElection, "")] {
        let caught = (0..200).find_map(|seed| run(seed, STEPS_DEFAULT, Some(bug), 0).err());
        let failure = caught.unwrap_or_else(|| panic!("{bug:?} went unnoticed in 200 seeds"));
        let first_line = failure.report.lines().next().unwrap_or_default();
        eprintln!("{bug:?} caught: {first_line}");
        assert!(failure.report.contains(expected), "{}", failure.report);
    }
}
