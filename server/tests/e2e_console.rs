//! The web console (/ui) through the real binary: the HTTP pieces it stands on (kept
//! media, scroll, who-am-I, the event stream as Server-Sent Events, the console's own
//! files with their Content-Security-Policy), and the console itself driven in headless
//! Chromium by Selenium (server/tests/console_browser.py; Debian's chromium and
//! chromium-driver and the ui-venv with selenium come from .ci/setup.sh).

mod common;

use common::{http_call, Server};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::time::{Duration, Instant};

fn start(dir: &Path, extra: &[&str]) -> (Server, String) {
    let mut args = vec!["--set", "http_listen=127.0.0.1:0", "--set", "security.auth=api_key"];
    args.extend_from_slice(extra);
    let server = Server::start(&dir.join("data"), &args);
    let http = server.http_addr.clone().expect("the server printed its HTTP address");
    (server, http)
}

fn call(addr: &str, method: &str, path: &str, body: Option<Value>, key: &str) -> (u16, String, Value) {
    let text = body.map(|b| b.to_string());
    let auth = format!("Bearer {key}");
    let headers: Vec<(&str, &str)> = if key.is_empty() { vec![] } else { vec![("Authorization", auth.as_str())] };
    let (status, head, body) = http_call(addr, method, path, text.as_deref(), &headers);
    let v = serde_json::from_str(&body).unwrap_or_else(|_| json!({ "raw": body }));
    (status, head, v)
}

/// A GET whose body is returned as bytes (media).
fn get_bytes(addr: &str, path: &str, key: &str) -> (u16, String, Vec<u8>) {
    let auth = format!("Bearer {key}");
    let headers: Vec<(&str, &str)> = if key.is_empty() { vec![] } else { vec![("Authorization", auth.as_str())] };
    let (status, head, body) = common::http_raw(addr, "GET", path, None, &headers);
    assert!(!head.to_ascii_lowercase().contains("transfer-encoding: chunked"), "media is sent with a length: {head}");
    (status, head, body)
}

