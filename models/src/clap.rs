//! A user's CLAP (contrastive language–audio model: LAION's `clap-htsat-unfused`,
//! Microsoft's, or any audio/text tower pair trained into one space) as two ONNX graphs
//! run through ONNX Runtime, so a sound is embedded from its waveform and found by a
//! sentence ("a dog barking in the distance") without going through class labels.
//!
//! No CLAP weights ship in a package registry; the folder is the user's, exported for
//! example as transformers.js does (`audio_model.onnx`: `input_features` →
//! `audio_embeds`, `text_model.onnx`: `input_ids`, `attention_mask` → `text_embeds`).
//!
//! # The folder (architecture `onnx-clap`)
//! - `agentdb-model.json`: `weights` names the audio graph (SHA-256 checked), `dim` the
//!   shared embedding size.
//! - [`crate::onnx::CONFIG_FILE`]:
//!   ```json
//!   {"audio": {"input": "input_features", "output": "audio_embeds"},
//!    "text": {"weights": "text_model.onnx", "sha256": "…", "input_ids": "input_ids",
//!             "attention_mask": "attention_mask", "output": "text_embeds",
//!             "pooling": "none", "max_tokens": 77},
//!    "features": {"sample_rate": 48000, "window_samples": 480000, "n_fft": 1024,
//!                 "hop": 480, "mels": 64, "fmin": 50, "fmax": 14000}}
//!   ```
//!   `features` may be left out (these are `laion/clap-htsat-unfused`'s); the text
//!   tower's fields are those of an `onnx-text` model ([`crate::onnx::TextConfig`]) plus
//!   its graph file and checksum.
//! - `tokenizer.json` (Hugging Face) for the text tower.
//!
//! # Front end
//! `transformers`' `ClapFeatureExtractor` with `truncation="rand_trunc"`,
//! `padding="repeatpad"` (the unfused checkpoints' setting): mono at `sample_rate`; a
//! recording shorter than one window is tiled `⌊window / length⌋` times and zero-filled
//! to the window; a longer one is cut into consecutive windows (a trailing part shorter
//! than a window is dropped; more than [`MAX_WINDOWS`] windows are sampled evenly,
//! instead of the extractor's one random crop, so the vector is reproducible). Each
//! window: reflect-padded by `n_fft/2` each side, periodic-Hann frames of `n_fft` every
//! `hop`, power spectrum, Slaney mel bank (`fmin`..`fmax`), `10·log10(max(mel, 1e-10))`
//! → `[frames × mels]` (1001 × 64 for the defaults), fed as `[batch, 1, frames, mels]`
//! (or `[batch, frames, mels]` when the graph's input has rank 3).
//! `models/tests/reference/clap_features_reference.py` computes the same features with
//! `transformers` itself; `models/tests/clap.rs` compares them.
//!
//! # Embeddings
//! A recording's vector is the mean of its windows' raw audio embeddings, L2-normalised;
//! a text's is the text tower's output, L2-normalised. Fused CLAPs (a second `is_longer`
//! input and four-channel features) are refused at load with the reason.

use crate::dsp;
use crate::error::{Error, Result};
use crate::onnx::{self, OnnxTextEncoder, Pooling, TextConfig};
use crate::registry::{self, ModelInfo};
use ort::session::Session;
use ort::value::{TensorElementType, TensorRef};
use serde::Deserialize;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

pub const ARCHITECTURE: &str = "onnx-clap";
/// Most windows embedded per recording (5 minutes at the default 10 s); longer
/// recordings are sampled at this many evenly spaced windows.
pub const MAX_WINDOWS: usize = 30;
/// `mel_floor` and the dB conversion's `min_value` in the reference extractor.
const MEL_FLOOR: f64 = 1e-10;

/// The audio tower's graph input and output (the graph is the manifest's `weights`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioTower {
    pub input: String,
    pub output: String,
}

fn default_max_tokens() -> usize {
    77
}

