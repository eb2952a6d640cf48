//! A user-supplied CLIP model through the real binary: `models.clip` names a model
//! folder (here a tiny CLIP with random weights and the real CLIP BPE vocabulary, since
//! no CLIP weights ship in a registry); `--multimodal` collections then get a `clip`
//! space beside the default text space, every item is embedded into both, and a query
//! is searched in both and fused.

mod common;

#[path = "../../models/tests/support/tiny_clip.rs"]
mod tiny_clip;

use common::*;
use serde_json::Value;

#[test]
fn a_clip_model_from_a_folder_adds_a_space_that_every_item_and_query_uses() {
    let dir = tempfile::tempdir().unwrap();
    let clip_dir = dir.path().join("tiny-clip");
    let info = tiny_clip::write_model(&clip_dir, &tiny_clip::tensors(), true);
    let clip_arg = format!("models.clip={}", clip_dir.display());
    let server = Server::start(&dir.path().join("data"), &["--set", &clip_arg]);
    let ok = |args: &[&str]| server.ok(args);
    ok(&["collection", "create", "mixed", "--multimodal"]);
    // Loaded by the first request that needed the models (the create above).
    assert!(server.log_text().contains("CLIP ready"), "{}", server.log_text());
    let d: Value = serde_json::from_slice(&ok(&["collection", "describe", "mixed", "--json"])).unwrap();
    let spaces = d["spaces"].to_string();
    assert!(spaces.contains("\"clip\"") && spaces.contains(&info.encoder_id()), "{d:#}");

    let media = dir.path().join("media");
    std::fs::create_dir_all(&media).unwrap();
    std::fs::copy(photos().join("chelsea.png"), media.join("cat.png")).unwrap();
    std::fs::write(media.join("note.txt"), "A short note about cats and coffee.").unwrap();
    let s: Value = serde_json::from_slice(&ok(&["ingest", "mixed", media.to_str().unwrap(), "--json"])).unwrap();
    assert_eq!(s["ingested"], serde_json::json!(2), "{s}");

    // The query is searched in both spaces: each hit explains its rank in lists of both.
    let hits = json_lines(&ok(&["search", "mixed", "--text", "a cat", "--json", "--explain"]));
    assert_eq!(hits.len(), 2);
    for h in &hits {
        let lists: Vec<&str> = h["explain"].as_array().unwrap().iter().map(|e| e["list"].as_str().unwrap()).collect();
        assert!(lists.iter().any(|l| l.starts_with("clip/")) && lists.iter().any(|l| l.starts_with("text/")), "{h:#}");
        assert!(h["payload"]["encoder"].as_str().unwrap().contains(&info.encoder_id()), "{h:#}");
    }
    // One space only, by name; and query by image through CLIP's image tower.
    let q = photos().join("coffee.png");
    let hits =
        json_lines(&ok(&["search", "mixed", "--space", "clip", "--image", q.to_str().unwrap(), "--json", "--explain"]));
    assert!(!hits.is_empty());
    assert!(hits.iter().all(|h| h["explain"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["list"].as_str().unwrap().starts_with("clip/"))));
}
