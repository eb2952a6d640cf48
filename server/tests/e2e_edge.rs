//! Edge sync through the real binary (issue 25): a hub nats-server (JetStream domain
//! `hub`, a leaf-node listener) with a hub AgentDB, and two edge AgentDBs, each running
//! its own leaf nats-server (`agentdb serve --edge --hub ...`), all on loopback. Each
//! edge's leaf connection goes through a TCP relay the test can cut, which partitions
//! that edge. Checked: changes flow both ways and only the mirrored partition comes down;
//! a partitioned edge reads and writes as usual; the same ids edited on both edges and
//! the hub converge (last writer wins, `max` and `union` fields merged, tombstones
//! honoured: an older edit never brings a deleted item back) with every acknowledged
//! write kept, while the other edge is killed and restarted mid-sync; replicas are
//! compared by item digests; tombstones are collected once every node has seen them.
//! And an edge's bounded cache of a hub collection: the hub answers while reachable and
//! what it returns is kept within the byte budget, least recently used dropped first;
//! offline the cache answers and says the answer may be partial.

mod common;

use agentdb_proto::v1;
use common::certs::{ca, loopback_files as cert};
use common::edge::{hub_nats, Relay};
use common::{authed, item, space, Server};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const DIM: usize = 8;

/// One scenario at a time: each starts a hub nats-server, leaf servers and AgentDB nodes.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn common_sets() -> Vec<String> {
    [
        "edge.partition=orders:store_id",
        "edge.merge=products.stock=max,products.tags=union",
        "edge.clock_interval_ms=300",
        "http_listen=127.0.0.1:0",
    ]
    .iter()
    .flat_map(|s| ["--set".to_string(), s.to_string()])
    .collect()
}

fn start_hub(data: &std::path::Path, nats_port: u16) -> Server {
    let url = format!("nats://127.0.0.1:{nats_port}");
    let mut args: Vec<String> = vec!["--edge-hub".into(), url, "--node-id".into(), "hub".into()];
    args.extend(["--set".into(), "edge.collections=products,orders".into()]);
    args.extend(common_sets());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    Server::start(data, &refs)
}

fn start_edge(data: &std::path::Path, id: &str, relay: u16, extra: &[&str]) -> Server {
    let hub = format!("nats-leaf://127.0.0.1:{relay}");
    let mut args: Vec<String> = vec!["--edge".into(), "--hub".into(), hub, "--node-id".into(), id.into()];
    args.extend(common_sets());
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    Server::start(data, &refs)
}

