//! Ingestion of one file: detect the media type from its bytes, decode, split, embed
//! into the collection's spaces, and upsert atomically (one WAL record per file), so a
//! killed run never leaves half a file behind and a re-run skips it.

use crate::encoders::{Encoders, Modal};
use crate::sound::SoundLabels;
use crate::Target;
use crate::{invalid, Error, Observer, Result};
use agentdb_engine::payload::ItemPayload;
use agentdb_engine::Item;
use agentdb_models::{chunk_text, detect, markdown_to_text, registry::sha256_hex, Modality};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy)]
pub struct IngestLimits {
    pub max_file_bytes: usize,
    pub chunk_tokens: usize,
    pub chunk_overlap: usize,
    pub image: agentdb_models::ImageLimits,
    pub audio: agentdb_models::AudioLimits,
    pub video: VideoOptions,
    /// Keep the file's bytes with the collection (`Collection::put_media`).
    pub keep_media: bool,
}

/// The defaults of `[ingest]` and `[limits]` (what a server without configuration uses).
impl Default for IngestLimits {
    fn default() -> Self {
        let cfg = crate::config::IngestConfig::default();
        IngestLimits {
            max_file_bytes: cfg.max_file_bytes,
            chunk_tokens: cfg.chunk_tokens,
            chunk_overlap: cfg.chunk_overlap,
            image: Default::default(),
            audio: Default::default(),
            keep_media: cfg.keep_media,
            video: VideoOptions {
                limits: agentdb_models::video::VideoLimits { max_frames: cfg.max_keyframes, ..Default::default() },
                interval_s: cfg.keyframe_interval_secs,
                scene_threshold: cfg.scene_threshold,
            },
        }
    }
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

/// What ingesting one file did.
#[derive(Debug)]
pub struct IngestOutcome {
    pub source: String,
    pub content_sha256: String,
    /// The detected type ("" when it could not be detected).
    pub media_type: String,
    /// Items written (0 when skipped or failed).
    pub items: u32,
    pub status: IngestStatus,
}

#[derive(Debug)]
pub enum IngestStatus {
    Ingested,
    /// The same bytes are already in the collection.
    Skipped,
    Failed(Error),
}

impl IngestStatus {
    /// `ingested`, `skipped` or `failed`, as results and metrics name them.
    pub fn as_str(&self) -> &'static str {
        match self {
            IngestStatus::Ingested => "ingested",
            IngestStatus::Skipped => "skipped",
            IngestStatus::Failed(_) => "failed",
        }
    }
}

