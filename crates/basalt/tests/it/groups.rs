//! Consumer groups with real librdkafka consumers: partitions split between members, rebalances
//! on join, leave and session expiry, committed offsets across restarts, static membership and
//! cooperative rebalancing, for the classic protocol and for KIP-848 (`group.protocol=consumer`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use basalt_protocol::messages::consumer_protocol_subscription::ConsumerProtocolSubscription;
use basalt_protocol::messages::heartbeat_request::HeartbeatRequest;
use basalt_protocol::messages::join_group_request::{JoinGroupRequest, JoinGroupRequestProtocol};
use basalt_protocol::messages::sync_group_request::SyncGroupRequest;
use basalt_protocol::{ErrorCode, RequestBody, ResponseBody};
use basalt_testkit::{ProcessBroker, TestBroker};
use bytes::{BufMut, Bytes};
use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::Message;
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};

use crate::common::{RawClient, TIMEOUT, create_topic, producer, send_one};

/// Counts the rebalance callbacks a consumer saw.
#[derive(Default, Clone)]
struct Rebalances(Arc<Mutex<Vec<String>>>);

impl ClientContext for Rebalances {
    fn log(&self, _level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        eprintln!("rdkafka {fac}: {log_message}");
    }
}

impl ConsumerContext for Rebalances {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let what = match rebalance {
            Rebalance::Assign(tpl) => format!("assign {}", tpl.count()),
            Rebalance::Revoke(tpl) => format!("revoke {}", tpl.count()),
            Rebalance::Error(e) => format!("error {e}"),
        };
        self.0.lock().unwrap().push(what);
    }
}

type GroupConsumer = BaseConsumer<Rebalances>;

/// Which group protocol a test runs with.
#[derive(Clone, Copy, Debug)]
enum Protocol {
    Classic,
    Consumer,
}

fn group_consumer(
    bootstrap: &str,
    group: &str,
    protocol: Protocol,
    extra: &[(&str, &str)],
) -> (GroupConsumer, Rebalances) {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", "100")
        .set("reconnect.backoff.ms", "20")
        .set("retry.backoff.ms", "20");
    match protocol {
        Protocol::Classic => {
            config
                .set("group.protocol", "classic")
                .set("session.timeout.ms", "6000")
                .set("heartbeat.interval.ms", "200");
        }
        Protocol::Consumer => {
            config.set("group.protocol", "consumer");
        }
    }
    for (k, v) in extra {
        config.set(*k, *v);
    }
    if let Ok(debug) = std::env::var("BASALT_TEST_RDKAFKA_DEBUG") {
        config.set("debug", debug);
    }
    let context = Rebalances::default();
    let consumer: GroupConsumer = config.create_with_context(context.clone()).unwrap();
    (consumer, context)
}

/// A broker whose groups rebalance without the initial delay and whose KIP-848 members
/// heartbeat quickly.
fn quick_broker() -> TestBroker {
    TestBroker::start_with(|c| {
        c.groups.initial_rebalance_delay_ms = 0;
        c.groups.min_session_timeout_ms = 1000;
        c.groups.consumer_heartbeat_interval_ms = 200;
        c.groups.consumer_session_timeout_ms = 3000;
        c.offsets_topic_num_partitions = 4;
    })
}

/// Produces records `{partition}-{i}` for `i` in `from..from + count` to every partition.
fn produce_n(bootstrap: &str, topic: &str, partitions: i32, from: usize, count: usize) {
    let p = producer(bootstrap, &[]);
    for part in 0..partitions {
        for i in from..from + count {
            let value = format!("{part}-{i}");
            send_one(
                &p,
                FutureRecord::to(topic)
                    .partition(part)
                    .payload(value.as_bytes()),
            );
        }
    }
}

fn assigned(c: &GroupConsumer) -> BTreeSet<i32> {
    c.assignment()
        .map(|tpl| tpl.elements().iter().map(|e| e.partition()).collect())
        .unwrap_or_default()
}

/// Polls every consumer until `done` says so, collecting (consumer index, partition, value).
fn poll_until(
    consumers: &[&GroupConsumer],
    seen: &mut Vec<(usize, i32, String)>,
    what: &str,
    mut done: impl FnMut(&[(usize, i32, String)], &[&GroupConsumer]) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done(seen, consumers) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        for (i, c) in consumers.iter().enumerate() {
            match c.poll(Duration::from_millis(20)) {
                Some(Ok(m)) => seen.push((
                    i,
                    m.partition(),
                    String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
                )),
                Some(Err(e)) => panic!("{what}: consumer {i}: {e}"),
                None => {}
            }
        }
    }
}

