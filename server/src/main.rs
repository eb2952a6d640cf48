//! The `agentdb` binary: `agentdb serve` runs the server; every other command is a
//! gRPC client of a running server (`--server URL` or `AGENTDB_URL`).

mod a2a;
mod anomaly;
mod client;
mod cluster_queues;
mod cluster_quota;
mod cluster_rpc;
mod cluster_target;
mod cluster_workflows;
mod config;
mod device;
mod edge_sync;
mod grpc;
mod host;
mod mcp;
mod metrics;
mod orchestration;
mod quota;
mod rest;
mod security;
mod serve;
mod status;
mod status_rpc;
mod telemetry;
mod tls;
mod ui;
mod workflows;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "agentdb", version, about = "AgentDB: multimodal retrieval engine for AI agents")]
struct Args {
    /// Server address for client commands.
    #[arg(long, global = true, env = "AGENTDB_URL", default_value = "http://127.0.0.1:7720")]
    server: String,
    /// API key for servers with security.auth = "api_key" (or AGENTDB_API_KEY).
    #[arg(long, global = true, hide_env_values = true)]
    api_key: Option<String>,
    /// CA certificate (PEM) to trust for an `https://` server (else the public web roots).
    #[arg(long, global = true, env = "AGENTDB_CA_CERT")]
    ca_cert: Option<PathBuf>,
    /// Client certificate (PEM) for servers that require mTLS (with --client-key).
    #[arg(long, global = true, env = "AGENTDB_CLIENT_CERT")]
    client_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, global = true, env = "AGENTDB_CLIENT_KEY")]
    client_key: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Create, list, describe, flush and drop collections.
    #[command(subcommand)]
    Collection(client::CollectionCmd),
    /// Upsert items from a JSON Lines file: {"id":..,"vector":[..],"payload":{..}} per line.
    Upsert(client::UpsertArgs),
    /// Fetch items by id.
    Get(client::GetArgs),
    /// Delete items by id or by filter.
    Delete(client::DeleteArgs),
    /// Count items, optionally matching a filter.
    Count(client::CountArgs),
    /// Nearest-neighbour search by vector, or cross-modal by text, image or audio.
    Search(client::SearchArgs),
    /// Retrieval quality (recall@1/@5, MRR per query kind) on a labelled dataset folder.
    Eval(crate::client::eval::EvalArgs),
    /// Ingest files and folders (type detected from content) into a multimodal collection.
    Ingest(client::IngestArgs),
    /// Cluster mode: nodes, leader, shards, replicas and their lag (docs/CLUSTER.md).
    #[command(subcommand)]
    Cluster(ClusterCmd),
    /// Server health: memory, disk, collections, rates and a disk-growth forecast.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Alerts from the anomaly detector (firing and recently resolved).
    Alerts {
        #[arg(long)]
        json: bool,
    },
    /// Testing aid: delay every search by MS milliseconds (0 clears); needs
    /// debug.allow_fault_injection on the server.
    InjectFault {
        #[arg(long)]
        search_delay_ms: u32,
    },
    /// Change the server's log filter at run time, e.g. `debug` or `agentdb_engine=debug,info`.
    LogLevel { filter: String },
    /// Manage API keys (needs an admin key); `keys rotate-encryption` works offline on a
    /// stopped server's data directory.
    #[command(subcommand)]
    Keys(client::KeysCmd),
    /// The hash-chained audit log.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Per-principal storage quotas.
    #[command(subcommand)]
    Quota(QuotaCmd),
    /// Installed models.
    #[command(subcommand)]
    Models(client::ModelsCmd),
    /// Register and manage agents (docs/AGENTS.md).
    #[command(subcommand)]
    Agent(client::agents::AgentCmd),
    /// Durable message queues: create, send, receive, ack, stats.
    #[command(subcommand)]
    Queue(client::agents::QueueCmd),
    /// Tail the event bus (agent health and lifecycle, ingestion, alerts, ...).
    Events(client::agents::EventsArgs),
    /// Workflows: apply definitions, run them, follow and cancel runs (docs/WORKFLOWS.md).
    #[command(subcommand)]
    Workflow(client::workflows::WorkflowCmd),
    /// MCP over stdio for desktop agents: carries each JSON-RPC line to the server's
    /// streamable HTTP endpoint (/mcp) with this client's credentials (docs/MCP.md).
    Mcp(client::mcp::McpArgs),
    /// Benchmarks against a running server.
    #[command(subcommand)]
    Bench(client::bench::BenchCmd),
}

