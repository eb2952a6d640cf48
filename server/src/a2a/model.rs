//! The task model: dialects, states, parts, messages, artifacts, task records and the
//! bounded task map, and how each renders in either dialect.

use super::errors::*;
use super::{MAX_STORED_HISTORY, MAX_TASKS};
use agentdb_orchestrator::security::Principal;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use tokio::sync::{broadcast, mpsc};

/// Which protocol version's wire format a request used (and its answer uses).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Dialect {
    /// Protocol 1.0 (a2a-sdk 1.x): ProtoJSON names.
    V1,
    /// Protocol 0.3: `kind`-tagged objects, lower-case enum values.
    V03,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum TaskState {
    Submitted,
    Working,
    InputRequired,
    AuthRequired,
    Completed,
    Failed,
    Canceled,
    Rejected,
}

impl TaskState {
    pub(super) fn name(self, d: Dialect) -> &'static str {
        use TaskState::*;
        match (d, self) {
            (Dialect::V1, Submitted) => "TASK_STATE_SUBMITTED",
            (Dialect::V1, Working) => "TASK_STATE_WORKING",
            (Dialect::V1, InputRequired) => "TASK_STATE_INPUT_REQUIRED",
            (Dialect::V1, AuthRequired) => "TASK_STATE_AUTH_REQUIRED",
            (Dialect::V1, Completed) => "TASK_STATE_COMPLETED",
            (Dialect::V1, Failed) => "TASK_STATE_FAILED",
            (Dialect::V1, Canceled) => "TASK_STATE_CANCELED",
            (Dialect::V1, Rejected) => "TASK_STATE_REJECTED",
            (Dialect::V03, Submitted) => "submitted",
            (Dialect::V03, Working) => "working",
            (Dialect::V03, InputRequired) => "input-required",
            (Dialect::V03, AuthRequired) => "auth-required",
            (Dialect::V03, Completed) => "completed",
            (Dialect::V03, Failed) => "failed",
            (Dialect::V03, Canceled) => "canceled",
            (Dialect::V03, Rejected) => "rejected",
        }
    }

    /// No further transition is possible.
    pub(super) fn terminal(self) -> bool {
        matches!(self, TaskState::Completed | TaskState::Failed | TaskState::Canceled | TaskState::Rejected)
    }

    /// The agent's turn is over: terminal, or waiting for the client.
    pub(super) fn ends_turn(self) -> bool {
        self.terminal() || matches!(self, TaskState::InputRequired | TaskState::AuthRequired)
    }

    pub(super) fn parse(s: &str) -> Option<TaskState> {
        let s = s.trim().to_ascii_lowercase().replace('_', "-");
        let s = s.strip_prefix("task-state-").unwrap_or(&s);
        Some(match s {
            "submitted" => TaskState::Submitted,
            "working" => TaskState::Working,
            "input-required" => TaskState::InputRequired,
            "auth-required" => TaskState::AuthRequired,
            "completed" => TaskState::Completed,
            "failed" => TaskState::Failed,
            "canceled" | "cancelled" => TaskState::Canceled,
            "rejected" => TaskState::Rejected,
            _ => return None,
        })
    }
}

/// A message or artifact part, independent of the wire dialect.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Part {
    Text(String),
    Data(Value),
    File { name: String, mime: String, bytes: Vec<u8> },
}

impl Part {
    pub(super) fn render(&self, d: Dialect) -> Value {
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        match (d, self) {
            (Dialect::V1, Part::Text(t)) => json!({ "text": t }),
            (Dialect::V1, Part::Data(v)) => json!({ "data": v, "mediaType": "application/json" }),
            (Dialect::V1, Part::File { name, mime, bytes }) => {
                json!({ "raw": b64(bytes), "filename": name, "mediaType": mime })
            }
            (Dialect::V03, Part::Text(t)) => json!({ "kind": "text", "text": t }),
            (Dialect::V03, Part::Data(v)) => json!({ "kind": "data", "data": v }),
            (Dialect::V03, Part::File { name, mime, bytes }) => {
                json!({ "kind": "file", "file": { "bytes": b64(bytes), "name": name, "mimeType": mime } })
            }
        }
    }

