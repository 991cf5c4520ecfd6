//! The cluster metadata as a pure, deterministic state machine: [`MetadataImage`] is everything
//! the quorum agrees on, [`Command`] is one change to it, and [`MetadataImage::apply`] decides
//! whether a command is valid and, if so, carries it out.
//!
//! Every node applies the same commands in the same order (the Raft log), so `apply` must give
//! the same result on every node: it reads no clock (times come inside the commands, from the
//! proposer), draws no random numbers (topic ids come from the proposer too) and iterates only
//! ordered maps.
//!
//! # Invariants
//! - `META-1`: `apply` validates a command completely before it changes anything: a rejected
//!   command leaves the image exactly as it was.
//! - `META-2`: topic names and topic ids are unique; an id is never zero; names that differ only
//!   by `.` versus `_` cannot both exist (Kafka's metric-name collision rule).
//! - `META-3`: a partition's replicas are distinct registered nodes, at least one; the
//!   partitions a [`Command::CreateTopic`] or [`Command::CreatePartitions`] makes all have the
//!   topic's replication factor (a reassignment may change one partition's, `META-7`); its ISR
//!   is a non-empty subset of its replicas; its leader, when it has one, is an unfenced member
//!   of its ISR.
//! - `META-4`: a partition's `leader_epoch` grows by one on every leader change (including to
//!   no leader) and its `partition_epoch` grows by one on every leader or ISR change; neither
//!   ever goes down. An [`Command::AlterPartition`] is applied only when it names the current
//!   `partition_epoch`, so a proposal built on a stale view is rejected, never merged.
//! - `META-5`: a fenced node leads no partition and is in no ISR, except as the last member of
//!   the ISR of a partition that then has no leader (so no replica that might be behind is made
//!   leader behind the operator's back); unfencing it makes it leader of such partitions again.
//! - `META-6`: a node registering with a new incarnation (it restarted) first leaves, in every
//!   partition that has other replicas, the ISR (unless it is its last member) and the
//!   leadership, as if fenced, so a replica that lost an unsynced tail in a crash is never
//!   counted in sync nor elected until it has caught up again. A partition it is the only
//!   replica of keeps it as leader under the same leader epoch.
//! - `META-7`: a partition being reassigned ([`PartitionRecord::reassignment`]) has as replicas
//!   its target replicas followed by the original replicas not in the target (so the adding
//!   replicas are followers that catch up from the leader while the removing ones still
//!   count), and its ISR never holds every target replica: the apply that would make it so
//!   (an [`Command::AlterPartition`] growing the ISR, or the [`Command::ReassignPartitions`]
//!   itself) also finishes the reassignment, deterministically: replicas become the target,
//!   the ISR shrinks to its target members, a leader outside the target hands over to the
//!   first target replica in the ISR, and both epochs grow. Starting, finishing and cancelling
//!   a reassignment each bump the leader epoch too, even when the leader stays, so the
//!   leader's replication state is rebuilt with the new replica set (the broker builds a new
//!   one only on a new leader epoch).
//! - `META-8`: ACL bindings and SCRAM credentials are well formed (see [`super::security`]);
//!   the image holds no password. Creating a binding that exists or deleting one that does not
//!   changes nothing; deleting a credential that does not exist is rejected.
//! - `META-9`: a share partition's state (KIP-932) is written only by the partition's leader: a
//!   [`Command::PutShareState`] is applied only when it names the partition's current leader
//!   epoch, so a deposed leader can never put its state over the new leader's. The state is
//!   opaque here (the broker's serialization, at most [`SHARE_STATE_LENGTH_MAX`] bytes), and the
//!   states of a topic go with it when it is deleted.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use super::security::{ACLS_PER_COMMAND_MAX, AclRecord, ScramRecord, check_user_mechanism};

/// A node's id: Kafka's `node.id` (a broker id), non-negative.
pub type NodeId = i32;

/// Longest topic name Kafka allows.
pub const TOPIC_NAME_LENGTH_MAX: usize = 249;
/// Most partitions a topic may have.
pub const PARTITIONS_MAX: i32 = 100_000;
/// Most replicas a partition may have.
pub const REPLICATION_FACTOR_MAX: usize = 32;
/// Most endpoints a node may register.
pub const ENDPOINTS_MAX: usize = 64;
/// Longest config key or value, in bytes.
pub const CONFIG_LENGTH_MAX: usize = 64 * 1024;
/// Longest share-partition state, in bytes (`META-9`).
pub const SHARE_STATE_LENGTH_MAX: usize = 1024 * 1024;

/// A topic id: 16 bytes, shown and serialized as 32 lowercase hex digits (the broker's
/// `topics.json` form). Kafka's Uuid on the wire is the same 16 bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct TopicId(pub [u8; 16]);

impl TopicId {
    /// The zero id, which Kafka reserves for "no id".
    pub const ZERO: TopicId = TopicId([0; 16]);

    /// Whether this is the reserved zero id.
    pub fn is_zero(&self) -> bool {
        *self == TopicId::ZERO
    }

    /// Parses 32 hex digits.
    pub fn parse(s: &str) -> Option<TopicId> {
        if s.len() != 32 || !s.is_ascii() {
            return None;
        }
        let mut out = [0u8; 16];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(TopicId(out))
    }
}

impl fmt::Display for TopicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for TopicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TopicId({self})")
    }
}

impl Serialize for TopicId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for TopicId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        TopicId::parse(&s).ok_or_else(|| serde::de::Error::custom("a topic id is 32 hex digits"))
    }
}

/// One listener of a node, as clients and other nodes reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// The listener name (`PLAINTEXT`, `INTERNAL`, ...).
    pub name: String,
    /// Advertised host.
    pub host: String,
    /// Advertised port.
    pub port: u16,
    /// Kafka's security protocol name of the listener (`PLAINTEXT`, `SASL_SSL`, ...).
    pub security_protocol: String,
}

/// A registered node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// The node id.
    pub id: NodeId,
    /// Chosen by the node each time it starts; a heartbeat of an older incarnation is refused.
    pub incarnation: u64,
    /// The node's listeners.
    pub endpoints: Vec<Endpoint>,
    /// `broker.rack`, if set.
    pub rack: Option<String>,
    /// A fenced node leads nothing and is kept out of ISRs (`META-5`).
    pub fenced: bool,
    /// When the node last registered, in the proposer's milliseconds since the epoch.
    pub registered_ms: i64,
    /// The time of the node's last accepted heartbeat (or registration).
    pub last_heartbeat_ms: i64,
}

/// One partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRecord {
    /// The replicas, preferred leader first.
    pub replicas: Vec<NodeId>,
    /// The in-sync replicas.
    pub isr: Vec<NodeId>,
    /// The leader, if the partition has one.
    pub leader: Option<NodeId>,
    /// Grows with every leader change (`META-4`).
    pub leader_epoch: i32,
    /// Grows with every leader or ISR change (`META-4`).
    pub partition_epoch: i32,
    /// The reassignment under way, if any (`META-7`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reassignment: Option<Reassignment>,
}

