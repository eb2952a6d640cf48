//! A tiny CLIP with random weights and Hugging Face's tensor names, plus the real CLIP
//! BPE vocabulary the set-up installs: for testing the user-supplied-CLIP loading path
//! (no CLIP weights ship in any package registry). Shared by models/tests/clip.rs and
//! server/tests/e2e_clip.rs through `#[path]`.
#![allow(dead_code)]

use agentdb_models::clip::{self};
use agentdb_models::registry::{self, ModelInfo, ModelManifest};
use candle_core::{Device, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub const WIDTH: usize = 64;
pub const LAYERS: usize = 2;
pub const MLP: usize = 128;
pub const CONTEXT: usize = 77;
pub const VOCAB: usize = 49408;
pub const IMAGE: usize = 32;
pub const PATCH: usize = 16;
pub const PROJ: usize = 32;

pub fn bpe_file() -> PathBuf {
    let p = registry::default_dir().join(clip::BPE_DIR).join(clip::BPE_FILE);
    assert!(p.exists(), "{} is missing: install it with `make models` (.ci/models.sh)", p.display());
    p
}

/// Deterministic pseudo-random numbers in [-1, 1) (64-bit LCG).
pub struct Lcg(u64);
impl Lcg {
    pub fn next(&mut self) -> f32 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    pub fn tensor(&mut self, shape: &[usize], scale: f32, offset: f32) -> Tensor {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| offset + scale * self.next()).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }
}

pub fn encoder(rng: &mut Lcg, t: &mut HashMap<String, Tensor>, prefix: &str) {
    for l in 0..LAYERS {
        let p = format!("{prefix}.encoder.layers.{l}");
        for proj in ["q_proj", "k_proj", "v_proj", "out_proj"] {
            t.insert(format!("{p}.self_attn.{proj}.weight"), rng.tensor(&[WIDTH, WIDTH], 0.2, 0.0));
            t.insert(format!("{p}.self_attn.{proj}.bias"), rng.tensor(&[WIDTH], 0.05, 0.0));
        }
        for ln in ["layer_norm1", "layer_norm2"] {
            t.insert(format!("{p}.{ln}.weight"), rng.tensor(&[WIDTH], 0.1, 1.0));
            t.insert(format!("{p}.{ln}.bias"), rng.tensor(&[WIDTH], 0.05, 0.0));
        }
        t.insert(format!("{p}.mlp.fc1.weight"), rng.tensor(&[MLP, WIDTH], 0.2, 0.0));
        t.insert(format!("{p}.mlp.fc1.bias"), rng.tensor(&[MLP], 0.05, 0.0));
        t.insert(format!("{p}.mlp.fc2.weight"), rng.tensor(&[WIDTH, MLP], 0.1, 0.0));
        t.insert(format!("{p}.mlp.fc2.bias"), rng.tensor(&[WIDTH], 0.05, 0.0));
    }
}

/// A complete small CLIP with Hugging Face's tensor names.
pub fn tensors() -> HashMap<String, Tensor> {
    let mut rng = Lcg(7);
    let mut t = HashMap::new();
    t.insert("text_model.embeddings.token_embedding.weight".into(), rng.tensor(&[VOCAB, WIDTH], 0.5, 0.0));
    t.insert("text_model.embeddings.position_embedding.weight".into(), rng.tensor(&[CONTEXT, WIDTH], 0.1, 0.0));
    encoder(&mut rng, &mut t, "text_model");
    t.insert("text_model.final_layer_norm.weight".into(), rng.tensor(&[WIDTH], 0.1, 1.0));
    t.insert("text_model.final_layer_norm.bias".into(), rng.tensor(&[WIDTH], 0.05, 0.0));
    t.insert("text_projection.weight".into(), rng.tensor(&[PROJ, WIDTH], 0.2, 0.0));
    let patches = (IMAGE / PATCH) * (IMAGE / PATCH);
    t.insert("vision_model.embeddings.class_embedding".into(), rng.tensor(&[WIDTH], 0.5, 0.0));
    t.insert("vision_model.embeddings.patch_embedding.weight".into(), rng.tensor(&[WIDTH, 3, PATCH, PATCH], 0.05, 0.0));
    t.insert("vision_model.embeddings.position_embedding.weight".into(), rng.tensor(&[patches + 1, WIDTH], 0.1, 0.0));
    t.insert("vision_model.pre_layrnorm.weight".into(), rng.tensor(&[WIDTH], 0.1, 1.0));
    t.insert("vision_model.pre_layrnorm.bias".into(), rng.tensor(&[WIDTH], 0.05, 0.0));
    encoder(&mut rng, &mut t, "vision_model");
    t.insert("vision_model.post_layernorm.weight".into(), rng.tensor(&[WIDTH], 0.1, 1.0));
    t.insert("vision_model.post_layernorm.bias".into(), rng.tensor(&[WIDTH], 0.05, 0.0));
    t.insert("visual_projection.weight".into(), rng.tensor(&[PROJ, WIDTH], 0.2, 0.0));
    t.insert("logit_scale".into(), Tensor::new(2.6592f32, &Device::Cpu).unwrap());
    t
}

pub fn config() -> serde_json::Value {
    let part = |extra: serde_json::Value| {
        let mut v = serde_json::json!({
            "hidden_size": WIDTH, "intermediate_size": MLP, "num_hidden_layers": LAYERS,
            "num_attention_heads": 4, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5,
        });
        v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        v
    };
    serde_json::json!({
        "architectures": ["CLIPModel"],
        "projection_dim": PROJ,
        "text_config": part(serde_json::json!({"vocab_size": VOCAB, "max_position_embeddings": CONTEXT})),
        "vision_config": part(serde_json::json!({"image_size": IMAGE, "patch_size": PATCH})),
    })
}

/// Write the model folder (weights, config, manifest; the tokenizer as `tokenizer`
/// says) and return its manifest.
pub fn write_model(dir: &Path, tensors: &HashMap<String, Tensor>, with_bpe: bool) -> ModelInfo {
    std::fs::create_dir_all(dir).unwrap();
    let weights = dir.join("model.safetensors");
    candle_core::safetensors::save(tensors, &weights).unwrap();
    std::fs::write(dir.join("config.json"), serde_json::to_vec_pretty(&config()).unwrap()).unwrap();
    if with_bpe {
        std::fs::copy(bpe_file(), dir.join(clip::BPE_FILE)).unwrap();
    }
    let manifest = ModelManifest {
        name: "tiny-clip".into(),
        version: "0.0.1".into(),
        modality: "multimodal".into(),
        architecture: "clip".into(),
        dim: PROJ,
        weights: "model.safetensors".into(),
        sha256: registry::sha256_file(&weights).unwrap(),
        source: "random weights written by models/tests/clip.rs".into(),
    };
    std::fs::write(dir.join(registry::MANIFEST), serde_json::to_vec_pretty(&manifest).unwrap()).unwrap();
    registry::read_model(dir).unwrap()
}
