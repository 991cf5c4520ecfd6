//! Integration tests of the cluster layer: seeded simulations of replication and elections,
//! and Raft metadata quorums of several in-process nodes.

mod raft;
mod sim;
