//! `basalt bench compare`: Basalt beside the systems a user would choose instead, each started
//! here on loopback with its stated durability, measured with the same workloads in the same
//! run, next to the raw limits of the disk and of loopback TCP measured in that run too.
//!
//! # Systems
//! - Basalt, from this very binary (`serve`), with `log.flush.policy=always` (its default) and,
//!   as a second row, `os`.
//! - Tansu (Kafka protocol) with its `memory://` and its `sqlite://` storage engines.
//! - Redis 7 Streams with AOF, `appendfsync always` and `everysec`.
//! - RabbitMQ: a durable queue, persistent messages, publisher confirms.
//!
//! The Kafka-protocol systems are measured through the code of `bench produce`, `bench consume`
//! and `bench latency` (librdkafka, acks=all); Redis through the `redis` crate (XADD in
//! pipelines, XREADGROUP + XACK); RabbitMQ through `lapin` (confirms, manual acks with a
//! prefetch). A system that is not installed is installed with `--install` (apt-get, cargo)
//! and otherwise reported as skipped, with the reason.
//!
//! # Workloads
//! - produce: N messages of S bytes from one client, timed from the first send to the last
//!   acknowledgement (delivery report, pipeline reply, publisher confirm);
//! - consume: the same N messages read (and acknowledged, where the system has acks) by a fresh
//!   consumer, timed from its start to the N-th message;
//! - latency: one producer on a fixed schedule (message `i` due at `start + i / rate`, stamped
//!   with that time, so stalls are charged: coordinated omission corrected) and one consumer in
//!   the same process; HDR histogram of read time minus due time.
//!
//! Every system gets a new data directory inside the scratch directory (`--dir`), so all of them
//! write to the same disk as the raw measurement. Ratios are each figure over Basalt's with its
//! default durability (`always`); for latencies a ratio above 1 means slower than Basalt.

use std::collections::VecDeque;
use std::fs::{self, File};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use hdrhistogram::Histogram;
use serde::Serialize;

use super::consume::{self, ConsumeArgs};
use super::disk::{self, WorkDir};
use super::kafka::{Acks, Compression, Payloads, ProducerSettings, Target, per_s};
use super::latency::{self, LatencyArgs, Percentiles};
use super::load::Budget;
use super::output::{emit, fmt_latency, fmt_rate, table};
use super::process;
use super::produce::{self, ProduceArgs};
use super::{Result, loopback};

/// Longest wait for a system to serve after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(90);
/// Longest wait for a system to stop after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// XADD commands per Redis pipeline.
const REDIS_PIPELINE: usize = 1000;
/// Entries per XREADGROUP.
const REDIS_READ_COUNT: usize = 1000;
/// Publishes awaiting their confirm at most, per RabbitMQ producer.
const AMQP_CONFIRM_WINDOW: usize = 1000;
/// The RabbitMQ consumer's prefetch (`basic.qos`).
const AMQP_PREFETCH: u16 = 1000;
/// The RabbitMQ consumer acknowledges every this many deliveries (`multiple`), and the last.
const AMQP_ACK_EVERY: u64 = 100;
/// Longest time one workload may take on one system.
const WORKLOAD_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a latency consumer keeps reading after the last send was acknowledged.
const DRAIN: Duration = Duration::from_secs(10);
/// Longest latency the histogram holds.
const LATENCY_NS_MAX: u64 = 3_600_000_000_000;
/// The due time of the warm-up message of a latency run.
const WARM_UP: u64 = u64::MAX;

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
    /// Messages of the produce and consume workloads: a count, or `small` (5000 messages and a
    /// one-second latency run, for a quick look).
    #[arg(long, default_value = "200000", value_parser = parse_messages)]
    messages: Messages,
    /// Bytes of each message's value.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(16..=(1 << 20)))]
    size: u64,
    /// Messages per second of the latency workload.
    #[arg(long, default_value_t = 1000.0, value_parser = parse_positive)]
    rate: f64,
    /// Seconds of the latency workload [default: 10, or 1 with --messages small].
    #[arg(long, value_parser = parse_positive)]
    duration: Option<f64>,
    /// Directory on the data disk: every system's data directory and the raw disk measurement
    /// go into a new `basalt-bench-<pid>` directory inside it, removed afterwards.
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Print the report as one JSON document on stdout instead of a table.
    #[arg(long)]
    json: bool,
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

/// A name `--systems` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Choice {
    /// Both Basalt rows.
    Basalt,
    BasaltAlways,
    BasaltOs,
    TansuMemory,
    TansuSqlite,
    RedisAlways,
    RedisEverysec,
    Rabbitmq,
}

/// One row of the comparison: a system with one durability setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum System {
    BasaltAlways,
    BasaltOs,
    TansuMemory,
    TansuSqlite,
    RedisAlways,
    RedisEverysec,
    Rabbitmq,
}

impl System {
    /// The rows `choices` name, in the order given, each once.
    fn chosen(choices: &[Choice]) -> Vec<System> {
        let mut systems = Vec::new();
        for choice in choices {
            let named: &[System] = match choice {
                Choice::Basalt => &[System::BasaltAlways, System::BasaltOs],
                Choice::BasaltAlways => &[System::BasaltAlways],
                Choice::BasaltOs => &[System::BasaltOs],
                Choice::TansuMemory => &[System::TansuMemory],
                Choice::TansuSqlite => &[System::TansuSqlite],
                Choice::RedisAlways => &[System::RedisAlways],
                Choice::RedisEverysec => &[System::RedisEverysec],
                Choice::Rabbitmq => &[System::Rabbitmq],
            };
            for &system in named {
                if !systems.contains(&system) {
                    systems.push(system);
                }
            }
        }
        systems
    }

