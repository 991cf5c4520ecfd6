//! DescribeProducers (key 61), v0: the producers with state in each named partition: producer
//! id, epoch, last sequence and timestamp, and the first offset of the transaction each has open
//! there (-1 if none).

use basalt_protocol::ErrorCode;
use basalt_protocol::messages::describe_producers_request::DescribeProducersRequest;
use basalt_protocol::messages::describe_producers_response::{
    DescribeProducersResponse, PartitionResponse, ProducerState, TopicResponse,
};

use crate::Broker;
use crate::acl::{Operation, ResourceType, Session};

pub fn handle(
    broker: &Broker,
    session: &Session,
    req: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let authorized =
                broker.authorize(session, Operation::Read, ResourceType::Topic, &t.name);
            let topic = broker.topic(&t.name).filter(|_| authorized);
            let missing = if authorized {
                ErrorCode::UnknownTopicOrPartition
            } else {
                ErrorCode::TopicAuthorizationFailed
            };
            TopicResponse {
                partitions: t
                    .partition_indexes
                    .iter()
                    .map(|&p| {
                        let partition = topic.as_ref().and_then(|topic| {
                            usize::try_from(p)
                                .ok()
                                .and_then(|i| topic.partitions.get(i))
                        });
                        match partition {
                            None => PartitionResponse {
                                partition_index: p,
                                error_code: missing.into(),
                                error_message: authorized
                                    .then(|| format!("unknown partition {}-{p}", t.name)),
                                ..PartitionResponse::default()
                            },
                            Some(partition) => PartitionResponse {
                                partition_index: p,
                                active_producers: partition
                                    .producers()
                                    .into_iter()
                                    .map(|s| ProducerState {
                                        producer_id: s.producer_id,
                                        producer_epoch: i32::from(s.epoch),
                                        last_sequence: s.batches.last().map_or(-1, |b| b.last_seq),
                                        last_timestamp: s.last_timestamp,
                                        coordinator_epoch: if s.txn_first_offset >= 0 {
                                            0
                                        } else {
                                            -1
                                        },
                                        current_txn_start_offset: s.txn_first_offset,
                                        ..ProducerState::default()
                                    })
                                    .collect(),
                                ..PartitionResponse::default()
                            },
                        }
                    })
                    .collect(),
                name: t.name,
                ..TopicResponse::default()
            }
        })
        .collect();
    DescribeProducersResponse {
        topics,
        ..DescribeProducersResponse::default()
    }
}
