//! The MCP server through the real binary, driven by the official MCP Python SDK
//! (`mcp`, in ~/.cache/agentdb/mcp-venv from .ci/setup.sh; server/tests/mcp_client.py)
//! in both protocol eras and over stdio (`agentdb mcp`), plus the transport's refusals on
//! raw HTTP, and the same authentication and permissions as gRPC.

mod common;

use common::{http_call, Server};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Python with the MCP SDK (`AGENTDB_MCP_PYTHON`, else ~/.cache/agentdb/mcp-venv).
fn python() -> PathBuf {
    match std::env::var_os("AGENTDB_MCP_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => common::venv_tool("mcp-venv", "python"),
    }
}

/// Run the SDK scenario; panics with its output unless every check held.
fn sdk(url: &str, mode: &str, scenario: &str, key: Option<&str>, image: &Path) -> String {
    let mut cmd = Command::new(python());
    cmd.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mcp_client.py"))
        .args(["--url", url, "--mode", mode, "--scenario", scenario, "--bin", common::BIN])
        .arg("--image")
        .arg(image)
        .env_remove("AGENTDB_API_KEY");
    if let Some(k) = key {
        cmd.args(["--key", k]);
    }
    let out = cmd.output().expect("run mcp_client.py");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "MCP SDK scenario {scenario} ({mode}) failed:\n{text}");
    text
}

/// A server with an HTTP listener, `workflows.ingest_dirs` = DIR/media, collections
/// `docs` (two text files) and `photos` (three photographs), and a workflow `lookup`.
fn prepared(dir: &Path, extra: &[&str]) -> (Server, String, PathBuf, Option<String>) {
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
    let photos = dir.join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    for p in ["chelsea.png", "coffee.png", "astronaut.png"] {
        std::fs::copy(common::photos().join(p), photos.join(p)).unwrap();
    }
    let dirs = format!("workflows.ingest_dirs=[\"{}\"]", media.display());
    let mut args = vec!["--set", "http_listen=127.0.0.1:0", "--set", &dirs];
    args.extend_from_slice(extra);
    let server = Server::start(&dir.join("data"), &args);
    let http = server.http_addr.clone().expect("the server printed its HTTP address");
    let admin = extra.iter().any(|a| a.contains("security.auth")).then(|| server.admin_key());
    let ok = |args: &[&str]| match &admin {
        Some(k) => server.ok_as(k, args),
        None => server.ok(args),
    };
    ok(&["collection", "create", "docs", "--multimodal"]);
    ok(&["ingest", "docs", media.to_str().unwrap()]);
    ok(&["collection", "create", "photos", "--multimodal"]);
    ok(&["ingest", "photos", photos.to_str().unwrap()]);
    let wf = dir.join("lookup.yaml");
    std::fs::write(
        &wf,
        "name: lookup\ndescription: search the docs\ninputs: { query: fruit }\nsteps:\n  - id: find\n    \
         search: { collection: docs, text: \"{{ inputs.query }}\", top_k: 3 }\n",
    )
    .unwrap();
    ok(&["workflow", "apply", wf.to_str().unwrap()]);
    (server, http, photos.join("chelsea.png"), admin)
}

