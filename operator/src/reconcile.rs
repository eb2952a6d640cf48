//! The AgentCluster controller: one idempotent pass that moves the cluster one step
//! towards its spec and reports where it stands. Called by kube-runtime's Controller on
//! every change of the resource or its children and on a timer (main.rs), and directly
//! by the tests against an in-memory API server.
//!
//! A pass: deletion (finalizer) → finalizer added → Secrets created once → children
//! applied (server-side apply) → pods read → rolling update / scale-in, one node at a
//! time, each drained first (rollout.rs) → autoscaler → status.

use crate::autoscale;
use crate::crd::{AgentCluster, AgentClusterStatus, RolloutStatus};
use crate::render::{self, Child, MANAGER};
use crate::rollout::ClusterView;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::ByteString;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::controller::Action;
use kube::Client;
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub const FINALIZER: &str = "agentdb.io/cleanup";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Other(String),
}

/// The AgentDB side of the operator: the cluster's nodes (drain, status) and each pod's
/// /metrics. `GrpcAgents` in production.
pub trait Agents: Send + Sync + 'static {
    fn drain(
        &self,
        ac: &AgentCluster,
        key: &str,
        node: &str,
        on: bool,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
    fn view(&self, ac: &AgentCluster, key: &str) -> impl Future<Output = anyhow::Result<ClusterView>> + Send;
    fn metrics(&self, ac: &AgentCluster, pod: &str) -> impl Future<Output = anyhow::Result<String>> + Send;
}

/// AgentDB's gRPC API through the pods' DNS names, and /metrics over plain HTTP.
pub struct GrpcAgents;

impl Agents for GrpcAgents {
    async fn drain(&self, ac: &AgentCluster, key: &str, node: &str, on: bool) -> anyhow::Result<()> {
        use crate::rollout::Nodes;
        crate::rollout::GrpcNodes::new(&render::service_url(ac), key).drain(node, on).await
    }
    async fn view(&self, ac: &AgentCluster, key: &str) -> anyhow::Result<ClusterView> {
        use crate::rollout::Nodes;
        crate::rollout::GrpcNodes::new(&render::service_url(ac), key).view().await
    }
    async fn metrics(&self, ac: &AgentCluster, pod: &str) -> anyhow::Result<String> {
        http_get(&render::pod_http(ac, pod), "/metrics").await
    }
}

/// A plain HTTP/1.0 GET (the pods' /metrics), with a 5 s limit.
pub async fn http_get(host_port: &str, path: &str) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(host_port).await?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {host_port}\r\n\r\n").as_bytes()).await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        let text = String::from_utf8_lossy(&buf).to_string();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
            anyhow::bail!("GET {host_port}{path}: {}", head.lines().next().unwrap_or(""));
        }
        Ok(body.to_string())
    };
    tokio::time::timeout(Duration::from_secs(5), fut)
        .await
        .map_err(|_| anyhow::anyhow!("GET {host_port}{path}: timed out"))?
}

/// One pass's /metrics of a cluster's pods: (unix seconds, [(pod, scrape)]).
type Scrapes = (i64, Vec<(String, autoscale::Scrape)>);

pub struct Ctx<A: Agents> {
    pub client: Client,
    pub agents: A,
    /// The previous /metrics scrape of each cluster's pods (autoscaler).
    scrapes: parking_lot::Mutex<HashMap<String, Scrapes>>,
    /// The clock in unix seconds (tests move it).
    pub now: Box<dyn Fn() -> i64 + Send + Sync>,
}

impl<A: Agents> Ctx<A> {
    pub fn new(client: Client, agents: A) -> Ctx<A> {
        Ctx {
            client,
            agents,
            scrapes: Default::default(),
            now: Box::new(|| k8s_openapi::jiff::Timestamp::now().as_second()),
        }
    }
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

fn api_resource(c: &Child) -> ApiResource {
    let (group, version) = c.api_version.rsplit_once('/').unwrap_or(("", c.api_version));
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, c.kind), c.plural)
}

