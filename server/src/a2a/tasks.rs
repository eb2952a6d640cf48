//! The task lifecycle: start, run, status changes, persistence, and the task methods
//! (send, get, list, cancel, subscribe).

use super::errors::*;
use super::long::long_kind;
use super::model::*;
use super::params::*;
use super::push::*;
use super::sse::*;
use super::A2a;
use super::TASK_EVENTS;
use agentdb_orchestrator::security::Principal;
use agentdb_orchestrator::skills::{Artifact, SkillError};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use tokio::sync::{broadcast, mpsc};

/// A task registered by [`A2a::start`].
pub(super) struct Started {
    pub(super) task_id: String,
    pub(super) context_id: String,
    /// The task as it is now (rendered in the request's dialect).
    pub(super) snapshot: Value,
    /// Its events from now on.
    pub(super) rx: broadcast::Receiver<Event>,
    /// Long-running work: a waiting SendMessage answers once it is accepted.
    pub(super) long: bool,
    /// The message went to the task's running work (nothing new was started).
    pub(super) delivered: bool,
}

impl A2a {
    /// Read the stored tasks back (on start). Tasks that were not finished when the
    /// server stopped cannot go on (their work is gone): they become failed, saying so.
    pub(super) fn load(&self) {
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
                    live: None,
                    run: t.run,
                };
                if !rec.status.state.terminal() && rec.run.is_some() {
                    // Its workflow run goes on after the restart: follow it again once the
                    // engine is up (`set_workflows`).
                    self.reattach.lock().push(rec.id.clone());
                } else if !rec.status.state.terminal() {
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
    pub(super) fn snapshot(&self, t: &TaskRec) -> Snapshot {
        let v = self.versions.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        (t.id.clone(), v, t.stored())
    }

    /// Write a snapshot to `_a2a_tasks` (outside the table lock); a failure is logged,
    /// the task goes on in memory.
    pub(super) fn save(&self, (id, version, record): Snapshot) {
        if let Err(e) = self.store.put(&id, version, record) {
            tracing::warn!(task = %id, error = %e, "A2A: cannot store the task");
        }
    }

    /// Delete evicted tasks from `_a2a_tasks`.
    pub(super) fn forget(&self, ids: &[String]) {
        if let Err(e) = self.store.delete(ids) {
            tracing::warn!(tasks = ids.len(), error = %e, "A2A: cannot delete evicted tasks");
        }
    }

    /// Register a task for `msg` (new, or the continuation of one waiting for input),
    /// start its skill, and return (task id, context id, snapshot, event receiver).
    pub(super) fn start(
        self: &Arc<Self>,
        d: Dialect,
        ctx: &Caller,
        msg: Incoming,
        push: Option<PushConfig>,
    ) -> Result<Started, RpcError> {
        let new_job = self.route(job_from_parts(&msg.parts));
        let user_msg =
            MessageRec { id: msg.message_id, agent: false, parts: msg.parts.iter().map(Part::for_history).collect() };
        let mut evicted = Vec::new();
        let mut tasks = self.tasks.lock();
        if let Some(tid) = &msg.task_id {
            // A message to a long-running task that is working or waiting for input goes
            // to its work (a workflow run's `ask` step, more files for a folder ingest).
            let t = tasks.owned(tid, &ctx.owner)?;
            if let (Some(live), None, false) = (&t.live, &t.pending, t.status.state.terminal()) {
                if msg.context_id.as_ref().is_some_and(|c| *c != t.context_id) {
                    return Err(RpcError::params("message.contextId does not match the task's context"));
                }
                if live.kind == LongKind::Folder && new_job.files.is_empty() {
                    return Err(RpcError::new(
                        UNSUPPORTED_OPERATION,
                        format!("task '{tid}' is ingesting files; a further message can only add file parts"),
                    ));
                }
                if live.inbox.send(new_job).is_err() {
                    return Err(RpcError::new(UNSUPPORTED_OPERATION, format!("task '{tid}' is finishing")));
                }
                t.history.push(user_msg);
                if t.status.state == TaskState::InputRequired {
                    // The answer is on its way to the step that asked.
                    t.status = StatusRec { state: TaskState::Working, message: None, timestamp: now_rfc3339() };
                    let _ = t.events.send(Event::Status(t.status.clone()));
                    t.notify();
                }
                if let Some(c) = push {
                    self.add_push(&mut tasks, tid, &ctx.owner, c)?;
                }
                let t = tasks.owned(tid, &ctx.owner)?;
                let snapshot = t.render(d, None, true);
                let rx = t.events.subscribe();
                let stored = self.snapshot(t);
                let context_id = t.context_id.clone();
                drop(tasks);
                self.save(stored);
                return Ok(Started { task_id: tid.clone(), context_id, snapshot, rx, long: true, delivered: true });
            }
        }
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
                    live: None,
                    run: None,
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
        let long = long_kind(&job);
        let inbox = long.map(|kind| {
            let (tx, rx) = mpsc::unbounded_channel();
            t.live = Some(Live { kind, inbox: tx });
            rx
        });
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
        let work = async move {
            match inbox {
                Some(inbox) => crate::telemetry::as_tenant(&owner, me.run_long(&id, principal, job, inbox)).await,
                None => crate::telemetry::as_tenant(&owner, me.run_task(&id, principal, job)).await,
            }
        };
        let handle = tokio::spawn(tracing::Instrument::instrument(work, span));
        t.abort = Some(handle.abort_handle());
        let stored = self.snapshot(t);
        drop(tasks);
        self.save(stored);
        self.forget(&evicted);
        Ok(Started { task_id, context_id, snapshot, rx, long: long.is_some(), delivered: false })
    }

    /// Move a task to a new status (never out of a terminal one) and tell subscribers.
    pub(super) fn set_status(&self, task_id: &str, state: TaskState, message: Option<MessageRec>) {
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
                t.live = None;
            }
            tracing::Span::current().record("a2a.state", state.name(Dialect::V03));
            // Stored before anyone hears of it: a client told "completed" finds the task
            // completed after a restart, however abrupt.
            self.save(self.snapshot(t));
            let _ = t.events.send(Event::Status(t.status.clone()));
            t.notify();
        }
    }

    pub(super) async fn run_task(self: Arc<Self>, task_id: &str, principal: Option<Principal>, job: Job) {
        self.set_status(task_id, TaskState::Working, None);
        let outcome = agentdb_orchestrator::skills::execute(&self.svc, task_id, principal.as_ref(), &job).await;
        match outcome {
            Ok(Artifact { name, summary, data }) => {
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
            Err(SkillError::NeedInput(why)) => {
                if let Some(t) = self.tasks.lock().map.get_mut(task_id) {
                    t.pending = Some(job);
                }
                self.set_status(task_id, TaskState::InputRequired, Some(agent_text(why)));
            }
            Err(SkillError::Rejected(why)) => self.set_status(task_id, TaskState::Rejected, Some(agent_text(why))),
            Err(SkillError::Failed(why)) => self.set_status(task_id, TaskState::Failed, Some(agent_text(why))),
        }
    }

    pub(super) async fn send(
        self: &Arc<Self>,
        d: Dialect,
        ctx: &Caller,
        params: &Map<String, Value>,
    ) -> Result<Value, RpcError> {
        let msg = parse_message(params)?;
        let cfg = params.get("configuration").and_then(Value::as_object);
        let return_now = cfg.is_some_and(|c| {
            c.get("returnImmediately").and_then(Value::as_bool) == Some(true)
                || c.get("blocking").and_then(Value::as_bool) == Some(false)
        });
        let history_length = cfg.and_then(|c| usize_param(c, "historyLength"));
        let push = self.message_push(d, params)?;
        let wait_for_end = job_from_parts(&msg.parts).params.get("wait").and_then(Value::as_bool) == Some(true);
        let Started { task_id, snapshot, mut rx, long, delivered, .. } = self.start(d, ctx, msg, push)?;
        // Long-running work (a workflow run, a folder ingest) answers once it is accepted
        // (its first status: queued or working), or at once for a message delivered to it;
        // `{"wait": true}` in a data part waits for its end like any other task.
        let long = long && !wait_for_end;
        let task = if return_now || (long && delivered) {
            snapshot
        } else {
            loop {
                match rx.recv().await {
                    Ok(Event::Status(s)) if s.state.ends_turn() || long => break,
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
    pub(super) fn open_stream(
        self: &Arc<Self>,
        d: Dialect,
        ctx: &Caller,
        send: bool,
        params: &Map<String, Value>,
    ) -> Result<mpsc::Receiver<Value>, RpcError> {
        let (snapshot, follow) = if send {
            let msg = parse_message(params)?;
            let push = self.message_push(d, params)?;
            let Started { task_id, context_id, snapshot, rx, .. } = self.start(d, ctx, msg, push)?;
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

    pub(super) fn get_task(&self, d: Dialect, ctx: &Caller, params: &Map<String, Value>) -> Result<Value, RpcError> {
        let tid = task_id_param(params)?;
        let history_length = history_length_param(params)?;
        let mut tasks = self.tasks.lock();
        Ok(tasks.owned(&tid, &ctx.owner)?.render(d, history_length, true))
    }

    pub(super) fn list_tasks(&self, d: Dialect, ctx: &Caller, params: &Map<String, Value>) -> Result<Value, RpcError> {
        let context = str_param(params, "contextId");
        let state = match str_param(params, "status") {
            Some(s) => Some(TaskState::parse(s).ok_or_else(|| RpcError::params(format!("unknown task state '{s}'")))?),
            None => None,
        };
        // pageSize 1..=100 (default 50), historyLength >= 0, statusTimestampAfter an RFC 3339
        // time: anything else is INVALID_PARAMS naming the field.
        let page_size = match super::protojson::int_param(params, "pageSize").map_err(RpcError::params)? {
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
            super::protojson::param(params, "includeArtifacts").and_then(Value::as_bool).unwrap_or(false);
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

    pub(super) fn cancel(&self, d: Dialect, ctx: &Caller, params: &Map<String, Value>) -> Result<Value, RpcError> {
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
        t.live = None;
        // The workflow run behind the task is canceled too (a queued one at once, a
        // running one once its steps wind down).
        if let (Some(run), Some(w)) = (t.run.clone(), self.workflows.get().cloned()) {
            tokio::spawn(async move {
                match w.cancel_run(&run).await {
                    Ok(_) => tracing::info!(run = %run, "A2A: task canceled, its workflow run is canceled"),
                    Err(e) => tracing::warn!(run = %run, error = %e, "A2A: cannot cancel the task's workflow run"),
                }
            });
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
