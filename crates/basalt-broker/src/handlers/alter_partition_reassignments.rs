//! AlterPartitionReassignments (key 45), v0: starts or cancels moving partitions to new
//! replicas, one result per requested partition.
//!
//! Needs ALTER on the cluster (CLUSTER_AUTHORIZATION_FAILED, at the top and for every
//! partition, otherwise). Each partition's target (or `null`, a cancel) is proposed to the
//! metadata quorum and answered once this node's image shows the reassignment started,
//! finished at once (the target was already in sync) or cancelled; the move itself goes on
//! after the answer, as in Kafka: ListPartitionReassignments shows it until it is done. A
//! target may change the replication factor. A cancel of a partition that is not moving gets
//! NO_REASSIGNMENT_IN_PROGRESS; a target naming an unregistered or repeated node,
//! INVALID_REPLICA_ASSIGNMENT (on a single node, any target but this node alone).

use basalt_protocol::ErrorCode;
use basalt_protocol::messages::alter_partition_reassignments_request::AlterPartitionReassignmentsRequest;
use basalt_protocol::messages::alter_partition_reassignments_response::{
    AlterPartitionReassignmentsResponse, ReassignablePartitionResponse, ReassignableTopicResponse,
};

use crate::Broker;
use crate::acl::{Operation, Session};

pub fn handle(
    broker: &Broker,
    session: &Session,
    req: AlterPartitionReassignmentsRequest,
    _version: i16,
) -> AlterPartitionReassignmentsResponse {
    let denied = !broker.authorize_cluster(session, Operation::Alter);
    let responses = req
        .topics
        .into_iter()
        .map(|t| ReassignableTopicResponse {
            partitions: t
                .partitions
                .into_iter()
                .map(|p| {
                    let mut result = ReassignablePartitionResponse {
                        partition_index: p.partition_index,
                        ..ReassignablePartitionResponse::default()
                    };
                    let outcome = if denied {
                        Err((ErrorCode::ClusterAuthorizationFailed, None))
                    } else {
                        broker
                            .reassign_partition(&t.name, p.partition_index, p.replicas)
                            .map_err(|e| (e.code, Some(e.message)))
                    };
                    if let Err((code, message)) = outcome {
                        result.error_code = code.into();
                        result.error_message = message;
                    }
                    result
                })
                .collect(),
            name: t.name,
            ..ReassignableTopicResponse::default()
        })
        .collect();
    AlterPartitionReassignmentsResponse {
        error_code: if denied {
            ErrorCode::ClusterAuthorizationFailed.into()
        } else {
            ErrorCode::None.into()
        },
        responses,
        ..AlterPartitionReassignmentsResponse::default()
    }
}
