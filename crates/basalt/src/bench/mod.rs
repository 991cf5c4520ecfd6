//! The `basalt bench` command group: measurements of Basalt's parts on the machine at hand.
//!
//! Each subcommand lives in its own module; the parts they share live beside them: [`load`] runs
//! writer threads against a budget and collects throughput and latency, [`disk`] measures what the
//! disk itself can do and owns the scratch directory a bench works in.

mod disk;
mod load;
mod storage;

use clap::Subcommand;

/// Any failure of a bench, with enough words to say what was being done.
pub(crate) type Error = Box<dyn std::error::Error + Send + Sync>;

/// Result of a bench step.
pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

/// The benches `basalt bench` can run.
#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
    /// Append throughput of the storage engine under each fsync policy, beside the raw
    /// bandwidth of the same disk measured in the same run.
    Storage(storage::StorageArgs),
}

/// Runs one bench and prints its report on stdout.
pub(crate) fn run(command: BenchCommand) -> Result<()> {
    match command {
        BenchCommand::Storage(args) => storage::run(&args),
    }
}
