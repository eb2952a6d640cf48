//! gRPC services `agentdb.v1.Collections`, `agentdb.v1.Items` and `agentdb.v1.Models`.
//!
//! Handlers only convert: engine and model calls run on the blocking pool behind a
//! bounded admission gate, so CPU work never sits on tokio workers and overload turns
//! into RESOURCE_EXHAUSTED instead of unbounded queues.

use crate::security::{row_policy, Security};
use crate::status::{to_status, ApiError};
use agentdb_engine::fusion::FusionMode;
use agentdb_engine::{Collection, Database, Filter, Hit, SearchRequest};
use agentdb_orchestrator::security::{Action, Principal};
use agentdb_proto::convert::*;
use agentdb_proto::v1;
use agentdb_retrieval::{ingest_file, Encoders, IngestLimits, IngestOutcome, IngestStatus, Observer};
use agentdb_retrieval::{CrossQuery, KeywordQuery, QueryInput, Retrieval};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::Semaphore;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

/// Admission control for CPU-bound work, fair across tenants.
///
/// At most `max_concurrent` requests run; the rest wait in one queue per tenant (the
/// authenticated principal, or the client connection without authentication) and a
/// freed slot goes to the next tenant in round-robin order, `weight` turns at a time
/// (`limits.tenant_weights`, default 1). So a client flooding the server waits behind
/// its own requests, and a quiet one gets the next free slot. At most `max_waiting`
/// requests wait in all; beyond that RESOURCE_EXHAUSTED.
/// The `retry-after-ms` hint on a refusal made before any work was done (the request rate
/// limiter, an overloaded admission gate, a shutdown): clients may retry a write after it.
pub const OVERLOAD_RETRY_MS: u64 = 100;
pub const SHUTDOWN_RETRY_MS: u64 = 1000;

pub fn retry_hint(mut st: Status, ms: u64) -> Status {
    if let Ok(v) = ms.to_string().parse() {
        st.metadata_mut().insert("retry-after-ms", v);
    }
    st
}

pub struct Gate {
    max_concurrent: usize,
    max_waiting: usize,
    weights: std::collections::HashMap<String, u32>,
    state: parking_lot::Mutex<GateState>,
}

#[derive(Default)]
struct GateState {
    running: usize,
    waiting: usize,
    queues: std::collections::HashMap<String, TenantQueue>,
    /// Tenants with waiting requests, in service order.
    ring: std::collections::VecDeque<String>,
}

#[derive(Default)]
struct TenantQueue {
    waiters: std::collections::VecDeque<tokio::sync::oneshot::Sender<()>>,
    /// Turns left in this round.
    turns: u32,
}

/// A running request's slot; handed to the next waiter when dropped.
struct Slot<'a>(&'a Gate);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.release();
    }
}

/// A waiting request; if it is dropped after being handed a slot (the client went
/// away), the slot is passed on.
struct Pending<'a> {
    gate: &'a Gate,
    rx: Option<tokio::sync::oneshot::Receiver<()>>,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if let Some(mut rx) = self.rx.take() {
            rx.close();
            if rx.try_recv().is_ok() {
                self.gate.release();
            }
        }
    }
}

impl Gate {
    pub fn new(max_concurrent: usize, max_waiting: usize, weights: std::collections::HashMap<String, u32>) -> Self {
        Gate { max_concurrent: max_concurrent.max(1), max_waiting, weights, state: Default::default() }
    }

    fn weight(&self, tenant: &str) -> u32 {
        self.weights.get(tenant).copied().unwrap_or(1).max(1)
    }

    /// Give a finished request's slot to the next tenant's oldest waiter.
    fn release(&self) {
        let mut st = self.state.lock();
        loop {
            let Some(t) = st.ring.pop_front() else {
                st.running -= 1;
                return;
            };
            let w = self.weight(&t);
            let Some(q) = st.queues.get_mut(&t) else { continue };
            let tx = q.waiters.pop_front();
            q.turns = q.turns.saturating_sub(1);
            let (empty, turns_left) = (q.waiters.is_empty(), q.turns);
            if empty {
                st.queues.remove(&t);
            } else if turns_left > 0 {
                st.ring.push_front(t);
            } else {
                if let Some(q) = st.queues.get_mut(&t) {
                    q.turns = w;
                }
                st.ring.push_back(t);
            }
            let Some(tx) = tx else { continue };
            st.waiting -= 1;
            if tx.send(()).is_ok() {
                return; // the slot (still counted in `running`) is theirs now
            }
        }
    }

    /// Wait for a slot (fairly across tenants): the slot and the tenant it is for.
    async fn admit(&self) -> Result<(Slot<'_>, String), Status> {
        let tenant = crate::telemetry::current_tenant().unwrap_or_else(|| "anonymous".into());
        let rx = {
            let mut st = self.state.lock();
            if st.running < self.max_concurrent && st.waiting == 0 {
                st.running += 1;
                None
            } else {
                if st.waiting >= self.max_waiting {
                    // Refused before any work: safe to retry, after the hint.
                    return Err(retry_hint(
                        Status::resource_exhausted(format!(
                            "server overloaded: more than {} requests waiting; retry with backoff",
                            self.max_waiting
                        )),
                        OVERLOAD_RETRY_MS,
                    ));
                }
                let (tx, rx) = tokio::sync::oneshot::channel();
                let w = self.weight(&tenant);
                let q = st
                    .queues
                    .entry(tenant.clone())
                    .or_insert_with(|| TenantQueue { waiters: Default::default(), turns: w });
                let first = q.waiters.is_empty();
                q.waiters.push_back(tx);
                if first {
                    st.ring.push_back(tenant.clone());
                }
                st.waiting += 1;
                Some(rx)
            }
        };
        if let Some(rx) = rx {
            let mut pending = Pending { gate: self, rx: Some(rx) };
            let got = pending.rx.as_mut().expect("set above").await;
            pending.rx = None;
            got.map_err(|_| retry_hint(Status::unavailable("server is shutting down"), SHUTDOWN_RETRY_MS))?;
        }
        Ok((Slot(self), tenant))
    }

