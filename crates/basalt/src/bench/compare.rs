//! `basalt bench compare`: Basalt beside the systems a user would choose instead, each started
//! here on loopback with its stated durability, measured with the same workloads in the same
//! run, next to the raw limits of the disk and of loopback TCP measured in that run too.
//!
//! # Systems
//! - Basalt, from this very binary (`serve`), with `log.flush.policy=always` (its default) and,
//!   as a second row, `os`.
//! - Tansu (Kafka protocol) with its `memory://` and its `sqlite://` storage engines.
//! - Redis 7 Streams with AOF, `appendfsync always` and `everysec`.
//! - RabbitMQ: durable queues, persistent messages, publisher confirms.
//!
//! The Kafka-protocol systems are measured through the code of `bench produce`, `bench consume`
//! and `bench latency` (librdkafka with its defaults, acks as the workload says); Redis and
//! RabbitMQ through their own protocols ([`super::peers`]). How each system is found, started
//! and stopped is [`super::systems`]'s. A system that is not installed is installed with
//! `--install` (apt-get, cargo) and otherwise reported as skipped, with the reason.
//!
//! # Workloads
//! Each is a [`Case`]; `--workloads` picks them:
//! - `produce`: N messages of S bytes from one client, acks=all, once per `--partitions` count
//!   (Redis: that many streams, RabbitMQ: that many queues, message `i` to the `i % P`-th),
//!   timed from the first send to the last acknowledgement (delivery report, pipeline reply,
//!   publisher confirm);
//! - `consume`: the messages of the first produce read (and acknowledged, where the system has
//!   acks) by a fresh consumer with the client's defaults, timed from its start to the N-th;
//! - `produce-large`, `consume-large`: the same with `--large-size` values (1 KiB) and acks=1,
//!   the produce also as a share of the disk's raw buffered write bandwidth;
//! - `latency`: one producer on a fixed schedule (message `i` due at `start + i / rate`,
//!   stamped with that time, so stalls are charged: coordinated omission corrected) and one
//!   consumer in the same process; HDR histogram of read time minus due time;
//! - `partitions`: once per Kafka-protocol system, on an instance of its own started after the
//!   runs, `--many-partitions` partitions created, each written once and read back
//!   ([`super::partitions`]), with the system's resident set after.
//!
//! Every workload runs `--runs` times on each system (the runs of one system take turns: run 1
//! of every workload, then run 2, each on topics of its own, against one started instance);
//! the tables show each figure's median, `--json` every run's figure too. Each run also says
//! the CPU seconds of this process (the client) and of the system's processes over its timed
//! part, so a figure can be read as client-bound or server-bound; and each system's resident
//! set is read just after it started and, as the kernel's high-water mark, before it stops.
//!
//! Every system gets a new data directory inside the scratch directory (`--dir`), so all of them
//! write to the same disk as the raw measurement. Ratios are each figure over Basalt's with its
//! default durability (`always`); for latencies a ratio above 1 means slower than Basalt.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde::Serialize;

use super::consume::{self, ConsumeArgs};
use super::disk::{self, WorkDir};
use super::kafka::{Acks, Compression, ProducerSettings, Target};
use super::latency::{self, LatencyArgs, Percentiles};
use super::load::Budget;
use super::output::{emit, fmt_latency, fmt_rate, fmt_size, table};
use super::process::{self, BrokerUsage};
use super::produce::{self, ProduceArgs};
use super::systems::{Choice, Server, System, install_system, runtime};
use super::{Result, loopback, partitions, peers};

/// Longest time one workload may take on one system.
pub(super) const WORKLOAD_TIMEOUT: Duration = Duration::from_secs(300);

/// Options of `basalt bench compare`.
#[derive(Debug, Args)]
pub(crate) struct CompareArgs {
    /// Systems to compare, comma-separated. `basalt` is both Basalt rows (`basalt-always` and
    /// `basalt-os`).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "basalt,tansu-memory,tansu-sqlite,redis-always,redis-everysec,rabbitmq"
    )]
    systems: Vec<Choice>,
    /// Install the systems that are missing (apt-get install redis-server rabbitmq-server;
    /// cargo install tansu --locked --features dynostore,libsql, which takes a while).
    #[arg(long)]
    install: bool,
    /// Workloads to run, comma-separated. A consume runs the produce whose messages it reads
    /// even when that is not named.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "produce,consume,produce-large,consume-large,latency,partitions"
    )]
    workloads: Vec<WorkloadChoice>,
    /// Partitions of the `partitions` workload, which runs once on each Kafka-protocol system,
    /// on an instance of its own: created in one topic, one message written to each and fetched
    /// back, with the system's RSS after (as `bench partitions` does) [default: 10000, or 50
    /// with --messages small].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    many_partitions: Option<u32>,
    /// Times every workload runs on every system; the tables show the median of the runs.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=99))]
    runs: u32,
    /// Messages of each produce and consume: a count, or `small` (5000 messages, a one-second
    /// latency run and shorter raw measurements, for a quick look).
    #[arg(long, default_value = "200000", value_parser = parse_messages)]
    messages: Messages,
    /// Bytes of each message's value (produce, consume and latency).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(16..=(1 << 20)))]
    size: u64,
    /// Bytes of each message's value in produce-large and consume-large.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(16..=(1 << 20)))]
    large_size: u64,
    /// Partition counts of the produce workload, comma-separated: one produce per count
    /// (Redis: streams, RabbitMQ: queues). Consume and the large workloads use the first.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1,6",
        value_parser = clap::value_parser!(u32).range(1..=1000)
    )]
    partitions: Vec<u32>,
    /// Messages per second of the latency workload.
    #[arg(long, default_value_t = 10_000.0, value_parser = parse_positive)]
    rate: f64,
    /// Seconds of the latency workload [default: 10, or 1 with --messages small].
    #[arg(long, value_parser = parse_positive)]
    duration: Option<f64>,
    /// Directory on the data disk: every system's data directory and the raw disk measurement
    /// go into a new `basalt-bench-<pid>` directory inside it, removed afterwards.
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Print the report as one JSON document on stdout instead of tables.
    #[arg(long)]
    json: bool,
}

/// A name `--workloads` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum WorkloadChoice {
    Produce,
    Consume,
    ProduceLarge,
    ConsumeLarge,
    Latency,
    Partitions,
}

/// How many messages the throughput workloads move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Messages {
    count: u64,
    small: bool,
}

