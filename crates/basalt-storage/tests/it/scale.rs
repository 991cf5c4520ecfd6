//! Ten thousand partitions: opening them is quick and never holds more segment files open than
//! the fd cache allows.

use std::time::Instant;

use basalt_storage::{FsyncPolicy, LogConfig, Storage, StorageOptions};

use crate::batch;

const LOGS: usize = 10_000;
const FD_CAP: usize = 128;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn ten_thousand_partitions_open_quickly_within_the_fd_cap() {
    let dir = tempfile::tempdir().unwrap();
    let options = StorageOptions {
        max_open_files: FD_CAP,
    };
    let config = LogConfig {
        fsync: FsyncPolicy::Os,
        ..LogConfig::default()
    };
    let b = batch(1, 1, 100, 1);
    let baseline = open_fds();
    let baseline_started = Instant::now();
    {
        let storage = Storage::open(dir.path(), options.clone()).unwrap();
        for i in 0..LOGS {
            let (log, _) = storage.open_log(&format!("t-{i}"), config.clone()).unwrap();
            log.append(&b, 0).unwrap();
        }
        println!(
            "created {LOGS} partitions in {:?}",
            baseline_started.elapsed()
        );
        assert!(storage.open_files() <= FD_CAP);
        // Other threads of the test binary may open files too; allow them some room.
        assert!(open_fds() <= baseline + FD_CAP + 16, "fds {}", open_fds());
        let closing = Instant::now();
        storage.close().unwrap();
        println!("closed {LOGS} partitions in {:?}", closing.elapsed());
    }

    let started = Instant::now();
    let storage = Storage::open(dir.path(), options).unwrap();
    let names = storage.log_names().unwrap();
    assert_eq!(names.len(), LOGS);
    let mut logs = Vec::with_capacity(LOGS);
    for name in &names {
        let (log, report) = storage.open_log(name, config.clone()).unwrap();
        assert!(report.clean);
        logs.push(log);
    }
    let opened = started.elapsed();
    println!("opened {LOGS} partitions in {opened:?}");
    assert!(open_fds() <= baseline + FD_CAP + 16, "fds {}", open_fds());

    // Touch every log: the cache evicts as it goes.
    for log in &logs {
        let r = log.read(0, 1 << 20, i64::MAX).unwrap();
        assert_eq!(r.next_offset, 1);
    }
    assert!(storage.open_files() <= FD_CAP);
    assert!(open_fds() <= baseline + FD_CAP + 16, "fds {}", open_fds());
}
