//! How the broker takes part in a cluster: it registers with the metadata quorum
//! ([`MetadataQuorum`]), heartbeats, proposes topic changes as [`Command`]s, and reconciles its
//! local partitions with every image the quorum applies.
//!
//! Each partition's role on this node (sole replica, leader, follower, none) follows the image
//! (`replication.rs`); followers fetch from their leaders (`fetcher.rs`). Every node opens a
//! local log for every partition of every topic (empty where it is no replica), so a node keeps
//! a partition's data where it is; only the leader answers client reads and writes. A leader
//! proposes ISR changes (`AlterPartition`) and applies them when the image shows them.
//!
//! Operators move partitions (`ReassignPartitions`: the image adds the target replicas as
//! followers and finishes the move once they are in sync) and elect leaders (an
//! `AlterPartition` on the current partition epoch) through the functions at the end of this
//! file, which the AlterPartitionReassignments and ElectLeaders handlers call.
//!
//! # Invariants
//! - `CLU-1`: the image is the source of truth for topics: a topic exists on a node once and as
//!   long as the image holds it; `topics.json` is this node's copy, rewritten on reconcile.
//! - `CLU-2`: Produce, Fetch, ListOffsets, OffsetForLeaderEpoch and DeleteRecords for a
//!   partition whose image leader is another node answer NOT_LEADER_OR_FOLLOWER.
//! - `CLU-3`: a topic change (and a reassignment or election, an ACL or SCRAM credential
//!   change) is answered only after the image of this node shows it (and this node
//!   reconciled), so a client that asks this node right after sees it.
//! - `CLU-4`: the image is the source of truth for ACL bindings and SCRAM credentials: every
//!   node's authorizer and credential store are replaced from the image whenever its ACLs or
//!   credentials change (in `reconcile`, never from an image older than the last one taken),
//!   so a binding or user created through any node is in force on every node once its image
//!   shows it. Logins and authorization read those copies and never wait on the quorum
//!   (`CRED-2`). `acls.json` and `credentials.json` are no longer written; an old node's files
//!   are imported once (`import_security`) and renamed `*.imported`.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use basalt_cluster::metadata::security::ACLS_PER_COMMAND_MAX;
use basalt_cluster::metadata::{
    AclRecord, Command, ConfigResource, Endpoint, MetadataImage, MetadataQuorum, NodeId, Outcome,
    PartitionRecord, ProposeError, Rejection, ScramRecord, TopicId, place,
};
use basalt_protocol::{ErrorCode, Uuid};

use crate::acl::{AclBinding, Acls};
use crate::credentials::{self, CredentialChange};

use crate::errors::{propose_error_code, rejection_code};
use crate::partition::Partition;
use crate::topics::{TopicMeta, new_topic_id};
use crate::{Broker, Topic, TopicError, now_ms, open_partition, open_topic};
use basalt_cluster::replication::{IsrProposal, PartitionLeadership};

/// How often a node heartbeats.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(1_000);
/// How often a leader looks for lagging followers and resends ISR proposals.
pub const REPLICATION_TICK: Duration = Duration::from_millis(250);
/// Every how many ticks the high watermarks are checkpointed.
const HW_CHECKPOINT_TICKS: u64 = 20;
/// Longest wait for a proposal (retried while there is no leader) or for this node's image to
/// show its outcome.
pub const PROPOSE_TIMEOUT: Duration = Duration::from_secs(15);

/// This node's membership of the cluster.
#[derive(Debug)]
pub struct ClusterLink {
    /// The metadata quorum.
    pub quorum: Arc<MetadataQuorum>,
    /// This node.
    pub node_id: NodeId,
    /// The incarnation this node registered with.
    pub incarnation: u64,
}

/// Runs `f` to completion from synchronous broker code running on a multi-threaded runtime (a
/// worker or a blocking thread).
pub fn block_on<F: Future>(f: F) -> F::Output {
    let handle = tokio::runtime::Handle::current();
    tokio::task::block_in_place(|| handle.block_on(f))
}

/// Proposes `cmd`, retrying while no leader is known or it cannot be reached, until
/// [`PROPOSE_TIMEOUT`].
pub async fn propose_retrying(
    quorum: &MetadataQuorum,
    cmd: Command,
) -> Result<Outcome, ProposeError> {
    let deadline = Instant::now() + PROPOSE_TIMEOUT;
    loop {
        match quorum.propose(cmd.clone()).await {
            Err(ProposeError::NotLeader { .. } | ProposeError::Unavailable { .. })
                if Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => return other,
        }
    }
}

