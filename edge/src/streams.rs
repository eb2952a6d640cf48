//! The NATS side of edge sync: connecting, the streams and buckets, storing this node's
//! change records, and the background loops (applying what arrives, registering with the
//! hub, sending this node's clock, collecting tombstones every node has seen).

use crate::change::Change;
use crate::hlc::Hlc;
use crate::{change_subject, Direction, Edge, EdgeConfig, Role};
use agentdb_engine::{Error, Result};
use async_nats::jetstream::{self, consumer::pull, kv, stream};
use futures_util::StreamExt;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Every node's own change stream (on its own domain): subjects `agentdb.sync.NODE.>`.
pub const OWN_STREAM: &str = "AGENTDB_SYNC";
/// The hub's stream: the hub's own changes and, sourced, every edge's.
pub const HUB_STREAM: &str = "AGENTDB_HUB";
/// An edge's inbox: the hub's stream, filtered to what the edge mirrors.
pub const INBOX_STREAM: &str = "AGENTDB_INBOX";
/// Registered nodes (on the hub): node id -> {role}. The hub sources every edge listed.
pub const NODES_BUCKET: &str = "agentdb-edge-nodes";
/// Per node, the newest clock reading it has applied from every origin.
pub const SEEN_BUCKET: &str = "agentdb-edge-seen";
const CLOCK_TOKEN: &str = "_clock";
const BOUND: Duration = Duration::from_secs(5);

fn nats(what: &str, e: impl std::fmt::Display) -> Error {
    crate::unavailable(what, e)
}

pub(crate) async fn connect(cfg: &EdgeConfig) -> Result<(jetstream::Context, jetstream::Context)> {
    if cfg.nats_urls.is_empty() {
        return Err(Error::invalid("edge sync needs a NATS server URL (the local leaf server, or the hub's)"));
    }
    let mut opts = async_nats::ConnectOptions::new()
        .name(format!("agentdb-edge-{}", cfg.node_id))
        .retry_on_initial_connect()
        .reconnect_delay_callback(|attempts| Duration::from_millis((attempts as u64 * 100).min(1000)))
        .event_callback(|ev| async move {
            match ev {
                async_nats::Event::Disconnected => tracing::warn!("edge: disconnected from the local NATS server"),
                other => tracing::debug!(event = %other, "edge: NATS event"),
            }
        });
    if let Some(c) = &cfg.credentials {
        opts = opts.credentials_file(c).await.map_err(|e| Error::invalid(format!("NATS credentials: {e}")))?;
    }
    let urls: Vec<async_nats::ServerAddr> = cfg
        .nats_urls
        .iter()
        .map(|u| u.parse().map_err(|e| Error::invalid(format!("NATS URL '{u}': {e}"))))
        .collect::<Result<_>>()?;
    let client = tokio::time::timeout(Duration::from_secs(30), opts.connect(urls))
        .await
        .map_err(|_| nats("connect", format!("no NATS server at {} within 30 s", cfg.nats_urls.join(","))))?
        .map_err(|e| nats("connect", e))?;
    let local = jetstream::new(client.clone());
    let hub = match cfg.role {
        Role::Hub => local.clone(),
        Role::Edge => jetstream::with_domain(client.clone(), &cfg.hub_domain),
    };
    Ok((local, hub))
}

/// Make the stream `cfg.name` or bring its configuration to `cfg`.
async fn ensure_stream(js: &jetstream::Context, cfg: stream::Config) -> Result<()> {
    let name = cfg.name.clone();
    match tokio::time::timeout(BOUND, js.get_stream(&name)).await {
        Ok(Ok(mut s)) => {
            let info = s.info().await.map_err(|e| nats(&name, e))?;
            let have: BTreeSet<String> = info.config.sources.iter().flatten().map(source_key).collect();
            let want: BTreeSet<String> = cfg.sources.iter().flatten().map(source_key).collect();
            if have != want || info.config.subjects != cfg.subjects {
                tracing::info!(stream = %name, sources = want.len(), "edge: updating a stream's sources");
                js.update_stream(cfg).await.map_err(|e| nats(&name, e))?;
            }
            Ok(())
        }
        _ => {
            tokio::time::timeout(Duration::from_secs(10), js.create_stream(cfg))
                .await
                .map_err(|_| nats(&name, "JetStream did not answer"))?
                .map_err(|e| nats(&name, e))?;
            Ok(())
        }
    }
}

