//! Speech transcription: OpenAI Whisper from CTranslate2 weights, run with Candle.
//!
//! The model folder (installed by `.ci/models.sh` as `whisper-base`) holds a CTranslate2
//! `model.bin` (format version 6, float16 here), `tokenizer.json`, `config.json` (the
//! token ids to suppress) and the `agentdb-model.json` manifest. Loading checks the
//! checksum, reads `model.bin` ([`read_ct2`]), splits CTranslate2's fused projections and
//! renames every variable to the Hugging Face names that
//! `candle_transformers::models::whisper::model::Whisper` loads ([`Ct2Model::whisper_tensors`]).
//!
//! Transcription follows OpenAI's `transcribe()` at temperature 0 without fallback and
//! without conditioning on the previous window's text: English, transcribe task,
//! timestamps on. Each 30 s window's log-mel spectrogram (80 Slaney mel bins,
//! [`mel_filters`], computed here rather than shipped) goes through the encoder; the
//! decoder then runs greedily with OpenAI's logit filters (suppressed tokens, no blank at
//! the start, timestamp rules) until end-of-text or 224 tokens. Timestamp pairs split a
//! window's tokens into segments, and the next window starts at the last complete
//! timestamp (or 30 s later). A window is dropped when it looks like no speech (no-speech
//! probability ≥ 0.6 and average log-probability < -1) or like a repetition loop (gzip
//! compression ratio of its text ≥ 2.4). A window that is digital silence (every sample
//! below -60 dBFS) is skipped without decoding: Whisper tends to hear "you" in it. Quiet
//! but not silent stretches (room tone) can still produce such words; a voice-activity
//! detector in front of transcription is the remedy for those.
//!
//! The weights are shared; each call decodes with its own copy of the model's caches, so
//! one [`Whisper`] serves concurrent callers. Memory per call is bounded by one window.

use crate::error::{Error, Result};
use crate::registry::{self, ModelInfo};
use candle_core::{DType, Device, IndexOp, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::whisper::{self as w, audio::pcm_to_mel, model::Whisper as WhisperModel, Config};
use std::collections::HashMap;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use tokenizers::Tokenizer;

/// Sample rate the model expects, in Hz.
pub const SAMPLE_RATE: usize = w::SAMPLE_RATE;
/// Most tokens decoded per 30 s window (half the decoder's context, as OpenAI).
const SAMPLE_LEN: usize = 224;
/// Mel frames per second (hop of 160 samples at 16 kHz).
const FRAMES_PER_SECOND: usize = SAMPLE_RATE / w::HOP_LENGTH;
/// Seconds per timestamp token.
const TIME_PRECISION: f32 = 0.02;
/// The first timestamp may be at most 1 s into the window (50 timestamp steps).
const MAX_INITIAL_TIMESTAMP_INDEX: u32 = 50;
const NO_SPEECH_THRESHOLD: f32 = w::NO_SPEECH_THRESHOLD as f32;
const LOGPROB_THRESHOLD: f32 = w::LOGPROB_THRESHOLD as f32;
const COMPRESSION_RATIO_THRESHOLD: f32 = w::COMPRESSION_RATIO_THRESHOLD as f32;
/// A window whose samples all stay below this (-60 dBFS) is silence and is not decoded.
const SILENCE_PEAK: f32 = 1e-3;

/// One transcribed span of speech.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// Start, in seconds from the start of the input.
    pub start: f32,
    /// End, in seconds from the start of the input.
    pub end: f32,
    /// The text, trimmed.
    pub text: String,
    /// Probability of "no speech" for the 30 s window the segment came from.
    pub no_speech_prob: f32,
    /// Mean log-probability of the tokens decoded for that window.
    pub avg_logprob: f32,
}

// ---------------------------------------------------------------------------------------
// CTranslate2 model.bin

/// The variables of a CTranslate2 `model.bin`, by name. Aliases are resolved (each alias
/// maps to its target's tensor). Floating-point variables keep their stored type (F32,
/// F16 or BF16); integers become I16 (from int8 or int16) or I32.
#[derive(Debug)]
pub struct Ct2Model {
    /// The file it was read from (named in errors).
    pub path: PathBuf,
    /// Model specification, e.g. `WhisperSpec`.
    pub spec: String,
    pub spec_revision: u32,
    pub variables: HashMap<String, Tensor>,
}

/// Read a CTranslate2 `model.bin` (binary format versions 4 to 6).
pub fn read_ct2(path: &Path) -> Result<Ct2Model> {
    let err = |reason: String| Error::ModelLoad { path: path.to_path_buf(), reason };
    let file = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
    let mut r = BufReader::with_capacity(1 << 20, file);
    parse_ct2(&mut r, path.to_path_buf()).map_err(|e| err(format!("bad CTranslate2 model: {e}")))
}

