//! The image → text-space bridge for installs without CLIP weights: EfficientNet-Lite0
//! classifies the image over the 1,000 ImageNet classes, and the image's vector is the
//! softmax-weighted sum of the text embeddings of "a photo of a {label}" over its top 10
//! classes, L2-normalised. Images then live in the text encoder's space, so a text query
//! finds them and an image query finds text.
//!
//! Its limits are ImageNet's: textures, sky objects and pages of text have no class
//! (see docs/MODELS.md). A user-supplied CLIP model is the better encoder when present.

use crate::error::{Error, Result};
use crate::image::{softmax, EfficientNet};
use crate::registry::{sha256_hex, ModelInfo};
use crate::text::TextEncoder;
use std::path::{Path, PathBuf};

pub const LABELS_FILE: &str = "imagenet-labels.txt";
pub const PROMPT: &str = "a photo of a {}";
pub const TOP_K: usize = 10;

/// One image's vector and the classes it was built from.
#[derive(Debug, Clone)]
pub struct ImageEmbedding {
    pub vector: Vec<f32>,
    /// Top classes with their probabilities, best first.
    pub labels: Vec<(String, f32)>,
}

pub struct LabelBridge {
    pub net: EfficientNet,
    pub labels: Vec<String>,
    /// [classes × dim], each row L2-normalised.
    label_emb: Vec<f32>,
    dim: usize,
    text_id: String,
}

impl LabelBridge {
    /// Load the classifier and embed its label prompts with `text` (cached in
    /// `cache_dir` keyed by the labels, prompt and text encoder, so later starts are fast).
    pub fn load(image: ModelInfo, text: &TextEncoder, cache_dir: Option<&Path>) -> Result<LabelBridge> {
        let labels_path = image.dir.join(LABELS_FILE);
        let labels_text = std::fs::read_to_string(&labels_path)
            .map_err(|e| Error::ModelLoad { path: labels_path.clone(), reason: e.to_string() })?;
        let labels: Vec<String> = labels_text.lines().map(|l| l.trim().to_string()).collect();
        let net = EfficientNet::load(image)?;
        if labels.len() != net.classes() || labels.iter().any(String::is_empty) {
            return Err(Error::ModelLoad {
                path: labels_path,
                reason: format!("expected {} non-empty labels, found {}", net.classes(), labels.len()),
            });
        }
        let text_id = text.info.encoder_id();
        let dim = text.dim();
        let key = &sha256_hex(format!("{labels_text}\n{PROMPT}\n{text_id}").as_bytes())[..16];
        let cache = cache_dir.map(|d| d.join(format!("label-embeddings-{key}.f32")));
        let label_emb = match cache.as_deref().and_then(|p| read_cache(p, labels.len() * dim)) {
            Some(v) => v,
            None => {
                let started = std::time::Instant::now();
                let prompts: Vec<String> = labels.iter().map(|l| PROMPT.replace("{}", l)).collect();
                let mut emb = Vec::with_capacity(labels.len() * dim);
                for chunk in prompts.chunks(64) {
                    let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
                    for v in text.embed(&refs)? {
                        emb.extend(v);
                    }
                }
                tracing::info!(
                    labels = labels.len(),
                    secs = started.elapsed().as_secs_f32(),
                    "embedded the image bridge's label prompts"
                );
                if let Some(p) = &cache {
                    if let Err(e) = write_cache(p, &emb) {
                        tracing::warn!(path = %p.display(), error = %e, "cannot cache label embeddings");
                    }
                }
                emb
            }
        };
        Ok(LabelBridge { net, labels, label_emb, dim, text_id })
    }

    /// `efficientnet-lite0@…>all-minilm-l6-v2@…`: the classifier and the text space it
    /// maps into (the engine's `embedding_family` convention).
    pub fn encoder_id(&self) -> String {
        format!("{}>{}", self.net.info.encoder_id(), self.text_id)
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Embed preprocessed images (see `image::preprocess`).
    pub fn embed(&self, inputs: &[Vec<f32>]) -> Result<Vec<ImageEmbedding>> {
        let logits = self.net.logits(inputs)?;
        Ok(logits.iter().map(|l| self.bridge(l)).collect())
    }

    fn bridge(&self, logits: &[f32]) -> ImageEmbedding {
        let p = softmax(logits);
        let mut order: Vec<usize> = (0..p.len()).collect();
        order.sort_unstable_by(|&a, &b| p[b].total_cmp(&p[a]));
        order.truncate(TOP_K);
        let mut v = vec![0f32; self.dim];
        for &c in &order {
            let row = &self.label_emb[c * self.dim..(c + 1) * self.dim];
            v.iter_mut().zip(row).for_each(|(a, r)| *a += p[c] * r);
        }
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        v.iter_mut().for_each(|x| *x /= norm);
        ImageEmbedding { vector: v, labels: order.iter().map(|&c| (self.labels[c].clone(), p[c])).collect() }
    }
}

fn read_cache(p: &Path, n: usize) -> Option<Vec<f32>> {
    let bytes = std::fs::read(p).ok()?;
    if bytes.len() != n * 4 {
        return None;
    }
    Some(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}

fn write_cache(p: &PathBuf, v: &[f32]) -> std::io::Result<()> {
    let tmp = p.with_extension("tmp");
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(tmp, p)
}
