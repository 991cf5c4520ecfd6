//! Listeners with security protocols against librdkafka (built with OpenSSL): SSL with server
//! authentication and with client certificates (mTLS, the principal taken from the subject),
//! SASL_PLAINTEXT with PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512, SASL_SSL with SCRAM-SHA-512;
//! wrong passwords, unknown users, untrusted and expired certificates refused; a user created
//! with `basalt user create` logging in without a restart; the gate before login; and each
//! listener advertising its own address.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use basalt_protocol::messages::api_versions_request::ApiVersionsRequest;
use basalt_protocol::messages::metadata_request::MetadataRequest;
use basalt_protocol::{RequestBody, RequestHeader, encode_request_frame};
use basalt_server::{
    ClientAuth, ListenerConfig, Mechanism, SaslConfig, SecurityProtocol, TlsSettings, TlsSource,
};
use basalt_testkit::{TestBroker, TestCa};
use rdkafka::ClientContext;
use rdkafka::client::Client;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;

use crate::common::{TIMEOUT, block_on};

pub(crate) const ADMIN: (&str, &str) = ("admin", "admin-secret");

fn tls_source(ca: &TestCa, client_auth: ClientAuth, expired: bool) -> Arc<TlsSource> {
    let server = ca.server("server", expired);
    Arc::new(
        TlsSource::new(TlsSettings {
            certificate: server.cert,
            key: server.key,
            ca: Some(ca.ca_pem().to_path_buf()),
            client_auth,
            protocols: Vec::new(),
        })
        .unwrap(),
    )
}

pub(crate) fn sasl_config(
    broker: &Arc<basalt_broker::Broker>,
    mechanisms: &[Mechanism],
) -> Arc<SaslConfig> {
    broker.credentials().ensure_user(ADMIN.0, ADMIN.1).unwrap();
    let mut sasl = SaslConfig::new(
        mechanisms.to_vec(),
        Arc::clone(broker.credentials()) as Arc<dyn basalt_server::CredentialSource>,
    );
    sasl.failed_authentication_delay = Duration::from_millis(10);
    Arc::new(sasl)
}

/// A broker whose single listener `name` uses `protocol`.
fn secured_broker(
    protocol: SecurityProtocol,
    tls: Option<Arc<TlsSource>>,
    mechanisms: &[Mechanism],
) -> TestBroker {
    let mechanisms = mechanisms.to_vec();
    TestBroker::start_listeners(
        &[protocol.name()],
        |_| {},
        move |broker, name| {
            let sasl = protocol.is_sasl().then(|| sasl_config(broker, &mechanisms));
            ListenerConfig::new(name, protocol, tls.clone(), sasl).unwrap()
        },
    )
}

/// librdkafka settings for `bootstrap` with `extra` on top.
pub(crate) fn config(bootstrap: &str, extra: &[(&str, &str)]) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("reconnect.backoff.ms", "20")
        .set("reconnect.backoff.max.ms", "500")
        .set("message.timeout.ms", "30000");
    for (k, v) in extra {
        config.set(*k, *v);
    }
    config
}

/// Produces three records to `topic` and reads them back, both clients with `extra` settings.
fn round_trip(bootstrap: &str, topic: &str, extra: &[(&str, &str)]) {
    let producer: FutureProducer = config(bootstrap, extra)
        .set("acks", "all")
        .set("linger.ms", "5")
        .create()
        .unwrap();
    for i in 0..3 {
        let value = format!("secret-{i}");
        let record: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(topic).payload(value.as_bytes());
        let delivery = block_on(producer.send_result(record).unwrap())
            .unwrap()
            .unwrap_or_else(|(e, _)| panic!("{topic}: delivery failed: {e}"));
        assert_eq!(delivery.offset, i);
    }
    use rdkafka::Offset;
    use rdkafka::TopicPartitionList;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    let consumer: BaseConsumer = config(bootstrap, extra)
        .set("group.id", "security")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "100")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let deadline = Instant::now() + TIMEOUT;
    let mut got = Vec::new();
    while got.len() < 3 {
        assert!(Instant::now() < deadline, "{topic}: read {got:?} only");
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => got.push(String::from_utf8(m.payload().unwrap().to_vec()).unwrap()),
            Some(Err(e)) => panic!("{topic}: consume error: {e}"),
            None => {}
        }
    }
    assert_eq!(got, ["secret-0", "secret-1", "secret-2"]);
}

