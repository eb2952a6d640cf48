//! Workflows: declarative YAML definitions of a DAG of steps (validated, versioned) and
//! their runs (per-step state, attempts, outputs), persisted in the engine's storage.
//!
//! This file parses and validates definitions, resolves `{{ ... }}` templates, keeps the
//! run state machine (which steps are ready, what a failure means under the step's retry
//! policy, when a run is over), the fair queue that orders runs across agents, and the
//! durable store. `engine.rs` drives runs and triggers, `steps.rs` executes each step kind
//! (search and ingest straight through `agentdb-retrieval`, via `crate::skills`); the
//! server's `workflows.rs` is only the gRPC face. See docs/WORKFLOWS.md.
//!
//! A definition:
//!
//! ```yaml
//! name: triage
//! agent: triager            # runs count against this agent's fair share
//! inputs: { query: "red car" }
//! triggers:
//!   - cron: "*/10 * * * *"
//!   - event: { topic: ingestion, kind: ingest.finished }
//!   - standing_query: scout.cars
//! steps:
//!   - id: find
//!     search: { collection: photos, text: "{{ inputs.query }}", top_k: 5 }
//!   - id: ask
//!     needs: [find]
//!     call_agent: { agent: summarizer, text: "Summarise {{ steps.find.output.hits }}" }
//!     timeout: 30s
//!     retry: { max_attempts: 3, backoff: 1s, factor: 2 }
//! ```

mod config;
mod engine;
mod steps;

pub use config::WorkflowsConfig;
pub use engine::Workflows;

/// Where a cluster node mirrors its workflow state so another node can take its runs
/// over (set by the server in cluster mode; see docs/CLUSTER.md). The calls come from
/// blocking threads right after the local write and must not block for long (queue the
/// work).
pub trait Mirror: Send + Sync {
    /// A run was saved on this node.
    fn run_saved(&self, run: &Run);
    /// A definition version was applied on this node.
    fn version_applied(&self, v: &Version);
    /// A workflow (every version) was deleted on this node.
    fn workflow_deleted(&self, name: &str, versions: &[u32]);
    /// At start, before an unfinished run of this node is resumed: `Some(latest)` when
    /// another node took it over while this one was away (its state as that node last
    /// recorded it), `None` when it is still this node's to run.
    fn taken_over<'a>(
        &'a self,
        run: &'a Run,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<Run>> + Send + 'a>>;
}

use crate::bus::Topic;
use crate::cron::Cron;
use crate::{record, Error, Internal, Result};
use agentdb_engine::Database;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

/// Largest definition accepted, in bytes of YAML.
pub const MAX_DEFINITION_BYTES: usize = 256 * 1024;
/// Most steps in one definition.
pub const MAX_STEPS: usize = 100;
/// Most triggers in one definition.
pub const MAX_TRIGGERS: usize = 16;
/// Largest output one step may record (JSON bytes); bigger outputs fail the step.
pub const MAX_OUTPUT_BYTES: usize = 256 * 1024;
/// Longest step or run timeout, backoff or sleep.
pub const MAX_DURATION_MS: u64 = 7 * 24 * 3600 * 1000;
/// Most attempts a retry policy may ask for.
pub const MAX_ATTEMPTS: u32 = 20;
/// Attempt errors kept per step (the oldest are dropped).
const KEPT_ATTEMPT_ERRORS: usize = 10;
/// The event an `ask` step publishes (topic `workflow`, audience: the run's principal):
/// `{run, workflow, step, prompt}`.
pub const INPUT_REQUIRED_EVENT: &str = "workflow.input_required";
/// The event that answers an `ask` step: `{run, step?, text, data}`, published for the
/// run's principal by [`Workflows::provide_input`] (an A2A continuation message).
pub const INPUT_EVENT: &str = "workflow.input";
/// A step without `timeout` gets this one.
pub const DEFAULT_STEP_TIMEOUT_MS: u64 = 5 * 60 * 1000;

// ---- durations ------------------------------------------------------------------------

/// A duration written as `250ms`, `5s`, `2m`, `1h`, `1d` or a number of milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(into = "u64")]
pub struct Dur(pub u64);

impl From<Dur> for u64 {
    fn from(d: Dur) -> u64 {
        d.0
    }
}

impl Dur {
    pub fn parse(s: &str) -> std::result::Result<Dur, String> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: f64 = num.parse().map_err(|_| format!("'{s}' is not a duration (e.g. 500ms, 5s, 2m, 1h)"))?;
        let scale = match unit.trim() {
            "" | "ms" => 1.0,
            "s" => 1e3,
            "m" => 60e3,
            "h" => 3600e3,
            "d" => 86400e3,
            u => return Err(format!("unknown duration unit '{u}' in '{s}' (ms, s, m, h, d)")),
        };
        let ms = n * scale;
        if !ms.is_finite() || ms < 0.0 || ms > MAX_DURATION_MS as f64 {
            return Err(format!("duration '{s}' is out of range (0 to 7d)"));
        }
        Ok(Dur(ms.round() as u64))
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Dur, D::Error> {
        match Value::deserialize(d)? {
            Value::Number(n) => match n.as_u64() {
                Some(ms) if ms <= MAX_DURATION_MS => Ok(Dur(ms)),
                _ => Err(serde::de::Error::custom(format!("duration {n} ms is out of range (0 to 7d)"))),
            },
            Value::String(s) => Dur::parse(&s).map_err(serde::de::Error::custom),
            other => Err(serde::de::Error::custom(format!("expected a duration like 5s, got {other}"))),
        }
    }
}

// ---- definitions ----------------------------------------------------------------------

/// A workflow definition, as written in YAML.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Definition {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// The agent whose fair share runs of this workflow count against (default: the
    /// principal that starts the run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Higher runs first (-100..100, default 0).
    #[serde(default)]
    pub priority: i32,
    /// Default inputs; a run's inputs override them key by key.
    #[serde(default)]
    pub inputs: Map<String, Value>,
    #[serde(default)]
    pub triggers: Vec<Trigger>,
    /// The whole run must finish within this (default: no limit beyond the steps').
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Dur>,
    pub steps: Vec<Step>,
}

impl Definition {
    /// The collections the definition's `search`, `ingest` and `embed` steps name
    /// literally. A templated one (`{{ inputs.c }}`) is not listed: which collection it
    /// reaches is decided per run, and the step is authorized as the run's principal.
    pub fn collections(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .steps
            .iter()
            .flat_map(|s| [&s.search, &s.ingest, &s.embed])
            .flatten()
            .filter_map(|p| p.get("collection").and_then(Value::as_str))
            .filter(|c| !c.contains("{{"))
            .map(str::to_string)
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

/// What starts a run besides an explicit `run`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "TriggerRepr", into = "TriggerRepr")]
pub enum Trigger {
    /// A 5-field cron expression, UTC.
    Cron(String),
    /// An event on the bus.
    Event(EventMatch),
    /// A match of the standing query with this id (`agent.name`).
    StandingQuery(String),
}

/// A trigger as written: a mapping with exactly one key (YAML has no externally tagged
/// enums without `!tags`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TriggerRepr {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cron: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    event: Option<EventMatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    standing_query: Option<String>,
}

impl TryFrom<TriggerRepr> for Trigger {
    type Error = String;
    fn try_from(r: TriggerRepr) -> std::result::Result<Trigger, String> {
        match (r.cron, r.event, r.standing_query) {
            (Some(c), None, None) => Ok(Trigger::Cron(c)),
            (None, Some(e), None) => Ok(Trigger::Event(e)),
            (None, None, Some(q)) => Ok(Trigger::StandingQuery(q)),
            _ => Err("a trigger has exactly one of cron, event and standing_query".into()),
        }
    }
}

impl From<Trigger> for TriggerRepr {
    fn from(t: Trigger) -> TriggerRepr {
        match t {
            Trigger::Cron(c) => TriggerRepr { cron: Some(c), ..Default::default() },
            Trigger::Event(e) => TriggerRepr { event: Some(e), ..Default::default() },
            Trigger::StandingQuery(q) => TriggerRepr { standing_query: Some(q), ..Default::default() },
        }
    }
}

/// Which bus events start a run (and which one a `wait_event` step waits for).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventMatch {
    pub topic: String,
    /// Exact event kind (e.g. `ingest.finished`); any when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Exact subject (a collection, an agent, a query id); any when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

impl EventMatch {
    pub fn matches(&self, topic: Topic, kind: &str, subject: &str) -> bool {
        self.topic == topic.as_str()
            && self.kind.as_deref().is_none_or(|k| k == kind)
            && self.subject.as_deref().is_none_or(|s| s == subject)
    }
}

/// What a failed step (after its retries) does to the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// The run fails; steps not started yet are skipped.
    #[default]
    Fail,
    /// The run goes on: dependents run, seeing `steps.<id>.error`.
    Continue,
}

