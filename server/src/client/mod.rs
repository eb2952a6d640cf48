//! The client side of the binary: every command but `serve` (a gRPC client of a
//! running server), the load generators (`bench`) and `eval`. Nothing on the server
//! side imports this tree.
//!
//! Client commands. Each prints results on stdout; errors become one line on stderr
//! and a non-zero exit (see `main`).

pub mod agents;
pub mod bench;
pub mod eval;
pub mod ingest;
pub mod mcp;
pub mod workflows;

use agentdb_proto::v1;
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

/// The channel of agentdb_client (the Rust SDK, sdk/rust): it attaches the API key
/// (`--api-key` / `AGENTDB_API_KEY`) to every call.
pub type Ch = agentdb_client::Channel;
pub type CollectionsClient = v1::collections_client::CollectionsClient<Ch>;
pub type ItemsClient = v1::items_client::ItemsClient<Ch>;

const MAX_MESSAGE: usize = agentdb_client::MAX_MESSAGE;

#[derive(Subcommand)]
pub enum CollectionCmd {
    /// Create a collection with one space (--dim) or several (--space).
    Create {
        name: String,
        /// Dimension of the single default space.
        #[arg(long)]
        dim: Option<u32>,
        /// cosine, ip or l2.
        #[arg(long, default_value = "cosine")]
        metric: String,
        /// FAISS index-factory string (Flat, HNSW32, IVF1024,PQ32, ...).
        #[arg(long, default_value = agentdb_engine::DEFAULT_INDEX)]
        index: String,
        /// Named space NAME:DIM[:METRIC[:INDEX]] (repeatable), instead of --dim.
        #[arg(long = "space", value_name = "NAME:DIM[:METRIC[:INDEX]]")]
        spaces: Vec<String>,
        /// The default spaces of the installed encoders (text, ...) for `agentdb ingest`.
        #[arg(long)]
        multimodal: bool,
        /// No keyword (BM25) index over the items' text.
        #[arg(long)]
        no_keyword: bool,
        /// Keyword stemming and stop-word language (english, french, german, spanish, ...).
        #[arg(long, default_value = "english")]
        language: String,
        /// Payload field to index into the `meta` keyword field (repeatable).
        #[arg(long = "searchable", value_name = "FIELD")]
        searchable: Vec<String>,
        /// Cluster mode: a sharded collection with this many shards (docs/CLUSTER.md).
        #[arg(long, default_value_t = 0)]
        shards: u32,
        /// Cluster mode: nodes holding each shard (with --shards; default 1).
        #[arg(long, default_value_t = 0)]
        replicas: u32,
    },
    /// List collections.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show a collection's spaces, counts, index kinds and size on disk.
    Describe {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Seal buffered writes into indexed segments (--optimize also merges segments).
    Flush {
        name: String,
        #[arg(long)]
        optimize: bool,
    },
    /// Delete a collection and all its data.
    Drop { name: String },
}

#[derive(Args)]
pub struct UpsertArgs {
    pub collection: String,
    /// JSON Lines file ("-" for standard input).
    pub file: PathBuf,
    /// Items per request.
    #[arg(long, default_value_t = 500)]
    pub batch: usize,
}

#[derive(Args)]
pub struct GetArgs {
    pub collection: String,
    #[arg(required = true)]
    pub ids: Vec<String>,
    #[arg(long)]
    pub with_vectors: bool,
}

#[derive(Args)]
pub struct DeleteArgs {
    pub collection: String,
    pub ids: Vec<String>,
    /// Delete every item matching this filter instead of ids.
    #[arg(long)]
    pub filter: Option<String>,
}

#[derive(Args)]
pub struct CountArgs {
    pub collection: String,
    #[arg(long)]
    pub filter: Option<String>,
}

/// A `--fusion` value (clap has already limited it to these three) on the wire.
pub fn fusion_arg(name: &str) -> v1::Fusion {
    match name {
        "weighted" => v1::Fusion::Weighted,
        "rrf" => v1::Fusion::Rrf,
        _ => v1::Fusion::Calibrated,
    }
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("query").required(true).args(["vector", "text", "image", "audio", "video", "keyword"]).multiple(true)))]
pub struct SearchArgs {
    pub collection: String,
    /// Query vector as a JSON array.
    #[arg(long)]
    pub vector: Option<String>,
    /// Query text, embedded into every space of the collection; results are fused by source.
    #[arg(long)]
    pub text: Option<String>,
    /// Query by an example image file (sent to the server, embedded there).
    #[arg(long)]
    pub image: Option<PathBuf>,
    /// Query by a recording: the server transcribes its speech and searches by that text.
    #[arg(long)]
    pub audio: Option<PathBuf>,
    /// Query by a video: its keyframes and speech, embedded by the server.
    #[arg(long)]
    pub video: Option<PathBuf>,
    /// Show each ranked list's rank and score behind a fused result (and, for the
    /// keyword list, the matched terms and a highlighted snippet).
    #[arg(long)]
    pub explain: bool,
    /// dense, keyword or hybrid (default: hybrid when the collection has a keyword index
    /// and the query has text, else dense).
    #[arg(long, value_parser = ["dense", "keyword", "hybrid"])]
    pub mode: Option<String>,
    /// Keyword query (words, "phrases", field:word, +must, -not, word^2); default: the
    /// --text query. Alone, a keyword-only search.
    #[arg(long)]
    pub keyword: Option<String>,
    /// Cluster mode: the consistency token an upsert printed (read-your-writes).
    #[arg(long)]
    pub consistency_token: Option<String>,
    /// Cluster mode: a node cut off from NATS may answer from its own, possibly stale, replicas.
    #[arg(long)]
    pub allow_stale: bool,
    /// Weight of one keyword field, FIELD=W (text, transcript, ocr, labels, filename,
    /// title, tags, meta); 0 leaves it out; repeatable.
    #[arg(long = "field", value_name = "FIELD=W")]
    pub fields: Vec<String>,
    /// How ranked lists are fused: calibrated (each list's probability of relevance; a source
    /// scores its best list, default), rrf (sum of reciprocal ranks) or weighted (sum of scores).
    #[arg(long, default_value = "calibrated", value_parser = ["calibrated", "rrf", "weighted"])]
    pub fusion: String,
    /// Weight of one ranked list, LIST=W with LIST as SPACE/MODALITY (e.g. text/image=2); repeatable.
    #[arg(long = "weight")]
    pub weights: Vec<String>,
    /// Space to search (default: the collection's only space).
    #[arg(long, default_value = "")]
    pub space: String,
    #[arg(long, default_value_t = 10)]
    pub top_k: u32,
    /// Filter expression, e.g. 'color = "red" and price < 10'.
    #[arg(long)]
    pub filter: Option<String>,
    /// One JSON object per result.
    #[arg(long)]
    pub json: bool,
    /// Exact search (bypass the ANN index).
    #[arg(long)]
    pub exact: bool,
    /// HNSW efSearch for this query (0 = server default).
    #[arg(long, default_value_t = 0)]
    pub ef: u32,
    #[arg(long)]
    pub with_vectors: bool,
}

