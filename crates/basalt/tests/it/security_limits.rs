//! Connection hardening against raw sockets and librdkafka: a listener's `max.connections`,
//! `max.connections.per.ip` (with overrides) over all listeners, the connection creation rate,
//! `connections.max.idle.ms`, the failed-login limit per address, certificate files replaced
//! under a running listener, and re-authentication (KIP-368) with `connections.max.reauth.ms`.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use basalt_protocol::messages::api_versions_request::ApiVersionsRequest;
use basalt_protocol::messages::metadata_request::MetadataRequest;
use basalt_protocol::messages::sasl_authenticate_request::SaslAuthenticateRequest;
use basalt_protocol::messages::sasl_handshake_request::SaslHandshakeRequest;
use basalt_protocol::request::{decode_response_frame, encode_request_frame};
use basalt_protocol::{ErrorCode, RequestBody, RequestHeader, ResponseBody};
use basalt_server::{
    ClientAuth, ListenerConfig, Mechanism, PerIpLimit, SaslConfig, SecurityProtocol, ServerLimits,
    TlsSettings, TlsSource,
};
use basalt_testkit::{TestBroker, TestCa};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::common::{TIMEOUT, block_on};
use crate::security::{ADMIN, basalt, capture_logs, config};

/// One raw Kafka connection that tells an answer from a closed connection.
struct Raw {
    stream: TcpStream,
    correlation: i32,
}

impl Raw {
    fn connect(addr: SocketAddr) -> Raw {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        Raw {
            stream,
            correlation: 0,
        }
    }

    /// Sends `body` at `version`; `None` if the broker closed the connection instead of
    /// answering. Panics if neither happens within [`TIMEOUT`].
    fn call(&mut self, version: i16, body: RequestBody) -> Option<ResponseBody> {
        self.correlation += 1;
        let api = body.api_key();
        let header = RequestHeader {
            request_api_key: api.key(),
            request_api_version: version,
            correlation_id: self.correlation,
            client_id: Some("raw".into()),
            unknown_tagged_fields: Vec::new(),
        };
        let frame = encode_request_frame(&header, &body).unwrap();
        if self.stream.write_all(&frame).is_err() {
            return None;
        }
        let mut len = [0u8; 4];
        if let Err(e) = self.stream.read_exact(&mut len) {
            assert_closed(&e);
            return None;
        }
        let mut buf = vec![0u8; u32::from_be_bytes(len) as usize];
        if let Err(e) = self.stream.read_exact(&mut buf) {
            assert_closed(&e);
            return None;
        }
        Some(
            decode_response_frame(api, version, bytes::Bytes::from(buf))
                .unwrap()
                .1,
        )
    }

    /// Whether ApiVersions is answered (rather than the connection closed).
    fn served(&mut self) -> bool {
        self.call(0, RequestBody::ApiVersions(ApiVersionsRequest::default()))
            .is_some()
    }

    /// Waits, up to [`TIMEOUT`], for the broker to close the connection without a request.
    fn closes_by_itself(&mut self) -> bool {
        let mut byte = [0u8; 1];
        match self.stream.read(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => false,
            Err(_) => true,
        }
    }

    /// SaslHandshake v1 with PLAIN and one SaslAuthenticate v2; the error code and the session
    /// lifetime of the answer.
    fn plain_login(&mut self, user: &str, password: &str) -> (i16, i64) {
        let handshake = RequestBody::SaslHandshake(SaslHandshakeRequest {
            mechanism: "PLAIN".into(),
        });
        match self.call(1, handshake) {
            Some(ResponseBody::SaslHandshake(r)) => assert_eq!(r.error_code, 0, "{r:?}"),
            other => panic!("SaslHandshake answered {other:?}"),
        }
        let message = format!("\0{user}\0{password}");
        let authenticate = RequestBody::SaslAuthenticate(SaslAuthenticateRequest {
            auth_bytes: bytes::Bytes::from(message.into_bytes()),
            ..Default::default()
        });
        match self.call(2, authenticate) {
            Some(ResponseBody::SaslAuthenticate(r)) => (r.error_code, r.session_lifetime_ms),
            other => panic!("SaslAuthenticate answered {other:?}"),
        }
    }
}

fn assert_closed(e: &std::io::Error) {
    assert!(
        !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "neither an answer nor a closed connection within {TIMEOUT:?}"
    );
}

