//! Cluster mode through the real binary (issue 21): a 3-server NATS JetStream cluster and
//! 3 AgentDB nodes on loopback, each started by the test. A sharded, replicated
//! collection written through one node and read through the others gives the results of
//! a single-node reference on the same data; `kill -9` of a node loses no acknowledged
//! write, the others keep serving its shards, and it catches up when it comes back.

mod common;

use agentdb_proto::v1;
use common::nats::{free_port, node, node_on, Nats};
use common::{authed, item, Server};
use std::process::Command;
use std::time::{Duration, Instant};

/// The cluster tests run one at a time: each starts 3 NATS servers and up to 3 nodes, and
/// together on 2 cores they would starve each other's heartbeats and fetches.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn vec_for(i: usize) -> Vec<f32> {
    common::rand_vec(i as u64 * 7 + 1, 16)
}

async fn upsert(url: &str, range: std::ops::Range<usize>) -> String {
    let mut c = v1::items_client::ItemsClient::new(authed(url, None).await);
    let mut token = String::new();
    let ids: Vec<usize> = range.collect();
    for chunk in ids.chunks(100) {
        let items = chunk
            .iter()
            .map(|i| item(&format!("doc-{i}"), vec_for(*i), serde_json::json!({"n": i, "even": i % 2 == 0})))
            .collect();
        let r = c
            .upsert(v1::UpsertRequest { collection: "docs".into(), items })
            .await
            .expect("upsert acknowledged")
            .into_inner();
        assert_eq!(r.ids.len(), chunk.len());
        token = merge_tokens(&token, &r.consistency_token);
    }
    token
}

fn merge_tokens(a: &str, b: &str) -> String {
    let mut m = std::collections::BTreeMap::<u32, u64>::new();
    for part in a.split(',').chain(b.split(',')).filter(|p| !p.is_empty()) {
        let (s, q) = part.split_once(':').unwrap();
        let e = m.entry(s.parse().unwrap()).or_insert(0);
        *e = (*e).max(q.parse().unwrap());
    }
    m.iter().map(|(s, q)| format!("{s}:{q}")).collect::<Vec<_>>().join(",")
}

