//! Workflows across a cluster: definitions are shared (every node can start and resume
//! every workflow) and every run in flight is mirrored in the KV bucket `agentdb-runs`
//! as `{owner, run}`, owned by the node that executes it. When that node dies, a live
//! node takes the run over (compare-and-set on the record's revision: exactly one
//! wins) and resumes it as a restarted node would: finished steps are kept, steps that
//! were running start over (their interrupted attempt counts). A finished run's record
//! stays a week, so the node it came from does not resume it when it restarts (it takes
//! the run's final state instead). See docs/CLUSTER.md.
//!
//! The mirror is written after the local write, from a queue (the executor never waits on
//! NATS): a node that dies can lose its last few transitions, so a taken-over run may
//! repeat a step that had just finished — steps run at least once. A node cut off from
//! NATS keeps executing its runs; if one was taken over meanwhile, it notices at its next
//! write (the record names another owner), logs it and stops mirroring that run.

use crate::workflows::Workflows;
use agentdb_cluster::{Cluster, Error as ClusterError};
use agentdb_orchestrator::workflow::{Mirror, Run, Version};
use std::sync::Arc;
use std::time::Duration;

#[derive(serde::Serialize, serde::Deserialize)]
struct Record {
    owner: String,
    run: Run,
}

pub enum Change {
    Run(Box<Run>),
    Version(Box<Version>),
    Deleted(String, Vec<u32>),
}

pub struct RunMirror {
    cluster: Arc<Cluster>,
    tx: tokio::sync::mpsc::UnboundedSender<Change>,
}

fn run_key(id: &str) -> String {
    format!("run.{id}")
}

fn def_key(name: &str, version: u32) -> String {
    format!("wfdef.{name}.{version}")
}

impl Mirror for RunMirror {
    fn run_saved(&self, run: &Run) {
        let _ = self.tx.send(Change::Run(Box::new(run.clone())));
    }

    fn version_applied(&self, v: &Version) {
        let _ = self.tx.send(Change::Version(Box::new(v.clone())));
    }

    fn workflow_deleted(&self, name: &str, versions: &[u32]) {
        let _ = self.tx.send(Change::Deleted(name.to_string(), versions.to_vec()));
    }

    fn taken_over<'a>(
        &'a self,
        run: &'a Run,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<Run>> + Send + 'a>> {
        Box::pin(async move {
            match self.cluster.owned_get(&run_key(&run.id)).await {
                Ok(Some(o)) => serde_json::from_slice::<Record>(&o.value)
                    .ok()
                    .filter(|r| r.owner != self.cluster.node_id())
                    .map(|r| r.run),
                // Not mirrored (started before this node joined a cluster, or finished over
                // a week ago), or NATS does not answer: this node's own record decides.
                _ => None,
            }
        })
    }
}

/// The mirror to give the workflow engine, and the queue of changes it fills (for
/// [`start`]).
pub fn mirror(cluster: Arc<Cluster>) -> (Arc<RunMirror>, tokio::sync::mpsc::UnboundedReceiver<Change>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    (Arc::new(RunMirror { cluster, tx }), rx)
}

/// Start mirroring `workflows` (the changes `rx` carries), sharing definitions, and
/// taking over the runs of nodes that die.
pub fn start(cluster: Arc<Cluster>, workflows: Arc<Workflows>, rx: tokio::sync::mpsc::UnboundedReceiver<Change>) {
    // Definitions this node had before it joined go to the others.
    for v in workflows.store().all_versions() {
        let (c, v) = (cluster.clone(), v.clone());
        tokio::spawn(async move {
            if let Ok(None) = c.shared_get(&def_key(&v.name, v.version)).await {
                if let Ok(body) = serde_json::to_vec(&*v) {
                    let _ = c.shared_put(&def_key(&v.name, v.version), body).await;
                }
            }
        });
    }
    // ... and theirs come here.
    let store = workflows.store().clone();
    cluster.watch_shared(
        "wfdef",
        Arc::new(move |id: String, body: Option<Vec<u8>>| {
            let Some((name, version)) = id.rsplit_once('.') else { return };
            let Ok(version) = version.parse::<u32>() else { return };
            let (store, name) = (store.clone(), name.to_string());
            tokio::task::spawn_blocking(move || {
                let r = match body.map(|b| serde_json::from_slice::<Version>(&b)) {
                    Some(Ok(v)) if v.name == name && v.version == version => store.merge_version(v).map(|_| ()),
                    Some(_) => {
                        tracing::warn!(workflow = %name, version, "cluster: an unreadable shared workflow definition was ignored");
                        Ok(())
                    }
                    None => store.merge_deleted(&name, version),
                };
                if let Err(e) = r {
                    tracing::error!(workflow = %name, version, error = %e, "cluster: cannot store a shared workflow definition");
                }
            });
        }),
    );
    tokio::spawn(write_loop(cluster.clone(), rx));
    tokio::spawn(take_over_loop(cluster, workflows));
}