/// The text tower: its graph file and checksum and how to feed it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextTower {
    pub weights: String,
    pub sha256: String,
    pub input_ids: String,
    pub attention_mask: Option<String>,
    #[serde(default)]
    pub token_type_ids: Option<String>,
    pub output: String,
    pub pooling: Pooling,
    #[serde(default = "default_max_tokens")]
    pub max_tokens: usize,
}

/// The log-mel front end (defaults: `laion/clap-htsat-unfused`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Features {
    pub sample_rate: u32,
    /// Samples per window the audio tower sees (10 s).
    pub window_samples: usize,
    pub n_fft: usize,
    pub hop: usize,
    pub mels: usize,
    pub fmin: f64,
    pub fmax: f64,
}

impl Default for Features {
    fn default() -> Self {
        Features {
            sample_rate: 48_000,
            window_samples: 480_000,
            n_fft: 1024,
            hop: 480,
            mels: 64,
            fmin: 50.0,
            fmax: 14_000.0,
        }
    }
}

impl Features {
    fn check(&self) -> std::result::Result<(), String> {
        if !self.n_fft.is_power_of_two() || !(16..=8192).contains(&self.n_fft) {
            return Err(format!("n_fft {} must be a power of two in 16..=8192", self.n_fft));
        }
        if self.hop == 0 || self.mels == 0 || self.mels > 512 {
            return Err(format!("hop ({}) must be positive and mels ({}) in 1..=512", self.hop, self.mels));
        }
        if !(8_000..=192_000).contains(&self.sample_rate) {
            return Err(format!("sample_rate {} is not in 8000..=192000", self.sample_rate));
        }
        if self.window_samples < self.n_fft || self.window_samples > 60 * self.sample_rate as usize {
            return Err(format!("window_samples {} must lie between n_fft and 60 s", self.window_samples));
        }
        let nyquist = self.sample_rate as f64 / 2.0;
        if !(self.fmin >= 0.0 && self.fmin < self.fmax && self.fmax <= nyquist) {
            return Err(format!("need 0 <= fmin ({}) < fmax ({}) <= {nyquist}", self.fmin, self.fmax));
        }
        Ok(())
    }

    /// Frames per window: `1 + window / hop` (centred frames).
    pub fn frames(&self) -> usize {
        1 + self.window_samples / self.hop
    }
}

/// [`crate::onnx::CONFIG_FILE`] of an `onnx-clap` model.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClapConfig {
    pub audio: AudioTower,
    pub text: TextTower,
    #[serde(default)]
    pub features: Features,
}

/// A loaded CLAP: the audio tower and the text tower (see the module docs).
pub struct Clap {
    pub info: ModelInfo,
    pub config: ClapConfig,
    text: OnnxTextEncoder,
    audio: Mutex<Session>,
    /// The audio input's rank (3 or 4) and fixed batch size, if any.
    rank: usize,
    batch: Option<usize>,
    mel: Vec<f32>,
    window: Vec<f64>,
}

impl std::fmt::Debug for Clap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clap").field("model", &self.info.encoder_id()).finish_non_exhaustive()
    }
}

