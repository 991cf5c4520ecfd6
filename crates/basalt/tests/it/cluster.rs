//! Three `basalt serve` processes on loopback forming one cluster: the metadata quorum, topics
//! spread over the nodes' leaders, and librdkafka producing, consuming and running a consumer
//! group through the right leaders.
//!
//! Nothing here asserts on durations: each wait polls its condition and fails only when a
//! generous deadline passes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use basalt_protocol::messages::fetch_request::{FetchPartition, FetchRequest, FetchTopic};
use basalt_protocol::messages::heartbeat_request::HeartbeatRequest;
use basalt_protocol::messages::init_producer_id_request::InitProducerIdRequest;
use basalt_protocol::{ErrorCode, RequestBody, ResponseBody};
use basalt_testkit::ProcessBroker;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::metadata::Metadata;
use rdkafka::producer::FutureRecord;

use crate::common::{RawClient, TIMEOUT, consume_exactly, create_topic, producer, send_one};

/// How long the cluster may take to agree on something.
const DEADLINE: Duration = Duration::from_secs(60);

/// A loopback port free right now (for the quorum listeners, which every node must know
/// before any starts).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Three nodes with ids 1..=3, started together (each waits for a quorum leader, which needs
/// two of them).
struct Cluster {
    nodes: Vec<Option<ProcessBroker>>,
    voters: String,
    dirs: Vec<tempfile::TempDir>,
    /// Each node's Prometheus endpoint port.
    metrics: Vec<u16>,
}