/// Ingest the file `source` with these bytes into `col`, telling `observer` what was
/// written. Never fails as a call: a file that cannot be ingested is an outcome.
pub fn ingest_file(
    col: &dyn Target,
    enc: &Encoders,
    source: &str,
    content: &[u8],
    lim: IngestLimits,
    observer: &dyn Observer,
) -> IngestOutcome {
    let sha = sha256_hex(content);
    let mut res = IngestOutcome {
        source: source.to_string(),
        content_sha256: sha.clone(),
        media_type: String::new(),
        items: 0,
        status: IngestStatus::Ingested,
    };
    let span = tracing::info_span!(
        "ingest.file",
        source = %source,
        agentdb.collection = %col.name(),
        bytes = content.len(),
        media_type = tracing::field::Empty,
        items = tracing::field::Empty,
        status = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    let _entered = span.enter();
    let file = File { col, enc, source, content, sha: &sha, mime: "", lim };
    if let Err(e) = ingest_inner(file, observer, &mut res) {
        res.status = IngestStatus::Failed(e);
        span.record("otel.status_code", "error");
    }
    span.record("media_type", res.media_type.as_str());
    span.record("items", res.items);
    span.record("status", res.status.as_str());
    res
}

fn ingest_inner(mut file: File, observer: &dyn Observer, res: &mut IngestOutcome) -> Result<()> {
    let File { col, source: src, content, sha, lim, .. } = file;
    if content.len() > lim.max_file_bytes {
        return Err(invalid!("{src}: {} bytes exceeds ingest.max_file_bytes ({})", content.len(), lim.max_file_bytes));
    }
    if content.is_empty() {
        return Err(invalid!("{src}: file is empty"));
    }
    let Some(media) = detect(content) else {
        return Err(invalid!("{src}: unrecognised content (not text and not a known image, audio or video format)"));
    };
    res.media_type = media.mime.to_string();
    // The original bytes first (content-addressed, a no-op when kept already), so no
    // stored item names a file that is not kept; files ingested before keeping was on
    // are kept when they come again.
    if lim.keep_media {
        col.put_media(content)?;
    }
    // Already ingested when the first chunk is there and so is the last one it names
    // (a file is written in one request unless it has more chunks than limits.max_batch).
    if let Some(first) = col.get(&[item_id(sha, 0)])?.pop() {
        let n = first.payload["chunks"].as_u64().unwrap_or(1) as usize;
        if !col.get(&[item_id(sha, n.saturating_sub(1))])?.is_empty() {
            res.status = IngestStatus::Skipped;
            return Ok(());
        }
    }
    file.mime = media.mime;
    let items = match media.modality {
        Modality::Text => text_items(&file)?,
        Modality::Image => image_items(&file)?,
        Modality::Audio => speech_items(&file)?,
        Modality::Video => video_items(&file)?,
    };
    let n = items.len();
    let _upsert = tracing::info_span!("ingest.upsert", items = n).entered();
    for batch in items.chunks(col.max_batch()) {
        let ids = col.upsert(batch.to_vec())?;
        observer.items_written(col.name(), batch, &ids);
    }
    res.items = n as u32;
    res.status = IngestStatus::Ingested;
    Ok(())
}

/// One file being ingested: where it goes, what embeds it, its bytes and type.
#[derive(Clone, Copy)]
struct File<'a> {
    col: &'a dyn Target,
    enc: &'a Encoders,
    source: &'a str,
    content: &'a [u8],
    sha: &'a str,
    mime: &'a str,
    lim: IngestLimits,
}