/// Records the errors librdkafka reports.
#[derive(Default, Clone)]
struct Errors(Arc<Mutex<Vec<(RDKafkaErrorCode, String)>>>);

impl rdkafka::producer::ProducerContext for Errors {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &rdkafka::message::DeliveryResult<'_>, _: Self::DeliveryOpaque) {}
}

impl ClientContext for Errors {
    fn error(&self, error: KafkaError, reason: &str) {
        if let Some(code) = error.rdkafka_error_code() {
            self.0.lock().unwrap().push((code, reason.to_owned()));
        }
    }
}

/// Connects with `extra` settings and waits until librdkafka reports an error with one of
/// `codes`; returns its reason. Panics if the connection works (metadata arrives) instead.
fn expect_refused(bootstrap: &str, extra: &[(&str, &str)], codes: &[RDKafkaErrorCode]) -> String {
    let errors = Errors::default();
    let producer: BaseProducer<Errors> = config(bootstrap, extra)
        .create_with_context(errors.clone())
        .unwrap();
    let deadline = Instant::now() + TIMEOUT;
    loop {
        producer.poll(Duration::from_millis(100));
        if let Some((_, reason)) = errors
            .0
            .lock()
            .unwrap()
            .iter()
            .find(|(c, _)| codes.contains(c))
        {
            return reason.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no {codes:?} error; got {:?}",
            errors.0.lock().unwrap()
        );
    }
}

fn client_metadata_port<C: ClientContext>(client: &Client<C>) -> i32 {
    let metadata = client.fetch_metadata(None, TIMEOUT).unwrap();
    metadata.brokers()[0].port()
}

#[test]
fn ssl_listener_serves_librdkafka_with_server_authentication() {
    let ca = TestCa::new("basalt-test");
    let broker = secured_broker(
        SecurityProtocol::Ssl,
        Some(tls_source(&ca, ClientAuth::None, false)),
        &[],
    );
    let ca_path = ca.ca_pem().display().to_string();
    round_trip(
        &broker.bootstrap(),
        "over-tls",
        &[("security.protocol", "ssl"), ("ssl.ca.location", &ca_path)],
    );
}

#[test]
fn mtls_takes_the_principal_from_the_client_certificate_subject() {
    let logs = capture_logs();
    let ca = TestCa::new("basalt-test");
    let broker = secured_broker(
        SecurityProtocol::Ssl,
        Some(tls_source(&ca, ClientAuth::Required, false)),
        &[],
    );
    let client = ca.client("client", "app-1", "Acme", false);
    let (ca_path, cert, key) = (
        ca.ca_pem().display().to_string(),
        client.cert.display().to_string(),
        client.key.display().to_string(),
    );
    let settings = [
        ("security.protocol", "ssl"),
        ("ssl.ca.location", ca_path.as_str()),
        ("ssl.certificate.location", cert.as_str()),
        ("ssl.key.location", key.as_str()),
    ];
    round_trip(&broker.bootstrap(), "mtls", &settings);
    let text = logs.lock().unwrap().clone();
    let text = String::from_utf8_lossy(&text);
    assert!(
        text.contains("principal=User:CN=app-1,O=Acme"),
        "no principal in the log:\n{text}"
    );
    // Without a certificate the handshake fails.
    expect_refused(
        &broker.bootstrap(),
        &[("security.protocol", "ssl"), ("ssl.ca.location", &ca_path)],
        &[
            RDKafkaErrorCode::SSL,
            RDKafkaErrorCode::AllBrokersDown,
            RDKafkaErrorCode::BrokerTransportFailure,
        ],
    );
}

#[test]
fn sasl_plaintext_with_plain_and_both_scram_mechanisms() {
    let broker = secured_broker(
        SecurityProtocol::SaslPlaintext,
        None,
        &[
            Mechanism::Plain,
            Mechanism::ScramSha256,
            Mechanism::ScramSha512,
        ],
    );
    for (mechanism, topic) in [
        ("PLAIN", "sasl-plain"),
        ("SCRAM-SHA-256", "sasl-scram-256"),
        ("SCRAM-SHA-512", "sasl-scram-512"),
    ] {
        round_trip(
            &broker.bootstrap(),
            topic,
            &[
                ("security.protocol", "sasl_plaintext"),
                ("sasl.mechanism", mechanism),
                ("sasl.username", ADMIN.0),
                ("sasl.password", ADMIN.1),
            ],
        );
    }
}

