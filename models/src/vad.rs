//! Voice activity detection: Silero VAD (ONNX) run through ONNX Runtime (`ort`).
//!
//! # Runtime
//! `ort` is built with `load-dynamic`: nothing is linked at build time and nothing is
//! downloaded. The set-up (`make models`, `.ci/models.sh`) installs the runtime library
//! from the `onnxruntime` PyPI wheel into `<models dir>/onnxruntime/` with a manifest;
//! [`init_runtime`] loads it (checksum checked) once per process and creates the process's
//! single ONNX Runtime environment, which [`environment`] hands to anything else that
//! builds `ort` sessions (ONNX Runtime allows only one environment per process).
//!
//! # Model
//! `<models dir>/silero-vad/silero_vad.onnx` from the `silero-vad` wheel. Its graph takes
//! `input` `[1, 64 + 512]` f32 (the previous window's last 64 samples, then the 512 new
//! ones, at 16 kHz), `state` `[2, 1, 128]` f32 (recurrent state, zeros at the start) and
//! `sr` (i64 scalar, 16000), and returns `output` `[1, 1]` (speech probability of the
//! window) and `stateN` (the next state). Without the 64-sample context every
//! probability comes out near zero.
//!
//! # Post-processing
//! [`regions_from_probs`] is a port of `get_speech_timestamps` from `silero_vad/utils_vad.py`
//! (6.2.3) with no maximum speech duration: a region opens at a window with probability
//! `>= threshold`, closes once the probability has stayed below `neg_threshold` for
//! `min_silence_ms`, is dropped if not longer than `min_speech_ms`, and each region is
//! padded by `speech_pad_ms` on both sides (when two regions are closer than two pads the
//! gap is split between them). Regions that then touch are merged into one. Times are
//! returned in seconds, unrounded (Silero's `return_seconds` rounds to 0.1 s).
//!
//! # Concurrency
//! [`Vad`] is `Send + Sync`: the session sits behind a mutex (`ort` runs take `&mut`), so
//! concurrent callers are served one clip at a time. The session uses one intra-op and one
//! inter-op thread: the network is tiny and runs window by window, so more threads only
//! add overhead.

use crate::error::{Error, Result};
use crate::registry::{self, ModelInfo};
use ort::environment::Environment;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::{Tensor, TensorRef};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

/// The sample rate [`Vad::speech_regions`] expects (mono f32 PCM).
pub const SAMPLE_RATE: usize = 16_000;
/// New samples per model call at 16 kHz (32 ms).
pub const WINDOW: usize = 512;
/// Samples of the previous window prepended to each call.
const CONTEXT: usize = 64;
/// Elements of the recurrent state `[2, 1, 128]`.
const STATE_LEN: usize = 2 * 128;
/// The folder under the models dir that holds the ONNX Runtime library.
pub const RUNTIME_DIR: &str = "onnxruntime";

/// The process's ONNX Runtime environment, created by the first successful [`init_runtime`].
static RUNTIME: Mutex<Option<Environment>> = Mutex::new(None);

/// Load ONNX Runtime from `<models_dir>/onnxruntime/` and create the process's
/// environment. Idempotent and thread-safe: the first successful call wins and later calls
/// (with any folder) return at once. A failed call can be retried (e.g. after
/// `make models`).
pub fn init_runtime(models_dir: &Path) -> Result<()> {
    environment(models_dir).map(|_| ())
}

/// The process's one ONNX Runtime environment, loading the runtime first if needed (see
/// [`init_runtime`]). Other `ort`-based encoders must build their sessions on this one:
/// ONNX Runtime refuses a second environment.
pub fn environment(models_dir: &Path) -> Result<Environment> {
    let mut slot = RUNTIME.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(env) = slot.as_ref() {
        return Ok(env.clone());
    }
    let lib = runtime_library(&models_dir.join(RUNTIME_DIR))?;
    let load_err = |reason: String| Error::ModelLoad { path: lib.clone(), reason };
    let env = ort::init_from(&lib)
        .map_err(|e| load_err(e.to_string()))?
        .with_name("agentdb")
        .with_telemetry(false)
        .build()
        .map_err(|e| load_err(format!("cannot create the ONNX Runtime environment: {e}")))?;
    tracing::info!(library = %lib.display(), "loaded ONNX Runtime");
    *slot = Some(env.clone());
    Ok(env)
}

