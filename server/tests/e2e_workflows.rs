//! Workflows through the real binary: apply (validation, versions), run a DAG of
//! AgentDB's own skills (ingest → search → filter → notify a queue), call agents over A2A
//! (a second AgentDB, and a real a2a-sdk agent that crashes or hangs: retries, time-outs,
//! failure events and `workflow status`), resume after kill -9, cancel, fair queueing of
//! runs across agents, and the cron / event / standing-query triggers.

mod common;

use agentdb_proto::v1;
use common::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn apply(server: &Server, dir: &std::path::Path, yaml: &str) -> Value {
    let f = dir.join(format!("wf-{}.yaml", rand::random::<u32>()));
    std::fs::write(&f, yaml).unwrap();
    serde_json::from_slice(&server.ok(&["workflow", "apply", f.to_str().unwrap(), "--json"])).unwrap()
}

fn status(server: &Server, run: &str) -> Value {
    serde_json::from_slice(&server.ok(&["workflow", "status", run, "--json"])).unwrap()
}

/// Poll a run until `pred` holds (panics with the run after `wait`).
fn wait_run(server: &Server, run: &str, wait: Duration, pred: impl Fn(&Value) -> bool) -> Value {
    let t = Instant::now();
    loop {
        let r = status(server, run);
        if pred(&r) {
            return r;
        }
        assert!(t.elapsed() < wait, "run did not get there in {wait:?}: {r:#}\nlog:\n{}", server.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn finished(r: &Value) -> bool {
    matches!(r["state"].as_str(), Some("succeeded" | "failed" | "canceled"))
}

fn step<'a>(r: &'a Value, id: &str) -> &'a Value {
    r["steps"].as_array().unwrap().iter().find(|s| s["id"] == id).unwrap_or_else(|| panic!("no step {id} in {r:#}"))
}

fn run_id(server: &Server, args: &[&str]) -> String {
    let mut a = vec!["workflow", "run"];
    a.extend_from_slice(args);
    a.push("--json");
    let r: Value = serde_json::from_slice(&server.ok(&a)).unwrap();
    r["id"].as_str().unwrap().to_string()
}

#[test]
fn a_dag_of_skills_runs_versions_and_validates() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    server.ok(&["collection", "create", "notes", "--multimodal"]);
    server.ok(&["queue", "create", "reports"]);

    // Validation: the reason, as INVALID_ARGUMENT, before anything is stored.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "name: w\nsteps:\n  - {id: a, sleep: 1s, needs: [b]}\n  - {id: b, sleep: 1s, needs: [a]}\n")
        .unwrap();
    let out = server.cli(&["workflow", "apply", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("cycle through a, b"), "{}", stderr(&out));
    std::fs::write(&bad, "name: w\nsteps:\n  - id: a\n    search: {collection: notes, txt: x}\n").unwrap();
    let out = server.cli(&["workflow", "apply", bad.to_str().unwrap()]);
    assert!(stderr(&out).contains("search has no parameter 'txt'"), "{}", stderr(&out));

    let yaml = r#"
name: digest
description: remember two notes, find one, report it
inputs: { query: "where do bananas come from" }
steps:
  - id: note1
    ingest: { collection: notes, text: "Bananas grow in tropical plantations in Ecuador and the Philippines.", source: bananas.txt }
  - id: note2
    ingest: { collection: notes, text: "The cathedral's organ has four manuals and sixty stops.", source: organ.txt }
  - id: find
    needs: [note1, note2]
    search: { collection: notes, text: "{{ inputs.query }}", top_k: 2 }
  - id: best
    needs: [find]
    filter: { items: "{{ steps.find.output.hits }}", limit: 1 }
  - id: vec
    embed: { text: "{{ inputs.query }}" }
  - id: report
    needs: [best, vec]
    notify: { queue: reports, message: "best match: {{ steps.best.output.items[0].source }}", data: { dim: "{{ steps.vec.output.dim }}" } }
"#;
    let applied = apply(&server, dir.path(), yaml);
    assert_eq!((applied["version"].as_u64(), applied["changed"].as_bool()), (Some(1), Some(true)));
    let again = apply(&server, dir.path(), yaml);
    assert_eq!((again["version"].as_u64(), again["changed"].as_bool()), (Some(1), Some(false)));

    let out = server.ok(&["workflow", "run", "digest", "--wait", "--json"]);
    let r: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(r["state"], "succeeded", "{r:#}");
    assert_eq!(step(&r, "find")["output"]["hits"][0]["source"], "bananas.txt", "{r:#}");
    assert_eq!(step(&r, "best")["output"]["count"], 1);
    assert_eq!(step(&r, "vec")["output"]["dim"], 384);
    assert!(step(&r, "find")["started_unix_ms"].as_u64() >= step(&r, "note2")["finished_unix_ms"].as_u64());
    // The notify step put the report on the durable queue.
    let text = String::from_utf8(server.ok(&["queue", "receive", "reports"])).unwrap();
    assert!(text.contains("best match: bananas.txt") && text.contains("384"), "{text}");

    // Inputs override the defaults; a second version; the old one still runs.
    let v2 = apply(&server, dir.path(), &yaml.replace("remember two notes", "v2"));
    assert_eq!(v2["version"], 2);
    let r: Value = serde_json::from_slice(&server.ok(&[
        "workflow",
        "run",
        "digest",
        "--version",
        "1",
        "--input",
        "query=organ pipes and stops",
        "--wait",
        "--json",
    ]))
    .unwrap();
    assert_eq!((r["version"].as_u64(), r["state"].as_str()), (Some(1), Some("succeeded")));
    assert_eq!(step(&r, "find")["output"]["hits"][0]["source"], "organ.txt", "{r:#}");
    let shown = String::from_utf8(server.ok(&["workflow", "show", "digest", "--version", "1"])).unwrap();
    assert!(shown.contains("remember two notes") && shown.contains("version 1 of 2"), "{shown}");

    // A step that fails without retries fails the run; dependents are skipped; the CLI
    // exits 1 and shows the reason.
    apply(
        &server,
        dir.path(),
        "name: broken\nsteps:\n  - id: find\n    search: {collection: nowhere, text: x}\n  - id: after\n    needs: [find]\n    sleep: 1ms\n",
    );
    let out = server.cli(&["workflow", "run", "broken", "--wait"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("failed") && text.contains("nowhere"), "{text}");
    assert!(text.contains("after") && text.contains("skipped"), "{text}");
    let runs = json_lines(&server.ok(&["workflow", "runs", "--json"]));
    assert_eq!(runs.len(), 3);
    assert!(server.cli(&["workflow", "status", "run-nope"]).status.code() == Some(1));
}

/// A real A2A agent (server/tests/a2a_agent.py, on the official a2a-sdk) kept alive by a
/// supervisor thread that restarts it when it exits, as a deployment would.
struct Agent {
    port: u16,
    stop: Arc<AtomicBool>,
    child: Arc<parking_lot::Mutex<Option<Child>>>,
    restarts: Arc<std::sync::atomic::AtomicU32>,
}

impl Agent {
    fn spawn(port: u16, state: &std::path::Path) -> Child {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/a2a_agent.py");
        let mut c = Command::new("python3")
            .args([script, "--port", &port.to_string(), "--state-dir"])
            .arg(state)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 (run .ci/setup.sh)");
        let mut line = String::new();
        BufReader::new(c.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert!(line.starts_with("READY"), "the test agent did not start (run .ci/setup.sh): {line:?}");
        c
    }

    fn start(state: &std::path::Path) -> Agent {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Arc::new(parking_lot::Mutex::new(Some(Agent::spawn(port, state))));
        let stop = Arc::new(AtomicBool::new(false));
        let restarts = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let (c, s, n, st) = (child.clone(), stop.clone(), restarts.clone(), state.to_path_buf());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let exited = c.lock().as_mut().is_some_and(|ch| ch.try_wait().ok().flatten().is_some());
                if exited && !s.load(Ordering::Relaxed) {
                    *c.lock() = Some(Agent::spawn(port, &st));
                    n.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        Agent { port, stop, child, restarts }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(mut c) = self.child.lock().take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_over_a2a_retries_timeouts_and_failure_events() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("agent-state");
    std::fs::create_dir_all(&state).unwrap();
    let agent = Agent::start(&state);
    // A second AgentDB is an agent too: its A2A endpoint remembers and recalls.
    let peer_dir = dir.path().join("peer");
    // It requires an API key: the workflow engine sends the one configured for that agent.
    let peer = Server::start(&peer_dir, &["--set", "http_listen=127.0.0.1:0", "--set", "security.auth=api_key"]);
    let peer_http = peer.http_addr.clone().unwrap();
    let key_file = peer_dir.join("security/bootstrap-admin.key");
    let server = Server::start(
        &dir.path().join("data"),
        &["--set", &format!("workflows.agent_credentials.peer=file:{}", key_file.display())],
    );
    server.ok(&["agent", "register", "sdk-agent", "--endpoint", &agent.endpoint()]);
    server.ok(&["agent", "register", "peer", "--endpoint", &format!("http://{peer_http}/a2a")]);
    server.ok(&["agent", "register", "away", "--endpoint", &agent.endpoint()]);
    server.ok(&["agent", "activate", "away"]);
    server.ok(&["agent", "suspend", "away"]);

    let mut events = v1::events_client::EventsClient::new(server.channel().await)
        .subscribe(v1::SubscribeRequest { topics: vec!["workflow".into()], from_offset: Some(0) })
        .await
        .unwrap()
        .into_inner();

    apply(
        &server,
        dir.path(),
        r#"
name: delegate
steps:
  - id: echo
    call_agent: { agent: sdk-agent, text: "echo hello", data: { n: 7 } }
  - id: remember
    call_agent: { agent: peer, text: "remember: the lighthouse keeper feeds three cats" }
  - id: recall
    needs: [remember]
    call_agent: { agent: peer, text: "recall: who feeds the cats?", data: { skill: recall } }
  - id: flaky
    needs: [echo]
    call_agent: { agent: sdk-agent, text: "flaky 2 tag1" }
    retry: { max_attempts: 6, backoff: 2s, factor: 1 }
"#,
    );
    let out = server.cli(&["workflow", "run", "delegate", "--wait", "--json"]);
    let r: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", stderr(&out)));
    assert_eq!(r["state"], "succeeded", "{r:#}");
    assert_eq!(step(&r, "echo")["output"]["text"], "echo: hello");
    assert_eq!(step(&r, "echo")["output"]["state"], "completed");
    // The data part went over and came back (the SDK's protobuf Struct makes numbers floats).
    assert_eq!(step(&r, "echo")["output"]["data"][0]["received"]["n"].as_f64(), Some(7.0), "{r:#}");
    let hit = &step(&r, "recall")["output"]["data"][0]["hits"][0];
    assert!(hit["text"].as_str().unwrap().contains("lighthouse keeper"), "{r:#}");
    // The agent crashed mid-task twice (restarted by its supervisor); the third attempt completed.
    // (An attempt while the agent is still restarting fails too, unreachable: on a loaded
    // machine there may be more than three attempts.)
    let f = step(&r, "flaky");
    let attempts = f["attempts"].as_u64().unwrap();
    assert!(attempts >= 3, "{r:#}");
    assert_eq!(f["attempt_errors"].as_array().unwrap().len() as u64, attempts - 1);
    assert!(f["attempt_errors"][0].as_str().unwrap().contains("agent 'sdk-agent'"), "{r:#}");
    assert!(f["output"]["text"].as_str().unwrap().contains("ok after 2 failures"), "{r:#}");
    assert!(agent.restarts.load(Ordering::Relaxed) >= 2);

    // An agent that hangs: each attempt times out, the step fails after its retries, the
    // run fails, and both show in `workflow status` and as events.
    apply(
        &server,
        dir.path(),
        r#"
name: hang
steps:
  - id: slow
    call_agent: { agent: sdk-agent, text: "sleep 30" }
    timeout: 1500ms
    retry: { max_attempts: 2, backoff: 100ms }
  - id: after
    needs: [slow]
    notify: { message: "never" }
  - id: suspended
    call_agent: { agent: away, text: "echo x" }
    on_failure: continue
"#,
    );
    let t = Instant::now();
    let out = server.cli(&["workflow", "run", "hang", "--wait", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(t.elapsed() < Duration::from_secs(20), "time-outs are enforced: {:?}", t.elapsed());
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["state"], "failed");
    let s = step(&r, "slow");
    assert_eq!((s["state"].as_str(), s["attempts"].as_u64()), (Some("failed"), Some(2)), "{r:#}");
    assert!(s["attempt_errors"][0].as_str().unwrap().contains("timed out after"), "{r:#}");
    assert!(r["error"].as_str().unwrap().contains("step 'slow' failed after 2 attempt(s)"), "{r:#}");
    assert_eq!(step(&r, "after")["state"], "skipped");
    assert!(step(&r, "suspended")["error"].as_str().unwrap().contains("'away' is suspended"), "{r:#}");
    let text = String::from_utf8(server.ok(&["workflow", "status", r["id"].as_str().unwrap()])).unwrap();
    assert!(text.contains("slow") && text.contains("attempt 2: agent 'sdk-agent'"), "{text}");
    assert!(text.contains("timed out after"), "{text}");

    // Events: retrying, step failed, run failed (after the earlier runs' events).
    let kinds: Vec<(String, Value)> = {
        let mut out = Vec::new();
        while let Ok(Ok(Some(m))) = tokio::time::timeout(Duration::from_secs(2), events.message()).await {
            if let Some(v1::subscribe_response::Msg::Event(e)) = m.msg {
                out.push((e.kind.clone(), serde_json::from_str(&e.data_json).unwrap_or(Value::Null)));
            }
        }
        out
    };
    let has = |k: &str, f: &dyn Fn(&Value) -> bool| kinds.iter().any(|(kind, d)| kind == k && f(d));
    assert!(has("workflow.step_retrying", &|d| d["step"] == "flaky"), "{kinds:?}");
    assert!(
        has("workflow.step_retrying", &|d| d["step"] == "slow" && d["error"].as_str().unwrap().contains("timed out"))
    );
    assert!(has("workflow.step_failed", &|d| d["step"] == "slow" && d["attempts"] == 2));
    assert!(has("workflow.run_failed", &|d| d["workflow"] == "hang"));
    assert!(has("workflow.run_succeeded", &|d| d["workflow"] == "delegate"));
    drop(peer);
}

#[test]
fn runs_resume_after_kill9_and_cancel() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start(&data, &[]);
    server.ok(&["queue", "create", "done"]);
    apply(
        &server,
        dir.path(),
        "name: long\nsteps:\n  - {id: a, sleep: 100ms}\n  - {id: b, needs: [a], sleep: 3s, retry: {max_attempts: 2}}\n  - id: c\n    needs: [b]\n    notify: {queue: done, message: 'run {{ run.id }} done'}\n",
    );
    let id = run_id(&server, &["long"]);
    wait_run(&server, &id, Duration::from_secs(20), |r| step(r, "b")["state"] == "running");
    server.kill9();
    let server = Server::start(&data, &[]);
    let r = wait_run(&server, &id, Duration::from_secs(30), finished);
    assert_eq!(r["state"], "succeeded", "{r:#}");
    let b = step(&r, "b");
    assert_eq!(b["attempts"], 2, "the interrupted attempt counts: {r:#}");
    assert!(b["attempt_errors"][0].as_str().unwrap().contains("interrupted"), "{r:#}");
    assert_eq!(step(&r, "a")["attempts"], 1, "finished steps are not run again");
    let got = String::from_utf8(server.ok(&["queue", "receive", "done"])).unwrap();
    assert!(got.contains(&format!("run {id} done")), "{got}");

    // Cancel: a running run stops at once; a queued one never starts.
    apply(
        &server,
        dir.path(),
        "name: forever\nsteps:\n  - {id: wait, sleep: 1h}\n  - {id: then, needs: [wait], sleep: 1ms}\n",
    );
    let id = run_id(&server, &["forever"]);
    wait_run(&server, &id, Duration::from_secs(10), |r| step(r, "wait")["state"] == "running");
    let t = Instant::now();
    server.ok(&["workflow", "cancel", &id]);
    let r = wait_run(&server, &id, Duration::from_secs(10), finished);
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(r["state"], "canceled");
    assert_eq!(
        (step(&r, "wait")["state"].as_str(), step(&r, "then")["state"].as_str()),
        (Some("canceled"), Some("canceled"))
    );
    let out = server.cli(&["workflow", "cancel", &id]);
    assert!(stderr(&out).contains("canceled already"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_agent_does_not_starve_a_quiet_one_and_priority_goes_first() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--set", "workflows.max_concurrent_runs=1"]);
    apply(&server, dir.path(), "name: work\nsteps:\n  - {id: s, sleep: 50ms}\n");
    // A run that holds the only slot until we publish its event, so that everything
    // below is queued whatever the machine's speed.
    apply(
        &server,
        dir.path(),
        "name: hold\nsteps:\n  - id: w\n    wait_event: {topic: alerts, kind: test.release}\n    timeout: 60s\n",
    );
    let holder = run_id(&server, &["hold", "--agent", "holder"]);
    wait_run(&server, &holder, Duration::from_secs(10), |r| step(r, "w")["state"] == "running");
    let (busy, quiet, urgent, gone) = {
        let ch = server.channel().await;
        let c = v1::workflows_client::WorkflowsClient::new(ch.clone());
        let run = |agent: &str, priority: Option<i32>| {
            let req =
                v1::RunWorkflowRequest { name: "work".into(), agent: agent.into(), priority, ..Default::default() };
            let mut c = c.clone();
            async move { c.run(req).await.unwrap().into_inner().run.unwrap().id }
        };
        // The busy agent floods first; then the quiet agent's one run; then an urgent one.
        let mut busy = Vec::new();
        for _ in 0..12 {
            busy.push(run("busy", None).await);
        }
        let quiet = run("quiet", None).await;
        let urgent = run("busy", Some(10)).await;
        // A queued run canceled before it got a slot never starts.
        let gone = busy.pop().unwrap();
        let r = c.clone().cancel(v1::CancelWorkflowRunRequest { id: gone.clone() }).await.unwrap().into_inner();
        assert_eq!(r.run.unwrap().state, "canceled");
        v1::events_client::EventsClient::new(ch)
            .publish(v1::PublishRequest {
                events: vec![v1::PublishEvent {
                    topic: "alerts".into(),
                    kind: "test.release".into(),
                    subject: "slot".into(),
                    data_json: "{}".into(),
                }],
            })
            .await
            .unwrap();
        (busy, quiet, urgent, gone)
    };
    for id in busy.iter().chain([&quiet, &urgent]) {
        wait_run(&server, id, Duration::from_secs(60), finished);
    }
    assert_eq!(status(&server, &gone)["started_unix_ms"], 0);
    assert_eq!(status(&server, &gone)["steps"][0]["state"], "canceled");
    let mut order: Vec<(u64, String)> = busy
        .iter()
        .chain([&quiet, &urgent])
        .map(|id| (status(&server, id)["started_unix_ms"].as_u64().unwrap(), id.clone()))
        .collect();
    order.sort();
    let pos = |id: &str| order.iter().position(|(_, x)| x == id).unwrap();
    // Priority first; then the agents take turns: one busy run, then the quiet agent's,
    // not after the twelve queued busy runs.
    assert_eq!(pos(&urgent), 0, "priority 10 ran at position {}: {order:?}", pos(&urgent));
    assert!(pos(&quiet) <= 2, "quiet ran at position {} of {}: {order:?}", pos(&quiet), order.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cron_event_and_standing_query_triggers_start_runs() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    server.ok(&["collection", "create", "inbox", "--multimodal"]);
    server.ok(&["agent", "register", "scout"]);
    server.ok(&[
        "agent",
        "watch",
        "scout",
        "boats",
        "inbox",
        "--text",
        "sailing boats on the sea",
        "--threshold",
        "0.5",
    ]);
    apply(
        &server,
        dir.path(),
        r#"
name: on-ingest
triggers:
  - event: { topic: ingestion, kind: ingest.finished }
steps:
  - id: look
    search: { collection: inbox, text: "sailing", top_k: 1 }
"#,
    );
    apply(
        &server,
        dir.path(),
        r#"
name: on-boats
triggers:
  - standing_query: scout.boats
steps:
  - id: tell
    notify: { message: "boat item {{ trigger.event.data.item_id }}" }
"#,
    );
    apply(
        &server,
        dir.path(),
        "name: every-minute\ntriggers:\n  - cron: '* * * * *'\nsteps:\n  - {id: tick, sleep: 1ms}\n",
    );
    // A run that waits for an event someone publishes.
    apply(
        &server,
        dir.path(),
        "name: waiter\nsteps:\n  - id: w\n    wait_event: {topic: alerts, kind: alert.custom, subject: door}\n    timeout: 30s\n",
    );
    let waiter = run_id(&server, &["waiter"]);
    wait_run(&server, &waiter, Duration::from_secs(10), |r| step(r, "w")["state"] == "running");

    let media = dir.path().join("media");
    std::fs::create_dir_all(&media).unwrap();
    std::fs::write(media.join("boat.txt"), "Two sailing boats race across the open sea under white sails.").unwrap();
    server.ok(&["ingest", "inbox", media.to_str().unwrap()]);

    v1::events_client::EventsClient::new(server.channel().await)
        .publish(v1::PublishRequest {
            events: vec![v1::PublishEvent {
                topic: "alerts".into(),
                kind: "alert.custom".into(),
                subject: "door".into(),
                data_json: json!({"open": true}).to_string(),
            }],
        })
        .await
        .unwrap();
    let r = wait_run(&server, &waiter, Duration::from_secs(10), finished);
    assert_eq!(r["state"], "succeeded", "{r:#}");
    assert_eq!(step(&r, "w")["output"]["data"]["open"], true);

    let runs_of = |wf: &str| json_lines(&server.ok(&["workflow", "runs", wf, "--json"]));
    let t = Instant::now();
    loop {
        let (a, b, c) = (runs_of("on-ingest"), runs_of("on-boats"), runs_of("every-minute"));
        let done = |v: &[Value]| v.iter().any(|r| r["state"] == "succeeded");
        if done(&a) && done(&b) && done(&c) {
            assert_eq!(a[0]["trigger"]["event"]["kind"], "ingest.finished");
            assert_eq!(
                a.iter().find(|r| r["state"] == "succeeded").unwrap()["steps"][0]["output"]["hits"][0]["source"]
                    .as_str()
                    .map(|s| s.ends_with("boat.txt")),
                Some(true)
            );
            assert_eq!(b[0]["trigger"]["event"]["subject"], "scout.boats");
            assert!(b[0]["steps"][0]["output"]["offset"].as_u64().is_some());
            assert_eq!(c[0]["trigger"]["kind"], "cron");
            assert_eq!(c[0]["trigger"]["scheduled_unix_ms"].as_u64().unwrap() % 60_000, 0);
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(75),
            "triggers did not all fire: ingest {a:?}\nboats {b:?}\ncron {c:?}\n{}",
            server.log_text()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[test]
fn workflow_rpcs_are_authorized_and_steps_act_as_the_caller() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &["--set", "security.auth=api_key"]);
    let admin = server.admin_key();
    let as_key = |key: &str, args: &[&str]| {
        Command::new(BIN).args(args).env("AGENTDB_URL", server.url()).env("AGENTDB_API_KEY", key).output().unwrap()
    };
    let keygen = |role: &str, extra: &[&str]| -> String {
        let mut args = vec!["keys", "create", role, "--role", role];
        args.extend_from_slice(extra);
        let out = as_key(&admin, &args);
        assert!(out.status.success(), "{}", stderr(&out));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    for c in ["public", "secret"] {
        assert!(as_key(&admin, &["collection", "create", c, "--multimodal"]).status.success());
    }
    let writer = keygen("writer", &["--collection", "public"]);
    let reader = keygen("reader", &[]);
    let f = dir.path().join("wf.yaml");
    std::fs::write(&f, "name: peek\nsteps:\n  - id: s\n    search: {collection: '{{ inputs.c }}', text: x}\n").unwrap();
    let out = as_key(&writer, &["workflow", "apply", f.to_str().unwrap()]);
    assert!(
        stderr(&out).contains("PermissionDenied") || stderr(&out).to_lowercase().contains("permission"),
        "{}",
        stderr(&out)
    );
    assert!(as_key(&admin, &["workflow", "apply", f.to_str().unwrap()]).status.success());
    let out = as_key(&reader, &["workflow", "run", "peek", "--input", "c=public"]);
    assert!(!out.status.success());
    assert!(as_key(&reader, &["workflow", "list"]).status.success());
    let out = as_key(&writer, &["workflow", "run", "peek", "--input", "c=public", "--wait", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The writer may not read 'secret': the step is refused as the writer would be.
    let out = as_key(&writer, &["workflow", "run", "peek", "--input", "c=secret", "--wait", "--json"]);
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["state"], "failed");
    assert!(step(&r, "s")["error"].as_str().unwrap().contains("refused"), "{r:#}");
    assert!(r["principal"].as_str().unwrap().starts_with("key:"));
}
