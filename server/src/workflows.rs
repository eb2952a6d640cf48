//! Workflow execution and the `agentdb.v1.Workflows` gRPC service: runs of the DAGs
//! defined in `agentdb_orchestrator::workflow`, with their steps executed here (AgentDB's
//! own skills in-process, other agents over A2A), and the triggers that start runs (cron,
//! bus events, standing-query matches). See docs/WORKFLOWS.md.
//!
//! Runs wait in a fair queue (priority, then weighted fair share across agents) for one of
//! `workflows.max_concurrent_runs` slots. A run is persisted on every step transition; after
//! a restart, unfinished runs are queued again and a step that was running starts over
//! (its lost attempt counts against its retry policy). State changes are events on the
//! `workflow` topic.
//!
//! Authorization: applying and deleting definitions needs `admin`; running and canceling
//! `write`; reading `read`. Steps act as the run's principal (who started it, or who applied
//! the definition for triggered runs), so a step can only touch what they may.

use crate::a2a::A2a;
use crate::config::WorkflowsConfig;
use crate::security::Security;
use agentdb_orchestrator::agents::{AgentState, Registry};
use agentdb_orchestrator::bus::{Audience, Bus, Resume, Topic};
use agentdb_orchestrator::cron::Cron;
use agentdb_orchestrator::queue::Queues;
use agentdb_orchestrator::security::{Action, Principal};
use agentdb_orchestrator::time::fmt_ms;
use agentdb_orchestrator::workflow::{
    self, AttemptOutcome, FairQueue, Run, RunState, StepState, Store, Trigger, Version,
};
use agentdb_orchestrator::{now_ms, Error as OrchError};
use agentdb_proto::v1;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tonic::{Request, Response, Status};

use crate::orchestration::{blocking, orch_status};

/// How long a step may take to wind down after a cancel (or, for `call_agent`, past its
/// time-out) before it is dropped.
const CLEANUP_GRACE: Duration = Duration::from_secs(3);

/// A run being executed: how to stop it.
struct Live {
    cancel: tokio::sync::watch::Sender<bool>,
}

/// The workflow engine: store, fair queue, executor and triggers.
pub struct Workflows {
    store: Arc<Store>,
    a2a: Arc<A2a>,
    security: Arc<Security>,
    encoders: Arc<agentdb_retrieval::Encoders>,
    bus: Arc<Bus>,
    agents: Arc<Registry>,
    queues: Arc<Queues>,
    cfg: WorkflowsConfig,
    /// Largest file an `ingest` step reads (the server's ingest limit).
    max_file_bytes: u64,
    queue: parking_lot::Mutex<FairQueue<String>>,
    /// Runs executing now, by id.
    live: parking_lot::Mutex<HashMap<String, Live>>,
    wake: tokio::sync::Notify,
    /// Principals seen while this process runs (who started a run, who applied a
    /// definition), by id: runs act as them. Others resolve through the API key store.
    principals: parking_lot::Mutex<HashMap<String, Principal>>,
    /// Cron triggers: (workflow, expression) → next fire time.
    cron_next: parking_lot::Mutex<HashMap<(String, String), u64>>,
}

