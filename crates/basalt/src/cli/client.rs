//! A small blocking Kafka client for the command-line tools, speaking the wire protocol through
//! `basalt-protocol` over plain [`TcpStream`]s.
//!
//! [`Client::connect`] tries each bootstrap address in turn, negotiates API versions with
//! ApiVersions (the highest version both sides know, see [`Connection::version`]) and keeps that
//! connection. Requests about a partition go to its leader: [`Client::metadata`] records every
//! broker's address and [`Client::node`] opens (and caches) a connection to it. Admin requests go
//! to the controller ([`Client::controller`]); requests about a group or a transactional id go to
//! its coordinator ([`Client::find_coordinator`]). Partition moves ([`Client::reassign`],
//! [`Client::wait_reassignments`]) are admin requests too.
//!
//! Invariants: every socket has connect, read and write timeouts, so no command hangs on a dead
//! broker; a frame larger than [`MAX_RESPONSE_BYTES`] is refused before it is buffered; a request
//! for an API the broker does not advertise fails with "the broker does not support X" without
//! being sent.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use basalt_protocol::messages::alter_partition_reassignments_request::{
    AlterPartitionReassignmentsRequest, ReassignablePartition, ReassignableTopic,
};
use basalt_protocol::messages::api_versions_request::ApiVersionsRequest;
use basalt_protocol::messages::api_versions_response::ApiVersionsResponse;
use basalt_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use basalt_protocol::messages::list_offsets_request::{
    ListOffsetsPartition, ListOffsetsRequest, ListOffsetsTopic,
};
use basalt_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsRequest;
use basalt_protocol::messages::metadata_request::{MetadataRequest, MetadataRequestTopic};
use basalt_protocol::messages::metadata_response::{MetadataResponse, MetadataResponseTopic};
use basalt_protocol::messages::sasl_authenticate_request::SaslAuthenticateRequest;
use basalt_protocol::messages::sasl_handshake_request::SaslHandshakeRequest;
use basalt_protocol::{
    ApiKey, ErrorCode, FrameDecoder, FrameStatus, RequestBody, RequestHeader, ResponseBody, Uuid,
    decode_response_frame, encode_request_frame,
};
use basalt_server::Mechanism;
use bytes::{Bytes, BytesMut};

use super::Error;
use super::security::{Security, Stream};
use basalt_server::scram::SaslClient;

/// The broker list used when neither `--brokers` nor `BASALT_BROKERS` is given.
pub const DEFAULT_BROKERS: &str = "127.0.0.1:9092";

/// The largest response frame accepted (Fetch responses are bounded well below this).
pub const MAX_RESPONSE_BYTES: usize = 256 * 1024 * 1024;

const CLIENT_ID: &str = "basalt-cli";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// The highest version of each API this client sends. Produce and Fetch v13+, and OffsetCommit
/// and OffsetFetch v10+, address topics by ID only, which this client does not track, so they
/// stop below that; everything else may use the newest version the codec knows.
fn client_max_version(api: ApiKey) -> i16 {
    match api {
        ApiKey::Produce | ApiKey::Fetch => 12,
        ApiKey::OffsetCommit | ApiKey::OffsetFetch => 9,
        _ => api.valid_versions().max,
    }
}

/// How long [`Client::with_coordinator`] keeps asking while the coordinator is still being elected or
/// loaded (Kafka creates `__consumer_offsets` on the first FindCoordinator).
pub const COORDINATOR_WAIT: Duration = Duration::from_secs(10);

/// Human wording of an I/O error, without the "(os error N)" suffix where the kind says it all.
fn describe_io(err: &io::Error) -> String {
    match err.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => "timed out".to_owned(),
        io::ErrorKind::ConnectionReset => "connection reset by the broker".to_owned(),
        io::ErrorKind::UnexpectedEof => "the broker closed the connection".to_owned(),
        _ => err.to_string(),
    }
}

