//! Server-side ingestion of one file: detect the media type from its bytes, decode,
//! split, embed into the collection's spaces, and upsert atomically (one WAL record per
//! file), so a killed run never leaves half a file behind and a re-run skips it.

use crate::encoders::Encoders;
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
    match ingest_inner(col, enc, req, &sha, lim, &mut res) {
        Ok(()) => {}
        Err(e) => {
            let st = crate::status::to_status(e);
            res.status = "failed".into();
            res.error = st.message().to_string();
        }
    }
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
    match media.modality {
        Modality::Text => {}
        other => {
            return Err(Status::failed_precondition(format!(
                "{src}: {} ({}) needs an {} encoder, and none is installed in this build yet",
                media.mime,
                other.as_str(),
                other.as_str()
            ))
            .into())
        }
    }
    let text_svc = enc.text()?;
    let encoder_id = text_svc.encoder_id();
    let space = col.spec.space_for_encoder(&encoder_id).ok_or_else(|| {
        Status::failed_precondition(format!(
            "collection '{}' has no space bound to the text encoder (create it with --multimodal)",
            col.name()
        ))
    })?;
    if col.spec.spaces.len() > 1 {
        return Err(Status::failed_precondition(format!(
            "collection '{}' has spaces besides '{}'; text ingestion fills only the text space",
            col.name(),
            space.name
        ))
        .into());
    }
    let raw = std::str::from_utf8(&req.content)
        .map_err(|e| Status::invalid_argument(format!("{src}: invalid UTF-8: {e}")))?;
    let text = if media.mime == "text/markdown" { markdown_to_text(raw) } else { raw.to_string() };
    let chunks = chunk_text(text_svc.encoder.tokenizer(), &text, lim.chunk_tokens, lim.chunk_overlap)?;
    if chunks.is_empty() {
        return Err(Status::invalid_argument(format!("{src}: no text to index")).into());
    }
    let vectors = text_svc.batcher.submit_many_blocking(chunks.iter().map(|c| c.text.clone()).collect())?;
    let n = chunks.len();
    let items: Vec<Item> = chunks
        .into_iter()
        .zip(vectors)
        .map(|(c, v)| Item {
            id: item_id(sha, c.index),
            vectors: BTreeMap::from([(space.name.clone(), v)]),
            payload: json!({
                "source": src, "modality": "text", "media_type": media.mime, "content_sha256": sha,
                "chunk": c.index, "chunks": n, "start": c.start, "end": c.end, "text": c.text,
            }),
        })
        .collect();
    for batch in items.chunks(col.options().limits.max_batch.max(1)) {
        col.upsert(batch.to_vec())?;
    }
    res.items = n as u32;
    res.status = "ingested".into();
    Ok(())
}
