//! Primitive encoding and decoding of Kafka wire types, shared by every generated message.
//!
//! This module owns the rules that keep decoding of untrusted bytes bounded:
//!
//! - every read checks the remaining length first and fails with [`DecodeError`] instead of
//!   panicking; no length taken from the wire is trusted before it is compared with what remains;
//! - an array count is checked against [`MAX_ARRAY_ELEMENTS`] and against the bytes that remain
//!   (each element needs at least its minimum encoded size) *before* any allocation;
//! - a tagged-field section may hold at most [`MAX_TAGGED_FIELDS`] fields;
//! - negative lengths other than `-1` (null) are rejected, as is null where a version does not
//!   allow it, invalid UTF-8, strings longer than 32767 bytes, and over-long varints;
//! - `bytes` and `records` values are slices of the input buffer (`Bytes::split_to`), never copies.
//!
//! Writers check the limits Kafka imposes on lengths and fail with [`EncodeError`].

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::encoder::{Encoder, Records};
use crate::types::{RawTaggedField, Uuid};

/// The largest element count accepted for one array, whatever the remaining bytes allow.
pub const MAX_ARRAY_ELEMENTS: usize = 1_000_000;

/// The largest number of tagged fields accepted in one tagged-field section.
pub const MAX_TAGGED_FIELDS: usize = 10_000;

/// The longest string Kafka encodes (its length must fit a positive `int16`).
pub const MAX_STRING_LEN: usize = 0x7fff;

/// Why a message could not be decoded. Each variant names the field (as `Message/Struct.Field`)
/// or message it concerns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The buffer ended before a fixed-size value or a declared length was complete.
    #[error("{field}: needed {needed} bytes but only {remaining} remain")]
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Bytes the value needs.
        needed: usize,
        /// Bytes left in the buffer.
        remaining: usize,
    },
    /// A length prefix was negative (other than `-1` for null) or too large for its type.
    #[error("{field}: invalid length {length}")]
    InvalidLength {
        /// The field being read.
        field: &'static str,
        /// The length as read from the wire.
        length: i64,
    },
    /// An array declared more elements than allowed or than the remaining bytes could hold.
    #[error(
        "{field}: array of {count} elements cannot fit in {remaining} remaining bytes \
         (limit {limit} elements)"
    )]
    TooManyElements {
        /// The array field being read.
        field: &'static str,
        /// The element count as read from the wire.
        count: u64,
        /// Bytes left in the buffer after the count.
        remaining: usize,
        /// The configured element limit.
        limit: usize,
    },
    /// A null value was found where the version does not allow null.
    #[error("{field}: null is not allowed here")]
    UnexpectedNull {
        /// The field being read.
        field: &'static str,
    },
    /// A string was not valid UTF-8.
    #[error("{field}: string is not valid UTF-8")]
    InvalidUtf8 {
        /// The field being read.
        field: &'static str,
    },
    /// An unsigned varint did not end within its maximum length or overflowed its type.
    #[error("{field}: malformed varint (longer than {max_bytes} bytes or out of range)")]
    MalformedVarint {
        /// The field being read.
        field: &'static str,
        /// The maximum encoded length of the varint.
        max_bytes: usize,
    },
    /// A tagged-field section declared more fields than allowed.
    #[error("{structure}: {count} tagged fields exceed the limit of {limit}")]
    TooManyTaggedFields {
        /// The structure whose tagged fields were read.
        structure: &'static str,
        /// The count read from the wire.
        count: u64,
        /// The configured limit.
        limit: usize,
    },
    /// A known tagged field's value did not fill exactly its declared size.
    #[error("{field}: tagged field declared {declared} bytes but its value used {used}")]
    TaggedFieldSize {
        /// The tagged field being read.
        field: &'static str,
        /// The size declared on the wire.
        declared: usize,
        /// The bytes the value consumed.
        used: usize,
    },
    /// The message does not exist in the requested version.
    #[error("{message} does not exist in version {version}")]
    UnsupportedVersion {
        /// The message name.
        message: &'static str,
        /// The requested version.
        version: i16,
    },
    /// Bytes remained after a message that should have filled its frame.
    #[error("{remaining} unexpected bytes after {message}")]
    TrailingBytes {
        /// The message name.
        message: &'static str,
        /// How many bytes remained.
        remaining: usize,
    },
}

