//! InitProducerId (key 22), v0–5: producer ids for idempotent and transactional producers.
//!
//! Without a transactional id a fresh producer id is reserved (or, KIP-360, the epoch of the
//! given one bumped). With one, the transaction coordinator gives the id's producer id with a
//! bumped epoch, fencing any older producer of the same transactional id; if that producer left
//! a transaction open, it is aborted first and the request gets CONCURRENT_TRANSACTIONS (the
//! client retries). A `transaction.timeout.ms` above `transaction.max.timeout.ms` is refused with
//! INVALID_TRANSACTION_TIMEOUT.

use std::sync::Arc;

use basalt_protocol::ErrorCode;
use basalt_protocol::messages::init_producer_id_request::InitProducerIdRequest;
use basalt_protocol::messages::init_producer_id_response::InitProducerIdResponse;

use crate::Broker;
use crate::acl::{Operation, ResourceType, Session};
use crate::txns::{Channel, fenced_for};

pub async fn handle(
    broker: Arc<Broker>,
    session: Session,
    req: InitProducerIdRequest,
    version: i16,
    conn: u64,
) -> InitProducerIdResponse {
    let mut resp = InitProducerIdResponse {
        producer_id: -1,
        producer_epoch: -1,
        ..InitProducerIdResponse::default()
    };
    if let Some(id) = req.transactional_id.as_deref() {
        if !broker.authorize(
            &session,
            Operation::Write,
            ResourceType::TransactionalId,
            id,
        ) {
            resp.error_code = ErrorCode::TransactionalIdAuthorizationFailed.into();
            return resp;
        }
        let expected = (req.producer_id >= 0).then_some((req.producer_id, req.producer_epoch));
        let txns = broker.txns();
        let result = match txns.admit(
            id,
            Channel::Coordinator,
            conn,
            None,
            broker.coordinates_txn(id),
        ) {
            Ok(()) => {
                txns.init_producer_id(&broker, id, req.transaction_timeout_ms, expected)
                    .await
            }
            Err(code) => Err(code),
        };
        match result {
            Ok((pid, epoch)) => {
                resp.producer_id = pid;
                resp.producer_epoch = epoch;
            }
            Err(code) => resp.error_code = fenced_for(code, version, 4).into(),
        }
        return resp;
    }
    // KIP-679: IDEMPOTENT_WRITE on the cluster, or WRITE on some topic.
    if !broker.authorize_cluster(&session, Operation::IdempotentWrite)
        && !broker.authorize_any(&session, Operation::Write, ResourceType::Topic)
    {
        resp.error_code = ErrorCode::ClusterAuthorizationFailed.into();
        return resp;
    }
    // KIP-360: an idempotent producer may ask to bump the epoch of its current id.
    if req.producer_id >= 0 && req.producer_epoch >= 0 && req.producer_epoch < i16::MAX - 1 {
        resp.producer_id = req.producer_id;
        resp.producer_epoch = req.producer_epoch + 1;
        return resp;
    }
    match broker.allocate_producer_id() {
        Ok(id) => {
            resp.producer_id = id;
            resp.producer_epoch = 0;
        }
        Err(e) => {
            tracing::error!(error = %e, "could not reserve producer ids");
            resp.error_code = ErrorCode::KafkaStorageError.into();
        }
    }
    resp
}