fn read_u8(r: &mut impl Read) -> std::result::Result<u8, String> {
    let mut b = [0u8; 1];
    r.read_exact(&mut b).map_err(|e| format!("truncated file: {e}"))?;
    Ok(b[0])
}

fn read_u16(r: &mut impl Read) -> std::result::Result<u16, String> {
    let mut b = [0u8; 2];
    r.read_exact(&mut b).map_err(|e| format!("truncated file: {e}"))?;
    Ok(u16::from_le_bytes(b))
}

fn read_u32(r: &mut impl Read) -> std::result::Result<u32, String> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b).map_err(|e| format!("truncated file: {e}"))?;
    Ok(u32::from_le_bytes(b))
}

/// Read exactly `n` bytes without trusting `n` for the allocation up front.
fn read_bytes(r: &mut impl Read, n: usize) -> std::result::Result<Vec<u8>, String> {
    let mut buf = Vec::with_capacity(n.min(1 << 20));
    r.take(n as u64).read_to_end(&mut buf).map_err(|e| format!("read error: {e}"))?;
    if buf.len() != n {
        return Err(format!("truncated file: wanted {n} bytes, got {}", buf.len()));
    }
    Ok(buf)
}

/// A string: u16 length (counting a trailing NUL), then the bytes.
fn read_string(r: &mut impl Read) -> std::result::Result<String, String> {
    let n = read_u16(r)? as usize;
    let mut bytes = read_bytes(r, n)?;
    if bytes.last() == Some(&0) {
        bytes.pop();
    }
    String::from_utf8(bytes).map_err(|e| format!("string is not UTF-8: {e}"))
}

fn parse_ct2(r: &mut impl Read, path: PathBuf) -> std::result::Result<Ct2Model, String> {
    let version = read_u32(r)?;
    if !(4..=6).contains(&version) {
        return Err(format!("binary version {version} is not supported (4 to 6)"));
    }
    let spec = read_string(r)?;
    let spec_revision = read_u32(r)?;
    let count = read_u32(r)?;
    let mut variables = HashMap::new();
    for _ in 0..count {
        let name = read_string(r)?;
        let rank = read_u8(r)? as usize;
        let dims = (0..rank).map(|_| read_u32(r).map(|d| d as usize)).collect::<std::result::Result<Vec<_>, _>>()?;
        let type_id = read_u8(r)?;
        let num_bytes = read_u32(r)? as usize;
        // CTranslate2's DataType: FLOAT32, INT8, INT16, INT32, FLOAT16, BFLOAT16.
        let (dtype, item) = match type_id {
            0 => (DType::F32, 4),
            1 => (DType::I16, 1),
            2 => (DType::I16, 2),
            3 => (DType::I32, 4),
            4 => (DType::F16, 2),
            5 => (DType::BF16, 2),
            t => return Err(format!("{name}: unknown data type {t}")),
        };
        let elems = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or(format!("{name}: shape overflows"))?;
        if elems.checked_mul(item) != Some(num_bytes) {
            return Err(format!("{name}: {num_bytes} bytes do not hold shape {dims:?} of type {type_id}"));
        }
        let mut bytes = read_bytes(r, num_bytes)?;
        if type_id == 1 {
            // Candle has no int8: widen to int16.
            bytes = bytes.iter().flat_map(|&b| i16::from(b as i8).to_le_bytes()).collect();
        }
        let t = Tensor::from_raw_buffer(&bytes, dtype, &dims, &Device::Cpu).map_err(|e| format!("{name}: {e}"))?;
        variables.insert(name, t);
    }
    let aliases = read_u32(r)?;
    for _ in 0..aliases {
        let alias = read_string(r)?;
        let target = read_string(r)?;
        let t = variables.get(&target).cloned().ok_or(format!("alias {alias} names a missing variable {target}"))?;
        variables.insert(alias, t);
    }
    Ok(Ct2Model { path, spec, spec_revision, variables })
}

impl Ct2Model {
    fn err(&self, reason: impl std::fmt::Display) -> Error {
        Error::ModelLoad { path: self.path.clone(), reason: reason.to_string() }
    }

    /// A floating-point variable (quantized weights are not supported).
    fn float(&self, name: &str) -> Result<&Tensor> {
        let t = self.variables.get(name).ok_or_else(|| self.err(format!("missing variable {name}")))?;
        match t.dtype() {
            DType::F32 | DType::F16 | DType::BF16 => Ok(t),
            d => Err(self.err(format!("{name} is {d:?}; quantized weights are not supported"))),
        }
    }

