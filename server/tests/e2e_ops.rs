//! Operations through the real binary: Prometheus metrics (validated by a real
//! exposition-format parser) and `agentdb status`.

mod common;

use agentdb_proto::v1;
use common::*;
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_valid_prometheus_text_and_status_reports_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--set", "http_listen=127.0.0.1:0"]);
    let log = std::fs::read_to_string(&server.log).unwrap_or_default();
    let _ = log;
    let (mut cols, mut items) = server.clients().await;
    cols.create(v1::CreateCollectionRequest {
        name: "m".into(),
        spaces: vec![space("", 4, v1::Metric::L2, "Flat")],
        multimodal: false,
        ..Default::default()
    })
    .await
    .unwrap();
    items
        .upsert(v1::UpsertRequest {
            collection: "m".into(),
            items: (0..50).map(|i| item(&i.to_string(), vec![i as f32, 1.0, 2.0, 3.0], json!({}))).collect(),
        })
        .await
        .unwrap();
    for _ in 0..5 {
        items
            .search(v1::SearchRequest {
                collection: "m".into(),
                vector: Some(v1::Vector { values: vec![1.0; 4], ..Default::default() }),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let _ = items
        .search(v1::SearchRequest {
            collection: "nope".into(),
            vector: Some(v1::Vector { values: vec![1.0; 4], ..Default::default() }),
            ..Default::default()
        })
        .await;
    let http = server.http_addr.clone().expect("http listener");
    let body = http_get(&http, "/metrics");
    // Parse with the reference Python client's parser (installed by the set-up).
    let script = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
fams = {f.name: f for f in text_string_to_metric_families(sys.stdin.read())}
def val(name, **labels):
    for s in fams[name].samples:
        if all(s.labels.get(k) == v for k, v in labels.items()) and s.name == name + ("_total" if fams[name].type == "counter" else ""):
            return s.value
    raise SystemExit(f"missing {name} {labels}")
assert val("agentdb_grpc_requests", method="/agentdb.v1.Items/Search", code="0") == 5
assert val("agentdb_grpc_requests", method="/agentdb.v1.Items/Search", code="5") == 1
assert val("agentdb_collection_items", collection="m") == 50
assert val("agentdb_searches", collection="m") == 5
assert val("process_resident_memory_bytes") > 0
assert fams["agentdb_grpc_request_duration_seconds"].type == "histogram"
print("ok", len(fams))
"#;
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "parser rejected /metrics: {}\n{}", String::from_utf8_lossy(&out.stderr), body);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok"));
    assert_eq!(http_get(&http, "/healthz").trim(), "ok");

    // The shipped dashboard and alert rules use only metrics this server exports.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    for file in ["deploy/grafana/agentdb-dashboard.json", "deploy/prometheus/agentdb-rules.yml"] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        let mut names: Vec<String> = Vec::new();
        for (i, _) in text.match_indices("agentdb_").chain(text.match_indices("process_")) {
            let name: String = text[i..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            names.push(name);
        }
        assert!(names.len() > 5, "{file}");
        for n in names {
            let family = n.trim_end_matches("_bucket");
            assert!(body.contains(&format!("# TYPE {family} ")), "{file} uses {n}, which /metrics does not export");
        }
    }

    let out = server.cli(&["status", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["device"], json!("cpu"));
    assert!(s["rss_bytes"].as_u64().unwrap() > 0);
    assert!(s["disk_free_bytes"].as_u64().unwrap() > 0);
    assert_eq!(s["collections"][0]["count"], json!(50));
    let out = server.cli(&["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("memory") && text.contains("growth") && text.contains("m "), "{text}");
}

fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).unwrap();
    let (head, body) = buf.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_string()
}

#[test]
fn log_level_changes_at_run_time() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--set", "log_level=info"]);
    let ok = |args: &[&str]| {
        let out = server.cli(args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    ok(&["collection", "create", "l", "--dim", "2", "--index", "Flat"]);
    let search = || ok(&["search", "l", "--vector", "[1, 0]"]);
    search();
    let debug_lines =
        || server.log_text().lines().filter(|l| l.contains("\"level\":\"DEBUG\"") && l.contains("\"search\"")).count();
    assert_eq!(debug_lines(), 0, "info level: no debug events");
    assert!(ok(&["log-level", "agentdb_engine=debug,info"]).contains("info -> agentdb_engine=debug,info"));
    search();
    assert!(debug_lines() >= 1, "debug events after the change:\n{}", server.log_text());
    ok(&["log-level", "info"]);
    let before = debug_lines();
    search();
    assert_eq!(debug_lines(), before, "back to info");
    let out = server.cli(&["log-level", "no_such=level=x"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid log filter"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_fault_raises_an_alert_that_then_clears() {
    // A webhook receiver on loopback.
    let hook = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hook_addr = hook.local_addr().unwrap();
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let r2 = received.clone();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut s in hook.incoming().flatten() {
            let mut buf = vec![0u8; 8192];
            let n = s.read(&mut buf).unwrap_or(0);
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            if let Some((_, body)) = text.split_once("\r\n\r\n") {
                r2.lock().unwrap().push(body.to_string());
            }
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let webhook = format!("alerts.webhook=http://{hook_addr}/hook");
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
            "--set",
            &webhook,
        ],
    );
    let alerts = |server: &Server| -> Vec<serde_json::Value> {
        let out = server.cli(&["alerts", "--json"]);
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    };
    let (mut cols, items) = server.clients().await;
    cols.create(v1::CreateCollectionRequest {
        name: "q".into(),
        spaces: vec![space("", 4, v1::Metric::L2, "Flat")],
        multimodal: false,
        ..Default::default()
    })
    .await
    .unwrap();
    // Steady search traffic in the background.
    let load = search_load(items, "q");
    // A baseline. (A steady baseline never fires: the detector's unit test. Here other
    // tests share the CPU, so only alerts raised after the fault count.)
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let before = alerts(&server).iter().map(|a| a["id"].as_u64().unwrap()).max().unwrap_or(0);
    let ours = |a: &serde_json::Value| a["signal"] == "search_latency_ms" && a["id"].as_u64().unwrap() > before;
    assert!(server.cli(&["inject-fault", "--search-delay-ms", "80"]).status.success());
    let t = std::time::Instant::now();
    while !alerts(&server).iter().any(|a| ours(a) && a["state"] == "firing") {
        assert!(t.elapsed() < std::time::Duration::from_secs(20), "alert did not fire");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(server.cli(&["inject-fault", "--search-delay-ms", "0"]).status.success());
    let t = std::time::Instant::now();
    while !alerts(&server).iter().any(|a| ours(a) && a["state"] == "resolved") {
        assert!(t.elapsed() < std::time::Duration::from_secs(20), "alert did not clear");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    load.stop().await;
    let t = std::time::Instant::now();
    while received.lock().unwrap().len() < 2 && t.elapsed() < std::time::Duration::from_secs(10) {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let got = received.lock().unwrap().clone();
    assert!(
        got.iter().any(|b| b.contains("\"state\":\"firing\""))
            && got.iter().any(|b| b.contains("\"state\":\"resolved\"")),
        "webhook got {got:?}"
    );
    assert!(server.log_text().contains("ALERT firing"));
}

/// Admission is fair across tenants: with one slot and every search held for 20 ms
/// (fault injection), a client flooding 40 searches does not make a second client wait
/// behind all of them. Tenants here are client connections (no authentication); with
/// API keys or OIDC they are principals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_client_does_not_starve_a_quiet_one() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &["--set", "limits.max_concurrent=1", "--set", "debug.allow_fault_injection=true"],
    );
    let (mut cols, mut items) = server.clients().await;
    cols.create(v1::CreateCollectionRequest {
        name: "f".into(),
        spaces: vec![space("", 4, v1::Metric::L2, "Flat")],
        ..Default::default()
    })
    .await
    .unwrap();
    items
        .upsert(v1::UpsertRequest { collection: "f".into(), items: vec![item("a", vec![1.0; 4], json!({}))] })
        .await
        .unwrap();
    v1::server_client::ServerClient::new(server.channel().await)
        .inject_fault(v1::InjectFaultRequest { search_delay_ms: 20 })
        .await
        .unwrap();
    let search = || v1::SearchRequest {
        collection: "f".into(),
        vector: Some(v1::Vector { values: vec![1.0; 4], ..Default::default() }),
        ..Default::default()
    };
    // The flooding client: 40 concurrent searches on its own connection.
    let (_, flood) = server.clients().await;
    let done = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..40 {
        let (mut c, done, req) = (flood.clone(), done.clone(), search());
        tasks.spawn(async move {
            c.search(req).await.unwrap();
            done.fetch_add(1, Ordering::SeqCst);
        });
    }
    // Let the flood queue up, then the quiet client (another connection) asks once.
    while done.load(Ordering::SeqCst) < 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (_, mut quiet) = server.clients().await;
    let before = done.load(Ordering::SeqCst);
    quiet.search(search()).await.unwrap();
    let after = done.load(Ordering::SeqCst);
    while tasks.join_next().await.is_some() {}
    assert!(40 - before >= 10, "the flood was still queued when the quiet client asked ({before} of 40 done)");
    // FIFO would finish every queued flood search first (~{40 - before}); round robin
    // serves the quiet client after at most the running one and one more.
    assert!(after - before <= 3, "{} flood searches finished while the quiet one waited", after - before);
}
