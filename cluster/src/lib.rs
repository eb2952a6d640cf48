//! Cluster mode: sharded, replicated collections on NATS JetStream (docs/CLUSTER.md).
//!
//! The engine knows nothing of it. A node joins with [`Cluster::join`]; from then on:
//!
//! - **Membership**: each node puts a heartbeat ([`NodeInfo`]) into the KV bucket
//!   `agentdb-nodes` every [`ClusterConfig::heartbeat`]; a node whose heartbeat revision has
//!   not moved for [`ClusterConfig::node_ttl`] (by the observer's own clock, so clock skew
//!   does not matter) is taken as dead.
//! - **Leadership**: a lease, the key `leader` of the bucket `agentdb-leader`, taken with a
//!   compare-and-set `create`, renewed with `update(revision)`; a lease that has not moved
//!   for `node_ttl` is taken over with `update(last seen revision)`, so two nodes cannot
//!   both win. NATS KV (a JetStream stream, Raft-replicated) is the consensus; none of ours.
//! - **Placement**: the leader assigns each shard's replicas to live nodes (fewest replicas
//!   first) and moves those of a dead node to live ones (`agentdb-meta`, `assign.C.S`).
//! - **Writes**: ids hash (FNV-1a) to shards; each shard's writes are records in its own
//!   stream `AGENTDB-C-S` (subject `agentdb.w.C.S`, deduplicated by a message id). A write
//!   is acknowledged to the client once JetStream has stored it; the answer carries a
//!   consistency token (the stream sequence per shard written).
//! - **Replicas**: every node that holds a shard applies its stream to a local engine
//!   collection `_shard-C-S` through a durable pull consumer; the consumer's ack floor is
//!   the checkpoint (a record is acked only after the engine has stored it; re-applying
//!   one is harmless: upserts and deletes by id are idempotent).
//! - **Reads**: any node serves any read: one replica per shard (itself when it holds
//!   one), asked over NATS request-reply (`agentdb.rpc.NODE`) otherwise, the next replica
//!   when one does not answer; search results are merged exactly (each shard returns its
//!   own top k). A read may pass a consistency token: the replica waits until it has
//!   applied that far ([`ClusterConfig::read_wait`], then UNAVAILABLE).

mod events;
mod placement;
mod queries;
mod wire;

use placement::{placement, PlaceInput};
pub use wire::*;

use agentdb_engine::{CollectionSpec, Database, Filter, Item, Metric, SearchParams, SearchRequest};
use async_nats::jetstream::{self, consumer::pull, kv, stream};
use bytes::Bytes;
use futures_util::StreamExt;
use parking_lot::{Mutex, RwLock};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// KV buckets and name prefixes.
pub const NODES_BUCKET: &str = "agentdb-nodes";
pub const META_BUCKET: &str = "agentdb-meta";
pub const LEADER_BUCKET: &str = "agentdb-leader";
const LEADER_KEY: &str = "leader";
/// Largest write record (NATS' default max_payload is 1 MiB).
const MAX_RECORD_BYTES: usize = 768 * 1024;
/// Records applied per fetch.
const APPLY_BATCH: usize = 512;
/// Most shards and replicas of one collection.
pub const MAX_SHARDS: u32 = 256;
pub const MAX_REPLICAS: u32 = 16;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The cluster cannot serve this now (no replica, not connected, not caught up).
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Engine(#[from] agentdb_engine::Error),
    #[error("NATS: {0}")]
    Nats(String),
}

pub type Result<T> = std::result::Result<T, Error>;

fn nats<E: std::fmt::Display>(e: E) -> Error {
    Error::Nats(e.to_string())
}

/// How a node joins the cluster.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// NATS server URLs (`nats://HOST:PORT`, `tls://...`).
    pub urls: Vec<String>,
    /// This node's id (unique in the cluster; letters, digits, `_`, `-`).
    pub node_id: String,
    /// This node's gRPC address, shown in `cluster status`.
    pub addr: String,
    /// A NATS credentials file (`.creds`), if the servers ask for one.
    pub credentials: Option<std::path::PathBuf>,
    /// A CA certificate (PEM) to trust for `tls://` servers.
    pub tls_ca: Option<std::path::PathBuf>,
    pub heartbeat: Duration,
    /// A node (or the leader's lease) silent this long is taken as gone.
    pub node_ttl: Duration,
    /// How long a read waits for a replica to catch up with its consistency token.
    pub read_wait: Duration,
    /// How long a read waits for another node's answer before it asks the next replica.
    pub rpc_timeout: Duration,
}

impl ClusterConfig {
    pub fn new(urls: Vec<String>, node_id: String, addr: String) -> ClusterConfig {
        ClusterConfig {
            urls,
            node_id,
            addr,
            credentials: None,
            tls_ca: None,
            heartbeat: Duration::from_millis(500),
            node_ttl: Duration::from_millis(3000),
            read_wait: Duration::from_secs(5),
            rpc_timeout: Duration::from_secs(2),
        }
    }
}

/// What a read asks of the replicas: the per-shard stream sequences a write reached
/// (read-your-writes), and whether a node cut off from NATS may answer from its own,
/// possibly stale, replicas.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Token {
    pub seqs: BTreeMap<u32, u64>,
    pub allow_stale: bool,
}

impl Token {
    /// `S:SEQ,S:SEQ` (empty: no constraint).
    pub fn parse(s: &str) -> Result<Token> {
        let mut t = BTreeMap::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (a, b) = part.split_once(':').ok_or_else(|| bad_token(s))?;
            let shard: u32 = a.trim().parse().map_err(|_| bad_token(s))?;
            let seq: u64 = b.trim().parse().map_err(|_| bad_token(s))?;
            let e = t.entry(shard).or_insert(0);
            *e = (*e).max(seq);
        }
        Ok(Token { seqs: t, allow_stale: false })
    }

    pub fn min_seq(&self, shard: u32) -> u64 {
        self.seqs.get(&shard).copied().unwrap_or(0)
    }
}

fn bad_token(s: &str) -> Error {
    Error::Invalid(format!("consistency token '{s}' is not SHARD:SEQ[,SHARD:SEQ...]"))
}

impl std::fmt::Display for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.seqs.iter().map(|(s, q)| format!("{s}:{q}")).collect();
        f.write_str(&parts.join(","))
    }
}

/// The shard an id belongs to (FNV-1a, stable across versions and platforms).
pub fn shard_of(id: &str, shards: u32) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.as_bytes() {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % shards.max(1) as u64) as u32
}

/// The local engine collection that holds this node's replica of a shard.
pub fn shard_collection(collection: &str, shard: u32) -> String {
    format!("_shard-{collection}-{shard}")
}

fn stream_name(collection: &str, shard: u32) -> String {
    format!("AGENTDB-{collection}-{shard}")
}

fn write_subject(collection: &str, shard: u32) -> String {
    format!("agentdb.w.{collection}.{shard}")
}

