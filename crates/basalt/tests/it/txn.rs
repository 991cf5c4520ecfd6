//! Transactions with librdkafka's transactional producer: what read_committed and
//! read_uncommitted consumers see of committed and aborted transactions, offsets committed with
//! the output (consume → transform → produce), fencing of a second producer with the same
//! transactional id, the abort of a transaction left open past its timeout, and a commit that is
//! completed after the broker was killed between the decision and the markers.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use basalt_testkit::{ProcessBroker, TestBroker};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerGroupMetadata};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

use crate::common::{TIMEOUT, create_topic, producer, send_one, text};
use rdkafka::producer::FutureRecord;

type TxnProducer = ThreadedProducer<DefaultProducerContext>;

/// A transactional producer for `id`, initialised.
fn txn_producer(bootstrap: &str, id: &str, extra: &[(&str, &str)]) -> TxnProducer {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("transactional.id", id)
        .set("linger.ms", "5")
        .set("reconnect.backoff.ms", "20")
        .set("reconnect.backoff.max.ms", "500")
        .set("retry.backoff.ms", "20");
    for (k, v) in extra {
        config.set(*k, *v);
    }
    let p: TxnProducer = config.create().unwrap();
    p.init_transactions(TIMEOUT).unwrap();
    p
}

fn send(p: &TxnProducer, topic: &str, partition: i32, value: &str) {
    p.send(
        BaseRecord::<(), str>::to(topic)
            .partition(partition)
            .payload(value),
    )
    .unwrap_or_else(|(e, _)| panic!("could not enqueue: {e}"));
}

/// A consumer assigned to `partitions` of `topic` from the start, at `isolation`.
fn reader(bootstrap: &str, topic: &str, partitions: &[i32], isolation: &str) -> BaseConsumer {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "txn-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", "100")
        .set("isolation.level", isolation)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        tpl.add_partition_offset(topic, *p, Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    c
}

/// Values read by `c` until `done` says enough, panicking after [`TIMEOUT`].
fn read_until(
    c: &BaseConsumer,
    mut done: impl FnMut(&[OwnedMessage]) -> bool,
) -> Vec<OwnedMessage> {
    let mut got = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    while !done(&got) {
        assert!(
            Instant::now() < deadline,
            "read {:?} within {TIMEOUT:?}",
            got.iter().map(text).collect::<Vec<_>>()
        );
        match c.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => got.push(m.detach()),
            Some(Err(e)) => panic!("consume error: {e}"),
        }
    }
    got
}

fn values(msgs: &[OwnedMessage]) -> Vec<String> {
    msgs.iter().map(|m| text(m).to_owned()).collect()
}

/// The end offset a consumer at `isolation` sees for one partition.
fn end_offset(bootstrap: &str, topic: &str, partition: i32, isolation: &str) -> i64 {
    let c = reader(bootstrap, topic, &[], isolation);
    c.fetch_watermarks(topic, partition, TIMEOUT).unwrap().1
}

