//! `basalt cluster status`: the nodes of a cluster, which one leads the metadata quorum (the
//! controller), and the partitions that have no leader (offline) or fewer in-sync replicas than
//! replicas (under-replicated), from Metadata and DescribeCluster as any Kafka cluster answers
//! them.
//!
//! A node that stopped heartbeating is fenced and no longer listed by the brokers: it appears
//! only through the partitions that name it as a replica.
//!
//! `basalt cluster decommission --node N` moves every replica off node N
//! (AlterPartitionReassignments): each partition that names N gets, in N's place, the live node
//! (one the brokers list) that holds the fewest replicas and not yet one of this partition, so
//! every partition keeps its replication factor; it refuses before moving anything when some
//! partition has no such node. It then waits until ListPartitionReassignments shows the moves
//! done and Metadata names N in no partition.
//!
//! `basalt cluster add-node --node N` is the other way round, for a node that just joined (a
//! node joins by starting with the cluster's `--controller.quorum.voters` list, and only new
//! topics would be placed on it): once the brokers list N, it moves replicas onto N until N
//! holds its share (the replicas of every partition over the live nodes, rounded down), each
//! time taking one from the node that holds the most, in the place that node had in the
//! partition's replica list (so N also becomes the preferred leader where it took a preferred
//! leader's place), and waits until the moves are done.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use basalt_protocol::messages::describe_cluster_request::DescribeClusterRequest;
use basalt_protocol::messages::metadata_response::MetadataResponse;
use basalt_protocol::{ApiKey, RequestBody, ResponseBody};
use clap::{Args, Subcommand};
use serde::Serialize;

use super::client::{Client, Move, Ongoing, check, unexpected};
use super::output::{ids, print_json, print_table, table};
use super::{ConnectArgs, Error};

/// `basalt cluster ...`. A node joins a cluster by starting with its
/// `--controller.quorum.voters` list; `add-node` gives it its share of the existing replicas,
/// `decommission` empties a node before it leaves.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(Debug, Subcommand)]
enum ClusterCommand {
    /// Nodes, the controller, and offline and under-replicated partitions.
    Status,
    /// Move replicas onto a node that joined (started with the cluster's
    /// --controller.quorum.voters list) until it holds its share, taking them from the nodes
    /// that hold the most, and wait until the moves are done.
    AddNode {
        /// The node to fill; the command waits until it is live.
        #[arg(long)]
        node: i32,
        /// Give up waiting after this many seconds (the moves go on).
        #[arg(long, default_value_t = 600, value_name = "SECONDS")]
        timeout: u64,
    },
    /// Move every replica off a node onto the other live nodes, keeping each partition's
    /// replication factor, and wait until none is left on it.
    Decommission {
        /// The node to empty.
        #[arg(long)]
        node: i32,
        /// Give up waiting after this many seconds (the moves go on).
        #[arg(long, default_value_t = 600, value_name = "SECONDS")]
        timeout: u64,
    },
}

/// Runs a `cluster` subcommand.
pub fn run(args: ClusterArgs) -> Result<(), Error> {
    let mut client = args.connect.client()?;
    match args.command {
        ClusterCommand::AddNode { node, timeout } => {
            add_node(&mut client, node, timeout, args.connect.json)
        }
        ClusterCommand::Decommission { node, timeout } => {
            decommission(&mut client, node, timeout, args.connect.json)
        }
        ClusterCommand::Status => {
            let status = status(&mut client)?;
            if args.connect.json {
                print_json(&status)
            } else {
                print_status(&status);
                Ok(())
            }
        }
    }
}

/// What `cluster status` reports.
#[derive(Debug, Serialize)]
struct Status {
    cluster_id: Option<String>,
    /// The node that leads the metadata quorum, if one does.
    controller: Option<i32>,
    nodes: Vec<Node>,
    partitions: usize,
    offline: Vec<PartitionState>,
    under_replicated: Vec<PartitionState>,
}

#[derive(Debug, Serialize)]
struct Node {
    id: i32,
    address: String,
    rack: Option<String>,
    /// Partitions this node leads.
    leader_of: usize,
    /// Partitions this node holds a replica of.
    replica_of: usize,
}

#[derive(Debug, Serialize)]
struct PartitionState {
    topic: String,
    partition: i32,
    leader: i32,
    replicas: Vec<i32>,
    isr: Vec<i32>,
}