    /// Run `f` on the blocking pool once a slot is free.
    pub async fn run<T, F>(&self, f: F) -> Result<T, Status>
    where
        F: FnOnce() -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        let (_slot, tenant) = self.admit().await?;
        // The request's span goes with the work to the blocking pool, and its tenant to
        // the encoders' fair queues.
        let span = tracing::Span::current();
        match tokio::task::spawn_blocking(move || agentdb_models::batcher::with_tenant(&tenant, || span.in_scope(f)))
            .await
        {
            Ok(r) => r.map_err(to_status),
            Err(e) => {
                tracing::error!(error = %e, "request task panicked");
                Err(Status::internal("internal error while processing the request"))
            }
        }
    }

    /// Run `f` on this thread once a slot is free: for work known to take well under a
    /// millisecond (a vector search over indexed data), where the hand-off to the
    /// blocking pool and back would cost more than the work. Same admission, fairness
    /// and panic handling as [`Gate::run`].
    pub async fn run_inline<T, F>(&self, f: F) -> Result<T, Status>
    where
        F: FnOnce() -> Result<T, ApiError>,
    {
        let (_slot, tenant) = self.admit().await?;
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            agentdb_models::batcher::with_tenant(&tenant, f)
        })) {
            Ok(r) => r.map_err(to_status),
            Err(_) => {
                tracing::error!("request task panicked");
                Err(Status::internal("internal error while processing the request"))
            }
        }
    }
}

/// A single-vector search runs on the request's own thread when at most this many rows
/// would be scanned exactly (the write buffer and segments whose index is being built):
/// about a millisecond of work at 384 dimensions.
const INLINE_EXACT_ROWS: usize = 8_192;

#[derive(Clone)]
pub struct Services {
    pub security: Arc<Security>,
    /// Artificial delay before each search (fault injection for alert tests).
    pub fault_delay_ms: Arc<std::sync::atomic::AtomicU64>,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub db: Arc<Database>,
    pub gate: Arc<Gate>,
    pub encoders: Arc<Encoders>,
    pub ingest: IngestLimits,
    pub ingest_concurrency: usize,
    /// Told about every write (standing queries).
    pub observer: Arc<dyn Observer>,
    /// The event bus (`ingest.finished`).
    pub bus: Arc<agentdb_orchestrator::bus::Bus>,
    /// Cluster mode: this node's membership (sharded collections go through it).
    pub cluster: Option<Arc<agentdb_cluster::Cluster>>,
    /// Edge sync: cached hub collections are searched and read through it.
    pub edge: Option<Arc<agentdb_edge::Edge>>,
}

/// The response header that says an edge answered from its cache while the hub was
/// unreachable (docs/EDGE.md).
pub const PARTIAL_HEADER: &str = "agentdb-partial";

fn mark_partial<T>(resp: &mut Response<T>, why: Option<String>) {
    if let Some(why) = why {
        let ascii: String = why.chars().map(|c| if c.is_ascii() && !c.is_ascii_control() { c } else { '?' }).collect();
        if let Ok(v) = ascii.parse() {
            resp.metadata_mut().insert(PARTIAL_HEADER, v);
        }
    }
}

/// A cross-modal hit on the wire (its payload as JSON when the query asked for it).
pub fn cross_hit_to_wire(h: agentdb_retrieval::Hit) -> v1::Hit {
    v1::Hit {
        id: h.id,
        score: h.score,
        payload_json: h.payload.map(|p| p.to_string()).unwrap_or_default(),
        vector: None,
        source: h.source,
        modality: h.modality,
        part: h.part,
        explain: h
            .explain
            .into_iter()
            .map(|e| v1::ListScore {
                list: e.list,
                rank: e.rank as u32,
                score: e.score,
                matched: e.matched,
                snippet: e.snippet,
                contribution: e.contribution,
                coverage: e.coverage,
            })
            .collect(),
    }
}

/// What ingesting one file did, on the wire (a failure's message as its status gives it).
pub fn outcome_to_wire(o: IngestOutcome) -> v1::IngestResult {
    let status = o.status.as_str().to_string();
    let error = match o.status {
        IngestStatus::Failed(e) => to_status(e.into()).message().to_string(),
        _ => String::new(),
    };
    v1::IngestResult {
        source: o.source,
        content_sha256: o.content_sha256,
        media_type: o.media_type,
        items: o.items,
        status,
        error,
    }
}

/// What a search request asks: a cross-modal query (text, media, or keywords alone,
/// `None`), or a raw vector.
enum SearchQuery {
    Cross(Option<QueryInput>),
    Vector,
}

/// The query a search request carries (exactly one of vector, text, image, audio,
/// video; or keywords alone), taken out of the request.
fn search_query(r: &mut v1::SearchRequest) -> Result<SearchQuery, Status> {
    let text = (!r.text.trim().is_empty()).then(|| r.text.clone());
    let image = (!r.image.is_empty()).then(|| std::mem::take(&mut r.image));
    let audio = (!r.audio.is_empty()).then(|| std::mem::take(&mut r.audio));
    let video = (!r.video.is_empty()).then(|| std::mem::take(&mut r.video));
    let given = [text.is_some(), image.is_some(), audio.is_some(), video.is_some(), r.vector.is_some()]
        .iter()
        .filter(|g| **g)
        .count();
    let keyword_only = given == 0 && !r.keyword_query.trim().is_empty();
    if given > 1 || (given == 0 && !keyword_only) {
        return Err(Status::invalid_argument(
            "search needs a query: exactly one of `vector`, `text`, `image`, `audio` or `video` \
             (or `keyword_query` alone for a keyword search)",
        ));
    }
    if r.vector.is_some() && (!r.keyword_query.is_empty() || r.mode != 0) {
        return Err(Status::invalid_argument(
            "`keyword_query` and `mode` go with text, image, audio or video queries, not with `vector`",
        ));
    }
    if let Some(v) = r.vector.as_mut() {
        agentdb_proto::convert::unpack_vector(v, || "the query".into()).map_err(|e| to_status(e.into()))?;
        return Ok(SearchQuery::Vector);
    }
    let input = text
        .map(QueryInput::Text)
        .or(image.map(QueryInput::Image))
        .or(audio.map(QueryInput::Audio))
        .or(video.map(QueryInput::Video));
    Ok(SearchQuery::Cross(input))
}

