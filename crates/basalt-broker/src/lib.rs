//! Basalt's Kafka broker on one node: topics and their partitions, idempotent producer state,
//! and one handler per Kafka API (`handlers/`), behind the [`basalt_server::Handler`] trait.
//!
//! The broker owns the [`Storage`] of its data directory and the topic metadata next to it. It
//! turns wire types into storage calls and storage facts into Kafka error codes (in `errors` only).
//!
//! # Invariants
//! - `BRK-1`: the ApiVersions table is generated from the handler registry
//!   ([`handlers::SUPPORTED`]), so the broker never advertises a version it does not handle.
//! - `BRK-2`: topic creation, deletion, partition growth and config changes are serialised (under
//!   `topic_ops`) and persisted in `topics.json` before they are answered or take effect; with a
//!   metadata quorum ([`cluster`]) they are committed by the quorum instead, and `topics.json`
//!   is this node's copy of the image's topics (`CLU-1`).
//! - `BRK-3`: no lock is held across an `.await`.
//! - `BRK-4`: ACL and SCRAM credential changes are serialised (under `acl_ops` and the
//!   credential store's lock) and persisted before they are answered or take effect: with a
//!   metadata quorum they are committed by the quorum (the image holds them, `META-8`) and
//!   answered once this node's image shows them and its authorizer and credential store were
//!   updated from it (`CLU-3`, `CLU-4`); without one, in `acls.json` and `credentials.json`.

pub mod acl;
pub mod acl_store;
pub mod cluster;
pub mod config;
pub mod credentials;
pub mod errors;
pub mod fetcher;
pub mod groups;
pub mod handlers;
pub mod partition;
pub mod peer;
pub mod producer;
pub mod replication;
pub mod shares;
pub mod snapshot;
pub mod topics;
pub mod txns;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use basalt_protocol::{ErrorCode, Uuid};
use basalt_storage::{Storage, StorageOptions};
use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;

pub use basalt_coordinator as coordinator;
pub use basalt_coordinator::GroupConfig;
pub use config::BrokerConfig;
use partition::Partition;
use topics::{TopicMeta, TopicStore, format_uuid, new_topic_id, validate_topic_name};

/// Most partitions a topic may have.
pub const MAX_PARTITIONS: i32 = 100_000;

/// A topic hosted on this node.
#[derive(Debug)]
pub struct Topic {
    /// Persisted metadata.
    pub meta: TopicMeta,
    /// The topic id.
    pub id: Uuid,
    /// Partitions, by index.
    pub partitions: Vec<Arc<Partition>>,
    /// The leader of each partition, by index (-1: none); on a single node, this node.
    pub leaders: Vec<i32>,
}

impl Topic {
    /// Whether partition `index` is led by `node_id`.
    pub fn is_led_by(&self, index: i32, node_id: i32) -> bool {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.leaders.get(i))
            .is_some_and(|l| *l == node_id)
    }
}

/// Why a topic could not be created.
#[derive(Debug, Clone)]
pub struct TopicError {
    /// The Kafka error code.
    pub code: ErrorCode,
    /// A message for the client.
    pub message: String,
}

impl TopicError {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        TopicError {
            code,
            message: message.into(),
        }
    }
}

/// The broker.
#[derive(Debug)]
pub struct Broker {
    config: BrokerConfig,
    storage: Storage,
    store: TopicStore,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    /// Serialises topic creation, deletion and config changes (`BRK-2`); never held across an
    /// await.
    topic_ops: Mutex<()>,
    /// Bumped whenever new data may be visible to consumers; long-polling fetches watch it.
    visible: Arc<watch::Sender<u64>>,
    producer_ids: ProducerIds,
    coordinator: groups::Coordinator,
    shares: shares::Shares,
    txns: Arc<txns::TxnCoordinator>,
    acls: RwLock<acl::Acls>,
    /// `acls.json`: the ACLs of a broker without a metadata quorum.
    acl_store: acl_store::AclStore,
    /// Serialises ACL changes (`BRK-4`) and their updates from the image.
    acl_ops: Mutex<()>,
    credentials: Arc<credentials::CredentialStore>,
    /// The ACLs and credentials of the image this node last took them from (`CLU-4`).
    security_seen: Mutex<cluster::SecuritySeen>,
    /// This node's membership of a cluster (`cluster.rs`); `None` for a broker used without a
    /// metadata quorum (tests, tools).
    cluster: Option<cluster::ClusterLink>,
    /// Follower fetch tasks, one per leader followed (`fetcher.rs`).
    fetchers: fetcher::Fetchers,
    /// Set by a controlled shutdown: the node stays fenced.
    stopping: std::sync::atomic::AtomicBool,
}