/// Retries with exponential backoff: attempt n (n ≥ 2) starts `backoff × factor^(n-2)`
/// (at most `max_backoff`) after attempt n-1 failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    /// Attempts in all, the first included (1 = no retry).
    pub max_attempts: u32,
    #[serde(default = "default_backoff")]
    pub backoff: Dur,
    #[serde(default = "default_factor")]
    pub factor: f64,
    #[serde(default = "default_max_backoff")]
    pub max_backoff: Dur,
}

fn default_backoff() -> Dur {
    Dur(1000)
}
fn default_factor() -> f64 {
    2.0
}
fn default_max_backoff() -> Dur {
    Dur(60_000)
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            max_attempts: 1,
            backoff: default_backoff(),
            factor: default_factor(),
            max_backoff: default_max_backoff(),
        }
    }
}

impl Retry {
    /// The wait before attempt `next` (2, 3, ...).
    pub fn delay_ms(&self, next: u32) -> u64 {
        let exp = next.saturating_sub(2).min(60) as i32;
        let d = self.backoff.0 as f64 * self.factor.powi(exp);
        d.min(self.max_backoff.0 as f64).max(0.0) as u64
    }
}

/// One step of a workflow: an id, its dependencies, its policy and exactly one action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub id: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub needs: Vec<String>,
    /// Each attempt must finish within this (default 5m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Dur>,
    #[serde(default)]
    pub retry: Retry,
    #[serde(default)]
    pub on_failure: OnFailure,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingest: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embed: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_agent: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_event: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<Value>,
    /// Ask whoever started the run for input (over A2A: the task goes input-required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ask: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sleep: Option<Dur>,
}

/// The step kinds, with the fields each one takes (`*` = required).
pub const STEP_KINDS: [(&str, &[&str], &[&str]); 9] = [
    ("search", &["collection"], &["text", "top_k", "filter"]),
    ("ingest", &["collection"], &["text", "path", "source"]),
    ("embed", &["text"], &[]),
    ("filter", &["items"], &["min_score", "where", "limit"]),
    ("call_agent", &["agent", "text"], &["data"]),
    ("wait_event", &["topic"], &["kind", "subject"]),
    ("notify", &["message"], &["data", "queue", "subject"]),
    ("ask", &["prompt"], &[]),
    ("sleep", &[], &[]),
];

impl Step {
    /// The step's action: its kind and its (unresolved) parameters.
    pub fn action(&self) -> (&'static str, Value) {
        let all = [
            ("search", &self.search),
            ("ingest", &self.ingest),
            ("embed", &self.embed),
            ("filter", &self.filter),
            ("call_agent", &self.call_agent),
            ("wait_event", &self.wait_event),
            ("notify", &self.notify),
            ("ask", &self.ask),
        ];
        for (k, v) in all {
            if let Some(v) = v {
                return (k, v.clone());
            }
        }
        match self.sleep {
            Some(d) => ("sleep", json!(d.0)),
            None => ("none", Value::Null),
        }
    }

    fn actions_set(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        for (k, set) in [
            ("search", self.search.is_some()),
            ("ingest", self.ingest.is_some()),
            ("embed", self.embed.is_some()),
            ("filter", self.filter.is_some()),
            ("call_agent", self.call_agent.is_some()),
            ("wait_event", self.wait_event.is_some()),
            ("notify", self.notify.is_some()),
            ("ask", self.ask.is_some()),
            ("sleep", self.sleep.is_some()),
        ] {
            if set {
                out.push(k);
            }
        }
        out
    }

    pub fn timeout_ms(&self) -> u64 {
        self.timeout.map_or(DEFAULT_STEP_TIMEOUT_MS, |d| d.0)
    }
}

/// Names of workflows and ids of steps: 1-64 of `[a-z0-9_-]`, starting with a letter or digit.
pub fn validate_name(what: &str, s: &str) -> Result<()> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        && s.as_bytes()[0].is_ascii_alphanumeric();
    if !ok {
        return Err(Error::Invalid(format!(
            "{what} '{s}' is not valid: 1-64 characters of a-z, 0-9, '_' and '-', starting with a letter or digit"
        )));
    }
    Ok(())
}

/// Parse and validate a YAML definition.
pub fn parse(yaml: &str) -> Result<Definition> {
    if yaml.len() > MAX_DEFINITION_BYTES {
        return Err(Error::Invalid(format!(
            "workflow definition is {} bytes; the limit is {MAX_DEFINITION_BYTES}",
            yaml.len()
        )));
    }
    let def: Definition =
        serde_yaml::from_str(yaml).map_err(|e| Error::Invalid(format!("workflow definition: {e}")))?;
    validate(&def)?;
    Ok(def)
}

fn invalid(def: &Definition, msg: String) -> Error {
    Error::Invalid(format!("workflow '{}': {msg}", def.name))
}

