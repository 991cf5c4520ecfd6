//! The group coordinator on this node: runs the pure group state machines of
//! `basalt-coordinator`, keeps them in memory, persists their records in the internal
//! `__consumer_offsets` topic and replays it at start, parks requests that must wait and drives
//! the timers.
//!
//! # Invariants
//! - `GC-1`: records are appended to `__consumer_offsets` under the same lock that changed the
//!   state they describe, so the log order is the order of the changes (`OFS-1`).
//! - `GC-2`: an OffsetCommit is answered only once its records are durable under the topic's
//!   fsync policy.
//! - `GC-3`: no lock is held across an `.await` (`BRK-3`): parked requests wait on a oneshot
//!   after the lock is released.
//! - `GC-4`: a partition's log start moves past old records only after the live state appended
//!   in their place is durable, so a crash at any point replays to the same groups.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use basalt_coordinator::record::{Decoded, GroupValue};
use basalt_coordinator::{
    ClassicGroup, Completion, ConsumerGroup, Effects, Group, GroupConfig, GroupKind, Record, Reply,
    Ticket, TopicLookup,
};
use basalt_record::{BatchBuilder, BatchIter, decode_records};
use basalt_storage::SyncTicket;
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::{Broker, Topic, now_ms};

/// The internal topic holding committed offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Whether `name` is one of the broker's internal topics.
pub fn is_internal(name: &str) -> bool {
    name == OFFSETS_TOPIC || name == crate::txns::TXN_TOPIC
}

/// The partition of `__consumer_offsets` for `group`: Java's `String.hashCode`, as Kafka picks it.
pub fn partition_for(group: &str, partitions: i32) -> i32 {
    let mut h: i32 = 0;
    for unit in group.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(i32::from(unit));
    }
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % partitions.max(1)
}

/// The coordinator.
#[derive(Debug)]
pub struct Coordinator {
    config: GroupConfig,
    offsets_partitions: i32,
    /// `offsets.topic.segment.bytes`: the segment size of `__consumer_offsets`, and the size a
    /// partition may reach before it is compacted.
    segment_bytes: i64,
    /// Each partition's size right after its last compaction.
    compacted_size: Mutex<HashMap<i32, u64>>,
    /// When offset expiry was last checked.
    last_expiry_check: Mutex<i64>,
    groups: Mutex<HashMap<String, Group>>,
    waiters: Mutex<HashMap<Ticket, oneshot::Sender<Reply>>>,
    next_ticket: AtomicU64,
}

/// How long an internal append may wait for its partition's in-sync replicas.
const REPLICATION_TIMEOUT: Duration = Duration::from_secs(30);

/// One append's durability: its sync ticket and, on a partition with followers, the offset its
/// high watermark must reach, as an acks=all produce waits (`REPL-4`).
#[derive(Debug)]
pub struct Persisted {
    ticket: SyncTicket,
    replicated: Option<(Arc<crate::partition::Partition>, i64)>,
    /// Wakes parked fetches (the followers') when the append makes progress.
    visible: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Persisted {
    /// `ticket` of an append to `partition` that ends before `end`. On a partition with
    /// followers their parked fetches are woken now, as a produce wakes them: they take
    /// appended records before they are durable here, and the wait in [`durable`] would
    /// otherwise last until their fetch times out.
    pub fn new(
        broker: &Broker,
        partition: &Arc<crate::partition::Partition>,
        ticket: SyncTicket,
        end: i64,
    ) -> Self {
        let replicated = partition
            .is_replicated()
            .then(|| (Arc::clone(partition), end));
        if replicated.is_some() {
            broker.notify_visible();
        }
        Persisted {
            ticket,
            replicated,
            visible: broker.watch_visible_sender(),
        }
    }
}

/// The durability of appended records, one entry per append.
pub type Durable = Vec<Persisted>;

/// Waits until every append is durable and, where the partition has followers, held by its
/// in-sync replicas; false if a sync failed or the replicas did not confirm in time.
pub async fn durable(tickets: Durable) -> bool {
    let mut ok = true;
    for t in tickets {
        ok &= t.ticket.await.is_ok();
        if let Some((partition, end)) = t.replicated {
            // Durable here: the high watermark may move (and followers learn it).
            if partition.on_local_progress() {
                t.visible.send_modify(|v| *v = v.wrapping_add(1));
            }
            ok &= partition.wait_replicated(end, REPLICATION_TIMEOUT).await;
        }
    }
    ok
}

/// A parked request's receiver.
pub type Waiter = oneshot::Receiver<Reply>;

impl Coordinator {
    /// An empty coordinator.
    pub fn new(config: GroupConfig, offsets_partitions: i32, segment_bytes: i64) -> Self {
        Coordinator {
            config,
            offsets_partitions: offsets_partitions.max(1),
            segment_bytes: segment_bytes.max(1024),
            compacted_size: Mutex::new(HashMap::new()),
            last_expiry_check: Mutex::new(0),
            groups: Mutex::new(HashMap::new()),
            waiters: Mutex::new(HashMap::new()),
            next_ticket: AtomicU64::new(1),
        }
    }

