//! Basalt's Kafka wire protocol layer, sans-io: it turns bytes into typed requests and typed
//! responses into bytes, and never touches a socket or a runtime.
//!
//! - [`frame`]: size-prefixed framing with a bounded frame size.
//! - [`header`]: request and response headers, and which header version each API version uses.
//! - [`messages`]: every request, response and data structure, generated from Kafka's JSON
//!   message specs by `cargo xtask codegen`, with the [`ApiKey`] table and the
//!   [`RequestBody`] / [`ResponseBody`] dispatch enums.
//! - [`request`]: whole-frame entry points, [`decode_request_frame`] and [`encode_response`].
//! - [`codec`]: the bounded primitive readers and writers behind all of the above.
//! - [`error`]: Kafka's error codes.
//!
//! The `messages` modules are generated: regenerate them with `cargo xtask codegen` (reads
//! Kafka's specs from `../shared/kafka-message-specs`, or `--specs DIR` /
//! `BASALT_KAFKA_SPECS`), and check them with `cargo xtask codegen --check`. The build itself
//! never needs the specs.
//!
//! Invariant of the whole crate: decoding untrusted input never panics and never allocates more
//! than the input can justify (see [`codec`] for the exact bounds); `bytes` and `records`
//! values are zero-copy slices of the input frame.

pub mod codec;
pub mod encoder;
pub mod error;
pub mod frame;
pub mod header;
#[path = "generated/mod.rs"]
pub mod messages;
pub mod request;
pub mod types;

pub use codec::{DecodeError, EncodeError};
pub use encoder::{Chunk, Encoder, FileRegion, Frame, Records};
pub use error::ErrorCode;
pub use frame::{FrameDecoder, FrameError, FrameStatus};
pub use header::{RequestHeader, ResponseHeader, header_versions};
pub use messages::{ApiKey, RequestBody, ResponseBody};
pub use request::{
    RequestError, decode_request_frame, decode_response_frame, encode_request_frame,
    encode_response,
};
pub use types::{Message, RawTaggedField, Request, Uuid, VersionRange};
