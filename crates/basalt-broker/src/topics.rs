//! Topic metadata of a single node: names, stable topic ids, partition counts and config
//! overrides, persisted in `<data>/topics.json`.
//!
//! # Invariants
//! - `TOPIC-1`: a topic id is random, never zero, and never changes while the topic exists; a
//!   topic deleted and created again gets a new id.
//! - `TOPIC-2`: the file is replaced atomically (temporary file, fsync, rename, directory fsync)
//!   before a change is acknowledged, so topics survive any crash once created.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use basalt_protocol::Uuid;
use serde::{Deserialize, Serialize};

/// Kafka's topic-name rules, kept with the metadata model that enforces them in a cluster.
pub use basalt_cluster::metadata::image::{TOPIC_NAME_LENGTH_MAX, validate_topic_name};

/// One topic's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMeta {
    /// The topic name.
    pub name: String,
    /// The topic id as 32 hex digits.
    pub id: String,
    /// Number of partitions.
    pub partitions: i32,
    /// Config overrides.
    #[serde(default)]
    pub configs: BTreeMap<String, String>,
}

impl TopicMeta {
    /// The topic id.
    pub fn uuid(&self) -> Uuid {
        parse_uuid(&self.id).unwrap_or(Uuid::ZERO)
    }

    /// The storage log name of partition `p`.
    pub fn log_name(&self, p: i32) -> String {
        log_name(&self.name, p)
    }
}

/// The storage log name of a topic partition (Kafka's `<topic>-<partition>` directory).
pub fn log_name(topic: &str, partition: i32) -> String {
    format!("{topic}-{partition}")
}

/// A fresh random topic id (`TOPIC-1`).
pub fn new_topic_id() -> Uuid {
    loop {
        let bytes: [u8; 16] = rand::random();
        let id = Uuid::from_bytes(bytes);
        if id != Uuid::ZERO {
            return id;
        }
    }
}

/// Formats a topic id as 32 hex digits.
pub fn format_uuid(id: &Uuid) -> String {
    id.as_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_uuid(s: &str) -> Option<Uuid> {
    if s.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(Uuid::from_bytes(out))
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct TopicsFile {
    topics: Vec<TopicMeta>,
}

/// Loads and stores the topics file.
#[derive(Debug)]
pub struct TopicStore {
    path: PathBuf,
}

impl TopicStore {
    /// The store for data directory `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        TopicStore {
            path: data_dir.join("topics.json"),
        }
    }

    /// Reads all topics; none when the file does not exist yet.
    pub fn load(&self) -> std::io::Result<Vec<TopicMeta>> {
        match fs::read(&self.path) {
            Ok(raw) => {
                let file: TopicsFile = serde_json::from_slice(&raw).map_err(|e| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{}: {e}", self.path.display()),
                    )
                })?;
                Ok(file.topics)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Replaces the file with `topics` (`TOPIC-2`).
    pub fn save(&self, topics: &[TopicMeta]) -> std::io::Result<()> {
        let file = TopicsFile {
            topics: topics.to_vec(),
        };
        let raw = serde_json::to_vec_pretty(&file).map_err(std::io::Error::other)?;
        let tmp = self.path.with_extension("json.tmp");
        let mut f = fs::File::create(&tmp)?;
        f.write_all(&raw)?;
        f.sync_all()?;
        fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_kafka_rules() {
        assert!(validate_topic_name("orders.v1_eu-west").is_ok());
        assert!(validate_topic_name("").is_err());
        assert!(validate_topic_name(".").is_err());
        assert!(validate_topic_name("..").is_err());
        assert!(validate_topic_name("a/b").is_err());
        assert!(validate_topic_name("ünïcode").is_err());
        assert!(validate_topic_name(&"x".repeat(249)).is_ok());
        assert!(validate_topic_name(&"x".repeat(250)).is_err());
    }

    #[test]
    fn ids_round_trip_and_the_store_persists() {
        let id = new_topic_id();
        assert_eq!(parse_uuid(&format_uuid(&id)), Some(id));
        let dir = tempfile::tempdir().unwrap();
        let store = TopicStore::new(dir.path());
        assert!(store.load().unwrap().is_empty());
        let t = TopicMeta {
            name: "t".into(),
            id: format_uuid(&id),
            partitions: 3,
            configs: BTreeMap::from([("retention.ms".into(), "5".into())]),
        };
        store.save(std::slice::from_ref(&t)).unwrap();
        assert_eq!(store.load().unwrap(), vec![t]);
    }
}