#[test]
fn committed_transactions_are_read_by_all_and_aborted_ones_only_uncommitted() {
    let broker = TestBroker::start();
    let b = broker.bootstrap();
    create_topic(&b, "txn-vis", 2, &[]);
    let p = txn_producer(&b, "vis", &[]);

    p.begin_transaction().unwrap();
    for i in 0..5 {
        send(&p, "txn-vis", i % 2, &format!("c1-{i}"));
    }
    p.commit_transaction(TIMEOUT).unwrap();

    p.begin_transaction().unwrap();
    for i in 0..4 {
        send(&p, "txn-vis", i % 2, &format!("a-{i}"));
    }
    p.flush(TIMEOUT).unwrap();
    p.abort_transaction(TIMEOUT).unwrap();

    p.begin_transaction().unwrap();
    for i in 0..3 {
        send(&p, "txn-vis", i % 2, &format!("c2-{i}"));
    }
    p.commit_transaction(TIMEOUT).unwrap();

    // Plain records after the transactions are visible to both.
    let plain = producer(&b, &[]);
    send_one(
        &plain,
        FutureRecord::to("txn-vis")
            .partition(0)
            .payload(b"plain".as_slice()),
    );

    let committed: Vec<String> = ["c1-0", "c1-2", "c1-4", "c2-0", "c2-2", "plain"]
        .map(String::from)
        .to_vec();
    let c = reader(&b, "txn-vis", &[0], "read_committed");
    let got = read_until(&c, |m| m.len() >= committed.len());
    assert_eq!(values(&got), committed);
    // Nothing more arrives: the aborted records were dropped, not delayed.
    assert!(c.poll(Duration::from_millis(500)).is_none());

    let c = reader(&b, "txn-vis", &[0], "read_uncommitted");
    let all: Vec<String> = [
        "c1-0", "c1-2", "c1-4", "a-0", "a-2", "c2-0", "c2-2", "plain",
    ]
    .map(String::from)
    .to_vec();
    let got = read_until(&c, |m| m.len() >= all.len());
    assert_eq!(values(&got), all);

    // Partition 1: c1-1, c1-3, (a-1, a-3 aborted), c2-1, and three markers in the offsets.
    let c = reader(&b, "txn-vis", &[1], "read_committed");
    let got = read_until(&c, |m| m.len() >= 3);
    assert_eq!(values(&got), vec!["c1-1", "c1-3", "c2-1"]);
    let offsets: Vec<i64> = got.iter().map(Message::offset).collect();
    // 2 records + marker, 2 aborted + marker, then c2-1.
    assert_eq!(offsets, vec![0, 1, 6]);
    assert_eq!(end_offset(&b, "txn-vis", 1, "read_committed"), 8);
}

#[test]
fn an_open_transaction_holds_read_committed_readers_at_its_first_offset() {
    let broker = TestBroker::start();
    let b = broker.bootstrap();
    create_topic(&b, "txn-lso", 1, &[]);
    let plain = producer(&b, &[]);
    for v in ["before-0", "before-1"] {
        send_one(
            &plain,
            FutureRecord::to("txn-lso")
                .partition(0)
                .payload(v.as_bytes()),
        );
    }
    let p = txn_producer(&b, "lso", &[]);
    p.begin_transaction().unwrap();
    send(&p, "txn-lso", 0, "open-0");
    p.flush(TIMEOUT).unwrap();
    // A plain record after the open transaction's first one waits behind it.
    send_one(
        &plain,
        FutureRecord::to("txn-lso")
            .partition(0)
            .payload(b"after".as_slice()),
    );
    assert_eq!(end_offset(&b, "txn-lso", 0, "read_committed"), 2);
    assert_eq!(end_offset(&b, "txn-lso", 0, "read_uncommitted"), 4);
    let c = reader(&b, "txn-lso", &[0], "read_committed");
    let got = read_until(&c, |m| m.len() >= 2);
    assert_eq!(values(&got), vec!["before-0", "before-1"]);
    assert!(c.poll(Duration::from_millis(300)).is_none());

    p.commit_transaction(TIMEOUT).unwrap();
    let got = read_until(&c, |m| m.len() >= 2);
    assert_eq!(values(&got), vec!["open-0", "after"]);
    assert_eq!(end_offset(&b, "txn-lso", 0, "read_committed"), 5);
}

/// A consumer in `group` subscribed to `topic`, reading committed data from the start.
fn group_reader(bootstrap: &str, group: &str, topic: &str) -> BaseConsumer {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", "100")
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    c.subscribe(&[topic]).unwrap();
    c
}

fn committed_offset(c: &BaseConsumer, topic: &str, partition: i32) -> Offset {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, partition);
    let got = c.committed_offsets(tpl, TIMEOUT).unwrap();
    got.find_partition(topic, partition).unwrap().offset()
}