fn rfc3339(secs: i64) -> String {
    k8s_openapi::jiff::Timestamp::from_second(secs).map(|t| t.to_string()).unwrap_or_default()
}

fn random_alnum(len: usize, lower: bool) -> String {
    use rand::Rng;
    let alpha: &[u8] = if lower {
        b"abcdefghijklmnopqrstuvwxyz0123456789"
    } else {
        b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    };
    let mut r = rand::rng();
    (0..len).map(|_| alpha[r.random_range(0..alpha.len())] as char).collect()
}

/// A new bootstrap admin key in AgentDB's format.
pub fn new_admin_key() -> String {
    format!("adb_{}_{}", random_alnum(12, true), random_alnum(40, false))
}

/// A new 256-bit encryption master key as 64 hex characters.
pub fn new_master_key() -> String {
    use rand::Rng;
    let mut r = rand::rng();
    (0..32).map(|_| format!("{:02x}", r.random::<u8>())).collect()
}

/// Create the admin-key and encryption Secrets if absent; never rewrite them. They are
/// owned by the AgentCluster (deleted with it) only when its volumes are not retained:
/// kept volumes stay readable with their keys.
async fn ensure_secrets(ac: &AgentCluster, secrets: &Api<Secret>) -> Result<String, Error> {
    let n = render::name(ac);
    let owned = !ac.spec.storage.retain_on_delete;
    let mut wanted = vec![];
    if ac.spec.security.auth {
        wanted.push((render::admin_secret(&n), new_admin_key as fn() -> String));
    }
    if ac.spec.security.encryption {
        wanted.push((render::encryption_secret(&n), new_master_key as fn() -> String));
    }
    for (name, make) in wanted {
        if secrets.get_opt(&name).await?.is_some() {
            continue;
        }
        let mut meta = json!({ "name": name, "namespace": render::namespace(ac),
            "labels": { "app.kubernetes.io/instance": n, "app.kubernetes.io/managed-by": MANAGER } });
        if owned {
            meta["ownerReferences"] = json!([render::owner_ref(ac)]);
        }
        let s: Secret =
            serde_json::from_value(json!({ "metadata": meta, "type": "Opaque", "stringData": { "key": make() } }))
                .map_err(|e| Error::Other(e.to_string()))?;
        match secrets.create(&PostParams::default(), &s).await {
            Ok(_) => tracing::info!(secret = %name, "created"),
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }
    if !ac.spec.security.auth {
        return Ok(String::new());
    }
    let s = secrets.get(&render::admin_secret(&n)).await?;
    Ok(secret_key(&s).unwrap_or_default())
}

/// The `key` entry of one of the operator's Secrets.
pub(crate) fn secret_key(s: &Secret) -> Option<String> {
    s.data
        .as_ref()
        .and_then(|d| d.get("key"))
        .map(|ByteString(b)| String::from_utf8_lossy(b).trim().to_string())
        .or_else(|| s.string_data.as_ref().and_then(|d| d.get("key")).cloned())
}

/// Delete what the garbage collector does not: the volumes and the Secrets, only when
/// `storage.retainOnDelete` is false. Then let the resource go.
async fn finalize(ac: &AgentCluster, ctx: &Ctx<impl Agents>) -> Result<Action, Error> {
    let (n, ns) = (render::name(ac), render::namespace(ac));
    if !ac.spec.storage.retain_on_delete {
        let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
        let sel = format!("app.kubernetes.io/instance={n}");
        for p in pvcs.list(&ListParams::default().labels(&sel)).await?.items {
            let pn = p.metadata.name.unwrap_or_default();
            match pvcs.delete(&pn, &DeleteParams::default()).await {
                Ok(_) => tracing::info!(pvc = %pn, "deleted (storage.retainOnDelete is false)"),
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
        let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
        for s in [render::admin_secret(&n), render::encryption_secret(&n)] {
            match secrets.delete(&s, &DeleteParams::default()).await {
                Err(e) if !is_not_found(&e) => return Err(e.into()),
                _ => {}
            }
        }
    } else {
        tracing::info!(cluster = %n, "deleted; volumes and Secrets kept (storage.retainOnDelete)");
    }
    let fins: Vec<String> =
        ac.metadata.finalizers.clone().unwrap_or_default().into_iter().filter(|f| f != FINALIZER).collect();
    let api: Api<AgentCluster> = Api::namespaced(ctx.client.clone(), &ns);
    api.patch(&n, &PatchParams::default(), &Patch::Merge(json!({ "metadata": { "finalizers": fins } }))).await?;
    Ok(Action::await_change())
}

/// Apply every rendered child (server-side apply, the operator's field manager, forced).
async fn apply_children(
    ac: &AgentCluster,
    ctx: &Ctx<impl Agents>,
    replicas: i32,
    notes: &mut Vec<String>,
) -> Result<(), Error> {
    let ns = render::namespace(ac);
    for c in render::render_with(ac, replicas) {
        let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &ns, &api_resource(&c));
        let pp = PatchParams::apply(MANAGER).force();
        match api.patch(&c.name, &pp, &Patch::Apply(&c.object)).await {
            Ok(_) => {}
            // A ServiceMonitor without the Prometheus operator's CRD: say so, go on.
            Err(kube::Error::Api(e)) if e.code == 404 && c.kind == "ServiceMonitor" => {
                notes.push("monitoring.prometheus is on but the ServiceMonitor CRD is not installed".into());
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// A pod's state as the operator sees it.
#[derive(Debug, Clone)]
struct PodState {
    name: String,
    ordinal: i32,
    ready: bool,
    revision: String,
    terminating: bool,
    /// Why it is failing (CrashLoopBackOff, ImagePullBackOff, ...), if it is.
    failing: Option<String>,
}

fn pod_state(p: &Pod, sts: &str) -> Option<PodState> {
    let name = p.metadata.name.clone()?;
    let ordinal = name.strip_prefix(&format!("{sts}-"))?.parse().ok()?;
    let st = p.status.as_ref();
    let ready = st
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    let failing = st.and_then(|s| s.container_statuses.as_ref()).and_then(|cs| {
        cs.iter().find_map(|c| {
            let w = c.state.as_ref()?.waiting.as_ref()?;
            let r = w.reason.clone().unwrap_or_default();
            matches!(
                r.as_str(),
                "CrashLoopBackOff"
                    | "ImagePullBackOff"
                    | "ErrImagePull"
                    | "CreateContainerConfigError"
                    | "InvalidImageName"
                    | "RunContainerError"
            )
            .then(|| format!("{name}: {r}{}", w.message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default()))
        })
    });
    let revision =
        p.metadata.labels.as_ref().and_then(|l| l.get("controller-revision-hash")).cloned().unwrap_or_default();
    Some(PodState { name, ordinal, ready, revision, terminating: p.metadata.deletion_timestamp.is_some(), failing })
}

/// A status condition, keeping its transition time while its status stays the same.
pub(crate) fn condition(
    prev: &[Condition],
    type_: &str,
    ok: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
) -> Condition {
    let status = if ok { "True" } else { "False" };
    let since = prev
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| Time(k8s_openapi::jiff::Timestamp::now()));
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time: since,
    }
}

/// One reconcile pass of `ac`.
pub async fn reconcile<A: Agents>(ac: Arc<AgentCluster>, ctx: Arc<Ctx<A>>) -> Result<Action, Error> {
    let (n, ns) = (render::name(&ac), render::namespace(&ac));
    let api: Api<AgentCluster> = Api::namespaced(ctx.client.clone(), &ns);
    let has_finalizer = ac.metadata.finalizers.as_ref().is_some_and(|f| f.iter().any(|x| x == FINALIZER));
    if ac.metadata.deletion_timestamp.is_some() {
        return if has_finalizer { finalize(&ac, &ctx).await } else { Ok(Action::await_change()) };
    }
    if !has_finalizer {
        let mut fins = ac.metadata.finalizers.clone().unwrap_or_default();
        fins.push(FINALIZER.into());
        api.patch(&n, &PatchParams::default(), &Patch::Merge(json!({ "metadata": { "finalizers": fins } }))).await?;
    }
    let mut notes: Vec<String> = Vec::new();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let key = ensure_secrets(&ac, &secrets).await?;

    // The StatefulSet as it is, and the replica count to apply: a scale-in shrinks it
    // only after the highest node is drained (below), one node at a time.
    let stss: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &ns);
    let sts_before = stss.get_opt(&n).await?;
    let current = sts_before.as_ref().and_then(|s| s.spec.as_ref()).and_then(|s| s.replicas).unwrap_or(0);
    let target = render::desired_replicas(&ac);
    let mut status = ac.status.clone().unwrap_or_default();
    let mut replicas = if current == 0 || target >= current { target } else { current };
    // A finished scale-in step: the drained node's pod may go.
    if let Some(r) = &status.rollout {
        if r.stage == "Removing" && current > target && r.pod == format!("{n}-{}", current - 1) {
            let view = ctx.agents.view(&ac, &key).await;
            if view.as_ref().is_ok_and(|v| v.drained(&r.pod)) {
                replicas = current - 1;
                tracing::info!(pod = %r.pod, "drained; removing it");
                status.rollout = None;
            }
        }
    }
    apply_children(&ac, &ctx, replicas, &mut notes).await?;

    // Pods and revisions.
    let sts = stss.get(&n).await?;
    let update_rev = sts.status.as_ref().and_then(|s| s.update_revision.clone()).unwrap_or_default();
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let sel = render::server_selector(&n).iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
    let mut pods: Vec<PodState> = pods_api
        .list(&ListParams::default().labels(&sel))
        .await?
        .items
        .iter()
        .filter_map(|p| pod_state(p, &n))
        .collect();
    pods.sort_by_key(|p| p.ordinal);
    let ready = pods.iter().filter(|p| p.ready && !p.terminating && p.ordinal < replicas).count() as i32;
    let failing: Vec<String> = pods.iter().filter_map(|p| p.failing.clone()).collect();
    let outdated: Vec<&PodState> =
        pods.iter().filter(|p| !update_rev.is_empty() && p.revision != update_rev && p.ordinal < replicas).collect();
    let all_ready = ready == replicas && pods.iter().filter(|p| p.ordinal < replicas).count() as i32 == replicas;
    let ids: Vec<String> = pods.iter().filter(|p| p.ordinal < replicas).map(|p| p.name.clone()).collect();

    // Rolling update and scale-in: one node at a time, drained first.
    let now = (ctx.now)();
    let mut progressing = None::<String>;
    match status.rollout.clone() {
        Some(r) if r.stage == "Draining" => {
            let view = ctx.agents.view(&ac, &key).await.map_err(|e| Error::Other(e.to_string()));
            match view {
                Ok(v) if v.drained(&r.pod) => {
                    tracing::info!(pod = %r.pod, "drained; deleting it for its replacement");
                    match pods_api.delete(&r.pod, &DeleteParams::default()).await {
                        Err(e) if !is_not_found(&e) => return Err(e.into()),
                        _ => {}
                    }
                    status.rollout =
                        Some(RolloutStatus { pod: r.pod.clone(), stage: "Replacing".into(), since: rfc3339(now) });
                }
                Ok(_) => {}
                Err(e) => notes.push(format!("cluster status: {e}")),
            }
            progressing = Some(format!("draining {} before replacing it", r.pod));
        }
        Some(r) if r.stage == "Replacing" => {
            let new = pods.iter().find(|p| p.name == r.pod);
            // Ready again (at the update revision, or an older one if the spec moved on
            // meanwhile: then it is outdated and its turn comes again).
            if new.is_some_and(|p| p.ready && !p.terminating) {
                if replicas > 1 {
                    ctx.agents.drain(&ac, &key, &r.pod, false).await.map_err(|e| Error::Other(e.to_string()))?;
                }
                tracing::info!(pod = %r.pod, "replaced and ready");
                status.rollout = None;
            } else {
                progressing = Some(format!("waiting for the new {} to be ready", r.pod));
            }
        }
        Some(r) if r.stage == "Removing" && target >= replicas => {
            // Scaled back up before the node went: it stays and takes replicas again.
            ctx.agents.drain(&ac, &key, &r.pod, false).await.map_err(|e| Error::Other(e.to_string()))?;
            tracing::info!(pod = %r.pod, "scale-in cancelled");
            status.rollout = None;
        }
        Some(r) if r.stage == "Removing" => {
            progressing = Some(format!("draining {} before removing it", r.pod));
        }
        _ => {}
    }
    if status.rollout.is_none() {
        let healthy = if all_ready && replicas > 1 {
            match ctx.agents.view(&ac, &key).await {
                Ok(v) => {
                    // A node left draining (a scale-in whose pod came back) takes replicas again.
                    for node in &v.nodes {
                        if node.draining && ids.contains(&node.id) {
                            let _ = ctx.agents.drain(&ac, &key, &node.id, false).await;
                        }
                    }
                    v.healthy(&ids)
                }
                Err(e) => {
                    notes.push(format!("cluster status: {e}"));
                    false
                }
            }
        } else {
            all_ready
        };
        if current > target && replicas == current && healthy {
            let pod = format!("{n}-{}", current - 1);
            ctx.agents.drain(&ac, &key, &pod, true).await.map_err(|e| Error::Other(e.to_string()))?;
            tracing::info!(pod = %pod, "scale-in: draining");
            status.rollout = Some(RolloutStatus { pod: pod.clone(), stage: "Removing".into(), since: rfc3339(now) });
            progressing = Some(format!("draining {pod} before removing it"));
        } else if let Some(p) = outdated.iter().max_by_key(|p| p.ordinal).filter(|_| healthy) {
            if replicas > 1 {
                ctx.agents.drain(&ac, &key, &p.name, true).await.map_err(|e| Error::Other(e.to_string()))?;
                tracing::info!(pod = %p.name, "rolling update: draining");
                status.rollout =
                    Some(RolloutStatus { pod: p.name.clone(), stage: "Draining".into(), since: rfc3339(now) });
            } else {
                // One node: nothing to hand off to; the update restarts it.
                pods_api.delete(&p.name, &DeleteParams::default()).await?;
                status.rollout =
                    Some(RolloutStatus { pod: p.name.clone(), stage: "Replacing".into(), since: rfc3339(now) });
            }
            progressing = Some(format!("rolling update: {} of {} pods to replace", outdated.len(), replicas));
        } else if !outdated.is_empty() {
            progressing = Some(format!("rolling update: waiting for every pod to be ready ({ready}/{replicas})"));
        } else if ready < replicas {
            progressing = Some(format!("{ready} of {replicas} pods ready"));
        } else if target != replicas {
            progressing = Some(format!("scaling to {target}"));
        }
    }

    // Autoscaler.
    if let Some(spec) = &ac.spec.autoscaling {
        let load = measure(&ac, &ctx, &pods).await;
        let st = autoscale::decide(spec, replicas, &load, status.autoscaler.as_ref(), now);
        if st.desired_replicas != replicas {
            tracing::info!(cluster = %n, from = replicas, to = st.desired_replicas, reason = %st.reason, "autoscaler");
        }
        status.autoscaler = Some(st);
    } else {
        status.autoscaler = None;
    }

    // Status.
    let gen = ac.metadata.generation;
    let degraded = !failing.is_empty();
    let phase = if degraded {
        "Degraded"
    } else if outdated.is_empty() && status.rollout.is_none() && all_ready && target == replicas {
        "Running"
    } else if status.rollout.as_ref().is_some_and(|r| r.stage == "Removing") || target != replicas {
        "Scaling"
    } else if !outdated.is_empty() || status.rollout.is_some() {
        "Updating"
    } else {
        "Creating"
    };
    if outdated.is_empty() && all_ready && status.rollout.is_none() {
        status.current_version = ac.spec.version.clone();
    }
    let prev = status.conditions.clone();
    let ready_ok = all_ready && !degraded;
    status.conditions = vec![
        condition(
            &prev,
            "Ready",
            ready_ok,
            if ready_ok { "AllPodsReady" } else { "PodsNotReady" },
            &format!("{ready} of {replicas} pods ready"),
            gen,
        ),
        condition(
            &prev,
            "Progressing",
            progressing.is_some(),
            if progressing.is_some() { "Reconciling" } else { "Reconciled" },
            progressing.as_deref().unwrap_or("the cluster matches its spec"),
            gen,
        ),
        condition(
            &prev,
            "Degraded",
            degraded || !notes.is_empty(),
            if degraded {
                "PodsFailing"
            } else if !notes.is_empty() {
                "Warning"
            } else {
                "AsExpected"
            },
            &if degraded { failing.join("; ") } else { notes.join("; ") },
            gen,
        ),
    ];
    status.observed_generation = gen;
    status.phase = phase.into();
    status.replicas = replicas;
    status.ready_replicas = ready;
    write_status(&api, &n, &status).await?;
    let again = if progressing.is_some() || degraded {
        Duration::from_secs(3)
    } else if ac.spec.autoscaling.is_some() {
        Duration::from_secs(15)
    } else {
        Duration::from_secs(60)
    };
    Ok(Action::requeue(again))
}

async fn write_status(api: &Api<AgentCluster>, n: &str, status: &AgentClusterStatus) -> Result<(), Error> {
    // A merge patch leaves out what is absent: a finished rollout must be nulled.
    let mut v = serde_json::to_value(status).map_err(|e| Error::Other(e.to_string()))?;
    for k in ["rollout", "autoscaler"] {
        v.as_object_mut().map(|o| o.entry(k).or_insert(serde_json::Value::Null));
    }
    let body = json!({ "status": v });
    api.patch_status(n, &PatchParams::default(), &Patch::Merge(&body)).await?;
    Ok(())
}

/// The load since the previous pass, from the ready pods' /metrics.
async fn measure<A: Agents>(ac: &AgentCluster, ctx: &Ctx<A>, pods: &[PodState]) -> autoscale::Load {
    let key = format!("{}/{}", render::namespace(ac), render::name(ac));
    let mut now_scrapes = Vec::new();
    for p in pods.iter().filter(|p| p.ready && !p.terminating) {
        if let Ok(text) = ctx.agents.metrics(ac, &p.name).await {
            now_scrapes.push((p.name.clone(), autoscale::parse_metrics(&text)));
        }
    }
    let t = (ctx.now)();
    let prev = {
        let mut m = ctx.scrapes.lock();
        match m.get(&key) {
            // Two passes in the same second: measure over a longer span next time.
            Some((t0, _)) if *t0 >= t => return autoscale::Load::default(),
            _ => m.insert(key, (t, now_scrapes.clone())),
        }
    };
    let Some((t0, before)) = prev else { return autoscale::Load::default() };
    // Only pods scraped both times.
    let before: BTreeMap<&str, &autoscale::Scrape> = before.iter().map(|(n, s)| (n.as_str(), s)).collect();
    let (mut b, mut a) = (Vec::new(), Vec::new());
    for (n, s) in &now_scrapes {
        if let Some(x) = before.get(n.as_str()) {
            b.push((*x).clone());
            a.push(s.clone());
        }
    }
    autoscale::load_between(&b, &a, (t - t0) as f64, requested_cores(ac))
}

fn requested_cores(ac: &AgentCluster) -> f64 {
    let q =
        ac.spec.resources.as_ref().and_then(|r| r.requests.as_ref()).and_then(|r| r.get("cpu")).map(|q| q.0.clone());
    match q {
        Some(s) if s.ends_with('m') => s.trim_end_matches('m').parse::<f64>().map(|m| m / 1000.0).unwrap_or(1.0),
        Some(s) => s.parse::<f64>().unwrap_or(1.0),
        None => 1.0,
    }
}

/// What the controller does when a pass fails: log, retry soon.
pub fn error_policy<A: Agents>(ac: Arc<AgentCluster>, e: &Error, _ctx: Arc<Ctx<A>>) -> Action {
    tracing::warn!(cluster = %render::name(&ac), error = %e, "reconcile failed; retrying in 5 s");
    Action::requeue(Duration::from_secs(5))
}
