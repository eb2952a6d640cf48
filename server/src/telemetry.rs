//! OpenTelemetry traces and per-request context (docs/OPERATIONS.md, "Traces").
//!
//! With `telemetry.otlp_endpoint` set, `tracing` spans from AgentDB's own crates are
//! exported over OTLP/gRPC by a batch processor (its own thread, a bounded queue: a
//! full queue drops spans, requests never wait). With it empty nothing is built: no
//! exporter, no thread, and `traceparent` is not even parsed.
//!
//! Each gRPC request gets a request id (returned as `x-request-id`), a `grpc.request`
//! span whose parent is the caller's W3C `traceparent`, and one log line on completion;
//! each request to the HTTP listener (A2A, agent card, metrics) likewise gets an
//! `http.request` span ([`http_layer`]). Outgoing A2A push notifications carry the
//! `traceparent` of the request that produced them ([`capture`], [`Captured`]).

use crate::config::TelemetryConfig;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

type FilterHandle = tracing_subscriber::reload::Handle<tracing_subscriber::EnvFilter, tracing_subscriber::Registry>;

/// The live log filter, changed at run time by `Server/SetLogLevel`.
static LOG_FILTER: std::sync::OnceLock<(FilterHandle, parking_lot::Mutex<String>)> = std::sync::OnceLock::new();

/// Start logging as `log_level`/`log_format` (or `AGENTDB_LOG`) say, with the
/// OpenTelemetry layer when `telemetry.otlp_endpoint` is set.
pub fn init_logging(cfg: &crate::config::Config) {
    set_request_logging(&cfg.log_requests);
    use std::io::IsTerminal;
    use tracing_subscriber::prelude::*;
    let spec = std::env::var("AGENTDB_LOG").ok().filter(|s| tracing_subscriber::EnvFilter::try_new(s).is_ok());
    let spec = spec.unwrap_or_else(|| cfg.log_level.clone());
    let filter =
        tracing_subscriber::EnvFilter::try_new(&spec).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let json = match cfg.log_format.as_str() {
        "json" => true,
        "text" => false,
        _ => !std::io::stderr().is_terminal(),
    };
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    let registry = tracing_subscriber::registry().with(filter);
    // OpenTelemetry export (None unless telemetry.otlp_endpoint is set; needs the runtime entered).
    let ok = if json {
        let r = registry.with(tracing_subscriber::fmt::layer().json().with_writer(std::io::stderr));
        r.with(layer(&cfg.telemetry)).try_init().is_ok()
    } else {
        let r = registry.with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr));
        r.with(layer(&cfg.telemetry)).try_init().is_ok()
    };
    if ok {
        let _ = LOG_FILTER.set((handle, parking_lot::Mutex::new(spec)));
    }
}

/// Replace the log filter (e.g. `debug`, `agentdb_engine=debug,info`); returns the old one.
pub fn set_log_level(spec: &str) -> Result<String, String> {
    let f = tracing_subscriber::EnvFilter::try_new(spec).map_err(|e| format!("invalid log filter '{spec}': {e}"))?;
    let (handle, current) = LOG_FILTER.get().ok_or("logging was not initialised by this server")?;
    handle.reload(f).map_err(|e| e.to_string())?;
    let mut cur = current.lock();
    let old = std::mem::replace(&mut *cur, spec.to_string());
    tracing::info!(from = %old, to = %spec, "log level changed");
    Ok(old)
}

static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// Whether spans are exported (an endpoint is configured and the exporter was built).
pub fn enabled() -> bool {
    PROVIDER.get().is_some()
}

/// The OpenTelemetry layer for the subscriber, or `None` when no endpoint is configured
/// (or the exporter cannot be built: that is logged to stderr and serving goes on).
/// Must be called inside a Tokio runtime (the tonic channel is built on it).
pub fn layer<S>(cfg: &TelemetryConfig) -> Option<Box<dyn Layer<S> + Send + Sync>>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
{
    let endpoint = cfg.otlp_endpoint.trim();
    if endpoint.is_empty() {
        return None;
    }
    let provider = match build_provider(cfg, endpoint) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("agentdb: telemetry.otlp_endpoint '{endpoint}': {e}; traces are not exported");
            return None;
        }
    };
    let tracer = provider.tracer("agentdb");
    let _ = PROVIDER.set(provider);
    // Only AgentDB's own spans: the exporter's own stack (tonic, hyper, h2) must never
    // trace itself into the queue it is draining.
    let only_ours = tracing_subscriber::filter::filter_fn(|m| m.target().starts_with("agentdb"));
    Some(
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_tracked_inactivity(false)
            .with_filter(only_ours)
            .boxed(),
    )
}