    /// The settings.
    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    /// A new ticket with its receiver.
    pub fn park(&self) -> (Ticket, Waiter) {
        let ticket = self.next_ticket.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.waiters.lock().insert(ticket, tx);
        (ticket, rx)
    }

    /// Forgets a ticket that was answered directly.
    pub fn unpark(&self, ticket: Ticket) {
        self.waiters.lock().remove(&ticket);
    }

    fn deliver(&self, completions: Vec<Completion>) {
        if completions.is_empty() {
            return;
        }
        let mut waiters = self.waiters.lock();
        for c in completions {
            if let Some(tx) = waiters.remove(&c.ticket) {
                // The requester may have gone away; nothing to do then.
                let _ = tx.send(c.reply);
            }
        }
    }

    /// Runs `f` on the group `id` (created by `create` if missing and `create` gives one), then
    /// persists what it produced and answers the parked requests it completed. Returns `f`'s
    /// result and a ticket for the durability of the records.
    pub fn with_group<R>(
        &self,
        broker: &Broker,
        id: &str,
        create: impl FnOnce(i64) -> Option<Group>,
        f: impl FnOnce(Option<&mut Group>, i64) -> (R, Effects),
    ) -> (R, Durable) {
        let now = now_ms();
        let mut groups = self.groups.lock();
        if !groups.contains_key(id)
            && let Some(g) = create(now)
        {
            groups.insert(id.to_owned(), g);
        }
        let group = groups.get_mut(id);
        let (result, mut effects) = f(group, now);
        if let Some(g) = groups.get_mut(id) {
            collect_dirty(g, &mut effects);
        }
        // GC-1: append under the lock.
        let durable = self.append(broker, &effects.records);
        drop(groups);
        self.deliver(effects.completions);
        (result, durable)
    }

    /// Stages the offsets producer `producer_id`'s open transaction commits for `group`
    /// (TxnOffsetCommit, `GRP-4`); their durability.
    pub fn stage_txn_offsets(
        &self,
        broker: &Broker,
        group: &str,
        producer_id: i64,
        producer_epoch: i16,
        offsets: Vec<(String, i32, basalt_coordinator::CommittedOffset)>,
    ) -> Durable {
        let ((), durable) = self.with_group(
            broker,
            group,
            |now| Some(Group::new_classic(group, now)),
            |g, _| {
                let mut effects = Effects::default();
                if let Some(g) = g {
                    effects
                        .records
                        .push(g.stage_txn_offsets(producer_id, producer_epoch, offsets));
                }
                ((), effects)
            },
        );
        durable
    }

    /// A transaction marker of producer `producer_id` reached partition `index` of
    /// `__consumer_offsets`: every group of that partition commits (or drops) the offsets the
    /// producer staged there (`GRP-4`). The durability of the records; empty if nothing was
    /// staged.
    pub fn end_txn(&self, broker: &Broker, index: i32, producer_id: i64, commit: bool) -> Durable {
        let Ok(topic) = self.offsets_topic(broker) else {
            return Vec::new();
        };
        let count = topic.meta.partitions;
        let now = now_ms();
        let mut groups = self.groups.lock();
        let mut records = Vec::new();
        for g in groups.values_mut() {
            if partition_for(&g.id, count) == index && g.pending_txn.contains_key(&producer_id) {
                records.extend(g.end_txn(producer_id, commit, now));
            }
        }
        // GC-1: append under the lock.
        let durable = self.append(broker, &records);
        drop(groups);
        durable
    }