/// A search request as a retrieval query (`filter`: the request's filter and the
/// principal's row policy; `hidden`: payload keys the principal may not read).
fn cross_query(
    r: v1::SearchRequest,
    input: Option<QueryInput>,
    filter: Option<Filter>,
    hidden: Vec<String>,
) -> Result<CrossQuery, Status> {
    Ok(CrossQuery {
        input,
        keyword: KeywordQuery {
            mode: retrieval_from_wire(r.mode),
            query: r.keyword_query,
            fields: r.keyword_fields.into_iter().collect(),
            hidden,
        },
        space: r.space,
        k: top_k(r.top_k),
        filter,
        params: params_from_wire(r.params),
        mode: match v1::Fusion::try_from(r.fusion) {
            Ok(v1::Fusion::Weighted) => FusionMode::Weighted,
            Ok(v1::Fusion::Rrf) => FusionMode::Rrf,
            Ok(v1::Fusion::Calibrated | v1::Fusion::Unspecified) => FusionMode::Calibrated,
            Err(_) => return Err(Status::invalid_argument(format!("unknown fusion {}", r.fusion))),
        },
        weights: r.weights.into_iter().collect(),
        with_payload: r.with_payload,
        explain: r.explain,
    })
}

/// A raw-vector search of one space (blocking).
/// A single-vector search of the collection `r` names (`col`: its lookup, done once by
/// the caller).
fn vector_search(
    col: agentdb_engine::Result<Arc<Collection>>,
    r: v1::SearchRequest,
    filter: Option<&Filter>,
) -> Result<Vec<Hit>, ApiError> {
    let k = top_k(r.top_k);
    let list =
        tracing::info_span!("search.list", space = %r.space, modality = "vector", k, hits = tracing::field::Empty)
            .entered();
    let mut res = col?.search(SearchRequest {
        space: &r.space,
        queries: vec![r.vector.map(|v| v.values).unwrap_or_default()],
        k,
        filter,
        params: params_from_wire(r.params),
        with_payload: r.with_payload,
        with_vectors: r.with_vectors,
    })?;
    list.record("hits", res.first().map_or(0, Vec::len));
    Ok(res.pop().unwrap_or_default())
}

impl Services {
    /// Whether `p` may ingest this file: write access, the ingest quota, and no row
    /// policy (ingested items carry server-made payloads that no row policy names).
    fn may_ingest(&self, p: Option<&Principal>, msg: &v1::IngestRequest) -> Result<(), Status> {
        self.security.authorize(p, Action::Write, &msg.collection, "Ingest")?;
        self.security.check_ingest(p, msg.content.len())?;
        if p.is_some_and(|p| p.row_filter.is_some()) {
            return Err(Status::permission_denied("keys with a row policy cannot ingest files; upsert items instead"));
        }
        Ok(())
    }

    /// Ingest one file on the admission gate, charge the quota, count it.
    async fn ingest_one(&self, p: Option<&Principal>, msg: v1::IngestRequest) -> v1::IngestResult {
        let (source, content_len, collection) = (msg.source.clone(), msg.content.len(), msg.collection.clone());
        let (db, enc, lim, obs) = (self.db.clone(), self.encoders.clone(), self.ingest, self.observer.clone());
        let sharded = self.sharded_target(&msg.collection, agentdb_cluster::Token::default());
        let result = self
            .gate
            .run(move || match sharded {
                Some(t) => Ok(ingest_file(&t, &enc, &msg.source, &msg.content, lim, obs.as_ref())),
                None => {
                    let c = db.collection(&msg.collection)?;
                    Ok(ingest_file(&*c, &enc, &msg.source, &msg.content, lim, obs.as_ref()))
                }
            })
            .await;
        let result = match result {
            Ok(r) => outcome_to_wire(r),
            Err(st) => failed_result(source, &st),
        };
        if result.status == "ingested" {
            self.security.charge_ingest(p, content_len, result.items);
        }
        self.metrics.observe_ingest(&result.status, &result.media_type, result.items as u64);
        tracing::info!(collection = %collection, source = %result.source, status = %result.status, items = result.items, error = %result.error, "ingest");
        result
    }
}

/// A file that was not ingested, and why.
fn failed_result(source: String, st: &Status) -> v1::IngestResult {
    v1::IngestResult { source, status: "failed".into(), error: st.message().to_string(), ..Default::default() }
}

/// A request's `top_k` (0: the default, 10).
fn top_k(k: u32) -> usize {
    if k == 0 {
        10
    } else {
        k as usize
    }
}

/// The wire's retrieval mode.
fn retrieval_from_wire(m: i32) -> Retrieval {
    match v1::RetrievalMode::try_from(m) {
        Ok(v1::RetrievalMode::RetrievalDense) => Retrieval::Dense,
        Ok(v1::RetrievalMode::RetrievalKeyword) => Retrieval::Keyword,
        Ok(v1::RetrievalMode::RetrievalHybrid) => Retrieval::Hybrid,
        _ => Retrieval::Auto,
    }
}

fn need(name: &str, what: &str) -> Result<(), Status> {
    if name.is_empty() {
        return Err(Status::invalid_argument(format!("{what} is required")));
    }
    Ok(())
}

/// Internal collections (`_agents`, `_queues`) are managed by the orchestrator only.
fn internal_name(name: &str) -> Result<(), Status> {
    if agentdb_orchestrator::is_internal(name) {
        return Err(Status::invalid_argument(format!(
            "collection names starting with '_' are reserved for internal use ('{name}')"
        )));
    }
    Ok(())
}

