//! `agentdb serve`: open the data directory, serve gRPC with health and reflection,
//! shut down gracefully on SIGTERM/SIGINT.

use crate::config::Config;
use crate::grpc::{Gate, Services};
use crate::metrics::Metrics;
use agentdb_orchestrator::security::Principal;
use agentdb_proto::v1;
use anyhow::{Context, Result};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;
use tonic::codegen::http;
use tonic::transport::Server;

/// The gRPC edge: authentication (API keys and/or OIDC tokens, when enabled), per-method request metrics,
/// and tonic's OUT_OF_RANGE for an oversize request turned into RESOURCE_EXHAUSTED
/// (gRPC's convention, and our API's), with the configured limit named.
#[derive(Clone)]
struct Edge<S> {
    inner: S,
    limit: usize,
    metrics: Arc<Metrics>,
    security: Arc<crate::security::Security>,
}

#[derive(Clone)]
struct EdgeLayer(usize, Arc<Metrics>, Arc<crate::security::Security>);

impl<S> tower_layer::Layer<S> for EdgeLayer {
    type Service = Edge<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Edge { inner, limit: self.0, metrics: self.1.clone(), security: self.2.clone() }
    }
}

const WHOAMI_PATH: &str = "/agentdb.v1.Security/WhoAmI";

/// Health checks and reflection stay open so probes and tools work without a key.
fn needs_auth(path: &str) -> bool {
    !(path.starts_with("/grpc.health.") || path.starts_with("/grpc.reflection."))
}

impl<S, B> tower_service::Service<http::Request<B>> for Edge<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<tonic::body::Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let method = req.uri().path().to_string();
        let started = std::time::Instant::now();
        // The clone that was polled ready serves this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let (limit, metrics, security) = (self.limit, self.metrics.clone(), self.security.clone());
        // Over TLS the connection info is ours (crate::tls), with the client certificate's identity.
        let tls_info = req.extensions().get::<crate::tls::TlsConnectInfo>().cloned();
        let peer_addr = req
            .extensions()
            .get::<tonic::transport::server::TcpConnectInfo>()
            .and_then(|c| c.remote_addr())
            .or_else(|| tls_info.as_ref().and_then(|t| t.remote_addr));
        let peer = peer_addr.map(|a| a.ip().to_string());
        // One span and one log line per request (crate::telemetry); the caller's
        // traceparent, if any, is the span's parent.
        let explicit = crate::telemetry::caller_identified(req.headers());
        let request_id = crate::telemetry::request_id(req.headers());
        let rpc = method.clone();
        let span = tracing::info_span!(
            "grpc.request",
            otel.kind = "server",
            rpc.system = "grpc",
            rpc.method = %method,
            request_id = %request_id,
            agentdb.principal = tracing::field::Empty,
            agentdb.collection = tracing::field::Empty,
            rpc.grpc.status_code = tracing::field::Empty,
            latency_ms = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        crate::telemetry::set_parent_from(&span, req.headers());
        let ctx = Arc::new(crate::telemetry::RequestCtx::default());
        let handled = async move {
            let mut who = format!("peer:{}", peer.unwrap_or_default());
            // Who-am-I without any credential answers "not signed in" (authentication
            // on, no principal) rather than UNAUTHENTICATED: how a client such as the
            // console learns that it must ask for a key. A credential that fails is
            // refused as everywhere.
            let anonymous_whoami = method == WHOAMI_PATH
                && crate::security::presented_key(req.headers()).is_none()
                && tls_info.as_ref().is_none_or(|t| t.client.is_none());
            if security.auth_enabled() && needs_auth(&method) && !anonymous_whoami {
                // API key or OIDC token -> Principal, which the handlers authorize. A
                // bearer credential takes precedence; without one, a verified client
                // certificate (mTLS) is the principal.
                let cert = tls_info.and_then(|t| t.client);
                let bearer = (security.keys.is_some() || security.oidc.is_some())
                    && crate::security::presented_key(req.headers()).is_some();
                let verdict = match cert {
                    Some(p) if !bearer => Ok(Principal::clone(&p)),
                    _ => security.authenticate(req.headers()).await,
                };
                match verdict {
                    Ok(p) => {
                        who = p.id.clone();
                        req.extensions_mut().insert(p);
                    }
                    Err(why) => {
                        crate::telemetry::record_principal("anonymous");
                        security.audit("anonymous", &method, "", "fail", &why);
                        metrics.observe_request(&method, "16", started.elapsed().as_secs_f64());
                        return Ok(tonic::Status::unauthenticated(why).into_http());
                    }
                }
            }
            crate::telemetry::record_principal(&who);
            // Fair admission (grpc::Gate) queues per principal; without one, per connection.
            let tenant = if who.starts_with("peer:") {
                format!("conn:{}", peer_addr.map(|a| a.to_string()).unwrap_or_default())
            } else {
                who.clone()
            };
            crate::telemetry::record_tenant(&tenant);
            if let (Some(rate), true) = (&security.rate, needs_auth(&method)) {
                if let Err(wait_ms) = rate.check(&who) {
                    metrics.observe_request(&method, "8", started.elapsed().as_secs_f64());
                    let st = crate::grpc::retry_hint(
                        tonic::Status::resource_exhausted(format!(
                            "rate limit of {} requests/s exceeded for {who}; retry after {wait_ms} ms",
                            rate.per_sec()
                        )),
                        wait_ms,
                    );
                    return Ok(st.into_http());
                }
            }
            let mut resp = inner.call(req).await?;
            let h = resp.headers_mut();
            // A request tonic could not read (not protobuf, over the size limit): the
            // client's fault, said so (crate::status::request_read_error). Unary calls
            // only; streamed messages are read, and mapped, by their handlers.
            if h.get("grpc-status").is_some_and(|v| v == "13" || v == "11") {
                let read_error = tonic::Status::from_header_map(h)
                    .and_then(|st| crate::status::request_read_error(st.code(), st.message(), Some(limit)));
                if let Some(st) = read_error {
                    let _ = st.add_header(h);
                }
            }
            // Unary errors carry grpc-status in the head; successes and streams carry it
            // in trailers, which arrive later: count those as OK here.
            let code = h.get("grpc-status").and_then(|v| v.to_str().ok()).unwrap_or("0").to_string();
            metrics.observe_request(&method, &code, started.elapsed().as_secs_f64());
            Ok(resp)
        };
        let handled =
            tracing::Instrument::instrument(crate::telemetry::REQUEST.scope(ctx.clone(), handled), span.clone());
        Box::pin(async move {
            let mut r = handled.await;
            let code = match &mut r {
                Ok(resp) => {
                    if let Ok(v) = http::HeaderValue::from_str(&request_id) {
                        resp.headers_mut().insert("x-request-id", v);
                    }
                    resp.headers().get("grpc-status").and_then(|v| v.to_str().ok()).unwrap_or("0").to_string()
                }
                Err(_) => "transport".to_string(),
            };
            crate::telemetry::finish(&span, &ctx, &rpc, &request_id, &code, started.elapsed(), explicit);
            r
        })
    }
}

