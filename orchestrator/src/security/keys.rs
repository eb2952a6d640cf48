//! API keys: `adb_<id>_<secret>`. Only an Argon2id hash of the secret is stored, in
//! `<data dir>/security/api-keys.json` (written atomically, mode 0600). Verifying a
//! key costs one Argon2 evaluation; successful verifications are cached by the key's
//! SHA-256 so requests after the first are cheap, and a revocation clears the cache.

use super::{AuthMethod, Error, Principal, Role, RoleTable};
use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use parking_lot::RwLock;
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    /// Role name: reader, writer, admin or a custom role (`[security.roles.<name>]`),
    /// resolved against the server's role table on every verification.
    pub role: String,
    /// Empty = every collection.
    #[serde(default)]
    pub collections: Vec<String>,
    /// Argon2id PHC string of the secret part.
    pub hash: String,
    /// Row-level policy (filter expression) applied to everything the key touches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_filter: Option<String>,
    pub created_unix: u64,
    #[serde(default)]
    pub revoked: bool,
}

#[derive(Serialize, Deserialize, Default)]
struct KeyFile {
    version: u32,
    keys: Vec<ApiKey>,
}

pub struct KeyStore {
    path: PathBuf,
    keys: RwLock<Vec<ApiKey>>,
    /// sha256(full key) -> key id, for keys verified since start.
    verified: RwLock<HashMap<[u8; 32], String>>,
    roles: RwLock<Arc<RoleTable>>,
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The Argon2id PHC string of a key's secret part (what the store keeps).
fn hash_secret(secret: &str) -> Result<String, Error> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .map_err(|e| Error::Invalid(format!("hashing failed: {e}")))?
        .to_string())
}

fn random_token(len: usize) -> String {
    const ALPHA: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::rng();
    (0..len).map(|_| ALPHA[rng.random_range(0..ALPHA.len())] as char).collect()
}