/// Refuse vectors that name an encoder other than the one their space is bound to.
fn check_encoders(col: &Collection, items: &[v1::Item]) -> Result<(), Status> {
    for (i, it) in items.iter().enumerate() {
        for (space_name, v) in &it.vectors {
            if v.encoder.is_empty() {
                continue;
            }
            let space = if space_name.is_empty() { col.spec.resolve_space("") } else { col.spec.space(space_name) }
                .map_err(|e| to_status(e.into()))?
                .1;
            if let Some(bound) = &space.encoder {
                if agentdb_engine::embedding_family(bound) != agentdb_engine::embedding_family(&v.encoder) {
                    return Err(Status::invalid_argument(format!(
                        "item {i}: vector for space '{}' comes from encoder '{}', but the space holds vectors from '{bound}'",
                        space.name, v.encoder
                    )));
                }
            }
        }
    }
    Ok(())
}

#[tonic::async_trait]
impl v1::collections_server::Collections for Services {
    async fn create(
        &self,
        req: Request<v1::CreateCollectionRequest>,
    ) -> Result<Response<v1::CreateCollectionResponse>, Status> {
        let principal = req.extensions().get::<Principal>().cloned();
        let r = req.into_inner();
        need(&r.name, "collection name")?;
        internal_name(&r.name)?;
        self.security.authorize(principal.as_ref(), Action::Admin, &r.name, "CreateCollection")?;
        // A space bound by model name (`--space images:MODEL`, no dimension): the loaded
        // encoder's id and dimension.
        let mut wire = r.spaces;
        for s in &mut wire {
            if !s.encoder.is_empty() && !s.encoder.contains('@') {
                let (id, dim) = self.encoders.by_name(&s.encoder).ok_or_else(|| {
                    Status::invalid_argument(format!(
                        "space '{}': no loaded encoder is called '{}' (loaded: {})",
                        s.name,
                        s.encoder,
                        self.encoders.loaded_ids().join(", ")
                    ))
                })?;
                if s.dim != 0 && s.dim as usize != dim {
                    return Err(Status::invalid_argument(format!(
                        "space '{}': encoder '{}' gives {dim} dimensions, not {}",
                        s.name, s.encoder, s.dim
                    )));
                }
                (s.encoder, s.dim) = (id, dim as u32);
            }
        }
        let mut spaces =
            wire.into_iter().map(space_from_wire).collect::<Result<Vec<_>, _>>().map_err(|e| to_status(e.into()))?;
        if r.multimodal {
            spaces.extend(self.encoders.multimodal_spaces().map_err(|e| to_status(e.into()))?);
        }
        if spaces.is_empty() {
            return Err(Status::invalid_argument("at least one vector space is required (or multimodal)"));
        }
        let kw = r.keyword.unwrap_or_default();
        let keyword = (!kw.disabled).then(|| agentdb_engine::keyword::KeywordSpec {
            language: if kw.language.is_empty() { "english".into() } else { kw.language },
            searchable: kw.searchable,
        });
        if r.shards > 0 {
            let spec = agentdb_engine::CollectionSpec { name: r.name, spaces, keyword };
            let info = self.cluster_create(spec, r.shards, r.replicas).await?;
            return Ok(Response::new(v1::CreateCollectionResponse { info: Some(info) }));
        }
        if r.replicas > 0 {
            return Err(Status::invalid_argument("replicas needs shards (a sharded collection, cluster mode)"));
        }
        let db = self.db.clone();
        let info = self
            .gate
            .run(move || {
                let c = db.create_collection(agentdb_engine::CollectionSpec { name: r.name, spaces, keyword })?;
                tracing::info!(collection = %c.name(), "collection created");
                Ok(c.info()?)
            })
            .await?;
        Ok(Response::new(v1::CreateCollectionResponse { info: Some(info_to_wire(info)) }))
    }

    async fn list(
        &self,
        req: Request<v1::ListCollectionsRequest>,
    ) -> Result<Response<v1::ListCollectionsResponse>, Status> {
        let principal = req.extensions().get::<Principal>().cloned();
        let (db, security) = (self.db.clone(), self.security.clone());
        let p2 = principal.clone();
        let list = self.gate.run(move || security.visible_collections(&db, p2.as_ref())).await?;
        let mut collections: Vec<v1::CollectionInfo> = list.into_iter().map(info_to_wire).collect();
        collections.extend(self.cluster_infos(principal.as_ref()));
        Ok(Response::new(v1::ListCollectionsResponse { collections }))
    }

    async fn describe(
        &self,
        req: Request<v1::DescribeCollectionRequest>,
    ) -> Result<Response<v1::DescribeCollectionResponse>, Status> {
        let principal = req.extensions().get::<Principal>().cloned();
        let r = req.into_inner();
        need(&r.name, "collection name")?;
        self.security.authorize(principal.as_ref(), Action::Read, &r.name, "DescribeCollection")?;
        if let Some(c) = self.sharded(&r.name) {
            return self.cluster_describe(c, principal, r.name).await;
        }
        let db = self.db.clone();
        let info = self
            .gate
            .run(move || {
                let c = db.collection(&r.name)?;
                let mut info = c.info()?;
                crate::security::scope_info(row_policy(principal.as_ref())?.as_ref(), &c, &mut info);
                Ok(info)
            })
            .await?;
        Ok(Response::new(v1::DescribeCollectionResponse { info: Some(info_to_wire(info)) }))
    }

    async fn drop(
        &self,
        req: Request<v1::DropCollectionRequest>,
    ) -> Result<Response<v1::DropCollectionResponse>, Status> {
        let principal = req.extensions().get::<Principal>().cloned();
        let r = req.into_inner();
        need(&r.name, "collection name")?;
        internal_name(&r.name)?;
        self.security.authorize(principal.as_ref(), Action::Admin, &r.name, "DropCollection")?;
        if let Some(c) = self.sharded(&r.name) {
            c.drop_collection(&r.name).await.map_err(|e| to_status(ApiError::from(e)))?;
            return Ok(Response::new(v1::DropCollectionResponse {}));
        }
        let db = self.db.clone();
        self.gate.run(move || Ok(db.drop_collection(&r.name)?)).await?;
        Ok(Response::new(v1::DropCollectionResponse {}))
    }

