//! Small value types shared by all messages: [`Uuid`], [`RawTaggedField`], [`VersionRange`],
//! and the [`Message`] / [`Request`] traits every generated top-level message implements.
//!
//! Invariant: these types carry no wire logic of their own beyond what `codec` needs; a
//! [`VersionRange`] with `min > max` is empty.

use std::fmt;

use bytes::Bytes;

use crate::codec::{DecodeError, EncodeError};
use crate::encoder::Encoder;

/// A Kafka `uuid`: 16 raw bytes, big-endian as on the wire. The all-zero value is Kafka's
/// `Uuid.ZERO_UUID`, the default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uuid(pub [u8; 16]);

impl Uuid {
    /// The all-zero UUID (Kafka's `ZERO_UUID`).
    pub const ZERO: Uuid = Uuid([0; 16]);

    /// Builds a UUID from its 16 bytes.
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Uuid(bytes)
    }

    /// The 16 bytes of the UUID.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// Builds a UUID from its most and least significant 64-bit halves (as Kafka's Java API does).
    pub fn from_u64_pair(most: u64, least: u64) -> Self {
        let mut raw = [0u8; 16];
        raw[..8].copy_from_slice(&most.to_be_bytes());
        raw[8..].copy_from_slice(&least.to_be_bytes());
        Uuid(raw)
    }
}

/// Formats the UUID as Kafka does: URL-safe base64 without padding (22 characters).
impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::with_capacity(22);
        let mut acc: u32 = 0;
        let mut bits = 0u32;
        for &b in &self.0 {
            acc = (acc << 8) | u32::from(b);
            bits += 8;
            while bits >= 6 {
                bits -= 6;
                out.push(char::from(ALPHABET[((acc >> bits) & 0x3f) as usize]));
            }
        }
        if bits > 0 {
            out.push(char::from(ALPHABET[((acc << (6 - bits)) & 0x3f) as usize]));
        }
        f.write_str(&out)
    }
}

/// A tagged field whose tag this code does not know, kept as raw bytes so it is written back
/// unchanged when the structure is re-encoded.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RawTaggedField {
    /// The field's tag.
    pub tag: u32,
    /// The field's encoded value (without tag and size).
    pub data: Bytes,
}

/// An inclusive range of versions. Empty when `min > max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VersionRange {
    /// Lowest version in the range.
    pub min: i16,
    /// Highest version in the range (`i16::MAX` for an open-ended "N+" range).
    pub max: i16,
}

impl VersionRange {
    /// The empty range (Kafka's "none").
    pub const NONE: VersionRange = VersionRange { min: 0, max: -1 };

    /// Builds the range `min..=max`.
    pub const fn new(min: i16, max: i16) -> Self {
        VersionRange { min, max }
    }

    /// Whether `version` is in the range.
    pub const fn contains(&self, version: i16) -> bool {
        version >= self.min && version <= self.max
    }

    /// Whether the range holds no version.
    pub const fn is_empty(&self) -> bool {
        self.min > self.max
    }
}

/// A top-level Kafka message (request, response or standalone data structure) with its version
/// metadata and codec.
pub trait Message: Sized + Default + fmt::Debug + Clone + PartialEq {
    /// The message's name in Kafka's specs, e.g. `"ProduceRequest"`.
    const NAME: &'static str;
    /// The versions the spec defines.
    const VALID_VERSIONS: VersionRange;
    /// The versions that use the flexible (compact, tagged-field) encoding.
    const FLEXIBLE_VERSIONS: VersionRange;

    /// Decodes the message at `version`, consuming its bytes from the front of `buf`.
    fn decode(buf: &mut Bytes, version: i16) -> Result<Self, DecodeError>;

    /// Appends the message encoded at `version` to `buf`.
    fn encode(&self, buf: &mut Encoder, version: i16) -> Result<(), EncodeError>;
}

/// A request message, tied to its API key and response type.
pub trait Request: Message {
    /// The API key of the request.
    const API_KEY: i16;
    /// The response type answering this request.
    type Response: Message;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_displays_as_kafka_base64() {
        assert_eq!(Uuid::ZERO.to_string(), "AAAAAAAAAAAAAAAAAAAAAA");
        assert_eq!(Uuid([0xff; 16]).to_string(), "_____________________w");
        assert_eq!(Uuid::from_u64_pair(1, 2).as_bytes()[7], 1);
    }
}