/// Check a definition: names, exactly one action per step with its required fields,
/// dependencies that exist and form no cycle, templates that only refer to inputs and to
/// steps the referring step depends on, valid triggers and policies.
pub fn validate(def: &Definition) -> Result<()> {
    validate_name("workflow name", &def.name)?;
    if let Some(a) = &def.agent {
        crate::agents::validate_agent_name(a).map_err(|e| invalid(def, e.to_string()))?;
    }
    if !(-100..=100).contains(&def.priority) {
        return Err(invalid(def, format!("priority {} is out of range -100..100", def.priority)));
    }
    if def.steps.is_empty() {
        return Err(invalid(def, "has no steps".into()));
    }
    if def.steps.len() > MAX_STEPS {
        return Err(invalid(def, format!("has {} steps; the limit is {MAX_STEPS}", def.steps.len())));
    }
    if def.triggers.len() > MAX_TRIGGERS {
        return Err(invalid(def, format!("has {} triggers; the limit is {MAX_TRIGGERS}", def.triggers.len())));
    }
    for t in &def.triggers {
        match t {
            Trigger::Cron(expr) => {
                Cron::parse(expr).map_err(|e| invalid(def, format!("trigger: {e}")))?;
            }
            Trigger::Event(m) => {
                Topic::parse(&m.topic).map_err(|e| invalid(def, format!("trigger: {e}")))?;
            }
            Trigger::StandingQuery(id) if id.trim().is_empty() => {
                return Err(invalid(def, "trigger: standing_query needs a query id (agent.name)".into()));
            }
            Trigger::StandingQuery(_) => {}
        }
    }
    let mut ids = HashMap::new();
    for (i, s) in def.steps.iter().enumerate() {
        validate_name("step id", &s.id).map_err(|e| invalid(def, e.to_string()))?;
        if ids.insert(s.id.as_str(), i).is_some() {
            return Err(invalid(def, format!("two steps are called '{}'", s.id)));
        }
    }
    for s in &def.steps {
        let at = |m: String| invalid(def, format!("step '{}': {m}", s.id));
        match s.actions_set().as_slice() {
            [_] => {}
            [] => return Err(at(format!("has no action; give exactly one of {}", STEP_KINDS.map(|k| k.0).join(", ")))),
            many => return Err(at(format!("has several actions ({}); give exactly one", many.join(", ")))),
        }
        let (kind, params) = s.action();
        if kind != "sleep" {
            let Some(obj) = params.as_object() else {
                return Err(at(format!("{kind} takes a mapping of parameters")));
            };
            let (_, required, optional) = STEP_KINDS.iter().find(|k| k.0 == kind).expect("known kind");
            for r in *required {
                if obj.get(*r).is_none_or(Value::is_null) {
                    return Err(at(format!("{kind} needs '{r}'")));
                }
            }
            for k in obj.keys() {
                if !required.contains(&k.as_str()) && !optional.contains(&k.as_str()) {
                    let mut all: Vec<&str> = required.iter().chain(optional.iter()).copied().collect();
                    all.sort();
                    return Err(at(format!("{kind} has no parameter '{k}' (it takes {})", all.join(", "))));
                }
            }
            match kind {
                "wait_event" => {
                    let topic = obj["topic"].as_str().unwrap_or_default();
                    Topic::parse(topic).map_err(|e| at(e.to_string()))?;
                    if s.timeout.is_none() {
                        return Err(at("wait_event needs a timeout (how long to wait)".into()));
                    }
                }
                "ingest" if obj.get("text").is_none() == obj.get("path").is_none() => {
                    return Err(at("ingest takes exactly one of 'text' and 'path'".into()));
                }
                "call_agent" => {
                    if let Some(a) = obj["agent"].as_str().filter(|a| !a.contains("{{")) {
                        crate::agents::validate_agent_name(a).map_err(|e| at(e.to_string()))?;
                    }
                }
                _ => {}
            }
        }
        if s.retry.max_attempts == 0 || s.retry.max_attempts > MAX_ATTEMPTS {
            return Err(at(format!("retry.max_attempts must be 1..{MAX_ATTEMPTS}")));
        }
        if !(1.0..=10.0).contains(&s.retry.factor) {
            return Err(at("retry.factor must be between 1 and 10".into()));
        }
        if s.timeout.is_some_and(|t| t.0 == 0) {
            return Err(at("timeout must be more than 0".into()));
        }
        let mut seen = BTreeSet::new();
        for n in &s.needs {
            if n == &s.id {
                return Err(at("needs itself".into()));
            }
            if !ids.contains_key(n.as_str()) {
                return Err(at(format!("needs '{n}', which is not a step of this workflow")));
            }
            if !seen.insert(n) {
                return Err(at(format!("needs '{n}' twice")));
            }
        }
    }
    let order = topo_order(def)?;
    // Every template may only read inputs, the run, the trigger and the outputs of steps
    // the step (transitively) depends on.
    let mut ancestors: HashMap<&str, BTreeSet<&str>> = HashMap::new();
    for &i in &order {
        let s = &def.steps[i];
        let mut a = BTreeSet::new();
        for n in &s.needs {
            a.insert(n.as_str());
            a.extend(ancestors[n.as_str()].iter().copied());
        }
        for path in templates_in(&s.action().1) {
            let path = parse_path(&path).map_err(|e| invalid(def, format!("step '{}': {e}", s.id)))?;
            match path.first() {
                Some(Seg::Key(root)) if matches!(root.as_str(), "inputs" | "run" | "trigger" | "workflow") => {}
                Some(Seg::Key(root)) if root == "steps" => match path.get(1) {
                    Some(Seg::Key(dep)) if a.contains(dep.as_str()) => {}
                    Some(Seg::Key(dep)) => {
                        return Err(invalid(
                            def,
                            format!("step '{}' reads steps.{dep}, which it does not depend on (add it to needs)", s.id),
                        ))
                    }
                    _ => return Err(invalid(def, format!("step '{}': steps.<id> expected in a template", s.id))),
                },
                _ => {
                    return Err(invalid(
                        def,
                        format!("step '{}': a template starts with inputs, steps, run, trigger or workflow", s.id),
                    ))
                }
            }
        }
        ancestors.insert(s.id.as_str(), a);
    }
    Ok(())
}

/// Step indices in an order where every step comes after the steps it needs; an error
/// naming the steps of a cycle if there is one.
pub fn topo_order(def: &Definition) -> Result<Vec<usize>> {
    let idx: HashMap<&str, usize> = def.steps.iter().enumerate().map(|(i, s)| (s.id.as_str(), i)).collect();
    let mut indeg: Vec<usize> = def.steps.iter().map(|s| s.needs.len()).collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); def.steps.len()];
    for (i, s) in def.steps.iter().enumerate() {
        for n in &s.needs {
            children[idx[n.as_str()]].push(i);
        }
    }
    let mut ready: VecDeque<usize> = (0..def.steps.len()).filter(|&i| indeg[i] == 0).collect();
    let mut out = Vec::new();
    while let Some(i) = ready.pop_front() {
        out.push(i);
        for &c in &children[i] {
            indeg[c] -= 1;
            if indeg[c] == 0 {
                ready.push_back(c);
            }
        }
    }
    if out.len() < def.steps.len() {
        let cyc: Vec<&str> = (0..def.steps.len()).filter(|&i| indeg[i] > 0).map(|i| def.steps[i].id.as_str()).collect();
        return Err(invalid(def, format!("the steps' needs form a cycle through {}", cyc.join(", "))));
    }
    Ok(out)
}

// ---- templates --------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Key(String),
    Index(usize),
}

/// `steps.find.output.hits[0].source` → keys and indices.
fn parse_path(p: &str) -> std::result::Result<Vec<Seg>, String> {
    let mut out = Vec::new();
    for part in p.trim().split('.') {
        let (key, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if key.is_empty() && out.is_empty() {
            return Err(format!("template '{{{{ {p} }}}}' is empty or starts with an index"));
        }
        if !key.is_empty() {
            if !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
                return Err(format!("template '{{{{ {p} }}}}': '{key}' is not a field name"));
            }
            out.push(Seg::Key(key.to_string()));
        }
        while !rest.is_empty() {
            let close = rest.find(']').ok_or_else(|| format!("template '{{{{ {p} }}}}': unclosed '['"))?;
            let n: usize = rest[1..close].trim().parse().map_err(|_| format!("template '{{{{ {p} }}}}': bad index"))?;
            out.push(Seg::Index(n));
            rest = &rest[close + 1..];
            if !rest.is_empty() && !rest.starts_with('[') {
                return Err(format!("template '{{{{ {p} }}}}': unexpected '{rest}'"));
            }
        }
    }
    Ok(out)
}

/// Every `{{ path }}` in the strings of `v`.
fn templates_in(v: &Value) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) => {
                let mut rest = s.as_str();
                while let Some(i) = rest.find("{{") {
                    let Some(j) = rest[i..].find("}}") else { break };
                    out.push(rest[i + 2..i + j].trim().to_string());
                    rest = &rest[i + j + 2..];
                }
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            Value::Object(o) => o.values().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    walk(v, &mut out);
    out
}

