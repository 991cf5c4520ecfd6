//! SASL mechanisms as pure functions and state machines, with no I/O and no clock: PLAIN
//! (RFC 4616) and SCRAM-SHA-256 / SCRAM-SHA-512 (RFC 5802, RFC 7677), server side.
//!
//! Credentials are SCRAM's: a salt, an iteration count, StoredKey and ServerKey
//! ([`ScramCredential`]); a password is never kept. PLAIN derives the salted password from the
//! password it receives and checks it against the StoredKey of the user's SCRAM credential.
//!
//! # Invariants
//! - `SASL-1`: secrets are compared in constant time (`subtle`), and a failure never says which
//!   part was wrong: an unknown user gets a made-up salt in the server-first message and fails at
//!   the end like a wrong password.
//! - `SASL-2`: parsing never panics on client input; every malformed message is an
//!   [`AuthError::Malformed`].
//! - `SASL-3`: a credential is only made with at least [`MIN_ITERATIONS`] iterations.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

/// Fewest PBKDF2 iterations a SCRAM credential may have (Kafka's minimum, RFC 7677's advice).
pub const MIN_ITERATIONS: u32 = 4096;
/// Most PBKDF2 iterations a SCRAM credential may have (Kafka's maximum).
pub const MAX_ITERATIONS: u32 = 16384;
/// Longest SASL message a client may send in one SaslAuthenticate.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;

/// A SASL mechanism Basalt serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mechanism {
    /// `PLAIN`: user name and password in clear (use it over TLS only).
    Plain,
    /// `SCRAM-SHA-256`.
    ScramSha256,
    /// `SCRAM-SHA-512`.
    ScramSha512,
}

impl Mechanism {
    /// Every mechanism, in the order they are offered.
    pub const ALL: [Mechanism; 3] = [
        Mechanism::ScramSha512,
        Mechanism::ScramSha256,
        Mechanism::Plain,
    ];

    /// The mechanism's IANA name, as clients send it in SaslHandshake.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }

    /// The mechanism named `name` (case-sensitive, as Kafka matches them).
    pub fn from_name(name: &str) -> Option<Mechanism> {
        Mechanism::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The `ScramMechanism` code of the admin APIs (1 = SCRAM-SHA-256, 2 = SCRAM-SHA-512).
    pub fn scram_code(self) -> Option<i8> {
        match self {
            Mechanism::Plain => None,
            Mechanism::ScramSha256 => Some(1),
            Mechanism::ScramSha512 => Some(2),
        }
    }

    /// The SCRAM mechanism with admin API code `code`.
    pub fn from_scram_code(code: i8) -> Option<Mechanism> {
        match code {
            1 => Some(Mechanism::ScramSha256),
            2 => Some(Mechanism::ScramSha512),
            _ => None,
        }
    }

    /// Whether this is one of the SCRAM mechanisms.
    pub fn is_scram(self) -> bool {
        self != Mechanism::Plain
    }

    /// Length of the hash output in bytes.
    fn hash_len(self) -> usize {
        match self {
            Mechanism::ScramSha256 => 32,
            Mechanism::Plain | Mechanism::ScramSha512 => 64,
        }
    }
}

/// Why an exchange failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// The user is unknown or the proof (password) is wrong; which, is not said.
    BadCredentials {
        /// The user name the client gave.
        user: String,
    },
    /// The client's message does not follow the mechanism.
    Malformed(&'static str),
    /// A message came when the exchange was not expecting one.
    UnexpectedMessage,
}

impl std::fmt::Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthError::BadCredentials { .. } => f.write_str("invalid credentials"),
            AuthError::Malformed(why) => write!(f, "malformed SASL message: {why}"),
            AuthError::UnexpectedMessage => f.write_str("unexpected SASL message"),
        }
    }
}

/// A user's SCRAM credential for one mechanism (RFC 5802 section 3).
#[derive(Clone, PartialEq, Eq)]
pub struct ScramCredential {
    /// The salt.
    pub salt: Vec<u8>,
    /// PBKDF2 iterations.
    pub iterations: u32,
    /// `H(HMAC(SaltedPassword, "Client Key"))`.
    pub stored_key: Vec<u8>,
    /// `HMAC(SaltedPassword, "Server Key")`.
    pub server_key: Vec<u8>,
}