impl Workflows {
    /// Open the store, queue the runs a previous process left unfinished, and start the
    /// dispatcher and the triggers.
    #[allow(clippy::too_many_arguments)]
    pub async fn start(
        db: Arc<agentdb_engine::Database>,
        a2a: Arc<A2a>,
        security: Arc<Security>,
        encoders: Arc<agentdb_retrieval::Encoders>,
        (bus, agents, queues): (Arc<Bus>, Arc<Registry>, Arc<Queues>),
        cfg: &WorkflowsConfig,
        max_file_bytes: usize,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> anyhow::Result<Arc<Workflows>> {
        let keep = cfg.keep_finished_runs;
        let (store, runs) = tokio::task::spawn_blocking(move || -> Result<_, OrchError> {
            let store = Store::open(db, keep)?;
            let runs = store.load_runs()?;
            Ok((store, runs))
        })
        .await?
        .map_err(|e| anyhow::anyhow!("workflow state: {e}"))?;
        let w = Arc::new(Workflows {
            store: Arc::new(store),
            a2a,
            security,
            encoders,
            bus,
            agents,
            queues,
            cfg: cfg.clone(),
            max_file_bytes: max_file_bytes as u64,
            queue: parking_lot::Mutex::new(FairQueue::new()),
            live: parking_lot::Mutex::new(HashMap::new()),
            wake: tokio::sync::Notify::new(),
            principals: parking_lot::Mutex::new(HashMap::new()),
            cron_next: parking_lot::Mutex::new(HashMap::new()),
        });
        let mut resumed = 0;
        for r in runs.into_iter().filter(|r| !r.state.terminal()) {
            w.queue.lock().push(&r.agent, r.priority, r.id.clone());
            resumed += 1;
        }
        if resumed > 0 {
            tracing::info!(runs = resumed, "workflow runs left unfinished by the last process are queued again");
        }
        tokio::spawn(w.clone().dispatch(stop.clone()));
        tokio::spawn(w.clone().cron_loop(stop.clone()));
        tokio::spawn(w.clone().event_loop(stop));
        Ok(w)
    }

    fn weight(&self, agent: &str) -> u32 {
        self.cfg.agent_weights.get(agent).copied().unwrap_or(1).max(1)
    }

    /// Start runs while slots are free.
    async fn dispatch(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let max = self.cfg.max_concurrent_runs.max(1);
        loop {
            loop {
                // Taken from the queue and marked live under the live lock, so a cancel
                // finds the run in one place or the other (lock order: live, then queue).
                let mut live = self.live.lock();
                if live.len() >= max {
                    break;
                }
                let next = self.queue.lock().pop(|a| self.weight(a));
                let Some((_, id)) = next else { break };
                let (tx, rx) = tokio::sync::watch::channel(false);
                live.insert(id.clone(), Live { cancel: tx });
                drop(live);
                let me = self.clone();
                tokio::spawn(async move {
                    let span = tracing::info_span!("workflow.run", run = %id);
                    tracing::Instrument::instrument(me.clone().drive(id.clone(), rx), span).await;
                    me.live.lock().remove(&id);
                    me.wake.notify_one();
                });
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = stop.changed() => return,
            }
        }
    }

    fn publish(&self, kind: &str, run: &Run, mut data: Value) {
        data["run"] = json!(run.id);
        data["workflow"] = json!(run.workflow);
        data["version"] = json!(run.version);
        data["state"] = json!(run.state.as_str());
        // A run's events (errors, outputs) are for who started it and who sees everything.
        self.bus.publish_to(Topic::Workflow, kind, &run.workflow, data, Audience::Principal(run.principal.clone()));
    }

    async fn save(&self, run: &Run) {
        let (st, r) = (self.store.clone(), run.clone());
        match tokio::task::spawn_blocking(move || st.save_run(&r)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(run = %run.id, error = %e, "cannot persist the workflow run"),
            Err(e) => tracing::error!(run = %run.id, error = %e, "cannot persist the workflow run"),
        }
    }

    /// The principal a run acts as.
    fn principal_for(&self, id: &str) -> Result<Option<Principal>, String> {
        if !self.security.auth_enabled() {
            return Ok(None);
        }
        if id.is_empty() {
            return Err("the run has no principal (it was started with authentication off); start it again".into());
        }
        if let Some(key) = id.strip_prefix("key:") {
            if let Some(keys) = &self.security.keys {
                return keys.principal(key).map(Some).map_err(|e| format!("cannot act as {id}: {e}"));
            }
        }
        self.principals.lock().get(id).cloned().map(Some).ok_or_else(|| {
            format!("cannot act as {id} after a restart (only API-key identities can be resumed); start the run again")
        })
    }

    /// Execute a run until it ends or is canceled.
    async fn drive(self: Arc<Self>, id: String, mut cancel: tokio::sync::watch::Receiver<bool>) {
        let (st, rid) = (self.store.clone(), id.clone());
        let mut run = match tokio::task::spawn_blocking(move || st.get_run(&rid)).await {
            Ok(Ok(r)) => r,
            other => {
                tracing::error!(run = %id, error = ?other.err(), "cannot load the workflow run");
                return;
            }
        };
        if run.state.terminal() {
            return;
        }
        let def = match self.store.get(&run.workflow, run.version) {
            Ok(v) => v.definition.clone(),
            Err(e) => {
                run.abort(format!("its definition is gone: {e}"), now_ms());
                self.save(&run).await;
                self.publish("workflow.run_failed", &run, json!({ "error": run.error }));
                return;
            }
        };
        let now = now_ms();
        let interrupted = run.interrupted(&def, now);
        if !interrupted.is_empty() {
            tracing::warn!(run = %run.id, steps = ?interrupted, "resuming a workflow run: steps interrupted by a restart start over");
        }
        let principal = match self.principal_for(&run.principal) {
            Ok(p) => p,
            Err(e) => {
                run.abort(e, now);
                self.save(&run).await;
                self.publish("workflow.run_failed", &run, json!({ "error": run.error }));
                return;
            }
        };
        if run.state == RunState::Queued {
            run.state = RunState::Running;
            run.started_unix_ms = now;
            self.save(&run).await;
            self.publish("workflow.run_started", &run, json!({ "agent": run.agent, "trigger": run.trigger }));
        }
        let deadline = def.timeout.map(|t| tokio::time::Instant::now() + Duration::from_millis(t.0));
        let mut tasks: tokio::task::JoinSet<(String, Result<Value, String>)> = tokio::task::JoinSet::new();
        let (step_cancel_tx, step_cancel_rx) = tokio::sync::watch::channel(false);
        let principal = Arc::new(principal);
        loop {
            if *cancel.borrow() && !run.cancel_requested {
                run.cancel_requested = true;
                let _ = step_cancel_tx.send(true);
            }
            let now = now_ms();
            let ready = run.ready(&def, now);
            if !ready.is_empty() {
                let ctx = run.context(&def);
                for sid in ready {
                    run.start_step(&sid, now);
                    let step = def.steps.iter().find(|s| s.id == sid).expect("step of the definition").clone();
                    let (kind, params) = step.action();
                    let me = self.clone();
                    let (p, run_id, wf, agent) =
                        (principal.clone(), run.id.clone(), def.name.clone(), run.agent.clone());
                    let stop = step_cancel_rx.clone();
                    let resolved = workflow::resolve(&params, &ctx);
                    let timeout = step.timeout_ms();
                    let attempt = run.step(&sid).map_or(1, |s| s.attempts);
                    tasks.spawn(async move {
                        let params = match resolved {
                            Ok(v) => v,
                            Err(e) => return (sid, Err(e)),
                        };
                        let ctx =
                            StepCtx { principal: p, run: run_id, workflow: wf, step: sid.clone(), attempt, agent };
                        // The step's work counts against the run's agent at the admission
                        // gate and in the encoders' fair queues.
                        let agent = ctx.agent.clone();
                        let work =
                            crate::telemetry::as_tenant(&agent, me.exec(&ctx, kind, params, timeout, stop.clone()));
                        let mut work = std::pin::pin!(work);
                        // A call_agent step enforces the time-out itself (and then cancels
                        // the agent's task): give it a moment past the deadline to do so.
                        let grace = if kind == "call_agent" { CLEANUP_GRACE } else { Duration::ZERO };
                        let res = tokio::select! {
                            r = &mut work => r,
                            _ = tokio::time::sleep(Duration::from_millis(timeout) + grace) => {
                                Err(format!("timed out after {}", fmt_ms(timeout)))
                            }
                            _ = cancelled(stop) => {
                                // Let the step wind down (an A2A task is canceled at the agent).
                                let _ = tokio::time::timeout(CLEANUP_GRACE, &mut work).await;
                                Err("canceled".to_string())
                            }
                        };
                        (sid, res)
                    });
                }
                self.save(&run).await;
            }
            if tasks.is_empty() {
                if let Some(state) = run.settle(&def, now_ms()) {
                    self.save(&run).await;
                    let kind = format!("workflow.run_{}", state.as_str());
                    self.publish(&kind, &run, json!({ "error": run.error }));
                    tracing::info!(run = %run.id, workflow = %run.workflow, state = state.as_str(), error = %run.error, "workflow run finished");
                    return;
                }
            }
            let wakeup = run.next_wakeup().map(|t| Duration::from_millis(t.saturating_sub(now_ms())));
            tokio::select! {
                Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                    let (sid, res) = match done {
                        Ok(x) => x,
                        Err(e) => {
                            tracing::error!(run = %run.id, error = %e, "a workflow step task panicked");
                            continue;
                        }
                    };
                    let res = res.and_then(|v| {
                        let n = serde_json::to_vec(&v).map_or(0, |b| b.len());
                        if n > workflow::MAX_OUTPUT_BYTES {
                            Err(format!("output is {n} bytes; a step may record at most {}", workflow::MAX_OUTPUT_BYTES))
                        } else {
                            Ok(v)
                        }
                    });
                    let err = res.as_ref().err().cloned();
                    match run.finish_attempt(&def, &sid, res, now_ms()) {
                        AttemptOutcome::Succeeded => {}
                        AttemptOutcome::Retry { at_unix_ms } => {
                            let s = run.step(&sid).expect("step");
                            tracing::warn!(run = %run.id, step = %sid, attempt = s.attempts, error = ?err, "workflow step failed; retrying");
                            self.publish("workflow.step_retrying", &run, json!({
                                "step": sid, "attempt": s.attempts, "error": err, "next_attempt_unix_ms": at_unix_ms,
                            }));
                        }
                        AttemptOutcome::Failed => {
                            let s = run.step(&sid).expect("step");
                            if !run.cancel_requested {
                                tracing::warn!(run = %run.id, step = %sid, attempts = s.attempts, error = ?err, "workflow step failed");
                                self.publish("workflow.step_failed", &run, json!({
                                    "step": sid, "attempts": s.attempts, "error": err,
                                }));
                            }
                        }
                    }
                    self.save(&run).await;
                }
                _ = tokio::time::sleep(wakeup.unwrap_or(Duration::from_secs(3600))), if wakeup.is_some() => {}
                _ = cancel.changed() => {}
                _ = sleep_until(deadline) => {
                    let _ = step_cancel_tx.send(true);
                    tasks.abort_all();
                    while tasks.join_next().await.is_some() {}
                    let t = def.timeout.map_or(0, |t| t.0);
                    run.abort(format!("the run timed out after {}", fmt_ms(t)), now_ms());
                    self.save(&run).await;
                    self.publish("workflow.run_failed", &run, json!({ "error": run.error }));
                    return;
                }
            }
        }
    }

