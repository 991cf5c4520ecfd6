//! `basalt group`: list, describe, reset the offsets of, and delete consumer groups, with the
//! behaviour of Kafka's `kafka-consumer-groups.sh`.
//!
//! - `list` asks every broker in the metadata with ListGroups (each broker lists the groups it
//!   coordinates) and merges the answers.
//! - `describe` finds the group's coordinator (FindCoordinator), describes the group there
//!   (DescribeGroups, or ConsumerGroupDescribe for groups of the KIP-848 consumer protocol, or
//!   ShareGroupDescribe for share groups),
//!   decodes each member's `ConsumerProtocolAssignment`, reads the committed offsets (OffsetFetch,
//!   all topics) and the log end offsets (ListOffsets on each partition's leader) and prints the
//!   lag per partition and in total.
//! - `reset-offsets` refuses while the group has active members, computes a plan (pure:
//!   [`plan`]) from the committed offsets and the log start and end offsets, prints it and,
//!   unless `--dry-run`, commits it with OffsetCommit as an admin (generation -1, no member id).
//! - `delete` sends DeleteGroups to each group's coordinator.
//!
//! Requests to a coordinator are repeated for a short while when it answers NOT_COORDINATOR,
//! COORDINATOR_NOT_AVAILABLE or COORDINATOR_LOAD_IN_PROGRESS ([`with_coordinator`]); other
//! error codes become messages naming the group. Nothing read from the network can panic: member
//! metadata and assignments are decoded with the bounded codec, and a bad one is reported and
//! skipped.

use std::collections::{BTreeMap, BTreeSet};

use basalt_protocol::messages::consumer_group_describe_request::ConsumerGroupDescribeRequest;
use basalt_protocol::messages::consumer_protocol_assignment::ConsumerProtocolAssignment;
use basalt_protocol::messages::consumer_protocol_subscription::ConsumerProtocolSubscription;
use basalt_protocol::messages::delete_groups_request::DeleteGroupsRequest;
use basalt_protocol::messages::describe_groups_request::DescribeGroupsRequest;
use basalt_protocol::messages::list_groups_request::ListGroupsRequest;
use basalt_protocol::messages::offset_commit_request::{
    OffsetCommitRequest, OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use basalt_protocol::messages::offset_fetch_request::{
    OffsetFetchRequest, OffsetFetchRequestGroup,
};
use basalt_protocol::messages::share_group_describe_request::ShareGroupDescribeRequest;
use basalt_protocol::{ApiKey, ErrorCode, RequestBody, ResponseBody, codec};
use bytes::Bytes;
use clap::{Args, Subcommand};
use serde::Serialize;

use super::client::{
    COORDINATOR_WAIT, Client, Connection, CoordinatorKind, EARLIEST, LATEST, Reply, TopicInfo,
    check, coordinator_retriable, unexpected,
};
use super::consume::parse_timestamp;
use super::output::{print_json, render_table, table};
use super::{ConnectArgs, Error};

/// The protocol type of groups whose members speak Kafka's consumer embedded protocol.
const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// Group states Kafka knows (classic and KIP-848 groups), as ListGroups filters them.
const GROUP_STATES: &[&str] = &[
    "PreparingRebalance",
    "CompletingRebalance",
    "Stable",
    "Dead",
    "Empty",
    "Assigning",
    "Reconciling",
    "NotReady",
];

/// Group types Kafka knows, as ListGroups v5 filters them.
const GROUP_TYPES: &[&str] = &["classic", "consumer", "share", "streams"];

/// `basalt group ...`.
#[derive(Debug, Args)]
pub struct GroupArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(subcommand)]
    command: GroupCommand,
}

#[derive(Debug, Subcommand)]
enum GroupCommand {
    /// List the groups of every broker.
    List {
        /// Only groups in these states (repeatable or comma-separated; ListGroups v4+).
        #[arg(long = "state", value_name = "STATE", value_delimiter = ',', num_args = 1..,
              value_parser = parse_state)]
        states: Vec<String>,
        /// Only groups of these types: classic, consumer, share, streams (ListGroups v5+).
        #[arg(long = "type", value_name = "TYPE", value_delimiter = ',', num_args = 1..,
              value_parser = parse_type)]
        types: Vec<String>,
    },
    /// Show a group's state, members, committed offsets and lag.
    Describe {
        /// Group ids.
        #[arg(required = true)]
        groups: Vec<String>,
    },
    /// Move a group's committed offsets (the group must have no active members).
    ResetOffsets(ResetArgs),
    /// Delete groups (they must have no active members).
    Delete {
        /// Group ids.
        #[arg(required = true)]
        groups: Vec<String>,
    },
}

/// `basalt group reset-offsets ...`.
#[derive(Debug, Args)]
struct ResetArgs {
    /// Group id.
    group: String,
    /// A topic, or some of its partitions as `TOPIC:P,P...` (repeatable).
    #[arg(long = "topic", value_name = "TOPIC[:P,P...]", value_parser = parse_topic_spec,
          required_unless_present = "all_topics")]
    topics: Vec<TopicSpec>,
    /// Every partition the group has committed offsets for.
    #[arg(long, conflicts_with = "topics")]
    all_topics: bool,
    #[command(flatten)]
    to: StrategyArgs,
    /// Print the plan without committing it.
    #[arg(long)]
    dry_run: bool,
    /// Commit the plan (the default; accepted for `kafka-consumer-groups` habits).
    #[arg(long, conflicts_with = "dry_run")]
    execute: bool,
}

/// Exactly one way to choose the new offsets.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
struct StrategyArgs {
    /// The log start offset of each partition.
    #[arg(long)]
    to_earliest: bool,
    /// The log end offset (high watermark) of each partition.
    #[arg(long)]
    to_latest: bool,
    /// This offset, clamped to each partition's log start and end.
    #[arg(long, value_name = "OFFSET", allow_negative_numbers = true)]
    to_offset: Option<i64>,
    /// The first offset at or after this time (RFC 3339 or ms since the epoch); the log end if
    /// there is none.
    #[arg(long, value_name = "RFC3339|MS", value_parser = parse_timestamp)]
    to_datetime: Option<i64>,
    /// The committed offset moved by N (negative: back), clamped to the log start and end.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    shift_by: Option<i64>,
}

impl StrategyArgs {
    fn strategy(&self) -> Result<Strategy, Error> {
        Ok(match self {
            StrategyArgs {
                to_earliest: true, ..
            } => Strategy::Earliest,
            StrategyArgs {
                to_latest: true, ..
            } => Strategy::Latest,
            StrategyArgs {
                to_offset: Some(n), ..
            } => Strategy::Offset(*n),
            StrategyArgs {
                to_datetime: Some(ms),
                ..
            } => Strategy::Datetime(*ms),
            StrategyArgs {
                shift_by: Some(n), ..
            } => Strategy::ShiftBy(*n),
            _ => {
                return Err("give one of --to-earliest, --to-latest, --to-offset, \
                            --to-datetime, --shift-by"
                    .into());
            }
        })
    }
}

/// A `--topic` argument: a topic and, optionally, some of its partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TopicSpec {
    topic: String,
    /// `None` for every partition of the topic.
    partitions: Option<Vec<i32>>,
}

fn parse_topic_spec(s: &str) -> Result<TopicSpec, String> {
    let (topic, partitions) = match s.split_once(':') {
        None => (s, None),
        Some((topic, list)) => {
            let parts = list
                .split(',')
                .map(|p| match p.trim().parse::<i32>() {
                    Ok(n) if n >= 0 => Ok(n),
                    _ => Err(format!("{p:?} in {s:?} is not a partition number")),
                })
                .collect::<Result<Vec<_>, _>>()?;
            (topic, Some(parts))
        }
    };
    if topic.is_empty() {
        return Err(format!("no topic name in {s:?}"));
    }
    Ok(TopicSpec {
        topic: topic.to_owned(),
        partitions,
    })
}

/// Kafka's spelling of a group state, whatever the case given.
fn parse_state(s: &str) -> Result<String, String> {
    canonical(s, GROUP_STATES, "group state")
}

/// Kafka's spelling of a group type, whatever the case given.
fn parse_type(s: &str) -> Result<String, String> {
    canonical(s, GROUP_TYPES, "group type")
}

fn canonical(s: &str, known: &[&str], what: &str) -> Result<String, String> {
    known
        .iter()
        .find(|k| k.eq_ignore_ascii_case(s.trim()))
        .map(|k| (*k).to_owned())
        .ok_or_else(|| format!("unknown {what} {s:?}; expected one of {}", known.join(", ")))
}

/// Runs a `group` subcommand.
pub fn run(args: GroupArgs) -> Result<(), Error> {
    let mut client = args.connect.client()?;
    let json = args.connect.json;
    match args.command {
        GroupCommand::List { states, types } => list(&mut client, &states, &types, json),
        GroupCommand::Describe { groups } => describe(&mut client, &groups, json),
        GroupCommand::ResetOffsets(reset) => reset_offsets(&mut client, &reset, json),
        GroupCommand::Delete { groups } => delete(&mut client, &groups, json),
    }
}

// ---------------------------------------------------------------------------------------------
// Talking to the coordinator.

/// Runs `op` on the coordinator of `group`, finding it again and repeating while `op` answers
/// [`Reply::Retry`], for up to [`COORDINATOR_WAIT`]. Returns the coordinator's broker id and the
/// answer.
fn with_coordinator<T>(
    client: &mut Client,
    group: &str,
    op: impl FnMut(&mut Connection) -> Result<Reply<T>, Error>,
) -> Result<(i32, T), Error> {
    client.with_coordinator(
        CoordinatorKind::Group,
        group,
        |code| group_error(group, code, None),
        op,
    )
}

