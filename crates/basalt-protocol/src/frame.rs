//! Size-prefixed framing: every Kafka request and response is an `int32` byte count followed by
//! that many bytes.
//!
//! [`FrameDecoder`] splits complete frames off the front of a caller-owned [`BytesMut`] (the
//! connection's read buffer) without copying them. Invariants:
//!
//! - the size prefix is validated as soon as its four bytes are present, before any of the body
//!   is waited for or buffered: a negative size or one above `max_frame_bytes` is
//!   [`FrameError`], and the connection must be closed;
//! - [`FrameStatus::Incomplete`] says how many more bytes are needed, so the caller can reserve
//!   exactly that much and never more than the configured maximum;
//! - the buffer is only consumed when a whole frame is returned.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Kafka's default `socket.request.max.bytes`: 100 MiB.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 104_857_600;

/// The size of the length prefix.
pub const SIZE_PREFIX_LEN: usize = 4;

/// What [`FrameDecoder::decode`] found at the front of the buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameStatus {
    /// A complete frame body (without its size prefix), split off the buffer.
    Frame(Bytes),
    /// Not enough bytes yet; at least `needed` more must arrive.
    Incomplete {
        /// Bytes still missing before the next frame is complete.
        needed: usize,
    },
}

/// A frame that can never be valid; the connection should be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The size prefix was negative.
    #[error("frame size {size} is negative")]
    NegativeSize {
        /// The size as read.
        size: i32,
    },
    /// The size prefix exceeds the configured maximum.
    #[error("frame size {size} exceeds the maximum of {max} bytes")]
    TooLarge {
        /// The size as read.
        size: usize,
        /// The configured maximum.
        max: usize,
    },
}

/// Splits size-prefixed frames off a read buffer.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    max_frame_bytes: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        FrameDecoder::new(DEFAULT_MAX_FRAME_BYTES)
    }
}

impl FrameDecoder {
    /// A decoder accepting frames of at most `max_frame_bytes` body bytes (the broker's
    /// `socket.request.max.bytes`).
    pub fn new(max_frame_bytes: usize) -> Self {
        FrameDecoder { max_frame_bytes }
    }

    /// The configured maximum frame size.
    pub fn max_frame_bytes(&self) -> usize {
        self.max_frame_bytes
    }

    /// Inspects the front of `src`: splits off and returns one complete frame, or reports how
    /// many bytes are missing, or fails if the size prefix is invalid. Call repeatedly until it
    /// returns [`FrameStatus::Incomplete`] to drain every buffered frame.
    pub fn decode(&mut self, src: &mut BytesMut) -> Result<FrameStatus, FrameError> {
        let Some(prefix) = src.get(..SIZE_PREFIX_LEN) else {
            return Ok(FrameStatus::Incomplete {
                needed: SIZE_PREFIX_LEN - src.len(),
            });
        };
        let mut raw = [0u8; SIZE_PREFIX_LEN];
        raw.copy_from_slice(prefix);
        let size = i32::from_be_bytes(raw);
        let body_len = usize::try_from(size).map_err(|_| FrameError::NegativeSize { size })?;
        if body_len > self.max_frame_bytes {
            return Err(FrameError::TooLarge {
                size: body_len,
                max: self.max_frame_bytes,
            });
        }
        let available = src.len() - SIZE_PREFIX_LEN;
        if available < body_len {
            return Ok(FrameStatus::Incomplete {
                needed: body_len - available,
            });
        }
        src.advance(SIZE_PREFIX_LEN);
        Ok(FrameStatus::Frame(src.split_to(body_len).freeze()))
    }
}

/// Appends `body` to `dst` as one frame (size prefix, then the body).
///
/// Fails if the body is longer than `i32::MAX` bytes.
pub fn write_frame(dst: &mut BytesMut, body: &[u8]) -> Result<(), FrameError> {
    let size = i32::try_from(body.len()).map_err(|_| FrameError::TooLarge {
        size: body.len(),
        max: i32::MAX as usize,
    })?;
    dst.reserve(SIZE_PREFIX_LEN + body.len());
    dst.put_i32(size);
    dst.put_slice(body);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_frames() {
        let mut d = FrameDecoder::new(16);
        let mut buf = BytesMut::new();
        assert_eq!(
            d.decode(&mut buf),
            Ok(FrameStatus::Incomplete { needed: 4 })
        );
        buf.extend_from_slice(&[0, 0, 0, 3, b'a']);
        assert_eq!(
            d.decode(&mut buf),
            Ok(FrameStatus::Incomplete { needed: 2 })
        );
        buf.extend_from_slice(b"bc");
        assert_eq!(
            d.decode(&mut buf),
            Ok(FrameStatus::Frame(Bytes::from_static(b"abc")))
        );
        assert!(buf.is_empty());
    }
}
