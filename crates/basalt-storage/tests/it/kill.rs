//! A child process appends with `fsync = always` on several logs at once and prints each
//! acknowledgement; the parent kills it with SIGKILL mid-stream, reopens the data directory and
//! checks that every acknowledged batch is there, byte for byte.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use basalt_storage::FsyncPolicy;

use crate::{at_offset, batch, open, small_config};

const CHILD_DIR_ENV: &str = "BASALT_STORAGE_KILL_CHILD_DIR";
const WRITERS: usize = 4;

fn writer_batch(writer: usize, n: u64) -> bytes::Bytes {
    batch(
        writer as u64 * 1_000_000 + n,
        1 + (n % 3) as usize,
        300,
        n as i64,
    )
}

/// The child's entry point: runs only when the parent starts this binary with the env var set.
#[test]
#[ignore = "entry point of the child process of kill_9_loses_no_acknowledged_append"]
fn kill_child_writer() {
    let Ok(dir) = std::env::var(CHILD_DIR_ENV) else {
        return;
    };
    let storage = open(std::path::Path::new(&dir));
    std::thread::scope(|scope| {
        for w in 0..WRITERS {
            let (log, _) = storage
                .open_log(&format!("t-{w}"), small_config(FsyncPolicy::Always))
                .unwrap();
            scope.spawn(move || {
                for n in 0.. {
                    let appended = log.append(&writer_batch(w, n), 0).unwrap();
                    appended.durable.wait().unwrap();
                    // One line per acknowledgement, written whole.
                    println!("acked {w} {n} {}", appended.base_offset);
                }
            });
        }
    });
}

#[test]
fn kill_9_loses_no_acknowledged_append() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "kill::kill_child_writer",
            "--ignored",
            "--nocapture",
        ])
        .env(CHILD_DIR_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut acked: Vec<Vec<(u64, i64)>> = vec![Vec::new(); WRITERS];
    let mut total = 0;
    while total < 300 {
        let Some(line) = lines.next() else { break };
        if let Some((w, n, base)) = parse_ack(&line.unwrap()) {
            acked[w].push((n, base));
            total += 1;
        }
    }
    child.kill().unwrap();
    // Acknowledgements printed before the kill are still in the pipe.
    for line in lines {
        if let Some((w, n, base)) = parse_ack(&line.unwrap()) {
            acked[w].push((n, base));
        }
    }
    child.wait().unwrap();
    assert!(
        total >= 300,
        "the child stopped early after {total} acknowledgements"
    );

    let storage = open(dir.path());
    assert!(!storage.was_clean_shutdown());
    for (w, acks) in acked.iter().enumerate() {
        let (log, report) = storage
            .open_log(&format!("t-{w}"), small_config(FsyncPolicy::Always))
            .unwrap();
        assert!(report.damage.is_none());
        for &(n, base) in acks {
            let r = log.read(base, 1, i64::MAX).unwrap();
            assert_eq!(
                &r.records[..],
                &at_offset(&writer_batch(w, n), base)[..],
                "writer {w} batch {n} at {base}"
            );
        }
    }
}

fn parse_ack(line: &str) -> Option<(usize, u64, i64)> {
    let mut parts = line.strip_prefix("acked ")?.split(' ');
    Some((
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
    ))
}
