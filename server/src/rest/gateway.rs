//! The gateway: a REST request in, its gRPC method called in-process, JSON out.

use super::{Body, Route};
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use http_body_util::BodyExt;
use prost_reflect::{
    DescriptorPool, DeserializeOptions, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, MethodDescriptor,
    ReflectMessage, SerializeOptions,
};
use serde_json::{json, Map, Value};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

type GrpcRequest = axum::http::Request<tonic::body::Body>;
type GrpcResponse = axum::http::Response<tonic::body::Body>;
type Call = Arc<dyn Fn(GrpcRequest) -> Pin<Box<dyn Future<Output = GrpcResponse> + Send>> + Send + Sync>;

/// Request headers carried to the gRPC call: credentials and trace context.
const FORWARDED: &[&str] = &["authorization", "x-api-key", "traceparent", "tracestate", "x-request-id"];

/// Calls gRPC methods in-process through the server's own routes and edge layer.
#[derive(Clone)]
pub struct Gateway {
    call: Call,
    /// Largest request body (the gRPC message limit plus a third, for base64 and JSON).
    max_body: usize,
}

pub(super) fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(agentdb_proto::FILE_DESCRIPTOR_SET).expect("the descriptor set is valid")
    })
}

/// `Service/Method` of package `agentdb.v1`.
pub(super) fn method(rpc: &str) -> MethodDescriptor {
    let (svc, m) = rpc.split_once('/').expect("Service/Method");
    pool()
        .get_service_by_name(&format!("agentdb.v1.{svc}"))
        .and_then(|s| s.methods().find(|x| x.name() == m))
        .unwrap_or_else(|| panic!("no gRPC method agentdb.v1.{rpc}"))
}

/// A REST error: the HTTP status that goes with the gRPC code, and a JSON body naming
/// the problem: `{"error": {"code": 404, "status": "NOT_FOUND", "message": "..."}}`.
pub(super) fn error(http: StatusCode, status: &str, message: impl Into<String>) -> Response {
    let body = json!({ "error": { "code": http.as_u16(), "status": status, "message": message.into() } });
    (http, axum::Json(body)).into_response()
}

fn bad_request(message: impl Into<String>) -> Response {
    error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", message)
}

