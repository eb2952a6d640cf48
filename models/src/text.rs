//! Text: the sentence encoder (BERT family via Candle, mean pooling, L2 normalisation)
//! and token-window chunking with overlap.

use crate::error::{Error, Result};
use crate::registry::{self, ModelInfo};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

/// A loaded sentence encoder.
pub struct TextEncoder {
    /// The Candle model (None for an `onnx-text` model, which only ONNX Runtime runs).
    model: Option<BertModel>,
    /// The same model on the GPU (`use_gpu`); the Candle model stays as the fallback.
    gpu: Option<std::sync::Mutex<agentdb_kernels::bert::GpuBert>>,
    /// The same model as an ONNX graph run by ONNX Runtime on the CPU (`use_onnx`): built
    /// at set-up from these weights (`.ci/models.sh`), faster than Candle's kernels; the
    /// Candle model stays loaded as the fallback.
    onnx: Option<crate::onnx::OnnxTextEncoder>,
    tokenizer: Tokenizer,
    device: Device,
    pub info: ModelInfo,
    /// Longest input in tokens (longer text is truncated; chunk it first).
    pub max_tokens: usize,
}

impl std::fmt::Debug for TextEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextEncoder").field("model", &self.info.encoder_id()).finish()
    }
}

fn load_err(info: &ModelInfo, what: &str, e: impl std::fmt::Display) -> Error {
    Error::ModelLoad { path: info.dir.clone(), reason: format!("{what}: {e}") }
}