impl Broker {
    /// Opens the data directory, recovering logs as needed, and loads every topic.
    pub fn open(data_dir: &Path, config: BrokerConfig) -> anyhow_like::Result<Arc<Broker>> {
        Self::open_with(data_dir, config, None)
    }

    /// Opens the data directory as [`Broker::open`] does, then makes the metadata image of
    /// `cluster` the source of its topics (`CLU-1`), ACLs and credentials (`CLU-4`): topics of
    /// a `topics.json` written before the quorum existed are imported into an empty image
    /// first, and so are the ACLs of an `acls.json` and the users of a `credentials.json`
    /// (once: the files are renamed `*.imported` after), then local partitions, the authorizer
    /// and the credential store are reconciled with the image. Call from a blocking thread of a
    /// multi-threaded runtime.
    pub fn open_clustered(
        data_dir: &Path,
        config: BrokerConfig,
        cluster: cluster::ClusterLink,
    ) -> anyhow_like::Result<Arc<Broker>> {
        Self::open_with(data_dir, config, Some(cluster))
    }

    fn open_with(
        data_dir: &Path,
        config: BrokerConfig,
        cluster: Option<cluster::ClusterLink>,
    ) -> anyhow_like::Result<Arc<Broker>> {
        let storage = Storage::open(data_dir, StorageOptions::default())?;
        let store = TopicStore::new(data_dir);
        let metas = store.load()?;
        let mut topics = BTreeMap::new();
        for meta in metas {
            let topic = open_topic(&storage, &config, meta)?;
            topics.insert(topic.meta.name.clone(), Arc::new(topic));
        }
        let producer_ids = ProducerIds::open(data_dir)?;
        let acl_store = acl_store::AclStore::new(data_dir);
        // With a quorum the image is the source of ACLs and credentials (`CLU-4`): they come
        // with the first reconcile, after any old files were imported.
        let (acls, credentials) = match &cluster {
            Some(link) => {
                cluster::import_security(link, data_dir)?;
                (
                    acl::Acls::new(config.authorizer.clone(), Vec::new()),
                    credentials::CredentialStore::replicated(),
                )
            }
            None => (
                acl::Acls::new(config.authorizer.clone(), acl_store.load()?),
                credentials::CredentialStore::open(data_dir)?,
            ),
        };
        let credentials = Arc::new(credentials);
        tracing::info!(
            dir = %data_dir.display(),
            topics = topics.len(),
            clean = storage.was_clean_shutdown(),
            "broker storage ready"
        );
        let visible = Arc::new(watch::channel(0).0);
        let coordinator = groups::Coordinator::new(
            config.groups.clone(),
            config.offsets_topic_num_partitions,
            config.offsets_topic_segment_bytes,
        );
        let shares = shares::Shares::open(data_dir, config.shares.clone())?;
        let txns = Arc::new(txns::TxnCoordinator::new(
            config.txns.clone(),
            config.transaction_state_num_partitions,
            config.transaction_state_segment_bytes,
            config.node_id,
            config.inter_broker.clone(),
        ));
        if let Some(link) = &cluster {
            cluster::import_topics(link, &topics)?;
        }
        let broker = Arc::new(Broker {
            config,
            storage,
            store,
            topics: RwLock::new(topics),
            topic_ops: Mutex::new(()),
            visible,
            producer_ids,
            coordinator,
            shares,
            txns,
            acls: RwLock::new(acls),
            acl_store,
            acl_ops: Mutex::new(()),
            credentials,
            security_seen: Mutex::new(cluster::SecuritySeen::default()),
            cluster,
            fetchers: fetcher::Fetchers::default(),
            stopping: std::sync::atomic::AtomicBool::new(false),
        });
        if let Some(image) = broker.image() {
            broker.reconcile(&image);
        }
        broker.coordinator.load(&broker);
        broker.txns.load(&broker);
        Ok(broker)
    }

    /// The group coordinator.
    pub fn coordinator(&self) -> &groups::Coordinator {
        &self.coordinator
    }

    /// Share groups, share partitions and share sessions.
    pub fn shares(&self) -> &shares::Shares {
        &self.shares
    }

    /// The transaction coordinator.
    pub fn txns(&self) -> &Arc<txns::TxnCoordinator> {
        &self.txns
    }

