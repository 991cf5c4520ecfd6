//! `basalt bench replication`: what replicating every partition to three nodes costs a producer,
//! as RF=3 over RF=1 figures measured in the same run, on the same three-node cluster.
//!
//! This module owns the three-node cluster of the bench (three `serve` processes of this very
//! binary on loopback, each with its own data directory inside the scratch directory, started
//! together, waited for until each logs that it serves and the metadata lists three brokers,
//! stopped with SIGTERM and killed if they linger or on drop), the two topics (`bench-rf1` with
//! one replica per partition, `bench-rf3` with three, which gets `min.insync.replicas=2`), the
//! runs, their medians and ratios, and the report. The workloads themselves are the code of
//! `bench produce` and `bench latency` ([`produce::measure`], [`latency::measure`]), acks=all.
//!
//! # Keeping it honest
//! - Both topics live on the same cluster, and each run measures RF=1 then RF=3, so drift of
//!   the machine (page cache, another process) falls on both rows alike.
//! - The RF=3 runs start only once every partition of `bench-rf3` has three in-sync replicas in
//!   the metadata; a cluster that refuses replication factor 3 fails the bench with the
//!   broker's error, and no figure is printed.
//! - Broker CPU seconds are the sum over the three node processes (`/proc/<pid>/stat`) over each
//!   workload (for latency, its connection setup and warm-up message included), beside this
//!   process's own (the clients): all of them share the machine's cores, so the ratio is one of
//!   CPU as much as of replication.

use std::fs::{self, File};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Args;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::metadata::Metadata;
use rdkafka::types::RDKafkaErrorCode;
use serde::Serialize;

use super::Result;
use super::disk::{WorkDir, filesystem_of};
use super::kafka::{ADMIN_TIMEOUT, Acks, Compression, ProducerSettings, Target};
use super::latency::{self, LatencyArgs};
use super::output::{emit, fmt_latency, fmt_rate, fmt_size, table};
use super::process;
use super::produce::{self, ProduceArgs};

/// Nodes of the cluster.
const NODES: usize = 3;
/// Longest wait for the nodes to serve, for the metadata to list them, and for the replicas of
/// the RF=3 topic to be in sync.
const CLUSTER_TIMEOUT: Duration = Duration::from_secs(90);
/// Longest wait for a node to stop after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// The line `basalt serve` logs once it accepts connections; its `listen=` field is the address.
const SERVING: &str = "basalt is serving the Kafka protocol";
/// The nodes' log filter: warnings, and the line that says a node serves.
const NODE_LOG_FILTER: &str = "warn,basalt::serve=info";

/// Options of `basalt bench replication`.
#[derive(Debug, Args)]
pub(crate) struct ReplicationArgs {
    /// Messages of each produce run, acks=all.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    messages: u64,
    /// Bytes of each message's value (produce and latency; at least 16, the latency stamp).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(16..=(1 << 20)))]
    size: u64,
    /// Partitions of each of the two topics.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(i32).range(1..=1000))]
    partitions: i32,
    /// Messages per second of the latency runs.
    #[arg(long, default_value_t = 10_000.0, value_parser = parse_positive)]
    rate: f64,
    /// Seconds of each latency run.
    #[arg(long, default_value_t = 10.0, value_parser = parse_positive)]
    duration: f64,
    /// Times each workload runs on each topic; the table shows the medians.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=99))]
    runs: u32,
    /// Directory on the data disk: the three nodes' data directories go into a new
    /// `basalt-bench-<pid>` directory inside it, removed afterwards [default: the system's
    /// temporary directory].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Print every run and the medians as one JSON document on stdout instead of a table.
    #[arg(long)]
    json: bool,
}

fn parse_positive(s: &str) -> std::result::Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 1e9 => Ok(v),
        _ => Err(format!("{s:?} is not a positive number")),
    }
}

// ---- The cluster.

/// One `basalt serve` process of the cluster, its log in a file of its own.
struct Node {
    id: usize,
    child: Option<Child>,
    log: PathBuf,
}