/// Every gRPC service the server registers (health reports each as SERVING; a test
/// checks the list against what reflection lists).
pub const SERVICES: &[&str] = &[
    "",
    "agentdb.v1.Collections",
    "agentdb.v1.Items",
    "agentdb.v1.Models",
    "agentdb.v1.Server",
    "agentdb.v1.Security",
    "agentdb.v1.Agents",
    "agentdb.v1.Events",
    "agentdb.v1.Queues",
    "agentdb.v1.StandingQueries",
    "agentdb.v1.Workflows",
    "agentdb.v1.Cluster",
    "lf.a2a.v1.A2AService",
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

/// Refuse to expose an unauthenticated server beyond this machine. Every listener
/// (`what`: "listen" for gRPC, "http_listen" for HTTP/A2A/metrics, and any added later)
/// obeys the same rule and the same `--insecure` override.
pub fn check_exposure(listen: &std::net::SocketAddr, cfg: &Config, what: &str) -> Result<()> {
    if listen.ip().is_loopback() || cfg.security.auth_enabled() {
        return Ok(());
    }
    if cfg.security.insecure {
        tracing::warn!(listen = %listen, listener = what, "INSECURE: serving without authentication on a non-loopback address; anyone who can reach it can read, write and delete everything");
        eprintln!(
            "WARNING: --insecure: {listen} ({what}) is reachable from other machines and no authentication is configured"
        );
        return Ok(());
    }
    anyhow::bail!(
        "refusing to listen on {listen} ({what}) without authentication: set security.auth = \"api_key\" \
         (--set security.auth=api_key; an admin key is created on first start) and/or enable OIDC \
         (security.oidc.enabled, issuer, audience, jwks_file or jwks_url; see docs/SECURITY.md) and/or require \
         mTLS client certificates (security.tls.client_ca_file, security.tls.client_auth = \"required\"; TLS \
         alone is not authentication), listen on a loopback address, or pass --insecure to override"
    )
}

/// Install the SIGTERM/SIGINT handlers now (before the server says it is listening, so
/// a signal sent right after start is never the default "terminate at once"), and
/// return a future that fires `tx` on the first one.
///
/// With `shutdown_delay_ms`, the server first reports not ready (`/readyz` answers 503,
/// `stopping` is set) and goes on serving for that long, so a load balancer takes it out
/// before new requests are refused; a second signal cuts the delay short.
fn shutdown_signal(
    tx: tokio::sync::watch::Sender<bool>,
    stopping: Arc<std::sync::atomic::AtomicBool>,
    delay: Duration,
) -> Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("install SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("install SIGINT handler")?;
    Ok(async move { wait_signal(&mut term, &mut int, tx, stopping, delay).await })
}

async fn wait_signal(
    term: &mut tokio::signal::unix::Signal,
    int: &mut tokio::signal::unix::Signal,
    tx: tokio::sync::watch::Sender<bool>,
    stopping: Arc<std::sync::atomic::AtomicBool>,
    delay: Duration,
) {
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    stopping.store(true, std::sync::atomic::Ordering::SeqCst);
    if !delay.is_zero() {
        tracing::info!(
            delay_ms = delay.as_millis() as u64,
            "{name} received: not ready, serving on until the delay ends"
        );
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
    tracing::info!("{name} received: finishing in-flight requests");
    let _ = tx.send(true);
}

fn readiness(
    stopping: &std::sync::atomic::AtomicBool,
    cluster: Option<&agentdb_cluster::Cluster>,
) -> (http::StatusCode, &'static str) {
    if stopping.load(std::sync::atomic::Ordering::SeqCst) {
        (http::StatusCode::SERVICE_UNAVAILABLE, "shutting down")
    } else if cluster.is_some_and(|c| !c.is_connected()) {
        (http::StatusCode::SERVICE_UNAVAILABLE, "not connected to NATS")
    } else {
        (http::StatusCode::OK, "ready")
    }
}

async fn stopped(mut rx: tokio::sync::watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

pub fn run(cfg: Config) -> Result<()> {
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(threads.max(2))
        .build()
        .context("starting tokio")?;
    {
        // The OTLP exporter's channel lives on this runtime.
        let _rt = rt.enter();
        crate::telemetry::init_logging(&cfg);
    }
    tracing::info!(
        hnsw = agentdb_engine::index::simd_level(),
        exact = agentdb_kernels::topk::simd_level(),
        hnsw_walk = %cfg.search.hnsw_walk,
        "distance kernels chosen for this CPU (AGENTDB_SIMD=avx2|generic caps them)"
    );
    let r = rt.block_on(serve(cfg, threads));
    // Send the spans still queued while the runtime still runs.
    crate::telemetry::shutdown();
    r
}

async fn serve(cfg: Config, threads: usize) -> Result<()> {
    let data_dir = cfg.data_dir.clone();
    let mut opts = cfg.collection_options();
    let mut device = crate::device::select(&cfg.device)?;
    opts.accelerator = device.accelerator(&cfg.gpu)?;
    // Encryption at rest: the master key (if any) is checked against the data
    // directory's KEYRING before anything in it is read or changed.
    let key = cfg.encryption_key()?;
    let db =
        tokio::task::spawn_blocking(move || agentdb_engine::Database::open_with_key(&data_dir, opts, key.as_ref()))
            .await?
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    if db.encrypted() {
        tracing::info!("data directory is encrypted at rest (AES-256-GCM)");
    }
    for (name, reason) in db.damaged() {
        eprintln!("agentdb: collection '{name}' is damaged and not served: {reason}");
    }
    db.start_maintenance(Duration::from_millis(cfg.storage.maintenance_interval_ms.max(10)));

    let listener =
        tokio::net::TcpListener::bind(&cfg.listen).await.with_context(|| format!("cannot listen on {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    check_exposure(&addr, &cfg, "listen")?;
    // The HTTP listener is checked before anything starts, too, on every address its
    // configured name resolves to (the one it binds below is among them).
    if !cfg.http_listen.trim().is_empty() {
        for a in tokio::net::lookup_host(cfg.http_listen.trim())
            .await
            .with_context(|| format!("cannot resolve {} (http_listen)", cfg.http_listen))?
        {
            check_exposure(&a, &cfg, "http_listen")?;
        }
    }
    // Loading the OIDC JWKS may read a file or the network: not on an async worker.
    let security = Arc::new(tokio::task::block_in_place(|| open_security(&cfg))?);
    // TLS: certificate, key and client CA read now (a bad one stops the start, naming
    // the file), then watched for changes.
    let tls = tokio::task::block_in_place(|| crate::tls::Tls::from_config(&cfg.security.tls, &security.roles))?;
    if let Some(t) = &tls {
        t.spawn_reload();
    }
    let max_concurrent = if cfg.limits.max_concurrent == 0 { threads * 2 } else { cfg.limits.max_concurrent };
    let (models_cfg, ingest_cfg) = (cfg.models.clone(), cfg.ingest.clone());
    let gpu = device.ordinal.map(|ordinal| agentdb_retrieval::GpuChoice {
        ordinal,
        math: cfg.gpu.encoder_math.clone(),
        text: cfg.gpu.text_encoder,
        image: cfg.gpu.image_encoder,
    });
    // Loaded by the first request that needs a model unless models.preload is set.
    let encoders = Arc::new(
        tokio::task::spawn_blocking(move || agentdb_retrieval::Encoders::configured(&models_cfg, gpu, &ingest_cfg))
            .await?,
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // Agents, event bus and queues (state in the internal collections _agents, _queues).
    let orchestration = crate::orchestration::Orchestration::start(
        db.clone(),
        security.clone(),
        encoders.clone(),
        &cfg.orchestration,
        stop_rx.clone(),
    )
    .await?;
    let metrics = Arc::new(Metrics::default());
    let fault_delay_ms = Arc::new(std::sync::atomic::AtomicU64::new(0));
    // The encoders' fair queues weigh tenants like the admission gate does.
    agentdb_models::batcher::set_tenant_weights(cfg.limits.tenant_weights.clone());
    // Cluster mode: join through NATS before serving (docs/CLUSTER.md).
    let cluster = if cfg.cluster.urls.is_empty() {
        None
    } else {
        let c = &cfg.cluster;
        let node_id = if c.node_id.trim().is_empty() {
            std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()).unwrap_or_else(|_| "node".into())
        } else {
            c.node_id.trim().to_string()
        };
        let mut cc = agentdb_cluster::ClusterConfig::new(c.urls.clone(), node_id, addr.to_string());
        cc.credentials = Some(c.credentials.trim()).filter(|s| !s.is_empty()).map(Into::into);
        cc.tls_ca = Some(c.tls_ca.trim()).filter(|s| !s.is_empty()).map(Into::into);
        cc.heartbeat = Duration::from_millis(c.heartbeat_ms.max(50));
        cc.node_ttl = Duration::from_millis(c.node_ttl_ms.max(c.heartbeat_ms * 2));
        cc.read_wait = Duration::from_millis(c.read_wait_ms);
        cc.snapshot_every = c.snapshot_every;
        Some(
            agentdb_cluster::Cluster::join(cc, db.clone())
                .await
                .map_err(|e| anyhow::anyhow!("cannot join the cluster: {e}"))?,
        )
    };
    // Edge sync (docs/EDGE.md): an edge's own leaf nats-server, kept until the server stops.
    if cluster.is_some() && !cfg.edge.role.trim().is_empty() {
        anyhow::bail!("edge sync (edge.role) and cluster mode (--cluster) cannot be combined on one node");
    }
    let (edge_sync, _leaf) = match crate::edge_sync::start(&cfg.edge, &cfg.data_dir, db.clone()).await? {
        Some((e, leaf)) => (Some(e), leaf),
        None => (None, None),
    };
    // The event bus is cluster-wide: this node's events go to the others and theirs come
    // here (cluster/src/events.rs; event-triggered workflows start only where the event
    // happened).
    if let Some(c) = &cluster {
        // API keys are cluster-wide (security.rs, `share_keys`).
        security.share_keys(c.clone()).await.map_err(|e| anyhow::anyhow!("cluster: cannot share API keys: {e}"))?;
        // Storage quotas count a principal's writes through every node (cluster_quota.rs).
        if let Some(q) = &security.storage {
            q.share(Arc::new(crate::cluster_quota::ClusterUsage::new(c.clone())))
                .map_err(|e| anyhow::anyhow!("cluster: cannot share storage usage: {e}"))?;
        }
        // Queues are the cluster's (cluster_queues.rs).
        orchestration.join_cluster(c.clone());
        let bus = orchestration.parts().0;
        let (tx, rx) = tokio::sync::mpsc::channel(4096);
        bus.set_relay(c.node_id(), tx);
        c.relay_events(
            rx,
            Arc::new(move |body: Vec<u8>| match serde_json::from_slice::<agentdb_orchestrator::bus::Relayed>(&body) {
                Ok(r) => {
                    bus.publish_relayed(r);
                }
                Err(e) => tracing::warn!(error = %e, "cluster: an unreadable relayed event was dropped"),
            }),
        );
    }
    let svc = Services {
        cluster: cluster.clone(),
        edge: edge_sync.clone(),
        fault_delay_ms: fault_delay_ms.clone(),
        security: security.clone(),
        metrics: metrics.clone(),
        db: db.clone(),
        gate: Arc::new(Gate::new(max_concurrent, cfg.limits.max_queued, cfg.limits.tenant_weights.clone())),
        encoders,
        ingest: agentdb_retrieval::IngestLimits {
            max_file_bytes: cfg.ingest.max_file_bytes.min(cfg.limits.max_message_bytes),
            chunk_tokens: cfg.ingest.chunk_tokens,
            chunk_overlap: cfg.ingest.chunk_overlap,
            image: agentdb_models::ImageLimits { max_pixels: cfg.limits.max_image_pixels, ..Default::default() },
            audio: agentdb_models::AudioLimits { max_seconds: cfg.limits.max_audio_seconds },
            video: agentdb_retrieval::VideoOptions {
                limits: agentdb_models::video::VideoLimits {
                    max_seconds: cfg.limits.max_video_seconds,
                    max_pixels: cfg.limits.max_image_pixels,
                    max_frames: cfg.ingest.max_keyframes.max(1),
                },
                interval_s: cfg.ingest.keyframe_interval_secs,
                scene_threshold: cfg.ingest.scene_threshold,
            },
            keep_media: cfg.ingest.keep_media,
        },
        ingest_concurrency: cfg.ingest.concurrency,
        observer: orchestration.observer(),
        bus: orchestration.parts().0,
    };
    let limit = cfg.limits.max_message_bytes;

    // Health: one status per service reflection lists (and "" for the whole server), so
    // a probe of any of them gets SERVING rather than NOT_FOUND.
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    for name in SERVICES {
        health_reporter.set_service_status(*name, tonic_health::ServingStatus::Serving).await;
    }
    // Reflection in both versions: v1, and v1alpha for the clients that only speak it
    // (grpcurl before 1.8.8, Python's grpcio-reflection).
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(agentdb_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(agentdb_proto::a2a::FILE_DESCRIPTOR_SET)
            // Both reflection services listed by both.
            .include_reflection_service(false)
            .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1alpha = reflection().build_v1alpha().context("building reflection service (v1alpha)")?;
    let reflection = reflection().build_v1().context("building reflection service")?;

    tracing::info!(listen = %addr, data_dir = %cfg.data_dir.display(), collections = db.list().len(), device = %device.label, "agentdb serving gRPC (agentdb.v1, grpc.health.v1, reflection)");

    let alerts = Arc::new(crate::anomaly::AlertManager::new(
        Some(cfg.alerts.webhook.trim().to_string()).filter(|w| !w.is_empty()),
        Some(orchestration.parts().0),
    ));
    if cfg.alerts.enabled {
        let a = &cfg.alerts;
        crate::anomaly::start(
            metrics.clone(),
            svc.encoders.clone(),
            alerts.clone(),
            crate::anomaly::DetectorConfig {
                alpha: a.alpha.clamp(0.001, 1.0),
                z_threshold: a.z_threshold,
                fire_after: a.fire_after.max(1),
                clear_after: a.clear_after.max(1),
                warmup: a.warmup,
            },
            Duration::from_millis(a.interval_ms.max(10)),
        );
    }
    let stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
    tokio::spawn(shutdown_signal(stop_tx, stopping.clone(), Duration::from_millis(cfg.shutdown_delay_ms))?);
    // A2A (HTTP routes below) and the workflow engine; both run AgentDB's skills with
    // `svc` as their host.
    let a2a_opts = crate::a2a::Options {
        text_workflow: cfg.a2a.text_workflow.trim().to_string(),
        max_folder_files: cfg.a2a.max_folder_files,
        server_dirs: cfg.workflows.ingest_dirs.clone(),
    };
    let a2a = crate::a2a::service(
        svc.clone(),
        limit.saturating_add(limit / 3).saturating_add(64 * 1024),
        tls.is_some(),
        a2a_opts,
    );
    // Cluster mode: runs are mirrored so another node can take them over
    // (cluster_workflows.rs).
    let run_mirror = cluster.clone().map(crate::cluster_workflows::mirror);
    let workflows = crate::workflows::Workflows::start(
        Arc::new(svc.clone()),
        orchestration.parts(),
        &cfg.workflows,
        svc.ingest.max_file_bytes,
        stop_rx.clone(),
        run_mirror.as_ref().map(|(m, _)| m.clone() as Arc<dyn agentdb_orchestrator::workflow::Mirror>),
    )
    .await
    .map_err(|e| anyhow::anyhow!("workflow state: {e}"))?;
    if let (Some(c), Some((_, rx))) = (&cluster, run_mirror) {
        crate::cluster_workflows::start(c.clone(), workflows.clone(), rx);
    }
    a2a.set_workflows(workflows.clone());
    // MCP (streamable HTTP at /mcp): the same skills, the same limits as A2A.
    let mcp = crate::mcp::service(
        svc.clone(),
        limit.saturating_add(limit / 3).saturating_add(64 * 1024),
        cfg.workflows.ingest_dirs.clone(),
    );
    mcp.set_workflows(workflows.clone());

    // Every gRPC service, as one set of routes: served on the gRPC listener, and called
    // in-process (through the same EdgeLayer: authentication, rate limit, metrics, logs)
    // by the REST gateway on the HTTP listener (crate::rest).
    let routes = tonic::service::Routes::default()
        .add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_v1alpha)
        .add_service(
            v1::collections_server::CollectionsServer::new(svc.clone())
                .max_decoding_message_size(limit)
                .max_encoding_message_size(limit),
        )
        .add_service(
            v1::items_server::ItemsServer::new(svc.clone())
                .max_decoding_message_size(limit)
                .max_encoding_message_size(limit),
        )
        .add_service(v1::models_server::ModelsServer::new(svc.clone()).max_decoding_message_size(limit))
        .add_service(v1::server_server::ServerServer::new(crate::status_rpc::StatusService::start(
            db.clone(),
            security.clone(),
            alerts.clone(),
            cfg.debug.allow_fault_injection.then(|| fault_delay_ms.clone()),
            device.label.clone(),
        )))
        .add_service(
            v1::security_server::SecurityServer::new(crate::security::SecurityService(security.clone()))
                .max_decoding_message_size(limit),
        )
        .add_service(v1::agents_server::AgentsServer::new(orchestration.clone()).max_decoding_message_size(limit))
        .add_service(v1::events_server::EventsServer::new(orchestration.clone()).max_decoding_message_size(limit))
        .add_service(
            v1::queues_server::QueuesServer::new(orchestration.clone())
                .max_decoding_message_size(limit)
                .max_encoding_message_size(limit),
        )
        .add_service(
            v1::standing_queries_server::StandingQueriesServer::new(orchestration).max_decoding_message_size(limit),
        )
        .add_service(
            v1::workflows_server::WorkflowsServer::new(crate::workflows::WorkflowService {
                workflows,
                security: security.clone(),
            })
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit),
        )
        .add_service(crate::a2a::grpc::server(a2a.clone(), limit))
        .add_service(v1::cluster_server::ClusterServer::new(crate::cluster_rpc::ClusterService {
            cluster: cluster.clone(),
            security: security.clone(),
        }));
    let edge = EdgeLayer(limit, metrics.clone(), security.clone());
    let rest = crate::rest::Gateway::new(tower_layer::Layer::layer(&edge, routes.clone().prepare()), limit);

    // HTTP listener: Prometheus metrics, a liveness probe A2A, MCP and REST.
    let http_task = if cfg.http_listen.trim().is_empty() {
        None
    } else {
        let l = tokio::net::TcpListener::bind(&cfg.http_listen)
            .await
            .with_context(|| format!("cannot listen on {} (http_listen)", cfg.http_listen))?;
        let http_addr = l.local_addr()?;
        let console = crate::ui::Console::new(&cfg.ui.dir)?;
        let media = crate::rest::media_router(db.clone(), cluster.clone(), security.clone());
        let (db, enc, m) = (db.clone(), svc.encoders.clone(), metrics.clone());
        let app = axum::Router::new()
            .route(
                "/metrics",
                axum::routing::get(move || {
                    let (db, enc, m) = (db.clone(), enc.clone(), m.clone());
                    async move {
                        let body = tokio::task::spawn_blocking(move || m.render(&db, &enc)).await.unwrap_or_default();
                        ([(http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body)
                    }
                }),
            )
            .route("/healthz", axum::routing::get(|| async { "ok" }))
            // Readiness: 503 once shutting down, or while cut off from NATS in a cluster.
            .route("/readyz", {
                let (stopping, cluster) = (stopping.clone(), cluster.clone());
                axum::routing::get(move || {
                    let (stopping, cluster) = (stopping.clone(), cluster.clone());
                    async move { readiness(&stopping, cluster.as_deref()) }
                })
            })
            // A2A: agent card and JSON-RPC (authenticated like gRPC; see src/a2a.rs).
            // Bodies carry base64 file parts: allow the message limit plus a third.
            .merge(crate::a2a::router(a2a.clone()))
            // MCP: streamable HTTP (src/mcp), authenticated like gRPC.
            .merge(crate::mcp::router(mcp.clone()))
            // REST/JSON under /v1 and its OpenAPI document (src/rest): gRPC in-process.
            .merge(crate::rest::router(rest))
            // Kept media of ingested files, for clients that show hits (src/rest/media.rs).
            .merge(media)
            // Edge sync status and forgetting an edge (src/rest/edge.rs, docs/EDGE.md).
            .merge(crate::rest::edge_router(edge_sync.clone(), security.clone()))
            // The web console (src/ui.rs, docs/UI.md).
            .merge(console.router())
            // Every request: an `http.request` span (parent: the caller's traceparent),
            // x-request-id, and one log line (crate::telemetry::http_layer).
            .layer(axum::middleware::from_fn(crate::telemetry::http_layer));
        tracing::info!(
            listen = %http_addr,
            "serving HTTP (/metrics, /healthz, A2A at {}, MCP at {}, REST at /v1, console at {})",
            crate::a2a::RPC_PATH,
            crate::mcp::PATH,
            crate::ui::PATH
        );
        println!("agentdb http listening on {http_addr}");
        let rx = stop_rx.clone();
        Some(match &tls {
            Some(t) => {
                let l = t.http_listener(l)?;
                tokio::spawn(async move { axum::serve(l, app).with_graceful_shutdown(stopped(rx)).await })
            }
            None => {
                use axum::serve::ListenerExt;
                let l = l.tap_io(|tcp| {
                    let _ = tcp.set_nodelay(true);
                });
                tokio::spawn(async move { axum::serve(l, app).with_graceful_shutdown(stopped(rx)).await })
            }
        })
    };

    // A plain line on stdout that scripts and tests can wait for (printed last, once
    // every listener is bound).
    println!("agentdb listening on {addr}");
    let router = Server::builder()
        // Above hyper's 16 KiB default, so an oversize credential reaches
        // Security::authenticate and is refused there, by name (UNAUTHENTICATED), not
        // with an HTTP 431 that clients report as UNKNOWN.
        .http2_max_header_list_size(256 * 1024)
        .layer(edge)
        .add_routes(routes);
    a2a.advertise_grpc(addr.port());
    match &tls {
        Some(t) => router.serve_with_incoming_shutdown(t.grpc_incoming(listener), stopped(stop_rx)).await,
        None => {
            // No Nagle: a response written in several pieces (headers, a multi-KB
            // message) must not wait for the client's delayed ACK (a 40 ms stall).
            use tokio_stream::StreamExt;
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener).map(|s| {
                if let Ok(s) = &s {
                    let _ = s.set_nodelay(true);
                }
                s
            });
            router.serve_with_incoming_shutdown(incoming, stopped(stop_rx)).await
        }
    }
    .context("gRPC server failed")?;

    for name in SERVICES {
        health_reporter.set_service_status(*name, tonic_health::ServingStatus::NotServing).await;
    }
    if let Some(t) = http_task {
        let _ = t.await;
    }
    let db2 = db.clone();
    tokio::task::spawn_blocking(move || db2.close()).await?;
    tracing::info!("shutdown complete: all acknowledged writes are durable");
    Ok(())
}

fn open_security(cfg: &Config) -> Result<crate::security::Security> {
    use agentdb_orchestrator::security::{AuditLog, KeyStore, Role};
    let dir = cfg.data_dir.join("security");
    let roles = cfg.security.role_table()?;
    let audit = if cfg.security.audit {
        let path = dir.join("audit.log");
        let log = if cfg.security.audit_checkpoints_enabled()? {
            // Signed checkpoints of the chain's head to a separate sink; the log is checked
            // against the ones already there (a truncated or rewritten log stops the start).
            use agentdb_orchestrator::security::{CheckpointKey, CheckpointSink};
            let s = &cfg.security;
            let key = CheckpointKey::load(std::path::Path::new(s.audit_checkpoint_key_file.trim()))
                .map_err(|e| anyhow::anyhow!("security.audit_checkpoint_key_file: {e}"))?;
            let sink = CheckpointSink {
                path: s.audit_checkpoint_file.trim().into(),
                key,
                every_records: s.audit_checkpoint_every_records,
                every_secs: s.audit_checkpoint_every_secs,
            };
            tracing::info!(file = %sink.path.display(), key_id = %sink.key.id(), every_records = sink.every_records,
                every_secs = sink.every_secs, "audit log checkpoints enabled");
            AuditLog::open_with_checkpoints(&path, sink)
        } else {
            AuditLog::open(&path)
        };
        Some(Arc::new(log.map_err(|e| anyhow::anyhow!("audit log: {e}"))?))
    } else {
        None
    };
    let keys = match cfg.security.auth.as_str() {
        "none" => None,
        "api_key" => {
            let ks = KeyStore::open(&dir).map_err(|e| anyhow::anyhow!("{e}"))?;
            ks.set_roles(roles.clone());
            for (id, role) in ks.undefined_roles() {
                tracing::warn!(key_id = %id, role = %role, "API key names a role the configuration does not define; it is refused until the role is defined again");
            }
            let bootstrap = cfg.security.bootstrap_key_file.trim();
            if !bootstrap.is_empty() {
                // A key made elsewhere (the Kubernetes operator's Secret): imported once.
                let presented = std::fs::read_to_string(bootstrap)
                    .with_context(|| format!("security.bootstrap_key_file: cannot read {bootstrap}"))?;
                if ks
                    .import("bootstrap-admin", &Role::Admin, &presented)
                    .map_err(|e| anyhow::anyhow!("security.bootstrap_key_file {bootstrap}: {e}"))?
                {
                    tracing::info!(file = %bootstrap, "imported the bootstrap admin API key");
                }
            } else if ks.is_empty() {
                // First start with authentication on: create an admin key, readable only
                // by this user, and say where it is (it is never logged).
                let (key, secret) =
                    ks.create("bootstrap-admin", &Role::Admin, vec![], None).map_err(|e| anyhow::anyhow!("{e}"))?;
                let path = dir.join("bootstrap-admin.key");
                {
                    use std::io::Write;
                    use std::os::unix::fs::OpenOptionsExt;
                    let mut f =
                        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&path)?;
                    writeln!(f, "{secret}")?;
                }
                tracing::warn!(key_id = %key.id, file = %path.display(), "created the bootstrap admin API key; store it safely and delete the file");
                eprintln!("agentdb: bootstrap admin API key written to {}", path.display());
            }
            Some(Arc::new(ks))
        }
        other => anyhow::bail!("security.auth must be \"none\" or \"api_key\", got \"{other}\""),
    };
    let oidc = if cfg.security.oidc.enabled {
        let settings = cfg.security.oidc.settings(&roles)?;
        let v = agentdb_orchestrator::security::OidcVerifier::new(settings)
            .map_err(|e| anyhow::anyhow!("security.oidc: {e}"))?;
        tracing::info!(issuer = %cfg.security.oidc.issuer, kids = ?v.key_ids(), "OIDC bearer tokens enabled");
        Some(Arc::new(v))
    } else {
        None
    };
    let mfa = agentdb_orchestrator::security::MfaPolicy::new(
        &cfg.security.mfa_required_for,
        cfg.security.mfa_exempt_api_keys,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let rate = crate::quota::RateLimiter::new(cfg.security.rate_limit_per_sec, cfg.security.rate_limit_burst);
    let mtls_required = cfg.security.tls.client_cert_required();
    let masking = cfg.security.masking()?;
    let storage = {
        let default =
            crate::quota::Limit { bytes: cfg.security.storage_quota_bytes, items: cfg.security.storage_quota_items };
        let any_role =
            cfg.security.roles.values().any(|r| r.storage_quota_bytes.is_some() || r.storage_quota_items.is_some());
        if default != crate::quota::Limit::default() || any_role {
            Some(crate::quota::StorageQuotas::open(&dir, default)?)
        } else {
            None
        }
    };
    Ok(crate::security::Security {
        keys,
        oidc,
        mfa,
        audit,
        rate,
        mtls_required,
        masking,
        roles,
        storage,
        cluster: Default::default(),
    })
}