fn node_args(id: usize, voters: &str, metrics_port: u16) -> Vec<String> {
    [
        "--node-id",
        &id.to_string(),
        "--controller.quorum.voters",
        voters,
        "--metrics.listen",
        &format!("127.0.0.1:{metrics_port}"),
        "--group.initial.rebalance.delay.ms",
        "0",
        "--offsets.topic.num.partitions",
        "6",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

impl Cluster {
    fn start() -> Cluster {
        let bin = Path::new(env!("CARGO_BIN_EXE_basalt"));
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let voters = ports
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{}@127.0.0.1:{p}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        let metrics: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let nodes = std::thread::scope(|s| {
            let handles: Vec<_> = dirs
                .iter()
                .enumerate()
                .map(|(i, dir)| {
                    let voters = voters.clone();
                    let metrics_port = metrics[i];
                    s.spawn(move || {
                        let args = node_args(i + 1, &voters, metrics_port);
                        let args: Vec<&str> = args.iter().map(String::as_str).collect();
                        ProcessBroker::start(bin, dir.path(), &args)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| Some(h.join().unwrap()))
                .collect::<Vec<_>>()
        });
        Cluster {
            nodes,
            voters,
            dirs,
            metrics,
        }
    }

    /// Starts node `i` (0-based) again over its data directory.
    fn restart(&mut self, i: usize) {
        let bin = Path::new(env!("CARGO_BIN_EXE_basalt"));
        let args = node_args(i + 1, &self.voters, self.metrics[i]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.nodes[i] = Some(ProcessBroker::start(bin, self.dirs[i].path(), &args));
    }

    /// Kills node `i` (0-based) with SIGKILL.
    fn kill(&mut self, i: usize) {
        self.nodes[i].take().expect("the node runs").kill();
    }

    fn node(&self, i: usize) -> &ProcessBroker {
        self.nodes[i].as_ref().expect("the node runs")
    }

    fn bootstrap(&self, i: usize) -> String {
        self.node(i).bootstrap()
    }

    fn logs(&self) -> String {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let log = n.as_ref().map(ProcessBroker::log).unwrap_or_default();
                format!("--- node {} ---\n{log}", i + 1)
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn metadata(bootstrap: &str, topic: Option<&str>) -> Metadata {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("allow.auto.create.topics", "false")
        .create()
        .unwrap();
    consumer.fetch_metadata(topic, TIMEOUT).unwrap()
}

/// Polls `probe` until it gives a value; panics with the nodes' logs after [`DEADLINE`].
fn eventually<T>(cluster: &Cluster, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "gave up waiting for {what}; logs:\n{}",
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn three_nodes_spread_a_topic_over_their_leaders_and_serve_clients_and_groups() {
    let cluster = Cluster::start();
    // Every node lists the three brokers.
    for i in 0..3 {
        let bootstrap = cluster.bootstrap(i);
        let ids = eventually(&cluster, "three brokers in the metadata", || {
            let ids: BTreeSet<i32> = metadata(&bootstrap, None)
                .brokers()
                .iter()
                .map(|b| b.id())
                .collect();
            (ids.len() == 3).then_some(ids)
        });
        assert_eq!(ids, BTreeSet::from([1, 2, 3]));
    }

    create_topic(&cluster.bootstrap(0), "spread", 6, &[]);
    // Each node leads two of the six partitions, as seen from every node.
    for i in 0..3 {
        let bootstrap = cluster.bootstrap(i);
        let leaders = eventually(&cluster, "the topic on every node", || {
            let md = metadata(&bootstrap, Some("spread"));
            let t = md.topics().iter().find(|t| t.name() == "spread")?;
            let leaders: BTreeMap<i32, i32> = t
                .partitions()
                .iter()
                .filter(|p| p.error().is_none())
                .map(|p| (p.id(), p.leader()))
                .collect();
            (leaders.len() == 6).then_some(leaders)
        });
        let mut per_node: BTreeMap<i32, usize> = BTreeMap::new();
        for l in leaders.values() {
            *per_node.entry(*l).or_default() += 1;
        }
        assert_eq!(
            per_node,
            BTreeMap::from([(1, 2), (2, 2), (3, 2)]),
            "leaders seen from node {}: {leaders:?}",
            i + 1
        );
    }

    // A node asked for a partition it does not lead points at the leader.
    let leaders = leaders(&cluster.bootstrap(0), "spread");
    let (&part, &leader) = leaders.iter().find(|(_, l)| **l != 1).unwrap();
    let mut raw = RawClient::connect(cluster.node(0).addr(), "cluster-test");
    let fetch = raw.call(
        12,
        RequestBody::Fetch(FetchRequest {
            replica_id: -1,
            max_wait_ms: 0,
            max_bytes: 1 << 20,
            session_epoch: -1,
            topics: vec![FetchTopic {
                topic: "spread".into(),
                partitions: vec![FetchPartition {
                    partition: part,
                    current_leader_epoch: -1,
                    last_fetched_epoch: -1,
                    partition_max_bytes: 1 << 20,
                    ..FetchPartition::default()
                }],
                ..FetchTopic::default()
            }],
            ..FetchRequest::default()
        }),
    );
    let ResponseBody::Fetch(fetch) = fetch else {
        panic!("{fetch:?}")
    };
    let pd = &fetch.responses[0].partitions[0];
    assert_eq!(pd.error_code, ErrorCode::NotLeaderOrFollower.code());
    assert_eq!(pd.current_leader.leader_id, leader);

    // Idempotent producers get ids no other node hands out.
    let ids: BTreeSet<i64> = (0..3)
        .map(|i| {
            let mut raw = RawClient::connect(cluster.node(i).addr(), "cluster-test");
            let resp = raw.call(
                4,
                RequestBody::InitProducerId(InitProducerIdRequest {
                    transactional_id: None,
                    transaction_timeout_ms: 60_000,
                    producer_id: -1,
                    producer_epoch: -1,
                    ..InitProducerIdRequest::default()
                }),
            );
            let ResponseBody::InitProducerId(r) = resp else {
                panic!("{resp:?}")
            };
            assert_eq!(r.error_code, 0);
            r.producer_id
        })
        .collect();
    assert_eq!(ids.len(), 3, "{ids:?}");

    // Produce through node 2 to every partition; read everything back through node 3.
    let p = producer(&cluster.bootstrap(1), &[]);
    for part in 0..6 {
        for n in 0..10 {
            let value = format!("{part}-{n}");
            send_one(
                &p,
                FutureRecord::to("spread")
                    .partition(part)
                    .payload(value.as_bytes()),
            );
        }
    }
    let expected: Vec<(i32, usize)> = (0..6).map(|p| (p, 10)).collect();
    let got = consume_exactly(&cluster.bootstrap(2), "spread", &expected);
    for (part, records) in &got {
        let values: Vec<String> = records
            .iter()
            .map(|m| String::from_utf8_lossy(m.payload().unwrap()).into_owned())
            .collect();
        let want: Vec<String> = (0..10).map(|n| format!("{part}-{n}")).collect();
        assert_eq!(values, want, "partition {part}");
    }

    // A consumer group, coordinated by the leader of its __consumer_offsets partition.
    let group: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap(0))
        .set("group.id", "cluster-group")
        .set("group.protocol", "classic")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "200")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", "100")
        .set("reconnect.backoff.ms", "20")
        .set("retry.backoff.ms", "20")
        .create()
        .unwrap();
    group.subscribe(&["spread"]).unwrap();
    let mut seen = BTreeSet::new();
    let deadline = Instant::now() + DEADLINE;
    while seen.len() < 60 {
        assert!(
            Instant::now() < deadline,
            "the group read {} of 60 records; logs:\n{}",
            seen.len(),
            cluster.logs()
        );
        match group.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                seen.insert((m.partition(), m.offset()));
            }
            Some(Err(e)) => panic!("group consumer: {e}"),
            None => {}
        }
    }
    let positions = group.position().unwrap();
    group.commit(&positions, CommitMode::Sync).unwrap();
    let committed = group.committed(TIMEOUT).unwrap();
    for part in 0..6 {
        let offset = committed
            .find_partition("spread", part)
            .map(|e| e.offset())
            .unwrap();
        assert_eq!(
            offset,
            rdkafka::Offset::Offset(10),
            "committed offset of {part}"
        );
    }
    // Only the coordinator serves the group: the two other nodes answer NOT_COORDINATOR.
    let not_coordinator = (0..3)
        .filter(|i| {
            let mut raw = RawClient::connect(cluster.node(*i).addr(), "cluster-test");
            let resp = raw.call(
                4,
                RequestBody::Heartbeat(HeartbeatRequest {
                    group_id: "cluster-group".into(),
                    generation_id: -1,
                    member_id: "nobody".into(),
                    ..HeartbeatRequest::default()
                }),
            );
            match resp {
                ResponseBody::Heartbeat(h) => h.error_code == ErrorCode::NotCoordinator.code(),
                other => panic!("{other:?}"),
            }
        })
        .count();
    assert_eq!(not_coordinator, 2);
}

#[test]
fn replication_factors_above_one_are_refused_until_replication_exists() {
    let cluster = Cluster::start();
    let admin = crate::common::admin(&cluster.bootstrap(0));
    let topic =
        rdkafka::admin::NewTopic::new("replicated", 3, rdkafka::admin::TopicReplication::Fixed(3));
    let results =
        crate::common::block_on(admin.create_topics(&[topic], &crate::common::admin_options()))
            .unwrap();
    match &results[..] {
        [Err((name, code))] => {
            assert_eq!(name, "replicated");
            assert_eq!(
                *code,
                rdkafka::types::RDKafkaErrorCode::InvalidReplicationFactor
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_data_directory_from_before_the_quorum_keeps_its_topics_and_data() {
    let bin = Path::new(env!("CARGO_BIN_EXE_basalt"));
    let dir = tempfile::tempdir().unwrap();
    let broker = ProcessBroker::start(bin, dir.path(), &[]);
    create_topic(&broker.bootstrap(), "kept", 2, &[]);
    let p = producer(&broker.bootstrap(), &[]);
    for part in 0..2 {
        for n in 0..3 {
            let value = format!("{part}-{n}");
            send_one(
                &p,
                FutureRecord::to("kept")
                    .partition(part)
                    .payload(value.as_bytes()),
            );
        }
    }
    drop(p);
    let (status, log) = broker.terminate();
    assert!(status.success(), "{log}");
    // As a data directory written before the metadata quorum existed: topics.json only.
    std::fs::remove_dir_all(dir.path().join("metadata")).unwrap();
    let broker = ProcessBroker::start(bin, dir.path(), &[]);
    let got = consume_exactly(&broker.bootstrap(), "kept", &[(0, 3), (1, 3)]);
    assert_eq!(got.values().map(Vec::len).sum::<usize>(), 6);
    assert!(
        broker
            .log()
            .contains("imported topic into the cluster metadata"),
        "{}",
        broker.log()
    );
}

/// The leader of each partition of `topic` as node `bootstrap` tells it (-1: none).
fn leaders(bootstrap: &str, topic: &str) -> BTreeMap<i32, i32> {
    let md = metadata(bootstrap, Some(topic));
    md.topics()
        .iter()
        .find(|t| t.name() == topic)
        .map(|t| {
            t.partitions()
                .iter()
                .map(|p| (p.id(), if p.error().is_some() { -1 } else { p.leader() }))
                .collect()
        })
        .unwrap_or_default()
}

/// The body of `GET /metrics` on `port`, if it answers.
fn scrape(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
}

/// The value of gauge `name` in a Prometheus text exposition.
fn gauge(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
}

/// `basalt cluster status --json` against `bootstrap`.
fn cluster_status(bootstrap: &str) -> serde_json::Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_basalt"))
        .args(["cluster", "status", "--json", "--brokers", bootstrap])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cluster status failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn broker_ids(bootstrap: &str) -> BTreeSet<i32> {
    metadata(bootstrap, None)
        .brokers()
        .iter()
        .map(|b| b.id())
        .collect()
}

#[test]
fn a_node_that_stops_is_fenced_and_leads_its_partitions_again_when_it_returns() {
    let mut cluster = Cluster::start();
    eventually(&cluster, "three brokers", || {
        (broker_ids(&cluster.bootstrap(0)).len() == 3).then_some(())
    });
    create_topic(&cluster.bootstrap(0), "fenced", 3, &[]);
    let before = eventually(&cluster, "a leader for each partition", || {
        let l = leaders(&cluster.bootstrap(0), "fenced");
        (l.len() == 3 && l.values().all(|l| *l > 0)).then_some(l)
    });
    let (&on_three, _) = before.iter().find(|(_, l)| **l == 3).unwrap();
    let p = producer(&cluster.bootstrap(0), &[]);
    send_one(
        &p,
        FutureRecord::to("fenced")
            .partition(on_three)
            .payload("before".as_bytes()),
    );
    drop(p);

    cluster.kill(2);
    // The quorum leader fences node 3 once its heartbeats stop: it leaves the broker list and
    // its partition has no leader.
    eventually(&cluster, "node 3 fenced", || {
        let ids = broker_ids(&cluster.bootstrap(0));
        let l = leaders(&cluster.bootstrap(1), "fenced");
        (ids == BTreeSet::from([1, 2]) && l.get(&on_three) == Some(&-1)).then_some(())
    });

    // `basalt cluster status` shows the two live nodes and node 3's partition as offline.
    let status = cluster_status(&cluster.bootstrap(1));
    let nodes: Vec<i64> = status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_i64().unwrap())
        .collect();
    assert_eq!(nodes, [1, 2], "{status}");
    let offline: Vec<(String, i64)> = status["offline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["topic"].as_str().unwrap().to_owned(),
                p["partition"].as_i64().unwrap(),
            )
        })
        .collect();
    assert!(
        offline.contains(&("fenced".to_owned(), i64::from(on_three))),
        "{status}"
    );
    assert!(
        status["controller"]
            .as_i64()
            .is_some_and(|c| c == 1 || c == 2),
        "{status}"
    );
    // The controller's Prometheus endpoint counts the offline partition (Kafka's
    // OfflinePartitionsCount and ActiveControllerCount).
    let controller = status["controller"].as_i64().unwrap() as usize;
    eventually(&cluster, "the controller's metrics", || {
        let text = scrape(cluster.metrics[controller - 1])?;
        let offline = gauge(&text, "basalt_offline_partitions_count")?;
        (gauge(&text, "basalt_active_controller_count")? == 1 && offline >= 1).then_some(())
    });

    cluster.restart(2);
    eventually(&cluster, "node 3 back as leader", || {
        let ids = broker_ids(&cluster.bootstrap(0));
        (ids.len() == 3 && leaders(&cluster.bootstrap(0), "fenced") == before).then_some(())
    });
    let status = cluster_status(&cluster.bootstrap(0));
    assert_eq!(status["nodes"].as_array().unwrap().len(), 3, "{status}");
    assert!(status["offline"].as_array().unwrap().is_empty(), "{status}");
    let p = producer(&cluster.bootstrap(1), &[]);
    send_one(
        &p,
        FutureRecord::to("fenced")
            .partition(on_three)
            .payload("after".as_bytes()),
    );
    let got = consume_exactly(&cluster.bootstrap(0), "fenced", &[(on_three, 2)]);
    let values: Vec<String> = got[&on_three]
        .iter()
        .map(|m| String::from_utf8_lossy(m.payload().unwrap()).into_owned())
        .collect();
    assert_eq!(values, ["before", "after"]);
}
