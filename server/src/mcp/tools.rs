//! The MCP tools: their catalogue (names, descriptions, JSON Schemas, hints) and calls.
//!
//! Search, ingest, remember and recall are AgentDB's skills (`agentdb_orchestrator::skills`,
//! the code A2A and workflow steps run), with the caller's permissions, row policy,
//! masking, quotas and admission. A tool's own failure (a bad argument, a refusal, a
//! file that cannot be decoded) is a result with `isError: true` and a message that
//! names the problem, so the model can correct itself; an unknown tool is a JSON-RPC
//! error.

use super::{code, Mcp, RpcError};
use crate::workflows::{run_json, run_visible, start_run_as, RunRequest};
use agentdb_orchestrator::security::{Action, Principal};
use agentdb_orchestrator::skills::{self, Job, SkillError};
use serde_json::{json, Map, Value};
use std::time::{Duration, Instant};

/// Longest a workflow tool waits for a run to end before it answers with its state.
pub const MAX_WAIT_SECONDS: u64 = 300;
/// Most files one `ingest` of a server folder takes.
pub const MAX_FOLDER_FILES: usize = 10_000;

fn tool(name: &str, title: &str, description: &str, properties: Value, required: &[&str], read_only: bool) -> Value {
    json!({
        "name": name,
        "title": title,
        "description": description,
        "inputSchema": {
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": false,
        },
        "annotations": {
            "title": title,
            "readOnlyHint": read_only,
            "destructiveHint": false,
            "idempotentHint": read_only,
            "openWorldHint": false,
        },
    })
}

/// tools/list (built once: it is the same for every caller).
pub fn catalogue() -> &'static [Value] {
    static CATALOGUE: std::sync::OnceLock<Vec<Value>> = std::sync::OnceLock::new();
    CATALOGUE.get_or_init(build_catalogue)
}

fn build_catalogue() -> Vec<Value> {
    let collection = json!({ "type": "string", "description": "The collection's name (list_collections shows them)." });
    let top_k = json!({ "type": "integer", "minimum": 1, "maximum": skills::MAX_TOP_K, "default": skills::DEFAULT_TOP_K,
                        "description": "How many hits to return." });
    let media = json!({ "type": "string", "contentEncoding": "base64",
                        "description": "A file's bytes, base64-encoded (needs media_type)." });
    let media_type = json!({ "type": "string", "description": "The media type of `media`, e.g. image/png, image/jpeg, audio/wav, video/mp4, text/plain, application/pdf." });
    let wait = |default: u64| {
        json!({ "type": "integer", "minimum": 0, "maximum": MAX_WAIT_SECONDS, "default": default,
                "description": "Wait up to this many seconds for the run to end; 0 answers at once." })
    };
    vec![
        tool(
            "list_collections",
            "List collections",
            "The collections you may read: name, item count, vector spaces (dimension, metric, index, encoder) and whether \
             they have a keyword index.",
            json!({}),
            &[],
            true,
        ),
        tool(
            "search",
            "Search a collection",
            "Find the items of a collection that best match a text query, or a media file (image, audio or video) given \
             as base64. Text finds images, speech, video keyframes and documents too (cross-modal). Returns the hits \
             with their source file, modality, part (page, time range, frame) and score.",
            json!({
                "collection": collection,
                "query": { "type": "string", "description": "What to look for, in words." },
                "media": media,
                "media_type": media_type,
                "top_k": top_k,
                "filter": { "type": "string", "description": "Only items whose payload matches, e.g. `lang = \"en\" AND year >= 2020`." },
            }),
            &["collection"],
            true,
        ),
        tool(
            "ingest",
            "Ingest a document",
            "Add text, a file (base64 `media` with its `media_type`), or a file or folder on the server (`path`, under \
             the server's workflows.ingest_dirs) to a collection. The type is detected from the content: text, PDF, \
             images, audio and video are decoded, split and embedded. Ingesting the same content again changes nothing.",
            json!({
                "collection": collection,
                "text": { "type": "string", "description": "Text to index." },
                "media": media,
                "media_type": media_type,
                "path": { "type": "string", "description": "A file or folder on the server, under workflows.ingest_dirs." },
                "source": { "type": "string", "description": "The name to store the text or file under (default: generated)." },
            }),
            &["collection"],
            false,
        ),
        tool(
            "remember",
            "Remember",
            "Store a note in your own memory (a collection only you read); recall finds it again.",
            json!({ "text": { "type": "string", "description": "What to remember." } }),
            &["text"],
            false,
        ),
        tool(
            "recall",
            "Recall",
            "Search your own memory (what remember stored) by meaning.",
            json!({ "query": { "type": "string", "description": "What to look for." }, "top_k": top_k }),
            &["query"],
            true,
        ),
        tool(
            "list_workflows",
            "List workflows",
            "The workflows you may run: name, latest version, description, default inputs and steps.",
            json!({}),
            &[],
            true,
        ),
        tool(
            "run_workflow",
            "Run a workflow",
            "Start a run of a workflow with inputs and wait (up to wait_seconds) for it to end. Returns the run's id, \
             state and each step's state and output; get_workflow_run follows a run that is still going.",
            json!({
                "workflow": { "type": "string", "description": "The workflow's name (list_workflows shows them)." },
                "inputs": { "type": "object", "description": "The run's inputs; they override the definition's defaults." },
                "version": { "type": "integer", "minimum": 0, "description": "A version to run (default: the latest)." },
                "wait_seconds": wait(30),
            }),
            &["workflow"],
            false,
        ),
        tool(
            "get_workflow_run",
            "Get a workflow run",
            "A workflow run's state and each step's state and output; waits up to wait_seconds for it to end.",
            json!({
                "run": { "type": "string", "description": "The run's id (run_workflow returns it)." },
                "wait_seconds": wait(0),
            }),
            &["run"],
            true,
        ),
    ]
}

