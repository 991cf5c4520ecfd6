//! One topic partition on this node: its log, its idempotent producer state, its settings.
//!
//! # Invariants
//! - `PART-1`: the producer table is checked and updated under the same lock as the append, so
//!   two retries of one batch can never both be appended (`PID-2`).
//! - `PART-2`: consumers see offsets below the high watermark only; with one replica that is the
//!   durable end of the log under `flush.policy=always` and the log end otherwise; with more,
//!   the replicated high watermark (`REPL-1`, `replication.rs`).
//! - `PART-3`: opening a partition loads its newest usable producer snapshot and reads only the
//!   batch headers after it (all of them when there is none, `SNAP-1`); snapshots are written
//!   under the producer lock, so each holds exactly the batches below its offset.
//! - `PART-4`: a transactional batch is appended only if the transaction coordinator confirms,
//!   under the producer lock, that its partition is in the producer's open transaction; markers
//!   are appended under the same lock, so no batch of a transaction can land after its marker.
//! - `PART-5`: the last stable offset is the smaller of the high watermark and the first offset
//!   of the oldest open transaction; every aborted transaction whose marker is in the log has its
//!   entry in the log's aborted-transaction index (re-added from the log at open).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, Ordering};

use basalt_protocol::ErrorCode;
use basalt_record::{BatchHeader, ControlType};
use basalt_storage::{AbortedTxn, FsyncPolicy, Log, RetentionOutcome, StorageError, SyncTicket};
use parking_lot::{Mutex, RwLock};

use crate::config::EffectiveTopicConfig;
use crate::errors::storage_error_code;
use crate::producer::{ProducerState, ProducerTable, SequenceCheck};
use crate::replication::Role;
use crate::snapshot;

/// A partition hosted on this node.
#[derive(Debug)]
pub struct Partition {
    /// The topic name.
    pub topic: String,
    /// The partition index.
    pub index: i32,
    /// The partition's log.
    pub log: Arc<Log>,
    pub(crate) producers: Mutex<ProducerTable>,
    /// First offset of the oldest open transaction, `i64::MAX` when none (`PART-5`); written
    /// under the producer lock.
    pub(crate) first_unstable: AtomicI64,
    config: RwLock<EffectiveTopicConfig>,
    recovery: ProducerRecovery,
    /// The partition's current leader epoch (from the metadata image; 0 on a single node
    /// without a quorum, the first epoch the image gives): stamped on every batch this node
    /// appends; changed under the producer lock.
    pub(crate) leader_epoch: AtomicI32,
    /// This node's part in the partition's replication (`replication.rs`); taken after the
    /// producer lock, never before it.
    pub(crate) role: Mutex<Role>,
    /// Whether the partition has more than one replica: its high watermark is then
    /// `replicated_hw` (`REPL-1`).
    pub(crate) replicated: AtomicBool,
    /// The replicated high watermark: the leader's from its followers' progress, a follower's
    /// as its leader last told it; written under the role lock.
    pub(crate) replicated_hw: AtomicI64,
    /// Woken whenever `replicated_hw` grows.
    pub(crate) hw_changed: tokio::sync::Notify,
}

/// How the producer state of a partition was rebuilt when it was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProducerRecovery {
    /// Offset of the producer snapshot loaded, if one was usable.
    pub snapshot_offset: Option<i64>,
    /// Batch headers read from the log after the snapshot (all of them without one).
    pub scanned_batches: u64,
    /// Snapshot files ignored: damaged, unreadable, above the log end or below its start.
    pub discarded_snapshots: usize,
}

/// A successful produce to one partition.
#[derive(Debug)]
pub struct Produced {
    /// Offset of the first record written (or of the original, for a retried batch).
    pub base_offset: i64,
    /// Offset of the last record written (or of the original's).
    pub last_offset: i64,
    /// Broker time stamped on the batch, or -1 for CreateTime topics.
    pub log_append_time_ms: i64,
    /// Log start offset after the append.
    pub log_start_offset: i64,
    /// Completes when the append is durable; `None` for a retried duplicate.
    pub durable: Option<SyncTicket>,
}

/// A refused produce to one partition.
#[derive(Debug)]
pub struct ProduceError {
    /// The Kafka error code.
    pub code: ErrorCode,
    /// A message for the client.
    pub message: String,
}

