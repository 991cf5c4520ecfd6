//! `basalt bench latency`: end-to-end latency, from the time a message was due to be sent to the
//! time a consumer reads it, under a fixed send rate.
//!
//! # Coordinated omission
//! The producer does not send "as soon as the previous send is done": message `i` is scheduled
//! at `start + i / rate`, and its value carries that scheduled time. The consumer records `now −
//! scheduled`. When the broker stalls, the producer falls behind its schedule, and every message
//! sent late is charged the time it waited to be sent, as a client with a steady stream of work
//! would see it. Both ends run in this process, so both read the same monotonic clock.
//!
//! # Keeping it honest
//! - The consumer is assigned the partitions at their high watermarks before the first send, and
//!   one untimed warm-up message goes through before the schedule starts, so connection setup
//!   and the consumer's first fetch are not measured.
//! - Latencies go into an HDR histogram (3 significant digits, 1 ns to 1 hour).
//! - The achieved rate is the messages sent over the time the schedule actually took; a rate
//!   well under the one asked means the producer could not keep up and the latencies include
//!   that wait.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use clap::Args;
use hdrhistogram::Histogram;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;

use super::Result;
use super::kafka::{ADMIN_TIMEOUT, Payloads, ProducerSettings, Target};
use super::output::{emit, fmt_latency, fmt_size, progress, table};
use super::process::{self, BrokerUsage, BrokerWatch};
use super::produce::{Deliveries, send, serde_plain};

/// Bytes at the start of each value: the run's id, then the scheduled send time.
const STAMP_BYTES: usize = 16;
/// The scheduled time of the warm-up message.
const WARM_UP: u64 = u64::MAX;
/// How long the consumer keeps reading after the last delivery report.
const DRAIN: Duration = Duration::from_secs(10);
/// Longest latency the histogram holds (larger ones are recorded as this).
const LATENCY_NS_MAX: u64 = 3_600_000_000_000;

/// Options of `basalt bench latency`.
#[derive(Debug, Args)]
pub(crate) struct LatencyArgs {
    #[command(flatten)]
    pub(crate) target: Target,
    #[command(flatten)]
    pub(crate) producer: ProducerSettings,
    /// Messages per second the producer is scheduled to send.
    #[arg(long, default_value_t = 1000.0, value_parser = parse_positive)]
    pub(crate) rate: f64,
    /// Seconds of sending; the producer sends rate × duration messages.
    #[arg(long, default_value_t = 10.0, value_parser = parse_positive)]
    pub(crate) duration: f64,
    /// Bytes of each message's value (at least 16: the first 16 carry the scheduled time).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(STAMP_BYTES as u64..))]
    pub(crate) size: u64,
}

fn parse_positive(s: &str) -> std::result::Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 1e9 => Ok(v),
        _ => Err(format!("{s:?} is not a positive number")),
    }
}

/// What `bench latency` reports.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    brokers: String,
    topic: String,
    partitions: i32,
    #[serde(flatten)]
    settings: ProducerSettings,
    size_bytes: u64,
    /// Messages per second asked for.
    rate: f64,
    duration_s: f64,
    /// Messages scheduled: rate × duration.
    scheduled: u64,
    pub(crate) sent: u64,
    pub(crate) failed: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) first_error: Option<String>,
    pub(crate) received: u64,
    /// Messages sent over the time the schedule took.
    pub(crate) achieved_rate: f64,
    /// End-to-end latency from the scheduled send time, over every message received.
    pub(crate) latency: Percentiles,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) broker: Option<BrokerUsage>,
}

/// Percentiles of a latency histogram, in microseconds.
#[derive(Debug, Serialize)]
pub(crate) struct Percentiles {
    pub(crate) min_us: f64,
    pub(crate) mean_us: f64,
    pub(crate) p50_us: f64,
    pub(crate) p90_us: f64,
    pub(crate) p99_us: f64,
    pub(crate) p99_9_us: f64,
    pub(crate) max_us: f64,
}

