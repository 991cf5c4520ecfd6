//! `basalt serve`: runs the broker.
//!
//! Settings come from the embedded defaults, then a TOML file (`--config`), then `BASALT_*`
//! environment variables, then flags, each overriding the one before. Names are Kafka's broker
//! config names (`num.partitions`, `log.retention.ms`, ...); in the TOML file they may be written
//! as dotted keys (`log.retention.ms = 3600000`) or quoted (`"log.retention.ms" = 3600000`).
//!
//! Listeners follow Kafka: `listeners = ["PLAINTEXT://127.0.0.1:9092", "SASL_SSL://0.0.0.0:9094"]`
//! (or one comma-separated string), each `NAME://HOST:PORT` whose protocol is
//! `listener.security.protocol.map[NAME]` or the name itself; a bare `HOST:PORT` is a PLAINTEXT
//! listener named PLAINTEXT, as `--listen` always was. TLS and SASL settings (`ssl.*`, `sasl.*`)
//! apply to every listener that needs them; in the file, `listener.name.<name>.<key>` overrides
//! one for a single listener (as in Kafka). Connection limits follow Kafka too: `max.connections`
//! and `max.connection.creation.rate` count over all listeners, and
//! `listener.name.<name>.max.connections` and `listener.name.<name>.max.connection.creation.rate`
//! over one; `max.connections.per.ip` (with `max.connections.per.ip.overrides`) counts one
//! address over all listeners.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use basalt_broker::GroupConfig;
use basalt_broker::acl::AuthorizerConfig;
use basalt_broker::cluster::{join, wait_for_leader};
use basalt_broker::coordinator::share::ShareConfig;
use basalt_broker::coordinator::txn::TxnConfig;
use basalt_broker::{Broker, BrokerConfig};
use basalt_cluster::metadata::{
    Endpoint, MetadataQuorum, QuorumOptions, QuorumSettings, Voter, parse_voters,
};
use basalt_server::{
    ClientAuth, ListenerConfig, Mechanism, PerIpLimit, SaslConfig, SecurityProtocol, ServerLimits,
    TlsSettings, TlsSource, TlsVersion,
};
use basalt_storage::FsyncPolicy;
use clap::Args;

