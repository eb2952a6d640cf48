//! The JSON-RPC envelope, the two protocol eras and the method dispatcher.

use super::{code, resources, tools, Mcp, RpcError, HANDSHAKE_VERSIONS, MODERN_VERSIONS};
use agentdb_orchestrator::security::Principal;
use axum::http::HeaderMap;
use serde_json::{json, Map, Value};

/// Per-request `_meta` keys of the 2026-07-28 envelope.
pub const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
pub const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
pub const META_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";
/// The HTTP headers that mirror the envelope (lower case, as `HeaderMap` keys them).
pub const PROTOCOL_VERSION_HEADER: &str = "mcp-protocol-version";
pub const METHOD_HEADER: &str = "mcp-method";
pub const NAME_HEADER: &str = "mcp-name";

/// Who sent the request.
pub struct Caller {
    /// The principal's id ("local" with authentication off): whose work it is.
    pub who: String,
    pub principal: Option<Principal>,
}

/// What to answer.
pub enum Outcome {
    /// A notification or a response: HTTP 202, no body.
    Accepted,
    Result(Value),
    Error {
        id: Value,
        error: RpcError,
        /// Per-request era: the error's HTTP status follows its code.
        modern: bool,
    },
    /// A handshake-era request whose `MCP-Protocol-Version` header names a revision we
    /// do not speak: HTTP 400.
    BadVersionHeader(String),
}

/// Which era a request belongs to, and for the per-request era its version.
#[derive(Debug, Clone, PartialEq)]
pub enum Era {
    Handshake,
    Modern(String),
}

pub fn server_info() -> Value {
    json!({
        "name": "agentdb",
        "title": "AgentDB",
        "version": env!("CARGO_PKG_VERSION"),
        "description": "Multimodal retrieval engine for AI agents",
    })
}

const INSTRUCTIONS: &str = "AgentDB stores and searches text, images, audio and video. Call list_collections to see \
what you may search, search to find items by text or by a media file, ingest to add a document, remember / recall \
for your own memory, and list_workflows / run_workflow / get_workflow_run to run AgentDB workflows. Each readable \
collection is also a resource (agentdb://collections/NAME).";

fn capabilities() -> Value {
    json!({
        "tools": { "listChanged": false },
        "resources": { "subscribe": false, "listChanged": false },
    })
}

/// Handle one decoded message.
pub async fn handle(st: &Mcp, caller: &Caller, headers: &HeaderMap, msg: Value) -> Outcome {
    let bad = |id: Value, m: &str| Outcome::Error { id, error: RpcError::new(code::INVALID_REQUEST, m), modern: false };
    let Value::Object(obj) = msg else {
        return bad(Value::Null, "batches are not supported: send one JSON-RPC message per request");
    };
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return bad(obj.get("id").cloned().unwrap_or(Value::Null), "jsonrpc must be \"2.0\"");
    }
    let Some(method) = obj.get("method") else {
        // A client's response (to a server request we never send): accepted.
        return if obj.contains_key("id") && (obj.contains_key("result") || obj.contains_key("error")) {
            Outcome::Accepted
        } else {
            bad(Value::Null, "a message needs a method (request, notification) or a result or error (response)")
        };
    };
    let Some(method) = method.as_str() else { return bad(Value::Null, "method must be a string") };
    let Some(id) = obj.get("id").cloned() else {
        // A notification (initialized, cancelled, progress, roots changed): nothing to do.
        return Outcome::Accepted;
    };
    if !(id.is_string() || id.is_i64() || id.is_u64()) {
        return bad(Value::Null, "id must be a string or an integer");
    }
    let params = match obj.get("params") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => {
            return Outcome::Error {
                id,
                error: RpcError::new(code::INVALID_PARAMS, "params must be an object"),
                modern: false,
            }
        }
    };
    let era = match classify(method, &params, headers) {
        Ok(e) => e,
        Err(Classified::Rejected(error)) => return Outcome::Error { id, error, modern: true },
        Err(Classified::BadHeader(v)) => return Outcome::BadVersionHeader(v),
    };
    crate::telemetry::record_rpc_method(method);
    let modern = matches!(era, Era::Modern(_));
    let result = crate::telemetry::as_tenant(&caller.who, dispatch(st, caller, &era, method, &params)).await;
    match result {
        Ok(mut r) => {
            if modern {
                stamp_modern(method, &mut r);
            }
            Outcome::Result(json!({ "jsonrpc": "2.0", "id": id, "result": r }))
        }
        Err(error) => Outcome::Error { id, error, modern },
    }
}

