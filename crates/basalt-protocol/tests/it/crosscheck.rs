//! Cross-checks against the independent `kafka-protocol` crate: our encoding of a populated
//! sample must decode there and re-encode to the same bytes, and its encoding of a value must
//! decode here and re-encode to the same bytes, at every version both support.

use basalt_protocol::Encoder;
use basalt_protocol::Message;
use basalt_protocol::messages::*;
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages as kp;
use kafka_protocol::protocol::{Decodable, Encodable, Message as KpMessage};

use crate::samples;

fn cross<Ours, Theirs>(sample: fn(i16) -> Ours) -> usize
where
    Ours: Message,
    Theirs: Encodable + Decodable + KpMessage + Default,
{
    let lo = Ours::VALID_VERSIONS.min.max(Theirs::VERSIONS.min);
    let hi = Ours::VALID_VERSIONS.max.min(Theirs::VERSIONS.max);
    let mut checked = 0;
    for version in lo..=hi {
        // Ours -> theirs -> bytes.
        let ours = sample(version);
        let mut buf = Encoder::new();
        ours.encode(&mut buf, version).expect("our sample encodes");
        let ours_bytes = buf.into_bytes().expect("in memory");
        let theirs = Theirs::decode(&mut ours_bytes.clone(), version).unwrap_or_else(|e| {
            panic!(
                "{} v{version}: kafka-protocol rejects ours: {e}",
                Ours::NAME
            )
        });
        let mut buf = BytesMut::new();
        theirs
            .encode(&mut buf, version)
            .expect("kafka-protocol re-encodes");
        assert_eq!(
            buf.freeze(),
            ours_bytes,
            "{} v{version}: sample bytes differ",
            Ours::NAME
        );

        // Theirs (default) -> ours -> bytes.
        let mut buf = BytesMut::new();
        if Theirs::default().encode(&mut buf, version).is_ok() {
            let theirs_bytes: Bytes = buf.freeze();
            let decoded = Ours::decode(&mut theirs_bytes.clone(), version)
                .expect("we decode kafka-protocol's default");
            let mut again = Encoder::new();
            decoded.encode(&mut again, version).expect("re-encode");
            assert_eq!(
                again.into_bytes().expect("in memory"),
                theirs_bytes,
                "{} v{version}: default bytes differ",
                Ours::NAME
            );
        }
        checked += 1;
    }
    checked
}

macro_rules! cross_all {
    ($($ours:ident, $theirs:ident, $sample:ident;)*) => {{
        let mut total = 0;
        $( total += cross::<$ours, kp::$theirs>(samples::$sample); )*
        total
    }};
}

#[test]
fn encodings_match_kafka_protocol() {
    let checked = cross_all! {
        ProduceRequest, ProduceRequest, produce_request__produce_request;
        ProduceResponse, ProduceResponse, produce_response__produce_response;
        FetchRequest, FetchRequest, fetch_request__fetch_request;
        FetchResponse, FetchResponse, fetch_response__fetch_response;
        MetadataRequest, MetadataRequest, metadata_request__metadata_request;
        MetadataResponse, MetadataResponse, metadata_response__metadata_response;
        ApiVersionsRequest, ApiVersionsRequest, api_versions_request__api_versions_request;
        ApiVersionsResponse, ApiVersionsResponse, api_versions_response__api_versions_response;
        CreateTopicsRequest, CreateTopicsRequest, create_topics_request__create_topics_request;
        CreateTopicsResponse, CreateTopicsResponse, create_topics_response__create_topics_response;
        ListOffsetsRequest, ListOffsetsRequest, list_offsets_request__list_offsets_request;
        ListOffsetsResponse, ListOffsetsResponse, list_offsets_response__list_offsets_response;
        JoinGroupRequest, JoinGroupRequest, join_group_request__join_group_request;
        JoinGroupResponse, JoinGroupResponse, join_group_response__join_group_response;
        OffsetCommitRequest, OffsetCommitRequest, offset_commit_request__offset_commit_request;
        OffsetCommitResponse, OffsetCommitResponse, offset_commit_response__offset_commit_response;
        OffsetFetchRequest, OffsetFetchRequest, offset_fetch_request__offset_fetch_request;
        OffsetFetchResponse, OffsetFetchResponse, offset_fetch_response__offset_fetch_response;
        FindCoordinatorRequest, FindCoordinatorRequest, find_coordinator_request__find_coordinator_request;
        SyncGroupRequest, SyncGroupRequest, sync_group_request__sync_group_request;
        InitProducerIdRequest, InitProducerIdRequest, init_producer_id_request__init_producer_id_request;
        DescribeConfigsResponse, DescribeConfigsResponse, describe_configs_response__describe_configs_response;
        ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatRequest, consumer_group_heartbeat_request__consumer_group_heartbeat_request;
        ConsumerGroupHeartbeatResponse, ConsumerGroupHeartbeatResponse, consumer_group_heartbeat_response__consumer_group_heartbeat_response;
        DescribeTopicPartitionsRequest, DescribeTopicPartitionsRequest, describe_topic_partitions_request__describe_topic_partitions_request;
        DescribeTopicPartitionsResponse, DescribeTopicPartitionsResponse, describe_topic_partitions_response__describe_topic_partitions_response;
        DescribeClientQuotasResponse, DescribeClientQuotasResponse, describe_client_quotas_response__describe_client_quotas_response;
        WriteTxnMarkersRequest, WriteTxnMarkersRequest, write_txn_markers_request__write_txn_markers_request;
    };
    assert!(checked > 100, "only {checked} versions checked");
}

#[test]
fn header_versions_match_kafka_protocol() {
    use basalt_protocol::{ApiKey, header_versions};
    let mut checked = 0;
    for &key in ApiKey::ALL {
        let Ok(theirs) = kp::ApiKey::try_from(key.key()) else {
            continue;
        };
        let range = theirs.valid_versions();
        let ours = key.valid_versions();
        for v in range.min.max(ours.min)..=range.max.min(ours.max) {
            let expected = (
                theirs.request_header_version(v),
                theirs.response_header_version(v),
            );
            assert_eq!(header_versions(key, v), expected, "{key} v{v}");
            checked += 1;
        }
    }
    assert!(checked > 200);
}