impl TextEncoder {
    /// Load from a model folder holding `config.json`, `tokenizer.json` and the weights
    /// named by its manifest (safetensors), after checking the weights' checksum.
    pub fn load(info: ModelInfo, device: Device) -> Result<TextEncoder> {
        if info.manifest.architecture == crate::onnx::TEXT_ARCHITECTURE {
            // A sentence encoder exported to ONNX (see crate::onnx): ONNX Runtime runs it;
            // ONNX Runtime's library is in the models folder above it.
            let models_dir = info.dir.parent().map(std::path::Path::to_path_buf).unwrap_or_default();
            let onnx = crate::onnx::OnnxTextEncoder::load(info.clone(), &models_dir)?;
            let mut tokenizer = onnx.tokenizer().clone();
            let max_tokens = onnx.config.max_tokens;
            let pad_id = tokenizer.get_padding().map_or(0, |p| p.pad_id);
            let pad_token = tokenizer.get_padding().map_or_else(|| "[PAD]".to_string(), |p| p.pad_token.clone());
            tokenizer.with_padding(Some(PaddingParams {
                strategy: PaddingStrategy::BatchLongest,
                pad_id,
                pad_token,
                ..Default::default()
            }));
            tracing::info!(model = %info.encoder_id(), dim = info.manifest.dim, "text encoder loaded (ONNX Runtime)");
            return Ok(TextEncoder { model: None, gpu: None, onnx: Some(onnx), tokenizer, device, info, max_tokens });
        }
        if info.manifest.architecture != "bert" {
            return Err(load_err(
                &info,
                "architecture",
                format!(
                    "'{}' is not supported for text (bert, or {})",
                    info.manifest.architecture,
                    crate::onnx::TEXT_ARCHITECTURE
                ),
            ));
        }
        registry::verify(&info)?;
        let cfg_text =
            std::fs::read_to_string(info.dir.join("config.json")).map_err(|e| load_err(&info, "config.json", e))?;
        let config: Config = serde_json::from_str(&cfg_text).map_err(|e| load_err(&info, "config.json", e))?;
        let max_tokens = std::fs::read_to_string(info.dir.join("sentence_bert_config.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["max_seq_length"].as_u64())
            .map(|v| v as usize)
            .unwrap_or(256)
            .min(config.max_position_embeddings);
        let mut tokenizer =
            Tokenizer::from_file(info.dir.join("tokenizer.json")).map_err(|e| load_err(&info, "tokenizer.json", e))?;
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: max_tokens, ..Default::default() }))
            .map_err(|e| load_err(&info, "tokenizer truncation", e))?;
        tokenizer.with_padding(Some(PaddingParams { strategy: PaddingStrategy::BatchLongest, ..Default::default() }));
        let weights = info.dir.join(&info.manifest.weights);
        // Safety: the file is memory-mapped read-only and was just checksummed.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, &device) }
            .map_err(|e| load_err(&info, "weights", e))?;
        let model = BertModel::load(vb, &config).map_err(|e| load_err(&info, "weights", e))?;
        tracing::info!(model = %info.encoder_id(), device = ?device, dim = info.manifest.dim, "text encoder loaded");
        Ok(TextEncoder { model: Some(model), gpu: None, onnx: None, tokenizer, device, info, max_tokens })
    }

    /// Run the encoder on GPU `ordinal` from now on (`math`: fp32, tf32 or fp16 GEMMs);
    /// the CPU model stays loaded as the fallback when a GPU batch fails.
    pub fn use_gpu(&mut self, ordinal: usize, math: &str) -> Result<String> {
        use agentdb_kernels::bert::{BertShape, GemmMath, GpuBert};
        let fail = |e: String| Error::ModelLoad { path: self.info.dir.clone(), reason: format!("GPU: {e}") };
        if self.model.is_none() {
            return Err(fail("an ONNX model runs on ONNX Runtime (CPU) only".into()));
        }
        let math = GemmMath::parse(math).map_err(fail)?;
        let cfg: serde_json::Value = std::fs::read_to_string(self.info.dir.join("config.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .ok_or_else(|| fail("config.json unreadable".into()))?;
        let u = |k: &str| cfg[k].as_u64().map(|v| v as usize).ok_or_else(|| fail(format!("config.json lacks {k}")));
        let shape = BertShape {
            hidden: u("hidden_size")?,
            layers: u("num_hidden_layers")?,
            heads: u("num_attention_heads")?,
            intermediate: u("intermediate_size")?,
            vocab: u("vocab_size")?,
            max_positions: u("max_position_embeddings")?,
            type_vocab: u("type_vocab_size")?,
            eps: cfg["layer_norm_eps"].as_f64().unwrap_or(1e-12) as f32,
        };
        if cfg["hidden_act"].as_str().unwrap_or("gelu") != "gelu" {
            return Err(fail(format!("activation {} is not supported on the GPU", cfg["hidden_act"])));
        }
        let weights = self.info.dir.join(&self.info.manifest.weights);
        let tensors = candle_core::safetensors::load(&weights, &Device::Cpu).map_err(|e| fail(e.to_string()))?;
        let get = |name: &str| -> std::result::Result<Vec<f32>, String> {
            let t = tensors
                .get(name)
                .or_else(|| tensors.get(&format!("bert.{name}")))
                .ok_or_else(|| format!("weights lack {name}"))?;
            t.to_dtype(DType::F32)
                .and_then(|t| t.flatten_all())
                .and_then(|t| t.to_vec1::<f32>())
                .map_err(|e| e.to_string())
        };
        let gpu = GpuBert::new(ordinal, shape, math, &get).map_err(|e| fail(e.to_string()))?;
        let label = format!("cuda:{ordinal} ({}, {} GEMMs)", gpu.device_name, math.name());
        self.gpu = Some(std::sync::Mutex::new(gpu));
        Ok(label)
    }

    /// Run CPU batches through ONNX Runtime from now on, with the graph in the model's
    /// [`ONNX_SUBDIR`] folder (its own manifest: architecture `onnx-text`, checksum
    /// verified, the same dimension, pooled output). `models_dir` holds ONNX Runtime.
    /// The result is the same model (cosine ≥ 0.9999 to Candle's, tested), so the
    /// encoder id does not change.
    pub fn use_onnx(&mut self, models_dir: &std::path::Path) -> Result<String> {
        if self.onnx.is_some() {
            return Ok("ONNX Runtime".into());
        }
        let dir = self.info.dir.join(ONNX_SUBDIR);
        let info = registry::read_model(&dir)?;
        let onnx = crate::onnx::OnnxTextEncoder::load(info, models_dir)?;
        if onnx.dim() != self.dim() {
            return Err(load_err(
                &self.info,
                "onnx",
                format!("the ONNX graph gives {} dimensions, the model {}", onnx.dim(), self.dim()),
            ));
        }
        let label = format!("ONNX Runtime ({})", onnx.info.encoder_id());
        self.onnx = Some(onnx);
        Ok(label)
    }

    /// Which kernels embed on the CPU: "onnxruntime" or "candle".
    pub fn cpu_backend(&self) -> &'static str {
        if self.onnx.is_some() {
            "onnxruntime"
        } else {
            "candle"
        }
    }

    /// Whether batches run on the GPU.
    pub fn on_gpu(&self) -> bool {
        self.gpu.is_some()
    }

    pub fn dim(&self) -> usize {
        self.info.manifest.dim
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Embed a batch of texts: L2-normalised mean of the last hidden states over real tokens.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let enc = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| Error::InvalidInput(format!("tokenizer: {e}")))?;
        let n = enc.len();
        // The tokenizer pads every text to the longest of the call; a large call is run in
        // sub-batches of similar lengths instead, each padded only to its own longest
        // (what sentence-transformers does by sorting), which saves the padded work.
        let real: Vec<usize> =
            enc.iter().map(|e| e.get_attention_mask().iter().rposition(|&m| m != 0).map_or(1, |p| p + 1)).collect();
        let sub = if self.on_gpu() { GPU_SUB_BATCH } else { CPU_SUB_BATCH };
        let mut order: Vec<usize> = (0..n).collect();
        if n > sub {
            order.sort_by_key(|&i| real[i]);
        }
        let mut out = vec![Vec::new(); n];
        for chunk in order.chunks(sub) {
            let rows = self.forward(&enc, chunk, &real)?;
            for (&i, r) in chunk.iter().zip(rows) {
                out[i] = r;
            }
        }
        Ok(out)
    }

    /// Embed texts `idx` of `enc`, padded to the longest of them (`real` = token counts).
    fn forward(&self, enc: &[tokenizers::Encoding], idx: &[usize], real: &[usize]) -> Result<Vec<Vec<f32>>> {
        let n = idx.len();
        let len = idx.iter().map(|&i| real[i]).max().unwrap_or(1).max(1);
        let mut ids = Vec::with_capacity(n * len);
        let mut types = Vec::with_capacity(n * len);
        let mut mask = Vec::with_capacity(n * len);
        for &i in idx {
            let (e, r) = (&enc[i], real[i]);
            let pad = len - r;
            ids.extend(e.get_ids()[..r].iter().copied().chain(std::iter::repeat_n(0, pad)));
            types.extend(e.get_type_ids()[..r].iter().copied().chain(std::iter::repeat_n(0, pad)));
            mask.extend(e.get_attention_mask()[..r].iter().copied().chain(std::iter::repeat_n(0, pad)));
        }
        if let Some(gpu) = &self.gpu {
            let g = gpu.lock().unwrap_or_else(|p| p.into_inner());
            match g.embed(&ids, &types, &mask, n, len) {
                Ok(v) => return Ok(v),
                Err(e) => tracing::warn!(error = %e, "text encoder: GPU batch failed; embedding on the CPU"),
            }
        }
        if let Some(onnx) = &self.onnx {
            let wide = |v: &[u32]| v.iter().map(|&x| x as i64).collect::<Vec<i64>>();
            match onnx.embed_tokens(&wide(&ids), &wide(&mask), &wide(&types), n, len) {
                Ok(v) => return Ok(v),
                Err(e) if self.model.is_none() => return Err(e),
                Err(e) => tracing::warn!(error = %e, "text encoder: ONNX Runtime batch failed; embedding with Candle"),
            }
        }
        let Some(model) = &self.model else {
            return Err(Error::Inference("the text encoder has no model loaded".into()));
        };
        let ids = Tensor::from_vec(ids, (n, len), &self.device)?;
        let types = Tensor::from_vec(types, (n, len), &self.device)?;
        let mask = Tensor::from_vec(mask, (n, len), &self.device)?;
        let hidden = model.forward(&ids, &types, Some(&mask))?; // (n, len, dim)
        let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?; // (n, len, 1)
        let summed = hidden.broadcast_mul(&m)?.sum(1)?; // (n, dim)
        let counts = m.sum(1)?.clamp(1e-9, f64::MAX)?; // (n, 1)
        let mean = summed.broadcast_div(&counts)?;
        let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
        let out = mean.broadcast_div(&norm)?.to_dtype(DType::F32)?.to_vec2::<f32>()?;
        Ok(out)
    }
}

