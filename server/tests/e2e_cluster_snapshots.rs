//! Shard snapshots in the JetStream object store (issue 21, point 4) through the real
//! binary: with `cluster.snapshot_every` small, each shard is snapshotted and its stream
//! trimmed behind the snapshot; a node that joins builds its replicas from the snapshot
//! plus the stream's tail (the trimmed history is not needed), and so does a node that
//! lost its disk; every acknowledged write is readable through them afterwards.

mod common;

use agentdb_proto::v1;
use common::nats::{node_with, Nats};
use common::{authed, item, Server};
use std::time::{Duration, Instant};

fn node(dir: &std::path::Path, nats: &Nats, id: &str) -> Server {
    node_with(&dir.join(id), &nats.urls, id, &["--set", "cluster.snapshot_every=20"])
}

fn vec_for(i: usize) -> Vec<f32> {
    common::rand_vec(i as u64, 8)
}

/// Upsert items `range` through `s` in requests of 5 (many stream records); the merged
/// consistency token.
async fn upsert(s: &Server, range: std::ops::Range<usize>) -> String {
    let mut c = v1::items_client::ItemsClient::new(authed(&s.url(), None).await);
    let mut seqs = std::collections::BTreeMap::<u32, u64>::new();
    let ids: Vec<usize> = range.collect();
    for chunk in ids.chunks(5) {
        let items = chunk.iter().map(|i| item(&format!("doc-{i}"), vec_for(*i), serde_json::json!({"n": i}))).collect();
        let r = c.upsert(v1::UpsertRequest { collection: "docs".into(), items }).await.unwrap().into_inner();
        for part in r.consistency_token.split(',').filter(|p| !p.is_empty()) {
            let (sh, seq) = part.split_once(':').unwrap();
            let e = seqs.entry(sh.parse().unwrap()).or_default();
            *e = (*e).max(seq.parse().unwrap());
        }
    }
    seqs.iter().map(|(s, q)| format!("{s}:{q}")).collect::<Vec<_>>().join(",")
}

async fn count(s: &Server, token: &str) -> Result<u64, tonic::Status> {
    let mut c = v1::items_client::ItemsClient::new(authed(&s.url(), None).await);
    let req = v1::CountRequest { collection: "docs".into(), consistency_token: token.into(), ..Default::default() };
    Ok(c.count(req).await?.into_inner().count)
}

async fn nearest(s: &Server, i: usize, token: &str) -> String {
    let mut c = v1::items_client::ItemsClient::new(authed(&s.url(), None).await);
    let r = c
        .search(v1::SearchRequest {
            collection: "docs".into(),
            vector: Some(v1::Vector { values: vec_for(i), ..Default::default() }),
            top_k: 1,
            consistency_token: token.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    r.hits[0].id.clone()
}

fn status(s: &Server) -> serde_json::Value {
    serde_json::from_slice(&s.ok(&["cluster", "status", "--json"])).unwrap()
}

fn wait_log(s: &Server, what: &str) {
    let t = Instant::now();
    while !s.log_text().contains(what) {
        assert!(t.elapsed() < Duration::from_secs(60), "no '{what}' in the log:\n{}", s.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_are_built_from_snapshots_and_the_stream_is_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(dir.path(), 3);
    let n1 = node(dir.path(), &nats, "n1");
    let mut n2 = node(dir.path(), &nats, "n2");
    n1.ok(&[
        "collection",
        "create",
        "docs",
        "--dim",
        "8",
        "--metric",
        "l2",
        "--index",
        "Flat",
        "--shards",
        "2",
        "--replicas",
        "2",
    ]);
    let token = upsert(&n1, 0..600).await;
    assert_eq!(count(&n2, &token).await.unwrap(), 600);

    // Every shard gets a snapshot and its stream is trimmed behind it.
    let t = Instant::now();
    let st = loop {
        let st = status(&n1);
        let shards = st["collections"][0]["shard_status"].as_array().unwrap().clone();
        if shards.iter().all(|s| s["snapshot_seq"].as_u64() > Some(0) && s["first_seq"].as_u64() > Some(1)) {
            break st;
        }
        assert!(t.elapsed() < Duration::from_secs(60), "no snapshot and trim: {st}");
        std::thread::sleep(Duration::from_millis(200));
    };
    eprintln!("snapshots and trimmed streams: {}", st["collections"][0]["shard_status"]);
    let text = String::from_utf8(n1.ok(&["cluster", "status"])).unwrap();
    assert!(text.contains("snapshot at") && text.contains("stream from"), "{text}");

    // A node joins: the replica it takes is restored from the snapshot plus the tail.
    let n3 = node(dir.path(), &nats, "n3");
    wait_log(&n3, "replica restored from a snapshot");
    let token2 = upsert(&n1, 600..650).await;
    let token = merge(&token, &token2);
    for s in [&n1, &n2, &n3] {
        assert_eq!(count(s, &token).await.unwrap(), 650);
    }
    for i in [3, 333, 612] {
        assert_eq!(nearest(&n3, i, &token).await, format!("doc-{i}"));
    }

    // n2 loses its disk and comes back: its replicas are rebuilt from snapshots too.
    n2.kill9();
    std::fs::remove_dir_all(dir.path().join("n2")).unwrap();
    let n2 = node(dir.path(), &nats, "n2");
    wait_log(&n2, "replica restored from a snapshot");
    // With n1 gone, every shard is read from n2's and n3's rebuilt replicas.
    let mut n1 = n1;
    n1.kill9();
    let t = Instant::now();
    for s in [&n2, &n3] {
        loop {
            if count(s, &token).await.ok() == Some(650) {
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(60), "reads through the rebuilt replicas");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    for i in [0, 599, 649] {
        assert_eq!(nearest(&n2, i, &token).await, format!("doc-{i}"));
    }
}

fn merge(a: &str, b: &str) -> String {
    let mut m = std::collections::BTreeMap::<String, u64>::new();
    for part in a.split(',').chain(b.split(',')).filter(|p| !p.is_empty()) {
        let (s, q) = part.split_once(':').unwrap();
        let e = m.entry(s.to_string()).or_default();
        *e = (*e).max(q.parse().unwrap());
    }
    m.iter().map(|(s, q)| format!("{s}:{q}")).collect::<Vec<_>>().join(",")
}
