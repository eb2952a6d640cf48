//! JSON-RPC error codes and error responses (the A2A spec's codes included).

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

// ---- JSON-RPC errors ----------------------------------------------------------------

pub(crate) const PARSE_ERROR: i64 = -32700;
pub(crate) const INVALID_REQUEST: i64 = -32600;
pub(crate) const METHOD_NOT_FOUND: i64 = -32601;
pub(crate) const INVALID_PARAMS: i64 = -32602;
pub(crate) const INTERNAL_ERROR: i64 = -32603;
/// Server-defined: the request carried no valid credentials (sent with HTTP 401).
pub(crate) const UNAUTHENTICATED: i64 = -32000;
pub(crate) const TASK_NOT_FOUND: i64 = -32001;
pub(crate) const TASK_NOT_CANCELABLE: i64 = -32002;
pub(crate) const UNSUPPORTED_OPERATION: i64 = -32004;
pub(crate) const EXTENDED_CARD_NOT_CONFIGURED: i64 = -32007;
pub(crate) const VERSION_NOT_SUPPORTED: i64 = -32009;

/// An A2A error: its JSON-RPC code (the gRPC binding maps it to a status) and message.
#[derive(Debug)]
pub(crate) struct RpcError {
    pub(crate) code: i64,
    pub(crate) message: String,
}

impl RpcError {
    pub(super) fn new(code: i64, message: impl Into<String>) -> Self {
        RpcError { code, message: message.into() }
    }
    pub(super) fn params(message: impl Into<String>) -> Self {
        Self::new(INVALID_PARAMS, message)
    }
}

pub(super) fn error_body(id: &Value, e: &RpcError) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "error": { "code": e.code, "message": e.message } })
}

pub(super) fn json_response(status: StatusCode, body: &Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

pub(super) fn rpc_error(status: StatusCode, id: &Value, e: RpcError) -> Response {
    json_response(status, &error_body(id, &e))
}
