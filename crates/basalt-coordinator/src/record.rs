//! The records that persist groups and offsets in the internal `__consumer_offsets` topic, and
//! their replay.
//!
//! Each record's key names what it is about (`{"type":"offset","group":…,"topic":…,
//! "partition":…}`, `{"type":"group","group":…}` or, for offsets staged by an open
//! transaction, `{"type":"txn_offsets","group":…,"producer_id":…}`), its value is the new state as JSON, and a
//! null value (a tombstone) removes it. Records of one group go to one partition of the topic, so
//! replaying the partitions in offset order rebuilds every group (`OFS-1`). The format is
//! Basalt's own, readable with any consumer (`basalt consume __consumer_offsets`).

use basalt_protocol::messages::consumer_protocol_subscription::ConsumerProtocolSubscription;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::TxnOffsets;
use crate::classic::{ClassicGroup, Member};
use crate::consumer::{self, ConsumerGroup};
use crate::offsets::CommittedOffset;

/// A record to append to `__consumer_offsets`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The group it belongs to (chooses the partition).
    pub group: String,
    /// The key.
    pub key: Vec<u8>,
    /// The value; `None` is a tombstone.
    pub value: Option<Vec<u8>>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Key {
    Offset {
        group: String,
        topic: String,
        partition: i32,
    },
    Group {
        group: String,
    },
    TxnOffsets {
        group: String,
        producer_id: i64,
    },
}

/// A staged transactional offset set as persisted: `{"producer_epoch":0,
/// "offsets":[["topic",0,{offset...}]]}`.
#[derive(Debug, Serialize, Deserialize)]
struct TxnOffsetsValue {
    producer_epoch: i16,
    offsets: Vec<(String, i32, CommittedOffset)>,
}

/// A classic group as persisted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClassicImage {
    /// Protocol type.
    pub protocol_type: Option<String>,
    /// Chosen protocol.
    pub protocol_name: Option<String>,
    /// Generation.
    pub generation_id: i32,
    /// Leader member id.
    pub leader: Option<String>,
    /// Members of the generation.
    pub members: Vec<ClassicMemberImage>,
}

/// A classic group member as persisted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClassicMemberImage {
    /// Member id.
    pub member_id: String,
    /// `group.instance.id`.
    pub group_instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Session timeout.
    pub session_timeout_ms: i32,
    /// Rebalance timeout.
    pub rebalance_timeout_ms: i32,
    /// Metadata for the chosen protocol, hex.
    pub metadata: String,
    /// Assignment, hex.
    pub assignment: String,
}

/// A group's persisted membership.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum GroupValue {
    /// A classic group.
    Classic(ClassicImage),
    /// A consumer group.
    Consumer(consumer::Image),
}

/// A replayed record.
#[derive(Debug)]
pub enum Decoded {
    /// A commit, or its removal.
    Offset {
        /// Group id.
        group: String,
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// The commit; `None` removes it.
        value: Option<CommittedOffset>,
    },
    /// A group's metadata, or its removal.
    Group {
        /// Group id.
        group: String,
        /// The metadata; `None` removes the group.
        value: Option<GroupValue>,
    },
    /// The offsets a producer's open transaction stages for a group, or their removal (the
    /// transaction ended).
    TxnOffsets {
        /// Group id.
        group: String,
        /// The producer.
        producer_id: i64,
        /// The staged set; `None` removes it.
        value: Option<TxnOffsets>,
    },
}

fn to_json<T: Serialize>(v: &T) -> Vec<u8> {
    // Serialising these plain structs cannot fail.
    serde_json::to_vec(v).unwrap_or_default()
}

impl Record {
    /// A commit.
    pub fn offset(group: &str, topic: &str, partition: i32, value: &CommittedOffset) -> Self {
        Record {
            group: group.to_owned(),
            key: to_json(&Key::Offset {
                group: group.to_owned(),
                topic: topic.to_owned(),
                partition,
            }),
            value: Some(to_json(value)),
        }
    }