/// The runtime library in `dir`: the manifest's file (checksum verified) when there is a
/// manifest, else any `libonnxruntime.so*` placed there by hand.
fn runtime_library(dir: &Path) -> Result<PathBuf> {
    if dir.join(registry::MANIFEST).exists() {
        let info = registry::read_model(dir)?;
        registry::verify(&info)?;
        return Ok(dir.join(&info.manifest.weights));
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_file() && p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("libonnxruntime.so"))
        })
        .collect();
    found.sort();
    found.pop().ok_or_else(|| Error::ModelLoad {
        path: dir.to_path_buf(),
        reason: "ONNX Runtime library (libonnxruntime.so*) not found; install it with `make models`".into(),
    })
}

/// A session for a small network run by one caller at a time: one intra-op and one
/// inter-op thread, full graph optimisation, on the process's environment (loading ONNX
/// Runtime from `models_dir` first if needed). Silero VAD and YAMNet use it.
pub(crate) fn single_thread_session(models_dir: &Path, weights: &Path) -> Result<Session> {
    let env = environment(models_dir)?;
    // Builder errors carry the builder and are neither Send nor Sync: keep their text.
    let load_err = |reason: String| Error::ModelLoad { path: weights.to_path_buf(), reason };
    Session::builder(&env)
        .map_err(|e| load_err(e.to_string()))?
        .with_optimization_level(GraphOptimizationLevel::Level3)
        .map_err(|e| load_err(e.to_string()))?
        .with_intra_threads(1)
        .map_err(|e| load_err(e.to_string()))?
        .with_inter_threads(1)
        .map_err(|e| load_err(e.to_string()))?
        .commit_from_file(weights)
        .map_err(|e| load_err(e.to_string()))
}

/// Silero's post-processing parameters; the defaults are `get_speech_timestamps`'s.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VadParams {
    /// A window at or above this probability is speech.
    pub threshold: f32,
    /// Inside speech, a window below this probability counts as silence.
    pub neg_threshold: f32,
    /// Regions not longer than this are dropped.
    pub min_speech_ms: u32,
    /// Silence needed to close a region.
    pub min_silence_ms: u32,
    /// Padding added to each side of a region.
    pub speech_pad_ms: u32,
}

impl Default for VadParams {
    fn default() -> Self {
        VadParams { threshold: 0.5, neg_threshold: 0.35, min_speech_ms: 250, min_silence_ms: 100, speech_pad_ms: 30 }
    }
}

impl VadParams {
    fn check(&self) -> Result<()> {
        let ok = |t: f32| t.is_finite() && (0.0..=1.0).contains(&t);
        if !ok(self.threshold) || !ok(self.neg_threshold) {
            return Err(Error::InvalidInput(format!(
                "VAD thresholds must lie in [0, 1], got {} and {}",
                self.threshold, self.neg_threshold
            )));
        }
        Ok(())
    }
}

/// Silero VAD, ready to run.
pub struct Vad {
    pub info: ModelInfo,
    session: Mutex<Session>,
}

impl std::fmt::Debug for Vad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vad").field("info", &self.info).finish_non_exhaustive()
    }
}

impl Vad {
    /// Load the model named by `info` (checksum verified), loading ONNX Runtime from
    /// `models_dir` first if this process has not yet.
    pub fn load(info: ModelInfo, models_dir: &Path) -> Result<Vad> {
        let weights = info.dir.join(&info.manifest.weights);
        let load_err = |reason: String| Error::ModelLoad { path: weights.clone(), reason };
        if info.manifest.architecture != "silero-vad" {
            return Err(load_err(format!("architecture {:?} is not silero-vad", info.manifest.architecture)));
        }
        registry::verify(&info)?;
        let session = single_thread_session(models_dir, &weights)?;
        let names = |outlets: &[ort::value::Outlet]| outlets.iter().map(|o| o.name().to_string()).collect::<Vec<_>>();
        let (inputs, outputs) = (names(session.inputs()), names(session.outputs()));
        for want in ["input", "state", "sr"] {
            if !inputs.iter().any(|n| n == want) {
                return Err(load_err(format!("not a Silero VAD graph: no input {want:?} (inputs {inputs:?})")));
            }
        }
        for want in ["output", "stateN"] {
            if !outputs.iter().any(|n| n == want) {
                return Err(load_err(format!("not a Silero VAD graph: no output {want:?} (outputs {outputs:?})")));
            }
        }
        Ok(Vad { info, session: Mutex::new(session) })
    }