/// The message for error `code` about `group`, with the common group errors explained.
fn group_error(group: &str, code: i16, message: Option<&str>) -> Error {
    let name = |c: ErrorCode| format!("{} ({})", c.name(), c.code());
    match ErrorCode::from_code(code) {
        Some(c @ ErrorCode::GroupIdNotFound) => {
            format!("group {group:?} does not exist: {}", name(c)).into()
        }
        Some(c @ ErrorCode::NonEmptyGroup) => format!(
            "group {group:?} still has active members; stop its consumers first: {}",
            name(c)
        )
        .into(),
        Some(
            c @ (ErrorCode::CoordinatorNotAvailable
            | ErrorCode::CoordinatorLoadInProgress
            | ErrorCode::NotCoordinator),
        ) => format!(
            "the coordinator of group {group:?} is still unavailable after {}s: {}",
            COORDINATOR_WAIT.as_secs(),
            name(c)
        )
        .into(),
        _ => match check(code, &format!("group {group:?}"), message) {
            Err(err) => err,
            Ok(()) => format!("group {group:?}: no error").into(),
        },
    }
}

/// `err` as a message that names `group` (once).
fn about(group: &str, err: &Error) -> String {
    let text = err.to_string();
    let named = format!("group {group:?}");
    if text.starts_with(&named) {
        text
    } else {
        format!("{named}: {text}")
    }
}

// ---------------------------------------------------------------------------------------------
// Group descriptions.

/// A topic and some of its partitions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct TopicPartitions {
    topic: String,
    partitions: Vec<i32>,
}

/// A member of a group, as its coordinator describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct Member {
    member_id: String,
    group_instance_id: Option<String>,
    client_id: String,
    host: String,
    /// The topics the member subscribed to (empty if its protocol is not the consumer one).
    subscribed_topics: Vec<String>,
    /// The partitions assigned to the member, by topic.
    assignment: Vec<TopicPartitions>,
}

/// What the coordinator says about a group.
#[derive(Debug, Clone, Serialize)]
struct GroupInfo {
    group: String,
    coordinator: i32,
    state: String,
    /// `classic` (DescribeGroups), `consumer` (ConsumerGroupDescribe, KIP-848) or `share`
    /// (ShareGroupDescribe, KIP-932).
    group_type: &'static str,
    protocol_type: String,
    /// The assignor (classic: the protocol the members agreed on).
    protocol: String,
    members: Vec<Member>,
}

impl GroupInfo {
    /// Whether the coordinator knows nothing of the group (Kafka reports such groups as `Dead`).
    fn is_missing(&self) -> bool {
        self.state.eq_ignore_ascii_case("Dead") && self.members.is_empty()
    }

    /// Whether the group has no active members, so its offsets may be changed by an admin.
    fn is_inactive(&self) -> bool {
        self.state.eq_ignore_ascii_case("Empty") || self.state.eq_ignore_ascii_case("Dead")
    }
}

/// Decodes a member's assignment: an `i16` version, then `ConsumerProtocolAssignment` at that
/// version (read as the newest one known if it is newer, as Kafka's clients do: later versions
/// only add fields at the end). Empty bytes (during a rebalance) are no assignment.
fn decode_assignment(bytes: &Bytes) -> Result<Vec<TopicPartitions>, String> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let mut buf = bytes.clone();
    let version = embedded_version(&mut buf, ConsumerProtocolAssignment::VALID_VERSIONS.max)?;
    let assignment =
        ConsumerProtocolAssignment::decode(&mut buf, version).map_err(|e| e.to_string())?;
    let mut by_topic: BTreeMap<String, BTreeSet<i32>> = BTreeMap::new();
    for tp in assignment.assigned_partitions {
        by_topic.entry(tp.topic).or_default().extend(tp.partitions);
    }
    Ok(by_topic
        .into_iter()
        .map(|(topic, partitions)| TopicPartitions {
            topic,
            partitions: partitions.into_iter().collect(),
        })
        .collect())
}

/// Decodes the topics of a member's `ConsumerProtocolSubscription` (same framing as
/// [`decode_assignment`]).
fn decode_subscription(bytes: &Bytes) -> Result<Vec<String>, String> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let mut buf = bytes.clone();
    let version = embedded_version(&mut buf, ConsumerProtocolSubscription::VALID_VERSIONS.max)?;
    let subscription =
        ConsumerProtocolSubscription::decode(&mut buf, version).map_err(|e| e.to_string())?;
    let mut topics = subscription.topics;
    topics.sort();
    topics.dedup();
    Ok(topics)
}

/// Reads the version prefix of an embedded consumer protocol message, capped at `max`.
fn embedded_version(buf: &mut Bytes, max: i16) -> Result<i16, String> {
    let version = codec::read_i16(buf, "ConsumerProtocol.Version").map_err(|e| e.to_string())?;
    if version < 0 {
        return Err(format!("negative consumer protocol version {version}"));
    }
    Ok(version.min(max))
}

/// What the error code of a described group means: retry on another coordinator, not a group
/// of the kind asked (`None`), or a failure; `None` on success.
fn described_error(
    group: &str,
    code: i16,
    message: Option<&str>,
) -> Option<Result<Reply<Option<GroupInfo>>, Error>> {
    if coordinator_retriable(code) {
        Some(Ok(Reply::Retry(code)))
    } else if code == ErrorCode::GroupIdNotFound.code() {
        Some(Ok(Reply::Done(None)))
    } else if code != 0 {
        Some(Err(group_error(group, code, message)))
    } else {
        None
    }
}

/// Describes `group` with DescribeGroups; `None` if the coordinator does not know it as a
/// classic group.
fn describe_classic(conn: &mut Connection, group: &str) -> Result<Reply<Option<GroupInfo>>, Error> {
    let request = DescribeGroupsRequest {
        groups: vec![group.to_owned()],
        include_authorized_operations: false,
        ..Default::default()
    };
    let response = match conn.send(&RequestBody::DescribeGroups(request))? {
        ResponseBody::DescribeGroups(r) => r,
        other => return Err(unexpected(ApiKey::DescribeGroups, &other)),
    };
    let g = response
        .groups
        .into_iter()
        .find(|g| g.group_id == group)
        .ok_or_else(|| format!("DescribeGroups did not answer for group {group:?}"))?;
    if let Some(outcome) = described_error(group, g.error_code, g.error_message.as_deref()) {
        return outcome;
    }
    let consumer = g.protocol_type == CONSUMER_PROTOCOL_TYPE;
    let members = g
        .members
        .iter()
        .map(|m| {
            let (subscribed_topics, assignment) = if consumer {
                let warn = |what: &str, e: String| {
                    eprintln!(
                        "warning: group {group:?} member {:?}: undecodable {what}: {e}",
                        m.member_id
                    );
                };
                let subscribed = decode_subscription(&m.member_metadata).unwrap_or_else(|e| {
                    warn("subscription", e);
                    Vec::new()
                });
                let assigned = decode_assignment(&m.member_assignment).unwrap_or_else(|e| {
                    warn("assignment", e);
                    Vec::new()
                });
                (subscribed, assigned)
            } else {
                (Vec::new(), Vec::new())
            };
            Member {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                client_id: m.client_id.clone(),
                host: m.client_host.clone(),
                subscribed_topics,
                assignment,
            }
        })
        .collect();
    Ok(Reply::Done(Some(GroupInfo {
        group: g.group_id,
        coordinator: -1,
        state: g.group_state,
        group_type: "classic",
        protocol_type: g.protocol_type,
        protocol: g.protocol_data,
        members,
    })))
}

/// Describes `group` with ConsumerGroupDescribe (KIP-848); `None` if the coordinator does not
/// know it as a group of the consumer protocol.
fn describe_consumer(
    conn: &mut Connection,
    group: &str,
) -> Result<Reply<Option<GroupInfo>>, Error> {
    let request = ConsumerGroupDescribeRequest {
        group_ids: vec![group.to_owned()],
        include_authorized_operations: false,
        ..Default::default()
    };
    let response = match conn.send(&RequestBody::ConsumerGroupDescribe(request))? {
        ResponseBody::ConsumerGroupDescribe(r) => r,
        other => return Err(unexpected(ApiKey::ConsumerGroupDescribe, &other)),
    };
    let g = response
        .groups
        .into_iter()
        .find(|g| g.group_id == group)
        .ok_or_else(|| format!("ConsumerGroupDescribe did not answer for group {group:?}"))?;
    if let Some(outcome) = described_error(group, g.error_code, g.error_message.as_deref()) {
        return outcome;
    }
    let members = g
        .members
        .into_iter()
        .map(|m| {
            let mut subscribed_topics = m.subscribed_topic_names;
            subscribed_topics.sort();
            Member {
                member_id: m.member_id,
                group_instance_id: m.instance_id,
                client_id: m.client_id,
                host: m.client_host,
                subscribed_topics,
                assignment: by_topic(
                    m.assignment
                        .topic_partitions
                        .into_iter()
                        .map(|tp| (tp.topic_name, tp.partitions)),
                ),
            }
        })
        .collect();
    Ok(Reply::Done(Some(GroupInfo {
        group: g.group_id,
        coordinator: -1,
        state: g.group_state,
        group_type: "consumer",
        protocol_type: CONSUMER_PROTOCOL_TYPE.to_owned(),
        protocol: g.assignor_name,
        members,
    })))
}

/// An assignment given as (topic, partitions) pairs, merged by topic and sorted.
fn by_topic(pairs: impl IntoIterator<Item = (String, Vec<i32>)>) -> Vec<TopicPartitions> {
    let mut merged: BTreeMap<String, BTreeSet<i32>> = BTreeMap::new();
    for (topic, partitions) in pairs {
        merged.entry(topic).or_default().extend(partitions);
    }
    merged
        .into_iter()
        .map(|(topic, partitions)| TopicPartitions {
            topic,
            partitions: partitions.into_iter().collect(),
        })
        .collect()
}

