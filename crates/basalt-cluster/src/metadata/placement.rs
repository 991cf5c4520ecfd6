//! Where the replicas of new partitions go: a pure function of the image, so the proposer of a
//! CreateTopics or CreatePartitions decides once and every node applies the same assignment.
//!
//! Each partition's leader is the live node that leads the fewest partitions (counting every
//! topic, by preferred leader), and its followers are the live nodes that hold the fewest
//! replicas, preferring racks the partition does not use yet. Ties go to the lower node id, so
//! the result depends on the image alone.
//!
//! # Invariants
//! - `PLACE-1`: only live (registered, unfenced) nodes get replicas, each at most once per
//!   partition; asking for more replicas than there are live nodes is refused.
//! - `PLACE-2`: over the partitions placed by one call, the number of partitions each live
//!   node leads differs by at most one between any two nodes (on top of what they led before).
//! - `PLACE-3`: when nodes have racks, a partition's replicas cover as many distinct racks as
//!   its replication factor allows; a node without a rack counts as a rack of its own.

use std::collections::{BTreeMap, BTreeSet};

use super::image::{
    Command, MetadataImage, NodeId, PARTITIONS_MAX, REPLICATION_FACTOR_MAX, Rejection, TopicId,
};

/// The replication factor of a topic created without one: 1 while fewer than three nodes are
/// live, 3 once three are.
pub fn default_replication_factor(live_nodes: usize) -> i16 {
    if live_nodes >= 3 { 3 } else { 1 }
}

#[derive(Default, Clone, Copy)]
struct Load {
    leaders: usize,
    replicas: usize,
}

/// Replicas for `partitions` new partitions with `replication_factor` replicas each, preferred
/// leader first, spread over the live nodes of `image` (`PLACE-1..3`).
pub fn place(
    image: &MetadataImage,
    partitions: i32,
    replication_factor: i16,
) -> Result<Vec<Vec<NodeId>>, Rejection> {
    let live: Vec<(NodeId, String)> = image
        .live_nodes()
        .map(|n| {
            // A node without a rack is its own rack (PLACE-3); the prefix cannot clash with a
            // real rack name because rack names never start with a NUL.
            let rack = n.rack.clone().unwrap_or_else(|| format!("\0{}", n.id));
            (n.id, rack)
        })
        .collect();
    let rf = usize::try_from(replication_factor).unwrap_or(0);
    if rf == 0 || rf > REPLICATION_FACTOR_MAX || rf > live.len() {
        return Err(Rejection::InvalidReplicationFactor {
            replication_factor: i32::from(replication_factor),
            live_nodes: live.len(),
        });
    }
    if !(1..=PARTITIONS_MAX).contains(&partitions) {
        return Err(Rejection::InvalidPartitions {
            reason: format!("between 1 and {PARTITIONS_MAX} partitions, got {partitions}"),
        });
    }
    let mut load: BTreeMap<NodeId, Load> =
        live.iter().map(|(id, _)| (*id, Load::default())).collect();
    for t in image.topics.values() {
        for p in &t.partitions {
            if let Some(l) = p.replicas.first().and_then(|r| load.get_mut(r)) {
                l.leaders += 1;
            }
            for r in &p.replicas {
                if let Some(l) = load.get_mut(r) {
                    l.replicas += 1;
                }
            }
        }
    }
    let mut out = Vec::with_capacity(partitions as usize);
    for _ in 0..partitions {
        let mut replicas: Vec<NodeId> = Vec::with_capacity(rf);
        let mut racks: BTreeMap<&str, usize> = BTreeMap::new();
        let mut used = BTreeSet::new();
        // The leader: fewest leaderships, then fewest replicas, then lowest id (PLACE-2).
        let (leader, leader_rack) = live
            .iter()
            .min_by_key(|(id, _)| (load[id].leaders, load[id].replicas, *id))
            .expect("rf >= 1 so there is a live node");
        replicas.push(*leader);
        used.insert(*leader);
        *racks.entry(leader_rack).or_default() += 1;
        while replicas.len() < rf {
            let (id, rack) = live
                .iter()
                .filter(|(id, _)| !used.contains(id))
                .min_by_key(|(id, rack)| {
                    (
                        racks.get(rack.as_str()).copied().unwrap_or(0),
                        load[id].replicas,
                        *id,
                    )
                })
                .expect("rf <= live nodes");
            replicas.push(*id);
            used.insert(*id);
            *racks.entry(rack).or_default() += 1;
        }
        for (i, r) in replicas.iter().enumerate() {
            let l = load.get_mut(r).expect("placed on a live node");
            l.replicas += 1;
            if i == 0 {
                l.leaders += 1;
            }
        }
        out.push(replicas);
    }
    Ok(out)
}

impl Command {
    /// A [`Command::CreateTopic`] placed by [`place`] on `image`, with the default replication
    /// factor when `replication_factor` is `None`.
    pub fn create_topic(
        image: &MetadataImage,
        id: TopicId,
        name: &str,
        partitions: i32,
        replication_factor: Option<i16>,
        configs: BTreeMap<String, String>,
    ) -> Result<Command, Rejection> {
        let rf = replication_factor
            .unwrap_or_else(|| default_replication_factor(image.live_nodes().count()));
        Ok(Command::CreateTopic {
            id,
            name: name.to_owned(),
            configs,
            assignments: place(image, partitions, rf)?,
        })
    }

