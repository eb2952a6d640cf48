//! Images through the real binary: ingest real photographs (scikit-image's samples,
//! installed by `.ci/models.sh --testdata`) with the EfficientNet-Lite0 label bridge,
//! find them by text and by example, and refuse bad images with a reason.

mod common;

use agentdb_proto::v1;
use common::*;
use serde_json::{json, Value};
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_photos_then_search_by_text_and_by_example() {
    let dir = tempfile::tempdir().unwrap();
    // hubble_deep_field.jpg is 1000x872 = 872,000 pixels: above this limit, refused from its header.
    let server = Server::start(&dir.path().join("data"), &["--set", "limits.max_image_pixels=400000"]);
    let ok = |args: &[&str]| server.ok(args);
    let media = dir.path().join("media");
    std::fs::create_dir_all(&media).unwrap();
    let p = photos();
    for f in ["chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png", "horse.png", "hubble_deep_field.jpg"] {
        std::fs::copy(p.join(f), media.join(f)).unwrap();
    }
    // Mislabelled: a PNG under a .txt name is still an image (type from content).
    std::fs::copy(p.join("coins.png"), media.join("coins-notes.txt")).unwrap();
    // Real formats besides PNG and JPEG: an animated GIF (first frame) and a grey TIFF; and
    // a TIFF variant the decoder does not support (64-bit float samples).
    std::fs::copy(p.join("no_time_for_that_tiny.gif"), media.join("anim.gif")).unwrap();
    std::fs::copy(p.join("multipage.tif"), media.join("grey.tif")).unwrap();
    std::fs::copy(p.join("multipage_rgb.tif"), media.join("float.tif")).unwrap();
    // Truncated and corrupted files.
    let jpg = std::fs::read(p.join("rocket.jpg")).unwrap();
    std::fs::write(media.join("cut.jpg"), &jpg[..600]).unwrap();
    let mut png = std::fs::read(p.join("chelsea.png")).unwrap();
    png.truncate(png.len() / 3);
    std::fs::write(media.join("cut.png"), &png).unwrap();
    std::fs::write(media.join("caption.txt"), "A note about espresso machines and coffee beans.").unwrap();

    ok(&["collection", "create", "album", "--multimodal"]);
    let s: Value = serde_json::from_slice(&ok(&["ingest", "album", media.to_str().unwrap(), "--json"])).unwrap();
    let failed = s["failed"].to_string();
    assert_eq!(s["ingested"], json!(9), "{s}");
    assert_eq!(s["failed"].as_array().unwrap().len(), 4, "{s}");
    assert!(failed.contains("float.tif") && failed.contains("does not support"), "{failed}");
    assert!(failed.contains("cut.jpg") && failed.contains("corrupt or truncated Jpeg"), "{failed}");
    assert!(failed.contains("cut.png") && failed.contains("corrupt or truncated Png"), "{failed}");
    assert!(failed.contains("hubble_deep_field.jpg") && failed.contains("1000x872 = 872000 pixels"), "{failed}");

    // Text finds the photo it describes; the hit says what it is and why.
    for (query, want) in
        [("a cat", "chelsea.png"), ("a rocket launch", "rocket.jpg"), ("a motorbike", "motorcycle_left.png")]
    {
        let hits = json_lines(&ok(&[
            "search",
            "album",
            "--text",
            query,
            "--filter",
            "modality = \"image\"",
            "--top-k",
            "3",
            "--json",
            "--explain",
            "--mode",
            "dense", // the label bridge on its own (hybrid is tested in e2e_hybrid)
        ]));
        assert!(hits[0]["source"].as_str().unwrap().ends_with(want), "{query}: {hits:#?}");
        assert_eq!(hits[0]["modality"], json!("image"));
        assert!(hits[0]["part"].as_str().unwrap().starts_with("image "), "{}", hits[0]["part"]);
        assert_eq!(hits[0]["explain"][0]["list"], json!("text/image"));
        assert_eq!(hits[0]["explain"][0]["rank"], json!(1));
    }
    // Without a filter, text and images rank in separate lists and are fused by source.
    let hits =
        json_lines(&ok(&["search", "album", "--text", "a cup of coffee", "--top-k", "4", "--json", "--explain"]));
    let top2: Vec<&str> = hits[..2].iter().map(|h| h["source"].as_str().unwrap()).collect();
    assert!(
        top2.iter().any(|s| s.ends_with("coffee.png")) && top2.iter().any(|s| s.ends_with("caption.txt")),
        "{hits:#?}"
    );
    let modalities: Vec<&str> = hits.iter().map(|h| h["modality"].as_str().unwrap()).collect();
    assert!(modalities.contains(&"text") && modalities.contains(&"image"));

    // Query by example: the other motorcycle photo finds this one.
    let q = p.join("motorcycle_right.png");
    let hits = json_lines(&ok(&[
        "search",
        "album",
        "--image",
        q.to_str().unwrap(),
        "--filter",
        "modality = \"image\"",
        "--json",
    ]));
    assert!(hits[0]["source"].as_str().unwrap().ends_with("motorcycle_left.png"), "{hits:#?}");
    // Weighted fusion is available too.
    let hits = json_lines(&ok(&[
        "search",
        "album",
        "--text",
        "a cat",
        "--fusion",
        "weighted",
        "--weight",
        "text/image=2",
        "--json",
    ]));
    assert!(hits[0]["source"].as_str().unwrap().ends_with("chelsea.png"), "{hits:#?}");

    let (_, mut items) = server.clients().await;
    let search = |r: v1::SearchRequest| {
        let mut items = items.clone();
        async move { items.search(r).await }
    };
    // A broken query image: InvalidArgument naming the problem.
    let err =
        search(v1::SearchRequest { collection: "album".into(), image: jpg[..500].to_vec(), ..Default::default() })
            .await
            .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("query image: corrupt or truncated Jpeg"), "{}", err.message());
    let err = search(v1::SearchRequest { collection: "album".into(), image: b"hello".to_vec(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
    // Two queries at once, or a weight for a list that does not exist.
    let err = search(v1::SearchRequest {
        collection: "album".into(),
        text: "cat".into(),
        image: jpg.clone(),
        ..Default::default()
    })
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("exactly one of"), "{}", err.message());
    let err = search(v1::SearchRequest {
        collection: "album".into(),
        text: "cat".into(),
        weights: [("pictures/image".to_string(), 2.0)].into(),
        ..Default::default()
    })
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("unknown list 'pictures/image'"), "{}", err.message());
    // The ingested item records its labels and encoder.
    let got = items
        .search(v1::SearchRequest {
            collection: "album".into(),
            text: "a cat".into(),
            with_payload: true,
            top_k: 1,
            filter: "modality = \"image\"".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let payload: Value = serde_json::from_str(&got.hits[0].payload_json).unwrap();
    assert_eq!(payload["width"], json!(451));
    assert!(payload["labels"].as_array().unwrap().iter().any(|l| l.as_str().unwrap().ends_with("cat")));
    assert!(payload["encoder"].as_str().unwrap().starts_with("efficientnet-lite0@"));
}

/// A user's ONNX image encoder (`models.onnx_image`; here the tiny graph the models
/// crate's ONNX tests use) serves a space bound to it by name: photos are embedded into it
/// and found by example; text cannot go there, and the errors say why.
#[test]
fn a_user_onnx_image_encoder_serves_a_space_bound_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/tests/fixtures/onnx/image-nchw");
    let server = Server::start(
        &dir.path().join("data"),
        &["--set", &format!("models.onnx_image={fixture}"), "--set", "ingest.ocr=false"],
    );
    let ok = |args: &[&str]| server.ok(args);
    ok(&["collection", "create", "pics", "--space", "images:tiny-onnx-image", "--no-keyword"]);
    let info = String::from_utf8(ok(&["collection", "describe", "pics", "--json"])).unwrap();
    assert!(info.contains("tiny-onnx-image@0.0.1") && info.contains("\"dim\":8"), "{info}");
    let out = server.cli(&["collection", "create", "bad", "--space", "v:no-such-model"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("no loaded encoder is called 'no-such-model'"), "{err}");

    let media = dir.path().join("media");
    std::fs::create_dir_all(&media).unwrap();
    let p = photos();
    for f in ["chelsea.png", "coffee.png", "rocket.jpg", "horse.png"] {
        std::fs::copy(p.join(f), media.join(f)).unwrap();
    }
    std::fs::write(media.join("note.txt"), "A note about espresso machines.").unwrap();
    let s: serde_json::Value =
        serde_json::from_slice(&ok(&["ingest", "pics", media.to_str().unwrap(), "--json"])).unwrap();
    assert_eq!(s["ingested"], serde_json::json!(4), "{s}");
    let failed = s["failed"].to_string();
    assert!(failed.contains("note.txt") && failed.contains("no loaded text encoder"), "{failed}");
    // Each photo finds itself first.
    for f in ["coffee.png", "horse.png"] {
        let hits =
            json_lines(&ok(&["search", "pics", "--image", media.join(f).to_str().unwrap(), "--json", "--top-k", "4"]));
        assert!(hits[0]["source"].as_str().unwrap().ends_with(f), "{f}: {hits:#?}");
        assert!(hits[0]["score"].as_f64().unwrap() > 0.0);
    }
    let out = server.cli(&["search", "pics", "--text", "a cat"]);
    assert!(!out.status.success(), "a text query has no space here");
    let models = String::from_utf8(ok(&["models", "list"])).unwrap();
    assert!(models.contains("tiny-onnx-image"), "{models}");
}
