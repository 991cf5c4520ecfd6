//! The disk under a bench: the scratch directory a bench works in, which file system holds it,
//! and the raw bandwidth of that disk with plain file writes, the baselines the storage engine's
//! figures are compared with.
//!
//! Raw cases write one chunk per operation with `write_all` to a new file, optionally followed by
//! `fdatasync` (`File::sync_data`). Each case works in its own subdirectory, removed as soon as the
//! case ends so the next one starts without this one's files in the page cache.
//!
//! `basalt bench disk` runs the two raw cases on their own: sequential write (into the page
//! cache, after an untimed warm-up of the same volume) and write+fdatasync per chunk.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use std::time::Duration;

use clap::Args;
use serde::Serialize;

use super::Result;
use super::load::{self, Budget, Sample};
use super::output::{emit, fmt_latency, fmt_size, table};

/// Options of `basalt bench disk`.
#[derive(Debug, Args)]
pub(crate) struct DiskArgs {
    /// Directory on the disk to measure. The bench works in a new `basalt-bench-<pid>`
    /// directory inside it and removes that afterwards.
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Seconds each case may run: write+fdatasync runs that long, the plain write stops there
    /// if it has not written its volume yet.
    #[arg(long, default_value_t = 3.0, value_parser = parse_seconds)]
    seconds: f64,
    /// Bytes of each write.
    #[arg(long, default_value_t = 1 << 20, value_parser = clap::value_parser!(u64).range(512..=(64 << 20)))]
    chunk_size: u64,
    /// Bytes the plain write writes (after an untimed warm-up of the same volume).
    #[arg(long, default_value_t = 1 << 30, value_parser = clap::value_parser!(u64).range(1..))]
    bytes: u64,
    /// Print the report as one JSON document on stdout instead of a table.
    #[arg(long)]
    json: bool,
}

fn parse_seconds(s: &str) -> std::result::Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 3600.0 => Ok(v),
        _ => Err(format!(
            "{s:?} is not a number of seconds between 0 and 3600"
        )),
    }
}

/// What `bench disk` reports.
#[derive(Debug, Serialize)]
struct DiskReport {
    directory: String,
    filesystem: String,
    chunk_bytes: u64,
    cases: Vec<DiskCase>,
}

/// One raw case.
#[derive(Debug, Serialize)]
struct DiskCase {
    /// `write` or `write+fdatasync`.
    method: &'static str,
    bytes: u64,
    writes: u64,
    seconds: f64,
    /// 10^6 bytes per second.
    mb_per_s: f64,
    writes_per_s: f64,
    latency_p50_us: f64,
    latency_p99_us: f64,
}

impl DiskCase {
    fn new(method: &'static str, sample: &Sample) -> DiskCase {
        DiskCase {
            method,
            bytes: sample.bytes,
            writes: sample.ops,
            seconds: sample.seconds(),
            mb_per_s: sample.mb_per_s(),
            writes_per_s: sample.ops_per_s(),
            latency_p50_us: sample.latency_us(0.5),
            latency_p99_us: sample.latency_us(0.99),
        }
    }
}

/// Runs `basalt bench disk` and prints its report.
pub(crate) fn run(args: &DiskArgs) -> Result<()> {
    let work = WorkDir::create(&args.dir)?;
    let filesystem = filesystem_of(work.path());
    if filesystem.as_ref().is_some_and(Filesystem::is_memory) {
        tracing::warn!(dir = %work.path().display(), "the directory is in memory: no disk is measured");
    }
    let chunk = vec![0xA5u8; args.chunk_size as usize];
    let time = Duration::from_secs_f64(args.seconds);
    let dir = work.case_dir("write")?;
    warm_page_cache(&dir, &chunk, args.bytes)?;
    let budget = Budget {
        total_bytes: Some(args.bytes),
        time,
    };
    let written = buffered_write(&dir, &chunk, budget);
    remove_case_dir(&dir)?;
    let written = written?;
    let dir = work.case_dir("fdatasync")?;
    let budget = Budget {
        total_bytes: None,
        time,
    };
    let synced = synced_write(&dir, &chunk, 1, budget);
    remove_case_dir(&dir)?;
    let synced = synced?;
    let report = DiskReport {
        directory: work.path().display().to_string(),
        filesystem: filesystem.map_or_else(
            || "unknown".to_owned(),
            |fs| format!("{} on {}", fs.kind, fs.source),
        ),
        chunk_bytes: args.chunk_size,
        cases: vec![
            DiskCase::new("write", &written),
            DiskCase::new("write+fdatasync", &synced),
        ],
    };
    drop(work);
    emit(args.json, &report, render)
}

