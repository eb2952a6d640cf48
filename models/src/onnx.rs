//! Generic ONNX encoders run through ONNX Runtime (`ort`): image and text models the user
//! exports and describes with a small JSON file, embedded and L2-normalised here.
//!
//! Sessions are built on the process's one ONNX Runtime environment
//! ([`crate::vad::environment`], loaded from `<models dir>/onnxruntime/`), each behind a
//! mutex (`ort` runs take `&mut`), so both encoders are `Send + Sync` and serve one
//! batch at a time.
//!
//! # Image encoder: architecture `onnx-image`
//! The folder holds the manifest (`weights` names the `.onnx` file, checksum verified;
//! `dim` is the embedding size) and [`CONFIG_FILE`]:
//! `{"input": "pixel_values", "output": "image_embeds", "size": 224,
//!   "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "layout": "NCHW"}`,
//! optionally `"resize": 256` (the shorter side before the centre crop; default `size`).
//! Each image has its shorter side resized to `resize` (bicubic, antialiased), the centre
//! `size`×`size` cropped, values scaled to [0, 1] then `(x - mean) / std`, in `NCHW` or
//! `NHWC` order (see [`crate::clip::resize_center_crop`]). The input must be f32 with
//! rank 4; a dynamic batch dimension takes the whole batch in one run, a fixed one runs
//! that many images at a time (the last run padded with zero images).
//!
//! # Text encoder: architecture `onnx-text`
//! For sentence-transformers style exports: [`CONFIG_FILE`] is
//! `{"input_ids": "input_ids", "attention_mask": "attention_mask",
//!   "token_type_ids": "token_type_ids", "output": "last_hidden_state",
//!   "pooling": "mean", "max_tokens": 256}` (`token_type_ids` and `attention_mask` may be
//! null when the graph has no such input; `pooling` is `mean` over the attention mask,
//! `cls` for the first token, or `none` when the output is already `[batch, dim]`), and
//! `tokenizer.json` (Hugging Face) sits beside it, its own special tokens added. Ids are
//! passed as i64, or i32 when the graph asks for it.
//!
//! For both, the output row of each input (all its values, whatever the rank after the
//! batch dimension, for images) must have the manifest's `dim` values; it is divided by
//! its L2 norm.

use crate::error::{Error, Result};
use crate::registry::{self, ModelInfo};
use image::RgbImage;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::{TensorElementType, TensorRef};
use rayon::prelude::*;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

/// The JSON file describing an ONNX encoder's inputs, outputs and preprocessing.
pub const CONFIG_FILE: &str = "onnx-encoder.json";
pub const IMAGE_ARCHITECTURE: &str = "onnx-image";
pub const TEXT_ARCHITECTURE: &str = "onnx-text";

/// Pixel order of the image input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Layout {
    #[serde(rename = "NCHW")]
    Nchw,
    #[serde(rename = "NHWC")]
    Nhwc,
}

fn nchw() -> Layout {
    Layout::Nchw
}

/// [`CONFIG_FILE`] of an `onnx-image` model.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageConfig {
    /// Name of the graph's image input.
    pub input: String,
    /// Name of the graph output holding the embeddings.
    pub output: String,
    /// Side of the square crop the model sees.
    pub size: u32,
    /// Shorter side before the crop (default: `size`).
    #[serde(default)]
    pub resize: Option<u32>,
    /// Per-channel mean and standard deviation, on values scaled to [0, 1].
    pub mean: [f32; 3],
    pub std: [f32; 3],
    #[serde(default = "nchw")]
    pub layout: Layout,
}

impl ImageConfig {
    fn check(&self) -> std::result::Result<(), String> {
        if self.size == 0 || self.size > 4096 {
            return Err(format!("size {} is not in 1..=4096", self.size));
        }
        if let Some(r) = self.resize {
            if r < self.size || r > 8192 {
                return Err(format!("resize {r} must lie between size ({}) and 8192", self.size));
            }
        }
        if self.mean.iter().any(|m| !m.is_finite()) || self.std.iter().any(|s| !s.is_finite() || *s <= 0.0) {
            return Err("mean must be finite and std positive".into());
        }
        Ok(())
    }
}

/// How a text encoder's token states become one vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// Mean over the tokens the attention mask keeps.
    Mean,
    /// The first token's state.
    Cls,
    /// The output is already one vector per text.
    None,
}

fn default_max_tokens() -> usize {
    256
}