async fn write_loop(cluster: Arc<Cluster>, mut rx: tokio::sync::mpsc::UnboundedReceiver<Change>) {
    while let Some(change) = rx.recv().await {
        let r = match change {
            Change::Run(run) => write_run(&cluster, *run).await,
            Change::Version(v) => match serde_json::to_vec(&*v) {
                Ok(body) => cluster.shared_put(&def_key(&v.name, v.version), body).await,
                Err(e) => Err(ClusterError::Invalid(e.to_string())),
            },
            Change::Deleted(name, versions) => {
                let mut r = Ok(());
                for v in versions {
                    r = r.and(cluster.shared_delete(&def_key(&name, v)).await);
                }
                r
            }
        };
        if let Err(e) = r {
            tracing::warn!(error = %e, "cluster: a workflow change was not mirrored");
        }
    }
}

/// Mirror one saved run: create or update its record while this node owns it; remove it
/// once the run is over.
async fn write_run(cluster: &Cluster, run: Run) -> Result<(), ClusterError> {
    let key = run_key(&run.id);
    let me = cluster.node_id().to_string();
    for _ in 0..5 {
        let current = cluster.owned_get(&key).await?;
        if let Some(o) = &current {
            if let Ok(r) = serde_json::from_slice::<Record>(&o.value) {
                if r.owner != me {
                    tracing::warn!(run = %run.id, owner = %r.owner, "cluster: workflow run was taken over by another node while this one could not reach NATS; no longer mirrored from here");
                    return Ok(());
                }
            }
        }
        // A finished run's record stays (with its owner) so that the node it came from,
        // restarting, does not resume it; records are removed a week after the run ended.
        let body = serde_json::to_vec(&Record { owner: me.clone(), run: run.clone() })
            .map_err(|e| ClusterError::Invalid(e.to_string()))?;
        match cluster.owned_put(&key, body, current.map(|o| o.revision)).await {
            Ok(_) => return Ok(()),
            Err(ClusterError::Conflict(_)) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(ClusterError::Unavailable(format!("run {}: the record kept changing", run.id)))
}

/// Every second: runs whose owner is not alive are taken over (one node wins each).
async fn take_over_loop(cluster: Arc<Cluster>, workflows: Arc<Workflows>) {
    let me = cluster.node_id().to_string();
    // The records as the watch last delivered them (no NATS round trip per check).
    let seen = Arc::new(parking_lot::Mutex::new(std::collections::BTreeMap::<String, agentdb_cluster::Owned>::new()));
    let s2 = seen.clone();
    cluster.watch_owned(Arc::new(move |key: String, rec: Option<agentdb_cluster::Owned>| {
        let mut m = s2.lock();
        match rec {
            Some(r) => {
                m.insert(key, r);
            }
            None => {
                m.remove(&key);
            }
        }
    }));
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if !cluster.settled() {
            continue;
        }
        let all: Vec<agentdb_cluster::Owned> = seen.lock().values().cloned().collect();
        for o in all {
            let Ok(rec) = serde_json::from_slice::<Record>(&o.value) else { continue };
            if rec.run.state.terminal() {
                let week = 7 * 24 * 3600 * 1000;
                if rec.owner == me && agentdb_orchestrator::now_ms().saturating_sub(rec.run.finished_unix_ms) > week {
                    let _ = cluster.owned_delete(&o.key).await;
                }
                continue;
            }
            if rec.owner == me || cluster.node_alive(&rec.owner) {
                continue;
            }
            let dead = rec.owner.clone();
            let body = match serde_json::to_vec(&Record { owner: me.clone(), run: rec.run.clone() }) {
                Ok(b) => b,
                Err(_) => continue,
            };
            match cluster.owned_put(&o.key, body, Some(o.revision)).await {
                Ok(_) => {
                    tracing::info!(run = %rec.run.id, from = %dead, "cluster: taking over a workflow run of a node that died");
                    if let Err(e) = workflows.adopt(rec.run).await {
                        tracing::error!(error = %e, "cluster: cannot resume a workflow run taken over");
                    }
                }
                Err(ClusterError::Conflict(_)) => {} // another node took it
                Err(e) => tracing::warn!(error = %e, "cluster: cannot take over a workflow run"),
            }
        }
    }
}
