//! Basalt's network layer: listeners (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL), one task per
//! connection, TLS (`tls`), the SASL exchange and the gate before it (`auth`, on the pure
//! mechanisms of `scram`), Kafka framing, requests in flight answered in order, limits, and
//! graceful shutdown. It knows nothing of Kafka semantics beyond framing, headers and
//! authentication: decoded requests go to a [`Handler`], which the broker implements.
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
//! - `NET-6`: a connection that must still log in buffers at most `sasl.server.max.receive.size`
//!   per frame, and a connection that sends nothing for `connections.max.idle.ms` is closed.
//! - `NET-7`: a TLS handshake that does not finish within [`TLS_HANDSHAKE_TIMEOUT`] closes the
//!   connection; a client certificate's subject becomes the principal (`User:CN=...`).

pub mod auth;
pub mod listener;
pub mod scram;
pub mod tls;
pub mod writer;
pub mod x509;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use basalt_protocol::{
    ApiKey, Frame, FrameDecoder, FrameStatus, RequestBody, RequestError, RequestHeader,
    ResponseBody, decode_request_frame, encode_response, header_versions,
};
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinSet;

pub use auth::{CredentialSource, SaslConfig};
pub use listener::{ListenerConfig, PerIpLimit, SecurityProtocol};
pub use scram::{Mechanism, ScramCredential};
pub use tls::{ClientAuth, TlsSettings, TlsSource, TlsVersion, client_config};

/// How long a TLS handshake may take (`NET-7`).
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

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
    /// The listener the client came in on.
    pub(crate) listener: Arc<ListenerConfig>,
    /// Where its SASL exchange is.
    pub(crate) auth: parking_lot::Mutex<auth::AuthState>,
}

/// The principal of a connection that has not authenticated.
pub const ANONYMOUS: &str = "User:ANONYMOUS";

impl ConnectionInfo {
    /// A connection from `peer` to `local` on a PLAINTEXT listener, not yet authenticated.
    pub fn new(id: u64, peer: SocketAddr, local: SocketAddr) -> Self {
        ConnectionInfo::on_listener(id, peer, local, Arc::new(ListenerConfig::plaintext()))
    }

    /// A connection from `peer` to `local` accepted on `listener`, not yet authenticated.
    pub fn on_listener(
        id: u64,
        peer: SocketAddr,
        local: SocketAddr,
        listener: Arc<ListenerConfig>,
    ) -> Self {
        ConnectionInfo {
            id,
            peer,
            local,
            principal: std::sync::RwLock::new(ANONYMOUS.to_owned()),
            listener,
            auth: parking_lot::Mutex::new(auth::AuthState::default()),
        }
    }

    /// The name of the listener the client came in on (`PLAINTEXT`, `EXTERNAL`, ...).
    pub fn listener_name(&self) -> &str {
        &self.listener.name
    }