impl std::fmt::Debug for ScramCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys stay out of logs.
        f.debug_struct("ScramCredential")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl ScramCredential {
    /// Derives the credential of `password` with `salt` and `iterations` (`SASL-3`: the caller
    /// checks the range; this clamps to at least [`MIN_ITERATIONS`]).
    pub fn derive(mechanism: Mechanism, password: &[u8], salt: &[u8], iterations: u32) -> Self {
        let iterations = iterations.max(MIN_ITERATIONS);
        let salted = salted_password(mechanism, password, salt, iterations);
        ScramCredential::from_salted_password(mechanism, &salted, salt, iterations)
    }

    /// The credential whose salted password is `salted` (as AlterUserScramCredentials sends it).
    pub fn from_salted_password(
        mechanism: Mechanism,
        salted: &[u8],
        salt: &[u8],
        iterations: u32,
    ) -> Self {
        let client_key = hmac(mechanism, salted, b"Client Key");
        ScramCredential {
            salt: salt.to_vec(),
            iterations,
            stored_key: hash(mechanism, &client_key),
            server_key: hmac(mechanism, salted, b"Server Key"),
        }
    }

    /// Whether `password` is the one this credential was made from (constant time).
    pub fn verify_password(&self, mechanism: Mechanism, password: &[u8]) -> bool {
        let salted = salted_password(mechanism, password, &self.salt, self.iterations);
        let client_key = hmac(mechanism, &salted, b"Client Key");
        let stored_key = hash(mechanism, &client_key);
        bool::from(stored_key.ct_eq(&self.stored_key))
    }
}

/// `Hi(password, salt, i)`: PBKDF2 with the mechanism's HMAC.
pub fn salted_password(mechanism: Mechanism, password: &[u8], salt: &[u8], iter: u32) -> Vec<u8> {
    let mut out = vec![0u8; mechanism.hash_len()];
    match mechanism {
        Mechanism::ScramSha256 => pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iter, &mut out),
        Mechanism::Plain | Mechanism::ScramSha512 => {
            pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iter, &mut out);
        }
    }
    out
}

fn hmac(mechanism: Mechanism, key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length, so `new_from_slice` cannot fail; an empty tag would only
    // make the comparison fail.
    match mechanism {
        Mechanism::ScramSha256 => Hmac::<Sha256>::new_from_slice(key)
            .map(|mut m| {
                m.update(data);
                m.finalize().into_bytes().to_vec()
            })
            .unwrap_or_default(),
        Mechanism::Plain | Mechanism::ScramSha512 => Hmac::<Sha512>::new_from_slice(key)
            .map(|mut m| {
                m.update(data);
                m.finalize().into_bytes().to_vec()
            })
            .unwrap_or_default(),
    }
}

fn hash(mechanism: Mechanism, data: &[u8]) -> Vec<u8> {
    match mechanism {
        Mechanism::ScramSha256 => Sha256::digest(data).to_vec(),
        Mechanism::Plain | Mechanism::ScramSha512 => Sha512::digest(data).to_vec(),
    }
}

/// A PLAIN message's parts (RFC 4616): `[authzid] NUL authcid NUL passwd`.
#[derive(Debug, PartialEq, Eq)]
pub struct PlainMessage<'a> {
    /// The identity to act as (must be empty or equal to `user`).
    pub authzid: &'a str,
    /// The user name.
    pub user: &'a str,
    /// The password.
    pub password: &'a [u8],
}

/// Parses a PLAIN message.
pub fn parse_plain(msg: &[u8]) -> Result<PlainMessage<'_>, AuthError> {
    let mut parts = msg.splitn(3, |b| *b == 0);
    let (Some(authzid), Some(user), Some(password)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed(
            "PLAIN needs authzid NUL user NUL password",
        ));
    };
    let authzid = std::str::from_utf8(authzid).map_err(|_| AuthError::Malformed("authzid"))?;
    let user = std::str::from_utf8(user).map_err(|_| AuthError::Malformed("user name"))?;
    if user.is_empty() || password.is_empty() {
        return Err(AuthError::Malformed("empty user name or password"));
    }
    if !authzid.is_empty() && authzid != user {
        return Err(AuthError::Malformed("authzid differs from the user name"));
    }
    Ok(PlainMessage {
        authzid,
        user,
        password,
    })
}