/// Turns a Kafka error code into an error naming what failed, or `Ok` for `NONE`.
pub fn check(code: i16, what: &str, message: Option<&str>) -> Result<(), Error> {
    if code == 0 {
        return Ok(());
    }
    let name = ErrorCode::from_code(code).map_or("UNKNOWN", |c| c.name());
    let detail = message
        .filter(|m| !m.is_empty())
        .map(str::to_owned)
        .or_else(|| ErrorCode::from_code(code).map(|c| c.message().to_owned()))
        .unwrap_or_default();
    Err(format!("{what}: {name} ({code}): {detail}").into())
}

/// One connection to one broker, with the API versions it advertised.
#[derive(Debug)]
pub struct Connection {
    addr: String,
    stream: Stream,
    security: Arc<Security>,
    buf: BytesMut,
    decoder: FrameDecoder,
    next_correlation: i32,
    versions: HashMap<i16, (i16, i16)>,
}

impl Connection {
    /// Connects to `addr` (HOST:PORT) with `security`, logs in if it says so and negotiates
    /// API versions.
    pub fn open_with(addr: &str, security: &Arc<Security>) -> Result<Self, Error> {
        let unreachable = |why: String| -> Error {
            format!("cannot reach broker {addr}: {why} — is `basalt serve` running?").into()
        };
        let targets: Vec<_> = addr
            .to_socket_addrs()
            .map_err(|e| unreachable(describe_io(&e)))?
            .collect();
        let mut last = io::Error::new(io::ErrorKind::NotFound, "address resolves to nothing");
        for target in targets {
            match TcpStream::connect_timeout(&target, CONNECT_TIMEOUT) {
                Ok(stream) => return Self::handshake(addr, stream, security),
                Err(err) => last = err,
            }
        }
        Err(unreachable(describe_io(&last)))
    }

    fn handshake(addr: &str, stream: TcpStream, security: &Arc<Security>) -> Result<Self, Error> {
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        stream.set_nodelay(true)?;
        let stream = security.wrap(addr, stream)?;
        let mut conn = Connection {
            addr: addr.to_owned(),
            stream,
            security: Arc::clone(security),
            buf: BytesMut::with_capacity(64 * 1024),
            decoder: FrameDecoder::new(MAX_RESPONSE_BYTES),
            next_correlation: 1,
            versions: HashMap::new(),
        };
        conn.negotiate()?;
        if let Some((mechanism, user, password)) = conn.security.sasl().cloned() {
            conn.login(mechanism, &user, &password)?;
        }
        Ok(conn)
    }

    /// SaslHandshake v1, then SaslAuthenticate until the mechanism is done.
    fn login(&mut self, mechanism: Mechanism, user: &str, password: &str) -> Result<(), Error> {
        let handshake = RequestBody::SaslHandshake(SaslHandshakeRequest {
            mechanism: mechanism.name().to_owned(),
        });
        match self.exchange(&handshake, 1)? {
            ResponseBody::SaslHandshake(r) => check(
                r.error_code,
                &format!(
                    "SASL handshake with {} (broker offers {})",
                    self.addr,
                    r.mechanisms.join(", ")
                ),
                None,
            )?,
            other => return Err(unexpected(ApiKey::SaslHandshake, &other)),
        }
        let version = self.require(ApiKey::SaslAuthenticate)?;
        let (mut sasl, mut message) = SaslClient::start(mechanism, user, password);
        loop {
            let body = RequestBody::SaslAuthenticate(SaslAuthenticateRequest {
                auth_bytes: Bytes::from(message),
                ..Default::default()
            });
            let response = match self.exchange(&body, version)? {
                ResponseBody::SaslAuthenticate(r) => r,
                other => return Err(unexpected(ApiKey::SaslAuthenticate, &other)),
            };
            check(
                response.error_code,
                &format!("SASL authentication with {}", self.addr),
                response.error_message.as_deref(),
            )?;
            match sasl.next(&response.auth_bytes)? {
                Some(next) => message = next,
                None => return Ok(()),
            }
        }
    }

    /// Sends ApiVersions v3 (falling back to v0 if the broker refuses it) and records the ranges.
    fn negotiate(&mut self) -> Result<(), Error> {
        let mut response = self.api_versions(3)?;
        if response.error_code == ErrorCode::UnsupportedVersion.code() {
            response = self.api_versions(0)?;
        }
        check(response.error_code, "ApiVersions", None)?;
        self.versions = response
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        Ok(())
    }

