//! Agents, the event bus and durable queues through the real binary: registration,
//! heartbeats and health events, lifecycle transitions (legal and not), queue
//! durability across SIGKILL, the dead-letter queue, a slow subscriber that lags and
//! resumes, the ingestion event, and authorization.

mod common;

use agentdb_proto::v1;
use common::*;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tonic::Code;

type EventStream = tonic::Streaming<v1::SubscribeResponse>;

async fn events_client(url: &str) -> v1::events_client::EventsClient<tonic::transport::Channel> {
    let ch = tonic::transport::Channel::from_shared(url.to_string()).unwrap().connect().await.unwrap();
    v1::events_client::EventsClient::new(ch).max_decoding_message_size(64 << 20).max_encoding_message_size(64 << 20)
}

async fn subscribe(url: &str, topics: &[&str], from: Option<u64>) -> EventStream {
    let mut c = events_client(url).await;
    c.subscribe(v1::SubscribeRequest { topics: topics.iter().map(|t| t.to_string()).collect(), from_offset: from })
        .await
        .unwrap()
        .into_inner()
}

/// The next event (panics on `lagged`, or after `wait`).
async fn next_event(s: &mut EventStream, wait: Duration) -> v1::Event {
    let m = tokio::time::timeout(wait, s.message()).await.expect("no event in time").unwrap().expect("stream ended");
    match m.msg {
        Some(v1::subscribe_response::Msg::Event(e)) => e,
        other => panic!("expected an event, got {other:?}"),
    }
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_register_heartbeat_health_events_and_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start(
        &data,
        &["--set", "orchestration.heartbeat_timeout_ms=700", "--set", "orchestration.health_check_interval_ms=50"],
    );
    let url = server.url();
    let mut health = subscribe(&url, &["agent_health"], None).await;
    let mut lifecycle = subscribe(&url, &["agent_lifecycle"], Some(1)).await;

    let out = server.ok(&[
        "agent",
        "register",
        "scout",
        "--description",
        "finds things",
        "--agent-version",
        "1.2.0",
        "--skill",
        "search:Search:semantic search",
        "--capability",
        "streaming",
        "--endpoint",
        "http://127.0.0.1:9999/a2a",
        "--memory-space",
        "text:4:cosine:Flat",
        "--json",
    ]);
    let a = &json_lines(&out)[0];
    assert_eq!(a["state"], "registered");
    assert_eq!(a["created"], true);
    assert_eq!(a["memory_collection"], "agent_scout_memory");
    assert_eq!(a["skills"][0]["description"], "semantic search");
    assert_eq!(a["heartbeat_timeout_ms"], 700);
    // The memory collection exists and is listed; the internal ones are not.
    let cols = json_lines(&server.ok(&["collection", "list", "--json"]));
    let names: Vec<&str> = cols.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"agent_scout_memory"), "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with('_')), "internal collections are hidden: {names:?}");
    let bad = server.cli(&["collection", "drop", "_agents"]);
    assert!(!bad.status.success() && stderr(&bad).contains("reserved"), "{}", stderr(&bad));
    // Invalid names are refused.
    let bad = server.cli(&["agent", "register", "bad.name"]);
    assert!(!bad.status.success() && stderr(&bad).contains("InvalidArgument"), "{}", stderr(&bad));

    let list = json_lines(&server.ok(&["agent", "list", "--json"]));
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["name"], "scout");
    let ev = next_event(&mut lifecycle, Duration::from_secs(5)).await;
    assert_eq!((ev.kind.as_str(), ev.subject.as_str()), ("agent.registered", "scout"));

    // The first heartbeat activates it.
    let out = String::from_utf8(server.ok(&["agent", "heartbeat", "scout"])).unwrap();
    assert!(out.contains("active") && out.contains("healthy"), "{out}");
    let ev = next_event(&mut lifecycle, Duration::from_secs(5)).await;
    assert_eq!(ev.kind, "agent.state_changed");
    let d: serde_json::Value = serde_json::from_str(&ev.data_json).unwrap();
    assert_eq!((d["from"].as_str(), d["to"].as_str()), (Some("registered"), Some("active")));

    // No heartbeat for longer than the timeout: unhealthy, and a subscriber sees it.
    let t = Instant::now();
    let ev = next_event(&mut health, Duration::from_secs(10)).await;
    assert_eq!(
        (ev.topic.as_str(), ev.kind.as_str(), ev.subject.as_str()),
        ("agent_health", "agent.unhealthy", "scout")
    );
    assert!(t.elapsed() >= Duration::from_millis(300), "too early: {:?}", t.elapsed());
    let show = json_lines(&server.ok(&["agent", "show", "scout", "--json"]));
    assert_eq!(show[0]["healthy"], false);
    // A heartbeat makes it healthy again.
    server.ok(&["agent", "heartbeat", "scout"]);
    let ev = next_event(&mut health, Duration::from_secs(5)).await;
    assert_eq!(ev.kind, "agent.healthy");

    // Lifecycle: suspend; suspending again is illegal; retire; nothing after retired.
    server.ok(&["agent", "suspend", "scout", "--reason", "maintenance"]);
    let bad = server.cli(&["agent", "suspend", "scout"]);
    let e = stderr(&bad);
    assert!(
        !bad.status.success() && e.contains("FailedPrecondition") && e.contains("from suspended to suspended"),
        "{e}"
    );
    server.ok(&["agent", "retire", "scout"]);
    let bad = server.cli(&["agent", "activate", "scout"]);
    let e = stderr(&bad);
    assert!(e.contains("FailedPrecondition") && e.contains("from retired to active"), "{e}");
    {
        let mut agents = v1::agents_client::AgentsClient::new(server.channel().await);
        let e = agents
            .set_state(v1::SetAgentStateRequest { name: "scout".into(), state: "suspended".into(), reason: "".into() })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::FailedPrecondition);
        assert!(e.message().contains("retired") && e.message().contains("suspended"), "{}", e.message());
        let e = agents.heartbeat(v1::AgentHeartbeatRequest { name: "scout".into() }).await.unwrap_err();
        assert_eq!(e.code(), Code::FailedPrecondition);
        let e = agents.get(v1::GetAgentRequest { name: "ghost".into() }).await.unwrap_err();
        assert_eq!(e.code(), Code::NotFound);
    }
    drop((health, lifecycle));

    // The registry is durable: after a restart the agent is still retired.
    assert!(server.terminate().success());
    let server = Server::start(&data, &[]);
    let show = json_lines(&server.ok(&["agent", "show", "scout", "--json"]));
    assert_eq!(show[0]["state"], "retired");
    assert_eq!(show[0]["version"], "1.2.0");
}

