//! LeaveGroup (key 13), v0–5: members leave a classic group, which rebalances without them;
//! v3+ names several members, static ones by `group.instance.id`.

use basalt_coordinator::GroupKind;
use basalt_coordinator::classic::Leaving;
use basalt_protocol::ErrorCode;
use basalt_protocol::messages::leave_group_request::LeaveGroupRequest;
use basalt_protocol::messages::leave_group_response::{LeaveGroupResponse, MemberResponse};

use crate::Broker;
use crate::acl::{Operation, ResourceType, Session};

/// Highest version handled.
pub const MAX_VERSION: i16 = 5;

pub fn handle(
    broker: &Broker,
    session: &Session,
    req: LeaveGroupRequest,
    version: i16,
) -> LeaveGroupResponse {
    if !broker.authorize(session, Operation::Read, ResourceType::Group, &req.group_id) {
        return LeaveGroupResponse {
            error_code: ErrorCode::GroupAuthorizationFailed.into(),
            ..LeaveGroupResponse::default()
        };
    }
    if !req.group_id.is_empty() && !broker.coordinates_group(&req.group_id) {
        return LeaveGroupResponse {
            error_code: ErrorCode::NotCoordinator.into(),
            ..LeaveGroupResponse::default()
        };
    }
    if req.group_id.is_empty() {
        return LeaveGroupResponse {
            error_code: ErrorCode::InvalidGroupId.into(),
            ..LeaveGroupResponse::default()
        };
    }
    let leaving: Vec<Leaving> = if version >= 3 {
        req.members
            .iter()
            .map(|m| Leaving {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
            })
            .collect()
    } else {
        vec![Leaving {
            member_id: req.member_id.clone(),
            group_instance_id: None,
        }]
    };
    let coordinator = broker.coordinator();
    let config = coordinator.config().clone();
    let (errors, _) = coordinator.with_group(
        broker,
        &req.group_id,
        |_| None,
        |group, now| match group.map(|g| &mut g.kind) {
            Some(GroupKind::Classic(g)) => g.leave(&leaving, now, &config),
            Some(GroupKind::Consumer(_)) => (
                vec![ErrorCode::InconsistentGroupProtocol; leaving.len()],
                Default::default(),
            ),
            None => (
                vec![ErrorCode::UnknownMemberId; leaving.len()],
                Default::default(),
            ),
        },
    );
    if version < 3 {
        return LeaveGroupResponse {
            error_code: errors.first().copied().unwrap_or_default().into(),
            ..LeaveGroupResponse::default()
        };
    }
    LeaveGroupResponse {
        error_code: ErrorCode::None.into(),
        members: leaving
            .into_iter()
            .zip(errors)
            .map(|(l, e)| MemberResponse {
                member_id: l.member_id,
                group_instance_id: l.group_instance_id,
                error_code: e.into(),
                ..MemberResponse::default()
            })
            .collect(),
        ..LeaveGroupResponse::default()
    }
}