/// [`CONFIG_FILE`] of an `onnx-text` model.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextConfig {
    pub input_ids: String,
    pub attention_mask: Option<String>,
    #[serde(default)]
    pub token_type_ids: Option<String>,
    pub output: String,
    pub pooling: Pooling,
    /// Longer texts are truncated to this many tokens (special tokens included).
    #[serde(default = "default_max_tokens")]
    pub max_tokens: usize,
}

pub(crate) fn load_err(path: &Path, reason: impl std::fmt::Display) -> Error {
    Error::ModelLoad { path: path.to_path_buf(), reason: reason.to_string() }
}

/// Checks common to both encoders (architecture, config present, checksum); returns the
/// weights path, the config path and the config text.
fn open(info: &ModelInfo, architecture: &str) -> Result<(PathBuf, PathBuf, String)> {
    if info.manifest.architecture != architecture {
        return Err(load_err(
            &info.dir.join(registry::MANIFEST),
            format!("architecture {:?} is not {architecture:?}", info.manifest.architecture),
        ));
    }
    let cfg_path = info.dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&cfg_path).map_err(|e| load_err(&cfg_path, e))?;
    registry::verify(info)?;
    Ok((info.dir.join(&info.manifest.weights), cfg_path, text))
}

/// A session on the shared environment (builder errors are not `Send`: keep their text).
pub(crate) fn session(weights: &Path, models_dir: &Path) -> Result<Session> {
    let env = crate::vad::environment(models_dir)?;
    let err = |e: String| load_err(weights, e);
    Session::builder(&env)
        .map_err(|e| err(e.to_string()))?
        .with_optimization_level(GraphOptimizationLevel::Level3)
        .map_err(|e| err(e.to_string()))?
        .commit_from_file(weights)
        .map_err(|e| err(e.to_string()))
}

/// The graph input or output called `name`: (element type, shape with -1 for dynamic).
pub(crate) fn outlet(
    outlets: &[ort::value::Outlet],
    name: &str,
    what: &str,
) -> std::result::Result<(TensorElementType, Vec<i64>), String> {
    let names: Vec<&str> = outlets.iter().map(|o| o.name()).collect();
    let o = outlets
        .iter()
        .find(|o| o.name() == name)
        .ok_or_else(|| format!("the graph has no {what} {name:?} ({what}s: {names:?})"))?;
    match (o.dtype().tensor_type(), o.dtype().tensor_shape()) {
        (Some(ty), Some(shape)) => Ok((ty, shape.to_vec())),
        _ => Err(format!("{what} {name:?} is not a tensor")),
    }
}

/// Batch size a graph takes: `None` when the first dimension is dynamic.
pub(crate) fn fixed_batch(shape: &[i64]) -> Option<usize> {
    shape.first().copied().filter(|&d| d > 0).map(|d| d as usize)
}

/// Divide each row by its L2 norm (rows of zeros stay zero).
pub(crate) fn normalise(mut rows: Vec<Vec<f32>>) -> Vec<Vec<f32>> {
    for r in &mut rows {
        let n = r.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
        r.iter_mut().for_each(|v| *v /= n);
    }
    rows
}

pub(crate) fn inference(model: &str) -> impl Fn(ort::Error) -> Error + '_ {
    move |e| Error::Inference(format!("{model}: {e}"))
}

/// An ONNX image encoder (see the module docs).
pub struct OnnxImageEncoder {
    pub info: ModelInfo,
    pub config: ImageConfig,
    batch: Option<usize>,
    session: Mutex<Session>,
}

impl std::fmt::Debug for OnnxImageEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxImageEncoder").field("model", &self.info.encoder_id()).finish_non_exhaustive()
    }
}

