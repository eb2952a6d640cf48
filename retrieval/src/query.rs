//! Cross-modal queries: a text or an example image is embedded into every space of the
//! collection with the encoder of that space's family for the query's modality; each
//! space is searched once per item modality (so text chunks, images and other items rank
//! in separate lists, whatever their score scales), and the lists are fused by source.

use crate::encoders::{Encoders, Modal};
use crate::ingest::IngestLimits;
use crate::sound::HeardQuery;
use crate::{invalid, Error, Result, Target};
use agentdb_engine::fusion::{fuse, Calibration, FusionMode, RankedList};
use agentdb_engine::payload::{keys, ITEM_MODALITIES};
use agentdb_engine::{Collection, Filter, SearchParams, SearchRequest};
use serde_json::Value;
use std::collections::HashMap;

pub use agentdb_engine::fusion::ListScore;

/// One ranked source: the best-matching item of it, with how it ranked.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// The item that matched best.
    pub id: String,
    /// The fused score.
    pub score: f32,
    /// The item's payload (None when the query did not ask for payloads).
    pub payload: Option<Value>,
    /// The ingested file the item came from (its id for items that name no source).
    pub source: String,
    /// The item's modality (`text`, `image`, `speech`, `keyframe`, else `other`).
    pub modality: String,
    /// Which part of the source matched ("chunk 2/5 (chars 400-812)", "speech 3.0-7.5 s ...").
    pub part: String,
    /// With `explain`: each list's rank and score for this source.
    pub explain: Vec<ListScore>,
}

/// What to search with.
pub enum QueryInput {
    Text(String),
    Image(Vec<u8>),
    /// A recording: its speech searched as text; a sound without speech by its labels
    /// (and by its waveform in the space of an encoder that hears, a CLAP).
    Audio(Vec<u8>),
    /// A video: the mean of its keyframes' vectors and its transcript's, searched at once.
    Video(Vec<u8>),
}

/// Which retrieval a query uses (see `SearchRequest.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Retrieval {
    /// Hybrid when the collection has a keyword index and the query has text, else dense.
    #[default]
    Auto,
    Dense,
    Keyword,
    Hybrid,
}

/// The keyword side of a query.
#[derive(Debug, Clone, Default)]
pub struct KeywordQuery {
    pub mode: Retrieval,
    /// Explicit keyword query ("" = the text query or the query recording's transcript).
    pub query: String,
    pub fields: Vec<(String, f32)>,
    /// Payload keys the principal may not read: their keyword fields are left out.
    pub hidden: Vec<String>,
}

pub struct CrossQuery {
    /// None: a keyword-only query (`keyword.query`).
    pub input: Option<QueryInput>,
    pub keyword: KeywordQuery,
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
    Image(agentdb_models::image::RgbImage),
    /// A query video: its keyframes and its transcript (if any).
    Video(Vec<agentdb_models::image::RgbImage>, Option<String>),
    /// A recording without speech: its labels' text (if a classifier named them) and its
    /// waveform, for encoders that hear.
    Sound(Option<String>, Vec<f32>, u32),
}

/// Most texts one [`embed_texts`] call takes.
pub const MAX_EMBED_TEXTS: usize = 1024;

/// Embed `texts` as collection `col` stores and searches them in space `space` ("" =
/// the first space bound to an encoder of the text encoder's family): the encoder's id
/// and one vector per text, in order. For clients that upsert their own items with the
/// collection's encoder (LangChain / LlamaIndex stores).
pub fn embed_texts(
    col: &Collection,
    enc: &Encoders,
    space: &str,
    texts: Vec<String>,
) -> Result<(String, Vec<Vec<f32>>)> {
    if texts.is_empty() {
        return Err(invalid!("no texts to embed"));
    }
    if texts.len() > MAX_EMBED_TEXTS {
        return Err(invalid!("{} texts to embed; at most {MAX_EMBED_TEXTS} per call", texts.len()));
    }
    if let Some(i) = texts.iter().position(|t| t.trim().is_empty()) {
        return Err(invalid!("text {i} is empty"));
    }
    let mut chosen = None;
    for s in &col.spec().spaces {
        if !space.is_empty() && s.name != space {
            continue;
        }
        if let Some(id) = enc.for_space(s, Modal::Text) {
            chosen = Some(id);
            break;
        }
        if !space.is_empty() {
            return Err(invalid!(
                "space '{}' is not bound to a loaded text encoder ({}): it takes vectors only",
                s.name,
                s.encoder.as_deref().unwrap_or("it holds raw vectors")
            ));
        }
    }
    let Some(id) = chosen else {
        if !space.is_empty() {
            col.spec.space(space)?; // names the unknown space
        }
        enc.text()?;
        return Err(invalid!(
            "collection '{}' has no space bound to a text encoder (create it with --multimodal)",
            col.name()
        ));
    };
    let vectors = enc.embed_texts_as(&id, texts)?;
    Ok((id, vectors))
}