    // ---- steps --------------------------------------------------------------------------

    async fn exec(
        &self,
        ctx: &StepCtx,
        kind: &str,
        params: Value,
        timeout_ms: u64,
        cancel: tokio::sync::watch::Receiver<bool>,
    ) -> Result<Value, String> {
        let p = params.as_object().cloned().unwrap_or_default();
        let task_id = format!("{}-{}-{}", ctx.run, ctx.step, ctx.attempt);
        let principal = ctx.principal.as_ref().as_ref();
        match kind {
            "search" => {
                let (_, data) = self.a2a.run_skill(&task_id, principal, "search", p, None).await?;
                Ok(data)
            }
            "ingest" => {
                let mut params = p.clone();
                let file = match p.get("path") {
                    Some(path) => {
                        let path = path.as_str().ok_or("ingest: 'path' must be a string")?;
                        let (name, bytes) = self.read_ingest_file(path).await?;
                        params.remove("path");
                        params.entry("source").or_insert_with(|| json!(path));
                        Some((name, String::new(), bytes))
                    }
                    None => {
                        let text = p.get("text").map(|t| match t {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        });
                        params.insert("text".into(), json!(text.unwrap_or_default()));
                        params
                            .entry("source")
                            .or_insert_with(|| json!(format!("workflow-{}-{}.txt", ctx.run, ctx.step)));
                        None
                    }
                };
                let (_, data) = self.a2a.run_skill(&task_id, principal, "ingest", params, file).await?;
                Ok(data)
            }
            "embed" => {
                let text = match &p["text"] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let enc = self.encoders.clone();
                let text_svc = enc.text().map_err(|e| e.to_string())?.clone();
                let id = text_svc.encoder_id();
                let id2 = id.clone();
                let tenant = ctx.agent.clone();
                let v = tokio::task::spawn_blocking(move || {
                    agentdb_models::batcher::with_tenant(&tenant, || enc.embed_texts_as(&id2, vec![text]))
                })
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| crate::status::to_status(e.into()).message().to_string())?;
                let v = v.into_iter().next().unwrap_or_default();
                Ok(json!({ "encoder": id, "dim": v.len(), "vector": v }))
            }
            "filter" => filter_items(&p),
            "call_agent" => self.call_agent(ctx, &p, timeout_ms, cancel).await,
            "wait_event" => self.wait_event(ctx, &p, cancel).await,
            "notify" => self.notify(ctx, &p).await,
            "sleep" => {
                let ms = params.as_u64().unwrap_or(0);
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(ms)) => Ok(json!({ "slept_ms": ms })),
                    _ = cancelled(cancel) => Err("canceled".into()),
                }
            }
            other => Err(format!("unknown step kind '{other}'")),
        }
    }

    async fn read_ingest_file(&self, path: &str) -> Result<(String, Vec<u8>), String> {
        if self.cfg.ingest_dirs.is_empty() {
            return Err(
                "ingest: reading files on the server is off; list allowed folders in workflows.ingest_dirs".into()
            );
        }
        let dirs = self.cfg.ingest_dirs.clone();
        let max = self.max_file_bytes;
        let path = path.to_string();
        tokio::task::spawn_blocking(move || {
            let real = std::fs::canonicalize(&path).map_err(|e| format!("ingest: cannot open '{path}': {e}"))?;
            let allowed = dirs.iter().filter_map(|d| std::fs::canonicalize(d).ok()).any(|d| real.starts_with(&d));
            if !allowed {
                return Err(format!("ingest: '{path}' is outside workflows.ingest_dirs"));
            }
            let meta = std::fs::metadata(&real).map_err(|e| format!("ingest: '{path}': {e}"))?;
            if !meta.is_file() {
                return Err(format!("ingest: '{path}' is not a file"));
            }
            if meta.len() > max {
                return Err(format!("ingest: '{path}' is {} bytes; the limit is {max}", meta.len()));
            }
            let bytes = std::fs::read(&real).map_err(|e| format!("ingest: cannot read '{path}': {e}"))?;
            let name = real.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
            Ok((name, bytes))
        })
        .await
        .map_err(|e| e.to_string())?
    }

    async fn call_agent(
        &self,
        ctx: &StepCtx,
        p: &Map<String, Value>,
        timeout_ms: u64,
        cancel: tokio::sync::watch::Receiver<bool>,
    ) -> Result<Value, String> {
        let name = p.get("agent").and_then(Value::as_str).ok_or("call_agent: 'agent' must be a string")?;
        let agent = self.agents.get(name).map_err(|e| format!("call_agent: {e}"))?;
        let card = &agent.record.card;
        match agent.record.state {
            AgentState::Suspended | AgentState::Retired => {
                return Err(format!("call_agent: agent '{name}' is {}", agent.record.state.as_str()));
            }
            _ => {}
        }
        if card.endpoint.trim().is_empty() {
            return Err(format!("call_agent: agent '{name}' registered no endpoint"));
        }
        let text = match &p["text"] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let mut data = p.get("data").cloned();
        if let Some(Value::Object(m)) = &mut data {
            m.entry("workflow")
                .or_insert_with(|| json!({ "workflow": ctx.workflow, "run": ctx.run, "step": ctx.step }));
        }
        let bearer = match self.cfg.agent_credentials.get(name) {
            None => None,
            Some(src) => {
                Some(credential(src).map_err(|e| format!("call_agent: workflows.agent_credentials.{name}: {e}"))?)
            }
        };
        let req = agentdb_orchestrator::a2a_client::CallRequest {
            endpoint: card.endpoint.clone(),
            text,
            data,
            bearer,
            timeout: Duration::from_millis(timeout_ms),
            poll_interval: Duration::from_millis(self.cfg.a2a_poll_interval_ms.max(10)),
        };
        let r =
            agentdb_orchestrator::a2a_client::call(req, cancel).await.map_err(|e| format!("agent '{name}': {e}"))?;
        Ok(json!({
            "agent": name, "task_id": r.task_id, "state": r.state, "text": r.text, "data": r.data,
            "artifacts": r.raw.get("artifacts").cloned().unwrap_or(Value::Null),
        }))
    }

    async fn wait_event(
        &self,
        ctx: &StepCtx,
        p: &Map<String, Value>,
        mut cancel: tokio::sync::watch::Receiver<bool>,
    ) -> Result<Value, String> {
        let m: workflow::EventMatch =
            serde_json::from_value(Value::Object(p.clone())).map_err(|e| format!("wait_event: {e}"))?;
        let topic = Topic::parse(&m.topic).map_err(|e| e.to_string())?;
        let mut watch = self.bus.watch();
        let mut from = self.bus.next_offset();
        loop {
            let evs = self.bus.read_resuming(&[topic], from, 256).events;
            for e in &evs {
                from = e.offset + 1;
                // Only events the run's principal may read.
                if e.audience.admits(ctx.principal.as_ref().as_ref()) && m.matches(e.topic, &e.kind, &e.subject) {
                    return Ok(event_json(e));
                }
            }
            if !evs.is_empty() {
                continue;
            }
            tokio::select! {
                r = watch.changed() => if r.is_err() { return Err("the event bus stopped".into()) },
                _ = cancel.changed() => return Err("canceled".into()),
            }
        }
    }

    async fn notify(&self, ctx: &StepCtx, p: &Map<String, Value>) -> Result<Value, String> {
        let message = match &p["message"] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let data = p.get("data").cloned().unwrap_or(Value::Null);
        let subject = p.get("subject").and_then(Value::as_str).unwrap_or(&ctx.workflow).to_string();
        let body =
            json!({ "workflow": ctx.workflow, "run": ctx.run, "step": ctx.step, "message": message, "data": data });
        let owner = ctx.principal.as_ref().as_ref().map(|p| p.id.clone()).unwrap_or_default();
        let offset =
            self.bus.publish_to(Topic::Workflow, "workflow.notify", &subject, body.clone(), Audience::Principal(owner));
        let mut out = json!({ "offset": offset });
        if let Some(q) = p.get("queue") {
            let q = q.as_str().ok_or("notify: 'queue' must be a string")?.to_string();
            self.security
                .authorize_queue(ctx.principal.as_ref().as_ref(), Action::Write, &q, "Workflow/notify")
                .map_err(|st| format!("notify: queue '{q}': {}", st.message()))?;
            let queues = self.queues.clone();
            let attrs = [("workflow".to_string(), ctx.workflow.clone()), ("run".to_string(), ctx.run.clone())]
                .into_iter()
                .collect();
            let bytes = serde_json::to_vec(&body).unwrap_or_default();
            let qn = q.clone();
            let id = tokio::task::spawn_blocking(move || queues.send(&qn, bytes, attrs))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("notify: queue '{q}': {e}"))?;
            out["queue"] = json!(q);
            out["message_id"] = json!(id);
        }
        Ok(out)
    }

    // ---- runs ---------------------------------------------------------------------------

    /// Queue a run of `v`.
    #[allow(clippy::too_many_arguments)]
    async fn start_run(
        &self,
        v: &Version,
        inputs: Map<String, Value>,
        trigger: Value,
        principal: &str,
        agent: Option<&str>,
        priority: Option<i32>,
    ) -> Result<Run, Status> {
        if self.queue.lock().len() >= self.cfg.max_queued_runs.max(1) {
            return Err(Status::resource_exhausted(format!(
                "{} workflow runs are waiting already (workflows.max_queued_runs)",
                self.cfg.max_queued_runs
            )));
        }
        let run = Run::new(&v.definition, v.version, inputs, trigger, principal, agent, priority, now_ms());
        let (st, r) = (self.store.clone(), run.clone());
        blocking(move || st.save_run(&r)).await?;
        self.publish("workflow.run_queued", &run, json!({ "agent": run.agent, "trigger": run.trigger }));
        self.queue.lock().push(&run.agent, run.priority, run.id.clone());
        self.wake.notify_one();
        Ok(run)
    }

    async fn cancel_run(&self, id: &str) -> Result<Run, Status> {
        let (st, rid) = (self.store.clone(), id.to_string());
        let mut run = blocking(move || st.get_run(&rid)).await?;
        if run.state.terminal() {
            return Err(Status::failed_precondition(format!("run '{id}' is {} already", run.state.as_str())));
        }
        {
            let live = self.live.lock();
            if let Some(l) = live.get(id) {
                let _ = l.cancel.send(true);
                run.cancel_requested = true;
                return Ok(run);
            }
            // Queued: take it out of the queue (under the live lock: the dispatcher cannot
            // start it meanwhile) and finish it here.
            self.queue.lock().retain(|r| r != id);
        }
        run.cancel_requested = true;
        if let Ok(v) = self.store.get(&run.workflow, run.version) {
            run.settle(&v.definition, now_ms());
        } else {
            run.abort("canceled".into(), now_ms());
            run.state = RunState::Canceled;
        }
        self.save(&run).await;
        self.publish("workflow.run_canceled", &run, json!({}));
        Ok(run)
    }

    // ---- triggers -----------------------------------------------------------------------

    /// The principal id triggered runs of `v` act as.
    fn trigger_principal(v: &Version) -> String {
        v.applied_by.clone()
    }

    async fn cron_loop(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            let now = now_ms();
            let mut due = Vec::new();
            {
                let mut next = self.cron_next.lock();
                let mut seen = std::collections::HashSet::new();
                for v in self.store.latest() {
                    for t in &v.definition.triggers {
                        let Trigger::Cron(expr) = t else { continue };
                        let key = (v.name.clone(), expr.clone());
                        seen.insert(key.clone());
                        let Ok(c) = Cron::parse(expr) else { continue };
                        let at = *next.entry(key.clone()).or_insert_with(|| c.next_after(now).unwrap_or(u64::MAX));
                        if at <= now {
                            due.push((v.clone(), expr.clone(), at));
                            next.insert(key, c.next_after(now).unwrap_or(u64::MAX));
                        }
                    }
                }
                next.retain(|k, _| seen.contains(k));
            }
            for (v, expr, at) in due {
                let trigger = json!({ "kind": "cron", "cron": expr, "scheduled_unix_ms": at });
                match self.start_run(&v, Map::new(), trigger, &Self::trigger_principal(&v), None, None).await {
                    Ok(r) => {
                        tracing::info!(workflow = %v.name, run = %r.id, cron = %expr, "cron trigger started a run")
                    }
                    Err(e) => {
                        tracing::warn!(workflow = %v.name, cron = %expr, error = %e.message(), "cron trigger could not start a run")
                    }
                }
            }
            // Wake at the next whole second.
            let ms = 1000 - now_ms() % 1000;
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(ms)) => {}
                _ = stop.changed() => return,
            }
        }
    }

    async fn event_loop(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut watch = self.bus.watch();
        let mut from = self.bus.next_offset();
        loop {
            let Resume { lagged, events: evs } = self.bus.read_resuming(&Topic::ALL, from, 256);
            if let Some(first) = lagged {
                tracing::warn!(
                    missed = first.saturating_sub(from),
                    "workflow event triggers fell behind the bus; some events started no run"
                );
            }
            for e in &evs {
                from = e.offset + 1;
                for v in self.store.latest() {
                    // A workflow's own events never trigger it (no loops).
                    if e.topic == Topic::Workflow && e.data.get("workflow").and_then(Value::as_str) == Some(&v.name) {
                        continue;
                    }
                    let hit = v.definition.triggers.iter().any(|t| match t {
                        Trigger::Event(m) => m.matches(e.topic, &e.kind, &e.subject),
                        Trigger::StandingQuery(q) => e.topic == Topic::StandingQuery && &e.subject == q,
                        Trigger::Cron(_) => false,
                    });
                    if !hit {
                        continue;
                    }
                    // The run acts as who applied the definition: only events they may
                    // read start it (the event becomes part of the run's record).
                    let who = Self::trigger_principal(&v);
                    match self.principal_for(&who) {
                        Ok(p) if e.audience.admits(p.as_ref()) => {}
                        _ => continue,
                    }
                    let trigger = json!({ "kind": "event", "event": event_json(e) });
                    match self.start_run(&v, Map::new(), trigger, &Self::trigger_principal(&v), None, None).await {
                        Ok(r) => {
                            tracing::info!(workflow = %v.name, run = %r.id, event = %e.kind, "event trigger started a run")
                        }
                        Err(err) => {
                            tracing::warn!(workflow = %v.name, event = %e.kind, error = %err.message(), "event trigger could not start a run")
                        }
                    }
                }
            }
            if !evs.is_empty() {
                continue;
            }
            tokio::select! {
                r = watch.changed() => if r.is_err() { return },
                _ = stop.changed() => return,
            }
        }
    }
}