/// Flags of `basalt serve`. Every setting is optional here: what is not given falls back to the
/// config file, then to the default shown.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML file with settings under Kafka's names.
    #[arg(long, env = "BASALT_CONFIG")]
    config: Option<PathBuf>,
    /// `listeners`: address to listen on [default: 127.0.0.1:9092].
    #[arg(
        long = "listen",
        visible_alias = "listeners",
        env = "BASALT_LISTEN",
        value_name = "HOST:PORT"
    )]
    listen: Option<String>,
    /// `advertised.listeners`: address given to clients in metadata [default: the listen address].
    #[arg(
        long = "advertised",
        visible_alias = "advertised.listeners",
        env = "BASALT_ADVERTISED",
        value_name = "HOST:PORT"
    )]
    advertised: Option<String>,
    /// `log.dirs`: data directory [default: ./basalt-data].
    #[arg(
        long = "data-dir",
        visible_alias = "log.dirs",
        env = "BASALT_DATA_DIR",
        value_name = "DIR"
    )]
    data_dir: Option<PathBuf>,
    /// `node.id` [default: 0].
    #[arg(long = "node-id", visible_alias = "node.id", env = "BASALT_NODE_ID")]
    node_id: Option<i32>,
    /// `cluster.id` reported to clients [default: basalt-cluster].
    #[arg(long = "cluster.id", env = "BASALT_CLUSTER_ID")]
    cluster_id: Option<String>,
    /// `broker.rack` [default: none].
    #[arg(long = "broker.rack", env = "BASALT_BROKER_RACK")]
    rack: Option<String>,
    /// `group.initial.rebalance.delay.ms`: how long the first rebalance of an empty group
    /// waits for more members [default: 3000].
    #[arg(
        long = "group.initial.rebalance.delay.ms",
        env = "BASALT_GROUP_INITIAL_REBALANCE_DELAY_MS"
    )]
    group_initial_delay: Option<i64>,
    /// `group.min.session.timeout.ms` [default: 6000].
    #[arg(
        long = "group.min.session.timeout.ms",
        env = "BASALT_GROUP_MIN_SESSION_TIMEOUT_MS"
    )]
    group_min_session: Option<i32>,
    /// `group.max.session.timeout.ms` [default: 1800000].
    #[arg(
        long = "group.max.session.timeout.ms",
        env = "BASALT_GROUP_MAX_SESSION_TIMEOUT_MS"
    )]
    group_max_session: Option<i32>,
    /// `group.consumer.session.timeout.ms`: session timeout of KIP-848 consumer group members
    /// [default: 45000].
    #[arg(
        long = "group.consumer.session.timeout.ms",
        env = "BASALT_GROUP_CONSUMER_SESSION_TIMEOUT_MS"
    )]
    group_consumer_session: Option<i32>,
    /// `group.consumer.heartbeat.interval.ms`: heartbeat interval of KIP-848 consumer group
    /// members [default: 5000].
    #[arg(
        long = "group.consumer.heartbeat.interval.ms",
        env = "BASALT_GROUP_CONSUMER_HEARTBEAT_INTERVAL_MS"
    )]
    group_consumer_heartbeat: Option<i32>,
    /// `offsets.retention.minutes`: committed offsets of an empty group are kept this long
    /// [default: 10080].
    #[arg(
        long = "offsets.retention.minutes",
        env = "BASALT_OFFSETS_RETENTION_MINUTES"
    )]
    offsets_retention_minutes: Option<i64>,
    /// `offsets.topic.num.partitions`: partitions of the internal `__consumer_offsets` topic,
    /// fixed when it is first created [default: 50].
    #[arg(
        long = "offsets.topic.num.partitions",
        env = "BASALT_OFFSETS_TOPIC_NUM_PARTITIONS"
    )]
    offsets_partitions: Option<i32>,
    /// `offsets.topic.segment.bytes`: segment size of `__consumer_offsets`; a partition that
    /// grows past it is compacted [default: 104857600].
    #[arg(
        long = "offsets.topic.segment.bytes",
        env = "BASALT_OFFSETS_TOPIC_SEGMENT_BYTES"
    )]
    offsets_segment_bytes: Option<i64>,
    /// `transaction.state.log.num.partitions`: partitions of the internal `__transaction_state`
    /// topic, fixed when it is first created [default: 50].
    #[arg(
        long = "transaction.state.log.num.partitions",
        env = "BASALT_TRANSACTION_STATE_LOG_NUM_PARTITIONS"
    )]
    txn_partitions: Option<i32>,
    /// `transaction.state.log.segment.bytes`: segment size of `__transaction_state`; a
    /// partition that grows past it is compacted [default: 104857600].
    #[arg(
        long = "transaction.state.log.segment.bytes",
        env = "BASALT_TRANSACTION_STATE_LOG_SEGMENT_BYTES"
    )]
    txn_segment_bytes: Option<i64>,
    /// `transaction.max.timeout.ms`: the longest `transaction.timeout.ms` a producer may ask
    /// for [default: 900000].
    #[arg(
        long = "transaction.max.timeout.ms",
        env = "BASALT_TRANSACTION_MAX_TIMEOUT_MS"
    )]
    txn_max_timeout: Option<i32>,
    /// `transactional.id.expiration.ms`: how long an idle transactional id is remembered
    /// [default: 604800000].
    #[arg(
        long = "transactional.id.expiration.ms",
        env = "BASALT_TRANSACTIONAL_ID_EXPIRATION_MS"
    )]
    txn_id_expiration: Option<i64>,
    /// `authorizer.class.name`: any non-empty name (Kafka's
    /// `org.apache.kafka.metadata.authorizer.StandardAuthorizer`, or `basalt`) turns ACL
    /// authorization on [default: none, every request allowed].
    #[arg(long = "authorizer.class.name", env = "BASALT_AUTHORIZER_CLASS_NAME")]
    authorizer_class_name: Option<String>,
    /// Turns ACL authorization on (as `authorizer.class.name=basalt`).
    #[arg(long = "authorizer", env = "BASALT_AUTHORIZER")]
    authorizer: bool,
    /// `super.users`: principals allowed everything, separated by `;` (`User:admin;User:ops`).
    #[arg(long = "super.users", env = "BASALT_SUPER_USERS")]
    super_users: Option<String>,
    /// `allow.everyone.if.no.acl.found`: allow a request on a resource no ACL names
    /// [default: false].
    #[arg(
        long = "allow.everyone.if.no.acl.found",
        env = "BASALT_ALLOW_EVERYONE_IF_NO_ACL_FOUND"
    )]
    allow_everyone: Option<bool>,
    /// `num.partitions`: partitions of auto-created topics [default: 1].
    #[arg(long = "num.partitions", env = "BASALT_NUM_PARTITIONS")]
    num_partitions: Option<i32>,
    /// `default.replication.factor`: replicas of auto-created topics and of topics created
    /// with -1; -1 is 3 once three nodes are live, else 1 [default: -1].
    #[arg(
        long = "default.replication.factor",
        env = "BASALT_DEFAULT_REPLICATION_FACTOR",
        allow_hyphen_values = true
    )]
    default_replication_factor: Option<i16>,
    /// `replica.lag.time.max.ms`: a follower that has not caught up with its leader for this
    /// long leaves the in-sync replicas [default: 30000].
    #[arg(
        long = "replica.lag.time.max.ms",
        env = "BASALT_REPLICA_LAG_TIME_MAX_MS"
    )]
    replica_lag_time_max_ms: Option<i64>,
    /// `broker.session.timeout.ms`: a node whose heartbeats stop for this long is fenced and
    /// its partitions move to other in-sync replicas [default: 9000].
    #[arg(
        long = "broker.session.timeout.ms",
        env = "BASALT_BROKER_SESSION_TIMEOUT_MS"
    )]
    broker_session_timeout_ms: Option<i64>,
    /// `auto.create.topics.enable` [default: true].
    #[arg(
        long = "auto.create.topics.enable",
        env = "BASALT_AUTO_CREATE_TOPICS_ENABLE"
    )]
    auto_create: Option<bool>,
    /// `delete.topic.enable` [default: true].
    #[arg(long = "delete.topic.enable", env = "BASALT_DELETE_TOPIC_ENABLE")]
    delete_topic: Option<bool>,
    /// `log.retention.ms`: default retention time; -1 keeps forever [default: 604800000].
    #[arg(
        long = "log.retention.ms",
        env = "BASALT_LOG_RETENTION_MS",
        allow_hyphen_values = true
    )]
    retention_ms: Option<i64>,
    /// `log.retention.bytes`: default size limit per partition; -1 is none [default: -1].
    #[arg(
        long = "log.retention.bytes",
        env = "BASALT_LOG_RETENTION_BYTES",
        allow_hyphen_values = true
    )]
    retention_bytes: Option<i64>,
    /// `log.segment.bytes` [default: 1073741824].
    #[arg(long = "log.segment.bytes", env = "BASALT_LOG_SEGMENT_BYTES")]
    segment_bytes: Option<i64>,
    /// `log.roll.ms` [default: 604800000].
    #[arg(long = "log.roll.ms", env = "BASALT_LOG_ROLL_MS")]
    roll_ms: Option<i64>,
    /// `log.index.interval.bytes` [default: 4096].
    #[arg(
        long = "log.index.interval.bytes",
        env = "BASALT_LOG_INDEX_INTERVAL_BYTES"
    )]
    index_interval: Option<i64>,
    /// `message.max.bytes`: largest record batch [default: 1048588].
    #[arg(long = "message.max.bytes", env = "BASALT_MESSAGE_MAX_BYTES")]
    message_max_bytes: Option<i64>,
    /// `log.message.timestamp.type`: CreateTime or LogAppendTime [default: CreateTime].
    #[arg(
        long = "log.message.timestamp.type",
        env = "BASALT_LOG_MESSAGE_TIMESTAMP_TYPE"
    )]
    timestamp_type: Option<String>,
    /// `log.flush.policy`: always (fsync before acks=all is answered, group commit),
    /// interval:<ms>, or os [default: always].
    #[arg(long = "log.flush.policy", env = "BASALT_LOG_FLUSH_POLICY")]
    flush_policy: Option<String>,
    /// `log.retention.check.interval.ms` [default: 300000].
    #[arg(
        long = "log.retention.check.interval.ms",
        env = "BASALT_LOG_RETENTION_CHECK_INTERVAL_MS"
    )]
    retention_check_ms: Option<u64>,
    /// `socket.request.max.bytes`: largest request [default: 104857600].
    #[arg(
        long = "socket.request.max.bytes",
        env = "BASALT_SOCKET_REQUEST_MAX_BYTES"
    )]
    request_max_bytes: Option<usize>,
    /// `max.connections`: connections over all listeners; more wait to be accepted
    /// (`listener.name.<name>.max.connections` in the file limits one listener, and closes
    /// connections over it) [default: 10000].
    #[arg(long = "max.connections", env = "BASALT_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// `listener.security.protocol.map`: NAME:PROTOCOL pairs, comma-separated, for listeners
    /// whose name is not a protocol (`EXTERNAL:SASL_SSL`).
    #[arg(
        long = "listener.security.protocol.map",
        env = "BASALT_LISTENER_SECURITY_PROTOCOL_MAP"
    )]
    protocol_map: Option<String>,
    /// `ssl.certificate.location`: PEM file with the server certificate chain (SSL, SASL_SSL).
    #[arg(
        long = "ssl.certificate.location",
        env = "BASALT_SSL_CERTIFICATE_LOCATION"
    )]
    ssl_certificate: Option<PathBuf>,
    /// `ssl.key.location`: PEM file with the server's private key.
    #[arg(long = "ssl.key.location", env = "BASALT_SSL_KEY_LOCATION")]
    ssl_key: Option<PathBuf>,
    /// `ssl.ca.location`: PEM file with the CAs that sign client certificates.
    #[arg(long = "ssl.ca.location", env = "BASALT_SSL_CA_LOCATION")]
    ssl_ca: Option<PathBuf>,
    /// `ssl.client.auth`: required, requested or none, for SSL listeners [default: none]; a
    /// SASL_SSL listener takes only its own `listener.name.NAME.ssl.client.auth`.
    #[arg(long = "ssl.client.auth", env = "BASALT_SSL_CLIENT_AUTH")]
    ssl_client_auth: Option<String>,
    /// `ssl.enabled.protocols`: comma-separated, of TLSv1.2 and TLSv1.3 [default:
    /// TLSv1.2,TLSv1.3].
    #[arg(long = "ssl.enabled.protocols", env = "BASALT_SSL_ENABLED_PROTOCOLS")]
    ssl_protocols: Option<String>,
    /// `sasl.enabled.mechanisms`: comma-separated, of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
    /// [default: SCRAM-SHA-256,SCRAM-SHA-512].
    #[arg(
        long = "sasl.enabled.mechanisms",
        env = "BASALT_SASL_ENABLED_MECHANISMS"
    )]
    sasl_mechanisms: Option<String>,
    /// `connections.max.reauth.ms`: SASL session lifetime, after which clients re-authenticate;
    /// 0 is never [default: 0].
    #[arg(
        long = "connections.max.reauth.ms",
        env = "BASALT_CONNECTIONS_MAX_REAUTH_MS"
    )]
    max_reauth_ms: Option<i64>,
    /// `connections.max.idle.ms`: idle connections are closed after this; -1 never
    /// [default: 600000].
    #[arg(
        long = "connections.max.idle.ms",
        env = "BASALT_CONNECTIONS_MAX_IDLE_MS",
        allow_hyphen_values = true
    )]
    max_idle_ms: Option<i64>,
    /// `max.connections.per.ip`: connections from one address over all listeners; more are
    /// closed [default: unlimited].
    #[arg(long = "max.connections.per.ip", env = "BASALT_MAX_CONNECTIONS_PER_IP")]
    max_connections_per_ip: Option<usize>,
    /// `max.connections.per.ip.overrides`: IP:COUNT pairs, comma-separated, for addresses with
    /// a limit of their own (`127.0.0.1:100,10.0.0.7:5`).
    #[arg(
        long = "max.connections.per.ip.overrides",
        env = "BASALT_MAX_CONNECTIONS_PER_IP_OVERRIDES"
    )]
    max_connections_per_ip_overrides: Option<String>,
    /// `max.connection.creation.rate`: new connections a second over all listeners; 0 is
    /// unlimited (`listener.name.<name>.max.connection.creation.rate` in the file limits one
    /// listener) [default: 0].
    #[arg(
        long = "max.connection.creation.rate",
        env = "BASALT_MAX_CONNECTION_CREATION_RATE"
    )]
    max_connection_rate: Option<u32>,
    /// `connection.failed.authentication.delay.ms`: delay before a failed login is answered
    /// [default: 100].
    #[arg(
        long = "connection.failed.authentication.delay.ms",
        env = "BASALT_CONNECTION_FAILED_AUTHENTICATION_DELAY_MS"
    )]
    failed_auth_delay_ms: Option<u64>,
    /// `connection.failed.authentication.max.per.minute` (Basalt): failed logins from one
    /// address in a minute after which its logins are refused without checking credentials
    /// [default: 20].
    #[arg(
        long = "connection.failed.authentication.max.per.minute",
        env = "BASALT_CONNECTION_FAILED_AUTHENTICATION_MAX_PER_MINUTE"
    )]
    max_failed_logins: Option<u32>,
    /// `sasl.server.max.receive.size`: largest frame before login [default: 524288].
    #[arg(
        long = "sasl.server.max.receive.size",
        env = "BASALT_SASL_SERVER_MAX_RECEIVE_SIZE"
    )]
    sasl_max_receive: Option<usize>,
    /// `bootstrap.user` (Basalt): NAME:PASSWORD of a user whose SCRAM credentials are created
    /// at start if the user does not exist yet.
    #[arg(
        long = "bootstrap.user",
        env = "BASALT_BOOTSTRAP_USER",
        hide_env_values = true
    )]
    bootstrap_user: Option<String>,
    /// `inter.broker.listener.name`: the listener of the other nodes this node fetches
    /// replicas from and sends transaction markers to; it must be one of this node's listeners
    /// [default: their PLAINTEXT listener, as the anonymous principal].
    #[arg(
        long = "inter.broker.listener.name",
        env = "BASALT_INTER_BROKER_LISTENER_NAME"
    )]
    inter_broker_listener: Option<String>,
    /// `sasl.mechanism.inter.broker.protocol`: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, for a
    /// SASL inter-broker listener [default: SCRAM-SHA-512].
    #[arg(
        long = "sasl.mechanism.inter.broker.protocol",
        env = "BASALT_SASL_MECHANISM_INTER_BROKER_PROTOCOL"
    )]
    inter_broker_mechanism: Option<String>,
    /// `inter.broker.user` (Basalt's; Kafka puts it in the listener's JAAS config):
    /// NAME:PASSWORD this node logs in as on a SASL inter-broker listener. The user needs a
    /// SCRAM credential (or PLAIN login) and, with an authorizer, a place in super.users.
    #[arg(
        long = "inter.broker.user",
        env = "BASALT_INTER_BROKER_USER",
        hide_env_values = true
    )]
    inter_broker_user: Option<String>,
    /// `controller.quorum.voters`: the metadata quorum, `ID@HOST:PORT,...` with this node among
    /// them [default: none, a quorum of this node alone].
    #[arg(
        long = "controller.quorum.voters",
        env = "BASALT_CONTROLLER_QUORUM_VOTERS"
    )]
    voters: Option<String>,
    /// `controller.listen` (Basalt): HOST:PORT this node serves the metadata quorum on
    /// [default: its own address in controller.quorum.voters]; required for a node outside the
    /// voters, which joins as an observer (it holds the metadata and hosts partitions, but does
    /// not vote).
    #[arg(long = "controller.listen", env = "BASALT_CONTROLLER_LISTEN")]
    controller_listen: Option<String>,
    /// `controller.security.protocol` (Basalt): PLAINTEXT or SSL for the metadata quorum's
    /// connections. With SSL every quorum connection is mutual TLS: each node presents
    /// ssl.certificate.location / ssl.key.location and accepts only nodes whose certificate
    /// ssl.ca.location signed (and whose name matches the address dialled) [default: PLAINTEXT].
    #[arg(
        long = "controller.security.protocol",
        env = "BASALT_CONTROLLER_SECURITY_PROTOCOL"
    )]
    controller_protocol: Option<String>,
    /// `metrics.listen` (Basalt): HOST:PORT of the Prometheus endpoint, `GET /metrics`
    /// [default: none, no endpoint].
    #[arg(long = "metrics.listen", env = "BASALT_METRICS_LISTEN")]
    metrics_listen: Option<String>,
}

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Settings from the config file, flattened to dotted names.
struct FileSettings(toml::Table);