impl Percentiles {
    pub(crate) fn of(histogram: &Histogram<u64>) -> Percentiles {
        let us = |ns: u64| ns as f64 / 1e3;
        Percentiles {
            min_us: us(histogram.min()),
            mean_us: histogram.mean() / 1e3,
            p50_us: us(histogram.value_at_quantile(0.5)),
            p90_us: us(histogram.value_at_quantile(0.9)),
            p99_us: us(histogram.value_at_quantile(0.99)),
            p99_9_us: us(histogram.value_at_quantile(0.999)),
            max_us: us(histogram.max()),
        }
    }
}

/// What the producer thread did.
struct Sending {
    sent: u64,
    /// The schedule's time, the last message's interval included.
    seconds: f64,
}

/// Runs the bench and prints its report.
pub(crate) fn run(args: &LatencyArgs) -> Result<()> {
    let report = measure(args)?;
    emit(args.target.json, &report, render)?;
    if report.failed > 0 {
        return Err(format!(
            "{} messages were not delivered; first: {}",
            report.failed,
            report.first_error.as_deref().unwrap_or_default()
        )
        .into());
    }
    Ok(())
}

/// Sends on the schedule and reads back; the report says what was delivered and when.
pub(crate) fn measure(args: &LatencyArgs) -> Result<Report> {
    let target = &args.target;
    let partitions = target.ensure_topic()?;
    let scheduled = ((args.rate * args.duration).round() as u64).max(1);
    let consumer = assigned_at_end(target)?;
    let producer: BaseProducer<Deliveries> = args
        .producer
        .apply(target.client_config())
        .create_with_context(Deliveries::default())
        .map_err(|e| format!("create a producer for {}: {e}", target.brokers))?;
    producer
        .client()
        .fetch_metadata(Some(&target.topic), ADMIN_TIMEOUT)
        .map_err(|e| format!("metadata of {}: {e}", target.topic))?;
    let run_id: u64 = rand::random();
    let base = Instant::now();
    let warmed = AtomicBool::new(false);
    let received = AtomicU64::new(0);
    let producer_done: Mutex<Option<Instant>> = Mutex::new(None);
    let bar = progress(scheduled, "messages received", target.json);
    let mut histogram = Histogram::<u64>::new_with_bounds(1, LATENCY_NS_MAX, 3)?;
    let mut watch = None;
    let (sending, reading) =
        std::thread::scope(|scope| -> Result<(Result<Sending>, Result<()>)> {
            let reader = std::thread::Builder::new()
                .name("bench-latency-consumer".into())
                .spawn_scoped(scope, || {
                    read(
                        &consumer,
                        ReadState {
                            run_id,
                            base,
                            scheduled,
                            warmed: &warmed,
                            received: &received,
                            producer_done: &producer_done,
                            histogram: &mut histogram,
                        },
                    )
                })?;
            let sender = std::thread::Builder::new()
                .name("bench-latency-producer".into())
                .spawn_scoped(scope, || {
                    let warm_up_done = || warmed.load(Ordering::Relaxed);
                    let result = send_on_schedule(
                        args,
                        &producer,
                        run_id,
                        base,
                        scheduled,
                        warm_up_done,
                        &mut watch,
                    );
                    let mut done = producer_done.lock().unwrap_or_else(PoisonError::into_inner);
                    *done = Some(Instant::now());
                    result
                })?;
            while !(sender.is_finished() && reader.is_finished()) {
                bar.set_position(received.load(Ordering::Relaxed));
                std::thread::sleep(Duration::from_millis(100));
            }
            let sending = sender
                .join()
                .unwrap_or_else(|_| Err("the producer thread panicked".into()));
            let reading = reader
                .join()
                .unwrap_or_else(|_| Err("the consumer thread panicked".into()));
            Ok((sending, reading))
        })?;
    bar.finish_and_clear();
    let broker = process::finish(watch)?;
    let sending = sending?;
    reading?;
    let failed = producer.context().failed.load(Ordering::Relaxed);
    let first_error = producer
        .context()
        .first_error
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    Ok(Report {
        brokers: target.brokers.clone(),
        topic: target.topic.clone(),
        partitions,
        settings: args.producer.clone(),
        size_bytes: args.size,
        rate: args.rate,
        duration_s: args.duration,
        scheduled,
        sent: sending.sent,
        failed,
        first_error,
        received: received.load(Ordering::Relaxed),
        achieved_rate: sending.sent as f64 / sending.seconds.max(1e-9),
        latency: Percentiles::of(&histogram),
        broker,
    })
}

