//! ACLs as Kafka models them, and the decision whether a principal may perform an operation on
//! a resource. Pure: no I/O, no clock, no locks; the broker keeps the bindings (from the cluster
//! metadata, as [`AclRecord`]s; `acls.json` for a broker without a metadata quorum) and asks
//! [`Acls::authorize`].
//!
//! The rules are those of Kafka's `StandardAuthorizer` (and `AclAuthorizer` before it):
//!
//! # Invariants
//! - `ACL-1`: super users are always allowed.
//! - `ACL-2`: a matching DENY wins over any ALLOW.
//! - `ACL-3`: an ACL matches a resource by literal name, by the literal wildcard `*`, or by a
//!   prefix (PREFIXED pattern); a principal by name or `User:*`; a host by IP or `*`.
//! - `ACL-4`: ALL matches every operation; an ALLOW of READ, WRITE, DELETE or ALTER also allows
//!   DESCRIBE, and an ALLOW of ALTER_CONFIGS also allows DESCRIBE_CONFIGS (implied operations
//!   never apply to DENY).
//! - `ACL-5`: when no ACL at all (of any principal) matches the resource, the answer is
//!   `allow.everyone.if.no.acl.found`; otherwise it is DENY unless an ALLOW matched.

use std::fmt;

use basalt_cluster::metadata::AclRecord;
use serde::{Deserialize, Serialize};

/// Kafka's `ResourceType` codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ResourceType {
    /// TOPIC (2).
    Topic,
    /// GROUP (3).
    Group,
    /// CLUSTER (4); its one resource is named `kafka-cluster`.
    Cluster,
    /// TRANSACTIONAL_ID (5).
    TransactionalId,
    /// DELEGATION_TOKEN (6).
    DelegationToken,
    /// USER (7).
    User,
}

/// The name of the one CLUSTER resource.
pub const CLUSTER_NAME: &str = "kafka-cluster";

/// The literal resource name and principal that match everything.
pub const WILDCARD: &str = "*";

/// The principal wildcard.
pub const WILDCARD_PRINCIPAL: &str = "User:*";

impl ResourceType {
    /// The type for a wire code; `None` for ANY (1), UNKNOWN (0) and unknown codes.
    pub fn from_code(code: i8) -> Option<Self> {
        Some(match code {
            2 => ResourceType::Topic,
            3 => ResourceType::Group,
            4 => ResourceType::Cluster,
            5 => ResourceType::TransactionalId,
            6 => ResourceType::DelegationToken,
            7 => ResourceType::User,
            _ => return None,
        })
    }

    /// The operations Kafka defines on a resource of this type (its `AclEntry`
    /// `supportedOperations`), which `authorized_operations` fields report on.
    pub fn operations(self) -> &'static [Operation] {
        use Operation::*;
        match self {
            ResourceType::Topic => &[
                Read,
                Write,
                Create,
                Delete,
                Alter,
                Describe,
                DescribeConfigs,
                AlterConfigs,
            ],
            ResourceType::Group => &[Read, Describe, Delete],
            ResourceType::Cluster => &[
                Create,
                Alter,
                Describe,
                ClusterAction,
                DescribeConfigs,
                AlterConfigs,
                IdempotentWrite,
            ],
            ResourceType::TransactionalId => &[Write, Describe],
            ResourceType::DelegationToken => &[Describe],
            ResourceType::User => &[CreateTokens, DescribeTokens],
        }
    }

    /// The wire code.
    pub fn code(self) -> i8 {
        match self {
            ResourceType::Topic => 2,
            ResourceType::Group => 3,
            ResourceType::Cluster => 4,
            ResourceType::TransactionalId => 5,
            ResourceType::DelegationToken => 6,
            ResourceType::User => 7,
        }
    }
}

/// Kafka's `PatternType` codes of a stored binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PatternType {
    /// LITERAL (3): the exact name, or `*` for every resource of the type.
    Literal,
    /// PREFIXED (4): every name starting with the pattern's name.
    Prefixed,
}

impl PatternType {
    /// The wire code.
    pub fn code(self) -> i8 {
        match self {
            PatternType::Literal => 3,
            PatternType::Prefixed => 4,
        }
    }
}