#[test]
fn sasl_ssl_with_plain_and_both_scram_mechanisms() {
    let ca = TestCa::new("basalt-test");
    let broker = secured_broker(
        SecurityProtocol::SaslSsl,
        Some(tls_source(&ca, ClientAuth::None, false)),
        &[
            Mechanism::Plain,
            Mechanism::ScramSha256,
            Mechanism::ScramSha512,
        ],
    );
    let ca_path = ca.ca_pem().display().to_string();
    for (mechanism, topic) in [
        ("PLAIN", "sasl-ssl-plain"),
        ("SCRAM-SHA-256", "sasl-ssl-scram-256"),
        ("SCRAM-SHA-512", "sasl-ssl-scram-512"),
    ] {
        round_trip(
            &broker.bootstrap(),
            topic,
            &[
                ("security.protocol", "sasl_ssl"),
                ("ssl.ca.location", &ca_path),
                ("sasl.mechanism", mechanism),
                ("sasl.username", ADMIN.0),
                ("sasl.password", ADMIN.1),
            ],
        );
    }
}

#[test]
fn wrong_password_and_unknown_user_are_authentication_failures() {
    let broker = secured_broker(
        SecurityProtocol::SaslPlaintext,
        None,
        &[
            Mechanism::Plain,
            Mechanism::ScramSha256,
            Mechanism::ScramSha512,
        ],
    );
    for mechanism in ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"] {
        for (user, password) in [(ADMIN.0, "wrong"), ("nobody", ADMIN.1)] {
            let reason = expect_refused(
                &broker.bootstrap(),
                &[
                    ("security.protocol", "sasl_plaintext"),
                    ("sasl.mechanism", mechanism),
                    ("sasl.username", user),
                    ("sasl.password", password),
                ],
                &[RDKafkaErrorCode::Authentication],
            );
            assert!(
                reason.contains("invalid credentials"),
                "{mechanism} {user}: {reason}"
            );
        }
    }
}

#[test]
fn untrusted_ca_and_expired_certificates_are_refused() {
    let ca = TestCa::new("basalt-test");
    let other = TestCa::new("someone-else");
    let ssl_errors = [
        RDKafkaErrorCode::SSL,
        RDKafkaErrorCode::AllBrokersDown,
        RDKafkaErrorCode::BrokerTransportFailure,
    ];
    // The client trusts another CA.
    let broker = secured_broker(
        SecurityProtocol::Ssl,
        Some(tls_source(&ca, ClientAuth::Required, false)),
        &[],
    );
    let other_ca = other.ca_pem().display().to_string();
    let reason = expect_refused(
        &broker.bootstrap(),
        &[("security.protocol", "ssl"), ("ssl.ca.location", &other_ca)],
        &ssl_errors,
    );
    assert!(
        reason.contains("certificate verify failed") || reason.contains("SSL"),
        "{reason}"
    );
    // A client certificate from an untrusted CA, and an expired one from the right CA: the
    // broker answers `bad_certificate` whatever the reason, as Kafka's brokers do (`TLS-2`).
    // Under TLS 1.2 the alert ends the client's handshake (an SSL error); under TLS 1.3 it
    // comes after the client's Finished, and librdkafka reports it as a transport failure.
    let ca_path = ca.ca_pem().display().to_string();
    for client in [
        other.client("stranger", "stranger", "Elsewhere", false),
        ca.client("expired", "old-app", "Acme", true),
    ] {
        let (cert, key) = (
            client.cert.display().to_string(),
            client.key.display().to_string(),
        );
        let reason = expect_refused(
            &broker.bootstrap(),
            &[
                ("security.protocol", "ssl"),
                ("ssl.ca.location", &ca_path),
                ("ssl.certificate.location", &cert),
                ("ssl.key.location", &key),
            ],
            &[
                RDKafkaErrorCode::SSL,
                RDKafkaErrorCode::BrokerTransportFailure,
            ],
        );
        assert!(reason.contains("alert number 42"), "{reason}");
    }
    drop(broker);
    // An expired server certificate.
    let expired = secured_broker(
        SecurityProtocol::Ssl,
        Some(tls_source(&ca, ClientAuth::None, true)),
        &[],
    );
    let reason = expect_refused(
        &expired.bootstrap(),
        &[("security.protocol", "ssl"), ("ssl.ca.location", &ca_path)],
        &ssl_errors,
    );
    assert!(
        reason.contains("expired") || reason.contains("SSL"),
        "{reason}"
    );
}

