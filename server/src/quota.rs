//! Per-principal quotas.
//!
//! Request rate: a token bucket per principal (API key id, or the peer address when
//! authentication is off). Over the limit a request gets RESOURCE_EXHAUSTED with a
//! `retry-after-ms` hint, in the metadata and the message.
//!
//! Storage: bytes and items each principal has written (upsert, ingest), kept in
//! `<data dir>/security/storage-usage.json` (rewritten atomically on every change, so it
//! survives restarts). Replacing or deleting items by id credits their size back to the
//! principal doing it. A write that would cross the principal's quota is refused with
//! RESOURCE_EXHAUSTED naming the quota, the usage and the limit; storage quotas do not
//! refill over time, so the hint is to delete data or ask for a higher quota (there is no
//! `retry-after-ms`: retrying the same write later fails the same way).

use agentdb_orchestrator::security::Role;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

pub struct RateLimiter {
    per_sec: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

/// Buckets kept before idle ones are pruned (bounded memory under many principals).
const MAX_BUCKETS: usize = 100_000;

impl RateLimiter {
    /// `None` when `per_sec` is 0 (no limit).
    pub fn new(per_sec: f64, burst: f64) -> Option<RateLimiter> {
        (per_sec > 0.0).then(|| RateLimiter { per_sec, burst: burst.max(1.0), buckets: Mutex::new(HashMap::new()) })
    }

    /// Take one token for `who`; on refusal, the milliseconds until one is available.
    pub fn check(&self, who: &str) -> Result<(), u64> {
        let now = Instant::now();
        let mut b = self.buckets.lock();
        if b.len() >= MAX_BUCKETS && !b.contains_key(who) {
            let (per_sec, burst) = (self.per_sec, self.burst);
            b.retain(|_, (tokens, at)| *tokens + now.duration_since(*at).as_secs_f64() * per_sec < burst);
        }
        let (tokens, at) = b.entry(who.to_string()).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.per_sec).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err((((1.0 - *tokens) / self.per_sec) * 1000.0).ceil() as u64)
        }
    }

    pub fn per_sec(&self) -> f64 {
        self.per_sec
    }
}

/// A principal's storage limits; 0 = no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limit {
    pub bytes: u64,
    pub items: u64,
}

/// A principal's recorded storage: its usage and the limits that applied at its last write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub bytes: u64,
    pub items: u64,
    #[serde(default)]
    pub limit_bytes: u64,
    #[serde(default)]
    pub limit_items: u64,
}

#[derive(Serialize, Deserialize, Default)]
struct UsageFile {
    version: u32,
    principals: BTreeMap<String, Usage>,
}

pub const USAGE_FILE: &str = "storage-usage.json";

/// Bytes an item counts for: its id, its payload as JSON and 4 bytes per vector component.
pub fn item_bytes(id: &str, vectors: &BTreeMap<String, Vec<f32>>, payload: &serde_json::Value) -> u64 {
    let payload = if payload.is_null() { 0 } else { payload.to_string().len() };
    (id.len() + payload + vectors.values().map(|v| 4 * v.len()).sum::<usize>()) as u64
}