impl Clap {
    /// Load an `onnx-clap` folder (both graphs checksum-verified), loading ONNX Runtime
    /// from `models_dir` first if this process has not yet.
    pub fn load(info: ModelInfo, models_dir: &Path) -> Result<Clap> {
        let manifest_path = info.dir.join(registry::MANIFEST);
        if info.manifest.architecture != ARCHITECTURE {
            return Err(onnx::load_err(
                &manifest_path,
                format!("architecture {:?} is not {ARCHITECTURE:?}", info.manifest.architecture),
            ));
        }
        let cfg_path = info.dir.join(onnx::CONFIG_FILE);
        let text = std::fs::read_to_string(&cfg_path).map_err(|e| onnx::load_err(&cfg_path, e))?;
        let config: ClapConfig = serde_json::from_str(&text).map_err(|e| onnx::load_err(&cfg_path, e))?;
        config.features.check().map_err(|e| onnx::load_err(&cfg_path, e))?;
        registry::verify(&info)?;
        let text_weights = info.dir.join(&config.text.weights);
        let sha = registry::sha256_file(&text_weights)?;
        if !sha.eq_ignore_ascii_case(config.text.sha256.trim()) {
            return Err(onnx::load_err(
                &text_weights,
                format!("checksum mismatch: {} says {}, the file is {sha}", onnx::CONFIG_FILE, config.text.sha256),
            ));
        }
        let t = &config.text;
        let text_config = TextConfig {
            input_ids: t.input_ids.clone(),
            attention_mask: t.attention_mask.clone(),
            token_type_ids: t.token_type_ids.clone(),
            output: t.output.clone(),
            pooling: t.pooling,
            max_tokens: t.max_tokens,
        };
        let tk_path = info.dir.join("tokenizer.json");
        let text =
            OnnxTextEncoder::from_parts(info.clone(), text_config, &text_weights, &tk_path, &cfg_path, models_dir)?;
        let weights = info.dir.join(&info.manifest.weights);
        let session = onnx::session(&weights, models_dir)?;
        let (rank, batch) = check_audio_graph(&session, &config).map_err(|e| onnx::load_err(&cfg_path, e))?;
        let f = &config.features;
        let mel = dsp::slaney_mel(f.sample_rate as f64, f.n_fft, f.mels, f.fmin, f.fmax);
        let window = dsp::periodic_hann(f.n_fft);
        tracing::info!(model = %info.encoder_id(), dim = info.manifest.dim, "CLAP loaded (ONNX Runtime): audio and text towers");
        Ok(Clap { info, text, audio: Mutex::new(session), rank, batch, mel, window, config })
    }

    pub fn dim(&self) -> usize {
        self.info.manifest.dim
    }

    /// L2-normalised text-tower embeddings, one per text.
    pub fn embed_texts(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        self.text.embed(texts)
    }

    /// The windows a recording at the front end's rate is embedded as (see the module
    /// docs): each exactly `window_samples` long.
    pub fn windows(&self, pcm: &[f32]) -> Vec<Vec<f32>> {
        windows(pcm, self.config.features.window_samples)
    }

    /// The log-mel features of one window, `[frames × mels]` row-major (dB).
    pub fn features(&self, window: &[f32]) -> Vec<f32> {
        let f = &self.config.features;
        let half = f.n_fft / 2;
        // Reflect padding (numpy's "reflect": the edge sample is not repeated).
        let n = window.len();
        let at = |i: isize| -> f64 {
            let mut i = i;
            if n == 1 {
                return window[0] as f64;
            }
            let period = 2 * (n as isize - 1);
            i = i.rem_euclid(period);
            if i >= n as isize {
                i = period - i;
            }
            window[i as usize] as f64
        };
        let frames = 1 + n / f.hop;
        let bins = f.n_fft / 2 + 1;
        let (mut re, mut im) = (vec![0f64; f.n_fft], vec![0f64; f.n_fft]);
        let mut power = vec![0f64; bins];
        let mut out = Vec::with_capacity(frames * f.mels);
        for t in 0..frames {
            let start = (t * f.hop) as isize - half as isize;
            for (i, (r, w)) in re.iter_mut().zip(&self.window).enumerate() {
                *r = at(start + i as isize) * w;
            }
            im.iter_mut().for_each(|v| *v = 0.0);
            dsp::fft(&mut re, &mut im);
            for (k, p) in power.iter_mut().enumerate() {
                *p = re[k] * re[k] + im[k] * im[k];
            }
            for row in self.mel.chunks_exact(bins) {
                let e: f64 = row.iter().zip(&power).filter(|(w, _)| **w != 0.0).map(|(&w, &p)| w as f64 * p).sum();
                out.push((10.0 * e.max(MEL_FLOOR).log10()) as f32);
            }
        }
        out
    }