/// Commits the consumer's positions (the next offset to read of each assigned partition) and
/// checks that every partition was accepted.
fn commit_positions(c: &GroupConsumer) {
    let positions = c.position().unwrap();
    c.commit(&positions, CommitMode::Sync).unwrap();
    let committed = c.committed(TIMEOUT).unwrap();
    for e in positions.elements() {
        let got = committed
            .find_partition(e.topic(), e.partition())
            .map(|c| c.offset());
        assert_eq!(
            got,
            Some(e.offset()),
            "commit of {}/{}",
            e.topic(),
            e.partition()
        );
    }
}

fn split_and_leave(protocol: Protocol) {
    let broker = quick_broker();
    let b = broker.bootstrap();
    let topic = "split";
    create_topic(&b, topic, 4, &[]);
    let (c1, _) = group_consumer(&b, "g-split", protocol, &[]);
    let (c2, _) = group_consumer(&b, "g-split", protocol, &[]);
    c1.subscribe(&[topic]).unwrap();
    c2.subscribe(&[topic]).unwrap();
    let mut seen = Vec::new();
    // The group settles first (a partition that moves while nothing is committed would be read
    // again by its next owner: at-least-once), then the records arrive.
    poll_until(&[&c1, &c2], &mut seen, "the group to settle", |_, cs| {
        let (a, b) = (assigned(cs[0]), assigned(cs[1]));
        !a.is_empty() && !b.is_empty() && a.len() + b.len() == 4
    });
    produce_n(&b, topic, 4, 0, 5);
    poll_until(
        &[&c1, &c2],
        &mut seen,
        "two members to share 4 partitions",
        |seen, cs| {
            let a = assigned(cs[0]);
            let b = assigned(cs[1]);
            seen.len() >= 20 && !a.is_empty() && !b.is_empty() && a.len() + b.len() == 4
        },
    );
    let (a, bb) = (assigned(&c1), assigned(&c2));
    assert!(a.is_disjoint(&bb), "{a:?} and {bb:?} overlap");
    // Each record was read once, by the member owning its partition.
    let values: BTreeSet<&str> = seen.iter().map(|(_, _, v)| v.as_str()).collect();
    assert_eq!(values.len(), 20, "{seen:?}");
    assert_eq!(seen.len(), 20, "records read twice: {seen:?}");
    for (i, p, _) in &seen {
        let owner = if a.contains(p) { 0 } else { 1 };
        assert_eq!(*i, owner, "partition {p} read by the wrong member");
    }
    // Commit what was read, then the second member leaves: the first takes everything and
    // reads only what is new.
    commit_positions(&c2);
    commit_positions(&c1);
    drop(c2);
    produce_n(&b, topic, 4, 5, 1);
    let mut more = Vec::new();
    poll_until(
        &[&c1],
        &mut more,
        "the remaining member to own all partitions",
        |seen, cs| {
            let values: BTreeSet<&str> = seen.iter().map(|(_, _, v)| v.as_str()).collect();
            assigned(cs[0]).len() == 4 && values.len() >= 4
        },
    );
    // Nothing before the committed offsets is read again. (An eager rebalance may hand back a
    // partition whose newest record was already read but not committed: at-least-once.)
    let values: BTreeSet<&str> = more.iter().map(|(_, _, v)| v.as_str()).collect();
    assert_eq!(
        values,
        BTreeSet::from(["0-5", "1-5", "2-5", "3-5"]),
        "{more:?}"
    );
}

#[test]
fn classic_members_split_partitions_and_take_over_on_leave() {
    split_and_leave(Protocol::Classic);
}

#[test]
fn consumer_protocol_members_split_partitions_and_take_over_on_leave() {
    split_and_leave(Protocol::Consumer);
}

