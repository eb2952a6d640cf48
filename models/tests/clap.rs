//! A user's CLAP (`onnx-clap`): the front end against `transformers`' own
//! `ClapFeatureExtractor` (fixture written by `tests/reference/clap_features_reference.py`),
//! and both towers of the tiny fixture model (`tests/fixtures/onnx/make_clap_fixture.py`,
//! whose expected embeddings also use transformers' features) through ONNX Runtime.

#[path = "support/runtime.rs"]
mod runtime;

use agentdb_models::clap::Clap;
use agentdb_models::registry::{self, ModelInfo};
use agentdb_models::Error;
use serde_json::Value;
use std::path::{Path, PathBuf};

const RATE: f64 = 48_000.0;

use runtime::models_dir;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn info_at(dir: &Path) -> ModelInfo {
    registry::read_model(dir).unwrap()
}

fn tiny() -> Clap {
    Clap::load(info_at(&fixtures().join("onnx/clap-tiny")), &models_dir()).unwrap()
}

fn json(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join(name)).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

fn worst(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// The reference script's signals.
fn tones(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let i = i as f64;
            let x = 0.5 * (2.0 * std::f64::consts::PI * 440.0 * i / RATE).sin()
                + 0.25 * (2.0 * std::f64::consts::PI * 3000.0 * i / RATE + 0.3).sin()
                + 0.05 * (((i * 7919.0) % 1000.0) / 500.0 - 1.0);
            x as f32
        })
        .collect()
}

fn chirp(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let t = i as f64 / RATE;
            (0.3 * (2.0 * std::f64::consts::PI * (100.0 * t + 250.0 * t * t)).sin()) as f32
        })
        .collect()
}

fn sine(freq: f64, seconds: f64, rate: f64) -> Vec<f32> {
    (0..(rate * seconds) as usize)
        .map(|i| (0.4 * (2.0 * std::f64::consts::PI * freq * i as f64 / rate).sin()) as f32)
        .collect()
}

