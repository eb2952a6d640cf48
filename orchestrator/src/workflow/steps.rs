//! What each step kind does: `search` and `ingest` run AgentDB's own skills in-process
//! (`crate::skills`, straight into `agentdb-retrieval`), `embed` calls the text encoder,
//! `call_agent` calls another agent over A2A, `wait_event`, `notify`, `filter` and
//! `sleep` work on the bus, the queues and the data flowing between steps. A step acts as
//! the run's principal, so it can only touch what they may.

use super::{EventMatch, WorkflowsConfig};
use crate::agents::{AgentState, Registry};
use crate::bus::{Audience, Bus, Event, Topic};
use crate::queue::Queues;
use crate::security::{Action, Principal};
use crate::skills::{self, Host, Job, SkillError};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::Duration;

/// One attempt of one step of a run.
pub(super) struct StepCtx {
    pub principal: Arc<Option<Principal>>,
    /// The run's fair-share owner.
    pub agent: String,
    pub run: String,
    pub workflow: String,
    pub step: String,
    pub attempt: u32,
}

/// What steps work with.
pub(super) struct Steps<H> {
    pub host: Arc<H>,
    pub bus: Arc<Bus>,
    pub agents: Arc<Registry>,
    pub queues: Arc<Queues>,
    pub cfg: WorkflowsConfig,
    /// Largest file an `ingest` step reads (the server's ingest limit).
    pub max_file_bytes: u64,
}

/// A skill's refusal as a step error.
fn skill_error(e: SkillError) -> String {
    match e {
        SkillError::NeedInput(m) | SkillError::Failed(m) => m,
        SkillError::Rejected(m) => format!("refused: {m}"),
    }
}

