//! Cross-modal queries: a text or an example image is embedded into every space of the
//! collection with the encoder of that space's family for the query's modality; each
//! space is searched once per item modality (so text chunks, images and other items rank
//! in separate lists, whatever their score scales), and the lists are fused by source.

use crate::encoders::{embed_image, Encoders, Modal};
use crate::ingest::IngestLimits;
use crate::status::ApiError;
use agentdb_engine::fusion::{fuse, FusionMode, RankedList};
use agentdb_engine::{Collection, Filter, Hit, SearchParams, SearchRequest};
use agentdb_proto::v1;
use serde_json::Value;
use std::collections::HashMap;
use tonic::Status;

/// Item modalities that get a ranked list of their own; anything else shares "other".
pub const ITEM_MODALITIES: [&str; 3] = ["text", "image", "speech"];

pub enum QueryInput {
    Text(String),
    Image(Vec<u8>),
    /// A recording: transcribed, then searched as text.
    Audio(Vec<u8>),
}

pub struct CrossQuery {
    pub input: QueryInput,
    /// Only this space ("" = all spaces with an encoder).
    pub space: String,
    pub k: usize,
    pub filter: Option<Filter>,
    pub params: SearchParams,
    pub mode: FusionMode,
    pub weights: HashMap<String, f32>,
    pub with_payload: bool,
    pub explain: bool,
}

/// A query in an encoder's input modality (recordings become their transcript).
enum Embeddable {
    Text(String),
    Image(Vec<u8>),
}

pub fn run(col: &Collection, enc: &Encoders, q: CrossQuery, lim: IngestLimits) -> Result<Vec<v1::Hit>, ApiError> {
    let input = match q.input {
        QueryInput::Text(t) => Embeddable::Text(t),
        QueryInput::Image(b) => Embeddable::Image(b),
        QueryInput::Audio(b) => Embeddable::Text(crate::encoders::transcribe_query(enc, &b, lim.audio)?),
    };
    let modal = match input {
        Embeddable::Text(_) => Modal::Text,
        Embeddable::Image(_) => Modal::Image,
    };
    // Which spaces this query can search, and the encoder for each.
    let mut targets = Vec::new();
    for space in &col.spec.spaces {
        if !q.space.is_empty() && space.name != q.space {
            continue;
        }
        match enc.for_space(space, modal) {
            Some(id) => targets.push((space, id)),
            None if !q.space.is_empty() => {
                return Err(Status::invalid_argument(format!(
                    "space '{}' is not bound to a loaded {} encoder ({}); search it with a vector",
                    space.name,
                    modal.as_str(),
                    space.encoder.as_deref().unwrap_or("it holds raw vectors")
                ))
                .into())
            }
            None => {}
        }
    }
    if !q.space.is_empty() && targets.is_empty() {
        col.spec.space(&q.space)?; // names the unknown space
    }
    if targets.is_empty() {
        // Make the error name what is missing: the encoder or a compatible space.
        if modal == Modal::Image {
            enc.image()?;
        }
        enc.text()?;
        return Err(Status::invalid_argument(format!(
            "collection '{}' has no space bound to the text encoder's family that a {} query can search; \
             search it with a vector (or create it with --multimodal)",
            col.name(),
            modal.as_str()
        ))
        .into());
    }
    // Embed once per family.
    let mut vectors: HashMap<String, Vec<f32>> = HashMap::new();
    for (_, id) in &targets {
        let fam = agentdb_engine::embedding_family(id).to_string();
        if vectors.contains_key(&fam) {
            continue;
        }
        let v = match &input {
            Embeddable::Text(t) => enc.text()?.batcher.submit_blocking(t.clone())?,
            Embeddable::Image(bytes) => {
                embed_image(enc, bytes, lim.image).map_err(|e| crate::status::prefixed("query image", e))?.0.vector
            }
        };
        vectors.insert(fam, v);
    }
    let per_list = (q.k * 4).clamp(q.k, col.options().limits.max_top_k.max(q.k));
    let mut lists = Vec::new();
    for (space, id) in &targets {
        let v = &vectors[agentdb_engine::embedding_family(id)];
        let mut groups: Vec<(String, Filter)> = ITEM_MODALITIES
            .iter()
            .map(|m| (m.to_string(), Filter::Eq { path: vec!["modality".into()], value: Value::from(*m) }))
            .collect();
        groups.push((
            "other".into(),
            Filter::Not(Box::new(Filter::In {
                path: vec!["modality".into()],
                values: ITEM_MODALITIES.iter().map(|m| Value::from(*m)).collect(),
            })),
        ));
        for (m, mf) in groups {
            let f = match &q.filter {
                Some(user) => Filter::And(vec![mf, user.clone()]),
                None => mf,
            };
            let mut res = col.search(SearchRequest {
                space: &space.name,
                queries: vec![v.clone()],
                k: per_list,
                filter: Some(&f),
                params: q.params,
                with_payload: true,
                with_vectors: false,
            })?;
            let hits = res.pop().unwrap_or_default();
            if hits.is_empty() {
                continue;
            }
            let name = format!("{}/{m}", space.name);
            let weight = q.weights.get(&name).copied().unwrap_or(1.0);
            lists.push(RankedList { name, weight, hits });
        }
    }
    for name in q.weights.keys() {
        if !targets.iter().any(|(s, _)| name.starts_with(&format!("{}/", s.name))) {
            return Err(Status::invalid_argument(format!(
                "weight for unknown list '{name}': lists are named SPACE/MODALITY, e.g. '{}/image'",
                targets[0].0.name
            ))
            .into());
        }
    }
    let fused = fuse(lists, q.mode, source_of, q.k);
    Ok(fused
        .into_iter()
        .map(|f| {
            let payload = f.hit.payload.clone().unwrap_or(Value::Null);
            v1::Hit {
                id: f.hit.id.clone(),
                score: f.score,
                payload_json: if q.with_payload { payload.to_string() } else { String::new() },
                vector: None,
                source: f.key.clone(),
                modality: payload["modality"].as_str().unwrap_or("other").to_string(),
                part: describe_part(&payload),
                explain: if q.explain {
                    f.explain
                        .into_iter()
                        .map(|e| v1::ListScore { list: e.list, rank: e.rank as u32, score: e.score })
                        .collect()
                } else {
                    Vec::new()
                },
            }
        })
        .collect())
}

