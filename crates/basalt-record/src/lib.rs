//! Kafka RecordBatch v2 handled as bytes.
//!
//! This crate owns the one on-the-wire and on-disk unit Basalt stores: the record batch of Kafka's
//! message format v2. The broker receives batches from producers, the storage engine appends them to
//! segment files unchanged, and fetches return the same bytes. Nothing on the produce or fetch path
//! decodes individual records; it reads the fixed 61-byte batch header, checks lengths and the CRC,
//! and rewrites the few header fields a broker owns (base offset, partition leader epoch, and the
//! LogAppendTime max timestamp).
//!
//! # Layout of a batch (all integers big-endian)
//!
//! | bytes  | field                  | covered by CRC |
//! |--------|------------------------|----------------|
//! | 0..8   | base offset            | no             |
//! | 8..12  | batch length (after this field) | no    |
//! | 12..16 | partition leader epoch | no             |
//! | 16     | magic (= 2)            | no             |
//! | 17..21 | CRC-32C                | no             |
//! | 21..23 | attributes             | yes            |
//! | 23..27 | last offset delta      | yes            |
//! | 27..35 | base timestamp         | yes            |
//! | 35..43 | max timestamp          | yes            |
//! | 43..51 | producer id            | yes            |
//! | 51..53 | producer epoch         | yes            |
//! | 53..57 | base sequence          | yes            |
//! | 57..61 | record count           | yes            |
//! | 61..   | records (maybe compressed) | yes        |
//!
//! Transaction markers (control batches) are built and recognised in `control`, which reads the
//! one record of a control batch and nothing else (`CTRL-1..2`).
//!
//! # Invariants
//! - `BATCH-1`: a [`BatchHeader`] is only ever produced from bytes whose length fields agree with the
//!   slice it was read from; callers can slice `[0, header.total_size())` without checks.
//! - `BATCH-2`: rewriting the base offset or the leader epoch never touches CRC-covered bytes, so it
//!   never requires a CRC recomputation; rewriting the max timestamp always recomputes the CRC.

mod batch;
mod control;
mod records;

pub use batch::{
    BATCH_HEADER_SIZE, BatchError, BatchHeader, BatchIter, Compression, MAGIC_V2, TimestampType,
    set_base_offset, set_log_append_time, set_partition_leader_epoch,
};
pub use control::{ControlType, EndTxnMarker, control_batch, parse_control, parse_end_txn_marker};
pub use records::{BatchBuilder, Header, Record, RecordError, decode_records};
