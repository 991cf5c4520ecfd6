//! The security part of the cluster metadata: ACL bindings and users' SCRAM credentials, as
//! the image holds them so that every node authorizes and authenticates alike.
//!
//! The records are plain data with Kafka's wire codes and names; what they mean (matching
//! rules, the SCRAM exchange) is the broker's. The checks here are only those that keep the
//! image well formed, whoever proposed the command; the broker validates requests fully before
//! it proposes (`META-8`).
//!
//! # Invariants
//! - `META-8`: every ACL binding in the image has a known resource type (2..=7), pattern type
//!   (LITERAL 3 or PREFIXED 4), operation (2..=14) and permission (DENY 2 or ALLOW 3), and a
//!   non-empty resource name, principal and host; every SCRAM credential belongs to a
//!   non-empty user, names `SCRAM-SHA-256` or `SCRAM-SHA-512`, has a positive iteration count
//!   and non-empty salt, StoredKey and ServerKey. No password is ever part of the metadata.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The SCRAM mechanisms a credential may be for.
pub const SCRAM_MECHANISMS: [&str; 2] = ["SCRAM-SHA-256", "SCRAM-SHA-512"];

/// Longest resource name, principal, host or user name, in bytes.
pub const SECURITY_NAME_MAX: usize = 64 * 1024;

/// Most ACL bindings one command may carry.
pub const ACLS_PER_COMMAND_MAX: usize = 10_000;

/// Longest salt or key of a SCRAM credential, in bytes.
pub const SCRAM_BYTES_MAX: usize = 1024;

/// One ACL binding, with Kafka's wire codes (`ResourceType`, `PatternType`, `AclOperation`,
/// `AclPermissionType`). Ordered so the image keeps them sorted.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AclRecord {
    /// TOPIC 2, GROUP 3, CLUSTER 4, TRANSACTIONAL_ID 5, DELEGATION_TOKEN 6, USER 7.
    pub resource_type: i8,
    /// The resource name, prefix, or `*`.
    pub resource_name: String,
    /// LITERAL 3 or PREFIXED 4.
    pub pattern_type: i8,
    /// `Type:name`, or `User:*`.
    pub principal: String,
    /// An IP address or `*`.
    pub host: String,
    /// ALL 2 .. DESCRIBE_TOKENS 14.
    pub operation: i8,
    /// DENY 2 or ALLOW 3.
    pub permission: i8,
}

impl AclRecord {
    /// Why the binding breaks `META-8`, if it does.
    pub fn check(&self) -> Result<(), String> {
        if !(2..=7).contains(&self.resource_type) {
            return Err(format!("unknown resource type {}", self.resource_type));
        }
        if !(3..=4).contains(&self.pattern_type) {
            return Err(format!("unknown pattern type {}", self.pattern_type));
        }
        if !(2..=14).contains(&self.operation) {
            return Err(format!("unknown operation {}", self.operation));
        }
        if !(2..=3).contains(&self.permission) {
            return Err(format!("unknown permission type {}", self.permission));
        }
        for (what, value) in [
            ("resource name", &self.resource_name),
            ("principal", &self.principal),
            ("host", &self.host),
        ] {
            if value.is_empty() || value.len() > SECURITY_NAME_MAX {
                return Err(format!(
                    "the {what} must have 1 to {SECURITY_NAME_MAX} bytes"
                ));
            }
        }
        Ok(())
    }
}

impl fmt::Display for AclRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} from {} operation {} permission {} on resource {} {:?} pattern {}",
            self.principal,
            self.host,
            self.operation,
            self.permission,
            self.resource_type,
            self.resource_name,
            self.pattern_type
        )
    }
}

/// One user's SCRAM credential for one mechanism: what a server needs to check a login
/// (RFC 5802), never the password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramRecord {
    /// The salt.
    #[serde(with = "hex_bytes")]
    pub salt: Vec<u8>,
    /// The PBKDF2 iteration count.
    pub iterations: u32,
    /// H(ClientKey).
    #[serde(with = "hex_bytes")]
    pub stored_key: Vec<u8>,
    /// HMAC(SaltedPassword, "Server Key").
    #[serde(with = "hex_bytes")]
    pub server_key: Vec<u8>,
}

impl ScramRecord {
    /// Why a credential of `user` for `mechanism` breaks `META-8`, if it does.
    pub fn check(&self, user: &str, mechanism: &str) -> Result<(), String> {
        check_user_mechanism(user, mechanism)?;
        if self.iterations == 0 {
            return Err("the iteration count must be positive".into());
        }
        for (what, value) in [
            ("salt", &self.salt),
            ("StoredKey", &self.stored_key),
            ("ServerKey", &self.server_key),
        ] {
            if value.is_empty() || value.len() > SCRAM_BYTES_MAX {
                return Err(format!("the {what} must have 1 to {SCRAM_BYTES_MAX} bytes"));
            }
        }
        Ok(())
    }
}

/// Why `user` / `mechanism` cannot name a credential, if they cannot.
pub fn check_user_mechanism(user: &str, mechanism: &str) -> Result<(), String> {
    if user.is_empty() || user.len() > SECURITY_NAME_MAX {
        return Err(format!(
            "the user name must have 1 to {SECURITY_NAME_MAX} bytes"
        ));
    }
    if !SCRAM_MECHANISMS.contains(&mechanism) {
        return Err(format!("unknown SCRAM mechanism {mechanism:?}"));
    }
    Ok(())
}

/// Bytes as lowercase hex digits in JSON (the snapshot and the Raft log).
pub(crate) mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        let mut out = String::with_capacity(bytes.len() * 2);
        for b in bytes {
            out.push_str(&format!("{b:02x}"));
        }
        s.serialize_str(&out)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        if !s.len().is_multiple_of(2) || !s.is_ascii() {
            return Err(serde::de::Error::custom("an even number of hex digits"));
        }
        (0..s.len())
            .step_by(2)
            .map(|i| {
                s.get(i..i + 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| serde::de::Error::custom("not a hex digit"))
            })
            .collect()
    }
}
