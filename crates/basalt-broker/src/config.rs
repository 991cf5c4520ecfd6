//! Broker settings and topic configs, under Kafka's names so Kafka operators feel at home.
//!
//! Topic configs are stored as overrides (`name -> value`); the effective value of each comes
//! from the override, else the broker default it has as a synonym, else Kafka's default. Every
//! topic config Basalt knows is listed in [`TOPIC_CONFIGS`], which DescribeConfigs walks, so a
//! client sees every config with its value, source and synonyms, not only the overrides.

use std::collections::BTreeMap;

use basalt_storage::{FsyncPolicy, LogConfig};

/// Settings of the broker (Kafka's broker config names in the docs of each field).
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// `node.id`.
    pub node_id: i32,
    /// Host clients are told to connect to (`advertised.listeners`).
    pub advertised_host: String,
    /// Port clients are told to connect to.
    pub advertised_port: i32,
    /// `broker.rack`.
    pub rack: Option<String>,
    /// The cluster id reported in Metadata and DescribeCluster.
    pub cluster_id: String,
    /// `num.partitions`: partitions of auto-created topics and of CreateTopics with -1.
    pub num_partitions: i32,
    /// `default.replication.factor`.
    pub default_replication_factor: i16,
    /// `auto.create.topics.enable`.
    pub auto_create_topics_enable: bool,
    /// `delete.topic.enable`.
    pub delete_topic_enable: bool,
    /// `log.retention.ms`.
    pub log_retention_ms: i64,
    /// `log.retention.bytes`.
    pub log_retention_bytes: i64,
    /// `log.segment.bytes`.
    pub log_segment_bytes: i64,
    /// `log.roll.ms`.
    pub log_roll_ms: i64,
    /// `log.index.interval.bytes`.
    pub log_index_interval_bytes: i64,
    /// `message.max.bytes`: largest record batch accepted.
    pub message_max_bytes: i64,
    /// `log.message.timestamp.type`.
    pub log_message_timestamp_type: String,
    /// `log.flush.policy` (Basalt): `always`, `interval:<ms>` or `os`.
    pub log_flush_policy: FsyncPolicy,
    /// `log.retention.check.interval.ms`.
    pub log_retention_check_interval_ms: u64,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            node_id: 0,
            advertised_host: "127.0.0.1".into(),
            advertised_port: 9092,
            rack: None,
            cluster_id: "basalt-cluster".into(),
            num_partitions: 1,
            default_replication_factor: 1,
            auto_create_topics_enable: true,
            delete_topic_enable: true,
            log_retention_ms: 7 * 24 * 3600 * 1000,
            log_retention_bytes: -1,
            log_segment_bytes: 1 << 30,
            log_roll_ms: 7 * 24 * 3600 * 1000,
            log_index_interval_bytes: 4096,
            message_max_bytes: 1_048_588,
            log_message_timestamp_type: "CreateTime".into(),
            log_flush_policy: FsyncPolicy::Always,
            log_retention_check_interval_ms: 300_000,
        }
    }
}

/// One topic config Basalt understands.
#[derive(Debug)]
pub struct TopicConfigDef {
    /// Kafka's topic config name.
    pub name: &'static str,
    /// The broker config it falls back to (its synonym), if any.
    pub broker_synonym: Option<&'static str>,
    /// How values are checked.
    pub kind: ConfigKind,
    /// Documentation for `--help` and DescribeConfigs.
    pub doc: &'static str,
}

/// The type of a config value, for validation and DescribeConfigs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigKind {
    /// A 64-bit integer at least `min`.
    Long {
        /// Smallest allowed value.
        min: i64,
    },
    /// One of a fixed list of strings.
    Enum(&'static [&'static str]),
    /// A flush policy.
    FlushPolicy,
}

impl ConfigKind {
    /// DescribeConfigs config type code (Kafka's `ConfigType`).
    pub fn type_code(self) -> i8 {
        match self {
            ConfigKind::Long { .. } => 5,
            ConfigKind::Enum(_) | ConfigKind::FlushPolicy => 2,
        }
    }
}

/// Every topic config Basalt honours.
pub const TOPIC_CONFIGS: &[TopicConfigDef] = &[
    TopicConfigDef {
        name: "cleanup.policy",
        broker_synonym: Some("log.cleanup.policy"),
        kind: ConfigKind::Enum(&["delete"]),
        doc: "delete: old segments are deleted by retention (compaction is not supported yet)",
    },
    TopicConfigDef {
        name: "retention.ms",
        broker_synonym: Some("log.retention.ms"),
        kind: ConfigKind::Long { min: -1 },
        doc: "delete closed segments whose newest record is older than this; -1 keeps forever",
    },
    TopicConfigDef {
        name: "retention.bytes",
        broker_synonym: Some("log.retention.bytes"),
        kind: ConfigKind::Long { min: -1 },
        doc: "delete the oldest closed segments while a partition is larger; -1 is no limit",
    },
    TopicConfigDef {
        name: "segment.bytes",
        broker_synonym: Some("log.segment.bytes"),
        kind: ConfigKind::Long { min: 14 },
        doc: "roll to a new segment before one would pass this size",
    },
    TopicConfigDef {
        name: "segment.ms",
        broker_synonym: Some("log.roll.ms"),
        kind: ConfigKind::Long { min: 1 },
        doc: "roll to a new segment when the active one is older than this",
    },
    TopicConfigDef {
        name: "index.interval.bytes",
        broker_synonym: Some("log.index.interval.bytes"),
        kind: ConfigKind::Long { min: 0 },
        doc: "bytes between two entries of the sparse offset and time indexes",
    },
    TopicConfigDef {
        name: "max.message.bytes",
        broker_synonym: Some("message.max.bytes"),
        kind: ConfigKind::Long { min: 0 },
        doc: "largest record batch accepted, after compression",
    },
    TopicConfigDef {
        name: "message.timestamp.type",
        broker_synonym: Some("log.message.timestamp.type"),
        kind: ConfigKind::Enum(&["CreateTime", "LogAppendTime"]),
        doc: "CreateTime keeps the producer's timestamps; LogAppendTime stamps batches on append",
    },
    TopicConfigDef {
        name: "flush.policy",
        broker_synonym: Some("log.flush.policy"),
        kind: ConfigKind::FlushPolicy,
        doc: "always (fsync before acknowledging, with group commit), interval:<ms>, or os",
    },
];

