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

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use serde::Serialize;

use super::consume::{self, ConsumeArgs};
use super::disk::{self, WorkDir};
use super::kafka::{Acks, Compression, ProducerSettings, Target};
use super::latency::{self, LatencyArgs};
use super::load::Budget;
use super::output::{emit, fmt_latency, fmt_rate, table};
use super::peers::{amqp_workloads, redis_workloads};
use super::produce::{self, ProduceArgs};
use super::systems::{Choice, Server, System, install_system, runtime};
use super::{Result, loopback};

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

/// The workloads' sizes.
#[derive(Debug, Clone, Copy, Serialize)]
pub(super) struct Workload {
    pub(super) messages: u64,
    pub(super) size_bytes: u64,
    pub(super) latency_rate: f64,
    pub(super) latency_duration_s: f64,
}

/// What one system measured.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(super) struct Figures {
    pub(super) produce_msgs_per_s: f64,
    pub(super) produce_mb_per_s: f64,
    pub(super) consume_msgs_per_s: f64,
    pub(super) latency_p50_us: f64,
    pub(super) latency_p99_us: f64,
    pub(super) latency_p99_9_us: f64,
    /// Messages per second the latency producer achieved (the rate asked, unless it fell
    /// behind).
    pub(super) latency_achieved_rate: f64,
    /// CPU seconds (user and system) the system's processes spent over the three workloads.
    pub(super) server_cpu_s: f64,
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
