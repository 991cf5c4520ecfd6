//! Raft metadata quorums of several in-process nodes, over real TCP on 127.0.0.1 with each node
//! in its own temporary directory.
//!
//! Nothing here asserts on durations: each wait polls its condition and fails only when a
//! generous deadline passes, so a slow machine makes the tests slower, not flaky.

// As in the other crates' test binaries (whose `main.rs` says it once for all modules).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use basalt_cluster::metadata::{
    Command, ConfigResource, Endpoint, MetadataImage, MetadataQuorum, NodeId, Outcome,
    ProposeError, QuorumOptions, QuorumSettings, TopicId, Voter, parse_voters,
};
use tokio::net::TcpListener;

/// How long any one wait may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(20);

/// Polls `probe` until it gives a value; panics after [`DEADLINE`].
async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn settings() -> QuorumSettings {
    QuorumSettings {
        heartbeat_interval_ms: 100,
        election_timeout_min_ms: 500,
        election_timeout_max_ms: 1_000,
        ..QuorumSettings::default()
    }
}

fn compacting() -> QuorumSettings {
    QuorumSettings {
        snapshot_after_entries: 5,
        entries_kept_after_snapshot: 0,
        ..settings()
    }
}

fn topic_id(n: u8) -> TopicId {
    let mut b = [0x5au8; 16];
    b[15] = n;
    TopicId(b)
}

fn register(id: NodeId, now_ms: i64) -> Command {
    Command::RegisterNode {
        id,
        incarnation: 7,
        endpoints: vec![Endpoint {
            name: "PLAINTEXT".into(),
            host: "127.0.0.1".into(),
            port: 9000 + id as u16,
            security_protocol: "PLAINTEXT".into(),
        }],
        rack: None,
        now_ms,
    }
}

fn heartbeat(id: NodeId, now_ms: i64) -> Command {
    Command::Heartbeat {
        id,
        incarnation: 7,
        now_ms,
    }
}

/// Proposes through `q`, retrying while there is no leader (elections in progress).
async fn propose(q: &MetadataQuorum, cmd: Command) -> Outcome {
    let deadline = Instant::now() + DEADLINE;
    loop {
        match q.propose(cmd.clone()).await {
            Ok(outcome) => return outcome,
            Err(ProposeError::NotLeader { .. } | ProposeError::Unavailable { .. })
                if Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("proposing {cmd}: {e}"),
        }
    }
}

/// Nodes of one quorum, each with its own directory and a fixed quorum address.
struct Cluster {
    _root: tempfile::TempDir,
    voters: Vec<Voter>,
    dirs: BTreeMap<NodeId, PathBuf>,
    addrs: BTreeMap<NodeId, SocketAddr>,
    running: BTreeMap<NodeId, MetadataQuorum>,
    settings: QuorumSettings,
}

impl Cluster {
    async fn start(n: NodeId, settings: QuorumSettings) -> Cluster {
        let root = tempfile::tempdir().unwrap();
        let mut listeners = BTreeMap::new();
        for id in 1..=n {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            listeners.insert(id, l);
        }
        let addrs: BTreeMap<_, _> = listeners
            .iter()
            .map(|(id, l)| (*id, l.local_addr().unwrap()))
            .collect();
        let spec: Vec<String> = addrs.iter().map(|(id, a)| format!("{id}@{a}")).collect();
        let voters = parse_voters(&spec.join(",")).unwrap();
        let dirs = (1..=n)
            .map(|id| (id, root.path().join(format!("node-{id}"))))
            .collect();
        let mut cluster = Cluster {
            _root: root,
            voters,
            dirs,
            addrs,
            running: BTreeMap::new(),
            settings,
        };
        for (id, l) in listeners {
            cluster.start_node(id, l).await;
        }
        cluster
    }

    async fn start_node(&mut self, id: NodeId, listener: TcpListener) {
        let options = QuorumOptions {
            node_id: id,
            voters: self.voters.clone(),
            data_dir: self.dirs[&id].clone(),
            settings: self.settings.clone(),
            tls: None,
        };
        let q = MetadataQuorum::start_on(options, listener).await.unwrap();
        self.running.insert(id, q);
    }

