//! The cluster metadata and the Raft quorum that replicates it.
//!
//! - [`image`]: the metadata model ([`MetadataImage`]: nodes and their endpoints, topics,
//!   partitions with replicas, leader, leader epoch, ISR and partition epoch, configs) and its
//!   [`Command`]s, as a pure, deterministic state machine (`META-1..5`).
//! - [`placement`]: where new partitions' replicas and leaders go (`PLACE-1..3`).
//!
//! Nothing here reads a clock or draws random numbers: times and topic ids come inside the
//! commands, from whoever proposes them.

pub mod image;
pub mod placement;

pub use image::{
    Command, ConfigResource, Endpoint, MetadataImage, NodeId, NodeRecord, Outcome, PartitionRecord,
    Rejection, TopicId, TopicRecord,
};
pub use placement::{default_replication_factor, place};
