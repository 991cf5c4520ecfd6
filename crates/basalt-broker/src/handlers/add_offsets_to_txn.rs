//! AddOffsetsToTxn (key 25), v0–4: adds a group to a producer's open transaction, so that the
//! offsets it then sends with TxnOffsetCommit are committed with the transaction.

use std::sync::Arc;

use basalt_protocol::ErrorCode;
use basalt_protocol::messages::add_offsets_to_txn_request::AddOffsetsToTxnRequest;
use basalt_protocol::messages::add_offsets_to_txn_response::AddOffsetsToTxnResponse;

use crate::Broker;
use crate::acl::{Operation, ResourceType, Session};
use crate::txns::{Channel, fenced_for};

/// Highest version handled.
pub const MAX_VERSION: i16 = 4;

pub async fn handle(
    broker: Arc<Broker>,
    session: Session,
    req: AddOffsetsToTxnRequest,
    version: i16,
    conn: u64,
) -> AddOffsetsToTxnResponse {
    let admitted = broker.txns().admit(
        &req.transactional_id,
        Channel::Coordinator,
        conn,
        Some((req.producer_id, req.producer_epoch)),
        broker.coordinates_txn(&req.transactional_id),
    );
    let code = if !broker.authorize(
        &session,
        Operation::Write,
        ResourceType::TransactionalId,
        &req.transactional_id,
    ) {
        ErrorCode::TransactionalIdAuthorizationFailed
    } else if !broker.authorize(
        &session,
        Operation::Read,
        ResourceType::Group,
        &req.group_id,
    ) {
        ErrorCode::GroupAuthorizationFailed
    } else if req.group_id.is_empty() {
        ErrorCode::InvalidGroupId
    } else if let Err(code) = admitted {
        code
    } else {
        broker
            .txns()
            .add(
                &broker,
                &req.transactional_id,
                req.producer_id,
                req.producer_epoch,
                &[],
                Some(&req.group_id),
            )
            .await
            .err()
            .map_or(ErrorCode::None, |c| fenced_for(c, version, 2))
    };
    AddOffsetsToTxnResponse {
        error_code: code.into(),
        ..AddOffsetsToTxnResponse::default()
    }
}
