//! What an AgentCluster becomes: every child object as JSON, rendered from the spec
//! alone (no API calls), so the same output is applied by the controller, printed by
//! `agentdb-operator render` and validated offline against the Kubernetes schemas.
//!
//! Secrets are not rendered here: they hold generated keys, are created once and never
//! rewritten (see `reconcile::ensure_secrets`).

use crate::crd::{AgentCluster, DEFAULT_IMAGE, DEFAULT_NATS_IMAGE};
use serde_json::{json, Value};
use std::collections::BTreeMap;

pub const GRPC_PORT: i32 = 7720;
pub const HTTP_PORT: i32 = 7721;
const NATS_CLIENT_PORT: i32 = 4222;
const NATS_ROUTE_PORT: i32 = 6222;
const NATS_MONITOR_PORT: i32 = 8222;
/// The label the operator's objects carry (and the field manager of its applies).
pub const MANAGER: &str = "agentdb-operator";
/// The server keeps serving this long after SIGTERM while Services take it out.
pub const SHUTDOWN_DELAY_MS: u64 = 5000;
const AGENTDB_UID: i64 = 10001;
const NATS_UID: i64 = 1000;

/// The Grafana dashboard shipped in `deploy/grafana/`.
pub const GRAFANA_DASHBOARD: &str = include_str!("../../deploy/grafana/agentdb-dashboard.json");

/// One child object and how to address it.
#[derive(Debug, Clone)]
pub struct Child {
    pub api_version: &'static str,
    pub kind: &'static str,
    /// Lower-case plural (the REST path segment).
    pub plural: &'static str,
    pub name: String,
    pub object: Value,
}

pub fn name(ac: &AgentCluster) -> String {
    ac.metadata.name.clone().unwrap_or_default()
}
pub fn namespace(ac: &AgentCluster) -> String {
    ac.metadata.namespace.clone().unwrap_or_else(|| "default".into())
}
pub fn headless(n: &str) -> String {
    format!("{n}-headless")
}
pub fn nats_name(n: &str) -> String {
    format!("{n}-nats")
}
pub fn admin_secret(n: &str) -> String {
    format!("{n}-admin-key")
}
pub fn encryption_secret(n: &str) -> String {
    format!("{n}-encryption")
}

/// The labels every pod of the AgentDB StatefulSet carries (and its selector).
pub fn server_selector(n: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), "agentdb".to_string()),
        ("app.kubernetes.io/instance".to_string(), n.to_string()),
    ])
}
fn nats_selector(n: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), "nats".to_string()),
        ("app.kubernetes.io/instance".to_string(), n.to_string()),
    ])
}
fn labels(ac: &AgentCluster, component: &str, selector: BTreeMap<String, String>) -> Value {
    let mut l = selector;
    l.insert("app.kubernetes.io/component".into(), component.into());
    l.insert("app.kubernetes.io/managed-by".into(), MANAGER.into());
    l.insert("app.kubernetes.io/part-of".into(), "agentdb".into());
    l.insert("app.kubernetes.io/version".into(), label_value(&ac.spec.version));
    json!(l)
}
/// A label value: at most 63 characters of [A-Za-z0-9._-], starting and ending alphanumeric.
fn label_value(v: &str) -> String {
    let s: String =
        v.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).take(63).collect();
    s.trim_matches(|c: char| !c.is_ascii_alphanumeric()).to_string()
}

/// The owner reference that makes Kubernetes' garbage collector delete a child with its
/// AgentCluster.
pub fn owner_ref(ac: &AgentCluster) -> Value {
    json!({
        "apiVersion": "agentdb.io/v1", "kind": "AgentCluster", "name": name(ac),
        "uid": ac.metadata.uid.clone().unwrap_or_default(),
        "controller": true, "blockOwnerDeletion": true,
    })
}

fn meta(ac: &AgentCluster, name: &str, labels: Value) -> Value {
    json!({ "name": name, "namespace": namespace(ac), "labels": labels, "ownerReferences": [owner_ref(ac)] })
}

fn child(api_version: &'static str, kind: &'static str, plural: &'static str, object: Value) -> Child {
    let name = object["metadata"]["name"].as_str().unwrap_or_default().to_string();
    let mut object = object;
    object["apiVersion"] = json!(api_version);
    object["kind"] = json!(kind);
    Child { api_version, kind, plural, name, object }
}

