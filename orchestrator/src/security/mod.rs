//! Security policy: principals, roles, API keys (stored hashed with Argon2id), OIDC/JWT
//! bearer tokens verified against a JWKS, the multi-factor policy and the hash-chained
//! audit log with its signed checkpoints.

pub mod audit;
pub mod keys;
pub mod masking;
pub mod mfa;
pub mod oidc;

pub use audit::checkpoint::{CheckpointKey, CheckpointSink};
pub use audit::{AuditLog, AuditRecord};
pub use keys::{ApiKey, KeyStore};
pub use mfa::MfaPolicy;
pub use oidc::{OidcSettings, OidcVerifier};

use serde::{Deserialize, Serialize};

/// What a request does, for authorization. Each action includes the ones before it in a
/// grant: a grant of `write` also allows `read`, `admin` allows all three.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// search, get, count, describe, list
    Read,
    /// upsert, delete, ingest, flush
    Write,
    /// create/drop collections, manage keys
    Admin,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Write => "write",
            Action::Admin => "admin",
        }
    }
    pub fn parse(s: &str) -> Result<Action, Error> {
        match s.trim() {
            "read" => Ok(Action::Read),
            "write" => Ok(Action::Write),
            "admin" => Ok(Action::Admin),
            other => Err(Error::Invalid(format!("unknown action '{other}' (read, write or admin)"))),
        }
    }
}

/// A collection pattern in a grant: an exact name, `prefix*`, or `*` for every collection.
pub fn pattern_matches(pattern: &str, collection: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => collection.starts_with(prefix),
        None => pattern == collection,
    }
}

fn validate_pattern(p: &str) -> Result<(), Error> {
    let body = p.strip_suffix('*').unwrap_or(p);
    if p.is_empty() || body.contains('*') || body.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::Invalid(format!(
            "collection pattern '{p}' must be a collection name, 'prefix*' or '*' (one trailing '*' at most)"
        )));
    }
    Ok(())
}

/// Agent memory collections: `agent_<name>_memory` (a registered agent's) and
/// `memory-<principal>` (what a principal `remember`s over A2A). They are private to
/// their agent: see [`Principal::authorize`].
pub fn is_memory_collection(collection: &str) -> bool {
    collection.starts_with("memory-") || (collection.starts_with("agent_") && collection.ends_with("_memory"))
}

/// The memory collection of a principal (`memory-<id>`, characters outside
/// `[A-Za-z0-9_-]` replaced by `-`; `memory-local` without authentication).
pub fn principal_memory_collection(owner: &str) -> String {
    let clean: String =
        owner.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '-' }).collect();
    let mut name = format!("memory-{clean}");
    name.truncate(128);
    name
}

/// Queues are resources of their own, named `queue:<name>` in key scopes and role grants.
pub const QUEUE_PREFIX: &str = "queue:";

/// The resource name of queue `queue` in scopes and grants.
pub fn queue_resource(queue: &str) -> String {
    format!("{QUEUE_PREFIX}{queue}")
}

/// One permission of a custom role: these actions on the collections matching these patterns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub actions: Vec<Action>,
    pub collections: Vec<String>,
}

impl Grant {
    pub fn new(actions: Vec<Action>, collections: Vec<String>) -> Result<Grant, Error> {
        if actions.is_empty() || collections.is_empty() {
            return Err(Error::Invalid("a grant needs at least one action and one collection pattern".into()));
        }
        for c in &collections {
            validate_pattern(c)?;
        }
        Ok(Grant { actions, collections })
    }

    /// `collection` "" = not collection-specific (listings, key management): allowed when
    /// the grant has the action, and for `admin` only when it covers every collection (`*`).
    pub fn allows(&self, a: Action, collection: &str) -> bool {
        self.actions.iter().any(|g| *g >= a)
            && if collection.is_empty() {
                a != Action::Admin || self.collections.iter().any(|p| p == "*")
            } else {
                self.collections.iter().any(|p| pattern_matches(p, collection))
            }
    }
}

