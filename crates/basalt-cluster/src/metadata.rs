//! The cluster metadata and its Raft quorum.
