//! Control batches: the transaction markers (COMMIT and ABORT) a transaction coordinator has
//! written into a partition, built and recognised as bytes.
//!
//! A marker is a RecordBatch v2 with the transactional (0x10) and control (0x20) attributes set,
//! no compression, CreateTime, the producer's id and epoch, base sequence -1, and exactly one
//! record without headers whose key is the control record key and whose value is the
//! end-transaction marker (all integers big-endian):
//!
//! | part  | bytes | field                              |
//! |-------|-------|------------------------------------|
//! | key   | 0..2  | version (i16, 0)                   |
//! | key   | 2..4  | type (i16): 0 = ABORT, 1 = COMMIT  |
//! | value | 0..2  | version (i16, 0)                   |
//! | value | 2..6  | coordinator epoch (i32)            |
//!
//! Other control types exist (2 = LEADER_CHANGE, and KRaft's snapshot and voter records); they
//! are not transaction markers, and this module reports them as such rather than failing. Like
//! Kafka, a reader accepts key and value versions above 0 and reads the fields it knows.
//!
//! # Invariants
//! - `CTRL-1`: [`control_batch`] builds a batch that [`BatchHeader::validate_produced`] accepts
//!   (framing, CRC, one record for one offset), with base offset 0: the log assigns its offset.
//! - `CTRL-2`: [`parse_control`] and [`parse_end_txn_marker`] never panic and never allocate more
//!   than their input holds, whatever the bytes; a batch that is not a control batch is `Ok(None)`
//!   without its records being read.

use bytes::{BufMut, Bytes, BytesMut};

use crate::batch::BatchHeader;
use crate::records::{BatchBuilder, RecordError, decode_first_record};

/// Version of the control record key and of the end-transaction marker value this module writes.
const CONTROL_VERSION: i16 = 0;

/// The outcome a transaction marker records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControlType {
    /// The transaction was aborted: its records must not be delivered to read_committed readers.
    Abort,
    /// The transaction was committed.
    Commit,
}

impl ControlType {
    /// The control record key type Kafka uses (ABORT = 0, COMMIT = 1).
    pub fn key_type(self) -> i16 {
        match self {
            ControlType::Abort => 0,
            ControlType::Commit => 1,
        }
    }

    /// The marker type for a control record key type; `None` for types that are not transaction
    /// markers (LEADER_CHANGE and above, or unknown ones).
    pub fn from_key_type(key_type: i16) -> Option<Self> {
        match key_type {
            0 => Some(ControlType::Abort),
            1 => Some(ControlType::Commit),
            _ => None,
        }
    }
}

/// A transaction marker as read back: its type and the coordinator epoch that wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EndTxnMarker {
    /// Commit or abort.
    pub control: ControlType,
    /// Epoch of the transaction coordinator that wrote the marker.
    pub coordinator_epoch: i32,
}

/// Builds the transaction marker batch Kafka writes for `producer_id`/`producer_epoch`: base
/// offset 0, transactional and control, uncompressed, CreateTime with base and max timestamp
/// `timestamp_ms`, base sequence -1, and one record (offset and timestamp delta 0) with the
/// control key and the end-transaction marker value (see the module docs).
pub fn control_batch(
    producer_id: i64,
    producer_epoch: i16,
    control: ControlType,
    coordinator_epoch: i32,
    timestamp_ms: i64,
) -> Bytes {
    let mut key = BytesMut::with_capacity(4);
    key.put_i16(CONTROL_VERSION);
    key.put_i16(control.key_type());
    let mut value = BytesMut::with_capacity(6);
    value.put_i16(CONTROL_VERSION);
    value.put_i32(coordinator_epoch);
    let mut builder = BatchBuilder::new(0)
        .producer(producer_id, producer_epoch, -1)
        .transactional()
        .control();
    builder.push(timestamp_ms, Some(&key), Some(&value), &[]);
    builder.build()
}

/// The marker type of the batch at the start of `batch`.
///
/// `Ok(None)` when the batch is not a control batch (its records are not read) or is a control
/// batch of another type than ABORT or COMMIT. For a control batch, checks framing and CRC and
/// reads the key of its first record; an error says why that failed. Never panics (`CTRL-2`).
pub fn parse_control(batch: &[u8]) -> Result<Option<ControlType>, RecordError> {
    Ok(control_record(batch)?.and_then(|(control, _)| control))
}

