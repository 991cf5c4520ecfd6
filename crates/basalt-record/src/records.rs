//! Records inside an uncompressed batch: building batches and reading their records back.
//!
//! The broker's produce and fetch paths never come here; this is for tools (the CLI producer and
//! consumer, benchmarks, tests) and for the rare broker paths that must look inside a batch. Decoding
//! is bounded by the bytes present: no count or length read from input allocates more than the input
//! could hold.

use bytes::{BufMut, Bytes, BytesMut};
use thiserror::Error;

use crate::batch::{BATCH_HEADER_SIZE, BatchError, BatchHeader, Compression, MAGIC_V2};

/// One record header (a key with an optional value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Header key.
    pub key: String,
    /// Header value; `None` is a null value.
    pub value: Option<Bytes>,
}

/// One record as a client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Absolute offset (base offset + offset delta).
    pub offset: i64,
    /// Absolute timestamp (base timestamp + delta, or the batch max timestamp for LogAppendTime).
    pub timestamp: i64,
    /// Key; `None` is a null key.
    pub key: Option<Bytes>,
    /// Value; `None` is a null value (a tombstone).
    pub value: Option<Bytes>,
    /// Headers in order.
    pub headers: Vec<Header>,
}

/// Why the records of a batch cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RecordError {
    /// The batch itself is malformed.
    #[error(transparent)]
    Batch(#[from] BatchError),
    /// The batch is compressed; decompress it first.
    #[error("batch is compressed with {0:?}")]
    Compressed(Compression),
    /// A record is malformed.
    #[error("malformed record {index}: {reason}")]
    Malformed {
        /// Index of the record within the batch.
        index: usize,
        /// What was wrong.
        reason: &'static str,
    },
}

/// Builds one uncompressed v2 batch with a valid CRC.
#[derive(Debug, Clone)]
pub struct BatchBuilder {
    base_offset: i64,
    base_timestamp: Option<i64>,
    max_timestamp: i64,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    attributes: i16,
    count: i32,
    records: BytesMut,
}

impl BatchBuilder {
    /// A builder for a batch whose first record will have `base_offset`.
    pub fn new(base_offset: i64) -> Self {
        BatchBuilder {
            base_offset,
            base_timestamp: None,
            max_timestamp: -1,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            attributes: 0,
            count: 0,
            records: BytesMut::new(),
        }
    }

    /// Marks the batch as coming from an idempotent producer.
    pub fn producer(mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) -> Self {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
        self
    }

    /// Marks the batch as transactional.
    pub fn transactional(mut self) -> Self {
        self.attributes |= 0x10;
        self
    }

    /// Marks the batch as a control batch (only [`crate::control_batch`] builds these).
    pub(crate) fn control(mut self) -> Self {
        self.attributes |= 0x20;
        self
    }

    /// Number of records added so far.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether no record was added.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Appends a record with the next offset.
    pub fn push(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&str, Option<&[u8]>)],
    ) {
        let base_timestamp = *self.base_timestamp.get_or_insert(timestamp);
        self.max_timestamp = if self.count == 0 {
            timestamp
        } else {
            self.max_timestamp.max(timestamp)
        };
        let mut body = BytesMut::new();
        body.put_i8(0);
        put_varlong(&mut body, timestamp - base_timestamp);
        put_varlong(&mut body, i64::from(self.count));
        put_nullable(&mut body, key);
        put_nullable(&mut body, value);
        put_varlong(&mut body, headers.len() as i64);
        for (k, v) in headers {
            put_nullable(&mut body, Some(k.as_bytes()));
            put_nullable(&mut body, *v);
        }
        put_varlong(&mut self.records, body.len() as i64);
        self.records.extend_from_slice(&body);
        self.count += 1;
    }

    /// Finishes the batch: header, records and CRC.
    ///
    /// # Panics
    /// If no record was added (a producer batch has at least one).
    pub fn build(self) -> Bytes {
        assert!(self.count > 0, "a batch needs at least one record");
        let base_timestamp = self.base_timestamp.unwrap_or(-1);
        let mut out = BytesMut::with_capacity(BATCH_HEADER_SIZE + self.records.len());
        out.put_i64(self.base_offset);
        out.put_i32((BATCH_HEADER_SIZE - 12 + self.records.len()) as i32);
        out.put_i32(-1);
        out.put_i8(MAGIC_V2);
        out.put_u32(0);
        out.put_i16(self.attributes);
        out.put_i32(self.count - 1);
        out.put_i64(base_timestamp);
        out.put_i64(self.max_timestamp);
        out.put_i64(self.producer_id);
        out.put_i16(self.producer_epoch);
        out.put_i32(self.base_sequence);
        out.put_i32(self.count);
        out.extend_from_slice(&self.records);
        let crc = crc32c::crc32c(&out[21..]);
        out[17..21].copy_from_slice(&crc.to_be_bytes());
        out.freeze()
    }
}

