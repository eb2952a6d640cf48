//! agentdb-client against the real `agentdb` binary (built by `make test` before the tests
//! run; `AGENTDB_BIN` overrides): typed calls, errors, retries, and the README quick start
//! (examples/quickstart.rs) run as documented.

use agentdb_client::{v1, Client, Config, Error, RetryPolicy};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// target/release/deps/e2e-HASH → target/release/NAME.
fn built(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(Path::parent).unwrap().join(name)
}

fn agentdb() -> PathBuf {
    let p = std::env::var_os("AGENTDB_BIN").map(PathBuf::from).unwrap_or_else(|| built("agentdb"));
    assert!(p.exists(), "{} is missing: build it first (`cargo build --release --bins`)", p.display());
    p
}

struct Server {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(extra: &[&str]) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(agentdb())
        .args(["serve", "--listen", "127.0.0.1:0", "--set", "http_listen=", "--data-dir"])
        .arg(dir.path().join("data"))
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Some(a) = line.strip_prefix("agentdb listening on ") {
                let _ = tx.send(a.trim().to_string());
            }
        }
    });
    let addr = rx.recv_timeout(Duration::from_secs(60)).expect("the server started");
    Server { child, url: format!("http://{addr}"), dir }
}

fn admin_key(s: &Server) -> String {
    std::fs::read_to_string(s.dir.path().join("data/security/bootstrap-admin.key")).unwrap().trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_calls_errors_and_retries() {
    let s = serve(&[
        "--set",
        "security.auth=api_key",
        "--set",
        "security.rate_limit_per_sec=4",
        "--set",
        "security.rate_limit_burst=20",
    ]);
    let admin = Client::connect(Config::new(&s.url).with_credential(admin_key(&s))).await.unwrap();
    let spaces = vec![v1::SpaceSpec {
        name: "v".into(),
        dim: 2,
        metric: v1::Metric::L2 as i32,
        index: "Flat".into(),
        encoder: String::new(),
    }];
    let info = admin
        .create_collection(v1::CreateCollectionRequest { name: "pts".into(), spaces, ..Default::default() })
        .await
        .unwrap();
    assert_eq!(info.name, "pts");
    let item = |id: &str, x: f32, tag: u32| v1::Item {
        id: id.into(),
        vectors: [("v".to_string(), v1::Vector { values: vec![x, 0.0], ..Default::default() })].into(),
        payload_json: format!("{{\"tag\": {tag}}}"),
    };
    let ids = admin.upsert("pts", vec![item("a", 0.0, 1), item("b", 1.0, 2), item("c", 2.0, 2)]).await.unwrap();
    assert_eq!(ids, ["a", "b", "c"]);
    assert_eq!(admin.count("pts", "tag = 2").await.unwrap(), 2);
    let hits = admin
        .search(v1::SearchRequest {
            collection: "pts".into(),
            vector: Some(v1::Vector { values: vec![1.9, 0.0], ..Default::default() }),
            top_k: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(hits.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(), ["c", "b"]);
    let got = admin.get("pts", &["b".into()], true).await.unwrap();
    assert_eq!(got[0].vectors["v"].values, vec![1.0, 0.0]);
    assert_eq!(admin.delete("pts", &[], "tag = 1").await.unwrap(), 1);

    // Errors carry the code.
    let e = admin.describe_collection("nope").await.unwrap_err();
    assert!(e.is_not_found(), "{e}");
    let anonymous = Client::connect(Config::new(&s.url)).await.unwrap();
    let e = anonymous.list_collections().await.unwrap_err();
    assert!(e.is_unauthenticated(), "{e}");
    let mut sec = admin.security();
    let reader = sec
        .create_key(v1::CreateKeyRequest { name: "r".into(), role: "reader".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .secret;
    let reader = Client::connect(Config::new(&s.url).with_credential(reader)).await.unwrap();
    let e = reader.upsert("pts", vec![item("d", 3.0, 3)]).await.unwrap_err();
    assert!(e.is_permission_denied(), "{e}");

    // Who am I: the reader may read but not write or drop; the admin may do anything.
    let me = reader.who_am_i(&["pts".into()]).await.unwrap();
    assert!(me.auth_enabled && !me.can_admin && me.role == "reader", "{me:?}");
    let p = &me.permissions[0];
    assert!(p.collection == "pts" && p.read && !p.write && !p.admin, "{p:?}");
    let me = admin.who_am_i(&["pts".into()]).await.unwrap();
    assert!(me.can_admin && me.permissions[0].admin, "{me:?}");

    // Scroll: pages in id order, each with the id to continue after.
    let more: Vec<v1::Item> = (0..7).map(|i| item(&format!("s{i}"), 9.0, 5)).collect();
    admin.upsert("pts", more).await.unwrap();
    let (mut seen, mut after) = (Vec::new(), String::new());
    loop {
        let (page, next) = reader.scroll("pts", "tag = 5", &after, 3, false).await.unwrap();
        assert!(page.len() <= 3 && page.iter().all(|i| i.payload_json.contains("\"tag\":5")), "{page:?}");
        seen.extend(page.into_iter().map(|i| i.id));
        match next {
            Some(n) => after = n,
            None => break,
        }
    }
    assert_eq!(seen, (0..7).map(|i| format!("s{i}")).collect::<Vec<_>>());

    // The rate limit (4/s, burst 20): without retries the refusal carries the hint; with
    // them every call gets through.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut no_retry = Config::new(&s.url).with_credential(admin_key(&s));
    no_retry.retry = RetryPolicy::none();
    let impatient = Client::connect(no_retry).await.unwrap();
    let mut refused = None;
    for _ in 0..60 {
        if let Err(e) = impatient.count("pts", "").await {
            refused = Some(e);
            break;
        }
    }
    match refused.expect("the rate limit refused a call") {
        Error::Status { code, retry_after, .. } => {
            assert_eq!(code, tonic::Code::ResourceExhausted);
            assert!(retry_after.is_some_and(|d| d > Duration::ZERO && d <= Duration::from_secs(2)), "{retry_after:?}");
        }
        e => panic!("{e}"),
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let patient = Client::connect(Config::new(&s.url).with_credential(admin_key(&s))).await.unwrap();
    for _ in 0..8 {
        assert_eq!(patient.count("pts", "").await.unwrap(), 9);
    }
    // Writes too: refused before anything was done, so retried safely.
    for i in 0..4 {
        patient.upsert("pts", vec![item(&format!("w{i}"), 5.0, 9)]).await.unwrap();
    }
    assert_eq!(patient.count("pts", "tag = 9").await.unwrap(), 4);
}

/// The quick start itself, compiled into this test.
mod quickstart {
    include!("../examples/quickstart.rs");

    pub fn run() -> Result<(), agentdb_client::Error> {
        main()
    }
}

#[test]
fn the_readme_quick_start_runs_as_documented() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let example = std::fs::read_to_string(root.join("examples/quickstart.rs")).unwrap();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    assert!(readme.contains(example.trim()), "README.md must show examples/quickstart.rs verbatim");
    let s = serve(&[]);
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("bread.txt"), "Knead the dough, let it rise, then bake the loaf at 220 degrees.")
        .unwrap();
    // The example reads AGENTDB_URL and a relative bread.txt, as a user's program would.
    std::env::set_var("AGENTDB_URL", &s.url);
    std::env::remove_var("AGENTDB_API_KEY");
    std::env::set_current_dir(work.path()).unwrap();
    quickstart::run().expect("the quick start ran");
    // What it did, checked from outside.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let db = Client::connect(Config::new(&s.url)).await.unwrap();
        assert_eq!(db.count("notes", "").await.unwrap(), 1);
        let hits = db.search_text("notes", "baking a loaf", 1).await.unwrap();
        assert_eq!(hits[0].source, "bread.txt");
    });
}