fn build_provider(cfg: &TelemetryConfig, endpoint: &str) -> Result<SdkTracerProvider, String> {
    use opentelemetry_otlp::WithExportConfig;
    use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, Sampler};
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint.to_string())
        .with_timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let exporter = LoggedExporter { inner: exporter, endpoint: endpoint.to_string(), failures: Arc::default() };
    let batch = BatchConfigBuilder::default()
        .with_max_queue_size(4096)
        .with_max_export_batch_size(512)
        .with_scheduled_delay(std::time::Duration::from_millis(500))
        .build();
    let processor = BatchSpanProcessor::builder(exporter).with_batch_config(batch).build();
    let ratio = if cfg.sample_ratio.is_finite() { cfg.sample_ratio.clamp(0.0, 1.0) } else { 1.0 };
    let name = if cfg.service_name.trim().is_empty() { "agentdb" } else { cfg.service_name.trim() };
    Ok(SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio))))
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(name.to_string())
                .with_attribute(opentelemetry::KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
                .build(),
        )
        .build())
}

/// Flush queued spans and stop the exporter (at shutdown; the runtime must still run).
pub fn shutdown() {
    if let Some(p) = PROVIDER.get() {
        let _ = p.force_flush();
        let _ = p.shutdown();
    }
}

/// The OTLP exporter, logging its first failure (and the first success after failures)
/// once instead of on every batch.
#[derive(Debug)]
struct LoggedExporter<E> {
    inner: E,
    endpoint: String,
    failures: Arc<AtomicU64>,
}

impl<E: opentelemetry_sdk::trace::SpanExporter> opentelemetry_sdk::trace::SpanExporter for LoggedExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> opentelemetry_sdk::error::OTelSdkResult {
        let n = batch.len();
        let r = self.inner.export(batch).await;
        match &r {
            Err(e) => {
                if self.failures.fetch_add(1, Ordering::Relaxed) == 0 {
                    // Logged outside any span, by a thread whose events are not exported.
                    tracing::warn!(endpoint = %self.endpoint, spans = n, error = %e, "OTLP trace export failed; spans are dropped until the collector is reachable (logged once)");
                }
            }
            Ok(()) => {
                let failed = self.failures.swap(0, Ordering::Relaxed);
                if failed > 0 {
                    tracing::info!(endpoint = %self.endpoint, failed_batches = failed, "OTLP trace export recovered");
                }
            }
        }
        r
    }
    fn shutdown_with_timeout(&self, timeout: std::time::Duration) -> opentelemetry_sdk::error::OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }
    fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        self.inner.force_flush()
    }
    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.inner.set_resource(resource)
    }
}

struct HeaderExtractor<'a>(&'a tonic::codegen::http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

struct HeaderInjector<'a>(&'a mut tonic::codegen::http::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(k), Ok(v)) = (
            tonic::codegen::http::HeaderName::from_bytes(key.as_bytes()),
            tonic::codegen::http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(k, v);
        }
    }
}

/// Make the caller's W3C `traceparent` (gRPC metadata or HTTP header) the parent of `span`.
pub fn set_parent_from(span: &tracing::Span, headers: &tonic::codegen::http::HeaderMap) {
    if !enabled() || !headers.contains_key("traceparent") {
        return;
    }
    let cx = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    let _ = span.set_parent(cx);
}

/// Write the current span's context as `traceparent` (and `tracestate`) into outgoing
/// headers, so that a downstream service continues the trace.
#[allow(dead_code)] // for outgoing calls made inside the request's span
pub fn inject_current(headers: &mut tonic::codegen::http::HeaderMap) {
    inject_span(&tracing::Span::current(), headers);
}

/// Write `span`'s context as `traceparent` (and `tracestate`) into outgoing headers
/// (nothing when telemetry is off).
pub fn inject_span(span: &tracing::Span, headers: &mut tonic::codegen::http::HeaderMap) {
    if !enabled() {
        return;
    }
    let cx = span.context();
    TraceContextPropagator::new().inject_context(&cx, &mut HeaderInjector(headers));
}

/// A span's trace context, captured for work that outlives the span (A2A push
/// notifications sent after the HTTP response). Empty, and free, when telemetry is off.
#[derive(Clone, Default)]
pub struct Captured(Option<opentelemetry::Context>);

impl std::fmt::Debug for Captured {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Captured(context)" } else { "Captured(none)" })
    }
}

