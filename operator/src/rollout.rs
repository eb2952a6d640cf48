//! Draining and replacing AgentDB nodes: the one procedure the controller follows for a
//! rolling update or a scale-in, step by step across reconciles, and that
//! `server/tests/e2e_rollout.rs` runs against real nodes on loopback under load.
//!
//! For each node, oldest first: drain it (the cluster hands its shard replicas to other
//! nodes, each dropped here only once its successor caught up), wait until it holds no
//! replica and every shard has its replicas again, stop it (the server reports not ready
//! and serves on for its shutdown delay, then finishes in-flight requests), wait for the
//! replacement to be ready, and stop draining it (rebalancing moves replicas back).

use agentdb_proto::v1;
use std::future::Future;
use std::time::Duration;

/// What the operator needs to know of the cluster, from any node's `Cluster/Status`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterView {
    pub nodes: Vec<NodeView>,
    /// Shards that have fewer live replicas than their collection asks for (capped at
    /// the live, non-draining nodes).
    pub under_replicated: u32,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeView {
    pub id: String,
    pub alive: bool,
    pub replicas: u32,
    pub draining: bool,
}

impl ClusterView {
    pub fn from_status(s: &v1::ClusterStatusResponse) -> ClusterView {
        let nodes: Vec<NodeView> = s
            .nodes
            .iter()
            .map(|n| NodeView { id: n.id.clone(), alive: n.alive, replicas: n.replicas, draining: n.draining })
            .collect();
        let serving = nodes.iter().filter(|n| n.alive && !n.draining).count() as u32;
        let mut under = 0;
        for c in &s.collections {
            let want = c.replicas.min(serving.max(1));
            for sh in &c.shard_status {
                let live = sh.replicas.iter().filter(|r| r.alive).count() as u32;
                if live < want {
                    under += 1;
                }
            }
        }
        ClusterView { nodes, under_replicated: under }
    }

    pub fn node(&self, id: &str) -> Option<&NodeView> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// `id` is draining, holds no shard replica, and every shard has its replicas on
    /// the other nodes: stopping it now loses no replica.
    pub fn drained(&self, id: &str) -> bool {
        self.node(id).is_some_and(|n| n.draining && n.replicas == 0) && self.under_replicated == 0
    }

    /// Every node in `ids` is alive and no shard is short of replicas.
    pub fn healthy(&self, ids: &[String]) -> bool {
        self.under_replicated == 0 && ids.iter().all(|id| self.node(id).is_some_and(|n| n.alive))
    }
}

/// The cluster as the operator talks to it.
pub trait Nodes: Send + Sync {
    fn drain(&self, node: &str, on: bool) -> impl Future<Output = anyhow::Result<()>> + Send;
    fn view(&self) -> impl Future<Output = anyhow::Result<ClusterView>> + Send;
}

/// The cluster through AgentDB's gRPC API (`Cluster/Drain`, `Cluster/Status`) with an
/// admin API key.
pub struct GrpcNodes {
    cfg: agentdb_client::Config,
}

impl GrpcNodes {
    /// `url`: any node or the client Service; `key`: an admin API key ("" with auth off).
    pub fn new(url: &str, key: &str) -> GrpcNodes {
        let mut cfg = agentdb_client::Config::new(url);
        if !key.is_empty() {
            cfg = cfg.with_credential(key.trim());
        }
        cfg.timeout = Some(Duration::from_secs(10));
        GrpcNodes { cfg }
    }

    async fn client(&self) -> anyhow::Result<agentdb_client::Client> {
        agentdb_client::Client::connect(self.cfg.clone()).await.map_err(|e| anyhow::anyhow!("{e}"))
    }
}

impl Nodes for GrpcNodes {
    async fn drain(&self, node: &str, on: bool) -> anyhow::Result<()> {
        let c = self.client().await?;
        c.cluster()
            .drain(v1::ClusterDrainRequest { node: node.to_string(), undo: !on })
            .await
            .map_err(|e| anyhow::anyhow!("Cluster/Drain {node}: {}", e.message()))?;
        Ok(())
    }

    async fn view(&self) -> anyhow::Result<ClusterView> {
        let c = self.client().await?;
        let s = c
            .cluster()
            .status(v1::ClusterStatusRequest {})
            .await
            .map_err(|e| anyhow::anyhow!("Cluster/Status: {}", e.message()))?
            .into_inner();
        if !s.enabled {
            anyhow::bail!("the server is not in cluster mode");
        }
        Ok(ClusterView::from_status(&s))
    }
}

