//! AgentDB as a Model Context Protocol (MCP) server: streamable HTTP at `/mcp` on the
//! HTTP listener, behind the same credentials, permissions and request rate as gRPC.
//! `agentdb mcp` (client/mcp.rs) carries the stdio transport to it for desktop agents.
//!
//! Both protocol eras are served, without sessions (the server keeps no per-client
//! state, so any request may reach any node):
//!
//! - the handshake era (2025-11-25, 2025-06-18, 2025-03-26): `initialize` negotiates the
//!   version, then `tools/*`, `resources/*` and `ping`; notifications are accepted (202);
//! - the per-request era (2026-07-28): `server/discover`, and every request carrying its
//!   protocol version and client capabilities in `params._meta`, checked against the
//!   `MCP-Protocol-Version`, `Mcp-Method` and `Mcp-Name` headers; results are tagged
//!   `resultType` and carry the caching fields.
//!
//! Tools (tools.rs): `list_collections`, `search`, `ingest`, `remember`, `recall`,
//! `list_workflows`, `run_workflow`, `get_workflow_run` — the same code as A2A and the
//! workflow steps (`agentdb_orchestrator::skills`, run with `Services` as their host).
//! Resources (resources.rs): every collection the caller may read, as
//! `agentdb://collections/NAME`. See docs/MCP.md.

pub(crate) mod protocol;
mod resources;
mod tools;

use crate::grpc::Services;
use crate::workflows::Workflows;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::sync::Arc;

/// Where the streamable HTTP endpoint lives.
pub const PATH: &str = "/mcp";
/// Revisions reachable through `initialize`, newest first (the first is offered when a
/// client asks for one we do not speak).
pub const HANDSHAKE_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26"];
/// Revisions of the per-request era (no handshake).
pub const MODERN_VERSIONS: &[&str] = &["2026-07-28"];

/// The MCP service state shared by the HTTP handlers.
pub struct Mcp {
    svc: Services,
    /// The workflow engine (set once it has started).
    workflows: std::sync::OnceLock<Arc<Workflows>>,
    /// Largest accepted request body (base64 media included).
    max_body: usize,
    /// `workflows.ingest_dirs`: the server folders the `ingest` tool's `path` may name.
    server_dirs: Vec<std::path::PathBuf>,
}

impl Mcp {
    pub fn set_workflows(&self, w: Arc<Workflows>) {
        let _ = self.workflows.set(w);
    }
}

pub fn service(svc: Services, max_body: usize, server_dirs: Vec<std::path::PathBuf>) -> Arc<Mcp> {
    Arc::new(Mcp { svc, workflows: std::sync::OnceLock::new(), max_body, server_dirs })
}

pub fn router(st: Arc<Mcp>) -> axum::Router {
    axum::Router::new().route(PATH, axum::routing::post(post).get(no_stream).delete(no_session)).with_state(st)
}

/// JSON-RPC error codes MCP uses.
pub(crate) mod code {
    pub const PARSE_ERROR: i64 = -32700;
    pub const INVALID_REQUEST: i64 = -32600;
    pub const METHOD_NOT_FOUND: i64 = -32601;
    pub const INVALID_PARAMS: i64 = -32602;
    pub const INTERNAL_ERROR: i64 = -32603;
    /// Server-defined: no valid credentials (sent with HTTP 401).
    pub const UNAUTHENTICATED: i64 = -32001;
    /// `resources/read` of a URI that names nothing (the spec's code).
    pub const RESOURCE_NOT_FOUND: i64 = -32002;
    /// 2026-07-28: a routing header disagrees with the body.
    pub const HEADER_MISMATCH: i64 = -32020;
    /// 2026-07-28: the request's protocol version is not served (`data.supported` lists ours).
    pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;
}

/// A JSON-RPC error: code, message and optional data.
#[derive(Debug)]
pub(crate) struct RpcError {
    pub code: i64,
    pub message: String,
    pub data: Option<Value>,
}