fn source_key(s: &stream::Source) -> String {
    format!(
        "{}|{}|{}",
        s.name,
        s.filter_subject.clone().unwrap_or_default(),
        s.external.as_ref().map(|e| e.api_prefix.clone()).unwrap_or_default()
    )
}

async fn bucket(js: &jetstream::Context, name: &str) -> Result<kv::Store> {
    match js.get_key_value(name).await {
        Ok(s) => Ok(s),
        Err(_) => match js.create_key_value(kv::Config { bucket: name.into(), history: 1, ..Default::default() }).await
        {
            Ok(s) => Ok(s),
            Err(e) => js.get_key_value(name).await.map_err(|_| nats(name, e)),
        },
    }
}

pub(crate) fn load_seen(dir: &std::path::Path) -> BTreeMap<String, Hlc> {
    let text = std::fs::read_to_string(dir.join("seen.json")).unwrap_or_default();
    let raw: BTreeMap<String, String> = serde_json::from_str(&text).unwrap_or_default();
    raw.into_iter().filter_map(|(k, v)| Some((k, Hlc::decode(&v)?))).collect()
}

impl Edge {
    fn own_subjects(&self) -> Vec<String> {
        vec![format!("agentdb.sync.{}.>", self.cfg.node_id)]
    }

    /// The inbox's sources: per mirrored collection (or partition), and every node's clock.
    pub(crate) fn inbox_sources(&self) -> Vec<stream::Source> {
        let external =
            Some(stream::External { api_prefix: format!("$JS.{}.API", self.cfg.hub_domain), delivery_prefix: None });
        let mut filters: Vec<String> = self
            .cfg
            .collections
            .iter()
            .filter(|c| c.direction != Direction::Up)
            .map(|c| format!("agentdb.sync.*.{}.{}", c.name, c.only.clone().unwrap_or_else(|| "*".into())))
            .collect();
        filters.push(format!("agentdb.sync.*.{CLOCK_TOKEN}.>"));
        filters
            .into_iter()
            .map(|f| stream::Source {
                name: HUB_STREAM.into(),
                filter_subject: Some(f),
                external: external.clone(),
                ..Default::default()
            })
            .collect()
    }

    pub(crate) async fn make_streams(self: Arc<Self>) -> Result<()> {
        let own = match self.cfg.role {
            Role::Edge => OWN_STREAM,
            Role::Hub => HUB_STREAM,
        };
        let mut cfg = stream::Config {
            name: own.into(),
            subjects: self.own_subjects(),
            storage: stream::StorageType::File,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        };
        if self.cfg.role == Role::Hub {
            // Keep the edges already registered as sources (the hub loop adds new ones).
            if let Ok(mut s) = self.local.get_stream(HUB_STREAM).await {
                if let Ok(info) = s.info().await {
                    cfg.sources = info.config.sources.clone();
                }
            }
            bucket(&self.local, NODES_BUCKET).await?;
            bucket(&self.local, SEEN_BUCKET).await?;
        }
        ensure_stream(&self.local, cfg).await?;
        if self.cfg.role == Role::Edge {
            ensure_stream(
                &self.local,
                stream::Config {
                    name: INBOX_STREAM.into(),
                    storage: stream::StorageType::File,
                    sources: Some(self.inbox_sources()),
                    ..Default::default()
                },
            )
            .await?;
        }
        Ok(())
    }

    /// Store change records in this node's stream (acknowledged once stored there).
    pub(crate) async fn publish(&self, records: Vec<(String, Vec<u8>)>) -> Result<()> {
        let mut acks = Vec::with_capacity(records.len());
        for (subject, body) in records {
            self.counters.published_bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
            let ack = self.local.publish(subject, body.into()).await.map_err(|e| nats("storing a change", e))?;
            acks.push(ack);
        }
        let n = acks.len();
        for ack in acks {
            tokio::time::timeout(Duration::from_secs(10), ack)
                .await
                .map_err(|_| nats("storing a change", "the local JetStream did not acknowledge"))?
                .map_err(|e| nats("storing a change", e))?;
        }
        self.counters.published.fetch_add(n as u64, Ordering::Relaxed);
        Ok(())
    }

