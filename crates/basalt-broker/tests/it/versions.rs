//! Versions the codec decodes but the broker does not handle are answered over TCP with
//! UNSUPPORTED_VERSION at the request's version, and the connection stays usable; versions the
//! codec cannot decode close the connection.

use basalt_protocol::messages::describe_log_dirs_request::DescribeLogDirsRequest;
use basalt_protocol::messages::fetch_request::{FetchPartition, FetchRequest, FetchTopic};
use basalt_protocol::messages::init_producer_id_request::InitProducerIdRequest;
use basalt_protocol::messages::list_offsets_request::{
    ListOffsetsPartition, ListOffsetsRequest, ListOffsetsTopic,
};
use basalt_protocol::messages::metadata_request::{MetadataRequest, MetadataRequestTopic};
use basalt_protocol::messages::produce_request::{
    PartitionProduceData, ProduceRequest, TopicProduceData,
};
use basalt_protocol::{ApiKey, ErrorCode, RequestBody, ResponseBody};

use crate::wire::{Client, raw_frame, serve};
use crate::{create, open};

const UNSUPPORTED: i16 = 35;

fn metadata(topic: &str) -> RequestBody {
    RequestBody::Metadata(MetadataRequest {
        topics: Some(vec![MetadataRequestTopic {
            name: Some(topic.into()),
            ..MetadataRequestTopic::default()
        }]),
        allow_auto_topic_creation: false,
        ..MetadataRequest::default()
    })
}

fn produce(topic: &str, acks: i16) -> RequestBody {
    let mut b = basalt_record::BatchBuilder::new(0);
    b.push(basalt_broker::now_ms(), None, Some(b"v"), &[]);
    RequestBody::Produce(ProduceRequest {
        acks,
        timeout_ms: 5_000,
        topic_data: vec![TopicProduceData {
            name: topic.into(),
            partition_data: vec![PartitionProduceData {
                index: 0,
                records: Some(b.build()),
                ..PartitionProduceData::default()
            }],
            ..TopicProduceData::default()
        }],
        ..ProduceRequest::default()
    })
}

#[tokio::test]
async fn metadata_at_an_unhandled_version_gets_unsupported_version_and_the_connection_lives() {
    let (_dir, broker) = open(|_| {});
    create(&broker, "t", 1, &[]);
    let served = serve(&broker).await;
    let mut client = Client::connect(served.addr).await;
    let max = basalt_broker::handlers::SUPPORTED
        .iter()
        .find(|s| s.api_key == ApiKey::Metadata)
        .unwrap()
        .max;
    assert!(ApiKey::Metadata.valid_versions().contains(max + 1));

    match client.request(max + 1, metadata("t")).await {
        ResponseBody::Metadata(r) => {
            // v13 has a top-level error code, and the topic is mirrored with the error.
            assert_eq!(r.error_code, UNSUPPORTED);
            assert_eq!(r.topics.len(), 1);
            assert_eq!(r.topics[0].name.as_deref(), Some("t"));
            assert_eq!(r.topics[0].error_code, UNSUPPORTED);
            assert!(r.topics[0].partitions.is_empty());
        }
        other => panic!("{other:?}"),
    }
    // The same connection still answers a handled version.
    match client.request(max, metadata("t")).await {
        ResponseBody::Metadata(r) => {
            assert_eq!(r.error_code, 0);
            assert_eq!(r.topics[0].error_code, 0);
            assert_eq!(r.topics[0].partitions.len(), 1);
        }
        other => panic!("{other:?}"),
    }
    served.stop().await;
}