#[derive(Args)]
pub struct IngestArgs {
    pub collection: String,
    /// Files and folders (folders are walked recursively).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Files in flight at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Print a JSON summary instead of text.
    #[arg(long)]
    pub json: bool,
    /// Only this worker's share of the files: `INDEX/COUNT` (0-based), chosen by a stable
    /// hash of each path, so COUNT workers given the same folders split them (a
    /// Kubernetes Indexed Job passes `$(JOB_COMPLETION_INDEX)/COUNT`).
    #[arg(long, value_parser = parse_slice)]
    pub slice: Option<(u32, u32)>,
    /// Create the collection (multimodal: the installed encoders' spaces) if it does not
    /// exist yet.
    #[arg(long)]
    pub create_multimodal: bool,
}

fn parse_slice(s: &str) -> std::result::Result<(u32, u32), String> {
    let (i, n) = s.split_once('/').ok_or_else(|| format!("--slice takes INDEX/COUNT, got '{s}'"))?;
    let i: u32 = i.trim().parse().map_err(|_| format!("--slice: '{i}' is not an index"))?;
    let n: u32 = n.trim().parse().map_err(|_| format!("--slice: '{n}' is not a count"))?;
    if n == 0 || i >= n {
        return Err(format!("--slice {s}: the index must be below the count (0-based)"));
    }
    Ok((i, n))
}