/// The marker at the start of `batch` with its coordinator epoch: like [`parse_control`], and
/// for an ABORT or COMMIT marker also reads the end-transaction marker value, which must be
/// present.
pub fn parse_end_txn_marker(batch: &[u8]) -> Result<Option<EndTxnMarker>, RecordError> {
    let Some((Some(control), value)) = control_record(batch)? else {
        return Ok(None);
    };
    let malformed = |reason| RecordError::Malformed { index: 0, reason };
    let value = value.ok_or(malformed("end-transaction marker without a value"))?;
    let (version, coordinator_epoch) = match value.as_ref() {
        [v0, v1, e0, e1, e2, e3, ..] => (
            i16::from_be_bytes([*v0, *v1]),
            i32::from_be_bytes([*e0, *e1, *e2, *e3]),
        ),
        _ => return Err(malformed("end-transaction marker value too short")),
    };
    if version < 0 {
        return Err(malformed("negative end-transaction marker version"));
    }
    Ok(Some(EndTxnMarker {
        control,
        coordinator_epoch,
    }))
}

/// For a control batch: the marker type its first record's key names (`None` for other control
/// types) and that record's value. `None` for a batch that is not a control batch.
#[allow(clippy::type_complexity)]
fn control_record(
    batch: &[u8],
) -> Result<Option<(Option<ControlType>, Option<Bytes>)>, RecordError> {
    let header = BatchHeader::parse(batch)?;
    if !header.is_control() {
        return Ok(None);
    }
    header.verify_crc(batch)?;
    // A control batch is tiny (one record); copying it lets the record decoder share its code.
    let bytes = Bytes::copy_from_slice(&batch[..header.total_size()]);
    let malformed = |reason| RecordError::Malformed { index: 0, reason };
    let record = decode_first_record(&bytes)?.ok_or(malformed("control batch without records"))?;
    let key = record
        .key
        .ok_or(malformed("control record without a key"))?;
    let (version, key_type) = match key.as_ref() {
        [v0, v1, t0, t1, ..] => (
            i16::from_be_bytes([*v0, *v1]),
            i16::from_be_bytes([*t0, *t1]),
        ),
        _ => return Err(malformed("control record key too short")),
    };
    if version < 0 {
        return Err(malformed("negative control record key version"));
    }
    Ok(Some((ControlType::from_key_type(key_type), record.value)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        BatchBuilder, BatchError, Compression, TimestampType, decode_records, set_base_offset,
    };
    use proptest::prelude::*;

    #[test]
    fn a_marker_is_a_valid_transactional_control_batch_with_kafkas_layout() {
        let batch = control_batch(4242, 7, ControlType::Commit, 13, 1_700_000_000_123);
        let h = BatchHeader::validate_produced(&batch).unwrap();
        assert_eq!(h.base_offset, 0);
        assert_eq!(h.attributes, 0x30);
        assert!(h.is_transactional() && h.is_control());
        assert_eq!(h.compression(), Compression::None);
        assert_eq!(h.timestamp_type(), TimestampType::CreateTime);
        assert_eq!((h.producer_id, h.producer_epoch), (4242, 7));
        assert_eq!(h.base_sequence, -1);
        assert_eq!(
            (h.base_timestamp, h.max_timestamp),
            (1_700_000_000_123, 1_700_000_000_123)
        );
        assert_eq!((h.record_count, h.last_offset_delta), (1, 0));
        let records = decode_records(&batch).unwrap();
        assert_eq!(records.len(), 1);
        let r = &records[0];
        assert_eq!(r.offset, 0);
        assert_eq!(r.timestamp, 1_700_000_000_123);
        assert_eq!(r.key.as_deref(), Some(&[0, 0, 0, 1][..]));
        assert_eq!(r.value.as_deref(), Some(&[0, 0, 0, 0, 0, 13][..]));
        assert!(r.headers.is_empty());
        // Kafka's record body: attributes, deltas 0, key of 4 bytes, value of 6, no headers.
        assert_eq!(batch.len(), 61 + 1 + 16);
        assert_eq!(
            &batch[61..],
            &[32, 0, 0, 0, 8, 0, 0, 0, 1, 12, 0, 0, 0, 0, 0, 13, 0][..]
        );
    }

    #[test]
    fn markers_round_trip_at_any_offset() {
        for control in [ControlType::Abort, ControlType::Commit] {
            let mut batch = control_batch(1, 0, control, -1, 5).to_vec();
            set_base_offset(&mut batch, 9_000);
            assert_eq!(parse_control(&batch), Ok(Some(control)));
            assert_eq!(
                parse_end_txn_marker(&batch),
                Ok(Some(EndTxnMarker {
                    control,
                    coordinator_epoch: -1
                }))
            );
        }
        assert_eq!(ControlType::from_key_type(0), Some(ControlType::Abort));
        assert_eq!(ControlType::from_key_type(1), Some(ControlType::Commit));
    }

    #[test]
    fn ordinary_batches_and_other_control_types_are_not_markers() {
        let mut b = BatchBuilder::new(0).producer(1, 0, 0).transactional();
        b.push(1, Some(&[0, 0, 0, 0]), Some(b"data"), &[]);
        assert_eq!(parse_control(&b.build()), Ok(None));

        // LEADER_CHANGE (2) and an unknown type: control batches, but no transaction markers.
        for key_type in [2i16, 3, 99, -1] {
            let mut b = BatchBuilder::new(0).control();
            let mut key = vec![0, 0];
            key.extend_from_slice(&key_type.to_be_bytes());
            b.push(1, Some(&key), Some(&[0, 0, 0, 0, 0, 0]), &[]);
            let batch = b.build();
            assert_eq!(parse_control(&batch), Ok(None));
            assert_eq!(parse_end_txn_marker(&batch), Ok(None));
        }

        // A newer key version still names its type, as Kafka reads it.
        let mut b = BatchBuilder::new(0).control();
        b.push(
            1,
            Some(&[0, 1, 0, 0, 0xff]),
            Some(&[0, 3, 0, 0, 0, 2, 9]),
            &[],
        );
        let batch = b.build();
        assert_eq!(parse_control(&batch), Ok(Some(ControlType::Abort)));
        assert_eq!(
            parse_end_txn_marker(&batch)
                .unwrap()
                .map(|m| m.coordinator_epoch),
            Some(2)
        );
    }

    #[test]
    fn unreadable_markers_are_errors_not_panics() {
        let good = control_batch(1, 0, ControlType::Abort, 3, 5).to_vec();
        for len in 0..good.len() {
            assert!(parse_control(&good[..len]).is_err(), "cut at {len}");
            assert!(parse_end_txn_marker(&good[..len]).is_err(), "cut at {len}");
        }
        let mut bad_crc = good.clone();
        *bad_crc.last_mut().unwrap() ^= 1;
        assert!(matches!(
            parse_control(&bad_crc),
            Err(RecordError::Batch(BatchError::CrcMismatch { .. }))
        ));

        let malformed = |key: Option<&[u8]>, value: Option<&[u8]>| {
            let mut b = BatchBuilder::new(0).control();
            b.push(1, key, value, &[]);
            b.build()
        };
        for key in [None, Some(&[0u8, 0, 0][..]), Some(&[0xff, 0xff, 0, 0][..])] {
            let batch = malformed(key, Some(&[0, 0, 0, 0, 0, 0]));
            assert!(matches!(
                parse_control(&batch),
                Err(RecordError::Malformed { index: 0, .. })
            ));
        }
        for value in [
            None,
            Some(&[0u8, 0, 0, 0, 0][..]),
            Some(&[0x80, 0, 0, 0, 0, 0][..]),
        ] {
            let batch = malformed(Some(&[0, 0, 0, 1]), value);
            assert_eq!(parse_control(&batch), Ok(Some(ControlType::Commit)));
            assert!(matches!(
                parse_end_txn_marker(&batch),
                Err(RecordError::Malformed { index: 0, .. })
            ));
        }
    }

    proptest! {
        #[test]
        fn garbled_markers_never_panic(
            flips in proptest::collection::vec((0usize..78, any::<u8>()), 1..6),
            cut in 0usize..90,
        ) {
            let mut batch = control_batch(77, 3, ControlType::Abort, 11, 1234).to_vec();
            for (at, byte) in flips {
                let at = at % batch.len();
                batch[at] ^= byte;
            }
            // Keep the header's claims but make the CRC right, so the record decoder is reached.
            if batch.len() >= 21 {
                let crc = crc32c::crc32c(&batch[21..]);
                batch[17..21].copy_from_slice(&crc.to_be_bytes());
            }
            batch.truncate(cut.min(batch.len()));
            let _ = parse_control(&batch);
            let _ = parse_end_txn_marker(&batch);
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_control(&data);
            let _ = parse_end_txn_marker(&data);
        }
    }
}
