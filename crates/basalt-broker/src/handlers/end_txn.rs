//! EndTxn (key 26), v0–5: commits or aborts a producer's open transaction, answering once the
//! markers are in every partition of the transaction and its offsets are committed. v5 is
//! transaction version 2 (KIP-890): the epoch is bumped as the transaction ends, the response
//! carries the producer id and epoch to go on with, and a late EndTxn of an earlier transaction
//! is refused. Below v5, a late copy of an EndTxn read from a connection the client has since
//! abandoned is refused instead (`TC-5`).

use std::sync::Arc;

use basalt_protocol::ErrorCode;
use basalt_protocol::messages::end_txn_request::EndTxnRequest;
use basalt_protocol::messages::end_txn_response::EndTxnResponse;

use crate::Broker;
use crate::acl::{Operation, ResourceType, Session};
use crate::txns::{Channel, fenced_for};

/// Highest version handled.
pub const MAX_VERSION: i16 = 5;

pub async fn handle(
    broker: Arc<Broker>,
    session: Session,
    req: EndTxnRequest,
    version: i16,
    conn: u64,
) -> EndTxnResponse {
    let mut resp = EndTxnResponse {
        producer_id: -1,
        producer_epoch: -1,
        ..EndTxnResponse::default()
    };
    if !broker.authorize(
        &session,
        Operation::Write,
        ResourceType::TransactionalId,
        &req.transactional_id,
    ) {
        resp.error_code = ErrorCode::TransactionalIdAuthorizationFailed.into();
        return resp;
    }
    let txns = broker.txns();
    let result = match txns.admit(
        &req.transactional_id,
        Channel::Coordinator,
        conn,
        Some((req.producer_id, req.producer_epoch)),
        broker.coordinates_txn(&req.transactional_id),
    ) {
        Ok(()) => {
            txns.end(
                &broker,
                &req.transactional_id,
                req.producer_id,
                req.producer_epoch,
                req.committed,
                version >= 5,
            )
            .await
        }
        Err(code) => Err(code),
    };
    match result {
        Ok((pid, epoch)) => {
            resp.producer_id = pid;
            resp.producer_epoch = epoch;
        }
        Err(code) => resp.error_code = fenced_for(code, version, 2).into(),
    }
    resp
}
