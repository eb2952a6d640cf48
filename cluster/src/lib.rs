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
mod media;
mod membership;
mod placement;
mod queries;
mod queues;
mod reads;
mod replicas;
mod shared;
mod snapshots;
mod wire;
mod writes;

use placement::{placement, PlaceInput};
pub use queues::{QueueDelivery, QueueFigures, QueueSettings, MAX_QUEUE_BODY};
pub use shared::Owned;
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
/// Records every node keeps a copy of (API keys): `shared.rs`.
pub const SHARED_BUCKET: &str = "agentdb-shared";
/// The latest delivery of each queue message in flight (queues.rs).
pub const DELIVERIES_BUCKET: &str = "agentdb-queue-deliveries";
/// Object store of shard snapshots (snapshots.rs).
pub const SNAPSHOTS_BUCKET: &str = "agentdb-snapshots";
/// Workflow runs in flight, each owned by one node (shared.rs, `Owned`).
pub const RUNS_BUCKET: &str = "agentdb-runs";
/// Kept files of sharded collections (media.rs).
pub const MEDIA_BUCKET: &str = "agentdb-media";
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
    /// The request no longer applies (a stale queue receipt).
    #[error("{0}")]
    Conflict(String),
    /// A limit was reached (a full queue).
    #[error("{0}")]
    Full(String),
    /// Refused before anything was sent (this node is cut off from NATS): the same
    /// request may be sent again, here or to another node.
    #[error("{0}")]
    Refused(String),
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