    async fn flush(&self, req: Request<v1::FlushRequest>) -> Result<Response<v1::FlushResponse>, Status> {
        let principal = req.extensions().get::<Principal>().cloned();
        let r = req.into_inner();
        need(&r.collection, "collection name")?;
        crate::telemetry::record_collection(&r.collection);
        self.security.authorize(principal.as_ref(), Action::Write, &r.collection, "Flush")?;
        if let Some(c) = self.sharded(&r.collection) {
            return self.cluster_flush(c, r).await;
        }
        let db = self.db.clone();
        let info = self
            .gate
            .run(move || {
                let c = db.collection(&r.collection)?;
                if r.optimize {
                    c.optimize()?;
                } else {
                    c.flush()?;
                }
                Ok(c.info()?)
            })
            .await?;
        Ok(Response::new(v1::FlushResponse { info: Some(info_to_wire(info)) }))
    }
}

type ResultStream = Pin<Box<dyn Stream<Item = Result<v1::IngestResult, Status>> + Send>>;

#[tonic::async_trait]
impl v1::items_server::Items for Services {
    async fn upsert(&self, req: Request<v1::UpsertRequest>) -> Result<Response<v1::UpsertResponse>, Status> {
        let principal = req.extensions().get::<Principal>().cloned();
        let r = req.into_inner();
        need(&r.collection, "collection name")?;
        crate::telemetry::record_collection(&r.collection);
        self.security.authorize(principal.as_ref(), Action::Write, &r.collection, "Upsert")?;
        if let Some(c) = self.sharded(&r.collection) {
            return self.cluster_upsert(c, principal, r).await;
        }
        let db = self.db.clone();
        let security = self.security.clone();
        let observer = self.observer.clone();
        let ids = self
            .gate
            .run(move || {
                let c = db.collection(&r.collection)?;
                check_encoders(&c, &r.items)?;
                let items = r
                    .items
                    .into_iter()
                    .enumerate()
                    .map(|(i, it)| item_from_wire(it, i))
                    .collect::<Result<Vec<_>, _>>()?;
                if let Some(row) = row_policy(principal.as_ref())? {
                    // Every value the payload carries under the policy's fields must satisfy
                    // it (an array with one matching element is not enough: readers of the
                    // other elements' tenants would see the item).
                    if let Some(i) = items.iter().position(|it| !row.holds_for_every_value(&it.payload)) {
                        return Err(Status::permission_denied(format!(
                            "item {i} ('{}'): its payload does not satisfy this key's row policy (every value \
                             of a field the policy names, each element of an array included, must satisfy it)",
                            items[i].id
                        ))
                        .into());
                    }
                    // Replacing an existing item outside the policy is refused too.
                    let ids: Vec<String> = items.iter().map(|it| it.id.clone()).filter(|id| !id.is_empty()).collect();
                    if let Some(old) = c.get(&ids, false)?.into_iter().find(|old| !row.matches(&old.payload)) {
                        return Err(Status::permission_denied(format!(
                            "item '{}' exists outside this key's row policy",
                            old.id
                        ))
                        .into());
                    }
                }
                let charge = security.charge_upsert(principal.as_ref(), &c, &items)?;
                // A copy for standing-query matching, only when a query watches this collection.
                let watched = observer.watches(c.name()).then(|| items.clone());
                let ids = c.upsert(items).map_err(|e| {
                    security.refund(charge);
                    ApiError::from(e)
                })?;
                if let Some(items) = watched {
                    observer.items_written(c.name(), &items, &ids);
                }
                Ok(ids)
            })
            .await?;
        Ok(Response::new(v1::UpsertResponse { ids, consistency_token: String::new() }))
    }

    async fn get(&self, req: Request<v1::GetRequest>) -> Result<Response<v1::GetResponse>, Status> {
        let principal = req.extensions().get::<Principal>().cloned();
        let r = req.into_inner();
        need(&r.collection, "collection name")?;
        crate::telemetry::record_collection(&r.collection);
        self.security.authorize(principal.as_ref(), Action::Read, &r.collection, "Get")?;
        if let Some(c) = self.sharded(&r.collection) {
            return self.cluster_get(c, principal, r).await;
        }
        let db = self.db.clone();
        let edge = self.edge.clone().filter(|e| e.is_cache(&r.collection));
        let items = self
            .gate
            .run(move || {
                let col = db.collection(&r.collection)?;
                let (mut items, why) = match &edge {
                    Some(e) => e.cache_get(&col, &r.ids, r.with_vectors)?,
                    None => (col.get(&r.ids, r.with_vectors)?, None),
                };
                if let Some(row) = row_policy(principal.as_ref())? {
                    items.retain(|it| row.matches(&it.payload));
                }
                Ok((items, principal, why))
            })
            .await?;
        let (mut items, principal, why) = items;
        for it in &mut items {
            self.security.mask(principal.as_ref(), &mut it.payload);
        }
        let mut resp = Response::new(v1::GetResponse { items: items.into_iter().map(item_to_wire).collect() });
        mark_partial(&mut resp, why);
        Ok(resp)
    }

