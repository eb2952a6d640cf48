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

    /// Call `f(id, value)` for every record of `kind` in the bucket and for every later
    /// write to one, for as long as the process runs (the watch is re-opened after a lost
    /// connection and replays the bucket, so `f` must be idempotent).
    pub fn watch_shared(self: &Arc<Self>, kind: &str, f: Arc<dyn Fn(String, Vec<u8>) + Send + Sync>) {
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
                    if !matches!(e.operation, kv::Operation::Put) {
                        continue;
                    }
                    if let Some(id) = e.key.strip_prefix(&prefix) {
                        f(id.to_string(), e.value.to_vec());
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
    }
}
