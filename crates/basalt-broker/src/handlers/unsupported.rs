//! Error responses for requests at a version the codec decodes but this broker does not handle
//! (Produce v12+, Fetch v13+, Metadata v13, ...): each carries UNSUPPORTED_VERSION where the
//! response of that version puts its errors, as Kafka's `AbstractRequest.getErrorResponse` does.
//!
//! A response with a top-level error code at the request's version gets it there; one whose
//! errors are per topic, partition or resource mirrors the request's topics, partitions or
//! resources, each with the error (Fetch below v13 does both). Only fields that exist at the
//! request's version are set, so the response always encodes.
//!
//! Requests the codec cannot decode at all (a version outside Kafka's spec) never get here: the
//! server hands them to [`basalt_server::Handler::unsupported_version`], which closes the
//! connection (ApiVersions excepted, KIP-511).

use basalt_protocol::messages::{
    alter_configs_response as alter, alter_partition_reassignments_response as reassign,
    create_partitions_response as create_partitions, create_topics_response as create_topics,
    delete_records_response as delete_records, delete_topics_response as delete_topics,
    describe_cluster_response as describe_cluster, describe_configs_response as describe_configs,
    describe_log_dirs_response as log_dirs, fetch_response as fetch,
    find_coordinator_response as find_coordinator, incremental_alter_configs_response as inc_alter,
    init_producer_id_response as init_pid, list_offsets_response as list_offsets,
    metadata_response as metadata, offset_for_leader_epoch_response as epoch,
    produce_response as produce,
};
use basalt_protocol::{ErrorCode, RequestBody, ResponseBody};
use basalt_server::Outcome;