/// Checks a PLAIN message against `credential`, the user's SCRAM credential for `mechanism`
/// (`None` for an unknown user); returns the user name.
pub fn authenticate_plain(
    msg: &[u8],
    credential: Option<(Mechanism, &ScramCredential)>,
) -> Result<String, AuthError> {
    let plain = parse_plain(msg)?;
    let ok = match credential {
        Some((mechanism, c)) => c.verify_password(mechanism, plain.password),
        None => {
            // Same work for an unknown user, so timing does not tell users apart.
            let fake = ScramCredential {
                salt: vec![0; 16],
                iterations: MIN_ITERATIONS,
                stored_key: vec![0; 64],
                server_key: vec![0; 64],
            };
            let _ = fake.verify_password(Mechanism::ScramSha512, plain.password);
            false
        }
    };
    if ok {
        Ok(plain.user.to_owned())
    } else {
        Err(AuthError::BadCredentials {
            user: plain.user.to_owned(),
        })
    }
}

/// Decodes a SCRAM `saslname` (`=2C` is `,`, `=3D` is `=`; any other `=` is an error).
fn decode_saslname(s: &str) -> Result<String, AuthError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        let code = rest.get(i + 1..i + 3);
        match code {
            Some("2C") => out.push(','),
            Some("3D") => out.push('='),
            _ => return Err(AuthError::Malformed("bad escape in user name")),
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Where a SCRAM exchange is.
#[derive(Debug)]
enum ScramState {
    /// Waiting for client-first.
    Start,
    /// Server-first sent; waiting for client-final.
    SentFirst {
        user: String,
        /// `None` for an unknown user: the exchange goes on and fails at the end (`SASL-1`).
        credential: Option<ScramCredential>,
        nonce: String,
        /// client-first-bare "," server-first
        auth_prefix: String,
    },
    /// Finished (either way); any further message is unexpected.
    Done,
}

/// The server side of one SCRAM exchange.
#[derive(Debug)]
pub struct ScramServer {
    mechanism: Mechanism,
    server_nonce: String,
    state: ScramState,
}

/// What a SCRAM step produced.
#[derive(Debug, PartialEq, Eq)]
pub enum ScramStep {
    /// Send this (server-first) and wait for the next message.
    Continue(Vec<u8>),
    /// Authenticated as `user`; send `server_final`.
    Done {
        /// The authenticated user name.
        user: String,
        /// The server-final message.
        server_final: Vec<u8>,
    },
}

impl ScramServer {
    /// A new exchange for `mechanism` (a SCRAM one) with the server's part of the nonce
    /// (printable ASCII without `,`; the caller makes it random).
    pub fn new(mechanism: Mechanism, server_nonce: String) -> Self {
        ScramServer {
            mechanism,
            server_nonce,
            state: ScramState::Start,
        }
    }

    /// The mechanism of the exchange.
    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// The user name of the exchange, once client-first has named it.
    pub fn user(&self) -> Option<&str> {
        match &self.state {
            ScramState::SentFirst { user, .. } => Some(user),
            _ => None,
        }
    }

    /// Feeds the next client message. `lookup` is asked for the user's credential when
    /// client-first names the user; `fake_salt` is used for unknown users.
    pub fn step(
        &mut self,
        msg: &[u8],
        lookup: impl FnOnce(&str) -> Option<ScramCredential>,
        fake_salt: &[u8],
    ) -> Result<ScramStep, AuthError> {
        if msg.len() > MAX_MESSAGE_BYTES {
            self.state = ScramState::Done;
            return Err(AuthError::Malformed("message too long"));
        }
        let msg = std::str::from_utf8(msg).map_err(|_| AuthError::Malformed("not UTF-8"));
        let state = std::mem::replace(&mut self.state, ScramState::Done);
        match state {
            ScramState::Start => self.client_first(msg?, lookup, fake_salt),
            ScramState::SentFirst {
                user,
                credential,
                nonce,
                auth_prefix,
            } => self.client_final(msg?, user, credential, &nonce, &auth_prefix),
            ScramState::Done => Err(AuthError::UnexpectedMessage),
        }
    }

    fn client_first(
        &mut self,
        msg: &str,
        lookup: impl FnOnce(&str) -> Option<ScramCredential>,
        fake_salt: &[u8],
    ) -> Result<ScramStep, AuthError> {
        // gs2-header: "n,," or "y,," (no channel binding; "p=" is refused), optional authzid.
        let (cbind, rest) = msg
            .split_once(',')
            .ok_or(AuthError::Malformed("no gs2 header"))?;
        if cbind != "n" && cbind != "y" {
            return Err(AuthError::Malformed("channel binding is not supported"));
        }
        let (authzid, bare) = rest
            .split_once(',')
            .ok_or(AuthError::Malformed("no gs2 header"))?;
        if !authzid.is_empty() && !authzid.starts_with("a=") {
            return Err(AuthError::Malformed("bad authzid"));
        }
        let mut fields = bare.split(',');
        let user = fields
            .next()
            .and_then(|f| f.strip_prefix("n="))
            .ok_or(AuthError::Malformed("no user name"))?;
        let user = decode_saslname(user)?;
        let client_nonce = fields
            .next()
            .and_then(|f| f.strip_prefix("r="))
            .ok_or(AuthError::Malformed("no nonce"))?;
        if user.is_empty() || client_nonce.is_empty() {
            return Err(AuthError::Malformed("empty user name or nonce"));
        }
        if let Some(a) = authzid.strip_prefix("a=")
            && decode_saslname(a)? != user
        {
            return Err(AuthError::Malformed("authzid differs from the user name"));
        }
        // Extensions (Kafka's `tokenauth=true` and others) are ignored: delegation tokens are
        // not supported, so a token login fails as a wrong password would.
        let credential = lookup(&user);
        let (salt, iterations) = match &credential {
            Some(c) => (c.salt.clone(), c.iterations),
            None => (fake_salt.to_vec(), MIN_ITERATIONS),
        };
        let nonce = format!("{client_nonce}{}", self.server_nonce);
        let server_first = format!("r={nonce},s={},i={iterations}", B64.encode(&salt));
        self.state = ScramState::SentFirst {
            user,
            credential,
            nonce,
            auth_prefix: format!("{bare},{server_first}"),
        };
        Ok(ScramStep::Continue(server_first.into_bytes()))
    }

    fn client_final(
        &mut self,
        msg: &str,
        user: String,
        credential: Option<ScramCredential>,
        nonce: &str,
        auth_prefix: &str,
    ) -> Result<ScramStep, AuthError> {
        let (without_proof, proof) = msg
            .rsplit_once(",p=")
            .ok_or(AuthError::Malformed("no proof"))?;
        let mut fields = without_proof.split(',');
        let cbind = fields
            .next()
            .and_then(|f| f.strip_prefix("c="))
            .ok_or(AuthError::Malformed("no channel binding"))?;
        let cbind = B64
            .decode(cbind)
            .map_err(|_| AuthError::Malformed("channel binding is not base64"))?;
        if !(cbind.starts_with(b"n,") || cbind.starts_with(b"y,")) {
            return Err(AuthError::Malformed("channel binding mismatch"));
        }
        let got_nonce = fields
            .next()
            .and_then(|f| f.strip_prefix("r="))
            .ok_or(AuthError::Malformed("no nonce"))?;
        if !bool::from(got_nonce.as_bytes().ct_eq(nonce.as_bytes())) {
            return Err(AuthError::Malformed("nonce mismatch"));
        }
        let proof = B64
            .decode(proof)
            .map_err(|_| AuthError::Malformed("proof is not base64"))?;
        let Some(credential) = credential else {
            return Err(AuthError::BadCredentials { user });
        };
        let auth_message = format!("{auth_prefix},{without_proof}");
        let mechanism = self.mechanism;
        let client_signature = hmac(mechanism, &credential.stored_key, auth_message.as_bytes());
        if proof.len() != client_signature.len() {
            return Err(AuthError::BadCredentials { user });
        }
        let client_key: Vec<u8> = proof
            .iter()
            .zip(&client_signature)
            .map(|(p, s)| p ^ s)
            .collect();
        let stored_key = hash(mechanism, &client_key);
        if !bool::from(stored_key.ct_eq(&credential.stored_key)) {
            return Err(AuthError::BadCredentials { user });
        }
        let server_signature = hmac(mechanism, &credential.server_key, auth_message.as_bytes());
        Ok(ScramStep::Done {
            user,
            server_final: format!("v={}", B64.encode(server_signature)).into_bytes(),
        })
    }
}

/// The client side of SCRAM, for Basalt's own command-line client and for tests.
#[derive(Debug)]
pub struct ScramClient {
    mechanism: Mechanism,
    password: Vec<u8>,
    client_first_bare: String,
    client_nonce: String,
    expected_server_signature: Option<Vec<u8>>,
}

impl ScramClient {
    /// Starts an exchange as `user` with `password` and the client nonce `nonce`; returns the
    /// client and its client-first message.
    pub fn new(mechanism: Mechanism, user: &str, password: &str, nonce: &str) -> (Self, Vec<u8>) {
        let user = user.replace('=', "=3D").replace(',', "=2C");
        let bare = format!("n={user},r={nonce}");
        let first = format!("n,,{bare}").into_bytes();
        (
            ScramClient {
                mechanism,
                password: password.as_bytes().to_vec(),
                client_first_bare: bare,
                client_nonce: nonce.to_owned(),
                expected_server_signature: None,
            },
            first,
        )
    }

    /// Answers server-first with client-final.
    pub fn client_final(&mut self, server_first: &[u8]) -> Result<Vec<u8>, AuthError> {
        let server_first =
            std::str::from_utf8(server_first).map_err(|_| AuthError::Malformed("not UTF-8"))?;
        let mut nonce = None;
        let mut salt = None;
        let mut iterations = None;
        for field in server_first.split(',') {
            if let Some(v) = field.strip_prefix("r=") {
                nonce = Some(v);
            } else if let Some(v) = field.strip_prefix("s=") {
                salt = B64.decode(v).ok();
            } else if let Some(v) = field.strip_prefix("i=") {
                iterations = v.parse::<u32>().ok();
            }
        }
        let (Some(nonce), Some(salt), Some(iterations)) = (nonce, salt, iterations) else {
            return Err(AuthError::Malformed("incomplete server-first message"));
        };
        if !nonce.starts_with(&self.client_nonce) || iterations > 1_000_000 {
            return Err(AuthError::Malformed("bad server-first message"));
        }
        let m = self.mechanism;
        let salted = salted_password(m, &self.password, &salt, iterations);
        let client_key = hmac(m, &salted, b"Client Key");
        let stored_key = hash(m, &client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let client_signature = hmac(m, &stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&client_signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = hmac(m, &salted, b"Server Key");
        self.expected_server_signature = Some(hmac(m, &server_key, auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", B64.encode(proof)).into_bytes())
    }

    /// Checks server-final: the server proves it knows the credential too.
    pub fn verify_server_final(&self, server_final: &[u8]) -> Result<(), AuthError> {
        let v = std::str::from_utf8(server_final)
            .ok()
            .and_then(|s| s.strip_prefix("v="))
            .and_then(|v| B64.decode(v).ok())
            .ok_or(AuthError::Malformed("bad server-final message"))?;
        match &self.expected_server_signature {
            Some(expected) if bool::from(expected.ct_eq(&v)) => Ok(()),
            _ => Err(AuthError::BadCredentials {
                user: String::new(),
            }),
        }
    }
}

/// A client's side of a SASL login, for Basalt's own connections to brokers (the command-line
/// client, and one node's requests to another): the first message, then each answer to a
/// server message until `None` (done).
pub enum SaslClient {
    /// PLAIN sends one message.
    Plain,
    /// SCRAM, and how many server messages it has answered.
    Scram(ScramClient, u8),
}

impl SaslClient {
    /// Starts a login; returns the client and the first message.
    pub fn start(mechanism: Mechanism, user: &str, password: &str) -> (SaslClient, Vec<u8>) {
        match mechanism {
            Mechanism::Plain => {
                let mut msg = Vec::new();
                msg.push(0);
                msg.extend_from_slice(user.as_bytes());
                msg.push(0);
                msg.extend_from_slice(password.as_bytes());
                (SaslClient::Plain, msg)
            }
            m => {
                let nonce: String = (0..24)
                    .map(|_| char::from(b'a' + rand::random_range(0..26u8)))
                    .collect();
                let (client, first) = ScramClient::new(m, user, password, &nonce);
                (SaslClient::Scram(client, 0), first)
            }
        }
    }

    /// The answer to the server's message, or `None` when the login is complete.
    pub fn next(&mut self, server: &[u8]) -> Result<Option<Vec<u8>>, String> {
        match self {
            SaslClient::Plain => Ok(None),
            SaslClient::Scram(client, step) => {
                *step += 1;
                if *step == 1 {
                    Ok(Some(
                        client.client_final(server).map_err(|e| e.to_string())?,
                    ))
                } else {
                    client
                        .verify_server_final(server)
                        .map_err(|_| "the broker's SCRAM signature is wrong".to_owned())?;
                    Ok(None)
                }
            }
        }
    }
}

impl std::fmt::Debug for SaslClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SaslClient")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// RFC 7677 section 3: SCRAM-SHA-256 with user "user", password "pencil".
    const RFC7677_CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
    const RFC7677_SERVER_FIRST: &str =
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    const RFC7677_CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    const RFC7677_SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

    fn rfc7677_credential() -> ScramCredential {
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        ScramCredential::derive(Mechanism::ScramSha256, b"pencil", &salt, 4096)
    }

    #[test]
    fn rfc7677_server_exchange() {
        let mut server = ScramServer::new(
            Mechanism::ScramSha256,
            "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0".into(),
        );
        let first = server
            .step(
                RFC7677_CLIENT_FIRST.as_bytes(),
                |u| (u == "user").then(rfc7677_credential),
                b"",
            )
            .unwrap();
        assert_eq!(
            first,
            ScramStep::Continue(RFC7677_SERVER_FIRST.as_bytes().to_vec())
        );
        let done = server
            .step(RFC7677_CLIENT_FINAL.as_bytes(), |_| None, b"")
            .unwrap();
        assert_eq!(
            done,
            ScramStep::Done {
                user: "user".into(),
                server_final: RFC7677_SERVER_FINAL.as_bytes().to_vec()
            }
        );
        // Nothing more is expected.
        assert_eq!(
            server.step(b"x", |_| None, b""),
            Err(AuthError::UnexpectedMessage)
        );
    }

    #[test]
    fn rfc7677_client_exchange() {
        let (mut client, first) = ScramClient::new(
            Mechanism::ScramSha256,
            "user",
            "pencil",
            "rOprNGfwEbeRWgbNEkqO",
        );
        assert_eq!(first, RFC7677_CLIENT_FIRST.as_bytes());
        let fin = client
            .client_final(RFC7677_SERVER_FIRST.as_bytes())
            .unwrap();
        assert_eq!(fin, RFC7677_CLIENT_FINAL.as_bytes());
        client
            .verify_server_final(RFC7677_SERVER_FINAL.as_bytes())
            .unwrap();
    }

    /// RFC 7677's keys, computed independently: SaltedPassword, StoredKey and ServerKey of
    /// "pencil" with the RFC's salt.
    #[test]
    fn rfc7677_keys() {
        let c = rfc7677_credential();
        let salted = salted_password(
            Mechanism::ScramSha256,
            b"pencil",
            &B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap(),
            4096,
        );
        assert_eq!(
            c,
            ScramCredential::from_salted_password(Mechanism::ScramSha256, &salted, &c.salt, 4096)
        );
        assert_eq!(c.stored_key.len(), 32);
        assert!(c.verify_password(Mechanism::ScramSha256, b"pencil"));
        assert!(!c.verify_password(Mechanism::ScramSha256, b"pencil!"));
    }

    fn exchange(
        mechanism: Mechanism,
        stored: Option<ScramCredential>,
        password: &str,
    ) -> Result<String, AuthError> {
        let (mut client, first) = ScramClient::new(mechanism, "al,i=ce", password, "cnonce123");
        let mut server = ScramServer::new(mechanism, "snonce456".into());
        let ScramStep::Continue(server_first) = server
            .step(
                &first,
                |u| {
                    assert_eq!(u, "al,i=ce");
                    stored
                },
                b"fake-salt-16byte",
            )
            .unwrap()
        else {
            panic!("expected server-first")
        };
        let fin = client.client_final(&server_first).unwrap();
        match server.step(&fin, |_| None, b"")? {
            ScramStep::Done { user, server_final } => {
                client.verify_server_final(&server_final).unwrap();
                Ok(user)
            }
            ScramStep::Continue(_) => panic!("expected the end"),
        }
    }

    #[test]
    fn sha512_round_trip_and_failures_look_alike() {
        let m = Mechanism::ScramSha512;
        let cred = ScramCredential::derive(m, b"secret", b"0123456789abcdef", 4096);
        assert_eq!(cred.stored_key.len(), 64);
        assert_eq!(
            exchange(m, Some(cred.clone()), "secret"),
            Ok("al,i=ce".into())
        );
        let wrong = exchange(m, Some(cred), "Secret");
        let unknown = exchange(m, None, "secret");
        assert_eq!(wrong, unknown);
        assert!(matches!(wrong, Err(AuthError::BadCredentials { .. })));
    }

    #[test]
    fn plain_checks_against_the_scram_credential() {
        let m = Mechanism::ScramSha512;
        let cred = ScramCredential::derive(m, b"pw", b"salt", 4096);
        assert_eq!(
            authenticate_plain(b"\0bob\0pw", Some((m, &cred))),
            Ok("bob".into())
        );
        assert_eq!(
            authenticate_plain(b"bob\0bob\0pw", Some((m, &cred))),
            Ok("bob".into())
        );
        assert!(matches!(
            authenticate_plain(b"\0bob\0px", Some((m, &cred))),
            Err(AuthError::BadCredentials { .. })
        ));
        assert!(matches!(
            authenticate_plain(b"\0bob\0pw", None),
            Err(AuthError::BadCredentials { .. })
        ));
        assert!(matches!(
            authenticate_plain(b"eve\0bob\0pw", Some((m, &cred))),
            Err(AuthError::Malformed(_))
        ));
        assert!(authenticate_plain(b"no separators", None).is_err());
    }

    #[test]
    fn malformed_messages_are_errors_not_panics() {
        for msg in [
            &b""[..],
            b"n",
            b"n,",
            b"p=tls-unique,,n=u,r=x",
            b"n,,n=,r=x",
            b"n,,n=u",
            b"n,,n=u=,r=x",
            b"n,,n=u=4F,r=x",
            b"\xff\xfe",
            b"n,a=other,n=u,r=x",
        ] {
            let mut s = ScramServer::new(Mechanism::ScramSha256, "s".into());
            assert!(s.step(msg, |_| None, b"salt").is_err(), "{msg:?}");
        }
        let mut s = ScramServer::new(Mechanism::ScramSha256, "s".into());
        s.step(b"n,,n=u,r=c", |_| None, b"salt").unwrap();
        assert!(s.step(b"c=biws,r=cs,p=!!", |_| None, b"").is_err());
        let mut s = ScramServer::new(Mechanism::ScramSha256, "s".into());
        s.step(b"n,,n=u,r=c", |_| None, b"salt").unwrap();
        assert!(matches!(
            s.step(b"c=biws,r=WRONG,p=AAAA", |_| None, b""),
            Err(AuthError::Malformed(_))
        ));
    }
}
