//! [`TestCa`]: a certificate authority made in the test (rcgen), issuing server and client
//! certificates as PEM files in a temporary directory, valid or already expired.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, date_time_ymd,
};

/// A certificate and its key, as PEM files.
#[derive(Debug, Clone)]
pub struct CertFiles {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// The private key (PKCS#8 PEM).
    pub key: PathBuf,
}

/// A CA whose certificate is `ca.pem` in its own temporary directory.
pub struct TestCa {
    dir: tempfile::TempDir,
    issuer: Issuer<'static, KeyPair>,
    ca_path: PathBuf,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa")
            .field("ca", &self.ca_path)
            .finish_non_exhaustive()
    }
}

impl TestCa {
    /// A new CA named `name`.
    pub fn new(name: &str) -> TestCa {
        let dir = tempfile::tempdir().expect("cannot create a directory for certificates");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        params.distinguished_name = dn;
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA certificate");
        let ca_path = dir.path().join(format!("{name}-ca.pem"));
        std::fs::write(&ca_path, cert.pem()).expect("write CA certificate");
        TestCa {
            dir,
            issuer: Issuer::new(params, key),
            ca_path,
        }
    }

    /// The CA certificate's PEM file (`ssl.ca.location`).
    pub fn ca_pem(&self) -> &Path {
        &self.ca_path
    }

    /// A server certificate for `localhost` and 127.0.0.1.
    pub fn server(&self, file_name: &str, expired: bool) -> CertFiles {
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("server params");
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "localhost");
        params.distinguished_name = dn;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(params, file_name, expired)
    }

    /// A node's certificate, for `localhost` and 127.0.0.1, good as a server's and a client's
    /// (a node both accepts and opens connections to the others).
    pub fn node(&self, file_name: &str) -> CertFiles {
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("node params");
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "basalt-node");
        params.distinguished_name = dn;
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        self.issue(params, file_name, false)
    }

    /// A client certificate with subject `CN=<cn>,O=<org>`.
    pub fn client(&self, file_name: &str, cn: &str, org: &str, expired: bool) -> CertFiles {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client params");
        // Issued as O then CN, so the RFC 2253 form (last first) is `CN=<cn>,O=<org>`.
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, org);
        dn.push(DnType::CommonName, cn);
        params.distinguished_name = dn;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params, file_name, expired)
    }

    fn issue(&self, mut params: CertificateParams, file_name: &str, expired: bool) -> CertFiles {
        if expired {
            params.not_before = date_time_ymd(2020, 1, 1);
            params.not_after = date_time_ymd(2021, 1, 1);
        } else {
            params.not_before = date_time_ymd(2024, 1, 1);
            params.not_after = date_time_ymd(2200, 1, 1);
        }
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("certificate");
        let files = CertFiles {
            cert: self.dir.path().join(format!("{file_name}.pem")),
            key: self.dir.path().join(format!("{file_name}-key.pem")),
        };
        std::fs::write(&files.cert, cert.pem()).expect("write certificate");
        std::fs::write(&files.key, key.serialize_pem()).expect("write key");
        files
    }
}
