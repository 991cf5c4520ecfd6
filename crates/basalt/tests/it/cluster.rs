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

use crate::common::{
    RawClient, TIMEOUT, consume_exactly, create_topic, producer, send_one, set_group_config,
};

/// How long the cluster may take to agree on something.
const DEADLINE: Duration = Duration::from_secs(60);

/// A loopback port free right now (for the quorum listeners, which every node must know
/// before any starts).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// The port a node serves Prometheus metrics on (it binds port 0 and logs the address before
/// it starts serving Kafka clients).
fn metrics_port(node: &ProcessBroker) -> u16 {
    let log = node.log();
    log.lines()
        .find(|l| l.contains("serving metrics at /metrics"))
        .and_then(|l| l.split("listen=").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|addr| addr.parse::<std::net::SocketAddr>().ok())
        .map(|a| a.port())
        .unwrap_or_else(|| panic!("no metrics address in the log:\n{log}"))
}

/// How the nodes of a [`Cluster`] start, beyond [`node_args`].
#[derive(Default)]
pub(crate) struct NodeSetup {
    /// More `serve` arguments, the same on every node.
    pub extra_args: Vec<String>,
    /// Environment variables of every node.
    pub env: Vec<(String, String)>,
    /// Whether each node has a SASL_PLAINTEXT listener besides its PLAINTEXT one.
    pub sasl: bool,
    /// Called with each node's index (0-based) and data directory before the nodes start.
    pub prepare: Option<fn(usize, &Path)>,
}

/// Three nodes with ids 1..=3, started together (each waits for a quorum leader, which needs
/// two of them).
pub(crate) struct Cluster {
    nodes: Vec<Option<ProcessBroker>>,
    pub(crate) voters: String,
    dirs: Vec<tempfile::TempDir>,
    /// Each node's Prometheus endpoint port.
    metrics: Vec<u16>,
    /// Each node's Kafka listener, kept across restarts.
    addrs: Vec<std::net::SocketAddr>,
    /// Each node's `--listen` value, kept across restarts.
    listens: Vec<String>,
    /// Each node's SASL_PLAINTEXT listener, with [`NodeSetup::sasl`].
    sasl_addrs: Vec<Option<std::net::SocketAddr>>,
    setup: NodeSetup,
}