    /// An integer scalar such as `encoder/num_heads`.
    fn scalar(&self, name: &str) -> Result<usize> {
        let t = self.variables.get(name).ok_or_else(|| self.err(format!("missing variable {name}")))?;
        let v = t
            .to_dtype(DType::I64)
            .and_then(|t| t.to_scalar::<i64>())
            .map_err(|e| self.err(format!("{name} is not an integer scalar: {e}")))?;
        usize::try_from(v).map_err(|_| self.err(format!("{name} = {v} is negative")))
    }

    fn dim(&self, name: &str, i: usize) -> Result<usize> {
        self.float(name)?.dims().get(i).copied().ok_or_else(|| self.err(format!("{name} has no dimension {i}")))
    }

    fn layers(&self, stack: &str) -> usize {
        (0..).take_while(|i| self.variables.contains_key(&format!("{stack}/layer_{i}/ffn/linear_0/weight"))).count()
    }

    /// The model's dimensions as Candle's Whisper configuration.
    pub fn whisper_config(&self) -> Result<Config> {
        if self.spec != "WhisperSpec" {
            return Err(self.err(format!("spec is {}, not WhisperSpec", self.spec)));
        }
        Ok(Config {
            num_mel_bins: self.dim("encoder/conv1/weight", 1)?,
            max_source_positions: self.dim("encoder/position_encodings/encodings", 0)?,
            d_model: self.dim("decoder/embeddings/weight", 1)?,
            encoder_attention_heads: self.scalar("encoder/num_heads")?,
            encoder_layers: self.layers("encoder"),
            vocab_size: self.dim("decoder/embeddings/weight", 0)?,
            max_target_positions: self.dim("decoder/position_encodings/encodings", 0)?,
            decoder_attention_heads: self.scalar("decoder/num_heads")?,
            decoder_layers: self.layers("decoder"),
            suppress_tokens: Vec::new(),
        })
    }

