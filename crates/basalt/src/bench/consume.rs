//! `basalt bench consume`: a fresh consumer with librdkafka's defaults reads N messages of the
//! topic from the beginning of its partitions (assigned, no group), timed from the assignment to
//! the N-th message.
//!
//! # Keeping it honest
//! - The topic is filled first, untimed, if it holds fewer than N messages.
//! - Each pass uses a new consumer, connected (metadata fetched) before timing starts.
//! - With `--drop-cache`, a first pass reads after the kernel's page cache was dropped (`sync`,
//!   then `1` into `/proc/sys/vm/drop_caches`, which needs root), so the broker reads from the
//!   disk; the pass after it reads the same data from the page cache. Where the cache cannot be
//!   dropped the cold pass is reported as skipped, with the reason.

use std::time::{Duration, Instant};

use clap::Args;
use rdkafka::consumer::Consumer;
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;

use super::Result;
use super::kafka::{ADMIN_TIMEOUT, Payloads, Target, mb_per_s, per_s};
use super::output::{emit, fmt_bytes, fmt_rate, progress, table};
use super::process::{self, BrokerUsage, BrokerWatch};
use super::produce::send;

/// Options of `basalt bench consume`.
#[derive(Debug, Args)]
pub(crate) struct ConsumeArgs {
    #[command(flatten)]
    pub(crate) target: Target,
    /// Messages to read from the beginning of the topic; the topic is filled first if it holds
    /// fewer.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) messages: u64,
    /// Bytes of each message's value, for the messages written to fill the topic.
    #[arg(long, default_value_t = 100)]
    pub(crate) size: usize,
    /// Also read once after dropping the kernel's page cache (needs root), before the read from
    /// the page cache.
    #[arg(long)]
    pub(crate) drop_cache: bool,
    /// Longest time one pass may take before the bench gives up.
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    pub(crate) timeout: u64,
}

/// What `bench consume` reports.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    brokers: String,
    topic: String,
    partitions: usize,
    messages: u64,
    /// Messages written, untimed, to fill the topic before reading.
    filled: u64,
    pub(crate) passes: Vec<Pass>,
}

/// One read of the N messages.
#[derive(Debug, Serialize)]
pub(crate) struct Pass {
    /// `page cache` or `after drop`.
    pub(crate) cache: &'static str,
    /// Why the pass did not run, if it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    skipped: Option<String>,
    pub(crate) messages: u64,
    /// Value bytes read.
    bytes: u64,
    /// From the assignment to the N-th message.
    pub(crate) seconds: f64,
    pub(crate) msgs_per_s: f64,
    pub(crate) mb_per_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) broker: Option<BrokerUsage>,
}

/// Runs the bench and prints its report.
pub(crate) fn run(args: &ConsumeArgs) -> Result<()> {
    let report = measure(args)?;
    emit(args.target.json, &report, render)
}

/// Fills the topic if needed, then reads it once per pass.
pub(crate) fn measure(args: &ConsumeArgs) -> Result<Report> {
    let target = &args.target;
    target.ensure_topic()?;
    let filled = fill(args)?;
    let partitions = target.partition_ids()?;
    let mut passes = Vec::new();
    if args.drop_cache {
        passes.push(match drop_page_cache() {
            Ok(()) => read_pass(args, &partitions, "after drop")?,
            Err(reason) => {
                tracing::warn!(%reason, "could not drop the page cache: the cold read is skipped");
                Pass {
                    cache: "after drop",
                    skipped: Some(reason),
                    messages: 0,
                    bytes: 0,
                    seconds: 0.0,
                    msgs_per_s: 0.0,
                    mb_per_s: 0.0,
                    broker: None,
                }
            }
        });
    }
    passes.push(read_pass(args, &partitions, "page cache")?);
    Ok(Report {
        brokers: target.brokers.clone(),
        topic: target.topic.clone(),
        partitions: partitions.len(),
        messages: args.messages,
        filled,
        passes,
    })
}