    /// Whether requests are authorized (`authorizer.class.name` is set).
    pub fn authorizer_enabled(&self) -> bool {
        self.config.authorizer.enabled
    }

    /// Whether `session` may perform `operation` on resource `name` of `resource_type`.
    pub fn authorize(
        &self,
        session: &acl::Session,
        operation: acl::Operation,
        resource_type: acl::ResourceType,
        name: &str,
    ) -> bool {
        if !self.config.authorizer.enabled {
            return true;
        }
        let allowed = self
            .acls
            .read()
            .authorize(session, operation, resource_type, name);
        if !allowed {
            tracing::debug!(principal = %session.principal, host = %session.host, %operation, ?resource_type, resource = name, "denied");
        }
        allowed
    }

    /// The `authorized_operations` bit field of Metadata, DescribeGroups, DescribeCluster and
    /// ConsumerGroupDescribe: bit `code` set for each operation Kafka defines on `name` of
    /// `resource_type` that `session` may perform (all of them without an authorizer).
    pub fn authorized_operations(
        &self,
        session: &acl::Session,
        resource_type: acl::ResourceType,
        name: &str,
    ) -> i32 {
        let acls = self.acls.read();
        resource_type
            .operations()
            .iter()
            .filter(|op| {
                !self.config.authorizer.enabled
                    || acls.authorize(session, **op, resource_type, name)
            })
            .fold(0, |bits, op| bits | (1 << op.code()))
    }

    /// Whether `session` may perform `operation` on some resource of `resource_type`.
    pub fn authorize_any(
        &self,
        session: &acl::Session,
        operation: acl::Operation,
        resource_type: acl::ResourceType,
    ) -> bool {
        !self.config.authorizer.enabled
            || self
                .acls
                .read()
                .authorize_any(session, operation, resource_type)
    }

    /// Whether `session` may perform `operation` on the cluster.
    pub fn authorize_cluster(&self, session: &acl::Session, operation: acl::Operation) -> bool {
        self.authorize(
            session,
            operation,
            acl::ResourceType::Cluster,
            acl::CLUSTER_NAME,
        )
    }

    /// Whether `session` may perform `operation` on a config resource (ConfigResource type 2,
    /// a topic, or 4, a broker, which stands for the cluster): TOPIC_AUTHORIZATION_FAILED or
    /// CLUSTER_AUTHORIZATION_FAILED otherwise.
    pub fn authorize_config_resource(
        &self,
        session: &acl::Session,
        operation: acl::Operation,
        resource_type: i8,
        name: &str,
    ) -> Result<(), TopicError> {
        if resource_type == 2 {
            if !self.authorize(session, operation, acl::ResourceType::Topic, name) {
                return Err(TopicError::new(
                    ErrorCode::TopicAuthorizationFailed,
                    format!("not authorized to {operation} topic {name}"),
                ));
            }
        } else if resource_type == 32 {
            if !self.authorize(session, operation, acl::ResourceType::Group, name) {
                return Err(TopicError::new(
                    ErrorCode::GroupAuthorizationFailed,
                    format!("not authorized to {operation} group {name}"),
                ));
            }
        } else if !self.authorize_cluster(session, operation) {
            return Err(TopicError::new(
                ErrorCode::ClusterAuthorizationFailed,
                format!("not authorized to {operation} the cluster"),
            ));
        }
        Ok(())
    }

    /// The ACL bindings `filter` matches.
    pub fn describe_acls(&self, filter: &acl::AclFilter) -> Vec<acl::AclBinding> {
        self.acls.read().matching(filter)
    }

    /// Adds `bindings`, persisting them before they take effect (`BRK-4`): in a cluster, by
    /// proposing them to the quorum; without one, in `acls.json`.
    pub fn create_acls(&self, bindings: Vec<acl::AclBinding>) -> Result<(), TopicError> {
        if self.cluster.is_some() {
            return self.create_acls_in_cluster(&bindings);
        }
        let _ops = self.acl_ops.lock();
        let mut next = self.acls.read().clone();
        let mut changed = false;
        for b in bindings {
            changed |= next.add(b);
        }
        if changed {
            self.acl_store
                .save(next.bindings())
                .map_err(|e| TopicError::new(ErrorCode::KafkaStorageError, e.to_string()))?;
            *self.acls.write() = next;
        }
        Ok(())
    }