    async fn delete(&self, req: Request<v1::DeleteRequest>) -> Result<Response<v1::DeleteResponse>, Status> {
        let principal = req.extensions().get::<Principal>().cloned();
        let r = req.into_inner();
        need(&r.collection, "collection name")?;
        crate::telemetry::record_collection(&r.collection);
        self.security.authorize(principal.as_ref(), Action::Write, &r.collection, "Delete")?;
        if r.ids.is_empty() == r.filter.trim().is_empty() {
            return Err(Status::invalid_argument("delete needs either ids or a filter (exactly one of them)"));
        }
        if let Some(c) = self.sharded(&r.collection) {
            return self.cluster_delete(c, principal, r).await;
        }
        let db = self.db.clone();
        let scoped = self.security.scoped_filter(principal.as_ref(), &r.filter)?;
        let security = self.security.clone();
        let n = self
            .gate
            .run(move || {
                let c = db.collection(&r.collection)?;
                let row = row_policy(principal.as_ref())?;
                Ok(match (scoped, r.filter.trim().is_empty()) {
                    (Some(f), false) => c.delete_by_filter(&f)?,
                    _ => match row {
                        // Only ids whose items fall inside the row policy.
                        Some(row) => {
                            let ids: Vec<String> = c
                                .get(&r.ids, false)?
                                .into_iter()
                                .filter(|it| row.matches(&it.payload))
                                .map(|it| it.id)
                                .collect();
                            c.delete(&ids)?
                        }
                        // Tracked storage: the deleted items' size goes back to the quota.
                        None if security.storage_tracked(principal.as_ref()) => {
                            let gone = c.get(&r.ids, true)?;
                            let ids: Vec<String> = gone.iter().map(|it| it.id.clone()).collect();
                            let n = c.delete(&ids)?;
                            security.credit_deleted(principal.as_ref(), &gone);
                            n
                        }
                        None => c.delete(&r.ids)?,
                    },
                })
            })
            .await?;
        Ok(Response::new(v1::DeleteResponse { deleted: n as u64, consistency_token: String::new() }))
    }

    async fn count(&self, req: Request<v1::CountRequest>) -> Result<Response<v1::CountResponse>, Status> {
        let principal = req.extensions().get::<Principal>().cloned();
        let r = req.into_inner();
        need(&r.collection, "collection name")?;
        crate::telemetry::record_collection(&r.collection);
        self.security.authorize(principal.as_ref(), Action::Read, &r.collection, "Count")?;
        let db = self.db.clone();
        let f = self.security.scoped_filter(principal.as_ref(), &r.filter)?;
        if let Some(c) = self.sharded(&r.collection) {
            return self.cluster_count(c, f, r).await;
        }
        let n = self.gate.run(move || Ok(db.collection(&r.collection)?.count(f.as_ref())?)).await?;
        Ok(Response::new(v1::CountResponse { count: n }))
    }

    async fn scroll(&self, req: Request<v1::ScrollRequest>) -> Result<Response<v1::ScrollResponse>, Status> {
        let principal = req.extensions().get::<Principal>().cloned();
        let r = req.into_inner();
        need(&r.collection, "collection name")?;
        crate::telemetry::record_collection(&r.collection);
        self.security.authorize(principal.as_ref(), Action::Read, &r.collection, "Scroll")?;
        let limit = match r.limit {
            0 => 100,
            n if n as usize > agentdb_engine::MAX_SCROLL_LIMIT => {
                return Err(Status::invalid_argument(format!(
                    "limit {n} exceeds the scroll page limit of {}",
                    agentdb_engine::MAX_SCROLL_LIMIT
                )))
            }
            n => n as usize,
        };
        let f = self.security.scoped_filter(principal.as_ref(), &r.filter)?;
        let (items, next) = match self.sharded(&r.collection) {
            Some(c) => self.cluster_scroll(c, f, limit, &r).await?,
            None => {
                let (db, name, after, with_vectors) =
                    (self.db.clone(), r.collection.clone(), r.after.clone(), r.with_vectors);
                self.gate
                    .run(move || Ok(db.collection(&name)?.scroll(f.as_ref(), &after, limit, with_vectors)?))
                    .await?
            }
        };
        let items = items
            .into_iter()
            .map(|mut it| {
                self.security.mask(principal.as_ref(), &mut it.payload);
                let mut w = item_to_wire(it);
                if !r.with_payload {
                    w.payload_json.clear();
                }
                w
            })
            .collect();
        Ok(Response::new(v1::ScrollResponse { items, next_after: next.unwrap_or_default() }))
    }

    async fn search(&self, req: Request<v1::SearchRequest>) -> Result<Response<v1::SearchResponse>, Status> {
        let principal = req.extensions().get::<Principal>().cloned();
        let mut r = req.into_inner();
        need(&r.collection, "collection name")?;
        crate::telemetry::record_collection(&r.collection);
        self.security.authorize(principal.as_ref(), Action::Read, &r.collection, "Search")?;
        let query = search_query(&mut r)?;
        let filter = self.security.scoped_filter(principal.as_ref(), &r.filter)?;
        let sharded = self.sharded(&r.collection);
        if let (Some(c), SearchQuery::Vector) = (&sharded, &query) {
            return self.cluster_search(c.clone(), principal, filter, r).await;
        }
        // Injected delay: inside the gate, so a slow search holds its slot as a real one does.
        let delay = std::time::Duration::from_millis(self.fault_delay_ms.load(Ordering::Relaxed));
        let db = self.db.clone();
        let hits = match query {
            SearchQuery::Cross(input) => {
                // A sharded collection runs the same pipeline, each list scattered to its
                // shards (src/cluster_target.rs).
                let target = match sharded {
                    Some(_) => Some(self.sharded_target_for(&r.collection, &r.consistency_token, r.allow_stale)?),
                    None => None,
                };
                let (enc, lim, name) = (self.encoders.clone(), self.ingest, r.collection.clone());
                let q = cross_query(r, input, filter, self.security.hidden_keys(principal.as_ref()))?;
                let mut hits = self
                    .gate
                    .run(move || {
                        std::thread::sleep(delay);
                        Ok(match target {
                            Some(t) => agentdb_retrieval::query::run(&t, &enc, q, lim)?,
                            None => agentdb_retrieval::query::run(&*db.collection(&name)?, &enc, q, lim)?,
                        })
                    })
                    .await?;
                for p in hits.iter_mut().filter_map(|h| h.payload.as_mut()) {
                    self.security.mask(principal.as_ref(), p);
                }
                hits.into_iter().map(cross_hit_to_wire).collect()
            }
            // A cached hub collection on an edge: the hub's answer, or the cache's.
            SearchQuery::Vector if self.edge.as_ref().is_some_and(|e| e.is_cache(&r.collection)) => {
                let e = self.edge.clone().expect("checked");
                let (mut hits, why) = self
                    .gate
                    .run(move || {
                        let col = db.collection(&r.collection)?;
                        let vector = r.vector.map(|v| v.values).unwrap_or_default();
                        Ok(e.cache_search(
                            &col,
                            &r.space,
                            vector,
                            top_k(r.top_k),
                            filter.as_ref(),
                            r.with_payload,
                            r.with_vectors,
                        )?)
                    })
                    .await?;
                for p in hits.iter_mut().filter_map(|h| h.payload.as_mut()) {
                    self.security.mask(principal.as_ref(), p);
                }
                let mut resp = Response::new(v1::SearchResponse { hits: hits.into_iter().map(hit_to_wire).collect() });
                mark_partial(&mut resp, why);
                return Ok(resp);
            }
            SearchQuery::Vector => {
                // A search that scans few rows exactly (the rest through an index) runs
                // on this thread: the hop to the blocking pool costs more than it does.
                let col = db.collection(&r.collection);
                let small = delay.is_zero()
                    && !r.params.as_ref().is_some_and(|p| p.exact)
                    && col.as_ref().is_ok_and(|c| c.exact_rows() <= INLINE_EXACT_ROWS);
                let mut hits = if small {
                    self.gate.run_inline(|| vector_search(col, r, filter.as_ref())).await?
                } else {
                    self.gate
                        .run(move || {
                            std::thread::sleep(delay);
                            vector_search(col, r, filter.as_ref())
                        })
                        .await?
                };
                for p in hits.iter_mut().filter_map(|h| h.payload.as_mut()) {
                    self.security.mask(principal.as_ref(), p);
                }
                hits.into_iter().map(hit_to_wire).collect()
            }
        };
        Ok(Response::new(v1::SearchResponse { hits }))
    }

