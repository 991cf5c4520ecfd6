//! ShareGroupHeartbeat (key 76), v1: a share group member joins (epoch 0, with the member id it
//! chose and its subscription), heartbeats with its epoch, or leaves (-1) (KIP-932). The answer
//! carries the member's epoch and, when it changed, its assignment: every partition of the
//! topics it subscribes to ([`basalt_coordinator::share`]). A group id held by a classic or
//! consumer group with members is GROUP_ID_NOT_FOUND, as Kafka answers a group of another type.
//!
//! Authorization: READ on the group.

use basalt_coordinator::share::ShareHeartbeat;
use basalt_protocol::ErrorCode;
use basalt_protocol::Uuid;
use basalt_protocol::messages::share_group_heartbeat_request::ShareGroupHeartbeatRequest;
use basalt_protocol::messages::share_group_heartbeat_response::{
    Assignment, ShareGroupHeartbeatResponse, TopicPartitions,
};

use crate::Broker;
use crate::acl::{Operation, ResourceType, Session};

/// Highest version handled.
pub const MAX_VERSION: i16 = 1;

fn error(code: ErrorCode, message: String) -> ShareGroupHeartbeatResponse {
    ShareGroupHeartbeatResponse {
        error_code: code.into(),
        error_message: Some(message),
        ..ShareGroupHeartbeatResponse::default()
    }
}

pub fn handle(
    broker: &Broker,
    session: &Session,
    req: ShareGroupHeartbeatRequest,
    client_id: String,
    client_host: String,
) -> ShareGroupHeartbeatResponse {
    let id = req.group_id;
    if !broker.authorize(session, Operation::Read, ResourceType::Group, &id) {
        return error(
            ErrorCode::GroupAuthorizationFailed,
            format!("not authorized to join group {id}"),
        );
    }
    if id.is_empty() {
        return error(ErrorCode::InvalidGroupId, "the group id is empty".into());
    }
    if !broker.coordinates_group(&id) {
        return error(
            ErrorCode::NotCoordinator,
            format!("this node does not coordinate group {id}"),
        );
    }
    let other_kind = broker
        .coordinator()
        .read(&id, |g| g.is_some_and(|g| !g.is_empty()));
    if other_kind {
        return error(
            ErrorCode::GroupIdNotFound,
            format!("group {id} is not a share group"),
        );
    }
    let hb = ShareHeartbeat {
        member_id: req.member_id,
        member_epoch: req.member_epoch,
        rack_id: req.rack_id,
        subscribed_topic_names: req.subscribed_topic_names,
        client_id,
        client_host,
    };
    match broker.shares().heartbeat(broker, &id, hb) {
        Err(e) => error(e.code, e.message),
        Ok(reply) => ShareGroupHeartbeatResponse {
            member_id: Some(reply.member_id),
            member_epoch: reply.member_epoch,
            heartbeat_interval_ms: reply.heartbeat_interval_ms,
            assignment: reply.assignment.map(|a| Assignment {
                topic_partitions: a
                    .into_iter()
                    .map(|(topic, partitions)| TopicPartitions {
                        topic_id: Uuid(topic),
                        partitions: partitions.into_iter().collect(),
                        ..TopicPartitions::default()
                    })
                    .collect(),
                ..Assignment::default()
            }),
            ..ShareGroupHeartbeatResponse::default()
        },
    }
}