    /// The removal of a commit.
    pub fn offset_tombstone(group: &str, topic: &str, partition: i32) -> Self {
        Record {
            group: group.to_owned(),
            key: to_json(&Key::Offset {
                group: group.to_owned(),
                topic: topic.to_owned(),
                partition,
            }),
            value: None,
        }
    }

    /// The offsets producer `producer_id` stages for `group`.
    pub fn txn_offsets(group: &str, producer_id: i64, staged: &TxnOffsets) -> Self {
        let value = TxnOffsetsValue {
            producer_epoch: staged.producer_epoch,
            offsets: staged
                .offsets
                .iter()
                .map(|((t, p), o)| (t.clone(), *p, o.clone()))
                .collect(),
        };
        Record {
            group: group.to_owned(),
            key: to_json(&Key::TxnOffsets {
                group: group.to_owned(),
                producer_id,
            }),
            value: Some(to_json(&value)),
        }
    }

    /// The removal of the offsets producer `producer_id` staged for `group`.
    pub fn txn_offsets_tombstone(group: &str, producer_id: i64) -> Self {
        Record {
            group: group.to_owned(),
            key: to_json(&Key::TxnOffsets {
                group: group.to_owned(),
                producer_id,
            }),
            value: None,
        }
    }

    /// The removal of a group.
    pub fn group_tombstone(group: &str) -> Self {
        Record {
            group: group.to_owned(),
            key: to_json(&Key::Group {
                group: group.to_owned(),
            }),
            value: None,
        }
    }

    fn group_value(group: &str, value: &GroupValue) -> Self {
        Record {
            group: group.to_owned(),
            key: to_json(&Key::Group {
                group: group.to_owned(),
            }),
            value: Some(to_json(value)),
        }
    }

    /// A classic group's metadata.
    pub fn classic_group(group: &str, g: &ClassicGroup) -> Self {
        let protocol = g.protocol_name().unwrap_or_default().to_owned();
        let image = ClassicImage {
            protocol_type: g.protocol_type().map(str::to_owned),
            protocol_name: g.protocol_name().map(str::to_owned),
            generation_id: g.generation_id(),
            leader: g.leader().map(str::to_owned),
            members: g
                .members()
                .values()
                .map(|m| ClassicMemberImage {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    session_timeout_ms: m.session_timeout_ms,
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    metadata: hex(&m.metadata(&protocol)),
                    assignment: hex(&m.assignment),
                })
                .collect(),
        };
        Record::group_value(group, &GroupValue::Classic(image))
    }

    /// A consumer group's metadata.
    pub fn consumer_group(group: &str, g: &ConsumerGroup) -> Self {
        Record::group_value(group, &GroupValue::Consumer(g.image()))
    }
}

/// Decodes a record read back from `__consumer_offsets`.
pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<Decoded, String> {
    let key: Key = serde_json::from_slice(key).map_err(|e| format!("bad key: {e}"))?;
    Ok(match key {
        Key::Offset {
            group,
            topic,
            partition,
        } => Decoded::Offset {
            group,
            topic,
            partition,
            value: value
                .map(serde_json::from_slice)
                .transpose()
                .map_err(|e| format!("bad offset value: {e}"))?,
        },
        Key::TxnOffsets { group, producer_id } => Decoded::TxnOffsets {
            group,
            producer_id,
            value: value
                .map(serde_json::from_slice::<TxnOffsetsValue>)
                .transpose()
                .map_err(|e| format!("bad transactional offsets value: {e}"))?
                .map(|v| TxnOffsets {
                    producer_epoch: v.producer_epoch,
                    offsets: v.offsets.into_iter().map(|(t, p, o)| ((t, p), o)).collect(),
                }),
        },
        Key::Group { group } => Decoded::Group {
            group,
            value: value
                .map(serde_json::from_slice)
                .transpose()
                .map_err(|e| format!("bad group value: {e}"))?,
        },
    })
}

