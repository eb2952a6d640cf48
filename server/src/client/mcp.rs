//! `agentdb mcp`: the MCP stdio transport for desktop agents, carried to a running
//! server's streamable HTTP endpoint (`/mcp`). Each line on stdin is one JSON-RPC
//! message; it is POSTed with the caller's credentials and the routing headers the HTTP
//! transport wants (taken from the message itself), and the answer is written to stdout
//! as one line. Requests run concurrently (a long tool call does not hold up a ping);
//! notifications are sent and answer nothing. The tools, their permissions and limits
//! are the server's: this process holds no data.

use crate::mcp::protocol::{
    encode_header_value, META_PROTOCOL_VERSION, METHOD_HEADER, NAME_HEADER, PROTOCOL_VERSION_HEADER,
};
use anyhow::Context;
use serde_json::{json, Value};
use std::io::{BufRead, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct McpArgs {
    /// The server's HTTP listener (its `http_listen`); `/mcp` is appended unless the URL
    /// already names a path.
    #[arg(long, env = "AGENTDB_HTTP_URL", default_value = "http://127.0.0.1:7721")]
    pub http_url: String,
    /// Longest one request may take (a workflow tool waits up to 300 s).
    #[arg(long, default_value_t = 600)]
    pub timeout_secs: u64,
}

/// Most requests in flight at once; more wait for one to finish.
const MAX_IN_FLIGHT: usize = 16;

fn endpoint(url: &str) -> String {
    let url = url.trim_end_matches('/');
    let path_start = url.find("://").map_or(0, |i| i + 3);
    if url[path_start..].contains('/') {
        url.to_string()
    } else {
        format!("{url}{}", crate::mcp::PATH)
    }
}

fn agent(timeout: Duration) -> anyhow::Result<ureq::Agent> {
    let mut cfg = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .max_redirects(0)
        .proxy(None);
    if let Ok(ca) = std::env::var("AGENTDB_CA_CERT") {
        let pem = std::fs::read(&ca).with_context(|| format!("reading the CA certificate {ca}"))?;
        let cert = ureq::tls::Certificate::from_pem(&pem).with_context(|| format!("{ca} is not a PEM certificate"))?;
        let tls =
            ureq::tls::TlsConfig::builder().root_certs(ureq::tls::RootCerts::Specific(Arc::new(vec![cert]))).build();
        cfg = cfg.tls_config(tls);
    }
    Ok(cfg.build().into())
}

/// The routing headers for `msg`: the protocol version (the message's own in the
/// per-request era, else the one `initialize` settled), the method and the name.
fn routing_headers(msg: &Value, negotiated: Option<&str>) -> Vec<(&'static str, String)> {
    let mut h = Vec::new();
    let params = &msg["params"];
    let version = params["_meta"][META_PROTOCOL_VERSION].as_str().or(negotiated);
    if let Some(v) = version {
        h.push((PROTOCOL_VERSION_HEADER, v.to_string()));
    }
    if params["_meta"][META_PROTOCOL_VERSION].is_string() {
        if let Some(m) = msg["method"].as_str() {
            h.push((METHOD_HEADER, m.to_string()));
            let name = match m {
                "tools/call" => params["name"].as_str(),
                "resources/read" => params["uri"].as_str(),
                _ => None,
            };
            if let Some(n) = name {
                h.push((NAME_HEADER, encode_header_value(n)));
            }
        }
    }
    h
}

/// POST one message; the JSON-RPC answer to write (None for a notification).
fn forward(agent: &ureq::Agent, url: &str, key: Option<&str>, msg: &Value, negotiated: Option<&str>) -> Option<Value> {
    let id = msg.get("id").cloned();
    let failed = |why: String| {
        id.clone().map(|id| json!({ "jsonrpc": "2.0", "id": id, "error": { "code": -32603, "message": why } }))
    };
    let mut req = agent
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    if let Some(k) = key {
        req = req.header("authorization", &format!("Bearer {k}"));
    }
    for (k, v) in routing_headers(msg, negotiated) {
        req = req.header(k, &v);
    }
    let resp = match req.send(msg.to_string()) {
        Ok(r) => r,
        Err(e) => return failed(format!("cannot reach the AgentDB server at {url}: {e}")),
    };
    let status = resp.status().as_u16();
    let body = resp.into_body().read_to_string().unwrap_or_default();
    if status == 202 || (id.is_none() && (200..300).contains(&status)) {
        return None;
    }
    match serde_json::from_str::<Value>(&body) {
        Ok(mut v) if v.get("jsonrpc").is_some() => {
            // An error the server answered before it read the id (401, 429, 413).
            if v.get("id").is_none_or(Value::is_null) {
                if let Some(id) = &id {
                    v["id"] = id.clone();
                }
            }
            id.as_ref().map(|_| v)
        }
        _ => failed(format!("the server answered HTTP {status}: {}", body.chars().take(300).collect::<String>())),
    }
}

pub fn run(a: McpArgs) -> anyhow::Result<()> {
    let url = endpoint(&a.http_url);
    let agent = agent(Duration::from_secs(a.timeout_secs.max(1)))?;
    let key = std::env::var("AGENTDB_API_KEY").ok().filter(|k| !k.trim().is_empty());
    let out = Arc::new(Mutex::new(std::io::stdout()));
    let negotiated: Arc<Mutex<Option<String>>> = Arc::default();
    let (slots_tx, slots_rx) = std::sync::mpsc::sync_channel::<()>(MAX_IN_FLIGHT);
    let slots_rx = Arc::new(Mutex::new(slots_rx));
    let write = |out: &Mutex<std::io::Stdout>, v: &Value| {
        let mut o = out.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(o, "{v}");
        let _ = o.flush();
    };
    let mut workers = Vec::new();
    for line in std::io::stdin().lock().lines() {
        let line = line.context("reading stdin")?;
        if line.trim().is_empty() {
            continue;
        }
        let msg: Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => {
                let err = json!({ "jsonrpc": "2.0", "id": null, "error": { "code": -32700, "message": format!("parse error: {e}") } });
                write(&out, &err);
                continue;
            }
        };
        let initialize = msg["method"] == "initialize";
        if initialize {
            // Settle the version before anything else is sent.
            if let Some(answer) = forward(&agent, &url, key.as_deref(), &msg, None) {
                if let Some(v) = answer["result"]["protocolVersion"].as_str() {
                    *negotiated.lock().unwrap_or_else(|e| e.into_inner()) = Some(v.to_string());
                }
                write(&out, &answer);
            }
            continue;
        }
        let _ = slots_tx.send(());
        let (agent, url, key, out, negotiated, slots) =
            (agent.clone(), url.clone(), key.clone(), out.clone(), negotiated.clone(), slots_rx.clone());
        workers.push(std::thread::spawn(move || {
            let version = negotiated.lock().unwrap_or_else(|e| e.into_inner()).clone();
            if let Some(answer) = forward(&agent, &url, key.as_deref(), &msg, version.as_deref()) {
                write(&out, &answer);
            }
            let _ = slots.lock().unwrap_or_else(|e| e.into_inner()).recv();
        }));
        workers.retain(|w| !w.is_finished());
    }
    // stdin closed: finish what is in flight, then exit.
    for w in workers {
        let _ = w.join();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_appends_the_path_only_when_missing() {
        assert_eq!(endpoint("http://127.0.0.1:7721"), "http://127.0.0.1:7721/mcp");
        assert_eq!(endpoint("http://127.0.0.1:7721/"), "http://127.0.0.1:7721/mcp");
        assert_eq!(endpoint("https://db.example/agentdb/mcp"), "https://db.example/agentdb/mcp");
    }

    #[test]
    fn routing_headers_follow_the_message() {
        let modern = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "search", "_meta": {(META_PROTOCOL_VERSION): "2026-07-28"}}});
        let h = routing_headers(&modern, None);
        assert!(h.contains(&(PROTOCOL_VERSION_HEADER, "2026-07-28".into())));
        assert!(h.contains(&(METHOD_HEADER, "tools/call".into())));
        assert!(h.contains(&(NAME_HEADER, "search".into())));
        let legacy = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
        assert_eq!(routing_headers(&legacy, Some("2025-06-18")), vec![(PROTOCOL_VERSION_HEADER, "2025-06-18".into())]);
        assert!(routing_headers(&legacy, None).is_empty());
    }
}
