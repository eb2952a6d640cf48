//! AgentDB's own skills (search, recall, ingest, remember), run in-process through
//! `agentdb-retrieval` behind the same checks as gRPC.

use super::model::*;
use super::params::*;
use super::A2a;
use agentdb_orchestrator::security::{principal_memory_collection, Action, Principal};
use agentdb_retrieval::{CrossQuery, QueryInput};
use serde_json::{json, Map, Value};

/// Default and largest number of hits a search or recall returns.
pub(super) const DEFAULT_TOP_K: usize = 5;
pub(super) const MAX_TOP_K: usize = 100;

/// How a skill ended.
pub(super) enum Outcome {
    /// Completed, with an artifact: its name, a readable summary and the data.
    Done {
        name: &'static str,
        summary: String,
        data: Value,
    },
    /// The request lacks something the client can send (input-required).
    NeedInput(String),
    /// Not allowed (RBAC): rejected.
    Rejected(String),
    Failed(String),
}

pub(super) fn status_outcome(st: tonic::Status) -> Outcome {
    match st.code() {
        tonic::Code::PermissionDenied | tonic::Code::Unauthenticated => Outcome::Rejected(st.message().to_string()),
        _ => Outcome::Failed(st.message().to_string()),
    }
}

impl A2a {
    /// Run one of AgentDB's own skills (search, ingest, remember, recall) in-process as
    /// `p`, for a workflow step: the summary and data of its artifact, or why it did not
    /// complete. Authorization, row policies and quotas apply as for an A2A request.
    pub async fn run_skill(
        &self,
        task_id: &str,
        p: Option<&Principal>,
        skill: &str,
        params: Map<String, Value>,
        file: Option<(String, String, Vec<u8>)>,
    ) -> Result<(String, Value), String> {
        let job =
            Job { skill: Some(skill.to_string()), params, text: String::new(), files: file.into_iter().collect() };
        match self.execute(task_id, p, &job).await {
            Outcome::Done { summary, data, .. } => Ok((summary, data)),
            Outcome::NeedInput(m) | Outcome::Failed(m) => Err(m),
            Outcome::Rejected(m) => Err(format!("refused: {m}")),
        }
    }

    pub(super) async fn execute(&self, task_id: &str, p: Option<&Principal>, job: &Job) -> Outcome {
        let owner = p.map_or("local".to_string(), |p| p.id.clone());
        match job.skill.as_deref().unwrap_or("recall") {
            "search" => {
                let Some(collection) = str_param(&job.params, "collection") else {
                    return Outcome::NeedInput(
                        "the search skill needs a collection: send a data part {\"collection\": \"NAME\"}".into(),
                    );
                };
                self.search(p, "search", collection, job).await
            }
            "recall" => {
                let collection = principal_memory_collection(&owner);
                let db = self.svc.db.clone();
                let name = collection.clone();
                let exists = tokio::task::spawn_blocking(move || db.collection(&name).is_ok()).await.unwrap_or(false);
                if !exists {
                    if let Err(st) = self.svc.security.authorize(p, Action::Read, &collection, "A2A/recall") {
                        return status_outcome(st);
                    }
                    return Outcome::Done {
                        name: "recall",
                        summary: "nothing remembered yet".into(),
                        data: json!({ "skill": "recall", "collection": collection, "hits": [] }),
                    };
                }
                self.search(p, "recall", &collection, job).await
            }
            "ingest" => {
                let Some(collection) = str_param(&job.params, "collection") else {
                    return Outcome::NeedInput(
                        "the ingest skill needs a collection: send a data part {\"collection\": \"NAME\"}".into(),
                    );
                };
                let (source, content) = match job.files.first() {
                    Some((name, mime, bytes)) => {
                        let name =
                            if name.is_empty() { format!("a2a-{task_id}{}", ext_for(mime)) } else { name.clone() };
                        (str_param(&job.params, "source").map_or(name, str::to_string), bytes.clone())
                    }
                    None => {
                        let text = str_param(&job.params, "text").unwrap_or(job.text.trim());
                        if text.is_empty() {
                            return Outcome::NeedInput("the ingest skill needs a file part or text to index".into());
                        }
                        let source =
                            str_param(&job.params, "source").map_or(format!("a2a-{task_id}.txt"), str::to_string);
                        (source, text.as_bytes().to_vec())
                    }
                };
                self.ingest(p, "ingest", collection, source, content).await
            }
            "remember" => {
                let text = str_param(&job.params, "text").unwrap_or(job.text.trim());
                if text.is_empty() {
                    return Outcome::NeedInput("remember what? send text after \"remember:\"".into());
                }
                let collection = principal_memory_collection(&owner);
                if let Err(st) = self.svc.security.authorize(p, Action::Write, &collection, "A2A/remember") {
                    return status_outcome(st);
                }
                if let Err(why) = self.ensure_memory(&collection).await {
                    return Outcome::Failed(why);
                }
                let source = format!("memory-{task_id}.txt");
                self.ingest(p, "remember", &collection, source, text.as_bytes().to_vec()).await
            }
            other => Outcome::Rejected(format!("unknown skill '{other}': use search, ingest, remember or recall")),
        }
    }

