//! Silero VAD through ONNX Runtime, with the real model and runtime installed by
//! `.ci/models.sh` (`make models`), on speech synthesised here with espeak-ng.

use agentdb_models::vad::{self, Vad, SAMPLE_RATE};
use agentdb_models::{registry, Error};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

fn vad() -> Arc<Vad> {
    static VAD: OnceLock<Arc<Vad>> = OnceLock::new();
    VAD.get_or_init(|| {
        let root = registry::default_dir();
        let info = registry::read_model(&root.join("silero-vad"))
            .unwrap_or_else(|e| panic!("{e}: install the models first: run `make models` (.ci/models.sh)"));
        Arc::new(
            Vad::load(info, &root)
                .unwrap_or_else(|e| panic!("{e}: install the models first: run `make models` (.ci/models.sh)")),
        )
    })
    .clone()
}

/// Mono samples in [-1, 1] and the sample rate of a 16-bit PCM WAV file.
fn read_wav(bytes: &[u8]) -> (Vec<f32>, usize) {
    assert_eq!(&bytes[0..4], b"RIFF");
    assert_eq!(&bytes[8..12], b"WAVE");
    let u16_at = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]);
    let u32_at = |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    let (mut pos, mut channels, mut rate) = (12, 0usize, 0usize);
    while pos + 8 <= bytes.len() {
        let (id, size) = (&bytes[pos..pos + 4], u32_at(pos + 4) as usize);
        let body = pos + 8;
        if id == b"fmt " {
            assert_eq!(u16_at(body), 1, "PCM");
            channels = u16_at(body + 2) as usize;
            rate = u32_at(body + 4) as usize;
            assert_eq!(u16_at(body + 14), 16, "16-bit");
        } else if id == b"data" {
            assert!(channels > 0, "fmt before data");
            // espeak-ng may leave the size unset when it cannot seek: take what is there.
            let data = &bytes[body..(body + size).min(bytes.len())];
            let samples: Vec<f32> = data
                .chunks_exact(2 * channels)
                .map(|frame| {
                    frame.chunks_exact(2).map(|s| i16::from_le_bytes([s[0], s[1]]) as f32 / 32768.0).sum::<f32>()
                        / channels as f32
                })
                .collect();
            return (samples, rate);
        }
        pos = body + size + (size & 1);
    }
    panic!("no data chunk");
}

/// Linear-interpolation resampling to 16 kHz.
fn resample_16k(x: &[f32], rate: usize) -> Vec<f32> {
    let n = x.len() * SAMPLE_RATE / rate;
    (0..n)
        .map(|i| {
            let t = i as f64 * rate as f64 / SAMPLE_RATE as f64;
            let (j, f) = (t.floor() as usize, (t - t.floor()) as f32);
            let a = x[j.min(x.len() - 1)];
            let b = x[(j + 1).min(x.len() - 1)];
            a + (b - a) * f
        })
        .collect()
}

/// `text` spoken by espeak-ng at 16 kHz, with espeak's leading and trailing silence cut.
fn speak(text: &str) -> Vec<f32> {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("speech.wav");
    let status = std::process::Command::new("espeak-ng")
        .arg("-w")
        .arg(&wav)
        .arg(text)
        .status()
        .unwrap_or_else(|e| panic!("espeak-ng: {e}; install it with `apt-get install espeak-ng` (.ci/setup.sh)"));
    assert!(status.success(), "espeak-ng failed");
    let (x, rate) = read_wav(&std::fs::read(&wav).unwrap());
    let x = resample_16k(&x, rate);
    let loud = |s: &f32| s.abs() > 0.01;
    let first = x.iter().position(loud).expect("espeak-ng wrote silence");
    let last = x.iter().rposition(loud).unwrap();
    x[first..=last].to_vec()
}

/// Uniform white noise in [-amp, amp] (xorshift, fixed seed).
fn noise(n: usize, amp: f32, seed: u64) -> Vec<f32> {
    let mut s = seed.max(1);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 11) as f32 / (1u64 << 53) as f32 * 2.0 - 1.0) * amp
        })
        .collect()
}

fn silence(seconds: f32) -> Vec<f32> {
    vec![0.0; (seconds * SAMPLE_RATE as f32) as usize]
}