/// A partition's pending move to new replicas (`META-7`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reassignment {
    /// The replicas the partition will have, preferred leader first.
    pub target: Vec<NodeId>,
    /// The replicas it had when the reassignment started (restored by a cancel).
    pub original: Vec<NodeId>,
}

impl Reassignment {
    /// Target replicas not among the original ones (Kafka's adding replicas).
    pub fn adding(&self) -> Vec<NodeId> {
        self.target
            .iter()
            .copied()
            .filter(|r| !self.original.contains(r))
            .collect()
    }

    /// Original replicas not among the target ones (Kafka's removing replicas).
    pub fn removing(&self) -> Vec<NodeId> {
        self.original
            .iter()
            .copied()
            .filter(|r| !self.target.contains(r))
            .collect()
    }
}

impl PartitionRecord {
    /// The replicas the partition has once any reassignment under way is done.
    pub fn target_replicas(&self) -> &[NodeId] {
        self.reassignment
            .as_ref()
            .map_or(&self.replicas, |r| &r.target)
    }
}

/// A topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicRecord {
    /// The topic id.
    pub id: TopicId,
    /// The topic name.
    pub name: String,
    /// Config overrides, under Kafka's names.
    pub configs: BTreeMap<String, String>,
    /// The partitions, by index.
    pub partitions: Vec<PartitionRecord>,
}

impl TopicRecord {
    /// The replication factor: partition 0's number of replicas once any reassignment of it
    /// is done (new partitions get as many, `META-3`).
    pub fn replication_factor(&self) -> usize {
        self.partitions
            .first()
            .map_or(0, |p| p.target_replicas().len())
    }
}

/// The state of one share partition, as its leader last wrote it (`META-9`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareStateRecord {
    /// The partition's leader epoch when its leader wrote the state.
    pub leader_epoch: i32,
    /// The state, in the broker's serialization.
    pub state: String,
}

/// What a config change applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfigResource {
    /// A topic's overrides.
    Topic(String),
    /// One node's broker configs.
    Node(NodeId),
    /// The cluster-wide default broker configs (Kafka's broker resource with an empty name).
    Cluster,
    /// A group's configs (`share.auto.offset.reset` ...); a group needs no record to have them.
    Group(String),
}

/// Everything the metadata quorum agrees on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataImage {
    /// Registered nodes.
    pub nodes: BTreeMap<NodeId, NodeRecord>,
    /// Topics by name.
    pub topics: BTreeMap<String, TopicRecord>,
    /// Per-node broker configs.
    pub node_configs: BTreeMap<NodeId, BTreeMap<String, String>>,
    /// Cluster-wide default broker configs.
    pub cluster_configs: BTreeMap<String, String>,
    /// Group configs by group id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub group_configs: BTreeMap<String, BTreeMap<String, String>>,
    /// ACL bindings, sorted (`META-8`).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub acls: BTreeSet<AclRecord>,
    /// SCRAM credentials by user, then by mechanism name (`SCRAM-SHA-256`, `SCRAM-SHA-512`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub scram_credentials: BTreeMap<String, BTreeMap<String, ScramRecord>>,
    /// Share-partition states by share group, topic id and partition (`META-9`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub share_states: BTreeMap<String, BTreeMap<TopicId, BTreeMap<i32, ShareStateRecord>>>,
    /// The Raft log index of the last entry applied to this image (0 before any). Set by the
    /// quorum's state machine, not by [`MetadataImage::apply`]; equal images at equal indexes
    /// on every node.
    pub applied_index: u64,
}

/// One change to the metadata, as proposed to the quorum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// A node (re)registers when it starts: it becomes live (unfenced) with these endpoints.
    RegisterNode {
        /// The node.
        id: NodeId,
        /// A number the node picks afresh at every start.
        incarnation: u64,
        /// Its listeners.
        endpoints: Vec<Endpoint>,
        /// `broker.rack`.
        rack: Option<String>,
        /// The proposer's clock, milliseconds since the epoch.
        now_ms: i64,
    },
    /// A node is alive.
    Heartbeat {
        /// The node.
        id: NodeId,
        /// The incarnation it registered with.
        incarnation: u64,
        /// The proposer's clock, milliseconds since the epoch.
        now_ms: i64,
    },
    /// Fence a node: it stops leading and leaves ISRs (`META-5`).
    FenceNode {
        /// The node.
        id: NodeId,
    },
    /// Unfence a node.
    UnfenceNode {
        /// The node.
        id: NodeId,
    },
    /// Create a topic with a placement already decided (see [`crate::metadata::place`]).
    CreateTopic {
        /// A fresh, non-zero id.
        id: TopicId,
        /// The name.
        name: String,
        /// Config overrides (validated by the broker before proposing).
        configs: BTreeMap<String, String>,
        /// Replicas of each partition, preferred leader first.
        assignments: Vec<Vec<NodeId>>,
    },
    /// Add partitions to a topic.
    CreatePartitions {
        /// The topic.
        id: TopicId,
        /// Replicas of each new partition, preferred leader first.
        assignments: Vec<Vec<NodeId>>,
    },
    /// Delete a topic.
    DeleteTopic {
        /// The topic.
        id: TopicId,
    },
    /// Change a partition's leader and ISR.
    AlterPartition {
        /// The topic.
        topic: TopicId,
        /// The partition index.
        partition: i32,
        /// The new leader.
        leader: Option<NodeId>,
        /// The new ISR.
        isr: Vec<NodeId>,
        /// The partition epoch the proposal was built on (`META-4`).
        partition_epoch: i32,
    },
    /// Start (`Some`) or cancel (`None`) moving a partition to new replicas (`META-7`). Starting
    /// while another reassignment of the partition is under way replaces its target (the
    /// original replicas stay those before the first).
    ReassignPartitions {
        /// The topic.
        topic: TopicId,
        /// The partition index.
        partition: i32,
        /// The target replicas, preferred leader first; `None` cancels.
        target: Option<Vec<NodeId>>,
    },
    /// Set (`Some`) or remove (`None`) configs of a resource.
    AlterConfigs {
        /// What the configs belong to.
        resource: ConfigResource,
        /// Key → new value, or `None` to remove the key.
        changes: BTreeMap<String, Option<String>>,
    },
    /// Add ACL bindings (those present already stay as they are).
    CreateAcls {
        /// The bindings, validated by the broker.
        bindings: Vec<AclRecord>,
    },
    /// Remove exactly these ACL bindings (those absent are ignored: deleted meanwhile).
    DeleteAcls {
        /// The bindings, as the broker resolved its filters.
        bindings: Vec<AclRecord>,
    },
    /// Set the SCRAM credential of a user for a mechanism.
    UpsertScramCredential {
        /// The user.
        user: String,
        /// `SCRAM-SHA-256` or `SCRAM-SHA-512`.
        mechanism: String,
        /// The salt.
        #[serde(with = "super::security::hex_bytes")]
        salt: Vec<u8>,
        /// The iteration count.
        iterations: u32,
        /// H(ClientKey).
        #[serde(with = "super::security::hex_bytes")]
        stored_key: Vec<u8>,
        /// HMAC(SaltedPassword, "Server Key").
        #[serde(with = "super::security::hex_bytes")]
        server_key: Vec<u8>,
    },
    /// Remove the SCRAM credential of a user for a mechanism.
    DeleteScramCredential {
        /// The user.
        user: String,
        /// `SCRAM-SHA-256` or `SCRAM-SHA-512`.
        mechanism: String,
    },
    /// Set (`Some`) or remove (`None`) the state of share group `group` on a partition, from
    /// the partition's leader at `leader_epoch` (`META-9`).
    PutShareState {
        /// The share group.
        group: String,
        /// The topic.
        topic: TopicId,
        /// The partition index.
        partition: i32,
        /// The writer's leader epoch of the partition.
        leader_epoch: i32,
        /// The state, in the broker's serialization.
        state: Option<String>,
    },
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::RegisterNode { id, .. } => write!(f, "register node {id}"),
            Command::Heartbeat { id, .. } => write!(f, "heartbeat of node {id}"),
            Command::FenceNode { id } => write!(f, "fence node {id}"),
            Command::UnfenceNode { id } => write!(f, "unfence node {id}"),
            Command::CreateTopic {
                name, assignments, ..
            } => write!(
                f,
                "create topic {name} with {} partitions",
                assignments.len()
            ),
            Command::CreatePartitions { id, assignments } => {
                write!(f, "add {} partitions to topic {id}", assignments.len())
            }
            Command::DeleteTopic { id } => write!(f, "delete topic {id}"),
            Command::AlterPartition {
                topic, partition, ..
            } => write!(f, "alter partition {topic}-{partition}"),
            Command::ReassignPartitions {
                topic,
                partition,
                target: Some(target),
            } => write!(f, "reassign partition {topic}-{partition} to {target:?}"),
            Command::ReassignPartitions {
                topic,
                partition,
                target: None,
            } => write!(
                f,
                "cancel the reassignment of partition {topic}-{partition}"
            ),
            Command::AlterConfigs { resource, .. } => write!(f, "alter configs of {resource:?}"),
            Command::CreateAcls { bindings } => write!(f, "create {} ACLs", bindings.len()),
            Command::DeleteAcls { bindings } => write!(f, "delete {} ACLs", bindings.len()),
            Command::UpsertScramCredential {
                user, mechanism, ..
            } => write!(f, "set the {mechanism} credential of user {user}"),
            Command::DeleteScramCredential { user, mechanism } => {
                write!(f, "delete the {mechanism} credential of user {user}")
            }
            Command::PutShareState {
                group,
                topic,
                partition,
                ..
            } => write!(
                f,
                "write the state of share group {group} on {topic}-{partition}"
            ),
        }
    }
}