/// A SASL_PLAINTEXT listener's settings with PLAIN and SCRAM-SHA-512, changed by `tune`.
fn sasl(broker: &Arc<basalt_broker::Broker>, tune: impl FnOnce(&mut SaslConfig)) -> ListenerConfig {
    broker.credentials().ensure_user(ADMIN.0, ADMIN.1).unwrap();
    let mut sasl = SaslConfig::new(
        vec![Mechanism::Plain, Mechanism::ScramSha512],
        Arc::clone(broker.credentials()) as Arc<dyn basalt_server::CredentialSource>,
    );
    sasl.failed_authentication_delay = Duration::from_millis(10);
    tune(&mut sasl);
    ListenerConfig::new(
        "SASL_PLAINTEXT",
        SecurityProtocol::SaslPlaintext,
        None,
        Some(Arc::new(sasl)),
    )
    .unwrap()
}

/// Two PLAINTEXT listeners, `LIMITED` with `listener.name.limited.max.connections = 2`: its
/// third connection is closed unanswered while `OPEN` still serves three, and a place given
/// back is taken again.
#[test]
fn a_listener_over_its_max_connections_closes_new_connections_while_another_accepts() {
    let broker = TestBroker::start_listeners(
        &["LIMITED", "OPEN"],
        |_| {},
        |_, name| {
            let mut l = ListenerConfig::plaintext();
            if name == "LIMITED" {
                l.max_connections = 2;
            }
            l
        },
    );
    let limited = broker.listener_addr("LIMITED");
    let open = broker.listener_addr("OPEN");
    let mut first = Raw::connect(limited);
    let mut second = Raw::connect(limited);
    assert!(first.served() && second.served());
    let mut third = Raw::connect(limited);
    assert!(
        !third.served(),
        "the third connection on LIMITED must be closed"
    );
    let mut others: Vec<Raw> = (0..3).map(|_| Raw::connect(open)).collect();
    for (i, c) in others.iter_mut().enumerate() {
        assert!(c.served(), "connection {i} on OPEN");
    }
    assert!(first.served(), "the first two stay served");
    drop(first);
    // The freed place is given back when the broker sees the close: eventually served.
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if Raw::connect(limited).served() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "LIMITED never took a connection again"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `max.connections.per.ip = 1` with an override of 2 for 127.0.0.1, counted over both
/// listeners: one connection on each, then a third from the same address is closed.
#[test]
fn max_connections_per_ip_counts_one_address_over_all_listeners_with_overrides() {
    let limits = ServerLimits {
        max_connections_per_ip: PerIpLimit {
            default: 1,
            overrides: PerIpLimit::parse_overrides("127.0.0.1:2").unwrap(),
        },
        ..ServerLimits::default()
    };
    let broker = TestBroker::start_limited(
        &["A", "B"],
        limits,
        |_| {},
        |_, _| ListenerConfig::plaintext(),
    );
    let (a, b) = (broker.listener_addr("A"), broker.listener_addr("B"));
    let mut on_a = Raw::connect(a);
    let mut on_b = Raw::connect(b);
    assert!(
        on_a.served(),
        "first connection from 127.0.0.1 (override 2)"
    );
    assert!(
        on_b.served(),
        "second connection from 127.0.0.1, on the other listener"
    );
    assert!(!Raw::connect(a).served(), "third from 127.0.0.1 on A");
    assert!(!Raw::connect(b).served(), "third from 127.0.0.1 on B");
    assert!(on_a.served() && on_b.served());
}

/// With a creation rate of 2 a second on the listener and 3 on the broker, ten connections
/// opened at once are all served in the end (the limiter's decisions themselves are tested
/// with a clock of the test's in `basalt-server`).
#[test]
fn connections_over_the_creation_rate_are_all_served_eventually() {
    let limits = ServerLimits {
        max_connection_creation_rate: 3,
        ..ServerLimits::default()
    };
    let broker = TestBroker::start_limited(
        &["PLAINTEXT"],
        limits,
        |_| {},
        |_, _| {
            let mut l = ListenerConfig::plaintext();
            l.max_connection_creation_rate = 2;
            l
        },
    );
    let mut conns: Vec<Raw> = (0..10).map(|_| Raw::connect(broker.addr())).collect();
    for (i, c) in conns.iter_mut().enumerate() {
        assert!(c.served(), "connection {i}");
    }
}

/// `connections.max.idle.ms = 300`: a connection that sends nothing after its first request is
/// closed by the broker; one that has not even sent a request too.
#[test]
fn a_connection_idle_past_connections_max_idle_ms_is_closed() {
    let broker = TestBroker::start_listeners(
        &["PLAINTEXT"],
        |_| {},
        |_, _| {
            let mut l = ListenerConfig::plaintext();
            l.max_idle = Some(Duration::from_millis(300));
            l
        },
    );
    let mut talked = Raw::connect(broker.addr());
    assert!(talked.served());
    let mut silent = Raw::connect(broker.addr());
    assert!(talked.closes_by_itself(), "idle connection still open");
    assert!(silent.closes_by_itself(), "silent connection still open");
}

/// Three failed logins from 127.0.0.1 with the limit at three a minute: the fourth login is
/// refused although its password is right, and the refusal is logged.
#[test]
fn failed_logins_over_the_limit_refuse_even_the_right_password() {
    let logs = capture_logs();
    let broker = TestBroker::start_listeners(
        &["SASL_PLAINTEXT"],
        |_| {},
        |b, _| sasl(b, |s| s.max_failures_per_minute = 3),
    );
    let failed = ErrorCode::SaslAuthenticationFailed.code();
    let (code, _) = Raw::connect(broker.addr()).plain_login(ADMIN.0, ADMIN.1);
    assert_eq!(code, 0, "the right password before any failure");
    for i in 0..3 {
        let mut c = Raw::connect(broker.addr());
        assert_eq!(c.plain_login(ADMIN.0, "wrong").0, failed, "failure {i}");
        assert!(!c.served(), "a failed login closes its connection");
    }
    let mut c = Raw::connect(broker.addr());
    assert_eq!(
        c.plain_login(ADMIN.0, ADMIN.1).0,
        failed,
        "the right password while the limit holds"
    );
    let text = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("login refused without checking credentials"),
        "{text}"
    );
    assert_eq!(text.matches("failures_this_minute=").count(), 3, "{text}");
}

