//! Authentication of one connection: the SASL exchange (SaslHandshake, SaslAuthenticate, and the
//! raw tokens that follow a v0 handshake), re-authentication (KIP-368) and the gate that lets an
//! unauthenticated connection send only ApiVersions, SaslHandshake and SaslAuthenticate.
//!
//! # Invariants
//! - `AUTH-1`: on a SASL listener no request other than ApiVersions, SaslHandshake and
//!   SaslAuthenticate is handled before the connection authenticated, nor after its session
//!   expired (`connections.max.reauth.ms`); such a request closes the connection.
//! - `AUTH-2`: a failed login answers SASL_AUTHENTICATION_FAILED with the same message whatever
//!   was wrong, after `connection.failed.authentication.delay.ms`, logs the peer and user, and
//!   closes the connection. An address with more than `max_failures_per_minute` failures in a
//!   minute is refused without its credentials being checked.
//! - `AUTH-3`: re-authentication must name the same principal; a different one fails and closes.
//! - `AUTH-4`: no lock is held across an `.await` (PLAIN's PBKDF2 runs on a blocking thread).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use basalt_protocol::messages::sasl_authenticate_response::SaslAuthenticateResponse;
use basalt_protocol::messages::sasl_handshake_response::SaslHandshakeResponse;
use basalt_protocol::{ApiKey, ErrorCode};
use bytes::Bytes;
use parking_lot::Mutex;
use rand::Rng;

use crate::scram::{self, AuthError, Mechanism, ScramCredential, ScramServer, ScramStep};

/// Where SCRAM credentials come from (the broker's credential store).
pub trait CredentialSource: Send + Sync + 'static {
    /// The credential of `user` for the SCRAM mechanism `mechanism`, if there is one.
    fn scram_credential(&self, user: &str, mechanism: Mechanism) -> Option<ScramCredential>;
}

/// The SASL settings of a listener.
pub struct SaslConfig {
    /// `sasl.enabled.mechanisms`.
    pub mechanisms: Vec<Mechanism>,
    /// The credential store.
    pub credentials: Arc<dyn CredentialSource>,
    /// `connections.max.reauth.ms`: session lifetime; 0 means sessions never expire.
    pub max_reauth_ms: i64,
    /// `connection.failed.authentication.delay.ms`: how long a failed login waits for its answer.
    pub failed_authentication_delay: Duration,
    /// `sasl.server.max.receive.size`: largest frame before authentication.
    pub max_receive_bytes: usize,
    /// Failed logins from one address per minute before further attempts are refused unchecked.
    pub max_failures_per_minute: u32,
    /// Failed logins per address in the current minute.
    failures: FailedLogins,
}

/// Failed logins per address, counted in windows of a minute that start at an address's first
/// failure (`AUTH-2`). Driven by the instants it is given, so it is tested without a clock.
#[derive(Debug, Default)]
pub(crate) struct FailedLogins {
    counts: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

/// The window of [`FailedLogins`].
const FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// Addresses remembered before windows that ended are dropped.
const FAILURE_ADDRESSES: usize = 10_000;

impl FailedLogins {
    /// Whether `ip` has had `max` failures or more in its current window at `now`.
    pub(crate) fn is_throttled(&self, ip: IpAddr, max: u32, now: Instant) -> bool {
        let counts = self.counts.lock();
        counts.get(&ip).is_some_and(|(since, n)| {
            now.saturating_duration_since(*since) < FAILURE_WINDOW && *n >= max
        })
    }

    /// Counts a failure of `ip` at `now`; returns the failures in its window.
    pub(crate) fn record(&self, ip: IpAddr, now: Instant) -> u32 {
        let mut counts = self.counts.lock();
        // Bounded: windows that ended go when the map grows.
        if counts.len() >= FAILURE_ADDRESSES {
            counts.retain(|_, (since, _)| now.saturating_duration_since(*since) < FAILURE_WINDOW);
        }
        let entry = counts.entry(ip).or_insert((now, 0));
        if now.saturating_duration_since(entry.0) >= FAILURE_WINDOW {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        entry.1
    }
}

impl std::fmt::Debug for SaslConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslConfig")
            .field("mechanisms", &self.mechanisms)
            .field("max_reauth_ms", &self.max_reauth_ms)
            .finish_non_exhaustive()
    }
}

impl SaslConfig {
    /// Settings with Kafka's defaults for everything but the mechanisms and the store.
    pub fn new(mechanisms: Vec<Mechanism>, credentials: Arc<dyn CredentialSource>) -> Self {
        SaslConfig {
            mechanisms,
            credentials,
            max_reauth_ms: 0,
            failed_authentication_delay: Duration::from_millis(100),
            max_receive_bytes: 524_288,
            max_failures_per_minute: 20,
            failures: FailedLogins::default(),
        }
    }