#[derive(Subcommand)]
pub enum ModelsCmd {
    /// Models installed in the server's models folder (and which it loaded).
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum KeysCmd {
    /// Create a key; the secret is printed once.
    Create {
        name: String,
        /// reader, writer, admin or a custom role from the server's `[security.roles.<name>]`.
        #[arg(long, default_value = "reader")]
        role: String,
        /// Restrict to these collections (repeatable; default: all).
        #[arg(long = "collection")]
        collections: Vec<String>,
        /// Row-level policy every item must satisfy, e.g. 'tenant = "acme"'.
        #[arg(long)]
        row_filter: Option<String>,
    },
    List {
        #[arg(long)]
        json: bool,
    },
    Revoke {
        id: String,
    },
    /// Re-wrap the data directory's encryption data key under a new master key (offline:
    /// the server must be stopped). The current key comes from --key-file or
    /// AGENTDB_ENCRYPTION_KEY; data files are not rewritten.
    RotateEncryption {
        /// The data directory (the server's data_dir).
        #[arg(long)]
        data_dir: std::path::PathBuf,
        /// File holding the current master key (else AGENTDB_ENCRYPTION_KEY).
        #[arg(long)]
        key_file: Option<std::path::PathBuf>,
        /// File holding the new master key (64 hex characters or 32 raw bytes).
        #[arg(long)]
        new_key_file: std::path::PathBuf,
    },
}

/// `agentdb keys rotate-encryption`: runs on the data directory, not through a server.
pub fn rotate_encryption(
    data_dir: &std::path::Path,
    key_file: Option<&std::path::Path>,
    new_key_file: &std::path::Path,
) -> Result<()> {
    use agentdb_engine::crypto::{MasterKey, KEY_ENV};
    let err = |e: agentdb_engine::Error| anyhow::anyhow!("{e}");
    let old = match key_file {
        Some(f) => MasterKey::from_file(f).map_err(err)?,
        None => MasterKey::from_env()
            .map_err(err)?
            .with_context(|| format!("give the current encryption key with --key-file or {KEY_ENV}"))?,
    };
    let new = MasterKey::from_file(new_key_file).map_err(err)?;
    if old.id() == new.id() {
        bail!("the new key is the same as the current one (key id {})", old.id());
    }
    agentdb_engine::Database::rotate_encryption_key(data_dir, &old, &new).map_err(err)?;
    println!("re-wrapped the data key of {} under key id {} (was {})", data_dir.display(), new.id(), old.id());
    Ok(())
}

pub enum Cmd {
    Collection(CollectionCmd),
    Upsert(UpsertArgs),
    Get(GetArgs),
    Delete(DeleteArgs),
    Count(CountArgs),
    Search(SearchArgs),
    Ingest(IngestArgs),
    Eval(crate::client::eval::EvalArgs),
    Models(ModelsCmd),
    Status { json: bool },
    Keys(KeysCmd),
    LogLevel(String),
    Alerts { json: bool },
    InjectFault(u32),
    ClusterStatus { json: bool },
    ClusterDrain { node: String, undo: bool },
}

/// Connect through agentdb_client with the CLI's settings: `--server`, and the
/// credential and TLS files `main` put in the environment (`AGENTDB_API_KEY`,
/// `AGENTDB_CA_CERT`, `AGENTDB_CLIENT_CERT`/`AGENTDB_CLIENT_KEY`).
pub async fn connect(server: &str) -> Result<Ch> {
    let cfg = agentdb_client::Config::from_env().map_err(|e| anyhow::anyhow!("{e}"))?.with_url(server);
    let client = agentdb_client::Client::connect(cfg).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(client.channel())
}

pub fn clients(ch: Ch) -> (CollectionsClient, ItemsClient) {
    (
        CollectionsClient::new(ch.clone())
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE),
        ItemsClient::new(ch).max_decoding_message_size(MAX_MESSAGE).max_encoding_message_size(MAX_MESSAGE),
    )
}

/// Send a call again while the server answers UNAVAILABLE (a cluster node reconnecting to
/// NATS, a replica catching up) — reads always, writes only when the refusal carries the
/// `retry-after-ms` hint (nothing was done) — with backoff, for up to 15 s.
pub async fn retrying<T, F, Fut>(write: bool, mut call: F) -> Result<tonic::Response<T>, tonic::Status>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    let t = std::time::Instant::now();
    let mut wait = std::time::Duration::from_millis(100);
    loop {
        match call().await {
            Err(s) if s.code() == tonic::Code::Unavailable && t.elapsed() < std::time::Duration::from_secs(15) => {
                let hint = s
                    .metadata()
                    .get("retry-after-ms")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .map(std::time::Duration::from_millis);
                if write && hint.is_none() {
                    return Err(s);
                }
                tokio::time::sleep(hint.unwrap_or(wait)).await;
                wait = (wait * 2).min(std::time::Duration::from_secs(2));
            }
            other => return other,
        }
    }
}

/// Turn a gRPC status into one readable line.
pub fn status_err(s: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{} ({:?})", s.message(), s.code())
}

