//! Hostile inputs: lengths and counts that lie, truncation, invalid encodings. Every case must
//! return an error quickly and allocate next to nothing.

use std::time::{Duration, Instant};

use basalt_protocol::Encoder;
use basalt_protocol::codec::{self, MAX_TAGGED_FIELDS};
use basalt_protocol::messages::{CreateTopicsRequest, FetchRequest, MetadataRequest};
use basalt_protocol::{DecodeError, RequestError, decode_request_frame};
use bytes::{BufMut, Bytes, BytesMut};

use crate::alloc_count::measure;

/// A request header v1 (classic) or v2 (flexible) with a null client id.
fn header(api_key: i16, version: i16, flexible: bool) -> BytesMut {
    let mut b = BytesMut::new();
    b.put_i16(api_key);
    b.put_i16(version);
    b.put_i32(77);
    b.put_i16(-1);
    if flexible {
        b.put_u8(0);
    }
    b
}

fn body_error(frame: Bytes) -> DecodeError {
    match decode_request_frame(frame) {
        Err(RequestError::Body { source, header, .. }) => {
            assert_eq!(header.correlation_id, 77);
            source
        }
        other => panic!("expected a body error, got {other:?}"),
    }
}

#[test]
fn fourteen_byte_metadata_request_with_huge_topic_count_fails_at_once() {
    let mut b = header(3, 4, false);
    b.put_i32(i32::MAX);
    assert_eq!(b.len(), 14);
    let start = Instant::now();
    let (err, allocated) = measure(|| body_error(b.freeze()));
    assert!(start.elapsed() < Duration::from_millis(50));
    assert!(
        matches!(
            err,
            DecodeError::TooManyElements {
                count: 0x7fff_ffff,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(allocated < 4096, "allocated {allocated} bytes");
}

#[test]
fn compact_array_count_is_bounded_by_remaining_bytes() {
    // Metadata v12 (flexible): topics count as a varint of u32::MAX, plus a few bytes.
    let mut b = header(3, 12, true);
    b.put_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    b.put_slice(&[0; 32]);
    let (err, allocated) = measure(|| body_error(b.freeze()));
    assert!(
        matches!(err, DecodeError::TooManyElements { .. }),
        "{err:?}"
    );
    assert!(allocated < 4096, "allocated {allocated} bytes");
}

#[test]
fn array_count_above_the_element_limit_is_rejected_even_if_bytes_exist() {
    // 1,000,001 int32 elements would fit in 4 MB of input but exceed the count limit.
    let mut raw = BytesMut::new();
    raw.put_i32(1_000_001);
    raw.put_bytes(0, 4 * 1_000_001);
    let mut buf = raw.freeze();
    let err = codec::read_array(&mut buf, false, 4, "t", |b| codec::read_i32(b, "t")).unwrap_err();
    assert!(matches!(
        err,
        DecodeError::TooManyElements {
            count: 1_000_001,
            ..
        }
    ));
}

#[test]
fn minimum_element_size_tightens_the_bound() {
    // 10 remaining bytes cannot hold 3 elements of at least 4 bytes.
    let mut raw = BytesMut::new();
    raw.put_i32(3);
    raw.put_bytes(0, 10);
    let mut buf = raw.freeze();
    assert!(matches!(
        codec::read_array(&mut buf, false, 4, "t", |b| codec::read_i32(b, "t")),
        Err(DecodeError::TooManyElements { count: 3, .. })
    ));
}

#[test]
fn huge_string_length_is_checked_against_remaining_bytes() {
    // Client id claims 32767 bytes but only 3 follow.
    let mut b = BytesMut::new();
    b.put_i16(18);
    b.put_i16(0);
    b.put_i32(5);
    b.put_i16(0x7fff);
    b.put_slice(b"abc");
    let (res, allocated) = measure(|| decode_request_frame(b.freeze()));
    match res {
        Err(RequestError::Header {
            correlation_id: Some(5),
            source,
        }) => {
            assert!(
                matches!(source, DecodeError::Truncated { needed: 0x7fff, .. }),
                "{source:?}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(allocated < 1024, "allocated {allocated} bytes");
}

#[test]
fn huge_bytes_length_is_checked_against_remaining_bytes() {
    let mut raw = BytesMut::new();
    raw.put_i32(i32::MAX);
    raw.put_slice(b"xy");
    let mut buf = raw.freeze();
    assert!(matches!(
        codec::read_bytes(&mut buf, false, "b"),
        Err(DecodeError::Truncated {
            needed: 0x7fff_ffff,
            remaining: 2,
            ..
        })
    ));
}

#[test]
fn negative_lengths_other_than_null_are_errors() {
    for (raw, flexible) in [(&[0xff, 0xfe][..], false), (&[0x80, 0x00][..], false)] {
        let mut buf = Bytes::copy_from_slice(raw);
        assert!(matches!(
            codec::read_nullable_string(&mut buf, flexible, true, "s"),
            Err(DecodeError::InvalidLength { .. })
        ));
    }
    let mut buf = Bytes::from_static(&[0xff, 0xff, 0xff, 0xfe]);
    assert!(matches!(
        codec::read_array_len(&mut buf, false, 1, "a"),
        Err(DecodeError::InvalidLength { length: -2, .. })
    ));
    let mut buf = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff]);
    assert_eq!(codec::read_array_len(&mut buf, false, 1, "a"), Ok(None));
}

#[test]
fn null_where_not_nullable_is_an_error() {
    // CreateTopics v2: one topic whose (non-nullable) name is null.
    let mut b = header(19, 2, false);
    b.put_i32(1);
    b.put_i16(-1);
    b.put_bytes(0, 32); // enough bytes for the array bound; the null name fails first
    let err = body_error(b.freeze());
    assert_eq!(
        err,
        DecodeError::UnexpectedNull {
            field: "CreateTopicsRequest/CreatableTopic.Name"
        }
    );
    // The array itself is not nullable either.
    let mut b = header(19, 2, false);
    b.put_i32(-1);
    assert!(matches!(
        body_error(b.freeze()),
        DecodeError::UnexpectedNull { .. }
    ));
}

#[test]
fn invalid_utf8_is_an_error() {
    let mut b = header(19, 2, false);
    b.put_i32(1);
    b.put_i16(2);
    b.put_slice(&[0xc3, 0x28]);
    b.put_bytes(0, 32);
    assert!(matches!(
        body_error(b.freeze()),
        DecodeError::InvalidUtf8 { .. }
    ));
}

#[test]
fn overlong_varints_are_errors() {
    let mut buf = Bytes::from_static(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x00]);
    assert!(matches!(
        codec::read_unsigned_varint(&mut buf, "v"),
        Err(DecodeError::MalformedVarint { max_bytes: 5, .. })
    ));
    let mut buf = Bytes::from_static(&[0xff; 11]);
    assert!(matches!(
        codec::read_unsigned_varlong(&mut buf, "v"),
        Err(DecodeError::MalformedVarint { max_bytes: 10, .. })
    ));
    // In a flexible request body: a compact array length that never ends.
    let mut b = header(3, 12, true);
    b.put_slice(&[0x80; 8]);
    assert!(matches!(
        body_error(b.freeze()),
        DecodeError::MalformedVarint { .. }
    ));
}

#[test]
fn too_many_tagged_fields_are_rejected() {
    // Exactly the limit is accepted (header v2 of a flexible ApiVersions request).
    let build = |count: usize| {
        let mut b = BytesMut::new();
        b.put_i16(18);
        b.put_i16(3);
        b.put_i32(1);
        b.put_i16(-1);
        codec::write_unsigned_varint(&mut b, count as u32);
        for _ in 0..count {
            b.put_slice(&[0x05, 0x00]);
        }
        b.put_slice(&[0x01, 0x01, 0x00]); // empty software name and version, no tags
        b.freeze()
    };
    let (header, _) = decode_request_frame(build(MAX_TAGGED_FIELDS)).unwrap();
    assert_eq!(header.unknown_tagged_fields.len(), MAX_TAGGED_FIELDS);
    match decode_request_frame(build(MAX_TAGGED_FIELDS + 1)) {
        Err(RequestError::Header {
            source: DecodeError::TooManyTaggedFields { .. },
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    // A huge claimed count with nothing behind it fails before allocating.
    let mut buf = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    let (res, allocated) = measure(|| codec::read_tagged_count(&mut buf, "s"));
    assert!(matches!(res, Err(DecodeError::TooManyTaggedFields { .. })));
    assert_eq!(allocated, 0);
}

#[test]
fn tagged_field_size_must_match_its_value() {
    // Fetch v12 with tag 0 (ClusterId) declared as 5 bytes holding a 2-byte compact string.
    let req = FetchRequest::default();
    let mut body = Encoder::new();
    req.encode(&mut body, 12).unwrap();
    let mut raw = body.to_vec();
    assert_eq!(raw.pop(), Some(0)); // drop the empty tagged section
    raw.extend_from_slice(&[0x01, 0x00, 0x05, 0x02, b'c', 0, 0, 0]);
    let mut buf = Bytes::from(raw);
    assert!(matches!(
        FetchRequest::decode(&mut buf, 12),
        Err(DecodeError::TaggedFieldSize {
            declared: 5,
            used: 2,
            ..
        })
    ));
}

#[test]
fn nested_lying_counts_fail_without_large_allocations() {
    // CreateTopics v5 (flexible): one topic with a huge assignment count, inside a huge topic
    // count, inside a frame of a few dozen bytes.
    let mut b = header(19, 5, true);
    b.put_u8(0x02); // one topic
    b.put_u8(0x02);
    b.put_u8(b't');
    b.put_i32(1);
    b.put_i16(1);
    b.put_slice(&[0xfe, 0xff, 0xff, 0xff, 0x0f]); // assignments: ~4 billion
    b.put_slice(&[0; 16]);
    let (err, allocated) = measure(|| body_error(b.freeze()));
    assert!(
        matches!(err, DecodeError::TooManyElements { .. }),
        "{err:?}"
    );
    assert!(allocated < 4096, "allocated {allocated} bytes");
}

#[test]
fn allocation_is_proportional_to_input_for_counts_that_fit() {
    // A Metadata v4 request whose topic count exactly fills a 64 KiB frame (each topic a
    // 2-byte empty name): decoding succeeds and allocates a bounded multiple of the input.
    let count = 32 * 1024;
    let mut b = header(3, 4, false);
    b.put_i32(count);
    b.put_bytes(0, 2 * count as usize);
    b.put_u8(0); // allow_auto_topic_creation
    let len = b.len();
    let (res, allocated) = measure(|| decode_request_frame(b.freeze()));
    let (_, body) = res.unwrap();
    match body {
        basalt_protocol::RequestBody::Metadata(m) => {
            assert_eq!(m.topics.map(|t| t.len()), Some(count as usize))
        }
        other => panic!("{other:?}"),
    }
    assert!(
        allocated < len * 64,
        "allocated {allocated} bytes for {len} input bytes"
    );
}

#[test]
fn truncated_requests_are_errors_at_every_length() {
    let req = MetadataRequest::default();
    let mut body = Encoder::new();
    req.encode(&mut body, 12).unwrap();
    let mut frame = header(3, 12, true);
    frame.put_slice(&body);
    let frame = frame.freeze();
    assert!(decode_request_frame(frame.clone()).is_ok());
    for cut in 0..frame.len() {
        assert!(
            decode_request_frame(frame.slice(..cut)).is_err(),
            "prefix {cut} decoded"
        );
    }
    let _ = CreateTopicsRequest::default();
}
