//! Request and response headers, and the rule that picks their version for an API version.
//!
//! Request header v0 is `api_key`, `api_version`, `correlation_id`; v1 adds a nullable
//! `client_id` that is a classic (int16-length) string even in flexible versions; v2 adds a
//! tagged-field section. Response header v0 is the `correlation_id`; v1 adds tagged fields.
//!
//! Invariant ([`header_versions`]): flexible API versions use request header v2 and response
//! header v1, others v1 and v0; ApiVersions responses always use header v0 (so clients that
//! sent a too-new version can still read the error), and ControlledShutdown v0 uses request
//! header v0.

use bytes::{BufMut, Bytes, BytesMut};

use crate::codec::{self, DecodeError, EncodeError};
use crate::messages::ApiKey;
use crate::types::RawTaggedField;

/// The header of every request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestHeader {
    /// The API key of the request.
    pub request_api_key: i16,
    /// The API version of the request.
    pub request_api_version: i16,
    /// The correlation ID, echoed in the response.
    pub correlation_id: i32,
    /// The client ID (header v1+; may be null). Not written in header v0.
    pub client_id: Option<String>,
    /// Tagged fields of header v2 (none are defined by Kafka today).
    pub unknown_tagged_fields: Vec<RawTaggedField>,
}

impl RequestHeader {
    /// Decodes a request header of `header_version` (0, 1 or 2) from the front of `buf`.
    pub fn decode(buf: &mut Bytes, header_version: i16) -> Result<Self, DecodeError> {
        if !(0..=2).contains(&header_version) {
            return Err(DecodeError::UnsupportedVersion {
                message: "RequestHeader",
                version: header_version,
            });
        }
        let request_api_key = codec::read_i16(buf, "RequestHeader.RequestApiKey")?;
        let request_api_version = codec::read_i16(buf, "RequestHeader.RequestApiVersion")?;
        let correlation_id = codec::read_i32(buf, "RequestHeader.CorrelationId")?;
        let client_id = if header_version >= 1 {
            codec::read_nullable_string(buf, false, true, "RequestHeader.ClientId")?
        } else {
            None
        };
        let unknown_tagged_fields = if header_version >= 2 {
            read_raw_tagged_fields(buf, "RequestHeader")?
        } else {
            Vec::new()
        };
        Ok(RequestHeader {
            request_api_key,
            request_api_version,
            correlation_id,
            client_id,
            unknown_tagged_fields,
        })
    }

    /// Appends the header encoded at `header_version` (0, 1 or 2) to `buf`.
    pub fn encode(&self, buf: &mut BytesMut, header_version: i16) -> Result<(), EncodeError> {
        if !(0..=2).contains(&header_version) {
            return Err(EncodeError::UnsupportedVersion {
                message: "RequestHeader",
                version: header_version,
            });
        }
        buf.put_i16(self.request_api_key);
        buf.put_i16(self.request_api_version);
        buf.put_i32(self.correlation_id);
        if header_version >= 1 {
            codec::write_nullable_string(
                buf,
                self.client_id.as_deref(),
                false,
                true,
                "RequestHeader.ClientId",
            )?;
        }
        write_raw_tagged_fields(
            buf,
            &self.unknown_tagged_fields,
            header_version >= 2,
            "RequestHeader",
        )
    }
}

/// The header of every response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResponseHeader {
    /// The correlation ID of the request this answers.
    pub correlation_id: i32,
    /// Tagged fields of header v1 (none are defined by Kafka today).
    pub unknown_tagged_fields: Vec<RawTaggedField>,
}

