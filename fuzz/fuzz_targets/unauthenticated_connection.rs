//! Fuzz target: what an unauthenticated client controls before it has logged in. The input is
//! split into length-prefixed messages that drive (1) a SASL exchange on a SASL listener's
//! connection (SaslHandshake with a fuzzed mechanism, then SaslAuthenticate steps, through the
//! same `ConnectionInfo` methods the broker's handlers call), (2) the SCRAM and PLAIN parsers
//! directly, (3) the certificate-subject reader, and (4) a rustls server handshake with the
//! listener's TLS configuration (ring provider, client certificates requested). None may panic.

#![no_main]

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use basalt_server::scram::{self, Mechanism, ScramCredential, ScramServer};
use basalt_server::{
    ClientAuth, ConnectionInfo, CredentialSource, ListenerConfig, SaslConfig, SecurityProtocol,
    TlsSettings, TlsSource,
};
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

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
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("basalt-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
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
        }
    })
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

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let msgs = messages(data);
    // (1) The SASL exchange of a connection.
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
    // (2) The mechanisms directly.
    for mechanism in [Mechanism::ScramSha256, Mechanism::ScramSha512] {
        let mut server = ScramServer::new(mechanism, "nonce".into());
        for m in msgs.iter().take(3) {
            let _ = server.step(m, |u| OneUser.scram_credential(u, mechanism), b"fake");
        }
    }
    let _ = scram::authenticate_plain(data, None);
    // (3) Certificate subjects.
    let _ = basalt_server::x509::subject_dn(data);
    // (4) A TLS handshake fed the input as the client's bytes.
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
});
