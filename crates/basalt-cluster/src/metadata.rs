//! The cluster metadata and the Raft quorum that replicates it.
//!
//! - [`image`]: the metadata model ([`MetadataImage`]: nodes and their endpoints, topics,
//!   partitions with replicas, leader, leader epoch, ISR and partition epoch, configs, ACL
//!   bindings and SCRAM credentials) and its [`Command`]s, as a pure, deterministic state
//!   machine (`META-1..8`).
//! - [`security`]: the ACL and SCRAM credential records the image holds (`META-8`).
//! - [`placement`]: where new partitions' replicas and leaders go (`PLACE-1..3`).
//! - [`quorum`]: [`MetadataQuorum`], one node's handle on the Raft quorum (openraft) that
//!   replicates the commands: start, propose (forwarded to the leader), the latest image,
//!   shutdown (`QRM-1..3`).
//! - [`store`]: the Raft log, vote and purge point on disk (`STORE-1..4`);
//!   [`state_machine`]: the image as openraft's state machine, with snapshots (`SM-1..3`);
//!   [`rpc`]: the TCP transport between the quorum's nodes (`RPC-1..3`); [`types`]: the Raft
//!   type configuration.
//!
//! The model and placement read no clock and draw no random numbers: times and topic ids come
//! inside the commands, from whoever proposes them. A node's quorum data directory holds
//! `log`, `vote`, `committed`, `purged`, `snapshot` and `lock`.

pub mod image;
pub mod placement;
pub mod quorum;
pub mod rpc;
pub mod security;
pub mod state_machine;
pub mod store;
pub mod types;

pub use image::{
    Command, ConfigResource, Endpoint, MetadataImage, NodeId, NodeRecord, Outcome, PartitionRecord,
    Reassignment, Rejection, SHARE_STATE_LENGTH_MAX, ShareStateRecord, TopicId, TopicRecord,
};
pub use placement::{default_replication_factor, place};
pub use quorum::{
    MetadataQuorum, ProposeError, QuorumError, QuorumOptions, QuorumSettings, QuorumStatus, Voter,
    parse_voters,
};
pub use rpc::QuorumTls;
pub use security::{AclRecord, SCRAM_MECHANISMS, ScramRecord};
pub use store::StoreError;