fn idle_third(protocol: Protocol) {
    let broker = quick_broker();
    let b = broker.bootstrap();
    create_topic(&b, "two", 2, &[]);
    let cs: Vec<GroupConsumer> = (0..3)
        .map(|_| group_consumer(&b, "g-idle", protocol, &[]).0)
        .collect();
    for c in &cs {
        c.subscribe(&["two"]).unwrap();
    }
    let refs: Vec<&GroupConsumer> = cs.iter().collect();
    let mut seen = Vec::new();
    poll_until(&refs, &mut seen, "2 partitions over 3 members", |_, cs| {
        let sets: Vec<BTreeSet<i32>> = cs.iter().map(|c| assigned(c)).collect();
        sets.iter().map(BTreeSet::len).sum::<usize>() == 2
            && sets.iter().filter(|s| s.is_empty()).count() == 1
    });
}

#[test]
fn classic_third_member_of_two_partitions_stays_idle() {
    idle_third(Protocol::Classic);
}

#[test]
fn consumer_protocol_third_member_of_two_partitions_stays_idle() {
    idle_third(Protocol::Consumer);
}

#[test]
fn groups_read_independently_and_resume_at_commits_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_basalt"));
    let args = [
        "--group.initial.rebalance.delay.ms",
        "0",
        "--offsets.topic.num.partitions",
        "3",
    ];
    let broker = ProcessBroker::start(bin, dir.path(), &args);
    let b = broker.bootstrap();
    create_topic(&b, "resume", 1, &[]);
    produce_n(&b, "resume", 1, 0, 10);
    // Group A reads 4 records and commits after them (with metadata); group B reads all.
    let (a, _) = group_consumer(&b, "g-a", Protocol::Classic, &[]);
    a.subscribe(&["resume"]).unwrap();
    let mut seen = Vec::new();
    poll_until(&[&a], &mut seen, "group A's first records", |s, _| {
        s.len() >= 4
    });
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("resume", 0, Offset::Offset(4))
        .unwrap();
    a.commit(&tpl, CommitMode::Sync).unwrap();
    let (bc, _) = group_consumer(&b, "g-b", Protocol::Classic, &[]);
    bc.subscribe(&["resume"]).unwrap();
    let mut seen_b = Vec::new();
    poll_until(&[&bc], &mut seen_b, "group B's records", |s, _| {
        s.len() >= 10
    });
    commit_positions(&bc);
    drop(a);
    drop(bc);
    let (status, log) = broker.terminate();
    assert!(status.success(), "broker did not stop cleanly:\n{log}");

    let broker = ProcessBroker::start(bin, dir.path(), &args);
    let b = broker.bootstrap();
    let (a, _) = group_consumer(&b, "g-a", Protocol::Classic, &[]);
    // Both groups came back, empty, with their protocol type.
    let listed = a.fetch_group_list(None, TIMEOUT).unwrap();
    let groups: BTreeMap<String, (String, String)> = listed
        .groups()
        .iter()
        .map(|g| {
            (
                g.name().to_owned(),
                (g.state().to_owned(), g.protocol_type().to_owned()),
            )
        })
        .collect();
    for name in ["g-a", "g-b"] {
        assert_eq!(
            groups.get(name),
            Some(&("Empty".to_owned(), "consumer".to_owned())),
            "{name} after restart: {groups:?}"
        );
    }
    let committed = a
        .committed_offsets(
            {
                let mut t = TopicPartitionList::new();
                t.add_partition("resume", 0);
                t
            },
            TIMEOUT,
        )
        .unwrap();
    assert_eq!(
        committed.find_partition("resume", 0).unwrap().offset(),
        Offset::Offset(4)
    );
    a.subscribe(&["resume"]).unwrap();
    let mut after = Vec::new();
    poll_until(&[&a], &mut after, "group A to resume", |s, _| s.len() >= 6);
    let values: Vec<&str> = after.iter().map(|(_, _, v)| v.as_str()).collect();
    assert_eq!(values, ["0-4", "0-5", "0-6", "0-7", "0-8", "0-9"]);
    // Group B committed everything: it reads nothing old.
    let (bc, _) = group_consumer(&b, "g-b", Protocol::Classic, &[]);
    bc.subscribe(&["resume"]).unwrap();
    produce_n(&b, "resume", 1, 10, 1);
    let mut after_b = Vec::new();
    poll_until(&[&bc], &mut after_b, "group B to resume", |s, _| {
        !s.is_empty()
    });
    assert_eq!(after_b[0].2, "0-10");
    drop(a);
    drop(bc);
    let (status, log) = broker.terminate();
    assert!(status.success(), "broker did not stop cleanly:\n{log}");
}