fn lookup<'a>(ctx: &'a Value, path: &[Seg]) -> Option<&'a Value> {
    let mut cur = ctx;
    for seg in path {
        cur = match seg {
            Seg::Key(k) => cur.get(k)?,
            Seg::Index(i) => cur.get(*i)?,
        };
    }
    Some(cur)
}

/// Replace templates in `v` with values from `ctx` (`{"inputs": .., "steps": {id:
/// {"output": .., "error": ..}}, "run": .., "trigger": .., "workflow": ..}`). A string
/// that is exactly one template becomes the value itself (a list stays a list); templates
/// inside longer strings are replaced by the value's text (strings without quotes, other
/// values as JSON). A path that names nothing is an error naming it.
pub fn resolve(v: &Value, ctx: &Value) -> std::result::Result<Value, String> {
    match v {
        Value::String(s) => {
            let t = s.trim();
            if t.starts_with("{{") && t.ends_with("}}") && t.matches("{{").count() == 1 {
                let p = &t[2..t.len() - 2];
                let path = parse_path(p)?;
                return lookup(ctx, &path).cloned().ok_or_else(|| format!("'{{{{{p}}}}}' names nothing in this run"));
            }
            let mut out = String::new();
            let mut rest = s.as_str();
            while let Some(i) = rest.find("{{") {
                let Some(j) = rest[i..].find("}}") else { break };
                out.push_str(&rest[..i]);
                let p = &rest[i + 2..i + j];
                let val =
                    lookup(ctx, &parse_path(p)?).ok_or_else(|| format!("'{{{{{p}}}}}' names nothing in this run"))?;
                match val {
                    Value::String(x) => out.push_str(x),
                    other => out.push_str(&other.to_string()),
                }
                rest = &rest[i + j + 2..];
            }
            out.push_str(rest);
            Ok(Value::String(out))
        }
        Value::Array(a) => a.iter().map(|x| resolve(x, ctx)).collect::<std::result::Result<_, _>>().map(Value::Array),
        Value::Object(o) => {
            let mut m = Map::new();
            for (k, x) in o {
                m.insert(k.clone(), resolve(x, ctx)?);
            }
            Ok(Value::Object(m))
        }
        other => Ok(other.clone()),
    }
}

// ---- runs -------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Waiting for a run slot (fair queue).
    Queued,
    Running,
    Succeeded,
    Failed,
    Canceled,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Queued => "queued",
            RunState::Running => "running",
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
            RunState::Canceled => "canceled",
        }
    }
    pub fn terminal(self) -> bool {
        matches!(self, RunState::Succeeded | RunState::Failed | RunState::Canceled)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    Pending,
    Running,
    /// Failed an attempt; the next starts at `next_attempt_unix_ms`.
    Retrying,
    Succeeded,
    Failed,
    /// Not run: a step it needs failed, or the run failed or was canceled first.
    Skipped,
    Canceled,
}

impl StepState {
    pub fn as_str(self) -> &'static str {
        match self {
            StepState::Pending => "pending",
            StepState::Running => "running",
            StepState::Retrying => "retrying",
            StepState::Succeeded => "succeeded",
            StepState::Failed => "failed",
            StepState::Skipped => "skipped",
            StepState::Canceled => "canceled",
        }
    }
    pub fn terminal(self) -> bool {
        matches!(self, StepState::Succeeded | StepState::Failed | StepState::Skipped | StepState::Canceled)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRun {
    pub id: String,
    pub kind: String,
    pub state: StepState,
    pub attempts: u32,
    #[serde(default)]
    pub output: Value,
    #[serde(default)]
    pub error: String,
    /// The errors of failed attempts, oldest first (the last few).
    #[serde(default)]
    pub attempt_errors: Vec<String>,
    #[serde(default)]
    pub started_unix_ms: u64,
    #[serde(default)]
    pub finished_unix_ms: u64,
    #[serde(default)]
    pub next_attempt_unix_ms: u64,
}

/// One run of a workflow version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub id: String,
    pub workflow: String,
    pub version: u32,
    pub state: RunState,
    /// Fair-share owner: the definition's agent, or the starting principal.
    pub agent: String,
    pub priority: i32,
    pub inputs: Map<String, Value>,
    /// What started it: `{"kind": "manual"}`, `{"kind": "cron", ...}`, `{"kind": "event", "event": ...}`.
    pub trigger: Value,
    /// Who started it (a principal id; "" with authentication off): the run acts as them.
    pub principal: String,
    pub steps: Vec<StepRun>,
    #[serde(default)]
    pub error: String,
    pub created_unix_ms: u64,
    #[serde(default)]
    pub started_unix_ms: u64,
    #[serde(default)]
    pub finished_unix_ms: u64,
    /// Set by a cancel request; the executor stops the run's steps.
    #[serde(default)]
    pub cancel_requested: bool,
}

/// What a finished attempt led to.
#[derive(Debug, Clone, PartialEq)]
pub enum AttemptOutcome {
    Succeeded,
    /// Another attempt starts at this time.
    Retry {
        at_unix_ms: u64,
    },
    /// No attempts left.
    Failed,
}