#[test]
fn a_user_created_with_the_cli_logs_in_without_a_restart() {
    let broker = TestBroker::start_listeners(
        &["INTERNAL", "EXTERNAL"],
        |_| {},
        |broker, name| {
            if name == "INTERNAL" {
                ListenerConfig::plaintext()
            } else {
                let sasl = sasl_config(broker, &[Mechanism::ScramSha256, Mechanism::ScramSha512]);
                ListenerConfig::new(name, SecurityProtocol::SaslPlaintext, None, Some(sasl))
                    .unwrap()
            }
        },
    );
    let external = broker.listener_addr("EXTERNAL").to_string();
    let bob = [
        ("security.protocol", "sasl_plaintext"),
        ("sasl.mechanism", "SCRAM-SHA-256"),
        ("sasl.username", "bob"),
        ("sasl.password", "bob-secret"),
    ];
    expect_refused(&external, &bob, &[RDKafkaErrorCode::Authentication]);
    // Created through the SASL listener itself, logged in as the admin.
    let run = basalt(&[
        "user",
        "create",
        "bob",
        "--password",
        "bob-secret",
        "--brokers",
        &external,
        "--security-protocol",
        "SASL_PLAINTEXT",
        "--sasl-mechanism",
        "SCRAM-SHA-512",
        "--sasl-username",
        ADMIN.0,
        "--sasl-password",
        ADMIN.1,
    ]);
    assert!(run.0, "user create failed: {}", run.2);
    assert!(run.1.contains("created user bob"), "{}", run.1);
    round_trip(&external, "bob-topic", &bob);
    let internal = broker.listener_addr("INTERNAL").to_string();
    let list = basalt(&["user", "list", "--brokers", &internal, "--json"]);
    assert!(list.0, "{}", list.2);
    assert!(
        list.1.contains("\"bob\"") && list.1.contains("SCRAM-SHA-512"),
        "{}",
        list.1
    );
    let delete = basalt(&["user", "delete", "bob", "--brokers", &internal]);
    assert!(delete.0, "{}", delete.2);
    expect_refused(&external, &bob, &[RDKafkaErrorCode::Authentication]);
    // A wrong admin password is reported as an authentication failure by the CLI too.
    let refused = basalt(&[
        "user",
        "list",
        "--brokers",
        &external,
        "--security-protocol",
        "SASL_PLAINTEXT",
        "--sasl-username",
        ADMIN.0,
        "--sasl-password",
        "nope",
    ]);
    assert!(!refused.0);
    assert!(
        refused.2.contains("SASL_AUTHENTICATION_FAILED"),
        "{}",
        refused.2
    );
}

#[test]
fn an_unauthenticated_request_on_a_sasl_listener_closes_the_connection() {
    let broker = secured_broker(
        SecurityProtocol::SaslPlaintext,
        None,
        &[Mechanism::ScramSha512],
    );
    let mut stream = TcpStream::connect(broker.addr()).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let request = |correlation_id: i32, body: RequestBody, version: i16| {
        let header = RequestHeader {
            request_api_key: body.api_key().key(),
            request_api_version: version,
            correlation_id,
            client_id: Some("raw".into()),
            unknown_tagged_fields: Vec::new(),
        };
        encode_request_frame(&header, &body).unwrap()
    };
    // ApiVersions is allowed and answered.
    stream
        .write_all(&request(
            1,
            RequestBody::ApiVersions(ApiVersionsRequest::default()),
            0,
        ))
        .unwrap();
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(size) as usize];
    stream.read_exact(&mut body).unwrap();
    assert_eq!(&body[..4], &1i32.to_be_bytes(), "the ApiVersions answer");
    // Metadata before login closes the connection without an answer.
    stream
        .write_all(&request(
            2,
            RequestBody::Metadata(MetadataRequest::default()),
            1,
        ))
        .unwrap();
    let mut rest = Vec::new();
    let read = stream.read_to_end(&mut rest);
    assert!(
        matches!(read, Ok(0)) || read.is_err(),
        "expected the connection closed, read {read:?} {rest:?}"
    );
    // A frame above sasl.server.max.receive.size before login closes it too.
    let mut stream = TcpStream::connect(broker.addr()).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.write_all(&(1_000_000u32).to_be_bytes()).unwrap();
    let mut rest = Vec::new();
    let read = stream.read_to_end(&mut rest);
    assert!(matches!(read, Ok(0)) || read.is_err(), "{read:?}");
}

