//! Crash test: upsert, replace and delete in a loop against the real server, SIGKILL
//! it at random moments (also during flushes and compactions, which are made frequent
//! here), restart, and check that every acknowledged write is present and searchable
//! and that the one unacknowledged request is either fully visible or not at all.

mod common;

use agentdb_proto::v1;
use common::*;
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::collections::HashMap;
use std::time::{Duration, Instant};

const DIM: usize = 16;
const ROUNDS: usize = 24;
const BATCH: usize = 40;

/// Deterministic vector for (id number, version): the checker can recompute it.
fn vector(id: u64, version: u64) -> Vec<f32> {
    rand_vec(id * 1_000_003 + version, DIM)
}

#[derive(Clone, Debug)]
enum Op {
    /// (id, version) pairs written by one request.
    Upsert(Vec<(u64, u64)>),
    Delete(Vec<u64>),
}

/// Twice, one after the other (in parallel they would slow each other's flushes): with
/// every flush indexed at once, then with the default deferral (full buffers sealed
/// without an index during the load, their WAL records kept until they are merged and
/// indexed), so kills land anywhere in both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill() {
    let mut logs = crash_loop("storage.index_defer_rows=0").await;
    logs.push_str(&crash_loop("storage.index_defer_rows=200000").await);
    // Where the kills land is random: over the two loops, flushes the server started
    // itself completed and compactions ran (each started one may be killed before it
    // completes), so kills could land during both, not only between.
    let flushes = background_flushes(&logs);
    let compactions = logs.matches("compaction started").count();
    assert!(flushes >= 5 && compactions >= 1, "flushes {flushes}, compactions started {compactions}");
}

/// Write, kill, restart and check, `ROUNDS` times; returns the servers' logs.
async fn crash_loop(defer: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let args = [
        "--set",
        "storage.flush_rows=200",
        "--set",
        "storage.flush_interval_secs=0.3",
        "--set",
        "storage.maintenance_interval_ms=40",
        "--set",
        "storage.max_segments=3",
        "--set",
        "search.exact_threshold=16",
        "--set",
        defer,
    ];
    let mut rng = rand::rngs::StdRng::seed_from_u64(0xC0FFEE);
    // Acknowledged state: id -> version (absent = deleted or never written).
    let mut acked: HashMap<u64, u64> = HashMap::new();
    let mut next_id = 0u64;
    let mut version = 0u64;
    let mut kills = 0;

    {
        let server = Server::start(&data, &args);
        let (mut cols, _) = server.clients().await;
        cols.create(v1::CreateCollectionRequest {
            name: "c".into(),
            spaces: vec![space("v", DIM as u32, v1::Metric::L2, "HNSW16")],
            multimodal: false,
            ..Default::default()
        })
        .await
        .unwrap();
    }

    for round in 0..ROUNDS {
        let mut server = Server::start(&data, &args);
        let inflight = verify(&server, &acked, round).await;
        assert!(inflight.is_none());
        // Index what the restart replayed before writing again. Otherwise a round whose
        // flushes were all killed hands a larger backlog to the next, whose first flush
        // is slower and so more likely killed in turn: on a loaded CI machine that
        // snowballed until no flush completed (316k rows replayed per restart, 3
        // flushes in 48 rounds). This flush is not counted below.
        {
            let (mut cols, _) = server.clients().await;
            cols.flush(v1::FlushRequest { collection: "c".into(), optimize: false }).await.unwrap();
        }
        // Write until killed. The kill happens from a thread at a random moment.
        let kill_after = Duration::from_millis(rng.random_range(150..900));
        let pid = server.child.id() as i32;
        let killer = std::thread::spawn(move || {
            std::thread::sleep(kill_after);
            unsafe { libc::kill(pid, libc::SIGKILL) };
        });
        let pending: Option<Op> = {
            let (_, mut items) = server.clients().await;
            let t = Instant::now();
            loop {
                version += 1;
                let op = if rng.random_bool(0.15) && !acked.is_empty() {
                    let ids: Vec<u64> = acked.keys().copied().take(rng.random_range(1..10)).collect();
                    Op::Delete(ids)
                } else {
                    let mut pairs: Vec<(u64, u64)> = (0..BATCH)
                        .map(|_| {
                            next_id += 1;
                            (next_id, version)
                        })
                        .collect();
                    // Replace a few existing items in the same request.
                    for id in acked.keys().copied().take(rng.random_range(0..5)).collect::<Vec<_>>() {
                        pairs.push((id, version));
                    }
                    Op::Upsert(pairs)
                };
                let res = match &op {
                    Op::Upsert(pairs) => items
                        .upsert(v1::UpsertRequest {
                            collection: "c".into(),
                            items: pairs
                                .iter()
                                .map(|(id, v)| v1::Item {
                                    id: format!("id{id}"),
                                    vectors: [(
                                        "v".to_string(),
                                        v1::Vector { values: vector(*id, *v), ..Default::default() },
                                    )]
                                    .into(),
                                    payload_json: json!({"version": v, "id": id}).to_string(),
                                })
                                .collect(),
                        })
                        .await
                        .map(|_| ()),
                    Op::Delete(ids) => items
                        .delete(v1::DeleteRequest {
                            collection: "c".into(),
                            ids: ids.iter().map(|i| format!("id{i}")).collect(),
                            filter: String::new(),
                        })
                        .await
                        .map(|_| ()),
                };
                match res {
                    Ok(()) => match op {
                        Op::Upsert(pairs) => acked.extend(pairs),
                        Op::Delete(ids) => ids.iter().for_each(|i| {
                            acked.remove(i);
                        }),
                    },
                    Err(_) => break Some(op), // the server died with this request in flight
                }
                assert!(t.elapsed() < Duration::from_secs(30), "server was not killed");
            }
        };
        killer.join().unwrap();
        let _ = server.child.wait();
        kills += 1;
        // Restart and resolve the in-flight request: all or nothing.
        let server = Server::start(&data, &args);
        if let Some(op) = pending {
            resolve_pending(&server, &mut acked, op).await;
        }
        drop(server);
    }
    let server = Server::start(&data, &args);
    verify(&server, &acked, ROUNDS).await;
    assert!(kills >= 20);
    assert!(acked.len() > 500, "the test wrote enough to cross several flushes: {}", acked.len());
    drop(server);
    // The kills landed while flushes and compactions were happening, not only between.
    let mut logs = String::new();
    for e in std::fs::read_dir(dir.path()).unwrap().flatten() {
        if e.file_name().to_string_lossy().starts_with("data.log") {
            logs.push_str(&std::fs::read_to_string(e.path()).unwrap());
        }
    }
    let flushes = background_flushes(&logs);
    let compactions = logs.matches("compaction started").count();
    let replays = logs.matches("wal_records_replayed").count();
    eprintln!(
        "{defer}: {kills} kills, {flushes} flushes, {compactions} compactions started, {replays} recoveries, {} items",
        acked.len()
    );
    logs
}

