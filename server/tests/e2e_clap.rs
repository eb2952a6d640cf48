//! A user-supplied CLAP through the real binary: `models.clap` names an `onnx-clap`
//! folder (here the tiny two-tower fixture of the models crate, built so that a low hum
//! lies near "a low hum" and a whistle near "a high whistle"; no CLAP weights ship in a
//! registry). `--multimodal` collections then get a `clap` space: recordings are embedded
//! from their waveform by the audio tower, texts by the text tower, images by a caption
//! of their labels; text and audio queries search it beside the default spaces.

mod common;

use agentdb_models::audio::encode_wav16;
use common::*;
use serde_json::Value;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/tests/fixtures/onnx/clap-tiny");

fn sine(freq: f32, seconds: f32) -> Vec<f32> {
    (0..(16_000.0 * seconds) as usize)
        .map(|i| 0.4 * (std::f32::consts::TAU * freq * i as f32 / 16_000.0).sin())
        .collect()
}

fn sources(hits: &[Value]) -> Vec<String> {
    hits.iter().map(|h| h["source"].as_str().unwrap().rsplit('/').next().unwrap().to_string()).collect()
}

#[test]
fn a_clap_model_from_a_folder_finds_sounds_by_description_and_by_example() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &["--set", &format!("models.clap={FIXTURE}"), "--set", "ingest.ocr=false"],
    );
    let ok = |args: &[&str]| server.ok(args);
    ok(&["collection", "create", "mixed", "--multimodal"]);
    assert!(server.log_text().contains("CLAP ready"), "{}", server.log_text());
    let d: Value = serde_json::from_slice(&ok(&["collection", "describe", "mixed", "--json"])).unwrap();
    let spaces = d["spaces"].to_string();
    assert!(spaces.contains("\"clap\"") && spaces.contains("tiny-clap@0.0.1") && spaces.contains("\"dim\":4"), "{d:#}");

    let media = dir.path().join("media");
    std::fs::create_dir_all(&media).unwrap();
    std::fs::write(media.join("rec-001.wav"), encode_wav16(&sine(150.0, 3.0), 16_000)).unwrap();
    std::fs::write(media.join("rec-002.wav"), encode_wav16(&sine(6_000.0, 3.0), 16_000)).unwrap();
    std::fs::copy(photos().join("chelsea.png"), media.join("img-001.png")).unwrap();
    std::fs::write(media.join("note.txt"), "A short note about cats and coffee.").unwrap();
    // A video of a photo whose soundtrack is a whistle (no speech): its `sound` part is
    // heard by the audio tower too.
    let out = std::process::Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-loop", "1", "-t", "3", "-i"])
        .arg(photos().join("coffee.png"))
        .args(["-f", "lavfi", "-t", "3", "-i", "sine=frequency=6000:sample_rate=16000"])
        .args(["-vf", "scale=320:240,format=yuv420p", "-r", "10", "-c:v", "libx264", "-c:a", "aac", "-shortest"])
        .arg(media.join("clip-001.mp4"))
        .output()
        .expect("ffmpeg (installed by .ci/setup.sh)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let s: Value = serde_json::from_slice(&ok(&["ingest", "mixed", media.to_str().unwrap(), "--json"])).unwrap();
    assert_eq!(s["ingested"], serde_json::json!(5), "every file has a vector in every space: {s}");

    // By description, in the CLAP space alone (dense, sounds only): the audio tower
    // placed each recording by what it sounds like, whatever its file name.
    let dense_sounds =
        ["--space", "clap", "--mode", "dense", "--filter", "modality = \"sound\"", "--json", "--explain"];
    let search = |q: &[&str]| json_lines(&ok(&[&["search", "mixed"], q, &dense_sounds[..]].concat()));
    let low = search(&["--text", "a low hum"]);
    assert_eq!(sources(&low)[0], "rec-001.wav", "{low:#?}");
    let high = search(&["--text", "the sound of a shrill whistle"]);
    let mut top2 = sources(&high)[..2].to_vec();
    top2.sort();
    assert_eq!(top2, ["clip-001.mp4", "rec-002.wav"], "{high:#?}");
    assert_eq!(sources(&high)[2], "rec-001.wav", "{high:#?}");
    for h in low.iter().chain(&high) {
        assert!(h["explain"].as_array().unwrap().iter().all(|e| e["list"] == "clap/sound"), "{h:#}");
        let enc = h["payload"]["encoder"].as_str().unwrap();
        assert!(enc.contains("tiny-clap@0.0.1") && enc.contains("yamnet@"), "both vectors named: {enc}");
    }
    // By example: a lower hum at another length finds the hum first.
    let q = dir.path().join("query.wav");
    std::fs::write(&q, encode_wav16(&sine(220.0, 1.5), 16_000)).unwrap();
    let by_ear = search(&["--audio", q.to_str().unwrap()]);
    assert_eq!(sources(&by_ear)[0], "rec-001.wav", "{by_ear:#?}");
    assert_eq!(sources(&by_ear).len(), 3, "{by_ear:#?}");

    // Every space at once: the CLAP's lists are fused with the default ones, and the
    // image and the note are in the CLAP space too (a caption of the labels, the text).
    let all = json_lines(&ok(&["search", "mixed", "--text", "a low hum", "--json", "--explain", "--top-k", "4"]));
    assert_eq!(all.len(), 4, "{all:#?}");
    let lists: Vec<String> =
        all.iter().flat_map(|h| h["explain"].as_array().unwrap().iter().map(|e| e["list"].to_string())).collect();
    for l in ["clap/sound", "clap/image", "clap/text", "text/sound"] {
        assert!(lists.iter().any(|x| x.contains(l)), "no {l} list: {lists:?}");
    }
    let models = String::from_utf8(ok(&["models", "list"])).unwrap();
    assert!(models.contains("tiny-clap"), "{models}");
}

/// A configured CLAP that cannot load (here: its text graph's checksum is wrong) is an
/// error in the log; the server keeps serving with the default models and no `clap`
/// space.
#[test]
fn a_damaged_clap_folder_is_logged_and_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad-clap");
    std::fs::create_dir_all(&bad).unwrap();
    for f in std::fs::read_dir(FIXTURE).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), bad.join(f.file_name())).unwrap();
    }
    let cfg = bad.join("onnx-encoder.json");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let mut v: Value = serde_json::from_str(&text).unwrap();
    v["text"]["sha256"] = "00".repeat(32).into();
    std::fs::write(&cfg, v.to_string()).unwrap();
    let server = Server::start(&dir.path().join("data"), &["--set", &format!("models.clap={}", bad.display())]);
    server.ok(&["collection", "create", "mixed", "--multimodal"]);
    let log = server.log_text();
    assert!(log.contains("CLAP model configured but not loaded") && log.contains("checksum"), "{log}");
    let d = String::from_utf8(server.ok(&["collection", "describe", "mixed", "--json"])).unwrap();
    assert!(!d.contains("\"clap\""), "{d}");
}