fn parse_messages(s: &str) -> std::result::Result<Messages, String> {
    if s == "small" {
        return Ok(Messages {
            count: 5000,
            small: true,
        });
    }
    match s.parse::<u64>() {
        Ok(count) if count > 0 => Ok(Messages {
            count,
            small: false,
        }),
        _ => Err(format!("{s:?} is neither a positive count nor `small`")),
    }
}

fn parse_positive(s: &str) -> std::result::Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 1e9 => Ok(v),
        _ => Err(format!("{s:?} is not a positive number")),
    }
}

/// The workloads' sizes.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Workload {
    pub(super) messages: u64,
    pub(super) size_bytes: u64,
    pub(super) large_size_bytes: u64,
    pub(super) partitions: Vec<u32>,
    pub(super) latency_rate: f64,
    pub(super) latency_duration_s: f64,
    /// Partitions of the many-partitions workload; 0 when it does not run.
    pub(super) many_partitions: u32,
}

/// What a workload does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Kind {
    Produce,
    Consume,
    Latency,
}

/// One workload as every system runs it.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Case {
    /// Such as `produce-100B-6p` or `consume-1KiB-1p-acks1`.
    pub(super) id: String,
    pub(super) kind: Kind,
    pub(super) size_bytes: u64,
    /// Partitions of the topic (Redis: streams, RabbitMQ: queues).
    pub(super) partitions: u32,
    /// The producer's acks on the Kafka-protocol systems (Redis and RabbitMQ acknowledge as
    /// their durability says).
    pub(super) acks: Acks,
    /// A consume's: the produce whose messages it reads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) reads: Option<String>,
}

impl Case {
    fn produce(size_bytes: u64, partitions: u32, acks: Acks) -> Case {
        let suffix = match acks {
            Acks::All => "",
            Acks::Leader => "-acks1",
            Acks::None => "-acks0",
        };
        Case {
            id: format!(
                "produce-{}-{partitions}p{suffix}",
                fmt_size(size_bytes as usize).replace(' ', "")
            ),
            kind: Kind::Produce,
            size_bytes,
            partitions,
            acks,
            reads: None,
        }
    }

    /// A consume of what `produce` wrote.
    fn consume(produce: &Case) -> Case {
        Case {
            id: produce.id.replacen("produce", "consume", 1),
            kind: Kind::Consume,
            reads: Some(produce.id.clone()),
            ..produce.clone()
        }
    }

    fn latency(size_bytes: u64) -> Case {
        Case {
            id: format!("latency-{}", fmt_size(size_bytes as usize).replace(' ', "")),
            kind: Kind::Latency,
            size_bytes,
            partitions: 1,
            acks: Acks::All,
            reads: None,
        }
    }

    /// Whether the table shows the case in MB/s rather than msgs/s.
    fn in_mb(&self) -> bool {
        self.size_bytes >= 1024
    }

    /// The case in two lines, such as `produce 100 B` over `6p`.
    fn label(&self) -> String {
        let size = fmt_size(self.size_bytes as usize);
        let acks = match self.acks {
            Acks::All => "",
            Acks::Leader => ", acks=1",
            Acks::None => ", acks=0",
        };
        let kind = match self.kind {
            Kind::Produce => "produce",
            Kind::Consume => "consume",
            Kind::Latency => "latency",
        };
        format!("{kind} {size}\n{}p{acks}", self.partitions)
    }

    /// The case in a throughput table's header: its label over its unit.
    fn header(&self) -> String {
        let unit = match (self.in_mb(), self.kind) {
            (true, Kind::Produce) => "MB/s, % of disk",
            (true, _) => "MB/s",
            (false, _) => "msgs/s",
        };
        format!("{}\n{unit}", self.label())
    }
}

/// The workloads `chosen` names, in a fixed order: each produce, its consume, the large
/// produce and consume, the latency run.
fn cases(chosen: &[WorkloadChoice], workload: &Workload) -> Vec<Case> {
    let has = |w| chosen.contains(&w);
    let first = workload.partitions.first().copied().unwrap_or(1);
    let mut cases = Vec::new();
    let mut seen = Vec::new();
    if has(WorkloadChoice::Produce) || has(WorkloadChoice::Consume) {
        for &p in &workload.partitions {
            if seen.contains(&p) || (!has(WorkloadChoice::Produce) && p != first) {
                continue;
            }
            seen.push(p);
            cases.push(Case::produce(workload.size_bytes, p, Acks::All));
        }
    }
    if has(WorkloadChoice::Consume) {
        cases.push(Case::consume(&Case::produce(
            workload.size_bytes,
            first,
            Acks::All,
        )));
    }
    if has(WorkloadChoice::ProduceLarge) || has(WorkloadChoice::ConsumeLarge) {
        let produce = Case::produce(workload.large_size_bytes, first, Acks::Leader);
        let consume = Case::consume(&produce);
        cases.push(produce);
        if has(WorkloadChoice::ConsumeLarge) {
            cases.push(consume);
        }
    }
    if has(WorkloadChoice::Latency) {
        cases.push(Case::latency(workload.size_bytes));
    }
    cases
}

/// CPU seconds, user and system, of the bench process (the client) and of the system's
/// processes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub(super) struct Cpu {
    pub(super) client_s: f64,
    pub(super) server_s: f64,
}

/// Reads the CPU clocks of this process and of a server's process tree.
pub(super) struct Meter {
    server_pid: u32,
}

impl Meter {
    /// Both clocks now.
    pub(super) fn read(&self) -> Result<Cpu> {
        Ok(Cpu {
            client_s: process::own_cpu_seconds()?,
            server_s: process::tree_cpu_seconds(self.server_pid)?,
        })
    }

    /// The CPU seconds spent since `start` was read.
    pub(super) fn since(&self, start: Cpu) -> Result<Cpu> {
        let now = self.read()?;
        Ok(Cpu {
            client_s: (now.client_s - start.client_s).max(0.0),
            server_s: (now.server_s - start.server_s).max(0.0),
        })
    }
}

/// Latency percentiles of one run, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub(super) struct Latencies {
    pub(super) p50_us: f64,
    pub(super) p99_us: f64,
    pub(super) p99_9_us: f64,
}