    /// Removes a group that has no members, with its offsets (DeleteGroups), appending its
    /// tombstones; GROUP_ID_NOT_FOUND or NON_EMPTY_GROUP otherwise. Checked and removed under one
    /// lock, so a member joining meanwhile is never lost.
    pub fn remove_group(
        &self,
        broker: &Broker,
        id: &str,
    ) -> Result<Durable, basalt_protocol::ErrorCode> {
        let mut groups = self.groups.lock();
        match groups.get(id) {
            None => return Err(basalt_protocol::ErrorCode::GroupIdNotFound),
            Some(g) if !g.is_empty() => return Err(basalt_protocol::ErrorCode::NonEmptyGroup),
            Some(_) => {}
        }
        let Some(mut g) = groups.remove(id) else {
            return Err(basalt_protocol::ErrorCode::GroupIdNotFound);
        };
        let mut effects = match &mut g.kind {
            GroupKind::Classic(c) => c.mark_dead(now_ms()),
            GroupKind::Consumer(c) => {
                c.clear(now_ms());
                Effects::default()
            }
        };
        for (topic, partition) in g.offsets.clear() {
            effects
                .records
                .push(Record::offset_tombstone(id, &topic, partition));
        }
        effects.records.push(Record::group_tombstone(id));
        let durable = self.append(broker, &effects.records);
        drop(groups);
        self.deliver(effects.completions);
        Ok(durable)
    }

    /// A snapshot view of every group: `f` sees each one under the lock.
    pub fn for_each<R>(&self, mut f: impl FnMut(&Group) -> Option<R>) -> Vec<R> {
        let groups = self.groups.lock();
        let mut ids: Vec<&String> = groups.keys().collect();
        ids.sort();
        ids.into_iter().filter_map(|id| f(&groups[id])).collect()
    }

    /// Reads the group `id` under the lock.
    pub fn read<R>(&self, id: &str, f: impl FnOnce(Option<&Group>) -> R) -> R {
        let groups = self.groups.lock();
        f(groups.get(id))
    }

    /// Advances every group's timers.
    pub fn tick(&self, broker: &Broker) {
        let now = now_ms();
        let lookup = BrokerTopics(broker);
        // Offset expiry is checked once a second; member timers on every tick.
        let expiry_due = {
            let mut last = self.last_expiry_check.lock();
            let due = now - *last >= 1000;
            if due {
                *last = now;
            }
            due
        };
        // Only groups this node coordinates: another node's groups are written by it (a
        // follower's copy is rebuilt from the log when it becomes leader, `load_partition`).
        let led = broker.topic(OFFSETS_TOPIC);
        let coordinated = |id: &str| match (&led, broker.cluster()) {
            (Some(t), Some(_)) => t.is_led_by(
                partition_for(id, t.meta.partitions),
                broker.config().node_id,
            ),
            _ => true,
        };
        let mut groups = self.groups.lock();
        let mut effects = Effects::default();
        for g in groups.values_mut() {
            if !coordinated(&g.id) {
                continue;
            }
            let due = g.next_deadline(&self.config).is_some_and(|d| d <= now)
                || (expiry_due && g.is_empty() && !g.offsets.is_empty());
            if !due {
                continue;
            }
            let mut e = g.tick(now, &self.config, &lookup);
            collect_dirty(g, &mut e);
            effects.completions.extend(e.completions);
            effects.records.extend(e.records);
        }
        let _ = self.append(broker, &effects.records);
        drop(groups);
        self.deliver(effects.completions);
    }

