//! ConsumerGroupHeartbeat (key 68), v0–1: the KIP-848 consumer protocol. Members join with epoch
//! 0, heartbeat with their epoch and owned partitions, leave with -1 (or -2 for a static member's
//! temporary leave); the broker computes the assignment and reconciles each member towards it.
//! In v1 the client chooses its member id.

use basalt_coordinator::assignor::Assignment;
use basalt_coordinator::consumer::HeartbeatRequest;
use basalt_coordinator::{Group, GroupKind};
use basalt_protocol::messages::consumer_group_heartbeat_request::ConsumerGroupHeartbeatRequest;
use basalt_protocol::messages::consumer_group_heartbeat_response::{
    Assignment as WireAssignment, ConsumerGroupHeartbeatResponse, TopicPartitions,
};
use basalt_protocol::{ErrorCode, Uuid};

use crate::Broker;
use crate::acl::{Operation, ResourceType, Session};
use crate::groups::{BrokerTopics, new_member_id};

/// Highest version handled.
pub const MAX_VERSION: i16 = 1;

fn error(code: ErrorCode, message: String) -> ConsumerGroupHeartbeatResponse {
    ConsumerGroupHeartbeatResponse {
        error_code: code.into(),
        error_message: Some(message),
        ..ConsumerGroupHeartbeatResponse::default()
    }
}

pub fn handle(
    broker: &Broker,
    session: &Session,
    req: ConsumerGroupHeartbeatRequest,
    version: i16,
    client_id: String,
    client_host: String,
) -> ConsumerGroupHeartbeatResponse {
    if !broker.authorize(session, Operation::Read, ResourceType::Group, &req.group_id) {
        return error(
            ErrorCode::GroupAuthorizationFailed,
            format!("not authorized to join group {}", req.group_id),
        );
    }
    if req.group_id.is_empty() {
        return error(ErrorCode::InvalidGroupId, "the group id is empty".into());
    }
    if !broker.coordinates_group(&req.group_id) {
        return error(
            ErrorCode::NotCoordinator,
            format!("this node does not coordinate group {}", req.group_id),
        );
    }
    if version >= 1 && req.member_id.is_empty() {
        return error(
            ErrorCode::InvalidRequest,
            "the member id must be set by the client in version 1".into(),
        );
    }
    let owned = req.topic_partitions.map(|tps| {
        let mut a = Assignment::new();
        for tp in tps {
            a.entry(tp.topic_id.0).or_default().extend(tp.partitions);
        }
        a
    });
    let hb = HeartbeatRequest {
        member_id: req.member_id,
        member_epoch: req.member_epoch,
        instance_id: req.instance_id,
        rack_id: req.rack_id,
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        subscribed_topic_names: req.subscribed_topic_names,
        subscribed_topic_regex: req.subscribed_topic_regex,
        server_assignor: req.server_assignor,
        topic_partitions: owned,
        client_id: client_id.clone(),
        client_host,
    };
    let coordinator = broker.coordinator();
    let config = coordinator.config().clone();
    let lookup = BrokerTopics(broker);
    let joining = hb.member_epoch == 0;
    let (result, _) = coordinator.with_group(
        broker,
        &req.group_id,
        |now| joining.then(|| Group::new_consumer(&req.group_id, now)),
        |group, now| {
            let Some(group) = group else {
                return (
                    Err((ErrorCode::UnknownMemberId, "unknown group".to_owned())),
                    Default::default(),
                );
            };
            // An empty classic group (offsets only) becomes a consumer group on first join.
            if let GroupKind::Classic(c) = &group.kind
                && c.members().is_empty()
                && joining
            {
                group.kind =
                    GroupKind::Consumer(basalt_coordinator::ConsumerGroup::new(&group.id, now));
            }
            match &mut group.kind {
                GroupKind::Consumer(g) => (
                    g.heartbeat(hb, now, &config, &lookup, || new_member_id(&client_id))
                        .map_err(|e| (e.code, e.message)),
                    Default::default(),
                ),
                GroupKind::Classic(_) => (
                    Err((
                        ErrorCode::GroupIdNotFound,
                        format!("group {} is a classic group with members", group.id),
                    )),
                    Default::default(),
                ),
            }
        },
    );
    match result {
        Err((code, message)) => error(code, message),
        Ok(reply) => ConsumerGroupHeartbeatResponse {
            member_id: Some(reply.member_id),
            member_epoch: reply.member_epoch,
            heartbeat_interval_ms: reply.heartbeat_interval_ms,
            assignment: reply.assignment.map(|a| WireAssignment {
                topic_partitions: a
                    .into_iter()
                    .map(|(id, ps)| TopicPartitions {
                        topic_id: Uuid(id),
                        partitions: ps.into_iter().collect(),
                        ..TopicPartitions::default()
                    })
                    .collect(),
                ..WireAssignment::default()
            }),
            ..ConsumerGroupHeartbeatResponse::default()
        },
    }
}
