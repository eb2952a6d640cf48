//! Push notifications: configs, their checks, and the per-task delivery worker.

use super::errors::*;
use super::model::*;
use super::params::*;
use super::A2a;
use axum::http::{HeaderMap, HeaderValue};
use serde_json::{json, Map, Value};
use std::net::{IpAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

// ---- push notifications ---------------------------------------------------------------

/// Push-notification configs per task, and per principal across all its tasks.
pub const MAX_PUSH_CONFIGS_PER_TASK: usize = 10;
pub const MAX_PUSH_CONFIGS_PER_OWNER: usize = 1_000;
/// Whole-request timeout of one notification POST.
pub const PUSH_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts per notification and target; the delay before a retry starts at
/// [`PUSH_BACKOFF`] and doubles.
pub const PUSH_ATTEMPTS: u32 = 3;
pub(super) const PUSH_BACKOFF: Duration = Duration::from_millis(500);
/// Notifications queued per task (for a slow target); beyond it new ones are dropped.
pub(super) const PUSH_QUEUE: usize = 32;
pub(super) const MAX_PUSH_URL: usize = 2048;
pub(super) const MAX_PUSH_SECRET: usize = 4096;
/// Whether push URLs may point at loopback, private, link-local or other non-public
/// addresses (SSRF protection). Off by default; [`ALLOW_PRIVATE_PUSH_TARGETS_ENV`] set to
/// `1`/`true` in the server's environment turns it on (tests, trusted networks). Not an
/// `AGENTDB_*` variable: those are configuration keys (config.rs), and this is not one yet.
pub const ALLOW_PRIVATE_PUSH_TARGETS: bool = false;
pub const ALLOW_PRIVATE_PUSH_TARGETS_ENV: &str = "A2A_ALLOW_PRIVATE_PUSH_TARGETS";

/// Is `ip` a public unicast address (not loopback, private, link-local, CGNAT,
/// unspecified, multicast, documentation or reserved)?
pub(super) fn public_ip(ip: IpAddr) -> bool {
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
pub(super) fn check_push_url(url: &str, allow_private: bool) -> Result<(), RpcError> {
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

pub(super) fn header_safe(what: &str, v: &str) -> Result<(), RpcError> {
    if v.len() > MAX_PUSH_SECRET || HeaderValue::from_str(v).is_err() {
        return Err(RpcError::params(format!("{what} is not a valid header value")));
    }
    Ok(())
}

/// Parse a push config object: the 1.0 `TaskPushNotificationConfig` fields or the 0.3
/// `PushNotificationConfig` (`authentication.schemes` as well as `.scheme`). An empty id
/// is filled in with the task id later.
pub(super) fn parse_push_config(
    c: &Map<String, Value>,
    d: Dialect,
    allow_private: bool,
) -> Result<PushConfig, RpcError> {
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
pub(super) fn push_room(tasks: &Tasks, owner: &str) -> Result<(), RpcError> {
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
pub(super) fn post_once(
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
pub(super) async fn deliver(
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
    pub(super) fn push_worker(&self, task_id: &str) -> mpsc::Sender<PushBatch> {
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
    pub(super) fn add_push(
        &self,
        tasks: &mut Tasks,
        task_id: &str,
        owner: &str,
        mut c: PushConfig,
    ) -> Result<(), RpcError> {
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
    pub(super) fn message_push(&self, d: Dialect, params: &Map<String, Value>) -> Result<Option<PushConfig>, RpcError> {
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
    pub(super) fn push_ids(d: Dialect, params: &Map<String, Value>) -> Result<(String, Option<String>), RpcError> {
        let (task, config) = match d {
            Dialect::V1 => (str_param(params, "taskId"), str_param(params, "id")),
            Dialect::V03 => {
                (str_param(params, "id").or(str_param(params, "taskId")), str_param(params, "pushNotificationConfigId"))
            }
        };
        let task = task.ok_or_else(|| RpcError::params("the task id is required"))?;
        Ok((task.to_string(), config.map(str::to_string)))
    }

    pub(super) fn push_set(&self, d: Dialect, ctx: &Caller, params: &Map<String, Value>) -> Result<Value, RpcError> {
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

    pub(super) fn push_get(&self, d: Dialect, ctx: &Caller, params: &Map<String, Value>) -> Result<Value, RpcError> {
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

    pub(super) fn push_list(&self, d: Dialect, ctx: &Caller, params: &Map<String, Value>) -> Result<Value, RpcError> {
        let (tid, _) = Self::push_ids(d, params)?;
        let mut tasks = self.tasks.lock();
        let t = tasks.owned(&tid, &ctx.owner)?;
        let configs: Vec<Value> = t.push.iter().map(|c| c.render(d, &tid)).collect();
        Ok(match d {
            Dialect::V1 => json!({ "configs": configs, "nextPageToken": "" }),
            Dialect::V03 => configs.into(),
        })
    }

    pub(super) fn push_delete(&self, d: Dialect, ctx: &Caller, params: &Map<String, Value>) -> Result<Value, RpcError> {
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