/// A classic group member spoken to in raw protocol: it joins, syncs, and then goes silent as a
/// crashed process would (no LeaveGroup, no heartbeats).
struct RawMember {
    client: RawClient,
}

impl RawMember {
    fn connect(addr: std::net::SocketAddr) -> Self {
        RawMember {
            client: RawClient::connect(addr, "raw-member"),
        }
    }

    fn call(&mut self, version: i16, body: RequestBody) -> ResponseBody {
        self.client.call(version, body)
    }

    /// Joins `group` subscribed to `topic` (as a static member with `instance`) and syncs;
    /// returns its member id, generation and assignment.
    fn join_and_sync(
        &mut self,
        group: &str,
        topic: &str,
        session_timeout_ms: i32,
        instance: Option<&str>,
    ) -> (String, i32, Bytes) {
        let mut metadata = basalt_protocol::Encoder::new();
        metadata.put_i16(0);
        ConsumerProtocolSubscription {
            topics: vec![topic.to_owned()],
            ..ConsumerProtocolSubscription::default()
        }
        .encode(&mut metadata, 0)
        .unwrap();
        let metadata = metadata.into_bytes().unwrap();
        let join = |member_id: String| {
            RequestBody::JoinGroup(JoinGroupRequest {
                group_id: group.to_owned(),
                session_timeout_ms,
                rebalance_timeout_ms: 10_000,
                member_id,
                group_instance_id: instance.map(str::to_owned),
                protocol_type: "consumer".into(),
                protocols: vec![JoinGroupRequestProtocol {
                    name: "range".into(),
                    metadata: metadata.clone(),
                    ..JoinGroupRequestProtocol::default()
                }],
                ..JoinGroupRequest::default()
            })
        };
        let ResponseBody::JoinGroup(mut joined) = self.call(5, join(String::new())) else {
            panic!("not a JoinGroup response")
        };
        if instance.is_none() {
            // A dynamic member first learns its id.
            assert_eq!(joined.error_code, ErrorCode::MemberIdRequired.code());
            let ResponseBody::JoinGroup(j) = self.call(5, join(joined.member_id.clone())) else {
                panic!("not a JoinGroup response")
            };
            joined = j;
        }
        assert_eq!(joined.error_code, 0, "join failed");
        let ResponseBody::SyncGroup(synced) = self.call(
            3,
            RequestBody::SyncGroup(SyncGroupRequest {
                group_id: group.to_owned(),
                generation_id: joined.generation_id,
                member_id: joined.member_id.clone(),
                group_instance_id: instance.map(str::to_owned),
                ..SyncGroupRequest::default()
            }),
        ) else {
            panic!("not a SyncGroup response")
        };
        assert_eq!(synced.error_code, 0, "sync failed");
        (joined.member_id, joined.generation_id, synced.assignment)
    }
}

#[test]
fn a_member_that_stops_heartbeating_is_removed_after_its_session_timeout() {
    let broker = TestBroker::start_with(|c| {
        c.groups.initial_rebalance_delay_ms = 0;
        c.groups.min_session_timeout_ms = 1000;
        c.offsets_topic_num_partitions = 2;
    });
    let b = broker.bootstrap();
    create_topic(&b, "expiry", 2, &[]);
    let (c1, _) = group_consumer(&b, "g-exp", Protocol::Classic, &[]);
    c1.subscribe(&["expiry"]).unwrap();
    let mut seen = Vec::new();
    poll_until(
        &[&c1],
        &mut seen,
        "the first member to own both",
        |_, cs| assigned(cs[0]).len() == 2,
    );
    // A second member joins (the rebalance needs c1 to keep polling), syncs, then goes silent.
    let addr = broker.addr();
    let raw = std::thread::spawn(move || {
        let mut m = RawMember::connect(addr);
        let joined = m.join_and_sync("g-exp", "expiry", 1500, None);
        (m, joined)
    });
    poll_until(
        &[&c1],
        &mut seen,
        "the silent member to take a partition",
        |_, cs| assigned(cs[0]).len() == 1,
    );
    let (_silent, _id) = raw.join().unwrap();
    // Its session runs out: the live member owns both partitions again.
    poll_until(
        &[&c1],
        &mut seen,
        "the live member to own both again",
        |_, cs| assigned(cs[0]).len() == 2,
    );
    let members = broker
        .broker()
        .coordinator()
        .read("g-exp", |g| g.map(|g| g.state_name().to_owned()));
    assert_eq!(members.as_deref(), Some("Stable"));
}