fn receive(server: &Server, queue: &str, max: &str, wait_ms: &str) -> Vec<serde_json::Value> {
    json_lines(&server.ok(&["queue", "receive", queue, "--max", max, "--wait-ms", wait_ms]))
}

#[test]
fn queue_survives_sigkill_and_redelivers_unacked_messages() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start(&data, &[]);
    let out = String::from_utf8(server.ok(&[
        "queue",
        "create",
        "jobs",
        "--max-attempts",
        "5",
        "--visibility-timeout-ms",
        "1500",
    ]))
    .unwrap();
    assert!(out.contains("created queue jobs") && out.contains("jobs.dlq"), "{out}");
    let mut ids = BTreeMap::new();
    for i in 1..=5 {
        let id = String::from_utf8(server.ok(&["queue", "send", "jobs", &format!("m{i}"), "--attr", "k=v"]))
            .unwrap()
            .trim()
            .to_string();
        ids.insert(format!("m{i}"), id);
    }
    // m1 received, not acked; m2 received and acked.
    let got = receive(&server, "jobs", "1", "0");
    assert_eq!((got[0]["body"].as_str(), got[0]["attempt"].as_u64()), (Some("m1"), Some(1)));
    assert_eq!(got[0]["attributes"]["k"], "v");
    let got2 = receive(&server, "jobs", "1", "0");
    assert_eq!(got2[0]["body"], "m2");
    server.ok(&["queue", "ack", "jobs", got2[0]["receipt"].as_str().unwrap()]);
    let stats = json_lines(&server.ok(&["queue", "stats", "jobs", "--json"]));
    assert_eq!((stats[0]["messages"].as_u64(), stats[0]["in_flight"].as_u64()), (Some(4), Some(1)));

    // kill -9: no shutdown, no flush.
    server.kill9();
    let server = Server::start(&data, &[]);
    let stats = json_lines(&server.ok(&["queue", "stats", "jobs", "--json"]));
    assert_eq!(stats[0]["messages"], 4, "every sent, unacked message survives: {stats:?}");
    assert_eq!(stats[0]["max_attempts"], 5);
    // Everything but m2 is delivered; m1 again once its visibility timeout has passed.
    let mut seen: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    let t = Instant::now();
    while seen.len() < 4 && t.elapsed() < Duration::from_secs(20) {
        for m in receive(&server, "jobs", "10", "500") {
            seen.insert(m["body"].as_str().unwrap().to_string(), m);
        }
    }
    assert_eq!(seen.keys().cloned().collect::<Vec<_>>(), vec!["m1", "m3", "m4", "m5"]);
    assert_eq!(seen["m1"]["attempt"], 2, "m1 was redelivered");
    assert_eq!(seen["m1"]["id"].as_str(), Some(ids["m1"].as_str()));
    assert_eq!(seen["m3"]["attempt"], 1);
    // The receipt of the first delivery is stale now.
    let bad = server.cli(&["queue", "ack", "jobs", got[0]["receipt"].as_str().unwrap()]);
    assert!(stderr(&bad).contains("FailedPrecondition"), "{}", stderr(&bad));
    for m in seen.values() {
        server.ok(&["queue", "ack", "jobs", m["receipt"].as_str().unwrap()]);
    }
    let stats = json_lines(&server.ok(&["queue", "stats", "jobs", "--json"]));
    assert_eq!(stats[0]["messages"], 0);
}