    /// A [`Command::CreatePartitions`] that grows topic `id` to `total` partitions, placed by
    /// [`place`] with the topic's replication factor.
    pub fn create_partitions(
        image: &MetadataImage,
        id: TopicId,
        total: i32,
    ) -> Result<Command, Rejection> {
        let topic = image
            .topic_by_id(&id)
            .ok_or(Rejection::UnknownTopicId { id })?;
        let existing = topic.partitions.len() as i32;
        if total <= existing {
            return Err(Rejection::InvalidPartitions {
                reason: format!("topic has {existing} partitions, asked for {total}"),
            });
        }
        let rf = i16::try_from(topic.replication_factor()).unwrap_or(i16::MAX);
        Ok(Command::CreatePartitions {
            id,
            assignments: place(image, total - existing, rf)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::metadata::image::{Endpoint, TopicId};

    fn image_with(racks: &[Option<&str>]) -> MetadataImage {
        let mut image = MetadataImage::default();
        for (i, rack) in racks.iter().enumerate() {
            let id = i as NodeId + 1;
            image
                .apply(&Command::RegisterNode {
                    id,
                    incarnation: 1,
                    endpoints: vec![Endpoint {
                        name: "PLAINTEXT".into(),
                        host: "h".into(),
                        port: 1,
                        security_protocol: "PLAINTEXT".into(),
                    }],
                    rack: rack.map(str::to_owned),
                    now_ms: 0,
                })
                .unwrap();
        }
        image
    }

    fn counts(image: &MetadataImage, a: &[Vec<NodeId>]) -> (Vec<usize>, Vec<usize>) {
        let mut leaders = BTreeMap::new();
        let mut replicas = BTreeMap::new();
        for n in image.live_nodes() {
            leaders.insert(n.id, 0);
            replicas.insert(n.id, 0);
        }
        for r in a {
            *leaders.get_mut(&r[0]).unwrap() += 1;
            for n in r {
                *replicas.get_mut(n).unwrap() += 1;
            }
        }
        (
            leaders.into_values().collect(),
            replicas.into_values().collect(),
        )
    }

    fn spread(v: &[usize]) -> usize {
        v.iter().max().unwrap() - v.iter().min().unwrap()
    }

    #[test]
    fn spreads_leaders_and_replicas_evenly() {
        for nodes in 1..=7 {
            let image = image_with(&vec![None; nodes]);
            for rf in 1..=nodes {
                for partitions in 1..=24 {
                    let a = place(&image, partitions, rf as i16).unwrap();
                    assert_eq!(a.len(), partitions as usize);
                    for r in &a {
                        let distinct: BTreeSet<_> = r.iter().collect();
                        assert_eq!(distinct.len(), rf, "PLACE-1: {r:?}");
                    }
                    let (leaders, replicas) = counts(&image, &a);
                    let at = format!("{nodes} nodes, rf {rf}, {partitions} partitions");
                    assert!(spread(&leaders) <= 1, "PLACE-2 {at}: {leaders:?}");
                    assert!(spread(&replicas) <= 1, "{at}: replicas {replicas:?}");
                }
            }
        }
    }

    #[test]
    fn later_topics_fill_the_least_loaded_nodes() {
        let mut image = image_with(&[None, None, None]);
        let mut all = Vec::new();
        for i in 0..3u8 {
            let mut id = [1u8; 16];
            id[0] = i;
            let cmd = Command::create_topic(
                &image,
                TopicId(id),
                &format!("t{i}"),
                1,
                Some(1),
                BTreeMap::new(),
            )
            .unwrap();
            if let Command::CreateTopic { assignments, .. } = &cmd {
                all.extend(assignments.clone());
            }
            image.apply(&cmd).unwrap();
        }
        // Three one-partition topics land on three different nodes.
        let (leaders, _) = counts(&image, &all);
        assert_eq!(leaders, vec![1, 1, 1]);
    }

    #[test]
    fn rack_aware_covers_distinct_racks() {
        let image = image_with(&[Some("a"), Some("a"), Some("b"), Some("b"), Some("c"), None]);
        // Four racks: "a", "b", "c" and node 6 alone.
        for rf in 1..=6usize {
            let a = place(&image, 12, rf as i16).unwrap();
            for r in &a {
                let racks: BTreeSet<_> = r
                    .iter()
                    .map(|n| image.nodes[n].rack.clone().unwrap_or(format!("solo{n}")))
                    .collect();
                assert_eq!(racks.len(), rf.min(4), "PLACE-3: rf {rf}: {r:?}");
            }
            let (leaders, _) = counts(&image, &a);
            assert!(spread(&leaders) <= 1, "PLACE-2: {leaders:?}");
        }
    }

    #[test]
    fn refuses_more_replicas_than_live_nodes() {
        let mut image = image_with(&[None, None, None]);
        image.apply(&Command::FenceNode { id: 3 }).unwrap();
        assert_eq!(
            place(&image, 1, 3),
            Err(Rejection::InvalidReplicationFactor {
                replication_factor: 3,
                live_nodes: 2
            })
        );
        assert!(place(&image, 1, 0).is_err());
        assert!(place(&image, 0, 1).is_err());
        let a = place(&image, 4, 2).unwrap();
        assert!(a.iter().all(|r| !r.contains(&3)), "PLACE-1");
        assert_eq!(default_replication_factor(1), 1);
        assert_eq!(default_replication_factor(2), 1);
        assert_eq!(default_replication_factor(3), 3);
    }
}
