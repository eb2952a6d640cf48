//! The `[models]` and `[ingest]` sections of the server's configuration: which encoders
//! to load and how files are split, decoded and read.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelsConfig {
    /// Installed models folder (default $AGENTDB_MODELS_DIR or ~/.cache/agentdb/models).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    /// Text encoder to load from that folder ("" = none).
    pub text: String,
    /// Kernels of the text encoder on the CPU: `auto` (ONNX Runtime when the set-up built
    /// the model's ONNX graph, else Candle), `onnx` (ONNX Runtime, or fail to load) or
    /// `candle`. Same model and encoder id either way.
    pub text_backend: String,
    /// Image classifier for the image -> text-space label bridge ("" = none; needs `text`).
    pub image: String,
    /// Speech recogniser for the speech -> transcript -> text-space bridge ("" = none; needs `text`).
    pub speech: String,
    /// Voice activity detector gating the speech recogniser.
    pub vad: String,
    /// Sound-event classifier for recordings without speech (YAMNet, AudioSet's 521
    /// classes): their labels are searched by keyword and embedded by the text encoder
    /// ("" = none: such a recording is found by its properties and file name only).
    pub sound: String,
    /// A CLIP model folder (Hugging Face layout + agentdb-model.json; a name under `dir`
    /// or an absolute path), "" = none. Multimodal collections then get a `clip` space.
    pub clip: String,
    /// A user's CLAP folder (`onnx-clap`: audio and text towers as ONNX graphs, see
    /// docs/MODELS.md; a name under `dir` or an absolute path), "" = none. Multimodal
    /// collections then get a `clap` space: sounds embedded from their waveform, texts and
    /// transcripts by its text tower, images by their labels' caption.
    pub clap: String,
    /// A user's ONNX image encoder folder (`onnx-image` manifest and onnx-encoder.json, see
    /// docs/MODELS.md; a name under `dir` or an absolute path), "" = none. Collections use it
    /// through a space bound to it: `collection create NAME --space images:MODEL_NAME`.
    pub onnx_image: String,
    /// Largest image batch. On the CPU one image at a time is fastest (batch 8 ran at
    /// ~0.8x the throughput of batch 1 in `agentdb bench media`, docs/PERFORMANCE.md).
    pub image_max_batch: usize,
    /// Dynamic batcher: largest batch, longest wait for more requests, queue bound.
    pub max_batch: usize,
    pub max_wait_ms: f64,
    pub queue: usize,
    /// Load the models when the server starts (`true`), or when a request first needs
    /// one (`false`, the default: a server that only stores and searches vectors never
    /// loads them and stays small).
    pub preload: bool,
}

impl Default for ModelsConfig {
    fn default() -> Self {
        ModelsConfig {
            dir: None,
            text: "all-minilm-l6-v2".into(),
            text_backend: "auto".into(),
            image: "efficientnet-lite0".into(),
            speech: "whisper-base".into(),
            vad: "silero-vad".into(),
            sound: "yamnet".into(),
            clip: String::new(),
            clap: String::new(),
            onnx_image: String::new(),
            image_max_batch: 1,
            max_batch: 32,
            max_wait_ms: 2.0,
            queue: 1024,
            preload: false,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Largest file accepted by ingestion (bytes; also bounded by limits.max_message_bytes).
    pub max_file_bytes: usize,
    /// Text chunk size and overlap, in tokens of the text encoder.
    pub chunk_tokens: usize,
    pub chunk_overlap: usize,
    /// Files processed at once per ingest stream.
    pub concurrency: usize,
    /// Video: a keyframe every this many seconds, plus one at each scene change
    /// (mean grey-level difference above `scene_threshold`, 0..1), at most `max_keyframes`.
    pub keyframe_interval_secs: f32,
    pub scene_threshold: f32,
    pub max_keyframes: usize,
    /// Read the text in images and video keyframes with Tesseract (into the keyword
    /// index's `ocr` field); off, or no language data installed: no OCR.
    pub ocr: bool,
    /// Also OCR video keyframes (each costs a recognition).
    pub ocr_keyframes: bool,
    /// Tesseract languages (`eng`, `eng+deu`, ...; needs tesseract-ocr-<lang>).
    pub ocr_languages: String,
    /// Folder with the `.traineddata` files ("" = Debian's locations).
    pub ocr_tessdata: String,
    /// Words recognised below this confidence (0-100) are dropped.
    pub ocr_min_confidence: f32,
    /// Recognition deadline per image; past it the file fails with a message naming it.
    pub ocr_timeout_ms: u64,
    /// Images above this many pixels are reduced before recognition (bounds its work).
    pub ocr_max_pixels: u64,
    /// Keep each ingested file's bytes beside its collection (content-addressed,
    /// encrypted when the data directory is) so clients can show what a hit came from:
    /// `GET /v1/collections/NAME/media/SHA256`. Off: only the items are stored.
    pub keep_media: bool,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            max_file_bytes: 32 << 20,
            chunk_tokens: 200,
            chunk_overlap: 32,
            concurrency: 2,
            keyframe_interval_secs: 10.0,
            scene_threshold: 0.3,
            max_keyframes: 256,
            ocr: true,
            ocr_keyframes: true,
            ocr_languages: "eng".into(),
            ocr_tessdata: String::new(),
            ocr_min_confidence: 60.0,
            ocr_timeout_ms: 10_000,
            ocr_max_pixels: 8_000_000,
            keep_media: true,
        }
    }
}