    /// Speech regions `(start, end)` in seconds of 16 kHz mono PCM, with the default
    /// parameters. Empty input gives no regions; NaN or infinite samples are refused.
    pub fn speech_regions(&self, pcm_16k_mono: &[f32]) -> Result<Vec<(f32, f32)>> {
        self.speech_regions_with(pcm_16k_mono, &VadParams::default())
    }

    /// [`Vad::speech_regions`] with explicit parameters.
    pub fn speech_regions_with(&self, pcm_16k_mono: &[f32], params: &VadParams) -> Result<Vec<(f32, f32)>> {
        params.check()?;
        let probs = self.speech_probabilities(pcm_16k_mono)?;
        Ok(regions_from_probs(&probs, pcm_16k_mono.len(), params)
            .into_iter()
            .map(|(s, e)| (s as f32 / SAMPLE_RATE as f32, e as f32 / SAMPLE_RATE as f32))
            .collect())
    }

    /// The speech probability of each 512-sample window (the last one zero-padded), with
    /// the recurrent state and the 64-sample context carried from window to window.
    pub fn speech_probabilities(&self, pcm_16k_mono: &[f32]) -> Result<Vec<f32>> {
        if let Some(i) = pcm_16k_mono.iter().position(|x| !x.is_finite()) {
            return Err(Error::InvalidInput(format!("audio sample {i} is not a finite number")));
        }
        if pcm_16k_mono.is_empty() {
            return Ok(Vec::new());
        }
        let inf = |e: ort::Error| Error::Inference(format!("silero-vad: {e}"));
        let mut session = self.session.lock().unwrap_or_else(PoisonError::into_inner);
        let sr = Tensor::from_array(((), vec![SAMPLE_RATE as i64])).map_err(inf)?;
        let mut state = vec![0f32; STATE_LEN];
        let mut frame = vec![0f32; CONTEXT + WINDOW];
        let mut probs = Vec::with_capacity(pcm_16k_mono.len().div_ceil(WINDOW));
        for chunk in pcm_16k_mono.chunks(WINDOW) {
            // frame = [last 64 samples of the previous frame | this window, zero-padded]
            frame.copy_within(WINDOW.., 0);
            frame[CONTEXT..CONTEXT + chunk.len()].copy_from_slice(chunk);
            frame[CONTEXT + chunk.len()..].fill(0.0);
            let input = TensorRef::from_array_view(([1usize, CONTEXT + WINDOW], &frame[..])).map_err(inf)?;
            let state_in = TensorRef::from_array_view(([2usize, 1, 128], &state[..])).map_err(inf)?;
            let out = session.run(ort::inputs! { "input" => input, "state" => state_in, "sr" => &sr }).map_err(inf)?;
            let (_, p) = out["output"].try_extract_tensor::<f32>().map_err(inf)?;
            let (_, next) = out["stateN"].try_extract_tensor::<f32>().map_err(inf)?;
            if p.is_empty() || next.len() != STATE_LEN {
                return Err(Error::Inference(format!(
                    "silero-vad returned {} probabilities and a state of {} values",
                    p.len(),
                    next.len()
                )));
            }
            probs.push(p[0]);
            state.copy_from_slice(next);
        }
        Ok(probs)
    }
}

