//! The cluster layer: what several Basalt nodes agree on and how a partition's replicas stay
//! in step.
//!
//! - [`replication`]: the replication logic of one partition as pure state machines (no I/O, no
//!   clock): the leader's view of its followers, the high watermark and the in-sync replica
//!   set, acks=all completion, leader epochs and the truncation of a follower that diverged,
//!   and the choice of a new leader.
//! - [`metadata`]: the cluster metadata (nodes, topics, partitions, assignments, leaders,
//!   epochs, ISR, configs) as a state machine replicated by a Raft quorum of the nodes
//!   themselves.

pub mod metadata;
pub mod replication;