/// A credential from `env:VAR` or `file:/path` (never the secret in the configuration).
fn credential(src: &str) -> Result<String, String> {
    let v = if let Some(var) = src.strip_prefix("env:") {
        std::env::var(var).map_err(|_| format!("environment variable {var} is not set"))?
    } else if let Some(path) = src.strip_prefix("file:") {
        std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?
    } else {
        return Err("must be env:VAR or file:/path".into());
    };
    let v = v.lines().next().unwrap_or("").trim().to_string();
    if v.is_empty() {
        return Err(format!("{src} is empty"));
    }
    Ok(v)
}

struct StepCtx {
    principal: Arc<Option<Principal>>,
    /// The run's fair-share owner.
    agent: String,
    run: String,
    workflow: String,
    step: String,
    attempt: u32,
}

fn event_json(e: &agentdb_orchestrator::bus::Event) -> Value {
    json!({
        "offset": e.offset, "topic": e.topic.as_str(), "kind": e.kind, "subject": e.subject,
        "data": e.data, "unix_ms": e.unix_ms,
    })
}

async fn cancelled(mut rx: tokio::sync::watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

async fn sleep_until(t: Option<tokio::time::Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// A `filter` step: keep the items (a list, e.g. a search's hits) with `score ≥
/// min_score` whose fields equal every `where` pair (looked up in the item, then in its
/// `payload`), at most `limit` of them.
fn filter_items(p: &Map<String, Value>) -> Result<Value, String> {
    let items = match &p["items"] {
        Value::Array(a) => a.clone(),
        Value::Object(o) if o.get("hits").is_some_and(Value::is_array) => {
            o["hits"].as_array().cloned().unwrap_or_default()
        }
        other => return Err(format!("filter: 'items' must be a list, got {}", kind_of(other))),
    };
    let min = match p.get("min_score") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_f64().ok_or("filter: 'min_score' must be a number")?),
    };
    let conds = match p.get("where") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err("filter: 'where' must be a mapping of field: value".into()),
    };
    let limit = match p.get("limit") {
        None | Some(Value::Null) => usize::MAX,
        Some(v) => v.as_u64().ok_or("filter: 'limit' must be a whole number")? as usize,
    };
    let total = items.len();
    let kept: Vec<Value> = items
        .into_iter()
        .filter(|it| min.is_none_or(|m| it.get("score").and_then(Value::as_f64).is_some_and(|s| s >= m)))
        .filter(|it| {
            conds.iter().all(|(k, want)| {
                it.get(k).or_else(|| it.get("payload").and_then(|p| p.get(k))).is_some_and(|got| got == want)
            })
        })
        .take(limit)
        .collect();
    Ok(json!({ "count": kept.len(), "dropped": total - kept.len(), "items": kept }))
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

