//! The data directory: its lock, the clean-shutdown marker, the logs in it, and the shared parts
//! (file descriptor cache and sync workers).
//!
//! # Contract
//! - Only one process uses a data directory at a time (`.lock`, held with an OS file lock).
//! - `.clean-shutdown` exists only between a successful [`Storage::close`] and the next
//!   [`Storage::open`], which removes it (and syncs the directory) before any log is opened; so a
//!   crash at any point after opening leads to a recovery scan on the next open.

use std::collections::HashMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::config::LogConfig;
use crate::error::{Result, StorageError};
use crate::fdcache::FdCache;
use crate::flusher::{FlushMsg, Flusher};
use crate::log::{Log, RecoveryReport, sync_dir};

const LOCK_FILE: &str = ".lock";
const CLEAN_MARKER: &str = ".clean-shutdown";
const DELETING_PREFIX: &str = ".deleting-";

/// Settings of the whole data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageOptions {
    /// Most segment files held open at once (the fd cache's capacity).
    pub max_open_files: usize,
}

impl Default for StorageOptions {
    fn default() -> Self {
        StorageOptions {
            max_open_files: 1024,
        }
    }
}

/// Parts every log of a data directory shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) fds: FdCache,
    flusher: Flusher,
}

impl Shared {
    /// Hands a request to the sync workers; once they are stopped, the ticket inside reports
    /// `Closed`.
    pub(crate) fn flush(&self, msg: FlushMsg) {
        self.flusher.submit(msg);
    }
}

/// An open data directory holding one directory per log.
#[derive(Debug)]
pub struct Storage {
    dir: PathBuf,
    /// Held while open; released by `close` so the directory can be opened again.
    lock: Mutex<Option<File>>,
    was_clean: bool,
    shared: Arc<Shared>,
    logs: Mutex<HashMap<String, Arc<Log>>>,
    closed: std::sync::atomic::AtomicBool,
}

