//! Server-side ingestion of one file: detect the media type from its bytes, decode,
//! split, embed into the collection's spaces, and upsert atomically (one WAL record per
//! file), so a killed run never leaves half a file behind and a re-run skips it.

use crate::encoders::{transcribe, Encoders, Modal};
use crate::status::ApiError;
use agentdb_engine::{Collection, Item};
use agentdb_models::{chunk_text, detect, markdown_to_text, registry::sha256_hex, Modality};
use agentdb_proto::v1;
use serde_json::json;
use std::collections::BTreeMap;
use tonic::Status;

#[derive(Debug, Clone, Copy)]
pub struct IngestLimits {
    pub max_file_bytes: usize,
    pub chunk_tokens: usize,
    pub chunk_overlap: usize,
    pub image: agentdb_models::ImageLimits,
    pub audio: agentdb_models::AudioLimits,
    pub video: VideoOptions,
}

#[derive(Debug, Clone, Copy)]
pub struct VideoOptions {
    pub limits: agentdb_models::video::VideoLimits,
    pub interval_s: f32,
    pub scene_threshold: f32,
}

/// Item id for chunk `i` of content with hash `sha`: stable, so re-ingesting the same
/// bytes replaces rather than duplicates.
fn item_id(sha: &str, i: usize) -> String {
    format!("{}:{i}", &sha[..32])
}

pub fn ingest_file(col: &Collection, enc: &Encoders, req: v1::IngestRequest, lim: IngestLimits) -> v1::IngestResult {
    let source = req.source.clone();
    let sha = sha256_hex(&req.content);
    let mut res = v1::IngestResult { source: source.clone(), content_sha256: sha.clone(), ..Default::default() };
    let span = tracing::info_span!(
        "ingest.file",
        source = %source,
        agentdb.collection = %col.name(),
        bytes = req.content.len(),
        media_type = tracing::field::Empty,
        items = tracing::field::Empty,
        status = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    let _entered = span.enter();
    match ingest_inner(col, enc, req, &sha, lim, &mut res) {
        Ok(()) => {}
        Err(e) => {
            let st = crate::status::to_status(e);
            res.status = "failed".into();
            res.error = st.message().to_string();
            span.record("otel.status_code", "error");
        }
    }
    span.record("media_type", res.media_type.as_str());
    span.record("items", res.items);
    span.record("status", res.status.as_str());
    res
}

fn ingest_inner(
    col: &Collection,
    enc: &Encoders,
    req: v1::IngestRequest,
    sha: &str,
    lim: IngestLimits,
    res: &mut v1::IngestResult,
) -> Result<(), ApiError> {
    let src = &req.source;
    if req.content.len() > lim.max_file_bytes {
        return Err(Status::invalid_argument(format!(
            "{src}: {} bytes exceeds ingest.max_file_bytes ({})",
            req.content.len(),
            lim.max_file_bytes
        ))
        .into());
    }
    if req.content.is_empty() {
        return Err(Status::invalid_argument(format!("{src}: file is empty")).into());
    }
    let Some(media) = detect(&req.content) else {
        return Err(Status::invalid_argument(format!(
            "{src}: unrecognised content (not text and not a known image, audio or video format)"
        ))
        .into());
    };
    res.media_type = media.mime.to_string();
    // Already ingested when the first chunk is there and so is the last one it names
    // (a file is written in one request unless it has more chunks than limits.max_batch).
    if let Some(first) = col.get(&[item_id(sha, 0)], false)?.pop() {
        let n = first.payload["chunks"].as_u64().unwrap_or(1) as usize;
        if !col.get(&[item_id(sha, n.saturating_sub(1))], false)?.is_empty() {
            res.status = "skipped".into();
            return Ok(());
        }
    }
    let file = File { col, enc, req: &req, sha, mime: media.mime, lim };
    let items = match media.modality {
        Modality::Text => text_items(&file)?,
        Modality::Image => image_items(&file)?,
        Modality::Audio => speech_items(&file)?,
        Modality::Video => video_items(&file)?,
    };
    let n = items.len();
    let _upsert = tracing::info_span!("ingest.upsert", items = n).entered();
    for batch in items.chunks(col.options().limits.max_batch.max(1)) {
        let ids = col.upsert(batch.to_vec())?;
        crate::orchestration::items_written(col.name(), batch, &ids);
    }
    res.items = n as u32;
    res.status = "ingested".into();
    Ok(())
}

/// One vector per space of the collection, from the encoder of `modal` in that space's
/// family (`embed` runs once per family). A space no loaded encoder of this modality
/// can fill makes the file fail with a message naming it.
/// One file being ingested: where it goes, what embeds it, its bytes and type.
#[derive(Clone, Copy)]
struct File<'a> {
    col: &'a Collection,
    enc: &'a Encoders,
    req: &'a v1::IngestRequest,
    sha: &'a str,
    mime: &'a str,
    lim: IngestLimits,
}

