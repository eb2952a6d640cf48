//! Edge sync: offline-first AgentDB nodes that exchange item changes with a hub over
//! NATS leaf nodes (docs/EDGE.md).
//!
//! Every node — the hub and each edge — stamps its writes to the synced collections with
//! a hybrid logical clock ([`hlc`]) and records them, before they are applied, in its own
//! change stream on its own JetStream domain (an edge's is its local leaf nats-server, so
//! a write never waits on the network). The hub's stream sources every edge's stream;
//! each edge's inbox sources the hub's stream, filtered to the collections (and the
//! partition) it mirrors. Every node applies what arrives by joining it with what it
//! holds ([`merge`]): last writer wins per item, per-field policies, tombstones for
//! deletes ([`tombs`]), so all replicas converge whatever the order of arrival. The
//! engine's write hook routes every write path of the server through [`Edge`].

pub mod cache;
pub mod change;
pub mod hlc;
pub mod merge;
mod stalls;
mod streams;
pub mod tombs;

use agentdb_engine::{Collection, Database, Error, Filter, Hit, Item, Result, StoredItem, WriteHook};
use change::{Change, VectorEncoding};
use hlc::{Clock, Hlc, Stamp};
use merge::{Policies, Version};
use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// An edge: its own JetStream domain on a local leaf nats-server.
    Edge,
    /// The hub that every edge's changes flow through.
    Hub,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Edge changes go up and hub changes come down.
    Both,
    /// Only up: the hub gets the edge's writes, the edge gets nothing back.
    Up,
    /// Only down: a mirror of the hub's collection; writing it on the edge is refused.
    Down,
}

/// One synced collection.
#[derive(Debug, Clone)]
pub struct SyncCollection {
    pub name: String,
    pub direction: Direction,
    /// The payload field whose value routes a change (its subject's last token), so an
    /// edge can mirror only part of a collection. Must be the same on every node.
    pub partition_field: Option<String>,
    /// On an edge: mirror only the changes whose partition value is this.
    pub only: Option<String>,
    pub policies: Policies,
}

#[derive(Debug, Clone)]
pub struct EdgeConfig {
    pub role: Role,
    /// This node's id: its JetStream domain on an edge, its changes' origin everywhere.
    pub node_id: String,
    /// NATS: an edge's local leaf server, the hub's own server.
    pub nats_urls: Vec<String>,
    pub credentials: Option<PathBuf>,
    /// The hub's JetStream domain.
    pub hub_domain: String,
    pub collections: Vec<SyncCollection>,
    /// On an edge: hub collections kept as a bounded cache ([`cache`]).
    pub caches: Vec<cache::CacheSpec>,
    /// How vectors travel (and are stored on the origin, so replicas agree bit for bit).
    pub encoding: VectorEncoding,
    /// Where the tombstones and the applied-clock record live.
    pub dir: PathBuf,
    /// How often a node sends its clock (how long a tombstone waits, at least, to be collected).
    pub clock_interval: Duration,
}

