//! The cluster-wide event bus: every node's own events are published on core NATS
//! (`agentdb.bus.NODE`, JSON), and every node publishes the others' on its own bus, so a
//! subscriber on one node sees what happened on all of them (ingest summaries,
//! workflow and agent events, alerts). Best effort, like the bus itself: an event
//! published while a node is cut off from NATS does not reach it; each node numbers the
//! events it holds with its own offsets. The cluster crate carries bytes only; the
//! server decides what they are (`orchestrator::bus::Relayed`).

use crate::Cluster;
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;

const SUBJECT: &str = "agentdb.bus";

impl Cluster {
    /// Send what `local` yields to the other nodes, and give `deliver` what they send.
    pub fn relay_events(
        self: &Arc<Self>,
        mut local: tokio::sync::mpsc::Receiver<Vec<u8>>,
        deliver: Arc<dyn Fn(Vec<u8>) + Send + Sync>,
    ) {
        let own = format!("{SUBJECT}.{}", self.cfg.node_id);
        let (me, subject) = (self.clone(), own.clone());
        tokio::spawn(async move {
            while let Some(body) = local.recv().await {
                if let Err(e) = me.client.publish(subject.clone(), body.into()).await {
                    tracing::debug!(error = %e, "cluster: an event was not relayed");
                }
            }
        });
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                match me.client.subscribe(format!("{SUBJECT}.*")).await {
                    Ok(mut sub) => {
                        while let Some(m) = sub.next().await {
                            if m.subject.as_str() != own {
                                deliver(m.payload.to_vec());
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cluster: cannot follow the other nodes' events; retrying"),
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
    }
}