impl ProduceError {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ProduceError {
            code,
            message: message.into(),
        }
    }
}

impl Partition {
    /// Wraps an open log, rebuilding the producer state from its newest usable snapshot and the
    /// batch headers after it (`PART-3`).
    pub fn open(
        topic: &str,
        index: i32,
        log: Arc<Log>,
        config: EffectiveTopicConfig,
    ) -> Result<Self, StorageError> {
        let (producers, recovery) = rebuild_producers(topic, index, &log)?;
        let hw = log.stored_high_watermark();
        Ok(Partition {
            topic: topic.to_owned(),
            index,
            log,
            first_unstable: AtomicI64::new(producers.first_unstable_offset().unwrap_or(i64::MAX)),
            producers: Mutex::new(producers),
            config: RwLock::new(config),
            recovery,
            leader_epoch: AtomicI32::new(0),
            role: Mutex::new(Role::Solo),
            replicated: AtomicBool::new(false),
            replicated_hw: AtomicI64::new(hw),
            hw_changed: tokio::sync::Notify::new(),
        })
    }

    /// The partition's current leader epoch.
    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch.load(Ordering::Acquire)
    }

    /// Kafka's check of a request's `current_leader_epoch` (-1: not given): FENCED_LEADER_EPOCH
    /// when it is older than this node's, UNKNOWN_LEADER_EPOCH when newer (this node has not
    /// seen the change yet).
    pub fn check_leader_epoch(&self, requested: i32) -> Result<(), ErrorCode> {
        let current = self.leader_epoch();
        if requested < 0 || requested == current {
            Ok(())
        } else if requested < current {
            Err(ErrorCode::FencedLeaderEpoch)
        } else {
            Err(ErrorCode::UnknownLeaderEpoch)
        }
    }

    /// This node leads the partition at `epoch`: batches are stamped with it from now on, and an
    /// epoch newer than the log's latest is recorded at the log end offset, as a new Kafka
    /// leader does. Under the producer lock, so no append stamped with the old epoch follows.
    pub fn become_leader(&self, epoch: i32) -> Result<(), StorageError> {
        let _producers = self.producers.lock();
        self.record_epoch_locked(epoch)
    }

    /// How the producer state was rebuilt at open.
    pub fn producer_recovery(&self) -> ProducerRecovery {
        self.recovery
    }

    /// Writes a producer snapshot at the log end offset (at clean shutdown), unsynced: the
    /// caller syncs the filesystem afterwards. Skipped for a damaged log, whose producer state
    /// may be incomplete.
    pub fn write_shutdown_snapshot(&self) -> std::io::Result<()> {
        let producers = self.producers.lock();
        if self.log.damage().is_some() {
            return Ok(());
        }
        snapshot::write(
            self.log.dir(),
            self.log.log_end_offset(),
            &producers.entries(),
            false,
        )
    }

    /// Applies retention to the log, then deletes the producer snapshots below the new log
    /// start (`SNAP-2`).
    pub fn enforce_retention(&self, now_ms: i64) -> Result<RetentionOutcome, StorageError> {
        let outcome = self.log.enforce_retention(now_ms)?;
        if outcome.deleted_segments > 0 {
            self.delete_snapshots_below(outcome.log_start_offset);
        }
        Ok(outcome)
    }

    /// Moves the log start offset to `offset` (DeleteRecords), then deletes the producer
    /// snapshots below it (`SNAP-2`); the new log start offset.
    pub fn delete_records(&self, offset: i64) -> Result<i64, StorageError> {
        let log_start = self.log.delete_records(offset)?;
        self.delete_snapshots_below(log_start);
        Ok(log_start)
    }

    fn delete_snapshots_below(&self, log_start: i64) {
        if let Err(e) = snapshot::delete_below(self.log.dir(), log_start) {
            tracing::warn!(topic = %self.topic, partition = self.index, error = %e, "cannot delete old producer snapshots");
        }
    }

    /// The partition's effective settings.
    pub fn config(&self) -> EffectiveTopicConfig {
        self.config.read().clone()
    }

    /// Applies new settings to the partition and its log.
    pub fn set_config(&self, config: EffectiveTopicConfig) {
        self.log.set_config(config.log.clone());
        *self.config.write() = config;
    }

    /// The high watermark (`PART-2`; `REPL-1` with more than one replica).
    pub fn high_watermark(&self) -> i64 {
        if self.replicated.load(Ordering::Acquire) {
            return self.replicated_hw.load(Ordering::Acquire);
        }
        self.local_end()
    }

    /// The end of what this node holds safely: the durable end under `flush.policy=always`, the
    /// log end otherwise.
    pub(crate) fn local_end(&self) -> i64 {
        match self.log.config().fsync {
            FsyncPolicy::Always => self.log.durable_end_offset(),
            _ => self.log.log_end_offset(),
        }
    }

    /// The last stable offset (`PART-5`): read_committed consumers see offsets below it only.
    pub fn last_stable_offset(&self) -> i64 {
        let hw = self.high_watermark();
        hw.min(self.first_unstable.load(Ordering::Acquire))
    }

    /// The aborted transactions a read_committed fetch of `from..upper` must be told about.
    pub fn aborted_txns(&self, from: i64, upper: i64) -> Vec<AbortedTxn> {
        self.log.aborted_txns(from, upper)
    }

    /// Every producer with state here, ordered by id (DescribeProducers).
    pub fn producers(&self) -> Vec<ProducerState> {
        self.producers.lock().entries()
    }

    /// Whether `producer_id` has a transaction open on this partition.
    pub fn has_open_txn(&self, producer_id: i64) -> bool {
        self.producers.lock().has_open_txn(producer_id)
    }

    /// Writes a transaction marker of `producer_id` (`PART-4`): `None` when the producer has no
    /// transaction open here (nothing to end), else the marker's durability and the offset after
    /// it. A marker older than
    /// the producer's epoch here is refused (`PID-3`).
    pub fn write_marker(
        &self,
        producer_id: i64,
        epoch: i16,
        control: ControlType,
        coordinator_epoch: i32,
        now_ms: i64,
    ) -> Result<Option<(SyncTicket, i64)>, ProduceError> {
        let mut producers = self.producers.lock();
        self.check_leads()?;
        if let Err(current) = producers.check_marker(producer_id, epoch) {
            return Err(ProduceError::new(
                ErrorCode::InvalidProducerEpoch,
                format!(
                    "marker of producer {producer_id} at epoch {epoch} is older than its epoch {current}"
                ),
            ));
        }
        if !producers.has_open_txn(producer_id) {
            return Ok(None);
        }
        let batch =
            basalt_record::control_batch(producer_id, epoch, control, coordinator_epoch, now_ms);
        let appended = self
            .log
            .append_stamped(&batch, self.leader_epoch(), now_ms)
            .map_err(|e| {
                let code = storage_error_code(&e);
                ProduceError::new(code, e.to_string())
            })?;
        let end = appended.last_offset + 1;
        let Some(header) = appended.batches.first() else {
            return Ok(Some((appended.durable, end)));
        };
        let ended = producers.on_marker(header);
        self.first_unstable.store(
            producers.first_unstable_offset().unwrap_or(i64::MAX),
            Ordering::Release,
        );
        if let (Some(ended), ControlType::Abort) = (ended, control) {
            let txn = AbortedTxn {
                producer_id,
                first_offset: ended.first_offset,
                last_offset: header.base_offset,
                last_stable_offset: producers
                    .first_unstable_offset()
                    .unwrap_or(header.base_offset + 1),
            };
            // If this fails the entry comes back from the marker at the next open (PART-5);
            // until then read_committed readers would see the aborted batches, so refuse.
            self.log
                .append_aborted_txn(txn)
                .map_err(|e| ProduceError::new(storage_error_code(&e), e.to_string()))?;
        }
        if appended.rolled {
            self.write_roll_snapshot(&producers, appended.last_offset + 1);
        }
        Ok(Some((appended.durable, end)))
    }

    pub(crate) fn write_roll_snapshot(&self, producers: &ProducerTable, offset: i64) {
        // PART-3: the table now holds exactly the batches below the new log end. A failed
        // write costs only a longer scan at the next open.
        if let Err(e) = snapshot::write(self.log.dir(), offset, &producers.entries(), true) {
            tracing::warn!(topic = %self.topic, partition = self.index, offset, error = %e, "cannot write producer snapshot");
        }
    }

    /// Refuses `acks=all` when `min.insync.replicas` asks for more replicas than the one this
    /// node has (Kafka's NOT_ENOUGH_REPLICAS, checked before anything is appended).
    pub fn check_required_acks(&self, acks: i16) -> Result<(), ProduceError> {
        if acks == -1 && self.replicated.load(Ordering::Acquire) {
            return self.check_min_isr();
        }
        let min_insync = self.config.read().min_insync_replicas;
        if acks == -1 && min_insync > 1 {
            return Err(ProduceError::new(
                ErrorCode::NotEnoughReplicas,
                format!(
                    "the 1 in-sync replica of {}-{} is fewer than min.insync.replicas {min_insync}",
                    self.topic, self.index
                ),
            ));
        }
        Ok(())
    }

    /// Validates and appends the record batches of one produce request partition.
    /// `verify_txn` is asked, under the producer lock, whether a transactional batch belongs to
    /// its producer's open transaction (`PART-4`); it is told whether that producer has a
    /// transaction open on this partition already.
    pub fn produce(
        &self,
        records: &[u8],
        now_ms: i64,
        verify_txn: impl FnOnce(&BatchHeader, bool) -> Result<(), ErrorCode>,
    ) -> Result<Produced, ProduceError> {
        let config = self.config();
        let mut headers = Vec::new();
        let mut at = 0;
        while at < records.len() {
            let header = BatchHeader::parse(&records[at..]).map_err(|e| {
                ProduceError::new(
                    ErrorCode::CorruptMessage,
                    format!("invalid record batch: {e}"),
                )
            })?;
            if header.total_size() > config.max_message_bytes {
                return Err(ProduceError::new(
                    ErrorCode::MessageTooLarge,
                    format!(
                        "batch of {} bytes exceeds max.message.bytes {}",
                        header.total_size(),
                        config.max_message_bytes
                    ),
                ));
            }
            if header.is_control() {
                return Err(ProduceError::new(
                    ErrorCode::InvalidRecord,
                    "clients may not produce control batches",
                ));
            }
            if !config.log_append_time {
                check_timestamps(&header, now_ms, &config)?;
            }
            at += header.total_size();
            headers.push(header);
        }
        if headers.is_empty() {
            return Err(ProduceError::new(
                ErrorCode::CorruptMessage,
                "no record batch",
            ));
        }
        if headers.len() > 1 && headers.iter().any(|h| h.has_producer_id()) {
            return Err(ProduceError::new(
                ErrorCode::InvalidRecord,
                "an idempotent produce carries exactly one batch per partition",
            ));
        }
        let mut stamped;
        let bytes = if config.log_append_time {
            stamped = records.to_vec();
            let mut at = 0;
            for h in &headers {
                basalt_record::set_log_append_time(&mut stamped[at..at + h.total_size()], now_ms);
                at += h.total_size();
            }
            &stamped[..]
        } else {
            records
        };
        if headers.len() > 1 && headers.iter().any(|h| h.is_transactional()) {
            return Err(ProduceError::new(
                ErrorCode::InvalidRecord,
                "a transactional produce carries exactly one batch per partition",
            ));
        }
        // PART-1: check and append under one lock.
        let mut producers = self.producers.lock();
        self.check_leads()?;
        if headers[0].is_transactional() {
            // PART-4: the coordinator's answer holds until the lock is released.
            let open_here = producers.has_open_txn(headers[0].producer_id);
            verify_txn(&headers[0], open_here).map_err(|code| {
                ProduceError::new(
                    code,
                    format!(
                        "producer {} at epoch {} has no open transaction with {}-{}",
                        headers[0].producer_id, headers[0].producer_epoch, self.topic, self.index
                    ),
                )
            })?;
        }
        match producers.check(&headers[0]) {
            SequenceCheck::Append => {}
            SequenceCheck::Duplicate(kept) => {
                return Ok(Produced {
                    base_offset: kept.base_offset,
                    last_offset: kept.last_offset,
                    log_append_time_ms: if config.log_append_time { now_ms } else { -1 },
                    log_start_offset: self.log.log_start_offset(),
                    durable: None,
                });
            }
            SequenceCheck::Reject(code) => {
                return Err(ProduceError::new(
                    code,
                    format!("{code} for producer {}", headers[0].producer_id),
                ));
            }
        }
        let appended = self
            .log
            .append_stamped(bytes, self.leader_epoch(), now_ms)
            .map_err(|e| {
                let code = storage_error_code(&e);
                ProduceError::new(code, e.to_string())
            })?;
        for h in &appended.batches {
            producers.on_appended(h);
        }
        if headers[0].is_transactional() {
            self.first_unstable.store(
                producers.first_unstable_offset().unwrap_or(i64::MAX),
                Ordering::Release,
            );
        }
        if appended.rolled {
            self.write_roll_snapshot(&producers, appended.last_offset + 1);
        }
        drop(producers);
        Ok(Produced {
            base_offset: appended.base_offset,
            last_offset: appended.last_offset,
            log_append_time_ms: if config.log_append_time { now_ms } else { -1 },
            log_start_offset: appended.log_start_offset,
            durable: Some(appended.durable),
        })
    }
}