    /// The L2-normalised embedding of a recording (mono PCM at `rate` Hz).
    pub fn embed_audio(&self, pcm: &[f32], rate: u32) -> Result<Vec<f32>> {
        if pcm.is_empty() {
            return Err(Error::InvalidInput("no audio samples to embed".into()));
        }
        if let Some(i) = pcm.iter().position(|x| !x.is_finite()) {
            return Err(Error::InvalidInput(format!("audio sample {i} is not a finite number")));
        }
        let (sr, size) = (self.config.features.sample_rate, self.config.features.window_samples);
        let src_size = (size as f64 * rate as f64 / sr as f64).ceil() as usize;
        let windows: Vec<Vec<f32>> = if rate != sr && pcm.len() > src_size * MAX_WINDOWS {
            // A long recording (up to an hour): choose the windows first and resample only
            // those, not the whole recording (which at 48 kHz would take ~0.7 GB).
            windows(pcm, src_size)
                .iter()
                .map(|w| {
                    let mut r = crate::audio::resample(w, rate, sr);
                    r.resize(size, 0.0);
                    r
                })
                .collect()
        } else {
            self.windows(&crate::audio::resample(pcm, rate, sr))
        };
        let per = self.config.features.frames() * self.config.features.mels;
        let mut feats: Vec<f32> = Vec::with_capacity(windows.len() * per);
        for w in &windows {
            feats.extend(self.features(w));
        }
        let rows = self.audio_embeds(&feats, windows.len())?;
        let dim = self.dim();
        let mut mean = vec![0f32; dim];
        for r in rows.chunks_exact(dim) {
            mean.iter_mut().zip(r).for_each(|(m, v)| *m += v / windows.len() as f32);
        }
        if mean.iter().all(|v| *v == 0.0) {
            return Err(Error::Inference(format!("{}: the audio embedding is all zeros", self.info.manifest.name)));
        }
        Ok(onnx::normalise(vec![mean]).remove(0))
    }

    /// The audio tower's raw outputs for `n` windows of features, `[n × dim]`.
    pub fn audio_embeds(&self, feats: &[f32], n: usize) -> Result<Vec<f32>> {
        let f = &self.config.features;
        let (frames, mels) = (f.frames(), f.mels);
        let per = frames * mels;
        if feats.len() != n * per {
            return Err(Error::InvalidInput(format!("{} feature values for {n} windows of {per}", feats.len())));
        }
        let name = &self.info.manifest.name;
        let inf = onnx::inference(name);
        let dim = self.dim();
        let mut out = Vec::with_capacity(n * dim);
        let mut session = self.audio.lock().unwrap_or_else(PoisonError::into_inner);
        for chunk in feats.chunks(self.batch.unwrap_or(n.max(1)) * per) {
            let m = chunk.len() / per;
            let b = self.batch.unwrap_or(m);
            let mut data = chunk.to_vec();
            data.resize(b * per, 0.0);
            let res = if self.rank == 4 {
                let x = TensorRef::from_array_view(([b, 1, frames, mels], &data[..])).map_err(&inf)?;
                session.run(ort::inputs! { self.config.audio.input.as_str() => x }).map_err(&inf)?
            } else {
                let x = TensorRef::from_array_view(([b, frames, mels], &data[..])).map_err(&inf)?;
                session.run(ort::inputs! { self.config.audio.input.as_str() => x }).map_err(&inf)?
            };
            let (_, values) = res[self.config.audio.output.as_str()].try_extract_tensor::<f32>().map_err(&inf)?;
            if values.len() != b * dim {
                return Err(Error::Inference(format!(
                    "{name}: output {:?} has {} values for {b} windows, expected {dim} each (the manifest's dim)",
                    self.config.audio.output,
                    values.len()
                )));
            }
            out.extend_from_slice(&values[..m * dim]);
        }
        Ok(out)
    }
}