/// A consumer with librdkafka's defaults, assigned every partition of the topic at its high
/// watermark, so it reads only what this run sends.
fn assigned_at_end(target: &Target) -> Result<BaseConsumer> {
    let consumer = target.consumer()?;
    let mut assignment = TopicPartitionList::new();
    for (partition, _, high) in target.watermarks(&consumer)? {
        assignment.add_partition_offset(&target.topic, partition, Offset::Offset(high))?;
    }
    consumer.assign(&assignment)?;
    Ok(consumer)
}

/// Sends the warm-up message and waits until it was read, then sends message `i` at `start + i /
/// rate`, each value stamped with its scheduled time; then waits for every delivery report.
fn send_on_schedule(
    args: &LatencyArgs,
    producer: &BaseProducer<Deliveries>,
    run_id: u64,
    base: Instant,
    scheduled: u64,
    warm_up_done: impl Fn() -> bool,
    watch: &mut Option<BrokerWatch>,
) -> Result<Sending> {
    let topic = &args.target.topic;
    let payloads = Payloads::new(args.size as usize);
    let mut value = payloads.get(0).to_vec();
    stamp(&mut value, run_id, WARM_UP);
    send(producer, topic, &value)?;
    let deadline = Instant::now() + ADMIN_TIMEOUT;
    while !warm_up_done() {
        if Instant::now() >= deadline {
            return Err("the warm-up message was not read back within 30 s".into());
        }
        producer.poll(Duration::from_millis(1));
    }
    *watch = BrokerWatch::maybe_start(args.target.broker_pid)?;
    let interval_ns = 1e9 / args.rate;
    let start = Instant::now();
    let mut last_due = start;
    for i in 0..scheduled {
        let due = start + Duration::from_nanos((i as f64 * interval_ns) as u64);
        wait_until(producer, due);
        value.copy_from_slice(payloads.get(i));
        stamp(&mut value, run_id, (due - base).as_nanos() as u64);
        send(producer, topic, &value)?;
        producer.poll(Duration::ZERO);
        last_due = due;
    }
    let last_sent = Instant::now().max(last_due);
    producer
        .flush(Duration::from_secs(300))
        .map_err(|e| format!("wait for delivery reports: {e}"))?;
    Ok(Sending {
        sent: scheduled,
        seconds: (last_sent - start).as_secs_f64() + interval_ns / 1e9,
    })
}

/// Serves delivery reports until shortly before `due`, then sleeps the rest (librdkafka's poll
/// counts in milliseconds).
fn wait_until(producer: &BaseProducer<Deliveries>, due: Instant) {
    loop {
        let now = Instant::now();
        if now >= due {
            return;
        }
        let left = due - now;
        if left > Duration::from_millis(2) {
            producer.poll(left - Duration::from_millis(1));
        } else {
            std::thread::sleep(left);
        }
    }
}

fn stamp(value: &mut [u8], run_id: u64, scheduled_ns: u64) {
    value[..8].copy_from_slice(&run_id.to_be_bytes());
    value[8..STAMP_BYTES].copy_from_slice(&scheduled_ns.to_be_bytes());
}