    fn is_throttled(&self, ip: IpAddr) -> bool {
        self.failures
            .is_throttled(ip, self.max_failures_per_minute, Instant::now())
    }

    fn record_failure(&self, ip: IpAddr) -> u32 {
        self.failures.record(ip, Instant::now())
    }
}

/// Where a connection's SASL exchange is.
#[derive(Debug, Default)]
enum Phase {
    /// No handshake yet (or the last exchange finished).
    #[default]
    Idle,
    /// Handshake done; the first SaslAuthenticate (or raw token) is next.
    Handshaken(Mechanism),
    /// A SCRAM exchange after its first message.
    Scram(Box<ScramServer>),
}

/// A connection's authentication state.
#[derive(Debug, Default)]
pub(crate) struct AuthState {
    phase: Phase,
    /// The authenticated principal, once logged in.
    principal: Option<String>,
    /// When the session expires (`connections.max.reauth.ms`).
    expires: Option<Instant>,
    /// A login failed: close after the answer.
    pub(crate) failed: bool,
    /// A v0 handshake was accepted: the next frames are raw SASL tokens.
    pub(crate) raw_tokens: bool,
    /// The mechanism of the last handshake.
    mechanism: Option<Mechanism>,
    /// SaslAuthenticate came without a handshake before it.
    out_of_order: bool,
}

/// The result of one SASL step.
enum Step {
    Continue(Vec<u8>),
    Done(Vec<u8>),
    Failed,
}

/// The message of every failed login (`AUTH-2`).
fn failure_message(mechanism: Option<Mechanism>) -> String {
    format!(
        "Authentication failed during authentication due to invalid credentials with SASL mechanism {}",
        mechanism.map_or("(none)", Mechanism::name)
    )
}

fn random_nonce() -> String {
    let mut rng = rand::rng();
    (0..24)
        .map(|_| {
            let c = rng.random_range(0..62u8);
            char::from(match c {
                0..=9 => b'0' + c,
                10..=35 => b'a' + c - 10,
                _ => b'A' + c - 36,
            })
        })
        .collect()
}

/// A made-up salt for an unknown user, the same for the same name during this process's life so
/// that asking twice does not tell an unknown user from a known one (`SASL-1`).
fn fake_salt(user: &str) -> Vec<u8> {
    use std::hash::{BuildHasher, Hasher};
    static KEY: std::sync::OnceLock<std::collections::hash_map::RandomState> =
        std::sync::OnceLock::new();
    let state = KEY.get_or_init(std::collections::hash_map::RandomState::new);
    let mut out = Vec::with_capacity(16);
    for round in 0u8..2 {
        let mut h = state.build_hasher();
        h.write_u8(round);
        h.write(user.as_bytes());
        out.extend_from_slice(&h.finish().to_be_bytes());
    }
    out
}

impl crate::ConnectionInfo {
    fn sasl(&self) -> Option<&Arc<SaslConfig>> {
        self.listener.sasl.as_ref()
    }

    /// Whether this connection must log in before it may send other requests.
    pub(crate) fn needs_login(&self) -> bool {
        self.sasl().is_some() && self.auth.lock().principal.is_none()
    }

    /// `AUTH-1`: whether a request of `api_key` may be handled now; `Err` says why not.
    pub(crate) fn admit(&self, api_key: ApiKey) -> Result<(), String> {
        if self.sasl().is_none()
            || matches!(
                api_key,
                ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate
            )
        {
            return Ok(());
        }
        let auth = self.auth.lock();
        match (&auth.principal, auth.expires) {
            (None, _) => Err(format!(
                "{api_key:?} before authentication on SASL listener {}",
                self.listener.name
            )),
            (Some(_), Some(expires)) if Instant::now() >= expires => Err(format!(
                "{api_key:?} after the session expired (connections.max.reauth.ms)"
            )),
            _ => Ok(()),
        }
    }

