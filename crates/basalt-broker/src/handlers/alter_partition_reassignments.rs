//! AlterPartitionReassignments (key 45), v0–1: starts or cancels moving partitions to new
//! replicas, one result per requested partition. From v1 (KIP-860) a request may forbid
//! changing the replication factor: a target with another number of replicas then gets
//! INVALID_REPLICATION_FACTOR.
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
    version: i16,
) -> AlterPartitionReassignmentsResponse {
    let denied = !broker.authorize_cluster(session, Operation::Alter);
    let keep_factor = version >= 1 && !req.allow_replication_factor_change;
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
                    let current = current_factor(broker, &t.name, p.partition_index);
                    let outcome = if denied {
                        Err((ErrorCode::ClusterAuthorizationFailed, None))
                    } else if let (true, Some(target), Some(current)) =
                        (keep_factor, &p.replicas, current)
                        && target.len() != current
                    {
                        Err((
                            ErrorCode::InvalidReplicationFactor,
                            Some(format!(
                                "the target has {} replicas and the partition {current}; \
                                 the request does not allow changing the replication factor",
                                target.len()
                            )),
                        ))
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
        allow_replication_factor_change: !keep_factor,
        responses,
        ..AlterPartitionReassignmentsResponse::default()
    }
}

/// The number of replicas partition `index` of `topic` has (or moves to): one on a single
/// node; `None` for an unknown partition (the reassignment reports it).
fn current_factor(broker: &Broker, topic: &str, index: i32) -> Option<usize> {
    match broker.image() {
        None => broker.topic(topic).map(|_| 1),
        Some(image) => image
            .topic(topic)?
            .partitions
            .get(usize::try_from(index).ok()?)
            .map(|p| p.target_replicas().len()),
    }
}
