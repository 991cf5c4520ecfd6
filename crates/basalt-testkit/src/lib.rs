//! Test support for Basalt's end-to-end tests.
//!
//! - [`TestBroker`]: a broker served in this process on `127.0.0.1:<free port>` over a fresh
//!   temporary data directory, stopped cleanly when dropped.
//! - [`ProcessBroker`]: `basalt serve` as a child process, for tests that restart or kill -9 it.
//! - [`TestCa`]: a certificate authority made in the test, for TLS listeners and clients.
//! - [`CuttingProxy`]: a TCP proxy that cuts connections after a byte budget, to make clients
//!   lose requests and responses in flight.
//!
//! Every wait here is bounded: a broker that does not come up or go down in time is a panic with
//! its log, never a hang.

mod certs;
mod in_process;
mod process;
mod proxy;

pub use certs::{CertFiles, TestCa};
pub use in_process::TestBroker;
pub use process::ProcessBroker;
pub use proxy::{CutPlan, CuttingProxy, PendingProxy};