/// Why a message could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The message does not exist in the requested version.
    #[error("{message} does not exist in version {version}")]
    UnsupportedVersion {
        /// The message name.
        message: &'static str,
        /// The requested version.
        version: i16,
    },
    /// A field holds a non-default value but does not exist in the requested version (and Kafka
    /// does not mark it ignorable).
    #[error("{field}: non-default value cannot be written in version {version}")]
    FieldNotInVersion {
        /// The field.
        field: &'static str,
        /// The requested version.
        version: i16,
    },
    /// A field is null but the requested version does not allow null.
    #[error("{field}: null is not allowed in this version")]
    NullNotAllowed {
        /// The field.
        field: &'static str,
    },
    /// Unknown tagged fields were set but the version is not flexible.
    #[error("{structure}: tagged fields cannot be written in version {version}")]
    TaggedFieldsNotSupported {
        /// The structure.
        structure: &'static str,
        /// The requested version.
        version: i16,
    },
    /// A value is too long for its length prefix.
    #[error("{field}: length {length} is too long to encode")]
    TooLong {
        /// The field.
        field: &'static str,
        /// The value's length.
        length: usize,
    },
    /// A record set in a file was given where the bytes must be in one buffer (a tagged field,
    /// or a request).
    #[error("{field}: records in a file cannot be written here")]
    FileRecordsNotContiguous {
        /// The field.
        field: &'static str,
    },
}

#[inline]
fn need(buf: &Bytes, n: usize, field: &'static str) -> Result<(), DecodeError> {
    if buf.remaining() < n {
        Err(DecodeError::Truncated {
            field,
            needed: n,
            remaining: buf.remaining(),
        })
    } else {
        Ok(())
    }
}

/// Reads an `int8`.
pub fn read_i8(buf: &mut Bytes, field: &'static str) -> Result<i8, DecodeError> {
    need(buf, 1, field)?;
    Ok(buf.get_i8())
}

/// Reads a `bool` (any non-zero byte is true, as Kafka does).
pub fn read_bool(buf: &mut Bytes, field: &'static str) -> Result<bool, DecodeError> {
    need(buf, 1, field)?;
    Ok(buf.get_u8() != 0)
}

/// Reads an `int16`.
pub fn read_i16(buf: &mut Bytes, field: &'static str) -> Result<i16, DecodeError> {
    need(buf, 2, field)?;
    Ok(buf.get_i16())
}

/// Reads a `uint16`.
pub fn read_u16(buf: &mut Bytes, field: &'static str) -> Result<u16, DecodeError> {
    need(buf, 2, field)?;
    Ok(buf.get_u16())
}

/// Reads an `int32`.
pub fn read_i32(buf: &mut Bytes, field: &'static str) -> Result<i32, DecodeError> {
    need(buf, 4, field)?;
    Ok(buf.get_i32())
}

/// Reads a `uint32`.
pub fn read_u32(buf: &mut Bytes, field: &'static str) -> Result<u32, DecodeError> {
    need(buf, 4, field)?;
    Ok(buf.get_u32())
}

/// Reads an `int64`.
pub fn read_i64(buf: &mut Bytes, field: &'static str) -> Result<i64, DecodeError> {
    need(buf, 8, field)?;
    Ok(buf.get_i64())
}

/// Reads a `float64`.
pub fn read_f64(buf: &mut Bytes, field: &'static str) -> Result<f64, DecodeError> {
    need(buf, 8, field)?;
    Ok(buf.get_f64())
}

/// Reads a `uuid` (16 raw bytes).
pub fn read_uuid(buf: &mut Bytes, field: &'static str) -> Result<Uuid, DecodeError> {
    need(buf, 16, field)?;
    let mut raw = [0u8; 16];
    buf.copy_to_slice(&mut raw);
    Ok(Uuid(raw))
}

