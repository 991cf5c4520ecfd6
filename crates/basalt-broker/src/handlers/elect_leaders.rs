//! ElectLeaders (key 43), v0–2: moves partition leadership to the preferred replica (election
//! type 0; v0 has no type) or gives a leaderless partition a leader (type 1, unclean).
//!
//! Needs ALTER on the cluster (CLUSTER_AUTHORIZATION_FAILED for every partition, and at the top
//! from v1). An unknown election type gets INVALID_REQUEST at the top (v1+; for every partition
//! in v0). A preferred election makes the first replica leader when it is live and in the ISR
//! (PREFERRED_LEADER_NOT_AVAILABLE otherwise) and answers ELECTION_NOT_NEEDED when it leads
//! already; an unclean one answers ELECTION_NOT_NEEDED for a partition that has a leader, and
//! otherwise elects an in-sync live replica, or failing that any live replica (Kafka's explicit
//! unclean election, whatever `unclean.leader.election.enable` says). Each election is an
//! AlterPartition through the quorum, answered once this node's image shows it. A null
//! partition list elects over every partition and, as Kafka, leaves out the ones that needed
//! no election. Unknown topics or partitions get UNKNOWN_TOPIC_OR_PARTITION.

use basalt_protocol::ErrorCode;
use basalt_protocol::messages::elect_leaders_request::ElectLeadersRequest;
use basalt_protocol::messages::elect_leaders_response::{
    ElectLeadersResponse, PartitionResult, ReplicaElectionResult,
};

use crate::Broker;
use crate::acl::{Operation, Session};
use crate::cluster::Election;

/// Highest version handled.
pub const MAX_VERSION: i16 = 2;

pub fn handle(
    broker: &Broker,
    session: &Session,
    req: ElectLeadersRequest,
    version: i16,
) -> ElectLeadersResponse {
    let election = match (version, req.election_type) {
        (0, _) | (_, 0) => Some(Election::Preferred),
        (_, 1) => Some(Election::Unclean),
        _ => None,
    };
    let denied = !broker.authorize_cluster(session, Operation::Alter);
    let top = if denied {
        ErrorCode::ClusterAuthorizationFailed
    } else if election.is_none() {
        ErrorCode::InvalidRequest
    } else {
        ErrorCode::None
    };
    if top != ErrorCode::None && version >= 1 {
        return ElectLeadersResponse {
            error_code: top.into(),
            ..ElectLeadersResponse::default()
        };
    }
    let all = req.topic_partitions.is_none();
    let wanted: Vec<(String, Vec<i32>)> = match req.topic_partitions {
        Some(t) => t.into_iter().map(|t| (t.topic, t.partitions)).collect(),
        None => broker.image().map_or_else(
            || {
                broker
                    .topics()
                    .iter()
                    .map(|t| (t.meta.name.clone(), (0..t.meta.partitions).collect()))
                    .collect()
            },
            |image| {
                image
                    .topics
                    .values()
                    .map(|t| (t.name.clone(), (0..t.partitions.len() as i32).collect()))
                    .collect()
            },
        ),
    };
    let replica_election_results = wanted
        .into_iter()
        .filter_map(|(topic, partitions)| {
            let partition_result: Vec<PartitionResult> = partitions
                .into_iter()
                .filter_map(|index| {
                    let outcome = match election {
                        _ if top != ErrorCode::None => Err((top, None)),
                        Some(e) => broker
                            .elect_leader(&topic, index, e)
                            .map_err(|e| (e.code, Some(e.message))),
                        None => unreachable!("an unknown type is answered at the top"),
                    };
                    let mut result = PartitionResult {
                        partition_id: index,
                        ..PartitionResult::default()
                    };
                    if let Err((code, message)) = outcome {
                        if all && code == ErrorCode::ElectionNotNeeded {
                            return None;
                        }
                        result.error_code = code.into();
                        result.error_message = message;
                    }
                    Some(result)
                })
                .collect();
            (!all || !partition_result.is_empty()).then(|| ReplicaElectionResult {
                topic,
                partition_result,
                ..ReplicaElectionResult::default()
            })
        })
        .collect();
    ElectLeadersResponse {
        replica_election_results,
        ..ElectLeadersResponse::default()
    }
}
