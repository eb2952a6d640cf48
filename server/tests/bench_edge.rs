//! Edge-sync numbers for docs/PERFORMANCE.md (issue 25), through the real binary on
//! loopback: a hub (nats-server with a JetStream domain and a leaf-node listener, and a
//! hub AgentDB) and one edge whose leaf link runs through a relay the benchmark cuts.
//! For each vector encoding (f32, f16, i8) of 384-dimension items:
//!
//! - the baseline: 10,000 items written on the connected edge, and how long after the
//!   last acknowledgement the hub holds them all;
//! - the same 10,000 items changed while the edge is cut off, and how long after the link
//!   comes back the hub holds every change (the sync lag after reconnect);
//! - bytes per item: the change record as stored, and the leaf link's bytes on the wire
//!   (counted by the relay, both directions) per item, with the link's compression at
//!   its default (s2_auto, which stays off at loopback round-trip times) and forced on
//!   (s2_fast);
//!
//! and the idle resident memory of an edge (the AgentDB process and its leaf
//! nats-server) and the binary's size — of `EDGE_BENCH_BIN` when set (a lean build,
//! `make bench-edge` builds one). Ignored in `make test`; run with `make bench-edge`.

mod common;

use agentdb_proto::v1;
use common::edge::{hub_nats, Relay};
use common::{authed, item, space, Server};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const DIM: usize = 384;
const N: usize = 10_000;

fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

