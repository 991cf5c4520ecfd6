//! Raft metadata quorums of several in-process nodes.