impl KeyStore {
    pub fn open(dir: &Path) -> Result<KeyStore, Error> {
        let path = dir.join("api-keys.json");
        let keys = match std::fs::read_to_string(&path) {
            Ok(t) => {
                let f: KeyFile = serde_json::from_str(&t)
                    .map_err(|e| Error::Storage { path: path.clone(), reason: e.to_string() })?;
                if f.version != 1 {
                    return Err(Error::Storage { path, reason: format!("unsupported version {}", f.version) });
                }
                f.keys
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(Error::Storage { path, reason: e.to_string() }),
        };
        Ok(KeyStore {
            path,
            keys: RwLock::new(keys),
            verified: RwLock::new(HashMap::new()),
            roles: RwLock::new(Arc::new(RoleTable::default())),
        })
    }

    /// The roles keys may name (default: the built-ins only).
    pub fn set_roles(&self, roles: Arc<RoleTable>) {
        *self.roles.write() = roles;
    }

    /// Active keys whose role the role table does not define (e.g. a custom role removed
    /// from the configuration): `(key id, role)`. Such keys fail verification.
    pub fn undefined_roles(&self) -> Vec<(String, String)> {
        let roles = self.roles.read().clone();
        self.keys
            .read()
            .iter()
            .filter(|k| !k.revoked && roles.resolve(&k.role).is_err())
            .map(|k| (k.id.clone(), k.role.clone()))
            .collect()
    }

    fn save(&self, keys: &[ApiKey]) -> Result<(), Error> {
        let err = |e: std::io::Error| Error::Storage { path: self.path.clone(), reason: e.to_string() };
        if let Some(d) = self.path.parent() {
            std::fs::create_dir_all(d).map_err(err)?;
        }
        let tmp = self.path.with_extension("tmp");
        let body = serde_json::to_vec_pretty(&KeyFile { version: 1, keys: keys.to_vec() }).expect("serialisable");
        {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(err)?;
            f.write_all(&body).map_err(err)?;
            f.sync_all().map_err(err)?;
        }
        std::fs::rename(&tmp, &self.path).map_err(err)
    }

    pub fn is_empty(&self) -> bool {
        self.keys.read().iter().all(|k| k.revoked)
    }

    /// Create a key; returns its record and the full secret (shown once, never stored).
    pub fn create(
        &self,
        name: &str,
        role: &Role,
        collections: Vec<String>,
        row_filter: Option<String>,
    ) -> Result<(ApiKey, String), Error> {
        if name.is_empty() || name.len() > 128 {
            return Err(Error::Invalid("key name must be 1 to 128 characters".into()));
        }
        let row_filter = row_filter.filter(|f| !f.trim().is_empty());
        if let Some(f) = &row_filter {
            agentdb_engine::filter::parse(f).map_err(|e| Error::Invalid(format!("row filter: {e}")))?;
        }
        let id = random_token(12).to_lowercase();
        let secret = random_token(40);
        let hash = hash_secret(&secret)?;
        let key = ApiKey {
            id: id.clone(),
            name: name.to_string(),
            role: role.as_str().to_string(),
            collections,
            hash,
            row_filter,
            created_unix: now(),
            revoked: false,
        };
        let mut keys = self.keys.write();
        keys.push(key.clone());
        if let Err(e) = self.save(&keys) {
            keys.pop();
            return Err(e);
        }
        Ok((key, format!("adb_{id}_{secret}")))
    }

    /// Import a key made elsewhere (`adb_<id>_<secret>`, e.g. by the Kubernetes operator
    /// into a Secret) with this name and role, unless a key with its id is known already
    /// (live or revoked: a revoked key is never brought back). Returns whether it was added.
    pub fn import(&self, name: &str, role: &Role, presented: &str) -> Result<bool, Error> {
        let presented = presented.trim();
        let id = Self::presented_id(presented)
            .ok_or_else(|| Error::Invalid("a bootstrap key must look like adb_<id>_<secret>".into()))?;
        let secret = &presented[4 + id.len() + 1..];
        if secret.len() < 16 {
            return Err(Error::Invalid("a bootstrap key's secret must be at least 16 characters".into()));
        }
        if self.contains(id) {
            return Ok(false);
        }
        let hash = hash_secret(secret)?;
        let key = ApiKey {
            id: id.to_string(),
            name: name.to_string(),
            role: role.as_str().to_string(),
            collections: Vec::new(),
            hash,
            row_filter: None,
            created_unix: now(),
            revoked: false,
        };
        self.merge(key)
    }

    pub fn list(&self) -> Vec<ApiKey> {
        self.keys.read().clone()
    }

    pub fn revoke(&self, id: &str) -> Result<ApiKey, Error> {
        let mut keys = self.keys.write();
        let k = keys
            .iter_mut()
            .find(|k| k.id == id)
            .ok_or_else(|| Error::NotFound(format!("no API key with id '{id}'")))?;
        k.revoked = true;
        let out = k.clone();
        self.save(&keys)?;
        self.verified.write().retain(|_, v| v != id);
        Ok(out)
    }

    /// Whether a key with this id is known here (live or revoked).
    pub fn contains(&self, id: &str) -> bool {
        self.keys.read().iter().any(|k| k.id == id)
    }

    /// The record of key `id` (live or revoked).
    pub fn get(&self, id: &str) -> Option<ApiKey> {
        self.keys.read().iter().find(|k| k.id == id).cloned()
    }

    /// Merge a key record from another node of a cluster: an unknown key is added, a
    /// revocation is taken over (and is final: a revoked key never comes back), anything
    /// else about a known key is kept as it is (keys do not change after creation).
    /// Returns whether this store changed.
    pub fn merge(&self, other: ApiKey) -> Result<bool, Error> {
        if other.id.is_empty() || other.hash.is_empty() {
            return Err(Error::Invalid("a shared key record without id or hash".into()));
        }
        let mut keys = self.keys.write();
        match keys.iter().position(|k| k.id == other.id) {
            Some(i) if other.revoked && !keys[i].revoked => {
                keys[i].revoked = true;
                if let Err(e) = self.save(&keys) {
                    keys[i].revoked = false;
                    return Err(e);
                }
                self.verified.write().retain(|_, v| *v != other.id);
                Ok(true)
            }
            Some(_) => Ok(false),
            None => {
                keys.push(other);
                if let Err(e) = self.save(&keys) {
                    keys.pop();
                    return Err(e);
                }
                Ok(true)
            }
        }
    }

    /// The id part of a presented `adb_<id>_<secret>` key, if it has that shape.
    pub fn presented_id(presented: &str) -> Option<&str> {
        let (id, secret) = presented.strip_prefix("adb_")?.split_once('_')?;
        (!id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric()) && !secret.is_empty())
            .then_some(id)
    }

    /// Check a presented key; the error never says which part was wrong.
    pub fn verify(&self, presented: &str) -> Result<Principal, Error> {
        let denied = || Error::Unauthenticated("invalid or revoked API key".into());
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let cached = self.verified.read().get(&digest).cloned();
        let rest = presented.strip_prefix("adb_").ok_or_else(denied)?;
        let (id, secret) = rest.split_once('_').ok_or_else(denied)?;
        let key = self.keys.read().iter().find(|k| k.id == id).cloned().ok_or_else(denied)?;
        if key.revoked {
            return Err(denied());
        }
        if cached.as_deref() != Some(id) {
            let parsed = PasswordHash::new(&key.hash).map_err(|_| denied())?;
            Argon2::default().verify_password(secret.as_bytes(), &parsed).map_err(|_| denied())?;
            self.verified.write().insert(digest, id.to_string());
        }
        self.principal_of(key)
    }

    /// The principal of the live (not revoked) key `id`, without its secret: for work
    /// that acts later on behalf of whoever started it (workflow runs after a restart,
    /// triggered runs), so a revoked key or a changed role takes effect.
    pub fn principal(&self, id: &str) -> Result<Principal, Error> {
        let key = self.keys.read().iter().find(|k| k.id == id).cloned();
        match key {
            Some(k) if !k.revoked => self.principal_of(k),
            Some(_) => Err(Error::Unauthenticated(format!("API key {id} was revoked"))),
            None => Err(Error::Unauthenticated(format!("API key {id} no longer exists"))),
        }
    }

