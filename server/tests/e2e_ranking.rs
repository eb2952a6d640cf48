//! Cross-modal ranking in a mixed folder, through the real binary (issue 18): the eval
//! set of `benches/eval` (photos, texts, recordings, cards, videos with and without
//! speech, non-speech sounds) is ingested and queried with `agentdb eval`; then 30
//! unrelated multi-part sources (narrated videos, long licence texts) join the same
//! collection and the same queries run again. A fair fusion keeps them out of the top
//! five. Issue 18 asks that success@5 drop by at most 0.05, and this test holds that
//! line: calibrated fusion with the cards' text as its own dense part measures 0.779 →
//! 0.737 (−0.042: tune half −0.063, held-out half −0.021; RRF fell by ~0.3;
//! docs/PERFORMANCE.md). No timing is measured.

mod common;

use common::*;
use serde_json::Value;
use std::path::Path;

/// `agentdb eval DATASET --collection mixed --keep --json`: the "all" row's recall@5, and
/// each half's.
fn eval(server: &Server, dataset: &Path) -> (f64, f64, f64, Value) {
    let out = server.ok(&["eval", dataset.to_str().unwrap(), "--collection", "mixed", "--keep", "--json"]);
    let v: Value = serde_json::from_slice(&out).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out)));
    let kinds = &v["runs"][0]["kinds"];
    let r5 = |k: &str| kinds[k]["recall@5"].as_f64().unwrap_or_else(|| panic!("no '{k}' row: {v}"));
    (r5("all"), r5("all · tune"), r5("all · test"), v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distractors_do_not_push_relevant_sources_out_of_the_top_five() {
    let dir = tempfile::tempdir().unwrap();
    let dataset = dir.path().join("dataset");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../benches/eval/make_dataset.py");
    let st = std::process::Command::new("python3")
        .arg(&script)
        .arg(&dataset)
        .arg("--distractors")
        .env("AGENTDB_TESTDATA", agentdb_models::registry::testdata_dir())
        .status()
        .expect("python3");
    assert!(st.success(), "make_dataset.py failed");
    // First without the distractors (kept aside), then with them in the same collection.
    let other = dataset.join("media/other");
    let aside = dir.path().join("other");
    std::fs::rename(&other, &aside).unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let (before, before_tune, before_test, _) = eval(&server, &dataset);
    std::fs::rename(&aside, &other).unwrap();
    let (after, after_tune, after_test, v) = eval(&server, &dataset);
    println!("success@5 without distractors {before:.3} (tune {before_tune:.3}, test {before_test:.3})");
    println!("success@5 with 30 distractors {after:.3} (tune {after_tune:.3}, test {after_test:.3})");
    // The set is findable at all (a floor well under what docs/PERFORMANCE.md reports,
    // so the test fails on a broken ranking, not on noise).
    assert!(before >= 0.70, "success@5 {before:.3} without distractors: {v}");
    assert!(after >= before - 0.05, "success@5 fell from {before:.3} to {after:.3} with the distractors: {v}");
}
