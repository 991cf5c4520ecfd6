//! `basalt bench storage`: append throughput of the storage engine under each fsync policy,
//! beside the raw bandwidth of the same disk measured in the same run, with the ratios the
//! storage issue sets as targets.
//!
//! # What is measured
//! For each batch size (16 KiB, 1 MiB) and writer count (1, 8), each writer owns one log (one
//! partition) and one OS thread, and appends one pre-built batch after another, waiting for each
//! append's [`SyncTicket`](basalt_storage::SyncTicket) before the next, as a producer waiting for
//! acks does. Policies: `os`, `interval:100` and `always`.
//!
//! Baselines, one chunk of the batch's size per operation: plain `write_all` to a new file (one
//! thread), and `write_all` + `fdatasync` per chunk (one thread, and eight threads on eight files).
//! Ratios: `os` and `interval` against the plain write; `always` against write+fdatasync with one
//! thread (and, for eight writers, also with eight threads). Targets: `os` at least 0.8× the plain
//! write; `always` with eight writers (group commit) at least 0.5× one-thread write+fdatasync.
//!
//! # Keeping it honest
//! - Batches are built before timing; timing covers only appends and waits.
//! - Buffered cases (plain write, `os`, `interval`) write the same byte volume (1 GiB, or less if
//!   the time limit comes first) into new files, after an untimed warm-up pass of the same volume,
//!   and every case's files are deleted before the next case.
//! - Durable cases (write+fdatasync, `always`) run for a fixed time.
//! - Nothing from one case's files survives into the next: each case works in its own directory,
//!   deleted when the case ends.
//! - The whole set of cases runs several times (`--rounds`), one set after the other, the time of
//!   each case split over the rounds. A figure is the median over the rounds, and a ratio the
//!   median of the ratios of the same round, so a burst of other traffic on the disk moves the
//!   result less than it moves a single run.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use basalt_record::BatchBuilder;
use basalt_storage::{FsyncPolicy, LogConfig, Storage, StorageOptions};
use bytes::Bytes;
use clap::Args;
use comfy_table::{CellAlignment, ContentArrangement, Table, presets};
use serde::Serialize;

use super::Result;
use super::disk::{self, WorkDir};
use super::load::{self, Budget, Sample};
use super::output::{fmt_latency, fmt_size};

/// Batch (and raw chunk) sizes measured.
const CHUNK_SIZES: [usize; 2] = [16 << 10, 1 << 20];
/// Writer counts measured for the engine.
const WRITER_COUNTS: [usize; 2] = [1, 8];
/// Threads of the parallel raw write+fdatasync baseline.
const RAW_SYNC_THREADS: usize = 8;
/// Period of the `interval` policy measured.
const INTERVAL_MS: u64 = 100;
/// `os` must reach this share of the raw buffered write.
const OS_TARGET: f64 = 0.8;
/// `always` with eight writers must reach this share of the one-thread raw write+fdatasync.
const ALWAYS_TARGET: f64 = 0.5;

const SECONDS_DEFAULT: f64 = 3.0;
const SECONDS_QUICK: f64 = 0.5;
const ROUNDS_DEFAULT: usize = 3;
const ROUNDS_QUICK: usize = 1;
const BUFFERED_BYTES: u64 = 1 << 30;
const BUFFERED_BYTES_QUICK: u64 = 64 << 20;

/// Options of `basalt bench storage`.
#[derive(Debug, Args)]
pub(crate) struct StorageArgs {
    /// Directory on the disk to measure. The bench works in a new `basalt-bench-<pid>`
    /// directory inside it and removes that afterwards.
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Seconds each case may run in total, split evenly over the rounds: durable cases run
    /// that long, buffered ones stop there if they have not written their volume yet
    /// [default: 3, or 0.5 with --quick].
    #[arg(long, value_parser = parse_seconds)]
    seconds: Option<f64>,
    /// Times the whole set of cases is run, one set after the other; each figure is the median
    /// over the rounds, so a burst of other disk traffic moves it less [default: 3, or 1 with
    /// --quick].
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=50))]
    rounds: Option<u16>,
    /// Run only the cases whose name contains this text, such as `always`, `raw` or `1 MiB x8`
    /// (may be given several times). A ratio needs its baseline among the cases run.
    #[arg(long, value_name = "TEXT")]
    only: Vec<String>,
    /// Print every figure as one JSON document on stdout instead of a table.
    #[arg(long)]
    json: bool,
    /// Small volumes and short cases, to check that the bench works rather than to measure.
    #[arg(long)]
    quick: bool,
}