impl Node {
    /// Starts node `id` listening on a port of its own choosing, its data in `dir/data`.
    fn spawn(program: &Path, id: usize, voters: &str, dir: &Path) -> Result<Node> {
        let data = dir.join("data");
        fs::create_dir_all(&data)?;
        let log = dir.join("node.log");
        let file = File::create(&log)?;
        let child = Command::new(program)
            .current_dir(dir)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .args(["--node-id", &id.to_string()])
            .args(["--controller.quorum.voters", voters])
            .env("RUST_LOG", NODE_LOG_FILTER)
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .map_err(|e| format!("start node {id} ({}): {e}", program.display()))?;
        Ok(Node {
            id,
            child: Some(child),
            log,
        })
    }

    fn pid(&self) -> Result<u32> {
        Ok(self.child.as_ref().ok_or("not running")?.id())
    }

    /// Fails, with the end of its log, if the node exited.
    fn check_running(&mut self) -> Result<()> {
        if let Some(child) = self.child.as_mut()
            && let Some(status) = child.try_wait()?
        {
            return Err(
                format!("node {} exited with {status}: {}", self.id, self.log_tail()).into(),
            );
        }
        Ok(())
    }

    /// The address of the serving line in the node's log, once it is there.
    fn serving_address(&self) -> Option<SocketAddr> {
        let log = fs::read_to_string(&self.log).ok()?;
        log.lines()
            .filter(|line| line.contains(SERVING))
            .find_map(listen_address)
    }

    /// The last lines of the node's log, for an error message.
    fn log_tail(&self) -> String {
        let log = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().rev().take(5).collect();
        let tail: Vec<&str> = lines.into_iter().rev().collect();
        if tail.is_empty() {
            "(nothing logged)".to_owned()
        } else {
            tail.join(" | ")
        }
    }

    fn send_sigterm(&self) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }

    /// Waits until `deadline` for the node to exit, then kills it.
    fn reap(&mut self, deadline: Instant) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        tracing::warn!(node = self.id, "did not stop after SIGTERM: killed");
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// The `listen=HOST:PORT` field of the serving log line.
fn listen_address(line: &str) -> Option<SocketAddr> {
    let rest = &line[line.find("listen=")? + "listen=".len()..];
    rest.split_whitespace()
        .next()?
        .trim_matches('"')
        .parse()
        .ok()
}

/// A loopback port nobody listens on now.
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Three nodes forming one metadata quorum, each serving the Kafka protocol.
struct Cluster {
    nodes: Vec<Node>,
    /// `bootstrap.servers`: every node's address.
    brokers: String,
}