/// 2 s silence, speech, 2 s silence, speech, 1 s of quiet white noise; and the two true
/// speech intervals in seconds.
fn clip() -> (Vec<f32>, [(f32, f32); 2]) {
    let a = speak("The quick brown fox jumps over the lazy dog");
    let b = speak("Voice activity detection finds the speech in a recording");
    let secs = |n: usize| n as f32 / SAMPLE_RATE as f32;
    let mut x = silence(2.0);
    let a_at = (secs(x.len()), secs(x.len() + a.len()));
    x.extend(&a);
    x.extend(silence(2.0));
    let b_at = (secs(x.len()), secs(x.len() + b.len()));
    x.extend(&b);
    x.extend(noise(SAMPLE_RATE, 0.003, 7));
    (x, [a_at, b_at])
}

#[test]
fn finds_the_two_utterances() {
    let (x, truth) = clip();
    for (s, e) in truth {
        assert!((1.5..=4.0).contains(&(e - s)), "espeak utterance of {:.2} s", e - s);
    }
    let vad = vad();
    let t = Instant::now();
    let regions = vad.speech_regions(&x).unwrap();
    let took = t.elapsed();
    eprintln!("truth {truth:?}\nregions {regions:?}\n{:.1} s of audio in {took:?}", x.len() as f32 / 16000.0);
    assert_eq!(regions.len(), 2, "{regions:?} vs truth {truth:?}");
    for ((s, e), (ts, te)) in regions.iter().zip(truth) {
        assert!((s - ts).abs() <= 0.3 && (e - te).abs() <= 0.3, "region {s:.2}..{e:.2} vs speech {ts:.2}..{te:.2}");
    }
    // Same answer again: nothing leaks from one call into the next.
    assert_eq!(vad.speech_regions(&x).unwrap(), regions);
}

#[test]
fn silence_noise_and_empty_give_no_regions() {
    let vad = vad();
    assert!(vad.speech_regions(&[]).unwrap().is_empty());
    assert!(vad.speech_probabilities(&[]).unwrap().is_empty());
    assert!(vad.speech_regions(&silence(5.0)).unwrap().is_empty());
    assert!(vad.speech_regions(&noise(5 * SAMPLE_RATE, 0.003, 42)).unwrap().is_empty());
    assert!(vad.speech_regions(&noise(5 * SAMPLE_RATE, 0.02, 43)).unwrap().is_empty());
    // Shorter than one window, and not a multiple of the window.
    assert!(vad.speech_regions(&[0.0; 100]).unwrap().is_empty());
    assert_eq!(vad.speech_probabilities(&[0.0; 1025]).unwrap().len(), 3);
}

#[test]
fn non_finite_samples_are_refused() {
    let vad = vad();
    let mut x = silence(1.0);
    x[1234] = f32::NAN;
    assert!(matches!(vad.speech_regions(&x), Err(Error::InvalidInput(_))));
    x[1234] = f32::INFINITY;
    assert!(matches!(vad.speech_regions(&x), Err(Error::InvalidInput(_))));
    // Out-of-range but finite samples (clipping) are fine.
    assert!(vad.speech_regions(&vec![3.0; 8000]).is_ok());
}

#[test]
fn concurrent_callers_get_the_same_answer() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Vad>();
    let (x, _) = clip();
    let x = Arc::new(x);
    let want = vad().speech_regions(&x).unwrap();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let x = x.clone();
            std::thread::spawn(move || vad().speech_regions(&x).unwrap())
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), want);
    }
}

#[test]
fn runtime_init_is_idempotent_and_checksums_are_checked() {
    let root = registry::default_dir();
    vad::init_runtime(&root).unwrap();
    vad::init_runtime(&root).unwrap();
    let mut info = registry::read_model(&root.join("silero-vad")).unwrap();
    info.manifest.sha256 = "0".repeat(64);
    let err = Vad::load(info, &root).unwrap_err().to_string();
    assert!(err.contains("checksum mismatch"), "{err}");
}

/// How long VAD takes per minute of audio (printed; run with `--nocapture`).
#[test]
fn one_minute_timing() {
    let (x, _) = clip();
    let minute: Vec<f32> = x.iter().copied().cycle().take(60 * SAMPLE_RATE).collect();
    let vad = vad();
    let t = Instant::now();
    let regions = vad.speech_regions(&minute).unwrap();
    eprintln!("VAD: 60 s of audio in {:?} ({} regions)", t.elapsed(), regions.len());
    assert!(!regions.is_empty());
}
