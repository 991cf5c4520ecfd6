//! What the end-to-end benches share: the broker and topic they aim at, librdkafka clients set up
//! the same way for every Kafka-protocol system (so a comparison measures the broker, not the
//! client), the topic made ready before timing starts, and the payloads sent.
//!
//! Every client gets only `bootstrap.servers`, the settings the bench's options name, and the
//! `-X key=value` settings the user passes; everything else is librdkafka's default.

use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;
use serde::Serialize;

use super::Result;
pub(crate) use super::output::mb_per_s;

/// Longest wait for the broker to answer an administrative step (topic creation, metadata).
pub(crate) const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Bytes of the payload pool beyond one message: message `i` starts at `i % PAYLOAD_SHIFTS`, so
/// consecutive messages differ without being built one by one.
const PAYLOAD_SHIFTS: usize = 4096;

/// The broker and topic an end-to-end bench works against.
#[derive(Debug, Clone, Args)]
pub(crate) struct Target {
    /// Bootstrap address of any Kafka-protocol broker.
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub(crate) brokers: String,
    /// Topic to write to or read from; created if missing, with --partitions partitions.
    #[arg(long, default_value = "basalt-bench")]
    pub(crate) topic: String,
    /// Partitions of the topic when the bench creates it (an existing topic keeps its own)
    /// [default: 1].
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..=10_000))]
    pub(crate) partitions: Option<i32>,
    /// A librdkafka setting for every client of the bench, `key=value` (may be given several
    /// times), such as `-X security.protocol=SASL_PLAINTEXT`.
    #[arg(short = 'X', long = "config", value_name = "KEY=VALUE", value_parser = parse_setting)]
    pub(crate) config: Vec<(String, String)>,
    /// Process id of the broker when it runs on this machine: its CPU seconds and peak memory
    /// during the bench are reported.
    #[arg(long, value_name = "PID")]
    pub(crate) broker_pid: Option<u32>,
    /// Print the report as one JSON document on stdout instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

fn parse_setting(s: &str) -> std::result::Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("{s:?} is not key=value")),
    }
}

