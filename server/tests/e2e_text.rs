//! Text ingestion and search by text through the real binary, with the real
//! all-MiniLM-L6-v2 weights the set-up installs (`make test` runs `.ci/models.sh`).

mod common;

use agentdb_proto::v1;
use common::*;
use serde_json::{json, Value};
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_folder_then_search_by_text_and_resume() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--set", "ingest.chunk_tokens=64"]);
    let ok = |args: &[&str]| server.ok(args);

    // Models load when a request first needs one (models.preload = false).
    let models = json_lines(&ok(&["models", "list", "--json"]));
    let minilm = models.iter().find(|m| m["name"] == "all-minilm-l6-v2").expect("MiniLM installed");
    assert_eq!(minilm["loaded"], json!(false), "nothing has needed a model yet");
    assert_eq!(minilm["dim"], json!(384));
    assert!(!server.log_text().contains("text encoder ready"), "{}", server.log_text());

    let media = dir.path().join("media");
    std::fs::create_dir_all(media.join("sub")).unwrap();
    std::fs::write(media.join("bread.md"), "# Baking bread\n\nMix **flour**, water, salt and yeast, knead the dough and bake the loaf in a hot oven.\n- steam helps the crust\n").unwrap();
    std::fs::write(
        media.join("jupiter.txt"),
        "The probe entered orbit around Jupiter after a five year journey through the solar system.",
    )
    .unwrap();
    std::fs::write(
        media.join("sub/revenue.txt"),
        "Quarterly revenue grew twelve percent on strong sales of cloud software subscriptions.",
    )
    .unwrap();
    // A long document: several chunks.
    let long: String =
        (0..120).map(|i| format!("Sentence {i} talks about gardening, tomatoes and compost. ")).collect();
    std::fs::write(media.join("sub/garden.txt"), long).unwrap();
    std::fs::write(media.join("fake.txt"), b"\x89PNG\r\n\x1a\nthis is not really a picture").unwrap();
    std::fs::write(media.join("noise.bin"), [0u8, 1, 2, 3, 255, 254]).unwrap();

    ok(&["collection", "create", "notes", "--multimodal"]);
    let models = json_lines(&ok(&["models", "list", "--json"]));
    let minilm = models.iter().find(|m| m["name"] == "all-minilm-l6-v2").expect("MiniLM installed");
    assert_eq!(minilm["loaded"], json!(true), "a multimodal collection needed the text encoder");
    assert!(server.log_text().contains("loading models on first use"), "{}", server.log_text());
    // The default text encoder runs on ONNX Runtime (the graph the set-up built), and the
    // opt-in int8 model is installed.
    assert!(server.log_text().contains("text encoder: ONNX Runtime on the CPU"), "{}", server.log_text());
    let models = String::from_utf8(ok(&["models", "list"])).unwrap();
    assert!(models.contains("all-minilm-l6-v2-int8"), "{models}");
    let summary: Value = serde_json::from_slice(&ok(&["ingest", "notes", media.to_str().unwrap(), "--json"])).unwrap();
    assert_eq!(summary["ingested"], json!(4), "{summary}");
    assert_eq!(summary["failed"].as_array().unwrap().len(), 2, "{summary}");
    let reasons = summary["failed"].to_string();
    assert!(
        reasons.contains("fake.txt") && reasons.contains("corrupt or truncated Png image"),
        "type comes from content, not the name: {reasons}"
    );
    assert!(reasons.contains("noise.bin") && reasons.contains("unrecognised content"), "{reasons}");
    assert!(summary["items"].as_u64().unwrap() > 4, "the long document was chunked: {summary}");

    // Running again skips everything already ingested.
    let again: Value = serde_json::from_slice(&ok(&["ingest", "notes", media.to_str().unwrap(), "--json"])).unwrap();
    assert_eq!((again["ingested"].clone(), again["skipped"].clone()), (json!(0), json!(4)), "{again}");

    for (query, want) in [
        ("how do I make a loaf of bread", "bread.md"),
        ("spacecraft visiting a giant planet", "jupiter.txt"),
        ("company earnings and sales growth", "revenue.txt"),
        ("growing vegetables in my backyard", "garden.txt"),
    ] {
        let hits = json_lines(&ok(&["search", "notes", "--text", query, "--top-k", "3", "--json"]));
        let top = &hits[0]["payload"];
        assert!(top["source"].as_str().unwrap().ends_with(want), "{query}: {hits:?}");
        assert_eq!(top["modality"], json!("text"));
        assert!(top["chunk"].is_u64() && top["text"].is_string());
    }
    // Filters apply to text search too.
    let hits =
        json_lines(&ok(&["search", "notes", "--text", "bread", "--filter", "media_type = \"text/plain\"", "--json"]));
    assert!(hits.iter().all(|h| h["payload"]["media_type"] == json!("text/plain")));

    // Vectors from another encoder are refused; a vector collection cannot be searched by text.
    let (mut cols, mut items) = server.clients().await;
    let mut it = item("x", vec![0.1; 384], json!({}));
    it.vectors.get_mut("").unwrap().encoder = "clip-vit-b32@1#abc".into();
    let err = items.upsert(v1::UpsertRequest { collection: "notes".into(), items: vec![it] }).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("comes from encoder 'clip-vit-b32@1#abc'"), "{}", err.message());
    cols.create(v1::CreateCollectionRequest {
        name: "raw".into(),
        spaces: vec![space("", 4, v1::Metric::Cosine, "")],
        multimodal: false,
        ..Default::default()
    })
    .await
    .unwrap();
    let err = items
        .search(v1::SearchRequest { collection: "raw".into(), text: "hello".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("no space bound to the text encoder"), "{}", err.message());
    let err = items.search(v1::SearchRequest { collection: "notes".into(), ..Default::default() }).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}

