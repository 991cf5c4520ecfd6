//! Replays every file of the `unauthenticated_connection` fuzz corpus
//! (`tests/corpus/unauthenticated_connection/`) through the same steps as the fuzz target
//! (`fuzz/fuzz_targets/unauthenticated_connection.rs`): a SASL exchange on a SASL_SSL
//! listener's connection, the SCRAM and PLAIN parsers, the certificate-subject reader and a
//! rustls server handshake. None may panic. The seeds were written by hand (PLAIN and SCRAM
//! exchanges, TLS 1.2 and 1.3 ClientHellos); files the fuzzer found are kept alongside them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use basalt_server::scram::{self, Mechanism, ScramCredential, ScramServer};
use basalt_server::{
    ClientAuth, ConnectionInfo, CredentialSource, ListenerConfig, SaslConfig, SecurityProtocol,
    TlsSettings, TlsSource,
};
use bytes::Bytes;

struct OneUser;

impl CredentialSource for OneUser {
    fn scram_credential(&self, user: &str, mechanism: Mechanism) -> Option<ScramCredential> {
        (user == "alice").then(|| ScramCredential::derive(mechanism, b"pw", b"salt", 4096))
    }
}

struct Fixture {
    runtime: tokio::runtime::Runtime,
    listener: Arc<ListenerConfig>,
    tls: Arc<rustls::ServerConfig>,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let source = TlsSource::new(TlsSettings {
        certificate: cert_path.clone(),
        key: key_path,
        ca: Some(cert_path),
        client_auth: ClientAuth::Requested,
        protocols: Vec::new(),
    })
    .unwrap();
    let tls = source.acceptor().config().clone();
    let mut sasl = SaslConfig::new(Mechanism::ALL.to_vec(), Arc::new(OneUser));
    sasl.failed_authentication_delay = std::time::Duration::ZERO;
    sasl.max_failures_per_minute = u32::MAX;
    let listener = ListenerConfig::new(
        "SASL_SSL",
        SecurityProtocol::SaslSsl,
        Some(Arc::new(source)),
        Some(Arc::new(sasl)),
    )
    .unwrap();
    Fixture {
        runtime: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap(),
        listener: Arc::new(listener),
        tls,
        _dir: dir,
    }
}

/// Splits `data` into messages, each prefixed by one length byte.
fn messages(mut data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while let Some((&len, rest)) = data.split_first() {
        let n = usize::from(len).min(rest.len());
        out.push(&rest[..n]);
        data = &rest[n..];
    }
    out
}

/// The fuzz target's body.
fn check_input(f: &Fixture, data: &[u8]) {
    let msgs = messages(data);
    let addr: SocketAddr = "127.0.0.1:9094".parse().unwrap();
    let conn = ConnectionInfo::on_listener(1, addr, addr, Arc::clone(&f.listener));
    if let Some((first, rest)) = msgs.split_first() {
        let mechanism = String::from_utf8_lossy(first);
        let _ = conn.sasl_handshake(&mechanism, 1);
        f.runtime.block_on(async {
            for m in rest.iter().take(4) {
                let _ = conn.sasl_authenticate(Bytes::copy_from_slice(m)).await;
            }
        });
    }
    for mechanism in [Mechanism::ScramSha256, Mechanism::ScramSha512] {
        let mut server = ScramServer::new(mechanism, "nonce".into());
        for m in msgs.iter().take(3) {
            let _ = server.step(m, |u| OneUser.scram_credential(u, mechanism), b"fake");
        }
    }
    let _ = scram::authenticate_plain(data, None);
    let _ = basalt_server::x509::subject_dn(data);
    if let Ok(mut server) = rustls::ServerConnection::new(Arc::clone(&f.tls)) {
        let mut input = data;
        while !input.is_empty() {
            match server.read_tls(&mut input) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if server.process_new_packets().is_err() {
                        break;
                    }
                }
            }
        }
    }
}

#[test]
fn replay_unauthenticated_connection_corpus() {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/unauthenticated_connection");
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    let f = fixture();
    for path in &entries {
        check_input(&f, &std::fs::read(path).unwrap());
    }
    assert!(
        entries.len() >= 10,
        "corpus has only {} files",
        entries.len()
    );
}

/// The seeds reach the states they were written for: a good PLAIN login authenticates, a wrong
/// one fails, and a ClientHello gets a ServerHello.
#[test]
fn seeds_drive_the_exchanges_they_name() {
    let f = fixture();
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/unauthenticated_connection");
    let read = |name: &str| std::fs::read(dir.join(name)).unwrap();
    let addr: SocketAddr = "127.0.0.1:9094".parse().unwrap();
    for (seed, ok) in [("seed-plain-good.bin", true), ("seed-plain-bad.bin", false)] {
        let data = read(seed);
        let msgs = messages(&data);
        let conn = ConnectionInfo::on_listener(1, addr, addr, Arc::clone(&f.listener));
        assert_eq!(
            conn.sasl_handshake(&String::from_utf8_lossy(msgs[0]), 1)
                .error_code,
            0
        );
        let r = f
            .runtime
            .block_on(conn.sasl_authenticate(Bytes::copy_from_slice(msgs[1])));
        assert_eq!(r.error_code == 0, ok, "{seed}: {r:?}");
        assert_eq!(conn.principal() == "User:alice", ok, "{seed}");
    }
    for seed in ["seed-tls12-client-hello.bin", "seed-tls13-client-hello.bin"] {
        let data = read(seed);
        let mut server = rustls::ServerConnection::new(Arc::clone(&f.tls)).unwrap();
        let mut input = &data[..];
        server.read_tls(&mut input).unwrap();
        server.process_new_packets().unwrap();
        assert!(server.wants_write(), "{seed}: no ServerHello");
    }
}