    fn principal_of(&self, key: ApiKey) -> Result<Principal, Error> {
        let role = self.roles.read().resolve(&key.role).map_err(|_| {
            Error::Unauthenticated(format!(
                "API key {} has role '{}', which the server configuration does not define",
                key.id, key.role
            ))
        })?;
        Ok(Principal {
            id: format!("key:{}", key.id),
            name: key.name,
            role,
            collections: key.collections,
            row_filter: key.row_filter,
            auth: AuthMethod::ApiKey,
            mfa: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_verify_revoke_persist() {
        let dir = tempfile::tempdir().unwrap();
        let ks = KeyStore::open(dir.path()).unwrap();
        assert!(ks.is_empty());
        let (k, secret) = ks.create("ci", &Role::Writer, vec!["a".into()], None).unwrap();
        assert!(
            ks.create("bad", &Role::Reader, vec![], Some("tenant = ".into())).is_err(),
            "row filters are validated"
        );
        let p = ks.verify(&secret).unwrap();
        assert_eq!((p.role, p.collections.clone()), (Role::Writer, vec!["a".to_string()]));
        assert_eq!(ks.list()[0].role, "writer");
        assert!(ks.verify(&secret).is_ok(), "cached path");
        let stored = std::fs::read_to_string(dir.path().join("api-keys.json")).unwrap();
        assert!(!stored.contains(secret.split('_').nth(2).unwrap()), "the secret is not stored");
        assert!(stored.contains("$argon2id$"));
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(dir.path().join("api-keys.json")).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        let forged = format!("adb_{}_{}", k.id, "x".repeat(40));
        assert!(ks.verify(&forged).is_err());
        assert!(ks.verify("nonsense").is_err());
        let ks2 = KeyStore::open(dir.path()).unwrap();
        assert!(ks2.verify(&secret).is_ok(), "keys persist");
        ks.revoke(&k.id).unwrap();
        assert!(ks.verify(&secret).is_err(), "revoked keys fail even when cached");
        assert!(KeyStore::open(dir.path()).unwrap().verify(&secret).is_err());
    }

    #[test]
    fn merging_records_of_other_nodes() {
        let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (a, b) = (KeyStore::open(d1.path()).unwrap(), KeyStore::open(d2.path()).unwrap());
        let (k, secret) = a.create("shared", &Role::Reader, vec![], None).unwrap();
        assert_eq!(KeyStore::presented_id(&secret), Some(k.id.as_str()));
        assert_eq!(KeyStore::presented_id("adb_x"), None);
        assert!(b.verify(&secret).is_err() && !b.contains(&k.id));
        assert!(b.merge(k.clone()).unwrap(), "an unknown key is added");
        assert!(!b.merge(k.clone()).unwrap(), "merging twice changes nothing");
        assert_eq!(b.verify(&secret).unwrap().id, format!("key:{}", k.id));
        assert!(KeyStore::open(d2.path()).unwrap().verify(&secret).is_ok(), "merged keys persist");
        // A revocation elsewhere is taken over, even with the verification cached here...
        let revoked = a.revoke(&k.id).unwrap();
        assert!(b.merge(revoked.clone()).unwrap());
        assert!(b.verify(&secret).is_err());
        // ...and is final: the live record arriving late does not bring the key back.
        assert!(!b.merge(k.clone()).unwrap());
        assert!(b.verify(&secret).is_err() && b.get(&k.id).unwrap().revoked);
        let mut bad = k;
        bad.hash.clear();
        assert!(b.merge(bad).is_err());
    }

    #[test]
    fn custom_role_keys() {
        use crate::security::{Action, CustomRole, Grant};
        let dir = tempfile::tempdir().unwrap();
        let table = Arc::new(
            RoleTable::new(vec![CustomRole {
                name: "tenant".into(),
                grants: vec![Grant::new(vec![Action::Write], vec!["t_*".into()]).unwrap()],
                storage_quota_bytes: None,
                storage_quota_items: None,
            }])
            .unwrap(),
        );
        let ks = KeyStore::open(dir.path()).unwrap();
        ks.set_roles(table.clone());
        let (_, secret) = ks.create("t", &table.resolve("tenant").unwrap(), vec![], None).unwrap();
        let p = ks.verify(&secret).unwrap();
        assert_eq!(p.role.as_str(), "tenant");
        assert!(p.authorize(Action::Write, "t_1").is_ok() && p.authorize(Action::Write, "u").is_err());
        // The role removed from the configuration: the key no longer verifies.
        let ks2 = KeyStore::open(dir.path()).unwrap();
        assert_eq!(ks2.undefined_roles().len(), 1);
        assert!(ks2.verify(&secret).unwrap_err().to_string().contains("role 'tenant'"));
    }
}