enum Classified {
    Rejected(RpcError),
    BadHeader(String),
}

/// The era of a request and, for the per-request era, the checks its envelope must pass
/// (in the order the 2026-07-28 transport gives): `_meta` carries the protocol version
/// and client capabilities; the routing headers match the body; the version is served.
fn classify(method: &str, params: &Map<String, Value>, headers: &HeaderMap) -> Result<Era, Classified> {
    let meta = params.get("_meta").and_then(Value::as_object);
    let enveloped = meta.is_some_and(|m| m.contains_key(META_PROTOCOL_VERSION));
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let header_modern = header(PROTOCOL_VERSION_HEADER).is_some_and(|v| MODERN_VERSIONS.contains(&v));
    if method == "initialize" || !(enveloped || header_modern || method == "server/discover") {
        // The handshake era: a version header (sent after initialize) must be one we speak.
        if method != "initialize" {
            if let Some(v) = header(PROTOCOL_VERSION_HEADER) {
                if !HANDSHAKE_VERSIONS.contains(&v) {
                    return Err(Classified::BadHeader(v.to_string()));
                }
            }
        }
        return Ok(Era::Handshake);
    }
    let reject = |c: i64, m: String| Err(Classified::Rejected(RpcError::new(c, m)));
    let Some(meta) = meta else {
        return reject(
            code::INVALID_PARAMS,
            format!(
                "params._meta must be an object carrying {META_PROTOCOL_VERSION:?} and {META_CLIENT_CAPABILITIES:?}"
            ),
        );
    };
    let missing: Vec<&str> =
        [META_PROTOCOL_VERSION, META_CLIENT_CAPABILITIES].into_iter().filter(|k| !meta.contains_key(*k)).collect();
    if !missing.is_empty() {
        return reject(code::INVALID_PARAMS, format!("params._meta is missing {}", missing.join(", ")));
    }
    let version = &meta[META_PROTOCOL_VERSION];
    // Over HTTP the routing headers mirror the body (a stdio bridge adds them too).
    if header(PROTOCOL_VERSION_HEADER).is_none_or(|h| Some(h) != version.as_str()) {
        return reject(
            code::HEADER_MISMATCH,
            "the MCP-Protocol-Version header does not match params._meta's protocol version".into(),
        );
    }
    if header(METHOD_HEADER) != Some(method) {
        return reject(code::HEADER_MISMATCH, "the Mcp-Method header does not match the request's method".into());
    }
    let name_key = match method {
        "tools/call" => Some("name"),
        "resources/read" => Some("uri"),
        _ => None,
    };
    if let Some(k) = name_key {
        if let Some(want) = params.get(k).and_then(Value::as_str) {
            if header(NAME_HEADER).map(decode_header_value).as_deref() != Some(want) {
                return reject(code::HEADER_MISMATCH, format!("the Mcp-Name header does not match params.{k}"));
            }
        }
    }
    let Some(version) = version.as_str() else {
        return reject(code::INVALID_PARAMS, "the protocol version in params._meta must be a string".into());
    };
    if !MODERN_VERSIONS.contains(&version) {
        let mut e = RpcError::new(code::UNSUPPORTED_PROTOCOL_VERSION, "Unsupported protocol version");
        e.data = Some(json!({ "supported": MODERN_VERSIONS, "requested": version }));
        return Err(Classified::Rejected(e));
    }
    Ok(Era::Modern(version.to_string()))
}

