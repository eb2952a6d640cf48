//! A2A (Agent2Agent) client for workflow steps: send one message to a remote agent and
//! wait for its task to finish.
//!
//! Speaks protocol 1.0 the way the official SDK (a2a-sdk 1.x) does: JSON-RPC 2.0 POSTs to
//! the agent's endpoint with the header `A2A-Version: 1.0`, method `SendMessage` with
//! `configuration.returnImmediately = true`, then `GetTask` every poll interval until the
//! task reaches a terminal state (ProtoJSON: camelCase fields, enum names such as
//! `TASK_STATE_COMPLETED` / `ROLE_USER`, parts as `{"text": ..}` / `{"data": ..}`, and the
//! SendMessage result wrapped as `{"task": ..}` or `{"message": ..}`). An agent that
//! answers `SendMessage` with "method not found" (-32601) is spoken to in the 0.3 dialect
//! instead for the rest of the call (`message/send`, `tasks/get`, `tasks/cancel`, parts
//! and results tagged with `kind`, kebab-case states, `configuration.blocking = false`).
//!
//! HTTP is `ureq` (blocking, rustls) inside `spawn_blocking`: every request's timeout is
//! bounded by the time left to the call, redirects are not followed, no proxy is used,
//! and at most [`MAX_RESPONSE_BYTES`] of a response are read. On a timeout or a cancel the
//! task is canceled at the agent (best effort) when its id is known.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::watch;

/// The most of one response body that is read; a larger one is a protocol error.
pub const MAX_RESPONSE_BYTES: u64 = 16 << 20;
/// Time allowed to the best-effort `CancelTask` sent after a timeout or a cancel.
const CANCEL_TIMEOUT: Duration = Duration::from_secs(3);
/// Time allowed, after a cancel, to a `SendMessage` already in flight to tell the task
/// id (so that the task can be canceled at the agent too).
const CANCEL_GRACE: Duration = Duration::from_secs(2);
const METHOD_NOT_FOUND: i64 = -32601;

/// One call of a remote A2A agent.
#[derive(Debug, Clone)]
pub struct CallRequest {
    /// The agent's A2A JSON-RPC URL (http:// or https://), from its registered agent card.
    pub endpoint: String,
    /// Sent as a text part.
    pub text: String,
    /// Sent as a data part when Some.
    pub data: Option<Value>,
    /// `Authorization: Bearer <token>` when Some.
    pub bearer: Option<String>,
    /// The whole call, including polling.
    pub timeout: Duration,
    pub poll_interval: Duration,
}

/// What the agent answered.
#[derive(Debug, Clone)]
pub struct CallResult {
    /// None when the agent answered with a Message instead of a Task.
    pub task_id: Option<String>,
    /// Final state, lowercase kebab like "completed".
    pub state: String,
    /// Text parts of the artifacts (and of the final status message / direct Message),
    /// joined with "\n".
    pub text: String,
    /// Data parts of the artifacts / message.
    pub data: Vec<Value>,
    /// The final Task (or Message) JSON as received.
    pub raw: Value,
}

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// Connection refused, reset or closed mid-call, DNS, TLS.
    #[error("{0}")]
    Unreachable(String),
    #[error("the A2A call timed out after {after_ms} ms{}", task_note(.task_id))]
    Timeout { task_id: Option<String>, after_ms: u64 },
    /// Not JSON-RPC, a JSON-RPC error object, a malformed task.
    #[error("{0}")]
    Protocol(String),
    /// The task ended failed/rejected/canceled, or needs input/auth (which a workflow
    /// cannot give).
    #[error("the A2A task ended {state}: {message}")]
    Failed { state: String, message: String },
    /// The caller's cancel fired.
    #[error("the A2A call was canceled")]
    Canceled,
}

fn task_note(task_id: &Option<String>) -> String {
    match task_id {
        Some(id) => format!(" (task {id}; cancel requested)"),
        None => " (before the agent created a task)".to_string(),
    }
}

/// Call the agent: send the message, then poll its task until it ends, `req.timeout`
/// passes, or `cancel` turns true.
pub async fn call(req: CallRequest, cancel: watch::Receiver<bool>) -> Result<CallResult, CallError> {
    call_with(req, cancel, Dialect::V1).await
}

// ---- dialects ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    /// Protocol 1.0 (ProtoJSON over JSON-RPC).
    V1,
    /// Protocol 0.3.
    V03,
}

impl Dialect {
    fn version(self) -> &'static str {
        match self {
            Dialect::V1 => "1.0",
            Dialect::V03 => "0.3",
        }
    }
    fn send(self) -> &'static str {
        match self {
            Dialect::V1 => "SendMessage",
            Dialect::V03 => "message/send",
        }
    }
    fn get(self) -> &'static str {
        match self {
            Dialect::V1 => "GetTask",
            Dialect::V03 => "tasks/get",
        }
    }
    fn cancel(self) -> &'static str {
        match self {
            Dialect::V1 => "CancelTask",
            Dialect::V03 => "tasks/cancel",
        }
    }

    /// The params of SendMessage / message/send.
    fn send_params(self, text: &str, data: Option<&Value>) -> Value {
        let id = uuid::Uuid::new_v4().to_string();
        match self {
            Dialect::V1 => {
                let mut parts = vec![json!({ "text": text })];
                if let Some(d) = data {
                    parts.push(json!({ "data": d }));
                }
                json!({
                    "message": { "messageId": id, "role": "ROLE_USER", "parts": parts },
                    "configuration": { "returnImmediately": true },
                })
            }
            Dialect::V03 => {
                let mut parts = vec![json!({ "kind": "text", "text": text })];
                if let Some(d) = data {
                    // 0.3 data parts carry an object.
                    let d = if d.is_object() { d.clone() } else { json!({ "value": d }) };
                    parts.push(json!({ "kind": "data", "data": d }));
                }
                json!({
                    "message": { "kind": "message", "messageId": id, "role": "user", "parts": parts },
                    "configuration": { "blocking": false },
                })
            }
        }
    }
}