/// Waits until the quorum has a leader.
pub async fn wait_for_leader(quorum: &MetadataQuorum, timeout: Duration) -> Result<NodeId, String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(l) = quorum.leader() {
            return Ok(l);
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "the metadata quorum elected no leader within {timeout:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Registers this node with its endpoints and rack, and waits until its own image shows the
/// registration.
pub async fn join(
    quorum: Arc<MetadataQuorum>,
    endpoints: Vec<Endpoint>,
    rack: Option<String>,
) -> Result<ClusterLink, String> {
    let node_id = quorum.node_id();
    let incarnation: u64 = rand::random();
    let cmd = Command::RegisterNode {
        id: node_id,
        incarnation,
        endpoints,
        rack,
        now_ms: now_ms(),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match propose_retrying(&quorum, cmd.clone()).await {
            Ok(_) => break,
            Err(e) if Instant::now() < deadline => {
                tracing::info!(error = %e, "registering with the metadata quorum, retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(format!("cannot register with the metadata quorum: {e}")),
        }
    }
    wait_image(&quorum, |i| {
        i.nodes
            .get(&node_id)
            .is_some_and(|n| n.incarnation == incarnation)
    })
    .await
    .map_err(|e| e.message)?;
    tracing::info!(node_id, "registered with the metadata quorum");
    Ok(ClusterLink {
        quorum,
        node_id,
        incarnation,
    })
}

/// Waits until this node's image satisfies `pred`.
pub async fn wait_image(
    quorum: &MetadataQuorum,
    pred: impl Fn(&MetadataImage) -> bool,
) -> Result<Arc<MetadataImage>, TopicError> {
    let mut rx = quorum.subscribe();
    let wait = async {
        loop {
            let image = Arc::clone(&rx.borrow_and_update());
            if pred(&image) {
                return Some(image);
            }
            if rx.changed().await.is_err() {
                return None;
            }
        }
    };
    match tokio::time::timeout(PROPOSE_TIMEOUT, wait).await {
        Ok(Some(image)) => Ok(image),
        _ => Err(TopicError::new(
            ErrorCode::RequestTimedOut,
            "the change was accepted but this node's metadata has not caught up yet",
        )),
    }
}

impl Broker {
    /// This node's cluster membership, when it runs with a metadata quorum.
    pub fn cluster(&self) -> Option<&ClusterLink> {
        self.cluster.as_ref()
    }

    /// The latest metadata image this node applied, when it runs with a quorum.
    pub fn image(&self) -> Option<Arc<MetadataImage>> {
        self.cluster.as_ref().map(|c| c.quorum.image())
    }

    /// The replication factor of topic `name`: 1 on a single node, the image's in a cluster
    /// (partition 0's replicas once any move of it is done).
    pub fn replication_factor(&self, name: &str) -> Option<i16> {
        match self.image() {
            None => Some(1),
            Some(image) => image
                .topic(name)?
                .partitions
                .first()
                .map(|p| p.target_replicas().len() as i16),
        }
    }

    /// Whether this node coordinates group `id`: always on a single node; in a cluster, when it
    /// leads the partition of `__consumer_offsets` the group hashes to (the topic is created on
    /// first use, as FindCoordinator does).
    pub fn coordinates_group(&self, id: &str) -> bool {
        if self.cluster.is_none() {
            return true;
        }
        match self.coordinator.offsets_topic(self) {
            Ok(t) => t.is_led_by(
                crate::groups::partition_for(id, t.meta.partitions),
                self.config.node_id,
            ),
            Err(_) => false,
        }
    }

    /// Whether this node coordinates transactional id `id`: always on a single node; in a
    /// cluster, when it leads the partition of `__transaction_state` the id hashes to (the topic
    /// is created on first use, as FindCoordinator does).
    pub fn coordinates_txn(&self, id: &str) -> bool {
        matches!(self.txns.coordinator_node(self, id), Ok(None))
    }

    /// Proposes `cmd` and waits until this node's image satisfies `applied` (`CLU-3`), then
    /// reconciles.
    pub(crate) fn propose_and_wait(
        &self,
        cmd: Command,
        applied: impl Fn(&MetadataImage) -> bool,
    ) -> Result<Outcome, TopicError> {
        let cluster = self.cluster.as_ref().expect("called in cluster mode");
        let outcome = block_on(async {
            let outcome = propose_retrying(&cluster.quorum, cmd)
                .await
                .map_err(|e| TopicError::new(propose_error_code(&e), e.to_string()))?;
            wait_image(&cluster.quorum, &applied).await?;
            Ok::<_, TopicError>(outcome)
        })?;
        self.reconcile(&cluster.quorum.image());
        Ok(outcome)
    }

    /// Controlled shutdown: fences this node in the metadata, which moves the leadership of
    /// its partitions to other in-sync replicas and takes it out of every ISR, then waits
    /// (at most 15 s) until this node's image shows it leads no partition that has another
    /// replica. Nothing to do on a node alone.
    pub async fn controlled_shutdown(&self) {
        let Some(cluster) = self.cluster.as_ref() else {
            return;
        };
        let id = cluster.node_id;
        let image = cluster.quorum.image();
        if !image.live_nodes().any(|n| n.id != id) {
            return;
        }
        self.stopping
            .store(true, std::sync::atomic::Ordering::Release);
        tracing::info!("controlled shutdown: moving leadership to other replicas");
        if let Err(e) = propose_retrying(&cluster.quorum, Command::FenceNode { id }).await {
            tracing::warn!(error = %e, "controlled shutdown: cannot fence this node");
            return;
        }
        let moved = wait_image(&cluster.quorum, |i| {
            i.topics.values().all(|t| {
                t.partitions
                    .iter()
                    .all(|p| p.leader != Some(id) || p.replicas.len() <= 1)
            })
        });
        match tokio::time::timeout(PROPOSE_TIMEOUT, moved).await {
            Ok(Ok(_)) => tracing::info!("controlled shutdown: leadership moved"),
            _ => tracing::warn!("controlled shutdown: leadership did not move in time"),
        }
    }

    /// Sends an ISR change of partition `index` of `topic` to the quorum (Kafka's
    /// AlterPartition); the committed result comes back through `reconcile`.
    pub(crate) fn propose_isr(&self, topic: &str, index: i32, proposal: IsrProposal) {
        let Some(cluster) = self.cluster.as_ref() else {
            return;
        };
        let Some(t) = self.topic(topic) else {
            return;
        };
        let Some(partition) = usize::try_from(index)
            .ok()
            .and_then(|i| t.partitions.get(i))
            .cloned()
        else {
            return;
        };
        let cmd = Command::AlterPartition {
            topic: TopicId(*t.id.as_bytes()),
            partition: index,
            leader: Some(proposal.leader_id),
            isr: proposal.isr.clone(),
            partition_epoch: proposal.partition_epoch,
        };
        let quorum = Arc::clone(&cluster.quorum);
        tracing::info!(topic, partition = index, isr = ?proposal.isr, "proposing an ISR change");
        tokio::spawn(async move {
            match quorum.propose(cmd).await {
                Ok(_) => {}
                Err(ProposeError::Rejected(r)) => {
                    tracing::debug!(topic = %partition.topic, partition = partition.index, reason = %r, "ISR change refused");
                    partition.isr_proposal_rejected(&proposal);
                }
                Err(e) => tracing::debug!(error = %e, "ISR change not accepted yet"),
            }
        });
    }

    /// The leader's periodic work on every partition it leads with followers: ISR shrinks and
    /// resent proposals; and the HW checkpoints, every `checkpoint` ticks.
    fn replication_tick(&self, checkpoint: bool) {
        let now = now_ms();
        let topics: Vec<Arc<Topic>> = self.topics.read().values().cloned().collect();
        let mut moved = false;
        for t in topics {
            for p in &t.partitions {
                if !p.is_replicated() {
                    continue;
                }
                moved |= p.on_local_progress();
                if let Some(proposal) = p.leader_tick(now) {
                    self.propose_isr(&t.meta.name, p.index, proposal);
                }
                if checkpoint {
                    p.checkpoint_high_watermark();
                }
            }
        }
        if moved {
            self.notify_visible();
        }
    }

    /// Spawns the heartbeat, the fencing of stale nodes (on the quorum leader) and the
    /// reconciliation of local partitions with each new image, until the broker is dropped.
    pub fn spawn_cluster(self: &Arc<Self>) {
        let Some(cluster) = self.cluster.as_ref() else {
            return;
        };
        let quorum = Arc::clone(&cluster.quorum);
        let (id, incarnation) = (cluster.node_id, cluster.incarnation);
        let session_timeout_ms = self.config.broker_session_timeout_ms;
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(HEARTBEAT_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut leading_since: Option<Instant> = None;
            loop {
                tick.tick().await;
                if weak.strong_count() == 0 {
                    break;
                }
                let cmd = Command::Heartbeat {
                    id,
                    incarnation,
                    now_ms: now_ms(),
                };
                if let Err(e) = quorum.propose(cmd).await {
                    tracing::debug!(error = %e, "heartbeat not accepted");
                }
                // A new quorum leader first waits one session timeout: heartbeats could not be
                // committed while there was no leader, so the image's are stale for everyone.
                if quorum.leader() == Some(id) {
                    let since = *leading_since.get_or_insert_with(Instant::now);
                    let settled = since.elapsed().as_millis() as i64 >= session_timeout_ms;
                    if settled {
                        let fenced = quorum.fence_stale_nodes(now_ms(), session_timeout_ms).await;
                        if !fenced.is_empty() {
                            tracing::warn!(nodes = ?fenced, "fenced nodes that stopped heartbeating");
                        }
                    }
                } else {
                    leading_since = None;
                }
                // A node fenced while it was away (its heartbeats were late) comes back, unless
                // it is stopping.
                let stopping = weak
                    .upgrade()
                    .is_none_or(|b| b.stopping.load(std::sync::atomic::Ordering::Acquire));
                let image = quorum.image();
                if !stopping
                    && image.nodes.get(&id).is_some_and(|n| n.fenced)
                    && let Err(e) = quorum.propose(Command::UnfenceNode { id }).await
                {
                    tracing::debug!(error = %e, "unfence not accepted");
                }
            }
        });
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(REPLICATION_TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut n: u64 = 0;
            loop {
                tick.tick().await;
                let Some(broker) = weak.upgrade() else { break };
                n += 1;
                let checkpoint = n.is_multiple_of(HW_CHECKPOINT_TICKS);
                let _ =
                    tokio::task::spawn_blocking(move || broker.replication_tick(checkpoint)).await;
            }
        });
        let mut rx = cluster.quorum.subscribe();
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let image = Arc::clone(&rx.borrow_and_update());
                let Some(broker) = weak.upgrade() else { break };
                let _ = tokio::task::spawn_blocking(move || broker.reconcile(&image)).await;
                if rx.changed().await.is_err() {
                    break;
                }
            }
        });
    }
}