    /// The weights under the Hugging Face names Candle's Whisper loads (`model.encoder.…`,
    /// `model.decoder.…`), fused query/key/value projections split, plus the configuration.
    /// The encoder's sinusoidal position encodings are not copied: Candle computes them.
    pub fn whisper_tensors(&self) -> Result<(HashMap<String, Tensor>, Config)> {
        let cfg = self.whisper_config()?;
        let d = cfg.d_model;
        let mut out = HashMap::new();
        let mut put = |to: String, t: Tensor| {
            out.insert(to, t);
        };
        let norm = |from: &str| -> Result<(Tensor, Tensor)> {
            Ok((self.float(&format!("{from}/gamma"))?.clone(), self.float(&format!("{from}/beta"))?.clone()))
        };
        let linear = |from: &str| -> Result<(Tensor, Tensor)> {
            Ok((self.float(&format!("{from}/weight"))?.clone(), self.float(&format!("{from}/bias"))?.clone()))
        };
        // Rows [i*d, (i+1)*d) of a fused projection's weight and bias.
        let part = |w: &Tensor, b: &Tensor, i: usize, name: &str| -> Result<(Tensor, Tensor)> {
            let rows = w.dim(0).map_err(|e| self.err(e))?;
            if b.dims() != [rows] || rows < (i + 1) * d {
                return Err(self.err(format!("{name}: fused projection has shape {:?}", w.dims())));
            }
            Ok((w.narrow(0, i * d, d).map_err(|e| self.err(e))?, b.narrow(0, i * d, d).map_err(|e| self.err(e))?))
        };
        // Whisper's key projections have no bias: CTranslate2 stores zeros there.
        let no_bias = |b: &Tensor, name: &str| -> Result<()> {
            let max = b.abs().and_then(|a| a.max(0)).and_then(|m| m.to_dtype(DType::F32)?.to_scalar::<f32>());
            if max.is_ok_and(|m| m == 0.0) {
                Ok(())
            } else {
                Err(self.err(format!("{name}: key bias is not zero; not a Whisper model")))
            }
        };

        for (from, to) in [("encoder/conv1", "model.encoder.conv1"), ("encoder/conv2", "model.encoder.conv2")] {
            let (w, b) = linear(from)?;
            put(format!("{to}.weight"), w);
            put(format!("{to}.bias"), b);
        }
        for (from, to) in
            [("encoder/layer_norm", "model.encoder.layer_norm"), ("decoder/layer_norm", "model.decoder.layer_norm")]
        {
            let (g, b) = norm(from)?;
            put(format!("{to}.weight"), g);
            put(format!("{to}.bias"), b);
        }
        put("model.decoder.embed_tokens.weight".into(), self.float("decoder/embeddings/weight")?.clone());
        put("model.decoder.embed_positions.weight".into(), self.float("decoder/position_encodings/encodings")?.clone());

        for (stack, layers) in [("encoder", cfg.encoder_layers), ("decoder", cfg.decoder_layers)] {
            for i in 0..layers {
                let from = format!("{stack}/layer_{i}");
                let to = format!("model.{stack}.layers.{i}");
                // Self-attention: fused q, k, v in linear_0, output in linear_1.
                let (g, b) = norm(&format!("{from}/self_attention/layer_norm"))?;
                put(format!("{to}.self_attn_layer_norm.weight"), g);
                put(format!("{to}.self_attn_layer_norm.bias"), b);
                let qkv_name = format!("{from}/self_attention/linear_0");
                let (w, b) = linear(&qkv_name)?;
                let (qw, qb) = part(&w, &b, 0, &qkv_name)?;
                let (kw, kb) = part(&w, &b, 1, &qkv_name)?;
                let (vw, vb) = part(&w, &b, 2, &qkv_name)?;
                no_bias(&kb, &qkv_name)?;
                put(format!("{to}.self_attn.q_proj.weight"), qw);
                put(format!("{to}.self_attn.q_proj.bias"), qb);
                put(format!("{to}.self_attn.k_proj.weight"), kw);
                put(format!("{to}.self_attn.v_proj.weight"), vw);
                put(format!("{to}.self_attn.v_proj.bias"), vb);
                let (w, b) = linear(&format!("{from}/self_attention/linear_1"))?;
                put(format!("{to}.self_attn.out_proj.weight"), w);
                put(format!("{to}.self_attn.out_proj.bias"), b);
                if stack == "decoder" {
                    // Cross-attention: q in linear_0, fused k, v in linear_1, output in linear_2.
                    let (g, b) = norm(&format!("{from}/attention/layer_norm"))?;
                    put(format!("{to}.encoder_attn_layer_norm.weight"), g);
                    put(format!("{to}.encoder_attn_layer_norm.bias"), b);
                    let (w, b) = linear(&format!("{from}/attention/linear_0"))?;
                    put(format!("{to}.encoder_attn.q_proj.weight"), w);
                    put(format!("{to}.encoder_attn.q_proj.bias"), b);
                    let kv_name = format!("{from}/attention/linear_1");
                    let (w, b) = linear(&kv_name)?;
                    let (kw, kb) = part(&w, &b, 0, &kv_name)?;
                    let (vw, vb) = part(&w, &b, 1, &kv_name)?;
                    no_bias(&kb, &kv_name)?;
                    put(format!("{to}.encoder_attn.k_proj.weight"), kw);
                    put(format!("{to}.encoder_attn.v_proj.weight"), vw);
                    put(format!("{to}.encoder_attn.v_proj.bias"), vb);
                    let (w, b) = linear(&format!("{from}/attention/linear_2"))?;
                    put(format!("{to}.encoder_attn.out_proj.weight"), w);
                    put(format!("{to}.encoder_attn.out_proj.bias"), b);
                }
                let (g, b) = norm(&format!("{from}/ffn/layer_norm"))?;
                put(format!("{to}.final_layer_norm.weight"), g);
                put(format!("{to}.final_layer_norm.bias"), b);
                for (lin, fc) in [("linear_0", "fc1"), ("linear_1", "fc2")] {
                    let (w, b) = linear(&format!("{from}/ffn/{lin}"))?;
                    put(format!("{to}.{fc}.weight"), w);
                    put(format!("{to}.{fc}.bias"), b);
                }
            }
        }
        Ok((out, cfg))
    }
}

// ---------------------------------------------------------------------------------------
// Log-mel spectrogram

/// The `n_mels` × 201 mel filterbank Whisper was trained with: librosa's
/// `filters.mel(sr=16000, n_fft=400, n_mels=n_mels)` (Slaney mel scale, Slaney area
/// normalisation), row-major. For 80 bins this is OpenAI's `mel_filters.npz` `mel_80`.
pub fn mel_filters(n_mels: usize) -> Vec<f32> {
    crate::dsp::slaney_mel(SAMPLE_RATE as f64, w::N_FFT, n_mels, 0.0, SAMPLE_RATE as f64 / 2.0)
}

// ---------------------------------------------------------------------------------------
// The model

/// Token ids the decoder needs.
#[derive(Debug, Clone)]
struct SpecialTokens {
    sot: u32,
    english: u32,
    transcribe: u32,
    eot: u32,
    no_speech: u32,
    no_timestamps: u32,
    /// `<|0.00|>`; every later id is a timestamp, 0.02 s apart.
    timestamp_begin: u32,
}

/// The token lists in CTranslate2's Whisper `config.json`.
#[derive(serde::Deserialize)]
struct TokenConfig {
    suppress_ids: Vec<u32>,
    suppress_ids_begin: Vec<u32>,
}

