//! AgentDB as an Agent2Agent (A2A) server: the agent card at
//! `/.well-known/agent-card.json` and JSON-RPC 2.0 over HTTP at `/a2a`, on the HTTP
//! listener (`http_listen`), behind the same credentials as gRPC.
//!
//! Both method-name sets are served: protocol 1.0 (`SendMessage`,
//! `SendStreamingMessage`, `GetTask`, `ListTasks`, `CancelTask`, `SubscribeToTask`; enum
//! values as `TASK_STATE_COMPLETED`, parts as `{"text"}` / `{"raw"}` / `{"data"}`) and
//! protocol 0.3 (`message/send`, `message/stream`, `tasks/get`, `tasks/cancel`,
//! `tasks/resubscribe`; `kind`-tagged objects, states as `completed`). Each answer is
//! written in the dialect of the method that was called.
//!
//! Push notifications: `CreateTaskPushNotificationConfig` / `GetTaskPushNotificationConfig`
//! / `ListTaskPushNotificationConfigs` / `DeleteTaskPushNotificationConfig` (1.0) and
//! `tasks/pushNotificationConfig/{set,get,list,delete}` (0.3), or a config inside
//! SendMessage's `configuration`. Every status change and artifact POSTs the task (in the
//! config's dialect) to each configured URL from a per-task background worker
//! ([`PUSH_TIMEOUT`], [`PUSH_ATTEMPTS`] with backoff); http(s) only, and no loopback or
//! private targets unless [`ALLOW_PRIVATE_PUSH_TARGETS_ENV`] allows them.
//!
//! Skills call the same code as gRPC: `agentdb_retrieval::query::run` for search and recall,
//! `agentdb_retrieval::ingest_file` for ingest and remember, behind the same admission gate
//! and the same RBAC checks (`Security::authorize`).
//!
//! Tasks live in memory, in a map bounded by [`MAX_TASKS`] (the oldest finished ones
//! evicted first), and each task's durable part (ids, owner, status, artifacts, the last
//! [`MAX_STORED_HISTORY`] messages) is written to the internal collection `_a2a_tasks`
//! on every change (`agentdb_orchestrator::a2a_tasks`), so GetTask / ListTasks survive a
//! restart; a task that was still running (or waiting for input) when the server
//! stopped comes back failed, saying so. Push configs are not kept across restarts.
//!
//! The same methods are served over gRPC (`lf.a2a.v1.A2AService`, src/a2a_grpc.rs),
//! which converts to and from the 1.0 ProtoJSON that [`A2a::dispatch`] and the
//! streaming methods speak. See docs/A2A.md.

use crate::grpc::Services;
use agentdb_orchestrator::a2a_tasks::A2aTaskStore;
use agentdb_orchestrator::security::{principal_memory_collection, Action, Principal};
use agentdb_retrieval::{CrossQuery, QueryInput};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

/// The JSON-RPC endpoint named in the agent card.
pub const RPC_PATH: &str = "/a2a";
/// Where A2A clients look for the agent card (protocol 0.3 and 1.0).
pub const CARD_PATH: &str = "/.well-known/agent-card.json";
/// The card's pre-0.3 location, served too.
const LEGACY_CARD_PATH: &str = "/.well-known/agent.json";
/// Tasks kept (in memory and in the `_a2a_tasks` collection); beyond this the oldest
/// finished ones are forgotten (the oldest of all when none has finished).
pub const MAX_TASKS: usize = 10_000;
/// Messages of a task's history that are stored (the newest); the artifacts are all kept.
pub const MAX_STORED_HISTORY: usize = 100;
/// Buffered events per task for streaming subscribers.
const TASK_EVENTS: usize = 64;
/// Default and largest number of hits a search or recall returns.
const DEFAULT_TOP_K: usize = 5;
const MAX_TOP_K: usize = 100;

