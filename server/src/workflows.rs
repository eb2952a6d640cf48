//! The `agentdb.v1.Workflows` gRPC service: a thin face over the workflow engine in
//! `agentdb_orchestrator::workflow` (definitions, runs, the executor and the triggers;
//! see docs/WORKFLOWS.md). Here: authentication, who may see which definition and run,
//! and the conversion to and from the wire.
//!
//! Authorization: applying and deleting definitions needs `admin`; running and canceling
//! `write`; reading `read`. Steps act as the run's principal (who started it, or who applied
//! the definition for triggered runs), so a step can only touch what they may.

use crate::grpc::Services;
use crate::orchestration::orch_status;
use crate::security::Security;
use agentdb_orchestrator::security::{Action, Principal};
use agentdb_orchestrator::workflow::{Run, StepState, Trigger, Version};
use agentdb_proto::v1;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// The workflow engine as the server runs it: its steps use the server's `Services`.
pub type Workflows = agentdb_orchestrator::workflow::Workflows<Services>;

fn trigger_text(t: &Trigger) -> String {
    match t {
        Trigger::Cron(c) => format!("cron: {c}"),
        Trigger::Event(m) => format!(
            "event: {}{}{}",
            m.topic,
            m.kind.as_ref().map(|k| format!("/{k}")).unwrap_or_default(),
            m.subject.as_ref().map(|s| format!(" subject={s}")).unwrap_or_default()
        ),
        Trigger::StandingQuery(q) => format!("standing_query: {q}"),
    }
}

fn info_to_wire(v: &Version, versions: usize) -> v1::WorkflowInfo {
    v1::WorkflowInfo {
        name: v.name.clone(),
        version: v.version,
        description: v.definition.description.clone(),
        yaml: v.source.clone(),
        sha256: v.sha256.clone(),
        applied_unix_ms: v.applied_unix_ms,
        applied_by: v.applied_by.clone(),
        triggers: v.definition.triggers.iter().map(trigger_text).collect(),
        steps: v.definition.steps.iter().map(|s| s.id.clone()).collect(),
        versions: versions as u32,
    }
}

fn run_to_wire(r: &Run) -> v1::WorkflowRun {
    v1::WorkflowRun {
        id: r.id.clone(),
        workflow: r.workflow.clone(),
        version: r.version,
        state: r.state.as_str().into(),
        agent: r.agent.clone(),
        priority: r.priority,
        inputs_json: Value::Object(r.inputs.clone()).to_string(),
        trigger_json: r.trigger.to_string(),
        principal: r.principal.clone(),
        steps: r
            .steps
            .iter()
            .map(|s| v1::WorkflowStepRun {
                id: s.id.clone(),
                kind: s.kind.clone(),
                state: s.state.as_str().into(),
                attempts: s.attempts,
                error: s.error.clone(),
                attempt_errors: s.attempt_errors.clone(),
                output_json: s.output.to_string(),
                started_unix_ms: s.started_unix_ms,
                finished_unix_ms: s.finished_unix_ms,
                next_attempt_unix_ms: if s.state == StepState::Retrying { s.next_attempt_unix_ms } else { 0 },
            })
            .collect(),
        error: r.error.clone(),
        created_unix_ms: r.created_unix_ms,
        started_unix_ms: r.started_unix_ms,
        finished_unix_ms: r.finished_unix_ms,
    }
}

/// A run as JSON for the JSON front ends (MCP): its state, each step's state, attempts,
/// error and output.
pub fn run_json(r: &Run) -> Value {
    let steps: Vec<Value> = r
        .steps
        .iter()
        .map(|s| {
            json!({
                "id": s.id, "kind": s.kind, "state": s.state.as_str(), "attempts": s.attempts,
                "error": s.error, "output": s.output,
            })
        })
        .collect();
    json!({
        "run": r.id, "workflow": r.workflow, "version": r.version, "state": r.state.as_str(),
        "error": r.error, "inputs": r.inputs, "steps": steps,
        "createdUnixMs": r.created_unix_ms, "finishedUnixMs": r.finished_unix_ms,
    })
}

/// A run's record is visible to who started it, to principals that see everything and,
/// with authentication off, to everyone. Shared by every front end (gRPC, A2A, MCP).
pub fn run_visible(security: &Security, p: Option<&Principal>, run: &Run) -> bool {
    !security.auth_enabled() || p.is_some_and(|p| p.id == run.principal || p.sees_everything())
}

/// What a caller asks when it starts a run: the checks every front end makes on it live
/// in [`start_run_as`].
pub struct RunRequest<'a> {
    pub name: &'a str,
    /// 0: the latest version.
    pub version: u32,
    pub inputs: Map<String, Value>,
    pub agent: Option<&'a str>,
    pub priority: Option<i32>,
    /// What started it (`{"kind": "manual"}`, `{"kind": "a2a", ...}`, `{"kind": "mcp"}`).
    pub trigger: Value,
}

