//! The `basalt serve` process stopped and started again on the same data directory: after a
//! clean SIGTERM every topic and record is back, and after kill -9 under acks=all load every
//! record whose delivery was acknowledged is readable.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use basalt_testkit::ProcessBroker;
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};

use crate::common::{TIMEOUT, consume_exactly, consumer, create_topic, producer, send_one, text};
use rdkafka::producer::FutureRecord;

fn start(dir: &Path) -> ProcessBroker {
    ProcessBroker::start(Path::new(env!("CARGO_BIN_EXE_basalt")), dir, &[])
}

fn stop(broker: ProcessBroker) {
    let (status, log) = broker.terminate();
    assert!(
        status.success(),
        "basalt serve exited with {status}; log:\n{log}"
    );
    assert!(log.contains("stopped cleanly"), "log:\n{log}");
}

#[test]
fn topics_and_records_survive_a_clean_restart() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path());
    let b = broker.bootstrap();
    create_topic(&b, "durable", 2, &[("retention.ms", "-1")]);
    let writer = producer(&b, &[("enable.idempotence", "true")]);
    for i in 0..200 {
        let key = format!("k{i}");
        let value = format!("v{i}");
        send_one(
            &writer,
            FutureRecord::to("durable")
                .partition(i % 2)
                .key(key.as_bytes())
                .payload(value.as_bytes()),
        );
    }
    send_one(
        &writer,
        FutureRecord::to("auto-created").payload(b"hello".as_slice()),
    );
    drop(writer);
    stop(broker);

    let broker = start(dir.path());
    let b = broker.bootstrap();
    let reader = consumer(&b);
    for (topic, partitions) in [("durable", 2), ("auto-created", 1)] {
        let metadata = reader.fetch_metadata(Some(topic), TIMEOUT).unwrap();
        let t = &metadata.topics()[0];
        assert!(t.error().is_none(), "{topic}: {:?}", t.error());
        assert_eq!(t.partitions().len(), partitions, "{topic}");
    }
    let got = consume_exactly(&b, "durable", &[(0, 100), (1, 100)]);
    for (p, records) in &got {
        for (j, m) in records.iter().enumerate() {
            let i = j * 2 + *p as usize;
            assert_eq!(m.key(), Some(format!("k{i}").as_bytes()));
            assert_eq!(text(m), format!("v{i}"));
        }
    }
    let got = consume_exactly(&b, "auto-created", &[(0, 1)]);
    assert_eq!(text(&got[&0][0]), "hello");

    // Appends go on after the last offset.
    let writer = producer(&b, &[("enable.idempotence", "true")]);
    let d = send_one(
        &writer,
        FutureRecord::to("durable")
            .partition(1)
            .payload(b"after".as_slice()),
    );
    assert_eq!(d.offset, 100);
    drop(writer);
    stop(broker);
}

/// Records every delivery report.
#[derive(Default)]
struct Recorder {
    acked: Mutex<Vec<(i32, i64, String)>>,
    failed: AtomicUsize,
}

impl ClientContext for Recorder {}

impl ProducerContext for Recorder {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(m) => {
                let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
                self.acked
                    .lock()
                    .unwrap()
                    .push((m.partition(), m.offset(), value));
            }
            Err(_) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[test]
fn acknowledged_records_survive_kill_9() {
    const TARGET_ACKS: usize = 3_000;
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path());
    let b = broker.bootstrap();
    create_topic(&b, "crash", 2, &[]);
    let producer: ThreadedProducer<Recorder> = ClientConfig::new()
        .set("bootstrap.servers", &b)
        .set("acks", "all")
        .set("linger.ms", "2")
        .set("batch.num.messages", "50")
        .set("message.timeout.ms", "5000")
        .set("reconnect.backoff.ms", "20")
        .set("retry.backoff.ms", "20")
        .create_with_context(Recorder::default())
        .unwrap();

    // Keep records in flight until enough are acknowledged, then kill the broker mid-stream.
    let deadline = Instant::now() + TIMEOUT;
    let mut sent = 0usize;
    loop {
        let acked = producer.context().acked.lock().unwrap().len();
        if acked >= TARGET_ACKS {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {acked} of {sent} records acknowledged within {TIMEOUT:?}"
        );
        if sent - acked > 500 {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        let value = format!("record-{sent}");
        let partition = (sent % 2) as i32;
        match producer.send(
            BaseRecord::<(), str, ()>::to("crash")
                .partition(partition)
                .payload(value.as_str()),
        ) {
            Ok(()) => sent += 1,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err((e, _)) => panic!("enqueue: {e}"),
        }
    }
    let log = broker.kill();
    // Every record still pending fails within message.timeout.ms; none can succeed any more.
    let _ = producer.flush(Duration::from_secs(20));
    let acked = producer.context().acked.lock().unwrap().clone();
    let failed = producer.context().failed.load(Ordering::Relaxed);
    drop(producer);
    assert!(acked.len() >= TARGET_ACKS);
    assert_eq!(
        acked.len() + failed,
        sent,
        "every record got a delivery report"
    );

    let broker = start(dir.path());
    let b = broker.bootstrap();
    let consumer = consumer(&b);
    let mut expected = Vec::new();
    for p in 0..2 {
        let (low, high) = consumer.fetch_watermarks("crash", p, TIMEOUT).unwrap();
        assert_eq!(low, 0);
        expected.push((p, high as usize));
    }
    let got = consume_exactly(&b, "crash", &expected);
    for (p, offset, value) in &acked {
        let record: Option<&OwnedMessage> = got[p].get(*offset as usize);
        assert_eq!(
            record.map(text),
            Some(value.as_str()),
            "acknowledged record {p}/{offset} after kill -9 (log before the kill:\n{log})"
        );
    }
    stop(broker);
}