// ---- gRPC ---------------------------------------------------------------------------------

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

/// The gRPC face of [`Workflows`].
#[derive(Clone)]
pub struct WorkflowService(pub Arc<Workflows>);

impl WorkflowService {
    fn authorize<T>(&self, req: &Request<T>, action: Action, method: &str) -> Result<Option<Principal>, Status> {
        let p = req.extensions().get::<Principal>().cloned();
        self.0.security.authorize(p.as_ref(), action, "", method)?;
        if let Some(p) = &p {
            self.0.principals.lock().insert(p.id.clone(), p.clone());
        }
        Ok(p)
    }
}

impl WorkflowService {
    /// A run's record (inputs, step outputs with search hits, errors) is visible to the
    /// principal that started it (or applied the definition that triggered it) and to
    /// principals that see everything; with authentication off, to everyone.
    fn run_visible(&self, p: Option<&Principal>, run: &Run) -> bool {
        !self.0.security.auth_enabled() || p.is_some_and(|p| p.id == run.principal || p.sees_everything())
    }

    /// A definition (its steps, queries and default inputs) is visible to who applied it,
    /// to principals that see everything, and to principals that may read every
    /// collection its steps name literally (a templated collection is authorized per run,
    /// as the run's principal).
    fn definition_visible(&self, p: Option<&Principal>, v: &Version) -> bool {
        !self.0.security.auth_enabled()
            || p.is_some_and(|p| {
                p.id == v.applied_by
                    || p.sees_everything()
                    || v.definition.collections().iter().all(|c| p.authorize(Action::Read, c).is_ok())
            })
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
        let (st, by) = (self.0.store.clone(), principal_id(&p));
        let (v, changed) = blocking(move || st.apply(&yaml, &by, now_ms())).await?;
        if changed {
            tracing::info!(workflow = %v.name, version = v.version, "workflow applied");
            self.0.bus.publish_to(
                Topic::Workflow,
                "workflow.applied",
                &v.name,
                json!({ "workflow": v.name, "version": v.version, "applied_by": v.applied_by }),
                Audience::Principal(v.applied_by.clone()),
            );
        }
        let n = self.0.store.version_count(&v.name);
        Ok(Response::new(v1::ApplyWorkflowResponse { workflow: Some(info_to_wire(&v, n)), changed }))
    }