/// Flushes the server ran by itself (buffer full or aged, bulk load paused), not the
/// test's `Flush` requests.
fn background_flushes(logs: &str) -> usize {
    logs.lines().filter(|l| l.contains("flushed write buffer") && !l.contains("flush request")).count()
}

/// The request that was in flight at the kill must be entirely applied or not at all.
async fn resolve_pending(server: &Server, acked: &mut HashMap<u64, u64>, op: Op) {
    let (_, mut items) = server.clients().await;
    match op {
        Op::Upsert(pairs) => {
            let ids: Vec<String> = pairs.iter().map(|(id, _)| format!("id{id}")).collect();
            let got = items
                .get(v1::GetRequest { collection: "c".into(), ids, with_vectors: false, ..Default::default() })
                .await
                .unwrap()
                .into_inner()
                .items;
            let new_version = pairs[0].1;
            let applied =
                got.iter().filter(|it| it.payload_json.contains(&format!("\"version\":{new_version}"))).count();
            assert!(
                applied == 0 || applied == pairs.len(),
                "in-flight upsert half-visible: {applied} of {} items",
                pairs.len()
            );
            if applied == pairs.len() {
                acked.extend(pairs);
            }
        }
        Op::Delete(ids) => {
            let names: Vec<String> = ids.iter().map(|i| format!("id{i}")).collect();
            let got = items
                .get(v1::GetRequest { collection: "c".into(), ids: names, with_vectors: false, ..Default::default() })
                .await
                .unwrap()
                .into_inner()
                .items;
            let present: Vec<u64> = ids.iter().copied().filter(|i| acked.contains_key(i)).collect();
            assert!(
                got.is_empty() || got.len() == present.len(),
                "in-flight delete half-applied: {} of {} remain",
                got.len(),
                present.len()
            );
            if got.is_empty() {
                for i in ids {
                    acked.remove(&i);
                }
            }
        }
    }
}

/// Every acknowledged item is present with its latest version, nothing else is, and a
/// sample is found by exact and by ANN search with its own vector.
async fn verify(server: &Server, acked: &HashMap<u64, u64>, round: usize) -> Option<()> {
    let (_, mut items) = server.clients().await;
    let count = items
        .count(v1::CountRequest { collection: "c".into(), filter: String::new(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .count;
    assert_eq!(count, acked.len() as u64, "round {round}: item count");
    let ids: Vec<u64> = acked.keys().copied().collect();
    for chunk in ids.chunks(1000) {
        let got = items
            .get(v1::GetRequest {
                collection: "c".into(),
                ids: chunk.iter().map(|i| format!("id{i}")).collect(),
                with_vectors: true,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .items;
        assert_eq!(got.len(), chunk.len(), "round {round}: missing acknowledged items");
        for it in got {
            let id: u64 = it.id[2..].parse().unwrap();
            let v = acked[&id];
            let payload: serde_json::Value = serde_json::from_str(&it.payload_json).unwrap();
            assert_eq!(payload["version"], json!(v), "round {round}: {} has a stale version", it.id);
            assert_eq!(it.vectors["v"].values, vector(id, v), "round {round}: {} vector", it.id);
        }
    }
    for &id in ids.iter().step_by((ids.len() / 40).max(1)) {
        let v = acked[&id];
        for exact in [true, false] {
            let hits = items
                .search(v1::SearchRequest {
                    collection: "c".into(),
                    space: "v".into(),
                    vector: Some(v1::Vector { values: vector(id, v), ..Default::default() }),
                    top_k: 3,
                    params: Some(v1::SearchParams { nprobe: 0, exact, ef: 0 }),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .hits;
            assert_eq!(
                hits[0].id,
                format!("id{id}"),
                "round {round}: id{id} not found by its own vector (exact={exact})"
            );
            assert_eq!(hits.iter().filter(|h| h.id == hits[0].id).count(), 1, "no duplicate ids in results");
        }
    }
    None
}