/// The audio graph takes f32 `[batch, 1, frames, mels]` or `[batch, frames, mels]` under
/// the configured name, and nothing else: (rank, fixed batch).
fn check_audio_graph(session: &Session, config: &ClapConfig) -> std::result::Result<(usize, Option<usize>), String> {
    let f = &config.features;
    let (ty, shape) = onnx::outlet(session.inputs(), &config.audio.input, "input")?;
    onnx::outlet(session.outputs(), &config.audio.output, "output")?;
    let names: Vec<&str> = session.inputs().iter().map(|o| o.name()).collect();
    if let Some(extra) = names.iter().find(|n| **n != config.audio.input) {
        return Err(format!(
            "the audio graph has a second input {extra:?} ({names:?}); only unfused CLAPs (one input of log-mel \
             features) are supported"
        ));
    }
    let want: Vec<i64> = match shape.len() {
        4 => vec![1, f.frames() as i64, f.mels as i64],
        3 => vec![f.frames() as i64, f.mels as i64],
        _ => vec![],
    };
    let fits = !want.is_empty() && shape.iter().skip(1).zip(&want).all(|(&d, &w)| d <= 0 || d == w);
    if ty != TensorElementType::Float32 || !fits {
        return Err(format!(
            "audio input {:?} is {ty:?} {shape:?}; the features are f32 [batch, 1, {}, {}] ({} frames of {} mel \
             bands)",
            config.audio.input,
            f.frames(),
            f.mels,
            f.frames(),
            f.mels
        ));
    }
    Ok((shape.len(), onnx::fixed_batch(&shape)))
}

/// A recording cut into windows of exactly `size` samples (see the module docs).
pub fn windows(pcm: &[f32], size: usize) -> Vec<Vec<f32>> {
    if pcm.is_empty() || size == 0 {
        return Vec::new();
    }
    if pcm.len() < size {
        // repeatpad: tiled ⌊size / len⌋ times, then zero-filled.
        let mut w: Vec<f32> = pcm.iter().copied().cycle().take(size / pcm.len() * pcm.len()).collect();
        w.resize(size, 0.0);
        return vec![w];
    }
    let n = pcm.len() / size;
    let pick: Vec<usize> =
        if n > MAX_WINDOWS { (0..MAX_WINDOWS).map(|i| i * n / MAX_WINDOWS).collect() } else { (0..n).collect() };
    pick.into_iter().map(|i| pcm[i * size..(i + 1) * size].to_vec()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_recordings_are_tiled_then_zero_filled() {
        let w = windows(&[1.0, 2.0, 3.0], 10);
        assert_eq!(w, vec![vec![1.0, 2.0, 3.0, 1.0, 2.0, 3.0, 1.0, 2.0, 3.0, 0.0]]);
        // Longer than half a window: one copy, then zeros.
        assert_eq!(windows(&[1.0; 6], 10), vec![[vec![1.0; 6], vec![0.0; 4]].concat()]);
    }

    #[test]
    fn long_recordings_are_whole_windows_sampled_evenly() {
        let pcm: Vec<f32> = (0..25).map(|i| i as f32).collect();
        let w = windows(&pcm, 10);
        assert_eq!(w.len(), 2, "the trailing 5 samples are dropped");
        assert_eq!(w[1][0], 10.0);
        let long = vec![0.5f32; 10 * (MAX_WINDOWS * 3 + 1)];
        assert_eq!(windows(&long, 10).len(), MAX_WINDOWS);
        assert!(windows(&[], 10).is_empty());
    }

    #[test]
    fn default_features_are_the_unfused_checkpoints() {
        let f = Features::default();
        assert!(f.check().is_ok());
        assert_eq!(f.frames(), 1001);
        let bad = Features { n_fft: 1000, ..Features::default() };
        assert!(bad.check().unwrap_err().contains("power of two"));
        let bad = Features { fmax: 30_000.0, ..Features::default() };
        assert!(bad.check().is_err());
    }
}
