//! Round trips of every generated message at every valid version: the populated samples from
//! `samples.rs` and the `Default` values must encode, decode back to an equal value, re-encode to
//! the same bytes, and every strict prefix of the encoding must fail to decode.

use basalt_protocol::Encoder;
use basalt_protocol::{EncodeError, Message};
use bytes::Bytes;

fn encode<M: Message>(value: &M, version: i16) -> Result<Bytes, EncodeError> {
    let mut buf = Encoder::new();
    value.encode(&mut buf, version)?;
    Ok(buf.into_bytes().expect("in memory"))
}

fn decode_exact<M: Message>(bytes: &Bytes, version: i16) -> Result<M, String> {
    let mut rd = bytes.clone();
    let decoded = M::decode(&mut rd, version).map_err(|e| format!("decode: {e}"))?;
    if !rd.is_empty() {
        return Err(format!("{} bytes left after decode", rd.len()));
    }
    Ok(decoded)
}

/// Encodes `value`, decodes it back and compares; also checks re-encoding and truncations.
pub fn check_sample<M: Message>(value: M, version: i16) -> Result<(), String> {
    let bytes = encode(&value, version).map_err(|e| format!("encode: {e}"))?;
    let decoded: M = decode_exact(&bytes, version)?;
    if decoded != value {
        return Err(format!("decoded value differs:\n{value:?}\n{decoded:?}"));
    }
    let again = encode(&decoded, version).map_err(|e| format!("re-encode: {e}"))?;
    if again != bytes {
        return Err("re-encoding differs".into());
    }
    // Every strict prefix must be rejected (decoding is deterministic and consumes exactly the
    // encoding, so a prefix that decoded would contradict the full decode). Check up to 64 cut
    // points spread over the message.
    let step = (bytes.len() / 64).max(1);
    let mut cut = 0;
    while cut < bytes.len() {
        let mut prefix = bytes.slice(..cut);
        if M::decode(&mut prefix, version).is_ok() {
            return Err(format!("prefix of {cut}/{} bytes decoded", bytes.len()));
        }
        cut += step;
    }
    Ok(())
}

/// The default value must either be rejected by the encoder (a null default in a version where
/// the field is not nullable, as Kafka's own generated code rejects it) or round-trip exactly.
pub fn check_default<M: Message>(version: i16) -> Result<(), String> {
    let value = M::default();
    let bytes = match encode(&value, version) {
        Ok(b) => b,
        Err(EncodeError::NullNotAllowed { .. }) => return Ok(()),
        Err(e) => return Err(format!("encode default: {e}")),
    };
    let decoded: M = decode_exact(&bytes, version)?;
    if decoded != value {
        return Err(format!("decoded default differs:\n{value:?}\n{decoded:?}"));
    }
    Ok(())
}

#[test]
fn every_message_round_trips_at_every_version() {
    let mut failures = Vec::new();
    let mut checks = 0;
    crate::samples::check_all(&mut |name, version, result| {
        checks += 1;
        if let Err(e) = result {
            failures.push(format!("{name} v{version}: {e}"));
        }
    });
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(checks > 1000, "only {checks} checks ran");
}

#[test]
fn fields_absent_in_a_version_must_be_default() {
    use basalt_protocol::messages::MetadataRequest;
    // IncludeClusterAuthorizedOperations exists in versions 8-10 only and is not ignorable.
    let req = MetadataRequest {
        include_cluster_authorized_operations: true,
        ..Default::default()
    };
    let mut buf = Encoder::new();
    assert!(req.encode(&mut buf, 10).is_ok());
    let mut buf = Encoder::new();
    assert!(matches!(
        req.encode(&mut buf, 11),
        Err(EncodeError::FieldNotInVersion { .. })
    ));
    // Ignorable fields are dropped silently: the topic name does not exist in Produce v13.
    use basalt_protocol::messages::produce_request::{ProduceRequest, TopicProduceData};
    let req = ProduceRequest {
        topic_data: vec![TopicProduceData {
            name: "t".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let mut buf = Encoder::new();
    assert!(req.encode(&mut buf, 13).is_ok());
}

#[test]
fn null_in_a_non_nullable_version_is_rejected() {
    use basalt_protocol::messages::MetadataRequest;
    // Topics is nullable from version 1 on; version 0 cannot express null.
    let req = MetadataRequest {
        topics: None,
        ..Default::default()
    };
    let mut buf = Encoder::new();
    assert!(matches!(
        req.encode(&mut buf, 0),
        Err(EncodeError::NullNotAllowed { .. })
    ));
    let mut buf = Encoder::new();
    assert!(req.encode(&mut buf, 1).is_ok());
}

#[test]
fn unknown_tagged_fields_round_trip_in_order_with_known_ones() {
    use basalt_protocol::RawTaggedField;
    use basalt_protocol::messages::FetchRequest;
    let req = FetchRequest {
        cluster_id: Some("cluster".into()),
        unknown_tagged_fields: vec![
            RawTaggedField {
                tag: 7,
                data: Bytes::from_static(b"seven"),
            },
            RawTaggedField {
                tag: 9,
                data: Bytes::new(),
            },
        ],
        ..Default::default()
    };
    let bytes = encode(&req, 16).unwrap();
    let back: FetchRequest = decode_exact(&bytes, 16).unwrap();
    assert_eq!(back, req);
    // The tagged section at the end: 3 fields, tag 0 (cluster id) first, then 7 and 9.
    let tail = &bytes[bytes.len() - 20..];
    assert_eq!(tail, b"\x03\x00\x08\x08cluster\x07\x05seven\x09\x00");
}

#[test]
fn defaults_follow_the_spec() {
    use basalt_protocol::messages::{
        ApiVersionsResponse, FetchRequest, JoinGroupRequest, ProduceRequest, fetch_request,
    };
    let f = FetchRequest::default();
    assert_eq!(f.replica_id, -1);
    assert_eq!(f.max_bytes, 0x7fff_ffff);
    assert_eq!(f.session_epoch, -1);
    assert_eq!(f.cluster_id, None);
    let p = fetch_request::FetchPartition::default();
    assert_eq!(p.current_leader_epoch, -1);
    assert_eq!(p.last_fetched_epoch, -1);
    assert_eq!(p.log_start_offset, -1);
    assert_eq!(p.high_watermark, i64::MAX);
    assert_eq!(ProduceRequest::default().transactional_id, None);
    assert_eq!(JoinGroupRequest::default().rebalance_timeout_ms, -1);
    assert_eq!(ApiVersionsResponse::default().finalized_features_epoch, -1);
    assert!(basalt_protocol::messages::MetadataRequest::default().allow_auto_topic_creation);
    assert_eq!(
        basalt_protocol::messages::MetadataRequest::default().topics,
        Some(Vec::new())
    );
}
