//! DescribeCluster (key 60), v0–2: on a single node, this node as the only broker and the
//! controller; in a cluster, every unfenced node of the metadata image at its endpoint for the
//! listener the request came in on, and the quorum leader as the controller.
//!
//! Only broker endpoints are described (`endpoint_type` 1). A request for controller endpoints
//! (2) gets MISMATCHED_ENDPOINT_TYPE and any other type UNSUPPORTED_ENDPOINT_TYPE, as a Kafka
//! broker answers. The authorized operations, when asked for, are those Kafka defines for the
//! cluster resource that the principal may perform (all of them without an authorizer).

use basalt_protocol::ErrorCode;
use basalt_protocol::messages::describe_cluster_request::DescribeClusterRequest;
use basalt_protocol::messages::describe_cluster_response::{
    DescribeClusterBroker, DescribeClusterResponse,
};

use basalt_server::ConnectionInfo;

use crate::Broker;
use crate::acl::{CLUSTER_NAME, Operation, ResourceType, Session};

/// `EndpointType.BROKER`.
const ENDPOINT_BROKER: i8 = 1;
/// `EndpointType.CONTROLLER`.
const ENDPOINT_CONTROLLER: i8 = 2;

pub fn handle(
    broker: &Broker,
    session: &Session,
    conn: &ConnectionInfo,
    req: DescribeClusterRequest,
    version: i16,
) -> DescribeClusterResponse {
    let config = broker.config();
    let mut resp = DescribeClusterResponse {
        endpoint_type: ENDPOINT_BROKER,
        cluster_id: config.cluster_id.clone(),
        controller_id: match broker.cluster() {
            Some(c) => c.quorum.leader().unwrap_or(-1),
            None => config.node_id,
        },
        cluster_authorized_operations: i32::MIN,
        ..DescribeClusterResponse::default()
    };
    if !broker.authorize_cluster(session, Operation::Describe) {
        resp.error_code = ErrorCode::ClusterAuthorizationFailed.into();
        resp.controller_id = -1;
        return resp;
    }
    if version >= 1 && req.endpoint_type != ENDPOINT_BROKER {
        let (code, message) = if req.endpoint_type == ENDPOINT_CONTROLLER {
            (
                ErrorCode::MismatchedEndpointType,
                "this is a broker endpoint; controller endpoints are not exposed",
            )
        } else {
            (
                ErrorCode::UnsupportedEndpointType,
                "unsupported endpoint type",
            )
        };
        resp.error_code = code.into();
        resp.error_message = Some(message.into());
        resp.controller_id = -1;
        return resp;
    }
    if let Some(image) = broker.image() {
        resp.brokers = crate::handlers::metadata::cluster_brokers(&image, conn.listener_name())
            .into_iter()
            .map(|b| DescribeClusterBroker {
                broker_id: b.node_id,
                host: b.host,
                port: b.port,
                rack: b.rack,
                is_fenced: false,
                ..DescribeClusterBroker::default()
            })
            .collect();
    } else {
        let (host, port) = broker.advertised_for(conn);
        resp.brokers = vec![DescribeClusterBroker {
            broker_id: config.node_id,
            host,
            port,
            rack: config.rack.clone(),
            is_fenced: false,
            ..DescribeClusterBroker::default()
        }];
    }
    if req.include_cluster_authorized_operations {
        resp.cluster_authorized_operations =
            broker.authorized_operations(session, ResourceType::Cluster, CLUSTER_NAME);
    }
    resp
}
