//! The quorum's transport: a small request/response RPC over TCP between the nodes of the
//! metadata quorum, carrying openraft's messages and forwarded proposals.
//!
//! A frame is `[len: u32 BE][payload]`, the payload one JSON `Envelope` (a request) or
//! `Response`. A connection carries one request at a time and answers in order. Each client
//! (`Connection`) keeps one TCP connection to its peer and opens a new one on the next call
//! after any failure or timeout, so a late answer can never be taken for the answer to a later
//! request.
//!
//! # Invariants
//! - `RPC-1`: a frame longer than [`FRAME_BYTES_MAX`] is refused before it is buffered, on
//!   both sides; the connection is closed.
//! - `RPC-2`: a request names the node it is meant for; a node answers only requests meant for
//!   it, so a misconfigured voter list cannot make one node vote or append as another.
//! - `RPC-3`: at most [`CONNECTIONS_MAX`] incoming connections are served at once; more are
//!   closed on accept.
//! - `RPC-4`: with [`QuorumTls`] every connection is TLS in both directions with certificates
//!   signed by the configured CA (mTLS): a node that cannot present one is closed before any
//!   frame of it is read, and a node never sends a frame to a peer whose certificate does not
//!   name the address it dialled.

use std::io;
use std::time::Duration;

use openraft::BasicNode;
use openraft::async_runtime::WatchReceiver;
use openraft::errors::{
    NetworkError, RPCError, RaftError, ReplicationClosed, StreamingError, Timeout, Unreachable,
};
use openraft::network::{RPCOption, RPCTypes, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::image::{Command, NodeId, Outcome};
use super::quorum::{ProposeError, propose_local};
use super::types::{Raft, Snapshot, SnapshotMeta, TypeConfig, Vote};

/// Largest RPC frame, in bytes (a snapshot travels in one frame).
pub const FRAME_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Most incoming connections served at once.
pub const CONNECTIONS_MAX: usize = 256;
/// How long opening a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A request and the node it is meant for (`RPC-2`).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Envelope {
    /// The node the request is meant for.
    pub to: NodeId,
    /// The request.
    pub request: Request,
}

/// A request from one quorum node to another.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Request {
    Append(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<TypeConfig>),
    PreVote(VoteRequest<TypeConfig>),
    Snapshot {
        vote: Vote,
        meta: SnapshotMeta,
        /// The serialized image (JSON text).
        data: String,
    },
    /// A command proposed on a follower, for the leader to write.
    Propose(Command),
    /// A node outside the voters asks the leader to replicate the log to it as a learner
    /// (an observer: it holds the metadata and proposes through the leader, but never votes).
    Join {
        /// The joining node.
        id: NodeId,
        /// Its quorum listener.
        addr: String,
    },
}

/// The answer to a [`Request`].
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Response {
    Append(Result<AppendEntriesResponse<TypeConfig>, RaftError<TypeConfig>>),
    Vote(Result<VoteResponse<TypeConfig>, RaftError<TypeConfig>>),
    Snapshot(Result<SnapshotResponse<TypeConfig>, RaftError<TypeConfig>>),
    /// The outcome and the index of the entry that carried it.
    Propose(Result<(Outcome, u64), ProposeError>),
    /// The answer to a [`Request::Join`].
    Joined(Result<(), ProposeError>),
    /// The request was not for this node, or could not be served.
    Refused(String),
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    /// The peer could not be reached.
    #[error("cannot connect to {addr}: {source}")]
    Connect { addr: String, source: io::Error },
    /// The connection failed during the call.
    #[error("connection to {addr} failed: {source}")]
    Io { addr: String, source: io::Error },
    /// No answer in time.
    #[error("no answer from {addr} within {timeout:?}")]
    Timeout { addr: String, timeout: Duration },
    /// The peer answered something else than the request calls for.
    #[error("unexpected answer from {addr}: {what}")]
    Unexpected { addr: String, what: String },
}

async fn write_frame<W: AsyncWriteExt + Unpin, T: Serialize>(
    w: &mut W,
    value: &T,
) -> io::Result<()> {
    let payload = serde_json::to_vec(value).map_err(io::Error::other)?;
    if payload.len() > FRAME_BYTES_MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("a frame of {} bytes is over the limit", payload.len()),
        ));
    }
    w.write_all(&(payload.len() as u32).to_be_bytes()).await?;
    w.write_all(&payload).await?;
    w.flush().await
}

