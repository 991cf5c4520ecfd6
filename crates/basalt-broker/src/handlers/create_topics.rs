//! CreateTopics (key 19), v2–7: validated names, -1 defaults, manual assignments (on this node;
//! in a cluster, one node per partition), configs, and `validate_only`.

use std::collections::BTreeMap;

use basalt_protocol::ErrorCode;
use basalt_protocol::messages::create_topics_request::CreateTopicsRequest;
use basalt_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult, CreateTopicsResponse,
};

use crate::Broker;
use crate::acl::{Operation, ResourceType, Session};

pub fn handle(
    broker: &Broker,
    session: &Session,
    req: CreateTopicsRequest,
    version: i16,
) -> CreateTopicsResponse {
    let node_id = broker.config().node_id;
    let cluster_create = broker.authorize_cluster(session, Operation::Create);
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let mut result = CreatableTopicResult {
                name: t.name.clone(),
                num_partitions: -1,
                replication_factor: -1,
                ..CreatableTopicResult::default()
            };
            if !cluster_create
                && !broker.authorize(session, Operation::Create, ResourceType::Topic, &t.name)
            {
                result.error_code = ErrorCode::TopicAuthorizationFailed.into();
                result.error_message = Some(format!("not authorized to create {}", t.name));
                return result;
            }
            let mut partitions = t.num_partitions;
            let mut replication = t.replication_factor;
            let mut assignments = None;
            if !t.assignments.is_empty() {
                if partitions != -1 || replication != -1 {
                    result.error_code = ErrorCode::InvalidRequest.into();
                    result.error_message =
                        Some("give either assignments or partitions and replication".into());
                    return result;
                }
                if broker.cluster().is_some() {
                    assignments =
                        Some(t.assignments.iter().map(|a| a.broker_ids.clone()).collect());
                } else if !t.assignments.iter().all(|a| a.broker_ids == [node_id]) {
                    result.error_code = ErrorCode::InvalidReplicaAssignment.into();
                    result.error_message =
                        Some(format!("replicas can only be assigned to broker {node_id}"));
                    return result;
                }
                partitions = t.assignments.len() as i32;
                replication = t.assignments[0].broker_ids.len() as i16;
            }
            let configs: BTreeMap<String, String> = t
                .configs
                .into_iter()
                .filter_map(|c| c.value.map(|v| (c.name, v)))
                .collect();
            match broker.create_topic_assigned(
                &t.name,
                partitions,
                replication,
                assignments,
                configs,
                req.validate_only,
            ) {
                Ok(topic) => {
                    result.topic_id = topic.id;
                    result.num_partitions = topic.meta.partitions;
                    result.replication_factor = broker
                        .replication_factor(&topic.meta.name)
                        .unwrap_or(if replication == -1 {
                            broker.default_replication_factor()
                        } else {
                            replication
                        });
                    if version >= 5 {
                        result.configs = Some(
                            broker
                                .config()
                                .describe_topic_configs(&topic.meta.configs)
                                .into_iter()
                                .map(|c| CreatableTopicConfigs {
                                    name: c.name,
                                    value: Some(c.value),
                                    read_only: c.read_only,
                                    config_source: c.source,
                                    is_sensitive: false,
                                    ..CreatableTopicConfigs::default()
                                })
                                .collect(),
                        );
                    }
                }
                Err(e) => {
                    result.error_code = e.code.into();
                    result.error_message = Some(e.message);
                }
            }
            result
        })
        .collect();
    CreateTopicsResponse {
        topics,
        ..CreateTopicsResponse::default()
    }
}
