//! The encoders behind the [`Encoder`] trait: what each one is called, which
//! modalities it embeds, and how (the text encoder, its image and speech bridges, and a
//! user's CLIP, CLAP or ONNX image encoder). [`crate::encoders`] loads them and chooses
//! one per space.

use crate::{Error, Result};
use agentdb_models::image::RgbImage;
use agentdb_models::{ImageService, TextService};
use std::sync::Arc;

/// One loaded encoder: what it is called, what it embeds and into which family of
/// vectors (its id's [`embedding_family`]; a space bound to that family takes them).
pub trait Encoder: Send + Sync {
    /// `name@version`; a bridge into another model's space: `bridge@v>target@v`.
    fn id(&self) -> &str;
    /// The model name a space may be bound by (`--space NAME:MODEL`); None for bridges.
    fn model_name(&self) -> Option<&str> {
        None
    }
    fn dim(&self) -> usize;
    /// Whether it embeds inputs of this modality.
    fn embeds(&self, modal: Modal) -> bool;
    /// Embed texts (chunks, transcripts, queries).
    fn embed_texts(&self, _texts: Vec<String>) -> Result<Vec<Vec<f32>>> {
        Err(Error::Unavailable(format!("encoder '{}' does not embed text", self.id())))
    }
    /// Embed decoded images, with the top labels where the encoder has them.
    fn embed_images(&self, _images: &[RgbImage]) -> Result<Vec<(Vec<f32>, Labels)>> {
        Err(Error::Unavailable(format!("encoder '{}' does not embed images", self.id())))
    }
    /// Whether it embeds a recording from its waveform ([`Encoder::embed_audio`]) rather
    /// than from the recording's text (transcript or sound labels).
    fn hears(&self) -> bool {
        false
    }
    /// Embed a recording (mono PCM at `rate` Hz).
    fn embed_audio(&self, _pcm: &[f32], _rate: u32) -> Result<Vec<f32>> {
        Err(Error::Unavailable(format!("encoder '{}' does not embed audio", self.id())))
    }
}

/// The text encoder (MiniLM): text chunks and text queries.
pub(crate) struct TextEnc {
    pub(crate) id: String,
    pub(crate) svc: Arc<TextService>,
}