/// Collection `name` with one 8-dimensional cosine Flat space.
async fn create_flat(s: &Server, name: &str) {
    let (mut cols, _) = s.clients().await;
    cols.create(v1::CreateCollectionRequest {
        name: name.into(),
        spaces: vec![space("", DIM as u32, v1::Metric::Cosine, "Flat")],
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| panic!("create {name}: {e}"));
}

async fn create_collections(s: &Server) {
    for name in ["products", "orders"] {
        create_flat(s, name).await;
    }
}

fn vec_for(seed: u64) -> Vec<f32> {
    common::rand_vec(seed, DIM)
}

async fn upsert(s: &Server, collection: &str, items: Vec<v1::Item>) -> Result<(), tonic::Status> {
    let mut c = v1::items_client::ItemsClient::new(authed(&s.url(), None).await);
    c.upsert(v1::UpsertRequest { collection: collection.into(), items }).await.map(|_| ())
}

async fn delete(s: &Server, collection: &str, ids: &[&str]) {
    let mut c = v1::items_client::ItemsClient::new(authed(&s.url(), None).await);
    c.delete(v1::DeleteRequest {
        collection: collection.into(),
        ids: ids.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| panic!("delete {ids:?}: {e}"));
}

async fn get(s: &Server, collection: &str, id: &str) -> Option<Value> {
    let mut c = v1::items_client::ItemsClient::new(authed(&s.url(), None).await);
    let r = c
        .get(v1::GetRequest { collection: collection.into(), ids: vec![id.into()], ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    r.items.first().map(|it| serde_json::from_str(&it.payload_json).unwrap())
}

fn status(s: &Server) -> Value {
    let (code, _, body) = common::http(s.http_addr.as_ref().unwrap(), "/v1/edge/status?items=true", None, &[]);
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn coll<'a>(st: &'a Value, name: &str) -> &'a Value {
    st["collections"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap()
}

fn digests(s: &Server, name: &str) -> BTreeMap<String, String> {
    serde_json::from_value(coll(&status(s), name)["item_digests"].clone()).unwrap()
}

/// Wait until `check` holds (it returns a description of what is still wrong).
fn wait_for(what: &str, limit: Duration, mut check: impl FnMut() -> Result<(), String>) {
    let t = Instant::now();
    loop {
        match check() {
            Ok(()) => return,
            Err(e) if t.elapsed() > limit => panic!("{what}: not within {limit:?}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

fn same_products(nodes: &[&Server]) -> Result<(), String> {
    let d: Vec<BTreeMap<String, String>> = nodes.iter().map(|s| digests(s, "products")).collect();
    for (i, x) in d.iter().enumerate().skip(1) {
        if *x != d[0] {
            let diff: Vec<&String> =
                x.keys().chain(d[0].keys()).filter(|k| x.get(*k) != d[0].get(*k)).take(5).collect();
            // The sync streams of both (stored, still to apply, each source's lag).
            let (hs, ns) = (status(nodes[0]), status(nodes[i]));
            return Err(format!(
                "node {i} differs from the hub ({} vs {} items; e.g. {diff:?}); its streams {} applied {} seen {}; the hub's {}",
                x.len(),
                d[0].len(),
                ns["streams"],
                ns["applied"],
                ns["seen"],
                hs["streams"]
            ));
        }
    }
    Ok(())
}

fn product(id: &str, seed: u64, stock: i64, tags: &[&str], name: &str) -> v1::Item {
    item(id, vec_for(seed), json!({"name": name, "stock": stock, "tags": tags}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn edges_sync_with_the_hub_offline_first_and_converge_after_a_partition() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let (_hub_nats, np, lp) = hub_nats(dir.path(), "");
    let (ra, rb) = (Relay::start(lp), Relay::start(lp));

    let hub = start_hub(&dir.path().join("hub"), np);
    let edge_a_dir = dir.path().join("edge-a");
    let edge_b_dir = dir.path().join("edge-b");
    let a_args = ["--set", "edge.collections=products,orders:down", "--set", "edge.only=orders:17"];
    // Edge B sends its vectors as f16 (and stores them so, like every replica).
    let b_args = ["--set", "edge.collections=products,orders:down", "--set", "edge.vector_encoding=f16"];
    let a = start_edge(&edge_a_dir, "edge-a", ra.port, &a_args);
    let mut b = start_edge(&edge_b_dir, "edge-b", rb.port, &b_args);
    for s in [&hub, &a, &b] {
        create_collections(s).await;
    }
    wait_for("every node reaches the hub", Duration::from_secs(30), || {
        for s in [&hub, &a, &b] {
            if status(s)["hub_reachable"] != true {
                return Err(format!("{} not yet", status(s)["node"]));
            }
        }
        Ok(())
    });

    // 1. Online: writes on every node reach every other; only store 17's orders reach A.
    let hub_products: Vec<v1::Item> =
        (0..40).map(|i| product(&format!("p-{i}"), i, 10, &["hub"], "from the hub")).collect();
    upsert(&hub, "products", hub_products).await.unwrap();
    let orders: Vec<v1::Item> = (0..30)
        .map(|i| item(&format!("o-{i}"), vec_for(1000 + i), json!({"store_id": if i % 3 == 0 { 17 } else { 18 }})))
        .collect();
    upsert(&hub, "orders", orders).await.unwrap();
    upsert(&a, "products", (0..15).map(|i| product(&format!("a-{i}"), 100 + i, 1, &["a"], "from a")).collect())
        .await
        .unwrap();
    upsert(&b, "products", (0..15).map(|i| product(&format!("b-{i}"), 200 + i, 1, &["b"], "from b")).collect())
        .await
        .unwrap();
    wait_for("the first writes converge", Duration::from_secs(60), || {
        same_products(&[&hub, &a, &b])?;
        let n = digests(&hub, "products").len();
        (n == 70).then_some(()).ok_or(format!("{n} products on the hub"))
    });
    let hub_orders = digests(&hub, "orders");
    wait_for("orders come down (A: store 17 only)", Duration::from_secs(30), || {
        let (da, db) = (digests(&a, "orders"), digests(&b, "orders"));
        let want_a: BTreeMap<String, String> = hub_orders
            .iter()
            .filter(|(id, _)| id[2..].parse::<usize>().unwrap() % 3 == 0)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if da != want_a {
            return Err(format!("A holds {} orders, expected {}", da.len(), want_a.len()));
        }
        (db == hub_orders).then_some(()).ok_or(format!("B holds {} orders of {}", db.len(), hub_orders.len()))
    });
    // A mirror is read-only on an edge.
    let refused = upsert(&a, "orders", vec![item("o-x", vec_for(1), json!({"store_id": 17}))]).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
    assert!(refused.message().contains("mirror"), "{}", refused.message());
    // Vectors travel as each origin says: A's (f32) arrive exactly, B's (f16) rounded —
    // and B stores the rounded ones too, so the digests above agree.
    let mut items = v1::items_client::ItemsClient::new(authed(&hub.url(), None).await);
    for (id, seed, exact) in [("a-3", 103, true), ("b-3", 203, false)] {
        let got = items
            .get(v1::GetRequest {
                collection: "products".into(),
                ids: vec![id.into()],
                with_vectors: true,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let v = &got.items[0].vectors.values().next().unwrap().values;
        let want = normalized(normalized(vec_for(seed)));
        let err = v.iter().zip(&want).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        if exact {
            assert_eq!(err, 0.0, "{id}: f32 travels exactly");
        } else {
            assert!(err > 0.0 && err < 2e-3, "{id}: f16 rounding error {err}");
        }
    }

    // 2. Partition A. It keeps reading and writing locally.
    ra.cut();
    wait_for("A notices the hub is gone", Duration::from_secs(30), || {
        (status(&a)["hub_reachable"] == false).then_some(()).ok_or("still reachable".into())
    });
    // Concurrent edits of the same ids, in this real-time order (the clocks are one
    // machine's, so the hybrid clocks order them the same way):
    //  p-1: the hub, A (offline) and B all edit it: A is last (its name wins); stock is
    //       the largest any of them wrote (max) and tags every tag any wrote (union).
    //  p-2: the hub edits it, then A (offline) deletes it: the delete wins.
    //  p-4: A (offline) edits it, then the hub deletes it: A's older edit must not bring it back.
    //  p-5: A (offline) edits it, then B deletes it.
    upsert(&hub, "products", vec![product("p-1", 1, 3, &["hub-edit"], "hub edit")]).await.unwrap();
    upsert(&b, "products", vec![product("p-1", 1, 5, &["b-edit"], "b edit")]).await.unwrap();
    upsert(&hub, "products", vec![product("p-2", 2, 10, &[], "hub edit of p-2")]).await.unwrap();
    upsert(&a, "products", vec![product("p-4", 4, 10, &[], "a's older edit of p-4")]).await.unwrap();
    upsert(&a, "products", vec![product("p-5", 5, 10, &[], "a's older edit of p-5")]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    delete(&hub, "products", &["p-4"]).await;
    delete(&b, "products", &["p-5"]).await;
    delete(&a, "products", &["p-2"]).await;
    upsert(&a, "products", vec![product("p-1", 1, 9, &["a-edit"], "a edit, the last")]).await.unwrap();
    // 50 new items written offline on A, acknowledged.
    upsert(
        &a,
        "products",
        (0..50).map(|i| product(&format!("offline-{i}"), 300 + i, 2, &["offline"], "offline")).collect(),
    )
    .await
    .unwrap();
    assert_eq!(get(&a, "products", "offline-7").await.unwrap()["name"], "offline", "A reads its own offline write");
    assert!(get(&a, "products", "p-2").await.is_none(), "A's delete holds locally");
    let mut search = v1::items_client::ItemsClient::new(authed(&a.url(), None).await);
    let hits = search
        .search(v1::SearchRequest {
            collection: "products".into(),
            vector: Some(v1::Vector { values: vec_for(310), ..Default::default() }),
            top_k: 1,
            ..Default::default()
        })
        .await
        .expect("a partitioned edge searches")
        .into_inner();
    assert_eq!(hits.hits[0].id, "offline-10");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(get(&hub, "products", "offline-7").await.is_none(), "nothing crossed the cut");
    assert!(get(&hub, "products", "p-2").await.is_some(), "A's delete waits for the link");

    // 3. Reconnect A; B is killed mid-sync and started again.
    ra.restore();
    tokio::time::sleep(Duration::from_millis(300)).await;
    b.kill9();
    let b = start_edge(&edge_b_dir, "edge-b", rb.port, &b_args);
    wait_for("all replicas converge", Duration::from_secs(90), || same_products(&[&hub, &a, &b]));

    let p1 = get(&hub, "products", "p-1").await.unwrap();
    assert_eq!(p1["name"], "a edit, the last", "last writer wins: {p1}");
    assert_eq!(p1["stock"], 10, "max over every version (the hub's first write had 10): {p1}");
    assert_eq!(p1["tags"], json!(["a-edit", "b-edit", "hub", "hub-edit"]), "union: {p1}");
    assert_eq!(p1["_sync"]["o"], "edge-a", "{p1}");
    for gone in ["p-2", "p-4", "p-5"] {
        for s in [&hub, &a, &b] {
            assert!(get(s, "products", gone).await.is_none(), "{gone} is deleted everywhere");
        }
    }
    let hub_d = digests(&hub, "products");
    assert_eq!(hub_d.len(), 70 - 3 + 50, "every acknowledged write is there: {}", hub_d.len());
    assert!((0..50).all(|i| hub_d.contains_key(&format!("offline-{i}"))));

    // 4. Once every node has seen the deletes, their tombstones are collected everywhere.
    wait_for("tombstones collected", Duration::from_secs(60), || {
        for s in [&hub, &a, &b] {
            let n = coll(&status(s), "products")["tombstones"].as_u64().unwrap();
            if n != 0 {
                return Err(format!("{}: {n} tombstones left", status(s)["node"]));
            }
        }
        Ok(())
    });
    same_products(&[&hub, &a, &b]).unwrap();
    for s in [&hub, &a, &b] {
        let mut st = status(s);
        for c in st["collections"].as_array_mut().unwrap() {
            c.as_object_mut().unwrap().remove("item_digests");
        }
        eprintln!("{st}");
    }

    // Forgetting an edge on the hub (a lost device): it is no longer sourced.
    let (code, _, body) =
        common::http_call(hub.http_addr.as_ref().unwrap(), "DELETE", "/v1/edge/nodes/edge-x", None, &[]);
    assert_eq!(code, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["was_registered"], false);
}

/// `v` scaled to unit length as the engine does it (in f64).
fn normalized(mut v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| (*x as f64) * (*x as f64)).sum::<f64>().sqrt();
    if (n - 1.0).abs() >= 1e-7 {
        v.iter_mut().for_each(|x| *x = (*x as f64 / n) as f32);
    }
    v
}

async fn search_ids(s: &Server, collection: &str, q: Vec<f32>, k: u32) -> (Vec<String>, Option<String>) {
    let mut c = v1::items_client::ItemsClient::new(authed(&s.url(), None).await);
    let r = c
        .search(v1::SearchRequest {
            collection: collection.into(),
            vector: Some(v1::Vector { values: q, ..Default::default() }),
            top_k: k,
            with_payload: true,
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("search {collection}: {e}"));
    let partial = r.metadata().get("agentdb-partial").map(|v| v.to_str().unwrap().to_string());
    (r.into_inner().hits.into_iter().map(|h| h.id).collect(), partial)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_edge_cache_keeps_what_queries_touch_within_its_budget() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let (_hub_nats, np, lp) = hub_nats(dir.path(), "");
    let relay = Relay::start(lp);
    let hub_url = format!("nats://127.0.0.1:{np}");
    let sets = ["--set", "http_listen=127.0.0.1:0", "--set", "edge.clock_interval_ms=300"];
    let mut hub_args = vec!["--edge-hub", hub_url.as_str(), "--node-id", "hub"];
    hub_args.extend(sets);
    let hub = Server::start(&dir.path().join("hub"), &hub_args);
    let leaf = format!("nats-leaf://127.0.0.1:{}", relay.port);
    const BUDGET: u64 = 8 * 1024;
    let cache = format!("edge.cache=catalog:{BUDGET}");
    let mut edge_args = vec!["--edge", "--hub", leaf.as_str(), "--node-id", "kiosk", "--set", cache.as_str()];
    edge_args.extend(sets);
    let edge = Server::start(&dir.path().join("edge"), &edge_args);
    for s in [&hub, &edge] {
        create_flat(s, "catalog").await;
    }
    // 1,000 items on the hub (about 75 bytes each: far more than the edge's 8 KiB).
    for start in (0..1000).step_by(250) {
        let items = (start..start + 250)
            .map(|i| {
                item(&format!("c-{i}"), vec_for(5000 + i as u64), json!({"n": i, "title": format!("catalog item {i}")}))
            })
            .collect();
        upsert(&hub, "catalog", items).await.unwrap();
    }
    wait_for("the edge reaches the hub", Duration::from_secs(30), || {
        (status(&edge)["hub_reachable"] == true).then_some(()).ok_or("not yet".into())
    });
    // Online: the hub answers (the same ids as searching the hub itself), the budget holds.
    for i in (0..300).step_by(5) {
        let q = vec_for(5000 + i as u64);
        let (from_edge, partial) = search_ids(&edge, "catalog", q.clone(), 5).await;
        let (from_hub, _) = search_ids(&hub, "catalog", q, 5).await;
        assert_eq!(from_edge, from_hub, "query {i}");
        assert!(partial.is_none(), "online answers are complete: {partial:?}");
        let c = &status(&edge)["caches"][0];
        assert!(c["bytes"].as_u64().unwrap() <= BUDGET, "over budget: {c}");
    }
    let st = status(&edge);
    let c = &st["caches"][0];
    assert!(c["items"].as_u64().unwrap() > 50, "the cache fills up to its budget: {c}");
    assert!(st["cache_evicted"].as_u64().unwrap() > 0, "older items were dropped: {st}");
    // A get of an item never searched comes from the hub, and is kept.
    let mut items = v1::items_client::ItemsClient::new(authed(&edge.url(), None).await);
    let got = items
        .get(v1::GetRequest { collection: "catalog".into(), ids: vec!["c-999".into()], ..Default::default() })
        .await
        .unwrap();
    assert!(got.metadata().get("agentdb-partial").is_none());
    assert_eq!(got.into_inner().items.len(), 1);
    // Writes to the cache are refused: it is the hub's collection.
    let refused = upsert(&edge, "catalog", vec![item("c-x", vec_for(1), json!({}))]).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
    assert!(refused.message().contains("cache"), "{}", refused.message());

    // Offline: the cache answers what it holds (the most recently used), marked partial.
    relay.cut();
    wait_for("the edge notices the hub is gone", Duration::from_secs(30), || {
        (status(&edge)["hub_reachable"] == false).then_some(()).ok_or("still reachable".into())
    });
    let (recent, partial) = search_ids(&edge, "catalog", vec_for(5000 + 295), 1).await;
    assert_eq!(recent, vec!["c-295".to_string()], "a recently used item is still cached");
    let why = partial.expect("an offline answer says it may be partial");
    assert!(why.contains("unreachable") && why.contains("partial"), "{why}");
    // Whatever the cache answers offline, it holds (a get finds every hit, complete).
    let (some, partial) = search_ids(&edge, "catalog", vec_for(5000), 10).await;
    assert!(partial.is_some() && !some.is_empty());
    let held = items
        .get(v1::GetRequest { collection: "catalog".into(), ids: some.clone(), ..Default::default() })
        .await
        .unwrap();
    assert!(held.metadata().get("agentdb-partial").is_none(), "every hit is cached");
    assert_eq!(held.into_inner().items.len(), some.len());
    // 200 ids: more than the cache can hold, so some are missing offline.
    let ids: Vec<String> = (700..900).map(|i| format!("c-{i}")).collect();
    let got = items.get(v1::GetRequest { collection: "catalog".into(), ids, ..Default::default() }).await.unwrap();
    assert!(got.metadata().get("agentdb-partial").is_some(), "missing items offline: partial");
    assert!(got.into_inner().items.len() < 200);
    // Through REST the same header comes back.
    let body = json!({"vector": {"values": vec_for(5000 + 295)}, "topK": 1}).to_string();
    let (code, head, out) =
        common::http(edge.http_addr.as_ref().unwrap(), "/v1/collections/catalog/search", Some(&body), &[]);
    assert_eq!(code, 200, "{out}");
    assert!(head.to_ascii_lowercase().contains("agentdb-partial: the hub is unreachable"), "{head}");
    let st = status(&edge);
    assert!(st["caches"][0]["bytes"].as_u64().unwrap() <= BUDGET, "{st}");
    eprintln!(
        "edge cache: {} (answers from the hub {}, from the cache {}, evicted {})",
        st["caches"][0], st["cache_answers_from_hub"], st["cache_answers_local"], st["cache_evicted"]
    );
}

/// The leaf link over mutual TLS: the hub's leaf-node listener verifies client
/// certificates; an edge with its own certificate syncs, one signed by another CA never
/// reaches the hub.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_leaf_link_runs_over_mutual_tls_with_a_certificate_per_edge() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    let fleet = ca("fleet CA");
    let ca_pem = certs.join("ca.pem");
    std::fs::write(&ca_pem, fleet.pem()).unwrap();
    let (hub_cert, hub_key) = cert(&certs, &fleet, "hub", false);
    let (edge_cert, edge_key) = cert(&certs, &fleet, "store-1", true);
    let (rogue_cert, rogue_key) = cert(&certs, &ca("someone else"), "rogue", true);
    let tls = format!(
        "tls {{ cert_file: {hub_cert:?}, key_file: {hub_key:?}, ca_file: {:?}, verify: true }}",
        ca_pem.display().to_string()
    );
    let (_hub_nats, np, lp) = hub_nats(dir.path(), &tls);
    let hub_url = format!("nats://127.0.0.1:{np}");
    let sets =
        ["--set", "http_listen=127.0.0.1:0", "--set", "edge.clock_interval_ms=300", "--set", "edge.collections=notes"];
    let mut hub_args = vec!["--edge-hub", hub_url.as_str(), "--node-id", "hub"];
    hub_args.extend(sets);
    let hub = Server::start(&dir.path().join("hub"), &hub_args);
    let tls_hub = format!("tls://127.0.0.1:{lp}");
    let ca_set = format!("edge.tls_ca={}", ca_pem.display());
    let start = |name: &str, cert: &str, key: &str| {
        let (c, k) = (format!("edge.tls_cert={cert}"), format!("edge.tls_key={key}"));
        let mut args =
            vec!["--edge", "--hub", tls_hub.as_str(), "--node-id", name, "--set", &ca_set, "--set", &c, "--set", &k];
        args.extend(sets);
        Server::start(&dir.path().join(name), &args)
    };
    let edge = start("store-1", &edge_cert, &edge_key);
    let rogue = start("rogue", &rogue_cert, &rogue_key);
    for s in [&hub, &edge, &rogue] {
        create_flat(s, "notes").await;
    }
    upsert(&edge, "notes", vec![item("from-store-1", vec_for(1), json!({"text": "over mTLS"}))]).await.unwrap();
    upsert(&rogue, "notes", vec![item("from-rogue", vec_for(2), json!({"text": "should not arrive"}))]).await.unwrap();
    wait_for("the edge's write reaches the hub over mutual TLS", Duration::from_secs(30), || {
        let d = digests(&hub, "notes");
        d.contains_key("from-store-1").then_some(()).ok_or(format!("hub holds {d:?}"))
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(get(&hub, "notes", "from-rogue").await.is_none(), "a certificate from another CA is refused");
    assert_eq!(status(&rogue)["hub_reachable"], false);
    assert_eq!(status(&edge)["hub_reachable"], true);
}

/// After a long cut, sync resumes at once both ways. JetStream backs off re-creating a
/// source's consumer by 10 s more per failure (up to 2 minutes): after a minute offline
/// its next try came 50 s after the link was back. The edge and the hub restart a
/// source that has been silent while its far side is alive (`edge/src/stalls.rs`).
/// Not under SERIAL: it waits out the cut while the other scenarios run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_resumes_at_once_after_a_long_cut() {
    let dir = tempfile::tempdir().unwrap();
    let (_hub_nats, np, lp) = hub_nats(dir.path(), "");
    let relay = Relay::start(lp);
    let hub = start_hub(&dir.path().join("hub"), np);
    let edge =
        start_edge(&dir.path().join("edge"), "edge-c", relay.port, &["--set", "edge.collections=products,orders"]);
    for s in [&hub, &edge] {
        create_collections(s).await;
    }
    let has = |s: &Server, id: &str| digests(s, "products").contains_key(id);
    upsert(&hub, "products", vec![product("before", 1, 1, &[], "before the cut")]).await.unwrap();
    wait_for("the first write comes down", Duration::from_secs(30), || {
        has(&edge, "before").then_some(()).ok_or("not yet".into())
    });
    // Long enough for JetStream's third retry (at about 60 s) to have failed too.
    relay.cut();
    tokio::time::sleep(Duration::from_secs(62)).await;
    upsert(&hub, "products", vec![product("down", 2, 1, &[], "written on the hub during the cut")]).await.unwrap();
    upsert(&edge, "products", vec![product("up", 3, 1, &[], "written on the edge during the cut")]).await.unwrap();
    relay.restore();
    // Without the restart the next try would be about 38 s away.
    wait_for("both ways resume after the link is back", Duration::from_secs(15), || {
        match (has(&edge, "down"), has(&hub, "up")) {
            (true, true) => Ok(()),
            (d, u) => Err(format!("hub -> edge {d}, edge -> hub {u}; edge streams {}", status(&edge)["streams"])),
        }
    });
    let log = std::fs::read_to_string(&edge.log).unwrap_or_default();
    assert!(log.contains("a stalled source was restarted"), "the edge says what it did");
}
