//! `basalt bench partitions`: many partitions created and served, and what that costs the
//! broker in memory and time.
//!
//! The bench creates `--count` partitions (over `--topics` topics, in one CreateTopics request),
//! waits until the broker's metadata describes every one of them with a leader, produces one
//! message to each (acks=all) and fetches every one back with a consumer assigned all of them
//! from the beginning, so every partition was written and read. It times each step and reads the
//! broker's resident set before, after creation and after serving, and its `VmHWM`.
//!
//! The broker is a Basalt started here from this very binary (`serve`, data in a new directory
//! inside `--dir`, removed afterwards), or any Kafka-protocol broker given with `--brokers`,
//! whose memory is read if `--broker-pid` names its process. A step that fails or runs out of
//! `--timeout` ends the bench after the report of the steps done so far is printed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;

use super::Result;
use super::disk::{self, WorkDir};
use super::kafka::{Acks, Compression, Payloads, ProducerSettings, Target};
use super::output::{emit, table};
use super::process;
use super::produce::Deliveries;
use super::systems::{Server, System};

/// How often the metadata is asked for while the partitions are being created.
const METADATA_POLL: Duration = Duration::from_millis(200);

/// Options of `basalt bench partitions`.
#[derive(Debug, Args)]
pub(crate) struct PartitionsArgs {
    /// Partitions to create and serve, all topics together.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    count: u32,
    /// Topics the partitions are spread over, as evenly as they go.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    topics: u32,
    /// Bootstrap address of a running Kafka-protocol broker; without it, a Basalt broker is
    /// started here from this binary, with its data in --dir.
    #[arg(long)]
    brokers: Option<String>,
    /// Process id of the --brokers broker when it runs on this machine: its memory and CPU
    /// seconds are reported.
    #[arg(long, value_name = "PID", requires = "brokers")]
    broker_pid: Option<u32>,
    /// `log.flush.policy` of the Basalt broker started here.
    #[arg(long, value_enum, default_value_t = FlushPolicy::Always)]
    flush_policy: FlushPolicy,
    /// Bytes of the one message produced to each partition.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=(1 << 20)))]
    size: u64,
    /// Longest time each step (creation, produce, fetch) may take.
    #[arg(long, default_value_t = 600, value_name = "SECONDS")]
    timeout: u64,
    /// Directory on the data disk for the broker started here: a new `basalt-bench-<pid>`
    /// directory inside it, removed afterwards.
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Print the report as one JSON document on stdout instead of a table.
    #[arg(long)]
    json: bool,
}

/// What the bench does: `count` partitions over `topics` topics, one message of `size` bytes to
/// each, every step within `timeout`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Plan {
    pub(super) count: u32,
    pub(super) topics: u32,
    pub(super) size: u64,
    pub(super) timeout: Duration,
}

/// The flush policy of the broker the bench starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum FlushPolicy {
    Always,
    Os,
}

/// The broker's memory and CPU, where its process is known.
#[derive(Debug, Clone, Default, Serialize)]
pub(super) struct Memory {
    pid: u32,
    /// Before the topics were created.
    rss_before_bytes: u64,
    /// Once every partition was described.
    #[serde(skip_serializing_if = "Option::is_none")]
    rss_created_bytes: Option<u64>,
    /// Once every partition was written and read back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) rss_served_bytes: Option<u64>,
    /// The kernel's peak resident set over the broker's life, at the end.
    vm_hwm_bytes: u64,
    /// CPU seconds (user and system) the broker spent over the bench.
    cpu_s: f64,
}

/// What `bench partitions` reports.
#[derive(Debug, Clone, Default, Serialize)]
pub(super) struct Report {
    brokers: String,
    /// Which broker: started here, or given.
    broker: String,
    topics: u32,
    /// Partitions asked for, all topics together.
    pub(super) partitions: u32,
    /// Partitions the metadata described with a leader.
    described: u32,
    /// Messages acknowledged, one per partition.
    produced: u64,
    failed: u64,
    /// Messages fetched back, and from how many partitions.
    fetched: u64,
    pub(super) fetched_partitions: u32,
    /// From the CreateTopics request to its answer.
    create_s: f64,
    /// From the CreateTopics request until the metadata described every partition.
    ready_s: f64,
    /// From the first send to the last acknowledgement.
    produce_s: f64,
    /// From the assignment to the last partition's message.
    fetch_s: f64,
    pub(super) total_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) memory: Option<Memory>,
    /// The step that failed, and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) error: Option<String>,
}