fn post(addr: &str, body: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let (status, _, body) = http_call(addr, "POST", "/mcp", Some(body), headers);
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

#[test]
fn mcp_with_the_official_python_sdk_in_both_eras_and_over_stdio() {
    let dir = tempfile::tempdir().unwrap();
    let (server, http, photo, _) = prepared(dir.path(), &[]);
    let url = format!("http://{http}/mcp");
    // `auto` probes server/discover and settles on 2026-07-28; `legacy` does the
    // initialize handshake (2025-11-25); `stdio` is `agentdb mcp` carrying it to /mcp.
    for mode in ["auto", "legacy", "2026-07-28", "stdio"] {
        let out = sdk(&url, mode, "full", None, &photo);
        assert!(out.contains("ok: an image query finds the same photo first"), "{out}");
    }

    // The transport's rules on raw HTTP.
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                      "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let (status, r) = post(&http, &init.to_string(), &[]);
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["result"]["protocolVersion"], "2025-06-18", "{r}");
    assert_eq!(r["result"]["serverInfo"]["name"], "agentdb", "{r}");
    let (status, r) = post(
        &http,
        &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "1999-01-01"}})
            .to_string(),
        &[],
    );
    assert_eq!((status, r["result"]["protocolVersion"].as_str()), (200, Some("2025-11-25")), "{r}");
    // A notification is accepted with no body.
    let (status, _, body) =
        http_call(&http, "POST", "/mcp", Some(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#), &[]);
    assert_eq!((status, body.as_str()), (202, ""));
    // DNS rebinding: a browser page on another origin is refused.
    let (status, r) = post(&http, &init.to_string(), &[("Origin", "http://evil.example")]);
    assert_eq!(status, 403, "{r}");
    // No server-initiated stream, no sessions.
    assert_eq!(http_call(&http, "GET", "/mcp", None, &[]).0, 405);
    assert_eq!(http_call(&http, "DELETE", "/mcp", None, &[]).0, 405);
    // Malformed: not JSON, a batch, a version header we do not speak.
    let (status, r) = post(&http, "{not json", &[]);
    assert_eq!((status, r["error"]["code"].as_i64()), (400, Some(-32700)), "{r}");
    let (status, r) = post(&http, "[]", &[]);
    assert_eq!((status, r["error"]["code"].as_i64()), (400, Some(-32600)), "{r}");
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}).to_string();
    let (status, r) = post(&http, &list, &[("MCP-Protocol-Version", "2020-01-01")]);
    assert_eq!(status, 400, "{r}");
    assert!(r["error"]["message"].as_str().unwrap().contains("2025-11-25"), "{r}");
    // The per-request era: the headers must mirror the envelope, the version be ours.
    let modern = |version: &str| {
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
               "params": {"name": "list_collections", "arguments": {},
                          "_meta": {"io.modelcontextprotocol/protocolVersion": version,
                                    "io.modelcontextprotocol/clientCapabilities": {}}}})
        .to_string()
    };
    let good = [("MCP-Protocol-Version", "2026-07-28"), ("Mcp-Method", "tools/call"), ("Mcp-Name", "list_collections")];
    let (status, r) = post(&http, &modern("2026-07-28"), &good);
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["result"]["resultType"], "complete", "{r}");
    assert_eq!(r["result"]["isError"], false, "{r}");
    let (status, r) = post(&http, &modern("2026-07-28"), &[good[0], good[1], ("Mcp-Name", "search")]);
    assert_eq!((status, r["error"]["code"].as_i64()), (400, Some(-32020)), "{r}");
    let (status, r) = post(&http, &modern("2099-01-01"), &[("MCP-Protocol-Version", "2099-01-01"), good[1], good[2]]);
    assert_eq!((status, r["error"]["code"].as_i64()), (400, Some(-32022)), "{r}");
    assert_eq!(r["error"]["data"]["supported"], json!(["2026-07-28"]), "{r}");
    drop(server);
}

#[test]
fn mcp_sits_behind_the_same_authentication_as_grpc() {
    let dir = tempfile::tempdir().unwrap();
    let (server, http, photo, admin) = prepared(dir.path(), &["--set", "security.auth=api_key"]);
    let admin = admin.unwrap();
    let url = format!("http://{http}/mcp");
    let out = server.ok_as(&admin, &["keys", "create", "docs-reader", "--role", "reader", "--collection", "docs"]);
    let reader = String::from_utf8_lossy(&out).trim().to_string();

    sdk(&url, "auto", "reader", Some(&reader), &photo);
    sdk(&url, "stdio", "reader", Some(&reader), &photo);
    sdk(&url, "auto", "nokey", None, &photo);
    sdk(&url, "auto", "full", Some(&admin), &photo);

    // Raw: no credentials is 401 with a Bearer challenge; a bad key likewise.
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).to_string();
    let (status, head, body) = http_call(&http, "POST", "/mcp", Some(&list), &[]);
    assert_eq!(status, 401, "{body}");
    assert!(head.to_ascii_lowercase().contains("www-authenticate: bearer"), "{head}");
    let (status, _, _) = http_call(&http, "POST", "/mcp", Some(&list), &[("Authorization", "Bearer adb_wrong")]);
    assert_eq!(status, 401);
    // The refusal is in the audit log, as for gRPC.
    let audit = std::fs::read_to_string(server.data_dir.join("security/audit.log")).unwrap_or_default();
    assert!(audit.contains("MCP"), "the audit log records the MCP refusal:\n{audit}");
}