impl Run {
    /// A new run of `def` (version `version`) in state `queued`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        def: &Definition,
        version: u32,
        inputs: Map<String, Value>,
        trigger: Value,
        principal: &str,
        agent: Option<&str>,
        priority: Option<i32>,
        now: u64,
    ) -> Run {
        let mut all = def.inputs.clone();
        all.extend(inputs);
        let agent = agent.map(str::to_string).or_else(|| def.agent.clone()).unwrap_or_else(|| {
            if principal.is_empty() {
                "anonymous".into()
            } else {
                principal.to_string()
            }
        });
        Run {
            id: format!("run-{:016x}", rand::random::<u64>()),
            workflow: def.name.clone(),
            version,
            state: RunState::Queued,
            agent,
            priority: priority.unwrap_or(def.priority),
            inputs: all,
            trigger,
            principal: principal.to_string(),
            steps: def
                .steps
                .iter()
                .map(|s| StepRun {
                    id: s.id.clone(),
                    kind: s.action().0.to_string(),
                    state: StepState::Pending,
                    attempts: 0,
                    output: Value::Null,
                    error: String::new(),
                    attempt_errors: Vec::new(),
                    started_unix_ms: 0,
                    finished_unix_ms: 0,
                    next_attempt_unix_ms: 0,
                })
                .collect(),
            error: String::new(),
            created_unix_ms: now,
            started_unix_ms: 0,
            finished_unix_ms: 0,
            cancel_requested: false,
        }
    }

    pub fn step(&self, id: &str) -> Option<&StepRun> {
        self.steps.iter().find(|s| s.id == id)
    }

    fn step_mut(&mut self, id: &str) -> Option<&mut StepRun> {
        self.steps.iter_mut().find(|s| s.id == id)
    }

    /// Whether a step's needs let it run: each need succeeded, or failed under
    /// `on_failure: continue`.
    fn needs_met(&self, def: &Definition, step: &Step) -> bool {
        step.needs.iter().all(|n| {
            let policy = def.steps.iter().find(|s| &s.id == n).map(|s| s.on_failure).unwrap_or_default();
            match self.step(n).map(|s| s.state) {
                Some(StepState::Succeeded) => true,
                Some(StepState::Failed) => policy == OnFailure::Continue,
                _ => false,
            }
        })
    }

    /// Steps that may start now: pending ones whose needs are met, and retrying ones
    /// whose backoff has passed. None once the run is failing or canceled.
    pub fn ready(&self, def: &Definition, now: u64) -> Vec<String> {
        if self.state.terminal() || self.cancel_requested || self.failing(def) {
            return Vec::new();
        }
        def.steps
            .iter()
            .filter(|s| match self.step(&s.id).map(|r| (r.state, r.next_attempt_unix_ms)) {
                Some((StepState::Pending, _)) => self.needs_met(def, s),
                Some((StepState::Retrying, at)) => at <= now,
                _ => false,
            })
            .map(|s| s.id.clone())
            .collect()
    }

    /// The earliest time a retrying step becomes ready, if any.
    pub fn next_wakeup(&self) -> Option<u64> {
        self.steps.iter().filter(|s| s.state == StepState::Retrying).map(|s| s.next_attempt_unix_ms).min()
    }

    /// A step failed for good under `on_failure: fail`.
    fn failing(&self, def: &Definition) -> bool {
        def.steps
            .iter()
            .any(|s| s.on_failure == OnFailure::Fail && self.step(&s.id).is_some_and(|r| r.state == StepState::Failed))
    }

    pub fn start_step(&mut self, id: &str, now: u64) {
        if self.started_unix_ms == 0 {
            self.started_unix_ms = now;
        }
        self.state = RunState::Running;
        if let Some(s) = self.step_mut(id) {
            s.state = StepState::Running;
            s.attempts += 1;
            if s.attempts == 1 {
                s.started_unix_ms = now;
            }
            s.error.clear();
        }
    }

    /// Record the end of an attempt of `id`: its output, or its error under the step's
    /// retry policy.
    pub fn finish_attempt(
        &mut self,
        def: &Definition,
        id: &str,
        result: std::result::Result<Value, String>,
        now: u64,
    ) -> AttemptOutcome {
        let retry = def.steps.iter().find(|s| s.id == id).map(|s| s.retry.clone()).unwrap_or_default();
        let canceling = self.cancel_requested;
        let Some(s) = self.step_mut(id) else { return AttemptOutcome::Failed };
        match result {
            Ok(out) => {
                s.state = StepState::Succeeded;
                s.output = out;
                s.finished_unix_ms = now;
                AttemptOutcome::Succeeded
            }
            Err(e) if canceling => {
                s.state = StepState::Canceled;
                s.error = e;
                s.finished_unix_ms = now;
                AttemptOutcome::Failed
            }
            Err(e) => {
                s.attempt_errors.push(format!("attempt {}: {e}", s.attempts));
                if s.attempt_errors.len() > KEPT_ATTEMPT_ERRORS {
                    s.attempt_errors.remove(0);
                }
                s.error = e;
                if s.attempts < retry.max_attempts {
                    let at = now + retry.delay_ms(s.attempts + 1);
                    s.state = StepState::Retrying;
                    s.next_attempt_unix_ms = at;
                    AttemptOutcome::Retry { at_unix_ms: at }
                } else {
                    s.state = StepState::Failed;
                    s.finished_unix_ms = now;
                    AttemptOutcome::Failed
                }
            }
        }
    }

    /// A step that was running when the server stopped: its attempt is lost; it starts
    /// again (counting as a failed attempt under its retry policy).
    pub fn interrupted(&mut self, def: &Definition, now: u64) -> Vec<String> {
        let running: Vec<String> =
            self.steps.iter().filter(|s| s.state == StepState::Running).map(|s| s.id.clone()).collect();
        for id in &running {
            let out =
                self.finish_attempt(def, id, Err("interrupted: the server stopped during this attempt".into()), now);
            if out == AttemptOutcome::Failed {
                // Out of attempts: it stays failed.
            } else if let Some(s) = self.step_mut(id) {
                s.next_attempt_unix_ms = now;
            }
        }
        running
    }

    /// If nothing is running and nothing more can start, finish the run: skip steps that
    /// can no longer run, and set the final state. Returns the final state when it ended.
    pub fn settle(&mut self, def: &Definition, now: u64) -> Option<RunState> {
        if self.state.terminal() {
            return Some(self.state);
        }
        if self.steps.iter().any(|s| s.state == StepState::Running) {
            return None;
        }
        let canceled = self.cancel_requested;
        let failing = self.failing(def);
        if !canceled && !failing && (!self.ready(def, u64::MAX).is_empty()) {
            return None;
        }
        for s in &mut self.steps {
            if !s.state.terminal() {
                s.state = if canceled { StepState::Canceled } else { StepState::Skipped };
                s.finished_unix_ms = now;
            }
        }
        self.state = if canceled {
            RunState::Canceled
        } else if failing {
            RunState::Failed
        } else {
            RunState::Succeeded
        };
        if self.state == RunState::Failed && self.error.is_empty() {
            if let Some(s) = def.steps.iter().find_map(|d| {
                self.step(&d.id).filter(|r| r.state == StepState::Failed && d.on_failure == OnFailure::Fail)
            }) {
                self.error = format!("step '{}' failed after {} attempt(s): {}", s.id, s.attempts, s.error);
            }
        }
        if canceled && self.error.is_empty() {
            self.error = "canceled".into();
        }
        self.finished_unix_ms = now;
        Some(self.state)
    }

    /// Fail the run now (a run timeout, a definition that vanished): running steps are
    /// marked canceled, the rest skipped.
    pub fn abort(&mut self, why: String, now: u64) {
        for s in &mut self.steps {
            if s.state == StepState::Running {
                s.state = StepState::Canceled;
                s.error = why.clone();
                s.finished_unix_ms = now;
            } else if !s.state.terminal() {
                s.state = StepState::Skipped;
                s.finished_unix_ms = now;
            }
        }
        self.state = RunState::Failed;
        self.error = why;
        self.finished_unix_ms = now;
    }

    /// The template context for a step of this run.
    pub fn context(&self, def: &Definition) -> Value {
        let mut steps = Map::new();
        for s in &self.steps {
            if s.state.terminal() {
                steps.insert(s.id.clone(), json!({ "output": s.output, "error": s.error, "state": s.state.as_str() }));
            }
        }
        json!({
            "inputs": self.inputs,
            "steps": steps,
            "run": { "id": self.id, "agent": self.agent, "version": self.version },
            "trigger": self.trigger,
            "workflow": { "name": def.name, "version": self.version },
        })
    }
}

// ---- fair queue ---------------------------------------------------------------------------

/// Runs waiting for a slot: the highest priority first; within a priority, weighted fair
/// queueing across agents (each dequeue advances the agent's virtual time by 1/weight;
/// the agent with the least virtual time goes next, FIFO within an agent). A busy agent
/// with a thousand runs queued does not delay a quiet agent's one run by more than one turn.
#[derive(Debug, Default)]
pub struct FairQueue<T> {
    classes: BTreeMap<std::cmp::Reverse<i32>, Class<T>>,
    len: usize,
}

#[derive(Debug)]
struct Class<T> {
    agents: HashMap<String, (f64, VecDeque<T>)>,
    /// The class's virtual clock: an agent that was idle restarts here.
    clock: f64,
}

impl<T> Default for Class<T> {
    fn default() -> Self {
        Class { agents: HashMap::new(), clock: 0.0 }
    }
}