/// Reads up to `n` records with `c`, transforms them into `out` in one transaction with their
/// offsets, and commits or aborts it. Returns the values read.
fn copy_batch(c: &BaseConsumer, p: &TxnProducer, out: &str, n: usize, commit: bool) -> Vec<String> {
    let got = read_until(c, |m| m.len() >= n);
    p.begin_transaction().unwrap();
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    for m in &got {
        send(p, out, m.partition(), &format!("copy-{}", text(m)));
        next.insert(m.partition(), m.offset() + 1);
    }
    let mut offsets = TopicPartitionList::new();
    for (partition, offset) in &next {
        offsets
            .add_partition_offset(got[0].topic(), *partition, Offset::Offset(*offset))
            .unwrap();
    }
    let meta: ConsumerGroupMetadata = c.group_metadata().unwrap();
    p.send_offsets_to_transaction(&offsets, &meta, TIMEOUT)
        .unwrap();
    if commit {
        p.commit_transaction(TIMEOUT).unwrap();
    } else {
        p.abort_transaction(TIMEOUT).unwrap();
    }
    values(&got)
}

#[test]
fn consume_transform_produce_commits_offsets_with_the_output() {
    let broker = TestBroker::start_with(|c| {
        c.groups.initial_rebalance_delay_ms = 0;
        c.offsets_topic_num_partitions = 4;
        c.transaction_state_num_partitions = 4;
    });
    let b = broker.bootstrap();
    create_topic(&b, "ctp-in", 1, &[]);
    create_topic(&b, "ctp-out", 1, &[]);
    let plain = producer(&b, &[]);
    for i in 0..6 {
        let v = format!("m{i}");
        send_one(
            &plain,
            FutureRecord::to("ctp-in")
                .partition(0)
                .payload(v.as_bytes()),
        );
    }
    let p = txn_producer(&b, "ctp", &[]);
    let c = group_reader(&b, "ctp-group", "ctp-in");
    let first = copy_batch(&c, &p, "ctp-out", 3, true);
    assert_eq!(first, vec!["m0", "m1", "m2"]);
    assert_eq!(committed_offset(&c, "ctp-in", 0), Offset::Offset(3));
    drop(c);

    // An aborted copy moves neither the output nor the offsets.
    let c = group_reader(&b, "ctp-group", "ctp-in");
    let second = copy_batch(&c, &p, "ctp-out", 3, false);
    assert_eq!(second, vec!["m3", "m4", "m5"]);
    assert_eq!(committed_offset(&c, "ctp-in", 0), Offset::Offset(3));
    drop(c);

    // A new member resumes at the committed offset and copies the rest.
    let c = group_reader(&b, "ctp-group", "ctp-in");
    let third = copy_batch(&c, &p, "ctp-out", 3, true);
    assert_eq!(third, vec!["m3", "m4", "m5"]);
    assert_eq!(committed_offset(&c, "ctp-in", 0), Offset::Offset(6));

    let out = reader(&b, "ctp-out", &[0], "read_committed");
    let got = read_until(&out, |m| m.len() >= 6);
    assert_eq!(
        values(&got),
        ["m0", "m1", "m2", "m3", "m4", "m5"].map(|v| format!("copy-{v}"))
    );
}

fn is_fenced(e: &KafkaError) -> bool {
    e.rdkafka_error_code().is_some_and(|c| {
        matches!(
            c,
            RDKafkaErrorCode::Fenced
                | RDKafkaErrorCode::ProducerFenced
                | RDKafkaErrorCode::InvalidProducerEpoch
        )
    }) || e.to_string().to_lowercase().contains("fenced")
}

#[test]
fn a_second_producer_with_the_same_transactional_id_fences_the_first() {
    let broker = TestBroker::start();
    let b = broker.bootstrap();
    create_topic(&b, "txn-fence", 1, &[]);
    let zombie = txn_producer(&b, "fence", &[]);
    zombie.begin_transaction().unwrap();
    send(&zombie, "txn-fence", 0, "zombie");
    zombie.flush(TIMEOUT).unwrap();

    // The new producer's init aborts the zombie's open transaction.
    let fresh = txn_producer(&b, "fence", &[]);
    fresh.begin_transaction().unwrap();
    send(&fresh, "txn-fence", 0, "fresh");
    fresh.commit_transaction(TIMEOUT).unwrap();

    send(&zombie, "txn-fence", 0, "zombie-late");
    let err = zombie
        .commit_transaction(TIMEOUT)
        .expect_err("a fenced producer cannot commit");
    assert!(is_fenced(&err), "expected a fencing error, got {err}");

    let c = reader(&b, "txn-fence", &[0], "read_committed");
    let got = read_until(&c, |m| !m.is_empty());
    assert_eq!(values(&got), vec!["fresh"]);
    assert!(c.poll(Duration::from_millis(300)).is_none());
}

