//! The workflow engine: runs of the DAGs defined in this module, executed in-process
//! (`steps.rs`), and the triggers that start them (cron, bus events, standing-query
//! matches). The server's gRPC service is a thin face over [`Workflows`]; see
//! docs/WORKFLOWS.md.
//!
//! Runs wait in a fair queue (priority, then weighted fair share across agents) for one of
//! `workflows.max_concurrent_runs` slots. A run is persisted on every step transition; after
//! a restart, unfinished runs are queued again and a step that was running starts over
//! (its lost attempt counts against its retry policy). State changes are events on the
//! `workflow` topic.
//!
//! Steps act as the run's principal (who started it, or who applied the definition for
//! triggered runs), so a step can only touch what they may.

use super::steps::{cancelled, event_json, StepCtx, Steps};
use super::{AttemptOutcome, FairQueue, Run, RunState, Store, Trigger, Version, WorkflowsConfig};
use crate::agents::Registry;
use crate::bus::{Audience, Bus, Resume, Topic};
use crate::cron::Cron;
use crate::queue::Queues;
use crate::security::Principal;
use crate::skills::Host;
use crate::time::fmt_ms;
use crate::{blocking, now_ms, Error, Result};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// How long a step may take to wind down after a cancel (or, for `call_agent`, past its
/// time-out) before it is dropped.
const CLEANUP_GRACE: Duration = Duration::from_secs(3);

/// A run being executed: how to stop it.
struct Live {
    cancel: tokio::sync::watch::Sender<bool>,
}

