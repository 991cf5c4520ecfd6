//! The Redis Streams and RabbitMQ sides of `basalt bench compare`: the same workloads as the
//! Kafka-protocol systems get, through each system's own protocol (`redis`: XADD in pipelines,
//! XREADGROUP + XACK; `lapin`: publisher confirms, manual acks with a prefetch), and the paced,
//! stamped latency schedule they share.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::Result;
use super::compare::{Cpu, Measurement, Meter, WORKLOAD_TIMEOUT, Workload};
use super::kafka::Payloads;
use super::latency::Percentiles;

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
/// How long a latency consumer keeps reading after the last send was acknowledged.
const DRAIN: Duration = Duration::from_secs(10);
/// Longest latency the histogram holds.
const LATENCY_NS_MAX: u64 = 3_600_000_000_000;
/// The due time of the warm-up message of a latency run.
const WARM_UP: u64 = u64::MAX;

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

/// The result of a latency run.
fn latency_figures(
    recorder: &Recorder,
    sent: u64,
    seconds: f64,
    workload: &Workload,
    meter: &Meter,
    clocks: Cpu,
) -> Result<Measurement> {
    if recorder.received < sent {
        return Err(format!("latency: {sent} sent, {} read back", recorder.received).into());
    }
    Ok(Measurement::latency(
        sent,
        workload.size_bytes,
        seconds,
        &Percentiles::of(&recorder.histogram),
        meter.since(clocks)?,
    ))
}

