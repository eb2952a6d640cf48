//! Every audio format the ingest path claims, decoded by symphonia: files made at test
//! time with the ffmpeg CLI (Debian's, installed by .ci/setup.sh) from a known tone, so
//! length, rate and pitch can be checked; truncated copies must fail cleanly or decode
//! a prefix, never panic.

use agentdb_models::audio::{decode_audio, encode_wav16, resample, AudioLimits};
use std::process::Command;

fn tone_wav(path: &std::path::Path, secs: f32, rate: u32) {
    let n = (secs * rate as f32) as usize;
    let tone: Vec<f32> = (0..n).map(|i| 0.5 * (std::f32::consts::TAU * 440.0 * i as f32 / rate as f32).sin()).collect();
    std::fs::write(path, encode_wav16(&tone, rate)).unwrap();
}

/// Frequency from zero crossings of the middle second.
fn pitch(samples: &[f32], rate: u32) -> f32 {
    let mid = &samples[samples.len() / 4..samples.len() * 3 / 4];
    let crossings = mid.windows(2).filter(|w| (w[0] < 0.0) != (w[1] < 0.0)).count();
    crossings as f32 / 2.0 / (mid.len() as f32 / rate as f32)
}

#[test]
fn wav_flac_mp3_ogg_vorbis_and_aac_m4a_decode_to_the_same_tone() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("tone.wav");
    tone_wav(&wav, 2.0, 44100);
    let formats: [(&str, &[&str]); 4] = [
        ("tone.flac", &["-c:a", "flac"]),
        ("tone.mp3", &["-c:a", "libmp3lame", "-b:a", "128k"]),
        ("tone.ogg", &["-c:a", "libvorbis"]),
        ("tone.m4a", &["-c:a", "aac", "-b:a", "128k"]),
    ];
    let mut files = vec![wav.clone()];
    for (name, codec) in formats {
        let out = dir.path().join(name);
        let st = Command::new("ffmpeg")
            .args(["-loglevel", "error", "-y", "-i"])
            .arg(&wav)
            .args(codec)
            .arg(&out)
            .status()
            .expect("ffmpeg is installed by .ci/setup.sh");
        assert!(st.success(), "ffmpeg {name}");
        files.push(out);
    }
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        let a = decode_audio(&bytes, AudioLimits::default()).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert_eq!(a.rate, 44100, "{}", f.display());
        // Lossy codecs add encoder delay and padding: allow 0.1 s.
        assert!((a.seconds() - 2.0).abs() < 0.1, "{}: {} s", f.display(), a.seconds());
        let p = pitch(&a.samples, a.rate);
        assert!((p - 440.0).abs() < 5.0, "{}: pitch {p}", f.display());
        let r = resample(&a.samples, a.rate, 16_000);
        assert!((pitch(&r, 16_000) - 440.0).abs() < 5.0);
        // Any cut: an error or a shorter decode, never a panic.
        for cut in [16, bytes.len() / 3, bytes.len() * 2 / 3] {
            if let Ok(short) = decode_audio(&bytes[..cut], AudioLimits::default()) {
                assert!(short.seconds() <= 2.1, "{}", f.display());
            }
        }
        // Duration limit.
        let err = decode_audio(&bytes, AudioLimits { max_seconds: 1.0 }).unwrap_err().to_string();
        assert!(err.contains("max_audio_seconds"), "{}: {err}", f.display());
    }
}