/// Looks up a topic config definition by name.
pub fn topic_config_def(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// Why a topic config value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The name is not a config Basalt knows.
    #[error("unknown topic config {0}")]
    Unknown(String),
    /// The value does not fit the config.
    #[error("invalid value {value:?} for {name}: {reason}")]
    Invalid {
        /// Config name.
        name: String,
        /// Value given.
        value: String,
        /// Why it is refused.
        reason: String,
    },
}

/// Checks `value` for the topic config `name`.
pub fn validate_topic_config(name: &str, value: &str) -> Result<(), ConfigError> {
    let def = topic_config_def(name).ok_or_else(|| ConfigError::Unknown(name.to_owned()))?;
    let invalid = |reason: String| ConfigError::Invalid {
        name: name.to_owned(),
        value: value.to_owned(),
        reason,
    };
    match def.kind {
        ConfigKind::Long { min } => {
            let v: i64 = value
                .trim()
                .parse()
                .map_err(|_| invalid("not an integer".into()))?;
            if v < min {
                return Err(invalid(format!("must be at least {min}")));
            }
        }
        ConfigKind::Enum(allowed) => {
            if name == "cleanup.policy" && value.split(',').any(|p| p.trim() == "compact") {
                return Err(invalid(
                    "log compaction is not supported yet; use cleanup.policy=delete".into(),
                ));
            }
            if !allowed.contains(&value) {
                return Err(invalid(format!("must be one of {}", allowed.join(", "))));
            }
        }
        ConfigKind::FlushPolicy => {
            FsyncPolicy::parse(value)
                .ok_or_else(|| invalid("expected always, os or interval:<ms>".into()))?;
        }
    }
    Ok(())
}

impl BrokerConfig {
    /// The broker-level value of a topic config's synonym, as text.
    pub fn broker_default(&self, topic_config: &str) -> String {
        match topic_config {
            "cleanup.policy" => "delete".into(),
            "retention.ms" => self.log_retention_ms.to_string(),
            "retention.bytes" => self.log_retention_bytes.to_string(),
            "segment.bytes" => self.log_segment_bytes.to_string(),
            "segment.ms" => self.log_roll_ms.to_string(),
            "index.interval.bytes" => self.log_index_interval_bytes.to_string(),
            "max.message.bytes" => self.message_max_bytes.to_string(),
            "message.timestamp.type" => self.log_message_timestamp_type.clone(),
            "flush.policy" => self.log_flush_policy.to_string(),
            _ => String::new(),
        }
    }

    /// The effective settings of a topic with `overrides`.
    pub fn effective(&self, overrides: &BTreeMap<String, String>) -> EffectiveTopicConfig {
        let get = |name: &str| {
            overrides
                .get(name)
                .cloned()
                .unwrap_or_else(|| self.broker_default(name))
        };
        let long = |name: &str| get(name).trim().parse::<i64>().unwrap_or(-1);
        EffectiveTopicConfig {
            log: LogConfig {
                segment_bytes_max: long("segment.bytes").max(14) as u64,
                segment_age_ms_max: long("segment.ms").max(1),
                index_interval_bytes: long("index.interval.bytes").max(1) as u64,
                retention_ms: long("retention.ms"),
                retention_bytes: long("retention.bytes"),
                fsync: FsyncPolicy::parse(&get("flush.policy")).unwrap_or(self.log_flush_policy),
            },
            max_message_bytes: long("max.message.bytes").max(0) as usize,
            log_append_time: get("message.timestamp.type") == "LogAppendTime",
        }
    }
}

/// A topic's settings as the broker applies them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectiveTopicConfig {
    /// Settings of each partition log.
    pub log: LogConfig,
    /// `max.message.bytes`.
    pub max_message_bytes: usize,
    /// `message.timestamp.type=LogAppendTime`.
    pub log_append_time: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_win_over_broker_defaults() {
        let broker = BrokerConfig::default();
        let mut overrides = BTreeMap::new();
        overrides.insert("retention.ms".to_owned(), "1000".to_owned());
        overrides.insert(
            "message.timestamp.type".to_owned(),
            "LogAppendTime".to_owned(),
        );
        let eff = broker.effective(&overrides);
        assert_eq!(eff.log.retention_ms, 1000);
        assert_eq!(eff.log.segment_bytes_max, 1 << 30);
        assert!(eff.log_append_time);
        assert_eq!(eff.max_message_bytes, 1_048_588);
    }

    #[test]
    fn values_are_validated() {
        assert!(validate_topic_config("retention.ms", "-1").is_ok());
        assert!(validate_topic_config("retention.ms", "-2").is_err());
        assert!(validate_topic_config("retention.ms", "soon").is_err());
        assert!(validate_topic_config("no.such.config", "1").is_err());
        let compact = validate_topic_config("cleanup.policy", "compact").unwrap_err();
        assert!(compact.to_string().contains("not supported"));
        assert!(validate_topic_config("flush.policy", "interval:10").is_ok());
        assert!(validate_topic_config("message.timestamp.type", "Now").is_err());
    }
}
