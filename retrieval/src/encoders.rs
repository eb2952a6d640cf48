//! The encoders this server loaded at start (from the models folder the set-up fills),
//! each behind the [`Encoder`] trait, and which of them embeds a query or an ingested
//! file of one modality into a space.

use crate::{Error, Result};
use agentdb_engine::{embedding_family, SpaceSpec};
use agentdb_models::image::RgbImage;
use agentdb_models::{
    registry, BatcherConfig, ImageService, LabelBridge, ModelInfo, SpeechService, TextEncoder, TextService,
};
use std::path::PathBuf;
use std::sync::Arc;

use crate::towers::{ClapEnc, ClipEnc, ImageBridge, OnnxImageEnc, SpeechBridge, TextEnc};
pub use crate::towers::{Encoder, Labels, Modal};

/// Which encoders run on which GPU (`[gpu]` settings and the selected device).
#[derive(Debug, Clone)]
pub struct GpuChoice {
    pub ordinal: usize,
    /// GEMM mode: fp32, tf32 or fp16.
    pub math: String,
    pub text: bool,
    pub image: bool,
}

/// The loaded encoders (what [`Encoders`] holds once they are loaded).
pub struct EncoderSet {
    pub dir: PathBuf,
    pub text: Option<Arc<TextService>>,
    /// Why the text encoder is missing, for error messages.
    pub text_problem: Option<String>,
    /// The image -> text-space bridge (EfficientNet-Lite0 labels embedded by the text encoder).
    pub image: Option<Arc<ImageService>>,
    pub image_problem: Option<String>,
    /// Speech -> transcript (Silero VAD + Whisper), embedded by the text encoder.
    pub speech: Option<Arc<SpeechService>>,
    pub speech_problem: Option<String>,
    /// Sound events (YAMNet) for recordings without speech: labels, embedded by the text
    /// encoder. None: such recordings are described by their properties only.
    pub sound: Option<Arc<agentdb_models::sound::SoundEvents>>,
    /// A user-supplied CLIP model (`models.clip`): its own space, text and image towers.
    pub clip: Option<Arc<agentdb_models::clip::Clip>>,
    /// A user-supplied CLAP (`models.clap`): its own space, audio and text towers.
    pub clap: Option<Arc<agentdb_models::clap::Clap>>,
    /// A user-supplied ONNX image encoder (`models.onnx_image`): image vectors in spaces
    /// bound to it (`collection create NAME --space images:MODEL`), searched by example.
    pub onnx_image: Option<Arc<agentdb_models::onnx::OnnxImageEncoder>>,
    /// Tesseract OCR for text in images and keyframes (`ingest.ocr`).
    pub ocr: Option<Arc<agentdb_models::ocr::Ocr>>,
    /// Also OCR video keyframes.
    pub ocr_keyframes: bool,
    /// Every loaded encoder, in the order a space's encoder is looked for: a user's
    /// CLIP and ONNX model first, then the text encoder and its image and speech bridges.
    all: Vec<Arc<dyn Encoder>>,
}

impl EncoderSet {
    pub fn none(dir: PathBuf, why: &str) -> EncoderSet {
        EncoderSet {
            dir,
            text: None,
            text_problem: Some(why.to_string()),
            image: None,
            image_problem: Some(why.to_string()),
            speech: None,
            speech_problem: Some(why.to_string()),
            sound: None,
            clip: None,
            clap: None,
            onnx_image: None,
            ocr: None,
            ocr_keyframes: false,
            all: Vec::new(),
        }
    }

