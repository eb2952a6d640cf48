//! The AgentCluster and AgentIngestJob controllers against an in-memory Kubernetes API
//! server (tests/fake): create, scale out and in, a version change, a child deleted
//! behind the operator's back, a failing pod, deletion with and without volume
//! retention, the autoscaler, and an ingest job's progress. The AgentDB side (drain,
//! cluster status, /metrics) is a recording stand-in here; the same drain-and-replace
//! procedure runs against real AgentDB nodes in server/tests/e2e_rollout.rs.

mod fake;

use agentdb_operator::crd::{AgentCluster, AgentIngestJob};
use agentdb_operator::reconcile::{self, Agents, Ctx};
use agentdb_operator::rollout::{ClusterView, NodeView};
use fake::Fake;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

const NS: &str = "prod";

/// The AgentDB cluster as the operator sees it: nodes are the ready pods; a draining
/// node hands its replicas off at once (the real hand-off is tested on loopback).
#[derive(Clone, Default)]
struct Nodes {
    api: Fake,
    draining: Arc<Mutex<BTreeSet<String>>>,
    /// Every drain call, as `drain POD` / `undrain POD`, interleaved with the API log.
    calls: Arc<Mutex<Vec<String>>>,
    /// /metrics text per pod.
    metrics: Arc<Mutex<std::collections::BTreeMap<String, String>>>,
}

impl Agents for Nodes {
    async fn drain(&self, _ac: &AgentCluster, key: &str, node: &str, on: bool) -> anyhow::Result<()> {
        assert!(key.starts_with("adb_"), "the operator passes the admin key from its Secret");
        let mut d = self.draining.lock().unwrap();
        if on {
            d.insert(node.into());
        } else {
            d.remove(node);
        }
        let entry = format!("{} {node}", if on { "drain" } else { "undrain" });
        self.calls.lock().unwrap().push(entry.clone());
        self.api.0.lock().unwrap().log.push(entry);
        Ok(())
    }
    async fn view(&self, _ac: &AgentCluster, _key: &str) -> anyhow::Result<ClusterView> {
        let st = self.api.0.lock().unwrap();
        let d = self.draining.lock().unwrap();
        let nodes = st
            .names("api/v1", NS, "pods")
            .into_iter()
            .filter(|p| p.starts_with("c-") && !p.starts_with("c-nats"))
            .map(|p| {
                let pod = st.get("api/v1", NS, "pods", &p).unwrap();
                let alive = pod["status"]["conditions"][0]["status"] == "True";
                NodeView {
                    id: p.clone(),
                    alive,
                    replicas: if d.contains(&p) { 0 } else { 2 },
                    draining: d.contains(&p),
                }
            })
            .collect();
        Ok(ClusterView { nodes, under_replicated: 0 })
    }
    async fn metrics(&self, _ac: &AgentCluster, pod: &str) -> anyhow::Result<String> {
        self.metrics.lock().unwrap().get(pod).cloned().ok_or_else(|| anyhow::anyhow!("no metrics"))
    }
}

struct World {
    api: Fake,
    nodes: Nodes,
    ctx: Arc<Ctx<Nodes>>,
    clock: Arc<AtomicI64>,
}

fn world() -> World {
    let api = Fake::default();
    let client = kube::Client::new(api.clone(), NS);
    let nodes = Nodes { api: api.clone(), ..Default::default() };
    let clock = Arc::new(AtomicI64::new(1_000_000));
    let mut ctx = Ctx::new(client, nodes.clone());
    let c = clock.clone();
    ctx.now = Box::new(move || c.load(Ordering::SeqCst));
    World { api, nodes, ctx: Arc::new(ctx), clock }
}

fn cluster_spec(extra: Value) -> Value {
    let mut spec = json!({ "replicas": 3, "version": "1.0.0" });
    fake_merge(&mut spec, &extra);
    spec
}

fn fake_merge(t: &mut Value, p: &Value) {
    if let (Some(t), Some(p)) = (t.as_object_mut(), p.as_object()) {
        for (k, v) in p {
            t.insert(k.clone(), v.clone());
        }
    }
}

