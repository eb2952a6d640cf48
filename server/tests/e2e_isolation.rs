//! Tenant and scope isolation through the real binary (issue 16): a row policy holds for
//! every value a written item carries, every listener obeys the safe default, and every
//! read surface that mixes collections (events, workflow runs, server status, standing
//! queries, queues) shows a principal only what it may see.

mod common;

use agentdb_proto::v1;
use common::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;
use tonic::Code;

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// `agentdb serve` with these extra arguments; returns (child, gRPC line, HTTP line).
fn spawn(data: &std::path::Path, args: &[&str]) -> std::process::Child {
    Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .args(args)
        .env_remove("AGENTDB_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The HTTP listener obeys the rule the gRPC listener does: no unauthenticated server
/// on a non-loopback address unless `--insecure` says so.
#[test]
fn the_http_listener_obeys_the_safe_default() {
    let dir = tempfile::tempdir().unwrap();
    let out = spawn(&dir.path().join("a"), &["--set", "http_listen=0.0.0.0:0"]).wait_with_output().unwrap();
    assert!(!out.status.success(), "an open HTTP listener must not start");
    let err = stderr(&out);
    assert!(
        err.contains("refusing to listen on 0.0.0.0") && err.contains("http_listen") && err.contains("--insecure"),
        "{err}"
    );

    // --insecure overrides it, loudly.
    let mut child = spawn(&dir.path().join("b"), &["--set", "http_listen=0.0.0.0:0", "--insecure"]);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.starts_with("agentdb http listening on 0.0.0.0:"), "{first}");
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("WARNING: --insecure") && stderr(&out).contains("http_listen"), "{}", stderr(&out));

    // With authentication on, the same address starts and A2A asks for credentials.
    let mut child = spawn(&dir.path().join("c"), &["--set", "http_listen=0.0.0.0:0", "--set", "security.auth=api_key"]);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let port: u16 = first.rsplit(':').next().unwrap().trim().parse().unwrap();
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{"message":{"role":"ROLE_USER","messageId":"m1","parts":[{"text":"remember: x"}]}}}"#;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST /a2a HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    assert!(resp.starts_with("HTTP/1.1 401"), "{resp}");
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