/// Describes `group` with ShareGroupDescribe; `None` if the coordinator does not know it as a
/// share group.
fn describe_share(conn: &mut Connection, group: &str) -> Result<Reply<Option<GroupInfo>>, Error> {
    let request = ShareGroupDescribeRequest {
        group_ids: vec![group.to_owned()],
        include_authorized_operations: false,
        ..Default::default()
    };
    let response = match conn.send(&RequestBody::ShareGroupDescribe(request))? {
        ResponseBody::ShareGroupDescribe(r) => r,
        other => return Err(unexpected(ApiKey::ShareGroupDescribe, &other)),
    };
    let g = response
        .groups
        .into_iter()
        .find(|g| g.group_id == group)
        .ok_or_else(|| format!("ShareGroupDescribe did not answer for group {group:?}"))?;
    if let Some(outcome) = described_error(group, g.error_code, g.error_message.as_deref()) {
        return outcome;
    }
    let members = g
        .members
        .into_iter()
        .map(|m| {
            let mut subscribed_topics = m.subscribed_topic_names;
            subscribed_topics.sort();
            Member {
                member_id: m.member_id,
                group_instance_id: None,
                client_id: m.client_id,
                host: m.client_host,
                subscribed_topics,
                assignment: by_topic(
                    m.assignment
                        .topic_partitions
                        .into_iter()
                        .map(|tp| (tp.topic_name, tp.partitions)),
                ),
            }
        })
        .collect();
    Ok(Reply::Done(Some(GroupInfo {
        group: g.group_id,
        coordinator: -1,
        state: g.group_state,
        group_type: "share",
        protocol_type: "share".to_owned(),
        protocol: g.assignor_name,
        members,
    })))
}

/// Describes `group` on its coordinator: with ConsumerGroupDescribe first when the coordinator
/// supports it (a KIP-848 group; its answer is GROUP_ID_NOT_FOUND for any other group, as the Java
/// admin client relies on), then with ShareGroupDescribe (a share group), then with
/// DescribeGroups. A group neither knows is returned as `Dead`
/// with no members, as Kafka reports it.
fn describe_group(client: &mut Client, group: &str) -> Result<GroupInfo, Error> {
    let (node, _) = with_coordinator(client, group, |_| Ok(Reply::Done(())))?;
    if client.node(node)?.supports(ApiKey::ConsumerGroupDescribe) {
        let (node, consumer) =
            with_coordinator(client, group, |conn| describe_consumer(conn, group))?;
        if let Some(info) = consumer {
            return Ok(GroupInfo {
                coordinator: node,
                ..info
            });
        }
    }
    if client.node(node)?.supports(ApiKey::ShareGroupDescribe) {
        let (node, share) = with_coordinator(client, group, |conn| describe_share(conn, group))?;
        if let Some(info) = share {
            return Ok(GroupInfo {
                coordinator: node,
                ..info
            });
        }
    }
    let (node, classic) = with_coordinator(client, group, |conn| describe_classic(conn, group))?;
    Ok(match classic {
        Some(info) => GroupInfo {
            coordinator: node,
            ..info
        },
        None => GroupInfo {
            group: group.to_owned(),
            coordinator: node,
            state: "Dead".to_owned(),
            group_type: "classic",
            protocol_type: String::new(),
            protocol: String::new(),
            members: Vec::new(),
        },
    })
}

/// A topic partition, ordered by topic then partition.
type Tp = (String, i32);

/// The offsets `group` has committed, from OffsetFetch for all topics (the `groups` array from
/// v8 on, the single group before). Partitions without a committed offset are left out.
fn committed_offsets(
    conn: &mut Connection,
    group: &str,
) -> Result<Reply<BTreeMap<Tp, i64>>, Error> {
    let version = conn
        .version(ApiKey::OffsetFetch)
        .ok_or("the broker does not support OffsetFetch")?;
    if version < 2 {
        return Err(
            "the broker supports only OffsetFetch v1, which cannot fetch all topics".into(),
        );
    }
    let request = if version >= 8 {
        OffsetFetchRequest {
            groups: vec![OffsetFetchRequestGroup {
                group_id: group.to_owned(),
                member_id: None,
                member_epoch: -1,
                topics: None,
                ..Default::default()
            }],
            require_stable: false,
            ..Default::default()
        }
    } else {
        OffsetFetchRequest {
            group_id: group.to_owned(),
            topics: None,
            require_stable: false,
            ..Default::default()
        }
    };
    let response = match conn.send(&RequestBody::OffsetFetch(request))? {
        ResponseBody::OffsetFetch(r) => r,
        other => return Err(unexpected(ApiKey::OffsetFetch, &other)),
    };
    // (topic, partition, offset, error code) whatever the version.
    let mut entries: Vec<(String, i32, i64, i16)> = Vec::new();
    let group_code = if version >= 8 {
        let g = response
            .groups
            .into_iter()
            .find(|g| g.group_id == group)
            .ok_or_else(|| format!("OffsetFetch did not answer for group {group:?}"))?;
        for t in g.topics {
            for p in t.partitions {
                entries.push((
                    t.name.clone(),
                    p.partition_index,
                    p.committed_offset,
                    p.error_code,
                ));
            }
        }
        g.error_code
    } else {
        for t in response.topics {
            for p in t.partitions {
                entries.push((
                    t.name.clone(),
                    p.partition_index,
                    p.committed_offset,
                    p.error_code,
                ));
            }
        }
        response.error_code
    };
    if coordinator_retriable(group_code) {
        return Ok(Reply::Retry(group_code));
    }
    if group_code == ErrorCode::GroupIdNotFound.code() {
        return Ok(Reply::Done(BTreeMap::new()));
    }
    if group_code != 0 {
        return Err(group_error(group, group_code, None));
    }
    let mut out = BTreeMap::new();
    for (topic, partition, offset, code) in entries {
        if coordinator_retriable(code) {
            return Ok(Reply::Retry(code));
        }
        if code != 0 {
            let what = format!("committed offset of group {group:?} on {topic}/{partition}");
            if let Err(err) = check(code, &what, None) {
                eprintln!("warning: {err}");
            }
            continue;
        }
        if offset >= 0 {
            out.insert((topic, partition), offset);
        }
    }
    Ok(Reply::Done(out))
}

/// Metadata of the existing topics among `names`, by name.
fn topic_infos(
    client: &mut Client,
    names: &BTreeSet<String>,
) -> Result<BTreeMap<String, TopicInfo>, Error> {
    if names.is_empty() {
        return Ok(BTreeMap::new());
    }
    let list: Vec<String> = names.iter().cloned().collect();
    let response = client.metadata(Some(&list))?;
    Ok(response
        .topics
        .iter()
        .filter(|t| t.error_code == 0)
        .map(TopicInfo::from_metadata)
        .filter(|t| names.contains(&t.name))
        .map(|t| (t.name.clone(), t))
        .collect())
}

/// ListOffsets for `timestamp` of each of `partitions` that its topic's metadata knows with a
/// leader. With `strict`, anything unknown or failing is an error; otherwise it is left out with
/// a warning (a committed offset may outlive its topic).
fn offsets_at(
    client: &mut Client,
    topics: &BTreeMap<String, TopicInfo>,
    partitions: &BTreeSet<Tp>,
    timestamp: i64,
    strict: bool,
) -> Result<BTreeMap<Tp, i64>, Error> {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, p) in partitions {
        by_topic.entry(topic).or_default().push(*p);
    }
    let mut out = BTreeMap::new();
    for (topic, parts) in by_topic {
        let Some(info) = topics.get(topic) else {
            let err = format!("topic {topic:?} does not exist");
            if strict {
                return Err(err.into());
            }
            eprintln!("warning: {err}; its offsets are not shown");
            continue;
        };
        let (known, unknown): (Vec<i32>, Vec<i32>) =
            parts.into_iter().partition(|&p| info.leader(p).is_some());
        if let Some(p) = unknown.first() {
            let err = format!("partition {topic}/{p} does not exist or has no leader");
            if strict {
                return Err(err.into());
            }
            eprintln!("warning: {err}");
        }
        match client.list_offsets(info, &known, timestamp) {
            Ok(offsets) => {
                out.extend(offsets.into_iter().map(|(p, o)| ((topic.to_owned(), p), o)));
            }
            Err(err) if !strict => eprintln!("warning: {err}"),
            Err(err) => return Err(err),
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// list

/// One line of `list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct ListedGroup {
    group: String,
    /// The broker that listed it (its coordinator).
    coordinator: i32,
    protocol_type: String,
    /// Empty when the broker's ListGroups is older than v4.
    state: String,
    /// `None` when the broker's ListGroups is older than v5.
    group_type: Option<String>,
}

fn list(client: &mut Client, states: &[String], types: &[String], json: bool) -> Result<(), Error> {
    let metadata = client.metadata(Some(&[]))?;
    let mut nodes: Vec<i32> = metadata.brokers.iter().map(|b| b.node_id).collect();
    nodes.sort_unstable();
    nodes.dedup();
    let mut groups: BTreeMap<String, ListedGroup> = BTreeMap::new();
    let mut failures: Vec<String> = Vec::new();
    for node in nodes {
        match list_on(client, node, states, types) {
            Ok(listed) => {
                for g in listed {
                    groups.entry(g.group.clone()).or_insert(g);
                }
            }
            Err(err) => failures.push(format!("broker {node}: {err}")),
        }
    }
    let groups: Vec<ListedGroup> = groups
        .into_values()
        .filter(|g| states.is_empty() || states.iter().any(|s| s.eq_ignore_ascii_case(&g.state)))
        .filter(|g| {
            types.is_empty()
                || g.group_type
                    .as_ref()
                    .is_some_and(|t| types.iter().any(|w| w.eq_ignore_ascii_case(t)))
        })
        .collect();
    if groups.is_empty() && !failures.is_empty() {
        return Err(failures.join("; ").into());
    }
    if json {
        print_json(&groups)?;
    } else {
        print!("{}", render_list(&groups));
    }
    if !failures.is_empty() {
        return Err(format!(
            "some brokers could not list their groups: {}",
            failures.join("; ")
        )
        .into());
    }
    Ok(())
}

/// ListGroups on broker `node`, filtered by the broker where its version allows.
fn list_on(
    client: &mut Client,
    node: i32,
    states: &[String],
    types: &[String],
) -> Result<Vec<ListedGroup>, Error> {
    let conn = client.node(node)?;
    let version = conn
        .version(ApiKey::ListGroups)
        .ok_or("the broker does not support ListGroups")?;
    if !states.is_empty() && version < 4 {
        return Err(format!("ListGroups v{version} cannot filter by state (needs v4)").into());
    }
    if !types.is_empty() && version < 5 {
        return Err(format!("ListGroups v{version} cannot filter by type (needs v5)").into());
    }
    let request = ListGroupsRequest {
        states_filter: states.to_vec(),
        types_filter: types.to_vec(),
        ..Default::default()
    };
    let response = match conn.send(&RequestBody::ListGroups(request))? {
        ResponseBody::ListGroups(r) => r,
        other => return Err(unexpected(ApiKey::ListGroups, &other)),
    };
    check(response.error_code, "ListGroups", None)?;
    Ok(response
        .groups
        .into_iter()
        .map(|g| ListedGroup {
            group: g.group_id,
            coordinator: node,
            protocol_type: g.protocol_type,
            state: g.group_state,
            group_type: (version >= 5 && !g.group_type.is_empty()).then_some(g.group_type),
        })
        .collect())
}

/// `-` for an empty cell, so columns stay aligned for `awk`.
fn cell(s: &str) -> String {
    if s.is_empty() {
        "-".to_owned()
    } else {
        s.to_owned()
    }
}

fn render_list(groups: &[ListedGroup]) -> String {
    let typed = groups.iter().any(|g| g.group_type.is_some());
    let mut t = if typed {
        table(["GROUP", "COORDINATOR", "PROTOCOL-TYPE", "STATE", "TYPE"])
    } else {
        table(["GROUP", "COORDINATOR", "PROTOCOL-TYPE", "STATE"])
    };
    for g in groups {
        let mut row = vec![
            g.group.clone(),
            g.coordinator.to_string(),
            cell(&g.protocol_type),
            cell(&g.state),
        ];
        if typed {
            row.push(cell(g.group_type.as_deref().unwrap_or("")));
        }
        t.add_row(row);
    }
    render_table(&t)
}

// ---------------------------------------------------------------------------------------------
// describe

/// One partition of `describe`: the group's position there and who reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct OffsetRow {
    topic: String,
    partition: i32,
    /// The committed offset, if the group has one.
    current_offset: Option<i64>,
    /// The log end offset (high watermark), if known.
    log_end_offset: Option<i64>,
    /// `log_end_offset - current_offset` when both are known.
    lag: Option<i64>,
    member_id: Option<String>,
    client_id: Option<String>,
    host: Option<String>,
}

