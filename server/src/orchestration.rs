//! gRPC services `agentdb.v1.Agents`, `agentdb.v1.Events`, `agentdb.v1.Queues` and
//! `agentdb.v1.StandingQueries` (the agent registry, the event bus, durable queues and
//! standing queries of `agentdb_orchestrator`), the ingest summary the ingest stream
//! publishes ([`IngestSummary`]) and the write observer that feeds standing queries
//! ([`Orchestration::observer`]). The `agentdb agent|queue|events` commands are in
//! `client::agents`.
//!
//! Authorization (see docs/AGENTS.md): registering and retiring agents and creating
//! queues need `admin`; heartbeats, suspend/activate, publishing, send, receive and
//! ack need `write`; listing, showing, subscribing and queue stats need `read`.

use crate::config::OrchestrationConfig;
use crate::security::Security;
use agentdb_orchestrator::agents::{self, AgentCard, AgentInfo, AgentState, Registry, Skill};
use agentdb_orchestrator::bus::{Audience, Bus, Topic};
use agentdb_orchestrator::queue::{self, QueueConfig, Queues};
use agentdb_orchestrator::security::{Action, Principal};
use agentdb_orchestrator::standing::{self, NewStandingQuery, StandingQueries, Written};
use agentdb_orchestrator::Error as OrchError;
use agentdb_proto::v1;
use serde::Serialize;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

/// Standing-query matching: written items go through a bounded channel to one
/// background task; when it is full the batch is dropped (counted and logged), so a
/// write never waits for matching. The write paths reach it as their
/// [`agentdb_retrieval::Observer`].
struct Watch {
    queries: Arc<StandingQueries>,
    tx: tokio::sync::mpsc::Sender<(String, Vec<Written>)>,
    dropped: std::sync::atomic::AtomicU64,
}

/// Write batches queued for standing-query evaluation at most.
const WATCH_QUEUE: usize = 1024;

impl agentdb_retrieval::Observer for Watch {
    /// Whether a standing query watches `collection` (callers copy written items only then).
    fn watches(&self, collection: &str) -> bool {
        self.queries.watches(collection)
    }

    /// Items were written to `collection` (`ids`: the ids the engine returned, in order):
    /// queue them for standing-query matching. Cheap when nothing watches the collection.
    fn items_written(&self, collection: &str, items: &[agentdb_engine::Item], ids: &[String]) {
        let w = self;
        if !w.queries.watches(collection) || items.is_empty() {
            return;
        }
        let batch = items
            .iter()
            .zip(ids)
            .map(|(it, id)| Written { id: id.clone(), vectors: it.vectors.clone(), payload: it.payload.clone() })
            .collect();
        if w.tx.try_send((collection.to_string(), batch)).is_err() {
            let n = w.dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            tracing::warn!(
                collection,
                items = items.len(),
                dropped_total = n,
                "standing-query evaluation queue full; batch not evaluated"
            );
        }
    }
}

/// What one ingest stream did, published on the `ingestion` topic when it ends.
#[derive(Debug, Default, Serialize)]
pub struct IngestSummary {
    pub files: u64,
    pub ok: u64,
    pub failed: u64,
    pub items: u64,
    pub collections: std::collections::BTreeSet<String>,
}

impl IngestSummary {
    pub fn record(&mut self, collection: &str, r: &v1::IngestResult) {
        self.files += 1;
        if r.status == "failed" {
            self.failed += 1;
        } else {
            self.ok += 1;
        }
        self.items += r.items as u64;
        if !collection.is_empty() {
            self.collections.insert(collection.to_string());
        }
    }

    /// Publish `ingest.finished` on `bus` (nothing for a stream that carried no file).
    pub fn finish(&self, bus: &Bus) {
        if self.files > 0 {
            let subject = self.collections.iter().cloned().collect::<Vec<_>>().join(",");
            // Only principals that may read every collection the stream wrote to see it.
            let audience = Audience::Collections(self.collections.iter().cloned().collect());
            let data = serde_json::to_value(self).unwrap_or_default();
            bus.publish_to(Topic::Ingestion, "ingest.finished", &subject, data, audience);
        }
    }
}

