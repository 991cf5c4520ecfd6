//! Idempotent and transactional producer state of one partition: a pure state machine over
//! batch headers.
//!
//! For each producer id it keeps the epoch and the last [`BATCHES_KEPT`] batches (sequence
//! range and offsets), which is what Kafka keeps, so a retried batch is answered with its
//! original offsets and nothing is written twice. For transactional producers it also keeps the
//! first offset of the transaction open in this partition: the smallest of those is where the
//! partition's unstable range begins (the last stable offset).
//!
//! # Invariants
//! - `PID-1`: for one producer id and epoch, appended sequences are contiguous: each batch's base
//!   sequence is the previous batch's last sequence + 1 (wrapping at `i32::MAX`).
//! - `PID-2`: a batch whose sequence range equals a kept batch's is never appended again.
//! - `PID-3`: a producer has an open transaction here from its first transactional batch after
//!   its last marker until its next marker; a marker never carries an epoch older than the
//!   producer's, so a late marker cannot end a later transaction.

use std::collections::{BTreeSet, HashMap, VecDeque};

use basalt_protocol::ErrorCode;
use basalt_record::BatchHeader;

/// Batches remembered per producer (Kafka's `max.in.flight.requests.per.connection` limit).
pub const BATCHES_KEPT: usize = 5;

/// A batch remembered for duplicate detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeptBatch {
    /// First sequence.
    pub first_seq: i32,
    /// Last sequence.
    pub last_seq: i32,
    /// Offset of the first record.
    pub base_offset: i64,
    /// Offset of the last record.
    pub last_offset: i64,
}

/// One producer's state, as a snapshot stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerState {
    /// The producer id.
    pub producer_id: i64,
    /// Its current epoch.
    pub epoch: i16,
    /// First offset of its open transaction in this partition, or -1.
    pub txn_first_offset: i64,
    /// Max timestamp of its last batch, or -1.
    pub last_timestamp: i64,
    /// Its last batches (at most [`BATCHES_KEPT`]), oldest first.
    pub batches: Vec<KeptBatch>,
}

#[derive(Debug, Clone)]
struct ProducerEntry {
    epoch: i16,
    txn_first_offset: i64,
    last_timestamp: i64,
    batches: VecDeque<KeptBatch>,
}

impl Default for ProducerEntry {
    fn default() -> Self {
        ProducerEntry {
            epoch: 0,
            txn_first_offset: -1,
            last_timestamp: -1,
            batches: VecDeque::new(),
        }
    }
}

/// What a transaction marker ended in this partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndedTxn {
    /// The first offset of the transaction it ended.
    pub first_offset: i64,
}

/// What to do with an incoming batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Append it.
    Append,
    /// Already appended: answer with the original offsets (`PID-2`).
    Duplicate(KeptBatch),
    /// Refuse it with this error.
    Reject(ErrorCode),
}

/// Producer state of one partition.
#[derive(Debug, Default)]
pub struct ProducerTable {
    producers: HashMap<i64, ProducerEntry>,
    /// (first offset, producer id) of every open transaction.
    open_txns: BTreeSet<(i64, i64)>,
}