impl OnnxImageEncoder {
    /// Load an `onnx-image` model folder, loading ONNX Runtime from `models_dir` first if
    /// this process has not yet.
    pub fn load(info: ModelInfo, models_dir: &Path) -> Result<OnnxImageEncoder> {
        let (weights, cfg_path, text) = open(&info, IMAGE_ARCHITECTURE)?;
        let config: ImageConfig = serde_json::from_str(&text).map_err(|e| load_err(&cfg_path, e))?;
        config.check().map_err(|e| load_err(&cfg_path, e))?;
        let session = session(&weights, models_dir)?;
        let (ty, shape) = outlet(session.inputs(), &config.input, "input").map_err(|e| load_err(&cfg_path, e))?;
        outlet(session.outputs(), &config.output, "output").map_err(|e| load_err(&cfg_path, e))?;
        let s = config.size as i64;
        let want = match config.layout {
            Layout::Nchw => [-1, 3, s, s],
            Layout::Nhwc => [-1, s, s, 3],
        };
        let fits = shape.len() == 4 && shape.iter().zip(want).skip(1).all(|(&d, w)| d <= 0 || d == w);
        if ty != TensorElementType::Float32 || !fits {
            return Err(load_err(
                &cfg_path,
                format!(
                    "input {:?} is {ty:?} {shape:?}; the config describes f32 {:?} images of {s}x{s}",
                    config.input, config.layout
                ),
            ));
        }
        tracing::info!(model = %info.encoder_id(), dim = info.manifest.dim, "ONNX image encoder loaded");
        Ok(OnnxImageEncoder { batch: fixed_batch(&shape), info, config, session: Mutex::new(session) })
    }

    pub fn dim(&self) -> usize {
        self.info.manifest.dim
    }

    /// The model's input for one image: resized, cropped, normalised, in the config's layout.
    pub fn preprocess(&self, img: &RgbImage) -> Result<Vec<f32>> {
        let c = &self.config;
        let img = crate::clip::resize_center_crop(img, c.resize.unwrap_or(c.size), c.size)?;
        let plane = (c.size * c.size) as usize;
        let mut out = vec![0f32; 3 * plane];
        for (i, p) in img.pixels().enumerate() {
            for ch in 0..3 {
                let v = (p[ch] as f32 / 255.0 - c.mean[ch]) / c.std[ch];
                match c.layout {
                    Layout::Nchw => out[ch * plane + i] = v,
                    Layout::Nhwc => out[i * 3 + ch] = v,
                }
            }
        }
        Ok(out)
    }

    /// L2-normalised embeddings, one per image.
    pub fn embed_images(&self, images: &[RgbImage]) -> Result<Vec<Vec<f32>>> {
        if images.is_empty() {
            return Ok(Vec::new());
        }
        let inputs = images.par_iter().map(|img| self.preprocess(img)).collect::<Result<Vec<_>>>()?;
        let s = self.config.size as usize;
        let shape = |n: usize| match self.config.layout {
            Layout::Nchw => [n, 3, s, s],
            Layout::Nhwc => [n, s, s, 3],
        };
        let per = 3 * s * s;
        let name = &self.info.manifest.name;
        let inf = inference(name);
        let mut session = self.session.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = Vec::with_capacity(images.len());
        for chunk in inputs.chunks(self.batch.unwrap_or(inputs.len())) {
            let n = self.batch.unwrap_or(chunk.len());
            let mut data = Vec::with_capacity(n * per);
            chunk.iter().for_each(|x| data.extend_from_slice(x));
            data.resize(n * per, 0.0);
            let x = TensorRef::from_array_view((shape(n), &data[..])).map_err(&inf)?;
            let res = session.run(ort::inputs! { self.config.input.as_str() => x }).map_err(&inf)?;
            let (_, values) = res[self.config.output.as_str()].try_extract_tensor::<f32>().map_err(&inf)?;
            out.extend(self.rows(values, n)?.into_iter().take(chunk.len()));
        }
        Ok(normalise(out))
    }

    fn rows(&self, values: &[f32], n: usize) -> Result<Vec<Vec<f32>>> {
        let dim = self.dim();
        if values.len() != n * dim {
            return Err(Error::Inference(format!(
                "{}: output {:?} has {} values for {n} images, expected {dim} each (the manifest's dim)",
                self.info.manifest.name,
                self.config.output,
                values.len()
            )));
        }
        Ok(values.chunks(dim).map(<[f32]>::to_vec).collect())
    }
}

/// An ONNX text encoder (see the module docs).
pub struct OnnxTextEncoder {
    pub info: ModelInfo,
    pub config: TextConfig,
    tokenizer: Tokenizer,
    /// Element type of the id inputs (i64 or i32).
    int32: bool,
    batch: Option<usize>,
    session: Mutex<Session>,
}

impl std::fmt::Debug for OnnxTextEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxTextEncoder").field("model", &self.info.encoder_id()).finish_non_exhaustive()
    }
}

