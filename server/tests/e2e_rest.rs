//! The REST/JSON API (/v1) through the real binary: the shapes a curl user sends, the
//! errors, multipart search and ingest, the same authentication, permissions and rate
//! limit as gRPC, and schemathesis (from ~/.cache/agentdb/st-venv, .ci/setup.sh) run
//! against /v1/openapi.json: no 5xx on generated input, every response matching the
//! document.

mod common;

use common::{http_call, multipart, Server};
use serde_json::{json, Value};
use std::path::Path;

fn start(dir: &Path, extra: &[&str]) -> (Server, String) {
    let mut args = vec!["--set", "http_listen=127.0.0.1:0"];
    args.extend_from_slice(extra);
    let server = Server::start(&dir.join("data"), &args);
    let http = server.http_addr.clone().expect("the server printed its HTTP address");
    (server, http)
}

/// A JSON request; (status, head, parsed body).
fn call(addr: &str, method: &str, path: &str, body: Option<Value>, headers: &[(&str, &str)]) -> (u16, String, Value) {
    let text = body.map(|b| b.to_string());
    let (status, head, body) = http_call(addr, method, path, text.as_deref(), headers);
    let v = serde_json::from_str(&body).unwrap_or_else(|_| json!({ "raw": body }));
    (status, head, v)
}

/// POST a multipart body; (status, parsed body).
fn post_multipart(addr: &str, path: &str, ct: &str, body: &[u8], headers: &[(&str, &str)]) -> (u16, Value) {
    let (status, _, rest) = common::http_bytes(addr, "POST", path, Some((ct, body)), headers);
    (status, serde_json::from_str(&rest).unwrap_or_else(|_| json!({ "raw": rest })))
}