impl ProducerTable {
    /// Decides whether `batch` (not yet appended) may be appended.
    pub fn check(&self, batch: &BatchHeader) -> SequenceCheck {
        if batch.producer_id < 0 || batch.base_sequence < 0 {
            return SequenceCheck::Append;
        }
        let Some(entry) = self.producers.get(&batch.producer_id) else {
            // Unknown producer (new, or its state expired with old segments): accept.
            return SequenceCheck::Append;
        };
        if batch.producer_epoch < entry.epoch {
            return SequenceCheck::Reject(ErrorCode::InvalidProducerEpoch);
        }
        if batch.producer_epoch > entry.epoch {
            // A new epoch starts its sequences at zero.
            return if batch.base_sequence == 0 {
                SequenceCheck::Append
            } else {
                SequenceCheck::Reject(ErrorCode::OutOfOrderSequenceNumber)
            };
        }
        let last_seq = batch.last_sequence();
        if let Some(kept) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == batch.base_sequence && b.last_seq == last_seq)
        {
            return SequenceCheck::Duplicate(*kept);
        }
        let expected = entry
            .batches
            .back()
            .map_or(0, |b| next_sequence(b.last_seq));
        if batch.base_sequence == expected {
            SequenceCheck::Append
        } else {
            SequenceCheck::Reject(ErrorCode::OutOfOrderSequenceNumber)
        }
    }

    /// Records an appended data batch (`batch` carries its assigned base offset). Control
    /// batches go to [`ProducerTable::on_marker`].
    pub fn on_appended(&mut self, batch: &BatchHeader) {
        if batch.producer_id < 0 || batch.is_control() {
            return;
        }
        if batch.is_transactional() {
            let entry = self.producers.entry(batch.producer_id).or_default();
            if entry.txn_first_offset < 0 {
                entry.txn_first_offset = batch.base_offset;
                self.open_txns
                    .insert((batch.base_offset, batch.producer_id));
            }
        }
        if batch.base_sequence < 0 {
            return;
        }
        let entry = self.producers.entry(batch.producer_id).or_default();
        entry.last_timestamp = batch.max_timestamp;
        if batch.producer_epoch != entry.epoch {
            entry.epoch = batch.producer_epoch;
            entry.batches.clear();
        }
        if entry.batches.len() == BATCHES_KEPT {
            entry.batches.pop_front();
        }
        entry.batches.push_back(KeptBatch {
            first_seq: batch.base_sequence,
            last_seq: batch.last_sequence(),
            base_offset: batch.base_offset,
            last_offset: batch.last_offset(),
        });
    }

    /// Whether a marker of `producer_id` at `epoch` may be written (`PID-3`): Err with the
    /// producer's epoch when the marker's is older.
    pub fn check_marker(&self, producer_id: i64, epoch: i16) -> Result<(), i16> {
        match self.producers.get(&producer_id) {
            Some(e) if epoch < e.epoch => Err(e.epoch),
            _ => Ok(()),
        }
    }

    /// Whether `producer_id` has an open transaction here.
    pub fn has_open_txn(&self, producer_id: i64) -> bool {
        self.producers
            .get(&producer_id)
            .is_some_and(|e| e.txn_first_offset >= 0)
    }

    /// Records an appended transaction marker (a control batch); what it ended, if the
    /// producer had a transaction open here. A marker of a newer epoch also moves the producer
    /// to that epoch, so batches of the fenced epoch are refused.
    pub fn on_marker(&mut self, marker: &BatchHeader) -> Option<EndedTxn> {
        let entry = self.producers.entry(marker.producer_id).or_default();
        if marker.producer_epoch > entry.epoch {
            entry.epoch = marker.producer_epoch;
            entry.batches.clear();
        }
        if entry.txn_first_offset < 0 {
            return None;
        }
        let first_offset = std::mem::replace(&mut entry.txn_first_offset, -1);
        self.open_txns.remove(&(first_offset, marker.producer_id));
        Some(EndedTxn { first_offset })
    }

    /// The first offset of the oldest open transaction, if any: the last stable offset is never
    /// above it.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.open_txns.first().map(|&(o, _)| o)
    }

    /// Every producer's id, epoch and kept batches (oldest first), ordered by producer id, for a
    /// snapshot.
    pub fn entries(&self) -> Vec<ProducerState> {
        let mut out: Vec<ProducerState> = self
            .producers
            .iter()
            .map(|(&producer_id, e)| ProducerState {
                producer_id,
                epoch: e.epoch,
                txn_first_offset: e.txn_first_offset,
                last_timestamp: e.last_timestamp,
                batches: e.batches.iter().copied().collect(),
            })
            .collect();
        out.sort_unstable_by_key(|p| p.producer_id);
        out
    }

    /// A table holding `entries` (from a snapshot), keeping of each producer only the batches
    /// that end at or after `log_start_offset` (at most [`BATCHES_KEPT`], the newest) and dropping
    /// producers left with none: the table a scan of the log from its start would build.
    pub fn restore(entries: Vec<ProducerState>, log_start_offset: i64) -> Self {
        let mut producers = HashMap::with_capacity(entries.len());
        let mut open_txns = BTreeSet::new();
        for p in entries {
            if p.producer_id < 0 {
                continue;
            }
            let mut batches: VecDeque<KeptBatch> = p
                .batches
                .into_iter()
                .filter(|b| b.last_offset >= log_start_offset)
                .collect();
            while batches.len() > BATCHES_KEPT {
                batches.pop_front();
            }
            // An open transaction is kept even if it started below the log start: its marker
            // is still to come.
            if !batches.is_empty() || p.txn_first_offset >= 0 {
                if p.txn_first_offset >= 0 {
                    open_txns.insert((p.txn_first_offset, p.producer_id));
                }
                producers.insert(
                    p.producer_id,
                    ProducerEntry {
                        epoch: p.epoch,
                        txn_first_offset: p.txn_first_offset,
                        last_timestamp: p.last_timestamp,
                        batches,
                    },
                );
            }
        }
        ProducerTable {
            producers,
            open_txns,
        }
    }

    /// One producer's state, for DescribeProducers.
    pub fn get(&self, producer_id: i64) -> Option<ProducerState> {
        self.producers.get(&producer_id).map(|e| ProducerState {
            producer_id,
            epoch: e.epoch,
            txn_first_offset: e.txn_first_offset,
            last_timestamp: e.last_timestamp,
            batches: e.batches.iter().copied().collect(),
        })
    }

    /// Number of producers tracked.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// Whether no producer is tracked.
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }
}

