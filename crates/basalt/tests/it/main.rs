//! Integration tests of the `basalt` binary: each module runs the built command as a user would.

mod bench;
