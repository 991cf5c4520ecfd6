//! DescribeTransactions (key 65), v0: the state of each named transactional id: its state,
//! timeout, start time, producer id and epoch, and the partitions of its open transaction.
//! Unknown ids answer TRANSACTIONAL_ID_NOT_FOUND.

use std::collections::BTreeMap;

use basalt_protocol::ErrorCode;
use basalt_protocol::messages::describe_transactions_request::DescribeTransactionsRequest;
use basalt_protocol::messages::describe_transactions_response::{
    DescribeTransactionsResponse, TopicData, TransactionState,
};

use crate::Broker;
use crate::acl::{Operation, ResourceType, Session};

pub fn handle(
    broker: &Broker,
    session: &Session,
    req: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let states = broker.txns().read(|txns| {
        req.transactional_ids
            .iter()
            .map(|id| match txns.get(id) {
                _ if !broker.authorize(
                    session,
                    Operation::Describe,
                    ResourceType::TransactionalId,
                    id,
                ) =>
                {
                    TransactionState {
                        error_code: ErrorCode::TransactionalIdAuthorizationFailed.into(),
                        transactional_id: id.clone(),
                        producer_id: -1,
                        producer_epoch: -1,
                        transaction_start_time_ms: -1,
                        ..TransactionState::default()
                    }
                }
                None => TransactionState {
                    error_code: ErrorCode::TransactionalIdNotFound.into(),
                    transactional_id: id.clone(),
                    transaction_state: String::new(),
                    producer_id: -1,
                    producer_epoch: -1,
                    transaction_start_time_ms: -1,
                    ..TransactionState::default()
                },
                Some(t) => {
                    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
                    for (topic, p) in &t.partitions {
                        topics.entry(topic).or_default().push(*p);
                    }
                    // The group offsets partitions are part of the transaction too, as Kafka
                    // reports them.
                    let offsets_partitions = broker.config().offsets_topic_num_partitions;
                    for g in t.groups.keys() {
                        topics
                            .entry(crate::groups::OFFSETS_TOPIC)
                            .or_default()
                            .push(crate::groups::partition_for(g, offsets_partitions));
                    }
                    TransactionState {
                        error_code: 0,
                        transactional_id: t.id.clone(),
                        transaction_state: t.state.name().to_owned(),
                        transaction_timeout_ms: t.timeout_ms,
                        transaction_start_time_ms: t.start_ms,
                        producer_id: t.producer_id,
                        producer_epoch: t.producer_epoch,
                        topics: topics
                            .into_iter()
                            .map(|(topic, mut partitions)| {
                                partitions.sort_unstable();
                                partitions.dedup();
                                TopicData {
                                    topic: topic.to_owned(),
                                    partitions,
                                    ..TopicData::default()
                                }
                            })
                            .collect(),
                        ..TransactionState::default()
                    }
                }
            })
            .collect()
    });
    DescribeTransactionsResponse {
        transaction_states: states,
        ..DescribeTransactionsResponse::default()
    }
}