    /// Load what the configuration names. A missing model is not fatal: vector
    /// collections work without it, and text operations say how to install it.
    /// With `gpu`, the text encoder and the image classifier run on that GPU (each as
    /// `gpu` allows); a GPU that fails here leaves the model on the CPU, saying why.
    pub fn load(cfg: &crate::config::ModelsConfig, gpu: Option<&GpuChoice>) -> EncoderSet {
        let dir = cfg.dir.clone().unwrap_or_else(registry::default_dir);
        if cfg.text.is_empty() {
            return EncoderSet::none(dir, "no text encoder configured (models.text is empty)");
        }
        let batch = BatcherConfig {
            max_batch: cfg.max_batch.max(1),
            max_wait: std::time::Duration::from_micros((cfg.max_wait_ms * 1000.0) as u64),
            queue: cfg.queue.max(1),
            workers: 1,
        };
        let path = dir.join(&cfg.text);
        let loaded = registry::read_model(&path).and_then(|info| TextEncoder::load(info, candle_core::Device::Cpu));
        #[allow(unused_mut)]
        let mut text = match loaded {
            Ok(enc) => enc,
            Err(e) => {
                let why =
                    format!("text encoder '{}' is not available: {e}; install models with `make models`", cfg.text);
                tracing::warn!("{why}");
                return EncoderSet::none(dir, &why);
            }
        };
        // The CPU kernels: ONNX Runtime on the graph the set-up built, or Candle.
        let onnx_dir = text.info.dir.join(agentdb_models::text::ONNX_SUBDIR);
        match cfg.text_backend.as_str() {
            "candle" => {}
            "auto" if !onnx_dir.exists() => {
                tracing::info!(
                    encoder = %text.info.encoder_id(),
                    "text encoder: no ONNX graph at {} (built by `make models`); Candle runs it",
                    onnx_dir.display()
                );
            }
            want @ ("auto" | "onnx") => match text.use_onnx(&dir) {
                Ok(label) => {
                    tracing::info!(encoder = %text.info.encoder_id(), backend = %label, "text encoder: ONNX Runtime on the CPU")
                }
                Err(e) if want == "onnx" => {
                    let why = format!("text encoder '{}': models.text_backend = \"onnx\" but {e}", cfg.text);
                    tracing::error!("{why}");
                    return EncoderSet::none(dir, &why);
                }
                Err(e) => tracing::warn!(error = %e, "text encoder: the ONNX graph cannot be used; Candle runs it"),
            },
            other => {
                let why = format!("models.text_backend '{other}' is not one of auto, onnx, candle");
                tracing::error!("{why}");
                return EncoderSet::none(dir, &why);
            }
        }
        if let Some(g) = gpu.filter(|g| g.text) {
            match text.use_gpu(g.ordinal, &g.math) {
                Ok(label) => {
                    tracing::info!(encoder = %text.info.encoder_id(), device = %label, "text encoder ready (GPU)")
                }
                Err(e) => tracing::warn!(error = %e, "text encoder: the GPU cannot run it; staying on the CPU"),
            }
        }
        if !text.on_gpu() {
            tracing::info!(encoder = %text.info.encoder_id(), device = "cpu", backend = text.cpu_backend(), "text encoder ready (CPU)");
        }
        let (image, image_problem) = if cfg.image.is_empty() {
            (None, Some("no image encoder configured (models.image is empty)".to_string()))
        } else {
            let idir = dir.join(&cfg.image);
            match registry::read_model(&idir).and_then(|info| LabelBridge::load(info, &text, Some(&idir))) {
                #[allow(unused_mut)]
                Ok(mut bridge) => {
                    if let Some(g) = gpu.filter(|g| g.image) {
                        match bridge.net.use_gpu(g.ordinal, &g.math) {
                            Ok(label) => {
                                tracing::info!(encoder = %bridge.encoder_id(), device = %label, "image encoder ready (GPU): ImageNet label bridge into the text space")
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "image encoder: the GPU cannot run it; staying on the CPU")
                            }
                        }
                    }
                    // One image at a time is fastest on the CPU; the GPU wants batches.
                    let max_batch = if bridge.net.on_gpu() {
                        cfg.max_batch.max(cfg.image_max_batch).max(1)
                    } else {
                        tracing::info!(encoder = %bridge.encoder_id(), device = "cpu", "image encoder ready (CPU): ImageNet label bridge into the text space");
                        cfg.image_max_batch.max(1)
                    };
                    let cfg = BatcherConfig { max_batch, ..batch };
                    (Some(Arc::new(ImageService::new(bridge, cfg))), None)
                }
                Err(e) => {
                    let why = format!(
                        "image encoder '{}' is not available: {e}; install models with `make models`",
                        cfg.image
                    );
                    tracing::warn!("{why}");
                    (None, Some(why))
                }
            }
        };
        let (speech, speech_problem) = match load_speech(&dir, cfg, batch) {
            Ok(s) => {
                tracing::info!(encoder = %s.encoder_id(), device = "cpu", "speech recogniser ready (CPU): Silero VAD + Whisper, transcripts into the text space");
                (Some(Arc::new(s)), None)
            }
            Err(why) => {
                tracing::warn!("{why}");
                (None, Some(why))
            }
        };
        let clip = if cfg.clip.is_empty() {
            None
        } else {
            let p = model_path(&dir, &cfg.clip);
            match registry::read_model(&p).and_then(agentdb_models::clip::Clip::load) {
                Ok(c) => {
                    tracing::info!(encoder = %c.info.encoder_id(), dim = c.dim(), device = "cpu", "CLIP ready (CPU): text and image towers in their own space");
                    Some(Arc::new(c))
                }
                Err(e) => {
                    // Configured explicitly: say so loudly, keep serving the defaults.
                    tracing::error!(path = %p.display(), error = %e, "CLIP model configured but not loaded");
                    None
                }
            }
        };
        let onnx_image = if cfg.onnx_image.is_empty() {
            None
        } else {
            let p = model_path(&dir, &cfg.onnx_image);
            match registry::read_model(&p).and_then(|info| agentdb_models::onnx::OnnxImageEncoder::load(info, &dir)) {
                Ok(e) => {
                    tracing::info!(encoder = %e.info.encoder_id(), dim = e.dim(), "ONNX image encoder ready (ONNX Runtime, CPU): bind a space to it with --space NAME:{}", e.info.manifest.name);
                    Some(Arc::new(e))
                }
                Err(e) => {
                    tracing::error!(path = %p.display(), error = %e, "ONNX image encoder configured but not loaded");
                    None
                }
            }
        };
        let sound = load_sound(&dir, cfg);
        let clap = load_clap(&dir, cfg);
        let mut set = EncoderSet::of(
            dir,
            Arc::new(TextService::new(text, batch)),
            (image, image_problem),
            (speech, speech_problem),
            clip,
            clap,
            onnx_image,
        );
        set.sound = sound;
        set
    }

    /// The set of encoders around a loaded text encoder (each other one optional, with
    /// why it is missing).
    fn of(
        dir: PathBuf,
        text: Arc<TextService>,
        (image, image_problem): (Option<Arc<ImageService>>, Option<String>),
        (speech, speech_problem): (Option<Arc<SpeechService>>, Option<String>),
        clip: Option<Arc<agentdb_models::clip::Clip>>,
        clap: Option<Arc<agentdb_models::clap::Clap>>,
        onnx_image: Option<Arc<agentdb_models::onnx::OnnxImageEncoder>>,
    ) -> EncoderSet {
        let mut all: Vec<Arc<dyn Encoder>> = Vec::new();
        if let Some(c) = &clip {
            all.push(Arc::new(ClipEnc { id: c.info.encoder_id(), clip: c.clone() }));
        }
        if let Some(c) = &clap {
            // Images reach its text tower as a caption of the label bridge's labels.
            all.push(Arc::new(ClapEnc { id: c.info.encoder_id(), clap: c.clone(), labeller: image.clone() }));
        }
        if let Some(o) = &onnx_image {
            all.push(Arc::new(OnnxImageEnc { id: o.info.encoder_id(), enc: o.clone() }));
        }
        all.push(Arc::new(TextEnc { id: text.encoder_id(), svc: text.clone() }));
        if let Some(i) = &image {
            all.push(Arc::new(ImageBridge { id: i.encoder_id(), svc: i.clone(), dim: text.dim() }));
        }
        if let Some(s) = &speech {
            all.push(Arc::new(SpeechBridge {
                id: format!("{}>{}", s.encoder_id(), text.encoder_id()),
                text: text.clone(),
            }));
        }
        EncoderSet {
            dir,
            text: Some(text),
            text_problem: None,
            image,
            image_problem,
            speech,
            speech_problem,
            sound: None,
            clip,
            clap,
            onnx_image,
            ocr: None,
            ocr_keyframes: false,
            all,
        }
    }

    /// Every loaded encoder (see [`Encoder`]).
    pub fn all(&self) -> &[Arc<dyn Encoder>] {
        &self.all
    }

    /// Start OCR as `ingest.ocr*` configures it (a missing language pack is logged, and
    /// ingestion goes on without OCR).
    pub fn with_ocr(mut self, cfg: &crate::config::IngestConfig) -> EncoderSet {
        if !cfg.ocr {
            tracing::info!("OCR off (ingest.ocr = false)");
            return self;
        }
        let oc = agentdb_models::ocr::OcrConfig {
            tessdata: Some(cfg.ocr_tessdata.trim()).filter(|s| !s.is_empty()).map(std::path::PathBuf::from),
            languages: cfg.ocr_languages.clone(),
            min_confidence: cfg.ocr_min_confidence,
            timeout_ms: cfg.ocr_timeout_ms.max(1),
            max_pixels: cfg.ocr_max_pixels.max(10_000),
        };
        match agentdb_models::ocr::Ocr::new(oc) {
            Ok(o) => {
                tracing::info!(languages = %cfg.ocr_languages, keyframes = cfg.ocr_keyframes, "OCR ready (Tesseract, CPU)");
                self.ocr = Some(Arc::new(o));
                self.ocr_keyframes = cfg.ocr_keyframes;
            }
            Err(e) => tracing::warn!(error = %e, "OCR unavailable; images are indexed without their text"),
        }
        self
    }

    pub fn text(&self) -> Result<&Arc<TextService>> {
        self.text.as_ref().ok_or_else(|| Error::Unavailable(self.text_problem.clone().unwrap_or_default()))
    }

    pub fn image(&self) -> Result<&Arc<ImageService>> {
        self.image.as_ref().ok_or_else(|| Error::Unavailable(self.image_problem.clone().unwrap_or_default()))
    }

    pub fn speech(&self) -> Result<&Arc<SpeechService>> {
        self.speech.as_ref().ok_or_else(|| Error::Unavailable(self.speech_problem.clone().unwrap_or_default()))
    }

    /// The spaces a `--multimodal` collection gets: `text` (the text encoder's family,
    /// which the image and speech bridges also write into), `clip` when a CLIP model is
    /// loaded and `clap` when a CLAP is.
    pub fn multimodal_spaces(&self) -> Result<Vec<SpaceSpec>> {
        let text = self.text()?;
        let space = |name: &str, dim: usize, encoder: String| SpaceSpec {
            name: name.into(),
            dim,
            metric: agentdb_engine::Metric::Cosine,
            index: agentdb_engine::DEFAULT_INDEX.into(),
            encoder: Some(encoder),
        };
        let mut spaces = vec![space("text", text.dim(), text.encoder_id())];
        if let Some(c) = &self.clip {
            spaces.push(space("clip", c.dim(), c.info.encoder_id()));
        }
        if let Some(c) = &self.clap {
            spaces.push(space("clap", c.dim(), c.info.encoder_id()));
        }
        Ok(spaces)
    }

    pub fn installed(&self) -> Vec<ModelInfo> {
        registry::discover(&self.dir)
    }

    /// Ids of the loaded encoders (for `models list` and metrics).
    pub fn loaded_ids(&self) -> Vec<String> {
        let mut v: Vec<String> = self.text.iter().map(|t| t.encoder_id()).collect();
        v.extend(self.image.iter().map(|i| i.encoder_id()));
        if let Some(s) = &self.speech {
            v.push(self.speech_id().unwrap_or_else(|| s.encoder_id()));
            v.push(s.vad_info.encoder_id());
        }
        v.extend(self.sound.iter().map(|s| s.info.encoder_id()));
        v.extend(self.clip.iter().map(|c| c.info.encoder_id()));
        v.extend(self.clap.iter().map(|c| c.info.encoder_id()));
        v.extend(self.onnx_image.iter().map(|o| o.info.encoder_id()));
        v
    }

    /// A space bound by model name (`--space NAME:MODEL`): the loaded encoder's id and
    /// dimension, if a loaded encoder has that name.
    pub fn by_name(&self, name: &str) -> Option<(String, usize)> {
        self.all.iter().find(|e| e.model_name() == Some(name)).map(|e| (e.id().to_string(), e.dim()))
    }

    /// `whisper-base@…>all-minilm-l6-v2@…`: transcripts embedded by the text encoder.
    pub fn speech_id(&self) -> Option<String> {
        Some(format!("{}>{}", self.speech.as_ref()?.encoder_id(), self.text.as_ref()?.encoder_id()))
    }

    /// `yamnet@…>all-minilm-l6-v2@…`: a sound's labels embedded by the text encoder.
    pub fn sound_id(&self) -> Option<String> {
        Some(format!("{}>{}", self.sound.as_ref()?.info.encoder_id(), self.text.as_ref()?.encoder_id()))
    }

    /// The loaded encoder for `modality` whose vectors live in `space`'s family, if any.
    pub fn for_space(&self, space: &SpaceSpec, modality: Modal) -> Option<String> {
        let fam = embedding_family(space.encoder.as_deref()?);
        self.all.iter().find(|e| embedding_family(e.id()) == fam && e.embeds(modality)).map(|e| e.id().to_string())
    }

    /// The encoder to embed `modal` inputs with for encoder `id` (as `for_space` chose
    /// it): that encoder if it embeds them, else the one of its family that does (a
    /// query video's transcript goes into the image bridge's family through the text
    /// encoder).
    fn by_id(&self, id: &str, modal: Modal) -> Result<&dyn Encoder> {
        let fam = embedding_family(id);
        let exact = self.all.iter().find(|e| e.id() == id && e.embeds(modal));
        match exact.or_else(|| self.all.iter().find(|e| embedding_family(e.id()) == fam && e.embeds(modal))) {
            Some(e) => Ok(e.as_ref()),
            None => {
                if modal == Modal::Image {
                    self.image()?;
                } else {
                    self.text()?;
                }
                Err(Error::Unavailable(format!("no loaded encoder embeds {} into {id}'s space", modal.as_str())))
            }
        }
    }

    /// Embed texts (chunks, transcripts, queries) with encoder `id` as `for_space` chose it.
    pub fn embed_texts_as(&self, id: &str, texts: Vec<String>) -> Result<Vec<Vec<f32>>> {
        let modal =
            if self.all.iter().any(|e| e.id() == id && e.embeds(Modal::Speech)) { Modal::Speech } else { Modal::Text };
        self.by_id(id, modal)?.embed_texts(texts)
    }

    /// Whether encoder `id` embeds recordings from their waveform (a CLAP's audio tower).
    pub fn hears(&self, id: &str) -> bool {
        self.all.iter().any(|e| e.id() == id && e.hears())
    }

    /// Embed a recording (mono PCM at `rate` Hz) with encoder `id`, which [`Self::hears`].
    pub fn embed_audio_as(&self, id: &str, pcm: &[f32], rate: u32) -> Result<Vec<f32>> {
        match self.all.iter().find(|e| e.id() == id && e.hears()) {
            Some(e) => e.embed_audio(pcm, rate),
            None => Err(Error::Unavailable(format!("no loaded encoder embeds audio into {id}'s space"))),
        }
    }

    /// Embed decoded images with encoder `id`: CLIP's or the user's image tower (no
    /// labels) or the label bridge (with its top labels and probabilities).
    pub fn embed_images_as(&self, id: &str, images: &[RgbImage]) -> Result<Vec<(Vec<f32>, Labels)>> {
        self.by_id(id, Modal::Image)?.embed_images(images)
    }
}

