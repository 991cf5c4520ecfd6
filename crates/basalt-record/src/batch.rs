//! The fixed batch header: parsing, validation, CRC and in-place rewrites.
//!
//! Validation is split in two so that hot paths pay only for what they need:
//! [`BatchHeader::parse`] checks the framing (length fields, magic, record count against the last
//! offset delta) from the first 61 bytes, and [`BatchHeader::verify_crc`] checks the CRC-32C over the
//! body. A producer's batch and a batch read back during recovery get both; a reader walking batches
//! it already validated only needs the framing.

use std::ops::Range;

use thiserror::Error;

/// Size of the fixed part of a v2 record batch, up to and including the record count.
pub const BATCH_HEADER_SIZE: usize = 61;
/// The only message format version Basalt stores.
pub const MAGIC_V2: i8 = 2;

/// Bytes of a batch before the `batch length` field's coverage starts (base offset + length).
const LOG_OVERHEAD: usize = 12;
/// Offset of the first CRC-covered byte (the attributes field).
const CRC_START: usize = 21;

const ATTR_COMPRESSION_MASK: i16 = 0x07;
const ATTR_TIMESTAMP_TYPE: i16 = 0x08;
const ATTR_TRANSACTIONAL: i16 = 0x10;
const ATTR_CONTROL: i16 = 0x20;
const ATTR_DELETE_HORIZON: i16 = 0x40;

/// Why a byte range is not a valid v2 record batch.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BatchError {
    /// Fewer bytes are present than the header or the batch length field requires.
    #[error("batch truncated: needs {needed} bytes, {available} available")]
    Truncated {
        /// Bytes the batch needs.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// The batch length field is smaller than a header or negative.
    #[error("invalid batch length {length}")]
    InvalidLength {
        /// The length field as read.
        length: i32,
    },
    /// The batch length exceeds the caller's limit.
    #[error("batch of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Total batch size in bytes.
        size: usize,
        /// The limit in force.
        limit: usize,
    },
    /// The magic byte is not 2.
    #[error("unsupported magic {magic}: only record batch v2 is accepted")]
    UnsupportedMagic {
        /// The magic byte as read.
        magic: i8,
    },
    /// The stored CRC does not match the CRC-32C of the covered bytes.
    #[error("crc mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch {
        /// CRC stored in the header.
        stored: u32,
        /// CRC computed over the batch.
        computed: u32,
    },
    /// The record count cannot be right for the batch's offset range.
    #[error("record count {count} inconsistent with last offset delta {last_offset_delta}")]
    InconsistentCount {
        /// The record count field.
        count: i32,
        /// The last offset delta field.
        last_offset_delta: i32,
    },
    /// The compression codec id is not one Kafka defines.
    #[error("unknown compression codec {codec}")]
    UnknownCompression {
        /// The codec bits of the attributes.
        codec: i16,
    },
}

/// Compression codec of a batch, from attributes bits 0..3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// Records are stored as they are.
    None,
    /// gzip.
    Gzip,
    /// Snappy (raw, or xerial-framed from Java clients).
    Snappy,
    /// LZ4 frame format.
    Lz4,
    /// Zstandard.
    Zstd,
}

impl Compression {
    /// The codec id stored in the attributes.
    pub fn id(self) -> i16 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    fn from_id(id: i16) -> Option<Self> {
        Some(match id {
            0 => Compression::None,
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            4 => Compression::Zstd,
            _ => return None,
        })
    }
}

/// Which clock a batch's timestamps come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimestampType {
    /// Set by the producer.
    CreateTime,
    /// Set by the broker when appended.
    LogAppendTime,
}

/// The facts of one batch a broker needs, read from its fixed header without touching records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record.
    pub base_offset: i64,
    /// Bytes after the length field; the whole batch is `12 + batch_length` bytes.
    pub batch_length: i32,
    /// Leader epoch stamped by the partition leader.
    pub partition_leader_epoch: i32,
    /// CRC-32C as stored.
    pub crc: u32,
    /// Raw attributes.
    pub attributes: i16,
    /// Last record's offset minus the base offset.
    pub last_offset_delta: i32,
    /// Timestamp of the first record.
    pub base_timestamp: i64,
    /// Largest timestamp in the batch.
    pub max_timestamp: i64,
    /// Producer id, or -1.
    pub producer_id: i64,
    /// Producer epoch, or -1.
    pub producer_epoch: i16,
    /// Sequence of the first record, or -1.
    pub base_sequence: i32,
    /// Number of records in the batch.
    pub record_count: i32,
}