/// A TLS handshake with a client trusting only `ca`.
fn tls_handshake(addr: SocketAddr, ca: &Path) -> Result<(), String> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(TIMEOUT)).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The listener's certificate and key files are replaced by ones from another CA: new
/// connections get the new certificate without a restart, so a client trusting only the new CA
/// fails before the swap and succeeds after, and one trusting only the old CA the other way.
#[test]
fn replaced_certificate_files_serve_new_connections_without_a_restart() {
    let old_ca = TestCa::new("old-ca");
    let new_ca = TestCa::new("new-ca");
    let old = old_ca.server("old-server", false);
    let new = new_ca.server("new-server", false);
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (
        dir.path().join("server.pem"),
        dir.path().join("server-key.pem"),
    );
    std::fs::copy(&old.cert, &cert).unwrap();
    std::fs::copy(&old.key, &key).unwrap();
    let tls = Arc::new(
        TlsSource::new(TlsSettings {
            certificate: cert.clone(),
            key: key.clone(),
            ca: None,
            client_auth: ClientAuth::None,
            protocols: Vec::new(),
        })
        .unwrap(),
    );
    let broker = TestBroker::start_listeners(
        &["SSL"],
        |_| {},
        move |_, name| {
            ListenerConfig::new(name, SecurityProtocol::Ssl, Some(Arc::clone(&tls)), None).unwrap()
        },
    );
    let addr = broker.addr();
    tls_handshake(addr, old_ca.ca_pem()).expect("the old CA before the swap");
    assert!(
        tls_handshake(addr, new_ca.ca_pem()).is_err(),
        "the new CA before the swap"
    );
    // Key first, then certificate, each replaced whole by a rename as deployment tools do.
    for (from, to) in [(&new.key, &key), (&new.cert, &cert)] {
        let tmp = to.with_extension("tmp");
        std::fs::copy(from, &tmp).unwrap();
        std::fs::rename(&tmp, to).unwrap();
    }
    let deadline = Instant::now() + TIMEOUT;
    while let Err(e) = tls_handshake(addr, new_ca.ca_pem()) {
        assert!(
            Instant::now() < deadline,
            "new certificate never served: {e}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        tls_handshake(addr, old_ca.ca_pem()).is_err(),
        "the old CA after the swap"
    );
}

/// `connections.max.reauth.ms = 1000`: librdkafka keeps producing for several seconds on one
/// connection, re-authenticating (KIP-368) before each session expires.
#[test]
fn librdkafka_re_authenticates_and_keeps_producing_past_connections_max_reauth_ms() {
    let logs = capture_logs();
    let broker = TestBroker::start_listeners(
        &["SASL_PLAINTEXT"],
        |_| {},
        |b, _| sasl(b, |s| s.max_reauth_ms = 1000),
    );
    let producer: FutureProducer = config(
        &broker.bootstrap(),
        &[
            ("security.protocol", "sasl_plaintext"),
            ("sasl.mechanism", "SCRAM-SHA-512"),
            ("sasl.username", ADMIN.0),
            ("sasl.password", ADMIN.1),
            ("acks", "all"),
        ],
    )
    .create()
    .unwrap();
    let reauths = || {
        String::from_utf8(logs.lock().unwrap().clone())
            .unwrap()
            .lines()
            .filter(|l| l.contains("authenticated") && l.contains("reauth=true"))
            .count()
    };
    let deadline = Instant::now() + TIMEOUT;
    let mut sent = 0;
    // Produce until three re-authentications happened, and a few records after the last.
    while reauths() < 3 || sent < 5 {
        assert!(
            Instant::now() < deadline,
            "only {} re-authentications",
            reauths()
        );
        let value = format!("r{sent}");
        let record: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to("reauth").payload(value.as_bytes());
        let delivery = block_on(producer.send_result(record).unwrap())
            .unwrap()
            .unwrap_or_else(|(e, _)| panic!("record {sent}: {e}"));
        assert_eq!(delivery.offset, sent);
        sent += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    let text = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert!(
        !text.contains("after the session expired"),
        "a request arrived after its session expired: {text}"
    );
}

/// A raw client that logs in and never re-authenticates: its requests are served while the
/// session lasts, and the first one after it expired closes the connection.
#[test]
fn a_client_that_does_not_re_authenticate_is_closed_after_its_session_expires() {
    let broker = TestBroker::start_listeners(
        &["SASL_PLAINTEXT"],
        |_| {},
        |b, _| sasl(b, |s| s.max_reauth_ms = 1000),
    );
    let mut c = Raw::connect(broker.addr());
    assert_eq!(c.plain_login(ADMIN.0, ADMIN.1), (0, 1000));
    let metadata = || RequestBody::Metadata(MetadataRequest::default());
    assert!(
        matches!(c.call(1, metadata()), Some(ResponseBody::Metadata(_))),
        "served during the session"
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        c.call(1, metadata()).is_none(),
        "served after the session expired"
    );
    // A client that re-authenticates in time keeps its connection.
    let mut c = Raw::connect(broker.addr());
    assert_eq!(c.plain_login(ADMIN.0, ADMIN.1).0, 0);
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(c.plain_login(ADMIN.0, ADMIN.1).0, 0, "re-authentication");
    std::thread::sleep(Duration::from_millis(600));
    assert!(
        matches!(c.call(1, metadata()), Some(ResponseBody::Metadata(_))),
        "served in the renewed session"
    );
}

/// `basalt topic list` against an SSL listener that requires client certificates works with
/// `--ssl-certificate` and `--ssl-key`, and fails without them.
#[test]
fn cli_commands_log_in_with_a_client_certificate() {
    let ca = TestCa::new("mtls-ca");
    let server = ca.server("server", false);
    let client = ca.client("cli", "ops", "basalt", false);
    let tls = Arc::new(
        TlsSource::new(TlsSettings {
            certificate: server.cert,
            key: server.key,
            ca: Some(ca.ca_pem().to_path_buf()),
            client_auth: ClientAuth::Required,
            protocols: Vec::new(),
        })
        .unwrap(),
    );
    let broker = TestBroker::start_listeners(
        &["SSL"],
        |_| {},
        move |_, name| {
            ListenerConfig::new(name, SecurityProtocol::Ssl, Some(Arc::clone(&tls)), None).unwrap()
        },
    );
    let addr = broker.addr().to_string();
    let ca_path = ca.ca_pem().display().to_string();
    let common = [
        "topic",
        "list",
        "--brokers",
        &addr,
        "--security-protocol",
        "SSL",
        "--ssl-ca",
        &ca_path,
    ];
    let without = basalt(&common);
    assert!(!without.0, "listed topics without a client certificate");
    let (cert, key) = (
        client.cert.display().to_string(),
        client.key.display().to_string(),
    );
    let mut args = common.to_vec();
    args.extend(["--ssl-certificate", &cert, "--ssl-key", &key]);
    let with = basalt(&args);
    assert!(
        with.0,
        "topic list with a client certificate failed: {}",
        with.2
    );
}
