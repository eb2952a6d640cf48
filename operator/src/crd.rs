//! The custom resources: `AgentCluster` (a cluster of AgentDB nodes on NATS JetStream)
//! and `AgentIngestJob` (a parallel batch ingest as an Indexed Job). The CRD YAML in
//! `deploy/crds/` is generated from these types (`agentdb-operator crd`) and a test
//! checks the checked-in copy is current.

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The image repository used when `spec.image` is not set.
pub const DEFAULT_IMAGE: &str = "agentdb/agentdb";
/// The NATS image used when `spec.nats.image` is not set.
pub const DEFAULT_NATS_IMAGE: &str = "nats:2.11-alpine";

/// A cluster of AgentDB nodes sharing sharded, replicated collections over NATS
/// JetStream (docs/KUBERNETES.md, docs/CLUSTER.md).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "agentdb.io",
    version = "v1",
    kind = "AgentCluster",
    namespaced,
    status = "AgentClusterStatus",
    shortname = "agc",
    printcolumn = r#"{"name":"Replicas","type":"integer","jsonPath":".spec.replicas"}"#,
    printcolumn = r#"{"name":"Ready","type":"integer","jsonPath":".status.readyReplicas"}"#,
    printcolumn = r#"{"name":"Version","type":"string","jsonPath":".status.currentVersion"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct AgentClusterSpec {
    /// AgentDB nodes (pods). With `autoscaling` set, the autoscaler chooses within its
    /// bounds and this is the starting size.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 1, max = 1000))]
    pub replicas: i32,
    /// The AgentDB version: the image tag. Changing it rolls the pods one at a time,
    /// draining each node's shard replicas before its pod stops.
    pub version: String,
    /// Image repository (default `agentdb/agentdb`); the tag is `version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// `Always`, `IfNotPresent` or `Never` (default: Kubernetes' own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<String>,
    /// CPU and memory requests and limits of each AgentDB container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    #[serde(default)]
    pub storage: StorageSpec,
    #[serde(default)]
    pub monitoring: MonitoringSpec,
    #[serde(default)]
    pub security: SecuritySpec,
    #[serde(default)]
    pub nats: NatsSpec,
    /// Scale between bounds on queries per second per node, p99 latency or CPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<AutoscalingSpec>,
    /// Extra server settings, as `agentdb serve --set KEY=VALUE` takes them (for example
    /// `storage.flush_rows: "50000"`); passed as `AGENTDB_*` environment variables.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
}

fn default_replicas() -> i32 {
    3
}
fn yes() -> bool {
    true
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// Each node's data volume, e.g. `500Gi`.
    #[serde(default = "default_storage_size")]
    pub size: String,
    /// The StorageClass of the volumes (default: the cluster's default class).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
    /// Keep the volumes (and the Secrets that unlock them) when the AgentCluster is
    /// deleted. Only `false` lets the operator delete them.
    #[serde(default = "yes")]
    pub retain_on_delete: bool,
}

fn default_storage_size() -> String {
    "10Gi".into()
}