#[test]
fn a_killed_ingest_resumes_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let media = dir.path().join("many");
    std::fs::create_dir_all(&media).unwrap();
    let topics = ["rivers", "mountains", "violins", "databases", "tennis", "volcanoes", "bicycles", "coffee"];
    for i in 0..120 {
        let t = topics[i % topics.len()];
        std::fs::write(
            media.join(format!("doc{i:03}.txt")),
            format!("Note {i}: a short text about {t} and why people enjoy {t}."),
        )
        .unwrap();
    }
    assert!(server.cli(&["collection", "create", "many", "--multimodal"]).status.success());
    // Start an ingest and kill the client part-way.
    let mut child = std::process::Command::new(BIN)
        .args(["ingest", "many", media.to_str().unwrap(), "--concurrency", "1"])
        .env("AGENTDB_URL", server.url())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let count = |server: &Server| -> u64 {
        let out = server.cli(&["count", "many"]);
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0)
    };
    let t = std::time::Instant::now();
    while count(&server) < 10 && t.elapsed() < std::time::Duration::from_secs(60) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let _ = child.wait();
    let before = count(&server);
    assert!(before >= 10, "some files were ingested before the kill");
    let out = server.cli(&["ingest", "many", media.to_str().unwrap(), "--json"]);
    assert!(out.status.success());
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["failed"].as_array().unwrap().len(), 0, "{s}");
    assert_eq!(s["ingested"].as_u64().unwrap() + s["skipped"].as_u64().unwrap(), 120, "{s}");
    assert!(s["skipped"].as_u64().unwrap() >= before, "work done before the kill is not redone: {s}");
    assert_eq!(count(&server), 120, "one item per short file, none lost, none duplicated");
}

