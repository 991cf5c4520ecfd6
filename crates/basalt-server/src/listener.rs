//! Listeners as Kafka names them: a name, a security protocol (PLAINTEXT, SSL, SASL_PLAINTEXT,
//! SASL_SSL), and the limits that apply to the connections accepted on it.
//!
//! # Invariants
//! - `LST-1`: an SSL or SASL_SSL listener always has TLS settings and a SASL_* listener always
//!   has SASL settings ([`ListenerConfig::new`] refuses anything else).
//! - `LST-2`: a listener holds at most its `max_connections` connections, and the broker at most
//!   `max_connections_per_ip` (or that address's override) from one address over all listeners;
//!   a connection over either limit is closed at once, before a byte is read.
//! - `LST-3`: a listener accepts at most its `max_connection_creation_rate` connections a second,
//!   and all listeners together at most the broker's; beyond either, accepting waits. The token
//!   bucket ([`CreationRate`]) is driven by the instants it is given, so it is tested without a
//!   clock.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::auth::SaslConfig;
use crate::tls::TlsSource;

/// `security.protocol` of a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecurityProtocol {
    /// Plain TCP, no authentication.
    Plaintext,
    /// TLS; clients may authenticate with certificates.
    Ssl,
    /// SASL over plain TCP.
    SaslPlaintext,
    /// SASL over TLS.
    SaslSsl,
}

impl SecurityProtocol {
    /// Kafka's name of the protocol.
    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    /// Whether connections speak TLS.
    pub fn is_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// Whether connections must log in with SASL.
    pub fn is_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

impl std::fmt::Display for SecurityProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for SecurityProtocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Ok(SecurityProtocol::Plaintext),
            "SSL" => Ok(SecurityProtocol::Ssl),
            "SASL_PLAINTEXT" => Ok(SecurityProtocol::SaslPlaintext),
            "SASL_SSL" => Ok(SecurityProtocol::SaslSsl),
            other => Err(format!(
                "unknown security protocol {other:?} (PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL)"
            )),
        }
    }
}

/// One listener's settings.
#[derive(Debug)]
pub struct ListenerConfig {
    /// The listener's name (`PLAINTEXT`, `EXTERNAL`, ...).
    pub name: String,
    /// Its security protocol.
    pub protocol: SecurityProtocol,
    /// TLS, for SSL and SASL_SSL.
    pub tls: Option<Arc<TlsSource>>,
    /// SASL, for SASL_PLAINTEXT and SASL_SSL.
    pub sasl: Option<Arc<SaslConfig>>,
    /// `listener.name.<name>.max.connections`: connections open at once on this listener; one
    /// more is closed at once (`LST-2`).
    pub max_connections: usize,
    /// `listener.name.<name>.max.connection.creation.rate`: new connections a second on this
    /// listener; 0 is no limit (`LST-3`).
    pub max_connection_creation_rate: u32,
    /// `connections.max.idle.ms`: a connection that sends nothing this long is closed; `None`
    /// keeps it.
    pub max_idle: Option<Duration>,
}

impl ListenerConfig {
    /// A listener; `LST-1` is checked here.
    pub fn new(
        name: impl Into<String>,
        protocol: SecurityProtocol,
        tls: Option<Arc<TlsSource>>,
        sasl: Option<Arc<SaslConfig>>,
    ) -> Result<Self, String> {
        let name = name.into();
        if protocol.is_tls() && tls.is_none() {
            return Err(format!(
                "listener {name} ({protocol}) needs ssl.certificate.location and ssl.key.location"
            ));
        }
        if protocol.is_sasl() && sasl.is_none() {
            return Err(format!(
                "listener {name} ({protocol}) needs sasl.enabled.mechanisms"
            ));
        }
        Ok(ListenerConfig {
            name,
            protocol,
            tls: tls.filter(|_| protocol.is_tls()),
            sasl: sasl.filter(|_| protocol.is_sasl()),
            max_connections: usize::MAX,
            max_connection_creation_rate: 0,
            max_idle: Some(Duration::from_secs(600)),
        })
    }

    /// A PLAINTEXT listener named `PLAINTEXT` without per-address limits.
    pub fn plaintext() -> Self {
        ListenerConfig {
            name: "PLAINTEXT".into(),
            protocol: SecurityProtocol::Plaintext,
            tls: None,
            sasl: None,
            max_connections: usize::MAX,
            max_connection_creation_rate: 0,
            max_idle: Some(Duration::from_secs(600)),
        }
    }
}

/// Connections per address over all listeners (`LST-2`).
#[derive(Debug, Default)]
pub(crate) struct PerIp {
    counts: Mutex<HashMap<IpAddr, usize>>,
}

/// `max.connections.per.ip` and its `max.connections.per.ip.overrides`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PerIpLimit {
    /// Connections from one address over all listeners.
    pub default: usize,
    /// Addresses with a limit of their own.
    pub overrides: HashMap<IpAddr, usize>,
}

impl Default for PerIpLimit {
    fn default() -> Self {
        PerIpLimit {
            default: usize::MAX,
            overrides: HashMap::new(),
        }
    }
}

impl PerIpLimit {
    /// The limit for `ip`.
    pub fn of(&self, ip: IpAddr) -> usize {
        self.overrides.get(&ip).copied().unwrap_or(self.default)
    }