pub fn run(server: &str, cmd: Cmd) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let (mut cols, mut items) = clients(connect(server).await?);
        match cmd {
            Cmd::Collection(c) => collection(&mut cols, c).await,
            Cmd::Upsert(a) => upsert(&mut items, a).await,
            Cmd::Get(a) => {
                let req = v1::GetRequest { collection: a.collection, ids: a.ids, with_vectors: a.with_vectors, ..Default::default() };
                let r = retrying(false, || {
                    let (mut c, req) = (items.clone(), req.clone());
                    async move { c.get(req).await }
                })
                .await
                .map_err(status_err)?;
                for it in r.into_inner().items {
                    println!("{}", item_json(&it));
                }
                Ok(())
            }
            Cmd::Delete(a) => {
                if a.ids.is_empty() && a.filter.is_none() {
                    bail!("give ids to delete or --filter EXPR");
                }
                let r = items
                    .delete(v1::DeleteRequest {
                        collection: a.collection,
                        ids: a.ids,
                        filter: a.filter.unwrap_or_default(),
                    })
                    .await
                    .map_err(status_err)?;
                println!("deleted {}", r.into_inner().deleted);
                Ok(())
            }
            Cmd::Count(a) => {
                let req = v1::CountRequest { collection: a.collection, filter: a.filter.unwrap_or_default(), ..Default::default() };
                let r = retrying(false, || {
                    let (mut c, req) = (items.clone(), req.clone());
                    async move { c.count(req).await }
                })
                .await
                .map_err(status_err)?;
                println!("{}", r.into_inner().count);
                Ok(())
            }
            Cmd::Search(a) => search(&mut items, a).await,
            Cmd::Ingest(a) => {
                if a.create_multimodal {
                    let req = v1::CreateCollectionRequest { name: a.collection.clone(), multimodal: true, ..Default::default() };
                    match cols.create(req).await {
                        Ok(_) => eprintln!("created collection {}", a.collection),
                        Err(s) if s.code() == tonic::Code::AlreadyExists => {}
                        Err(s) => return Err(status_err(s)),
                    }
                }
                crate::client::ingest::ingest(&mut items, a).await
            }
            Cmd::Eval(a) => crate::client::eval::eval(&mut cols, &mut items, a).await,
            Cmd::Status { json } => status(server, json).await,
            Cmd::ClusterStatus { json } => cluster_status(server, json).await,
            Cmd::ClusterDrain { node, undo } => {
                let mut c = v1::cluster_client::ClusterClient::new(connect(server).await?);
                c.drain(v1::ClusterDrainRequest { node: node.clone(), undo }).await.map_err(status_err)?;
                println!("{} {node}", if undo { "stopped draining" } else { "draining" });
                Ok(())
            }
            Cmd::Keys(k) => keys(server, k).await,
            Cmd::Alerts { json } => {
                let mut c = v1::server_client::ServerClient::new(connect(server).await?);
                let r = c.alerts(v1::AlertsRequest {}).await.map_err(status_err)?.into_inner();
                for a in &r.alerts {
                    if json {
                        println!(
                            "{}",
                            serde_json::json!({"id": a.id, "signal": a.signal, "state": a.state, "started_unix_ms": a.started_unix_ms,
                                "resolved_unix_ms": a.resolved_unix_ms, "value": a.value, "baseline": a.baseline, "z": a.z})
                        );
                    } else {
                        println!(
                            "#{:<4} {:<8} {:<22} value {:.3} (baseline {:.3}, z {:.1})",
                            a.id, a.state, a.signal, a.value, a.baseline, a.z
                        );
                    }
                }
                if r.alerts.is_empty() && !json {
                    println!("no alerts");
                }
                Ok(())
            }
            Cmd::InjectFault(ms) => {
                let mut c = v1::server_client::ServerClient::new(connect(server).await?);
                c.inject_fault(v1::InjectFaultRequest { search_delay_ms: ms }).await.map_err(status_err)?;
                println!("search delay set to {ms} ms");
                Ok(())
            }
            Cmd::LogLevel(filter) => {
                let mut c = v1::server_client::ServerClient::new(connect(server).await?);
                let r = c.set_log_level(v1::SetLogLevelRequest { filter: filter.clone() }).await.map_err(status_err)?;
                println!("log filter: {} -> {filter}", r.into_inner().previous);
                Ok(())
            }
            Cmd::Models(ModelsCmd::List { json }) => {
                let ch = connect(server).await?;
                let mut m = v1::models_client::ModelsClient::new(ch);
                let r = m.list(v1::ListModelsRequest {}).await.map_err(status_err)?.into_inner();
                for mi in &r.models {
                    if json {
                        println!(
                            "{}",
                            serde_json::json!({"name": mi.name, "version": mi.version, "modality": mi.modality, "dim": mi.dim,
                                "sha256": mi.sha256, "source": mi.source, "encoder": mi.encoder, "loaded": mi.loaded})
                        );
                    } else {
                        println!(
                            "{:<20} {:<8} {:<6} dim {:<5} {} {}  ({})",
                            mi.name,
                            mi.version,
                            mi.modality,
                            mi.dim,
                            &mi.sha256[..16.min(mi.sha256.len())],
                            if mi.loaded { "loaded" } else { "installed" },
                            mi.source
                        );
                    }
                }
                if r.models.is_empty() && !json {
                    eprintln!("no models installed (run `make models`)");
                }
                Ok(())
            }
        }
    })
}

fn parse_space(s: &str) -> Result<v1::SpaceSpec> {
    let parts: Vec<&str> = s.splitn(4, ':').collect();
    if parts.len() < 2 {
        bail!("--space expects NAME:DIM[:METRIC[:INDEX]] or NAME:MODEL[:METRIC[:INDEX]], got '{s}'");
    }
    // NAME:DIM holds raw vectors; NAME:MODEL is bound to a loaded encoder (its dimension).
    let (dim, encoder) = match parts[1].parse::<u32>() {
        Ok(d) => (d, String::new()),
        Err(_) if parts[1].chars().next().is_some_and(|c| c.is_ascii_alphabetic()) => (0, parts[1].to_string()),
        Err(_) => bail!("--space '{s}': '{}' is neither a dimension nor a model name", parts[1]),
    };
    let metric = parts.get(2).copied().unwrap_or("cosine");
    Ok(v1::SpaceSpec {
        name: parts[0].to_string(),
        dim,
        metric: metric_arg(metric)? as i32,
        index: parts.get(3).copied().unwrap_or(agentdb_engine::DEFAULT_INDEX).to_string(),
        encoder,
    })
}

fn metric_arg(m: &str) -> Result<v1::Metric> {
    let m = agentdb_engine::Metric::parse(m).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(agentdb_proto::convert::metric_to_wire(m))
}

fn metric_name(m: i32) -> &'static str {
    agentdb_proto::convert::metric_from_wire(m).map(|m| m.as_str()).unwrap_or("?")
}