/// Reads an unsigned varint of at most 5 bytes whose value fits a `u32`.
pub fn read_unsigned_varint(buf: &mut Bytes, field: &'static str) -> Result<u32, DecodeError> {
    let mut value: u32 = 0;
    for i in 0..5u32 {
        need(buf, 1, field)?;
        let b = buf.get_u8();
        if i == 4 && b > 0x0f {
            return Err(DecodeError::MalformedVarint {
                field,
                max_bytes: 5,
            });
        }
        value |= u32::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(DecodeError::MalformedVarint {
        field,
        max_bytes: 5,
    })
}

/// Reads an unsigned varint of at most 10 bytes whose value fits a `u64`.
pub fn read_unsigned_varlong(buf: &mut Bytes, field: &'static str) -> Result<u64, DecodeError> {
    let mut value: u64 = 0;
    for i in 0..10u32 {
        need(buf, 1, field)?;
        let b = buf.get_u8();
        if i == 9 && b > 0x01 {
            return Err(DecodeError::MalformedVarint {
                field,
                max_bytes: 10,
            });
        }
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(DecodeError::MalformedVarint {
        field,
        max_bytes: 10,
    })
}

/// Reads a zig-zag encoded signed varint (`varint` in Kafka's record format).
pub fn read_varint(buf: &mut Bytes, field: &'static str) -> Result<i32, DecodeError> {
    let raw = read_unsigned_varint(buf, field)?;
    // Zig-zag decoding: the low bit carries the sign.
    Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
}

/// Reads a zig-zag encoded signed varlong (`varlong` in Kafka's record format).
pub fn read_varlong(buf: &mut Bytes, field: &'static str) -> Result<i64, DecodeError> {
    let raw = read_unsigned_varlong(buf, field)?;
    Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
}

/// Reads a length prefix: `int16` (strings) or `int32` (bytes, arrays) in classic versions, or
/// an unsigned varint holding length + 1 in flexible versions. `None` means null (-1).
fn read_length(
    buf: &mut Bytes,
    flexible: bool,
    short: bool,
    field: &'static str,
) -> Result<Option<usize>, DecodeError> {
    let length: i64 = if flexible {
        i64::from(read_unsigned_varint(buf, field)?) - 1
    } else if short {
        i64::from(read_i16(buf, field)?)
    } else {
        i64::from(read_i32(buf, field)?)
    };
    match length {
        -1 => Ok(None),
        n if n < -1 => Err(DecodeError::InvalidLength { field, length }),
        n => usize::try_from(n)
            .map(Some)
            .map_err(|_| DecodeError::InvalidLength { field, length }),
    }
}

fn take(buf: &mut Bytes, len: usize, field: &'static str) -> Result<Bytes, DecodeError> {
    need(buf, len, field)?;
    Ok(buf.split_to(len))
}

fn read_string_body(
    buf: &mut Bytes,
    len: usize,
    field: &'static str,
) -> Result<String, DecodeError> {
    if len > MAX_STRING_LEN {
        return Err(DecodeError::InvalidLength {
            field,
            length: len as i64,
        });
    }
    let raw = take(buf, len, field)?;
    match std::str::from_utf8(&raw) {
        Ok(s) => Ok(s.to_owned()),
        Err(_) => Err(DecodeError::InvalidUtf8 { field }),
    }
}

/// Reads a non-nullable string (`string` / `compact_string`).
pub fn read_string(
    buf: &mut Bytes,
    flexible: bool,
    field: &'static str,
) -> Result<String, DecodeError> {
    match read_length(buf, flexible, true, field)? {
        None => Err(DecodeError::UnexpectedNull { field }),
        Some(len) => read_string_body(buf, len, field),
    }
}

/// Reads a string that may be null when `nullable` is true.
pub fn read_nullable_string(
    buf: &mut Bytes,
    flexible: bool,
    nullable: bool,
    field: &'static str,
) -> Result<Option<String>, DecodeError> {
    match read_length(buf, flexible, true, field)? {
        None if nullable => Ok(None),
        None => Err(DecodeError::UnexpectedNull { field }),
        Some(len) => read_string_body(buf, len, field).map(Some),
    }
}

/// Reads non-nullable `bytes` as a zero-copy slice of `buf`.
pub fn read_bytes(
    buf: &mut Bytes,
    flexible: bool,
    field: &'static str,
) -> Result<Bytes, DecodeError> {
    match read_length(buf, flexible, false, field)? {
        None => Err(DecodeError::UnexpectedNull { field }),
        Some(len) => take(buf, len, field),
    }
}

/// Reads `bytes` or `records` that may be null when `nullable` is true, as a zero-copy slice.
pub fn read_nullable_bytes(
    buf: &mut Bytes,
    flexible: bool,
    nullable: bool,
    field: &'static str,
) -> Result<Option<Bytes>, DecodeError> {
    match read_length(buf, flexible, false, field)? {
        None if nullable => Ok(None),
        None => Err(DecodeError::UnexpectedNull { field }),
        Some(len) => take(buf, len, field).map(Some),
    }
}

/// Reads an array count and checks it against [`MAX_ARRAY_ELEMENTS`] and the remaining bytes
/// (`min_element_size` bytes per element, at least one). `None` means a null array.
pub fn read_array_len(
    buf: &mut Bytes,
    flexible: bool,
    min_element_size: usize,
    field: &'static str,
) -> Result<Option<usize>, DecodeError> {
    let Some(count) = read_length(buf, flexible, false, field)? else {
        return Ok(None);
    };
    let remaining = buf.remaining();
    let fits = remaining / min_element_size.max(1);
    if count > MAX_ARRAY_ELEMENTS || count > fits {
        return Err(DecodeError::TooManyElements {
            field,
            count: count as u64,
            remaining,
            limit: MAX_ARRAY_ELEMENTS,
        });
    }
    Ok(Some(count))
}

/// Reads a non-nullable array, decoding each element with `element`.
pub fn read_array<T>(
    buf: &mut Bytes,
    flexible: bool,
    min_element_size: usize,
    field: &'static str,
    mut element: impl FnMut(&mut Bytes) -> Result<T, DecodeError>,
) -> Result<Vec<T>, DecodeError> {
    let Some(count) = read_array_len(buf, flexible, min_element_size, field)? else {
        return Err(DecodeError::UnexpectedNull { field });
    };
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        out.push(element(buf)?);
    }
    Ok(out)
}

/// Reads an array that may be null when `nullable` is true.
pub fn read_nullable_array<T>(
    buf: &mut Bytes,
    flexible: bool,
    nullable: bool,
    min_element_size: usize,
    field: &'static str,
    mut element: impl FnMut(&mut Bytes) -> Result<T, DecodeError>,
) -> Result<Option<Vec<T>>, DecodeError> {
    let Some(count) = read_array_len(buf, flexible, min_element_size, field)? else {
        return if nullable {
            Ok(None)
        } else {
            Err(DecodeError::UnexpectedNull { field })
        };
    };
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        out.push(element(buf)?);
    }
    Ok(Some(out))
}