/// The ACLs and credentials of the image a node last took them from (`CLU-4`).
#[derive(Debug, Default)]
pub(crate) struct SecuritySeen {
    /// Whether anything was taken yet.
    synced: bool,
    /// The applied index of that image.
    index: u64,
    acls: BTreeSet<AclRecord>,
    scram: BTreeMap<String, BTreeMap<String, ScramRecord>>,
}

impl Broker {
    /// Replaces the authorizer's bindings and the credential store with the image's when they
    /// differ from those last taken, unless the image is older than that one (`CLU-4`).
    fn sync_security(&self, image: &MetadataImage) {
        let mut seen = self.security_seen.lock();
        if seen.synced && image.applied_index < seen.index {
            return;
        }
        if !seen.synced || seen.acls != image.acls {
            let bindings: Vec<AclBinding> = image
                .acls
                .iter()
                .filter_map(|r| match AclBinding::from_record(r) {
                    Ok(b) => Some(b),
                    Err(e) => {
                        tracing::warn!(acl = %r, error = %e, "skipping an ACL binding this node cannot use");
                        None
                    }
                })
                .collect();
            let _ops = self.acl_ops.lock();
            let count = bindings.len();
            *self.acls.write() = Acls::new(self.config.authorizer.clone(), bindings);
            if seen.synced {
                tracing::info!(acls = count, "ACLs updated from the cluster metadata");
            }
            seen.acls = image.acls.clone();
        }
        let credentials_differ = !seen.synced || seen.scram != image.scram_credentials;
        if credentials_differ {
            let replaced = self
                .credentials
                .replace_from_image(&image.scram_credentials);
            if replaced && seen.synced {
                tracing::info!(
                    users = image.scram_credentials.len(),
                    "SCRAM credentials updated from the cluster metadata"
                );
            }
            seen.scram = image.scram_credentials.clone();
        }
        seen.index = image.applied_index;
        seen.synced = true;
    }

