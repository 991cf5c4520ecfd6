//! SyncGroup (key 14), v0–5: the leader hands in the assignment; every member gets exactly the
//! bytes the leader sent for it (`CLS-2`), followers waiting until the leader has synced.

use basalt_coordinator::classic::{Answer, SyncReply};
use basalt_coordinator::{GroupKind, Reply};
use basalt_protocol::ErrorCode;
use basalt_protocol::messages::sync_group_request::SyncGroupRequest;
use basalt_protocol::messages::sync_group_response::SyncGroupResponse;

use crate::Broker;
use crate::acl::{Operation, ResourceType, Session};
use crate::groups;

/// Highest version handled.
pub const MAX_VERSION: i16 = 5;

fn response(r: SyncReply) -> SyncGroupResponse {
    SyncGroupResponse {
        error_code: r.error.into(),
        protocol_type: r.protocol_type,
        protocol_name: r.protocol_name,
        assignment: r.assignment,
        ..SyncGroupResponse::default()
    }
}

fn error(code: ErrorCode) -> SyncGroupResponse {
    SyncGroupResponse {
        error_code: code.into(),
        ..SyncGroupResponse::default()
    }
}

/// Syncs now (in request order); the returned future waits for the persisted assignment and,
/// for a follower, for the leader's SyncGroup.
pub fn handle(
    broker: &Broker,
    session: &Session,
    req: SyncGroupRequest,
) -> impl Future<Output = SyncGroupResponse> + Send + 'static {
    if !broker.authorize(session, Operation::Read, ResourceType::Group, &req.group_id) {
        return Waiting::Ready(error(ErrorCode::GroupAuthorizationFailed)).into_future(Vec::new());
    }
    if req.group_id.is_empty() {
        return Waiting::Ready(error(ErrorCode::InvalidGroupId)).into_future(Vec::new());
    }
    if !broker.coordinates_group(&req.group_id) {
        return Waiting::Ready(error(ErrorCode::NotCoordinator)).into_future(Vec::new());
    }
    let coordinator = broker.coordinator();
    let (ticket, waiter) = coordinator.park();
    let assignments = req
        .assignments
        .into_iter()
        .map(|a| (a.member_id, a.assignment))
        .collect();
    let (answer, durable) = coordinator.with_group(
        broker,
        &req.group_id,
        |_| None,
        |group, now| match group.map(|g| &mut g.kind) {
            Some(GroupKind::Classic(g)) => {
                let (a, e) = g.sync(
                    &req.member_id,
                    req.group_instance_id.as_deref(),
                    req.generation_id,
                    req.protocol_type.as_deref(),
                    req.protocol_name.as_deref(),
                    assignments,
                    ticket,
                    now,
                );
                (Ok(a), e)
            }
            Some(GroupKind::Consumer(_)) => (
                Err(ErrorCode::InconsistentGroupProtocol),
                Default::default(),
            ),
            None => (Err(ErrorCode::UnknownMemberId), Default::default()),
        },
    );
    let waiting = match answer {
        Err(code) => {
            coordinator.unpark(ticket);
            Waiting::Ready(error(code))
        }
        Ok(Answer::Now(r)) => {
            coordinator.unpark(ticket);
            Waiting::Ready(response(r))
        }
        Ok(Answer::Parked) => Waiting::Parked(waiter),
    };
    waiting.into_future(durable)
}

/// A SyncGroup answered now or parked.
enum Waiting {
    Ready(SyncGroupResponse),
    Parked(groups::Waiter),
}

impl Waiting {
    async fn into_future(self, durable: groups::Durable) -> SyncGroupResponse {
        // The assignment is persisted before anyone is told it.
        groups::durable(durable).await;
        match self {
            Waiting::Ready(r) => r,
            Waiting::Parked(waiter) => match groups::wait(waiter).await {
                Some(Reply::Sync(r)) => response(r),
                _ => error(ErrorCode::UnknownServerError),
            },
        }
    }
}
