//! CreatePartitions (key 37), v0–3: grows topics, one result per requested topic.
//!
//! The new count must be larger than the current one (INVALID_PARTITIONS otherwise, since
//! partitions cannot be removed); manual assignments must name exactly one replica, this node,
//! per new partition (INVALID_REPLICA_ASSIGNMENT). A null or empty assignment list lets the
//! broker place the partitions. A topic named twice in one request gets INVALID_REQUEST, as in
//! Kafka. `validate_only` checks everything and changes nothing.

use std::collections::HashMap;

use basalt_protocol::ErrorCode;
use basalt_protocol::messages::create_partitions_request::CreatePartitionsRequest;
use basalt_protocol::messages::create_partitions_response::{
    CreatePartitionsResponse, CreatePartitionsTopicResult,
};

use crate::Broker;
use crate::acl::{Operation, ResourceType, Session};

pub fn handle(
    broker: &Broker,
    session: &Session,
    req: CreatePartitionsRequest,
    _version: i16,
) -> CreatePartitionsResponse {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for t in &req.topics {
        *seen.entry(t.name.clone()).or_default() += 1;
    }
    let results = req
        .topics
        .into_iter()
        .map(|t| {
            let mut result = CreatePartitionsTopicResult {
                name: t.name.clone(),
                ..CreatePartitionsTopicResult::default()
            };
            if !broker.authorize(session, Operation::Alter, ResourceType::Topic, &t.name) {
                result.error_code = ErrorCode::TopicAuthorizationFailed.into();
                return result;
            }
            if seen.get(&t.name).copied().unwrap_or(0) > 1 {
                result.error_code = ErrorCode::InvalidRequest.into();
                result.error_message = Some(format!("topic {} is named twice", t.name));
                return result;
            }
            let assignments: Option<Vec<Vec<i32>>> = t
                .assignments
                .filter(|a| !a.is_empty())
                .map(|a| a.into_iter().map(|a| a.broker_ids).collect());
            if let Err(e) = broker.create_partitions(
                &t.name,
                t.count,
                assignments.as_deref(),
                req.validate_only,
            ) {
                result.error_code = e.code.into();
                result.error_message = Some(e.message);
            }
            result
        })
        .collect();
    CreatePartitionsResponse {
        results,
        ..CreatePartitionsResponse::default()
    }
}
