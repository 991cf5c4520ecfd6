//! Committed offsets of one group.
//!
//! # Invariants
//! - `OFS-1`: the map holds the last commit of each partition in log order: a commit is applied
//!   when its record is appended, so replaying the log rebuilds the same map.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One committed offset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedOffset {
    /// The offset of the next record to read.
    pub offset: i64,
    /// The leader epoch of the last record read, or -1.
    pub leader_epoch: i32,
    /// Client metadata, returned verbatim by OffsetFetch.
    pub metadata: Option<String>,
    /// When it was committed (broker time).
    pub commit_timestamp: i64,
}

/// A group's committed offsets by topic and partition.
#[derive(Debug, Default, Clone)]
pub struct Offsets {
    map: BTreeMap<(String, i32), CommittedOffset>,
}

impl Offsets {
    /// The committed offset of a partition.
    pub fn get(&self, topic: &str, partition: i32) -> Option<&CommittedOffset> {
        self.map.get(&(topic.to_owned(), partition))
    }

    /// Records a commit.
    pub fn commit(&mut self, topic: &str, partition: i32, offset: CommittedOffset) {
        self.map.insert((topic.to_owned(), partition), offset);
    }

    /// Removes a partition's commit; whether there was one.
    pub fn remove(&mut self, topic: &str, partition: i32) -> bool {
        self.map.remove(&(topic.to_owned(), partition)).is_some()
    }

    /// Every commit, ordered by topic and partition.
    pub fn iter(&self) -> impl Iterator<Item = (&str, i32, &CommittedOffset)> {
        self.map.iter().map(|((t, p), o)| (t.as_str(), *p, o))
    }

    /// The topics with commits.
    pub fn topics(&self) -> Vec<String> {
        let mut v: Vec<String> = self.map.keys().map(|(t, _)| t.clone()).collect();
        v.dedup();
        v
    }

    /// Whether there are no commits.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Number of committed partitions.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Removes every commit, returning the partitions that had one.
    pub fn clear(&mut self) -> Vec<(String, i32)> {
        std::mem::take(&mut self.map).into_keys().collect()
    }

    /// Expires commits past retention: for a group that had members and is now empty, every
    /// commit once it has been empty for `retention_ms` (Kafka 2.1+); for a group that only
    /// commits (no members ever), each commit `retention_ms` after it was made. Returns the
    /// expired partitions.
    pub fn expire(
        &mut self,
        now_ms: i64,
        empty_since: Option<i64>,
        retention_ms: i64,
    ) -> Vec<(String, i32)> {
        let expired: Vec<(String, i32)> = self
            .map
            .iter()
            .filter(|(_, o)| {
                let base = empty_since
                    .unwrap_or(o.commit_timestamp)
                    .max(o.commit_timestamp);
                now_ms.saturating_sub(base) >= retention_ms
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in &expired {
            self.map.remove(k);
        }
        expired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ts: i64) -> CommittedOffset {
        CommittedOffset {
            offset: 5,
            leader_epoch: -1,
            metadata: None,
            commit_timestamp: ts,
        }
    }

    #[test]
    fn expiry_of_standalone_commits_is_per_commit() {
        let mut o = Offsets::default();
        o.commit("t", 0, at(0));
        o.commit("t", 1, at(50));
        assert_eq!(o.expire(99, None, 100), Vec::<(String, i32)>::new());
        assert_eq!(o.expire(100, None, 100), vec![("t".to_owned(), 0)]);
        assert_eq!(o.len(), 1);
    }

    #[test]
    fn expiry_of_empty_group_waits_from_emptiness() {
        let mut o = Offsets::default();
        o.commit("t", 0, at(0));
        assert!(o.expire(150, Some(100), 100).is_empty());
        assert_eq!(o.expire(200, Some(100), 100).len(), 1);
    }
}