async fn search(
    url: &str,
    collection: &str,
    q: Vec<f32>,
    filter: &str,
    token: &str,
) -> Result<Vec<(String, f32)>, tonic::Status> {
    let mut c = v1::items_client::ItemsClient::new(authed(url, None).await);
    let r = c
        .search(v1::SearchRequest {
            collection: collection.into(),
            vector: Some(v1::Vector { values: q, ..Default::default() }),
            top_k: 10,
            filter: filter.into(),
            consistency_token: token.into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    Ok(r.hits.into_iter().map(|h| (h.id, h.score)).collect())
}

async fn count(url: &str, token: &str) -> Result<u64, tonic::Status> {
    count_stale(url, token, false).await
}

async fn count_stale(url: &str, token: &str, allow_stale: bool) -> Result<u64, tonic::Status> {
    let mut c = v1::items_client::ItemsClient::new(authed(url, None).await);
    let req = v1::CountRequest {
        collection: "docs".into(),
        consistency_token: token.into(),
        allow_stale,
        ..Default::default()
    };
    Ok(c.count(req).await?.into_inner().count)
}

fn same(a: &[(String, f32)], b: &[(String, f32)]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.0 == y.0 && (x.1 - y.1).abs() < 1e-4)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharded_replicated_collection_on_three_nodes_survives_kill_9() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(dir.path(), 3);
    let n1 = node(&dir.path().join("n1"), &nats, "n1");
    let n2 = node(&dir.path().join("n2"), &nats, "n2");
    let mut n3 = node(&dir.path().join("n3"), &nats, "n3");
    let urls = [n1.url(), n2.url(), n3.url()];

    // A sharded collection (3 shards x 2 replicas) created through node 1.
    n1.ok(&[
        "collection",
        "create",
        "docs",
        "--dim",
        "16",
        "--metric",
        "l2",
        "--index",
        "Flat",
        "--shards",
        "3",
        "--replicas",
        "2",
    ]);
    let list = String::from_utf8(n2.ok(&["collection", "list"])).unwrap();
    assert!(list.contains("docs"), "every node lists it: {list}");

    // The single-node reference: the same items in a plain collection.
    let reference = Server::start(&dir.path().join("ref"), &[]);
    reference.ok(&["collection", "create", "docs", "--dim", "16", "--metric", "l2", "--index", "Flat"]);
    upsert(&reference.url(), 0..600).await;

    // Written through node 1, read through every node with the write's token.
    let token = upsert(&urls[0], 0..600).await;
    assert_eq!(token.split(',').count(), 3, "a sequence per shard: {token}");
    for u in &urls {
        assert_eq!(count(u, &token).await.unwrap(), 600, "count through {u}");
    }
    for q in 0..12 {
        let query = common::rand_vec(10_000 + q, 16);
        let filter = if q % 3 == 0 { "even = true" } else { "" };
        let want = search(&reference.url(), "docs", query.clone(), filter, "").await.unwrap();
        for u in &urls {
            let got = search(u, "docs", query.clone(), filter, &token).await.unwrap();
            assert!(same(&got, &want), "query {q} through {u}:\n got {got:?}\nwant {want:?}");
        }
    }
    let mut items = v1::items_client::ItemsClient::new(authed(&urls[1], None).await);
    let got = items
        .get(v1::GetRequest {
            collection: "docs".into(),
            ids: vec!["doc-7".into(), "doc-404".into(), "nope".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.items.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), ["doc-7", "doc-404"]);

    // cluster status: three nodes alive, a leader, two replicas per shard.
    let status: serde_json::Value = serde_json::from_slice(&n2.ok(&["cluster", "status", "--json"])).unwrap();
    assert_eq!(status["nodes"].as_array().unwrap().len(), 3, "{status}");
    assert!(status["leader"].as_str().is_some_and(|l| !l.is_empty()), "{status}");
    for s in status["collections"][0]["shard_status"].as_array().unwrap() {
        assert_eq!(s["replicas"].as_array().unwrap().len(), 2, "{status}");
    }

    // kill -9 node 3: writes through node 1 stay acknowledged, reads through node 2 keep
    // working (after the failure is noticed) and see every acknowledged write.
    n3.kill9();
    let killed = Instant::now();
    let token2 = upsert(&urls[0], 600..800).await;
    let mut first_read = None;
    while killed.elapsed() < Duration::from_secs(30) {
        let ok = count(&urls[1], &token2).await.ok() == Some(800)
            && search(&urls[1], "docs", vec_for(5), "", &token2)
                .await
                .is_ok_and(|h| h.first().is_some_and(|h| h.0 == "doc-5"));
        if ok {
            first_read = Some(killed.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = first_read.expect("reads through node 2 recover after node 3 is killed");
    eprintln!("failover: reads complete {took:?} after kill -9 of a node");
    let want = search(&reference.url(), "docs", vec_for(3), "", "").await.unwrap();
    let got = search(&urls[1], "docs", vec_for(3), "", &token2).await.unwrap();
    assert_eq!(got[0].0, want[0].0);

    // Node 3 comes back with its data directory: it catches up and serves again.
    let mut n3 = node(&dir.path().join("n3"), &nats, "n3");
    let t = Instant::now();
    loop {
        if count(&n3.url(), &token2).await.ok() == Some(800) {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "node 3 did not catch up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Node 3 loses its disk and comes back under the same node id: its durable consumers
    // remember what it had applied, its data directory does not. It must replay its shards
    // from the streams' start, not trust those checkpoints. Node 1 is then killed, so the
    // shards it shared with node 3 are served by node 3's rebuilt replicas alone.
    n3.kill9();
    std::fs::remove_dir_all(dir.path().join("n3")).unwrap();
    let n3 = node(&dir.path().join("n3"), &nats, "n3");
    let token3 = upsert(&urls[1], 800..850).await;
    let token3 = merge_tokens(&token2, &token3);
    let t = Instant::now();
    while !n3.log_text().contains("replaying the stream from its start") {
        assert!(t.elapsed() < Duration::from_secs(30), "node 3 did not notice its lost replicas:\n{}", n3.log_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut n1 = n1;
    n1.kill9();
    let t = Instant::now();
    for u in [n2.url(), n3.url()] {
        loop {
            let ok = count(&u, &token3).await.ok() == Some(850)
                && search(&u, "docs", vec_for(5), "", &token3)
                    .await
                    .is_ok_and(|h| h.first().is_some_and(|h| h.0 == "doc-5"));
            if ok {
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(60), "reads through {u} after node 3 rebuilt its replicas");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    drop(n2);
}

/// kill -9 of one NATS server of three while writes go on loses no acknowledged write;
/// a node cut off from NATS refuses writes and (unless the request allows stale reads)
/// reads, while the rest of the cluster goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_server_loss_and_a_node_cut_off_from_nats() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut nats = Nats::start(dir.path(), 3);
    // n1 knows every NATS server; n2 only the third one.
    let n1 = node(&dir.path().join("n1"), &nats, "n1");
    let n2 = node_on(&dir.path().join("n2"), &nats.urls[2..], "n2");
    n1.ok(&[
        "collection",
        "create",
        "docs",
        "--dim",
        "16",
        "--metric",
        "l2",
        "--index",
        "Flat",
        "--shards",
        "2",
        "--replicas",
        "2",
    ]);

    // Writes through n1 in small batches; NATS server 0 is killed in the middle. Some
    // writes may fail while the client reconnects: only acknowledged ones count.
    let mut c = v1::items_client::ItemsClient::new(authed(&n1.url(), None).await);
    let (mut acked, mut failed, mut token) = (Vec::new(), 0, String::new());
    for batch in 0..40usize {
        if batch == 15 {
            nats.kill9(0);
        }
        let ids: Vec<usize> = (batch * 10..batch * 10 + 10).collect();
        // A client retries a refused write (UNAVAILABLE while its node reconnects).
        let t = Instant::now();
        loop {
            let items =
                ids.iter().map(|i| item(&format!("doc-{i}"), vec_for(*i), serde_json::json!({"n": i}))).collect();
            match c.upsert(v1::UpsertRequest { collection: "docs".into(), items }).await {
                Ok(r) => {
                    token = merge_tokens(&token, &r.into_inner().consistency_token);
                    acked.extend(ids);
                    break;
                }
                Err(e) => {
                    assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
                    assert!(t.elapsed() < Duration::from_secs(20), "writes did not resume: {e:?}");
                    failed += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
    eprintln!("NATS server killed: {} batches acknowledged, {failed} attempts refused meanwhile", acked.len() / 10);
    assert_eq!(acked.len(), 400, "writes go on without one NATS server");

    // Every acknowledged write is there (reads retried while a shard's stream moves its
    // leadership off the dead server: UNAVAILABLE is the retryable answer).
    let mut got = Vec::new();
    let t = Instant::now();
    for chunk in acked.chunks(100) {
        let ids: Vec<String> = chunk.iter().map(|i| format!("doc-{i}")).collect();
        let r = loop {
            let req = v1::GetRequest {
                collection: "docs".into(),
                ids: ids.clone(),
                consistency_token: token.clone(),
                ..Default::default()
            };
            match c.get(req).await {
                Ok(r) => break r,
                Err(e) if e.code() == tonic::Code::Unavailable && t.elapsed() < Duration::from_secs(60) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("get: {e:?}"),
            }
        };
        got.extend(r.into_inner().items.into_iter().map(|i| i.id));
    }
    assert_eq!(got.len(), acked.len(), "every acknowledged write is there");

    // n2 has caught up (its own replicas hold every shard: R2 on two nodes).
    let t = Instant::now();
    while count(&n2.url(), &token).await.ok() != Some(acked.len() as u64) {
        assert!(t.elapsed() < Duration::from_secs(30), "n2 did not catch up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Server 0 comes back; server 2 (n2's only one) dies: n2 is cut off.
    nats.restart(0);
    nats.kill9(2);
    let t = Instant::now();
    let mut n2c = v1::items_client::ItemsClient::new(authed(&n2.url(), None).await);
    let refused = loop {
        let items = vec![item("late", vec_for(1), serde_json::json!({}))];
        match n2c.upsert(v1::UpsertRequest { collection: "docs".into(), items }).await {
            Err(e) if e.code() == tonic::Code::Unavailable => break e,
            other => {
                assert!(t.elapsed() < Duration::from_secs(15), "a cut-off node still takes writes: {other:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert!(refused.message().contains("NATS"), "{refused:?}");
    // Refused before anything was sent: the hint tells clients a retry is safe.
    assert_eq!(refused.metadata().get("retry-after-ms").and_then(|v| v.to_str().ok()), Some("500"), "{refused:?}");
    let e = count_stale(&n2.url(), "", false).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
    assert!(e.message().contains("stale"), "{e:?}");
    // Allowing stale reads, it answers from its own replicas (it holds both shards).
    let n = count_stale(&n2.url(), "", true).await.unwrap();
    assert_eq!(n, acked.len() as u64, "what it had applied before it was cut off");
    // The rest of the cluster goes on: n1 (on servers 0 and 1) writes and reads.
    // (n1 may have been on the server that died: it reconnects, and a client retries.)
    let t = Instant::now();
    let r = loop {
        let items = vec![item("after", vec_for(2), serde_json::json!({}))];
        match c.upsert(v1::UpsertRequest { collection: "docs".into(), items }).await {
            Ok(r) => break r,
            Err(e) if e.code() == tonic::Code::Unavailable && t.elapsed() < Duration::from_secs(60) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("writes through a connected node go on: {e:?}"),
        }
    };
    eprintln!("writes through n1 acknowledged {:?} after NATS server 2 died", t.elapsed());
    let tok = merge_tokens(&token, &r.into_inner().consistency_token);
    // (While JetStream moves the leadership of streams the dead server led, a read that
    // must see this write can be UNAVAILABLE for a moment: a client retries.)
    let t = Instant::now();
    let n = loop {
        match count(&n1.url(), &tok).await {
            Ok(n) => break n,
            Err(e) if e.code() == tonic::Code::Unavailable && t.elapsed() < Duration::from_secs(60) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!(
                "reads through a connected node: {e:?}\nn1 status: {}\nn1 log (cluster lines):\n{}",
                String::from_utf8_lossy(&n1.cli(&["cluster", "status"]).stdout),
                n1.log_text().lines().filter(|l| l.contains("cluster")).collect::<Vec<_>>().join("\n")
            ),
        }
    };
    eprintln!("reads with the latest token answer {:?} after NATS server 2 died", t.elapsed());
    assert_eq!(n, acked.len() as u64 + 1);

    // The CLI retries UNAVAILABLE: a count through the cut-off n2, started now, answers
    // once n2's NATS server is back.
    let u2 = n2.url();
    let cli = std::thread::spawn(move || {
        Command::new(common::BIN).args(["count", "docs"]).env("AGENTDB_URL", u2).output().unwrap()
    });
    std::thread::sleep(Duration::from_secs(2));
    nats.restart(2);
    let out = cli.join().unwrap();
    assert!(out.status.success(), "the CLI gave up: {}", String::from_utf8_lossy(&out.stderr));
    let n: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert!(n >= acked.len() as u64, "{n}");
}

/// Rebalancing (issue 21, point 5): a node that joins takes over replicas, and a drained
/// node hands its replicas off — each moved replica catches up before the switch — while
/// a reader and a writer run the whole time without one failed request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_move_on_join_and_drain_without_failed_requests() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(dir.path(), 3);
    let n1 = node(&dir.path().join("n1"), &nats, "n1");
    let n2 = node(&dir.path().join("n2"), &nats, "n2");
    n1.ok(&[
        "collection",
        "create",
        "docs",
        "--dim",
        "16",
        "--metric",
        "l2",
        "--index",
        "Flat",
        "--shards",
        "4",
        "--replicas",
        "1",
    ]);
    let token = upsert(&n1.url(), 0..400).await;
    assert_eq!(count(&n2.url(), &token).await.unwrap(), 400);

    // A reader through n2 and a writer through n1, until told to stop.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (s1, u2) = (stop.clone(), n2.url());
    let reader = tokio::spawn(async move {
        let (mut reads, mut errors) = (0u64, Vec::new());
        while !s1.load(std::sync::atomic::Ordering::SeqCst) {
            match count(&u2, "").await {
                Ok(n) if n >= 400 => {}
                Ok(n) => errors.push(format!("count {n} < 400")),
                Err(e) => errors.push(format!("count: {e:?}")),
            }
            match search(&u2, "docs", vec_for(7), "", "").await {
                Ok(h) if h.first().is_some_and(|h| h.0 == "doc-7") => {}
                other => errors.push(format!("search: {other:?}")),
            }
            reads += 2;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        (reads, errors)
    });
    let (s2, u1) = (stop.clone(), n1.url());
    let writer = tokio::spawn(async move {
        let (mut next, mut token) = (400usize, String::new());
        while !s2.load(std::sync::atomic::Ordering::SeqCst) && next < 1000 {
            token = merge_tokens(&token, &upsert(&u1, next..next + 10).await);
            next += 10;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        (next, token)
    });

    let replicas = |s: &serde_json::Value, node: &str| -> u64 {
        s["nodes"].as_array().unwrap().iter().find(|n| n["id"] == node).map_or(0, |n| n["replicas"].as_u64().unwrap())
    };
    let settled = |s: &serde_json::Value| {
        s["collections"][0]["shard_status"]
            .as_array()
            .unwrap()
            .iter()
            .all(|sh| sh["replicas"].as_array().unwrap().len() == 1)
    };
    let wait_for = |what: &str, pred: &dyn Fn(&serde_json::Value) -> bool| {
        let t = Instant::now();
        loop {
            let s: serde_json::Value = serde_json::from_slice(&n2.ok(&["cluster", "status", "--json"])).unwrap();
            if pred(&s) {
                return t.elapsed();
            }
            assert!(t.elapsed() < Duration::from_secs(60), "{what}: {s}");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    // n3 joins: replicas move onto it.
    let n3 = node(&dir.path().join("n3"), &nats, "n3");
    let took = wait_for("n3 takes replicas", &|s| replicas(s, "n3") >= 1 && settled(s));
    eprintln!("rebalance on join: n3 holds replicas {took:?} after it started");
    // n1 is drained: its replicas move off.
    n2.ok(&["cluster", "drain", "n1"]);
    let took = wait_for("n1 drained", &|s| replicas(s, "n1") == 0 && settled(s));
    eprintln!("drain: n1 holds no replica {took:?} after the drain");

    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (reads, errors) = reader.await.unwrap();
    let (written, token) = writer.await.unwrap();
    eprintln!("{reads} reads and {} writes during the moves", written - 400);
    assert!(errors.is_empty(), "{} failed reads of {reads}: {:?}", errors.len(), &errors[..errors.len().min(5)]);
    assert!(reads > 20, "{reads}");
    assert_eq!(count(&n3.url(), &token).await.unwrap(), written as u64);
    drop(n1);
}

/// A sharded multimodal collection: files ingested through one node (embedded there,
/// routed to the shards), then text, keyword, hybrid, image and filtered queries through
/// another answer exactly as a single node with the same files does — same sources, same
/// order, same fused scores (keyword scores with cluster-wide BM25 statistics). Scroll
/// pages through the shards in id order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multimodal_sharded_collection_ingests_and_answers_like_a_single_node() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(dir.path(), 3);
    // n1 with its HTTP listener: the kept files are fetched through it.
    let n1 = common::nats::node_with(&dir.path().join("n1"), &nats.urls, "n1", &["--set", "http_listen=127.0.0.1:0"]);
    let n2 = node(&dir.path().join("n2"), &nats, "n2");
    let reference = Server::start(&dir.path().join("ref"), &[]);
    n1.ok(&["collection", "create", "media", "--multimodal", "--shards", "3", "--replicas", "2"]);
    reference.ok(&["collection", "create", "media", "--multimodal"]);

    // A small mixed folder: photos and texts.
    let media = dir.path().join("media");
    std::fs::create_dir_all(&media).unwrap();
    for p in ["chelsea.png", "coffee.png", "horse.png", "rocket.jpg", "astronaut.png", "camera.png"] {
        std::fs::copy(common::photos().join(p), media.join(p)).unwrap();
    }
    let texts = [
        ("bread.txt", "Sourdough bread needs a starter, flour, water and salt; bake it in a hot oven."),
        ("train.txt", "The airport train leaves from platform four every twenty minutes."),
        ("invoice.txt", "Invoice AX-4471 for the plumber was paid on the third of May."),
        ("moon.txt", "The Moon orbits the Earth once every 27 days and shows phases."),
    ];
    for (name, body) in texts {
        std::fs::write(media.join(name), body).unwrap();
    }
    let ingest = |s: &Server| -> serde_json::Value {
        serde_json::from_slice(&s.ok(&["ingest", "media", media.to_str().unwrap(), "--json"])).unwrap()
    };
    let (through_n2, on_ref) = (ingest(&n2), ingest(&reference));
    assert_eq!(through_n2["ingested"], 10, "{through_n2}");
    assert_eq!(on_ref["ingested"], 10, "{on_ref}");
    // Ingesting again is a no-op on the cluster too (the items are found on their shards).
    let again = ingest(&n2);
    assert_eq!(again["skipped"], 10, "{again}");

    // Every replica has applied the writes (reads through n1 see them all).
    let mut c1 = v1::items_client::ItemsClient::new(authed(&n1.url(), None).await);
    let mut cr = v1::items_client::ItemsClient::new(authed(&reference.url(), None).await);
    let want = cr.count(v1::CountRequest { collection: "media".into(), ..Default::default() }).await.unwrap();
    let want = want.into_inner().count;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n = c1.count(v1::CountRequest { collection: "media".into(), ..Default::default() }).await.unwrap();
        if n.into_inner().count == want {
            break;
        }
        assert!(Instant::now() < deadline, "the shards did not apply the ingested items");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The originals ingested through n2 are kept in the cluster's object store: n1 serves
    // them (GET /v1/collections/media/media/SHA), byte for byte.
    let http = n1.http_addr.clone().expect("n1's HTTP listener");
    for p in ["horse.png", "rocket.jpg"] {
        let bytes = std::fs::read(media.join(p)).unwrap();
        let sha: String = {
            use sha2::Digest;
            sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect()
        };
        let (status, head, body) =
            common::http_raw(&http, "GET", &format!("/v1/collections/media/media/{sha}"), None, &[]);
        assert_eq!(status, 200, "{p}: {head}");
        assert!(body == bytes, "{p}: the kept bytes differ");
        assert!(head.to_lowercase().contains("content-type: image/"), "{head}");
    }
    let (status, _, _) =
        common::http_raw(&http, "GET", &format!("/v1/collections/media/media/{}", "0".repeat(64)), None, &[]);
    assert_eq!(status, 404);

    let ask = |text: &str, mode: v1::RetrievalMode, filter: &str| v1::SearchRequest {
        collection: "media".into(),
        text: text.into(),
        mode: mode as i32,
        filter: filter.into(),
        top_k: 5,
        explain: true,
        ..Default::default()
    };
    let cat = std::fs::read(common::photos().join("chelsea.png")).unwrap();
    let queries = vec![
        ask("a cat", v1::RetrievalMode::RetrievalDefault, ""),
        ask("when was the plumber paid", v1::RetrievalMode::RetrievalHybrid, ""),
        ask("invoice plumber", v1::RetrievalMode::RetrievalKeyword, ""),
        ask("a cup of espresso", v1::RetrievalMode::RetrievalDense, ""),
        ask("the moon and the earth", v1::RetrievalMode::RetrievalDefault, "modality = \"text\""),
        v1::SearchRequest { collection: "media".into(), image: cat, top_k: 5, ..Default::default() },
    ];
    for q in queries {
        let got = c1.search(q.clone()).await.expect("sharded cross-modal search").into_inner().hits;
        let want = cr.search(q.clone()).await.unwrap().into_inner().hits;
        let show = |h: &[v1::Hit]| h.iter().map(|h| format!("{} {:.4}", h.source, h.score)).collect::<Vec<_>>();
        assert!(!want.is_empty(), "{:?}", q.text);
        assert_eq!(
            show(&got),
            show(&want),
            "query {:?} (mode {}): the cluster and the single node differ",
            q.text,
            q.mode
        );
        for (g, w) in got.iter().zip(&want) {
            let lists = |h: &v1::Hit| h.explain.iter().map(|l| format!("{}#{}", l.list, l.rank)).collect::<Vec<_>>();
            assert_eq!(lists(g), lists(w), "{:?}: per-list ranks", q.text);
            for (a, b) in g.explain.iter().zip(&w.explain) {
                assert!(
                    (a.score - b.score).abs() < 1e-3,
                    "{:?}: list {} scores {} vs {}",
                    q.text,
                    a.list,
                    a.score,
                    b.score
                );
            }
        }
    }

    // Scroll across the shards: every item once, in id order, in pages.
    let (mut seen, mut after) = (Vec::new(), String::new());
    loop {
        let r = c1
            .scroll(v1::ScrollRequest {
                collection: "media".into(),
                after: after.clone(),
                limit: 4,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(r.items.len() <= 4);
        seen.extend(r.items.into_iter().map(|i| i.id));
        if r.next_after.is_empty() {
            break;
        }
        after = r.next_after;
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(seen, sorted, "in id order, no duplicates");
    assert_eq!(seen.len() as u64, want);

    // Delete by filter through one node: every replica deletes the same items.
    let mut c2 = v1::items_client::ItemsClient::new(authed(&n2.url(), None).await);
    let f = "modality = \"image\" or modality = \"nothing\"";
    let matched = cr.count(v1::CountRequest { collection: "media".into(), filter: f.into(), ..Default::default() });
    let matched = matched.await.unwrap().into_inner().count;
    assert_eq!(matched, 6, "the six photos");
    let r = c2
        .delete(v1::DeleteRequest { collection: "media".into(), filter: f.into(), ..Default::default() })
        .await
        .expect("delete by filter on a sharded collection")
        .into_inner();
    assert_eq!(r.deleted, matched);
    let left = c1
        .count(v1::CountRequest {
            collection: "media".into(),
            consistency_token: r.consistency_token.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .count;
    assert_eq!(left, want - matched);
    let hits = c1.search(ask("a cat", v1::RetrievalMode::RetrievalDefault, "")).await.unwrap().into_inner().hits;
    assert!(!hits.is_empty() && hits.iter().all(|h| h.modality != "image"), "{hits:?}");

    // Drop: gone from every node, its replicas removed from their data directories, and
    // a new collection of the same name starts empty.
    n2.ok(&["collection", "drop", "media"]);
    let replicas_left = |s: &Server| {
        std::fs::read_dir(s.data_dir.join("collections"))
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter(|e| e.file_name().to_string_lossy().starts_with("_shard-media-"))
                    .count()
            })
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while replicas_left(&n1) + replicas_left(&n2) > 0 {
        assert!(Instant::now() < deadline, "the dropped collection's replicas are still on disk");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let list = String::from_utf8(n1.ok(&["collection", "list"])).unwrap();
    assert!(!list.contains("media"), "{list}");
    n1.ok(&["collection", "create", "media", "--multimodal", "--shards", "2"]);
    let n = c2.count(v1::CountRequest { collection: "media".into(), ..Default::default() }).await.unwrap();
    assert_eq!(n.into_inner().count, 0, "a new collection of the same name holds nothing of the old one");

    // The event bus is cluster-wide: a subscriber on node 1 sees the ingest made through
    // node 2.
    let mut events = v1::events_client::EventsClient::new(authed(&n1.url(), None).await);
    let mut stream = events
        .subscribe(v1::SubscribeRequest { topics: vec!["ingestion".into()], from_offset: None })
        .await
        .unwrap()
        .into_inner();
    let one = dir.path().join("one");
    std::fs::create_dir_all(&one).unwrap();
    std::fs::write(one.join("note.txt"), "A note about relayed events.").unwrap();
    let r: serde_json::Value =
        serde_json::from_slice(&n2.ok(&["ingest", "media", one.to_str().unwrap(), "--json"])).unwrap();
    assert_eq!(r["ingested"], 1, "{r}");
    let event = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            let m = stream.message().await.unwrap().expect("the stream stays open");
            if let Some(v1::subscribe_response::Msg::Event(e)) = m.msg {
                if e.kind == "ingest.finished" {
                    return e;
                }
            }
        }
    })
    .await
    .expect("node 1 saw node 2's ingest event");
    assert_eq!(event.subject, "media");
}

/// Cluster mode over an encrypted, password-protected NATS: a JetStream server that
/// speaks only TLS (a certificate from a CA made here) and wants a user and password;
/// the node trusts the CA (`cluster.tls_ca`) and gives the password in the URL. A
/// sharded collection is created, written and read back through it; a node given no CA
/// cannot join.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_over_tls_with_a_password() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = common::certs::ca("agentdb test NATS CA");
    let path = |n: &str| dir.path().join(n);
    std::fs::write(path("ca.pem"), ca.pem()).unwrap();
    common::certs::loopback_files(dir.path(), &ca, "nats", false);
    let port = free_port();
    let conf = format!(
        "listen: \"127.0.0.1:{port}\"\njetstream {{ store_dir: {:?} }}\n\
         tls {{ cert_file: {:?}, key_file: {:?}, timeout: 2 }}\n\
         authorization {{ user: \"agentdb\", password: \"s3cret-pass\" }}\n",
        path("js"),
        path("nats.pem"),
        path("nats.key"),
    );
    let mut nats = common::nats::standalone(dir.path(), &conf, port);
    let url = format!("tls://agentdb:s3cret-pass@127.0.0.1:{port}");
    let ca_set = format!("cluster.tls_ca={}", path("ca.pem").display());
    let n1 = Server::start(&path("n1"), &["--cluster", &url, "--node-id", "t1", "--set", &ca_set]);
    n1.ok(&["collection", "create", "docs", "--dim", "16", "--metric", "l2", "--index", "Flat", "--shards", "2"]);
    let token = upsert(&n1.url(), 0..50).await;
    assert_eq!(count(&n1.url(), &token).await.unwrap(), 50);
    let hits = search(&n1.url(), "docs", vec_for(7), "", &token).await.unwrap();
    assert_eq!(hits[0].0, "doc-7");

    // Without the CA the server's certificate is not trusted: the node does not start.
    let err =
        common::serve_refused(&path("n2"), &["--cluster".into(), url.clone(), "--node-id".into(), "t2".into()], &[]);
    assert!(err.contains("cannot join the cluster"), "{err}");
    assert!(!err.contains("s3cret-pass"), "the password stays out of the log: {err}");
    assert!(!std::fs::read_to_string(&n1.log).unwrap().contains("s3cret-pass"), "nor the node's log");
    let _ = nats.kill();
    let _ = nats.wait();
}