#[test]
fn a_static_member_that_restarts_within_its_session_gets_its_partitions_back() {
    let broker = quick_broker();
    let b = broker.bootstrap();
    create_topic(&b, "static", 2, &[]);
    let extra = [
        ("group.instance.id", "i-1"),
        ("session.timeout.ms", "30000"),
    ];
    let (c1, r1) = group_consumer(&b, "g-static", Protocol::Classic, &extra);
    c1.subscribe(&["static"]).unwrap();
    let mut seen = Vec::new();
    poll_until(
        &[&c1],
        &mut seen,
        "the first static member to own both",
        |_, cs| assigned(cs[0]).len() == 2,
    );
    // A second static member (raw protocol) joins; c1 keeps polling so the rebalance completes.
    let addr = broker.addr();
    let first = std::thread::spawn(move || {
        let mut m = RawMember::connect(addr);
        let joined = m.join_and_sync("g-static", "static", 30_000, Some("i-2"));
        (m, joined)
    });
    poll_until(
        &[&c1],
        &mut seen,
        "the two static members to share",
        |_, cs| assigned(cs[0]).len() == 1,
    );
    let (old, (old_id, generation, assignment)) = first.join().unwrap();
    assert!(
        !assignment.is_empty(),
        "the static member got no assignment"
    );
    let events_before = r1.0.lock().unwrap().len();
    // It "restarts": a new connection with the same instance id and no member id. It is
    // answered at once with the same generation and gets the same assignment back.
    drop(old);
    let mut again = RawMember::connect(broker.addr());
    let (new_id, new_generation, new_assignment) =
        again.join_and_sync("g-static", "static", 30_000, Some("i-2"));
    assert_ne!(new_id, old_id);
    assert_eq!(new_generation, generation, "the group rebalanced");
    assert_eq!(new_assignment, assignment);
    // The other member saw nothing, and keeps consuming its partition.
    for _ in 0..20 {
        let _ = c1.poll(Duration::from_millis(20));
    }
    assert_eq!(r1.0.lock().unwrap().len(), events_before);
    assert_eq!(assigned(&c1).len(), 1);
    // The old member id is fenced.
    let ResponseBody::Heartbeat(hb) = again.call(
        3,
        RequestBody::Heartbeat(HeartbeatRequest {
            group_id: "g-static".into(),
            generation_id: generation,
            member_id: old_id,
            group_instance_id: Some("i-2".into()),
            ..HeartbeatRequest::default()
        }),
    ) else {
        panic!("not a Heartbeat response")
    };
    assert_eq!(hb.error_code, ErrorCode::FencedInstanceId.code());
}

#[test]
fn cooperative_sticky_rebalance_keeps_unaffected_partitions() {
    let broker = quick_broker();
    let b = broker.bootstrap();
    create_topic(&b, "coop", 4, &[]);
    let extra = [("partition.assignment.strategy", "cooperative-sticky")];
    let (c1, r1) = group_consumer(&b, "g-coop", Protocol::Classic, &extra);
    c1.subscribe(&["coop"]).unwrap();
    let mut seen = Vec::new();
    poll_until(&[&c1], &mut seen, "the first member to own all", |_, cs| {
        assigned(cs[0]).len() == 4
    });
    let (c2, _) = group_consumer(&b, "g-coop", Protocol::Classic, &extra);
    c2.subscribe(&["coop"]).unwrap();
    poll_until(
        &[&c1, &c2],
        &mut seen,
        "an incremental handover",
        |_, cs| assigned(cs[0]).len() == 2 && assigned(cs[1]).len() == 2,
    );
    // The first member only ever revoked the two partitions it handed over.
    let events = r1.0.lock().unwrap().clone();
    assert!(
        events.iter().all(|e| e != "revoke 4"),
        "an eager revocation happened: {events:?}"
    );
    assert!(events.contains(&"revoke 2".to_owned()), "{events:?}");
}

