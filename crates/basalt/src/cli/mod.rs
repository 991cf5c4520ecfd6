//! The client-side commands of `basalt`: `topic`, `produce`, `consume`, `group`, `txn`, `acl`, `user`
//! and `cluster`,
//! in the spirit of `rpk`, `kcat`, `kafka-consumer-groups`, `kafka-transactions` and
//! `kafka-acls`. They speak the Kafka protocol to any Kafka-compatible broker (Basalt or not)
//! through [`client`], a small blocking client built on `basalt-protocol` and `basalt-record`.
//!
//! Every command takes `--brokers HOST:PORT[,HOST:PORT...]` (or `BASALT_BROKERS`, default
//! `127.0.0.1:9092`). Errors are returned to `main`, which prints them and exits non-zero.

pub mod acl;
pub mod client;
pub mod cluster;
pub mod consume;
mod decompress;
pub mod group;
mod output;
pub mod produce;
pub mod security;
pub mod topic;
pub mod txn;
pub mod user;

use clap::Args;

/// The error type of every client command: a message for the user.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Where the cluster is and how to print.
#[derive(Debug, Clone, Args)]
pub struct ConnectArgs {
    /// Bootstrap brokers, a comma-separated HOST:PORT list.
    #[arg(
        long,
        global = true,
        env = "BASALT_BROKERS",
        default_value = client::DEFAULT_BROKERS,
        value_name = "HOST:PORT,..."
    )]
    pub brokers: String,
    /// Print machine-readable JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// How to reach a secured listener.
    #[command(flatten)]
    pub security: security::SecurityArgs,
}

impl ConnectArgs {
    /// Connects to the cluster with the security settings given.
    pub fn client(&self) -> Result<client::Client, Error> {
        client::Client::connect_with(&self.brokers, self.security.security()?)
    }
}

/// Current wall-clock time in milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Splits `key=value` (the value may itself contain `=`).
pub(crate) fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected key=value, got {s:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_value_parsing() {
        assert_eq!(
            parse_key_value("retention.ms=1=2"),
            Ok(("retention.ms".into(), "1=2".into()))
        );
        assert_eq!(parse_key_value("a="), Ok(("a".into(), String::new())));
        assert!(parse_key_value("novalue").is_err());
        assert!(parse_key_value("=v").is_err());
    }
}
