//! Rolling update with zero failed requests (issue 24): the Kubernetes operator's
//! drain-and-replace procedure (`agentdb_operator::rollout::replace_node`, the steps its
//! controller takes across reconciles) run against real AgentDB nodes on loopback — 3
//! NATS servers, 3 nodes started as the operator's StatefulSet starts them (API keys with
//! the operator's bootstrap key file, a shutdown delay, /readyz) — under a steady load of
//! writes, gets and searches. Clients reach the nodes the way a Kubernetes Service
//! reaches pods: only through nodes whose /readyz says ready, re-checked every 100 ms.
//! Every node is replaced by a new process (same data directory, same node id) in turn.
//! No request may fail — the SDK's retries are off — and every acknowledged write must
//! be readable through every node afterwards.

mod common;

use agentdb_operator::rollout::{self, GrpcNodes, Nodes};
use agentdb_proto::v1;
use common::nats::{node_with, Nats};
use common::{item, Server};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

const KEY: &str = "adb_rolloutkey01_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN";

/// A node as the "Service" sees it.
#[derive(Clone)]
struct Endpoint {
    url: String,
    http: String,
    ready: bool,
}

type Endpoints = Arc<RwLock<BTreeMap<String, Endpoint>>>;

/// A node as the operator's StatefulSet starts it.
fn start_node(dir: &std::path::Path, nats_urls: &[String], id: &str, key_file: &str) -> Server {
    node_with(
        &dir.join(id),
        nats_urls,
        id,
        &[
            "--set",
            "http_listen=127.0.0.1:0",
            "--set",
            "shutdown_delay_ms=1500",
            "--set",
            "security.auth=api_key",
            "--set",
            &format!("security.bootstrap_key_file={key_file}"),
        ],
    )
}

fn endpoint(s: &Server) -> Endpoint {
    Endpoint { url: s.url(), http: s.http_addr.clone().expect("http listener"), ready: false }
}

/// A readiness probe: 200 from `/readyz`. Any failure — refused, reset by a node that is
/// shutting down (CI saw this: the probe must not panic), timed out — is "not ready", as a
/// kubelet probe treats it.
fn readyz(http: &str) -> bool {
    let probe = common::try_http_raw(
        http,
        "GET",
        "/readyz",
        None,
        &[],
        Some(Duration::from_millis(300)),
        Duration::from_secs(2),
    );
    probe.is_ok_and(|(status, _, _)| status == 200)
}

async fn client(url: &str) -> agentdb_client::Client {
    let mut cfg = agentdb_client::Config::new(url).with_credential(KEY);
    // No retries: every failed attempt counts.
    cfg.retry = agentdb_client::RetryPolicy::none();
    cfg.timeout = Some(Duration::from_secs(10));
    agentdb_client::Client::connect(cfg).await.expect("connect")
}

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failed: AtomicU64,
    errors: Mutex<Vec<String>>,
    acked: Mutex<Vec<String>>,
}