/// The NATS URLs the AgentDB nodes connect to.
pub fn nats_urls(ac: &AgentCluster) -> String {
    if let Some(u) = ac.spec.nats.url.as_deref().filter(|u| !u.trim().is_empty()) {
        return u.trim().to_string();
    }
    let (n, ns) = (name(ac), namespace(ac));
    let nn = nats_name(&n);
    (0..ac.spec.nats.replicas.max(1))
        .map(|i| format!("nats://{nn}-{i}.{nn}.{ns}.svc:{NATS_CLIENT_PORT}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The gRPC address of one AgentDB pod, through the headless Service.
pub fn pod_url(ac: &AgentCluster, pod: &str) -> String {
    format!("http://{pod}.{}.{}.svc:{GRPC_PORT}", headless(&name(ac)), namespace(ac))
}
/// The HTTP address (metrics, readiness) of one AgentDB pod.
pub fn pod_http(ac: &AgentCluster, pod: &str) -> String {
    format!("{pod}.{}.{}.svc:{HTTP_PORT}", headless(&name(ac)), namespace(ac))
}
/// The client Service's gRPC URL.
pub fn service_url(ac: &AgentCluster) -> String {
    format!("http://{}.{}.svc:{GRPC_PORT}", name(ac), namespace(ac))
}

/// A server setting (`storage.flush_rows`) as its environment variable
/// (`AGENTDB_STORAGE__FLUSH_ROWS`).
pub fn env_name(key: &str) -> String {
    format!("AGENTDB_{}", key.trim().to_uppercase().replace('.', "__"))
}

fn restricted_container() -> Value {
    json!({
        "allowPrivilegeEscalation": false,
        "readOnlyRootFilesystem": true,
        "runAsNonRoot": true,
        "capabilities": { "drop": ["ALL"] },
        "seccompProfile": { "type": "RuntimeDefault" },
    })
}
fn restricted_pod(uid: i64) -> Value {
    json!({
        "runAsNonRoot": true, "runAsUser": uid, "runAsGroup": uid, "fsGroup": uid,
        "seccompProfile": { "type": "RuntimeDefault" },
    })
}

/// Every child object of `ac` (Secrets aside), in the order they are applied.
pub fn render(ac: &AgentCluster) -> Vec<Child> {
    render_with(ac, desired_replicas(ac))
}

/// As `render`, with the AgentDB StatefulSet at `replicas` pods (a scale-in shrinks it
/// one drained node at a time).
pub fn render_with(ac: &AgentCluster, replicas: i32) -> Vec<Child> {
    let mut out = Vec::new();
    let n = name(ac);
    let sec = &ac.spec.security;
    let run_nats = ac.spec.nats.url.as_deref().is_none_or(|u| u.trim().is_empty());
    if sec.rbac {
        out.extend(rbac(ac));
    }
    if run_nats {
        out.extend(nats(ac));
    }
    out.push(child(
        "v1",
        "Service",
        "services",
        json!({
            "metadata": meta(ac, &headless(&n), labels(ac, "server", server_selector(&n))),
            "spec": {
                "clusterIP": "None",
                // Peers and the operator reach a pod before it is ready (drain, status).
                "publishNotReadyAddresses": true,
                "selector": server_selector(&n),
                "ports": [
                    { "name": "grpc", "port": GRPC_PORT, "targetPort": "grpc" },
                    { "name": "http", "port": HTTP_PORT, "targetPort": "http" },
                ],
            },
        }),
    ));
    out.push(child(
        "v1",
        "Service",
        "services",
        json!({
            "metadata": meta(ac, &n, labels(ac, "server", server_selector(&n))),
            "spec": {
                "type": "ClusterIP",
                "selector": server_selector(&n),
                "ports": [
                    { "name": "grpc", "port": GRPC_PORT, "targetPort": "grpc", "appProtocol": "grpc" },
                    { "name": "http", "port": HTTP_PORT, "targetPort": "http" },
                ],
            },
        }),
    ));
    out.push(server_statefulset(ac, replicas));
    out.push(child(
        "policy/v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        json!({
            "metadata": meta(ac, &n, labels(ac, "server", server_selector(&n))),
            "spec": { "maxUnavailable": 1, "selector": { "matchLabels": server_selector(&n) } },
        }),
    ));
    if sec.network_policy {
        out.extend(network_policies(ac, run_nats));
    }
    if ac.spec.monitoring.enabled && ac.spec.monitoring.prometheus {
        out.push(child(
            "monitoring.coreos.com/v1",
            "ServiceMonitor",
            "servicemonitors",
            json!({
                "metadata": meta(ac, &n, labels(ac, "server", server_selector(&n))),
                "spec": {
                    "selector": { "matchLabels": server_selector(&n) },
                    "endpoints": [{ "port": "http", "path": "/metrics", "interval": "15s" }],
                },
            }),
        ));
    }
    if ac.spec.monitoring.enabled && ac.spec.monitoring.grafana {
        let mut l = labels(ac, "server", server_selector(&n));
        l["grafana_dashboard"] = json!("1");
        out.push(child(
            "v1",
            "ConfigMap",
            "configmaps",
            json!({
                "metadata": meta(ac, &format!("{n}-grafana-dashboard"), l),
                "data": { "agentdb-dashboard.json": GRAFANA_DASHBOARD },
            }),
        ));
    }
    out
}

fn rbac(ac: &AgentCluster) -> Vec<Child> {
    let n = name(ac);
    let l = labels(ac, "server", server_selector(&n));
    let mut secrets = vec![admin_secret(&n), encryption_secret(&n)];
    if let Some(c) = &ac.spec.nats.credentials_secret {
        secrets.push(c.clone());
    }
    vec![
        child(
            "v1",
            "ServiceAccount",
            "serviceaccounts",
            json!({ "metadata": meta(ac, &n, l.clone()), "automountServiceAccountToken": false }),
        ),
        child(
            "rbac.authorization.k8s.io/v1",
            "Role",
            "roles",
            json!({
                "metadata": meta(ac, &n, l.clone()),
                // The nodes need nothing from the API but their own Secrets (mounted).
                "rules": [{ "apiGroups": [""], "resources": ["secrets"], "resourceNames": secrets, "verbs": ["get"] }],
            }),
        ),
        child(
            "rbac.authorization.k8s.io/v1",
            "RoleBinding",
            "rolebindings",
            json!({
                "metadata": meta(ac, &n, l),
                "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": n },
                "subjects": [{ "kind": "ServiceAccount", "name": n, "namespace": namespace(ac) }],
            }),
        ),
    ]
}

