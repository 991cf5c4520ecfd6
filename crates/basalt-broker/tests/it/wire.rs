//! The broker served over real TCP on 127.0.0.1:0 by `basalt-server`, and a minimal client that
//! speaks Kafka frames to it: requests encoded with the protocol crate, responses read back and
//! decoded at the version asked for.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use basalt_broker::Broker;
use basalt_protocol::{
    ApiKey, RequestBody, RequestHeader, ResponseBody, decode_response_frame, encode_request_frame,
};
use basalt_server::ServerLimits;
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long a test waits for a response before failing instead of hanging.
const READ_TIMEOUT: Duration = Duration::from_secs(20);

/// A broker's network server on the current runtime; stops when dropped.
pub struct Served {
    /// The address the server listens on.
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Served {
    /// Stops the server and waits until its connections are drained.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(READ_TIMEOUT, task)
                .await
                .unwrap()
                .unwrap();
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Serves `broker` on a free loopback port.
pub async fn serve(broker: &Arc<Broker>) -> Served {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let limits = ServerLimits {
        shutdown_grace: Duration::from_secs(5),
        ..ServerLimits::default()
    };
    let task = tokio::spawn(basalt_server::serve(
        listener,
        Arc::clone(broker),
        limits,
        async move {
            let _ = stop_rx.await;
        },
    ));
    Served {
        addr,
        stop: Some(stop_tx),
        task: Some(task),
    }
}

/// One client connection.
pub struct Client {
    stream: TcpStream,
    next_correlation_id: i32,
}

impl Client {
    /// Connects to `addr`.
    pub async fn connect(addr: SocketAddr) -> Client {
        Client {
            stream: TcpStream::connect(addr).await.unwrap(),
            next_correlation_id: 1,
        }
    }

    /// Sends `body` at `version` and returns the decoded response and its correlation id.
    pub async fn send(&mut self, version: i16, body: RequestBody) -> (i32, ResponseBody) {
        let api_key = body.api_key();
        let correlation_id = self.send_only(version, &body).await;
        let frame = self
            .read_frame()
            .await
            .unwrap_or_else(|| panic!("the broker closed the connection instead of answering"));
        let (header, response) = decode_response_frame(api_key, version, frame)
            .unwrap_or_else(|e| panic!("cannot decode the {api_key:?} v{version} response: {e}"));
        assert_eq!(header.correlation_id, correlation_id);
        (correlation_id, response)
    }

    /// Sends `body` at `version`; returns the decoded response.
    pub async fn request(&mut self, version: i16, body: RequestBody) -> ResponseBody {
        self.send(version, body).await.1
    }

    /// Writes the request frame without reading an answer; returns its correlation id.
    pub async fn send_only(&mut self, version: i16, body: &RequestBody) -> i32 {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id += 1;
        let header = RequestHeader {
            request_api_key: body.api_key().key(),
            request_api_version: version,
            correlation_id,
            client_id: Some("it".into()),
            unknown_tagged_fields: Vec::new(),
        };
        let frame = encode_request_frame(&header, body).unwrap();
        self.stream.write_all(&frame).await.unwrap();
        correlation_id
    }

    /// Writes raw bytes (a hand-made frame).
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Reads one response frame (without its size prefix); `None` when the broker closed the
    /// connection.
    pub async fn read_frame(&mut self) -> Option<Bytes> {
        tokio::time::timeout(READ_TIMEOUT, async {
            let mut size = [0u8; 4];
            self.stream.read_exact(&mut size).await.ok()?;
            let len = usize::try_from(i32::from_be_bytes(size)).ok()?;
            let mut body = BytesMut::zeroed(len);
            self.stream.read_exact(&mut body).await.ok()?;
            Some(body.freeze())
        })
        .await
        .expect("no response in time")
    }
}

/// A request frame for `api_key` at `version` whose body is `body` as given (for versions the
/// codec cannot encode): size prefix, header v1 (key, version, correlation id, client id), body.
pub fn raw_frame(api_key: ApiKey, version: i16, correlation_id: i32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&api_key.key().to_be_bytes());
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&correlation_id.to_be_bytes());
    out.extend_from_slice(&2i16.to_be_bytes());
    out.extend_from_slice(b"it");
    out.extend_from_slice(body);
    let len = (out.len() - 4) as i32;
    out[..4].copy_from_slice(&len.to_be_bytes());
    out
}