#[test]
fn a_transaction_left_open_past_its_timeout_is_aborted() {
    let broker = TestBroker::start();
    let b = broker.bootstrap();
    create_topic(&b, "txn-timeout", 1, &[]);
    let p = txn_producer(&b, "slow", &[("transaction.timeout.ms", "1000")]);
    p.begin_transaction().unwrap();
    send(&p, "txn-timeout", 0, "never");
    p.flush(TIMEOUT).unwrap();
    // The coordinator aborts it: the read_committed end moves past the abort marker.
    let deadline = Instant::now() + TIMEOUT;
    while end_offset(&b, "txn-timeout", 0, "read_committed") < 2 {
        assert!(
            Instant::now() < deadline,
            "the open transaction was never aborted"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let err = p
        .commit_transaction(TIMEOUT)
        .expect_err("a timed-out transaction cannot commit");
    assert!(
        is_fenced(&err) || err.to_string().contains("abort"),
        "unexpected error {err}"
    );
    let c = reader(&b, "txn-timeout", &[0], "read_committed");
    assert!(c.poll(Duration::from_millis(500)).is_none());
    let c = reader(&b, "txn-timeout", &[0], "read_uncommitted");
    let got = read_until(&c, |m| !m.is_empty());
    assert_eq!(values(&got), vec!["never"]);
}

#[test]
fn a_transaction_open_when_the_broker_was_killed_is_aborted_at_its_timeout_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_basalt"));
    let args = ["--transaction.state.log.num.partitions", "2"];
    let broker = ProcessBroker::start(bin, dir.path(), &args);
    let b = broker.bootstrap();
    create_topic(&b, "txn-orphan", 1, &[]);
    let p = txn_producer(&b, "orphan", &[("transaction.timeout.ms", "2000")]);
    p.begin_transaction().unwrap();
    send(&p, "txn-orphan", 0, "orphaned");
    p.flush(TIMEOUT).unwrap();
    broker.kill();
    drop(p);

    let broker = ProcessBroker::start(bin, dir.path(), &args);
    let b = broker.bootstrap();
    // The open transaction came back with the broker, and its timeout aborts it.
    let deadline = Instant::now() + TIMEOUT;
    while end_offset(&b, "txn-orphan", 0, "read_committed") < 2 {
        assert!(
            Instant::now() < deadline,
            "the orphaned transaction was never aborted"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let c = reader(&b, "txn-orphan", &[0], "read_committed");
    assert!(c.poll(Duration::from_millis(500)).is_none());
    let (status, log) = broker.terminate();
    assert!(status.success(), "log:\n{log}");
    assert!(
        log.contains("aborting a transaction past its timeout"),
        "log:\n{log}"
    );
}

#[test]
fn a_commit_decided_before_a_kill_is_completed_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_basalt"));
    // The broker exits the moment the commit decision is durable, before any marker.
    let broker = ProcessBroker::start_at(
        bin,
        dir.path(),
        "127.0.0.1:0",
        &["--transaction.state.log.num.partitions", "2"],
        &[("BASALT_FAIL_POINT", "txn-after-prepare-commit")],
    );
    let b = broker.bootstrap();
    create_topic(&b, "txn-crash", 2, &[]);
    let p = txn_producer(&b, "crash", &[("transaction.timeout.ms", "60000")]);
    p.begin_transaction().unwrap();
    for i in 0..4 {
        send(&p, "txn-crash", i % 2, &format!("v{i}"));
    }
    p.flush(TIMEOUT).unwrap();
    // The commit cannot be answered: the broker is gone.
    let _ = p.commit_transaction(Duration::from_secs(2));
    let log = broker.kill();
    assert!(log.contains("fail point"), "log:\n{log}");
    drop(p);

    let broker = ProcessBroker::start(bin, dir.path(), &[]);
    let b = broker.bootstrap();
    for partition in 0..2 {
        let c = reader(&b, "txn-crash", &[partition], "read_committed");
        let got = read_until(&c, |m| m.len() >= 2);
        let want: Vec<String> = (0..4)
            .filter(|i| i % 2 == partition)
            .map(|i| format!("v{i}"))
            .collect();
        assert_eq!(values(&got), want, "partition {partition}");
    }
    let (status, log) = broker.terminate();
    assert!(status.success(), "log:\n{log}");
    assert!(
        log.contains("finishing a decided transaction"),
        "log:\n{log}"
    );
}

mod raw {
    use basalt_protocol::messages::add_partitions_to_txn_request::{
        AddPartitionsToTxnRequest, AddPartitionsToTxnTopic,
    };
    use basalt_protocol::messages::describe_transactions_request::DescribeTransactionsRequest;
    use basalt_protocol::messages::end_txn_request::EndTxnRequest;
    use basalt_protocol::messages::init_producer_id_request::InitProducerIdRequest;
    use basalt_protocol::{ErrorCode, RequestBody, ResponseBody};
    use basalt_testkit::TestBroker;

    use crate::common::{RawClient, create_topic};

    fn init(c: &mut RawClient, id: &str) -> (i64, i16) {
        let ResponseBody::InitProducerId(r) = c.call(
            4,
            RequestBody::InitProducerId(InitProducerIdRequest {
                transactional_id: Some(id.into()),
                transaction_timeout_ms: 60_000,
                producer_id: -1,
                producer_epoch: -1,
                ..InitProducerIdRequest::default()
            }),
        ) else {
            panic!("not an InitProducerId response")
        };
        assert_eq!(r.error_code, 0);
        (r.producer_id, r.producer_epoch)
    }

    fn add(c: &mut RawClient, id: &str, (pid, epoch): (i64, i16), topic: &str) -> ErrorCode {
        let ResponseBody::AddPartitionsToTxn(r) = c.call(
            3,
            RequestBody::AddPartitionsToTxn(AddPartitionsToTxnRequest {
                v3_and_below_transactional_id: id.into(),
                v3_and_below_producer_id: pid,
                v3_and_below_producer_epoch: epoch,
                v3_and_below_topics: vec![AddPartitionsToTxnTopic {
                    name: topic.into(),
                    partitions: vec![0],
                    ..AddPartitionsToTxnTopic::default()
                }],
                ..AddPartitionsToTxnRequest::default()
            }),
        ) else {
            panic!("not an AddPartitionsToTxn response")
        };
        ErrorCode::try_from(
            r.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code,
        )
        .unwrap()
    }

    fn end(
        c: &mut RawClient,
        version: i16,
        id: &str,
        (pid, epoch): (i64, i16),
    ) -> (ErrorCode, i16) {
        let ResponseBody::EndTxn(r) = c.call(
            version,
            RequestBody::EndTxn(EndTxnRequest {
                transactional_id: id.into(),
                producer_id: pid,
                producer_epoch: epoch,
                committed: true,
                ..EndTxnRequest::default()
            }),
        ) else {
            panic!("not an EndTxn response")
        };
        (ErrorCode::try_from(r.error_code).unwrap(), r.producer_epoch)
    }

    fn state(c: &mut RawClient, id: &str) -> String {
        let ResponseBody::DescribeTransactions(r) = c.call(
            0,
            RequestBody::DescribeTransactions(DescribeTransactionsRequest {
                transactional_ids: vec![id.into()],
                ..DescribeTransactionsRequest::default()
            }),
        ) else {
            panic!("not a DescribeTransactions response")
        };
        r.transaction_states[0].transaction_state.clone()
    }

    #[test]
    fn a_late_end_txn_from_an_abandoned_connection_cannot_end_the_next_transaction() {
        let broker = TestBroker::start();
        create_topic(&broker.bootstrap(), "guard", 1, &[]);
        let mut old = RawClient::connect(broker.addr(), "guard");
        let producer = init(&mut old, "guard");
        assert_eq!(add(&mut old, "guard", producer, "guard"), ErrorCode::None);
        // The client gives up on `old` and carries on over a new connection.
        let mut new = RawClient::connect(broker.addr(), "guard");
        assert_eq!(end(&mut new, 3, "guard", producer).0, ErrorCode::None);
        assert_eq!(add(&mut new, "guard", producer, "guard"), ErrorCode::None);
        assert_eq!(state(&mut new, "guard"), "Ongoing");
        // A copy of the first EndTxn, read late from the old connection, is refused.
        assert_eq!(
            end(&mut old, 3, "guard", producer).0,
            ErrorCode::ConcurrentTransactions
        );
        assert_eq!(state(&mut new, "guard"), "Ongoing");
        assert_eq!(end(&mut new, 3, "guard", producer).0, ErrorCode::None);
        assert_eq!(state(&mut new, "guard"), "CompleteCommit");
        // A second producer fences the first: the first hears that it is fenced (a fatal
        // error), on whichever connection it speaks, and cannot hold up the second.
        let mut second = RawClient::connect(broker.addr(), "guard-2");
        let fresh = init(&mut second, "guard");
        assert_eq!(fresh.1, producer.1 + 1);
        assert_eq!(
            end(&mut old, 3, "guard", producer).0,
            ErrorCode::ProducerFenced
        );
        let mut zombie_again = RawClient::connect(broker.addr(), "guard");
        assert_eq!(
            add(&mut zombie_again, "guard", producer, "guard"),
            ErrorCode::ProducerFenced
        );
        assert_eq!(add(&mut second, "guard", fresh, "guard"), ErrorCode::None);
        assert_eq!(end(&mut second, 3, "guard", fresh).0, ErrorCode::None);
    }

    #[test]
    fn under_transaction_version_2_each_transaction_has_its_own_epoch() {
        let broker = TestBroker::start();
        create_topic(&broker.bootstrap(), "tv2", 1, &[]);
        let mut c = RawClient::connect(broker.addr(), "tv2");
        let (pid, epoch) = init(&mut c, "tv2");
        assert_eq!(add(&mut c, "tv2", (pid, epoch), "tv2"), ErrorCode::None);
        let (code, next) = end(&mut c, 5, "tv2", (pid, epoch));
        assert_eq!((code, next), (ErrorCode::None, epoch + 1));
        // A retry of that EndTxn is answered as done, with the new epoch.
        assert_eq!(
            end(&mut c, 5, "tv2", (pid, epoch)),
            (ErrorCode::None, epoch + 1)
        );
        // The next transaction runs at the bumped epoch; the old epoch cannot join or end it.
        assert_eq!(add(&mut c, "tv2", (pid, next), "tv2"), ErrorCode::None);
        assert_eq!(
            add(&mut c, "tv2", (pid, epoch), "tv2"),
            ErrorCode::ProducerFenced
        );
        assert_eq!(
            end(&mut c, 5, "tv2", (pid, epoch)).0,
            ErrorCode::ProducerFenced
        );
        assert_eq!(state(&mut c, "tv2"), "Ongoing");
        assert_eq!(
            end(&mut c, 5, "tv2", (pid, next)),
            (ErrorCode::None, next + 1)
        );
        assert_eq!(state(&mut c, "tv2"), "CompleteCommit");
    }
}

/// The shape of Kafka's own `transactions_test`: messages are copied from an input topic to an
/// output topic in transactions that also commit the input offsets, while the broker is killed
/// with SIGKILL and restarted several times. Afterwards the output holds exactly one committed
/// copy of every input message, in order, per partition.
#[test]
fn a_transactional_copy_survives_broker_kills_with_exactly_one_copy_of_each_message() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    const PARTITIONS: i32 = 3;
    const PER_PARTITION: usize = 3000;
    const TOTAL: usize = PARTITIONS as usize * PER_PARTITION;
    const KILLS: usize = 3;

    let dir = tempfile::tempdir().unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_basalt"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let args = [
        "--transaction.state.log.num.partitions",
        "3",
        "--offsets.topic.num.partitions",
        "3",
    ];
    let start = || ProcessBroker::start_at(bin, dir.path(), &listen, &args, &[]);
    let broker = Arc::new(Mutex::new(Some(start())));
    let b = listen.clone();
    create_topic(&b, "copy-in", PARTITIONS, &[]);
    create_topic(&b, "copy-out", PARTITIONS, &[]);
    let plain = producer(&b, &[("enable.idempotence", "true")]);
    for p in 0..PARTITIONS {
        for i in 0..PER_PARTITION {
            let v = format!("{p}-{i}");
            plain
                .send_result(
                    FutureRecord::<(), _>::to("copy-in")
                        .partition(p)
                        .payload(&v),
                )
                .unwrap();
        }
    }
    plain.flush(TIMEOUT).unwrap();
    drop(plain);

    // The killer: SIGKILL and restart once the copy has committed 20%, 45% and 70%.
    let copied = Arc::new(AtomicUsize::new(0));
    let killer = {
        let broker = Arc::clone(&broker);
        let copied = Arc::clone(&copied);
        let dir = dir.path().to_owned();
        let listen = listen.clone();
        std::thread::spawn(move || {
            for k in 0..KILLS {
                let threshold = TOTAL * (20 + 25 * k) / 100;
                let deadline = Instant::now() + 4 * TIMEOUT;
                while copied.load(Ordering::SeqCst) < threshold {
                    assert!(
                        Instant::now() < deadline,
                        "the copy stalled before kill {k}"
                    );
                    std::thread::sleep(Duration::from_millis(10));
                }
                let running = broker.lock().unwrap().take().unwrap();
                running.kill();
                std::thread::sleep(Duration::from_millis(200));
                let restarted = ProcessBroker::start_at(bin, &dir, &listen, &args, &[]);
                *broker.lock().unwrap() = Some(restarted);
            }
        })
    };

    let restarts = copy_transactionally(&b, PARTITIONS, PER_PARTITION as i64, &copied, 8 * TIMEOUT);
    killer.join().unwrap();
    assert!(restarts >= 1, "the kills never interrupted the copy");

    assert_one_committed_copy_of_each(&b, PARTITIONS, PER_PARTITION, || {
        broker
            .lock()
            .unwrap()
            .as_ref()
            .map(|b| b.log())
            .unwrap_or_default()
    });
    let running = broker.lock().unwrap().take().unwrap();
    let (status, log) = running.terminate();
    assert!(status.success(), "log:\n{log}");
}

