//! `basalt txn` against the broker's transaction coordinator: a librdkafka transactional producer
//! opens a transaction over two partitions, and the built command lists it (with each filter),
//! describes it (state, producer, timeout, start time, partitions) and shows its producer state
//! in the partitions, while it is open and after it is committed; unknown ids and state filters
//! are errors that name them.

use std::process::Command;
use std::time::{Duration, Instant};

use basalt_testkit::TestBroker;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use serde_json::Value;

use crate::common::{TIMEOUT, create_topic};

const TXN_ID: &str = "payments-app";
const TOPIC: &str = "payments";

type TxnProducer = ThreadedProducer<DefaultProducerContext>;

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

/// The ids `basalt txn list <filters> --json` lists.
fn listed_ids(bootstrap: &str, filters: &[&str]) -> Vec<String> {
    let mut args = vec!["txn", "list", "--json"];
    args.extend_from_slice(filters);
    basalt_json(bootstrap, &args)
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["transactional_id"].as_str().unwrap().to_owned())
        .collect()
}

/// Our transaction's line of `basalt txn list --json`.
fn listed(bootstrap: &str) -> Value {
    let all = basalt_json(bootstrap, &["txn", "list", "--json"]);
    let ours: Vec<&Value> = all
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["transactional_id"] == TXN_ID)
        .collect();
    assert_eq!(ours.len(), 1, "{all}");
    ours[0].clone()
}

fn describe(bootstrap: &str) -> Value {
    let all = basalt_json(bootstrap, &["txn", "describe", TXN_ID, "--json"]);
    assert_eq!(all.as_array().unwrap().len(), 1, "{all}");
    all[0].clone()
}

/// The rows of `basalt txn producers TOPIC --json`, by partition.
fn producers(bootstrap: &str) -> Vec<Value> {
    let rows = basalt_json(bootstrap, &["txn", "producers", TOPIC, "--json"]);
    rows.as_array().unwrap().clone()
}

/// The whitespace-separated words of the lines of `text` whose first word is `first`.
fn rows_starting<'a>(text: &'a str, first: &str) -> Vec<Vec<&'a str>> {
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|w| w.first() == Some(&first))
        .collect()
}

fn txn_producer(bootstrap: &str) -> TxnProducer {
    let p: TxnProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("transactional.id", TXN_ID)
        .set("transaction.timeout.ms", "45000")
        .set("linger.ms", "5")
        .create()
        .unwrap();
    p.init_transactions(TIMEOUT).unwrap();
    p
}

fn send(p: &TxnProducer, partition: i32, value: &str) {
    p.send(
        BaseRecord::<(), str>::to(TOPIC)
            .partition(partition)
            .payload(value),
    )
    .unwrap_or_else(|(e, _)| panic!("could not enqueue: {e}"));
}

