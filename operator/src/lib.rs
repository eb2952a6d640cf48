//! AgentDB's Kubernetes operator (docs/KUBERNETES.md): the `AgentCluster` resource
//! reconciled into a NATS JetStream cluster and an AgentDB StatefulSet with everything
//! around them, rolling updates and scale-in that drain each node first, an autoscaler,
//! and `AgentIngestJob` batch ingestion as Indexed Jobs.
//!
//! - [`crd`]: the resource types; the CRD YAML is generated from them.
//! - [`render`]: spec → child objects (pure; also `agentdb-operator render`).
//! - [`rollout`]: drain-and-replace, shared by the controller and the loopback test.
//! - [`autoscale`]: the scaling decision with its hysteresis (pure).
//! - [`reconcile`]: the AgentCluster controller's pass.
//! - [`ingest`]: the AgentIngestJob controller's pass.

pub mod autoscale;
pub mod crd;
pub mod ingest;
pub mod reconcile;
pub mod render;
pub mod rollout;