impl Storage {
    /// Opens (creating if needed) the data directory `dir` and locks it.
    pub fn open(dir: impl AsRef<Path>, options: StorageOptions) -> Result<Storage> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).map_err(|e| StorageError::io("create dir", &dir, e))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| StorageError::io("open", &lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(StorageError::Locked { path: dir }),
            Err(fs::TryLockError::Error(e)) => return Err(StorageError::io("lock", lock_path, e)),
        }
        let marker = dir.join(CLEAN_MARKER);
        let was_clean = marker.exists();
        if was_clean {
            fs::remove_file(&marker).map_err(|e| StorageError::io("remove", &marker, e))?;
        }
        let entries = fs::read_dir(&dir).map_err(|e| StorageError::io("read dir", &dir, e))?;
        for entry in entries.flatten() {
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with(DELETING_PREFIX)
            {
                let path = entry.path();
                fs::remove_dir_all(&path).map_err(|e| StorageError::io("remove dir", &path, e))?;
            }
        }
        sync_dir(&dir)?;
        let flusher =
            Flusher::start().map_err(|e| StorageError::io("spawn sync threads", &dir, e))?;
        tracing::info!(dir = %dir.display(), clean = was_clean, "opened data directory");
        Ok(Storage {
            dir,
            lock: Mutex::new(Some(lock)),
            was_clean,
            shared: Arc::new(Shared {
                fds: FdCache::new(options.max_open_files),
                flusher,
            }),
            logs: Mutex::new(HashMap::new()),
            closed: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the previous user of the directory closed it cleanly (logs open without a scan).
    pub fn was_clean_shutdown(&self) -> bool {
        self.was_clean
    }

    /// Names of the logs present on disk, sorted.
    pub fn log_names(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        let entries =
            fs::read_dir(&self.dir).map_err(|e| StorageError::io("read dir", &self.dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| StorageError::io("read dir", &self.dir, e))?;
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            let name = entry.file_name().to_string_lossy().into_owned();
            if is_dir && !name.starts_with('.') {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    /// Opens the log `name`, creating it if it does not exist, and recovers it if the directory
    /// was not shut down cleanly. Opening an already open log returns it with an empty report.
    pub fn open_log(&self, name: &str, config: LogConfig) -> Result<(Arc<Log>, RecoveryReport)> {
        validate_name(name)?;
        let mut logs = self.logs.lock();
        if let Some(log) = logs.get(name) {
            let report = RecoveryReport {
                name: name.to_owned(),
                clean: true,
                log_start_offset: log.log_start_offset(),
                log_end_offset: log.log_end_offset(),
                ..RecoveryReport::default()
            };
            return Ok((Arc::clone(log), report));
        }
        let (log, report) = Log::open(
            name,
            self.dir.join(name),
            config,
            Arc::clone(&self.shared),
            self.was_clean,
        )?;
        logs.insert(name.to_owned(), Arc::clone(&log));
        Ok((log, report))
    }

    /// The open log `name`, if any.
    pub fn log(&self, name: &str) -> Option<Arc<Log>> {
        self.logs.lock().get(name).cloned()
    }

    /// Closes and deletes the log `name` and all its files.
    pub fn delete_log(&self, name: &str) -> Result<()> {
        validate_name(name)?;
        let log = self.logs.lock().remove(name);
        if let Some(log) = log {
            // Its data is going away: no final sync. Tickets still pending fail or complete.
            if let Err(err) = log.close_inner(false) {
                tracing::debug!(log = name, error = %err, "close before delete failed");
            }
        }
        let path = self.dir.join(name);
        if !path.exists() {
            return Ok(());
        }
        let doomed = self.dir.join(format!("{DELETING_PREFIX}{name}"));
        fs::rename(&path, &doomed).map_err(|e| StorageError::io("rename", &path, e))?;
        sync_dir(&self.dir)?;
        fs::remove_dir_all(&doomed).map_err(|e| StorageError::io("remove dir", &doomed, e))?;
        sync_dir(&self.dir)
    }

    /// Segment files currently held open by the fd cache.
    pub fn open_files(&self) -> usize {
        self.shared.fds.len()
    }

    /// Closes every log, stops the sync workers (answering every pending ticket), syncs the
    /// filesystem, writes the clean-shutdown marker and releases the lock. If any log fails to
    /// close, the marker is not written and the next open recovers. Only the first call does
    /// anything.
    pub fn close(&self) -> Result<()> {
        if self.closed.swap(true, std::sync::atomic::Ordering::AcqRel) {
            return Ok(());
        }
        let logs: Vec<Arc<Log>> = self.logs.lock().drain().map(|(_, log)| log).collect();
        let mut first_error = None;
        for log in logs {
            if let Err(err) = log.close_inner(false) {
                tracing::error!(log = log.name(), error = %err, "close failed");
                first_error.get_or_insert(err);
            }
        }
        self.shared.flusher.shutdown();
        if let Some(err) = first_error {
            return Err(err);
        }
        // One filesystem-wide sync instead of several per log: thousands of logs close at once.
        let dir = File::open(&self.dir).map_err(|e| StorageError::io("open dir", &self.dir, e))?;
        rustix::fs::syncfs(&dir).map_err(|e| StorageError::io("syncfs", &self.dir, e.into()))?;
        crate::index::write_atomically(&self.dir.join(CLEAN_MARKER), b"", true)?;
        sync_dir(&self.dir)?;
        self.lock.lock().take();
        tracing::info!(dir = %self.dir.display(), "closed data directory cleanly");
        Ok(())
    }
}

impl Drop for Storage {
    /// Stops the sync workers after they answer every pending ticket; logs are not closed (the
    /// next open recovers).
    fn drop(&mut self) {
        self.shared.flusher.shutdown();
    }
}

/// A log name must be usable as one directory name.
fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && !name.contains(['/', '\\', '\0']);
    if ok {
        Ok(())
    } else {
        Err(StorageError::InvalidName {
            name: name.to_owned(),
        })
    }
}
