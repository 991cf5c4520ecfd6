//! DeleteGroups (key 42), v0–2: deletes groups that have no members, with their committed
//! offsets (NON_EMPTY_GROUP while members remain, GROUP_ID_NOT_FOUND for unknown groups). An
//! empty share group is forgotten; its share partitions' state stays with their leaders.

use basalt_protocol::ErrorCode;
use basalt_protocol::messages::delete_groups_request::DeleteGroupsRequest;
use basalt_protocol::messages::delete_groups_response::{
    DeletableGroupResult, DeleteGroupsResponse,
};

use crate::Broker;
use crate::acl::{Operation, ResourceType, Session};
use crate::groups;

/// Deletes now; the returned future waits for the tombstones' durability.
pub fn handle(
    broker: &Broker,
    session: &Session,
    req: DeleteGroupsRequest,
) -> impl Future<Output = DeleteGroupsResponse> + Send + 'static {
    let coordinator = broker.coordinator();
    let mut results = Vec::with_capacity(req.groups_names.len());
    let mut durable = Vec::new();
    for id in req.groups_names {
        let code = if !broker.authorize(session, Operation::Delete, ResourceType::Group, &id) {
            Err(ErrorCode::GroupAuthorizationFailed)
        } else if !broker.coordinates_group(&id) {
            Err(ErrorCode::NotCoordinator)
        } else {
            match broker.shares().delete_group(&id) {
                Ok(true) => Ok(Vec::new()),
                Ok(false) => coordinator.remove_group(broker, &id),
                Err(e) => Err(e.code),
            }
        };
        let code = match code {
            Ok(d) => {
                durable.extend(d);
                ErrorCode::None
            }
            Err(code) => code,
        };
        results.push(DeletableGroupResult {
            group_id: id,
            error_code: code.into(),
            ..DeletableGroupResult::default()
        });
    }
    async move {
        groups::durable(durable).await;
        DeleteGroupsResponse {
            results,
            ..DeleteGroupsResponse::default()
        }
    }
}
