//! `basalt bench produce`: N messages of S bytes from K producers, each on its own thread with
//! its own librdkafka producer; throughput runs from the first send to the last delivery report.
//!
//! # Keeping it honest
//! - Before timing, every producer has fetched the topic's metadata, so its connections are up.
//! - The producers are released together; the time runs from the earliest start to the latest
//!   delivery report, so a producer that finishes early does not make the others look faster.
//! - A message counts once its delivery report says it was acknowledged (with `--acks 0`, once
//!   librdkafka sent it); a failed delivery fails the bench after the report is printed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use serde::Serialize;

use super::Result;
use super::kafka::{ADMIN_TIMEOUT, Payloads, ProducerSettings, Target, mb_per_s, per_s};
use super::output::{emit, fmt_rate, fmt_size, progress, table};
use super::process::{self, BrokerUsage, BrokerWatch};

/// Longest wait for the last delivery reports once every message is queued.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(300);

/// Options of `basalt bench produce`.
#[derive(Debug, Args)]
pub(crate) struct ProduceArgs {
    #[command(flatten)]
    pub(crate) target: Target,
    #[command(flatten)]
    pub(crate) producer: ProducerSettings,
    /// Messages to send, all producers together.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) messages: u64,
    /// Bytes of each message's value (no key).
    #[arg(long, default_value_t = 100)]
    pub(crate) size: usize,
    /// Producers, each with its own client and thread, sending an equal share of the messages.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub(crate) producers: u16,
}

/// What `bench produce` reports.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    brokers: String,
    topic: String,
    partitions: i32,
    producers: u16,
    #[serde(flatten)]
    settings: ProducerSettings,
    size_bytes: usize,
    messages: u64,
    pub(crate) acked: u64,
    pub(crate) failed: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) first_error: Option<String>,
    /// Value bytes acknowledged.
    bytes: u64,
    /// From the first send to the last delivery report.
    pub(crate) seconds: f64,
    pub(crate) msgs_per_s: f64,
    /// 10^6 value bytes per second.
    pub(crate) mb_per_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) broker: Option<BrokerUsage>,
}

/// Counts one producer's delivery reports and remembers when the last one came.
#[derive(Debug, Default)]
pub(crate) struct Deliveries {
    pub(crate) acked: AtomicU64,
    pub(crate) failed: AtomicU64,
    last: Mutex<Option<Instant>>,
    pub(crate) first_error: Mutex<Option<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let now = Instant::now();
        match result {
            Ok(_) => {
                self.acked.fetch_add(1, Ordering::Relaxed);
            }
            Err((err, message)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                let mut first = self.first_error.lock().unwrap_or_else(|e| e.into_inner());
                first.get_or_insert_with(|| {
                    format!("{}/{}: {err}", message.topic(), message.partition())
                });
            }
        }
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(now);
    }
}

/// What one producer thread did.
struct Run {
    start: Instant,
    end: Instant,
}

/// Runs the bench and prints its report.
pub(crate) fn run(args: &ProduceArgs) -> Result<()> {
    let report = measure(args)?;
    emit(args.target.json, &report, render)?;
    if report.failed > 0 {
        return Err(format!(
            "{} of {} messages were not delivered; first: {}",
            report.failed,
            report.messages,
            report.first_error.as_deref().unwrap_or("?")
        )
        .into());
    }
    Ok(())
}

