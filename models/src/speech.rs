//! Speech → text: Silero VAD finds the speech, Whisper base transcribes only those
//! regions (grouped into windows of at most 30 s), so non-speech never reaches Whisper
//! (which loops on it), and segment times are absolute in the recording.
//!
//! Transcription runs on the batcher's own thread (one recording at a time, bounded
//! queue), never on the async runtime.

use crate::audio::{decode_audio, resample, AudioLimits};
use crate::batcher::{Batcher, BatcherConfig};
use crate::error::Result;
use crate::registry::ModelInfo;
use crate::vad::Vad;
use crate::whisper::{Segment, Whisper};
use std::sync::Arc;

pub const RATE: u32 = 16_000;
/// Longest window handed to Whisper (its context is 30 s).
const MAX_WINDOW_S: f32 = 28.0;
/// Regions closer than this are transcribed in one window.
const JOIN_GAP_S: f32 = 1.0;

pub struct SpeechService {
    pub vad: Arc<Vad>,
    pub whisper: Arc<Whisper>,
    pub vad_info: ModelInfo,
    pub whisper_info: ModelInfo,
    batcher: Batcher<Vec<f32>, Vec<Segment>>,
}

/// A recording's transcript.
#[derive(Debug, Clone)]
pub struct Transcript {
    pub segments: Vec<Segment>,
    /// Seconds of audio, and of detected speech.
    pub seconds: f32,
    pub speech_seconds: f32,
}

impl SpeechService {
    pub fn new(vad: Vad, vad_info: ModelInfo, whisper: Whisper, whisper_info: ModelInfo, cfg: BatcherConfig) -> Self {
        let whisper = Arc::new(whisper);
        let w = whisper.clone();
        let batcher = Batcher::new(
            "whisper",
            BatcherConfig { max_batch: 1, ..cfg },
            Arc::new(move |windows: Vec<Vec<f32>>| windows.iter().map(|pcm| w.transcribe(pcm)).collect()),
        );
        SpeechService { vad: Arc::new(vad), whisper, vad_info, whisper_info, batcher }
    }

    /// `whisper-base@…` (the VAD gates it but does not change what it produces).
    pub fn encoder_id(&self) -> String {
        self.whisper_info.encoder_id()
    }

    /// Decode any supported audio, resample to 16 kHz and transcribe (blocking).
    pub fn transcribe_bytes_blocking(&self, bytes: &[u8], lim: AudioLimits) -> Result<Transcript> {
        let audio = decode_audio(bytes, lim)?;
        self.transcribe_at(&audio.samples, audio.rate)
    }

    /// Transcribe mono samples at any `rate` (resampled to 16 kHz first).
    pub fn transcribe_at(&self, samples: &[f32], rate: u32) -> Result<Transcript> {
        self.transcribe_blocking(&resample(samples, rate, RATE))
    }

    /// Whisper over the first 30 s of a recording at any `rate` *without* the VAD gate
    /// (for a recording in which the VAD found no speech): the segments Whisper keeps
    /// under its own no-speech and repetition gates. On non-speech sound it writes
    /// little, and what it writes is often a guess at words; callers keep only what
    /// they can use (see `agentdb_retrieval`'s sound items and docs/SEARCH.md).
    pub fn transcribe_ungated(&self, samples: &[f32], rate: u32) -> Result<Vec<Segment>> {
        let mut pcm = resample(samples, rate, RATE);
        pcm.truncate(30 * RATE as usize);
        if pcm.is_empty() {
            return Ok(Vec::new());
        }
        let mut out = self.batcher.submit_many_blocking(vec![pcm])?;
        Ok(out.pop().unwrap_or_default().into_iter().filter(|s| !s.text.trim().is_empty()).collect())
    }