/// gRPC code → HTTP status and its canonical name (the mapping Google's APIs use).
pub(super) fn http_status(code: tonic::Code) -> (StatusCode, &'static str) {
    use tonic::Code::*;
    match code {
        Ok => (StatusCode::OK, "OK"),
        Cancelled => (StatusCode::from_u16(499).expect("499"), "CANCELLED"),
        Unknown => (StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN"),
        InvalidArgument => (StatusCode::BAD_REQUEST, "INVALID_ARGUMENT"),
        DeadlineExceeded => (StatusCode::GATEWAY_TIMEOUT, "DEADLINE_EXCEEDED"),
        NotFound => (StatusCode::NOT_FOUND, "NOT_FOUND"),
        AlreadyExists => (StatusCode::CONFLICT, "ALREADY_EXISTS"),
        PermissionDenied => (StatusCode::FORBIDDEN, "PERMISSION_DENIED"),
        ResourceExhausted => (StatusCode::TOO_MANY_REQUESTS, "RESOURCE_EXHAUSTED"),
        FailedPrecondition => (StatusCode::BAD_REQUEST, "FAILED_PRECONDITION"),
        Aborted => (StatusCode::CONFLICT, "ABORTED"),
        OutOfRange => (StatusCode::BAD_REQUEST, "OUT_OF_RANGE"),
        Unimplemented => (StatusCode::NOT_IMPLEMENTED, "UNIMPLEMENTED"),
        Internal => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL"),
        Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE"),
        DataLoss => (StatusCode::INTERNAL_SERVER_ERROR, "DATA_LOSS"),
        Unauthenticated => (StatusCode::UNAUTHORIZED, "UNAUTHENTICATED"),
    }
}

/// A string field that carries JSON (`payload_json`): shown as a JSON value named
/// without the suffix (`payload`).
pub(super) fn json_alias(f: &FieldDescriptor) -> Option<String> {
    (matches!(f.kind(), Kind::String) && !f.is_list() && f.name().ends_with("_json"))
        .then(|| f.json_name().trim_end_matches("Json").to_string())
}

impl Gateway {
    pub fn new<S>(svc: S, limit: usize) -> Gateway
    where
        S: tower_service::Service<GrpcRequest, Response = GrpcResponse> + Clone + Send + Sync + 'static,
        S::Future: Send + 'static,
        S::Error: std::fmt::Debug + Send + 'static,
    {
        let call: Call = Arc::new(move |req| {
            let mut s = svc.clone();
            Box::pin(async move {
                if let Err(e) = std::future::poll_fn(|cx| s.poll_ready(cx)).await {
                    return tonic::Status::unavailable(format!("the gRPC routes are not ready: {e:?}")).into_http();
                }
                match s.call(req).await {
                    Ok(r) => r,
                    Err(e) => tonic::Status::internal(format!("in-process call failed: {e:?}")).into_http(),
                }
            })
        });
        Gateway { call, max_body: limit.saturating_add(limit / 3).saturating_add(64 * 1024) }
    }

    pub(super) async fn handle(&self, route: &'static Route, req: Request) -> Response {
        let m = method(route.rpc);
        let (mut parts, body) = req.into_parts();
        let path_params = {
            use axum::extract::FromRequestParts;
            match axum::extract::RawPathParams::from_request_parts(&mut parts, &()).await {
                Ok(p) => p,
                Err(e) => return bad_request(format!("bad path: {e}")),
            }
        };
        let bytes = match axum::body::to_bytes(body, self.max_body).await {
            Ok(b) => b,
            Err(_) => {
                return error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "INVALID_ARGUMENT",
                    format!("request body exceeds the limit of {} bytes", self.max_body),
                )
            }
        };
        let input = m.input();
        let multipart = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"));
        // The request object: body fields, then query parameters, then path parameters.
        let mut fields = Map::new();
        let mut files: Vec<(String, Bytes)> = Vec::new();
        match (route.body, multipart) {
            (Body::Files, true) | (Body::JsonOrMedia, true) => {
                match read_multipart(&parts.headers, bytes, &input, route.body == Body::Files).await {
                    Ok((f, up)) => {
                        fields = f;
                        files = up;
                    }
                    Err(e) => return bad_request(e),
                }
            }
            (Body::Files, false) => {
                return error(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "INVALID_ARGUMENT",
                    "ingest takes multipart/form-data: one file part per file",
                )
            }
            (Body::Json | Body::JsonOrMedia, false) => {
                if !bytes.iter().all(u8::is_ascii_whitespace) {
                    match serde_json::from_slice::<Value>(&bytes) {
                        Ok(Value::Object(o)) => fields = o,
                        Ok(_) => return bad_request("the request body must be a JSON object"),
                        Err(e) => return bad_request(format!("the request body is not JSON: {e}")),
                    }
                }
            }
            (Body::Json, true) => {
                return error(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "INVALID_ARGUMENT",
                    "this operation takes a JSON body (application/json)",
                )
            }
            (Body::None | Body::Stream, _) => {}
        }
        if let Some(q) = parts.uri.query() {
            let pairs: Vec<(String, String)> =
                match axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&parts.uri) {
                    Ok(p) => p.0,
                    Err(e) => return bad_request(format!("bad query string {q:?}: {e}")),
                };
            for (k, v) in pairs {
                if let Err(e) = set_text_field(&input, &mut fields, &k, &v, "query parameter") {
                    return bad_request(e);
                }
            }
        }
        for (url_param, field) in route.params {
            let Some((_, v)) = path_params.iter().find(|(k, _)| k == url_param) else { continue };
            let f = input.get_field_by_name(field).expect("a path parameter names a request field");
            let key = f.json_name().to_string();
            let given = fields.get(&key).or_else(|| fields.get(*field)).cloned();
            if let Some(g) = given.filter(|g| g.as_str() != Some(v)) {
                return bad_request(format!("{field} is {g} in the body but {v:?} in the path"));
            }
            fields.remove(*field);
            fields.insert(key, Value::String(v.to_string()));
        }
        // The gRPC request body: one message, or one per uploaded file (ingest).
        let frames = if route.body == Body::Files {
            if files.is_empty() {
                return bad_request("no files: send one multipart part with a filename per file");
            }
            let collection = fields.get("collection").and_then(Value::as_str).unwrap_or_default().to_string();
            let mut out = BytesMut::new();
            for (source, content) in files {
                use prost::Message as _;
                let msg = agentdb_proto::v1::IngestRequest {
                    collection: collection.clone(),
                    source,
                    content: content.to_vec(),
                };
                frame(&mut out, &msg.encode_to_vec());
            }
            out.freeze()
        } else {
            let mut v = Value::Object(fields);
            to_proto_json(&input, &mut v);
            let opts = DeserializeOptions::new().deny_unknown_fields(true);
            let msg = match DynamicMessage::deserialize_with_options(input.clone(), &v, &opts) {
                Ok(m) => m,
                Err(e) => return bad_request(format!("invalid {}: {e}", input.name())),
            };
            use prost::Message as _;
            let mut out = BytesMut::new();
            frame(&mut out, &msg.encode_to_vec());
            out.freeze()
        };
        if route.body == Body::Stream {
            return self.call_stream(&m, &parts.headers, frames).await;
        }
        self.call(&m, &parts.headers, frames).await
    }

    fn grpc_request(m: &MethodDescriptor, headers: &HeaderMap, frames: Bytes) -> GrpcRequest {
        let path = format!("/{}/{}", m.parent_service().full_name(), m.name());
        let mut req = axum::http::Request::post(path)
            .header(header::CONTENT_TYPE, "application/grpc")
            .header(header::TE, "trailers")
            .body(tonic::body::Body::new(http_body_util::Full::new(frames)))
            .expect("a valid request");
        for name in FORWARDED {
            for v in headers.get_all(*name) {
                req.headers_mut().append(*name, v.clone());
            }
        }
        req
    }

    /// A server-streaming method as Server-Sent Events: each reply message becomes
    /// `data: <JSON>` as it arrives; a failure before the first message is an ordinary
    /// JSON error response, one after it an `event: error` with the same JSON error
    /// body. A comment line every 15 s keeps idle connections (and proxies) open; the
    /// call ends when the client goes away (the in-process stream is dropped with the
    /// response body).
    async fn call_stream(&self, m: &MethodDescriptor, headers: &HeaderMap, frames: Bytes) -> Response {
        let resp = (self.call)(Self::grpc_request(m, headers, frames)).await;
        let (rparts, body) = resp.into_parts();
        if let Some(st) = tonic::Status::from_header_map(&rparts.headers).filter(|s| s.code() != tonic::Code::Ok) {
            return status_response(&st);
        }
        let output = m.output();
        let events = futures_util::stream::unfold(
            (http_body_util::BodyStream::new(body), BytesMut::new(), output, false),
            |(mut body, mut buf, output, done)| async move {
                use futures_util::StreamExt as _;
                if done {
                    return None;
                }
                loop {
                    // A whole message in the buffer: send it.
                    if buf.len() >= 5 {
                        let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
                        if buf[0] != 0 {
                            let e = sse_error("an unreadable gRPC frame");
                            return Some((Ok::<_, std::convert::Infallible>(e), (body, buf, output, true)));
                        }
                        if buf.len() >= 5 + len {
                            buf.advance(5);
                            let msg = buf.split_to(len).freeze();
                            let ev = match DynamicMessage::decode(output.clone(), msg)
                                .map_err(|e| e.to_string())
                                .and_then(|m| message_json(&m))
                            {
                                Ok(v) => Bytes::from(format!("data: {v}\n\n")),
                                Err(e) => sse_error(&e),
                            };
                            return Some((Ok(ev), (body, buf, output, false)));
                        }
                    }
                    match tokio::time::timeout(std::time::Duration::from_secs(15), body.next()).await {
                        Err(_) => {
                            return Some((Ok(Bytes::from_static(b": keep-alive\n\n")), (body, buf, output, false)))
                        }
                        Ok(None) => return None,
                        Ok(Some(Err(e))) => {
                            let ev = sse_error(&format!("the stream failed: {e}"));
                            return Some((Ok(ev), (body, buf, output, true)));
                        }
                        Ok(Some(Ok(frame))) => match frame.into_data() {
                            Ok(d) => buf.extend_from_slice(&d),
                            Err(frame) => {
                                let st = frame.trailers_ref().and_then(tonic::Status::from_header_map);
                                return match st.filter(|s| s.code() != tonic::Code::Ok) {
                                    Some(st) => {
                                        let (http, name) = http_status(st.code());
                                        let v = json!({ "error": { "code": http.as_u16(), "status": name, "message": st.message() } });
                                        Some((
                                            Ok(Bytes::from(format!("event: error\ndata: {v}\n\n"))),
                                            (body, buf, output, true),
                                        ))
                                    }
                                    None => None,
                                };
                            }
                        },
                    }
                }
            },
        );
        let mut r = Response::new(axum::body::Body::from_stream(events));
        let h = r.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert("x-accel-buffering", HeaderValue::from_static("no"));
        if let Some(id) = rparts.headers.get("x-request-id") {
            h.insert("x-request-id", id.clone());
        }
        r
    }

    async fn call(&self, m: &MethodDescriptor, headers: &HeaderMap, frames: Bytes) -> Response {
        let resp = (self.call)(Self::grpc_request(m, headers, frames)).await;
        let (rparts, body) = resp.into_parts();
        let request_id = rparts.headers.get("x-request-id").cloned();
        // An edge that answered from its cache says so (grpc.rs `PARTIAL_HEADER`).
        let partial = rparts.headers.get(crate::grpc::PARTIAL_HEADER).cloned();
        let (data, trailers) = match body.collect().await {
            Ok(c) => {
                let trailers = c.trailers().cloned();
                (c.to_bytes(), trailers)
            }
            Err(e) => return status_response(&tonic::Status::internal(format!("reading the reply: {e}"))),
        };
        // A failure is in the head (trailers-only) or in the trailers.
        let status = tonic::Status::from_header_map(&rparts.headers)
            .or_else(|| trailers.as_ref().and_then(tonic::Status::from_header_map));
        let mut out = match status.filter(|s| s.code() != tonic::Code::Ok) {
            Some(st) => status_response(&st),
            None => match self.render(m, data) {
                Ok(v) => (StatusCode::OK, axum::Json(v)).into_response(),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", e),
            },
        };
        if let Some(id) = request_id {
            out.headers_mut().insert("x-request-id", id);
        }
        if let Some(p) = partial {
            out.headers_mut().insert(crate::grpc::PARTIAL_HEADER, p);
        }
        out
    }

    /// The reply's messages as JSON: the message for a unary method; for ingest,
    /// `{"results": [...]}`.
    fn render(&self, m: &MethodDescriptor, mut data: Bytes) -> Result<Value, String> {
        let output = m.output();
        let mut msgs = Vec::new();
        while data.has_remaining() {
            if data.remaining() < 5 {
                return Err("a truncated gRPC frame".into());
            }
            let compressed = data.get_u8();
            let len = data.get_u32() as usize;
            if compressed != 0 || data.remaining() < len {
                return Err("an unreadable gRPC frame".into());
            }
            let msg = DynamicMessage::decode(output.clone(), data.split_to(len)).map_err(|e| e.to_string())?;
            msgs.push(message_json(&msg)?);
        }
        if m.is_server_streaming() {
            Ok(json!({ "results": msgs }))
        } else {
            msgs.pop().ok_or_else(|| "the method answered nothing".to_string())
        }
    }
}