    /// Proposes `bindings` (`CreateAcls`, in commands of at most [`ACLS_PER_COMMAND_MAX`]) and
    /// answers once this node's image holds them all (`CLU-3`).
    pub(crate) fn create_acls_in_cluster(&self, bindings: &[AclBinding]) -> Result<(), TopicError> {
        let records: Vec<AclRecord> = bindings.iter().map(AclBinding::to_record).collect();
        for chunk in records.chunks(ACLS_PER_COMMAND_MAX) {
            let cmd = Command::CreateAcls {
                bindings: chunk.to_vec(),
            };
            self.propose_and_wait(cmd, |i| chunk.iter().all(|r| i.acls.contains(r)))?;
        }
        Ok(())
    }

    /// Proposes the removal of exactly `bindings` (`DeleteAcls`) and answers once this node's
    /// image holds none of them (`CLU-3`).
    pub(crate) fn delete_acls_in_cluster<'a>(
        &self,
        bindings: impl Iterator<Item = &'a AclBinding>,
    ) -> Result<(), TopicError> {
        let records: Vec<AclRecord> = bindings
            .map(AclBinding::to_record)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        for chunk in records.chunks(ACLS_PER_COMMAND_MAX) {
            let cmd = Command::DeleteAcls {
                bindings: chunk.to_vec(),
            };
            self.propose_and_wait(cmd, |i| chunk.iter().all(|r| !i.acls.contains(r)))?;
        }
        Ok(())
    }

    /// Checks one credential change against this node's credentials, proposes it and answers
    /// once this node's image shows it (`CLU-3`). The quorum refuses deleting a credential
    /// that another node deleted meanwhile (RESOURCE_NOT_FOUND).
    pub(crate) fn alter_credential_in_cluster(
        &self,
        change: CredentialChange,
    ) -> Result<(), TopicError> {
        change.check(&self.credentials.snapshot())?;
        match change {
            CredentialChange::Upsert {
                user,
                mechanism,
                credential,
            } => {
                let record = credentials::to_record(&credential);
                let name = mechanism.name();
                let cmd = Command::UpsertScramCredential {
                    user: user.clone(),
                    mechanism: name.to_owned(),
                    salt: record.salt.clone(),
                    iterations: record.iterations,
                    stored_key: record.stored_key.clone(),
                    server_key: record.server_key.clone(),
                };
                // Shown once this node's image holds it, or a credential written after it by
                // another node (the last write wins, as two AlterUserScramCredentials racing
                // on one Kafka cluster do).
                let current = |i: &basalt_cluster::metadata::MetadataImage| {
                    i.scram_credentials
                        .get(&user)
                        .and_then(|m| m.get(name))
                        .cloned()
                };
                let before = self.image().and_then(|i| current(&i));
                self.propose_and_wait(cmd, |i| {
                    let now = current(i);
                    now.as_ref() == Some(&record) || (now.is_some() && now != before)
                })?;
            }
            CredentialChange::Delete { user, mechanism } => {
                let name = mechanism.name();
                let cmd = Command::DeleteScramCredential {
                    user: user.clone(),
                    mechanism: name.to_owned(),
                };
                self.propose_and_wait(cmd, |i| {
                    i.scram_credentials
                        .get(&user)
                        .is_none_or(|m| !m.contains_key(name))
                })?;
            }
        }
        Ok(())
    }
}