fn space_vectors(
    col: &Collection,
    enc: &Encoders,
    modal: Modal,
    src: &str,
    mut embed: impl FnMut(&str) -> Result<Vec<Vec<f32>>, ApiError>,
) -> Result<Vec<BTreeMap<String, Vec<f32>>>, ApiError> {
    let mut by_family: BTreeMap<String, Vec<Vec<f32>>> = BTreeMap::new();
    let mut out: Vec<BTreeMap<String, Vec<f32>>> = Vec::new();
    for space in &col.spec.spaces {
        let Some(id) = enc.for_space(space, modal) else {
            return Err(Status::failed_precondition(format!(
                "{src}: space '{}' of collection '{}' holds vectors from {}, and no loaded {} encoder produces those \
                 (create the collection with --multimodal to get the default spaces)",
                space.name,
                col.name(),
                space.encoder.as_deref().unwrap_or("no encoder (raw vectors)"),
                modal.as_str()
            ))
            .into());
        };
        let fam = agentdb_engine::embedding_family(&id).to_string();
        if !by_family.contains_key(&fam) {
            let _embed =
                tracing::info_span!("ingest.embed", space = %space.name, encoder = %id, modality = modal.as_str())
                    .entered();
            by_family.insert(fam.clone(), embed(&id)?);
        }
        let vs = &by_family[&fam];
        if out.is_empty() {
            out = vec![BTreeMap::new(); vs.len()];
        }
        for (m, v) in out.iter_mut().zip(vs) {
            m.insert(space.name.clone(), v.clone());
        }
    }
    Ok(out)
}

fn text_items(f: &File) -> Result<Vec<Item>, ApiError> {
    let File { col, enc, req, sha, mime, lim } = *f;
    let src = &req.source;
    let text_svc = enc.text()?;
    let decode = tracing::info_span!("ingest.decode", media_type = mime, chunks = tracing::field::Empty).entered();
    let raw = std::str::from_utf8(&req.content)
        .map_err(|e| Status::invalid_argument(format!("{src}: invalid UTF-8: {e}")))?;
    let text = if mime == "text/markdown" { markdown_to_text(raw) } else { raw.to_string() };
    let chunks = chunk_text(text_svc.encoder.tokenizer(), &text, lim.chunk_tokens, lim.chunk_overlap)?;
    if chunks.is_empty() {
        return Err(Status::invalid_argument(format!("{src}: no text to index")).into());
    }
    decode.record("chunks", chunks.len());
    drop(decode);
    let texts: Vec<String> = chunks.iter().map(|c| c.text.clone()).collect();
    let vectors = space_vectors(col, enc, Modal::Text, src, |id| enc.embed_texts_as(id, texts.clone()))?;
    let n = chunks.len();
    let encoder = col.spec.spaces.iter().filter_map(|s| enc.for_space(s, Modal::Text)).collect::<Vec<_>>().join(" ");
    Ok(chunks
        .into_iter()
        .zip(vectors)
        .map(|(c, vectors)| Item {
            id: item_id(sha, c.index),
            vectors,
            payload: json!({
                "source": src, "modality": "text", "media_type": mime, "content_sha256": sha,
                "chunk": c.index, "chunks": n, "start": c.start, "end": c.end, "text": c.text,
                "encoder": encoder,
            }),
        })
        .collect())
}