impl OnnxTextEncoder {
    /// Load an `onnx-text` model folder (with `tokenizer.json`), loading ONNX Runtime
    /// from `models_dir` first if this process has not yet.
    pub fn load(info: ModelInfo, models_dir: &Path) -> Result<OnnxTextEncoder> {
        let (weights, cfg_path, text) = open(&info, TEXT_ARCHITECTURE)?;
        let config: TextConfig = serde_json::from_str(&text).map_err(|e| load_err(&cfg_path, e))?;
        let tk_path = info.dir.join("tokenizer.json");
        OnnxTextEncoder::from_parts(info, config, &weights, &tk_path, &cfg_path, models_dir)
    }

    /// A text encoder from its parts (a CLAP's text tower, say): `weights` already
    /// verified, `cfg_path` named in errors about `config`.
    pub(crate) fn from_parts(
        info: ModelInfo,
        config: TextConfig,
        weights: &Path,
        tk_path: &Path,
        cfg_path: &Path,
        models_dir: &Path,
    ) -> Result<OnnxTextEncoder> {
        if config.max_tokens == 0 {
            return Err(load_err(cfg_path, "max_tokens must be positive"));
        }
        if config.pooling == Pooling::Mean && config.attention_mask.is_none() {
            return Err(load_err(cfg_path, "mean pooling needs the attention_mask input"));
        }
        let mut tokenizer = Tokenizer::from_file(tk_path).map_err(|e| load_err(tk_path, e))?;
        let session = session(weights, models_dir)?;
        let mut id_inputs = vec![config.input_ids.as_str()];
        id_inputs.extend(config.attention_mask.as_deref());
        id_inputs.extend(config.token_type_ids.as_deref());
        let mut types = Vec::new();
        let mut shape = Vec::new();
        for name in &id_inputs {
            let (ty, s) = outlet(session.inputs(), name, "input").map_err(|e| load_err(cfg_path, e))?;
            if !matches!(ty, TensorElementType::Int64 | TensorElementType::Int32) || s.len() != 2 {
                return Err(load_err(
                    cfg_path,
                    format!("input {name:?} is {ty:?} {s:?}, expected int64 [batch, tokens]"),
                ));
            }
            types.push(ty);
            shape = s;
        }
        if types.iter().any(|t| *t != types[0]) {
            return Err(load_err(cfg_path, format!("the id inputs mix element types: {types:?}")));
        }
        let names: Vec<&str> = session.inputs().iter().map(|o| o.name()).collect();
        if let Some(extra) = names.iter().find(|n| !id_inputs.contains(n)) {
            return Err(load_err(cfg_path, format!("graph input {extra:?} is not named in the config ({names:?})")));
        }
        outlet(session.outputs(), &config.output, "output").map_err(|e| load_err(cfg_path, e))?;
        // A fixed token dimension is padded to; a dynamic one to the batch's longest text.
        let fixed_len = shape.get(1).copied().filter(|&d| d > 0).map(|d| d as usize);
        let max_tokens = fixed_len.map_or(config.max_tokens, |l| l.min(config.max_tokens));
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: max_tokens, ..Default::default() }))
            .map_err(|e| load_err(tk_path, e))?;
        let strategy = fixed_len.map_or(PaddingStrategy::BatchLongest, PaddingStrategy::Fixed);
        let pad_id = tokenizer.get_padding().map_or(0, |p| p.pad_id);
        let pad_token = tokenizer.get_padding().map_or_else(|| "[PAD]".to_string(), |p| p.pad_token.clone());
        tokenizer.with_padding(Some(PaddingParams { strategy, pad_id, pad_token, ..Default::default() }));
        tracing::info!(model = %info.encoder_id(), dim = info.manifest.dim, "ONNX text encoder loaded");
        Ok(OnnxTextEncoder {
            int32: types[0] == TensorElementType::Int32,
            batch: fixed_batch(&shape),
            info,
            config,
            tokenizer,
            session: Mutex::new(session),
        })
    }

    pub fn dim(&self) -> usize {
        self.info.manifest.dim
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// L2-normalised embeddings, one per text.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let name = &self.info.manifest.name;
        let mut session = self.session.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(self.batch.unwrap_or(texts.len())) {
            let mut batch: Vec<&str> = chunk.to_vec();
            // A fixed batch size is filled with empty texts, whose results are dropped.
            batch.resize(self.batch.unwrap_or(chunk.len()), "");
            let enc = self
                .tokenizer
                .encode_batch(batch, true)
                .map_err(|e| Error::InvalidInput(format!("{name} tokenizer: {e}")))?;
            let (n, len) = (enc.len(), enc[0].get_ids().len());
            let flat = |f: fn(&tokenizers::Encoding) -> &[u32]| -> Vec<i64> {
                enc.iter().flat_map(|e| f(e).iter().map(|&v| v as i64)).collect()
            };
            let ids = flat(tokenizers::Encoding::get_ids);
            let mask = flat(tokenizers::Encoding::get_attention_mask);
            let types = flat(tokenizers::Encoding::get_type_ids);
            let rows = self.run_locked(&mut session, &ids, &mask, &types, n, len)?;
            out.extend(rows.into_iter().take(chunk.len()));
        }
        Ok(normalise(out))
    }

    /// Embed already tokenized texts: `n` rows of `len` ids, attention mask and token
    /// types (row-major). L2-normalised, one vector per row.
    pub fn embed_tokens(
        &self,
        ids: &[i64],
        mask: &[i64],
        types: &[i64],
        n: usize,
        len: usize,
    ) -> Result<Vec<Vec<f32>>> {
        let mut session = self.session.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(normalise(self.run_locked(&mut session, ids, mask, types, n, len)?))
    }

    fn run_locked(
        &self,
        session: &mut Session,
        ids: &[i64],
        mask: &[i64],
        types: &[i64],
        n: usize,
        len: usize,
    ) -> Result<Vec<Vec<f32>>> {
        let inf = inference(&self.info.manifest.name);
        {
            let mut named: Vec<(&str, &[i64])> = vec![(self.config.input_ids.as_str(), ids)];
            named.extend(self.config.attention_mask.as_deref().map(|m| (m, mask)));
            named.extend(self.config.token_type_ids.as_deref().map(|t| (t, types)));
            let narrowed: Vec<Vec<i32>> = if self.int32 {
                named.iter().map(|(_, v)| v.iter().map(|&x| x as i32).collect()).collect()
            } else {
                vec![]
            };
            let mut inputs: Vec<(std::borrow::Cow<str>, ort::session::SessionInputValue)> = Vec::new();
            for (i, (input, values)) in named.iter().enumerate() {
                let value: ort::session::SessionInputValue = if self.int32 {
                    TensorRef::from_array_view(([n, len], &narrowed[i][..])).map_err(&inf)?.into()
                } else {
                    TensorRef::from_array_view(([n, len], *values)).map_err(&inf)?.into()
                };
                inputs.push(((*input).into(), value));
            }
            let res = session.run(inputs).map_err(&inf)?;
            let (shape, values) = res[self.config.output.as_str()].try_extract_tensor::<f32>().map_err(&inf)?;
            self.pool(shape, values, mask, n, len)
        }
    }

    /// One vector per text from the output, pooled as configured.
    fn pool(&self, shape: &[i64], values: &[f32], mask: &[i64], n: usize, len: usize) -> Result<Vec<Vec<f32>>> {
        let dim = self.dim();
        let bad = || {
            Error::Inference(format!(
                "{}: output {:?} has shape {shape:?}; expected [{n}, {len}, {dim}] for {:?} pooling \
                 ([{n}, {dim}] for none)",
                self.info.manifest.name, self.config.output, self.config.pooling
            ))
        };
        let pooled = match self.config.pooling {
            Pooling::None => {
                if shape != [n as i64, dim as i64] {
                    return Err(bad());
                }
                values.chunks(dim).map(<[f32]>::to_vec).collect()
            }
            Pooling::Cls | Pooling::Mean => {
                if shape != [n as i64, len as i64, dim as i64] {
                    return Err(bad());
                }
                let mut rows = Vec::with_capacity(n);
                for i in 0..n {
                    let states = &values[i * len * dim..(i + 1) * len * dim];
                    if self.config.pooling == Pooling::Cls {
                        rows.push(states[..dim].to_vec());
                        continue;
                    }
                    let mut acc = vec![0f32; dim];
                    let mut count = 0f32;
                    for (t, state) in states.chunks(dim).enumerate() {
                        if mask[i * len + t] != 0 {
                            acc.iter_mut().zip(state).for_each(|(a, v)| *a += v);
                            count += 1.0;
                        }
                    }
                    acc.iter_mut().for_each(|a| *a /= count.max(1.0));
                    rows.push(acc);
                }
                rows
            }
        };
        Ok(pooled)
    }
}
