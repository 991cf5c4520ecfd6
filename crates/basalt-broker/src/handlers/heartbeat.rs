//! Heartbeat (key 12), v0–4: keeps a classic member's session alive and tells it when to rejoin
//! (REBALANCE_IN_PROGRESS).

use basalt_coordinator::GroupKind;
use basalt_protocol::ErrorCode;
use basalt_protocol::messages::heartbeat_request::HeartbeatRequest;
use basalt_protocol::messages::heartbeat_response::HeartbeatResponse;

use crate::Broker;
use crate::acl::{Operation, ResourceType, Session};

/// Highest version handled.
pub const MAX_VERSION: i16 = 4;

pub fn handle(broker: &Broker, session: &Session, req: HeartbeatRequest) -> HeartbeatResponse {
    let code = if !broker.authorize(session, Operation::Read, ResourceType::Group, &req.group_id) {
        ErrorCode::GroupAuthorizationFailed
    } else if req.group_id.is_empty() {
        ErrorCode::InvalidGroupId
    } else if !broker.coordinates_group(&req.group_id) {
        ErrorCode::NotCoordinator
    } else {
        broker
            .coordinator()
            .with_group(
                broker,
                &req.group_id,
                |_| None,
                |group, now| {
                    let code = match group.map(|g| &mut g.kind) {
                        Some(GroupKind::Classic(g)) => g.heartbeat(
                            &req.member_id,
                            req.group_instance_id.as_deref(),
                            req.generation_id,
                            now,
                        ),
                        Some(GroupKind::Consumer(_)) => ErrorCode::InconsistentGroupProtocol,
                        None => ErrorCode::UnknownMemberId,
                    };
                    (code, Default::default())
                },
            )
            .0
    };
    HeartbeatResponse {
        error_code: code.into(),
        ..HeartbeatResponse::default()
    }
}