/// Kafka's `AclOperation` codes (ANY and UNKNOWN are not operations).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Operation {
    /// ALL (2).
    All,
    /// READ (3).
    Read,
    /// WRITE (4).
    Write,
    /// CREATE (5).
    Create,
    /// DELETE (6).
    Delete,
    /// ALTER (7).
    Alter,
    /// DESCRIBE (8).
    Describe,
    /// CLUSTER_ACTION (9).
    ClusterAction,
    /// DESCRIBE_CONFIGS (10).
    DescribeConfigs,
    /// ALTER_CONFIGS (11).
    AlterConfigs,
    /// IDEMPOTENT_WRITE (12).
    IdempotentWrite,
    /// CREATE_TOKENS (13).
    CreateTokens,
    /// DESCRIBE_TOKENS (14).
    DescribeTokens,
}

impl Operation {
    /// Every operation, in code order.
    pub const EVERY: [Operation; 13] = [
        Operation::All,
        Operation::Read,
        Operation::Write,
        Operation::Create,
        Operation::Delete,
        Operation::Alter,
        Operation::Describe,
        Operation::ClusterAction,
        Operation::DescribeConfigs,
        Operation::AlterConfigs,
        Operation::IdempotentWrite,
        Operation::CreateTokens,
        Operation::DescribeTokens,
    ];

    /// The operation for a wire code; `None` for ANY (1), UNKNOWN (0) and unknown codes.
    pub fn from_code(code: i8) -> Option<Self> {
        Operation::EVERY
            .get(usize::try_from(code).ok()?.checked_sub(2)?)
            .copied()
    }

    /// The wire code.
    pub fn code(self) -> i8 {
        Operation::EVERY
            .iter()
            .position(|o| *o == self)
            .map_or(0, |i| i as i8 + 2)
    }

    /// Kafka's name (`READ`, `IDEMPOTENT_WRITE`).
    pub fn name(self) -> &'static str {
        match self {
            Operation::All => "ALL",
            Operation::Read => "READ",
            Operation::Write => "WRITE",
            Operation::Create => "CREATE",
            Operation::Delete => "DELETE",
            Operation::Alter => "ALTER",
            Operation::Describe => "DESCRIBE",
            Operation::ClusterAction => "CLUSTER_ACTION",
            Operation::DescribeConfigs => "DESCRIBE_CONFIGS",
            Operation::AlterConfigs => "ALTER_CONFIGS",
            Operation::IdempotentWrite => "IDEMPOTENT_WRITE",
            Operation::CreateTokens => "CREATE_TOKENS",
            Operation::DescribeTokens => "DESCRIBE_TOKENS",
        }
    }

    /// The operation named `name` (case and `-`/`_` insensitive: `read`, `idempotent-write`).
    pub fn parse(name: &str) -> Option<Self> {
        let wanted = name.trim().to_ascii_uppercase().replace('-', "_");
        Operation::EVERY.into_iter().find(|o| o.name() == wanted)
    }

    /// Whether an ALLOW of `self` allows `requested` (`ACL-4`).
    fn allows(self, requested: Operation) -> bool {
        use Operation::*;
        self == All
            || self == requested
            || (requested == Describe && matches!(self, Read | Write | Delete | Alter))
            || (requested == DescribeConfigs && self == AlterConfigs)
    }

    /// Whether a DENY of `self` denies `requested`: only the same operation or ALL.
    fn denies(self, requested: Operation) -> bool {
        self == Operation::All || self == requested
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Kafka's `AclPermissionType` codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Permission {
    /// DENY (2).
    Deny,
    /// ALLOW (3).
    Allow,
}

impl Permission {
    /// The permission for a wire code; `None` for ANY (1) and unknown codes.
    pub fn from_code(code: i8) -> Option<Self> {
        match code {
            2 => Some(Permission::Deny),
            3 => Some(Permission::Allow),
            _ => None,
        }
    }

    /// The wire code.
    pub fn code(self) -> i8 {
        match self {
            Permission::Deny => 2,
            Permission::Allow => 3,
        }
    }
}

/// One ACL: a resource pattern and an entry (who, from where, what, allow or deny).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AclBinding {
    /// The resource type.
    pub resource_type: ResourceType,
    /// The resource name (or prefix, or `*`).
    pub resource_name: String,
    /// How the name matches.
    pub pattern_type: PatternType,
    /// `User:name` or `User:*`.
    pub principal: String,
    /// An IP address or `*`.
    pub host: String,
    /// The operation.
    pub operation: Operation,
    /// Allow or deny.
    pub permission: Permission,
}

