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
    /// `offsets.topic.num.partitions`: partitions of `__consumer_offsets`.
    pub offsets_topic_num_partitions: i32,
    /// The group coordinator's settings (`group.*`, `offsets.retention.minutes`, ...).
    pub groups: basalt_coordinator::GroupConfig,
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
            offsets_topic_num_partitions: 50,
            groups: basalt_coordinator::GroupConfig::default(),
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
    /// A 32-bit integer at least `min` (Kafka's `INT`).
    Int {
        /// Smallest allowed value.
        min: i32,
    },
    /// A 64-bit integer at least `min` (Kafka's `LONG`).
    Long {
        /// Smallest allowed value.
        min: i64,
    },
    /// One of a fixed list of strings.
    Enum(&'static [&'static str]),
    /// A non-empty comma-separated list of items from a fixed set (Kafka's `LIST`); the only kind
    /// IncrementalAlterConfigs may APPEND to or SUBTRACT from.
    List(&'static [&'static str]),
    /// A flush policy.
    FlushPolicy,
}

/// Kafka's `ConfigType` codes, as DescribeConfigs (v3+) reports them.
pub mod config_type {
    /// `BOOLEAN`.
    pub const BOOLEAN: i8 = 1;
    /// `STRING`.
    pub const STRING: i8 = 2;
    /// `INT`.
    pub const INT: i8 = 3;
    /// `LONG`.
    pub const LONG: i8 = 5;
    /// `LIST`.
    pub const LIST: i8 = 7;
}

/// Kafka's `ConfigSource` codes (`DescribeConfigsResponse.ConfigSource`).
pub mod config_source {
    /// `UNKNOWN`.
    pub const UNKNOWN: i8 = 0;
    /// `TOPIC_CONFIG`: a topic override (Kafka calls it DYNAMIC_TOPIC_CONFIG in tools).
    pub const TOPIC_CONFIG: i8 = 1;
    /// `DYNAMIC_BROKER_CONFIG`: set at runtime for one broker (Basalt has none).
    pub const DYNAMIC_BROKER_CONFIG: i8 = 2;
    /// `DYNAMIC_DEFAULT_BROKER_CONFIG`: set at runtime for all brokers (Basalt has none).
    pub const DYNAMIC_DEFAULT_BROKER_CONFIG: i8 = 3;
    /// `STATIC_BROKER_CONFIG`: set in the broker's start-up configuration.
    pub const STATIC_BROKER_CONFIG: i8 = 4;
    /// `DEFAULT_CONFIG`: the built-in default.
    pub const DEFAULT_CONFIG: i8 = 5;
    /// `DYNAMIC_BROKER_LOGGER_CONFIG`.
    pub const DYNAMIC_BROKER_LOGGER_CONFIG: i8 = 6;
}

impl ConfigKind {
    /// DescribeConfigs config type code (Kafka's `ConfigType`).
    pub fn type_code(self) -> i8 {
        match self {
            ConfigKind::Int { .. } => config_type::INT,
            ConfigKind::Long { .. } => config_type::LONG,
            ConfigKind::List(_) => config_type::LIST,
            ConfigKind::Enum(_) | ConfigKind::FlushPolicy => config_type::STRING,
        }
    }

    /// Whether values are lists (IncrementalAlterConfigs APPEND/SUBTRACT apply).
    pub fn is_list(self) -> bool {
        matches!(self, ConfigKind::List(_))
    }
}