    /// Removes the bindings each filter matches, persisting before they take effect
    /// (`BRK-4`); returns what each filter removed (a binding matched by two filters is
    /// reported by the first).
    pub fn delete_acls(
        &self,
        filters: &[acl::AclFilter],
    ) -> Result<Vec<Vec<acl::AclBinding>>, TopicError> {
        if self.cluster.is_some() {
            let mut next = self.acls.read().clone();
            let removed: Vec<Vec<acl::AclBinding>> =
                filters.iter().map(|f| next.remove_matching(f)).collect();
            self.delete_acls_in_cluster(removed.iter().flatten())?;
            return Ok(removed);
        }
        let _ops = self.acl_ops.lock();
        let mut next = self.acls.read().clone();
        let removed: Vec<Vec<acl::AclBinding>> =
            filters.iter().map(|f| next.remove_matching(f)).collect();
        if removed.iter().any(|r| !r.is_empty()) {
            self.acl_store
                .save(next.bindings())
                .map_err(|e| TopicError::new(ErrorCode::KafkaStorageError, e.to_string()))?;
            *self.acls.write() = next;
        }
        Ok(removed)
    }

    /// Applies the SCRAM credential changes of one AlterUserScramCredentials request in order,
    /// each checked first (`CredentialChange::check`); returns, per change, whether it was
    /// applied or why not. Persisted before they are answered or used by a login (`BRK-4`,
    /// `CRED-1`): in a cluster by proposing each to the quorum, without one in
    /// `credentials.json`.
    pub fn alter_credentials(
        &self,
        changes: Vec<credentials::CredentialChange>,
    ) -> Vec<Result<(), TopicError>> {
        if self.cluster.is_some() {
            return changes
                .into_iter()
                .map(|c| self.alter_credential_in_cluster(c))
                .collect();
        }
        let n = changes.len();
        match self.credentials.apply(changes) {
            Ok(outcomes) => outcomes,
            Err(e) => {
                tracing::error!(error = %e, "cannot persist credentials");
                (0..n)
                    .map(|_| {
                        Err(TopicError::new(
                            ErrorCode::UnknownServerError,
                            format!("cannot persist credentials: {e}"),
                        ))
                    })
                    .collect()
            }
        }
    }

    /// Creates SCRAM-SHA-256 and SCRAM-SHA-512 credentials for `user` with `password` unless
    /// the user has credentials already (the bootstrap user); returns whether it created them.
    pub fn ensure_user(&self, user: &str, password: &str) -> Result<bool, TopicError> {
        if self.credentials.snapshot().contains_key(user) {
            return Ok(false);
        }
        let failed = self
            .alter_credentials(credentials::password_changes(user, password))
            .into_iter()
            .find_map(Result::err);
        match failed {
            None => Ok(true),
            // Every node of a cluster may be started with the same bootstrap user: when another
            // node's credentials for it won the race, this node's wait for its own fails, and
            // the user exists all the same.
            Some(_) if self.credentials.snapshot().contains_key(user) => Ok(false),
            Some(e) => Err(e),
        }
    }

    /// The broker's settings.
    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    /// The users' SCRAM credentials (also the [`basalt_server::CredentialSource`] of SASL
    /// listeners).
    pub fn credentials(&self) -> &Arc<credentials::CredentialStore> {
        &self.credentials
    }

    /// The host and port to advertise to a client connected through `conn`'s listener.
    pub fn advertised_for(&self, conn: &basalt_server::ConnectionInfo) -> (String, i32) {
        match self.config.advertised_listeners.get(conn.listener_name()) {
            Some((host, port)) => (host.clone(), *port),
            None => (
                self.config.advertised_host.clone(),
                self.config.advertised_port,
            ),
        }
    }

    /// The data directory: the one log dir of this node.
    pub fn data_dir(&self) -> &Path {
        self.storage.dir()
    }