/// A role defined in `[security.roles.<name>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomRole {
    pub name: String,
    pub grants: Vec<Grant>,
    /// Storage quota overrides for principals with this role (`None` = the server default).
    pub storage_quota_bytes: Option<u64>,
    pub storage_quota_items: Option<u64>,
}

/// A role: a built-in one (reader ⊂ writer ⊂ admin, on every collection) or a custom one
/// (its grants), resolved by name against a [`RoleTable`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Reader,
    Writer,
    Admin,
    Custom(std::sync::Arc<CustomRole>),
}

pub const BUILTIN_ROLES: [&str; 3] = ["reader", "writer", "admin"];

impl Role {
    /// A built-in role by name; custom roles resolve through [`RoleTable::resolve`].
    pub fn parse(s: &str) -> Result<Role, Error> {
        match s.trim() {
            "reader" => Ok(Role::Reader),
            "writer" => Ok(Role::Writer),
            "admin" => Ok(Role::Admin),
            other => Err(Error::Invalid(format!("unknown role '{other}' (reader, writer or admin)"))),
        }
    }
    pub fn as_str(&self) -> &str {
        match self {
            Role::Reader => "reader",
            Role::Writer => "writer",
            Role::Admin => "admin",
            Role::Custom(c) => &c.name,
        }
    }
    /// Clearance level for data masking: reader 0, writer 1, admin 2; custom roles rank
    /// as readers.
    pub fn rank(&self) -> u8 {
        match self {
            Role::Reader | Role::Custom(_) => 0,
            Role::Writer => 1,
            Role::Admin => 2,
        }
    }
    /// Whether the role allows `a` on `collection` ("" = not collection-specific).
    pub fn allows(&self, a: Action, collection: &str) -> bool {
        match self {
            Role::Custom(c) => c.grants.iter().any(|g| g.allows(a, collection)),
            builtin => match a {
                Action::Read => true,
                Action::Write => builtin.rank() >= 1,
                Action::Admin => builtin.rank() >= 2,
            },
        }
    }
    pub fn custom(&self) -> Option<&CustomRole> {
        match self {
            Role::Custom(c) => Some(c),
            _ => None,
        }
    }
}

impl Serialize for Role {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The roles a server knows: the built-ins plus the custom roles of its configuration.
#[derive(Debug, Clone, Default)]
pub struct RoleTable {
    custom: std::collections::BTreeMap<String, Role>,
}

impl RoleTable {
    pub fn new(custom: Vec<CustomRole>) -> Result<RoleTable, Error> {
        let mut t = RoleTable::default();
        for r in custom {
            let ok_name = !r.name.is_empty()
                && r.name.len() <= 64
                && r.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.');
            if !ok_name {
                return Err(Error::Invalid(format!(
                    "role name '{}' must be 1 to 64 of a-z, A-Z, 0-9, '_', '-', '.'",
                    r.name
                )));
            }
            if BUILTIN_ROLES.contains(&r.name.as_str()) {
                return Err(Error::Invalid(format!("role '{}' is built in and cannot be redefined", r.name)));
            }
            if r.grants.is_empty() {
                return Err(Error::Invalid(format!("role '{}' has no grants", r.name)));
            }
            t.custom.insert(r.name.clone(), Role::Custom(std::sync::Arc::new(r)));
        }
        Ok(t)
    }

    /// The role called `name`: built-in or custom; unknown names are refused.
    pub fn resolve(&self, name: &str) -> Result<Role, Error> {
        let name = name.trim();
        if let Ok(r) = Role::parse(name) {
            return Ok(r);
        }
        self.custom.get(name).cloned().ok_or_else(|| {
            let mut known: Vec<&str> = BUILTIN_ROLES.to_vec();
            known.extend(self.custom.keys().map(String::as_str));
            Error::Invalid(format!(
                "unknown role '{name}' (known roles: {}; custom roles are defined in [security.roles.<name>])",
                known.join(", ")
            ))
        })
    }