fn parse_seconds(s: &str) -> std::result::Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 3600.0 => Ok(v),
        _ => Err(format!(
            "{s:?} is not a number of seconds between 0 and 3600"
        )),
    }
}

/// Runs the bench and prints its report.
pub(crate) fn run(args: &StorageArgs) -> Result<()> {
    let (seconds, rounds, buffered_bytes) = if args.quick {
        (SECONDS_QUICK, ROUNDS_QUICK, BUFFERED_BYTES_QUICK)
    } else {
        (SECONDS_DEFAULT, ROUNDS_DEFAULT, BUFFERED_BYTES)
    };
    let seconds = args.seconds.unwrap_or(seconds);
    let rounds = args.rounds.map_or(rounds, usize::from);
    let cases = selected_cases(&args.only)?;
    let work = WorkDir::create(&args.dir)?;
    let filesystem = disk::filesystem_of(work.path());
    match &filesystem {
        Some(fs) if fs.is_memory() => tracing::warn!(
            dir = %work.path().display(),
            filesystem = %fs.kind,
            "the directory is in memory: these figures say nothing about a disk"
        ),
        Some(_) => {}
        None => tracing::warn!("could not tell which file system holds the bench directory"),
    }
    let per_run = Duration::from_secs_f64(seconds / rounds as f64);
    let samples = run_rounds(&work, &cases, rounds, per_run, buffered_bytes)?;
    let report = Report {
        directory: work.path().display().to_string(),
        filesystem: filesystem.as_ref().map_or_else(
            || "unknown".to_owned(),
            |fs| format!("{} on {}", fs.kind, fs.source),
        ),
        unit: "MB/s = 10^6 bytes per second, median over the rounds; latency per write or append",
        seconds_per_case: seconds,
        rounds,
        buffered_bytes_per_run: buffered_bytes,
        interval_ms: INTERVAL_MS,
        quick: args.quick,
        ..Report::from_samples(&cases, &samples)
    };
    drop(work);
    if args.json {
        let json = serde_json::to_string_pretty(&report)?;
        println!("{json}");
    } else {
        print!("{}", report.render());
    }
    Ok(())
}

/// The cases of [`plan`] whose name contains one of `only` (all of them when it is empty).
fn selected_cases(only: &[String]) -> Result<Vec<Case>> {
    let cases: Vec<Case> = plan()
        .into_iter()
        .filter(|case| {
            let name = case.name();
            only.is_empty() || only.iter().any(|text| name.contains(text.as_str()))
        })
        .collect();
    if cases.is_empty() {
        return Err(format!("no case matches --only {only:?}").into());
    }
    Ok(cases)
}

/// Runs every case `rounds` times, the whole set once per round; `samples[i]` holds the rounds of
/// `cases[i]`.
fn run_rounds(
    work: &WorkDir,
    cases: &[Case],
    rounds: usize,
    per_run: Duration,
    buffered_bytes: u64,
) -> Result<Vec<Vec<Sample>>> {
    let batches = CHUNK_SIZES
        .iter()
        .map(|&chunk| build_batch(chunk).map(|batch| (chunk, batch)))
        .collect::<Result<HashMap<usize, Bytes>>>()?;
    let mut samples: Vec<Vec<Sample>> = vec![Vec::with_capacity(rounds); cases.len()];
    for round in 0..rounds {
        for (i, case) in cases.iter().enumerate() {
            tracing::info!(
                "round {}/{rounds}, case {}/{}: {}",
                round + 1,
                i + 1,
                cases.len(),
                case.name()
            );
            let batch = &batches[&case.chunk()];
            let dir = work.case_dir(&format!("{round}-{}", case.dir_name()))?;
            let sample = measure(*case, &dir, batch, per_run, buffered_bytes);
            disk::remove_case_dir(&dir)?;
            let sample = sample?;
            tracing::info!(
                "{}: {:.1} MB/s, {:.0} appends/s, p99 {}",
                case.name(),
                sample.mb_per_s(),
                sample.ops_per_s(),
                fmt_latency(sample.latency_us(0.99))
            );
            samples[i].push(sample);
        }
    }
    Ok(samples)
}

