//! AgentIngestJob: a large dataset ingested in parallel as an Indexed Job. Completion
//! index `i` of `slices` runs `agentdb ingest COLLECTION PATH --slice i/slices` against
//! the cluster's client Service; each file belongs to one slice (a stable hash of its
//! path), a pod restarted mid-slice re-sends its files and the server skips those it
//! already has (same content hash), and the Job retries a failed index up to
//! `backoffLimitPerIndex` times. The resource's status counts finished, running and
//! failed slices from the Job, and the collection's items.

use crate::crd::{AgentCluster, AgentIngestJob, AgentIngestJobStatus, DEFAULT_IMAGE};
use crate::reconcile::{condition, secret_key, Agents, Ctx, Error};
use crate::render::{self, MANAGER};
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

pub fn job_name(j: &AgentIngestJob) -> String {
    format!("{}-ingest", j.metadata.name.clone().unwrap_or_default())
}

/// The Indexed Job for `j`, ingesting into `cluster`.
pub fn render_job(j: &AgentIngestJob, cluster: &AgentCluster) -> Value {
    let name = job_name(j);
    let ns = j.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let cn = render::name(cluster);
    let image = j.spec.image.clone().unwrap_or_else(|| {
        format!("{}:{}", cluster.spec.image.as_deref().unwrap_or(DEFAULT_IMAGE), cluster.spec.version)
    });
    let slices = j.spec.slices.max(1);
    let path = format!("/dataset/{}", j.spec.source.path.trim_start_matches('/'));
    let mut args = vec![
        "ingest".to_string(),
        j.spec.collection.clone(),
        path,
        "--slice".into(),
        format!("$(JOB_COMPLETION_INDEX)/{slices}"),
        "--json".into(),
    ];
    if j.spec.multimodal {
        args.push("--create-multimodal".into());
    }
    let mut env = vec![json!({ "name": "AGENTDB_URL", "value": render::service_url(cluster) })];
    if cluster.spec.security.auth {
        env.push(json!({ "name": "AGENTDB_API_KEY",
            "valueFrom": { "secretKeyRef": { "name": render::admin_secret(&cn), "key": "key" } } }));
    }
    let mut container = json!({
        "name": "ingest",
        "image": image,
        "command": ["agentdb"],
        "args": args,
        "env": env,
        "volumeMounts": [
            { "name": "dataset", "mountPath": "/dataset", "readOnly": true },
            { "name": "tmp", "mountPath": "/tmp" },
        ],
        "securityContext": {
            "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "runAsNonRoot": true,
            "capabilities": { "drop": ["ALL"] }, "seccompProfile": { "type": "RuntimeDefault" },
        },
    });
    if let Some(r) = &j.spec.resources {
        container["resources"] = serde_json::to_value(r).unwrap_or(Value::Null);
    }
    let owner = json!({
        "apiVersion": "agentdb.io/v1", "kind": "AgentIngestJob", "name": j.metadata.name.clone().unwrap_or_default(),
        "uid": j.metadata.uid.clone().unwrap_or_default(), "controller": true, "blockOwnerDeletion": true,
    });
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name, "namespace": ns, "ownerReferences": [owner],
            "labels": { "app.kubernetes.io/name": "agentdb-ingest", "app.kubernetes.io/instance": cn,
                "app.kubernetes.io/managed-by": MANAGER },
        },
        "spec": {
            "completionMode": "Indexed",
            "completions": slices,
            "parallelism": j.spec.parallelism.clamp(1, slices),
            "backoffLimitPerIndex": j.spec.backoff_limit_per_index.max(0),
            // Every index gets its retries; the Job fails only when one runs out.
            "maxFailedIndexes": slices,
            "template": {
                "metadata": { "labels": { "app.kubernetes.io/name": "agentdb-ingest", "app.kubernetes.io/instance": cn } },
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": false,
                    "securityContext": { "runAsNonRoot": true, "runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001,
                        "seccompProfile": { "type": "RuntimeDefault" } },
                    "containers": [container],
                    "volumes": [
                        { "name": "dataset", "persistentVolumeClaim": { "claimName": j.spec.source.pvc, "readOnly": true } },
                        { "name": "tmp", "emptyDir": {} },
                    ],
                },
            },
        },
    })
}

/// How many indexes a Job's `completedIndexes` / `failedIndexes` string names
/// ("1,3-5,7" → 5).
pub fn count_indexes(s: &str) -> i32 {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| match p.split_once('-') {
            Some((a, b)) => match (a.trim().parse::<i32>(), b.trim().parse::<i32>()) {
                (Ok(a), Ok(b)) if b >= a => b - a + 1,
                _ => 0,
            },
            None => i32::from(p.trim().parse::<i32>().is_ok()),
        })
        .sum()
}