    /// The topic `name`, if it exists.
    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics.read().get(name).cloned()
    }

    /// The topic with id `id`, if it exists.
    pub fn topic_by_id(&self, id: &Uuid) -> Option<Arc<Topic>> {
        self.topics.read().values().find(|t| &t.id == id).cloned()
    }

    /// All topics, by name.
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        self.topics.read().values().cloned().collect()
    }

    /// The partition `index` of `topic`, if both exist.
    pub fn partition(&self, topic: &str, index: i32) -> Option<Arc<Partition>> {
        let topic = self.topic(topic)?;
        usize::try_from(index)
            .ok()
            .and_then(|i| topic.partitions.get(i).cloned())
    }

    /// Creates a topic (or only validates it). `partitions`/`replication` of -1 take defaults.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication: i16,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<Arc<Topic>, TopicError> {
        self.create_topic_assigned(name, partitions, replication, None, configs, validate_only)
    }

    /// `default.replication.factor`, with -1 resolved: 3 once three nodes are live, else 1.
    pub fn default_replication_factor(&self) -> i16 {
        match self.config.default_replication_factor {
            -1 if self.image().is_some_and(|i| i.live_nodes().count() >= 3) => 3,
            -1 => 1,
            n => n,
        }
    }

    /// Creates a topic as [`Broker::create_topic`] does, with the replicas of each partition
    /// given (`assignments`) instead of placed.
    pub fn create_topic_assigned(
        &self,
        name: &str,
        partitions: i32,
        replication: i16,
        assignments: Option<Vec<Vec<i32>>>,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<Arc<Topic>, TopicError> {
        validate_topic_name(name)
            .map_err(|m| TopicError::new(ErrorCode::InvalidTopicException, m))?;
        let partitions = if partitions == -1 {
            self.config.num_partitions
        } else {
            partitions
        };
        if !(1..=MAX_PARTITIONS).contains(&partitions) {
            return Err(TopicError::new(
                ErrorCode::InvalidPartitions,
                format!(
                    "number of partitions must be between 1 and {MAX_PARTITIONS}, got {partitions}"
                ),
            ));
        }
        let replication = if replication == -1 {
            self.default_replication_factor()
        } else {
            replication
        };
        let live = self.image().map_or(1, |i| i.live_nodes().count());
        if replication < 1 || replication as usize > live.max(1) {
            return Err(TopicError::new(
                ErrorCode::InvalidReplicationFactor,
                format!(
                    "replication factor {replication} is not between 1 and the {live} available \
                     broker(s)"
                ),
            ));
        }
        let mut configs = configs;
        // Three or more replicas tolerate one loss with acks=all: min.insync.replicas 2, unless
        // the topic or the broker says otherwise.
        if replication >= 3
            && !configs.contains_key("min.insync.replicas")
            && self.config.effective(&configs).min_insync_replicas == 1
        {
            configs.insert("min.insync.replicas".into(), "2".into());
        }
        for (k, v) in &configs {
            config::validate_topic_config(k, v)
                .map_err(|e| TopicError::new(ErrorCode::InvalidConfig, e.to_string()))?;
        }
        if self.cluster.is_some() {
            return self.create_topic_in_cluster(
                name,
                partitions,
                replication,
                assignments,
                configs,
                validate_only,
            );
        }
        let _ops = self.topic_ops.lock();
        if self.topics.read().contains_key(name) {
            return Err(TopicError::new(
                ErrorCode::TopicAlreadyExists,
                format!("topic {name} already exists"),
            ));
        }
        let collides = self
            .topics
            .read()
            .keys()
            .any(|t| t != name && t.replace('.', "_") == name.replace('.', "_"));
        if collides {
            return Err(TopicError::new(
                ErrorCode::InvalidTopicException,
                format!("topic {name} collides with an existing topic ('.' and '_' are alike)"),
            ));
        }
        let meta = TopicMeta {
            name: name.to_owned(),
            id: format_uuid(&new_topic_id()),
            partitions,
            configs,
        };
        if validate_only {
            return Ok(Arc::new(Topic {
                id: meta.uuid(),
                meta,
                partitions: Vec::new(),
                leaders: Vec::new(),
            }));
        }
        let topic = open_topic(&self.storage, &self.config, meta)
            .map_err(|e| TopicError::new(ErrorCode::KafkaStorageError, e.to_string()))?;
        let topic = Arc::new(topic);
        let mut all: Vec<TopicMeta> = self
            .topics
            .read()
            .values()
            .map(|t| t.meta.clone())
            .collect();
        all.push(topic.meta.clone());
        self.store
            .save(&all)
            .map_err(|e| TopicError::new(ErrorCode::KafkaStorageError, e.to_string()))?;
        self.topics
            .write()
            .insert(name.to_owned(), Arc::clone(&topic));
        tracing::info!(topic = name, partitions, "created topic");
        Ok(topic)
    }

    /// The topic `name`, created with defaults if it is missing and auto-creation is enabled.
    pub fn topic_or_auto_create(
        &self,
        name: &str,
        allowed: bool,
    ) -> Result<Arc<Topic>, TopicError> {
        if let Some(t) = self.topic(name) {
            return Ok(t);
        }
        if !(allowed && self.config.auto_create_topics_enable) {
            return Err(TopicError::new(
                ErrorCode::UnknownTopicOrPartition,
                format!("unknown topic {name}"),
            ));
        }
        match self.create_topic(name, -1, -1, BTreeMap::new(), false) {
            Ok(t) => Ok(t),
            // Created concurrently by another request.
            Err(e) if e.code == ErrorCode::TopicAlreadyExists => {
                self.topic(name).ok_or_else(|| {
                    TopicError::new(ErrorCode::UnknownTopicOrPartition, "topic vanished")
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Deletes a topic and its data.
    pub fn delete_topic(&self, name: &str) -> Result<Uuid, TopicError> {
        if !self.config.delete_topic_enable {
            return Err(TopicError::new(
                ErrorCode::TopicDeletionDisabled,
                "delete.topic.enable is false",
            ));
        }
        if self.cluster.is_some() {
            return self.delete_topic_in_cluster(name);
        }
        let _ops = self.topic_ops.lock();
        let Some(topic) = self.topic(name) else {
            return Err(TopicError::new(
                ErrorCode::UnknownTopicOrPartition,
                format!("unknown topic {name}"),
            ));
        };
        let remaining: Vec<TopicMeta> = self
            .topics
            .read()
            .values()
            .filter(|t| t.meta.name != name)
            .map(|t| t.meta.clone())
            .collect();
        self.store
            .save(&remaining)
            .map_err(|e| TopicError::new(ErrorCode::KafkaStorageError, e.to_string()))?;
        self.topics.write().remove(name);
        for p in 0..topic.meta.partitions {
            if let Err(e) = self.storage.delete_log(&topic.meta.log_name(p)) {
                tracing::error!(topic = name, partition = p, error = %e, "could not delete partition data");
            }
        }
        tracing::info!(topic = name, "deleted topic");
        Ok(topic.id)
    }

    /// Grows topic `name` to `count` partitions (or only validates that it could), opening the
    /// new partitions' logs, then persisting, then publishing the grown topic (`BRK-2`).
    /// `assignments`, if given, names the replicas of each new partition (on a single node:
    /// exactly this node).
    pub fn create_partitions(
        &self,
        name: &str,
        count: i32,
        assignments: Option<&[Vec<i32>]>,
        validate_only: bool,
    ) -> Result<Arc<Topic>, TopicError> {
        let _ops = self.topic_ops.lock();
        let topic = self.topic(name).ok_or_else(|| {
            TopicError::new(
                ErrorCode::UnknownTopicOrPartition,
                format!("unknown topic {name}"),
            )
        })?;
        let current = topic.meta.partitions;
        if count <= current {
            let message = if count == current {
                format!("topic {name} already has {current} partitions")
            } else {
                format!(
                    "topic {name} has {current} partitions, more than the {count} requested; \
                     partitions cannot be removed"
                )
            };
            return Err(TopicError::new(ErrorCode::InvalidPartitions, message));
        }
        if count > MAX_PARTITIONS {
            return Err(TopicError::new(
                ErrorCode::InvalidPartitions,
                format!("number of partitions must be at most {MAX_PARTITIONS}, got {count}"),
            ));
        }
        if let Some(assignments) = assignments {
            let added = count - current;
            if assignments.len() != added as usize {
                return Err(TopicError::new(
                    ErrorCode::InvalidReplicaAssignment,
                    format!(
                        "adding {added} partitions but {} assignments were given",
                        assignments.len()
                    ),
                ));
            }
            let node_id = self.config.node_id;
            // In a cluster the metadata model checks the replicas (META-3).
            if self.cluster.is_none()
                && let Some(bad) = assignments.iter().find(|a| a.as_slice() != [node_id])
            {
                return Err(TopicError::new(
                    ErrorCode::InvalidReplicaAssignment,
                    format!("replicas can only be assigned to broker {node_id}, got {bad:?}"),
                ));
            }
        }
        if self.cluster.is_some() {
            drop(_ops);
            return self.create_partitions_in_cluster(&topic, count, assignments, validate_only);
        }
        let meta = TopicMeta {
            partitions: count,
            ..topic.meta.clone()
        };
        if validate_only {
            return Ok(Arc::new(Topic {
                meta,
                id: topic.id,
                partitions: Vec::new(),
                leaders: Vec::new(),
            }));
        }
        let effective = self.config.effective(&meta.configs);
        let mut partitions = topic.partitions.clone();
        for p in current..count {
            match open_partition(&self.storage, &meta, p, &effective) {
                Ok(partition) => partitions.push(Arc::new(partition)),
                Err(e) => {
                    self.discard_logs(&meta, current..p + 1);
                    return Err(TopicError::new(ErrorCode::KafkaStorageError, e.to_string()));
                }
            }
        }
        if let Err(e) = self.save_replacing(&meta) {
            self.discard_logs(&meta, current..count);
            return Err(TopicError::new(ErrorCode::KafkaStorageError, e.to_string()));
        }
        let grown = Arc::new(Topic {
            leaders: vec![self.config.node_id; partitions.len()],
            meta,
            id: topic.id,
            partitions,
        });
        self.topics
            .write()
            .insert(name.to_owned(), Arc::clone(&grown));
        tracing::info!(topic = name, from = current, to = count, "added partitions");
        Ok(grown)
    }

    /// Replaces the config overrides of topic `name` with what `edit` makes of the current ones
    /// (or only validates them): validates every override, persists, publishes the topic with the
    /// new overrides and applies the effective settings to its partitions (`BRK-2`). `edit` runs
    /// under the topic lock, so concurrent incremental changes are not lost.
    pub fn alter_topic_configs(
        &self,
        name: &str,
        validate_only: bool,
        edit: impl FnOnce(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>, TopicError>,
    ) -> Result<(), TopicError> {
        let _ops = self.topic_ops.lock();
        let topic = self.topic(name).ok_or_else(|| {
            TopicError::new(
                ErrorCode::UnknownTopicOrPartition,
                format!("unknown topic {name}"),
            )
        })?;
        let configs = edit(&topic.meta.configs)?;
        for (k, v) in &configs {
            config::validate_topic_config(k, v)
                .map_err(|e| TopicError::new(ErrorCode::InvalidConfig, e.to_string()))?;
        }
        if validate_only || configs == topic.meta.configs {
            return Ok(());
        }
        if self.cluster.is_some() {
            drop(_ops);
            return self.alter_configs_in_cluster(name, &topic.meta.configs, configs);
        }
        let meta = TopicMeta {
            configs,
            ..topic.meta.clone()
        };
        self.save_replacing(&meta)
            .map_err(|e| TopicError::new(ErrorCode::KafkaStorageError, e.to_string()))?;
        let effective = self.config.effective(&meta.configs);
        let updated = Arc::new(Topic {
            meta,
            id: topic.id,
            partitions: topic.partitions.clone(),
            leaders: topic.leaders.clone(),
        });
        self.topics.write().insert(name.to_owned(), updated);
        for p in &topic.partitions {
            p.set_config(effective.clone());
        }
        tracing::info!(topic = name, "altered topic configs");
        Ok(())
    }

    /// Persists every topic's metadata, with `meta` replacing the topic of the same name.
    /// Callers hold `topic_ops`.
    fn save_replacing(&self, meta: &TopicMeta) -> std::io::Result<()> {
        let all: Vec<TopicMeta> = self
            .topics
            .read()
            .values()
            .map(|t| {
                if t.meta.name == meta.name {
                    meta.clone()
                } else {
                    t.meta.clone()
                }
            })
            .collect();
        self.store.save(&all)
    }

    /// Deletes the logs of partitions `range` of `meta`, after a failed partition growth.
    fn discard_logs(&self, meta: &TopicMeta, range: std::ops::Range<i32>) {
        for p in range {
            if let Err(e) = self.storage.delete_log(&meta.log_name(p)) {
                tracing::warn!(topic = %meta.name, partition = p, error = %e, "could not remove a new partition's log");
            }
        }
    }

    /// A new producer id for an idempotent producer: this node's id in the high 32 bits and a
    /// counter of this node in the low ones, so nodes of a cluster never hand out the same id
    /// (on node 0 the ids are the counter itself, as before clusters).
    pub fn allocate_producer_id(&self) -> std::io::Result<i64> {
        let local = self.producer_ids.next()?;
        if local >= 1 << 32 {
            return Err(std::io::Error::other(
                "this node has handed out all of its 2^32 producer ids",
            ));
        }
        Ok((i64::from(self.config.node_id.max(0)) << 32) | local)
    }

    /// Signals long-polling fetches that new data may be visible.
    pub fn notify_visible(&self) {
        self.visible.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// The sender behind [`Broker::notify_visible`], for tasks that outlive a request.
    pub fn watch_visible_sender(&self) -> Arc<watch::Sender<u64>> {
        Arc::clone(&self.visible)
    }

    /// A receiver that changes whenever new data may be visible.
    pub fn watch_visible(&self) -> watch::Receiver<u64> {
        self.visible.subscribe()
    }

    /// Applies retention to every partition once.
    pub fn enforce_retention(&self) {
        let now = now_ms();
        for topic in self.topics() {
            for p in &topic.partitions {
                if let Err(e) = p.enforce_retention(now) {
                    tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "retention failed");
                }
            }
        }
    }

    /// Runs retention and the group and transaction coordinators' timers periodically until the broker is
    /// dropped.
    pub fn spawn_background(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(50));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // Member timers every 50 ms; the size check for compaction once a second.
            for n in 0u64.. {
                tick.tick().await;
                let Some(broker) = weak.upgrade() else { break };
                broker.coordinator.tick(&broker);
                if n % 4 == 0 {
                    broker.txns.tick(&broker);
                }
                if n % 4 == 2 {
                    broker.shares.tick(&broker).await;
                }
                if n % 20 == 0 {
                    broker.coordinator.compact(&broker).await;
                    broker.txns.compact(&broker).await;
                }
            }
        });
        let weak = Arc::downgrade(self);
        let period = Duration::from_millis(self.config.log_retention_check_interval_ms.max(100));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(broker) = weak.upgrade() else { break };
                let b = Arc::clone(&broker);
                let _ = tokio::task::spawn_blocking(move || b.enforce_retention()).await;
            }
        });
    }

    /// Writes every partition's producer snapshot, then syncs every partition and writes the
    /// clean-shutdown marker (the one filesystem sync covers the snapshots too).
    pub fn shutdown(&self) -> Result<(), basalt_storage::StorageError> {
        self.fetchers.stop();
        for topic in self.topics() {
            for p in &topic.partitions {
                p.checkpoint_high_watermark();
                if let Err(e) = p.write_shutdown_snapshot() {
                    // The next open scans more of the log; nothing is lost.
                    tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "cannot write producer snapshot");
                }
            }
        }
        self.storage.close()
    }
}