    /// Custom role names.
    pub fn custom_names(&self) -> Vec<String> {
        self.custom.keys().cloned().collect()
    }
}

/// How a principal proved its identity. Every source maps to the same [`Principal`]
/// (role, collection scopes, row filter), so authorization, row policies, quotas and
/// audit do not care which one it was; SAML, LDAP and mTLS identities slot in here as
/// further variants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum AuthMethod {
    /// An `adb_...` API key: one factor.
    ApiKey,
    /// A JWT from this OIDC issuer, verified against its JWKS.
    Oidc { issuer: String },
    /// A TLS client certificate verified against the server's client CA (`subject` and
    /// `issuer` as distinguished names): one factor.
    Mtls { subject: String, issuer: String },
}

/// An authenticated identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    /// `key:<id>` for API keys, `oidc:<sub>` for OIDC tokens, `mtls:<CN or SAN>` for
    /// client certificates.
    pub id: String,
    pub name: String,
    pub role: Role,
    /// Collections this principal may touch; empty = all.
    pub collections: Vec<String>,
    /// Row-level policy: a filter expression every item this principal reads, writes
    /// or deletes must satisfy (e.g. `tenant = "acme"`), whatever filter it sends.
    pub row_filter: Option<String>,
    pub auth: AuthMethod,
    /// Whether the login proved several factors (OIDC `amr`/`acr`); see [`MfaPolicy`].
    pub mfa: bool,
}

impl Principal {
    /// Whether nothing is hidden from this principal: every collection readable (a
    /// built-in role, or a custom role with a grant on `*`), no collection scope and no
    /// row policy. Surfaces that mix several collections' data (events, workflow runs,
    /// server status) show everything only to such principals; the others see what
    /// concerns the collections they may read, or what they started themselves.
    pub fn sees_everything(&self) -> bool {
        // Agent memories are private to their agents and admins, so only admins over
        // every collection (built-in admin, or admin on `*`) see everything.
        self.collections.is_empty() && self.row_filter.is_none() && self.role.allows(Action::Admin, "")
    }

    /// Whether this principal may touch the agent memory collection `collection`: its
    /// own (`memory-<its id>`), one its key scope names, one a custom role grants by a
    /// pattern other than `*` (sharing is an explicit grant), or as an admin of it.
    fn may_use_memory(&self, collection: &str) -> bool {
        principal_memory_collection(&self.id) == collection
            || self.collections.iter().any(|c| c == collection)
            || self.role.allows(Action::Admin, collection)
            || self.role.custom().is_some_and(|c| {
                c.grants.iter().any(|g| g.collections.iter().any(|p| p != "*" && pattern_matches(p, collection)))
            })
    }

    /// Whether this principal may read every one of `collections` in full: allowed to
    /// read each, and no row policy (a surface that names items regardless of their
    /// payload — an ingest summary, a standing-query match — cannot apply one).
    pub fn reads_all_of(&self, collections: &[String]) -> bool {
        if collections.is_empty() {
            return self.sees_everything();
        }
        self.row_filter.is_none() && collections.iter().all(|c| self.authorize(Action::Read, c).is_ok())
    }

