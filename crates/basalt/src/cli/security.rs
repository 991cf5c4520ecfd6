//! How the command-line client reaches a secured listener: `--security-protocol` (PLAINTEXT,
//! SSL, SASL_PLAINTEXT, SASL_SSL), `--ssl-ca` (the CA that signed the broker's certificate),
//! `--ssl-certificate` and `--ssl-key` (a client certificate, for listeners with
//! `ssl.client.auth`), and `--sasl-mechanism` (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) with `--sasl-username` and
//! `--sasl-password`, named as librdkafka names them.
//!
//! TLS is rustls with the ring provider, verifying the broker's certificate and name; SASL uses
//! SaslHandshake v1 and SaslAuthenticate, with Basalt's own SCRAM client (`basalt_server::scram`).

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

use basalt_server::{Mechanism, SecurityProtocol};
use clap::Args;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use super::Error;

/// Security flags shared by every client command.
#[derive(Debug, Clone, Args)]
pub struct SecurityArgs {
    /// `security.protocol`: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.
    #[arg(
        long,
        global = true,
        env = "BASALT_SECURITY_PROTOCOL",
        default_value = "PLAINTEXT",
        value_name = "PROTOCOL"
    )]
    pub security_protocol: String,
    /// `sasl.mechanism`: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
    #[arg(
        long,
        global = true,
        env = "BASALT_SASL_MECHANISM",
        default_value = "SCRAM-SHA-512",
        value_name = "MECHANISM"
    )]
    pub sasl_mechanism: String,
    /// `sasl.username`.
    #[arg(long, global = true, env = "BASALT_SASL_USERNAME", value_name = "NAME")]
    pub sasl_username: Option<String>,
    /// `sasl.password`.
    #[arg(
        long,
        global = true,
        env = "BASALT_SASL_PASSWORD",
        hide_env_values = true,
        value_name = "PASSWORD"
    )]
    pub sasl_password: Option<String>,
    /// `ssl.ca.location`: PEM file with the CA of the broker's certificate.
    #[arg(long, global = true, env = "BASALT_SSL_CA", value_name = "FILE")]
    pub ssl_ca: Option<std::path::PathBuf>,
    /// `ssl.certificate.location`: PEM file with this client's certificate chain, leaf first,
    /// for a listener that asks for client certificates (mTLS).
    #[arg(
        long,
        global = true,
        env = "BASALT_SSL_CERTIFICATE",
        value_name = "FILE",
        requires = "ssl_key"
    )]
    pub ssl_certificate: Option<std::path::PathBuf>,
    /// `ssl.key.location`: PEM file with the private key of `--ssl-certificate`.
    #[arg(
        long,
        global = true,
        env = "BASALT_SSL_KEY",
        value_name = "FILE",
        requires = "ssl_certificate"
    )]
    pub ssl_key: Option<std::path::PathBuf>,
}

/// What a connection does after TCP connects (by default: nothing, plain TCP).
#[derive(Debug, Clone, Default)]
pub struct Security {
    tls: Option<Arc<rustls::ClientConfig>>,
    sasl: Option<(Mechanism, String, String)>,
}

impl SecurityArgs {
    /// The settings, checked.
    pub fn security(&self) -> Result<Arc<Security>, Error> {
        let protocol: SecurityProtocol = self.security_protocol.parse()?;
        let tls = if protocol.is_tls() {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut roots = rustls::RootCertStore::empty();
            let ca = self
                .ssl_ca
                .as_ref()
                .ok_or("--ssl-ca FILE is needed for SSL and SASL_SSL")?;
            for cert in CertificateDer::pem_file_iter(ca)
                .map_err(|e| format!("--ssl-ca {}: {e}", ca.display()))?
            {
                let cert = cert.map_err(|e| format!("--ssl-ca {}: {e}", ca.display()))?;
                roots.add(cert)?;
            }
            let builder = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()?
                .with_root_certificates(roots);
            let config = match (&self.ssl_certificate, &self.ssl_key) {
                (Some(cert), Some(key)) => {
                    let chain = CertificateDer::pem_file_iter(cert)
                        .map_err(|e| format!("--ssl-certificate {}: {e}", cert.display()))?
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| format!("--ssl-certificate {}: {e}", cert.display()))?;
                    if chain.is_empty() {
                        return Err(format!(
                            "--ssl-certificate {}: no certificate in the file",
                            cert.display()
                        )
                        .into());
                    }
                    let key = PrivateKeyDer::from_pem_file(key)
                        .map_err(|e| format!("--ssl-key {}: {e}", key.display()))?;
                    builder
                        .with_client_auth_cert(chain, key)
                        .map_err(|e| format!("--ssl-certificate and --ssl-key: {e}"))?
                }
                (None, None) => builder.with_no_client_auth(),
                _ => return Err("--ssl-certificate and --ssl-key go together".into()),
            };
            Some(Arc::new(config))
        } else {
            None
        };
        let sasl = if protocol.is_sasl() {
            let mechanism = Mechanism::from_name(&self.sasl_mechanism).ok_or_else(|| {
                format!(
                    "--sasl-mechanism {:?}: use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512",
                    self.sasl_mechanism
                )
            })?;
            let (Some(user), Some(password)) = (&self.sasl_username, &self.sasl_password) else {
                return Err("--sasl-username and --sasl-password are needed for SASL".into());
            };
            Some((mechanism, user.clone(), password.clone()))
        } else {
            None
        };
        Ok(Arc::new(Security { tls, sasl }))
    }
}

/// A connection's byte stream, in clear or TLS.
#[derive(Debug)]
pub enum Stream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

impl Security {
    /// Wraps `tcp` in TLS if the protocol asks for it (the handshake happens on first I/O).
    pub fn wrap(&self, addr: &str, tcp: TcpStream) -> Result<Stream, Error> {
        let Some(config) = &self.tls else {
            return Ok(Stream::Plain(tcp));
        };
        let host = addr
            .rsplit_once(':')
            .map_or(addr, |(h, _)| h)
            .trim_matches(['[', ']']);
        let name = ServerName::try_from(host.to_owned())
            .map_err(|e| format!("{host} is not a valid TLS server name: {e}"))?;
        let conn = rustls::ClientConnection::new(Arc::clone(config), name)?;
        Ok(Stream::Tls(Box::new(rustls::StreamOwned::new(conn, tcp))))
    }

    /// The SASL login, if any: mechanism, user and password.
    pub fn sasl(&self) -> Option<&(Mechanism, String, String)> {
        self.sasl.as_ref()
    }
}