fn rpc_subject(node: &str) -> String {
    format!("agentdb.rpc.{node}")
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// A node as this one last saw it.
#[derive(Debug, Clone)]
struct Seen {
    info: NodeInfo,
    revision: u64,
    /// When its heartbeat revision last moved (this node's clock).
    moved: Instant,
}

#[derive(Default)]
struct State {
    collections: BTreeMap<String, CollectionMeta>,
    assign: BTreeMap<(String, u32), Assignment>,
    nodes: BTreeMap<String, Seen>,
    leader: Option<(String, u64, Instant)>,
    draining: std::collections::BTreeSet<String>,
}

/// A replica this node applies.
struct Replica {
    applied: Arc<AtomicU64>,
    task: tokio::task::AbortHandle,
}

/// What `cluster status` shows.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Status {
    pub node_id: String,
    pub leader: Option<String>,
    pub connected: bool,
    pub nodes: Vec<NodeStatus>,
    pub collections: Vec<CollectionStatus>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NodeStatus {
    pub id: String,
    pub addr: String,
    pub alive: bool,
    pub replicas: u32,
    pub draining: bool,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CollectionStatus {
    pub name: String,
    pub shards: u32,
    pub replicas: u32,
    pub stream_replicas: u32,
    pub shard_status: Vec<ShardStatus>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ShardStatus {
    pub shard: u32,
    /// Last sequence JetStream stored for the shard.
    pub last_seq: u64,
    /// (node, applied sequence, alive) per assigned replica.
    pub replicas: Vec<(String, u64, bool)>,
}

/// A node's membership of the cluster.
pub struct Cluster {
    cfg: ClusterConfig,
    client: async_nats::Client,
    js: jetstream::Context,
    nodes_kv: kv::Store,
    meta_kv: kv::Store,
    leader_kv: kv::Store,
    db: Arc<Database>,
    state: RwLock<State>,
    replicas: Mutex<HashMap<(String, u32), Replica>>,
    connected: Arc<AtomicBool>,
    started: u64,
    /// Spreads reads over replicas.
    turn: AtomicUsize,
}

impl Cluster {
    /// Connect to NATS, create the buckets if needed, and start this node's heartbeat,
    /// metadata watchers, leadership loop, replica manager and read server.
    pub async fn join(cfg: ClusterConfig, db: Arc<Database>) -> Result<Arc<Cluster>> {
        agentdb_engine::validate_name("node id", &cfg.node_id).map_err(|e| Error::Invalid(e.to_string()))?;
        if cfg.urls.is_empty() {
            return Err(Error::Invalid("no NATS server URL given (--cluster nats://HOST:PORT)".into()));
        }
        let connected = Arc::new(AtomicBool::new(false));
        let flag = connected.clone();
        let mut opts = async_nats::ConnectOptions::new()
            .name(format!("agentdb-{}", cfg.node_id))
            .retry_on_initial_connect()
            // Another server of the cluster is usually up: try again soon, not with the
            // client's default exponential backoff.
            .reconnect_delay_callback(|attempts| Duration::from_millis((attempts as u64 * 100).min(1000)))
            .event_callback(move |ev| {
                let flag = flag.clone();
                async move {
                    match ev {
                        async_nats::Event::Connected => flag.store(true, Ordering::SeqCst),
                        async_nats::Event::Disconnected => {
                            flag.store(false, Ordering::SeqCst);
                            tracing::warn!("cluster: disconnected from NATS; writes are refused until it is back");
                        }
                        other => tracing::debug!(event = %other, "cluster: NATS event"),
                    }
                }
            });
        if let Some(c) = &cfg.credentials {
            opts = opts.credentials_file(c).await.map_err(|e| Error::Invalid(format!("NATS credentials: {e}")))?;
        }
        if let Some(ca) = &cfg.tls_ca {
            opts = opts.add_root_certificates(ca.clone()).require_tls(true);
        }
        let urls: Vec<async_nats::ServerAddr> = cfg
            .urls
            .iter()
            .map(|u| u.parse().map_err(|e| Error::Invalid(format!("NATS URL '{u}': {e}"))))
            .collect::<Result<_>>()?;
        let client = tokio::time::timeout(Duration::from_secs(30), opts.connect(urls))
            .await
            .map_err(|_| Error::Unavailable(format!("cannot reach NATS at {} within 30 s", cfg.urls.join(","))))?
            .map_err(nats)?;
        let js = jetstream::new(client.clone());
        // A JetStream cluster that has just started elects its meta leader first: wait for
        // it (up to 30 s) before probing how many replicas streams can have.
        let deadline = Instant::now() + Duration::from_secs(30);
        let (replicas, nodes_kv, meta_kv, leader_kv) = loop {
            let attempt = async {
                js.query_account().await.map_err(nats)?;
                let replicas = stream_replicas(&js).await;
                let bucket = |name: &str, max_age: Duration| kv::Config {
                    bucket: name.to_string(),
                    history: 1,
                    max_age,
                    num_replicas: replicas as usize,
                    ..Default::default()
                };
                let nodes_kv = create_bucket(&js, bucket(NODES_BUCKET, Duration::from_secs(300))).await?;
                let meta_kv = create_bucket(&js, bucket(META_BUCKET, Duration::ZERO)).await?;
                let leader_kv = create_bucket(&js, bucket(LEADER_BUCKET, Duration::ZERO)).await?;
                Ok::<_, Error>((replicas, nodes_kv, meta_kv, leader_kv))
            };
            match attempt.await {
                Ok(x) => break x,
                Err(e) if Instant::now() < deadline => {
                    tracing::info!(error = %e, "cluster: JetStream not ready yet; retrying");
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                Err(e) => return Err(Error::Unavailable(format!("JetStream is not available: {e}"))),
            }
        };
        // JetStream answered: connected (the client's events keep the flag from now on).
        connected.store(true, Ordering::SeqCst);
        let c = Arc::new(Cluster {
            cfg,
            client,
            js,
            nodes_kv,
            meta_kv,
            leader_kv,
            db,
            state: RwLock::new(State::default()),
            replicas: Mutex::new(HashMap::new()),
            connected,
            started: now_ms(),
            turn: AtomicUsize::new(0),
        });
        c.heartbeat().await?;
        tokio::spawn(c.clone().watch_bucket(true));
        tokio::spawn(c.clone().watch_bucket(false));
        tokio::spawn(c.clone().heartbeat_loop());
        tokio::spawn(c.clone().leader_loop());
        tokio::spawn(c.clone().replica_loop());
        tokio::spawn(c.clone().serve_reads().await?);
        tracing::info!(node = %c.cfg.node_id, nats = %c.cfg.urls.join(","), stream_replicas = replicas, "cluster: joined");
        Ok(c)
    }

    pub fn node_id(&self) -> &str {
        &self.cfg.node_id
    }

    /// The sharded collection `name`, if there is one.
    pub fn collection(&self, name: &str) -> Option<CollectionMeta> {
        self.state.read().collections.get(name).cloned()
    }

    pub fn collections(&self) -> Vec<CollectionMeta> {
        self.state.read().collections.values().cloned().collect()
    }

    /// Whether `node` is up as far as this node can tell: its heartbeat moved within
    /// `node_ttl` (this node is always up to itself).
    fn alive(&self, st: &State, node: &str) -> bool {
        node == self.cfg.node_id || st.nodes.get(node).is_some_and(|n| n.moved.elapsed() < self.cfg.node_ttl)
    }

    /// Whether this node sees the heartbeats at all: its own entry moved within `node_ttl`.
    /// When it does not (NATS electing a stream leader, a lost connection), silence from
    /// the others says nothing about them.
    fn sees_heartbeats(&self, st: &State) -> bool {
        st.nodes.get(&self.cfg.node_id).is_some_and(|n| n.moved.elapsed() < self.cfg.node_ttl)
    }

    // ---- membership and metadata ------------------------------------------------------

    async fn heartbeat(&self) -> Result<()> {
        let applied: BTreeMap<String, u64> = self
            .replicas
            .lock()
            .iter()
            .map(|((c, s), r)| (format!("{c}/{s}"), r.applied.load(Ordering::SeqCst)))
            .collect();
        let info = NodeInfo {
            id: self.cfg.node_id.clone(),
            addr: self.cfg.addr.clone(),
            started_unix_ms: self.started,
            applied,
        };
        let body = serde_json::to_vec(&info).map_err(nats)?;
        self.nodes_kv.put(&self.cfg.node_id, body.into()).await.map_err(nats)?;
        Ok(())
    }

    async fn heartbeat_loop(self: Arc<Self>) {
        loop {
            tokio::time::sleep(self.cfg.heartbeat).await;
            if let Err(e) = self.heartbeat().await {
                tracing::warn!(error = %e, "cluster: heartbeat failed");
            }
        }
    }

    /// Follow a bucket (nodes or meta) into the state, from its current contents on.
    async fn watch_bucket(self: Arc<Self>, nodes: bool) {
        let kv = if nodes { &self.nodes_kv } else { &self.meta_kv };
        loop {
            let mut w = match kv.watch_with_history(">").await {
                Ok(w) => w,
                Err(e) => {
                    tracing::warn!(error = %e, "cluster: cannot watch {}; retrying", if nodes { NODES_BUCKET } else { META_BUCKET });
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            while let Some(e) = w.next().await {
                let Ok(e) = e else { break };
                let gone = !matches!(e.operation, kv::Operation::Put);
                let mut st = self.state.write();
                if nodes {
                    if gone {
                        st.nodes.remove(&e.key);
                    } else if let Ok(info) = serde_json::from_slice::<NodeInfo>(&e.value) {
                        let moved = st.nodes.get(&e.key).is_none_or(|s| s.revision != e.revision);
                        let at = if moved { Instant::now() } else { st.nodes[&e.key].moved };
                        st.nodes.insert(e.key.clone(), Seen { info, revision: e.revision, moved: at });
                    }
                } else if let Some(name) = e.key.strip_prefix("coll.") {
                    if gone {
                        st.collections.remove(name);
                    } else if let Ok(m) = serde_json::from_slice::<CollectionMeta>(&e.value) {
                        st.collections.insert(name.to_string(), m);
                    }
                } else if let Some(node) = e.key.strip_prefix("drain.") {
                    if gone {
                        st.draining.remove(node);
                    } else {
                        st.draining.insert(node.to_string());
                    }
                } else if let Some(rest) = e.key.strip_prefix("assign.") {
                    let Some((c, s)) = rest.rsplit_once('.') else { continue };
                    let Ok(s) = s.parse::<u32>() else { continue };
                    if gone {
                        st.assign.remove(&(c.to_string(), s));
                    } else if let Ok(a) = serde_json::from_slice::<Assignment>(&e.value) {
                        st.assign.insert((c.to_string(), s), a);
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Take, renew or take over the leader's lease; as leader, place replicas.
    async fn leader_loop(self: Arc<Self>) {
        let me = self.cfg.node_id.clone();
        loop {
            tokio::time::sleep(self.cfg.heartbeat).await;
            let entry = match self.leader_kv.entry(LEADER_KEY).await {
                Ok(e) => e,
                Err(e) => {
                    tracing::debug!(error = %e, "cluster: cannot read the leader lease");
                    continue;
                }
            };
            let holder = entry
                .as_ref()
                .filter(|e| e.operation == kv::Operation::Put)
                .map(|e| (String::from_utf8_lossy(&e.value).to_string(), e.revision));
            let won = match &holder {
                None => self.leader_kv.create(LEADER_KEY, Bytes::from(me.clone())).await.is_ok(),
                Some((who, rev)) if *who == me => {
                    self.leader_kv.update(LEADER_KEY, Bytes::from(me.clone()), *rev).await.is_ok()
                }
                Some((who, rev)) => {
                    // Another's lease: take it over only when it has not moved for node_ttl.
                    let stale = {
                        let mut st = self.state.write();
                        match &st.leader {
                            Some((w, r, at)) if w == who && r == rev => at.elapsed() >= self.cfg.node_ttl,
                            _ => {
                                st.leader = Some((who.clone(), *rev, Instant::now()));
                                false
                            }
                        }
                    };
                    if stale {
                        let ok = self.leader_kv.update(LEADER_KEY, Bytes::from(me.clone()), *rev).await.is_ok();
                        if ok {
                            tracing::warn!(previous = %who, "cluster: the leader's lease expired; this node took it over");
                        }
                        ok
                    } else {
                        false
                    }
                }
            };
            if won {
                let newly = !matches!(&holder, Some((w, _)) if *w == me);
                if newly {
                    tracing::info!(node = %me, "cluster: this node is the leader");
                }
                self.state.write().leader = Some((me.clone(), 0, Instant::now()));
                if let Err(e) = self.place().await {
                    tracing::warn!(error = %e, "cluster: placement failed");
                }
            }
        }
    }

    /// The leader's placement: every shard gets `replicas` live nodes, keeping the ones it
    /// has, adding the least loaded live nodes, and dropping dead ones it can replace.
    async fn place(&self) -> Result<()> {
        // The streams' ends for the shards with a replica catching up.
        let catching: Vec<(String, u32)> = {
            let st = self.state.read();
            st.assign.iter().filter(|(_, a)| !a.catching_up.is_empty()).map(|(k, _)| k.clone()).collect()
        };
        let mut last: HashMap<(String, u32), u64> = HashMap::new();
        for (c, sh) in catching {
            if let Ok(mut stream) = self.js.get_stream(stream_name(&c, sh)).await {
                if let Ok(info) = stream.info().await {
                    last.insert((c, sh), info.state.last_sequence);
                }
            }
        }
        let plans = {
            let st = self.state.read();
            if !self.sees_heartbeats(&st) {
                return Ok(()); // judging others dead now could be wrong: wait
            }
            let live: Vec<String> = st.nodes.keys().filter(|n| self.alive(&st, n)).cloned().collect();
            let draining: Vec<String> = st.draining.iter().cloned().collect();
            let caught_up = |c: &str, sh: u32, n: &str| {
                let Some(end) = last.get(&(c.to_string(), sh)) else { return false };
                st.nodes.get(n).and_then(|s| s.info.applied.get(&format!("{c}/{sh}"))).is_some_and(|a| a >= end)
            };
            placement(&PlaceInput {
                collections: &st.collections,
                assign: &st.assign,
                live: &live,
                draining: &draining,
                caught_up: &caught_up,
            })
        };
        for (key, a) in plans {
            tracing::info!(key = %key, nodes = ?a.nodes, catching_up = ?a.catching_up, "cluster: shard replicas placed");
            let body = serde_json::to_vec(&a).map_err(nats)?;
            self.meta_kv.put(&key, body.into()).await.map_err(nats)?;
        }
        Ok(())
    }

    /// Drain `node` (or stop draining it): it takes no new replica and the leader moves
    /// its replicas to other nodes, each once its successor has caught up.
    pub async fn drain(&self, node: &str, on: bool) -> Result<()> {
        agentdb_engine::validate_name("node id", node).map_err(|e| Error::Invalid(e.to_string()))?;
        let key = format!("drain.{node}");
        if on {
            self.meta_kv.put(&key, Bytes::from_static(b"1")).await.map_err(nats)?;
        } else {
            self.meta_kv.delete(&key).await.map_err(nats)?;
        }
        tracing::info!(node = %node, draining = on, "cluster: drain set");
        Ok(())
    }

    // ---- replicas ---------------------------------------------------------------------

    /// Start applying the shards assigned to this node, stop the others.
    async fn replica_loop(self: Arc<Self>) {
        loop {
            let mine: Vec<(String, u32, CollectionMeta)> = {
                let st = self.state.read();
                st.assign
                    .iter()
                    .filter(|(_, a)| a.nodes.contains(&self.cfg.node_id))
                    .filter_map(|((c, s), _)| st.collections.get(c).map(|m| (c.clone(), *s, m.clone())))
                    .collect()
            };
            {
                let mut reps = self.replicas.lock();
                let keep: std::collections::HashSet<(String, u32)> =
                    mine.iter().map(|(c, s, _)| (c.clone(), *s)).collect();
                let mut dropped = Vec::new();
                reps.retain(|k, r| {
                    let stay = keep.contains(k);
                    if !stay {
                        r.task.abort();
                        if self.state.read().collections.contains_key(&k.0) {
                            tracing::info!(collection = %k.0, shard = k.1, "cluster: replica handed off");
                        } else {
                            dropped.push(shard_collection(&k.0, k.1));
                        }
                    }
                    stay
                });
                // The collection was dropped: its local replicas go too.
                for local in dropped {
                    let db = self.db.clone();
                    tokio::task::spawn_blocking(move || match db.drop_collection(&local) {
                        Ok(()) => {
                            tracing::info!(collection = %local, "cluster: replica of a dropped collection removed")
                        }
                        Err(e) => {
                            tracing::warn!(collection = %local, error = %e, "cluster: cannot remove a dropped collection's replica")
                        }
                    });
                }
                for (c, s, m) in mine {
                    if reps.contains_key(&(c.clone(), s)) {
                        continue;
                    }
                    let applied = Arc::new(AtomicU64::new(0));
                    let me = self.clone();
                    let (c2, a2) = (c.clone(), applied.clone());
                    let task = tokio::spawn(async move { me.apply(c2, s, m, a2).await }).abort_handle();
                    tracing::info!(collection = %c, shard = s, "cluster: replica assigned to this node");
                    reps.insert((c, s), Replica { applied, task });
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Apply shard `shard` of `name` from its stream to the local replica, forever.
    async fn apply(self: Arc<Self>, name: String, shard: u32, meta: CollectionMeta, applied: Arc<AtomicU64>) {
        loop {
            match self.apply_once(&name, shard, &meta, &applied).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(collection = %name, shard, error = %e, "cluster: replica apply stopped; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    async fn apply_once(&self, name: &str, shard: u32, meta: &CollectionMeta, applied: &AtomicU64) -> Result<()> {
        let local = shard_collection(name, shard);
        // Every NATS round trip is bounded: a request lost with a server that died (the
        // client reconnects elsewhere) must not stall the replica; the loop starts over.
        let bound = Duration::from_secs(10);
        let timed_out = |what: &str| Error::Unavailable(format!("{what}: no answer from NATS within {bound:?}"));
        let stream = tokio::time::timeout(bound, self.js.get_stream(stream_name(name, shard)))
            .await
            .map_err(|_| timed_out("stream"))?
            .map_err(nats)?;
        let durable = format!("apply-{}", self.cfg.node_id);
        // No durable consumer of this node on the stream: whatever local replica exists
        // belongs to an earlier collection of the same name (dropped while this node was
        // away) and is removed before applying from the stream's start.
        let fresh = tokio::time::timeout(bound, stream.get_consumer::<pull::Config>(&durable))
            .await
            .map_err(|_| timed_out("consumer"))?
            .is_err();
        let (db, spec) = (self.db.clone(), CollectionSpec { name: local.clone(), ..meta.spec.clone() });
        let col = tokio::task::spawn_blocking(move || {
            if fresh && db.collection(&spec.name).is_ok() {
                tracing::info!(collection = %spec.name, "cluster: removing a stale local replica of an earlier collection");
                db.drop_collection(&spec.name)?;
            }
            match db.collection(&spec.name) {
                Ok(c) => Ok(c),
                Err(_) => db.create_collection(spec),
            }
        })
        .await
        .map_err(nats)??;
        let consumer: jetstream::consumer::Consumer<pull::Config> = tokio::time::timeout(
            bound,
            stream.get_or_create_consumer(
                &durable,
                pull::Config {
                    durable_name: Some(durable.clone()),
                    ack_policy: jetstream::consumer::AckPolicy::All,
                    deliver_policy: jetstream::consumer::DeliverPolicy::All,
                    max_ack_pending: 100_000,
                    ..Default::default()
                },
            ),
        )
        .await
        .map_err(|_| timed_out("consumer"))?
        .map_err(nats)?;
        let mut consumer = consumer;
        let floor = tokio::time::timeout(bound, consumer.info())
            .await
            .map_err(|_| timed_out("consumer info"))?
            .map_err(nats)?
            .ack_floor
            .stream_sequence;
        applied.fetch_max(floor, Ordering::SeqCst);
        tracing::info!(collection = %name, shard, from_seq = floor, "cluster: replica applying its stream");
        loop {
            let fetch = async {
                let mut batch = consumer
                    .fetch()
                    .max_messages(APPLY_BATCH)
                    .expires(Duration::from_millis(500))
                    .messages()
                    .await
                    .map_err(nats)?;
                let mut msgs = Vec::new();
                while let Some(m) = batch.next().await {
                    msgs.push(m.map_err(nats)?);
                }
                Ok::<_, Error>(msgs)
            };
            let msgs = tokio::time::timeout(Duration::from_secs(3), fetch).await.map_err(|_| timed_out("fetch"))??;
            let Some(last) = msgs.last() else { continue };
            let last_seq = last.info().map_err(nats)?.stream_sequence;
            tracing::debug!(collection = %name, shard, records = msgs.len(), last_seq, "cluster: applying");
            let mut writes = Vec::with_capacity(msgs.len());
            for m in &msgs {
                let seq = m.info().map_err(nats)?.stream_sequence;
                match serde_json::from_slice::<Write>(&m.payload) {
                    Ok(w) => writes.push((seq, w)),
                    Err(e) => {
                        tracing::error!(collection = %name, shard, seq, error = %e, "cluster: unreadable write record skipped")
                    }
                }
            }
            let c = col.clone();
            let (n, s) = (name.to_string(), shard);
            tokio::task::spawn_blocking(move || {
                for (seq, w) in writes {
                    let r = match w {
                        Write::Upsert { items, .. } => c.upsert(items.into_iter().map(Item::from).collect()).map(|_| ()),
                        Write::Delete { ids, .. } => c.delete(&ids).map(|_| ()),
                        Write::DeleteFilter { filter, .. } => c.delete_by_filter(&filter).map(|_| ()),
                    };
                    // The router validated the record, so every replica fails it alike.
                    if let Err(e) = r {
                        tracing::error!(collection = %n, shard = s, seq, error = %e, "cluster: write record refused by the engine");
                    }
                }
            })
            .await
            .map_err(nats)?;
            tokio::time::timeout(bound, msgs.last().expect("non-empty").ack())
                .await
                .map_err(|_| timed_out("ack"))?
                .map_err(nats)?;
            applied.fetch_max(last_seq, Ordering::SeqCst);
        }
    }

    // ---- collections ------------------------------------------------------------------

    /// Create a sharded collection: its streams, then its metadata (the leader places its
    /// replicas). Waits (up to 10 s) until every shard has a replica.
    pub async fn create_collection(&self, spec: CollectionSpec, shards: u32, replicas: u32) -> Result<CollectionMeta> {
        agentdb_engine::validate_name("collection", &spec.name).map_err(|e| Error::Invalid(e.to_string()))?;
        if !(1..=MAX_SHARDS).contains(&shards) {
            return Err(Error::Invalid(format!("shards must be 1 to {MAX_SHARDS}, got {shards}")));
        }
        if !(1..=MAX_REPLICAS).contains(&replicas) {
            return Err(Error::Invalid(format!("replicas must be 1 to {MAX_REPLICAS}, got {replicas}")));
        }
        if spec.spaces.is_empty() {
            return Err(Error::Invalid("a collection needs at least one vector space".into()));
        }
        if self.collection(&spec.name).is_some()
            || self.meta_kv.get(format!("coll.{}", spec.name)).await.map_err(nats)?.is_some()
        {
            return Err(Error::AlreadyExists(format!("collection '{}' already exists in the cluster", spec.name)));
        }
        let stream_replicas = stream_replicas(&self.js).await;
        for s in 0..shards {
            let cfg = stream::Config {
                name: stream_name(&spec.name, s),
                subjects: vec![write_subject(&spec.name, s)],
                num_replicas: stream_replicas as usize,
                storage: stream::StorageType::File,
                duplicate_window: Duration::from_secs(120),
                ..Default::default()
            };
            self.js.get_or_create_stream(cfg).await.map_err(nats)?;
        }
        let meta = CollectionMeta { format: FORMAT, spec: spec.clone(), shards, replicas, stream_replicas };
        let body = serde_json::to_vec(&meta).map_err(nats)?;
        self.meta_kv
            .create(format!("coll.{}", spec.name), body.into())
            .await
            .map_err(|e| Error::AlreadyExists(format!("collection '{}': {e}", spec.name)))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let placed = {
                let st = self.state.read();
                st.collections.contains_key(&spec.name)
                    && (0..shards).all(|s| st.assign.get(&(spec.name.clone(), s)).is_some_and(|a| !a.nodes.is_empty()))
            };
            if placed {
                break;
            }
            if Instant::now() >= deadline {
                return Err(Error::Unavailable(format!(
                    "collection '{}' was created but its shards have no replica yet (is a leader up?)",
                    spec.name
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tracing::info!(collection = %spec.name, shards, replicas, stream_replicas, "cluster: collection created");
        Ok(meta)
    }

    // ---- writes -----------------------------------------------------------------------

    fn meta(&self, name: &str) -> Result<CollectionMeta> {
        self.collection(name).ok_or_else(|| Error::NotFound(format!("collection '{name}' not found in the cluster")))
    }

    /// Upsert items (ids given or generated): acknowledged once JetStream stored every
    /// shard's record. Returns the ids (request order) and the consistency token.
    pub async fn upsert(&self, name: &str, items: Vec<Item>) -> Result<(Vec<String>, Token)> {
        let meta = self.meta(name)?;
        let mut by_shard: BTreeMap<u32, Vec<WireItem>> = BTreeMap::new();
        let mut ids = Vec::with_capacity(items.len());
        for (i, mut it) in items.into_iter().enumerate() {
            if it.id.is_empty() {
                it.id = uuid::Uuid::new_v4().to_string();
            }
            check_item(&meta.spec, &it).map_err(|e| Error::Invalid(format!("item {i} ('{}'): {e}", it.id)))?;
            ids.push(it.id.clone());
            by_shard.entry(shard_of(&it.id, meta.shards)).or_default().push(it.into());
        }
        let mut records = Vec::new();
        for (shard, items) in by_shard {
            for chunk in chunk_by_size(items) {
                records.push((shard, Write::Upsert { format: FORMAT, items: chunk }));
            }
        }
        let token = self.publish(name, records).await?;
        Ok((ids, token))
    }

    /// Delete by id (an id that does not exist is no error). Returns how many ids were
    /// sent and the token.
    pub async fn delete(&self, name: &str, ids: Vec<String>) -> Result<(usize, Token)> {
        let meta = self.meta(name)?;
        let n = ids.len();
        let mut by_shard: BTreeMap<u32, Vec<String>> = BTreeMap::new();
        for id in ids {
            by_shard.entry(shard_of(&id, meta.shards)).or_default().push(id);
        }
        let records = by_shard.into_iter().map(|(s, ids)| (s, Write::Delete { format: FORMAT, ids })).collect();
        Ok((n, self.publish(name, records).await?))
    }

    /// Delete the items matching `filter` on every shard. Returns how many matched when
    /// the request was served (counted through one replica per shard just before; a
    /// concurrent write can make the number deleted differ) and the token.
    pub async fn delete_by_filter(&self, name: &str, filter: Filter) -> Result<(u64, Token)> {
        let meta = self.meta(name)?;
        let n = self.count(name, Some(filter.clone()), &Token::default()).await?;
        let records =
            (0..meta.shards).map(|s| (s, Write::DeleteFilter { format: FORMAT, filter: filter.clone() })).collect();
        Ok((n, self.publish(name, records).await?))
    }

    /// Drop a sharded collection: its metadata first (no node routes to it any more;
    /// every node removes its replicas when it sees that), then its streams and its
    /// replica assignments.
    pub async fn drop_collection(&self, name: &str) -> Result<()> {
        let meta = self.meta(name)?;
        if !self.connected.load(Ordering::SeqCst) {
            return Err(Error::Unavailable(
                "this node is cut off from NATS: the drop is refused until it reconnects".into(),
            ));
        }
        self.meta_kv.delete(format!("coll.{name}")).await.map_err(nats)?;
        self.state.write().collections.remove(name);
        for s in 0..meta.shards {
            if let Err(e) = self.js.delete_stream(stream_name(name, s)).await {
                tracing::warn!(collection = %name, shard = s, error = %e, "cluster: cannot delete a dropped collection's stream");
            }
            let _ = self.meta_kv.delete(format!("assign.{name}.{s}")).await;
        }
        tracing::info!(collection = %name, shards = meta.shards, "cluster: collection dropped");
        Ok(())
    }

    async fn publish(&self, name: &str, records: Vec<(u32, Write)>) -> Result<Token> {
        if !self.connected.load(Ordering::SeqCst) {
            return Err(Error::Unavailable(
                "this node is cut off from NATS: writes are refused until it reconnects".into(),
            ));
        }
        let mut acks = Vec::with_capacity(records.len());
        for (shard, w) in records {
            let body = serde_json::to_vec(&w).map_err(nats)?;
            let mut h = async_nats::HeaderMap::new();
            h.insert("Nats-Msg-Id", uuid::Uuid::new_v4().to_string().as_str());
            let ack = self
                .js
                .publish_with_headers(write_subject(name, shard), h, body.into())
                .await
                .map_err(|e| Error::Unavailable(format!("write to shard {shard} of '{name}' not stored: {e}")))?;
            acks.push((shard, ack));
        }
        let mut token = Token::default();
        for (shard, ack) in acks {
            let a = tokio::time::timeout(Duration::from_secs(10), ack)
                .await
                .map_err(|_| {
                    Error::Unavailable(format!("write to shard {shard} of '{name}': JetStream did not acknowledge"))
                })?
                .map_err(|e| Error::Unavailable(format!("write to shard {shard} of '{name}' not stored: {e}")))?;
            let e = token.seqs.entry(shard).or_insert(0);
            *e = (*e).max(a.sequence);
        }
        Ok(token)
    }

    // ---- reads ------------------------------------------------------------------------

    /// The replicas to ask for `shard`, in order: this node first when it holds one, then
    /// the live others (rotating, to spread the load).
    fn read_order(&self, name: &str, shard: u32) -> Vec<String> {
        let st = self.state.read();
        let Some(a) = st.assign.get(&(name.to_string(), shard)) else { return Vec::new() };
        let mut live: Vec<String> =
            a.nodes.iter().filter(|n| self.alive(&st, n) && !a.catching_up.contains(n)).cloned().collect();
        if !live.is_empty() {
            let r = self.turn.fetch_add(1, Ordering::Relaxed) % live.len();
            live.rotate_left(r);
        }
        if let Some(i) = live.iter().position(|n| *n == self.cfg.node_id) {
            let me = live.remove(i);
            if self.replicas.lock().contains_key(&(name.to_string(), shard)) {
                live.insert(0, me);
            } else {
                live.push(me);
            }
        }
        // Replicas whose heartbeats are late come last, not never: a dead one fails fast
        // (no responders), a slow heartbeat must not fail a read.
        // Replicas still catching up come after those, as a last resort.
        live.extend(a.nodes.iter().filter(|n| !self.alive(&st, n) && !a.catching_up.contains(n)).cloned());
        live.extend(a.catching_up.iter().cloned());
        live
    }

    /// Run `read` (for `shard`) on a replica: locally or on the next node that answers.
    async fn read(&self, name: &str, shard: u32, read: Read, token: &Token) -> Result<ReadReply> {
        // Cut off from NATS, this node cannot know what it missed: it answers only when
        // the request accepts stale results, and only from its own replicas.
        if !self.connected.load(Ordering::SeqCst) {
            if !token.allow_stale {
                return Err(Error::Unavailable(format!(
                    "node {} is cut off from NATS; its replicas may be stale (allow stale reads to read them anyway)",
                    self.cfg.node_id
                )));
            }
            return match self.serve_read(read).await {
                ReadReply::Error { message, .. } => Err(Error::Unavailable(message)),
                ok => Ok(ok),
            };
        }
        let order = self.read_order(name, shard);
        let mut last = format!("shard {shard} of '{name}' has no live replica");
        for node in order {
            let r = self.ask(&node, read.clone(), self.cfg.rpc_timeout).await;
            match r {
                ReadReply::Error { unavailable: true, message } => {
                    tracing::debug!(collection = %name, shard, node = %node, error = %message, "cluster: replica read failed; next");
                    last = message;
                }
                ReadReply::Error { unavailable: false, message } => return Err(Error::Invalid(message)),
                ok => return Ok(ok),
            }
        }
        Err(Error::Unavailable(last))
    }

    /// Nearest neighbours of `vector` in space `space` across every shard, merged
    /// exactly (each shard's own top `k`, then the best `k` of those).
    #[allow(clippy::too_many_arguments)]
    pub async fn search(
        &self,
        name: &str,
        space: &str,
        vector: Vec<f32>,
        k: usize,
        filter: Option<Filter>,
        with_payload: bool,
        token: &Token,
    ) -> Result<Vec<WireHit>> {
        let meta = self.meta(name)?;
        let (_, sp) = meta.spec.resolve_space(space).map_err(|e| Error::Invalid(e.to_string()))?;
        let lower_is_better = sp.metric == Metric::L2;
        let reads = (0..meta.shards).map(|shard| {
            let read = Read::Search {
                collection: name.to_string(),
                shard,
                space: space.to_string(),
                vector: vector.clone(),
                k,
                filter: filter.clone(),
                with_payload,
                min_seq: token.min_seq(shard),
            };
            self.read(name, shard, read, token)
        });
        let mut hits = Vec::new();
        for r in futures_util::future::join_all(reads).await {
            match r? {
                ReadReply::Hits(h) => hits.extend(h),
                other => return Err(Error::Nats(format!("unexpected answer to a search: {other:?}"))),
            }
        }
        hits.sort_by(|a, b| {
            let o = a.score.partial_cmp(&b.score).unwrap_or(std::cmp::Ordering::Equal);
            let o = if lower_is_better { o } else { o.reverse() };
            o.then_with(|| a.id.cmp(&b.id))
        });
        hits.truncate(k);
        Ok(hits)
    }

    /// Items by id (found ones, in request order).
    pub async fn get(&self, name: &str, ids: Vec<String>, with_vectors: bool, token: &Token) -> Result<Vec<WireItem>> {
        let meta = self.meta(name)?;
        let mut by_shard: BTreeMap<u32, Vec<String>> = BTreeMap::new();
        for id in &ids {
            by_shard.entry(shard_of(id, meta.shards)).or_default().push(id.clone());
        }
        let reads = by_shard.into_iter().map(|(shard, ids)| {
            let read =
                Read::Get { collection: name.to_string(), shard, ids, with_vectors, min_seq: token.min_seq(shard) };
            self.read(name, shard, read, token)
        });
        let mut found: HashMap<String, WireItem> = HashMap::new();
        for r in futures_util::future::join_all(reads).await {
            if let ReadReply::Items(items) = r? {
                found.extend(items.into_iter().map(|it| (it.id.clone(), it)));
            }
        }
        Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
    }

    /// Live items (matching `filter`) across every shard.
    pub async fn count(&self, name: &str, filter: Option<Filter>, token: &Token) -> Result<u64> {
        let meta = self.meta(name)?;
        let reads = (0..meta.shards).map(|shard| {
            let read = Read::Count {
                collection: name.to_string(),
                shard,
                filter: filter.clone(),
                min_seq: token.min_seq(shard),
            };
            self.read(name, shard, read, token)
        });
        let mut n = 0;
        for r in futures_util::future::join_all(reads).await {
            if let ReadReply::Count(c) = r? {
                n += c;
            }
        }
        Ok(n)
    }

    /// Run `read` on `node`'s replica: locally when it is this node, else over NATS
    /// request-reply within `timeout` (no answer, or none in time, is an UNAVAILABLE reply).
    async fn ask(&self, node: &str, read: Read, timeout: Duration) -> ReadReply {
        if node == self.cfg.node_id {
            return self.serve_read(read).await;
        }
        let body = match serde_json::to_vec(&read) {
            Ok(b) => b,
            Err(e) => return ReadReply::Error { unavailable: false, message: e.to_string() },
        };
        match tokio::time::timeout(timeout, self.client.request(rpc_subject(node), body.into())).await {
            Ok(Ok(m)) => serde_json::from_slice(&m.payload)
                .unwrap_or(ReadReply::Error { unavailable: true, message: "unreadable answer".into() }),
            Ok(Err(e)) => ReadReply::Error { unavailable: true, message: format!("node {node}: {e}") },
            Err(_) => ReadReply::Error { unavailable: true, message: format!("node {node} did not answer") },
        }
    }

    /// Flush (or optimize) every replica of every shard, once each has applied what was
    /// written so far; returns the live items.
    pub async fn flush(&self, name: &str, optimize: bool) -> Result<u64> {
        let meta = self.meta(name)?;
        let mut calls = Vec::new();
        for shard in 0..meta.shards {
            let last = match self.js.get_stream(stream_name(name, shard)).await {
                Ok(mut s) => s.info().await.map_or(0, |i| i.state.last_sequence),
                Err(_) => 0,
            };
            let nodes =
                self.state.read().assign.get(&(name.to_string(), shard)).map(|a| a.nodes.clone()).unwrap_or_default();
            for node in nodes {
                let read = Read::Flush { collection: name.to_string(), shard, optimize, min_seq: last };
                // An index build can take a while: a generous bound.
                calls.push(async move { self.ask(&node, read, Duration::from_secs(600)).await });
            }
        }
        for r in futures_util::future::join_all(calls).await {
            if let ReadReply::Error { message, .. } = r {
                return Err(Error::Unavailable(format!("flush of '{name}': {message}")));
            }
        }
        self.count(name, None, &Token::default()).await
    }

    /// Answer other nodes' reads of this node's replicas.
    async fn serve_reads(self: &Arc<Self>) -> Result<impl std::future::Future<Output = ()> + Send + 'static> {
        let mut sub = self.client.subscribe(rpc_subject(&self.cfg.node_id)).await.map_err(nats)?;
        let me = self.clone();
        Ok(async move {
            while let Some(m) = sub.next().await {
                let Some(reply) = m.reply.clone() else { continue };
                let me = me.clone();
                tokio::spawn(async move {
                    let answer = match serde_json::from_slice::<Read>(&m.payload) {
                        Ok(read) => me.serve_read(read).await,
                        Err(e) => ReadReply::Error { unavailable: false, message: format!("unreadable request: {e}") },
                    };
                    let body = serde_json::to_vec(&answer).unwrap_or_default();
                    if let Err(e) = me.client.publish(reply, body.into()).await {
                        tracing::debug!(error = %e, "cluster: cannot answer a read");
                    }
                });
            }
        })
    }

    /// A read on this node's replica, once it has applied `min_seq`.
    async fn serve_read(&self, read: Read) -> ReadReply {
        let (name, shard, min_seq) = match &read {
            Read::Search { collection, shard, min_seq, .. }
            | Read::Get { collection, shard, min_seq, .. }
            | Read::Count { collection, shard, min_seq, .. }
            | Read::KeywordStats { collection, shard, min_seq, .. }
            | Read::Keyword { collection, shard, min_seq, .. }
            | Read::Scroll { collection, shard, min_seq, .. }
            | Read::Flush { collection, shard, min_seq, .. } => (collection.clone(), *shard, *min_seq),
        };
        let deadline = Instant::now() + self.cfg.read_wait;
        let applied = loop {
            if let Some(a) = self.replicas.lock().get(&(name.clone(), shard)).map(|r| r.applied.clone()) {
                break a;
            }
            // Assigned here but not started yet (a placement just made): wait for it.
            let assigned = self
                .state
                .read()
                .assign
                .get(&(name.clone(), shard))
                .is_some_and(|a| a.nodes.contains(&self.cfg.node_id));
            if !assigned || Instant::now() >= deadline {
                return ReadReply::Error {
                    unavailable: true,
                    message: format!("node {} holds no replica of shard {shard} of '{name}'", self.cfg.node_id),
                };
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        while applied.load(Ordering::SeqCst) < min_seq {
            if Instant::now() >= deadline {
                return ReadReply::Error {
                    unavailable: true,
                    message: format!(
                        "shard {shard} of '{name}' on node {} has applied {} of {min_seq} after {:?}",
                        self.cfg.node_id,
                        applied.load(Ordering::SeqCst),
                        self.cfg.read_wait
                    ),
                };
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let db = self.db.clone();
        let local = shard_collection(&name, shard);
        // A replica just assigned creates its local collection as it starts applying.
        while db.collection(&local).is_err() {
            if Instant::now() >= deadline {
                return ReadReply::Error {
                    unavailable: true,
                    message: format!("shard {shard} of '{name}' on node {} is still starting", self.cfg.node_id),
                };
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let r = tokio::task::spawn_blocking(move || -> agentdb_engine::Result<ReadReply> {
            let c = db.collection(&local)?;
            Ok(match read {
                Read::Search { space, vector, k, filter, with_payload, .. } => {
                    let hits = c.search(SearchRequest {
                        space: &space,
                        queries: vec![vector],
                        k,
                        filter: filter.as_ref(),
                        params: SearchParams::default(),
                        with_payload,
                        with_vectors: false,
                    })?;
                    ReadReply::Hits(
                        hits.into_iter()
                            .next()
                            .unwrap_or_default()
                            .into_iter()
                            .map(|h| WireHit { id: h.id, score: h.score, payload: h.payload })
                            .collect(),
                    )
                }
                Read::Get { ids, with_vectors, .. } => ReadReply::Items(
                    c.get(&ids, with_vectors)?
                        .into_iter()
                        .map(|it| WireItem { id: it.id, vectors: it.vectors, payload: it.payload })
                        .collect(),
                ),
                Read::Count { filter, .. } => ReadReply::Count(c.count(filter.as_ref())?),
                read @ (Read::KeywordStats { .. } | Read::Keyword { .. } | Read::Scroll { .. }) => {
                    queries::serve_local(&c, read)?
                }
                Read::Flush { optimize, .. } => {
                    if optimize {
                        c.optimize()?;
                    } else {
                        c.flush()?;
                    }
                    ReadReply::Count(c.count(None)?)
                }
            })
        })
        .await;
        match r {
            Ok(Ok(reply)) => reply,
            Ok(Err(e)) => ReadReply::Error { unavailable: false, message: e.to_string() },
            Err(e) => ReadReply::Error { unavailable: true, message: e.to_string() },
        }
    }

    // ---- status -----------------------------------------------------------------------

    pub async fn status(&self) -> Result<Status> {
        let (nodes, collections, leader) = {
            let st = self.state.read();
            let mut load: HashMap<&str, u32> = HashMap::new();
            for a in st.assign.values() {
                for n in &a.nodes {
                    *load.entry(n.as_str()).or_default() += 1;
                }
            }
            let nodes: Vec<NodeStatus> = st
                .nodes
                .values()
                .map(|s| NodeStatus {
                    id: s.info.id.clone(),
                    addr: s.info.addr.clone(),
                    alive: self.alive(&st, &s.info.id),
                    replicas: load.get(s.info.id.as_str()).copied().unwrap_or(0),
                    draining: st.draining.contains(&s.info.id),
                })
                .collect();
            let mut cols = Vec::new();
            for (name, m) in &st.collections {
                let mut shards = Vec::new();
                for shard in 0..m.shards {
                    let a = st.assign.get(&(name.clone(), shard)).cloned().unwrap_or_default();
                    let reps = a
                        .nodes
                        .iter()
                        .map(|n| {
                            let applied = st
                                .nodes
                                .get(n)
                                .and_then(|s| s.info.applied.get(&format!("{name}/{shard}")).copied())
                                .unwrap_or(0);
                            (n.clone(), applied, self.alive(&st, n))
                        })
                        .collect();
                    shards.push(ShardStatus { shard, last_seq: 0, replicas: reps });
                }
                cols.push(CollectionStatus {
                    name: name.clone(),
                    shards: m.shards,
                    replicas: m.replicas,
                    stream_replicas: m.stream_replicas,
                    shard_status: shards,
                });
            }
            let leader = st.leader.as_ref().map(|l| l.0.clone());
            (nodes, cols, leader)
        };
        let mut collections = collections;
        for c in &mut collections {
            for s in &mut c.shard_status {
                if let Ok(mut st) = self.js.get_stream(stream_name(&c.name, s.shard)).await {
                    if let Ok(info) = st.info().await {
                        s.last_seq = info.state.last_sequence;
                    }
                }
            }
        }
        // The lease holder as NATS has it (this node's view can lag a heartbeat).
        let leader = match self.leader_kv.get(LEADER_KEY).await {
            Ok(Some(v)) => Some(String::from_utf8_lossy(&v).to_string()),
            _ => leader,
        };
        Ok(Status {
            node_id: self.cfg.node_id.clone(),
            leader,
            connected: self.connected.load(Ordering::SeqCst),
            nodes,
            collections,
        })
    }
}

/// Replicas for streams and buckets: 3 when the NATS cluster has at least three servers
/// (JetStream's Raft groups), else 1.
async fn stream_replicas(js: &jetstream::Context) -> u32 {
    // A probe stream with 3 replicas succeeds only on a JetStream cluster of 3 or more.
    let probe = stream::Config {
        name: "AGENTDB-PROBE".into(),
        subjects: vec!["agentdb.probe".into()],
        num_replicas: 3,
        storage: stream::StorageType::Memory,
        max_messages: 1,
        ..Default::default()
    };
    match js.get_or_create_stream(probe).await {
        Ok(mut s) => match s.info().await {
            Ok(i) if i.config.num_replicas >= 3 => 3,
            _ => 1,
        },
        Err(_) => 1,
    }
}

async fn create_bucket(js: &jetstream::Context, cfg: kv::Config) -> Result<kv::Store> {
    let name = cfg.bucket.clone();
    match js.get_key_value(&name).await {
        Ok(s) => Ok(s),
        Err(_) => match js.create_key_value(cfg).await {
            Ok(s) => Ok(s),
            // Created by another node meanwhile.
            Err(e) => js.get_key_value(&name).await.map_err(|_| nats(format!("bucket {name}: {e}"))),
        },
    }
}

/// The router's check of an item against the collection's spaces and the engine's
/// default limits (so no replica ever refuses a stored record for its shape).
fn check_item(spec: &CollectionSpec, it: &Item) -> std::result::Result<(), String> {
    let lim = agentdb_engine::Limits::default();
    if it.id.len() > lim.max_id_len {
        return Err(format!("id is {} bytes, the limit is {}", it.id.len(), lim.max_id_len));
    }
    if it.id.chars().any(char::is_control) {
        return Err("id contains control characters".into());
    }
    let mut seen = std::collections::HashSet::new();
    for (space, v) in &it.vectors {
        let (_, sp) = spec.resolve_space(space).map_err(|e| e.to_string())?;
        seen.insert(sp.name.clone());
        if v.len() != sp.dim {
            return Err(format!("vector for space '{}' has {} dimensions, the space has {}", sp.name, v.len(), sp.dim));
        }
        if v.iter().any(|x| !x.is_finite()) {
            return Err(format!("vector for space '{}' has a non-finite value", sp.name));
        }
    }
    if let Some(missing) = spec.spaces.iter().find(|s| !seen.contains(&s.name)) {
        return Err(format!("missing vector for space '{}'", missing.name));
    }
    match &it.payload {
        serde_json::Value::Null | serde_json::Value::Object(_) => {}
        _ => return Err("payload must be a JSON object".into()),
    }
    let n = it.payload.to_string().len();
    if n > lim.max_payload_bytes {
        return Err(format!("payload is {n} bytes, the limit is {}", lim.max_payload_bytes));
    }
    Ok(())
}

/// Split a shard's items into records under [`MAX_RECORD_BYTES`].
fn chunk_by_size(items: Vec<WireItem>) -> Vec<Vec<WireItem>> {
    let mut out = Vec::new();
    let (mut cur, mut size) = (Vec::new(), 0usize);
    for it in items {
        let n = serde_json::to_vec(&it).map_or(0, |b| b.len());
        if !cur.is_empty() && size + n > MAX_RECORD_BYTES {
            out.push(std::mem::take(&mut cur));
            size = 0;
        }
        size += n;
        cur.push(it);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_hash_to_stable_shards_and_tokens_round_trip() {
        assert_eq!(shard_of("a", 1), 0);
        let spread: std::collections::BTreeSet<u32> = (0..200).map(|i| shard_of(&format!("id-{i}"), 4)).collect();
        assert_eq!(spread.len(), 4, "ids spread over every shard");
        // FNV-1a of "a" is 0xaf63dc4c8601ec8c: stable, whatever the platform.
        assert_eq!(shard_of("a", 7), (0xaf63dc4c8601ec8c_u64 % 7) as u32);
        let t = Token::parse("0:5, 2:9,0:7").unwrap();
        assert_eq!(t.to_string(), "0:7,2:9");
        assert_eq!(t.min_seq(1), 0);
        assert!(Token::parse("x").is_err());
        assert_eq!(Token::parse("").unwrap(), Token::default());
    }

    #[test]
    fn records_are_chunked_under_the_payload_limit() {
        let big = |i: usize| WireItem {
            id: format!("i{i}"),
            vectors: [(String::new(), vec![0.5; 20_000])].into_iter().collect(),
            payload: serde_json::Value::Null,
        };
        let chunks = chunk_by_size((0..10).map(big).collect());
        assert!(chunks.len() > 1);
        assert_eq!(chunks.iter().map(Vec::len).sum::<usize>(), 10);
        for c in &chunks {
            assert!(serde_json::to_vec(c).unwrap().len() <= MAX_RECORD_BYTES + 200_000);
        }
    }
}