impl AclBinding {
    /// Builds a binding from wire codes, checking it as Kafka does (INVALID_REQUEST otherwise):
    /// known types, no ANY or MATCH, a principal of the form `Type:name`, a non-empty host, a
    /// non-empty name, the cluster named `kafka-cluster`, and no prefixed `*`.
    #[allow(clippy::too_many_arguments)]
    pub fn from_wire(
        resource_type: i8,
        resource_name: &str,
        pattern_type: i8,
        principal: &str,
        host: &str,
        operation: i8,
        permission: i8,
    ) -> Result<Self, String> {
        let resource_type = ResourceType::from_code(resource_type)
            .ok_or_else(|| format!("invalid resource type {resource_type}"))?;
        let pattern_type = match pattern_type {
            3 => PatternType::Literal,
            4 => PatternType::Prefixed,
            other => return Err(format!("invalid pattern type {other}: LITERAL or PREFIXED")),
        };
        let operation = Operation::from_code(operation)
            .ok_or_else(|| format!("invalid operation {operation}"))?;
        let permission = Permission::from_code(permission)
            .ok_or_else(|| format!("invalid permission type {permission}"))?;
        check_principal(principal)?;
        if host.is_empty() {
            return Err("the host must be an IP address or *".into());
        }
        if resource_name.is_empty() {
            return Err("the resource name must not be empty".into());
        }
        if resource_type == ResourceType::Cluster && resource_name != CLUSTER_NAME {
            return Err(format!("the cluster resource is named {CLUSTER_NAME}"));
        }
        if pattern_type == PatternType::Prefixed && resource_name == WILDCARD {
            return Err("a prefixed pattern cannot be *; use a literal *".into());
        }
        Ok(AclBinding {
            resource_type,
            resource_name: resource_name.to_owned(),
            pattern_type,
            principal: principal.to_owned(),
            host: host.to_owned(),
            operation,
            permission,
        })
    }

    /// The binding as the cluster metadata holds it.
    pub fn to_record(&self) -> AclRecord {
        AclRecord {
            resource_type: self.resource_type.code(),
            resource_name: self.resource_name.clone(),
            pattern_type: self.pattern_type.code(),
            principal: self.principal.clone(),
            host: self.host.clone(),
            operation: self.operation.code(),
            permission: self.permission.code(),
        }
    }

    /// The binding a record of the cluster metadata holds, checked as [`AclBinding::from_wire`]
    /// checks a request's.
    pub fn from_record(record: &AclRecord) -> Result<Self, String> {
        AclBinding::from_wire(
            record.resource_type,
            &record.resource_name,
            record.pattern_type,
            &record.principal,
            &record.host,
            record.operation,
            record.permission,
        )
    }

    /// Whether the pattern covers resource `name` of type `resource_type` (`ACL-3`).
    fn matches_resource(&self, resource_type: ResourceType, name: &str) -> bool {
        self.resource_type == resource_type
            && match self.pattern_type {
                PatternType::Literal => {
                    self.resource_name == WILDCARD || self.resource_name == name
                }
                PatternType::Prefixed => name.starts_with(&self.resource_name),
            }
    }

    /// Whether the entry's principal and host cover `session`.
    fn matches_session(&self, session: &Session) -> bool {
        (self.principal == session.principal || self.principal == WILDCARD_PRINCIPAL)
            && (self.host == WILDCARD || self.host == session.host)
    }
}

/// A principal is `Type:name` with a non-empty type and name.
fn check_principal(principal: &str) -> Result<(), String> {
    match principal.split_once(':') {
        Some((kind, name)) if !kind.is_empty() && !name.is_empty() => Ok(()),
        _ => Err(format!(
            "invalid principal {principal:?}: expected User:name or User:*"
        )),
    }
}

/// A pattern filter of DescribeAcls / DeleteAcls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatternFilter {
    /// ANY (1): every pattern type; the name, if given, compared exactly.
    Any,
    /// MATCH (2): the patterns that would apply to the named resource (literal name, `*`,
    /// prefixes of it).
    Match,
    /// One pattern type, the name compared exactly.
    Only(PatternType),
}

/// A filter of DescribeAcls / DeleteAcls; `None` fields match anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclFilter {
    /// Resource type, or any.
    pub resource_type: Option<ResourceType>,
    /// Resource name, or any.
    pub resource_name: Option<String>,
    /// Pattern filter.
    pub pattern: PatternFilter,
    /// Principal, or any.
    pub principal: Option<String>,
    /// Host, or any.
    pub host: Option<String>,
    /// Operation, or any.
    pub operation: Option<Operation>,
    /// Permission, or any.
    pub permission: Option<Permission>,
}

