//! AgentDB models: decoders, preprocessing, encoders, the model registry and the
//! dynamic batcher that sits in front of each encoder.
//!
//! Encoders load real weights from disk (installed by the set-up from registry
//! packages, or a folder the user names); nothing is downloaded at run time. Inference
//! runs on the batcher's own threads, never on the async runtime's workers.

pub mod batcher;
pub mod detect;
pub mod error;
pub mod registry;
pub mod text;

pub use batcher::{Batcher, BatcherConfig, BatcherStats};
pub use detect::{detect, MediaType, Modality};
pub use error::{Error, Result};
pub use registry::{ModelInfo, ModelManifest};
pub use text::{chunk_text, markdown_to_text, Chunk, TextEncoder};

use std::sync::Arc;

/// A text encoder behind its batcher.
pub struct TextService {
    pub encoder: Arc<TextEncoder>,
    pub batcher: Batcher<String, Vec<f32>>,
}

impl TextService {
    pub fn new(encoder: TextEncoder, cfg: BatcherConfig) -> TextService {
        let encoder = Arc::new(encoder);
        let e = encoder.clone();
        let batcher = Batcher::new(
            &encoder.info.manifest.name,
            cfg,
            Arc::new(move |texts: Vec<String>| {
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                e.embed(&refs)
            }),
        );
        TextService { encoder, batcher }
    }

    pub fn encoder_id(&self) -> String {
        self.encoder.info.encoder_id()
    }

    pub fn dim(&self) -> usize {
        self.encoder.dim()
    }
}