fn info_json(i: &v1::CollectionInfo) -> serde_json::Value {
    serde_json::json!({
        "name": i.name,
        "count": i.count,
        "unindexed": i.unindexed,
        "segments": i.segments,
        "deleted_rows": i.deleted_rows,
        "disk_bytes": i.disk_bytes,
        "last_lsn": i.last_lsn,
        "keyword_language": i.keyword_language,
        "keyword_searchable": i.keyword_searchable,
        "spaces": i.spaces.iter().map(|s| {
            let spec = s.spec.clone().unwrap_or_default();
            serde_json::json!({"name": spec.name, "dim": spec.dim, "metric": metric_name(spec.metric), "index": spec.index, "index_kinds": s.index_kinds, "encoder": spec.encoder})
        }).collect::<Vec<_>>(),
    })
}

fn print_info(i: &v1::CollectionInfo) {
    println!("collection  {}", i.name);
    println!("items       {} ({} not yet indexed)", i.count, i.unindexed);
    println!("segments    {} ({} deleted rows awaiting compaction)", i.segments, i.deleted_rows);
    println!("disk        {}", human_bytes(i.disk_bytes));
    if i.keyword_language.is_empty() {
        println!("keyword     none");
    } else if i.keyword_searchable.is_empty() {
        println!("keyword     BM25, {}", i.keyword_language);
    } else {
        println!("keyword     BM25, {} (also indexes: {})", i.keyword_language, i.keyword_searchable.join(", "));
    }
    for s in &i.spaces {
        let spec = s.spec.clone().unwrap_or_default();
        println!("space       {}: dim {}, {}, index {}", spec.name, spec.dim, metric_name(spec.metric), spec.index);
        if !spec.encoder.is_empty() {
            println!("              encoder {}", spec.encoder);
        }
        for k in &s.index_kinds {
            println!("              {k}");
        }
    }
}

fn human_bytes(b: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", U[i])
    }
}

async fn collection(c: &mut CollectionsClient, cmd: CollectionCmd) -> Result<()> {
    match cmd {
        CollectionCmd::Create {
            name,
            dim,
            metric,
            index,
            spaces,
            multimodal,
            no_keyword,
            language,
            searchable,
            shards,
            replicas,
        } => {
            let spaces = match (dim, spaces.is_empty()) {
                (Some(_), false) => bail!("give either --dim or --space, not both"),
                (None, true) if multimodal => Vec::new(),
                (None, true) => bail!("give --dim D for one space, --space NAME:DIM[:METRIC[:INDEX]], or --multimodal"),
                (Some(d), true) => {
                    vec![v1::SpaceSpec {
                        name: "default".into(),
                        dim: d,
                        metric: metric_arg(&metric)? as i32,
                        index,
                        ..Default::default()
                    }]
                }
                (None, false) => spaces.iter().map(|s| parse_space(s)).collect::<Result<_>>()?,
            };
            let keyword = Some(v1::KeywordOptions { disabled: no_keyword, language, searchable });
            let r = c
                .create(v1::CreateCollectionRequest { name, spaces, multimodal, keyword, shards, replicas })
                .await
                .map_err(status_err)?;
            let info = r.into_inner().info.unwrap_or_default();
            println!("created collection {}", info.name);
        }
        CollectionCmd::List { json } => {
            let r = c.list(v1::ListCollectionsRequest {}).await.map_err(status_err)?.into_inner();
            if json {
                for i in &r.collections {
                    println!("{}", info_json(i));
                }
            } else {
                println!("{:<24} {:>12} {:>9}  SPACES", "NAME", "ITEMS", "SEGMENTS");
                for i in &r.collections {
                    let spaces: Vec<String> = i
                        .spaces
                        .iter()
                        .filter_map(|s| s.spec.as_ref())
                        .map(|s| format!("{}:{}:{}:{}", s.name, s.dim, metric_name(s.metric), s.index))
                        .collect();
                    println!("{:<24} {:>12} {:>9}  {}", i.name, i.count, i.segments, spaces.join(" "));
                }
            }
        }
        CollectionCmd::Describe { name, json } => {
            let r = c.describe(v1::DescribeCollectionRequest { name }).await.map_err(status_err)?.into_inner();
            let info = r.info.unwrap_or_default();
            if json {
                println!("{}", info_json(&info));
            } else {
                print_info(&info);
            }
        }
        CollectionCmd::Flush { name, optimize } => {
            let r = c.flush(v1::FlushRequest { collection: name, optimize }).await.map_err(status_err)?.into_inner();
            print_info(&r.info.unwrap_or_default());
        }
        CollectionCmd::Drop { name } => {
            c.drop(v1::DropCollectionRequest { name: name.clone() }).await.map_err(status_err)?;
            println!("dropped collection {name}");
        }
    }
    Ok(())
}

/// One JSONL line → wire item.
pub fn parse_item_line(line: &str) -> Result<v1::Item> {
    let v: serde_json::Value = serde_json::from_str(line).context("invalid JSON")?;
    let obj = v.as_object().context("each line must be a JSON object")?;
    let id = match obj.get("id") {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Number(n)) => n.to_string(),
        Some(_) => bail!("\"id\" must be a string or a number"),
    };
    let to_vec = |v: &serde_json::Value, what: &str| -> Result<v1::Vector> {
        let arr = v.as_array().with_context(|| format!("{what} must be an array of numbers"))?;
        let values = arr
            .iter()
            .enumerate()
            .map(|(i, x)| x.as_f64().map(|f| f as f32).with_context(|| format!("{what}[{i}] is not a number")))
            .collect::<Result<Vec<f32>>>()?;
        Ok(v1::Vector { values, ..Default::default() })
    };
    let mut vectors = std::collections::HashMap::new();
    if let Some(v) = obj.get("vector") {
        vectors.insert(String::new(), to_vec(v, "\"vector\"")?);
    }
    if let Some(m) = obj.get("vectors") {
        let m = m.as_object().context("\"vectors\" must be an object of space name -> array")?;
        for (k, v) in m {
            vectors.insert(k.clone(), to_vec(v, &format!("\"vectors\".{k}"))?);
        }
    }
    if vectors.is_empty() {
        bail!("missing \"vector\" (or \"vectors\")");
    }
    let payload_json = match obj.get("payload") {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(p) => p.to_string(),
    };
    Ok(v1::Item { id, vectors, payload_json })
}