impl FileSettings {
    fn load(path: Option<&PathBuf>) -> Result<Self, Error> {
        let Some(path) = path else {
            return Ok(FileSettings(toml::Table::new()));
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
        let table: toml::Table = text
            .parse()
            .map_err(|e| format!("config file {}: {e}", path.display()))?;
        let mut flat = toml::Table::new();
        flatten("", table, &mut flat);
        Ok(FileSettings(flat))
    }

    /// The value of `key` as a comma-separated list (a TOML array or a string), if present.
    fn get_list(&self, key: &str) -> Option<String> {
        match self.0.get(key)? {
            toml::Value::Array(items) => Some(
                items
                    .iter()
                    .map(|v| match v {
                        toml::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            toml::Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }
    }

    /// The value of `key` parsed as `T`, if the file has it.
    fn get<T: FromStr>(&self, key: &str) -> Result<Option<T>, Error>
    where
        T::Err: std::fmt::Display,
    {
        let Some(value) = self.0.get(key) else {
            return Ok(None);
        };
        let text = match value {
            toml::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        text.parse::<T>()
            .map(Some)
            .map_err(|e| format!("config file: invalid {key} = {text}: {e}").into())
    }
}

fn flatten(prefix: &str, table: toml::Table, out: &mut toml::Table) {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(t) => flatten(&key, t, out),
            v => {
                out.insert(key, v);
            }
        }
    }
}

/// One entry of `listeners` or `advertised.listeners`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerSpec {
    /// The listener's name.
    name: String,
    /// Its protocol.
    protocol: SecurityProtocol,
    /// HOST:PORT.
    address: String,
}

/// Parses `listeners` (or `advertised.listeners`): `NAME://HOST:PORT,...`; a bare `HOST:PORT`
/// is the PLAINTEXT listener.
fn parse_listeners(
    text: &str,
    map: &BTreeMap<String, SecurityProtocol>,
    key: &str,
) -> Result<Vec<ListenerSpec>, Error> {
    let mut out: Vec<ListenerSpec> = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, address) = match item.split_once("://") {
            Some((name, address)) => (name.to_ascii_uppercase(), address.to_owned()),
            None => ("PLAINTEXT".to_owned(), item.to_owned()),
        };
        let protocol = match map.get(&name) {
            Some(p) => *p,
            None => name.parse::<SecurityProtocol>().map_err(|_| {
                format!(
                    "{key}: listener {name} is not a security protocol and not in listener.security.protocol.map"
                )
            })?,
        };
        if !address.contains(':') {
            return Err(format!("{key}: {item:?} is not NAME://HOST:PORT").into());
        }
        if out.iter().any(|l| l.name == name) {
            return Err(format!("{key}: listener {name} is named twice").into());
        }
        out.push(ListenerSpec {
            name,
            protocol,
            address,
        });
    }
    if out.is_empty() {
        return Err(format!("{key} is empty").into());
    }
    Ok(out)
}

