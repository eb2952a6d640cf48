//! The server's side of `agentdb_orchestrator::skills::Host`: what AgentDB's own skills
//! and workflow steps need from the process — the data, the same policy checks as the
//! gRPC handlers (`Security`), the admission gate, metrics and telemetry — with gRPC
//! statuses turned into skill errors in one place.

use crate::grpc::Services;
use agentdb_orchestrator::security::{Action, Principal};
use agentdb_orchestrator::skills::{Host, SkillError};
use agentdb_retrieval::{Encoders, IngestLimits, Observer};
use std::future::Future;
use std::sync::Arc;
use tonic::{Code, Status};

/// A refusal for who asked (authentication, permission) is a rejection; anything else a
/// failure. The message is the status's own.
pub fn skill_error(st: Status) -> SkillError {
    match st.code() {
        Code::PermissionDenied | Code::Unauthenticated => SkillError::Rejected(st.message().to_string()),
        _ => SkillError::Failed(st.message().to_string()),
    }
}

impl Host for Services {
    fn db(&self) -> &Arc<agentdb_engine::Database> {
        &self.db
    }

    fn encoders(&self) -> &Arc<Encoders> {
        &self.encoders
    }

    fn ingest_limits(&self) -> IngestLimits {
        self.ingest
    }

    fn observer(&self) -> Arc<dyn Observer> {
        self.observer.clone()
    }

    fn auth_enabled(&self) -> bool {
        self.security.auth_enabled()
    }

    fn key_principal(&self, key: &str) -> Option<Result<Principal, String>> {
        let keys = self.security.keys.as_ref()?;
        Some(keys.principal(key).map_err(|e| e.to_string()))
    }

    fn authorize(
        &self,
        p: Option<&Principal>,
        action: Action,
        collection: &str,
        method: &str,
    ) -> Result<(), SkillError> {
        self.security.authorize(p, action, collection, method).map_err(skill_error)
    }

    fn authorize_queue(
        &self,
        p: Option<&Principal>,
        action: Action,
        queue: &str,
        method: &str,
    ) -> Result<(), SkillError> {
        self.security.authorize_queue(p, action, queue, method).map_err(skill_error)
    }

    fn scoped_filter(&self, p: Option<&Principal>, expr: &str) -> Result<Option<agentdb_engine::Filter>, SkillError> {
        self.security.scoped_filter(p, expr).map_err(skill_error)
    }

    fn hidden_keys(&self, p: Option<&Principal>) -> Vec<String> {
        self.security.hidden_keys(p)
    }

    fn mask(&self, p: Option<&Principal>, payload: &mut serde_json::Value) {
        self.security.mask(p, payload)
    }

    fn check_ingest(&self, p: Option<&Principal>, bytes: usize) -> Result<(), SkillError> {
        self.security.check_ingest(p, bytes).map_err(skill_error)
    }

    fn charge_ingest(&self, p: Option<&Principal>, bytes: usize, items: u32) {
        self.security.charge_ingest(p, bytes, items)
    }

    fn note_collection(&self, collection: &str) {
        crate::telemetry::record_collection(collection)
    }

    fn observe_ingest(&self, status: &str, media_type: &str, items: u64) {
        self.metrics.observe_ingest(status, media_type, items)
    }

    fn queue_send(
        &self,
        queue: &str,
        body: Vec<u8>,
        attributes: std::collections::BTreeMap<String, String>,
    ) -> impl Future<Output = Option<Result<String, String>>> + Send {
        let (cluster, queue) = (self.cluster.clone(), queue.to_string());
        async move {
            let c = cluster?;
            Some(crate::cluster_queues::send(&c, &queue, body, attributes).await.map_err(|s| s.message().to_string()))
        }
    }

    fn admit<T, F>(&self, f: F) -> impl Future<Output = Result<T, SkillError>> + Send
    where
        F: FnOnce() -> agentdb_retrieval::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let gate = self.gate.clone();
        async move { gate.run(move || f().map_err(crate::status::ApiError::from)).await.map_err(skill_error) }
    }

    fn as_tenant<F>(&self, tenant: &str, fut: F) -> impl Future<Output = F::Output> + Send
    where
        F: Future + Send,
    {
        crate::telemetry::as_tenant(tenant, fut)
    }
}