/// What `describe` prints for one group.
#[derive(Debug, Clone, Serialize)]
struct Description {
    #[serde(flatten)]
    info: GroupInfo,
    offsets: Vec<OffsetRow>,
    /// The sum of the known lags.
    total_lag: i64,
}

/// The lag of a committed offset behind the log end, as Kafka computes it: unknown if either is.
fn lag(committed: Option<i64>, log_end: Option<i64>) -> Option<i64> {
    Some(log_end?.saturating_sub(committed?))
}

/// One row per partition that has a committed offset or is assigned to a member, sorted, with
/// the lag and owner of each; and the total of the known lags.
fn offset_rows(
    members: &[Member],
    committed: &BTreeMap<Tp, i64>,
    log_ends: &BTreeMap<Tp, i64>,
) -> (Vec<OffsetRow>, i64) {
    let mut owners: BTreeMap<Tp, &Member> = BTreeMap::new();
    for m in members {
        for tp in &m.assignment {
            for &p in &tp.partitions {
                owners.insert((tp.topic.clone(), p), m);
            }
        }
    }
    let partitions: BTreeSet<&Tp> = committed.keys().chain(owners.keys()).collect();
    let rows: Vec<OffsetRow> = partitions
        .into_iter()
        .map(|tp| {
            let current_offset = committed.get(tp).copied();
            let log_end_offset = log_ends.get(tp).copied();
            let owner = owners.get(tp);
            OffsetRow {
                topic: tp.0.clone(),
                partition: tp.1,
                current_offset,
                log_end_offset,
                lag: lag(current_offset, log_end_offset),
                member_id: owner.map(|m| m.member_id.clone()),
                client_id: owner.map(|m| m.client_id.clone()),
                host: owner.map(|m| m.host.clone()),
            }
        })
        .collect();
    let total = rows
        .iter()
        .filter_map(|r| r.lag)
        .fold(0i64, i64::saturating_add);
    (rows, total)
}

fn describe(client: &mut Client, groups: &[String], json: bool) -> Result<(), Error> {
    let mut out = Vec::new();
    let mut failed = 0;
    for group in groups {
        match describe_one(client, group) {
            Ok(d) => out.push(d),
            Err(err) => {
                eprintln!("error: {}", about(group, &err));
                failed += 1;
            }
        }
    }
    if json {
        print_json(&out)?;
    } else {
        let texts: Vec<String> = out.iter().map(render_description).collect();
        print!("{}", texts.join("\n"));
    }
    if failed > 0 {
        return Err(format!("{failed} of {} groups not described", groups.len()).into());
    }
    Ok(())
}

fn describe_one(client: &mut Client, group: &str) -> Result<Description, Error> {
    let info = describe_group(client, group)?;
    let (_, committed) = with_coordinator(client, group, |conn| committed_offsets(conn, group))?;
    if info.is_missing() && committed.is_empty() {
        return Err(group_error(group, ErrorCode::GroupIdNotFound.code(), None));
    }
    let mut partitions: BTreeSet<Tp> = committed.keys().cloned().collect();
    for m in &info.members {
        for tp in &m.assignment {
            partitions.extend(tp.partitions.iter().map(|&p| (tp.topic.clone(), p)));
        }
    }
    let names: BTreeSet<String> = partitions.iter().map(|(t, _)| t.clone()).collect();
    let topics = topic_infos(client, &names)?;
    let log_ends = offsets_at(client, &topics, &partitions, LATEST, false)?;
    let (offsets, total_lag) = offset_rows(&info.members, &committed, &log_ends);
    Ok(Description {
        info,
        offsets,
        total_lag,
    })
}

