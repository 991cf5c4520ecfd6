//! TLS for SSL and SASL_SSL listeners: rustls with the ring provider, TLS 1.2 and 1.3, the
//! server certificate and key from PEM files, and optional client certificates (mTLS) checked
//! against a CA file.
//!
//! # Invariants
//! - `TLS-1`: the files are reloaded without a restart: each accept compares their modification
//!   times and sizes with the ones loaded, and a change builds a new configuration that new connections
//!   use. A reload that fails (a half-written file) keeps the previous configuration and logs why;
//!   open connections are never touched.
//! - `TLS-2`: with `ssl.client.auth=required` a connection without a certificate signed by the CA
//!   fails its handshake; with `requested` a certificate is optional but, if sent, must verify.
//!   As with Kafka's brokers, the server names no acceptable CAs in its certificate request (a
//!   client sends the certificate it has), and a certificate that does not verify is refused with
//!   a `bad_certificate` alert whatever the reason, which stays in the server's log.
//! - `TLS-3`: `ssl.enabled.protocols` (TLSv1.2, TLSv1.3; both by default) are the only versions
//!   negotiated.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::Mutex;
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// A TLS version of `ssl.enabled.protocols`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    /// `TLSv1.2`.
    Tls12,
    /// `TLSv1.3`.
    Tls13,
}

impl std::str::FromStr for TlsVersion {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "TLSv1.2" => Ok(TlsVersion::Tls12),
            "TLSv1.3" => Ok(TlsVersion::Tls13),
            other => Err(format!(
                "ssl.enabled.protocols: {other:?} is not TLSv1.2 or TLSv1.3"
            )),
        }
    }
}

/// `ssl.client.auth`: whether clients present certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// No client certificates are asked for.
    #[default]
    None,
    /// Asked for; a client without one connects as `User:ANONYMOUS`.
    Requested,
    /// Required: a client without a valid one cannot connect.
    Required,
}

impl std::str::FromStr for ClientAuth {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(ClientAuth::None),
            "requested" => Ok(ClientAuth::Requested),
            "required" => Ok(ClientAuth::Required),
            other => Err(format!(
                "ssl.client.auth must be required, requested or none, not {other:?}"
            )),
        }
    }
}

/// Where a TLS listener's files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// `ssl.certificate.location`: PEM file with the server certificate chain, leaf first.
    pub certificate: PathBuf,
    /// `ssl.key.location`: PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// `ssl.ca.location`: PEM file with the CAs client certificates must chain to.
    pub ca: Option<PathBuf>,
    /// `ssl.client.auth`.
    pub client_auth: ClientAuth,
    /// `ssl.enabled.protocols`; empty means both TLS 1.2 and 1.3.
    pub protocols: Vec<TlsVersion>,
}

/// Why a TLS configuration could not be built.
#[derive(Debug)]
pub struct TlsError(pub String);

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsError {}

/// A listener's TLS acceptor, rebuilt when its files change (`TLS-1`).
pub struct TlsSource {
    settings: TlsSettings,
    current: Mutex<(Vec<Stamp>, TlsAcceptor)>,
}

impl std::fmt::Debug for TlsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSource")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl TlsSource {
    /// Loads the files; fails if any is missing or invalid.
    pub fn new(settings: TlsSettings) -> Result<Self, TlsError> {
        if settings.client_auth != ClientAuth::None && settings.ca.is_none() {
            return Err(TlsError(
                "ssl.client.auth needs ssl.ca.location (the CA of client certificates)".into(),
            ));
        }
        let stamps = stamps(&settings);
        let acceptor = build(&settings)?;
        Ok(TlsSource {
            settings,
            current: Mutex::new((stamps, acceptor)),
        })
    }

    /// The settings.
    pub fn settings(&self) -> &TlsSettings {
        &self.settings
    }

    /// The acceptor for a new connection, reloading the files first if they changed.
    pub fn acceptor(&self) -> TlsAcceptor {
        let now = stamps(&self.settings);
        let mut current = self.current.lock();
        if current.0 != now {
            match build(&self.settings) {
                Ok(acceptor) => {
                    tracing::info!(certificate = %self.settings.certificate.display(), "reloaded TLS certificate files");
                    *current = (now, acceptor);
                }
                Err(err) => {
                    tracing::warn!(error = %err, "TLS files changed but cannot be loaded; keeping the previous ones");
                    // Do not retry on every accept until they change again.
                    current.0 = now;
                }
            }
        }
        current.1.clone()
    }
}

/// What tells a changed file: its modification time and size (`None` if it cannot be read).
type Stamp = Option<(SystemTime, u64)>;

