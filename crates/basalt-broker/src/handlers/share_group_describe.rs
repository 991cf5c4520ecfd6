//! ShareGroupDescribe (key 77), v1: the members, epochs and assignments of share groups this
//! node coordinates. A group that is not a share group here is GROUP_ID_NOT_FOUND; another
//! node's group is NOT_COORDINATOR. Authorization: DESCRIBE on each group.

use basalt_protocol::messages::share_group_describe_request::ShareGroupDescribeRequest;
use basalt_protocol::messages::share_group_describe_response::{
    Assignment, DescribedGroup, Member, ShareGroupDescribeResponse, TopicPartitions,
};
use basalt_protocol::{ErrorCode, Uuid};

use crate::Broker;
use crate::acl::{Operation, ResourceType, Session};

/// Highest version handled.
pub const MAX_VERSION: i16 = 1;

pub fn handle(
    broker: &Broker,
    session: &Session,
    req: ShareGroupDescribeRequest,
) -> ShareGroupDescribeResponse {
    let groups = req
        .group_ids
        .into_iter()
        .map(|id| {
            let failed = |code: ErrorCode, message: String| DescribedGroup {
                error_code: code.into(),
                error_message: Some(message),
                group_id: id.clone(),
                authorized_operations: i32::MIN,
                ..DescribedGroup::default()
            };
            if !broker.authorize(session, Operation::Describe, ResourceType::Group, &id) {
                return failed(
                    ErrorCode::GroupAuthorizationFailed,
                    format!("not authorized to describe group {id}"),
                );
            }
            if !broker.coordinates_group(&id) {
                return failed(
                    ErrorCode::NotCoordinator,
                    format!("this node does not coordinate group {id}"),
                );
            }
            let described = broker.shares().read_group(&id, |g| {
                g.map(|g| DescribedGroup {
                    group_id: id.clone(),
                    group_state: g.state_name().to_owned(),
                    group_epoch: g.epoch(),
                    assignment_epoch: g.epoch(),
                    assignor_name: "simple".to_owned(),
                    members: g
                        .members()
                        .values()
                        .map(|m| Member {
                            member_id: m.member_id.clone(),
                            rack_id: m.rack_id.clone(),
                            member_epoch: m.epoch,
                            client_id: m.client_id.clone(),
                            client_host: m.client_host.clone(),
                            subscribed_topic_names: m.subscribed.iter().cloned().collect(),
                            assignment: Assignment {
                                topic_partitions: m
                                    .assignment
                                    .iter()
                                    .map(|(topic, ps)| TopicPartitions {
                                        topic_id: Uuid(*topic),
                                        topic_name: broker
                                            .topic_by_id(&Uuid(*topic))
                                            .map(|t| t.meta.name.clone())
                                            .unwrap_or_default(),
                                        partitions: ps.iter().copied().collect(),
                                        ..TopicPartitions::default()
                                    })
                                    .collect(),
                                ..Assignment::default()
                            },
                            ..Member::default()
                        })
                        .collect(),
                    authorized_operations: if req.include_authorized_operations {
                        broker.authorized_operations(session, ResourceType::Group, &id)
                    } else {
                        i32::MIN
                    },
                    ..DescribedGroup::default()
                })
            });
            described.unwrap_or_else(|| {
                failed(
                    ErrorCode::GroupIdNotFound,
                    format!("group {id} is not a share group"),
                )
            })
        })
        .collect();
    ShareGroupDescribeResponse {
        groups,
        ..ShareGroupDescribeResponse::default()
    }
}