/// Status from the Job's.
pub fn status_from_job(j: &AgentIngestJob, job: Option<&Job>, items: Option<u64>) -> AgentIngestJobStatus {
    let prev = j.status.clone().unwrap_or_default();
    let slices = j.spec.slices.max(1);
    let js = job.and_then(|x| x.status.clone()).unwrap_or_default();
    let completed = count_indexes(js.completed_indexes.as_deref().unwrap_or(""));
    let failed = count_indexes(js.failed_indexes.as_deref().unwrap_or(""));
    let job_failed =
        js.conditions.as_ref().is_some_and(|c| c.iter().any(|c| c.type_ == "Failed" && c.status == "True"));
    let phase = if job.is_none() {
        "Pending"
    } else if completed >= slices {
        "Succeeded"
    } else if job_failed || (failed > 0 && completed + failed >= slices) {
        "Failed"
    } else {
        "Running"
    };
    let done = matches!(phase, "Succeeded" | "Failed");
    let cond = |type_: &str, ok: bool, reason: &str, message: String| {
        condition(&prev.conditions, type_, ok, reason, &message, j.metadata.generation)
    };
    AgentIngestJobStatus {
        observed_generation: j.metadata.generation,
        phase: phase.into(),
        job: job_name(j),
        completed_slices: completed,
        failed_slices: failed,
        active_slices: js.active.unwrap_or(0),
        collection_items: items.or(prev.collection_items),
        conditions: vec![
            cond(
                "Complete",
                phase == "Succeeded",
                phase,
                format!("{completed} of {slices} slices done, {failed} failed"),
            ),
            cond("Progressing", !done, phase, format!("{} slices running", js.active.unwrap_or(0))),
        ],
    }
}

/// One reconcile pass of an AgentIngestJob: the Job created once (its spec is
/// immutable), status from it.
pub async fn reconcile<A: Agents>(j: Arc<AgentIngestJob>, ctx: Arc<Ctx<A>>) -> Result<Action, Error> {
    let ns = j.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let name = j.metadata.name.clone().unwrap_or_default();
    let clusters: Api<AgentCluster> = Api::namespaced(ctx.client.clone(), &ns);
    let ijs: Api<AgentIngestJob> = Api::namespaced(ctx.client.clone(), &ns);
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(cluster) = clusters.get_opt(&j.spec.cluster).await? else {
        let mut st = j.status.clone().unwrap_or_default();
        st.phase = "Pending".into();
        let message = format!("no AgentCluster '{}' in namespace {ns}", j.spec.cluster);
        st.conditions = vec![condition(&[], "Complete", false, "ClusterNotFound", &message, j.metadata.generation)];
        ijs.patch_status(&name, &PatchParams::default(), &Patch::Merge(json!({ "status": st }))).await?;
        return Ok(Action::requeue(Duration::from_secs(10)));
    };
    let jn = job_name(&j);
    let mut job = jobs.get_opt(&jn).await?;
    if job.is_none() {
        let obj = render_job(&j, &cluster);
        job = Some(jobs.patch(&jn, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&obj)).await?);
        tracing::info!(job = %jn, slices = j.spec.slices, "ingest job created");
    }
    let items = count_items(&cluster, &ctx, &j.spec.collection).await;
    let st = status_from_job(&j, job.as_ref(), items);
    let done = matches!(st.phase.as_str(), "Succeeded" | "Failed");
    ijs.patch_status(&name, &PatchParams::default(), &Patch::Merge(json!({ "status": st }))).await?;
    Ok(if done { Action::await_change() } else { Action::requeue(Duration::from_secs(10)) })
}

async fn count_items<A: Agents>(cluster: &AgentCluster, ctx: &Ctx<A>, collection: &str) -> Option<u64> {
    let key = if cluster.spec.security.auth {
        let secrets: Api<k8s_openapi::api::core::v1::Secret> =
            Api::namespaced(ctx.client.clone(), &render::namespace(cluster));
        secret_key(&secrets.get_opt(&render::admin_secret(&render::name(cluster))).await.ok()??)?
    } else {
        String::new()
    };
    let mut cfg = agentdb_client::Config::new(render::service_url(cluster));
    if !key.is_empty() {
        cfg = cfg.with_credential(key);
    }
    cfg.timeout = Some(Duration::from_secs(5));
    let c = tokio::time::timeout(Duration::from_secs(5), agentdb_client::Client::connect(cfg)).await.ok()?.ok()?;
    c.count(collection, "").await.ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_index_ranges() {
        assert_eq!(count_indexes(""), 0);
        assert_eq!(count_indexes("0"), 1);
        assert_eq!(count_indexes("1,3-5,7"), 5);
        assert_eq!(count_indexes("0-9"), 10);
    }
}
