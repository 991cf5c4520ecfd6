//! Broker settings and topic configs, under Kafka's names so Kafka operators feel at home.
//!
//! Topic configs are stored as overrides (`name -> value`); the effective value of each comes
//! from the override, else the broker default it has as a synonym, else Kafka's default. Every
//! topic config Basalt knows is listed in [`TOPIC_CONFIGS`], which DescribeConfigs walks, so a
//! client sees every config with its value, source and synonyms, not only the overrides.
//!
//! # Invariants
//! - `CFG-1`: [`TOPIC_CONFIGS`] holds every topic-level config of Kafka 4 (and Basalt's
//!   `flush.policy`); any other name is refused (INVALID_CONFIG). Values are checked by type and
//!   range as Kafka checks them before anything is stored.
//! - `CFG-2`: a config Basalt cannot honour in a way that changes what clients see is refused
//!   with a reason (`cleanup.policy=compact`, `remote.storage.enable=true`); the others Basalt
//!   does not apply are stored and described, and their docs say so (`compression.type` keeps
//!   the producer's compression: recompression on write is future work).
//! - `CFG-3`: every broker synonym of a topic config is a described broker setting, so synonym
//!   chains always end in a `DEFAULT_CONFIG` entry.

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
    /// `advertised.listeners` by listener name: the host and port given to a client that came
    /// in on that listener; a listener not named here advertises `advertised_host:port`.
    pub advertised_listeners: BTreeMap<String, (String, i32)>,
    /// `broker.rack`.
    pub rack: Option<String>,
    /// The cluster id reported in Metadata and DescribeCluster.
    pub cluster_id: String,
    /// `num.partitions`: partitions of auto-created topics and of CreateTopics with -1.
    pub num_partitions: i32,
    /// `default.replication.factor`: replicas of auto-created topics and of CreateTopics with
    /// -1; -1 (the default) means 3 once the cluster has three live nodes, else 1.
    pub default_replication_factor: i16,
    /// `replica.lag.time.max.ms`: a follower that has not caught up for this long leaves the
    /// ISR.
    pub replica_lag_time_max_ms: i64,
    /// `broker.session.timeout.ms`: a node whose heartbeats stop for this long is fenced (its
    /// partitions move to other in-sync replicas).
    pub broker_session_timeout_ms: i64,
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
    /// `offsets.topic.segment.bytes`: segment size of `__consumer_offsets`; a partition larger
    /// than this (and than twice its last compacted size) is compacted.
    pub offsets_topic_segment_bytes: i64,
    /// The group coordinator's settings (`group.*`, `offsets.retention.minutes`, ...).
    pub groups: basalt_coordinator::GroupConfig,
    /// `transaction.state.log.num.partitions`: partitions of `__transaction_state`.
    pub transaction_state_num_partitions: i32,
    /// `transaction.state.log.segment.bytes`: segment size of `__transaction_state`, and the
    /// size past which a partition is compacted.
    pub transaction_state_segment_bytes: i64,
    /// The transaction coordinator's settings (`transaction.max.timeout.ms`,
    /// `transactional.id.expiration.ms`).
    pub txns: basalt_coordinator::txn::TxnConfig,
    /// Share groups' settings (`group.share.*`).
    pub shares: basalt_coordinator::share::ShareConfig,
    /// Authorization: on when `authorizer.class.name` is set; `super.users`,
    /// `allow.everyone.if.no.acl.found`.
    pub authorizer: crate::acl::AuthorizerConfig,
    /// How this node connects to the others (replication, transaction markers): the listener
    /// and its login (`inter.broker.listener.name`, `sasl.mechanism.inter.broker.protocol`).
    pub inter_broker: crate::peer::PeerSecurity,
    /// `connections.max.reauth.ms`: the SASL session lifetime the listeners enforce (0: none);
    /// kept here so DescribeConfigs reports it (clients read it to plan re-authentication).
    pub connections_max_reauth_ms: i64,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            node_id: 0,
            advertised_host: "127.0.0.1".into(),
            advertised_port: 9092,
            advertised_listeners: BTreeMap::new(),
            rack: None,
            cluster_id: "basalt-cluster".into(),
            num_partitions: 1,
            default_replication_factor: -1,
            replica_lag_time_max_ms: 30_000,
            broker_session_timeout_ms: 9_000,
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
            offsets_topic_segment_bytes: 100 * 1024 * 1024,
            groups: basalt_coordinator::GroupConfig::default(),
            transaction_state_num_partitions: 50,
            transaction_state_segment_bytes: 100 * 1024 * 1024,
            txns: basalt_coordinator::txn::TxnConfig::default(),
            shares: basalt_coordinator::share::ShareConfig::default(),
            authorizer: crate::acl::AuthorizerConfig::default(),
            inter_broker: crate::peer::PeerSecurity::default(),
            connections_max_reauth_ms: 0,
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
    /// The built-in default of a config without a broker synonym (unused otherwise: the
    /// broker setting supplies the default).
    pub default: &'static str,
    /// How values are checked.
    pub kind: ConfigKind,
    /// Documentation for `--help` and DescribeConfigs: what the config means and whether
    /// Basalt applies it.
    pub doc: &'static str,
}