/// Reads the presence marker of a nullable struct field: an `int8` in regular fields (negative
/// means null), an unsigned varint in tagged fields (zero means null). Returns `true` if present.
pub fn read_struct_marker(
    buf: &mut Bytes,
    tagged: bool,
    field: &'static str,
) -> Result<bool, DecodeError> {
    if tagged {
        Ok(read_unsigned_varint(buf, field)? > 0)
    } else {
        Ok(read_i8(buf, field)? >= 0)
    }
}

/// Reads the count that opens a tagged-field section, checking [`MAX_TAGGED_FIELDS`] and the
/// remaining bytes (each field needs at least two).
pub fn read_tagged_count(buf: &mut Bytes, structure: &'static str) -> Result<usize, DecodeError> {
    let count = read_unsigned_varint(buf, structure)?;
    let count_usize = usize::try_from(count).unwrap_or(usize::MAX);
    if count_usize > MAX_TAGGED_FIELDS || count_usize > buf.remaining() / 2 {
        return Err(DecodeError::TooManyTaggedFields {
            structure,
            count: u64::from(count),
            limit: MAX_TAGGED_FIELDS,
        });
    }
    Ok(count_usize)
}

/// Reads one tagged field's tag and size and splits off its value (zero-copy).
pub fn read_tagged_field(
    buf: &mut Bytes,
    structure: &'static str,
) -> Result<(u32, Bytes), DecodeError> {
    let tag = read_unsigned_varint(buf, structure)?;
    let size = read_unsigned_varint(buf, structure)?;
    let size = usize::try_from(size).unwrap_or(usize::MAX);
    let data = take(buf, size, structure)?;
    Ok((tag, data))
}

/// Checks that a known tagged field's value consumed exactly its declared size.
pub fn finish_tagged_field(
    data: &Bytes,
    declared: usize,
    field: &'static str,
) -> Result<(), DecodeError> {
    if data.has_remaining() {
        Err(DecodeError::TaggedFieldSize {
            field,
            declared,
            used: declared.saturating_sub(data.remaining()),
        })
    } else {
        Ok(())
    }
}