/// Every topic config Basalt honours.
pub const TOPIC_CONFIGS: &[TopicConfigDef] = &[
    TopicConfigDef {
        name: "cleanup.policy",
        broker_synonym: Some("log.cleanup.policy"),
        kind: ConfigKind::List(&["delete"]),
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
        kind: ConfigKind::Int { min: 14 },
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
        kind: ConfigKind::Int { min: 0 },
        doc: "bytes between two entries of the sparse offset and time indexes",
    },
    TopicConfigDef {
        name: "max.message.bytes",
        broker_synonym: Some("message.max.bytes"),
        kind: ConfigKind::Int { min: 0 },
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
    /// APPEND or SUBTRACT on a config that is not a list.
    #[error("{op} is only allowed for list configs, and {name} is not one")]
    NotAList {
        /// Config name.
        name: String,
        /// The operation.
        op: &'static str,
    },
    /// SET, APPEND or SUBTRACT without a value.
    #[error("{op} of {name} needs a value")]
    MissingValue {
        /// Config name.
        name: String,
        /// The operation.
        op: &'static str,
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
        ConfigKind::Int { min } => {
            let v: i32 = value
                .trim()
                .parse()
                .map_err(|_| invalid("not a 32-bit integer".into()))?;
            if v < min {
                return Err(invalid(format!("must be at least {min}")));
            }
        }
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
            if !allowed.contains(&value) {
                return Err(invalid(format!("must be one of {}", allowed.join(", "))));
            }
        }
        ConfigKind::List(allowed) => {
            let items = list_items(value);
            if items.is_empty() {
                return Err(invalid("the list is empty".into()));
            }
            if name == "cleanup.policy" && items.contains(&"compact") {
                return Err(invalid(
                    "log compaction is not supported yet; use cleanup.policy=delete".into(),
                ));
            }
            if let Some(bad) = items.iter().find(|i| !allowed.contains(i)) {
                return Err(invalid(format!(
                    "{bad:?} is not one of {}",
                    allowed.join(", ")
                )));
            }
        }
        ConfigKind::FlushPolicy => {
            FsyncPolicy::parse(value)
                .ok_or_else(|| invalid("expected always, os or interval:<ms>".into()))?;
        }
    }
    Ok(())
}

/// The items of a list value: comma-separated, trimmed, empty items dropped.
pub fn list_items(value: &str) -> Vec<&str> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// An IncrementalAlterConfigs operation (Kafka's `AlterConfigOp.OpType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlterOp {
    /// `SET` (0): sets the override.
    Set,
    /// `DELETE` (1): removes the override, so the broker value applies again.
    Delete,
    /// `APPEND` (2): adds items to a list config (those not already in it).
    Append,
    /// `SUBTRACT` (3): removes items from a list config.
    Subtract,
}

impl AlterOp {
    /// The operation with wire code `code`, if there is one.
    pub fn from_code(code: i8) -> Option<AlterOp> {
        match code {
            0 => Some(AlterOp::Set),
            1 => Some(AlterOp::Delete),
            2 => Some(AlterOp::Append),
            3 => Some(AlterOp::Subtract),
            _ => None,
        }
    }

    /// Kafka's name of the operation.
    pub fn name(self) -> &'static str {
        match self {
            AlterOp::Set => "SET",
            AlterOp::Delete => "DELETE",
            AlterOp::Append => "APPEND",
            AlterOp::Subtract => "SUBTRACT",
        }
    }
}

/// One change of an IncrementalAlterConfigs request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncrementalChange {
    /// The topic config name.
    pub name: String,
    /// What to do.
    pub op: AlterOp,
    /// The value, or for APPEND/SUBTRACT the comma-separated items (`None` only for DELETE).
    pub value: Option<String>,
}

/// One config as DescribeConfigs reports it, before the request's key and detail filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedConfig {
    /// The config name.
    pub name: String,
    /// The value in force.
    pub value: String,
    /// Where the value comes from ([`config_source`]); the source of the first synonym.
    pub source: i8,
    /// Whether the config cannot be changed at runtime.
    pub read_only: bool,
    /// Kafka's [`config_type`] code.
    pub type_code: i8,
    /// Documentation.
    pub doc: &'static str,
    /// Every place a value is set, in precedence order: the one in force first.
    pub synonyms: Vec<ConfigSynonym>,
}

/// One place a config value is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigSynonym {
    /// The config name at that level (a topic config, or its broker synonym).
    pub name: String,
    /// The value at that level.
    pub value: String,
    /// The level ([`config_source`]).
    pub source: i8,
}

/// One broker setting under its Kafka name, as DescribeConfigs lists it.
struct BrokerSettingDef {
    name: &'static str,
    type_code: i8,
    doc: &'static str,
}