async fn upsert(items: &mut ItemsClient, a: UpsertArgs) -> Result<()> {
    let reader: Box<dyn BufRead> = if a.file.as_os_str() == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        let f = std::fs::File::open(&a.file).with_context(|| format!("cannot open {}", a.file.display()))?;
        Box::new(std::io::BufReader::new(f))
    };
    let total_bytes = std::fs::metadata(&a.file).map(|m| m.len()).unwrap_or(0);
    let bar = if std::io::stderr().is_terminal() && total_bytes > 0 {
        let b = indicatif::ProgressBar::new(total_bytes);
        b.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {msg} [{elapsed} < {eta}]")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut batch = Vec::with_capacity(a.batch);
    let mut done = 0u64;
    let t = std::time::Instant::now();
    let name = a.file.display().to_string();
    for (lineno, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("reading {name}"))?;
        bar.inc(line.len() as u64 + 1);
        if line.trim().is_empty() {
            continue;
        }
        let item = parse_item_line(&line).with_context(|| format!("{name}:{}", lineno + 1))?;
        batch.push(item);
        if batch.len() >= a.batch.max(1) {
            done += send_batch(items, &a.collection, std::mem::take(&mut batch))
                .await
                .with_context(|| format!("{name}: batch ending at line {}", lineno + 1))?;
            bar.set_message(format!("{done} items"));
        }
    }
    if !batch.is_empty() {
        done += send_batch(items, &a.collection, batch).await.with_context(|| format!("{name}: last batch"))?;
    }
    bar.finish_and_clear();
    let secs = t.elapsed().as_secs_f64();
    println!("upserted {done} items in {secs:.1}s ({:.0} items/s)", done as f64 / secs.max(1e-9));
    Ok(())
}

async fn send_batch(items: &mut ItemsClient, collection: &str, batch: Vec<v1::Item>) -> Result<u64> {
    let req = v1::UpsertRequest { collection: collection.to_string(), items: batch };
    let r = retrying(true, || {
        let (mut c, req) = (items.clone(), req.clone());
        async move { c.upsert(req).await }
    })
    .await
    .map_err(status_err)?;
    Ok(r.into_inner().ids.len() as u64)
}

fn item_json(it: &v1::Item) -> serde_json::Value {
    let payload: serde_json::Value = serde_json::from_str(&it.payload_json).unwrap_or(serde_json::Value::Null);
    let mut o = serde_json::json!({"id": it.id, "payload": payload});
    if !it.vectors.is_empty() {
        o["vectors"] = serde_json::json!(it
            .vectors
            .iter()
            .map(|(k, v)| (k.clone(), v.values.clone()))
            .collect::<std::collections::BTreeMap<_, _>>());
    }
    o
}