/// What an applied command did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// A node was registered, heartbeated, fenced or unfenced.
    Node {
        /// The node.
        id: NodeId,
        /// Whether it is fenced now.
        fenced: bool,
        /// How many partitions changed leader or ISR because of it.
        partitions_changed: u32,
    },
    /// A topic was created.
    TopicCreated {
        /// Its id.
        id: TopicId,
        /// Its number of partitions.
        partitions: i32,
    },
    /// Partitions were added.
    PartitionsCreated {
        /// The topic.
        id: TopicId,
        /// The topic's number of partitions now.
        partitions: i32,
    },
    /// A topic was deleted.
    TopicDeleted {
        /// Its id.
        id: TopicId,
        /// Its name.
        name: String,
    },
    /// A partition's leader and ISR are now these.
    PartitionAltered {
        /// The leader.
        leader: Option<NodeId>,
        /// The leader epoch.
        leader_epoch: i32,
        /// The partition epoch.
        partition_epoch: i32,
    },
    /// A reassignment was started, replaced, finished or cancelled.
    PartitionReassigned {
        /// The replicas now.
        replicas: Vec<NodeId>,
        /// Whether a reassignment is still under way.
        pending: bool,
        /// The leader epoch.
        leader_epoch: i32,
        /// The partition epoch.
        partition_epoch: i32,
    },
    /// Configs were changed.
    ConfigsAltered,
    /// ACL bindings were created or deleted.
    AclsChanged {
        /// How many bindings were added or removed (those present or absent already are not
        /// counted).
        changed: u32,
    },
    /// A SCRAM credential was set or removed.
    ScramCredentialChanged,
    /// Share-partition states were written or removed.
    ShareStateChanged,
    /// A log entry that carries no command (a new leader's blank entry, a membership change).
    NoCommand,
}