    /// The part as kept in task history: file contents are not kept (memory bound).
    pub(super) fn for_history(&self) -> Part {
        match self {
            Part::File { name, mime, bytes } => Part::Text(format!("[file {name} ({mime}, {} bytes)]", bytes.len())),
            p => p.clone(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct MessageRec {
    pub(super) id: String,
    pub(super) agent: bool,
    pub(super) parts: Vec<Part>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct ArtifactRec {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) description: String,
    pub(super) parts: Vec<Part>,
}

impl ArtifactRec {
    pub(super) fn render(&self, d: Dialect) -> Value {
        json!({
            "artifactId": self.id,
            "name": self.name,
            "description": self.description,
            "parts": self.parts.iter().map(|p| p.render(d)).collect::<Vec<_>>(),
        })
    }
}

/// A status: the state, an optional agent message explaining it, and when.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct StatusRec {
    pub(super) state: TaskState,
    pub(super) message: Option<MessageRec>,
    pub(super) timestamp: String,
}

/// What a task broadcasts to streaming subscribers.
#[derive(Clone, Debug)]
pub(super) enum Event {
    Status(StatusRec),
    Artifact(ArtifactRec),
}

/// What a message asks AgentDB's skills to do (merged across input-required turns).
pub(super) use agentdb_orchestrator::skills::Job;

pub(super) struct TaskRec {
    pub(super) id: String,
    pub(super) context_id: String,
    /// Principal id (or "local" without authentication): only it sees the task.
    pub(super) owner: String,
    pub(super) status: StatusRec,
    pub(super) artifacts: Vec<ArtifactRec>,
    pub(super) history: Vec<MessageRec>,
    /// The request so far, kept while the task waits for input.
    pub(super) pending: Option<Job>,
    pub(super) events: broadcast::Sender<Event>,
    pub(super) abort: Option<tokio::task::AbortHandle>,
    /// Creation order, for listing newest first.
    pub(super) seq: u64,
    /// Push-notification targets (at most [`MAX_PUSH_CONFIGS_PER_TASK`]).
    pub(super) push: Vec<PushConfig>,
    /// The task's push worker (started with the first config; ends when the task is dropped).
    pub(super) push_tx: Option<mpsc::Sender<PushBatch>>,
    /// Long-running work (a workflow run, a folder ingest) behind the task, while it goes on.
    pub(super) live: Option<Live>,
    /// The workflow run behind the task (kept across restarts: the task follows it again).
    pub(super) run: Option<String>,
}

/// What kind of long-running work a task does.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum LongKind {
    Workflow,
    Folder,
}

/// A long-running task's link to its work: where further messages go.
pub(super) struct Live {
    pub(super) kind: LongKind,
    /// Messages sent to the task while it works or waits for input.
    pub(super) inbox: mpsc::UnboundedSender<Job>,
}

/// The durable part of a task: what `_a2a_tasks` keeps (not its subscribers, worker,
/// push configs or pending input).
#[derive(Serialize, Deserialize)]
pub(super) struct StoredTask {
    pub(super) id: String,
    pub(super) context_id: String,
    pub(super) owner: String,
    pub(super) seq: u64,
    pub(super) status: StatusRec,
    pub(super) artifacts: Vec<ArtifactRec>,
    pub(super) history: Vec<MessageRec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) run: Option<String>,
}

impl TaskRec {
    pub(super) fn stored(&self) -> Value {
        let skip = self.history.len().saturating_sub(MAX_STORED_HISTORY);
        let t = StoredTask {
            id: self.id.clone(),
            context_id: self.context_id.clone(),
            owner: self.owner.clone(),
            seq: self.seq,
            status: self.status.clone(),
            artifacts: self.artifacts.clone(),
            history: self.history[skip..].to_vec(),
            run: self.run.clone(),
        };
        serde_json::to_value(t).unwrap_or(Value::Null)
    }

