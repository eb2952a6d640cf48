//! The image classifier on the GPU (`agentdb_kernels::convnet`) against its CPU twin,
//! the EfficientNet-Lite0 layers of `agentdb_models::image`, on the real weights and real
//! photographs. Everywhere (with `--features cuda`): NVRTC compiles the kernels when
//! libnvrtc is found. On a machine with a GPU: logits agree per GEMM mode, the top-1
//! class is the same in fp32, and a batch gives what single images give.
#![cfg(feature = "cuda")]

use agentdb_models::image::{decode_image, preprocess, EfficientNet, ImageLimits};
use agentdb_models::registry;
use std::path::PathBuf;

fn photos() -> Vec<Vec<f32>> {
    let d = agentdb_models::registry::testdata_dir().join("photos");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&d)
        .unwrap_or_else(|e| panic!("{}: {e}: run `bash .ci/models.sh --testdata`", d.display()))
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    names
        .iter()
        .filter_map(|p| decode_image(&std::fs::read(p).ok()?, ImageLimits::default()).ok())
        .take(12)
        .map(|img| preprocess(&img))
        .collect()
}

fn net() -> EfficientNet {
    let info = registry::read_model(&registry::default_dir().join("efficientnet-lite0"))
        .unwrap_or_else(|e| panic!("{e}: install the models first with `make models`"));
    EfficientNet::load(info).expect("load EfficientNet-Lite0")
}

fn cos(a: &[f32], b: &[f32]) -> f64 {
    let d: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let n = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    d / (n(a) * n(b))
}

fn argmax(v: &[f32]) -> usize {
    (0..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b])).unwrap()
}

#[test]
fn nvrtc_compiles_the_convnet_kernels() {
    // Safety: only tries to dlopen libnvrtc.
    if !unsafe { agentdb_kernels::cudarc::nvrtc::sys::is_culib_present() } {
        eprintln!("libnvrtc not found (LD_LIBRARY_PATH): skipped; `make test` provides it");
        return;
    }
    let ptx = agentdb_kernels::cudarc::nvrtc::compile_ptx(agentdb_kernels::convnet::CONVNET_KERNELS).expect("compiles");
    for k in ["cn_spatial", "cn_bias_act", "cn_add", "cn_avgpool"] {
        assert!(ptx.to_src().contains(k), "{k}");
    }
}

#[test]
fn gpu_image_encoder_matches_the_cpu_encoder() {
    if let Err(why) = agentdb_kernels::gpu::probe(0) {
        eprintln!("no GPU here ({why}): skipped");
        return;
    }
    let inputs = photos();
    assert!(inputs.len() >= 4, "photos");
    let cpu = net();
    let want = cpu.logits(&inputs).unwrap();
    for (math, bound) in [("fp32", 0.99999), ("tf32", 0.999)] {
        let mut gpu = net();
        let label = gpu.use_gpu(0, math).expect("GPU network");
        assert!(gpu.on_gpu());
        let got = gpu.logits(&inputs).unwrap();
        let single = gpu.logits(&inputs[1..2]).unwrap();
        assert!(cos(&single[0], &got[1]) > 0.99999, "{math}: a batch differs from a single image");
        for (i, (w, g)) in want.iter().zip(&got).enumerate() {
            let c = cos(w, g);
            let dmax = w.iter().zip(g).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            eprintln!(
                "{label}: photo {i}: logits cosine {c:.7}, max |diff| {dmax:.5}, top-1 {} vs {}",
                argmax(w),
                argmax(g)
            );
            assert!(c >= bound, "{math}: photo {i}: cosine {c} < {bound}");
            if math == "fp32" {
                assert_eq!(argmax(w), argmax(g), "fp32: photo {i}: top-1 differs");
            }
        }
    }
}