fn sse_error(message: &str) -> Bytes {
    let v = json!({ "error": { "code": 500, "status": "INTERNAL", "message": message } });
    Bytes::from(format!("event: error\ndata: {v}\n\n"))
}

fn frame(out: &mut BytesMut, msg: &[u8]) {
    out.put_u8(0);
    out.put_u32(msg.len() as u32);
    out.put_slice(msg);
}

/// A failed call as its HTTP status and JSON error; RESOURCE_EXHAUSTED / UNAVAILABLE
/// with the server's `retry-after-ms` hint also carry `Retry-After` (seconds).
fn status_response(st: &tonic::Status) -> Response {
    let (http, name) = http_status(st.code());
    let mut r = error(http, name, st.message());
    if let Some(ms) =
        st.metadata().get("retry-after-ms").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok())
    {
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(ms.div_ceil(1000)));
    }
    if http == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    r
}

/// A message as REST JSON: ProtoJSON with every field present (defaults included),
/// 64-bit integers as numbers, and JSON-carrying strings as JSON values.
pub(super) fn message_json(msg: &DynamicMessage) -> Result<Value, String> {
    let opts = SerializeOptions::new().skip_default_fields(false).stringify_64_bit_integers(false);
    let mut v = msg.serialize_with_options(serde_json::value::Serializer, &opts).map_err(|e| e.to_string())?;
    from_proto_json(&msg.descriptor(), &mut v);
    Ok(v)
}

