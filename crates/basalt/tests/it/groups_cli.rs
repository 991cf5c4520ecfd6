//! `basalt group` against the broker's group coordinator: a librdkafka consumer joins a group,
//! reads and commits, and the built command lists and describes the group (lag per partition),
//! is refused while the group is active, resets its offsets once it is empty (the next consumer
//! of the group starts there) and deletes it.

use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use basalt_testkit::TestBroker;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;

use crate::common::{TIMEOUT, create_topic, producer, send_one};

const GROUP: &str = "billing";
const TOPIC: &str = "orders";

/// What one run of `basalt` gave.
struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn basalt(bootstrap: &str, args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_basalt"))
        .args(args)
        .env("BASALT_BROKERS", bootstrap)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    Run {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs `basalt` and parses its stdout as JSON; panics with its output if it fails.
fn basalt_json(bootstrap: &str, args: &[&str]) -> Value {
    let run = basalt(bootstrap, args);
    assert!(
        run.ok,
        "basalt {args:?} failed: {}{}",
        run.stdout, run.stderr
    );
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("basalt {args:?}: not JSON ({e}): {}", run.stdout))
}

fn describe(bootstrap: &str) -> Value {
    let all = basalt_json(bootstrap, &["group", "describe", GROUP, "--json"]);
    all[0].clone()
}

/// `(partition, current offset, log end offset, lag)` of each row of a description.
fn offsets(description: &Value) -> Vec<(i64, Value, Value, Value)> {
    description["offsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["partition"].as_i64().unwrap(),
                r["current_offset"].clone(),
                r["log_end_offset"].clone(),
                r["lag"].clone(),
            )
        })
        .collect()
}

fn wait_for_state(bootstrap: &str, state: &str) -> Value {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let d = describe(bootstrap);
        if d["state"] == state {
            return d;
        }
        assert!(Instant::now() < deadline, "group never became {state}: {d}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn group_consumer(bootstrap: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", GROUP)
        .set("client.id", "billing-worker")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .set("fetch.wait.max.ms", "100")
        .create()
        .unwrap()
}

/// Polls `consumer` until it has read `n` records; returns `(partition, offset)` of each.
fn read(consumer: &BaseConsumer, n: usize) -> Vec<(i32, i64)> {
    let deadline = Instant::now() + TIMEOUT;
    let mut got = Vec::new();
    while got.len() < n {
        assert!(
            Instant::now() < deadline,
            "read only {got:?} of {n} records"
        );
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => got.push((m.partition(), m.offset())),
            Some(Err(e)) => panic!("consume error: {e}"),
        }
    }
    got
}

