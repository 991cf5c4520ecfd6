//! Development tasks for the Basalt workspace, run as `cargo xtask <task>`.
//!
//! The only task today is `codegen`, which regenerates the Kafka message code of
//! `basalt-protocol` from Kafka's JSON message specs (see [`codegen`]).

#![allow(missing_docs)]

pub mod codegen;