    /// Appends records to their partitions of `__consumer_offsets`, creating the topic on first
    /// use; returns a ticket for the durability of each partition's append.
    fn append(&self, broker: &Broker, records: &[Record]) -> Durable {
        if records.is_empty() {
            return Vec::new();
        }
        let topic = match self.offsets_topic(broker) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e.message, "cannot create {OFFSETS_TOPIC}");
                return Vec::new();
            }
        };
        let mut by_partition: BTreeMap<i32, Vec<&Record>> = BTreeMap::new();
        for r in records {
            by_partition
                .entry(partition_for(&r.group, topic.meta.partitions))
                .or_default()
                .push(r);
        }
        let now = now_ms();
        let mut tickets = Vec::new();
        for (p, recs) in by_partition {
            let Some(partition) = usize::try_from(p)
                .ok()
                .and_then(|i| topic.partitions.get(i))
            else {
                continue;
            };
            match append_to(broker, partition, &recs, now) {
                Ok(durable) => tickets.extend(durable),
                Err(e) => tracing::error!(partition = p, error = %e, "cannot persist group state"),
            }
        }
        tickets
    }

    pub(crate) fn offsets_topic(&self, broker: &Broker) -> Result<Arc<Topic>, crate::TopicError> {
        if let Some(t) = broker.topic(OFFSETS_TOPIC) {
            return Ok(t);
        }
        // Never expired by time or size: compaction (below) bounds it instead.
        let configs = BTreeMap::from([
            ("retention.ms".to_owned(), "-1".to_owned()),
            ("retention.bytes".to_owned(), "-1".to_owned()),
            ("segment.bytes".to_owned(), self.segment_bytes.to_string()),
        ]);
        match broker.create_topic(OFFSETS_TOPIC, self.offsets_partitions, -1, configs, false) {
            Ok(t) => Ok(t),
            Err(e) if e.code == basalt_protocol::ErrorCode::TopicAlreadyExists => {
                broker.topic(OFFSETS_TOPIC).ok_or(e)
            }
            Err(e) => Err(e),
        }
    }

    /// Compacts the partitions of `__consumer_offsets` that grew past `offsets.topic.segment.bytes`
    /// and twice their size after the last compaction: the live state of the partition's groups
    /// (every commit and each group's metadata) is appended again, and once that is durable the
    /// log start moves to it, so the old records (and their segments) go. Replaying from the new
    /// start rebuilds the same groups (`GC-4`).
    pub async fn compact(&self, broker: &Broker) {
        for (partition, start, durable) in self.start_compactions(broker) {
            if !self::durable(durable).await {
                tracing::warn!(
                    partition = partition.index,
                    "compaction not durable; old records kept"
                );
                continue;
            }
            match partition.log.delete_records(start) {
                Ok(_) => {
                    self.compacted_size
                        .lock()
                        .insert(partition.index, partition.log.size_bytes());
                    tracing::debug!(
                        partition = partition.index,
                        start,
                        "compacted {OFFSETS_TOPIC}"
                    );
                }
                Err(e) => {
                    tracing::warn!(partition = partition.index, error = %e, "compaction failed")
                }
            }
        }
    }

    /// Appends the live records of each partition due for compaction; returns the partition,
    /// the offset the live records start at, and their durability.
    fn start_compactions(
        &self,
        broker: &Broker,
    ) -> Vec<(Arc<crate::partition::Partition>, i64, Durable)> {
        let Some(topic) = broker.topic(OFFSETS_TOPIC) else {
            return Vec::new();
        };
        let threshold = u64::try_from(self.segment_bytes).unwrap_or(u64::MAX);
        let due: Vec<Arc<crate::partition::Partition>> = {
            let compacted = self.compacted_size.lock();
            topic
                .partitions
                .iter()
                .filter(|p| {
                    let size = p.log.size_bytes();
                    size > threshold && size > 2 * compacted.get(&p.index).copied().unwrap_or(0)
                })
                .cloned()
                .collect()
        };
        if due.is_empty() {
            return Vec::new();
        }
        let groups = self.groups.lock();
        let mut jobs = Vec::new();
        for partition in due {
            let mut records = Vec::new();
            for g in groups.values() {
                if partition_for(&g.id, topic.meta.partitions) != partition.index {
                    continue;
                }
                for (t, p, o) in g.offsets.iter() {
                    records.push(Record::offset(&g.id, t, p, o));
                }
                records.extend(g.txn_records());
                records.push(g.metadata_record());
            }
            // GC-1: the lock is held, so nothing is appended between `start` and the records.
            let start = partition.log.log_end_offset();
            let recs: Vec<&Record> = records.iter().collect();
            match append_to(broker, &partition, &recs, now_ms()) {
                Ok(durable) => jobs.push((partition, start, durable)),
                Err(e) => {
                    tracing::error!(partition = partition.index, error = %e, "cannot compact group state");
                }
            }
        }
        jobs
    }

    /// Rebuilds the groups of partition `index` of `__consumer_offsets` from its log: this node
    /// just became its leader, and what it holds in memory for them may be stale.
    pub fn load_partition(&self, broker: &Broker, index: i32) {
        let Some(topic) = broker.topic(OFFSETS_TOPIC) else {
            return;
        };
        let Some(partition) = usize::try_from(index)
            .ok()
            .and_then(|i| topic.partitions.get(i))
        else {
            return;
        };
        let now = now_ms();
        let count = topic.meta.partitions;
        let mut groups = self.groups.lock();
        groups.retain(|id, _| partition_for(id, count) != index);
        let before = groups.len();
        replay_partition(
            &topic,
            partition,
            |key, value| match basalt_coordinator::record::decode(key, value) {
                Ok(d) => apply(&mut groups, d, now, &self.config),
                Err(e) => tracing::warn!(error = %e, "skipping a group record"),
            },
        );
        tracing::info!(
            partition = index,
            groups = groups.len().saturating_sub(before),
            "loaded the consumer groups of a partition this node now leads"
        );
    }

    /// Rebuilds every group from `__consumer_offsets`, if it exists.
    pub fn load(&self, broker: &Broker) {
        let Some(topic) = broker.topic(OFFSETS_TOPIC) else {
            return;
        };
        let now = now_ms();
        let mut groups = self.groups.lock();
        let mut count = 0usize;
        replay(
            &topic,
            |key, value| match basalt_coordinator::record::decode(key, value) {
                Ok(d) => {
                    apply(&mut groups, d, now, &self.config);
                    count += 1;
                }
                Err(e) => tracing::warn!(error = %e, "skipping a group record"),
            },
        );
        tracing::info!(
            groups = groups.len(),
            records = count,
            "loaded consumer groups"
        );
    }
}

