//! A network partition between three nodes: each `basalt serve` runs in its own network
//! namespace on a bridge (`ip netns`, needs root; the test says it is skipped otherwise), and
//! blackhole routes cut the leader off from the other two nodes while this test process can
//! still reach every node. The isolated leader cannot acknowledge an `acks=all` produce; the
//! majority side elects a new leader and goes on; after the partition heals, the old leader
//! drops the record it could not replicate and rejoins the ISR.
//!
//! Nothing here asserts on durations: each wait polls its condition until a generous deadline.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use basalt_protocol::messages::produce_request::{
    PartitionProduceData, ProduceRequest, TopicProduceData,
};
use basalt_protocol::{ErrorCode, RequestBody, ResponseBody};
use basalt_testkit::ProcessBroker;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::FutureRecord;

use crate::common::{RawClient, consume_exactly, producer, send_one};

const DEADLINE: Duration = Duration::from_secs(90);
const KAFKA_PORT: u16 = 9092;
const QUORUM_PORT: u16 = 9093;

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Three network namespaces on one bridge; removed on drop.
struct Net {
    prefix: String,
    subnet: String,
    made: Vec<String>,
    bridge: bool,
}

impl Net {
    fn create() -> Result<Net, String> {
        let pid = std::process::id();
        let mut net = Net {
            prefix: format!("bs{}", pid % 100_000),
            subnet: format!("10.213.{}", pid % 250),
            made: Vec::new(),
            bridge: false,
        };
        let br = net.bridge_name();
        ip(&["link", "add", &br, "type", "bridge"])?;
        net.bridge = true;
        ip(&["addr", "add", &format!("{}.254/24", net.subnet), "dev", &br])?;
        ip(&["link", "set", &br, "up"])?;
        for i in 1..=3 {
            let ns = net.ns(i);
            ip(&["netns", "add", &ns])?;
            net.made.push(ns.clone());
            let veth = format!("{}v{i}", net.prefix);
            ip(&[
                "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ])?;
            ip(&["link", "set", &veth, "master", &br, "up"])?;
            let addr = format!("{}/24", net.addr(i));
            ip(&[
                "netns", "exec", &ns, "ip", "addr", "add", &addr, "dev", "eth0",
            ])?;
            ip(&["netns", "exec", &ns, "ip", "link", "set", "eth0", "up"])?;
            ip(&["netns", "exec", &ns, "ip", "link", "set", "lo", "up"])?;
        }
        Ok(net)
    }

    fn bridge_name(&self) -> String {
        format!("{}br", self.prefix)
    }

    fn ns(&self, i: usize) -> String {
        format!("{}n{i}", self.prefix)
    }

    fn addr(&self, i: usize) -> String {
        format!("{}.{i}", self.subnet)
    }

    /// Cuts node `i` off from the two others, both ways; this process still reaches it.
    fn isolate(&self, i: usize) {
        for j in (1..=3).filter(|j| *j != i) {
            let to_j = format!("{}/32", self.addr(j));
            let to_i = format!("{}/32", self.addr(i));
            ip(&[
                "netns",
                "exec",
                &self.ns(i),
                "ip",
                "route",
                "add",
                "blackhole",
                &to_j,
            ])
            .unwrap();
            ip(&[
                "netns",
                "exec",
                &self.ns(j),
                "ip",
                "route",
                "add",
                "blackhole",
                &to_i,
            ])
            .unwrap();
        }
    }

    fn heal(&self, i: usize) {
        for j in (1..=3).filter(|j| *j != i) {
            let to_j = format!("{}/32", self.addr(j));
            let to_i = format!("{}/32", self.addr(i));
            ip(&[
                "netns",
                "exec",
                &self.ns(i),
                "ip",
                "route",
                "del",
                "blackhole",
                &to_j,
            ])
            .unwrap();
            ip(&[
                "netns",
                "exec",
                &self.ns(j),
                "ip",
                "route",
                "del",
                "blackhole",
                &to_i,
            ])
            .unwrap();
        }
    }

    /// A script that runs `basalt` inside node `i`'s namespace (so `ProcessBroker` can start it
    /// like any broker; `ip netns exec` execs, so the process it kills is the broker).
    fn launcher(&self, i: usize, dir: &Path) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(format!("basalt-in-{}", self.ns(i)));
        let script = format!(
            "#!/bin/sh\nexec ip netns exec {} {} \"$@\"\n",
            self.ns(i),
            env!("CARGO_BIN_EXE_basalt")
        );
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in &self.made {
            let _ = ip(&["netns", "del", ns]);
        }
        if self.bridge {
            let _ = ip(&["link", "del", &self.bridge_name()]);
        }
    }
}

fn metadata_of(bootstrap: &str, topic: &str) -> Option<(i32, Vec<i32>)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("allow.auto.create.topics", "false")
        .create()
        .ok()?;
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(5))
        .ok()?;
    let t = md.topics().iter().find(|t| t.name() == topic)?;
    let p = t.partitions().iter().find(|p| p.id() == 0)?;
    if p.error().is_some() {
        return None;
    }
    Some((p.leader(), p.isr().to_vec()))
}