fn offset_text(o: Option<i64>) -> String {
    o.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

fn assignment_text(assignment: &[TopicPartitions]) -> String {
    if assignment.is_empty() {
        return "-".to_owned();
    }
    assignment
        .iter()
        .map(|tp| {
            let parts: Vec<String> = tp.partitions.iter().map(i32::to_string).collect();
            format!("{}:{}", tp.topic, parts.join(","))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn render_description(d: &Description) -> String {
    let i = &d.info;
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("{k:<15}{v}\n"));
    line("GROUP", i.group.clone());
    line("COORDINATOR", i.coordinator.to_string());
    line("STATE", cell(&i.state));
    line("TYPE", i.group_type.to_owned());
    line("PROTOCOL-TYPE", cell(&i.protocol_type));
    line("PROTOCOL", cell(&i.protocol));
    line("MEMBERS", i.members.len().to_string());
    line("TOTAL-LAG", d.total_lag.to_string());
    if !i.members.is_empty() {
        let mut t = table([
            "MEMBER-ID",
            "INSTANCE-ID",
            "CLIENT-ID",
            "HOST",
            "ASSIGNMENT",
        ]);
        for m in &i.members {
            t.add_row(vec![
                m.member_id.clone(),
                cell(m.group_instance_id.as_deref().unwrap_or("")),
                cell(&m.client_id),
                cell(&m.host),
                assignment_text(&m.assignment),
            ]);
        }
        out.push('\n');
        out.push_str(&render_table(&t));
    }
    if !d.offsets.is_empty() {
        let mut t = table([
            "TOPIC",
            "PARTITION",
            "CURRENT-OFFSET",
            "LOG-END-OFFSET",
            "LAG",
            "MEMBER-ID",
            "CLIENT-ID",
            "HOST",
        ]);
        for r in &d.offsets {
            let text = |s: &Option<String>| cell(s.as_deref().unwrap_or(""));
            t.add_row(vec![
                r.topic.clone(),
                r.partition.to_string(),
                offset_text(r.current_offset),
                offset_text(r.log_end_offset),
                offset_text(r.lag),
                text(&r.member_id),
                text(&r.client_id),
                text(&r.host),
            ]);
        }
        out.push('\n');
        out.push_str(&render_table(&t));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// reset-offsets

/// How `reset-offsets` chooses each partition's new offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strategy {
    Earliest,
    Latest,
    Offset(i64),
    /// A time in ms since the epoch.
    Datetime(i64),
    ShiftBy(i64),
}

/// What is known about one partition before its reset.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PartitionOffsets {
    topic: String,
    partition: i32,
    committed: Option<i64>,
    log_start: i64,
    log_end: i64,
    /// For [`Strategy::Datetime`]: the first offset at or after the time, `None` if no record is.
    at_time: Option<i64>,
}

/// One partition of a reset plan, and how its commit went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct PlanRow {
    topic: String,
    partition: i32,
    old_offset: Option<i64>,
    new_offset: i64,
    /// Why the commit of this partition failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// The new offset of every partition, as `kafka-consumer-groups --reset-offsets` computes it:
/// targets outside `[log start, log end]` are moved to the nearest end, a time after the last
/// record means the log end, and shifting needs a committed offset.
fn plan(strategy: Strategy, partitions: &[PartitionOffsets]) -> Result<Vec<PlanRow>, Error> {
    partitions
        .iter()
        .map(|p| {
            let target = match strategy {
                Strategy::Earliest => p.log_start,
                Strategy::Latest => p.log_end,
                Strategy::Offset(n) => n,
                Strategy::Datetime(_) => p.at_time.filter(|&o| o >= 0).unwrap_or(p.log_end),
                Strategy::ShiftBy(n) => p
                    .committed
                    .ok_or_else(|| {
                        format!(
                            "cannot shift the offset of {}/{}: the group has no committed \
                             offset there",
                            p.topic, p.partition
                        )
                    })?
                    .saturating_add(n),
            };
            // Written without `clamp`, which panics if a broker reports start > end.
            let new_offset = target.min(p.log_end).max(p.log_start);
            Ok(PlanRow {
                topic: p.topic.clone(),
                partition: p.partition,
                old_offset: p.committed,
                new_offset,
                error: None,
            })
        })
        .collect()
}

/// What `reset-offsets` prints.
#[derive(Debug, Clone, Serialize)]
struct ResetReport {
    group: String,
    dry_run: bool,
    partitions: Vec<PlanRow>,
}

fn render_plan(rows: &[PlanRow]) -> String {
    let failed = rows.iter().any(|r| r.error.is_some());
    let mut t = if failed {
        table(["TOPIC", "PARTITION", "OLD-OFFSET", "NEW-OFFSET", "ERROR"])
    } else {
        table(["TOPIC", "PARTITION", "OLD-OFFSET", "NEW-OFFSET"])
    };
    for r in rows {
        let mut row = vec![
            r.topic.clone(),
            r.partition.to_string(),
            offset_text(r.old_offset),
            r.new_offset.to_string(),
        ];
        if failed {
            row.push(cell(r.error.as_deref().unwrap_or("")));
        }
        t.add_row(row);
    }
    render_table(&t)
}

/// The partitions `args` names, checked against the metadata (or, with `--all-topics`, those
/// the group has committed offsets for).
fn reset_targets(
    client: &mut Client,
    args: &ResetArgs,
    committed: &BTreeMap<Tp, i64>,
) -> Result<(BTreeSet<Tp>, BTreeMap<String, TopicInfo>), Error> {
    if args.all_topics {
        if committed.is_empty() {
            return Err(format!("group {:?} has no committed offsets to reset", args.group).into());
        }
        let partitions: BTreeSet<Tp> = committed.keys().cloned().collect();
        let names = partitions.iter().map(|(t, _)| t.clone()).collect();
        return Ok((partitions, topic_infos(client, &names)?));
    }
    let names: BTreeSet<String> = args.topics.iter().map(|s| s.topic.clone()).collect();
    let topics = topic_infos(client, &names)?;
    let mut partitions = BTreeSet::new();
    for spec in &args.topics {
        let info = topics
            .get(&spec.topic)
            .ok_or_else(|| format!("topic {:?} does not exist", spec.topic))?;
        match &spec.partitions {
            None => partitions.extend(
                info.partitions
                    .iter()
                    .map(|p| (spec.topic.clone(), p.partition)),
            ),
            Some(list) => {
                for &p in list {
                    if !info.partitions.iter().any(|x| x.partition == p) {
                        return Err(format!(
                            "topic {:?} has no partition {p} (it has {})",
                            spec.topic,
                            info.partitions.len()
                        )
                        .into());
                    }
                    partitions.insert((spec.topic.clone(), p));
                }
            }
        }
    }
    Ok((partitions, topics))
}

fn reset_offsets(client: &mut Client, args: &ResetArgs, json: bool) -> Result<(), Error> {
    let strategy = args.to.strategy()?;
    let group = args.group.as_str();
    let info = describe_group(client, group)?;
    if !info.is_inactive() {
        return Err(format!(
            "cannot reset the offsets of group {group:?}: it is {} with {} active member(s); \
             offsets can only be reset while the group is inactive (Empty), so stop its \
             consumers first",
            info.state,
            info.members.len()
        )
        .into());
    }
    let (_, committed) = with_coordinator(client, group, |conn| committed_offsets(conn, group))?;
    let (partitions, topics) = reset_targets(client, args, &committed)?;
    let starts = offsets_at(client, &topics, &partitions, EARLIEST, true)?;
    let ends = offsets_at(client, &topics, &partitions, LATEST, true)?;
    let at_time = match strategy {
        Strategy::Datetime(ms) => Some(offsets_at(client, &topics, &partitions, ms, true)?),
        _ => None,
    };
    let known = |m: &BTreeMap<Tp, i64>, tp: &Tp| {
        m.get(tp)
            .copied()
            .ok_or_else(|| format!("no offsets for {}/{}", tp.0, tp.1))
    };
    let mut state = Vec::new();
    for tp in &partitions {
        state.push(PartitionOffsets {
            topic: tp.0.clone(),
            partition: tp.1,
            committed: committed.get(tp).copied(),
            log_start: known(&starts, tp)?,
            log_end: known(&ends, tp)?,
            at_time: at_time.as_ref().and_then(|m| m.get(tp).copied()),
        });
    }
    let mut rows = plan(strategy, &state)?;
    if !args.dry_run {
        let (_, codes) = with_coordinator(client, group, |conn| commit(conn, group, &rows))?;
        for r in &mut rows {
            let what = format!("{}/{}", r.topic, r.partition);
            r.error = match codes.get(&(r.topic.clone(), r.partition)) {
                Some(&code) => check(code, &what, None).err().map(|e| e.to_string()),
                None => Some(format!("{what}: the coordinator did not answer for it")),
            };
        }
    }
    let failed = rows.iter().filter(|r| r.error.is_some()).count();
    let report = ResetReport {
        group: group.to_owned(),
        dry_run: args.dry_run,
        partitions: rows,
    };
    if json {
        print_json(&report)?;
    } else {
        print!("{}", render_plan(&report.partitions));
        if report.dry_run {
            println!("\ndry run: group {group} not changed");
        } else if failed == 0 {
            println!(
                "\nreset {} partition(s) of group {group}",
                report.partitions.len()
            );
        }
    }
    if failed > 0 {
        return Err(format!(
            "{failed} of {} offsets of group {group:?} not committed",
            report.partitions.len()
        )
        .into());
    }
    Ok(())
}

/// Commits `rows` for `group` as an admin (generation -1, no member id, which Kafka accepts only
/// while the group is empty). Returns the error code of each partition.
fn commit(
    conn: &mut Connection,
    group: &str,
    rows: &[PlanRow],
) -> Result<Reply<BTreeMap<Tp, i16>>, Error> {
    let mut by_topic: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for r in rows {
        by_topic
            .entry(&r.topic)
            .or_default()
            .push(OffsetCommitRequestPartition {
                partition_index: r.partition,
                committed_offset: r.new_offset,
                committed_leader_epoch: -1,
                committed_metadata: Some(String::new()),
                ..Default::default()
            });
    }
    let request = OffsetCommitRequest {
        group_id: group.to_owned(),
        generation_id_or_member_epoch: -1,
        member_id: String::new(),
        group_instance_id: None,
        retention_time_ms: -1,
        topics: by_topic
            .into_iter()
            .map(|(name, partitions)| OffsetCommitRequestTopic {
                name: name.to_owned(),
                partitions,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let response = match conn.send(&RequestBody::OffsetCommit(request))? {
        ResponseBody::OffsetCommit(r) => r,
        other => return Err(unexpected(ApiKey::OffsetCommit, &other)),
    };
    let mut codes = BTreeMap::new();
    for t in response.topics {
        for p in t.partitions {
            if coordinator_retriable(p.error_code) {
                return Ok(Reply::Retry(p.error_code));
            }
            codes.insert((t.name.clone(), p.partition_index), p.error_code);
        }
    }
    Ok(Reply::Done(codes))
}

// ---------------------------------------------------------------------------------------------
// delete

/// The result of deleting one group.
#[derive(Debug, Clone, Serialize)]
struct Deletion {
    group: String,
    deleted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

fn delete_one(conn: &mut Connection, group: &str) -> Result<Reply<i16>, Error> {
    let request = DeleteGroupsRequest {
        groups_names: vec![group.to_owned()],
        ..Default::default()
    };
    let response = match conn.send(&RequestBody::DeleteGroups(request))? {
        ResponseBody::DeleteGroups(r) => r,
        other => return Err(unexpected(ApiKey::DeleteGroups, &other)),
    };
    let code = response
        .results
        .iter()
        .find(|r| r.group_id == group)
        .map(|r| r.error_code)
        .ok_or_else(|| format!("DeleteGroups did not answer for group {group:?}"))?;
    Ok(Reply::unless_retriable(code, || code))
}

fn delete(client: &mut Client, groups: &[String], json: bool) -> Result<(), Error> {
    let mut results = Vec::new();
    for group in groups {
        let error = match with_coordinator(client, group, |conn| delete_one(conn, group)) {
            Ok((_, 0)) => None,
            Ok((_, code)) => Some(group_error(group, code, None).to_string()),
            Err(err) => Some(about(group, &err)),
        };
        if !json {
            match &error {
                None => println!("deleted group {group}"),
                Some(err) => eprintln!("error: cannot delete {err}"),
            }
        }
        results.push(Deletion {
            group: group.clone(),
            deleted: error.is_none(),
            error,
        });
    }
    if json {
        print_json(&results)?;
    }
    let failed = results.iter().filter(|r| !r.deleted).count();
    if failed > 0 {
        return Err(format!("{failed} of {} groups not deleted", groups.len()).into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use basalt_protocol::messages::consumer_protocol_assignment::TopicPartition;
    use bytes::{BufMut, BytesMut};

    fn assignment_bytes(version: i16, parts: &[(&str, &[i32])]) -> Bytes {
        let mut buf = basalt_protocol::Encoder::new();
        buf.put_i16(version);
        let a = ConsumerProtocolAssignment {
            assigned_partitions: parts
                .iter()
                .map(|(t, p)| TopicPartition {
                    topic: (*t).to_owned(),
                    partitions: p.to_vec(),
                })
                .collect(),
            user_data: None,
        };
        a.encode(&mut buf, version.min(3)).unwrap();
        buf.into_bytes().unwrap()
    }

    #[test]
    fn group_assignment_decodes_merged_and_sorted() {
        let bytes = assignment_bytes(1, &[("orders", &[2, 0]), ("audit", &[1]), ("orders", &[1])]);
        let got = decode_assignment(&bytes).unwrap();
        assert_eq!(
            got,
            vec![
                TopicPartitions {
                    topic: "audit".into(),
                    partitions: vec![1]
                },
                TopicPartitions {
                    topic: "orders".into(),
                    partitions: vec![0, 1, 2]
                },
            ]
        );
    }

    #[test]
    fn group_assignment_of_a_newer_version_reads_the_known_prefix() {
        let mut buf = BytesMut::from(&assignment_bytes(7, &[("t", &[0])])[..]);
        buf.put_slice(b"fields from the future");
        let got = decode_assignment(&buf.freeze()).unwrap();
        assert_eq!(
            got,
            vec![TopicPartitions {
                topic: "t".into(),
                partitions: vec![0]
            }]
        );
    }

    #[test]
    fn group_assignment_garbage_is_an_error_not_a_panic() {
        assert_eq!(decode_assignment(&Bytes::new()).unwrap(), vec![]);
        assert!(decode_assignment(&Bytes::from_static(&[0])).is_err());
        assert!(decode_assignment(&Bytes::from_static(&[0xff, 0xff, 0, 0, 0, 1])).is_err());
        // A count of a billion partitions in six bytes.
        assert!(decode_assignment(&Bytes::from_static(&[0, 0, 0x3b, 0x9a, 0xca, 0])).is_err());
        let full = assignment_bytes(0, &[("orders", &[0, 1, 2])]);
        for cut in 1..full.len() - 4 {
            let r = decode_assignment(&full.slice(..cut));
            assert!(r.is_err(), "cut at {cut}: {r:?}");
        }
    }

    #[test]
    fn group_subscription_topics_decode() {
        let mut buf = basalt_protocol::Encoder::new();
        buf.put_i16(3);
        ConsumerProtocolSubscription {
            topics: vec!["orders".into(), "audit".into()],
            generation_id: 4,
            ..Default::default()
        }
        .encode(&mut buf, 3)
        .unwrap();
        assert_eq!(
            decode_subscription(&buf.into_bytes().unwrap()).unwrap(),
            vec!["audit", "orders"]
        );
        assert!(decode_subscription(&Bytes::from_static(&[0, 0, 0])).is_err());
    }

    #[test]
    fn group_lag_is_unknown_without_both_offsets() {
        assert_eq!(lag(Some(7), Some(10)), Some(3));
        assert_eq!(lag(None, Some(10)), None);
        assert_eq!(lag(Some(7), None), None);
        assert_eq!(lag(Some(10), Some(10)), Some(0));
    }

    fn member(id: &str, parts: &[(&str, &[i32])]) -> Member {
        Member {
            member_id: id.into(),
            group_instance_id: None,
            client_id: format!("client-{id}"),
            host: "/127.0.0.1".into(),
            subscribed_topics: vec![],
            assignment: parts
                .iter()
                .map(|(t, p)| TopicPartitions {
                    topic: (*t).into(),
                    partitions: p.to_vec(),
                })
                .collect(),
        }
    }

    fn tp(t: &str, p: i32) -> Tp {
        (t.to_owned(), p)
    }

    #[test]
    fn group_offset_rows_merge_committed_and_assigned_partitions() {
        let members = [member("m1", &[("orders", &[0, 1])])];
        let committed = BTreeMap::from([(tp("orders", 0), 7), (tp("old", 0), 5)]);
        let ends = BTreeMap::from([(tp("orders", 0), 10), (tp("orders", 1), 4)]);
        let (rows, total) = offset_rows(&members, &committed, &ends);
        let summary: Vec<_> = rows
            .iter()
            .map(|r| {
                (
                    r.topic.as_str(),
                    r.partition,
                    r.current_offset,
                    r.log_end_offset,
                    r.lag,
                    r.member_id.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                // Committed, but its topic is gone: no log end, no lag, no owner.
                ("old", 0, Some(5), None, None, None),
                ("orders", 0, Some(7), Some(10), Some(3), Some("m1")),
                // Assigned, nothing committed yet: `-` for both, as kafka-consumer-groups shows.
                ("orders", 1, None, Some(4), None, Some("m1")),
            ]
        );
        assert_eq!(total, 3);
    }

    fn offsets(p: i32, committed: Option<i64>, start: i64, end: i64) -> PartitionOffsets {
        PartitionOffsets {
            topic: "t".into(),
            partition: p,
            committed,
            log_start: start,
            log_end: end,
            at_time: None,
        }
    }

    fn new_offsets(strategy: Strategy, parts: &[PartitionOffsets]) -> Vec<i64> {
        plan(strategy, parts)
            .unwrap()
            .iter()
            .map(|r| r.new_offset)
            .collect()
    }

    #[test]
    fn group_reset_plan_follows_kafka_consumer_groups() {
        let parts = [offsets(0, Some(7), 2, 10), offsets(1, None, 0, 4)];
        assert_eq!(new_offsets(Strategy::Earliest, &parts), [2, 0]);
        assert_eq!(new_offsets(Strategy::Latest, &parts), [10, 4]);
        // Out-of-range targets move to the nearest end of the log.
        assert_eq!(new_offsets(Strategy::Offset(5), &parts), [5, 4]);
        assert_eq!(new_offsets(Strategy::Offset(0), &parts), [2, 0]);
        assert_eq!(new_offsets(Strategy::Offset(-3), &parts), [2, 0]);
        let rows = plan(Strategy::Latest, &parts).unwrap();
        assert_eq!((rows[0].old_offset, rows[1].old_offset), (Some(7), None));
    }

    #[test]
    fn group_reset_shift_is_clamped_and_needs_a_committed_offset() {
        let parts = [offsets(0, Some(7), 2, 10)];
        assert_eq!(new_offsets(Strategy::ShiftBy(-3), &parts), [4]);
        assert_eq!(new_offsets(Strategy::ShiftBy(-30), &parts), [2]);
        assert_eq!(new_offsets(Strategy::ShiftBy(30), &parts), [10]);
        assert_eq!(new_offsets(Strategy::ShiftBy(i64::MAX), &parts), [10]);
        let err = plan(Strategy::ShiftBy(1), &[offsets(3, None, 0, 4)]).unwrap_err();
        assert!(err.to_string().contains("no committed offset"), "{err}");
    }

    #[test]
    fn group_reset_to_datetime_uses_the_log_end_after_the_last_record() {
        let mut found = offsets(0, Some(1), 0, 10);
        found.at_time = Some(6);
        let mut after_end = offsets(1, Some(1), 0, 10);
        after_end.at_time = None;
        let mut minus_one = offsets(2, Some(1), 0, 10);
        minus_one.at_time = Some(-1);
        assert_eq!(
            new_offsets(Strategy::Datetime(0), &[found, after_end, minus_one]),
            [6, 10, 10]
        );
    }

    #[test]
    fn group_reset_plan_survives_a_broker_reporting_start_after_end() {
        assert_eq!(
            new_offsets(Strategy::Offset(5), &[offsets(0, None, 9, 3)]),
            [9]
        );
    }

    #[test]
    fn group_topic_specs_parse() {
        assert_eq!(
            parse_topic_spec("orders"),
            Ok(TopicSpec {
                topic: "orders".into(),
                partitions: None
            })
        );
        assert_eq!(
            parse_topic_spec("orders:0,2"),
            Ok(TopicSpec {
                topic: "orders".into(),
                partitions: Some(vec![0, 2])
            })
        );
        assert!(parse_topic_spec("orders:").is_err());
        assert!(parse_topic_spec("orders:-1").is_err());
        assert!(parse_topic_spec(":1").is_err());
    }

    #[test]
    fn group_states_and_types_take_kafka_spelling() {
        assert_eq!(parse_state("stable"), Ok("Stable".into()));
        assert_eq!(
            parse_state("PREPARINGREBALANCE"),
            Ok("PreparingRebalance".into())
        );
        assert!(parse_state("running").unwrap_err().contains("Empty"));
        assert_eq!(parse_type("Consumer"), Ok("consumer".into()));
        assert!(parse_type("fancy").is_err());
    }

    #[test]
    fn group_list_table_shows_the_type_only_when_known() {
        let mut g = ListedGroup {
            group: "billing".into(),
            coordinator: 0,
            protocol_type: "consumer".into(),
            state: "Stable".into(),
            group_type: None,
        };
        let text = render_list(std::slice::from_ref(&g));
        assert_eq!(
            text,
            "GROUP    COORDINATOR  PROTOCOL-TYPE  STATE\nbilling  0            consumer       Stable\n"
        );
        g.group_type = Some("classic".into());
        g.protocol_type = String::new();
        let text = render_list(&[g]);
        assert!(
            text.starts_with("GROUP    COORDINATOR  PROTOCOL-TYPE  STATE   TYPE\n"),
            "{text}"
        );
        assert!(
            text.contains("billing  0            -              Stable  classic"),
            "{text}"
        );
    }

    #[test]
    fn group_description_renders_header_members_and_lag() {
        let members = vec![member("m1", &[("orders", &[0, 1])])];
        let committed = BTreeMap::from([(tp("orders", 0), 7), (tp("orders", 1), 3)]);
        let ends = BTreeMap::from([(tp("orders", 0), 10), (tp("orders", 1), 10)]);
        let (offsets, total_lag) = offset_rows(&members, &committed, &ends);
        let d = Description {
            info: GroupInfo {
                group: "billing".into(),
                coordinator: 0,
                state: "Stable".into(),
                group_type: "classic",
                protocol_type: "consumer".into(),
                protocol: "range".into(),
                members,
            },
            offsets,
            total_lag,
        };
        let text = render_description(&d);
        let expected = "\
GROUP          billing
COORDINATOR    0
STATE          Stable
TYPE           classic
PROTOCOL-TYPE  consumer
PROTOCOL       range
MEMBERS        1
TOTAL-LAG      10

MEMBER-ID  INSTANCE-ID  CLIENT-ID  HOST        ASSIGNMENT
m1         -            client-m1  /127.0.0.1  orders:0,1

TOPIC   PARTITION  CURRENT-OFFSET  LOG-END-OFFSET  LAG  MEMBER-ID  CLIENT-ID  HOST
orders  0          7               10              3    m1         client-m1  /127.0.0.1
orders  1          3               10              7    m1         client-m1  /127.0.0.1
";
        assert_eq!(text, expected);
        let json = serde_json::to_value(&d).unwrap();
        assert_eq!(json["group"], "billing");
        assert_eq!(json["total_lag"], 10);
        assert_eq!(json["offsets"][1]["lag"], 7);
        assert_eq!(
            json["members"][0]["assignment"][0]["partitions"],
            serde_json::json!([0, 1])
        );
    }

    #[test]
    fn group_plan_table_adds_errors_only_when_some_failed() {
        let mut rows = plan(
            Strategy::Earliest,
            &[offsets(0, Some(7), 0, 10), offsets(1, None, 0, 4)],
        )
        .unwrap();
        assert_eq!(
            render_plan(&rows),
            "TOPIC  PARTITION  OLD-OFFSET  NEW-OFFSET\nt      0          7           0\nt      1          -           0\n"
        );
        rows[1].error = Some("t/1: UNKNOWN_MEMBER_ID (25)".into());
        let text = render_plan(&rows);
        assert!(text.lines().next().unwrap().ends_with("ERROR"), "{text}");
        assert!(text.contains("UNKNOWN_MEMBER_ID"), "{text}");
    }

    #[test]
    fn group_errors_are_explained() {
        let e = group_error("g", ErrorCode::NonEmptyGroup.code(), None).to_string();
        assert!(
            e.contains("still has active members") && e.contains("NON_EMPTY_GROUP"),
            "{e}"
        );
        let e = group_error("g", ErrorCode::GroupIdNotFound.code(), None).to_string();
        assert!(e.contains("does not exist"), "{e}");
        let e = group_error("g", ErrorCode::GroupAuthorizationFailed.code(), None).to_string();
        assert!(e.contains("GROUP_AUTHORIZATION_FAILED"), "{e}");
    }

    #[test]
    fn group_reset_arguments_need_exactly_one_strategy() {
        use clap::Parser;
        #[derive(Debug, Parser)]
        struct Cli {
            #[command(subcommand)]
            command: GroupCommand,
        }
        let parse = |args: &[&str]| Cli::try_parse_from([&["group"], args].concat());
        let ok = parse(&[
            "reset-offsets",
            "g",
            "--topic",
            "t:0",
            "--shift-by",
            "-2",
            "--dry-run",
        ])
        .unwrap();
        let GroupCommand::ResetOffsets(r) = ok.command else {
            panic!("not a reset")
        };
        assert_eq!(r.to.strategy().unwrap(), Strategy::ShiftBy(-2));
        assert!(r.dry_run);
        assert!(parse(&["reset-offsets", "g", "--topic", "t"]).is_err());
        assert!(
            parse(&[
                "reset-offsets",
                "g",
                "--topic",
                "t",
                "--to-earliest",
                "--to-latest"
            ])
            .is_err()
        );
        assert!(parse(&["reset-offsets", "g", "--to-earliest"]).is_err());
        assert!(
            parse(&[
                "reset-offsets",
                "g",
                "--all-topics",
                "--to-earliest",
                "--dry-run",
                "--execute"
            ])
            .is_err()
        );
        let dt = parse(&[
            "reset-offsets",
            "g",
            "--all-topics",
            "--to-datetime",
            "1970-01-01T00:00:01Z",
        ])
        .unwrap();
        let GroupCommand::ResetOffsets(r) = dt.command else {
            panic!("not a reset")
        };
        assert_eq!(r.to.strategy().unwrap(), Strategy::Datetime(1000));
    }

    /// A scripted Kafka coordinator on 127.0.0.1:0 that answers the requests of the group
    /// commands over real TCP, so that versions, request shapes and retries are tested end to
    /// end: group `billing` in `state` with one member owning `orders` 0 and 1, committed offsets
    /// 7 and 3, logs 0..10. Its first FindCoordinator and DescribeGroups answers are retriable
    /// errors.
    mod wire {
        use std::io::{Read, Write};
        use std::net::{TcpListener, TcpStream};
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::{Arc, Mutex};

        use basalt_protocol::messages::api_versions_response::{ApiVersion, ApiVersionsResponse};
        use basalt_protocol::messages::delete_groups_response::{
            DeletableGroupResult, DeleteGroupsResponse,
        };
        use basalt_protocol::messages::describe_groups_response::{
            DescribeGroupsResponse, DescribedGroup, DescribedGroupMember,
        };
        use basalt_protocol::messages::find_coordinator_response::{
            Coordinator, FindCoordinatorResponse,
        };
        use basalt_protocol::messages::list_groups_response::{self, ListGroupsResponse};
        use basalt_protocol::messages::list_offsets_response::{
            ListOffsetsPartitionResponse, ListOffsetsResponse, ListOffsetsTopicResponse,
        };
        use basalt_protocol::messages::metadata_response::{
            MetadataResponse, MetadataResponseBroker, MetadataResponsePartition,
            MetadataResponseTopic,
        };
        use basalt_protocol::messages::offset_commit_response::{
            OffsetCommitResponse, OffsetCommitResponsePartition, OffsetCommitResponseTopic,
        };
        use basalt_protocol::messages::offset_fetch_response::{
            OffsetFetchResponse, OffsetFetchResponseGroup, OffsetFetchResponsePartitions,
            OffsetFetchResponseTopics,
        };
        use basalt_protocol::{
            FrameDecoder, FrameStatus, decode_request_frame, encode_response, header_versions,
        };
        use bytes::BytesMut;

        use super::super::*;
        use super::assignment_bytes;

        /// The requests the fake has seen, with the version each was sent at.
        type Seen = Arc<Mutex<Vec<(i16, RequestBody)>>>;

        struct Fake {
            addr: String,
            seen: Seen,
        }

        impl Fake {
            fn start(state: &'static str) -> Fake {
                let listener = TcpListener::bind("127.0.0.1:0").unwrap();
                let port = i32::from(listener.local_addr().unwrap().port());
                let seen: Seen = Arc::default();
                let calls = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
                let (seen2, calls2) = (seen.clone(), calls.clone());
                std::thread::spawn(move || {
                    for stream in listener.incoming() {
                        let (seen, calls) = (seen2.clone(), calls2.clone());
                        std::thread::spawn(move || {
                            serve(stream.unwrap(), state, port, &seen, &calls)
                        });
                    }
                });
                Fake {
                    addr: format!("127.0.0.1:{port}"),
                    seen,
                }
            }

            fn requests(&self, api: ApiKey) -> Vec<(i16, RequestBody)> {
                let seen = self.seen.lock().unwrap();
                seen.iter()
                    .filter(|(_, b)| b.api_key() == api)
                    .cloned()
                    .collect()
            }
        }

        fn serve(
            mut stream: TcpStream,
            state: &str,
            port: i32,
            seen: &Seen,
            calls: &[AtomicUsize; 2],
        ) {
            let mut decoder = FrameDecoder::new(1 << 20);
            let mut buf = BytesMut::new();
            let mut chunk = [0u8; 4096];
            loop {
                let frame = match decoder.decode(&mut buf).unwrap() {
                    FrameStatus::Frame(frame) => frame,
                    FrameStatus::Incomplete { .. } => {
                        match stream.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    }
                };
                let (header, body) = decode_request_frame(frame).unwrap();
                let version = header.request_api_version;
                seen.lock().unwrap().push((version, body.clone()));
                let response = answer(&body, state, port, calls);
                let (_, response_header) = header_versions(body.api_key(), version);
                let out =
                    encode_response(response_header, header.correlation_id, &response, version)
                        .unwrap()
                        .into_bytes()
                        .unwrap();
                stream.write_all(&out).unwrap();
            }
        }

        fn answer(
            body: &RequestBody,
            state: &str,
            port: i32,
            calls: &[AtomicUsize; 2],
        ) -> ResponseBody {
            let first = |i: usize| calls[i].fetch_add(1, Ordering::SeqCst) == 0;
            match body {
                RequestBody::ApiVersions(_) => {
                    let api_keys = [
                        (ApiKey::Metadata, 0, 12),
                        (ApiKey::ListOffsets, 1, 8),
                        (ApiKey::FindCoordinator, 0, 6),
                        (ApiKey::ListGroups, 0, 5),
                        (ApiKey::DescribeGroups, 0, 5),
                        (ApiKey::OffsetFetch, 1, 10),
                        (ApiKey::OffsetCommit, 2, 10),
                        (ApiKey::DeleteGroups, 0, 2),
                    ]
                    .iter()
                    .map(|&(api, min_version, max_version)| ApiVersion {
                        api_key: api.key(),
                        min_version,
                        max_version,
                        ..Default::default()
                    })
                    .collect();
                    ResponseBody::ApiVersions(ApiVersionsResponse {
                        api_keys,
                        ..Default::default()
                    })
                }
                RequestBody::Metadata(_) => ResponseBody::Metadata(MetadataResponse {
                    brokers: vec![MetadataResponseBroker {
                        node_id: 0,
                        host: "127.0.0.1".into(),
                        port,
                        ..Default::default()
                    }],
                    controller_id: 0,
                    topics: vec![MetadataResponseTopic {
                        name: Some(TOPIC.into()),
                        partitions: (0..2)
                            .map(|p| MetadataResponsePartition {
                                partition_index: p,
                                leader_id: 0,
                                replica_nodes: vec![0],
                                isr_nodes: vec![0],
                                ..Default::default()
                            })
                            .collect(),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                RequestBody::FindCoordinator(r) => {
                    let code = if first(0) {
                        ErrorCode::CoordinatorNotAvailable.code()
                    } else {
                        0
                    };
                    ResponseBody::FindCoordinator(FindCoordinatorResponse {
                        coordinators: r
                            .coordinator_keys
                            .iter()
                            .map(|key| Coordinator {
                                key: key.clone(),
                                node_id: if code == 0 { 0 } else { -1 },
                                host: "127.0.0.1".into(),
                                port,
                                error_code: code,
                                ..Default::default()
                            })
                            .collect(),
                        ..Default::default()
                    })
                }
                RequestBody::ListGroups(r) => ResponseBody::ListGroups(ListGroupsResponse {
                    groups: [("billing", state), ("audit", "Empty")]
                        .iter()
                        .filter(|(_, s)| {
                            r.states_filter.is_empty() || r.states_filter.iter().any(|f| f == s)
                        })
                        .map(|(g, s)| list_groups_response::ListedGroup {
                            group_id: (*g).into(),
                            protocol_type: "consumer".into(),
                            group_state: (*s).into(),
                            group_type: "classic".into(),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }),
                RequestBody::DescribeGroups(r) => {
                    let loading = first(1);
                    ResponseBody::DescribeGroups(DescribeGroupsResponse {
                        groups: r
                            .groups
                            .iter()
                            .map(|g| described(g, state, loading))
                            .collect(),
                        ..Default::default()
                    })
                }
                RequestBody::OffsetFetch(r) => ResponseBody::OffsetFetch(OffsetFetchResponse {
                    groups: r
                        .groups
                        .iter()
                        .map(|g| OffsetFetchResponseGroup {
                            group_id: g.group_id.clone(),
                            topics: vec![OffsetFetchResponseTopics {
                                name: TOPIC.into(),
                                partitions: [(0, 7), (1, 3)]
                                    .iter()
                                    .map(|&(p, o)| OffsetFetchResponsePartitions {
                                        partition_index: p,
                                        committed_offset: o,
                                        ..Default::default()
                                    })
                                    .collect(),
                                ..Default::default()
                            }],
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }),
                RequestBody::ListOffsets(r) => ResponseBody::ListOffsets(ListOffsetsResponse {
                    topics: r
                        .topics
                        .iter()
                        .map(|t| ListOffsetsTopicResponse {
                            name: t.name.clone(),
                            partitions: t
                                .partitions
                                .iter()
                                .map(|p| ListOffsetsPartitionResponse {
                                    partition_index: p.partition_index,
                                    offset: match p.timestamp {
                                        EARLIEST => 0,
                                        LATEST => 10,
                                        _ => 4,
                                    },
                                    ..Default::default()
                                })
                                .collect(),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }),
                RequestBody::OffsetCommit(r) => ResponseBody::OffsetCommit(OffsetCommitResponse {
                    topics: r
                        .topics
                        .iter()
                        .map(|t| OffsetCommitResponseTopic {
                            name: t.name.clone(),
                            partitions: t
                                .partitions
                                .iter()
                                .map(|p| OffsetCommitResponsePartition {
                                    partition_index: p.partition_index,
                                    error_code: 0,
                                    ..Default::default()
                                })
                                .collect(),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }),
                RequestBody::DeleteGroups(r) => ResponseBody::DeleteGroups(DeleteGroupsResponse {
                    results: r
                        .groups_names
                        .iter()
                        .map(|g| DeletableGroupResult {
                            group_id: g.clone(),
                            error_code: if state == "Empty" {
                                0
                            } else {
                                ErrorCode::NonEmptyGroup.code()
                            },
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }),
                other => panic!("the fake coordinator does not serve {:?}", other.api_key()),
            }
        }

        const TOPIC: &str = "orders";

        fn described(group: &str, state: &str, loading: bool) -> DescribedGroup {
            if loading {
                return DescribedGroup {
                    group_id: group.into(),
                    error_code: ErrorCode::CoordinatorLoadInProgress.code(),
                    ..Default::default()
                };
            }
            if group != "billing" {
                return DescribedGroup {
                    group_id: group.into(),
                    group_state: "Dead".into(),
                    ..Default::default()
                };
            }
            let mut subscription = basalt_protocol::Encoder::new();
            subscription.extend_from_slice(&1i16.to_be_bytes());
            ConsumerProtocolSubscription {
                topics: vec![TOPIC.into()],
                ..Default::default()
            }
            .encode(&mut subscription, 1)
            .unwrap();
            let members = if state == "Empty" {
                vec![]
            } else {
                vec![DescribedGroupMember {
                    member_id: "rdkafka-1".into(),
                    group_instance_id: Some("worker-a".into()),
                    client_id: "billing-worker".into(),
                    client_host: "/127.0.0.1".into(),
                    member_metadata: subscription.into_bytes().unwrap(),
                    member_assignment: assignment_bytes(1, &[(TOPIC, &[0, 1])]),
                    ..Default::default()
                }]
            };
            DescribedGroup {
                group_id: group.into(),
                group_state: state.into(),
                protocol_type: "consumer".into(),
                protocol_data: "range".into(),
                members,
                ..Default::default()
            }
        }

        fn reset_args(args: &[&str]) -> ResetArgs {
            use clap::Parser;
            #[derive(Debug, Parser)]
            struct Cli {
                #[command(subcommand)]
                command: GroupCommand,
            }
            let cli = Cli::try_parse_from([&["group", "reset-offsets", "billing"], args].concat())
                .unwrap();
            match cli.command {
                GroupCommand::ResetOffsets(r) => r,
                other => panic!("not a reset: {other:?}"),
            }
        }

        #[test]
        fn group_describe_over_the_wire_retries_then_reports_lag() {
            let fake = Fake::start("Stable");
            let mut client = Client::connect(&fake.addr).unwrap();
            let d = describe_one(&mut client, "billing").unwrap();
            assert_eq!((d.info.state.as_str(), d.info.coordinator), ("Stable", 0));
            let m = &d.info.members[0];
            assert_eq!(m.group_instance_id.as_deref(), Some("worker-a"));
            assert_eq!(m.subscribed_topics, vec![TOPIC]);
            assert_eq!(m.assignment[0].partitions, vec![0, 1]);
            let lags: Vec<_> = d.offsets.iter().map(|r| (r.partition, r.lag)).collect();
            assert_eq!(lags, vec![(0, Some(3)), (1, Some(7))]);
            assert_eq!(d.total_lag, 10);
            // FindCoordinator v6 with a batched key, OffsetFetch capped at v9 (the groups form).
            let find = fake.requests(ApiKey::FindCoordinator);
            assert!(find.len() >= 2, "the first answer is retried: {find:?}");
            let RequestBody::FindCoordinator(r) = &find[0].1 else {
                unreachable!()
            };
            assert_eq!(
                (find[0].0, r.coordinator_keys.as_slice(), r.key_type),
                (6, &["billing".to_owned()][..], 0)
            );
            assert_eq!(
                fake.requests(ApiKey::DescribeGroups).len(),
                2,
                "the load error is retried"
            );
            let fetch = fake.requests(ApiKey::OffsetFetch);
            let RequestBody::OffsetFetch(r) = &fetch[0].1 else {
                unreachable!()
            };
            assert_eq!(fetch[0].0, 9);
            assert_eq!(
                (r.groups[0].group_id.as_str(), r.groups[0].topics.is_none()),
                ("billing", true)
            );
        }

        #[test]
        fn group_list_over_the_wire_filters_by_state() {
            let fake = Fake::start("Stable");
            let mut client = Client::connect(&fake.addr).unwrap();
            client.metadata(Some(&[])).unwrap();
            let all = list_on(&mut client, 0, &[], &[]).unwrap();
            assert_eq!(all.len(), 2);
            assert_eq!(all[0].group_type.as_deref(), Some("classic"));
            let empty = list_on(&mut client, 0, &["Empty".into()], &[]).unwrap();
            assert_eq!(
                empty.iter().map(|g| g.group.as_str()).collect::<Vec<_>>(),
                ["audit"]
            );
        }

        #[test]
        fn group_reset_over_the_wire_commits_as_an_admin_only_when_inactive() {
            let active = Fake::start("Stable");
            let mut client = Client::connect(&active.addr).unwrap();
            let err = reset_offsets(
                &mut client,
                &reset_args(&["--topic", TOPIC, "--to-earliest"]),
                true,
            )
            .unwrap_err()
            .to_string();
            assert!(err.contains("Stable with 1 active member"), "{err}");
            assert!(active.requests(ApiKey::OffsetCommit).is_empty());
            let err = delete_one(client.node(0).unwrap(), "billing").unwrap();
            assert!(matches!(err, Reply::Done(code) if code == ErrorCode::NonEmptyGroup.code()));

            let empty = Fake::start("Empty");
            let mut client = Client::connect(&empty.addr).unwrap();
            let dry = reset_args(&["--topic", "orders:1", "--shift-by", "-1", "--dry-run"]);
            reset_offsets(&mut client, &dry, true).unwrap();
            assert!(
                empty.requests(ApiKey::OffsetCommit).is_empty(),
                "a dry run commits nothing"
            );

            let by_time = reset_args(&["--all-topics", "--to-datetime", "2026-01-01T00:00:00Z"]);
            reset_offsets(&mut client, &by_time, true).unwrap();
            let commits = empty.requests(ApiKey::OffsetCommit);
            assert_eq!(commits.len(), 1);
            let (version, RequestBody::OffsetCommit(r)) = &commits[0] else {
                unreachable!()
            };
            assert_eq!(*version, 9, "capped below v10, which names topics by id");
            assert_eq!(
                (
                    r.group_id.as_str(),
                    r.generation_id_or_member_epoch,
                    r.member_id.as_str()
                ),
                ("billing", -1, "")
            );
            let offsets: Vec<_> = r.topics[0]
                .partitions
                .iter()
                .map(|p| (p.partition_index, p.committed_offset))
                .collect();
            assert_eq!(
                (r.topics[0].name.as_str(), offsets),
                (TOPIC, vec![(0, 4), (1, 4)])
            );
            let ts = empty.requests(ApiKey::ListOffsets);
            assert!(
                ts.iter()
                    .any(|(_, b)| matches!(b, RequestBody::ListOffsets(l)
                if l.topics[0].partitions[0].timestamp == 1_767_225_600_000)),
                "{ts:?}"
            );
        }
    }
}
