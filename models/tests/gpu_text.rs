//! The text encoder on the GPU (`agentdb_kernels::bert`) against its CPU twin, the
//! Candle BERT, on the real all-MiniLM-L6-v2 weights. Everywhere (with `--features
//! cuda`): NVRTC compiles the kernels when libnvrtc is found. On a machine with a GPU:
//! every GEMM mode's embeddings have a cosine to the CPU's above its bound, and padded
//! batches of mixed lengths give the same vectors as one sentence at a time.
#![cfg(feature = "cuda")]

use agentdb_models::{registry, TextEncoder};
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
fn nvrtc_compiles_the_bert_kernels() {
    // Safety: only tries to dlopen libnvrtc.
    if !unsafe { agentdb_kernels::cudarc::nvrtc::sys::is_culib_present() } {
        eprintln!("libnvrtc not found (LD_LIBRARY_PATH): skipped; `make test` provides it");
        return;
    }
    let ptx = agentdb_kernels::cudarc::nvrtc::compile_ptx(agentdb_kernels::bert::BERT_KERNELS).expect("compiles");
    for k in ["bert_embed", "bert_add_ln", "bert_bias_act", "bert_attention", "bert_pool"] {
        assert!(ptx.to_src().contains(k), "{k}");
    }
}

#[test]
fn gpu_text_encoder_matches_the_cpu_encoder() {
    if let Err(why) = agentdb_kernels::gpu::probe(0) {
        eprintln!("no GPU here ({why}): skipped");
        return;
    }
    let texts = [
        "The weather is lovely today.",
        "A small dog crosses the river at night while the committee measures the new database.",
        "GPU",
        "Quarterly revenue grew by 12% in the third quarter, driven by strong demand in Europe and Asia.",
    ];
    let cpu = encoder();
    let want = cpu.embed(&texts).unwrap();
    for (math, bound) in [("fp32", 0.99999), ("tf32", 0.999), ("fp16", 0.999)] {
        let mut enc = encoder();
        let label = enc.use_gpu(0, math).expect("GPU encoder");
        assert!(enc.on_gpu());
        let got = enc.embed(&texts).unwrap();
        let single: Vec<Vec<f32>> = texts.iter().map(|t| enc.embed(&[t]).unwrap().remove(0)).collect();
        for i in 0..texts.len() {
            let c = cos(&want[i], &got[i]);
            eprintln!("{label}: cosine to the CPU {c:.7} ({:?})", &texts[i][..texts[i].len().min(30)]);
            assert!(c >= bound, "{math}: cosine {c} < {bound} for {:?}", texts[i]);
            assert!(cos(&got[i], &single[i]) >= bound, "{math}: padding changed sentence {i}");
        }
    }
}