/// Silero's `get_speech_timestamps` post-processing (no maximum speech duration) over
/// per-window probabilities, `WINDOW` samples apart at 16 kHz, of a clip of `n_samples`
/// samples. Returns `(start, end)` sample offsets, sorted and disjoint.
pub fn regions_from_probs(probs: &[f32], n_samples: usize, params: &VadParams) -> Vec<(usize, usize)> {
    let ms = |v: u32| SAMPLE_RATE * v as usize / 1000;
    let (min_speech, min_silence, pad) =
        (ms(params.min_speech_ms), ms(params.min_silence_ms), ms(params.speech_pad_ms));

    let mut regions: Vec<(usize, usize)> = Vec::new();
    let mut start: Option<usize> = None; // Some while inside speech
    let mut temp_end: Option<usize> = None; // where the current run of silence began
    for (i, &p) in probs.iter().enumerate() {
        let cur = WINDOW * i;
        if p >= params.threshold {
            temp_end = None;
            if start.is_none() {
                start = Some(cur);
                continue;
            }
        }
        if let Some(s) = start {
            if p < params.neg_threshold {
                let te = *temp_end.get_or_insert(cur);
                if cur - te >= min_silence {
                    if te - s > min_speech {
                        regions.push((s, te));
                    }
                    start = None;
                    temp_end = None;
                }
            }
        }
    }
    if let Some(s) = start {
        if n_samples.saturating_sub(s) > min_speech {
            regions.push((s, n_samples));
        }
    }

    // Pad each side; split gaps shorter than two pads between their neighbours.
    let n = regions.len();
    for i in 0..n {
        if i == 0 {
            regions[0].0 = regions[0].0.saturating_sub(pad);
        }
        if i + 1 < n {
            let gap = regions[i + 1].0.saturating_sub(regions[i].1);
            let shift = if gap < 2 * pad { gap / 2 } else { pad };
            regions[i].1 = (regions[i].1 + shift).min(n_samples);
            regions[i + 1].0 = regions[i + 1].0.saturating_sub(shift);
        } else {
            regions[i].1 = (regions[i].1 + pad).min(n_samples);
        }
    }

    // Merge regions that now touch.
    let mut merged: Vec<(usize, usize)> = Vec::with_capacity(regions.len());
    for r in regions {
        match merged.last_mut() {
            Some(last) if r.0 <= last.1 => last.1 = last.1.max(r.1),
            _ => merged.push(r),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probs(spec: &[(f32, usize)]) -> Vec<f32> {
        spec.iter().flat_map(|&(p, n)| std::iter::repeat_n(p, n)).collect()
    }

    #[test]
    fn one_region_is_padded() {
        // 10 silent windows, 20 speech windows, 10 silent windows.
        let p = probs(&[(0.0, 10), (0.9, 20), (0.0, 10)]);
        let r = regions_from_probs(&p, 40 * WINDOW, &VadParams::default());
        assert_eq!(r, vec![(10 * WINDOW - 480, 30 * WINDOW + 480)]);
    }

    #[test]
    fn short_bursts_and_short_pauses() {
        // A 5-window burst (160 ms < 250 ms) is dropped; a 2-window dip (64 ms < 100 ms)
        // does not split a region; a dip between the two thresholds never ends speech.
        let p =
            probs(&[(0.0, 10), (0.9, 5), (0.0, 20), (0.9, 20), (0.1, 2), (0.9, 20), (0.4, 30), (0.9, 5), (0.0, 10)]);
        let r = regions_from_probs(&p, p.len() * WINDOW, &VadParams::default());
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!(r[0].0, 35 * WINDOW - 480);
        assert_eq!(r[0].1, 112 * WINDOW + 480);
    }

    #[test]
    fn speech_to_the_end_and_nothing() {
        let p = probs(&[(0.0, 3), (0.9, 20)]);
        let n = 23 * WINDOW - 100;
        assert_eq!(regions_from_probs(&p, n, &VadParams::default()), vec![(3 * WINDOW - 480, n)]);
        assert!(regions_from_probs(&[], 0, &VadParams::default()).is_empty());
        assert!(regions_from_probs(&probs(&[(0.2, 50)]), 50 * WINDOW, &VadParams::default()).is_empty());
    }

    #[test]
    fn close_regions_share_the_gap_and_merge() {
        let params = VadParams { speech_pad_ms: 200, ..VadParams::default() };
        let p = probs(&[(0.9, 20), (0.0, 5), (0.9, 20)]);
        let r = regions_from_probs(&p, p.len() * WINDOW, &params);
        assert_eq!(r, vec![(0, p.len() * WINDOW)]);
    }

    #[test]
    fn missing_runtime_is_a_clear_error() {
        let err = runtime_library(Path::new("/nonexistent/agentdb/onnxruntime")).unwrap_err();
        assert!(matches!(err, Error::ModelLoad { .. }));
        assert!(err.to_string().contains("make models"), "{err}");
    }

    #[test]
    fn bad_thresholds_are_refused() {
        assert!(VadParams { threshold: f32::NAN, ..VadParams::default() }.check().is_err());
        assert!(VadParams { neg_threshold: 1.5, ..VadParams::default() }.check().is_err());
        assert!(VadParams::default().check().is_ok());
    }
}
