//! The encoders this server loaded at start (from the models folder the set-up fills),
//! and how a query or an ingested file of one modality is embedded into a space.

use agentdb_engine::{embedding_family, SpaceSpec};
use agentdb_models::{
    registry, BatcherConfig, ImageEmbedding, ImageLimits, ImageService, LabelBridge, ModelInfo, TextEncoder,
    TextService,
};
use std::path::PathBuf;
use std::sync::Arc;

pub struct Encoders {
    pub dir: PathBuf,
    pub text: Option<Arc<TextService>>,
    /// Why the text encoder is missing, for error messages.
    pub text_problem: Option<String>,
    /// The image -> text-space bridge (EfficientNet-Lite0 labels embedded by the text encoder).
    pub image: Option<Arc<ImageService>>,
    pub image_problem: Option<String>,
}

impl Encoders {
    pub fn none(dir: PathBuf, why: &str) -> Encoders {
        Encoders {
            dir,
            text: None,
            text_problem: Some(why.to_string()),
            image: None,
            image_problem: Some(why.to_string()),
        }
    }

    /// Load what the configuration names. A missing model is not fatal: vector
    /// collections work without it, and text operations say how to install it.
    pub fn load(cfg: &crate::config::ModelsConfig) -> Encoders {
        let dir = cfg.dir.clone().unwrap_or_else(registry::default_dir);
        if cfg.text.is_empty() {
            return Encoders::none(dir, "no text encoder configured (models.text is empty)");
        }
        let batch = BatcherConfig {
            max_batch: cfg.max_batch.max(1),
            max_wait: std::time::Duration::from_micros((cfg.max_wait_ms * 1000.0) as u64),
            queue: cfg.queue.max(1),
            workers: 1,
        };
        let path = dir.join(&cfg.text);
        let loaded = registry::read_model(&path).and_then(|info| TextEncoder::load(info, candle_core::Device::Cpu));
        let text = match loaded {
            Ok(enc) => enc,
            Err(e) => {
                let why =
                    format!("text encoder '{}' is not available: {e}; install models with `make models`", cfg.text);
                tracing::warn!("{why}");
                return Encoders::none(dir, &why);
            }
        };
        tracing::info!(encoder = %text.info.encoder_id(), device = "cpu", "text encoder ready (CPU)");
        let (image, image_problem) = if cfg.image.is_empty() {
            (None, Some("no image encoder configured (models.image is empty)".to_string()))
        } else {
            let idir = dir.join(&cfg.image);
            match registry::read_model(&idir).and_then(|info| LabelBridge::load(info, &text, Some(&idir))) {
                Ok(bridge) => {
                    tracing::info!(encoder = %bridge.encoder_id(), device = "cpu", "image encoder ready (CPU): ImageNet label bridge into the text space");
                    let cfg = BatcherConfig { max_batch: batch.max_batch.min(16), ..batch };
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
        Encoders { dir, text: Some(Arc::new(TextService::new(text, batch))), text_problem: None, image, image_problem }
    }

    pub fn text(&self) -> Result<&Arc<TextService>, tonic::Status> {
        self.text
            .as_ref()
            .ok_or_else(|| tonic::Status::failed_precondition(self.text_problem.clone().unwrap_or_default()))
    }

    pub fn image(&self) -> Result<&Arc<ImageService>, tonic::Status> {
        self.image
            .as_ref()
            .ok_or_else(|| tonic::Status::failed_precondition(self.image_problem.clone().unwrap_or_default()))
    }

    pub fn installed(&self) -> Vec<ModelInfo> {
        registry::discover(&self.dir)
    }

    /// Ids of the loaded encoders (for `models list` and metrics).
    pub fn loaded_ids(&self) -> Vec<String> {
        let mut v: Vec<String> = self.text.iter().map(|t| t.encoder_id()).collect();
        v.extend(self.image.iter().map(|i| i.encoder_id()));
        v
    }

    /// The loaded encoder for `modality` whose vectors live in `space`'s family, if any.
    pub fn for_space(&self, space: &SpaceSpec, modality: Modal) -> Option<String> {
        let fam = embedding_family(space.encoder.as_deref()?);
        let id = match modality {
            Modal::Text => self.text.as_ref()?.encoder_id(),
            Modal::Image => self.image.as_ref()?.encoder_id(),
        };
        (embedding_family(&id) == fam).then_some(id)
    }
}

/// What a query or a file is, for choosing its encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Modal {
    Text,
    Image,
}

impl Modal {
    pub fn as_str(self) -> &'static str {
        match self {
            Modal::Text => "text",
            Modal::Image => "image",
        }
    }
}

/// A decoded image embedded once, reusable for every space of its family.
pub fn embed_image(
    enc: &Encoders,
    bytes: &[u8],
    lim: ImageLimits,
) -> Result<(ImageEmbedding, (u32, u32)), crate::status::ApiError> {
    let svc = enc.image()?;
    let started = std::time::Instant::now();
    let e = svc.embed_bytes_blocking(bytes, lim)?;
    tracing::debug!(ms = started.elapsed().as_secs_f64() * 1e3, "image embedded");
    Ok(e)
}