impl AclFilter {
    /// Builds a filter from wire codes (INVALID_REQUEST for unknown codes).
    #[allow(clippy::too_many_arguments)]
    pub fn from_wire(
        resource_type: i8,
        resource_name: Option<&str>,
        pattern_type: i8,
        principal: Option<&str>,
        host: Option<&str>,
        operation: i8,
        permission: i8,
    ) -> Result<Self, String> {
        let resource_type = match resource_type {
            1 => None,
            code => Some(
                ResourceType::from_code(code)
                    .ok_or_else(|| format!("invalid resource type filter {code}"))?,
            ),
        };
        let pattern = match pattern_type {
            1 => PatternFilter::Any,
            2 => PatternFilter::Match,
            3 => PatternFilter::Only(PatternType::Literal),
            4 => PatternFilter::Only(PatternType::Prefixed),
            other => return Err(format!("invalid pattern type filter {other}")),
        };
        let operation = match operation {
            1 => None,
            code => Some(
                Operation::from_code(code).ok_or_else(|| format!("invalid operation {code}"))?,
            ),
        };
        let permission = match permission {
            1 => None,
            code => Some(
                Permission::from_code(code)
                    .ok_or_else(|| format!("invalid permission type {code}"))?,
            ),
        };
        Ok(AclFilter {
            resource_type,
            resource_name: resource_name.map(str::to_owned),
            pattern,
            principal: principal.map(str::to_owned),
            host: host.map(str::to_owned),
            operation,
            permission,
        })
    }

    /// Whether `acl` passes the filter.
    pub fn matches(&self, acl: &AclBinding) -> bool {
        let name_ok = match (&self.pattern, &self.resource_name) {
            (PatternFilter::Match, Some(name)) => match acl.pattern_type {
                PatternType::Literal => acl.resource_name == *name || acl.resource_name == WILDCARD,
                PatternType::Prefixed => name.starts_with(&acl.resource_name),
            },
            (PatternFilter::Only(p), name) => {
                acl.pattern_type == *p && name.as_ref().is_none_or(|n| *n == acl.resource_name)
            }
            (_, name) => name.as_ref().is_none_or(|n| *n == acl.resource_name),
        };
        name_ok
            && self.resource_type.is_none_or(|t| t == acl.resource_type)
            && self.principal.as_ref().is_none_or(|p| *p == acl.principal)
            && self.host.as_ref().is_none_or(|h| *h == acl.host)
            && self.operation.is_none_or(|o| o == acl.operation)
            && self.permission.is_none_or(|p| p == acl.permission)
    }
}

/// Who sent a request and from where: what authorization decides on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// `User:name` (`User:ANONYMOUS` for an unauthenticated connection).
    pub principal: String,
    /// The client's IP address, as text.
    pub host: String,
}

impl Session {
    /// The session of a request on `conn`: its authenticated principal (`User:ANONYMOUS` until
    /// the connection authenticates) and its peer's IP address. The one place principals are
    /// taken from connections.
    pub fn of(conn: &basalt_server::ConnectionInfo) -> Self {
        Session {
            principal: conn.principal(),
            host: conn.peer.ip().to_string(),
        }
    }

    /// A session for `principal` connecting from `host`.
    pub fn new(principal: impl Into<String>, host: impl Into<String>) -> Self {
        Session {
            principal: principal.into(),
            host: host.into(),
        }
    }
}

/// The authorizer's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizerConfig {
    /// Whether requests are authorized at all (`authorizer.class.name` set); when off, every
    /// request is allowed and the ACL APIs answer SECURITY_DISABLED.
    pub enabled: bool,
    /// `super.users`: principals allowed everything.
    pub super_users: Vec<String>,
    /// `allow.everyone.if.no.acl.found`.
    pub allow_everyone_if_no_acl_found: bool,
}

