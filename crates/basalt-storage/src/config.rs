//! Per-log settings and the fsync policy, with the exact promise each policy makes.

/// When appended bytes are forced to stable storage.
///
/// # Contract
/// - [`FsyncPolicy::Always`]: an append's [`crate::SyncTicket`] completes only after an
///   `fdatasync` of the segment file that holds it has returned successfully, so the batch survives
///   a process kill and a power loss (on hardware that honours flushes). Appends to a segment file that arrive
///   while that file's sync runs share its next sync (group commit); different files sync in
///   parallel on a fixed pool of sync threads. A failed `fdatasync` poisons the log: the tickets of
///   the affected appends fail and no further append is accepted.
/// - [`FsyncPolicy::Interval`]: the ticket completes as soon as the bytes are written to the page
///   cache; a background thread syncs each dirty log at least every `interval_ms`. A process kill
///   loses nothing; a power loss may lose up to about `interval_ms` of acknowledged appends.
/// - [`FsyncPolicy::Os`]: the ticket completes once the bytes are in the page cache; the kernel
///   writes them back when it chooses. A process kill loses nothing; a power loss may lose any
///   append since the last segment roll or clean close.
///
/// Under every policy a segment is synced before a newer one is created (roll), and every log is
/// synced at clean close; the directory is synced after files are created, renamed or deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Sync before acknowledging, with group commit.
    Always,
    /// Sync in the background at this period.
    Interval {
        /// Longest time a written append stays unsynced.
        interval_ms: u64,
    },
    /// Leave it to the OS page cache.
    Os,
}

impl FsyncPolicy {
    /// Parses `always`, `os` or `interval:<ms>` (also `interval=<ms>`).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "always" => Some(FsyncPolicy::Always),
            "os" => Some(FsyncPolicy::Os),
            _ => {
                let ms = s
                    .strip_prefix("interval:")
                    .or_else(|| s.strip_prefix("interval="))?;
                let interval_ms = ms.parse().ok().filter(|ms| *ms > 0)?;
                Some(FsyncPolicy::Interval { interval_ms })
            }
        }
    }
}

impl std::fmt::Display for FsyncPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FsyncPolicy::Always => f.write_str("always"),
            FsyncPolicy::Interval { interval_ms } => write!(f, "interval:{interval_ms}"),
            FsyncPolicy::Os => f.write_str("os"),
        }
    }
}

/// Settings of one log; the broker derives them from topic configs (Kafka's names in comments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// `segment.bytes`: roll to a new segment before the active one would pass this size.
    pub segment_bytes_max: u64,
    /// `segment.ms`: roll when the active segment's first append is older than this.
    pub segment_age_ms_max: i64,
    /// `index.interval.bytes`: bytes between two sparse index entries.
    pub index_interval_bytes: u64,
    /// `retention.ms`: delete closed segments whose newest timestamp is older; -1 keeps forever.
    pub retention_ms: i64,
    /// `retention.bytes`: delete the oldest closed segments while the log is larger; -1 is no limit.
    pub retention_bytes: i64,
    /// When appends reach stable storage.
    pub fsync: FsyncPolicy,
}

/// Largest segment size: positions in the offset index are 32-bit, as in Kafka.
pub const SEGMENT_BYTES_LIMIT: u64 = i32::MAX as u64;

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes_max: 1 << 30,
            segment_age_ms_max: 7 * 24 * 60 * 60 * 1000,
            index_interval_bytes: 4096,
            retention_ms: 7 * 24 * 60 * 60 * 1000,
            retention_bytes: -1,
            fsync: FsyncPolicy::Always,
        }
    }
}

impl LogConfig {
    /// The segment size limit clamped to what the index format can address.
    pub(crate) fn segment_limit(&self) -> u64 {
        self.segment_bytes_max.clamp(1, SEGMENT_BYTES_LIMIT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse_and_print_back() {
        for s in ["always", "os", "interval:250"] {
            assert_eq!(FsyncPolicy::parse(s).unwrap().to_string(), s);
        }
        assert_eq!(
            FsyncPolicy::parse("interval=5"),
            Some(FsyncPolicy::Interval { interval_ms: 5 })
        );
        assert_eq!(FsyncPolicy::parse("interval:0"), None);
        assert_eq!(FsyncPolicy::parse("sometimes"), None);
    }
}