#[test]
fn plaintext_and_sasl_ssl_listeners_each_advertise_their_own_address() {
    let ca = TestCa::new("basalt-test");
    let tls = tls_source(&ca, ClientAuth::None, false);
    let broker = TestBroker::start_listeners(
        &["PLAINTEXT", "SASL_SSL"],
        |_| {},
        move |broker, name| {
            if name == "PLAINTEXT" {
                ListenerConfig::plaintext()
            } else {
                let sasl = sasl_config(broker, &[Mechanism::ScramSha512]);
                ListenerConfig::new(
                    name,
                    SecurityProtocol::SaslSsl,
                    Some(tls.clone()),
                    Some(sasl),
                )
                .unwrap()
            }
        },
    );
    let plain = broker.listener_addr("PLAINTEXT");
    let secure = broker.listener_addr("SASL_SSL");
    assert_ne!(plain.port(), secure.port());
    let plain_client: BaseProducer = config(&plain.to_string(), &[]).create().unwrap();
    assert_eq!(
        client_metadata_port(plain_client.client()),
        i32::from(plain.port())
    );
    let ca_path = ca.ca_pem().display().to_string();
    let secure_client: BaseProducer = config(
        &secure.to_string(),
        &[
            ("security.protocol", "sasl_ssl"),
            ("ssl.ca.location", &ca_path),
            ("sasl.mechanism", "SCRAM-SHA-512"),
            ("sasl.username", ADMIN.0),
            ("sasl.password", ADMIN.1),
        ],
    )
    .create()
    .unwrap();
    assert_eq!(
        client_metadata_port(secure_client.client()),
        i32::from(secure.port())
    );
}