fn cos(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn front_end_matches_transformers_clap_feature_extractor() {
    let clap = tiny();
    let reference = json("clap_features.json");
    let frames: Vec<usize> =
        reference["frames"].as_array().unwrap().iter().map(|f| f.as_u64().unwrap() as usize).collect();
    for (name, signal) in [("tones_1.3s", tones(62_400)), ("chirp_10s", chirp(480_000))] {
        let case = &reference["cases"][name];
        let windows = clap.windows(&signal);
        assert_eq!(windows.len(), 1, "{name}");
        let f = clap.features(&windows[0]);
        assert_eq!(f.len(), 1001 * 64, "{name}");
        for r in &frames {
            let want = floats(&case["rows"][r.to_string()]);
            let got = &f[r * 64..(r + 1) * 64];
            let w = worst(got, &want);
            assert!(w < 2e-3, "{name} frame {r}: worst difference {w} dB\n got {got:?}\nwant {want:?}");
        }
        let mut means = vec![0f32; 64];
        for row in f.chunks_exact(64) {
            means.iter_mut().zip(row).for_each(|(m, v)| *m += v / 1001.0);
        }
        let w = worst(&means, &floats(&case["band_means"]));
        assert!(w < 2e-3, "{name} band means: worst difference {w} dB");
    }
}

#[test]
fn both_towers_match_numpy_on_the_tiny_model() {
    let clap = tiny();
    assert_eq!(clap.dim(), 4);
    let want = json("onnx/clap_expected.json");
    for (name, signal) in [
        ("hum_150hz_2s", sine(150.0, 2.0, RATE)),
        ("whistle_6khz_1.5s", sine(6000.0, 1.5, RATE)),
        ("hum_then_whistle_25s", [sine(150.0, 10.0, RATE), sine(6000.0, 15.0, RATE)].concat()),
    ] {
        let got = clap.embed_audio(&signal, 48_000).unwrap();
        let w = worst(&got, &floats(&want["audio"][name]));
        assert!(w < 1e-4, "{name}: {got:?} vs {} (worst {w})", want["audio"][name]);
    }
    let texts: Vec<&str> = want["texts"].as_object().unwrap().keys().map(String::as_str).collect();
    let got = clap.embed_texts(&texts).unwrap();
    for (t, g) in texts.iter().zip(&got) {
        let w = worst(g, &floats(&want["texts"][*t]));
        assert!(w < 1e-5, "{t:?}: {g:?} (worst {w})");
    }
}

#[test]
fn audio_and_text_meet_in_one_space_at_any_sample_rate() {
    let clap = tiny();
    let t = clap.embed_texts(&["a low hum", "a high whistle"]).unwrap();
    // Recorded at 16 kHz: resampled to the model's 48 kHz first.
    let hum = clap.embed_audio(&sine(150.0, 3.0, 16_000.0), 16_000).unwrap();
    let whistle = clap.embed_audio(&sine(6000.0, 3.0, 16_000.0), 16_000).unwrap();
    assert!(cos(&hum, &t[0]) > 0.5 && cos(&hum, &t[1]) < 0.0, "{hum:?}");
    assert!(cos(&whistle, &t[1]) > 0.5 && cos(&whistle, &t[0]) < 0.0, "{whistle:?}");
}

#[test]
fn a_long_recording_at_another_rate_is_sampled_before_resampling() {
    let clap = tiny();
    // 6 minutes at 16 kHz (more than 30 windows): the first 3 a hum, the rest a whistle.
    let pcm = [sine(150.0, 180.0, 16_000.0), sine(6000.0, 180.0, 16_000.0)].concat();
    let v = clap.embed_audio(&pcm, 16_000).unwrap();
    let t = clap.embed_texts(&["a low hum", "a high whistle"]).unwrap();
    // Half the windows each way: the hum's larger raw outputs win, as in the fixture's
    // 25 s case, and the vector is a unit vector.
    assert!((v.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-5);
    assert!(cos(&v, &t[0]) > cos(&v, &t[1]), "{v:?}");
}

#[test]
fn bad_audio_is_refused_with_the_reason() {
    let clap = tiny();
    let e = clap.embed_audio(&[], 48_000).unwrap_err();
    assert!(matches!(&e, Error::InvalidInput(m) if m.contains("no audio")), "{e}");
    let mut x = sine(440.0, 0.5, RATE);
    x[100] = f32::NAN;
    let e = clap.embed_audio(&x, 48_000).unwrap_err();
    assert!(matches!(&e, Error::InvalidInput(m) if m.contains("sample 100")), "{e}");
}

/// A copy of the fixture folder with `edit` applied to its encoder config.
fn edited(edit: impl FnOnce(&mut Value)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let src = fixtures().join("onnx/clap-tiny");
    for f in std::fs::read_dir(&src).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), dir.path().join(f.file_name())).unwrap();
    }
    let p = dir.path().join("onnx-encoder.json");
    let mut cfg: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    edit(&mut cfg);
    std::fs::write(&p, cfg.to_string()).unwrap();
    dir
}

#[test]
fn a_damaged_or_mismatched_folder_is_refused_at_load() {
    let load = |d: &tempfile::TempDir| Clap::load(info_at(d.path()), &models_dir()).unwrap_err().to_string();
    let d = edited(|c| c["text"]["sha256"] = "00".repeat(32).into());
    let e = load(&d);
    assert!(e.contains("text_model.onnx") && e.contains("checksum"), "{e}");
    let d = edited(|c| c["audio"]["input"] = "waveform".into());
    let e = load(&d);
    assert!(e.contains("no input \"waveform\"") && e.contains("input_features"), "{e}");
    let d = edited(|c| c["features"] = serde_json::json!({"mels": 80}));
    let e = load(&d);
    assert!(e.contains("80 mel bands") && e.contains("[batch, 1, 1001, 80]"), "{e}");
    let d = edited(|c| c["features"] = serde_json::json!({"n_fft": 1000}));
    assert!(load(&d).contains("power of two"));
    let d = edited(|c| c["audio"]["extra"] = 1.into());
    assert!(load(&d).contains("unknown field"));
    // Not a CLAP at all.
    let e = Clap::load(info_at(&fixtures().join("onnx/text-mean")), &models_dir()).unwrap_err().to_string();
    assert!(e.contains("\"onnx-text\" is not \"onnx-clap\""), "{e}");
}