/// Runs the bench and prints its report.
pub(crate) fn run(args: &PartitionsArgs) -> Result<()> {
    let plan = Plan {
        count: args.count,
        topics: args.topics,
        size: args.size,
        timeout: Duration::from_secs(args.timeout),
    };
    let report = match &args.brokers {
        Some(brokers) => {
            let mut report = measure(plan, brokers, args.broker_pid);
            report.broker = "given with --brokers".to_owned();
            report
        }
        None => {
            let system = match args.flush_policy {
                FlushPolicy::Always => System::BasaltAlways,
                FlushPolicy::Os => System::BasaltOs,
            };
            let program = system.program().ok_or("this binary's path is unknown")?;
            let work = WorkDir::create(&args.dir)?;
            let dir = work.case_dir(system.name())?;
            let report = measure_started(system, &program, &dir, plan);
            disk::remove_case_dir(&dir)?;
            report?
        }
    };
    emit(args.json, &report, render)?;
    match &report.error {
        Some(err) => Err(err.clone().into()),
        None => Ok(()),
    }
}

/// Starts `system` from `program` with its data in `dir`, measures it and stops it.
pub(super) fn measure_started(
    system: System,
    program: &Path,
    dir: &Path,
    plan: Plan,
) -> Result<Report> {
    let mut server = Server::start(system, program, dir)?;
    let mut report = measure(plan, &server.address(), Some(server.pid()?));
    if report.error.is_some()
        && let Err(err) = server.check_running()
    {
        report.error = Some(err.to_string());
    }
    report.broker = format!("{} started here: {}", system.name(), system.durability());
    server.stop();
    Ok(report)
}

/// The names of the topics and their partition counts: `count` spread over `topics`.
fn layout(count: u32, topics: u32) -> Vec<(String, i32)> {
    let run: u32 = rand::random();
    let topics = topics.min(count).max(1);
    (0..topics)
        .map(|k| {
            let share = count / topics + u32::from(k < count % topics);
            (format!("bench-partitions-{run:08x}-{k}"), share as i32)
        })
        .collect()
}

/// The steps, each timed; the report holds what was done when one fails.
fn measure(plan: Plan, brokers: &str, pid: Option<u32>) -> Report {
    let topics = layout(plan.count, plan.topics);
    let mut report = Report {
        brokers: brokers.to_owned(),
        topics: topics.len() as u32,
        partitions: plan.count,
        ..Report::default()
    };
    let cpu_before = pid.map(process::tree_cpu_seconds).transpose();
    let rss = |key| pid.map(|pid| process::status_bytes(pid, key)).transpose();
    let before = rss("VmRSS:");
    let start = Instant::now();
    let result = (|| -> Result<()> {
        let (cpu_before, before) = (cpu_before?, before?);
        if let (Some(pid), Some(rss_before_bytes)) = (pid, before) {
            report.memory = Some(Memory {
                pid,
                rss_before_bytes,
                ..Memory::default()
            });
        }
        let timeout = plan.timeout;
        let target = Target {
            brokers: brokers.to_owned(),
            topic: topics[0].0.clone(),
            partitions: None,
            config: Vec::new(),
            broker_pid: pid,
            json: true,
        };
        create(&target, &topics, timeout, &mut report)?;
        let created = rss("VmRSS:")?;
        if let Some(memory) = report.memory.as_mut() {
            memory.rss_created_bytes = created;
        }
        produce(&target, &topics, plan.size, timeout, &mut report)?;
        fetch(&target, &topics, timeout, &mut report)?;
        let served = rss("VmRSS:")?;
        if let Some(memory) = report.memory.as_mut() {
            memory.rss_served_bytes = served;
        }
        if let (Some(pid), Some(cpu_before)) = (pid, cpu_before)
            && let Some(memory) = report.memory.as_mut()
        {
            memory.cpu_s = (process::tree_cpu_seconds(pid)? - cpu_before).max(0.0);
        }
        Ok(())
    })();
    report.total_s = start.elapsed().as_secs_f64();
    if let Some(memory) = report.memory.as_mut()
        && let Ok(Some(hwm)) = rss("VmHWM:")
    {
        memory.vm_hwm_bytes = hwm;
    }
    if let Err(err) = result {
        report.error = Some(err.to_string());
    }
    report
}

