//! ListTransactions (key 66), v0–2: the transactional ids this coordinator knows, filtered by
//! state, producer id, (v1) open longer than a duration, and (v2) an id matching a regular
//! expression. Unknown state names are returned in `unknown_state_filters` and match nothing.

use basalt_coordinator::txn::{TxnState, TxnState as S};
use basalt_protocol::ErrorCode;
use basalt_protocol::messages::list_transactions_request::ListTransactionsRequest;
use basalt_protocol::messages::list_transactions_response::{
    ListTransactionsResponse, TransactionState,
};

use crate::acl::{Operation, ResourceType, Session};
use crate::{Broker, now_ms};

/// Highest version handled.
pub const MAX_VERSION: i16 = 2;

pub fn handle(
    broker: &Broker,
    session: &Session,
    req: ListTransactionsRequest,
    version: i16,
) -> ListTransactionsResponse {
    let mut states = Vec::new();
    let mut unknown = Vec::new();
    for name in &req.state_filters {
        match TxnState::from_name(name) {
            Some(s) => states.push(s),
            None => unknown.push(name.clone()),
        }
    }
    let pattern = match req.transactional_id_pattern.as_deref() {
        Some(p) if version >= 2 && !p.is_empty() => {
            match regex::Regex::new(&format!("^(?:{p})$")) {
                Ok(r) => Some(r),
                Err(e) => {
                    return ListTransactionsResponse {
                        error_code: ErrorCode::InvalidRegularExpression.into(),
                        unknown_state_filters: vec![e.to_string()],
                        ..ListTransactionsResponse::default()
                    };
                }
            }
        }
        _ => None,
    };
    let now = now_ms();
    let min_duration = (version >= 1 && req.duration_filter >= 0).then_some(req.duration_filter);
    let matched = broker.txns().read(|txns| {
        txns.all()
            .into_iter()
            .filter(|t| {
                // Only unknown filters given: nothing can match them.
                let state_ok = if req.state_filters.is_empty() {
                    true
                } else {
                    states.contains(&t.state)
                };
                let pid_ok = req.producer_id_filters.is_empty()
                    || req.producer_id_filters.contains(&t.producer_id);
                let open = matches!(t.state, S::Ongoing | S::PrepareCommit | S::PrepareAbort);
                let duration_ok =
                    min_duration.is_none_or(|d| open && t.start_ms >= 0 && now - t.start_ms > d);
                let id_ok = pattern.as_ref().is_none_or(|r| r.is_match(&t.id));
                state_ok
                    && pid_ok
                    && duration_ok
                    && id_ok
                    && broker.authorize(
                        session,
                        Operation::Describe,
                        ResourceType::TransactionalId,
                        &t.id,
                    )
            })
            .map(|t| TransactionState {
                transactional_id: t.id.clone(),
                producer_id: t.producer_id,
                transaction_state: t.state.name().to_owned(),
                ..TransactionState::default()
            })
            .collect()
    });
    ListTransactionsResponse {
        unknown_state_filters: unknown,
        transaction_states: matched,
        ..ListTransactionsResponse::default()
    }
}
