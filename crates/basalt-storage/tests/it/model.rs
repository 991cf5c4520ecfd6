//! Model-based test: random sequences of append, read, roll, retention, DeleteRecords, time
//! lookups and clean or unclean reopen, checked after every step against a plain in-memory list
//! of batches.

use basalt_storage::{FsyncPolicy, LogConfig, Storage, StorageError};
use proptest::prelude::*;

use crate::{at_offset, batch, open};

#[derive(Debug, Clone)]
enum Op {
    Append { batches: Vec<(usize, usize, i64)> },
    Read { at: f64, max_bytes: usize },
    FindTimestamp { ts: i64 },
    Roll,
    Retention { now: i64 },
    DeleteRecords { at: f64 },
    Reopen { clean: bool },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => proptest::collection::vec((1usize..5, 1usize..900, 0i64..10_000), 1..4)
            .prop_map(|batches| Op::Append { batches }),
        4 => (0.0f64..1.0, 1usize..8000).prop_map(|(at, max_bytes)| Op::Read { at, max_bytes }),
        2 => (0i64..11_000).prop_map(|ts| Op::FindTimestamp { ts }),
        1 => Just(Op::Roll),
        1 => (0i64..20_000).prop_map(|now| Op::Retention { now }),
        1 => (0.0f64..1.0).prop_map(|at| Op::DeleteRecords { at }),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
    ]
}

/// A batch as the model keeps it.
#[derive(Debug, Clone)]
struct Stored {
    base: i64,
    next: i64,
    max_ts: i64,
    bytes: Vec<u8>,
}

struct Model {
    batches: Vec<Stored>,
    start: i64,
    end: i64,
}

impl Model {
    fn live(&self) -> impl Iterator<Item = &Stored> {
        self.batches.iter().filter(|b| b.next > self.start)
    }
}

const RETENTION_MS: i64 = 5_000;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes_max: 8 * 1024,
        index_interval_bytes: 700,
        retention_ms: RETENTION_MS,
        fsync: FsyncPolicy::Os,
        ..LogConfig::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn the_log_behaves_like_a_list_of_batches(ops in proptest::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let mut storage: Option<Storage> = Some(open(dir.path()));
        let (mut log, _) = storage.as_ref().unwrap().open_log("m-0", config()).unwrap();
        let mut model = Model { batches: Vec::new(), start: 0, end: 0 };
        let mut seed = 0u64;

        for op in ops {
            match op {
                Op::Append { batches } => {
                    let mut input = Vec::new();
                    let mut expected = Vec::new();
                    for (records, value, ts) in batches {
                        seed += 1;
                        let b = batch(seed, records, value, ts);
                        input.extend_from_slice(&b);
                        expected.push((b, ts));
                    }
                    let appended = log.append(&input, 0).unwrap();
                    prop_assert_eq!(appended.base_offset, model.end);
                    for ((b, ts), h) in expected.iter().zip(&appended.batches) {
                        model.batches.push(Stored {
                            base: h.base_offset,
                            next: h.next_offset(),
                            max_ts: *ts,
                            bytes: at_offset(b, h.base_offset),
                        });
                        model.end = h.next_offset();
                    }
                }
                Op::Read { at, max_bytes } => {
                    let span = (model.end - model.start) as f64;
                    let offset = model.start + (span * at) as i64;
                    let r = log.read(offset, max_bytes, i64::MAX).unwrap();
                    if offset == model.end {
                        prop_assert!(r.records.is_empty());
                        continue;
                    }
                    // A prefix of the batches from the one containing `offset`, at least one,
                    // within the budget unless the first batch alone exceeds it.
                    let mut expected = model.live().skip_while(|b| b.next <= offset);
                    let mut got = &r.records[..];
                    let mut count = 0;
                    let mut next = offset;
                    while !got.is_empty() {
                        let want = expected.next().expect("more bytes than the model has");
                        prop_assert!(got.len() >= want.bytes.len());
                        prop_assert_eq!(&got[..want.bytes.len()], &want.bytes[..]);
                        got = &got[want.bytes.len()..];
                        count += 1;
                        next = want.next;
                    }
                    prop_assert_eq!(r.next_offset, next);
                    prop_assert!(count >= 1);
                    prop_assert!(count == 1 || r.records.len() <= max_bytes);
                }
                Op::FindTimestamp { ts } => {
                    let want = model.live().find(|b| b.max_ts >= ts).map(|b| b.base);
                    let got = log.find_by_timestamp(ts).unwrap().map(|h| h.base_offset);
                    prop_assert_eq!(got, want);
                }
                Op::Roll => log.roll().unwrap(),
                Op::Retention { now } => {
                    let out = log.enforce_retention(now).unwrap();
                    let new_start = log.log_start_offset();
                    prop_assert_eq!(out.log_start_offset, new_start);
                    prop_assert!(new_start >= model.start);
                    if new_start > model.start {
                        // Whole segments went: the new start is a batch boundary, and every batch
                        // that was live and is now gone was past retention.
                        prop_assert!(
                            new_start == model.end || model.batches.iter().any(|b| b.base == new_start),
                            "start {} is not a batch boundary", new_start
                        );
                        for b in model.batches.iter().filter(|b| b.next > model.start && b.next <= new_start) {
                            prop_assert!(b.max_ts < now - RETENTION_MS);
                        }
                    }
                    model.start = new_start;
                }
                Op::DeleteRecords { at } => {
                    let span = (model.end - model.start) as f64;
                    let offset = model.start + (span * at) as i64;
                    prop_assert_eq!(log.delete_records(offset).unwrap(), offset);
                    model.start = offset;
                    if offset > 0 {
                        let below = log.read(offset - 1, 10, i64::MAX);
                        prop_assert!(
                            matches!(below, Err(StorageError::OffsetOutOfRange { .. })),
                            "{:?}",
                            below
                        );
                    }
                }
                Op::Reopen { clean } => {
                    drop(log);
                    let s = storage.take().unwrap();
                    if clean {
                        s.close().unwrap();
                    } else {
                        drop(s);
                    }
                    storage = Some(open(dir.path()));
                    let (reopened, report) =
                        storage.as_ref().unwrap().open_log("m-0", config()).unwrap();
                    prop_assert_eq!(report.clean, clean);
                    prop_assert_eq!(report.truncated_bytes, 0);
                    prop_assert!(report.damage.is_none());
                    log = reopened;
                }
            }
            prop_assert_eq!(log.log_end_offset(), model.end);
            prop_assert_eq!(log.log_start_offset(), model.start);
        }

        // Finally every live batch reads back exactly.
        let mut offset = model.start;
        for b in model.live() {
            let r = log.read(offset, 1, i64::MAX).unwrap();
            prop_assert_eq!(&r.records[..], &b.bytes[..]);
            offset = r.next_offset;
        }
        prop_assert_eq!(offset, model.end);
    }
}
