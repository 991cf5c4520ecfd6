//! Requests from this node to other nodes of the cluster, in the Kafka protocol: the follower
//! fetches (`fetcher.rs`), and the transaction coordinator's WriteTxnMarkers and partition
//! leaders' transaction verifications (`txns.rs`).
//!
//! Which listener of the other nodes is used, and how this node logs in there, is
//! [`PeerSecurity`] (`inter.broker.listener.name`): by default their PLAINTEXT listener, as
//! the anonymous principal; a named listener may be SSL (rustls, verifying the peer's
//! certificate against `ssl.ca.location`, presenting this node's certificate when it has one),
//! SASL_PLAINTEXT or SASL_SSL (SaslHandshake v1 and SaslAuthenticate v2 with
//! `sasl.mechanism.inter.broker.protocol` as the configured user, who must be a super user
//! where an authorizer is on).
//!
//! [`Peers`] keeps up to [`POOL`] connections per node for the coordinator's requests, so
//! transactions of different producers do not wait for each other's markers; a connection
//! that fails or times out is dropped and the next request on it opens a new one.
//!
//! # Invariants
//! - `PEER-1`: one request at a time per connection, and an answer is taken only with the
//!   correlation id it was sent with; anything else drops the connection.
//! - `PEER-2`: no request but the login goes over a connection before its login succeeded, and
//!   a connection whose session lifetime (KIP-368) has passed is replaced before its next
//!   request.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use basalt_cluster::metadata::{Endpoint, MetadataImage, NodeId};
use basalt_protocol::messages::sasl_authenticate_request::SaslAuthenticateRequest;
use basalt_protocol::messages::sasl_handshake_request::SaslHandshakeRequest;
use basalt_protocol::{
    ApiKey, FrameDecoder, FrameStatus, RequestBody, RequestHeader, ResponseBody,
    decode_response_frame, encode_request_frame,
};
use basalt_server::Mechanism;
use basalt_server::scram::SaslClient;
use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest answer accepted.
const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// How this node reaches the others: the listener name to use on them (`None`: their first
/// PLAINTEXT listener, preferring the name of this node's first PLAINTEXT listener), the TLS
/// client settings for an SSL or SASL_SSL listener, and the SASL login for a SASL one.
#[derive(Clone, Default)]
pub struct PeerSecurity {
    /// `inter.broker.listener.name`.
    pub listener: Option<String>,
    /// TLS client settings (roots from `ssl.ca.location`, this node's certificate if any).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// `sasl.mechanism.inter.broker.protocol` and this node's user and password.
    pub sasl: Option<(Mechanism, String, String)>,
}

impl std::fmt::Debug for PeerSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerSecurity")
            .field("listener", &self.listener)
            .field("tls", &self.tls.is_some())
            .field(
                "sasl",
                &self.sasl.as_ref().map(|(m, user, _)| (m.name(), user)),
            )
            .finish()
    }
}

/// Where and how to reach a node: its address, and whether that listener speaks TLS and SASL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PeerAddress {
    /// `host:port`.
    pub addr: String,
    /// The host, for the TLS server name.
    pub host: String,
    /// SSL or SASL_SSL.
    pub tls: bool,
    /// SASL_PLAINTEXT or SASL_SSL.
    pub sasl: bool,
}

/// Node `node`'s address on the listener `security` names, or else on a PLAINTEXT listener
/// (preferring the name of `me`'s first PLAINTEXT listener).
pub(crate) fn node_address(
    image: &MetadataImage,
    me: NodeId,
    node: NodeId,
    security: &PeerSecurity,
) -> Option<PeerAddress> {
    let node = image.nodes.get(&node)?;
    let endpoint = match &security.listener {
        Some(name) => node.endpoints.iter().find(|e| &e.name == name)?,
        None => {
            let plaintext = |e: &&Endpoint| e.security_protocol == "PLAINTEXT";
            let preferred = image
                .nodes
                .get(&me)
                .and_then(|n| n.endpoints.iter().find(plaintext).map(|e| e.name.clone()));
            node.endpoints
                .iter()
                .filter(plaintext)
                .find(|e| Some(&e.name) == preferred.as_ref())
                .or_else(|| node.endpoints.iter().find(plaintext))?
        }
    };
    let protocol = endpoint.security_protocol.as_str();
    Some(PeerAddress {
        addr: format!("{}:{}", endpoint.host, endpoint.port),
        host: endpoint.host.clone(),
        tls: matches!(protocol, "SSL" | "SASL_SSL"),
        sasl: matches!(protocol, "SASL_PLAINTEXT" | "SASL_SSL"),
    })
}