/// The encoders a server uses, loaded when a request first needs one (or at once):
/// derefs to the [`EncoderSet`], loading it on first use. Monitoring (metrics, alerts,
/// `models list`) looks with [`Encoders::loaded`], which never loads.
pub struct Encoders {
    dir: PathBuf,
    set: std::sync::OnceLock<EncoderSet>,
    loader: parking_lot::Mutex<Option<Loader>>,
}

type Loader = Box<dyn FnOnce() -> EncoderSet + Send>;

impl Encoders {
    /// Already loaded.
    pub fn ready(set: EncoderSet) -> Encoders {
        let dir = set.dir.clone();
        Encoders { dir, set: std::sync::OnceLock::from(set), loader: parking_lot::Mutex::new(None) }
    }

    /// No encoders, saying why.
    pub fn none(dir: PathBuf, why: &str) -> Encoders {
        Encoders::ready(EncoderSet::none(dir, why))
    }

    /// Load what the configuration names, now (see [`EncoderSet::load`]).
    pub fn load(cfg: &crate::config::ModelsConfig, gpu: Option<&GpuChoice>) -> Encoders {
        Encoders::ready(EncoderSet::load(cfg, gpu))
    }

    /// What the server uses: the configured models and OCR, loaded at once when
    /// `models.preload` is set, else by the first request that needs one.
    pub fn configured(
        cfg: &crate::config::ModelsConfig,
        gpu: Option<GpuChoice>,
        ingest: &crate::config::IngestConfig,
    ) -> Encoders {
        let preload = cfg.preload;
        let (cfg, ingest) = (cfg.clone(), ingest.clone());
        let dir = cfg.dir.clone().unwrap_or_else(registry::default_dir);
        let load = move || EncoderSet::load(&cfg, gpu.as_ref()).with_ocr(&ingest);
        let enc =
            Encoders { dir, set: std::sync::OnceLock::new(), loader: parking_lot::Mutex::new(Some(Box::new(load))) };
        if preload {
            enc.get();
        }
        enc
    }