/// The Kubernetes AgentIngestJob's work split (`agentdb ingest --slice I/N`): three
/// workers given the same folder ingest disjoint shares that together are every file; a
/// worker killed part-way and run again (a restarted Job pod) finishes its share without
/// redoing it; `--create-multimodal` lets every worker create the collection.
#[test]
fn sliced_ingest_splits_a_folder_and_a_restarted_slice_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let media = dir.path().join("dataset");
    std::fs::create_dir_all(media.join("sub")).unwrap();
    for i in 0..90 {
        let sub = if i % 3 == 0 { "sub/" } else { "" };
        std::fs::write(media.join(format!("{sub}doc{i:03}.txt")), format!("Record {i}: notes about item number {i}."))
            .unwrap();
    }
    let folder = media.to_str().unwrap();
    let run = |slice: &str| {
        std::process::Command::new(BIN)
            .args(["ingest", "sliced", folder, "--slice", slice, "--json", "--create-multimodal", "--concurrency", "1"])
            .env("AGENTDB_URL", server.url())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    // Slice 1 is killed part-way, as a pod would be.
    let mut killed = run("1/3");
    let count =
        || -> u64 { String::from_utf8_lossy(&server.cli(&["count", "sliced"]).stdout).trim().parse().unwrap_or(0) };
    let t = std::time::Instant::now();
    while count() < 5 && t.elapsed() < std::time::Duration::from_secs(60) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    unsafe { libc::kill(killed.id() as i32, libc::SIGKILL) };
    let _ = killed.wait();
    // The server finishes what it had received from the killed worker: wait until the
    // count stops moving.
    let mut partial = count();
    loop {
        std::thread::sleep(std::time::Duration::from_millis(500));
        let now = count();
        if now == partial {
            break;
        }
        partial = now;
    }
    assert!((5..90).contains(&partial), "slice 1 was cut short: {partial}");
    // Then all three at once (slice 1 again: the restarted pod).
    let workers: Vec<_> = ["0/3", "1/3", "2/3"].iter().map(|s| run(s)).collect();
    let mut files = 0;
    let mut skipped = 0;
    for (w, s) in workers.into_iter().zip(["0/3", "1/3", "2/3"]) {
        let out = w.wait_with_output().unwrap();
        assert!(out.status.success(), "slice {s}: {}", String::from_utf8_lossy(&out.stderr));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["failed"].as_array().unwrap().len(), 0, "{v}");
        let n = v["files"].as_u64().unwrap();
        assert!((15..=45).contains(&n), "slice {s} took a fair share: {v}");
        files += n;
        skipped += v["skipped"].as_u64().unwrap();
    }
    assert_eq!(files, 90, "the slices cover every file exactly once");
    assert_eq!(skipped, partial, "exactly what the killed worker had done is skipped");
    assert_eq!(count(), 90, "one item per file, none lost, none twice");
    // A slice that does not exist is refused, naming the problem.
    let out = server.cli(&["ingest", "sliced", folder, "--slice", "3/3"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the index must be below the count"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn sigterm_lets_an_in_flight_ingest_finish() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir.path().join("data"), &[]);
    let media = dir.path().join("docs");
    std::fs::create_dir_all(&media).unwrap();
    for i in 0..60 {
        std::fs::write(
            media.join(format!("d{i:02}.txt")),
            format!("Document {i} is about lighthouses, ships and the sea {i}."),
        )
        .unwrap();
    }
    assert!(server.cli(&["collection", "create", "docs", "--multimodal"]).status.success());
    let child = std::process::Command::new(BIN)
        .args(["ingest", "docs", media.to_str().unwrap(), "--json", "--concurrency", "1"])
        .env("AGENTDB_URL", server.url())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // SIGTERM once the ingest is under way.
    let data = server.data_dir.clone();
    let t = std::time::Instant::now();
    while !server.log_text().contains("\"status\":\"ingested\"") && t.elapsed() < std::time::Duration::from_secs(60) {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    server.signal(libc::SIGTERM);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the in-flight ingest completed: {}", String::from_utf8_lossy(&out.stderr));
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["ingested"], json!(60), "{s}");
    assert_eq!(server.terminate().code(), Some(0));
    // Everything is there after a restart.
    let server = Server::start(&data, &[]);
    let out = server.cli(&["count", "docs"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "60");
}