/// Why a command was not applied. Nothing changed (`META-1`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum Rejection {
    /// The node is not registered.
    #[error("node {id} is not registered")]
    UnknownNode {
        /// The node.
        id: NodeId,
    },
    /// A node id must be non-negative.
    #[error("node id {id} is negative")]
    InvalidNodeId {
        /// The id.
        id: NodeId,
    },
    /// A heartbeat from an incarnation that has been replaced by a newer registration.
    #[error("node {id} heartbeat from incarnation {proposed}, registered as {current}")]
    StaleIncarnation {
        /// The node.
        id: NodeId,
        /// The registered incarnation.
        current: u64,
        /// The heartbeat's incarnation.
        proposed: u64,
    },
    /// A registration is malformed.
    #[error("invalid registration of node {id}: {reason}")]
    InvalidRegistration {
        /// The node.
        id: NodeId,
        /// Why.
        reason: String,
    },
    /// No topic has this name.
    #[error("unknown topic {name}")]
    UnknownTopic {
        /// The name.
        name: String,
    },
    /// No topic has this id.
    #[error("unknown topic id {id}")]
    UnknownTopicId {
        /// The id.
        id: TopicId,
    },
    /// The topic has no such partition.
    #[error("topic {topic} has no partition {partition}")]
    UnknownPartition {
        /// The topic name.
        topic: String,
        /// The partition index.
        partition: i32,
    },
    /// A topic of this name exists.
    #[error("topic {name} already exists")]
    TopicExists {
        /// The name.
        name: String,
    },
    /// The id is zero or taken.
    #[error("topic id {id} is zero or already in use")]
    InvalidTopicId {
        /// The id.
        id: TopicId,
    },
    /// The name differs from an existing topic's only by '.' versus '_'.
    #[error("topic {name} collides with topic {existing} ('.' and '_' are alike)")]
    TopicCollision {
        /// The new name.
        name: String,
        /// The existing name.
        existing: String,
    },
    /// The name breaks Kafka's rules.
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidTopicName {
        /// The name.
        name: String,
        /// Why.
        reason: String,
    },
    /// The number of partitions is out of range.
    #[error("invalid number of partitions: {reason}")]
    InvalidPartitions {
        /// Why.
        reason: String,
    },
    /// More replicas asked for than there are live nodes (or outside 1..=32).
    #[error("replication factor {replication_factor} is invalid with {live_nodes} live nodes")]
    InvalidReplicationFactor {
        /// The replication factor asked for.
        replication_factor: i32,
        /// Live (registered, unfenced) nodes.
        live_nodes: usize,
    },
    /// A replica assignment breaks `META-3`.
    #[error("invalid replica assignment: {reason}")]
    InvalidReplicaAssignment {
        /// Why.
        reason: String,
    },
    /// The proposal was built on an older partition epoch (`META-4`).
    #[error("stale partition epoch {proposed}, the partition is at {current}")]
    StalePartitionEpoch {
        /// The partition's epoch.
        current: i32,
        /// The proposal's.
        proposed: i32,
    },
    /// A proposed leader or ISR breaks `META-3` or `META-5`.
    #[error("invalid leader or ISR: {reason}")]
    InvalidLeaderOrIsr {
        /// Why.
        reason: String,
    },
    /// A cancel of a partition that is not being reassigned.
    #[error("no reassignment of {topic}-{partition} is in progress")]
    NoReassignmentInProgress {
        /// The topic name.
        topic: String,
        /// The partition index.
        partition: i32,
    },
    /// A share-partition state from a writer that is not the partition's leader (`META-9`).
    #[error("stale leader epoch {proposed}, the partition is at {current}")]
    StaleLeaderEpoch {
        /// The partition's leader epoch.
        current: i32,
        /// The writer's.
        proposed: i32,
    },
    /// A share-partition state over [`SHARE_STATE_LENGTH_MAX`] bytes.
    #[error("share-partition state of {length} bytes; the limit is {SHARE_STATE_LENGTH_MAX}")]
    ShareStateTooLarge {
        /// Its length.
        length: usize,
    },
    /// A config change is malformed.
    #[error("invalid config: {reason}")]
    InvalidConfig {
        /// Why.
        reason: String,
    },
    /// An ACL binding is malformed (`META-8`).
    #[error("invalid ACL binding: {reason}")]
    InvalidAcl {
        /// Why.
        reason: String,
    },
    /// A SCRAM credential is malformed (`META-8`).
    #[error("invalid SCRAM credential: {reason}")]
    InvalidScramCredential {
        /// Why.
        reason: String,
    },
    /// The user has no credential for the mechanism.
    #[error("attempt to delete a user credential that does not exist: {user} {mechanism}")]
    UnknownScramCredential {
        /// The user.
        user: String,
        /// The mechanism.
        mechanism: String,
    },
}

/// Why a topic name is invalid, under Kafka's rules.
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("topic name is empty".into());
    }
    if name == "." || name == ".." {
        return Err(format!("topic name cannot be {name:?}"));
    }
    if name.len() > TOPIC_NAME_LENGTH_MAX {
        return Err(format!(
            "topic name is {} characters; the limit is {TOPIC_NAME_LENGTH_MAX}",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "topic name {name:?} contains {c:?}; only ASCII letters, digits, '.', '_' and '-' are allowed"
        ));
    }
    Ok(())
}

fn invalid_assignment(reason: impl Into<String>) -> Rejection {
    Rejection::InvalidReplicaAssignment {
        reason: reason.into(),
    }
}

fn invalid_leader_or_isr(reason: impl Into<String>) -> Rejection {
    Rejection::InvalidLeaderOrIsr {
        reason: reason.into(),
    }
}

impl MetadataImage {
    /// The topic `name`.
    pub fn topic(&self, name: &str) -> Option<&TopicRecord> {
        self.topics.get(name)
    }

    /// The topic with id `id` (a scan: topics are keyed by name).
    pub fn topic_by_id(&self, id: &TopicId) -> Option<&TopicRecord> {
        self.topics.values().find(|t| t.id == *id)
    }

    /// Registered, unfenced nodes, by id.
    pub fn live_nodes(&self) -> impl Iterator<Item = &NodeRecord> {
        self.nodes.values().filter(|n| !n.fenced)
    }

    /// Whether `id` is registered and unfenced.
    pub fn is_live(&self, id: NodeId) -> bool {
        self.nodes.get(&id).is_some_and(|n| !n.fenced)
    }

    /// Unfenced nodes whose last heartbeat is more than `session_timeout_ms` before `now_ms`:
    /// the ones the leader should propose to fence.
    pub fn stale_nodes(&self, now_ms: i64, session_timeout_ms: i64) -> Vec<NodeId> {
        self.live_nodes()
            .filter(|n| now_ms.saturating_sub(n.last_heartbeat_ms) > session_timeout_ms)
            .map(|n| n.id)
            .collect()
    }

    /// Applies one command: validates it, then changes the image (`META-1`).
    pub fn apply(&mut self, cmd: &Command) -> Result<Outcome, Rejection> {
        match cmd {
            Command::RegisterNode {
                id,
                incarnation,
                endpoints,
                rack,
                now_ms,
            } => self.register_node(*id, *incarnation, endpoints, rack.as_deref(), *now_ms),
            Command::Heartbeat {
                id,
                incarnation,
                now_ms,
            } => self.heartbeat(*id, *incarnation, *now_ms),
            Command::FenceNode { id } => self.fence_node(*id),
            Command::UnfenceNode { id } => self.unfence_node(*id),
            Command::CreateTopic {
                id,
                name,
                configs,
                assignments,
            } => self.create_topic(*id, name, configs, assignments),
            Command::CreatePartitions { id, assignments } => {
                self.create_partitions(id, assignments)
            }
            Command::DeleteTopic { id } => self.delete_topic(id),
            Command::AlterPartition {
                topic,
                partition,
                leader,
                isr,
                partition_epoch,
            } => self.alter_partition(topic, *partition, *leader, isr, *partition_epoch),
            Command::ReassignPartitions {
                topic,
                partition,
                target,
            } => self.reassign_partition(topic, *partition, target.as_deref()),
            Command::AlterConfigs { resource, changes } => self.alter_configs(resource, changes),
            Command::CreateAcls { bindings } => self.create_acls(bindings),
            Command::DeleteAcls { bindings } => self.delete_acls(bindings),
            Command::UpsertScramCredential {
                user,
                mechanism,
                salt,
                iterations,
                stored_key,
                server_key,
            } => self.upsert_scram_credential(
                user,
                mechanism,
                ScramRecord {
                    salt: salt.clone(),
                    iterations: *iterations,
                    stored_key: stored_key.clone(),
                    server_key: server_key.clone(),
                },
            ),
            Command::DeleteScramCredential { user, mechanism } => {
                self.delete_scram_credential(user, mechanism)
            }
            Command::PutShareState {
                group,
                topic,
                partition,
                leader_epoch,
                state,
            } => self.put_share_state(group, topic, *partition, *leader_epoch, state.as_deref()),
        }
    }