/// Imports the ACLs of an `acls.json` and the users of a `credentials.json` written before the
/// cluster metadata held them (`CLU-4`): bindings the image lacks are created, and users it
/// does not know get the file's credentials (a user the image knows keeps the image's). Each
/// file is then renamed `<name>.imported`, so the import happens once and a binding or user
/// deleted later is not brought back.
pub(crate) fn import_security(link: &ClusterLink, data_dir: &Path) -> Result<(), String> {
    let acl_file = data_dir.join(crate::acl_store::FILE_NAME);
    if acl_file.exists() {
        let bindings = crate::acl_store::AclStore::new(data_dir)
            .load()
            .map_err(|e| format!("cannot import ACLs: {e}"))?;
        let image = link.quorum.image();
        let missing: Vec<AclRecord> = bindings
            .iter()
            .map(AclBinding::to_record)
            .filter(|r| !image.acls.contains(r))
            .collect();
        block_on(async {
            for chunk in missing.chunks(ACLS_PER_COMMAND_MAX) {
                let cmd = Command::CreateAcls {
                    bindings: chunk.to_vec(),
                };
                propose_retrying(&link.quorum, cmd).await.map_err(|e| {
                    format!("cannot import the ACLs of {}: {e}", acl_file.display())
                })?;
            }
            wait_image(&link.quorum, |i| missing.iter().all(|r| i.acls.contains(r)))
                .await
                .map(|_| ())
                .map_err(|e| e.message)
        })?;
        tracing::info!(file = %acl_file.display(), bindings = bindings.len(), new = missing.len(), "imported ACLs into the cluster metadata");
        set_aside(&acl_file);
    }
    let cred_file = data_dir.join(credentials::FILE_NAME);
    if let Some(users) = credentials::read_file(data_dir)
        .map_err(|e| format!("cannot import SCRAM credentials: {e}"))?
    {
        let image = link.quorum.image();
        let missing: Vec<(&String, &BTreeMap<basalt_server::Mechanism, _>)> = users
            .iter()
            .filter(|(u, _)| !image.scram_credentials.contains_key(*u))
            .collect();
        block_on(async {
            for (user, mechanisms) in &missing {
                for (mechanism, c) in *mechanisms {
                    let r = credentials::to_record(c);
                    let cmd = Command::UpsertScramCredential {
                        user: (*user).clone(),
                        mechanism: mechanism.name().to_owned(),
                        salt: r.salt,
                        iterations: r.iterations,
                        stored_key: r.stored_key,
                        server_key: r.server_key,
                    };
                    propose_retrying(&link.quorum, cmd).await.map_err(|e| {
                        format!("cannot import the credentials of user {user}: {e}")
                    })?;
                }
            }
            wait_image(&link.quorum, |i| {
                missing
                    .iter()
                    .all(|(u, _)| i.scram_credentials.contains_key(*u))
            })
            .await
            .map(|_| ())
            .map_err(|e| e.message)
        })?;
        tracing::info!(file = %cred_file.display(), users = users.len(), new = missing.len(), "imported SCRAM credentials into the cluster metadata");
        set_aside(&cred_file);
    }
    Ok(())
}

/// Renames an imported file to `<name>.imported` (kept for the operator, never read again).
fn set_aside(path: &Path) {
    let mut to = path.as_os_str().to_owned();
    to.push(".imported");
    let synced = std::fs::rename(path, &to).and_then(|()| match path.parent() {
        Some(dir) => std::fs::File::open(dir)?.sync_all(),
        None => Ok(()),
    });
    if let Err(e) = synced {
        tracing::warn!(file = %path.display(), error = %e, "cannot rename the imported file; it will be imported again at the next start");
    }
}

/// Imports the topics of a `topics.json` written before the quorum existed into an image that
/// has no topics yet, with their ids and every partition on this node.
pub(crate) fn import_topics(
    link: &ClusterLink,
    topics: &BTreeMap<String, Arc<Topic>>,
) -> Result<(), String> {
    if topics.is_empty() || !link.quorum.image().topics.is_empty() {
        return Ok(());
    }
    block_on(async {
        for t in topics.values() {
            let id = TopicId(*t.id.as_bytes());
            let cmd = Command::CreateTopic {
                id,
                name: t.meta.name.clone(),
                configs: t.meta.configs.clone(),
                assignments: vec![vec![link.node_id]; t.meta.partitions as usize],
            };
            match propose_retrying(&link.quorum, cmd).await {
                Ok(_) => {
                    tracing::info!(topic = %t.meta.name, "imported topic into the cluster metadata")
                }
                Err(e) => {
                    tracing::warn!(topic = %t.meta.name, error = %e, "cannot import topic into the cluster metadata")
                }
            }
        }
        let names: Vec<String> = topics.keys().cloned().collect();
        wait_image(&link.quorum, |i| {
            names.iter().all(|n| i.topics.contains_key(n))
        })
        .await
        .map(|_| ())
        .map_err(|e| e.message)
    })
}

fn topic_uuid(id: &TopicId) -> Uuid {
    Uuid::from_bytes(id.0)
}

fn rejected(r: &basalt_cluster::metadata::Rejection) -> TopicError {
    TopicError::new(rejection_code(r), r.to_string())
}

