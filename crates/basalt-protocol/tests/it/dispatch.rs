//! Request dispatch: header parsing by API version, unknown keys, unsupported versions,
//! trailing bytes, and response encoding with the right header.

use basalt_protocol::header::{header_versions, request_header_version, response_header_version};
use basalt_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use basalt_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse, ProduceRequest};
use basalt_protocol::{
    ApiKey, FrameDecoder, FrameStatus, RequestBody, RequestError, RequestHeader, ResponseBody,
    decode_request_frame, decode_response_frame, encode_request_frame, encode_response,
};
use bytes::{BufMut, Bytes, BytesMut};

fn unframe(frame: Bytes) -> Bytes {
    let mut buf = BytesMut::from(&frame[..]);
    match FrameDecoder::default().decode(&mut buf) {
        Ok(FrameStatus::Frame(f)) => f,
        other => panic!("{other:?}"),
    }
}

fn header(api_key: ApiKey, version: i16) -> RequestHeader {
    RequestHeader {
        request_api_key: api_key.key(),
        request_api_version: version,
        correlation_id: 42,
        client_id: Some("client-1".into()),
        unknown_tagged_fields: Vec::new(),
    }
}

#[test]
fn requests_round_trip_through_frames() {
    let records = Bytes::from_static(b"opaque record batch");
    let produce = ProduceRequest {
        acks: -1,
        timeout_ms: 30_000,
        topic_data: vec![TopicProduceData {
            name: "events".into(),
            partition_data: vec![PartitionProduceData {
                index: 3,
                records: Some(records.clone()),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    for version in [3, 8, 9, 12] {
        let frame =
            encode_request_frame(&header(ApiKey::Produce, version), &produce.clone().into())
                .unwrap();
        let body = unframe(frame);
        let (h, b) = decode_request_frame(body.clone()).unwrap();
        assert_eq!(h, header(ApiKey::Produce, version));
        let RequestBody::Produce(p) = b else {
            panic!("not produce")
        };
        assert_eq!(p, produce);
        // The records are a slice of the frame, not a copy.
        let got = p.topic_data[0].partition_data[0].records.as_ref().unwrap();
        let frame_range = body.as_ptr() as usize..body.as_ptr() as usize + body.len();
        assert!(frame_range.contains(&(got.as_ptr() as usize)));
    }
}

#[test]
fn unknown_api_key_keeps_the_correlation_id() {
    let mut b = BytesMut::new();
    b.put_i16(999);
    b.put_i16(0);
    b.put_i32(1234);
    b.put_i16(-1);
    let err = decode_request_frame(b.freeze()).unwrap_err();
    assert_eq!(
        err,
        RequestError::UnknownApiKey {
            api_key: 999,
            api_version: 0,
            correlation_id: 1234
        }
    );
    assert_eq!(err.correlation_id(), Some(1234));
}

#[test]
fn unsupported_versions_keep_the_header() {
    // Produce v2 is below the spec's range 3-13 (brokers may still advertise it).
    let mut b = BytesMut::new();
    header(ApiKey::Produce, 2).encode(&mut b, 1).unwrap();
    b.put_slice(b"ignored body");
    match decode_request_frame(b.freeze()) {
        Err(RequestError::UnsupportedVersion {
            api_key: ApiKey::Produce,
            header: h,
        }) => {
            assert_eq!(h, header(ApiKey::Produce, 2));
        }
        other => panic!("{other:?}"),
    }
    // ApiVersions v99 from a newer client: flexible header v2 is parsed, body skipped.
    let mut b = BytesMut::new();
    header(ApiKey::ApiVersions, 99).encode(&mut b, 2).unwrap();
    b.put_slice(&[1, 2, 3]);
    let err = decode_request_frame(b.freeze()).unwrap_err();
    assert_eq!(err.header(), Some(&header(ApiKey::ApiVersions, 99)));
    assert!(matches!(
        err,
        RequestError::UnsupportedVersion {
            api_key: ApiKey::ApiVersions,
            ..
        }
    ));
}

#[test]
fn trailing_bytes_after_a_body_are_ignored_as_kafka_does() {
    let frame = encode_request_frame(
        &header(ApiKey::ApiVersions, 3),
        &ApiVersionsRequest::default().into(),
    )
    .unwrap();
    let mut body = BytesMut::from(&unframe(frame)[..]);
    body.put_u8(0);
    let (header, body) = decode_request_frame(body.freeze()).unwrap();
    assert_eq!(header.request_api_version, 3);
    assert_eq!(body, ApiVersionsRequest::default().into());
}

#[test]
fn malformed_bodies_keep_the_header() {
    let mut b = BytesMut::new();
    header(ApiKey::Metadata, 4).encode(&mut b, 1).unwrap();
    b.put_i32(5); // five topics, no bytes
    match decode_request_frame(b.freeze()) {
        Err(RequestError::Body {
            api_key: ApiKey::Metadata,
            header: h,
            ..
        }) => {
            assert_eq!(h.correlation_id, 42)
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn short_frames_are_header_errors() {
    for len in 0..8 {
        let frame = Bytes::from(vec![0u8; len]);
        assert!(matches!(
            decode_request_frame(frame),
            Err(RequestError::Header { .. })
        ));
    }
}

#[test]
fn api_versions_response_always_uses_header_v0() {
    let resp = ApiVersionsResponse {
        error_code: 35,
        ..Default::default()
    };
    let frame = encode_response(
        response_header_version(ApiKey::ApiVersions, 3),
        7,
        &ResponseBody::ApiVersions(resp.clone()),
        3,
    )
    .unwrap()
    .into_bytes()
    .expect("in memory");
    // size, correlation id, then the body's error code straight away (no header tags).
    assert_eq!(&frame[4..10], &[0, 0, 0, 7, 0, 35]);
    let (h, b) = decode_response_frame(ApiKey::ApiVersions, 3, unframe(frame)).unwrap();
    assert_eq!(h.correlation_id, 7);
    assert_eq!(b, ResponseBody::ApiVersions(resp));
}

#[test]
fn flexible_responses_use_header_v1() {
    let frame = encode_response(
        response_header_version(ApiKey::Metadata, 12),
        9,
        &ResponseBody::Metadata(Default::default()),
        12,
    )
    .unwrap()
    .into_bytes()
    .expect("in memory");
    assert_eq!(&frame[4..9], &[0, 0, 0, 9, 0]);
    assert_eq!(
        u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize,
        frame.len() - 4
    );
}

#[test]
fn header_versions_follow_flexible_versions() {
    for &key in ApiKey::ALL {
        let range = key.valid_versions();
        for v in range.min..=range.max {
            let (req, resp) = header_versions(key, v);
            let flexible = key.request_flexible_versions().contains(v);
            if key == ApiKey::ControlledShutdown && v == 0 {
                assert_eq!(req, 0);
            } else {
                assert_eq!(req, if flexible { 2 } else { 1 }, "{key} v{v}");
            }
            if key == ApiKey::ApiVersions {
                assert_eq!(resp, 0);
            } else {
                assert_eq!(resp, if flexible { 1 } else { 0 }, "{key} v{v}");
            }
            assert_eq!(request_header_version(key, v), req);
        }
    }
}

#[test]
fn api_key_table() {
    assert_eq!(ApiKey::from_i16(0), Some(ApiKey::Produce));
    assert_eq!(ApiKey::Produce.name(), "Produce");
    assert_eq!(ApiKey::Produce.valid_versions().min, 3);
    assert_eq!(ApiKey::Produce.valid_versions().max, 13);
    assert_eq!(ApiKey::try_from(18), Ok(ApiKey::ApiVersions));
    assert_eq!(ApiKey::try_from(-5), Err(-5));
    for name in [
        "ConsumerGroupHeartbeat",
        "ConsumerGroupDescribe",
        "WriteTxnMarkers",
        "DescribeTopicPartitions",
        "ShareGroupHeartbeat",
        "ShareGroupDescribe",
        "ShareFetch",
        "ShareAcknowledge",
        "GetTelemetrySubscriptions",
        "PushTelemetry",
    ] {
        assert!(
            ApiKey::ALL.iter().any(|k| k.name() == name),
            "{name} missing"
        );
    }
    for (i, k) in ApiKey::ALL.iter().enumerate() {
        assert_eq!(ApiKey::from_i16(k.key()), Some(*k));
        if let Some(next) = ApiKey::ALL.get(i + 1) {
            assert!(k.key() < next.key());
        }
    }
}