/// Writes, untimed, the messages the topic lacks to hold `--messages`; returns how many.
fn fill(args: &ConsumeArgs) -> Result<u64> {
    let target = &args.target;
    let before = held(target)?;
    let missing = args.messages.saturating_sub(before);
    if missing == 0 {
        return Ok(0);
    }
    tracing::info!(topic = %target.topic, held = before, missing, "filling the topic before reading");
    let producer: BaseProducer = target
        .client_config()
        .create()
        .map_err(|e| format!("create a producer for {}: {e}", target.brokers))?;
    let payloads = Payloads::new(args.size);
    for i in 0..missing {
        send(&producer, &target.topic, payloads.get(i))?;
        producer.poll(Duration::ZERO);
    }
    producer
        .flush(Duration::from_secs(args.timeout))
        .map_err(|e| format!("fill {}: {e}", target.topic))?;
    let now_held = held(target)?;
    if now_held < args.messages {
        return Err(format!(
            "{} holds {now_held} messages after filling, not {}",
            target.topic, args.messages
        )
        .into());
    }
    Ok(missing)
}

/// Messages the topic holds: high minus low watermark, summed over its partitions.
fn held(target: &Target) -> Result<u64> {
    let consumer = target.consumer()?;
    let marks = target.watermarks(&consumer)?;
    Ok(marks
        .iter()
        .map(|(_, low, high)| (high - low).max(0) as u64)
        .sum())
}

/// One timed read of `--messages` messages by a new consumer.
fn read_pass(args: &ConsumeArgs, partitions: &[i32], cache: &'static str) -> Result<Pass> {
    let target = &args.target;
    let consumer = target.consumer()?;
    consumer
        .fetch_metadata(Some(&target.topic), ADMIN_TIMEOUT)
        .map_err(|e| format!("metadata of {}: {e}", target.topic))?;
    let mut assignment = TopicPartitionList::new();
    for &partition in partitions {
        assignment.add_partition_offset(&target.topic, partition, Offset::Beginning)?;
    }
    let bar = progress(
        args.messages,
        &format!("messages read ({cache})"),
        target.json,
    );
    let watch = BrokerWatch::maybe_start(target.broker_pid)?;
    let start = Instant::now();
    let deadline = start + Duration::from_secs(args.timeout);
    consumer.assign(&assignment)?;
    let (mut messages, mut bytes) = (0u64, 0u64);
    while messages < args.messages {
        if Instant::now() >= deadline {
            return Err(format!(
                "read {messages} of {} messages of {} within {} s",
                args.messages, target.topic, args.timeout
            )
            .into());
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(message)) => {
                messages += 1;
                bytes += message.payload_len() as u64;
                if messages % 4096 == 0 {
                    bar.set_position(messages);
                }
            }
            Some(Err(err)) => return Err(format!("read {}: {err}", target.topic).into()),
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let broker = process::finish(watch)?;
    Ok(Pass {
        cache,
        skipped: None,
        messages,
        bytes,
        seconds,
        msgs_per_s: per_s(messages, seconds),
        mb_per_s: mb_per_s(bytes, seconds),
        broker,
    })
}

/// Writes dirty pages back, then asks the kernel to drop the clean ones.
fn drop_page_cache() -> std::result::Result<(), String> {
    let status = std::process::Command::new("sync")
        .status()
        .map_err(|e| format!("run sync: {e}"))?;
    if !status.success() {
        return Err(format!("sync failed: {status}"));
    }
    std::fs::write("/proc/sys/vm/drop_caches", "1")
        .map_err(|e| format!("write /proc/sys/vm/drop_caches: {e}"))
}

fn render(report: &Report) -> String {
    let mut out = format!(
        "Consume {} messages from the beginning of {} on {} ({} partition(s)){}\n",
        report.messages,
        report.topic,
        report.brokers,
        report.partitions,
        if report.filled > 0 {
            format!("; {} written first to fill it", report.filled)
        } else {
            String::new()
        },
    );
    let mut t = table(
        &["cache", "messages", "bytes", "seconds", "msgs/s", "MB/s"],
        1,
    );
    for pass in &report.passes {
        match &pass.skipped {
            Some(reason) => t.add_row(vec![pass.cache.to_owned(), format!("skipped: {reason}")]),
            None => t.add_row(vec![
                pass.cache.to_owned(),
                pass.messages.to_string(),
                fmt_bytes(pass.bytes),
                format!("{:.3}", pass.seconds),
                fmt_rate(pass.msgs_per_s),
                format!("{:.1}", pass.mb_per_s),
            ]),
        };
    }
    out.push_str(&t.to_string());
    out.push('\n');
    for pass in &report.passes {
        if let Some(broker) = &pass.broker {
            out.push_str(&format!("{}: {}\n", pass.cache, broker.describe()));
        }
    }
    out.push_str("time: assignment to the last message read; MB = 10^6 value bytes\n");
    out
}