impl Broker {
    /// Makes the local topics and partitions match `image` (`CLU-1`): opens the logs of new
    /// topics and partitions, applies config and leader changes, deletes the logs of topics
    /// the image no longer holds (or holds under another id), and rewrites `topics.json`.
    pub fn reconcile(&self, image: &MetadataImage) {
        if self.cluster.is_none() {
            return;
        }
        self.sync_security(image);
        let _ops = self.topic_ops.lock();
        let current: BTreeMap<String, Arc<Topic>> = self.topics.read().clone();
        let mut next = current.clone();
        let mut changed = false;
        for (name, topic) in &current {
            let same = image
                .topic(name)
                .is_some_and(|r| r.id.to_string() == topic.meta.id);
            if !same {
                next.remove(name);
                changed = true;
                for p in 0..topic.meta.partitions {
                    if let Err(e) = self.storage.delete_log(&topic.meta.log_name(p)) {
                        tracing::error!(topic = %name, partition = p, error = %e, "could not delete partition data");
                    }
                }
                tracing::info!(topic = %name, "deleted topic");
            }
        }
        for (name, record) in &image.topics {
            let leaders: Vec<i32> = record
                .partitions
                .iter()
                .map(|p| p.leader.unwrap_or(-1))
                .collect();
            let count = record.partitions.len() as i32;
            let meta = TopicMeta {
                name: name.clone(),
                id: record.id.to_string(),
                partitions: count,
                configs: record.configs.clone(),
            };
            let Some(existing) = next.get(name).cloned() else {
                match open_topic(&self.storage, &self.config, meta) {
                    Ok(mut topic) => {
                        topic.leaders = leaders;
                        tracing::info!(topic = %name, partitions = count, "created topic");
                        next.insert(name.clone(), Arc::new(topic));
                        changed = true;
                    }
                    Err(e) => {
                        tracing::error!(topic = %name, error = %e, "cannot open the topic's partitions")
                    }
                }
                continue;
            };
            if existing.meta == meta && existing.leaders == leaders {
                continue;
            }
            let effective = self.config.effective(&meta.configs);
            let mut partitions = existing.partitions.clone();
            let mut failed = false;
            for p in existing.meta.partitions..count {
                match open_partition(&self.storage, &meta, p, &effective) {
                    Ok(partition) => partitions.push(Arc::new(partition)),
                    Err(e) => {
                        tracing::error!(topic = %name, partition = p, error = %e, "cannot open a new partition");
                        failed = true;
                        break;
                    }
                }
            }
            if failed {
                continue;
            }
            if existing.meta.configs != meta.configs {
                for p in &partitions {
                    p.set_config(effective.clone());
                }
            }
            if existing.meta.partitions != count {
                tracing::info!(topic = %name, from = existing.meta.partitions, to = count, "added partitions");
            }
            next.insert(
                name.clone(),
                Arc::new(Topic {
                    id: existing.id,
                    meta,
                    partitions,
                    leaders,
                }),
            );
            changed = true;
        }
        // Roles: leader, follower (fetching from the leader) or none, with their epochs.
        let node_id = self.config.node_id;
        let now = now_ms();
        let mut follow: BTreeMap<NodeId, Vec<Arc<Partition>>> = BTreeMap::new();
        let mut moved = false;
        let mut became_leader: Vec<(String, i32)> = Vec::new();
        for (name, record) in &image.topics {
            let Some(topic) = next.get(name) else {
                continue;
            };
            for (p, partition) in record.partitions.iter().zip(&topic.partitions) {
                let leadership = PartitionLeadership {
                    replicas: p.replicas.clone(),
                    isr: p.isr.clone(),
                    leader: p.leader,
                    leader_epoch: p.leader_epoch,
                    partition_epoch: p.partition_epoch,
                };
                match partition.apply_leadership(
                    node_id,
                    &leadership,
                    self.config.replica_lag_time_max_ms,
                    now,
                ) {
                    Ok(change) => {
                        moved |= change.hw_advanced;
                        if change.became_leader {
                            became_leader.push((name.clone(), partition.index));
                        }
                        if let Some(leader) = change.follow {
                            follow
                                .entry(leader)
                                .or_default()
                                .push(Arc::clone(partition));
                        }
                    }
                    Err(e) => {
                        tracing::error!(topic = %name, partition = partition.index, error = %e, "cannot take up the partition's role")
                    }
                }
            }
        }
        if let Some(cluster) = &self.cluster {
            self.fetchers.update(
                &cluster.quorum,
                &self.config.inter_broker,
                &self.visible,
                follow,
            );
        }
        if moved {
            self.notify_visible();
        }
        if changed {
            let metas: Vec<TopicMeta> = next.values().map(|t| t.meta.clone()).collect();
            *self.topics.write() = next;
            if let Err(e) = self.store.save(&metas) {
                tracing::warn!(error = %e, "cannot write this node's copy of the topics");
            }
        }
        // Coordinators move with the leadership of their internal partitions.
        for (name, index) in became_leader {
            match name.as_str() {
                crate::groups::OFFSETS_TOPIC => self.coordinator.load_partition(self, index),
                crate::txns::TXN_TOPIC => self.txns.load_partition(self, index),
                _ => {}
            }
        }
    }

