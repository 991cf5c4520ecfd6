//! The sync workers under load: many writers on many `always` logs, and tickets outstanding when
//! the data directory closes or drops. Waits are bounded; nothing asserts timing.

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use basalt_storage::{FsyncPolicy, Log, StorageError, SyncTicket};

use crate::{batch, open, small_config};

/// Long enough for any sync on a loaded machine; only a hang reaches it.
const HANG: Duration = Duration::from_secs(120);

/// Waits for every ticket on another thread, failing the test if that takes longer than [`HANG`].
fn wait_all(tickets: Vec<SyncTicket>) -> Vec<Result<(), StorageError>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let results: Vec<_> = tickets.into_iter().map(SyncTicket::wait).collect();
        let _ = tx.send(results);
    });
    rx.recv_timeout(HANG).expect("tickets did not complete")
}

/// Threads of this process, and how many of them have a name starting with `prefix`.
fn threads(prefix: &str) -> (usize, usize) {
    let names: Vec<String> = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .collect();
    let named = names.iter().filter(|n| n.starts_with(prefix)).count();
    (names.len(), named)
}

/// Waits (bounded) until `f` holds.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + HANG;
    while !f() {
        assert!(std::time::Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn many_writers_on_many_always_logs_all_become_durable() {
    const LOGS: usize = 12;
    const THREADS: usize = 8;
    const APPENDS: usize = 60;
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path());
    // Small segments: requests for a segment that was just rolled mix with the new one's.
    let logs: Vec<Arc<Log>> = (0..LOGS)
        .map(|i| {
            let (log, _) = storage
                .open_log(&format!("t-{i}"), small_config(FsyncPolicy::Always))
                .unwrap();
            log
        })
        .collect();
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let logs = logs.clone();
            std::thread::spawn(move || {
                let mut held = Vec::new();
                for n in 0..APPENDS {
                    // Several threads share each log, so requests for one file merge.
                    let log = &logs[(t + n) % LOGS];
                    let appended = log
                        .append(&batch((t * APPENDS + n) as u64, 2, 300, n as i64), 0)
                        .unwrap();
                    assert!(!appended.durable.is_immediate());
                    if n % 3 == 0 {
                        appended.durable.wait().unwrap();
                    } else {
                        // Keep some tickets open so several are pending per file at once.
                        held.push(appended.durable);
                    }
                }
                held
            })
        })
        .collect();
    let mut tickets = Vec::new();
    for thread in threads {
        tickets.extend(thread.join().unwrap());
    }
    for result in wait_all(tickets) {
        result.unwrap();
    }
    let mut total = 0;
    for log in &logs {
        assert_eq!(
            log.durable_end_offset(),
            log.log_end_offset(),
            "{}",
            log.name()
        );
        total += log.log_end_offset();
    }
    assert_eq!(total, (THREADS * APPENDS * 2) as i64);
    drop(logs);
    storage.close().unwrap();
}

#[test]
fn outstanding_tickets_complete_or_fail_when_the_storage_closes_or_drops() {
    for close in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let storage = open(dir.path());
        let logs: Vec<Arc<Log>> = (0..6)
            .map(|i| {
                let (log, _) = storage
                    .open_log(&format!("t-{i}"), small_config(FsyncPolicy::Always))
                    .unwrap();
                log
            })
            .collect();
        let mut tickets = Vec::new();
        for n in 0..200u64 {
            let log = &logs[n as usize % logs.len()];
            tickets.push(log.append(&batch(n, 1, 200, 0), 0).unwrap().durable);
        }
        if close {
            storage.close().unwrap();
        }
        drop(storage);
        // The logs outlive the storage: an append now (possible only after a drop) gets a
        // ticket that fails at once instead of waiting for workers that are gone.
        let late = if close {
            assert!(matches!(
                logs[0].append(&batch(999, 1, 10, 0), 0),
                Err(StorageError::Closed { .. })
            ));
            None
        } else {
            Some(logs[0].append(&batch(999, 1, 10, 0), 0).unwrap().durable)
        };
        for result in wait_all(tickets) {
            match result {
                Ok(()) | Err(StorageError::Closed { .. }) => {}
                Err(other) => panic!("close={close}: unexpected {other}"),
            }
        }
        if let Some(late) = late {
            assert!(matches!(
                wait_all(vec![late]).pop().unwrap(),
                Err(StorageError::Closed { .. })
            ));
        }
    }
}

#[test]
fn sync_threads_live_as_long_as_the_storage() {
    // Counting threads by name needs a process of its own: nextest's, not `cargo test`'s
    // shared one where other tests open storages at the same time.
    if std::env::var("NEXTEST_EXECUTION_MODE").as_deref() != Ok("process-per-test") {
        return;
    }
    let (before, _) = threads("basalt-sync");
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path());
    let (with_storage, _) = threads("basalt-sync");
    let started = with_storage - before;
    assert!(started >= 2, "{started} threads");
    // A new thread names itself once it runs.
    eventually("every new thread is a named sync thread", || {
        threads("basalt-sync").1 == started
    });
    let (log, _) = storage
        .open_log("t-0", small_config(FsyncPolicy::Always))
        .unwrap();
    for n in 0..50 {
        log.append(&batch(n, 1, 100, 0), 0)
            .unwrap()
            .durable
            .wait()
            .unwrap();
    }
    // No thread per sync: the same threads served every append.
    assert_eq!(threads("basalt-sync"), (with_storage, started));
    drop(log);
    drop(storage);
    // A joined thread may linger in /proc for a moment after `join` returns.
    eventually("the sync threads end with the storage", || {
        threads("basalt-sync") == (before, 0)
    });
}
