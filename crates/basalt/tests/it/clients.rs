//! The broker against librdkafka over real TCP: records round-trip with every field intact,
//! every compression codec, idempotent producers, topic administration, offsets by time, and
//! the size limit.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use basalt_testkit::TestBroker;
use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, Timestamp, TopicPartitionList};

use crate::common::{
    TIMEOUT, admin, admin_options, block_on, consume_exactly, consumer, create_topic, producer,
    send_one, text,
};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn records_round_trip_with_keys_nulls_headers_and_create_time() {
    let broker = TestBroker::start();
    let b = broker.bootstrap();
    let producer = producer(&b, &[]);
    let t0 = now_ms() - 3_600_000;
    let binary: Vec<u8> = (0..=255).collect();
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: "trace",
            value: Some("abc-123"),
        })
        .insert(Header {
            key: "empty",
            value: Some(""),
        })
        .insert::<[u8]>(Header {
            key: "null",
            value: None,
        })
        .insert(Header {
            key: "trace",
            value: Some("repeated key"),
        });
    let records: Vec<FutureRecord<'_, [u8], [u8]>> = vec![
        FutureRecord::to("round-trip")
            .key(b"k1".as_slice())
            .payload(b"v1".as_slice())
            .headers(headers)
            .timestamp(t0),
        FutureRecord::to("round-trip")
            .payload(b"no key".as_slice())
            .timestamp(t0 + 1),
        FutureRecord::to("round-trip")
            .key(b"tombstone".as_slice())
            .timestamp(t0 + 2),
        FutureRecord::to("round-trip")
            .key(b"".as_slice())
            .payload(b"".as_slice())
            .timestamp(t0 + 3),
        FutureRecord::to("round-trip")
            .key(binary.as_slice())
            .payload(binary.as_slice())
            .timestamp(t0 - 86_400_000),
    ];
    for (i, record) in records.into_iter().enumerate() {
        let delivery = send_one(&producer, record);
        assert_eq!((delivery.partition, delivery.offset), (0, i as i64));
    }

    let got = consume_exactly(&b, "round-trip", &[(0, 5)]);
    let m = &got[&0];
    assert_eq!(m[0].key(), Some(b"k1".as_slice()));
    assert_eq!(m[0].payload(), Some(b"v1".as_slice()));
    assert_eq!(m[0].timestamp(), Timestamp::CreateTime(t0));
    let h = m[0].headers().expect("headers");
    let h: Vec<(String, Option<Vec<u8>>)> = h
        .iter()
        .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
        .collect();
    assert_eq!(
        h,
        vec![
            ("trace".to_owned(), Some(b"abc-123".to_vec())),
            ("empty".to_owned(), Some(Vec::new())),
            ("null".to_owned(), None),
            ("trace".to_owned(), Some(b"repeated key".to_vec())),
        ]
    );

    assert_eq!(m[1].key(), None);
    assert_eq!(m[1].payload(), Some(b"no key".as_slice()));
    assert_eq!(m[1].timestamp(), Timestamp::CreateTime(t0 + 1));
    assert!(m[1].headers().is_none_or(|h| h.count() == 0));

    assert_eq!(m[2].key(), Some(b"tombstone".as_slice()));
    assert_eq!(m[2].payload(), None, "a null value stays null");
    assert_eq!(m[2].timestamp(), Timestamp::CreateTime(t0 + 2));

    assert_eq!(m[3].key(), Some(b"".as_slice()), "an empty key is not null");
    assert_eq!(
        m[3].payload(),
        Some(b"".as_slice()),
        "an empty value is not null"
    );

    assert_eq!(m[4].key(), Some(binary.as_slice()));
    assert_eq!(m[4].payload(), Some(binary.as_slice()));
    assert_eq!(m[4].timestamp(), Timestamp::CreateTime(t0 - 86_400_000));
}

#[test]
fn log_append_time_topics_stamp_records_on_append() {
    let broker = TestBroker::start();
    let b = broker.bootstrap();
    create_topic(
        &b,
        "stamped",
        1,
        &[("message.timestamp.type", "LogAppendTime")],
    );
    let before = now_ms();
    let producer = producer(&b, &[]);
    send_one(
        &producer,
        FutureRecord::to("stamped")
            .payload(b"old".as_slice())
            .timestamp(1_000),
    );
    let after = now_ms();
    let got = consume_exactly(&b, "stamped", &[(0, 1)]);
    match got[&0][0].timestamp() {
        Timestamp::LogAppendTime(t) => assert!(
            (before - 1_000..=after + 1_000).contains(&t),
            "append time {t} is not near {before}..{after}"
        ),
        other => panic!("expected LogAppendTime, got {other:?}"),
    }
}