impl Cluster {
    /// Starts the nodes together (a quorum needs two of them to elect a leader) with their data
    /// in `work`, and waits until each serves and the metadata lists all of them.
    fn start(work: &WorkDir) -> Result<Cluster> {
        let program = std::env::current_exe()
            .map_err(|e| format!("find this program to start the nodes: {e}"))?;
        let voters = (1..=NODES)
            .map(|id| Ok(format!("{id}@127.0.0.1:{}", free_port()?)))
            .collect::<Result<Vec<_>>>()?
            .join(",");
        let mut cluster = Cluster {
            nodes: Vec::new(),
            brokers: String::new(),
        };
        for id in 1..=NODES {
            let dir = work.case_dir(&format!("node-{id}"))?;
            cluster
                .nodes
                .push(Node::spawn(&program, id, &voters, &dir)?);
        }
        let deadline = Instant::now() + CLUSTER_TIMEOUT;
        let mut addresses = vec![None; NODES];
        while addresses.iter().any(Option::is_none) {
            cluster.check_running()?;
            for (node, address) in cluster.nodes.iter().zip(&mut addresses) {
                if address.is_none() {
                    *address = node.serving_address();
                }
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "not every node served within {} s: {}",
                    CLUSTER_TIMEOUT.as_secs(),
                    cluster.log_tails()
                )
                .into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        cluster.brokers = addresses
            .iter()
            .flatten()
            .map(SocketAddr::to_string)
            .collect::<Vec<_>>()
            .join(",");
        cluster.wait_for(deadline, "the metadata to list 3 brokers", |metadata| {
            metadata.brokers().len() >= NODES
        })?;
        tracing::info!(brokers = %cluster.brokers, "the cluster serves");
        Ok(cluster)
    }

    fn check_running(&mut self) -> Result<()> {
        self.nodes.iter_mut().try_for_each(Node::check_running)
    }

    fn log_tails(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("node {}: {}", n.id, n.log_tail()))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// User plus system CPU seconds of the three node processes now.
    fn cpu_seconds(&self) -> Result<f64> {
        self.nodes
            .iter()
            .map(|n| process::tree_cpu_seconds(n.pid()?))
            .sum()
    }

    fn metadata_client(&self) -> Result<BaseConsumer> {
        let mut config = rdkafka::ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("allow.auto.create.topics", "false");
        config
            .create()
            .map_err(|e| format!("create a metadata client for {}: {e}", self.brokers).into())
    }

    /// Polls the cluster's metadata until `ready` holds, failing at `deadline` or when a node
    /// exits.
    fn wait_for(
        &mut self,
        deadline: Instant,
        what: &str,
        mut ready: impl FnMut(&Metadata) -> bool,
    ) -> Result<()> {
        let client = self.metadata_client()?;
        let mut last_error = String::new();
        loop {
            self.check_running()?;
            match client.fetch_metadata(None, Duration::from_secs(5)) {
                Ok(metadata) if ready(&metadata) => return Ok(()),
                Ok(_) => last_error.clear(),
                Err(err) => last_error = format!(" (last metadata error: {err})"),
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "waited {} s for {what}{last_error}: {}",
                    CLUSTER_TIMEOUT.as_secs(),
                    self.log_tails()
                )
                .into());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Creates `topic` with `partitions` partitions of `replicas` replicas each, and waits until
    /// every partition has a leader and `replicas` in-sync replicas.
    fn create_topic(&mut self, topic: &str, partitions: i32, replicas: i32) -> Result<()> {
        let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .create()
            .map_err(|e| format!("create an admin client for {}: {e}", self.brokers))?;
        let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(replicas));
        let options = AdminOptions::new()
            .request_timeout(Some(ADMIN_TIMEOUT))
            .operation_timeout(Some(ADMIN_TIMEOUT));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let results = runtime
            .block_on(admin.create_topics(&[new], &options))
            .map_err(|e| format!("create topic {topic}: {e}"))?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, RDKafkaErrorCode::InvalidReplicationFactor)) => {
                    return Err(format!(
                        "create topic {name} with replication factor {replicas}: the cluster \
                         answered INVALID_REPLICATION_FACTOR, so this build of Basalt does not \
                         replicate partitions to {replicas} nodes; nothing was measured"
                    )
                    .into());
                }
                Err((name, code)) => {
                    return Err(format!(
                        "create topic {name} with replication factor {replicas}: {code}"
                    )
                    .into());
                }
            }
        }
        let deadline = Instant::now() + CLUSTER_TIMEOUT;
        let what =
            format!("every partition of {topic} to have a leader and {replicas} in-sync replicas");
        self.wait_for(deadline, &what, |metadata| {
            in_sync(metadata, topic, partitions, replicas)
        })
    }

    /// SIGTERM to every node at once, then waits for each (and kills what lingers).
    fn stop(mut self) {
        self.stop_nodes();
    }

    fn stop_nodes(&mut self) {
        for node in &self.nodes {
            node.send_sigterm();
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        for node in &mut self.nodes {
            node.reap(deadline);
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop_nodes();
    }
}

/// Whether the metadata describes `topic` with `partitions` partitions, each with a leader,
/// `replicas` replicas and as many in sync.
fn in_sync(metadata: &Metadata, topic: &str, partitions: i32, replicas: i32) -> bool {
    let replicas = replicas as usize;
    metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .is_some_and(|t| {
            t.error().is_none()
                && t.partitions().len() == partitions as usize
                && t.partitions().iter().all(|p| {
                    p.error().is_none()
                        && p.leader() >= 0
                        && p.replicas().len() == replicas
                        && p.isr().len() == replicas
                })
        })
}

// ---- The runs.

/// The figures of one run of both workloads on one topic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
struct Figures {
    /// Produce: acknowledged messages per second, first send to last acknowledgement.
    msgs_per_s: f64,
    /// Produce: 10^6 value bytes per second.
    mb_per_s: f64,
    /// Produce: CPU seconds of the three nodes together over the timed produce.
    produce_broker_cpu_s: f64,
    /// Produce: CPU seconds of this process (the producer) over the same time.
    produce_client_cpu_s: f64,
    /// Latency: end-to-end percentiles, coordinated omission corrected.
    p50_us: f64,
    p99_us: f64,
    p99_9_us: f64,
    /// Latency: the rate the producer achieved.
    latency_achieved_rate: f64,
    /// Latency: CPU seconds of the three nodes together over the latency workload, its setup
    /// and warm-up message included.
    latency_broker_cpu_s: f64,
    /// Latency: CPU seconds of this process over the same time.
    latency_client_cpu_s: f64,
}

impl Figures {
    /// Every figure's median over `runs`, each on its own.
    fn median(runs: &[Figures]) -> Figures {
        let of = |f: fn(&Figures) -> f64| median(runs.iter().map(f).collect());
        Figures {
            msgs_per_s: of(|r| r.msgs_per_s),
            mb_per_s: of(|r| r.mb_per_s),
            produce_broker_cpu_s: of(|r| r.produce_broker_cpu_s),
            produce_client_cpu_s: of(|r| r.produce_client_cpu_s),
            p50_us: of(|r| r.p50_us),
            p99_us: of(|r| r.p99_us),
            p99_9_us: of(|r| r.p99_9_us),
            latency_achieved_rate: of(|r| r.latency_achieved_rate),
            latency_broker_cpu_s: of(|r| r.latency_broker_cpu_s),
            latency_client_cpu_s: of(|r| r.latency_client_cpu_s),
        }
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

/// `value / reference`; `None` when the reference is not positive.
fn ratio(value: f64, reference: f64) -> Option<f64> {
    (reference > 0.0).then_some(value / reference)
}

/// One run of both workloads on one topic: the figures and what the workloads reported.
#[derive(Debug, Serialize)]
struct Run {
    run: u32,
    #[serde(flatten)]
    figures: Figures,
    produce: produce::Report,
    latency: latency::Report,
}

/// One topic's runs and their medians.
#[derive(Debug, Serialize)]
struct Row {
    replication_factor: i32,
    topic: String,
    runs: Vec<Run>,
    median: Figures,
}

/// The RF=3 medians over the RF=1 medians.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
struct Ratios {
    /// Produce msgs/s; below 1 means RF=3 is slower.
    throughput: Option<f64>,
    /// Latency p99; above 1 means RF=3 is slower.
    p99: Option<f64>,
}

impl Ratios {
    fn of(rf3: &Figures, rf1: &Figures) -> Ratios {
        Ratios {
            throughput: ratio(rf3.msgs_per_s, rf1.msgs_per_s),
            p99: ratio(rf3.p99_us, rf1.p99_us),
        }
    }
}

/// What `bench replication` reports.
#[derive(Debug, Serialize)]
struct Report {
    /// The cores of this machine, which the three nodes and the client share.
    cores: usize,
    directory: String,
    filesystem: String,
    nodes: usize,
    partitions: i32,
    messages: u64,
    size_bytes: u64,
    acks: &'static str,
    latency_rate: f64,
    latency_duration_s: f64,
    /// What each row's `median` is, over its `runs`.
    statistic: &'static str,
    rows: Vec<Row>,
    rf3_over_rf1: Ratios,
}

/// The topic of each row and its replication factor.
const TOPICS: [(&str, i32); 2] = [("bench-rf1", 1), ("bench-rf3", 3)];

/// Runs the bench and prints its report.
pub(crate) fn run(args: &ReplicationArgs) -> Result<()> {
    let parent = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let work = WorkDir::create(&parent)?;
    let filesystem = filesystem_of(work.path())
        .map(|fs| format!("{} on {}", fs.kind, fs.source))
        .unwrap_or_else(|| "unknown file system".to_owned());
    let mut cluster = Cluster::start(&work)?;
    for (topic, replicas) in TOPICS {
        cluster.create_topic(topic, args.partitions, replicas)?;
        tracing::info!(topic, replicas, "the topic's replicas are in sync");
    }
    let mut rows: Vec<Row> = TOPICS
        .iter()
        .map(|&(topic, replicas)| Row {
            replication_factor: replicas,
            topic: topic.to_owned(),
            runs: Vec::new(),
            median: Figures::default(),
        })
        .collect();
    for run in 1..=args.runs {
        for row in &mut rows {
            tracing::info!(run, topic = %row.topic, "measuring");
            row.runs
                .push(measure_run(args, &mut cluster, &row.topic, run)?);
        }
    }
    cluster.stop();
    for row in &mut rows {
        let figures: Vec<Figures> = row.runs.iter().map(|r| r.figures).collect();
        row.median = Figures::median(&figures);
    }
    let rf3_over_rf1 = Ratios::of(&rows[1].median, &rows[0].median);
    let report = Report {
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        directory: work.path().display().to_string(),
        filesystem,
        nodes: NODES,
        partitions: args.partitions,
        messages: args.messages,
        size_bytes: args.size,
        acks: "all",
        latency_rate: args.rate,
        latency_duration_s: args.duration,
        statistic: "median",
        rows,
        rf3_over_rf1,
    };
    emit(args.json, &report, render)
}

/// One produce and one latency run on `topic`, with the nodes' CPU seconds over each.
fn measure_run(
    args: &ReplicationArgs,
    cluster: &mut Cluster,
    topic: &str,
    run: u32,
) -> Result<Run> {
    let target = Target {
        brokers: cluster.brokers.clone(),
        topic: topic.to_owned(),
        partitions: Some(args.partitions),
        config: Vec::new(),
        broker_pid: None,
        json: args.json,
    };
    let producer = |linger_ms| ProducerSettings {
        acks: Acks::All,
        compression: Compression::None,
        linger_ms,
        batch_size: None,
    };
    cluster.check_running()?;
    let (broker0, client0) = (cluster.cpu_seconds()?, process::own_cpu_seconds()?);
    let produced = produce::measure(&ProduceArgs {
        target: target.clone(),
        producer: producer(None),
        messages: args.messages,
        size: args.size as usize,
        producers: 1,
    })?;
    let (broker1, client1) = (cluster.cpu_seconds()?, process::own_cpu_seconds()?);
    if produced.failed > 0 || produced.acked < args.messages {
        return Err(format!(
            "produce to {topic}: {} of {} messages acknowledged, {} failed; first error: {}",
            produced.acked,
            args.messages,
            produced.failed,
            produced.first_error.as_deref().unwrap_or("none")
        )
        .into());
    }
    cluster.check_running()?;
    let measured = latency::measure(&LatencyArgs {
        target,
        producer: producer(Some(0)),
        rate: args.rate,
        duration: args.duration,
        size: args.size,
    })?;
    let (broker2, client2) = (cluster.cpu_seconds()?, process::own_cpu_seconds()?);
    if measured.failed > 0 || measured.received < measured.sent {
        return Err(format!(
            "latency on {topic}: {} sent, {} failed, {} read back; first error: {}",
            measured.sent,
            measured.failed,
            measured.received,
            measured.first_error.as_deref().unwrap_or("none")
        )
        .into());
    }
    let ticks = |s: f64| (s.max(0.0) * 100.0).round() / 100.0;
    let figures = Figures {
        msgs_per_s: produced.msgs_per_s,
        mb_per_s: produced.mb_per_s,
        produce_broker_cpu_s: ticks(broker1 - broker0),
        produce_client_cpu_s: ticks(client1 - client0),
        p50_us: measured.latency.p50_us,
        p99_us: measured.latency.p99_us,
        p99_9_us: measured.latency.p99_9_us,
        latency_achieved_rate: measured.achieved_rate,
        latency_broker_cpu_s: ticks(broker2 - broker1),
        latency_client_cpu_s: ticks(client2 - client1),
    };
    Ok(Run {
        run,
        figures,
        produce: produced,
        latency: measured,
    })
}

// ---- The report.

/// A ratio as `0.52x`, or `-` without one.
fn fmt_ratio(ratio: Option<f64>) -> String {
    ratio.map_or("-".to_owned(), |r| format!("{r:.2}x"))
}

fn render(report: &Report) -> String {
    let mut out = format!(
        "Replication on {} nodes of this binary on loopback, data in {} ({}): {} partitions per \
         topic, acks=all, flush policy always (fsync before the ack)\n\
         produce: {} messages of {} from 1 producer; latency: {:.0} msgs/s for {:.1} s; \
         medians of {} run(s)\n",
        report.nodes,
        report.directory,
        report.filesystem,
        report.partitions,
        report.messages,
        fmt_size(report.size_bytes as usize),
        report.latency_rate,
        report.latency_duration_s,
        report.rows.first().map_or(0, |r| r.runs.len()),
    );
    let mut t = table(
        &[
            "topic",
            "msgs/s",
            "MB/s",
            "p50",
            "p99",
            "p99.9",
            "broker CPU-s produce",
            "broker CPU-s latency",
            "RF=3/RF=1 msgs/s",
            "RF=3/RF=1 p99",
        ],
        1,
    );
    for row in &report.rows {
        let m = &row.median;
        let (throughput, p99) = if row.replication_factor == 1 {
            ("1.00x (ref)".to_owned(), "1.00x (ref)".to_owned())
        } else {
            (
                fmt_ratio(report.rf3_over_rf1.throughput),
                fmt_ratio(report.rf3_over_rf1.p99),
            )
        };
        t.add_row(vec![
            format!("RF={} ({})", row.replication_factor, row.topic),
            fmt_rate(m.msgs_per_s),
            format!("{:.1}", m.mb_per_s),
            fmt_latency(m.p50_us),
            fmt_latency(m.p99_us),
            fmt_latency(m.p99_9_us),
            format!("{:.2}", m.produce_broker_cpu_s),
            format!("{:.2}", m.latency_broker_cpu_s),
            throughput,
            p99,
        ]);
    }
    out.push_str(&t.to_string());
    out.push('\n');
    for row in &report.rows {
        let m = &row.median;
        out.push_str(&format!(
            "RF={}: client CPU-s {:.2} (produce), {:.2} (latency); latency achieved {:.0} msgs/s\n",
            row.replication_factor,
            m.produce_client_cpu_s,
            m.latency_client_cpu_s,
            m.latency_achieved_rate,
        ));
    }
    out.push_str(&format!(
        "machine: {} core(s), shared by all {} nodes and the client, so RF=3 (every batch \
         also fetched and written by two followers) competes for the same CPU and disk as the \
         client; the ratio is bound by this machine, not by the network\n",
        report.cores, report.nodes,
    ));
    out.push_str(
        "broker CPU-s: user+system of the 3 node processes together, over the produce and \
         over the whole latency workload (its setup and warm-up included); MB = 10^6 value \
         bytes; latency from the scheduled send time to the read (coordinated omission \
         corrected)\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_take_the_middle_and_ratios_need_a_reference() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(Vec::new()), 0.0);
        assert_eq!(ratio(1.0, 4.0), Some(0.25));
        assert_eq!(ratio(1.0, 0.0), None);
        assert_eq!(fmt_ratio(Some(0.456)), "0.46x");
        assert_eq!(fmt_ratio(None), "-");
    }

    #[test]
    fn the_ratio_is_rf3_medians_over_rf1_medians() {
        let run = |msgs_per_s, p99_us| Figures {
            msgs_per_s,
            p99_us,
            ..Figures::default()
        };
        let rf1 = Figures::median(&[run(900.0, 10.0), run(1000.0, 30.0), run(1100.0, 20.0)]);
        let rf3 = Figures::median(&[run(500.0, 60.0), run(400.0, 40.0), run(450.0, 50.0)]);
        let ratios = Ratios::of(&rf3, &rf1);
        assert_eq!(ratios.throughput, Some(0.45));
        assert_eq!(ratios.p99, Some(2.5));
    }

    #[test]
    fn the_serving_line_gives_the_address() {
        let line = "2026-01-01T00:00:00.000000Z  INFO basalt::serve: basalt is serving the Kafka \
                    protocol listen=127.0.0.1:40123 data_dir=/tmp/x flush_policy=always";
        assert_eq!(
            listen_address(line),
            Some("127.0.0.1:40123".parse().unwrap())
        );
        assert_eq!(listen_address("no address here"), None);
    }
}
