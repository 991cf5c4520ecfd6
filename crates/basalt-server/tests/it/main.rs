//! Integration tests of `basalt-server`: the fuzz corpus of the unauthenticated connection.

#![allow(clippy::unwrap_used)]

mod corpus;
