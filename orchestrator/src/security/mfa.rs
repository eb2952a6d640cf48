//! Multi-factor policy: chosen actions need a principal whose login proved several
//! factors (an OIDC token whose `amr` or `acr` says so). API keys are one factor, so
//! they satisfy such a policy only when the operator exempts them explicitly.

use super::{Action, AuthMethod, Error, Principal};

/// Names a policy may use besides the action classes `read`, `write` and `admin`:
/// the operations that go through authorization, written in snake_case (the gRPC
/// method names `DropCollection` or `dropcollection` match too).
pub const OPERATIONS: &[&str] = &[
    "search",
    "search_batch",
    "get",
    "count",
    "describe_collection",
    "upsert",
    "delete",
    "ingest",
    "flush",
    "create_collection",
    "drop_collection",
    "create_key",
    "list_keys",
    "revoke_key",
    "inject_fault",
    "set_log_level",
];

/// The message of every refusal by this policy.
pub const MFA_REQUIRED: &str = "this action requires multi-factor authentication";

fn normalise(s: &str) -> String {
    s.chars().filter(|c| *c != '_' && *c != '-').flat_map(char::to_lowercase).collect()
}

#[derive(Debug, Clone, Default)]
pub struct MfaPolicy {
    /// Normalised action classes and operation names.
    required_for: Vec<String>,
    exempt_api_keys: bool,
}

impl MfaPolicy {
    /// `required_for` holds `read`, `write`, `admin` and/or names from [`OPERATIONS`];
    /// anything else is refused, so a typo cannot silently switch the policy off.
    pub fn new(required_for: &[String], exempt_api_keys: bool) -> Result<MfaPolicy, Error> {
        let known: Vec<String> = ["read", "write", "admin"].iter().chain(OPERATIONS).map(|s| normalise(s)).collect();
        let mut out = Vec::new();
        for raw in required_for.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
            let n = normalise(raw);
            if !known.contains(&n) {
                return Err(Error::Invalid(format!(
                    "security.mfa_required_for: unknown action '{raw}' (read, write, admin, or one of {})",
                    OPERATIONS.join(", ")
                )));
            }
            out.push(n);
        }
        Ok(MfaPolicy { required_for: out, exempt_api_keys })
    }

    pub fn is_empty(&self) -> bool {
        self.required_for.is_empty()
    }

    /// Whether doing `action` through `operation` (e.g. `Delete`) needs MFA.
    pub fn requires(&self, action: Action, operation: &str) -> bool {
        let op = normalise(operation);
        self.required_for.iter().any(|r| *r == action.as_str() || *r == op)
    }

    /// Check `p` against the policy.
    pub fn check(&self, p: &Principal, action: Action, operation: &str) -> Result<(), String> {
        if !self.requires(action, operation) || p.mfa {
            return Ok(());
        }
        if self.exempt_api_keys && p.auth == AuthMethod::ApiKey {
            return Ok(());
        }
        Err(format!("{MFA_REQUIRED} ({} '{}' did not prove a second factor)", p.id, p.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::Role;

    fn who(auth: AuthMethod, mfa: bool) -> Principal {
        Principal {
            id: "oidc:alice".into(),
            name: "alice".into(),
            role: Role::Admin,
            collections: vec![],
            row_filter: None,
            auth,
            mfa,
        }
    }

    #[test]
    fn policy() {
        let p = MfaPolicy::new(&["admin".into(), "Delete".into()], false).unwrap();
        let oidc = AuthMethod::Oidc { issuer: "https://idp".into() };
        assert!(p.requires(Action::Admin, "CreateCollection"));
        assert!(p.requires(Action::Write, "Delete"));
        assert!(!p.requires(Action::Write, "Upsert"));
        assert!(p.check(&who(oidc.clone(), false), Action::Write, "Upsert").is_ok());
        assert!(p.check(&who(oidc.clone(), false), Action::Write, "Delete").unwrap_err().contains(MFA_REQUIRED));
        assert!(p.check(&who(oidc, true), Action::Write, "Delete").is_ok());
        assert!(p.check(&who(AuthMethod::ApiKey, false), Action::Admin, "CreateKey").is_err());
        let exempt = MfaPolicy::new(&["drop_collection".into()], true).unwrap();
        assert!(exempt.check(&who(AuthMethod::ApiKey, false), Action::Admin, "DropCollection").is_ok());
        assert!(MfaPolicy::new(&["delet".into()], false).unwrap_err().to_string().contains("unknown action 'delet'"));
        assert!(MfaPolicy::new(&[], false).unwrap().is_empty());
    }
}