#[test]
fn dead_letter_queue_after_max_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    server.ok(&["queue", "create", "work", "--max-attempts", "2", "--visibility-timeout-ms", "200"]);
    server.ok(&["queue", "send", "work", "poison"]);
    server.ok(&["queue", "send", "work", "good"]);
    for attempt in 1..=2 {
        let t = Instant::now();
        let mut got = Vec::new();
        while got.len() < 2 && t.elapsed() < Duration::from_secs(10) {
            got.extend(receive(&server, "work", "10", "1000"));
        }
        assert_eq!(got.len(), 2, "attempt {attempt}: {got:?}");
        for m in &got {
            assert_eq!(m["attempt"], attempt);
            if m["body"] == "good" && attempt == 2 {
                server.ok(&["queue", "ack", "work", m["receipt"].as_str().unwrap()]);
            }
        }
    }
    // The third delivery of "poison" becomes a move to work.dlq.
    std::thread::sleep(Duration::from_millis(300));
    assert!(receive(&server, "work", "10", "300").is_empty());
    let stats = json_lines(&server.ok(&["queue", "stats", "--json"]));
    let by_name: BTreeMap<&str, &serde_json::Value> = stats.iter().map(|s| (s["name"].as_str().unwrap(), s)).collect();
    assert_eq!(by_name["work"]["messages"], 0);
    assert_eq!(by_name["work"]["dead_letter_queue"], "work.dlq");
    assert_eq!(by_name["work.dlq"]["messages"], 1);
    let dead = receive(&server, "work.dlq", "10", "0");
    assert_eq!(dead[0]["body"], "poison");
    // Unknown queues and bad names.
    let bad = server.cli(&["queue", "send", "nope", "x"]);
    assert!(stderr(&bad).contains("NotFound"), "{}", stderr(&bad));
    let bad = server.cli(&["queue", "create", "x.dlq"]);
    assert!(stderr(&bad).contains("InvalidArgument"), "{}", stderr(&bad));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_subscriber_gets_lagged_and_resumes_from_an_offset() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &["--set", "orchestration.event_ring_capacity=50", "--set", "orchestration.subscriber_buffer=4"],
    );
    let url = server.url();
    {
        // A subscriber that does not read while 20k events of ~1 KiB go by.
        let mut slow = subscribe(&url, &["workflow"], None).await;
        let mut pubc = events_client(&url).await;
        let filler = "x".repeat(1000);
        let mut last = 0;
        for batch in 0..20 {
            let events = (0..1000)
                .map(|i| v1::PublishEvent {
                    topic: "workflow".into(),
                    kind: "step".into(),
                    subject: format!("wf-{batch}-{i}"),
                    data_json: serde_json::json!({ "pad": filler }).to_string(),
                })
                .collect();
            let r = pubc.publish(v1::PublishRequest { events }).await.unwrap().into_inner();
            last = *r.offsets.last().unwrap();
        }
        // Reading now: events in increasing order, each gap announced by a `lagged`
        // message naming the offset after the last event delivered, and delivery
        // resuming exactly at its first available offset (the next message is that
        // event, never another notice).
        let mut lags = 0;
        let mut delivered = 0;
        let mut resume_at = None;
        let mut prev = 0;
        loop {
            let m = tokio::time::timeout(Duration::from_secs(10), slow.message()).await.unwrap().unwrap().unwrap();
            match m.msg.unwrap() {
                v1::subscribe_response::Msg::Event(e) => {
                    match resume_at.take() {
                        Some(first) => assert_eq!(e.offset, first, "delivery resumes at the first available offset"),
                        None => assert_eq!(e.offset, prev + 1, "no silent gap, no duplicate"),
                    }
                    assert_eq!(e.topic, "workflow");
                    prev = e.offset;
                    delivered += 1;
                    if e.offset == last {
                        break;
                    }
                }
                v1::subscribe_response::Msg::Lagged(l) => {
                    assert_eq!(
                        resume_at, None,
                        "a notice is followed by the event it names, not another notice: {l:?}"
                    );
                    assert_eq!(l.requested_offset, prev + 1, "{l:?}");
                    assert!(l.first_available_offset > l.requested_offset, "{l:?}");
                    assert!(l.first_available_offset <= last - 49, "{l:?}");
                    lags += 1;
                    resume_at = Some(l.first_available_offset);
                }
            }
        }
        assert_eq!(resume_at, None);
        assert!(delivered >= 50 && delivered < last, "{delivered} of {last} delivered");
        let lagged = (lags > 0).then_some(lags);
        assert!(lagged.is_some(), "the slow subscriber was told it lagged");

        // A new subscriber asking for offset 1 is told where to resume, and can.
        let mut s = subscribe(&url, &["workflow"], Some(1)).await;
        let first = match s.message().await.unwrap().unwrap().msg.unwrap() {
            v1::subscribe_response::Msg::Lagged(l) => l.first_available_offset,
            other => panic!("expected lagged, got {other:?}"),
        };
        assert_eq!(first, last - 49);
        let mut s = subscribe(&url, &["workflow"], Some(first)).await;
        for off in first..=last {
            assert_eq!(next_event(&mut s, Duration::from_secs(5)).await.offset, off);
        }
        // Server-owned topics cannot be published by clients.
        let e = pubc
            .publish(v1::PublishRequest {
                events: vec![v1::PublishEvent { topic: "agent_health".into(), ..Default::default() }],
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied);
        let t = pubc.topics(v1::TopicsRequest {}).await.unwrap().into_inner();
        assert_eq!(t.ring_capacity, 50);
        assert_eq!(t.next_offset, last + 1);
    }
    // The CLI tails from an offset.
    let out =
        server.ok(&["events", "--topic", "workflow", "--from", &(20_000 - 2).to_string(), "--limit", "3", "--json"]);
    let evs = json_lines(&out);
    assert_eq!(evs.iter().map(|e| e["offset"].as_u64().unwrap()).collect::<Vec<_>>(), vec![19_998, 19_999, 20_000]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingestion_finished_is_published() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let url = server.url();
    let mut events = subscribe(&url, &["ingestion"], None).await;
    let (_, mut items) = server.clients().await;
    let req = v1::IngestRequest { collection: "missing".into(), source: "a.txt".into(), content: b"hello".to_vec() };
    let mut results = items.ingest(tokio_stream::iter(vec![req])).await.unwrap().into_inner();
    while let Some(r) = results.message().await.unwrap() {
        assert_eq!(r.status, "failed");
    }
    let ev = next_event(&mut events, Duration::from_secs(5)).await;
    assert_eq!((ev.topic.as_str(), ev.kind.as_str()), ("ingestion", "ingest.finished"));
    let d: serde_json::Value = serde_json::from_str(&ev.data_json).unwrap();
    assert_eq!((d["files"].as_u64(), d["failed"].as_u64()), (Some(1), Some(1)));
}

#[test]
fn orchestration_rpcs_are_authorized() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &["--set", "security.auth=api_key"]);
    let admin = std::fs::read_to_string(data.join("security/bootstrap-admin.key")).unwrap().trim().to_string();
    let with = |key: &str, args: &[&str]| {
        std::process::Command::new(BIN)
            .args(args)
            .env("AGENTDB_URL", server.url())
            .env("AGENTDB_API_KEY", key)
            .output()
            .unwrap()
    };
    let key = |role: &str| {
        let o = with(&admin, &["keys", "create", role, "--role", role]);
        assert!(o.status.success(), "{}", stderr(&o));
        String::from_utf8(o.stdout).unwrap().trim().to_string()
    };
    let (writer, reader) = (key("writer"), key("reader"));
    let denied = |o: std::process::Output| {
        assert!(!o.status.success() && stderr(&o).contains("PermissionDenied"), "{}", stderr(&o));
    };
    let ok = |o: std::process::Output| {
        assert!(o.status.success(), "{}", stderr(&o));
    };
    // No credentials at all.
    let o = std::process::Command::new(BIN).args(["agent", "list"]).env("AGENTDB_URL", server.url()).output().unwrap();
    assert!(stderr(&o).contains("Unauthenticated"), "{}", stderr(&o));
    // Registration and retirement need admin; heartbeats and suspension write; reads read.
    denied(with(&writer, &["agent", "register", "a1", "--no-memory"]));
    ok(with(&admin, &["agent", "register", "a1", "--no-memory"]));
    denied(with(&reader, &["agent", "heartbeat", "a1"]));
    ok(with(&writer, &["agent", "heartbeat", "a1"]));
    ok(with(&writer, &["agent", "suspend", "a1"]));
    denied(with(&writer, &["agent", "retire", "a1"]));
    ok(with(&reader, &["agent", "list"]));
    // Queues: create needs admin, send/receive/ack write, stats read.
    denied(with(&writer, &["queue", "create", "q"]));
    ok(with(&admin, &["queue", "create", "q"]));
    denied(with(&reader, &["queue", "send", "q", "x"]));
    ok(with(&writer, &["queue", "send", "q", "x"]));
    denied(with(&reader, &["queue", "receive", "q"]));
    ok(with(&reader, &["queue", "stats", "q"]));
    ok(with(&admin, &["agent", "retire", "a1"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_transitions_are_published() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &[
            "--set",
            "alerts.interval_ms=100",
            "--set",
            "alerts.warmup=8",
            "--set",
            "alerts.fire_after=3",
            "--set",
            "alerts.clear_after=4",
            "--set",
            "debug.allow_fault_injection=true",
        ],
    );
    let url = server.url();
    let mut events = subscribe(&url, &["alerts"], None).await;
    let (mut cols, items) = server.clients().await;
    cols.create(v1::CreateCollectionRequest {
        name: "q".into(),
        spaces: vec![space("", 4, v1::Metric::L2, "Flat")],
        ..Default::default()
    })
    .await
    .unwrap();
    let load = search_load(items, "q");
    tokio::time::sleep(Duration::from_millis(1500)).await; // baseline
    assert!(server.cli(&["inject-fault", "--search-delay-ms", "80"]).status.success());
    // Wait for the latency alert to fire (other signals may fire too on a busy machine).
    let id = loop {
        let e = next_event(&mut events, Duration::from_secs(20)).await;
        let d: serde_json::Value = serde_json::from_str(&e.data_json).unwrap();
        if e.kind == "alert.firing" && e.subject == "search_latency_ms" {
            assert_eq!(d["state"], "firing");
            break d["id"].as_u64().unwrap();
        }
    };
    assert!(server.cli(&["inject-fault", "--search-delay-ms", "0"]).status.success());
    loop {
        let e = next_event(&mut events, Duration::from_secs(20)).await;
        let d: serde_json::Value = serde_json::from_str(&e.data_json).unwrap();
        if e.kind == "alert.resolved" && d["id"].as_u64() == Some(id) {
            break;
        }
    }
    load.stop().await;
}

/// The next `standing_query` event, or None when none comes within `wait`.
async fn maybe_event(s: &mut EventStream, wait: Duration) -> Option<v1::Event> {
    match tokio::time::timeout(wait, s.message()).await {
        Err(_) => None,
        Ok(m) => match m.unwrap().expect("stream ended").msg {
            Some(v1::subscribe_response::Msg::Event(e)) => Some(e),
            other => panic!("expected an event, got {other:?}"),
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standing_queries_fire_on_matching_writes_and_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start(&data, &[]);
    server.ok(&["agent", "register", "watcher", "--no-memory"]);
    server.ok(&["collection", "create", "feed", "--space", "v:4:cosine:Flat"]);
    let out = server.ok(&[
        "agent",
        "watch",
        "watcher",
        "cats",
        "feed",
        "--vector",
        "[2, 0, 0, 0]",
        "--filter",
        "kind = 'cat'",
        "--threshold",
        "0.9",
        "--json",
    ]);
    let q = &json_lines(&out)[0];
    assert_eq!(
        (q["id"].as_str(), q["space"].as_str(), q["metric"].as_str()),
        (Some("watcher.cats"), Some("v"), Some("cosine"))
    );
    // Validation: unknown agent / collection / space, bad dimension, bad filter, duplicate.
    for (args, code_text) in [
        (vec!["nobody", "x", "feed", "--vector", "[1,0,0,0]"], "agent 'nobody' not found"),
        (vec!["watcher", "x", "nope", "--vector", "[1,0,0,0]"], "collection 'nope' not found"),
        (vec!["watcher", "x", "feed", "--space", "zz", "--vector", "[1,0,0,0]"], "has no space 'zz'"),
        (vec!["watcher", "x", "feed", "--vector", "[1,0,0]"], "dimension"),
        (vec!["watcher", "x", "feed", "--vector", "[1,0,0,0]", "--filter", "kind = "], "filter"),
        (vec!["watcher", "cats", "feed", "--vector", "[1,0,0,0]"], "exists"),
    ] {
        let mut a = vec!["agent", "watch"];
        a.extend(args);
        a.extend(["--threshold", "0.5"]);
        let o = server.cli(&a);
        assert!(!o.status.success() && stderr(&o).contains(code_text), "{a:?}: {}", stderr(&o));
    }

    /// Upsert three items of which exactly one matches `watcher.cats`, and see that one event.
    async fn upsert_and_check(server: &Server, round: u32) {
        let mut events = subscribe(&server.url(), &["standing_query"], None).await;
        let (_, mut items) = server.clients().await;
        let id = |s: &str| format!("{s}{round}");
        let batch = vec![
            item(&id("hit"), vec![1.0, 0.2, 0.0, 0.0], json!({"kind": "cat", "source": "a.txt"})),
            item(&id("far"), vec![1.0, 1.0, 0.0, 0.0], json!({"kind": "cat"})),
            item(&id("dog"), vec![1.0, 0.0, 0.0, 0.0], json!({"kind": "dog"})),
        ];
        items.upsert(v1::UpsertRequest { collection: "feed".into(), items: batch }).await.unwrap();
        let ev = next_event(&mut events, Duration::from_secs(5)).await;
        assert_eq!(
            (ev.topic.as_str(), ev.kind.as_str(), ev.subject.as_str()),
            ("standing_query", "standing_query.match", "watcher.cats")
        );
        let d: serde_json::Value = serde_json::from_str(&ev.data_json).unwrap();
        assert_eq!((d["agent"].as_str(), d["query_name"].as_str()), (Some("watcher"), Some("cats")));
        assert_eq!((d["collection"].as_str(), d["item_id"].as_str()), (Some("feed"), Some(id("hit").as_str())));
        assert_eq!(d["source"], "a.txt");
        let want = 1.0 / (1.04f64).sqrt();
        assert!((d["score"].as_f64().unwrap() - want).abs() < 1e-4, "{d}");
        // Exactly one: the item below the threshold and the one failing the filter are silent.
        assert!(maybe_event(&mut events, Duration::from_millis(700)).await.is_none());
    }
    upsert_and_check(&server, 1).await;

    // Durable: the standing query is back after a restart and still fires.
    assert!(server.terminate().success());
    let server = Server::start(&data, &[]);
    let qs = json_lines(&server.ok(&["agent", "watches", "watcher", "--json"]));
    assert_eq!(qs.len(), 1);
    assert_eq!((qs[0]["filter"].as_str(), qs[0]["threshold"].as_f64()), (Some("kind = 'cat'"), Some(0.9f32 as f64)));
    upsert_and_check(&server, 2).await;

    // Unwatch: no more events.
    server.ok(&["agent", "unwatch", "watcher.cats"]);
    assert!(json_lines(&server.ok(&["agent", "watches", "--json"])).is_empty());
    let o = server.cli(&["agent", "unwatch", "watcher.cats"]);
    assert!(!o.status.success() && stderr(&o).contains("not found"), "{}", stderr(&o));
    let url = server.url();
    {
        let mut events = subscribe(&url, &["standing_query"], None).await;
        let (_, mut items) = server.clients().await;
        let it = item("again", vec![1.0, 0.0, 0.0, 0.0], json!({"kind": "cat"}));
        items.upsert(v1::UpsertRequest { collection: "feed".into(), items: vec![it] }).await.unwrap();
        assert!(maybe_event(&mut events, Duration::from_millis(700)).await.is_none());
    }

    // A text standing query (all-MiniLM-L6-v2, installed by .ci/models.sh) against ingested text.
    server.ok(&["collection", "create", "notes", "--multimodal"]);
    let q = json_lines(&server.ok(&[
        "agent",
        "watch",
        "watcher",
        "baking",
        "notes",
        "--text",
        "how to bake sourdough bread",
        "--threshold",
        "0.5",
        "--json",
    ]))[0]
        .clone();
    assert_eq!((q["space"].as_str(), q["dim"].as_u64()), (Some("text"), Some(384)));
    {
        let mut events = subscribe(&url, &["standing_query"], None).await;
        let (_, mut items) = server.clients().await;
        let files = [
            ("bread.txt", "Baking sourdough bread at home: feed the starter, knead the dough, bake it hot."),
            ("stocks.txt", "Quarterly earnings rose as the company reported strong revenue growth."),
        ];
        let reqs: Vec<v1::IngestRequest> = files
            .iter()
            .map(|(s, c)| v1::IngestRequest {
                collection: "notes".into(),
                source: s.to_string(),
                content: c.as_bytes().to_vec(),
            })
            .collect();
        let mut results = items.ingest(tokio_stream::iter(reqs)).await.unwrap().into_inner();
        while let Some(r) = results.message().await.unwrap() {
            assert_eq!(r.status, "ingested", "{r:?}");
        }
        let ev = next_event(&mut events, Duration::from_secs(10)).await;
        let d: serde_json::Value = serde_json::from_str(&ev.data_json).unwrap();
        assert_eq!(
            (d["query_id"].as_str(), d["source"].as_str(), d["modality"].as_str()),
            (Some("watcher.baking"), Some("bread.txt"), Some("text")),
            "{d}"
        );
        assert!(d["score"].as_f64().unwrap() >= 0.5, "{d}");
        assert!(maybe_event(&mut events, Duration::from_millis(700)).await.is_none());
    }

    // A retired agent's standing queries no longer fire, and it cannot create new ones.
    server.ok(&["agent", "retire", "watcher"]);
    let o = server.cli(&["agent", "watch", "watcher", "y", "feed", "--vector", "[1,0,0,0]", "--threshold", "0.1"]);
    assert!(!o.status.success() && stderr(&o).contains("retired"), "{}", stderr(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_beyond_the_limit_are_refused_and_freed_on_disconnect() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--set", "orchestration.max_subscriptions=2"]);
    let url = server.url();
    let a = subscribe(&url, &["workflow"], None).await;
    let _b = subscribe(&url, &["workflow"], None).await;
    let mut c = events_client(&url).await;
    let err = c
        .subscribe(v1::SubscribeRequest { topics: vec!["workflow".into()], from_offset: None })
        .await
        .expect_err("a third subscription is over the limit");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("orchestration.max_subscriptions"), "{}", err.message());
    // A client that goes away frees its place (the server notices the closed stream).
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = c.subscribe(v1::SubscribeRequest { topics: vec!["workflow".into()], from_offset: None }).await;
        match r {
            Ok(_) => break,
            Err(e) if e.code() == Code::ResourceExhausted && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("the freed place was not reused: {e:?}"),
        }
    }
}