/// A loaded Whisper model. `Send + Sync`: calls run in parallel on shared weights.
pub struct Whisper {
    model: WhisperModel,
    tokenizer: Tokenizer,
    filters: Vec<f32>,
    tokens: SpecialTokens,
    /// Suppressed at every step (non-speech symbols, task and language tokens).
    suppress: Vec<u32>,
    /// Also suppressed at the first step (blank, end-of-text).
    suppress_begin: Vec<u32>,
    pub info: ModelInfo,
}

impl std::fmt::Debug for Whisper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Whisper").field("model", &self.info.encoder_id()).finish()
    }
}

/// What decoding one window gave.
struct Decoded {
    /// Sampled tokens, without the prompt and without end-of-text.
    tokens: Vec<u32>,
    no_speech_prob: f32,
    avg_logprob: f32,
}

fn load_err(info: &ModelInfo, what: &str, e: impl std::fmt::Display) -> Error {
    Error::ModelLoad { path: info.dir.clone(), reason: format!("{what}: {e}") }
}

impl Whisper {
    /// Load from a model folder holding the CTranslate2 `model.bin` named by the manifest,
    /// `tokenizer.json` and `config.json`, after checking the weights' checksum.
    pub fn load(info: ModelInfo) -> Result<Whisper> {
        if info.manifest.architecture != "whisper-ct2" {
            return Err(load_err(
                &info,
                "architecture",
                format!("'{}' is not supported for speech (whisper-ct2)", info.manifest.architecture),
            ));
        }
        registry::verify(&info)?;
        let ct2 = read_ct2(&info.dir.join(&info.manifest.weights))?;
        let (tensors, config) = ct2.whisper_tensors()?;
        drop(ct2);
        if config.max_source_positions * 2 != w::N_FRAMES {
            return Err(load_err(&info, "model.bin", "the encoder does not take 30 s windows"));
        }
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
        let model = WhisperModel::load(&vb, config.clone()).map_err(|e| load_err(&info, "model.bin", e))?;
        drop(vb);

        let cfg_text =
            std::fs::read_to_string(info.dir.join("config.json")).map_err(|e| load_err(&info, "config.json", e))?;
        let token_cfg: TokenConfig = serde_json::from_str(&cfg_text).map_err(|e| load_err(&info, "config.json", e))?;
        let tokenizer =
            Tokenizer::from_file(info.dir.join("tokenizer.json")).map_err(|e| load_err(&info, "tokenizer.json", e))?;
        let id = |name: &str| {
            tokenizer.token_to_id(name).ok_or_else(|| load_err(&info, "tokenizer.json", format!("no token {name}")))
        };
        let no_timestamps = id(w::NO_TIMESTAMPS_TOKEN)?;
        let tokens = SpecialTokens {
            sot: id(w::SOT_TOKEN)?,
            english: id("<|en|>")?,
            transcribe: id(w::TRANSCRIBE_TOKEN)?,
            eot: id(w::EOT_TOKEN)?,
            no_speech: w::NO_SPEECH_TOKENS
                .iter()
                .find_map(|t| tokenizer.token_to_id(t))
                .ok_or_else(|| load_err(&info, "tokenizer.json", "no <|nospeech|> token"))?,
            no_timestamps,
            timestamp_begin: no_timestamps + 1,
        };
        if tokens.timestamp_begin as usize >= config.vocab_size {
            return Err(load_err(&info, "model.bin", "the vocabulary has no timestamp tokens"));
        }
        let in_vocab = |ids: Vec<u32>| ids.into_iter().filter(|&t| (t as usize) < config.vocab_size).collect();
        tracing::info!(model = %info.encoder_id(), layers = config.encoder_layers, d_model = config.d_model, "whisper loaded");
        Ok(Whisper {
            filters: mel_filters(config.num_mel_bins),
            model,
            tokenizer,
            tokens,
            suppress: in_vocab(token_cfg.suppress_ids),
            suppress_begin: in_vocab(token_cfg.suppress_ids_begin),
            info,
        })
    }

    /// The model's dimensions.
    pub fn config(&self) -> &Config {
        &self.model.config
    }