/// A header value as the 2026-07-28 transport encodes it: plain ASCII as is, anything
/// else as `=?base64?...?=`.
pub fn decode_header_value(v: &str) -> String {
    use base64::Engine;
    if let Some(b64) = v.strip_prefix("=?base64?").and_then(|s| s.strip_suffix("?=")) {
        if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(b64) {
            return String::from_utf8_lossy(&bytes).into_owned();
        }
    }
    v.to_string()
}

/// Encode a header value the same way (used by the stdio bridge).
pub fn encode_header_value(v: &str) -> String {
    use base64::Engine;
    let plain = v.bytes().all(|b| (0x20..0x7f).contains(&b)) && v.trim() == v;
    if plain {
        v.to_string()
    } else {
        format!("=?base64?{}?=", base64::engine::general_purpose::STANDARD.encode(v.as_bytes()))
    }
}

/// The per-request era tags every result as complete, names the server, and gives the
/// listing and reading results their caching fields (immediately stale, private: what a
/// caller sees depends on who it is and changes with every write).
fn stamp_modern(method: &str, r: &mut Value) {
    let Some(obj) = r.as_object_mut() else { return };
    obj.insert("resultType".into(), json!("complete"));
    if matches!(
        method,
        "server/discover" | "tools/list" | "resources/list" | "resources/templates/list" | "resources/read"
    ) {
        obj.insert("ttlMs".into(), json!(0));
        obj.insert("cacheScope".into(), json!("private"));
    }
    let meta = obj.entry("_meta").or_insert_with(|| json!({}));
    if let Some(m) = meta.as_object_mut() {
        m.insert(META_SERVER_INFO.into(), server_info());
    }
}

async fn dispatch(
    st: &Mcp,
    caller: &Caller,
    era: &Era,
    method: &str,
    params: &Map<String, Value>,
) -> Result<Value, RpcError> {
    let p = caller.principal.as_ref();
    match (method, era) {
        ("initialize", _) => Ok(initialize(params)),
        ("server/discover", Era::Modern(_)) => Ok(json!({
            "supportedVersions": super::supported(),
            "capabilities": capabilities(),
            "serverInfo": server_info(),
            "instructions": INSTRUCTIONS,
        })),
        ("ping", _) => Ok(json!({})),
        ("tools/list", _) => Ok(json!({ "tools": tools::catalogue() })),
        ("tools/call", _) => {
            let Some(name) = params.get("name").and_then(Value::as_str) else {
                return Err(RpcError::new(code::INVALID_PARAMS, "tools/call needs params.name, the tool to call"));
            };
            let args = match params.get("arguments") {
                None | Some(Value::Null) => Map::new(),
                Some(Value::Object(m)) => m.clone(),
                Some(_) => return Err(RpcError::new(code::INVALID_PARAMS, "params.arguments must be an object")),
            };
            tools::call(st, p, name, &args).await
        }
        ("resources/list", _) => resources::list(st, p, params).await,
        ("resources/templates/list", _) => Ok(resources::templates()),
        ("resources/read", _) => resources::read(st, p, params).await,
        _ => Err(RpcError::new(
            code::METHOD_NOT_FOUND,
            format!("method '{method}' is not served by AgentDB's MCP server"),
        )),
    }
}

/// The handshake: the client's revision when we speak it, else our newest.
fn initialize(params: &Map<String, Value>) -> Value {
    let asked = params.get("protocolVersion").and_then(Value::as_str).unwrap_or_default();
    let version = if HANDSHAKE_VERSIONS.contains(&asked) { asked } else { HANDSHAKE_VERSIONS[0] };
    json!({
        "protocolVersion": version,
        "capabilities": capabilities(),
        "serverInfo": server_info(),
        "instructions": INSTRUCTIONS,
    })
}