fn status(client: &mut Client) -> Result<Status, Error> {
    let metadata = client.metadata(None)?;
    let (cluster_id, controller) = if client.any()?.supports(ApiKey::DescribeCluster) {
        match client.any()?.send(&RequestBody::DescribeCluster(
            DescribeClusterRequest::default(),
        ))? {
            ResponseBody::DescribeCluster(r) => {
                check(
                    r.error_code,
                    "cannot describe the cluster",
                    r.error_message.as_deref(),
                )?;
                (Some(r.cluster_id), r.controller_id)
            }
            other => return Err(unexpected(ApiKey::DescribeCluster, &other)),
        }
    } else {
        (metadata.cluster_id.clone(), metadata.controller_id)
    };
    Ok(summarize(&metadata, cluster_id, controller))
}

fn summarize(metadata: &MetadataResponse, cluster_id: Option<String>, controller: i32) -> Status {
    let mut nodes: BTreeMap<i32, Node> = metadata
        .brokers
        .iter()
        .map(|b| {
            (
                b.node_id,
                Node {
                    id: b.node_id,
                    address: format!("{}:{}", b.host, b.port),
                    rack: b.rack.clone(),
                    leader_of: 0,
                    replica_of: 0,
                },
            )
        })
        .collect();
    let mut partitions = 0;
    let mut offline = Vec::new();
    let mut under_replicated = Vec::new();
    let mut topics: Vec<_> = metadata.topics.iter().collect();
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    for topic in topics {
        let name = topic.name.clone().unwrap_or_default();
        let mut parts: Vec<_> = topic.partitions.iter().collect();
        parts.sort_by_key(|p| p.partition_index);
        for p in parts {
            partitions += 1;
            if let Some(n) = nodes.get_mut(&p.leader_id) {
                n.leader_of += 1;
            }
            for r in &p.replica_nodes {
                if let Some(n) = nodes.get_mut(r) {
                    n.replica_of += 1;
                }
            }
            let state = || PartitionState {
                topic: name.clone(),
                partition: p.partition_index,
                leader: p.leader_id,
                replicas: p.replica_nodes.clone(),
                isr: p.isr_nodes.clone(),
            };
            // A leader that is not among the listed (unfenced) nodes cannot serve either.
            if p.leader_id < 0 || !nodes.contains_key(&p.leader_id) {
                offline.push(state());
            } else if p.isr_nodes.len() < p.replica_nodes.len() {
                under_replicated.push(state());
            }
        }
    }
    Status {
        cluster_id,
        controller: (controller >= 0).then_some(controller),
        nodes: nodes.into_values().collect(),
        partitions,
        offline,
        under_replicated,
    }
}

/// The moves that take every replica off `node` (see the module docs), in topic and partition
/// order; an error naming a partition no other live node can take. A partition already moving
/// (`ongoing`) counts by the replicas it is moving to.
fn plan_decommission(
    metadata: &MetadataResponse,
    ongoing: &[Ongoing],
    node: i32,
) -> Result<Vec<Move>, Error> {
    let mut load: BTreeMap<i32, usize> = metadata
        .brokers
        .iter()
        .filter(|b| b.node_id != node)
        .map(|b| (b.node_id, 0))
        .collect();
    let partitions = current_replicas(metadata, ongoing);
    for (_, _, replicas) in &partitions {
        for r in replicas {
            if let Some(n) = load.get_mut(r) {
                *n += 1;
            }
        }
    }
    let mut moves = Vec::new();
    for (topic, partition, replicas) in partitions {
        if !replicas.contains(&node) {
            continue;
        }
        let taken: BTreeSet<i32> = replicas.iter().copied().collect();
        let Some((&to, _)) = load
            .iter()
            .filter(|(id, _)| !taken.contains(id))
            .min_by_key(|(id, n)| (**n, **id))
        else {
            return Err(format!(
                "cannot move {topic}-{partition} off node {node}: every other live node already \
                 holds one of its {} replicas",
                replicas.len()
            )
            .into());
        };
        *load.get_mut(&to).expect("a live node") += 1;
        let mut target: Vec<i32> = replicas.iter().copied().filter(|r| *r != node).collect();
        target.push(to);
        moves.push(Move {
            topic,
            partition,
            target,
        });
    }
    Ok(moves)
}