    fn check_acl_batch(bindings: &[AclRecord]) -> Result<(), Rejection> {
        if bindings.len() > ACLS_PER_COMMAND_MAX {
            return Err(Rejection::InvalidAcl {
                reason: format!(
                    "{} bindings in one command; at most {ACLS_PER_COMMAND_MAX}",
                    bindings.len()
                ),
            });
        }
        for b in bindings {
            b.check()
                .map_err(|reason| Rejection::InvalidAcl { reason })?;
        }
        Ok(())
    }

    fn create_acls(&mut self, bindings: &[AclRecord]) -> Result<Outcome, Rejection> {
        Self::check_acl_batch(bindings)?;
        let mut changed = 0u32;
        for b in bindings {
            if self.acls.insert(b.clone()) {
                changed += 1;
            }
        }
        Ok(Outcome::AclsChanged { changed })
    }

    fn delete_acls(&mut self, bindings: &[AclRecord]) -> Result<Outcome, Rejection> {
        Self::check_acl_batch(bindings)?;
        let mut changed = 0u32;
        for b in bindings {
            if self.acls.remove(b) {
                changed += 1;
            }
        }
        Ok(Outcome::AclsChanged { changed })
    }

    fn upsert_scram_credential(
        &mut self,
        user: &str,
        mechanism: &str,
        record: ScramRecord,
    ) -> Result<Outcome, Rejection> {
        record
            .check(user, mechanism)
            .map_err(|reason| Rejection::InvalidScramCredential { reason })?;
        self.scram_credentials
            .entry(user.to_owned())
            .or_default()
            .insert(mechanism.to_owned(), record);
        Ok(Outcome::ScramCredentialChanged)
    }

    fn delete_scram_credential(
        &mut self,
        user: &str,
        mechanism: &str,
    ) -> Result<Outcome, Rejection> {
        check_user_mechanism(user, mechanism)
            .map_err(|reason| Rejection::InvalidScramCredential { reason })?;
        let unknown = || Rejection::UnknownScramCredential {
            user: user.to_owned(),
            mechanism: mechanism.to_owned(),
        };
        let mechanisms = self.scram_credentials.get_mut(user).ok_or_else(unknown)?;
        mechanisms.remove(mechanism).ok_or_else(unknown)?;
        if mechanisms.is_empty() {
            self.scram_credentials.remove(user);
        }
        Ok(Outcome::ScramCredentialChanged)
    }

    fn register_node(
        &mut self,
        id: NodeId,
        incarnation: u64,
        endpoints: &[Endpoint],
        rack: Option<&str>,
        now_ms: i64,
    ) -> Result<Outcome, Rejection> {
        if id < 0 {
            return Err(Rejection::InvalidNodeId { id });
        }
        let invalid = |reason: String| Rejection::InvalidRegistration { id, reason };
        if endpoints.len() > ENDPOINTS_MAX {
            return Err(invalid(format!(
                "{} endpoints; the limit is {ENDPOINTS_MAX}",
                endpoints.len()
            )));
        }
        let mut names = BTreeSet::new();
        for e in endpoints {
            if e.name.is_empty() || !names.insert(e.name.as_str()) {
                return Err(invalid(format!(
                    "listener name {:?} is empty or repeated",
                    e.name
                )));
            }
        }
        if rack.is_some_and(|r| r.is_empty() || r.len() > CONFIG_LENGTH_MAX) {
            return Err(invalid("rack is empty or too long".into()));
        }
        let node = NodeRecord {
            id,
            incarnation,
            endpoints: endpoints.to_vec(),
            rack: rack.map(str::to_owned),
            fenced: false,
            registered_ms: now_ms,
            last_heartbeat_ms: now_ms,
        };
        // A node back with a new incarnation restarted: what it held unsynced may be gone, so
        // it leaves every ISR and leadership first, as if fenced (META-6), and rejoins the ISRs
        // by catching up.
        let restarted = self
            .nodes
            .get(&id)
            .is_some_and(|n| n.incarnation != incarnation && !n.fenced);
        let mut partitions_changed = 0;
        if restarted {
            // META-6: a partition it alone holds stays its own, under the same epoch.
            partitions_changed += self.leave_partitions(id, true);
        }
        self.nodes.insert(id, node);
        partitions_changed += self.elect_leaderless(id);
        Ok(Outcome::Node {
            id,
            fenced: false,
            partitions_changed,
        })
    }

    fn heartbeat(
        &mut self,
        id: NodeId,
        incarnation: u64,
        now_ms: i64,
    ) -> Result<Outcome, Rejection> {
        let node = self
            .nodes
            .get_mut(&id)
            .ok_or(Rejection::UnknownNode { id })?;
        if node.incarnation != incarnation {
            return Err(Rejection::StaleIncarnation {
                id,
                current: node.incarnation,
                proposed: incarnation,
            });
        }
        // Heartbeats from proposers whose clocks disagree never move the time backwards.
        node.last_heartbeat_ms = node.last_heartbeat_ms.max(now_ms);
        Ok(Outcome::Node {
            id,
            fenced: node.fenced,
            partitions_changed: 0,
        })
    }

    fn fence_node(&mut self, id: NodeId) -> Result<Outcome, Rejection> {
        let node = self
            .nodes
            .get_mut(&id)
            .ok_or(Rejection::UnknownNode { id })?;
        if node.fenced {
            return Ok(Outcome::Node {
                id,
                fenced: true,
                partitions_changed: 0,
            });
        }
        node.fenced = true;
        let changed = self.leave_partitions(id, false);
        Ok(Outcome::Node {
            id,
            fenced: true,
            partitions_changed: changed,
        })
    }

    /// Node `id` leaves the ISR (unless it is its last member, META-5) and the leadership of
    /// every partition it is a replica of, another live in-sync replica leading instead; with
    /// `only_replicated`, partitions it is the only replica of are left as they are (a restart,
    /// META-6). Returns how many partitions changed.
    fn leave_partitions(&mut self, id: NodeId, only_replicated: bool) -> u32 {
        let live: BTreeSet<NodeId> = self
            .live_nodes()
            .map(|n| n.id)
            .filter(|n| *n != id)
            .collect();
        let mut changed = 0;
        for topic in self.topics.values_mut() {
            for p in &mut topic.partitions {
                if !p.replicas.contains(&id) || (only_replicated && p.replicas.len() <= 1) {
                    continue;
                }
                let mut touched = false;
                if p.isr.len() > 1 && p.isr.contains(&id) {
                    p.isr.retain(|r| *r != id);
                    touched = true;
                }
                if p.leader == Some(id) {
                    p.leader = p
                        .replicas
                        .iter()
                        .copied()
                        .find(|r| p.isr.contains(r) && live.contains(r));
                    p.leader_epoch += 1;
                    touched = true;
                }
                if touched {
                    p.partition_epoch += 1;
                    changed += 1;
                }
            }
        }
        changed
    }