fn ingest(addr: &str, collection: &str, files: &[(&str, Vec<u8>)], key: &str) -> Value {
    let parts: Vec<(&str, Option<&str>, &[u8])> =
        files.iter().map(|(n, d)| ("files", Some(*n), d.as_slice())).collect();
    let (ct, body) = common::multipart(&parts);
    let auth = format!("Bearer {key}");
    let (status, _, text) = common::http_bytes(
        addr,
        "POST",
        &format!("/v1/collections/{collection}/ingest"),
        Some((&ct, &body)),
        &[("Authorization", &auth)],
    );
    assert_eq!(status, 200, "{text}");
    serde_json::from_str(&text).unwrap()
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[test]
fn console_backend_media_scroll_whoami_event_stream_and_the_console_files() {
    let dir = tempfile::tempdir().unwrap();
    let (server, http) = start(dir.path(), &[]);
    let admin = server.admin_key();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let reader = rt.block_on(server.create_key(&admin, "reader", "reader", &[], ""));
    let horse_only = rt.block_on(server.create_key(&admin, "horses", "reader", &[], "source = \"horse.png\""));
    let other = rt.block_on(server.create_key(&admin, "elsewhere", "writer", &["other"], ""));

    // The console's files: the index at /ui, / sends there, strict headers, no way out.
    let (status, head, body) = http_call(&http, "GET", "/ui", None, &[]);
    assert_eq!(status, 200, "{head}");
    assert!(body.to_ascii_lowercase().starts_with("<!doctype html"), "{body}");
    let csp = header(&head, "content-security-policy").expect("a CSP header");
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe"),
        "{csp}"
    );
    assert_eq!(header(&head, "x-content-type-options"), Some("nosniff"));
    let (status, head, _) = http_call(&http, "GET", "/", None, &[]);
    assert!(status == 307 && header(&head, "location") == Some("/ui/"), "{head}");
    for bad in ["/ui/../Cargo.toml", "/ui/%2e%2e/Cargo.toml", "/ui/nope.js"] {
        let (status, _, _) = http_call(&http, "GET", bad, None, &[]);
        assert_eq!(status, 404, "{bad}");
    }
    // Every script the index loads is served, as JavaScript, with the same policy.
    for src in body.split("src=\"").skip(1).filter_map(|s| s.split('"').next()).filter(|s| s.ends_with(".js")) {
        let path = if src.starts_with('/') { src.to_string() } else { format!("/ui/{src}") };
        let (status, head, _) = http_call(&http, "GET", &path, None, &[]);
        assert_eq!(status, 200, "{path}");
        assert!(header(&head, "content-type").is_some_and(|c| c.starts_with("text/javascript")), "{head}");
        assert!(header(&head, "content-security-policy").is_some(), "{head}");
    }

    // Who am I.
    let (status, _, me) = call(&http, "GET", "/v1/whoami?collections=photos&collections=other", None, &reader);
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["role"], "reader");
    assert_eq!(me["canAdmin"], false);
    assert_eq!(me["permissions"][0], json!({"collection": "photos", "read": true, "write": false, "admin": false}));
    let (_, _, me) = call(&http, "GET", "/v1/whoami?collections=photos&collections=other", None, &other);
    assert_eq!(me["permissions"][0]["read"], false, "{me}");
    assert_eq!(me["permissions"][1], json!({"collection": "other", "read": true, "write": true, "admin": false}));
    let (_, _, me) = call(&http, "GET", "/v1/whoami", None, &admin);
    assert_eq!(me["canAdmin"], true, "{me}");
    // Without a credential: "not signed in" (how the console knows to ask for a key);
    // a wrong credential is refused.
    let (status, _, me) = call(&http, "GET", "/v1/whoami?collections=photos", None, "");
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["authEnabled"], true);
    assert_eq!(me["id"], "");
    assert_eq!(me["canAdmin"], false);
    assert_eq!(me["permissions"][0]["read"], false, "{me}");
    let (status, _, _) = call(&http, "GET", "/v1/whoami", None, "adb_not-a-key");
    assert_eq!(status, 401);

    // Kept media: the bytes ingested, for readers of the collection within their row policy.
    let (status, _, r) =
        call(&http, "POST", "/v1/collections", Some(json!({"name": "photos", "multimodal": true})), &admin);
    assert_eq!(status, 200, "{r}");
    let photos = common::photos();
    let coffee = std::fs::read(photos.join("coffee.png")).unwrap();
    let horse = std::fs::read(photos.join("horse.png")).unwrap();
    let r = ingest(&http, "photos", &[("coffee.png", coffee.clone()), ("horse.png", horse.clone())], &admin);
    let sha = |name: &str| {
        r["results"].as_array().unwrap().iter().find(|x| x["source"] == name).unwrap()["contentSha256"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (coffee_sha, horse_sha) = (sha("coffee.png"), sha("horse.png"));
    let (status, head, bytes) = get_bytes(&http, &format!("/v1/collections/photos/media/{coffee_sha}"), &reader);
    assert_eq!(status, 200, "{head}");
    assert!(bytes == coffee, "the kept bytes are the file's");
    assert_eq!(header(&head, "content-type"), Some("image/png"));
    assert!(header(&head, "content-security-policy").is_some_and(|c| c.contains("sandbox")), "{head}");
    let media = |sha: &str, key: &str| get_bytes(&http, &format!("/v1/collections/photos/media/{sha}"), key).0;
    assert_eq!(media(&horse_sha, &horse_only), 200);
    assert_eq!(media(&coffee_sha, &horse_only), 404, "outside the key's row policy");
    assert_eq!(media(&coffee_sha, &other), 403, "outside the key's collections");
    assert_eq!(media(&coffee_sha, ""), 401);
    assert_eq!(media("not-a-hash", &reader), 400);
    assert_eq!(media(&"0".repeat(64), &reader), 404);
    // Kept once per content, encrypted or not, beside the collection.
    assert!(server.data_dir.join("collections/photos/media").join(&coffee_sha).exists());

    // Scroll: ids in order, pages joined, the row policy applied, payloads as JSON.
    let (status, _, page) = call(
        &http,
        "POST",
        "/v1/collections/photos/items/scroll",
        Some(json!({"limit": 1, "with_payload": true})),
        &reader,
    );
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let first = page["items"][0]["id"].as_str().unwrap().to_string();
    let next = page["nextAfter"].as_str().unwrap().to_string();
    assert_eq!(next, first);
    let (_, _, page2) = call(
        &http,
        "POST",
        "/v1/collections/photos/items/scroll",
        Some(json!({"limit": 5, "after": next, "with_payload": true})),
        &reader,
    );
    assert_eq!(page2["items"].as_array().unwrap().len(), 1, "{page2}");
    assert!(page2["items"][0]["id"].as_str().unwrap() > first.as_str());
    assert_eq!(page2["nextAfter"], "");
    let (_, _, mine) =
        call(&http, "POST", "/v1/collections/photos/items/scroll", Some(json!({"with_payload": true})), &horse_only);
    let items = mine["items"].as_array().unwrap();
    assert!(items.len() == 1 && items[0]["payload"]["source"] == "horse.png", "{mine}");
    let (status, _, e) =
        call(&http, "POST", "/v1/collections/photos/items/scroll", Some(json!({"limit": 5000})), &reader);
    assert!(status == 400 && e["error"]["message"].as_str().unwrap().contains("limit"), "{e}");

    // Deleting the file's items makes its bytes unreachable.
    let (status, _, r) = call(
        &http,
        "POST",
        "/v1/collections/photos/items/delete",
        Some(json!({"filter": "source = \"coffee.png\""})),
        &admin,
    );
    assert_eq!(status, 200, "{r}");
    assert_eq!(media(&coffee_sha, &admin), 404);

    // The event stream: Server-Sent Events as they happen, with the caller's credentials.
    let mut s = std::net::TcpStream::connect(&http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(s, "GET /v1/events/stream?topics=ingestion HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin}\r\n\r\n")
        .unwrap();
    let mut lines = BufReader::new(s.try_clone().unwrap());
    let mut head = String::new();
    loop {
        let mut l = String::new();
        lines.read_line(&mut l).unwrap();
        if l == "\r\n" {
            break;
        }
        head.push_str(&l);
    }
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(header(&head, "content-type"), Some("text/event-stream"));
    let cat = std::fs::read(photos.join("chelsea.png")).unwrap();
    let r = ingest(&http, "photos", &[("chelsea.png", cat)], &admin);
    assert_eq!(r["results"][0]["status"], "ingested", "{r}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let event = loop {
        assert!(Instant::now() < deadline, "no ingestion event on the stream");
        let mut l = String::new();
        lines.read_line(&mut l).unwrap();
        if let Some(data) = l.trim().strip_prefix("data: ") {
            let v: Value = serde_json::from_str(data).unwrap();
            if v["event"]["kind"] == "ingest.finished" {
                break v;
            }
        }
    };
    assert_eq!(event["event"]["topic"], "ingestion", "{event}");
    assert_eq!(event["event"]["data"]["ok"], 1, "{event}");
    drop(lines);
    drop(s);
    let (status, _, e) = call(&http, "GET", "/v1/events/stream?topics=nope", None, &admin);
    assert!(status == 400 && e["error"]["message"].as_str().unwrap().contains("unknown topic"), "{e}");
    let (status, _, _) = call(&http, "GET", "/v1/events/stream", None, "");
    assert_eq!(status, 401);

    // The OpenAPI document describes the new operations.
    let (_, _, doc) = call(&http, "GET", "/v1/openapi.json", None, "");
    for (path, method) in [
        ("/v1/collections/{collection}/items/scroll", "post"),
        ("/v1/collections/{collection}/media/{sha256}", "get"),
        ("/v1/events/stream", "get"),
        ("/v1/whoami", "get"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{path} {method} missing from the document");
    }
    assert!(doc["paths"]["/v1/events/stream"]["get"]["responses"]["200"]["content"]["text/event-stream"].is_object());
    drop(server);
}

/// The console in headless Chromium (Selenium): every page without console errors at
/// 1280x800 and on a phone, a photo search showing the photo first, a workflow built in
/// the designer saved, run and shown succeeded, a reader seeing no create/drop controls
/// and refused when it forges the request.
#[test]
fn console_in_a_real_browser() {
    let python = common::venv_tool("ui-venv", "python");
    for tool in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
        assert!(
            Path::new(tool).exists(),
            "{tool} is missing: run `bash .ci/setup.sh` (Debian's chromium, chromium-driver)"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let (server, http) = start(dir.path(), &[]);
    let admin = server.admin_key();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let reader = rt.block_on(server.create_key(&admin, "console-reader", "reader", &[], ""));
    let shots = std::env::var("AGENTDB_UI_SCREENSHOTS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| dir.path().join("screenshots"));
    std::fs::create_dir_all(&shots).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console_browser.py");
    let out = std::process::Command::new(python)
        .arg(&script)
        .args(["--http", &format!("http://{http}"), "--admin-key", &admin, "--reader-key", &reader])
        .arg("--photos")
        .arg(common::photos())
        .arg("--screenshots")
        .arg(&shots)
        .current_dir(dir.path())
        .output()
        .expect("run the browser test");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the browser test failed:\n{text}\nserver log:\n{}", server.log_text());
    println!("{text}");
}