impl Target {
    /// A librdkafka configuration with the bootstrap address and the user's settings only.
    pub(crate) fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers);
        for (k, v) in &self.config {
            config.set(k, v);
        }
        config
    }

    /// A consumer with librdkafka's defaults, for `assign`. librdkafka refuses `assign` without
    /// a `group.id`, so it gets one of its own; no group is joined and nothing is committed.
    pub(crate) fn consumer(&self) -> Result<BaseConsumer> {
        let group = format!(
            "basalt-bench-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        );
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("group.id", group)
            .set("enable.auto.commit", "false");
        for (k, v) in &self.config {
            config.set(k, v);
        }
        config
            .create()
            .map_err(|e| format!("create a consumer for {}: {e}", self.brokers).into())
    }

    /// Creates the topic with `--partitions` partitions unless it exists, waits until the broker
    /// describes it, and returns its partition count.
    pub(crate) fn ensure_topic(&self) -> Result<i32> {
        let admin: AdminClient<DefaultClientContext> = self
            .client_config()
            .create()
            .map_err(|e| format!("create an admin client for {}: {e}", self.brokers))?;
        let asked = self.partitions.unwrap_or(1);
        let topic = NewTopic::new(&self.topic, asked, TopicReplication::Fixed(1));
        let options = AdminOptions::new()
            .request_timeout(Some(ADMIN_TIMEOUT))
            .operation_timeout(Some(ADMIN_TIMEOUT));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let results = runtime
            .block_on(admin.create_topics(&[topic], &options))
            .map_err(|e| format!("create topic {}: {e}", self.topic))?;
        for result in results {
            match result {
                Ok(_) => {
                    tracing::info!(topic = %self.topic, partitions = asked, "created the topic")
                }
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => return Err(format!("create topic {name}: {code}").into()),
            }
        }
        let partitions = self.partition_ids()?;
        if self
            .partitions
            .is_some_and(|asked| asked != partitions.len() as i32)
        {
            tracing::warn!(
                topic = %self.topic,
                partitions = partitions.len(),
                "the topic exists with its own partition count"
            );
        }
        Ok(partitions.len() as i32)
    }

    /// The topic's partition ids, once the broker describes the topic without error.
    pub(crate) fn partition_ids(&self) -> Result<Vec<i32>> {
        let consumer = self.consumer()?;
        let deadline = Instant::now() + ADMIN_TIMEOUT;
        loop {
            let metadata = consumer
                .fetch_metadata(Some(&self.topic), ADMIN_TIMEOUT)
                .map_err(|e| format!("metadata of {}: {e}", self.topic))?;
            let described = metadata.topics().iter().find(|t| t.name() == self.topic);
            let failure = match described {
                Some(t) if t.error().is_none() && !t.partitions().is_empty() => {
                    return Ok(t.partitions().iter().map(|p| p.id()).collect());
                }
                Some(t) => format!("{:?}", t.error()),
                None => "not described".to_owned(),
            };
            if Instant::now() >= deadline {
                return Err(format!("topic {} is not ready: {failure}", self.topic).into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The low and high watermark of each partition, in partition order.
    pub(crate) fn watermarks(&self, consumer: &BaseConsumer) -> Result<Vec<(i32, i64, i64)>> {
        let mut marks = Vec::new();
        for partition in self.partition_ids()? {
            let (low, high) = consumer
                .fetch_watermarks(&self.topic, partition, ADMIN_TIMEOUT)
                .map_err(|e| format!("watermarks of {}/{partition}: {e}", self.topic))?;
            marks.push((partition, low, high));
        }
        Ok(marks)
    }
}

/// Which replicas acknowledge a produce request (`acks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
pub(crate) enum Acks {
    /// No acknowledgement: a message counts as delivered once sent.
    #[value(name = "0")]
    #[serde(rename = "0")]
    None,
    /// The leader's.
    #[value(name = "1")]
    #[serde(rename = "1")]
    Leader,
    /// Every in-sync replica's.
    #[value(name = "all")]
    #[serde(rename = "all")]
    All,
}

impl Acks {
    fn setting(self) -> &'static str {
        match self {
            Acks::None => "0",
            Acks::Leader => "1",
            Acks::All => "all",
        }
    }
}

/// The producer's `compression.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    fn setting(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// How a bench's producers are set up.
#[derive(Debug, Clone, Args, Serialize)]
pub(crate) struct ProducerSettings {
    /// Acknowledgement the producer waits for.
    #[arg(long, value_enum, default_value_t = Acks::All)]
    pub(crate) acks: Acks,
    /// Compression of the producer's batches.
    #[arg(long, value_enum, default_value_t = Compression::None)]
    pub(crate) compression: Compression,
    /// `linger.ms` of the producer [default: librdkafka's, 5].
    #[arg(long, value_name = "MS")]
    pub(crate) linger_ms: Option<u32>,
    /// `batch.size` of the producer in bytes [default: librdkafka's, 1000000].
    #[arg(long, value_name = "BYTES")]
    pub(crate) batch_size: Option<u32>,
}

impl ProducerSettings {
    /// `config` with these settings on top.
    pub(crate) fn apply(&self, mut config: ClientConfig) -> ClientConfig {
        config
            .set("acks", self.acks.setting())
            .set("compression.type", self.compression.setting());
        if let Some(ms) = self.linger_ms {
            config.set("linger.ms", ms.to_string());
        }
        if let Some(bytes) = self.batch_size {
            config.set("batch.size", bytes.to_string());
        }
        config
    }
}

/// Message values of one size, all cut from one pool of random capital letters (as Kafka's own
/// `kafka-producer-perf-test` sends): compressible about as well as text, never trivially.
#[derive(Debug, Clone)]
pub(crate) struct Payloads {
    pool: Vec<u8>,
    size: usize,
}

impl Payloads {
    pub(crate) fn new(size: usize) -> Payloads {
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let pool = (0..size + PAYLOAD_SHIFTS)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                b'A' + (state >> 32) as u8 % 26
            })
            .collect();
        Payloads { pool, size }
    }

    /// The value of message `i`.
    pub(crate) fn get(&self, i: u64) -> &[u8] {
        let start = (i % PAYLOAD_SHIFTS as u64) as usize;
        &self.pool[start..start + self.size]
    }
}

/// Per second; 0 for no time.
pub(crate) fn per_s(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_have_the_size_asked_and_differ_between_messages() {
        let payloads = Payloads::new(100);
        assert_eq!(payloads.get(0).len(), 100);
        assert_eq!(payloads.get(u64::MAX).len(), 100);
        assert_ne!(payloads.get(0), payloads.get(1));
        assert!(payloads.get(7).iter().all(u8::is_ascii_uppercase));
    }

    #[test]
    fn settings_are_key_value() {
        assert_eq!(parse_setting("a.b=c=d"), Ok(("a.b".into(), "c=d".into())));
        assert!(parse_setting("novalue").is_err());
        assert!(parse_setting("=x").is_err());
    }
}
