//! DeleteGroups (key 42), v0–2: deletes groups that have no members, with their committed
//! offsets (NON_EMPTY_GROUP while members remain, GROUP_ID_NOT_FOUND for unknown groups).

use basalt_protocol::ErrorCode;
use basalt_protocol::messages::delete_groups_request::DeleteGroupsRequest;
use basalt_protocol::messages::delete_groups_response::{
    DeletableGroupResult, DeleteGroupsResponse,
};

use crate::Broker;
use crate::groups;

pub async fn handle(broker: &Broker, req: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let coordinator = broker.coordinator();
    let mut results = Vec::with_capacity(req.groups_names.len());
    let mut durable = Vec::new();
    for id in req.groups_names {
        let state = coordinator.read(&id, |g| g.map(|g| g.is_empty()));
        let code = match state {
            None => ErrorCode::GroupIdNotFound,
            Some(false) => ErrorCode::NonEmptyGroup,
            Some(true) => {
                durable.extend(coordinator.remove_group(broker, &id));
                ErrorCode::None
            }
        };
        results.push(DeletableGroupResult {
            group_id: id,
            error_code: code.into(),
            ..DeletableGroupResult::default()
        });
    }
    groups::durable(durable).await;
    DeleteGroupsResponse {
        results,
        ..DeleteGroupsResponse::default()
    }
}