fn next_sequence(seq: i32) -> i32 {
    if seq == i32::MAX { 0 } else { seq + 1 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(pid: i64, epoch: i16, seq: i32, records: i32, base_offset: i64) -> BatchHeader {
        BatchHeader {
            base_offset,
            batch_length: 100,
            partition_leader_epoch: -1,
            crc: 0,
            attributes: 0,
            last_offset_delta: records - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            record_count: records,
        }
    }

    #[test]
    fn sequences_must_be_contiguous_and_retries_are_recognised() {
        let mut t = ProducerTable::default();
        let b0 = header(7, 0, 0, 3, 0);
        assert_eq!(t.check(&b0), SequenceCheck::Append);
        t.on_appended(&b0);
        let b1 = header(7, 0, 3, 2, 3);
        assert_eq!(t.check(&b1), SequenceCheck::Append);
        t.on_appended(&b1);
        // A retry of b0 is a duplicate with its original offsets.
        match t.check(&header(7, 0, 0, 3, -1)) {
            SequenceCheck::Duplicate(k) => assert_eq!((k.base_offset, k.last_offset), (0, 2)),
            other => panic!("{other:?}"),
        }
        // A gap is out of order.
        assert_eq!(
            t.check(&header(7, 0, 9, 1, -1)),
            SequenceCheck::Reject(ErrorCode::OutOfOrderSequenceNumber)
        );
        // An older epoch is fenced; a newer one must restart at zero.
        assert_eq!(
            t.check(&header(7, -1, 5, 1, -1)),
            SequenceCheck::Reject(ErrorCode::InvalidProducerEpoch)
        );
        assert_eq!(
            t.check(&header(7, 1, 5, 1, -1)),
            SequenceCheck::Reject(ErrorCode::OutOfOrderSequenceNumber)
        );
        assert_eq!(t.check(&header(7, 1, 0, 1, -1)), SequenceCheck::Append);
        // Non-idempotent batches are never checked.
        assert_eq!(t.check(&header(-1, -1, -1, 1, -1)), SequenceCheck::Append);
    }

    #[test]
    fn only_the_last_five_batches_are_kept() {
        let mut t = ProducerTable::default();
        for i in 0..7 {
            t.on_appended(&header(1, 0, i, 1, i64::from(i)));
        }
        assert_eq!(
            t.check(&header(1, 0, 1, 1, -1)),
            SequenceCheck::Reject(ErrorCode::OutOfOrderSequenceNumber)
        );
        assert!(matches!(
            t.check(&header(1, 0, 2, 1, -1)),
            SequenceCheck::Duplicate(_)
        ));
        assert_eq!(t.check(&header(1, 0, 7, 1, -1)), SequenceCheck::Append);
    }

    #[test]
    fn open_transactions_bound_the_stable_range() {
        let mut t = ProducerTable::default();
        let mut a = header(1, 0, 0, 2, 10);
        a.attributes = 0x10;
        t.on_appended(&a);
        let mut b = header(2, 0, 0, 1, 12);
        b.attributes = 0x10;
        t.on_appended(&b);
        let mut a2 = header(1, 0, 2, 1, 13);
        a2.attributes = 0x10;
        t.on_appended(&a2);
        assert_eq!(t.first_unstable_offset(), Some(10));
        let mut marker = header(1, 0, -1, 1, 14);
        marker.attributes = 0x30;
        assert_eq!(t.check_marker(1, 0), Ok(()));
        assert_eq!(t.on_marker(&marker), Some(EndedTxn { first_offset: 10 }));
        assert_eq!(t.first_unstable_offset(), Some(12));
        // Sequences continue after a marker of the same epoch.
        assert_eq!(t.check(&header(1, 0, 3, 1, -1)), SequenceCheck::Append);
        // A marker of a newer epoch fences the older one; an older marker is refused.
        let mut fence = header(2, 1, -1, 1, 15);
        fence.attributes = 0x30;
        assert_eq!(t.on_marker(&fence), Some(EndedTxn { first_offset: 12 }));
        assert_eq!(t.first_unstable_offset(), None);
        assert_eq!(t.check_marker(2, 0), Err(1));
        assert_eq!(
            t.check(&header(2, 0, 1, 1, -1)),
            SequenceCheck::Reject(ErrorCode::InvalidProducerEpoch)
        );
        // Snapshots keep open transactions.
        let mut c = header(3, 0, 0, 1, 16);
        c.attributes = 0x10;
        t.on_appended(&c);
        let restored = ProducerTable::restore(t.entries(), 0);
        assert_eq!(restored.first_unstable_offset(), Some(16));
        assert!(restored.has_open_txn(3));
    }
}