    /// The encoders if they are loaded; never loads them.
    pub fn loaded(&self) -> Option<&EncoderSet> {
        self.set.get()
    }

    /// The models installed in the models folder (without loading any).
    pub fn installed(&self) -> Vec<ModelInfo> {
        registry::discover(&self.dir)
    }

    /// The encoders, loaded now if they are not yet (on a server worker thread, the
    /// runtime is told the thread blocks meanwhile).
    pub fn get(&self) -> &EncoderSet {
        self.set.get_or_init(|| {
            let Some(load) = self.loader.lock().take() else {
                return EncoderSet::none(self.dir.clone(), "the models failed to load earlier");
            };
            tracing::info!("loading models on first use (models.preload = false)");
            let t = std::time::Instant::now();
            let in_runtime = tokio::runtime::Handle::try_current()
                .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
            let set = if in_runtime { tokio::task::block_in_place(load) } else { load() };
            tracing::info!(ms = t.elapsed().as_millis() as u64, loaded = %set.loaded_ids().join(", "), "models loaded");
            set
        })
    }
}

impl std::ops::Deref for Encoders {
    type Target = EncoderSet;
    fn deref(&self) -> &EncoderSet {
        self.get()
    }
}

/// A configured model folder: a name under the models folder, or an absolute path.
fn model_path(dir: &std::path::Path, name: &str) -> PathBuf {
    if std::path::Path::new(name).is_absolute() {
        name.into()
    } else {
        dir.join(name)
    }
}