/// The usage file under `dir` (`<data dir>/security`); empty when there is none yet.
pub fn read_usage(dir: &Path) -> anyhow::Result<BTreeMap<String, Usage>> {
    let path = dir.join(USAGE_FILE);
    match std::fs::read_to_string(&path) {
        Ok(t) => {
            let f: UsageFile = serde_json::from_str(&t).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            if f.version != 1 {
                anyhow::bail!("{}: unsupported version {}", path.display(), f.version);
            }
            Ok(f.principals)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(anyhow::anyhow!("{}: {e}", path.display())),
    }
}

pub struct StorageQuotas {
    path: PathBuf,
    default: Limit,
    usage: Mutex<BTreeMap<String, Usage>>,
    /// Cluster mode: usage lives in the cluster (every node charges the same record).
    shared: std::sync::OnceLock<std::sync::Arc<dyn UsageStore>>,
}

/// Where usage lives when it is not this node's file (cluster mode: the cluster's KV,
/// `cluster_rpc.rs`), with compare-and-set so that nodes charging at once add up.
pub trait UsageStore: Send + Sync {
    /// `who`'s usage and its version (None: no record yet).
    fn read(&self, who: &str) -> Result<(Usage, Option<u64>), String>;
    /// Store `u` if the record is still at `version`; `Ok(false)`: it changed meanwhile.
    fn write(&self, who: &str, u: &Usage, version: Option<u64>) -> Result<bool, String>;
}

impl StorageQuotas {
    pub fn open(dir: &Path, default: Limit) -> anyhow::Result<StorageQuotas> {
        Ok(StorageQuotas {
            path: dir.join(USAGE_FILE),
            default,
            usage: Mutex::new(read_usage(dir)?),
            shared: std::sync::OnceLock::new(),
        })
    }

    /// The limits for a principal with `role`: the role's overrides, else the default.
    pub fn limit_for(&self, role: &Role) -> Limit {
        let c = role.custom();
        Limit {
            bytes: c.and_then(|c| c.storage_quota_bytes).unwrap_or(self.default.bytes),
            items: c.and_then(|c| c.storage_quota_items).unwrap_or(self.default.items),
        }
    }

    #[cfg(test)]
    pub fn usage(&self, who: &str) -> Usage {
        self.usage.lock().get(who).copied().unwrap_or_default()
    }

    /// Add `bytes`/`items` (negative: credit) to `who`'s usage. With `enforce`, a growth
    /// that would cross a limit is refused (the message names quota, usage and limit) and
    /// nothing changes; with `commit` false, only the check runs.
    pub fn charge(
        &self,
        who: &str,
        limit: Limit,
        bytes: i64,
        items: i64,
        enforce: bool,
        commit: bool,
    ) -> Result<(), String> {
        if let Some(shared) = self.shared.get() {
            // Read, check, compare-and-set; another node's charge in between: again.
            for _ in 0..50 {
                let (cur, version) = shared.read(who).map_err(|e| format!("storage usage of {who}: {e}"))?;
                let next = Self::next(who, cur, limit, bytes, items, enforce)?;
                if !commit || (bytes == 0 && items == 0) {
                    return Ok(());
                }
                if shared.write(who, &next, version).map_err(|e| format!("storage usage of {who}: {e}"))? {
                    return Ok(());
                }
            }
            return Err(format!("storage usage of {who}: too many concurrent changes; retry"));
        }
        let mut all = self.usage.lock();
        let cur = all.get(who).copied().unwrap_or_default();
        let next = Self::next(who, cur, limit, bytes, items, enforce)?;
        if !commit || (bytes == 0 && items == 0) {
            return Ok(());
        }
        all.insert(who.to_string(), next);
        if let Err(e) = self.save(&all) {
            tracing::error!(error = %e, file = %self.path.display(), "cannot save storage usage");
        }
        Ok(())
    }

    /// `cur` plus the change, or the refusal when `enforce` and it crosses a limit.
    fn next(who: &str, cur: Usage, limit: Limit, bytes: i64, items: i64, enforce: bool) -> Result<Usage, String> {
        let add = |v: u64, d: i64| if d >= 0 { v.saturating_add(d as u64) } else { v.saturating_sub(d.unsigned_abs()) };
        let (nb, ni) = (add(cur.bytes, bytes), add(cur.items, items));
        if enforce {
            let hint = "delete data or ask an operator for a higher quota; storage quotas do not refill over time";
            if bytes > 0 && limit.bytes > 0 && nb > limit.bytes {
                return Err(format!(
                    "storage quota exceeded for {who}: writing {bytes} more bytes would bring its usage from {} to {nb} bytes, over its limit of {} bytes (storage_quota_bytes); {hint}",
                    cur.bytes, limit.bytes
                ));
            }
            if items > 0 && limit.items > 0 && ni > limit.items {
                return Err(format!(
                    "storage quota exceeded for {who}: writing {items} more items would bring its usage from {} to {ni} items, over its limit of {} items (storage_quota_items); {hint}",
                    cur.items, limit.items
                ));
            }
        }
        Ok(Usage { bytes: nb, items: ni, limit_bytes: limit.bytes, limit_items: limit.items })
    }

    /// Cluster mode: charge usage to `shared` from now on. What this node's file holds is
    /// added to it once (a marker file remembers that), so the cluster's figure covers
    /// what was written here before the node joined.
    pub fn share(&self, shared: std::sync::Arc<dyn UsageStore>) -> Result<(), String> {
        let marker = self.path.with_extension("json.shared");
        if !marker.exists() {
            let local = self.usage.lock().clone();
            let _ = self.shared.set(shared.clone());
            for (who, u) in local {
                let limit = Limit { bytes: u.limit_bytes, items: u.limit_items };
                self.charge(&who, limit, u.bytes as i64, u.items as i64, false, true)?;
            }
            std::fs::write(&marker, b"").map_err(|e| format!("{}: {e}", marker.display()))?;
        }
        let _ = self.shared.set(shared);
        Ok(())
    }

    fn save(&self, all: &BTreeMap<String, Usage>) -> std::io::Result<()> {
        use std::io::Write;
        if let Some(d) = self.path.parent() {
            std::fs::create_dir_all(d)?;
        }
        let tmp = self.path.with_extension("tmp");
        let body = serde_json::to_vec_pretty(&UsageFile { version: 1, principals: all.clone() }).expect("serialisable");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&body)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_quota_charges_refuses_credits_and_persists() {
        let dir = tempfile::tempdir().unwrap();
        let q = StorageQuotas::open(dir.path(), Limit { bytes: 100, items: 0 }).unwrap();
        let lim = q.limit_for(&Role::Writer);
        assert_eq!(lim, Limit { bytes: 100, items: 0 });
        q.charge("key:a", lim, 60, 1, true, true).unwrap();
        let e = q.charge("key:a", lim, 50, 1, true, true).unwrap_err();
        assert!(e.contains("key:a") && e.contains("from 60 to 110 bytes") && e.contains("limit of 100 bytes"), "{e}");
        assert_eq!(q.usage("key:a").bytes, 60, "a refused write charges nothing");
        q.charge("key:b", lim, 90, 1, true, true).unwrap();
        q.charge("key:a", lim, -30, -1, true, true).unwrap();
        q.charge("key:a", lim, 50, 1, true, false).unwrap();
        assert_eq!(q.usage("key:a").bytes, 30, "a check alone charges nothing");
        let again = StorageQuotas::open(dir.path(), Limit::default()).unwrap();
        assert_eq!((again.usage("key:a").bytes, again.usage("key:b").bytes), (30, 90));
        assert_eq!(read_usage(dir.path()).unwrap()["key:b"].limit_bytes, 100);
        q.charge("key:a", lim, -1000, -5, true, true).unwrap();
        assert_eq!(q.usage("key:a"), Usage { bytes: 0, items: 0, limit_bytes: 100, limit_items: 0 });
        let v: BTreeMap<String, Vec<f32>> = [(String::new(), vec![0.0; 4])].into();
        assert_eq!(item_bytes("ab", &v, &serde_json::json!({"a": 1})), 2 + 7 + 16);
    }

    #[test]
    fn burst_then_refill() {
        let r = RateLimiter::new(10.0, 3.0).unwrap();
        assert!(r.check("a").is_ok() && r.check("a").is_ok() && r.check("a").is_ok());
        let wait = r.check("a").unwrap_err();
        assert!(wait > 0 && wait <= 100, "{wait}");
        assert!(r.check("b").is_ok(), "buckets are per principal");
        std::thread::sleep(std::time::Duration::from_millis(120));
        assert!(r.check("a").is_ok());
        assert!(RateLimiter::new(0.0, 5.0).is_none());
    }
}