/// A writer whose row policy is `tenant = "acme"` cannot store an item that readers bound
/// to another tenant see: every value under the policy's fields must satisfy it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_policy_holds_for_every_value_a_written_item_carries() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--set", "security.auth=api_key"]);
    let admin = server.admin_key();
    server.ok_as(&admin, &["collection", "create", "shared", "--space", "v:4:l2:Flat"]);
    let acme = server.create_key(&admin, "acme", "writer", &[], "tenant = \"acme\"").await;
    let nested = server.create_key(&admin, "acme-org", "writer", &[], "org.tenant = \"acme\"").await;
    let not_globex = server.create_key(&admin, "not-globex", "writer", &[], "tenant != \"globex\"").await;
    let globex = server.create_key(&admin, "globex", "reader", &[], "tenant = \"globex\"").await;
    let url = server.url();
    let upsert = |key: String, id: &'static str, payload: Value| {
        let url = url.clone();
        async move {
            let mut items = v1::items_client::ItemsClient::new(authed(&url, Some(&key)).await);
            items
                .upsert(v1::UpsertRequest {
                    collection: "shared".into(),
                    items: vec![item(id, vec![1.0, 0.0, 0.0, 0.0], payload)],
                })
                .await
        }
    };
    for (key, id, payload) in [
        (&acme, "both", json!({"tenant": ["acme", "globex"]})),
        (&acme, "both2", json!({"tenant": ["globex", "acme"], "n": 1})),
        (&acme, "empty", json!({"tenant": []})),
        (&nested, "nested", json!({"org": {"tenant": ["acme", "globex"]}})),
        (&not_globex, "ne", json!({"tenant": ["initech", "globex"]})),
    ] {
        let e = upsert(key.clone(), id, payload.clone()).await.unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied, "{id}: {payload}");
        assert!(e.message().contains("row policy") && e.message().contains("every value"), "{}", e.message());
    }
    for (key, id, payload) in [
        (&acme, "a1", json!({"tenant": "acme"})),
        (&acme, "a2", json!({"tenant": ["acme"]})),
        (&nested, "a3", json!({"org": {"tenant": "acme"}, "tenant": "acme"})),
        (&not_globex, "a4", json!({"tenant": ["acme", "initech"]})),
    ] {
        upsert(key.clone(), id, payload).await.unwrap();
    }

    // Nothing acme wrote reaches a globex reader.
    let mut items = v1::items_client::ItemsClient::new(authed(&url, Some(&globex)).await);
    let hits = items
        .search(v1::SearchRequest {
            collection: "shared".into(),
            vector: Some(v1::Vector { values: vec![1.0, 0.0, 0.0, 0.0], ..Default::default() }),
            top_k: 10,
            with_payload: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .hits;
    assert!(hits.is_empty(), "{hits:?}");
    let ids = ["both", "both2", "nested", "ne", "a1", "a2", "a3", "a4"].map(String::from).to_vec();
    let got = items
        .get(v1::GetRequest { collection: "shared".into(), ids, with_vectors: false, ..Default::default() })
        .await
        .unwrap();
    assert!(got.into_inner().items.is_empty());
    // The admin sees exactly the four accepted writes.
    let mut items = v1::items_client::ItemsClient::new(authed(&url, Some(&admin)).await);
    let c = items
        .count(v1::CountRequest { collection: "shared".into(), filter: String::new(), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(c.into_inner().count, 4);
}

/// Events until none arrives for `quiet`.
async fn drain(key: &str, url: &str, quiet: Duration) -> Vec<v1::Event> {
    let mut ev = v1::events_client::EventsClient::new(authed(url, Some(key)).await);
    let mut s = ev.subscribe(v1::SubscribeRequest { topics: vec![], from_offset: Some(0) }).await.unwrap().into_inner();
    let mut out = Vec::new();
    while let Ok(m) = tokio::time::timeout(quiet, s.message()).await {
        match m.unwrap().and_then(|m| m.msg) {
            Some(v1::subscribe_response::Msg::Event(e)) => out.push(e),
            Some(_) => {}
            None => break,
        }
    }
    out
}

fn mentions(events: &[v1::Event], needle: &str) -> bool {
    events.iter().any(|e| e.data_json.contains(needle) || e.subject.contains(needle))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_read_surface_shows_a_principal_only_what_it_may_see() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--set", "security.auth=api_key"]);
    let (admin, url) = (server.admin_key(), server.url());
    for args in [
        &["collection", "create", "secret", "--space", "v:4:cosine:Flat"][..],
        &["collection", "create", "public", "--space", "v:4:cosine:Flat"],
        &["agent", "register", "watcher", "--no-memory"],
        &["agent", "watch", "watcher", "spy", "secret", "--vector", "[1, 0, 0, 0]", "--threshold", "0.5"],
        &["queue", "create", "jobs"],
        &["queue", "create", "other"],
    ] {
        server.ok_as(&admin, args);
    }
    let scoped = server.create_key(&admin, "scoped-reader", "reader", &["public"], "").await;
    let scoped_writer = server.create_key(&admin, "scoped-writer", "writer", &["public"], "").await;
    let jobs_writer = server.create_key(&admin, "jobs-writer", "writer", &["public", "queue:jobs"], "").await;
    let tenant = server.create_key(&admin, "acme", "writer", &[], "tenant = \"acme\"").await;
    let bad = v1::security_client::SecurityClient::new(authed(&url, Some(&admin)).await)
        .create_key(v1::CreateKeyRequest {
            name: "x".into(),
            role: "reader".into(),
            collections: vec!["queue:../x".into()],
            row_filter: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);

    // The admin writes a secret item (a standing-query match) and runs a workflow whose
    // inputs are secret; someone else writes to the public collection.
    let mut items = v1::items_client::ItemsClient::new(authed(&url, Some(&admin)).await);
    let secret = item("s1", vec![1.0, 0.0, 0.0, 0.0], json!({"source": "/home/admin/TOPSECRET-plan.txt"}));
    items.upsert(v1::UpsertRequest { collection: "secret".into(), items: vec![secret] }).await.unwrap();
    let public = vec![
        item("p1", vec![0.0, 1.0, 0.0, 0.0], json!({"tenant": "acme"})),
        item("p2", vec![0.0, 1.0, 1.0, 0.0], json!({"tenant": "globex"})),
    ];
    items.upsert(v1::UpsertRequest { collection: "public".into(), items: public }).await.unwrap();
    let wf = dir.path().join("leak.yaml");
    std::fs::write(
        &wf,
        "name: leak\nsteps:\n  - id: tell\n    notify: {message: 'plan {{ inputs.plan }}', subject: plan}\n",
    )
    .unwrap();
    server.ok_as(&admin, &["workflow", "apply", wf.to_str().unwrap()]);
    let run: Value = serde_json::from_slice(
        &server.ok_as(&admin, &["workflow", "run", "leak", "-i", "plan=TOPSECRET-run", "--wait", "--json"]),
    )
    .unwrap();
    let run_id = run["id"].as_str().unwrap().to_string();
    // The scoped writer's own run stays visible to it.
    let own: Value = serde_json::from_slice(
        &server.ok_as(&scoped_writer, &["workflow", "run", "leak", "-i", "plan=mine", "--wait", "--json"]),
    )
    .unwrap();
    let own_id = own["id"].as_str().unwrap().to_string();

    // Events: the admin sees the match and the runs; the scoped and tenant keys see neither.
    let all = drain(&admin, &url, Duration::from_millis(1500)).await;
    assert!(mentions(&all, "TOPSECRET-plan") && mentions(&all, "TOPSECRET-run"), "{all:#?}");
    for key in [&scoped, &tenant] {
        let seen = drain(key, &url, Duration::from_millis(1000)).await;
        assert!(!mentions(&seen, "TOPSECRET") && !mentions(&seen, "s1") && !mentions(&seen, &run_id), "{seen:#?}");
        assert!(seen.iter().all(|e| e.topic != "standing_query"), "{seen:#?}");
    }
    let mine = drain(&scoped_writer, &url, Duration::from_millis(1000)).await;
    assert!(mentions(&mine, &own_id) && !mentions(&mine, &run_id), "{mine:#?}");

    // Workflow runs: not found / not listed for others, visible to their owner.
    for key in [&scoped, &tenant, &scoped_writer] {
        let o = server.cli_as(key, &["workflow", "status", &run_id, "--json"]);
        assert!(!o.status.success() && stderr(&o).contains("not found"), "{}", stderr(&o));
        let o = server.cli_as(key, &["workflow", "cancel", &run_id]);
        assert!(!o.status.success(), "cancel of another principal's run");
        let runs = String::from_utf8(server.ok_as(key, &["workflow", "runs", "--json"])).unwrap();
        assert!(!runs.contains(&run_id) && !runs.contains("TOPSECRET"), "{runs}");
    }
    let runs = String::from_utf8(server.ok_as(&scoped_writer, &["workflow", "runs", "--json"])).unwrap();
    assert!(runs.contains(&own_id), "{runs}");
    let runs = String::from_utf8(server.ok_as(&admin, &["workflow", "runs", "--json"])).unwrap();
    assert!(runs.contains(&run_id) && runs.contains(&own_id), "{runs}");

    // Definitions naming a collection are listed only for principals that may read it.
    let peek = dir.path().join("peek.yaml");
    std::fs::write(&peek, "name: peek\nsteps:\n  - id: s\n    search: {collection: secret, text: plan}\n").unwrap();
    server.ok_as(&admin, &["workflow", "apply", peek.to_str().unwrap()]);
    for key in [&scoped, &scoped_writer] {
        let list = String::from_utf8(server.ok_as(key, &["workflow", "list"])).unwrap();
        assert!(list.contains("leak") && !list.contains("peek"), "{list}");
        let o = server.cli_as(key, &["workflow", "show", "peek"]);
        assert!(!o.status.success() && stderr(&o).contains("not found"), "{}", stderr(&o));
        let o = server.cli_as(key, &["workflow", "run", "peek"]);
        let err = stderr(&o);
        assert!(!o.status.success() && (err.contains("not found") || err.contains("may not write")), "{err}");
    }
    let list = String::from_utf8(server.ok_as(&admin, &["workflow", "list"])).unwrap();
    assert!(list.contains("peek"), "{list}");

    // Server status: only readable collections, counted under the row policy; no data dir.
    let status = |key: String| {
        let url = url.clone();
        async move {
            let mut s = v1::server_client::ServerClient::new(authed(&url, Some(&key)).await);
            s.status(v1::StatusRequest {}).await.unwrap().into_inner()
        }
    };
    let st = status(scoped.clone()).await;
    let names: Vec<&str> = st.collections.iter().map(|c| c.name.as_str()).collect();
    assert_eq!((names, st.data_dir.as_str()), (vec!["public"], ""));
    let st = status(tenant.clone()).await;
    let public = st.collections.iter().find(|c| c.name == "public").unwrap();
    assert_eq!((public.count, st.data_dir.as_str()), (1, ""), "one acme item of two");
    let st = status(admin.clone()).await;
    assert!(st.collections.iter().any(|c| c.name == "secret") && !st.data_dir.is_empty());
    let listed = v1::collections_client::CollectionsClient::new(authed(&url, Some(&tenant)).await)
        .list(v1::ListCollectionsRequest {})
        .await
        .unwrap()
        .into_inner()
        .collections;
    assert_eq!(listed.iter().find(|c| c.name == "public").map(|c| c.count), Some(1));

    // Standing queries: only on collections the principal may read in full.
    let list = |key: String| {
        let url = url.clone();
        async move {
            let mut sq = v1::standing_queries_client::StandingQueriesClient::new(authed(&url, Some(&key)).await);
            sq.list(v1::ListStandingQueriesRequest { agent: String::new() }).await.unwrap().into_inner().queries.len()
        }
    };
    assert_eq!((list(scoped.clone()).await, list(tenant.clone()).await, list(admin.clone()).await), (0, 0, 1));

    // Queues are resources of their own: `queue:NAME` in a key's scope.
    let mut q = v1::queues_client::QueuesClient::new(authed(&url, Some(&admin)).await);
    q.send(v1::SendMessageRequest { queue: "other".into(), body: b"TOPSECRET-msg".to_vec(), ..Default::default() })
        .await
        .unwrap();
    for key in [&scoped_writer, &tenant, &jobs_writer] {
        let mut q = v1::queues_client::QueuesClient::new(authed(&url, Some(key)).await);
        let e = q
            .receive(v1::ReceiveMessagesRequest { queue: "other".into(), max_messages: 10, ..Default::default() })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied, "{}", e.message());
    }
    let mut q = v1::queues_client::QueuesClient::new(authed(&url, Some(&jobs_writer)).await);
    q.send(v1::SendMessageRequest { queue: "jobs".into(), body: b"work".to_vec(), ..Default::default() })
        .await
        .unwrap();
    let got = q
        .receive(v1::ReceiveMessagesRequest { queue: "jobs".into(), max_messages: 10, ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .messages;
    assert_eq!(got.len(), 1);
    let stats = q.stats(v1::QueueStatsRequest { name: String::new() }).await.unwrap().into_inner().queues;
    assert_eq!(stats.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), vec!["jobs"]);
    let mut q = v1::queues_client::QueuesClient::new(authed(&url, Some(&scoped_writer)).await);
    let e = q.send(v1::SendMessageRequest { queue: "jobs".into(), ..Default::default() }).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
}

/// Agent memory is private to its agent (issue 20, point 4): an unscoped reader or writer
/// cannot search, list or write a registered agent's memory or another principal's A2A
/// memory; its own memory, an admin, and a key scoped to the memory on purpose can.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_memory_is_private_unless_shared_on_purpose() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--set", "security.auth=api_key"]);
    let (admin, url) = (server.admin_key(), server.url());
    server.ok_as(&admin, &["agent", "register", "scout", "--memory-space", "text:4:cosine:Flat"]);
    let mem = "agent_scout_memory";
    let mut items = v1::items_client::ItemsClient::new(authed(&url, Some(&admin)).await);
    let secret = item("m1", vec![1.0, 0.0, 0.0, 0.0], json!({"note": "scout's private memory"}));
    items.upsert(v1::UpsertRequest { collection: mem.into(), items: vec![secret] }).await.unwrap();
    let reader = server.create_key(&admin, "reader", "reader", &[], "").await;
    let writer = server.create_key(&admin, "writer", "writer", &[], "").await;
    let scout = server.create_key(&admin, "scout", "writer", &[mem], "").await;
    let search = |key: String, collection: String| {
        let url = url.clone();
        async move {
            let mut items = v1::items_client::ItemsClient::new(authed(&url, Some(&key)).await);
            items
                .search(v1::SearchRequest {
                    collection,
                    vector: Some(v1::Vector { values: vec![1.0, 0.0, 0.0, 0.0], ..Default::default() }),
                    top_k: 5,
                    with_payload: true,
                    ..Default::default()
                })
                .await
        }
    };
    for key in [&reader, &writer] {
        let e = search(key.clone(), mem.into()).await.unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied);
        assert!(e.message().contains("private to its agent"), "{}", e.message());
        let list = String::from_utf8(server.ok_as(key, &["collection", "list"])).unwrap();
        assert!(!list.contains(mem), "{list}");
    }
    let mut w = v1::items_client::ItemsClient::new(authed(&url, Some(&writer)).await);
    let e = w
        .upsert(v1::UpsertRequest { collection: mem.into(), items: vec![item("x", vec![1.0; 4], json!({}))] })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    for key in [&admin, &scout] {
        let hits = search(key.clone(), mem.into()).await.unwrap().into_inner().hits;
        assert_eq!(hits.len(), 1, "{hits:?}");
    }
    // A2A memory (`remember`) is its principal's own: the writer's, invisible to the reader.
    let http = Server::start(
        &dir.path().join("data2"),
        &["--set", "security.auth=api_key", "--set", "http_listen=127.0.0.1:0"],
    );
    let admin2 = http.admin_key();
    let w2 = http.create_key(&admin2, "w2", "writer", &[], "").await;
    let r2 = http.create_key(&admin2, "r2", "reader", &[], "").await;
    let addr = http.http_addr.clone().expect("the HTTP listener");
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{"message":{"role":"ROLE_USER","messageId":"m1","parts":[{"text":"remember: the vault code is 4417"}]}}}"#;
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "POST /a2a HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {w2}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    assert!(resp.starts_with("HTTP/1.1 200") && resp.contains("TASK_STATE_COMPLETED"), "{resp}");
    let own = String::from_utf8(http.ok_as(&w2, &["collection", "list"])).unwrap();
    let memory = own
        .lines()
        .find_map(|l| l.split_whitespace().find(|w| w.starts_with("memory-key-")))
        .unwrap_or_else(|| panic!("{own}"));
    let o = http.cli_as(&r2, &["search", memory, "--text", "vault code"]);
    assert!(!o.status.success() && stderr(&o).contains("private to its agent"), "{}", stderr(&o));
    let list = String::from_utf8(http.ok_as(&r2, &["collection", "list"])).unwrap();
    assert!(!list.contains(memory), "{list}");
}