fn open_topic(
    storage: &Storage,
    config: &BrokerConfig,
    meta: TopicMeta,
) -> Result<Topic, basalt_storage::StorageError> {
    let effective = config.effective(&meta.configs);
    let mut partitions = Vec::with_capacity(meta.partitions as usize);
    for p in 0..meta.partitions {
        partitions.push(Arc::new(open_partition(storage, &meta, p, &effective)?));
    }
    Ok(Topic {
        id: meta.uuid(),
        leaders: vec![config.node_id; partitions.len()],
        meta,
        partitions,
    })
}

/// Opens partition `p` of `meta`'s topic with its effective settings, logging what recovery of
/// its log found.
fn open_partition(
    storage: &Storage,
    meta: &TopicMeta,
    p: i32,
    effective: &config::EffectiveTopicConfig,
) -> Result<Partition, basalt_storage::StorageError> {
    let (log, report) = storage.open_log(&meta.log_name(p), effective.log.clone())?;
    if report.truncated_bytes > 0 {
        tracing::warn!(topic = %meta.name, partition = p, bytes = report.truncated_bytes, "recovered a torn tail");
    }
    if let Some(d) = &report.damage {
        tracing::error!(topic = %meta.name, partition = p, damage = %d, "partition damaged");
    }
    Partition::open(&meta.name, p, log, effective.clone())
}

