//! OpenTelemetry traces through the real binary: an in-test OTLP/gRPC trace receiver,
//! a search that carries a W3C `traceparent`, and the span tree that arrives; plus the
//! per-request JSON log line and the `x-request-id` response metadata. And the same over
//! the HTTP listener: an A2A `SendMessage` with a `traceparent` header, its span tree
//! (http.request -> a2a.task -> search.*) and the `traceparent` of its push notification.

mod common;

use agentdb_proto::v1;
use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use serde_json::json;
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Default)]
struct Receiver {
    spans: Arc<Mutex<Vec<(String, Span)>>>,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut out = self.spans.lock().unwrap();
        for rs in req.into_inner().resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| r.attributes.iter())
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref())
                .and_then(|v| match &v.value {
                    Some(AnyValue::StringValue(s)) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for ss in rs.scope_spans {
                for s in ss.spans {
                    out.push((service.clone(), s));
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

fn attr(s: &Span, key: &str) -> Option<String> {
    s.attributes.iter().find(|kv| kv.key == key).and_then(|kv| kv.value.as_ref()).and_then(|v| match &v.value {
        Some(AnyValue::StringValue(x)) => Some(x.clone()),
        Some(AnyValue::IntValue(i)) => Some(i.to_string()),
        Some(AnyValue::DoubleValue(d)) => Some(d.to_string()),
        Some(AnyValue::BoolValue(b)) => Some(b.to_string()),
        _ => None,
    })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_with_traceparent_exports_its_span_tree_and_logs_one_line() {
    // The OTLP/gRPC receiver on an ephemeral port.
    let (receiver, port) = otlp_receiver().await;

    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!("telemetry.otlp_endpoint=http://127.0.0.1:{port}");
    let mut server = Server::start(
        &dir.path().join("data"),
        &["--set", &endpoint, "--set", "telemetry.service_name=agentdb-e2e", "--set", "log_format=json"],
    );

    const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const PARENT_ID: &str = "00f067aa0ba902b7";
    let request_id = {
        let (mut cols, mut items) = server.clients().await;
        cols.create(v1::CreateCollectionRequest {
            name: "traced".into(),
            spaces: vec![space("", 4, v1::Metric::L2, "Flat")],
            multimodal: false,
            ..Default::default()
        })
        .await
        .unwrap();
        items
            .upsert(v1::UpsertRequest {
                collection: "traced".into(),
                items: (0..20).map(|i| item(&i.to_string(), rand_vec(i, 4), json!({"i": i}))).collect(),
            })
            .await
            .unwrap();
        let mut req = tonic::Request::new(v1::SearchRequest {
            collection: "traced".into(),
            vector: Some(v1::Vector { values: rand_vec(3, 4), ..Default::default() }),
            top_k: 5,
            ..Default::default()
        });
        req.metadata_mut().insert("traceparent", format!("00-{TRACE_ID}-{PARENT_ID}-01").parse().unwrap());
        let resp = items.search(req).await.unwrap();
        assert_eq!(resp.get_ref().hits.len(), 5);
        let rid = resp.metadata().get("x-request-id").expect("x-request-id in the response metadata");
        rid.to_str().unwrap().to_string()
    };
    assert!(!request_id.is_empty());

    // Wait (bounded) for the search's spans to arrive.
    let t = Instant::now();
    let (root, children) = loop {
        let spans = receiver.spans.lock().unwrap().clone();
        let root = spans.iter().find(|(_, s)| {
            s.name == "grpc.request"
                && hex(&s.trace_id) == TRACE_ID
                && attr(s, "rpc.method").as_deref() == Some("/agentdb.v1.Items/Search")
        });
        if let Some((service, root)) = root {
            let children: Vec<Span> = spans
                .iter()
                .filter(|(_, s)| hex(&s.trace_id) == TRACE_ID && s.parent_span_id == root.span_id)
                .map(|(_, s)| s.clone())
                .collect();
            if children.iter().any(|s| s.name == "search.list") {
                assert_eq!(service, "agentdb-e2e");
                break (root.clone(), children);
            }
        }
        if t.elapsed() > Duration::from_secs(30) {
            let names: Vec<String> =
                spans.iter().map(|(_, s)| format!("{} trace={} ", s.name, hex(&s.trace_id))).collect();
            panic!("no grpc.request span tree for the search within 30 s; got {names:?}\nlog:\n{}", server.log_text());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // The caller's span is the parent: the trace continues into AgentDB.
    assert_eq!(hex(&root.parent_span_id), PARENT_ID);
    assert_eq!(attr(&root, "request_id").as_deref(), Some(request_id.as_str()));
    assert_eq!(attr(&root, "agentdb.collection").as_deref(), Some("traced"));
    assert_eq!(attr(&root, "rpc.grpc.status_code").as_deref(), Some("0"));
    assert!(attr(&root, "agentdb.principal").is_some_and(|p| p.starts_with("peer:")), "{:?}", root.attributes);
    assert!(attr(&root, "latency_ms").is_some());
    let list = children.iter().find(|s| s.name == "search.list").unwrap();
    assert_eq!(attr(list, "modality").as_deref(), Some("vector"));
    assert_eq!(attr(list, "k").as_deref(), Some("5"));
    assert_eq!(attr(list, "hits").as_deref(), Some("5"));
    assert!(
        list.start_time_unix_nano >= root.start_time_unix_nano && list.end_time_unix_nano <= root.end_time_unix_nano
    );

    // One JSON log line for the request, with its id, method, principal, collection, status and latency.
    server.terminate();
    let log = server.log_text();
    let line = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["fields"]["request_id"] == request_id.as_str())
        .unwrap_or_else(|| panic!("no log line with request_id {request_id}:\n{log}"));
    let f = &line["fields"];
    assert_eq!(f["method"], "/agentdb.v1.Items/Search", "{line}");
    assert_eq!(f["collection"], "traced", "{line}");
    assert_eq!(f["status"], "0", "{line}");
    assert!(f["principal"].as_str().is_some_and(|p| p.starts_with("peer:")), "{line}");
    assert!(f["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0), "{line}");
    // Every request logs its line: the create and the upsert did too.
    let lines = log.lines().filter(|l| l.contains("\"target\":\"agentdb::request\"")).count();
    assert!(lines >= 3, "expected a line per request:\n{log}");
}

/// The OTLP/gRPC receiver on an ephemeral port, served by a task of the test's runtime:
/// (receiver, port).
async fn otlp_receiver() -> (Receiver, u16) {
    let receiver = Receiver::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let r = receiver.clone();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(r))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    (receiver, port)
}

/// What the push receiver got: (head with lower-cased header names, body) per request.
type Pushes = Arc<Mutex<Vec<(String, String)>>>;

/// A tiny HTTP server for push notifications: records each request and answers 200.
fn push_receiver() -> (String, Pushes) {
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
                head.push_str(&match line.split_once(':') {
                    Some((k, v)) => format!("{}:{v}", k.to_ascii_lowercase()),
                    None => line.clone(),
                });
                line.clear();
            }
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; len];
            let _ = r.read_exact(&mut body);
            sink.lock().unwrap().push((head, String::from_utf8_lossy(&body).to_string()));
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (addr, got)
}

/// One JSON-RPC POST to the A2A endpoint: (status, response head, JSON body).
fn a2a_post(addr: &str, body: &serde_json::Value, headers: &[(&str, &str)]) -> (u16, String, serde_json::Value) {
    let body = body.to_string();
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the HTTP listener");
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut req = format!(
        "POST /a2a HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(&body);
    s.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8_lossy(&out).to_string();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let v = serde_json::from_str(rest).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (status, head.to_ascii_lowercase(), v)
}

/// Whether `span`'s parent chain (within `spans`) reaches `ancestor`.
fn descends_from(spans: &[(String, Span)], span: &Span, ancestor: &[u8]) -> bool {
    let mut cur = span.parent_span_id.clone();
    for _ in 0..32 {
        if cur == ancestor {
            return true;
        }
        match spans.iter().find(|(_, s)| s.span_id == cur) {
            Some((_, p)) => cur = p.parent_span_id.clone(),
            None => return false,
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_a2a_send_with_traceparent_continues_the_trace_into_its_work_and_push_notifications() {
    // The push receiver listens on 127.0.0.1, which the server refuses by default.
    std::env::set_var("A2A_ALLOW_PRIVATE_PUSH_TARGETS", "1");
    let (receiver, port) = otlp_receiver().await;
    let (push_addr, pushes) = push_receiver();
    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!("telemetry.otlp_endpoint=http://127.0.0.1:{port}");
    let mut server = Server::start(
        &dir.path().join("data"),
        &["--set", &endpoint, "--set", "log_format=json", "--set", "http_listen=127.0.0.1:0"],
    );
    let http = server.http_addr.clone().expect("the server printed 'agentdb http listening on ADDR'");
    let out = server.cli(&["collection", "create", "docs", "--multimodal"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let ingest = json!({"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"message": {
        "messageId": "m1", "role": "ROLE_USER",
        "parts": [{"data": {"skill": "ingest", "collection": "docs", "source": "engines.txt",
                   "text": "The diesel engine of the locomotive needs new pistons and a fuel injector."}}]}}});
    let (status, _, r) = a2a_post(&http, &ingest, &[]);
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["result"]["task"]["status"]["state"], json!("TASK_STATE_COMPLETED"), "{r}");

    // A search with the caller's traceparent and an inline push config.
    const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
    const PARENT_ID: &str = "b7ad6b7169203331";
    let traceparent = format!("00-{TRACE_ID}-{PARENT_ID}-01");
    let search = json!({"jsonrpc": "2.0", "id": 2, "method": "SendMessage", "params": {"message": {
        "messageId": "m2", "role": "ROLE_USER",
        "parts": [{"data": {"skill": "search", "collection": "docs", "text": "locomotive pistons"}}]},
        "configuration": {"taskPushNotificationConfig": {"url": format!("http://{push_addr}/hook"), "token": "t"}}}});
    let (status, head, r) = a2a_post(&http, &search, &[("traceparent", &traceparent), ("x-request-id", "a2a-req-1")]);
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["result"]["task"]["status"]["state"], json!("TASK_STATE_COMPLETED"), "{r}");
    // (c) The request id is echoed.
    assert!(head.contains("\r\nx-request-id: a2a-req-1"), "{head}");
    // A request without one gets a new one.
    let (_, head2, _) = a2a_post(&http, &json!({"jsonrpc": "2.0", "id": 3, "method": "ListTasks"}), &[]);
    let rid = head2.lines().find_map(|l| l.strip_prefix("x-request-id: ")).expect("x-request-id");
    assert_eq!(rid.trim().len(), 32, "{head2}");

    // (b) The push notification of the completed task carries the caller's trace.
    let t = Instant::now();
    let push_parent = loop {
        let got = pushes.lock().unwrap().clone();
        let done = got.iter().find(|(_, b)| b.contains("TASK_STATE_COMPLETED"));
        if let Some((head, _)) = done {
            let tp = head
                .lines()
                .find_map(|l| l.strip_prefix("traceparent:"))
                .unwrap_or_else(|| panic!("no traceparent in the push: {head}"))
                .trim()
                .to_string();
            let f: Vec<&str> = tp.split('-').collect();
            assert_eq!(f.len(), 4, "{tp}");
            assert_eq!(f[1], TRACE_ID, "{tp}");
            assert_ne!(f[2], PARENT_ID, "{tp}");
            break f[2].to_string();
        }
        if t.elapsed() > Duration::from_secs(30) {
            panic!("no completed-task push within 30 s; got {got:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // (a) The span tree: http.request (child of the caller's span) -> a2a.task -> search.*,
    // and the push's a2a.push span in the same trace.
    let t = Instant::now();
    loop {
        let spans: Vec<(String, Span)> =
            receiver.spans.lock().unwrap().iter().filter(|(_, s)| hex(&s.trace_id) == TRACE_ID).cloned().collect();
        let root = spans.iter().map(|(_, s)| s).find(|s| s.name == "http.request");
        let task = root
            .and_then(|r| spans.iter().map(|(_, s)| s).find(|s| s.name == "a2a.task" && s.parent_span_id == r.span_id));
        let embed = task.and_then(|tk| {
            spans.iter().map(|(_, s)| s).find(|s| s.name == "search.embed" && descends_from(&spans, s, &tk.span_id))
        });
        let push = spans.iter().map(|(_, s)| s).find(|s| s.name == "a2a.push" && hex(&s.span_id) == push_parent);
        if let (Some(root), Some(task), Some(_), Some(push)) = (root, task, embed, push) {
            assert_eq!(hex(&root.parent_span_id), PARENT_ID);
            assert_eq!(attr(root, "request_id").as_deref(), Some("a2a-req-1"));
            assert_eq!(attr(root, "http.request.method").as_deref(), Some("POST"));
            assert_eq!(attr(root, "url.path").as_deref(), Some("/a2a"));
            assert_eq!(attr(root, "rpc.method").as_deref(), Some("SendMessage"));
            assert_eq!(attr(root, "http.response.status_code").as_deref(), Some("200"));
            assert_eq!(attr(task, "skill").as_deref(), Some("search"));
            assert_eq!(attr(task, "agentdb.collection").as_deref(), Some("docs"));
            assert_eq!(attr(task, "request_id").as_deref(), Some("a2a-req-1"));
            assert!(descends_from(&spans, push, &root.span_id), "{push:?}");
            assert!(spans.iter().any(|(_, s)| s.name == "search.list" && descends_from(&spans, s, &task.span_id)));
            break;
        }
        if t.elapsed() > Duration::from_secs(30) {
            let names: Vec<String> = spans
                .iter()
                .map(|(_, s)| format!("{} id={} parent={}", s.name, hex(&s.span_id), hex(&s.parent_span_id)))
                .collect();
            panic!("no http.request span tree within 30 s; got {names:?}\nlog:\n{}", server.log_text());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The HTTP request's one log line, as for gRPC.
    server.terminate();
    let log = server.log_text();
    let line = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["fields"]["request_id"] == "a2a-req-1" && v["target"] == "agentdb::request")
        .unwrap_or_else(|| panic!("no request log line with request_id a2a-req-1:\n{log}"));
    let f = &line["fields"];
    assert_eq!(f["method"], "POST /a2a", "{line}");
    assert_eq!(f["status"], "200", "{line}");
    assert_eq!(f["principal"], "local", "{line}");
    assert!(f["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0), "{line}");
}
