//! ShareFetch (key 78), v1: a share group member's fetch from the partitions this node leads
//! (KIP-932).
//!
//! The request first moves the member's share session (epoch 0 opens one, -1 closes it after
//! this request, others must be the session's next epoch; SHARE_SESSION_NOT_FOUND and
//! INVALID_SHARE_SESSION_EPOCH otherwise), then applies the acknowledgements it carries, then
//! acquires records on every partition of the session: at most `max_records` in all, returned
//! as the whole batches holding them with the acquired ranges and their delivery counts. The
//! acknowledgements are durable before the answer (`SHR-5`). A `max_bytes` of 0 acquires
//! nothing. With nothing to acquire the
//! request waits up to `max_wait_ms` for new records, released records or expiring locks.
//!
//! Authorization: READ on the group (top-level GROUP_AUTHORIZATION_FAILED) and READ on each
//! topic (TOPIC_AUTHORIZATION_FAILED on its partitions).

use std::collections::BTreeMap;
use std::time::Duration;

use basalt_protocol::messages::share_fetch_request::ShareFetchRequest;
use basalt_protocol::messages::share_fetch_response::{
    AcquiredRecords, LeaderIdAndEpoch, PartitionData, ShareFetchResponse,
    ShareFetchableTopicResponse,
};
use basalt_protocol::{ErrorCode, Uuid};

use crate::acl::{Operation, ResourceType, Session};
use crate::shares::{Budget, Persist, Refusal, SessionStep, TopicPartition, write_all};
use crate::{Broker, now_ms};

/// Highest version handled.
pub const MAX_VERSION: i16 = 1;

/// Longest a share fetch waits, whatever it asks for.
const MAX_WAIT_MS_CAP: i32 = 30_000;

/// Records one share fetch returns when it does not say (`max_records` ≤ 0).
const DEFAULT_MAX_RECORDS: i64 = 500;

fn top_error(code: ErrorCode, message: String) -> ShareFetchResponse {
    ShareFetchResponse {
        error_code: code.into(),
        error_message: Some(message),
        ..ShareFetchResponse::default()
    }
}

/// A partition's answer so far.
#[derive(Debug, Default)]
struct Answer {
    error: Option<(ErrorCode, String)>,
    ack_error: Option<(ErrorCode, String)>,
    acked: bool,
    leader: Option<(i32, i32)>,
    records: Option<basalt_protocol::Records>,
    acquired: Vec<AcquiredRecords>,
}

/// The acknowledgement batches of one partition: (first, last, types).
pub(super) type Batches = Vec<(i64, i64, Vec<i8>)>;

/// Why a partition cannot be served here, with its leader's id and epoch when it is led
/// elsewhere.
pub(super) type Misplaced = (ErrorCode, String, Option<(i32, i32)>);

/// Each partition's acknowledgement error, if any.
pub(super) type AckResults = BTreeMap<TopicPartition, Option<Refusal>>;

/// The group and member a ShareFetch or ShareAcknowledge (`what`) names, once both are given
/// and the principal may read the group.
pub(super) fn share_member(
    broker: &Broker,
    session: &Session,
    (group, member): (&Option<String>, &Option<String>),
    what: &str,
) -> Result<(String, String), Refusal> {
    let group = group.clone().unwrap_or_default();
    let member = member.clone().unwrap_or_default();
    if group.is_empty() || member.is_empty() {
        return Err((
            ErrorCode::InvalidRequest,
            format!("a {what} needs a group id and a member id"),
        ));
    }
    if !broker.authorize(session, Operation::Read, ResourceType::Group, &group) {
        return Err((
            ErrorCode::GroupAuthorizationFailed,
            format!("not authorized to read group {group}"),
        ));
    }
    Ok((group, member))
}

/// Why a partition cannot be served here, if it cannot: unknown, unreadable, or led elsewhere
/// (with the leader's id and epoch).
pub(super) fn check_partition(
    broker: &Broker,
    session: &Session,
    topic: Uuid,
    index: i32,
) -> Result<std::sync::Arc<crate::Topic>, Misplaced> {
    let Some(t) = broker.topic_by_id(&topic) else {
        return Err((
            ErrorCode::UnknownTopicId,
            "unknown topic id".to_owned(),
            None,
        ));
    };
    if !broker.authorize(session, Operation::Read, ResourceType::Topic, &t.meta.name) {
        return Err((
            ErrorCode::TopicAuthorizationFailed,
            format!("not authorized to read topic {}", t.meta.name),
            None,
        ));
    }
    let Some(partition) = usize::try_from(index)
        .ok()
        .and_then(|i| t.partitions.get(i))
    else {
        return Err((
            ErrorCode::UnknownTopicOrPartition,
            format!("{} has no partition {index}", t.meta.name),
            None,
        ));
    };
    if !t.is_led_by(index, broker.config().node_id) {
        let leader = usize::try_from(index)
            .ok()
            .and_then(|i| t.leaders.get(i))
            .copied()
            .unwrap_or(-1);
        return Err((
            ErrorCode::NotLeaderOrFollower,
            format!(
                "node {} does not lead {}-{index}",
                broker.config().node_id,
                t.meta.name
            ),
            Some((leader, partition.leader_epoch())),
        ));
    }
    Ok(t)
}