/// One vector per space of the collection, from the encoder of `modal` in that space's
/// family (`embed` runs once per family). A space no loaded encoder of this modality
/// can fill makes the file fail with a message naming it.
fn space_vectors(
    col: &dyn Target,
    enc: &Encoders,
    modal: Modal,
    src: &str,
    mut embed: impl FnMut(&str) -> Result<Vec<Vec<f32>>>,
) -> Result<Vec<BTreeMap<String, Vec<f32>>>> {
    let mut by_family: BTreeMap<String, Vec<Vec<f32>>> = BTreeMap::new();
    let mut out: Vec<BTreeMap<String, Vec<f32>>> = Vec::new();
    for space in &col.spec().spaces {
        let Some(id) = enc.for_space(space, modal) else {
            return Err(Error::Unavailable(format!(
                "{src}: space '{}' of collection '{}' holds vectors from {}, and no loaded {} encoder produces those \
                 (create the collection with --multimodal to get the default spaces)",
                space.name,
                col.name(),
                space.encoder.as_deref().unwrap_or("no encoder (raw vectors)"),
                modal.as_str()
            )));
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

fn text_items(f: &File) -> Result<Vec<Item>> {
    let File { col, enc, source: src, content, sha, mime, lim } = *f;
    let text_svc = enc.text()?;
    let decode = tracing::info_span!("ingest.decode", media_type = mime, chunks = tracing::field::Empty).entered();
    let raw = std::str::from_utf8(content).map_err(|e| invalid!("{src}: invalid UTF-8: {e}"))?;
    let text = if mime == "text/markdown" { markdown_to_text(raw) } else { raw.to_string() };
    let chunks = chunk_text(text_svc.encoder.tokenizer(), &text, lim.chunk_tokens, lim.chunk_overlap)?;
    if chunks.is_empty() {
        return Err(invalid!("{src}: no text to index"));
    }
    decode.record("chunks", chunks.len());
    drop(decode);
    let texts: Vec<String> = chunks.iter().map(|c| c.text.clone()).collect();
    let vectors = space_vectors(col, enc, Modal::Text, src, |id| enc.embed_texts_as(id, texts.clone()))?;
    let n = chunks.len();
    let encoder = col.spec().spaces.iter().filter_map(|s| enc.for_space(s, Modal::Text)).collect::<Vec<_>>().join(" ");
    Ok(chunks
        .into_iter()
        .zip(vectors)
        .map(|(c, vectors)| Item {
            id: item_id(sha, c.index),
            vectors,
            payload: ItemPayload {
                chunk: c.index,
                start: Some(c.start),
                end: Some(c.end),
                text: Some(c.text),
                encoder: encoder.clone(),
                ..f.payload("text", n)
            }
            .to_value(),
        })
        .collect())
}

fn image_items(f: &File) -> Result<Vec<Item>> {
    let File { col, enc, source: src, content, sha, mime, lim } = *f;
    let img = tracing::info_span!("ingest.decode", media_type = mime)
        .in_scope(|| agentdb_models::decode_image(content, lim.image).map_err(|e| Error::from(e).about(src)))?;
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
    let names: Vec<String> = labels.iter().take(5).map(|(l, _)| l.clone()).collect();
    let scores: Vec<f32> = labels.iter().take(5).map(|(_, p)| (p * 1e4).round() / 1e4).collect();
    let encoders: Vec<String> = col.spec().spaces.iter().filter_map(|s| enc.for_space(s, Modal::Image)).collect();
    let read = ocr(enc, &img, src)?;
    // Text read in the image is text: it gets a second part, embedded like a text chunk,
    // where every space has a text encoder (docs/SEARCH.md, "Text in images").
    let text_encoders: Option<Vec<String>> = col.spec().spaces.iter().map(|s| enc.for_space(s, Modal::Text)).collect();
    let dense_ocr = read.clone().filter(|t| worth_embedding(t)).zip(text_encoders);
    let parts = if dense_ocr.is_some() { 2 } else { 1 };
    let payload = ItemPayload {
        width: Some(w),
        height: Some(h),
        labels: Some(names),
        label_scores: Some(scores),
        encoder: encoders.join(" "),
        ocr: read,
        ..f.payload("image", parts)
    };
    let mut items = vec![Item {
        id: item_id(sha, 0),
        vectors: vectors.into_iter().next().unwrap_or_default(),
        payload: payload.to_value(),
    }];
    if let Some((text, encoders)) = dense_ocr {
        let vectors = space_vectors(col, enc, Modal::Text, src, |id| enc.embed_texts_as(id, vec![text.clone()]))?;
        let payload = ItemPayload {
            chunk: 1,
            width: Some(w),
            height: Some(h),
            encoder: encoders.join(" "),
            ocr: Some(text),
            ..f.payload("ocr", parts)
        };
        items.push(Item {
            id: item_id(sha, 1),
            vectors: vectors.into_iter().next().unwrap_or_default(),
            payload: payload.to_value(),
        });
    }
    Ok(items)
}

/// Whether OCR text says enough to embed: at least two words with letters in them (a
/// lone number or stray glyphs stay in the keyword index only).
fn worth_embedding(text: &str) -> bool {
    text.split_whitespace().filter(|w| w.chars().filter(|c| c.is_alphabetic()).count() >= 2).count() >= 2
}

/// The text in an image (None: OCR off, or nothing confidently read). A recognition
/// that runs past `ingest.ocr_timeout_ms` fails the file with a message naming it.
fn ocr(enc: &Encoders, img: &agentdb_models::image::RgbImage, src: &str) -> Result<Option<String>> {
    let Some(o) = &enc.ocr else { return Ok(None) };
    let span = tracing::info_span!("ingest.ocr", words = tracing::field::Empty).entered();
    let t = o.read(img).map_err(|e| Error::from(e).about(src))?;
    span.record("words", t.words);
    Ok((!t.text.is_empty()).then_some(t.text))
}

/// Words per transcript passage: segments are grouped up to this size before embedding.
const PASSAGE_WORDS: usize = 60;

fn speech_items(f: &File) -> Result<Vec<Item>> {
    let File { col, enc, source: src, content, sha, mime, lim } = *f;
    let (audio, t) = tracing::info_span!("ingest.decode", media_type = mime, transcribe = true).in_scope(|| {
        let audio = agentdb_models::audio::decode_audio(content, lim.audio).map_err(|e| Error::from(e).about(src))?;
        let t = enc.speech()?.transcribe_at(&audio.samples, audio.rate).map_err(|e| Error::from(e).about(src))?;
        Ok::<_, Error>((audio, t))
    })?;
    let passages = agentdb_models::speech::passages(&t.segments, PASSAGE_WORDS);
    if passages.is_empty() {
        return sound_items(f, &audio);
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
            payload: ItemPayload {
                chunk: i,
                start_s: Some(centi(a)),
                end_s: Some(centi(b)),
                text: Some(text),
                duration_s: Some(centi(t.seconds)),
                encoder: encoder.clone(),
                ..f.payload("speech", n)
            }
            .to_value(),
        })
        .collect())
}

/// A recording without speech: one `sound` item, findable by what it sounds like and by
/// its description (length, sample rate, channels, codec, file name). With the
/// sound-event classifier loaded (`models.sound`, YAMNet), its labels go into `sound`
/// (keyword index) and `labels`, and its vector is the text embedding of "the sound of
/// {labels}" (see [`SoundLabels`]). Without it, Whisper runs over the recording without
/// the VAD gate and only its bracketed sound descriptions are kept ([`heard`]); the
/// vector then embeds the description.
fn sound_items(f: &File, audio: &agentdb_models::audio::Audio) -> Result<Vec<Item>> {
    let File { col, enc, source: src, sha, .. } = *f;
    let seconds = audio.seconds() as f32;
    let labels = crate::sound::sound_events(enc, &audio.samples, audio.rate, src)?;
    let heard = match &labels {
        Some(l) => Some(l.heard.clone()),
        None => {
            let segments = tracing::info_span!("ingest.hear")
                .in_scope(|| enc.speech()?.transcribe_ungated(&audio.samples, audio.rate).map_err(Error::from))
                .map_err(|e| e.about(src))?;
            tracing::debug!(source = src, whisper = ?segments.iter().map(|s| s.text.as_str()).collect::<Vec<_>>(), "sound without speech");
            heard(&segments)
        }
    };
    let channels = match audio.channels {
        1 => "mono".to_string(),
        2 => "stereo".to_string(),
        n => format!("{n} channels"),
    };
    let mut text = format!(
        "sound recording, {:.1} seconds, {} kHz {channels}, {}",
        seconds,
        (audio.rate as f32 / 100.0).round() / 10.0,
        audio.format
    );
    if let Some(h) = &heard {
        text.push_str(&format!(", sounds like: {h}"));
    }
    // What the vector embeds: the sound's labels where the classifier named them.
    let embedded = labels.as_ref().map_or_else(|| text.clone(), SoundLabels::embedded);
    let encoder = sound_encoders(f, if labels.is_some() { enc.sound_id() } else { enc.speech_id() });
    let vectors =
        space_vectors(col, enc, Modal::Speech, src, |id| sound_vector(enc, id, &embedded, &audio.samples, audio.rate))?;
    let (names, scores) = labels.map(|l| (l.names, l.scores)).unzip();
    Ok(vectors
        .into_iter()
        .map(|vectors| Item {
            id: item_id(sha, 0),
            vectors,
            payload: ItemPayload {
                text: Some(text.clone()),
                sound: heard.clone(),
                labels: names.clone(),
                label_scores: scores.clone(),
                duration_s: Some(centi(seconds)),
                sample_rate: Some(audio.rate),
                channels: Some(audio.channels),
                audio_codec: Some(audio.format.clone()),
                encoder: encoder.clone(),
                ..f.payload("sound", 1)
            }
            .to_value(),
        })
        .collect())
}

/// A sound's vector from encoder `id`: its waveform where the encoder hears (a CLAP's
/// audio tower), else the text `embedded` (its labels or description).
fn sound_vector(enc: &Encoders, id: &str, embedded: &str, samples: &[f32], rate: u32) -> Result<Vec<Vec<f32>>> {
    if enc.hears(id) {
        Ok(vec![enc.embed_audio_as(id, samples, rate)?])
    } else {
        enc.embed_texts_as(id, vec![embedded.to_string()])
    }
}

/// A sound's payload `encoder`: `text` (the bridge that named it in the text space) and
/// each encoder of the collection's spaces that hears its waveform, once each.
fn sound_encoders(f: &File, text: Option<String>) -> String {
    let mut ids: Vec<String> = text.into_iter().collect();
    for id in f.col.spec().spaces.iter().filter_map(|s| f.enc.for_space(s, Modal::Speech)) {
        if f.enc.hears(&id) && !ids.contains(&id) {
            ids.push(id);
        }
    }
    ids.join(" ")
}

/// The usable part of what Whisper writes for a sound without speech: its bracketed
/// sound descriptions (`[bell ringing]`, `(phone rings)`, `♪`), brackets removed.
/// Anything else it writes there is a guess at words that were never said, and is
/// dropped.
pub fn heard(segments: &[agentdb_models::whisper::Segment]) -> Option<String> {
    let mut out: Vec<String> = Vec::new();
    for s in segments {
        let t = s.text.trim();
        let inner = if let Some(x) = t.strip_prefix('[').and_then(|x| x.strip_suffix(']')) {
            x
        } else if let Some(x) = t.strip_prefix('(').and_then(|x| x.strip_suffix(')')) {
            x
        } else if t.chars().all(|c| c == '♪' || c == '♫' || c.is_whitespace()) && !t.is_empty() {
            "music"
        } else {
            continue;
        };
        let inner = inner.trim().to_lowercase();
        if !inner.is_empty() && !out.contains(&inner) {
            out.push(inner);
        }
    }
    (!out.is_empty()).then(|| out.join("; "))
}

/// A video: one item per sampled keyframe (image bridge) and one per transcript passage
/// of its audio track (speech bridge), all under the same source, so a search fuses
/// what is seen with what is said.
fn video_items(f: &File) -> Result<Vec<Item>> {
    let File { col, enc, source: src, content, sha, mime, lim } = *f;
    let v = tracing::info_span!("ingest.decode", media_type = mime)
        .in_scope(|| decode_video(content, lim).map_err(|e| e.about(src)))?;
    // Each part's vectors and payload (its place among the parts and the video's
    // properties are set below).
    let mut parts: Vec<(BTreeMap<String, Vec<f32>>, ItemPayload)> = Vec::new();
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
        let encoder: Vec<String> = col.spec().spaces.iter().filter_map(|s| enc.for_space(s, Modal::Image)).collect();
        let encoder = encoder.join(" ");
        for ((k, l), vectors) in v.keyframes.iter().zip(&labels).zip(vectors) {
            let p = ItemPayload {
                t_s: Some(centi(k.t)),
                scene_change: Some(k.scene_change),
                width: Some(v.width),
                height: Some(v.height),
                labels: Some(l.iter().take(5).map(|(l, _)| l.clone()).collect()),
                encoder: encoder.clone(),
                ocr: if enc.ocr_keyframes { ocr(enc, &k.image, src)? } else { None },
                ..f.payload("keyframe", 0)
            };
            parts.push((vectors, p));
        }
    }
    let mut speech_note = "no audio track";
    if let Some((samples, rate)) = &v.audio {
        let t = enc.speech()?.transcribe_at(samples, *rate).map_err(|e| Error::from(e).about(src))?;
        let passages = agentdb_models::speech::passages(&t.segments, PASSAGE_WORDS);
        speech_note = if passages.is_empty() { "no speech in the audio track" } else { "" };
        // A soundtrack without speech (an engine, a dog, music) is a part too, described
        // by its sound-event labels like a recording; a silent one is not.
        let labels = if passages.is_empty() { crate::sound::sound_events(enc, samples, *rate, src)? } else { None };
        if let Some(labels) = labels.filter(|l| !l.is_silence()) {
            let embedded = labels.embedded();
            let encoder = sound_encoders(f, enc.sound_id());
            let vectors =
                space_vectors(col, enc, Modal::Speech, src, |id| sound_vector(enc, id, &embedded, samples, *rate))?;
            for vectors in vectors {
                let p = ItemPayload {
                    text: Some(format!("soundtrack, sounds like: {}", labels.heard)),
                    sound: Some(labels.heard.clone()),
                    labels: Some(labels.names.clone()),
                    label_scores: Some(labels.scores.clone()),
                    encoder: encoder.clone(),
                    ..f.payload("sound", 0)
                };
                parts.push((vectors, p));
            }
        }
        if !passages.is_empty() {
            let texts: Vec<String> = passages.iter().map(|p| p.2.clone()).collect();
            let vectors = space_vectors(col, enc, Modal::Speech, src, |id| enc.embed_texts_as(id, texts.clone()))?;
            let encoder = enc.speech_id().unwrap_or_default();
            for ((a, b, text), vectors) in passages.into_iter().zip(vectors) {
                let p = ItemPayload {
                    start_s: Some(centi(a)),
                    end_s: Some(centi(b)),
                    text: Some(text),
                    encoder: encoder.clone(),
                    ..f.payload("speech", 0)
                };
                parts.push((vectors, p));
            }
        }
    }
    if parts.is_empty() {
        return Err(invalid!("{src}: nothing to index: no frames decoded and {speech_note}"));
    }
    let n = parts.len();
    Ok(parts
        .into_iter()
        .enumerate()
        .map(|(i, (vectors, mut p))| {
            p.chunk = i;
            p.chunks = n;
            p.duration_s = Some(centi(v.duration));
            p.container = Some(v.container.clone());
            p.video_codec = Some(v.video_codec.clone());
            p.title = v.title.clone();
            Item { id: item_id(sha, i), vectors, payload: p.to_value() }
        })
        .collect())
}

/// Rounded to hundredths (times and durations in payloads).
fn centi(x: f32) -> f32 {
    (x * 100.0).round() / 100.0
}

impl File<'_> {
    /// What every item of this file carries: its source, type and hash, its modality
    /// and how many items the file has.
    fn payload(&self, modality: &str, chunks: usize) -> ItemPayload {
        ItemPayload {
            source: self.source.to_string(),
            modality: modality.to_string(),
            media_type: self.mime.to_string(),
            content_sha256: self.sha.to_string(),
            chunks,
            ..Default::default()
        }
    }
}

/// Decode a video with the configured limits and keyframe sampling (blocking).
pub fn decode_video(bytes: &[u8], lim: IngestLimits) -> Result<agentdb_models::video::Video> {
    let o = lim.video;
    Ok(agentdb_models::video::decode_video(bytes, o.limits, o.interval_s, o.scene_threshold)?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn ocr_text_worth_embedding_has_two_words() {
        assert!(super::worth_embedding("CLOSED FOR RENOVATION"));
        assert!(super::worth_embedding("Guest WiFi"));
        assert!(!super::worth_embedding("2291"));
        assert!(!super::worth_embedding("INVOICE 2291"));
        assert!(!super::worth_embedding("a | ~ ."));
    }
}