    fn api_versions(&mut self, version: i16) -> Result<ApiVersionsResponse, Error> {
        let body = RequestBody::ApiVersions(ApiVersionsRequest {
            client_software_name: CLIENT_ID.to_owned(),
            client_software_version: env!("CARGO_PKG_VERSION").to_owned(),
            ..Default::default()
        });
        match self.exchange(&body, version)? {
            ResponseBody::ApiVersions(r) => Ok(r),
            other => Err(unexpected(ApiKey::ApiVersions, &other)),
        }
    }

    /// The highest version of `api` both this client and the broker support, if any.
    pub fn version(&self, api: ApiKey) -> Option<i16> {
        let &(broker_min, broker_max) = self.versions.get(&api.key())?;
        let max = broker_max.min(client_max_version(api));
        let min = broker_min.max(api.valid_versions().min);
        (max >= min).then_some(max)
    }

    /// Whether the broker supports `api` at a version this client can use.
    pub fn supports(&self, api: ApiKey) -> bool {
        self.version(api).is_some()
    }

    fn require(&self, api: ApiKey) -> Result<i16, Error> {
        self.version(api)
            .ok_or_else(|| format!("the broker does not support {}", api.name()).into())
    }

    /// Sends `body` at the negotiated version and returns the decoded response.
    pub fn send(&mut self, body: &RequestBody) -> Result<ResponseBody, Error> {
        let version = self.require(body.api_key())?;
        self.exchange(body, version)
    }

    /// Sends `body` at the negotiated version without waiting for a response (Produce with
    /// `acks=0`, which the broker never answers).
    pub fn send_only(&mut self, body: &RequestBody) -> Result<(), Error> {
        let version = self.require(body.api_key())?;
        self.write_request(body, version).map(|_| ())
    }

    fn exchange(&mut self, body: &RequestBody, version: i16) -> Result<ResponseBody, Error> {
        let correlation_id = self.write_request(body, version)?;
        let frame = self.read_frame()?;
        let (header, response) =
            decode_response_frame(body.api_key(), version, frame).map_err(|e| {
                format!(
                    "malformed {} response from {}: {e}",
                    body.api_key(),
                    self.addr
                )
            })?;
        if header.correlation_id != correlation_id {
            return Err(format!(
                "response from {} has correlation id {}, expected {correlation_id}",
                self.addr, header.correlation_id
            )
            .into());
        }
        Ok(response)
    }

    fn write_request(&mut self, body: &RequestBody, version: i16) -> Result<i32, Error> {
        let correlation_id = self.next_correlation;
        self.next_correlation = self.next_correlation.wrapping_add(1);
        let header = RequestHeader {
            request_api_key: body.api_key().key(),
            request_api_version: version,
            correlation_id,
            client_id: Some(CLIENT_ID.to_owned()),
            unknown_tagged_fields: Vec::new(),
        };
        let frame = encode_request_frame(&header, body)?;
        self.stream
            .write_all(&frame)
            .map_err(|e| self.io_error("sending to", &e))?;
        Ok(correlation_id)
    }