    /// The hub answers edges' cache fetches (`cache.rs`) from its own collections.
    async fn serve_fetches(self: Arc<Self>) -> Result<()> {
        let client = self.local.client();
        let mut sub = client
            .subscribe(format!("agentdb.edge.fetch.{}", self.cfg.hub_domain))
            .await
            .map_err(|e| nats("cache fetches", e))?;
        while let Some(m) = sub.next().await {
            let Some(reply) = m.reply.clone() else { continue };
            let (me, client) = (self.clone(), client.clone());
            tokio::spawn(async move {
                let answer = match serde_json::from_slice::<crate::cache::Fetch>(&m.payload) {
                    Ok(req) => {
                        let db = me.db.clone();
                        tokio::task::spawn_blocking(move || crate::cache::serve(&db, req))
                            .await
                            .unwrap_or_else(|e| crate::cache::FetchReply::Error(e.to_string()))
                    }
                    Err(e) => crate::cache::FetchReply::Error(format!("unreadable fetch: {e}")),
                };
                let body = serde_json::to_vec(&answer).unwrap_or_default();
                if let Err(e) = client.publish(reply, body.into()).await {
                    tracing::warn!(error = %e, "edge: a cache fetch's answer was not sent");
                }
            });
        }
        Ok(())
    }

    pub(crate) fn spawn_loops(self: Arc<Self>) {
        if self.cfg.role == Role::Hub {
            let me = self.clone();
            tokio::spawn(async move {
                loop {
                    if let Err(e) = me.clone().serve_fetches().await {
                        tracing::warn!(error = %e, "edge: answering cache fetches stopped; starting again");
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            });
        }
        let streams: Vec<&'static str> = match self.cfg.role {
            Role::Edge => vec![OWN_STREAM, INBOX_STREAM],
            Role::Hub => vec![HUB_STREAM],
        };
        for s in streams {
            let me = self.clone();
            tokio::spawn(async move {
                loop {
                    if let Err(e) = me.clone().apply_loop(s).await {
                        tracing::warn!(stream = s, error = %e, "edge: applying stopped; starting again");
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            });
        }
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(me.cfg.clock_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                // Bounded as a whole: a link cut halfway through a call must not stall it.
                let done = tokio::time::timeout(BOUND * 2, me.clone().housekeeping())
                    .await
                    .unwrap_or_else(|_| Err(nats("hub", "housekeeping timed out")));
                if let Err(e) = done {
                    if me.hub_reachable.swap(false, Ordering::SeqCst) {
                        tracing::warn!(error = %e, "edge: the hub is unreachable; working offline, changes wait in the local stream");
                    }
                }
            }
        });
    }

    async fn apply_loop(self: Arc<Self>, name: &str) -> Result<()> {
        let stream = self.local.get_stream(name).await.map_err(|e| nats(name, e))?;
        let consumer: jetstream::consumer::Consumer<pull::Config> = stream
            .get_or_create_consumer(
                "apply",
                pull::Config {
                    durable_name: Some("apply".into()),
                    ack_policy: jetstream::consumer::AckPolicy::All,
                    max_ack_pending: 100_000,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| nats(name, e))?;
        loop {
            let mut batch = consumer
                .fetch()
                .max_messages(1000)
                .expires(Duration::from_millis(500))
                .messages()
                .await
                .map_err(|e| nats(name, e))?;
            let mut msgs = Vec::new();
            while let Some(m) = batch.next().await {
                msgs.push(m.map_err(|e| nats(name, e))?);
            }
            let Some(last) = msgs.last() else { continue };
            let mut changes = Vec::new();
            for m in &msgs {
                let subject = m.subject.as_str();
                let mut tokens = subject.split('.');
                let (origin, coll) = (tokens.nth(2).unwrap_or_default(), tokens.next().unwrap_or_default());
                if coll == CLOCK_TOKEN {
                    if let Some(h) = std::str::from_utf8(&m.payload).ok().and_then(Hlc::decode) {
                        self.clock.observe(h);
                        self.note_seen(origin, h);
                    }
                    continue;
                }
                match Change::decode(&m.payload) {
                    Ok(c) => changes.push(c),
                    Err(e) => tracing::error!(subject, error = %e, "edge: unreadable change record skipped"),
                }
            }
            if !changes.is_empty() {
                let me = self.clone();
                tokio::task::spawn_blocking(move || me.apply_records(changes)).await.map_err(|e| nats(name, e))??;
            }
            tokio::time::timeout(BOUND, last.ack())
                .await
                .map_err(|_| nats(name, "ack timed out"))?
                .map_err(|e| nats(name, e))?;
        }
    }

    /// Every clock interval: register with the hub, send this node's clock and what it
    /// has seen, keep the hub's sources in step with the registered edges, and collect
    /// the tombstones every node has seen.
    async fn housekeeping(self: Arc<Self>) -> Result<()> {
        let nodes = tokio::time::timeout(BOUND, self.hub.get_key_value(NODES_BUCKET))
            .await
            .map_err(|_| nats("hub", "no answer"))?
            .map_err(|e| nats("hub", e))?;
        let role = serde_json::json!({"role": self.cfg.role}).to_string();
        tokio::time::timeout(BOUND, nodes.put(&self.cfg.node_id, role.into()))
            .await
            .map_err(|_| nats("hub", "no answer"))?
            .map_err(|e| nats("registering with the hub", e))?;
        if !self.hub_reachable.swap(true, Ordering::SeqCst) {
            tracing::info!(hub = %self.cfg.hub_domain, "edge: the hub is reachable; changes flow");
        }
        // This node's clock, stamped while no write stamped earlier is still on its way
        // into the stream: a node that applies it has every change of ours up to it.
        let h = {
            let me = self.clone();
            tokio::task::spawn_blocking(move || {
                let _g = me.stamping.write();
                me.clock.now()
            })
            .await
            .map_err(|e| nats("clock", e))?
        };
        self.publish(vec![(change_subject(&self.cfg.node_id, CLOCK_TOKEN, "_"), h.encode().into_bytes())]).await?;
        // What this node has seen, to the hub and to disk.
        let seen: BTreeMap<String, String> = self.seen.lock().iter().map(|(k, v)| (k.clone(), v.encode())).collect();
        let body = serde_json::to_vec(&seen).expect("a map serialises");
        let _ = std::fs::create_dir_all(&self.cfg.dir);
        let tmp = self.cfg.dir.join("seen.json.tmp");
        if std::fs::write(&tmp, &body).is_ok() {
            let _ = std::fs::rename(&tmp, self.cfg.dir.join("seen.json"));
        }
        let seen_kv = tokio::time::timeout(BOUND, self.hub.get_key_value(SEEN_BUCKET))
            .await
            .map_err(|_| nats("hub", "no answer"))?
            .map_err(|e| nats("hub", e))?;
        tokio::time::timeout(BOUND, seen_kv.put(&self.cfg.node_id, body.into()))
            .await
            .map_err(|_| nats("hub", "no answer"))?
            .map_err(|e| nats("hub", e))?;
        // The registered nodes and what each has seen.
        let mut registered: BTreeMap<String, String> = BTreeMap::new();
        let mut keys = nodes.keys().await.map_err(|e| nats("hub", e))?;
        while let Some(k) = keys.next().await {
            let k = k.map_err(|e| nats("hub", e))?;
            let role = match nodes.get(&k).await.map_err(|e| nats("hub", e))? {
                Some(b) => serde_json::from_slice::<serde_json::Value>(&b)
                    .ok()
                    .and_then(|v| v["role"].as_str().map(str::to_string))
                    .unwrap_or_default(),
                None => continue,
            };
            registered.insert(k, role);
        }
        if self.cfg.role == Role::Hub {
            self.source_edges(&registered).await?;
        }
        let mut floor: Option<Hlc> = None;
        for node in registered.keys() {
            let Some(entry) = seen_kv.entry(node).await.map_err(|e| nats("hub", e))? else {
                // Nothing seen yet: nothing can be collected (the lowest clock).
                floor = Some(Hlc::default());
                continue;
            };
            self.note_revision(node, entry.revision);
            let theirs: BTreeMap<String, String> = serde_json::from_slice(&entry.value).unwrap_or_default();
            for origin in registered.keys() {
                let h = theirs.get(origin).and_then(|t| Hlc::decode(t)).unwrap_or_default();
                floor = Some(floor.map_or(h, |f| f.min(h)));
            }
        }
        if let Some(f) = floor {
            *self.floor.lock() = Some(f);
            let me = self.clone();
            tokio::task::spawn_blocking(move || {
                for sc in &me.cfg.collections {
                    match me.tombs.collect(&sc.name, f) {
                        Ok(n) if n > 0 => {
                            me.counters.collected.fetch_add(n as u64, Ordering::Relaxed);
                            tracing::info!(collection = %sc.name, collected = n, "edge: tombstones every node has seen were collected");
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!(collection = %sc.name, error = %e, "edge: collecting tombstones failed"),
                    }
                }
            })
            .await
            .map_err(|e| nats("tombstones", e))?;
        }
        // Sources JetStream is still backing off on although the far side is back.
        if let Err(e) = self.restart_stalled_sources().await {
            tracing::warn!(error = %e, "edge: checking the sync sources failed");
        }
        Ok(())
    }

    /// The hub's stream sources each registered edge's change stream.
    async fn source_edges(&self, registered: &BTreeMap<String, String>) -> Result<()> {
        let sources: Vec<stream::Source> = registered
            .iter()
            .filter(|(_, role)| role.as_str() == "edge")
            .map(|(node, _)| stream::Source {
                name: OWN_STREAM.into(),
                external: Some(stream::External { api_prefix: format!("$JS.{node}.API"), delivery_prefix: None }),
                ..Default::default()
            })
            .collect();
        let cfg = stream::Config {
            name: HUB_STREAM.into(),
            subjects: self.own_subjects(),
            storage: stream::StorageType::File,
            duplicate_window: Duration::from_secs(120),
            sources: (!sources.is_empty()).then_some(sources),
            ..Default::default()
        };
        ensure_stream(&self.local, cfg).await
    }

    /// The sync streams in this node's JetStream, for the status: messages stored, the
    /// last sequence, what the apply loop has still to apply, and each source's lag (in
    /// messages) and time since it was last active. An entry with `error` when JetStream
    /// does not answer within the bound.
    pub async fn streams_status(&self) -> serde_json::Value {
        let names: &[&str] = match self.cfg.role {
            Role::Edge => &[OWN_STREAM, INBOX_STREAM],
            Role::Hub => &[HUB_STREAM],
        };
        let mut out = Vec::new();
        for &name in names {
            let got = tokio::time::timeout(BOUND, async {
                let mut s = self.local.get_stream(name).await.map_err(|e| e.to_string())?;
                let info = s.info().await.map_err(|e| e.to_string())?.clone();
                let pending = s.consumer_info("apply").await.ok().map(|c| c.num_pending);
                Ok::<_, String>((info, pending))
            })
            .await
            .unwrap_or_else(|_| Err("JetStream did not answer".into()));
            out.push(match got {
                Ok((info, pending)) => {
                    let sources: Vec<serde_json::Value> = info
                        .sources
                        .iter()
                        .map(|src| {
                            serde_json::json!({
                                "name": src.name,
                                "filter": src.filter_subject,
                                "lag": src.lag,
                                "active_ms": src.active.map(|d| d.as_millis() as u64),
                            })
                        })
                        .collect();
                    serde_json::json!({
                        "name": name,
                        "messages": info.state.messages,
                        "last_seq": info.state.last_sequence,
                        "to_apply": pending,
                        "sources": sources,
                    })
                }
                Err(e) => serde_json::json!({"name": name, "error": e}),
            });
        }
        serde_json::Value::Array(out)
    }

    /// Forget a node (a lost or retired device): it is no longer sourced and no longer
    /// holds back the collection of tombstones. Its NATS credentials are revoked apart.
    pub async fn forget_node(&self, node: &str) -> Result<bool> {
        let nodes = self.hub.get_key_value(NODES_BUCKET).await.map_err(|e| nats("hub", e))?;
        let known = nodes.get(node).await.map_err(|e| nats("hub", e))?.is_some();
        nodes.purge(node).await.map_err(|e| nats("hub", e))?;
        let seen = self.hub.get_key_value(SEEN_BUCKET).await.map_err(|e| nats("hub", e))?;
        seen.purge(node).await.map_err(|e| nats("hub", e))?;
        Ok(known)
    }
}
