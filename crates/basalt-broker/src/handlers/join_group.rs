//! JoinGroup (key 11), v0–9: a classic group member joins or rejoins; the answer waits until the
//! rebalance completes (`CLS-1`). v4+ makes a new dynamic member fetch its id first
//! (MEMBER_ID_REQUIRED); v5+ carries `group.instance.id` (static membership); v9 tells a static
//! leader to skip the assignment (KIP-814).

use basalt_coordinator::classic::{Answer, JoinReply, JoinRequest};
use basalt_coordinator::{Group, GroupKind, Reply};
use basalt_protocol::ErrorCode;
use basalt_protocol::messages::join_group_request::JoinGroupRequest;
use basalt_protocol::messages::join_group_response::{JoinGroupResponse, JoinGroupResponseMember};

use crate::Broker;
use crate::acl::{Operation, ResourceType, Session};
use crate::groups::{self, new_member_id};

/// Highest version handled.
pub const MAX_VERSION: i16 = 9;

fn response(r: JoinReply, version: i16) -> JoinGroupResponse {
    // The protocol name is nullable only from v7; older versions carry "" (as Kafka sends).
    let protocol_name = match r.protocol_name {
        None if version < 7 => Some(String::new()),
        p => p,
    };
    JoinGroupResponse {
        error_code: r.error.into(),
        generation_id: r.generation_id,
        protocol_type: r.protocol_type,
        protocol_name,
        leader: r.leader,
        // Only v9+ can tell a static leader to skip the assignment (KIP-814); an older leader
        // computes one, and SyncGroup in a Stable group answers with the current assignment.
        skip_assignment: r.skip_assignment && version >= 9,
        member_id: r.member_id,
        members: r
            .members
            .into_iter()
            .map(
                |(member_id, group_instance_id, metadata)| JoinGroupResponseMember {
                    member_id,
                    group_instance_id,
                    metadata,
                    ..JoinGroupResponseMember::default()
                },
            )
            .collect(),
        ..JoinGroupResponse::default()
    }
}

fn error(code: ErrorCode, member_id: &str, version: i16) -> JoinGroupResponse {
    response(
        JoinReply {
            error: code,
            generation_id: -1,
            member_id: member_id.to_owned(),
            ..JoinReply::default()
        },
        version,
    )
}

/// Joins now (in request order); the returned future waits for the rebalance if the answer is
/// parked.
pub fn handle(
    broker: &Broker,
    session: &Session,
    req: JoinGroupRequest,
    version: i16,
    client_id: String,
    client_host: String,
) -> impl Future<Output = JoinGroupResponse> + Send + 'static {
    if !broker.authorize(session, Operation::Read, ResourceType::Group, &req.group_id) {
        let r = error(ErrorCode::GroupAuthorizationFailed, &req.member_id, version);
        return Waiting::Ready(r).into_future(version, String::new());
    }
    if req.group_id.is_empty() {
        let r = error(ErrorCode::InvalidGroupId, &req.member_id, version);
        return Waiting::Ready(r).into_future(version, String::new());
    }
    if !broker.coordinates_group(&req.group_id) {
        let r = error(ErrorCode::NotCoordinator, &req.member_id, version);
        return Waiting::Ready(r).into_future(version, String::new());
    }
    let coordinator = broker.coordinator();
    let config = coordinator.config().clone();
    let (ticket, waiter) = coordinator.park();
    let join = JoinRequest {
        member_id: req.member_id.clone(),
        group_instance_id: req.group_instance_id.clone(),
        client_id: client_id.clone(),
        client_host,
        session_timeout_ms: req.session_timeout_ms,
        rebalance_timeout_ms: if version >= 1 {
            req.rebalance_timeout_ms
        } else {
            req.session_timeout_ms
        },
        protocol_type: req.protocol_type.clone(),
        protocols: req
            .protocols
            .into_iter()
            .map(|p| (p.name, p.metadata))
            .collect(),
        require_known_member_id: version >= 4,
    };
    let member_id = req.member_id.clone();
    let (answer, _durable) = coordinator.with_group(
        broker,
        &req.group_id,
        |now| Some(Group::new_classic(&req.group_id, now)),
        |group, now| match group.map(|g| &mut g.kind) {
            Some(GroupKind::Classic(g)) => {
                let (a, e) = g.join(join, ticket, now, &config, || new_member_id(&client_id));
                (Ok(a), e)
            }
            Some(GroupKind::Consumer(_)) => (
                Err(ErrorCode::InconsistentGroupProtocol),
                Default::default(),
            ),
            None => (Err(ErrorCode::CoordinatorNotAvailable), Default::default()),
        },
    );
    let waiting = match answer {
        Err(code) => {
            coordinator.unpark(ticket);
            Waiting::Ready(error(code, &member_id, version))
        }
        Ok(Answer::Now(r)) => {
            coordinator.unpark(ticket);
            Waiting::Ready(response(r, version))
        }
        Ok(Answer::Parked) => Waiting::Parked(waiter),
    };
    waiting.into_future(version, member_id)
}

/// A JoinGroup answered now or parked.
enum Waiting {
    Ready(JoinGroupResponse),
    Parked(groups::Waiter),
}

impl Waiting {
    async fn into_future(self, version: i16, member_id: String) -> JoinGroupResponse {
        match self {
            Waiting::Ready(r) => r,
            Waiting::Parked(waiter) => match groups::wait(waiter).await {
                Some(Reply::Join(r)) => response(r, version),
                _ => error(ErrorCode::UnknownServerError, &member_id, version),
            },
        }
    }
}