    pub(crate) fn create_topic_in_cluster(
        &self,
        name: &str,
        partitions: i32,
        replication: i16,
        assignments: Option<Vec<Vec<i32>>>,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<Arc<Topic>, TopicError> {
        let image = self.image().expect("cluster mode");
        if image.topic(name).is_some() {
            return Err(TopicError::new(
                ErrorCode::TopicAlreadyExists,
                format!("topic {name} already exists"),
            ));
        }
        let assignments = match assignments {
            Some(a) => a,
            None => place(&image, partitions, replication).map_err(|r| rejected(&r))?,
        };
        let id = TopicId(*new_topic_id().as_bytes());
        let meta = TopicMeta {
            name: name.to_owned(),
            id: id.to_string(),
            partitions: assignments.len() as i32,
            configs: configs.clone(),
        };
        if validate_only {
            return Ok(Arc::new(Topic {
                id: meta.uuid(),
                meta,
                partitions: Vec::new(),
                leaders: Vec::new(),
            }));
        }
        let cmd = Command::CreateTopic {
            id,
            name: name.to_owned(),
            configs,
            assignments,
        };
        if let Err(e) = self.propose_and_wait(cmd, |i| i.topic(name).is_some_and(|t| t.id == id)) {
            if e.code == ErrorCode::TopicAlreadyExists {
                // Created meanwhile through another node: have it here before answering, so a
                // caller that takes the existing topic (auto-creation) finds it.
                let cluster = self.cluster.as_ref().expect("cluster mode");
                if let Ok(image) =
                    block_on(wait_image(&cluster.quorum, |i| i.topic(name).is_some()))
                {
                    self.reconcile(&image);
                }
            }
            return Err(e);
        }
        self.topic(name).ok_or_else(|| {
            TopicError::new(
                ErrorCode::KafkaStorageError,
                format!("topic {name} was created but its partitions could not be opened here"),
            )
        })
    }

    pub(crate) fn delete_topic_in_cluster(&self, name: &str) -> Result<Uuid, TopicError> {
        let image = self.image().expect("cluster mode");
        let Some(id) = image.topic(name).map(|t| t.id) else {
            return Err(TopicError::new(
                ErrorCode::UnknownTopicOrPartition,
                format!("unknown topic {name}"),
            ));
        };
        self.propose_and_wait(Command::DeleteTopic { id }, |i| {
            i.topic_by_id(&id).is_none()
        })?;
        Ok(topic_uuid(&id))
    }

    pub(crate) fn create_partitions_in_cluster(
        &self,
        topic: &Topic,
        count: i32,
        assignments: Option<&[Vec<i32>]>,
        validate_only: bool,
    ) -> Result<Arc<Topic>, TopicError> {
        let image = self.image().expect("cluster mode");
        let id = TopicId(*topic.id.as_bytes());
        let cmd = match assignments {
            Some(a) => Command::CreatePartitions {
                id,
                assignments: a.to_vec(),
            },
            None => Command::create_partitions(&image, id, count).map_err(|r| rejected(&r))?,
        };
        if validate_only {
            return Ok(Arc::new(Topic {
                meta: TopicMeta {
                    partitions: count,
                    ..topic.meta.clone()
                },
                id: topic.id,
                partitions: Vec::new(),
                leaders: Vec::new(),
            }));
        }
        let n = count as usize;
        self.propose_and_wait(cmd, |i| {
            i.topic_by_id(&id).is_some_and(|t| t.partitions.len() >= n)
        })?;
        self.topic(&topic.meta.name)
            .ok_or_else(|| TopicError::new(ErrorCode::UnknownTopicOrPartition, "topic vanished"))
    }

    pub(crate) fn alter_configs_in_cluster(
        &self,
        name: &str,
        old: &BTreeMap<String, String>,
        new: BTreeMap<String, String>,
    ) -> Result<(), TopicError> {
        let changes = config_changes(old, &new);
        let cmd = Command::AlterConfigs {
            resource: ConfigResource::Topic(name.to_owned()),
            changes,
        };
        self.propose_and_wait(cmd, |i| i.topic(name).is_some_and(|t| t.configs == new))?;
        Ok(())
    }
}

impl Broker {
    /// Writes share group `group`'s state of partition `index` of `topic` into the metadata,
    /// as the partition's leader at `leader_epoch` (`META-9`); NOT_LEADER_OR_FOLLOWER when
    /// another leader was elected meanwhile. It returns once the quorum committed the write:
    /// this node serves the share partition from memory, so it need not wait for its own
    /// image, and a write changes no partition, so nothing is reconciled.
    pub(crate) async fn put_share_state(
        &self,
        group: &str,
        (topic, index): (Uuid, i32),
        leader_epoch: i32,
        state: String,
    ) -> Result<(), TopicError> {
        let cluster = self.cluster.as_ref().expect("called in cluster mode");
        let id = TopicId(*topic.as_bytes());
        let cmd = Command::PutShareState {
            group: group.to_owned(),
            topic: id,
            partition: index,
            leader_epoch,
            state: Some(state),
        };
        propose_retrying(&cluster.quorum, cmd)
            .await
            .map_err(|e| TopicError::new(propose_error_code(&e), e.to_string()))?;
        Ok(())
    }

    pub(crate) fn alter_group_configs_in_cluster(
        &self,
        group: &str,
        old: &BTreeMap<String, String>,
        new: BTreeMap<String, String>,
    ) -> Result<(), TopicError> {
        let changes = config_changes(old, &new);
        let cmd = Command::AlterConfigs {
            resource: ConfigResource::Group(group.to_owned()),
            changes,
        };
        self.propose_and_wait(cmd, |i| {
            i.group_configs.get(group).cloned().unwrap_or_default() == new
        })?;
        Ok(())
    }
}

/// The changes that turn configs `old` into `new`: set (`Some`) or removed (`None`) keys.
fn config_changes(
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
) -> BTreeMap<String, Option<String>> {
    let mut changes: BTreeMap<String, Option<String>> = BTreeMap::new();
    for (k, v) in new {
        if old.get(k) != Some(v) {
            changes.insert(k.clone(), Some(v.clone()));
        }
    }
    for k in old.keys() {
        if !new.contains_key(k) {
            changes.insert(k.clone(), None);
        }
    }
    changes
}

/// Partition `index` of topic `name` in `image`, with the topic's id; UNKNOWN_TOPIC_OR_PARTITION
/// when there is none.
fn partition_of<'a>(
    image: &'a MetadataImage,
    name: &str,
    index: i32,
) -> Result<(TopicId, &'a PartitionRecord), TopicError> {
    let topic = image
        .topic(name)
        .ok_or_else(|| unknown_partition(name, index))?;
    let p = usize::try_from(index)
        .ok()
        .and_then(|i| topic.partitions.get(i))
        .ok_or_else(|| unknown_partition(name, index))?;
    Ok((topic.id, p))
}

fn unknown_partition(name: &str, index: i32) -> TopicError {
    TopicError::new(
        ErrorCode::UnknownTopicOrPartition,
        format!("unknown topic or partition {name}-{index}"),
    )
}

/// Which leader an ElectLeaders request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Election {
    /// The first replica, if it is live and in sync (Kafka's election type 0).
    Preferred,
    /// For a partition without a leader: an in-sync live replica, else any live replica, even
    /// one that may be behind (type 1; Kafka's explicit unclean election, which an operator
    /// asks for whatever `unclean.leader.election.enable` says).
    Unclean,
}

