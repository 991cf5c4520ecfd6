//! The runtime of share groups (KIP-932): the membership of the share groups this node
//! coordinates, the share-partition state of the partitions it leads, the share sessions of the
//! members fetching from it, and the group configs share groups read.
//!
//! The state machines are pure ([`basalt_coordinator::share`]); this module gives them a
//! clock, locks, files and wake-ups:
//! - membership lives in memory: after a restart members get UNKNOWN_MEMBER_ID and join again,
//!   as they do when a coordinator moves;
//! - each share partition's state is a [`ShareSnapshot`], written before the acknowledgement
//!   that changed it is answered (`SHR-5`): on a node alone, to
//!   `<data>/share-groups/<group, hex>/<topic id>-<partition>.json` atomically (write, fsync,
//!   rename); in a cluster, into the metadata image (`META-9`) by the partition's leader under
//!   its leader epoch, so the next leader goes on from it after a failover (`SHR-7`);
//! - share sessions (ShareFetch/ShareAcknowledge epochs) live in memory; a member's records are
//!   released when its session closes or it leaves the group here;
//! - group configs (`share.auto.offset.reset` ...) are in the metadata image in a cluster and
//!   in `group-configs.json` on a single node, written before the change is answered.
//!
//! # Invariants
//! - `SHR-5`: an acknowledgement is answered only after the state it produced is durable; a
//!   share partition is always written from its newest state, so a slower writer never puts
//!   an older state over a newer one, and a writer whose change an earlier write already held
//!   writes nothing (group commit).
//! - `SHR-6`: no lock of this module is held across an `.await` but a share partition's write
//!   lock (a tokio mutex), and file writes run on blocking threads.
//! - `SHR-7`: in a cluster a share partition in memory belongs to the leader epoch it was
//!   loaded under; once the partition's leader epoch moves on it is dropped, and a new leader
//!   loads the state the image holds, so a node that leads a partition again never serves a
//!   state older than the last leader's.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use basalt_cluster::metadata::TopicId;
use basalt_coordinator::GroupError;
use basalt_coordinator::share::{
    AckType, Acquired, ShareConfig, ShareGroup, ShareHeartbeat, SharePartition, ShareReply,
    ShareSnapshot,
};
use basalt_protocol::{ErrorCode, Uuid};
use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;

use crate::groups::BrokerTopics;
use crate::{Broker, TopicError, now_ms};

/// The group configs a share group reads, with their defaults.
pub const GROUP_CONFIGS: &[(&str, &str)] = &[
    ("share.auto.offset.reset", "latest"),
    ("share.isolation.level", "read_uncommitted"),
    ("share.record.lock.duration.ms", "30000"),
    ("share.session.timeout.ms", "45000"),
    ("share.heartbeat.interval.ms", "5000"),
];

/// Checks one group config.
pub fn validate_group_config(name: &str, value: &str) -> Result<(), String> {
    let int = |lo: i64, hi: i64| match value.parse::<i64>() {
        Ok(v) if (lo..=hi).contains(&v) => Ok(()),
        _ => Err(format!(
            "{name} must be an integer from {lo} to {hi}, not {value:?}"
        )),
    };
    match name {
        "share.auto.offset.reset" => match value {
            "latest" | "earliest" => Ok(()),
            _ => Err(format!("{name} must be latest or earliest, not {value:?}")),
        },
        "share.isolation.level" => match value {
            "read_uncommitted" | "read_committed" => Ok(()),
            _ => Err(format!(
                "{name} must be read_uncommitted or read_committed, not {value:?}"
            )),
        },
        "share.record.lock.duration.ms" => int(1_000, 3_600_000),
        "share.session.timeout.ms" => int(1_000, 3_600_000),
        "share.heartbeat.interval.ms" => int(100, 3_600_000),
        _ => Err(format!("unknown group config {name}")),
    }
}

/// One share partition: its state and the lock it is written under (`SHR-5`).
#[derive(Debug)]
struct Entry {
    state: Mutex<SharePartition>,
    write: tokio::sync::Mutex<()>,
    /// The file, on a node alone.
    path: PathBuf,
    group: String,
    partition: TopicPartition,
    /// The partition's leader epoch when this state was loaded (`SHR-7`).
    leader_epoch: i32,
    /// Counts the changes that must be written; bumped after each one.
    changes: AtomicU64,
    /// The count of changes the last write held: a writer that finds its change counted here
    /// has nothing to write, another writer took it along (group commit).
    written: AtomicU64,
}