/// A tool's answer: a readable text and the structured data.
type ToolResult = Result<(String, Value), String>;

/// tools/call.
pub async fn call(st: &Mcp, p: Option<&Principal>, name: &str, args: &Map<String, Value>) -> Result<Value, RpcError> {
    let Some(spec) = catalogue().iter().find(|t| t["name"] == name) else {
        return Err(RpcError::new(
            code::INVALID_PARAMS,
            format!("unknown tool '{name}': tools/list names the tools this server offers"),
        ));
    };
    let out = match check_args(spec, args) {
        Err(e) => Err(e),
        Ok(()) => run_tool(st, p, name, args).await,
    };
    Ok(match out {
        Ok((text, data)) => json!({
            "content": [{ "type": "text", "text": text }],
            "structuredContent": data,
            "isError": false,
        }),
        Err(message) => json!({ "content": [{ "type": "text", "text": message }], "isError": true }),
    })
}

async fn run_tool(st: &Mcp, p: Option<&Principal>, name: &str, args: &Map<String, Value>) -> ToolResult {
    match name {
        "list_collections" => list_collections(st, p).await,
        "search" => search(st, p, args).await,
        "ingest" => ingest(st, p, args).await,
        "remember" => {
            let mut job = Job { skill: Some("remember".into()), ..Default::default() };
            job.params.insert("text".into(), json!(str_arg(args, "text")?.unwrap_or_default()));
            run_skill(st, p, job).await
        }
        "recall" => {
            let mut job = Job { skill: Some("recall".into()), ..Default::default() };
            job.params.insert("text".into(), json!(str_arg(args, "query")?.unwrap_or_default()));
            if let Some(k) = args.get("top_k").filter(|k| !k.is_null()) {
                job.params.insert("top_k".into(), k.clone());
            }
            run_skill(st, p, job).await
        }
        "list_workflows" => list_workflows(st, p),
        "run_workflow" => run_workflow(st, p, args).await,
        "get_workflow_run" => get_workflow_run(st, p, args).await,
        _ => Err(format!("tool '{name}' is listed but not implemented")),
    }
}