    fn read_frame(&mut self) -> Result<Bytes, Error> {
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            let needed = match self.decoder.decode(&mut self.buf)? {
                FrameStatus::Frame(frame) => return Ok(frame),
                FrameStatus::Incomplete { needed } => needed,
            };
            let want = needed.min(chunk.len()).max(1);
            let n = self
                .stream
                .read(&mut chunk[..want])
                .map_err(|e| self.io_error("reading from", &e))?;
            if n == 0 {
                let eof = io::Error::from(io::ErrorKind::UnexpectedEof);
                return Err(self.io_error("reading from", &eof));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn io_error(&self, doing: &str, err: &io::Error) -> Error {
        format!("{doing} broker {}: {}", self.addr, describe_io(err)).into()
    }
}

/// The error for a response of the wrong type (which the codec makes impossible in practice).
pub fn unexpected(api: ApiKey, got: &ResponseBody) -> Error {
    format!("expected a {api} response, got {}", got.api_key()).into()
}

/// Connections to a cluster: the bootstrap broker plus any broker a request was routed to.
#[derive(Debug)]
pub struct Client {
    security: Arc<Security>,
    bootstrap: String,
    conns: HashMap<String, Connection>,
    nodes: HashMap<i32, String>,
    controller: Option<i32>,
}

impl Client {
    /// Connects to the first reachable address of `brokers` (a comma-separated HOST:PORT list)
    /// in clear.
    #[cfg(test)]
    pub fn connect(brokers: &str) -> Result<Self, Error> {
        Self::connect_with(brokers, Arc::new(Security::default()))
    }

    /// Connects to the first reachable address of `brokers` (a comma-separated HOST:PORT list),
    /// every connection with `security`.
    pub fn connect_with(brokers: &str, security: Arc<Security>) -> Result<Self, Error> {
        let mut last: Option<Error> = None;
        for addr in brokers.split(',').map(str::trim).filter(|a| !a.is_empty()) {
            match Connection::open_with(addr, &security) {
                Ok(conn) => {
                    let mut conns = HashMap::new();
                    conns.insert(addr.to_owned(), conn);
                    return Ok(Client {
                        security,
                        bootstrap: addr.to_owned(),
                        conns,
                        nodes: HashMap::new(),
                        controller: None,
                    });
                }
                Err(err) => last = Some(err),
            }
        }
        Err(last.unwrap_or_else(|| "no broker address given (--brokers HOST:PORT)".into()))
    }

    /// The connection to the bootstrap broker.
    pub fn any(&mut self) -> Result<&mut Connection, Error> {
        let addr = self.bootstrap.clone();
        self.conn(&addr)
    }

    fn conn(&mut self, addr: &str) -> Result<&mut Connection, Error> {
        if !self.conns.contains_key(addr) {
            let conn = Connection::open_with(addr, &self.security)?;
            self.conns.insert(addr.to_owned(), conn);
        }
        self.conns
            .get_mut(addr)
            .ok_or_else(|| format!("no connection to {addr}").into())
    }

    /// The connection to broker `node_id`, as named by the last metadata.
    pub fn node(&mut self, node_id: i32) -> Result<&mut Connection, Error> {
        let addr = self
            .nodes
            .get(&node_id)
            .cloned()
            .ok_or_else(|| format!("broker {node_id} is not in the cluster metadata"))?;
        self.conn(&addr)
    }

    /// The connection to the controller (or the bootstrap broker if it is unknown).
    pub fn controller(&mut self) -> Result<&mut Connection, Error> {
        match self.controller.filter(|id| self.nodes.contains_key(id)) {
            Some(id) => self.node(id),
            None => self.any(),
        }
    }

    /// Fetches metadata for `topics` (all topics if `None`) and records the broker addresses.
    pub fn metadata(&mut self, topics: Option<&[String]>) -> Result<MetadataResponse, Error> {
        let request = MetadataRequest {
            topics: topics.map(|names| {
                names
                    .iter()
                    .map(|n| MetadataRequestTopic {
                        name: Some(n.clone()),
                        ..Default::default()
                    })
                    .collect()
            }),
            allow_auto_topic_creation: false,
            ..Default::default()
        };
        let response = match self.any()?.send(&RequestBody::Metadata(request))? {
            ResponseBody::Metadata(r) => r,
            other => return Err(unexpected(ApiKey::Metadata, &other)),
        };
        self.nodes = response
            .brokers
            .iter()
            .map(|b| (b.node_id, format!("{}:{}", b.host, b.port)))
            .collect();
        self.controller = (response.controller_id >= 0).then_some(response.controller_id);
        Ok(response)
    }
}

/// One partition to move (AlterPartitionReassignments).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Move {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// The replicas it moves to, preferred leader first.
    pub target: Vec<i32>,
}

/// A partition move under way, as ListPartitionReassignments shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Ongoing {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// Every replica now: the target ones and those being removed.
    pub replicas: Vec<i32>,
    /// Replicas being added (catching up).
    pub adding: Vec<i32>,
    /// Replicas being removed once the added ones are in sync.
    pub removing: Vec<i32>,
}