impl World {
    fn create(&self, spec: Value) {
        let body = json!({ "apiVersion": "agentdb.io/v1", "kind": "AgentCluster", "metadata": { "name": "c", "namespace": NS }, "spec": spec });
        self.raw("POST", "/apis/agentdb.io/v1/namespaces/prod/agentclusters", body);
    }

    fn raw(&self, method: &str, path: &str, body: Value) {
        use tower::{Service, ServiceExt};
        let mut svc = self.api.clone();
        let req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/merge-patch+json")
            .body(kube::client::Body::from(body.to_string().into_bytes()))
            .unwrap();
        let fut = async move { svc.ready().await.unwrap().call(req).await.unwrap() };
        let resp = futures::executor::block_on(fut);
        assert!(resp.status().is_success(), "{method} {path}: {}", resp.status());
    }

    fn patch_spec(&self, spec: Value) {
        self.raw("PATCH", "/apis/agentdb.io/v1/namespaces/prod/agentclusters/c", json!({ "spec": spec }));
    }

    fn ac(&self) -> Option<AgentCluster> {
        let v = self.api.0.lock().unwrap().get("apis/agentdb.io/v1", NS, "agentclusters", "c")?;
        Some(serde_json::from_value(v).unwrap())
    }

    /// One operator pass, then one step of the cluster's controllers.
    async fn pass(&self) {
        if let Some(ac) = self.ac() {
            reconcile::reconcile(Arc::new(ac), self.ctx.clone()).await.expect("reconcile");
        }
        self.api.0.lock().unwrap().kubelet();
    }

    async fn settle(&self, passes: usize) {
        for _ in 0..passes {
            self.pass().await;
        }
    }

    fn get(&self, prefix: &str, plural: &str, name: &str) -> Option<Value> {
        self.api.0.lock().unwrap().get(prefix, NS, plural, name)
    }

    fn status(&self) -> Value {
        serde_json::to_value(self.ac().unwrap().status.unwrap()).unwrap()
    }

    fn condition(&self, t: &str) -> (String, String) {
        let s = self.status();
        let c = s["conditions"].as_array().unwrap().iter().find(|c| c["type"] == t).unwrap().clone();
        (c["status"].as_str().unwrap().into(), c["message"].as_str().unwrap().into())
    }

    fn pods(&self) -> Vec<String> {
        let st = self.api.0.lock().unwrap();
        st.names("api/v1", NS, "pods").into_iter().filter(|p| !p.starts_with("c-nats")).collect()
    }