/// Rebuilds the producer state of `log` from its newest usable snapshot and the batch headers
/// after it (`PART-3`), re-adding aborted-transaction entries lost with an unsynced index
/// (`PART-5`).
pub(crate) fn rebuild_producers(
    topic: &str,
    index: i32,
    log: &Log,
) -> Result<(ProducerTable, ProducerRecovery), StorageError> {
    let log_start = log.log_start_offset();
    let loaded = snapshot::load(log.dir(), log_start, log.log_end_offset());
    let mut recovery = ProducerRecovery {
        discarded_snapshots: loaded.discarded,
        ..ProducerRecovery::default()
    };
    let (mut producers, from) = match loaded.snapshot {
        Some((offset, entries)) => {
            recovery.snapshot_offset = Some(offset);
            (ProducerTable::restore(entries, log_start), offset)
        }
        None => (ProducerTable::default(), log_start),
    };
    let mut aborted = Vec::new();
    log.for_each_batch_control(from, |h, control| {
        recovery.scanned_batches += 1;
        if h.is_control() {
            let ended = producers.on_marker(h);
            if let (Some(ended), Some(ControlType::Abort)) = (ended, control) {
                aborted.push(AbortedTxn {
                    producer_id: h.producer_id,
                    first_offset: ended.first_offset,
                    last_offset: h.base_offset,
                    last_stable_offset: producers
                        .first_unstable_offset()
                        .unwrap_or(h.base_offset + 1),
                });
            }
        } else {
            producers.on_appended(h);
        }
    })?;
    for txn in aborted {
        log.append_aborted_txn(txn)?;
    }
    tracing::debug!(
        topic,
        partition = index,
        snapshot = ?recovery.snapshot_offset,
        scanned_batches = recovery.scanned_batches,
        producers = producers.len(),
        "producer state rebuilt"
    );
    Ok((producers, recovery))
}