/// How often [`Client::wait_reassignments`] asks.
const REASSIGNMENT_POLL: Duration = Duration::from_millis(500);

impl Client {
    /// Starts `moves` with one AlterPartitionReassignments to the controller; an error naming
    /// every partition the broker refused.
    pub fn reassign(&mut self, moves: &[Move]) -> Result<(), Error> {
        let mut topics: BTreeMap<&str, Vec<ReassignablePartition>> = BTreeMap::new();
        for m in moves {
            topics
                .entry(&m.topic)
                .or_default()
                .push(ReassignablePartition {
                    partition_index: m.partition,
                    replicas: Some(m.target.clone()),
                    ..Default::default()
                });
        }
        let request = AlterPartitionReassignmentsRequest {
            timeout_ms: 60_000,
            allow_replication_factor_change: true,
            topics: topics
                .into_iter()
                .map(|(name, partitions)| ReassignableTopic {
                    name: name.to_owned(),
                    partitions,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        let body = RequestBody::AlterPartitionReassignments(request);
        let response = match self.controller()?.send(&body)? {
            ResponseBody::AlterPartitionReassignments(r) => r,
            other => return Err(unexpected(ApiKey::AlterPartitionReassignments, &other)),
        };
        check(
            response.error_code,
            "cannot move partitions",
            response.error_message.as_deref(),
        )?;
        let errors: Vec<String> = response
            .responses
            .iter()
            .flat_map(|t| {
                t.partitions.iter().filter_map(|p| {
                    let what = format!("cannot move {}-{}", t.name, p.partition_index);
                    check(p.error_code, &what, p.error_message.as_deref())
                        .err()
                        .map(|e| e.to_string())
                })
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("\n").into())
        }
    }

    /// Every partition move under way (ListPartitionReassignments to the controller), sorted.
    pub fn list_reassignments(&mut self) -> Result<Vec<Ongoing>, Error> {
        let body = RequestBody::ListPartitionReassignments(ListPartitionReassignmentsRequest {
            timeout_ms: 30_000,
            topics: None,
            ..Default::default()
        });
        let response = match self.controller()?.send(&body)? {
            ResponseBody::ListPartitionReassignments(r) => r,
            other => return Err(unexpected(ApiKey::ListPartitionReassignments, &other)),
        };
        check(
            response.error_code,
            "cannot list partition moves",
            response.error_message.as_deref(),
        )?;
        let mut ongoing: Vec<Ongoing> = response
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(|p| Ongoing {
                    topic: t.name.clone(),
                    partition: p.partition_index,
                    replicas: p.replicas.clone(),
                    adding: p.adding_replicas.clone(),
                    removing: p.removing_replicas.clone(),
                })
            })
            .collect();
        ongoing.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        Ok(ongoing)
    }

    /// Polls ListPartitionReassignments until none of `moves` is under way, calling `progress`
    /// with those still moving whenever that changes; an error after `timeout`.
    pub fn wait_reassignments(
        &mut self,
        moves: &[Move],
        timeout: Duration,
        mut progress: impl FnMut(&[Ongoing]),
    ) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        let mut last: Option<Vec<Ongoing>> = None;
        loop {
            let moving: Vec<Ongoing> = self
                .list_reassignments()?
                .into_iter()
                .filter(|o| {
                    moves
                        .iter()
                        .any(|m| m.topic == o.topic && m.partition == o.partition)
                })
                .collect();
            if moving.is_empty() {
                return Ok(());
            }
            if last.as_ref() != Some(&moving) {
                progress(&moving);
                last = Some(moving);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{} partition move(s) still under way after {timeout:?}",
                    last.map_or(0, |l| l.len())
                )
                .into());
            }
            std::thread::sleep(REASSIGNMENT_POLL);
        }
    }
}