fn status(s: &Server) -> serde_json::Value {
    let (code, _, body) = common::http(s.http_addr.as_ref().unwrap(), "/v1/edge/status", None, &[]);
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

async fn write(s: &Server, round: u32) -> Instant {
    let mut c = v1::items_client::ItemsClient::new(authed(&s.url(), None).await);
    for start in (0..N).step_by(500) {
        let items = (start..start + 500)
            .map(|i| {
                item(
                    &format!("item-{i}"),
                    common::rand_vec((round as u64) << 32 | i as u64, DIM),
                    serde_json::json!({"round": round, "store_id": 17, "title": format!("item {i} round {round}")}),
                )
            })
            .collect();
        c.upsert(v1::UpsertRequest { collection: "items".into(), items }).await.unwrap();
    }
    Instant::now()
}

/// Wait until the hub holds round `round` of every item (the last one written is
/// applied last: records are applied in stream order).
async fn hub_has(hub: &Server, round: u32) -> Instant {
    let mut c = v1::items_client::ItemsClient::new(authed(&hub.url(), None).await);
    let t = Instant::now();
    loop {
        let r = c
            .get(v1::GetRequest {
                collection: "items".into(),
                ids: vec![format!("item-{}", N - 1)],
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        if let Some(it) = r.items.first() {
            let p: serde_json::Value = serde_json::from_str(&it.payload_json).unwrap();
            if p["round"] == round {
                let n = c
                    .count(v1::CountRequest {
                        collection: "items".into(),
                        filter: format!("round = {round}"),
                        ..Default::default()
                    })
                    .await
                    .unwrap()
                    .into_inner()
                    .count;
                if n as usize == N {
                    return Instant::now();
                }
            }
        }
        assert!(t.elapsed() < Duration::from_secs(600), "the hub did not catch up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn create(s: &Server) {
    let (mut cols, _) = s.clients().await;
    cols.create(v1::CreateCollectionRequest {
        name: "items".into(),
        spaces: vec![space("", DIM as u32, v1::Metric::Cosine, "")],
        ..Default::default()
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "benchmark: make bench-edge"]
async fn edge_sync_numbers() {
    let mut report = String::from(
        "| vector encoding | leaf-link compression | record bytes/item | leaf-link bytes/item (online) | leaf-link bytes/item (after reconnect) | online: hub has all, after last ack | after reconnect: hub has all |\n|---|---|---|---|---|---|---|\n",
    );
    for (enc, compression) in
        [("f32", "s2_auto"), ("f16", "s2_auto"), ("i8", "s2_auto"), ("f32", "s2_fast"), ("i8", "s2_fast")]
    {
        let dir = tempfile::tempdir().unwrap();
        let (_nats, np, lp) = hub_nats(dir.path(), "compression: accept");
        let relay = Relay::start(lp);
        let sets = [
            "--set",
            "edge.collections=items",
            "--set",
            "http_listen=127.0.0.1:0",
            "--set",
            "edge.clock_interval_ms=500",
        ];
        let hub_url = format!("nats://127.0.0.1:{np}");
        let mut hub_args = vec!["--edge-hub", hub_url.as_str(), "--node-id", "hub"];
        hub_args.extend(sets);
        let hub = Server::start(&dir.path().join("hub"), &hub_args);
        let leaf = format!("nats-leaf://127.0.0.1:{}", relay.port);
        let enc_set = format!("edge.vector_encoding={enc}");
        let comp_set = format!("edge.compression={compression}");
        let mut edge_args = vec![
            "--edge",
            "--hub",
            leaf.as_str(),
            "--node-id",
            "store-17",
            "--set",
            enc_set.as_str(),
            "--set",
            comp_set.as_str(),
        ];
        edge_args.extend(sets);
        let edge = Server::start(&dir.path().join("edge"), &edge_args);
        create(&hub).await;
        create(&edge).await;
        while status(&edge)["hub_reachable"] != true {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Online baseline.
        let b0 = relay.bytes.load(Ordering::SeqCst);
        let acked = write(&edge, 1).await;
        let online = hub_has(&hub, 1).await - acked;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let online_bytes = (relay.bytes.load(Ordering::SeqCst) - b0) as f64 / N as f64;
        let st = status(&edge);
        let record = st["published_bytes"].as_f64().unwrap() / st["published"].as_f64().unwrap();
        // Cut off, every item changed, then the link back.
        relay.cut();
        while status(&edge)["hub_reachable"] != false {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        write(&edge, 2).await;
        let b1 = relay.bytes.load(Ordering::SeqCst);
        relay.restore();
        let back = Instant::now();
        let lag = hub_has(&hub, 2).await - back;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let after_bytes = (relay.bytes.load(Ordering::SeqCst) - b1) as f64 / N as f64;
        report.push_str(&format!(
            "| {enc} | {compression} | {record:.0} | {online_bytes:.0} | {after_bytes:.0} | {:.2} s | {:.2} s |\n",
            online.as_secs_f64(),
            lag.as_secs_f64()
        ));
        eprintln!("{enc} {compression}: done");
    }
    // Idle edge: the process and its leaf nats-server, nothing stored.
    let bin = std::env::var("EDGE_BENCH_BIN").unwrap_or_else(|_| common::BIN.to_string());
    let dir = tempfile::tempdir().unwrap();
    let (_nats, _np, lp) = hub_nats(dir.path(), "");
    let leaf = format!("nats-leaf://127.0.0.1:{lp}");
    let mut idle = Vec::new();
    // Models load on first use (models.preload = false), so an idle edge holds none; with
    // preload it holds the default text, image and speech models.
    for (label, preload) in [("idle, models on first use (default)", "false"), ("idle, models preloaded", "true")] {
        let pre = format!("models.preload={preload}");
        let args =
            ["--edge", "--hub", leaf.as_str(), "--node-id", "idle", "--set", "edge.collections=items", "--set", &pre];
        let edge = Server::start_bin(&bin, &dir.path().join(format!("edge-{}", idle.len())), &args);
        tokio::time::sleep(Duration::from_secs(5)).await;
        let pid = edge.child.id();
        let agentdb = rss_kib(pid);
        let nats: u64 = children(pid).into_iter().map(rss_kib).sum();
        idle.push(format!("| {label} | {:.0} MiB | {:.0} MiB |", agentdb as f64 / 1024.0, nats as f64 / 1024.0));
        drop(edge);
    }
    let size = std::fs::metadata(&bin).unwrap().len();
    let out = format!(
        "{report}\nIdle edge (`{bin}`, {:.1} MiB binary):\n\n| edge | agentdb RSS | leaf nats-server RSS |\n|---|---|---|\n{}\n",
        size as f64 / 1048576.0,
        idle.join("\n")
    );
    println!("{out}");
    if let Ok(p) = std::env::var("EDGE_BENCH_OUT") {
        std::fs::write(p, &out).unwrap();
    }
}