/// One thing measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    /// Plain file writes of `chunk` bytes from `threads` threads, one file each.
    Raw {
        method: RawMethod,
        chunk: usize,
        threads: usize,
    },
    /// Appends of one `chunk`-byte batch at a time by `writers` writers, one log each.
    Engine {
        policy: FsyncPolicy,
        chunk: usize,
        writers: usize,
    },
}

/// The cases of one round, in the order they run: per batch size, the buffered ones (raw write
/// just before `os` and `interval`), then the durable ones (raw write+fdatasync just before
/// `always`), so each case runs close in time to its baseline.
fn plan() -> Vec<Case> {
    let mut cases = Vec::new();
    for chunk in CHUNK_SIZES {
        let raw = |method, threads| Case::Raw {
            method,
            chunk,
            threads,
        };
        let engine = |policy, writers| Case::Engine {
            policy,
            chunk,
            writers,
        };
        cases.push(raw(RawMethod::Write, 1));
        for policy in [
            FsyncPolicy::Os,
            FsyncPolicy::Interval {
                interval_ms: INTERVAL_MS,
            },
        ] {
            cases.extend(WRITER_COUNTS.map(|writers| engine(policy, writers)));
        }
        cases.extend([1, RAW_SYNC_THREADS].map(|threads| raw(RawMethod::WriteFdatasync, threads)));
        cases.extend(WRITER_COUNTS.map(|writers| engine(FsyncPolicy::Always, writers)));
    }
    cases
}

impl Case {
    /// Such as `raw write+fdatasync 16 KiB x8` or `basalt always 1 MiB x1`.
    fn name(&self) -> String {
        match *self {
            Case::Raw {
                method,
                chunk,
                threads,
            } => format!("raw {} {} x{threads}", method.label(), fmt_size(chunk)),
            Case::Engine {
                policy,
                chunk,
                writers,
            } => format!("basalt {policy} {} x{writers}", fmt_size(chunk)),
        }
    }

    fn dir_name(&self) -> String {
        match *self {
            Case::Raw {
                method,
                chunk,
                threads,
            } => format!("raw-{}-{chunk}-{threads}", method.dir_name()),
            Case::Engine {
                policy,
                chunk,
                writers,
            } => format!("basalt-{}-{chunk}-{writers}", policy_dir_name(policy)),
        }
    }

    fn chunk(&self) -> usize {
        match *self {
            Case::Raw { chunk, .. } | Case::Engine { chunk, .. } => chunk,
        }
    }

    /// Whether the case writes into the page cache without waiting for the disk.
    fn is_buffered(&self) -> bool {
        matches!(
            self,
            Case::Raw {
                method: RawMethod::Write,
                ..
            } | Case::Engine {
                policy: FsyncPolicy::Os | FsyncPolicy::Interval { .. },
                ..
            }
        )
    }

    /// The raw cases an engine case is compared with, and the target ratio, if any.
    fn baselines(&self) -> Vec<(Case, Option<f64>)> {
        let Case::Engine {
            policy,
            chunk,
            writers,
        } = *self
        else {
            return Vec::new();
        };
        let raw = |method, threads| Case::Raw {
            method,
            chunk,
            threads,
        };
        match policy {
            FsyncPolicy::Os => vec![(raw(RawMethod::Write, 1), Some(OS_TARGET))],
            FsyncPolicy::Interval { .. } => vec![(raw(RawMethod::Write, 1), None)],
            FsyncPolicy::Always if writers >= RAW_SYNC_THREADS => vec![
                (raw(RawMethod::WriteFdatasync, 1), Some(ALWAYS_TARGET)),
                (raw(RawMethod::WriteFdatasync, RAW_SYNC_THREADS), None),
            ],
            FsyncPolicy::Always => vec![(raw(RawMethod::WriteFdatasync, 1), None)],
        }
    }
}

/// Runs one case once in its own (empty) directory `dir`.
fn measure(
    case: Case,
    dir: &Path,
    batch: &Bytes,
    time: Duration,
    buffered_bytes: u64,
) -> Result<Sample> {
    let budget = Budget {
        total_bytes: case.is_buffered().then_some(buffered_bytes),
        time,
    };
    if case.is_buffered() {
        disk::warm_page_cache(dir, batch, buffered_bytes)?;
    }
    match case {
        Case::Raw {
            method: RawMethod::Write,
            ..
        } => disk::buffered_write(dir, batch, budget),
        Case::Raw {
            method: RawMethod::WriteFdatasync,
            threads,
            ..
        } => disk::synced_write(dir, batch, threads, budget),
        Case::Engine {
            policy, writers, ..
        } => append_case(dir, policy, writers, batch, budget),
    }
}