    fn log(&self) -> Vec<String> {
        self.api.0.lock().unwrap().log.clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_reconciles_every_child_and_reports_ready() {
    let w = world();
    w.create(cluster_spec(json!({ "monitoring": { "prometheus": true, "grafana": true },
        "resources": { "requests": { "cpu": "2000m", "memory": "4Gi" }, "limits": { "cpu": "4000m", "memory": "8Gi" } },
        "storage": { "size": "500Gi", "storageClass": "fast-ssd" } })));
    w.settle(3).await;

    let ac = w.ac().unwrap();
    assert!(ac.metadata.finalizers.unwrap().contains(&"agentdb.io/cleanup".to_string()));
    // The AgentDB StatefulSet: OnDelete (the operator replaces pods), restricted pods.
    let sts = w.get("apis/apps/v1", "statefulsets", "c").expect("StatefulSet c");
    assert_eq!(sts["spec"]["replicas"], 3);
    assert_eq!(sts["spec"]["updateStrategy"]["type"], "OnDelete");
    let pod = &sts["spec"]["template"]["spec"];
    let c0 = &pod["containers"][0];
    assert_eq!(c0["image"], "agentdb/agentdb:1.0.0");
    assert_eq!(c0["resources"]["limits"]["memory"], "8Gi");
    assert_eq!(c0["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c0["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(c0["readinessProbe"]["httpGet"]["path"], "/readyz");
    let env: Vec<String> =
        c0["env"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap().to_string()).collect();
    for e in [
        "AGENTDB_CLUSTER__URLS",
        "AGENTDB_CLUSTER__NODE_ID",
        "AGENTDB_SECURITY__BOOTSTRAP_KEY_FILE",
        "AGENTDB_ENCRYPTION_KEY",
        "AGENTDB_SHUTDOWN_DELAY_MS",
    ] {
        assert!(env.contains(&e.to_string()), "{e} in {env:?}");
    }
    assert_eq!(sts["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"], "fast-ssd");
    assert_eq!(sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"], "500Gi");
    // Everything around it.
    for (prefix, plural, name) in [
        ("api/v1", "services", "c"),
        ("api/v1", "services", "c-headless"),
        ("api/v1", "services", "c-nats"),
        ("api/v1", "configmaps", "c-nats-config"),
        ("apis/apps/v1", "statefulsets", "c-nats"),
        ("apis/policy/v1", "poddisruptionbudgets", "c"),
        ("apis/policy/v1", "poddisruptionbudgets", "c-nats"),
        ("api/v1", "serviceaccounts", "c"),
        ("apis/rbac.authorization.k8s.io/v1", "roles", "c"),
        ("apis/rbac.authorization.k8s.io/v1", "rolebindings", "c"),
        ("apis/networking.k8s.io/v1", "networkpolicies", "c-server"),
        ("apis/networking.k8s.io/v1", "networkpolicies", "c-nats"),
        ("apis/monitoring.coreos.com/v1", "servicemonitors", "c"),
        ("api/v1", "configmaps", "c-grafana-dashboard"),
    ] {
        let o = w.get(prefix, plural, name).unwrap_or_else(|| panic!("{plural}/{name} missing"));
        assert_eq!(o["metadata"]["ownerReferences"][0]["kind"], "AgentCluster", "{plural}/{name} is owned");
    }
    // Secrets: generated once, not owned (the volumes are retained by default).
    let key = w.get("api/v1", "secrets", "c-admin-key").expect("admin key secret");
    assert!(key["metadata"].get("ownerReferences").is_none());
    use base64::Engine;
    let k = String::from_utf8(
        base64::engine::general_purpose::STANDARD.decode(key["data"]["key"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    assert!(k.starts_with("adb_") && k.len() == 4 + 12 + 1 + 40, "{k}");
    let mk = w.get("api/v1", "secrets", "c-encryption").expect("encryption secret");
    let m = String::from_utf8(
        base64::engine::general_purpose::STANDARD.decode(mk["data"]["key"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(m.len(), 64);

    // Status: ready, with the observed generation.
    let s = w.status();
    assert_eq!(s["phase"], "Running", "{s}");
    assert_eq!(s["readyReplicas"], 3);
    assert_eq!(s["currentVersion"], "1.0.0");
    assert_eq!(s["observedGeneration"], ac.metadata.generation.unwrap());
    assert_eq!(w.condition("Ready").0, "True");
    assert_eq!(w.condition("Progressing").0, "False");
    assert_eq!(w.condition("Degraded").0, "False");

    // Idempotent: another pass changes nothing but the status, and the Secrets stay.
    let before = w.log().len();
    w.pass().await;
    let writes: Vec<String> = w.log()[before..].iter().filter(|l| !l.starts_with("STATUS")).cloned().collect();
    assert!(writes.is_empty(), "a settled cluster is left alone: {writes:?}");
    assert_eq!(w.get("api/v1", "secrets", "c-admin-key").unwrap()["data"], key["data"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_servicemonitor_crd_is_a_warning_not_a_failure() {
    let w = world();
    w.api.0.lock().unwrap().missing.insert("servicemonitors".into());
    w.create(cluster_spec(json!({ "monitoring": { "prometheus": true } })));
    w.settle(3).await;
    assert_eq!(w.condition("Ready").0, "True");
    let (d, msg) = w.condition("Degraded");
    assert_eq!(d, "True");
    assert!(msg.contains("ServiceMonitor CRD is not installed"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_out_then_in_drains_each_node_before_its_pod_goes() {
    let w = world();
    w.create(cluster_spec(json!({})));
    w.settle(3).await;
    w.patch_spec(json!({ "replicas": 5 }));
    w.settle(3).await;
    assert_eq!(w.pods(), ["c-0", "c-1", "c-2", "c-3", "c-4"]);
    assert_eq!(w.status()["readyReplicas"], 5);
    assert!(w.nodes.calls.lock().unwrap().is_empty(), "scale-out drains nothing");

    w.patch_spec(json!({ "replicas": 3 }));
    let mark = w.log().len();
    w.settle(8).await;
    assert_eq!(w.pods(), ["c-0", "c-1", "c-2"]);
    assert_eq!(w.get("apis/apps/v1", "statefulsets", "c").unwrap()["spec"]["replicas"], 3);
    let log: Vec<String> = w.log()[mark..]
        .iter()
        .filter(|l| l.starts_with("drain") || l.starts_with("UPDATE statefulsets/c"))
        .cloned()
        .collect();
    // c-4 drained, then the StatefulSet shrunk by one; then c-3.
    assert_eq!(log, ["drain c-4", "UPDATE statefulsets/c", "drain c-3", "UPDATE statefulsets/c"], "{log:?}");
    // The volumes of removed pods stay.
    assert!(w.get("api/v1", "persistentvolumeclaims", "data-c-4").is_some());
    assert_eq!(w.status()["phase"], "Running");

    // Scaling out again brings c-3 back, and its stale drain flag is lifted.
    w.patch_spec(json!({ "replicas": 4 }));
    w.settle(3).await;
    assert!(w.nodes.calls.lock().unwrap().contains(&"undrain c-3".to_string()));
    assert!(!w.nodes.draining.lock().unwrap().contains("c-3"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_change_replaces_one_drained_pod_at_a_time() {
    let w = world();
    w.create(cluster_spec(json!({})));
    w.settle(3).await;
    w.patch_spec(json!({ "version": "1.1.0" }));
    let mark = w.log().len();
    let mut max_missing = 0;
    for _ in 0..20 {
        w.pass().await;
        let st = w.api.0.lock().unwrap();
        let ready = ["c-0", "c-1", "c-2"]
            .iter()
            .filter(|p| {
                st.get("api/v1", NS, "pods", p).is_some_and(|x| x["status"]["conditions"][0]["status"] == "True")
            })
            .count();
        max_missing = max_missing.max(3 - ready);
    }
    assert_eq!(max_missing, 1, "never more than one pod out at a time");
    let log: Vec<String> = w.log()[mark..]
        .iter()
        .filter(|l| l.starts_with("drain") || l.starts_with("undrain") || l.starts_with("DELETE pods"))
        .cloned()
        .collect();
    assert_eq!(
        log,
        [
            "drain c-2",
            "DELETE pods/c-2",
            "undrain c-2",
            "drain c-1",
            "DELETE pods/c-1",
            "undrain c-1",
            "drain c-0",
            "DELETE pods/c-0",
            "undrain c-0",
        ],
        "highest ordinal first, each drained before it is deleted and undrained once its replacement is ready"
    );
    for p in ["c-0", "c-1", "c-2"] {
        let pod = w.get("api/v1", "pods", p).unwrap();
        assert_eq!(pod["spec"]["containers"][0]["image"], "agentdb/agentdb:1.1.0", "{p}");
    }
    let s = w.status();
    assert_eq!(s["currentVersion"], "1.1.0");
    assert_eq!(s["phase"], "Running");
    assert!(s.get("rollout").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_waits_while_a_pod_is_not_ready() {
    let w = world();
    w.create(cluster_spec(json!({})));
    w.settle(3).await;
    w.api.0.lock().unwrap().unready.insert("c-0".into());
    w.settle(1).await;
    w.patch_spec(json!({ "version": "2.0.0" }));
    w.settle(5).await;
    assert!(w.nodes.calls.lock().unwrap().is_empty(), "nothing is drained while c-0 is not ready");
    assert_eq!(w.status()["phase"], "Updating");
    w.api.0.lock().unwrap().unready.clear();
    w.settle(15).await;
    assert_eq!(w.status()["currentVersion"], "2.0.0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_deleted_behind_the_operators_back_come_back() {
    let w = world();
    w.create(cluster_spec(json!({})));
    w.settle(3).await;
    {
        let mut st = w.api.0.lock().unwrap();
        st.remove(&("api/v1".into(), NS.into(), "services".into(), "c".into()));
        st.remove(&("apis/networking.k8s.io/v1".into(), NS.into(), "networkpolicies".into(), "c-server".into()));
        // Edited by hand: the operator's fields win.
        let sts = st.objects.get_mut(&("apis/apps/v1".into(), NS.into(), "statefulsets".into(), "c".into())).unwrap();
        sts["spec"]["template"]["spec"]["containers"][0]["image"] = json!("evil/agentdb:latest");
    }
    w.pass().await;
    assert!(w.get("api/v1", "services", "c").is_some());
    assert!(w.get("apis/networking.k8s.io/v1", "networkpolicies", "c-server").is_some());
    let sts = w.get("apis/apps/v1", "statefulsets", "c").unwrap();
    assert_eq!(sts["spec"]["template"]["spec"]["containers"][0]["image"], "agentdb/agentdb:1.0.0");
    // A deleted Secret is made again (a new key: the old one is gone for good).
    w.api.0.lock().unwrap().remove(&("api/v1".into(), NS.into(), "secrets".into(), "c-admin-key".into()));
    w.pass().await;
    assert!(w.get("api/v1", "secrets", "c-admin-key").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_pod_is_reported_degraded() {
    let w = world();
    w.create(cluster_spec(json!({})));
    w.settle(3).await;
    w.api.0.lock().unwrap().failing.insert("c-1".into());
    w.settle(2).await;
    let s = w.status();
    assert_eq!(s["phase"], "Degraded");
    assert_eq!(s["readyReplicas"], 2);
    let (d, msg) = w.condition("Degraded");
    assert_eq!(d, "True");
    assert!(msg.contains("c-1") && msg.contains("CrashLoopBackOff"), "{msg}");
    assert_eq!(w.condition("Ready").0, "False");
    w.api.0.lock().unwrap().failing.clear();
    w.settle(2).await;
    assert_eq!(w.condition("Degraded").0, "False");
    assert_eq!(w.status()["phase"], "Running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_keeps_volumes_and_secrets_by_default() {
    let w = world();
    w.create(cluster_spec(json!({})));
    w.settle(3).await;
    w.raw("DELETE", "/apis/agentdb.io/v1/namespaces/prod/agentclusters/c", json!({}));
    assert!(w.ac().unwrap().metadata.deletion_timestamp.is_some(), "the finalizer holds it");
    w.pass().await;
    assert!(w.ac().is_none(), "gone once the finalizer ran");
    assert!(w.get("apis/apps/v1", "statefulsets", "c").is_none(), "children collected through owner references");
    assert!(w.get("api/v1", "services", "c").is_none());
    assert!(w.get("api/v1", "pods", "c-0").is_none());
    for i in 0..3 {
        assert!(w.get("api/v1", "persistentvolumeclaims", &format!("data-c-{i}")).is_some(), "volume {i} kept");
    }
    assert!(w.get("api/v1", "secrets", "c-admin-key").is_some());
    assert!(w.get("api/v1", "secrets", "c-encryption").is_some(), "the key that unlocks the kept volumes is kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_without_retention_removes_volumes_and_secrets() {
    let w = world();
    w.create(cluster_spec(json!({ "storage": { "size": "1Gi", "retainOnDelete": false } })));
    w.settle(3).await;
    assert_eq!(
        w.get("api/v1", "secrets", "c-admin-key").unwrap()["metadata"]["ownerReferences"][0]["kind"],
        "AgentCluster"
    );
    w.raw("DELETE", "/apis/agentdb.io/v1/namespaces/prod/agentclusters/c", json!({}));
    w.pass().await;
    assert!(w.ac().is_none());
    let st = w.api.0.lock().unwrap();
    assert!(
        st.names("api/v1", NS, "persistentvolumeclaims").is_empty(),
        "{:?}",
        st.names("api/v1", NS, "persistentvolumeclaims")
    );
    assert!(st.names("api/v1", NS, "secrets").is_empty());
}

fn metrics_text(requests: u64, cpu: f64) -> String {
    format!(
        "agentdb_grpc_requests_total{{method=\"Search\",code=\"OK\"}} {requests}\nprocess_cpu_seconds_total {cpu}\n\
         agentdb_grpc_request_duration_seconds_bucket{{method=\"Search\",le=\"0.001\"}} {requests}\n\
         agentdb_grpc_request_duration_seconds_bucket{{method=\"Search\",le=\"+Inf\"}} {requests}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_autoscaler_scales_out_after_its_window_and_in_by_draining() {
    let w = world();
    w.create(cluster_spec(json!({ "replicas": 2, "autoscaling": { "minReplicas": 2, "maxReplicas": 4,
        "targetQpsPerNode": 100.0, "scaleOutStabilizationSeconds": 60, "scaleInStabilizationSeconds": 120 } })));
    w.settle(3).await;
    let set_load = |qps: u64, t: i64| {
        let mut m = w.nodes.metrics.lock().unwrap();
        for p in ["c-0", "c-1", "c-2", "c-3"] {
            m.insert(p.into(), metrics_text(qps * t as u64, 0.0));
        }
    };
    // 250 requests/s per node on 2 nodes: 2.5x the target.
    for step in 0..8 {
        let t = step * 15;
        w.clock.store(1_000_000 + t, Ordering::SeqCst);
        set_load(250, t);
        w.pass().await;
    }
    assert_eq!(w.pods().len(), 4, "2 nodes at 2.5x -> capped at max 4: {}", w.status()["autoscaler"]);
    // Quiet: 10/s per node on 4 nodes; one node fewer at a time, each drained first.
    let mark = w.log().len();
    for step in 8..60 {
        let t = step * 15;
        w.clock.store(1_000_000 + t, Ordering::SeqCst);
        set_load(10, t);
        w.pass().await;
    }
    assert_eq!(w.pods().len(), 2, "{}", w.status()["autoscaler"]);
    let drains: Vec<String> = w.log()[mark..].iter().filter(|l| l.starts_with("drain")).cloned().collect();
    assert_eq!(drains, ["drain c-3", "drain c-2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ingest_job_becomes_an_indexed_job_and_reports_progress() {
    let w = world();
    w.create(cluster_spec(json!({})));
    w.settle(3).await;
    let body = json!({ "apiVersion": "agentdb.io/v1", "kind": "AgentIngestJob", "metadata": { "name": "photos", "namespace": NS },
        "spec": { "cluster": "c", "collection": "media", "multimodal": true, "source": { "pvc": "dataset", "path": "/photos" }, "slices": 8, "parallelism": 3 } });
    w.raw("POST", "/apis/agentdb.io/v1/namespaces/prod/agentingestjobs", body);
    let get = || -> AgentIngestJob {
        serde_json::from_value(w.get("apis/agentdb.io/v1", "agentingestjobs", "photos").unwrap()).unwrap()
    };
    agentdb_operator::ingest::reconcile(Arc::new(get()), w.ctx.clone()).await.unwrap();
    let job = w.get("apis/batch/v1", "jobs", "photos-ingest").expect("the Job");
    assert_eq!(job["spec"]["completionMode"], "Indexed");
    assert_eq!(job["spec"]["completions"], 8);
    assert_eq!(job["spec"]["parallelism"], 3);
    let args: Vec<String> = job["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().into())
        .collect();
    assert_eq!(
        args,
        ["ingest", "media", "/dataset/photos", "--slice", "$(JOB_COMPLETION_INDEX)/8", "--json", "--create-multimodal"]
    );
    assert_eq!(get().status.unwrap().phase, "Running");
    // The Job controller reports indexes done and failed.
    {
        let mut st = w.api.0.lock().unwrap();
        let j =
            st.objects.get_mut(&("apis/batch/v1".into(), NS.into(), "jobs".into(), "photos-ingest".into())).unwrap();
        j["status"] = json!({ "completedIndexes": "0-2,5", "failedIndexes": "", "active": 3 });
    }
    agentdb_operator::ingest::reconcile(Arc::new(get()), w.ctx.clone()).await.unwrap();
    let s = get().status.unwrap();
    assert_eq!((s.completed_slices, s.active_slices, s.phase.as_str()), (4, 3, "Running"));
    {
        let mut st = w.api.0.lock().unwrap();
        let j =
            st.objects.get_mut(&("apis/batch/v1".into(), NS.into(), "jobs".into(), "photos-ingest".into())).unwrap();
        j["status"] =
            json!({ "completedIndexes": "0-7", "active": 0, "conditions": [{ "type": "Complete", "status": "True" }] });
    }
    agentdb_operator::ingest::reconcile(Arc::new(get()), w.ctx.clone()).await.unwrap();
    let s = get().status.unwrap();
    assert_eq!((s.completed_slices, s.phase.as_str()), (8, "Succeeded"));
}