/// The type of a config value, for validation and DescribeConfigs. Every kind trims the value
/// before parsing numbers and booleans, as Kafka does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigKind {
    /// A 32-bit integer in `min..=max` (Kafka's `INT`).
    Int {
        /// Smallest allowed value.
        min: i32,
        /// Largest allowed value.
        max: i32,
    },
    /// A 64-bit integer at least `min` (Kafka's `LONG`).
    Long {
        /// Smallest allowed value.
        min: i64,
    },
    /// A floating-point number between 0 and 1 inclusive (Kafka's `DOUBLE` with `between(0, 1)`).
    Ratio,
    /// `true` or `false`, in any case (Kafka's `BOOLEAN`).
    Bool,
    /// One of a fixed list of strings, case-sensitive (Kafka's `ValidString`).
    Enum(&'static [&'static str]),
    /// A non-empty comma-separated list of items from a fixed set (Kafka's `LIST`); IncrementalAlterConfigs
    /// may APPEND to or SUBTRACT from it.
    List(&'static [&'static str]),
    /// A list of throttled replicas: empty, `*`, or `partition:broker` pairs (Kafka's
    /// `ThrottledReplicaListValidator`); also a list for APPEND and SUBTRACT.
    ThrottledReplicas,
    /// The gzip level: -1 (the codec's default) or 1 to 9.
    GzipLevel,
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
    /// `DOUBLE`.
    pub const DOUBLE: i8 = 6;
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
            ConfigKind::Int { .. } | ConfigKind::GzipLevel => config_type::INT,
            ConfigKind::Long { .. } => config_type::LONG,
            ConfigKind::Ratio => config_type::DOUBLE,
            ConfigKind::Bool => config_type::BOOLEAN,
            ConfigKind::List(_) | ConfigKind::ThrottledReplicas => config_type::LIST,
            ConfigKind::Enum(_) | ConfigKind::FlushPolicy => config_type::STRING,
        }
    }

    /// Whether values are lists (IncrementalAlterConfigs APPEND/SUBTRACT apply).
    pub fn is_list(self) -> bool {
        matches!(self, ConfigKind::List(_) | ConfigKind::ThrottledReplicas)
    }
}

/// `i64::MAX` as text: Kafka's "never" for flush and compaction limits.
const LONG_MAX: &str = "9223372036854775807";

/// The compression codecs a topic may name (Kafka's `BrokerCompressionType`).
pub const COMPRESSION_TYPES: &[&str] =
    &["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"];

const fn int(min: i32) -> ConfigKind {
    ConfigKind::Int { min, max: i32::MAX }
}

const fn long(min: i64) -> ConfigKind {
    ConfigKind::Long { min }
}

const fn topic(
    name: &'static str,
    broker_synonym: &'static str,
    kind: ConfigKind,
    doc: &'static str,
) -> TopicConfigDef {
    TopicConfigDef {
        name,
        broker_synonym: Some(broker_synonym),
        default: "",
        kind,
        doc,
    }
}

const fn topic_only(
    name: &'static str,
    default: &'static str,
    kind: ConfigKind,
    doc: &'static str,
) -> TopicConfigDef {
    TopicConfigDef {
        name,
        broker_synonym: None,
        default,
        kind,
        doc,
    }
}