impl<T> FairQueue<T> {
    pub fn new() -> Self {
        FairQueue { classes: BTreeMap::new(), len: 0 }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn push(&mut self, agent: &str, priority: i32, item: T) {
        let class = self.classes.entry(std::cmp::Reverse(priority)).or_default();
        let clock = class.clock;
        let e = class.agents.entry(agent.to_string()).or_insert_with(|| (clock, VecDeque::new()));
        if e.1.is_empty() {
            e.0 = e.0.max(clock);
        }
        e.1.push_back(item);
        self.len += 1;
    }

    /// The next item; `weight(agent)` gives each agent's share (≥ 1).
    pub fn pop(&mut self, weight: impl Fn(&str) -> u32) -> Option<(String, T)> {
        let (&key, class) = self.classes.iter_mut().next()?;
        let agent = class
            .agents
            .iter()
            .filter(|(_, (_, q))| !q.is_empty())
            .min_by(|a, b| a.1 .0.partial_cmp(&b.1 .0).unwrap_or(std::cmp::Ordering::Equal).then(a.0.cmp(b.0)))
            .map(|(a, _)| a.clone())?;
        let e = class.agents.get_mut(&agent).expect("agent present");
        let item = e.1.pop_front().expect("non-empty");
        class.clock = e.0;
        e.0 += 1.0 / weight(&agent).max(1) as f64;
        if e.1.is_empty() {
            class.agents.remove(&agent);
        }
        if class.agents.is_empty() {
            self.classes.remove(&key);
        }
        self.len -= 1;
        Some((agent, item))
    }

    /// Remove the items `keep` rejects (a canceled run).
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        let mut n = 0;
        for class in self.classes.values_mut() {
            for (_, q) in class.agents.values_mut() {
                q.retain(&mut keep);
                n += q.len();
            }
            class.agents.retain(|_, (_, q)| !q.is_empty());
        }
        self.classes.retain(|_, c| !c.agents.is_empty());
        self.len = n;
    }
}

// ---- the store ----------------------------------------------------------------------------

/// A stored definition version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Version {
    pub name: String,
    pub version: u32,
    /// The YAML as applied.
    pub source: String,
    pub sha256: String,
    pub applied_unix_ms: u64,
    /// Who applied it; triggered runs act as them.
    pub applied_by: String,
    pub definition: Definition,
}

/// Definitions (`_workflows`: every version) and runs (`_workflow_runs`).
pub struct Store {
    defs: Internal,
    runs: Internal,
    /// name → versions, oldest first.
    versions: parking_lot::RwLock<BTreeMap<String, Vec<Arc<Version>>>>,
    /// Finished runs kept (the oldest beyond this are deleted).
    keep_finished: usize,
    finished: parking_lot::Mutex<VecDeque<(u64, String)>>,
    /// Cluster mode: where runs and definitions are mirrored.
    mirror: std::sync::OnceLock<Arc<dyn Mirror>>,
}

fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

impl Store {
    /// Load every definition; `keep_finished` bounds the finished runs kept.
    pub fn open(db: Arc<Database>, keep_finished: usize) -> Result<Store> {
        let defs = Internal::open(db.clone(), "_workflows");
        let runs = Internal::open(db, "_workflow_runs");
        let mut versions: BTreeMap<String, Vec<Arc<Version>>> = BTreeMap::new();
        for (id, payload) in defs.scan()? {
            match serde_json::from_value::<Version>(payload) {
                Ok(v) => versions.entry(v.name.clone()).or_default().push(Arc::new(v)),
                Err(e) => tracing::error!(record = %id, error = %e, "unreadable workflow definition record; ignored"),
            }
        }
        for v in versions.values_mut() {
            v.sort_by_key(|x| x.version);
        }
        Ok(Store {
            defs,
            runs,
            versions: parking_lot::RwLock::new(versions),
            keep_finished: keep_finished.max(1),
            finished: parking_lot::Mutex::new(VecDeque::new()),
            mirror: std::sync::OnceLock::new(),
        })
    }

    /// Store a definition: a new version when the YAML differs from the latest one's,
    /// else the latest (`changed` false).
    pub fn apply(&self, yaml: &str, applied_by: &str, now: u64) -> Result<(Arc<Version>, bool)> {
        let def = parse(yaml)?;
        let sha = sha256_hex(yaml);
        let mut all = self.versions.write();
        let list = all.entry(def.name.clone()).or_default();
        if let Some(last) = list.last() {
            if last.sha256 == sha {
                return Ok((last.clone(), false));
            }
        }
        let v = Version {
            name: def.name.clone(),
            version: list.last().map_or(1, |l| l.version + 1),
            source: yaml.to_string(),
            sha256: sha,
            applied_unix_ms: now,
            applied_by: applied_by.to_string(),
            definition: def,
        };
        let payload = serde_json::to_value(&v).map_err(|e| Error::Invalid(e.to_string()))?;
        self.defs.upsert(vec![record(format!("{}@{}", v.name, v.version), payload)])?;
        let v = Arc::new(v);
        list.push(v.clone());
        if let Some(m) = self.mirror.get() {
            m.version_applied(&v);
        }
        Ok((v, true))
    }

    /// Cluster mode: mirror this store's runs and definitions through `m` from now on.
    pub fn set_mirror(&self, m: Arc<dyn Mirror>) {
        let _ = self.mirror.set(m);
    }

    pub fn mirror(&self) -> Option<&Arc<dyn Mirror>> {
        self.mirror.get()
    }

    /// A definition version applied on another node: stored here unless this node has
    /// that version already. Returns whether it was added.
    pub fn merge_version(&self, v: Version) -> Result<bool> {
        let mut all = self.versions.write();
        let list = all.entry(v.name.clone()).or_default();
        if list.iter().any(|x| x.version == v.version) {
            return Ok(false);
        }
        let payload = serde_json::to_value(&v).map_err(|e| Error::Invalid(e.to_string()))?;
        self.defs.upsert(vec![record(format!("{}@{}", v.name, v.version), payload)])?;
        list.push(Arc::new(v));
        list.sort_by_key(|x| x.version);
        Ok(true)
    }

    /// A version deleted on another node.
    pub fn merge_deleted(&self, name: &str, version: u32) -> Result<()> {
        let mut all = self.versions.write();
        if let Some(list) = all.get_mut(name) {
            if list.iter().any(|v| v.version == version) {
                list.retain(|v| v.version != version);
                self.defs.delete(&[format!("{name}@{version}")])?;
            }
            if list.is_empty() {
                all.remove(name);
            }
        }
        Ok(())
    }

