//! FindCoordinator (key 10), v0–6: on a single node, this node coordinates every group and
//! transactional id; from v4 keys come batched.
//!
//! Advertising it also matters beyond groups: librdkafka enables LZ4 only when FindCoordinator
//! is advertised. The group and transaction coordinators themselves come with their own APIs.

use basalt_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use basalt_protocol::messages::find_coordinator_response::{Coordinator, FindCoordinatorResponse};

use basalt_protocol::ErrorCode;
use basalt_server::ConnectionInfo;

use crate::Broker;
use crate::acl::{Operation, ResourceType, Session};

/// Why `session` may not look up the coordinator of `key` (DESCRIBE on the group or the
/// transactional id), if it may not.
fn denied(broker: &Broker, session: &Session, key_type: i8, key: &str) -> Option<ErrorCode> {
    let (resource_type, code) = if key_type == 1 {
        (
            ResourceType::TransactionalId,
            ErrorCode::TransactionalIdAuthorizationFailed,
        )
    } else {
        (ResourceType::Group, ErrorCode::GroupAuthorizationFailed)
    };
    (!broker.authorize(session, Operation::Describe, resource_type, key)).then_some(code)
}

pub fn handle(
    broker: &Broker,
    session: &Session,
    conn: &ConnectionInfo,
    req: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let config = broker.config();
    let node_id = config.node_id;
    let (host, port) = broker.advertised_for(conn);
    if version >= 4 {
        return FindCoordinatorResponse {
            coordinators: req
                .coordinator_keys
                .into_iter()
                .map(|key| match denied(broker, session, req.key_type, &key) {
                    Some(code) => Coordinator {
                        key,
                        node_id: -1,
                        port: -1,
                        error_code: code.into(),
                        ..Coordinator::default()
                    },
                    None => Coordinator {
                        key,
                        node_id,
                        host: host.clone(),
                        port,
                        ..Coordinator::default()
                    },
                })
                .collect(),
            ..FindCoordinatorResponse::default()
        };
    }
    if let Some(code) = denied(broker, session, req.key_type, &req.key) {
        return FindCoordinatorResponse {
            error_code: code.into(),
            node_id: -1,
            port: -1,
            ..FindCoordinatorResponse::default()
        };
    }
    FindCoordinatorResponse {
        node_id,
        host,
        port,
        ..FindCoordinatorResponse::default()
    }
}