/// A member's share session on this node.
#[derive(Debug, Clone)]
struct Session {
    epoch: i32,
    partitions: BTreeSet<(Uuid, i32)>,
    last_used_ms: i64,
}

type PartitionKey = (String, Uuid, i32);

/// A partition by topic id and index.
pub type TopicPartition = (Uuid, i32);

/// An error answer: the code and a message for the client.
pub type Refusal = (ErrorCode, String);

/// Share groups, share partitions and share sessions of one node.
#[derive(Debug)]
pub struct Shares {
    config: ShareConfig,
    dir: PathBuf,
    groups: Mutex<BTreeMap<String, ShareGroup>>,
    partitions: Mutex<HashMap<PartitionKey, Arc<Entry>>>,
    sessions: Mutex<HashMap<(String, String), Session>>,
    /// Group configs of a node without a metadata quorum (`group-configs.json`).
    local_configs: RwLock<BTreeMap<String, BTreeMap<String, String>>>,
    configs_file: PathBuf,
    /// Bumped when records become available again (released, lock expired).
    released: watch::Sender<u64>,
}

/// What one delivery may still return.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Records (acquired offsets).
    pub records: i64,
    /// Bytes of batches.
    pub bytes: usize,
}

/// A share partition's answer to one delivery.
#[derive(Debug)]
pub struct Delivery {
    /// The acquired ranges.
    pub acquired: Vec<Acquired>,
    /// The whole batches holding them.
    pub records: Option<basalt_protocol::Records>,
    /// The share partition, when locks that ran out changed its persisted state.
    pub expired: Option<Persist>,
}

/// The outcome of a session step of ShareFetch or ShareAcknowledge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStep {
    /// The session is open (or was opened) and the request may fetch.
    Open,
    /// The request closes the session: acknowledge, then release, no fetching.
    Closing,
}

impl Shares {
    /// The share state of the broker whose data directory is `data_dir`.
    pub fn open(data_dir: &Path, config: ShareConfig) -> std::io::Result<Self> {
        let configs_file = data_dir.join("group-configs.json");
        let local_configs = match std::fs::read(&configs_file) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| std::io::Error::other(format!("{}: {e}", configs_file.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e),
        };
        Ok(Shares {
            config,
            dir: data_dir.join("share-groups"),
            groups: Mutex::new(BTreeMap::new()),
            partitions: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
            local_configs: RwLock::new(local_configs),
            configs_file,
            released: watch::channel(0).0,
        })
    }

    /// The settings.
    pub fn config(&self) -> &ShareConfig {
        &self.config
    }

    /// A receiver that changes when records become available again.
    pub fn watch_released(&self) -> watch::Receiver<u64> {
        self.released.subscribe()
    }

    fn notify_released(&self) {
        self.released.send_modify(|v| *v = v.wrapping_add(1));
    }

    // ---- group configs ----

    /// The overrides of `group`.
    pub fn group_configs(&self, broker: &Broker, group: &str) -> BTreeMap<String, String> {
        match broker.image() {
            Some(image) => image.group_configs.get(group).cloned().unwrap_or_default(),
            None => self
                .local_configs
                .read()
                .get(group)
                .cloned()
                .unwrap_or_default(),
        }
    }