fn stamps(s: &TlsSettings) -> Vec<Stamp> {
    [Some(&s.certificate), Some(&s.key), s.ca.as_ref()]
        .into_iter()
        .flatten()
        .map(|p| {
            std::fs::metadata(p)
                .and_then(|m| Ok((m.modified()?, m.len())))
                .ok()
        })
        .collect()
}

fn read_certs(path: &PathBuf, what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| TlsError(format!("{what} {}: {e}", path.display())))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError(format!("{what} {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(TlsError(format!(
            "{what} {}: no certificate in the file",
            path.display()
        )));
    }
    Ok(certs)
}

/// A rustls client trusting the CAs in `ca` and, given `identity` (certificate chain and key
/// PEM files), presenting it when a server asks for a client certificate: how a node
/// connects to the other nodes.
pub fn client_config(
    ca: &Path,
    identity: Option<(&Path, &Path)>,
) -> Result<rustls::ClientConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for cert in read_certs(&ca.to_path_buf(), "ssl.ca.location")? {
        roots
            .add(cert)
            .map_err(|e| TlsError(format!("ssl.ca.location {}: {e}", ca.display())))?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError(e.to_string()))?
        .with_root_certificates(roots);
    Ok(match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = read_certs(&cert.to_path_buf(), "ssl.certificate.location")?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| TlsError(format!("ssl.key.location {}: {e}", key.display())))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| TlsError(format!("client certificate and key: {e}")))?
        }
    })
}

fn build(s: &TlsSettings) -> Result<TlsAcceptor, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = read_certs(&s.certificate, "ssl.certificate.location")?;
    let key = PrivateKeyDer::from_pem_file(&s.key)
        .map_err(|e| TlsError(format!("ssl.key.location {}: {e}", s.key.display())))?;
    let mut versions: Vec<&'static rustls::SupportedProtocolVersion> = Vec::new();
    if s.protocols.is_empty() || s.protocols.contains(&TlsVersion::Tls13) {
        versions.push(&rustls::version::TLS13);
    }
    if s.protocols.is_empty() || s.protocols.contains(&TlsVersion::Tls12) {
        versions.push(&rustls::version::TLS12);
    }
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions)
        .map_err(|e| TlsError(e.to_string()))?;
    let builder = match (&s.ca, s.client_auth) {
        (_, ClientAuth::None) | (None, _) => builder.with_no_client_auth(),
        (Some(ca), auth) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certs(ca, "ssl.ca.location")? {
                roots
                    .add(cert)
                    .map_err(|e| TlsError(format!("ssl.ca.location {}: {e}", ca.display())))?;
            }
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                    .clear_root_hint_subjects();
            let verifier = if auth == ClientAuth::Requested {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier.build().map_err(|e| TlsError(e.to_string()))?;
            builder.with_client_cert_verifier(Arc::new(KafkaClientVerifier(verifier)))
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| TlsError(format!("server certificate and key: {e}")))?;
    config.alpn_protocols.clear();
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The WebPKI client verifier, refusing any certificate that does not verify (unknown CA,
/// expired, wrong use...) with `bad_certificate`, as Kafka's brokers do (rustls would send an
/// alert per reason, and `certificate_unknown` for a reason it does not know), `TLS-2`. The
/// reason goes to the server's log: to the handshake's own line when the handshake runs in
/// [`accept`], else to a line of its own.
#[derive(Debug)]
struct KafkaClientVerifier(Arc<dyn rustls::server::danger::ClientCertVerifier>);

tokio::task_local! {
    /// Why the client certificate of the handshake that [`accept`] runs in this task was refused.
    static REFUSAL: RefCell<Option<rustls::CertificateError>>;
}

/// Runs a server handshake on `stream`. A client certificate refused by the verifier fails
/// the handshake with an error that names the reason, not the alert the client was sent.
pub async fn accept<IO>(acceptor: &TlsAcceptor, stream: IO) -> std::io::Result<TlsStream<IO>>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    REFUSAL
        .scope(RefCell::new(None), async {
            let result = acceptor.accept(stream).await;
            match (result, REFUSAL.with(|r| r.borrow_mut().take())) {
                (Err(_), Some(reason)) => Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("client certificate refused: {reason}"),
                )),
                (result, _) => result,
            }
        })
        .await
}

impl rustls::server::danger::ClientCertVerifier for KafkaClientVerifier {
    fn offer_client_auth(&self) -> bool {
        self.0.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.0.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.0.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        self.0
            .verify_client_cert(end_entity, intermediates, now)
            .map_err(|e| match e {
                rustls::Error::InvalidCertificate(reason) => {
                    let recorded = REFUSAL.try_with(|r| *r.borrow_mut() = Some(reason.clone()));
                    if recorded.is_err() {
                        tracing::warn!(%reason, "client certificate refused");
                    }
                    // rustls answers this reason with `bad_certificate`.
                    rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)
                }
                other => other,
            })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