/// Produces 300 compressible records with `codec` and reads them back; returns the bytes the
/// partition takes on disk and the bytes of the values.
fn round_trip_with_codec(broker: &TestBroker, codec: &str) -> (u64, u64) {
    let b = broker.bootstrap();
    let topic = format!("codec-{codec}");
    let producer = producer(
        &b,
        &[
            ("compression.type", codec),
            ("linger.ms", "50"),
            ("enable.idempotence", "true"),
        ],
    );
    let values: Vec<String> = (0..300)
        .map(|i| format!("{codec} record {i} {}", "compressible ".repeat(20)))
        .collect();
    let futures: Vec<_> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let key = format!("key-{i}");
            producer
                .send_result(
                    FutureRecord::to(&topic)
                        .key(key.as_bytes())
                        .payload(v.as_bytes()),
                )
                .unwrap_or_else(|(e, _)| panic!("{codec}: enqueue: {e}"))
        })
        .collect();
    block_on(async {
        for f in futures {
            f.await
                .unwrap()
                .unwrap_or_else(|(e, _)| panic!("{codec}: delivery: {e}"));
        }
    });
    let got = consume_exactly(&b, &topic, &[(0, values.len())]);
    for (i, (m, v)) in got[&0].iter().zip(&values).enumerate() {
        assert_eq!(text(m), v, "{codec}: value {i}");
        assert_eq!(
            m.key(),
            Some(format!("key-{i}").as_bytes()),
            "{codec}: key {i}"
        );
    }
    let stored = broker
        .broker()
        .partition(&topic, 0)
        .expect("partition exists")
        .log
        .size_bytes();
    let raw: usize = values.iter().map(String::len).sum();
    (stored, raw as u64)
}

#[test]
fn every_compression_codec_round_trips() {
    let broker = TestBroker::start();
    for codec in ["gzip", "snappy", "lz4", "zstd"] {
        let (stored, raw) = round_trip_with_codec(&broker, codec);
        assert!(
            stored < raw / 2,
            "{codec}: {stored} bytes stored for {raw} bytes of values: not compressed"
        );
    }
}

/// librdkafka only compresses with LZ4 when the broker advertises FindCoordinator (its stand-in
/// for "Kafka 0.8.2 or later", `RD_KAFKA_FEATURE_LZ4`); without it every client built on
/// librdkafka silently sends LZ4 batches uncompressed.
#[test]
fn lz4_batches_are_stored_compressed() {
    let broker = TestBroker::start();
    let (stored, raw) = round_trip_with_codec(&broker, "lz4");
    assert!(
        stored < raw / 2,
        "lz4: {stored} bytes stored for {raw} bytes of values: not compressed"
    );
}

#[test]
fn idempotent_producer_delivers_each_record_once_in_order() {
    let broker = TestBroker::start();
    let b = broker.bootstrap();
    create_topic(&b, "idempotent", 3, &[]);
    let producer = producer(
        &b,
        &[
            ("enable.idempotence", "true"),
            ("batch.num.messages", "100"),
            ("max.in.flight.requests.per.connection", "5"),
        ],
    );
    const PER_PARTITION: usize = 1000;
    let mut futures = Vec::new();
    for seq in 0..PER_PARTITION {
        for p in 0..3 {
            let value = format!("{p}:{seq}");
            let f = producer
                .send_result(
                    FutureRecord::<[u8], [u8]>::to("idempotent")
                        .partition(p)
                        .payload(value.as_bytes()),
                )
                .unwrap_or_else(|(e, _)| panic!("enqueue: {e}"));
            futures.push((p, seq, f));
        }
    }
    block_on(async {
        for (p, seq, f) in futures {
            let d = f
                .await
                .unwrap()
                .unwrap_or_else(|(e, _)| panic!("delivery: {e}"));
            assert_eq!((d.partition, d.offset), (p, seq as i64), "{p}:{seq}");
        }
    });
    let got = consume_exactly(
        &b,
        "idempotent",
        &[(0, PER_PARTITION), (1, PER_PARTITION), (2, PER_PARTITION)],
    );
    for (p, records) in &got {
        let values: Vec<&str> = records.iter().map(text).collect();
        let expected: Vec<String> = (0..PER_PARTITION).map(|s| format!("{p}:{s}")).collect();
        assert_eq!(values, expected, "partition {p}");
    }
}

