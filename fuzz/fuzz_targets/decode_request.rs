//! Fuzz target: arbitrary bytes as a request frame body (and as a stream of size-prefixed
//! frames) go through header and body decoding; whatever decodes must re-encode, decode again to
//! an equal request, and re-encode to identical bytes. The same logic runs over the committed
//! corpus in `crates/basalt-protocol/tests/it/corpus.rs`.

#![no_main]

use basalt_protocol::{FrameDecoder, FrameStatus, decode_request_frame, encode_request_frame};
use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;

fn check_frame(frame: Bytes) {
    let Ok((header, body)) = decode_request_frame(frame) else {
        return;
    };
    let encoded = encode_request_frame(&header, &body).expect("decoded request must re-encode");
    let (header2, body2) =
        decode_request_frame(encoded.slice(4..)).expect("re-encoded request must decode");
    assert_eq!(header, header2);
    // Floats may be NaN, so compare the debug form when the values are not equal.
    assert!(body == body2 || format!("{body:?}") == format!("{body2:?}"));
    let encoded2 = encode_request_frame(&header2, &body2).expect("second re-encode");
    assert_eq!(encoded, encoded2);
}

fuzz_target!(|data: &[u8]| {
    check_frame(Bytes::copy_from_slice(data));
    let mut buf = BytesMut::from(data);
    let mut decoder = FrameDecoder::new(1 << 20);
    while let Ok(FrameStatus::Frame(frame)) = decoder.decode(&mut buf) {
        check_frame(frame);
    }
});
