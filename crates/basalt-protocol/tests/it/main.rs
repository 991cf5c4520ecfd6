//! The integration tests of `basalt-protocol`, in one binary: generated-sample round trips of
//! every message at every version, byte-exact encodings, cross-checks against the
//! `kafka-protocol` crate, hostile inputs, framing, request dispatch and the fuzz corpus.
//!
//! A counting allocator (per thread) lets the hostile-input tests assert that rejecting a
//! malicious length allocates next to nothing.

mod alloc_count;
mod corpus;
mod crosscheck;
mod dispatch;
mod framing;
mod hostile;
mod known_bytes;
mod roundtrip;
mod samples;

#[global_allocator]
static ALLOCATOR: alloc_count::CountingAllocator = alloc_count::CountingAllocator;