/// What a coordinator is looked up for: FindCoordinator's key types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoordinatorKind {
    /// A consumer group (key type 0).
    Group,
    /// A transactional id (key type 1).
    Transaction,
}

impl CoordinatorKind {
    /// FindCoordinator's `key_type`.
    fn key_type(self) -> i8 {
        match self {
            CoordinatorKind::Group => 0,
            CoordinatorKind::Transaction => 1,
        }
    }

    /// How messages name a key of this kind.
    pub fn noun(self) -> &'static str {
        match self {
            CoordinatorKind::Group => "group",
            CoordinatorKind::Transaction => "transactional id",
        }
    }
}

/// Whether `code` means "ask again": the coordinator is moving, not yet elected or still loading.
pub fn coordinator_retriable(code: i16) -> bool {
    matches!(
        ErrorCode::from_code(code),
        Some(
            ErrorCode::CoordinatorNotAvailable
                | ErrorCode::CoordinatorLoadInProgress
                | ErrorCode::NotCoordinator
        )
    )
}

/// What one attempt at a coordinator request gave.
pub enum Reply<T> {
    /// The answer.
    Done(T),
    /// A retriable coordinator error code: find the coordinator again and repeat.
    Retry(i16),
}

impl<T> Reply<T> {
    /// `Retry(code)` if `code` is a retriable coordinator error, otherwise `Done(value())`.
    pub fn unless_retriable(code: i16, value: impl FnOnce() -> T) -> Self {
        if coordinator_retriable(code) {
            Reply::Retry(code)
        } else {
            Reply::Done(value())
        }
    }
}

impl Client {
    /// Runs `op` on the coordinator of `key`, finding it again and repeating while `op` answers
    /// [`Reply::Retry`], for up to [`COORDINATOR_WAIT`]; past it the last code becomes
    /// `on_timeout`'s error. Returns the coordinator's broker id and the answer.
    pub fn with_coordinator<T>(
        &mut self,
        kind: CoordinatorKind,
        key: &str,
        on_timeout: impl Fn(i16) -> Error,
        mut op: impl FnMut(&mut Connection) -> Result<Reply<T>, Error>,
    ) -> Result<(i32, T), Error> {
        let deadline = Instant::now() + COORDINATOR_WAIT;
        let mut backoff = Duration::from_millis(50);
        loop {
            let node = self.find_coordinator(kind, key)?;
            match op(self.node(node)?)? {
                Reply::Done(value) => return Ok((node, value)),
                Reply::Retry(code) if Instant::now() >= deadline => return Err(on_timeout(code)),
                Reply::Retry(_) => {
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_millis(500));
                }
            }
        }
    }

    /// Finds the coordinator of `key` (a group or a transactional id, as `kind` says) with
    /// FindCoordinator (one batched key from v4 on, the single key before), records its address
    /// and returns its broker id. Retries for up to [`COORDINATOR_WAIT`] while the answer is
    /// COORDINATOR_NOT_AVAILABLE or COORDINATOR_LOAD_IN_PROGRESS.
    pub fn find_coordinator(&mut self, kind: CoordinatorKind, key: &str) -> Result<i32, Error> {
        let noun = kind.noun();
        let deadline = Instant::now() + COORDINATOR_WAIT;
        let mut backoff = Duration::from_millis(50);
        loop {
            let conn = self.any()?;
            let batched = conn
                .version(ApiKey::FindCoordinator)
                .is_some_and(|v| v >= 4);
            if kind == CoordinatorKind::Transaction
                && conn.version(ApiKey::FindCoordinator).is_some_and(|v| v < 1)
            {
                return Err(
                    "the broker supports only FindCoordinator v0, which cannot find \
                            transaction coordinators"
                        .into(),
                );
            }
            let request = FindCoordinatorRequest {
                key: if batched {
                    String::new()
                } else {
                    key.to_owned()
                },
                key_type: kind.key_type(),
                coordinator_keys: if batched {
                    vec![key.to_owned()]
                } else {
                    Vec::new()
                },
                ..Default::default()
            };
            let response = match conn.send(&RequestBody::FindCoordinator(request))? {
                ResponseBody::FindCoordinator(r) => r,
                other => return Err(unexpected(ApiKey::FindCoordinator, &other)),
            };
            let (code, message, node_id, host, port) = if batched {
                let c = response
                    .coordinators
                    .iter()
                    .find(|c| c.key == key)
                    .ok_or_else(|| format!("FindCoordinator did not answer for {noun} {key:?}"))?;
                (
                    c.error_code,
                    c.error_message.clone(),
                    c.node_id,
                    c.host.clone(),
                    c.port,
                )
            } else {
                (
                    response.error_code,
                    response.error_message.clone(),
                    response.node_id,
                    response.host.clone(),
                    response.port,
                )
            };
            if code == 0 && node_id >= 0 {
                self.nodes.insert(node_id, format!("{host}:{port}"));
                return Ok(node_id);
            }
            let wait = code != 0 && coordinator_retriable(code) && Instant::now() < deadline;
            if !wait {
                let what = format!("cannot find the coordinator of {noun} {key:?}");
                check(code, &what, message.as_deref())?;
                return Err(format!("{what}: the broker named none (node {node_id})").into());
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_millis(500));
        }
    }
}