    async fn list(
        &self,
        req: Request<v1::ListWorkflowsRequest>,
    ) -> Result<Response<v1::ListWorkflowsResponse>, Status> {
        let p = self.authorize(&req, Action::Read, "Workflows/List")?;
        let s = &self.0.store;
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
        let v = self.0.store.get(&r.name, r.version).map_err(orch_status)?;
        self.check_definition_visible(p.as_ref(), &v)?;
        let n = self.0.store.version_count(&v.name);
        Ok(Response::new(v1::GetWorkflowResponse { workflow: Some(info_to_wire(&v, n)) }))
    }

    async fn delete(
        &self,
        req: Request<v1::DeleteWorkflowRequest>,
    ) -> Result<Response<v1::DeleteWorkflowResponse>, Status> {
        self.authorize(&req, Action::Admin, "Workflows/Delete")?;
        let name = req.into_inner().name;
        let st = self.0.store.clone();
        blocking(move || st.delete(&name)).await?;
        Ok(Response::new(v1::DeleteWorkflowResponse {}))
    }

    async fn run(&self, req: Request<v1::RunWorkflowRequest>) -> Result<Response<v1::RunWorkflowResponse>, Status> {
        let p = self.authorize(&req, Action::Write, "Workflows/Run")?;
        let r = req.into_inner();
        let v = self.0.store.get(&r.name, r.version).map_err(orch_status)?;
        self.check_definition_visible(p.as_ref(), &v)?;
        let inputs = if r.inputs_json.trim().is_empty() {
            Map::new()
        } else {
            match serde_json::from_str::<Value>(&r.inputs_json) {
                Ok(Value::Object(m)) => m,
                Ok(_) => return Err(Status::invalid_argument("inputs_json must be a JSON object")),
                Err(e) => return Err(Status::invalid_argument(format!("inputs_json is not JSON: {e}"))),
            }
        };
        if !r.agent.is_empty() {
            agentdb_orchestrator::agents::validate_agent_name(&r.agent).map_err(orch_status)?;
        }
        if let Some(pr) = r.priority {
            if !(-100..=100).contains(&pr) {
                return Err(Status::invalid_argument(format!("priority {pr} is out of range -100..100")));
            }
        }
        let agent = Some(r.agent.as_str()).filter(|a| !a.is_empty());
        let run =
            self.0.start_run(&v, inputs, json!({ "kind": "manual" }), &principal_id(&p), agent, r.priority).await?;
        Ok(Response::new(v1::RunWorkflowResponse { run: Some(run_to_wire(&run)) }))
    }