#[test]
fn group_commands_list_describe_reset_and_delete_a_consumer_group() {
    let broker = TestBroker::start();
    let b = broker.bootstrap();
    create_topic(&b, TOPIC, 2, &[]);
    let producer = producer(&b, &[]);
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    // Record i of each partition has timestamp t0 + i seconds.
    let t0 = now_ms - 3_600_000;
    for p in 0..2 {
        for i in 0..10 {
            let value = format!("p{p}-{i}");
            send_one(
                &producer,
                FutureRecord::to(TOPIC)
                    .partition(p)
                    .payload(value.as_bytes())
                    .timestamp(t0 + i * 1000),
            );
        }
    }

    // A member of the group reads everything and commits 7 on partition 0 and 3 on partition 1.
    let consumer = group_consumer(&b);
    consumer.subscribe(&[TOPIC]).unwrap();
    assert_eq!(read(&consumer, 20).len(), 20);
    let mut commit = TopicPartitionList::new();
    commit
        .add_partition_offset(TOPIC, 0, Offset::Offset(7))
        .unwrap();
    commit
        .add_partition_offset(TOPIC, 1, Offset::Offset(3))
        .unwrap();
    consumer.commit(&commit, CommitMode::Sync).unwrap();

    let listed = basalt_json(&b, &["group", "list", "--json"]);
    let ours: Vec<&Value> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["group"] == GROUP)
        .collect();
    assert_eq!(ours.len(), 1, "{listed}");
    assert_eq!(ours[0]["state"], "Stable", "{listed}");
    assert_eq!(ours[0]["protocol_type"], "consumer", "{listed}");
    let empty_only = basalt_json(&b, &["group", "list", "--state", "empty", "--json"]);
    assert!(
        !empty_only.to_string().contains(GROUP),
        "a Stable group listed as Empty: {empty_only}"
    );

    let d = describe(&b);
    assert_eq!(d["state"], "Stable", "{d}");
    let members = d["members"].as_array().unwrap();
    assert_eq!(members.len(), 1, "{d}");
    assert_eq!(members[0]["client_id"], "billing-worker", "{d}");
    assert_eq!(
        members[0]["assignment"],
        serde_json::json!([{"topic": TOPIC, "partitions": [0, 1]}]),
        "{d}"
    );
    assert_eq!(
        offsets(&d),
        vec![
            (0, 7.into(), 10.into(), 3.into()),
            (1, 3.into(), 10.into(), 7.into())
        ],
        "{d}"
    );
    assert_eq!(d["total_lag"], 10, "{d}");
    for row in d["offsets"].as_array().unwrap() {
        assert_eq!(row["member_id"], members[0]["member_id"], "{d}");
    }
    let text = basalt(&b, &["group", "describe", GROUP]);
    assert!(text.ok, "{}", text.stderr);
    assert!(
        text.stdout.contains("TOTAL-LAG      10\n"),
        "{}",
        text.stdout
    );
    let rows: Vec<Vec<&str>> = text
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .filter(|w: &Vec<&str>| w.first() == Some(&TOPIC))
        .collect();
    assert_eq!(rows.len(), 2, "{}", text.stdout);
    assert_eq!(
        rows[0][..5],
        [TOPIC, "0", "7", "10", "3"],
        "{}",
        text.stdout
    );
    assert_eq!(
        rows[1][..5],
        [TOPIC, "1", "3", "10", "7"],
        "{}",
        text.stdout
    );

    // An active group is neither reset nor deleted.
    let refused = basalt(
        &b,
        &[
            "group",
            "reset-offsets",
            GROUP,
            "--topic",
            TOPIC,
            "--to-earliest",
        ],
    );
    assert!(!refused.ok, "{}", refused.stdout);
    assert!(
        refused.stderr.contains("active member"),
        "{}",
        refused.stderr
    );
    let refused = basalt(&b, &["group", "delete", GROUP]);
    assert!(!refused.ok, "{}", refused.stdout);
    assert!(
        refused.stderr.contains("NON_EMPTY_GROUP"),
        "{}",
        refused.stderr
    );

    // The member leaves: the group is Empty, its offsets stay.
    drop(consumer);
    let d = wait_for_state(&b, "Empty");
    assert_eq!(d["members"], serde_json::json!([]), "{d}");
    assert_eq!(d["total_lag"], 10, "{d}");

    let dry = basalt_json(
        &b,
        &[
            "group",
            "reset-offsets",
            GROUP,
            "--topic",
            TOPIC,
            "--to-earliest",
            "--dry-run",
            "--json",
        ],
    );
    assert_eq!(dry["dry_run"], true, "{dry}");
    assert_eq!(
        dry["partitions"],
        serde_json::json!([
            {"topic": TOPIC, "partition": 0, "old_offset": 7, "new_offset": 0},
            {"topic": TOPIC, "partition": 1, "old_offset": 3, "new_offset": 0},
        ]),
        "{dry}"
    );
    assert_eq!(offsets(&describe(&b))[0].1, 7, "a dry run changed offsets");

    let shifted = basalt(
        &b,
        &[
            "group",
            "reset-offsets",
            GROUP,
            "--topic",
            "orders:0",
            "--shift-by",
            "-2",
        ],
    );
    assert!(shifted.ok, "{}", shifted.stderr);
    assert!(
        shifted
            .stdout
            .contains("reset 1 partition(s) of group billing"),
        "{}",
        shifted.stdout
    );
    let d = describe(&b);
    assert_eq!(
        offsets(&d),
        vec![
            (0, 5.into(), 10.into(), 5.into()),
            (1, 3.into(), 10.into(), 7.into())
        ],
        "{d}"
    );

    // Record 4 of partition 1 is the first at or after t0 + 3.5 s.
    let at =
        humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis((t0 + 3500) as u64))
            .to_string();
    let by_time = basalt_json(
        &b,
        &[
            "group",
            "reset-offsets",
            GROUP,
            "--topic",
            "orders:1",
            "--to-datetime",
            &at,
            "--json",
        ],
    );
    assert_eq!(by_time["partitions"][0]["new_offset"], 4, "{by_time}");
    assert_eq!(offsets(&describe(&b))[1].1, 4);

    // Offsets past the log end are clamped to it.
    let clamped = basalt_json(
        &b,
        &[
            "group",
            "reset-offsets",
            GROUP,
            "--all-topics",
            "--to-offset",
            "100",
            "--json",
        ],
    );
    assert_eq!(clamped["partitions"][0]["new_offset"], 10, "{clamped}");
    assert_eq!(clamped["partitions"][1]["new_offset"], 10, "{clamped}");
    assert_eq!(describe(&b)["total_lag"], 0);

    // The next member of the group starts where the reset put it.
    let reset = basalt(
        &b,
        &[
            "group",
            "reset-offsets",
            GROUP,
            "--all-topics",
            "--to-offset",
            "8",
        ],
    );
    assert!(reset.ok, "{}", reset.stderr);
    let consumer = group_consumer(&b);
    consumer.subscribe(&[TOPIC]).unwrap();
    let mut got = read(&consumer, 4);
    got.sort_unstable();
    assert_eq!(got, vec![(0, 8), (0, 9), (1, 8), (1, 9)]);
    drop(consumer);
    wait_for_state(&b, "Empty");

    let deleted = basalt(&b, &["group", "delete", GROUP]);
    assert!(deleted.ok, "{}", deleted.stderr);
    assert_eq!(deleted.stdout, "deleted group billing\n");
    let listed = basalt_json(&b, &["group", "list", "--json"]);
    assert!(!listed.to_string().contains(GROUP), "{listed}");
    let gone = basalt(&b, &["group", "describe", GROUP]);
    assert!(!gone.ok, "{}", gone.stdout);
    assert!(gone.stderr.contains("does not exist"), "{}", gone.stderr);
}