/// Opens a storage engine in `dir` with one log per writer under `policy`, and appends `batch`
/// from each writer's own thread, waiting for each append's ticket, until the budget is used up.
fn append_case(
    dir: &Path,
    policy: FsyncPolicy,
    writers: usize,
    batch: &Bytes,
    budget: Budget,
) -> Result<Sample> {
    let storage = Storage::open(dir, StorageOptions::default())?;
    let config = LogConfig {
        fsync: policy,
        ..LogConfig::default()
    };
    let logs = (0..writers)
        .map(|partition| {
            storage
                .open_log(&format!("bench-{partition}"), config.clone())
                .map(|(log, _)| log)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let appenders: Vec<_> = logs
        .iter()
        .map(|log| {
            let log = Arc::clone(log);
            move || -> Result<()> {
                let appended = log.append(batch, now_ms())?;
                appended.durable.wait()?;
                Ok(())
            }
        })
        .collect();
    let sample = load::run(appenders, batch.len(), budget);
    // The data is thrown away with the case directory: `close` would first write back what the
    // buffered policies left in the page cache, disk traffic that would overlap the next case.
    drop(logs);
    drop(storage);
    sample
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// One uncompressed RecordBatch v2 of exactly `size` bytes: records with 1 KiB values (16 KiB
/// values for batches over 64 KiB), the last value sized to make up the exact length.
fn build_batch(size: usize) -> Result<Bytes> {
    let value_len = if size <= 64 << 10 { 1 << 10 } else { 16 << 10 };
    let filler = build_filler(size);
    let timestamp = now_ms();
    let build = |records: usize, key_len: usize, last_len: usize| {
        let mut builder = BatchBuilder::new(0);
        for i in 0..records {
            let len = if i + 1 == records {
                last_len
            } else {
                value_len
            };
            let key = (i + 1 == records && key_len > 0).then(|| &filler[..key_len]);
            builder.push(timestamp, key, Some(&filler[i % 7..i % 7 + len]), &[]);
        }
        builder.build()
    };
    let records = (size / (value_len + 16)).max(1);
    // The last value's length is corrected until the batch is exactly `size` bytes. A varint that
    // grows by a byte at a length boundary can make that oscillate; a short key breaks the tie.
    for key_len in 0..4 {
        let mut last_len = value_len.min(size / 2);
        for _ in 0..8 {
            let batch = build(records, key_len, last_len);
            if batch.len() == size {
                return Ok(batch);
            }
            let corrected = last_len as i64 + size as i64 - batch.len() as i64;
            if corrected < 0 || corrected as usize + 8 > filler.len() {
                break;
            }
            last_len = corrected as usize;
        }
    }
    Err(format!("cannot build a record batch of exactly {size} bytes").into())
}

/// `len` bytes that do not repeat with any short period (xorshift), so nothing about the data is
/// special to a file system or device.
fn build_filler(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

fn policy_dir_name(policy: FsyncPolicy) -> &'static str {
    match policy {
        FsyncPolicy::Always => "always",
        FsyncPolicy::Interval { .. } => "interval",
        FsyncPolicy::Os => "os",
    }
}

/// How a raw baseline writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
enum RawMethod {
    /// `write_all` only: into the page cache.
    #[serde(rename = "write")]
    Write,
    /// `write_all` then `fdatasync`, per chunk.
    #[serde(rename = "write+fdatasync")]
    WriteFdatasync,
}

impl RawMethod {
    fn label(self) -> &'static str {
        match self {
            RawMethod::Write => "write",
            RawMethod::WriteFdatasync => "write+fdatasync",
        }
    }

    fn dir_name(self) -> &'static str {
        match self {
            RawMethod::Write => "write",
            RawMethod::WriteFdatasync => "fdatasync",
        }
    }
}

/// The figures of one case over all its rounds.
#[derive(Debug, Clone, Serialize)]
struct Figures {
    rounds: usize,
    /// Bytes written, all rounds together.
    bytes: u64,
    /// Writes (raw) or appends (engine) completed, all rounds together.
    ops: u64,
    /// Time measured, all rounds together.
    seconds: f64,
    /// Median over the rounds.
    mb_per_s: f64,
    mb_per_s_min: f64,
    mb_per_s_max: f64,
    /// Median over the rounds.
    ops_per_s: f64,
    /// Over every write or append of every round.
    latency_p50_us: f64,
    latency_p99_us: f64,
}

impl Figures {
    fn new(samples: &[Sample]) -> Figures {
        let rates: Vec<f64> = samples.iter().map(Sample::mb_per_s).collect();
        let latencies = Sample::pooled_latency_us(samples, &[0.5, 0.99]);
        Figures {
            rounds: samples.len(),
            bytes: samples.iter().map(|s| s.bytes).sum(),
            ops: samples.iter().map(|s| s.ops).sum(),
            seconds: samples.iter().map(Sample::seconds).sum(),
            mb_per_s: median(&rates),
            mb_per_s_min: rates.iter().copied().fold(f64::INFINITY, f64::min),
            mb_per_s_max: rates.iter().copied().fold(0.0, f64::max),
            ops_per_s: median(&samples.iter().map(Sample::ops_per_s).collect::<Vec<_>>()),
            latency_p50_us: latencies[0],
            latency_p99_us: latencies[1],
        }
    }
}

/// Median of a non-empty list (mean of the middle two for an even count); 0 when empty.
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

#[derive(Debug, Clone, Serialize)]
struct RawRow {
    method: RawMethod,
    chunk_bytes: usize,
    threads: usize,
    #[serde(flatten)]
    figures: Figures,
}

#[derive(Debug, Clone, Serialize)]
struct EngineRow {
    policy: String,
    chunk_bytes: usize,
    writers: usize,
    #[serde(flatten)]
    figures: Figures,
    comparisons: Vec<Comparison>,
}

/// An engine figure as a share of a raw one.
#[derive(Debug, Clone, Serialize)]
struct Comparison {
    baseline: RawMethod,
    baseline_threads: usize,
    baseline_mb_per_s: f64,
    /// Median over the rounds of the engine's MB/s over the baseline's in the same round.
    ratio: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    met: Option<bool>,
}

/// Everything the bench found, as printed.
#[derive(Debug, Default, Serialize)]
struct Report {
    directory: String,
    filesystem: String,
    unit: &'static str,
    seconds_per_case: f64,
    rounds: usize,
    buffered_bytes_per_run: u64,
    interval_ms: u64,
    quick: bool,
    raw: Vec<RawRow>,
    engine: Vec<EngineRow>,
    all_targets_met: bool,
}

impl Report {
    /// The figures and comparisons of `cases`, whose rounds are `samples[i]`.
    fn from_samples(cases: &[Case], samples: &[Vec<Sample>]) -> Report {
        let rounds_of = |wanted: &Case| {
            cases
                .iter()
                .position(|case| case == wanted)
                .map(|i| &samples[i])
        };
        let mut report = Report::default();
        for (case, rounds) in cases.iter().zip(samples) {
            let figures = Figures::new(rounds);
            match *case {
                Case::Raw {
                    method,
                    chunk,
                    threads,
                } => report.raw.push(RawRow {
                    method,
                    chunk_bytes: chunk,
                    threads,
                    figures,
                }),
                Case::Engine {
                    policy,
                    chunk,
                    writers,
                } => {
                    let comparisons = case
                        .baselines()
                        .into_iter()
                        .filter_map(|(base, target)| {
                            let Case::Raw {
                                method, threads, ..
                            } = base
                            else {
                                return None;
                            };
                            let base_rounds = rounds_of(&base)?;
                            let ratios: Vec<f64> = rounds
                                .iter()
                                .zip(base_rounds)
                                .map(|(s, b)| s.mb_per_s() / b.mb_per_s())
                                .collect();
                            let ratio = median(&ratios);
                            Some(Comparison {
                                baseline: method,
                                baseline_threads: threads,
                                baseline_mb_per_s: Figures::new(base_rounds).mb_per_s,
                                ratio,
                                target,
                                met: target.map(|t| ratio >= t),
                            })
                        })
                        .collect();
                    report.engine.push(EngineRow {
                        policy: policy.to_string(),
                        chunk_bytes: chunk,
                        writers,
                        figures,
                        comparisons,
                    });
                }
            }
        }
        report.all_targets_met = report
            .engine
            .iter()
            .flat_map(|row| &row.comparisons)
            .all(|c| c.met != Some(false));
        report
    }

    /// The human-readable report: a heading, one table row per case, and the targets.
    fn render(&self) -> String {
        let mut table = Table::new();
        table
            .load_preset(presets::UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Disabled)
            .set_header([
                "case",
                "batch",
                "writers",
                "MB/s",
                "min-max",
                "appends/s",
                "p50",
                "p99",
                "ratio",
                "target",
            ]);
        for chunk in CHUNK_SIZES {
            for row in self.raw.iter().filter(|r| r.chunk_bytes == chunk) {
                let name = format!("raw {}", row.method.label());
                table.add_row(cells(&name, chunk, row.threads, &row.figures, &[]));
            }
            for row in self.engine.iter().filter(|r| r.chunk_bytes == chunk) {
                let name = format!("basalt {}", row.policy);
                let figures = &row.figures;
                table.add_row(cells(&name, chunk, row.writers, figures, &row.comparisons));
            }
        }
        for i in 1..=7 {
            if let Some(column) = table.column_mut(i) {
                column.set_cell_alignment(CellAlignment::Right);
            }
        }
        let mut out = format!(
            "Basalt storage bench in {} ({})\n\
             {} round(s); per round, durable cases run {:.2} s and buffered cases write {} (or \
             stop at {:.2} s) after an untimed warm-up\n\
             MB/s: median over the rounds (MB = 10^6 bytes); ratio: median of the per-round \
             ratios; p50/p99: latency of one write or append\n",
            self.directory,
            self.filesystem,
            self.rounds,
            self.seconds_per_case / self.rounds.max(1) as f64,
            fmt_size(self.buffered_bytes_per_run as usize),
            self.seconds_per_case / self.rounds.max(1) as f64,
        );
        out.push_str(&table.to_string());
        out.push('\n');
        for (what, target) in [
            ("os >= 0.8x raw write", OS_TARGET),
            (
                "always, 8 writers >= 0.5x raw write+fdatasync (1 thread)",
                ALWAYS_TARGET,
            ),
        ] {
            let checks: Vec<&Comparison> = self
                .engine
                .iter()
                .flat_map(|r| &r.comparisons)
                .filter(|c| c.target == Some(target))
                .collect();
            let met = checks.iter().filter(|c| c.met == Some(true)).count();
            out.push_str(&format!(
                "target {what}: met in {met} of {} cases\n",
                checks.len()
            ));
        }
        out
    }
}

fn cells(
    name: &str,
    chunk: usize,
    writers: usize,
    figures: &Figures,
    comparisons: &[Comparison],
) -> Vec<String> {
    let ratios: Vec<String> = comparisons
        .iter()
        .map(|c| {
            format!(
                "{:.2}x raw {} x{}",
                c.ratio,
                c.baseline.label(),
                c.baseline_threads
            )
        })
        .collect();
    let targets: Vec<String> = comparisons
        .iter()
        .map(|c| match (c.target, c.met) {
            (Some(t), Some(true)) => format!(">= {t:.1}x met"),
            (Some(t), _) => format!(">= {t:.1}x MISSED"),
            _ => String::new(),
        })
        .collect();
    vec![
        name.to_owned(),
        fmt_size(chunk),
        writers.to_string(),
        format!("{:.1}", figures.mb_per_s),
        format!("{:.0}-{:.0}", figures.mb_per_s_min, figures.mb_per_s_max),
        format!("{:.0}", figures.ops_per_s),
        fmt_latency(figures.latency_p50_us),
        fmt_latency(figures.latency_p99_us),
        ratios.join("\n"),
        targets.join("\n"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use basalt_record::BatchHeader;

    #[test]
    fn batches_have_exactly_the_asked_size_and_are_valid() {
        for size in [4 << 10, 16 << 10, 100_000, 1 << 20] {
            let batch = build_batch(size).unwrap();
            assert_eq!(batch.len(), size);
            let header = BatchHeader::validate_produced(&batch).unwrap();
            assert!(header.record_count > 1, "{size}: {}", header.record_count);
        }
    }

    #[test]
    fn seconds_must_be_positive() {
        assert_eq!(parse_seconds("0.5"), Ok(0.5));
        assert!(parse_seconds("0").is_err());
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("NaN").is_err());
    }
}