/// librdkafka pipelines produce requests on one connection (`max.in.flight` defaults to a
/// million); the broker must append them in the order they were sent (`NET-5`), or a producer's
/// batches land swapped with no error (found by librdkafka's tests 0038 and 0041).
#[test]
fn pipelined_produce_requests_on_one_connection_keep_their_order() {
    let broker = TestBroker::start();
    let b = broker.bootstrap();
    create_topic(&b, "pipelined", 1, &[]);
    let producer = producer(
        &b,
        &[
            ("acks", "all"),
            ("linger.ms", "0"),
            ("batch.num.messages", "20"),
            ("max.in.flight.requests.per.connection", "1000000"),
        ],
    );
    const COUNT: usize = 5000;
    let futures: Vec<_> = (0..COUNT)
        .map(|seq| {
            let value = seq.to_string();
            producer
                .send_result(
                    FutureRecord::<[u8], [u8]>::to("pipelined")
                        .partition(0)
                        .payload(value.as_bytes()),
                )
                .unwrap_or_else(|(e, _)| panic!("enqueue: {e}"))
        })
        .collect();
    block_on(async {
        for (seq, f) in futures.into_iter().enumerate() {
            let d = f
                .await
                .unwrap()
                .unwrap_or_else(|(e, _)| panic!("delivery: {e}"));
            assert_eq!(d.offset, seq as i64, "record {seq}");
        }
    });
    let got = consume_exactly(&b, "pipelined", &[(0, COUNT)]);
    let values: Vec<&str> = got[&0].iter().map(text).collect();
    let expected: Vec<String> = (0..COUNT).map(|s| s.to_string()).collect();
    assert_eq!(values, expected);
}