#[tokio::test]
async fn every_unhandled_decodable_version_is_answered_in_its_own_shape() {
    let (_dir, broker) = open(|_| {});
    create(&broker, "t", 1, &[]);
    let served = serve(&broker).await;
    let mut client = Client::connect(served.addr).await;

    // Produce: per partition, at v12 and v13 (v13 names topics by id).
    for version in [12, 13] {
        match client.request(version, produce("t", -1)).await {
            ResponseBody::Produce(r) => {
                let p = &r.responses[0].partition_responses[0];
                assert_eq!((p.index, p.error_code, p.base_offset), (0, UNSUPPORTED, -1));
                assert!(p.error_message.as_deref().unwrap().contains("v3-11"));
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(broker.partition("t", 0).unwrap().log.log_end_offset(), 0);
    // acks=0 gets no answer; the next request is answered in order.
    let _ = client.send_only(12, &produce("t", 0)).await;
    assert!(matches!(
        client.request(4, metadata("t")).await,
        ResponseBody::Metadata(_)
    ));

    // Fetch v13+: the error at the top, no partitions.
    let fetch = RequestBody::Fetch(FetchRequest {
        max_wait_ms: 0,
        topics: vec![FetchTopic {
            topic_id: broker.topic("t").unwrap().id,
            partitions: vec![FetchPartition {
                partition: 0,
                ..FetchPartition::default()
            }],
            ..FetchTopic::default()
        }],
        ..FetchRequest::default()
    });
    for version in 13..=18 {
        match client.request(version, fetch.clone()).await {
            ResponseBody::Fetch(r) => {
                assert_eq!(r.error_code, UNSUPPORTED, "v{version}");
                assert!(r.responses.is_empty());
            }
            other => panic!("{other:?}"),
        }
    }

    // ListOffsets v8+: per partition.
    let list = RequestBody::ListOffsets(ListOffsetsRequest {
        topics: vec![ListOffsetsTopic {
            name: "t".into(),
            partitions: vec![ListOffsetsPartition {
                partition_index: 0,
                timestamp: -1,
                ..ListOffsetsPartition::default()
            }],
            ..ListOffsetsTopic::default()
        }],
        ..ListOffsetsRequest::default()
    });
    for version in 8..=11 {
        match client.request(version, list.clone()).await {
            ResponseBody::ListOffsets(r) => {
                let p = &r.topics[0].partitions[0];
                assert_eq!(r.topics[0].name, "t");
                assert_eq!((p.error_code, p.offset, p.timestamp), (UNSUPPORTED, -1, -1));
            }
            other => panic!("{other:?}"),
        }
    }

    // InitProducerId v6 and DescribeLogDirs v5: top-level error codes.
    let init = RequestBody::InitProducerId(InitProducerIdRequest {
        transaction_timeout_ms: 60_000,
        ..InitProducerIdRequest::default()
    });
    match client.request(6, init).await {
        ResponseBody::InitProducerId(r) => {
            assert_eq!((r.error_code, r.producer_id), (UNSUPPORTED, -1));
        }
        other => panic!("{other:?}"),
    }
    let dirs = RequestBody::DescribeLogDirs(DescribeLogDirsRequest::default());
    match client.request(5, dirs).await {
        ResponseBody::DescribeLogDirs(r) => {
            assert_eq!(r.error_code, UNSUPPORTED);
            assert!(r.results.is_empty());
        }
        other => panic!("{other:?}"),
    }

    // Still usable, and nothing was appended on the way.
    let (_, r) = client.send(4, produce("t", -1)).await;
    match r {
        ResponseBody::Produce(r) => assert_eq!(r.responses[0].partition_responses[0].error_code, 0),
        other => panic!("{other:?}"),
    }
    assert_eq!(broker.partition("t", 0).unwrap().log.log_end_offset(), 1);
    served.stop().await;
}

#[tokio::test]
async fn a_version_outside_the_spec_closes_the_connection_but_not_the_broker() {
    let (_dir, broker) = open(|_| {});
    let served = serve(&broker).await;
    let spec_max = ApiKey::Metadata.valid_versions().max;
    let mut client = Client::connect(served.addr).await;
    // Metadata above the spec (a body the codec cannot read): the connection closes. The first
    // body byte ends the flexible header's tagged fields.
    client
        .send_raw(&raw_frame(ApiKey::Metadata, spec_max + 1, 9, &[0, 0, 0, 0]))
        .await;
    assert!(client.read_frame().await.is_none());
    // ApiVersions above the spec still gets its v0 answer (KIP-511); the byte is again the
    // header's empty tagged fields.
    let mut client = Client::connect(served.addr).await;
    client
        .send_raw(&raw_frame(ApiKey::ApiVersions, 99, 5, &[0]))
        .await;
    let frame = client.read_frame().await.unwrap();
    let (header, body) =
        basalt_protocol::decode_response_frame(ApiKey::ApiVersions, 0, frame).unwrap();
    assert_eq!(header.correlation_id, 5);
    match body {
        ResponseBody::ApiVersions(r) => {
            assert_eq!(r.error_code, i16::from(ErrorCode::UnsupportedVersion));
            assert!(!r.api_keys.is_empty());
        }
        other => panic!("{other:?}"),
    }
    // Other connections are unaffected.
    let mut client = Client::connect(served.addr).await;
    assert!(matches!(
        client.request(4, metadata("x")).await,
        ResponseBody::Metadata(_)
    ));
    served.stop().await;
}
