//! Seeded simulations of partition replication and leader election.