#[test]
fn rest_api_end_to_end_and_schemathesis_against_its_openapi_document() {
    let dir = tempfile::tempdir().unwrap();
    let (server, http) = start(dir.path(), &[]);

    // The document.
    let (status, _, doc) = call(&http, "GET", "/v1/openapi.json", None, &[]);
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/v1/collections/{collection}/search"]["post"]["requestBody"]["content"]
        ["multipart/form-data"]
        .is_object());

    // Vectors and payloads, as a Qdrant user would send them.
    let spaces = json!([{ "name": "v", "dim": 3, "metric": "METRIC_L2", "index": "Flat" }]);
    let (status, _, r) = call(&http, "POST", "/v1/collections", Some(json!({ "name": "vecs", "spaces": spaces })), &[]);
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["info"]["name"], "vecs");
    let items = json!({ "items": [
        { "id": "a", "vectors": { "v": { "values": [1.0, 0.0, 0.0] } }, "payload": { "tag": 1, "name": "first" } },
        { "id": "b", "vectors": { "v": { "values": [0.0, 1.0, 0.0] } }, "payload": { "tag": 2 } },
        { "id": "c", "vectors": { "v": { "values": [0.9, 0.1, 0.0] } }, "payload": { "tag": 2 } },
    ]});
    let (status, _, r) = call(&http, "POST", "/v1/collections/vecs/items", Some(items), &[]);
    assert_eq!((status, &r["ids"]), (200, &json!(["a", "b", "c"])), "{r}");
    let (status, _, r) = call(&http, "POST", "/v1/collections/vecs/items/get", Some(json!({ "ids": ["a"] })), &[]);
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["items"][0]["payload"], json!({ "tag": 1, "name": "first" }), "{r}");
    let (_, _, r) = call(&http, "POST", "/v1/collections/vecs/count", Some(json!({ "filter": "tag = 2" })), &[]);
    assert_eq!(r["count"], 2, "{r}");
    let q = json!({ "vector": { "values": [1.0, 0.0, 0.0] }, "topK": 2, "filter": "tag = 2", "withPayload": true });
    let (status, _, r) = call(&http, "POST", "/v1/collections/vecs/search", Some(q), &[]);
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["hits"][0]["id"], "c", "{r}");
    assert_eq!(r["hits"].as_array().unwrap().len(), 2, "{r}");
    // The same query with the vector packed: base64 of little-endian float32 [1, 0, 0].
    let q = json!({ "vector": { "packed": "AACAPwAAAAAAAAAA" }, "topK": 2, "filter": "tag = 2" });
    let (status, _, r2) = call(&http, "POST", "/v1/collections/vecs/search", Some(q), &[]);
    assert_eq!(status, 200, "{r2}");
    assert_eq!(r2["hits"][0]["id"], "c", "{r2}");
    assert_eq!(r2["hits"][0]["score"], r["hits"][0]["score"], "{r2}");
    let q = json!({ "vector": { "packed": "AACA" }, "topK": 2 });
    let (status, _, r) = call(&http, "POST", "/v1/collections/vecs/search", Some(q), &[]);
    assert_eq!(status, 400, "{r}");
    assert!(r["error"]["message"].as_str().unwrap().contains("multiple of 4"), "{r}");
    // GET with query parameters.
    let (status, _, r) = call(&http, "GET", "/v1/collections/vecs", None, &[]);
    assert_eq!((status, r["info"]["count"].as_u64()), (200, Some(3)), "{r}");

    // Errors: the HTTP status follows the gRPC code, the message names the problem.
    let (status, _, r) = call(&http, "GET", "/v1/collections/nope", None, &[]);
    assert_eq!((status, r["error"]["status"].as_str()), (404, Some("NOT_FOUND")), "{r}");
    assert!(r["error"]["message"].as_str().unwrap().contains("nope"), "{r}");
    let (status, _, r) = call(&http, "POST", "/v1/collections", Some(json!({ "name": "vecs", "spaces": spaces })), &[]);
    assert_eq!(status, 409, "{r}");
    let (status, _, r) =
        call(&http, "POST", "/v1/collections/vecs/search", Some(json!({ "topK": 2, "colour": "red" })), &[]);
    assert_eq!(status, 400, "{r}");
    assert!(r["error"]["message"].as_str().unwrap().contains("colour"), "{r}");
    let (status, _, r) =
        call(&http, "POST", "/v1/collections/vecs/search", Some(json!({ "vector": { "values": [1.0] } })), &[]);
    assert_eq!(status, 400, "{r}");
    let (status, _, body) = http_call(&http, "POST", "/v1/collections/vecs/search", Some("{not json"), &[]);
    assert_eq!(status, 400, "{body}");
    let (status, _, r) = call(&http, "POST", "/v1/collections/vecs/count", Some(json!({ "collection": "other" })), &[]);
    assert_eq!(status, 400, "a body that contradicts the path: {r}");
    let (status, _, r) = call(&http, "GET", "/v1/collections/vecs?bogus=1", None, &[]);
    assert_eq!(status, 400, "{r}");

    // Multimodal: ingest uploaded files, search by text and by an uploaded photo.
    let (status, _, r) =
        call(&http, "POST", "/v1/collections", Some(json!({ "name": "media", "multimodal": true })), &[]);
    assert_eq!(status, 200, "{r}");
    let photos = common::photos();
    let chelsea = std::fs::read(photos.join("chelsea.png")).unwrap();
    let coffee = std::fs::read(photos.join("coffee.png")).unwrap();
    let (ct, body) = multipart(&[
        ("file", Some("fruit.txt"), b"Apples, pears and ripe bananas are sold at the fruit market every morning."),
        ("file", Some("chelsea.png"), &chelsea),
        ("file", Some("coffee.png"), &coffee),
        ("file", Some("broken.png"), b"\x89PNG\r\n\x1a\n not really"),
    ]);
    let (status, r) = post_multipart(&http, "/v1/collections/media/ingest", &ct, &body, &[]);
    assert_eq!(status, 200, "{r}");
    let results = r["results"].as_array().unwrap();
    assert_eq!(results.len(), 4, "{r}");
    let by = |s: &str| results.iter().find(|x| x["source"] == s).cloned().unwrap();
    assert_eq!(by("chelsea.png")["status"], "ingested", "{r}");
    assert_eq!(by("broken.png")["status"], "failed", "{r}");
    assert!(!by("broken.png")["error"].as_str().unwrap().is_empty(), "{r}");
    let (status, _, r) =
        call(&http, "POST", "/v1/collections/media/search", Some(json!({ "text": "ripe bananas", "topK": 1 })), &[]);
    assert_eq!((status, r["hits"][0]["source"].as_str()), (200, Some("fruit.txt")), "{r}");
    let (ct, body) = multipart(&[("image", Some("q.png"), &chelsea), ("top_k", None, b"1")]);
    let (status, r) = post_multipart(&http, "/v1/collections/media/search", &ct, &body, &[]);
    assert_eq!((status, r["hits"][0]["source"].as_str()), (200, Some("chelsea.png")), "{r}");
    let (ct, body) =
        multipart(&[("image", Some("q.png"), &coffee), ("request", None, br#"{"topK": 1, "explain": true}"#)]);
    let (status, r) = post_multipart(&http, "/v1/collections/media/search", &ct, &body, &[]);
    assert_eq!((status, r["hits"][0]["source"].as_str()), (200, Some("coffee.png")), "{r}");
    assert!(!r["hits"][0]["explain"].as_array().unwrap().is_empty(), "explain lists: {r}");
    // Embed: the collection's own encoder, so a client's upsert of these vectors is found
    // as ingested text is.
    let (status, _, r) = call(
        &http,
        "POST",
        "/v1/collections/media/embed",
        Some(json!({ "texts": ["ripe bananas at the market"] })),
        &[],
    );
    assert_eq!(status, 200, "{r}");
    let v = &r["vectors"][0];
    assert_eq!(v["values"].as_array().unwrap().len(), 384, "{r}");
    assert!(v["encoder"].as_str().unwrap().starts_with("all-minilm"), "{r}");
    let q = json!({ "space": "text", "vector": { "values": v["values"] }, "topK": 1, "withPayload": true });
    let (_, _, r) = call(&http, "POST", "/v1/collections/media/search", Some(q), &[]);
    assert_eq!(r["hits"][0]["payload"]["source"], "fruit.txt", "{r}");
    let (status, _, r) = call(&http, "POST", "/v1/collections/media/embed", Some(json!({ "texts": [] })), &[]);
    assert_eq!(status, 400, "{r}");
    let (status, _, r) = call(&http, "POST", "/v1/collections/vecs/embed", Some(json!({ "texts": ["x"] })), &[]);
    assert_eq!(status, 400, "a vector-only collection: {r}");
    let (ct, body) = multipart(&[("colour", None, b"red")]);
    let (status, r) = post_multipart(&http, "/v1/collections/media/search", &ct, &body, &[]);
    assert_eq!(status, 400, "{r}");

    // Queues, agents and workflows.
    let (status, _, r) = call(&http, "POST", "/v1/queues", Some(json!({ "name": "jobs" })), &[]);
    assert_eq!(status, 200, "{r}");
    let (status, _, r) = call(&http, "POST", "/v1/queues/jobs/messages", Some(json!({ "body": "aGVsbG8=" })), &[]);
    assert_eq!(status, 200, "{r}");
    let (_, _, r) = call(&http, "POST", "/v1/queues/jobs/receive", Some(json!({ "maxMessages": 5 })), &[]);
    let msg = &r["messages"][0];
    assert_eq!(msg["body"], "aGVsbG8=", "{r}");
    let (status, _, r) = call(&http, "POST", "/v1/queues/jobs/ack", Some(json!({ "receipt": msg["receipt"] })), &[]);
    assert_eq!(status, 200, "{r}");
    let (status, _, r) = call(&http, "POST", "/v1/agents", Some(json!({ "card": { "name": "summariser" } })), &[]);
    assert_eq!(status, 200, "{r}");
    let (_, _, r) = call(&http, "GET", "/v1/agents/summariser", None, &[]);
    assert_eq!(r["agent"]["card"]["name"], "summariser", "{r}");
    let yaml = "name: find\nsteps:\n  - id: s\n    search: { collection: media, text: \"{{ inputs.q }}\", top_k: 1 }\n";
    let (status, _, r) = call(&http, "POST", "/v1/workflows", Some(json!({ "yaml": yaml })), &[]);
    assert_eq!(status, 200, "{r}");
    let (status, _, r) =
        call(&http, "POST", "/v1/workflows/find/runs", Some(json!({ "inputs": { "q": "a cup of coffee" } })), &[]);
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["run"]["inputs"], json!({ "q": "a cup of coffee" }), "inputs as a JSON value: {r}");
    let id = r["run"]["id"].as_str().unwrap().to_string();
    let mut state = String::new();
    for _ in 0..100 {
        let (_, _, r) = call(&http, "GET", &format!("/v1/workflow-runs/{id}"), None, &[]);
        state = r["run"]["state"].as_str().unwrap_or_default().to_string();
        if state == "succeeded" {
            assert_eq!(r["run"]["steps"][0]["output"]["hits"][0]["source"], "coffee.png", "{r}");
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(state, "succeeded");

    // schemathesis: every operation, generated and mutated input.
    let out = std::process::Command::new(common::venv_tool("st-venv", "schemathesis"))
        .args(["run", &format!("http://{http}/v1/openapi.json")])
        .args([
            "--checks",
            "not_a_server_error,response_schema_conformance,content_type_conformance,status_code_conformance",
        ])
        .args(["--phases", "examples,coverage,fuzzing", "--max-examples", "15", "--workers", "2", "--no-color"])
        // The event stream does not end while the client stays (e2e_console tests it).
        .args(["--exclude-operation-id", "Events_Subscribe"])
        // It keeps a .schemathesis folder in its working directory.
        .current_dir(dir.path())
        .output()
        .expect("run schemathesis");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "schemathesis found failures:\n{text}\nserver log:\n{}", server.log_text());
    assert!(text.contains(" passed"), "{text}");
}

#[test]
fn rest_sits_behind_the_same_authentication_permissions_and_rate_limit_as_grpc() {
    let dir = tempfile::tempdir().unwrap();
    let (server, http) = start(
        dir.path(),
        &[
            "--set",
            "security.auth=api_key",
            "--set",
            "security.rate_limit_per_sec=5",
            "--set",
            "security.rate_limit_burst=5",
        ],
    );
    let admin = server.admin_key();
    let bearer = format!("Bearer {admin}");
    let as_admin = [("Authorization", bearer.as_str())];
    let (status, head, r) = call(&http, "GET", "/v1/collections", None, &[]);
    assert_eq!(status, 401, "{r}");
    assert!(head.to_ascii_lowercase().contains("www-authenticate: bearer"), "{head}");
    assert_eq!(r["error"]["status"], "UNAUTHENTICATED", "{r}");
    let (status, _, _) = call(&http, "GET", "/v1/collections", None, &[("Authorization", "Bearer adb_wrong")]);
    assert_eq!(status, 401);
    let spaces = json!([{ "name": "v", "dim": 2, "index": "Flat" }]);
    let (status, _, r) =
        call(&http, "POST", "/v1/collections", Some(json!({ "name": "docs", "spaces": spaces })), &as_admin);
    assert_eq!(status, 200, "{r}");
    let (status, _, r) = call(
        &http,
        "POST",
        "/v1/keys",
        Some(json!({ "name": "r", "role": "reader", "collections": ["docs"] })),
        &as_admin,
    );
    assert_eq!(status, 200, "{r}");
    let reader = format!("Bearer {}", r["secret"].as_str().unwrap());
    let as_reader = [("Authorization", reader.as_str())];
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let (status, _, r) = call(&http, "POST", "/v1/collections/docs/count", None, &as_reader);
    assert_eq!(status, 200, "{r}");
    let item = json!({ "items": [{ "id": "x", "vectors": { "v": { "values": [1.0, 0.0] } } }] });
    let (status, _, r) = call(&http, "POST", "/v1/collections/docs/items", Some(item), &as_reader);
    assert_eq!((status, r["error"]["status"].as_str()), (403, Some("PERMISSION_DENIED")), "{r}");
    let (status, _, r) = call(&http, "GET", "/v1/keys", None, &as_reader);
    assert_eq!(status, 403, "{r}");
    // The listing shows only what the key may read.
    let (_, _, r) = call(&http, "GET", "/v1/collections", None, &as_reader);
    assert_eq!(r["collections"].as_array().unwrap().len(), 1, "{r}");
    // The rate limit: 429 with Retry-After, as gRPC's RESOURCE_EXHAUSTED with its hint.
    let mut limited = None;
    for _ in 0..30 {
        let (status, head, r) = call(&http, "GET", "/v1/collections", None, &as_reader);
        if status == 429 {
            limited = Some((head, r));
            break;
        }
    }
    let (head, r) = limited.expect("the rate limit answered 429");
    assert!(head.to_ascii_lowercase().contains("retry-after: "), "{head}");
    assert!(r["error"]["message"].as_str().unwrap().contains("rate limit"), "{r}");
}