/// Reads one frame; `None` at a clean end of stream before a frame starts.
async fn read_frame<R: AsyncReadExt + Unpin, T: DeserializeOwned>(
    r: &mut R,
) -> io::Result<Option<T>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > FRAME_BYTES_MAX {
        // RPC-1: refused before buffering.
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a frame of {len} bytes is over the limit"),
        ));
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).await?;
    serde_json::from_slice(&payload)
        .map(Some)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

type Reader = BufReader<Box<dyn AsyncRead + Send + Sync + Unpin>>;
type Writer = BufWriter<Box<dyn AsyncWrite + Send + Sync + Unpin>>;
type Stream = (Reader, Writer);

/// TLS for the quorum's connections (`RPC-4`): this node's acceptor (its certificate, and
/// client certificates required and checked against the CA) and client settings (the CA, and
/// its certificate presented).
#[derive(Clone)]
pub struct QuorumTls {
    /// For connections this node accepts.
    pub server: tokio_rustls::TlsAcceptor,
    /// For connections this node opens.
    pub client: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for QuorumTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("QuorumTls")
    }
}

/// Splits a stream into buffered halves.
fn buffered<S: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static>(stream: S) -> Stream {
    let (r, w) = tokio::io::split(stream);
    let r: Box<dyn AsyncRead + Send + Sync + Unpin> = Box::new(r);
    let w: Box<dyn AsyncWrite + Send + Sync + Unpin> = Box::new(w);
    (BufReader::new(r), BufWriter::new(w))
}

/// One client connection to a peer, reopened on the next call after a failure.
pub(crate) struct Connection {
    to: NodeId,
    addr: String,
    tls: Option<QuorumTls>,
    stream: Option<Stream>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("to", &self.to)
            .field("addr", &self.addr)
            .field("tls", &self.tls.is_some())
            .field("connected", &self.stream.is_some())
            .finish()
    }
}

impl Connection {
    pub(crate) fn new(to: NodeId, addr: String, tls: Option<QuorumTls>) -> Connection {
        Connection {
            to,
            addr,
            tls,
            stream: None,
        }
    }

    /// Sends `request` and waits for its answer for at most `timeout`.
    pub(crate) async fn call(
        &mut self,
        request: Request,
        timeout: Duration,
    ) -> Result<Response, CallError> {
        let envelope = Envelope {
            to: self.to,
            request,
        };
        let result = tokio::time::timeout(timeout, self.exchange(&envelope)).await;
        match result {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => {
                self.stream = None;
                Err(e)
            }
            Err(_) => {
                self.stream = None;
                Err(CallError::Timeout {
                    addr: self.addr.clone(),
                    timeout,
                })
            }
        }
    }

    async fn exchange(&mut self, envelope: &Envelope) -> Result<Response, CallError> {
        if self.stream.is_none() {
            let connect = TcpStream::connect(&self.addr);
            let stream = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
                Ok(Ok(s)) => s,
                Ok(Err(source)) => {
                    return Err(CallError::Connect {
                        addr: self.addr.clone(),
                        source,
                    });
                }
                Err(_) => {
                    return Err(CallError::Connect {
                        addr: self.addr.clone(),
                        source: io::Error::new(io::ErrorKind::TimedOut, "connect timed out"),
                    });
                }
            };
            stream.set_nodelay(true).ok();
            self.stream = Some(match &self.tls {
                None => buffered(stream),
                Some(tls) => {
                    let tls_err = |source| CallError::Connect {
                        addr: self.addr.clone(),
                        source,
                    };
                    let host = self
                        .addr
                        .rsplit_once(':')
                        .map_or(self.addr.as_str(), |(h, _)| h)
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .to_owned();
                    let name = rustls_pki_types::ServerName::try_from(host).map_err(|e| {
                        tls_err(io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))
                    })?;
                    let connector = tokio_rustls::TlsConnector::from(Arc::clone(&tls.client));
                    let stream =
                        tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name, stream))
                            .await
                            .map_err(|_| {
                                tls_err(io::Error::new(
                                    io::ErrorKind::TimedOut,
                                    "TLS handshake timed out",
                                ))
                            })?
                            .map_err(tls_err)?;
                    buffered(stream)
                }
            });
        }
        let addr = self.addr.clone();
        let io_err = |source| CallError::Io {
            addr: addr.clone(),
            source,
        };
        let (r, w) = self.stream.as_mut().expect("connected above");
        write_frame(w, envelope).await.map_err(io_err)?;
        match read_frame(r).await.map_err(io_err)? {
            Some(response) => Ok(response),
            None => Err(io_err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the peer closed the connection",
            ))),
        }
    }
}