    pub(super) fn render(&self, d: Dialect, history_length: Option<usize>, with_artifacts: bool) -> Value {
        let history: Vec<Value> = {
            let skip = history_length.map_or(0, |n| self.history.len().saturating_sub(n));
            self.history[skip..].iter().map(|m| render_message(m, d, &self.id, &self.context_id)).collect()
        };
        let mut t = json!({
            "id": self.id,
            "contextId": self.context_id,
            "status": render_status(&self.status, d, &self.id, &self.context_id),
            "history": history,
        });
        if with_artifacts {
            t["artifacts"] = self.artifacts.iter().map(|a| a.render(d)).collect::<Vec<_>>().into();
        }
        if d == Dialect::V03 {
            t["kind"] = "task".into();
        }
        t
    }

    /// Queue a notification of the task's current state to each push target (never
    /// blocks: a full queue drops it, with a warning).
    pub(super) fn notify(&self) {
        let Some(tx) = &self.push_tx else { return };
        if self.push.is_empty() {
            return;
        }
        let mut bodies: [Option<Arc<String>>; 2] = [None, None];
        let targets: Vec<(PushConfig, Arc<String>)> = self
            .push
            .iter()
            .map(|c| {
                let slot = &mut bodies[usize::from(c.dialect == Dialect::V03)];
                let body = slot
                    .get_or_insert_with(|| {
                        let task = self.render(c.dialect, None, true);
                        let v = match c.dialect {
                            // 1.0 push payloads are StreamResponse objects.
                            Dialect::V1 => json!({ "task": task }),
                            Dialect::V03 => task,
                        };
                        Arc::new(v.to_string())
                    })
                    .clone();
                (c.clone(), body)
            })
            .collect();
        // The trace of the request (or task) whose span changed the task: its POSTs
        // carry that `traceparent` (nothing is captured when telemetry is off).
        let batch: PushBatch = (crate::telemetry::capture(), targets);
        if tx.try_send(batch).is_err() {
            tracing::warn!(task = %self.id, "A2A push: notification queue full, notification dropped");
        }
    }
}

pub(super) fn render_message(m: &MessageRec, d: Dialect, task_id: &str, context_id: &str) -> Value {
    let parts: Vec<Value> = m.parts.iter().map(|p| p.render(d)).collect();
    match d {
        Dialect::V1 => json!({
            "messageId": m.id, "role": if m.agent { "ROLE_AGENT" } else { "ROLE_USER" },
            "parts": parts, "taskId": task_id, "contextId": context_id,
        }),
        Dialect::V03 => json!({
            "kind": "message", "messageId": m.id, "role": if m.agent { "agent" } else { "user" },
            "parts": parts, "taskId": task_id, "contextId": context_id,
        }),
    }
}

pub(super) fn render_status(s: &StatusRec, d: Dialect, task_id: &str, context_id: &str) -> Value {
    let mut v = json!({ "state": s.state.name(d), "timestamp": s.timestamp });
    if let Some(m) = &s.message {
        v["message"] = render_message(m, d, task_id, context_id);
    }
    v
}

pub(super) fn render_event(e: &Event, d: Dialect, task_id: &str, context_id: &str) -> Value {
    match (d, e) {
        (Dialect::V1, Event::Status(s)) => json!({ "statusUpdate": {
            "taskId": task_id, "contextId": context_id, "status": render_status(s, d, task_id, context_id),
        }}),
        (Dialect::V1, Event::Artifact(a)) => json!({ "artifactUpdate": {
            "taskId": task_id, "contextId": context_id, "artifact": a.render(d), "lastChunk": true,
        }}),
        (Dialect::V03, Event::Status(s)) => json!({
            "kind": "status-update", "taskId": task_id, "contextId": context_id,
            "status": render_status(s, d, task_id, context_id), "final": s.state.ends_turn(),
        }),
        (Dialect::V03, Event::Artifact(a)) => json!({
            "kind": "artifact-update", "taskId": task_id, "contextId": context_id,
            "artifact": a.render(d), "lastChunk": true,
        }),
    }
}

/// The in-memory task table: a map plus insertion order for eviction.
#[derive(Default)]
pub(super) struct Tasks {
    pub(super) map: HashMap<String, TaskRec>,
    pub(super) order: VecDeque<String>,
    pub(super) seq: u64,
}

impl Tasks {
    /// Add a task, evicting the oldest finished ones (or the oldest of all) beyond
    /// [`MAX_TASKS`]: returns the evicted ids.
    pub(super) fn insert(&mut self, t: TaskRec) -> Vec<String> {
        let mut evicted = Vec::new();
        while self.map.len() >= MAX_TASKS {
            let finished = self.order.iter().position(|id| self.map.get(id).is_none_or(|r| r.status.state.terminal()));
            let Some(old) = self.order.remove(finished.unwrap_or(0)) else { break };
            if let Some(r) = self.map.remove(&old) {
                if let Some(a) = r.abort {
                    a.abort();
                }
            }
            evicted.push(old);
        }
        self.order.push_back(t.id.clone());
        self.map.insert(t.id.clone(), t);
        evicted
    }

