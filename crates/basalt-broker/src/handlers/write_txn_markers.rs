//! WriteTxnMarkers (key 27), v1–2: sent by a transaction coordinator on another node to end a
//! transaction on the partitions this node leads. Each marker is written (or, on a partition
//! of `__consumer_offsets`, commits or drops the offsets the producer staged there) and is
//! answered once durable and held by the ISR, as `txns::write_markers` does for the
//! coordinator's own partitions. Needs CLUSTER_ACTION on the cluster, as in Kafka.

use basalt_protocol::ErrorCode;
use basalt_protocol::messages::write_txn_markers_request::WriteTxnMarkersRequest;
use basalt_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
    WriteTxnMarkersResponse,
};

use crate::Broker;
use crate::acl::{Operation, Session};
use crate::txns::write_markers;

/// Highest version handled.
pub const MAX_VERSION: i16 = 2;

pub async fn handle(
    broker: &Broker,
    session: &Session,
    req: WriteTxnMarkersRequest,
) -> WriteTxnMarkersResponse {
    let allowed = broker.authorize_cluster(session, Operation::ClusterAction);
    let mut markers = Vec::with_capacity(req.markers.len());
    for m in req.markers {
        let partitions: Vec<(String, i32)> = m
            .topics
            .iter()
            .flat_map(|t| t.partition_indexes.iter().map(|&p| (t.name.clone(), p)))
            .collect();
        let codes = if allowed {
            write_markers(
                broker,
                m.producer_id,
                m.producer_epoch,
                m.transaction_result,
                &partitions,
            )
            .await
        } else {
            vec![ErrorCode::ClusterAuthorizationFailed; partitions.len()]
        };
        let mut codes = codes.into_iter();
        markers.push(WritableTxnMarkerResult {
            producer_id: m.producer_id,
            topics: m
                .topics
                .iter()
                .map(|t| WritableTxnMarkerTopicResult {
                    name: t.name.clone(),
                    partitions: t
                        .partition_indexes
                        .iter()
                        .map(|&p| WritableTxnMarkerPartitionResult {
                            partition_index: p,
                            error_code: codes
                                .next()
                                .unwrap_or(ErrorCode::UnknownServerError)
                                .into(),
                            ..WritableTxnMarkerPartitionResult::default()
                        })
                        .collect(),
                    ..WritableTxnMarkerTopicResult::default()
                })
                .collect(),
            ..WritableTxnMarkerResult::default()
        });
    }
    WriteTxnMarkersResponse {
        markers,
        ..WriteTxnMarkersResponse::default()
    }
}
