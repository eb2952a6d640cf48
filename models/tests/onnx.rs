//! Generic ONNX encoders through ONNX Runtime (installed by `.ci/models.sh`, `make
//! models`) on tiny graphs committed in `tests/fixtures/onnx/`, written by
//! `make_fixtures.py` there, which also computed the expected embeddings with NumPy.

#[path = "support/runtime.rs"]
mod runtime;

use agentdb_models::onnx::{self, OnnxImageEncoder, OnnxTextEncoder};
use agentdb_models::registry::{self, ModelInfo};
use agentdb_models::Error;
use image::RgbImage;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use runtime::models_dir;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx")
}

fn info(name: &str) -> ModelInfo {
    registry::read_model(&fixtures().join(name)).unwrap()
}

#[derive(serde::Deserialize)]
struct Expected {
    images: HashMap<String, Vec<f32>>,
    texts: HashMap<String, Vec<f32>>,
}

fn expected() -> Expected {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join("expected.json")).unwrap()).unwrap()
}

/// The test image `make_fixtures.py` computes its references on.
fn pixel_image(seed: u32, w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        let v = x * 31 + y * 17 + seed * 101;
        image::Rgb([(v % 256) as u8, ((v / 3 + seed * 40) % 256) as u8, ((x * y + seed) % 256) as u8])
    })
}

fn assert_close(got: &[f32], want: &[f32], tol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    let worst = got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(worst <= tol, "{what}: differs by {worst}\n got  {got:?}\n want {want:?}");
}

fn norm(v: &[f32]) -> f32 {
    v.iter().map(|x| x * x).sum::<f32>().sqrt()
}

#[test]
fn encoders_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<OnnxImageEncoder>();
    check::<OnnxTextEncoder>();
}

#[test]
fn image_encoder_matches_numpy() {
    let exp = expected();
    let seeds = [1u32, 2, 3];
    let images: Vec<RgbImage> = seeds.iter().map(|&s| pixel_image(s, 16, 16)).collect();
    for name in ["image-nchw", "image-nhwc-b1"] {
        let enc = OnnxImageEncoder::load(info(name), &models_dir()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(enc.dim(), 8);
        // nchw: one run with a dynamic batch; nhwc-b1: one run per image.
        let batch = enc.embed_images(&images).unwrap();
        for (s, e) in seeds.iter().zip(&batch) {
            assert_close(e, &exp.images[&s.to_string()], 1e-5, &format!("{name} image {s}"));
            assert!((norm(e) - 1.0).abs() < 1e-5);
        }
        for (img, e) in images.iter().zip(&batch) {
            assert_close(&enc.embed_images(std::slice::from_ref(img)).unwrap()[0], e, 1e-6, name);
        }
        assert_eq!(enc.embed_images(&images).unwrap(), batch, "{name}: deterministic");
        assert!(enc.embed_images(&[]).unwrap().is_empty());
    }
}

#[test]
fn image_encoder_resizes_any_image() {
    let enc = OnnxImageEncoder::load(info("image-nchw"), &models_dir()).unwrap();
    let images = [pixel_image(4, 640, 480), pixel_image(5, 7, 300), pixel_image(6, 16, 16)];
    let batch = enc.embed_images(&images).unwrap();
    assert_eq!(batch.len(), 3);
    for (img, e) in images.iter().zip(&batch) {
        assert_eq!(e.len(), 8);
        assert!((norm(e) - 1.0).abs() < 1e-5);
        // Preprocessing is the CLIP-style resize and centre crop.
        let crop = agentdb_models::clip::resize_center_crop(img, 16, 16).unwrap();
        assert_close(e, &enc.embed_images(&[crop]).unwrap()[0], 1e-6, "resized then cropped");
    }
    assert!(enc.embed_images(&[RgbImage::new(0, 3)]).is_err());
}

#[test]
fn text_encoder_matches_numpy() {
    let exp = expected();
    let enc = OnnxTextEncoder::load(info("text-mean"), &models_dir()).unwrap();
    assert_eq!(enc.dim(), 6);
    let texts = ["a photo of a cat", "Dog", "the harbour at dusk a photo of a dog", "unknown words here"];
    let batch = enc.embed(&texts).unwrap();
    for (t, e) in texts.iter().zip(&batch) {
        assert_close(e, &exp.texts[*t], 1e-5, t);
        assert_close(&enc.embed(&[t]).unwrap()[0], e, 1e-6, t);
    }
    assert!(enc.embed(&[]).unwrap().is_empty());
}

/// Copy a fixture folder into a temporary one, to damage it.
fn copy(name: &str, to: &Path) -> ModelInfo {
    let dir = to.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(fixtures().join(name)).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, dir.join(p.file_name().unwrap())).unwrap();
    }
    registry::read_model(&dir).unwrap()
}

