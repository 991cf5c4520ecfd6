//! Basalt's network layer: TCP listeners, one task per connection, Kafka framing, requests in
//! flight answered in order, limits, and graceful shutdown. It knows nothing of Kafka semantics
//! beyond framing and headers: decoded requests go to a [`Handler`], which the broker implements.
//!
//! # Invariants
//! - `NET-1`: responses leave a connection in the order its requests arrived, whatever order the
//!   deferred parts of their handling finish in (up to `max_in_flight` at once).
//! - `NET-2`: a connection buffers at most one frame of `max_frame_bytes` plus the read chunk; a
//!   larger size prefix closes that connection before its body is read.
//! - `NET-3`: a malformed frame or request closes only its own connection, with a log line.
//! - `NET-4`: on shutdown the listener stops accepting, connections stop reading new requests,
//!   requests already read are answered, then connections close.
//! - `NET-5`: a request's handling starts only after the previous request of the same connection
//!   finished its first stage ([`Handler::handle`]); only what a handler defers
//!   ([`Outcome::Later`]) overlaps with later requests. Appends from one connection therefore
//!   reach the log in the order they were sent, as with Kafka, while waiting for an fsync or a long
//!   poll does not hold the connection up.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use basalt_protocol::{
    ApiKey, FrameDecoder, FrameStatus, RequestBody, RequestError, RequestHeader, ResponseBody,
    decode_request_frame, encode_response, header_versions,
};
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinSet;

/// Facts about the connection a request came in on.
#[derive(Debug)]
pub struct ConnectionInfo {
    /// A process-unique id of the connection.
    pub id: u64,
    /// The client's address.
    pub peer: SocketAddr,
    /// The local address the client connected to.
    pub local: SocketAddr,
    /// Who the client is, as Kafka names principals (`User:alice`); `User:ANONYMOUS` until it
    /// authenticates.
    principal: std::sync::RwLock<String>,
}

/// The principal of a connection that has not authenticated.
pub const ANONYMOUS: &str = "User:ANONYMOUS";

impl ConnectionInfo {
    /// A connection from `peer` to `local`, not yet authenticated.
    pub fn new(id: u64, peer: SocketAddr, local: SocketAddr) -> Self {
        ConnectionInfo {
            id,
            peer,
            local,
            principal: std::sync::RwLock::new(ANONYMOUS.to_owned()),
        }
    }

    /// The connection's principal (`User:ANONYMOUS` until it authenticates).
    pub fn principal(&self) -> String {
        self.principal
            .read()
            .map_or_else(|p| p.into_inner().clone(), |p| p.clone())
    }

    /// Records who the client authenticated as.
    pub fn set_principal(&self, principal: impl Into<String>) {
        let principal = principal.into();
        match self.principal.write() {
            Ok(mut p) => *p = principal,
            Err(poisoned) => *poisoned.into_inner() = principal,
        }
    }
}

/// What the handler wants done with a request.
pub enum Outcome {
    /// Send this response, encoded at the request's version.
    Respond(ResponseBody),
    /// Send this response, encoded at `version` instead of the request's (ApiVersions answers
    /// an unsupported version with a v0 response).
    RespondAt {
        /// The response.
        body: ResponseBody,
        /// The version to encode it at.
        version: i16,
    },
    /// Send nothing (a produce request with `acks = 0`).
    NoResponse,
    /// Finish later: the future runs concurrently with the requests after this one (a produce
    /// waiting for its fsync, a long-polling fetch); its outcome is still sent in order.
    Later(Pin<Box<dyn Future<Output = Outcome> + Send>>),
    /// Close the connection after the responses before this one.
    Close {
        /// Why, for the log.
        reason: String,
    },
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Respond(body) => f.debug_tuple("Respond").field(body).finish(),
            Outcome::RespondAt { body, version } => f
                .debug_struct("RespondAt")
                .field("body", body)
                .field("version", version)
                .finish(),
            Outcome::NoResponse => f.write_str("NoResponse"),
            Outcome::Later(_) => f.write_str("Later(..)"),
            Outcome::Close { reason } => f.debug_struct("Close").field("reason", reason).finish(),
        }
    }
}