    async fn search_batch(
        &self,
        req: Request<v1::SearchBatchRequest>,
    ) -> Result<Response<v1::SearchBatchResponse>, Status> {
        let principal = req.extensions().get::<Principal>().cloned();
        let mut r = req.into_inner();
        need(&r.collection, "collection name")?;
        crate::telemetry::record_collection(&r.collection);
        self.security.authorize(principal.as_ref(), Action::Read, &r.collection, "SearchBatch")?;
        let db = self.db.clone();
        let f = self.security.scoped_filter(principal.as_ref(), &r.filter)?;
        let queries = std::mem::take(&mut r.vectors)
            .into_iter()
            .enumerate()
            .map(|(i, v)| agentdb_proto::convert::vector_from_wire(v, || format!("query {i}")))
            .collect::<agentdb_engine::Result<Vec<_>>>()
            .map_err(|e| to_status(e.into()))?;
        let mut res = self
            .gate
            .run(move || {
                Ok(db.collection(&r.collection)?.search(SearchRequest {
                    space: &r.space,
                    queries,
                    k: top_k(r.top_k),
                    filter: f.as_ref(),
                    params: params_from_wire(r.params),
                    with_payload: r.with_payload,
                    with_vectors: r.with_vectors,
                })?)
            })
            .await?;
        for h in res.iter_mut().flatten() {
            if let Some(p) = &mut h.payload {
                self.security.mask(principal.as_ref(), p);
            }
        }
        Ok(Response::new(v1::SearchBatchResponse {
            results: res
                .into_iter()
                .map(|hits| v1::SearchResults { hits: hits.into_iter().map(hit_to_wire).collect() })
                .collect(),
        }))
    }

    async fn embed(&self, req: Request<v1::EmbedRequest>) -> Result<Response<v1::EmbedResponse>, Status> {
        let principal = req.extensions().get::<Principal>().cloned();
        let r = req.into_inner();
        need(&r.collection, "collection name")?;
        crate::telemetry::record_collection(&r.collection);
        self.security.authorize(principal.as_ref(), Action::Read, &r.collection, "Embed")?;
        if self.sharded(&r.collection).is_some() {
            return Err(Status::unimplemented("Embed on a sharded collection is not supported yet"));
        }
        let (db, enc) = (self.db.clone(), self.encoders.clone());
        let (encoder, vectors) = self
            .gate
            .run(move || {
                let c = db.collection(&r.collection)?;
                Ok(agentdb_retrieval::query::embed_texts(&c, &enc, &r.space, r.texts)?)
            })
            .await?;
        Ok(Response::new(v1::EmbedResponse {
            vectors: vectors
                .into_iter()
                .map(|values| v1::Vector { values, encoder: encoder.clone(), ..Default::default() })
                .collect(),
        }))
    }

    type IngestStream = ResultStream;

    async fn ingest(&self, req: Request<Streaming<v1::IngestRequest>>) -> Result<Response<Self::IngestStream>, Status> {
        let principal = req.extensions().get::<Principal>().cloned();
        let mut stream = req.into_inner();
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<v1::IngestResult, Status>>(64);
        let svc = self.clone();
        let request_span = tracing::Span::current();
        let work = async move {
            // At most `ingest_concurrency` files in progress per stream; while they are
            // busy the request stream is not read, and HTTP/2 flow control holds the
            // client back.
            let slots = Arc::new(Semaphore::new(svc.ingest_concurrency.max(1)));
            let summary = Arc::new(parking_lot::Mutex::new(crate::orchestration::IngestSummary::default()));
            let mut tasks = tokio::task::JoinSet::new();
            loop {
                let permit = match slots.clone().acquire_owned().await {
                    Ok(p) => p,
                    Err(_) => break,
                };
                let msg = match stream.message().await {
                    Ok(Some(m)) => m,
                    Ok(None) => break,
                    Err(e) => {
                        // Not protobuf, over limits.max_message_bytes: the client's fault, said
                        // so (tonic reports INTERNAL / OUT_OF_RANGE).
                        let e = crate::status::request_read_error(e.code(), e.message(), None).unwrap_or(e);
                        let _ = tx.send(Err(e)).await;
                        break;
                    }
                };
                let (svc, tx, summary) = (svc.clone(), tx.clone(), summary.clone());
                if let Err(st) = svc.may_ingest(principal.as_ref(), &msg) {
                    let _ = tx.send(Ok(failed_result(msg.source, &st))).await;
                    continue;
                }
                let principal = principal.clone();
                let job = async move {
                    let collection = msg.collection.clone();
                    let result = svc.ingest_one(principal.as_ref(), msg).await;
                    summary.lock().record(&collection, &result);
                    let _ = tx.send(Ok(result)).await;
                    drop(permit);
                };
                tasks.spawn(tracing::Instrument::in_current_span(job));
            }
            while tasks.join_next().await.is_some() {}
            summary.lock().finish(&svc.bus);
        };
        tokio::spawn(tracing::Instrument::instrument(work, request_span));
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }
}