    /// The value in force of group config `name` for `group`.
    pub fn group_config(&self, broker: &Broker, group: &str, name: &str) -> String {
        self.group_configs(broker, group)
            .get(name)
            .cloned()
            .or_else(|| {
                GROUP_CONFIGS
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| (*v).to_owned())
            })
            .unwrap_or_default()
    }

    fn group_config_i64(&self, broker: &Broker, group: &str, name: &str, default: i64) -> i64 {
        self.group_config(broker, group, name)
            .parse()
            .unwrap_or(default)
    }

    /// Replaces the overrides of `group` with what `edit` makes of them, validated and
    /// persisted before this returns.
    pub fn alter_group_configs(
        &self,
        broker: &Broker,
        group: &str,
        validate_only: bool,
        edit: impl FnOnce(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>, TopicError>,
    ) -> Result<(), TopicError> {
        let current = self.group_configs(broker, group);
        let new = edit(&current)?;
        for (k, v) in &new {
            validate_group_config(k, v)
                .map_err(|e| TopicError::new(ErrorCode::InvalidConfig, e))?;
        }
        if validate_only || new == current {
            return Ok(());
        }
        if broker.cluster().is_some() {
            return broker.alter_group_configs_in_cluster(group, &current, new);
        }
        let mut all = self.local_configs.write();
        let mut next = all.clone();
        if new.is_empty() {
            next.remove(group);
        } else {
            next.insert(group.to_owned(), new);
        }
        let bytes = serde_json::to_vec_pretty(&next)
            .map_err(|e| TopicError::new(ErrorCode::KafkaStorageError, e.to_string()))?;
        write_atomically(&self.configs_file, &bytes)
            .map_err(|e| TopicError::new(ErrorCode::KafkaStorageError, e.to_string()))?;
        *all = next;
        tracing::info!(group, "altered group configs");
        Ok(())
    }

    // ---- membership ----

    /// Reads share group `id`.
    pub fn read_group<R>(&self, id: &str, f: impl FnOnce(Option<&ShareGroup>) -> R) -> R {
        f(self.groups.lock().get(id))
    }

    /// Every share group of this node, through `f`.
    pub fn for_each_group<R>(&self, mut f: impl FnMut(&ShareGroup) -> Option<R>) -> Vec<R> {
        self.groups.lock().values().filter_map(&mut f).collect()
    }

    /// Handles a ShareGroupHeartbeat for group `id`, which this node coordinates.
    pub fn heartbeat(
        &self,
        broker: &Broker,
        id: &str,
        hb: ShareHeartbeat,
    ) -> Result<ShareReply, GroupError> {
        let now = now_ms();
        let mut config = self.config.clone();
        config.session_timeout_ms = self.group_config_i64(
            broker,
            id,
            "share.session.timeout.ms",
            i64::from(config.session_timeout_ms),
        ) as i32;
        config.heartbeat_interval_ms = self.group_config_i64(
            broker,
            id,
            "share.heartbeat.interval.ms",
            i64::from(config.heartbeat_interval_ms),
        ) as i32;
        let joining = hb.member_epoch == 0;
        let lookup = BrokerTopics(broker);
        // A member that leaves keeps its share sessions: its last acknowledgements come after
        // the leave, in the ShareAcknowledge that closes each session.
        let mut groups = self.groups.lock();
        if !groups.contains_key(id) {
            if !joining {
                return Err(GroupError::new(
                    ErrorCode::UnknownMemberId,
                    format!("share group {id} has no members"),
                ));
            }
            groups.insert(id.to_owned(), ShareGroup::new(id, now));
        }
        let group = groups.get_mut(id).expect("inserted above");
        group.heartbeat(hb, now, &config, &lookup)
    }

    /// Removes share group `id` if it has no members; whether it existed.
    pub fn delete_group(&self, id: &str) -> Result<bool, GroupError> {
        let mut groups = self.groups.lock();
        match groups.get(id) {
            None => Ok(false),
            Some(g) if !g.members().is_empty() => Err(GroupError::new(
                ErrorCode::NonEmptyGroup,
                format!("share group {id} has members"),
            )),
            Some(_) => {
                groups.remove(id);
                Ok(true)
            }
        }
    }

    /// A member left or timed out: its sessions here close and its records are released.
    fn member_gone(&self, group: &str, member: &str) {
        let session = self
            .sessions
            .lock()
            .remove(&(group.to_owned(), member.to_owned()));
        if let Some(session) = session {
            self.release_member(group, member, &session.partitions);
        }
    }

    fn release_member(&self, group: &str, member: &str, partitions: &BTreeSet<(Uuid, i32)>) {
        let mut any = false;
        for (topic, partition) in partitions {
            if let Some(entry) = self.entry_if_loaded(group, *topic, *partition) {
                any |= entry
                    .state
                    .lock()
                    .release_member(member, self.config.delivery_limit);
            }
        }
        if any {
            self.notify_released();
        }
    }

    /// Timers: members whose session ran out leave, locks that ran out are released, idle
    /// sessions are dropped, share partitions of deleted topics are removed. Changed share
    /// partitions are written.
    pub async fn tick(&self, broker: &Broker) {
        let now = now_ms();
        let gone: Vec<(String, String)> = {
            let mut groups = self.groups.lock();
            groups
                .values_mut()
                .flat_map(|g| {
                    let id = g.id().to_owned();
                    g.expire(now).into_iter().map(move |m| (id.clone(), m))
                })
                .collect()
        };
        for (group, member) in &gone {
            tracing::info!(group, member, "share group member timed out");
            self.member_gone(group, member);
        }
        let idle = i64::from(self.config.session_timeout_ms) * 2;
        self.sessions
            .lock()
            .retain(|_, s| now - s.last_used_ms < idle);
        // Share partitions of deleted topics go, with their files; in a cluster, so do those
        // of a leader epoch that is over (`SHR-7`).
        let in_cluster = broker.cluster().is_some();
        let deleted: Vec<Arc<Entry>> = {
            let mut partitions = self.partitions.lock();
            let mut deleted = Vec::new();
            partitions.retain(|key, e| match broker.topic_by_id(&key.1) {
                None => {
                    deleted.push(Arc::clone(e));
                    false
                }
                Some(topic) => !in_cluster || current_epoch(&topic, key.2) == Some(e.leader_epoch),
            });
            deleted
        };
        if !deleted.is_empty() && !in_cluster {
            let _ = tokio::task::spawn_blocking(move || {
                for e in deleted {
                    let _writing = e.write.blocking_lock();
                    let _ = std::fs::remove_file(&e.path);
                }
            })
            .await;
        }
        let entries: Vec<Arc<Entry>> = self.partitions.lock().values().cloned().collect();
        let mut changed = Vec::new();
        let mut released = !gone.is_empty();
        for e in entries {
            let mut state = e.state.lock();
            released |= state.has_expired_lock(now);
            if state.expire_locks(now, self.config.delivery_limit) {
                drop(state);
                changed.push(e);
            }
        }
        if released {
            self.notify_released();
        }
        if !changed.is_empty()
            && let Err((_, err)) =
                write_all(broker, changed.into_iter().map(Persist::new).collect()).await
        {
            tracing::warn!(error = %err, "cannot write share state");
        }
    }

    // ---- sessions ----

    /// Applies a request's session epoch for `member` of `group`: 0 opens a new session, -1
    /// closes it after this request, any other must be the session's next epoch.
    /// `add`/`forget` change its partitions. Forgotten partitions release the member's records.
    pub fn session_step(
        &self,
        group: &str,
        member: &str,
        epoch: i32,
        add: &[(Uuid, i32)],
        forget: &[(Uuid, i32)],
    ) -> Result<(SessionStep, Vec<TopicPartition>), Refusal> {
        let now = now_ms();
        let key = (group.to_owned(), member.to_owned());
        let mut sessions = self.sessions.lock();
        let step = match epoch {
            0 => {
                let old = sessions.insert(
                    key.clone(),
                    Session {
                        epoch: 1,
                        partitions: BTreeSet::new(),
                        last_used_ms: now,
                    },
                );
                if let Some(old) = old {
                    drop(sessions);
                    self.release_member(group, member, &old.partitions);
                    sessions = self.sessions.lock();
                }
                SessionStep::Open
            }
            -1 => {
                if !sessions.contains_key(&key) {
                    return Err((
                        ErrorCode::ShareSessionNotFound,
                        format!("member {member} of {group} has no share session here"),
                    ));
                }
                SessionStep::Closing
            }
            e => {
                let Some(s) = sessions.get_mut(&key) else {
                    return Err((
                        ErrorCode::ShareSessionNotFound,
                        format!("member {member} of {group} has no share session here"),
                    ));
                };
                if s.epoch != e {
                    return Err((
                        ErrorCode::InvalidShareSessionEpoch,
                        format!("the share session is at epoch {}, not {e}", s.epoch),
                    ));
                }
                s.epoch = if s.epoch == i32::MAX { 1 } else { s.epoch + 1 };
                SessionStep::Open
            }
        };
        let Some(s) = sessions.get_mut(&key) else {
            return Ok((step, Vec::new()));
        };
        s.last_used_ms = now;
        s.partitions.extend(add.iter().copied());
        for f in forget {
            s.partitions.remove(f);
        }
        // Each request starts at the next partition, so a request's record budget is not
        // always spent on the session's first partitions.
        let mut partitions: Vec<TopicPartition> = s.partitions.iter().copied().collect();
        if !partitions.is_empty() {
            let turn = usize::try_from(s.epoch).unwrap_or(0) % partitions.len();
            partitions.rotate_left(turn);
        }
        drop(sessions);
        if !forget.is_empty() {
            self.release_member(group, member, &forget.iter().copied().collect());
        }
        Ok((step, partitions))
    }

    /// Closes `member`'s session after a request with epoch -1: its records are released.
    pub fn close_session(&self, group: &str, member: &str) {
        self.member_gone(group, member);
    }

    // ---- share partitions ----

    fn entry_if_loaded(&self, group: &str, topic: Uuid, partition: i32) -> Option<Arc<Entry>> {
        self.partitions
            .lock()
            .get(&(group.to_owned(), topic, partition))
            .cloned()
    }

    /// The share partition of `group` on partition `index` of `topic`, loaded from its file or
    /// started at `share.auto.offset.reset`.
    fn entry(
        &self,
        broker: &Broker,
        group: &str,
        topic: &crate::Topic,
        index: i32,
    ) -> std::io::Result<Arc<Entry>> {
        let partition = usize::try_from(index)
            .ok()
            .and_then(|i| topic.partitions.get(i))
            .ok_or_else(|| std::io::Error::other("no such partition"))?;
        let epoch = partition.leader_epoch();
        let image = broker.image();
        if let Some(e) = self.entry_if_loaded(group, topic.id, index)
            && (image.is_none() || e.leader_epoch == epoch)
        {
            return Ok(e);
        }
        let path = self
            .dir
            .join(hex(group.as_bytes()))
            .join(format!("{}-{index}.json", hex(&topic.id.0)));
        let stored = match &image {
            // In a cluster the image holds the last leader's state (`SHR-7`).
            Some(image) => image
                .share_state(group, &TopicId(topic.id.0), index)
                .map(|r| r.state.clone().into_bytes()),
            None => match std::fs::read(&path) {
                Ok(bytes) => Some(bytes),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(e),
            },
        };
        let state = match stored {
            Some(bytes) => {
                let snapshot: ShareSnapshot = serde_json::from_slice(&bytes).map_err(|e| {
                    std::io::Error::other(format!(
                        "share state of {group} on {}-{index}: {e}",
                        topic.meta.name
                    ))
                })?;
                SharePartition::restore(&snapshot)
            }
            None => {
                let reset = self.group_config(broker, group, "share.auto.offset.reset");
                SharePartition::new(if reset == "earliest" {
                    partition.log.log_start_offset()
                } else {
                    partition.high_watermark()
                })
            }
        };
        let entry = Arc::new(Entry {
            state: Mutex::new(state),
            write: tokio::sync::Mutex::new(()),
            path,
            group: group.to_owned(),
            partition: (topic.id, index),
            leader_epoch: epoch,
            changes: AtomicU64::new(0),
            written: AtomicU64::new(0),
        });
        let mut partitions = self.partitions.lock();
        let slot = partitions
            .entry((group.to_owned(), topic.id, index))
            .or_insert_with(|| Arc::clone(&entry));
        if slot.leader_epoch != epoch {
            *slot = entry;
        }
        Ok(Arc::clone(slot))
    }

    /// Applies `member`'s acknowledgements on one partition; the entry to persist when
    /// something changed.
    pub fn acknowledge(
        &self,
        broker: &Broker,
        group: &str,
        member: &str,
        topic: &crate::Topic,
        index: i32,
        batches: &[(i64, i64, Vec<i8>)],
    ) -> Result<Option<Persist>, (ErrorCode, String)> {
        let entry = self
            .entry(broker, group, topic, index)
            .map_err(|e| (ErrorCode::KafkaStorageError, e.to_string()))?;
        let mut parsed = Vec::with_capacity(batches.len());
        for (first, last, types) in batches {
            let types: Option<Vec<AckType>> =
                types.iter().map(|t| AckType::from_code(*t)).collect();
            let Some(types) = types else {
                return Err((
                    ErrorCode::InvalidRequest,
                    format!("unknown acknowledge type in {first}..={last}"),
                ));
            };
            parsed.push((*first, *last, types));
        }
        let mut released = false;
        {
            let mut state = entry.state.lock();
            // Check every batch first: a refused acknowledgement changes nothing (SHR-1).
            let mut trial = state.clone();
            for (first, last, types) in &parsed {
                trial
                    .acknowledge(member, *first, *last, types, self.config.delivery_limit)
                    .map_err(|e| (e.code, e.message))?;
                released |= types.contains(&AckType::Release);
            }
            *state = trial;
        }
        if released {
            self.notify_released();
        }
        Ok(Some(Persist::new(entry)))
    }

    /// Acquires records of partition `index` of `topic` for `member`, within `budget` (whole
    /// batches, at least one).
    pub fn deliver(
        &self,
        broker: &Broker,
        (group, member): (&str, &str),
        topic: &crate::Topic,
        index: i32,
        budget: Budget,
    ) -> Result<Delivery, (ErrorCode, String)> {
        let entry = self
            .entry(broker, group, topic, index)
            .map_err(|e| (ErrorCode::KafkaStorageError, e.to_string()))?;
        let partition = usize::try_from(index)
            .ok()
            .and_then(|i| topic.partitions.get(i))
            .ok_or_else(|| {
                (
                    ErrorCode::UnknownTopicOrPartition,
                    format!("{} has no partition {index}", topic.meta.name),
                )
            })?;
        let lock_ms = self.group_config_i64(
            broker,
            group,
            "share.record.lock.duration.ms",
            i64::from(self.config.record_lock_duration_ms),
        );
        let now = now_ms();
        let read_committed =
            self.group_config(broker, group, "share.isolation.level") == "read_committed";
        let mut state = entry.state.lock();
        state.truncate_to(partition.log.log_start_offset());
        // Locks that ran out change what is persisted only when the delivery limit archives.
        let archived = state.expire_locks(now, self.config.delivery_limit);
        let expired = archived.then(|| Persist::new(Arc::clone(&entry)));
        let upper = if read_committed {
            partition.last_stable_offset()
        } else {
            partition.high_watermark()
        };
        let Some(from) = state.next_available(upper, self.config.max_in_flight) else {
            return Ok(Delivery {
                acquired: Vec::new(),
                records: None,
                expired,
            });
        };
        let read = partition
            .log
            .read_file(from, budget.bytes.max(1), upper, true)
            .map_err(|e| (crate::errors::storage_error_code(&e), e.to_string()))?;
        let Some((file, position, len)) = read.region else {
            return Ok(Delivery {
                acquired: Vec::new(),
                records: None,
                expired,
            });
        };
        if read_committed {
            for range in aborted_ranges(partition, from, read.next_offset, &file, position, len)
                .map_err(|e| (ErrorCode::KafkaStorageError, e.to_string()))?
            {
                state.archive(range);
            }
        }
        let acquired = state.acquire(
            member,
            from..read.next_offset,
            budget.records,
            now,
            lock_ms,
            self.config.max_in_flight,
        );
        let records = (!acquired.is_empty()).then(|| {
            basalt_protocol::Records::File(basalt_protocol::FileRegion {
                file,
                position,
                len,
            })
        });
        Ok(Delivery {
            acquired,
            records,
            expired,
        })
    }

    /// The earliest moment a lock of the given share partitions runs out.
    pub fn next_lock_deadline(&self, group: &str, partitions: &[(Uuid, i32)]) -> Option<i64> {
        partitions
            .iter()
            .filter_map(|(t, p)| self.entry_if_loaded(group, *t, *p))
            .filter_map(|e| e.state.lock().next_lock_deadline())
            .min()
    }

    /// The start and end offsets of `group`'s share partition, if loaded here.
    pub fn offsets_of(&self, group: &str, topic: Uuid, index: i32) -> Option<(i64, i64)> {
        self.entry_if_loaded(group, topic, index).map(|e| {
            let s = e.state.lock();
            (s.start(), s.end())
        })
    }
}