async fn search(items: &mut ItemsClient, a: SearchArgs) -> Result<()> {
    let vector = match &a.vector {
        Some(v) => {
            let values: Vec<f32> =
                serde_json::from_str(v).context("--vector must be a JSON array of numbers, e.g. '[0.1, 0.2]'")?;
            Some(v1::Vector { values, ..Default::default() })
        }
        None => None,
    };
    let read = |p: &Option<PathBuf>, what: &str| -> Result<Vec<u8>> {
        match p {
            Some(p) => std::fs::read(p).with_context(|| format!("cannot read query {what} {}", p.display())),
            None => Ok(Vec::new()),
        }
    };
    let (image, audio, video) = (read(&a.image, "image")?, read(&a.audio, "audio")?, read(&a.video, "video")?);
    let mut weights = std::collections::HashMap::new();
    for w in &a.weights {
        let (list, v) = w.split_once('=').context("--weight takes LIST=W, e.g. text/image=2")?;
        weights.insert(list.to_string(), v.parse::<f32>().with_context(|| format!("--weight {w}: W is not a number"))?);
    }
    let fusion = fusion_arg(&a.fusion);
    let mut keyword_fields = std::collections::HashMap::new();
    for w in &a.fields {
        let (f, v) = w.split_once('=').context("--field takes FIELD=W, e.g. ocr=2 or filename=0")?;
        keyword_fields
            .insert(f.to_string(), v.parse::<f32>().with_context(|| format!("--field {w}: W is not a number"))?);
    }
    let mode = match a.mode.as_deref() {
        Some("dense") => v1::RetrievalMode::RetrievalDense,
        Some("keyword") => v1::RetrievalMode::RetrievalKeyword,
        Some("hybrid") => v1::RetrievalMode::RetrievalHybrid,
        _ => v1::RetrievalMode::RetrievalDefault,
    };
    let req = v1::SearchRequest {
        collection: a.collection,
        space: a.space,
        vector,
        text: a.text.unwrap_or_default(),
        image,
        audio,
        video,
        top_k: a.top_k,
        filter: a.filter.unwrap_or_default(),
        with_payload: true,
        with_vectors: a.with_vectors,
        params: Some(v1::SearchParams { nprobe: 0, exact: a.exact, ef: a.ef }),
        explain: a.explain,
        fusion: fusion as i32,
        weights,
        mode: mode as i32,
        keyword_query: a.keyword.unwrap_or_default(),
        keyword_fields,
        consistency_token: a.consistency_token.unwrap_or_default(),
        allow_stale: a.allow_stale,
    };
    let r = retrying(false, || {
        let (mut c, req) = (items.clone(), req.clone());
        async move { c.search(req).await }
    })
    .await
    .map_err(status_err)?;
    let hits = r.into_inner().hits;
    for (rank, h) in hits.iter().enumerate() {
        let payload: serde_json::Value = serde_json::from_str(&h.payload_json).unwrap_or(serde_json::Value::Null);
        let explain: Vec<serde_json::Value> = h
            .explain
            .iter()
            .map(|e| {
                let mut o = serde_json::json!({"list": e.list, "rank": e.rank, "score": e.score, "contribution": e.contribution});
                if !e.matched.is_empty() {
                    o["matched"] = serde_json::json!(e.matched);
                    o["snippet"] = e.snippet.clone().into();
                    o["coverage"] = e.coverage.into();
                }
                o
            })
            .collect();
        if a.json {
            let mut o = serde_json::json!({"id": h.id, "score": h.score, "payload": payload});
            if !h.source.is_empty() {
                o["source"] = h.source.clone().into();
                o["modality"] = h.modality.clone().into();
                o["part"] = h.part.clone().into();
            }
            if a.explain {
                o["explain"] = explain.into();
            }
            if let Some(v) = &h.vector {
                o["vector"] = serde_json::json!(v.values);
            }
            println!("{o}");
        } else if !h.source.is_empty() {
            // A fused result: where it came from, what it is and the part that matched.
            println!("{:>3}  {:>8.4}  {}  [{}] {}", rank + 1, h.score, h.source, h.modality, h.part);
            if let Some(text) = payload.get("text").and_then(|t| t.as_str()) {
                let snippet: String = text.chars().take(100).collect::<String>().replace('\n', " ");
                println!("               {snippet}");
            }
            for e in &h.explain {
                println!(
                    "               {:<16} rank {:>3}  score {:.4}  adds {:.4}",
                    e.list, e.rank, e.score, e.contribution
                );
                if !e.matched.is_empty() {
                    println!(
                        "                 matched {} ({:.0} % of the query)",
                        e.matched.join("; "),
                        e.coverage * 100.0
                    );
                    println!("                 «{}»", e.snippet.replace('\n', " "));
                }
            }
        } else {
            println!("{:>3}  {:<36}  {:>10.6}  {}", rank + 1, h.id, h.score, payload);
        }
    }
    if hits.is_empty() && !a.json {
        eprintln!("no results");
    }
    Ok(())
}

fn human_duration(secs: f64) -> String {
    let s = secs as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86399 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86400, (s % 86400) / 3600),
    }
}

async fn status(server: &str, json: bool) -> Result<()> {
    let mut c = v1::server_client::ServerClient::new(connect(server).await?);
    let s = c.status(v1::StatusRequest {}).await.map_err(status_err)?.into_inner();
    if json {
        println!(
            "{}",
            serde_json::json!({
                "version": s.version, "device": s.device, "uptime_seconds": s.uptime_seconds, "rss_bytes": s.rss_bytes,
                "data_dir": s.data_dir, "data_bytes": s.data_bytes, "disk_free_bytes": s.disk_free_bytes,
                "disk_total_bytes": s.disk_total_bytes, "queries_per_second": s.queries_per_second,
                "upserts_per_second": s.upserts_per_second, "growth_bytes_per_day": s.growth_bytes_per_day,
                "days_until_disk_full": s.days_until_disk_full,
                "collections": s.collections.iter().map(info_json).collect::<Vec<_>>(),
                "damaged": s.damaged.iter().map(|d| serde_json::json!({"name": d.name, "reason": d.reason})).collect::<Vec<_>>(),
            })
        );
        return Ok(());
    }
    println!("agentdb {} on {}, up {}", s.version, s.device, human_duration(s.uptime_seconds));
    println!("memory       {} resident", human_bytes(s.rss_bytes));
    println!(
        "data         {}: {} used, {} free of {}",
        s.data_dir,
        human_bytes(s.data_bytes),
        human_bytes(s.disk_free_bytes),
        human_bytes(s.disk_total_bytes)
    );
    println!(
        "rates        {:.1} queries/s, {:.1} items/s written (last minute)",
        s.queries_per_second, s.upserts_per_second
    );
    if s.days_until_disk_full >= 0.0 {
        println!(
            "growth       {}/day: disk full in {:.1} days at this trend",
            human_bytes(s.growth_bytes_per_day as u64),
            s.days_until_disk_full
        );
    } else {
        println!("growth       not growing (no forecast)");
    }
    println!("{:<24} {:>12} {:>9} {:>12}", "COLLECTION", "ITEMS", "SEGMENTS", "DISK");
    for i in &s.collections {
        println!("{:<24} {:>12} {:>9} {:>12}", i.name, i.count, i.segments, human_bytes(i.disk_bytes));
    }
    for d in &s.damaged {
        println!("{:<24} DAMAGED, not served: {}", d.name, d.reason);
    }
    Ok(())
}