    /// Transcribe 16 kHz mono samples (nominally in [-1, 1]) into segments with times in
    /// seconds from the start of the input. Silence and noise give no segments; input
    /// shorter than one mel frame (10 ms) gives none. Empty input, or input holding NaN or
    /// infinite samples, is [`Error::InvalidInput`].
    pub fn transcribe(&self, pcm_16k_mono: &[f32]) -> Result<Vec<Segment>> {
        if pcm_16k_mono.is_empty() {
            return Err(Error::InvalidInput("audio is empty".into()));
        }
        if let Some(i) = pcm_16k_mono.iter().position(|x| !x.is_finite()) {
            return Err(Error::InvalidInput(format!("audio sample {i} is not a finite number")));
        }
        let mut model = self.model.clone();
        let content_frames = pcm_16k_mono.len() / w::HOP_LENGTH;
        let total = pcm_16k_mono.len() as f32 / SAMPLE_RATE as f32;
        let mut seek = 0usize;
        let mut segments = Vec::new();
        while seek < content_frames {
            let time_offset = (seek as f32 / FRAMES_PER_SECOND as f32).min(total);
            let segment_size = w::N_FRAMES.min(content_frames - seek);
            let window_end = ((seek + segment_size) as f32 / FRAMES_PER_SECOND as f32).min(total);
            let samples =
                &pcm_16k_mono[seek * w::HOP_LENGTH..((seek + segment_size) * w::HOP_LENGTH).min(pcm_16k_mono.len())];
            if samples.iter().all(|x| x.abs() < SILENCE_PEAK) {
                // Nothing audible: Whisper would only hallucinate ("you") here.
                seek += segment_size;
                continue;
            }
            let mel = self.window_mel(pcm_16k_mono, seek * w::HOP_LENGTH)?;
            let decoded = self.decode_window(&mut model, &mel)?;
            let text = self.text(&decoded.tokens)?;
            let silent = decoded.no_speech_prob >= NO_SPEECH_THRESHOLD && decoded.avg_logprob < LOGPROB_THRESHOLD;
            let looping = compression_ratio(&text) >= COMPRESSION_RATIO_THRESHOLD;
            tracing::debug!(
                seek, no_speech_prob = decoded.no_speech_prob, avg_logprob = decoded.avg_logprob, silent, looping,
                %text, "whisper window"
            );
            let (spans, advance) = split_segments(&decoded.tokens, self.tokens.timestamp_begin, segment_size);
            if !silent && !looping {
                for span in spans {
                    let text = self.text(span.tokens)?.trim().to_string();
                    if text.is_empty() {
                        continue;
                    }
                    let start = (time_offset + span.start).min(window_end);
                    let end = (time_offset + span.end.unwrap_or(segment_size as f32 / FRAMES_PER_SECOND as f32))
                        .max(start)
                        .min(window_end);
                    segments.push(Segment {
                        start,
                        end,
                        text,
                        no_speech_prob: decoded.no_speech_prob,
                        avg_logprob: decoded.avg_logprob,
                    });
                }
            }
            seek += if silent || looping { segment_size } else { advance };
        }
        Ok(segments)
    }

    /// The text of `tokens`, timestamps and other special tokens left out.
    fn text(&self, tokens: &[u32]) -> Result<String> {
        let ids: Vec<u32> = tokens.iter().copied().filter(|&t| t < self.tokens.eot).collect();
        self.tokenizer.decode(&ids, true).map_err(|e| Error::Inference(format!("tokenizer: {e}")))
    }

    /// The normalised log-mel spectrogram (1, n_mels, 3000) of the 30 s starting at sample
    /// `start`, zero-padded past the end. Frames are centred on multiples of the hop as in
    /// OpenAI's STFT (reflection padding at the very start of the audio).
    fn window_mel(&self, pcm: &[f32], start: usize) -> Result<Tensor> {
        let half = (w::N_FFT / 2) as isize;
        let mut buf = Vec::with_capacity(w::N_SAMPLES + w::N_FFT);
        buf.extend((-half..0).map(|k| {
            let i = start as isize + k;
            pcm.get(i.unsigned_abs()).copied().unwrap_or(0.0)
        }));
        let end = (start + w::N_SAMPLES + w::N_FFT / 2).min(pcm.len());
        buf.extend_from_slice(&pcm[start.min(end)..end]);
        buf.resize(w::N_SAMPLES + w::N_FFT, 0.0);
        let cfg = &self.model.config;
        let mel = pcm_to_mel(cfg, &buf, &self.filters);
        let n_len = mel.len() / cfg.num_mel_bins;
        if n_len < w::N_FRAMES {
            return Err(Error::Inference(format!("mel spectrogram has {n_len} frames, fewer than {}", w::N_FRAMES)));
        }
        let window: Vec<f32> = mel.chunks(n_len).flat_map(|row| row[..w::N_FRAMES].iter().copied()).collect();
        Ok(Tensor::from_vec(window, (1, cfg.num_mel_bins, w::N_FRAMES), &Device::Cpu)?)
    }