    /// The caller's task, or the spec's task-not-found error.
    pub(super) fn owned(&mut self, id: &str, owner: &str) -> Result<&mut TaskRec, RpcError> {
        match self.map.get_mut(id) {
            Some(t) if t.owner == owner => Ok(t),
            _ => Err(RpcError::new(TASK_NOT_FOUND, format!("task '{id}' not found"))),
        }
    }
}

/// One notification: the trace context it continues, and its targets with their bodies.
pub(super) type PushBatch = (crate::telemetry::Captured, Vec<(PushConfig, Arc<String>)>);

/// A push-notification target of a task.
#[derive(Clone, Debug)]
pub(super) struct PushConfig {
    /// Config id (defaults to the task id, as in a2a-sdk); unique per task.
    pub(super) id: String,
    pub(super) url: String,
    /// Sent as `X-A2A-Notification-Token`.
    pub(super) token: Option<String>,
    /// (scheme, credentials): `Authorization: <scheme> <credentials>` when both are set.
    pub(super) auth: Option<(String, Option<String>)>,
    /// The dialect it was set in: the notifications' JSON shape.
    pub(super) dialect: Dialect,
}

impl PushConfig {
    /// The config as the protocol shows it; credentials are never echoed back.
    pub(super) fn render(&self, d: Dialect, task_id: &str) -> Value {
        let mut c = json!({ "id": self.id, "url": self.url });
        if let Some(t) = &self.token {
            c["token"] = t.clone().into();
        }
        match d {
            Dialect::V1 => {
                c["taskId"] = task_id.into();
                if let Some((s, _)) = &self.auth {
                    c["authentication"] = json!({ "scheme": s });
                }
                c
            }
            Dialect::V03 => {
                if let Some((s, _)) = &self.auth {
                    c["authentication"] = json!({ "schemes": [s] });
                }
                json!({ "taskId": task_id, "pushNotificationConfig": c })
            }
        }
    }
}

pub(super) fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// RFC 3339 UTC time with milliseconds, as ProtoJSON timestamps are written.
pub(super) fn now_rfc3339() -> String {
    agentdb_orchestrator::time::rfc3339(agentdb_orchestrator::now_ms())
}

pub(super) fn agent_text(text: impl Into<String>) -> MessageRec {
    MessageRec { id: new_id(), agent: true, parts: vec![Part::Text(text.into())] }
}

/// A task's durable record at a version: (task id, version, record).
pub(super) type Snapshot = (String, u64, Value);

/// Who is calling: the authenticated principal (none with authentication off) and the
/// owner id its tasks are filed under.
pub(crate) struct Caller {
    pub(super) principal: Option<Principal>,
    pub(super) owner: String,
    /// The host the caller reached us by (the HTTP Host header), for URLs in cards.
    pub(super) host: Option<String>,
}

impl Caller {
    /// The caller `principal` (none with authentication off: owner "local").
    pub(crate) fn new(principal: Option<Principal>) -> Caller {
        let owner = principal.as_ref().map_or("local".to_string(), |p| p.id.clone());
        Caller { principal, owner, host: None }
    }
}