/// The groups a broker's ListGroups reports, through the admin-style DescribeGroups of the
/// librdkafka consumer API.
#[test]
fn committed_metadata_round_trips_and_group_is_listed() {
    let broker = quick_broker();
    let b = broker.bootstrap();
    create_topic(&b, "meta", 1, &[]);
    let (c, _) = group_consumer(&b, "g-meta", Protocol::Classic, &[]);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("meta", 0, Offset::Offset(0))
        .unwrap();
    c.assign(&tpl).unwrap();
    let mut commit = TopicPartitionList::new();
    let mut e = commit.add_partition("meta", 0);
    e.set_offset(Offset::Offset(0)).unwrap();
    e.set_metadata("checkpoint-7");
    c.commit(&commit, CommitMode::Sync).unwrap();
    let mut want = TopicPartitionList::new();
    want.add_partition("meta", 0);
    let got = c.committed_offsets(want, TIMEOUT).unwrap();
    let p = got.find_partition("meta", 0).unwrap();
    assert_eq!(p.offset(), Offset::Offset(0));
    assert_eq!(p.metadata(), "checkpoint-7");
    let groups = c.fetch_group_list(None, TIMEOUT).unwrap();
    let names: BTreeMap<String, String> = groups
        .groups()
        .iter()
        .map(|g| (g.name().to_owned(), g.state().to_owned()))
        .collect();
    assert_eq!(names.get("g-meta").map(String::as_str), Some("Empty"));
}

/// `__consumer_offsets` does not grow without bound: once a partition passes
/// `offsets.topic.segment.bytes`, its live state is rewritten and the old records dropped, and
/// a restart still finds the last commit of every partition.
#[test]
fn the_offsets_topic_is_compacted_and_keeps_the_last_commits() {
    let dir = tempfile::tempdir().unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_basalt"));
    let args = [
        "--offsets.topic.num.partitions",
        "1",
        "--offsets.topic.segment.bytes",
        "16384",
    ];
    let broker = ProcessBroker::start(bin, dir.path(), &args);
    let b = broker.bootstrap();
    create_topic(&b, "compacted", 2, &[]);
    let (c, _) = group_consumer(&b, "g-compact", Protocol::Classic, &[]);
    let metadata = "m".repeat(200);
    for i in 0..300i64 {
        let mut tpl = TopicPartitionList::new();
        for p in 0..2 {
            let mut e = tpl.add_partition("compacted", p);
            e.set_offset(Offset::Offset(i + i64::from(p))).unwrap();
            e.set_metadata(metadata.clone());
        }
        c.commit(&tpl, CommitMode::Sync).unwrap();
    }
    // Wait until the old records are gone from the front of the log.
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let (low, high) = c
            .fetch_watermarks("__consumer_offsets", 0, TIMEOUT)
            .unwrap();
        if low > 0 {
            assert!(high - low < 300, "{low}..{high}: still holds most records");
            break;
        }
        assert!(Instant::now() < deadline, "never compacted: {low}..{high}");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(c);
    let (status, log) = broker.terminate();
    assert!(status.success(), "broker did not stop cleanly:\n{log}");

    let broker = ProcessBroker::start(bin, dir.path(), &args);
    let (c, _) = group_consumer(&broker.bootstrap(), "g-compact", Protocol::Classic, &[]);
    let mut want = TopicPartitionList::new();
    want.add_partition("compacted", 0);
    want.add_partition("compacted", 1);
    let got = c.committed_offsets(want, TIMEOUT).unwrap();
    for p in 0..2 {
        let e = got.find_partition("compacted", p).unwrap();
        assert_eq!(e.offset(), Offset::Offset(299 + i64::from(p)));
        assert_eq!(e.metadata(), metadata);
    }
    drop(c);
    let (status, log) = broker.terminate();
    assert!(status.success(), "broker did not stop cleanly:\n{log}");
}