/// The offset ranges of the batches of aborted transactions among the `len` bytes of whole
/// batches at `position` of `file`, which hold offsets `from..to` of `partition`.
fn aborted_ranges(
    partition: &crate::partition::Partition,
    from: i64,
    to: i64,
    file: &std::fs::File,
    position: u64,
    len: usize,
) -> std::io::Result<Vec<std::ops::Range<i64>>> {
    use std::os::unix::fs::FileExt as _;
    let aborted = partition.aborted_txns(from, to);
    if aborted.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    let mut at = 0usize;
    let mut header = [0u8; basalt_record::BATCH_HEADER_SIZE];
    while at + header.len() <= len {
        file.read_exact_at(&mut header, position + at as u64)?;
        let h = basalt_record::BatchHeader::parse_header(&header)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        if h.is_transactional()
            && !h.is_control()
            && aborted.iter().any(|a| {
                a.producer_id == h.producer_id
                    && h.base_offset >= a.first_offset
                    && h.base_offset < a.last_offset
            })
        {
            out.push(h.base_offset..h.last_offset() + 1);
        }
        at += h.total_size();
    }
    Ok(out)
}

/// A share partition whose state changed and must be written before the answer (`SHR-5`),
/// with the count of changes that includes this one.
#[derive(Debug)]
pub struct Persist(Arc<Entry>, u64);