/// One load worker: writes (kind 0), gets of acknowledged ids (1) or searches (2), each
/// request through the next ready endpoint.
async fn worker(kind: usize, id: usize, eps: Endpoints, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    let mut clients: BTreeMap<String, agentdb_client::Client> = BTreeMap::new();
    let mut turn = id;
    let mut seq = 0usize;
    while !stop.load(Ordering::SeqCst) {
        let ready: Vec<String> = eps.read().unwrap().values().filter(|e| e.ready).map(|e| e.url.clone()).collect();
        if ready.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        turn += 1;
        let url = ready[turn % ready.len()].clone();
        if !clients.contains_key(&url) {
            clients.insert(url.clone(), client(&url).await);
        }
        let c = &clients[&url];
        let r: Result<(), String> = match kind {
            0 => {
                seq += 1;
                let doc = format!("w{id}-{seq}");
                let v = common::rand_vec((id * 1_000_000 + seq) as u64, 16);
                match c.upsert("docs", vec![item(&doc, v, serde_json::json!({ "w": id }))]).await {
                    Ok(_) => {
                        tally.acked.lock().unwrap().push(doc);
                        Ok(())
                    }
                    Err(e) => Err(format!("upsert {doc} via {url}: {e}")),
                }
            }
            1 => {
                let doc = {
                    let a = tally.acked.lock().unwrap();
                    a.get(turn % a.len().max(1)).cloned()
                };
                match doc {
                    Some(d) => c
                        .get("docs", std::slice::from_ref(&d), false)
                        .await
                        .map(|_| ())
                        .map_err(|e| format!("get {d} via {url}: {e}")),
                    None => Ok(()),
                }
            }
            _ => {
                let req = v1::SearchRequest {
                    collection: "docs".into(),
                    vector: Some(v1::Vector { values: common::rand_vec(turn as u64, 16), ..Default::default() }),
                    top_k: 5,
                    ..Default::default()
                };
                c.search(req).await.map(|_| ()).map_err(|e| format!("search via {url}: {e}"))
            }
        };
        match r {
            Ok(()) => tally.ok.fetch_add(1, Ordering::Relaxed),
            Err(e) => {
                tally.errors.lock().unwrap().push(e);
                tally.failed.fetch_add(1, Ordering::Relaxed)
            }
        };
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rolling_replacement_of_every_node_under_load_fails_no_request() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("admin-key");
    std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
    let key_file = key_file.display().to_string();
    let nats = Nats::start(dir.path(), 3);
    let ids: Vec<String> = (0..3).map(|i| format!("agentdb-{i}")).collect();
    let mut servers: BTreeMap<String, Server> = BTreeMap::new();
    for id in &ids {
        servers.insert(id.clone(), start_node(dir.path(), &nats.urls, id, &key_file));
    }
    let first = servers[&ids[0]].url();
    // The operator's bootstrap key is imported by every node: an admin key everywhere.
    let admin = client(&first).await;
    admin
        .create_collection(v1::CreateCollectionRequest {
            name: "docs".into(),
            spaces: vec![common::space("default", 16, v1::Metric::L2, "HNSW16")],
            shards: 3,
            replicas: 2,
            ..Default::default()
        })
        .await
        .expect("create a sharded collection with the bootstrap key");
    // Some data before the load.
    let seed: Vec<v1::Item> = (0..300)
        .map(|i| item(&format!("seed-{i}"), common::rand_vec(i, 16), serde_json::json!({ "seed": true })))
        .collect();
    admin.upsert("docs", seed).await.expect("seed");

    // The Service: endpoints and a readiness poller (100 ms, like an endpoints controller
    // reading kubelet probes).
    let eps: Endpoints = Arc::new(RwLock::new(servers.iter().map(|(id, s)| (id.clone(), endpoint(s))).collect()));
    let stop = Arc::new(AtomicBool::new(false));
    let poller = {
        let (eps, stop) = (eps.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let snapshot: Vec<(String, String)> =
                    eps.read().unwrap().iter().map(|(k, e)| (k.clone(), e.http.clone())).collect();
                for (id, http) in snapshot {
                    let r = readyz(&http);
                    if let Some(e) = eps.write().unwrap().get_mut(&id) {
                        if e.http == http {
                            e.ready = r;
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let t = Instant::now();
    while eps.read().unwrap().values().any(|e| !e.ready) {
        assert!(t.elapsed() < Duration::from_secs(30), "every node ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Steady load: 2 writers, 1 getter, 1 searcher.
    let tally = Arc::new(Tally::default());
    let load_stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for (kind, id) in [(0, 0), (0, 1), (1, 2), (2, 3)] {
        workers.push(tokio::spawn(worker(kind, id, eps.clone(), load_stop.clone(), tally.clone())));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Replace every node, highest ordinal first, as the operator does.
    let servers = Arc::new(Mutex::new(servers));
    for id in ids.iter().rev() {
        let other = ids.iter().find(|o| *o != id).unwrap();
        let via = eps.read().unwrap()[other].url.clone();
        let nodes = GrpcNodes::new(&via, KEY);
        let before = tally.ok.load(Ordering::Relaxed);
        let t = Instant::now();
        let (servers2, eps2, dir2, nats_urls, key_file2, id2) =
            (servers.clone(), eps.clone(), dir.path().to_path_buf(), nats.urls.clone(), key_file.clone(), id.clone());
        let stop_and_start = move || async move {
            let old = servers2.lock().unwrap().remove(&id2).unwrap();
            // The pod is deleted: SIGTERM; the server reports not ready, serves on for its
            // shutdown delay, then finishes what is in flight.
            let status = tokio::task::spawn_blocking(move || {
                let mut old = old;
                old.terminate()
            })
            .await
            .unwrap();
            anyhow::ensure!(status.success(), "{id2} exited with {status}");
            // The StatefulSet starts the replacement: same volume, same node id.
            let (d, u, k, i) = (dir2.clone(), nats_urls.clone(), key_file2.clone(), id2.clone());
            let new = tokio::task::spawn_blocking(move || start_node(&d, &u, &i, &k)).await.unwrap();
            eps2.write().unwrap().insert(id2.clone(), endpoint(&new));
            servers2.lock().unwrap().insert(id2.clone(), new);
            Ok(())
        };
        let (eps3, id3) = (eps.clone(), id.clone());
        let ready = move || {
            let http = eps3.read().unwrap().get(&id3).map(|e| e.http.clone());
            async move {
                match http {
                    Some(h) => tokio::task::spawn_blocking(move || readyz(&h)).await.unwrap_or(false),
                    None => false,
                }
            }
        };
        rollout::replace_node(&nodes, id, &ids, Duration::from_secs(120), stop_and_start, ready)
            .await
            .unwrap_or_else(|e| panic!("replacing {id}: {e}"));
        let served = tally.ok.load(Ordering::Relaxed) - before;
        eprintln!("replaced {id} in {:.1} s; {served} requests served meanwhile", t.elapsed().as_secs_f64());
        assert!(served > 0, "the load kept running while {id} was replaced");
        let v = nodes.view().await.unwrap();
        assert!(v.healthy(&ids), "{v:?}");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    load_stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.await.unwrap();
    }
    let (ok, failed) = (tally.ok.load(Ordering::Relaxed), tally.failed.load(Ordering::Relaxed));
    let errors = tally.errors.lock().unwrap().clone();
    eprintln!("load: {ok} requests succeeded, {failed} failed");
    assert_eq!(
        failed,
        0,
        "no request may fail during the rolling replacement; first errors: {:#?}",
        &errors[..errors.len().min(10)]
    );
    assert!(ok > 200, "a steady load ran: {ok} requests");

    // Every acknowledged write (and the seed) is readable through every node. Reads
    // without a consistency token may land on a replica still applying the last writes
    // (one moved back onto a replaced node catches up after the load stops), so each
    // check waits for convergence, bounded: a write lost for good fails it.
    let mut acked = tally.acked.lock().unwrap().clone();
    assert!(acked.len() > 50, "writes were acknowledged: {}", acked.len());
    let written = acked.len();
    acked.extend((0..300).map(|i| format!("seed-{i}")));
    let urls: Vec<String> = eps.read().unwrap().values().map(|e| e.url.clone()).collect();
    for url in &urls {
        let c = client(url).await;
        let t = Instant::now();
        loop {
            let mut got = std::collections::BTreeSet::new();
            for chunk in acked.chunks(200) {
                got.extend(c.get("docs", chunk, false).await.expect("get").into_iter().map(|i| i.id));
            }
            if got.len() == acked.len() {
                break;
            }
            if t.elapsed() > Duration::from_secs(30) {
                let missing: Vec<&String> = acked.iter().filter(|a| !got.contains(*a)).take(10).collect();
                let status = std::process::Command::new(common::BIN)
                    .args(["cluster", "status", "--json"])
                    .env("AGENTDB_URL", url)
                    .env("AGENTDB_API_KEY", KEY)
                    .output()
                    .unwrap();
                panic!(
                    "{url}: {} of {} acknowledged writes readable; missing {missing:?}\ncluster status: {}",
                    got.len(),
                    acked.len(),
                    String::from_utf8_lossy(&status.stdout)
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let t = Instant::now();
        loop {
            let n = c.count("docs", "").await.expect("count");
            if n == acked.len() as u64 {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "{url}: count {n}, expected every write and the seed once ({written} + 300)"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    stop.store(true, Ordering::SeqCst);
    poller.join().unwrap();
}
