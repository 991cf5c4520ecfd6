//! Integration tests of the `basalt` binary: each module runs the built command as a user would,
//! or serves the broker to real Kafka clients (librdkafka) over TCP.

#![allow(clippy::unwrap_used)]

mod acl;
mod bench;
mod clients;
mod cluster;
mod cluster_security;
mod common;
mod durability;
mod faults;
mod groups;
mod groups_cli;
mod netsplit;
mod security;
mod security_limits;
mod txn;
mod txn_cli;