impl BatchHeader {
    /// Parses and checks the framing of the batch at the start of `buf`.
    ///
    /// Checks that the length field is sane and that `buf` holds the whole batch, that the magic is
    /// 2, that the compression codec is known, and that the record count fits the offset range
    /// (`0 <= count <= last_offset_delta + 1`; compaction may leave fewer records than offsets).
    /// Does not check the CRC: see [`BatchHeader::verify_crc`].
    pub fn parse(buf: &[u8]) -> Result<Self, BatchError> {
        let header = Self::parse_header(buf)?;
        let total = header.total_size();
        if buf.len() < total {
            return Err(BatchError::Truncated {
                needed: total,
                available: buf.len(),
            });
        }
        Ok(header)
    }

    /// Parses the fixed header from `buf`, which may hold only the first 61 bytes of the batch.
    ///
    /// Everything [`BatchHeader::parse`] checks except that the whole batch is present.
    pub fn parse_header(buf: &[u8]) -> Result<Self, BatchError> {
        let Some(h) = buf.get(..BATCH_HEADER_SIZE) else {
            return Err(BatchError::Truncated {
                needed: BATCH_HEADER_SIZE,
                available: buf.len(),
            });
        };
        let batch_length = be_i32(h, 8);
        if batch_length < (BATCH_HEADER_SIZE - LOG_OVERHEAD) as i32 {
            return Err(BatchError::InvalidLength {
                length: batch_length,
            });
        }
        let magic = h[16] as i8;
        if magic != MAGIC_V2 {
            return Err(BatchError::UnsupportedMagic { magic });
        }
        let header = BatchHeader {
            base_offset: be_i64(h, 0),
            batch_length,
            partition_leader_epoch: be_i32(h, 12),
            crc: be_i32(h, 17) as u32,
            attributes: be_i16(h, 21),
            last_offset_delta: be_i32(h, 23),
            base_timestamp: be_i64(h, 27),
            max_timestamp: be_i64(h, 35),
            producer_id: be_i64(h, 43),
            producer_epoch: be_i16(h, 51),
            base_sequence: be_i32(h, 53),
            record_count: be_i32(h, 57),
        };
        let codec = header.attributes & ATTR_COMPRESSION_MASK;
        if Compression::from_id(codec).is_none() {
            return Err(BatchError::UnknownCompression { codec });
        }
        let count_fits = header.last_offset_delta >= 0
            && header.record_count >= 0
            && i64::from(header.record_count) <= i64::from(header.last_offset_delta) + 1;
        if !count_fits {
            return Err(BatchError::InconsistentCount {
                count: header.record_count,
                last_offset_delta: header.last_offset_delta,
            });
        }
        Ok(header)
    }

    /// Checks the stored CRC against the CRC-32C of `batch[21..total_size]`.
    ///
    /// `batch` must start with this header's batch (as from [`BatchHeader::parse`]).
    pub fn verify_crc(&self, batch: &[u8]) -> Result<(), BatchError> {
        let total = self.total_size();
        let Some(covered) = batch.get(CRC_START..total) else {
            return Err(BatchError::Truncated {
                needed: total,
                available: batch.len(),
            });
        };
        let computed = crc32c::crc32c(covered);
        if computed != self.crc {
            return Err(BatchError::CrcMismatch {
                stored: self.crc,
                computed,
            });
        }
        Ok(())
    }

    /// Parses, checks framing and CRC, and requires what a producer's batch must satisfy: at least
    /// one record and exactly one offset per record (`count == last_offset_delta + 1`).
    pub fn validate_produced(batch: &[u8]) -> Result<Self, BatchError> {
        let header = Self::parse(batch)?;
        if header.record_count == 0 || header.record_count != header.last_offset_delta + 1 {
            return Err(BatchError::InconsistentCount {
                count: header.record_count,
                last_offset_delta: header.last_offset_delta,
            });
        }
        header.verify_crc(batch)?;
        Ok(header)
    }

