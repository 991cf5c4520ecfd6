//! ListGroups (key 16), v0–5: every group on this coordinator with its protocol type; v4+
//! filters by state (case-insensitive), v5+ by type (`classic`, `consumer`, `share`).

use basalt_coordinator::type_name;
use basalt_protocol::messages::list_groups_request::ListGroupsRequest;
use basalt_protocol::messages::list_groups_response::{ListGroupsResponse, ListedGroup};

use crate::Broker;
use crate::acl::{Operation, ResourceType, Session};

/// Highest version handled.
pub const MAX_VERSION: i16 = 5;

pub fn handle(broker: &Broker, session: &Session, req: ListGroupsRequest) -> ListGroupsResponse {
    let states: Vec<String> = req.states_filter.iter().map(|s| s.to_lowercase()).collect();
    let types: Vec<String> = req.types_filter.iter().map(|s| s.to_lowercase()).collect();
    // DESCRIBE on the cluster lists every group; otherwise those the session may DESCRIBE.
    let all = broker.authorize_cluster(session, Operation::Describe);
    let mut groups = broker.coordinator().for_each(|g| {
        if !all && !broker.authorize(session, Operation::Describe, ResourceType::Group, &g.id) {
            return None;
        }
        let state = g.state_name();
        let kind = type_name(&g.kind);
        if !states.is_empty() && !states.contains(&state.to_lowercase()) {
            return None;
        }
        if !types.is_empty() && !types.contains(&kind.to_owned()) {
            return None;
        }
        Some(ListedGroup {
            group_id: g.id.clone(),
            protocol_type: g.protocol_type(),
            group_state: state.to_owned(),
            group_type: kind.to_owned(),
            ..ListedGroup::default()
        })
    });
    let known: std::collections::BTreeSet<String> =
        groups.iter().map(|g| g.group_id.clone()).collect();
    groups.extend(broker.shares().for_each_group(|g| {
        if known.contains(g.id())
            || !all && !broker.authorize(session, Operation::Describe, ResourceType::Group, g.id())
        {
            return None;
        }
        let state = g.state_name();
        if !states.is_empty() && !states.contains(&state.to_lowercase()) {
            return None;
        }
        if !types.is_empty() && !types.iter().any(|t| t == "share") {
            return None;
        }
        Some(ListedGroup {
            group_id: g.id().to_owned(),
            protocol_type: "share".to_owned(),
            group_state: state.to_owned(),
            group_type: "share".to_owned(),
            ..ListedGroup::default()
        })
    }));
    ListGroupsResponse {
        groups,
        ..ListGroupsResponse::default()
    }
}