impl Persist {
    /// Counts a change just made to `entry`'s state.
    fn new(entry: Arc<Entry>) -> Persist {
        let change = entry.changes.fetch_add(1, Ordering::SeqCst) + 1;
        Persist(entry, change)
    }

    /// Whether a write that held this change has been done.
    fn written(&self) -> bool {
        self.0.written.load(Ordering::SeqCst) >= self.1
    }
}

/// The newest state of `entry` and the count of changes it holds; the count is read first,
/// so the state holds at least those changes.
fn newest(entry: &Entry) -> (ShareSnapshot, u64) {
    let changes = entry.changes.load(Ordering::SeqCst);
    (entry.state.lock().snapshot(), changes)
}

/// Writes the newest state of a share partition to its file unless a write already held
/// `p`'s change; blocking.
fn persist(p: &Persist) -> std::io::Result<()> {
    let entry = &p.0;
    let _writing = entry.write.blocking_lock();
    if p.written() {
        return Ok(());
    }
    let (snapshot, changes) = newest(entry);
    let bytes = serde_json::to_vec(&snapshot).map_err(std::io::Error::other)?;
    if let Some(dir) = entry.path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    write_atomically(&entry.path, &bytes)?;
    entry.written.fetch_max(changes, Ordering::SeqCst);
    Ok(())
}

