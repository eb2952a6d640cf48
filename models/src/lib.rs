//! AgentDB models: decoders, preprocessing, encoders, the model registry and the
//! dynamic batcher that sits in front of each encoder.
//!
//! Encoders load real weights from disk (installed by the set-up from registry
//! packages, or a folder the user names); nothing is downloaded at run time. Inference
//! runs on the batcher's own threads, never on the async runtime's workers.

pub mod audio;
pub mod batcher;
pub mod bridge;
pub mod clap;
pub mod clip;
pub mod detect;
pub mod dsp;
pub mod error;
pub mod image;
pub mod ocr;
pub mod onnx;
pub mod registry;
pub mod sound;
pub mod speech;
pub mod text;
pub mod vad;
pub mod video;
pub mod whisper;

pub use audio::AudioLimits;
pub use batcher::{Batcher, BatcherConfig, BatcherStats};
pub use bridge::{ImageEmbedding, LabelBridge};
pub use detect::{detect, MediaType, Modality};
pub use error::{Error, Result};
pub use image::{decode_image, preprocess, ImageLimits};
pub use registry::{ModelInfo, ModelManifest};
pub use speech::{SpeechService, Transcript};
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

/// An image encoder (the label bridge) behind its batcher. Callers decode and
/// preprocess on their own threads; the batcher runs the network on whole batches.
pub struct ImageService {
    pub encoder: Arc<LabelBridge>,
    pub batcher: Batcher<Vec<f32>, ImageEmbedding>,
}

impl ImageService {
    pub fn new(encoder: LabelBridge, cfg: BatcherConfig) -> ImageService {
        let encoder = Arc::new(encoder);
        let e = encoder.clone();
        let batcher =
            Batcher::new(&encoder.net.info.manifest.name, cfg, Arc::new(move |inputs: Vec<Vec<f32>>| e.embed(&inputs)));
        ImageService { encoder, batcher }
    }

    pub fn encoder_id(&self) -> String {
        self.encoder.encoder_id()
    }

    pub fn dim(&self) -> usize {
        self.encoder.dim()
    }

    /// Embed decoded images (video keyframes): preprocessed here, embedded in batches.
    pub fn embed_images_blocking(&self, images: &[::image::RgbImage]) -> Result<Vec<ImageEmbedding>> {
        self.batcher.submit_many_blocking(images.iter().map(preprocess).collect())
    }

    /// Decode, check limits and preprocess on the calling thread, then embed (blocking).
    /// Returns the embedding and the image's width and height.
    pub fn embed_bytes_blocking(&self, bytes: &[u8], lim: ImageLimits) -> Result<(ImageEmbedding, (u32, u32))> {
        let img = decode_image(bytes, lim)?;
        let dims = img.dimensions();
        let x = preprocess(&img);
        Ok((self.batcher.submit_many_blocking(vec![x])?.remove(0), dims))
    }
}