/// Start a run as `p` with the checks every front end makes: `write` permission, the
/// definition exists and `p` may see it (NOT_FOUND otherwise, so its existence is not
/// confirmed), a valid agent name, a priority in -100..100.
pub async fn start_run_as(
    w: &Workflows,
    security: &Security,
    p: Option<&Principal>,
    r: RunRequest<'_>,
    method: &str,
) -> Result<Run, Status> {
    security.authorize(p, Action::Write, "", method)?;
    if let Some(p) = p {
        w.remember(p);
    }
    let v = w.store().get(r.name, r.version).map_err(orch_status)?;
    if !definition_visible(security, p, &v) {
        return Err(Status::not_found(format!("workflow '{}' not found", v.name)));
    }
    if let Some(a) = r.agent {
        agentdb_orchestrator::agents::validate_agent_name(a).map_err(orch_status)?;
    }
    if let Some(pr) = r.priority {
        if !(-100..=100).contains(&pr) {
            return Err(Status::invalid_argument(format!("priority {pr} is out of range -100..100")));
        }
    }
    let pid = p.map(|p| p.id.clone()).unwrap_or_default();
    w.start_run(&v, r.inputs, r.trigger, &pid, r.agent, r.priority).await.map_err(orch_status)
}

/// The gRPC face of [`Workflows`].
/// Whether `p` may see (and run) the definition: who applied it, principals that see
/// everything, and those who may read every collection it touches. Shared with A2A.
pub fn definition_visible(security: &Security, p: Option<&Principal>, v: &Version) -> bool {
    !security.auth_enabled()
        || p.is_some_and(|p| {
            p.id == v.applied_by
                || p.sees_everything()
                || v.definition.collections().iter().all(|c| p.authorize(Action::Read, c).is_ok())
        })
}

#[derive(Clone)]
pub struct WorkflowService {
    pub workflows: Arc<Workflows>,
    pub security: Arc<Security>,
}

impl WorkflowService {
    fn authorize<T>(&self, req: &Request<T>, action: Action, method: &str) -> Result<Option<Principal>, Status> {
        let p = req.extensions().get::<Principal>().cloned();
        self.security.authorize(p.as_ref(), action, "", method)?;
        if let Some(p) = &p {
            self.workflows.remember(p);
        }
        Ok(p)
    }
}

impl WorkflowService {
    /// A run's record (inputs, step outputs with search hits, errors) is visible to the
    /// principal that started it (or applied the definition that triggered it) and to
    /// principals that see everything; with authentication off, to everyone.
    fn run_visible(&self, p: Option<&Principal>, run: &Run) -> bool {
        run_visible(&self.security, p, run)
    }

    /// A definition (its steps, queries and default inputs) is visible to who applied it,
    /// to principals that see everything, and to principals that may read every
    /// collection its steps name literally (a templated collection is authorized per run,
    /// as the run's principal).
    fn definition_visible(&self, p: Option<&Principal>, v: &Version) -> bool {
        definition_visible(&self.security, p, v)
    }

    fn check_definition_visible(&self, p: Option<&Principal>, v: &Version) -> Result<(), Status> {
        if self.definition_visible(p, v) {
            Ok(())
        } else {
            Err(Status::not_found(format!("workflow '{}' not found", v.name)))
        }
    }

    /// NOT_FOUND (not PERMISSION_DENIED: the id's existence is not confirmed) for a run
    /// the principal may not see.
    fn check_run_visible(&self, p: Option<&Principal>, run: &Run) -> Result<(), Status> {
        if self.run_visible(p, run) {
            Ok(())
        } else {
            Err(Status::not_found(format!("workflow run '{}' not found", run.id)))
        }
    }
}

fn principal_id(p: &Option<Principal>) -> String {
    p.as_ref().map(|p| p.id.clone()).unwrap_or_default()
}

#[tonic::async_trait]
impl v1::workflows_server::Workflows for WorkflowService {
    async fn apply(
        &self,
        req: Request<v1::ApplyWorkflowRequest>,
    ) -> Result<Response<v1::ApplyWorkflowResponse>, Status> {
        let p = self.authorize(&req, Action::Admin, "Workflows/Apply")?;
        let yaml = req.into_inner().yaml;
        let (v, changed) = self.workflows.apply(yaml, principal_id(&p)).await.map_err(orch_status)?;
        let n = self.workflows.store().version_count(&v.name);
        Ok(Response::new(v1::ApplyWorkflowResponse { workflow: Some(info_to_wire(&v, n)), changed }))
    }