/// The sound-event classifier `models.sound` names, if it loads (a missing one is
/// logged: recordings without speech are then described by their properties only).
fn load_sound(
    dir: &std::path::Path,
    cfg: &crate::config::ModelsConfig,
) -> Option<Arc<agentdb_models::sound::SoundEvents>> {
    if cfg.sound.is_empty() {
        tracing::info!("no sound-event classifier (models.sound is empty): sounds are found by their properties only");
        return None;
    }
    let load = || -> agentdb_models::Result<agentdb_models::sound::SoundEvents> {
        agentdb_models::vad::init_runtime(dir)?;
        agentdb_models::sound::SoundEvents::load(registry::read_model(&dir.join(&cfg.sound))?, dir)
    };
    match load() {
        Ok(s) => {
            tracing::info!(encoder = %s.info.encoder_id(), device = "cpu", "sound-event classifier ready (CPU): labels of recordings without speech, into the text space");
            Some(Arc::new(s))
        }
        Err(e) => {
            tracing::warn!(
                "sound-event classifier '{}' is not available: {e}; recordings without speech are found by their properties only (install models with `make models`)",
                cfg.sound
            );
            None
        }
    }
}

/// The CLAP `models.clap` names, if any and if it loads (a configured one that does not
/// load is logged as an error; the server goes on without it).
fn load_clap(dir: &std::path::Path, cfg: &crate::config::ModelsConfig) -> Option<Arc<agentdb_models::clap::Clap>> {
    if cfg.clap.is_empty() {
        return None;
    }
    let p = model_path(dir, &cfg.clap);
    let load = || -> agentdb_models::Result<agentdb_models::clap::Clap> {
        agentdb_models::vad::init_runtime(dir)?;
        agentdb_models::clap::Clap::load(registry::read_model(&p)?, dir)
    };
    match load() {
        Ok(c) => {
            tracing::info!(encoder = %c.info.encoder_id(), dim = c.dim(), device = "cpu", "CLAP ready (ONNX Runtime, CPU): audio and text towers in their own space");
            Some(Arc::new(c))
        }
        Err(e) => {
            tracing::error!(path = %p.display(), error = %e, "CLAP model configured but not loaded");
            None
        }
    }
}

fn load_speech(
    dir: &std::path::Path,
    cfg: &crate::config::ModelsConfig,
    batch: BatcherConfig,
) -> std::result::Result<SpeechService, String> {
    if cfg.speech.is_empty() || cfg.vad.is_empty() {
        return Err("no speech recogniser configured (models.speech / models.vad are empty)".into());
    }
    let load = || -> agentdb_models::Result<SpeechService> {
        agentdb_models::vad::init_runtime(dir)?;
        let vad_info = registry::read_model(&dir.join(&cfg.vad))?;
        let vad = agentdb_models::vad::Vad::load(vad_info.clone(), dir)?;
        let whisper_info = registry::read_model(&dir.join(&cfg.speech))?;
        let whisper = agentdb_models::whisper::Whisper::load(whisper_info.clone())?;
        Ok(SpeechService::new(vad, vad_info, whisper, whisper_info, batch))
    };
    load().map_err(|e| {
        format!(
            "speech recogniser '{}' with VAD '{}' is not available: {e}; install models with `make models`",
            cfg.speech, cfg.vad
        )
    })
}