/// Runs the built `basalt`; returns success, stdout and stderr.
pub(crate) fn basalt(args: &[&str]) -> (bool, String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_basalt"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Sends this process's log lines (every test runs in its own process under nextest) to a
/// buffer the test can read.
pub(crate) fn capture_logs() -> Arc<Mutex<Vec<u8>>> {
    #[derive(Clone)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Buffer(Arc::new(Mutex::new(Vec::new())));
    let writer = buffer.clone();
    let _ = tracing_subscriber::fmt()
        .with_env_filter("info")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .try_init();
    buffer.0
}

/// Logins and ACLs together: the principal a SASL login establishes is the one ACLs decide on.
#[test]
fn acls_decide_on_the_principal_of_a_sasl_login() {
    use basalt_broker::acl::{AclBinding, Operation, PatternType, Permission, ResourceType};
    let broker = TestBroker::start_listeners(
        &["SASL_PLAINTEXT"],
        |c| {
            c.authorizer.enabled = true;
            c.authorizer.super_users = vec![format!("User:{}", ADMIN.0)];
        },
        |broker, name| {
            broker
                .credentials()
                .ensure_user("alice", "alice-secret")
                .unwrap();
            broker
                .credentials()
                .ensure_user("bob", "bob-secret")
                .unwrap();
            let sasl = sasl_config(broker, &[Mechanism::ScramSha512]);
            ListenerConfig::new(name, SecurityProtocol::SaslPlaintext, None, Some(sasl)).unwrap()
        },
    );
    broker
        .broker()
        .create_topic("orders", 1, 1, Default::default(), false)
        .unwrap();
    let grant = |operation| AclBinding {
        resource_type: ResourceType::Topic,
        resource_name: "orders".into(),
        pattern_type: PatternType::Literal,
        principal: "User:alice".into(),
        host: "*".into(),
        operation,
        permission: Permission::Allow,
    };
    broker
        .broker()
        .create_acls(vec![grant(Operation::Write), grant(Operation::Read)])
        .unwrap();
    let login = |user: &'static str, password: &'static str| {
        vec![
            ("security.protocol", "sasl_plaintext"),
            ("sasl.mechanism", "SCRAM-SHA-512"),
            ("sasl.username", user),
            ("sasl.password", password),
        ]
    };
    let send = |extra: &[(&str, &str)]| {
        let producer: FutureProducer = config(&broker.bootstrap(), extra)
            .set("acks", "all")
            .set("message.timeout.ms", "10000")
            .create()
            .unwrap();
        let record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to("orders")
            .partition(0)
            .payload(b"order".as_slice());
        block_on(producer.send_result(record).unwrap())
            .unwrap()
            .map(|_| ())
            .map_err(|(e, _)| e)
    };
    // alice may write; bob, logged in as well, may not; the super user may.
    assert!(send(&login("alice", "alice-secret")).is_ok());
    let refused = send(&login("bob", "bob-secret")).expect_err("bob has no ACL");
    assert_eq!(
        refused.rdkafka_error_code(),
        Some(RDKafkaErrorCode::TopicAuthorizationFailed),
        "{refused:?}"
    );
    assert!(send(&login(ADMIN.0, ADMIN.1)).is_ok());
}

/// `basalt serve` creates the bootstrap user from `BASALT_BOOTSTRAP_USER` at first start, so a
/// broker whose only listener needs a login can be used at once; a later start keeps the
/// credentials (the environment no longer matters).
#[test]
fn the_bootstrap_user_can_log_in_to_a_fresh_broker() {
    use basalt_testkit::ProcessBroker;
    let dir = tempfile::tempdir().unwrap();
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_basalt"));
    let args = ["--sasl.enabled.mechanisms", "SCRAM-SHA-256,SCRAM-SHA-512"];
    let login = [
        ("security.protocol", "sasl_plaintext"),
        ("sasl.mechanism", "SCRAM-SHA-256"),
        ("sasl.username", "boot"),
        ("sasl.password", "boot-secret"),
    ];
    let broker = ProcessBroker::start_at(
        bin,
        dir.path(),
        "SASL_PLAINTEXT://127.0.0.1:0",
        &args,
        &[("BASALT_BOOTSTRAP_USER", "boot:boot-secret")],
    );
    round_trip(&broker.bootstrap(), "bootstrap-user", &login);
    let (status, log) = broker.terminate();
    assert!(status.success(), "log:\n{log}");
    assert!(log.contains("created the bootstrap user"), "log:\n{log}");
    // The credentials live in the cluster metadata (the Raft log and snapshot under
    // `metadata/`), which never holds the password itself; no credentials file is written.
    assert!(!dir.path().join("credentials.json").exists());
    for file in files_under(dir.path()) {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !bytes
                .windows(b"boot-secret".len())
                .any(|w| w == b"boot-secret"),
            "the password itself is stored in {}",
            file.display()
        );
    }

    let broker =
        ProcessBroker::start_at(bin, dir.path(), "SASL_PLAINTEXT://127.0.0.1:0", &args, &[]);
    let producer: FutureProducer = config(&broker.bootstrap(), &login).create().unwrap();
    let record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to("bootstrap-user")
        .partition(0)
        .payload(b"again".as_slice());
    let delivery = block_on(producer.send_result(record).unwrap()).unwrap();
    assert_eq!(delivery.map(|d| d.offset).ok(), Some(3));
    drop(producer);
    let (status, log) = broker.terminate();
    assert!(status.success(), "log:\n{log}");
}

/// Every file under `dir`, at any depth.
pub(crate) fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

/// A TLS client limited to `version`, trusting `ca`: the negotiated version after it sent
/// ApiVersions over `addr` and read the answer, or the handshake's error.
fn tls_exchange(
    addr: std::net::SocketAddr,
    ca: &TestCa,
    version: &'static rustls::SupportedProtocolVersion,
) -> Result<String, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca.ca_pem()).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[version])
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let server = ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), server).unwrap();
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let header = RequestHeader {
        request_api_key: 18,
        request_api_version: 0,
        correlation_id: 7,
        client_id: Some("tls-version".into()),
        unknown_tagged_fields: Vec::new(),
    };
    let frame = encode_request_frame(
        &header,
        &RequestBody::ApiVersions(ApiVersionsRequest::default()),
    )
    .unwrap();
    tls.write_all(&frame).map_err(|e| e.to_string())?;
    let mut len = [0u8; 4];
    tls.read_exact(&mut len).map_err(|e| e.to_string())?;
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    tls.read_exact(&mut body).map_err(|e| e.to_string())?;
    // The response echoes the correlation id.
    assert_eq!(&body[..4], &7i32.to_be_bytes());
    Ok(format!("{:?}", tls.conn.protocol_version().unwrap()))
}