/// Run one cross-modal query against `col` (blocking: it embeds and searches).
pub fn run(col: &dyn Target, enc: &Encoders, mut q: CrossQuery, lim: IngestLimits) -> Result<Vec<Hit>> {
    let input = match q.input.take() {
        None => None,
        Some(QueryInput::Text(t)) => Some(Embeddable::Text(t)),
        Some(QueryInput::Image(b)) => Some(Embeddable::Image(
            agentdb_models::decode_image(&b, lim.image).map_err(|e| Error::from(e).about("query image"))?,
        )),
        Some(QueryInput::Audio(b)) => Some(match crate::sound::hear_query(enc, &b, lim.audio)? {
            HeardQuery::Speech(t) => Embeddable::Text(t),
            HeardQuery::Sound { text, pcm, rate } => Embeddable::Sound(text, pcm, rate),
        }),
        Some(QueryInput::Video(b)) => Some(video_query(enc, &b, lim)?),
    };
    // The keyword side: an explicit keyword query (with its syntax), else the words of
    // the query's own text (natural language: no syntax).
    let kw_text = if !q.keyword.query.trim().is_empty() {
        Some(q.keyword.query.clone())
    } else {
        match &input {
            Some(Embeddable::Text(t)) => agentdb_engine::keyword::plain_query(t),
            Some(Embeddable::Video(_, Some(t)) | Embeddable::Sound(Some(t), ..)) => {
                agentdb_engine::keyword::plain_query(t)
            }
            _ => None,
        }
    };
    let (dense, keyword) = match q.keyword.mode {
        Retrieval::Dense => (true, false),
        Retrieval::Keyword => (false, true),
        // Hybrid uses the keyword side wherever the query has words (an image has none).
        Retrieval::Hybrid => (input.is_some(), kw_text.is_some() || input.is_none()),
        // A keyword query alone is a keyword search (and says so if there is no index).
        Retrieval::Auto => (input.is_some(), kw_text.is_some() && (col.has_keyword_index() || input.is_none())),
    };
    if keyword && kw_text.is_none() {
        return Err(invalid!(
            "keyword retrieval needs text: a text query, a recording or video with speech, or `keyword_query`"
        ));
    }
    let mut lists = Vec::new();
    if keyword {
        let text = kw_text.as_deref().unwrap_or_default();
        let mut fields = q.keyword.fields.clone();
        let searchable = col.spec().keyword.as_ref().map(|k| k.searchable.clone()).unwrap_or_default();
        let keys = agentdb_engine::keyword::field_payload_keys(&searchable);
        for (field, keys) in agentdb_engine::keyword::FIELDS.iter().zip(keys) {
            if keys.iter().any(|k| q.keyword.hidden.contains(k)) {
                fields.push((field.to_string(), 0.0));
            }
        }
        let weights = agentdb_engine::keyword::FieldWeights::default().with(&fields)?;
        let span = tracing::info_span!("search.keyword", k = q.k * 4, hits = tracing::field::Empty).entered();
        let hits = col.keyword_search(text, &weights, (q.k * 4).min(col.max_top_k().max(q.k)), q.filter.as_ref())?;
        span.record("hits", hits.len());
        drop(span);
        if !hits.is_empty() {
            let weight = q.weights.get("keyword").copied().unwrap_or(1.0);
            lists.push(RankedList::keyword(weight, hits).with_calibration(KEYWORD_CALIBRATION));
        }
    }
    let Some(input) = input.filter(|_| dense) else {
        return Ok(finish(lists, &q));
    };
    let modal = match input {
        Embeddable::Text(_) => Modal::Text,
        Embeddable::Sound(..) => Modal::Speech,
        Embeddable::Image(_) | Embeddable::Video(..) => Modal::Image,
    };
    // Which spaces this query can search, and the encoder for each.
    let mut targets = Vec::new();
    for space in &col.spec().spaces {
        if !q.space.is_empty() && space.name != q.space {
            continue;
        }
        // A sound no classifier named reaches only the spaces of encoders that hear.
        let unheard = |id: &String| matches!(input, Embeddable::Sound(None, ..)) && !enc.hears(id);
        match enc.for_space(space, modal).filter(|id| !unheard(id)) {
            Some(id) => targets.push((space, id)),
            None if !q.space.is_empty() => {
                return Err(invalid!(
                    "space '{}' is not bound to a loaded {} encoder ({}); search it with a vector",
                    space.name,
                    modal.as_str(),
                    space.encoder.as_deref().unwrap_or("it holds raw vectors")
                ))
            }
            None => {}
        }
    }
    if !q.space.is_empty() && targets.is_empty() {
        col.spec().space(&q.space)?; // names the unknown space
    }
    if targets.is_empty() {
        // Make the error name what is missing: the encoder or a compatible space.
        if modal == Modal::Image {
            enc.image()?;
        }
        enc.text()?;
        return Err(invalid!(
            "collection '{}' has no space bound to the text encoder's family that a {} query can search; \
             search it with a vector (or create it with --multimodal)",
            col.name(),
            modal.as_str()
        ));
    }
    // Embed once per family.
    let mut vectors: HashMap<String, Vec<f32>> = HashMap::new();
    for (_, id) in &targets {
        let fam = agentdb_engine::embedding_family(id).to_string();
        if vectors.contains_key(&fam) {
            continue;
        }
        let _embed = tracing::info_span!("search.embed", encoder = %id, modality = modal.as_str()).entered();
        let v = match &input {
            Embeddable::Text(t) => enc.embed_texts_as(id, vec![t.clone()])?.pop().unwrap_or_default(),
            Embeddable::Sound(_, pcm, rate) if enc.hears(id) => enc.embed_audio_as(id, pcm, *rate)?,
            Embeddable::Sound(text, ..) => {
                enc.embed_texts_as(id, vec![text.clone().unwrap_or_default()])?.pop().unwrap_or_default()
            }
            Embeddable::Image(img) => {
                enc.embed_images_as(id, std::slice::from_ref(img))?.pop().map(|(v, _)| v).unwrap_or_default()
            }
            Embeddable::Video(frames, transcript) => {
                // Keyframe vectors and the transcript's, averaged and normalised.
                let mut vs: Vec<Vec<f32>> = enc.embed_images_as(id, frames)?.into_iter().map(|(v, _)| v).collect();
                if let Some(t) = transcript {
                    vs.extend(enc.embed_texts_as(id, vec![t.clone()])?);
                }
                mean_normalised(&vs)
            }
        };
        vectors.insert(fam, v);
    }
    let per_list = (q.k * 4).clamp(q.k, col.max_top_k().max(q.k));
    // The calibrations below were fitted for the spaces of the shipped text encoder's
    // family; lists of other spaces (a user's CLIP, ONNX) are calibrated by rank alone.
    let text_family = enc.text().ok().map(|t| agentdb_engine::embedding_family(&t.encoder_id()).to_string());
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
            let list = tracing::info_span!(
                "search.list",
                space = %space.name,
                modality = %m,
                k = per_list,
                hits = tracing::field::Empty
            )
            .entered();
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
            list.record("hits", hits.len());
            drop(list);
            if hits.is_empty() {
                continue;
            }
            let name = format!("{}/{m}", space.name);
            let weight = q.weights.get(&name).copied().unwrap_or(1.0);
            let shipped = text_family.as_deref() == Some(agentdb_engine::embedding_family(id));
            let c = if shipped { calibration(&m) } else { Calibration::RANK_ONLY };
            lists.push(RankedList::new(name, weight, hits).with_calibration(c));
        }
    }
    for name in q.weights.keys() {
        if name != "keyword" && !targets.iter().any(|(s, _)| name.starts_with(&format!("{}/", s.name))) {
            return Err(invalid!(
                "weight for unknown list '{name}': lists are named SPACE/MODALITY, e.g. '{}/image'",
                targets[0].0.name
            ));
        }
    }
    Ok(finish(lists, &q))
}