    async fn list(
        &self,
        req: Request<v1::ListWorkflowsRequest>,
    ) -> Result<Response<v1::ListWorkflowsResponse>, Status> {
        let p = self.authorize(&req, Action::Read, "Workflows/List")?;
        let s = &self.workflows.store();
        let workflows = s
            .latest()
            .iter()
            .filter(|v| self.definition_visible(p.as_ref(), v))
            .map(|v| info_to_wire(v, s.version_count(&v.name)))
            .collect();
        Ok(Response::new(v1::ListWorkflowsResponse { workflows }))
    }

    async fn get(&self, req: Request<v1::GetWorkflowRequest>) -> Result<Response<v1::GetWorkflowResponse>, Status> {
        let p = self.authorize(&req, Action::Read, "Workflows/Get")?;
        let r = req.into_inner();
        let v = self.workflows.store().get(&r.name, r.version).map_err(orch_status)?;
        self.check_definition_visible(p.as_ref(), &v)?;
        let n = self.workflows.store().version_count(&v.name);
        Ok(Response::new(v1::GetWorkflowResponse { workflow: Some(info_to_wire(&v, n)) }))
    }

    async fn delete(
        &self,
        req: Request<v1::DeleteWorkflowRequest>,
    ) -> Result<Response<v1::DeleteWorkflowResponse>, Status> {
        self.authorize(&req, Action::Admin, "Workflows/Delete")?;
        self.workflows.delete(req.into_inner().name).await.map_err(orch_status)?;
        Ok(Response::new(v1::DeleteWorkflowResponse {}))
    }

    async fn run(&self, req: Request<v1::RunWorkflowRequest>) -> Result<Response<v1::RunWorkflowResponse>, Status> {
        let p = req.extensions().get::<Principal>().cloned();
        let r = req.into_inner();
        let inputs = if r.inputs_json.trim().is_empty() {
            Map::new()
        } else {
            match serde_json::from_str::<Value>(&r.inputs_json) {
                Ok(Value::Object(m)) => m,
                Ok(_) => return Err(Status::invalid_argument("inputs_json must be a JSON object")),
                Err(e) => return Err(Status::invalid_argument(format!("inputs_json is not JSON: {e}"))),
            }
        };
        let req = RunRequest {
            name: &r.name,
            version: r.version,
            inputs,
            agent: Some(r.agent.as_str()).filter(|a| !a.is_empty()),
            priority: r.priority,
            trigger: json!({ "kind": "manual" }),
        };
        let run = start_run_as(&self.workflows, &self.security, p.as_ref(), req, "Workflows/Run").await?;
        Ok(Response::new(v1::RunWorkflowResponse { run: Some(run_to_wire(&run)) }))
    }

    async fn get_run(
        &self,
        req: Request<v1::GetWorkflowRunRequest>,
    ) -> Result<Response<v1::GetWorkflowRunResponse>, Status> {
        let p = self.authorize(&req, Action::Read, "Workflows/GetRun")?;
        let run = self.workflows.get_run(req.into_inner().id).await.map_err(orch_status)?;
        self.check_run_visible(p.as_ref(), &run)?;
        Ok(Response::new(v1::GetWorkflowRunResponse { run: Some(run_to_wire(&run)) }))
    }

    async fn list_runs(
        &self,
        req: Request<v1::ListWorkflowRunsRequest>,
    ) -> Result<Response<v1::ListWorkflowRunsResponse>, Status> {
        let p = self.authorize(&req, Action::Read, "Workflows/ListRuns")?;
        let r = req.into_inner();
        let limit = if r.limit == 0 { 100 } else { r.limit.min(10_000) } as usize;
        let mut runs = self.workflows.runs().await.map_err(orch_status)?;
        runs.retain(|x| {
            (r.workflow.is_empty() || x.workflow == r.workflow)
                && (r.state.is_empty() || x.state.as_str() == r.state)
                && self.run_visible(p.as_ref(), x)
        });
        runs.reverse();
        runs.truncate(limit);
        Ok(Response::new(v1::ListWorkflowRunsResponse { runs: runs.iter().map(run_to_wire).collect() }))
    }

    async fn cancel(
        &self,
        req: Request<v1::CancelWorkflowRunRequest>,
    ) -> Result<Response<v1::CancelWorkflowRunResponse>, Status> {
        let p = self.authorize(&req, Action::Write, "Workflows/Cancel")?;
        let id = req.into_inner().id;
        let existing = self.workflows.get_run(id.clone()).await.map_err(orch_status)?;
        self.check_run_visible(p.as_ref(), &existing)?;
        let run = self.workflows.cancel_run(&id).await.map_err(orch_status)?;
        Ok(Response::new(v1::CancelWorkflowRunResponse { run: Some(run_to_wire(&run)) }))
    }
}