/// Applies every partition's acknowledgements for `member`; each partition's error, and the
/// share partitions to write before answering.
pub(super) fn acknowledge_all(
    broker: &Broker,
    session: &Session,
    group: &str,
    member: &str,
    acks: &BTreeMap<(Uuid, i32), Batches>,
) -> (AckResults, Vec<Persist>) {
    let mut results = BTreeMap::new();
    let mut persists = Vec::new();
    for ((topic, index), batches) in acks {
        let outcome = check_partition(broker, session, *topic, *index)
            .map_err(|(code, message, _)| (code, message))
            .and_then(|t| {
                broker
                    .shares()
                    .acknowledge(broker, group, member, &t, *index, batches)
            });
        match outcome {
            Ok(p) => {
                persists.extend(p);
                results.insert((*topic, *index), None);
            }
            Err(e) => {
                results.insert((*topic, *index), Some(e));
            }
        }
    }
    (results, persists)
}

pub async fn handle(
    broker: &Broker,
    session: &Session,
    req: ShareFetchRequest,
) -> ShareFetchResponse {
    let (group, member) = match share_member(
        broker,
        session,
        (&req.group_id, &req.member_id),
        "share fetch",
    ) {
        Ok(m) => m,
        Err((code, message)) => return top_error(code, message),
    };
    let mut add = Vec::new();
    let mut acks: BTreeMap<(Uuid, i32), Batches> = BTreeMap::new();
    for t in &req.topics {
        for p in &t.partitions {
            add.push((t.topic_id, p.partition_index));
            if !p.acknowledgement_batches.is_empty() {
                acks.entry((t.topic_id, p.partition_index))
                    .or_default()
                    .extend(
                        p.acknowledgement_batches
                            .iter()
                            .map(|b| (b.first_offset, b.last_offset, b.acknowledge_types.clone())),
                    );
            }
        }
    }
    if req.share_session_epoch == 0 && !acks.is_empty() {
        return top_error(
            ErrorCode::InvalidRequest,
            "a request opening a share session cannot acknowledge".into(),
        );
    }
    let forget: Vec<(Uuid, i32)> = req
        .forgotten_topics_data
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (t.topic_id, *p)))
        .collect();
    let shares = broker.shares();
    let (step, partitions) =
        match shares.session_step(&group, &member, req.share_session_epoch, &add, &forget) {
            Ok(s) => s,
            Err((code, message)) => return top_error(code, message),
        };
    let mut answers: BTreeMap<(Uuid, i32), Answer> = BTreeMap::new();
    let (ack_results, persists) = acknowledge_all(broker, session, &group, &member, &acks);
    for (key, error) in ack_results {
        let a = answers.entry(key).or_default();
        a.acked = true;
        a.ack_error = error;
    }
    if let Err((code, e)) = write_all(broker, persists).await {
        tracing::warn!(group, error = %e, "cannot write share state");
        for a in answers
            .values_mut()
            .filter(|a| a.acked && a.ack_error.is_none())
        {
            a.ack_error = Some((code, e.clone()));
        }
    }
    let lock_ms = shares
        .group_config(broker, &group, "share.record.lock.duration.ms")
        .parse::<i32>()
        .unwrap_or(shares.config().record_lock_duration_ms);
    if step == SessionStep::Closing {
        shares.close_session(&group, &member);
        return respond(answers, lock_ms);
    }
    let budget = Budget {
        records: if req.max_records > 0 {
            i64::from(req.max_records)
        } else {
            DEFAULT_MAX_RECORDS
        },
        // 0 asks for no records (acknowledgements only), as in Kafka.
        bytes: usize::try_from(req.max_bytes).unwrap_or(0),
    };
    let deadline = tokio::time::Instant::now()
        + Duration::from_millis(req.max_wait_ms.clamp(0, MAX_WAIT_MS_CAP) as u64);
    let mut visible = broker.watch_visible();
    let mut released = shares.watch_released();
    loop {
        visible.borrow_and_update();
        released.borrow_and_update();
        let mut expired = Vec::new();
        let got = deliver_once(
            broker,
            session,
            (&group, &member),
            &partitions,
            budget,
            &mut answers,
            &mut expired,
        );
        // Records the delivery limit archived: written before they are answered for.
        if let Err((_, e)) = write_all(broker, expired).await {
            tracing::warn!(group, error = %e, "cannot write share state");
        }
        let errors = answers.values().any(|a| a.error.is_some());
        let acked = answers.values().any(|a| a.acked);
        let now = tokio::time::Instant::now();
        if got || errors || acked || now >= deadline {
            return respond(answers, lock_ms);
        }
        // Wake for new records, released records, or the first lock to run out.
        let wake = shares
            .next_lock_deadline(&group, &partitions)
            .map(|at| now + Duration::from_millis((at - now_ms()).max(1) as u64))
            .map_or(deadline, |at| at.min(deadline));
        tokio::select! {
            changed = visible.changed() => if changed.is_err() { return respond(answers, lock_ms) },
            changed = released.changed() => if changed.is_err() { return respond(answers, lock_ms) },
            _ = tokio::time::sleep_until(wake) => {}
        }
    }
}