/// The copier of the transactional copy tests: reads `copy-in` (`partitions` partitions of
/// `input_end` records each) from the group `copier`'s committed offsets and copies each batch
/// into `copy-out` in one transaction with its offsets, adding to `copied` what it committed;
/// on any error it drops its clients and starts again from the committed offsets. Returns how
/// many times it started again.
pub(crate) fn copy_transactionally(
    bootstrap: &str,
    partitions: i32,
    input_end: i64,
    copied: &std::sync::atomic::AtomicUsize,
    within: Duration,
) -> usize {
    use std::sync::atomic::Ordering;
    // The copier: reads from the committed offsets, copies a batch in one transaction with
    // its offsets; on any error it aborts, drops its clients and starts again from the
    // committed offsets.
    let deadline = Instant::now() + within;
    let mut restarts = 0;
    'copier: loop {
        assert!(Instant::now() < deadline, "the copy did not finish");
        let attempt = || -> Result<bool, KafkaError> {
            let mut config = ClientConfig::new();
            config
                .set("bootstrap.servers", bootstrap)
                .set("transactional.id", "copier")
                .set("transaction.timeout.ms", "10000")
                .set("message.timeout.ms", "10000")
                .set("linger.ms", "2")
                .set("reconnect.backoff.ms", "20")
                .set("reconnect.backoff.max.ms", "200")
                .set("retry.backoff.ms", "20");
            let p: TxnProducer = config.create()?;
            p.init_transactions(Duration::from_secs(10))?;
            let c: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", bootstrap)
                .set("group.id", "copier")
                .set("enable.auto.commit", "false")
                .set("isolation.level", "read_committed")
                .set("fetch.wait.max.ms", "50")
                .set("reconnect.backoff.ms", "20")
                .set("reconnect.backoff.max.ms", "200")
                .create()?;
            let mut wanted = TopicPartitionList::new();
            for p in 0..partitions {
                wanted.add_partition("copy-in", p);
            }
            let committed = c.committed_offsets(wanted, Duration::from_secs(10))?;
            let mut start = TopicPartitionList::new();
            let mut done = true;
            for e in committed.elements() {
                let offset = match e.offset() {
                    Offset::Offset(o) => o,
                    _ => 0,
                };
                done &= offset >= input_end;
                start
                    .add_partition_offset("copy-in", e.partition(), Offset::Offset(offset))
                    .unwrap();
            }
            if done {
                return Ok(true);
            }
            c.assign(&start)?;
            let meta = c.group_metadata().expect("group metadata");
            loop {
                let mut batch = Vec::new();
                let until = Instant::now() + Duration::from_millis(200);
                while batch.len() < 100 && Instant::now() < until {
                    match c.poll(Duration::from_millis(20)) {
                        None => {}
                        Some(m) => batch.push(m?.detach()),
                    }
                }
                if batch.is_empty() {
                    // Everything read: done once the committed offsets say so.
                    return Ok(false);
                }
                p.begin_transaction()?;
                let mut next: BTreeMap<i32, i64> = BTreeMap::new();
                for m in &batch {
                    p.send(
                        BaseRecord::<(), [u8]>::to("copy-out")
                            .partition(m.partition())
                            .payload(m.payload().unwrap()),
                    )
                    .map_err(|(e, _)| e)?;
                    next.insert(m.partition(), m.offset() + 1);
                }
                let mut offsets = TopicPartitionList::new();
                for (part, o) in &next {
                    offsets
                        .add_partition_offset("copy-in", *part, Offset::Offset(*o))
                        .unwrap();
                }
                p.send_offsets_to_transaction(&offsets, &meta, Duration::from_secs(10))?;
                p.commit_transaction(Duration::from_secs(10))?;
                copied.fetch_add(batch.len(), Ordering::SeqCst);
            }
        };
        match attempt() {
            Ok(true) => break 'copier,
            Ok(false) => {}
            Err(e) => {
                restarts += 1;
                eprintln!("copier restarts after: {e}");
            }
        }
    }
    restarts
}