    /// The security protocol of that listener.
    pub fn security_protocol(&self) -> SecurityProtocol {
        self.listener.protocol
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
    /// `max.connections`: connections served at once over all listeners; more wait in the
    /// accept queue (each listener's own `max_connections` closes them instead).
    pub max_connections: usize,
    /// `max.connections.per.ip` and `max.connections.per.ip.overrides`, over all listeners
    /// (`LST-2`).
    pub max_connections_per_ip: PerIpLimit,
    /// `max.connection.creation.rate`: new connections a second over all listeners; 0 is no
    /// limit (`LST-3`).
    pub max_connection_creation_rate: u32,
    /// How long shutdown waits for in-flight requests before closing connections anyway.
    pub shutdown_grace: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_frame_bytes: basalt_protocol::frame::DEFAULT_MAX_FRAME_BYTES,
            max_in_flight: 128,
            max_connections: 10_000,
            max_connections_per_ip: PerIpLimit::default(),
            max_connection_creation_rate: 0,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

static NEXT_CONNECTION_ID: AtomicU64 = AtomicU64::new(1);

/// Accepts connections on `listener` (a PLAINTEXT listener named `PLAINTEXT`) and serves them
/// with `handler` until `shutdown` resolves, then drains connections (`NET-4`) and returns.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) {
    serve_listeners(
        vec![(listener, ListenerConfig::plaintext())],
        handler,
        limits,
        shutdown,
    )
    .await;
}

/// Serves every listener with `handler` until `shutdown` resolves, then drains their
/// connections (`NET-4`) and returns. `limits.max_connections` counts across all listeners.
pub async fn serve_listeners<H: Handler>(
    listeners: Vec<(TcpListener, ListenerConfig)>,
    handler: Arc<H>,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let shared = Arc::new(Shared {
        permits: Arc::new(Semaphore::new(
            limits.max_connections.clamp(1, Semaphore::MAX_PERMITS),
        )),
        per_ip: Arc::new(listener::PerIp::default()),
        rate: parking_lot::Mutex::new(listener::CreationRate::new(
            limits.max_connection_creation_rate,
        )),
    });
    let mut loops = JoinSet::new();
    for (listener, config) in listeners {
        loops.spawn(accept_loop(
            listener,
            Arc::new(config),
            Arc::clone(&handler),
            limits.clone(),
            Arc::clone(&shared),
            stop_rx.clone(),
        ));
    }
    shutdown.await;
    let _ = stop_tx.send(true);
    while loops.join_next().await.is_some() {}
}

/// What the accept loops of all listeners share: the broker-wide limits.
struct Shared {
    /// `max.connections`.
    permits: Arc<Semaphore>,
    /// Connections per address (`max.connections.per.ip`).
    per_ip: Arc<listener::PerIp>,
    /// `max.connection.creation.rate`.
    rate: parking_lot::Mutex<listener::CreationRate>,
}

async fn accept_loop<H: Handler>(
    listener: TcpListener,
    config: Arc<ListenerConfig>,
    handler: Arc<H>,
    limits: ServerLimits,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let local = listener.local_addr().ok();
    let per_ip = Arc::clone(&shared.per_ip);
    let listener_slots = Arc::new(Semaphore::new(
        config.max_connections.min(Semaphore::MAX_PERMITS),
    ));
    let mut rate = listener::CreationRate::new(config.max_connection_creation_rate);
    let mut connections = JoinSet::new();
    loop {
        if *stop.borrow() {
            break;
        }
        let permit = tokio::select! {
            _ = stop.changed() => break,
            permit = Arc::clone(&shared.permits).acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        // LST-3: beyond the listener's or the broker's creation rate, accepting waits.
        let now = std::time::Instant::now();
        let wait = rate.wait(now).max(shared.rate.lock().wait(now));
        if !wait.is_zero() {
            tokio::select! {
                _ = stop.changed() => break,
                _ = tokio::time::sleep(wait) => {}
            }
        }
        let accepted = tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                // LST-2: over a limit, the connection is closed before a byte is read.
                let Ok(listener_slot) = Arc::clone(&listener_slots).try_acquire_owned() else {
                    tracing::warn!(listener = %config.name, %peer, limit = config.max_connections, "too many connections on this listener (max.connections); closing");
                    drop(stream);
                    continue;
                };
                let ip_limit = limits.max_connections_per_ip.of(peer.ip());
                let Some(ip_slot) = per_ip.acquire(peer.ip(), ip_limit) else {
                    tracing::warn!(listener = %config.name, %peer, limit = ip_limit, "too many connections from this address (max.connections.per.ip); closing");
                    drop(stream);
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let info = Arc::new(ConnectionInfo::on_listener(
                    NEXT_CONNECTION_ID.fetch_add(1, Ordering::Relaxed),
                    peer,
                    stream.local_addr().unwrap_or(peer),
                    Arc::clone(&config),
                ));
                let handler = Arc::clone(&handler);
                let limits = limits.clone();
                let stop = stop.clone();
                let tls = config.tls.as_ref().map(|t| t.acceptor());
                connections.spawn(async move {
                    match tls {
                        None => {
                            let (reader, writer) = stream.into_split();
                            let writer = writer::SocketWriter::new(writer);
                            serve_connection(reader, writer, info, handler, limits, stop).await;
                        }
                        Some(acceptor) => {
                            let handshake =
                                tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls::accept(&acceptor, stream))
                                    .await;
                            match handshake {
                                Ok(Ok(tls)) => {
                                    let subject = tls
                                        .get_ref()
                                        .1
                                        .peer_certificates()
                                        .and_then(|c| c.first())
                                        .and_then(|c| x509::principal_of(c));
                                    if let Some(principal) = subject {
                                        tracing::info!(conn = info.id, peer = %info.peer, listener = %info.listener.name, %principal, "TLS client certificate accepted");
                                        info.set_principal(principal);
                                    }
                                    let (reader, writer) = tokio::io::split(tls);
                                    let writer = writer::CopyWriter::new(writer);
                                    serve_connection(reader, writer, info, handler, limits, stop)
                                        .await;
                                }
                                Ok(Err(err)) => {
                                    tracing::warn!(conn = info.id, peer = %info.peer, listener = %info.listener.name, error = %err, "TLS handshake failed");
                                }
                                Err(_) => {
                                    tracing::warn!(conn = info.id, peer = %info.peer, listener = %info.listener.name, "TLS handshake timed out");
                                }
                            }
                        }
                    }
                    drop(ip_slot);
                    drop(listener_slot);
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
    tracing::info!(listener = ?local, name = %config.name, open = connections.len(), "stopped accepting; draining connections");
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
    Frame(Frame),
    Nothing,
    Close(String),
}

async fn serve_connection<R, W, H>(
    mut reader: R,
    mut writer: W,
    info: Arc<ConnectionInfo>,
    handler: Arc<H>,
    limits: ServerLimits,
    mut stop: watch::Receiver<bool>,
) where
    R: AsyncRead + Unpin + Send + 'static,
    W: writer::FrameWriter,
    H: Handler,
{
    tracing::debug!(conn = info.id, peer = %info.peer, listener = %info.listener.name, "connection opened");
    let (slots_tx, mut slots_rx) =
        mpsc::channel::<oneshot::Receiver<Slot>>(limits.max_in_flight.max(1));
    let conn_id = info.id;
    // NET-1: the writer awaits slots in the order the reader queued them.
    let writer_task = tokio::spawn(async move {
        while let Some(slot) = slots_rx.recv().await {
            match slot.await {
                Ok(Slot::Frame(frame)) => {
                    if let Err(err) = writer.write_frame(&frame).await {
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
        writer.shutdown().await;
    });

    let sasl_limit = info
        .listener
        .sasl
        .as_ref()
        .map_or(limits.max_frame_bytes, |s| {
            s.max_receive_bytes.min(limits.max_frame_bytes)
        });
    let max_idle = info.listener.max_idle;
    let mut idle_deadline = max_idle.map(|d| tokio::time::Instant::now() + d);
    let mut buf = BytesMut::with_capacity(16 * 1024);
    'read: loop {
        loop {
            // NET-6: a small frame limit until the connection has logged in.
            let limit = if info.needs_login() {
                sasl_limit
            } else {
                limits.max_frame_bytes
            };
            let mut decoder = FrameDecoder::new(limit);
            match decoder.decode(&mut buf) {
                Ok(FrameStatus::Frame(frame)) => {
                    let (slot_tx, slot_rx) = oneshot::channel();
                    if slots_tx.send(slot_rx).await.is_err() {
                        break 'read;
                    }
                    let raw = info.auth.lock().raw_tokens;
                    let close = if raw {
                        raw_token(&frame, &info, slot_tx).await
                    } else {
                        dispatch(frame, &info, &handler, slot_tx).await
                    };
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
        let idle = async {
            match idle_deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            read = reader.read_buf(&mut buf) => match read {
                Ok(0) => break,
                Ok(_) => {
                    idle_deadline = max_idle.map(|d| tokio::time::Instant::now() + d);
                }
                Err(err) => {
                    tracing::debug!(conn = info.id, error = %err, "read failed");
                    break;
                }
            },
            _ = idle => {
                tracing::info!(conn = info.id, peer = %info.peer, "closing idle connection (connections.max.idle.ms)");
                break;
            }
            _ = stop.changed() => break,
        }
    }
    drop(slots_tx);
    let _ = writer_task.await;
    tracing::debug!(conn = info.id, "connection closed");
}

/// A raw SASL token after a v0 SaslHandshake: answered with a length-prefixed token, or the
/// connection closes; returns whether it must close now.
async fn raw_token(frame: &[u8], info: &Arc<ConnectionInfo>, slot: oneshot::Sender<Slot>) -> bool {
    match info.sasl_raw_token(frame).await {
        Some(reply) => {
            let mut out = BytesMut::with_capacity(4 + reply.len());
            out.extend_from_slice(&u32::try_from(reply.len()).unwrap_or(0).to_be_bytes());
            out.extend_from_slice(&reply);
            let _ = slot.send(Slot::Frame(out.freeze().into()));
            false
        }
        None => {
            let _ = slot.send(Slot::Close("SASL authentication failed".into()));
            true
        }
    }
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
            // AUTH-1: only the login APIs before authentication.
            if let Err(reason) = info.admit(api_key) {
                tracing::warn!(conn = info.id, peer = %info.peer, %reason, "refusing request; closing connection");
                let _ = slot.send(Slot::Close(reason));
                return true;
            }
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
                    // AUTH-2: a failed login is answered, then the connection closes.
                    let close = matches!(outcome, Outcome::Close { .. }) || info.auth.lock().failed;
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
        Ok(frame) => Slot::Frame(frame),
        Err(err) => {
            tracing::error!(conn = info.id, ?api_key, version, error = %err, "could not encode response");
            Slot::Close(format!("response encoding failed: {err}"))
        }
    }
}
