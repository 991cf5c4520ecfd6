//! Errors of the storage engine: facts about files, positions and offsets, never Kafka codes.
//!
//! The broker maps these to Kafka error codes in one place; this crate only says what happened.

use std::io;
use std::path::PathBuf;

use basalt_record::BatchError;
use thiserror::Error;

/// Result alias for storage operations.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Where a log is damaged: reads at or past `offset` fail until an operator repairs the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// First offset that can no longer be served.
    pub offset: i64,
    /// Segment file holding the damage.
    pub path: PathBuf,
    /// Byte position of the damaged batch within that file.
    pub position: u64,
    /// What is wrong there.
    pub reason: String,
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} at byte {} (offset {}): {}",
            self.path.display(),
            self.position,
            self.offset,
            self.reason
        )
    }
}

/// What went wrong in the storage engine.
#[derive(Debug, Error)]
pub enum StorageError {
    /// An I/O call failed on a path.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A batch handed to `append` is invalid; nothing was written.
    #[error("invalid batch at byte {position} of the input: {source}")]
    InvalidBatch {
        /// Position of the bad batch within the appended bytes.
        position: usize,
        /// What is wrong with it.
        #[source]
        source: BatchError,
    },
    /// `append` was given no batch.
    #[error("nothing to append")]
    EmptyAppend,
    /// A single append is larger than a segment may hold.
    #[error("append of {size} bytes exceeds the segment limit of {limit} bytes")]
    AppendTooLarge {
        /// Bytes appended.
        size: usize,
        /// The limit.
        limit: u64,
    },
    /// The requested offset is outside `[log_start_offset, log_end_offset]`.
    #[error("offset {offset} out of range [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        /// The requested offset.
        offset: i64,
        /// First offset still held.
        log_start_offset: i64,
        /// Next offset to be written.
        log_end_offset: i64,
    },
    /// The log is damaged at or before the requested offset.
    #[error("log damaged: {0}")]
    Damaged(Damage),
    /// An earlier fsync failed; the log accepts no more writes (its page-cache state is unknown).
    #[error("log {name} is poisoned by an earlier fsync failure")]
    Poisoned {
        /// The log's name.
        name: String,
    },
    /// The log was closed or deleted.
    #[error("log {name} is closed")]
    Closed {
        /// The log's name.
        name: String,
    },
    /// Another process holds the data directory.
    #[error("data directory {path} is in use by another process")]
    Locked {
        /// The data directory.
        path: PathBuf,
    },
    /// A log name that cannot be a directory name.
    #[error("invalid log name {name:?}")]
    InvalidName {
        /// The name given.
        name: String,
    },
    /// An aborted-transaction entry whose offsets do not fit the log; nothing was written.
    #[error(
        "aborted transaction of producer {producer_id} at offsets {first_offset}..={last_offset} \
         does not fit the log [{log_start_offset}, {log_end_offset})"
    )]
    InvalidAbortedTxn {
        /// The entry's producer id.
        producer_id: i64,
        /// The entry's first offset.
        first_offset: i64,
        /// The entry's last offset (its ABORT marker).
        last_offset: i64,
        /// First offset the log holds.
        log_start_offset: i64,
        /// Next offset the log will assign.
        log_end_offset: i64,
    },
    /// A negative leader epoch to stamp or record, or a replica batch whose epoch is below the
    /// latest one the log recorded (or below an earlier batch's of the same append).
    #[error("invalid leader epoch {epoch}")]
    InvalidLeaderEpoch {
        /// The epoch given.
        epoch: i32,
    },
    /// A replica append whose batches do not continue the log: a batch's base offset is not the
    /// log end offset (first batch) or the previous batch's next offset; nothing was written.
    #[error("batch base offset {found} does not continue the log at offset {expected}")]
    NotContiguous {
        /// The offset the batch had to start at.
        expected: i64,
        /// Its base offset.
        found: i64,
    },
    /// A value that should be a number was not one (a checkpoint file).
    #[error("{path}: {reason}")]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl StorageError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        StorageError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