    async fn get_run(
        &self,
        req: Request<v1::GetWorkflowRunRequest>,
    ) -> Result<Response<v1::GetWorkflowRunResponse>, Status> {
        let p = self.authorize(&req, Action::Read, "Workflows/GetRun")?;
        let id = req.into_inner().id;
        let st = self.0.store.clone();
        let run = blocking(move || st.get_run(&id)).await?;
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
        let st = self.0.store.clone();
        let mut runs = blocking(move || st.load_runs()).await?;
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
        let (st, rid) = (self.0.store.clone(), id.clone());
        let existing = blocking(move || st.get_run(&rid)).await?;
        self.check_run_visible(p.as_ref(), &existing)?;
        let run = self.0.cancel_run(&id).await?;
        Ok(Response::new(v1::CancelWorkflowRunResponse { run: Some(run_to_wire(&run)) }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_come_from_a_file_or_the_environment_never_the_config() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("token");
        std::fs::write(&f, "adb_abc_def\nignored").unwrap();
        assert_eq!(credential(&format!("file:{}", f.display())).unwrap(), "adb_abc_def");
        std::env::set_var("AGENTDB_TEST_WF_CREDENTIAL", " tok ");
        assert_eq!(credential("env:AGENTDB_TEST_WF_CREDENTIAL").unwrap(), "tok");
        assert!(credential("env:AGENTDB_TEST_WF_NOT_SET").unwrap_err().contains("is not set"));
        assert!(credential("adb_literal").unwrap_err().contains("env:VAR or file:/path"));
        std::fs::write(&f, "\n").unwrap();
        assert!(credential(&format!("file:{}", f.display())).unwrap_err().contains("empty"));
    }

    #[test]
    fn filter_keeps_scores_and_fields() {
        let p = json!({
            "items": [
                {"id": "a", "score": 0.9, "modality": "image"},
                {"id": "b", "score": 0.4, "modality": "text"},
                {"id": "c", "score": 0.8, "payload": {"modality": "text"}},
            ],
            "min_score": 0.5,
        });
        let out = filter_items(p.as_object().unwrap()).unwrap();
        assert_eq!(out["count"], 2);
        let mut p2 = p.as_object().unwrap().clone();
        p2.insert("where".into(), json!({"modality": "text"}));
        let out = filter_items(&p2).unwrap();
        assert_eq!(out["items"][0]["id"], "c");
        p2.insert("items".into(), json!("nope"));
        assert!(filter_items(&p2).unwrap_err().contains("must be a list, got a string"));
    }
}