/// A connection's byte stream: plain TCP or TLS over it.
trait PeerIo: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> PeerIo for T {}

/// One connection to another node (`PEER-1`).
pub(crate) struct PeerConnection {
    stream: Box<dyn PeerIo>,
    buf: BytesMut,
    decoder: FrameDecoder,
    correlation: i32,
    client_id: &'static str,
    /// When the login's session lifetime ends (KIP-368), if it has one.
    expires: Option<Instant>,
}

impl PeerConnection {
    /// Connects to `to`, with TLS and a SASL login as its listener needs (`PEER-2`), giving up
    /// after `timeout`.
    pub(crate) async fn connect(
        to: &PeerAddress,
        security: &PeerSecurity,
        client_id: &'static str,
        timeout: Duration,
    ) -> Result<Self, String> {
        tokio::time::timeout(timeout, Self::open(to, security, client_id))
            .await
            .unwrap_or_else(|_| Err(format!("connecting to {} timed out", to.addr)))
    }

    async fn open(
        to: &PeerAddress,
        security: &PeerSecurity,
        client_id: &'static str,
    ) -> Result<Self, String> {
        let addr = &to.addr;
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn PeerIo> = if to.tls {
            let config = security
                .tls
                .as_ref()
                .ok_or_else(|| format!("{addr} needs TLS and no ssl.ca.location is set"))?;
            let name = rustls_pki_types::ServerName::try_from(to.host.clone())
                .map_err(|e| format!("{}: not a TLS server name: {e}", to.host))?;
            let tls = tokio_rustls::TlsConnector::from(Arc::clone(config))
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS with {addr} failed: {e}"))?;
            Box::new(tls)
        } else {
            Box::new(tcp)
        };
        let mut conn = PeerConnection {
            stream,
            buf: BytesMut::with_capacity(64 * 1024),
            decoder: FrameDecoder::new(MAX_RESPONSE_BYTES),
            correlation: 0,
            client_id,
            expires: None,
        };
        if to.sasl {
            let (mechanism, user, password) = security
                .sasl
                .as_ref()
                .ok_or_else(|| format!("{addr} needs a SASL login and none is configured"))?;
            conn.login(*mechanism, user, password)
                .await
                .map_err(|e| format!("login at {addr} failed: {e}"))?;
        }
        Ok(conn)
    }

    /// SaslHandshake v1, then SaslAuthenticate v2 until the mechanism is done.
    async fn login(
        &mut self,
        mechanism: Mechanism,
        user: &str,
        password: &str,
    ) -> Result<(), String> {
        let body = RequestBody::SaslHandshake(SaslHandshakeRequest {
            mechanism: mechanism.name().to_owned(),
        });
        match self.request(ApiKey::SaslHandshake, 1, &body).await? {
            ResponseBody::SaslHandshake(r) if r.error_code == 0 => {}
            ResponseBody::SaslHandshake(r) => {
                return Err(format!(
                    "{} is not enabled there (it offers {:?})",
                    mechanism.name(),
                    r.mechanisms
                ));
            }
            _ => return Err("unexpected answer to SaslHandshake".into()),
        }
        let (mut client, mut message) = SaslClient::start(mechanism, user, password);
        loop {
            let body = RequestBody::SaslAuthenticate(SaslAuthenticateRequest {
                auth_bytes: Bytes::from(message),
                ..SaslAuthenticateRequest::default()
            });
            let r = match self.request(ApiKey::SaslAuthenticate, 2, &body).await? {
                ResponseBody::SaslAuthenticate(r) => r,
                _ => return Err("unexpected answer to SaslAuthenticate".into()),
            };
            if r.error_code != 0 {
                return Err(r
                    .error_message
                    .unwrap_or_else(|| format!("error code {}", r.error_code)));
            }
            match client.next(&r.auth_bytes)? {
                Some(next) => message = next,
                None => {
                    if r.session_lifetime_ms > 0 {
                        // Renewed a little before the broker would close it.
                        let lifetime = u64::try_from(r.session_lifetime_ms).unwrap_or(0);
                        self.expires =
                            Some(Instant::now() + Duration::from_millis(lifetime * 9 / 10));
                    }
                    return Ok(());
                }
            }
        }
    }