/// What one run of one workload measured on one system.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub(super) struct Measurement {
    /// Messages acknowledged (produce), read (consume) or sent and read back (latency).
    pub(super) messages: u64,
    /// The timed part: first send to last acknowledgement, consumer start to the last message,
    /// or the latency schedule.
    pub(super) seconds: f64,
    /// For latency, the rate the producer achieved.
    pub(super) msgs_per_s: f64,
    /// 10^6 value bytes per second.
    pub(super) mb_per_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) latency: Option<Latencies>,
    /// CPU seconds of this process (the client) over the timed part.
    pub(super) client_cpu_s: f64,
    /// CPU seconds of the system's processes over the timed part.
    pub(super) server_cpu_s: f64,
}

impl Measurement {
    /// `messages` of `size` bytes in `seconds`.
    pub(super) fn throughput(messages: u64, size: u64, seconds: f64, cpu: Cpu) -> Measurement {
        // CPU time comes in ticks of 10 ms: no digits beyond them.
        let ticks = |s: f64| (s * 100.0).round() / 100.0;
        Measurement {
            messages,
            seconds,
            msgs_per_s: super::kafka::per_s(messages, seconds),
            mb_per_s: super::output::mb_per_s(messages * size, seconds),
            latency: None,
            client_cpu_s: ticks(cpu.client_s),
            server_cpu_s: ticks(cpu.server_s),
        }
    }

    /// A latency run: `sent` messages of `size` bytes on a schedule of `seconds`.
    pub(super) fn latency(
        sent: u64,
        size: u64,
        seconds: f64,
        percentiles: &Percentiles,
        cpu: Cpu,
    ) -> Measurement {
        Measurement {
            latency: Some(Latencies {
                p50_us: percentiles.p50_us,
                p99_us: percentiles.p99_us,
                p99_9_us: percentiles.p99_9_us,
            }),
            ..Measurement::throughput(sent, size, seconds, cpu)
        }
    }

    /// Every figure's median over `runs`, each figure on its own; `None` for no runs.
    fn median(runs: &[Measurement]) -> Option<Measurement> {
        if runs.is_empty() {
            return None;
        }
        let of = |f: fn(&Measurement) -> f64| median(runs.iter().map(f).collect());
        let latency = runs.iter().all(|r| r.latency.is_some()).then(|| {
            let of = |f: fn(&Latencies) -> f64| {
                median(
                    runs.iter()
                        .filter_map(|r| r.latency.as_ref())
                        .map(f)
                        .collect(),
                )
            };
            Latencies {
                p50_us: of(|l| l.p50_us),
                p99_us: of(|l| l.p99_us),
                p99_9_us: of(|l| l.p99_9_us),
            }
        });
        Some(Measurement {
            messages: of(|r| r.messages as f64).round() as u64,
            seconds: of(|r| r.seconds),
            msgs_per_s: of(|r| r.msgs_per_s),
            mb_per_s: of(|r| r.mb_per_s),
            latency,
            client_cpu_s: of(|r| r.client_cpu_s),
            server_cpu_s: of(|r| r.server_cpu_s),
        })
    }

    /// The figures of a Kafka-protocol run, its CPU from the watch of the broker.
    fn kafka(messages: u64, size: u64, seconds: f64, usage: Option<&BrokerUsage>) -> Result<Self> {
        let usage = usage.ok_or("the broker's process was not watched")?;
        Ok(Measurement::throughput(
            messages,
            size,
            seconds,
            Cpu {
                client_s: usage.client_cpu_s,
                server_s: usage.cpu_s,
            },
        ))
    }
}

/// The median of `values` (the mean of the middle two for an even count); 0 for none.
fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// A median over the reference system's median of the same workload.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
struct Ratios {
    msgs_per_s: f64,
    mb_per_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    p50_us: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    p99_us: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    p99_9_us: Option<f64>,
}

impl Ratios {
    /// `m` over `reference`; a figure whose reference is 0 gets no finite ratio (0).
    fn of(m: &Measurement, reference: &Measurement) -> Ratios {
        let r = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        let l = |f: fn(&Latencies) -> f64| match (&m.latency, &reference.latency) {
            (Some(a), Some(b)) => Some(r(f(a), f(b))),
            _ => None,
        };
        Ratios {
            msgs_per_s: r(m.msgs_per_s, reference.msgs_per_s),
            mb_per_s: r(m.mb_per_s, reference.mb_per_s),
            p50_us: l(|l| l.p50_us),
            p99_us: l(|l| l.p99_us),
            p99_9_us: l(|l| l.p99_9_us),
        }
    }
}

/// Whether a system was measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    /// Every workload, every run.
    Measured,
    /// Not installed (and not installed by this run), or could not be installed.
    Skipped,
    /// It did not start, or a workload failed (the others' figures are kept).
    Failed,
}

/// One workload on one system: every run, and their median.
#[derive(Debug, Clone, Serialize)]
struct CaseResult {
    case: String,
    /// Why the workload stopped (its remaining runs are not run, and it has no median).
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    runs: Vec<Measurement>,
    #[serde(skip_serializing_if = "Option::is_none")]
    median: Option<Measurement>,
    /// The median over the reference system's.
    #[serde(skip_serializing_if = "Option::is_none")]
    ratios: Option<Ratios>,
    /// A produce's median MB/s over the disk's raw buffered write MB/s of the same run.
    #[serde(skip_serializing_if = "Option::is_none")]
    disk_write_share: Option<f64>,
}

/// Resident memory of a system's processes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
struct Memory {
    /// Just after it started serving, before any workload.
    idle_rss_bytes: u64,
    /// The kernel's high-water mark (`VmHWM`) over the runs, read before it stops; for several
    /// processes the sum of theirs.
    peak_rss_bytes: u64,
    processes: usize,
}

/// One row of the report.
#[derive(Debug, Clone, Serialize)]
struct Row {
    system: String,
    durability: String,
    client: String,
    status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    memory: Option<Memory>,
    /// One per workload, in the order of the report's `cases`.
    results: Vec<CaseResult>,
    /// The many-partitions workload, on an instance of its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    partitions: Option<partitions::Report>,
}

impl Row {
    fn result(&self, case: &str) -> Option<&CaseResult> {
        self.results.iter().find(|r| r.case == case)
    }
}

/// One measurement of the machine's limits.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
struct RawRun {
    disk_write_mb_per_s: f64,
    disk_write_fdatasync_mb_per_s: f64,
    disk_fdatasyncs_per_s: f64,
    loopback_mb_per_s: f64,
}