/// Writes `bytes` to `path` through a temporary file, fsynced, then renamed over it.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_data()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes every share partition in `persists`: to its file off the reactor on a node alone,
/// into the metadata in a cluster (`SHR-5`); the error code and reason of the first that
/// could not be written.
pub async fn write_all(broker: &Broker, persists: Vec<Persist>) -> Result<(), Refusal> {
    if persists.is_empty() {
        return Ok(());
    }
    if broker.cluster().is_some() {
        for p in &persists {
            let entry = &p.0;
            let _writing = entry.write.lock().await;
            if p.written() {
                continue;
            }
            let (snapshot, changes) = newest(entry);
            let state = serde_json::to_string(&snapshot)
                .map_err(|e| (ErrorCode::KafkaStorageError, e.to_string()))?;
            broker
                .put_share_state(&entry.group, entry.partition, entry.leader_epoch, state)
                .await
                .map_err(|e| (e.code, e.message))?;
            entry.written.fetch_max(changes, Ordering::SeqCst);
        }
        return Ok(());
    }
    let storage = |e: String| (ErrorCode::KafkaStorageError, e);
    match tokio::task::spawn_blocking(move || {
        for p in &persists {
            persist(p).map_err(|e| format!("{}: {e}", p.0.path.display()))?;
        }
        Ok(())
    })
    .await
    {
        Ok(r) => r.map_err(storage),
        Err(e) => Err(storage(e.to_string())),
    }
}

/// The leader epoch of partition `index` of `topic` on this node.
fn current_epoch(topic: &crate::Topic, index: i32) -> Option<i32> {
    usize::try_from(index)
        .ok()
        .and_then(|i| topic.partitions.get(i))
        .map(|p| p.leader_epoch())
}