/// Offsets of a group without members expire after `offsets.retention.minutes` (shortened
/// here): a group that had members once it has been empty that long, a group that only
/// commits (no members ever) by the age of each commit.
#[test]
fn offsets_of_empty_groups_expire_after_retention() {
    let broker = TestBroker::start_with(|c| {
        c.groups.initial_rebalance_delay_ms = 0;
        c.groups.offsets_retention_ms = 1500;
        c.offsets_topic_num_partitions = 2;
    });
    let b = broker.bootstrap();
    create_topic(&b, "expiring", 1, &[]);
    produce_n(&b, "expiring", 1, 0, 3);
    // A member reads and commits, then leaves.
    let (member, _) = group_consumer(&b, "g-was-active", Protocol::Classic, &[]);
    member.subscribe(&["expiring"]).unwrap();
    let mut seen = Vec::new();
    poll_until(&[&member], &mut seen, "the member's records", |s, _| {
        s.len() >= 3
    });
    commit_positions(&member);
    drop(member);
    // A standalone consumer commits without joining.
    let (standalone, _) = group_consumer(&b, "g-standalone", Protocol::Classic, &[]);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("expiring", 0, Offset::Offset(2))
        .unwrap();
    standalone.commit(&tpl, CommitMode::Sync).unwrap();
    let committed = |group: &str| {
        let (c, _) = group_consumer(&b, group, Protocol::Classic, &[]);
        let mut want = TopicPartitionList::new();
        want.add_partition("expiring", 0);
        let got = c.committed_offsets(want, TIMEOUT).unwrap();
        got.find_partition("expiring", 0).unwrap().offset()
    };
    assert_eq!(committed("g-was-active"), Offset::Offset(3));
    assert_eq!(committed("g-standalone"), Offset::Offset(2));
    let deadline = Instant::now() + TIMEOUT;
    while committed("g-was-active") != Offset::Invalid
        || committed("g-standalone") != Offset::Invalid
    {
        assert!(Instant::now() < deadline, "offsets never expired");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A static *leader* that restarts gets the current generation back at any JoinGroup version
/// (KIP-814's skip-assignment flag exists only from v9; older leaders just recompute).
#[test]
fn a_static_leader_rejoins_at_an_old_join_group_version() {
    let broker = quick_broker();
    create_topic(&broker.bootstrap(), "static-leader", 1, &[]);
    let mut first = RawMember::connect(broker.addr());
    let (id, generation, _) =
        first.join_and_sync("g-static-leader", "static-leader", 30_000, Some("i-1"));
    drop(first);
    let mut again = RawMember::connect(broker.addr());
    let (new_id, new_generation, _) =
        again.join_and_sync("g-static-leader", "static-leader", 30_000, Some("i-1"));
    assert_ne!(new_id, id);
    assert_eq!(new_generation, generation, "the group rebalanced");
}

/// The same with two librdkafka static members: one closes (librdkafka sends no LeaveGroup for
/// a static member) and a new consumer with its instance id takes its place without a
/// rebalance; the other member sees no revocation.
#[test]
fn a_restarted_librdkafka_static_member_causes_no_rebalance() {
    let broker = quick_broker();
    let b = broker.bootstrap();
    create_topic(&b, "static-rk", 2, &[]);
    let extra1 = [
        ("group.instance.id", "i-1"),
        ("session.timeout.ms", "30000"),
    ];
    let extra2 = [
        ("group.instance.id", "i-2"),
        ("session.timeout.ms", "30000"),
    ];
    let (c1, r1) = group_consumer(&b, "g-static-rk", Protocol::Classic, &extra1);
    let (c2, _) = group_consumer(&b, "g-static-rk", Protocol::Classic, &extra2);
    c1.subscribe(&["static-rk"]).unwrap();
    c2.subscribe(&["static-rk"]).unwrap();
    let mut seen = Vec::new();
    poll_until(
        &[&c1, &c2],
        &mut seen,
        "both static members assigned",
        |_, cs| assigned(cs[0]).len() == 1 && assigned(cs[1]).len() == 1,
    );
    let before = assigned(&c2);
    let events_before = r1.0.lock().unwrap().len();
    drop(c2);
    let (c2, _) = group_consumer(&b, "g-static-rk", Protocol::Classic, &extra2);
    c2.subscribe(&["static-rk"]).unwrap();
    poll_until(
        &[&c1, &c2],
        &mut seen,
        "the restarted member's partition",
        |_, cs| assigned(cs[1]).len() == 1,
    );
    assert_eq!(assigned(&c2), before);
    assert_eq!(assigned(&c1).len(), 1);
    let events = r1.0.lock().unwrap().clone();
    assert_eq!(
        events.len(),
        events_before,
        "the other member rebalanced: {events:?}"
    );
}
