//! Encryption at rest through the real binary: markers written through the API appear
//! nowhere in the data directory's bytes (segments and WAL alike), the data reads back
//! after a restart with the key (WAL replay and segment load), a missing or wrong key stops the start with a clear
//! message and changes nothing, and `agentdb keys rotate-encryption` re-wraps the key.

mod common;

use agentdb_proto::v1;
use common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const MARKER: &str = "ZQXJMARKER";

fn key_file(dir: &Path, name: &str, byte: u8) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("{}\n", format!("{byte:02x}").repeat(32))).unwrap();
    p
}

fn key_arg(f: &Path) -> String {
    format!("storage.encryption_key_file={}", f.display())
}

/// Every file under `dir` (path -> bytes).
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

fn rotate(data: &Path, old: Option<&Path>, new: &Path) -> std::process::Output {
    let mut cmd = Command::new(BIN);
    cmd.args(["keys", "rotate-encryption", "--data-dir"]).arg(data).arg("--new-key-file").arg(new);
    if let Some(o) = old {
        cmd.arg("--key-file").arg(o);
    }
    cmd.env_remove("AGENTDB_ENCRYPTION_KEY").output().unwrap()
}

async fn read_back(server: &Server, n: usize) {
    let (_, mut items) = server.clients().await;
    let ids: Vec<String> = (0..n).map(|i| format!("{MARKER}-id-{i}")).collect();
    let got = items
        .get(v1::GetRequest { collection: "vault".into(), ids: ids.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .items;
    assert_eq!(got.len(), n, "every item is back");
    for it in &got {
        let i: usize = it.id.rsplit('-').next().unwrap().parse().unwrap();
        let p: serde_json::Value = serde_json::from_str(&it.payload_json).unwrap();
        assert_eq!(p["note"], format!("{MARKER}-payload-{i}"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn data_is_encrypted_at_rest_and_keys_are_checked_and_rotated() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let keys = tempfile::tempdir().unwrap();
    let k1 = key_file(keys.path(), "k1.key", 0x11);
    let k2 = key_file(keys.path(), "k2.key", 0x22);
    let k3 = key_file(keys.path(), "k3.key", 0x33);
    let with = |k: &Path| vec!["--set".to_string(), key_arg(k)];

    let n = 40;
    {
        let a = with(&k1);
        let server = Server::start(&data, &a.iter().map(String::as_str).collect::<Vec<_>>());
        let (mut cols, mut items) = server.clients().await;
        cols.create(v1::CreateCollectionRequest {
            name: "vault".into(),
            spaces: vec![space("", 8, v1::Metric::Cosine, "Flat")],
            ..Default::default()
        })
        .await
        .unwrap();
        let put = |range: std::ops::Range<usize>| v1::UpsertRequest {
            collection: "vault".into(),
            items: range
                .map(|i| {
                    item(
                        &format!("{MARKER}-id-{i}"),
                        rand_vec(i as u64, 8),
                        serde_json::json!({"note": format!("{MARKER}-payload-{i}")}),
                    )
                })
                .collect(),
        };
        items.upsert(put(0..25)).await.unwrap();
        // The first rows go to a segment; the rest stay only in the WAL.
        server.ok(&["collection", "flush", "vault"]);
        items.upsert(put(25..n)).await.unwrap();
        read_back(&server, n).await;
        let mut server = server;
        assert!(server.terminate().success());
    }

    let before = files(&data);
    let names: Vec<String> = before.keys().map(|p| p.strip_prefix(&data).unwrap().display().to_string()).collect();
    assert!(names.iter().any(|n| n.ends_with("ids.bin")), "a segment exists: {names:?}");
    assert!(names.iter().any(|n| n.ends_with("payloads.bin")) && names.iter().any(|n| n.ends_with(".faiss")));
    assert!(names.iter().any(|n| n.contains("wal-")) && names.iter().any(|n| n == "KEYRING"), "{names:?}");
    for (p, bytes) in &before {
        for m in [MARKER.as_bytes(), b"note", b"payload"] {
            assert!(!bytes.windows(m.len()).any(|w| w == m), "{} holds {:?} in the clear", p.display(), m);
        }
    }
    let unchanged = |what: &str| {
        let now = files(&data);
        let strip = |m: &BTreeMap<PathBuf, Vec<u8>>| {
            m.iter().filter(|(p, _)| !p.ends_with("LOCK")).map(|(p, b)| (p.clone(), b.clone())).collect::<Vec<_>>()
        };
        assert!(strip(&before) == strip(&now), "{what} changed the data directory");
    };

    // No key, a wrong key (file or environment): refused, naming the cause; nothing changed.
    let err = serve_refused(&data, &[], &[]);
    assert!(
        err.contains("is encrypted (key id")
            && err.contains("but no encryption key was given")
            && err.contains("storage.encryption_key_file")
            && err.contains("AGENTDB_ENCRYPTION_KEY"),
        "{err}"
    );
    let err = serve_refused(&data, &with(&k2), &[]);
    assert!(err.contains("the encryption key does not match this data directory"), "{err}");
    let err = serve_refused(&data, &[], &[("AGENTDB_ENCRYPTION_KEY", &"22".repeat(32))]);
    assert!(err.contains("does not match"), "{err}");
    let err = serve_refused(&data, &[], &[("AGENTDB_ENCRYPTION_KEY", "not-hex")]);
    assert!(err.contains("64 hex characters"), "{err}");
    unchanged("a refused start");

    // Both the key file and the environment variable: ambiguous, refused.
    let err = serve_refused(&data, &with(&k1), &[("AGENTDB_ENCRYPTION_KEY", &"11".repeat(32))]);
    assert!(err.contains("give the encryption key one way"), "{err}");
    unchanged("a refused start");

    // Rotation: needs the current key, refuses while the server runs, then the old key
    // fails and the new one opens everything.
    let out = rotate(&data, Some(&k3), &k2);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not match"), "{out:?}");
    {
        let a = with(&k1);
        let server = Server::start(&data, &a.iter().map(String::as_str).collect::<Vec<_>>());
        let out = rotate(&data, Some(&k1), &k2);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("locked"), "{out:?}");
        read_back(&server, n).await;
        drop(server);
    }
    let out = rotate(&data, Some(&k1), &k2);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let err = serve_refused(&data, &with(&k1), &[]);
    assert!(err.contains("does not match"), "{err}");
    let a = with(&k2);
    let server = Server::start(&data, &a.iter().map(String::as_str).collect::<Vec<_>>());
    read_back(&server, n).await;
}

#[test]
fn a_key_for_an_existing_unencrypted_data_directory_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    {
        let server = Server::start(&data, &[]);
        server.ok(&["collection", "create", "plain", "--dim", "4"]);
    }
    let keys = tempfile::tempdir().unwrap();
    let k = key_file(keys.path(), "k.key", 0x44);
    let err = serve_refused(&data, &["--set".into(), key_arg(&k)], &[]);
    assert!(err.contains("already holds unencrypted collections"), "{err}");
    assert!(!data.join("KEYRING").exists());
}
