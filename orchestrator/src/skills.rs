//! AgentDB's own skills — search, recall, ingest, remember — run in-process through
//! `agentdb-retrieval` as a principal. One implementation for both callers: the A2A
//! endpoint (a client's message) and workflow steps (`search`, `ingest`).
//!
//! What the skills need from the process they run in (who may do what, the admission
//! gate, quotas, metrics) comes through [`Host`], which the server implements with the
//! same checks its gRPC handlers make; this crate stays free of any transport.

use crate::security::{principal_memory_collection, Action, Principal};
use agentdb_engine::{Database, Filter};
use agentdb_retrieval::{CrossQuery, Encoders, IngestLimits, IngestStatus, Observer, QueryInput};
use serde_json::{json, Map, Value};
use std::future::Future;
use std::sync::Arc;

/// Default and largest number of hits a search or recall returns.
pub const DEFAULT_TOP_K: usize = 5;
pub const MAX_TOP_K: usize = 100;

/// What the skills (and workflow steps) need from the server: the data, its policy
/// checks, admission and accounting. Refusals come back as [`SkillError`]s whose message
/// is the one the server's own API gives.
pub trait Host: Send + Sync + 'static {
    fn db(&self) -> &Arc<Database>;
    fn encoders(&self) -> &Arc<Encoders>;
    fn ingest_limits(&self) -> IngestLimits;
    /// Told about every write (standing queries).
    fn observer(&self) -> Arc<dyn Observer>;

    fn auth_enabled(&self) -> bool;
    /// The principal of the API key with id `key`; `None` when there is no key store.
    fn key_principal(&self, key: &str) -> Option<Result<Principal, String>>;
    /// May `p` do `action` on `collection` (`method` names the call in the audit log)?
    fn authorize(
        &self,
        p: Option<&Principal>,
        action: Action,
        collection: &str,
        method: &str,
    ) -> Result<(), SkillError>;
    fn authorize_queue(
        &self,
        p: Option<&Principal>,
        action: Action,
        queue: &str,
        method: &str,
    ) -> Result<(), SkillError>;
    /// The principal's row policy ANDed with `expr`; masked fields refused.
    fn scoped_filter(&self, p: Option<&Principal>, expr: &str) -> Result<Option<Filter>, SkillError>;
    /// Payload keys `p` may not read.
    fn hidden_keys(&self, p: Option<&Principal>) -> Vec<String>;
    /// Remove what `p` may not read from a hit's payload.
    fn mask(&self, p: Option<&Principal>, payload: &mut Value);
    /// Refuse an ingest of `bytes` over the principal's quota.
    fn check_ingest(&self, p: Option<&Principal>, bytes: usize) -> Result<(), SkillError>;
    fn charge_ingest(&self, p: Option<&Principal>, bytes: usize, items: u32);
    /// Telemetry: the collection the current request works on.
    fn note_collection(&self, collection: &str);
    /// Metrics: one file ingested (or skipped, or failed).
    fn observe_ingest(&self, status: &str, media_type: &str, items: u64);
    /// Send to a queue the host keeps elsewhere (a cluster's queues); `None`: the queues
    /// are the engine's own ([`crate::queue::Queues`]).
    fn queue_send(
        &self,
        queue: &str,
        body: Vec<u8>,
        attributes: std::collections::BTreeMap<String, String>,
    ) -> impl Future<Output = Option<Result<String, String>>> + Send;
    /// Run `f` on the blocking pool once the admission gate lets it in.
    fn admit<T, F>(&self, f: F) -> impl Future<Output = Result<T, SkillError>> + Send
    where
        F: FnOnce() -> agentdb_retrieval::Result<T> + Send + 'static,
        T: Send + 'static;
    /// Run `fut` as work of `tenant`: the admission gate and the encoders' fair queues
    /// count it as theirs.
    fn as_tenant<F>(&self, tenant: &str, fut: F) -> impl Future<Output = F::Output> + Send
    where
        F: Future + Send;
}