/// The broker side of the server: turns requests into outcomes.
pub trait Handler: Send + Sync + 'static {
    /// Handles one decoded request.
    fn handle(
        self: Arc<Self>,
        conn: Arc<ConnectionInfo>,
        header: RequestHeader,
        body: RequestBody,
    ) -> impl Future<Output = Outcome> + Send;

    /// Answers a request whose version the codec cannot decode; by default the connection
    /// closes, as Kafka does. ApiVersions overrides this (KIP-511).
    fn unsupported_version(&self, api_key: ApiKey, header: &RequestHeader) -> Outcome {
        Outcome::Close {
            reason: format!(
                "unsupported version {} of {api_key:?}",
                header.request_api_version
            ),
        }
    }
}

/// Limits that protect the broker from its clients.
#[derive(Debug, Clone)]
pub struct ServerLimits {
    /// `socket.request.max.bytes`: largest request frame.
    pub max_frame_bytes: usize,
    /// Requests read but not yet answered, per connection; reading pauses at the limit.
    pub max_in_flight: usize,
    /// `max.connections`: connections served at once; more wait in the accept queue.
    pub max_connections: usize,
    /// How long shutdown waits for in-flight requests before closing connections anyway.
    pub shutdown_grace: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_frame_bytes: basalt_protocol::frame::DEFAULT_MAX_FRAME_BYTES,
            max_in_flight: 128,
            max_connections: 10_000,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

static NEXT_CONNECTION_ID: AtomicU64 = AtomicU64::new(1);

/// Accepts connections on `listener` and serves them with `handler` until `shutdown` resolves,
/// then drains connections (`NET-4`) and returns.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) {
    let local = listener.local_addr().ok();
    let (stop_tx, stop_rx) = watch::channel(false);
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                let info = Arc::new(ConnectionInfo::new(
                    NEXT_CONNECTION_ID.fetch_add(1, Ordering::Relaxed),
                    peer,
                    stream.local_addr().unwrap_or(peer),
                ));
                let handler = Arc::clone(&handler);
                let limits = limits.clone();
                let stop = stop_rx.clone();
                connections.spawn(async move {
                    serve_connection(stream, info, handler, limits, stop).await;
                    drop(permit);
                });
            }
            Err(err) => {
                // Out of file descriptors and similar: back off instead of spinning.
                tracing::warn!(error = %err, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        // Reap finished connections so the set does not grow.
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    tracing::info!(listener = ?local, open = connections.len(), "stopped accepting; draining connections");
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(limits.shutdown_grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("connections still busy after the shutdown grace period; closing them");
        connections.abort_all();
    }
}

/// What the writer task sends for one request slot.
enum Slot {
    Frame(Bytes),
    Nothing,
    Close(String),
}

async fn serve_connection<H: Handler>(
    stream: TcpStream,
    info: Arc<ConnectionInfo>,
    handler: Arc<H>,
    limits: ServerLimits,
    mut stop: watch::Receiver<bool>,
) {
    tracing::debug!(conn = info.id, peer = %info.peer, "connection opened");
    let (mut reader, mut writer) = stream.into_split();
    let (slots_tx, mut slots_rx) =
        mpsc::channel::<oneshot::Receiver<Slot>>(limits.max_in_flight.max(1));
    let conn_id = info.id;
    // NET-1: the writer awaits slots in the order the reader queued them.
    let writer_task = tokio::spawn(async move {
        while let Some(slot) = slots_rx.recv().await {
            match slot.await {
                Ok(Slot::Frame(bytes)) => {
                    if let Err(err) = writer.write_all(&bytes).await {
                        tracing::debug!(conn = conn_id, error = %err, "write failed");
                        break;
                    }
                }
                Ok(Slot::Nothing) => {}
                Ok(Slot::Close(reason)) => {
                    tracing::info!(conn = conn_id, %reason, "closing connection");
                    break;
                }
                Err(_) => break,
            }
        }
        let _ = writer.shutdown().await;
    });

    let mut decoder = FrameDecoder::new(limits.max_frame_bytes);
    let mut buf = BytesMut::with_capacity(64 * 1024);
    'read: loop {
        loop {
            match decoder.decode(&mut buf) {
                Ok(FrameStatus::Frame(frame)) => {
                    let (slot_tx, slot_rx) = oneshot::channel();
                    if slots_tx.send(slot_rx).await.is_err() {
                        break 'read;
                    }
                    let close = dispatch(frame, &info, &handler, slot_tx).await;
                    if close {
                        break 'read;
                    }
                }
                Ok(FrameStatus::Incomplete { needed }) => {
                    // NET-2: never reserve more than one frame's worth.
                    buf.reserve(needed.min(1 << 20));
                    break;
                }
                Err(err) => {
                    tracing::warn!(conn = info.id, peer = %info.peer, error = %err, "invalid frame; closing connection");
                    break 'read;
                }
            }
        }
        tokio::select! {
            read = reader.read_buf(&mut buf) => match read {
                Ok(0) => break,
                Ok(_) => {}
                Err(err) => {
                    tracing::debug!(conn = info.id, error = %err, "read failed");
                    break;
                }
            },
            _ = stop.changed() => break,
        }
    }
    drop(slots_tx);
    let _ = writer_task.await;
    tracing::debug!(conn = info.id, "connection closed");
}

