//! DeleteTopics (key 20), v1–6: by name, or (v6) by name or topic id.

use basalt_protocol::messages::delete_topics_request::DeleteTopicsRequest;
use basalt_protocol::messages::delete_topics_response::{
    DeletableTopicResult, DeleteTopicsResponse,
};
use basalt_protocol::{ErrorCode, Uuid};

use crate::Broker;
use crate::acl::{Operation, ResourceType, Session};

pub fn handle(
    broker: &Broker,
    session: &Session,
    req: DeleteTopicsRequest,
    version: i16,
) -> DeleteTopicsResponse {
    let wanted: Vec<(Option<String>, Uuid)> = if version >= 6 {
        req.topics
            .into_iter()
            .map(|t| (t.name, t.topic_id))
            .collect()
    } else {
        req.topic_names
            .into_iter()
            .map(|n| (Some(n), Uuid::ZERO))
            .collect()
    };
    let responses = wanted
        .into_iter()
        .map(|(name, id)| {
            let name = name.or_else(|| broker.topic_by_id(&id).map(|t| t.meta.name.clone()));
            let mut result = DeletableTopicResult {
                name: name.clone(),
                topic_id: id,
                ..DeletableTopicResult::default()
            };
            match name {
                None => result.error_code = ErrorCode::UnknownTopicId.into(),
                Some(name)
                    if !broker.authorize(
                        session,
                        Operation::Delete,
                        ResourceType::Topic,
                        &name,
                    ) =>
                {
                    result.error_code = ErrorCode::TopicAuthorizationFailed.into();
                }
                Some(name) => match broker.delete_topic(&name) {
                    Ok(topic_id) => result.topic_id = topic_id,
                    Err(e) => {
                        result.error_code = e.code.into();
                        result.error_message = Some(e.message);
                    }
                },
            }
            result
        })
        .collect();
    DeleteTopicsResponse {
        responses,
        ..DeleteTopicsResponse::default()
    }
}