/// Calls `f` with the key (empty if null) and value of every record of `topic`, partition by
/// partition in offset order: the replay of an internal state topic at start. A partition that
/// cannot be read is logged and left at the failing offset; undecodable batches are skipped.
pub(crate) fn replay(topic: &Topic, mut f: impl FnMut(&[u8], Option<&[u8]>)) {
    for partition in &topic.partitions {
        replay_partition(topic, partition, &mut f);
    }
}

/// [`replay`] of one partition.
pub(crate) fn replay_partition(
    topic: &Topic,
    partition: &crate::partition::Partition,
    mut f: impl FnMut(&[u8], Option<&[u8]>),
) {
    let log = &partition.log;
    let mut offset = log.log_start_offset();
    let end = log.log_end_offset();
    while offset < end {
        let read = match log.read(offset, 1 << 20, end) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(topic = %topic.meta.name, partition = partition.index, error = %e, "cannot replay an internal topic");
                break;
            }
        };
        if read.next_offset <= offset {
            break;
        }
        for batch in BatchIter::new(&read.records) {
            let Ok((_, range)) = batch else { break };
            let Ok(records) = decode_records(&read.records.slice(range)) else {
                continue;
            };
            for r in records {
                f(r.key.as_deref().unwrap_or_default(), r.value.as_deref());
            }
        }
        offset = read.next_offset;
    }
}

/// Largest record batch the coordinator writes (well under the default `max.message.bytes`).
const MAX_BATCH_BYTES: usize = 256 * 1024;

/// Appends `records` to `partition` in batches of at most [`MAX_BATCH_BYTES`] (one record may
/// stand alone above it), in order; returns each batch's durability, or why an append failed
/// (the batches before it stay appended).
fn append_to(
    broker: &Broker,
    partition: &Arc<crate::partition::Partition>,
    records: &[&Record],
    now: i64,
) -> Result<Durable, String> {
    let mut durable = Vec::new();
    let mut rest = records;
    while !rest.is_empty() {
        let mut b = BatchBuilder::new(0);
        let mut bytes = 0usize;
        let mut taken = 0usize;
        for r in rest {
            let size = r.key.len() + r.value.as_ref().map_or(0, Vec::len);
            if taken > 0 && bytes + size > MAX_BATCH_BYTES {
                break;
            }
            b.push(now, Some(&r.key), r.value.as_deref(), &[]);
            bytes += size;
            taken += 1;
        }
        rest = &rest[taken..];
        // Group records are never transactional.
        let produced = partition
            .produce(&b.build(), now, |_, _| {
                Err(basalt_protocol::ErrorCode::InvalidTxnState)
            })
            .map_err(|e| e.message)?;
        durable.extend(
            produced
                .durable
                .map(|t| Persisted::new(broker, partition, t, produced.last_offset + 1)),
        );
    }
    Ok(durable)
}