/// A task state as a lowercase kebab name: `TASK_STATE_INPUT_REQUIRED` (1.0) and
/// `input-required` (0.3) both become "input-required".
fn state_name(s: &str) -> String {
    let s = s.trim();
    let s = s.strip_prefix("TASK_STATE_").unwrap_or(s);
    let k = s.to_ascii_lowercase().replace('_', "-");
    if k == "cancelled" {
        "canceled".to_string()
    } else {
        k
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Phase {
    Completed,
    /// failed, canceled, rejected.
    Unsuccessful,
    /// input-required, auth-required.
    Interrupted,
    /// submitted, working, or anything unknown: keep polling.
    Running,
}

fn phase(state: &str) -> Phase {
    match state {
        "completed" => Phase::Completed,
        "failed" | "canceled" | "rejected" => Phase::Unsuccessful,
        "input-required" | "auth-required" => Phase::Interrupted,
        _ => Phase::Running,
    }
}

// ---- reading results --------------------------------------------------------------------

enum Reply {
    Task(Value),
    Message(Value),
}

/// A SendMessage result: 1.0 wraps it (`{"task": ..}` / `{"message": ..}`), 0.3 tags it
/// with `kind`. Both shapes are accepted whatever the dialect.
fn parse_reply(result: Value) -> Result<Reply, String> {
    let Value::Object(mut o) = result else {
        return Err(format!("the result is not an object: {}", snippet(&result.to_string())));
    };
    if let Some(t) = o.remove("task").filter(Value::is_object) {
        return Ok(Reply::Task(t));
    }
    if let Some(m) = o.remove("message").filter(Value::is_object) {
        return Ok(Reply::Message(m));
    }
    match o.get("kind").and_then(Value::as_str) {
        Some("task") => return Ok(Reply::Task(Value::Object(o))),
        Some("message") => return Ok(Reply::Message(Value::Object(o))),
        _ => {}
    }
    if o.contains_key("status") && o.contains_key("id") {
        Ok(Reply::Task(Value::Object(o)))
    } else if o.contains_key("parts") && o.contains_key("messageId") {
        Ok(Reply::Message(Value::Object(o)))
    } else {
        Err(format!("the result is neither a task nor a message: {}", snippet(&Value::Object(o).to_string())))
    }
}

/// A GetTask result: the Task itself (tolerating a `{"task": ..}` wrapper).
fn parse_task(result: Value) -> Result<Value, String> {
    match parse_reply(result)? {
        Reply::Task(t) => Ok(t),
        Reply::Message(_) => Err("GetTask answered with a message instead of a task".to_string()),
    }
}

/// The id and (kebab) state of a task.
fn task_id_state(task: &Value) -> Result<(String, String), String> {
    let id = task.get("id").and_then(Value::as_str).filter(|s| !s.is_empty());
    let state = task.pointer("/status/state").and_then(Value::as_str).filter(|s| !s.is_empty());
    match (id, state) {
        (Some(id), Some(state)) => Ok((id.to_string(), state_name(state))),
        (None, _) => Err(format!("a task without an id: {}", snippet(&task.to_string()))),
        (_, None) => Err(format!("a task without status.state: {}", snippet(&task.to_string()))),
    }
}

/// Collect the text and data parts of `parts` (skipping exact repeats of what is there).
fn collect_parts(parts: Option<&Value>, text: &mut Vec<String>, data: &mut Vec<Value>) {
    for p in parts.and_then(Value::as_array).into_iter().flatten() {
        if let Some(t) = p.get("text").and_then(Value::as_str) {
            if !text.iter().any(|x| x == t) {
                text.push(t.to_string());
            }
        } else if let Some(d) = p.get("data") {
            if !data.contains(d) {
                data.push(d.clone());
            }
        }
    }
}

fn message_text(m: Option<&Value>) -> String {
    let (mut text, mut data) = (Vec::new(), Vec::new());
    collect_parts(m.and_then(|m| m.get("parts")), &mut text, &mut data);
    text.join("\n")
}

fn task_result(task: Value, id: String, state: String) -> CallResult {
    let (mut text, mut data) = (Vec::new(), Vec::new());
    for a in task.get("artifacts").and_then(Value::as_array).into_iter().flatten() {
        collect_parts(a.get("parts"), &mut text, &mut data);
    }
    collect_parts(task.pointer("/status/message/parts"), &mut text, &mut data);
    CallResult { task_id: Some(id), state, text: text.join("\n"), data, raw: task }
}

fn message_result(m: Value) -> CallResult {
    let (mut text, mut data) = (Vec::new(), Vec::new());
    collect_parts(m.get("parts"), &mut text, &mut data);
    CallResult { task_id: None, state: "completed".to_string(), text: text.join("\n"), data, raw: m }
}

fn snippet(s: &str) -> String {
    let s = s.trim();
    match s.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

// ---- HTTP / JSON-RPC ----------------------------------------------------------------------

/// How one JSON-RPC exchange failed.
enum RpcErr {
    /// Mapped already (unreachable, protocol).
    Call(CallError),
    /// A JSON-RPC error object.
    Rpc { code: i64, message: String, http: u16 },
    /// The call's deadline passed.
    Deadline,
    /// `cancel` fired; with the response of a SendMessage in flight when it came soon.
    Canceled(Option<Value>),
}

struct Session {
    agent: ureq::Agent,
    endpoint: String,
    bearer: Option<String>,
    dialect: Dialect,
    started: Instant,
    deadline: Instant,
    cancel: watch::Receiver<bool>,
}

/// Resolves when `rx` turns true (never, if its sender is gone without that).
async fn cancelled(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            if *rx.borrow() {
                return;
            }
            std::future::pending::<()>().await;
        }
    }
}

/// One POST (blocking): the HTTP status and at most [`MAX_RESPONSE_BYTES`] of body.
fn post(
    agent: &ureq::Agent,
    url: &str,
    bearer: Option<&str>,
    version: &str,
    body: &str,
    timeout: Duration,
) -> Result<(u16, Option<String>, Vec<u8>), ureq::Error> {
    let mut req = agent
        .post(url)
        .config()
        .timeout_global(Some(timeout))
        .build()
        .header("Content-Type", "application/json")
        .header("Accept", "application/json")
        .header("A2A-Version", version);
    if let Some(t) = bearer {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    let mut resp = req.send(body)?;
    let status = resp.status().as_u16();
    let location = resp.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_string);
    let bytes = resp.body_mut().with_config().limit(MAX_RESPONSE_BYTES).read_to_vec()?;
    Ok((status, location, bytes))
}

impl Session {
    fn new(req: &CallRequest, cancel: watch::Receiver<bool>) -> Result<Session, CallError> {
        let endpoint = req.endpoint.trim().to_string();
        let lower = endpoint.to_ascii_lowercase();
        if !(lower.starts_with("http://") || lower.starts_with("https://")) || endpoint.contains(char::is_whitespace) {
            return Err(CallError::Protocol(format!(
                "the A2A endpoint '{endpoint}' is not an http:// or https:// URL"
            )));
        }
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .max_redirects(0)
                .max_redirects_will_error(false)
                .proxy(None)
                .user_agent(concat!("agentdb-a2a-client/", env!("CARGO_PKG_VERSION")))
                .build(),
        );
        let started = Instant::now();
        Ok(Session {
            agent,
            endpoint,
            bearer: req.bearer.clone(),
            dialect: Dialect::V1,
            started,
            deadline: started + req.timeout,
            cancel,
        })
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// One JSON-RPC exchange, bounded by the call's deadline (and by `cap`), abandoned
    /// when `cancel` fires (after up to [`CANCEL_GRACE`] for its answer with `grace`).
    async fn rpc(&mut self, method: &str, params: Value, cap: Option<Duration>, grace: bool) -> Result<Value, RpcErr> {
        let now = Instant::now();
        let remaining = self.deadline.saturating_duration_since(now);
        if remaining.is_zero() {
            return Err(RpcErr::Deadline);
        }
        let timeout = cap.map_or(remaining, |c| c.min(remaining));
        let body =
            json!({ "jsonrpc": "2.0", "id": uuid::Uuid::new_v4().to_string(), "method": method, "params": params })
                .to_string();
        let (agent, url, bearer, version) =
            (self.agent.clone(), self.endpoint.clone(), self.bearer.clone(), self.dialect.version());
        let mut job =
            tokio::task::spawn_blocking(move || post(&agent, &url, bearer.as_deref(), version, &body, timeout));
        // ureq enforces `timeout`; the extra second only guards against it not doing so.
        let guard = tokio::time::sleep(timeout + Duration::from_secs(1));
        let outcome = tokio::select! {
            r = &mut job => r,
            _ = guard => return Err(self.timed_out(timeout, remaining)),
            _ = cancelled(&mut self.cancel) => {
                let late = if grace {
                    match tokio::time::timeout(CANCEL_GRACE, &mut job).await {
                        Ok(Ok(Ok(r))) => self.interpret(method, r).ok(),
                        _ => None,
                    }
                } else {
                    None
                };
                return Err(RpcErr::Canceled(late));
            }
        };
        match outcome {
            Err(e) => Err(RpcErr::Call(CallError::Unreachable(format!(
                "the A2A request to {} ({method}) did not complete: {e}",
                self.endpoint
            )))),
            Ok(Err(e)) => Err(self.transport_error(method, e, timeout, remaining)),
            Ok(Ok(r)) => self.interpret(method, r),
        }
    }

    fn timed_out(&self, timeout: Duration, remaining: Duration) -> RpcErr {
        if timeout >= remaining {
            RpcErr::Deadline
        } else {
            RpcErr::Call(CallError::Unreachable(format!(
                "the A2A agent at {} did not answer within {} ms",
                self.endpoint,
                timeout.as_millis()
            )))
        }
    }

    fn transport_error(&self, method: &str, e: ureq::Error, timeout: Duration, remaining: Duration) -> RpcErr {
        let ep = &self.endpoint;
        let unreachable = |what: String| RpcErr::Call(CallError::Unreachable(format!("the A2A agent at {ep} {what}")));
        match e {
            ureq::Error::Timeout(_) => self.timed_out(timeout, remaining),
            ureq::Error::ConnectionFailed => unreachable(format!("is unreachable: the connection failed ({method})")),
            ureq::Error::HostNotFound => {
                unreachable(format!("is unreachable: its host name does not resolve ({method})"))
            }
            ureq::Error::Io(io) => {
                use std::io::ErrorKind::*;
                let what = match io.kind() {
                    ConnectionRefused => format!("is unreachable: connection refused ({method})"),
                    ConnectionReset | ConnectionAborted | UnexpectedEof | BrokenPipe => {
                        format!("closed the connection mid-call ({method}): {io}; did the agent crash?")
                    }
                    _ => format!("is unreachable ({method}): {io}"),
                };
                unreachable(what)
            }
            ureq::Error::Tls(_) | ureq::Error::Rustls(_) | ureq::Error::Pem(_) | ureq::Error::TlsRequired => {
                unreachable(format!("failed the TLS handshake ({method}): {e}"))
            }
            ureq::Error::Protocol(_) | ureq::Error::BodyStalled => {
                unreachable(format!("broke off the HTTP exchange ({method}): {e}; did the agent crash?"))
            }
            ureq::Error::BodyExceedsLimit(n) => RpcErr::Call(CallError::Protocol(format!(
                "the A2A agent at {ep} answered {method} with more than {n} bytes; refused"
            ))),
            ureq::Error::BadUri(_) | ureq::Error::Http(_) => {
                RpcErr::Call(CallError::Protocol(format!("cannot send the A2A request to {ep} ({method}): {e}")))
            }
            other => unreachable(format!("could not be called ({method}): {other}")),
        }
    }

    /// Turn an HTTP answer into the JSON-RPC `result`, or the error it carries.
    fn interpret(
        &self,
        method: &str,
        (status, location, body): (u16, Option<String>, Vec<u8>),
    ) -> Result<Value, RpcErr> {
        let ep = &self.endpoint;
        let json: Option<Value> = serde_json::from_slice(&body).ok();
        let rpc_error = json.as_ref().and_then(|v| v.get("error")).filter(|e| e.is_object()).map(|e| {
            let code = e.get("code").and_then(Value::as_i64).unwrap_or(0);
            let message = e.get("message").and_then(Value::as_str).unwrap_or("(no message)").to_string();
            (code, message)
        });
        let text = || snippet(&String::from_utf8_lossy(&body));
        if status == 401 || status == 403 {
            let sent = if self.bearer.is_some() { "the bearer token sent" } else { "no credentials (none configured)" };
            let why = rpc_error.map_or_else(text, |(c, m)| format!("{m} (JSON-RPC error {c})"));
            return Err(RpcErr::Call(CallError::Protocol(format!(
                "the A2A agent at {ep} refused the credentials (HTTP {status}, {sent}) on {method}: {why}"
            ))));
        }
        if let Some((code, message)) = rpc_error {
            return Err(RpcErr::Rpc { code, message, http: status });
        }
        if (300..400).contains(&status) {
            return Err(RpcErr::Call(CallError::Protocol(format!(
                "the A2A agent at {ep} redirected {method} (HTTP {status}) to {}; redirects are not followed, \
                 register the final URL",
                location.as_deref().unwrap_or("(no Location)")
            ))));
        }
        if matches!(status, 502..=504) {
            return Err(RpcErr::Call(CallError::Unreachable(format!(
                "the A2A agent at {ep} is unavailable: HTTP {status} on {method}: {}",
                text()
            ))));
        }
        if !(200..300).contains(&status) {
            return Err(RpcErr::Call(CallError::Protocol(format!(
                "the A2A agent at {ep} answered {method} with HTTP {status}: {}",
                text()
            ))));
        }
        match json {
            Some(Value::Object(mut o)) if o.contains_key("result") => Ok(o.remove("result").unwrap_or(Value::Null)),
            _ => Err(RpcErr::Call(CallError::Protocol(format!(
                "the A2A agent at {ep} did not answer {method} with a JSON-RPC response: {}",
                text()
            )))),
        }
    }

    /// Best-effort CancelTask (short timeout, errors ignored).
    async fn cancel_task(&mut self, id: &str) {
        let (agent, url, bearer, version) =
            (self.agent.clone(), self.endpoint.clone(), self.bearer.clone(), self.dialect.version());
        let body = json!({ "jsonrpc": "2.0", "id": uuid::Uuid::new_v4().to_string(), "method": self.dialect.cancel(),
                           "params": { "id": id } })
        .to_string();
        let job =
            tokio::task::spawn_blocking(move || post(&agent, &url, bearer.as_deref(), version, &body, CANCEL_TIMEOUT));
        let r = tokio::time::timeout(CANCEL_TIMEOUT + Duration::from_secs(1), job).await;
        tracing::debug!(endpoint = %self.endpoint, task = id, ok = matches!(r, Ok(Ok(Ok(_)))), "A2A: cancel requested");
    }

    /// Map a failed exchange to the call's error, canceling the task (when known) on a
    /// timeout or cancel.
    async fn fail(&mut self, method: &str, e: RpcErr, task_id: Option<&str>) -> CallError {
        match e {
            RpcErr::Call(c) => c,
            RpcErr::Rpc { code, message, http } => {
                let http = if http == 200 { String::new() } else { format!(" (HTTP {http})") };
                CallError::Protocol(format!(
                    "the A2A agent at {} answered {method} with JSON-RPC error {code}: {message}{http}",
                    self.endpoint
                ))
            }
            RpcErr::Deadline => {
                if let Some(id) = task_id {
                    self.cancel_task(id).await;
                }
                CallError::Timeout { task_id: task_id.map(str::to_string), after_ms: self.elapsed_ms() }
            }
            RpcErr::Canceled(late) => {
                let late_id = late.and_then(|v| parse_reply(v).ok()).and_then(|r| match r {
                    Reply::Task(t) => task_id_state(&t).ok().map(|(id, _)| id),
                    Reply::Message(_) => None,
                });
                if let Some(id) = task_id.map(str::to_string).or(late_id) {
                    self.cancel_task(&id).await;
                }
                CallError::Canceled
            }
        }
    }

    fn protocol(&self, method: &str, why: String) -> CallError {
        CallError::Protocol(format!("the A2A agent at {} answered {method} with {why}", self.endpoint))
    }
}

async fn call_with(req: CallRequest, cancel: watch::Receiver<bool>, first: Dialect) -> Result<CallResult, CallError> {
    let mut s = Session::new(&req, cancel)?;
    s.dialect = first;
    if *s.cancel.borrow() {
        return Err(CallError::Canceled);
    }

    // Send the message (falling back to 0.3 once on "method not found").
    let result = loop {
        let method = s.dialect.send();
        match s.rpc(method, s.dialect.send_params(&req.text, req.data.as_ref()), None, true).await {
            Ok(v) => break v,
            Err(RpcErr::Rpc { code: METHOD_NOT_FOUND, .. }) if s.dialect == Dialect::V1 => {
                tracing::debug!(endpoint = %s.endpoint, "A2A: SendMessage not found; using protocol 0.3");
                s.dialect = Dialect::V03;
            }
            Err(e) => return Err(s.fail(method, e, None).await),
        }
    };
    let send = s.dialect.send();
    let mut task = match parse_reply(result).map_err(|why| s.protocol(send, why))? {
        Reply::Message(m) => return Ok(message_result(m)),
        Reply::Task(t) => t,
    };
    let (task_id, _) = task_id_state(&task).map_err(|why| s.protocol(send, why))?;

    // Poll the task until it ends.
    loop {
        let (id, state) = task_id_state(&task).map_err(|why| s.protocol(s.dialect.get(), why))?;
        if id != task_id {
            return Err(s.protocol(s.dialect.get(), format!("task '{id}' when task '{task_id}' was asked for")));
        }
        match phase(&state) {
            Phase::Completed => return Ok(task_result(task, id, state)),
            Phase::Unsuccessful => {
                let said = message_text(task.pointer("/status/message"));
                let said = if said.is_empty() { "no reason given".to_string() } else { said };
                return Err(CallError::Failed {
                    message: format!("the A2A agent at {} reported task {id} {state}: {said}", s.endpoint),
                    state,
                });
            }
            Phase::Interrupted => {
                let said = message_text(task.pointer("/status/message"));
                let said = if said.is_empty() { String::new() } else { format!(": {said}") };
                let what = if state == "auth-required" { "asked for authorization" } else { "asked for input" };
                // Nothing will answer it: release the task at the agent.
                s.cancel_task(&id).await;
                return Err(CallError::Failed {
                    message: format!(
                        "the A2A agent at {} {what} (task {id}), which a workflow step cannot provide{said}",
                        s.endpoint
                    ),
                    state,
                });
            }
            Phase::Running => {}
        }
        let remaining = s.deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(s.fail(s.dialect.get(), RpcErr::Deadline, Some(&id)).await);
        }
        let wait = req.poll_interval.max(Duration::from_millis(10)).min(remaining);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = cancelled(&mut s.cancel) => return Err(s.fail(s.dialect.get(), RpcErr::Canceled(None), Some(&id)).await),
        }
        let get = s.dialect.get();
        let v = match s.rpc(get, json!({ "id": id }), None, false).await {
            Ok(v) => v,
            Err(e) => return Err(s.fail(get, e, Some(&id)).await),
        };
        task = parse_task(v).map_err(|why| s.protocol(get, why))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::process::{Child, Command, Stdio};
    use std::sync::mpsc;

    const NEEDS: &str = "python3 with a2a-sdk[http-server]==1.3.0 and uvicorn is needed for the A2A client \
                         tests: run .ci/setup.sh";

    fn free_port() -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }

    /// The Python test agent (server/tests/a2a_agent.py, shared with the server's e2e tests), killed on drop.
    struct TestAgent {
        child: Child,
        port: u16,
    }

    impl TestAgent {
        fn start(state_dir: &std::path::Path) -> TestAgent {
            let probe = Command::new("python3")
                .args(["-c", "import a2a.server.routes, starlette, sse_starlette, uvicorn"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .output();
            match probe {
                Err(e) => panic!("{NEEDS} (cannot run python3: {e})"),
                Ok(o) if !o.status.success() => {
                    panic!("{NEEDS} ({})", String::from_utf8_lossy(&o.stderr).trim())
                }
                Ok(_) => {}
            }
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../server/tests/a2a_agent.py");
            let port = free_port();
            let mut child = Command::new("python3")
                .arg(script)
                .args(["--port", &port.to_string(), "--host", "127.0.0.1", "--state-dir"])
                .arg(state_dir)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap_or_else(|e| panic!("{NEEDS} (cannot start {script}: {e})"));
            let out = child.stdout.take().unwrap();
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                    Ok(l) if l.trim() == format!("READY {port}") => break,
                    Ok(_) => {}
                    Err(_) => {
                        let _ = child.kill();
                        let st = child.wait().ok();
                        panic!("the test agent did not print READY {port} (exit: {st:?}); {NEEDS}");
                    }
                }
            }
            TestAgent { child, port }
        }

        fn url(&self) -> String {
            format!("http://127.0.0.1:{}/", self.port)
        }

        /// Wait (a few seconds at most) for the process to exit; its exit code.
        fn exited(&mut self) -> Option<i32> {
            let until = Instant::now() + Duration::from_secs(10);
            while Instant::now() < until {
                if let Some(st) = self.child.try_wait().unwrap() {
                    return Some(st.code().unwrap_or(-1));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            None
        }
    }

    impl Drop for TestAgent {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn request(endpoint: &str, text: &str, timeout_ms: u64) -> CallRequest {
        CallRequest {
            endpoint: endpoint.to_string(),
            text: text.to_string(),
            data: None,
            bearer: None,
            timeout: Duration::from_millis(timeout_ms),
            poll_interval: Duration::from_millis(100),
        }
    }

    fn never() -> watch::Receiver<bool> {
        let (tx, rx) = watch::channel(false);
        std::mem::forget(tx);
        rx
    }

    /// GetTask straight from the agent (to see what happened to a task).
    fn get_task(endpoint: &str, id: &str) -> Value {
        let body = json!({ "jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": { "id": id } }).to_string();
        let agent = ureq::Agent::new_with_config(ureq::Agent::config_builder().proxy(None).build());
        let (_, _, b) = post(&agent, endpoint, None, "1.0", &body, Duration::from_secs(5)).unwrap();
        serde_json::from_slice::<Value>(&b).unwrap()["result"].clone()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a2a_client_echo_completes_with_text_and_data() {
        let dir = tempfile::tempdir().unwrap();
        let agent = TestAgent::start(dir.path());
        let mut req = request(&agent.url(), "echo hello world", 30_000);
        req.data = Some(json!({ "k": "v", "n": 3 }));
        let r = call(req.clone(), never()).await.unwrap();
        assert_eq!(r.state, "completed");
        assert!(r.task_id.is_some());
        assert_eq!(r.text, "echo: hello world");
        assert_eq!(r.data.len(), 1, "{:?}", r.data);
        assert_eq!(r.data[0]["echo"], "hello world");
        assert_eq!(r.data[0]["attempt"].as_f64(), Some(1.0));
        assert_eq!(r.data[0]["received"]["k"], "v");
        assert_eq!(r.raw["status"]["state"], "TASK_STATE_COMPLETED");
        assert_eq!(r.raw["id"].as_str(), r.task_id.as_deref());
        // The agent counts calls with the same text.
        let r = call(req, never()).await.unwrap();
        assert_eq!(r.data[0]["attempt"].as_f64(), Some(2.0));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a2a_client_speaks_protocol_0_3() {
        let dir = tempfile::tempdir().unwrap();
        let agent = TestAgent::start(dir.path());
        let mut req = request(&agent.url(), "echo old dialect", 30_000);
        req.data = Some(json!({ "k": 1 }));
        let r = call_with(req, never(), Dialect::V03).await.unwrap();
        assert_eq!(r.state, "completed");
        assert_eq!(r.text, "echo: old dialect");
        assert_eq!(r.data[0]["received"]["k"].as_f64(), Some(1.0));
        assert_eq!(r.raw["kind"], "task");
        assert_eq!(r.raw["status"]["state"], "completed");
        let r = call_with(request(&agent.url(), "fail nope", 30_000), never(), Dialect::V03).await;
        assert!(
            matches!(&r, Err(CallError::Failed { state, message }) if state == "failed" && message.contains("nope")),
            "{r:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a2a_client_times_out_and_cancels_the_task() {
        let dir = tempfile::tempdir().unwrap();
        let agent = TestAgent::start(dir.path());
        let t0 = Instant::now();
        let r = call(request(&agent.url(), "sleep 30", 1_000), never()).await;
        let took = t0.elapsed();
        let Err(CallError::Timeout { task_id: Some(id), after_ms }) = &r else { panic!("{r:?}") };
        assert!(took < Duration::from_secs(5), "took {took:?}");
        assert!((1_000..5_000).contains(after_ms), "{after_ms}");
        let msg = r.as_ref().unwrap_err().to_string();
        assert!(msg.contains("timed out") && msg.contains(id.as_str()), "{msg}");
        // The task was canceled at the agent.
        let t = get_task(&agent.url(), id);
        assert_eq!(t["status"]["state"], "TASK_STATE_CANCELED", "{t}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a2a_client_failed_task_gives_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let agent = TestAgent::start(dir.path());
        let r = call(request(&agent.url(), "fail out of coffee", 30_000), never()).await;
        let Err(e @ CallError::Failed { state, message }) = &r else { panic!("{r:?}") };
        assert_eq!(state, "failed");
        assert!(message.contains("out of coffee") && message.contains(&agent.url()), "{message}");
        assert!(e.to_string().contains("ended failed"), "{e}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a2a_client_input_required_fails() {
        let dir = tempfile::tempdir().unwrap();
        let agent = TestAgent::start(dir.path());
        let r = call(request(&agent.url(), "ask", 30_000), never()).await;
        let Err(CallError::Failed { state, message }) = &r else { panic!("{r:?}") };
        assert_eq!(state, "input-required");
        assert!(message.contains("asked for input") && message.contains("which collection"), "{message}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a2a_client_agent_crash_is_unreachable() {
        let dir = tempfile::tempdir().unwrap();
        let mut agent = TestAgent::start(dir.path());
        let r = call(request(&agent.url(), "crash", 30_000), never()).await;
        let Err(CallError::Unreachable(m)) = &r else { panic!("{r:?}") };
        assert!(m.contains(&agent.url()), "{m}");
        assert_eq!(agent.exited(), Some(3), "the agent process should be gone");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a2a_client_flaky_agent_recovers_after_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut agent = TestAgent::start(dir.path());
        let r = call(request(&agent.url(), "flaky 1 t1", 30_000), never()).await;
        assert!(matches!(r, Err(CallError::Unreachable(_))), "{r:?}");
        assert_eq!(agent.exited(), Some(3));
        // Restarted with the same state dir, the next call gets through.
        let agent = TestAgent::start(dir.path());
        let r = call(request(&agent.url(), "flaky 1 t1", 30_000), never()).await.unwrap();
        assert_eq!(r.text, "ok after 1 failures");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a2a_client_closed_port_is_unreachable() {
        let url = format!("http://127.0.0.1:{}/", free_port());
        let t0 = Instant::now();
        let r = call(request(&url, "echo x", 10_000), never()).await;
        let Err(CallError::Unreachable(m)) = &r else { panic!("{r:?}") };
        assert!(m.contains(&url), "{m}");
        assert!(t0.elapsed() < Duration::from_secs(5));
        let r = call(request("ftp://example.com/", "echo x", 1_000), never()).await;
        assert!(matches!(r, Err(CallError::Protocol(_))), "{r:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a2a_client_cancel_during_sleep() {
        let dir = tempfile::tempdir().unwrap();
        let agent = TestAgent::start(dir.path());
        let (tx, rx) = watch::channel(false);
        let url = agent.url();
        let h = tokio::spawn(async move { call(request(&url, "sleep 30", 60_000), rx).await });
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        let t0 = Instant::now();
        tx.send(true).unwrap();
        let r = tokio::time::timeout(Duration::from_secs(10), h).await.expect("cancel is prompt").unwrap();
        assert!(matches!(r, Err(CallError::Canceled)), "{r:?}");
        assert!(t0.elapsed() < Duration::from_secs(5));
        // Already canceled: nothing is sent.
        let (_tx, rx) = watch::channel(true);
        let r = call(request(&agent.url(), "echo x", 10_000), rx).await;
        assert!(matches!(r, Err(CallError::Canceled)), "{r:?}");
    }

    /// A one-thread HTTP server answering each JSON-RPC request with `answer(method)`:
    /// (status, body). Serves `n` requests; returns its URL and the requests it saw.
    fn fake_server(
        n: usize,
        answer: impl Fn(&Value) -> (u16, String) + Send + 'static,
    ) -> (String, std::thread::JoinHandle<Vec<(String, Value)>>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", l.local_addr().unwrap());
        let h = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for _ in 0..n {
                let (mut s, _) = l.accept().unwrap();
                let mut r = BufReader::new(s.try_clone().unwrap());
                let (mut len, mut head) = (0usize, String::new());
                loop {
                    let mut line = String::new();
                    r.read_line(&mut line).unwrap();
                    if line.trim().is_empty() {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap();
                    }
                    head.push_str(&line);
                }
                let mut body = vec![0; len];
                r.read_exact(&mut body).unwrap();
                let req: Value = serde_json::from_slice(&body).unwrap();
                let (status, out) = answer(&req);
                seen.push((head, req));
                let resp = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{out}",
                    out.len()
                );
                s.write_all(resp.as_bytes()).unwrap();
            }
            seen
        });
        (url, h)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a2a_client_falls_back_to_0_3_and_reads_messages() {
        let (url, h) = fake_server(3, |req| {
            let id = req["id"].clone();
            let body = match req["method"].as_str().unwrap() {
                "SendMessage" => {
                    json!({ "jsonrpc": "2.0", "id": id, "error": { "code": -32601, "message": "Method not found" } })
                }
                "message/send" => json!({ "jsonrpc": "2.0", "id": id, "result": {
                    "kind": "task", "id": "t1", "contextId": "c1", "status": { "state": "working" } } }),
                "tasks/get" => json!({ "jsonrpc": "2.0", "id": id, "result": {
                    "kind": "task", "id": "t1", "contextId": "c1",
                    "status": { "state": "completed", "message": { "kind": "message", "messageId": "m", "role": "agent",
                        "parts": [{ "kind": "text", "text": "done" }] } },
                    "artifacts": [{ "artifactId": "a", "parts": [{ "kind": "text", "text": "done" }, { "kind": "data", "data": { "n": 1 } }] }] } }),
                m => panic!("unexpected {m}"),
            };
            (200, body.to_string())
        });
        let mut req = request(&url, "hi", 10_000);
        req.bearer = Some("s3cret".into());
        req.data = Some(json!([1, 2]));
        let r = call(req, never()).await.unwrap();
        assert_eq!((r.task_id.as_deref(), r.state.as_str(), r.text.as_str()), (Some("t1"), "completed", "done"));
        assert_eq!(r.data, vec![json!({ "n": 1 })]);
        let seen = h.join().unwrap();
        let methods: Vec<_> = seen.iter().map(|(_, r)| r["method"].as_str().unwrap().to_string()).collect();
        assert_eq!(methods, ["SendMessage", "message/send", "tasks/get"]);
        let (head, first) = &seen[0];
        let head = head.to_ascii_lowercase();
        assert!(head.contains("a2a-version: 1.0") && head.contains("authorization: bearer s3cret"), "{head}");
        assert_eq!(first["params"]["message"]["role"], "ROLE_USER");
        assert_eq!(first["params"]["message"]["parts"], json!([{ "text": "hi" }, { "data": [1, 2] }]));
        assert_eq!(first["params"]["configuration"], json!({ "returnImmediately": true }));
        assert!(seen[1].0.to_ascii_lowercase().contains("a2a-version: 0.3"));
        assert_eq!(
            seen[1].1["params"]["message"]["parts"],
            json!([{ "kind": "text", "text": "hi" }, { "kind": "data", "data": { "value": [1, 2] } }])
        );
        assert_eq!(seen[1].1["params"]["configuration"], json!({ "blocking": false }));

        // A direct Message answer (1.0 wrapper).
        let (url, _h) = fake_server(1, |req| {
            let body = json!({ "jsonrpc": "2.0", "id": req["id"], "result": { "message": {
                "messageId": "m", "role": "ROLE_AGENT", "parts": [{ "text": "hello" }, { "data": { "a": true } }] } } });
            (200, body.to_string())
        });
        let r = call(request(&url, "hi", 10_000), never()).await.unwrap();
        assert_eq!((r.task_id, r.state.as_str(), r.text.as_str()), (None, "completed", "hello"));
        assert_eq!(r.data, vec![json!({ "a": true })]);
        assert_eq!(r.raw["messageId"], "m");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a2a_client_reports_http_and_rpc_errors() {
        let (url, _h) = fake_server(1, |req| {
            let e = json!({ "jsonrpc": "2.0", "id": req["id"], "error": { "code": -32000, "message": "bad token" } });
            (401, e.to_string())
        });
        let r = call(request(&url, "hi", 10_000), never()).await;
        let Err(CallError::Protocol(m)) = &r else { panic!("{r:?}") };
        assert!(m.contains("refused the credentials") && m.contains("bad token") && m.contains(&url), "{m}");

        let (url, _h) = fake_server(1, |req| {
            let e = json!({ "jsonrpc": "2.0", "id": req["id"], "error": { "code": -32602, "message": "no parts" } });
            (200, e.to_string())
        });
        let r = call(request(&url, "hi", 10_000), never()).await;
        let Err(CallError::Protocol(m)) = &r else { panic!("{r:?}") };
        assert!(m.contains("-32602") && m.contains("no parts") && m.contains("SendMessage"), "{m}");

        let (url, _h) = fake_server(1, |_| (200, "<html>hi</html>".to_string()));
        let r = call(request(&url, "hi", 10_000), never()).await;
        assert!(
            matches!(&r, Err(CallError::Protocol(m)) if m.contains("not answer SendMessage with a JSON-RPC")),
            "{r:?}"
        );

        let (url, _h) = fake_server(1, |req| {
            (200, json!({ "jsonrpc": "2.0", "id": req["id"], "result": { "task": { "id": "t" } } }).to_string())
        });
        let r = call(request(&url, "hi", 10_000), never()).await;
        assert!(matches!(&r, Err(CallError::Protocol(m)) if m.contains("status.state")), "{r:?}");
    }

    #[test]
    fn a2a_client_state_names() {
        assert_eq!(state_name("TASK_STATE_COMPLETED"), "completed");
        assert_eq!(state_name("TASK_STATE_INPUT_REQUIRED"), "input-required");
        assert_eq!(state_name("input-required"), "input-required");
        assert_eq!(state_name("TASK_STATE_AUTH_REQUIRED"), "auth-required");
        assert_eq!(state_name("cancelled"), "canceled");
        assert_eq!(phase(&state_name("TASK_STATE_REJECTED")), Phase::Unsuccessful);
        assert_eq!(phase(&state_name("TASK_STATE_WORKING")), Phase::Running);
        assert_eq!(phase(&state_name("auth-required")), Phase::Interrupted);
        assert_eq!(phase("unknown"), Phase::Running);
    }
}