/// Arguments against the tool's schema: required ones present, no unknown ones, and each
/// of the declared JSON type (integers within their bounds).
fn check_args(spec: &Value, args: &Map<String, Value>) -> Result<(), String> {
    let schema = &spec["inputSchema"];
    let props = schema["properties"].as_object().cloned().unwrap_or_default();
    for r in schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str) {
        if args.get(r).is_none_or(Value::is_null) {
            return Err(format!("argument '{r}' is required"));
        }
    }
    for (k, v) in args {
        let Some(prop) = props.get(k) else {
            let known: Vec<&String> = props.keys().collect();
            return Err(format!("unknown argument '{k}' (this tool takes: {known:?})"));
        };
        if v.is_null() {
            continue;
        }
        let ok = match prop["type"].as_str() {
            Some("string") => v.is_string(),
            Some("object") => v.is_object(),
            Some("integer") => v.as_i64().is_some_and(|n| {
                prop["minimum"].as_i64().is_none_or(|m| n >= m) && prop["maximum"].as_i64().is_none_or(|m| n <= m)
            }),
            _ => true,
        };
        if !ok {
            let bounds = match (prop["minimum"].as_i64(), prop["maximum"].as_i64()) {
                (Some(a), Some(b)) => format!(" in {a}..={b}"),
                (Some(a), None) => format!(" >= {a}"),
                _ => String::new(),
            };
            return Err(format!(
                "argument '{k}' must be {}{bounds}, not {v}",
                prop["type"].as_str().unwrap_or("valid")
            ));
        }
    }
    Ok(())
}

fn str_arg<'a>(args: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, String> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(v) => Err(format!("argument '{key}' must be a string, not {v}")),
    }
}

/// `media` decoded, with its `media_type` (required with it).
fn media_arg(args: &Map<String, Value>) -> Result<Option<(String, Vec<u8>)>, String> {
    use base64::Engine;
    let Some(b64) = str_arg(args, "media")? else { return Ok(None) };
    let Some(mime) = str_arg(args, "media_type")?.map(str::trim).filter(|m| !m.is_empty()) else {
        return Err("argument 'media_type' is required with 'media' (e.g. image/png, audio/wav)".into());
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|e| format!("argument 'media' is not valid base64: {e}"))?;
    if bytes.is_empty() {
        return Err("argument 'media' is empty".into());
    }
    Ok(Some((mime.to_ascii_lowercase(), bytes)))
}

fn skill_message(e: SkillError) -> String {
    match e {
        SkillError::Rejected(m) => format!("refused: {m}"),
        SkillError::NeedInput(m) | SkillError::Failed(m) => m,
    }
}

/// A refusal as a tool error's text: the gRPC code and the server's message.
pub(super) fn status_message(s: tonic::Status) -> String {
    format!("{:?}: {}", s.code(), s.message())
}

async fn run_skill(st: &Mcp, p: Option<&Principal>, job: Job) -> ToolResult {
    let id = format!("mcp-{:016x}", rand::random::<u64>());
    let a = skills::execute(&st.svc, &id, p, &job).await.map_err(skill_message)?;
    Ok((a.summary, a.data))
}

async fn list_collections(st: &Mcp, p: Option<&Principal>) -> ToolResult {
    let (db, security, p2) = (st.svc.db.clone(), st.svc.security.clone(), p.cloned());
    let list = tokio::task::spawn_blocking(move || security.visible_collections(&db, p2.as_ref()))
        .await
        .map_err(|e| format!("listing collections failed: {e}"))?
        .map_err(|e| status_message(crate::status::to_status(e)))?;
    let rows: Vec<Value> = list
        .iter()
        .map(|c| {
            let spaces: Vec<Value> = c
                .spaces
                .iter()
                .map(|s| {
                    json!({
                        "name": s.spec.name, "dim": s.spec.dim, "metric": format!("{:?}", s.spec.metric).to_lowercase(),
                        "index": s.spec.index, "encoder": s.spec.encoder,
                    })
                })
                .collect();
            json!({ "name": c.name, "count": c.count, "spaces": spaces, "keyword": c.keyword.is_some() })
        })
        .collect();
    let mut text = format!("{} collection(s)", rows.len());
    for c in &list {
        let spaces: Vec<&str> = c.spaces.iter().map(|s| s.spec.name.as_str()).collect();
        text.push_str(&format!("\n- {}: {} item(s), spaces [{}]", c.name, c.count, spaces.join(", ")));
    }
    Ok((text, json!({ "collections": rows })))
}