/// Sends the warm-up message and waits until it was read back, then spawns one send per due
/// time on the schedule (`send(i, due in ns since base)`); returns the messages sent and the
/// schedule's seconds, once every send completed.
///
/// The schedule runs on this worker thread, set aside for it (`block_in_place`), sleeping in
/// the kernel until each due time: tokio's timer counts in milliseconds, and waiting out the
/// rest by yielding would keep a CPU busy that the system under test needs.
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
    let runtime = tokio::runtime::Handle::current();
    let (start, last_sent, sends) = tokio::task::block_in_place(|| {
        let start = Instant::now();
        let mut sends = Vec::with_capacity(scheduled as usize);
        let mut last_due = start;
        for i in 0..scheduled {
            let due = start + Duration::from_nanos((i as f64 * interval_ns) as u64);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            sends.push(runtime.spawn(send(i, (due - base).as_nanos() as u64)));
            last_due = due;
        }
        (start, Instant::now().max(last_due), sends)
    });
    for done in sends {
        done.await
            .map_err(|e| format!("a send task failed: {e}"))??;
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

pub(super) async fn redis_connection(address: &str) -> Result<redis::aio::MultiplexedConnection> {
    let client = redis::Client::open(format!("redis://{address}/"))?;
    let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
    Ok(client
        .get_multiplexed_async_connection_with_config(&config)
        .await?)
}

/// The stream message `i` of `count` streams goes to: round robin.
fn spread(i: u64, count: usize) -> usize {
    (i % count as u64) as usize
}

/// Produce: pipelines of XADD, one after the other, message `i` to stream `i % streams`.
pub(super) async fn redis_produce(
    address: &str,
    streams: &[String],
    messages: u64,
    size: u64,
    meter: &Meter,
) -> Result<Measurement> {
    let payloads = Payloads::new(size as usize);
    let mut conn = redis_connection(address).await?;
    let clocks = meter.read()?;
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < messages {
        let n = (messages - sent).min(REDIS_PIPELINE as u64);
        let mut pipe = redis::pipe();
        for i in sent..sent + n {
            pipe.cmd("XADD")
                .arg(&streams[spread(i, streams.len())])
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
    let seconds = start.elapsed().as_secs_f64();
    Ok(Measurement::throughput(
        sent,
        size,
        seconds,
        meter.since(clocks)?,
    ))
}

/// Consume: a group on every stream from its start, XREADGROUP of all of them, then XACK of
/// what was read; the streams are deleted afterwards (untimed), so runs do not pile up in
/// Redis's memory.
pub(super) async fn redis_consume(
    address: &str,
    streams: &[String],
    messages: u64,
    meter: &Meter,
) -> Result<Measurement> {
    let mut conn = redis_connection(address).await?;
    for stream in streams {
        redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(stream)
            .arg(&["bench", "0"][..])
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| format!("XGROUP CREATE {stream}: {e}"))?;
    }
    let names: Vec<&str> = streams.iter().map(String::as_str).collect();
    let clocks = meter.read()?;
    let start = Instant::now();
    let (mut read, mut bytes) = (0u64, 0u64);
    while read < messages {
        if start.elapsed() > WORKLOAD_TIMEOUT {
            return Err(format!("consume: {read} of {messages} read in time").into());
        }
        let entries = xreadgroup(&mut conn, &names, "bench", 0).await?;
        if entries.is_empty() {
            continue;
        }
        let mut acks = redis::pipe();
        for (k, stream) in streams.iter().enumerate() {
            let ids: Vec<&str> = entries
                .iter()
                .filter(|e| e.0 == k)
                .map(|e| e.1.as_str())
                .collect();
            if !ids.is_empty() {
                acks.cmd("XACK").arg(stream).arg("bench").arg(ids);
            }
        }
        acks.query_async::<()>(&mut conn)
            .await
            .map_err(|e| format!("XACK: {e}"))?;
        read += entries.len() as u64;
        bytes += entries.iter().map(|e| e.2.len() as u64).sum::<u64>();
    }
    let seconds = start.elapsed().as_secs_f64();
    let cpu = meter.since(clocks)?;
    redis::cmd("DEL")
        .arg(streams)
        .query_async::<u64>(&mut conn)
        .await
        .map_err(|e| format!("DEL: {e}"))?;
    let size = bytes.checked_div(read).unwrap_or(0);
    Ok(Measurement::throughput(read, size, seconds, cpu))
}

/// One XREADGROUP of new entries of `streams` for consumer `c` of `group`: (index of the
/// stream, id, value of field `v`).
async fn xreadgroup(
    conn: &mut redis::aio::MultiplexedConnection,
    streams: &[&str],
    group: &str,
    block_ms: usize,
) -> Result<Vec<(usize, String, Vec<u8>)>> {
    let mut cmd = redis::cmd("XREADGROUP");
    cmd.arg(&["GROUP", group, "c", "COUNT"][..])
        .arg(REDIS_READ_COUNT);
    if block_ms > 0 {
        cmd.arg("BLOCK").arg(block_ms);
    }
    cmd.arg("STREAMS").arg(streams);
    for _ in streams {
        cmd.arg(">");
    }
    let reply: Option<redis::streams::StreamReadReply> = cmd
        .query_async(conn)
        .await
        .map_err(|e| format!("XREADGROUP: {e}"))?;
    let mut entries = Vec::new();
    for key in reply.map(|r| r.keys).unwrap_or_default() {
        let k = streams.iter().position(|s| *s == key.key).unwrap_or(0);
        for entry in key.ids {
            let value = match entry.map.get("v") {
                Some(redis::Value::BulkString(bytes)) => bytes.clone(),
                _ => Vec::new(),
            };
            entries.push((k, entry.id, value));
        }
    }
    Ok(entries)
}

/// Latency: XADD on the schedule, a consumer of the stream's group reading (and acknowledging)
/// in the same process.
pub(super) async fn redis_latency(
    address: &str,
    stream: &str,
    workload: &Workload,
    meter: &Meter,
) -> Result<Measurement> {
    let payloads = &Payloads::new(workload.size_bytes as usize);
    let stream: Arc<str> = Arc::from(stream);
    let mut producer = redis_connection(address).await?;
    let mut consumer = redis_connection(address).await?;
    redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&*stream)
        .arg(&["bench", "$", "MKSTREAM"][..])
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
        let stream = Arc::clone(&stream);
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed)
                && recorder.received < expected.load(Ordering::Relaxed)
            {
                let entries = xreadgroup(&mut consumer, &[&*stream], "bench", 100).await?;
                let mut ack = redis::cmd("XACK");
                ack.arg(&*stream).arg("bench");
                for (_, id, value) in &entries {
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
    let clocks = meter.read()?;
    let (sent, seconds) = paced(workload, base, &warmed, |i, due_ns| {
        let mut conn = producer.clone();
        let value = stamped(payloads, i, due_ns);
        let stream = Arc::clone(&stream);
        async move {
            redis::cmd("XADD")
                .arg(&*stream)
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
    latency_figures(&recorder, sent, seconds, workload, meter, clocks)
}

// ---- RabbitMQ.

pub(super) async fn amqp_connect(address: &str) -> Result<lapin::Connection> {
    Ok(lapin::Connection::connect(
        &format!("amqp://guest:guest@{address}/%2f"),
        lapin::ConnectionProperties::default(),
    )
    .await?)
}

/// A channel with publisher confirms on, and the durable queues `queues` declared.
async fn amqp_publisher(conn: &lapin::Connection, queues: &[&str]) -> Result<lapin::Channel> {
    use lapin::options::{ConfirmSelectOptions, QueueDeclareOptions};
    let channel = conn.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    for &queue in queues {
        channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions::durable(),
                lapin::types::FieldTable::default(),
            )
            .await?;
    }
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

/// Produce: persistent messages, message `i` to queue `i % queues`, at most a window of them
/// awaiting their confirm.
pub(super) async fn amqp_produce(
    address: &str,
    queues: &[String],
    messages: u64,
    size: u64,
    meter: &Meter,
) -> Result<Measurement> {
    let payloads = Payloads::new(size as usize);
    let names: Vec<&str> = queues.iter().map(String::as_str).collect();
    let conn = amqp_connect(address).await?;
    let channel = amqp_publisher(&conn, &names).await?;
    let clocks = meter.read()?;
    let start = Instant::now();
    let mut pending = VecDeque::new();
    for i in 0..messages {
        if pending.len() >= AMQP_CONFIRM_WINDOW
            && let Some(confirm) = pending.pop_front()
        {
            amqp_confirmed(confirm).await?;
        }
        let queue = names[spread(i, names.len())];
        pending.push_back(amqp_publish(&channel, queue, payloads.get(i)).await?);
    }
    for confirm in pending {
        amqp_confirmed(confirm).await?;
    }
    let seconds = start.elapsed().as_secs_f64();
    let cpu = meter.since(clocks)?;
    let _ = conn.close(200, "done".into()).await;
    Ok(Measurement::throughput(messages, size, seconds, cpu))
}

/// Consume: one consumer (prefetch, manual acks) per queue, all at once, each reading its
/// queue's share of the messages; the queues are deleted afterwards (untimed).
pub(super) async fn amqp_consume(
    address: &str,
    queues: &[String],
    messages: u64,
    meter: &Meter,
) -> Result<Measurement> {
    use futures_lite::StreamExt;
    let conn = Arc::new(amqp_connect(address).await?);
    let clocks = meter.read()?;
    let start = Instant::now();
    let mut readers = tokio::task::JoinSet::new();
    for (k, queue) in queues.iter().enumerate() {
        // Queue k holds the messages i with i % queues == k.
        let share =
            messages / queues.len() as u64 + u64::from((k as u64) < messages % queues.len() as u64);
        let (conn, queue) = (Arc::clone(&conn), queue.clone());
        readers.spawn(async move {
            let mut consumer = amqp_consumer(&conn, &queue).await?;
            let (mut read, mut bytes) = (0u64, 0u64);
            while read < share {
                let delivery = tokio::time::timeout(WORKLOAD_TIMEOUT, consumer.next())
                    .await
                    .map_err(|_| format!("consume: {read} of {share} read from {queue} in time"))?
                    .ok_or("consume: the consumer was cancelled")??;
                read += 1;
                bytes += delivery.data.len() as u64;
                if read.is_multiple_of(AMQP_ACK_EVERY) || read == share {
                    amqp_ack(&delivery).await?;
                }
            }
            Ok::<_, super::Error>((read, bytes))
        });
    }
    let (mut read, mut bytes) = (0u64, 0u64);
    while let Some(done) = readers.join_next().await {
        let (r, b) = done.map_err(|e| format!("a consumer task failed: {e}"))??;
        read += r;
        bytes += b;
    }
    let seconds = start.elapsed().as_secs_f64();
    let cpu = meter.since(clocks)?;
    let channel = conn.create_channel().await?;
    for queue in queues {
        channel
            .queue_delete(
                queue.as_str().into(),
                lapin::options::QueueDeleteOptions::default(),
            )
            .await?;
    }
    let _ = conn.close(200, "done".into()).await;
    let size = bytes.checked_div(read).unwrap_or(0);
    Ok(Measurement::throughput(read, size, seconds, cpu))
}

/// Latency: persistent messages published on the schedule, each awaiting its confirm, and a
/// consumer of the queue in the same process.
pub(super) async fn amqp_latency(
    address: &str,
    queue: &str,
    workload: &Workload,
    meter: &Meter,
) -> Result<Measurement> {
    use futures_lite::StreamExt;
    let payloads = &Payloads::new(workload.size_bytes as usize);
    let conn = amqp_connect(address).await?;
    let channel = amqp_publisher(&conn, &[queue]).await?;
    let mut consumer = amqp_consumer(&conn, queue).await?;
    let queue: Arc<str> = Arc::from(queue);
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
    let clocks = meter.read()?;
    let (sent, seconds) = paced(workload, base, &warmed, |i, due_ns| {
        let channel = channel.clone();
        let value = stamped(payloads, i, due_ns);
        let queue = Arc::clone(&queue);
        async move { amqp_confirmed(amqp_publish(&channel, &queue, &value).await?).await }
    })
    .await?;
    expected.store(sent, Ordering::Relaxed);
    let recorder = drained(reader, &stop).await?;
    let measured = latency_figures(&recorder, sent, seconds, workload, meter, clocks);
    let _ = conn.close(200, "done".into()).await;
    measured
}

#[cfg(test)]
mod tests {
    use super::*;

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