    /// Size of the whole batch in bytes.
    pub fn total_size(&self) -> usize {
        LOG_OVERHEAD + self.batch_length as usize
    }

    /// Offset of the last record (or offset slot) in the batch.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    /// Offset right after this batch.
    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }

    /// Compression codec of the records.
    pub fn compression(&self) -> Compression {
        // BATCH-1: parse rejected unknown codecs.
        Compression::from_id(self.attributes & ATTR_COMPRESSION_MASK).unwrap_or(Compression::None)
    }

    /// Which clock the timestamps come from.
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & ATTR_TIMESTAMP_TYPE != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    /// Whether the batch belongs to a transaction.
    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }

    /// Whether the batch is a control batch (transaction marker).
    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }

    /// Whether the base timestamp holds a delete horizon (compacted tombstones).
    pub fn has_delete_horizon(&self) -> bool {
        self.attributes & ATTR_DELETE_HORIZON != 0
    }

    /// Whether the batch carries a producer id (idempotent or transactional producer).
    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }

    /// Sequence number of the last record, wrapping as Kafka does at `i32::MAX`.
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence < 0 {
            return -1;
        }
        let last = i64::from(self.base_sequence) + i64::from(self.last_offset_delta);
        (last % (i64::from(i32::MAX) + 1)) as i32
    }
}

/// Iterates over consecutive batches in a buffer, checking framing (and optionally the CRC).
///
/// Yields each batch's header and byte range. Stops at the first error, which it yields once; the
/// error's position is [`BatchIter::position`]. A buffer that ends exactly at a batch boundary ends
/// the iteration cleanly.
#[derive(Debug)]
pub struct BatchIter<'a> {
    buf: &'a [u8],
    position: usize,
    verify_crc: bool,
    failed: bool,
}

impl<'a> BatchIter<'a> {
    /// Iterates over `buf`, checking framing only.
    pub fn new(buf: &'a [u8]) -> Self {
        BatchIter {
            buf,
            position: 0,
            verify_crc: false,
            failed: false,
        }
    }

    /// Iterates over `buf`, checking framing and each batch's CRC.
    pub fn verified(buf: &'a [u8]) -> Self {
        BatchIter {
            verify_crc: true,
            ..Self::new(buf)
        }
    }

    /// Byte position of the next batch (or of the error, after one was yielded).
    pub fn position(&self) -> usize {
        self.position
    }
}

impl Iterator for BatchIter<'_> {
    type Item = Result<(BatchHeader, Range<usize>), BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let rest = self.buf.get(self.position..)?;
        if rest.is_empty() {
            return None;
        }
        let result = BatchHeader::parse(rest).and_then(|header| {
            if self.verify_crc {
                header.verify_crc(rest)?;
            }
            Ok(header)
        });
        match result {
            Ok(header) => {
                let start = self.position;
                self.position += header.total_size();
                Some(Ok((header, start..self.position)))
            }
            Err(err) => {
                self.failed = true;
                Some(Err(err))
            }
        }
    }
}

/// Rewrites the base offset of the batch at the start of `batch`. Not CRC-covered (`BATCH-2`).
///
/// # Panics
/// If `batch` is shorter than a batch header; callers pass validated batches.
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    batch[0..8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Rewrites the partition leader epoch of the batch at the start of `batch`. Not CRC-covered.
///
/// # Panics
/// If `batch` is shorter than a batch header; callers pass validated batches.
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    batch[12..16].copy_from_slice(&epoch.to_be_bytes());
}

/// Marks the batch as LogAppendTime with `timestamp` as its max timestamp and recomputes the CRC,
/// as a broker does for topics with `message.timestamp.type=LogAppendTime`.
///
/// # Panics
/// If `batch` is not a whole, framing-valid batch; callers pass validated batches.
pub fn set_log_append_time(batch: &mut [u8], timestamp: i64) {
    let attributes = be_i16(batch, 21) | ATTR_TIMESTAMP_TYPE;
    batch[21..23].copy_from_slice(&attributes.to_be_bytes());
    batch[35..43].copy_from_slice(&timestamp.to_be_bytes());
    let crc = crc32c::crc32c(&batch[CRC_START..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}
