//! The gRPC API and the CLI through the real binary.

mod common;

use agentdb_proto::v1;
use common::*;
use serde_json::json;
use tonic::Code;

fn expect<T: std::fmt::Debug>(r: Result<tonic::Response<T>, tonic::Status>, code: Code, words: &[&str]) {
    let s = r.expect_err("must fail");
    assert_eq!(s.code(), code, "{}", s.message());
    for w in words {
        assert!(s.message().contains(w), "message {:?} should mention {w:?}", s.message());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collections_items_search_health_reflection() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let (mut cols, mut items) = server.clients().await;

    // Health and reflection.
    let ch = server.channel().await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(ch.clone());
    for svc in ["", "agentdb.v1.Items", "agentdb.v1.Collections"] {
        let r = health.check(tonic_health::pb::HealthCheckRequest { service: svc.into() }).await.unwrap().into_inner();
        assert_eq!(r.status, tonic_health::pb::health_check_response::ServingStatus::Serving as i32, "{svc}");
    }
    let mut refl = tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient::new(ch);
    let req = tonic_reflection::pb::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(tonic_reflection::pb::v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut stream = refl.server_reflection_info(tokio_stream::iter(vec![req])).await.unwrap().into_inner();
    let resp = stream.message().await.unwrap().unwrap();
    let Some(tonic_reflection::pb::v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        resp.message_response
    else {
        panic!("unexpected reflection response")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for want in ["agentdb.v1.Items", "agentdb.v1.Collections", "grpc.health.v1.Health"] {
        assert!(names.contains(&want.to_string()), "{names:?}");
    }

    // Two spaces, different metrics and indexes.
    let info = cols
        .create(v1::CreateCollectionRequest {
            name: "media".into(),
            spaces: vec![space("text", 16, v1::Metric::Cosine, ""), space("image", 8, v1::Metric::L2, "Flat")],
            multimodal: false,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .info
        .unwrap();
    assert_eq!(info.spaces[0].spec.as_ref().unwrap().index, "HNSW32", "default index");
    let batch: Vec<v1::Item> = (0..300)
        .map(|i| v1::Item {
            id: format!("m{i}"),
            vectors: [
                ("text".to_string(), v1::Vector { values: rand_vec(i, 16), ..Default::default() }),
                ("image".to_string(), v1::Vector { values: rand_vec(i + 1000, 8), ..Default::default() }),
            ]
            .into(),
            payload_json: json!({"i": i, "kind": if i % 4 == 0 { "photo" } else { "note" }}).to_string(),
        })
        .collect();
    let ids =
        items.upsert(v1::UpsertRequest { collection: "media".into(), items: batch }).await.unwrap().into_inner().ids;
    assert_eq!(ids.len(), 300);

    let r = items
        .search(v1::SearchRequest {
            collection: "media".into(),
            space: "image".into(),
            vector: Some(v1::Vector { values: rand_vec(1040, 8), ..Default::default() }),
            top_k: 5,
            filter: "kind = \"photo\"".into(),
            with_payload: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.hits.len(), 5);
    assert_eq!(r.hits[0].id, "m40", "the photo whose image vector is the query");
    assert_eq!(r.hits[0].score, 0.0);
    assert!(r.hits.iter().all(|h| h.payload_json.contains("photo")));
    assert!(r.hits.windows(2).all(|w| w[0].score <= w[1].score), "l2: ascending distances");

    let flushed = cols
        .flush(v1::FlushRequest { collection: "media".into(), optimize: true })
        .await
        .unwrap()
        .into_inner()
        .info
        .unwrap();
    assert_eq!((flushed.count, flushed.segments, flushed.unindexed), (300, 1, 0));
    assert!(flushed.disk_bytes > 300 * 24 * 4);
    assert_eq!(flushed.spaces[0].index_kinds, vec!["HNSW32 (1 segment)".to_string()]);

    let batch = items
        .search_batch(v1::SearchBatchRequest {
            collection: "media".into(),
            space: "text".into(),
            vectors: (0..3).map(|i| v1::Vector { values: rand_vec(i * 7, 16), ..Default::default() }).collect(),
            top_k: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let top: Vec<&str> = batch.results.iter().map(|r| r.hits[0].id.as_str()).collect();
    assert_eq!(top, vec!["m0", "m7", "m14"]);

    let got = items
        .get(v1::GetRequest {
            collection: "media".into(),
            ids: vec!["m3".into(), "zz".into()],
            with_vectors: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.items.len(), 1);
    assert_eq!(got.items[0].vectors["image"].values, rand_vec(1003, 8));
    let n = items
        .delete(v1::DeleteRequest { collection: "media".into(), filter: "i >= 100".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(n.deleted, 200);
    let c = items
        .count(v1::CountRequest { collection: "media".into(), filter: "kind = \"photo\"".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(c.count, 25);
    let list = cols.list(v1::ListCollectionsRequest {}).await.unwrap().into_inner();
    assert_eq!(list.collections.len(), 1);
    cols.drop(v1::DropCollectionRequest { name: "media".into() }).await.unwrap();
    assert!(cols.list(v1::ListCollectionsRequest {}).await.unwrap().into_inner().collections.is_empty());
}

/// `Vector.packed` (little-endian float32 bytes) carries the same vectors as `values`
/// through upsert, search and batch search; a malformed one is refused by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packed_vectors_mean_the_same_as_values() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let (mut cols, mut items) = server.clients().await;
    cols.create(v1::CreateCollectionRequest {
        name: "p".into(),
        spaces: vec![space("", 16, v1::Metric::L2, "Flat")],
        ..Default::default()
    })
    .await
    .unwrap();
    let pack = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let packed = |v: &[f32]| v1::Vector { packed: pack(v), ..Default::default() };
    let plain = |v: &[f32]| v1::Vector { values: v.to_vec(), ..Default::default() };
    // Half the items sent packed, half as values.
    let batch: Vec<v1::Item> = (0..60)
        .map(|i| {
            let v = rand_vec(i, 16);
            let v = if i % 2 == 0 { packed(&v) } else { plain(&v) };
            v1::Item { id: format!("x{i}"), vectors: [(String::new(), v)].into(), ..Default::default() }
        })
        .collect();
    items.upsert(v1::UpsertRequest { collection: "p".into(), items: batch }).await.unwrap();
    let got = items
        .get(v1::GetRequest {
            collection: "p".into(),
            ids: vec!["x4".into(), "x5".into()],
            with_vectors: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let only = |it: &v1::Item| it.vectors.values().next().cloned().unwrap();
    assert_eq!(only(&got.items[0]).values, rand_vec(4, 16), "stored bit for bit; responses fill values");
    assert_eq!(only(&got.items[1]).values, rand_vec(5, 16));
    assert!(only(&got.items[0]).packed.is_empty());

    let search =
        |v: v1::Vector| v1::SearchRequest { collection: "p".into(), vector: Some(v), top_k: 5, ..Default::default() };
    for seed in [4u64, 9, 1234] {
        let q = rand_vec(seed, 16);
        let a = items.search(search(plain(&q))).await.unwrap().into_inner().hits;
        let b = items.search(search(packed(&q))).await.unwrap().into_inner().hits;
        assert_eq!(a.len(), 5);
        let key = |h: &Vec<v1::Hit>| h.iter().map(|h| (h.id.clone(), h.score.to_bits())).collect::<Vec<_>>();
        assert_eq!(key(&a), key(&b), "query {seed}");
        if seed < 60 {
            assert_eq!(a[0].id, format!("x{seed}"));
        }
    }
    let qs: Vec<Vec<f32>> = (0..4).map(|i| rand_vec(i * 11, 16)).collect();
    let batch = |vectors: Vec<v1::Vector>| v1::SearchBatchRequest {
        collection: "p".into(),
        vectors,
        top_k: 3,
        ..Default::default()
    };
    let a = items.search_batch(batch(qs.iter().map(|q| plain(q)).collect())).await.unwrap().into_inner();
    let b = items.search_batch(batch(qs.iter().map(|q| packed(q)).collect())).await.unwrap().into_inner();
    let tops = |r: &v1::SearchBatchResponse| r.results.iter().map(|r| r.hits[0].id.clone()).collect::<Vec<_>>();
    assert_eq!(tops(&a), vec!["x0", "x11", "x22", "x33"]);
    assert_eq!(tops(&a), tops(&b));

    // Malformed packed vectors: the right status, a message that names the problem.
    let q = rand_vec(1, 16);
    let mut short = pack(&q);
    short.pop();
    let odd = v1::Vector { packed: short.clone(), ..Default::default() };
    expect(
        items.search(search(odd.clone())).await,
        Code::InvalidArgument,
        &["query", "packed", "63 bytes", "multiple of 4"],
    );
    let both = v1::Vector { values: q.clone(), packed: pack(&q), ..Default::default() };
    expect(items.search(search(both.clone())).await, Code::InvalidArgument, &["both", "values", "packed"]);
    expect(
        items.search_batch(batch(vec![plain(&q), odd.clone()])).await,
        Code::InvalidArgument,
        &["query 1", "multiple of 4"],
    );
    let bad = v1::Item { id: "bad".into(), vectors: [(String::new(), both)].into(), ..Default::default() };
    expect(
        items.upsert(v1::UpsertRequest { collection: "p".into(), items: vec![bad] }).await,
        Code::InvalidArgument,
        &["item 0", "both"],
    );
    // A packed vector of the wrong dimension is a dimension error like any other.
    let wrong = v1::Vector { packed: pack(&q[..8]), ..Default::default() };
    expect(items.search(search(wrong)).await, Code::InvalidArgument, &["dim"]);
    let n = items.count(v1::CountRequest { collection: "p".into(), ..Default::default() }).await.unwrap().into_inner();
    assert_eq!(n.count, 60, "nothing refused was written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_the_right_status_and_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--set", "limits.max_message_bytes=65536"]);
    let (mut cols, mut items) = server.clients().await;
    cols.create(v1::CreateCollectionRequest {
        name: "c".into(),
        spaces: vec![space("", 4, v1::Metric::Cosine, "Flat")],
        multimodal: false,
        ..Default::default()
    })
    .await
    .unwrap();

    let up = |it: v1::Item| v1::UpsertRequest { collection: "c".into(), items: vec![it] };

    expect(
        items.upsert(up(item("a", vec![1.0, 2.0], json!({})))).await,
        Code::InvalidArgument,
        &["dimension", "expected 4, got 2"],
    );
    expect(
        items.upsert(up(item("a", vec![1.0, f32::NAN, 0.0, 0.0], json!({})))).await,
        Code::InvalidArgument,
        &["non-finite"],
    );
    expect(
        items.upsert(up(item("a", vec![1.0, f32::INFINITY, 0.0, 0.0], json!({})))).await,
        Code::InvalidArgument,
        &["non-finite"],
    );
    let mut bad_payload = item("a", vec![1.0; 4], json!({}));
    bad_payload.payload_json = "{not json".into();
    expect(items.upsert(up(bad_payload)).await, Code::InvalidArgument, &["payload_json"]);
    expect(
        items
            .upsert(v1::UpsertRequest { collection: "nope".into(), items: vec![item("a", vec![1.0; 4], json!({}))] })
            .await,
        Code::NotFound,
        &["collection 'nope' not found"],
    );
    expect(
        items
            .search(v1::SearchRequest {
                collection: "c".into(),
                space: "zz".into(),
                vector: Some(v1::Vector { values: vec![1.0; 4], ..Default::default() }),
                ..Default::default()
            })
            .await,
        Code::NotFound,
        &["no vector space 'zz'"],
    );
    expect(
        items
            .search(v1::SearchRequest {
                collection: "c".into(),
                vector: Some(v1::Vector { values: vec![1.0; 4], ..Default::default() }),
                filter: "a = = 1".into(),
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        &["invalid filter at position"],
    );
    expect(
        cols.create(v1::CreateCollectionRequest {
            name: "c".into(),
            spaces: vec![space("", 4, v1::Metric::Cosine, "")],
            multimodal: false,
            ..Default::default()
        })
        .await,
        Code::AlreadyExists,
        &["already exists"],
    );
    expect(
        cols.create(v1::CreateCollectionRequest {
            name: "x".into(),
            spaces: vec![space("", 4, v1::Metric::Cosine, "HNSW32,Nope")],
            multimodal: false,
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        &["invalid index description"],
    );
    expect(
        cols.create(v1::CreateCollectionRequest {
            name: "../etc".into(),
            spaces: vec![space("", 4, v1::Metric::Cosine, "")],
            multimodal: false,
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        &["invalid collection name"],
    );
    expect(
        cols.create(v1::CreateCollectionRequest {
            name: "x".into(),
            spaces: vec![space("", 0, v1::Metric::Cosine, "")],
            multimodal: false,
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        &["dimension"],
    );
    // Oversize message: 100k floats > 64 KiB limit.
    let big = item("big", vec![0.5; 100_000], json!({}));
    expect(items.upsert(up(big)).await, Code::ResourceExhausted, &["limit of 65536 bytes"]);
    expect(
        items
            .search(v1::SearchRequest {
                collection: "c".into(),
                vector: Some(v1::Vector { values: vec![1.0; 4], ..Default::default() }),
                top_k: 1_000_000,
                ..Default::default()
            })
            .await,
        Code::ResourceExhausted,
        &["top_k"],
    );
    expect(
        items.delete(v1::DeleteRequest { collection: "c".into(), ..Default::default() }).await,
        Code::InvalidArgument,
        &["ids or a filter"],
    );
    // The server is still healthy and nothing was written.
    let c = items
        .count(v1::CountRequest { collection: "c".into(), filter: String::new(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(c.count, 0);
}

#[test]
fn cli_create_upsert_search_describe_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let ok = |args: &[&str]| {
        let out = server.cli(args);
        assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    ok(&["collection", "create", "docs", "--dim", "3", "--metric", "l2", "--index", "Flat"]);
    let file = dir.path().join("items.jsonl");
    let mut lines = String::new();
    for i in 0..50 {
        lines.push_str(
            &json!({"id": format!("d{i}"), "vector": [i as f32, 0.0, 1.0], "payload": {"i": i, "even": i % 2 == 0}})
                .to_string(),
        );
        lines.push('\n');
    }
    std::fs::write(&file, lines).unwrap();
    let out = ok(&["upsert", "docs", file.to_str().unwrap(), "--batch", "7"]);
    assert!(out.contains("upserted 50 items"), "{out}");
    let out = ok(&["search", "docs", "--vector", "[10.2, 0, 1]", "--top-k", "3", "--filter", "even = true", "--json"]);
    let hits: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(hits.iter().map(|h| h["id"].as_str().unwrap()).collect::<Vec<_>>(), vec!["d10", "d12", "d8"]);
    assert!(hits.iter().all(|h| h["score"].is_number() && h["payload"]["even"] == json!(true)));
    let out = ok(&["collection", "describe", "docs", "--json"]);
    let info: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(info["count"], json!(50));
    assert_eq!(info["spaces"][0]["metric"], json!("l2"));
    assert!(ok(&["collection", "list"]).contains("docs"));
    assert_eq!(ok(&["count", "docs", "--filter", "i < 10"]).trim(), "10");
    assert!(ok(&["delete", "docs", "d1", "d2"]).contains("deleted 2"));
    assert!(ok(&["get", "docs", "d3"]).contains("\"i\":3"));

    // Errors: one line on stderr, non-zero exit.
    for (args, words) in [
        (vec!["search", "docs", "--vector", "[1, 2]"], "expected 3, got 2"),
        (vec!["search", "nope", "--vector", "[1, 2, 3]"], "not found"),
        (vec!["collection", "create", "docs", "--dim", "3"], "already exists"),
        (vec!["search", "docs", "--vector", "[1,2,3]", "--filter", "i >"], "invalid filter"),
        (vec!["search", "docs", "--vector", "not json"], "--vector must be a JSON array"),
    ] {
        let out = server.cli(&args);
        assert!(!out.status.success(), "{args:?} should fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(err.contains(words), "{args:?}: {err}");
    }
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"id\":\"x\",\"vector\":[1,2,3]}\n{oops}\n").unwrap();
    let out = server.cli(&["upsert", "docs", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.jsonl:2"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = std::process::Command::new(BIN)
        .args(["collection", "list", "--server", "http://127.0.0.1:1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot connect to agentdb"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_exits_zero_and_the_lock_refuses_a_second_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start(&data, &[]);
    // A second process on the same data directory is refused with a clear message.
    let out = std::process::Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("locked by another agentdb process") && err.contains(&server.child.id().to_string()), "{err}");

    {
        let (mut cols, mut items) = server.clients().await;
        cols.create(v1::CreateCollectionRequest {
            name: "c".into(),
            spaces: vec![space("", 8, v1::Metric::Cosine, "")],
            multimodal: false,
            ..Default::default()
        })
        .await
        .unwrap();
        items
            .upsert(v1::UpsertRequest {
                collection: "c".into(),
                items: (0..100).map(|i| item(&format!("{i}"), rand_vec(i, 8), json!({}))).collect(),
            })
            .await
            .unwrap();
    }
    let status = server.terminate();
    assert_eq!(status.code(), Some(0), "log:\n{}", server.log_text());
    assert!(server.log_text().contains("shutdown complete"));

    // Restart: the data is there and the lock was released.
    let server = Server::start(&data, &[]);
    let (_, mut items) = server.clients().await;
    let c = items
        .count(v1::CountRequest { collection: "c".into(), filter: String::new(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(c.count, 100);
}