/// Why a skill did not complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkillError {
    /// The request lacks something the caller can send (A2A: input-required).
    NeedInput(String),
    /// Not allowed (authentication, RBAC, quota on who may): rejected.
    Rejected(String),
    Failed(String),
}

impl SkillError {
    pub fn message(&self) -> &str {
        match self {
            SkillError::NeedInput(m) | SkillError::Rejected(m) | SkillError::Failed(m) => m,
        }
    }
}

/// A completed skill's artifact: its name, a readable summary and the data.
#[derive(Debug, Clone)]
pub struct Artifact {
    pub name: &'static str,
    pub summary: String,
    pub data: Value,
}

/// What a skill is asked to do.
#[derive(Debug, Clone, Default)]
pub struct Job {
    /// `search`, `recall`, `ingest` or `remember` (`None`: recall).
    pub skill: Option<String>,
    /// Named parameters (`collection`, `text`, `top_k`, `filter`, `source`), in either
    /// ProtoJSON spelling.
    pub params: Map<String, Value>,
    /// Free text (A2A text parts joined by newlines).
    pub text: String,
    /// Files: (name, media type, bytes).
    pub files: Vec<(String, String, Vec<u8>)>,
}

/// A parameter in either ProtoJSON spelling (`topK` or `top_k`).
pub fn param<'a>(p: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    p.get(key).or_else(|| p.get(&snake_case(key)))
}

pub fn snake_case(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 4);
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// A non-empty string parameter, trimmed.
pub fn str_param<'a>(p: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    param(p, key).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty())
}