fn parse_protocol_map(text: &str) -> Result<BTreeMap<String, SecurityProtocol>, Error> {
    let mut map = BTreeMap::new();
    for pair in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, protocol) = pair.split_once(':').ok_or_else(|| {
            format!("listener.security.protocol.map: {pair:?} is not NAME:PROTOCOL")
        })?;
        map.insert(name.trim().to_ascii_uppercase(), protocol.trim().parse()?);
    }
    Ok(map)
}

/// TLS and SASL settings and connection limits of one listener.
#[derive(Debug, Clone)]
struct Security {
    tls: Option<TlsSettings>,
    mechanisms: Vec<Mechanism>,
    /// `listener.name.<name>.max.connections`.
    max_connections: usize,
    /// `listener.name.<name>.max.connection.creation.rate`.
    max_connection_rate: u32,
    /// `connections.max.reauth.ms`, or this listener's override.
    max_reauth_ms: i64,
    /// `connections.max.idle.ms`, or this listener's override.
    max_idle_ms: i64,
}

/// Everything `serve` needs, resolved.
pub struct Resolved {
    listeners: Vec<(ListenerSpec, Security)>,
    advertised: Vec<ListenerSpec>,
    failed_auth_delay_ms: u64,
    max_failed_logins: u32,
    sasl_max_receive: usize,
    bootstrap_user: Option<(String, String)>,
    data_dir: PathBuf,
    broker: BrokerConfig,
    limits: ServerLimits,
    voters: Vec<Voter>,
    controller_listen: Option<String>,
    quorum_tls: Option<basalt_cluster::metadata::QuorumTls>,
    metrics_listen: Option<String>,
}