/// Decodes the records of one uncompressed batch (`batch` starts with the batch header).
pub fn decode_records(batch: &Bytes) -> Result<Vec<Record>, RecordError> {
    let (header, mut cur) = records_cursor(batch)?;
    // Every record takes at least 7 bytes, so the count cannot make us reserve more than the input.
    let mut records = Vec::with_capacity((header.record_count as usize).min(cur.remaining() / 7));
    for index in 0..header.record_count as usize {
        records.push(next_record(&header, &mut cur, index)?);
    }
    Ok(records)
}

/// Decodes only the first record of one uncompressed batch; `None` when the batch has none.
pub(crate) fn decode_first_record(batch: &Bytes) -> Result<Option<Record>, RecordError> {
    let (header, mut cur) = records_cursor(batch)?;
    if header.record_count == 0 {
        return Ok(None);
    }
    next_record(&header, &mut cur, 0).map(Some)
}

/// The header of `batch` and a cursor over its (uncompressed) records.
fn records_cursor(batch: &Bytes) -> Result<(BatchHeader, Cursor), RecordError> {
    let header = BatchHeader::parse(batch)?;
    if header.compression() != Compression::None {
        return Err(RecordError::Compressed(header.compression()));
    }
    let cur = Cursor {
        buf: batch.slice(BATCH_HEADER_SIZE..header.total_size()),
        pos: 0,
    };
    Ok((header, cur))
}

/// Decodes the record at the cursor, the `index`-th of the batch.
fn next_record(
    header: &BatchHeader,
    cur: &mut Cursor,
    index: usize,
) -> Result<Record, RecordError> {
    let malformed = |reason| RecordError::Malformed { index, reason };
    let length = cur.varlong().ok_or(malformed("bad length"))?;
    if length < 0 || length as usize > cur.remaining() {
        return Err(malformed("length past the batch"));
    }
    let end = cur.pos + length as usize;
    cur.byte().ok_or(malformed("truncated attributes"))?;
    let ts_delta = cur.varlong().ok_or(malformed("bad timestamp delta"))?;
    let offset_delta = cur.varlong().ok_or(malformed("bad offset delta"))?;
    let key = cur.nullable().ok_or(malformed("bad key"))?;
    let value = cur.nullable().ok_or(malformed("bad value"))?;
    let header_count = cur.varlong().ok_or(malformed("bad header count"))?;
    if header_count < 0 || header_count as usize > cur.remaining() {
        return Err(malformed("header count past the batch"));
    }
    let mut headers = Vec::with_capacity(header_count as usize);
    for _ in 0..header_count {
        let key = cur
            .nullable()
            .flatten()
            .ok_or(malformed("bad header key"))?;
        let key = String::from_utf8(key.to_vec()).map_err(|_| malformed("header key utf-8"))?;
        let value = cur.nullable().ok_or(malformed("bad header value"))?;
        headers.push(Header { key, value });
    }
    if cur.pos != end {
        return Err(malformed("record length disagrees with its fields"));
    }
    let log_append = header.timestamp_type() == crate::TimestampType::LogAppendTime;
    Ok(Record {
        offset: header.base_offset.wrapping_add(offset_delta),
        timestamp: if log_append {
            header.max_timestamp
        } else {
            header.base_timestamp.wrapping_add(ts_delta)
        },
        key,
        value,
        headers,
    })
}

struct Cursor {
    buf: Bytes,
    pos: usize,
}

impl Cursor {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn byte(&mut self) -> Option<u8> {
        let b = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    fn varlong(&mut self) -> Option<i64> {
        let mut raw: u64 = 0;
        for shift in (0..70).step_by(7) {
            let b = self.byte()?;
            raw |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(((raw >> 1) as i64) ^ -((raw & 1) as i64));
            }
        }
        None
    }

    /// A varint-length-prefixed byte string; the outer `None` means malformed, the inner a null.
    fn nullable(&mut self) -> Option<Option<Bytes>> {
        let len = self.varlong()?;
        if len < 0 {
            return Some(None);
        }
        let len = len as usize;
        if len > self.remaining() {
            return None;
        }
        let out = self.buf.slice(self.pos..self.pos + len);
        self.pos += len;
        Some(Some(out))
    }
}

fn put_varlong(buf: &mut BytesMut, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        buf.put_u8((z as u8) | 0x80);
        z >>= 7;
    }
    buf.put_u8(z as u8);
}