/// NATS URLs for messages and logs: a user and password in a URL
/// (`tls://user:pass@host:port`) shown as `***@`.
pub fn redacted(urls: &[String]) -> String {
    urls.iter()
        .map(|u| match (u.find("://"), u.rfind('@')) {
            (Some(s), Some(at)) if at > s => format!("{}***{}", &u[..s + 3], &u[at..]),
            _ => u.clone(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

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
    /// A shard's snapshotter stores a snapshot every this many applied records (0: never);
    /// the stream is trimmed behind it (snapshots.rs).
    pub snapshot_every: u64,
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
            snapshot_every: 100_000,
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
        let mut t = Token::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (a, b) = part.split_once(':').ok_or_else(|| bad_token(s))?;
            let shard: u32 = a.trim().parse().map_err(|_| bad_token(s))?;
            let seq: u64 = b.trim().parse().map_err(|_| bad_token(s))?;
            t.observe(shard, seq);
        }
        Ok(t)
    }

    /// Raise the token to cover `seq` of `shard` (a later write, another token's).
    pub fn observe(&mut self, shard: u32, seq: u64) {
        let e = self.seqs.entry(shard).or_insert(0);
        *e = (*e).max(seq);
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
    /// First sequence the stream still holds (it is trimmed behind snapshots).
    pub first_seq: u64,
    /// The latest snapshot's sequence (0: none).
    pub snapshot_seq: u64,
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
    shared_kv: kv::Store,
    deliveries_kv: kv::Store,
    runs_kv: kv::Store,
    snapshots: jetstream::object_store::ObjectStore,
    media: jetstream::object_store::ObjectStore,
    db: Arc<Database>,
    state: RwLock<State>,
    replicas: Mutex<HashMap<(String, u32), Replica>>,
    /// Queue consumers opened by this node (queues.rs).
    queue_consumers: Mutex<HashMap<String, jetstream::consumer::Consumer<pull::Config>>>,
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
        // The client's last connection error (it keeps retrying in the background): a
        // refused credential ends the join at once, anything else is named if it times out.
        let last_error = Arc::new(Mutex::new(None::<String>));
        let le = last_error.clone();
        let mut opts = async_nats::ConnectOptions::new()
            .name(format!("agentdb-{}", cfg.node_id))
            .retry_on_initial_connect()
            // Another server of the cluster is usually up: try again soon, not with the
            // client's default exponential backoff.
            .reconnect_delay_callback(|attempts| Duration::from_millis((attempts as u64 * 100).min(1000)))
            .event_callback(move |ev| {
                let (flag, le) = (flag.clone(), le.clone());
                async move {
                    match ev {
                        async_nats::Event::ClientError(e) => *le.lock() = Some(e.to_string()),
                        async_nats::Event::ServerError(e) => *le.lock() = Some(e.to_string()),
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
        // A user and password in a URL (`tls://user:pass@host:port`): the client does
        // not take them from the URL itself.
        if let Some(a) = urls.iter().find(|a| a.has_user_pass()) {
            let (u, p) = (a.username().unwrap_or_default().to_string(), a.password().unwrap_or_default().to_string());
            opts = opts.user_and_password(u, p);
        }
        let client = tokio::time::timeout(Duration::from_secs(30), opts.connect(urls))
            .await
            .map_err(|_| Error::Unavailable(format!("cannot reach NATS at {} within 30 s", redacted(&cfg.urls))))?
            .map_err(nats)?;
        let js = jetstream::new(client.clone());
        // A JetStream cluster that has just started elects its meta leader first: wait for
        // it (up to 30 s) before probing how many replicas streams can have.
        let deadline = Instant::now() + Duration::from_secs(30);
        let (replicas, nodes_kv, meta_kv, leader_kv, shared_kv, deliveries_kv, runs_kv, snapshots, media) = loop {
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
                let shared_kv = create_bucket(&js, bucket(SHARED_BUCKET, Duration::ZERO)).await?;
                let week = Duration::from_secs(7 * 86_400);
                let deliveries_kv = create_bucket(&js, bucket(DELIVERIES_BUCKET, week)).await?;
                let runs_kv = create_bucket(&js, bucket(RUNS_BUCKET, Duration::ZERO)).await?;
                let snapshots = object_store(&js, SNAPSHOTS_BUCKET, replicas).await?;
                let media = object_store(&js, MEDIA_BUCKET, replicas).await?;
                Ok::<_, Error>((
                    replicas,
                    nodes_kv,
                    meta_kv,
                    leader_kv,
                    shared_kv,
                    deliveries_kv,
                    runs_kv,
                    snapshots,
                    media,
                ))
            };
            let refused = last_error.lock().clone().filter(|e| {
                let e = e.to_lowercase();
                e.contains("authorization") || e.contains("authentication") || e.contains("signing nonce")
            });
            if let Some(why) = refused {
                return Err(Error::Invalid(format!(
                    "NATS at {} refused this node's credentials: {why}",
                    redacted(&cfg.urls)
                )));
            }
            match attempt.await {
                Ok(x) => break x,
                Err(e) if Instant::now() < deadline => {
                    tracing::info!(error = %e, "cluster: JetStream not ready yet; retrying");
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                Err(e) => {
                    let last = last_error.lock().clone().map_or(String::new(), |l| format!(" (NATS client: {l})"));
                    return Err(Error::Unavailable(format!("JetStream is not available: {e}{last}")));
                }
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
            shared_kv,
            deliveries_kv,
            runs_kv,
            snapshots,
            media,
            db,
            state: RwLock::new(State::default()),
            replicas: Mutex::new(HashMap::new()),
            queue_consumers: Mutex::new(HashMap::new()),
            connected,
            started: now_ms(),
            turn: AtomicUsize::new(0),
        });
        // A bucket just created (by this node or one starting beside it) may not take
        // writes on every server yet ("no stream found for given subject"): retry.
        let deadline = Instant::now() + Duration::from_secs(30);
        while let Err(e) = c.heartbeat().await {
            if Instant::now() >= deadline {
                return Err(Error::Unavailable(format!("cannot register in the nodes bucket: {e}")));
            }
            tracing::info!(error = %e, "cluster: the nodes bucket does not take writes yet; retrying");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        tokio::spawn(c.clone().watch_bucket(true));
        tokio::spawn(c.clone().watch_bucket(false));
        tokio::spawn(c.clone().heartbeat_loop());
        tokio::spawn(c.clone().leader_loop());
        tokio::spawn(c.clone().replica_loop());
        tokio::spawn(c.clone().serve_reads().await?);
        tracing::info!(node = %c.cfg.node_id, nats = %redacted(&c.cfg.urls), stream_replicas = replicas, "cluster: joined");
        Ok(c)
    }

    /// Whether this node is connected to NATS now (writes are refused while it is not).
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::SeqCst)
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
                    shards.push(ShardStatus { shard, last_seq: 0, first_seq: 0, snapshot_seq: 0, replicas: reps });
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
                s.snapshot_seq = self.snapshot_seq(&c.name, s.shard).await.ok().flatten().unwrap_or(0);
                if let Ok(mut st) = self.js.get_stream(stream_name(&c.name, s.shard)).await {
                    if let Ok(info) = st.info().await {
                        s.last_seq = info.state.last_sequence;
                        s.first_seq = info.state.first_sequence;
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

async fn object_store(
    js: &jetstream::Context,
    name: &str,
    replicas: u32,
) -> Result<jetstream::object_store::ObjectStore> {
    match js.get_object_store(name).await {
        Ok(s) => Ok(s),
        Err(_) => {
            let cfg = jetstream::object_store::Config {
                bucket: name.into(),
                num_replicas: replicas as usize,
                ..Default::default()
            };
            match js.create_object_store(cfg).await {
                Ok(s) => Ok(s),
                // Created by another node meanwhile.
                Err(e) => js.get_object_store(name).await.map_err(|_| nats(format!("bucket {name}: {e}"))),
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_nats_urls_are_not_shown() {
        let urls = vec!["tls://agentdb:s3cret@10.0.0.1:4222".to_string(), "nats://10.0.0.2:4222".to_string()];
        assert_eq!(redacted(&urls), "tls://***@10.0.0.1:4222,nats://10.0.0.2:4222");
    }

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
        let chunks = writes::chunk_by_size((0..10).map(big).collect());
        assert!(chunks.len() > 1);
        assert_eq!(chunks.iter().map(Vec::len).sum::<usize>(), 10);
        for c in &chunks {
            assert!(serde_json::to_vec(c).unwrap().len() <= MAX_RECORD_BYTES + 200_000);
        }
    }
}