/// Each partition's replicas as they will be once the moves under way (`ongoing`) are done, in
/// topic and partition order.
fn current_replicas(
    metadata: &MetadataResponse,
    ongoing: &[Ongoing],
) -> Vec<(String, i32, Vec<i32>)> {
    let mut partitions: Vec<(String, i32, Vec<i32>)> = metadata
        .topics
        .iter()
        .flat_map(|t| {
            let name = t.name.clone().unwrap_or_default();
            t.partitions.iter().map(move |p| {
                let moving = ongoing
                    .iter()
                    .find(|o| o.topic == name && o.partition == p.partition_index);
                let replicas = p
                    .replica_nodes
                    .iter()
                    .copied()
                    .filter(|r| moving.is_none_or(|m| !m.removing.contains(r)))
                    .collect();
                (name.clone(), p.partition_index, replicas)
            })
        })
        .collect();
    partitions.sort();
    partitions
}

/// The moves that give `node` its share of the replicas (see the module docs): one replica at a
/// time from the live node holding the most, in a partition `node` is not in yet and not
/// already moving, at most one move per partition.
fn plan_add_node(metadata: &MetadataResponse, ongoing: &[Ongoing], node: i32) -> Vec<Move> {
    let mut load: BTreeMap<i32, usize> = metadata.brokers.iter().map(|b| (b.node_id, 0)).collect();
    load.entry(node).or_insert(0);
    let partitions = current_replicas(metadata, ongoing);
    let mut total = 0;
    for (_, _, replicas) in &partitions {
        total += replicas.len();
        for r in replicas {
            if let Some(n) = load.get_mut(r) {
                *n += 1;
            }
        }
    }
    let share = total / load.len();
    let moving: BTreeSet<(&str, i32)> = ongoing
        .iter()
        .map(|o| (o.topic.as_str(), o.partition))
        .collect();
    let mut planned: BTreeSet<usize> = BTreeSet::new();
    let mut exhausted: BTreeSet<i32> = BTreeSet::new();
    let mut moves = Vec::new();
    while load[&node] < share {
        // The donor: the node holding the most (the lowest id among equals) that still has a
        // partition to give.
        let Some((&donor, &held)) = load
            .iter()
            .filter(|(id, _)| **id != node && !exhausted.contains(id))
            .max_by_key(|(id, n)| (**n, std::cmp::Reverse(**id)))
        else {
            break;
        };
        if held <= load[&node] + 1 {
            break;
        }
        let found = partitions.iter().enumerate().find(|(i, (t, p, replicas))| {
            !planned.contains(i)
                && !moving.contains(&(t.as_str(), *p))
                && replicas.contains(&donor)
                && !replicas.contains(&node)
        });
        let Some((i, (topic, partition, replicas))) = found else {
            exhausted.insert(donor);
            continue;
        };
        planned.insert(i);
        *load.get_mut(&donor).expect("a live node") -= 1;
        *load.get_mut(&node).expect("the new node") += 1;
        moves.push(Move {
            topic: topic.clone(),
            partition: *partition,
            target: replicas
                .iter()
                .map(|r| if *r == donor { node } else { *r })
                .collect(),
        });
    }
    moves
}

/// Starts `moves` (AlterPartitionReassignments) and waits until ListPartitionReassignments
/// shows them done, printing them and the progress (`moving N <what>`) unless `json`.
fn start_and_wait(
    client: &mut Client,
    moves: &[Move],
    what: &str,
    timeout: u64,
    json: bool,
) -> Result<(), Error> {
    if !moves.is_empty() {
        client.reassign(moves)?;
    }
    if !json {
        println!("moving {} {what}", moves.len());
        for m in moves {
            println!("  {}-{} to {}", m.topic, m.partition, ids(&m.target));
        }
    }
    let total = moves.len();
    client.wait_reassignments(moves, Duration::from_secs(timeout), |moving| {
        if !json {
            println!(
                "  {} of {total} move(s) done, {} under way",
                total - moving.len(),
                moving.len()
            );
        }
    })
}

fn add_node(client: &mut Client, node: i32, timeout: u64, json: bool) -> Result<(), Error> {
    let deadline = Instant::now() + Duration::from_secs(timeout);
    let metadata = loop {
        let metadata = client.metadata(None)?;
        if metadata.brokers.iter().any(|b| b.node_id == node) {
            break metadata;
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "node {node} is not live: start it with the cluster's --controller.quorum.voters"
            )
            .into());
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let ongoing = client.list_reassignments()?;
    let moves = plan_add_node(&metadata, &ongoing, node);
    let what = format!("replica(s) onto node {node}");
    start_and_wait(client, &moves, &what, timeout, json)?;
    if json {
        return print_json(&moves);
    }
    let metadata = client.metadata(None)?;
    let held = metadata
        .topics
        .iter()
        .flat_map(|t| &t.partitions)
        .filter(|p| p.replica_nodes.contains(&node))
        .count();
    println!("node {node} holds {held} replica(s)");
    Ok(())
}

