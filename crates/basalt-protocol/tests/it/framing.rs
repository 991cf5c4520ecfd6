//! Framing: incomplete, invalid and oversized frames, several frames in one buffer, zero copy.

use basalt_protocol::frame::{DEFAULT_MAX_FRAME_BYTES, write_frame};
use basalt_protocol::{FrameDecoder, FrameError, FrameStatus};
use bytes::{BufMut, Bytes, BytesMut};

#[test]
fn incomplete_until_the_whole_frame_arrived() {
    let mut d = FrameDecoder::new(1024);
    let mut buf = BytesMut::new();
    buf.put_slice(&[0, 0]);
    assert_eq!(
        d.decode(&mut buf),
        Ok(FrameStatus::Incomplete { needed: 2 })
    );
    buf.put_slice(&[0, 10]);
    assert_eq!(
        d.decode(&mut buf),
        Ok(FrameStatus::Incomplete { needed: 10 })
    );
    buf.put_slice(b"0123456");
    assert_eq!(
        d.decode(&mut buf),
        Ok(FrameStatus::Incomplete { needed: 3 })
    );
    assert_eq!(buf.len(), 11, "nothing consumed while incomplete");
    buf.put_slice(b"789");
    assert_eq!(
        d.decode(&mut buf),
        Ok(FrameStatus::Frame(Bytes::from_static(b"0123456789")))
    );
    assert!(buf.is_empty());
}

#[test]
fn several_frames_in_one_buffer_and_empty_frames() {
    let mut d = FrameDecoder::default();
    let mut buf = BytesMut::new();
    write_frame(&mut buf, b"one").unwrap();
    write_frame(&mut buf, b"").unwrap();
    write_frame(&mut buf, b"three").unwrap();
    buf.put_slice(&[0, 0, 0]);
    let mut frames = Vec::new();
    while let Ok(FrameStatus::Frame(f)) = d.decode(&mut buf) {
        frames.push(f);
    }
    assert_eq!(frames, vec![&b"one"[..], &b""[..], &b"three"[..]]);
    assert_eq!(
        d.decode(&mut buf),
        Ok(FrameStatus::Incomplete { needed: 1 })
    );
}

#[test]
fn negative_size_is_invalid() {
    let mut d = FrameDecoder::default();
    let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xfe][..]);
    assert_eq!(
        d.decode(&mut buf),
        Err(FrameError::NegativeSize { size: -2 })
    );
}

#[test]
fn oversized_frame_is_rejected_before_its_body_arrives() {
    let mut d = FrameDecoder::new(1000);
    let mut buf = BytesMut::new();
    buf.put_i32(1001);
    assert_eq!(
        d.decode(&mut buf),
        Err(FrameError::TooLarge {
            size: 1001,
            max: 1000
        })
    );
    let mut buf = BytesMut::new();
    buf.put_i32(1000);
    assert_eq!(
        d.decode(&mut buf),
        Ok(FrameStatus::Incomplete { needed: 1000 })
    );
}

#[test]
fn default_maximum_is_kafkas_socket_request_max_bytes() {
    assert_eq!(DEFAULT_MAX_FRAME_BYTES, 104_857_600);
    let mut d = FrameDecoder::default();
    assert_eq!(d.max_frame_bytes(), 104_857_600);
    let mut buf = BytesMut::new();
    buf.put_i32(104_857_601);
    assert!(matches!(
        d.decode(&mut buf),
        Err(FrameError::TooLarge { .. })
    ));
    let mut buf = BytesMut::new();
    buf.put_i32(i32::MAX);
    assert!(matches!(
        d.decode(&mut buf),
        Err(FrameError::TooLarge { .. })
    ));
}

#[test]
fn frames_are_not_copied() {
    let mut d = FrameDecoder::default();
    let mut buf = BytesMut::new();
    write_frame(&mut buf, b"payload").unwrap();
    let start = buf.as_ptr() as usize;
    let FrameStatus::Frame(f) = d.decode(&mut buf).unwrap() else {
        panic!("no frame")
    };
    assert_eq!(f.as_ptr() as usize, start + 4);
}