/// Every broker setting DescribeConfigs reports for a BROKER resource.
const BROKER_SETTINGS: &[BrokerSettingDef] = &[
    BrokerSettingDef {
        name: "node.id",
        type_code: config_type::INT,
        doc: "the id of this node",
    },
    BrokerSettingDef {
        name: "num.partitions",
        type_code: config_type::INT,
        doc: "partitions of auto-created topics and of topics created with -1 partitions",
    },
    BrokerSettingDef {
        name: "default.replication.factor",
        type_code: config_type::INT,
        doc: "replication factor of auto-created topics and of topics created with -1",
    },
    BrokerSettingDef {
        name: "auto.create.topics.enable",
        type_code: config_type::BOOLEAN,
        doc: "create a missing topic when a client asks for its metadata or produces to it",
    },
    BrokerSettingDef {
        name: "delete.topic.enable",
        type_code: config_type::BOOLEAN,
        doc: "whether DeleteTopics may delete topics",
    },
    BrokerSettingDef {
        name: "log.cleanup.policy",
        type_code: config_type::LIST,
        doc: "default cleanup.policy of topics (only delete is supported)",
    },
    BrokerSettingDef {
        name: "log.retention.ms",
        type_code: config_type::LONG,
        doc: "default retention.ms of topics",
    },
    BrokerSettingDef {
        name: "log.retention.bytes",
        type_code: config_type::LONG,
        doc: "default retention.bytes of topics",
    },
    BrokerSettingDef {
        name: "log.segment.bytes",
        type_code: config_type::INT,
        doc: "default segment.bytes of topics",
    },
    BrokerSettingDef {
        name: "log.roll.ms",
        type_code: config_type::LONG,
        doc: "default segment.ms of topics",
    },
    BrokerSettingDef {
        name: "log.index.interval.bytes",
        type_code: config_type::INT,
        doc: "default index.interval.bytes of topics",
    },
    BrokerSettingDef {
        name: "message.max.bytes",
        type_code: config_type::INT,
        doc: "default max.message.bytes of topics",
    },
    BrokerSettingDef {
        name: "log.message.timestamp.type",
        type_code: config_type::STRING,
        doc: "default message.timestamp.type of topics",
    },
    BrokerSettingDef {
        name: "log.flush.policy",
        type_code: config_type::STRING,
        doc: "default flush.policy of topics: always, interval:<ms> or os",
    },
    BrokerSettingDef {
        name: "log.retention.check.interval.ms",
        type_code: config_type::LONG,
        doc: "how often retention is applied",
    },
];

impl BrokerConfig {
    /// The value of the broker setting with Kafka name `name`, as text.
    pub fn broker_value(&self, name: &str) -> Option<String> {
        Some(match name {
            "node.id" => self.node_id.to_string(),
            "num.partitions" => self.num_partitions.to_string(),
            "default.replication.factor" => self.default_replication_factor.to_string(),
            "auto.create.topics.enable" => self.auto_create_topics_enable.to_string(),
            "delete.topic.enable" => self.delete_topic_enable.to_string(),
            "log.cleanup.policy" => "delete".into(),
            "log.retention.ms" => self.log_retention_ms.to_string(),
            "log.retention.bytes" => self.log_retention_bytes.to_string(),
            "log.segment.bytes" => self.log_segment_bytes.to_string(),
            "log.roll.ms" => self.log_roll_ms.to_string(),
            "log.index.interval.bytes" => self.log_index_interval_bytes.to_string(),
            "message.max.bytes" => self.message_max_bytes.to_string(),
            "log.message.timestamp.type" => self.log_message_timestamp_type.clone(),
            "log.flush.policy" => self.log_flush_policy.to_string(),
            "log.retention.check.interval.ms" => self.log_retention_check_interval_ms.to_string(),
            _ => return None,
        })
    }

    /// The broker-level value of a topic config's synonym, as text.
    pub fn broker_default(&self, topic_config: &str) -> String {
        topic_config_def(topic_config)
            .and_then(|d| d.broker_synonym)
            .and_then(|b| self.broker_value(b))
            .unwrap_or_default()
    }