    fn name(self) -> &'static str {
        match self {
            System::BasaltAlways => "basalt-always",
            System::BasaltOs => "basalt-os",
            System::TansuMemory => "tansu-memory",
            System::TansuSqlite => "tansu-sqlite",
            System::RedisAlways => "redis-always",
            System::RedisEverysec => "redis-everysec",
            System::Rabbitmq => "rabbitmq",
        }
    }

    /// What an acknowledged message survives, in the system's own words.
    fn durability(self) -> &'static str {
        match self {
            System::BasaltAlways => "log.flush.policy=always: fsync (group commit) before the ack",
            System::BasaltOs => "log.flush.policy=os: page cache, the kernel writes back",
            System::TansuMemory => "memory:// engine: nothing on disk",
            System::TansuSqlite => {
                "sqlite:// engine (libSQL, WAL, synchronous=normal): no fsync per commit"
            }
            System::RedisAlways => "AOF, appendfsync always: fsync before the reply",
            System::RedisEverysec => "AOF, appendfsync everysec: fsync once a second",
            System::Rabbitmq => {
                "durable queue, persistent messages: fsync before the publisher confirm"
            }
        }
    }

    /// The protocol and client the workloads use.
    fn client(self) -> &'static str {
        match self {
            System::BasaltAlways | System::BasaltOs | System::TansuMemory | System::TansuSqlite => {
                "Kafka, librdkafka acks=all"
            }
            System::RedisAlways | System::RedisEverysec => {
                "RESP, redis-rs: XADD pipelined, XREADGROUP+XACK"
            }
            System::Rabbitmq => "AMQP 0-9-1, lapin: confirms, manual acks, prefetch 1000",
        }
    }

    /// The program that runs the system, if one can be found.
    fn program(self) -> Option<PathBuf> {
        match self {
            System::BasaltAlways | System::BasaltOs => std::env::current_exe().ok(),
            System::TansuMemory | System::TansuSqlite => find_program("tansu").or_else(|| {
                let home = std::env::var_os("CARGO_HOME")
                    .map(PathBuf::from)
                    .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
                home.map(|h| h.join("bin/tansu")).filter(|p| p.is_file())
            }),
            System::RedisAlways | System::RedisEverysec => find_program("redis-server"),
            System::Rabbitmq => {
                // The script itself, not Debian's wrapper that switches to the rabbitmq user.
                let direct = PathBuf::from("/usr/lib/rabbitmq/bin/rabbitmq-server");
                if direct.is_file() {
                    Some(direct)
                } else {
                    find_program("rabbitmq-server")
                }
            }
        }
    }

    /// The command that installs the system, as words.
    fn install_command(self) -> Option<Vec<&'static str>> {
        match self {
            System::BasaltAlways | System::BasaltOs => None,
            System::TansuMemory | System::TansuSqlite => Some(vec![
                "cargo",
                "install",
                "tansu",
                "--locked",
                "--features",
                "dynostore,libsql",
            ]),
            System::RedisAlways | System::RedisEverysec => {
                Some(vec!["apt-get", "install", "-y", "redis-server"])
            }
            System::Rabbitmq => Some(vec!["apt-get", "install", "-y", "rabbitmq-server"]),
        }
    }
}

/// A program on `PATH`.
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The workloads' sizes.
#[derive(Debug, Clone, Copy, Serialize)]
struct Workload {
    messages: u64,
    size_bytes: u64,
    latency_rate: f64,
    latency_duration_s: f64,
}

/// What one system measured.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
struct Figures {
    produce_msgs_per_s: f64,
    produce_mb_per_s: f64,
    consume_msgs_per_s: f64,
    latency_p50_us: f64,
    latency_p99_us: f64,
    latency_p99_9_us: f64,
    /// Messages per second the latency producer achieved (the rate asked, unless it fell
    /// behind).
    latency_achieved_rate: f64,
    /// CPU seconds (user and system) the system's processes spent over the three workloads.
    server_cpu_s: f64,
}

/// Each figure over the reference system's.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
struct Ratios {
    produce_msgs_per_s: f64,
    produce_mb_per_s: f64,
    consume_msgs_per_s: f64,
    latency_p50_us: f64,
    latency_p99_us: f64,
    latency_p99_9_us: f64,
}

impl Ratios {
    /// `figures` over `reference`; a figure whose reference is 0 gets no finite ratio (0).
    fn of(figures: &Figures, reference: &Figures) -> Ratios {
        let r = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        Ratios {
            produce_msgs_per_s: r(figures.produce_msgs_per_s, reference.produce_msgs_per_s),
            produce_mb_per_s: r(figures.produce_mb_per_s, reference.produce_mb_per_s),
            consume_msgs_per_s: r(figures.consume_msgs_per_s, reference.consume_msgs_per_s),
            latency_p50_us: r(figures.latency_p50_us, reference.latency_p50_us),
            latency_p99_us: r(figures.latency_p99_us, reference.latency_p99_us),
            latency_p99_9_us: r(figures.latency_p99_9_us, reference.latency_p99_9_us),
        }
    }
}

/// Whether a system was measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    Measured,
    /// Not installed (and not installed by this run), or could not be installed.
    Skipped,
    /// Started but a workload failed.
    Failed,
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
    figures: Option<Figures>,
    /// Over the reference row's figures.
    #[serde(skip_serializing_if = "Option::is_none")]
    ratios: Option<Ratios>,
}

/// The machine's limits, measured in the same run.
#[derive(Debug, Clone, Serialize)]
struct RawLimits {
    directory: String,
    filesystem: String,
    chunk_bytes: u64,
    disk_write_mb_per_s: f64,
    disk_write_fdatasync_mb_per_s: f64,
    disk_fdatasyncs_per_s: f64,
    loopback_mb_per_s: f64,
}

/// What `bench compare` reports.
#[derive(Debug, Serialize)]
struct Report {
    workload: Workload,
    /// The row the ratios are taken against.
    reference: Option<String>,
    raw: RawLimits,
    systems: Vec<Row>,
}

/// Runs the comparison and prints its report.
pub(crate) fn run(args: &CompareArgs) -> Result<()> {
    let workload = Workload {
        messages: args.messages.count,
        size_bytes: args.size,
        latency_rate: args.rate,
        latency_duration_s: args
            .duration
            .unwrap_or(if args.messages.small { 1.0 } else { 10.0 }),
    };
    let work = WorkDir::create(&args.dir)?;
    let raw = raw_limits(&work, args.messages.small)?;
    let mut rows = Vec::new();
    for system in System::chosen(&args.systems) {
        tracing::info!(system = system.name(), "measuring");
        let row = measure_system(system, args.install, &work, &workload);
        if let Some(reason) = &row.reason {
            tracing::warn!(system = system.name(), status = ?row.status, %reason, "not measured");
        }
        rows.push(row);
    }
    let reference = add_ratios(&mut rows);
    let report = Report {
        workload,
        reference,
        raw,
        systems: rows,
    };
    drop(work);
    emit(args.json, &report, render)
}