pub(crate) fn orch_status(e: OrchError) -> Status {
    match e {
        OrchError::Invalid(m) => Status::invalid_argument(m),
        OrchError::NotFound(m) => Status::not_found(m),
        OrchError::AlreadyExists(m) => Status::already_exists(m),
        OrchError::FailedPrecondition(m) => Status::failed_precondition(m),
        OrchError::LimitExceeded(m) => Status::resource_exhausted(m),
        OrchError::Internal(m) => Status::internal(m),
        OrchError::Engine(e) => crate::status::to_status(e.into()),
    }
}

/// Engine work (an fsync per change) runs on the blocking pool.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T, Status>
where
    F: FnOnce() -> Result<T, OrchError> + Send + 'static,
    T: Send + 'static,
{
    agentdb_orchestrator::blocking(f).await.map_err(orch_status)
}

#[derive(Clone)]
pub struct Orchestration {
    db: Arc<agentdb_engine::Database>,
    bus: Arc<Bus>,
    agents: Arc<Registry>,
    queues: Arc<Queues>,
    standing: Arc<StandingQueries>,
    security: Arc<Security>,
    encoders: Arc<agentdb_retrieval::Encoders>,
    watch: Arc<Watch>,
    subscriber_buffer: usize,
    max_subscriptions: usize,
    /// Subscriptions held now (each stream's task holds a [`SubscriptionGuard`]).
    subscriptions: Arc<std::sync::atomic::AtomicUsize>,
    stop: tokio::sync::watch::Receiver<bool>,
    /// Cluster mode: the Queues API serves the cluster's queues (`cluster_queues.rs`).
    cluster: Arc<std::sync::OnceLock<Arc<agentdb_cluster::Cluster>>>,
}

/// Counts one held subscription until its stream's task ends.
struct SubscriptionGuard(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for SubscriptionGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Orchestration {
    /// Load agents and queues from the engine, start the bus and the health checker.
    pub async fn start(
        db: Arc<agentdb_engine::Database>,
        security: Arc<Security>,
        encoders: Arc<agentdb_retrieval::Encoders>,
        cfg: &OrchestrationConfig,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> anyhow::Result<Orchestration> {
        let bus = Arc::new(Bus::new(cfg.event_ring_capacity));
        let defaults = QueueConfig {
            max_attempts: cfg.queue_max_attempts,
            visibility_timeout_ms: cfg.queue_visibility_timeout_ms.max(1),
            max_messages: cfg.queue_max_messages.max(1),
        };
        let (db2, bus2, timeout) = (db.clone(), bus.clone(), cfg.heartbeat_timeout_ms);
        let (agents, queues) = tokio::task::spawn_blocking(move || -> Result<_, OrchError> {
            Ok((Registry::open(db2.clone(), bus2, timeout)?, Queues::open(db2, defaults)?))
        })
        .await?
        .map_err(|e| anyhow::anyhow!("orchestration state: {e}"))?;
        let agents = Arc::new(agents);
        let (db2, bus2, agents2) = (db.clone(), bus.clone(), agents.clone());
        let standing = tokio::task::spawn_blocking(move || StandingQueries::open(db2, bus2, agents2))
            .await?
            .map_err(|e| anyhow::anyhow!("standing queries: {e}"))?;
        let standing = Arc::new(standing);
        let (tx, mut rx) = tokio::sync::mpsc::channel::<(String, Vec<Written>)>(WATCH_QUEUE);
        let watch = Arc::new(Watch { queries: standing.clone(), tx, dropped: Default::default() });
        {
            let q = standing.clone();
            tokio::spawn(async move {
                while let Some((collection, items)) = rx.recv().await {
                    let q = q.clone();
                    let _ = tokio::task::spawn_blocking(move || {
                        let n = q.evaluate(&collection, &items).len();
                        if n > 0 {
                            tracing::debug!(collection = %collection, items = items.len(), matches = n, "standing queries matched");
                        }
                    })
                    .await;
                }
            });
        }
        let every = Duration::from_millis(cfg.health_check_interval_ms.max(10));
        let (a, mut s) = (agents.clone(), stop.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = tick.tick() => { a.check_health(agentdb_orchestrator::now_ms()); }
                    _ = s.changed() => return,
                }
            }
        });
        Ok(Orchestration {
            db,
            bus,
            agents,
            queues: Arc::new(queues),
            standing,
            security,
            encoders,
            watch,
            subscriber_buffer: cfg.subscriber_buffer.max(1),
            max_subscriptions: cfg.max_subscriptions.max(1),
            subscriptions: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
            stop,
            cluster: Default::default(),
        })
    }

    /// Cluster mode: queues are the cluster's from now on.
    pub fn join_cluster(&self, cluster: Arc<agentdb_cluster::Cluster>) {
        let _ = self.cluster.set(cluster);
    }

    /// What the write paths tell about written items (standing-query matching).
    pub fn observer(&self) -> Arc<dyn agentdb_retrieval::Observer> {
        self.watch.clone()
    }

    /// The bus, the agent registry and the queues (for the workflow engine).
    pub fn parts(&self) -> (Arc<Bus>, Arc<Registry>, Arc<Queues>) {
        (self.bus.clone(), self.agents.clone(), self.queues.clone())
    }

    fn authorize<T>(&self, req: &Request<T>, action: Action, collection: &str, method: &str) -> Result<(), Status> {
        self.security.authorize(req.extensions().get::<Principal>(), action, collection, method)
    }

    /// Queues are resources of their own: see [`crate::security::Security::authorize_queue`].
    fn authorize_queue<T>(&self, req: &Request<T>, action: Action, queue: &str, method: &str) -> Result<(), Status> {
        self.security.authorize_queue(req.extensions().get::<Principal>(), action, queue, method)
    }
}