    /// A version of a workflow (the latest when `version` is 0).
    pub fn get(&self, name: &str, version: u32) -> Result<Arc<Version>> {
        let all = self.versions.read();
        let list =
            all.get(name).filter(|l| !l.is_empty()).ok_or_else(|| Error::NotFound(format!("no workflow '{name}'")))?;
        if version == 0 {
            return Ok(list.last().expect("non-empty").clone());
        }
        list.iter()
            .find(|v| v.version == version)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("workflow '{name}' has no version {version}")))
    }

    /// The latest version of every workflow.
    pub fn latest(&self) -> Vec<Arc<Version>> {
        self.versions.read().values().filter_map(|l| l.last().cloned()).collect()
    }

    /// Every version of every workflow.
    pub fn all_versions(&self) -> Vec<Arc<Version>> {
        self.versions.read().values().flatten().cloned().collect()
    }

    /// How many versions `name` has.
    pub fn version_count(&self, name: &str) -> usize {
        self.versions.read().get(name).map_or(0, Vec::len)
    }

    /// Delete a workflow and all its versions (its runs stay until pruned).
    pub fn delete(&self, name: &str) -> Result<()> {
        let gone =
            self.versions.write().remove(name).ok_or_else(|| Error::NotFound(format!("no workflow '{name}'")))?;
        let ids: Vec<String> = gone.iter().map(|v| format!("{}@{}", v.name, v.version)).collect();
        self.defs.delete(&ids)?;
        if let Some(m) = self.mirror.get() {
            m.workflow_deleted(name, &gone.iter().map(|v| v.version).collect::<Vec<_>>());
        }
        Ok(())
    }

    /// Persist a run (a WAL record).
    pub fn save_run(&self, run: &Run) -> Result<()> {
        let payload = serde_json::to_value(run).map_err(|e| Error::Invalid(e.to_string()))?;
        self.runs.upsert(vec![record(run.id.clone(), payload)])?;
        if let Some(m) = self.mirror.get() {
            m.run_saved(run);
        }
        if run.state.terminal() {
            let mut f = self.finished.lock();
            f.push_back((run.finished_unix_ms, run.id.clone()));
            if f.len() > self.keep_finished {
                let n = f.len() - self.keep_finished;
                let old: Vec<String> = f.drain(..n).map(|(_, id)| id).collect();
                drop(f);
                self.runs.delete(&old)?;
            }
        }
        Ok(())
    }

    pub fn get_run(&self, id: &str) -> Result<Run> {
        let c = self.runs.collection().map_err(|_| Error::NotFound(format!("no workflow run '{id}'")))?;
        let got = c.get(&[id.to_string()], false)?;
        let item = got.into_iter().next().ok_or_else(|| Error::NotFound(format!("no workflow run '{id}'")))?;
        serde_json::from_value(item.payload).map_err(|e| Error::Invalid(format!("run '{id}' is unreadable: {e}")))
    }

    /// Every stored run (at start: to resume the unfinished ones and index the finished).
    pub fn load_runs(&self) -> Result<Vec<Run>> {
        let mut out = Vec::new();
        for (id, payload) in self.runs.scan()? {
            match serde_json::from_value::<Run>(payload) {
                Ok(r) => out.push(r),
                Err(e) => tracing::error!(run = %id, error = %e, "unreadable workflow run record; ignored"),
            }
        }
        out.sort_by_key(|r| r.created_unix_ms);
        let mut f = self.finished.lock();
        f.clear();
        let mut done: Vec<(u64, String)> =
            out.iter().filter(|r| r.state.terminal()).map(|r| (r.finished_unix_ms, r.id.clone())).collect();
        done.sort();
        f.extend(done);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASIC: &str = r#"
name: triage
description: find then tell
agent: triager
inputs: { query: "red car", k: 3 }
triggers:
  - cron: "*/5 * * * *"
  - event: { topic: ingestion, kind: ingest.finished }
  - standing_query: scout.cars
steps:
  - id: find
    search: { collection: photos, text: "{{ inputs.query }}", top_k: "{{inputs.k}}" }
  - id: keep
    needs: [find]
    filter: { items: "{{ steps.find.output.hits }}", min_score: 0.2 }
  - id: ask
    needs: [keep]
    call_agent: { agent: summarizer, text: "Summarise {{ steps.keep.output.items }} for run {{run.id}}" }
    timeout: 30s
    retry: { max_attempts: 3, backoff: 500ms, factor: 2 }
  - id: tell
    needs: [ask]
    on_failure: continue
    notify: { message: "done: {{ steps.ask.output.text }}" }
"#;

    fn err(yaml: &str) -> String {
        parse(yaml).unwrap_err().to_string()
    }

    #[test]
    fn parses_a_full_definition() {
        let d = parse(BASIC).unwrap();
        assert_eq!(d.steps.len(), 4);
        assert_eq!(d.steps[2].timeout, Some(Dur(30_000)));
        assert_eq!(d.steps[2].retry.max_attempts, 3);
        assert_eq!(d.steps[2].retry.delay_ms(2), 500);
        assert_eq!(d.steps[2].retry.delay_ms(3), 1000);
        assert_eq!(d.steps[3].on_failure, OnFailure::Continue);
        assert_eq!(d.triggers[2], Trigger::StandingQuery("scout.cars".into()));
        assert_eq!(d.steps[0].action().0, "search");
        assert_eq!(topo_order(&d).unwrap(), vec![0, 1, 2, 3]);
    }

    #[test]
    fn rejects_bad_definitions_with_the_reason() {
        let base = |steps: &str| format!("name: w\nsteps:\n{steps}");
        assert!(err(&base("  - id: a\n    search: {collection: c}\n  - id: a\n    sleep: 1s\n")).contains("two steps"));
        assert!(err(&base("  - id: a\n    needs: [b]\n    sleep: 1s\n  - id: b\n    needs: [a]\n    sleep: 1s\n"))
            .contains("cycle through a, b"));
        assert!(err(&base("  - id: a\n    needs: [zz]\n    sleep: 1s\n")).contains("'zz', which is not a step"));
        assert!(err(&base("  - id: a\n")).contains("has no action"));
        assert!(err(&base("  - id: a\n    sleep: 1s\n    embed: {text: x}\n")).contains("several actions"));
        assert!(err(&base("  - id: a\n    search: {text: x}\n")).contains("search needs 'collection'"));
        assert!(err(&base("  - id: a\n    search: {collection: c, topk: 3}\n")).contains("no parameter 'topk'"));
        assert!(err(&base("  - id: a\n    wait_event: {topic: ingestion}\n")).contains("needs a timeout"));
        assert!(err(&base("  - id: a\n    wait_event: {topic: nope}\n    timeout: 1s\n")).contains("unknown topic"));
        assert!(err(&base("  - id: a\n    sleep: 3 fortnights\n")).contains("unknown duration unit"));
        assert!(err(&base("  - id: a\n    ask: {question: x}\n")).contains("ask needs 'prompt'"));
        assert!(err(&base("  - id: a\n    sleep: 1s\n  - id: b\n    embed: {text: '{{ steps.a.output }}'}\n"))
            .contains("does not depend on"));
        assert!(err(&base("  - id: a\n    embed: {text: '{{ secrets.x }}'}\n")).contains("a template starts with"));
        assert!(err(&base("  - id: a\n    sleep: 1s\n    retry: {max_attempts: 0}\n")).contains("max_attempts"));
        assert!(err(&base("  - id: a\n    ingest: {collection: c}\n")).contains("exactly one of 'text' and 'path'"));
        assert!(err("name: w\ntriggers: [{cron: '61 * * * *'}]\nsteps: [{id: a, sleep: 1s}]\n").contains("cron"));
        assert!(err("name: W!\nsteps: [{id: a, sleep: 1s}]\n").contains("not valid"));
        assert!(err("name: w\nstepz: []\n").contains("unknown field"));
        assert!(err("name: w\nsteps: []\n").contains("no steps"));
        assert!(err("[1, 2").contains("workflow definition"));
    }

    #[test]
    fn templates_resolve_whole_values_and_text() {
        let ctx = json!({"inputs": {"q": "cats", "k": 3}, "steps": {"s": {"output": {"hits": [{"source": "a.jpg"}, {"source": "b.jpg"}]}}}});
        assert_eq!(resolve(&json!("{{ inputs.k }}"), &ctx).unwrap(), json!(3));
        assert_eq!(resolve(&json!("{{steps.s.output.hits}}"), &ctx).unwrap().as_array().unwrap().len(), 2);
        assert_eq!(resolve(&json!("find {{inputs.q}} x{{inputs.k}}"), &ctx).unwrap(), json!("find cats x3"));
        assert_eq!(
            resolve(&json!({"a": ["{{ steps.s.output.hits[1].source }}"]}), &ctx).unwrap(),
            json!({"a": ["b.jpg"]})
        );
        assert!(resolve(&json!("{{ inputs.nope }}"), &ctx).unwrap_err().contains("names nothing"));
    }

    fn def(yaml: &str) -> Definition {
        parse(yaml).unwrap()
    }

    #[test]
    fn runs_follow_the_dag_with_retries_and_failure_policies() {
        let d = def("name: w\nsteps:\n  - {id: a, sleep: 1ms}\n  - {id: b, sleep: 1ms}\n  - {id: c, needs: [a, b], sleep: 1ms, retry: {max_attempts: 2, backoff: 100ms}}\n  - {id: d, needs: [c], sleep: 1ms}\n");
        let mut r = Run::new(&d, 1, Map::new(), json!({"kind": "manual"}), "", None, None, 0);
        assert_eq!(r.agent, "anonymous");
        assert_eq!(r.ready(&d, 0), vec!["a", "b"]);
        r.start_step("a", 1);
        r.start_step("b", 1);
        assert!(r.ready(&d, 1).is_empty());
        assert_eq!(r.settle(&d, 1), None);
        assert_eq!(r.finish_attempt(&d, "a", Ok(json!(1)), 2), AttemptOutcome::Succeeded);
        assert_eq!(r.finish_attempt(&d, "b", Ok(json!(2)), 2), AttemptOutcome::Succeeded);
        assert_eq!(r.ready(&d, 2), vec!["c"]);
        r.start_step("c", 3);
        assert_eq!(r.finish_attempt(&d, "c", Err("boom".into()), 10), AttemptOutcome::Retry { at_unix_ms: 110 });
        assert!(r.ready(&d, 50).is_empty(), "backoff not over");
        assert_eq!(r.settle(&d, 50), None, "a retry is pending");
        assert_eq!(r.next_wakeup(), Some(110));
        assert_eq!(r.ready(&d, 110), vec!["c"]);
        r.start_step("c", 110);
        assert_eq!(r.finish_attempt(&d, "c", Err("boom again".into()), 120), AttemptOutcome::Failed);
        assert_eq!(r.settle(&d, 120), Some(RunState::Failed));
        assert_eq!(r.step("d").unwrap().state, StepState::Skipped);
        assert_eq!(r.step("c").unwrap().attempt_errors, vec!["attempt 1: boom", "attempt 2: boom again"]);
        assert!(r.error.contains("step 'c' failed after 2 attempt(s): boom again"), "{}", r.error);

        // on_failure: continue lets dependents run and the run succeed.
        let d = def(
            "name: w\nsteps:\n  - {id: a, sleep: 1ms, on_failure: continue}\n  - {id: b, needs: [a], sleep: 1ms}\n",
        );
        let mut r = Run::new(&d, 1, Map::new(), Value::Null, "key:k1", None, Some(5), 0);
        assert_eq!((r.agent.as_str(), r.priority), ("key:k1", 5));
        r.start_step("a", 0);
        assert_eq!(r.finish_attempt(&d, "a", Err("x".into()), 1), AttemptOutcome::Failed);
        assert_eq!(r.ready(&d, 1), vec!["b"]);
        r.start_step("b", 1);
        r.finish_attempt(&d, "b", Ok(Value::Null), 2);
        assert_eq!(r.settle(&d, 2), Some(RunState::Succeeded));
        assert_eq!(r.context(&d)["steps"]["a"]["error"], "x");
    }

    #[test]
    fn cancel_and_interruption() {
        let d = def(
            "name: w\nsteps:\n  - {id: a, sleep: 1ms, retry: {max_attempts: 3}}\n  - {id: b, needs: [a], sleep: 1ms}\n",
        );
        let mut r = Run::new(&d, 1, Map::new(), Value::Null, "", None, None, 0);
        r.start_step("a", 0);
        // The server stopped mid-attempt: the attempt counts as failed and runs again now.
        assert_eq!(r.interrupted(&d, 5), vec!["a"]);
        assert_eq!(r.step("a").unwrap().state, StepState::Retrying);
        assert_eq!(r.ready(&d, 5), vec!["a"]);
        r.start_step("a", 5);
        r.cancel_requested = true;
        assert_eq!(r.settle(&d, 6), None, "waits for the running step");
        r.finish_attempt(&d, "a", Err("canceled".into()), 7);
        assert_eq!(r.step("a").unwrap().state, StepState::Canceled);
        assert_eq!(r.settle(&d, 7), Some(RunState::Canceled));
        assert_eq!(r.step("b").unwrap().state, StepState::Canceled);
    }

    #[test]
    fn the_fair_queue_serves_a_quiet_agent_between_a_busy_ones_runs() {
        let mut q = FairQueue::new();
        for i in 0..100 {
            q.push("busy", 0, format!("busy-{i}"));
        }
        q.pop(|_| 1);
        q.push("quiet", 0, "quiet-0".to_string());
        let next: Vec<String> = (0..2).map(|_| q.pop(|_| 1).unwrap().1).collect();
        assert!(next.contains(&"quiet-0".to_string()), "{next:?}");
        // Priority first.
        q.push("quiet", 10, "urgent".to_string());
        assert_eq!(q.pop(|_| 1).unwrap().1, "urgent");
        // Weights: agent a (weight 3) gets three turns per turn of b.
        let mut q = FairQueue::new();
        for i in 0..8 {
            q.push("a", 0, ("a", i));
            q.push("b", 0, ("b", i));
        }
        let firsts: Vec<&str> = (0..8).map(|_| q.pop(|a| if a == "a" { 3 } else { 1 }).unwrap().1 .0).collect();
        assert_eq!(firsts.iter().filter(|x| **x == "a").count(), 6, "{firsts:?}");
        q.retain(|x| x.0 != "b");
        assert_eq!(q.len(), 2);
        assert!(q.pop(|_| 1).is_some() && q.pop(|_| 1).is_some() && q.pop(|_| 1).is_none());
    }

    #[test]
    fn the_store_versions_definitions_and_keeps_runs() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path(), Default::default()).unwrap();
        let st = Store::open(db.clone(), 2).unwrap();
        let (v1, changed) = st.apply(BASIC, "key:a", 1).unwrap();
        assert!(changed && v1.version == 1);
        let (same, changed) = st.apply(BASIC, "key:a", 2).unwrap();
        assert!(!changed && same.version == 1);
        let (v2, changed) = st.apply(&BASIC.replace("find then tell", "v2"), "key:b", 3).unwrap();
        assert!(changed && v2.version == 2);
        assert_eq!(st.get("triage", 1).unwrap().definition.description, "find then tell");
        assert_eq!(st.get("triage", 0).unwrap().version, 2);
        assert!(st.get("triage", 9).unwrap_err().to_string().contains("no version 9"));
        let d = &v2.definition;
        let mut runs = Vec::new();
        for i in 0..3 {
            let mut r = Run::new(d, 2, Map::new(), Value::Null, "", None, None, i);
            r.state = RunState::Succeeded;
            r.finished_unix_ms = i;
            st.save_run(&r).unwrap();
            runs.push(r);
        }
        let live = Run::new(d, 2, Map::new(), Value::Null, "", None, None, 9);
        st.save_run(&live).unwrap();
        assert!(st.get_run(&runs[0].id).is_err(), "the oldest finished run was pruned");
        assert_eq!(st.get_run(&live.id).unwrap(), live);
        drop(st);
        drop(db);
        let db = Database::open(dir.path(), Default::default()).unwrap();
        let st = Store::open(db, 2).unwrap();
        assert_eq!(st.latest().len(), 1);
        assert_eq!(st.version_count("triage"), 2);
        let loaded = st.load_runs().unwrap();
        assert_eq!(loaded.len(), 3);
        assert_eq!(loaded.last().unwrap().state, RunState::Queued);
        st.delete("triage").unwrap();
        assert!(st.get("triage", 0).is_err());
    }
}