pub(crate) fn measure(args: &ProduceArgs) -> Result<Report> {
    let target = &args.target;
    let partitions = target.ensure_topic()?;
    let payloads = Payloads::new(args.size);
    let producers = (0..args.producers)
        .map(|_| connected_producer(args))
        .collect::<Result<Vec<_>>>()?;
    let shares = shares(args.messages, producers.len());
    let watch = BrokerWatch::maybe_start(target.broker_pid)?;
    let bar = progress(args.messages, "messages acknowledged", target.json);
    let barrier = Barrier::new(producers.len());
    let runs: Vec<Result<Run>> = std::thread::scope(|scope| {
        let handles: Vec<_> = producers
            .iter()
            .zip(&shares)
            .enumerate()
            .map(|(i, (producer, &share))| {
                let (barrier, payloads) = (&barrier, &payloads);
                std::thread::Builder::new()
                    .name(format!("bench-producer-{i}"))
                    .spawn_scoped(scope, move || {
                        send_all(producer, &target.topic, share, payloads, barrier)
                    })
            })
            .collect();
        while handles
            .iter()
            .any(|h| h.as_ref().is_ok_and(|h| !h.is_finished()))
        {
            bar.set_position(
                producers
                    .iter()
                    .map(|p| p.context().acked.load(Ordering::Relaxed))
                    .sum(),
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        handles
            .into_iter()
            .map(|handle| match handle {
                Ok(handle) => handle
                    .join()
                    .unwrap_or_else(|_| Err("a producer thread panicked".into())),
                Err(err) => Err(format!("spawn a producer thread: {err}").into()),
            })
            .collect()
    });
    bar.finish_and_clear();
    let broker = process::finish(watch)?;
    let runs = runs.into_iter().collect::<Result<Vec<_>>>()?;
    let start = runs.iter().map(|r| r.start).min();
    let end = runs.iter().map(|r| r.end).max();
    let seconds = match (start, end) {
        (Some(start), Some(end)) => (end - start).as_secs_f64(),
        _ => 0.0,
    };
    let acked: u64 = producers
        .iter()
        .map(|p| p.context().acked.load(Ordering::Relaxed))
        .sum();
    let failed: u64 = producers
        .iter()
        .map(|p| p.context().failed.load(Ordering::Relaxed))
        .sum();
    let first_error = producers.iter().find_map(|p| {
        p.context()
            .first_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    });
    let bytes = acked * args.size as u64;
    Ok(Report {
        brokers: target.brokers.clone(),
        topic: target.topic.clone(),
        partitions,
        producers: args.producers,
        settings: args.producer.clone(),
        size_bytes: args.size,
        messages: args.messages,
        acked,
        failed,
        first_error,
        bytes,
        seconds,
        msgs_per_s: per_s(acked, seconds),
        mb_per_s: mb_per_s(bytes, seconds),
        broker,
    })
}

/// A producer with the bench's settings whose connection to the topic's leaders is up.
fn connected_producer(args: &ProduceArgs) -> Result<BaseProducer<Deliveries>> {
    let producer: BaseProducer<Deliveries> = args
        .producer
        .apply(args.target.client_config())
        .create_with_context(Deliveries::default())
        .map_err(|e| format!("create a producer for {}: {e}", args.target.brokers))?;
    producer
        .client()
        .fetch_metadata(Some(&args.target.topic), ADMIN_TIMEOUT)
        .map_err(|e| format!("metadata of {}: {e}", args.target.topic))?;
    Ok(producer)
}

/// `total` split into `count` shares differing by at most one.
fn shares(total: u64, count: usize) -> Vec<u64> {
    let count = count.max(1) as u64;
    (0..count)
        .map(|i| total / count + u64::from(i < total % count))
        .collect()
}

/// Sends `count` messages as fast as the producer takes them, then waits for every delivery
/// report. The run ends at the last report.
fn send_all(
    producer: &BaseProducer<Deliveries>,
    topic: &str,
    count: u64,
    payloads: &Payloads,
    barrier: &Barrier,
) -> Result<Run> {
    barrier.wait();
    let start = Instant::now();
    for i in 0..count {
        send(producer, topic, payloads.get(i))?;
        producer.poll(Duration::ZERO);
    }
    producer
        .flush(FLUSH_TIMEOUT)
        .map_err(|e| format!("wait for delivery reports: {e}"))?;
    let end = producer
        .context()
        .last
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .unwrap_or(start);
    Ok(Run { start, end })
}

/// Queues one message, serving delivery reports while librdkafka's queue is full.
pub(crate) fn send<C: ProducerContext<DeliveryOpaque = ()>>(
    producer: &BaseProducer<C>,
    topic: &str,
    value: &[u8],
) -> Result<()> {
    let mut record = BaseRecord::<[u8], [u8]>::to(topic).payload(value);
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                producer.poll(Duration::from_millis(1));
            }
            Err((err, _)) => return Err(format!("send to {topic}: {err}").into()),
        }
    }
}

fn render(report: &Report) -> String {
    let mut out = format!(
        "Produce to {} on {} ({} partition(s)): {} messages of {}, {} producer(s), acks={}, \
         compression={}, linger.ms={}, batch.size={}\n",
        report.topic,
        report.brokers,
        report.partitions,
        report.messages,
        fmt_size(report.size_bytes),
        report.producers,
        serde_plain(&report.settings.acks),
        serde_plain(&report.settings.compression),
        report
            .settings
            .linger_ms
            .map_or("default".to_owned(), |v| v.to_string()),
        report
            .settings
            .batch_size
            .map_or("default".to_owned(), |v| v.to_string()),
    );
    let mut t = table(&["acked", "failed", "seconds", "msgs/s", "MB/s"], 0);
    t.add_row(vec![
        report.acked.to_string(),
        report.failed.to_string(),
        format!("{:.3}", report.seconds),
        fmt_rate(report.msgs_per_s),
        format!("{:.1}", report.mb_per_s),
    ]);
    out.push_str(&t.to_string());
    out.push('\n');
    if let Some(broker) = &report.broker {
        out.push_str(&broker.describe());
        out.push('\n');
    }
    out.push_str("time: first send to last delivery report; MB = 10^6 value bytes\n");
    out
}

/// A unit enum's serde name, such as `all` or `lz4`.
pub(crate) fn serde_plain<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => "?".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_and_differ_by_at_most_one() {
        assert_eq!(shares(10, 3), vec![4, 3, 3]);
        assert_eq!(shares(2, 4), vec![1, 1, 0, 0]);
        assert_eq!(shares(7, 1), vec![7]);
    }
}