    fn unfence_node(&mut self, id: NodeId) -> Result<Outcome, Rejection> {
        let node = self
            .nodes
            .get_mut(&id)
            .ok_or(Rejection::UnknownNode { id })?;
        node.fenced = false;
        let partitions_changed = self.elect_leaderless(id);
        Ok(Outcome::Node {
            id,
            fenced: false,
            partitions_changed,
        })
    }

    /// Makes the live node `id` leader of every leaderless partition whose ISR holds it.
    fn elect_leaderless(&mut self, id: NodeId) -> u32 {
        let mut changed = 0;
        for topic in self.topics.values_mut() {
            for p in &mut topic.partitions {
                if p.leader.is_none() && p.isr.contains(&id) {
                    p.leader = Some(id);
                    p.leader_epoch += 1;
                    p.partition_epoch += 1;
                    changed += 1;
                }
            }
        }
        changed
    }

    /// Checks one partition's replicas against `META-3` and returns its initial ISR (the live
    /// replicas) and leader (the first of them).
    fn initial_state(
        &self,
        index: usize,
        replicas: &[NodeId],
        replication_factor: usize,
    ) -> Result<PartitionRecord, Rejection> {
        if replicas.len() != replication_factor {
            return Err(invalid_assignment(format!(
                "partition {index} has {} replicas, partition 0 has {replication_factor}",
                replicas.len()
            )));
        }
        let mut seen = BTreeSet::new();
        for r in replicas {
            if !seen.insert(*r) {
                return Err(invalid_assignment(format!(
                    "partition {index} names node {r} twice"
                )));
            }
            if !self.nodes.contains_key(r) {
                return Err(invalid_assignment(format!(
                    "partition {index} names node {r}, which is not registered"
                )));
            }
        }
        let isr: Vec<NodeId> = replicas
            .iter()
            .copied()
            .filter(|r| self.is_live(*r))
            .collect();
        let Some(&leader) = isr.first() else {
            return Err(invalid_assignment(format!(
                "every replica of partition {index} is fenced"
            )));
        };
        Ok(PartitionRecord {
            replicas: replicas.to_vec(),
            isr,
            leader: Some(leader),
            leader_epoch: 0,
            partition_epoch: 0,
            reassignment: None,
        })
    }

    fn new_partitions(
        &self,
        assignments: &[Vec<NodeId>],
        replication_factor: usize,
        first_index: usize,
    ) -> Result<Vec<PartitionRecord>, Rejection> {
        if !(1..=REPLICATION_FACTOR_MAX).contains(&replication_factor) {
            return Err(Rejection::InvalidReplicationFactor {
                replication_factor: i32::try_from(replication_factor).unwrap_or(i32::MAX),
                live_nodes: self.live_nodes().count(),
            });
        }
        assignments
            .iter()
            .enumerate()
            .map(|(i, replicas)| self.initial_state(first_index + i, replicas, replication_factor))
            .collect()
    }

    fn create_topic(
        &mut self,
        id: TopicId,
        name: &str,
        configs: &BTreeMap<String, String>,
        assignments: &[Vec<NodeId>],
    ) -> Result<Outcome, Rejection> {
        validate_topic_name(name).map_err(|reason| Rejection::InvalidTopicName {
            name: name.to_owned(),
            reason,
        })?;
        if self.topics.contains_key(name) {
            return Err(Rejection::TopicExists {
                name: name.to_owned(),
            });
        }
        let folded = name.replace('.', "_");
        if let Some(existing) = self.topics.keys().find(|t| t.replace('.', "_") == folded) {
            return Err(Rejection::TopicCollision {
                name: name.to_owned(),
                existing: existing.clone(),
            });
        }
        if id.is_zero() || self.topic_by_id(&id).is_some() {
            return Err(Rejection::InvalidTopicId { id });
        }
        check_partition_count(assignments.len(), 0)?;
        check_configs(configs.iter().map(|(k, v)| (k, Some(v))))?;
        let rf = assignments.first().map_or(0, Vec::len);
        let partitions = self.new_partitions(assignments, rf, 0)?;
        let count = partitions.len() as i32;
        self.topics.insert(
            name.to_owned(),
            TopicRecord {
                id,
                name: name.to_owned(),
                configs: configs.clone(),
                partitions,
            },
        );
        Ok(Outcome::TopicCreated {
            id,
            partitions: count,
        })
    }

    fn topic_name_of(&self, id: &TopicId) -> Result<String, Rejection> {
        self.topic_by_id(id)
            .map(|t| t.name.clone())
            .ok_or(Rejection::UnknownTopicId { id: *id })
    }

    /// Partition `partition` of topic `id`, with the topic's name.
    fn partition_by_id(
        &self,
        id: &TopicId,
        partition: i32,
    ) -> Result<(String, &PartitionRecord), Rejection> {
        let name = self.topic_name_of(id)?;
        let p = usize::try_from(partition)
            .ok()
            .and_then(|i| self.topics[&name].partitions.get(i))
            .ok_or_else(|| Rejection::UnknownPartition {
                topic: name.clone(),
                partition,
            })?;
        Ok((name, p))
    }

    fn create_partitions(
        &mut self,
        id: &TopicId,
        assignments: &[Vec<NodeId>],
    ) -> Result<Outcome, Rejection> {
        let name = self.topic_name_of(id)?;
        let topic = &self.topics[&name];
        let existing = topic.partitions.len();
        if assignments.is_empty() {
            return Err(Rejection::InvalidPartitions {
                reason: "no partitions to add".into(),
            });
        }
        check_partition_count(assignments.len(), existing)?;
        let new = self.new_partitions(assignments, topic.replication_factor(), existing)?;
        let topic = self.topics.get_mut(&name).expect("looked up above");
        topic.partitions.extend(new);
        Ok(Outcome::PartitionsCreated {
            id: *id,
            partitions: topic.partitions.len() as i32,
        })
    }

    fn delete_topic(&mut self, id: &TopicId) -> Result<Outcome, Rejection> {
        let name = self.topic_name_of(id)?;
        self.topics.remove(&name);
        self.share_states.retain(|_, topics| {
            topics.remove(id);
            !topics.is_empty()
        });
        Ok(Outcome::TopicDeleted { id: *id, name })
    }

    fn put_share_state(
        &mut self,
        group: &str,
        topic: &TopicId,
        partition: i32,
        leader_epoch: i32,
        state: Option<&str>,
    ) -> Result<Outcome, Rejection> {
        let (_, p) = self.partition_by_id(topic, partition)?;
        if leader_epoch != p.leader_epoch {
            return Err(Rejection::StaleLeaderEpoch {
                current: p.leader_epoch,
                proposed: leader_epoch,
            });
        }
        match state {
            Some(state) if state.len() > SHARE_STATE_LENGTH_MAX => {
                return Err(Rejection::ShareStateTooLarge {
                    length: state.len(),
                });
            }
            Some(state) => {
                self.share_states
                    .entry(group.to_owned())
                    .or_default()
                    .entry(*topic)
                    .or_default()
                    .insert(
                        partition,
                        ShareStateRecord {
                            leader_epoch,
                            state: state.to_owned(),
                        },
                    );
            }
            None => {
                if let Some(topics) = self.share_states.get_mut(group) {
                    if let Some(partitions) = topics.get_mut(topic) {
                        partitions.remove(&partition);
                        if partitions.is_empty() {
                            topics.remove(topic);
                        }
                    }
                    if topics.is_empty() {
                        self.share_states.remove(group);
                    }
                }
            }
        }
        Ok(Outcome::ShareStateChanged)
    }