impl Encoder for TextEnc {
    fn id(&self) -> &str {
        &self.id
    }
    fn model_name(&self) -> Option<&str> {
        Some(&self.svc.encoder.info.manifest.name)
    }
    fn dim(&self) -> usize {
        self.svc.dim()
    }
    fn embeds(&self, modal: Modal) -> bool {
        modal == Modal::Text
    }
    fn embed_texts(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>> {
        Ok(self.svc.batcher.submit_many_blocking(texts)?)
    }
}

/// The image label bridge: an image's top ImageNet labels embedded by the text encoder.
pub(crate) struct ImageBridge {
    pub(crate) id: String,
    pub(crate) svc: Arc<ImageService>,
    pub(crate) dim: usize,
}

impl Encoder for ImageBridge {
    fn id(&self) -> &str {
        &self.id
    }
    fn dim(&self) -> usize {
        self.dim
    }
    fn embeds(&self, modal: Modal) -> bool {
        modal == Modal::Image
    }
    fn embed_images(&self, images: &[RgbImage]) -> Result<Vec<(Vec<f32>, Labels)>> {
        Ok(self.svc.embed_images_blocking(images)?.into_iter().map(|e| (e.vector, e.labels)).collect())
    }
}

/// The speech bridge: transcript passages embedded by the text encoder.
pub(crate) struct SpeechBridge {
    pub(crate) id: String,
    pub(crate) text: Arc<TextService>,
}

impl Encoder for SpeechBridge {
    fn id(&self) -> &str {
        &self.id
    }
    fn dim(&self) -> usize {
        self.text.dim()
    }
    fn embeds(&self, modal: Modal) -> bool {
        modal == Modal::Speech
    }
    fn embed_texts(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>> {
        Ok(self.text.batcher.submit_many_blocking(texts)?)
    }
}

/// A user's CLIP: text, transcripts and images into one space of its own.
pub(crate) struct ClipEnc {
    pub(crate) id: String,
    pub(crate) clip: Arc<agentdb_models::clip::Clip>,
}

impl Encoder for ClipEnc {
    fn id(&self) -> &str {
        &self.id
    }
    fn model_name(&self) -> Option<&str> {
        Some(&self.clip.info.manifest.name)
    }
    fn dim(&self) -> usize {
        self.clip.dim()
    }
    fn embeds(&self, _: Modal) -> bool {
        true
    }
    fn embed_texts(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>> {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        Ok(self.clip.embed_texts(&refs)?)
    }
    fn embed_images(&self, images: &[RgbImage]) -> Result<Vec<(Vec<f32>, Labels)>> {
        Ok(self.clip.embed_images(images)?.into_iter().map(|v| (v, Vec::new())).collect())
    }
}

/// A user's CLAP: recordings from their waveform (audio tower); texts, transcripts and
/// sound descriptions by its text tower; images and keyframes by a caption of their
/// ImageNet labels ("a photo of a tabby cat, an Egyptian cat") through the text tower,
/// since CLAP has no image tower (without the label bridge it takes no images).
pub(crate) struct ClapEnc {
    pub(crate) id: String,
    pub(crate) clap: Arc<agentdb_models::clap::Clap>,
    pub(crate) labeller: Option<Arc<ImageService>>,
}

impl Encoder for ClapEnc {
    fn id(&self) -> &str {
        &self.id
    }
    fn model_name(&self) -> Option<&str> {
        Some(&self.clap.info.manifest.name)
    }
    fn dim(&self) -> usize {
        self.clap.dim()
    }
    fn embeds(&self, modal: Modal) -> bool {
        modal != Modal::Image || self.labeller.is_some()
    }
    fn embed_texts(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>> {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        Ok(self.clap.embed_texts(&refs)?)
    }
    fn embed_images(&self, images: &[RgbImage]) -> Result<Vec<(Vec<f32>, Labels)>> {
        let Some(labeller) = &self.labeller else {
            return Err(Error::Unavailable(format!("encoder '{}' has no image tower and no image labels", self.id)));
        };
        let labels: Vec<Labels> = labeller.embed_images_blocking(images)?.into_iter().map(|e| e.labels).collect();
        let captions: Vec<String> = labels.iter().map(caption).collect();
        let vectors = self.embed_texts(captions)?;
        Ok(vectors.into_iter().zip(labels).collect())
    }
    fn hears(&self) -> bool {
        true
    }
    fn embed_audio(&self, pcm: &[f32], rate: u32) -> Result<Vec<f32>> {
        Ok(self.clap.embed_audio(pcm, rate)?)
    }
}

/// How an image is described to a text tower: "a photo of" its best ImageNet label and
/// the others of its top three with at least 10 % probability.
fn caption(labels: &Labels) -> String {
    let names: Vec<&str> = labels
        .iter()
        .take(3)
        .enumerate()
        .filter(|(i, (_, p))| *i == 0 || *p >= 0.1)
        .map(|(_, (n, _))| n.as_str())
        .collect();
    if names.is_empty() {
        "a photo".into()
    } else {
        format!("a photo of {}", names.join(", "))
    }
}

/// A user's ONNX image encoder: images (and keyframes) only, searched by example.
pub(crate) struct OnnxImageEnc {
    pub(crate) id: String,
    pub(crate) enc: Arc<agentdb_models::onnx::OnnxImageEncoder>,
}

impl Encoder for OnnxImageEnc {
    fn id(&self) -> &str {
        &self.id
    }
    fn model_name(&self) -> Option<&str> {
        Some(&self.enc.info.manifest.name)
    }
    fn dim(&self) -> usize {
        self.enc.dim()
    }
    fn embeds(&self, modal: Modal) -> bool {
        modal == Modal::Image
    }
    fn embed_images(&self, images: &[RgbImage]) -> Result<Vec<(Vec<f32>, Labels)>> {
        Ok(self.enc.embed_images(images)?.into_iter().map(|v| (v, Vec::new())).collect())
    }
}

/// Top classes with their probabilities (the label bridge's; empty for CLIP).
pub type Labels = Vec<(String, f32)>;

/// What a query or a file is, for choosing its encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Modal {
    Text,
    Image,
    Speech,
}

impl Modal {
    pub fn as_str(self) -> &'static str {
        match self {
            Modal::Text => "text",
            Modal::Image => "image",
            Modal::Speech => "speech",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::caption;

    #[test]
    fn an_image_caption_names_its_likely_labels() {
        let l = |v: &[(&str, f32)]| v.iter().map(|(n, p)| (n.to_string(), *p)).collect::<Vec<_>>();
        let c = caption(&l(&[("tabby", 0.5), ("tiger cat", 0.3), ("lynx", 0.05), ("Egyptian cat", 0.04)]));
        assert_eq!(c, "a photo of tabby, tiger cat");
        // The best label always, however unsure.
        assert_eq!(caption(&l(&[("volcano", 0.02), ("alp", 0.01)])), "a photo of volcano");
        assert_eq!(caption(&Vec::new()), "a photo");
    }
}