fn put_nullable(buf: &mut BytesMut, v: Option<&[u8]>) {
    match v {
        None => put_varlong(buf, -1),
        Some(b) => {
            put_varlong(buf, b.len() as i64);
            buf.extend_from_slice(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BatchIter, set_base_offset, set_log_append_time};
    use proptest::prelude::*;

    #[test]
    fn built_batch_validates_and_round_trips() {
        let mut b = BatchBuilder::new(0).producer(7, 1, 10);
        b.push(1000, Some(b"k"), Some(b"v1"), &[("h", Some(b"x"))]);
        b.push(1005, None, None, &[]);
        let batch = b.build();
        let h = BatchHeader::validate_produced(&batch).unwrap();
        assert_eq!(h.record_count, 2);
        assert_eq!(h.last_offset_delta, 1);
        assert_eq!(h.max_timestamp, 1005);
        assert_eq!(h.producer_id, 7);
        assert_eq!(h.base_sequence, 10);
        assert_eq!(h.last_sequence(), 11);
        let recs = decode_records(&batch).unwrap();
        assert_eq!(recs[0].key.as_deref(), Some(&b"k"[..]));
        assert_eq!(recs[0].headers[0].key, "h");
        assert_eq!(recs[1].offset, 1);
        assert_eq!(recs[1].value, None);
        assert_eq!(recs[1].timestamp, 1005);
    }

    #[test]
    fn offset_rewrite_keeps_crc_valid_and_log_append_time_recomputes_it() {
        let mut b = BatchBuilder::new(0);
        b.push(1, None, Some(b"x"), &[]);
        let mut batch = b.build().to_vec();
        set_base_offset(&mut batch, 42);
        let h = BatchHeader::validate_produced(&batch).unwrap();
        assert_eq!(h.base_offset, 42);
        set_log_append_time(&mut batch, 99);
        let h = BatchHeader::validate_produced(&batch).unwrap();
        assert_eq!(h.max_timestamp, 99);
        assert_eq!(h.timestamp_type(), crate::TimestampType::LogAppendTime);
    }

    #[test]
    fn corrupt_batches_are_rejected_with_the_fact() {
        let mut b = BatchBuilder::new(0);
        b.push(1, None, Some(b"hello"), &[]);
        let good = b.build().to_vec();

        let mut bad_crc = good.clone();
        *bad_crc.last_mut().unwrap() ^= 1;
        assert!(matches!(
            BatchHeader::validate_produced(&bad_crc),
            Err(BatchError::CrcMismatch { .. })
        ));

        let mut bad_magic = good.clone();
        bad_magic[16] = 1;
        assert_eq!(
            BatchHeader::validate_produced(&bad_magic),
            Err(BatchError::UnsupportedMagic { magic: 1 })
        );

        assert!(matches!(
            BatchHeader::validate_produced(&good[..good.len() - 1]),
            Err(BatchError::Truncated { .. })
        ));

        let mut bad_len = good.clone();
        bad_len[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        assert_eq!(
            BatchHeader::validate_produced(&bad_len),
            Err(BatchError::InvalidLength { length: -5 })
        );

        let mut bad_count = good;
        bad_count[57..61].copy_from_slice(&3i32.to_be_bytes());
        assert!(matches!(
            BatchHeader::validate_produced(&bad_count),
            Err(BatchError::InconsistentCount { .. })
        ));
    }

    #[test]
    fn iterator_stops_at_the_first_bad_batch_and_reports_where() {
        let mut buf = Vec::new();
        for i in 0..3 {
            let mut b = BatchBuilder::new(i);
            b.push(i, None, Some(b"abc"), &[]);
            buf.extend_from_slice(&b.build());
        }
        let one = buf.len() / 3;
        buf[one + 30] ^= 0xff;
        let mut it = BatchIter::verified(&buf);
        assert!(it.next().unwrap().is_ok());
        assert!(matches!(
            it.next(),
            Some(Err(BatchError::CrcMismatch { .. }))
        ));
        assert_eq!(it.position(), one);
        assert!(it.next().is_none());
    }

    proptest! {
        #[test]
        fn parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = BatchHeader::validate_produced(&data);
            for item in BatchIter::verified(&data) {
                let _ = item;
            }
            let _ = decode_records(&Bytes::from(data));
        }

        #[test]
        fn records_round_trip(
            values in proptest::collection::vec(
                (proptest::option::of(proptest::collection::vec(any::<u8>(), 0..20)),
                 proptest::option::of(proptest::collection::vec(any::<u8>(), 0..50)),
                 0i64..1_000_000),
                1..20),
        ) {
            let mut b = BatchBuilder::new(100);
            for (k, v, ts) in &values {
                b.push(*ts, k.as_deref(), v.as_deref(), &[]);
            }
            let batch = b.build();
            let h = BatchHeader::validate_produced(&batch).unwrap();
            prop_assert_eq!(h.record_count as usize, values.len());
            let recs = decode_records(&batch).unwrap();
            for (i, (r, (k, v, ts))) in recs.iter().zip(&values).enumerate() {
                prop_assert_eq!(r.offset, 100 + i as i64);
                prop_assert_eq!(r.key.as_deref(), k.as_deref());
                prop_assert_eq!(r.value.as_deref(), v.as_deref());
                prop_assert_eq!(r.timestamp, *ts);
            }
        }
    }
}