fn render(report: &DiskReport) -> String {
    let mut t = table(&["case", "chunk", "MB/s", "writes/s", "p50", "p99"], 1);
    for case in &report.cases {
        t.add_row(vec![
            format!("raw {}", case.method),
            fmt_size(report.chunk_bytes as usize),
            format!("{:.1}", case.mb_per_s),
            format!("{:.0}", case.writes_per_s),
            fmt_latency(case.latency_p50_us),
            fmt_latency(case.latency_p99_us),
        ]);
    }
    format!(
        "Raw disk bandwidth in {} ({}), one thread, one new file per case\n{t}\n\
         MB = 10^6 bytes; p50/p99: latency of one write (with its fdatasync)\n",
        report.directory, report.filesystem
    )
}

/// A new directory for one bench run, removed with everything in it when dropped.
#[derive(Debug)]
pub(crate) struct WorkDir {
    path: PathBuf,
}

impl WorkDir {
    /// Creates `parent/basalt-bench-<pid>`; fails if it already exists.
    pub(crate) fn create(parent: &Path) -> Result<WorkDir> {
        fs::create_dir_all(parent)
            .map_err(|e| format!("create directory {}: {e}", parent.display()))?;
        let parent = parent
            .canonicalize()
            .map_err(|e| format!("resolve {}: {e}", parent.display()))?;
        let path = parent.join(format!("basalt-bench-{}", std::process::id()));
        fs::create_dir(&path).map_err(|e| format!("create directory {}: {e}", path.display()))?;
        Ok(WorkDir { path })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// A new empty subdirectory for one case.
    pub(crate) fn case_dir(&self, name: &str) -> Result<PathBuf> {
        let path = self.path.join(name);
        fs::create_dir(&path).map_err(|e| format!("create directory {}: {e}", path.display()))?;
        Ok(path)
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if let Err(err) = fs::remove_dir_all(&self.path) {
            tracing::warn!(dir = %self.path.display(), error = %err, "could not remove the bench directory");
        }
    }
}

/// Removes a case's directory and everything in it (dirty pages of deleted files are dropped,
/// not written back).
pub(crate) fn remove_case_dir(path: &Path) -> Result<()> {
    fs::remove_dir_all(path).map_err(|e| format!("remove {}: {e}", path.display()).into())
}

/// The mounted file system that holds a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Filesystem {
    /// File system type, such as `ext4` or `tmpfs`.
    pub(crate) kind: String,
    /// What is mounted, such as `/dev/vda`.
    pub(crate) source: String,
    /// Where it is mounted.
    pub(crate) mount_point: PathBuf,
}

impl Filesystem {
    /// Whether the file system keeps its files in memory, so no disk is measured.
    pub(crate) fn is_memory(&self) -> bool {
        matches!(self.kind.as_str(), "tmpfs" | "ramfs")
    }
}

/// The file system holding `path` (which must exist), from `/proc/self/mountinfo`; `None` where
/// that is not available.
pub(crate) fn filesystem_of(path: &Path) -> Option<Filesystem> {
    let path = path.canonicalize().ok()?;
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").ok()?;
    mountinfo
        .lines()
        .filter_map(parse_mountinfo_line)
        .filter(|fs| path.starts_with(&fs.mount_point))
        .max_by_key(|fs| fs.mount_point.components().count())
}