    /// Parses `max.connections.per.ip.overrides`: `IP:N` pairs separated by commas (an IPv6
    /// address may be written in brackets).
    pub fn parse_overrides(text: &str) -> Result<HashMap<IpAddr, usize>, String> {
        let mut out = HashMap::new();
        for pair in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let bad = || format!("max.connections.per.ip.overrides: {pair:?} is not IP:COUNT");
            let (ip, n) = pair.rsplit_once(':').ok_or_else(bad)?;
            let ip: IpAddr = ip
                .trim()
                .trim_matches(['[', ']'])
                .parse()
                .map_err(|_| bad())?;
            let n: usize = n.trim().parse().map_err(|_| bad())?;
            out.insert(ip, n);
        }
        Ok(out)
    }
}

/// Holds one connection's place in [`PerIp`]; gives it back on drop.
pub(crate) struct IpSlot {
    per_ip: Arc<PerIp>,
    ip: IpAddr,
}

impl PerIp {
    /// A slot for a connection from `ip`, or `None` if it already has `max`.
    pub(crate) fn acquire(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<IpSlot> {
        let mut counts = self.counts.lock();
        let n = counts.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            per_ip: Arc::clone(self),
            ip,
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut counts = self.per_ip.counts.lock();
        if let Some(n) = counts.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// A token bucket of `rate` connections a second, holding up to `rate` tokens (`LST-3`).
#[derive(Debug)]
pub(crate) struct CreationRate {
    rate: u32,
    tokens: f64,
    last: Instant,
}

impl CreationRate {
    pub(crate) fn new(rate: u32) -> Self {
        CreationRate::starting_at(rate, Instant::now())
    }

    /// A full bucket at `now`.
    pub(crate) fn starting_at(rate: u32, now: Instant) -> Self {
        CreationRate {
            rate,
            tokens: f64::from(rate),
            last: now,
        }
    }

    /// How long to wait before the next accept (zero when a token is there); takes the token.
    pub(crate) fn wait(&mut self, now: Instant) -> Duration {
        if self.rate == 0 {
            return Duration::ZERO;
        }
        let rate = f64::from(self.rate);
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * rate).min(rate);
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / rate)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn per_ip_slots_are_given_back() {
        let per_ip = Arc::new(PerIp::default());
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let a = per_ip.acquire(ip, 2).unwrap();
        let _b = per_ip.acquire(ip, 2).unwrap();
        assert!(per_ip.acquire(ip, 2).is_none());
        drop(a);
        assert!(per_ip.acquire(ip, 2).is_some());
    }

    #[test]
    fn creation_rate_allows_a_burst_then_spaces_accepts() {
        let t0 = Instant::now();
        let mut r = CreationRate::starting_at(2, t0);
        assert_eq!(r.wait(t0), Duration::ZERO);
        assert_eq!(r.wait(t0), Duration::ZERO);
        assert_eq!(r.wait(t0), Duration::from_millis(500));
        assert_eq!(CreationRate::new(0).wait(t0), Duration::ZERO);
    }

    /// Rate 1/s, five connections at once: the first goes at once, the others are spaced a
    /// second apart; after a quiet while the bucket is full again, but never above the rate.
    #[test]
    fn creation_rate_decisions_follow_the_clock_given() {
        let t0 = Instant::now();
        let mut r = CreationRate::starting_at(1, t0);
        let waits: Vec<Duration> = (0..5).map(|_| r.wait(t0)).collect();
        assert_eq!(
            waits,
            (0..5).map(Duration::from_secs).collect::<Vec<_>>(),
            "each accept waits one more second"
        );
        // Those four waits reserved the next four seconds; at t0 + 4 s the last one is due and
        // the bucket is empty.
        let t4 = t0 + Duration::from_secs(4);
        assert_eq!(r.wait(t4), Duration::from_secs(1));
        // A long quiet time fills the bucket to one token, not to ten.
        let t20 = t0 + Duration::from_secs(20);
        assert_eq!(r.wait(t20), Duration::ZERO);
        assert_eq!(r.wait(t20), Duration::from_secs(1));
        // A clock that goes backwards is treated as no time passing.
        assert_eq!(r.wait(t0), Duration::from_secs(2));
    }

    #[test]
    fn per_ip_limits_have_overrides() {
        let overrides = PerIpLimit::parse_overrides("127.0.0.1:1, [::1]:5,10.0.0.2:0").unwrap();
        let limit = PerIpLimit {
            default: 3,
            overrides,
        };
        assert_eq!(limit.of("127.0.0.1".parse().unwrap()), 1);
        assert_eq!(limit.of("::1".parse().unwrap()), 5);
        assert_eq!(limit.of("10.0.0.2".parse().unwrap()), 0);
        assert_eq!(limit.of("10.0.0.3".parse().unwrap()), 3);
        assert!(PerIpLimit::parse_overrides("localhost:3").is_err());
        assert!(PerIpLimit::parse_overrides("127.0.0.1").is_err());
        assert!(PerIpLimit::parse_overrides("127.0.0.1:x").is_err());
        assert_eq!(PerIpLimit::parse_overrides(""), Ok(HashMap::new()));
    }

    #[test]
    fn protocols_parse_by_kafka_names() {
        assert_eq!(
            "sasl_ssl".parse::<SecurityProtocol>(),
            Ok(SecurityProtocol::SaslSsl)
        );
        assert!("TLS".parse::<SecurityProtocol>().is_err());
        assert!(ListenerConfig::new("X", SecurityProtocol::Ssl, None, None).is_err());
    }
}
