//! OffsetDelete (key 47), v0: removes a group's commits for partitions of topics the group is
//! not consuming (GROUP_SUBSCRIBED_TO_TOPIC otherwise). Needs DELETE on the group and, as in
//! Kafka, READ on each topic (TOPIC_AUTHORIZATION_FAILED for that topic's partitions, whose
//! commits stay).

use basalt_coordinator::{Effects, GroupKind, Record};
use basalt_protocol::ErrorCode;
use basalt_protocol::messages::offset_delete_request::OffsetDeleteRequest;
use basalt_protocol::messages::offset_delete_response::{
    OffsetDeleteResponse, OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};

use crate::Broker;
use crate::acl::{Operation, ResourceType, Session};
use crate::groups;

/// Deletes now; the returned future waits for the tombstones' durability.
pub fn handle(
    broker: &Broker,
    session: &Session,
    req: OffsetDeleteRequest,
) -> impl Future<Output = OffsetDeleteResponse> + Send + 'static {
    let coordinator = broker.coordinator();
    let readable: Vec<bool> = req
        .topics
        .iter()
        .map(|t| broker.authorize(session, Operation::Read, ResourceType::Topic, &t.name))
        .collect();
    let (result, durable) = if !broker.authorize(
        session,
        Operation::Delete,
        ResourceType::Group,
        &req.group_id,
    ) {
        (Err(ErrorCode::GroupAuthorizationFailed), Vec::new())
    } else if !broker.coordinates_group(&req.group_id) {
        (Err(ErrorCode::NotCoordinator), Vec::new())
    } else {
        coordinator.with_group(
            broker,
            &req.group_id,
            |_| None,
            |group, _now| {
                let mut effects = Effects::default();
                let Some(group) = group else {
                    return (Err(ErrorCode::GroupIdNotFound), effects);
                };
                let subscribed = match &group.kind {
                    GroupKind::Classic(g) if !g.members().is_empty() => {
                        g.subscribed_topics().unwrap_or_default()
                    }
                    GroupKind::Consumer(g) if !g.members().is_empty() => g.subscribed_topic_names(),
                    _ => Default::default(),
                };
                let topics = req
                    .topics
                    .iter()
                    .zip(&readable)
                    .map(|(t, readable)| {
                        let partitions = t
                            .partitions
                            .iter()
                            .map(|p| {
                                let code = if !readable {
                                    ErrorCode::TopicAuthorizationFailed
                                } else if subscribed.contains(&t.name) {
                                    ErrorCode::GroupSubscribedToTopic
                                } else {
                                    if group.offsets.remove(&t.name, p.partition_index) {
                                        effects.records.push(Record::offset_tombstone(
                                            &group.id,
                                            &t.name,
                                            p.partition_index,
                                        ));
                                    }
                                    ErrorCode::None
                                };
                                (p.partition_index, code)
                            })
                            .collect::<Vec<_>>();
                        (t.name.clone(), partitions)
                    })
                    .collect::<Vec<_>>();
                (Ok(topics), effects)
            },
        )
    };
    async move {
        groups::durable(durable).await;
        match result {
            Err(code) => OffsetDeleteResponse {
                error_code: code.into(),
                ..OffsetDeleteResponse::default()
            },
            Ok(topics) => OffsetDeleteResponse {
                topics: topics
                    .into_iter()
                    .map(|(name, ps)| OffsetDeleteResponseTopic {
                        name,
                        partitions: ps
                            .into_iter()
                            .map(|(p, c)| OffsetDeleteResponsePartition {
                                partition_index: p,
                                error_code: c.into(),
                            })
                            .collect(),
                    })
                    .collect(),
                ..OffsetDeleteResponse::default()
            },
        }
    }
}
