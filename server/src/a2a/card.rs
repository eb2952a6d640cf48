//! The agent card.

use super::errors::*;
use super::A2a;
use super::RPC_PATH;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};
use std::sync::Arc;

// ---- the agent card -------------------------------------------------------------------

pub(super) async fn card(State(st): State<Arc<A2a>>, headers: HeaderMap) -> Response {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    json_response(StatusCode::OK, &st.card_for(host))
}

impl A2a {
    /// The public card as a client reaching us by `host` (the Host header) sees it.
    pub(super) fn card_for(&self, host: &str) -> Value {
        let scheme = if self.tls { "https" } else { "http" };
        // The gRPC binding: the host the client reached us by, the gRPC listener's port.
        // A URL with its scheme (`grpc://`, `grpcs://` with TLS), as clients parse it.
        let grpc_scheme = if self.tls { "grpcs" } else { "grpc" };
        let grpc = self.grpc_port.get().map(|port| format!("{grpc_scheme}://{}:{port}", host_name(host)));
        let auth = self.svc.security.auth_enabled();
        let mut card = agent_card(&format!("{scheme}://{host}{RPC_PATH}"), auth, grpc.as_deref());
        if !self.opts.text_workflow.is_empty() {
            // Plain text starts the configured workflow (a2a.text_workflow), not recall.
            if let Some(skills) = card["skills"].as_array_mut() {
                for s in skills.iter_mut().filter(|s| s["id"] == "recall") {
                    s["description"] = format!(
                        "Search the caller's memory: send a data part {{\"skill\":\"recall\"}} with the text. Plain text \
                         messages start the workflow '{}' instead (a2a.text_workflow).",
                        self.opts.text_workflow
                    )
                    .into();
                }
            }
        }
        // With authentication on, an authenticated caller can ask for its extended card.
        card["capabilities"]["extendedAgentCard"] = auth.into();
        if auth {
            card["supportsAuthenticatedExtendedCard"] = true.into();
        }
        card
    }

    /// The authenticated extended card (`GetExtendedAgentCard`): the public card plus what
    /// this caller may use — the collections it may read (in the search skill) and each
    /// workflow it may run, as a skill of its own.
    pub(super) async fn extended_card(&self, ctx: &super::model::Caller) -> Result<Value, RpcError> {
        if !self.svc.security.auth_enabled() {
            return Err(RpcError::new(
                EXTENDED_CARD_NOT_CONFIGURED,
                "there is no extended agent card: authentication is off, so every caller sees the public card",
            ));
        }
        let p = ctx.principal.as_ref();
        let mut card = self.card_for(ctx.host.as_deref().unwrap_or("localhost"));
        let (db, sec, pc) = (self.svc.db.clone(), self.svc.security.clone(), p.cloned());
        let collections: Vec<String> =
            tokio::task::spawn_blocking(move || sec.visible_collections(&db, pc.as_ref()).unwrap_or_default())
                .await
                .unwrap_or_default()
                .into_iter()
                .map(|c| c.name)
                .filter(|n| !n.starts_with("memory-"))
                .collect();
        const LISTED: usize = 50;
        let mut skills = card["skills"].as_array().cloned().unwrap_or_default();
        if let Some(search) = skills.iter_mut().find(|s| s["id"] == "search") {
            let mut names = collections.iter().take(LISTED).cloned().collect::<Vec<_>>().join(", ");
            if collections.len() > LISTED {
                names.push_str(&format!(" and {} more", collections.len() - LISTED));
            }
            let d = search["description"].as_str().unwrap_or_default().to_string();
            let what = if collections.is_empty() { "none yet".to_string() } else { names };
            search["description"] = format!("{d} Collections you may read: {what}.").into();
        }
        if let Some(w) = self.workflows.get() {
            for v in w.store().latest() {
                if !crate::workflows::definition_visible(&self.svc.security, p, &v) {
                    continue;
                }
                let example = json!({ "skill": "workflow", "workflow": v.name, "inputs": v.definition.inputs });
                skills.push(json!({
                    "id": format!("workflow:{}", v.name),
                    "name": format!("Workflow {}", v.name),
                    "description": format!(
                        "{} (version {}, {} steps; a long-running task: send {example})",
                        if v.definition.description.is_empty() { "A workflow run" } else { v.definition.description.as_str() },
                        v.version,
                        v.definition.steps.len()
                    ),
                    "tags": ["workflow", "long-running"],
                    "examples": [example.to_string()],
                    "inputModes": ["application/json", "text/plain"],
                    "outputModes": ["application/json", "text/plain"],
                }));
            }
        }
        card["skills"] = skills.into();
        Ok(card)
    }
}

/// `example.com:8080` → `example.com`; `[::1]:80` → `[::1]`.
pub(super) fn host_name(host: &str) -> &str {
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
pub(super) fn agent_card(url: &str, auth: bool, grpc: Option<&str>) -> Value {
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
                   {\"skill\":\"ingest\",\"collection\":\"NAME\"} with a file part, or with \"text\" and \"source\". \
                   Several file parts, or \"path\" naming a folder the server allows (workflows.ingest_dirs), make a \
                   long-running task: it answers once working, shows a progress artifact, takes more file parts, \
                   and can be canceled.",
                  &["ingest", "indexing"], &["{\"skill\":\"ingest\",\"collection\":\"docs\",\"text\":\"...\",\"source\":\"note.txt\"}",
                    "{\"skill\":\"ingest\",\"collection\":\"photos\",\"path\":\"/srv/media/photos\"}"]),
            skill("workflow", "Run a workflow",
                  "Start a run of a workflow defined on this server as a long-running task: it answers once the \
                   run is queued, follows it with a progress artifact (each step's state), asks for input when a \
                   step does (input-required; the next message is the answer), ends with the step outputs, and \
                   canceling it cancels the run. Send a data part \
                   {\"skill\":\"workflow\",\"workflow\":\"NAME\",\"inputs\":{...}}.",
                  &["workflow", "long-running"], &["{\"skill\":\"workflow\",\"workflow\":\"triage\",\"inputs\":{\"query\":\"red car\"}}"]),
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