fn decommission(client: &mut Client, node: i32, timeout: u64, json: bool) -> Result<(), Error> {
    let deadline = Instant::now() + Duration::from_secs(timeout);
    let metadata = client.metadata(None)?;
    let ongoing = client.list_reassignments()?;
    let moves = plan_decommission(&metadata, &ongoing, node)?;
    let what = format!("partition(s) off node {node}");
    start_and_wait(client, &moves, &what, timeout, json)?;
    // The moves are done on the controller; wait until the metadata shows it too.
    loop {
        let metadata = client.metadata(None)?;
        let left: Vec<String> = metadata
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .filter(|p| p.replica_nodes.contains(&node))
                    .map(|p| format!("{}-{}", t.name.as_deref().unwrap_or(""), p.partition_index))
            })
            .collect();
        if left.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            return Err(format!("node {node} still holds {}", left.join(", ")).into());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    if json {
        return print_json(&moves);
    }
    println!("node {node} holds no replica");
    Ok(())
}

fn print_status(status: &Status) {
    println!(
        "cluster {}: {} node(s), controller {}, {} partition(s), {} offline, {} under-replicated",
        status.cluster_id.as_deref().unwrap_or("(no id)"),
        status.nodes.len(),
        status
            .controller
            .map_or_else(|| "none".to_owned(), |c| c.to_string()),
        status.partitions,
        status.offline.len(),
        status.under_replicated.len(),
    );
    let mut t = table(["NODE", "ADDRESS", "RACK", "LEADER OF", "REPLICA OF", "ROLE"]);
    for n in &status.nodes {
        let role = if status.controller == Some(n.id) {
            "controller"
        } else {
            ""
        };
        t.add_row([
            n.id.to_string(),
            n.address.clone(),
            n.rack.clone().unwrap_or_else(|| "-".into()),
            n.leader_of.to_string(),
            n.replica_of.to_string(),
            role.to_owned(),
        ]);
    }
    print_table(&t);
    for (what, list) in [
        ("offline", &status.offline),
        ("under-replicated", &status.under_replicated),
    ] {
        if list.is_empty() {
            continue;
        }
        println!("\n{what} partitions:");
        let mut t = table(["TOPIC", "PARTITION", "LEADER", "REPLICAS", "ISR"]);
        for p in list {
            t.add_row([
                p.topic.clone(),
                p.partition.to_string(),
                p.leader.to_string(),
                ids(&p.replicas),
                ids(&p.isr),
            ]);
        }
        print_table(&t);
    }
}

#[cfg(test)]
mod tests {
    use basalt_protocol::messages::metadata_response::{
        MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
    };

    use super::*;