/// Each message field's values, for walking nested messages.
fn nested_values<'a>(f: &FieldDescriptor, v: &'a mut Value) -> Vec<&'a mut Value> {
    if f.is_map() {
        v.as_object_mut().map(|o| o.values_mut().collect()).unwrap_or_default()
    } else if f.is_list() {
        v.as_array_mut().map(|a| a.iter_mut().collect()).unwrap_or_default()
    } else {
        vec![v]
    }
}

fn message_kind(f: &FieldDescriptor) -> Option<MessageDescriptor> {
    let kind = if f.is_map() {
        match f.kind() {
            Kind::Message(entry) => entry.map_entry_value_field().kind(),
            k => k,
        }
    } else {
        f.kind()
    };
    match kind {
        Kind::Message(m) => Some(m),
        _ => None,
    }
}

/// REST JSON → ProtoJSON: `payload: {...}` becomes `payloadJson: "{...}"`, in nested
/// messages too.
pub(super) fn to_proto_json(desc: &MessageDescriptor, v: &mut Value) {
    let Some(obj) = v.as_object_mut() else { return };
    for f in desc.fields() {
        if let Some(alias) = json_alias(&f) {
            if let Some(x) = obj.remove(&alias) {
                obj.insert(f.json_name().to_string(), Value::String(x.to_string()));
            }
            continue;
        }
        let Some(m) = message_kind(&f) else { continue };
        for key in [f.json_name().to_string(), f.name().to_string()] {
            if let Some(x) = obj.get_mut(&key) {
                for inner in nested_values(&f, x) {
                    to_proto_json(&m, inner);
                }
            }
        }
    }
}

