//! A2A (Agent2Agent) server through the real binary: the official Python SDK
//! (`a2a-sdk`, see server/tests/a2a_client.py) as the client, plus raw JSON-RPC
//! requests for the 0.3 method names, error codes, push notifications and authentication.

mod common;

use common::{http, Server};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::{Arc, Mutex};

/// One request a [`Receiver`] got: (path, head with lower-cased header names, body).
type Got = (String, String, String);

/// A tiny HTTP receiver for push notifications on an ephemeral port: records every
/// request and answers 200.
struct Receiver {
    addr: String,
    got: Arc<Mutex<Vec<Got>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = got.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                let mut r = BufReader::new(s.try_clone().unwrap());
                let (mut head, mut line) = (String::new(), String::new());
                while r.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                    let l = match line.split_once(':') {
                        Some((k, v)) => format!("{}:{v}", k.to_ascii_lowercase()),
                        None => line.clone(),
                    };
                    head.push_str(&l);
                    line.clear();
                }
                let len = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                let mut body = vec![0; len];
                let _ = r.read_exact(&mut body);
                let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
                sink.lock().unwrap().push((path, head, String::from_utf8_lossy(&body).to_string()));
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            }
        });
        Receiver { addr, got }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Wait (up to 30 s) for a request to `path` whose JSON body satisfies `pred`.
    fn wait(&self, path: &str, pred: impl Fn(&Value) -> bool) -> (String, Value) {
        for _ in 0..300 {
            for (p, head, body) in self.got.lock().unwrap().iter() {
                let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
                if p == path && pred(&v) {
                    return (head.clone(), v);
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("no matching push to {path}; got {:?}", self.got.lock().unwrap());
    }
}

/// One HTTP/1.1 POST (or GET when `body` is None) over a plain TCP connection:
/// (status, headers, body).
fn rpc(addr: &str, req: &Value, headers: &[(&str, &str)]) -> (u16, Value) {
    let (status, _, body) = http(addr, "/a2a", Some(&req.to_string()), headers);
    (status, serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}")))
}

fn start(dir: &std::path::Path, extra: &[&str]) -> (Server, String) {
    let mut args = vec!["--set", "http_listen=127.0.0.1:0"];
    args.extend_from_slice(extra);
    let server = Server::start(dir, &args);
    let http = server.http_addr.clone().expect("the server printed 'agentdb http listening on ADDR'");
    (server, http)
}

#[test]
fn a2a_with_the_official_python_sdk_and_raw_json_rpc() {
    // The push receiver below listens on 127.0.0.1, which the server refuses by default.
    std::env::set_var("A2A_ALLOW_PRIVATE_PUSH_TARGETS", "1");
    let push = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let (server, addr) = start(&dir.path().join("data"), &[]);
    let ok = |args: &[&str]| {
        let out = server.cli(args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let media = dir.path().join("media");
    std::fs::create_dir_all(&media).unwrap();
    std::fs::write(
        media.join("fruit.txt"),
        "Apples, pears and ripe bananas are sold at the fruit market every morning.",
    )
    .unwrap();
    std::fs::write(
        media.join("engines.txt"),
        "The diesel engine of the locomotive needs new pistons and a fuel injector.",
    )
    .unwrap();
    ok(&["collection", "create", "docs", "--multimodal"]);
    ok(&["ingest", "docs", media.to_str().unwrap()]);

    // The card is public.
    let (status, _, body) = http(&addr, "/.well-known/agent-card.json", None, &[]);
    assert_eq!(status, 200, "{body}");
    let card: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(card["capabilities"]["streaming"], json!(true));
    assert_eq!(card["capabilities"]["pushNotifications"], json!(true));
    assert_eq!(card["url"], json!(format!("http://{addr}/a2a")));

    // The official SDK as the client.
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/a2a_client.py");
    let python = std::env::var("AGENTDB_A2A_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = std::process::Command::new(&python)
        .args([script, &format!("http://{addr}"), "docs", "fruit.txt", "where can I buy bananas?"])
        .env("A2A_PUSH_URL", push.url("/sdk"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if out.status.code() == Some(3) {
        panic!("the A2A test needs the a2a-sdk Python package (pinned in .ci/setup.sh: pip install a2a-sdk==1.3.0): {stderr}");
    }
    assert!(
        out.status.success(),
        "a2a_client.py failed\nstdout:\n{stdout}\nstderr:\n{stderr}\nserver log:\n{}",
        server.log_text()
    );
    assert!(stdout.contains("A2A OK"), "{stdout}");
    // The SDK's push config got the completed task (1.0 shape: a StreamResponse).
    let (head, _) = push.wait("/sdk", |v| v["task"]["status"]["state"] == json!("TASK_STATE_COMPLETED"));
    assert!(head.contains("x-a2a-notification-token: sdk-token"), "{head}");

    // Raw JSON-RPC: the 0.3 names and shapes.
    let send = json!({"jsonrpc": "2.0", "id": 7, "method": "message/send", "params": {"message": {
        "kind": "message", "messageId": "m1", "role": "user",
        "parts": [{"kind": "data", "data": {"skill": "search", "collection": "docs", "text": "locomotive pistons"}}]}}});
    let (status, r) = rpc(&addr, &send, &[]);
    assert_eq!(status, 200);
    assert_eq!(r["id"], json!(7), "{r}");
    let task = &r["result"];
    assert_eq!((task["kind"].as_str(), task["status"]["state"].as_str()), (Some("task"), Some("completed")), "{r}");
    let hits = &task["artifacts"][0]["parts"][1]["data"]["hits"];
    assert!(hits[0]["source"].as_str().unwrap().ends_with("engines.txt"), "{r}");
    let id = task["id"].as_str().unwrap().to_string();
    let (_, r) = rpc(&addr, &json!({"jsonrpc": "2.0", "id": "g", "method": "tasks/get", "params": {"id": id}}), &[]);
    assert_eq!(r["result"]["status"]["state"], json!("completed"), "{r}");
    let (_, r) = rpc(&addr, &json!({"jsonrpc": "2.0", "id": "c", "method": "tasks/cancel", "params": {"id": id}}), &[]);
    assert_eq!(r["error"]["code"], json!(-32002), "{r}");
    let (_, r) = rpc(&addr, &json!({"jsonrpc": "2.0", "id": 1, "method": "tasks/get", "params": {"id": "nope"}}), &[]);
    assert_eq!(r["error"]["code"], json!(-32001), "{r}");
    // A data: URI file part is ingested; a network URI is refused.
    let ingest = json!({"jsonrpc": "2.0", "id": 2, "method": "message/send", "params": {"message": {
        "kind": "message", "messageId": "m2", "role": "user", "parts": [
            {"kind": "data", "data": {"skill": "ingest", "collection": "docs"}},
            {"kind": "file", "file": {"name": "tea.txt", "mimeType": "text/plain", "uri": "data:text/plain,green%20tea%20from%20Japan"}}]}}});
    let (_, r) = rpc(&addr, &ingest, &[]);
    assert_eq!(r["result"]["status"]["state"], json!("completed"), "{r}");
    let mut fetch = ingest.clone();
    fetch["params"]["message"]["parts"][1]["file"]["uri"] = json!("http://example.com/x.txt");
    let (_, r) = rpc(&addr, &fetch, &[]);
    assert_eq!(r["error"]["code"], json!(-32602), "{r}");
    // message/stream answers with SSE.
    let mut stream = send.clone();
    stream["method"] = json!("message/stream");
    let (status, head, body) = http(&addr, "/a2a", Some(&stream.to_string()), &[]);
    assert_eq!(status, 200);
    assert!(head.to_ascii_lowercase().contains("content-type: text/event-stream"), "{head}");
    let events: Vec<Value> =
        body.lines().filter_map(|l| l.strip_prefix("data: ")).map(|l| serde_json::from_str(l).unwrap()).collect();
    let last = &events.last().expect("events")["result"];
    assert_eq!((last["kind"].as_str(), last["final"].as_bool()), (Some("status-update"), Some(true)), "{body}");
    assert_eq!(last["status"]["state"], json!("completed"), "{body}");
    assert!(events.iter().any(|e| e["result"]["kind"] == json!("artifact-update")), "{body}");

    // Errors.
    let (_, r) = rpc(&addr, &json!({"jsonrpc": "2.0", "id": 3, "method": "tasks/teleport", "params": {}}), &[]);
    assert_eq!(r["error"]["code"], json!(-32601), "{r}");
    let (status, _, body) = http(&addr, "/a2a", Some("{not json"), &[]);
    let r: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((status, r["error"]["code"].clone(), r["id"].clone()), (200, json!(-32700), Value::Null), "{body}");
    let (_, r) =
        rpc(&addr, &json!({"jsonrpc": "2.0", "id": 4, "method": "message/send", "params": {"message": {}}}), &[]);
    assert_eq!(r["error"]["code"], json!(-32602), "{r}");
    let (_, r) = rpc(&addr, &json!({"id": 5, "method": "tasks/get"}), &[]);
    assert_eq!(r["error"]["code"], json!(-32600), "{r}");
    let (_, r) =
        rpc(&addr, &json!({"jsonrpc": "2.0", "id": 6, "method": "SetTaskPushNotificationConfig", "params": {}}), &[]);
    assert_eq!(r["error"]["code"], json!(-32601), "{r}");

    push_notifications(&addr, &push);
}

fn call(addr: &str, method: &str, params: Value) -> Value {
    let (status, r) = rpc(addr, &json!({"jsonrpc": "2.0", "id": method, "method": method, "params": params}), &[]);
    assert_eq!(status, 200, "{r}");
    r
}

/// Push-notification configs in both name sets, and the notifications themselves.
fn push_notifications(addr: &str, push: &Receiver) {
    // A task waiting for input (search without a collection).
    let r = call(
        addr,
        "SendMessage",
        json!({"message": {"messageId": "p1", "role": "ROLE_USER",
        "parts": [{"data": {"skill": "search", "text": "locomotive pistons"}}]}}),
    );
    let task = &r["result"]["task"];
    assert_eq!(task["status"]["state"], json!("TASK_STATE_INPUT_REQUIRED"), "{r}");
    let (tid, ctx) = (task["id"].as_str().unwrap().to_string(), task["contextId"].as_str().unwrap().to_string());

    // 1.0 create (with authentication) and 0.3 set.
    let r = call(
        addr,
        "CreateTaskPushNotificationConfig",
        json!({"taskId": tid, "id": "v1",
        "url": push.url("/v1"), "token": "tok-v1", "authentication": {"scheme": "Bearer", "credentials": "secret-1"}}),
    );
    let c = &r["result"];
    assert_eq!(
        (c["id"].as_str(), c["taskId"].as_str(), c["token"].as_str()),
        (Some("v1"), Some(&*tid), Some("tok-v1")),
        "{r}"
    );
    assert_eq!(c["authentication"], json!({"scheme": "Bearer"}), "credentials are not echoed: {r}");
    let r = call(
        addr,
        "tasks/pushNotificationConfig/set",
        json!({"taskId": tid,
        "pushNotificationConfig": {"id": "v03", "url": push.url("/v03"), "token": "tok-v03"}}),
    );
    assert_eq!(r["result"]["pushNotificationConfig"]["id"], json!("v03"), "{r}");
    assert_eq!(r["result"]["taskId"], json!(tid), "{r}");

    // get / list in both name sets.
    let r = call(addr, "ListTaskPushNotificationConfigs", json!({"taskId": tid}));
    let ids: Vec<&str> = r["result"]["configs"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["v1", "v03"], "{r}");
    let r = call(addr, "tasks/pushNotificationConfig/list", json!({"id": tid}));
    assert_eq!(r["result"].as_array().map(Vec::len), Some(2), "{r}");
    assert_eq!(r["result"][0]["pushNotificationConfig"]["authentication"], json!({"schemes": ["Bearer"]}), "{r}");
    let r = call(addr, "GetTaskPushNotificationConfig", json!({"taskId": tid, "id": "v03"}));
    assert_eq!(r["result"]["url"], json!(push.url("/v03")), "{r}");
    let r = call(addr, "tasks/pushNotificationConfig/get", json!({"id": tid, "pushNotificationConfigId": "v1"}));
    assert_eq!(r["result"]["pushNotificationConfig"]["url"], json!(push.url("/v1")), "{r}");
    let r = call(addr, "GetTaskPushNotificationConfig", json!({"taskId": tid, "id": "nope"}));
    assert_eq!(r["error"]["code"], json!(-32602), "{r}");

    // Continue the task: both targets get the completed task, each in its dialect.
    let r = call(
        addr,
        "SendMessage",
        json!({"message": {"messageId": "p2", "role": "ROLE_USER",
        "taskId": tid, "contextId": ctx, "parts": [{"data": {"collection": "docs"}}]}}),
    );
    assert_eq!(r["result"]["task"]["status"]["state"], json!("TASK_STATE_COMPLETED"), "{r}");
    let (head, v) = push.wait("/v1", |v| v["task"]["status"]["state"] == json!("TASK_STATE_COMPLETED"));
    assert_eq!(v["task"]["id"], json!(tid));
    assert!(head.contains("x-a2a-notification-token: tok-v1"), "{head}");
    assert!(head.contains("authorization: Bearer secret-1"), "{head}");
    assert!(head.contains("content-type: application/json"), "{head}");
    let (head, v) = push.wait("/v03", |v| v["status"]["state"] == json!("completed"));
    assert_eq!((v["kind"].as_str(), v["id"].as_str()), (Some("task"), Some(&*tid)), "{v}");
    assert!(head.contains("x-a2a-notification-token: tok-v03"), "{head}");
    assert!(!head.contains("authorization:"), "{head}");
    // Intermediate states are pushed too.
    push.wait("/v1", |v| v["task"]["status"]["state"] == json!("TASK_STATE_WORKING"));

    // delete in both name sets.
    let r = call(addr, "DeleteTaskPushNotificationConfig", json!({"taskId": tid, "id": "v1"}));
    assert!(r.get("error").is_none() && r["result"].is_null(), "{r}");
    let r = call(addr, "tasks/pushNotificationConfig/delete", json!({"id": tid, "pushNotificationConfigId": "v03"}));
    assert!(r.get("error").is_none(), "{r}");
    let r = call(addr, "ListTaskPushNotificationConfigs", json!({"taskId": tid}));
    assert_eq!(r["result"]["configs"], json!([]), "{r}");
    let r = call(addr, "DeleteTaskPushNotificationConfig", json!({"taskId": tid, "id": "v1"}));
    assert_eq!(r["error"]["code"], json!(-32602), "{r}");

    // A config inside SendMessage's / message/send's configuration.
    let r = call(
        addr,
        "SendMessage",
        json!({"message": {"messageId": "p3", "role": "ROLE_USER",
        "parts": [{"data": {"skill": "search", "collection": "docs", "text": "fruit"}}]},
        "configuration": {"taskPushNotificationConfig": {"url": push.url("/inline"), "token": "tok-inline"}}}),
    );
    let tid = r["result"]["task"]["id"].as_str().unwrap().to_string();
    let (head, _) = push.wait("/inline", |v| {
        v["task"]["id"] == json!(tid) && v["task"]["status"]["state"] == json!("TASK_STATE_COMPLETED")
    });
    assert!(head.contains("x-a2a-notification-token: tok-inline"), "{head}");
    let r = call(addr, "ListTaskPushNotificationConfigs", json!({"taskId": tid}));
    assert_eq!(r["result"]["configs"][0]["id"], json!(tid), "the id defaults to the task id: {r}");
    let r = call(
        addr,
        "message/send",
        json!({"message": {"kind": "message", "messageId": "p4", "role": "user",
        "parts": [{"kind": "data", "data": {"skill": "search", "collection": "docs", "text": "fruit"}}]},
        "configuration": {"pushNotificationConfig": {"url": push.url("/inline03"), "token": "t3"}}}),
    );
    let tid = r["result"]["id"].as_str().unwrap().to_string();
    push.wait("/inline03", |v| v["id"] == json!(tid) && v["status"]["state"] == json!("completed"));

    // Refusals: non-http(s) URLs, unknown tasks, too many configs per task.
    for (method, params) in [
        ("CreateTaskPushNotificationConfig", json!({"taskId": tid, "url": "ftp://example.com/hook"})),
        (
            "tasks/pushNotificationConfig/set",
            json!({"taskId": tid, "pushNotificationConfig": {"url": "file:///etc/passwd"}}),
        ),
        ("CreateTaskPushNotificationConfig", json!({"taskId": tid, "url": "not a url"})),
        ("CreateTaskPushNotificationConfig", json!({"taskId": tid})),
    ] {
        let r = call(addr, method, params);
        assert_eq!(r["error"]["code"], json!(-32602), "{method}: {r}");
    }
    let r = call(
        addr,
        "SendMessage",
        json!({"message": {"messageId": "p5", "role": "ROLE_USER", "parts": [{"text": "x"}]},
        "configuration": {"taskPushNotificationConfig": {"url": "gopher://example.com"}}}),
    );
    assert_eq!(r["error"]["code"], json!(-32602), "{r}");
    let r = call(addr, "CreateTaskPushNotificationConfig", json!({"taskId": "nope", "url": push.url("/x")}));
    assert_eq!(r["error"]["code"], json!(-32001), "{r}");
    for i in 0..10 {
        let r = call(
            addr,
            "CreateTaskPushNotificationConfig",
            json!({"taskId": tid, "id": format!("n{i}"), "url": push.url("/n")}),
        );
        assert!(r.get("error").is_none() || i == 9, "{r}");
    }
    let r = call(
        addr,
        "CreateTaskPushNotificationConfig",
        json!({"taskId": tid, "id": "one-too-many", "url": push.url("/n")}),
    );
    assert_eq!(r["error"]["code"], json!(-32602), "{r}");
}

#[test]
fn a2a_sits_behind_the_same_authentication_as_grpc() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (_server, addr) = start(&data, &["--set", "security.auth=api_key"]);
    let key = std::fs::read_to_string(data.join("security/bootstrap-admin.key")).unwrap().trim().to_string();
    let get = json!({"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": "x"}});

    // The card stays public and names the bearer scheme.
    let (status, _, body) = http(&addr, "/.well-known/agent-card.json", None, &[]);
    assert_eq!(status, 200);
    let card: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(card["securitySchemes"]["bearer"]["httpAuthSecurityScheme"]["scheme"], json!("Bearer"), "{card}");
    assert_eq!(card["securitySchemes"]["bearer"].as_object().unwrap().len(), 1, "1.0: one member per scheme");
    assert_eq!(card["securityRequirements"], json!([{"schemes": {"bearer": {"list": []}}}]));
    assert_eq!(card["security"], json!([{"bearer": []}]));

    let (status, r) = rpc(&addr, &get, &[]);
    assert_eq!(status, 401, "{r}");
    assert!(r["error"]["message"].as_str().unwrap().contains("missing credentials"), "{r}");
    let (status, r) = rpc(&addr, &get, &[("Authorization", "Bearer adb_not_a_real_key")]);
    assert_eq!(status, 401, "{r}");
    let auth = format!("Bearer {key}");
    let (status, r) = rpc(&addr, &get, &[("Authorization", &auth), ("A2A-Version", "1.0")]);
    assert_eq!((status, r["error"]["code"].clone()), (200, json!(-32001)), "{r}");
    // Tasks of one principal are invisible to another; remember creates the caller's memory.
    let remember = json!({"jsonrpc": "2.0", "id": 2, "method": "SendMessage", "params": {"message": {
        "messageId": "m", "role": "ROLE_USER", "parts": [{"text": "remember: auth works"}]}}});
    let (status, r) = rpc(&addr, &remember, &[("Authorization", &auth)]);
    assert_eq!(status, 200, "{r}");
    let task = &r["result"]["task"];
    assert_eq!(task["status"]["state"], json!("TASK_STATE_COMPLETED"), "{r}");
    let coll = task["artifacts"][0]["parts"][1]["data"]["collection"].as_str().unwrap();
    assert!(coll.starts_with("memory-key-"), "{r}");
}

/// A collection `docs` of two text files (fruit.txt, engines.txt) on `server`.
fn two_docs(server: &Server, dir: &std::path::Path) {
    let media = dir.join("media");
    std::fs::create_dir_all(&media).unwrap();
    std::fs::write(
        media.join("fruit.txt"),
        "Apples, pears and ripe bananas are sold at the fruit market every morning.",
    )
    .unwrap();
    std::fs::write(
        media.join("engines.txt"),
        "The diesel engine of the locomotive needs new pistons and a fuel injector.",
    )
    .unwrap();
    server.ok(&["collection", "create", "docs", "--multimodal"]);
    server.ok(&["ingest", "docs", media.to_str().unwrap()]);
}

#[test]
fn a2a_grpc_binding_with_the_official_python_sdk() {
    // The SDK's push configs name 127.0.0.1, which the server refuses by default.
    std::env::set_var("A2A_ALLOW_PRIVATE_PUSH_TARGETS", "1");
    let dir = tempfile::tempdir().unwrap();
    let (server, http_addr) = start(&dir.path().join("data"), &[]);
    two_docs(&server, dir.path());

    // The official SDK's gRPC transport against lf.a2a.v1.A2AService on the gRPC listener.
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/a2a_grpc_client.py");
    let python = std::env::var("AGENTDB_A2A_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = std::process::Command::new(&python)
        .args([script, &server.addr, "docs", "fruit.txt", "where can I buy bananas?"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if out.status.code() == Some(3) {
        panic!("the A2A gRPC test needs a2a-sdk[grpc] (pinned in .ci/setup.sh: pip install 'a2a-sdk[grpc]==1.3.0'): {stderr}");
    }
    assert!(
        out.status.success(),
        "a2a_grpc_client.py failed\nstdout:\n{stdout}\nstderr:\n{stderr}\nserver log:\n{}",
        server.log_text()
    );
    assert!(stdout.contains("A2A GRPC OK"), "{stdout}");

    // The card advertises the gRPC binding at the gRPC listener's port.
    let (_, _, body) = http(&http_addr, "/.well-known/agent-card.json", None, &[]);
    let card: Value = serde_json::from_str(&body).unwrap();
    let port = server.addr.rsplit(':').next().unwrap();
    assert!(
        card["supportedInterfaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["protocolBinding"] == "GRPC" && i["url"].as_str().unwrap() == format!("grpc://127.0.0.1:{port}")),
        "{card}"
    );

    // One task table for both bindings: the task made over gRPC, read over JSON-RPC.
    let id = stdout.lines().find_map(|l| l.strip_prefix("TASK ")).expect("TASK line").trim().to_string();
    let r = call(&http_addr, "GetTask", json!({"id": id}));
    assert_eq!(r["result"]["status"]["state"], json!("TASK_STATE_COMPLETED"), "{r}");
    assert!(r["result"]["artifacts"][0]["parts"][1]["data"]["hits"][0]["source"]
        .as_str()
        .unwrap()
        .ends_with("fruit.txt"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a2a_grpc_binding_with_the_tonic_client_behind_authentication() {
    use agentdb_proto::a2a::v1 as pb;
    use pb::a2a_service_client::A2aServiceClient;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (server, http_addr) = start(&data, &["--set", "security.auth=api_key"]);
    let admin = server.admin_key();
    let other = server.ok_as(&admin, &["keys", "create", "other", "--role", "writer"]);
    let other = String::from_utf8(other).unwrap().trim().to_string();
    server.ok_as(&admin, &["collection", "create", "docs", "--dim", "4"]);

    fn req<T>(msg: T, key: Option<&str>) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        if let Some(k) = key {
            r.metadata_mut().insert("authorization", format!("Bearer {k}").parse().unwrap());
        }
        r.metadata_mut().insert("a2a-version", "1.0".parse().unwrap());
        r
    }
    fn text_message(text: &str) -> pb::SendMessageRequest {
        pb::SendMessageRequest {
            message: Some(pb::Message {
                message_id: uuid_like(text),
                role: pb::Role::User as i32,
                parts: vec![pb::Part { content: Some(pb::part::Content::Text(text.into())), ..Default::default() }],
                ..Default::default()
            }),
            ..Default::default()
        }
    }
    fn uuid_like(s: &str) -> String {
        format!("m-{}-{}", s.len(), std::process::id())
    }
    /// The ErrorInfo reason in a status's details (`google.rpc.Status` bytes).
    fn has_reason(st: &tonic::Status, reason: &str) -> bool {
        st.details().windows(reason.len()).any(|w| w == reason.as_bytes())
            && st.details().windows(16).any(|w| w == b"a2a-protocol.org")
    }

    let mut c = A2aServiceClient::new(server.channel().await);
    let get = |id: &str| pb::GetTaskRequest { id: id.into(), ..Default::default() };

    // No credentials: the edge layer refuses, as for every other gRPC service.
    let st = c.get_task(req(get("x"), None)).await.unwrap_err();
    assert_eq!(st.code(), tonic::Code::Unauthenticated, "{st:?}");
    let st = c.get_task(req(get("x"), Some("adb_not_a_real_key"))).await.unwrap_err();
    assert_eq!(st.code(), tonic::Code::Unauthenticated, "{st:?}");
    let st = c.get_task(req(get("x"), Some(&admin))).await.unwrap_err();
    assert_eq!(st.code(), tonic::Code::NotFound, "{st:?}");
    assert!(has_reason(&st, "TASK_NOT_FOUND"), "{st:?}");
    let mut bad = req(get("x"), Some(&admin));
    bad.metadata_mut().insert("a2a-version", "9.9".parse().unwrap());
    let st = c.get_task(bad).await.unwrap_err();
    assert_eq!(st.code(), tonic::Code::FailedPrecondition, "{st:?}");
    assert!(has_reason(&st, "VERSION_NOT_SUPPORTED"), "{st:?}");

    // Blocking SendMessage: remember, in the caller's memory collection.
    let r = c.send_message(req(text_message("remember: tonic speaks A2A"), Some(&admin))).await.unwrap();
    let Some(pb::send_message_response::Payload::Task(task)) = r.into_inner().payload else {
        panic!("expected a task")
    };
    assert_eq!(task.status.as_ref().unwrap().state, pb::TaskState::Completed as i32, "{task:?}");
    let v = agentdb_proto::a2a::json::to_json("lf.a2a.v1.Task", &task).unwrap();
    let coll = v["artifacts"][0]["parts"][1]["data"]["collection"].as_str().unwrap_or_default();
    assert!(coll.starts_with("memory-key-"), "{v}");
    let id = task.id.clone();

    // GetTask / ListTasks: the owner sees it; another principal does not.
    let t = c.get_task(req(get(&id), Some(&admin))).await.unwrap().into_inner();
    assert_eq!((t.id.as_str(), t.artifacts.len()), (id.as_str(), 1));
    let st = c.get_task(req(get(&id), Some(&other))).await.unwrap_err();
    assert_eq!(st.code(), tonic::Code::NotFound, "{st:?}");
    let list = |key: &str| req(pb::ListTasksRequest::default(), Some(key));
    let mine = c.list_tasks(list(&admin)).await.unwrap().into_inner();
    assert!(mine.tasks.iter().any(|t| t.id == id), "{mine:?}");
    let theirs = c.list_tasks(list(&other)).await.unwrap().into_inner();
    assert!(theirs.tasks.is_empty(), "{theirs:?}");
    let st = c
        .cancel_task(req(pb::CancelTaskRequest { id: id.clone(), ..Default::default() }, Some(&other)))
        .await
        .unwrap_err();
    assert_eq!(st.code(), tonic::Code::NotFound, "{st:?}");
    let st = c
        .cancel_task(req(pb::CancelTaskRequest { id: id.clone(), ..Default::default() }, Some(&admin)))
        .await
        .unwrap_err();
    assert_eq!(st.code(), tonic::Code::FailedPrecondition, "{st:?}");
    assert!(has_reason(&st, "TASK_NOT_CANCELABLE"), "{st:?}");

    // The same task over JSON-RPC (one task table, one owner check).
    let auth = format!("Bearer {admin}");
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": id}});
    let (_, r) = rpc(&http_addr, &body, &[("Authorization", &auth)]);
    assert_eq!(r["result"]["status"]["state"], json!("TASK_STATE_COMPLETED"), "{r}");

    // SendStreamingMessage: task, working, artifact, completed.
    let mut stream =
        c.send_streaming_message(req(text_message("what does tonic speak?"), Some(&admin))).await.unwrap().into_inner();
    let mut kinds = Vec::new();
    while let Some(ev) = stream.message().await.unwrap() {
        kinds.push(match ev.payload.unwrap() {
            pb::stream_response::Payload::Task(_) => "task".to_string(),
            pb::stream_response::Payload::Message(_) => "message".to_string(),
            pb::stream_response::Payload::StatusUpdate(u) => {
                format!("{:?}", pb::TaskState::try_from(u.status.unwrap().state).unwrap())
            }
            pb::stream_response::Payload::ArtifactUpdate(u) => {
                assert!(!u.artifact.unwrap().parts.is_empty());
                "artifact".to_string()
            }
        });
    }
    assert_eq!(kinds, ["task", "Working", "artifact", "Completed"], "{kinds:?}");

    // The extended card (authentication is on): the public card plus what the caller may
    // use — here the collections it may read, in the search skill — and declared in the
    // public card's capabilities.
    let wf = dir.path().join("tidy.yaml");
    std::fs::write(&wf, "name: tidy\ndescription: Tidies the shelves\nsteps:\n  - id: a\n    sleep: 1s\n").unwrap();
    server.ok_as(&admin, &["workflow", "apply", wf.to_str().unwrap()]);
    let card = c.get_extended_agent_card(req(pb::GetExtendedAgentCardRequest::default(), Some(&admin))).await.unwrap();
    let card = card.into_inner();
    let tidy = card.skills.iter().find(|s| s.id == "workflow:tidy").expect("the workflow as a skill");
    assert!(tidy.description.starts_with("Tidies the shelves"), "{}", tidy.description);
    assert_eq!(card.capabilities.as_ref().and_then(|c| c.extended_agent_card), Some(true), "{card:?}");
    let search = card.skills.iter().find(|s| s.id == "search").expect("search skill");
    assert!(search.description.contains("Collections you may read: docs"), "{}", search.description);
    let (_, _, body) = http(&http_addr, "/.well-known/agent-card.json", None, &[]);
    let public: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(public["capabilities"]["extendedAgentCard"], json!(true), "{public}");
    assert!(!body.contains("Collections you may read"), "the public card lists no collections: {body}");
    // Without credentials: unauthenticated. An empty message is an invalid argument.
    let st = c.get_extended_agent_card(req(pb::GetExtendedAgentCardRequest::default(), None)).await.unwrap_err();
    assert_eq!(st.code(), tonic::Code::Unauthenticated, "{st:?}");
    let st = c.send_message(req(pb::SendMessageRequest::default(), Some(&admin))).await.unwrap_err();
    assert_eq!(st.code(), tonic::Code::InvalidArgument, "{st:?}");
}

#[test]
fn a2a_tasks_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let send = |addr: &str, parts: Value| {
        let r = call(addr, "SendMessage", json!({"message": {"messageId": "m", "role": "ROLE_USER", "parts": parts}}));
        assert!(r.get("error").is_none(), "{r}");
        r["result"]["task"].clone()
    };
    let get = |addr: &str, id: &str| {
        let r = call(addr, "GetTask", json!({"id": id}));
        assert!(r.get("error").is_none(), "{r}");
        r["result"].clone()
    };

    let (mut server, addr) = start(&data, &[]);
    // A finished task, and one waiting for input (a search without a collection).
    let done = send(&addr, json!([{"text": "remember: the boiler is serviced in October"}]));
    assert_eq!(done["status"]["state"], json!("TASK_STATE_COMPLETED"), "{done}");
    let waiting = send(&addr, json!([{"data": {"skill": "search", "text": "boiler"}}]));
    assert_eq!(waiting["status"]["state"], json!("TASK_STATE_INPUT_REQUIRED"), "{waiting}");
    let (done_id, waiting_id) = (done["id"].as_str().unwrap(), waiting["id"].as_str().unwrap());

    // SIGTERM, start again: the finished task is back as it was, artifacts and all; the
    // waiting one cannot go on and has failed, saying why.
    assert!(server.terminate().success());
    let (mut server, addr) = start(&data, &[]);
    let t = get(&addr, done_id);
    assert_eq!(t["status"], done["status"], "{t}");
    assert_eq!(t["artifacts"], done["artifacts"], "{t}");
    assert_eq!(t["history"], done["history"], "{t}");
    let t = get(&addr, waiting_id);
    assert_eq!(t["status"]["state"], json!("TASK_STATE_FAILED"), "{t}");
    let why = t["status"]["message"]["parts"][0]["text"].as_str().unwrap();
    assert!(why.contains("restarted"), "{why}");
    let r = call(&addr, "ListTasks", json!({}));
    assert_eq!(r["result"]["totalSize"], json!(2), "{r}");
    assert_eq!(r["result"]["tasks"][0]["id"], json!(waiting_id), "newest first, order kept: {r}");
    let r = call(&addr, "CancelTask", json!({"id": waiting_id}));
    assert_eq!(r["error"]["code"], json!(-32002), "{r}");

    // kill -9 right after a task completes: it is there after the restart.
    let recall = send(&addr, json!([{"text": "when is the boiler serviced?"}]));
    assert_eq!(recall["status"]["state"], json!("TASK_STATE_COMPLETED"), "{recall}");
    server.kill9();
    let (_server, addr) = start(&data, &[]);
    let t = get(&addr, recall["id"].as_str().unwrap());
    assert_eq!(t["status"], recall["status"], "{t}");
    assert_eq!(t["artifacts"], recall["artifacts"], "{t}");
    assert_eq!(get(&addr, done_id)["status"]["state"], json!("TASK_STATE_COMPLETED"));
    // New tasks after a restart sort after the old ones.
    let newer = send(&addr, json!([{"text": "remember: the chimney is swept in May"}]));
    let r = call(&addr, "ListTasks", json!({}));
    assert_eq!(r["result"]["tasks"][0]["id"], newer["id"], "{r}");
    assert_eq!(r["result"]["totalSize"], json!(4), "{r}");
}

/// Conformance points the official A2A TCK (commit 410ba92) checks, each with our own test
/// (issue 20): ListTasks parameter validation and both ProtoJSON spellings, the card's
/// security schemes only when authentication is on, the card under the JSON-RPC URL, and
/// JSON-RPC at the root.
#[test]
fn list_tasks_parameters_and_card_conformance() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, addr) = start(&dir.path().join("data"), &[]);
    // An empty list says pageSize 0.
    let r = call(&addr, "ListTasks", json!({}));
    assert_eq!((r["result"]["pageSize"].clone(), r["result"]["totalSize"].clone()), (json!(0), json!(0)), "{r}");
    for bad in [
        json!({"pageSize": 0}),
        json!({"pageSize": -1}),
        json!({"pageSize": 101}),
        json!({"page_size": 500}),
        json!({"pageSize": "many"}),
        json!({"historyLength": -1}),
        json!({"history_length": -5}),
        json!({"statusTimestampAfter": "yesterday"}),
        json!({"status_timestamp_after": "2026-13-01T00:00:00Z"}),
    ] {
        let r = call(&addr, "ListTasks", bad.clone());
        assert_eq!(r["error"]["code"], json!(-32602), "{bad}: {r}");
    }
    // A message needs its messageId and role (-32602 otherwise).
    for bad in [
        json!({"message": {"role": "ROLE_USER", "parts": [{"text": "hi"}]}}),
        json!({"message": {"messageId": "x", "parts": [{"text": "hi"}]}}),
        json!({"message": {"messageId": "x", "role": "ROLE_UNSPECIFIED", "parts": [{"text": "hi"}]}}),
        json!({"message": {"messageId": "x", "role": "ROLE_USER", "parts": []}}),
    ] {
        let r = call(&addr, "SendMessage", bad.clone());
        assert_eq!(r["error"]["code"], json!(-32602), "{bad}: {r}");
    }
    // Three tasks; both spellings of pageSize and statusTimestampAfter work.
    for i in 0..3 {
        let msg = json!({"message": {"messageId": format!("m{i}"), "role": "ROLE_USER",
            "parts": [{"data": {"skill": "search", "collection": "nowhere", "text": "x"}}]}});
        call(&addr, "SendMessage", msg);
    }
    let r = call(&addr, "ListTasks", json!({"page_size": 2}));
    assert_eq!((r["result"]["pageSize"].clone(), r["result"]["totalSize"].clone()), (json!(2), json!(3)), "{r}");
    let r = call(&addr, "ListTasks", json!({"statusTimestampAfter": "2000-01-01T00:00:00+00:00"}));
    assert_eq!(r["result"]["totalSize"], json!(3), "{r}");
    let r = call(&addr, "ListTasks", json!({"status_timestamp_after": "2999-01-01T00:00:00Z"}));
    assert_eq!(r["result"]["totalSize"], json!(0), "{r}");
    let id = call(&addr, "ListTasks", json!({}))["result"]["tasks"][0]["id"].as_str().unwrap().to_string();
    let r = call(&addr, "GetTask", json!({"id": id, "history_length": 0}));
    assert!(r["result"]["id"].is_string(), "{r}");
    assert_eq!(call(&addr, "GetTask", json!({"id": id, "historyLength": -2}))["error"]["code"], json!(-32602));

    // Authentication off: the card advertises no credentials; it is also served under the
    // JSON-RPC URL, and JSON-RPC answers at the root.
    let (status, _, body) = http(&addr, "/a2a/.well-known/agent-card.json", None, &[]);
    assert_eq!(status, 200, "{body}");
    let card: Value = serde_json::from_str(&body).unwrap();
    assert!(card.get("securitySchemes").is_none() && card.get("security").is_none(), "{card}");
    let (status, _, body) = http(
        &addr,
        "/",
        Some(&json!({"jsonrpc": "2.0", "id": 1, "method": "ListTasks", "params": {}}).to_string()),
        &[],
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["result"]["totalSize"], json!(3));
}

/// Poll GetTask (up to 60 s) until the task's state is one of `states`.
fn wait_state(addr: &str, id: &str, states: &[&str]) -> Value {
    let mut last = Value::Null;
    for _ in 0..600 {
        let r = call(addr, "GetTask", json!({"id": id}));
        last = r["result"].clone();
        if states.iter().any(|s| last["status"]["state"] == json!(s)) {
            return last;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("task {id} never reached {states:?}: {last}");
}

/// A workflow run's state once it is `want` (polled up to 10 s; the last state seen otherwise).
fn run_state_after(server: &Server, run: &str, want: &str) -> Value {
    let mut state = Value::Null;
    for _ in 0..100 {
        let s: Value = serde_json::from_slice(&server.ok(&["workflow", "status", run, "--json"])).unwrap();
        state = s["state"].clone();
        if state == json!(want) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    state
}

fn send_v1(addr: &str, id: &str, parts: Value, task: Option<&str>) -> Value {
    let mut m = json!({"messageId": id, "role": "ROLE_USER", "parts": parts});
    if let Some(t) = task {
        m["taskId"] = json!(t);
    }
    call(addr, "SendMessage", json!({ "message": m }))
}

fn artifact<'a>(task: &'a Value, name: &str) -> &'a Value {
    task["artifacts"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["name"] == json!(name)))
        .unwrap_or_else(|| panic!("no '{name}' artifact: {task}"))
}

/// Issue 20, point 2: a workflow run started over A2A is a long-running task. The send
/// answers once the run is queued; the task shows its progress, is listed by state, asks
/// for input (an `ask` step) and takes the next message as the answer, streams to its end
/// through SubscribeToTask, and ends with the step outputs. A plain-text message starts
/// `a2a.text_workflow`; canceling that task cancels its run.
#[test]
fn workflow_runs_are_long_running_a2a_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (mut server, addr) = start(&data, &["--set", "a2a.text_workflow=slow"]);
    let wf = dir.path().join("approve.yaml");
    std::fs::write(
        &wf,
        "name: approve\nsteps:\n  - id: note\n    notify: { message: \"asked about {{ inputs.item }}\" }\n  \
         - id: ask\n    needs: [note]\n    ask: { prompt: \"Approve {{ inputs.item }}? Say which shelf.\" }\n  \
         - id: pause\n    needs: [ask]\n    sleep: 300ms\n  \
         - id: done\n    needs: [pause]\n    notify: { message: \"shelf {{ steps.ask.output.text }}\" }\n",
    )
    .unwrap();
    server.ok(&["workflow", "apply", wf.to_str().unwrap()]);
    let slow = dir.path().join("slow.yaml");
    // (retries: the attempt a restart cuts short counts against the step's retry policy)
    std::fs::write(&slow, "name: slow\nsteps:\n  - id: work\n    sleep: 60s\n    retry: { max_attempts: 3 }\n")
        .unwrap();
    server.ok(&["workflow", "apply", slow.to_str().unwrap()]);

    let r = send_v1(
        &addr,
        "w1",
        json!([{"data": {"skill": "workflow", "workflow": "approve", "inputs": {"item": "the red lamp"}}}]),
        None,
    );
    let task = &r["result"]["task"];
    let state = task["status"]["state"].as_str().unwrap_or_default();
    assert!(["TASK_STATE_SUBMITTED", "TASK_STATE_WORKING", "TASK_STATE_INPUT_REQUIRED"].contains(&state), "{r}");
    let id = task["id"].as_str().unwrap().to_string();
    let run = artifact(task, "progress")["parts"][1]["data"]["run"].as_str().unwrap().to_string();

    // The ask step: input-required with the prompt, listed as such.
    let t = wait_state(&addr, &id, &["TASK_STATE_INPUT_REQUIRED"]);
    assert_eq!(t["status"]["message"]["parts"][0]["text"], json!("Approve the red lamp? Say which shelf."), "{t}");
    let progress = &artifact(&t, "progress")["parts"][1]["data"];
    assert_eq!(progress["steps"][0]["state"], json!("succeeded"), "{t}");
    assert_eq!(progress["steps"][1]["state"], json!("running"), "{t}");
    let r = call(&addr, "ListTasks", json!({"status": "TASK_STATE_INPUT_REQUIRED"}));
    assert_eq!(r["result"]["tasks"][0]["id"], json!(id), "{r}");

    // The answer continues the run; the send answers at once (working), and a
    // subscription streams the rest: progress artifacts, then completed.
    let r = send_v1(&addr, "w2", json!([{"text": "B7"}]), Some(&id));
    assert_eq!(r["result"]["task"]["status"]["state"], json!("TASK_STATE_WORKING"), "{r}");
    let (status, _, body) = http(
        &addr,
        "/a2a",
        Some(&json!({"jsonrpc": "2.0", "id": 9, "method": "SubscribeToTask", "params": {"id": id}}).to_string()),
        &[],
    );
    assert_eq!(status, 200, "{body}");
    let frames: Vec<Value> =
        body.lines().filter_map(|l| l.strip_prefix("data:")).map(|l| serde_json::from_str(l.trim()).unwrap()).collect();
    assert!(frames.iter().any(|f| f["result"]["artifactUpdate"]["artifact"]["name"] == json!("progress")), "{body}");
    let last = frames.last().unwrap();
    assert_eq!(last["result"]["statusUpdate"]["status"]["state"], json!("TASK_STATE_COMPLETED"), "{body}");
    let t = wait_state(&addr, &id, &["TASK_STATE_COMPLETED"]);
    let outputs = &artifact(&t, "result")["parts"][1]["data"]["outputs"];
    assert_eq!(outputs["ask"]["text"], json!("B7"), "{t}");
    let status: Value = serde_json::from_slice(&server.ok(&["workflow", "status", &run, "--json"])).unwrap();
    assert_eq!(status["state"], json!("succeeded"), "{status}");

    // A plain-text message starts a2a.text_workflow ("slow": a 60 s step); the task is
    // working and listed so; canceling it cancels the run.
    let r = send_v1(&addr, "w3", json!([{"text": "tidy the shelves"}]), None);
    let id = r["result"]["task"]["id"].as_str().unwrap().to_string();
    let t = wait_state(&addr, &id, &["TASK_STATE_WORKING"]);
    let run = artifact(&t, "progress")["parts"][1]["data"]["run"].as_str().unwrap().to_string();
    let r = call(&addr, "ListTasks", json!({"status": "TASK_STATE_WORKING"}));
    assert!(r["result"]["tasks"].as_array().unwrap().iter().any(|t| t["id"] == json!(id)), "{r}");
    // A message to the working task is taken (it goes to the run), not refused.
    let r = send_v1(&addr, "w4", json!([{"text": "and the windows"}]), Some(&id));
    assert_eq!(r["result"]["task"]["status"]["state"], json!("TASK_STATE_WORKING"), "{r}");
    let r = call(&addr, "CancelTask", json!({"id": id}));
    assert_eq!(r["result"]["status"]["state"], json!("TASK_STATE_CANCELED"), "{r}");
    assert_eq!(
        run_state_after(&server, &run, "canceled"),
        json!("canceled"),
        "the run behind a canceled task is canceled"
    );
    // A workflow nobody defined fails the task, naming it.
    let r = send_v1(&addr, "w5", json!([{"data": {"skill": "workflow", "workflow": "nope"}}]), None);
    assert_eq!(r["result"]["task"]["status"]["state"], json!("TASK_STATE_FAILED"), "{r}");
    assert!(r.to_string().contains("no workflow 'nope'"), "{r}");

    // A restart: the run resumes, and the task follows it again (still working, not
    // failed); canceling it then still cancels the run.
    let r = send_v1(&addr, "w6", json!([{"text": "sort the attic"}]), None);
    let id = r["result"]["task"]["id"].as_str().unwrap().to_string();
    let t = wait_state(&addr, &id, &["TASK_STATE_WORKING"]);
    let run = artifact(&t, "progress")["parts"][1]["data"]["run"].as_str().unwrap().to_string();
    assert!(server.terminate().success());
    let (server, addr) = start(&data, &["--set", "a2a.text_workflow=slow"]);
    let t = wait_state(&addr, &id, &["TASK_STATE_WORKING"]);
    assert_eq!(artifact(&t, "progress")["parts"][1]["data"]["run"], json!(run), "{t}");
    let r = call(&addr, "CancelTask", json!({"id": id}));
    assert_eq!(r["result"]["status"]["state"], json!("TASK_STATE_CANCELED"), "{r}");
    assert_eq!(
        run_state_after(&server, &run, "canceled"),
        json!("canceled"),
        "the resumed run is canceled with its task"
    );
}

/// Issue 20, point 2: a folder ingest over A2A (a folder the server allows, or several
/// file parts) is a long-running task with a progress artifact and a result that names
/// each failure; a folder outside `workflows.ingest_dirs` is refused; canceling stops it
/// before its next file.
#[test]
fn folder_ingests_are_long_running_a2a_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let allowed = dir.path().join("allowed");
    let folder = allowed.join("notes");
    std::fs::create_dir_all(folder.join("sub")).unwrap();
    for (i, text) in
        ["Pears ripen on the windowsill.", "The tram leaves at nine.", "Boil the kettle for tea."].iter().enumerate()
    {
        std::fs::write(folder.join(format!("n{i}.txt")), text).unwrap();
    }
    std::fs::write(folder.join("sub").join("deep.txt"), "The lighthouse keeper logs the storm.").unwrap();
    std::fs::write(folder.join(".hidden.txt"), "not ingested").unwrap();
    std::fs::write(folder.join("broken.png"), b"\x89PNG\r\n\x1a\nnot really a png").unwrap();
    let many = allowed.join("many");
    std::fs::create_dir_all(&many).unwrap();
    for i in 0..1500 {
        std::fs::write(many.join(format!("m{i:04}.txt")), format!("Note number {i} about shelf {}.", i % 37)).unwrap();
    }
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("x.txt"), "secret").unwrap();
    let data = dir.path().join("data");
    let (server, addr) = start(&data, &["--set", &format!("workflows.ingest_dirs={}", allowed.display())]);
    server.ok(&["collection", "create", "docs", "--multimodal"]);

    let r = send_v1(&addr, "f1", json!([{"data": {"skill": "ingest", "collection": "docs", "path": folder}}]), None);
    let task = &r["result"]["task"];
    assert_eq!(task["status"]["state"], json!("TASK_STATE_WORKING"), "answers once working: {r}");
    let id = task["id"].as_str().unwrap().to_string();
    let t = wait_state(&addr, &id, &["TASK_STATE_COMPLETED", "TASK_STATE_FAILED"]);
    assert_eq!(t["status"]["state"], json!("TASK_STATE_COMPLETED"), "{t}");
    let result = &artifact(&t, "result")["parts"][1]["data"];
    assert_eq!((result["files"].clone(), result["ingested"].clone()), (json!(5), json!(4)), "{t}");
    assert_eq!(result["failed"], json!(1), "{t}");
    assert!(result["failures"][0]["source"].as_str().unwrap().ends_with("broken.png"), "{t}");
    assert_eq!(artifact(&t, "progress")["parts"][1]["data"]["done"], json!(5), "{t}");
    let hits = send_v1(
        &addr,
        "f2",
        json!([{"data": {"skill": "search", "collection": "docs", "text": "lighthouse storm"}}]),
        None,
    );
    assert!(
        hits["result"]["task"]["artifacts"][0]["parts"][1]["data"]["hits"][0]["source"]
            .as_str()
            .unwrap()
            .ends_with("deep.txt"),
        "{hits}"
    );

    // Several file parts: the same long-running ingest.
    let b64 = |s: &str| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
    };
    let r = send_v1(
        &addr,
        "f3",
        json!([{"data": {"skill": "ingest", "collection": "docs"}},
               {"raw": b64("Owls hunt at dusk."), "filename": "owl.txt", "mediaType": "text/plain"},
               {"raw": b64("Bees dance to point at flowers."), "filename": "bee.txt", "mediaType": "text/plain"}]),
        None,
    );
    let t =
        wait_state(&addr, r["result"]["task"]["id"].as_str().unwrap(), &["TASK_STATE_COMPLETED", "TASK_STATE_FAILED"]);
    assert_eq!(artifact(&t, "result")["parts"][1]["data"]["ingested"], json!(2), "{t}");

    // Outside the allowed folders: failed, saying so.
    let r = send_v1(&addr, "f4", json!([{"data": {"skill": "ingest", "collection": "docs", "path": outside}}]), None);
    assert_eq!(r["result"]["task"]["status"]["state"], json!("TASK_STATE_FAILED"), "{r}");
    assert!(r.to_string().contains("outside workflows.ingest_dirs"), "{r}");

    // 1,500 files, canceled while it works: it stops, and nothing more arrives.
    let r = send_v1(&addr, "f5", json!([{"data": {"skill": "ingest", "collection": "docs", "path": many}}]), None);
    let id = r["result"]["task"]["id"].as_str().unwrap().to_string();
    assert_eq!(r["result"]["task"]["status"]["state"], json!("TASK_STATE_WORKING"), "{r}");
    let r = call(&addr, "CancelTask", json!({"id": id}));
    assert_eq!(r["result"]["status"]["state"], json!("TASK_STATE_CANCELED"), "{r}");
    let count = || -> u64 {
        String::from_utf8(server.ok(&["count", "docs"]))
            .unwrap()
            .split_whitespace()
            .find_map(|w| w.parse().ok())
            .unwrap()
    };
    std::thread::sleep(std::time::Duration::from_millis(500));
    let after = count();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(count(), after, "the ingest went on after the cancel");
    assert!(after < 6 + 1500, "canceled before its end: {after}");
}