/// Every topic-level config of Kafka 4 (in name order), plus Basalt's `flush.policy`. Each doc
/// says whether Basalt applies the config; those it does not are accepted, validated, stored and
/// described, so tools and clients that set them keep working.
///
/// Applied: `cleanup.policy` (delete only), `flush.policy`, `index.interval.bytes`,
/// `max.message.bytes`, `message.timestamp.after.max.ms`, `message.timestamp.before.max.ms`,
/// `message.timestamp.type`, `min.insync.replicas`, `retention.bytes`, `retention.ms`,
/// `segment.bytes`, `segment.ms`.
pub const TOPIC_CONFIGS: &[TopicConfigDef] = &[
    topic(
        "cleanup.policy",
        "log.cleanup.policy",
        ConfigKind::List(&["delete"]),
        "delete: old segments are deleted by retention (compaction is not supported yet, so \
         compact is refused)",
    ),
    topic(
        "compression.gzip.level",
        "compression.gzip.level",
        ConfigKind::GzipLevel,
        "gzip level used when the broker compresses with gzip (-1 or 1 to 9); stored only: \
         Basalt never recompresses",
    ),
    topic(
        "compression.lz4.level",
        "compression.lz4.level",
        ConfigKind::Int { min: 1, max: 17 },
        "lz4 level used when the broker compresses with lz4 (1 to 17); stored only: Basalt never \
         recompresses",
    ),
    topic(
        "compression.type",
        "compression.type",
        ConfigKind::Enum(COMPRESSION_TYPES),
        "final compression of the topic's batches: producer keeps the producer's codec; Kafka \
         recompresses batches whose codec differs from any other value. Basalt stores and \
         describes the value but always keeps batches as the producer compressed them \
         (recompression on write is not implemented yet)",
    ),
    topic(
        "compression.zstd.level",
        "compression.zstd.level",
        ConfigKind::Int {
            min: -131_072,
            max: 22,
        },
        "zstd level used when the broker compresses with zstd (-131072 to 22); stored only: \
         Basalt never recompresses",
    ),
    topic(
        "delete.retention.ms",
        "log.cleaner.delete.retention.ms",
        long(0),
        "how long delete tombstones are kept on compacted topics; stored only (no compaction yet)",
    ),
    topic(
        "file.delete.delay.ms",
        "log.segment.delete.delay.ms",
        long(0),
        "delay before a deleted segment's files are removed; stored only: Basalt removes them at \
         once (reads of a removed segment report the offset as out of range)",
    ),
    topic(
        "flush.messages",
        "log.flush.interval.messages",
        long(1),
        "fsync after this many messages; stored only: durability follows flush.policy",
    ),
    topic(
        "flush.ms",
        "log.flush.interval.ms",
        long(0),
        "fsync when data is older than this; stored only: durability follows flush.policy \
         (interval:<ms> is the equivalent)",
    ),
    topic(
        "flush.policy",
        "log.flush.policy",
        ConfigKind::FlushPolicy,
        "always (fsync before acknowledging, with group commit), interval:<ms>, or os",
    ),
    topic_only(
        "follower.replication.throttled.replicas",
        "",
        ConfigKind::ThrottledReplicas,
        "replicas throttled on the follower side (partition:broker pairs or *); stored only \
         (single node: no replication)",
    ),
    topic(
        "index.interval.bytes",
        "log.index.interval.bytes",
        int(0),
        "bytes between two entries of the sparse offset and time indexes",
    ),
    topic_only(
        "leader.replication.throttled.replicas",
        "",
        ConfigKind::ThrottledReplicas,
        "replicas throttled on the leader side (partition:broker pairs or *); stored only \
         (single node: no replication)",
    ),
    topic(
        "local.retention.bytes",
        "log.local.retention.bytes",
        long(-2),
        "local retention by size with tiered storage (-2: retention.bytes); stored only (no \
         tiered storage)",
    ),
    topic(
        "local.retention.ms",
        "log.local.retention.ms",
        long(-2),
        "local retention by time with tiered storage (-2: retention.ms); stored only (no tiered \
         storage)",
    ),
    topic(
        "max.compaction.lag.ms",
        "log.cleaner.max.compaction.lag.ms",
        long(1),
        "longest time a message stays uncompacted; stored only (no compaction yet)",
    ),
    topic(
        "max.message.bytes",
        "message.max.bytes",
        int(0),
        "largest record batch accepted, after compression",
    ),
    topic(
        "message.timestamp.after.max.ms",
        "log.message.timestamp.after.max.ms",
        long(0),
        "CreateTime topics refuse batches (INVALID_TIMESTAMP) whose newest timestamp is more than \
         this ahead of the broker's clock",
    ),
    topic(
        "message.timestamp.before.max.ms",
        "log.message.timestamp.before.max.ms",
        long(0),
        "CreateTime topics refuse batches (INVALID_TIMESTAMP) whose first record's timestamp is \
         more than this behind the broker's clock",
    ),
    topic(
        "message.timestamp.type",
        "log.message.timestamp.type",
        ConfigKind::Enum(&["CreateTime", "LogAppendTime"]),
        "CreateTime keeps the producer's timestamps; LogAppendTime stamps batches on append",
    ),
    topic(
        "min.cleanable.dirty.ratio",
        "log.cleaner.min.cleanable.ratio",
        ConfigKind::Ratio,
        "dirty share of a log that makes it eligible for compaction (0 to 1); stored only (no \
         compaction yet)",
    ),
    topic(
        "min.compaction.lag.ms",
        "log.cleaner.min.compaction.lag.ms",
        long(0),
        "shortest time a message stays uncompacted; stored only (no compaction yet)",
    ),
    topic(
        "min.insync.replicas",
        "min.insync.replicas",
        int(1),
        "replicas that must have a write for acks=all to succeed; with one node, a value above 1 \
         refuses acks=all produces with NOT_ENOUGH_REPLICAS, as Kafka does",
    ),
    topic(
        "preallocate",
        "log.preallocate",
        ConfigKind::Bool,
        "preallocate segment files; stored only: Basalt grows segment files as it appends",
    ),
    topic_only(
        "remote.log.copy.disable",
        "false",
        ConfigKind::Bool,
        "stop copying segments to tiered storage; stored only (no tiered storage)",
    ),
    topic_only(
        "remote.log.delete.on.disable",
        "false",
        ConfigKind::Bool,
        "delete tiered data when tiered storage is disabled; stored only (no tiered storage)",
    ),
    topic_only(
        "remote.storage.enable",
        "false",
        ConfigKind::Bool,
        "tiered storage; Basalt has none, so true is refused",
    ),
    topic(
        "retention.bytes",
        "log.retention.bytes",
        long(-1),
        "delete the oldest closed segments while a partition is larger; -1 is no limit",
    ),
    topic(
        "retention.ms",
        "log.retention.ms",
        long(-1),
        "delete closed segments whose newest record is older than this; -1 keeps forever",
    ),
    topic(
        "segment.bytes",
        "log.segment.bytes",
        int(14),
        "roll to a new segment before one would pass this size",
    ),
    topic(
        "segment.index.bytes",
        "log.index.size.max.bytes",
        int(4),
        "largest offset index file of a segment; stored only: Basalt's sparse indexes grow with \
         their segment, which rolls by segment.bytes and segment.ms",
    ),
    topic(
        "segment.jitter.ms",
        "log.roll.jitter.ms",
        long(0),
        "random jitter subtracted from segment.ms; stored only: segments roll at segment.ms \
         exactly",
    ),
    topic(
        "segment.ms",
        "log.roll.ms",
        long(1),
        "roll to a new segment when the active one is older than this",
    ),
    topic(
        "unclean.leader.election.enable",
        "unclean.leader.election.enable",
        ConfigKind::Bool,
        "elect an out-of-sync replica as leader; stored only (single node: the one replica is \
         always the leader)",
    ),
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
        ConfigKind::Int { min, max } => {
            let v: i32 = value
                .trim()
                .parse()
                .map_err(|_| invalid("not a 32-bit integer".into()))?;
            if v < min {
                return Err(invalid(format!("must be at least {min}")));
            }
            if v > max {
                return Err(invalid(format!("must be at most {max}")));
            }
        }
        ConfigKind::Long { min } => {
            let v: i64 = value
                .trim()
                .parse()
                .map_err(|_| invalid("not a 64-bit integer".into()))?;
            if v < min {
                return Err(invalid(format!("must be at least {min}")));
            }
        }
        ConfigKind::Ratio => {
            let v: f64 = value
                .trim()
                .parse()
                .map_err(|_| invalid("not a number".into()))?;
            if !(0.0..=1.0).contains(&v) {
                return Err(invalid("must be between 0 and 1".into()));
            }
        }
        ConfigKind::Bool => {
            let v = parse_bool(value).ok_or_else(|| invalid("expected true or false".into()))?;
            if name == "remote.storage.enable" && v {
                return Err(invalid(
                    "tiered storage is not supported; remote.storage.enable must be false".into(),
                ));
            }
        }
        ConfigKind::GzipLevel => {
            let v: i32 = value
                .trim()
                .parse()
                .map_err(|_| invalid("not a 32-bit integer".into()))?;
            if !(v == -1 || (1..=9).contains(&v)) {
                return Err(invalid("must be -1 or between 1 and 9".into()));
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
        ConfigKind::ThrottledReplicas => {
            let items = list_items(value);
            let pair = |item: &str| {
                item.split_once(':').is_some_and(|(p, b)| {
                    let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
                    digits(p.trim()) && digits(b.trim())
                })
            };
            let ok = items == ["*"] || items.iter().all(|i| pair(i));
            if !ok {
                return Err(invalid(
                    "expected * or a list of partition:broker pairs such as 0:1,1:1".into(),
                ));
            }
        }
        ConfigKind::FlushPolicy => {
            FsyncPolicy::parse(value)
                .ok_or_else(|| invalid("expected always, os or interval:<ms>".into()))?;
        }
    }
    Ok(())
}

/// A boolean config value as Kafka parses it: `true` or `false` in any case, trimmed.
pub fn parse_bool(value: &str) -> Option<bool> {
    let v = value.trim();
    if v.eq_ignore_ascii_case("true") {
        Some(true)
    } else if v.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
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
    /// The value of a setting Basalt does not let operators change (Kafka's default); `None`
    /// for those held in [`BrokerConfig`].
    fixed: Option<&'static str>,
    doc: &'static str,
}

const fn setting(name: &'static str, type_code: i8, doc: &'static str) -> BrokerSettingDef {
    BrokerSettingDef {
        name,
        type_code,
        fixed: None,
        doc,
    }
}

const fn fixed(
    name: &'static str,
    type_code: i8,
    value: &'static str,
    doc: &'static str,
) -> BrokerSettingDef {
    BrokerSettingDef {
        name,
        type_code,
        fixed: Some(value),
        doc,
    }
}

/// Every broker setting DescribeConfigs reports for a BROKER resource: those of
/// [`BrokerConfig`], then the broker synonyms of topic configs, which Basalt keeps at Kafka's
/// defaults.
const BROKER_SETTINGS: &[BrokerSettingDef] = &[
    setting("node.id", config_type::INT, "the id of this node"),
    setting(
        "connections.max.reauth.ms",
        config_type::LONG,
        "SASL session lifetime after which clients must re-authenticate; 0 is never",
    ),
    setting(
        "transaction.max.timeout.ms",
        config_type::INT,
        "the longest transaction.timeout.ms a producer may ask for",
    ),
    setting(
        "transactional.id.expiration.ms",
        config_type::LONG,
        "how long an idle transactional id is remembered",
    ),
    setting(
        "num.partitions",
        config_type::INT,
        "partitions of auto-created topics and of topics created with -1 partitions",
    ),
    setting(
        "default.replication.factor",
        config_type::INT,
        "replication factor of auto-created topics and of topics created with -1 (-1: 3 once \
         three nodes are live, else 1)",
    ),
    setting(
        "broker.session.timeout.ms",
        config_type::LONG,
        "how long a node may miss heartbeats before it is fenced",
    ),
    setting(
        "replica.lag.time.max.ms",
        config_type::LONG,
        "how long a follower may lag before it leaves the in-sync replicas",
    ),
    setting(
        "auto.create.topics.enable",
        config_type::BOOLEAN,
        "create a missing topic when a client asks for its metadata or produces to it",
    ),
    setting(
        "delete.topic.enable",
        config_type::BOOLEAN,
        "whether DeleteTopics may delete topics",
    ),
    fixed(
        "log.cleanup.policy",
        config_type::LIST,
        "delete",
        "default cleanup.policy of topics (only delete is supported)",
    ),
    setting(
        "log.retention.ms",
        config_type::LONG,
        "default retention.ms of topics",
    ),
    setting(
        "log.retention.bytes",
        config_type::LONG,
        "default retention.bytes of topics",
    ),
    setting(
        "log.segment.bytes",
        config_type::INT,
        "default segment.bytes of topics",
    ),
    setting(
        "log.roll.ms",
        config_type::LONG,
        "default segment.ms of topics",
    ),
    setting(
        "log.index.interval.bytes",
        config_type::INT,
        "default index.interval.bytes of topics",
    ),
    setting(
        "message.max.bytes",
        config_type::INT,
        "default max.message.bytes of topics",
    ),
    setting(
        "log.message.timestamp.type",
        config_type::STRING,
        "default message.timestamp.type of topics",
    ),
    setting(
        "log.flush.policy",
        config_type::STRING,
        "default flush.policy of topics: always, interval:<ms> or os",
    ),
    setting(
        "log.retention.check.interval.ms",
        config_type::LONG,
        "how often retention is applied",
    ),
    fixed(
        "compression.type",
        config_type::STRING,
        "producer",
        "default compression.type of topics",
    ),
    fixed(
        "compression.gzip.level",
        config_type::INT,
        "-1",
        "default compression.gzip.level of topics",
    ),
    fixed(
        "compression.lz4.level",
        config_type::INT,
        "9",
        "default compression.lz4.level of topics",
    ),
    fixed(
        "compression.zstd.level",
        config_type::INT,
        "3",
        "default compression.zstd.level of topics",
    ),
    fixed(
        "log.cleaner.delete.retention.ms",
        config_type::LONG,
        "86400000",
        "default delete.retention.ms of topics",
    ),
    fixed(
        "log.segment.delete.delay.ms",
        config_type::LONG,
        "60000",
        "default file.delete.delay.ms of topics",
    ),
    fixed(
        "log.flush.interval.messages",
        config_type::LONG,
        LONG_MAX,
        "default flush.messages of topics",
    ),
    fixed(
        "log.flush.interval.ms",
        config_type::LONG,
        LONG_MAX,
        "default flush.ms of topics",
    ),
    fixed(
        "log.local.retention.bytes",
        config_type::LONG,
        "-2",
        "default local.retention.bytes of topics",
    ),
    fixed(
        "log.local.retention.ms",
        config_type::LONG,
        "-2",
        "default local.retention.ms of topics",
    ),
    fixed(
        "log.cleaner.max.compaction.lag.ms",
        config_type::LONG,
        LONG_MAX,
        "default max.compaction.lag.ms of topics",
    ),
    fixed(
        "log.message.timestamp.after.max.ms",
        config_type::LONG,
        "3600000",
        "default message.timestamp.after.max.ms of topics",
    ),
    fixed(
        "log.message.timestamp.before.max.ms",
        config_type::LONG,
        LONG_MAX,
        "default message.timestamp.before.max.ms of topics",
    ),
    fixed(
        "log.cleaner.min.cleanable.ratio",
        config_type::DOUBLE,
        "0.5",
        "default min.cleanable.dirty.ratio of topics",
    ),
    fixed(
        "log.cleaner.min.compaction.lag.ms",
        config_type::LONG,
        "0",
        "default min.compaction.lag.ms of topics",
    ),
    fixed(
        "min.insync.replicas",
        config_type::INT,
        "1",
        "default min.insync.replicas of topics",
    ),
    fixed(
        "log.preallocate",
        config_type::BOOLEAN,
        "false",
        "default preallocate of topics",
    ),
    fixed(
        "log.index.size.max.bytes",
        config_type::INT,
        "10485760",
        "default segment.index.bytes of topics",
    ),
    fixed(
        "log.roll.jitter.ms",
        config_type::LONG,
        "0",
        "default segment.jitter.ms of topics",
    ),
    fixed(
        "unclean.leader.election.enable",
        config_type::BOOLEAN,
        "false",
        "default unclean.leader.election.enable of topics",
    ),
];

impl BrokerConfig {
    /// The value of the broker setting with Kafka name `name`, as text.
    pub fn broker_value(&self, name: &str) -> Option<String> {
        Some(match name {
            "node.id" => self.node_id.to_string(),
            "connections.max.reauth.ms" => self.connections_max_reauth_ms.to_string(),
            "transaction.max.timeout.ms" => self.txns.max_timeout_ms.to_string(),
            "transactional.id.expiration.ms" => self.txns.id_expiration_ms.to_string(),
            "num.partitions" => self.num_partitions.to_string(),
            "default.replication.factor" => self.default_replication_factor.to_string(),
            "replica.lag.time.max.ms" => self.replica_lag_time_max_ms.to_string(),
            "broker.session.timeout.ms" => self.broker_session_timeout_ms.to_string(),
            "auto.create.topics.enable" => self.auto_create_topics_enable.to_string(),
            "delete.topic.enable" => self.delete_topic_enable.to_string(),
            "log.retention.ms" => self.log_retention_ms.to_string(),
            "log.retention.bytes" => self.log_retention_bytes.to_string(),
            "log.segment.bytes" => self.log_segment_bytes.to_string(),
            "log.roll.ms" => self.log_roll_ms.to_string(),
            "log.index.interval.bytes" => self.log_index_interval_bytes.to_string(),
            "message.max.bytes" => self.message_max_bytes.to_string(),
            "log.message.timestamp.type" => self.log_message_timestamp_type.clone(),
            "log.flush.policy" => self.log_flush_policy.to_string(),
            "log.retention.check.interval.ms" => self.log_retention_check_interval_ms.to_string(),
            _ => {
                return BROKER_SETTINGS
                    .iter()
                    .find(|d| d.name == name)
                    .and_then(|d| d.fixed)
                    .map(str::to_owned);
            }
        })
    }

    /// The broker-level value of a topic config's synonym as text, or the built-in default of
    /// a topic config without one.
    pub fn broker_default(&self, topic_config: &str) -> String {
        let Some(def) = topic_config_def(topic_config) else {
            return String::new();
        };
        match def.broker_synonym {
            Some(b) => self.broker_value(b).unwrap_or_default(),
            None => def.default.to_owned(),
        }
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
            timestamp_before_max_ms: long("message.timestamp.before.max.ms").max(0),
            timestamp_after_max_ms: long("message.timestamp.after.max.ms").max(0),
            min_insync_replicas: long("min.insync.replicas").clamp(1, i64::from(i32::MAX)) as i32,
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
    /// `message.timestamp.before.max.ms`: how far behind the broker's clock a CreateTime batch
    /// may be.
    pub timestamp_before_max_ms: i64,
    /// `message.timestamp.after.max.ms`: how far ahead of the broker's clock a CreateTime batch
    /// may be.
    pub timestamp_after_max_ms: i64,
    /// `min.insync.replicas`: more than 1 refuses every `acks=all` produce on one node.
    pub min_insync_replicas: i32,
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
    fn every_kafka_topic_config_is_known_and_its_default_is_valid() {
        let kafka = [
            "cleanup.policy",
            "compression.gzip.level",
            "compression.lz4.level",
            "compression.type",
            "compression.zstd.level",
            "delete.retention.ms",
            "file.delete.delay.ms",
            "flush.messages",
            "flush.ms",
            "follower.replication.throttled.replicas",
            "index.interval.bytes",
            "leader.replication.throttled.replicas",
            "local.retention.bytes",
            "local.retention.ms",
            "max.compaction.lag.ms",
            "max.message.bytes",
            "message.timestamp.after.max.ms",
            "message.timestamp.before.max.ms",
            "message.timestamp.type",
            "min.cleanable.dirty.ratio",
            "min.compaction.lag.ms",
            "min.insync.replicas",
            "preallocate",
            "remote.log.copy.disable",
            "remote.log.delete.on.disable",
            "remote.storage.enable",
            "retention.bytes",
            "retention.ms",
            "segment.bytes",
            "segment.index.bytes",
            "segment.jitter.ms",
            "segment.ms",
            "unclean.leader.election.enable",
        ];
        for name in kafka {
            assert!(topic_config_def(name).is_some(), "{name} unknown");
        }
        assert_eq!(
            TOPIC_CONFIGS.len(),
            kafka.len() + 1,
            "only flush.policy is Basalt's"
        );
        // Removed in Kafka 4.0.
        for gone in ["message.downconversion.enable", "message.format.version"] {
            assert!(topic_config_def(gone).is_none(), "{gone}");
        }
        let broker = BrokerConfig::default();
        let mut names: Vec<&str> = TOPIC_CONFIGS.iter().map(|d| d.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), TOPIC_CONFIGS.len(), "a config is listed twice");
        for def in TOPIC_CONFIGS {
            let default = broker.broker_default(def.name);
            validate_topic_config(def.name, &default)
                .unwrap_or_else(|e| panic!("default of {}: {e}", def.name));
            assert!(!def.doc.is_empty());
        }
        assert_eq!(broker.broker_default("compression.type"), "producer");
        assert_eq!(
            broker.broker_default("message.timestamp.after.max.ms"),
            "3600000"
        );
        assert_eq!(broker.broker_default("flush.messages"), LONG_MAX);
        assert_eq!(broker.broker_default("min.cleanable.dirty.ratio"), "0.5");
    }

    #[test]
    fn values_are_checked_by_type_and_range() {
        let ok = [
            ("compression.type", "zstd"),
            ("compression.type", "producer"),
            ("compression.type", "uncompressed"),
            ("compression.gzip.level", "-1"),
            ("compression.gzip.level", "9"),
            ("compression.lz4.level", "17"),
            ("compression.zstd.level", "-131072"),
            ("compression.zstd.level", "22"),
            ("delete.retention.ms", "0"),
            ("flush.messages", "1"),
            ("flush.ms", " 0 "),
            ("min.cleanable.dirty.ratio", "0"),
            ("min.cleanable.dirty.ratio", "1.0"),
            ("min.insync.replicas", "2"),
            ("preallocate", "TRUE"),
            ("unclean.leader.election.enable", "false"),
            ("remote.storage.enable", "false"),
            ("local.retention.ms", "-2"),
            ("leader.replication.throttled.replicas", ""),
            ("leader.replication.throttled.replicas", "*"),
            ("follower.replication.throttled.replicas", "0:1, 1:0"),
            ("segment.index.bytes", "4"),
            ("segment.jitter.ms", "0"),
            ("message.timestamp.before.max.ms", "0"),
        ];
        for (name, value) in ok {
            validate_topic_config(name, value).unwrap_or_else(|e| panic!("{name}={value}: {e}"));
        }
        let refused = [
            ("compression.type", "brotli"),
            ("compression.type", "ZSTD"),
            ("compression.gzip.level", "0"),
            ("compression.gzip.level", "10"),
            ("compression.lz4.level", "0"),
            ("compression.lz4.level", "18"),
            ("compression.zstd.level", "23"),
            ("compression.zstd.level", "-131073"),
            ("delete.retention.ms", "-1"),
            ("flush.messages", "0"),
            ("max.compaction.lag.ms", "0"),
            ("min.cleanable.dirty.ratio", "1.5"),
            ("min.cleanable.dirty.ratio", "-0.1"),
            ("min.cleanable.dirty.ratio", "half"),
            ("min.insync.replicas", "0"),
            ("preallocate", "yes"),
            ("remote.storage.enable", "true"),
            ("local.retention.bytes", "-3"),
            ("leader.replication.throttled.replicas", "0:x"),
            ("leader.replication.throttled.replicas", "*,0:1"),
            ("segment.index.bytes", "3"),
            ("segment.jitter.ms", "-1"),
            ("message.timestamp.after.max.ms", "-1"),
            ("file.delete.delay.ms", "9223372036854775808"),
        ];
        for (name, value) in refused {
            let e = validate_topic_config(name, value).unwrap_err();
            assert!(
                matches!(&e, ConfigError::Invalid { reason, .. } if !reason.is_empty()),
                "{name}={value}: {e:?}"
            );
        }
        let tiered = validate_topic_config("remote.storage.enable", "true").unwrap_err();
        assert!(tiered.to_string().contains("not supported"), "{tiered}");
    }

    #[test]
    fn throttled_replica_lists_take_append_and_subtract() {
        let broker = BrokerConfig::default();
        let name = "leader.replication.throttled.replicas";
        let out = broker
            .apply_incremental(
                &BTreeMap::new(),
                &[
                    change(name, AlterOp::Append, Some("0:0")),
                    change(name, AlterOp::Append, Some("1:0")),
                    change(name, AlterOp::Subtract, Some("0:0")),
                ],
            )
            .unwrap();
        assert_eq!(out.get(name).map(String::as_str), Some("1:0"));
    }

    #[test]
    fn new_limits_reach_the_effective_config() {
        let broker = BrokerConfig::default();
        let eff = broker.effective(&BTreeMap::new());
        assert_eq!(eff.timestamp_before_max_ms, i64::MAX);
        assert_eq!(eff.timestamp_after_max_ms, 3_600_000);
        assert_eq!(eff.min_insync_replicas, 1);
        let overrides = BTreeMap::from([
            ("min.insync.replicas".to_owned(), "2".to_owned()),
            (
                "message.timestamp.before.max.ms".to_owned(),
                "1000".to_owned(),
            ),
        ]);
        let eff = broker.effective(&overrides);
        assert_eq!(eff.min_insync_replicas, 2);
        assert_eq!(eff.timestamp_before_max_ms, 1000);
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
            connections_max_reauth_ms: 60_000,
            ..BrokerConfig::default()
        };
        let described = broker.describe_broker_configs();
        let get = |n: &str| described.iter().find(|c| c.name == n).unwrap().clone();
        assert_eq!(get("num.partitions").value, "3");
        // Clients read the session lifetime to plan re-authentication (KIP-368).
        assert_eq!(get("connections.max.reauth.ms").value, "60000");
        assert_eq!(get("transaction.max.timeout.ms").value, "900000");
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
        // CFG-3: every topic config's broker synonym is a described broker setting.
        for b in TOPIC_CONFIGS.iter().filter_map(|d| d.broker_synonym) {
            assert!(described.iter().any(|c| c.name == b), "{b} missing");
        }
    }
}