/// The workflow engine: store, fair queue, executor and triggers.
pub struct Workflows<H> {
    store: Arc<Store>,
    steps: Arc<Steps<H>>,
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

impl<H: Host> Workflows<H> {
    /// Open the store, queue the runs a previous process left unfinished, and start the
    /// dispatcher and the triggers. `max_file_bytes`: the largest file an `ingest` step
    /// reads.
    pub async fn start(
        host: Arc<H>,
        (bus, agents, queues): (Arc<Bus>, Arc<Registry>, Arc<Queues>),
        cfg: &WorkflowsConfig,
        max_file_bytes: usize,
        stop: tokio::sync::watch::Receiver<bool>,
        mirror: Option<Arc<dyn super::Mirror>>,
    ) -> Result<Arc<Workflows<H>>> {
        let (keep, db) = (cfg.keep_finished_runs, host.db().clone());
        let (store, runs) = blocking(move || {
            let store = Store::open(db, keep)?;
            let runs = store.load_runs()?;
            Ok((store, runs))
        })
        .await?;
        // Cluster mode: a run another node took over while this one was away stays there.
        let mut runs = runs;
        if let Some(m) = mirror {
            let mut mine = Vec::with_capacity(runs.len());
            for r in runs {
                if r.state.terminal() {
                    mine.push(r);
                    continue;
                }
                match m.taken_over(&r).await {
                    None => mine.push(r),
                    Some(latest) => {
                        tracing::info!(run = %r.id, state = latest.state.as_str(), "workflow run taken over by another node while this one was away; not resumed here");
                        // Its state as the other node recorded it (not mirrored back).
                        store.save_run(&latest)?;
                    }
                }
            }
            runs = mine;
            store.set_mirror(m);
        }
        let steps = Steps { host, bus, agents, queues, cfg: cfg.clone(), max_file_bytes: max_file_bytes as u64 };
        let w = Arc::new(Workflows {
            store: Arc::new(store),
            steps: Arc::new(steps),
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

    /// Cluster mode: take over `run` from a node that died (the caller won it in the
    /// cluster): stored here and queued; steps it was running start over, as after a
    /// restart.
    pub async fn adopt(&self, run: Run) -> Result<()> {
        if run.state.terminal() || self.live.lock().contains_key(&run.id) {
            return Ok(());
        }
        let (st, r) = (self.store.clone(), run.clone());
        blocking(move || st.save_run(&r)).await?;
        let mut q = self.queue.lock();
        q.retain(|id| *id != run.id);
        q.push(&run.agent, run.priority, run.id.clone());
        drop(q);
        tracing::info!(run = %run.id, workflow = %run.workflow, "workflow run taken over from a node that died");
        self.wake.notify_one();
        Ok(())
    }

    /// The definitions and runs.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Note a principal that made a request: runs it starts (and triggered runs of
    /// definitions it applies) act as it while this process runs.
    pub fn remember(&self, p: &Principal) {
        self.principals.lock().insert(p.id.clone(), p.clone());
    }

    /// Apply a definition as `by`: the version, and whether it changed anything (a
    /// `workflow.applied` event when it did).
    pub async fn apply(&self, yaml: String, by: String) -> Result<(Arc<Version>, bool)> {
        let st = self.store.clone();
        let (v, changed) = blocking(move || st.apply(&yaml, &by, now_ms())).await?;
        if changed {
            tracing::info!(workflow = %v.name, version = v.version, "workflow applied");
            self.steps.bus.publish_to(
                Topic::Workflow,
                "workflow.applied",
                &v.name,
                json!({ "workflow": v.name, "version": v.version, "applied_by": v.applied_by }),
                Audience::Principal(v.applied_by.clone()),
            );
        }
        Ok((v, changed))
    }

    /// Delete a definition (every version).
    pub async fn delete(&self, name: String) -> Result<()> {
        let st = self.store.clone();
        blocking(move || st.delete(&name)).await
    }

    pub async fn get_run(&self, id: String) -> Result<Run> {
        let st = self.store.clone();
        blocking(move || st.get_run(&id)).await
    }

    /// Every run kept, oldest first.
    pub async fn runs(&self) -> Result<Vec<Run>> {
        let st = self.store.clone();
        blocking(move || st.load_runs()).await
    }

    fn weight(&self, agent: &str) -> u32 {
        self.steps.cfg.agent_weights.get(agent).copied().unwrap_or(1).max(1)
    }

    /// Start runs while slots are free.
    async fn dispatch(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let max = self.steps.cfg.max_concurrent_runs.max(1);
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
        self.steps.bus.publish_to(
            Topic::Workflow,
            kind,
            &run.workflow,
            data,
            Audience::Principal(run.principal.clone()),
        );
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
        let host = &self.steps.host;
        if !host.auth_enabled() {
            return Ok(None);
        }
        if id.is_empty() {
            return Err("the run has no principal (it was started with authentication off); start it again".into());
        }
        if let Some(key) = id.strip_prefix("key:") {
            if let Some(p) = host.key_principal(key) {
                return p.map(Some).map_err(|e| format!("cannot act as {id}: {e}"));
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
                for sid in &ready {
                    run.start_step(sid, now);
                }
                // Persist the started steps before any of them runs: what a step publishes
                // (an `ask` step's question) must find the stored run showing it running.
                self.save(&run).await;
                for sid in ready {
                    let step = def.steps.iter().find(|s| s.id == sid).expect("step of the definition").clone();
                    let (kind, params) = step.action();
                    let steps = self.steps.clone();
                    let (p, run_id, wf, agent) =
                        (principal.clone(), run.id.clone(), def.name.clone(), run.agent.clone());
                    let stop = step_cancel_rx.clone();
                    let resolved = super::resolve(&params, &ctx);
                    let timeout = step.timeout_ms();
                    let attempt = run.step(&sid).map_or(1, |s| s.attempts);
                    self.publish(
                        "workflow.step_started",
                        &run,
                        json!({ "step": sid, "kind": kind, "attempt": attempt }),
                    );
                    tasks.spawn(async move {
                        let params = match resolved {
                            Ok(v) => v,
                            Err(e) => return (sid, Err(e)),
                        };
                        let ctx =
                            StepCtx { principal: p, run: run_id, workflow: wf, step: sid.clone(), attempt, agent };
                        // The step's work counts against the run's agent at the admission
                        // gate and in the encoders' fair queues.
                        let work =
                            steps.host.as_tenant(&ctx.agent, steps.exec(&ctx, kind, params, timeout, stop.clone()));
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
                        if n > super::MAX_OUTPUT_BYTES {
                            Err(format!("output is {n} bytes; a step may record at most {}", super::MAX_OUTPUT_BYTES))
                        } else {
                            Ok(v)
                        }
                    });
                    let err = res.as_ref().err().cloned();
                    match run.finish_attempt(&def, &sid, res, now_ms()) {
                        AttemptOutcome::Succeeded => {
                            self.publish("workflow.step_succeeded", &run, json!({ "step": sid }));
                        }
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

    // ---- runs ---------------------------------------------------------------------------

    /// Queue a run of `v` as `principal` (a principal id; "" with authentication off).
    pub async fn start_run(
        &self,
        v: &Version,
        inputs: Map<String, Value>,
        trigger: Value,
        principal: &str,
        agent: Option<&str>,
        priority: Option<i32>,
    ) -> Result<Run> {
        let max = self.steps.cfg.max_queued_runs;
        if self.queue.lock().len() >= max.max(1) {
            return Err(Error::LimitExceeded(format!(
                "{max} workflow runs are waiting already (workflows.max_queued_runs)"
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

    /// Cancel a run: a queued one ends now, a running one once its steps wind down.
    pub async fn cancel_run(&self, id: &str) -> Result<Run> {
        let (st, rid) = (self.store.clone(), id.to_string());
        let mut run = blocking(move || st.get_run(&rid)).await?;
        if run.state.terminal() {
            return Err(Error::FailedPrecondition(format!("run '{id}' is {} already", run.state.as_str())));
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

    /// Answer a run's `ask` step for `principal` (a principal id; "" with authentication
    /// off): an [`INPUT_EVENT`](super::INPUT_EVENT) that the step takes as its output.
    /// `step` names the step ("" for whichever is asking). With authentication on, the run
    /// must be the principal's, and it must not be finished.
    pub async fn provide_input(
        &self,
        run_id: &str,
        step: &str,
        principal: &str,
        text: String,
        data: Value,
    ) -> Result<()> {
        let (st, rid) = (self.store.clone(), run_id.to_string());
        let run = blocking(move || st.get_run(&rid)).await?;
        if self.steps.host.auth_enabled() && run.principal != principal {
            return Err(Error::NotFound(format!("workflow run '{run_id}' not found")));
        }
        if run.state.terminal() {
            return Err(Error::FailedPrecondition(format!("run '{run_id}' is {} already", run.state.as_str())));
        }
        self.steps.bus.publish_to(
            Topic::Workflow,
            super::INPUT_EVENT,
            &run.workflow,
            json!({ "run": run.id, "workflow": run.workflow, "step": step, "text": text, "data": data }),
            crate::bus::Audience::Principal(run.principal.clone()),
        );
        Ok(())
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
                        tracing::warn!(workflow = %v.name, cron = %expr, error = %e, "cron trigger could not start a run")
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
        let bus = self.steps.bus.clone();
        let mut watch = bus.watch();
        let mut from = bus.next_offset();
        loop {
            let Resume { lagged, events: evs } = bus.read_resuming(&Topic::ALL, from, 256);
            if let Some(first) = lagged {
                tracing::warn!(
                    missed = first.saturating_sub(from),
                    "workflow event triggers fell behind the bus; some events started no run"
                );
            }
            for e in &evs {
                from = e.offset + 1;
                // Cluster mode: an event starts event-triggered runs on the node where it
                // happened only (every node sees it through the relay).
                if e.origin.is_some() {
                    continue;
                }
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
                            tracing::warn!(workflow = %v.name, event = %e.kind, error = %err, "event trigger could not start a run")
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

async fn sleep_until(t: Option<tokio::time::Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