#[test]
fn txn_cli_lists_describes_and_shows_producers_of_an_open_then_committed_transaction() {
    let broker = TestBroker::start();
    let b = broker.bootstrap();
    create_topic(&b, TOPIC, 2, &[]);
    // A second initialisation of the id bumps its epoch, so the epochs compared below are not
    // all the default 0.
    drop(txn_producer(&b));
    let p = txn_producer(&b);
    p.begin_transaction().unwrap();
    send(&p, 0, "p0-a");
    send(&p, 0, "p0-b");
    send(&p, 1, "p1-a");
    p.flush(TIMEOUT).unwrap();

    // Open: listed as Ongoing, with each filter.
    let open = listed(&b);
    assert_eq!(open["state"], "Ongoing", "{open}");
    let producer_id = open["producer_id"].as_i64().unwrap();
    assert!(producer_id >= 0, "{open}");
    assert_eq!(open["coordinator"], 0, "{open}");
    assert_eq!(listed_ids(&b, &["--state", "ongoing"]), [TXN_ID]);
    assert!(listed_ids(&b, &["--state", "CompleteCommit"]).is_empty());
    let pid = producer_id.to_string();
    let other_pid = (producer_id + 1).to_string();
    assert_eq!(listed_ids(&b, &["--producer-id", &pid]), [TXN_ID]);
    assert!(listed_ids(&b, &["--producer-id", &other_pid]).is_empty());
    assert_eq!(listed_ids(&b, &["--pattern", "payments-.*"]), [TXN_ID]);
    assert!(listed_ids(&b, &["--pattern", "payments"]).is_empty());
    assert_eq!(listed_ids(&b, &["--min-duration-ms", "0"]), [TXN_ID]);
    assert!(listed_ids(&b, &["--min-duration-ms", "3600000"]).is_empty());
    let text = basalt(&b, &["txn", "list"]);
    assert!(text.ok, "{}", text.stderr);
    assert!(
        text.stdout
            .starts_with("TRANSACTIONAL-ID  PRODUCER-ID  STATE    COORDINATOR\n"),
        "{}",
        text.stdout
    );
    assert_eq!(
        rows_starting(&text.stdout, TXN_ID),
        [[TXN_ID, pid.as_str(), "Ongoing", "0"]],
        "{}",
        text.stdout
    );

    // Open: described with its partitions and start time.
    let d = describe(&b);
    assert_eq!(d["transactional_id"], TXN_ID, "{d}");
    assert_eq!(d["state"], "Ongoing", "{d}");
    assert_eq!(d["producer_id"], producer_id, "{d}");
    assert_eq!(d["transaction_timeout_ms"], 45000, "{d}");
    assert_eq!(
        d["partitions"],
        serde_json::json!([{"topic": TOPIC, "partitions": [0, 1]}]),
        "{d}"
    );
    let start_ms = d["transaction_start_time_ms"].as_i64().unwrap();
    assert!(start_ms > 0, "{d}");
    let start_text = humantime::format_rfc3339_millis(
        std::time::UNIX_EPOCH + Duration::from_millis(start_ms as u64),
    )
    .to_string();
    assert_eq!(d["start_time"], start_text.as_str(), "{d}");
    let age = d["age_s"].as_i64().unwrap();
    assert!((0..60).contains(&age), "{d}");
    let epoch = d["producer_epoch"].as_i64().unwrap();
    assert_eq!(epoch, 1, "{d}");
    let text = basalt(&b, &["txn", "describe", TXN_ID]);
    assert!(text.ok, "{}", text.stderr);
    assert!(
        text.stdout.contains("STATE             Ongoing\n"),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout
            .contains(&format!("START-TIME        {start_text}\n")),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout.contains("PARTITIONS        payments:0,1\n"),
        "{}",
        text.stdout
    );

    // Open: the producer has a transaction from offset 0 in both partitions, with the same id
    // and epoch as the coordinator reports.
    let rows = producers(&b);
    assert_eq!(rows.len(), 2, "{rows:?}");
    for (row, (partition, last_sequence)) in rows.iter().zip([(0, 1), (1, 0)]) {
        assert_eq!(row["topic"], TOPIC, "{row}");
        assert_eq!(row["partition"], partition, "{row}");
        assert_eq!(row["producer_id"], producer_id, "{row}");
        assert_eq!(row["producer_epoch"], epoch, "{row}");
        assert_eq!(row["last_sequence"], last_sequence, "{row}");
        assert_eq!(row["current_txn_start_offset"], 0, "{row}");
        assert!(row["last_timestamp"].as_i64().unwrap() > 0, "{row}");
    }
    let text = basalt(&b, &["txn", "producers", TOPIC, "-p", "1"]);
    assert!(text.ok, "{}", text.stderr);
    let epoch_text = epoch.to_string();
    let table = rows_starting(&text.stdout, "1");
    assert_eq!(table.len(), 1, "{}", text.stdout);
    assert_eq!(
        [table[0][1], table[0][2], table[0][3], table[0][5]],
        [pid.as_str(), epoch_text.as_str(), "0", "0"],
        "{}",
        text.stdout
    );
    assert!(
        rows_starting(&text.stdout, "0").is_empty(),
        "{}",
        text.stdout
    );

    // Committed: CompleteCommit, nothing open.
    p.commit_transaction(TIMEOUT).unwrap();
    let deadline = Instant::now() + TIMEOUT;
    let done = loop {
        let t = listed(&b);
        if t["state"] == "CompleteCommit" {
            break t;
        }
        assert!(Instant::now() < deadline, "never CompleteCommit: {t}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(done["producer_id"], producer_id, "{done}");
    assert!(listed_ids(&b, &["--state", "Ongoing"]).is_empty());
    assert_eq!(
        listed_ids(&b, &["--state", "Ongoing,CompleteCommit"]),
        [TXN_ID]
    );

    let d = describe(&b);
    assert_eq!(d["state"], "CompleteCommit", "{d}");
    assert_eq!(d["partitions"], serde_json::json!([]), "{d}");
    assert_eq!(d["start_time"], Value::Null, "{d}");
    assert_eq!(d["age_s"], Value::Null, "{d}");
    let text = basalt(&b, &["txn", "describe", TXN_ID]);
    assert!(text.ok, "{}", text.stderr);
    assert!(
        text.stdout.contains("START-TIME        -\n"),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout.contains("PARTITIONS        -\n"),
        "{}",
        text.stdout
    );

    let rows = producers(&b);
    assert_eq!(rows.len(), 2, "{rows:?}");
    for row in &rows {
        assert_eq!(row["producer_id"], producer_id, "{row}");
        assert_eq!(row["producer_epoch"], d["producer_epoch"], "{row}");
        assert_eq!(row["current_txn_start_offset"], Value::Null, "{row}");
    }
    let text = basalt(&b, &["txn", "producers", TOPIC]);
    assert!(text.ok, "{}", text.stderr);
    for partition in ["0", "1"] {
        let table = rows_starting(&text.stdout, partition);
        assert_eq!(table.len(), 1, "{}", text.stdout);
        assert_eq!(table[0][1], pid, "{}", text.stdout);
        assert_eq!(table[0][5], "-", "{}", text.stdout);
    }
}

#[test]
fn txn_cli_names_unknown_ids_states_and_partitions() {
    let broker = TestBroker::start();
    let b = broker.bootstrap();
    create_topic(&b, TOPIC, 1, &[]);

    let gone = basalt(&b, &["txn", "describe", "nobody"]);
    assert!(!gone.ok, "{}", gone.stdout);
    assert!(
        gone.stderr.contains(
            "transactional id \"nobody\" does not exist: TRANSACTIONAL_ID_NOT_FOUND (105)"
        ),
        "{}",
        gone.stderr
    );
    let json = basalt(&b, &["txn", "describe", "nobody", "--json"]);
    assert!(!json.ok);
    assert_eq!(
        serde_json::from_str::<Value>(&json.stdout).unwrap(),
        serde_json::json!([])
    );

    let bogus = basalt(&b, &["txn", "list", "--state", "Ongoing,Bogus"]);
    assert!(!bogus.ok, "{}", bogus.stdout);
    assert!(
        bogus.stderr.contains("unknown transaction state \"Bogus\""),
        "{}",
        bogus.stderr
    );
    assert!(!bogus.stderr.contains("\"Ongoing\""), "{}", bogus.stderr);

    assert_eq!(
        basalt_json(&b, &["txn", "list", "--json"]),
        serde_json::json!([])
    );
    assert_eq!(
        basalt_json(&b, &["txn", "producers", TOPIC, "--json"]),
        serde_json::json!([])
    );
    let no_partition = basalt(&b, &["txn", "producers", TOPIC, "-p", "3"]);
    assert!(!no_partition.ok, "{}", no_partition.stdout);
    assert!(
        no_partition.stderr.contains("has no partition 3"),
        "{}",
        no_partition.stderr
    );
    let no_topic = basalt(&b, &["txn", "producers", "missing"]);
    assert!(!no_topic.ok, "{}", no_topic.stdout);
    assert!(
        no_topic.stderr.contains("topic \"missing\" does not exist"),
        "{}",
        no_topic.stderr
    );
}
