//! Long-running tasks: a workflow run or a folder ingest behind an A2A task.
//!
//! Such a task answers a waiting `SendMessage` once its work is accepted (queued or
//! working) instead of at its end; it stays SUBMITTED / WORKING while the work goes on,
//! with a `progress` artifact that is replaced as it moves (each step's state; files
//! done, ingested, skipped, failed), and ends with a `result` artifact. It can be listed,
//! read, subscribed to, and canceled (which cancels the workflow run, or stops the ingest
//! before its next file). Messages sent to it while it works go to the work: the answer to
//! a workflow's `ask` step (the task is INPUT_REQUIRED meanwhile), more file parts for a
//! folder ingest. A task following a workflow run follows it again after a restart (the
//! run resumes; see docs/WORKFLOWS.md).

use super::model::*;
use super::A2a;
use agentdb_orchestrator::bus::Topic;
use agentdb_orchestrator::security::{Action, Principal};
use agentdb_orchestrator::skills::{self, str_param, Host, Job, SkillError};
use agentdb_orchestrator::workflow::{Run, RunState, INPUT_REQUIRED_EVENT};
use serde_json::{json, Map, Value};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How often a task following a workflow run re-reads it when no event came (events can
/// be missed by a reader that lags behind the bus's retention).
const RUN_POLL: Duration = Duration::from_secs(5);
/// A folder ingest's progress artifact is replaced at most this often (and at the end).
const FOLDER_PROGRESS_EVERY: Duration = Duration::from_millis(250);
/// Failed files named in a folder ingest's artifacts (the count covers them all).
const LISTED_FAILURES: usize = 100;

/// Whether a job is long-running work, and which.
pub(super) fn long_kind(job: &Job) -> Option<LongKind> {
    match job.skill.as_deref() {
        Some("workflow") => Some(LongKind::Workflow),
        Some("ingest") if str_param(&job.params, "path").is_some() || job.files.len() > 1 => Some(LongKind::Folder),
        _ => None,
    }
}

/// A file of a folder ingest: on the server, or sent as a part.
enum Source {
    Path(std::path::PathBuf),
    Part(String, String, Vec<u8>),
}

impl A2a {
    /// Route a plain-text message to `a2a.text_workflow` when one is configured.
    pub(super) fn route(&self, mut job: Job) -> Job {
        let defaulted = job.skill.as_deref() == Some("recall") && str_param(&job.params, "skill").is_none();
        if defaulted && !self.opts.text_workflow.is_empty() {
            job.skill = Some("workflow".into());
            job.params.insert("workflow".into(), json!(self.opts.text_workflow));
        }
        job
    }

    /// Run a long-running task to its end (or until it waits for input it must get
    /// before anything starts).
    pub(super) async fn run_long(
        self: Arc<Self>,
        task_id: &str,
        principal: Option<Principal>,
        job: Job,
        inbox: mpsc::UnboundedReceiver<Job>,
    ) {
        let r = match long_kind(&job) {
            Some(LongKind::Folder) => self.clone().run_folder(task_id, principal.as_ref(), &job, inbox).await,
            _ => self.clone().run_workflow(task_id, principal.as_ref(), &job, inbox).await,
        };
        match r {
            Ok(()) => {}
            Err(SkillError::NeedInput(why)) => {
                if let Some(t) = self.tasks.lock().map.get_mut(task_id) {
                    // Nothing started: the next message completes the request (merged).
                    t.pending = Some(job);
                    t.live = None;
                }
                self.set_status(task_id, TaskState::InputRequired, Some(agent_text(why)));
            }
            Err(SkillError::Rejected(why)) => self.set_status(task_id, TaskState::Rejected, Some(agent_text(why))),
            Err(SkillError::Failed(why)) => self.set_status(task_id, TaskState::Failed, Some(agent_text(why))),
        }
    }

    /// Replace (or add) an artifact of a running task and tell subscribers; `save`: store
    /// the task too. False when the task is gone or finished.
    fn put_artifact(&self, task_id: &str, a: ArtifactRec, save: bool) -> bool {
        let mut tasks = self.tasks.lock();
        let Some(t) = tasks.map.get_mut(task_id) else { return false };
        if t.status.state.terminal() {
            return false;
        }
        match t.artifacts.iter_mut().find(|x| x.id == a.id) {
            Some(x) => *x = a.clone(),
            None => t.artifacts.push(a.clone()),
        }
        let _ = t.events.send(Event::Artifact(a));
        t.notify();
        if save {
            let s = self.snapshot(t);
            drop(tasks);
            self.save(s);
        }
        true
    }

    fn state_of(&self, task_id: &str) -> Option<TaskState> {
        self.tasks.lock().map.get(task_id).map(|t| t.status.state)
    }

    // ---- workflow runs ----------------------------------------------------------------

    async fn run_workflow(
        self: Arc<Self>,
        task_id: &str,
        p: Option<&Principal>,
        job: &Job,
        inbox: mpsc::UnboundedReceiver<Job>,
    ) -> Result<(), SkillError> {
        let Some(w) = self.workflows.get().cloned() else {
            return Err(SkillError::Failed("the workflow engine is not running".into()));
        };
        let Some(name) = str_param(&job.params, "workflow") else {
            return Err(SkillError::NeedInput(
                "the workflow skill needs a workflow: send a data part {\"workflow\": \"NAME\"}".into(),
            ));
        };
        let mut inputs = match skills::param(&job.params, "inputs") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(_) => return Err(SkillError::Failed("inputs must be an object".into())),
        };
        if !job.text.trim().is_empty() {
            inputs.entry("text").or_insert_with(|| json!(job.text.trim()));
        }
        // Out of range is refused by start_run_as (saturated, so no value wraps into range).
        let priority = skills::param(&job.params, "priority")
            .and_then(Value::as_i64)
            .map(|pr| pr.clamp(i32::MIN.into(), i32::MAX.into()) as i32);
        let req = crate::workflows::RunRequest {
            name,
            version: skills::usize_param(&job.params, "version").unwrap_or(0) as u32,
            inputs,
            agent: str_param(&job.params, "agent"),
            priority,
            trigger: json!({ "kind": "a2a", "task": task_id }),
        };
        let from = self.svc.bus.next_offset();
        let run = crate::workflows::start_run_as(&w, &self.svc.security, p, req, "A2A/workflow")
            .await
            .map_err(crate::host::skill_error)?;
        tracing::info!(task = %task_id, run = %run.id, workflow = %run.workflow, "A2A: workflow run started for the task");
        {
            let mut tasks = self.tasks.lock();
            if let Some(t) = tasks.map.get_mut(task_id) {
                t.run = Some(run.id.clone());
            }
        }
        self.show_run(task_id, &run);
        let queued =
            agent_text(format!("workflow run {} of '{}' (version {}) is queued", run.id, run.workflow, run.version));
        self.set_status(task_id, TaskState::Submitted, Some(queued));
        self.follow_run(task_id, &run.id, inbox, from).await;
        Ok(())
    }

    /// Follow a stored task's workflow run again (after a restart).
    pub(super) fn follow_again(self: &Arc<Self>, task_id: &str) {
        let (tx, rx) = mpsc::unbounded_channel();
        let run = {
            let mut tasks = self.tasks.lock();
            let Some(t) = tasks.map.get_mut(task_id) else { return };
            let Some(run) = t.run.clone() else { return };
            t.live = Some(Live { kind: LongKind::Workflow, inbox: tx });
            run
        };
        let (me, id) = (self.clone(), task_id.to_string());
        let from = self.svc.bus.next_offset();
        let handle = tokio::spawn(async move { me.follow_run(&id, &run, rx, from).await });
        if let Some(t) = self.tasks.lock().map.get_mut(task_id) {
            t.abort = Some(handle.abort_handle());
        }
        tracing::info!(task = %task_id, "A2A: following the task's workflow run again");
    }

    /// Follow run `run_id` from bus offset `from` until it ends: its events become the
    /// task's status and progress; messages in `inbox` answer its `ask` steps.
    async fn follow_run(&self, task_id: &str, run_id: &str, mut inbox: mpsc::UnboundedReceiver<Job>, mut from: u64) {
        let Some(w) = self.workflows.get().cloned() else { return };
        let bus = self.svc.bus.clone();
        let mut watch = bus.watch();
        let owner = self.tasks.lock().map.get(task_id).map(|t| t.owner.clone()).unwrap_or_default();
        if self.refresh_run(task_id, run_id).await {
            return;
        }
        loop {
            let evs = bus.read_resuming(&[Topic::Workflow], from, 256).events;
            let mut changed = false;
            let mut ask = None;
            for e in &evs {
                from = e.offset + 1;
                if e.data.get("run").and_then(Value::as_str) != Some(run_id) {
                    continue;
                }
                if e.kind == INPUT_REQUIRED_EVENT {
                    let prompt = e.data.get("prompt").and_then(Value::as_str).unwrap_or("input needed").to_string();
                    let step = e.data.get("step").and_then(Value::as_str).unwrap_or_default();
                    tracing::info!(task = %task_id, run = %run_id, step = %step, "A2A: the workflow run asks for input");
                    ask = Some(prompt);
                }
                changed = true;
            }
            // The progress first, so a client that sees input-required sees the asking step running.
            if changed && self.refresh_run(task_id, run_id).await {
                return;
            }
            if let Some(prompt) = ask {
                self.set_status(task_id, TaskState::InputRequired, Some(agent_text(prompt)));
            }
            if !evs.is_empty() {
                continue;
            }
            tokio::select! {
                r = watch.changed() => if r.is_err() { return },
                m = inbox.recv() => {
                    let Some(job) = m else { return }; // the task was canceled or forgotten
                    let mut data = job.params.clone();
                    data.remove("skill");
                    let step = str_param(&data, "step").unwrap_or_default().to_string();
                    let who = if self.svc.security.auth_enabled() { owner.as_str() } else { "" };
                    if let Err(e) = w.provide_input(run_id, &step, who, job.text.trim().to_string(), Value::Object(data)).await {
                        tracing::warn!(task = %task_id, run = %run_id, error = %e, "A2A: the message could not reach the workflow run");
                    }
                }
                _ = tokio::time::sleep(RUN_POLL) => {
                    if self.refresh_run(task_id, run_id).await {
                        return;
                    }
                }
            }
        }
    }

    /// Read the run, show its progress, and end the task when the run has ended (true).
    async fn refresh_run(&self, task_id: &str, run_id: &str) -> bool {
        let Some(w) = self.workflows.get().cloned() else { return true };
        let run = match w.get_run(run_id.to_string()).await {
            Ok(r) => r,
            Err(e) => {
                self.set_status(task_id, TaskState::Failed, Some(agent_text(format!("workflow run {run_id}: {e}"))));
                return true;
            }
        };
        if !self.show_run(task_id, &run) {
            return true;
        }
        let done = |s: &str| format!("workflow run {} of '{}' {s}", run.id, run.workflow);
        match run.state {
            RunState::Queued | RunState::Running => {
                if run.state == RunState::Running && self.state_of(task_id) == Some(TaskState::Submitted) {
                    self.set_status(task_id, TaskState::Working, None);
                }
                false
            }
            RunState::Succeeded => {
                let outputs: Map<String, Value> = run.steps.iter().map(|s| (s.id.clone(), s.output.clone())).collect();
                let summary = done("succeeded");
                let a = ArtifactRec {
                    id: format!("{task_id}-result"),
                    name: "result".into(),
                    description: "the workflow run's step outputs".into(),
                    parts: vec![
                        Part::Text(summary.clone()),
                        Part::Data(
                            json!({ "run": run.id, "workflow": run.workflow, "version": run.version, "outputs": outputs }),
                        ),
                    ],
                };
                self.put_artifact(task_id, a, false);
                self.set_status(task_id, TaskState::Completed, Some(agent_text(summary)));
                true
            }
            RunState::Failed => {
                self.set_status(task_id, TaskState::Failed, Some(agent_text(done(&format!("failed: {}", run.error)))));
                true
            }
            RunState::Canceled => {
                self.set_status(task_id, TaskState::Canceled, Some(agent_text(done("was canceled"))));
                true
            }
        }
    }

    /// The run's `progress` artifact: its state and each step's.
    fn show_run(&self, task_id: &str, run: &Run) -> bool {
        let finished = run.steps.iter().filter(|s| s.state.terminal()).count();
        let running: Vec<&str> =
            run.steps.iter().filter(|s| !s.state.terminal() && s.attempts > 0).map(|s| s.id.as_str()).collect();
        let mut text = format!(
            "workflow run {} of '{}': {}, {finished} of {} steps finished",
            run.id,
            run.workflow,
            run.state.as_str(),
            run.steps.len()
        );
        if !running.is_empty() && !run.state.terminal() {
            text.push_str(&format!("; running: {}", running.join(", ")));
        }
        let steps: Vec<Value> = run
            .steps
            .iter()
            .map(|s| json!({ "id": s.id, "kind": s.kind, "state": s.state.as_str(), "attempts": s.attempts, "error": s.error }))
            .collect();
        let a = ArtifactRec {
            id: format!("{task_id}-progress"),
            name: "progress".into(),
            description: "the workflow run's state, replaced as it moves".into(),
            parts: vec![
                Part::Text(text),
                Part::Data(json!({
                    "run": run.id, "workflow": run.workflow, "version": run.version, "state": run.state.as_str(),
                    "stepsFinished": finished, "steps": steps,
                })),
            ],
        };
        self.put_artifact(task_id, a, true)
    }

    // ---- folder ingests ---------------------------------------------------------------

    async fn run_folder(
        self: Arc<Self>,
        task_id: &str,
        p: Option<&Principal>,
        job: &Job,
        mut inbox: mpsc::UnboundedReceiver<Job>,
    ) -> Result<(), SkillError> {
        let Some(collection) = str_param(&job.params, "collection").map(str::to_string) else {
            return Err(SkillError::NeedInput(
                "the ingest skill needs a collection: send a data part {\"collection\": \"NAME\"}".into(),
            ));
        };
        Host::authorize(&self.svc, p, Action::Write, &collection, "A2A/ingest")?;
        let max = self.opts.max_folder_files;
        let mut queue: VecDeque<Source> = VecDeque::new();
        if let Some(path) = str_param(&job.params, "path") {
            let (dirs, path) = (self.opts.server_dirs.clone(), path.to_string());
            let files = tokio::task::spawn_blocking(move || {
                let root = skills::server_path(&dirs, &path)?;
                skills::folder_files(&root, max)
            })
            .await
            .map_err(|e| SkillError::Failed(e.to_string()))?
            .map_err(|e| SkillError::Failed(format!("ingest: {e}")))?;
            queue.extend(files.into_iter().map(Source::Path));
        }
        queue.extend(job.files.iter().map(|(n, m, b)| Source::Part(n.clone(), m.clone(), b.clone())));
        if queue.is_empty() {
            return Err(SkillError::Failed("ingest: the folder holds no files".into()));
        }
        if queue.len() > max {
            return Err(SkillError::Failed(format!(
                "ingest: {} files; one folder ingest takes at most {max} (a2a.max_folder_files)",
                queue.len()
            )));
        }
        let mut total = queue.len();
        self.set_status(
            task_id,
            TaskState::Working,
            Some(agent_text(format!("ingesting {total} file(s) into '{collection}'"))),
        );
        let (mut done, mut ingested, mut skipped, mut items) = (0usize, 0usize, 0usize, 0u64);
        let mut failed: Vec<Value> = Vec::new();
        let mut failures = 0usize;
        let mut shown = Instant::now() - FOLDER_PROGRESS_EVERY;
        let mut saved = Instant::now();
        let max_bytes = self.svc.ingest.max_file_bytes as u64;
        loop {
            // More files sent to the task meanwhile join the queue.
            while let Ok(more) = inbox.try_recv() {
                let n = more.files.len();
                if total + n > max {
                    tracing::warn!(task = %task_id, "A2A: files beyond a2a.max_folder_files are not added");
                    continue;
                }
                total += n;
                queue.extend(more.files.into_iter().map(|(n, m, b)| Source::Part(n, m, b)));
            }
            let Some(src) = queue.pop_front() else { break };
            let (source, name, mime, bytes) = match src {
                Source::Part(name, mime, bytes) => {
                    let source = if name.is_empty() {
                        format!("a2a-{task_id}-{}{}", done + 1, skills::ext_for(&mime))
                    } else {
                        name.clone()
                    };
                    (source, name, mime, Ok(bytes))
                }
                Source::Path(path) => {
                    let source = path.display().to_string();
                    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
                    let bytes = tokio::task::spawn_blocking(move || {
                        let len = std::fs::metadata(&path).map_err(|e| e.to_string())?.len();
                        if len > max_bytes {
                            return Err(format!("{len} bytes; the limit is {max_bytes} (ingest.max_file_bytes)"));
                        }
                        std::fs::read(&path).map_err(|e| e.to_string())
                    })
                    .await
                    .unwrap_or_else(|e| Err(e.to_string()));
                    (source, name, String::new(), bytes)
                }
            };
            let outcome = match bytes {
                Err(e) => Err(SkillError::Failed(format!("{source}: {e}"))),
                Ok(bytes) => {
                    let mut params = Map::new();
                    params.insert("collection".into(), json!(collection));
                    params.insert("source".into(), json!(source));
                    let one = Job {
                        skill: Some("ingest".into()),
                        params,
                        text: String::new(),
                        files: vec![(name, mime, bytes)],
                    };
                    skills::execute(&self.svc, task_id, p, &one).await
                }
            };
            done += 1;
            match outcome {
                Ok(a) => {
                    items += a.data.get("items").and_then(Value::as_u64).unwrap_or(0);
                    match a.data.get("status").and_then(Value::as_str) {
                        Some("skipped") => skipped += 1,
                        _ => ingested += 1,
                    }
                }
                // Not allowed (RBAC, quota): the rest would be refused as well.
                Err(SkillError::Rejected(why)) => return Err(SkillError::Rejected(why)),
                Err(SkillError::Failed(why)) | Err(SkillError::NeedInput(why)) => {
                    failures += 1;
                    if failed.len() < LISTED_FAILURES {
                        failed.push(json!({ "source": source, "error": why }));
                    }
                }
            }
            let last = queue.is_empty();
            if last || shown.elapsed() >= FOLDER_PROGRESS_EVERY {
                shown = Instant::now();
                let text = format!(
                    "{done} of {total} file(s): {ingested} ingested, {skipped} unchanged, {failures} failed ({items} item(s) into '{collection}')"
                );
                let data = json!({
                    "collection": collection, "files": total, "done": done, "ingested": ingested,
                    "skipped": skipped, "failed": failures, "items": items, "current": source,
                });
                let a = ArtifactRec {
                    id: format!("{task_id}-progress"),
                    name: "progress".into(),
                    description: "the folder ingest's progress, replaced as it moves".into(),
                    parts: vec![Part::Text(text), Part::Data(data)],
                };
                // Stored about once a second, not for every file.
                let save = last || saved.elapsed() >= Duration::from_secs(1);
                if save {
                    saved = Instant::now();
                }
                if !self.put_artifact(task_id, a, save) {
                    return Ok(()); // canceled meanwhile
                }
            }
        }
        let summary = format!(
            "{total} file(s) into '{collection}': {ingested} ingested, {skipped} unchanged, {failures} failed ({items} item(s))"
        );
        let a = ArtifactRec {
            id: format!("{task_id}-result"),
            name: "result".into(),
            description: "the folder ingest's outcome".into(),
            parts: vec![
                Part::Text(summary.clone()),
                Part::Data(json!({
                    "collection": collection, "files": total, "ingested": ingested, "skipped": skipped,
                    "failed": failures, "failures": failed, "items": items,
                })),
            ],
        };
        self.put_artifact(task_id, a, false);
        if ingested + skipped == 0 {
            return Err(SkillError::Failed(format!("no file could be ingested: {summary}")));
        }
        self.set_status(task_id, TaskState::Completed, Some(agent_text(summary)));
        Ok(())
    }
}