/// The machine's limits, measured in the same run: the median of `--runs` measurements.
#[derive(Debug, Clone, Serialize)]
struct RawLimits {
    directory: String,
    filesystem: String,
    chunk_bytes: u64,
    disk_write_mb_per_s: f64,
    disk_write_fdatasync_mb_per_s: f64,
    disk_fdatasyncs_per_s: f64,
    loopback_mb_per_s: f64,
    runs: Vec<RawRun>,
}

/// What `bench compare` reports.
#[derive(Debug, Serialize)]
struct Report {
    /// Runs of every workload on every system.
    runs: u32,
    /// What `median` in each result is, over its `runs`.
    statistic: &'static str,
    /// CPUs this machine has: a client and a server together busy near this many seconds per
    /// second are bound by the machine's CPU.
    cpus: usize,
    workload: Workload,
    cases: Vec<Case>,
    /// The row the ratios are taken against.
    reference: Option<String>,
    raw: RawLimits,
    systems: Vec<Row>,
}

/// Runs the comparison and prints its report.
pub(crate) fn run(args: &CompareArgs) -> Result<()> {
    let mut partitions = Vec::new();
    for &p in &args.partitions {
        if !partitions.contains(&p) {
            partitions.push(p);
        }
    }
    let workload = Workload {
        messages: args.messages.count,
        size_bytes: args.size,
        large_size_bytes: args.large_size,
        partitions,
        latency_rate: args.rate,
        latency_duration_s: args
            .duration
            .unwrap_or(if args.messages.small { 1.0 } else { 10.0 }),
        many_partitions: if args.workloads.contains(&WorkloadChoice::Partitions) {
            args.many_partitions
                .unwrap_or(if args.messages.small { 50 } else { 10_000 })
        } else {
            0
        },
    };
    let cases = cases(&args.workloads, &workload);
    let work = WorkDir::create(&args.dir)?;
    let raw = raw_limits(&work, args.messages.small, args.runs)?;
    let mut rows = Vec::new();
    for system in System::chosen(&args.systems) {
        tracing::info!(system = system.name(), "measuring");
        let row = measure_system(system, args.install, &work, &workload, &cases, args.runs);
        if let Some(reason) = &row.reason {
            tracing::warn!(system = system.name(), status = ?row.status, %reason, "not measured");
        }
        rows.push(row);
    }
    let reference = add_ratios(&mut rows);
    add_disk_shares(&mut rows, &cases, &raw);
    let report = Report {
        runs: args.runs,
        statistic: "median",
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        workload,
        cases,
        reference,
        raw,
        systems: rows,
    };
    drop(work);
    emit(args.json, &report, render)
}

/// Sets the ratios of every median against the first Basalt row with medians (with `always` if
/// it has them); returns that row's name.
fn add_ratios(rows: &mut [Row]) -> Option<String> {
    let has_medians = |name: &str| {
        rows.iter()
            .position(|r| r.system == name && r.results.iter().any(|c| c.median.is_some()))
    };
    let index = has_medians(System::BasaltAlways.name())
        .or_else(|| has_medians(System::BasaltOs.name()))?;
    let reference: Vec<(String, Measurement)> = rows[index]
        .results
        .iter()
        .filter_map(|c| c.median.map(|m| (c.case.clone(), m)))
        .collect();
    for row in rows.iter_mut() {
        for result in &mut row.results {
            let of = reference.iter().find(|(case, _)| *case == result.case);
            result.ratios = match (&result.median, of) {
                (Some(m), Some((_, r))) => Some(Ratios::of(m, r)),
                _ => None,
            };
        }
    }
    Some(rows[index].system.clone())
}

/// Sets each produce's share of the raw buffered write bandwidth.
fn add_disk_shares(rows: &mut [Row], cases: &[Case], raw: &RawLimits) {
    for row in rows {
        for result in &mut row.results {
            let produce = cases
                .iter()
                .any(|c| c.id == result.case && c.kind == Kind::Produce);
            result.disk_write_share = match (&result.median, produce) {
                (Some(m), true) if raw.disk_write_mb_per_s > 0.0 => {
                    Some(m.mb_per_s / raw.disk_write_mb_per_s)
                }
                _ => None,
            };
        }
    }
}

/// The raw limits `runs` times over, and their medians.
fn raw_limits(work: &WorkDir, small: bool, runs: u32) -> Result<RawLimits> {
    let all = (0..runs)
        .map(|_| raw_run(work, small))
        .collect::<Result<Vec<_>>>()?;
    let of = |f: fn(&RawRun) -> f64| median(all.iter().map(f).collect());
    Ok(RawLimits {
        directory: work.path().display().to_string(),
        filesystem: disk::filesystem_of(work.path()).map_or_else(
            || "unknown".to_owned(),
            |fs| format!("{} on {}", fs.kind, fs.source),
        ),
        chunk_bytes: RAW_CHUNK_BYTES,
        disk_write_mb_per_s: of(|r| r.disk_write_mb_per_s),
        disk_write_fdatasync_mb_per_s: of(|r| r.disk_write_fdatasync_mb_per_s),
        disk_fdatasyncs_per_s: of(|r| r.disk_fdatasyncs_per_s),
        loopback_mb_per_s: of(|r| r.loopback_mb_per_s),
        runs: all,
    })
}

/// Bytes of each write of the raw measurements.
const RAW_CHUNK_BYTES: u64 = 1 << 20;

/// Sequential write (into the page cache, after an untimed warm-up of the same volume),
/// write+fdatasync (1 MiB chunks) and loopback TCP bandwidth.
fn raw_run(work: &WorkDir, small: bool) -> Result<RawRun> {
    let time = Duration::from_secs_f64(if small { 0.2 } else { 2.0 });
    let bytes: u64 = if small { 16 << 20 } else { 512 << 20 };
    let chunk = vec![0xA5u8; RAW_CHUNK_BYTES as usize];
    let dir = work.case_dir("raw-write")?;
    disk::warm_page_cache(&dir, &chunk, bytes)?;
    let written = disk::buffered_write(
        &dir,
        &chunk,
        Budget {
            total_bytes: Some(bytes),
            time,
        },
    );
    disk::remove_case_dir(&dir)?;
    let written = written?;
    let dir = work.case_dir("raw-fdatasync")?;
    let synced = disk::synced_write(
        &dir,
        &chunk,
        1,
        Budget {
            total_bytes: None,
            time,
        },
    );
    disk::remove_case_dir(&dir)?;
    let synced = synced?;
    let loop_report = loopback::measure(time, RAW_CHUNK_BYTES as usize)?;
    Ok(RawRun {
        disk_write_mb_per_s: written.mb_per_s(),
        disk_write_fdatasync_mb_per_s: synced.mb_per_s(),
        disk_fdatasyncs_per_s: synced.ops_per_s(),
        loopback_mb_per_s: loop_report.mb_per_s(),
    })
}

