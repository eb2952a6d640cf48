//! `agentdb bench agents`: the orchestration layer at scale against a running server.
//! Registers N agents (no memory collections: the idle cost of the registry itself),
//! then M agents with memory collections, then holds S event subscriptions open across
//! many connections and publishes events to all of them. Reports registration rates,
//! the server's resident memory (from `Server/Status`) after each step and the
//! per-agent / per-subscription increments, and delivery latency to every subscriber.

use crate::client::{connect, status_err};
use agentdb_proto::v1;
use anyhow::Result;
use clap::Args;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Args, Clone)]
pub struct AgentsBench {
    /// Agents registered without memory collections.
    #[arg(long, default_value_t = 100_000)]
    pub agents: usize,
    /// Agents registered with a memory collection (one per agent).
    #[arg(long, default_value_t = 1_000)]
    pub memory_agents: usize,
    /// Event subscriptions held at once.
    #[arg(long, default_value_t = 10_000)]
    pub subscriptions: usize,
    /// Subscriptions per connection (HTTP/2 streams on one channel).
    #[arg(long, default_value_t = 100)]
    pub per_connection: usize,
    /// Concurrent registration requests.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Events published while the subscriptions are held.
    #[arg(long, default_value_t = 20)]
    pub events: usize,
    /// Name prefix of the agents (they are retired afterwards unless --keep).
    #[arg(long, default_value = "bench-agent")]
    pub prefix: String,
    #[arg(long)]
    pub keep: bool,
    #[arg(long)]
    pub json: bool,
}

async fn rss(server: &str) -> Result<u64> {
    let mut c = v1::server_client::ServerClient::new(connect(server).await?);
    Ok(c.status(v1::StatusRequest::default()).await.map_err(status_err)?.into_inner().rss_bytes)
}