fn image_items(f: &File) -> Result<Vec<Item>, ApiError> {
    let File { col, enc, req, sha, mime, lim } = *f;
    let src = &req.source;
    let img = tracing::info_span!("ingest.decode", media_type = mime).in_scope(|| {
        agentdb_models::decode_image(&req.content, lim.image).map_err(|e| crate::status::prefixed(src, e.into()))
    })?;
    let (w, h) = img.dimensions();
    let mut labels: Vec<(String, f32)> = Vec::new();
    let vectors = space_vectors(col, enc, Modal::Image, src, |id| {
        let mut out = enc.embed_images_as(id, std::slice::from_ref(&img))?;
        let (v, l) = out.pop().unwrap_or_default();
        if !l.is_empty() {
            labels = l;
        }
        Ok(vec![v])
    })?;
    let names: Vec<&str> = labels.iter().take(5).map(|(l, _)| l.as_str()).collect();
    let scores: Vec<f32> = labels.iter().take(5).map(|(_, p)| (p * 1e4).round() / 1e4).collect();
    let encoders: Vec<String> = col.spec.spaces.iter().filter_map(|s| enc.for_space(s, Modal::Image)).collect();
    let mut payload = json!({
        "source": src, "modality": "image", "media_type": mime, "content_sha256": sha,
        "chunk": 0, "chunks": 1, "width": w, "height": h,
        "labels": names, "label_scores": scores, "encoder": encoders.join(" "),
    });
    if let Some(text) = ocr(enc, &img, src)? {
        payload["ocr"] = text.into();
    }
    Ok(vec![Item { id: item_id(sha, 0), vectors: vectors.into_iter().next().unwrap_or_default(), payload }])
}

/// The text in an image (None: OCR off, or nothing confidently read). A recognition
/// that runs past `ingest.ocr_timeout_ms` fails the file with a message naming it.
fn ocr(enc: &Encoders, img: &agentdb_models::image::RgbImage, src: &str) -> Result<Option<String>, ApiError> {
    let Some(o) = &enc.ocr else { return Ok(None) };
    let span = tracing::info_span!("ingest.ocr", words = tracing::field::Empty).entered();
    let t = o.read(img).map_err(|e| crate::status::prefixed(src, e.into()))?;
    span.record("words", t.words);
    Ok((!t.text.is_empty()).then_some(t.text))
}

/// Words per transcript passage: segments are grouped up to this size before embedding.
const PASSAGE_WORDS: usize = 60;

fn speech_items(f: &File) -> Result<Vec<Item>, ApiError> {
    let File { col, enc, req, sha, mime, lim } = *f;
    let src = &req.source;
    let t = tracing::info_span!("ingest.decode", media_type = mime, transcribe = true)
        .in_scope(|| transcribe(enc, &req.content, lim.audio).map_err(|e| crate::status::prefixed(src, e)))?;
    let passages = agentdb_models::speech::passages(&t.segments, PASSAGE_WORDS);
    if passages.is_empty() {
        return Err(Status::invalid_argument(format!(
            "{src}: no speech found in {:.1} s of audio; non-speech sound has no text-space vector with the \
             installed models (a CLAP model would give it one)",
            t.seconds
        ))
        .into());
    }
    let texts: Vec<String> = passages.iter().map(|p| p.2.clone()).collect();
    let vectors = space_vectors(col, enc, Modal::Speech, src, |id| enc.embed_texts_as(id, texts.clone()))?;
    let n = passages.len();
    let encoder = enc.speech_id().unwrap_or_default();
    Ok(passages
        .into_iter()
        .zip(vectors)
        .enumerate()
        .map(|(i, ((a, b, text), vectors))| Item {
            id: item_id(sha, i),
            vectors,
            payload: json!({
                "source": src, "modality": "speech", "media_type": mime, "content_sha256": sha,
                "chunk": i, "chunks": n, "start_s": (a * 100.0).round() / 100.0, "end_s": (b * 100.0).round() / 100.0,
                "text": text, "duration_s": (t.seconds * 100.0).round() / 100.0, "encoder": encoder,
            }),
        })
        .collect())
}