/// Installs the system if asked and needed, starts it, runs the workloads and stops it.
fn measure_system(
    system: System,
    install: bool,
    work: &WorkDir,
    workload: &Workload,
    cases: &[Case],
    runs: u32,
) -> Row {
    let row = |status, reason: Option<String>, measured: Option<(Option<Memory>, Vec<_>)>| {
        let (memory, results) = measured.unwrap_or_default();
        Row {
            system: system.name().to_owned(),
            durability: system.durability().to_owned(),
            client: system.client().to_owned(),
            status,
            reason,
            memory,
            results,
            partitions: None,
        }
    };
    let program = match system.program() {
        Some(program) => program,
        None => {
            let command = system.install_command().unwrap_or_default().join(" ");
            if !install {
                return row(
                    Status::Skipped,
                    Some(format!(
                        "not installed; --install runs `{command}` (or install it yourself)"
                    )),
                    None,
                );
            }
            match install_system(system).and_then(|()| {
                system
                    .program()
                    .ok_or_else(|| "still not found after installing".into())
            }) {
                Ok(program) => program,
                Err(err) => {
                    return row(
                        Status::Skipped,
                        Some(format!("`{command}` failed: {err}")),
                        None,
                    );
                }
            }
        }
    };
    let result = work.case_dir(system.name()).and_then(|dir| {
        let measured = Server::start(system, &program, &dir).map(|mut server| {
            let measured = measure_runs(system, &mut server, workload, cases, runs);
            server.stop();
            measured
        });
        // The next system starts without this one's files.
        disk::remove_case_dir(&dir)?;
        measured
    });
    let mut row = match result {
        Ok((memory, results)) => {
            let failure = results
                .iter()
                .find_map(|r| r.error.as_ref().map(|e| format!("{}: {e}", r.case)));
            let status = if failure.is_some() {
                Status::Failed
            } else {
                Status::Measured
            };
            row(status, failure, Some((memory, results)))
        }
        Err(err) => return row(Status::Failed, Some(err.to_string()), None),
    };
    if workload.many_partitions > 0 && system.is_kafka() {
        tracing::info!(
            system = system.name(),
            partitions = workload.many_partitions,
            "many partitions"
        );
        let plan = partitions::Plan {
            count: workload.many_partitions,
            topics: 1,
            size: workload.size_bytes,
            timeout: WORKLOAD_TIMEOUT,
        };
        let measured = work
            .case_dir(&format!("{}-partitions", system.name()))
            .and_then(|dir| {
                let measured = partitions::measure_started(system, &program, &dir, plan);
                disk::remove_case_dir(&dir)?;
                measured
            });
        let failure = match &measured {
            Ok(report) => report.error.clone(),
            Err(err) => Some(err.to_string()),
        };
        if let Some(err) = failure {
            row.status = Status::Failed;
            row.reason
                .get_or_insert_with(|| format!("{} partitions: {err}", plan.count));
        }
        row.partitions = measured.ok();
    }
    row
}

/// Every workload `runs` times against a serving system (run 1 of each, then run 2, ...), and
/// the system's memory before and over them.
fn measure_runs(
    system: System,
    server: &mut Server,
    workload: &Workload,
    cases: &[Case],
    runs: u32,
) -> (Option<Memory>, Vec<CaseResult>) {
    let idle = server.rss_bytes();
    let mut results: Vec<CaseResult> = cases
        .iter()
        .map(|case| CaseResult {
            case: case.id.clone(),
            error: None,
            runs: Vec::new(),
            median: None,
            ratios: None,
            disk_write_share: None,
        })
        .collect();
    for run in 1..=runs {
        for (case, result) in cases.iter().zip(&mut results) {
            if result.error.is_some() {
                continue;
            }
            tracing::info!(system = system.name(), case = %case.id, run, "running");
            let measured = server
                .check_running()
                .and_then(|()| run_case(system, server, case, run, workload));
            match measured {
                Ok(m) => result.runs.push(m),
                Err(err) => {
                    result.error = Some(format!(
                        "run {run}: {err}; its log ends: {}",
                        server.log_tail()
                    ));
                }
            }
        }
    }
    for result in &mut results {
        if result.error.is_none() {
            result.median = Measurement::median(&result.runs);
        }
    }
    let memory = match (idle, server.peak_rss_bytes()) {
        (Ok((idle_rss_bytes, processes)), Ok(peak_rss_bytes)) => Some(Memory {
            idle_rss_bytes,
            peak_rss_bytes,
            processes,
        }),
        (Err(err), _) | (_, Err(err)) => {
            tracing::warn!(system = system.name(), %err, "its memory could not be read");
            None
        }
    };
    (memory, results)
}

/// The topic (stream, queue) of `case` in run `run`; a consume's is its produce's.
fn topic_of(case: &Case, run: u32) -> String {
    format!("bench-{}-r{run}", case.reads.as_deref().unwrap_or(&case.id))
}

/// One run of one workload.
fn run_case(
    system: System,
    server: &Server,
    case: &Case,
    run: u32,
    workload: &Workload,
) -> Result<Measurement> {
    let topic = topic_of(case, run);
    let address = server.address();
    if system.is_kafka() {
        return kafka_case(&address, server.pid()?, case, &topic, workload);
    }
    let meter = Meter {
        server_pid: server.pid()?,
    };
    let names: Vec<String> = (0..case.partitions)
        .map(|k| format!("{topic}-{k}"))
        .collect();
    let runtime = runtime()?;
    let messages = workload.messages;
    let size = case.size_bytes;
    if system == System::Rabbitmq {
        runtime.block_on(async {
            match case.kind {
                Kind::Produce => {
                    peers::amqp_produce(&address, &names, messages, size, &meter).await
                }
                Kind::Consume => peers::amqp_consume(&address, &names, messages, &meter).await,
                Kind::Latency => peers::amqp_latency(&address, &topic, workload, &meter).await,
            }
        })
    } else {
        runtime.block_on(async {
            match case.kind {
                Kind::Produce => {
                    peers::redis_produce(&address, &names, messages, size, &meter).await
                }
                Kind::Consume => peers::redis_consume(&address, &names, messages, &meter).await,
                Kind::Latency => peers::redis_latency(&address, &topic, workload, &meter).await,
            }
        })
    }
}

