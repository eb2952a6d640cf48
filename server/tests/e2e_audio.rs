//! Speech through the real binary: recordings synthesised offline with espeak-ng are
//! ingested (Silero VAD + Whisper base from the set-up's model packages, transcripts
//! embedded into the text space), found by text and by a spoken query; sounds without
//! speech are stored as `sound` items with their properties; bad audio is refused with
//! a reason.

mod common;

use agentdb_models::audio::{decode_audio, encode_wav16, resample};
use agentdb_proto::v1;
use common::*;
use serde_json::{json, Value};
use std::path::Path;
use tonic::Code;

fn espeak(text: &str, voice: &str, out: &Path) {
    let st = std::process::Command::new("espeak-ng")
        .args(["-v", voice, "-s", "150", "-w"])
        .arg(out)
        .arg(text)
        .status()
        .expect("espeak-ng is installed by .ci/setup.sh");
    assert!(st.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_speech_then_search_by_text_and_by_voice() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--set", "limits.max_audio_seconds=20"]);
    let ok = |args: &[&str]| server.ok(args);
    let media = dir.path().join("media");
    std::fs::create_dir_all(&media).unwrap();
    espeak("The train to the airport leaves from platform four every twenty minutes.", "en-us", &media.join("a.wav"));
    espeak("Preheat the oven and roast the chicken for one hour.", "en-us", &media.join("b.wav"));
    std::fs::write(media.join("notes.txt"), "Bicycle chains need oil every few hundred kilometres.").unwrap();
    // A 440 Hz tone: audio with no speech in it.
    let tone: Vec<f32> = (0..48000).map(|i| 0.3 * (i as f32 * 440.0 * std::f32::consts::TAU / 16000.0).sin()).collect();
    std::fs::write(media.join("beep.wav"), encode_wav16(&tone, 16000)).unwrap();
    // Longer than limits.max_audio_seconds (30 s of silence, 20 s allowed).
    std::fs::write(media.join("long.wav"), encode_wav16(&vec![0.0; 16000 * 30], 16000)).unwrap();
    // A WAV header promising data that is not there, and an MP3 tag followed by junk.
    std::fs::write(media.join("cut.wav"), &encode_wav16(&tone, 16000)[..44]).unwrap();
    let mut junk = b"ID3\x03\x00\x00\x00\x00\x00\x10".to_vec();
    junk.extend((0..4000u32).map(|i| (i * 7919 % 251) as u8));
    std::fs::write(media.join("junk.mp3"), junk).unwrap();

    // A real sound without speech (a bell, Ogg Vorbis, 44.1 kHz stereo), from the
    // sound-theme-freedesktop package the set-up installs.
    let bell = Path::new("/usr/share/sounds/freedesktop/stereo/bell.oga");
    assert!(bell.exists(), "{} is missing: run .ci/setup.sh (sound-theme-freedesktop)", bell.display());
    std::fs::copy(bell, media.join("ding.oga")).unwrap();
    // And a phone ringing under a name that says nothing: found by what it sounds like.
    std::fs::copy(bell.with_file_name("phone-incoming-call.oga"), media.join("s1.oga")).unwrap();

    ok(&["collection", "create", "calls", "--multimodal"]);
    let s: Value = serde_json::from_slice(&ok(&["ingest", "calls", media.to_str().unwrap(), "--json"])).unwrap();
    let failed = s["failed"].to_string();
    // Every decodable file is stored, sounds without speech included; only what cannot
    // be decoded or breaks a limit fails.
    assert_eq!(s["ingested"], json!(6), "{s}");
    assert_eq!(s["failed"].as_array().unwrap().len(), 3, "{s}");
    assert!(!failed.contains("beep.wav") && !failed.contains("ding.oga"), "{failed}");
    assert!(failed.contains("long.wav") && failed.contains("max_audio_seconds"), "{failed}");
    assert!(failed.contains("cut.wav"), "{failed}");
    assert!(failed.contains("junk.mp3"), "{failed}");

    // The sound-event classifier is listed and was loaded for the sounds.
    let models = json_lines(&ok(&["models", "list", "--json"]));
    let yamnet = models.iter().find(|m| m["name"] == "yamnet").expect("YAMNet installed (make models)");
    assert_eq!((yamnet["loaded"].clone(), yamnet["dim"].clone()), (json!(true), json!(521)), "{yamnet}");

    // Ingesting the folder again is a no-op.
    let again: Value = serde_json::from_slice(&ok(&["ingest", "calls", media.to_str().unwrap(), "--json"])).unwrap();
    assert_eq!((again["ingested"].clone(), again["skipped"].clone()), (json!(0), json!(6)), "{again}");

    // A sound is one `sound` item that says what it is: length, rate, channels, codec.
    let hits = json_lines(&ok(&["search", "calls", "--keyword", "stereo vorbis", "--json"]));
    assert_eq!(hits.len(), 2, "{hits:#?}");
    let hits: Vec<&Value> = hits.iter().filter(|h| h["source"].as_str().unwrap().ends_with("ding.oga")).collect();
    assert_eq!(hits.len(), 1, "{hits:#?}");
    assert_eq!(hits[0]["modality"], json!("sound"));
    let p = &hits[0]["payload"];
    assert_eq!((p["sample_rate"].clone(), p["channels"].clone()), (json!(44100), json!(2)), "{p}");
    assert_eq!(p["audio_codec"], json!("vorbis"), "{p}");
    assert!((p["duration_s"].as_f64().unwrap() - 0.14).abs() < 0.05, "{p}");
    assert!(hits[0]["part"].as_str().unwrap().starts_with("sound 0.1 s, no speech"), "{}", hits[0]["part"]);
    // ... and by what it sounds like: the sound-event classifier's (YAMNet's) labels,
    // searched by meaning (dense only) and by keyword.
    // Only the steady tone (beep.wav, which YAMNet hears as a dial tone, also a
    // telephone sound) may come before it.
    let hits = json_lines(&ok(&["search", "calls", "--text", "a phone ringing", "--mode", "dense", "--json"]));
    let at = hits.iter().position(|h| h["source"].as_str().unwrap().ends_with("s1.oga")).expect("phone found");
    assert!(hits[..at].iter().all(|h| h["payload"]["labels"].to_string().contains("Telephone")), "{hits:#?}");
    assert!(at <= 1, "{hits:#?}");
    let phone = &hits[at];
    assert_eq!(phone["modality"], json!("sound"));
    let labels = phone["payload"]["labels"].to_string();
    assert!(labels.contains("Telephone bell ringing"), "{labels}");
    assert!(phone["part"].as_str().unwrap().contains("sounds like: "), "{}", phone["part"]);
    assert!(phone["payload"]["encoder"].as_str().unwrap().starts_with("yamnet@"), "{}", phone["payload"]);
    let hits = json_lines(&ok(&["search", "calls", "--keyword", "ringtone", "--json"]));
    assert!(hits[0]["source"].as_str().unwrap().ends_with("s1.oga"), "{hits:#?}");
    // ... and by its file name, like any file.
    let hits = json_lines(&ok(&["search", "calls", "--keyword", "beep", "--json"]));
    assert!(hits[0]["source"].as_str().unwrap().ends_with("beep.wav"), "{hits:#?}");
    assert_eq!(hits[0]["payload"]["channels"], json!(1));

    // Found by what was said; the hit names the time range and the transcript.
    let hits = json_lines(&ok(&["search", "calls", "--text", "when does the airport train go", "--json", "--explain"]));
    assert!(hits[0]["source"].as_str().unwrap().ends_with("a.wav"), "{hits:#?}");
    assert_eq!(hits[0]["modality"], json!("speech"));
    assert!(hits[0]["part"].as_str().unwrap().starts_with("speech "), "{}", hits[0]["part"]);
    let p = &hits[0]["payload"];
    assert!(p["text"].as_str().unwrap().to_lowercase().contains("airport"), "{p}");
    assert!(p["start_s"].as_f64().unwrap() < p["end_s"].as_f64().unwrap());
    assert!(p["end_s"].as_f64().unwrap() <= p["duration_s"].as_f64().unwrap() + 0.05);
    // Ranked by the speech passages in the text space (and, hybrid, by the transcript's words).
    let lists: Vec<&str> = hits[0]["explain"].as_array().unwrap().iter().filter_map(|e| e["list"].as_str()).collect();
    assert!(lists.contains(&"text/speech") && lists.contains(&"keyword"), "{lists:?}");
    // Found by a spoken question in another voice.
    let q = dir.path().join("q.wav");
    espeak("How long should I roast a chicken?", "en-gb", &q);
    let hits = json_lines(&ok(&["search", "calls", "--audio", q.to_str().unwrap(), "--json"]));
    assert!(hits[0]["source"].as_str().unwrap().ends_with("b.wav"), "{hits:#?}");

    // A query recording without speech is searched by what it sounds like: the
    // ringtone, re-encoded as a 16 kHz WAV, finds the ringing phone.
    let ring = decode_audio(&std::fs::read(media.join("s1.oga")).unwrap(), Default::default()).unwrap();
    let q = dir.path().join("ring.wav");
    std::fs::write(&q, encode_wav16(&resample(&ring.samples, ring.rate, 16000), 16000)).unwrap();
    let hits = json_lines(&ok(&["search", "calls", "--audio", q.to_str().unwrap(), "--json"]));
    assert!(hits[0]["source"].as_str().unwrap().ends_with("s1.oga"), "{hits:#?}");

    // Silence is refused, saying why.
    let (_, mut items) = server.clients().await;
    let err = items
        .search(v1::SearchRequest {
            collection: "calls".into(),
            audio: encode_wav16(&vec![0.0; 16000], 16000),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("query audio: no speech found"), "{}", err.message());
    assert!(err.message().contains("only silence"), "{}", err.message());
    let err = items
        .search(v1::SearchRequest { collection: "calls".into(), audio: b"RIFF1234WAVE".to_vec(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
}