/// ProtoJSON → REST JSON: `payloadJson: "{...}"` becomes `payload: {...}` (absent when
/// empty).
pub(super) fn from_proto_json(desc: &MessageDescriptor, v: &mut Value) {
    let Some(obj) = v.as_object_mut() else { return };
    for f in desc.fields() {
        if let Some(alias) = json_alias(&f) {
            if let Some(Value::String(s)) = obj.remove(f.json_name()) {
                if !s.is_empty() {
                    obj.insert(alias, serde_json::from_str(&s).unwrap_or(Value::String(s)));
                }
            }
            continue;
        }
        let Some(m) = message_kind(&f) else { continue };
        if let Some(x) = obj.get_mut(f.json_name()) {
            for inner in nested_values(&f, x) {
                from_proto_json(&m, inner);
            }
        }
    }
}

/// Set field `key` of the request from text (a query parameter or a multipart text
/// part), typed by the field; repeated fields collect every value.
fn set_text_field(
    desc: &MessageDescriptor,
    fields: &mut Map<String, Value>,
    key: &str,
    text: &str,
    what: &str,
) -> Result<(), String> {
    let f = desc
        .get_field_by_name(key)
        .or_else(|| desc.get_field_by_json_name(key))
        .ok_or_else(|| format!("unknown {what} '{key}' for {}", desc.name()))?;
    if json_alias(&f).is_some() {
        let v: Value = serde_json::from_str(text).map_err(|e| format!("{what} '{key}' is not JSON: {e}"))?;
        fields.insert(f.json_name().to_string(), Value::String(v.to_string()));
        return Ok(());
    }
    if f.is_map() || message_kind(&f).is_some() {
        return Err(format!("{what} '{key}' is a structured field: send it in a JSON body"));
    }
    let bad = |kind: &str| format!("{what} '{key}' must be {kind}, not {text:?}");
    let value = match f.kind() {
        Kind::Bool => match text {
            "true" | "1" => Value::Bool(true),
            "false" | "0" => Value::Bool(false),
            _ => return Err(bad("true or false")),
        },
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 | Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
            text.parse::<i64>().map(Value::from).map_err(|_| bad("an integer"))?
        }
        Kind::Uint32 | Kind::Fixed32 | Kind::Uint64 | Kind::Fixed64 => {
            text.parse::<u64>().map(Value::from).map_err(|_| bad("a non-negative integer"))?
        }
        Kind::Float | Kind::Double => text
            .parse::<f64>()
            .ok()
            .and_then(|x| serde_json::Number::from_f64(x).map(Value::Number))
            .ok_or_else(|| bad("a number"))?,
        _ => Value::String(text.to_string()),
    };
    let key = f.json_name().to_string();
    if f.is_list() {
        match fields.entry(key).or_insert_with(|| Value::Array(Vec::new())) {
            Value::Array(a) => a.push(value),
            _ => return Err(format!("{what} '{}' given twice", f.name())),
        }
    } else {
        fields.insert(key, value);
    }
    Ok(())
}