/// The calibration of a dense list of the shipped encoders' space, by item modality:
/// p = σ(a·similarity + b/rank + c), fitted by logistic regression on the tune half of
/// `benches/eval` with its 30 distractors (`make eval`; docs/SEARCH.md has the method and
/// the numbers of both halves). Keyframes share the images' (same classifier, same
/// bridge): fitted apart on an eval without natural-scene videos they learned "never".
fn calibration(modality: &str) -> Calibration {
    let c = |score, inv_rank, bias| Calibration { score, inv_rank, bias, ..Default::default() };
    match modality {
        "text" => c(8.593, 5.081, -9.22),
        // Text read in an image (cards, signs): fitted apart; its list is short (only
        // images with text are in it), so rank 1 there says less than in the text list.
        "ocr" => c(7.777, 1.874, -6.652),
        "image" | "keyframe" => c(3.262, 3.305, -5.582),
        "speech" => c(9.067, 4.123, -9.195),
        "sound" => c(5.7, 2.787, -6.642),
        _ => Calibration::RANK_ONLY,
    }
}

/// The keyword (BM25) list's calibration, fitted with the dense ones:
/// p = σ(a/rank + b·coverage + c·[a match in a short field] + d), coverage being the
/// idf-weighted share of the query a hit matched. BM25 magnitude is left out: fitted
/// with it, the tune half gave it a *negative* weight (a long licence text matching one
/// common query word outscores a card whose OCR holds the rare ones), a rule that would
/// not hold elsewhere. Coverage carries nearly all of the weight.
const KEYWORD_CALIBRATION: Calibration =
    Calibration { score: 0.0, inv_rank: 1.202, coverage: 2.887, short_field: 0.461, bias: -4.041 };