/// Wall-clock milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Producer ids, unique across restarts: blocks of ids are reserved in a file before use.
#[derive(Debug)]
struct ProducerIds {
    path: std::path::PathBuf,
    next: AtomicI64,
    reserved_end: Mutex<i64>,
}

const PRODUCER_ID_BLOCK: i64 = 1000;

impl ProducerIds {
    fn open(dir: &Path) -> std::io::Result<Self> {
        let path = dir.join("producer-ids");
        let start = match std::fs::read_to_string(&path) {
            Ok(s) => s.trim().parse::<i64>().map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: not a number", path.display()),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        Ok(ProducerIds {
            path,
            next: AtomicI64::new(start),
            reserved_end: Mutex::new(start),
        })
    }

    fn next(&self) -> std::io::Result<i64> {
        let id = self.next.fetch_add(1, Ordering::AcqRel);
        let mut end = self.reserved_end.lock();
        if id >= *end {
            let new_end = id + PRODUCER_ID_BLOCK;
            let tmp = self.path.with_extension("tmp");
            std::fs::write(&tmp, new_end.to_string())?;
            std::fs::File::open(&tmp)?.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            if let Some(dir) = self.path.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
            *end = new_end;
        }
        Ok(id)
    }
}

/// A boxed error for broker start-up.
pub mod anyhow_like {
    /// Start-up result.
    pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;
}