fn nats(ac: &AgentCluster) -> Vec<Child> {
    let n = name(ac);
    let ns = namespace(ac);
    let nn = nats_name(&n);
    let l = labels(ac, "nats", nats_selector(&n));
    let replicas = ac.spec.nats.replicas.max(1);
    let mut conf = format!(
        "server_name: $POD_NAME\nlisten: 0.0.0.0:{NATS_CLIENT_PORT}\nhttp: 0.0.0.0:{NATS_MONITOR_PORT}\n\
         jetstream {{\n  store_dir: /data/jetstream\n}}\nlame_duck_duration: 30s\n"
    );
    if replicas > 1 {
        let routes: Vec<String> =
            (0..replicas).map(|i| format!("    nats://{nn}-{i}.{nn}.{ns}.svc:{NATS_ROUTE_PORT}")).collect();
        conf.push_str(&format!(
            "cluster {{\n  name: {nn}\n  listen: 0.0.0.0:{NATS_ROUTE_PORT}\n  routes: [\n{}\n  ]\n}}\n",
            routes.join("\n")
        ));
    }
    let image = ac.spec.nats.image.clone().unwrap_or_else(|| DEFAULT_NATS_IMAGE.into());
    let mut pod_spec = json!({
        "serviceAccountName": if ac.spec.security.rbac { n.clone() } else { "default".into() },
        "automountServiceAccountToken": false,
        "terminationGracePeriodSeconds": 60,
        "containers": [{
            "name": "nats",
            "image": image,
            "args": ["--config", "/etc/nats/nats.conf"],
            "env": [{ "name": "POD_NAME", "valueFrom": { "fieldRef": { "fieldPath": "metadata.name" } } }],
            "ports": [
                { "name": "client", "containerPort": NATS_CLIENT_PORT },
                { "name": "cluster", "containerPort": NATS_ROUTE_PORT },
                { "name": "monitor", "containerPort": NATS_MONITOR_PORT },
            ],
            "readinessProbe": { "httpGet": { "path": "/healthz?js-enabled-only=true", "port": "monitor" }, "periodSeconds": 5 },
            "livenessProbe": { "httpGet": { "path": "/healthz?js-enabled-only=true", "port": "monitor" }, "periodSeconds": 10, "failureThreshold": 6 },
            "lifecycle": { "preStop": { "exec": { "command": ["nats-server", "--signal", "ldm=/var/run/nats/nats.pid"] } } },
            "volumeMounts": [
                { "name": "config", "mountPath": "/etc/nats" },
                { "name": "data", "mountPath": "/data" },
                { "name": "run", "mountPath": "/var/run/nats" },
            ],
        }],
        "volumes": [
            { "name": "config", "configMap": { "name": format!("{nn}-config") } },
            { "name": "run", "emptyDir": {} },
        ],
    });
    conf.push_str("pid_file: /var/run/nats/nats.pid\n");
    if ac.spec.security.pod_security_policy {
        pod_spec["securityContext"] = restricted_pod(NATS_UID);
        pod_spec["containers"][0]["securityContext"] = restricted_container();
    }
    vec![
        child(
            "v1",
            "ConfigMap",
            "configmaps",
            json!({ "metadata": meta(ac, &format!("{nn}-config"), l.clone()), "data": { "nats.conf": conf } }),
        ),
        child(
            "v1",
            "Service",
            "services",
            json!({
                "metadata": meta(ac, &nn, l.clone()),
                "spec": {
                    "clusterIP": "None",
                    "publishNotReadyAddresses": true,
                    "selector": nats_selector(&n),
                    "ports": [
                        { "name": "client", "port": NATS_CLIENT_PORT, "targetPort": "client" },
                        { "name": "cluster", "port": NATS_ROUTE_PORT, "targetPort": "cluster" },
                        { "name": "monitor", "port": NATS_MONITOR_PORT, "targetPort": "monitor" },
                    ],
                },
            }),
        ),
        child(
            "apps/v1",
            "StatefulSet",
            "statefulsets",
            json!({
                "metadata": meta(ac, &nn, l.clone()),
                "spec": {
                    "serviceName": nn,
                    "replicas": replicas,
                    "podManagementPolicy": "Parallel",
                    "selector": { "matchLabels": nats_selector(&n) },
                    "template": { "metadata": { "labels": l.clone() }, "spec": pod_spec },
                    "volumeClaimTemplates": [pvc_template(ac, &ac.spec.nats.storage_size, l.clone())],
                },
            }),
        ),
        child(
            "policy/v1",
            "PodDisruptionBudget",
            "poddisruptionbudgets",
            json!({
                "metadata": meta(ac, &nn, l),
                "spec": { "maxUnavailable": 1, "selector": { "matchLabels": nats_selector(&n) } },
            }),
        ),
    ]
}

