//! YAMNet (sound events) through ONNX Runtime, with the real model installed by
//! `.ci/models.sh` (`make models`): the front end and the network against the
//! independent NumPy reference (models/tests/reference/yamnet_reference.py, fixture
//! `fixtures/yamnet_synth.json`), and real recordings from Debian's freedesktop sound
//! theme classified as what they are.

use agentdb_models::audio::{decode_audio, resample, AudioLimits};
use agentdb_models::sound::{self, SoundEvents, MELS};
use agentdb_models::{registry, Error};
use std::sync::{Arc, OnceLock};

fn yamnet() -> Arc<SoundEvents> {
    static M: OnceLock<Arc<SoundEvents>> = OnceLock::new();
    M.get_or_init(|| {
        let root = registry::default_dir();
        let info = registry::read_model(&root.join("yamnet"))
            .unwrap_or_else(|e| panic!("{e}: install the models first: run `make models` (.ci/models.sh)"));
        Arc::new(
            SoundEvents::load(info, &root)
                .unwrap_or_else(|e| panic!("{e}: install the models first: run `make models` (.ci/models.sh)")),
        )
    })
    .clone()
}

/// The reference's synthetic signal (see `synth` in yamnet_reference.py).
fn synth() -> Vec<f32> {
    let rate = sound::RATE as f64;
    (0..(2.1 * rate) as usize)
        .map(|i| {
            let t = i as f64 / rate;
            let tau = 2.0 * std::f64::consts::PI;
            (0.3 * (tau * 440.0 * t).sin()
                + 0.15 * (tau * 1320.0 * t).sin()
                + 0.2 * (tau * (200.0 + 900.0 * t) * t).sin()
                + 0.05 * ((i * 7919 % 1000) as f64 / 500.0 - 1.0)) as f32
        })
        .collect()
}

#[test]
fn front_end_and_logits_match_the_numpy_reference() {
    let fx: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/yamnet_synth.json")).expect("fixture is JSON");
    let m = yamnet();
    let x = synth();
    let lm = m.log_mel(&x);
    assert_eq!(lm.len() / MELS, fx["frames"].as_u64().unwrap() as usize, "frame count after padding");
    let mut worst = 0f32;
    for g in fx["log_mel"].as_array().unwrap() {
        let (f, b, want) = (g[0].as_u64().unwrap() as usize, g[1].as_u64().unwrap() as usize, g[2].as_f64().unwrap());
        worst = worst.max((lm[f * MELS + b] - want as f32).abs());
    }
    // f32 input, f64 FFT on both sides: only rounding differs.
    assert!(worst < 2e-3, "log-mel differs from the reference by {worst}");

    let logits = m.logits(&sound::patches(&lm)).unwrap();
    let want: Vec<f32> = fx["logits"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap().iter())
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    assert_eq!(logits.len(), want.len(), "patches × classes");
    let worst = logits.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(worst < 5e-3, "logits differ from the reference by {worst}");
}

/// Top classes of a freedesktop sound, decoded and resampled by our own code.
fn top(file: &str, k: usize) -> Vec<String> {
    let path = format!("/usr/share/sounds/freedesktop/stereo/{file}");
    let bytes = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}: install Debian's sound-theme-freedesktop (.ci/setup.sh)"));
    let a = decode_audio(&bytes, AudioLimits::default()).unwrap();
    let m = yamnet();
    let scores = m.scores(&resample(&a.samples, a.rate, sound::RATE as u32)).unwrap();
    assert_eq!(scores.len(), 521);
    m.top(&scores, k).into_iter().map(|(l, _)| l).collect()
}

#[test]
fn real_sounds_are_classified_as_what_they_are() {
    let has = |labels: &[String], any: &[&str]| labels.iter().any(|l| any.contains(&l.as_str()));
    let phone = top("phone-incoming-call.oga", 4);
    assert!(has(&phone, &["Telephone bell ringing", "Ringtone", "Telephone"]), "phone: {phone:?}");
    let alarm = top("alarm-clock-elapsed.oga", 5);
    assert!(has(&alarm, &["Alarm clock", "Alarm"]), "alarm clock: {alarm:?}");
    let trash = top("trash-empty.oga", 3);
    assert!(has(&trash, &["Crumpling, crinkling"]), "paper crumpled: {trash:?}");
    let busy = top("phone-outgoing-busy.oga", 3);
    assert!(has(&busy, &["Busy signal"]), "busy tone: {busy:?}");
    // And a recording of a voice is speech, not an event.
    let voice = top("audio-channel-front-left.oga", 1);
    assert_eq!(voice, ["Speech"]);
}

#[test]
fn bad_input_is_refused_clearly() {
    let m = yamnet();
    match m.scores(&[]) {
        Err(Error::InvalidInput(msg)) => assert!(msg.contains("no audio"), "{msg}"),
        other => panic!("empty input: {other:?}"),
    }
    let mut x = vec![0.1f32; 20_000];
    x[123] = f32::NAN;
    match m.scores(&x) {
        Err(Error::InvalidInput(msg)) => assert!(msg.contains("sample 123"), "{msg}"),
        other => panic!("NaN input: {other:?}"),
    }
    // Very short and very long recordings still give one score per class.
    assert_eq!(m.scores(&[0.2; 10]).unwrap().len(), 521);
    let long = vec![0.01f32; sound::RATE * 60 * 6];
    let s = m.scores(&long).unwrap();
    assert!(s.iter().all(|v| v.is_finite() && (0.0..=1.0).contains(v)));
}