/// The answer to `body`, decoded at `version`, which this broker does not handle: an error
/// response carrying UNSUPPORTED_VERSION (nothing for an `acks=0` produce), or `None` for an API
/// this module has no error response for (the caller closes the connection).
pub fn error_response(body: RequestBody, version: i16, message: &str) -> Option<Outcome> {
    let code: i16 = ErrorCode::UnsupportedVersion.into();
    let text = Some(message.to_owned());
    let response = match body {
        RequestBody::Produce(r) => {
            if r.acks == 0 {
                return Some(Outcome::NoResponse);
            }
            ResponseBody::Produce(produce::ProduceResponse {
                responses: r
                    .topic_data
                    .into_iter()
                    .map(|t| produce::TopicProduceResponse {
                        name: t.name,
                        topic_id: t.topic_id,
                        partition_responses: t
                            .partition_data
                            .into_iter()
                            .map(|p| produce::PartitionProduceResponse {
                                index: p.index,
                                error_code: code,
                                base_offset: -1,
                                error_message: (version >= 8).then(|| message.to_owned()),
                                ..produce::PartitionProduceResponse::default()
                            })
                            .collect(),
                        ..produce::TopicProduceResponse::default()
                    })
                    .collect(),
                ..produce::ProduceResponse::default()
            })
        }
        RequestBody::Fetch(r) => {
            // v13+ carry the error at the top only; older versions in every partition too
            // (and at the top from v7), as Kafka does.
            let responses = if version >= 13 {
                Vec::new()
            } else {
                r.topics
                    .into_iter()
                    .map(|t| fetch::FetchableTopicResponse {
                        topic: t.topic,
                        topic_id: t.topic_id,
                        partitions: t
                            .partitions
                            .into_iter()
                            .map(|p| fetch::PartitionData {
                                partition_index: p.partition,
                                error_code: code,
                                high_watermark: -1,
                                ..fetch::PartitionData::default()
                            })
                            .collect(),
                        ..fetch::FetchableTopicResponse::default()
                    })
                    .collect()
            };
            ResponseBody::Fetch(fetch::FetchResponse {
                error_code: if version >= 7 { code } else { 0 },
                responses,
                ..fetch::FetchResponse::default()
            })
        }
        RequestBody::ListOffsets(r) => {
            ResponseBody::ListOffsets(list_offsets::ListOffsetsResponse {
                topics: r
                    .topics
                    .into_iter()
                    .map(|t| list_offsets::ListOffsetsTopicResponse {
                        name: t.name,
                        partitions: t
                            .partitions
                            .into_iter()
                            .map(|p| list_offsets::ListOffsetsPartitionResponse {
                                partition_index: p.partition_index,
                                error_code: code,
                                timestamp: -1,
                                offset: -1,
                                ..list_offsets::ListOffsetsPartitionResponse::default()
                            })
                            .collect(),
                        ..list_offsets::ListOffsetsTopicResponse::default()
                    })
                    .collect(),
                ..list_offsets::ListOffsetsResponse::default()
            })
        }
        RequestBody::Metadata(r) => ResponseBody::Metadata(metadata::MetadataResponse {
            topics: r
                .topics
                .unwrap_or_default()
                .into_iter()
                .map(|t| metadata::MetadataResponseTopic {
                    error_code: code,
                    name: t.name,
                    topic_id: t.topic_id,
                    ..metadata::MetadataResponseTopic::default()
                })
                .collect(),
            error_code: if version >= 13 { code } else { 0 },
            ..metadata::MetadataResponse::default()
        }),
        RequestBody::FindCoordinator(r) => ResponseBody::FindCoordinator(if version >= 4 {
            find_coordinator::FindCoordinatorResponse {
                coordinators: r
                    .coordinator_keys
                    .into_iter()
                    .map(|key| find_coordinator::Coordinator {
                        key,
                        node_id: -1,
                        port: -1,
                        error_code: code,
                        error_message: text.clone(),
                        ..find_coordinator::Coordinator::default()
                    })
                    .collect(),
                ..find_coordinator::FindCoordinatorResponse::default()
            }
        } else {
            find_coordinator::FindCoordinatorResponse {
                error_code: code,
                error_message: text,
                node_id: -1,
                port: -1,
                ..find_coordinator::FindCoordinatorResponse::default()
            }
        }),
        RequestBody::CreateTopics(r) => {
            ResponseBody::CreateTopics(create_topics::CreateTopicsResponse {
                topics: r
                    .topics
                    .into_iter()
                    .map(|t| create_topics::CreatableTopicResult {
                        name: t.name,
                        error_code: code,
                        error_message: text.clone(),
                        num_partitions: -1,
                        replication_factor: -1,
                        ..create_topics::CreatableTopicResult::default()
                    })
                    .collect(),
                ..create_topics::CreateTopicsResponse::default()
            })
        }
        RequestBody::DeleteTopics(r) => {
            // v6 names topics by name or id; older versions by name only.
            let named: Vec<(Option<String>, basalt_protocol::Uuid)> = if version >= 6 {
                r.topics.into_iter().map(|t| (t.name, t.topic_id)).collect()
            } else {
                r.topic_names
                    .into_iter()
                    .map(|n| (Some(n), basalt_protocol::Uuid::ZERO))
                    .collect()
            };
            ResponseBody::DeleteTopics(delete_topics::DeleteTopicsResponse {
                responses: named
                    .into_iter()
                    .map(|(name, topic_id)| delete_topics::DeletableTopicResult {
                        name,
                        topic_id,
                        error_code: code,
                        error_message: text.clone(),
                        ..delete_topics::DeletableTopicResult::default()
                    })
                    .collect(),
                ..delete_topics::DeleteTopicsResponse::default()
            })
        }
        RequestBody::DeleteRecords(r) => {
            ResponseBody::DeleteRecords(delete_records::DeleteRecordsResponse {
                topics: r
                    .topics
                    .into_iter()
                    .map(|t| delete_records::DeleteRecordsTopicResult {
                        name: t.name,
                        partitions: t
                            .partitions
                            .into_iter()
                            .map(|p| delete_records::DeleteRecordsPartitionResult {
                                partition_index: p.partition_index,
                                low_watermark: -1,
                                error_code: code,
                                ..delete_records::DeleteRecordsPartitionResult::default()
                            })
                            .collect(),
                        ..delete_records::DeleteRecordsTopicResult::default()
                    })
                    .collect(),
                ..delete_records::DeleteRecordsResponse::default()
            })
        }
        RequestBody::InitProducerId(_) => {
            ResponseBody::InitProducerId(init_pid::InitProducerIdResponse {
                error_code: code,
                producer_id: -1,
                producer_epoch: -1,
                ..init_pid::InitProducerIdResponse::default()
            })
        }
        RequestBody::OffsetForLeaderEpoch(r) => {
            ResponseBody::OffsetForLeaderEpoch(epoch::OffsetForLeaderEpochResponse {
                topics: r
                    .topics
                    .into_iter()
                    .map(|t| epoch::OffsetForLeaderTopicResult {
                        topic: t.topic,
                        partitions: t
                            .partitions
                            .into_iter()
                            .map(|p| epoch::EpochEndOffset {
                                error_code: code,
                                partition: p.partition,
                                leader_epoch: -1,
                                end_offset: -1,
                                ..epoch::EpochEndOffset::default()
                            })
                            .collect(),
                        ..epoch::OffsetForLeaderTopicResult::default()
                    })
                    .collect(),
                ..epoch::OffsetForLeaderEpochResponse::default()
            })
        }
        RequestBody::DescribeConfigs(r) => {
            ResponseBody::DescribeConfigs(describe_configs::DescribeConfigsResponse {
                results: r
                    .resources
                    .into_iter()
                    .map(|res| describe_configs::DescribeConfigsResult {
                        error_code: code,
                        error_message: text.clone(),
                        resource_type: res.resource_type,
                        resource_name: res.resource_name,
                        ..describe_configs::DescribeConfigsResult::default()
                    })
                    .collect(),
                ..describe_configs::DescribeConfigsResponse::default()
            })
        }
        RequestBody::AlterConfigs(r) => ResponseBody::AlterConfigs(alter::AlterConfigsResponse {
            responses: r
                .resources
                .into_iter()
                .map(|res| alter::AlterConfigsResourceResponse {
                    error_code: code,
                    error_message: text.clone(),
                    resource_type: res.resource_type,
                    resource_name: res.resource_name,
                    ..alter::AlterConfigsResourceResponse::default()
                })
                .collect(),
            ..alter::AlterConfigsResponse::default()
        }),
        RequestBody::IncrementalAlterConfigs(r) => {
            ResponseBody::IncrementalAlterConfigs(inc_alter::IncrementalAlterConfigsResponse {
                responses: r
                    .resources
                    .into_iter()
                    .map(|res| inc_alter::AlterConfigsResourceResponse {
                        error_code: code,
                        error_message: text.clone(),
                        resource_type: res.resource_type,
                        resource_name: res.resource_name,
                        ..inc_alter::AlterConfigsResourceResponse::default()
                    })
                    .collect(),
                ..inc_alter::IncrementalAlterConfigsResponse::default()
            })
        }
        RequestBody::DescribeLogDirs(_) => {
            // The top-level error code exists from v3; before it, an empty result is all Kafka
            // can say.
            ResponseBody::DescribeLogDirs(log_dirs::DescribeLogDirsResponse {
                error_code: if version >= 3 { code } else { 0 },
                ..log_dirs::DescribeLogDirsResponse::default()
            })
        }
        RequestBody::CreatePartitions(r) => {
            ResponseBody::CreatePartitions(create_partitions::CreatePartitionsResponse {
                results: r
                    .topics
                    .into_iter()
                    .map(|t| create_partitions::CreatePartitionsTopicResult {
                        name: t.name,
                        error_code: code,
                        error_message: text.clone(),
                        ..create_partitions::CreatePartitionsTopicResult::default()
                    })
                    .collect(),
                ..create_partitions::CreatePartitionsResponse::default()
            })
        }
        RequestBody::DescribeCluster(_) => {
            ResponseBody::DescribeCluster(describe_cluster::DescribeClusterResponse {
                error_code: code,
                error_message: text,
                ..describe_cluster::DescribeClusterResponse::default()
            })
        }
        RequestBody::AlterPartitionReassignments(_) => ResponseBody::AlterPartitionReassignments(
            reassign::AlterPartitionReassignmentsResponse {
                error_code: code,
                error_message: text,
                ..reassign::AlterPartitionReassignmentsResponse::default()
            },
        ),
        _ => return None,
    };
    Some(Outcome::Respond(response))
}
