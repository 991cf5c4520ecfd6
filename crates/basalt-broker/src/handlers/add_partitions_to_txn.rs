//! AddPartitionsToTxn (key 24), v0–5: adds partitions to a producer's open transaction (opening
//! one if needed) before it produces to them. v0–3 carry one transaction; v4+ (sent by brokers)
//! carry several, each of which may ask only to verify that its partitions are already in the
//! transaction (`verify_only`).
//!
//! A request naming an unknown partition adds nothing: that partition answers
//! UNKNOWN_TOPIC_OR_PARTITION and the others OPERATION_NOT_ATTEMPTED, as Kafka does. Internal
//! topics cannot be added.

use std::sync::Arc;

use basalt_protocol::ErrorCode;
use basalt_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnTopic,
};
use basalt_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResponse, AddPartitionsToTxnResult,
    AddPartitionsToTxnTopicResult,
};

use crate::Broker;
use crate::acl::{Operation, ResourceType, Session};
use crate::groups::{OFFSETS_TOPIC, is_internal};
use crate::txns::{Channel, fenced_for};

/// Highest version handled.
pub const MAX_VERSION: i16 = 5;

pub async fn handle(
    broker: Arc<Broker>,
    session: Session,
    req: AddPartitionsToTxnRequest,
    version: i16,
    conn: u64,
) -> AddPartitionsToTxnResponse {
    if version <= 3 {
        if let Err(code) = broker.txns().admit(
            &req.v3_and_below_transactional_id,
            Channel::Coordinator,
            conn,
            Some((
                req.v3_and_below_producer_id,
                req.v3_and_below_producer_epoch,
            )),
            broker.coordinates_txn(&req.v3_and_below_transactional_id),
        ) {
            return AddPartitionsToTxnResponse {
                results_by_topic_v3_and_below: all_failed(&req.v3_and_below_topics, code),
                ..AddPartitionsToTxnResponse::default()
            };
        }
        let results = add_one(
            &broker,
            &session,
            &req.v3_and_below_transactional_id,
            req.v3_and_below_producer_id,
            req.v3_and_below_producer_epoch,
            &req.v3_and_below_topics,
            false,
            version,
        )
        .await;
        return AddPartitionsToTxnResponse {
            results_by_topic_v3_and_below: results,
            ..AddPartitionsToTxnResponse::default()
        };
    }
    // v4+ is sent by brokers verifying a produce, not by clients.
    if !broker.authorize_cluster(&session, Operation::ClusterAction) {
        return AddPartitionsToTxnResponse {
            error_code: ErrorCode::ClusterAuthorizationFailed.into(),
            ..AddPartitionsToTxnResponse::default()
        };
    }
    let mut out = Vec::with_capacity(req.transactions.len());
    for t in &req.transactions {
        let topic_results = add_one(
            &broker,
            &session,
            &t.transactional_id,
            t.producer_id,
            t.producer_epoch,
            &t.topics,
            t.verify_only,
            version,
        )
        .await;
        out.push(AddPartitionsToTxnResult {
            transactional_id: t.transactional_id.clone(),
            topic_results,
            ..AddPartitionsToTxnResult::default()
        });
    }
    AddPartitionsToTxnResponse {
        results_by_transaction: out,
        ..AddPartitionsToTxnResponse::default()
    }
}

#[allow(clippy::too_many_arguments)]
async fn add_one(
    broker: &Arc<Broker>,
    session: &Session,
    id: &str,
    producer_id: i64,
    epoch: i16,
    topics: &[AddPartitionsToTxnTopic],
    verify_only: bool,
    version: i16,
) -> Vec<AddPartitionsToTxnTopicResult> {
    // Partitions refused before the coordinator is asked, with why.
    let mut refused = Vec::new();
    let mut partitions = Vec::new();
    // A verification comes from a partition leader, already authorized for CLUSTER_ACTION; it
    // may name a partition of `__consumer_offsets` (a group coordinator verifying a
    // TxnOffsetCommit).
    let txn_allowed = verify_only
        || broker.authorize(session, Operation::Write, ResourceType::TransactionalId, id);
    for t in topics {
        let writable = verify_only
            || broker.authorize(session, Operation::Write, ResourceType::Topic, &t.name);
        let topic = broker
            .topic(&t.name)
            .filter(|_| !is_internal(&t.name) || (verify_only && t.name == OFFSETS_TOPIC));
        for &p in &t.partitions {
            let exists = topic
                .as_ref()
                .is_some_and(|topic| (0..topic.meta.partitions).contains(&p));
            if !writable {
                refused.push(((t.name.clone(), p), ErrorCode::TopicAuthorizationFailed));
            } else if exists {
                partitions.push((t.name.clone(), p));
            } else {
                refused.push(((t.name.clone(), p), ErrorCode::UnknownTopicOrPartition));
            }
        }
    }
    let all = || {
        topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|&p| (t.name.clone(), p)))
    };
    let codes: Vec<ErrorCode> = if !txn_allowed {
        all()
            .map(|_| ErrorCode::TransactionalIdAuthorizationFailed)
            .collect()
    } else if !refused.is_empty() {
        all()
            .map(|p| {
                refused
                    .iter()
                    .find(|(r, _)| *r == p)
                    .map_or(ErrorCode::OperationNotAttempted, |(_, code)| *code)
            })
            .collect()
    } else if version >= 4 && !broker.coordinates_txn(id) {
        vec![ErrorCode::NotCoordinator; partitions.len()]
    } else if verify_only {
        partitions
            .iter()
            .map(|(t, p)| {
                broker
                    .txns()
                    .verify_here(broker, producer_id, epoch, t, *p)
                    .err()
                    .unwrap_or(ErrorCode::None)
            })
            .collect()
    } else {
        let code = broker
            .txns()
            .add(broker, id, producer_id, epoch, &partitions, None)
            .await
            .err()
            .map_or(ErrorCode::None, |c| fenced_for(c, version, 2));
        vec![code; partitions.len()]
    };
    let mut codes = codes.into_iter();
    topics
        .iter()
        .map(|t| AddPartitionsToTxnTopicResult {
            name: t.name.clone(),
            results_by_partition: t
                .partitions
                .iter()
                .map(|&p| AddPartitionsToTxnPartitionResult {
                    partition_index: p,
                    partition_error_code: codes.next().unwrap_or(ErrorCode::None).into(),
                    ..AddPartitionsToTxnPartitionResult::default()
                })
                .collect(),
            ..AddPartitionsToTxnTopicResult::default()
        })
        .collect()
}

fn all_failed(
    topics: &[AddPartitionsToTxnTopic],
    code: ErrorCode,
) -> Vec<AddPartitionsToTxnTopicResult> {
    topics
        .iter()
        .map(|t| AddPartitionsToTxnTopicResult {
            name: t.name.clone(),
            results_by_partition: t
                .partitions
                .iter()
                .map(|&p| AddPartitionsToTxnPartitionResult {
                    partition_index: p,
                    partition_error_code: code.into(),
                    ..AddPartitionsToTxnPartitionResult::default()
                })
                .collect(),
            ..AddPartitionsToTxnTopicResult::default()
        })
        .collect()
}