/// One partition of a topic, as metadata describes it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PartitionInfo {
    /// Partition index.
    pub partition: i32,
    /// Leader broker id (-1 if none).
    pub leader: i32,
    /// Leader epoch (-1 if unknown).
    pub leader_epoch: i32,
    /// Replica broker ids.
    pub replicas: Vec<i32>,
    /// In-sync replica broker ids.
    pub isr: Vec<i32>,
    /// Metadata error code for the partition (0 if none).
    pub error_code: i16,
}

/// A topic, as metadata describes it, partitions sorted by index.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TopicInfo {
    /// Topic name.
    pub name: String,
    /// Topic ID (Kafka base64), if the broker reports one.
    pub id: Option<String>,
    /// Whether the topic is internal.
    pub internal: bool,
    /// The partitions.
    pub partitions: Vec<PartitionInfo>,
}

impl TopicInfo {
    /// Builds the view of one metadata topic.
    pub fn from_metadata(t: &MetadataResponseTopic) -> Self {
        let mut partitions: Vec<_> = t
            .partitions
            .iter()
            .map(|p| PartitionInfo {
                partition: p.partition_index,
                leader: p.leader_id,
                leader_epoch: p.leader_epoch,
                replicas: p.replica_nodes.clone(),
                isr: p.isr_nodes.clone(),
                error_code: p.error_code,
            })
            .collect();
        partitions.sort_by_key(|p| p.partition);
        TopicInfo {
            name: t.name.clone().unwrap_or_default(),
            id: (t.topic_id != Uuid::ZERO).then(|| t.topic_id.to_string()),
            internal: t.is_internal,
            partitions,
        }
    }

    /// The leader of `partition`, if the partition exists and has one.
    pub fn leader(&self, partition: i32) -> Option<i32> {
        self.partitions
            .iter()
            .find(|p| p.partition == partition)
            .map(|p| p.leader)
            .filter(|&l| l >= 0)
    }
}

/// `ListOffsets` timestamp asking for the log start offset.
pub const EARLIEST: i64 = -2;
/// `ListOffsets` timestamp asking for the log end offset (high watermark).
pub const LATEST: i64 = -1;

impl Client {
    /// Metadata for one existing topic; an error if the broker does not know it.
    pub fn topic(&mut self, name: &str) -> Result<TopicInfo, Error> {
        let response = self.metadata(Some(&[name.to_owned()]))?;
        let topic = response
            .topics
            .iter()
            .find(|t| t.name.as_deref() == Some(name))
            .ok_or_else(|| format!("topic {name:?} is missing from the metadata response"))?;
        if topic.error_code == ErrorCode::UnknownTopicOrPartition.code() {
            return Err(format!("topic {name:?} does not exist").into());
        }
        check(topic.error_code, &format!("topic {name:?}"), None)?;
        Ok(TopicInfo::from_metadata(topic))
    }

