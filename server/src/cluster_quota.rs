//! Storage quotas in cluster mode: each principal's usage is one record in the cluster's
//! KV bucket `agentdb-shared` (`usage.<principal, base64url>`), changed with
//! compare-and-set, so a principal's writes through every node (sharded collections and
//! each node's own ones alike) count against one figure. Sharded collections are charged
//! on the node that takes the write (`cluster_rpc.rs`).

use crate::quota::{Usage, UsageStore};
use agentdb_cluster::Cluster;
use base64::Engine as _;
use std::sync::Arc;

pub struct ClusterUsage {
    cluster: Arc<Cluster>,
    rt: tokio::runtime::Handle,
}

impl ClusterUsage {
    pub fn new(cluster: Arc<Cluster>) -> ClusterUsage {
        ClusterUsage { cluster, rt: tokio::runtime::Handle::current() }
    }

    fn key(who: &str) -> String {
        format!("usage.{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(who.as_bytes()))
    }

    /// Run `f` to completion from synchronous code (a blocking thread or, briefly, an
    /// async worker of the multi-threaded runtime).
    fn wait<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        tokio::task::block_in_place(|| self.rt.block_on(f))
    }
}

impl UsageStore for ClusterUsage {
    fn read(&self, who: &str) -> Result<(Usage, Option<u64>), String> {
        match self.wait(self.cluster.shared_entry(&Self::key(who))).map_err(|e| e.to_string())? {
            None => Ok((Usage::default(), None)),
            Some((body, rev)) => {
                let u = serde_json::from_slice(&body).map_err(|e| format!("unreadable usage record: {e}"))?;
                Ok((u, Some(rev)))
            }
        }
    }

    fn write(&self, who: &str, u: &Usage, version: Option<u64>) -> Result<bool, String> {
        let body = serde_json::to_vec(u).map_err(|e| e.to_string())?;
        self.wait(self.cluster.shared_cas(&Self::key(who), body, version)).map_err(|e| e.to_string())
    }
}