impl Broker {
    /// Starts (`Some`) or cancels (`None`) moving partition `index` of topic `name` to `target`
    /// (AlterPartitionReassignments). Answers once this node's image shows the reassignment
    /// started, finished or cancelled (`CLU-3`); the followers it adds then catch up, and the
    /// image finishes it when they are in sync (`META-7`). On a single node the only valid
    /// target is this node, which changes nothing.
    pub(crate) fn reassign_partition(
        &self,
        name: &str,
        index: i32,
        target: Option<Vec<NodeId>>,
    ) -> Result<(), TopicError> {
        let Some(image) = self.image() else {
            return self.reassign_alone(name, index, target);
        };
        let (id, _) = partition_of(&image, name, index)?;
        let cmd = Command::ReassignPartitions {
            topic: id,
            partition: index,
            target: target.clone(),
        };
        self.propose_and_wait(cmd, |i| {
            i.topic_by_id(&id)
                .and_then(|t| t.partitions.get(index as usize))
                .is_none_or(|p| match &target {
                    Some(t) => p.target_replicas() == t.as_slice(),
                    None => p.reassignment.is_none(),
                })
        })?;
        Ok(())
    }

    fn reassign_alone(
        &self,
        name: &str,
        index: i32,
        target: Option<Vec<NodeId>>,
    ) -> Result<(), TopicError> {
        let topic = self
            .topic(name)
            .ok_or_else(|| unknown_partition(name, index))?;
        if !(0..topic.meta.partitions).contains(&index) {
            return Err(unknown_partition(name, index));
        }
        let me = self.config.node_id;
        match target {
            None => Err(TopicError::new(
                ErrorCode::NoReassignmentInProgress,
                format!("no reassignment of {name}-{index} is in progress"),
            )),
            Some(t) if t == [me] => Ok(()),
            Some(t) => {
                let reason = match t.iter().find(|n| **n != me) {
                    Some(n) => format!("node {n} is not registered (this broker runs alone)"),
                    None => format!("the target {t:?} names this node more than once"),
                };
                Err(TopicError::new(ErrorCode::InvalidReplicaAssignment, reason))
            }
        }
    }

    /// Elects a leader of partition `index` of topic `name` (ElectLeaders) by proposing an
    /// AlterPartition built on the current partition epoch (retried if another change won the
    /// race), answering once this node's image shows it. ELECTION_NOT_NEEDED when the preferred
    /// replica already leads (or, for an unclean election, the partition has a leader; always
    /// on a single node), PREFERRED_LEADER_NOT_AVAILABLE when the first replica is fenced or
    /// out of sync, ELIGIBLE_LEADERS_NOT_AVAILABLE when no replica is live.
    pub(crate) fn elect_leader(
        &self,
        name: &str,
        index: i32,
        election: Election,
    ) -> Result<(), TopicError> {
        let Some(cluster) = self.cluster.as_ref() else {
            let topic = self
                .topic(name)
                .ok_or_else(|| unknown_partition(name, index))?;
            if !(0..topic.meta.partitions).contains(&index) {
                return Err(unknown_partition(name, index));
            }
            return Err(not_needed(name, index));
        };
        let mut attempts = 0;
        loop {
            attempts += 1;
            let image = cluster.quorum.image();
            let (id, p) = partition_of(&image, name, index)?;
            let live = |r: &&NodeId| image.is_live(**r);
            let (leader, isr) = match election {
                Election::Preferred => {
                    let preferred = p.replicas[0];
                    if p.leader == Some(preferred) {
                        return Err(not_needed(name, index));
                    }
                    if !p.isr.contains(&preferred) || !image.is_live(preferred) {
                        return Err(TopicError::new(
                            ErrorCode::PreferredLeaderNotAvailable,
                            format!(
                                "the preferred leader {preferred} of {name}-{index} is not live and in sync"
                            ),
                        ));
                    }
                    (preferred, p.isr.clone())
                }
                Election::Unclean => {
                    if p.leader.is_some() {
                        return Err(not_needed(name, index));
                    }
                    if let Some(&l) = p.replicas.iter().filter(live).find(|r| p.isr.contains(r)) {
                        (l, p.isr.clone())
                    } else if let Some(&l) = p.replicas.iter().find(live) {
                        tracing::warn!(
                            topic = name,
                            partition = index,
                            leader = l,
                            "unclean leader election"
                        );
                        (l, vec![l])
                    } else {
                        return Err(TopicError::new(
                            ErrorCode::EligibleLeadersNotAvailable,
                            format!("no replica of {name}-{index} is live"),
                        ));
                    }
                }
            };
            let epoch = p.partition_epoch;
            let cmd = Command::AlterPartition {
                topic: id,
                partition: index,
                leader: Some(leader),
                isr,
                partition_epoch: epoch,
            };
            match block_on(propose_retrying(&cluster.quorum, cmd)) {
                Ok(_) => {}
                Err(ProposeError::Rejected(Rejection::StalePartitionEpoch { .. }))
                    if attempts < 3 =>
                {
                    continue;
                }
                Err(e) => return Err(TopicError::new(propose_error_code(&e), e.to_string())),
            }
            let image = block_on(wait_image(&cluster.quorum, |i| {
                i.topic_by_id(&id)
                    .and_then(|t| t.partitions.get(index as usize))
                    .is_none_or(|p| p.partition_epoch > epoch)
            }))?;
            self.reconcile(&image);
            return Ok(());
        }
    }
}

fn not_needed(name: &str, index: i32) -> TopicError {
    TopicError::new(
        ErrorCode::ElectionNotNeeded,
        format!("{name}-{index} already has the leader asked for"),
    )
}