impl ClassicImage {
    /// The group this image describes, with its members restored at `now_ms`.
    pub fn restore(self, id: &str, now_ms: i64) -> ClassicGroup {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        let members: Vec<Member> = self
            .members
            .into_iter()
            .map(|m| {
                ClassicGroup::restored_member(
                    m.member_id,
                    m.group_instance_id,
                    m.client_id,
                    m.client_host,
                    m.session_timeout_ms,
                    m.rebalance_timeout_ms,
                    vec![(protocol.clone(), unhex(&m.metadata))],
                    unhex(&m.assignment),
                )
            })
            .collect();
        ClassicGroup::restore(
            id,
            now_ms,
            self.protocol_type,
            self.protocol_name,
            self.generation_id,
            self.leader,
            members,
        )
    }
}

/// The topics of a `consumer` protocol subscription (`ConsumerProtocolSubscription`: a version
/// then the message), or `None` if it cannot be read.
pub fn subscription_topics(metadata: &Bytes) -> Option<Vec<String>> {
    let mut buf = metadata.clone();
    if buf.len() < 2 {
        return None;
    }
    let version = i16::from_be_bytes([buf[0], buf[1]]);
    let _ = bytes::Buf::get_i16(&mut buf);
    let version = version.clamp(0, 3);
    ConsumerProtocolSubscription::decode(&mut buf, version)
        .ok()
        .map(|s| s.topics)
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// The bytes of lower-case or upper-case hex; invalid input gives what parsed before it.
pub fn unhex(s: &str) -> Bytes {
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let raw = s.as_bytes();
    let mut out = Vec::with_capacity(raw.len() / 2);
    for pair in raw.chunks_exact(2) {
        match (digit(pair[0]), digit(pair[1])) {
            (Some(h), Some(l)) => out.push(h << 4 | l),
            _ => break,
        }
    }
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        let b = [0u8, 1, 0xab, 0xff];
        assert_eq!(&unhex(&hex(&b))[..], &b);
    }

    #[test]
    fn offset_record_round_trips() {
        let v = CommittedOffset {
            offset: 42,
            leader_epoch: 3,
            metadata: Some("m".into()),
            commit_timestamp: 7,
        };
        let r = Record::offset("g", "t", 1, &v);
        match decode(&r.key, r.value.as_deref()).expect("decodes") {
            Decoded::Offset {
                group,
                topic,
                partition,
                value,
            } => {
                assert_eq!((group.as_str(), topic.as_str(), partition), ("g", "t", 1));
                assert_eq!(value, Some(v));
            }
            _ => panic!("wrong kind"),
        }
        let t = Record::offset_tombstone("g", "t", 1);
        assert!(matches!(
            decode(&t.key, None),
            Ok(Decoded::Offset { value: None, .. })
        ));
        assert!(decode(b"{", None).is_err());
    }

    #[test]
    fn staged_transactional_offsets_round_trip() {
        let mut staged = TxnOffsets {
            producer_epoch: 4,
            ..TxnOffsets::default()
        };
        staged.offsets.insert(
            ("t".into(), 2),
            CommittedOffset {
                offset: 9,
                leader_epoch: -1,
                metadata: None,
                commit_timestamp: 1,
            },
        );
        let r = Record::txn_offsets("g", 77, &staged);
        match decode(&r.key, r.value.as_deref()).expect("decodes") {
            Decoded::TxnOffsets {
                group,
                producer_id,
                value,
            } => {
                assert_eq!((group.as_str(), producer_id), ("g", 77));
                assert_eq!(value, Some(staged));
            }
            _ => panic!("wrong kind"),
        }
        let t = Record::txn_offsets_tombstone("g", 77);
        assert!(matches!(
            decode(&t.key, None),
            Ok(Decoded::TxnOffsets { value: None, .. })
        ));
    }
}
