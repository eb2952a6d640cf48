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
//! The same methods are served over gRPC (`lf.a2a.v1.A2AService`, `grpc.rs`),
//! which converts to and from the 1.0 ProtoJSON that [`A2a::dispatch`] and the
//! streaming methods speak. See docs/A2A.md.
//!
//! By concern: `rpc.rs` (the JSON-RPC endpoint and the method dispatcher), `tasks.rs`
//! (task lifecycle and the task methods; the skills themselves — search, recall, ingest,
//! remember — are `agentdb_orchestrator::skills`, shared with workflow steps, run with
//! `Services` as their host: `host.rs`), `push.rs` (push notifications), `card.rs`, `sse.rs`,
//! `model.rs` (the task model and its two wire dialects), `params.rs` and `protojson.rs`
//! (reading parameters), `errors.rs` (JSON-RPC errors), `grpc.rs` (the gRPC binding).

mod card;
mod errors;
pub mod grpc;
mod long;
mod model;
mod params;
mod protojson;
mod push;
mod rpc;
mod sse;
mod tasks;
#[cfg(test)]
mod tests;

use self::card::card;
pub(crate) use self::errors::*;
pub(crate) use self::model::Caller;
use self::model::Tasks;
use self::push::{ALLOW_PRIVATE_PUSH_TARGETS, ALLOW_PRIVATE_PUSH_TARGETS_ENV, PUSH_TIMEOUT};
use self::rpc::rpc;
use crate::grpc::Services;
use agentdb_orchestrator::a2a_tasks::A2aTaskStore;
use std::sync::Arc;

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
    /// The workflow engine (set once it has started): workflow tasks run on it.
    workflows: std::sync::OnceLock<Arc<crate::workflows::Workflows>>,
    /// Tasks stored while following a workflow run, to follow again once the engine is set.
    reattach: parking_lot::Mutex<Vec<String>>,
    opts: Options,
}

/// What the A2A server needs from the configuration.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// `a2a.text_workflow`: the workflow a plain-text message starts ("" = recall).
    pub text_workflow: String,
    /// `a2a.max_folder_files`.
    pub max_folder_files: usize,
    /// `workflows.ingest_dirs`: the server folders a folder ingest may read.
    pub server_dirs: Vec<std::path::PathBuf>,
}

/// The A2A service state. `max_body` bounds the JSON-RPC request body (base64 file parts
/// included); `tls` says whether the HTTP listener serves HTTPS (for the URL in the card).
pub fn service(svc: Services, max_body: usize, tls: bool, opts: Options) -> Arc<A2a> {
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
        workflows: std::sync::OnceLock::new(),
        reattach: parking_lot::Mutex::new(Vec::new()),
        opts,
    };
    a2a.load();
    Arc::new(a2a)
}

impl A2a {
    /// Hand the started workflow engine to the A2A server: workflow tasks can start, and
    /// the tasks that followed a workflow run before a restart follow it again.
    pub fn set_workflows(self: &Arc<Self>, w: Arc<crate::workflows::Workflows>) {
        if self.workflows.set(w).is_err() {
            return;
        }
        let ids = std::mem::take(&mut *self.reattach.lock());
        for id in ids {
            self.follow_again(&id);
        }
    }
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