/// Checks a batch of a CreateTime topic against `message.timestamp.before.max.ms` and
/// `message.timestamp.after.max.ms` (INVALID_TIMESTAMP, as Kafka). The batch's records are not
/// decompressed: the first record's timestamp (the batch's base timestamp) is checked against
/// the lower bound and the batch's max timestamp against the upper one. A batch without
/// timestamps (-1) passes.
fn check_timestamps(
    header: &BatchHeader,
    now_ms: i64,
    config: &EffectiveTopicConfig,
) -> Result<(), ProduceError> {
    let earliest = now_ms.saturating_sub(config.timestamp_before_max_ms);
    let latest = now_ms.saturating_add(config.timestamp_after_max_ms);
    let out_of_range = |ts: i64| {
        ProduceError::new(
            ErrorCode::InvalidTimestamp,
            format!(
                "timestamp {ts} of a record is out of range: it should be within \
                 [{earliest}, {latest}] (message.timestamp.before.max.ms and \
                 message.timestamp.after.max.ms)"
            ),
        )
    };
    if header.base_timestamp != -1 && header.base_timestamp < earliest {
        return Err(out_of_range(header.base_timestamp));
    }
    if header.max_timestamp != -1 && header.max_timestamp > latest {
        return Err(out_of_range(header.max_timestamp));
    }
    Ok(())
}
