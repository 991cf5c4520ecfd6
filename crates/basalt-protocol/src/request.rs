//! Whole-frame entry points: a request frame body in, header and typed body out; a typed
//! response in, a size-prefixed frame out.
//!
//! Invariants: the header is parsed with the version [`header_versions`] prescribes; unknown API
//! keys and versions outside the spec range are distinct errors that keep what was parsed (the
//! header, or at least the correlation ID) so the broker can answer `UNSUPPORTED_VERSION`; bytes
//! after a body are ignored, as Kafka does.

use bytes::{Buf, Bytes};

use crate::codec::{DecodeError, EncodeError};
use crate::encoder::{Encoder, Frame};
use crate::frame;
use crate::header::{RequestHeader, ResponseHeader, header_versions, response_header_version};
use crate::messages::{ApiKey, RequestBody, ResponseBody};

/// Why a request frame could not be turned into a request.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RequestError {
    /// The header itself is malformed.
    #[error("malformed request header: {source}")]
    Header {
        /// The correlation ID, if the first eight bytes were present.
        correlation_id: Option<i32>,
        /// What was wrong.
        source: DecodeError,
    },
    /// The API key is not one this crate knows; the header could not be parsed further.
    #[error("unknown API key {api_key} (version {api_version})")]
    UnknownApiKey {
        /// The API key as sent.
        api_key: i16,
        /// The API version as sent.
        api_version: i16,
        /// The correlation ID as sent.
        correlation_id: i32,
    },
    /// The API version is outside the range the spec defines; the body was not parsed.
    #[error("unsupported version {} of {api_key}", header.request_api_version)]
    UnsupportedVersion {
        /// The API.
        api_key: ApiKey,
        /// The parsed header.
        header: RequestHeader,
    },
    /// The body is malformed.
    #[error("malformed {api_key} request: {source}")]
    Body {
        /// The API.
        api_key: ApiKey,
        /// The parsed header.
        header: RequestHeader,
        /// What was wrong.
        source: DecodeError,
    },
}

impl RequestError {
    /// The correlation ID of the offending request, if it could be read.
    pub fn correlation_id(&self) -> Option<i32> {
        match self {
            RequestError::Header { correlation_id, .. } => *correlation_id,
            RequestError::UnknownApiKey { correlation_id, .. } => Some(*correlation_id),
            RequestError::UnsupportedVersion { header, .. } | RequestError::Body { header, .. } => {
                Some(header.correlation_id)
            }
        }
    }

    /// The parsed header, if parsing got that far.
    pub fn header(&self) -> Option<&RequestHeader> {
        match self {
            RequestError::Header { .. } | RequestError::UnknownApiKey { .. } => None,
            RequestError::UnsupportedVersion { header, .. } | RequestError::Body { header, .. } => {
                Some(header)
            }
        }
    }
}

fn peek_i16(b: &[u8], at: usize) -> Option<i16> {
    let raw = b.get(at..at.checked_add(2)?)?;
    Some(i16::from_be_bytes([*raw.first()?, *raw.get(1)?]))
}

fn peek_i32(b: &[u8], at: usize) -> Option<i32> {
    let raw = b.get(at..at.checked_add(4)?)?;
    let mut a = [0u8; 4];
    a.copy_from_slice(raw);
    Some(i32::from_be_bytes(a))
}

/// Decodes one request frame body (as returned by [`frame::FrameDecoder`]): the header, then
/// the body of the API and version the header names. Record data in the body are slices of
/// `frame`.
pub fn decode_request_frame(frame: Bytes) -> Result<(RequestHeader, RequestBody), RequestError> {
    let mut buf = frame;
    let correlation_id = peek_i32(&buf, 4);
    let (Some(raw_key), Some(api_version)) = (peek_i16(&buf, 0), peek_i16(&buf, 2)) else {
        let source = DecodeError::Truncated {
            field: "RequestHeader",
            needed: 8,
            remaining: buf.remaining(),
        };
        return Err(RequestError::Header {
            correlation_id,
            source,
        });
    };
    let Some(api_key) = ApiKey::from_i16(raw_key) else {
        return Err(match correlation_id {
            Some(correlation_id) => RequestError::UnknownApiKey {
                api_key: raw_key,
                api_version,
                correlation_id,
            },
            None => RequestError::Header {
                correlation_id,
                source: DecodeError::Truncated {
                    field: "RequestHeader.CorrelationId",
                    needed: 8,
                    remaining: buf.remaining(),
                },
            },
        });
    };
    let (header_version, _) = header_versions(api_key, api_version);
    let header =
        RequestHeader::decode(&mut buf, header_version).map_err(|source| RequestError::Header {
            correlation_id,
            source,
        })?;
    if !api_key.valid_versions().contains(api_version) {
        return Err(RequestError::UnsupportedVersion { api_key, header });
    }
    let body = match RequestBody::decode(api_key, api_version, &mut buf) {
        Ok(body) => body,
        Err(source) => {
            return Err(RequestError::Body {
                api_key,
                header,
                source,
            });
        }
    };
    // Bytes after the body are ignored, as Kafka brokers do: librdkafka 2.x appends three zero
    // bytes to its all-topics Metadata request (librdkafka issue 5049), and Kafka accepts it.
    Ok((header, body))
}

/// Encodes a response as a complete size-prefixed frame: response header of `header_version`
/// (see [`response_header_version`]) with `correlation_id`, then `body` at `version`. Large
/// record sets and records still in files are separate parts of the frame, not copies.
pub fn encode_response(
    header_version: i16,
    correlation_id: i32,
    body: &ResponseBody,
    version: i16,
) -> Result<Frame, EncodeError> {
    let mut out = Encoder::with_capacity(64);
    out.extend_from_slice(&[0; frame::SIZE_PREFIX_LEN]);
    ResponseHeader {
        correlation_id,
        unknown_tagged_fields: Vec::new(),
    }
    .encode(&mut out, header_version)?;
    body.encode(&mut out, version)?;
    out.finish_frame()
}

/// Encodes a request as a complete size-prefixed frame, with the header version the API and
/// `header.request_api_version` call for. `header.request_api_key` is set from `body`.
pub fn encode_request_frame(
    header: &RequestHeader,
    body: &RequestBody,
) -> Result<Bytes, EncodeError> {
    let api_key = body.api_key();
    let version = header.request_api_version;
    let (header_version, _) = header_versions(api_key, version);
    let mut out = Encoder::with_capacity(64);
    out.extend_from_slice(&[0; frame::SIZE_PREFIX_LEN]);
    let header = RequestHeader {
        request_api_key: api_key.key(),
        ..header.clone()
    };
    header.encode(&mut out, header_version)?;
    body.encode(&mut out, version)?;
    out.finish_frame()?
        .into_bytes()
        .ok_or(EncodeError::FileRecordsNotContiguous { field: "request" })
}

/// Decodes one response frame body (without its size prefix) for a request of `api_key` at
/// `version`, checking that nothing trails the body.
pub fn decode_response_frame(
    api_key: ApiKey,
    version: i16,
    frame: Bytes,
) -> Result<(ResponseHeader, ResponseBody), DecodeError> {
    let mut buf = frame;
    let header = ResponseHeader::decode(&mut buf, response_header_version(api_key, version))?;
    let body = ResponseBody::decode(api_key, version, &mut buf)?;
    if buf.has_remaining() {
        return Err(DecodeError::TrailingBytes {
            message: "response body",
            remaining: buf.remaining(),
        });
    }
    Ok((header, body))
}