    /// Answers SaslHandshake: selects `mechanism` if this listener serves it.
    pub fn sasl_handshake(&self, mechanism: &str, version: i16) -> SaslHandshakeResponse {
        let Some(sasl) = self.sasl() else {
            return SaslHandshakeResponse {
                error_code: ErrorCode::IllegalSaslState.into(),
                mechanisms: Vec::new(),
            };
        };
        let enabled: Vec<String> = sasl
            .mechanisms
            .iter()
            .map(|m| m.name().to_owned())
            .collect();
        let mut auth = self.auth.lock();
        if !matches!(auth.phase, Phase::Idle) {
            auth.failed = true;
            return SaslHandshakeResponse {
                error_code: ErrorCode::IllegalSaslState.into(),
                mechanisms: enabled,
            };
        }
        match Mechanism::from_name(mechanism).filter(|m| sasl.mechanisms.contains(m)) {
            Some(m) => {
                auth.phase = Phase::Handshaken(m);
                auth.mechanism = Some(m);
                auth.raw_tokens = version == 0;
                SaslHandshakeResponse {
                    error_code: 0,
                    mechanisms: enabled,
                }
            }
            None => {
                tracing::info!(conn = self.id, peer = %self.peer, mechanism, "unsupported SASL mechanism requested");
                auth.failed = true;
                SaslHandshakeResponse {
                    error_code: ErrorCode::UnsupportedSaslMechanism.into(),
                    mechanisms: enabled,
                }
            }
        }
    }

    /// Answers SaslAuthenticate with the next step of the exchange.
    pub async fn sasl_authenticate(&self, auth_bytes: Bytes) -> SaslAuthenticateResponse {
        match self.sasl_step(&auth_bytes).await {
            (Step::Continue(bytes), _) => SaslAuthenticateResponse {
                auth_bytes: Bytes::from(bytes),
                ..SaslAuthenticateResponse::default()
            },
            (Step::Done(bytes), lifetime_ms) => SaslAuthenticateResponse {
                auth_bytes: Bytes::from(bytes),
                session_lifetime_ms: lifetime_ms,
                ..SaslAuthenticateResponse::default()
            },
            (Step::Failed, _) => {
                let (mechanism, state_error) = {
                    let auth = self.auth.lock();
                    (auth.mechanism, auth.out_of_order)
                };
                SaslAuthenticateResponse {
                    error_code: if state_error {
                        ErrorCode::IllegalSaslState.into()
                    } else {
                        ErrorCode::SaslAuthenticationFailed.into()
                    },
                    error_message: Some(failure_message(mechanism)),
                    ..SaslAuthenticateResponse::default()
                }
            }
        }
    }

    /// One raw token after a v0 handshake: `Some(reply)` to send length-prefixed, `None` to close.
    pub(crate) async fn sasl_raw_token(&self, token: &[u8]) -> Option<Vec<u8>> {
        match self.sasl_step(token).await.0 {
            Step::Continue(b) | Step::Done(b) => Some(b),
            Step::Failed => None,
        }
    }