/// A multipart body: for search, text parts are request fields (a `request` part may
/// hold them all as JSON) and the `image`, `audio` or `video` part carries the media;
/// for ingest, every part with a filename is a file to ingest.
async fn read_multipart(
    headers: &HeaderMap,
    body: Bytes,
    desc: &MessageDescriptor,
    files_only: bool,
) -> Result<(Map<String, Value>, Vec<(String, Bytes)>), String> {
    use base64::Engine;
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let boundary = multer::parse_boundary(ct).map_err(|e| format!("bad multipart content type: {e}"))?;
    let stream = futures_util::stream::once(async move { Ok::<Bytes, std::io::Error>(body) });
    let mut mp = multer::Multipart::new(stream, boundary);
    let mut fields = Map::new();
    let mut files = Vec::new();
    while let Some(part) = mp.next_field().await.map_err(|e| format!("bad multipart body: {e}"))? {
        let name = part.name().unwrap_or_default().to_string();
        let file_name = part.file_name().map(str::to_string);
        let data = part.bytes().await.map_err(|e| format!("bad multipart part '{name}': {e}"))?;
        if files_only {
            match file_name {
                Some(f) if !f.is_empty() => files.push((f, data)),
                _ => return Err(format!("part '{name}' has no filename: ingest takes files")),
            }
            continue;
        }
        match name.as_str() {
            "image" | "audio" | "video" => {
                if data.is_empty() {
                    return Err(format!("the {name} part is empty"));
                }
                fields.insert(name, Value::String(base64::engine::general_purpose::STANDARD.encode(&data)));
            }
            "request" => {
                let v: Value =
                    serde_json::from_slice(&data).map_err(|e| format!("the request part is not JSON: {e}"))?;
                let Value::Object(o) = v else { return Err("the request part must be a JSON object".into()) };
                fields.extend(o);
            }
            _ => {
                let text = std::str::from_utf8(&data).map_err(|_| format!("part '{name}' is not UTF-8 text"))?;
                set_text_field(desc, &mut fields, &name, text, "form field")?;
            }
        }
    }
    Ok((fields, files))
}