/// Sets every measured row's ratios against the first measured Basalt row (with `always` if
/// it was measured); returns that row's name.
fn add_ratios(rows: &mut [Row]) -> Option<String> {
    let measured = |name: &str| {
        rows.iter()
            .find(|r| r.system == name && r.status == Status::Measured)
            .and_then(|r| r.figures.map(|f| (r.system.clone(), f)))
    };
    let (name, reference) =
        measured(System::BasaltAlways.name()).or_else(|| measured(System::BasaltOs.name()))?;
    for row in rows.iter_mut() {
        row.ratios = row.figures.map(|f| Ratios::of(&f, &reference));
    }
    Some(name)
}

/// Sequential write, write+fdatasync (1 MiB chunks) and loopback TCP bandwidth.
fn raw_limits(work: &WorkDir, small: bool) -> Result<RawLimits> {
    let time = Duration::from_secs_f64(if small { 0.2 } else { 2.0 });
    let bytes: u64 = if small { 16 << 20 } else { 512 << 20 };
    let chunk_bytes: u64 = 1 << 20;
    let chunk = vec![0xA5u8; chunk_bytes as usize];
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
    let loop_report = loopback::measure(time, chunk_bytes as usize)?;
    Ok(RawLimits {
        directory: work.path().display().to_string(),
        filesystem: disk::filesystem_of(work.path()).map_or_else(
            || "unknown".to_owned(),
            |fs| format!("{} on {}", fs.kind, fs.source),
        ),
        chunk_bytes,
        disk_write_mb_per_s: written.mb_per_s(),
        disk_write_fdatasync_mb_per_s: synced.mb_per_s(),
        disk_fdatasyncs_per_s: synced.ops_per_s(),
        loopback_mb_per_s: loop_report.mb_per_s(),
    })
}

/// Installs the system if asked and needed, starts it, runs the workloads and stops it.
fn measure_system(system: System, install: bool, work: &WorkDir, workload: &Workload) -> Row {
    let row = |status, reason: Option<String>, figures| Row {
        system: system.name().to_owned(),
        durability: system.durability().to_owned(),
        client: system.client().to_owned(),
        status,
        reason,
        figures,
        ratios: None,
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
        let measured = Server::start(system, &program, &dir).and_then(|server| {
            let figures = run_workloads(system, &server, workload)
                .map_err(|e| format!("{e}; its log ends: {}", server.log_tail()));
            server.stop();
            Ok(figures?)
        });
        // The next system starts without this one's files.
        disk::remove_case_dir(&dir)?;
        measured
    });
    match result {
        Ok(figures) => row(Status::Measured, None, Some(figures)),
        Err(err) => row(Status::Failed, Some(err.to_string()), None),
    }
}

/// Runs the system's install command (apt-get after `apt-get update` if it failed without),
/// its output going to stderr.
fn install_system(system: System) -> Result<()> {
    let Some(words) = system.install_command() else {
        return Err("nothing installs it".into());
    };
    if words[0] == "apt-get" && run_to_stderr(&words).is_err() {
        run_to_stderr(&["apt-get", "update"])?;
    }
    run_to_stderr(&words)
}