async fn keys(server: &str, cmd: KeysCmd) -> Result<()> {
    let mut c = v1::security_client::SecurityClient::new(connect(server).await?);
    match cmd {
        KeysCmd::Create { name, role, collections, row_filter } => {
            let r = c
                .create_key(v1::CreateKeyRequest {
                    name,
                    role,
                    collections,
                    row_filter: row_filter.unwrap_or_default(),
                })
                .await
                .map_err(status_err)?
                .into_inner();
            let k = r.key.unwrap_or_default();
            eprintln!("created key {} ({}, role {}); the secret is shown only now:", k.id, k.name, k.role);
            println!("{}", r.secret);
        }
        KeysCmd::List { json } => {
            let r = c.list_keys(v1::ListKeysRequest {}).await.map_err(status_err)?.into_inner();
            for k in r.keys {
                if json {
                    println!(
                        "{}",
                        serde_json::json!({"id": k.id, "name": k.name, "role": k.role, "collections": k.collections,
                            "created_unix": k.created_unix, "revoked": k.revoked})
                    );
                } else {
                    let scope =
                        if k.collections.is_empty() { "all collections".to_string() } else { k.collections.join(",") };
                    println!(
                        "{:<14} {:<20} {:<7} {:<24} {}",
                        k.id,
                        k.name,
                        k.role,
                        scope,
                        if k.revoked { "revoked" } else { "active" }
                    );
                }
            }
        }
        KeysCmd::Revoke { id } => {
            c.revoke_key(v1::RevokeKeyRequest { id: id.clone() }).await.map_err(status_err)?;
            println!("revoked key {id}");
        }
        KeysCmd::RotateEncryption { .. } => bail!("keys rotate-encryption runs without a server (see main)"),
    }
    Ok(())
}

/// `agentdb cluster status`: nodes, leader, and per shard the last stored write and each
/// replica's applied position (lag).
async fn cluster_status(server: &str, json: bool) -> Result<()> {
    let mut c = v1::cluster_client::ClusterClient::new(connect(server).await?);
    let r = c.status(v1::ClusterStatusRequest {}).await.map_err(status_err)?.into_inner();
    if json {
        let v = serde_json::json!({
            "enabled": r.enabled, "node_id": r.node_id, "leader": r.leader, "connected": r.connected,
            "nodes": r.nodes.iter().map(|n| serde_json::json!({"id": n.id, "addr": n.addr, "alive": n.alive, "replicas": n.replicas, "draining": n.draining})).collect::<Vec<_>>(),
            "collections": r.collections.iter().map(|c| serde_json::json!({
                "name": c.name, "shards": c.shards, "replicas": c.replicas, "stream_replicas": c.stream_replicas,
                "shard_status": c.shard_status.iter().map(|s| serde_json::json!({
                    "shard": s.shard, "last_seq": s.last_seq, "first_seq": s.first_seq, "snapshot_seq": s.snapshot_seq,
                    "replicas": s.replicas.iter().map(|r| serde_json::json!({"node": r.node, "applied": r.applied, "alive": r.alive, "lag": s.last_seq.saturating_sub(r.applied)})).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        });
        println!("{v}");
        return Ok(());
    }
    if !r.enabled {
        println!("not in a cluster (a single node; start it with --cluster nats://HOST:PORT)");
        return Ok(());
    }
    println!(
        "node {} (leader: {}; NATS {})",
        r.node_id,
        r.leader,
        if r.connected { "connected" } else { "DISCONNECTED" }
    );
    for n in &r.nodes {
        println!(
            "  node {:<16} {:<22} {:<5} {} replica(s)",
            n.id,
            n.addr,
            if !n.alive {
                "DOWN"
            } else if n.draining {
                "drain"
            } else {
                "up"
            },
            n.replicas
        );
    }
    for c in &r.collections {
        println!(
            "collection {}: {} shard(s) x {} replica(s), streams R{}",
            c.name, c.shards, c.replicas, c.stream_replicas
        );
        for s in &c.shard_status {
            let reps: Vec<String> = s
                .replicas
                .iter()
                .map(|r| {
                    format!(
                        "{}{} lag {}",
                        r.node,
                        if r.alive { "" } else { " (DOWN)" },
                        s.last_seq.saturating_sub(r.applied)
                    )
                })
                .collect();
            let snap = if s.snapshot_seq > 0 { format!(", snapshot at {}", s.snapshot_seq) } else { String::new() };
            let held = if s.first_seq > 1 { format!(" (stream from {})", s.first_seq) } else { String::new() };
            println!("  shard {}: last write {}{held}{snap}; {}", s.shard, s.last_seq, reps.join(", "));
        }
    }
    Ok(())
}