/// A whole-number parameter, as a number or a string.
pub fn usize_param(p: &Map<String, Value>, key: &str) -> Option<usize> {
    match param(p, key)? {
        Value::Number(n) => n.as_u64().map(|n| n as usize),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The file name extension for a media type, for files sent without a name.
pub fn ext_for(mime: &str) -> &'static str {
    match mime {
        "text/plain" => ".txt",
        "text/markdown" => ".md",
        "text/html" => ".html",
        "application/pdf" => ".pdf",
        "image/png" => ".png",
        "image/jpeg" => ".jpg",
        "audio/wav" | "audio/x-wav" => ".wav",
        "video/mp4" => ".mp4",
        _ => "",
    }
}

/// A path on the server that a folder ingest (A2A) or an `ingest` step may read: it must
/// lie, symbolic links resolved, under one of `dirs` (`workflows.ingest_dirs`; empty:
/// reading server files is off). Returns the resolved path.
pub fn server_path(dirs: &[std::path::PathBuf], path: &str) -> Result<std::path::PathBuf, String> {
    if dirs.is_empty() {
        return Err("reading files on the server is off; list allowed folders in workflows.ingest_dirs".into());
    }
    let real = std::fs::canonicalize(path).map_err(|e| format!("cannot open '{path}': {e}"))?;
    let allowed = dirs.iter().filter_map(|d| std::fs::canonicalize(d).ok()).any(|d| real.starts_with(&d));
    if !allowed {
        return Err(format!("'{path}' is outside workflows.ingest_dirs"));
    }
    Ok(real)
}

/// The files of a folder ingest, in name order: `root` itself when it is a file, else
/// every regular file under it (hidden names and symbolic links skipped, so nothing
/// outside the checked folder is reached). More than `max_files` is an error.
pub fn folder_files(root: &std::path::Path, max_files: usize) -> Result<Vec<std::path::PathBuf>, String> {
    let meta = std::fs::metadata(root).map_err(|e| format!("'{}': {e}", root.display()))?;
    if meta.is_file() {
        return Ok(vec![root.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        let rd = std::fs::read_dir(&d).map_err(|e| format!("cannot list '{}': {e}", d.display()))?;
        for entry in rd {
            let entry = entry.map_err(|e| format!("cannot list '{}': {e}", d.display()))?;
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let ft = entry.file_type().map_err(|e| format!("'{}': {e}", entry.path().display()))?;
            if ft.is_dir() {
                dirs.push(entry.path());
            } else if ft.is_file() {
                out.push(entry.path());
                if out.len() > max_files {
                    return Err(format!(
                        "'{}' holds more than {max_files} files (a2a.max_folder_files); ingest its subfolders one by one",
                        root.display()
                    ));
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Run one skill as `p`. `task_id` names what the skill writes (`a2a-TASK.txt`).
///
/// (Boxed: the future is `Send` for callers that spawn it, which rustc cannot yet prove
/// through the host's `impl Future` methods for every lifetime.)
pub fn execute<'a, H: Host>(
    h: &'a H,
    task_id: &'a str,
    p: Option<&'a Principal>,
    job: &'a Job,
) -> std::pin::Pin<Box<dyn Future<Output = Result<Artifact, SkillError>> + Send + 'a>> {
    Box::pin(run(h, task_id, p, job))
}

async fn run<H: Host>(h: &H, task_id: &str, p: Option<&Principal>, job: &Job) -> Result<Artifact, SkillError> {
    let owner = p.map_or("local".to_string(), |p| p.id.clone());
    match job.skill.as_deref().unwrap_or("recall") {
        "search" => {
            let Some(collection) = str_param(&job.params, "collection") else {
                return Err(SkillError::NeedInput(
                    "the search skill needs a collection: send a data part {\"collection\": \"NAME\"}".into(),
                ));
            };
            search(h, p, "search", collection, job).await
        }
        "recall" => {
            let collection = principal_memory_collection(&owner);
            let db = h.db().clone();
            let name = collection.clone();
            let exists = tokio::task::spawn_blocking(move || db.collection(&name).is_ok()).await.unwrap_or(false);
            if !exists {
                h.authorize(p, Action::Read, &collection, "A2A/recall")?;
                return Ok(Artifact {
                    name: "recall",
                    summary: "nothing remembered yet".into(),
                    data: json!({ "skill": "recall", "collection": collection, "hits": [] }),
                });
            }
            search(h, p, "recall", &collection, job).await
        }
        "ingest" => {
            let Some(collection) = str_param(&job.params, "collection") else {
                return Err(SkillError::NeedInput(
                    "the ingest skill needs a collection: send a data part {\"collection\": \"NAME\"}".into(),
                ));
            };
            let (source, content) = match job.files.first() {
                Some((name, mime, bytes)) => {
                    let name = if name.is_empty() { format!("a2a-{task_id}{}", ext_for(mime)) } else { name.clone() };
                    (str_param(&job.params, "source").map_or(name, str::to_string), bytes.clone())
                }
                None => {
                    let text = str_param(&job.params, "text").unwrap_or(job.text.trim());
                    if text.is_empty() {
                        return Err(SkillError::NeedInput(
                            "the ingest skill needs a file part or text to index".into(),
                        ));
                    }
                    let source = str_param(&job.params, "source").map_or(format!("a2a-{task_id}.txt"), str::to_string);
                    (source, text.as_bytes().to_vec())
                }
            };
            ingest(h, p, "ingest", collection, source, content).await
        }
        "remember" => {
            let text = str_param(&job.params, "text").unwrap_or(job.text.trim());
            if text.is_empty() {
                return Err(SkillError::NeedInput("remember what? send text after \"remember:\"".into()));
            }
            let collection = principal_memory_collection(&owner);
            h.authorize(p, Action::Write, &collection, "A2A/remember")?;
            ensure_memory(h, &collection).await.map_err(SkillError::Failed)?;
            let source = format!("memory-{task_id}.txt");
            ingest(h, p, "remember", &collection, source, text.as_bytes().to_vec()).await
        }
        other => Err(SkillError::Rejected(format!("unknown skill '{other}': use search, ingest, remember or recall"))),
    }
}

/// Create the caller's memory collection (multimodal: the text space, plus CLIP's when
/// configured) if it does not exist. The caller was already authorized to write it.
async fn ensure_memory<H: Host>(h: &H, name: &str) -> Result<(), String> {
    let spaces = h.encoders().multimodal_spaces().map_err(|e| e.to_string())?;
    let (db, name) = (h.db().clone(), name.to_string());
    let res = h
        .admit(move || {
            if db.collection(&name).is_ok() {
                return Ok(());
            }
            match db.create_collection(agentdb_engine::CollectionSpec {
                name: name.clone(),
                spaces,
                keyword: Some(Default::default()),
            }) {
                Ok(_) => {
                    tracing::info!(collection = %name, "A2A: memory collection created");
                    Ok(())
                }
                // Created by a concurrent request meanwhile.
                Err(_) if db.collection(&name).is_ok() => Ok(()),
                Err(e) => Err(e.into()),
            }
        })
        .await;
    res.map_err(|e| e.message().to_string())
}

async fn search<H: Host>(
    h: &H,
    p: Option<&Principal>,
    skill: &'static str,
    collection: &str,
    job: &Job,
) -> Result<Artifact, SkillError> {
    let method = format!("A2A/{skill}");
    h.note_collection(collection);
    h.authorize(p, Action::Read, collection, &method)?;
    let text = str_param(&job.params, "text").map(str::to_string).unwrap_or_else(|| job.text.trim().to_string());
    let (input, shown) = if !text.is_empty() {
        (QueryInput::Text(text.clone()), text)
    } else if let Some((name, mime, bytes)) = job.files.first() {
        let input = if mime.starts_with("image/") {
            QueryInput::Image(bytes.clone())
        } else if mime.starts_with("audio/") {
            QueryInput::Audio(bytes.clone())
        } else if mime.starts_with("video/") {
            QueryInput::Video(bytes.clone())
        } else {
            return Err(SkillError::Failed(format!(
                "cannot search by a file of type {mime}: use image, audio or video"
            )));
        };
        (input, format!("file {name}"))
    } else {
        return Err(SkillError::NeedInput(format!("the {skill} skill needs a query: text or a media file part")));
    };
    let k = usize_param(&job.params, "top_k").or(usize_param(&job.params, "topK")).unwrap_or(DEFAULT_TOP_K);
    let k = k.clamp(1, MAX_TOP_K);
    let filter_expr = str_param(&job.params, "filter").unwrap_or("");
    // The principal's row policy ANDed with the request's filter, masked fields refused,
    // as for gRPC.
    let filter = h.scoped_filter(p, filter_expr)?;
    let (db, enc, lim, name) = (h.db().clone(), h.encoders().clone(), h.ingest_limits(), collection.to_string());
    let hidden = h.hidden_keys(p);
    let mut hits = h
        .admit(move || {
            let c = db.collection(&name)?;
            let q = CrossQuery {
                input: Some(input),
                keyword: agentdb_retrieval::KeywordQuery { hidden, ..Default::default() },
                space: String::new(),
                k,
                filter,
                params: Default::default(),
                mode: agentdb_engine::fusion::FusionMode::Calibrated,
                weights: Default::default(),
                with_payload: true,
                explain: false,
            };
            agentdb_retrieval::query::run(&*c, &enc, q, lim)
        })
        .await?;
    for payload in hits.iter_mut().filter_map(|h| h.payload.as_mut()) {
        h.mask(p, payload);
    }
    let rows: Vec<Value> = hits
        .iter()
        .map(|h| {
            let mut row = json!({
                "id": h.id, "source": h.source, "modality": h.modality, "part": h.part, "score": h.score,
            });
            if let Some(t) = h.payload.as_ref().and_then(|p| p.get("text")).and_then(Value::as_str) {
                row["text"] = t.chars().take(500).collect::<String>().into();
            }
            row
        })
        .collect();
    let mut summary = format!("{} hit(s) in '{collection}' for {shown:?}", rows.len());
    for (i, h) in hits.iter().enumerate() {
        summary.push_str(&format!("\n{}. {} ({}, {}) score {:.4}", i + 1, h.source, h.modality, h.part, h.score));
    }
    Ok(Artifact { name: skill, summary, data: json!({ "skill": skill, "collection": collection, "hits": rows }) })
}

async fn ingest<H: Host>(
    h: &H,
    p: Option<&Principal>,
    skill: &'static str,
    collection: &str,
    source: String,
    content: Vec<u8>,
) -> Result<Artifact, SkillError> {
    h.note_collection(collection);
    h.authorize(p, Action::Write, collection, &format!("A2A/{skill}"))?;
    if p.is_some_and(|p| p.row_filter.is_some()) {
        return Err(SkillError::Rejected("keys with a row policy cannot ingest files; upsert items instead".into()));
    }
    h.check_ingest(p, content.len())?;
    let content_len = content.len();
    let (db, enc, lim, obs) = (h.db().clone(), h.encoders().clone(), h.ingest_limits(), h.observer());
    let name = collection.to_string();
    let r = h
        .admit(move || {
            let c = db.collection(&name)?;
            Ok(agentdb_retrieval::ingest_file(&*c, &enc, &source, &content, lim, obs.as_ref()))
        })
        .await?;
    let status = r.status.as_str();
    let error = match &r.status {
        IngestStatus::Failed(e) => e.to_string(),
        _ => String::new(),
    };
    if status == "ingested" {
        h.charge_ingest(p, content_len, r.items);
    }
    h.observe_ingest(status, &r.media_type, r.items as u64);
    tracing::info!(collection = %collection, source = %r.source, status = %status, items = r.items, error = %error, "A2A ingest");
    if status == "failed" {
        return Err(SkillError::Failed(error));
    }
    let summary = match (skill, status) {
        ("remember", "skipped") => "already remembered".to_string(),
        ("remember", _) => format!("remembered ({} item(s) in '{collection}')", r.items),
        (_, "skipped") => format!("{}: same content already in '{collection}'", r.source),
        _ => format!("{}: {} item(s) ingested into '{collection}' as {}", r.source, r.items, r.media_type),
    };
    Ok(Artifact {
        name: skill,
        summary,
        data: json!({
            "skill": skill, "collection": collection, "source": r.source, "status": status,
            "items": r.items, "mediaType": r.media_type, "contentSha256": r.content_sha256,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_files_skip_hidden_entries_and_links_and_stay_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("sub/.git")).unwrap();
        std::fs::write(root.join("b.txt"), "b").unwrap();
        std::fs::write(root.join("sub/a.txt"), "a").unwrap();
        std::fs::write(root.join(".env"), "secret").unwrap();
        std::fs::write(root.join("sub/.git/HEAD"), "x").unwrap();
        let outside = dir.path().join("outside.txt");
        std::fs::write(&outside, "o").unwrap();
        std::os::unix::fs::symlink(&outside, root.join("link.txt")).unwrap();
        let files = folder_files(&root, 10).unwrap();
        assert_eq!(files, vec![root.join("b.txt"), root.join("sub/a.txt")]);
        assert!(folder_files(&root, 1).unwrap_err().contains("more than 1 files"));
        assert_eq!(folder_files(&root.join("b.txt"), 1).unwrap(), vec![root.join("b.txt")]);
        // server_path: only under the allowed folders, links resolved first.
        let dirs = vec![root.clone()];
        assert!(server_path(&dirs, root.join("sub").to_str().unwrap()).is_ok());
        assert!(server_path(&dirs, root.join("link.txt").to_str().unwrap()).unwrap_err().contains("outside"));
        assert!(server_path(&[], root.to_str().unwrap()).unwrap_err().contains("is off"));
    }

    #[test]
    fn params_in_either_spelling() {
        let p = json!({"top_k": "7", "collection": "  docs ", "text": "   "});
        let p = p.as_object().unwrap();
        assert_eq!(usize_param(p, "topK"), Some(7));
        assert_eq!(str_param(p, "collection"), Some("docs"));
        assert_eq!(str_param(p, "text"), None);
        assert_eq!(snake_case("historyLength"), "history_length");
        assert_eq!(ext_for("image/png"), ".png");
    }
}