/// The current span's context (nothing when telemetry is off). Holds no reference to the
/// `tracing` span: the span still ends when its request does.
pub fn capture() -> Captured {
    if !enabled() {
        return Captured(None);
    }
    Captured(Some(tracing::Span::current().context()))
}

impl Captured {
    /// Whether a context was captured (telemetry is on).
    pub fn is_some(&self) -> bool {
        self.0.is_some()
    }

    /// Make the captured context the parent of `span` (a span created with `parent: None`).
    pub fn parent(&self, span: &tracing::Span) {
        if let Some(cx) = &self.0 {
            let _ = span.set_parent(cx.clone());
        }
    }
}

/// The request id: the caller's `x-request-id` when it is short and printable, else a new one.
pub fn request_id(headers: &tonic::codegen::http::HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic()))
        .map(String::from)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string())
}

/// What a handler learns about the request that the edge cannot (the collection).
#[derive(Default)]
pub struct RequestCtx {
    pub principal: OnceLock<String>,
    /// Whose queue the request waits in at the admission gate (`grpc::Gate`).
    pub tenant: OnceLock<String>,
    pub collection: OnceLock<String>,
    /// Set for HTTP requests ([`http_layer`]), for spans started by the request's work.
    pub request_id: OnceLock<String>,
}

/// The tenant of the request being served: its principal, or `conn:IP:PORT` without
/// authentication.
pub fn current_tenant() -> Option<String> {
    REQUEST.try_with(|c| c.tenant.get().or(c.principal.get()).cloned()).ok().flatten()
}

/// Run `fut` as work of `tenant` (background work on behalf of someone, e.g. a workflow
/// step of an agent): the admission gate and the encoders queue it as theirs.
pub async fn as_tenant<T>(tenant: &str, fut: impl std::future::Future<Output = T>) -> T {
    let ctx = RequestCtx::default();
    let _ = ctx.tenant.set(tenant.to_string());
    REQUEST.scope(Arc::new(ctx), fut).await
}

pub fn record_tenant(tenant: &str) {
    let _ = REQUEST.try_with(|c| c.tenant.set(tenant.to_string()));
}

/// The request id of the HTTP request being served, if any.
pub fn current_request_id() -> Option<String> {
    REQUEST.try_with(|c| c.request_id.get().cloned()).ok().flatten()
}

tokio::task_local! {
    pub static REQUEST: Arc<RequestCtx>;
}

/// Note the collection a request works on: on the `grpc.request` span and in its log line.
pub fn record_collection(name: &str) {
    if name.is_empty() {
        return;
    }
    let _ = REQUEST.try_with(|c| c.collection.set(name.to_string()));
    tracing::Span::current().record("agentdb.collection", name);
}

/// Note who made the request (the principal's id, or `peer:IP` without authentication).
pub fn record_principal(who: &str) {
    let _ = REQUEST.try_with(|c| c.principal.set(who.to_string()));
    tracing::Span::current().record("agentdb.principal", who);
}

/// Close a request: status and latency on its span, and its one log line.
pub fn finish(
    span: &tracing::Span,
    ctx: &RequestCtx,
    method: &str,
    request_id: &str,
    code: &str,
    took: std::time::Duration,
    explicit: bool,
) {
    let latency_ms = took.as_secs_f64() * 1000.0;
    span.record("rpc.grpc.status_code", code);
    span.record("latency_ms", latency_ms);
    if code != "0" {
        span.record("otel.status_code", "error");
    }
    log_line(ctx, method, request_id, code, latency_ms, explicit);
}

/// 1 = every request logs its line; N > 1 = successful, fast, untraced reads log one
/// line in N (`log_requests`).
static REQUEST_LOG_EVERY: AtomicU64 = AtomicU64::new(1);
static HOT_READS_SEEN: AtomicU64 = AtomicU64::new(0);

/// Reads that a busy client repeats thousands of times a second.
const HOT_READS: &[&str] =
    &["/agentdb.v1.Items/Search", "/agentdb.v1.Items/SearchBatch", "/agentdb.v1.Items/Get", "/agentdb.v1.Items/Count"];

/// Apply `log_requests`: "all" logs a line per request; "sampled" logs every write,
/// error, slow (>= 100 ms) or traced request and one in 100 of the other reads.
pub fn set_request_logging(mode: &str) {
    REQUEST_LOG_EVERY.store(if mode == "all" { 1 } else { 100 }, Ordering::Relaxed);
}

