//! Shared records: small documents every node keeps a copy of (API keys), in the KV
//! bucket `agentdb-shared`. A write is acknowledged once JetStream stored it; every node
//! watches the bucket and hands each record to the layer that owns it (which merges it
//! into its own store), so the cluster's nodes converge. Keys are `KIND.ID`.

use super::*;

impl Cluster {
    /// Store `value` under `key` (`KIND.ID`) for every node.
    pub async fn shared_put(&self, key: &str, value: Vec<u8>) -> Result<()> {
        let bound = self.cfg.rpc_timeout;
        tokio::time::timeout(bound, self.shared_kv.put(key, value.into()))
            .await
            .map_err(|_| {
                Error::Unavailable(format!("storing {key} in the cluster: no answer from NATS within {bound:?}"))
            })?
            .map_err(|e| Error::Unavailable(format!("storing {key} in the cluster: {e}")))?;
        Ok(())
    }

    /// The record under `key`, asked of JetStream now (not this node's copy).
    pub async fn shared_get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let bound = self.cfg.rpc_timeout;
        let v = tokio::time::timeout(bound, self.shared_kv.get(key))
            .await
            .map_err(|_| {
                Error::Unavailable(format!("reading {key} from the cluster: no answer from NATS within {bound:?}"))
            })?
            .map_err(|e| Error::Unavailable(format!("reading {key} from the cluster: {e}")))?;
        Ok(v.map(|b| b.to_vec()))
    }

    /// The record under `key` with its revision, asked of JetStream now.
    pub async fn shared_entry(&self, key: &str) -> Result<Option<(Vec<u8>, u64)>> {
        entry(&self.shared_kv, key, self.cfg.rpc_timeout).await
    }

    /// Store `value` under `key` if it is still at `revision` (None: only if absent);
    /// false when it changed meanwhile.
    pub async fn shared_cas(&self, key: &str, value: Vec<u8>, revision: Option<u64>) -> Result<bool> {
        Ok(cas(&self.shared_kv, key, value, revision, self.cfg.rpc_timeout).await?.is_some())
    }

    /// Remove the record under `key`.
    pub async fn shared_delete(&self, key: &str) -> Result<()> {
        let bound = self.cfg.rpc_timeout;
        tokio::time::timeout(bound, self.shared_kv.delete(key))
            .await
            .map_err(|_| {
                Error::Unavailable(format!("deleting {key} in the cluster: no answer from NATS within {bound:?}"))
            })?
            .map_err(|e| Error::Unavailable(format!("deleting {key} in the cluster: {e}")))?;
        Ok(())
    }

    /// Call `f(id, Some(value))` for every record of `kind` in the bucket and for every
    /// later write to one, `f(id, None)` when one is deleted, for as long as the process
    /// runs (the watch is re-opened after a lost connection and replays the bucket, so
    /// `f` must be idempotent).
    pub fn watch_shared(self: &Arc<Self>, kind: &str, f: Arc<dyn Fn(String, Option<Vec<u8>>) + Send + Sync>) {
        let me = self.clone();
        let prefix = format!("{kind}.");
        tokio::spawn(async move {
            loop {
                let mut w = match me.shared_kv.watch_with_history(format!("{prefix}>")).await {
                    Ok(w) => w,
                    Err(e) => {
                        tracing::warn!(error = %e, bucket = SHARED_BUCKET, "cluster: cannot watch shared records; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                };
                while let Some(e) = w.next().await {
                    let Ok(e) = e else { break };
                    let value = matches!(e.operation, kv::Operation::Put).then(|| e.value.to_vec());
                    if let Some(id) = e.key.strip_prefix(&prefix) {
                        f(id.to_string(), value);
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
    }
}

/// A record one node owns at a time (a workflow run), with its revision for
/// compare-and-set (bucket `agentdb-runs`).
#[derive(Debug, Clone)]
pub struct Owned {
    pub key: String,
    pub value: Vec<u8>,
    pub revision: u64,
}

impl Cluster {
    /// Whether `node` is up as far as this node can tell (its heartbeat moved within
    /// `node_ttl`), and this node has watched the cluster long enough to know.
    pub fn node_alive(&self, node: &str) -> bool {
        let st = self.state.read();
        self.alive(&st, node)
    }

    /// Whether this node has been a member long enough (twice `node_ttl`) for its view of
    /// who is alive to be complete.
    pub fn settled(&self) -> bool {
        now_ms().saturating_sub(self.started) > 2 * self.cfg.node_ttl.as_millis() as u64
    }

    pub async fn owned_get(&self, key: &str) -> Result<Option<Owned>> {
        let e = entry(&self.runs_kv, key, self.cfg.rpc_timeout).await?;
        Ok(e.map(|(value, revision)| Owned { key: key.to_string(), value, revision }))
    }

    /// Create (`revision` None: only if absent) or replace (only if still at `revision`)
    /// the record under `key`; its new revision. A lost race is [`Error::Conflict`].
    pub async fn owned_put(&self, key: &str, value: Vec<u8>, revision: Option<u64>) -> Result<u64> {
        cas(&self.runs_kv, key, value, revision, self.cfg.rpc_timeout)
            .await?
            .ok_or_else(|| Error::Conflict(format!("{key} changed meanwhile")))
    }

    pub async fn owned_delete(&self, key: &str) -> Result<()> {
        let bound = self.cfg.rpc_timeout;
        tokio::time::timeout(bound, self.runs_kv.purge(key))
            .await
            .map_err(|_| Error::Unavailable(format!("deleting {key}: no answer from NATS")))?
            .map_err(|e| Error::Unavailable(format!("deleting {key}: {e}")))
    }

    /// Call `f(key, Some(record))` for every owned record and every later write,
    /// `f(key, None)` when one is removed, for as long as the process runs (replayed after
    /// a lost connection: `f` must be idempotent).
    pub fn watch_owned(self: &Arc<Self>, f: Arc<dyn Fn(String, Option<Owned>) + Send + Sync>) {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                let mut w = match me.runs_kv.watch_with_history(">").await {
                    Ok(w) => w,
                    Err(e) => {
                        tracing::warn!(error = %e, bucket = RUNS_BUCKET, "cluster: cannot watch owned records; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                };
                while let Some(e) = w.next().await {
                    let Ok(e) = e else { break };
                    let rec = matches!(e.operation, kv::Operation::Put).then(|| Owned {
                        key: e.key.clone(),
                        value: e.value.to_vec(),
                        revision: e.revision,
                    });
                    f(e.key.clone(), rec);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
    }
}

/// The live record under `key` in `kv` and its revision (a deleted one is none).
async fn entry(kv: &kv::Store, key: &str, bound: Duration) -> Result<Option<(Vec<u8>, u64)>> {
    let e = tokio::time::timeout(bound, kv.entry(key))
        .await
        .map_err(|_| Error::Unavailable(format!("reading {key}: no answer from NATS")))?
        .map_err(|e| Error::Unavailable(format!("reading {key}: {e}")))?;
    Ok(e.filter(|e| matches!(e.operation, kv::Operation::Put)).map(|e| (e.value.to_vec(), e.revision)))
}

/// Compare-and-set in `kv`: create `key` (`revision` None: only if absent) or replace it
/// (only if still at `revision`). `Some(new revision)`, or `None` when it changed
/// meanwhile.
async fn cas(kv: &kv::Store, key: &str, value: Vec<u8>, revision: Option<u64>, bound: Duration) -> Result<Option<u64>> {
    let timeout = || Error::Unavailable(format!("writing {key}: no answer from NATS"));
    let other = |e: String| Error::Unavailable(format!("writing {key}: {e}"));
    match revision {
        None => match tokio::time::timeout(bound, kv.create(key, value.into())).await {
            Err(_) => Err(timeout()),
            Ok(Ok(rev)) => Ok(Some(rev)),
            Ok(Err(e)) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(None),
            Ok(Err(e)) => Err(other(e.to_string())),
        },
        Some(rev) => match tokio::time::timeout(bound, kv.update(key, value.into(), rev)).await {
            Err(_) => Err(timeout()),
            Ok(Ok(rev)) => Ok(Some(rev)),
            Ok(Err(e)) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(None),
            Ok(Err(e)) => Err(other(e.to_string())),
        },
    }
}