    /// The source and synonyms of the broker setting `name` (which must be known): set at
    /// start-up when it differs from the built-in default, else the default. Basalt cannot tell
    /// a setting given with its default value from one not given at all.
    fn broker_synonyms(&self, name: &str) -> Vec<ConfigSynonym> {
        let value = self.broker_value(name).unwrap_or_default();
        let default = BrokerConfig::default()
            .broker_value(name)
            .unwrap_or_default();
        if value == default {
            vec![ConfigSynonym {
                name: name.to_owned(),
                value,
                source: config_source::DEFAULT_CONFIG,
            }]
        } else {
            vec![
                ConfigSynonym {
                    name: name.to_owned(),
                    value,
                    source: config_source::STATIC_BROKER_CONFIG,
                },
                ConfigSynonym {
                    name: name.to_owned(),
                    value: default,
                    source: config_source::DEFAULT_CONFIG,
                },
            ]
        }
    }

    /// Every topic config of a topic with `overrides`, with value, source and synonyms (the
    /// override, then the broker setting it falls back to, then that setting's default).
    pub fn describe_topic_configs(
        &self,
        overrides: &BTreeMap<String, String>,
    ) -> Vec<DescribedConfig> {
        TOPIC_CONFIGS
            .iter()
            .map(|def| {
                let mut synonyms = Vec::new();
                if let Some(v) = overrides.get(def.name) {
                    synonyms.push(ConfigSynonym {
                        name: def.name.to_owned(),
                        value: v.clone(),
                        source: config_source::TOPIC_CONFIG,
                    });
                }
                match def.broker_synonym {
                    Some(b) => synonyms.extend(self.broker_synonyms(b)),
                    None => synonyms.push(ConfigSynonym {
                        name: def.name.to_owned(),
                        value: self.broker_default(def.name),
                        source: config_source::DEFAULT_CONFIG,
                    }),
                }
                DescribedConfig {
                    name: def.name.to_owned(),
                    value: synonyms[0].value.clone(),
                    source: synonyms[0].source,
                    read_only: false,
                    type_code: def.kind.type_code(),
                    doc: def.doc,
                    synonyms,
                }
            })
            .collect()
    }

    /// Every broker setting, under Kafka's names. All are read-only: they are fixed at start-up.
    pub fn describe_broker_configs(&self) -> Vec<DescribedConfig> {
        BROKER_SETTINGS
            .iter()
            .map(|def| {
                let synonyms = self.broker_synonyms(def.name);
                DescribedConfig {
                    name: def.name.to_owned(),
                    value: synonyms[0].value.clone(),
                    source: synonyms[0].source,
                    read_only: true,
                    type_code: def.type_code,
                    doc: def.doc,
                    synonyms,
                }
            })
            .collect()
    }

