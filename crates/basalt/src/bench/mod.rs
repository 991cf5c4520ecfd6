//! The `basalt bench` command group: measurements of Basalt's parts on the machine at hand.
//!
//! Each subcommand lives in its own module; the parts they share live beside them: [`load`] runs
//! writer threads against a budget and collects throughput and latency, [`disk`] measures what the
//! disk itself can do and owns the scratch directory a bench works in, [`kafka`] sets up the
//! librdkafka clients and the topic of the end-to-end benches, [`process`] watches a local
//! broker's CPU and memory, and [`output`] prints tables, JSON and progress bars.
//!
//! The end-to-end benches (`produce`, `consume`, `latency`) speak only the Kafka protocol through
//! librdkafka, so they measure any Kafka-protocol broker the same way. They are built with the
//! `kafka-bench` feature (`cargo build --release -p basalt --features kafka-bench`), which links
//! librdkafka (it needs `make`, `pkg-config`, `libssl-dev` and `zlib1g-dev`), so that the plain
//! build needs nothing beyond the Rust toolchain; `loopback` and `disk`
//! measure the machine's raw limits those figures are compared with. `compare` (same feature)
//! starts Basalt and its peers (Tansu, Redis, RabbitMQ) on loopback and runs those workloads
//! against each, Redis and RabbitMQ through their own protocols (`redis`, `lapin`); `partitions`
//! (same feature) creates and serves many partitions and reports the broker's memory.

#[cfg(feature = "kafka-bench")]
mod compare;
#[cfg(feature = "kafka-bench")]
mod consume;
mod disk;
#[cfg(feature = "kafka-bench")]
mod kafka;
#[cfg(feature = "kafka-bench")]
mod latency;
mod load;
mod loopback;
mod output;
#[cfg(feature = "kafka-bench")]
mod partitions;
#[cfg(feature = "kafka-bench")]
mod peers;
#[cfg(feature = "kafka-bench")]
mod process;
#[cfg(feature = "kafka-bench")]
mod produce;
#[cfg(feature = "kafka-bench")]
mod replication;
mod storage;
#[cfg(feature = "kafka-bench")]
mod systems;

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
    #[cfg(feature = "kafka-bench")]
    /// Produce throughput against any Kafka-protocol broker: N messages of S bytes, timed from
    /// the first send to the last acknowledgement.
    Produce(produce::ProduceArgs),
    #[cfg(feature = "kafka-bench")]
    /// Consume throughput against any Kafka-protocol broker: N messages read from the
    /// beginning, from the page cache and optionally after dropping it.
    Consume(consume::ConsumeArgs),
    #[cfg(feature = "kafka-bench")]
    /// End-to-end latency at a fixed produce rate, coordinated omission corrected.
    Latency(latency::LatencyArgs),
    #[cfg(feature = "kafka-bench")]
    /// Basalt beside Tansu, Redis Streams and RabbitMQ, each started here on loopback with its
    /// stated durability and measured with the same workloads, and the raw disk and loopback
    /// limits of the same run.
    Compare(compare::CompareArgs),
    #[cfg(feature = "kafka-bench")]
    /// Many partitions created, each written once and read back, with the broker's memory
    /// before and after and the time each step took.
    Partitions(partitions::PartitionsArgs),
    #[cfg(feature = "kafka-bench")]
    /// Produce throughput and latency with three replicas per partition against one, on a
    /// three-node cluster of this binary started here on loopback, as a ratio of the same run.
    Replication(replication::ReplicationArgs),
    /// Raw TCP bandwidth over 127.0.0.1.
    Loopback(loopback::LoopbackArgs),
    /// Raw sequential write and write+fdatasync bandwidth of a disk.
    Disk(disk::DiskArgs),
}

/// Runs one bench and prints its report on stdout.
pub(crate) fn run(command: BenchCommand) -> Result<()> {
    match command {
        BenchCommand::Storage(args) => storage::run(&args),
        #[cfg(feature = "kafka-bench")]
        BenchCommand::Produce(args) => produce::run(&args),
        #[cfg(feature = "kafka-bench")]
        BenchCommand::Consume(args) => consume::run(&args),
        #[cfg(feature = "kafka-bench")]
        BenchCommand::Latency(args) => latency::run(&args),
        #[cfg(feature = "kafka-bench")]
        BenchCommand::Compare(args) => compare::run(&args),
        #[cfg(feature = "kafka-bench")]
        BenchCommand::Partitions(args) => partitions::run(&args),
        #[cfg(feature = "kafka-bench")]
        BenchCommand::Replication(args) => replication::run(&args),
        BenchCommand::Loopback(args) => loopback::run(&args),
        BenchCommand::Disk(args) => disk::run(&args),
    }
}
