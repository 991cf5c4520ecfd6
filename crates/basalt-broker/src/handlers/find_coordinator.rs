//! FindCoordinator (key 10), v0–6: on a single node, this node coordinates every group and
//! transactional id; in a cluster, the coordinator of a key is the leader of the partition of
//! `__consumer_offsets` (groups) or `__transaction_state` (transactional ids) the key hashes to,
//! and the topic is created on first use. From v4 keys come batched.
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

/// The coordinator of `key`: node id, host and port, or why it cannot be named.
fn coordinator_of(
    broker: &Broker,
    conn: &ConnectionInfo,
    key_type: i8,
    key: &str,
) -> Result<(i32, String, i32), ErrorCode> {
    let Some(cluster) = broker.cluster() else {
        let (host, port) = broker.advertised_for(conn);
        return Ok((broker.config().node_id, host, port));
    };
    let topic = if key_type == 1 {
        broker.txns().topic(broker)
    } else {
        broker.coordinator().offsets_topic(broker)
    }
    .map_err(|_| ErrorCode::CoordinatorNotAvailable)?;
    let p = crate::groups::partition_for(key, topic.meta.partitions);
    let leader = usize::try_from(p)
        .ok()
        .and_then(|i| topic.leaders.get(i).copied())
        .filter(|l| *l >= 0)
        .ok_or(ErrorCode::CoordinatorNotAvailable)?;
    let image = cluster.quorum.image();
    let endpoint = image
        .nodes
        .get(&leader)
        .filter(|n| !n.fenced)
        .and_then(|n| n.endpoints.iter().find(|e| e.name == conn.listener_name()))
        .ok_or(ErrorCode::CoordinatorNotAvailable)?;
    Ok((leader, endpoint.host.clone(), i32::from(endpoint.port)))
}

pub fn handle(
    broker: &Broker,
    session: &Session,
    conn: &ConnectionInfo,
    req: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
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
                    None => match coordinator_of(broker, conn, req.key_type, &key) {
                        Ok((node_id, host, port)) => Coordinator {
                            key,
                            node_id,
                            host,
                            port,
                            ..Coordinator::default()
                        },
                        Err(code) => Coordinator {
                            key,
                            node_id: -1,
                            port: -1,
                            error_code: code.into(),
                            ..Coordinator::default()
                        },
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
    match coordinator_of(broker, conn, req.key_type, &req.key) {
        Ok((node_id, host, port)) => FindCoordinatorResponse {
            node_id,
            host,
            port,
            ..FindCoordinatorResponse::default()
        },
        Err(code) => FindCoordinatorResponse {
            error_code: code.into(),
            node_id: -1,
            port: -1,
            ..FindCoordinatorResponse::default()
        },
    }
}