/// An SSL listener speaks TLS 1.2 and TLS 1.3 by default, and only the versions of
/// `ssl.enabled.protocols` when it is set.
#[test]
fn ssl_listeners_speak_tls_1_2_and_1_3_or_the_enabled_protocols() {
    let ca = TestCa::new("basalt-test");
    let broker = secured_broker(
        SecurityProtocol::Ssl,
        Some(tls_source(&ca, ClientAuth::None, false)),
        &[],
    );
    let tls12 = &rustls::version::TLS12;
    let tls13 = &rustls::version::TLS13;
    assert_eq!(
        tls_exchange(broker.addr(), &ca, tls12).as_deref(),
        Ok("TLSv1_2")
    );
    assert_eq!(
        tls_exchange(broker.addr(), &ca, tls13).as_deref(),
        Ok("TLSv1_3")
    );

    let server = ca.server("server-12", false);
    let only_12 = Arc::new(
        TlsSource::new(TlsSettings {
            certificate: server.cert,
            key: server.key,
            ca: None,
            client_auth: ClientAuth::None,
            protocols: vec![basalt_server::TlsVersion::Tls12],
        })
        .unwrap(),
    );
    let broker = secured_broker(SecurityProtocol::Ssl, Some(only_12), &[]);
    assert_eq!(
        tls_exchange(broker.addr(), &ca, tls12).as_deref(),
        Ok("TLSv1_2")
    );
    let refused = tls_exchange(broker.addr(), &ca, tls13).expect_err("TLS 1.3 is not enabled");
    assert!(refused.to_lowercase().contains("protocol"), "{refused}");
}

/// Fetched batches leave the broker from the segment file: with `sendfile` on a plaintext
/// listener and through the connection's reused buffer on TLS. A few megabytes of distinct
/// values, read from the start over both listeners, arrive whole and in order on each.
#[test]
fn large_fetches_arrive_whole_over_plaintext_and_tls() {
    use rdkafka::Offset;
    use rdkafka::TopicPartitionList;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;

    let ca = TestCa::new("basalt-test");
    let tls = tls_source(&ca, ClientAuth::None, false);
    let broker = TestBroker::start_listeners(
        &["PLAINTEXT", "SSL"],
        |_| {},
        move |_, name| {
            if name == "PLAINTEXT" {
                ListenerConfig::plaintext()
            } else {
                ListenerConfig::new(name, SecurityProtocol::Ssl, Some(tls.clone()), None).unwrap()
            }
        },
    );
    let plain = broker.listener_addr("PLAINTEXT").to_string();
    let secure = broker.listener_addr("SSL").to_string();
    let ca_path = ca.ca_pem().display().to_string();
    let tls_settings = [("security.protocol", "ssl"), ("ssl.ca.location", &ca_path)];

    const COUNT: usize = 5000;
    let value = |i: usize| -> Vec<u8> {
        let mut v = format!("{i:08}").into_bytes();
        v.resize(1024, (i % 251) as u8);
        v
    };
    let producer: FutureProducer = config(&plain, &[]).set("acks", "all").create().unwrap();
    for i in 0..COUNT {
        let v = value(i);
        let record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to("big").payload(&v[..]);
        producer
            .send_result(record)
            .unwrap_or_else(|(e, _)| panic!("enqueue failed: {e}"));
    }
    producer.flush(TIMEOUT).unwrap();

    for (bootstrap, extra) in [(&plain, &[][..]), (&secure, &tls_settings[..])] {
        let consumer: BaseConsumer = config(bootstrap, extra)
            .set("group.id", "big-readers")
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("big", 0, Offset::Beginning)
            .unwrap();
        consumer.assign(&tpl).unwrap();
        let deadline = Instant::now() + TIMEOUT;
        let mut next = 0usize;
        while next < COUNT {
            assert!(
                Instant::now() < deadline,
                "{bootstrap}: read {next} of {COUNT}"
            );
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    assert_eq!(m.offset(), next as i64, "{bootstrap}");
                    assert!(
                        m.payload() == Some(&value(next)[..]),
                        "{bootstrap}: value {next}"
                    );
                    next += 1;
                }
                Some(Err(e)) => panic!("{bootstrap}: consume error: {e}"),
                None => {}
            }
        }
    }
}