    /// Offsets of `partitions` of `topic` for `timestamp` ([`EARLIEST`], [`LATEST`] or a time in
    /// ms: the first offset at or after it, -1 if none), asking each partition's leader.
    pub fn list_offsets(
        &mut self,
        topic: &TopicInfo,
        partitions: &[i32],
        timestamp: i64,
    ) -> Result<BTreeMap<i32, i64>, Error> {
        let mut out = BTreeMap::new();
        for (leader, parts) in by_leader(topic, partitions)? {
            let request = ListOffsetsRequest {
                replica_id: -1,
                isolation_level: 0,
                topics: vec![ListOffsetsTopic {
                    name: topic.name.clone(),
                    partitions: parts
                        .iter()
                        .map(|&p| ListOffsetsPartition {
                            partition_index: p,
                            timestamp,
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }],
                ..Default::default()
            };
            let response = match self
                .node(leader)?
                .send(&RequestBody::ListOffsets(request))?
            {
                ResponseBody::ListOffsets(r) => r,
                other => return Err(unexpected(ApiKey::ListOffsets, &other)),
            };
            for p in response.topics.iter().flat_map(|t| &t.partitions) {
                let what = format!("offsets of {}/{}", topic.name, p.partition_index);
                check(p.error_code, &what, None)?;
                out.insert(p.partition_index, p.offset);
            }
        }
        Ok(out)
    }
}

/// Groups `partitions` by their leader; an error if one has no leader.
pub fn by_leader(topic: &TopicInfo, partitions: &[i32]) -> Result<BTreeMap<i32, Vec<i32>>, Error> {
    let mut out: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    for &p in partitions {
        let leader = topic
            .leader(p)
            .ok_or_else(|| format!("partition {}/{p} has no leader", topic.name))?;
        out.entry(leader).or_default().push(p);
    }
    Ok(out)
}

/// Kafka's murmur2 hash (`org.apache.kafka.common.utils.Utils.murmur2`), as the Java client and
/// librdkafka's `murmur2` partitioners use it.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h: u32 = SEED ^ (data.len() as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, &b) in tail.iter().enumerate().rev() {
            h ^= u32::from(b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition the default Java / librdkafka murmur2 partitioner picks for `key`.
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    (murmur2(key) & 0x7fff_ffff) % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafka_test_vectors() {
        // Kafka's UtilsTest.testMurmur2.
        let cases: &[(&[u8], i32)] = &[
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (input, expected) in cases {
            assert_eq!(murmur2(input), *expected, "murmur2({input:?})");
        }
    }

    #[test]
    fn key_partitioning_is_positive_and_in_range() {
        for key in [&b"21"[..], b"foobar", b"", b"abc"] {
            let p = partition_for_key(key, 7);
            assert!((0..7).contains(&p));
            assert_eq!(p, (murmur2(key) & 0x7fff_ffff) % 7);
        }
        // -973932308 & 0x7fffffff = 1173551340; % 3 == 0
        assert_eq!(partition_for_key(b"21", 3), 1_173_551_340 % 3);
    }

    #[test]
    fn client_caps_topic_id_only_versions() {
        assert_eq!(client_max_version(ApiKey::Fetch), 12);
        assert_eq!(client_max_version(ApiKey::Produce), 12);
        assert_eq!(client_max_version(ApiKey::OffsetCommit), 9);
        assert_eq!(client_max_version(ApiKey::OffsetFetch), 9);
        assert_eq!(
            client_max_version(ApiKey::Metadata),
            ApiKey::Metadata.valid_versions().max
        );
    }

    #[test]
    fn error_codes_are_named() {
        assert!(check(0, "x", None).is_ok());
        let err = check(3, "topic t", None).unwrap_err().to_string();
        assert!(err.contains("UNKNOWN_TOPIC_OR_PARTITION"), "{err}");
    }

    #[test]
    fn unreachable_broker_is_explained() {
        // Port 1 on localhost is essentially never listening.
        let err = Connection::open_with("127.0.0.1:1", &Arc::new(Security::default()))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("cannot reach broker 127.0.0.1:1:"), "{err}");
        assert!(err.contains("basalt serve"), "{err}");
    }
}