    /// Greedy decoding of one window with OpenAI's logit filters.
    fn decode_window(&self, model: &mut WhisperModel, mel: &Tensor) -> Result<Decoded> {
        let t = &self.tokens;
        let audio = model.encoder.forward(mel, true)?;
        let mut tokens = vec![t.sot, t.english, t.transcribe];
        let sample_begin = tokens.len();
        let mut sum_logprob = 0f64;
        let mut no_speech_prob = 0f32;
        for step in 0..SAMPLE_LEN {
            let input = Tensor::new(tokens.as_slice(), &Device::Cpu)?.unsqueeze(0)?;
            let hidden = model.decoder.forward(&input, &audio, step == 0)?;
            let seq = hidden.dim(1)?;
            if step == 0 {
                // The probability of <|nospeech|> right after <|startoftranscript|>.
                let at_sot = model.decoder.final_linear(&hidden.i((.., 0..1))?)?.flatten_all()?.to_vec1::<f32>()?;
                let logprobs = log_softmax(&at_sot);
                no_speech_prob = logprobs.get(t.no_speech as usize).map_or(0.0, |lp| lp.exp());
            }
            let mut logits =
                model.decoder.final_linear(&hidden.i((.., seq - 1..))?)?.flatten_all()?.to_vec1::<f32>()?;
            self.filter_logits(&mut logits, &tokens[sample_begin..]);
            let logprobs = log_softmax(&logits);
            let (next, lp) = logprobs
                .iter()
                .copied()
                .enumerate()
                .filter(|(_, lp)| !lp.is_nan())
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .filter(|(_, lp)| lp.is_finite())
                .ok_or_else(|| Error::Inference("the decoder produced no usable logits".into()))?;
            sum_logprob += lp as f64;
            let next = next as u32;
            if next == t.eot {
                break;
            }
            tokens.push(next);
        }
        let sampled = tokens.split_off(sample_begin);
        let avg_logprob = (sum_logprob / (sampled.len() + 1) as f64) as f32;
        Ok(Decoded { tokens: sampled, no_speech_prob, avg_logprob })
    }

    /// OpenAI's SuppressBlank, SuppressTokens and ApplyTimestampRules, in that order.
    fn filter_logits(&self, logits: &mut [f32], sampled: &[u32]) {
        let t = &self.tokens;
        let ts = t.timestamp_begin as usize;
        let n = logits.len();
        let mut suppress = |range: std::ops::Range<usize>| {
            for v in &mut logits[range.start.min(n)..range.end.min(n)] {
                *v = f32::NEG_INFINITY;
            }
        };
        if sampled.is_empty() {
            for &id in &self.suppress_begin {
                suppress(id as usize..id as usize + 1);
            }
        }
        for &id in &self.suppress {
            suppress(id as usize..id as usize + 1);
        }
        suppress(t.no_timestamps as usize..t.no_timestamps as usize + 1);

        let is_ts = |tok: u32| tok >= t.timestamp_begin;
        let last_was_timestamp = sampled.last().is_some_and(|&x| is_ts(x));
        let penultimate_was_timestamp = sampled.len() < 2 || is_ts(sampled[sampled.len() - 2]);
        if last_was_timestamp {
            if penultimate_was_timestamp {
                // A pair closed a segment: text must follow.
                suppress(ts..n);
            } else {
                // A segment's text is open: a timestamp (or the end) must follow.
                suppress(0..t.eot as usize);
            }
        }
        // Timestamps never go back (nor repeat, except to close a segment).
        if let Some(&last_ts) = sampled.iter().rev().find(|&&x| is_ts(x)) {
            let last = if last_was_timestamp && !penultimate_was_timestamp { last_ts } else { last_ts + 1 };
            suppress(ts..last as usize);
        }
        if sampled.is_empty() {
            // Start with a timestamp, at most 1 s into the window.
            suppress(0..ts);
            suppress(ts + MAX_INITIAL_TIMESTAMP_INDEX as usize + 1..n);
        }
        // If the timestamps together are likelier than any one text token, take a timestamp.
        let logprobs = log_softmax(logits);
        let ts_logprob = log_sum_exp(&logprobs[ts.min(n)..]);
        let max_text = logprobs[..ts.min(n)].iter().copied().fold(f32::NEG_INFINITY, f32::max);
        if ts_logprob > max_text {
            for v in &mut logits[..ts.min(n)] {
                *v = f32::NEG_INFINITY;
            }
        }
    }
}

fn log_sum_exp(xs: &[f32]) -> f32 {
    let max = xs.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return max;
    }
    max + xs.iter().map(|&x| (x - max).exp()).sum::<f32>().ln()
}

fn log_softmax(xs: &[f32]) -> Vec<f32> {
    let lse = log_sum_exp(xs);
    xs.iter().map(|&x| x - lse).collect()
}

/// Length of the text over the length of its zlib compression (OpenAI's repetition test).
fn compression_ratio(text: &str) -> f32 {
    use std::io::Write;
    if text.is_empty() {
        return 0.0;
    }
    let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    match enc.write_all(text.as_bytes()).and_then(|_| enc.finish()) {
        Ok(z) if !z.is_empty() => text.len() as f32 / z.len() as f32,
        _ => 0.0,
    }
}

