//! ListPartitionReassignments (key 46), v0: the reassignments under way, from this node's
//! metadata image.
//!
//! Needs DESCRIBE on the cluster (a top-level CLUSTER_AUTHORIZATION_FAILED otherwise). A null
//! topic list lists every partition being moved; a named topic or partition that does not
//! exist, or is not moving, is left out, as in Kafka. Each entry carries the partition's
//! replicas (the target ones first, then those being removed) and Kafka's adding and removing
//! replicas. A single node has none.

use basalt_protocol::ErrorCode;
use basalt_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsRequest;
use basalt_protocol::messages::list_partition_reassignments_response::{
    ListPartitionReassignmentsResponse, OngoingPartitionReassignment, OngoingTopicReassignment,
};

use crate::Broker;
use crate::acl::{Operation, Session};

pub fn handle(
    broker: &Broker,
    session: &Session,
    req: ListPartitionReassignmentsRequest,
    _version: i16,
) -> ListPartitionReassignmentsResponse {
    if !broker.authorize_cluster(session, Operation::Describe) {
        return ListPartitionReassignmentsResponse {
            error_code: ErrorCode::ClusterAuthorizationFailed.into(),
            error_message: Some("not authorized to describe the cluster".into()),
            ..ListPartitionReassignmentsResponse::default()
        };
    }
    let Some(image) = broker.image() else {
        return ListPartitionReassignmentsResponse::default();
    };
    // (topic, the partitions asked for, or None for all).
    let wanted: Vec<(String, Option<Vec<i32>>)> = match req.topics {
        Some(topics) => topics
            .into_iter()
            .map(|t| (t.name, Some(t.partition_indexes)))
            .collect(),
        None => image.topics.keys().map(|n| (n.clone(), None)).collect(),
    };
    let topics = wanted
        .into_iter()
        .filter_map(|(name, indexes)| {
            let topic = image.topic(&name)?;
            let partitions: Vec<OngoingPartitionReassignment> = topic
                .partitions
                .iter()
                .enumerate()
                .filter(|(i, _)| indexes.as_ref().is_none_or(|ix| ix.contains(&(*i as i32))))
                .filter_map(|(i, p)| {
                    let r = p.reassignment.as_ref()?;
                    Some(OngoingPartitionReassignment {
                        partition_index: i as i32,
                        replicas: p.replicas.clone(),
                        adding_replicas: r.adding(),
                        removing_replicas: r.removing(),
                        ..OngoingPartitionReassignment::default()
                    })
                })
                .collect();
            (!partitions.is_empty()).then(|| OngoingTopicReassignment {
                name,
                partitions,
                ..OngoingTopicReassignment::default()
            })
        })
        .collect();
    ListPartitionReassignmentsResponse {
        topics,
        ..ListPartitionReassignmentsResponse::default()
    }
}