/// Writes an unsigned varint.
pub fn write_unsigned_varint(buf: &mut BytesMut, mut value: u32) {
    while value >= 0x80 {
        buf.put_u8((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    buf.put_u8(value as u8);
}

/// Writes an unsigned varlong.
pub fn write_unsigned_varlong(buf: &mut BytesMut, mut value: u64) {
    while value >= 0x80 {
        buf.put_u8((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    buf.put_u8(value as u8);
}

/// Writes a zig-zag encoded signed varint.
pub fn write_varint(buf: &mut BytesMut, value: i32) {
    write_unsigned_varint(buf, ((value << 1) ^ (value >> 31)) as u32);
}

/// Writes a zig-zag encoded signed varlong.
pub fn write_varlong(buf: &mut BytesMut, value: i64) {
    write_unsigned_varlong(buf, ((value << 1) ^ (value >> 63)) as u64);
}

/// The number of bytes [`write_unsigned_varint`] uses for `value`.
pub fn unsigned_varint_len(value: u32) -> usize {
    match value {
        0..=0x7f => 1,
        0x80..=0x3fff => 2,
        0x4000..=0x1f_ffff => 3,
        0x20_0000..=0x0fff_ffff => 4,
        _ => 5,
    }
}

fn write_length(
    buf: &mut BytesMut,
    len: usize,
    flexible: bool,
    short: bool,
    field: &'static str,
) -> Result<(), EncodeError> {
    let too_long = EncodeError::TooLong { field, length: len };
    if flexible {
        let plus_one = u32::try_from(len)
            .ok()
            .and_then(|l| l.checked_add(1))
            .ok_or(too_long)?;
        write_unsigned_varint(buf, plus_one);
    } else if short {
        buf.put_i16(i16::try_from(len).map_err(|_| too_long)?);
    } else {
        buf.put_i32(i32::try_from(len).map_err(|_| too_long)?);
    }
    Ok(())
}

fn write_null(buf: &mut BytesMut, flexible: bool, short: bool) {
    if flexible {
        write_unsigned_varint(buf, 0);
    } else if short {
        buf.put_i16(-1);
    } else {
        buf.put_i32(-1);
    }
}

/// Writes a non-null string.
pub fn write_string(
    buf: &mut BytesMut,
    value: &str,
    flexible: bool,
    field: &'static str,
) -> Result<(), EncodeError> {
    if value.len() > MAX_STRING_LEN {
        return Err(EncodeError::TooLong {
            field,
            length: value.len(),
        });
    }
    write_length(buf, value.len(), flexible, true, field)?;
    buf.put_slice(value.as_bytes());
    Ok(())
}

/// Writes a string that may be null if `nullable` is true.
pub fn write_nullable_string(
    buf: &mut BytesMut,
    value: Option<&str>,
    flexible: bool,
    nullable: bool,
    field: &'static str,
) -> Result<(), EncodeError> {
    match value {
        Some(s) => write_string(buf, s, flexible, field),
        None if nullable => {
            write_null(buf, flexible, true);
            Ok(())
        }
        None => Err(EncodeError::NullNotAllowed { field }),
    }
}

/// Writes non-null `bytes`.
pub fn write_bytes(
    buf: &mut BytesMut,
    value: &[u8],
    flexible: bool,
    field: &'static str,
) -> Result<(), EncodeError> {
    write_length(buf, value.len(), flexible, false, field)?;
    buf.put_slice(value);
    Ok(())
}

/// Writes `bytes` or `records` that may be null if `nullable` is true.
pub fn write_nullable_bytes(
    buf: &mut BytesMut,
    value: Option<&[u8]>,
    flexible: bool,
    nullable: bool,
    field: &'static str,
) -> Result<(), EncodeError> {
    match value {
        Some(b) => write_bytes(buf, b, flexible, field),
        None if nullable => {
            write_null(buf, flexible, false);
            Ok(())
        }
        None => Err(EncodeError::NullNotAllowed { field }),
    }
}

/// Writes a response's record set that may be null if `nullable` is true; the records
/// themselves go through [`Encoder::put_records`], which does not copy large ones.
pub fn write_nullable_records(
    buf: &mut Encoder,
    value: Option<&Records>,
    flexible: bool,
    nullable: bool,
    field: &'static str,
) -> Result<(), EncodeError> {
    match value {
        Some(r) => {
            write_length(buf, r.len(), flexible, false, field)?;
            buf.put_records(r, field)
        }
        None if nullable => {
            write_null(buf, flexible, false);
            Ok(())
        }
        None => Err(EncodeError::NullNotAllowed { field }),
    }
}

/// Writes an array count (the elements follow).
pub fn write_array_len(
    buf: &mut BytesMut,
    len: usize,
    flexible: bool,
    field: &'static str,
) -> Result<(), EncodeError> {
    write_length(buf, len, flexible, false, field)
}

/// Writes a null array if `nullable` is true, otherwise fails.
pub fn write_null_array(
    buf: &mut BytesMut,
    flexible: bool,
    nullable: bool,
    field: &'static str,
) -> Result<(), EncodeError> {
    if nullable {
        write_null(buf, flexible, false);
        Ok(())
    } else {
        Err(EncodeError::NullNotAllowed { field })
    }
}

/// Writes one tagged field: tag, size, then the already-encoded value.
pub fn write_tagged_field(
    buf: &mut BytesMut,
    tag: u32,
    value: &[u8],
    field: &'static str,
) -> Result<(), EncodeError> {
    let size = u32::try_from(value.len()).map_err(|_| EncodeError::TooLong {
        field,
        length: value.len(),
    })?;
    write_unsigned_varint(buf, tag);
    write_unsigned_varint(buf, size);
    buf.put_slice(value);
    Ok(())
}

/// Writes a tagged-field count.
pub fn write_tagged_count(
    buf: &mut BytesMut,
    count: usize,
    structure: &'static str,
) -> Result<(), EncodeError> {
    let count = u32::try_from(count).map_err(|_| EncodeError::TooLong {
        field: structure,
        length: count,
    })?;
    write_unsigned_varint(buf, count);
    Ok(())
}

/// Interleaves preserved unknown tagged fields with known ones so that a section whose unknown
/// fields were read in ascending tag order is written back in ascending tag order.
#[derive(Debug)]
pub struct RawTagWriter<'a> {
    fields: &'a [RawTaggedField],
    next: usize,
}

impl<'a> RawTagWriter<'a> {
    /// Starts writing `fields`.
    pub fn new(fields: &'a [RawTaggedField]) -> Self {
        Self { fields, next: 0 }
    }

    /// Writes the unknown fields, in stored order, until one whose tag is at least `tag`.
    pub fn write_before(
        &mut self,
        buf: &mut BytesMut,
        tag: u32,
        structure: &'static str,
    ) -> Result<(), EncodeError> {
        while let Some(field) = self.fields.get(self.next) {
            if field.tag >= tag {
                break;
            }
            write_tagged_field(buf, field.tag, &field.data, structure)?;
            self.next += 1;
        }
        Ok(())
    }

    /// Writes every unknown field not yet written.
    pub fn write_rest(
        &mut self,
        buf: &mut BytesMut,
        structure: &'static str,
    ) -> Result<(), EncodeError> {
        while let Some(field) = self.fields.get(self.next) {
            write_tagged_field(buf, field.tag, &field.data, structure)?;
            self.next += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_round_trip_and_limits() {
        for v in [0u32, 1, 127, 128, 16_383, 16_384, u32::MAX] {
            let mut b = BytesMut::new();
            write_unsigned_varint(&mut b, v);
            assert_eq!(b.len(), unsigned_varint_len(v));
            let mut r = b.freeze();
            assert_eq!(read_unsigned_varint(&mut r, "t").unwrap(), v);
        }
        let mut long = Bytes::from_static(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x01]);
        assert!(read_unsigned_varint(&mut long, "t").is_err());
        let mut overflow = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0x1f]);
        assert!(read_unsigned_varint(&mut overflow, "t").is_err());
        for v in [0i64, -1, 1, i64::MIN, i64::MAX] {
            let mut b = BytesMut::new();
            write_varlong(&mut b, v);
            assert_eq!(read_varlong(&mut b.freeze(), "t").unwrap(), v);
        }
        for v in [0i32, -1, 1, i32::MIN, i32::MAX] {
            let mut b = BytesMut::new();
            write_varint(&mut b, v);
            assert_eq!(read_varint(&mut b.freeze(), "t").unwrap(), v);
        }
    }

    #[test]
    fn lengths_are_checked() {
        let mut neg = Bytes::from_static(&[0xff, 0xfe]);
        assert!(matches!(
            read_nullable_string(&mut neg, false, true, "s"),
            Err(DecodeError::InvalidLength { length: -2, .. })
        ));
        let mut huge = Bytes::from_static(&[0x7f, 0xff, 0xff, 0xff, 0]);
        assert!(matches!(
            read_array_len(&mut huge, false, 1, "a"),
            Err(DecodeError::TooManyElements { .. })
        ));
        let mut short = Bytes::from_static(&[0x00, 0x05, b'a']);
        assert!(matches!(
            read_string(&mut short, false, "s"),
            Err(DecodeError::Truncated { .. })
        ));
        let mut bad = Bytes::from_static(&[0x00, 0x01, 0xff]);
        assert!(matches!(
            read_string(&mut bad, false, "s"),
            Err(DecodeError::InvalidUtf8 { .. })
        ));
    }
}