impl AuthorizerConfig {
    /// Parses `super.users`: principals separated by `;` (blanks ignored).
    pub fn parse_super_users(s: &str) -> Vec<String> {
        s.split(';')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

/// A set of ACL bindings and the settings that decide with them.
#[derive(Debug, Clone, Default)]
pub struct Acls {
    config: AuthorizerConfig,
    bindings: Vec<AclBinding>,
}

impl Acls {
    /// An authorizer with `config` and `bindings` (duplicates dropped, kept sorted).
    pub fn new(config: AuthorizerConfig, mut bindings: Vec<AclBinding>) -> Self {
        bindings.sort();
        bindings.dedup();
        Acls { config, bindings }
    }

    /// The settings.
    pub fn config(&self) -> &AuthorizerConfig {
        &self.config
    }

    /// Every binding, sorted.
    pub fn bindings(&self) -> &[AclBinding] {
        &self.bindings
    }

    /// Adds `acl` (already present: nothing changes); returns whether it was new.
    pub fn add(&mut self, acl: AclBinding) -> bool {
        match self.bindings.binary_search(&acl) {
            Ok(_) => false,
            Err(i) => {
                self.bindings.insert(i, acl);
                true
            }
        }
    }

    /// Removes and returns the bindings `filter` matches.
    pub fn remove_matching(&mut self, filter: &AclFilter) -> Vec<AclBinding> {
        let (removed, kept) = std::mem::take(&mut self.bindings)
            .into_iter()
            .partition(|a| filter.matches(a));
        self.bindings = kept;
        removed
    }

    /// The bindings `filter` matches.
    pub fn matching(&self, filter: &AclFilter) -> Vec<AclBinding> {
        self.bindings
            .iter()
            .filter(|a| filter.matches(a))
            .cloned()
            .collect()
    }

    /// Whether `session` is a super user.
    pub fn is_super_user(&self, session: &Session) -> bool {
        self.config.super_users.contains(&session.principal)
    }

    /// Whether `session` may perform `operation` on resource `name` of `resource_type`
    /// (`ACL-1..5`). Always true when authorization is off.
    pub fn authorize(
        &self,
        session: &Session,
        operation: Operation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        if !self.config.enabled || self.is_super_user(session) {
            return true;
        }
        let mut any_for_resource = false;
        let mut allowed = false;
        for acl in &self.bindings {
            if !acl.matches_resource(resource_type, name) {
                continue;
            }
            any_for_resource = true;
            if !acl.matches_session(session) {
                continue;
            }
            match acl.permission {
                Permission::Deny if acl.operation.denies(operation) => return false,
                Permission::Allow if acl.operation.allows(operation) => allowed = true,
                _ => {}
            }
        }
        if any_for_resource {
            allowed
        } else {
            self.config.allow_everyone_if_no_acl_found
        }
    }

    /// Whether `session` may perform `operation` on at least one resource of `resource_type`
    /// (Kafka's `authorizeByResourceType`, KIP-679: IDEMPOTENT_WRITE is granted to whoever may
    /// WRITE some topic): an ALLOW for the session not covered by a DENY for it.
    pub fn authorize_any(
        &self,
        session: &Session,
        operation: Operation,
        resource_type: ResourceType,
    ) -> bool {
        if !self.config.enabled || self.is_super_user(session) {
            return true;
        }
        let applies = |acl: &&AclBinding, permission: Permission| {
            acl.resource_type == resource_type
                && acl.permission == permission
                && acl.matches_session(session)
                && match permission {
                    Permission::Allow => acl.operation.allows(operation),
                    Permission::Deny => acl.operation.denies(operation),
                }
        };
        let denies: Vec<&AclBinding> = self
            .bindings
            .iter()
            .filter(|a| applies(a, Permission::Deny))
            .collect();
        let covered = |allow: &AclBinding| {
            denies.iter().any(|deny| match deny.pattern_type {
                PatternType::Literal => {
                    deny.resource_name == WILDCARD
                        || (allow.pattern_type == PatternType::Literal
                            && allow.resource_name == deny.resource_name)
                }
                PatternType::Prefixed => allow.resource_name.starts_with(&deny.resource_name),
            })
        };
        let allowed = self
            .bindings
            .iter()
            .filter(|a| applies(a, Permission::Allow))
            .any(|a| !covered(a));
        if allowed {
            return true;
        }
        let any_of_type = self
            .bindings
            .iter()
            .any(|a| a.resource_type == resource_type);
        !any_of_type && self.config.allow_everyone_if_no_acl_found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn acl(
        rt: ResourceType,
        name: &str,
        pattern: PatternType,
        principal: &str,
        host: &str,
        op: Operation,
        perm: Permission,
    ) -> AclBinding {
        AclBinding {
            resource_type: rt,
            resource_name: name.into(),
            pattern_type: pattern,
            principal: principal.into(),
            host: host.into(),
            operation: op,
            permission: perm,
        }
    }

    fn topic_acl(
        name: &str,
        pattern: PatternType,
        principal: &str,
        host: &str,
        op: Operation,
        perm: Permission,
    ) -> AclBinding {
        acl(
            ResourceType::Topic,
            name,
            pattern,
            principal,
            host,
            op,
            perm,
        )
    }

    fn enabled(super_users: &[&str], allow_if_none: bool, bindings: Vec<AclBinding>) -> Acls {
        Acls::new(
            AuthorizerConfig {
                enabled: true,
                super_users: super_users.iter().map(|s| s.to_string()).collect(),
                allow_everyone_if_no_acl_found: allow_if_none,
            },
            bindings,
        )
    }

    use Operation::*;
    use PatternType::*;
    use Permission::*;

    #[test]
    fn codes_round_trip() {
        for op in Operation::EVERY {
            assert_eq!(Operation::from_code(op.code()), Some(op));
            assert_eq!(
                Operation::parse(&op.name().to_lowercase().replace('_', "-")),
                Some(op)
            );
        }
        assert_eq!(Operation::from_code(1), None);
        assert_eq!(Operation::from_code(0), None);
        assert_eq!(Operation::from_code(15), None);
        assert_eq!(Read.code(), 3);
        assert_eq!(IdempotentWrite.code(), 12);
        for code in 2..=7 {
            assert_eq!(
                ResourceType::from_code(code).map(ResourceType::code),
                Some(code)
            );
        }
        assert_eq!(ResourceType::from_code(1), None);
    }

    /// Named users and hosts, as they will arrive once connections authenticate.
    #[test]
    fn decision_table() {
        let alice = Session::new("User:alice", "10.0.0.1");
        let alice_elsewhere = Session::new("User:alice", "10.0.0.2");
        let bob = Session::new("User:bob", "10.0.0.1");
        let admin = Session::new("User:admin", "10.0.0.9");
        let acls = enabled(
            &["User:admin"],
            false,
            vec![
                topic_acl("orders", Literal, "User:alice", "10.0.0.1", Read, Allow),
                topic_acl("pay-", Prefixed, "User:alice", "*", Write, Allow),
                topic_acl("pay-secret", Literal, "User:alice", "*", Write, Deny),
                topic_acl("*", Literal, "User:bob", "*", All, Allow),
                topic_acl("orders", Literal, "User:bob", "*", Write, Deny),
                topic_acl("public", Literal, "User:*", "*", Describe, Allow),
                acl(
                    ResourceType::Group,
                    "g1",
                    Literal,
                    "User:alice",
                    "*",
                    Read,
                    Allow,
                ),
                acl(
                    ResourceType::Cluster,
                    CLUSTER_NAME,
                    Literal,
                    "User:bob",
                    "*",
                    Create,
                    Allow,
                ),
            ],
        );
        let t = ResourceType::Topic;
        let cases: &[(&Session, Operation, ResourceType, &str, bool)] = &[
            (&alice, Read, t, "orders", true),
            // Host must match.
            (&alice_elsewhere, Read, t, "orders", false),
            // READ implies DESCRIBE.
            (&alice, Describe, t, "orders", true),
            // Not granted.
            (&alice, Write, t, "orders", false),
            // Prefixed allow.
            (&alice, Write, t, "pay-in", true),
            (&alice, Describe, t, "pay-in", true),
            // A literal deny beats the prefixed allow.
            (&alice, Write, t, "pay-secret", false),
            // Implied DESCRIBE survives a deny of WRITE only (implication is per ALLOW).
            (&alice, Describe, t, "pay-secret", true),
            // Bob: wildcard ALL, but WRITE on orders denied.
            (&bob, Read, t, "anything", true),
            (&bob, Write, t, "orders", false),
            (&bob, Read, t, "orders", true),
            // User:* matches everyone.
            (&alice, Describe, t, "public", true),
            (&alice, Read, t, "public", false),
            // No ACL for the resource at all (bob's `*` matches every topic, so use a group).
            (&alice, Read, ResourceType::Group, "nobody", false),
            (&alice, Read, ResourceType::Group, "g1", true),
            (&alice, Delete, ResourceType::Group, "g1", false),
            (&bob, Create, ResourceType::Cluster, CLUSTER_NAME, true),
            (&alice, Create, ResourceType::Cluster, CLUSTER_NAME, false),
            // Super users may do anything.
            (&admin, Write, t, "orders", true),
            (&admin, Alter, ResourceType::Cluster, CLUSTER_NAME, true),
        ];
        for (session, op, rt, name, want) in cases {
            assert_eq!(
                acls.authorize(session, *op, *rt, name),
                *want,
                "{} {op} {rt:?}:{name}",
                session.principal
            );
        }
    }

    #[test]
    fn implied_operations() {
        let s = Session::new("User:a", "1.2.3.4");
        for (granted, requested, want) in [
            (Read, Describe, true),
            (Write, Describe, true),
            (Delete, Describe, true),
            (Alter, Describe, true),
            (Create, Describe, false),
            (AlterConfigs, DescribeConfigs, true),
            (DescribeConfigs, AlterConfigs, false),
            (Describe, Read, false),
            (All, IdempotentWrite, true),
        ] {
            let acls = enabled(
                &[],
                false,
                vec![topic_acl("t", Literal, "User:a", "*", granted, Allow)],
            );
            assert_eq!(
                acls.authorize(&s, requested, ResourceType::Topic, "t"),
                want,
                "{granted} → {requested}"
            );
        }
        // A DENY of READ does not deny DESCRIBE (implication is for ALLOW only).
        let acls = enabled(
            &[],
            false,
            vec![
                topic_acl("t", Literal, "User:a", "*", Describe, Allow),
                topic_acl("t", Literal, "User:a", "*", Read, Deny),
            ],
        );
        assert!(acls.authorize(&s, Describe, ResourceType::Topic, "t"));
        assert!(!acls.authorize(&s, Read, ResourceType::Topic, "t"));
    }

    #[test]
    fn no_acl_found_rule() {
        let s = Session::new("User:a", "1.2.3.4");
        let other = topic_acl("t", Literal, "User:b", "*", Read, Allow);
        // No ACL for the resource: the setting decides.
        assert!(!enabled(&[], false, vec![]).authorize(&s, Read, ResourceType::Topic, "t"));
        assert!(enabled(&[], true, vec![]).authorize(&s, Read, ResourceType::Topic, "t"));
        // An ACL for someone else on the resource: denied even with the setting on.
        assert!(!enabled(&[], true, vec![other.clone()]).authorize(
            &s,
            Read,
            ResourceType::Topic,
            "t"
        ));
        // ... but other resources still fall back to it.
        assert!(enabled(&[], true, vec![other]).authorize(&s, Read, ResourceType::Topic, "u"));
        // Off: everything allowed.
        let off = Acls::new(
            AuthorizerConfig::default(),
            vec![topic_acl("t", Literal, "User:a", "*", All, Deny)],
        );
        assert!(off.authorize(&s, Read, ResourceType::Topic, "t"));
    }

    #[test]
    fn authorize_any_of_type() {
        let s = Session::new("User:a", "1.2.3.4");
        let w = |name: &str, pattern, perm| topic_acl(name, pattern, "User:a", "*", Write, perm);
        assert!(
            enabled(&[], false, vec![w("t", Literal, Allow)]).authorize_any(
                &s,
                Write,
                ResourceType::Topic
            )
        );
        assert!(!enabled(&[], false, vec![]).authorize_any(&s, Write, ResourceType::Topic));
        assert!(
            !enabled(
                &[],
                false,
                vec![w("t", Literal, Allow), w("t", Literal, Deny)]
            )
            .authorize_any(&s, Write, ResourceType::Topic)
        );
        assert!(
            !enabled(
                &[],
                false,
                vec![w("t", Prefixed, Allow), w("*", Literal, Deny)]
            )
            .authorize_any(&s, Write, ResourceType::Topic)
        );
        assert!(
            !enabled(
                &[],
                false,
                vec![w("tx", Prefixed, Allow), w("t", Prefixed, Deny)]
            )
            .authorize_any(&s, Write, ResourceType::Topic)
        );
        assert!(
            enabled(
                &[],
                false,
                vec![w("t", Prefixed, Allow), w("tx", Prefixed, Deny)]
            )
            .authorize_any(&s, Write, ResourceType::Topic)
        );
    }

    #[test]
    fn wire_validation() {
        let ok = AclBinding::from_wire(2, "t", 3, "User:a", "*", 3, 3);
        assert!(ok.is_ok());
        // ANY / MATCH / unknown codes, bad principals and names are refused.
        assert!(AclBinding::from_wire(1, "t", 3, "User:a", "*", 3, 3).is_err());
        assert!(AclBinding::from_wire(2, "t", 1, "User:a", "*", 3, 3).is_err());
        assert!(AclBinding::from_wire(2, "t", 2, "User:a", "*", 3, 3).is_err());
        assert!(AclBinding::from_wire(2, "t", 3, "User:a", "*", 1, 3).is_err());
        assert!(AclBinding::from_wire(2, "t", 3, "User:a", "*", 3, 1).is_err());
        assert!(AclBinding::from_wire(2, "t", 3, "", "*", 3, 3).is_err());
        assert!(AclBinding::from_wire(2, "t", 3, "alice", "*", 3, 3).is_err());
        assert!(AclBinding::from_wire(2, "t", 3, "User:a", "", 3, 3).is_err());
        assert!(AclBinding::from_wire(2, "", 3, "User:a", "*", 3, 3).is_err());
        assert!(AclBinding::from_wire(4, "other", 3, "User:a", "*", 7, 3).is_err());
        assert!(AclBinding::from_wire(2, "*", 4, "User:a", "*", 3, 3).is_err());
        assert!(AclFilter::from_wire(1, None, 1, None, None, 1, 1).is_ok());
        assert!(AclFilter::from_wire(9, None, 1, None, None, 1, 1).is_err());
    }

    #[test]
    fn filters() {
        let lit = topic_acl("orders", Literal, "User:a", "*", Read, Allow);
        let star = topic_acl("*", Literal, "User:a", "*", Read, Allow);
        let pre = topic_acl("ord", Prefixed, "User:b", "*", Write, Deny);
        let f = |name: Option<&str>, pattern| AclFilter {
            resource_type: Some(ResourceType::Topic),
            resource_name: name.map(str::to_owned),
            pattern,
            principal: None,
            host: None,
            operation: None,
            permission: None,
        };
        let matched = |filter: AclFilter| {
            [&lit, &star, &pre]
                .into_iter()
                .filter(|a| filter.matches(a))
                .count()
        };
        assert_eq!(matched(f(None, PatternFilter::Any)), 3);
        assert_eq!(matched(f(Some("orders"), PatternFilter::Any)), 1);
        assert_eq!(matched(f(Some("orders"), PatternFilter::Match)), 3);
        assert_eq!(matched(f(None, PatternFilter::Only(Prefixed))), 1);
        assert_eq!(matched(f(Some("ord"), PatternFilter::Only(Literal))), 0);
        let mut acls = enabled(&[], false, vec![lit.clone(), star, pre]);
        assert!(!acls.add(lit));
        let removed = acls.remove_matching(&AclFilter {
            permission: Some(Deny),
            ..f(None, PatternFilter::Any)
        });
        assert_eq!(removed.len(), 1);
        assert_eq!(acls.bindings().len(), 2);
    }

    fn arb_binding() -> impl Strategy<Value = AclBinding> {
        (
            prop::sample::select(vec!["t", "tx", "u", "*"]),
            prop::bool::ANY,
            prop::sample::select(vec!["User:a", "User:b", "User:*"]),
            prop::sample::select(vec!["*", "1.1.1.1", "2.2.2.2"]),
            prop::sample::select(Operation::EVERY.to_vec()),
            prop::bool::ANY,
        )
            .prop_map(|(name, prefixed, principal, host, op, allow)| {
                topic_acl(
                    name,
                    if prefixed && name != "*" {
                        Prefixed
                    } else {
                        Literal
                    },
                    principal,
                    host,
                    op,
                    if allow { Allow } else { Deny },
                )
            })
    }

    proptest! {
        /// `ACL-2`: adding a matching DENY to any set of ACLs denies, whatever else allows.
        #[test]
        fn deny_always_wins(
            bindings in prop::collection::vec(arb_binding(), 0..12),
            op in prop::sample::select(Operation::EVERY[1..].to_vec()),
            name in prop::sample::select(vec!["t", "tx", "u"]),
            deny_all in prop::bool::ANY,
            allow_if_none in prop::bool::ANY,
        ) {
            let session = Session::new("User:a", "1.1.1.1");
            let mut acls = enabled(&[], allow_if_none, bindings);
            acls.add(topic_acl(name, Literal, "User:*", "*", if deny_all { All } else { op }, Deny));
            prop_assert!(!acls.authorize(&session, op, ResourceType::Topic, name));
            // A super user is allowed all the same (`ACL-1`).
            let mut config = acls.config().clone();
            config.super_users.push("User:a".into());
            let supered = Acls::new(config, acls.bindings().to_vec());
            prop_assert!(supered.authorize(&session, op, ResourceType::Topic, name));
        }

        /// A binding survives the trip through the cluster metadata unchanged, and its record
        /// is well formed there (`META-8`).
        #[test]
        fn bindings_round_trip_through_metadata_records(binding in arb_binding()) {
            let record = binding.to_record();
            prop_assert!(record.check().is_ok());
            prop_assert_eq!(AclBinding::from_record(&record), Ok(binding));
        }

        /// The decision depends only on the bindings that match the resource.
        #[test]
        fn unrelated_acls_do_not_change_decision(
            bindings in prop::collection::vec(arb_binding(), 0..12),
            op in prop::sample::select(Operation::EVERY[1..].to_vec()),
        ) {
            let session = Session::new("User:a", "1.1.1.1");
            let acls = enabled(&[], false, bindings.clone());
            let before = acls.authorize(&session, op, ResourceType::Topic, "t");
            let mut more = bindings;
            more.push(acl(ResourceType::Group, "t", Literal, "User:a", "*", All, Deny));
            let after = enabled(&[], false, more).authorize(&session, op, ResourceType::Topic, "t");
            prop_assert_eq!(before, after);
        }
    }
}