    async fn stop(&mut self, id: NodeId) {
        let q = self.running.remove(&id).expect("running");
        q.shutdown().await;
    }

    async fn restart(&mut self, id: NodeId) {
        let addr = self.addrs[&id];
        let listener = eventually("the node's port to be free again", || async move {
            TcpListener::bind(addr).await.ok()
        })
        .await;
        self.start_node(id, listener).await;
    }

    fn node(&self, id: NodeId) -> &MetadataQuorum {
        &self.running[&id]
    }

    /// The leader every running node agrees on.
    async fn leader(&self) -> NodeId {
        eventually("the running nodes to agree on a leader", || async {
            let mut leaders = self.running.values().map(|q| q.leader());
            let first = leaders.next()??;
            (self.running.contains_key(&first) && leaders.all(|l| l == Some(first)))
                .then_some(first)
        })
        .await
    }

    fn follower(&self, leader: NodeId) -> NodeId {
        *self.running.keys().find(|id| **id != leader).unwrap()
    }

    /// The image every running node has, once they all have the same one.
    async fn agreed_image(&self) -> Arc<MetadataImage> {
        eventually("the running nodes to hold equal images", || async {
            let mut images = self.running.values().map(|q| q.image());
            let first = images.next()?;
            images.all(|i| i == first).then_some(first)
        })
        .await
    }

    async fn shutdown(mut self) {
        let ids: Vec<_> = self.running.keys().copied().collect();
        for id in ids {
            self.stop(id).await;
        }
    }
}

