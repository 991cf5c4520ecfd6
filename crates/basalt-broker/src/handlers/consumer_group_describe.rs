//! ConsumerGroupDescribe (key 69), v0: KIP-848 groups with their epochs, assignor, and each
//! member's subscription, current and target assignment.

use basalt_coordinator::assignor::Assignment;
use basalt_coordinator::{GroupKind, TopicLookup};
use basalt_protocol::messages::consumer_group_describe_request::ConsumerGroupDescribeRequest;
use basalt_protocol::messages::consumer_group_describe_response::{
    Assignment as WireAssignment, ConsumerGroupDescribeResponse, DescribedGroup, Member,
    TopicPartitions,
};
use basalt_protocol::{ErrorCode, Uuid};

use crate::Broker;
use crate::acl::{Operation, ResourceType, Session};
use crate::groups::BrokerTopics;

/// Highest version handled.
pub const MAX_VERSION: i16 = 0;

fn wire(a: &Assignment, lookup: &BrokerTopics<'_>) -> WireAssignment {
    WireAssignment {
        topic_partitions: a
            .iter()
            .map(|(id, ps)| TopicPartitions {
                topic_id: Uuid(*id),
                topic_name: lookup.topic_name(id).unwrap_or_default(),
                partitions: ps.iter().copied().collect(),
                ..TopicPartitions::default()
            })
            .collect(),
        ..WireAssignment::default()
    }
}

pub fn handle(
    broker: &Broker,
    session: &Session,
    req: ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
    let lookup = BrokerTopics(broker);
    let asked = req.include_authorized_operations;
    let groups = req
        .group_ids
        .into_iter()
        .map(|id| {
            if !broker.authorize(session, Operation::Describe, ResourceType::Group, &id) {
                return DescribedGroup {
                    error_code: ErrorCode::GroupAuthorizationFailed.into(),
                    group_id: id,
                    authorized_operations: i32::MIN,
                    ..DescribedGroup::default()
                };
            }
            broker
                .coordinator()
                .read(&id, |g| match g.map(|g| &g.kind) {
                    Some(GroupKind::Consumer(g)) => DescribedGroup {
                        group_id: id.clone(),
                        group_state: g.state_name().to_owned(),
                        group_epoch: g.group_epoch(),
                        assignment_epoch: g.assignment_epoch(),
                        assignor_name: g
                            .members()
                            .values()
                            .find_map(|m| m.server_assignor.clone())
                            .unwrap_or_else(|| "uniform".to_owned()),
                        members: g
                            .members()
                            .values()
                            .map(|m| Member {
                                member_id: m.member_id.clone(),
                                instance_id: m.instance_id.clone(),
                                rack_id: m.rack_id.clone(),
                                member_epoch: m.member_epoch,
                                client_id: m.client_id.clone(),
                                client_host: m.client_host.clone(),
                                subscribed_topic_names: m.subscribed_topic_names.clone(),
                                subscribed_topic_regex: m.subscribed_topic_regex.clone(),
                                assignment: wire(&m.assigned, &lookup),
                                target_assignment: wire(
                                    g.target(&m.member_id).unwrap_or(&Assignment::new()),
                                    &lookup,
                                ),
                                ..Member::default()
                            })
                            .collect(),
                        authorized_operations: if asked {
                            broker.authorized_operations(session, ResourceType::Group, &id)
                        } else {
                            i32::MIN
                        },
                        ..DescribedGroup::default()
                    },
                    Some(GroupKind::Classic(_)) => DescribedGroup {
                        error_code: ErrorCode::GroupIdNotFound.into(),
                        error_message: Some(format!("group {id} is not a consumer group")),
                        group_id: id.clone(),
                        authorized_operations: i32::MIN,
                        ..DescribedGroup::default()
                    },
                    None => DescribedGroup {
                        error_code: ErrorCode::GroupIdNotFound.into(),
                        error_message: Some(format!("group {id} not found")),
                        group_id: id.clone(),
                        authorized_operations: i32::MIN,
                        ..DescribedGroup::default()
                    },
                })
        })
        .collect();
    ConsumerGroupDescribeResponse {
        groups,
        ..ConsumerGroupDescribeResponse::default()
    }
}
