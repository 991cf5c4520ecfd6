//! Byte-exact encodings worked out by hand from the protocol definition.

use basalt_protocol::messages::api_versions_response::ApiVersion;
use basalt_protocol::messages::metadata_request::MetadataRequestTopic;
use basalt_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use basalt_protocol::messages::{
    ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, ProduceRequest,
};
use basalt_protocol::{
    ApiKey, RequestBody, RequestHeader, ResponseBody, decode_request_frame, encode_request_frame,
    encode_response,
};

fn header(key: ApiKey, version: i16, correlation_id: i32, client: Option<&str>) -> RequestHeader {
    RequestHeader {
        request_api_key: key.key(),
        request_api_version: version,
        correlation_id,
        client_id: client.map(str::to_string),
        unknown_tagged_fields: Vec::new(),
    }
}

fn check_request(header: RequestHeader, body: RequestBody, expected_body: &[u8]) {
    let frame = encode_request_frame(&header, &body).expect("encodes");
    assert_eq!(&frame[4..], expected_body, "{:?}", body.api_key());
    assert_eq!(&frame[..4], &(expected_body.len() as i32).to_be_bytes());
    let (h, b) = decode_request_frame(frame.slice(4..)).expect("decodes");
    assert_eq!(h, header);
    assert_eq!(b, body);
}

#[test]
fn api_versions_v3_request() {
    let body = ApiVersionsRequest {
        client_software_name: "basalt".into(),
        client_software_version: "1.0".into(),
        ..Default::default()
    };
    #[rustfmt::skip]
    let expected = [
        0, 18, 0, 3, 0, 0, 0, 1, 0, 1, b'c', 0, // header v2: key, version, id, "c", no tags
        7, b'b', b'a', b's', b'a', b'l', b't', // compact string
        4, b'1', b'.', b'0',
        0, // no tagged fields
    ];
    check_request(
        header(ApiKey::ApiVersions, 3, 1, Some("c")),
        body.into(),
        &expected,
    );
}

#[test]
fn api_versions_v0_request_is_empty() {
    let expected = [0, 18, 0, 0, 0, 0, 0, 9, 0xff, 0xff];
    check_request(
        header(ApiKey::ApiVersions, 0, 9, None),
        ApiVersionsRequest::default().into(),
        &expected,
    );
}

#[test]
fn metadata_v0_request() {
    let body = MetadataRequest {
        topics: Some(vec![MetadataRequestTopic {
            name: Some("a".into()),
            ..Default::default()
        }]),
        ..Default::default()
    };
    let expected = [0, 3, 0, 0, 0, 0, 0, 2, 0xff, 0xff, 0, 0, 0, 1, 0, 1, b'a'];
    check_request(header(ApiKey::Metadata, 0, 2, None), body.into(), &expected);
}

#[test]
fn metadata_v12_request_all_topics() {
    // topics null (compact 0), allow auto creation true, include topic authorized ops false.
    let body = MetadataRequest {
        topics: None,
        allow_auto_topic_creation: true,
        ..Default::default()
    };
    let expected = [0, 3, 0, 12, 0, 0, 0, 3, 0xff, 0xff, 0, 0, 1, 0, 0];
    check_request(
        header(ApiKey::Metadata, 12, 3, None),
        body.into(),
        &expected,
    );
}

#[test]
fn produce_v3_request() {
    let body = ProduceRequest {
        transactional_id: None,
        acks: 1,
        timeout_ms: 1000,
        topic_data: vec![TopicProduceData {
            name: "t".into(),
            partition_data: vec![PartitionProduceData {
                index: 0,
                records: Some(bytes::Bytes::from_static(b"abc")),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    #[rustfmt::skip]
    let expected = [
        0, 0, 0, 3, 0, 0, 0, 5, 0, 1, b'p', // header v1
        0xff, 0xff, // transactional id: null
        0, 1, 0, 0, 3, 0xe8, // acks, timeout
        0, 0, 0, 1, 0, 1, b't', // one topic "t"
        0, 0, 0, 1, 0, 0, 0, 0, // one partition, index 0
        0, 0, 0, 3, b'a', b'b', b'c', // records
    ];
    check_request(
        header(ApiKey::Produce, 3, 5, Some("p")),
        body.into(),
        &expected,
    );
}

#[test]
fn api_versions_v3_response() {
    let body = ApiVersionsResponse {
        error_code: 0,
        api_keys: vec![ApiVersion {
            api_key: 0,
            min_version: 3,
            max_version: 13,
            ..Default::default()
        }],
        throttle_time_ms: 0,
        ..Default::default()
    };
    let frame = encode_response(0, 11, &ResponseBody::ApiVersions(body), 3)
        .unwrap()
        .into_bytes()
        .expect("in memory");
    #[rustfmt::skip]
    let expected = [
        0, 0, 0, 19, // size
        0, 0, 0, 11, // correlation id (header v0)
        0, 0, // error code
        2, 0, 0, 0, 3, 0, 13, 0, // one api key entry with empty tags
        0, 0, 0, 0, // throttle
        0, // no tagged fields (finalized features epoch -1 is the default, so omitted)
    ];
    assert_eq!(&frame[..], &expected);
}