    /// Decide whether `self` may do `action` on `collection` ("" = not collection-specific).
    pub fn authorize(&self, action: Action, collection: &str) -> Result<(), String> {
        if !self.role.allows(action, collection) {
            let on = match (&self.role, collection) {
                (Role::Custom(_), c) if !c.is_empty() => format!(" on collection '{c}'"),
                (Role::Custom(_), _) => " server-wide".to_string(),
                _ => String::new(),
            };
            return Err(format!(
                "{} '{}' (role {}) may not {}{on}",
                self.id,
                self.name,
                self.role.as_str(),
                action.as_str()
            ));
        }
        if !collection.is_empty() && !self.collections.is_empty() && !self.collections.iter().any(|c| c == collection) {
            return Err(format!("{} '{}' has no access to collection '{collection}'", self.id, self.name));
        }
        // A queue's messages carry no payload a row policy could filter: a principal with
        // one reaches only the queues its scope names explicitly.
        if collection.starts_with(QUEUE_PREFIX)
            && self.row_filter.is_some()
            && !self.collections.iter().any(|c| c == collection)
        {
            return Err(format!("{} '{}' has a row policy and no scope for {collection}", self.id, self.name));
        }
        if is_memory_collection(collection) && !self.may_use_memory(collection) {
            return Err(format!(
                "{} '{}' may not {} '{collection}': agent memory is private to its agent and admins; share it \
                 with a key scoped to it (--collection {collection}) or a role granting it by name",
                self.id,
                self.name,
                action.as_str()
            ));
        }
        if collection.is_empty() && !self.collections.is_empty() && action == Action::Admin {
            return Err(format!(
                "{} '{}' is scoped to collections and may not perform server-wide admin actions",
                self.id, self.name
            ));
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    NotFound(String),
    #[error("security file {path}: {reason}")]
    Storage { path: std::path::PathBuf, reason: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_and_scopes() {
        let p = Principal {
            id: "key:1".into(),
            name: "r".into(),
            role: Role::Reader,
            collections: vec!["a".into()],
            row_filter: None,
            auth: AuthMethod::ApiKey,
            mfa: false,
        };
        assert!(p.authorize(Action::Read, "a").is_ok());
        assert!(p.authorize(Action::Read, "b").unwrap_err().contains("no access to collection 'b'"));
        assert!(p.authorize(Action::Write, "a").unwrap_err().contains("may not write"));
        let w = Principal { role: Role::Writer, collections: vec![], ..p.clone() };
        assert!(w.authorize(Action::Write, "anything").is_ok());
        assert!(w.authorize(Action::Admin, "").is_err());
        let a = Principal { role: Role::Admin, collections: vec![], ..p.clone() };
        assert!(a.authorize(Action::Admin, "").is_ok());
    }

    #[test]
    fn agent_memory_is_private_unless_granted() {
        let reader = Principal { role: Role::Reader, collections: vec![], ..principal() };
        let writer = Principal { id: "key:w".into(), role: Role::Writer, ..reader.clone() };
        let admin = Principal { id: "key:a".into(), role: Role::Admin, ..reader.clone() };
        assert!(is_memory_collection("agent_scout_memory") && is_memory_collection("memory-key-1"));
        assert!(!is_memory_collection("docs") && !is_memory_collection("agent_x") && !is_memory_collection("memo"));
        assert_eq!(principal_memory_collection("key:1"), "memory-key-1");
        // Its own memory: yes; another's or an agent's: no, however unscoped the key.
        assert!(reader.authorize(Action::Read, "memory-key-1").is_ok());
        let e = writer.authorize(Action::Read, "memory-key-1").unwrap_err();
        assert!(e.contains("private to its agent"), "{e}");
        assert!(writer.authorize(Action::Write, "agent_scout_memory").is_err());
        assert!(writer.authorize(Action::Write, "docs").is_ok());
        assert!(admin.authorize(Action::Read, "agent_scout_memory").is_ok());
        // Shared on purpose: a key scoped to it, or a role granting it by name/pattern.
        let scoped = Principal { collections: vec!["agent_scout_memory".into()], ..reader.clone() };
        assert!(scoped.authorize(Action::Read, "agent_scout_memory").is_ok());
        let t = RoleTable::new(vec![CustomRole {
            name: "mem".into(),
            grants: vec![
                Grant::new(vec![Action::Read], vec!["agent_*".into()]).unwrap(),
                Grant::new(vec![Action::Write], vec!["*".into()]).unwrap(),
            ],
            storage_quota_bytes: None,
            storage_quota_items: None,
        }])
        .unwrap();
        let custom = Principal { role: t.resolve("mem").unwrap(), ..reader.clone() };
        assert!(custom.authorize(Action::Read, "agent_scout_memory").is_ok());
        assert!(custom.authorize(Action::Read, "memory-key-9").is_err(), "'*' alone does not share memory");
        // Only admins over everything see everything.
        assert!(admin.sees_everything() && !writer.sees_everything() && !reader.sees_everything());
    }

    fn tenant_table() -> RoleTable {
        RoleTable::new(vec![CustomRole {
            name: "tenant_a_writer".into(),
            grants: vec![
                Grant::new(vec![Action::Write], vec!["a*".into()]).unwrap(),
                Grant::new(vec![Action::Read], vec!["shared".into()]).unwrap(),
            ],
            storage_quota_bytes: None,
            storage_quota_items: None,
        }])
        .unwrap()
    }

    #[test]
    fn patterns() {
        assert!(pattern_matches("*", "x"));
        assert!(pattern_matches("a*", "a") && pattern_matches("a*", "alpha"));
        assert!(!pattern_matches("a*", "beta"));
        assert!(pattern_matches("shared", "shared") && !pattern_matches("shared", "shared2"));
        assert!(validate_pattern("a*b").is_err() && validate_pattern("**").is_err() && validate_pattern("").is_err());
        assert!(validate_pattern("*").is_ok() && validate_pattern("logs_*").is_ok());
    }

    #[test]
    fn custom_roles_resolve_and_authorize() {
        let t = tenant_table();
        assert_eq!(t.resolve("admin").unwrap(), Role::Admin);
        let err = t.resolve("nope").unwrap_err().to_string();
        assert!(err.contains("unknown role 'nope'") && err.contains("tenant_a_writer"), "{err}");
        let role = t.resolve("tenant_a_writer").unwrap();
        assert_eq!(role.as_str(), "tenant_a_writer");
        assert_eq!(serde_json::to_string(&role).unwrap(), "\"tenant_a_writer\"");
        let p = Principal { role, collections: vec![], ..principal() };
        assert!(p.authorize(Action::Write, "a1").is_ok());
        assert!(p.authorize(Action::Read, "a1").is_ok(), "write includes read");
        assert!(p.authorize(Action::Read, "shared").is_ok());
        let e = p.authorize(Action::Write, "shared").unwrap_err();
        assert!(e.contains("role tenant_a_writer") && e.contains("may not write on collection 'shared'"), "{e}");
        assert!(p.authorize(Action::Read, "b").is_err());
        assert!(p.authorize(Action::Admin, "a1").is_err());
        assert!(p.authorize(Action::Read, "").is_ok(), "listings are filtered per collection");
        assert!(p.authorize(Action::Admin, "").unwrap_err().contains("may not admin server-wide"));
        // admin on '*' allows server-wide admin actions.
        let ops = RoleTable::new(vec![CustomRole {
            name: "ops".into(),
            grants: vec![Grant::new(vec![Action::Admin], vec!["*".into()]).unwrap()],
            storage_quota_bytes: None,
            storage_quota_items: None,
        }])
        .unwrap()
        .resolve("ops")
        .unwrap();
        assert!(ops.allows(Action::Admin, "") && ops.allows(Action::Write, "x"));
    }

    #[test]
    fn role_table_refuses_bad_definitions() {
        let mk = |name: &str, grants: Vec<Grant>| CustomRole {
            name: name.into(),
            grants,
            storage_quota_bytes: None,
            storage_quota_items: None,
        };
        let g = || vec![Grant::new(vec![Action::Read], vec!["*".into()]).unwrap()];
        assert!(RoleTable::new(vec![mk("admin", g())]).unwrap_err().to_string().contains("built in"));
        assert!(RoleTable::new(vec![mk("x", vec![])]).unwrap_err().to_string().contains("no grants"));
        assert!(RoleTable::new(vec![mk("bad name", g())]).is_err());
        assert!(Grant::new(vec![], vec!["a".into()]).is_err());
        assert!(Action::parse("delete").is_err() && Action::parse("write").unwrap() == Action::Write);
    }

    fn principal() -> Principal {
        Principal {
            id: "key:1".into(),
            name: "t".into(),
            role: Role::Reader,
            collections: vec![],
            row_filter: None,
            auth: AuthMethod::ApiKey,
            mfa: false,
        }
    }
}
