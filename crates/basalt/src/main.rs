//! The `basalt` command: parses the command line, installs logging and dispatches to the
//! subcommand that does the work.
//!
//! Logging goes to stderr, filtered by `RUST_LOG` (default `info`), so that stdout carries only a
//! command's own output (tables, JSON).

mod bench;
mod cli;
mod metrics;
mod serve;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// Basalt: a Kafka-compatible, log-oriented message broker in one binary.
#[derive(Debug, Parser)]
#[command(name = "basalt", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the broker: a Kafka-compatible server on 127.0.0.1:9092 storing in ./basalt-data.
    Serve(Box<serve::ServeArgs>),
    /// Measure the performance of Basalt's parts on this machine.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Create, list, describe, alter and delete topics on any Kafka-compatible broker.
    Topic(cli::topic::TopicArgs),
    /// Write lines from stdin or a file to a topic, one record per line.
    Produce(cli::produce::ProduceArgs),
    /// Read records from a topic and print them.
    Consume(cli::consume::ConsumeArgs),
    /// List, describe, reset the offsets of and delete consumer groups.
    Group(cli::group::GroupArgs),
    /// List and describe transactions and the producers of a topic's partitions.
    Txn(cli::txn::TxnArgs),
    /// Add, list and remove ACLs (the broker needs an authorizer: --authorizer).
    Acl(cli::acl::AclArgs),
    /// Create, delete and list SCRAM users (SASL logins) on any Kafka-compatible broker.
    User(cli::user::UserArgs),
    /// Cluster status, giving a node that joined its share of the replicas, and emptying a node
    /// before it leaves.
    Cluster(cli::cluster::ClusterArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command {
        Command::Serve(args) => serve::run(*args),
        Command::Bench(command) => bench::run(command),
        Command::Topic(args) => cli::topic::run(args),
        Command::Produce(args) => cli::produce::run(args),
        Command::Consume(args) => cli::consume::run(args),
        Command::Group(args) => cli::group::run(args),
        Command::Txn(args) => cli::txn::run(args),
        Command::Acl(args) => cli::acl::run(args),
        Command::User(args) => cli::user::run(args),
        Command::Cluster(args) => cli::cluster::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