fn node_args(id: usize, voters: &str) -> Vec<String> {
    [
        "--node-id",
        &id.to_string(),
        "--controller.quorum.voters",
        voters,
        "--metrics.listen",
        "127.0.0.1:0",
        "--group.initial.rebalance.delay.ms",
        "0",
        "--offsets.topic.num.partitions",
        "6",
        "--broker.session.timeout.ms",
        "3000",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

impl Cluster {
    fn start() -> Cluster {
        Self::start_with(NodeSetup::default())
    }

    /// Three nodes started as `setup` says.
    pub(crate) fn start_with(setup: NodeSetup) -> Cluster {
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let voters = ports
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{}@127.0.0.1:{p}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        if let Some(prepare) = setup.prepare {
            for (i, dir) in dirs.iter().enumerate() {
                prepare(i, dir.path());
            }
        }
        let sasl_addrs: Vec<Option<std::net::SocketAddr>> = (0..3)
            .map(|_| {
                setup
                    .sasl
                    .then(|| std::net::SocketAddr::from(([127, 0, 0, 1], free_port())))
            })
            .collect();
        let listens: Vec<String> = sasl_addrs
            .iter()
            .map(|sasl| match sasl {
                Some(sasl) => format!(
                    "PLAINTEXT://127.0.0.1:{},SASL_PLAINTEXT://{sasl}",
                    free_port()
                ),
                None => "127.0.0.1:0".to_owned(),
            })
            .collect();
        let mut cluster = Cluster {
            nodes: (0..3).map(|_| None).collect(),
            voters,
            dirs,
            metrics: vec![0; 3],
            addrs: Vec::new(),
            listens,
            sasl_addrs,
            setup,
        };
        cluster.start_nodes(&[0, 1, 2]);
        cluster.addrs = cluster
            .nodes
            .iter()
            .map(|n| n.as_ref().unwrap().addr())
            .collect();
        cluster.listens = cluster
            .listens
            .iter()
            .zip(&cluster.addrs)
            .map(|(listen, addr)| {
                if listen.contains("://") {
                    listen.clone()
                } else {
                    addr.to_string()
                }
            })
            .collect();
        cluster
    }

    /// Starts nodes `which` (0-based, not running) together over their data directories.
    fn start_nodes(&mut self, which: &[usize]) {
        let bin = Path::new(env!("CARGO_BIN_EXE_basalt"));
        let started = std::thread::scope(|s| {
            let handles: Vec<_> = which
                .iter()
                .map(|&i| {
                    let mut args = node_args(i + 1, &self.voters);
                    args.extend(self.setup.extra_args.iter().cloned());
                    let dir = self.dirs[i].path();
                    let listen = &self.listens[i];
                    let env = &self.setup.env;
                    s.spawn(move || {
                        let args: Vec<&str> = args.iter().map(String::as_str).collect();
                        let env: Vec<(&str, &str)> =
                            env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                        ProcessBroker::start_at(bin, dir, listen, &args, &env)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .collect::<Vec<_>>()
        });
        for (&i, node) in which.iter().zip(started) {
            self.metrics[i] = metrics_port(&node);
            self.nodes[i] = Some(node);
        }
    }

    /// Starts node `i` (0-based) again over its data directory, on the address it had (as a
    /// real node keeps its port: clients that knew only the old addresses find it again).
    pub(crate) fn restart(&mut self, i: usize) {
        self.start_nodes(&[i]);
    }

    /// Stops every node (SIGTERM, waiting for each to exit), then starts them all again
    /// together over their data directories and addresses.
    pub(crate) fn restart_all(&mut self) {
        for node in &mut self.nodes {
            let (status, log) = node.take().expect("the node runs").terminate();
            assert!(status.success(), "log:\n{log}");
        }
        self.start_nodes(&[0, 1, 2]);
    }

    /// Node `i`'s SASL_PLAINTEXT listener (with [`NodeSetup::sasl`]).
    pub(crate) fn sasl_bootstrap(&self, i: usize) -> String {
        self.sasl_addrs[i]
            .expect("the cluster has SASL listeners")
            .to_string()
    }

    /// Node `i`'s data directory.
    pub(crate) fn dir(&self, i: usize) -> &Path {
        self.dirs[i].path()
    }

    /// Kills node `i` (0-based) with SIGKILL.
    pub(crate) fn kill(&mut self, i: usize) {
        self.nodes[i].take().expect("the node runs").kill();
    }

    fn node(&self, i: usize) -> &ProcessBroker {
        self.nodes[i].as_ref().expect("the node runs")
    }

    pub(crate) fn bootstrap(&self, i: usize) -> String {
        self.node(i).bootstrap()
    }

    pub(crate) fn logs(&self) -> String {
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
pub(crate) fn eventually<T>(
    cluster: &Cluster,
    what: &str,
    mut probe: impl FnMut() -> Option<T>,
) -> T {
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

/// The ISR of each partition of `topic` as node `bootstrap` tells it.
fn isrs(bootstrap: &str, topic: &str) -> BTreeMap<i32, Vec<i32>> {
    let md = metadata(bootstrap, Some(topic));
    md.topics()
        .iter()
        .find(|t| t.name() == topic)
        .map(|t| {
            t.partitions()
                .iter()
                .map(|p| (p.id(), p.isr().to_vec()))
                .collect()
        })
        .unwrap_or_default()
}

/// Creates `name` with `partitions` partitions of `replication` replicas through librdkafka's
/// admin client.
fn create_replicated(bootstrap: &str, name: &str, partitions: i32, replication: i32) {
    create_replicated_with(bootstrap, name, partitions, replication, &[]);
}

/// [`create_replicated`] with topic configs.
fn create_replicated_with(
    bootstrap: &str,
    name: &str,
    partitions: i32,
    replication: i32,
    configs: &[(&str, &str)],
) {
    let admin = crate::common::admin(bootstrap);
    let mut topic = rdkafka::admin::NewTopic::new(
        name,
        partitions,
        rdkafka::admin::TopicReplication::Fixed(replication),
    );
    for (k, v) in configs {
        topic = topic.set(k, v);
    }
    let results =
        crate::common::block_on(admin.create_topics(&[topic], &crate::common::admin_options()))
            .unwrap();
    assert_eq!(results, vec![Ok(name.to_owned())], "creating {name}");
}

/// Produces one record to partition 0 of `topic` on node `i` with `acks`; the error code.
fn raw_produce(cluster: &Cluster, i: usize, topic: &str, acks: i16) -> i16 {
    use basalt_protocol::messages::produce_request::{
        PartitionProduceData, ProduceRequest, TopicProduceData,
    };
    let mut b = basalt_record::BatchBuilder::new(0);
    b.push(0, None, Some(b"raw"), &[]);
    let mut raw = RawClient::connect(cluster.node(i).addr(), "cluster-test");
    let resp = raw.call(
        9,
        RequestBody::Produce(ProduceRequest {
            acks,
            timeout_ms: 5_000,
            topic_data: vec![TopicProduceData {
                name: topic.into(),
                partition_data: vec![PartitionProduceData {
                    index: 0,
                    records: Some(b.build()),
                    ..PartitionProduceData::default()
                }],
                ..TopicProduceData::default()
            }],
            ..ProduceRequest::default()
        }),
    );
    match resp {
        ResponseBody::Produce(r) => r.responses[0].partition_responses[0].error_code,
        other => panic!("{other:?}"),
    }
}

/// What the producer thread had acknowledged and the consumer thread had read, per partition:
/// the sequence numbers of the values.
#[derive(Default)]
struct Seen {
    acked: BTreeMap<i32, Vec<u64>>,
    /// (offset, sequence number) in the order read.
    consumed: BTreeMap<i32, Vec<(i64, u64)>>,
    failed: usize,
}

#[test]
fn replicated_partitions_lose_no_acknowledged_record_when_leaders_die_bounce_or_lose_the_quorum() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    const TOPIC: &str = "replicated";
    const PARTITIONS: i32 = 3;
    let mut cluster = Cluster::start();
    eventually(&cluster, "three brokers", || {
        (broker_ids(&cluster.bootstrap(0)).len() == 3).then_some(())
    });
    create_replicated(&cluster.bootstrap(0), TOPIC, PARTITIONS, 3);
    eventually(&cluster, "three in-sync replicas everywhere", || {
        let isr = isrs(&cluster.bootstrap(0), TOPIC);
        (isr.len() == PARTITIONS as usize && isr.values().all(|i| i.len() == 3)).then_some(())
    });
    // RF 3 topics get min.insync.replicas 2.
    let admin = crate::common::admin(&cluster.bootstrap(0));
    let described = crate::common::block_on(admin.describe_configs(
        &[rdkafka::admin::ResourceSpecifier::Topic(TOPIC)],
        &crate::common::admin_options(),
    ))
    .unwrap();
    let config = described[0].as_ref().unwrap();
    assert_eq!(
        config
            .get("min.insync.replicas")
            .and_then(|e| e.value.as_deref()),
        Some("2")
    );

    let bootstrap_all = (0..3)
        .map(|i| cluster.bootstrap(i))
        .collect::<Vec<_>>()
        .join(",");
    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop_producing = Arc::new(AtomicBool::new(false));
    let stop_consuming = Arc::new(AtomicBool::new(false));

    let producer_thread = {
        let (seen, stop, bootstrap) = (
            Arc::clone(&seen),
            Arc::clone(&stop_producing),
            bootstrap_all.clone(),
        );
        std::thread::spawn(move || {
            let p = producer(
                &bootstrap,
                &[
                    ("enable.idempotence", "true"),
                    ("message.timeout.ms", "120000"),
                    ("linger.ms", "2"),
                ],
            );
            let mut n: u64 = 0;
            while !stop.load(Ordering::Acquire) {
                let mut pending = Vec::new();
                for _ in 0..20 {
                    for part in 0..PARTITIONS {
                        let value = format!("{part}-{n}");
                        let f = p
                            .send_result(
                                FutureRecord::<[u8], [u8]>::to(TOPIC)
                                    .partition(part)
                                    .payload(value.as_bytes()),
                            )
                            .unwrap_or_else(|(e, _)| panic!("could not enqueue: {e}"));
                        pending.push((part, n, f));
                    }
                    n += 1;
                }
                for (part, seq, f) in pending {
                    match crate::common::block_on(f) {
                        Ok(Ok(_)) => seen
                            .lock()
                            .unwrap()
                            .acked
                            .entry(part)
                            .or_default()
                            .push(seq),
                        _ => seen.lock().unwrap().failed += 1,
                    }
                }
            }
        })
    };
    let consumer_thread = {
        let (seen, stop, bootstrap) = (
            Arc::clone(&seen),
            Arc::clone(&stop_consuming),
            bootstrap_all.clone(),
        );
        std::thread::spawn(move || {
            let c = crate::common::consumer(&bootstrap);
            let mut tpl = rdkafka::TopicPartitionList::new();
            for part in 0..PARTITIONS {
                tpl.add_partition_offset(TOPIC, part, rdkafka::Offset::Beginning)
                    .unwrap();
            }
            c.assign(&tpl).unwrap();
            while !stop.load(Ordering::Acquire) {
                match c.poll(Duration::from_millis(100)) {
                    Some(Ok(m)) => {
                        let value = String::from_utf8_lossy(m.payload().unwrap()).into_owned();
                        let (part, seq) = value.split_once('-').unwrap();
                        let (part, seq): (i32, u64) = (part.parse().unwrap(), seq.parse().unwrap());
                        assert_eq!(part, m.partition(), "{value} read from {}", m.partition());
                        seen.lock()
                            .unwrap()
                            .consumed
                            .entry(part)
                            .or_default()
                            .push((m.offset(), seq));
                    }
                    Some(Err(e)) => eprintln!("consumer: {e}"),
                    None => {}
                }
            }
        })
    };
    let acked =
        |seen: &Mutex<Seen>| -> usize { seen.lock().unwrap().acked.values().map(Vec::len).sum() };
    let wait_for_progress = |cluster: &Cluster, what: &str| {
        let before = acked(&seen);
        eventually(cluster, what, || {
            (acked(&seen) >= before + 150).then_some(())
        });
    };
    wait_for_progress(&cluster, "records acknowledged before any failure");

    // Two kill -9s of a partition leader, a clean bounce (controlled shutdown), and a kill -9
    // of the metadata quorum's leader.
    for round in 0..4 {
        let survivor = |victim: usize| (0..3).find(|i| *i != victim).unwrap();
        let victim = match round {
            3 => {
                let status = cluster_status(&cluster.bootstrap(0));
                status["controller"].as_i64().unwrap() as usize - 1
            }
            _ => {
                let l = leaders(&cluster.bootstrap(0), TOPIC);
                l[&(round % PARTITIONS)] as usize - 1
            }
        };
        if round == 2 {
            let node = cluster.nodes[victim].take().unwrap();
            let (status, log) = node.terminate();
            assert!(status.success(), "{log}");
            assert!(
                log.contains("controlled shutdown: leadership moved"),
                "{log}"
            );
        } else {
            cluster.kill(victim);
        }
        let other = survivor(victim);
        eventually(&cluster, "leaders on the surviving nodes", || {
            let l = leaders(&cluster.bootstrap(other), TOPIC);
            (l.len() == PARTITIONS as usize
                && l.values().all(|l| *l > 0 && *l as usize != victim + 1))
            .then_some(())
        });
        wait_for_progress(&cluster, "records acknowledged with a node down");
        cluster.restart(victim);
        eventually(&cluster, "the restarted node back in every ISR", || {
            let isr = isrs(&cluster.bootstrap(other), TOPIC);
            (isr.len() == PARTITIONS as usize && isr.values().all(|i| i.len() == 3)).then_some(())
        });
        wait_for_progress(&cluster, "records acknowledged after the restart");
    }
    stop_producing.store(true, Ordering::Release);
    producer_thread.join().unwrap();

    // The consumer reads every acknowledged record, in order, once.
    let missing = |s: &Seen| -> BTreeMap<i32, (usize, Vec<u64>)> {
        s.acked
            .iter()
            .map(|(part, acked)| {
                let consumed: BTreeSet<u64> = s
                    .consumed
                    .get(part)
                    .map(|c| c.iter().map(|(_, seq)| *seq).collect())
                    .unwrap_or_default();
                let gone: Vec<u64> = acked
                    .iter()
                    .filter(|a| !consumed.contains(a))
                    .copied()
                    .collect();
                (*part, (acked.len(), gone))
            })
            .filter(|(_, (_, gone))| !gone.is_empty())
            .collect()
    };
    let deadline = Instant::now() + DEADLINE;
    loop {
        let left = missing(&seen.lock().unwrap());
        if left.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            // Tell a consumer that is stuck from records that are gone: read the log again.
            let summary: Vec<String> = left
                .iter()
                .map(|(p, (n, gone))| {
                    format!(
                        "partition {p}: {} of {n} acknowledged not read, first {:?}",
                        gone.len(),
                        &gone[..gone.len().min(5)]
                    )
                })
                .collect();
            let fresh = crate::common::consumer(&bootstrap_all);
            let mut tpl = rdkafka::TopicPartitionList::new();
            for part in left.keys() {
                tpl.add_partition_offset(TOPIC, *part, rdkafka::Offset::Beginning)
                    .unwrap();
            }
            fresh.assign(&tpl).unwrap();
            let mut found: BTreeMap<i32, BTreeSet<u64>> = BTreeMap::new();
            let until = Instant::now() + Duration::from_secs(20);
            while Instant::now() < until {
                if let Some(Ok(m)) = fresh.poll(Duration::from_millis(100)) {
                    let value = String::from_utf8_lossy(m.payload().unwrap()).into_owned();
                    if let Some((_, seq)) = value.split_once('-') {
                        found
                            .entry(m.partition())
                            .or_default()
                            .insert(seq.parse().unwrap());
                    }
                }
            }
            let still: Vec<String> = left
                .iter()
                .map(|(p, (_, gone))| {
                    let f = found.get(p).cloned().unwrap_or_default();
                    format!(
                        "partition {p}: a fresh consumer finds {} of the {} missing",
                        gone.iter().filter(|g| f.contains(g)).count(),
                        gone.len()
                    )
                })
                .collect();
            panic!(
                "acknowledged records not consumed: {summary:?}; {still:?}; logs:\n{}",
                cluster.logs()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    stop_consuming.store(true, Ordering::Release);
    consumer_thread.join().unwrap();
    let s = seen.lock().unwrap();
    for part in 0..PARTITIONS {
        // A consumer may read a stretch again after a leader change (it validates its position
        // and may be set back); the log itself holds each record once, in order.
        let log: BTreeMap<i64, u64> = s.consumed[&part].iter().copied().collect();
        let values: Vec<(i64, u64)> = log.into_iter().collect();
        if let Some(w) = values.windows(2).find(|w| w[0].1 >= w[1].1) {
            panic!(
                "partition {part}: offset {} holds {} and offset {} holds {}",
                w[0].0, w[0].1, w[1].0, w[1].1
            );
        }
    }
    let total: usize = s.acked.values().map(Vec::len).sum();
    assert!(total >= 150 * 13, "{total} records acknowledged");
    eprintln!("{total} acknowledged, {} not acknowledged", s.failed);
}

#[test]
fn acks_all_needs_min_insync_replicas_and_the_isr_returns_when_followers_do() {
    let mut cluster = Cluster::start();
    eventually(&cluster, "three brokers", || {
        (broker_ids(&cluster.bootstrap(0)).len() == 3).then_some(())
    });
    // Every replica must be in sync: losing one follower is enough to refuse acks=all (losing
    // two would also lose the metadata quorum, whose voters are the same three nodes).
    create_replicated_with(
        &cluster.bootstrap(0),
        "min-isr",
        1,
        3,
        &[("min.insync.replicas", "3")],
    );
    let leader = eventually(&cluster, "three in-sync replicas", || {
        let isr = isrs(&cluster.bootstrap(0), "min-isr");
        let l = leaders(&cluster.bootstrap(0), "min-isr");
        (isr.get(&0).is_some_and(|i| i.len() == 3)).then(|| l[&0] as usize - 1)
    });
    let follower = (0..3).find(|i| *i != leader).unwrap();
    let p = producer(
        &cluster.bootstrap(leader),
        &[("message.timeout.ms", "3000")],
    );
    send_one(
        &p,
        FutureRecord::to("min-isr")
            .partition(0)
            .payload("first".as_bytes()),
    );
    cluster.kill(follower);
    eventually(&cluster, "the ISR without the stopped follower", || {
        isrs(&cluster.bootstrap(leader), "min-isr")
            .get(&0)
            .is_some_and(|i| i.len() == 2 && !i.contains(&(follower as i32 + 1)))
            .then_some(())
    });
    // Refused before the append (librdkafka would retry NOT_ENOUGH_REPLICAS until its message
    // timeout, so ask with a request of our own).
    let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        raw_produce(&cluster, leader, "min-isr", -1)
    }))
    .unwrap_or_else(|_| panic!("the produce request failed; logs:\n{}", cluster.logs()));
    assert_eq!(code, ErrorCode::NotEnoughReplicas.code());
    // acks=1 still works on the leader alone.
    let one = producer(&cluster.bootstrap(leader), &[("acks", "1")]);
    send_one(
        &one,
        FutureRecord::to("min-isr")
            .partition(0)
            .payload("second".as_bytes()),
    );
    cluster.restart(follower);
    eventually(&cluster, "the followers back in the ISR", || {
        (isrs(&cluster.bootstrap(leader), "min-isr")
            .get(&0)
            .is_some_and(|i| i.len() == 3))
        .then_some(())
    });
    send_one(
        &p,
        FutureRecord::to("min-isr")
            .partition(0)
            .payload("third".as_bytes()),
    );
    let got = consume_exactly(&cluster.bootstrap(leader), "min-isr", &[(0, 3)]);
    let values: Vec<String> = got[&0]
        .iter()
        .map(|m| String::from_utf8_lossy(m.payload().unwrap()).into_owned())
        .collect();
    assert_eq!(values, ["first", "second", "third"]);
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

pub(crate) fn broker_ids(bootstrap: &str) -> BTreeSet<i32> {
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

/// `basalt topic move` or `basalt cluster decommission` (`args`) against `bootstrap`; its
/// standard output.
fn basalt_cli(cluster: &Cluster, bootstrap: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_basalt"))
        .args(args)
        .args(["--brokers", bootstrap, "--timeout", "120"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "basalt {args:?} failed: {stdout}{}\nlogs:\n{}",
        String::from_utf8_lossy(&out.stderr),
        cluster.logs()
    );
    stdout
}

/// Replicas and ISR of each partition of `topic` as node `bootstrap` tells them, as sets.
fn placement(bootstrap: &str, topic: &str) -> BTreeMap<i32, (BTreeSet<i32>, BTreeSet<i32>)> {
    let md = metadata(bootstrap, Some(topic));
    md.topics()
        .iter()
        .find(|t| t.name() == topic)
        .map(|t| {
            t.partitions()
                .iter()
                .map(|p| {
                    (
                        p.id(),
                        (
                            p.replicas().iter().copied().collect(),
                            p.isr().iter().copied().collect(),
                        ),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// ElectLeaders (preferred) for partition 0 of `topic`, sent to node `i`; the partition's code.
fn elect_preferred(cluster: &Cluster, i: usize, topic: &str) -> i16 {
    use basalt_protocol::messages::elect_leaders_request::{ElectLeadersRequest, TopicPartitions};
    let mut raw = RawClient::connect(cluster.node(i).addr(), "cluster-test");
    let resp = raw.call(
        2,
        RequestBody::ElectLeaders(ElectLeadersRequest {
            election_type: 0,
            topic_partitions: Some(vec![TopicPartitions {
                topic: topic.into(),
                partitions: vec![0],
                ..TopicPartitions::default()
            }]),
            timeout_ms: 30_000,
            ..ElectLeadersRequest::default()
        }),
    );
    match resp {
        ResponseBody::ElectLeaders(r) => {
            assert_eq!(r.error_code, 0, "{r:?}");
            r.replica_election_results[0].partition_result[0].error_code
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn partitions_move_between_nodes_and_a_decommissioned_node_keeps_no_replica() {
    use basalt_protocol::messages::create_topics_request::{
        CreatableReplicaAssignment, CreatableTopic, CreateTopicsRequest,
    };
    let cluster = Cluster::start();
    eventually(&cluster, "three brokers", || {
        (broker_ids(&cluster.bootstrap(0)).len() == 3).then_some(())
    });

    // Decommissioning node 3 moves its replicas of an RF=2 topic onto nodes 1 and 2.
    create_replicated(&cluster.bootstrap(0), "emptied", 3, 2);
    eventually(&cluster, "every replica in sync", || {
        let p = placement(&cluster.bootstrap(0), "emptied");
        (p.len() == 3 && p.values().all(|(r, isr)| r.len() == 2 && r == isr)).then_some(())
    });
    let out = basalt_cli(
        &cluster,
        &cluster.bootstrap(1),
        &["cluster", "decommission", "--node", "3"],
    );
    assert!(out.contains("node 3 holds no replica"), "{out}");
    for i in 0..3 {
        let bootstrap = cluster.bootstrap(i);
        eventually(&cluster, "no replica on node 3", || {
            let p = placement(&bootstrap, "emptied");
            (p.len() == 3
                && p.values()
                    .all(|(r, isr)| *r == BTreeSet::from([1, 2]) && r == isr))
            .then_some(())
        });
    }

    // An RF=2 partition on nodes 1 and 2, with acknowledged records.
    let mut raw = RawClient::connect(cluster.node(0).addr(), "cluster-test");
    let resp = raw.call(
        5,
        RequestBody::CreateTopics(CreateTopicsRequest {
            topics: vec![CreatableTopic {
                name: "moved".into(),
                num_partitions: -1,
                replication_factor: -1,
                assignments: vec![CreatableReplicaAssignment {
                    partition_index: 0,
                    broker_ids: vec![1, 2],
                    ..CreatableReplicaAssignment::default()
                }],
                ..CreatableTopic::default()
            }],
            timeout_ms: 30_000,
            ..CreateTopicsRequest::default()
        }),
    );
    match resp {
        ResponseBody::CreateTopics(r) => assert_eq!(r.topics[0].error_code, 0, "{r:?}"),
        other => panic!("{other:?}"),
    }
    eventually(&cluster, "both replicas in sync", || {
        let p = placement(&cluster.bootstrap(0), "moved");
        (p.get(&0) == Some(&(BTreeSet::from([1, 2]), BTreeSet::from([1, 2])))).then_some(())
    });
    let p = producer(&cluster.bootstrap(0), &[]);
    let values: Vec<String> = (0..40).map(|i| format!("record-{i}")).collect();
    for v in &values {
        send_one(
            &p,
            FutureRecord::to("moved").partition(0).payload(v.as_bytes()),
        );
    }
    drop(p);

    // Move it to nodes 2 and 3: node 3 catches up, node 1 leaves, the leadership moves off it;
    // an idempotent producer keeps writing meanwhile.
    let mut values = values;
    let out = std::thread::scope(|s| {
        let mover = s.spawn(|| {
            basalt_cli(
                &cluster,
                &cluster.bootstrap(0),
                &["topic", "move", "moved", "--partition", "0", "--to", "2,3"],
            )
        });
        let p = producer(&cluster.bootstrap(1), &[("enable.idempotence", "true")]);
        let mut i = 0;
        while !mover.is_finished() || i < 10 {
            let v = format!("during-{i}");
            send_one(
                &p,
                FutureRecord::to("moved").partition(0).payload(v.as_bytes()),
            );
            values.push(v);
            i += 1;
        }
        mover.join().unwrap()
    });
    assert!(out.contains("moving moved-0 from 1,2 to 2,3"), "{out}");
    assert!(out.contains("moved-0 is on 2,3"), "{out}");
    for i in 0..3 {
        let bootstrap = cluster.bootstrap(i);
        eventually(&cluster, "replicas and ISR {2,3}", || {
            let p = placement(&bootstrap, "moved");
            (p.get(&0) == Some(&(BTreeSet::from([2, 3]), BTreeSet::from([2, 3])))).then_some(())
        });
    }
    // Node 2, the preferred replica, leads already.
    assert_eq!(
        elect_preferred(&cluster, 0, "moved"),
        i16::from(ErrorCode::ElectionNotNeeded)
    );
    assert_eq!(leaders(&cluster.bootstrap(0), "moved").get(&0), Some(&2));
    // Making node 3 preferred (the replicas are in sync: done at once), then electing it.
    basalt_cli(
        &cluster,
        &cluster.bootstrap(2),
        &["topic", "move", "moved", "--partition", "0", "--to", "3,2"],
    );
    // Node 2 may not have applied the new order yet (it answers ELECTION_NOT_NEEDED while it
    // still sees itself first): ask until the election is done.
    eventually(&cluster, "the preferred election", || {
        let code = elect_preferred(&cluster, 1, "moved");
        (code == 0
            || (code == i16::from(ErrorCode::ElectionNotNeeded)
                && leaders(&cluster.bootstrap(1), "moved").get(&0) == Some(&3)))
        .then_some(())
    });
    for i in 0..3 {
        let bootstrap = cluster.bootstrap(i);
        eventually(&cluster, "node 3 leading", || {
            (leaders(&bootstrap, "moved").get(&0) == Some(&3)).then_some(())
        });
    }
    // Every acknowledged record is there, in order, read from node 3.
    let got = consume_exactly(&cluster.bootstrap(2), "moved", &[(0, values.len())]);
    let read: Vec<String> = got[&0]
        .iter()
        .map(|m| String::from_utf8_lossy(m.payload().unwrap()).into_owned())
        .collect();
    assert_eq!(read, values);
}

#[test]
fn a_fourth_node_joins_as_an_observer_and_takes_partitions() {
    let cluster = Cluster::start();
    eventually(&cluster, "three brokers", || {
        (broker_ids(&cluster.bootstrap(0)).len() == 3).then_some(())
    });
    // A topic from before the fourth node, with a record in each partition.
    create_replicated(&cluster.bootstrap(0), "existing", 6, 3);
    let p = producer(&cluster.bootstrap(0), &[]);
    for part in 0..6 {
        send_one(
            &p,
            FutureRecord::to("existing")
                .partition(part)
                .payload(format!("before-{part}").as_bytes()),
        );
    }
    let bin = Path::new(env!("CARGO_BIN_EXE_basalt"));
    let dir = tempfile::tempdir().unwrap();
    let controller = format!("127.0.0.1:{}", free_port());
    let mut args = node_args(4, &cluster.voters);
    args.extend(["--controller.listen".to_owned(), controller]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let fourth = ProcessBroker::start(bin, dir.path(), &args);
    eventually(&cluster, "four brokers", || {
        (broker_ids(&cluster.bootstrap(0)) == BTreeSet::from([1, 2, 3, 4])).then_some(())
    });
    assert!(
        fourth
            .log()
            .contains("joined the metadata quorum as an observer"),
        "{}",
        fourth.log()
    );
    // New partitions are placed on it too, and it follows and leads like any node.
    create_replicated(&cluster.bootstrap(0), "four", 4, 3);
    let per_node = eventually(&cluster, "every partition in sync", || {
        let isr = isrs(&fourth.bootstrap(), "four");
        (isr.len() == 4 && isr.values().all(|i| i.len() == 3)).then_some(isr)
    });
    assert!(
        per_node.values().filter(|isr| isr.contains(&4)).count() >= 2,
        "{per_node:?}"
    );
    let led = leaders(&fourth.bootstrap(), "four");
    let (&part, _) = led
        .iter()
        .find(|(_, l)| **l == 4)
        .expect("node 4 leads one");
    let p = producer(&fourth.bootstrap(), &[]);
    send_one(
        &p,
        FutureRecord::to("four")
            .partition(part)
            .payload("on four".as_bytes()),
    );
    let got = consume_exactly(&cluster.bootstrap(1), "four", &[(part, 1)]);
    assert_eq!(got[&part][0].payload(), Some("on four".as_bytes()));
    // Its metadata is the cluster's: it names the same controller.
    let status = cluster_status(&fourth.bootstrap());
    assert_eq!(status["nodes"].as_array().unwrap().len(), 4, "{status}");

    // `cluster add-node` gives it its share of every replica (the older topic's too): the
    // replicas over four nodes, rounded down, taken from the nodes holding the most; the
    // records stay readable.
    let out = basalt_cli(
        &cluster,
        &cluster.bootstrap(0),
        &["cluster", "add-node", "--node", "4"],
    );
    let md = metadata(&cluster.bootstrap(0), None);
    let mut per_node: BTreeMap<i32, usize> = BTreeMap::new();
    for p in md.topics().iter().flat_map(|t| t.partitions()) {
        for r in p.replicas() {
            *per_node.entry(*r).or_default() += 1;
        }
    }
    let share = per_node.values().sum::<usize>() / 4;
    assert_eq!(per_node.get(&4), Some(&share), "{per_node:?}\n{out}");
    assert!(
        out.contains(&format!("node 4 holds {share} replica(s)")),
        "{out}"
    );
    assert!(
        per_node.values().all(|n| (share..=share + 1).contains(n)),
        "{per_node:?}"
    );
    let moved = placement(&cluster.bootstrap(0), "existing")
        .values()
        .filter(|(r, _)| r.contains(&4))
        .count();
    assert!(moved >= 1, "{out}");
    let all: Vec<(i32, usize)> = (0..6).map(|p| (p, 1)).collect();
    let got = consume_exactly(&fourth.bootstrap(), "existing", &all);
    for part in 0..6 {
        assert_eq!(
            got[&part][0].payload(),
            Some(format!("before-{part}").as_bytes())
        );
    }
}

/// The node coordinating `key` (`key_type` 0: a group, 1: a transactional id), as node `i`
/// answers FindCoordinator; `None` while it names none.
fn find_coordinator(cluster: &Cluster, i: usize, key_type: i8, key: &str) -> Option<i32> {
    use basalt_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
    let mut raw = RawClient::connect(cluster.node(i).addr(), "cluster-test");
    let resp = raw.call(
        4,
        RequestBody::FindCoordinator(FindCoordinatorRequest {
            key_type,
            coordinator_keys: vec![key.to_owned()],
            ..FindCoordinatorRequest::default()
        }),
    );
    match resp {
        ResponseBody::FindCoordinator(r) => r
            .coordinators
            .first()
            .filter(|c| c.error_code == 0)
            .map(|c| c.node_id),
        other => panic!("{other:?}"),
    }
}

/// The node coordinating `group`, as node `i` answers FindCoordinator.
fn group_coordinator(cluster: &Cluster, i: usize, group: &str) -> Option<i32> {
    find_coordinator(cluster, i, 0, group)
}

#[test]
fn committed_offsets_survive_the_group_coordinators_death() {
    let mut cluster = Cluster::start();
    eventually(&cluster, "three brokers", || {
        (broker_ids(&cluster.bootstrap(0)).len() == 3).then_some(())
    });
    create_replicated(&cluster.bootstrap(0), "orders", 2, 3);
    let p = producer(&cluster.bootstrap(0), &[]);
    for part in 0..2 {
        for n in 0..10 {
            send_one(
                &p,
                FutureRecord::to("orders")
                    .partition(part)
                    .payload(format!("{part}-{n}").as_bytes()),
            );
        }
    }
    let group_consumer = |bootstrap: &str| -> BaseConsumer {
        ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", "survivors")
            .set("group.protocol", "classic")
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "200")
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("fetch.wait.max.ms", "100")
            .set("reconnect.backoff.ms", "20")
            .set("retry.backoff.ms", "20")
            .create()
            .unwrap()
    };
    // Read 20 records and commit them; the commit is on every in-sync replica of the group's
    // __consumer_offsets partition (RF 3).
    let all = (0..3)
        .map(|i| cluster.bootstrap(i))
        .collect::<Vec<_>>()
        .join(",");
    let c = group_consumer(&all);
    c.subscribe(&["orders"]).unwrap();
    let mut seen = 0;
    let deadline = Instant::now() + DEADLINE;
    while seen < 20 {
        assert!(Instant::now() < deadline, "read {seen} of 20");
        if let Some(Ok(_)) = c.poll(Duration::from_millis(100)) {
            seen += 1;
        }
    }
    c.commit(&c.position().unwrap(), CommitMode::Sync).unwrap();
    drop(c);
    let coordinator = eventually(&cluster, "the group's coordinator", || {
        group_coordinator(&cluster, 0, "survivors")
    });
    cluster.kill(coordinator as usize - 1);
    let survivor = (0..3).find(|i| *i != coordinator as usize - 1).unwrap();
    // Another node leads the partition now, rebuilt the group from its copy, and serves it.
    let moved = eventually(&cluster, "a new coordinator", || {
        group_coordinator(&cluster, survivor, "survivors").filter(|c| *c != coordinator)
    });
    assert_ne!(moved, coordinator);
    for part in 0..2 {
        send_one(
            &p,
            FutureRecord::to("orders")
                .partition(part)
                .payload(format!("{part}-late").as_bytes()),
        );
    }
    // A new member resumes at the committed offsets: it reads only what came after.
    let c = group_consumer(&cluster.bootstrap(survivor));
    c.subscribe(&["orders"]).unwrap();
    let mut after = Vec::new();
    let deadline = Instant::now() + DEADLINE;
    while after.len() < 2 {
        assert!(
            Instant::now() < deadline,
            "read {after:?} after the coordinator died; logs:\n{}",
            cluster.logs()
        );
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            after.push(String::from_utf8_lossy(m.payload().unwrap()).into_owned());
        }
    }
    after.sort();
    assert_eq!(after, ["0-late", "1-late"]);
}

/// Joins share group `group` through node `node` (1-based) as `member`, subscribed to `topic`:
/// the topic's id once the member is assigned `partition` of it.
fn share_join(
    cluster: &Cluster,
    node: i32,
    group: &str,
    member: &str,
    topic: &str,
) -> Option<basalt_protocol::Uuid> {
    use basalt_protocol::messages::share_group_heartbeat_request::ShareGroupHeartbeatRequest;
    let mut raw = RawClient::connect(cluster.node(node as usize - 1).addr(), "share-worker");
    match raw.call(
        1,
        RequestBody::ShareGroupHeartbeat(ShareGroupHeartbeatRequest {
            group_id: group.into(),
            member_id: member.into(),
            member_epoch: 0,
            subscribed_topic_names: Some(vec![topic.into()]),
            ..Default::default()
        }),
    ) {
        ResponseBody::ShareGroupHeartbeat(r) if r.error_code == 0 => r
            .assignment
            .and_then(|a| a.topic_partitions.into_iter().find(|t| t.partitions == [0]))
            .map(|t| t.topic_id),
        ResponseBody::ShareGroupHeartbeat(_) => None,
        other => panic!("{other:?}"),
    }
}

/// One ShareFetch of partition 0 of `topic_id` by `member` through node `node` (1-based) in a
/// new share session, acknowledging nothing: the acquired ranges (first, last, delivery
/// count), or None when the partition answered an error.
fn share_fetch(
    cluster: &Cluster,
    node: i32,
    (group, member): (&str, &str),
    topic_id: basalt_protocol::Uuid,
    max_records: i32,
) -> Option<Vec<(i64, i64, i16)>> {
    use basalt_protocol::messages::share_fetch_request::{
        FetchPartition, FetchTopic, ShareFetchRequest,
    };
    let mut raw = RawClient::connect(cluster.node(node as usize - 1).addr(), "share-worker");
    let r = match raw.call(
        1,
        RequestBody::ShareFetch(ShareFetchRequest {
            group_id: Some(group.into()),
            member_id: Some(member.into()),
            share_session_epoch: 0,
            max_wait_ms: 1_000,
            min_bytes: 1,
            max_bytes: 1 << 20,
            max_records,
            batch_size: max_records,
            topics: vec![FetchTopic {
                topic_id,
                partitions: vec![FetchPartition {
                    partition_index: 0,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }),
    ) {
        ResponseBody::ShareFetch(r) => r,
        other => panic!("{other:?}"),
    };
    let p = r.responses.first()?.partitions.first()?;
    (r.error_code == 0 && p.error_code == 0).then(|| {
        p.acquired_records
            .iter()
            .map(|a| (a.first_offset, a.last_offset, a.delivery_count))
            .collect()
    })
}

/// A share group's acknowledgements outlive the leader of its partition: the leader writes the
/// share-partition state into the metadata before it answers, and the next leader goes on from
/// there, so acknowledged records are not delivered again and the rest are.
#[test]
fn a_share_partition_goes_on_from_its_acknowledgements_when_its_leader_dies() {
    use basalt_protocol::messages::share_acknowledge_request::{
        AcknowledgePartition, AcknowledgeTopic, AcknowledgementBatch, ShareAcknowledgeRequest,
    };
    const GROUP: &str = "job-runners";
    let mut cluster = Cluster::start();
    eventually(&cluster, "three brokers", || {
        (broker_ids(&cluster.bootstrap(0)).len() == 3).then_some(())
    });
    create_replicated(&cluster.bootstrap(0), "jobs", 1, 3);
    let p = producer(&cluster.bootstrap(0), &[("acks", "all")]);
    for n in 0..6 {
        send_one(
            &p,
            FutureRecord::to("jobs")
                .partition(0)
                .payload(format!("job-{n}").as_bytes()),
        );
    }
    set_group_config(
        cluster.node(0).addr(),
        GROUP,
        "share.auto.offset.reset",
        "earliest",
    );
    let coordinator = coordinator_of(&cluster, 0, GROUP);
    let topic_id = eventually(&cluster, "an assignment", || {
        share_join(&cluster, coordinator, GROUP, "worker-1", "jobs")
    });
    let leader = leaders(&cluster.bootstrap(0), "jobs")[&0];
    // The first three records, acquired and accepted through the leader.
    let acquired = eventually(&cluster, "three acquired records", || {
        share_fetch(&cluster, leader, (GROUP, "worker-1"), topic_id, 3).filter(|a| !a.is_empty())
    });
    assert_eq!(acquired, [(0, 2, 1)]);
    let mut raw = RawClient::connect(cluster.node(leader as usize - 1).addr(), "share-worker");
    match raw.call(
        1,
        RequestBody::ShareAcknowledge(ShareAcknowledgeRequest {
            group_id: Some(GROUP.into()),
            member_id: Some("worker-1".into()),
            share_session_epoch: -1,
            topics: vec![AcknowledgeTopic {
                topic_id,
                partitions: vec![AcknowledgePartition {
                    partition_index: 0,
                    acknowledgement_batches: vec![AcknowledgementBatch {
                        first_offset: 0,
                        last_offset: 2,
                        acknowledge_types: vec![1],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }),
    ) {
        ResponseBody::ShareAcknowledge(r) => {
            assert_eq!(r.error_code, 0, "{r:?}");
            assert_eq!(r.responses[0].partitions[0].error_code, 0, "{r:?}");
        }
        other => panic!("{other:?}"),
    }
    // The leader dies; another replica leads the partition.
    cluster.kill(leader as usize - 1);
    let survivor = (0..3).find(|i| *i != leader as usize - 1).unwrap();
    let next = eventually(&cluster, "a new leader", || {
        let l = leaders(&cluster.bootstrap(survivor), "jobs")
            .get(&0)
            .copied();
        l.filter(|l| *l > 0 && *l != leader)
    });
    // Once the new leader shows all six records, a member (of a new coordinator, if the old
    // one died too) gets the three others, each delivered for the first time: nothing
    // accepted is delivered again.
    let watcher: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap(survivor))
        .create()
        .unwrap();
    eventually(&cluster, "the high watermark on the new leader", || {
        let high = watcher.fetch_watermarks("jobs", 0, TIMEOUT).ok()?.1;
        (high == 6).then_some(())
    });
    let coordinator = eventually(&cluster, "a live coordinator", || {
        group_coordinator(&cluster, survivor, GROUP).filter(|c| *c != leader)
    });
    eventually(&cluster, "an assignment after the failover", || {
        share_join(&cluster, coordinator, GROUP, "worker-2", "jobs")
    });
    let rest = eventually(&cluster, "the records not yet accepted", || {
        share_fetch(&cluster, next, (GROUP, "worker-2"), topic_id, 10).filter(|a| !a.is_empty())
    });
    assert_eq!(rest, [(3, 5, 1)], "logs:\n{}", cluster.logs());
}

/// The node a running node names as the coordinator of `key` (`key_type` 0: a group, 1: a
/// transactional id), once it names one.
fn coordinator_of(cluster: &Cluster, key_type: i8, key: &str) -> i32 {
    let live = cluster
        .nodes
        .iter()
        .position(Option::is_some)
        .expect("a node runs");
    eventually(cluster, "a coordinator", || {
        find_coordinator(cluster, live, key_type, key)
    })
}

/// A raw transactional produce of one record by `producer` to `topic`-`partition` through
/// node `node` (1-based); the partition's error code.
fn raw_txn_produce(
    cluster: &Cluster,
    node: i32,
    txn_id: &str,
    (pid, epoch): (i64, i16),
    sequence: i32,
    topic: &str,
    partition: i32,
) -> ErrorCode {
    use basalt_protocol::messages::produce_request::{
        PartitionProduceData, ProduceRequest, TopicProduceData,
    };
    let mut b = basalt_record::BatchBuilder::new(0)
        .producer(pid, epoch, sequence)
        .transactional();
    b.push(0, None, Some(b"raw-txn"), &[]);
    let mut raw = RawClient::connect(cluster.node(node as usize - 1).addr(), "cluster-test");
    let resp = raw.call(
        9,
        RequestBody::Produce(ProduceRequest {
            transactional_id: Some(txn_id.to_owned()),
            acks: -1,
            timeout_ms: 10_000,
            topic_data: vec![TopicProduceData {
                name: topic.into(),
                partition_data: vec![PartitionProduceData {
                    index: partition,
                    records: Some(b.build()),
                    ..PartitionProduceData::default()
                }],
                ..TopicProduceData::default()
            }],
            ..ProduceRequest::default()
        }),
    );
    match resp {
        ResponseBody::Produce(r) => {
            ErrorCode::try_from(r.responses[0].partition_responses[0].error_code).unwrap()
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn transactions_span_partitions_and_groups_coordinated_on_other_nodes() {
    use basalt_protocol::messages::add_partitions_to_txn_request::{
        AddPartitionsToTxnRequest, AddPartitionsToTxnTopic,
    };
    use rdkafka::consumer::ConsumerGroupMetadata;
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    use rdkafka::{Offset, TopicPartitionList};

    let cluster = Cluster::start();
    eventually(&cluster, "three brokers", || {
        (broker_ids(&cluster.bootstrap(0)).len() == 3).then_some(())
    });
    let b = cluster.bootstrap(0);
    create_replicated(&b, "span-in", 3, 3);
    create_replicated(&b, "span-out", 6, 3);
    let out_leaders = eventually(&cluster, "leaders of span-out", || {
        let l = leaders(&b, "span-out");
        (l.len() == 6 && l.values().all(|n| *n > 0)).then_some(l)
    });
    // A transactional id and a group coordinated by two different nodes, so every
    // transaction below has markers for partitions led by the coordinator, by the group's
    // coordinator and by the third node.
    let txn_id = (0..)
        .map(|i| format!("span-copy-{i}"))
        .find(|id| coordinator_of(&cluster, 1, id) == 1)
        .unwrap();
    let group = (0..)
        .map(|i| format!("span-group-{i}"))
        .find(|g| coordinator_of(&cluster, 0, g) == 2)
        .unwrap();
    assert_eq!(
        out_leaders.values().collect::<BTreeSet<_>>().len(),
        3,
        "span-out is led by every node: {out_leaders:?}"
    );

    let plain = producer(&b, &[]);
    for part in 0..3 {
        for n in 0..10 {
            send_one(
                &plain,
                FutureRecord::to("span-in")
                    .partition(part)
                    .payload(format!("{part}-{n}").as_bytes()),
            );
        }
    }

    let p: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &b)
        .set("transactional.id", &txn_id)
        .set("linger.ms", "5")
        .set("retry.backoff.ms", "20")
        .create()
        .unwrap();
    p.init_transactions(TIMEOUT).unwrap();
    let reader = |group: &str| -> BaseConsumer {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &b)
            .set("group.id", group)
            .set("group.protocol", "classic")
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            .set("fetch.wait.max.ms", "100")
            .set("isolation.level", "read_committed")
            .create()
            .unwrap();
        c.subscribe(&["span-in"]).unwrap();
        c
    };
    // Copies `n` records read by `c` into span-out, spread over all six partitions, with the
    // consumed offsets, then commits or aborts.
    let copy = |c: &BaseConsumer, n: usize, commit: bool| -> Vec<String> {
        let mut got = Vec::new();
        let deadline = Instant::now() + DEADLINE;
        while got.len() < n {
            assert!(Instant::now() < deadline, "read only {got:?}");
            if let Some(m) = c.poll(Duration::from_millis(100)) {
                got.push(m.unwrap().detach());
            }
        }
        p.begin_transaction().unwrap();
        let mut next: BTreeMap<i32, i64> = BTreeMap::new();
        for (i, m) in got.iter().enumerate() {
            let value = format!("copy-{}", String::from_utf8_lossy(m.payload().unwrap()));
            p.send(
                BaseRecord::<(), str>::to("span-out")
                    .partition(i as i32 % 6)
                    .payload(&value),
            )
            .unwrap_or_else(|(e, _)| panic!("could not enqueue: {e}"));
            next.insert(m.partition(), m.offset() + 1);
        }
        let mut offsets = TopicPartitionList::new();
        for (partition, offset) in &next {
            offsets
                .add_partition_offset("span-in", *partition, Offset::Offset(*offset))
                .unwrap();
        }
        let meta: ConsumerGroupMetadata = c.group_metadata().unwrap();
        p.send_offsets_to_transaction(&offsets, &meta, TIMEOUT)
            .unwrap();
        // librdkafka's abort drops records still queued in the client: send them first, so
        // the aborted copies are in the log for the read_uncommitted check below.
        p.flush(TIMEOUT).unwrap();
        if commit {
            p.commit_transaction(TIMEOUT).unwrap();
        } else {
            p.abort_transaction(TIMEOUT).unwrap();
        }
        got.iter()
            .map(|m| String::from_utf8_lossy(m.payload().unwrap()).into_owned())
            .collect()
    };
    let committed = |c: &BaseConsumer| -> BTreeMap<i32, i64> {
        let mut tpl = TopicPartitionList::new();
        for part in 0..3 {
            tpl.add_partition("span-in", part);
        }
        c.committed_offsets(tpl, TIMEOUT)
            .unwrap()
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) => Some((e.partition(), o)),
                _ => None,
            })
            .collect()
    };

    let c = reader(&group);
    let first = copy(&c, 12, true);
    let after_first = committed(&c);
    assert_eq!(after_first.values().sum::<i64>(), 12, "{after_first:?}");
    // An abort moves neither the output nor the offsets.
    let aborted = copy(&c, 9, false);
    assert_eq!(committed(&c), after_first);
    drop(c);
    // A new member resumes at the committed offsets and copies the rest.
    let c = reader(&group);
    let rest = copy(&c, 18, true);
    let done = committed(&c);
    assert_eq!(done, BTreeMap::from([(0, 10), (1, 10), (2, 10)]));
    drop(c);

    // Every input record is in span-out exactly once for read_committed readers, and the
    // aborted copies only for read_uncommitted ones.
    let mut expected: Vec<String> = first.iter().chain(&rest).cloned().collect();
    expected.sort();
    let mut want: Vec<String> = (0..3)
        .flat_map(|p| (0..10).map(move |n| format!("{p}-{n}")))
        .collect();
    want.sort();
    assert_eq!(expected, want, "the copies read every input once");
    let read_out = |isolation: &str, n: usize| -> Vec<String> {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &b)
            .set("group.id", "span-check")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .set("isolation.level", isolation)
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        for part in 0..6 {
            tpl.add_partition_offset("span-out", part, Offset::Beginning)
                .unwrap();
        }
        c.assign(&tpl).unwrap();
        let mut got = Vec::new();
        let deadline = Instant::now() + DEADLINE;
        while got.len() < n {
            assert!(Instant::now() < deadline, "read only {got:?}");
            if let Some(m) = c.poll(Duration::from_millis(100)) {
                let m = m.unwrap();
                got.push(String::from_utf8_lossy(m.payload().unwrap()).into_owned());
            }
        }
        // Nothing more arrives.
        let quiet = Instant::now() + Duration::from_secs(1);
        while Instant::now() < quiet {
            if let Some(m) = c.poll(Duration::from_millis(100)) {
                let m = m.unwrap();
                got.push(String::from_utf8_lossy(m.payload().unwrap()).into_owned());
            }
        }
        got.sort();
        got
    };
    let copies: Vec<String> = want.iter().map(|v| format!("copy-{v}")).collect();
    assert_eq!(read_out("read_committed", 30), copies);
    let mut all: Vec<String> = copies
        .iter()
        .cloned()
        .chain(aborted.iter().map(|v| format!("copy-{v}")))
        .collect();
    all.sort();
    assert_eq!(read_out("read_uncommitted", 39), all);

    // A transactional batch for a partition the transaction did not add is refused by its
    // leader, which asks the coordinator on another node; an added one is taken.
    let raw_coordinator = coordinator_of(&cluster, 1, "span-raw");
    let mut raw = RawClient::connect(
        cluster.node(raw_coordinator as usize - 1).addr(),
        "cluster-test",
    );
    let producer_id = eventually(&cluster, "a transactional producer id", || {
        let ResponseBody::InitProducerId(r) = raw.call(
            4,
            RequestBody::InitProducerId(InitProducerIdRequest {
                transactional_id: Some("span-raw".into()),
                transaction_timeout_ms: 60_000,
                producer_id: -1,
                producer_epoch: -1,
                ..InitProducerIdRequest::default()
            }),
        ) else {
            panic!("not an InitProducerId response")
        };
        (r.error_code == 0).then_some((r.producer_id, r.producer_epoch))
    });
    let remote: Vec<i32> = out_leaders
        .iter()
        .filter(|(_, n)| **n != raw_coordinator)
        .map(|(p, _)| *p)
        .collect();
    let (added, not_added) = (remote[0], remote[1]);
    let ResponseBody::AddPartitionsToTxn(r) = raw.call(
        3,
        RequestBody::AddPartitionsToTxn(AddPartitionsToTxnRequest {
            v3_and_below_transactional_id: "span-raw".into(),
            v3_and_below_producer_id: producer_id.0,
            v3_and_below_producer_epoch: producer_id.1,
            v3_and_below_topics: vec![AddPartitionsToTxnTopic {
                name: "span-out".into(),
                partitions: vec![added],
                ..AddPartitionsToTxnTopic::default()
            }],
            ..AddPartitionsToTxnRequest::default()
        }),
    ) else {
        panic!("not an AddPartitionsToTxn response")
    };
    assert_eq!(
        r.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code,
        0
    );
    assert_eq!(
        raw_txn_produce(
            &cluster,
            out_leaders[&not_added],
            "span-raw",
            producer_id,
            0,
            "span-out",
            not_added
        ),
        ErrorCode::InvalidTxnState
    );
    assert_eq!(
        raw_txn_produce(
            &cluster,
            out_leaders[&added],
            "span-raw",
            producer_id,
            0,
            "span-out",
            added
        ),
        ErrorCode::None
    );
}

/// Kafka's `transactions_test` on three nodes: records are copied between two topics with
/// three replicas in transactions that commit the input offsets, while the node coordinating
/// the transactional id is killed with SIGKILL and restarted, three times. The coordinator,
/// the group coordinator and the partitions' leaders move between nodes; afterwards the output
/// holds exactly one committed copy of every input record, in order per partition.
#[test]
fn a_transactional_copy_across_nodes_survives_kills_of_its_coordinator() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use crate::txn::{assert_one_committed_copy_of_each, copy_transactionally};

    const PARTITIONS: i32 = 3;
    const PER_PARTITION: usize = 1000;
    const TOTAL: usize = PARTITIONS as usize * PER_PARTITION;
    const KILLS: usize = 3;

    let cluster = Cluster::start();
    eventually(&cluster, "three brokers", || {
        (broker_ids(&cluster.bootstrap(0)).len() == 3).then_some(())
    });
    let all = cluster
        .addrs
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(",");
    create_replicated(&all, "copy-in", PARTITIONS, 3);
    create_replicated(&all, "copy-out", PARTITIONS, 3);
    let plain = producer(&all, &[("enable.idempotence", "true")]);
    for p in 0..PARTITIONS {
        for i in 0..PER_PARTITION {
            send_one(
                &plain,
                FutureRecord::to("copy-in")
                    .partition(p)
                    .payload(format!("{p}-{i}").as_bytes()),
            );
        }
    }
    drop(plain);

    let cluster = Arc::new(Mutex::new(cluster));
    let copied = Arc::new(AtomicUsize::new(0));
    let killer = {
        let cluster = Arc::clone(&cluster);
        let copied = Arc::clone(&copied);
        std::thread::spawn(move || {
            for k in 0..KILLS {
                let threshold = TOTAL * (20 + 25 * k) / 100;
                let deadline = Instant::now() + 4 * DEADLINE;
                while copied.load(Ordering::SeqCst) < threshold {
                    assert!(
                        Instant::now() < deadline,
                        "the copy stalled before kill {k}"
                    );
                    std::thread::sleep(Duration::from_millis(10));
                }
                let mut c = cluster.lock().unwrap();
                let victim = coordinator_of(&c, 1, "copier") as usize - 1;
                eprintln!("kill {k}: node {} coordinates the copier", victim + 1);
                c.kill(victim);
                std::thread::sleep(Duration::from_millis(500));
                c.restart(victim);
            }
        })
    };
    let restarts = copy_transactionally(
        &all,
        PARTITIONS,
        PER_PARTITION as i64,
        &copied,
        4 * DEADLINE,
    );
    killer.join().unwrap();
    assert!(restarts >= 1, "the kills never interrupted the copy");
    assert_one_committed_copy_of_each(&all, PARTITIONS, PER_PARTITION, || {
        cluster.lock().unwrap().logs()
    });
}
