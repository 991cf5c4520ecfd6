//! Basalt's storage engine: durable, segmented, append-only partition logs on local disk.
//!
//! A [`Storage`] is one data directory holding one directory per [`Log`] (the broker names them
//! `<topic>-<partition>`). A log is a list of segments, each a `.log` file of Kafka RecordBatch v2
//! bytes exactly as producers sent them, with a sparse `.index` (offset → position) and
//! `.timeindex` (timestamp → offset), and, once a transaction was aborted in it, a `.txnindex` of
//! aborted transactions (Kafka's format, see `txnindex`). This crate knows nothing of the network or of Kafka requests;
//! it takes batches, assigns offsets, makes them durable and hands back batch-aligned bytes.
//!
//! # What it promises
//! - Appends validate every batch (framing, magic, CRC-32C, record count) before writing anything.
//!   A follower's replica appends keep the leader's offsets and epochs and must continue the log.
//! - A follower can cut its log's end at a batch boundary (`truncate_to`) or start it again empty
//!   at any offset (`reset_to`); a crash during either leaves a log that opens cleanly.
//! - Reads return whole batches starting with the one containing the requested offset, never a
//!   partial batch, and never wait for a writer.
//! - Durability follows the log's [`FsyncPolicy`], whose exact promises are documented there.
//! - After an unclean stop, opening a log keeps every complete batch with a valid CRC and cuts a
//!   torn tail off the active segment; damage anywhere else is reported with its file and byte
//!   position, and the log serves nothing past it. Nothing panics on bad bytes from disk.
//! - At most [`StorageOptions::max_open_files`] segment files are held open, however many logs.
//!
//! # Layout on disk
//! ```text
//! <data>/.lock                         held while open
//! <data>/.clean-shutdown               present only after a clean close
//! <data>/<log>/00000000000000000000.log
//! <data>/<log>/00000000000000000000.index
//! <data>/<log>/00000000000000000000.timeindex
//! <data>/<log>/00000000000000000000.txnindex   aborted transactions, once there is one
//! <data>/<log>/log-start-offset        written by DeleteRecords (and reset_to)
//! <data>/<log>/leader-epoch-checkpoint leader epochs and their first offsets
//! <data>/<log>/high-watermark          advisory, written by store_high_watermark
//! ```
//! Other files in a log directory belong to the layer above (the broker keeps producer
//! snapshots there) and are left alone, except `*.tmp` files, which opening the log removes.

mod config;
pub mod epoch_cache;
mod error;
mod fdcache;
mod flusher;
mod index;
mod log;
mod segment;
mod storage;
mod txnindex;

pub use config::{FsyncPolicy, LogConfig, SEGMENT_BYTES_LIMIT};
pub use error::{Damage, Result, StorageError};
pub use flusher::SyncTicket;
pub use log::{
    Appended, FileRead, LEADER_EPOCH_FILE, Log, ReadResult, RecoveryReport, RetentionOutcome,
};
pub use storage::{Storage, StorageOptions};
pub use txnindex::AbortedTxn;