#[test]
fn topics_are_created_described_and_deleted() {
    let broker = TestBroker::start();
    let b = broker.bootstrap();
    let admin = admin(&b);
    let opts = admin_options();
    create_topic(
        &b,
        "orders",
        4,
        &[("retention.ms", "3600000"), ("cleanup.policy", "delete")],
    );
    let topic = broker.broker().topic("orders").expect("created");
    assert_eq!(
        topic.meta.configs.get("retention.ms").map(String::as_str),
        Some("3600000")
    );

    let consumer = consumer(&b);
    let metadata = consumer.fetch_metadata(Some("orders"), TIMEOUT).unwrap();
    assert_eq!(metadata.brokers().len(), 1);
    assert_eq!(
        metadata.brokers()[0].port(),
        i32::from(broker.addr().port())
    );
    let orders = metadata
        .topics()
        .iter()
        .find(|t| t.name() == "orders")
        .expect("orders in metadata");
    assert!(orders.error().is_none());
    let mut partitions: Vec<(i32, i32)> = orders
        .partitions()
        .iter()
        .map(|p| (p.id(), p.leader()))
        .collect();
    partitions.sort_unstable();
    assert_eq!(partitions, vec![(0, 0), (1, 0), (2, 0), (3, 0)]);

    // Creating it again, or with a bad name or config, fails with Kafka's error codes.
    let again =
        rdkafka::admin::NewTopic::new("orders", 1, rdkafka::admin::TopicReplication::Fixed(1));
    let results = block_on(admin.create_topics(&[again], &opts)).unwrap();
    assert_eq!(
        results,
        vec![Err((
            "orders".to_owned(),
            RDKafkaErrorCode::TopicAlreadyExists
        ))]
    );
    for bad in ["bad name", "slash/ed", "..", &"x".repeat(250)] {
        let t = rdkafka::admin::NewTopic::new(bad, 1, rdkafka::admin::TopicReplication::Fixed(1));
        let results = block_on(admin.create_topics(&[t], &opts)).unwrap();
        assert_eq!(
            results,
            vec![Err((bad.to_owned(), RDKafkaErrorCode::InvalidTopic))],
            "topic name {bad:?}"
        );
    }
    let bad_config =
        rdkafka::admin::NewTopic::new("configured", 1, rdkafka::admin::TopicReplication::Fixed(1))
            .set("retention.ms", "soon");
    let results = block_on(admin.create_topics(&[bad_config], &opts)).unwrap();
    assert_eq!(
        results,
        vec![Err((
            "configured".to_owned(),
            RDKafkaErrorCode::InvalidConfig
        ))]
    );
    let replicated =
        rdkafka::admin::NewTopic::new("replicated", 1, rdkafka::admin::TopicReplication::Fixed(3));
    let results = block_on(admin.create_topics(&[replicated], &opts)).unwrap();
    assert_eq!(
        results,
        vec![Err((
            "replicated".to_owned(),
            RDKafkaErrorCode::InvalidReplicationFactor
        ))]
    );

    // Data written before a delete is gone when the name is reused.
    let producer = producer(&b, &[]);
    send_one(
        &producer,
        FutureRecord::to("orders")
            .partition(2)
            .payload(b"before delete".as_slice()),
    );
    let results = block_on(admin.delete_topics(&["orders"], &opts)).unwrap();
    assert_eq!(results, vec![Ok("orders".to_owned())]);
    let metadata = consumer.fetch_metadata(Some("orders"), TIMEOUT).unwrap();
    let orders = &metadata.topics()[0];
    assert_eq!(
        (orders.name(), orders.error()),
        (
            "orders",
            Some(RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
        ),
        "orders after delete"
    );
    let results = block_on(admin.delete_topics(&["orders"], &opts)).unwrap();
    assert_eq!(
        results,
        vec![Err((
            "orders".to_owned(),
            RDKafkaErrorCode::UnknownTopicOrPartition
        ))]
    );
    create_topic(&b, "orders", 3, &[]);
    for p in 0..3 {
        assert_eq!(
            consumer.fetch_watermarks("orders", p, TIMEOUT).unwrap(),
            (0, 0),
            "recreated orders/{p}"
        );
    }
}

#[test]
fn offsets_are_found_by_time_and_watermarks_are_reported() {
    let broker = TestBroker::start();
    let b = broker.bootstrap();
    create_topic(&b, "timed", 1, &[]);
    let base = now_ms() - 600_000;
    let at = |i: i64| base + i * 1_000;
    let producer = producer(&b, &[("linger.ms", "100")]);
    // Records 0-4 in batches of their own, 5-9 in one batch.
    for i in 0..5 {
        send_one(
            &producer,
            FutureRecord::to("timed")
                .payload(format!("r{i}").as_bytes())
                .timestamp(at(i)),
        );
    }
    let futures: Vec<_> = (5..10)
        .map(|i| {
            producer
                .send_result(
                    FutureRecord::<[u8], [u8]>::to("timed")
                        .payload(format!("r{i}").as_bytes())
                        .timestamp(at(i)),
                )
                .unwrap_or_else(|(e, _)| panic!("enqueue: {e}"))
        })
        .collect();
    block_on(async {
        for f in futures {
            f.await
                .unwrap()
                .unwrap_or_else(|(e, _)| panic!("delivery: {e}"));
        }
    });

    let consumer = consumer(&b);
    assert_eq!(
        consumer.fetch_watermarks("timed", 0, TIMEOUT).unwrap(),
        (0, 10)
    );
    let lookup = |ts: i64| {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("timed", 0, Offset::Offset(ts))
            .unwrap();
        let found = consumer.offsets_for_times(tpl, TIMEOUT).unwrap();
        let element = found
            .find_partition("timed", 0)
            .expect("partition in answer");
        assert!(element.error().is_ok(), "{:?}", element.error());
        element.offset()
    };
    assert_eq!(lookup(base - 5_000), Offset::Offset(0), "before everything");
    assert_eq!(lookup(at(0)), Offset::Offset(0));
    assert_eq!(lookup(at(2)), Offset::Offset(2), "exact hit");
    assert_eq!(lookup(at(2) + 1), Offset::Offset(3), "between records");
    assert_eq!(lookup(at(7)), Offset::Offset(7), "inside a batch");
    assert_eq!(
        lookup(at(6) + 500),
        Offset::Offset(7),
        "between records of a batch"
    );
    assert_eq!(lookup(at(9)), Offset::Offset(9));
    assert_eq!(lookup(at(9) + 1), Offset::End, "after everything");

    // Reading from an offset found by time starts at that record.
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("timed", 0, Offset::Offset(7))
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let deadline = Instant::now() + TIMEOUT;
    let first = loop {
        assert!(Instant::now() < deadline, "nothing read from offset 7");
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            break m.unwrap().detach();
        }
    };
    assert_eq!((first.offset(), text(&first)), (7, "r7"));
}