async fn search(st: &Mcp, p: Option<&Principal>, args: &Map<String, Value>) -> ToolResult {
    let mut job = Job { skill: Some("search".into()), ..Default::default() };
    job.params.insert("collection".into(), json!(str_arg(args, "collection")?.unwrap_or_default()));
    let query = str_arg(args, "query")?.map(str::trim).filter(|q| !q.is_empty());
    let media = media_arg(args)?;
    match (query, media) {
        (Some(q), None) => {
            job.params.insert("text".into(), json!(q));
        }
        (None, Some((mime, bytes))) => {
            let name = format!("query{}", skills::ext_for(&mime));
            job.files.push((name, mime, bytes));
        }
        (Some(_), Some(_)) => return Err("give either 'query' or 'media', not both".into()),
        (None, None) => return Err("give a 'query' (text) or 'media' (a base64 image, recording or clip)".into()),
    }
    for key in ["top_k", "filter"] {
        if let Some(v) = args.get(key).filter(|v| !v.is_null()) {
            job.params.insert(key.into(), v.clone());
        }
    }
    run_skill(st, p, job).await
}

async fn ingest(st: &Mcp, p: Option<&Principal>, args: &Map<String, Value>) -> ToolResult {
    let collection = str_arg(args, "collection")?.unwrap_or_default().to_string();
    let source = str_arg(args, "source")?.map(str::to_string);
    let text = str_arg(args, "text")?.filter(|t| !t.trim().is_empty());
    let media = media_arg(args)?;
    let path = str_arg(args, "path")?;
    let mut job = Job { skill: Some("ingest".into()), ..Default::default() };
    job.params.insert("collection".into(), json!(collection));
    if let Some(s) = &source {
        job.params.insert("source".into(), json!(s));
    }
    match (text, media, path) {
        (Some(t), None, None) => {
            job.params.insert("text".into(), json!(t));
            run_skill(st, p, job).await
        }
        (None, Some((mime, bytes)), None) => {
            let name =
                source.unwrap_or_else(|| format!("mcp-{:016x}{}", rand::random::<u64>(), skills::ext_for(&mime)));
            job.files.push((name, mime, bytes));
            run_skill(st, p, job).await
        }
        (None, None, Some(path)) => ingest_path(st, p, job, path).await,
        (None, None, None) => Err("give 'text', 'media' (base64 with media_type) or a server 'path' to ingest".into()),
        _ => Err("give only one of 'text', 'media' and 'path'".into()),
    }
}

/// A file, or every file of a folder, on the server (under `workflows.ingest_dirs`),
/// one after another; a file that fails is reported and the rest go on.
async fn ingest_path(st: &Mcp, p: Option<&Principal>, job: Job, path: &str) -> ToolResult {
    let full = skills::server_path(&st.server_dirs, path)?;
    let files = if full.is_dir() {
        let root = full.clone();
        tokio::task::spawn_blocking(move || skills::folder_files(&root, MAX_FOLDER_FILES))
            .await
            .map_err(|e| format!("listing {path} failed: {e}"))??
    } else {
        vec![full.clone()]
    };
    let max = st.svc.ingest.max_file_bytes;
    let (mut done, mut failed) = (Vec::new(), Vec::new());
    for f in &files {
        let shown = f.display().to_string();
        let bytes = match tokio::fs::metadata(f).await {
            Ok(m) if max > 0 && m.len() > max as u64 => {
                failed.push(
                    json!({ "path": shown, "error": format!("{} bytes is over the {max}-byte file limit", m.len()) }),
                );
                continue;
            }
            Ok(_) => match tokio::fs::read(f).await {
                Ok(b) => b,
                Err(e) => {
                    failed.push(json!({ "path": shown, "error": e.to_string() }));
                    continue;
                }
            },
            Err(e) => {
                failed.push(json!({ "path": shown, "error": e.to_string() }));
                continue;
            }
        };
        let mut one = job.clone();
        if files.len() > 1 || !one.params.contains_key("source") {
            one.params.insert("source".into(), json!(shown));
        }
        one.files.push((shown.clone(), String::new(), bytes));
        match run_skill(st, p, one).await {
            Ok((_, data)) => done.push(data),
            // A refusal (permission, quota) would refuse every file: stop at the first.
            Err(e) if e.starts_with("refused:") => return Err(e),
            Err(e) => failed.push(json!({ "path": shown, "error": e })),
        }
    }
    let items: u64 = done.iter().filter_map(|d| d["items"].as_u64()).sum();
    let mut text = format!("{path}: {} file(s) ingested ({items} item(s)), {} failed", done.len(), failed.len());
    for f in &failed {
        text.push_str(&format!(
            "\n- {}: {}",
            f["path"].as_str().unwrap_or_default(),
            f["error"].as_str().unwrap_or_default()
        ));
    }
    if done.is_empty() && !failed.is_empty() {
        return Err(text);
    }
    Ok((text, json!({ "files": done, "failed": failed, "items": items })))
}