// ---- Kafka protocol: the code of `bench produce`, `bench consume` and `bench latency`.

/// One run of one workload on a Kafka-protocol system whose process is `pid`.
fn kafka_case(
    brokers: &str,
    pid: u32,
    case: &Case,
    topic: &str,
    workload: &Workload,
) -> Result<Measurement> {
    let target = Target {
        brokers: brokers.to_owned(),
        topic: topic.to_owned(),
        partitions: Some(case.partitions as i32),
        config: Vec::new(),
        broker_pid: Some(pid),
        json: true,
    };
    let producer = |linger_ms| ProducerSettings {
        acks: case.acks,
        compression: Compression::None,
        linger_ms,
        batch_size: None,
    };
    match case.kind {
        Kind::Produce => {
            let produced = produce::measure(&ProduceArgs {
                target,
                producer: producer(None),
                messages: workload.messages,
                size: case.size_bytes as usize,
                producers: 1,
            })?;
            if produced.failed > 0 {
                return Err(format!(
                    "produce: {} messages not delivered; first: {}",
                    produced.failed,
                    produced.first_error.as_deref().unwrap_or("?")
                )
                .into());
            }
            Measurement::kafka(
                produced.acked,
                case.size_bytes,
                produced.seconds,
                produced.broker.as_ref(),
            )
        }
        Kind::Consume => {
            let consumed = consume::measure(&ConsumeArgs {
                target,
                messages: workload.messages,
                size: case.size_bytes as usize,
                drop_cache: false,
                timeout: WORKLOAD_TIMEOUT.as_secs(),
            })?;
            let pass = consumed
                .passes
                .iter()
                .find(|p| p.cache == "page cache")
                .ok_or("consume: no pass")?;
            Measurement::kafka(
                pass.messages,
                case.size_bytes,
                pass.seconds,
                pass.broker.as_ref(),
            )
        }
        Kind::Latency => {
            let measured = latency::measure(&LatencyArgs {
                target,
                producer: producer(Some(0)),
                rate: workload.latency_rate,
                duration: workload.latency_duration_s,
                size: case.size_bytes,
            })?;
            if measured.failed > 0 || measured.received < measured.sent {
                return Err(format!(
                    "latency: {} sent, {} failed, {} read back",
                    measured.sent, measured.failed, measured.received
                )
                .into());
            }
            let seconds = measured.sent as f64 / measured.achieved_rate.max(1e-9);
            let throughput = Measurement::kafka(
                measured.sent,
                case.size_bytes,
                seconds,
                measured.broker.as_ref(),
            )?;
            Ok(Measurement::latency(
                measured.sent,
                case.size_bytes,
                seconds,
                &measured.latency,
                Cpu {
                    client_s: throughput.client_cpu_s,
                    server_s: throughput.server_cpu_s,
                },
            ))
        }
    }
}

// ---- The report.

/// A figure with its ratio to the reference, as `12345 (0.52x)`.
fn with_ratio(figure: String, ratio: Option<f64>) -> String {
    match ratio {
        Some(r) => format!("{figure} ({r:.2}x)"),
        None => figure,
    }
}

/// Bytes in MiB, as `45.6 MiB`.
fn fmt_mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}

/// A throughput median in the case's unit, with its ratio and, for a produce in MB/s, its
/// share of the disk's raw buffered write bandwidth.
fn throughput_cell(case: &Case, result: &CaseResult, m: &Measurement) -> String {
    let ratio = result.ratios.map(|r| r.msgs_per_s);
    if !case.in_mb() {
        return with_ratio(fmt_rate(m.msgs_per_s), ratio);
    }
    let mut notes = Vec::new();
    if let Some(r) = ratio {
        notes.push(format!("{r:.2}x"));
    }
    if let Some(share) = result.disk_write_share {
        notes.push(format!("{:.1}%", share * 100.0));
    }
    if notes.is_empty() {
        format!("{:.1}", m.mb_per_s)
    } else {
        format!("{:.1} ({})", m.mb_per_s, notes.join(", "))
    }
}

/// The cell of a row without results, or of a workload without a median.
fn missing(row: &Row) -> String {
    match row.status {
        Status::Skipped => "skipped (below)".to_owned(),
        _ => "failed (below)".to_owned(),
    }
}

/// One table with a row per system and a column per case: `cell` fills a case's cell from its
/// result and median.
fn case_table(
    report: &Report,
    cases: &[&Case],
    header: impl Fn(&Case) -> String,
    cell: impl Fn(&Case, &CaseResult, &Measurement) -> String,
) -> String {
    let mut names = vec!["system".to_owned()];
    names.extend(cases.iter().map(|c| header(c)));
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut t = table(&names, 1);
    for row in &report.systems {
        let mut cells = vec![row.system.clone()];
        if row.results.is_empty() {
            cells.push(missing(row));
        }
        for case in cases {
            match row.result(&case.id) {
                Some(result) => cells.push(match &result.median {
                    Some(m) => cell(case, result, m),
                    None => missing(row),
                }),
                None if row.results.is_empty() => {}
                None => cells.push(String::new()),
            }
        }
        t.add_row(cells);
    }
    format!("{t}\n")
}