/// Runs `words`, its stdout and stderr going to this process's stderr (stdout is the report's).
fn run_to_stderr(words: &[&str]) -> Result<()> {
    use std::os::fd::AsFd;
    tracing::info!(command = %words.join(" "), "running");
    let stderr = || -> Result<Stdio> { Ok(std::io::stderr().as_fd().try_clone_to_owned()?.into()) };
    let status = Command::new(words[0])
        .args(&words[1..])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .stdout(stderr()?)
        .stderr(stderr()?)
        .status()
        .map_err(|e| format!("run {}: {e}", words[0]))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{}` exited with {status}", words.join(" ")).into())
    }
}

/// Whether Erlang's port mapper daemon answers (RabbitMQ starts one if not, which outlives it).
fn epmd_running() -> bool {
    Command::new("epmd")
        .arg("-names")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A system running as a child process on a loopback port.
struct Server {
    system: System,
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    /// RabbitMQ only: whether this run started the `epmd` it left behind, to stop it after.
    started_epmd: bool,
}

/// A port nobody listens on now.
fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Server {
    /// Starts `system` with its data in `dir` and waits until it serves.
    fn start(system: System, program: &Path, dir: &Path) -> Result<Server> {
        let port = free_port()?;
        let data = dir.join("data");
        fs::create_dir_all(&data)?;
        let log = File::create(dir.join("server.log"))?;
        let mut command = Command::new(program);
        command
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let address = format!("127.0.0.1:{port}");
        match system {
            System::BasaltAlways | System::BasaltOs => {
                let policy = if system == System::BasaltOs {
                    "os"
                } else {
                    "always"
                };
                command
                    .arg("serve")
                    .args(["--listen", &address, "--data-dir"])
                    .arg(&data)
                    .args(["--log.flush.policy", policy])
                    .env("RUST_LOG", "warn");
            }
            System::TansuMemory | System::TansuSqlite => {
                // Tansu opens a `sqlite://` database relative to its working directory.
                let engine = if system == System::TansuMemory {
                    "memory://tansu/"
                } else {
                    "sqlite://tansu.db"
                };
                // Settings through the environment, which Tansu's versions read alike.
                command
                    .current_dir(&data)
                    .arg("broker")
                    .env("STORAGE_ENGINE", engine)
                    .env("LISTENER_URL", format!("tcp://{address}"))
                    .env("ADVERTISED_LISTENER_URL", format!("tcp://{address}"))
                    .env(
                        "PROMETHEUS_LISTENER_URL",
                        format!("tcp://127.0.0.1:{}", free_port()?),
                    )
                    .env("CLUSTER_ID", "basalt-bench")
                    .env("RUST_LOG", "warn");
            }
            System::RedisAlways | System::RedisEverysec => {
                let fsync = if system == System::RedisAlways {
                    "always"
                } else {
                    "everysec"
                };
                command
                    .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--dir"])
                    .arg(&data)
                    .args(["--appendonly", "yes", "--appendfsync", fsync])
                    .args(["--save", "", "--daemonize", "no", "--protected-mode", "no"]);
            }
            System::Rabbitmq => {
                let plugins = dir.join("enabled_plugins");
                fs::write(&plugins, "[].\n")?;
                let node = format!("basalt-bench-{}-{port}@localhost", std::process::id());
                command
                    .env("HOME", dir)
                    .env("RABBITMQ_NODENAME", node)
                    .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
                    .env("RABBITMQ_NODE_PORT", port.to_string())
                    .env("RABBITMQ_DIST_PORT", free_port()?.to_string())
                    .env("RABBITMQ_MNESIA_BASE", data.join("mnesia"))
                    .env("RABBITMQ_LOG_BASE", dir.join("log"))
                    .env("RABBITMQ_PID_FILE", dir.join("rabbitmq.pid"))
                    .env("RABBITMQ_ENABLED_PLUGINS_FILE", &plugins)
                    .env("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq"))
                    .env("RABBITMQ_ADVANCED_CONFIG_FILE", dir.join("advanced.config"));
            }
        }
        let started_epmd = system == System::Rabbitmq && !epmd_running();
        let child = command
            .spawn()
            .map_err(|e| format!("start {}: {e}", program.display()))?;
        let mut server = Server {
            system,
            child: Some(child),
            port,
            dir: dir.to_path_buf(),
            started_epmd,
        };
        server.wait_until_serving()?;
        tracing::info!(system = system.name(), port, "serving");
        Ok(server)
    }

    /// CPU seconds of the server's process tree so far.
    fn cpu_seconds(&self) -> Result<f64> {
        let pid = self.child.as_ref().ok_or("not running")?.id();
        process::tree_cpu_seconds(pid)
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Polls until the port accepts connections (and, for Redis and RabbitMQ, the protocol
    /// answers); fails if the process exits first.
    fn wait_until_serving(&mut self) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                return Err(format!(
                    "{} exited with {status} before serving: {}",
                    self.system.name(),
                    self.log_tail()
                )
                .into());
            }
            if TcpStream::connect_timeout(&self.address().parse()?, Duration::from_secs(1)).is_ok()
                && self.answers()
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{} did not serve on {} within {} s: {}",
                    self.system.name(),
                    self.address(),
                    START_TIMEOUT.as_secs(),
                    self.log_tail()
                )
                .into());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Whether the system answers its own protocol (Kafka systems: an open port suffices, the
    /// benches wait for metadata themselves).
    fn answers(&self) -> bool {
        let Ok(runtime) = runtime() else {
            return false;
        };
        match self.system {
            System::RedisAlways | System::RedisEverysec => runtime.block_on(async {
                let Ok(mut conn) = redis_connection(&self.address()).await else {
                    return false;
                };
                redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .is_ok()
            }),
            System::Rabbitmq => runtime.block_on(async {
                match amqp_connect(&self.address()).await {
                    Ok(conn) => {
                        let _ = conn.close(200, "ready".into()).await;
                        true
                    }
                    Err(_) => false,
                }
            }),
            _ => true,
        }
    }

    /// The last lines of the server's log, for an error message.
    fn log_tail(&self) -> String {
        let log = fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().rev().take(5).collect();
        let tail: Vec<&str> = lines.into_iter().rev().collect();
        if tail.is_empty() {
            "(nothing logged)".to_owned()
        } else {
            tail.join(" | ")
        }
    }

    /// SIGTERM, then a kill if it has not exited within [`STOP_TIMEOUT`].
    fn stop(mut self) {
        self.stop_child();
    }

    fn stop_child(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        self.terminate(&mut child);
        // epmd refuses to stop while a node is still registered (RabbitMQ's or its
        // rabbitmqctl's, which may take a moment to go).
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.started_epmd && epmd_running() && Instant::now() < deadline {
            let _ = Command::new("epmd")
                .arg("-kill")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn terminate(&self, child: &mut Child) {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        tracing::warn!(
            system = self.system.name(),
            "did not stop after SIGTERM: killed"
        );
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop_child();
    }
}

/// A tokio runtime for the Redis and RabbitMQ clients.
fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// Runs produce, consume and latency against a serving system.
fn run_workloads(system: System, server: &Server, workload: &Workload) -> Result<Figures> {
    let cpu_before = server.cpu_seconds()?;
    let mut figures = match system {
        System::BasaltAlways | System::BasaltOs | System::TansuMemory | System::TansuSqlite => {
            kafka_workloads(&server.address(), workload)
        }
        System::RedisAlways | System::RedisEverysec => {
            runtime()?.block_on(redis_workloads(&server.address(), workload))
        }
        System::Rabbitmq => runtime()?.block_on(amqp_workloads(&server.address(), workload)),
    }?;
    figures.server_cpu_s = (server.cpu_seconds()? - cpu_before).max(0.0);
    Ok(figures)
}

// ---- Kafka protocol: the code of `bench produce`, `bench consume` and `bench latency`.

fn kafka_workloads(brokers: &str, workload: &Workload) -> Result<Figures> {
    let target = |topic: &str| Target {
        brokers: brokers.to_owned(),
        topic: topic.to_owned(),
        partitions: Some(1),
        config: Vec::new(),
        broker_pid: None,
        json: true,
    };
    let producer = |linger_ms| ProducerSettings {
        acks: Acks::All,
        compression: Compression::None,
        linger_ms,
        batch_size: None,
    };
    let produced = produce::measure(&ProduceArgs {
        target: target("bench-compare"),
        producer: producer(None),
        messages: workload.messages,
        size: workload.size_bytes as usize,
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
    let consumed = consume::measure(&ConsumeArgs {
        target: target("bench-compare"),
        messages: workload.messages,
        size: workload.size_bytes as usize,
        drop_cache: false,
        timeout: WORKLOAD_TIMEOUT.as_secs(),
    })?;
    let pass = consumed
        .passes
        .iter()
        .find(|p| p.cache == "page cache")
        .ok_or("consume: no pass")?;
    let latency = latency::measure(&LatencyArgs {
        target: target("bench-compare-latency"),
        producer: producer(Some(0)),
        rate: workload.latency_rate,
        duration: workload.latency_duration_s,
        size: workload.size_bytes,
    })?;
    if latency.failed > 0 || latency.received < latency.sent {
        return Err(format!(
            "latency: {} sent, {} failed, {} read back",
            latency.sent, latency.failed, latency.received
        )
        .into());
    }
    Ok(Figures {
        produce_msgs_per_s: produced.msgs_per_s,
        produce_mb_per_s: produced.mb_per_s,
        consume_msgs_per_s: pass.msgs_per_s,
        latency_p50_us: latency.latency.p50_us,
        latency_p99_us: latency.latency.p99_us,
        latency_p99_9_us: latency.latency.p99_9_us,
        latency_achieved_rate: latency.achieved_rate,
        server_cpu_s: 0.0,
    })
}

// ---- What the Redis and RabbitMQ latency runs share.

/// Latencies read back by a consumer, from due times stamped in the first 8 bytes of a value.
struct Recorder {
    base: Instant,
    histogram: Histogram<u64>,
    received: u64,
    warmed: Arc<AtomicBool>,
}

impl Recorder {
    fn new(base: Instant, warmed: Arc<AtomicBool>) -> Result<Recorder> {
        Ok(Recorder {
            base,
            histogram: Histogram::new_with_bounds(1, LATENCY_NS_MAX, 3)?,
            received: 0,
            warmed,
        })
    }

    /// Records the message whose value is `value`, read now.
    fn record(&mut self, value: &[u8]) {
        let now = Instant::now();
        let Some(ns) = value
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_be_bytes)
        else {
            return;
        };
        if ns == WARM_UP {
            self.warmed.store(true, Ordering::Relaxed);
            return;
        }
        let due = self.base + Duration::from_nanos(ns);
        let latency = now.saturating_duration_since(due).as_nanos() as u64;
        self.histogram.saturating_record(latency.max(1));
        self.received += 1;
    }
}

/// Values for a latency run: message `i`'s payload with its due time (ns since `base`) in front.
fn stamped(payloads: &Payloads, i: u64, due_ns: u64) -> Vec<u8> {
    let mut value = payloads.get(i).to_vec();
    value[..8].copy_from_slice(&due_ns.to_be_bytes());
    value
}

/// Waits until `due`: sleeps while it is far, then yields to the other tasks (tokio's timer
/// counts in milliseconds).
async fn wait_until(due: Instant) {
    loop {
        let now = Instant::now();
        if now >= due {
            return;
        }
        if due - now > Duration::from_millis(2) {
            tokio::time::sleep(due - now - Duration::from_millis(1)).await;
        } else {
            tokio::task::yield_now().await;
        }
    }
}

/// The result of a latency run.
fn latency_figures(recorder: &Recorder, sent: u64, seconds: f64) -> Result<(Percentiles, f64)> {
    if recorder.received < sent {
        return Err(format!("latency: {sent} sent, {} read back", recorder.received).into());
    }
    Ok((Percentiles::of(&recorder.histogram), per_s(sent, seconds)))
}

/// Sends the warm-up message and waits until it was read back, then spawns one send per due
/// time on the schedule (`send(i, due in ns since base)`); returns the messages sent and the
/// schedule's seconds, once every send completed.
async fn paced<F, Fut>(
    workload: &Workload,
    base: Instant,
    warmed: &AtomicBool,
    mut send: F,
) -> Result<(u64, f64)>
where
    F: FnMut(u64, u64) -> Fut,
    Fut: std::future::Future<Output = Result<()>> + Send + 'static,
{
    send(0, WARM_UP).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !warmed.load(Ordering::Relaxed) {
        if Instant::now() >= deadline {
            return Err("latency: the warm-up message was not read back within 30 s".into());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let scheduled = ((workload.latency_rate * workload.latency_duration_s).round() as u64).max(1);
    let interval_ns = 1e9 / workload.latency_rate;
    let start = Instant::now();
    let mut sends = tokio::task::JoinSet::new();
    let mut last_due = start;
    for i in 0..scheduled {
        let due = start + Duration::from_nanos((i as f64 * interval_ns) as u64);
        wait_until(due).await;
        sends.spawn(send(i, (due - base).as_nanos() as u64));
        last_due = due;
    }
    let last_sent = Instant::now().max(last_due);
    while let Some(done) = sends.join_next().await {
        done.map_err(|e| format!("a send task failed: {e}"))??;
    }
    Ok((
        scheduled,
        (last_sent - start).as_secs_f64() + interval_ns / 1e9,
    ))
}

/// Waits for the consumer task after the producer finished: it stops by itself once every
/// message came, or is stopped [`DRAIN`] later.
async fn drained(
    reader: tokio::task::JoinHandle<Result<Recorder>>,
    stop: &AtomicBool,
) -> Result<Recorder> {
    let abort = reader.abort_handle();
    match tokio::time::timeout(DRAIN, reader).await {
        Ok(done) => done.map_err(|e| format!("the consumer task failed: {e}"))?,
        Err(_) => {
            stop.store(true, Ordering::Relaxed);
            abort.abort();
            Err("latency: messages never arrived".into())
        }
    }
}

// ---- Redis Streams.

async fn redis_connection(address: &str) -> Result<redis::aio::MultiplexedConnection> {
    let client = redis::Client::open(format!("redis://{address}/"))?;
    let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
    Ok(client
        .get_multiplexed_async_connection_with_config(&config)
        .await?)
}

async fn redis_workloads(address: &str, workload: &Workload) -> Result<Figures> {
    let payloads = Payloads::new(workload.size_bytes as usize);
    let stream = "bench-compare";
    let mut conn = redis_connection(address).await?;
    // produce: pipelines of XADD, one after the other.
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < workload.messages {
        let n = (workload.messages - sent).min(REDIS_PIPELINE as u64);
        let mut pipe = redis::pipe();
        for i in sent..sent + n {
            pipe.cmd("XADD")
                .arg(stream)
                .arg("*")
                .arg("v")
                .arg(payloads.get(i));
        }
        let ids: Vec<String> = pipe
            .query_async(&mut conn)
            .await
            .map_err(|e| format!("XADD: {e}"))?;
        if ids.len() as u64 != n {
            return Err(format!("XADD: {} replies to {n} commands", ids.len()).into());
        }
        sent += n;
    }
    let produce_s = start.elapsed().as_secs_f64();
    // consume: a group from the start, XREADGROUP then XACK of what was read.
    redis::cmd("XGROUP")
        .arg(&["CREATE", stream, "bench", "0"][..])
        .query_async::<()>(&mut conn)
        .await
        .map_err(|e| format!("XGROUP CREATE: {e}"))?;
    let start = Instant::now();
    let mut read = 0u64;
    while read < workload.messages {
        if start.elapsed() > WORKLOAD_TIMEOUT {
            return Err(format!("consume: {read} of {} read in time", workload.messages).into());
        }
        let entries = xreadgroup(&mut conn, stream, "bench", 0).await?;
        if entries.is_empty() {
            continue;
        }
        let mut ack = redis::cmd("XACK");
        ack.arg(stream).arg("bench");
        for (id, _) in &entries {
            ack.arg(id);
        }
        ack.query_async::<u64>(&mut conn)
            .await
            .map_err(|e| format!("XACK: {e}"))?;
        read += entries.len() as u64;
    }
    let consume_s = start.elapsed().as_secs_f64();
    let (latency, achieved) = redis_latency(address, workload, &payloads).await?;
    Ok(Figures {
        produce_msgs_per_s: per_s(sent, produce_s),
        produce_mb_per_s: super::output::mb_per_s(sent * workload.size_bytes, produce_s),
        consume_msgs_per_s: per_s(read, consume_s),
        latency_p50_us: latency.p50_us,
        latency_p99_us: latency.p99_us,
        latency_p99_9_us: latency.p99_9_us,
        latency_achieved_rate: achieved,
        server_cpu_s: 0.0,
    })
}

/// One XREADGROUP of new entries for consumer `c` of `group`: (id, value of field `v`).
async fn xreadgroup(
    conn: &mut redis::aio::MultiplexedConnection,
    stream: &str,
    group: &str,
    block_ms: usize,
) -> Result<Vec<(String, Vec<u8>)>> {
    let mut cmd = redis::cmd("XREADGROUP");
    cmd.arg(&["GROUP", group, "c", "COUNT"][..])
        .arg(REDIS_READ_COUNT);
    if block_ms > 0 {
        cmd.arg("BLOCK").arg(block_ms);
    }
    cmd.arg(&["STREAMS", stream, ">"][..]);
    let reply: Option<redis::streams::StreamReadReply> = cmd
        .query_async(conn)
        .await
        .map_err(|e| format!("XREADGROUP: {e}"))?;
    let mut entries = Vec::new();
    for key in reply.map(|r| r.keys).unwrap_or_default() {
        for entry in key.ids {
            let value = match entry.map.get("v") {
                Some(redis::Value::BulkString(bytes)) => bytes.clone(),
                _ => Vec::new(),
            };
            entries.push((entry.id, value));
        }
    }
    Ok(entries)
}

async fn redis_latency(
    address: &str,
    workload: &Workload,
    payloads: &Payloads,
) -> Result<(Percentiles, f64)> {
    let stream = "bench-compare-latency";
    let mut producer = redis_connection(address).await?;
    let mut consumer = redis_connection(address).await?;
    redis::cmd("XGROUP")
        .arg(&["CREATE", stream, "bench", "$", "MKSTREAM"][..])
        .query_async::<()>(&mut producer)
        .await
        .map_err(|e| format!("XGROUP CREATE: {e}"))?;
    let base = Instant::now();
    let warmed = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let expected = Arc::new(AtomicU64::new(u64::MAX));
    let mut recorder = Recorder::new(base, Arc::clone(&warmed))?;
    let reader = {
        let (stop, expected) = (Arc::clone(&stop), Arc::clone(&expected));
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed)
                && recorder.received < expected.load(Ordering::Relaxed)
            {
                let entries = xreadgroup(&mut consumer, stream, "bench", 100).await?;
                let mut ack = redis::cmd("XACK");
                ack.arg(stream).arg("bench");
                for (id, value) in &entries {
                    recorder.record(value);
                    ack.arg(id);
                }
                if !entries.is_empty() {
                    ack.query_async::<u64>(&mut consumer)
                        .await
                        .map_err(|e| format!("XACK: {e}"))?;
                }
            }
            Ok::<_, super::Error>(recorder)
        })
    };
    let (sent, seconds) = paced(workload, base, &warmed, |i, due_ns| {
        let mut conn = producer.clone();
        let value = stamped(payloads, i, due_ns);
        async move {
            redis::cmd("XADD")
                .arg(stream)
                .arg("*")
                .arg("v")
                .arg(value)
                .query_async::<String>(&mut conn)
                .await
                .map_err(|e| format!("XADD: {e}"))?;
            Ok(())
        }
    })
    .await?;
    expected.store(sent, Ordering::Relaxed);
    let recorder = drained(reader, &stop).await?;
    latency_figures(&recorder, sent, seconds)
}

// ---- RabbitMQ.

async fn amqp_connect(address: &str) -> Result<lapin::Connection> {
    Ok(lapin::Connection::connect(
        &format!("amqp://guest:guest@{address}/%2f"),
        lapin::ConnectionProperties::default(),
    )
    .await?)
}

/// A channel with publisher confirms on, and the durable queue `queue` declared.
async fn amqp_publisher(conn: &lapin::Connection, queue: &str) -> Result<lapin::Channel> {
    use lapin::options::{ConfirmSelectOptions, QueueDeclareOptions};
    let channel = conn.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions::durable(),
            lapin::types::FieldTable::default(),
        )
        .await?;
    Ok(channel)
}

/// Publishes one persistent message; the returned future resolves at its confirm.
async fn amqp_publish(
    channel: &lapin::Channel,
    queue: &str,
    value: &[u8],
) -> Result<lapin::PublisherConfirm> {
    let properties = lapin::BasicProperties::default().with_delivery_mode(2);
    Ok(channel
        .basic_publish(
            "".into(),
            queue.into(),
            lapin::options::BasicPublishOptions::default(),
            value,
            properties,
        )
        .await?)
}

async fn amqp_confirmed(confirm: lapin::PublisherConfirm) -> Result<()> {
    match confirm.await? {
        lapin::Confirmation::Ack(_) => Ok(()),
        other => Err(format!("publish not confirmed: {other:?}").into()),
    }
}

/// A consumer of `queue` with the prefetch set and manual acks.
async fn amqp_consumer(conn: &lapin::Connection, queue: &str) -> Result<lapin::Consumer> {
    use lapin::options::{BasicConsumeOptions, BasicQosOptions};
    let channel = conn.create_channel().await?;
    channel
        .basic_qos(AMQP_PREFETCH, BasicQosOptions::default())
        .await?;
    Ok(channel
        .basic_consume(
            queue.into(),
            "bench".into(),
            BasicConsumeOptions::default(),
            lapin::types::FieldTable::default(),
        )
        .await?)
}

/// Acknowledges every delivery up to `delivery` at once.
async fn amqp_ack(delivery: &lapin::message::Delivery) -> Result<()> {
    delivery
        .ack(lapin::options::BasicAckOptions { multiple: true })
        .await?;
    Ok(())
}

async fn amqp_workloads(address: &str, workload: &Workload) -> Result<Figures> {
    use futures_lite::StreamExt;
    let payloads = Payloads::new(workload.size_bytes as usize);
    let queue = "bench-compare";
    let conn = amqp_connect(address).await?;
    let channel = amqp_publisher(&conn, queue).await?;
    // produce: persistent messages, at most a window of them awaiting their confirm.
    let start = Instant::now();
    let mut pending = VecDeque::new();
    for i in 0..workload.messages {
        if pending.len() >= AMQP_CONFIRM_WINDOW
            && let Some(confirm) = pending.pop_front()
        {
            amqp_confirmed(confirm).await?;
        }
        pending.push_back(amqp_publish(&channel, queue, payloads.get(i)).await?);
    }
    for confirm in pending {
        amqp_confirmed(confirm).await?;
    }
    let produce_s = start.elapsed().as_secs_f64();
    // consume: prefetch, manual acks.
    let start = Instant::now();
    let mut consumer = amqp_consumer(&conn, queue).await?;
    let mut read = 0u64;
    while read < workload.messages {
        let delivery = tokio::time::timeout(WORKLOAD_TIMEOUT, consumer.next())
            .await
            .map_err(|_| format!("consume: {read} of {} read in time", workload.messages))?
            .ok_or("consume: the consumer was cancelled")??;
        read += 1;
        if read.is_multiple_of(AMQP_ACK_EVERY) || read == workload.messages {
            amqp_ack(&delivery).await?;
        }
    }
    let consume_s = start.elapsed().as_secs_f64();
    let (latency, achieved) = amqp_latency(&conn, workload, &payloads).await?;
    Ok(Figures {
        produce_msgs_per_s: per_s(workload.messages, produce_s),
        produce_mb_per_s: super::output::mb_per_s(
            workload.messages * workload.size_bytes,
            produce_s,
        ),
        consume_msgs_per_s: per_s(read, consume_s),
        latency_p50_us: latency.p50_us,
        latency_p99_us: latency.p99_us,
        latency_p99_9_us: latency.p99_9_us,
        latency_achieved_rate: achieved,
        server_cpu_s: 0.0,
    })
}

async fn amqp_latency(
    conn: &lapin::Connection,
    workload: &Workload,
    payloads: &Payloads,
) -> Result<(Percentiles, f64)> {
    use futures_lite::StreamExt;
    let queue = "bench-compare-latency";
    let channel = amqp_publisher(conn, queue).await?;
    let mut consumer = amqp_consumer(conn, queue).await?;
    let base = Instant::now();
    let warmed = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let expected = Arc::new(AtomicU64::new(u64::MAX));
    let mut recorder = Recorder::new(base, Arc::clone(&warmed))?;
    let reader = {
        let (stop, expected) = (Arc::clone(&stop), Arc::clone(&expected));
        tokio::spawn(async move {
            let mut since_ack = 0u64;
            while !stop.load(Ordering::Relaxed)
                && recorder.received < expected.load(Ordering::Relaxed)
            {
                let Ok(next) =
                    tokio::time::timeout(Duration::from_millis(100), consumer.next()).await
                else {
                    continue;
                };
                let delivery = next.ok_or("latency: the consumer was cancelled")??;
                recorder.record(&delivery.data);
                since_ack += 1;
                if since_ack >= AMQP_ACK_EVERY
                    || recorder.received >= expected.load(Ordering::Relaxed)
                {
                    amqp_ack(&delivery).await?;
                    since_ack = 0;
                }
            }
            Ok::<_, super::Error>(recorder)
        })
    };
    let (sent, seconds) = paced(workload, base, &warmed, |i, due_ns| {
        let channel = channel.clone();
        let value = stamped(payloads, i, due_ns);
        async move { amqp_confirmed(amqp_publish(&channel, queue, &value).await?).await }
    })
    .await?;
    expected.store(sent, Ordering::Relaxed);
    let recorder = drained(reader, &stop).await?;
    latency_figures(&recorder, sent, seconds)
}

// ---- The report.

/// A figure with its ratio to the reference, as `12345 (0.52x)`.
fn with_ratio(figure: String, ratio: Option<f64>) -> String {
    match ratio {
        Some(r) => format!("{figure} ({r:.2}x)"),
        None => figure,
    }
}

fn render(report: &Report) -> String {
    let w = &report.workload;
    let mut out = format!(
        "Comparison on loopback: produce and consume {} messages of {} B (one client each), \
         latency at {:.0} msgs/s for {:.1} s\n",
        w.messages, w.size_bytes, w.latency_rate, w.latency_duration_s
    );
    let mut t = table(
        &[
            "system",
            "durability",
            "produce msgs/s",
            "produce MB/s",
            "consume msgs/s",
            "p50",
            "p99",
            "p99.9",
            "server CPU s",
        ],
        2,
    );
    for row in &report.systems {
        match (&row.figures, row.status) {
            (Some(f), Status::Measured) => {
                let r = row.ratios;
                t.add_row(vec![
                    row.system.clone(),
                    row.durability.clone(),
                    with_ratio(
                        fmt_rate(f.produce_msgs_per_s),
                        r.map(|r| r.produce_msgs_per_s),
                    ),
                    with_ratio(
                        format!("{:.1}", f.produce_mb_per_s),
                        r.map(|r| r.produce_mb_per_s),
                    ),
                    with_ratio(
                        fmt_rate(f.consume_msgs_per_s),
                        r.map(|r| r.consume_msgs_per_s),
                    ),
                    with_ratio(fmt_latency(f.latency_p50_us), r.map(|r| r.latency_p50_us)),
                    with_ratio(fmt_latency(f.latency_p99_us), r.map(|r| r.latency_p99_us)),
                    with_ratio(
                        fmt_latency(f.latency_p99_9_us),
                        r.map(|r| r.latency_p99_9_us),
                    ),
                    format!("{:.2}", f.server_cpu_s),
                ]);
            }
            _ => {
                let status = match row.status {
                    Status::Failed => "failed",
                    _ => "skipped",
                };
                t.add_row(vec![
                    row.system.clone(),
                    row.durability.clone(),
                    format!("{status} (below)"),
                ]);
            }
        }
    }
    out.push_str(&t.to_string());
    out.push('\n');
    let raw = &report.raw;
    out.push_str(&format!(
        "Raw limits in the same run ({}, {}; 1 MiB writes): disk write {:.1} MB/s, \
         write+fdatasync {:.1} MB/s ({:.0} fdatasyncs/s), loopback TCP {:.0} MB/s\n",
        raw.directory,
        raw.filesystem,
        raw.disk_write_mb_per_s,
        raw.disk_write_fdatasync_mb_per_s,
        raw.disk_fdatasyncs_per_s,
        raw.loopback_mb_per_s
    ));
    for row in &report.systems {
        out.push_str(&format!("{}: {}", row.system, row.client));
        if let Some(reason) = &row.reason {
            let status = match row.status {
                Status::Failed => "failed",
                _ => "skipped",
            };
            out.push_str(&format!("; {status}: {reason}"));
        }
        out.push('\n');
    }
    match &report.reference {
        Some(name) => out.push_str(&format!(
            "(Nx): the figure over {name}'s; for latencies above 1 is slower. \
             Latency: scheduled send to read, coordinated omission corrected. MB = 10^6 value \
             bytes\n"
        )),
        None => out.push_str("no Basalt row was measured: no ratios\n"),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(scale: f64) -> Figures {
        Figures {
            produce_msgs_per_s: 100_000.0 * scale,
            produce_mb_per_s: 10.0 * scale,
            consume_msgs_per_s: 200_000.0 * scale,
            latency_p50_us: 1000.0 * scale,
            latency_p99_us: 2000.0 * scale,
            latency_p99_9_us: 4000.0 * scale,
            latency_achieved_rate: 1000.0,
            server_cpu_s: 1.5,
        }
    }

    fn row(system: System, status: Status, figures: Option<Figures>) -> Row {
        Row {
            system: system.name().to_owned(),
            durability: system.durability().to_owned(),
            client: system.client().to_owned(),
            status,
            reason: (status != Status::Measured).then(|| "not installed".to_owned()),
            figures,
            ratios: None,
        }
    }

    #[test]
    fn ratios_are_taken_against_basalt_always_and_shown_in_the_table() {
        let mut rows = vec![
            row(System::BasaltOs, Status::Measured, Some(figures(2.0))),
            row(System::BasaltAlways, Status::Measured, Some(figures(1.0))),
            row(System::RedisAlways, Status::Measured, Some(figures(0.5))),
            row(System::Rabbitmq, Status::Skipped, None),
        ];
        assert_eq!(add_ratios(&mut rows).as_deref(), Some("basalt-always"));
        let always = rows[1].ratios.unwrap();
        assert_eq!(always.produce_msgs_per_s, 1.0);
        assert_eq!(always.latency_p99_9_us, 1.0);
        let os = rows[0].ratios.unwrap();
        assert_eq!(os.produce_mb_per_s, 2.0);
        assert_eq!(os.latency_p50_us, 2.0);
        let redis = rows[2].ratios.unwrap();
        assert_eq!(redis.consume_msgs_per_s, 0.5);
        assert_eq!(redis.latency_p99_us, 0.5);
        assert!(rows[3].ratios.is_none());

        let report = Report {
            workload: Workload {
                messages: 10,
                size_bytes: 100,
                latency_rate: 100.0,
                latency_duration_s: 1.0,
            },
            reference: Some("basalt-always".to_owned()),
            raw: RawLimits {
                directory: "/tmp/x".to_owned(),
                filesystem: "ext4 on /dev/vda".to_owned(),
                chunk_bytes: 1 << 20,
                disk_write_mb_per_s: 1000.0,
                disk_write_fdatasync_mb_per_s: 100.0,
                disk_fdatasyncs_per_s: 100.0,
                loopback_mb_per_s: 5000.0,
            },
            systems: rows,
        };
        let text = render(&report);
        assert!(text.contains("100000 (1.00x)"), "{text}");
        assert!(text.contains("50000 (0.50x)"), "{text}");
        assert!(
            text.contains("2.00 ms (0.50x)") || text.contains("1000 us"),
            "{text}"
        );
        assert!(text.contains("skipped (below)"), "{text}");
        assert!(
            text.contains("server CPU s") && text.contains("1.50"),
            "{text}"
        );
        assert!(text.contains("rabbitmq: AMQP"), "{text}");
        assert!(text.contains("; skipped: not installed"), "{text}");
        assert!(text.contains("loopback TCP 5000 MB/s"), "{text}");
    }

    #[test]
    fn without_a_basalt_row_there_are_no_ratios() {
        let mut rows = vec![
            row(System::BasaltAlways, Status::Failed, None),
            row(System::RedisAlways, Status::Measured, Some(figures(1.0))),
        ];
        assert_eq!(add_ratios(&mut rows), None);
        assert!(rows.iter().all(|r| r.ratios.is_none()));
        let mut rows = vec![
            row(System::BasaltOs, Status::Measured, Some(figures(4.0))),
            row(System::RedisAlways, Status::Measured, Some(figures(1.0))),
        ];
        assert_eq!(add_ratios(&mut rows).as_deref(), Some("basalt-os"));
        assert_eq!(rows[1].ratios.unwrap().produce_msgs_per_s, 0.25);
    }

    #[test]
    fn systems_are_chosen_once_in_order_and_basalt_means_both_rows() {
        let chosen = System::chosen(&[Choice::RedisAlways, Choice::Basalt, Choice::BasaltOs]);
        assert_eq!(
            chosen,
            [System::RedisAlways, System::BasaltAlways, System::BasaltOs]
        );
    }

    #[test]
    fn a_system_that_exits_before_serving_is_reported_with_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("fake-redis");
        fs::write(
            &script,
            "#!/bin/sh\necho \"cannot open the AOF\" >&2\nexit 3\n",
        )
        .unwrap();
        let mut permissions = fs::metadata(&script).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
        fs::set_permissions(&script, permissions).unwrap();
        let work = dir.path().join("redis");
        fs::create_dir(&work).unwrap();
        let err = Server::start(System::RedisAlways, &script, &work)
            .err()
            .expect("it never serves")
            .to_string();
        assert!(err.contains("exited with"), "{err}");
        assert!(err.contains("cannot open the AOF"), "{err}");
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

    #[test]
    fn stamped_values_give_their_due_time_back() {
        let payloads = Payloads::new(32);
        let base = Instant::now();
        let mut recorder = Recorder::new(base, Arc::new(AtomicBool::new(false))).unwrap();
        recorder.record(&stamped(&payloads, 3, WARM_UP));
        assert!(recorder.warmed.load(Ordering::Relaxed));
        assert_eq!(recorder.received, 0);
        recorder.record(&stamped(&payloads, 4, 1));
        assert_eq!(recorder.received, 1);
        assert!(recorder.histogram.max() > 0);
        recorder.record(b"short");
        assert_eq!(recorder.received, 1);
    }
}