impl ResponseHeader {
    /// Decodes a response header of `header_version` (0 or 1) from the front of `buf`.
    pub fn decode(buf: &mut Bytes, header_version: i16) -> Result<Self, DecodeError> {
        if !(0..=1).contains(&header_version) {
            return Err(DecodeError::UnsupportedVersion {
                message: "ResponseHeader",
                version: header_version,
            });
        }
        let correlation_id = codec::read_i32(buf, "ResponseHeader.CorrelationId")?;
        let unknown_tagged_fields = if header_version >= 1 {
            read_raw_tagged_fields(buf, "ResponseHeader")?
        } else {
            Vec::new()
        };
        Ok(ResponseHeader {
            correlation_id,
            unknown_tagged_fields,
        })
    }

    /// Appends the header encoded at `header_version` (0 or 1) to `buf`.
    pub fn encode(&self, buf: &mut BytesMut, header_version: i16) -> Result<(), EncodeError> {
        if !(0..=1).contains(&header_version) {
            return Err(EncodeError::UnsupportedVersion {
                message: "ResponseHeader",
                version: header_version,
            });
        }
        buf.put_i32(self.correlation_id);
        write_raw_tagged_fields(
            buf,
            &self.unknown_tagged_fields,
            header_version >= 1,
            "ResponseHeader",
        )
    }
}

fn read_raw_tagged_fields(
    buf: &mut Bytes,
    structure: &'static str,
) -> Result<Vec<RawTaggedField>, DecodeError> {
    let count = codec::read_tagged_count(buf, structure)?;
    let mut fields = Vec::with_capacity(count);
    for _ in 0..count {
        let (tag, data) = codec::read_tagged_field(buf, structure)?;
        fields.push(RawTaggedField { tag, data });
    }
    Ok(fields)
}

fn write_raw_tagged_fields(
    buf: &mut BytesMut,
    fields: &[RawTaggedField],
    flexible: bool,
    structure: &'static str,
) -> Result<(), EncodeError> {
    if flexible {
        codec::write_tagged_count(buf, fields.len(), structure)?;
        codec::RawTagWriter::new(fields).write_rest(buf, structure)
    } else if fields.is_empty() {
        Ok(())
    } else {
        Err(EncodeError::TaggedFieldsNotSupported {
            structure,
            version: 0,
        })
    }
}

/// The request header version used by `api_key` at `api_version`.
pub fn request_header_version(api_key: ApiKey, api_version: i16) -> i16 {
    if api_key == ApiKey::ControlledShutdown && api_version == 0 {
        0
    } else if api_key.request_flexible_versions().contains(api_version) {
        2
    } else {
        1
    }
}

/// The response header version used by `api_key` at `api_version`.
pub fn response_header_version(api_key: ApiKey, api_version: i16) -> i16 {
    if api_key == ApiKey::ApiVersions {
        0
    } else if api_key.response_flexible_versions().contains(api_version) {
        1
    } else {
        0
    }
}

/// `(request header version, response header version)` for `api_key` at `api_version`.
///
/// Versions beyond the highest defined one follow the open-ended flexible range, as Kafka does,
/// so the header of a request with an unsupported version can still be parsed.
pub fn header_versions(api_key: ApiKey, api_version: i16) -> (i16, i16) {
    (
        request_header_version(api_key, api_version),
        response_header_version(api_key, api_version),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_version_rules() {
        assert_eq!(header_versions(ApiKey::ApiVersions, 0), (1, 0));
        assert_eq!(header_versions(ApiKey::ApiVersions, 3), (2, 0));
        assert_eq!(header_versions(ApiKey::ApiVersions, 99), (2, 0));
        assert_eq!(header_versions(ApiKey::ControlledShutdown, 0), (0, 0));
        assert_eq!(header_versions(ApiKey::ControlledShutdown, 1), (1, 0));
        assert_eq!(header_versions(ApiKey::Produce, 8), (1, 0));
        assert_eq!(header_versions(ApiKey::Produce, 9), (2, 1));
        assert_eq!(header_versions(ApiKey::Metadata, 9), (2, 1));
        assert_eq!(header_versions(ApiKey::SaslHandshake, 1), (1, 0));
    }
}