fn card_from_wire(c: v1::AgentCard) -> AgentCard {
    AgentCard {
        name: c.name,
        description: c.description,
        version: c.version,
        skills: c
            .skills
            .into_iter()
            .map(|s| Skill { id: s.id, name: s.name, description: s.description, tags: s.tags })
            .collect(),
        capabilities: c.capabilities,
        endpoint: c.endpoint,
    }
}

fn agent_to_wire(a: AgentInfo) -> v1::AgentInfo {
    let r = a.record;
    v1::AgentInfo {
        card: Some(v1::AgentCard {
            name: r.card.name,
            description: r.card.description,
            version: r.card.version,
            skills: r
                .card
                .skills
                .into_iter()
                .map(|s| v1::AgentSkill { id: s.id, name: s.name, description: s.description, tags: s.tags })
                .collect(),
            capabilities: r.card.capabilities,
            endpoint: r.card.endpoint,
        }),
        state: r.state.as_str().into(),
        healthy: a.healthy,
        registered_unix_ms: r.registered_unix_ms,
        updated_unix_ms: r.updated_unix_ms,
        last_heartbeat_unix_ms: a.last_heartbeat_unix_ms,
        heartbeat_timeout_ms: r.heartbeat_timeout_ms,
        memory_collection: r.memory_collection,
    }
}

fn stats_to_wire(s: queue::QueueStats) -> v1::QueueStats {
    v1::QueueStats {
        name: s.name,
        max_attempts: s.config.max_attempts,
        visibility_timeout_ms: s.config.visibility_timeout_ms,
        max_messages: s.config.max_messages,
        messages: s.messages,
        ready: s.ready,
        in_flight: s.in_flight,
        dead_letter_queue: s.dead_letter_queue,
        oldest_sent_unix_ms: s.oldest_sent_unix_ms,
        created_unix_ms: s.created_unix_ms,
    }
}