/// The scheduled time of a value of run `run_id`; `None` for a value of another run.
fn scheduled_of(value: &[u8], run_id: u64) -> Option<u64> {
    let id = u64::from_be_bytes(value.get(..8)?.try_into().ok()?);
    let ns = u64::from_be_bytes(value.get(8..STAMP_BYTES)?.try_into().ok()?);
    (id == run_id).then_some(ns)
}

/// What the consumer thread shares with the others.
struct ReadState<'a> {
    run_id: u64,
    base: Instant,
    scheduled: u64,
    warmed: &'a AtomicBool,
    received: &'a AtomicU64,
    producer_done: &'a Mutex<Option<Instant>>,
    histogram: &'a mut Histogram<u64>,
}

/// Reads until every scheduled message came, or [`DRAIN`] after the producer finished.
fn read(consumer: &BaseConsumer, state: ReadState<'_>) -> Result<()> {
    let mut received = 0u64;
    while received < state.scheduled {
        let done = *state
            .producer_done
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if done.is_some_and(|done| done.elapsed() > DRAIN) {
            tracing::warn!(
                received,
                scheduled = state.scheduled,
                "messages never arrived"
            );
            break;
        }
        let message = match consumer.poll(Duration::from_millis(50)) {
            None => continue,
            Some(Ok(message)) => message,
            Some(Err(err)) => return Err(format!("read: {err}").into()),
        };
        let now = Instant::now();
        let Some(ns) = message
            .payload()
            .and_then(|v| scheduled_of(v, state.run_id))
        else {
            continue;
        };
        if ns == WARM_UP {
            state.warmed.store(true, Ordering::Relaxed);
            continue;
        }
        let due = state.base + Duration::from_nanos(ns);
        let latency_ns = now.saturating_duration_since(due).as_nanos() as u64;
        state.histogram.saturating_record(latency_ns.max(1));
        received += 1;
        state.received.store(received, Ordering::Relaxed);
    }
    Ok(())
}

fn render(report: &Report) -> String {
    let mut out = format!(
        "Latency on {} at {} ({} partition(s)): {:.0} msgs/s for {:.1} s, {} values, acks={}, \
         compression={}, linger.ms={}\n",
        report.topic,
        report.brokers,
        report.partitions,
        report.rate,
        report.duration_s,
        fmt_size(report.size_bytes as usize),
        serde_plain(&report.settings.acks),
        serde_plain(&report.settings.compression),
        report
            .settings
            .linger_ms
            .map_or("default".to_owned(), |v| v.to_string()),
    );
    let mut t = table(
        &[
            "sent",
            "received",
            "achieved msgs/s",
            "p50",
            "p90",
            "p99",
            "p99.9",
            "max",
        ],
        0,
    );
    let l = &report.latency;
    t.add_row(vec![
        report.sent.to_string(),
        report.received.to_string(),
        format!("{:.0}", report.achieved_rate),
        fmt_latency(l.p50_us),
        fmt_latency(l.p90_us),
        fmt_latency(l.p99_us),
        fmt_latency(l.p99_9_us),
        fmt_latency(l.max_us),
    ]);
    out.push_str(&t.to_string());
    out.push('\n');
    if let Some(broker) = &report.broker {
        out.push_str(&broker.describe());
        out.push('\n');
    }
    out.push_str(
        "latency: from the scheduled send time to the read (coordinated omission corrected)\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_read_back_only_for_their_run() {
        let mut value = vec![0u8; 20];
        stamp(&mut value, 7, 123_456);
        assert_eq!(scheduled_of(&value, 7), Some(123_456));
        assert_eq!(scheduled_of(&value, 8), None);
        assert_eq!(scheduled_of(&value[..10], 7), None);
    }

    #[test]
    fn rates_and_durations_must_be_positive() {
        assert_eq!(parse_positive("250"), Ok(250.0));
        assert!(parse_positive("0").is_err());
        assert!(parse_positive("inf").is_err());
    }
}
