//! Hybrid retrieval through the real binary: the keyword (BM25) index over text chunks,
//! OCR (Tesseract), image labels and file names, fused with the dense spaces; query
//! syntax errors; filters, row policies and masking inside keyword search; and the index
//! rebuilt after a kill -9.

mod common;

use common::*;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// A white card with two lines of text, drawn by FFmpeg (DejaVu Sans).
fn text_card(out: &Path) {
    let font = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
    let vf = format!(
        "drawtext=fontfile={font}:text='INVOICE AX-4471':fontsize=72:x=40:y=40,\
         drawtext=fontfile={font}:text='Harbour Street Bakery':fontsize=56:x=40:y=150"
    );
    let st = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "color=white:s=900x260", "-vf", &vf])
        .args(["-frames:v", "1", "-y"])
        .arg(out)
        .status()
        .expect("ffmpeg is installed by .ci/setup.sh");
    assert!(st.success());
}

fn search(server: &Server, args: &[&str]) -> Vec<Value> {
    let mut a = vec!["search", "media", "--json", "--explain"];
    a.extend_from_slice(args);
    json_lines(&server.ok(&a))
}

fn sources(hits: &[Value]) -> Vec<String> {
    hits.iter()
        .map(|h| h["source"].as_str().unwrap_or_default().rsplit('/').next().unwrap_or_default().to_string())
        .collect()
}

fn lists(h: &Value) -> Vec<String> {
    h["explain"].as_array().unwrap().iter().map(|e| e["list"].as_str().unwrap().to_string()).collect()
}