fn workflows(st: &Mcp) -> Result<std::sync::Arc<crate::workflows::Workflows>, String> {
    st.workflows.get().cloned().ok_or_else(|| "the workflow engine is not running".to_string())
}

fn list_workflows(st: &Mcp, p: Option<&Principal>) -> ToolResult {
    let w = workflows(st)?;
    st.svc.security.authorize(p, Action::Read, "", "MCP/list_workflows").map_err(status_message)?;
    let rows: Vec<Value> = w
        .store()
        .latest()
        .iter()
        .filter(|v| crate::workflows::definition_visible(&st.svc.security, p, v))
        .map(|v| {
            let steps: Vec<&str> = v.definition.steps.iter().map(|s| s.id.as_str()).collect();
            json!({
                "name": v.name, "version": v.version, "description": v.definition.description,
                "inputs": v.definition.inputs, "steps": steps,
            })
        })
        .collect();
    let mut text = format!("{} workflow(s)", rows.len());
    for r in &rows {
        text.push_str(&format!(
            "\n- {} (version {}): {}",
            r["name"].as_str().unwrap_or_default(),
            r["version"],
            r["description"].as_str().unwrap_or_default()
        ));
    }
    Ok((text, json!({ "workflows": rows })))
}

async fn run_workflow(st: &Mcp, p: Option<&Principal>, args: &Map<String, Value>) -> ToolResult {
    let w = workflows(st)?;
    let req = RunRequest {
        name: str_arg(args, "workflow")?.unwrap_or_default(),
        version: args.get("version").and_then(Value::as_u64).unwrap_or(0).min(u32::MAX.into()) as u32,
        inputs: args.get("inputs").and_then(Value::as_object).cloned().unwrap_or_default(),
        agent: None,
        priority: None,
        trigger: json!({ "kind": "mcp" }),
    };
    let run = start_run_as(&w, &st.svc.security, p, req, "MCP/run_workflow").await.map_err(status_message)?;
    let wait = args.get("wait_seconds").and_then(Value::as_u64).unwrap_or(30);
    follow(&w, &run.id, wait).await
}

async fn get_workflow_run(st: &Mcp, p: Option<&Principal>, args: &Map<String, Value>) -> ToolResult {
    let w = workflows(st)?;
    st.svc.security.authorize(p, Action::Read, "", "MCP/get_workflow_run").map_err(status_message)?;
    let id = str_arg(args, "run")?.unwrap_or_default().to_string();
    let run = w.get_run(id.clone()).await.map_err(|e| e.to_string())?;
    if !run_visible(&st.svc.security, p, &run) {
        return Err(format!("workflow run '{id}' not found"));
    }
    let wait = args.get("wait_seconds").and_then(Value::as_u64).unwrap_or(0);
    follow(&w, &id, wait).await
}

/// The run once it has ended, or as it stands after `wait` seconds.
async fn follow(w: &crate::workflows::Workflows, id: &str, wait: u64) -> ToolResult {
    let deadline = Instant::now() + Duration::from_secs(wait.min(MAX_WAIT_SECONDS));
    loop {
        let run = w.get_run(id.to_string()).await.map_err(|e| e.to_string())?;
        if run.state.terminal() || Instant::now() >= deadline {
            let finished = run.steps.iter().filter(|s| s.state.terminal()).count();
            let mut text = format!(
                "workflow run {} of '{}' (version {}): {}, {finished} of {} steps finished",
                run.id,
                run.workflow,
                run.version,
                run.state.as_str(),
                run.steps.len()
            );
            if !run.error.is_empty() {
                text.push_str(&format!("; error: {}", run.error));
            }
            return Ok((text, run_json(&run)));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