/// Creates a [`PeerClient`] per peer for openraft.
#[derive(Debug, Clone)]
pub(crate) struct Network {
    pub(crate) node_id: NodeId,
    pub(crate) tls: Option<QuorumTls>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerClient {
        PeerClient {
            node_id: self.node_id,
            target,
            conn: Connection::new(target, node.addr.clone(), self.tls.clone()),
        }
    }
}

/// openraft's view of one peer: its messages as [`Request`]s on one [`Connection`].
#[derive(Debug)]
pub(crate) struct PeerClient {
    node_id: NodeId,
    target: NodeId,
    conn: Connection,
}

impl PeerClient {
    fn rpc_error(&self, e: CallError, action: RPCTypes) -> RPCError<TypeConfig> {
        match e {
            CallError::Connect { .. } => RPCError::Unreachable(Unreachable::new(&e)),
            CallError::Timeout { timeout, .. } => RPCError::Timeout(Timeout {
                action,
                id: self.node_id,
                target: self.target,
                timeout,
            }),
            CallError::Io { .. } | CallError::Unexpected { .. } => {
                RPCError::Network(NetworkError::new(&e))
            }
        }
    }

    fn unexpected(&self, response: &Response) -> RPCError<TypeConfig> {
        let e = CallError::Unexpected {
            addr: self.conn.addr.clone(),
            what: format!("{response:?}").chars().take(200).collect(),
        };
        RPCError::Network(NetworkError::new(&e))
    }

    async fn raft_call<T>(
        &mut self,
        request: Request,
        action: RPCTypes,
        option: &RPCOption,
        pick: impl FnOnce(Response) -> Result<Result<T, RaftError<TypeConfig>>, Response>,
    ) -> Result<T, RPCError<TypeConfig>> {
        let response = self
            .conn
            .call(request, option.hard_ttl())
            .await
            .map_err(|e| self.rpc_error(e, action))?;
        match pick(response) {
            Ok(Ok(v)) => Ok(v),
            // The peer's Raft stopped: back off as from an unreachable node.
            Ok(Err(e)) => Err(RPCError::Unreachable(Unreachable::new(&e))),
            Err(other) => Err(self.unexpected(&other)),
        }
    }
}

impl RaftNetworkV2<TypeConfig> for PeerClient {
    type SnapshotData = Vec<u8>;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.raft_call(
            Request::Append(rpc),
            RPCTypes::AppendEntries,
            &option,
            |r| match r {
                Response::Append(a) => Ok(a),
                other => Err(other),
            },
        )
        .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.raft_call(Request::Vote(rpc), RPCTypes::Vote, &option, |r| match r {
            Response::Vote(v) => Ok(v),
            other => Err(other),
        })
        .await
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.raft_call(
            Request::PreVote(rpc),
            RPCTypes::Vote,
            &option,
            |r| match r {
                Response::Vote(v) => Ok(v),
                other => Err(other),
            },
        )
        .await
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let data = String::from_utf8(snapshot.snapshot)
            .map_err(|e| StreamingError::Network(NetworkError::new(&e)))?;
        let request = Request::Snapshot {
            vote,
            meta: snapshot.meta,
            data,
        };
        let call = self.raft_call(request, RPCTypes::InstallSnapshot, &option, |r| match r {
            Response::Snapshot(s) => Ok(s),
            other => Err(other),
        });
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            r = call => Ok(r?),
        }
    }
}