#[test]
fn hybrid_search_over_text_ocr_labels_and_file_names() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let media = dir.path().join("media");
    std::fs::create_dir_all(&media).unwrap();
    text_card(&media.join("card.png"));
    std::fs::copy(photos().join("chelsea.png"), media.join("chelsea.png")).unwrap();
    std::fs::write(media.join("notes.txt"), "Order ZX-9921 shipped to the warehouse in Leeds on Monday.").unwrap();
    std::fs::write(media.join("recipe.md"), "# Sourdough\n\nKnead the dough, let it rise overnight and bake it hot.")
        .unwrap();

    let mut server = Server::start(&data, &[]);
    server.ok(&["collection", "create", "media", "--multimodal"]);
    let d: Value = serde_json::from_slice(&server.ok(&["collection", "describe", "media", "--json"])).unwrap();
    assert_eq!(d["keyword_language"], "english", "keyword index on by default: {d}");
    let s: Value = serde_json::from_slice(&server.ok(&["ingest", "media", media.to_str().unwrap(), "--json"])).unwrap();
    assert_eq!(s["ingested"], 4, "{s}");

    // Words only OCR can see: keyword-only search finds the card, and says why.
    let hits = search(&server, &["--keyword", "AX-4471", "--mode", "keyword"]);
    assert_eq!(sources(&hits), vec!["card.png"], "{hits:?}");
    let e = &hits[0]["explain"][0];
    assert_eq!(e["list"], "keyword");
    assert_eq!(e["matched"], serde_json::json!(["ocr: 4471 ax"]), "{e}");
    assert!(e["snippet"].as_str().unwrap().contains("**AX**-**4471**"), "{e}");
    assert!(hits[0]["payload"]["ocr"].as_str().unwrap().contains("Harbour Street Bakery"), "{hits:?}");
    assert!(hits[0]["part"].as_str().unwrap().contains("reads \"INVOICE AX-4471 Harbour"), "{}", hits[0]["part"]);

    // The card's text is also its own dense part (modality `ocr`): found by meaning with
    // the keyword list left out.
    let hits = search(&server, &["--text", "an invoice from a shop on Harbour Street", "--mode", "dense"]);
    assert_eq!(sources(&hits)[0], "card.png", "{hits:?}");
    assert!(lists(&hits[0]).contains(&"text/ocr".to_string()), "{hits:?}");
    assert_eq!(hits[0]["modality"], "ocr", "{hits:?}");
    assert!(hits[0]["part"].as_str().unwrap().starts_with("text in image"), "{}", hits[0]["part"]);

    // Hybrid is the default for text: an exact code ranks its document first, with the
    // keyword list beside the dense ones; --mode dense leaves it out.
    let hits = search(&server, &["--text", "ZX-9921"]);
    assert_eq!(sources(&hits)[0], "notes.txt", "{hits:?}");
    let l = lists(&hits[0]);
    assert!(l.contains(&"keyword".to_string()) && l.iter().any(|x| x.starts_with("text/")), "{l:?}");
    let dense = search(&server, &["--text", "ZX-9921", "--mode", "dense"]);
    assert!(dense.iter().all(|h| !lists(h).contains(&"keyword".to_string())), "{dense:?}");

    // Each kind of text is its own field: image labels, file names, phrases, exclusion.
    assert_eq!(sources(&search(&server, &["--keyword", "labels:cat", "--mode", "keyword"])), vec!["chelsea.png"]);
    assert_eq!(sources(&search(&server, &["--keyword", "sourdough", "--mode", "keyword"])), vec!["recipe.md"]);
    assert_eq!(sources(&search(&server, &["--keyword", "recipe", "--mode", "keyword"])), vec!["recipe.md"]);
    assert!(search(&server, &["--keyword", "recipe", "--mode", "keyword", "--field", "filename=0"]).is_empty());
    assert_eq!(sources(&search(&server, &["--keyword", "\"harbour street\"", "--mode", "keyword"])), vec!["card.png"]);
    assert!(search(&server, &["--keyword", "\"street harbour\"", "--mode", "keyword"]).is_empty());
    // Filters apply to the keyword list too.
    let hits = search(&server, &["--keyword", "bakery order", "--mode", "keyword"]);
    assert_eq!(hits.len(), 2, "{hits:?}");
    let hits = search(&server, &["--keyword", "bakery order", "--mode", "keyword", "--filter", "modality = \"text\""]);
    assert_eq!(sources(&hits), vec!["notes.txt"]);

    // Bad queries: InvalidArgument naming the position; unknown fields and modes.
    for (q, want) in
        [("title:\"unclosed", "position 7"), ("colour:red", "unknown field 'colour'"), ("order^x", "position 7")]
    {
        let out = server.cli(&["search", "media", "--keyword", q, "--mode", "keyword"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(want) && err.contains("InvalidArgument"), "{q}: {err}");
    }
    let out = server.cli(&["search", "media", "--keyword", "x", "--field", "colour=2"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown keyword field 'colour'"));
    let out =
        server.cli(&["search", "media", "--image", media.join("chelsea.png").to_str().unwrap(), "--mode", "keyword"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("keyword retrieval needs text"));

    // A collection without a keyword index says so.
    server.ok(&["collection", "create", "plain", "--dim", "4", "--no-keyword"]);
    let out = server.cli(&["search", "plain", "--keyword", "x"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no keyword index"));

    // Every acknowledged write is in the index after a kill -9 (rebuilt from the WAL).
    server.ok(&["collection", "create", "memos", "--dim", "2"]);
    let jl = dir.path().join("memos.jsonl");
    let lines: Vec<String> = (0..50)
        .map(|i| format!(r#"{{"id":"m{i}","vector":[1,{i}],"payload":{{"text":"memo {i} about quokkas"}}}}"#))
        .collect();
    std::fs::write(&jl, lines.join("\n")).unwrap();
    server.ok(&["upsert", "memos", jl.to_str().unwrap()]);
    server.ok(&["collection", "flush", "memos"]);
    server.ok(&["upsert", "memos", jl.to_str().unwrap()]); // replaces: no duplicates
    server.ok(&["delete", "memos", "m7"]);
    server.kill9();
    let server = Server::start(&data, &[]);
    let memos = |q: &str| json_lines(&server.ok(&["search", "memos", "--keyword", q, "--json", "--top-k", "100"]));
    assert_eq!(memos("quokka").len(), 49, "every acknowledged memo, minus the deleted one");
    assert_eq!(memos("quokka").iter().filter(|h| h["id"] == "m3").count(), 1);
    assert_eq!(sources(&search(&server, &["--keyword", "AX-4471", "--mode", "keyword"])), vec!["card.png"]);
    assert!(server.log_text().contains("keyword index built"));
}

#[test]
fn keyword_search_obeys_row_policies_and_masking() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(
        &data,
        &["--set", "security.auth=api_key", "--set", "security.masked_fields=secret", "--set", "ingest.ocr=false"],
    );
    let admin = std::fs::read_to_string(data.join("security/bootstrap-admin.key")).unwrap().trim().to_string();
    let as_key = |key: &str, args: &[&str]| {
        Command::new(BIN).args(args).env("AGENTDB_URL", server.url()).env("AGENTDB_API_KEY", key).output().unwrap()
    };
    let ok = |key: &str, args: &[&str]| {
        let out = as_key(key, args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    };
    ok(&admin, &["collection", "create", "kb", "--dim", "4", "--searchable", "secret"]);
    let jl = dir.path().join("kb.jsonl");
    let lines: Vec<String> = (0..10)
        .map(|i| {
            let tenant = if i % 2 == 0 { "a" } else { "b" };
            format!(
                r#"{{"id":"k{i}","vector":[1,0,0,{i}],"payload":{{"tenant":"{tenant}","text":"quarterly report {i}","secret":"launch code zebra{i}"}}}}"#
            )
        })
        .collect();
    std::fs::write(&jl, lines.join("\n")).unwrap();
    ok(&admin, &["upsert", "kb", jl.to_str().unwrap()]);
    let key = String::from_utf8(ok(
        &admin,
        &["keys", "create", "tenant-a", "--role", "reader", "--row-filter", "tenant = \"a\""],
    ))
    .unwrap()
    .trim()
    .to_string();
    let kw = |k: &str, q: &str, extra: &[&str]| -> Vec<Value> {
        let mut a = vec!["search", "kb", "--keyword", q, "--json", "--top-k", "20"];
        a.extend_from_slice(extra);
        json_lines(&ok(k, &a))
    };
    let hits = kw(&key, "quarterly", &[]);
    assert_eq!(hits.len(), 5);
    assert!(hits.iter().all(|h| h["payload"]["tenant"] == "a"), "{hits:?}");
    assert!(kw(&key, "quarterly", &["--filter", "tenant = \"b\""]).is_empty(), "a filter cannot widen the policy");
    // The masked field is searchable for the admin, invisible (and not an oracle) below.
    assert_eq!(kw(&admin, "zebra4", &[]).len(), 1);
    assert!(kw(&key, "zebra4", &[]).is_empty());
    assert!(kw(&key, "meta:zebra4", &[]).is_empty());
    // Nor does it leak through explain's matched terms and snippet, or the payload.
    let hits = kw(&key, "quarterly launch code", &["--explain"]);
    assert_eq!(hits.len(), 5);
    for h in &hits {
        let s = h.to_string();
        assert!(!s.contains("zebra") && !s.contains("launch code") && s.contains("quarterly"), "{s}");
    }
}

#[test]
fn ocr_obeys_its_time_and_pixel_limits() {
    let dir = tempfile::tempdir().unwrap();
    let media = dir.path().join("media");
    std::fs::create_dir_all(&media).unwrap();
    std::fs::copy(photos().join("page.png"), media.join("page.png")).unwrap();
    // A deadline no page can meet: the file fails with a message naming the setting,
    // the server stays up, and the next file is not affected.
    let server = Server::start(&dir.path().join("data"), &["--set", "ingest.ocr_timeout_ms=1"]);
    server.ok(&["collection", "create", "media", "--multimodal"]);
    let s: Value = serde_json::from_slice(&server.ok(&["ingest", "media", media.to_str().unwrap(), "--json"])).unwrap();
    assert_eq!(s["ingested"], 0, "{s}");
    assert!(s["failed"].to_string().contains("ingest.ocr_timeout_ms"), "{s}");
    // Pixels beyond limits.max_image_pixels are refused before decoding, OCR included.
    let server2 = Server::start(&dir.path().join("data2"), &["--set", "limits.max_image_pixels=10000"]);
    server2.ok(&["collection", "create", "media", "--multimodal"]);
    let s: Value =
        serde_json::from_slice(&server2.ok(&["ingest", "media", media.to_str().unwrap(), "--json"])).unwrap();
    assert_eq!(s["ingested"], 0, "{s}");
    assert!(s["failed"].to_string().contains("max_image_pixels"), "{s}");
    // With the defaults the page is read.
    drop(server);
    let server3 = Server::start(&dir.path().join("data3"), &[]);
    server3.ok(&["collection", "create", "media", "--multimodal"]);
    let s: Value =
        serde_json::from_slice(&server3.ok(&["ingest", "media", media.to_str().unwrap(), "--json"])).unwrap();
    assert_eq!(s["ingested"], 1, "{s}");
    let hits = json_lines(&server3.ok(&["search", "media", "--keyword", "ocr:markers", "--json"]));
    assert_eq!(hits.len(), 1);
}