fn raw_produce(addr: std::net::SocketAddr, topic: &str, value: &[u8]) -> i16 {
    let mut b = basalt_record::BatchBuilder::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    b.push(now, None, Some(value), &[]);
    let mut raw = RawClient::connect(addr, "netsplit-test");
    let resp = raw.call(
        9,
        RequestBody::Produce(ProduceRequest {
            acks: -1,
            timeout_ms: 4_000,
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

fn eventually<T>(nodes: &[ProcessBroker], what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        if Instant::now() >= deadline {
            let logs: Vec<String> = nodes
                .iter()
                .enumerate()
                .map(|(i, n)| format!("--- node {} ---\n{}", i + 1, n.log()))
                .collect();
            panic!("gave up waiting for {what}; logs:\n{}", logs.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn an_isolated_leader_cannot_acknowledge_and_rejoins_without_its_unreplicated_record() {
    let net = match Net::create() {
        Ok(net) => net,
        Err(e) => {
            eprintln!("skipped: network namespaces are not available here ({e})");
            return;
        }
    };
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let voters = (1..=3)
        .map(|i| format!("{i}@{}:{QUORUM_PORT}", net.addr(i)))
        .collect::<Vec<_>>()
        .join(",");
    // Written (and closed) before any node starts: a script still open for writing in one
    // thread cannot be executed by a child forked meanwhile ("text file busy").
    let launchers: Vec<PathBuf> = (1..=3)
        .map(|i| net.launcher(i, dirs[i - 1].path()))
        .collect();
    let nodes: Vec<ProcessBroker> = std::thread::scope(|s| {
        let handles: Vec<_> = (1..=3)
            .map(|i| {
                let (net, dirs, voters, launchers) = (&net, &dirs, &voters, &launchers);
                s.spawn(move || {
                    let launcher = &launchers[i - 1];
                    let listen = format!("{}:{KAFKA_PORT}", net.addr(i));
                    let id = i.to_string();
                    let args = [
                        "--node-id",
                        &id,
                        "--controller.quorum.voters",
                        voters,
                        "--broker.session.timeout.ms",
                        "3000",
                    ];
                    ProcessBroker::start_at(launcher, dirs[i - 1].path(), &listen, &args, &[])
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let bootstrap = |i: usize| format!("{}:{KAFKA_PORT}", net.addr(i));
    let all = (1..=3).map(bootstrap).collect::<Vec<_>>().join(",");

    let admin = crate::common::admin(&bootstrap(1));
    let topic =
        rdkafka::admin::NewTopic::new("split", 1, rdkafka::admin::TopicReplication::Fixed(3));
    let created =
        crate::common::block_on(admin.create_topics(&[topic], &crate::common::admin_options()))
            .unwrap();
    assert_eq!(created, vec![Ok("split".to_owned())]);
    let leader = eventually(&nodes, "three in-sync replicas", || {
        metadata_of(&all, "split")
            .filter(|(_, isr)| isr.len() == 3)
            .map(|(l, _)| l as usize)
    });
    let p = producer(&all, &[("enable.idempotence", "true")]);
    send_one(
        &p,
        FutureRecord::to("split")
            .partition(0)
            .payload("before".as_bytes()),
    );

    net.isolate(leader);
    // The isolated leader cannot get the record to any follower: no acknowledgement.
    let leader_addr = nodes[leader - 1].addr();
    let code = raw_produce(leader_addr, "split", b"isolated");
    assert_ne!(
        code, 0,
        "the isolated leader acknowledged an acks=all produce"
    );
    assert!(
        [
            ErrorCode::RequestTimedOut.code(),
            ErrorCode::NotEnoughReplicas.code(),
            ErrorCode::NotEnoughReplicasAfterAppend.code(),
            ErrorCode::NotLeaderOrFollower.code(),
        ]
        .contains(&code),
        "unexpected error {code}"
    );

    // The two others fence it and elect one of themselves.
    let majority: Vec<usize> = (1..=3).filter(|i| *i != leader).collect();
    let majority_bootstrap = majority
        .iter()
        .map(|i| bootstrap(*i))
        .collect::<Vec<_>>()
        .join(",");
    let new_leader = eventually(&nodes, "a new leader on the majority side", || {
        metadata_of(&majority_bootstrap, "split")
            .filter(|(l, isr)| *l as usize != leader && *l > 0 && !isr.contains(&(leader as i32)))
            .map(|(l, _)| l as usize)
    });
    let p2 = producer(&majority_bootstrap, &[]);
    send_one(
        &p2,
        FutureRecord::to("split")
            .partition(0)
            .payload("during".as_bytes()),
    );

    net.heal(leader);
    // Asked of the new leader: the old one may still tell its stale view for a moment.
    eventually(&nodes, "the old leader back in the ISR", || {
        metadata_of(&bootstrap(new_leader), "split")
            .filter(|(l, isr)| *l as usize == new_leader && isr.len() == 3)
            .map(|_| ())
    });
    send_one(
        &p2,
        FutureRecord::to("split")
            .partition(0)
            .payload("after".as_bytes()),
    );
    let got = consume_exactly(&bootstrap(new_leader), "split", &[(0, 3)]);
    let values: Vec<String> = got[&0]
        .iter()
        .map(|m| String::from_utf8_lossy(m.payload().unwrap()).into_owned())
        .collect();
    assert_eq!(values, ["before", "during", "after"]);
    // The old leader's copy agrees: what it could not replicate was cut when it rejoined.
    // (It is back in the ISR, so it has truncated: it could not have caught up otherwise.)
    assert!(
        nodes[leader - 1]
            .log()
            .contains("follower truncated divergent records"),
        "{}",
        nodes[leader - 1].log()
    );
    // The nodes stop before their namespaces go.
    drop(nodes);
    drop(net);
}