/// Decodes one frame and handles it (its deferred part in a task of its own); returns whether
/// the connection must close now.
async fn dispatch<H: Handler>(
    frame: Bytes,
    info: &Arc<ConnectionInfo>,
    handler: &Arc<H>,
    slot: oneshot::Sender<Slot>,
) -> bool {
    match decode_request_frame(frame) {
        Ok((header, body)) => {
            let api_key = body.api_key();
            let correlation_id = header.correlation_id;
            let version = header.request_api_version;
            // NET-5: the handler's first stage runs here, in arrival order, before the next
            // request is read; only what it defers runs concurrently.
            let outcome = Arc::clone(handler)
                .handle(Arc::clone(info), header, body)
                .await;
            match outcome {
                Outcome::Later(later) => {
                    let info = Arc::clone(info);
                    tokio::spawn(async move {
                        let outcome = later.await;
                        let _ = slot.send(encode(&info, api_key, correlation_id, version, outcome));
                    });
                    false
                }
                outcome => {
                    let close = matches!(outcome, Outcome::Close { .. });
                    let _ = slot.send(encode(info, api_key, correlation_id, version, outcome));
                    close
                }
            }
        }
        Err(RequestError::UnsupportedVersion { api_key, header }) => {
            let outcome = handler.unsupported_version(api_key, &header);
            let close = matches!(outcome, Outcome::Close { .. });
            let _ = slot.send(encode(
                info,
                api_key,
                header.correlation_id,
                header.request_api_version,
                outcome,
            ));
            close
        }
        Err(err) => {
            let _ = slot.send(Slot::Close(format!("malformed request: {err}")));
            true
        }
    }
}

fn encode(
    info: &ConnectionInfo,
    api_key: ApiKey,
    correlation_id: i32,
    request_version: i16,
    outcome: Outcome,
) -> Slot {
    let (body, version) = match outcome {
        Outcome::Respond(body) => (body, request_version),
        Outcome::RespondAt { body, version } => (body, version),
        Outcome::NoResponse => return Slot::Nothing,
        Outcome::Later(_) => return Slot::Close("a deferred outcome deferred again".into()),
        Outcome::Close { reason } => return Slot::Close(reason),
    };
    let (_, header_version) = header_versions(api_key, version);
    match encode_response(header_version, correlation_id, &body, version) {
        Ok(bytes) => Slot::Frame(bytes),
        Err(err) => {
            tracing::error!(conn = info.id, ?api_key, version, error = %err, "could not encode response");
            Slot::Close(format!("response encoding failed: {err}"))
        }
    }
}