    /// Feeds one client message to the exchange; the second value is the session lifetime.
    async fn sasl_step(&self, msg: &[u8]) -> (Step, i64) {
        let Some(sasl) = self.sasl().cloned() else {
            self.auth.lock().failed = true;
            return (Step::Failed, 0);
        };
        let phase = std::mem::take(&mut self.auth.lock().phase);
        let ip = self.peer.ip();
        let result: Result<ScramOrDone, AuthError> = match phase {
            Phase::Idle => {
                let mut auth = self.auth.lock();
                auth.failed = true;
                auth.out_of_order = true;
                return (Step::Failed, 0);
            }
            _ if sasl.is_throttled(ip) => {
                // AUTH-2: refused unchecked; not counted again, so the window still ends.
                tracing::warn!(conn = self.id, peer = %self.peer, listener = %self.listener.name, limit = sasl.max_failures_per_minute, "login refused without checking credentials: too many failed logins from this address in the last minute");
                self.auth.lock().failed = true;
                tokio::time::sleep(sasl.failed_authentication_delay).await;
                return (Step::Failed, 0);
            }
            Phase::Handshaken(Mechanism::Plain) => {
                let creds = Arc::clone(&sasl.credentials);
                let msg = msg.to_vec();
                // AUTH-4: PBKDF2 is slow on purpose; keep it off the reactor.
                let checked = tokio::task::spawn_blocking(move || {
                    let user = scram::parse_plain(&msg).map(|p| p.user.to_owned());
                    let user = match user {
                        Ok(u) => u,
                        Err(e) => return Err(e),
                    };
                    let found = [Mechanism::ScramSha512, Mechanism::ScramSha256]
                        .into_iter()
                        .find_map(|m| creds.scram_credential(&user, m).map(|c| (m, c)));
                    scram::authenticate_plain(&msg, found.as_ref().map(|(m, c)| (*m, c)))
                })
                .await;
                match checked {
                    Ok(r) => r.map(|user| ScramOrDone::Done(user, Vec::new(), Mechanism::Plain)),
                    Err(_) => Err(AuthError::Malformed("verification task failed")),
                }
            }
            Phase::Handshaken(m) => {
                let mut server = ScramServer::new(m, random_nonce());
                let creds = &sasl.credentials;
                let salt = std::str::from_utf8(msg)
                    .ok()
                    .and_then(|s| s.split(",n=").nth(1))
                    .map(|rest| fake_salt(rest.split(',').next().unwrap_or_default()))
                    .unwrap_or_else(|| fake_salt(""));
                match server.step(msg, |user| creds.scram_credential(user, m), &salt) {
                    Ok(ScramStep::Continue(first)) => Ok(ScramOrDone::Scram(server, first)),
                    Ok(ScramStep::Done { user, server_final }) => {
                        Ok(ScramOrDone::Done(user, server_final, m))
                    }
                    Err(e) => Err(e),
                }
            }
            Phase::Scram(mut server) => {
                let m = server.mechanism();
                match server.step(msg, |_| None, b"") {
                    Ok(ScramStep::Done { user, server_final }) => {
                        Ok(ScramOrDone::Done(user, server_final, m))
                    }
                    Ok(ScramStep::Continue(_)) => Err(AuthError::UnexpectedMessage),
                    Err(e) => Err(e),
                }
            }
        };
        match result {
            Ok(ScramOrDone::Scram(server, first)) => {
                self.auth.lock().phase = Phase::Scram(Box::new(server));
                (Step::Continue(first), 0)
            }
            Ok(ScramOrDone::Done(user, reply, mechanism)) => {
                let principal = format!("User:{user}");
                let lifetime_ms = sasl.max_reauth_ms.max(0);
                let reauth = {
                    let mut auth = self.auth.lock();
                    match &auth.principal {
                        Some(previous) if *previous != principal => {
                            // AUTH-3.
                            tracing::warn!(conn = self.id, peer = %self.peer, previous = %previous, principal = %principal, "re-authentication as a different principal refused");
                            auth.failed = true;
                            None
                        }
                        previous => {
                            let reauth = previous.is_some();
                            auth.principal = Some(principal.clone());
                            auth.raw_tokens = false;
                            auth.expires = (lifetime_ms > 0).then(|| {
                                Instant::now()
                                    + Duration::from_millis(u64::try_from(lifetime_ms).unwrap_or(0))
                            });
                            Some(reauth)
                        }
                    }
                };
                let Some(reauth) = reauth else {
                    tokio::time::sleep(sasl.failed_authentication_delay).await;
                    return (Step::Failed, 0);
                };
                self.set_principal(principal.clone());
                tracing::info!(conn = self.id, peer = %self.peer, listener = %self.listener.name, mechanism = mechanism.name(), %principal, reauth, "authenticated");
                (Step::Done(reply), lifetime_ms)
            }
            Err(err) => {
                let user = match &err {
                    AuthError::BadCredentials { user } => user.clone(),
                    _ => String::new(),
                };
                let failures = sasl.record_failure(ip);
                tracing::warn!(conn = self.id, peer = %self.peer, listener = %self.listener.name, user = %user, failures_this_minute = failures, reason = %err, "authentication failed");
                self.auth.lock().failed = true;
                // AUTH-2: slow down guessing.
                tokio::time::sleep(sasl.failed_authentication_delay).await;
                (Step::Failed, 0)
            }
        }
    }
}

enum ScramOrDone {
    Scram(ScramServer, Vec<u8>),
    Done(String, Vec<u8>, Mechanism),
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn failed_logins_throttle_an_address_for_the_rest_of_its_minute() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let logins = FailedLogins::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        for n in 1..=3 {
            assert!(
                !logins.is_throttled(ip, 3, at(n)),
                "after {} failures",
                n - 1
            );
            assert_eq!(logins.record(ip, at(n)), u32::try_from(n).unwrap());
        }
        // The limit holds for every attempt until the minute since the first failure ends.
        assert!(logins.is_throttled(ip, 3, at(3)));
        assert!(
            logins.is_throttled(ip, 3, at(60)),
            "the window began at the first failure"
        );
        assert!(!logins.is_throttled(other, 3, at(10)), "per address");
        assert!(!logins.is_throttled(ip, 4, at(10)), "below a higher limit");
        // A minute after the first failure a new window starts from zero.
        assert!(!logins.is_throttled(ip, 3, at(61)));
        assert_eq!(logins.record(ip, at(61)), 1);
        assert!(!logins.is_throttled(ip, 3, at(61)));
    }

    #[test]
    fn failed_logins_forget_ended_windows_when_full() {
        let t0 = Instant::now();
        let logins = FailedLogins::default();
        for i in 0..FAILURE_ADDRESSES {
            let ip = IpAddr::from(u32::try_from(i).unwrap().to_be_bytes());
            logins.record(ip, t0);
        }
        let later = t0 + FAILURE_WINDOW;
        logins.record("192.0.2.1".parse().unwrap(), later);
        assert_eq!(logins.counts.lock().len(), 1);
    }
}