#[tonic::async_trait]
impl v1::models_server::Models for Services {
    async fn list(&self, _req: Request<v1::ListModelsRequest>) -> Result<Response<v1::ListModelsResponse>, Status> {
        // Models load on first use: a server that has not needed one lists none loaded.
        let set = self.encoders.loaded();
        let loaded = set.map(|e| e.loaded_ids()).unwrap_or_default();
        let mut infos = self.encoders.installed();
        // Models loaded from outside the models folder (an absolute `models.clip`,
        // `models.clap` or `models.onnx_image` path) are listed too.
        let extra = set.iter().flat_map(|e| {
            let clip = e.clip.iter().map(|c| c.info.clone());
            clip.chain(e.clap.iter().map(|c| c.info.clone())).chain(e.onnx_image.iter().map(|o| o.info.clone()))
        });
        let extra = extra.collect::<Vec<_>>();
        for m in extra {
            if !infos.iter().any(|i| i.encoder_id() == m.encoder_id()) {
                infos.push(m);
            }
        }
        let models = infos
            .into_iter()
            .map(|m| {
                let id = m.encoder_id();
                // A bridge is listed under its first model, with the id collections record.
                let in_use = loaded.iter().find(|l| **l == id || l.starts_with(&format!("{id}>")));
                v1::ModelInfo {
                    name: m.manifest.name,
                    version: m.manifest.version,
                    modality: m.manifest.modality,
                    dim: m.manifest.dim as u32,
                    sha256: m.manifest.sha256,
                    source: m.manifest.source,
                    loaded: in_use.is_some(),
                    encoder: in_use.cloned().unwrap_or(id),
                }
            })
            .collect();
        Ok(Response::new(v1::ListModelsResponse { models }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::{RequestCtx, REQUEST};

    /// Run `f` through the gate as `tenant`; returns the order in which it finished.
    async fn as_tenant(gate: Arc<Gate>, tenant: &str, done: Arc<parking_lot::Mutex<Vec<String>>>, ms: u64) {
        let ctx = Arc::new(RequestCtx::default());
        let _ = ctx.principal.set(tenant.to_string());
        let name = tenant.to_string();
        REQUEST
            .scope(ctx, async move {
                gate.run(move || {
                    std::thread::sleep(std::time::Duration::from_millis(ms));
                    Ok(())
                })
                .await
                .unwrap();
                done.lock().push(name);
            })
            .await
    }

    async fn flood_then_quiet(weights: std::collections::HashMap<String, u32>, quiet: usize) -> Vec<String> {
        let gate = Arc::new(Gate::new(1, 1000, weights));
        let done = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..30 {
            tasks.spawn(as_tenant(gate.clone(), "flood", done.clone(), 5));
        }
        // Every flood request is queued (one runs) before the quiet tenant arrives.
        while gate.state.lock().waiting < 29 {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        for _ in 0..quiet {
            tasks.spawn(as_tenant(gate.clone(), "quiet", done.clone(), 5));
        }
        while tasks.join_next().await.is_some() {}
        let order = done.lock().clone();
        order
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_quiet_tenant_is_not_starved_by_a_flooding_one() {
        let order = flood_then_quiet(Default::default(), 3).await;
        assert_eq!(order.len(), 33);
        // Round robin: the quiet tenant's 3 requests alternate with the flood's, right
        // after the request that was running when they arrived (FIFO would put them last).
        let quiet_at: Vec<usize> = order.iter().enumerate().filter(|(_, t)| *t == "quiet").map(|(i, _)| i).collect();
        assert!(quiet_at.len() == 3 && quiet_at[2] <= 8, "quiet finished at {quiet_at:?}: {order:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn weights_give_a_tenant_more_turns() {
        // The quiet tenant with weight 1 and the flood with weight 3: once both wait,
        // the flood gets 3 turns per quiet turn.
        let weights = std::collections::HashMap::from([("flood".to_string(), 3)]);
        let order = flood_then_quiet(weights, 6).await;
        let quiet_at: Vec<usize> = order.iter().enumerate().filter(|(_, t)| *t == "quiet").map(|(i, _)| i).collect();
        let gaps: Vec<usize> = quiet_at.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.iter().all(|&g| g == 4), "quiet finished at {quiet_at:?}: {order:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_waiter_that_goes_away_passes_its_slot_on() {
        let gate = Arc::new(Gate::new(1, 10, Default::default()));
        let g = gate.clone();
        let running = tokio::spawn(async move {
            g.run(|| {
                std::thread::sleep(std::time::Duration::from_millis(50));
                Ok(())
            })
            .await
        });
        while gate.state.lock().running == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        let g = gate.clone();
        let abandoned = tokio::spawn(async move { g.run(|| Ok(())).await });
        while gate.state.lock().waiting == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        abandoned.abort();
        running.await.unwrap().unwrap();
        // The slot is free again: a new request runs.
        tokio::time::timeout(std::time::Duration::from_secs(5), gate.run(|| Ok(()))).await.unwrap().unwrap();
        let st = gate.state.lock();
        assert_eq!((st.running, st.waiting), (0, 0));
    }
}
