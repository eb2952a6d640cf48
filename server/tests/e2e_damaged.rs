//! A damaged collection does not take the server down (issue 16): one flipped byte in one
//! segment used to stop the whole server from starting; now the server serves every
//! healthy collection, names the damaged one and its file, and lets it be dropped.

mod common;

use common::*;
use serde_json::json;

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

#[test]
fn a_flipped_byte_in_one_segment_leaves_the_other_collections_served() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start(&data, &[]);
    let items = dir.path().join("items.jsonl");
    let lines: Vec<String> = (0..50)
        .map(|i| json!({"id": format!("i{i}"), "vector": rand_vec(i, 4), "payload": {"n": i}}).to_string())
        .collect();
    std::fs::write(&items, lines.join("\n")).unwrap();
    for c in ["good", "bad"] {
        server.ok(&["collection", "create", c, "--space", "v:4:l2:Flat"]);
        server.ok(&["upsert", c, items.to_str().unwrap()]);
        server.ok(&["collection", "flush", c]);
    }
    assert_eq!(server.terminate().code(), Some(0));

    // Flip one byte in the middle of one of bad's segment files.
    let seg =
        files_under(&data.join("collections/bad/segments")).into_iter().max_by_key(|p| p.metadata().unwrap().len());
    let seg = seg.expect("a segment file");
    let mut bytes = std::fs::read(&seg).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&seg, &bytes).unwrap();

    let server = Server::start(&data, &[]);
    assert!(server.log_text().contains("collection 'bad' is damaged and not served"), "{}", server.log_text());
    let out = String::from_utf8(server.ok(&["search", "good", "--vector", "[0.1, 0.2, 0.3, 0.4]", "--json"])).unwrap();
    assert_eq!(json_lines(out.as_bytes()).len(), 10, "the healthy collection is served: {out}");
    let o = server.cli(&["collection", "describe", "bad"]);
    let err = stderr(&o);
    assert!(!o.status.success() && err.contains("damaged and not served"), "{err}");
    let file = seg.file_name().unwrap().to_string_lossy().to_string();
    assert!(err.contains(&file), "the reason names the file {file}: {err}");
    let status = String::from_utf8(server.ok(&["status"])).unwrap();
    assert!(status.contains("bad") && status.contains("DAMAGED") && status.contains(&file), "{status}");
    // Not listed as a healthy collection; the name cannot be reused until it is dropped.
    let list = String::from_utf8(server.ok(&["collection", "list"])).unwrap();
    assert!(list.contains("good") && !list.contains("bad"), "{list}");
    let o = server.cli(&["collection", "create", "bad", "--dim", "4"]);
    assert!(!o.status.success() && stderr(&o).contains("damaged"), "{}", stderr(&o));
    server.ok(&["collection", "drop", "bad"]);
    server.ok(&["collection", "create", "bad", "--dim", "4"]);
    let status = String::from_utf8(server.ok(&["status"])).unwrap();
    assert!(!status.contains("DAMAGED"), "{status}");
}