/// Poll `cond` on the cluster's view every 200 ms until it holds or `timeout` passes.
pub async fn wait_until<N: Nodes>(
    nodes: &N,
    what: &str,
    timeout: Duration,
    cond: impl Fn(&ClusterView) -> bool,
) -> anyhow::Result<ClusterView> {
    let until = tokio::time::Instant::now() + timeout;
    loop {
        let last = match nodes.view().await {
            Ok(v) if cond(&v) => return Ok(v),
            Ok(v) => format!("{v:?}"),
            Err(e) => e.to_string(),
        };
        if tokio::time::Instant::now() >= until {
            anyhow::bail!("timed out after {timeout:?} waiting for {what}; last: {last}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Replace one node the way the controller does, in one call: drain it, wait until it
/// is drained, `stop` it, `start` its replacement and wait for `ready`, then stop
/// draining it and wait until every node in `all` is alive and no shard is short.
pub async fn replace_node<N, S, SF, R, RF>(
    nodes: &N,
    node: &str,
    all: &[String],
    timeout: Duration,
    stop_and_start: S,
    ready: R,
) -> anyhow::Result<()>
where
    N: Nodes,
    S: FnOnce() -> SF,
    SF: Future<Output = anyhow::Result<()>>,
    R: Fn() -> RF,
    RF: Future<Output = bool>,
{
    nodes.drain(node, true).await?;
    wait_until(nodes, &format!("{node} to be drained"), timeout, |v| v.drained(node)).await?;
    stop_and_start().await?;
    let until = tokio::time::Instant::now() + timeout;
    while !ready().await {
        if tokio::time::Instant::now() >= until {
            anyhow::bail!("the replacement of {node} was not ready within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    nodes.drain(node, false).await?;
    wait_until(nodes, "every node alive and every shard replicated", timeout, |v| {
        v.healthy(all) && v.node(node).is_some_and(|n| !n.draining)
    })
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(
        nodes: &[(&str, bool, u32, bool)],
        shards: &[&[(&str, bool)]],
        replicas: u32,
    ) -> v1::ClusterStatusResponse {
        v1::ClusterStatusResponse {
            enabled: true,
            nodes: nodes
                .iter()
                .map(|&(id, alive, replicas, draining)| v1::ClusterNode {
                    id: id.into(),
                    alive,
                    replicas,
                    draining,
                    ..Default::default()
                })
                .collect(),
            collections: vec![v1::ClusterCollection {
                name: "c".into(),
                shards: shards.len() as u32,
                replicas,
                shard_status: shards
                    .iter()
                    .enumerate()
                    .map(|(i, reps)| v1::ClusterShard {
                        shard: i as u32,
                        replicas: reps
                            .iter()
                            .map(|&(n, alive)| v1::ClusterReplica { node: n.into(), alive, ..Default::default() })
                            .collect(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn drained_needs_no_replica_and_every_shard_replicated() {
        // a is draining but still holds a replica.
        let s = status(
            &[("a", true, 1, true), ("b", true, 2, false), ("c", true, 1, false)],
            &[&[("a", true), ("b", true)], &[("b", true), ("c", true)]],
            2,
        );
        let v = ClusterView::from_status(&s);
        assert!(!v.drained("a"));
        assert_eq!(v.under_replicated, 0);
        // Moved off, but shard 0 has one live replica of two.
        let s = status(
            &[("a", true, 0, true), ("b", true, 2, false), ("c", true, 1, false)],
            &[&[("b", true), ("c", false)], &[("b", true), ("c", true)]],
            2,
        );
        let v = ClusterView::from_status(&s);
        assert_eq!(v.under_replicated, 1);
        assert!(!v.drained("a"));
        let s = status(
            &[("a", true, 0, true), ("b", true, 2, false), ("c", true, 2, false)],
            &[&[("b", true), ("c", true)], &[("b", true), ("c", true)]],
            2,
        );
        let v = ClusterView::from_status(&s);
        assert!(v.drained("a"));
        assert!(!v.drained("b"), "b is not draining");
        assert!(v.healthy(&["a".into(), "b".into(), "c".into()]));
        assert!(!v.healthy(&["a".into(), "d".into()]), "d is unknown");
        // Two nodes, one draining: a shard can have only one replica on the other.
        let s = status(&[("a", true, 0, true), ("b", true, 2, false)], &[&[("b", true)], &[("b", true)]], 2);
        assert!(ClusterView::from_status(&s).drained("a"));
    }
}