/// A video: one item per sampled keyframe (image bridge) and one per transcript passage
/// of its audio track (speech bridge), all under the same source, so a search fuses
/// what is seen with what is said.
fn video_items(f: &File) -> Result<Vec<Item>, ApiError> {
    let File { col, enc, req, sha, mime, lim } = *f;
    let src = &req.source;
    let v = tracing::info_span!("ingest.decode", media_type = mime)
        .in_scope(|| decode_video(&req.content, lim).map_err(|e| crate::status::prefixed(src, e)))?;
    let title = v.title.clone();
    let mut parts: Vec<(BTreeMap<String, Vec<f32>>, serde_json::Value)> = Vec::new();
    if !v.keyframes.is_empty() {
        let images: Vec<_> = v.keyframes.iter().map(|k| k.image.clone()).collect();
        let mut labels: Vec<Vec<(String, f32)>> = vec![Vec::new(); images.len()];
        let vectors = space_vectors(col, enc, Modal::Image, src, |id| {
            let out = enc.embed_images_as(id, &images)?;
            if out.iter().any(|(_, l)| !l.is_empty()) {
                labels = out.iter().map(|(_, l)| l.clone()).collect();
            }
            Ok(out.into_iter().map(|(v, _)| v).collect())
        })?;
        let encoder: Vec<String> = col.spec.spaces.iter().filter_map(|s| enc.for_space(s, Modal::Image)).collect();
        let encoder = encoder.join(" ");
        for ((k, l), vectors) in v.keyframes.iter().zip(&labels).zip(vectors) {
            let labels: Vec<&str> = l.iter().take(5).map(|(l, _)| l.as_str()).collect();
            let mut p = json!({
                "modality": "keyframe", "t_s": (k.t * 100.0).round() / 100.0, "scene_change": k.scene_change,
                "width": v.width, "height": v.height, "labels": labels, "encoder": encoder,
            });
            if enc.ocr_keyframes {
                if let Some(text) = ocr(enc, &k.image, src)? {
                    p["ocr"] = text.into();
                }
            }
            parts.push((vectors, p));
        }
    }
    let mut speech_note = "no audio track";
    if let Some((samples, rate)) = &v.audio {
        let t = enc.speech()?.transcribe_at(samples, *rate).map_err(|e| crate::status::prefixed(src, e.into()))?;
        let passages = agentdb_models::speech::passages(&t.segments, PASSAGE_WORDS);
        speech_note = if passages.is_empty() { "no speech in the audio track" } else { "" };
        if !passages.is_empty() {
            let texts: Vec<String> = passages.iter().map(|p| p.2.clone()).collect();
            let vectors = space_vectors(col, enc, Modal::Speech, src, |id| enc.embed_texts_as(id, texts.clone()))?;
            let encoder = enc.speech_id().unwrap_or_default();
            for ((a, b, text), vectors) in passages.into_iter().zip(vectors) {
                parts.push((
                    vectors,
                    json!({
                        "modality": "speech", "start_s": (a * 100.0).round() / 100.0,
                        "end_s": (b * 100.0).round() / 100.0, "text": text, "encoder": encoder,
                    }),
                ));
            }
        }
    }
    if parts.is_empty() {
        return Err(
            Status::invalid_argument(format!("{src}: nothing to index: no frames decoded and {speech_note}")).into()
        );
    }
    let n = parts.len();
    Ok(parts
        .into_iter()
        .enumerate()
        .map(|(i, (vectors, mut p))| {
            let common = json!({
                "source": src, "media_type": mime, "content_sha256": sha, "chunk": i, "chunks": n,
                "duration_s": (v.duration * 100.0).round() / 100.0, "container": v.container, "video_codec": v.video_codec,
            });
            if let (Some(o), Some(c)) = (p.as_object_mut(), common.as_object()) {
                o.extend(c.clone());
                if let Some(t) = &title {
                    o.insert("title".into(), json!(t));
                }
            }
            Item { id: item_id(sha, i), vectors, payload: p }
        })
        .collect())
}

/// Decode a video with the configured limits and keyframe sampling (blocking).
pub fn decode_video(bytes: &[u8], lim: IngestLimits) -> Result<agentdb_models::video::Video, ApiError> {
    let o = lim.video;
    Ok(agentdb_models::video::decode_video(bytes, o.limits, o.interval_s, o.scene_threshold)?)
}
