//! Integration tests of the storage engine on a real disk in temporary directories.
//!
//! One test binary with modules, as everywhere in the workspace. Helpers shared by the modules
//! live here.

#![allow(clippy::unwrap_used)]

mod basics;
mod crash;
mod epochs;
mod group_commit;
mod kill;
mod model;
mod replica;
mod scale;
mod txn;

use basalt_record::BatchBuilder;
use basalt_storage::{FsyncPolicy, LogConfig, Storage, StorageOptions};
use bytes::Bytes;

/// A producer batch of `records` records, each with a value of `value_bytes` bytes derived from
/// `seed`, all stamped `timestamp`.
pub fn batch(seed: u64, records: usize, value_bytes: usize, timestamp: i64) -> Bytes {
    let mut b = BatchBuilder::new(0);
    for r in 0..records {
        let value: Vec<u8> = (0..value_bytes)
            .map(|i| (seed as usize).wrapping_mul(31).wrapping_add(r * 7 + i) as u8)
            .collect();
        let key = format!("k{seed}-{r}");
        b.push(timestamp, Some(key.as_bytes()), Some(&value), &[]);
    }
    b.build()
}

/// Returns `batch` as stored at `base_offset`: only the base offset differs.
pub fn at_offset(batch: &[u8], base_offset: i64) -> Vec<u8> {
    let mut v = batch.to_vec();
    basalt_record::set_base_offset(&mut v, base_offset);
    v
}

/// Returns `batch` as a leader stores it at `base_offset` in `leader_epoch`.
pub fn at_offset_epoch(batch: &[u8], base_offset: i64, leader_epoch: i32) -> Vec<u8> {
    let mut v = at_offset(batch, base_offset);
    basalt_record::set_partition_leader_epoch(&mut v, leader_epoch);
    v
}

/// A log config with small segments so tests roll often.
pub fn small_config(fsync: FsyncPolicy) -> LogConfig {
    LogConfig {
        segment_bytes_max: 16 * 1024,
        index_interval_bytes: 512,
        fsync,
        ..LogConfig::default()
    }
}

/// Opens `dir` as a data directory with default options.
pub fn open(dir: &std::path::Path) -> Storage {
    Storage::open(dir, StorageOptions::default()).expect("open storage")
}