#[derive(Subcommand)]
enum AuditCmd {
    /// Check the audit log's hash chain (offline; give the data directory or the file),
    /// and with --checkpoints also that it was neither truncated nor rewritten since the
    /// signed checkpoints (security.audit_checkpoint_file) were written.
    Verify {
        #[arg(default_value = "./agentdb-data")]
        path: PathBuf,
        /// The checkpoint file (security.audit_checkpoint_file) to check the log against.
        #[arg(long, requires = "checkpoint_key_file")]
        checkpoints: Option<PathBuf>,
        /// The checkpoints' HMAC key file (hex; security.audit_checkpoint_key_file).
        #[arg(long, requires = "checkpoints")]
        checkpoint_key_file: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum QuotaCmd {
    /// Storage used by each principal and its limits (offline: reads
    /// <data dir>/security/storage-usage.json; 0 = no limit).
    Show {
        #[arg(default_value = "./agentdb-data")]
        data_dir: PathBuf,
        /// Only this principal (e.g. key:<id>, oidc:<sub>, mtls:<name>).
        #[arg(long)]
        principal: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

fn quota_show(data_dir: &std::path::Path, principal: Option<&str>, json: bool) -> anyhow::Result<()> {
    let all = quota::read_usage(&data_dir.join("security"))?;
    let rows: Vec<_> = all.iter().filter(|(who, _)| principal.is_none_or(|p| p == who.as_str())).collect();
    for (who, u) in &rows {
        if json {
            println!(
                "{}",
                serde_json::json!({"principal": who, "bytes": u.bytes, "items": u.items, "limit_bytes": u.limit_bytes, "limit_items": u.limit_items})
            );
        } else {
            let lim = |v: u64| if v == 0 { "unlimited".to_string() } else { v.to_string() };
            println!("{who}\tbytes {} / {}\titems {} / {}", u.bytes, lim(u.limit_bytes), u.items, lim(u.limit_items));
        }
    }
    if rows.is_empty() && !json {
        println!("no storage usage recorded (no storage quota configured, or nothing written yet)");
    }
    Ok(())
}

fn audit_verify(
    path: &std::path::Path,
    checkpoints: Option<&std::path::Path>,
    key_file: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    use agentdb_orchestrator::security::audit::checkpoint::{verify_with_checkpoints, CheckpointKey};
    let file = if path.is_dir() { path.join("security").join("audit.log") } else { path.to_path_buf() };
    let (Some(ck), Some(key_file)) = (checkpoints, key_file) else {
        let (n, last) = agentdb_orchestrator::security::audit::verify(&file)
            .map_err(|e| anyhow::anyhow!("audit log is NOT intact: {e}"))?;
        println!("audit log intact: {n} records, last hash {last} ({})", file.display());
        println!("(without --checkpoints, truncation at the end and a rewrite with a recomputed chain go unseen)");
        return Ok(());
    };
    let key = CheckpointKey::load(key_file).map_err(|e| anyhow::anyhow!("{e}"))?;
    let r = verify_with_checkpoints(&file, ck, &key).map_err(|e| anyhow::anyhow!("audit log is NOT intact: {e}"))?;
    println!("audit log intact: {} records, last hash {} ({})", r.records, r.last_hash, file.display());
    match &r.last {
        Some(c) => println!(
            "checkpoints verified: {} signed with key {} ({}); the last, of {}, covers {} of {} records",
            r.checkpoints,
            key.id(),
            ck.display(),
            agentdb_orchestrator::time::rfc3339(c.time_unix_ms),
            c.seq,
            r.records
        ),
        None => println!("checkpoints: none yet in {}", ck.display()),
    }
    if r.uncovered() > 0 {
        println!("{} records after the last checkpoint are not covered by a signature yet", r.uncovered());
    }
    if !r.torn_lines.is_empty() {
        println!("checkpoint lines cut short by a crash (left out): {:?}", r.torn_lines);
    }
    Ok(())
}

#[derive(clap::Subcommand)]
enum ClusterCmd {
    /// Nodes (alive or not), the leader, and per shard its replicas and their lag.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Move every replica off NODE (each once its successor caught up); --undo stops.
    Drain {
        node: String,
        #[arg(long)]
        undo: bool,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Configuration file (TOML).
    #[arg(long, env = "AGENTDB_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory (default ./agentdb-data).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Listen address (default 127.0.0.1:7720; port 0 picks a free port).
    #[arg(long)]
    listen: Option<String>,
    /// Override any configuration key, e.g. --set storage.flush_rows=5000 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Print the effective configuration and exit.
    #[arg(long)]
    print_config: bool,
    /// Allow a non-loopback listen address without authentication (dangerous).
    #[arg(long)]
    insecure: bool,
    /// auto (a GPU when the build and the machine have one, else the CPU), cpu, or cuda:N.
    #[arg(long)]
    device: Option<String>,
    /// Join a cluster through these NATS servers (nats://HOST:PORT[,...]; docs/CLUSTER.md).
    #[arg(long, value_name = "URLS")]
    cluster: Option<String>,
    /// This node's id in the cluster or as an edge or hub (default: the host name).
    #[arg(long, value_name = "ID")]
    node_id: Option<String>,
    /// Run as an edge node: a local AgentDB with its own leaf nats-server that syncs the
    /// collections in edge.collections with the hub when connected (docs/EDGE.md).
    #[arg(long)]
    edge: bool,
    /// The hub's leaf-node URL for --edge (nats-leaf://HOST:7422).
    #[arg(long, value_name = "URL")]
    hub: Option<String>,
    /// Run as the edge hub on these NATS servers (their JetStream domain: edge.hub_domain).
    #[arg(long, value_name = "URLS")]
    edge_hub: Option<String>,
}

fn main() {
    let args = Args::parse();
    if let Some(k) = &args.api_key {
        // Read by the client channel (client::connect); set before any thread starts.
        std::env::set_var("AGENTDB_API_KEY", k);
    }
    // TLS files, likewise read by client::connect.
    for (var, v) in [
        ("AGENTDB_CA_CERT", &args.ca_cert),
        ("AGENTDB_CLIENT_CERT", &args.client_cert),
        ("AGENTDB_CLIENT_KEY", &args.client_key),
    ] {
        if let Some(p) = v {
            std::env::set_var(var, p);
        }
    }
    let result = match args.command {
        Command::Serve(s) => serve_cmd(s),
        Command::Collection(c) => client::run(&args.server, client::Cmd::Collection(c)),
        Command::Upsert(a) => client::run(&args.server, client::Cmd::Upsert(a)),
        Command::Get(a) => client::run(&args.server, client::Cmd::Get(a)),
        Command::Delete(a) => client::run(&args.server, client::Cmd::Delete(a)),
        Command::Count(a) => client::run(&args.server, client::Cmd::Count(a)),
        Command::Search(a) => client::run(&args.server, client::Cmd::Search(a)),
        Command::Ingest(a) => client::run(&args.server, client::Cmd::Ingest(a)),
        Command::Eval(a) => client::run(&args.server, client::Cmd::Eval(a)),
        Command::Models(m) => client::run(&args.server, client::Cmd::Models(m)),
        Command::Status { json } => client::run(&args.server, client::Cmd::Status { json }),
        Command::Cluster(ClusterCmd::Status { json }) => client::run(&args.server, client::Cmd::ClusterStatus { json }),
        Command::Cluster(ClusterCmd::Drain { node, undo }) => {
            client::run(&args.server, client::Cmd::ClusterDrain { node, undo })
        }
        Command::Keys(client::KeysCmd::RotateEncryption { data_dir, key_file, new_key_file }) => {
            client::rotate_encryption(&data_dir, key_file.as_deref(), &new_key_file)
        }
        Command::Keys(k) => client::run(&args.server, client::Cmd::Keys(k)),
        Command::LogLevel { filter } => client::run(&args.server, client::Cmd::LogLevel(filter)),
        Command::Alerts { json } => client::run(&args.server, client::Cmd::Alerts { json }),
        Command::InjectFault { search_delay_ms } => {
            client::run(&args.server, client::Cmd::InjectFault(search_delay_ms))
        }
        Command::Audit(AuditCmd::Verify { path, checkpoints, checkpoint_key_file }) => {
            audit_verify(&path, checkpoints.as_deref(), checkpoint_key_file.as_deref())
        }
        Command::Quota(QuotaCmd::Show { data_dir, principal, json }) => {
            quota_show(&data_dir, principal.as_deref(), json)
        }
        Command::Bench(b) => client::bench::run(&args.server, b),
        Command::Agent(c) => client::agents::cli(&args.server, client::agents::Cli::Agent(c)),
        Command::Queue(c) => client::agents::cli(&args.server, client::agents::Cli::Queue(c)),
        Command::Events(a) => client::agents::cli(&args.server, client::agents::Cli::Events(a)),
        Command::Workflow(c) => client::workflows::cli(&args.server, c),
        Command::Mcp(a) => client::mcp::run(a),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn serve_cmd(s: ServeArgs) -> anyhow::Result<()> {
    let mut sets = s.sets;
    if let Some(d) = s.data_dir {
        sets.push(format!("data_dir={}", d.display()));
    }
    if let Some(l) = s.listen {
        sets.push(format!("listen={l}"));
    }
    if let Some(d) = &s.device {
        sets.push(format!("device={d}"));
    }
    if s.insecure {
        sets.push("security.insecure=true".into());
    }
    if let Some(c) = &s.cluster {
        sets.push(format!("cluster.urls={c}"));
    }
    if let Some(n) = &s.node_id {
        sets.push(format!("cluster.node_id={n}"));
        sets.push(format!("edge.node_id={n}"));
    }
    if s.edge {
        sets.push("edge.role=edge".into());
    }
    if let Some(h) = &s.hub {
        sets.push(format!("edge.hub={h}"));
    }
    if let Some(u) = &s.edge_hub {
        sets.push("edge.role=hub".into());
        sets.push(format!("edge.nats_url={u}"));
    }
    let cfg = config::Config::load(s.config.as_deref(), std::env::vars(), &sets)?;
    if s.print_config {
        print!("{}", cfg.to_toml());
        return Ok(());
    }
    serve::run(cfg)
}