/// Resolves the settings: flag or env, else file, else default.
pub fn resolve(args: ServeArgs) -> Result<Resolved, Error> {
    let file = FileSettings::load(args.config.as_ref())?;
    let d = BrokerConfig::default();
    let dg = d.groups.clone();
    macro_rules! pick {
        ($cli:expr, $key:literal, $default:expr) => {
            match $cli {
                Some(v) => v,
                None => file.get($key)?.unwrap_or($default),
            }
        };
    }
    let protocol_map = match args.protocol_map {
        Some(m) => parse_protocol_map(&m)?,
        None => match file.get_list("listener.security.protocol.map") {
            Some(m) => parse_protocol_map(&m)?,
            None => BTreeMap::new(),
        },
    };
    let listen: String = match args.listen {
        Some(l) => l,
        None => file
            .get_list("listeners")
            .unwrap_or_else(|| "127.0.0.1:9092".to_owned()),
    };
    let listeners = parse_listeners(&listen, &protocol_map, "listeners")?;
    let advertised = match args
        .advertised
        .or_else(|| file.get_list("advertised.listeners"))
    {
        None => Vec::new(),
        Some(a) if !a.contains("://") && !a.contains(',') => {
            // A bare HOST:PORT advertises the first listener, as `--advertised` always did.
            vec![ListenerSpec {
                address: a,
                ..listeners[0].clone()
            }]
        }
        Some(a) => parse_listeners(&a, &protocol_map, "advertised.listeners")?,
    };
    for a in &advertised {
        if !listeners.iter().any(|l| l.name == a.name) {
            return Err(format!(
                "advertised.listeners names {}, which is not in listeners",
                a.name
            )
            .into());
        }
    }
    // Per-listener overrides (`listener.name.<name>.<key>`) come from the file only.
    let per_listener = |name: &str, key: &str| -> Option<String> {
        file.get_list(&format!(
            "listener.name.{}.{key}",
            name.to_ascii_lowercase()
        ))
    };
    let global = |cli: Option<String>, key: &str| cli.or_else(|| file.get_list(key));
    let cert = global(
        args.ssl_certificate.map(|p| p.display().to_string()),
        "ssl.certificate.location",
    );
    let key = global(
        args.ssl_key.map(|p| p.display().to_string()),
        "ssl.key.location",
    );
    let ca = global(
        args.ssl_ca.map(|p| p.display().to_string()),
        "ssl.ca.location",
    );
    let client_auth = global(args.ssl_client_auth, "ssl.client.auth");
    let protocols = global(args.ssl_protocols, "ssl.enabled.protocols");
    let mechanisms = global(args.sasl_mechanisms, "sasl.enabled.mechanisms");
    let max_reauth_ms: i64 = pick!(args.max_reauth_ms, "connections.max.reauth.ms", 0);
    let max_idle_ms: i64 = pick!(args.max_idle_ms, "connections.max.idle.ms", 600_000);
    // A per-listener number from the file, else `default`.
    fn number<T: FromStr>(value: Option<String>, key: &str, default: T) -> Result<T, Error>
    where
        T::Err: std::fmt::Display,
    {
        match value {
            None => Ok(default),
            Some(text) => text
                .trim()
                .parse()
                .map_err(|e| format!("config file: invalid {key} = {text}: {e}").into()),
        }
    }
    let mut secured = Vec::new();
    for l in listeners {
        let name = l.name.clone();
        let full = |k: &str| format!("listener.name.{}.{k}", name.to_ascii_lowercase());
        let max_connections = number(
            per_listener(&name, "max.connections"),
            &full("max.connections"),
            usize::MAX,
        )?;
        let max_connection_rate = number(
            per_listener(&name, "max.connection.creation.rate"),
            &full("max.connection.creation.rate"),
            0u32,
        )?;
        let listener_reauth_ms = number(
            per_listener(&name, "connections.max.reauth.ms"),
            &full("connections.max.reauth.ms"),
            max_reauth_ms,
        )?;
        let listener_idle_ms = number(
            per_listener(&name, "connections.max.idle.ms"),
            &full("connections.max.idle.ms"),
            max_idle_ms,
        )?;
        let tls = if l.protocol.is_tls() {
            let pick = |k: &str, g: &Option<String>| per_listener(&name, k).or_else(|| g.clone());
            let (Some(certificate), Some(key)) = (
                pick("ssl.certificate.location", &cert),
                pick("ssl.key.location", &key),
            ) else {
                return Err(format!(
                    "listener {name} ({}) needs ssl.certificate.location and ssl.key.location",
                    l.protocol
                )
                .into());
            };
            // As in Kafka (KIP-684), the global `ssl.client.auth` is for SSL listeners: SASL
            // logins authenticate a SASL_SSL listener's clients, which ask for certificates only
            // with the listener's own `listener.name.NAME.ssl.client.auth`.
            let client_auth = if l.protocol == SecurityProtocol::SaslSsl {
                per_listener(&name, "ssl.client.auth")
            } else {
                pick("ssl.client.auth", &client_auth)
            };
            let client_auth: ClientAuth = client_auth.as_deref().unwrap_or("none").parse()?;
            let protocols = pick("ssl.enabled.protocols", &protocols)
                .unwrap_or_else(|| "TLSv1.2,TLSv1.3".to_owned())
                .split(',')
                .filter(|p| !p.trim().is_empty())
                .map(str::parse)
                .collect::<Result<Vec<TlsVersion>, String>>()?;
            if protocols.is_empty() {
                return Err(format!("listener {name}: ssl.enabled.protocols is empty").into());
            }
            Some(TlsSettings {
                certificate: certificate.into(),
                key: key.into(),
                ca: pick("ssl.ca.location", &ca).map(PathBuf::from),
                client_auth,
                protocols,
            })
        } else {
            None
        };
        let mechanisms = if l.protocol.is_sasl() {
            let text = per_listener(&name, "sasl.enabled.mechanisms")
                .or_else(|| mechanisms.clone())
                .unwrap_or_else(|| "SCRAM-SHA-256,SCRAM-SHA-512".to_owned());
            let mut list = Vec::new();
            for m in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                list.push(Mechanism::from_name(m).ok_or_else(|| {
                    format!(
                        "sasl.enabled.mechanisms: {m:?} is not supported (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)"
                    )
                })?);
            }
            if list.is_empty() {
                return Err(format!("listener {name}: sasl.enabled.mechanisms is empty").into());
            }
            list
        } else {
            Vec::new()
        };
        secured.push((
            l,
            Security {
                tls,
                mechanisms,
                max_connections,
                max_connection_rate,
                max_reauth_ms: listener_reauth_ms,
                max_idle_ms: listener_idle_ms,
            },
        ));
    }
    let inter_broker = inter_broker_security(
        &secured,
        args.inter_broker_listener
            .or_else(|| file.get_list("inter.broker.listener.name")),
        args.inter_broker_mechanism
            .or_else(|| file.get_list("sasl.mechanism.inter.broker.protocol")),
        args.inter_broker_user
            .or_else(|| file.get_list("inter.broker.user")),
        (cert.as_deref(), key.as_deref(), ca.as_deref()),
    )?;
    let quorum_tls = match args
        .controller_protocol
        .or_else(|| file.get_list("controller.security.protocol"))
        .as_deref()
        .map(str::trim)
    {
        None | Some("PLAINTEXT") => None,
        Some("SSL") => {
            let (Some(cert), Some(key), Some(ca)) =
                (cert.as_deref(), key.as_deref(), ca.as_deref())
            else {
                return Err(
                    "controller.security.protocol SSL needs ssl.certificate.location, \
                            ssl.key.location and ssl.ca.location"
                        .into(),
                );
            };
            Some(quorum_tls(cert, key, ca)?)
        }
        Some(other) => {
            return Err(format!(
                "controller.security.protocol must be PLAINTEXT or SSL, not {other:?}"
            )
            .into());
        }
    };
    let bootstrap_user = match args
        .bootstrap_user
        .or_else(|| file.get_list("bootstrap.user"))
    {
        None => None,
        Some(s) => {
            let (name, password) = s
                .split_once(':')
                .filter(|(n, p)| !n.is_empty() && !p.is_empty())
                .ok_or("bootstrap.user (BASALT_BOOTSTRAP_USER) must be NAME:PASSWORD")?;
            Some((name.to_owned(), password.to_owned()))
        }
    };
    let flush: String = pick!(
        args.flush_policy,
        "log.flush.policy",
        d.log_flush_policy.to_string()
    );
    let log_flush_policy = FsyncPolicy::parse(&flush).ok_or_else(|| {
        format!("log.flush.policy must be always, os or interval:<ms>, not {flush:?}")
    })?;
    let timestamp_type: String = pick!(
        args.timestamp_type,
        "log.message.timestamp.type",
        d.log_message_timestamp_type.clone()
    );
    if timestamp_type != "CreateTime" && timestamp_type != "LogAppendTime" {
        return Err(format!(
            "log.message.timestamp.type must be CreateTime or LogAppendTime, not {timestamp_type:?}"
        )
        .into());
    }
    let authorizer_class: String = pick!(
        args.authorizer_class_name,
        "authorizer.class.name",
        String::new()
    );
    let super_users: String = pick!(args.super_users, "super.users", String::new());
    let authorizer = AuthorizerConfig {
        enabled: args.authorizer || !authorizer_class.trim().is_empty(),
        super_users: AuthorizerConfig::parse_super_users(&super_users),
        allow_everyone_if_no_acl_found: pick!(
            args.allow_everyone,
            "allow.everyone.if.no.acl.found",
            false
        ),
    };
    let broker = BrokerConfig {
        authorizer,
        node_id: pick!(args.node_id, "node.id", d.node_id),
        cluster_id: pick!(args.cluster_id, "cluster.id", d.cluster_id.clone()),
        rack: match args.rack {
            Some(r) => Some(r),
            None => file.get("broker.rack")?,
        },
        num_partitions: pick!(args.num_partitions, "num.partitions", d.num_partitions),
        default_replication_factor: pick!(
            args.default_replication_factor,
            "default.replication.factor",
            d.default_replication_factor
        ),
        replica_lag_time_max_ms: pick!(
            args.replica_lag_time_max_ms,
            "replica.lag.time.max.ms",
            d.replica_lag_time_max_ms
        ),
        broker_session_timeout_ms: pick!(
            args.broker_session_timeout_ms,
            "broker.session.timeout.ms",
            d.broker_session_timeout_ms
        ),
        auto_create_topics_enable: pick!(
            args.auto_create,
            "auto.create.topics.enable",
            d.auto_create_topics_enable
        ),
        delete_topic_enable: pick!(
            args.delete_topic,
            "delete.topic.enable",
            d.delete_topic_enable
        ),
        log_retention_ms: pick!(args.retention_ms, "log.retention.ms", d.log_retention_ms),
        log_retention_bytes: pick!(
            args.retention_bytes,
            "log.retention.bytes",
            d.log_retention_bytes
        ),
        log_segment_bytes: pick!(args.segment_bytes, "log.segment.bytes", d.log_segment_bytes),
        log_roll_ms: pick!(args.roll_ms, "log.roll.ms", d.log_roll_ms),
        log_index_interval_bytes: pick!(
            args.index_interval,
            "log.index.interval.bytes",
            d.log_index_interval_bytes
        ),
        message_max_bytes: pick!(
            args.message_max_bytes,
            "message.max.bytes",
            d.message_max_bytes
        ),
        log_message_timestamp_type: timestamp_type,
        log_flush_policy,
        log_retention_check_interval_ms: pick!(
            args.retention_check_ms,
            "log.retention.check.interval.ms",
            d.log_retention_check_interval_ms
        ),
        offsets_topic_num_partitions: pick!(
            args.offsets_partitions,
            "offsets.topic.num.partitions",
            d.offsets_topic_num_partitions
        ),
        offsets_topic_segment_bytes: pick!(
            args.offsets_segment_bytes,
            "offsets.topic.segment.bytes",
            d.offsets_topic_segment_bytes
        ),
        groups: GroupConfig {
            initial_rebalance_delay_ms: pick!(
                args.group_initial_delay,
                "group.initial.rebalance.delay.ms",
                dg.initial_rebalance_delay_ms
            ),
            min_session_timeout_ms: pick!(
                args.group_min_session,
                "group.min.session.timeout.ms",
                dg.min_session_timeout_ms
            ),
            max_session_timeout_ms: pick!(
                args.group_max_session,
                "group.max.session.timeout.ms",
                dg.max_session_timeout_ms
            ),
            consumer_session_timeout_ms: pick!(
                args.group_consumer_session,
                "group.consumer.session.timeout.ms",
                dg.consumer_session_timeout_ms
            ),
            consumer_heartbeat_interval_ms: pick!(
                args.group_consumer_heartbeat,
                "group.consumer.heartbeat.interval.ms",
                dg.consumer_heartbeat_interval_ms
            ),
            offsets_retention_ms: pick!(
                args.offsets_retention_minutes,
                "offsets.retention.minutes",
                dg.offsets_retention_ms / 60_000
            )
            .saturating_mul(60_000),
            ..dg.clone()
        },
        transaction_state_num_partitions: pick!(
            args.txn_partitions,
            "transaction.state.log.num.partitions",
            d.transaction_state_num_partitions
        ),
        transaction_state_segment_bytes: pick!(
            args.txn_segment_bytes,
            "transaction.state.log.segment.bytes",
            d.transaction_state_segment_bytes
        ),
        shares: ShareConfig {
            session_timeout_ms: pick!(
                None,
                "group.share.session.timeout.ms",
                d.shares.session_timeout_ms
            ),
            heartbeat_interval_ms: pick!(
                None,
                "group.share.heartbeat.interval.ms",
                d.shares.heartbeat_interval_ms
            ),
            max_size: pick!(None, "group.share.max.size", d.shares.max_size),
            record_lock_duration_ms: pick!(
                None,
                "group.share.record.lock.duration.ms",
                d.shares.record_lock_duration_ms
            ),
            delivery_limit: pick!(
                None,
                "group.share.delivery.count.limit",
                d.shares.delivery_limit
            ),
            max_in_flight: pick!(
                None,
                "group.share.partition.max.record.locks",
                d.shares.max_in_flight
            ),
        },
        txns: TxnConfig {
            max_timeout_ms: pick!(
                args.txn_max_timeout,
                "transaction.max.timeout.ms",
                d.txns.max_timeout_ms
            ),
            id_expiration_ms: pick!(
                args.txn_id_expiration,
                "transactional.id.expiration.ms",
                d.txns.id_expiration_ms
            ),
        },
        ..d
    };
    if broker.shares.delivery_limit < 1 || broker.shares.max_in_flight < 1 {
        return Err(
            "group.share.delivery.count.limit and group.share.partition.max.record.locks must be at least 1"
                .into(),
        );
    }
    if broker.transaction_state_segment_bytes < 1024 {
        return Err("transaction.state.log.segment.bytes must be at least 1024".into());
    }
    if !(1..=1000).contains(&broker.transaction_state_num_partitions) {
        return Err("transaction.state.log.num.partitions must be between 1 and 1000".into());
    }
    if broker.txns.max_timeout_ms < 1 {
        return Err("transaction.max.timeout.ms must be at least 1".into());
    }
    if broker.offsets_topic_segment_bytes < 1024 {
        return Err("offsets.topic.segment.bytes must be at least 1024".into());
    }
    if !(1..=1000).contains(&broker.offsets_topic_num_partitions) {
        return Err("offsets.topic.num.partitions must be between 1 and 1000".into());
    }
    if broker.num_partitions < 1 {
        return Err("num.partitions must be at least 1".into());
    }
    let limits = ServerLimits {
        max_frame_bytes: pick!(
            args.request_max_bytes,
            "socket.request.max.bytes",
            ServerLimits::default().max_frame_bytes
        ),
        max_connections: pick!(
            args.max_connections,
            "max.connections",
            ServerLimits::default().max_connections
        ),
        max_connections_per_ip: PerIpLimit {
            default: pick!(
                args.max_connections_per_ip,
                "max.connections.per.ip",
                usize::MAX
            ),
            overrides: match args
                .max_connections_per_ip_overrides
                .or_else(|| file.get_list("max.connections.per.ip.overrides"))
            {
                Some(text) => PerIpLimit::parse_overrides(&text)?,
                None => Default::default(),
            },
        },
        max_connection_creation_rate: pick!(
            args.max_connection_rate,
            "max.connection.creation.rate",
            0
        ),
        ..ServerLimits::default()
    };
    let mut broker = broker;
    broker.connections_max_reauth_ms = max_reauth_ms;
    broker.inter_broker = inter_broker;
    Ok(Resolved {
        listeners: secured,
        advertised,
        max_failed_logins: pick!(
            args.max_failed_logins,
            "connection.failed.authentication.max.per.minute",
            20
        ),
        failed_auth_delay_ms: pick!(
            args.failed_auth_delay_ms,
            "connection.failed.authentication.delay.ms",
            100
        ),
        sasl_max_receive: pick!(
            args.sasl_max_receive,
            "sasl.server.max.receive.size",
            524_288
        ),
        bootstrap_user,
        voters: parse_voters(
            &args
                .voters
                .or(file.get::<String>("controller.quorum.voters")?)
                .unwrap_or_default(),
        )?,
        controller_listen: match args.controller_listen {
            Some(a) => Some(a),
            None => file.get("controller.listen")?,
        },
        quorum_tls,
        metrics_listen: match args.metrics_listen {
            Some(a) => Some(a),
            None => file.get("metrics.listen")?,
        },
        data_dir: pick!(args.data_dir, "log.dirs", PathBuf::from("basalt-data")),
        broker,
        limits,
    })
}