/// Fuse the ranked lists by source and describe each source's best part.
fn finish(lists: Vec<RankedList>, q: &CrossQuery) -> Vec<Hit> {
    let fuse_span =
        tracing::info_span!("search.fuse", lists = lists.len(), k = q.k, results = tracing::field::Empty).entered();
    let fused = fuse(lists, q.mode, source_of, q.k);
    fuse_span.record("results", fused.len());
    drop(fuse_span);
    fused
        .into_iter()
        .map(|f| {
            let payload = f.hit.payload.unwrap_or(Value::Null);
            Hit {
                id: f.hit.id,
                score: f.score,
                modality: payload[keys::MODALITY].as_str().unwrap_or("other").to_string(),
                part: describe_part(&payload),
                payload: q.with_payload.then_some(payload),
                source: f.key,
                explain: if q.explain { f.explain } else { Vec::new() },
            }
        })
        .collect()
}

/// The source a hit belongs to: the ingested file (payload `source`), else the item.
fn source_of(h: &agentdb_engine::Hit) -> String {
    h.payload.as_ref().and_then(|p| p[keys::SOURCE].as_str()).map(String::from).unwrap_or_else(|| h.id.clone())
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
            format!("image {}x{} (looks like: {}){}", p["width"], p["height"], labels.join(", "), reads(p))
        }
        Some("ocr") => format!("text in image {}x{}{}", p["width"], p["height"], reads(p)),
        Some("keyframe") => {
            let labels: Vec<&str> = p["labels"]
                .as_array()
                .map(|a| a.iter().take(3).filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let cut = if p["scene_change"].as_bool() == Some(true) { ", scene change" } else { "" };
            format!(
                "keyframe at {:.1} s{cut} (looks like: {}){}",
                p["t_s"].as_f64().unwrap_or(0.0),
                labels.join(", "),
                reads(p)
            )
        }
        Some("speech") => {
            let (i, n) = (p["chunk"].as_u64().unwrap_or(0), p["chunks"].as_u64().unwrap_or(1));
            let (a, b) = (p["start_s"].as_f64().unwrap_or(0.0), p["end_s"].as_f64().unwrap_or(0.0));
            format!("speech {a:.1}-{b:.1} s (passage {}/{n})", i + 1)
        }
        Some("sound") => {
            let heard = p["sound"].as_str().map(|h| format!("; sounds like: {h}")).unwrap_or_default();
            format!("sound {:.1} s, no speech{heard}", p["duration_s"].as_f64().unwrap_or(0.0))
        }
        _ => "item".into(),
    }
}

/// `; reads "…"`: the start of the text OCR found in an image or keyframe, if any.
fn reads(p: &Value) -> String {
    match p["ocr"].as_str().map(|t| t.split_whitespace().collect::<Vec<_>>().join(" ")) {
        Some(t) if !t.is_empty() => {
            let short: String = t.chars().take(60).collect();
            format!("; reads \"{short}{}\"", if short.len() < t.len() { "…" } else { "" })
        }
        _ => String::new(),
    }
}

/// Decode a query video into its keyframes and the transcript of its speech.
fn video_query(enc: &Encoders, bytes: &[u8], lim: IngestLimits) -> Result<Embeddable> {
    let what = |e: Error| e.about("query video");
    let v = crate::ingest::decode_video(bytes, lim).map_err(what)?;
    let mut transcript = None;
    if let (Some((samples, rate)), Some(speech)) = (&v.audio, enc.speech.as_ref()) {
        let text = speech.transcribe_at(samples, *rate).map_err(|e| what(e.into()))?.text();
        if !text.is_empty() {
            transcript = Some(text);
        }
    }
    if v.keyframes.is_empty() && transcript.is_none() {
        return Err(invalid!("query video: no frames and no speech to search with"));
    }
    Ok(Embeddable::Video(v.keyframes.into_iter().map(|k| k.image).collect(), transcript))
}

fn mean_normalised(vs: &[Vec<f32>]) -> Vec<f32> {
    let dim = vs.first().map(Vec::len).unwrap_or(0);
    let mut mean = vec![0f32; dim];
    for v in vs {
        mean.iter_mut().zip(v).for_each(|(m, x)| *m += x);
    }
    let norm = mean.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    mean.into_iter().map(|x| x / norm).collect()
}
