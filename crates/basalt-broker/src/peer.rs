//! Requests from this node to other nodes of the cluster, in the Kafka protocol over their
//! PLAINTEXT listeners: the follower fetches (`fetcher.rs`), and the transaction coordinator's
//! WriteTxnMarkers and partition leaders' transaction verifications (`txns.rs`).
//!
//! [`Peers`] keeps one connection per node for the coordinator's requests; a connection that
//! fails or times out is dropped and the next request opens a new one.
//!
//! # Invariants
//! - `PEER-1`: one request at a time per connection, and an answer is taken only with the
//!   correlation id it was sent with; anything else drops the connection.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use basalt_cluster::metadata::{Endpoint, MetadataImage, NodeId};
use basalt_protocol::{
    ApiKey, FrameDecoder, FrameStatus, RequestBody, RequestHeader, ResponseBody,
    decode_response_frame, encode_request_frame,
};
use bytes::BytesMut;
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest answer accepted.
const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// Node `node`'s address on a PLAINTEXT listener, preferring the listener name of `me`'s first
/// PLAINTEXT listener.
pub(crate) fn node_address(image: &MetadataImage, me: NodeId, node: NodeId) -> Option<String> {
    let plaintext = |e: &&Endpoint| e.security_protocol == "PLAINTEXT";
    let preferred = image
        .nodes
        .get(&me)
        .and_then(|n| n.endpoints.iter().find(plaintext).map(|e| e.name.clone()));
    let node = image.nodes.get(&node)?;
    let endpoint = node
        .endpoints
        .iter()
        .filter(plaintext)
        .find(|e| Some(&e.name) == preferred.as_ref())
        .or_else(|| node.endpoints.iter().find(plaintext))?;
    Some(format!("{}:{}", endpoint.host, endpoint.port))
}

/// One connection to another node (`PEER-1`).
pub(crate) struct PeerConnection {
    stream: TcpStream,
    buf: BytesMut,
    decoder: FrameDecoder,
    correlation: i32,
    client_id: &'static str,
}

impl PeerConnection {
    /// Connects to `addr`, giving up after `timeout`.
    pub(crate) async fn connect(
        addr: &str,
        client_id: &'static str,
        timeout: Duration,
    ) -> Result<Self, String> {
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(format!("cannot connect to {addr}: {e}")),
            Err(_) => return Err(format!("connecting to {addr} timed out")),
        };
        let _ = stream.set_nodelay(true);
        Ok(PeerConnection {
            stream,
            buf: BytesMut::with_capacity(64 * 1024),
            decoder: FrameDecoder::new(MAX_RESPONSE_BYTES),
            correlation: 0,
            client_id,
        })
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

/// Connections to the other nodes for the coordinator's requests, one per node.
#[derive(Default)]
pub struct Peers {
    slots: Mutex<HashMap<NodeId, Slot>>,
}

impl std::fmt::Debug for Peers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peers")
            .field("nodes", &self.slots.lock().len())
            .finish()
    }
}

impl Peers {
    /// Sends `body` to node `node` (its address from `image`, as seen by node `me`) and waits at
    /// most `timeout` for the answer. A failure drops the connection.
    pub async fn call(
        &self,
        image: &MetadataImage,
        me: NodeId,
        node: NodeId,
        api: ApiKey,
        version: i16,
        body: RequestBody,
        timeout: Duration,
    ) -> Result<ResponseBody, String> {
        let slot = Arc::clone(self.slots.lock().entry(node).or_default());
        let mut conn = slot.lock().await;
        let result = tokio::time::timeout(timeout, async {
            if conn.is_none() {
                let addr = node_address(image, me, node)
                    .ok_or_else(|| format!("node {node} has no PLAINTEXT listener"))?;
                *conn = Some(PeerConnection::connect(&addr, "basalt-coordinator", timeout).await?);
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