async fn register(server: &str, b: &AgentsBench, names: Vec<String>, memory: bool) -> Result<f64> {
    let ch = connect(server).await?;
    let next = Arc::new(AtomicUsize::new(0));
    let names = Arc::new(names);
    let t = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..b.concurrency.max(1) {
        let (ch, next, names) = (ch.clone(), next.clone(), names.clone());
        tasks.spawn(async move {
            let mut a = v1::agents_client::AgentsClient::new(ch);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(name) = names.get(i) else { return Ok::<(), anyhow::Error>(()) };
                a.register(v1::RegisterAgentRequest {
                    card: Some(v1::AgentCard {
                        name: name.clone(),
                        description: "benchmark agent".into(),
                        version: "1".into(),
                        skills: vec![],
                        capabilities: vec!["bench".into()],
                        endpoint: String::new(),
                    }),
                    heartbeat_timeout_ms: 0,
                    memory_spaces: vec![],
                    no_memory: !memory,
                })
                .await
                .map_err(status_err)?;
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(names.len() as f64 / t.elapsed().as_secs_f64())
}

pub async fn agents_bench(server: &str, b: AgentsBench) -> Result<()> {
    let rss0 = rss(server).await?;
    let plain: Vec<String> = (0..b.agents).map(|i| format!("{}-{i}", b.prefix)).collect();
    let with_mem: Vec<String> = (0..b.memory_agents).map(|i| format!("{}-mem-{i}", b.prefix)).collect();
    eprintln!("registering {} agents without memory collections", plain.len());
    let rate_plain = register(server, &b, plain.clone(), false).await?;
    let rss1 = rss(server).await?;
    eprintln!("registering {} agents with memory collections", with_mem.len());
    let rate_mem = if with_mem.is_empty() { 0.0 } else { register(server, &b, with_mem.clone(), true).await? };
    let rss2 = rss(server).await?;

    // Listing the registry (one call, every agent).
    let t = Instant::now();
    let listed = v1::agents_client::AgentsClient::new(connect(server).await?)
        .max_decoding_message_size(256 << 20)
        .list(v1::ListAgentsRequest { state: String::new() })
        .await
        .map_err(status_err)?
        .into_inner()
        .agents
        .len();
    let list_ms = t.elapsed().as_secs_f64() * 1e3;

    // Subscriptions: S streams over S / per_connection connections, all on `workflow`.
    eprintln!("opening {} subscriptions", b.subscriptions);
    let received = Arc::new(AtomicUsize::new(0));
    let last_seen = Arc::new(parking_lot::Mutex::new(Vec::<Instant>::new()));
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<Result<()>>(b.subscriptions.max(1));
    let mut subs = tokio::task::JoinSet::new();
    let conns = b.subscriptions.div_ceil(b.per_connection.max(1));
    let t_sub = Instant::now();
    let mut opened = 0;
    for c in 0..conns {
        let ch = connect(server).await?;
        for _ in 0..b.per_connection.min(b.subscriptions - c * b.per_connection) {
            let (ch, received, last_seen, ready_tx, want) =
                (ch.clone(), received.clone(), last_seen.clone(), ready_tx.clone(), b.events);
            opened += 1;
            subs.spawn(async move {
                let mut e = v1::events_client::EventsClient::new(ch);
                let stream =
                    e.subscribe(v1::SubscribeRequest { topics: vec!["workflow".into()], from_offset: None }).await;
                let mut stream = match stream {
                    Ok(s) => s.into_inner(),
                    Err(s) => {
                        let _ = ready_tx.send(Err(status_err(s))).await;
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(())).await;
                let mut got = 0;
                while got < want {
                    match stream.message().await {
                        Ok(Some(m)) => {
                            if matches!(m.msg, Some(v1::subscribe_response::Msg::Event(_))) {
                                got += 1;
                                received.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        _ => return,
                    }
                }
                last_seen.lock().push(Instant::now());
            });
        }
    }
    drop(ready_tx);
    for _ in 0..opened {
        match ready_rx.recv().await {
            Some(Ok(())) => {}
            Some(Err(e)) => anyhow::bail!("a subscription failed: {e}"),
            None => break,
        }
    }
    let sub_secs = t_sub.elapsed().as_secs_f64();
    // The server starts each stream's reader when the call returns; let them settle.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss3 = rss(server).await?;

    eprintln!("publishing {} events to {} subscribers", b.events, opened);
    let mut ev = v1::events_client::EventsClient::new(connect(server).await?);
    let t_pub = Instant::now();
    for i in 0..b.events {
        ev.publish(v1::PublishRequest {
            events: vec![v1::PublishEvent {
                topic: "workflow".into(),
                kind: "bench".into(),
                subject: format!("event-{i}"),
                data_json: "{}".into(),
            }],
        })
        .await
        .map_err(status_err)?;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while received.load(Ordering::Relaxed) < opened * b.events && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let delivered = received.load(Ordering::Relaxed);
    let mut done: Vec<f64> = last_seen.lock().iter().map(|t| t.duration_since(t_pub).as_secs_f64() * 1e3).collect();
    done.sort_by(f64::total_cmp);
    let pct = |p: f64| done.get(((done.len() as f64 * p) as usize).min(done.len().saturating_sub(1))).copied();
    subs.abort_all();

    if !b.keep {
        eprintln!("retiring the benchmark agents");
        let mut a = v1::agents_client::AgentsClient::new(connect(server).await?);
        for name in plain.iter().chain(&with_mem) {
            let _ = a
                .set_state(v1::SetAgentStateRequest {
                    name: name.clone(),
                    state: "retired".into(),
                    reason: "benchmark finished".into(),
                })
                .await;
        }
    }
    let per = |a: u64, b: u64, n: usize| if n == 0 { 0.0 } else { b.saturating_sub(a) as f64 / n as f64 };
    let out = serde_json::json!({
        "agents": b.agents, "memory_agents": b.memory_agents, "subscriptions": opened, "connections": conns,
        "register_per_s": rate_plain, "register_with_memory_per_s": rate_mem,
        "rss_bytes": {"start": rss0, "after_agents": rss1, "after_memory_agents": rss2, "with_subscriptions": rss3},
        "bytes_per_idle_agent": per(rss0, rss1, b.agents),
        "bytes_per_agent_with_memory_collection": per(rss1, rss2, b.memory_agents),
        "bytes_per_subscription": per(rss2, rss3, opened),
        "list_agents": {"agents": listed, "ms": list_ms},
        "subscribe_seconds": sub_secs,
        "events": b.events, "delivered": delivered, "expected": opened * b.events,
        "all_delivered_ms": {"p50": pct(0.5), "p99": pct(0.99), "max": done.last()},
    });
    if b.json {
        println!("{out}");
    } else {
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    anyhow::ensure!(delivered == opened * b.events, "{delivered} of {} events delivered", opened * b.events);
    Ok(())
}