/// The source a hit belongs to: the ingested file (payload `source`), else the item.
fn source_of(h: &Hit) -> String {
    h.payload.as_ref().and_then(|p| p["source"].as_str()).map(String::from).unwrap_or_else(|| h.id.clone())
}

/// A short description of the part of a source that matched.
fn describe_part(p: &Value) -> String {
    match p["modality"].as_str() {
        Some("text") => {
            let (i, n) = (p["chunk"].as_u64().unwrap_or(0), p["chunks"].as_u64().unwrap_or(1));
            match (p["start"].as_u64(), p["end"].as_u64()) {
                (Some(s), Some(e)) => format!("chunk {}/{n} (chars {s}-{e})", i + 1),
                _ => format!("chunk {}/{n}", i + 1),
            }
        }
        Some("image") => {
            let labels: Vec<&str> = p["labels"]
                .as_array()
                .map(|a| a.iter().take(3).filter_map(Value::as_str).collect())
                .unwrap_or_default();
            format!("image {}x{} (looks like: {})", p["width"], p["height"], labels.join(", "))
        }
        Some("speech") => {
            let (i, n) = (p["chunk"].as_u64().unwrap_or(0), p["chunks"].as_u64().unwrap_or(1));
            let (a, b) = (p["start_s"].as_f64().unwrap_or(0.0), p["end_s"].as_f64().unwrap_or(0.0));
            format!("speech {a:.1}-{b:.1} s (passage {}/{n})", i + 1)
        }
        _ => "item".into(),
    }
}