fn collect_dirty(g: &mut Group, effects: &mut Effects) {
    let dirty = match &mut g.kind {
        GroupKind::Classic(c) => c.take_dirty(),
        GroupKind::Consumer(c) => c.take_dirty(),
    };
    if dirty {
        effects.records.push(g.metadata_record());
    }
}

fn apply(groups: &mut HashMap<String, Group>, d: Decoded, now: i64, config: &GroupConfig) {
    match d {
        Decoded::TxnOffsets {
            group,
            producer_id,
            value,
        } => {
            let g = groups
                .entry(group.clone())
                .or_insert_with(|| Group::new_classic(&group, now));
            match value {
                Some(v) => {
                    g.pending_txn.insert(producer_id, v);
                }
                None => {
                    g.pending_txn.remove(&producer_id);
                }
            }
        }
        Decoded::Offset {
            group,
            topic,
            partition,
            value,
        } => {
            let g = groups
                .entry(group.clone())
                .or_insert_with(|| Group::new_classic(&group, now));
            match value {
                Some(v) => g.offsets.commit(&topic, partition, v),
                None => {
                    g.offsets.remove(&topic, partition);
                }
            }
        }
        Decoded::Group { group, value } => match value {
            Some(GroupValue::Classic(image)) => {
                let restored: ClassicGroup = image.restore(&group, now);
                let g = groups
                    .entry(group.clone())
                    .or_insert_with(|| Group::new_classic(&group, now));
                g.kind = GroupKind::Classic(restored);
            }
            Some(GroupValue::Consumer(image)) => {
                let restored = ConsumerGroup::restore(&group, image, now, config);
                let g = groups
                    .entry(group.clone())
                    .or_insert_with(|| Group::new_consumer(&group, now));
                g.kind = GroupKind::Consumer(restored);
            }
            None => {
                if let Some(g) = groups.get(&group)
                    && g.offsets.is_empty()
                    && g.pending_txn.is_empty()
                {
                    groups.remove(&group);
                } else if let Some(g) = groups.get_mut(&group) {
                    g.kind = GroupKind::Classic(ClassicGroup::new(&group, now));
                }
            }
        },
    }
}

/// The broker's topics as the coordinator sees them (internal topics excluded).
pub struct BrokerTopics<'a>(pub &'a Broker);

impl TopicLookup for BrokerTopics<'_> {
    fn topic(&self, name: &str) -> Option<([u8; 16], i32)> {
        if is_internal(name) {
            return None;
        }
        self.0.topic(name).map(|t| (t.id.0, t.meta.partitions))
    }

    fn topic_name(&self, id: &[u8; 16]) -> Option<String> {
        self.0
            .topic_by_id(&basalt_protocol::Uuid(*id))
            .map(|t| t.meta.name.clone())
    }

    fn topic_names(&self) -> Vec<String> {
        self.0
            .topics()
            .iter()
            .map(|t| t.meta.name.clone())
            .filter(|n| !is_internal(n))
            .collect()
    }
}

/// A member id as Kafka makes them: the client id, a dash and a random UUID.
pub fn new_member_id(client_id: &str) -> String {
    let id = crate::topics::format_uuid(&crate::topics::new_topic_id());
    format!("{client_id}-{id}")
}

/// Waits for a parked request's answer.
pub async fn wait(waiter: Waiter) -> Option<Reply> {
    waiter.await.ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_matches_java_hash() {
        // "group".hashCode() == 98629247 in Java.
        assert_eq!(partition_for("group", 50), 98_629_247 % 50);
        assert_eq!(partition_for("", 50), 0);
    }
}
