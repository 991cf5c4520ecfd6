//! InitProducerId (key 22), v0–5: producer ids for idempotent producers.
//!
//! Transactional ids need the transaction coordinator, which this broker does not have yet: such
//! requests get COORDINATOR_NOT_AVAILABLE.

use basalt_protocol::ErrorCode;
use basalt_protocol::messages::init_producer_id_request::InitProducerIdRequest;
use basalt_protocol::messages::init_producer_id_response::InitProducerIdResponse;

use crate::Broker;

pub fn handle(broker: &Broker, req: InitProducerIdRequest) -> InitProducerIdResponse {
    let mut resp = InitProducerIdResponse {
        producer_id: -1,
        producer_epoch: -1,
        ..InitProducerIdResponse::default()
    };
    if req.transactional_id.is_some() {
        resp.error_code = ErrorCode::CoordinatorNotAvailable.into();
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
