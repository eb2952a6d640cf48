//! The payload schema of items that ingestion makes (one per text chunk, image,
//! transcript passage or video keyframe), shared by the writer (`agentdb-retrieval`),
//! the keyword index (which reads the keys in [`keys`]) and the readers that describe a
//! hit. Items upserted by users carry any JSON; these keys mean the same in theirs.

use serde::{Deserialize, Serialize};

/// Payload keys with a meaning to the engine or to ingestion.
pub mod keys {
    /// The ingested file (hits are fused per source).
    pub const SOURCE: &str = "source";
    /// `text`, `image`, `ocr` (an image's text, embedded as its second part), `speech`,
    /// `keyframe` or `sound` (the per-modality lists filter on it).
    pub const MODALITY: &str = "modality";
    /// A text chunk or a transcript passage (keyword fields `text` and `transcript`); for
    /// a sound, its description (length, rate, channels, codec).
    pub const TEXT: &str = "text";
    /// What the speech model wrote for a sound without speech (keyword field `transcript`).
    pub const SOUND: &str = "sound";
    /// Text read in an image or keyframe (keyword field `ocr`).
    pub const OCR: &str = "ocr";
    /// Top classifier labels of an image or keyframe (keyword field `labels`).
    pub const LABELS: &str = "labels";
    /// A video's title tag (keyword field `title`).
    pub const TITLE: &str = "title";
    /// User tags (keyword field `tags`).
    pub const TAGS: &str = "tags";
}

/// The item modalities ingestion writes (`keys::MODALITY`).
pub const ITEM_MODALITIES: [&str; 6] = ["text", "image", "ocr", "speech", "keyframe", "sound"];

/// One ingested item's payload. Fields that do not apply to a modality are absent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ItemPayload {
    pub source: String,
    pub modality: String,
    pub media_type: String,
    pub content_sha256: String,
    /// This item's index among the source's items, and how many there are.
    pub chunk: usize,
    pub chunks: usize,
    /// A text chunk's byte range in the decoded text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<usize>,
    /// A text chunk or transcript passage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// An image's or a video's frame size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// Top labels of the image classifier and their probabilities (images and keyframes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_scores: Option<Vec<f32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ocr: Option<String>,
    /// A keyframe's time and whether it starts a scene.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t_s: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scene_change: Option<bool>,
    /// A transcript passage's time range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_s: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_s: Option<f32>,
    /// A recording's or a video's length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// A recording's sample rate, channels and codec (e.g. `vorbis`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_rate: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_codec: Option<String>,
    /// A sound without speech: what the speech model wrote for it, if anything usable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sound: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video_codec: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The encoder id(s) that made the item's vectors, space-separated.
    pub encoder: String,
}

impl ItemPayload {
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_fields_are_not_written_and_a_payload_reads_back() {
        let p = ItemPayload {
            source: "a.txt".into(),
            modality: "text".into(),
            chunk: 0,
            chunks: 1,
            text: Some("hello".into()),
            ..Default::default()
        };
        let v = p.to_value();
        assert_eq!(v[keys::TEXT], "hello");
        assert!(v.get(keys::OCR).is_none());
        assert_eq!(serde_json::from_value::<ItemPayload>(v).unwrap(), p);
    }
}