/// Which protocol version's wire format a request used (and its answer uses).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Dialect {
    /// Protocol 1.0 (a2a-sdk 1.x): ProtoJSON names.
    V1,
    /// Protocol 0.3: `kind`-tagged objects, lower-case enum values.
    V03,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum TaskState {
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
    fn name(self, d: Dialect) -> &'static str {
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
    fn terminal(self) -> bool {
        matches!(self, TaskState::Completed | TaskState::Failed | TaskState::Canceled | TaskState::Rejected)
    }

    /// The agent's turn is over: terminal, or waiting for the client.
    fn ends_turn(self) -> bool {
        self.terminal() || matches!(self, TaskState::InputRequired | TaskState::AuthRequired)
    }

    fn parse(s: &str) -> Option<TaskState> {
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
enum Part {
    Text(String),
    Data(Value),
    File { name: String, mime: String, bytes: Vec<u8> },
}

impl Part {
    fn render(&self, d: Dialect) -> Value {
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
    fn for_history(&self) -> Part {
        match self {
            Part::File { name, mime, bytes } => Part::Text(format!("[file {name} ({mime}, {} bytes)]", bytes.len())),
            p => p.clone(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct MessageRec {
    id: String,
    agent: bool,
    parts: Vec<Part>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct ArtifactRec {
    id: String,
    name: String,
    description: String,
    parts: Vec<Part>,
}

impl ArtifactRec {
    fn render(&self, d: Dialect) -> Value {
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
struct StatusRec {
    state: TaskState,
    message: Option<MessageRec>,
    timestamp: String,
}

/// What a task broadcasts to streaming subscribers.
#[derive(Clone, Debug)]
enum Event {
    Status(StatusRec),
    Artifact(ArtifactRec),
}

/// What one skill invocation asks for, gathered from a message's parts.
#[derive(Clone, Debug, Default)]
struct Job {
    /// `skill` from a data part, or chosen by the routing rule.
    skill: Option<String>,
    /// Data-part fields merged (later parts win).
    params: Map<String, Value>,
    /// Text parts joined by newlines.
    text: String,
    files: Vec<(String, String, Vec<u8>)>,
}

struct TaskRec {
    id: String,
    context_id: String,
    /// Principal id (or "local" without authentication): only it sees the task.
    owner: String,
    status: StatusRec,
    artifacts: Vec<ArtifactRec>,
    history: Vec<MessageRec>,
    /// The request so far, kept while the task waits for input.
    pending: Option<Job>,
    events: broadcast::Sender<Event>,
    abort: Option<tokio::task::AbortHandle>,
    /// Creation order, for listing newest first.
    seq: u64,
    /// Push-notification targets (at most [`MAX_PUSH_CONFIGS_PER_TASK`]).
    push: Vec<PushConfig>,
    /// The task's push worker (started with the first config; ends when the task is dropped).
    push_tx: Option<mpsc::Sender<PushBatch>>,
}

/// The durable part of a task: what `_a2a_tasks` keeps (not its subscribers, worker,
/// push configs or pending input).
#[derive(Serialize, Deserialize)]
struct StoredTask {
    id: String,
    context_id: String,
    owner: String,
    seq: u64,
    status: StatusRec,
    artifacts: Vec<ArtifactRec>,
    history: Vec<MessageRec>,
}

impl TaskRec {
    fn stored(&self) -> Value {
        let skip = self.history.len().saturating_sub(MAX_STORED_HISTORY);
        let t = StoredTask {
            id: self.id.clone(),
            context_id: self.context_id.clone(),
            owner: self.owner.clone(),
            seq: self.seq,
            status: self.status.clone(),
            artifacts: self.artifacts.clone(),
            history: self.history[skip..].to_vec(),
        };
        serde_json::to_value(t).unwrap_or(Value::Null)
    }

    fn render(&self, d: Dialect, history_length: Option<usize>, with_artifacts: bool) -> Value {
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
    fn notify(&self) {
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

fn render_message(m: &MessageRec, d: Dialect, task_id: &str, context_id: &str) -> Value {
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

fn render_status(s: &StatusRec, d: Dialect, task_id: &str, context_id: &str) -> Value {
    let mut v = json!({ "state": s.state.name(d), "timestamp": s.timestamp });
    if let Some(m) = &s.message {
        v["message"] = render_message(m, d, task_id, context_id);
    }
    v
}

fn render_event(e: &Event, d: Dialect, task_id: &str, context_id: &str) -> Value {
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
struct Tasks {
    map: HashMap<String, TaskRec>,
    order: VecDeque<String>,
    seq: u64,
}

impl Tasks {
    /// Add a task, evicting the oldest finished ones (or the oldest of all) beyond
    /// [`MAX_TASKS`]: returns the evicted ids.
    fn insert(&mut self, t: TaskRec) -> Vec<String> {
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
    fn owned(&mut self, id: &str, owner: &str) -> Result<&mut TaskRec, RpcError> {
        match self.map.get_mut(id) {
            Some(t) if t.owner == owner => Ok(t),
            _ => Err(RpcError::new(TASK_NOT_FOUND, format!("task '{id}' not found"))),
        }
    }
}

/// The A2A service state shared by the HTTP handlers.
pub struct A2a {
    svc: Services,
    /// HTTP client for push notifications (timeout, no redirects, no proxy).
    push_agent: ureq::Agent,
    /// Push URLs may target loopback / private addresses.
    allow_private_push: bool,
    tasks: parking_lot::Mutex<Tasks>,
    /// The tasks' durable copies (`_a2a_tasks`), and the version counter of the writes.
    store: A2aTaskStore,
    versions: std::sync::atomic::AtomicU64,
    /// Largest accepted JSON-RPC request body, in bytes.
    max_body: usize,
    /// The listener speaks TLS: the card's URL is https.
    tls: bool,
    /// The gRPC listener's port, for the card's `GRPC` interface (`lf.a2a.v1.A2AService`).
    grpc_port: std::sync::OnceLock<u16>,
}

/// The A2A service state. `max_body` bounds the JSON-RPC request body (base64 file parts
/// included); `tls` says whether the HTTP listener serves HTTPS (for the URL in the card).
pub fn service(svc: Services, max_body: usize, tls: bool) -> Arc<A2a> {
    let allow_private_push = std::env::var(ALLOW_PRIVATE_PUSH_TARGETS_ENV)
        .map(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
        .unwrap_or(ALLOW_PRIVATE_PUSH_TARGETS);
    if allow_private_push {
        tracing::warn!(
            "A2A push notifications may target loopback and private addresses ({ALLOW_PRIVATE_PUSH_TARGETS_ENV})"
        );
    }
    let push_agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .timeout_global(Some(PUSH_TIMEOUT))
            .http_status_as_error(true)
            .max_redirects(0)
            .proxy(None)
            .build(),
    );
    let store = A2aTaskStore::open(svc.db.clone());
    let a2a = A2a {
        svc,
        push_agent,
        allow_private_push,
        tasks: parking_lot::Mutex::new(Tasks::default()),
        store,
        versions: std::sync::atomic::AtomicU64::new(1),
        max_body,
        tls,
        grpc_port: std::sync::OnceLock::new(),
    };
    a2a.load();
    Arc::new(a2a)
}

/// The A2A routes (agent card, JSON-RPC), to merge into the HTTP listener's router.
pub fn router(st: Arc<A2a>) -> axum::Router {
    axum::Router::new()
        .route(CARD_PATH, axum::routing::get(card))
        .route(LEGACY_CARD_PATH, axum::routing::get(card))
        .route(RPC_PATH, axum::routing::post(rpc))
        // Clients that take the JSON-RPC URL as the agent's base URL look for the card
        // under it, and some post to the root: both are served too.
        .route(&format!("{RPC_PATH}{CARD_PATH}"), axum::routing::get(card))
        .route("/", axum::routing::post(rpc))
        .with_state(st)
}

// ---- JSON-RPC errors ----------------------------------------------------------------

pub(crate) const PARSE_ERROR: i64 = -32700;
pub(crate) const INVALID_REQUEST: i64 = -32600;
pub(crate) const METHOD_NOT_FOUND: i64 = -32601;
pub(crate) const INVALID_PARAMS: i64 = -32602;
pub(crate) const INTERNAL_ERROR: i64 = -32603;
/// Server-defined: the request carried no valid credentials (sent with HTTP 401).
pub(crate) const UNAUTHENTICATED: i64 = -32000;
pub(crate) const TASK_NOT_FOUND: i64 = -32001;
pub(crate) const TASK_NOT_CANCELABLE: i64 = -32002;
pub(crate) const UNSUPPORTED_OPERATION: i64 = -32004;
pub(crate) const EXTENDED_CARD_NOT_CONFIGURED: i64 = -32007;
pub(crate) const VERSION_NOT_SUPPORTED: i64 = -32009;

/// An A2A error: its JSON-RPC code (the gRPC binding maps it to a status) and message.
#[derive(Debug)]
pub(crate) struct RpcError {
    pub(crate) code: i64,
    pub(crate) message: String,
}

impl RpcError {
    fn new(code: i64, message: impl Into<String>) -> Self {
        RpcError { code, message: message.into() }
    }
    fn params(message: impl Into<String>) -> Self {
        Self::new(INVALID_PARAMS, message)
    }
}

fn error_body(id: &Value, e: &RpcError) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "error": { "code": e.code, "message": e.message } })
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

fn rpc_error(status: StatusCode, id: &Value, e: RpcError) -> Response {
    json_response(status, &error_body(id, &e))
}

// ---- the agent card -------------------------------------------------------------------

async fn card(State(st): State<Arc<A2a>>, headers: HeaderMap) -> Response {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    let scheme = if st.tls { "https" } else { "http" };
    // The gRPC binding: the host the client reached us by, the gRPC listener's port.
    // A URL with its scheme (`grpc://`, `grpcs://` with TLS), as clients parse it.
    let grpc_scheme = if st.tls { "grpcs" } else { "grpc" };
    let grpc = st.grpc_port.get().map(|port| format!("{grpc_scheme}://{}:{port}", host_name(host)));
    let card = agent_card(&format!("{scheme}://{host}{RPC_PATH}"), st.svc.security.auth_enabled(), grpc.as_deref());
    json_response(StatusCode::OK, &card)
}

/// `example.com:8080` → `example.com`; `[::1]:80` → `[::1]`.
fn host_name(host: &str) -> &str {
    match host.rfind(':') {
        Some(i) if !host[i..].contains(']') => &host[..i],
        _ => host,
    }
}

impl A2a {
    /// Advertise the gRPC binding (served on the gRPC listener, port `port`) in the card.
    pub fn advertise_grpc(&self, port: u16) {
        let _ = self.grpc_port.set(port);
    }
}

/// The agent card, in the 0.3 layout with the 1.0 `supportedInterfaces` added: a2a-sdk
/// 1.x reads the latter (and maps the 0.3 security scheme), 0.3 clients the former.
fn agent_card(url: &str, auth: bool, grpc: Option<&str>) -> Value {
    let skill = |id: &str, name: &str, description: &str, tags: &[&str], examples: &[&str]| {
        json!({ "id": id, "name": name, "description": description, "tags": tags, "examples": examples,
                "inputModes": ["text/plain", "application/json"], "outputModes": ["text/plain", "application/json"] })
    };
    let mut card = json!({
        "name": "AgentDB",
        "description": "Multimodal retrieval engine and agent memory: cross-modal search of collections, \
                        ingestion of files and text, and per-agent memory (remember / recall).",
        "version": env!("CARGO_PKG_VERSION"),
        "protocolVersion": "0.3.0",
        "url": url,
        "preferredTransport": "JSONRPC",
        "supportedInterfaces": [
            { "url": url, "protocolBinding": "JSONRPC", "protocolVersion": "1.0" },
            { "url": url, "protocolBinding": "JSONRPC", "protocolVersion": "0.3" },
        ],
        "provider": { "organization": "AgentDB", "url": "https://github.com/agentdb" },
        "capabilities": { "streaming": true, "pushNotifications": true, "stateTransitionHistory": false },
        "defaultInputModes": ["text/plain", "application/json", "application/octet-stream"],
        "defaultOutputModes": ["text/plain", "application/json"],
        "skills": [
            skill("search", "Search a collection",
                  "Cross-modal search of a collection by text (or an image/audio/video file part). Send a data part \
                   {\"skill\":\"search\",\"collection\":\"NAME\",\"text\":\"QUERY\",\"top_k\":5}.",
                  &["search", "retrieval", "multimodal"], &["{\"skill\":\"search\",\"collection\":\"docs\",\"text\":\"fruit\"}"]),
            skill("ingest", "Ingest into a collection",
                  "Index a file part (bytes or a data: URI) or text into a collection. Send a data part \
                   {\"skill\":\"ingest\",\"collection\":\"NAME\"} with a file part, or with \"text\" and \"source\".",
                  &["ingest", "indexing"], &["{\"skill\":\"ingest\",\"collection\":\"docs\",\"text\":\"...\",\"source\":\"note.txt\"}"]),
            skill("remember", "Remember",
                  "Store text in the caller's memory collection memory-<principal> (created on demand). A text \
                   message starting with \"remember:\" does this.",
                  &["memory"], &["remember: the deploy key rotates on Mondays"]),
            skill("recall", "Recall",
                  "Search the caller's memory. Any plain text message (not starting with \"remember:\") does this.",
                  &["memory", "search"], &["when does the deploy key rotate?"]),
        ],
    });
    // Credentials are advertised only when the server asks for them. The scheme is in the
    // 1.0 shape (one `httpAuthSecurityScheme` member), the requirement in both dialects.
    if auth {
        card["securitySchemes"] = json!({
            "bearer": { "httpAuthSecurityScheme": { "scheme": "Bearer",
                "description": "An AgentDB API key (adb_...) or an OIDC access token, as for gRPC." } }
        });
        card["securityRequirements"] = json!([{ "schemes": { "bearer": { "list": [] } } }]);
        card["security"] = json!([{ "bearer": [] }]);
    }
    if let (Some(g), Some(list)) = (grpc, card["supportedInterfaces"].as_array_mut()) {
        list.push(json!({ "url": g, "protocolBinding": "GRPC", "protocolVersion": "1.0" }));
    }
    card
}

// ---- JSON-RPC -------------------------------------------------------------------------

async fn rpc(State(st): State<Arc<A2a>>, headers: HeaderMap, body: Body) -> Response {
    let security = st.svc.security.clone();
    let mut who = "local".to_string();
    let mut principal = None;
    if security.auth_enabled() {
        match security.authenticate(&headers).await {
            Ok(p) => {
                who = p.id.clone();
                principal = Some(p);
            }
            Err(why) => {
                crate::telemetry::record_principal("anonymous");
                security.audit("anonymous", "A2A", "", "fail", &why);
                let mut r = rpc_error(StatusCode::UNAUTHORIZED, &Value::Null, RpcError::new(UNAUTHENTICATED, why));
                r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                return r;
            }
        }
    }
    if let Some(rate) = &security.rate {
        if let Err(wait_ms) = rate.check(&who) {
            let e = RpcError::new(
                INTERNAL_ERROR,
                format!("rate limit of {} requests/s exceeded for {who}; retry after {wait_ms} ms", rate.per_sec()),
            );
            let mut r = rpc_error(StatusCode::TOO_MANY_REQUESTS, &Value::Null, e);
            if let Ok(v) = HeaderValue::from_str(&wait_ms.div_ceil(1000).to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return r;
        }
    }
    let bytes = match axum::body::to_bytes(body, st.max_body).await {
        Ok(b) => b,
        Err(_) => {
            let e = RpcError::new(INVALID_REQUEST, format!("request body exceeds the limit of {} bytes", st.max_body));
            return rpc_error(StatusCode::PAYLOAD_TOO_LARGE, &Value::Null, e);
        }
    };
    let req: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => {
            return rpc_error(StatusCode::OK, &Value::Null, RpcError::new(PARSE_ERROR, format!("parse error: {e}")))
        }
    };
    let Some(obj) = req.as_object() else {
        let why = if req.is_array() { "batch requests are not supported" } else { "the request must be an object" };
        return rpc_error(StatusCode::OK, &Value::Null, RpcError::new(INVALID_REQUEST, why));
    };
    let id = obj.get("id").cloned().unwrap_or(Value::Null);
    if !(id.is_string() || id.is_number() || id.is_null()) {
        return rpc_error(
            StatusCode::OK,
            &Value::Null,
            RpcError::new(INVALID_REQUEST, "id must be a string or number"),
        );
    }
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return rpc_error(StatusCode::OK, &id, RpcError::new(INVALID_REQUEST, "jsonrpc must be \"2.0\""));
    }
    let Some(method) = obj.get("method").and_then(Value::as_str) else {
        return rpc_error(StatusCode::OK, &id, RpcError::new(INVALID_REQUEST, "method must be a string"));
    };
    if let Some(v) = headers.get("a2a-version").and_then(|v| v.to_str().ok()) {
        let v = v.trim();
        if !(v.is_empty() || v.starts_with("1.0") || v.starts_with("0.3") || v == "1") {
            let e = RpcError::new(VERSION_NOT_SUPPORTED, format!("A2A-Version {v} is not supported (1.0, 0.3)"));
            return rpc_error(StatusCode::OK, &id, e);
        }
    }
    let params = match obj.get("params") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return rpc_error(StatusCode::OK, &id, RpcError::params("params must be an object")),
    };
    crate::telemetry::record_principal(&who);
    crate::telemetry::record_rpc_method(method);
    let ctx = Caller::new(principal);
    use Dialect::*;
    let streaming = match method {
        "SendStreamingMessage" => Some((V1, true)),
        "message/stream" => Some((V03, true)),
        "SubscribeToTask" => Some((V1, false)),
        "tasks/resubscribe" => Some((V03, false)),
        _ => None,
    };
    if let Some((d, send)) = streaming {
        return match st.open_stream(d, &ctx, send, &params) {
            Ok(values) => sse(id, values),
            Err(e) => sse_error(id, e),
        };
    }
    let result = st.dispatch(&ctx, method, &params).await;
    match result {
        Ok(r) => json_response(StatusCode::OK, &json!({ "jsonrpc": "2.0", "id": id, "result": r })),
        Err(e) => rpc_error(StatusCode::OK, &id, e),
    }
}

/// Who is calling: the authenticated principal (none with authentication off) and the
/// owner id its tasks are filed under.
pub(crate) struct Caller {
    principal: Option<Principal>,
    owner: String,
}

impl Caller {
    /// The caller `principal` (none with authentication off: owner "local").
    pub(crate) fn new(principal: Option<Principal>) -> Caller {
        let owner = principal.as_ref().map_or("local".to_string(), |p| p.id.clone());
        Caller { principal, owner }
    }
}

/// A string parameter, in either ProtoJSON spelling (`contextId` or `context_id`).
fn str_param<'a>(p: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    crate::a2a_params::param(p, key).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty())
}

/// `historyLength`: absent, or an integer >= 0 (INVALID_PARAMS otherwise).
fn history_length_param(p: &Map<String, Value>) -> Result<Option<usize>, RpcError> {
    match crate::a2a_params::int_param(p, "historyLength").map_err(RpcError::params)? {
        None => Ok(None),
        Some(n) if n < 0 => Err(RpcError::params(format!("historyLength must be 0 or more, got {n}"))),
        Some(n) => Ok(Some(n as usize)),
    }
}

fn task_id_param(p: &Map<String, Value>) -> Result<String, RpcError> {
    // 1.0 sends `id`; some 0.3 clients sent `name: "tasks/<id>"`.
    str_param(p, "id")
        .map(str::to_string)
        .or_else(|| str_param(p, "name").map(|n| n.trim_start_matches("tasks/").to_string()))
        .ok_or_else(|| RpcError::params("params.id (the task id) is required"))
}

fn usize_param(p: &Map<String, Value>, key: &str) -> Option<usize> {
    match crate::a2a_params::param(p, key)? {
        Value::Number(n) => n.as_u64().map(|n| n as usize),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn decode_b64(s: &str) -> Result<Vec<u8>, RpcError> {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE};
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    STANDARD
        .decode(&s)
        .or_else(|_| URL_SAFE.decode(&s))
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(s.trim_end_matches('=')))
        .map_err(|e| RpcError::params(format!("file part: invalid base64: {e}")))
}

/// A file given by URI: only `data:` URIs, never a network fetch.
fn decode_data_uri(uri: &str) -> Result<(String, Vec<u8>), RpcError> {
    let Some(rest) = uri.strip_prefix("data:") else {
        return Err(RpcError::params(
            "file part: only inline bytes or data: URIs are accepted (AgentDB does not fetch URLs)",
        ));
    };
    let (meta, payload) = rest.split_once(',').ok_or_else(|| RpcError::params("file part: malformed data: URI"))?;
    let (mime, b64) = match meta.strip_suffix(";base64") {
        Some(m) => (m, true),
        None => (meta, false),
    };
    let mime = if mime.is_empty() { "text/plain" } else { mime.split(';').next().unwrap_or("text/plain") };
    let bytes = if b64 { decode_b64(payload)? } else { percent_decode(payload) };
    Ok((mime.to_string(), bytes))
}

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// One part, in either dialect: 1.0 `{text}` / `{raw|url, filename, mediaType}` /
/// `{data}`; 0.3 `{kind: text|file|data, ...}` with `file: {bytes|uri, name, mimeType}`.
fn parse_part(v: &Value) -> Result<Part, RpcError> {
    let o = v.as_object().ok_or_else(|| RpcError::params("each part must be an object"))?;
    if let Some(t) = o.get("text").and_then(Value::as_str) {
        return Ok(Part::Text(t.to_string()));
    }
    if let Some(d) = o.get("data") {
        return Ok(Part::Data(d.clone()));
    }
    let file = o.get("file").and_then(Value::as_object).unwrap_or(o);
    let name = ["filename", "name"].iter().find_map(|k| file.get(*k).and_then(Value::as_str)).unwrap_or("");
    let mime = ["mediaType", "mimeType"].iter().find_map(|k| file.get(*k).and_then(Value::as_str)).unwrap_or("");
    let (mime, bytes) = if let Some(raw) = ["raw", "bytes"].iter().find_map(|k| file.get(*k).and_then(Value::as_str)) {
        (mime.to_string(), decode_b64(raw)?)
    } else if let Some(uri) = ["url", "uri"].iter().find_map(|k| file.get(*k).and_then(Value::as_str)) {
        let (m, b) = decode_data_uri(uri)?;
        (if mime.is_empty() { m } else { mime.to_string() }, b)
    } else {
        let kind = o.get("kind").and_then(Value::as_str).unwrap_or("?");
        return Err(RpcError::params(format!("unsupported part (kind '{kind}'): expected text, file or data")));
    };
    let mime = if mime.is_empty() { "application/octet-stream".to_string() } else { mime };
    Ok(Part::File { name: name.to_string(), mime, bytes })
}

/// The message of a send request: id, context, optional task, parts.
struct Incoming {
    message_id: String,
    context_id: Option<String>,
    task_id: Option<String>,
    parts: Vec<Part>,
}

fn parse_message(params: &Map<String, Value>) -> Result<Incoming, RpcError> {
    let m = params
        .get("message")
        .and_then(Value::as_object)
        .ok_or_else(|| RpcError::params("params.message (an object) is required"))?;
    let parts = m
        .get("parts")
        .and_then(Value::as_array)
        .ok_or_else(|| RpcError::params("message.parts (an array) is required"))?
        .iter()
        .map(parse_part)
        .collect::<Result<Vec<_>, _>>()?;
    if parts.is_empty() {
        return Err(RpcError::params("message.parts is empty"));
    }
    Ok(Incoming {
        message_id: str_param(m, "messageId").map_or_else(new_id, str::to_string),
        context_id: str_param(m, "contextId").map(str::to_string),
        task_id: str_param(m, "taskId").map(str::to_string),
        parts,
    })
}

/// Gather a job from parts. Routing: a data part's `skill` decides; otherwise text
/// starting with `remember:` means remember, a file part alone means ingest, and any
/// other text means recall.
fn job_from_parts(parts: &[Part]) -> Job {
    let mut job = Job::default();
    let mut texts = Vec::new();
    for p in parts {
        match p {
            Part::Text(t) => texts.push(t.clone()),
            Part::Data(Value::Object(m)) => job.params.extend(m.clone()),
            Part::Data(other) => {
                job.params.insert("value".into(), other.clone());
            }
            Part::File { name, mime, bytes } => job.files.push((name.clone(), mime.clone(), bytes.clone())),
        }
    }
    job.text = texts.join("\n");
    job.skill = str_param(&job.params, "skill").map(|s| s.to_ascii_lowercase());
    if job.skill.is_none() {
        let t = job.text.trim_start();
        job.skill = Some(
            if t.len() >= 9 && t[..9].eq_ignore_ascii_case("remember:") {
                job.text = t[9..].trim().to_string();
                "remember"
            } else if t.is_empty() && !job.files.is_empty() {
                "ingest"
            } else {
                "recall"
            }
            .to_string(),
        );
    }
    job
}

/// A continuation: the new message's fields fill in or replace the waiting request's.
fn merge_job(mut old: Job, new: Job, new_parts: &[Part]) -> Job {
    let explicit_skill = new_parts.iter().any(|p| matches!(p, Part::Data(Value::Object(m)) if m.contains_key("skill")));
    if explicit_skill {
        old.skill = new.skill;
    }
    old.params.extend(new.params);
    if !new.text.trim().is_empty() {
        old.text = new.text;
    }
    if !new.files.is_empty() {
        old.files = new.files;
    }
    old
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// RFC 3339 UTC time with milliseconds, as ProtoJSON timestamps are written.
fn now_rfc3339() -> String {
    agentdb_orchestrator::time::rfc3339(agentdb_orchestrator::now_ms())
}

fn agent_text(text: impl Into<String>) -> MessageRec {
    MessageRec { id: new_id(), agent: true, parts: vec![Part::Text(text.into())] }
}

/// How a skill ended.
enum Outcome {
    /// Completed, with an artifact: its name, a readable summary and the data.
    Done {
        name: &'static str,
        summary: String,
        data: Value,
    },
    /// The request lacks something the client can send (input-required).
    NeedInput(String),
    /// Not allowed (RBAC): rejected.
    Rejected(String),
    Failed(String),
}

fn status_outcome(st: tonic::Status) -> Outcome {
    match st.code() {
        tonic::Code::PermissionDenied | tonic::Code::Unauthenticated => Outcome::Rejected(st.message().to_string()),
        _ => Outcome::Failed(st.message().to_string()),
    }
}

/// A task's durable record at a version: (task id, version, record).
type Snapshot = (String, u64, Value);

impl A2a {
    /// Read the stored tasks back (on start). Tasks that were not finished when the
    /// server stopped cannot go on (their work is gone): they become failed, saying so.
    fn load(&self) {
        let records = match self.store.load() {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "A2A: cannot read the stored tasks; starting without them");
                return;
            }
        };
        let mut stored: Vec<StoredTask> = records
            .into_iter()
            .filter_map(|(id, v)| match serde_json::from_value::<StoredTask>(v) {
                Ok(t) => Some(t),
                Err(e) => {
                    tracing::warn!(task = %id, error = %e, "A2A: unreadable stored task skipped");
                    None
                }
            })
            .collect();
        stored.sort_by_key(|t| t.seq);
        let (mut failed, mut evicted) = (Vec::new(), Vec::new());
        {
            let mut tasks = self.tasks.lock();
            for t in stored {
                let mut rec = TaskRec {
                    id: t.id,
                    context_id: t.context_id,
                    owner: t.owner,
                    status: t.status,
                    artifacts: t.artifacts,
                    history: t.history,
                    pending: None,
                    events: broadcast::channel(TASK_EVENTS).0,
                    abort: None,
                    seq: t.seq,
                    push: Vec::new(),
                    push_tx: None,
                };
                if !rec.status.state.terminal() {
                    let m = agent_text(format!(
                        "the server restarted while the task was {}; send the request again",
                        rec.status.state.name(Dialect::V03)
                    ));
                    rec.history.push(m.clone());
                    rec.status = StatusRec { state: TaskState::Failed, message: Some(m), timestamp: now_rfc3339() };
                    failed.push(rec.id.clone());
                }
                tasks.seq = tasks.seq.max(rec.seq);
                evicted.extend(tasks.insert(rec));
            }
            let n = tasks.map.len();
            if n > 0 {
                tracing::info!(tasks = n, failed = failed.len(), "A2A tasks loaded");
            }
        }
        let snaps: Vec<Snapshot> = {
            let tasks = self.tasks.lock();
            failed.iter().filter_map(|id| tasks.map.get(id)).map(|t| self.snapshot(t)).collect()
        };
        for s in snaps {
            self.save(s);
        }
        self.forget(&evicted);
    }

    /// The task's durable record, at the next version (call under the table lock, so
    /// versions follow the order of the changes).
    fn snapshot(&self, t: &TaskRec) -> Snapshot {
        let v = self.versions.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        (t.id.clone(), v, t.stored())
    }

    /// Write a snapshot to `_a2a_tasks` (outside the table lock); a failure is logged,
    /// the task goes on in memory.
    fn save(&self, (id, version, record): Snapshot) {
        if let Err(e) = self.store.put(&id, version, record) {
            tracing::warn!(task = %id, error = %e, "A2A: cannot store the task");
        }
    }

    /// Delete evicted tasks from `_a2a_tasks`.
    fn forget(&self, ids: &[String]) {
        if let Err(e) = self.store.delete(ids) {
            tracing::warn!(tasks = ids.len(), error = %e, "A2A: cannot delete evicted tasks");
        }
    }

    /// Register a task for `msg` (new, or the continuation of one waiting for input),
    /// start its skill, and return (task id, context id, snapshot, event receiver).
    fn start(
        self: &Arc<Self>,
        d: Dialect,
        ctx: &Caller,
        msg: Incoming,
        push: Option<PushConfig>,
    ) -> Result<(String, String, Value, broadcast::Receiver<Event>), RpcError> {
        let new_job = job_from_parts(&msg.parts);
        let user_msg =
            MessageRec { id: msg.message_id, agent: false, parts: msg.parts.iter().map(Part::for_history).collect() };
        let mut evicted = Vec::new();
        let mut tasks = self.tasks.lock();
        let (task_id, job) = match &msg.task_id {
            Some(tid) => {
                let t = tasks.owned(tid, &ctx.owner)?;
                if !matches!(t.status.state, TaskState::InputRequired | TaskState::AuthRequired) {
                    return Err(RpcError::new(
                        UNSUPPORTED_OPERATION,
                        format!(
                            "task '{tid}' is {} and takes no further messages; start a new task",
                            t.status.state.name(d)
                        ),
                    ));
                }
                if msg.context_id.as_ref().is_some_and(|c| *c != t.context_id) {
                    return Err(RpcError::params("message.contextId does not match the task's context"));
                }
                if let Some(c) = push {
                    self.add_push(&mut tasks, tid, &ctx.owner, c)?;
                }
                let t = tasks.owned(tid, &ctx.owner)?;
                let job = merge_job(t.pending.take().unwrap_or_default(), new_job, &msg.parts);
                t.history.push(user_msg);
                (tid.clone(), job)
            }
            None => {
                if push.is_some() {
                    push_room(&tasks, &ctx.owner)?;
                }
                let id = new_id();
                tasks.seq += 1;
                let seq = tasks.seq;
                evicted = tasks.insert(TaskRec {
                    id: id.clone(),
                    context_id: msg.context_id.unwrap_or_else(new_id),
                    owner: ctx.owner.clone(),
                    status: StatusRec { state: TaskState::Submitted, message: None, timestamp: now_rfc3339() },
                    artifacts: Vec::new(),
                    history: vec![user_msg],
                    pending: None,
                    events: broadcast::channel(TASK_EVENTS).0,
                    abort: None,
                    seq,
                    push: Vec::new(),
                    push_tx: None,
                });
                if let Some(c) = push {
                    self.add_push(&mut tasks, &id, &ctx.owner, c)?;
                }
                (id, new_job)
            }
        };
        let t = tasks.map.get_mut(&task_id).ok_or_else(|| RpcError::new(INTERNAL_ERROR, "task vanished"))?;
        t.status = StatusRec { state: TaskState::Submitted, message: None, timestamp: now_rfc3339() };
        t.notify();
        let snapshot = t.render(d, None, true);
        let rx = t.events.subscribe();
        let context_id = t.context_id.clone();
        let (me, principal, id) = (self.clone(), ctx.principal.clone(), task_id.clone());
        // The task's work runs in an `a2a.task` span, a child of the request's span in the
        // trace (its OpenTelemetry parent), though it may outlive the HTTP response
        // (non-blocking sends, streams): `parent: None` keeps the request's own span from
        // waiting for it.
        let span = tracing::info_span!(
            parent: None,
            "a2a.task",
            task = %task_id,
            skill = job.skill.as_deref().unwrap_or("recall"),
            request_id = %crate::telemetry::current_request_id().unwrap_or_default(),
            agentdb.collection = tracing::field::Empty,
            a2a.state = tracing::field::Empty,
        );
        crate::telemetry::capture().parent(&span);
        // The task's work counts against its owner at the admission gate and in the
        // encoders' fair queues (the request's task-local context does not follow a spawn).
        let owner = ctx.owner.clone();
        let work = async move { crate::telemetry::as_tenant(&owner, me.run_task(&id, principal, job)).await };
        let handle = tokio::spawn(tracing::Instrument::instrument(work, span));
        t.abort = Some(handle.abort_handle());
        let stored = self.snapshot(t);
        drop(tasks);
        self.save(stored);
        self.forget(&evicted);
        Ok((task_id, context_id, snapshot, rx))
    }

    /// Move a task to a new status (never out of a terminal one) and tell subscribers.
    fn set_status(&self, task_id: &str, state: TaskState, message: Option<MessageRec>) {
        let mut tasks = self.tasks.lock();
        if let Some(t) = tasks.map.get_mut(task_id) {
            if t.status.state.terminal() {
                return;
            }
            if let Some(m) = &message {
                t.history.push(m.clone());
            }
            t.status = StatusRec { state, message, timestamp: now_rfc3339() };
            if state.terminal() {
                t.abort = None;
            }
            tracing::Span::current().record("a2a.state", state.name(Dialect::V03));
            // Stored before anyone hears of it: a client told "completed" finds the task
            // completed after a restart, however abrupt.
            self.save(self.snapshot(t));
            let _ = t.events.send(Event::Status(t.status.clone()));
            t.notify();
        }
    }

    async fn run_task(self: Arc<Self>, task_id: &str, principal: Option<Principal>, job: Job) {
        self.set_status(task_id, TaskState::Working, None);
        let outcome = self.execute(task_id, principal.as_ref(), &job).await;
        match outcome {
            Outcome::Done { name, summary, data } => {
                let artifact = ArtifactRec {
                    id: new_id(),
                    name: name.to_string(),
                    description: format!("result of the {name} skill"),
                    parts: vec![Part::Text(summary.clone()), Part::Data(data)],
                };
                {
                    let mut tasks = self.tasks.lock();
                    if let Some(t) = tasks.map.get_mut(task_id) {
                        if t.status.state.terminal() {
                            return; // canceled meanwhile
                        }
                        t.artifacts.push(artifact.clone());
                        let _ = t.events.send(Event::Artifact(artifact));
                        t.notify();
                    }
                }
                self.set_status(task_id, TaskState::Completed, Some(agent_text(summary)));
            }
            Outcome::NeedInput(why) => {
                if let Some(t) = self.tasks.lock().map.get_mut(task_id) {
                    t.pending = Some(job);
                }
                self.set_status(task_id, TaskState::InputRequired, Some(agent_text(why)));
            }
            Outcome::Rejected(why) => self.set_status(task_id, TaskState::Rejected, Some(agent_text(why))),
            Outcome::Failed(why) => self.set_status(task_id, TaskState::Failed, Some(agent_text(why))),
        }
    }

    /// Run one of AgentDB's own skills (search, ingest, remember, recall) in-process as
    /// `p`, for a workflow step: the summary and data of its artifact, or why it did not
    /// complete. Authorization, row policies and quotas apply as for an A2A request.
    pub async fn run_skill(
        &self,
        task_id: &str,
        p: Option<&Principal>,
        skill: &str,
        params: Map<String, Value>,
        file: Option<(String, String, Vec<u8>)>,
    ) -> Result<(String, Value), String> {
        let job =
            Job { skill: Some(skill.to_string()), params, text: String::new(), files: file.into_iter().collect() };
        match self.execute(task_id, p, &job).await {
            Outcome::Done { summary, data, .. } => Ok((summary, data)),
            Outcome::NeedInput(m) | Outcome::Failed(m) => Err(m),
            Outcome::Rejected(m) => Err(format!("refused: {m}")),
        }
    }

    async fn execute(&self, task_id: &str, p: Option<&Principal>, job: &Job) -> Outcome {
        let owner = p.map_or("local".to_string(), |p| p.id.clone());
        match job.skill.as_deref().unwrap_or("recall") {
            "search" => {
                let Some(collection) = str_param(&job.params, "collection") else {
                    return Outcome::NeedInput(
                        "the search skill needs a collection: send a data part {\"collection\": \"NAME\"}".into(),
                    );
                };
                self.search(p, "search", collection, job).await
            }
            "recall" => {
                let collection = principal_memory_collection(&owner);
                let db = self.svc.db.clone();
                let name = collection.clone();
                let exists = tokio::task::spawn_blocking(move || db.collection(&name).is_ok()).await.unwrap_or(false);
                if !exists {
                    if let Err(st) = self.svc.security.authorize(p, Action::Read, &collection, "A2A/recall") {
                        return status_outcome(st);
                    }
                    return Outcome::Done {
                        name: "recall",
                        summary: "nothing remembered yet".into(),
                        data: json!({ "skill": "recall", "collection": collection, "hits": [] }),
                    };
                }
                self.search(p, "recall", &collection, job).await
            }
            "ingest" => {
                let Some(collection) = str_param(&job.params, "collection") else {
                    return Outcome::NeedInput(
                        "the ingest skill needs a collection: send a data part {\"collection\": \"NAME\"}".into(),
                    );
                };
                let (source, content) = match job.files.first() {
                    Some((name, mime, bytes)) => {
                        let name =
                            if name.is_empty() { format!("a2a-{task_id}{}", ext_for(mime)) } else { name.clone() };
                        (str_param(&job.params, "source").map_or(name, str::to_string), bytes.clone())
                    }
                    None => {
                        let text = str_param(&job.params, "text").unwrap_or(job.text.trim());
                        if text.is_empty() {
                            return Outcome::NeedInput("the ingest skill needs a file part or text to index".into());
                        }
                        let source =
                            str_param(&job.params, "source").map_or(format!("a2a-{task_id}.txt"), str::to_string);
                        (source, text.as_bytes().to_vec())
                    }
                };
                self.ingest(p, "ingest", collection, source, content).await
            }
            "remember" => {
                let text = str_param(&job.params, "text").unwrap_or(job.text.trim());
                if text.is_empty() {
                    return Outcome::NeedInput("remember what? send text after \"remember:\"".into());
                }
                let collection = principal_memory_collection(&owner);
                if let Err(st) = self.svc.security.authorize(p, Action::Write, &collection, "A2A/remember") {
                    return status_outcome(st);
                }
                if let Err(why) = self.ensure_memory(&collection).await {
                    return Outcome::Failed(why);
                }
                let source = format!("memory-{task_id}.txt");
                self.ingest(p, "remember", &collection, source, text.as_bytes().to_vec()).await
            }
            other => Outcome::Rejected(format!("unknown skill '{other}': use search, ingest, remember or recall")),
        }
    }

    /// Create the caller's memory collection (multimodal: the text space, plus CLIP's
    /// when configured) if it does not exist. The caller was already authorized to write it.
    async fn ensure_memory(&self, name: &str) -> Result<(), String> {
        let spaces = self.svc.encoders.multimodal_spaces().map_err(|e| e.to_string())?;
        let (db, name) = (self.svc.db.clone(), name.to_string());
        let res = self
            .svc
            .gate
            .run(move || {
                if db.collection(&name).is_ok() {
                    return Ok(());
                }
                match db.create_collection(agentdb_engine::CollectionSpec {
                    name: name.clone(),
                    spaces,
                    keyword: Some(Default::default()),
                }) {
                    Ok(_) => {
                        tracing::info!(collection = %name, "A2A: memory collection created");
                        Ok(())
                    }
                    // Created by a concurrent request meanwhile.
                    Err(_) if db.collection(&name).is_ok() => Ok(()),
                    Err(e) => Err(e.into()),
                }
            })
            .await;
        res.map_err(|s| s.message().to_string())
    }

    async fn search(&self, p: Option<&Principal>, skill: &'static str, collection: &str, job: &Job) -> Outcome {
        let method = format!("A2A/{skill}");
        crate::telemetry::record_collection(collection);
        if let Err(st) = self.svc.security.authorize(p, Action::Read, collection, &method) {
            return status_outcome(st);
        }
        let text = str_param(&job.params, "text").map(str::to_string).unwrap_or_else(|| job.text.trim().to_string());
        let (input, shown) = if !text.is_empty() {
            (QueryInput::Text(text.clone()), text)
        } else if let Some((name, mime, bytes)) = job.files.first() {
            let input = if mime.starts_with("image/") {
                QueryInput::Image(bytes.clone())
            } else if mime.starts_with("audio/") {
                QueryInput::Audio(bytes.clone())
            } else if mime.starts_with("video/") {
                QueryInput::Video(bytes.clone())
            } else {
                return Outcome::Failed(format!("cannot search by a file of type {mime}: use image, audio or video"));
            };
            (input, format!("file {name}"))
        } else {
            return Outcome::NeedInput(format!("the {skill} skill needs a query: text or a media file part"));
        };
        let k = usize_param(&job.params, "top_k").or(usize_param(&job.params, "topK")).unwrap_or(DEFAULT_TOP_K);
        let k = k.clamp(1, MAX_TOP_K);
        let filter_expr = str_param(&job.params, "filter").unwrap_or("");
        // The principal's row policy ANDed with the request's filter, masked fields
        // refused, as for gRPC.
        let filter = match self.svc.security.scoped_filter(p, filter_expr) {
            Ok(f) => f,
            Err(st) => return status_outcome(st),
        };
        let (db, enc, lim, name) =
            (self.svc.db.clone(), self.svc.encoders.clone(), self.svc.ingest, collection.to_string());
        let hidden = self.svc.security.hidden_keys(p);
        let res = self
            .svc
            .gate
            .run(move || {
                let c = db.collection(&name)?;
                let q = CrossQuery {
                    input: Some(input),
                    keyword: agentdb_retrieval::KeywordQuery { hidden, ..Default::default() },
                    space: String::new(),
                    k,
                    filter,
                    params: Default::default(),
                    mode: agentdb_engine::fusion::FusionMode::Rrf,
                    weights: Default::default(),
                    with_payload: true,
                    explain: false,
                };
                Ok(agentdb_retrieval::query::run(&c, &enc, q, lim)?)
            })
            .await;
        let mut hits = match res {
            Ok(h) => h,
            Err(st) => return status_outcome(st),
        };
        for payload in hits.iter_mut().filter_map(|h| h.payload.as_mut()) {
            self.svc.security.mask(p, payload);
        }
        let rows: Vec<Value> = hits
            .iter()
            .map(|h| {
                let mut row = json!({
                    "id": h.id, "source": h.source, "modality": h.modality, "part": h.part, "score": h.score,
                });
                if let Some(t) = h.payload.as_ref().and_then(|p| p.get("text")).and_then(Value::as_str) {
                    row["text"] = t.chars().take(500).collect::<String>().into();
                }
                row
            })
            .collect();
        let mut summary = format!("{} hit(s) in '{collection}' for {shown:?}", rows.len());
        for (i, h) in hits.iter().enumerate() {
            summary.push_str(&format!("\n{}. {} ({}, {}) score {:.4}", i + 1, h.source, h.modality, h.part, h.score));
        }
        Outcome::Done { name: skill, summary, data: json!({ "skill": skill, "collection": collection, "hits": rows }) }
    }

    async fn ingest(
        &self,
        p: Option<&Principal>,
        skill: &'static str,
        collection: &str,
        source: String,
        content: Vec<u8>,
    ) -> Outcome {
        crate::telemetry::record_collection(collection);
        if let Err(st) = self.svc.security.authorize(p, Action::Write, collection, &format!("A2A/{skill}")) {
            return status_outcome(st);
        }
        if p.is_some_and(|p| p.row_filter.is_some()) {
            return Outcome::Rejected("keys with a row policy cannot ingest files; upsert items instead".into());
        }
        if let Err(st) = self.svc.security.check_ingest(p, content.len()) {
            return status_outcome(st);
        }
        let content_len = content.len();
        let (db, enc, lim, obs) =
            (self.svc.db.clone(), self.svc.encoders.clone(), self.svc.ingest, self.svc.observer.clone());
        let name = collection.to_string();
        let res = self
            .svc
            .gate
            .run(move || {
                let c = db.collection(&name)?;
                Ok(agentdb_retrieval::ingest_file(&c, &enc, &source, &content, lim, obs.as_ref()))
            })
            .await;
        let r = match res {
            Ok(r) => crate::grpc::outcome_to_wire(r),
            Err(st) => return status_outcome(st),
        };
        if r.status == "ingested" {
            self.svc.security.charge_ingest(p, content_len, r.items);
        }
        self.svc.metrics.observe_ingest(&r.status, &r.media_type, r.items as u64);
        tracing::info!(collection = %collection, source = %r.source, status = %r.status, items = r.items, error = %r.error, "A2A ingest");
        if r.status == "failed" {
            return Outcome::Failed(r.error);
        }
        let summary = match (skill, r.status.as_str()) {
            ("remember", "skipped") => "already remembered".to_string(),
            ("remember", _) => format!("remembered ({} item(s) in '{collection}')", r.items),
            (_, "skipped") => format!("{}: same content already in '{collection}'", r.source),
            _ => format!("{}: {} item(s) ingested into '{collection}' as {}", r.source, r.items, r.media_type),
        };
        Outcome::Done {
            name: skill,
            summary,
            data: json!({
                "skill": skill, "collection": collection, "source": r.source, "status": r.status,
                "items": r.items, "mediaType": r.media_type, "contentSha256": r.content_sha256,
            }),
        }
    }

    // ---- methods --------------------------------------------------------------------

    /// A unary (non-streaming) method, by its 1.0 or 0.3 name: the result object, in
    /// the dialect of the name (1.0: ProtoJSON, which the gRPC binding converts from).
    pub(crate) async fn dispatch(
        self: &Arc<Self>,
        ctx: &Caller,
        method: &str,
        params: &Map<String, Value>,
    ) -> Result<Value, RpcError> {
        use Dialect::*;
        match method {
            "SendMessage" => self.send(V1, ctx, params).await,
            "message/send" => self.send(V03, ctx, params).await,
            "GetTask" => self.get_task(V1, ctx, params),
            "tasks/get" => self.get_task(V03, ctx, params),
            "ListTasks" => self.list_tasks(V1, ctx, params),
            "tasks/list" => self.list_tasks(V03, ctx, params),
            "CancelTask" => self.cancel(V1, ctx, params),
            "tasks/cancel" => self.cancel(V03, ctx, params),
            "CreateTaskPushNotificationConfig" => self.push_set(V1, ctx, params),
            "tasks/pushNotificationConfig/set" => self.push_set(V03, ctx, params),
            "GetTaskPushNotificationConfig" => self.push_get(V1, ctx, params),
            "tasks/pushNotificationConfig/get" => self.push_get(V03, ctx, params),
            "ListTaskPushNotificationConfigs" | "ListTaskPushNotificationConfig" => self.push_list(V1, ctx, params),
            "tasks/pushNotificationConfig/list" => self.push_list(V03, ctx, params),
            "DeleteTaskPushNotificationConfig" => self.push_delete(V1, ctx, params),
            "tasks/pushNotificationConfig/delete" => self.push_delete(V03, ctx, params),
            "GetExtendedAgentCard" | "agent/getAuthenticatedExtendedCard" => {
                Err(RpcError::new(EXTENDED_CARD_NOT_CONFIGURED, "there is no extended agent card"))
            }
            m => Err(RpcError::new(METHOD_NOT_FOUND, format!("method '{m}' not found"))),
        }
    }

    /// A 1.0 streaming method (`send`: SendStreamingMessage, else SubscribeToTask) for
    /// another transport: its `StreamResponse` objects in ProtoJSON form.
    pub(crate) fn stream_v1(
        self: &Arc<Self>,
        ctx: &Caller,
        send: bool,
        params: &Map<String, Value>,
    ) -> Result<mpsc::Receiver<Value>, RpcError> {
        self.open_stream(Dialect::V1, ctx, send, params)
    }

    async fn send(self: &Arc<Self>, d: Dialect, ctx: &Caller, params: &Map<String, Value>) -> Result<Value, RpcError> {
        let msg = parse_message(params)?;
        let cfg = params.get("configuration").and_then(Value::as_object);
        let return_now = cfg.is_some_and(|c| {
            c.get("returnImmediately").and_then(Value::as_bool) == Some(true)
                || c.get("blocking").and_then(Value::as_bool) == Some(false)
        });
        let history_length = cfg.and_then(|c| usize_param(c, "historyLength"));
        let push = self.message_push(d, params)?;
        let (task_id, _, snapshot, mut rx) = self.start(d, ctx, msg, push)?;
        let task = if return_now {
            snapshot
        } else {
            loop {
                match rx.recv().await {
                    Ok(Event::Status(s)) if s.state.ends_turn() => break,
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
            let mut tasks = self.tasks.lock();
            tasks.owned(&task_id, &ctx.owner)?.render(d, history_length, true)
        };
        Ok(match d {
            Dialect::V1 => json!({ "task": task }),
            Dialect::V03 => task,
        })
    }

    /// Start a streaming method (`send`: a new message, else a subscription to a task):
    /// the answers it streams, rendered in `d` (the task first, then its events until
    /// its turn ends), or the error it fails with before it starts.
    fn open_stream(
        self: &Arc<Self>,
        d: Dialect,
        ctx: &Caller,
        send: bool,
        params: &Map<String, Value>,
    ) -> Result<mpsc::Receiver<Value>, RpcError> {
        let (snapshot, follow) = if send {
            let msg = parse_message(params)?;
            let push = self.message_push(d, params)?;
            let (task_id, context_id, snapshot, rx) = self.start(d, ctx, msg, push)?;
            (snapshot, Some((rx, task_id, context_id)))
        } else {
            let tid = task_id_param(params)?;
            let mut tasks = self.tasks.lock();
            let t = tasks.owned(&tid, &ctx.owner)?;
            let snapshot = t.render(d, None, true);
            let rx = (!t.status.state.ends_turn()).then(|| (t.events.subscribe(), t.id.clone(), t.context_id.clone()));
            (snapshot, rx)
        };
        let first = match d {
            Dialect::V1 => json!({ "task": snapshot }),
            Dialect::V03 => snapshot,
        };
        Ok(stream_values(d, first, follow))
    }

    fn get_task(&self, d: Dialect, ctx: &Caller, params: &Map<String, Value>) -> Result<Value, RpcError> {
        let tid = task_id_param(params)?;
        let history_length = history_length_param(params)?;
        let mut tasks = self.tasks.lock();
        Ok(tasks.owned(&tid, &ctx.owner)?.render(d, history_length, true))
    }

    fn list_tasks(&self, d: Dialect, ctx: &Caller, params: &Map<String, Value>) -> Result<Value, RpcError> {
        let context = str_param(params, "contextId");
        let state = match str_param(params, "status") {
            Some(s) => Some(TaskState::parse(s).ok_or_else(|| RpcError::params(format!("unknown task state '{s}'")))?),
            None => None,
        };
        // pageSize 1..=100 (default 50), historyLength >= 0, statusTimestampAfter an RFC 3339
        // time: anything else is INVALID_PARAMS naming the field.
        let page_size = match crate::a2a_params::int_param(params, "pageSize").map_err(RpcError::params)? {
            None => 50,
            Some(n @ 1..=100) => n as usize,
            Some(n) => return Err(RpcError::params(format!("pageSize must be between 1 and 100, got {n}"))),
        };
        let offset: usize = match str_param(params, "pageToken") {
            Some(t) => t.parse().map_err(|_| RpcError::params("invalid pageToken"))?,
            None => 0,
        };
        let history_length = history_length_param(params)?;
        let after =
            match str_param(params, "statusTimestampAfter") {
                Some(t) => Some(agentdb_orchestrator::time::parse_rfc3339_ms(t).ok_or_else(|| {
                    RpcError::params(format!("statusTimestampAfter '{t}' is not an RFC 3339 timestamp"))
                })?),
                None => None,
            };
        let with_artifacts =
            crate::a2a_params::param(params, "includeArtifacts").and_then(Value::as_bool).unwrap_or(false);
        let tasks = self.tasks.lock();
        let mut mine: Vec<&TaskRec> = tasks
            .map
            .values()
            .filter(|t| t.owner == ctx.owner)
            .filter(|t| context.is_none_or(|c| t.context_id == c))
            .filter(|t| state.is_none_or(|s| t.status.state == s))
            .filter(|t| {
                after.is_none_or(|a| {
                    agentdb_orchestrator::time::parse_rfc3339_ms(&t.status.timestamp).is_some_and(|ts| ts >= a)
                })
            })
            .collect();
        mine.sort_by_key(|t| std::cmp::Reverse(t.seq));
        let total = mine.len();
        let page: Vec<Value> = mine
            .iter()
            .skip(offset)
            .take(page_size)
            .map(|t| t.render(d, history_length.or(Some(0)), with_artifacts))
            .collect();
        let next = if offset + page.len() < total { (offset + page.len()).to_string() } else { String::new() };
        // pageSize is the number of tasks in this page (0 for an empty list).
        Ok(json!({ "tasks": page, "nextPageToken": next, "pageSize": page.len(), "totalSize": total }))
    }

    fn cancel(&self, d: Dialect, ctx: &Caller, params: &Map<String, Value>) -> Result<Value, RpcError> {
        let tid = task_id_param(params)?;
        let mut tasks = self.tasks.lock();
        let t = tasks.owned(&tid, &ctx.owner)?;
        if t.status.state.terminal() {
            return Err(RpcError::new(
                TASK_NOT_CANCELABLE,
                format!("task '{tid}' cannot be canceled: it is {}", t.status.state.name(d)),
            ));
        }
        if let Some(a) = t.abort.take() {
            a.abort();
        }
        let m = agent_text("canceled by the client");
        t.history.push(m.clone());
        t.pending = None;
        t.status = StatusRec { state: TaskState::Canceled, message: Some(m), timestamp: now_rfc3339() };
        let stored = self.snapshot(t);
        self.save(stored);
        let _ = t.events.send(Event::Status(t.status.clone()));
        t.notify();
        Ok(t.render(d, None, true))
    }
}

// ---- push notifications ---------------------------------------------------------------

/// Push-notification configs per task, and per principal across all its tasks.
pub const MAX_PUSH_CONFIGS_PER_TASK: usize = 10;
pub const MAX_PUSH_CONFIGS_PER_OWNER: usize = 1_000;
/// Whole-request timeout of one notification POST.
pub const PUSH_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts per notification and target; the delay before a retry starts at
/// [`PUSH_BACKOFF`] and doubles.
pub const PUSH_ATTEMPTS: u32 = 3;
const PUSH_BACKOFF: Duration = Duration::from_millis(500);
/// Notifications queued per task (for a slow target); beyond it new ones are dropped.
const PUSH_QUEUE: usize = 32;
const MAX_PUSH_URL: usize = 2048;
const MAX_PUSH_SECRET: usize = 4096;
/// Whether push URLs may point at loopback, private, link-local or other non-public
/// addresses (SSRF protection). Off by default; [`ALLOW_PRIVATE_PUSH_TARGETS_ENV`] set to
/// `1`/`true` in the server's environment turns it on (tests, trusted networks). Not an
/// `AGENTDB_*` variable: those are configuration keys (config.rs), and this is not one yet.
pub const ALLOW_PRIVATE_PUSH_TARGETS: bool = false;
pub const ALLOW_PRIVATE_PUSH_TARGETS_ENV: &str = "A2A_ALLOW_PRIVATE_PUSH_TARGETS";

/// One notification: the trace context it continues, and its targets with their bodies.
type PushBatch = (crate::telemetry::Captured, Vec<(PushConfig, Arc<String>)>);

/// A push-notification target of a task.
#[derive(Clone, Debug)]
struct PushConfig {
    /// Config id (defaults to the task id, as in a2a-sdk); unique per task.
    id: String,
    url: String,
    /// Sent as `X-A2A-Notification-Token`.
    token: Option<String>,
    /// (scheme, credentials): `Authorization: <scheme> <credentials>` when both are set.
    auth: Option<(String, Option<String>)>,
    /// The dialect it was set in: the notifications' JSON shape.
    dialect: Dialect,
}

impl PushConfig {
    /// The config as the protocol shows it; credentials are never echoed back.
    fn render(&self, d: Dialect, task_id: &str) -> Value {
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

/// Is `ip` a public unicast address (not loopback, private, link-local, CGNAT,
/// unspecified, multicast, documentation or reserved)?
fn public_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            !(a.is_loopback()
                || a.is_private()
                || a.is_link_local()
                || a.is_unspecified()
                || a.is_broadcast()
                || a.is_documentation()
                || a.is_multicast()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                || o[0] >= 240)
        }
        IpAddr::V6(a) => {
            if let Some(v4) = a.to_ipv4_mapped() {
                return public_ip(IpAddr::V4(v4));
            }
            let s0 = a.segments()[0];
            !(a.is_loopback()
                || a.is_unspecified()
                || a.is_multicast()
                || (s0 & 0xfe00) == 0xfc00
                || (s0 & 0xffc0) == 0xfe80)
        }
    }
}

/// Check a push URL: absolute http(s), a host, no user info, and (unless private
/// targets are allowed) not a literal loopback/private address or `localhost`.
/// Host names are resolved and checked again before each POST.
fn check_push_url(url: &str, allow_private: bool) -> Result<(), RpcError> {
    if url.len() > MAX_PUSH_URL {
        return Err(RpcError::params(format!("push url is longer than {MAX_PUSH_URL} bytes")));
    }
    let uri: axum::http::Uri = url.parse().map_err(|_| RpcError::params(format!("push url '{url}' is not a URL")))?;
    if !matches!(uri.scheme_str(), Some("http") | Some("https")) {
        return Err(RpcError::params(format!("push url '{url}' must be http or https")));
    }
    let Some(auth) = uri.authority() else {
        return Err(RpcError::params(format!("push url '{url}' has no host")));
    };
    if auth.as_str().contains('@') {
        return Err(RpcError::params("push url must not carry credentials; use authentication"));
    }
    let host = auth.host().trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(RpcError::params(format!("push url '{url}' has no host")));
    }
    if !allow_private {
        let private = match host.parse::<IpAddr>() {
            Ok(ip) => !public_ip(ip),
            Err(_) => {
                let h = host.to_ascii_lowercase();
                h == "localhost" || h.ends_with(".localhost")
            }
        };
        if private {
            return Err(RpcError::params(format!(
                "push url '{url}' targets a loopback or private address, which this server refuses"
            )));
        }
    }
    Ok(())
}

fn header_safe(what: &str, v: &str) -> Result<(), RpcError> {
    if v.len() > MAX_PUSH_SECRET || HeaderValue::from_str(v).is_err() {
        return Err(RpcError::params(format!("{what} is not a valid header value")));
    }
    Ok(())
}

/// Parse a push config object: the 1.0 `TaskPushNotificationConfig` fields or the 0.3
/// `PushNotificationConfig` (`authentication.schemes` as well as `.scheme`). An empty id
/// is filled in with the task id later.
fn parse_push_config(c: &Map<String, Value>, d: Dialect, allow_private: bool) -> Result<PushConfig, RpcError> {
    let url = str_param(c, "url").ok_or_else(|| RpcError::params("the push notification config needs a url"))?;
    check_push_url(url, allow_private)?;
    let token = str_param(c, "token").map(str::to_string);
    if let Some(t) = &token {
        header_safe("token", t)?;
    }
    let auth = match c.get("authentication") {
        None | Some(Value::Null) => None,
        Some(Value::Object(a)) => {
            let scheme = str_param(a, "scheme").or_else(|| {
                a.get("schemes")
                    .and_then(Value::as_array)
                    .and_then(|s| s.iter().filter_map(Value::as_str).map(str::trim).find(|s| !s.is_empty()))
            });
            let creds = str_param(a, "credentials");
            match scheme {
                Some(s) => {
                    header_safe("authentication", &format!("{s} {}", creds.unwrap_or("")))?;
                    Some((s.to_string(), creds.map(str::to_string)))
                }
                None => None,
            }
        }
        Some(_) => return Err(RpcError::params("authentication must be an object")),
    };
    let id = str_param(c, "id").unwrap_or("").to_string();
    if id.len() > 256 {
        return Err(RpcError::params("push notification config id is too long"));
    }
    Ok(PushConfig { id, url: url.to_string(), token, auth, dialect: d })
}

/// Refuse when the principal already has [`MAX_PUSH_CONFIGS_PER_OWNER`] configs.
fn push_room(tasks: &Tasks, owner: &str) -> Result<(), RpcError> {
    let n: usize = tasks.map.values().filter(|t| t.owner == owner).map(|t| t.push.len()).sum();
    if n >= MAX_PUSH_CONFIGS_PER_OWNER {
        return Err(RpcError::params(format!(
            "at most {MAX_PUSH_CONFIGS_PER_OWNER} push notification configs per principal"
        )));
    }
    Ok(())
}

/// One POST: check where the host resolves (unless private targets are allowed), then
/// send with the token and authorization headers. Blocking (run in spawn_blocking).
fn post_once(
    agent: &ureq::Agent,
    c: &PushConfig,
    body: &str,
    allow_private: bool,
    trace: &HeaderMap,
) -> Result<(), String> {
    if !allow_private {
        let uri: axum::http::Uri = c.url.parse().map_err(|e| format!("{e}"))?;
        let host = uri.host().unwrap_or("").trim_start_matches('[').trim_end_matches(']');
        let port = uri.port_u16().unwrap_or(if uri.scheme_str() == Some("https") { 443 } else { 80 });
        let addrs: Vec<_> =
            (host, port).to_socket_addrs().map_err(|e| format!("cannot resolve {host}: {e}"))?.collect();
        if addrs.is_empty() || addrs.iter().any(|a| !public_ip(a.ip())) {
            return Err(format!("{host} resolves to a loopback or private address; refused"));
        }
    }
    let mut req = agent.post(&c.url).header("Content-Type", "application/json");
    if let Some(t) = &c.token {
        req = req.header("X-A2A-Notification-Token", t.as_str());
    }
    if let Some((scheme, Some(creds))) = &c.auth {
        req = req.header("Authorization", format!("{scheme} {creds}"));
    }
    // W3C `traceparent` / `tracestate` (empty when telemetry is off).
    if let Some(h) = req.headers_mut() {
        h.extend(trace.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    req.send(body).map(|_| ()).map_err(|e| e.to_string())
}

/// Deliver one notification to one target, with [`PUSH_ATTEMPTS`] tries and backoff.
/// With telemetry on, an `a2a.push` client span (a child of the captured context) covers
/// the tries, and each POST carries its `traceparent`.
async fn deliver(
    agent: ureq::Agent,
    c: PushConfig,
    body: Arc<String>,
    allow_private: bool,
    task_id: String,
    trace: crate::telemetry::Captured,
) {
    let (span, headers) = if trace.is_some() {
        let span = tracing::info_span!(
            parent: None,
            "a2a.push",
            otel.kind = "client",
            task = %task_id,
            push.config = %c.id,
            attempts = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        trace.parent(&span);
        let mut h = HeaderMap::new();
        crate::telemetry::inject_span(&span, &mut h);
        (span, Arc::new(h))
    } else {
        (tracing::Span::none(), Arc::new(HeaderMap::new()))
    };
    let mut delay = PUSH_BACKOFF;
    for attempt in 1..=PUSH_ATTEMPTS {
        span.record("attempts", attempt);
        let (a, cfg, b, h) = (agent.clone(), c.clone(), body.clone(), headers.clone());
        let res = tokio::task::spawn_blocking(move || post_once(&a, &cfg, &b, allow_private, &h))
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
        match res {
            Ok(()) => {
                tracing::debug!(task = %task_id, url = %c.url, "A2A push notification sent");
                return;
            }
            Err(why) if attempt < PUSH_ATTEMPTS => {
                tracing::debug!(task = %task_id, url = %c.url, attempt, error = %why, "A2A push failed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(why) => {
                span.record("otel.status_code", "error");
                tracing::warn!(task = %task_id, url = %c.url, error = %why, "A2A push notification dropped after {PUSH_ATTEMPTS} attempts");
            }
        }
    }
}

impl A2a {
    /// A task's push worker: delivers its notifications in order (the targets of one
    /// notification in parallel); ends when the task (and so the sender) is dropped.
    fn push_worker(&self, task_id: &str) -> mpsc::Sender<PushBatch> {
        let (tx, mut rx) = mpsc::channel::<PushBatch>(PUSH_QUEUE);
        let (agent, allow_private, task_id) = (self.push_agent.clone(), self.allow_private_push, task_id.to_string());
        tokio::spawn(async move {
            while let Some((trace, batch)) = rx.recv().await {
                let mut set = tokio::task::JoinSet::new();
                for (c, body) in batch {
                    set.spawn(deliver(agent.clone(), c, body, allow_private, task_id.clone(), trace.clone()));
                }
                while set.join_next().await.is_some() {}
            }
        });
        tx
    }

    /// Add (or replace, by id) a push config of the caller's task.
    fn add_push(&self, tasks: &mut Tasks, task_id: &str, owner: &str, mut c: PushConfig) -> Result<(), RpcError> {
        if c.id.is_empty() {
            c.id = task_id.to_string();
        }
        tasks.owned(task_id, owner)?;
        let replaces = tasks.map.get(task_id).is_some_and(|t| t.push.iter().any(|o| o.id == c.id));
        if !replaces {
            push_room(tasks, owner)?;
        }
        let t = tasks.owned(task_id, owner)?;
        if let Some(old) = t.push.iter_mut().find(|o| o.id == c.id) {
            *old = c;
        } else if t.push.len() >= MAX_PUSH_CONFIGS_PER_TASK {
            return Err(RpcError::params(format!(
                "at most {MAX_PUSH_CONFIGS_PER_TASK} push notification configs per task"
            )));
        } else {
            t.push.push(c);
        }
        if t.push_tx.is_none() {
            t.push_tx = Some(self.push_worker(task_id));
        }
        Ok(())
    }

    /// The push config inside a send's `configuration` (1.0 `taskPushNotificationConfig`,
    /// 0.3 `pushNotificationConfig`), validated.
    fn message_push(&self, d: Dialect, params: &Map<String, Value>) -> Result<Option<PushConfig>, RpcError> {
        let Some(cfg) = params.get("configuration").and_then(Value::as_object) else { return Ok(None) };
        let c = cfg.get("taskPushNotificationConfig").or_else(|| cfg.get("pushNotificationConfig"));
        match c {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(c)) => parse_push_config(c, d, self.allow_private_push).map(Some),
            Some(_) => Err(RpcError::params("the push notification config must be an object")),
        }
    }

    /// (task id, config id) of a get/delete/list: 1.0 `taskId` + `id`, 0.3 `id` +
    /// `pushNotificationConfigId`.
    fn push_ids(d: Dialect, params: &Map<String, Value>) -> Result<(String, Option<String>), RpcError> {
        let (task, config) = match d {
            Dialect::V1 => (str_param(params, "taskId"), str_param(params, "id")),
            Dialect::V03 => {
                (str_param(params, "id").or(str_param(params, "taskId")), str_param(params, "pushNotificationConfigId"))
            }
        };
        let task = task.ok_or_else(|| RpcError::params("the task id is required"))?;
        Ok((task.to_string(), config.map(str::to_string)))
    }

    fn push_set(&self, d: Dialect, ctx: &Caller, params: &Map<String, Value>) -> Result<Value, RpcError> {
        let (tid, src) = match d {
            Dialect::V1 => {
                let src = ["pushNotificationConfig", "config"]
                    .iter()
                    .find_map(|k| params.get(*k).and_then(Value::as_object))
                    .unwrap_or(params);
                (str_param(params, "taskId"), src)
            }
            Dialect::V03 => {
                let src = params
                    .get("pushNotificationConfig")
                    .and_then(Value::as_object)
                    .ok_or_else(|| RpcError::params("pushNotificationConfig is required"))?;
                (str_param(params, "taskId").or(str_param(params, "id")), src)
            }
        };
        let tid = tid.ok_or_else(|| RpcError::params("taskId is required"))?.to_string();
        let mut c = parse_push_config(src, d, self.allow_private_push)?;
        if c.id.is_empty() {
            c.id = tid.clone();
        }
        let mut tasks = self.tasks.lock();
        self.add_push(&mut tasks, &tid, &ctx.owner, c.clone())?;
        Ok(c.render(d, &tid))
    }

    fn push_get(&self, d: Dialect, ctx: &Caller, params: &Map<String, Value>) -> Result<Value, RpcError> {
        let (tid, cid) = Self::push_ids(d, params)?;
        let mut tasks = self.tasks.lock();
        let t = tasks.owned(&tid, &ctx.owner)?;
        let c = match &cid {
            Some(id) => t.push.iter().find(|c| c.id == *id),
            None => t.push.first(),
        };
        let c = c.ok_or_else(|| {
            RpcError::params(format!("task '{tid}' has no push notification config '{}'", cid.as_deref().unwrap_or("")))
        })?;
        Ok(c.render(d, &tid))
    }

    fn push_list(&self, d: Dialect, ctx: &Caller, params: &Map<String, Value>) -> Result<Value, RpcError> {
        let (tid, _) = Self::push_ids(d, params)?;
        let mut tasks = self.tasks.lock();
        let t = tasks.owned(&tid, &ctx.owner)?;
        let configs: Vec<Value> = t.push.iter().map(|c| c.render(d, &tid)).collect();
        Ok(match d {
            Dialect::V1 => json!({ "configs": configs, "nextPageToken": "" }),
            Dialect::V03 => configs.into(),
        })
    }

    fn push_delete(&self, d: Dialect, ctx: &Caller, params: &Map<String, Value>) -> Result<Value, RpcError> {
        let (tid, cid) = Self::push_ids(d, params)?;
        let cid = cid.ok_or_else(|| RpcError::params("the push notification config id is required"))?;
        let mut tasks = self.tasks.lock();
        let t = tasks.owned(&tid, &ctx.owner)?;
        let before = t.push.len();
        t.push.retain(|c| c.id != cid);
        if t.push.len() == before {
            return Err(RpcError::params(format!("task '{tid}' has no push notification config '{cid}'")));
        }
        Ok(Value::Null)
    }
}

fn ext_for(mime: &str) -> &'static str {
    match mime {
        "text/plain" => ".txt",
        "text/markdown" => ".md",
        "text/html" => ".html",
        "application/pdf" => ".pdf",
        "image/png" => ".png",
        "image/jpeg" => ".jpg",
        "audio/wav" | "audio/x-wav" => ".wav",
        "video/mp4" => ".mp4",
        _ => "",
    }
}

fn sse_frame(v: &Value) -> Bytes {
    Bytes::from(format!("data: {v}\n\n"))
}

fn sse_response(body: Body) -> Response {
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// A stream that carries only a JSON-RPC error (what a2a-sdk expects from a streaming
/// method that fails before it starts).
fn sse_error(id: Value, e: RpcError) -> Response {
    let frame = sse_frame(&error_body(&id, &e));
    sse_response(Body::from(frame))
}

/// The answers of a streaming method, rendered in `d`: `first`, then the task's events
/// until its turn ends (completed, failed, canceled, rejected, input-required,
/// auth-required). Shared by the SSE (JSON-RPC) and gRPC bindings.
fn stream_values(
    d: Dialect,
    first: Value,
    follow: Option<(broadcast::Receiver<Event>, String, String)>,
) -> mpsc::Receiver<Value> {
    let (tx, rx) = mpsc::channel::<Value>(16);
    // Forwarded in the request's span: a streamed response lasts until its stream ends.
    let forward = async move {
        if tx.send(first).await.is_err() {
            return;
        }
        let Some((mut events, task_id, context_id)) = follow else { return };
        loop {
            match events.recv().await {
                Ok(ev) => {
                    let end = matches!(&ev, Event::Status(s) if s.state.ends_turn());
                    if tx.send(render_event(&ev, d, &task_id, &context_id)).await.is_err() || end {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(task = %task_id, skipped = n, "A2A stream subscriber lagged");
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    };
    tokio::spawn(tracing::Instrument::in_current_span(forward));
    rx
}

/// The SSE answer of a streaming method: each value as a JSON-RPC result frame.
fn sse(id: Value, values: mpsc::Receiver<Value>) -> Response {
    use tokio_stream::StreamExt as _;
    let frames = tokio_stream::wrappers::ReceiverStream::new(values).map(move |r| {
        Ok::<_, std::convert::Infallible>(sse_frame(&json!({ "jsonrpc": "2.0", "id": id, "result": r })))
    });
    sse_response(Body::from_stream(frames))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_convention() {
        let j = job_from_parts(&[Part::Text("Remember: the key rotates on Mondays".into())]);
        assert_eq!(j.skill.as_deref(), Some("remember"));
        assert_eq!(j.text, "the key rotates on Mondays");
        let j = job_from_parts(&[Part::Text("when does the key rotate?".into())]);
        assert_eq!(j.skill.as_deref(), Some("recall"));
        let j = job_from_parts(&[Part::Data(json!({"skill": "Search", "collection": "c", "text": "x"}))]);
        assert_eq!(j.skill.as_deref(), Some("search"));
        let j = job_from_parts(&[Part::File { name: "a.txt".into(), mime: "text/plain".into(), bytes: b"x".to_vec() }]);
        assert_eq!(j.skill.as_deref(), Some("ingest"));
    }

    fn task(id: &str, seq: u64, state: TaskState) -> TaskRec {
        TaskRec {
            id: id.into(),
            context_id: "c".into(),
            owner: "local".into(),
            status: StatusRec { state, message: Some(agent_text("why")), timestamp: now_rfc3339() },
            artifacts: vec![ArtifactRec {
                id: "a".into(),
                name: "recall".into(),
                description: "d".into(),
                parts: vec![Part::Text("t".into()), Part::Data(json!({"hits": []}))],
            }],
            history: (0..MAX_STORED_HISTORY + 5).map(|i| agent_text(format!("m{i}"))).collect(),
            pending: None,
            events: broadcast::channel(1).0,
            abort: None,
            seq,
            push: Vec::new(),
            push_tx: None,
        }
    }

    #[test]
    fn stored_tasks_round_trip_with_bounded_history() {
        let t = task("t1", 7, TaskState::InputRequired);
        let back: StoredTask = serde_json::from_value(t.stored()).unwrap();
        assert_eq!((back.id.as_str(), back.seq, back.status.state), ("t1", 7, TaskState::InputRequired));
        assert_eq!(back.history.len(), MAX_STORED_HISTORY);
        assert!(matches!(&back.history[0].parts[0], Part::Text(m) if m == "m5"));
        assert_eq!(back.artifacts[0].render(Dialect::V1), t.artifacts[0].render(Dialect::V1));
    }

    #[test]
    fn eviction_prefers_finished_tasks() {
        let mut tasks = Tasks::default();
        for i in 0..MAX_TASKS {
            let state = if i == 0 || i == 1 { TaskState::Working } else { TaskState::Completed };
            assert!(tasks.insert(task(&format!("t{i}"), i as u64, state)).is_empty());
        }
        assert_eq!(tasks.insert(task("new", 0, TaskState::Submitted)), ["t2"]);
        assert!(tasks.map.contains_key("t0") && tasks.map.contains_key("t1"));
    }

    #[test]
    fn parts_in_both_dialects() {
        let p = parse_part(&json!({"raw": "aGk=", "filename": "a.txt", "mediaType": "text/plain"})).unwrap();
        assert!(matches!(p, Part::File { ref bytes, .. } if bytes == b"hi"));
        let p = parse_part(&json!({"kind": "file", "file": {"bytes": "aGk=", "name": "a.txt"}})).unwrap();
        assert!(matches!(p, Part::File { ref name, .. } if name == "a.txt"));
        let p = parse_part(&json!({"kind": "file", "file": {"uri": "data:text/plain,h%69"}})).unwrap();
        assert!(matches!(p, Part::File { ref bytes, ref mime, .. } if bytes == b"hi" && mime == "text/plain"));
        assert!(parse_part(&json!({"url": "https://example.com/x"})).is_err());
        assert!(matches!(parse_part(&json!({"kind": "data", "data": {"a": 1}})).unwrap(), Part::Data(_)));
    }

    #[test]
    fn push_targets() {
        for ok in ["https://hooks.example.com/a2a?x=1", "http://93.184.216.34:8080/h", "http://[2606:4700::1]/h"] {
            assert!(check_push_url(ok, false).is_ok(), "{ok}");
        }
        for bad in [
            "ftp://example.com/x",
            "file:///etc/passwd",
            "example.com/x",
            "http://user:pw@example.com/",
            "http://127.0.0.1:9/h",
            "http://localhost/h",
            "http://10.1.2.3/",
            "http://192.168.0.1/",
            "http://169.254.169.254/latest/meta-data",
            "http://100.64.0.1/",
            "http://[::1]/h",
            "http://[fd00::1]/h",
            "http://[::ffff:127.0.0.1]/h",
            "http://0.0.0.0/",
        ] {
            let e = check_push_url(bad, false).unwrap_err();
            assert_eq!(e.code, INVALID_PARAMS, "{bad}");
        }
        assert!(check_push_url("http://127.0.0.1:9/h", true).is_ok());
        assert!(check_push_url("ftp://127.0.0.1/h", true).is_err());
        let c = parse_push_config(
            json!({"url": "https://h.example.com/", "authentication": {"schemes": ["Basic"], "credentials": "dTpw"}})
                .as_object()
                .unwrap(),
            Dialect::V03,
            false,
        )
        .unwrap();
        assert_eq!(c.auth, Some(("Basic".to_string(), Some("dTpw".to_string()))));
        assert_eq!(c.render(Dialect::V1, "t")["authentication"], json!({"scheme": "Basic"}));
        let bad = json!({"url": "https://h.example.com/", "token": "a\nb"});
        assert!(parse_push_config(bad.as_object().unwrap(), Dialect::V1, false).is_err());
    }

    #[test]
    fn names_and_times() {
        assert_eq!(principal_memory_collection("key:ab12"), "memory-key-ab12");
        assert_eq!(TaskState::parse("TASK_STATE_INPUT_REQUIRED"), Some(TaskState::InputRequired));
        assert_eq!(TaskState::parse("input-required"), Some(TaskState::InputRequired));
        let t = now_rfc3339();
        assert!(t.len() == 24 && t.ends_with('Z') && t.starts_with("20"), "{t}");
    }
}
