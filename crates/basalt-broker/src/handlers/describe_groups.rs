//! DescribeGroups (key 15), v0–6: state, protocol and members of groups. Member metadata and
//! assignments are included once a classic group is Stable, as Kafka does; members of consumer
//! groups are shown with their assignment encoded as a `ConsumerProtocolAssignment`, so tools
//! written for classic groups can read it. v6 answers GROUP_ID_NOT_FOUND for unknown groups
//! (older versions: state `Dead`).

use basalt_coordinator::classic::State;
use basalt_coordinator::{Group, GroupKind, TopicLookup};
use basalt_protocol::messages::consumer_protocol_assignment::{
    ConsumerProtocolAssignment, TopicPartition,
};
use basalt_protocol::messages::describe_groups_request::DescribeGroupsRequest;
use basalt_protocol::messages::describe_groups_response::{
    DescribeGroupsResponse, DescribedGroup, DescribedGroupMember,
};
use basalt_protocol::{Encoder, ErrorCode};
use bytes::{BufMut, Bytes};

use crate::Broker;
use crate::acl::{Operation, ResourceType, Session};
use crate::groups::BrokerTopics;

/// Highest version handled.
pub const MAX_VERSION: i16 = 6;

/// `authorized_operations` when not asked for.
const NOT_ASKED: i32 = i32::MIN;

/// A consumer-protocol assignment (version 0) of `partitions`, by topic name.
pub fn encode_assignment(partitions: Vec<(String, Vec<i32>)>) -> Bytes {
    let a = ConsumerProtocolAssignment {
        assigned_partitions: partitions
            .into_iter()
            .map(|(topic, partitions)| TopicPartition { topic, partitions })
            .collect(),
        user_data: None,
    };
    let mut buf = Encoder::new();
    buf.put_i16(0);
    if a.encode(&mut buf, 0).is_err() {
        return Bytes::new();
    }
    buf.into_bytes().unwrap_or_default()
}

fn describe(group: &Group, lookup: &BrokerTopics<'_>) -> DescribedGroup {
    match &group.kind {
        GroupKind::Classic(g) => {
            let stable = g.state() == State::Stable;
            let protocol = g.protocol_name().unwrap_or_default().to_owned();
            DescribedGroup {
                group_id: group.id.clone(),
                group_state: g.state().name().to_owned(),
                protocol_type: g.protocol_type().unwrap_or_default().to_owned(),
                protocol_data: if stable {
                    protocol.clone()
                } else {
                    String::new()
                },
                members: g
                    .members()
                    .values()
                    .map(|m| DescribedGroupMember {
                        member_id: m.member_id.clone(),
                        group_instance_id: m.group_instance_id.clone(),
                        client_id: m.client_id.clone(),
                        client_host: m.client_host.clone(),
                        member_metadata: if stable {
                            m.metadata(&protocol)
                        } else {
                            Bytes::new()
                        },
                        member_assignment: if stable {
                            m.assignment.clone()
                        } else {
                            Bytes::new()
                        },
                        ..DescribedGroupMember::default()
                    })
                    .collect(),
                authorized_operations: NOT_ASKED,
                ..DescribedGroup::default()
            }
        }
        GroupKind::Consumer(g) => DescribedGroup {
            group_id: group.id.clone(),
            group_state: g.state_name().to_owned(),
            protocol_type: "consumer".to_owned(),
            protocol_data: String::new(),
            members: g
                .members()
                .values()
                .map(|m| DescribedGroupMember {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    member_metadata: Bytes::new(),
                    member_assignment: encode_assignment(
                        m.assigned
                            .iter()
                            .filter_map(|(id, ps)| {
                                lookup
                                    .topic_name(id)
                                    .map(|n| (n, ps.iter().copied().collect()))
                            })
                            .collect(),
                    ),
                    ..DescribedGroupMember::default()
                })
                .collect(),
            authorized_operations: NOT_ASKED,
            ..DescribedGroup::default()
        },
    }
}

pub fn handle(
    broker: &Broker,
    session: &Session,
    req: DescribeGroupsRequest,
    version: i16,
) -> DescribeGroupsResponse {
    let lookup = BrokerTopics(broker);
    let groups = req
        .groups
        .iter()
        .cloned()
        .map(|id| {
            if !broker.authorize(session, Operation::Describe, ResourceType::Group, &id) {
                return DescribedGroup {
                    error_code: ErrorCode::GroupAuthorizationFailed.into(),
                    group_id: id,
                    authorized_operations: NOT_ASKED,
                    ..DescribedGroup::default()
                };
            }
            if !broker.coordinates_group(&id) {
                return DescribedGroup {
                    error_code: ErrorCode::NotCoordinator.into(),
                    group_id: id,
                    authorized_operations: NOT_ASKED,
                    ..DescribedGroup::default()
                };
            }
            let found = broker
                .coordinator()
                .read(&id, |g| g.map(|g| describe(g, &lookup)));
            match found {
                Some(mut d) => {
                    if version >= 3 && req.include_authorized_operations {
                        d.authorized_operations =
                            broker.authorized_operations(session, ResourceType::Group, &id);
                    }
                    d
                }
                None if version >= 6 => DescribedGroup {
                    error_code: ErrorCode::GroupIdNotFound.into(),
                    error_message: Some(format!("group {id} not found")),
                    group_id: id,
                    group_state: "Dead".to_owned(),
                    authorized_operations: NOT_ASKED,
                    ..DescribedGroup::default()
                },
                None => DescribedGroup {
                    group_id: id,
                    group_state: "Dead".to_owned(),
                    authorized_operations: NOT_ASKED,
                    ..DescribedGroup::default()
                },
            }
        })
        .collect();
    DescribeGroupsResponse {
        groups,
        ..DescribeGroupsResponse::default()
    }
}
