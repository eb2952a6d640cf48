//! What the shipped speech models say about sounds without speech (issue 18, point 4):
//! Whisper base on each whole file, without the VAD gate. Prints, per file, the segments
//! Whisper keeps under its own no-speech gate.
//!
//! usage: cargo run --release -p agentdb-models --example sound_text -- FILE...
use agentdb_models::audio::{decode_audio, resample, AudioLimits};
use agentdb_models::registry;
use agentdb_models::whisper::Whisper;

fn main() {
    let dir = registry::default_dir().join("whisper-base");
    let info = registry::read_model(&dir).expect("whisper-base installed (make models)");
    let w = Whisper::load(info).expect("load Whisper");
    for f in std::env::args().skip(1) {
        let bytes = std::fs::read(&f).expect("read");
        let a = match decode_audio(&bytes, AudioLimits::default()) {
            Ok(a) => a,
            Err(e) => {
                println!("{f}\tdecode error: {e}");
                continue;
            }
        };
        let pcm = resample(&a.samples, a.rate, 16_000);
        let segs = w.transcribe(&pcm).unwrap_or_default();
        let text: Vec<String> = segs
            .iter()
            .map(|s| format!("{:?} (nsp {:.2} lp {:.2})", s.text, s.no_speech_prob, s.avg_logprob))
            .collect();
        println!("{f}\t{:.2}s\t{}", a.seconds(), if text.is_empty() { "(nothing)".into() } else { text.join(" | ") });
    }
}