/// One pass over the session's partitions; whether any record was acquired.
fn deliver_once(
    broker: &Broker,
    session: &Session,
    who: (&str, &str),
    partitions: &[(Uuid, i32)],
    budget: Budget,
    answers: &mut BTreeMap<(Uuid, i32), Answer>,
    expired: &mut Vec<Persist>,
) -> bool {
    let mut records_left = budget.records;
    let mut bytes_left = budget.bytes;
    let mut got = false;
    for &(topic, index) in partitions {
        if records_left <= 0 || bytes_left == 0 {
            break;
        }
        let t = match check_partition(broker, session, topic, index) {
            Ok(t) => t,
            Err((code, message, leader)) => {
                let a = answers.entry((topic, index)).or_default();
                a.error = Some((code, message));
                a.leader = leader;
                continue;
            }
        };
        match broker.shares().deliver(
            broker,
            who,
            &t,
            index,
            Budget {
                records: records_left,
                bytes: bytes_left,
            },
        ) {
            Ok(mut d) if !d.acquired.is_empty() => {
                expired.extend(d.expired.take());
                let n: i64 = d.acquired.iter().map(|a| a.last - a.first + 1).sum();
                records_left -= n;
                let len = d.records.as_ref().map_or(0, |r| r.len());
                bytes_left = bytes_left.saturating_sub(len);
                let a = answers.entry((topic, index)).or_default();
                a.records = d.records;
                a.acquired = d
                    .acquired
                    .into_iter()
                    .map(|r| AcquiredRecords {
                        first_offset: r.first,
                        last_offset: r.last,
                        delivery_count: r.delivery_count,
                        ..AcquiredRecords::default()
                    })
                    .collect();
                got = true;
            }
            Ok(d) => expired.extend(d.expired),
            Err(e) => {
                answers.entry((topic, index)).or_default().error = Some(e);
            }
        }
    }
    got
}

fn respond(answers: BTreeMap<(Uuid, i32), Answer>, lock_ms: i32) -> ShareFetchResponse {
    let mut topics: BTreeMap<Uuid, Vec<PartitionData>> = BTreeMap::new();
    for ((topic, index), a) in answers {
        let (leader_id, leader_epoch) = a.leader.unwrap_or((-1, -1));
        topics.entry(topic).or_default().push(PartitionData {
            partition_index: index,
            error_code: a.error.as_ref().map_or(0, |e| e.0.into()),
            error_message: a.error.map(|e| e.1),
            acknowledge_error_code: a.ack_error.as_ref().map_or(0, |e| e.0.into()),
            acknowledge_error_message: a.ack_error.map(|e| e.1),
            current_leader: LeaderIdAndEpoch {
                leader_id,
                leader_epoch,
                ..LeaderIdAndEpoch::default()
            },
            // Never null: clients read an empty record set.
            records: Some(a.records.unwrap_or_default()),
            acquired_records: a.acquired,
            ..PartitionData::default()
        });
    }
    ShareFetchResponse {
        acquisition_lock_timeout_ms: lock_ms,
        responses: topics
            .into_iter()
            .map(|(topic_id, partitions)| ShareFetchableTopicResponse {
                topic_id,
                partitions,
                ..ShareFetchableTopicResponse::default()
            })
            .collect(),
        ..ShareFetchResponse::default()
    }
}