impl Default for StorageSpec {
    fn default() -> Self {
        StorageSpec { size: default_storage_size(), storage_class: None, retain_on_delete: true }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MonitoringSpec {
    /// Expose /metrics (it always is; this turns on the objects below).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// A ServiceMonitor for the Prometheus operator (needs its CRD).
    #[serde(default)]
    pub prometheus: bool,
    /// The Grafana dashboard as a ConfigMap labelled `grafana_dashboard: "1"`.
    #[serde(default)]
    pub grafana: bool,
}

impl Default for MonitoringSpec {
    fn default() -> Self {
        MonitoringSpec { enabled: true, prometheus: false, grafana: false }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecuritySpec {
    /// A ServiceAccount and a Role limited to reading this cluster's own Secrets.
    #[serde(default = "yes")]
    pub rbac: bool,
    /// NetworkPolicies: clients -> AgentDB, AgentDB <-> NATS, Prometheus -> metrics,
    /// DNS; nothing else.
    #[serde(default = "yes")]
    pub network_policy: bool,
    /// PodSecurityPolicy was removed in Kubernetes 1.25: `true` applies the Pod Security
    /// Standards `restricted` profile (non-root, read-only root file system, no
    /// capabilities, RuntimeDefault seccomp) to every pod.
    #[serde(default = "yes")]
    pub pod_security_policy: bool,
    /// API keys (`security.auth = api_key`) with a bootstrap admin key in the Secret
    /// `<name>-admin-key`. `false` runs without authentication (not recommended).
    #[serde(default = "yes")]
    pub auth: bool,
    /// Encrypt data at rest with the master key in the Secret `<name>-encryption`.
    #[serde(default = "yes")]
    pub encryption: bool,
    /// Pods allowed to reach AgentDB (labels); empty = any pod in any namespace.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub client_selector: BTreeMap<String, String>,
    /// Namespaces (labels) whose pods may scrape /metrics; empty = any namespace.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub prometheus_namespace_selector: BTreeMap<String, String>,
}

impl Default for SecuritySpec {
    fn default() -> Self {
        SecuritySpec {
            rbac: true,
            network_policy: true,
            pod_security_policy: true,
            auth: true,
            encryption: true,
            client_selector: BTreeMap::new(),
            prometheus_namespace_selector: BTreeMap::new(),
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NatsSpec {
    /// Use an existing NATS JetStream cluster at these URLs (comma-separated) instead of
    /// running one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// NATS servers run by the operator (3 tolerates the loss of one).
    #[serde(default = "default_nats_replicas")]
    #[schemars(range(min = 1, max = 9))]
    pub replicas: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// JetStream file storage per NATS server.
    #[serde(default = "default_storage_size")]
    pub storage_size: String,
    /// A Secret holding `nats.creds` (a NATS user JWT and seed) for an existing NATS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<String>,
}

fn default_nats_replicas() -> i32 {
    3
}

impl Default for NatsSpec {
    fn default() -> Self {
        NatsSpec {
            url: None,
            replicas: default_nats_replicas(),
            image: None,
            storage_size: default_storage_size(),
            credentials_secret: None,
        }
    }
}

/// The operator's own autoscaler (docs/KUBERNETES.md explains why not an HPA: scale-in
/// must drain a node's shard replicas before its pod goes).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AutoscalingSpec {
    #[schemars(range(min = 1))]
    pub min_replicas: i32,
    #[schemars(range(min = 1))]
    pub max_replicas: i32,
    /// Target requests per second per node (searches, reads and writes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_qps_per_node: Option<f64>,
    /// Target p99 request latency in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_p99_ms: Option<f64>,
    /// Target CPU use per node, percent of one core per requested core.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_cpu_percent: Option<i32>,
    /// Load must stay above target this long before adding nodes.
    #[serde(default = "default_scale_out_window")]
    pub scale_out_stabilization_seconds: i64,
    /// Load must stay below the scale-in threshold this long before removing a node.
    #[serde(default = "default_scale_in_window")]
    pub scale_in_stabilization_seconds: i64,
}

fn default_scale_out_window() -> i64 {
    60
}
fn default_scale_in_window() -> i64 {
    300
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentClusterStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Creating`, `Running`, `Updating`, `Scaling`, `Degraded` or `Deleting`.
    #[serde(default)]
    pub phase: String,
    #[serde(default)]
    pub replicas: i32,
    #[serde(default)]
    pub ready_replicas: i32,
    /// The version every pod runs (empty while pods run different versions).
    #[serde(default)]
    pub current_version: String,
    /// `Ready`, `Progressing` and `Degraded`.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// The pod being replaced or removed, while a rolling update or scale-in runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaler: Option<AutoscalerStatus>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    /// The pod (and AgentDB node id) being handled.
    pub pod: String,
    /// `Draining` (its shard replicas move to other nodes), `Replacing` (pod deleted,
    /// waiting for the new one to be ready) or `Removing` (scale-in).
    pub stage: String,
    /// RFC 3339 time the stage started.
    pub since: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AutoscalerStatus {
    pub desired_replicas: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale_time: Option<String>,
    #[serde(default)]
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qps_per_node: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_percent: Option<f64>,
    /// Since when the load has been above (positive) or below (negative) the band.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pressure_since: Option<String>,
    #[serde(default)]
    pub pressure: i32,
}

/// A batch ingest of a large dataset into a collection of an AgentCluster, run as an
/// Indexed Job: completion index `i` of `slices` ingests the files whose path hashes to
/// slice `i`; a restarted pod skips what it already ingested.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "agentdb.io",
    version = "v1",
    kind = "AgentIngestJob",
    namespaced,
    status = "AgentIngestJobStatus",
    shortname = "aij",
    printcolumn = r#"{"name":"Cluster","type":"string","jsonPath":".spec.cluster"}"#,
    printcolumn = r#"{"name":"Done","type":"integer","jsonPath":".status.completedSlices"}"#,
    printcolumn = r#"{"name":"Slices","type":"integer","jsonPath":".spec.slices"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct AgentIngestJobSpec {
    /// The AgentCluster (same namespace) to ingest into.
    pub cluster: String,
    pub collection: String,
    /// Create the collection with the installed encoders' spaces if it does not exist.
    #[serde(default)]
    pub multimodal: bool,
    pub source: IngestSource,
    /// Slices (Job completions); each file belongs to exactly one.
    #[serde(default = "default_slices")]
    #[schemars(range(min = 1, max = 10000))]
    pub slices: i32,
    /// Slices running at once.
    #[serde(default = "default_parallelism")]
    #[schemars(range(min = 1, max = 1000))]
    pub parallelism: i32,
    /// Retries of one slice before it counts as failed.
    #[serde(default = "default_backoff")]
    pub backoff_limit_per_index: i32,
    /// Defaults to the cluster's image and version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

fn default_slices() -> i32 {
    4
}
fn default_parallelism() -> i32 {
    2
}
fn default_backoff() -> i32 {
    3
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngestSource {
    /// A PersistentVolumeClaim holding the dataset (mounted read-only).
    pub pvc: String,
    /// The folder inside the volume.
    #[serde(default = "default_path")]
    pub path: String,
}

fn default_path() -> String {
    "/".into()
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentIngestJobStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Pending`, `Running`, `Succeeded` or `Failed`.
    #[serde(default)]
    pub phase: String,
    #[serde(default)]
    pub job: String,
    #[serde(default)]
    pub completed_slices: i32,
    #[serde(default)]
    pub failed_slices: i32,
    #[serde(default)]
    pub active_slices: i32,
    /// Items in the target collection when last checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collection_items: Option<u64>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

/// The CustomResourceDefinitions as YAML documents, as checked in under `deploy/crds/`.
pub fn crd_yaml() -> String {
    use kube::CustomResourceExt;
    let mut out = String::new();
    for crd in [AgentCluster::crd(), AgentIngestJob::crd()] {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&crd).expect("a CRD serialises"));
    }
    out
}