fn pvc_template(ac: &AgentCluster, size: &str, labels: Value) -> Value {
    let mut spec = json!({ "accessModes": ["ReadWriteOnce"], "resources": { "requests": { "storage": size } } });
    if let Some(c) = ac.spec.storage.storage_class.as_deref().filter(|c| !c.is_empty()) {
        spec["storageClassName"] = json!(c);
    }
    json!({ "metadata": { "name": "data", "labels": labels }, "spec": spec })
}

/// The replica count the StatefulSet should have now: the spec's, or the autoscaler's
/// choice within its bounds.
pub fn desired_replicas(ac: &AgentCluster) -> i32 {
    let base = ac.spec.replicas.max(1);
    match (&ac.spec.autoscaling, ac.status.as_ref().and_then(|s| s.autoscaler.as_ref())) {
        (Some(a), Some(st)) if st.desired_replicas > 0 => {
            st.desired_replicas.clamp(a.min_replicas.max(1), a.max_replicas.max(1))
        }
        (Some(a), _) => base.clamp(a.min_replicas.max(1), a.max_replicas.max(1)),
        _ => base,
    }
}

fn server_statefulset(ac: &AgentCluster, replicas: i32) -> Child {
    let n = name(ac);
    let l = labels(ac, "server", server_selector(&n));
    let sec = &ac.spec.security;
    let image = format!("{}:{}", ac.spec.image.as_deref().unwrap_or(DEFAULT_IMAGE), ac.spec.version);
    let mut env = vec![
        json!({ "name": "AGENTDB_DATA_DIR", "value": "/data" }),
        json!({ "name": "AGENTDB_LISTEN", "value": format!("0.0.0.0:{GRPC_PORT}") }),
        json!({ "name": "AGENTDB_HTTP_LISTEN", "value": format!("0.0.0.0:{HTTP_PORT}") }),
        json!({ "name": "AGENTDB_LOG_FORMAT", "value": "json" }),
        json!({ "name": "AGENTDB_SHUTDOWN_DELAY_MS", "value": SHUTDOWN_DELAY_MS.to_string() }),
        json!({ "name": "AGENTDB_CLUSTER__URLS", "value": nats_urls(ac) }),
        json!({ "name": "AGENTDB_CLUSTER__NODE_ID", "valueFrom": { "fieldRef": { "fieldPath": "metadata.name" } } }),
    ];
    let mut mounts =
        vec![json!({ "name": "data", "mountPath": "/data" }), json!({ "name": "tmp", "mountPath": "/tmp" })];
    let mut volumes = vec![json!({ "name": "tmp", "emptyDir": {} })];
    if sec.auth {
        env.push(json!({ "name": "AGENTDB_SECURITY__AUTH", "value": "api_key" }));
        env.push(json!({ "name": "AGENTDB_SECURITY__BOOTSTRAP_KEY_FILE", "value": "/etc/agentdb/admin/key" }));
        mounts.push(json!({ "name": "admin-key", "mountPath": "/etc/agentdb/admin", "readOnly": true }));
        volumes
            .push(json!({ "name": "admin-key", "secret": { "secretName": admin_secret(&n), "defaultMode": 0o400 } }));
    } else {
        env.push(json!({ "name": "AGENTDB_SECURITY__INSECURE", "value": "true" }));
    }
    if sec.encryption {
        env.push(json!({ "name": "AGENTDB_ENCRYPTION_KEY",
            "valueFrom": { "secretKeyRef": { "name": encryption_secret(&n), "key": "key" } } }));
    }
    if let Some(c) = &ac.spec.nats.credentials_secret {
        env.push(json!({ "name": "AGENTDB_CLUSTER__CREDENTIALS", "value": "/etc/agentdb/nats/nats.creds" }));
        mounts.push(json!({ "name": "nats-creds", "mountPath": "/etc/agentdb/nats", "readOnly": true }));
        volumes.push(json!({ "name": "nats-creds", "secret": { "secretName": c, "defaultMode": 0o400 } }));
    }
    for (k, v) in &ac.spec.config {
        env.push(json!({ "name": env_name(k), "value": v }));
    }
    let mut container = json!({
        "name": "agentdb",
        "image": image,
        "command": ["agentdb", "serve"],
        "env": env,
        "ports": [
            { "name": "grpc", "containerPort": GRPC_PORT },
            { "name": "http", "containerPort": HTTP_PORT },
        ],
        "startupProbe": { "httpGet": { "path": "/healthz", "port": "http" }, "periodSeconds": 5, "failureThreshold": 120 },
        "readinessProbe": { "httpGet": { "path": "/readyz", "port": "http" }, "periodSeconds": 2, "failureThreshold": 1 },
        "livenessProbe": { "httpGet": { "path": "/healthz", "port": "http" }, "periodSeconds": 10, "failureThreshold": 6 },
        "volumeMounts": mounts,
    });
    if let Some(p) = &ac.spec.image_pull_policy {
        container["imagePullPolicy"] = json!(p);
    }
    if let Some(r) = &ac.spec.resources {
        container["resources"] = serde_json::to_value(r).unwrap_or(Value::Null);
    }
    let mut pod_spec = json!({
        "serviceAccountName": if sec.rbac { n.clone() } else { "default".into() },
        "automountServiceAccountToken": false,
        // The shutdown delay, then in-flight requests and a last flush.
        "terminationGracePeriodSeconds": 60,
        "containers": [container],
        "volumes": volumes,
        "affinity": { "podAntiAffinity": { "preferredDuringSchedulingIgnoredDuringExecution": [{
            "weight": 100,
            "podAffinityTerm": { "topologyKey": "kubernetes.io/hostname", "labelSelector": { "matchLabels": server_selector(&n) } },
        }] } },
    });
    if sec.pod_security_policy {
        pod_spec["securityContext"] = restricted_pod(AGENTDB_UID);
        pod_spec["containers"][0]["securityContext"] = restricted_container();
    }
    child(
        "apps/v1",
        "StatefulSet",
        "statefulsets",
        json!({
            "metadata": meta(ac, &n, l.clone()),
            "spec": {
                "serviceName": headless(&n),
                "replicas": replicas,
                "podManagementPolicy": "Parallel",
                // The operator replaces pods itself, draining each node first.
                "updateStrategy": { "type": "OnDelete" },
                "selector": { "matchLabels": server_selector(&n) },
                "template": { "metadata": { "labels": l.clone() }, "spec": pod_spec },
                "volumeClaimTemplates": [pvc_template(ac, &ac.spec.storage.size, l)],
                // Volumes outlive pods; the finalizer deletes them only when asked.
                "persistentVolumeClaimRetentionPolicy": { "whenDeleted": "Retain", "whenScaled": "Retain" },
            },
        }),
    )
}

