//! FindCoordinator (key 10), v0–6: on a single node, this node coordinates every group and
//! transactional id; from v4 keys come batched.
//!
//! Advertising it also matters beyond groups: librdkafka enables LZ4 only when FindCoordinator
//! is advertised. The group and transaction coordinators themselves come with their own APIs.

use basalt_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use basalt_protocol::messages::find_coordinator_response::{Coordinator, FindCoordinatorResponse};

use crate::Broker;

pub fn handle(
    broker: &Broker,
    req: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let config = broker.config();
    let (node_id, host, port) = (
        config.node_id,
        config.advertised_host.clone(),
        config.advertised_port,
    );
    if version >= 4 {
        return FindCoordinatorResponse {
            coordinators: req
                .coordinator_keys
                .into_iter()
                .map(|key| Coordinator {
                    key,
                    node_id,
                    host: host.clone(),
                    port,
                    ..Coordinator::default()
                })
                .collect(),
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