/// The folder, inside a text model's folder, holding its ONNX graph (see [`TextEncoder::use_onnx`]).
pub const ONNX_SUBDIR: &str = "onnx";

/// Texts per forward pass on the CPU when a call brings more (sorted by length first).
const CPU_SUB_BATCH: usize = 16;
/// On the GPU larger batches keep the device busy.
const GPU_SUB_BATCH: usize = 256;

/// A piece of a longer text.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    pub index: usize,
    pub text: String,
    /// Byte range in the source text.
    pub start: usize,
    pub end: usize,
}

/// Split `text` into windows of at most `max_tokens` tokens (special tokens excluded),
/// each overlapping the previous by `overlap` tokens, cut at token boundaries.
pub fn chunk_text(tokenizer: &Tokenizer, text: &str, max_tokens: usize, overlap: usize) -> Result<Vec<Chunk>> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let max_tokens = max_tokens.max(8);
    let overlap = overlap.min(max_tokens / 2);
    let mut t = tokenizer.clone();
    t.with_truncation(None).map_err(|e| Error::Inference(e.to_string()))?;
    t.with_padding(None);
    let enc = t.encode(text, false).map_err(|e| Error::InvalidInput(format!("tokenizer: {e}")))?;
    let offsets = enc.get_offsets();
    if offsets.is_empty() {
        return Ok(Vec::new());
    }
    let mut chunks = Vec::new();
    let mut start_tok = 0;
    loop {
        let end_tok = (start_tok + max_tokens).min(offsets.len());
        let start = offsets[start_tok].0;
        // Extend to the end of the text if this is the last window, so trailing
        // punctuation or spaces are kept.
        let end = if end_tok == offsets.len() { text.len() } else { offsets[end_tok].0 };
        let piece = text[start..end].trim();
        if !piece.is_empty() {
            chunks.push(Chunk { index: chunks.len(), text: piece.to_string(), start, end });
        }
        if end_tok == offsets.len() {
            break;
        }
        start_tok = end_tok - overlap;
    }
    Ok(chunks)
}

