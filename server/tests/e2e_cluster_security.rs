//! Security across a cluster (issue 21, point 7) through the real binary: API keys with
//! their roles, collection scopes and row policies, created through one node, hold on
//! every node at once; a revocation through any node reaches the others; a node that
//! joins later knows every key (revoked ones as revoked). A 3-server NATS JetStream
//! cluster and the AgentDB nodes run on loopback, started by the test.

mod common;

use agentdb_proto::v1;
use common::nats::{node_with, Nats};
use common::{authed, item, Server};
use std::time::{Duration, Instant};

const AUTH: &[&str] = &["--set", "security.auth=api_key"];

/// One cluster at a time (3 NATS servers and 2-3 nodes each, on 2 cores).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn node(dir: &std::path::Path, nats: &Nats, id: &str) -> Server {
    node_with(&dir.join(id), &nats.urls, id, AUTH)
}

async fn count(s: &Server, key: &str, token: &str) -> Result<u64, tonic::Status> {
    let mut c = v1::items_client::ItemsClient::new(authed(&s.url(), Some(key)).await);
    let req = v1::CountRequest { collection: "docs".into(), consistency_token: token.into(), ..Default::default() };
    Ok(c.count(req).await?.into_inner().count)
}

async fn search_ids(s: &Server, key: &str, token: &str) -> Result<Vec<String>, tonic::Status> {
    let mut c = v1::items_client::ItemsClient::new(authed(&s.url(), Some(key)).await);
    let r = c
        .search(v1::SearchRequest {
            collection: "docs".into(),
            vector: Some(v1::Vector { values: vec![0.0; 4], ..Default::default() }),
            top_k: 50,
            consistency_token: token.into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    Ok(r.hits.into_iter().map(|h| h.id).collect())
}

async fn keys_on(s: &Server, admin: &str) -> Vec<v1::ApiKeyInfo> {
    let mut sec = v1::security_client::SecurityClient::new(authed(&s.url(), Some(admin)).await);
    sec.list_keys(v1::ListKeysRequest::default()).await.unwrap().into_inner().keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_roles_and_row_policies_hold_on_every_node() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(dir.path(), 3);
    let n1 = node(dir.path(), &nats, "n1");
    let n2 = node(dir.path(), &nats, "n2");
    let (a1, a2) = (n1.admin_key(), n2.admin_key());

    // Each node's bootstrap admin key works on the other (published when it joined).
    let create = [
        "collection",
        "create",
        "docs",
        "--dim",
        "4",
        "--metric",
        "l2",
        "--index",
        "Flat",
        "--shards",
        "2",
        "--replicas",
        "2",
    ];
    n2.ok_as(&a1, &create);
    n1.ok_as(&a2, &["collection", "list"]);
    assert!(!n1.cli(&["collection", "list"]).status.success(), "no key, no answer");

    // 20 items of two tenants, written through n1.
    let mut c = v1::items_client::ItemsClient::new(authed(&n1.url(), Some(&a1)).await);
    let items = (0..20)
        .map(|i| item(&format!("t{}-{i}", i % 2), vec![i as f32, 0.0, 0.0, 0.0], serde_json::json!({"tenant": i % 2})))
        .collect();
    let token =
        c.upsert(v1::UpsertRequest { collection: "docs".into(), items }).await.unwrap().into_inner().consistency_token;

    // A reader key with a row policy, created through n1 and used at once through n2
    // (no wait: a key unknown to n2 is looked up in the cluster before it is refused).
    let tenant1 = n1.create_key(&a1, "tenant-1", "reader", &["docs"], "tenant = 1").await;
    assert_eq!(count(&n2, &tenant1, &token).await.unwrap(), 10, "the row policy holds on n2");
    let ids = search_ids(&n2, &tenant1, &token).await.unwrap();
    assert_eq!(ids.len(), 10);
    assert!(ids.iter().all(|id| id.starts_with("t1-")), "{ids:?}");
    // The role holds: a reader may not write, on either node.
    let mut w = v1::items_client::ItemsClient::new(authed(&n2.url(), Some(&tenant1)).await);
    let e = w
        .upsert(v1::UpsertRequest {
            collection: "docs".into(),
            items: vec![item("x", vec![0.0; 4], serde_json::json!({}))],
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    // The collection scope holds: a key for another collection reads nothing here.
    let elsewhere = n2.create_key(&a2, "elsewhere", "reader", &["elsewhere"], "").await;
    let e = count(&n1, &elsewhere, &token).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    // A made-up key is refused on both (the cluster lookup finds nothing).
    for s in [&n1, &n2] {
        let e = count(s, "adb_nosuchkey000_abcdefghijklmnopqrstuvwxyz0123456789ABCD", "").await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
    }

    // Every node lists every key (the watch carries them; allow it a moment).
    let t = Instant::now();
    while keys_on(&n2, &a2).await.iter().filter(|k| k.name == "tenant-1" || k.name == "elsewhere").count() < 2
        || keys_on(&n1, &a1).await.iter().filter(|k| k.name == "tenant-1" || k.name == "elsewhere").count() < 2
    {
        assert!(t.elapsed() < Duration::from_secs(10), "keys did not reach every node");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Revoked through n2: refused by n1 too, once the revocation arrives (milliseconds).
    let id = keys_on(&n2, &a2).await.into_iter().find(|k| k.name == "tenant-1").unwrap().id;
    n2.ok_as(&a2, &["keys", "revoke", &id]);
    assert_eq!(count(&n2, &tenant1, "").await.unwrap_err().code(), tonic::Code::Unauthenticated);
    let t = Instant::now();
    loop {
        match count(&n1, &tenant1, "").await {
            Err(e) if e.code() == tonic::Code::Unauthenticated => break,
            other => assert!(t.elapsed() < Duration::from_secs(5), "n1 still takes a revoked key: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("revocation through n2 reached n1 within {:?}", t.elapsed());

    // A node that joins later knows every key: the admin keys work, the revoked key does
    // not, the row-policy key of the other tenant... is created through it and used on n1.
    let n3 = node(dir.path(), &nats, "n3");
    assert_eq!(count(&n3, &a1, &token).await.unwrap(), 20);
    assert_eq!(count(&n3, &a2, &token).await.unwrap(), 20);
    assert_eq!(count(&n3, &tenant1, "").await.unwrap_err().code(), tonic::Code::Unauthenticated);
    let listed = keys_on(&n3, &a1).await;
    assert!(listed.iter().any(|k| k.name == "tenant-1" && k.revoked), "{listed:?}");
    let tenant0 = n3.create_key(&a1, "tenant-0", "reader", &["docs"], "tenant = 0").await;
    let ids = search_ids(&n1, &tenant0, &token).await.unwrap();
    assert_eq!(ids.len(), 10);
    assert!(ids.iter().all(|id| id.starts_with("t0-")), "{ids:?}");
    // Every node audited what it served: n2 holds the revocation, n1 the refusals.
    let audit1 = std::fs::read_to_string(dir.path().join("n1/security/audit.log")).unwrap_or_default();
    let audit2 = std::fs::read_to_string(dir.path().join("n2/security/audit.log")).unwrap_or_default();
    assert!(audit2.contains("RevokeKey"), "n2's audit log records the revocation");
    assert!(audit1.contains("\"fail\""), "n1's audit log records the refused key");
}

async fn put(s: &Server, key: &str, collection: &str, ids: std::ops::Range<usize>) -> Result<(), tonic::Status> {
    let mut c = v1::items_client::ItemsClient::new(authed(&s.url(), Some(key)).await);
    let items =
        ids.map(|i| item(&format!("i{i}"), vec![i as f32, 1.0, 0.0, 0.0], serde_json::json!({"i": i}))).collect();
    c.upsert(v1::UpsertRequest { collection: collection.into(), items }).await.map(|_| ())
}

/// Storage quotas count a principal's writes through every node, sharded collections
/// and each node's own alike; deletes credit them back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_quotas_are_cluster_wide() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(dir.path(), 3);
    let q = ["--set", "security.auth=api_key", "--set", "security.storage_quota_items=30"];
    let n1 = node_with(&dir.path().join("n1"), &nats.urls, "n1", &q);
    let n2 = node_with(&dir.path().join("n2"), &nats.urls, "n2", &q);
    let admin = n1.admin_key();
    n1.ok_as(
        &admin,
        &[
            "collection",
            "create",
            "docs",
            "--dim",
            "4",
            "--metric",
            "l2",
            "--index",
            "Flat",
            "--shards",
            "2",
            "--replicas",
            "2",
        ],
    );
    n2.ok_as(&admin, &["collection", "create", "local", "--dim", "4", "--metric", "l2", "--index", "Flat"]);
    let w = n1.create_key(&admin, "tenant", "writer", &[], "").await;

    // 20 through n1 and 10 through n2: the quota of 30 is full, through either node.
    put(&n1, &w, "docs", 0..20).await.unwrap();
    put(&n2, &w, "docs", 20..30).await.unwrap();
    for s in [&n1, &n2] {
        let e = put(s, &w, "docs", 30..31).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
        assert!(e.message().contains("storage quota exceeded") && e.message().contains("30"), "{e:?}");
    }
    // A node's own (not sharded) collection counts against the same figure.
    let e = put(&n2, &w, "local", 0..1).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
    // Replacing items does not add to the count.
    put(&n2, &w, "docs", 0..5).await.unwrap();
    // Deleting through n2 gives room through n1.
    let mut c = v1::items_client::ItemsClient::new(authed(&n2.url(), Some(&w)).await);
    let ids = (0..5).map(|i| format!("i{i}")).collect();
    c.delete(v1::DeleteRequest { collection: "docs".into(), ids, filter: String::new() }).await.unwrap();
    put(&n1, &w, "docs", 30..35).await.unwrap();
    let e = put(&n1, &w, "docs", 35..36).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
}