/// Runs the broker until SIGINT or SIGTERM, then shuts down cleanly.
pub fn run(args: ServeArgs) -> Result<(), Error> {
    let resolved = resolve(args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("basalt-worker")
        .build()?;
    runtime.block_on(serve(resolved))
}

async fn serve(mut r: Resolved) -> Result<(), Error> {
    // Bind every listener first, so a port taken fails before anything is opened.
    let mut bound = Vec::new();
    for (spec, security) in &r.listeners {
        let listener = tokio::net::TcpListener::bind(&spec.address)
            .await
            .map_err(|e| format!("cannot listen on {} ({}): {e}", spec.address, spec.name))?;
        let local: SocketAddr = listener.local_addr()?;
        bound.push((listener, local, spec.clone(), security.clone()));
    }
    for (i, (_, local, spec, _)) in bound.iter().enumerate() {
        let advertised = r
            .advertised
            .iter()
            .find(|a| a.name == spec.name)
            .map_or_else(|| local.to_string(), |a| a.address.clone());
        let (host, port) = advertised
            .rsplit_once(':')
            .ok_or_else(|| format!("advertised address {advertised:?} is not HOST:PORT"))?;
        let host = host.trim_matches(['[', ']']).to_owned();
        let port: i32 = port
            .parse()
            .map_err(|_| format!("advertised port {port:?} is not a number"))?;
        if i == 0 {
            r.broker.advertised_host = host.clone();
            r.broker.advertised_port = port;
        }
        r.broker
            .advertised_listeners
            .insert(spec.name.clone(), (host, port));
    }
    let data_dir = r.data_dir.clone();
    let endpoints = bound
        .iter()
        .map(|(_, _, spec, _)| {
            let (host, port) = &r.broker.advertised_listeners[&spec.name];
            Ok(Endpoint {
                name: spec.name.clone(),
                host: host.clone(),
                port: u16::try_from(*port)
                    .map_err(|_| format!("advertised port {port} is out of range"))?,
                security_protocol: spec.protocol.name().to_owned(),
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let quorum = Arc::new(start_quorum(&r, &data_dir).await?);
    let link = join(Arc::clone(&quorum), endpoints, r.broker.rack.clone()).await?;
    let broker = {
        let config = r.broker.clone();
        let dir = data_dir.clone();
        tokio::task::spawn_blocking(move || Broker::open_clustered(&dir, config, link)).await??
    };
    if let Some((user, password)) = r.bootstrap_user.take() {
        let b = Arc::clone(&broker);
        let name = user.clone();
        let created = tokio::task::spawn_blocking(move || b.ensure_user(&name, &password))
            .await?
            .map_err(|e| format!("cannot create the bootstrap user {user}: {}", e.message))?;
        if created {
            tracing::info!(%user, "created the bootstrap user (SCRAM-SHA-256 and SCRAM-SHA-512)");
        }
    }
    let first_local = bound.first().map(|b| b.1).ok_or("no listener")?;
    let mut listeners = Vec::new();
    for (listener, local, spec, security) in bound {
        let tls = match security.tls {
            Some(settings) => Some(Arc::new(
                TlsSource::new(settings).map_err(|e| format!("listener {}: {e}", spec.name))?,
            )),
            None => None,
        };
        let sasl = spec.protocol.is_sasl().then(|| {
            let mut sasl = SaslConfig::new(
                security.mechanisms.clone(),
                Arc::clone(broker.credentials()) as Arc<dyn basalt_server::CredentialSource>,
            );
            sasl.max_reauth_ms = security.max_reauth_ms;
            sasl.max_failures_per_minute = r.max_failed_logins;
            sasl.failed_authentication_delay =
                std::time::Duration::from_millis(r.failed_auth_delay_ms);
            sasl.max_receive_bytes = r.sasl_max_receive;
            Arc::new(sasl)
        });
        let mut config = ListenerConfig::new(spec.name.clone(), spec.protocol, tls, sasl)?;
        config.max_connections = security.max_connections;
        config.max_connection_creation_rate = security.max_connection_rate;
        config.max_idle = u64::try_from(security.max_idle_ms)
            .ok()
            .map(std::time::Duration::from_millis);
        let (host, port) = &r.broker.advertised_listeners[&spec.name];
        tracing::info!(
            listener = %spec.name,
            protocol = %spec.protocol,
            listen = %local,
            advertised = %format!("{host}:{port}"),
            "listening"
        );
        listeners.push((listener, config));
    }
    broker.spawn_background();
    broker.spawn_cluster();
    if let Some(listen) = &r.metrics_listen {
        crate::metrics::serve(listen, Arc::clone(&broker)).await?;
    }
    tracing::info!(
        listen = %first_local,
        data_dir = %data_dir.display(),
        flush_policy = %r.broker.log_flush_policy,
        authorizer = r.broker.authorizer.enabled,
        "basalt is serving the Kafka protocol"
    );
    let moving = Arc::clone(&broker);
    let stop = async move {
        shutdown_signal().await;
        // Controlled shutdown: leadership moves to other replicas while clients can still
        // reach this node and be told where it went.
        moving.controlled_shutdown().await;
    };
    basalt_server::serve_listeners(listeners, Arc::clone(&broker), r.limits, stop).await;
    tracing::info!("syncing data and writing the clean-shutdown marker");
    let b = Arc::clone(&broker);
    tokio::task::spawn_blocking(move || b.shutdown()).await??;
    quorum.shutdown().await;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// How this node reaches the others (`inter.broker.listener.name`): the listener, which must be
/// one of this node's, with the TLS client settings (the CAs of `ssl.ca.location`, and this
/// node's certificate for listeners that ask for one) and the SASL login it needs.
fn inter_broker_security(
    listeners: &[(ListenerSpec, Security)],
    name: Option<String>,
    mechanism: Option<String>,
    user: Option<String>,
    (cert, key, ca): (Option<&str>, Option<&str>, Option<&str>),
) -> Result<basalt_broker::peer::PeerSecurity, Error> {
    let Some(name) = name.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty()) else {
        return Ok(Default::default());
    };
    let (spec, security) = listeners
        .iter()
        .find(|(l, _)| l.name == name)
        .ok_or_else(|| format!("inter.broker.listener.name {name} is not one of the listeners"))?;
    let tls = if spec.protocol.is_tls() {
        let ca = security
            .tls
            .as_ref()
            .and_then(|t| t.ca.as_ref().map(|p| p.display().to_string()))
            .or_else(|| ca.map(str::to_owned))
            .ok_or_else(|| {
                format!("inter-broker listener {name} uses TLS: set ssl.ca.location to the CA that signed the nodes' certificates")
            })?;
        Some(Arc::new(tls_client(&ca, cert.zip(key))?))
    } else {
        None
    };
    let sasl = if spec.protocol.is_sasl() {
        let text = mechanism.unwrap_or_else(|| "SCRAM-SHA-512".to_owned());
        let mechanism = Mechanism::from_name(text.trim()).ok_or_else(|| {
            format!("sasl.mechanism.inter.broker.protocol: {text:?} is not supported")
        })?;
        let (user, password) = user
            .as_deref()
            .and_then(|u| u.split_once(':'))
            .filter(|(n, p)| !n.is_empty() && !p.is_empty())
            .ok_or_else(|| {
                format!("inter-broker listener {name} uses SASL: set inter.broker.user (BASALT_INTER_BROKER_USER) to NAME:PASSWORD")
            })?;
        Some((mechanism, user.to_owned(), password.to_owned()))
    } else {
        None
    };
    Ok(basalt_broker::peer::PeerSecurity {
        listener: Some(name),
        tls,
        sasl,
    })
}

/// Mutual TLS for the metadata quorum: this node's certificate both ways, and only peers whose
/// certificate the CAs in `ca` signed (the listeners' acceptor with `ssl.client.auth=required`).
fn quorum_tls(
    cert: &str,
    key: &str,
    ca: &str,
) -> Result<basalt_cluster::metadata::QuorumTls, Error> {
    let server = TlsSource::new(TlsSettings {
        certificate: cert.into(),
        key: key.into(),
        ca: Some(ca.into()),
        client_auth: ClientAuth::Required,
        protocols: Vec::new(),
    })
    .map_err(|e| format!("controller.security.protocol SSL: {e}"))?;
    Ok(basalt_cluster::metadata::QuorumTls {
        server: server.acceptor(),
        client: Arc::new(tls_client(ca, Some((cert, key)))?),
    })
}

/// A rustls client trusting the CAs in `ca` and, given `identity` (certificate and key PEM
/// files), presenting it when a listener asks for a client certificate.
fn tls_client(ca: &str, identity: Option<(&str, &str)>) -> Result<rustls::ClientConfig, Error> {
    let identity = identity.map(|(c, k)| (std::path::Path::new(c), std::path::Path::new(k)));
    basalt_server::client_config(std::path::Path::new(ca), identity)
        .map_err(|e| e.to_string().into())
}

/// Starts this node's member of the metadata quorum under `<data>/metadata` and waits until the
/// quorum has a leader. Without voters it is a quorum of this node alone, on a loopback port.
async fn start_quorum(r: &Resolved, data_dir: &std::path::Path) -> Result<MetadataQuorum, Error> {
    let node_id = r.broker.node_id;
    let alone = r.voters.is_empty();
    let bind = match (&r.controller_listen, alone) {
        (Some(a), _) => a.clone(),
        (None, true) => "127.0.0.1:0".to_owned(),
        (None, false) => r
            .voters
            .iter()
            .find(|v| v.id == node_id)
            .map(|v| v.addr.clone())
            .ok_or_else(|| {
                format!(
                    "node {node_id} is not one of controller.quorum.voters: give \
                     --controller.listen HOST:PORT, reachable from the voters, to join as an \
                     observer"
                )
            })?,
    };
    let bind: SocketAddr = tokio::net::lookup_host(&bind)
        .await
        .map_err(|e| format!("controller.listen {bind:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("controller.listen {bind:?} resolves to no address"))?;
    let settings = if alone {
        // Nobody to wait for: elect the one voter quickly after a restart.
        QuorumSettings {
            heartbeat_interval_ms: 50,
            election_timeout_min_ms: 150,
            election_timeout_max_ms: 300,
            ..QuorumSettings::default()
        }
    } else {
        QuorumSettings::default()
    };
    let dir = data_dir.join("metadata");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let quorum = MetadataQuorum::start(
        QuorumOptions {
            node_id,
            voters: r.voters.clone(),
            data_dir: dir,
            settings,
            tls: r.quorum_tls.clone(),
        },
        bind,
    )
    .await?;
    tracing::info!(node_id, listen = %quorum.local_addr(), voters = r.voters.len().max(1), "metadata quorum started");
    let timeout = std::time::Duration::from_secs(if alone { 30 } else { 120 });
    let leader = wait_for_leader(&quorum, timeout).await?;
    tracing::info!(leader, "metadata quorum has a leader");
    Ok(quorum)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGTERM");
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    tracing::info!("shutdown requested");
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn resolve_file(toml: &str) -> Resolved {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("basalt.toml");
        std::fs::write(&path, toml).unwrap();
        let cli = Cli::try_parse_from(["serve", "--config", path.to_str().unwrap()]).unwrap();
        resolve(cli.serve).unwrap()
    }

    #[test]
    fn connection_limits_are_read_per_listener_and_broker_wide() {
        let r = resolve_file(
            r#"
listeners = "INTERNAL://127.0.0.1:0,EXTERNAL://127.0.0.1:0"
"listener.security.protocol.map" = "INTERNAL:PLAINTEXT,EXTERNAL:SASL_PLAINTEXT"
"max.connections" = 500
"max.connections.per.ip" = 3
"max.connections.per.ip.overrides" = "127.0.0.1:10,[::1]:20"
"max.connection.creation.rate" = 7
"connections.max.reauth.ms" = 60000
"connection.failed.authentication.max.per.minute" = 5
listener.name.external."max.connections" = 2
listener.name.external."max.connection.creation.rate" = 1
listener.name.internal."connections.max.idle.ms" = -1
listener.name.external."connections.max.reauth.ms" = 1000
"#,
        );
        assert_eq!(r.limits.max_connections, 500);
        assert_eq!(r.limits.max_connection_creation_rate, 7);
        assert_eq!(r.limits.max_connections_per_ip.default, 3);
        assert_eq!(
            r.limits
                .max_connections_per_ip
                .of("127.0.0.1".parse().unwrap()),
            10
        );
        assert_eq!(
            r.limits.max_connections_per_ip.of("::1".parse().unwrap()),
            20
        );
        assert_eq!(r.max_failed_logins, 5);
        let (internal, external) = (&r.listeners[0].1, &r.listeners[1].1);
        assert_eq!(r.listeners[0].0.name, "INTERNAL");
        assert_eq!(internal.max_connections, usize::MAX);
        assert_eq!(internal.max_connection_rate, 0);
        assert_eq!(internal.max_idle_ms, -1);
        assert_eq!(internal.max_reauth_ms, 60_000);
        assert_eq!(external.max_connections, 2);
        assert_eq!(external.max_connection_rate, 1);
        assert_eq!(external.max_idle_ms, 600_000);
        assert_eq!(external.max_reauth_ms, 1000);
    }

    #[test]
    fn ssl_client_auth_is_for_ssl_listeners_and_a_sasl_ssl_listener_takes_its_own() {
        let auth = |toml: &str| -> Vec<(String, ClientAuth)> {
            resolve_file(toml)
                .listeners
                .iter()
                .map(|(spec, security)| {
                    let tls = security.tls.as_ref().unwrap();
                    (spec.name.clone(), tls.client_auth)
                })
                .collect()
        };
        let base = r#"
listeners = "SSL://127.0.0.1:0,SASL_SSL://127.0.0.1:0"
"ssl.certificate.location" = "server.pem"
"ssl.key.location" = "server-key.pem"
"ssl.ca.location" = "ca.pem"
"ssl.client.auth" = "required"
"#;
        assert_eq!(
            auth(base),
            [
                ("SSL".to_owned(), ClientAuth::Required),
                ("SASL_SSL".to_owned(), ClientAuth::None)
            ]
        );
        let both = format!("{base}listener.name.sasl_ssl.\"ssl.client.auth\" = \"requested\"\n");
        assert_eq!(
            auth(&both)[1],
            ("SASL_SSL".to_owned(), ClientAuth::Requested)
        );
    }

    #[test]
    fn quorum_voters_are_read_and_checked() {
        let r = resolve_file(
            r#"
"node.id" = 2
"controller.quorum.voters" = "1@127.0.0.1:9191, 2@127.0.0.1:9192"
"controller.listen" = "0.0.0.0:9192"
"#,
        );
        assert_eq!(r.broker.node_id, 2);
        let voters: Vec<(i32, &str)> = r.voters.iter().map(|v| (v.id, v.addr.as_str())).collect();
        assert_eq!(voters, [(1, "127.0.0.1:9191"), (2, "127.0.0.1:9192")]);
        assert_eq!(r.controller_listen.as_deref(), Some("0.0.0.0:9192"));
        assert!(resolve_file("").voters.is_empty());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("basalt.toml");
        for bad in ["1@nohost", "x@h:1", "1@h:1,1@h:2"] {
            std::fs::write(&path, format!("\"controller.quorum.voters\" = \"{bad}\"")).unwrap();
            let cli = Cli::try_parse_from(["serve", "--config", path.to_str().unwrap()]).unwrap();
            assert!(resolve(cli.serve).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_connection_limits_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("basalt.toml");
        for bad in [
            "\"max.connections.per.ip.overrides\" = \"localhost:3\"",
            "listener.name.plaintext.\"max.connections\" = \"many\"",
        ] {
            std::fs::write(&path, bad).unwrap();
            let cli = Cli::try_parse_from(["serve", "--config", path.to_str().unwrap()]).unwrap();
            assert!(resolve(cli.serve).is_err(), "{bad}");
        }
    }
}