    /// Whether the login's session lifetime has passed (`PEER-2`).
    pub(crate) fn expired(&self) -> bool {
        self.expires.is_some_and(|e| Instant::now() >= e)
    }

    /// Sends one request and reads its answer.
    pub(crate) async fn request(
        &mut self,
        api: ApiKey,
        version: i16,
        body: &RequestBody,
    ) -> Result<ResponseBody, String> {
        self.correlation = self.correlation.wrapping_add(1);
        let header = RequestHeader {
            request_api_key: api.key(),
            request_api_version: version,
            correlation_id: self.correlation,
            client_id: Some(self.client_id.to_owned()),
            unknown_tagged_fields: Vec::new(),
        };
        let frame = encode_request_frame(&header, body)
            .map_err(|e| format!("cannot encode a {api:?} request: {e}"))?;
        self.stream
            .write_all(&frame)
            .await
            .map_err(|e| format!("cannot send a {api:?} request: {e}"))?;
        let frame = loop {
            match self
                .decoder
                .decode(&mut self.buf)
                .map_err(|e| format!("bad frame from the peer: {e}"))?
            {
                FrameStatus::Frame(frame) => break frame,
                FrameStatus::Incomplete { .. } => {
                    let n = self
                        .stream
                        .read_buf(&mut self.buf)
                        .await
                        .map_err(|e| format!("cannot read from the peer: {e}"))?;
                    if n == 0 {
                        return Err("the peer closed the connection".into());
                    }
                }
            }
        };
        let (header, body) = decode_response_frame(api, version, frame)
            .map_err(|e| format!("cannot decode the peer's answer: {e}"))?;
        if header.correlation_id != self.correlation {
            return Err(format!(
                "answer with correlation id {}, expected {}",
                header.correlation_id, self.correlation
            ));
        }
        Ok(body)
    }
}

type Slot = Arc<tokio::sync::Mutex<Option<PeerConnection>>>;

/// Connections per node in [`Peers`].
pub const POOL: usize = 4;

/// Connections to the other nodes for the coordinator's requests, one per node.
pub struct Peers {
    slots: Mutex<HashMap<NodeId, (Vec<Slot>, usize)>>,
    /// This node: addresses are taken as it sees them.
    me: NodeId,
    security: PeerSecurity,
}

impl std::fmt::Debug for Peers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peers")
            .field("nodes", &self.slots.lock().len())
            .finish()
    }
}

impl Peers {
    /// No connections yet; node `me` will make them with `security`.
    pub fn new(me: NodeId, security: PeerSecurity) -> Self {
        Peers {
            slots: Mutex::new(HashMap::new()),
            me,
            security,
        }
    }

    /// Sends `body` to node `node` (its address from `image`) and waits at most `timeout` for
    /// the answer. A failure drops the connection.
    pub async fn call(
        &self,
        image: &MetadataImage,
        node: NodeId,
        api: ApiKey,
        version: i16,
        body: RequestBody,
        timeout: Duration,
    ) -> Result<ResponseBody, String> {
        // A free connection if there is one, else the next in turn.
        let (free, next) = {
            let mut slots = self.slots.lock();
            let (pool, turn) = slots
                .entry(node)
                .or_insert_with(|| ((0..POOL).map(|_| Slot::default()).collect(), 0));
            *turn = (*turn + 1) % POOL;
            let free = pool
                .iter()
                .find_map(|s| Arc::clone(s).try_lock_owned().ok());
            (free, Arc::clone(&pool[*turn]))
        };
        let mut conn = match free {
            Some(conn) => conn,
            None => next.lock_owned().await,
        };
        if conn.as_ref().is_some_and(PeerConnection::expired) {
            *conn = None;
        }
        let result = tokio::time::timeout(timeout, async {
            if conn.is_none() {
                let to = node_address(image, self.me, node, &self.security)
                    .ok_or_else(|| format!("node {node} has no listener to reach it on"))?;
                *conn = Some(
                    PeerConnection::connect(&to, &self.security, "basalt-coordinator", timeout)
                        .await?,
                );
            }
            match conn.as_mut() {
                Some(c) => c.request(api, version, &body).await,
                None => Err("not connected".to_owned()),
            }
        })
        .await
        .unwrap_or_else(|_| Err(format!("node {node} did not answer within {timeout:?}")));
        if result.is_err() {
            *conn = None;
        }
        result
    }
}
