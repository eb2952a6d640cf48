//! The JSON-RPC endpoint and the method dispatcher shared with the gRPC binding.

use super::errors::*;
use super::model::*;
use super::sse::*;
use super::A2a;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use tokio::sync::mpsc;

// ---- JSON-RPC -------------------------------------------------------------------------

pub(super) async fn rpc(State(st): State<Arc<A2a>>, headers: HeaderMap, body: Body) -> Response {
    let (_, principal) = match st.svc.security.http_caller(&headers, "A2A").await {
        Ok(c) => c,
        Err(refusal) => {
            return refusal.respond(|status, message| {
                let c = if status == StatusCode::UNAUTHORIZED { UNAUTHENTICATED } else { INTERNAL_ERROR };
                rpc_error(status, &Value::Null, RpcError::new(c, message))
            })
        }
    };
    let bytes = match axum::body::to_bytes(body, st.max_body).await {
        Ok(b) => b,
        Err(_) => {
            let e = RpcError::new(INVALID_REQUEST, format!("request body exceeds the limit of {} bytes", st.max_body));
            return rpc_error(StatusCode::PAYLOAD_TOO_LARGE, &Value::Null, e);
        }
    };
    let req: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => {
            return rpc_error(StatusCode::OK, &Value::Null, RpcError::new(PARSE_ERROR, format!("parse error: {e}")))
        }
    };
    let Some(obj) = req.as_object() else {
        let why = if req.is_array() { "batch requests are not supported" } else { "the request must be an object" };
        return rpc_error(StatusCode::OK, &Value::Null, RpcError::new(INVALID_REQUEST, why));
    };
    let id = obj.get("id").cloned().unwrap_or(Value::Null);
    if !(id.is_string() || id.is_number() || id.is_null()) {
        return rpc_error(
            StatusCode::OK,
            &Value::Null,
            RpcError::new(INVALID_REQUEST, "id must be a string or number"),
        );
    }
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return rpc_error(StatusCode::OK, &id, RpcError::new(INVALID_REQUEST, "jsonrpc must be \"2.0\""));
    }
    let Some(method) = obj.get("method").and_then(Value::as_str) else {
        return rpc_error(StatusCode::OK, &id, RpcError::new(INVALID_REQUEST, "method must be a string"));
    };
    if let Some(v) = headers.get("a2a-version").and_then(|v| v.to_str().ok()) {
        let v = v.trim();
        if !(v.is_empty() || v.starts_with("1.0") || v.starts_with("0.3") || v == "1") {
            let e = RpcError::new(VERSION_NOT_SUPPORTED, format!("A2A-Version {v} is not supported (1.0, 0.3)"));
            return rpc_error(StatusCode::OK, &id, e);
        }
    }
    let params = match obj.get("params") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return rpc_error(StatusCode::OK, &id, RpcError::params("params must be an object")),
    };
    crate::telemetry::record_rpc_method(method);
    let mut ctx = Caller::new(principal);
    ctx.host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).map(str::to_string);
    use Dialect::*;
    let streaming = match method {
        "SendStreamingMessage" => Some((V1, true)),
        "message/stream" => Some((V03, true)),
        "SubscribeToTask" => Some((V1, false)),
        "tasks/resubscribe" => Some((V03, false)),
        _ => None,
    };
    if let Some((d, send)) = streaming {
        return match st.open_stream(d, &ctx, send, &params) {
            Ok(values) => sse(id, values),
            Err(e) => sse_error(id, e),
        };
    }
    let result = st.dispatch(&ctx, method, &params).await;
    match result {
        Ok(r) => json_response(StatusCode::OK, &json!({ "jsonrpc": "2.0", "id": id, "result": r })),
        Err(e) => rpc_error(StatusCode::OK, &id, e),
    }
}

impl A2a {
    // ---- methods --------------------------------------------------------------------

    /// A unary (non-streaming) method, by its 1.0 or 0.3 name: the result object, in
    /// the dialect of the name (1.0: ProtoJSON, which the gRPC binding converts from).
    pub(crate) async fn dispatch(
        self: &Arc<Self>,
        ctx: &Caller,
        method: &str,
        params: &Map<String, Value>,
    ) -> Result<Value, RpcError> {
        use Dialect::*;
        match method {
            "SendMessage" => self.send(V1, ctx, params).await,
            "message/send" => self.send(V03, ctx, params).await,
            "GetTask" => self.get_task(V1, ctx, params),
            "tasks/get" => self.get_task(V03, ctx, params),
            "ListTasks" => self.list_tasks(V1, ctx, params),
            "tasks/list" => self.list_tasks(V03, ctx, params),
            "CancelTask" => self.cancel(V1, ctx, params),
            "tasks/cancel" => self.cancel(V03, ctx, params),
            "CreateTaskPushNotificationConfig" => self.push_set(V1, ctx, params),
            "tasks/pushNotificationConfig/set" => self.push_set(V03, ctx, params),
            "GetTaskPushNotificationConfig" => self.push_get(V1, ctx, params),
            "tasks/pushNotificationConfig/get" => self.push_get(V03, ctx, params),
            "ListTaskPushNotificationConfigs" | "ListTaskPushNotificationConfig" => self.push_list(V1, ctx, params),
            "tasks/pushNotificationConfig/list" => self.push_list(V03, ctx, params),
            "DeleteTaskPushNotificationConfig" => self.push_delete(V1, ctx, params),
            "tasks/pushNotificationConfig/delete" => self.push_delete(V03, ctx, params),
            "GetExtendedAgentCard" | "agent/getAuthenticatedExtendedCard" => self.extended_card(ctx).await,
            m => Err(RpcError::new(METHOD_NOT_FOUND, format!("method '{m}' not found"))),
        }
    }

    /// A 1.0 streaming method (`send`: SendStreamingMessage, else SubscribeToTask) for
    /// another transport: its `StreamResponse` objects in ProtoJSON form.
    pub(crate) fn stream_v1(
        self: &Arc<Self>,
        ctx: &Caller,
        send: bool,
        params: &Map<String, Value>,
    ) -> Result<mpsc::Receiver<Value>, RpcError> {
        self.open_stream(Dialect::V1, ctx, send, params)
    }
}