impl RpcError {
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        RpcError { code, message: message.into(), data: None }
    }

    /// The HTTP status that goes with the error on the per-request era (the handshake era
    /// answers errors with 200, as its clients expect).
    fn http_status(&self) -> StatusCode {
        match self.code {
            code::PARSE_ERROR
            | code::INVALID_REQUEST
            | code::INVALID_PARAMS
            | code::HEADER_MISMATCH
            | code::UNSUPPORTED_PROTOCOL_VERSION => StatusCode::BAD_REQUEST,
            code::METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
            _ => StatusCode::OK,
        }
    }

    fn body(&self, id: &Value) -> Value {
        let mut e = json!({ "code": self.code, "message": self.message });
        if let Some(d) = &self.data {
            e["data"] = d.clone();
        }
        json!({ "jsonrpc": "2.0", "id": id, "error": e })
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

fn error_response(status: StatusCode, id: &Value, e: &RpcError) -> Response {
    json_response(status, &e.body(id))
}

/// The Origin of a browser request must be this server (DNS-rebinding defence, which
/// the MCP transport requires): its host and port equal to the Host header's. Requests
/// without an Origin (every non-browser client) pass.
fn origin_allowed(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else { return true };
    let Ok(origin) = origin.to_str() else { return false };
    let authority = origin.split_once("://").map_or(origin, |(_, rest)| rest).trim_end_matches('/');
    headers.get(header::HOST).and_then(|h| h.to_str().ok()).is_some_and(|host| host.eq_ignore_ascii_case(authority))
}

/// POST /mcp: one JSON-RPC message.
async fn post(State(st): State<Arc<Mcp>>, headers: HeaderMap, body: Body) -> Response {
    if !origin_allowed(&headers) {
        let e = RpcError::new(code::INVALID_REQUEST, "Origin is not this server: cross-site requests are refused");
        return error_response(StatusCode::FORBIDDEN, &Value::Null, &e);
    }
    let (who, principal) = match st.svc.security.http_caller(&headers, "MCP").await {
        Ok(c) => c,
        Err(refusal) => {
            return refusal.respond(|status, message| {
                let c = if status == StatusCode::UNAUTHORIZED { code::UNAUTHENTICATED } else { code::INTERNAL_ERROR };
                error_response(status, &Value::Null, &RpcError::new(c, message))
            })
        }
    };
    let bytes = match axum::body::to_bytes(body, st.max_body).await {
        Ok(b) => b,
        Err(_) => {
            let e = RpcError::new(
                code::INVALID_REQUEST,
                format!("request body exceeds the limit of {} bytes", st.max_body),
            );
            return error_response(StatusCode::PAYLOAD_TOO_LARGE, &Value::Null, &e);
        }
    };
    let msg: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => {
            let e = RpcError::new(code::PARSE_ERROR, format!("parse error: {e}"));
            return error_response(StatusCode::BAD_REQUEST, &Value::Null, &e);
        }
    };
    let caller = protocol::Caller { who, principal };
    match protocol::handle(&st, &caller, &headers, msg).await {
        protocol::Outcome::Accepted => StatusCode::ACCEPTED.into_response(),
        protocol::Outcome::Result(body) => json_response(StatusCode::OK, &body),
        protocol::Outcome::Error { id, error, modern } => {
            let status = if modern { error.http_status() } else { StatusCode::OK };
            // A malformed envelope is a bad request in either era.
            let status = match error.code {
                code::PARSE_ERROR | code::INVALID_REQUEST => StatusCode::BAD_REQUEST,
                _ => status,
            };
            error_response(status, &id, &error)
        }
        protocol::Outcome::BadVersionHeader(v) => {
            let e = RpcError::new(
                code::INVALID_REQUEST,
                format!("MCP-Protocol-Version {v} is not supported (supported: {})", supported().join(", ")),
            );
            error_response(StatusCode::BAD_REQUEST, &Value::Null, &e)
        }
    }
}

/// Every revision served, newest first.
pub fn supported() -> Vec<&'static str> {
    MODERN_VERSIONS.iter().chain(HANDSHAKE_VERSIONS).copied().collect()
}

/// GET /mcp would open a stream for server-initiated messages; this server sends none.
async fn no_stream() -> Response {
    (StatusCode::METHOD_NOT_ALLOWED, [(header::ALLOW, "POST")], "this MCP server sends no server-initiated messages")
        .into_response()
}

/// DELETE /mcp ends a session; this server keeps none.
async fn no_session() -> Response {
    (StatusCode::METHOD_NOT_ALLOWED, [(header::ALLOW, "POST")], "this MCP server keeps no sessions").into_response()
}

#[cfg(test)]
mod tests;