impl<H: Host> Steps<H> {
    /// Execute one attempt of a step of kind `kind` with its resolved parameters.
    pub(super) async fn exec(
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
                let job = Job { skill: Some("search".into()), params: p, ..Default::default() };
                let a = skills::execute(self.host.as_ref(), &task_id, principal, &job).await.map_err(skill_error)?;
                Ok(a.data)
            }
            "ingest" => {
                let mut params = p.clone();
                let mut files = Vec::new();
                match p.get("path") {
                    Some(path) => {
                        let path = path.as_str().ok_or("ingest: 'path' must be a string")?;
                        let (name, bytes) = self.read_ingest_file(path).await?;
                        params.remove("path");
                        params.entry("source").or_insert_with(|| json!(path));
                        files.push((name, String::new(), bytes));
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
                    }
                };
                let job = Job { skill: Some("ingest".into()), params, text: String::new(), files };
                let a = skills::execute(self.host.as_ref(), &task_id, principal, &job).await.map_err(skill_error)?;
                Ok(a.data)
            }
            "embed" => {
                let text = match &p["text"] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let enc = self.host.encoders().clone();
                let id = enc.text().map_err(|e| e.to_string())?.encoder_id();
                let id2 = id.clone();
                let tenant = ctx.agent.clone();
                let v = tokio::task::spawn_blocking(move || {
                    agentdb_retrieval::with_tenant(&tenant, || enc.embed_texts_as(&id2, vec![text]))
                })
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
                let v = v.into_iter().next().unwrap_or_default();
                Ok(json!({ "encoder": id, "dim": v.len(), "vector": v }))
            }
            "filter" => filter_items(&p),
            "call_agent" => self.call_agent(ctx, &p, timeout_ms, cancel).await,
            "wait_event" => self.wait_event(ctx, &p, cancel).await,
            "notify" => self.notify(ctx, &p).await,
            "ask" => self.ask(ctx, &p, cancel).await,
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
        let dirs = self.cfg.ingest_dirs.clone();
        let max = self.max_file_bytes;
        let path = path.to_string();
        tokio::task::spawn_blocking(move || {
            let real = skills::server_path(&dirs, &path).map_err(|e| format!("ingest: {e}"))?;
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
        let req = crate::a2a_client::CallRequest {
            endpoint: card.endpoint.clone(),
            text,
            data,
            bearer,
            timeout: Duration::from_millis(timeout_ms),
            poll_interval: Duration::from_millis(self.cfg.a2a_poll_interval_ms.max(10)),
        };
        let r = crate::a2a_client::call(req, cancel).await.map_err(|e| format!("agent '{name}': {e}"))?;
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
        let m: EventMatch = serde_json::from_value(Value::Object(p.clone())).map_err(|e| format!("wait_event: {e}"))?;
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

    /// Ask the run's principal for input: publish [`INPUT_REQUIRED_EVENT`] with the
    /// prompt, then wait for an [`INPUT_EVENT`] for this run (and this step, when it names
    /// one) published after the question; its `text` and `data` are the step's output.
    /// With authentication on, only answers published for the run's principal count (the
    /// server publishes them for the caller it authenticated), not events a client
    /// published on the shared channel.
    async fn ask(
        &self,
        ctx: &StepCtx,
        p: &Map<String, Value>,
        mut cancel: tokio::sync::watch::Receiver<bool>,
    ) -> Result<Value, String> {
        let prompt = match &p["prompt"] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let principal = ctx.principal.as_ref().as_ref();
        let owner = principal.map(|p| p.id.clone()).unwrap_or_default();
        let mut watch = self.bus.watch();
        let mut from = self.bus.next_offset();
        let body = json!({ "run": ctx.run, "workflow": ctx.workflow, "step": ctx.step, "prompt": prompt });
        self.bus.publish_to(
            Topic::Workflow,
            super::INPUT_REQUIRED_EVENT,
            &ctx.workflow,
            body,
            Audience::Principal(owner.clone()),
        );
        let trusted = |a: &Audience| principal.is_none() || *a == Audience::Principal(owner.clone());
        loop {
            let evs = self.bus.read_resuming(&[Topic::Workflow], from, 256).events;
            for e in &evs {
                from = e.offset + 1;
                let for_me = e.kind == super::INPUT_EVENT
                    && e.data["run"] == json!(ctx.run)
                    && e.data.get("step").and_then(Value::as_str).is_none_or(|s| s.is_empty() || s == ctx.step);
                if for_me && trusted(&e.audience) {
                    return Ok(json!({
                        "text": e.data.get("text").cloned().unwrap_or(json!("")),
                        "data": e.data.get("data").cloned().unwrap_or(Value::Null),
                    }));
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
            self.host
                .authorize_queue(ctx.principal.as_ref().as_ref(), Action::Write, &q, "Workflow/notify")
                .map_err(|e| format!("notify: queue '{q}': {}", e.message()))?;
            let queues = self.queues.clone();
            let attrs: std::collections::BTreeMap<String, String> =
                [("workflow".to_string(), ctx.workflow.clone()), ("run".to_string(), ctx.run.clone())]
                    .into_iter()
                    .collect();
            let bytes = serde_json::to_vec(&body).unwrap_or_default();
            let id = match self.host.queue_send(&q, bytes.clone(), attrs.clone()).await {
                Some(r) => r.map_err(|e| format!("notify: queue '{q}': {e}"))?,
                None => {
                    let qn = q.clone();
                    tokio::task::spawn_blocking(move || queues.send(&qn, bytes, attrs))
                        .await
                        .map_err(|e| e.to_string())?
                        .map_err(|e| format!("notify: queue '{q}': {e}"))?
                }
            };
            out["queue"] = json!(q);
            out["message_id"] = json!(id);
        }
        Ok(out)
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

/// An event as a step output or a run's trigger.
pub(super) fn event_json(e: &Event) -> Value {
    json!({
        "offset": e.offset, "topic": e.topic.as_str(), "kind": e.kind, "subject": e.subject,
        "data": e.data, "unix_ms": e.unix_ms,
    })
}

/// Resolves once `rx` says true (never, if its sender is gone without saying so).
pub(super) async fn cancelled(mut rx: tokio::sync::watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
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

    #[test]
    fn refusals_say_so() {
        assert_eq!(skill_error(SkillError::Rejected("no".into())), "refused: no");
        assert_eq!(skill_error(SkillError::Failed("broke".into())), "broke");
    }
}