#[tonic::async_trait]
impl v1::agents_server::Agents for Orchestration {
    async fn register(
        &self,
        req: Request<v1::RegisterAgentRequest>,
    ) -> Result<Response<v1::RegisterAgentResponse>, Status> {
        let r = req.get_ref();
        let card = card_from_wire(r.card.clone().ok_or_else(|| Status::invalid_argument("card is required"))?);
        agents::validate_agent_name(&card.name).map_err(orch_status)?;
        let memory = agents::memory_collection(&card.name);
        self.authorize(&req, Action::Admin, &memory, "Agents/Register")?;
        if let Ok(a) = self.agents.get(&card.name) {
            if a.record.state == AgentState::Retired {
                return Err(Status::failed_precondition(format!(
                    "agent '{}' is retired; a retired agent's name is not reused",
                    card.name
                )));
            }
        }
        let r = req.into_inner();
        let spaces = if r.no_memory {
            Vec::new()
        } else if !r.memory_spaces.is_empty() {
            r.memory_spaces
                .into_iter()
                .map(agentdb_proto::convert::space_from_wire)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| crate::status::to_status(e.into()))?
        } else {
            // The installed encoders' spaces, so `agentdb ingest` works on the memory.
            self.encoders.multimodal_spaces().unwrap_or_default()
        };
        let (db, registry) = (self.db.clone(), self.agents.clone());
        let timeout = r.heartbeat_timeout_ms;
        let (info, created) = blocking(move || {
            let mem = if spaces.is_empty() {
                String::new()
            } else {
                let spec = agentdb_engine::CollectionSpec { name: memory.clone(), spaces, keyword: None };
                match db.create_collection(spec) {
                    Ok(_) | Err(agentdb_engine::Error::CollectionExists(_)) => memory,
                    Err(e) => return Err(e.into()),
                }
            };
            registry.register(card, timeout, mem)
        })
        .await?;
        tracing::info!(agent = %info.record.card.name, created, "agent registered");
        Ok(Response::new(v1::RegisterAgentResponse { agent: Some(agent_to_wire(info)), created }))
    }

    async fn list(&self, req: Request<v1::ListAgentsRequest>) -> Result<Response<v1::ListAgentsResponse>, Status> {
        self.authorize(&req, Action::Read, "", "Agents/List")?;
        let r = req.into_inner();
        let state = if r.state.is_empty() { None } else { Some(AgentState::parse(&r.state).map_err(orch_status)?) };
        let agents = self.agents.list(state).into_iter().map(agent_to_wire).collect();
        Ok(Response::new(v1::ListAgentsResponse { agents }))
    }

    async fn get(&self, req: Request<v1::GetAgentRequest>) -> Result<Response<v1::GetAgentResponse>, Status> {
        self.authorize(&req, Action::Read, "", "Agents/Get")?;
        let a = self.agents.get(&req.into_inner().name).map_err(orch_status)?;
        Ok(Response::new(v1::GetAgentResponse { agent: Some(agent_to_wire(a)) }))
    }

    async fn set_state(
        &self,
        req: Request<v1::SetAgentStateRequest>,
    ) -> Result<Response<v1::SetAgentStateResponse>, Status> {
        let to = AgentState::parse(&req.get_ref().state).map_err(orch_status)?;
        let action = if to == AgentState::Retired { Action::Admin } else { Action::Write };
        self.authorize(&req, action, "", "Agents/SetState")?;
        let r = req.into_inner();
        let registry = self.agents.clone();
        let info = blocking(move || registry.transition(&r.name, to, &r.reason)).await?;
        Ok(Response::new(v1::SetAgentStateResponse { agent: Some(agent_to_wire(info)) }))
    }

    async fn heartbeat(
        &self,
        req: Request<v1::AgentHeartbeatRequest>,
    ) -> Result<Response<v1::AgentHeartbeatResponse>, Status> {
        self.authorize(&req, Action::Write, "", "Agents/Heartbeat")?;
        let name = req.into_inner().name;
        let registry = self.agents.clone();
        let info = blocking(move || registry.heartbeat(&name)).await?;
        Ok(Response::new(v1::AgentHeartbeatResponse { agent: Some(agent_to_wire(info)) }))
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<v1::SubscribeResponse, Status>> + Send>>;

fn parse_topics(topics: &[String]) -> Result<Vec<Topic>, Status> {
    topics.iter().map(|t| Topic::parse(t.trim()).map_err(orch_status)).collect()
}

#[tonic::async_trait]
impl v1::events_server::Events for Orchestration {
    type SubscribeStream = EventStream;

    async fn subscribe(&self, req: Request<v1::SubscribeRequest>) -> Result<Response<EventStream>, Status> {
        self.authorize(&req, Action::Read, "", "Events/Subscribe")?;
        // Events are delivered only where their audience admits the subscriber (other
        // collections' ingests and matches, other principals' workflow runs are skipped).
        let principal = req.extensions().get::<Principal>().cloned();
        let r = req.into_inner();
        let topics = parse_topics(&r.topics)?;
        let bus = self.bus.clone();
        let mut cursor = r.from_offset.unwrap_or_else(|| bus.next_offset());
        let held = self.subscriptions.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let guard = SubscriptionGuard(self.subscriptions.clone());
        if held >= self.max_subscriptions {
            return Err(Status::resource_exhausted(format!(
                "{held} event subscriptions are open, the limit (orchestration.max_subscriptions) is {}",
                self.max_subscriptions
            )));
        }
        let (tx, rx) = tokio::sync::mpsc::channel(self.subscriber_buffer);
        let mut stop = self.stop.clone();
        tokio::spawn(async move {
            let _guard = guard;
            let mut watch = bus.watch();
            loop {
                if *stop.borrow() {
                    return;
                }
                watch.borrow_and_update();
                // The notice and the events it resumes with come from one snapshot of
                // the ring: the notice may wait a long time for a slow client, and the
                // ring may move past its first available offset meanwhile, but the
                // events are held here and delivered right after it. Events read here
                // and evicted before they are sent are still delivered, and a reader is
                // told about every event evicted before it was read.
                let batch = bus.read_resuming(&topics, cursor, 256);
                if let Some(first_available) = batch.lagged {
                    tracing::debug!(from = cursor, first_available, "event subscriber lagged");
                    let msg = v1::subscribe_response::Msg::Lagged(v1::Lagged {
                        requested_offset: cursor.max(1),
                        first_available_offset: first_available,
                    });
                    tokio::select! {
                        r = tx.send(Ok(v1::SubscribeResponse { msg: Some(msg) })) => if r.is_err() { return },
                        _ = stop.changed() => return,
                    }
                    cursor = first_available;
                } else if batch.events.is_empty() {
                    tokio::select! {
                        r = watch.changed() => if r.is_err() { return },
                        _ = tx.closed() => return,
                        _ = stop.changed() => return,
                    }
                    continue;
                }
                for e in batch.events {
                    if !e.audience.admits(principal.as_ref()) {
                        cursor = e.offset + 1;
                        continue;
                    }
                    let ev = v1::Event {
                        offset: e.offset,
                        topic: e.topic.as_str().into(),
                        kind: e.kind.clone(),
                        subject: e.subject.clone(),
                        data_json: e.data.to_string(),
                        unix_ms: e.unix_ms,
                    };
                    let msg = v1::subscribe_response::Msg::Event(ev);
                    // Blocks while the client is slow: the ring moves on and the next
                    // read reports the lag.
                    tokio::select! {
                        r = tx.send(Ok(v1::SubscribeResponse { msg: Some(msg) })) => if r.is_err() { return },
                        _ = stop.changed() => return,
                    }
                    cursor = e.offset + 1;
                }
            }
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }

    async fn publish(&self, req: Request<v1::PublishRequest>) -> Result<Response<v1::PublishResponse>, Status> {
        self.authorize(&req, Action::Write, "", "Events/Publish")?;
        let r = req.into_inner();
        if r.events.len() > 10_000 {
            return Err(Status::resource_exhausted("at most 10000 events per publish"));
        }
        let mut parsed = Vec::with_capacity(r.events.len());
        for (i, e) in r.events.into_iter().enumerate() {
            let topic = Topic::parse(&e.topic).map_err(orch_status)?;
            if !topic.client_publishable() {
                return Err(Status::permission_denied(format!(
                    "event {i}: topic '{}' is published by the server only",
                    e.topic
                )));
            }
            let data = if e.data_json.trim().is_empty() {
                serde_json::Value::Null
            } else {
                serde_json::from_str(&e.data_json)
                    .map_err(|err| Status::invalid_argument(format!("event {i}: data_json is not JSON: {err}")))?
            };
            parsed.push((topic, e.kind, e.subject, data));
        }
        let offsets = parsed.into_iter().map(|(t, k, s, d)| self.bus.publish(t, &k, &s, d)).collect();
        Ok(Response::new(v1::PublishResponse { offsets }))
    }

    async fn topics(&self, req: Request<v1::TopicsRequest>) -> Result<Response<v1::TopicsResponse>, Status> {
        self.authorize(&req, Action::Read, "", "Events/Topics")?;
        let topics = self
            .bus
            .stats()
            .into_iter()
            .map(|s| v1::TopicInfo {
                name: s.topic.as_str().into(),
                retained: s.retained,
                first_offset: s.first_offset,
                last_offset: s.last_offset,
                client_publishable: s.topic.client_publishable(),
            })
            .collect();
        Ok(Response::new(v1::TopicsResponse {
            topics,
            next_offset: self.bus.next_offset(),
            ring_capacity: self.bus.capacity() as u64,
        }))
    }
}

#[tonic::async_trait]
impl v1::queues_server::Queues for Orchestration {
    async fn create(&self, req: Request<v1::CreateQueueRequest>) -> Result<Response<v1::CreateQueueResponse>, Status> {
        self.authorize(&req, Action::Admin, "", "Queues/Create")?;
        let r = req.into_inner();
        let d = self.queues.defaults();
        let cfg = QueueConfig {
            max_attempts: r.max_attempts.unwrap_or(d.max_attempts),
            visibility_timeout_ms: if r.visibility_timeout_ms == 0 {
                d.visibility_timeout_ms
            } else {
                r.visibility_timeout_ms
            },
            max_messages: if r.max_messages == 0 { d.max_messages } else { r.max_messages },
        };
        if let Some(c) = self.cluster.get() {
            let (created, queue) = crate::cluster_queues::create(c, &r.name, cfg).await?;
            return Ok(Response::new(v1::CreateQueueResponse { queue: Some(queue), created }));
        }
        let q = self.queues.clone();
        let (created, stats) = blocking(move || {
            let created = q.create(&r.name, cfg)?;
            Ok((created, q.stats(&r.name, agentdb_orchestrator::now_ms())?))
        })
        .await?;
        Ok(Response::new(v1::CreateQueueResponse { queue: Some(stats_to_wire(stats)), created }))
    }

    async fn send(&self, req: Request<v1::SendMessageRequest>) -> Result<Response<v1::SendMessageResponse>, Status> {
        self.authorize_queue(&req, Action::Write, &req.get_ref().queue.clone(), "Queues/Send")?;
        let r = req.into_inner();
        if let Some(c) = self.cluster.get() {
            let id = crate::cluster_queues::send(c, &r.queue, r.body, r.attributes.into_iter().collect()).await?;
            return Ok(Response::new(v1::SendMessageResponse { id }));
        }
        let q = self.queues.clone();
        let id = blocking(move || q.send(&r.queue, r.body, r.attributes.into_iter().collect())).await?;
        Ok(Response::new(v1::SendMessageResponse { id }))
    }

    async fn receive(
        &self,
        req: Request<v1::ReceiveMessagesRequest>,
    ) -> Result<Response<v1::ReceiveMessagesResponse>, Status> {
        self.authorize_queue(&req, Action::Write, &req.get_ref().queue.clone(), "Queues/Receive")?;
        let r = req.into_inner();
        let deadline = tokio::time::Instant::now() + Duration::from_millis(r.wait_ms.min(20_000));
        let mut stop = self.stop.clone();
        loop {
            let messages = match self.cluster.get() {
                Some(c) => crate::cluster_queues::receive(c, &r).await?,
                None => {
                    let (q, name) = (self.queues.clone(), r.queue.clone());
                    let (max, vis) = (r.max_messages.max(1) as usize, r.visibility_timeout_ms);
                    let got = blocking(move || q.receive(&name, max, vis, agentdb_orchestrator::now_ms())).await?;
                    got.into_iter()
                        .map(|d| v1::QueueMessage {
                            id: d.id,
                            body: d.body,
                            attributes: d.attributes.into_iter().collect(),
                            attempt: d.attempt,
                            receipt: d.receipt,
                            sent_unix_ms: d.sent_unix_ms,
                            invisible_until_unix_ms: d.invisible_until_ms,
                        })
                        .collect()
                }
            };
            if !messages.is_empty() || tokio::time::Instant::now() >= deadline || *stop.borrow() {
                return Ok(Response::new(v1::ReceiveMessagesResponse { messages }));
            }
            // Long poll: look again shortly (sends and expiring timeouts both make messages ready).
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                _ = stop.changed() => {}
            }
        }
    }

    async fn ack(&self, req: Request<v1::AckMessageRequest>) -> Result<Response<v1::AckMessageResponse>, Status> {
        self.authorize_queue(&req, Action::Write, &req.get_ref().queue.clone(), "Queues/Ack")?;
        let r = req.into_inner();
        if let Some(c) = self.cluster.get() {
            crate::cluster_queues::ack(c, &r.queue, &r.receipt).await?;
            return Ok(Response::new(v1::AckMessageResponse {}));
        }
        let q = self.queues.clone();
        blocking(move || q.ack(&r.queue, &r.receipt)).await?;
        Ok(Response::new(v1::AckMessageResponse {}))
    }

    async fn stats(&self, req: Request<v1::QueueStatsRequest>) -> Result<Response<v1::QueueStatsResponse>, Status> {
        let name = req.get_ref().name.clone();
        let now = agentdb_orchestrator::now_ms();
        let queues = if name.is_empty() {
            self.authorize(&req, Action::Read, "", "Queues/Stats")?;
            // Only the queues the principal may read.
            let p = req.extensions().get::<Principal>();
            if let Some(c) = self.cluster.get() {
                let mut all = crate::cluster_queues::list(c).await?;
                all.retain(|q| self.security.queue_visible(p, &q.name));
                return Ok(Response::new(v1::QueueStatsResponse { queues: all }));
            }
            let mut all = self.queues.list(now);
            all.retain(|q| self.security.queue_visible(p, &q.name));
            all
        } else {
            self.authorize_queue(&req, Action::Read, &name, "Queues/Stats")?;
            if let Some(c) = self.cluster.get() {
                return Ok(Response::new(v1::QueueStatsResponse {
                    queues: vec![crate::cluster_queues::stats(c, &name).await?],
                }));
            }
            vec![self.queues.stats(&name, now).map_err(orch_status)?]
        };
        Ok(Response::new(v1::QueueStatsResponse { queues: queues.into_iter().map(stats_to_wire).collect() }))
    }
}

fn standing_to_wire(q: standing::StandingQuery) -> v1::StandingQuery {
    v1::StandingQuery {
        dim: q.vector.len() as u32,
        id: q.id,
        agent: q.agent,
        name: q.name,
        collection: q.collection,
        space: q.space,
        metric: q.metric.as_str().into(),
        text: q.text,
        filter: q.filter,
        threshold: q.threshold,
        created_unix_ms: q.created_unix_ms,
    }
}

#[tonic::async_trait]
impl v1::standing_queries_server::StandingQueries for Orchestration {
    async fn create(
        &self,
        req: Request<v1::CreateStandingQueryRequest>,
    ) -> Result<Response<v1::CreateStandingQueryResponse>, Status> {
        self.authorize(&req, Action::Write, &req.get_ref().collection, "StandingQueries/Create")?;
        if req.extensions().get::<Principal>().is_some_and(|p| p.row_filter.is_some()) {
            // Match events name items regardless of row policies.
            return Err(Status::permission_denied("keys with a row policy cannot create standing queries"));
        }
        let r = req.into_inner();
        let (db, enc, sq) = (self.db.clone(), self.encoders.clone(), self.standing.clone());
        let q = tokio::task::spawn_blocking(move || -> Result<_, Status> {
            let mut new = NewStandingQuery {
                agent: r.agent,
                name: r.name,
                collection: r.collection,
                space: r.space,
                filter: r.filter,
                threshold: r.threshold,
                ..Default::default()
            };
            match r.query {
                None => return Err(Status::invalid_argument("a text or a vector query is required")),
                Some(v1::create_standing_query_request::Query::Vector(v)) => {
                    new.vector = agentdb_proto::convert::vector_from_wire(v, || "the standing query".into())
                        .map_err(|e| crate::status::to_status(e.into()))?
                }
                Some(v1::create_standing_query_request::Query::Text(t)) => {
                    if t.trim().is_empty() {
                        return Err(Status::invalid_argument("the query text is empty"));
                    }
                    // Embed once, with the encoder of the query's space.
                    let c = db.collection(&new.collection).map_err(|e| crate::status::to_status(e.into()))?;
                    let text_encoder = |s: &agentdb_engine::SpaceSpec| enc.for_space(s, agentdb_retrieval::Modal::Text);
                    let (space, id) = if new.space.is_empty() {
                        c.spec.spaces.iter().find_map(|s| text_encoder(s).map(|id| (s.name.clone(), id))).ok_or_else(
                            || {
                                Status::failed_precondition(format!(
                                    "no space of collection '{}' has a loaded text encoder",
                                    new.collection
                                ))
                            },
                        )?
                    } else {
                        let s = c.spec.spaces.iter().find(|s| s.name == new.space).ok_or_else(|| {
                            Status::not_found(format!("collection '{}' has no space '{}'", new.collection, new.space))
                        })?;
                        let id = text_encoder(s).ok_or_else(|| {
                            Status::failed_precondition(format!(
                                "space '{}' of '{}' has no loaded text encoder; give a vector",
                                s.name, new.collection
                            ))
                        })?;
                        (s.name.clone(), id)
                    };
                    new.vector = enc
                        .embed_texts_as(&id, vec![t.clone()])
                        .map_err(|e| crate::status::to_status(e.into()))?
                        .pop()
                        .ok_or_else(|| Status::internal("the encoder returned no vector"))?;
                    new.space = space;
                    new.text = t;
                }
            }
            sq.create(new).map_err(orch_status)
        })
        .await
        .map_err(|e| Status::internal(format!("task failed: {e}")))??;
        tracing::info!(id = %q.id, collection = %q.collection, space = %q.space, "standing query created");
        Ok(Response::new(v1::CreateStandingQueryResponse { query: Some(standing_to_wire(q)) }))
    }

    async fn list(
        &self,
        req: Request<v1::ListStandingQueriesRequest>,
    ) -> Result<Response<v1::ListStandingQueriesResponse>, Status> {
        self.authorize(&req, Action::Read, "", "StandingQueries/List")?;
        let principal = req.extensions().get::<Principal>().cloned();
        let agent = req.into_inner().agent;
        let mut queries = self.standing.list((!agent.is_empty()).then_some(agent.as_str()));
        // Only queries on collections the principal may read in full (a query's text,
        // vector and filter describe what its owner looks for in that collection).
        if self.security.auth_enabled() {
            queries.retain(|q| principal.as_ref().is_some_and(|p| p.reads_all_of(std::slice::from_ref(&q.collection))));
        }
        let dropped_evaluations = self.watch.dropped.load(std::sync::atomic::Ordering::Relaxed);
        Ok(Response::new(v1::ListStandingQueriesResponse {
            queries: queries.into_iter().map(standing_to_wire).collect(),
            dropped_evaluations,
        }))
    }

    async fn delete(
        &self,
        req: Request<v1::DeleteStandingQueryRequest>,
    ) -> Result<Response<v1::DeleteStandingQueryResponse>, Status> {
        let id = req.get_ref().id.clone();
        let q = self.standing.get(&id).map_err(orch_status)?;
        self.authorize(&req, Action::Write, &q.collection, "StandingQueries/Delete")?;
        if req.extensions().get::<Principal>().is_some_and(|p| p.row_filter.is_some()) {
            return Err(Status::permission_denied("keys with a row policy cannot delete standing queries"));
        }
        let sq = self.standing.clone();
        let q = blocking(move || sq.delete(&id)).await?;
        Ok(Response::new(v1::DeleteStandingQueryResponse { query: Some(standing_to_wire(q)) }))
    }
}