    fn partition(
        index: i32,
        leader: i32,
        replicas: &[i32],
        isr: &[i32],
    ) -> MetadataResponsePartition {
        MetadataResponsePartition {
            partition_index: index,
            leader_id: leader,
            replica_nodes: replicas.to_vec(),
            isr_nodes: isr.to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn a_new_node_takes_its_share_from_the_most_loaded_nodes() {
        // Six partitions of three replicas on nodes 1..3 (six each); node 4 joins.
        let replicas = [
            [1, 2, 3],
            [2, 3, 1],
            [3, 1, 2],
            [1, 2, 3],
            [2, 3, 1],
            [3, 1, 2],
        ];
        let metadata = MetadataResponse {
            brokers: [1, 2, 3, 4]
                .map(|id| MetadataResponseBroker {
                    node_id: id,
                    ..Default::default()
                })
                .to_vec(),
            topics: vec![MetadataResponseTopic {
                name: Some("t".into()),
                partitions: replicas
                    .iter()
                    .enumerate()
                    .map(|(i, r)| partition(i as i32, r[0], r, r))
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let moves = plan_add_node(&metadata, &[], 4);
        // 18 replicas over 4 nodes: node 4 gets 4, one partition each, and keeps the place of
        // the node it replaces (here twice the preferred leader's).
        assert_eq!(moves.len(), 4);
        let mut load: BTreeMap<i32, usize> = BTreeMap::new();
        for r in replicas.iter().flatten() {
            *load.entry(*r).or_default() += 1;
        }
        for m in &moves {
            let before = &replicas[m.partition as usize];
            let gone: Vec<i32> = before
                .iter()
                .copied()
                .filter(|r| !m.target.contains(r))
                .collect();
            assert_eq!(gone.len(), 1, "{m:?}");
            let at = before.iter().position(|r| *r == gone[0]).unwrap();
            assert_eq!(m.target[at], 4, "{m:?}");
            *load.get_mut(&gone[0]).unwrap() -= 1;
        }
        assert_eq!(load.values().copied().collect::<Vec<_>>(), vec![4, 5, 5]);
        let partitions: BTreeSet<i32> = moves.iter().map(|m| m.partition).collect();
        assert_eq!(partitions.len(), 4);
        // A partition already moving is left alone; a node already holding its share gets
        // nothing.
        let ongoing: Vec<Ongoing> = (0..6)
            .map(|p| Ongoing {
                topic: "t".into(),
                partition: p,
                replicas: replicas[p as usize].to_vec(),
                adding: vec![],
                removing: vec![],
            })
            .collect();
        assert!(plan_add_node(&metadata, &ongoing, 4).is_empty());
        assert!(plan_add_node(&metadata, &[], 1).is_empty());
    }

    #[test]
    fn decommissioning_replaces_the_node_by_the_least_loaded_other_one() {
        let metadata = MetadataResponse {
            brokers: [1, 2, 3, 4]
                .map(|id| MetadataResponseBroker {
                    node_id: id,
                    ..Default::default()
                })
                .to_vec(),
            topics: vec![MetadataResponseTopic {
                name: Some("t".into()),
                partitions: vec![
                    partition(0, 3, &[3, 1], &[3, 1]),
                    partition(1, 1, &[1, 2], &[1, 2]),
                    partition(2, 2, &[2, 3], &[2, 3]),
                ],
                ..Default::default()
            }],
            ..Default::default()
        };
        let moves = plan_decommission(&metadata, &[], 3).unwrap();
        let targets: Vec<(i32, Vec<i32>)> = moves
            .iter()
            .map(|m| (m.partition, m.target.clone()))
            .collect();
        assert_eq!(targets, [(0, vec![1, 4]), (2, vec![2, 4])]);
        // With only nodes 1 and 2 besides node 3, partition 1's replicas leave no room for 0's.
        let mut small = metadata.clone();
        small.brokers.retain(|b| b.node_id != 4);
        small.topics[0].partitions[0].replica_nodes = vec![3, 1, 2];
        assert!(plan_decommission(&small, &[], 3).is_err());
        assert!(plan_decommission(&metadata, &[], 9).unwrap().is_empty());
        // A partition moving from 2,3,1 to 2,3,4 counts by its target replicas.
        let mut moving = metadata.clone();
        moving.topics[0].partitions[2].replica_nodes = vec![2, 3, 4, 1];
        let ongoing = [Ongoing {
            topic: "t".into(),
            partition: 2,
            replicas: vec![2, 3, 4, 1],
            adding: vec![4],
            removing: vec![1],
        }];
        let moves = plan_decommission(&moving, &ongoing, 3).unwrap();
        assert_eq!(moves[1].target, vec![2, 4, 1]);
    }

    #[test]
    fn partitions_without_a_listed_leader_are_offline_and_short_isrs_under_replicated() {
        let metadata = MetadataResponse {
            brokers: [1, 2]
                .map(|id| MetadataResponseBroker {
                    node_id: id,
                    host: "127.0.0.1".into(),
                    port: 9000 + id,
                    ..Default::default()
                })
                .to_vec(),
            topics: vec![MetadataResponseTopic {
                name: Some("t".into()),
                partitions: vec![
                    partition(0, 1, &[1], &[1]),
                    partition(1, -1, &[3], &[3]),
                    partition(2, 3, &[3], &[3]),
                    partition(3, 2, &[2, 1], &[2]),
                ],
                ..Default::default()
            }],
            ..Default::default()
        };
        let s = summarize(&metadata, Some("c".into()), 2);
        assert_eq!(s.partitions, 4);
        assert_eq!(s.controller, Some(2));
        let offline: Vec<i32> = s.offline.iter().map(|p| p.partition).collect();
        assert_eq!(offline, [1, 2]);
        let under: Vec<i32> = s.under_replicated.iter().map(|p| p.partition).collect();
        assert_eq!(under, [3]);
        let counts: Vec<(i32, usize, usize)> = s
            .nodes
            .iter()
            .map(|n| (n.id, n.leader_of, n.replica_of))
            .collect();
        assert_eq!(counts, [(1, 1, 2), (2, 1, 1)]);
    }
}
