//! Partition replication as pure state machines.