#[test]
fn large_records_are_accepted_up_to_message_max_bytes() {
    let broker = TestBroker::start();
    let b = broker.bootstrap();
    let producer = producer(&b, &[("message.max.bytes", "10000000")]);
    let large: Vec<u8> = (0..900 * 1024).map(|i| (i % 251) as u8).collect();
    let d = send_one(
        &producer,
        FutureRecord::to("large")
            .key(b"large".as_slice())
            .payload(large.as_slice()),
    );
    assert_eq!(d.offset, 0);

    let too_large = vec![7u8; 1_200_000];
    let future = producer
        .send_result(FutureRecord::<[u8], [u8]>::to("large").payload(too_large.as_slice()))
        .unwrap_or_else(|(e, _)| panic!("enqueue: {e}"));
    match block_on(future).unwrap() {
        Err((KafkaError::MessageProduction(code), _)) => {
            assert_eq!(code, RDKafkaErrorCode::MessageSizeTooLarge);
        }
        other => panic!("expected MessageSizeTooLarge, got {other:?}"),
    }

    // The producer and the partition are fine afterwards.
    let d = send_one(
        &producer,
        FutureRecord::to("large").payload(b"small".as_slice()),
    );
    assert_eq!(d.offset, 1);
    let got = consume_exactly(&b, "large", &[(0, 2)]);
    assert_eq!(got[&0][0].payload(), Some(large.as_slice()));
    assert_eq!(got[&0][1].payload(), Some(b"small".as_slice()));
}

/// librdkafka 2.x asks for all topics (Metadata v9+) with a 4-byte placeholder where the 1-byte
/// null array count belongs, so the request body ends with 3 extra bytes (librdkafka issue 5049).
/// Kafka ignores bytes after a request body; a broker that refuses them breaks `list_topics`.
#[test]
fn metadata_for_all_topics_lists_every_topic() {
    let broker = TestBroker::start();
    let b = broker.bootstrap();
    create_topic(&b, "first", 1, &[]);
    create_topic(&b, "second", 2, &[]);
    let metadata = consumer(&b).fetch_metadata(None, TIMEOUT).unwrap();
    let mut topics: Vec<(&str, usize)> = metadata
        .topics()
        .iter()
        .map(|t| (t.name(), t.partitions().len()))
        .collect();
    topics.sort_unstable();
    assert_eq!(topics, vec![("first", 1), ("second", 2)]);
}

/// A fetch spanning partitions stays within `fetch.max.bytes`: only the first partition may
/// exceed it (with one whole batch), so a client whose `receive.message.max.bytes` is just
/// above `fetch.max.bytes` reads every large record.
#[test]
fn fetch_max_bytes_bounds_responses_across_partitions() {
    let broker = TestBroker::start();
    let b = broker.bootstrap();
    create_topic(&b, "big-fetch", 3, &[]);
    let p = producer(&b, &[]);
    let value = vec![7u8; 900 * 1024];
    for part in 0..3 {
        for _ in 0..2 {
            send_one(
                &p,
                FutureRecord::to("big-fetch")
                    .partition(part)
                    .payload(&value[..]),
            );
        }
    }
    let consumer: rdkafka::consumer::BaseConsumer = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", &b)
        .set("group.id", "big-fetch")
        .set("enable.auto.commit", "false")
        .set("fetch.max.bytes", "1000000")
        .set("receive.message.max.bytes", "1000512")
        .set("max.partition.fetch.bytes", "20000000")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for part in 0..3 {
        tpl.add_partition_offset("big-fetch", part, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let deadline = Instant::now() + TIMEOUT;
    let mut read = 0;
    while read < 6 {
        assert!(Instant::now() < deadline, "read {read} of 6 records");
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                assert_eq!(m.payload().map(<[u8]>::len), Some(value.len()));
                read += 1;
            }
            Some(Err(e)) => panic!("consume error: {e}"),
            None => {}
        }
    }
}