    /// Create the caller's memory collection (multimodal: the text space, plus CLIP's
    /// when configured) if it does not exist. The caller was already authorized to write it.
    pub(super) async fn ensure_memory(&self, name: &str) -> Result<(), String> {
        let spaces = self.svc.encoders.multimodal_spaces().map_err(|e| e.to_string())?;
        let (db, name) = (self.svc.db.clone(), name.to_string());
        let res = self
            .svc
            .gate
            .run(move || {
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
        res.map_err(|s| s.message().to_string())
    }

    pub(super) async fn search(
        &self,
        p: Option<&Principal>,
        skill: &'static str,
        collection: &str,
        job: &Job,
    ) -> Outcome {
        let method = format!("A2A/{skill}");
        crate::telemetry::record_collection(collection);
        if let Err(st) = self.svc.security.authorize(p, Action::Read, collection, &method) {
            return status_outcome(st);
        }
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
                return Outcome::Failed(format!("cannot search by a file of type {mime}: use image, audio or video"));
            };
            (input, format!("file {name}"))
        } else {
            return Outcome::NeedInput(format!("the {skill} skill needs a query: text or a media file part"));
        };
        let k = usize_param(&job.params, "top_k").or(usize_param(&job.params, "topK")).unwrap_or(DEFAULT_TOP_K);
        let k = k.clamp(1, MAX_TOP_K);
        let filter_expr = str_param(&job.params, "filter").unwrap_or("");
        // The principal's row policy ANDed with the request's filter, masked fields
        // refused, as for gRPC.
        let filter = match self.svc.security.scoped_filter(p, filter_expr) {
            Ok(f) => f,
            Err(st) => return status_outcome(st),
        };
        let (db, enc, lim, name) =
            (self.svc.db.clone(), self.svc.encoders.clone(), self.svc.ingest, collection.to_string());
        let hidden = self.svc.security.hidden_keys(p);
        let res = self
            .svc
            .gate
            .run(move || {
                let c = db.collection(&name)?;
                let q = CrossQuery {
                    input: Some(input),
                    keyword: agentdb_retrieval::KeywordQuery { hidden, ..Default::default() },
                    space: String::new(),
                    k,
                    filter,
                    params: Default::default(),
                    mode: agentdb_engine::fusion::FusionMode::Rrf,
                    weights: Default::default(),
                    with_payload: true,
                    explain: false,
                };
                Ok(agentdb_retrieval::query::run(&c, &enc, q, lim)?)
            })
            .await;
        let mut hits = match res {
            Ok(h) => h,
            Err(st) => return status_outcome(st),
        };
        for payload in hits.iter_mut().filter_map(|h| h.payload.as_mut()) {
            self.svc.security.mask(p, payload);
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
        Outcome::Done { name: skill, summary, data: json!({ "skill": skill, "collection": collection, "hits": rows }) }
    }

    pub(super) async fn ingest(
        &self,
        p: Option<&Principal>,
        skill: &'static str,
        collection: &str,
        source: String,
        content: Vec<u8>,
    ) -> Outcome {
        crate::telemetry::record_collection(collection);
        if let Err(st) = self.svc.security.authorize(p, Action::Write, collection, &format!("A2A/{skill}")) {
            return status_outcome(st);
        }
        if p.is_some_and(|p| p.row_filter.is_some()) {
            return Outcome::Rejected("keys with a row policy cannot ingest files; upsert items instead".into());
        }
        if let Err(st) = self.svc.security.check_ingest(p, content.len()) {
            return status_outcome(st);
        }
        let content_len = content.len();
        let (db, enc, lim, obs) =
            (self.svc.db.clone(), self.svc.encoders.clone(), self.svc.ingest, self.svc.observer.clone());
        let name = collection.to_string();
        let res = self
            .svc
            .gate
            .run(move || {
                let c = db.collection(&name)?;
                Ok(agentdb_retrieval::ingest_file(&c, &enc, &source, &content, lim, obs.as_ref()))
            })
            .await;
        let r = match res {
            Ok(r) => crate::grpc::outcome_to_wire(r),
            Err(st) => return status_outcome(st),
        };
        if r.status == "ingested" {
            self.svc.security.charge_ingest(p, content_len, r.items);
        }
        self.svc.metrics.observe_ingest(&r.status, &r.media_type, r.items as u64);
        tracing::info!(collection = %collection, source = %r.source, status = %r.status, items = r.items, error = %r.error, "A2A ingest");
        if r.status == "failed" {
            return Outcome::Failed(r.error);
        }
        let summary = match (skill, r.status.as_str()) {
            ("remember", "skipped") => "already remembered".to_string(),
            ("remember", _) => format!("remembered ({} item(s) in '{collection}')", r.items),
            (_, "skipped") => format!("{}: same content already in '{collection}'", r.source),
            _ => format!("{}: {} item(s) ingested into '{collection}' as {}", r.source, r.items, r.media_type),
        };
        Outcome::Done {
            name: skill,
            summary,
            data: json!({
                "skill": skill, "collection": collection, "source": r.source, "status": r.status,
                "items": r.items, "mediaType": r.media_type, "contentSha256": r.content_sha256,
            }),
        }
    }
}