fn render(report: &Report) -> String {
    let w = &report.workload;
    let runs = if report.runs == 1 {
        "one run".to_owned()
    } else {
        format!("median of {} runs", report.runs)
    };
    let against = report
        .reference
        .as_deref()
        .map_or(String::new(), |name| format!("; (Nx): over {name}'s"));
    let mut out = format!(
        "Comparison on loopback, each figure the {runs} (every run in --json): {} messages per \
         produce and consume, one client each; {} CPUs\n",
        w.messages, report.cpus
    );
    let throughput: Vec<&Case> = report
        .cases
        .iter()
        .filter(|c| c.kind != Kind::Latency)
        .collect();
    if !throughput.is_empty() {
        out.push_str(&format!(
            "\nThroughput ({runs}{against}; % of disk: of the raw buffered write below)\n"
        ));
        out.push_str(&case_table(
            report,
            &throughput,
            Case::header,
            throughput_cell,
        ));
    }
    for case in report.cases.iter().filter(|c| c.kind == Kind::Latency) {
        out.push_str(&format!(
            "\nLatency at {:.0} msgs/s for {:.1} s, {} values, acks=all ({runs}{against}, \
             above 1 slower)\n",
            w.latency_rate,
            w.latency_duration_s,
            fmt_size(case.size_bytes as usize)
        ));
        let mut t = table(&["system", "p50", "p99", "p99.9", "achieved msgs/s"], 1);
        for row in &report.systems {
            let result = row.result(&case.id);
            match (result, result.and_then(|r| r.median.as_ref())) {
                (Some(result), Some(m)) => {
                    let l = m.latency.unwrap_or_default();
                    let r = result.ratios;
                    t.add_row(vec![
                        row.system.clone(),
                        with_ratio(fmt_latency(l.p50_us), r.and_then(|r| r.p50_us)),
                        with_ratio(fmt_latency(l.p99_us), r.and_then(|r| r.p99_us)),
                        with_ratio(fmt_latency(l.p99_9_us), r.and_then(|r| r.p99_9_us)),
                        format!("{:.0}", m.msgs_per_s),
                    ]);
                }
                _ => {
                    t.add_row(vec![row.system.clone(), missing(row)]);
                }
            }
        }
        out.push_str(&format!("{t}\n"));
    }
    if !report.cases.is_empty() {
        out.push_str(&format!(
            "\nCPU seconds of the client (this process) + of the system's processes, of the \
             wall seconds timed ({runs}); busy near {} s per wall s means the CPU binds\n",
            report.cpus
        ));
        let cases: Vec<&Case> = report.cases.iter().collect();
        out.push_str(&case_table(report, &cases, Case::label, |_, _, m| {
            format!(
                "{:.2} + {:.2} of {:.2}",
                m.client_cpu_s, m.server_cpu_s, m.seconds
            )
        }));
    }
    out.push_str("\nMemory of each system's processes\n");
    let many = format!("{} partitions:\nRSS served, in s", w.many_partitions);
    let mut header = vec!["system", "idle RSS", "peak RSS (VmHWM)", "processes"];
    if w.many_partitions > 0 {
        header.push(&many);
    }
    let mut t = table(&header, 1);
    for row in &report.systems {
        let mut cells = vec![row.system.clone()];
        match &row.memory {
            Some(m) => cells.extend([
                fmt_mib(m.idle_rss_bytes),
                fmt_mib(m.peak_rss_bytes),
                m.processes.to_string(),
            ]),
            None => cells.extend([missing(row), String::new(), String::new()]),
        }
        if w.many_partitions > 0 {
            cells.push(match &row.partitions {
                Some(p) if p.error.is_none() => {
                    let served = p.memory.as_ref().and_then(|m| m.rss_served_bytes);
                    format!(
                        "{} in {:.1}",
                        served.map_or_else(|| "-".to_owned(), fmt_mib),
                        p.total_s
                    )
                }
                Some(p) => format!(
                    "failed (below): {} of {} served",
                    p.fetched_partitions, p.partitions
                ),
                None if row.memory.is_some() => "-".to_owned(),
                None => String::new(),
            });
        }
        t.add_row(cells);
    }
    out.push_str(&format!("{t}\n"));
    let raw = &report.raw;
    out.push_str(&format!(
        "\nRaw limits in the same run ({}, {}; 1 MiB writes; {runs}): disk write {:.1} MB/s, \
         write+fdatasync {:.1} MB/s ({:.0} fdatasyncs/s), loopback TCP {:.0} MB/s\n",
        raw.directory,
        raw.filesystem,
        raw.disk_write_mb_per_s,
        raw.disk_write_fdatasync_mb_per_s,
        raw.disk_fdatasyncs_per_s,
        raw.loopback_mb_per_s
    ));
    for row in &report.systems {
        out.push_str(&format!(
            "{}: {}; {}",
            row.system, row.durability, row.client
        ));
        if let Some(reason) = &row.reason {
            let status = match row.status {
                Status::Skipped => "skipped",
                _ => "failed",
            };
            out.push_str(&format!("; {status}: {reason}"));
        }
        out.push('\n');
    }
    if report.reference.is_none() {
        out.push_str("no Basalt row was measured: no ratios\n");
    }
    out.push_str(
        "Np: partitions (Redis: streams, RabbitMQ: queues); acks: the Kafka-protocol systems' \
         producer. Latency: scheduled send to read, coordinated omission corrected. Memory: \
         idle just after start, peak over every run; many partitions: after each was written \
         and read back, on an instance of its own, with the seconds it all took. MB = 10^6 value \
         bytes\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload() -> Workload {
        Workload {
            messages: 10,
            size_bytes: 100,
            large_size_bytes: 1024,
            partitions: vec![1, 6],
            latency_rate: 100.0,
            latency_duration_s: 1.0,
            many_partitions: 0,
        }
    }

    fn all() -> Vec<WorkloadChoice> {
        vec![
            WorkloadChoice::Produce,
            WorkloadChoice::Consume,
            WorkloadChoice::ProduceLarge,
            WorkloadChoice::ConsumeLarge,
            WorkloadChoice::Latency,
            WorkloadChoice::Partitions,
        ]
    }

    fn measurement(scale: f64, latency: bool) -> Measurement {
        Measurement {
            messages: 10,
            seconds: 1.0 / scale,
            msgs_per_s: 100_000.0 * scale,
            mb_per_s: 10.0 * scale,
            latency: latency.then_some(Latencies {
                p50_us: 1000.0 * scale,
                p99_us: 2000.0 * scale,
                p99_9_us: 4000.0 * scale,
            }),
            client_cpu_s: 0.5,
            server_cpu_s: 1.5,
        }
    }

    fn row(system: System, status: Status, scale: Option<f64>, cases: &[Case]) -> Row {
        let results = match scale {
            Some(scale) => cases
                .iter()
                .map(|case| {
                    let m = measurement(scale, case.kind == Kind::Latency);
                    CaseResult {
                        case: case.id.clone(),
                        error: None,
                        runs: vec![m, m],
                        median: Some(m),
                        ratios: None,
                        disk_write_share: None,
                    }
                })
                .collect(),
            None => Vec::new(),
        };
        Row {
            system: system.name().to_owned(),
            durability: system.durability().to_owned(),
            client: system.client().to_owned(),
            status,
            reason: (status != Status::Measured).then(|| "not installed".to_owned()),
            memory: scale.map(|_| Memory {
                idle_rss_bytes: 10 << 20,
                peak_rss_bytes: 64 << 20,
                processes: 1,
            }),
            results,
            partitions: None,
        }
    }

    fn raw() -> RawLimits {
        let run = RawRun {
            disk_write_mb_per_s: 1000.0,
            disk_write_fdatasync_mb_per_s: 100.0,
            disk_fdatasyncs_per_s: 100.0,
            loopback_mb_per_s: 5000.0,
        };
        RawLimits {
            directory: "/tmp/x".to_owned(),
            filesystem: "ext4 on /dev/vda".to_owned(),
            chunk_bytes: 1 << 20,
            disk_write_mb_per_s: 1000.0,
            disk_write_fdatasync_mb_per_s: 100.0,
            disk_fdatasyncs_per_s: 100.0,
            loopback_mb_per_s: 5000.0,
            runs: vec![run; 3],
        }
    }

    #[test]
    fn cases_follow_the_workloads_and_partition_counts_chosen() {
        let ids = |chosen: &[WorkloadChoice]| -> Vec<String> {
            cases(chosen, &workload())
                .into_iter()
                .map(|c| c.id)
                .collect()
        };
        assert_eq!(
            ids(&all()),
            [
                "produce-100B-1p",
                "produce-100B-6p",
                "consume-100B-1p",
                "produce-1KiB-1p-acks1",
                "consume-1KiB-1p-acks1",
                "latency-100B"
            ]
        );
        assert_eq!(
            ids(&[WorkloadChoice::Consume]),
            ["produce-100B-1p", "consume-100B-1p"],
            "a consume brings the produce it reads"
        );
        let chosen = cases(&[WorkloadChoice::ConsumeLarge], &workload());
        assert_eq!(chosen[1].reads.as_deref(), Some("produce-1KiB-1p-acks1"));
        assert_eq!(chosen[1].acks, Acks::Leader);
        assert_eq!(topic_of(&chosen[1], 2), "bench-produce-1KiB-1p-acks1-r2");
        assert_eq!(topic_of(&chosen[0], 2), topic_of(&chosen[1], 2));
    }

    #[test]
    fn medians_are_taken_figure_by_figure() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0]), 2.5);
        assert_eq!(median(Vec::new()), 0.0);
        let runs = [
            measurement(1.0, true),
            measurement(3.0, true),
            measurement(2.0, true),
        ];
        let m = Measurement::median(&runs).unwrap();
        assert_eq!(m.msgs_per_s, 200_000.0);
        assert_eq!(m.seconds, 0.5);
        assert_eq!(m.latency.unwrap().p99_9_us, 8000.0);
        assert_eq!(m.messages, 10);
        assert!(Measurement::median(&[]).is_none());
    }

    #[test]
    fn ratios_are_taken_against_basalt_always_and_shown_in_the_tables() {
        let cases = cases(&all(), &workload());
        let mut rows = vec![
            row(System::BasaltOs, Status::Measured, Some(2.0), &cases),
            row(System::BasaltAlways, Status::Measured, Some(1.0), &cases),
            row(System::RedisAlways, Status::Measured, Some(0.5), &cases),
            row(System::Rabbitmq, Status::Skipped, None, &cases),
        ];
        assert_eq!(add_ratios(&mut rows).as_deref(), Some("basalt-always"));
        let raw = raw();
        add_disk_shares(&mut rows, &cases, &raw);
        let always = rows[1].result("produce-100B-1p").unwrap();
        assert_eq!(always.ratios.unwrap().msgs_per_s, 1.0);
        assert_eq!(always.disk_write_share, Some(0.01));
        let os = rows[0].result("latency-100B").unwrap().ratios.unwrap();
        assert_eq!(os.p50_us, Some(2.0));
        let consume = rows[2].result("consume-100B-1p").unwrap();
        assert_eq!(consume.ratios.unwrap().mb_per_s, 0.5);
        assert_eq!(consume.disk_write_share, None, "only a produce writes");
        assert!(rows[3].results.is_empty());

        let report = Report {
            runs: 3,
            statistic: "median",
            cpus: 2,
            workload: workload(),
            cases,
            reference: Some("basalt-always".to_owned()),
            raw,
            systems: rows,
        };
        let text = render(&report);
        assert!(text.contains("median of 3 runs"), "{text}");
        assert!(text.contains("100000 (1.00x)"), "{text}");
        assert!(text.contains("50000 (0.50x)"), "{text}");
        assert!(
            text.contains("20.0 (2.00x, 2.0%)"),
            "MB/s with the disk's share: {text}"
        );
        assert!(text.contains("2.00 ms (0.50x)"), "{text}");
        assert!(text.contains("skipped (below)"), "{text}");
        assert!(text.contains("0.50 + 1.50 of 1.00"), "{text}");
        assert!(
            text.contains("10.0 MiB") && text.contains("64.0 MiB"),
            "{text}"
        );
        assert!(text.contains("rabbitmq: durable queues"), "{text}");
        assert!(text.contains("; skipped: not installed"), "{text}");
        assert!(text.contains("loopback TCP 5000 MB/s"), "{text}");
    }

    #[test]
    fn without_a_basalt_row_there_are_no_ratios() {
        let cases = cases(&[WorkloadChoice::Produce], &workload());
        let mut rows = vec![
            row(System::BasaltAlways, Status::Failed, None, &cases),
            row(System::RedisAlways, Status::Measured, Some(1.0), &cases),
        ];
        assert_eq!(add_ratios(&mut rows), None);
        assert!(rows[1].results.iter().all(|r| r.ratios.is_none()));
        let mut rows = vec![
            row(System::BasaltOs, Status::Measured, Some(4.0), &cases),
            row(System::RedisAlways, Status::Measured, Some(1.0), &cases),
        ];
        assert_eq!(add_ratios(&mut rows).as_deref(), Some("basalt-os"));
        let redis = rows[1].result("produce-100B-6p").unwrap();
        assert_eq!(redis.ratios.unwrap().msgs_per_s, 0.25);
    }

    #[test]
    fn messages_are_a_count_or_small() {
        assert_eq!(
            parse_messages("small"),
            Ok(Messages {
                count: 5000,
                small: true
            })
        );
        assert_eq!(parse_messages("42").map(|m| m.count), Ok(42));
        assert!(parse_messages("0").is_err());
        assert!(parse_messages("many").is_err());
    }
}
