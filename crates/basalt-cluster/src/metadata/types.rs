//! The Raft type configuration of the metadata quorum and short names for the openraft types
//! the rest of the module uses.

use openraft::BasicNode;

use super::image::{Command, NodeId, Outcome, Rejection};

/// What applying one log entry answered: the command's outcome or why it was refused.
pub type Applied = Result<Outcome, Rejection>;

openraft::declare_raft_types!(
    /// The Raft types of the metadata quorum: log entries carry [`Command`]s, node ids are
    /// Kafka node ids, and a node is known by the address of its quorum listener.
    pub TypeConfig:
        D = Command,
        R = Applied,
        NodeId = NodeId,
        Node = BasicNode,
);

/// A log entry.
pub type Entry = openraft::alias::EntryOf<TypeConfig>;
/// A log id (leader id and index).
pub type LogId = openraft::alias::LogIdOf<TypeConfig>;
/// A vote.
pub type Vote = openraft::alias::VoteOf<TypeConfig>;
/// The membership as of a log id.
pub type StoredMembership = openraft::alias::StoredMembershipOf<TypeConfig>;
/// A snapshot's metadata.
pub type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;
/// A snapshot: its metadata and the serialized image.
pub type Snapshot = openraft::alias::SnapshotOf<TypeConfig, Vec<u8>>;
/// The Raft node handle.
pub type Raft = openraft::Raft<TypeConfig, super::state_machine::StateMachine>;