fn load_error(result: Result<OnnxImageEncoder, Error>, file: &str) -> String {
    match result {
        Err(e @ Error::ModelLoad { .. }) => {
            let Error::ModelLoad { path, .. } = &e else { unreachable!() };
            assert!(path.ends_with(file), "{e} should name {file}");
            e.to_string()
        }
        Err(e) => panic!("expected ModelLoad naming {file}, got {e}"),
        Ok(_) => panic!("expected ModelLoad naming {file}, got a model"),
    }
}

#[test]
fn bad_folders_are_model_load_errors_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let root = models_dir();
    let write_config = |info: &ModelInfo, v: serde_json::Value| {
        std::fs::write(info.dir.join(onnx::CONFIG_FILE), v.to_string()).unwrap();
    };
    let base = || {
        serde_json::json!({"input": "pixels", "output": "embedding", "size": 16,
            "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "layout": "NCHW"})
    };

    let i = copy("image-nchw", &tmp.path().join("a"));
    std::fs::remove_file(i.dir.join(onnx::CONFIG_FILE)).unwrap();
    load_error(OnnxImageEncoder::load(i, &root), onnx::CONFIG_FILE);

    let i = copy("image-nchw", &tmp.path().join("b"));
    let mut cfg = base();
    cfg["input"] = "image".into();
    write_config(&i, cfg);
    assert!(load_error(OnnxImageEncoder::load(i, &root), onnx::CONFIG_FILE).contains("pixels"));

    let i = copy("image-nchw", &tmp.path().join("c"));
    let mut cfg = base();
    cfg["size"] = 224.into();
    write_config(&i, cfg);
    load_error(OnnxImageEncoder::load(i, &root), onnx::CONFIG_FILE);

    let i = copy("image-nchw", &tmp.path().join("d"));
    let mut cfg = base();
    cfg["std"] = serde_json::json!([0.2, 0.0, 0.2]);
    write_config(&i, cfg);
    load_error(OnnxImageEncoder::load(i, &root), onnx::CONFIG_FILE);

    let i = copy("image-nchw", &tmp.path().join("e"));
    let mut cfg = base();
    cfg["layout"] = "NHWC".into();
    write_config(&i, cfg);
    load_error(OnnxImageEncoder::load(i, &root), onnx::CONFIG_FILE);

    // Damaged weights: the checksum no longer matches.
    let i = copy("image-nchw", &tmp.path().join("f"));
    std::fs::write(i.dir.join("model.onnx"), b"not onnx").unwrap();
    assert!(load_error(OnnxImageEncoder::load(i, &root), "model.onnx").contains("checksum"));

    // Garbage whose checksum matches: ONNX Runtime refuses it.
    let mut i = copy("image-nchw", &tmp.path().join("g"));
    std::fs::write(i.dir.join("model.onnx"), b"not onnx").unwrap();
    i.manifest.sha256 = registry::sha256_file(&i.dir.join("model.onnx")).unwrap();
    load_error(OnnxImageEncoder::load(i, &root), "model.onnx");

    let mut i = copy("image-nchw", &tmp.path().join("h"));
    i.manifest.architecture = "clip".into();
    load_error(OnnxImageEncoder::load(i, &root), registry::MANIFEST);

    // A text folder without its tokenizer.
    let t = copy("text-mean", &tmp.path().join("i"));
    std::fs::remove_file(t.dir.join("tokenizer.json")).unwrap();
    match OnnxTextEncoder::load(t, &root) {
        Err(Error::ModelLoad { path, .. }) => assert!(path.ends_with("tokenizer.json")),
        other => panic!("expected ModelLoad naming tokenizer.json, got {other:?}"),
    }

    // A wrong manifest dim shows at inference, with the numbers.
    let mut i = copy("image-nchw", &tmp.path().join("j"));
    i.manifest.dim = 9;
    let enc = OnnxImageEncoder::load(i, &root).unwrap();
    let err = enc.embed_images(&[pixel_image(1, 16, 16)]).unwrap_err().to_string();
    assert!(err.contains("expected 9"), "{err}");
}