/// Subject token for a partition value: letters, digits, `_` and `-` kept, anything
/// else `_`; no value: `_`.
pub fn partition_token(v: Option<&serde_json::Value>) -> String {
    let raw = match v {
        None | Some(serde_json::Value::Null) => return "_".into(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(x) => x.to_string(),
    };
    let t: String =
        raw.chars().take(64).map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    if t.is_empty() {
        "_".into()
    } else {
        t
    }
}

pub fn change_subject(origin: &str, collection: &str, partition: &str) -> String {
    format!("agentdb.sync.{origin}.{collection}.{partition}")
}

#[derive(Default)]
struct Counters {
    published: AtomicU64,
    published_bytes: AtomicU64,
    applied: AtomicU64,
    unchanged: AtomicU64,
    refused: AtomicU64,
    collected: AtomicU64,
}

/// A running edge-sync node.
pub struct Edge {
    cfg: EdgeConfig,
    db: Arc<Database>,
    rt: tokio::runtime::Handle,
    local: async_nats::jetstream::Context,
    hub: async_nats::jetstream::Context,
    clock: Clock,
    tombs: tombs::Tombstones,
    /// One apply at a time per collection (read, join, write).
    locks: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    /// Held (shared) from stamping a write until its record is stored; the clock record
    /// is stamped holding it exclusively, so no write stamped earlier is still on its way.
    stamping: RwLock<()>,
    /// Per origin, the newest stamp or clock reading applied from it.
    seen: Mutex<BTreeMap<String, Hlc>>,
    hub_reachable: AtomicBool,
    counters: Counters,
    /// The latest GC floor read from the hub (every node's seen clocks).
    floor: Mutex<Option<Hlc>>,
    /// Per cached collection, its accounting (loaded on first use).
    lrus: Mutex<HashMap<String, cache::Lru>>,
    cache_from_hub: AtomicU64,
    cache_local: AtomicU64,
    cache_evicted: AtomicU64,
    /// Stalled sources restarted, and the hub's view of which edges are alive.
    watch: stalls::Watch,
}

/// Why an answer from the cache may be partial.
fn partial(name: &str, why: &str, items: usize) -> String {
    format!(
        "the hub is unreachable ({why}): answered from this edge's cache of '{name}' ({items} items); the answer may be partial"
    )
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Unavailable(format!("edge sync: {what}: {e}"))
}

impl Edge {
    /// Connect to NATS, make the streams, route the synced collections' writes through
    /// this node and start applying what arrives.
    pub async fn start(cfg: EdgeConfig, db: Arc<Database>) -> Result<Arc<Edge>> {
        agentdb_engine::validate_name("edge node id", &cfg.node_id)?;
        if cfg.node_id == "_clock" {
            return Err(Error::invalid("edge node id '_clock' is reserved"));
        }
        for c in &cfg.caches {
            agentdb_engine::validate_name("cached collection", &c.name)?;
            if cfg.role == Role::Hub {
                return Err(Error::invalid(format!("cached collection '{}': a cache is for edges", c.name)));
            }
            if cfg.collections.iter().any(|s| s.name == c.name) {
                return Err(Error::invalid(format!("collection '{}' is both synced and cached: choose one", c.name)));
            }
        }
        for c in &cfg.collections {
            agentdb_engine::validate_name("synced collection", &c.name)?;
            if cfg.role == Role::Hub && c.only.is_some() {
                return Err(Error::invalid(format!(
                    "synced collection '{}': a partition filter is for edges (the hub holds every partition)",
                    c.name
                )));
            }
        }
        let (local, hub) = streams::connect(&cfg).await?;
        let tombs = tombs::Tombstones::open(&cfg.dir.join("tombstones"))?;
        let seen = streams::load_seen(&cfg.dir);
        let edge = Arc::new(Edge {
            rt: tokio::runtime::Handle::current(),
            local,
            hub,
            clock: Clock::new(),
            tombs,
            locks: Mutex::new(HashMap::new()),
            stamping: RwLock::new(()),
            seen: Mutex::new(seen),
            hub_reachable: AtomicBool::new(false),
            counters: Counters::default(),
            floor: Mutex::new(None),
            lrus: Mutex::new(HashMap::new()),
            cache_from_hub: AtomicU64::new(0),
            cache_local: AtomicU64::new(0),
            cache_evicted: AtomicU64::new(0),
            watch: stalls::Watch::default(),
            db: db.clone(),
            cfg,
        });
        // Never hand out a reading below one this node made before a restart.
        for h in edge.seen.lock().values() {
            edge.clock.observe(*h);
        }
        edge.clone().make_streams().await?;
        db.set_write_hook(edge.clone());
        edge.clone().spawn_loops();
        tracing::info!(node = %edge.cfg.node_id, role = ?edge.cfg.role, collections = edge.cfg.collections.len(), "edge sync started");
        Ok(edge)
    }

    pub fn config(&self) -> &EdgeConfig {
        &self.cfg
    }

    fn sync_of(&self, name: &str) -> Option<&SyncCollection> {
        self.cfg.collections.iter().find(|c| c.name == name)
    }

    /// Whether this node's writes to `sc` are recorded for the others.
    fn publishes(&self, sc: &SyncCollection) -> bool {
        self.cfg.role == Role::Hub || sc.direction != Direction::Down
    }

    fn lock_of(&self, name: &str) -> Arc<Mutex<()>> {
        self.locks.lock().entry(name.to_string()).or_default().clone()
    }

    /// Run a future on the runtime from synchronous code (the engine's write path runs on
    /// blocking threads or inside runtime tasks).
    fn wait<F: std::future::Future>(&self, f: F) -> F::Output {
        match tokio::runtime::Handle::try_current() {
            Ok(_) => tokio::task::block_in_place(|| self.rt.block_on(f)),
            Err(_) => self.rt.block_on(f),
        }
    }

    /// Stamp versions of local writes, store their records, then apply them.
    fn write_local(&self, col: &Collection, sc: &SyncCollection, versions: Vec<(String, Version)>) -> Result<()> {
        let guard = self.stamping.read();
        let versions: Vec<(String, Version)> = versions
            .into_iter()
            .map(|(id, mut v)| {
                v.stamp = Stamp { hlc: self.clock.now(), origin: self.cfg.node_id.clone() };
                (id, merge::normalize(v, &sc.policies))
            })
            .collect();
        if self.publishes(sc) {
            let records: Vec<(String, Vec<u8>)> = versions
                .iter()
                .map(|(id, v)| {
                    let subject = change_subject(
                        &self.cfg.node_id,
                        &sc.name,
                        &partition_token(sc.partition_field.as_ref().and_then(|f| v.payload.get(f))),
                    );
                    let c = Change { collection: sc.name.clone(), id: id.clone(), version: v.clone() };
                    (subject, c.encode(self.cfg.encoding))
                })
                .collect();
            self.wait(self.publish(records))?;
        }
        drop(guard);
        if let Some((_, v)) = versions.last() {
            self.note_seen(&self.cfg.node_id.clone(), v.stamp.hlc);
        }
        self.apply(col, sc, versions)
    }

    fn note_seen(&self, origin: &str, h: Hlc) {
        let mut seen = self.seen.lock();
        let e = seen.entry(origin.to_string()).or_default();
        if h > *e {
            *e = h;
        }
    }

    /// Take versions into the collection: each joined with the item's stored state (or
    /// tombstone), written only where the state changes.
    fn apply(&self, col: &Collection, sc: &SyncCollection, versions: Vec<(String, Version)>) -> Result<()> {
        let lock = self.lock_of(&sc.name);
        let _g = lock.lock();
        // Versions of one id in one batch fold together first.
        let mut incoming: BTreeMap<String, Version> = BTreeMap::new();
        for (id, v) in versions {
            let v = merge::normalize(v, &sc.policies);
            let joined = match incoming.remove(&id) {
                Some(prev) => merge::join(&prev, &v, &sc.policies),
                None => v,
            };
            incoming.insert(id, joined);
        }
        let ids: Vec<String> = incoming.keys().cloned().collect();
        let max = col.options().limits.max_batch.max(1);
        let mut live: HashMap<String, Version> = HashMap::new();
        for chunk in ids.chunks(max) {
            for it in col.get(chunk, true)? {
                live.insert(it.id.clone(), Version::from_stored(it.vectors, it.payload));
            }
        }
        let mut upserts = Vec::new();
        let mut deletes = Vec::new();
        let mut tomb_changes = Vec::new();
        for (id, v) in incoming {
            let tomb = self.tombs.get(&sc.name, &id)?;
            let had_tomb = tomb.is_some();
            let was_live = live.contains_key(&id);
            let current = match (live.remove(&id), tomb) {
                (Some(a), Some(b)) => Some(merge::join(&a, &b, &sc.policies)),
                (a, b) => a.or(b),
            };
            let next = match &current {
                Some(c) => merge::join(c, &v, &sc.policies),
                None => v,
            };
            let same = current
                .as_ref()
                .is_some_and(|c| c.stamp == next.stamp && c.deleted == next.deleted && c.payload == next.payload);
            if same && (was_live != next.deleted) && (had_tomb == next.deleted) {
                self.counters.unchanged.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if next.deleted {
                tomb_changes.push((id.clone(), Some(next)));
                if was_live {
                    deletes.push(id);
                }
            } else {
                if had_tomb {
                    tomb_changes.push((id.clone(), None));
                }
                upserts.push(Item { id, vectors: next.vectors.clone(), payload: next.stored_payload() });
            }
        }
        let n = upserts.len() + deletes.len();
        // A delete's tombstone is durable before the item goes; an item that comes back
        // is stored before its tombstone goes (a crash between leaves both, which the
        // next apply joins).
        let (graves, exhumed): (Vec<_>, Vec<_>) = tomb_changes.into_iter().partition(|(_, v)| v.is_some());
        self.tombs.write(&sc.name, graves)?;
        for chunk in deletes.chunks(max) {
            col.delete_direct(chunk)?;
        }
        let mut rest = upserts;
        while !rest.is_empty() {
            let tail = rest.split_off(rest.len().min(max));
            col.upsert_direct(std::mem::replace(&mut rest, tail))?;
        }
        self.tombs.write(&sc.name, exhumed)?;
        self.counters.applied.fetch_add(n as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Apply records that arrived from a stream (remote or this node's own, replayed).
    /// A record for a synced collection this node does not have yet is an error: the
    /// stream waits (nothing is acknowledged) until the collection is created.
    fn apply_records(&self, changes: Vec<Change>) -> Result<()> {
        if let Some(c) =
            changes.iter().find(|c| self.sync_of(&c.collection).is_some() && self.db.collection(&c.collection).is_err())
        {
            return Err(Error::CollectionNotFound(format!(
                "{} (a synced collection: create it on this node with the same spaces; its changes wait)",
                c.collection
            )));
        }
        let mut by_coll: BTreeMap<String, Vec<(String, Version)>> = BTreeMap::new();
        for c in changes {
            self.clock.observe(c.version.stamp.hlc);
            self.note_seen(&c.version.stamp.origin, c.version.stamp.hlc);
            by_coll.entry(c.collection).or_default().push((c.id, c.version));
        }
        for (name, versions) in by_coll {
            let Some(sc) = self.sync_of(&name) else {
                tracing::debug!(collection = %name, "edge: a change for a collection this node does not sync, skipped");
                continue;
            };
            let col = self.db.collection(&name)?;
            let n = versions.len();
            match self.apply(&col, sc, versions) {
                Ok(()) => {}
                // The disk or the engine failing: try again later rather than lose them.
                Err(e @ (Error::Io { .. } | Error::Unavailable(_) | Error::Locked { .. })) => return Err(e),
                // A record the engine refuses (its vectors do not fit this node's spaces):
                // every retry would fail alike.
                Err(e) => {
                    self.counters.refused.fetch_add(n as u64, Ordering::Relaxed);
                    tracing::error!(collection = %name, records = n, error = %e, "edge: changes refused by the engine (are the collection's spaces the same on every node?)");
                }
            }
        }
        Ok(())
    }

    /// Every item's digest (id -> digest) of a synced collection, and the tombstones' ids.
    pub fn digests(&self, name: &str) -> Result<(BTreeMap<String, String>, Vec<String>)> {
        let col = self.db.collection(name)?;
        let mut out = BTreeMap::new();
        let mut after = String::new();
        loop {
            let (items, next) = col.scroll(None, &after, agentdb_engine::MAX_SCROLL_LIMIT, true)?;
            for it in items {
                out.insert(it.id.clone(), merge::item_digest(&it.id, &it.payload, &it.vectors));
            }
            match next {
                Some(n) => after = n,
                None => break,
            }
        }
        let mut tombs: Vec<String> = self.tombs.list(name).into_iter().map(|(id, _)| id).collect();
        tombs.sort();
        Ok((out, tombs))
    }

    /// What this node's sync is doing (for `GET /v1/edge/status`); with `digest`, each
    /// synced collection's digest (a scan of every item and vector), with `items` every
    /// item's too.
    pub fn status(&self, digest: bool, with_items: bool) -> serde_json::Value {
        let mut cols = Vec::new();
        for sc in &self.cfg.collections {
            let mut c = serde_json::json!({
                "name": sc.name,
                "direction": sc.direction,
                "partition_field": sc.partition_field,
                "only": sc.only,
                "tombstones": self.tombs.count(&sc.name),
            });
            if !(digest || with_items) {
                match self.db.collection(&sc.name).and_then(|col| col.count(None)) {
                    Ok(n) => c["items"] = serde_json::json!(n),
                    Err(e) => c["error"] = serde_json::json!(e.to_string()),
                }
                cols.push(c);
                continue;
            }
            match self.digests(&sc.name) {
                Ok((items, tombs)) => {
                    let mut h = sha2::Sha256::new();
                    use sha2::Digest;
                    for (id, d) in &items {
                        h.update(id.as_bytes());
                        h.update([0]);
                        h.update(d.as_bytes());
                        h.update([0]);
                    }
                    let root: String = h.finalize().iter().take(16).map(|b| format!("{b:02x}")).collect();
                    c["items"] = serde_json::json!(items.len());
                    c["digest"] = serde_json::json!(root);
                    if with_items {
                        c["item_digests"] = serde_json::json!(items);
                        c["tombstone_ids"] = serde_json::json!(tombs);
                    }
                }
                Err(e) => c["error"] = serde_json::json!(e.to_string()),
            }
            cols.push(c);
        }
        let caches: Vec<serde_json::Value> = self
            .cfg
            .caches
            .iter()
            .map(|c| {
                let lrus = self.lrus.lock();
                let (bytes, items) = lrus.get(&c.name).map_or((0, 0), |l| (l.bytes, l.len()));
                serde_json::json!({"name": c.name, "budget_bytes": c.budget, "bytes": bytes, "items": items})
            })
            .collect();
        let seen: BTreeMap<String, String> = self.seen.lock().iter().map(|(k, v)| (k.clone(), v.encode())).collect();
        serde_json::json!({
            "caches": caches,
            "cache_answers_from_hub": self.cache_from_hub.load(Ordering::Relaxed),
            "cache_answers_local": self.cache_local.load(Ordering::Relaxed),
            "cache_evicted": self.cache_evicted.load(Ordering::Relaxed),
            "node": self.cfg.node_id,
            "role": self.cfg.role,
            "hub_domain": self.cfg.hub_domain,
            "hub_reachable": self.hub_reachable.load(Ordering::SeqCst),
            "vector_encoding": self.cfg.encoding,
            "clock": self.clock.peek().encode(),
            "seen": seen,
            "gc_floor": self.floor.lock().map(|h| h.encode()),
            "published": self.counters.published.load(Ordering::Relaxed),
            "published_bytes": self.counters.published_bytes.load(Ordering::Relaxed),
            "applied": self.counters.applied.load(Ordering::Relaxed),
            "unchanged": self.counters.unchanged.load(Ordering::Relaxed),
            "refused": self.counters.refused.load(Ordering::Relaxed),
            "tombstones_collected": self.counters.collected.load(Ordering::Relaxed),
            "collections": cols,
        })
    }

    /// Whether `name` is a cached hub collection on this edge.
    pub fn is_cache(&self, name: &str) -> bool {
        self.cfg.caches.iter().any(|c| c.name == name)
    }

    fn with_lru<R>(&self, col: &Collection, f: impl FnOnce(&mut cache::Lru) -> Result<R>) -> Result<R> {
        let mut lrus = self.lrus.lock();
        if !lrus.contains_key(col.name()) {
            let budget = self.cfg.caches.iter().find(|c| c.name == col.name()).map_or(0, |c| c.budget);
            lrus.insert(col.name().to_string(), cache::load(col, budget)?);
        }
        f(lrus.get_mut(col.name()).expect("inserted above"))
    }

    /// Ask the hub (bounded by 3 s); an error names why it could not answer.
    fn fetch(&self, req: cache::Fetch) -> std::result::Result<Vec<cache::Fetched>, String> {
        if !self.hub_reachable() {
            return Err("no link to it".into());
        }
        let body = serde_json::to_vec(&req).map_err(|e| e.to_string())?;
        let subject = format!("agentdb.edge.fetch.{}", self.cfg.hub_domain);
        let client = self.local.client();
        let reply = self.wait(async move {
            tokio::time::timeout(Duration::from_secs(3), client.request(subject, body.into())).await
        });
        let msg = reply.map_err(|_| "no answer within 3 s".to_string())?.map_err(|e| e.to_string())?;
        match serde_json::from_slice::<cache::FetchReply>(&msg.payload).map_err(|e| e.to_string())? {
            cache::FetchReply::Items(items) => Ok(items),
            cache::FetchReply::Error(e) => Err(format!("the hub refused: {e}")),
        }
    }

    /// A vector search on a cached collection: the hub's answer (kept in the cache) while
    /// it is reachable, else the cache's with the reason it may be partial.
    #[allow(clippy::too_many_arguments)]
    pub fn cache_search(
        &self,
        col: &Collection,
        space: &str,
        vector: Vec<f32>,
        k: usize,
        filter: Option<&Filter>,
        with_payload: bool,
        with_vectors: bool,
    ) -> Result<(Vec<Hit>, Option<String>)> {
        let (_, spec) = col.spec.resolve_space(space)?;
        let space_name = spec.name.clone();
        let asked = cache::Fetch::Search {
            collection: col.name().to_string(),
            space: space.to_string(),
            vector: vector.clone(),
            k,
            filter: filter.cloned(),
        };
        let why = match self.fetch(asked) {
            Ok(items) => {
                let evicted = self.with_lru(col, |lru| cache::keep(col, lru, &items))?;
                self.cache_evicted.fetch_add(evicted as u64, Ordering::Relaxed);
                self.cache_from_hub.fetch_add(1, Ordering::Relaxed);
                let hits = items
                    .into_iter()
                    .map(|f| Hit {
                        vector: if with_vectors { f.vectors.get(&space_name).cloned() } else { None },
                        payload: with_payload.then_some(f.payload),
                        id: f.id,
                        score: f.score,
                    })
                    .collect();
                return Ok((hits, None));
            }
            Err(why) => why,
        };
        let hits = col
            .search(agentdb_engine::SearchRequest {
                space,
                queries: vec![vector],
                k,
                filter,
                params: Default::default(),
                with_payload,
                with_vectors,
            })?
            .into_iter()
            .next()
            .unwrap_or_default();
        self.cache_local.fetch_add(1, Ordering::Relaxed);
        let n = self.with_lru(col, |lru| {
            hits.iter().for_each(|h| lru.touch(&h.id, None));
            Ok(lru.len())
        })?;
        Ok((hits, Some(partial(col.name(), &why, n))))
    }

    /// Items of a cached collection by id: the cached ones, and the rest from the hub
    /// (then kept) while it is reachable; offline, missing ones make the answer partial.
    pub fn cache_get(
        &self,
        col: &Collection,
        ids: &[String],
        with_vectors: bool,
    ) -> Result<(Vec<StoredItem>, Option<String>)> {
        let mut found: HashMap<String, StoredItem> =
            col.get(ids, true)?.into_iter().map(|it| (it.id.clone(), it)).collect();
        self.with_lru(col, |lru| {
            found.keys().for_each(|id| lru.touch(id, None));
            Ok(())
        })?;
        let missing: Vec<String> = ids.iter().filter(|id| !found.contains_key(*id)).cloned().collect();
        let mut why = None;
        if !missing.is_empty() {
            match self.fetch(cache::Fetch::Get { collection: col.name().to_string(), ids: missing }) {
                Ok(items) => {
                    let evicted = self.with_lru(col, |lru| cache::keep(col, lru, &items))?;
                    self.cache_evicted.fetch_add(evicted as u64, Ordering::Relaxed);
                    self.cache_from_hub.fetch_add(1, Ordering::Relaxed);
                    for f in items {
                        found.insert(f.id.clone(), StoredItem { id: f.id, vectors: f.vectors, payload: f.payload });
                    }
                }
                Err(e) => {
                    self.cache_local.fetch_add(1, Ordering::Relaxed);
                    let n = self.with_lru(col, |lru| Ok(lru.len()))?;
                    why = Some(partial(col.name(), &e, n));
                }
            }
        }
        let mut out = Vec::new();
        for id in ids {
            if let Some(mut it) = found.remove(id) {
                if !with_vectors {
                    it.vectors.clear();
                }
                out.push(it);
            }
        }
        Ok((out, why))
    }

    pub fn hub_reachable(&self) -> bool {
        self.hub_reachable.load(Ordering::SeqCst)
    }
}

fn cache_write(name: &str) -> Error {
    Error::invalid(format!("collection '{name}' is this edge's cache of the hub's (edge.cache): write it on the hub"))
}

impl WriteHook for Edge {
    fn wants(&self, name: &str) -> bool {
        self.sync_of(name).is_some() || self.is_cache(name)
    }

    fn upsert(&self, col: &Collection, items: Vec<Item>) -> Result<Vec<String>> {
        if self.is_cache(col.name()) {
            return Err(cache_write(col.name()));
        }
        let sc = self.sync_of(col.name()).ok_or_else(|| Error::invalid("edge: not a synced collection"))?;
        if self.cfg.role == Role::Edge && sc.direction == Direction::Down {
            return Err(Error::invalid(format!(
                "collection '{}' is a mirror of the hub's (edge sync direction 'down'): write it on the hub",
                sc.name
            )));
        }
        let items = col.validate_items(items)?;
        let ids: Vec<String> = items.iter().map(|i| i.id.clone()).collect();
        let versions = items
            .into_iter()
            .map(|it| {
                let mut payload = match it.payload {
                    serde_json::Value::Object(m) => m,
                    _ => Default::default(),
                };
                payload.remove(merge::SYNC_FIELD);
                let vectors = it.vectors.into_iter().map(|(k, v)| (k, self.cfg.encoding.round_trip(&v))).collect();
                (it.id, Version { stamp: Stamp::default(), deleted: false, vectors, payload })
            })
            .collect();
        self.write_local(col, sc, versions)?;
        Ok(ids)
    }

    fn delete(&self, col: &Collection, ids: &[String]) -> Result<usize> {
        if self.is_cache(col.name()) {
            return Err(cache_write(col.name()));
        }
        let sc = self.sync_of(col.name()).ok_or_else(|| Error::invalid("edge: not a synced collection"))?;
        if self.cfg.role == Role::Edge && sc.direction == Direction::Down {
            return Err(Error::invalid(format!(
                "collection '{}' is a mirror of the hub's (edge sync direction 'down'): delete on the hub",
                sc.name
            )));
        }
        let present: Vec<String> = col.get(ids, false)?.into_iter().map(|it| it.id).collect();
        if present.is_empty() {
            return Ok(0);
        }
        let versions = present
            .iter()
            .map(|id| {
                (
                    id.clone(),
                    Version {
                        stamp: Stamp::default(),
                        deleted: true,
                        vectors: BTreeMap::new(),
                        payload: Default::default(),
                    },
                )
            })
            .collect();
        self.write_local(col, sc, versions)?;
        Ok(present.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_tokens_are_subject_safe() {
        use serde_json::json;
        assert_eq!(partition_token(Some(&json!(17))), "17");
        assert_eq!(partition_token(Some(&json!("store 9.a*"))), "store_9_a_");
        assert_eq!(partition_token(None), "_");
        assert_eq!(partition_token(Some(&json!(null))), "_");
        assert_eq!(partition_token(Some(&json!(""))), "_");
        assert_eq!(change_subject("edge-a", "products", "17"), "agentdb.sync.edge-a.products.17");
    }
}