/// Serves quorum requests on `listener` until `shutdown` turns true.
pub(crate) async fn serve(
    listener: TcpListener,
    node_id: NodeId,
    raft: Raft,
    mut shutdown: watch::Receiver<bool>,
    tls: Option<QuorumTls>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = async { shutdown.wait_for(|stop| *stop).await.ok(); } => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if connections.len() >= CONNECTIONS_MAX {
                        // RPC-3.
                        tracing::warn!(%peer, "too many quorum connections; closing one");
                        continue;
                    }
                    stream.set_nodelay(true).ok();
                    let raft = raft.clone();
                    let tls = tls.clone();
                    connections.spawn(async move {
                        let stream = match tls {
                            None => buffered(stream),
                            // RPC-4: no frame is read before the peer's certificate is checked.
                            Some(tls) => {
                                match tokio::time::timeout(CONNECT_TIMEOUT, tls.server.accept(stream)).await {
                                    Ok(Ok(s)) => buffered(s),
                                    Ok(Err(e)) => {
                                        tracing::warn!(%peer, error = %e, "refusing a quorum connection: TLS failed");
                                        return;
                                    }
                                    Err(_) => {
                                        tracing::warn!(%peer, "refusing a quorum connection: no TLS handshake in time");
                                        return;
                                    }
                                }
                            }
                        };
                        if let Err(e) = serve_connection(stream, node_id, raft).await {
                            tracing::debug!(%peer, error = %e, "quorum connection closed");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "quorum accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    connections.shutdown().await;
}

async fn serve_connection(stream: Stream, node_id: NodeId, raft: Raft) -> io::Result<()> {
    let (mut r, mut w) = stream;
    while let Some(envelope) = read_frame::<_, Envelope>(&mut r).await? {
        let response = if envelope.to != node_id {
            // RPC-2.
            Response::Refused(format!("this is node {node_id}, not node {}", envelope.to))
        } else {
            handle(&raft, envelope.request).await
        };
        write_frame(&mut w, &response).await?;
    }
    Ok(())
}

async fn handle(raft: &Raft, request: Request) -> Response {
    match request {
        Request::Append(rpc) => Response::Append(raft.append_entries(rpc).await),
        Request::Vote(rpc) => Response::Vote(raft.vote(rpc).await),
        Request::PreVote(rpc) => Response::Vote(raft.pre_vote(rpc).await),
        Request::Snapshot { vote, meta, data } => {
            let snapshot = Snapshot {
                meta,
                snapshot: data.into_bytes(),
            };
            Response::Snapshot(
                raft.install_full_snapshot(vote, snapshot)
                    .await
                    .map_err(RaftError::Fatal),
            )
        }
        Request::Propose(cmd) => Response::Propose(propose_local(raft, cmd).await),
        Request::Join { id, addr } => Response::Joined(add_learner(raft, id, addr).await),
    }
}

/// Adds `id` at `addr` as a learner, on the leader (`QRM-4`); a node already a member (a
/// restarted observer) is left as it is.
async fn add_learner(raft: &Raft, id: NodeId, addr: String) -> Result<(), ProposeError> {
    let member = raft
        .metrics()
        .borrow_watched()
        .membership_config
        .get_node(&id)
        .is_some();
    if member {
        return Ok(());
    }
    match raft
        .add_learner(id, BasicNode::new(addr.clone()), false)
        .await
    {
        Ok(_) => {
            tracing::info!(node = id, %addr, "added an observer to the metadata quorum");
            Ok(())
        }
        Err(RaftError::APIError(openraft::errors::ClientWriteError::ForwardToLeader(f))) => {
            Err(ProposeError::NotLeader {
                leader: f.leader_id,
            })
        }
        Err(e) => Err(ProposeError::Unavailable {
            reason: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn oversized_frames_are_refused_before_buffering() {
        let mut data = Vec::new();
        data.extend_from_slice(&((FRAME_BYTES_MAX as u32) + 1).to_be_bytes());
        let mut r = &data[..];
        let e = read_frame::<_, Response>(&mut r).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        let mut empty: &[u8] = &[];
        assert!(
            read_frame::<_, Response>(&mut empty)
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn frames_round_trip() {
        let mut buf = Vec::new();
        write_frame(&mut buf, &Response::Refused("x".into()))
            .await
            .unwrap();
        let mut r = &buf[..];
        let back: Response = read_frame(&mut r).await.unwrap().unwrap();
        assert!(matches!(back, Response::Refused(s) if s == "x"));
    }
}
