//! Server-sent events for the streaming methods.

use super::errors::*;
use super::model::*;
use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue};
use axum::response::Response;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};

pub(super) fn sse_frame(v: &Value) -> Bytes {
    Bytes::from(format!("data: {v}\n\n"))
}

pub(super) fn sse_response(body: Body) -> Response {
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// A stream that carries only a JSON-RPC error (what a2a-sdk expects from a streaming
/// method that fails before it starts).
pub(super) fn sse_error(id: Value, e: RpcError) -> Response {
    let frame = sse_frame(&error_body(&id, &e));
    sse_response(Body::from(frame))
}

/// The answers of a streaming method, rendered in `d`: `first`, then the task's events
/// until its turn ends (completed, failed, canceled, rejected, input-required,
/// auth-required). Shared by the SSE (JSON-RPC) and gRPC bindings.
pub(super) fn stream_values(
    d: Dialect,
    first: Value,
    follow: Option<(broadcast::Receiver<Event>, String, String)>,
) -> mpsc::Receiver<Value> {
    let (tx, rx) = mpsc::channel::<Value>(16);
    // Forwarded in the request's span: a streamed response lasts until its stream ends.
    let forward = async move {
        if tx.send(first).await.is_err() {
            return;
        }
        let Some((mut events, task_id, context_id)) = follow else { return };
        loop {
            match events.recv().await {
                Ok(ev) => {
                    let end = matches!(&ev, Event::Status(s) if s.state.ends_turn());
                    if tx.send(render_event(&ev, d, &task_id, &context_id)).await.is_err() || end {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(task = %task_id, skipped = n, "A2A stream subscriber lagged");
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    };
    tokio::spawn(tracing::Instrument::in_current_span(forward));
    rx
}

/// The SSE answer of a streaming method: each value as a JSON-RPC result frame.
pub(super) fn sse(id: Value, values: mpsc::Receiver<Value>) -> Response {
    use tokio_stream::StreamExt as _;
    let frames = tokio_stream::wrappers::ReceiverStream::new(values).map(move |r| {
        Ok::<_, std::convert::Infallible>(sse_frame(&json!({ "jsonrpc": "2.0", "id": id, "result": r })))
    });
    sse_response(Body::from_stream(frames))
}