    /// Transcribe 16 kHz mono samples: VAD regions → windows → Whisper.
    pub fn transcribe_blocking(&self, pcm: &[f32]) -> Result<Transcript> {
        let seconds = pcm.len() as f32 / RATE as f32;
        let regions = self.vad.speech_regions(pcm)?;
        let speech_seconds = regions.iter().map(|(a, b)| b - a).sum();
        let windows = windows(&regions);
        let mut jobs = Vec::with_capacity(windows.len());
        for &(a, b) in &windows {
            let (i, j) = ((a * RATE as f32) as usize, ((b * RATE as f32) as usize).min(pcm.len()));
            if j > i {
                jobs.push((a, pcm[i..j].to_vec()));
            }
        }
        let (starts, inputs): (Vec<f32>, Vec<Vec<f32>>) = jobs.into_iter().unzip();
        let results = self.batcher.submit_many_blocking(inputs)?;
        let mut segments = Vec::new();
        for (offset, segs) in starts.into_iter().zip(results) {
            for mut s in segs {
                s.start += offset;
                s.end += offset;
                if !s.text.trim().is_empty() {
                    segments.push(s);
                }
            }
        }
        Ok(Transcript { segments, seconds, speech_seconds })
    }
}

impl Transcript {
    /// All segments' text, trimmed and joined by spaces ("" when nothing was said).
    pub fn text(&self) -> String {
        self.segments.iter().map(|s| s.text.trim()).filter(|t| !t.is_empty()).collect::<Vec<_>>().join(" ")
    }
}

/// Group speech regions into windows Whisper can take: regions closer than
/// `JOIN_GAP_S` share a window up to `MAX_WINDOW_S`; a longer region is cut.
pub fn windows(regions: &[(f32, f32)]) -> Vec<(f32, f32)> {
    let mut out: Vec<(f32, f32)> = Vec::new();
    for &(mut a, b) in regions {
        if !(a.is_finite() && b.is_finite()) || b <= a {
            continue;
        }
        if let Some(last) = out.last_mut() {
            if a - last.1 < JOIN_GAP_S && b - last.0 <= MAX_WINDOW_S {
                last.1 = b;
                continue;
            }
        }
        while b - a > MAX_WINDOW_S {
            out.push((a, a + MAX_WINDOW_S));
            a += MAX_WINDOW_S;
        }
        out.push((a, b));
    }
    out
}

/// Group transcript segments into passages of at most `max_words` words (a short
/// segment alone embeds poorly), keeping each passage's time range.
pub fn passages(segments: &[Segment], max_words: usize) -> Vec<(f32, f32, String)> {
    let mut out: Vec<(f32, f32, String)> = Vec::new();
    for s in segments {
        let words = s.text.split_whitespace().count();
        match out.last_mut() {
            Some(last) if last.2.split_whitespace().count() + words <= max_words.max(1) => {
                last.1 = s.end;
                last.2.push(' ');
                last.2.push_str(s.text.trim());
            }
            _ => out.push((s.start, s.end, s.text.trim().to_string())),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_join_close_regions_and_cut_long_ones() {
        assert_eq!(windows(&[(0.0, 2.0), (2.5, 4.0), (10.0, 12.0)]), vec![(0.0, 4.0), (10.0, 12.0)]);
        let w = windows(&[(0.0, 70.0)]);
        assert_eq!(w, vec![(0.0, 28.0), (28.0, 56.0), (56.0, 70.0)]);
        assert!(windows(&[(5.0, 5.0), (f32::NAN, 1.0)]).is_empty());
        // Joining stops at the window limit.
        assert_eq!(windows(&[(0.0, 20.0), (20.5, 29.0)]).len(), 2);
    }

    #[test]
    fn passages_keep_times_and_word_budget() {
        let seg = |a: f32, b: f32, t: &str| Segment {
            start: a,
            end: b,
            text: t.into(),
            no_speech_prob: 0.0,
            avg_logprob: -0.2,
        };
        let p = passages(&[seg(0.0, 1.0, " one two"), seg(1.0, 2.0, "three"), seg(2.0, 3.0, "four five six")], 3);
        assert_eq!(p, vec![(0.0, 2.0, "one two three".to_string()), (2.0, 3.0, "four five six".to_string())]);
    }
}