    /// The overrides after applying `changes` to `current`, in order (Kafka's
    /// IncrementalAlterConfigs). APPEND and SUBTRACT start from the value in force: the override,
    /// else the broker value. Every config a change touches is validated.
    pub fn apply_incremental(
        &self,
        current: &BTreeMap<String, String>,
        changes: &[IncrementalChange],
    ) -> Result<BTreeMap<String, String>, ConfigError> {
        let mut out = current.clone();
        for change in changes {
            let name = change.name.as_str();
            let def =
                topic_config_def(name).ok_or_else(|| ConfigError::Unknown(name.to_owned()))?;
            let value = change.value.as_deref();
            match change.op {
                AlterOp::Delete => {
                    out.remove(name);
                }
                AlterOp::Set => {
                    let value = value.ok_or_else(|| ConfigError::MissingValue {
                        name: name.to_owned(),
                        op: change.op.name(),
                    })?;
                    validate_topic_config(name, value)?;
                    out.insert(name.to_owned(), value.to_owned());
                }
                AlterOp::Append | AlterOp::Subtract => {
                    if !def.kind.is_list() {
                        return Err(ConfigError::NotAList {
                            name: name.to_owned(),
                            op: change.op.name(),
                        });
                    }
                    let value = value.ok_or_else(|| ConfigError::MissingValue {
                        name: name.to_owned(),
                        op: change.op.name(),
                    })?;
                    let base = out
                        .get(name)
                        .cloned()
                        .unwrap_or_else(|| self.broker_default(name));
                    let mut items: Vec<&str> = list_items(&base);
                    let given = list_items(value);
                    if change.op == AlterOp::Append {
                        for item in given {
                            if !items.contains(&item) {
                                items.push(item);
                            }
                        }
                    } else {
                        items.retain(|i| !given.contains(i));
                    }
                    let joined = items.join(",");
                    validate_topic_config(name, &joined)?;
                    out.insert(name.to_owned(), joined);
                }
            }
        }
        Ok(out)
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

    fn change(name: &str, op: AlterOp, value: Option<&str>) -> IncrementalChange {
        IncrementalChange {
            name: name.to_owned(),
            op,
            value: value.map(str::to_owned),
        }
    }

    #[test]
    fn incremental_set_and_delete_apply_in_order() {
        let broker = BrokerConfig::default();
        let current = BTreeMap::from([("retention.ms".to_owned(), "5".to_owned())]);
        let out = broker
            .apply_incremental(
                &current,
                &[
                    change("segment.bytes", AlterOp::Set, Some("1024")),
                    change("retention.ms", AlterOp::Delete, None),
                    // Deleting an override that does not exist is fine.
                    change("retention.bytes", AlterOp::Delete, None),
                ],
            )
            .unwrap();
        assert_eq!(
            out,
            BTreeMap::from([("segment.bytes".to_owned(), "1024".to_owned())])
        );
    }

    #[test]
    fn incremental_append_and_subtract_work_on_lists_only() {
        let broker = BrokerConfig::default();
        let empty = BTreeMap::new();
        // APPEND starts from the value in force (the broker's "delete") and skips duplicates.
        let out = broker
            .apply_incremental(
                &empty,
                &[change("cleanup.policy", AlterOp::Append, Some("delete"))],
            )
            .unwrap();
        assert_eq!(
            out.get("cleanup.policy").map(String::as_str),
            Some("delete")
        );
        // Compaction is refused whichever way it arrives.
        let e = broker
            .apply_incremental(
                &empty,
                &[change("cleanup.policy", AlterOp::Append, Some("compact"))],
            )
            .unwrap_err();
        assert!(e.to_string().contains("not supported"), "{e}");
        // SUBTRACT leaving nothing is an invalid (empty) list.
        let e = broker
            .apply_incremental(
                &empty,
                &[change("cleanup.policy", AlterOp::Subtract, Some("delete"))],
            )
            .unwrap_err();
        assert!(matches!(e, ConfigError::Invalid { .. }), "{e:?}");
        // Subtracting an item that is absent keeps the list.
        let out = broker
            .apply_incremental(
                &empty,
                &[change("cleanup.policy", AlterOp::Subtract, Some("compact"))],
            )
            .unwrap();
        assert_eq!(
            out.get("cleanup.policy").map(String::as_str),
            Some("delete")
        );
        for op in [AlterOp::Append, AlterOp::Subtract] {
            let e = broker
                .apply_incremental(&empty, &[change("retention.ms", op, Some("1"))])
                .unwrap_err();
            assert!(matches!(e, ConfigError::NotAList { .. }), "{e:?}");
        }
    }

    #[test]
    fn incremental_changes_are_validated() {
        let broker = BrokerConfig::default();
        let empty = BTreeMap::new();
        let cases = [
            change("no.such.config", AlterOp::Set, Some("1")),
            change("no.such.config", AlterOp::Delete, None),
            change("segment.bytes", AlterOp::Set, Some("13")),
            change("segment.bytes", AlterOp::Set, Some("4294967296")),
            change("retention.ms", AlterOp::Set, None),
        ];
        for c in cases {
            assert!(
                broker
                    .apply_incremental(&empty, std::slice::from_ref(&c))
                    .is_err(),
                "{c:?}"
            );
        }
        assert_eq!(AlterOp::from_code(3), Some(AlterOp::Subtract));
        assert_eq!(AlterOp::from_code(4), None);
    }

    #[test]
    fn list_values_are_validated() {
        assert!(validate_topic_config("cleanup.policy", "delete").is_ok());
        assert!(validate_topic_config("cleanup.policy", " delete , delete").is_ok());
        assert!(validate_topic_config("cleanup.policy", "").is_err());
        assert!(validate_topic_config("cleanup.policy", "delete,compact").is_err());
        assert!(validate_topic_config("cleanup.policy", "remove").is_err());
        assert!(validate_topic_config("max.message.bytes", "2147483647").is_ok());
        assert!(validate_topic_config("max.message.bytes", "2147483648").is_err());
    }

    #[test]
    fn described_topic_configs_carry_sources_and_synonyms() {
        let mut broker = BrokerConfig {
            log_segment_bytes: 1 << 20,
            ..BrokerConfig::default()
        };
        broker.log_retention_bytes = -1;
        let overrides = BTreeMap::from([("retention.ms".to_owned(), "1000".to_owned())]);
        let described = broker.describe_topic_configs(&overrides);
        assert_eq!(described.len(), TOPIC_CONFIGS.len());
        let get = |n: &str| described.iter().find(|c| c.name == n).unwrap().clone();

        let retention = get("retention.ms");
        assert_eq!(retention.value, "1000");
        assert_eq!(retention.source, config_source::TOPIC_CONFIG);
        assert_eq!(retention.type_code, config_type::LONG);
        let names: Vec<(&str, &str, i8)> = retention
            .synonyms
            .iter()
            .map(|s| (s.name.as_str(), s.value.as_str(), s.source))
            .collect();
        assert_eq!(
            names,
            vec![
                ("retention.ms", "1000", config_source::TOPIC_CONFIG),
                (
                    "log.retention.ms",
                    "604800000",
                    config_source::DEFAULT_CONFIG
                ),
            ]
        );

        // A broker setting that differs from the built-in default is static broker config.
        let segment = get("segment.bytes");
        assert_eq!(segment.value, "1048576");
        assert_eq!(segment.source, config_source::STATIC_BROKER_CONFIG);
        assert_eq!(segment.type_code, config_type::INT);
        let names: Vec<(&str, &str, i8)> = segment
            .synonyms
            .iter()
            .map(|s| (s.name.as_str(), s.value.as_str(), s.source))
            .collect();
        assert_eq!(
            names,
            vec![
                (
                    "log.segment.bytes",
                    "1048576",
                    config_source::STATIC_BROKER_CONFIG
                ),
                (
                    "log.segment.bytes",
                    "1073741824",
                    config_source::DEFAULT_CONFIG
                ),
            ]
        );

        let cleanup = get("cleanup.policy");
        assert_eq!(cleanup.value, "delete");
        assert_eq!(cleanup.source, config_source::DEFAULT_CONFIG);
        assert_eq!(cleanup.type_code, config_type::LIST);
        assert!(described.iter().all(|c| !c.read_only));
    }

    #[test]
    fn described_broker_configs_use_kafka_names() {
        let broker = BrokerConfig {
            num_partitions: 3,
            ..BrokerConfig::default()
        };
        let described = broker.describe_broker_configs();
        let get = |n: &str| described.iter().find(|c| c.name == n).unwrap().clone();
        assert_eq!(get("num.partitions").value, "3");
        assert_eq!(
            get("num.partitions").source,
            config_source::STATIC_BROKER_CONFIG
        );
        assert_eq!(
            get("log.retention.ms").source,
            config_source::DEFAULT_CONFIG
        );
        assert_eq!(get("auto.create.topics.enable").value, "true");
        assert_eq!(
            get("auto.create.topics.enable").type_code,
            config_type::BOOLEAN
        );
        assert_eq!(get("log.flush.policy").value, "always");
        for name in [
            "num.partitions",
            "log.retention.ms",
            "log.retention.bytes",
            "log.segment.bytes",
            "log.roll.ms",
            "log.index.interval.bytes",
            "message.max.bytes",
            "log.message.timestamp.type",
            "auto.create.topics.enable",
            "delete.topic.enable",
            "log.flush.policy",
            "default.replication.factor",
        ] {
            assert!(described.iter().any(|c| c.name == name), "{name} missing");
        }
        assert!(described.iter().all(|c| c.read_only));
        // Every topic config's broker synonym is a described broker setting.
        for def in TOPIC_CONFIGS {
            let b = def.broker_synonym.unwrap();
            assert!(described.iter().any(|c| c.name == b), "{b} missing");
        }
    }
}