/// A window's tokens between two timestamps.
struct Span<'a> {
    tokens: &'a [u32],
    /// Seconds into the window.
    start: f32,
    /// Seconds into the window; `None` when the window ran out before a closing timestamp.
    end: Option<f32>,
}

/// Split a window's sampled tokens into segments at consecutive timestamp pairs, as
/// OpenAI's `transcribe()`, and say how many mel frames to seek forward.
fn split_segments(tokens: &[u32], timestamp_begin: u32, segment_size: usize) -> (Vec<Span<'_>>, usize) {
    let is_ts = |t: u32| t >= timestamp_begin;
    let secs = |t: u32| (t - timestamp_begin) as f32 * TIME_PRECISION;
    let single_timestamp_ending =
        tokens.len() >= 2 && !is_ts(tokens[tokens.len() - 2]) && is_ts(tokens[tokens.len() - 1]);
    let mut cuts: Vec<usize> = (1..tokens.len()).filter(|&i| is_ts(tokens[i - 1]) && is_ts(tokens[i])).collect();
    if cuts.is_empty() {
        // No complete pair: one segment over the whole window.
        if tokens.is_empty() {
            return (Vec::new(), segment_size);
        }
        let end = tokens.iter().rev().copied().find(|&t| is_ts(t)).map(secs).filter(|&s| s > 0.0);
        let start = tokens.first().copied().filter(|&t| is_ts(t)).map_or(0.0, secs);
        return (vec![Span { tokens, start, end }], segment_size);
    }
    if single_timestamp_ending {
        cuts.push(tokens.len());
    }
    let mut spans = Vec::with_capacity(cuts.len());
    let mut last = 0;
    for &cut in &cuts {
        let s = &tokens[last..cut];
        if let (Some(&a), Some(&b)) = (s.first(), s.last()) {
            if is_ts(a) && is_ts(b) {
                spans.push(Span { tokens: s, start: secs(a), end: Some(secs(b)) });
            }
        }
        last = cut;
    }
    let advance = if single_timestamp_ending {
        segment_size
    } else {
        // Resume at the last closing timestamp (two mel frames per timestamp step).
        let frames = (tokens[last - 1] - timestamp_begin) as usize * 2;
        if frames == 0 {
            segment_size
        } else {
            frames.min(segment_size)
        }
    };
    (spans, advance)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TS: u32 = 100;

    #[test]
    fn segments_split_at_timestamp_pairs_and_seek_to_the_last() {
        // <0.00> a b <1.00><1.00> c <2.00><2.00> d   (the last segment is left open)
        let toks = [TS, 1, 2, TS + 50, TS + 50, 3, TS + 100, TS + 100, 4];
        let (spans, advance) = split_segments(&toks, TS, 3000);
        assert_eq!(spans.len(), 2);
        assert_eq!((spans[0].start, spans[0].end), (0.0, Some(1.0)));
        assert_eq!(spans[1].tokens, &[TS + 50, 3, TS + 100]);
        assert_eq!(advance, 200, "resume 2 s in (200 mel frames)");
    }

    #[test]
    fn single_timestamp_ending_takes_the_whole_window() {
        let toks = [TS, 1, TS + 50, TS + 50, 2, TS + 120];
        let (spans, advance) = split_segments(&toks, TS, 2500);
        assert_eq!(spans.len(), 2);
        assert_eq!(spans[1].end, Some(120.0 * TIME_PRECISION));
        assert_eq!(advance, 2500);
    }

    #[test]
    fn no_pairs_make_one_segment() {
        let toks = [TS, 1, 2, TS + 75];
        let (spans, advance) = split_segments(&toks, TS, 3000);
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].end, Some(1.5));
        assert_eq!(advance, 3000);
        assert!(split_segments(&[], TS, 10).0.is_empty());
        // A zero-length pair at the very start still moves on.
        assert_eq!(split_segments(&[TS, TS, 5], TS, 3000).1, 3000);
    }

    #[test]
    fn compression_ratio_flags_repetition() {
        assert!(compression_ratio("The quick brown fox jumps over the lazy dog.") < 1.5);
        assert!(compression_ratio(&"I'm sorry. ".repeat(30)) > 2.4);
        assert_eq!(compression_ratio(""), 0.0);
    }

    #[test]
    fn log_softmax_handles_suppressed_entries() {
        let lp = log_softmax(&[0.0, f32::NEG_INFINITY, 0.0]);
        assert!((lp[0] - 0.5f32.ln()).abs() < 1e-6);
        assert_eq!(lp[1], f32::NEG_INFINITY);
        assert_eq!(log_sum_exp(&[f32::NEG_INFINITY; 3]), f32::NEG_INFINITY);
    }
}