    /// The state share group `group` last wrote on `partition` of `topic` (`META-9`).
    pub fn share_state(
        &self,
        group: &str,
        topic: &TopicId,
        partition: i32,
    ) -> Option<&ShareStateRecord> {
        self.share_states.get(group)?.get(topic)?.get(&partition)
    }

    fn alter_partition(
        &mut self,
        topic: &TopicId,
        partition: i32,
        leader: Option<NodeId>,
        isr: &[NodeId],
        partition_epoch: i32,
    ) -> Result<Outcome, Rejection> {
        let (name, p) = self.partition_by_id(topic, partition)?;
        if partition_epoch != p.partition_epoch {
            return Err(Rejection::StalePartitionEpoch {
                current: p.partition_epoch,
                proposed: partition_epoch,
            });
        }
        if isr.is_empty() {
            return Err(invalid_leader_or_isr("the ISR is empty"));
        }
        let mut seen = BTreeSet::new();
        for r in isr {
            if !seen.insert(*r) {
                return Err(invalid_leader_or_isr(format!("node {r} is named twice")));
            }
            if !p.replicas.contains(r) {
                return Err(invalid_leader_or_isr(format!("node {r} is not a replica")));
            }
            if !self.is_live(*r) {
                return Err(invalid_leader_or_isr(format!(
                    "node {r} is fenced or not registered"
                )));
            }
        }
        if let Some(l) = leader
            && !isr.contains(&l)
        {
            return Err(invalid_leader_or_isr(format!(
                "leader {l} is not in the ISR"
            )));
        }
        let live: BTreeSet<NodeId> = self.live_nodes().map(|n| n.id).collect();
        let p = &mut self
            .topics
            .get_mut(&name)
            .expect("looked up above")
            .partitions[partition as usize];
        let leader_changed = p.leader != leader;
        if leader_changed || p.isr != isr {
            if leader_changed {
                p.leader = leader;
                p.leader_epoch += 1;
            }
            p.isr = isr.to_vec();
            p.partition_epoch += 1;
        }
        // META-7: the ISR may now hold every target replica.
        finish_reassignment(p, &live);
        Ok(Outcome::PartitionAltered {
            leader: p.leader,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
        })
    }

    fn reassign_partition(
        &mut self,
        topic: &TopicId,
        partition: i32,
        target: Option<&[NodeId]>,
    ) -> Result<Outcome, Rejection> {
        let (name, p) = self.partition_by_id(topic, partition)?;
        let live: BTreeSet<NodeId> = self.live_nodes().map(|n| n.id).collect();
        let Some(target) = target else {
            // Cancel: back to the original replicas, keeping the in-sync ones among them.
            let Some(r) = &p.reassignment else {
                return Err(Rejection::NoReassignmentInProgress {
                    topic: name,
                    partition,
                });
            };
            let original = r.original.clone();
            let isr: Vec<NodeId> = p
                .isr
                .iter()
                .copied()
                .filter(|n| original.contains(n))
                .collect();
            if isr.is_empty() {
                return Err(invalid_assignment(format!(
                    "no original replica of {name}-{partition} is in sync; cannot cancel"
                )));
            }
            let p = &mut self
                .topics
                .get_mut(&name)
                .expect("looked up above")
                .partitions[partition as usize];
            settle(p, original, isr, &live);
            return Ok(reassigned(p));
        };
        if target.is_empty() || target.len() > REPLICATION_FACTOR_MAX {
            return Err(invalid_assignment(format!(
                "a partition has between 1 and {REPLICATION_FACTOR_MAX} replicas, the target names {}",
                target.len()
            )));
        }
        let mut seen = BTreeSet::new();
        for r in target {
            if !seen.insert(*r) {
                return Err(invalid_assignment(format!(
                    "the target names node {r} twice"
                )));
            }
            if !self.nodes.contains_key(r) {
                return Err(invalid_assignment(format!(
                    "the target names node {r}, which is not registered"
                )));
            }
        }
        let original = p
            .reassignment
            .as_ref()
            .map_or_else(|| p.replicas.clone(), |r| r.original.clone());
        // Replicas neither in the target nor original (adding replicas of a replaced
        // reassignment) leave now; the ISR keeps the rest.
        let mut replicas = target.to_vec();
        replicas.extend(original.iter().copied().filter(|r| !target.contains(r)));
        let isr: Vec<NodeId> = p
            .isr
            .iter()
            .copied()
            .filter(|n| replicas.contains(n))
            .collect();
        if isr.is_empty() {
            return Err(invalid_assignment(format!(
                "no in-sync replica of {name}-{partition} would be left"
            )));
        }
        let p = &mut self
            .topics
            .get_mut(&name)
            .expect("looked up above")
            .partitions[partition as usize];
        if target == original.as_slice() {
            // Moving to where it was: nothing left to do but end any reassignment.
            if p.reassignment.is_some() {
                settle(p, original, isr, &live);
            }
            return Ok(reassigned(p));
        }
        let reassignment = Reassignment {
            target: target.to_vec(),
            original,
        };
        if reassignment.target.iter().all(|r| isr.contains(r)) {
            // Already in sync everywhere it is going (a reorder or a shrink): done at once.
            let isr = isr
                .into_iter()
                .filter(|n| reassignment.target.contains(n))
                .collect();
            settle(p, reassignment.target, isr, &live);
            return Ok(reassigned(p));
        }
        p.replicas = replicas;
        p.isr = isr;
        if p.leader.is_some_and(|l| !p.isr.contains(&l)) {
            p.leader = elect(&p.replicas, &p.isr, &live);
        }
        p.reassignment = Some(reassignment);
        p.leader_epoch += 1;
        p.partition_epoch += 1;
        Ok(reassigned(p))
    }

    fn alter_configs(
        &mut self,
        resource: &ConfigResource,
        changes: &BTreeMap<String, Option<String>>,
    ) -> Result<Outcome, Rejection> {
        check_configs(changes.iter().map(|(k, v)| (k, v.as_ref())))?;
        let configs = match resource {
            ConfigResource::Topic(name) => {
                &mut self
                    .topics
                    .get_mut(name)
                    .ok_or_else(|| Rejection::UnknownTopic { name: name.clone() })?
                    .configs
            }
            ConfigResource::Node(id) => {
                if !self.nodes.contains_key(id) {
                    return Err(Rejection::UnknownNode { id: *id });
                }
                self.node_configs.entry(*id).or_default()
            }
            ConfigResource::Cluster => &mut self.cluster_configs,
            ConfigResource::Group(id) => self.group_configs.entry(id.clone()).or_default(),
        };
        for (k, v) in changes {
            match v {
                Some(v) => configs.insert(k.clone(), v.clone()),
                None => configs.remove(k),
            };
        }
        if let ConfigResource::Node(id) = resource
            && self.node_configs.get(id).is_some_and(BTreeMap::is_empty)
        {
            self.node_configs.remove(id);
        }
        if let ConfigResource::Group(id) = resource
            && self.group_configs.get(id).is_some_and(BTreeMap::is_empty)
        {
            self.group_configs.remove(id);
        }
        Ok(Outcome::ConfigsAltered)
    }