/// Plain text from Markdown: drops code fences' markers, heading hashes, emphasis and
/// link targets, keeping the words a reader sees.
pub fn markdown_to_text(md: &str) -> String {
    let mut out = String::with_capacity(md.len());
    for line in md.lines() {
        let l = line.trim_start();
        if l.starts_with("```") || l.starts_with("~~~") {
            continue;
        }
        let l = l.trim_start_matches('#').trim_start_matches('>').trim_start();
        let l = l.strip_prefix("- ").or_else(|| l.strip_prefix("* ")).unwrap_or(l);
        // [text](url) -> text ; ![alt](src) -> alt
        let mut s = String::with_capacity(l.len());
        let mut rest = l;
        while let Some(open) = rest.find('[') {
            let (before, after) = rest.split_at(open);
            s.push_str(before.trim_end_matches('!'));
            if let Some(close) = after.find("](") {
                if let Some(paren) = after[close..].find(')') {
                    s.push_str(&after[1..close]);
                    rest = &after[close + paren + 1..];
                    continue;
                }
            }
            s.push('[');
            rest = &after[1..];
        }
        s.push_str(rest);
        let s: String = s.chars().filter(|c| !matches!(c, '*' | '_' | '`')).collect();
        out.push_str(&s);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_becomes_plain_text() {
        let md = "# Title\n\nSome **bold** and [a link](http://x.y) and ![alt text](i.png).\n```rust\nfn x() {}\n```\n- item";
        let t = markdown_to_text(md);
        assert!(t.contains("Title") && t.contains("Some bold and a link and alt text."), "{t}");
        assert!(!t.contains("http") && !t.contains("```") && !t.contains("**"));
        assert!(t.contains("fn x() {}") && t.contains("item"));
    }
}