/// Creates the topics in one request and waits until the metadata describes every partition
/// with a leader.
fn create(
    target: &Target,
    topics: &[(String, i32)],
    timeout: Duration,
    report: &mut Report,
) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = target
        .client_config()
        .create()
        .map_err(|e| format!("create an admin client for {}: {e}", target.brokers))?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|(name, partitions)| NewTopic::new(name, *partitions, TopicReplication::Fixed(1)))
        .collect();
    let options = AdminOptions::new()
        .request_timeout(Some(timeout))
        .operation_timeout(Some(timeout));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let start = Instant::now();
    let results = runtime
        .block_on(admin.create_topics(&new, &options))
        .map_err(|e| format!("create the topics: {e}"))?;
    report.create_s = start.elapsed().as_secs_f64();
    for result in results {
        if let Err((name, code)) = result {
            return Err(format!("create topic {name}: {code}").into());
        }
    }
    tracing::info!(
        topics = topics.len(),
        partitions = report.partitions,
        seconds = report.create_s,
        "created"
    );
    let consumer = target.consumer()?;
    let deadline = start + timeout;
    loop {
        report.described = described(&consumer, topics)?;
        report.ready_s = start.elapsed().as_secs_f64();
        if report.described >= report.partitions {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "{} of {} partitions described within {} s",
                report.described,
                report.partitions,
                timeout.as_secs()
            )
            .into());
        }
        std::thread::sleep(METADATA_POLL);
    }
}

/// Partitions of `topics` the metadata describes with a leader now.
fn described(consumer: &BaseConsumer, topics: &[(String, i32)]) -> Result<u32> {
    let mut count = 0;
    for (name, _) in topics {
        let metadata = consumer
            .fetch_metadata(Some(name), Duration::from_secs(30))
            .map_err(|e| format!("metadata of {name}: {e}"))?;
        for topic in metadata.topics().iter().filter(|t| t.name() == name) {
            if topic.error().is_none() {
                count += topic
                    .partitions()
                    .iter()
                    .filter(|p| p.error().is_none() && p.leader() >= 0)
                    .count() as u32;
            }
        }
    }
    Ok(count)
}

/// One message to every partition, acks=all, then every delivery report.
fn produce(
    target: &Target,
    topics: &[(String, i32)],
    size: u64,
    timeout: Duration,
    report: &mut Report,
) -> Result<()> {
    let settings = ProducerSettings {
        acks: Acks::All,
        compression: Compression::None,
        linger_ms: None,
        batch_size: None,
    };
    let producer: BaseProducer<Deliveries> = settings
        .apply(target.client_config())
        .create_with_context(Deliveries::default())
        .map_err(|e| format!("create a producer for {}: {e}", target.brokers))?;
    for (name, _) in topics {
        producer
            .client()
            .fetch_metadata(Some(name), Duration::from_secs(30))
            .map_err(|e| format!("metadata of {name}: {e}"))?;
    }
    let payloads = Payloads::new(size as usize);
    let start = Instant::now();
    let mut i = 0u64;
    for (name, partitions) in topics {
        for partition in 0..*partitions {
            let mut record = BaseRecord::<[u8], [u8]>::to(name)
                .partition(partition)
                .payload(payloads.get(i));
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((
                        rdkafka::error::KafkaError::MessageProduction(
                            rdkafka::types::RDKafkaErrorCode::QueueFull,
                        ),
                        back,
                    )) => {
                        record = back;
                        producer.poll(Duration::from_millis(1));
                    }
                    Err((err, _)) => {
                        return Err(format!("send to {name}/{partition}: {err}").into());
                    }
                }
            }
            producer.poll(Duration::ZERO);
            i += 1;
        }
    }
    let flushed = producer.flush(timeout);
    report.produce_s = start.elapsed().as_secs_f64();
    let deliveries = producer.context();
    report.produced = deliveries.acked.load(std::sync::atomic::Ordering::Relaxed);
    report.failed = deliveries.failed.load(std::sync::atomic::Ordering::Relaxed);
    flushed.map_err(|e| format!("wait for delivery reports: {e}"))?;
    if report.failed > 0 {
        let first = deliveries
            .first_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        return Err(format!(
            "{} of {} messages not delivered; first: {}",
            report.failed,
            report.partitions,
            first.as_deref().unwrap_or("?")
        )
        .into());
    }
    Ok(())
}

