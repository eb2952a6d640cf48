//! OpenTelemetry traces through the real binary: an in-test OTLP/gRPC trace receiver,
//! a search that carries a W3C `traceparent`, and the span tree that arrives; plus the
//! per-request JSON log line and the `x-request-id` response metadata.

mod common;

use agentdb_proto::v1;
use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use serde_json::json;
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

#[test]
fn a_search_with_traceparent_exports_its_span_tree_and_logs_one_line() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    // The OTLP/gRPC receiver on an ephemeral port.
    let receiver = Receiver::default();
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let port = listener.local_addr().unwrap().port();
    let r = receiver.clone();
    rt.spawn(async move {
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(r))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .unwrap();
    });

    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!("telemetry.otlp_endpoint=http://127.0.0.1:{port}");
    let mut server = Server::start(
        &dir.path().join("data"),
        &["--set", &endpoint, "--set", "telemetry.service_name=agentdb-e2e", "--set", "log_format=json"],
    );

    const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const PARENT_ID: &str = "00f067aa0ba902b7";
    let request_id = rt.block_on(async {
        let (mut cols, mut items) = server.clients().await;
        cols.create(v1::CreateCollectionRequest {
            name: "traced".into(),
            spaces: vec![space("", 4, v1::Metric::L2, "Flat")],
            multimodal: false,
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
    });
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
        std::thread::sleep(Duration::from_millis(100));
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