/// Whether the caller sent a request id or a trace context: it will look for the
/// request's log line, so that line is never sampled away.
pub fn caller_identified(headers: &tonic::codegen::http::HeaderMap) -> bool {
    headers.contains_key("x-request-id") || headers.contains_key("traceparent")
}

/// Whether this request's line is written: see [`set_request_logging`]. `explicit`: the
/// caller sent a request id or a trace context (it will look for the line).
fn logs(method: &str, status: &str, latency_ms: f64, explicit: bool) -> Option<u64> {
    let every = REQUEST_LOG_EVERY.load(Ordering::Relaxed);
    if every <= 1 || explicit || latency_ms >= 100.0 || !matches!(status, "0" | "200") || !HOT_READS.contains(&method) {
        return Some(1);
    }
    HOT_READS_SEEN.fetch_add(1, Ordering::Relaxed).is_multiple_of(every).then_some(every)
}

/// The one log line of a request (gRPC or HTTP); `sample_every` > 1 on a sampled read.
fn log_line(ctx: &RequestCtx, method: &str, request_id: &str, status: &str, latency_ms: f64, explicit: bool) {
    let Some(sample_every) = logs(method, status, latency_ms, explicit) else { return };
    let principal = ctx.principal.get().map(String::as_str).unwrap_or("");
    let collection = ctx.collection.get().map(String::as_str).unwrap_or("");
    tracing::info!(
        target: "agentdb::request",
        request_id,
        method,
        principal,
        collection,
        status,
        latency_ms = (latency_ms * 1000.0).round() / 1000.0,
        sample_every,
        "request"
    );
}

/// Middleware of the HTTP listener (`axum::middleware::from_fn(telemetry::http_layer)`):
/// an `http.request` span per request whose parent is the caller's `traceparent`, the
/// request id (the caller's `x-request-id` or a new one) echoed as `x-request-id`, and
/// the same one-line request log as gRPC (`method` is "VERB /path", `status` the HTTP
/// status). The handler runs inside the span; work it spawns must carry the span (or a
/// [`capture`]d context) itself.
pub async fn http_layer(mut req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    use tracing::Instrument;
    let started = std::time::Instant::now();
    let explicit = caller_identified(req.headers());
    let request_id = request_id(req.headers());
    // The handler sees the id that is answered (a new one replaces a missing or bad one).
    if let Ok(v) = tonic::codegen::http::HeaderValue::from_str(&request_id) {
        req.headers_mut().insert("x-request-id", v);
    }
    let method = format!("{} {}", req.method(), req.uri().path());
    let span = tracing::info_span!(
        "http.request",
        otel.kind = "server",
        http.request.method = %req.method(),
        url.path = %req.uri().path(),
        request_id = %request_id,
        rpc.method = tracing::field::Empty,
        agentdb.principal = tracing::field::Empty,
        agentdb.collection = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
        latency_ms = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    set_parent_from(&span, req.headers());
    let ctx = Arc::new(RequestCtx::default());
    let _ = ctx.request_id.set(request_id.clone());
    let mut resp = REQUEST.scope(ctx.clone(), next.run(req)).instrument(span.clone()).await;
    if let Ok(v) = tonic::codegen::http::HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    let status = resp.status();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    span.record("http.response.status_code", status.as_u16());
    span.record("latency_ms", latency_ms);
    if status.is_server_error() {
        span.record("otel.status_code", "error");
    }
    log_line(&ctx, &method, &request_id, status.as_str(), latency_ms, explicit);
    resp
}

/// Note the JSON-RPC method of an A2A request on its `http.request` span.
pub fn record_rpc_method(method: &str) {
    tracing::Span::current().record("rpc.method", method);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_id_is_taken_when_sane_and_made_otherwise() {
        let mut h = tonic::codegen::http::HeaderMap::new();
        let made = request_id(&h);
        assert_eq!(made.len(), 32);
        assert_ne!(made, request_id(&h));
        h.insert("x-request-id", "abc-123".parse().unwrap());
        assert_eq!(request_id(&h), "abc-123");
        h.insert("x-request-id", "has space".parse().unwrap());
        assert_eq!(request_id(&h).len(), 32);
    }

    #[test]
    fn disabled_telemetry_costs_nothing() {
        let cfg = TelemetryConfig::default();
        assert!(layer::<tracing_subscriber::Registry>(&cfg).is_none());
        assert!(!enabled());
        let mut h = tonic::codegen::http::HeaderMap::new();
        inject_current(&mut h);
        assert!(h.is_empty());
        assert!(!capture().is_some());
    }
}
