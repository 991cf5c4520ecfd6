//! A capped cache of open segment files, so thousands of partitions do not hold thousands of fds.
//!
//! Segments never own a file descriptor. Every read, write and sync asks the cache for the segment's
//! file; a miss opens it (read-write, never creating it) and may close the least recently used one.
//! Handles are `Arc<File>`: an evicted file stays open until its last in-flight user drops it, so
//! the number of open segment files is at most `capacity` plus the operations in flight.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

/// Identifies one segment file for the cache's lifetime.
pub(crate) type FileId = u64;

#[derive(Debug)]
pub(crate) struct FdCache {
    capacity: usize,
    next_id: AtomicU64,
    inner: Mutex<Lru>,
}

#[derive(Debug, Default)]
struct Lru {
    tick: u64,
    files: HashMap<FileId, (Arc<File>, u64)>,
    by_use: BTreeMap<u64, FileId>,
}

impl FdCache {
    pub(crate) fn new(capacity: usize) -> Self {
        FdCache {
            capacity: capacity.max(1),
            next_id: AtomicU64::new(1),
            inner: Mutex::new(Lru::default()),
        }
    }

    /// A fresh id for a segment file.
    pub(crate) fn allocate_id(&self) -> FileId {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The open file for `id`, opening `path` on a miss.
    pub(crate) fn get(&self, id: FileId, path: &Path) -> io::Result<Arc<File>> {
        if let Some(file) = self.lookup(id) {
            return Ok(file);
        }
        // Open outside the lock: a slow open must not stall other partitions.
        let file = Arc::new(OpenOptions::new().read(true).write(true).open(path)?);
        self.insert(id, Arc::clone(&file));
        Ok(file)
    }

    /// Adds a file that was just created.
    pub(crate) fn insert(&self, id: FileId, file: Arc<File>) {
        let mut lru = self.inner.lock();
        lru.tick += 1;
        let tick = lru.tick;
        if let Some((_, old_tick)) = lru.files.insert(id, (file, tick)) {
            lru.by_use.remove(&old_tick);
        }
        lru.by_use.insert(tick, id);
        while lru.files.len() > self.capacity {
            let Some((_, victim)) = lru.by_use.pop_first() else {
                break;
            };
            lru.files.remove(&victim);
        }
    }

    /// Forgets `id` (its file was deleted or the log closed).
    pub(crate) fn evict(&self, id: FileId) {
        let mut lru = self.inner.lock();
        if let Some((_, tick)) = lru.files.remove(&id) {
            lru.by_use.remove(&tick);
        }
    }

    /// Number of files the cache holds open.
    pub(crate) fn len(&self) -> usize {
        self.inner.lock().files.len()
    }

    fn lookup(&self, id: FileId) -> Option<Arc<File>> {
        let mut lru = self.inner.lock();
        lru.tick += 1;
        let tick = lru.tick;
        let (file, old_tick) = {
            let entry = lru.files.get_mut(&id)?;
            let old = entry.1;
            entry.1 = tick;
            (Arc::clone(&entry.0), old)
        };
        lru.by_use.remove(&old_tick);
        lru.by_use.insert(tick, id);
        Some(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_at_most_capacity_and_evicts_least_recently_used() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FdCache::new(2);
        let paths: Vec<_> = (0..3)
            .map(|i| {
                let p = dir.path().join(format!("{i}.log"));
                File::create(&p).unwrap();
                p
            })
            .collect();
        cache.get(1, &paths[0]).unwrap();
        cache.get(2, &paths[1]).unwrap();
        cache.get(1, &paths[0]).unwrap(); // 1 is now the most recent
        cache.get(3, &paths[2]).unwrap(); // evicts 2
        assert_eq!(cache.len(), 2);
        let lru = cache.inner.lock();
        assert!(lru.files.contains_key(&1));
        assert!(!lru.files.contains_key(&2));
        assert!(lru.files.contains_key(&3));
    }

    #[test]
    fn missing_files_are_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FdCache::new(2);
        let missing = dir.path().join("gone.log");
        assert!(cache.get(1, &missing).is_err());
        assert!(!missing.exists());
    }
}