/// A share group member (raw KIP-932 requests over TCP) reads records a librdkafka producer
/// wrote, acknowledges them, and `basalt group list` and `describe` show the share group.
#[test]
fn group_commands_list_and_describe_a_share_group_whose_member_reads_over_tcp() {
    use basalt_protocol::messages::share_acknowledge_request::{
        AcknowledgePartition, AcknowledgeTopic, AcknowledgementBatch, ShareAcknowledgeRequest,
    };
    use basalt_protocol::messages::share_fetch_request::{
        FetchPartition, FetchTopic, ShareFetchRequest,
    };
    use basalt_protocol::messages::share_group_heartbeat_request::ShareGroupHeartbeatRequest;
    use basalt_protocol::{RequestBody, ResponseBody};

    const SHARE_GROUP: &str = "jobs-workers";
    const JOBS: &str = "jobs";
    let broker = TestBroker::start();
    let b = broker.bootstrap();
    create_topic(&b, JOBS, 2, &[]);
    let producer = producer(&b, &[]);
    for i in 0..6 {
        let value = format!("job-{i}");
        send_one(
            &producer,
            FutureRecord::to(JOBS)
                .partition(i % 2)
                .payload(value.as_bytes()),
        );
    }
    crate::common::set_group_config(
        broker.addr(),
        SHARE_GROUP,
        "share.auto.offset.reset",
        "earliest",
    );
    let mut raw = crate::common::RawClient::connect(broker.addr(), "share-worker");
    let joined = match raw.call(
        1,
        RequestBody::ShareGroupHeartbeat(ShareGroupHeartbeatRequest {
            group_id: SHARE_GROUP.into(),
            member_id: "worker-1".into(),
            member_epoch: 0,
            subscribed_topic_names: Some(vec![JOBS.into()]),
            ..Default::default()
        }),
    ) {
        ResponseBody::ShareGroupHeartbeat(r) => r,
        other => panic!("{other:?}"),
    };
    assert_eq!(joined.error_code, 0, "{joined:?}");
    let assignment = joined.assignment.expect("an assignment on join");
    assert_eq!(assignment.topic_partitions.len(), 1);
    let topic_id = assignment.topic_partitions[0].topic_id;
    assert_eq!(assignment.topic_partitions[0].partitions, vec![0, 1]);

    // The fetch returns each partition's batches with the acquired ranges.
    let fetched = match raw.call(
        1,
        RequestBody::ShareFetch(ShareFetchRequest {
            group_id: Some(SHARE_GROUP.into()),
            member_id: Some("worker-1".into()),
            share_session_epoch: 0,
            max_wait_ms: 5_000,
            min_bytes: 1,
            max_bytes: 1 << 20,
            max_records: 100,
            batch_size: 100,
            topics: vec![FetchTopic {
                topic_id,
                partitions: vec![
                    FetchPartition {
                        partition_index: 0,
                        ..Default::default()
                    },
                    FetchPartition {
                        partition_index: 1,
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }],
            ..Default::default()
        }),
    ) {
        ResponseBody::ShareFetch(r) => r,
        other => panic!("{other:?}"),
    };
    assert_eq!(fetched.error_code, 0, "{fetched:?}");
    let mut values = Vec::new();
    let mut acks = Vec::new();
    for p in &fetched.responses[0].partitions {
        assert_eq!(p.error_code, 0, "{p:?}");
        let bytes = match p.records.as_ref() {
            Some(basalt_protocol::Records::Memory(b)) => b.clone(),
            other => panic!("records arrive as bytes: {other:?}"),
        };
        for batch in basalt_record::BatchIter::verified(&bytes) {
            let (_, range) = batch.unwrap();
            for r in basalt_record::decode_records(&bytes.slice(range)).unwrap() {
                values.push(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
            }
        }
        let a = &p.acquired_records[0];
        assert_eq!((a.first_offset, a.last_offset, a.delivery_count), (0, 2, 1));
        acks.push(AcknowledgePartition {
            partition_index: p.partition_index,
            acknowledgement_batches: vec![AcknowledgementBatch {
                first_offset: a.first_offset,
                last_offset: a.last_offset,
                acknowledge_types: vec![1],
                ..Default::default()
            }],
            ..Default::default()
        });
    }
    values.sort();
    assert_eq!(
        values,
        (0..6).map(|i| format!("job-{i}")).collect::<Vec<_>>()
    );
    match raw.call(
        1,
        RequestBody::ShareAcknowledge(ShareAcknowledgeRequest {
            group_id: Some(SHARE_GROUP.into()),
            member_id: Some("worker-1".into()),
            share_session_epoch: 1,
            topics: vec![AcknowledgeTopic {
                topic_id,
                partitions: acks,
                ..Default::default()
            }],
            ..Default::default()
        }),
    ) {
        ResponseBody::ShareAcknowledge(r) => {
            assert_eq!(r.error_code, 0);
            assert!(
                r.responses[0].partitions.iter().all(|p| p.error_code == 0),
                "{r:?}"
            );
        }
        other => panic!("{other:?}"),
    }

    let listed = basalt_json(&b, &["group", "list", "--type", "share", "--json"]);
    let groups = listed.as_array().unwrap();
    assert_eq!(groups.len(), 1, "{listed}");
    assert_eq!(groups[0]["group"], SHARE_GROUP, "{listed}");
    let d = basalt_json(&b, &["group", "describe", SHARE_GROUP, "--json"]);
    let d = &d[0];
    assert_eq!(d["group_type"], "share", "{d}");
    assert_eq!(d["state"], "Stable", "{d}");
    let members = d["members"].as_array().unwrap();
    assert_eq!(members.len(), 1, "{d}");
    assert_eq!(members[0]["member_id"], "worker-1", "{d}");
    assert_eq!(members[0]["client_id"], "share-worker", "{d}");
}