#[test]
fn voters_parse_in_kafka_form() {
    let v = parse_voters("1@localhost:9093, 2@10.0.0.2:9093,3@[::1]:9093").unwrap();
    assert_eq!(v.len(), 3);
    assert_eq!(v[2].addr, "[::1]:9093");
    assert!(parse_voters("1@h:1,1@h:2").is_err());
    assert!(parse_voters("x@h:1").is_err());
    assert!(parse_voters("1@h").is_err());
    assert!(parse_voters("1h:1").is_err());
    assert!(parse_voters("").unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_voter_quorum_applies_commands_and_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let options = |settings| QuorumOptions {
        node_id: 1,
        voters: Vec::new(),
        data_dir: dir.path().to_owned(),
        settings,
        tls: None,
    };
    let bind: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let q = MetadataQuorum::start(options(compacting()), bind)
        .await
        .unwrap();
    eventually("the single voter to lead", || async {
        (q.leader() == Some(1)).then_some(())
    })
    .await;
    assert_eq!(
        propose(&q, register(1, 1_000)).await,
        Outcome::Node {
            id: 1,
            fenced: false,
            partitions_changed: 0
        }
    );
    let create =
        Command::create_topic(&q.image(), topic_id(1), "orders", 3, None, BTreeMap::new()).unwrap();
    assert_eq!(
        propose(&q, create).await,
        Outcome::TopicCreated {
            id: topic_id(1),
            partitions: 3
        }
    );
    // Rejections come back as such, and change nothing.
    let dup =
        Command::create_topic(&q.image(), topic_id(2), "orders", 1, None, BTreeMap::new()).unwrap();
    assert!(matches!(
        q.propose(dup).await,
        Err(ProposeError::Rejected(_))
    ));
    propose(
        &q,
        Command::AlterConfigs {
            resource: ConfigResource::Topic("orders".into()),
            changes: BTreeMap::from([("retention.ms".to_string(), Some("60000".to_string()))]),
        },
    )
    .await;
    // Enough entries for snapshots and purges (every 5 entries, none kept behind).
    for t in 0..12 {
        propose(&q, heartbeat(1, 2_000 + t)).await;
    }
    let image = q.image();
    assert_eq!(image.topics["orders"].partitions.len(), 3);
    assert_eq!(image.topics["orders"].replication_factor(), 1);
    assert_eq!(image.topics["orders"].configs["retention.ms"], "60000");
    assert_eq!(image.nodes[&1].last_heartbeat_ms, 2_011);
    let status = eventually("a purge behind a snapshot", || async {
        let s = q.status();
        s.purged_index.is_some().then_some(s)
    })
    .await;
    assert_eq!(status.voters, vec![1]);
    q.shutdown().await;

    // The image comes back from the snapshot and the log after it.
    let q = MetadataQuorum::start(options(compacting()), bind)
        .await
        .unwrap();
    let restored = eventually("the image to be restored", || async {
        let i = q.image();
        (i.applied_index >= image.applied_index).then_some(i)
    })
    .await;
    assert_eq!(restored.topics, image.topics);
    assert_eq!(restored.nodes, image.nodes);
    propose(&q, heartbeat(1, 9_000)).await;
    assert_eq!(q.image().nodes[&1].last_heartbeat_ms, 9_000);
    q.shutdown().await;

    // Once more without compaction, so the restart replays the log alone.
    let q = MetadataQuorum::start(options(settings()), bind)
        .await
        .unwrap();
    let replayed = eventually("the image to be replayed", || async {
        let i = q.image();
        (i.nodes.get(&1).map(|n| n.last_heartbeat_ms) == Some(9_000)).then_some(i)
    })
    .await;
    assert_eq!(replayed.topics, image.topics);
    q.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_elect_a_leader_replicate_and_agree() {
    let cluster = Cluster::start(3, settings()).await;
    let leader = cluster.leader().await;
    let follower = cluster.follower(leader);
    // Each node registers through itself: followers forward to the leader.
    for id in 1..=3 {
        propose(cluster.node(id), register(id, 0)).await;
    }
    // Read your writes on a follower: its image shows the forwarded command's effect.
    let f = cluster.node(follower);
    eventually("the follower to see all registrations", || async {
        (f.image().nodes.len() == 3).then_some(())
    })
    .await;
    let create =
        Command::create_topic(&f.image(), topic_id(1), "events", 6, None, BTreeMap::new()).unwrap();
    propose(f, create).await;
    let image = cluster.agreed_image().await;
    image.check_invariants().unwrap();
    let topic = &image.topics["events"];
    assert_eq!(topic.replication_factor(), 3, "3 by default on three nodes");
    let mut leads = BTreeMap::new();
    for p in &topic.partitions {
        *leads.entry(p.leader.unwrap()).or_insert(0) += 1;
    }
    assert_eq!(leads, BTreeMap::from([(1, 2), (2, 2), (3, 2)]));

    // A stale AlterPartition is refused on every node alike. (The partition is one the quorum
    // leader leads, so it keeps a leader when the others are fenced below.)
    let (index, p0) = topic
        .partitions
        .iter()
        .enumerate()
        .find(|(_, p)| p.leader == Some(leader))
        .map(|(i, p)| (i as i32, p.clone()))
        .unwrap();
    let shrink = Command::AlterPartition {
        topic: topic_id(1),
        partition: index,
        leader: p0.leader,
        isr: vec![p0.leader.unwrap()],
        partition_epoch: p0.partition_epoch,
    };
    assert!(matches!(
        propose(f, shrink.clone()).await,
        Outcome::PartitionAltered {
            partition_epoch: 1,
            ..
        }
    ));
    assert!(matches!(
        f.propose(shrink).await,
        Err(ProposeError::Rejected(_))
    ));

    // The leader fences the nodes that stopped heartbeating.
    let l = cluster.node(leader);
    propose(l, heartbeat(leader, 10_000)).await;
    let fenced = l.fence_stale_nodes(10_000, 5_000).await;
    let mut others: Vec<_> = (1..=3).filter(|id| *id != leader).collect();
    others.sort();
    assert_eq!(fenced, others);
    assert!(
        cluster
            .node(follower)
            .fence_stale_nodes(10_000, 5_000)
            .await
            .is_empty()
    );
    let image = cluster.agreed_image().await;
    image.check_invariants().unwrap();
    for p in &image.topics["events"].partitions {
        assert_eq!(p.leader, Some(leader), "only the live node leads");
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_keeps_every_committed_command() {
    let mut cluster = Cluster::start(3, settings()).await;
    let first = cluster.leader().await;
    for id in 1..=3 {
        propose(cluster.node(first), register(id, 0)).await;
    }
    for t in 1..=5 {
        propose(cluster.node(first), heartbeat(1, t)).await;
    }
    let before = cluster.agreed_image().await;
    cluster.stop(first).await;

    let second = cluster.leader().await;
    assert_ne!(second, first);
    let image = cluster.node(second).image();
    assert_eq!(image.nodes, before.nodes, "committed commands survive");
    let survivor = cluster.follower(second);
    propose(cluster.node(survivor), heartbeat(1, 6)).await;

    // The old leader comes back as a follower and catches up.
    cluster.restart(first).await;
    let image = eventually("the old leader to catch up", || async {
        let i = cluster.node(first).image();
        (i.nodes.get(&1).map(|n| n.last_heartbeat_ms) == Some(6)).then_some(i)
    })
    .await;
    assert_eq!(image.nodes.len(), 3);
    let agreed = cluster.agreed_image().await;
    assert_eq!(agreed.nodes[&1].last_heartbeat_ms, 6);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_catches_up_from_a_snapshot_after_purge() {
    let mut cluster = Cluster::start(3, compacting()).await;
    let leader = cluster.leader().await;
    for id in 1..=3 {
        propose(cluster.node(leader), register(id, 0)).await;
    }
    cluster.agreed_image().await;
    let lagging = cluster.follower(leader);
    let left_at = cluster.node(lagging).status().last_log_index.unwrap();
    cluster.stop(lagging).await;

    let leader = cluster.leader().await;
    let create = Command::create_topic(
        &cluster.node(leader).image(),
        topic_id(3),
        "compacted",
        4,
        Some(2),
        BTreeMap::new(),
    )
    .unwrap();
    propose(cluster.node(leader), create).await;
    for t in 1..=30 {
        propose(cluster.node(leader), heartbeat(leader, t)).await;
    }
    // The entries the stopped node lacks are gone from the leader's log: only a snapshot can
    // bring it up to date.
    eventually("the leader to purge past the stopped node", || async {
        let s = cluster.node(leader).status();
        s.purged_index.is_some_and(|p| p > left_at).then_some(())
    })
    .await;

    cluster.restart(lagging).await;
    let image = cluster.agreed_image().await;
    assert_eq!(image.nodes[&leader].last_heartbeat_ms, 30);
    assert_eq!(image.topics["compacted"].partitions.len(), 4);
    let status = cluster.node(lagging).status();
    assert!(
        status.snapshot_index.is_some_and(|s| s > left_at),
        "the node installed a snapshot: {status:?}"
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_outside_the_voters_joins_as_an_observer_and_proposes_through_the_leader() {
    let mut cluster = Cluster::start(3, settings()).await;
    let leader = cluster.leader().await;
    for id in 1..=3 {
        propose(cluster.node(id), register(id, 0)).await;
    }
    // Node 4 is given the three voters but is not one of them.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dir = cluster._root.path().join("node-4");
    cluster.dirs.insert(4, dir);
    cluster.addrs.insert(4, listener.local_addr().unwrap());
    cluster.start_node(4, listener).await;
    let observer = cluster.node(4);
    // It receives the log (the three registrations) and learns the leader.
    eventually("the observer to hold the image", || async {
        (observer.image().nodes.len() == 3 && observer.leader() == Some(leader)).then_some(())
    })
    .await;
    // Its own proposals go through the leader, and every node applies them.
    propose(observer, register(4, 0)).await;
    let image = cluster.agreed_image().await;
    assert_eq!(image.nodes.len(), 4);
    // It never votes: the voters still elect among themselves when the leader stops.
    cluster.stop(leader).await;
    let next = cluster.leader().await;
    assert_ne!(next, 4);
    assert_ne!(next, leader);
    cluster.shutdown().await;
}