/// A consumer assigned every partition from the beginning reads until each gave its message.
fn fetch(
    target: &Target,
    topics: &[(String, i32)],
    timeout: Duration,
    report: &mut Report,
) -> Result<()> {
    let consumer = target.consumer()?;
    let mut assignment = TopicPartitionList::new();
    let mut index = HashMap::new();
    let mut seen = Vec::new();
    for (name, partitions) in topics {
        index.insert(name.clone(), seen.len());
        seen.push(vec![false; *partitions as usize]);
        for partition in 0..*partitions {
            assignment.add_partition_offset(name, partition, Offset::Beginning)?;
        }
    }
    let start = Instant::now();
    consumer.assign(&assignment)?;
    while report.fetched_partitions < report.partitions {
        if start.elapsed() >= timeout {
            report.fetch_s = start.elapsed().as_secs_f64();
            return Err(format!(
                "messages of {} of {} partitions fetched within {} s",
                report.fetched_partitions,
                report.partitions,
                timeout.as_secs()
            )
            .into());
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(message)) => {
                report.fetched += 1;
                if let Some(&k) = index.get(message.topic())
                    && let Some(slot) = seen[k].get_mut(message.partition() as usize)
                    && !*slot
                {
                    *slot = true;
                    report.fetched_partitions += 1;
                }
            }
            Some(Err(err)) => return Err(format!("fetch: {err}").into()),
        }
    }
    report.fetch_s = start.elapsed().as_secs_f64();
    Ok(())
}

fn render(report: &Report) -> String {
    let mib = |b: u64| format!("{:.1} MiB", b as f64 / f64::from(1 << 20));
    let mut out = format!(
        "{} partitions over {} topic(s) on {} ({}): created, one message produced to each \
         (acks=all) and fetched back\n",
        report.partitions, report.topics, report.brokers, report.broker
    );
    let mut t = table(
        &[
            "described",
            "produced",
            "fetched from",
            "create s",
            "ready s",
            "produce s",
            "fetch s",
            "total s",
        ],
        0,
    );
    t.add_row(vec![
        report.described.to_string(),
        report.produced.to_string(),
        report.fetched_partitions.to_string(),
        format!("{:.2}", report.create_s),
        format!("{:.2}", report.ready_s),
        format!("{:.2}", report.produce_s),
        format!("{:.2}", report.fetch_s),
        format!("{:.2}", report.total_s),
    ]);
    out.push_str(&format!("{t}\n"));
    if let Some(m) = &report.memory {
        let or_dash = |b: Option<u64>| b.map_or_else(|| "-".to_owned(), mib);
        let mut t = table(
            &[
                "broker pid",
                "RSS before",
                "RSS created",
                "RSS served",
                "VmHWM",
                "CPU s",
            ],
            0,
        );
        t.add_row(vec![
            m.pid.to_string(),
            mib(m.rss_before_bytes),
            or_dash(m.rss_created_bytes),
            or_dash(m.rss_served_bytes),
            mib(m.vm_hwm_bytes),
            format!("{:.2}", m.cpu_s),
        ]);
        out.push_str(&format!("{t}\n"));
    }
    if let Some(err) = &report.error {
        out.push_str(&format!("failed: {err}\n"));
    }
    out.push_str(
        "ready: from the CreateTopics request until the metadata described every partition \
         with a leader\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_spread_evenly_over_the_topics() {
        let topics = layout(10, 3);
        let counts: Vec<i32> = topics.iter().map(|t| t.1).collect();
        assert_eq!(counts, [4, 3, 3]);
        assert!(topics[0].0.ends_with("-0") && topics[2].0.ends_with("-2"));
        assert_eq!(layout(2, 5).len(), 2, "no topic without partitions");
        assert_eq!(layout(10_000, 1)[0].1, 10_000);
    }
}
