//! The audit log's signed checkpoints through the real binary: a server writes them to
//! a sink outside its data directory (every 5 records and at shutdown), `agentdb audit
//! verify --checkpoints` accepts the untouched log, and names a truncation and a rewrite
//! with a recomputed chain, both of which the hash chain alone does not show.

mod common;

use common::*;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

const KEY_HEX: &str = "6f1c0d9e8b7a69584736251403f2e1d0c9b8a79685746352413021f0e1d2c3b4";

/// Recompute the chain after editing one record's `detail`, as someone who can write
/// the file could (the record hash: SHA-256 of the JSON array
/// `[seq, time_unix_ms, principal, action, target, decision, detail, prev]`).
fn rewrite(log: &str, line: usize, detail: &str) -> String {
    let mut prev = "0".repeat(64);
    let mut out = String::new();
    for (i, l) in log.lines().enumerate() {
        let mut r: serde_json::Value = serde_json::from_str(l).unwrap();
        if i + 1 == line {
            r["detail"] = detail.into();
        }
        r["prev"] = prev.clone().into();
        let body = serde_json::json!([
            r["seq"],
            r["time_unix_ms"],
            r["principal"],
            r["action"],
            r["target"],
            r["decision"],
            r["detail"],
            r["prev"]
        ]);
        let hash: String = Sha256::digest(body.to_string().as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
        r["hash"] = hash.clone().into();
        prev = hash;
        out.push_str(&r.to_string());
        out.push('\n');
    }
    out
}

fn seqs(sink: &Path) -> Vec<u64> {
    std::fs::read_to_string(sink)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"].as_u64().unwrap())
        .collect()
}

#[test]
fn checkpoints_show_truncation_and_rewrite() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // The sink and the key live outside the data directory (in production: another
    // volume, an append-only mount, or shipped off the host).
    let outside = dir.path().join("worm");
    std::fs::create_dir_all(&outside).unwrap();
    let sink: PathBuf = outside.join("audit-checkpoints.jsonl");
    let key_file = dir.path().join("checkpoint.key");
    std::fs::write(&key_file, format!("{KEY_HEX}\n")).unwrap();
    std::fs::set_permissions(&key_file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let extra: Vec<String> = [
        "security.auth=api_key".to_string(),
        format!("security.audit_checkpoint_file={}", sink.display()),
        format!("security.audit_checkpoint_key_file={}", key_file.display()),
        "security.audit_checkpoint_every_records=5".into(),
        "security.audit_checkpoint_every_secs=3600".into(),
    ]
    .into_iter()
    .flat_map(|s| ["--set".to_string(), s])
    .collect();
    let extra_ref: Vec<&str> = extra.iter().map(String::as_str).collect();

    // Both files or neither: a clear error.
    let err = serve_refused(&dir.path().join("half"), &extra[..4], &[]);
    assert!(err.contains("security.audit_checkpoint_key_file is empty"), "{err}");

    let mut server = Server::start(&data, &extra_ref);
    let admin = std::fs::read_to_string(data.join("security/bootstrap-admin.key")).unwrap().trim().to_string();
    let cli = |url: &str, args: &[&str], key: Option<&str>| {
        let mut c = std::process::Command::new(BIN);
        c.args(args).env("AGENTDB_URL", url).env_remove("AGENTDB_API_KEY");
        if let Some(k) = key {
            c.env("AGENTDB_API_KEY", k);
        }
        c.output().unwrap()
    };
    // Audited: key creations (admin actions) and requests without credentials (failures).
    for i in 0..6 {
        let out = cli(&server.url(), &["keys", "create", &format!("k{i}"), "--role", "reader"], Some(&admin));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    for _ in 0..3 {
        assert!(!cli(&server.url(), &["collection", "list"], None).status.success());
    }
    let log_path = data.join("security/audit.log");
    let running = seqs(&sink);
    assert!(!running.is_empty() && running.iter().all(|s| s.is_multiple_of(5)), "every 5 records: {running:?}");
    assert_eq!(server.terminate().code(), Some(0));

    let log = std::fs::read_to_string(&log_path).unwrap();
    let n = log.lines().count() as u64;
    assert!(n >= 9 && log.contains("\"decision\":\"fail\"") && log.contains("CreateKey"), "{log}");
    let at_exit = seqs(&sink);
    assert_eq!(at_exit.last(), Some(&n), "a checkpoint of the final head at shutdown: {at_exit:?}, {n} records");
    assert_eq!(at_exit.len() as u64, n / 5 + u64::from(!n.is_multiple_of(5)), "{at_exit:?}");

    let verify = |checked: bool| {
        let mut c = std::process::Command::new(BIN);
        c.args(["audit", "verify"]).arg(&data);
        if checked {
            c.arg("--checkpoints").arg(&sink).arg("--checkpoint-key-file").arg(&key_file);
        }
        let out = c.output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr))
    };
    let (ok, text) = verify(true);
    assert!(ok && text.contains(&format!("audit log intact: {n} records")), "{text}");
    assert!(text.contains(&format!("checkpoints verified: {}", at_exit.len())), "{text}");
    assert!(text.contains(&format!("covers {n} of {n} records")), "{text}");
    // The checkpoint flags go together.
    let out = std::process::Command::new(BIN)
        .args(["audit", "verify"])
        .arg(&data)
        .arg("--checkpoints")
        .arg(&sink)
        .output()
        .unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("--checkpoint-key-file"));

    // Limit 1: the last record cut off. The chain alone still verifies; the checkpoint
    // names the truncation, and the server refuses to extend the log.
    let lines: Vec<&str> = log.lines().collect();
    std::fs::write(&log_path, lines[..lines.len() - 1].join("\n") + "\n").unwrap();
    assert!(verify(false).0, "the chain alone does not show a truncation");
    let (ok, text) = verify(true);
    assert!(!ok && text.contains("NOT intact") && text.contains("truncated: checkpoint line"), "{text}");
    assert!(text.contains(&format!("covers {n} records but the log has {}", n - 1)), "{text}");
    let err = serve_refused(&data, &extra, &[]);
    assert!(err.contains("audit log") && err.contains("truncated"), "{err}");

    // Limit 2: one record's detail rewritten and the whole chain recomputed. The chain
    // alone verifies; the signed checkpoint of record 5 does not match any more.
    std::fs::write(&log_path, rewrite(&log, 2, "nothing happened")).unwrap();
    assert!(verify(false).0, "a recomputed chain verifies on its own");
    let (ok, text) = verify(true);
    assert!(!ok && text.contains("rewritten: record 5's hash differs from the signed checkpoint of "), "{text}");
    let err = serve_refused(&data, &extra, &[]);
    assert!(err.contains("rewritten"), "{err}");

    // Restored, the log verifies and the server starts and goes on checkpointing.
    std::fs::write(&log_path, &log).unwrap();
    assert!(verify(true).0);
    let mut server = Server::start(&data, &extra_ref);
    let out = cli(&server.url(), &["collection", "list"], None);
    assert!(!out.status.success(), "unauthenticated: audited as a failure");
    assert_eq!(server.terminate().code(), Some(0));
    assert_eq!(seqs(&sink).last(), Some(&(n + 1)));
    let (ok, text) = verify(true);
    assert!(ok, "{text}");
}
