//! Security policy: principals, roles, API keys (stored hashed with Argon2id), OIDC/JWT
//! bearer tokens verified against a JWKS, the multi-factor policy and the hash-chained
//! audit log.

pub mod audit;
pub mod keys;
pub mod masking;
pub mod mfa;
pub mod oidc;

pub use audit::{AuditLog, AuditRecord};
pub use keys::{ApiKey, KeyStore};
pub use mfa::MfaPolicy;
pub use oidc::{OidcSettings, OidcVerifier};

use serde::{Deserialize, Serialize};

/// What a request does, for authorization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
}

/// Built-in roles: each includes the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Reader,
    Writer,
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Result<Role, Error> {
        match s {
            "reader" => Ok(Role::Reader),
            "writer" => Ok(Role::Writer),
            "admin" => Ok(Role::Admin),
            other => Err(Error::Invalid(format!("unknown role '{other}' (reader, writer or admin)"))),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Writer => "writer",
            Role::Admin => "admin",
        }
    }
    pub fn allows(self, a: Action) -> bool {
        match a {
            Action::Read => true,
            Action::Write => self >= Role::Writer,
            Action::Admin => self == Role::Admin,
        }
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
    /// Decide whether `self` may do `action` on `collection` ("" = not collection-specific).
    pub fn authorize(&self, action: Action, collection: &str) -> Result<(), String> {
        if !self.role.allows(action) {
            return Err(format!(
                "{} '{}' (role {}) may not {}",
                self.id,
                self.name,
                self.role.as_str(),
                action.as_str()
            ));
        }
        if !collection.is_empty() && !self.collections.is_empty() && !self.collections.iter().any(|c| c == collection) {
            return Err(format!("{} '{}' has no access to collection '{collection}'", self.id, self.name));
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
        let a = Principal { role: Role::Admin, collections: vec![], ..p };
        assert!(a.authorize(Action::Admin, "").is_ok());
    }
}
