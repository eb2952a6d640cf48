//! Video through the real binary: a clip made at test time with the ffmpeg CLI from two
//! real photographs (a hard cut between them) and espeak-ng speech is ingested as
//! keyframes (image bridge) plus transcript passages (speech bridge) under one source;
//! it is found by what is seen and by what is said, and by a query video; a soundtrack
//! without speech (a phone ringing) is a `sound` part found by what it sounds like; bad and
//! over-long videos are refused with a reason.

mod common;

use common::*;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e} (installed by .ci/setup.sh)"));
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// `a` for 3 s then `b` for 3 s, with `speech` as the audio track.
fn make_clip(a: &Path, b: &Path, speech: &Path, out: &Path, codecs: &[&str]) {
    run(Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-loop", "1", "-t", "3", "-i"])
        .arg(a)
        .args(["-loop", "1", "-t", "3", "-i"])
        .arg(b)
        .arg("-i")
        .arg(speech)
        .args([
            "-filter_complex",
            "[0:v]scale=320:240,setsar=1[x];[1:v]scale=320:240,setsar=1[y];[x][y]concat=n=2:v=1:a=0,format=yuv420p[v]",
            "-map",
            "[v]",
            "-map",
            "2:a",
            "-r",
            "10",
        ])
        .args(codecs)
        .args(["-metadata", "title=Holiday clip"])
        .arg(out));
}

#[test]
fn ingest_video_then_find_it_by_sight_and_by_sound() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--set", "ingest.keyframe_interval_secs=2"]);
    let ok = |args: &[&str]| server.ok(args);
    let p = photos();
    let media = dir.path().join("media");
    std::fs::create_dir_all(&media).unwrap();
    let speech = dir.path().join("speech.wav");
    run(Command::new("espeak-ng")
        .args(["-w"])
        .arg(&speech)
        .arg("The weather forecast says heavy rain along the coast tomorrow."));
    make_clip(
        &p.join("chelsea.png"),
        &p.join("rocket.jpg"),
        &speech,
        &media.join("clip.mp4"),
        &["-c:v", "libx264", "-c:a", "aac"],
    );
    make_clip(
        &p.join("coffee.png"),
        &p.join("horse.png"),
        &speech,
        &media.join("other.webm"),
        &["-c:v", "libvpx-vp9", "-c:a", "libopus"],
    );
    // A soundtrack without speech: a phone ringing over two photos.
    make_clip(
        &p.join("astronaut.png"),
        &p.join("camera.png"),
        Path::new("/usr/share/sounds/freedesktop/stereo/phone-incoming-call.oga"),
        &media.join("v3.mp4"),
        &["-c:v", "libx264", "-c:a", "aac"],
    );
    let mp4 = std::fs::read(media.join("clip.mp4")).unwrap();
    std::fs::write(media.join("cut.mp4"), &mp4[..mp4.len() / 4]).unwrap();

    ok(&["collection", "create", "videos", "--multimodal"]);
    let s: Value = serde_json::from_slice(&ok(&["ingest", "videos", media.to_str().unwrap(), "--json"])).unwrap();
    assert_eq!(s["ingested"], json!(3), "{s}");
    let failed = s["failed"].to_string();
    assert!(failed.contains("cut.mp4") && failed.contains("corrupt or truncated video"), "{failed}");

    // Heard: the soundtrack without speech is a `sound` part with YAMNet's labels; the
    // narrated clips have none (their audio is speech).
    let heard = json_lines(&ok(&["search", "videos", "--text", "a phone ringing", "--json", "--explain"]));
    assert!(heard[0]["source"].as_str().unwrap().ends_with("v3.mp4"), "{heard:#?}");
    assert_eq!(heard[0]["modality"], json!("sound"), "{heard:#?}");
    assert!(heard[0]["part"].as_str().unwrap().contains("sounds like: "), "{}", heard[0]["part"]);
    assert!(heard[0]["payload"]["labels"].to_string().contains("Telephone"), "{}", heard[0]["payload"]);
    let sounds =
        json_lines(&ok(&["search", "videos", "--keyword", "telephone", "--filter", "modality = \"sound\"", "--json"]));
    assert_eq!(sounds.len(), 1, "{sounds:#?}");

    // Seen: the cat is in the first half of clip.mp4, the rocket after the cut.
    let hits = json_lines(&ok(&["search", "videos", "--text", "a cat", "--json", "--explain"]));
    assert!(hits[0]["source"].as_str().unwrap().ends_with("clip.mp4"), "{hits:#?}");
    let cat =
        json_lines(&ok(&["search", "videos", "--text", "a cat", "--filter", "modality = \"keyframe\"", "--json"]));
    assert!(cat[0]["part"].as_str().unwrap().starts_with("keyframe at "), "{cat:#?}");
    assert!(cat[0]["payload"]["t_s"].as_f64().unwrap() < 3.0, "{cat:#?}");
    let rocket =
        json_lines(&ok(&["search", "videos", "--text", "a rocket", "--filter", "modality = \"keyframe\"", "--json"]));
    assert!(rocket[0]["source"].as_str().unwrap().ends_with("clip.mp4"), "{rocket:#?}");
    assert!(rocket[0]["payload"]["t_s"].as_f64().unwrap() >= 2.9, "the rocket appears after the cut: {rocket:#?}");
    assert_eq!(rocket[0]["payload"]["title"], json!("Holiday clip"));
    // Said: both videos carry the same speech, found through their transcripts.
    let said = json_lines(&ok(&["search", "videos", "--text", "will it rain tomorrow", "--json", "--explain"]));
    let lists: Vec<String> =
        said[0]["explain"].as_array().unwrap().iter().map(|e| e["list"].as_str().unwrap().to_string()).collect();
    assert!(lists.contains(&"text/speech".to_string()), "{said:#?}");
    // Query by video: the WebM's coffee and horse frames find it rather than the cat clip.
    let q = dir.path().join("query.mp4");
    make_clip(&p.join("coffee.png"), &p.join("horse.png"), &speech, &q, &["-c:v", "libx264", "-c:a", "aac"]);
    let hits = json_lines(&ok(&[
        "search",
        "videos",
        "--video",
        q.to_str().unwrap(),
        "--filter",
        "modality = \"keyframe\"",
        "--json",
    ]));
    assert!(hits[0]["source"].as_str().unwrap().ends_with("other.webm"), "{hits:#?}");
}

#[test]
fn over_long_videos_are_refused_from_the_header() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--set", "limits.max_video_seconds=2"]);
    let p = photos();
    let media = dir.path().join("media");
    std::fs::create_dir_all(&media).unwrap();
    let speech = dir.path().join("speech.wav");
    run(Command::new("espeak-ng").args(["-w"]).arg(&speech).arg("Hello there."));
    make_clip(
        &p.join("chelsea.png"),
        &p.join("rocket.jpg"),
        &speech,
        &media.join("long.mp4"),
        &["-c:v", "libx264", "-c:a", "aac"],
    );
    assert!(server.cli(&["collection", "create", "v", "--multimodal"]).status.success());
    let out = server.cli(&["ingest", "v", media.to_str().unwrap(), "--json"]);
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    let failed = s["failed"].to_string();
    assert!(failed.contains("long.mp4") && failed.contains("max_video_seconds"), "{failed}");
}
