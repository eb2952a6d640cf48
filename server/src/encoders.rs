//! The encoders this server loaded at start (from the models folder the set-up fills).

use agentdb_models::{registry, BatcherConfig, ModelInfo, TextEncoder, TextService};
use std::path::PathBuf;
use std::sync::Arc;

pub struct Encoders {
    pub dir: PathBuf,
    pub text: Option<Arc<TextService>>,
    /// Why the text encoder is missing, for error messages.
    pub text_problem: Option<String>,
}

impl Encoders {
    pub fn none(dir: PathBuf, why: &str) -> Encoders {
        Encoders { dir, text: None, text_problem: Some(why.to_string()) }
    }

    /// Load what the configuration names. A missing model is not fatal: vector
    /// collections work without it, and text operations say how to install it.
    pub fn load(cfg: &crate::config::ModelsConfig) -> Encoders {
        let dir = cfg.dir.clone().unwrap_or_else(registry::default_dir);
        if cfg.text.is_empty() {
            return Encoders::none(dir, "no text encoder configured (models.text is empty)");
        }
        let path = dir.join(&cfg.text);
        let loaded = registry::read_model(&path).and_then(|info| TextEncoder::load(info, candle_core::Device::Cpu));
        match loaded {
            Ok(enc) => {
                let batch = BatcherConfig {
                    max_batch: cfg.max_batch.max(1),
                    max_wait: std::time::Duration::from_micros((cfg.max_wait_ms * 1000.0) as u64),
                    queue: cfg.queue.max(1),
                    workers: 1,
                };
                tracing::info!(encoder = %enc.info.encoder_id(), device = "cpu", "text encoder ready (CPU)");
                Encoders { dir, text: Some(Arc::new(TextService::new(enc, batch))), text_problem: None }
            }
            Err(e) => {
                let why =
                    format!("text encoder '{}' is not available: {e}; install models with `make models`", cfg.text);
                tracing::warn!("{why}");
                Encoders::none(dir, &why)
            }
        }
    }

    pub fn text(&self) -> Result<&Arc<TextService>, tonic::Status> {
        self.text
            .as_ref()
            .ok_or_else(|| tonic::Status::failed_precondition(self.text_problem.clone().unwrap_or_default()))
    }

    pub fn installed(&self) -> Vec<ModelInfo> {
        registry::discover(&self.dir)
    }
}
