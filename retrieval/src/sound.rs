//! Sounds without speech: what the sound-event classifier (YAMNet, `models.sound`) names
//! in a recording ([`SoundLabels`], stored with a `sound` item and embedded by text
//! encoders), and how a query recording is listened to ([`hear_query`]).

use crate::encoders::Encoders;
use crate::{Error, Result};
use agentdb_models::AudioLimits;

/// What a query recording is searched by.
pub enum HeardQuery {
    /// Its speech, as text.
    Speech(String),
    /// A sound without speech: "the sound of {labels}" from the sound-event classifier
    /// (None without one) for text towers, and the waveform (mono PCM at `rate` Hz) for
    /// encoders that hear (a CLAP's audio tower).
    Sound { text: Option<String>, pcm: Vec<f32>, rate: u32 },
}

/// Listen to a query recording: its speech, else what it sounds like (as a `sound` item
/// is embedded), so a ringtone finds ringing phones, and pictures and texts about them.
/// Silence, or a sound that nothing loaded can describe or hear, is refused with the
/// reason.
pub fn hear_query(enc: &Encoders, bytes: &[u8], lim: AudioLimits) -> Result<HeardQuery> {
    let what = |e: Error| e.about("query audio");
    let audio = agentdb_models::audio::decode_audio(bytes, lim).map_err(|e| what(e.into()))?;
    let t = enc.speech()?.transcribe_at(&audio.samples, audio.rate).map_err(|e| what(e.into()))?;
    let text = t.text();
    if !text.is_empty() {
        return Ok(HeardQuery::Speech(text));
    }
    let text = match sound_events(enc, &audio.samples, audio.rate, "query audio")? {
        Some(labels) if !labels.is_silence() => {
            tracing::debug!(labels = %labels.heard, "query audio without speech: searching by its sound");
            Some(labels.embedded())
        }
        Some(_) => {
            return Err(crate::invalid!(
                "query audio: no speech found in {:.1} s of audio, and the sound classifier hears only silence",
                t.seconds
            ))
        }
        None if enc.clap.is_some() => None,
        None => {
            return Err(crate::invalid!(
                "query audio: no speech found in {:.1} s of audio (no sound-event classifier is loaded, models.sound, \
                 so a sound without speech has no text-space vector)",
                t.seconds
            ))
        }
    };
    Ok(HeardQuery::Sound { text, pcm: audio.samples, rate: audio.rate })
}

/// The sound-event labels of a recording, None without a classifier.
pub fn sound_events(enc: &Encoders, samples: &[f32], rate: u32, src: &str) -> Result<Option<SoundLabels>> {
    let Some(m) = &enc.sound else { return Ok(None) };
    let _span = tracing::info_span!("ingest.sound_events").entered();
    let pcm = agentdb_models::audio::resample(samples, rate, agentdb_models::sound::RATE as u32);
    let scores = m.scores(&pcm).map_err(|e| Error::from(e).about(src))?;
    Ok(Some(SoundLabels::new(m.top(&scores, SOUND_LABELS))))
}

/// Classes looked at per sound.
const SOUND_LABELS: usize = 6;
/// A class below this mean score is not named (unless it is the best one).
const SOUND_MIN_SCORE: f32 = 0.05;

/// The classes that describe a sound, as a `sound` item or part stores them and as its
/// vector (and a query by a sound) embeds them.
#[derive(Debug, Clone)]
pub struct SoundLabels {
    /// Class names, best first (payload `labels`).
    pub names: Vec<String>,
    /// Their scores, to 3 decimals (payload `label_scores`).
    pub scores: Vec<f32>,
    /// The names lower-cased and joined by ", " (payload `sound`, keyword index).
    pub heard: String,
}

impl SoundLabels {
    /// The best class, and the others among the top [`SOUND_LABELS`] that score at
    /// least [`SOUND_MIN_SCORE`].
    pub fn new(top: Vec<(String, f32)>) -> SoundLabels {
        let (names, scores): (Vec<String>, Vec<f32>) = top
            .into_iter()
            .enumerate()
            .filter(|(i, (_, s))| *i == 0 || *s >= SOUND_MIN_SCORE)
            .map(|(_, (n, s))| (n, (s * 1000.0).round() / 1000.0))
            .unzip();
        let heard = names.iter().map(|n| n.to_lowercase()).collect::<Vec<_>>().join(", ");
        SoundLabels { names, scores, heard }
    }

    /// Whether the classifier's best class is silence (nothing worth a part or a query).
    pub fn is_silence(&self) -> bool {
        self.names.first().is_some_and(|n| n == "Silence")
    }

    /// What the text encoder embeds: "the sound of {labels}".
    pub fn embedded(&self) -> String {
        format!("the sound of {}", self.heard)
    }
}