/// One line of `/proc/self/mountinfo`: `id parent dev root mount-point options [tags] - type
/// source super-options`.
fn parse_mountinfo_line(line: &str) -> Option<Filesystem> {
    let (before, after) = line.split_once(" - ")?;
    let mount_point = before.split(' ').nth(4)?;
    let mut after = after.split(' ');
    let kind = after.next()?;
    let source = after.next()?;
    Some(Filesystem {
        kind: kind.to_owned(),
        source: unescape_octal(source),
        mount_point: PathBuf::from(unescape_octal(mount_point)),
    })
}

/// Undoes the kernel's `\040`-style escaping of spaces, tabs, newlines and backslashes.
fn unescape_octal(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let digits = bytes.get(i + 1..i + 4);
        let code = digits
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)))
            .and_then(|d| u8::from_str_radix(std::str::from_utf8(d).ok()?, 8).ok());
        match code {
            Some(byte) => {
                out.push(byte);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Writes `chunk` repeatedly to one new file, without syncing, until the budget is used up.
pub(crate) fn buffered_write(case_dir: &Path, chunk: &[u8], budget: Budget) -> Result<Sample> {
    let writers = vec![writer(case_dir, 0, chunk, false)?];
    load::run(writers, chunk.len(), budget)
}

/// `threads` threads, each writing `chunk` and then `fdatasync` to its own new file, repeatedly,
/// until the budget is used up.
pub(crate) fn synced_write(
    case_dir: &Path,
    chunk: &[u8],
    threads: usize,
    budget: Budget,
) -> Result<Sample> {
    let writers = (0..threads)
        .map(|i| writer(case_dir, i, chunk, true))
        .collect::<Result<Vec<_>>>()?;
    load::run(writers, chunk.len(), budget)
}

/// Untimed: writes `bytes` into a file and deletes it, so the memory the page cache is about to
/// use has been touched once. On a virtual machine the first touch of guest memory can cost far
/// more than the copy itself, which would penalise whichever case happened to run first.
pub(crate) fn warm_page_cache(case_dir: &Path, chunk: &[u8], bytes: u64) -> Result<()> {
    let path = case_dir.join("warm-up.data");
    let mut file = create(&path)?;
    let mut written = 0u64;
    while written < bytes {
        file.write_all(chunk)
            .map_err(|e| format!("write {}: {e}", path.display()))?;
        written += chunk.len() as u64;
    }
    drop(file);
    fs::remove_file(&path).map_err(|e| format!("remove {}: {e}", path.display()).into())
}

fn writer<'a>(
    case_dir: &Path,
    index: usize,
    chunk: &'a [u8],
    sync: bool,
) -> Result<impl FnMut() -> Result<()> + Send + 'a> {
    let path = case_dir.join(format!("raw-{index}.data"));
    let mut file = create(&path)?;
    Ok(move || {
        file.write_all(chunk)
            .map_err(|e| format!("write {}: {e}", path.display()))?;
        if sync {
            file.sync_data()
                .map_err(|e| format!("fdatasync {}: {e}", path.display()))?;
        }
        Ok(())
    })
}

fn create(path: &Path) -> Result<File> {
    File::options()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| format!("create {}: {e}", path.display()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_lines_parse_with_optional_fields_and_escapes() {
        let line = "29 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,discard";
        let fs = parse_mountinfo_line(line).unwrap();
        assert_eq!(fs.kind, "ext4");
        assert_eq!(fs.source, "/dev/vda");
        assert_eq!(fs.mount_point, PathBuf::from("/"));
        let line = "40 29 0:35 / /mnt/my\\040disk rw - tmpfs tmpfs rw";
        let fs = parse_mountinfo_line(line).unwrap();
        assert_eq!(fs.mount_point, PathBuf::from("/mnt/my disk"));
        assert!(fs.is_memory());
        assert_eq!(parse_mountinfo_line("garbage"), None);
    }

    #[test]
    fn the_work_dir_is_removed_when_dropped() {
        let parent = tempfile::tempdir().unwrap();
        let work = WorkDir::create(parent.path()).unwrap();
        let case = work.case_dir("case").unwrap();
        fs::write(case.join("f"), b"x").unwrap();
        let path = work.path().to_path_buf();
        assert!(
            WorkDir::create(parent.path()).is_err(),
            "the same name twice"
        );
        drop(work);
        assert!(!path.exists());
    }
}