    /// Checks `META-2`, `META-3`, `META-5`, `META-7`, `META-8` and `META-9` over the whole image; tests and
    /// simulations call it after every command (the pair of the checks `apply` makes on each
    /// command).
    pub fn check_invariants(&self) -> Result<(), String> {
        for (group, topics) in &self.share_states {
            for (id, partitions) in topics {
                let topic = self.topic_by_id(id).ok_or_else(|| {
                    format!("share group {group} has a state on unknown topic {id}")
                })?;
                for (p, record) in partitions {
                    let known = usize::try_from(*p).is_ok_and(|i| i < topic.partitions.len());
                    if !known || record.state.len() > SHARE_STATE_LENGTH_MAX {
                        return Err(format!("share group {group}: bad state on {id}-{p}"));
                    }
                }
            }
        }
        for b in &self.acls {
            b.check().map_err(|e| format!("ACL {b}: {e}"))?;
        }
        for (user, mechanisms) in &self.scram_credentials {
            if mechanisms.is_empty() {
                return Err(format!("user {user} has an empty credential set"));
            }
            for (mechanism, c) in mechanisms {
                c.check(user, mechanism)
                    .map_err(|e| format!("credential {user} {mechanism}: {e}"))?;
            }
        }
        let mut ids = BTreeSet::new();
        let mut folded = BTreeSet::new();
        for (name, t) in &self.topics {
            if *name != t.name {
                return Err(format!("topic {} is filed under {name}", t.name));
            }
            if t.id.is_zero() || !ids.insert(t.id) {
                return Err(format!("topic {name} has a zero or repeated id"));
            }
            if !folded.insert(name.replace('.', "_")) {
                return Err(format!("topic {name} collides with another"));
            }
            for (i, p) in t.partitions.iter().enumerate() {
                let at = format!("{name}-{i}");
                let distinct: BTreeSet<_> = p.replicas.iter().collect();
                if distinct.len() != p.replicas.len() || p.replicas.is_empty() {
                    return Err(format!("{at}: bad replicas {:?}", p.replicas));
                }
                if let Some(r) = &p.reassignment {
                    let mut expected = r.target.clone();
                    expected.extend(r.original.iter().filter(|o| !r.target.contains(o)));
                    if p.replicas != expected || r.target == r.original {
                        return Err(format!("{at}: replicas {:?} for {r:?}", p.replicas));
                    }
                    if r.target.iter().all(|n| p.isr.contains(n)) {
                        return Err(format!("{at}: ISR {:?} holds the whole target", p.isr));
                    }
                }
                if p.replicas.iter().any(|r| !self.nodes.contains_key(r)) {
                    return Err(format!("{at}: unregistered replica in {:?}", p.replicas));
                }
                if p.isr.is_empty() || p.isr.iter().any(|r| !p.replicas.contains(r)) {
                    return Err(format!("{at}: bad ISR {:?}", p.isr));
                }
                if let Some(l) = p.leader {
                    if !p.isr.contains(&l) || !self.is_live(l) {
                        return Err(format!("{at}: leader {l} not a live ISR member"));
                    }
                    if p.isr.iter().any(|r| !self.is_live(*r)) {
                        return Err(format!("{at}: fenced node in ISR {:?}", p.isr));
                    }
                } else if p.isr.len() > 1 && p.isr.iter().any(|r| !self.is_live(*r)) {
                    return Err(format!("{at}: leaderless with fenced ISR {:?}", p.isr));
                }
                if p.leader_epoch < 0 || p.partition_epoch < p.leader_epoch {
                    return Err(format!(
                        "{at}: epochs {} {}",
                        p.leader_epoch, p.partition_epoch
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Finishes `p`'s reassignment if its ISR holds every target replica (`META-7`); whether it did.
fn finish_reassignment(p: &mut PartitionRecord, live: &BTreeSet<NodeId>) -> bool {
    let Some(r) = &p.reassignment else {
        return false;
    };
    if !r.target.iter().all(|t| p.isr.contains(t)) {
        return false;
    }
    let target = r.target.clone();
    let isr: Vec<NodeId> = p
        .isr
        .iter()
        .copied()
        .filter(|n| target.contains(n))
        .collect();
    settle(p, target, isr, live);
    true
}

/// Ends `p`'s reassignment with these replicas and ISR (a subset of both its old ISR and
/// `replicas`): a leader outside them hands over to the first live replica in the ISR; both
/// epochs grow (`META-7`).
fn settle(
    p: &mut PartitionRecord,
    replicas: Vec<NodeId>,
    isr: Vec<NodeId>,
    live: &BTreeSet<NodeId>,
) {
    p.replicas = replicas;
    p.isr = isr;
    if !p.leader.is_some_and(|l| p.isr.contains(&l)) {
        p.leader = elect(&p.replicas, &p.isr, live);
    }
    p.reassignment = None;
    p.leader_epoch += 1;
    p.partition_epoch += 1;
}

/// The first of `replicas` that is in `isr` and live.
fn elect(replicas: &[NodeId], isr: &[NodeId], live: &BTreeSet<NodeId>) -> Option<NodeId> {
    replicas
        .iter()
        .copied()
        .find(|r| isr.contains(r) && live.contains(r))
}

fn reassigned(p: &PartitionRecord) -> Outcome {
    Outcome::PartitionReassigned {
        replicas: p.replicas.clone(),
        pending: p.reassignment.is_some(),
        leader_epoch: p.leader_epoch,
        partition_epoch: p.partition_epoch,
    }
}

fn check_partition_count(new: usize, existing: usize) -> Result<(), Rejection> {
    let total = new + existing;
    if new == 0 || total > PARTITIONS_MAX as usize {
        return Err(Rejection::InvalidPartitions {
            reason: format!(
                "a topic has between 1 and {PARTITIONS_MAX} partitions, this one would have {total}"
            ),
        });
    }
    Ok(())
}

fn check_configs<'a>(
    configs: impl Iterator<Item = (&'a String, Option<&'a String>)>,
) -> Result<(), Rejection> {
    for (k, v) in configs {
        if k.is_empty()
            || k.len() > CONFIG_LENGTH_MAX
            || v.is_some_and(|v| v.len() > CONFIG_LENGTH_MAX)
        {
            return Err(Rejection::InvalidConfig {
                reason: format!("key {k:?} is empty, or it or its value is too long"),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