/// Reads `copy-out` at read_committed and checks that it holds exactly one copy of every input
/// record `p-i` (`i < per_partition`), in order per partition; `log` gives the brokers' logs for
/// the failure message.
pub(crate) fn assert_one_committed_copy_of_each(
    bootstrap: &str,
    partitions: i32,
    per_partition: usize,
    log: impl Fn() -> String,
) {
    let total = partitions as usize * per_partition;
    let all: Vec<i32> = (0..partitions).collect();
    let c = reader(bootstrap, "copy-out", &all, "read_committed");
    let got = read_until(&c, |m| m.len() >= total);
    // Nothing beyond one copy of each.
    if let Some(extra) = c.poll(Duration::from_millis(500)) {
        let extra = extra.map(|m| {
            (
                m.partition(),
                m.offset(),
                String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
            )
        });
        let copies: Vec<(i64, String)> = got
            .iter()
            .filter(|m| {
                extra
                    .as_ref()
                    .is_ok_and(|(p, _, v)| m.partition() == *p && text(m) == v)
            })
            .map(|m| (m.offset(), text(m).to_owned()))
            .collect();
        let log = log();
        panic!(
            "a record beyond one copy of each: {extra:?}; read before: {copies:?}; broker log:\n{log}"
        );
    }
    let mut by_partition: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    for m in &got {
        by_partition
            .entry(m.partition())
            .or_default()
            .push(text(m).to_owned());
    }
    for p in 0..partitions {
        let want: Vec<String> = (0..per_partition).map(|i| format!("{p}-{i}")).collect();
        assert_eq!(by_partition.get(&p), Some(&want), "partition {p}");
    }
}