fn network_policies(ac: &AgentCluster, run_nats: bool) -> Vec<Child> {
    let n = name(ac);
    let sec = &ac.spec.security;
    let dns = json!({ "to": [{ "namespaceSelector": {}, "podSelector": { "matchLabels": { "k8s-app": "kube-dns" } } }],
        "ports": [{ "protocol": "UDP", "port": 53 }, { "protocol": "TCP", "port": 53 }] });
    let clients = if sec.client_selector.is_empty() {
        json!([{ "namespaceSelector": {} }, { "ipBlock": { "cidr": "0.0.0.0/0" } }])
    } else {
        json!([{ "namespaceSelector": {}, "podSelector": { "matchLabels": sec.client_selector } }])
    };
    let prometheus = json!([{ "namespaceSelector": { "matchLabels": sec.prometheus_namespace_selector } }]);
    let nats_egress = if run_nats {
        json!({ "to": [{ "podSelector": { "matchLabels": nats_selector(&n) } }], "ports": [{ "protocol": "TCP", "port": NATS_CLIENT_PORT }] })
    } else {
        // An external NATS: its address is not known as a selector.
        json!({ "ports": [{ "protocol": "TCP", "port": NATS_CLIENT_PORT }] })
    };
    let mut out = vec![child(
        "networking.k8s.io/v1",
        "NetworkPolicy",
        "networkpolicies",
        json!({
            "metadata": meta(ac, &format!("{n}-server"), labels(ac, "server", server_selector(&n))),
            "spec": {
                "podSelector": { "matchLabels": server_selector(&n) },
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [
                    // Clients: gRPC and HTTP (REST, console).
                    { "from": clients, "ports": [{ "protocol": "TCP", "port": GRPC_PORT }, { "protocol": "TCP", "port": HTTP_PORT }] },
                    // Prometheus: /metrics on the HTTP port.
                    { "from": prometheus, "ports": [{ "protocol": "TCP", "port": HTTP_PORT }] },
                ],
                "egress": [nats_egress, dns.clone()],
            },
        }),
    )];
    if run_nats {
        out.push(child(
            "networking.k8s.io/v1",
            "NetworkPolicy",
            "networkpolicies",
            json!({
                "metadata": meta(ac, &format!("{n}-nats"), labels(ac, "nats", nats_selector(&n))),
                "spec": {
                    "podSelector": { "matchLabels": nats_selector(&n) },
                    "policyTypes": ["Ingress", "Egress"],
                    "ingress": [
                        { "from": [{ "podSelector": { "matchLabels": server_selector(&n) } }],
                          "ports": [{ "protocol": "TCP", "port": NATS_CLIENT_PORT }] },
                        { "from": [{ "podSelector": { "matchLabels": nats_selector(&n) } }],
                          "ports": [{ "protocol": "TCP", "port": NATS_ROUTE_PORT }] },
                        { "from": prometheus, "ports": [{ "protocol": "TCP", "port": NATS_MONITOR_PORT }] },
                    ],
                    "egress": [
                        { "to": [{ "podSelector": { "matchLabels": nats_selector(&n) } }],
                          "ports": [{ "protocol": "TCP", "port": NATS_ROUTE_PORT }] },
                        dns,
                    ],
                },
            }),
        ));
    }
    out
}

/// The rendered children as one multi-document YAML stream (for `agentdb-operator render`).
pub fn to_yaml(children: &[Child]) -> String {
    let mut out = String::new();
    for c in children {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&c.object).unwrap_or_default());
    }
    out
}
