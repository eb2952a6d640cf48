//! The audit log: append-only JSON Lines, each record carrying the SHA-256 of the
//! previous one, so editing, removing or reordering any record breaks the chain at a
//! line `verify` names. (Cutting records off the end is visible only against an
//! external copy of the last hash, which `verify` prints.)

use super::Error;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub seq: u64,
    pub time_unix_ms: u64,
    /// `key:<id>`, `anonymous`, or `local` when authentication is off.
    pub principal: String,
    /// What was attempted: the gRPC method or an admin action.
    pub action: String,
    /// Collection or key the action touched ("" if none).
    pub target: String,
    /// `allow`, `deny` or `fail` (authentication failure).
    pub decision: String,
    pub detail: String,
    pub prev: String,
    pub hash: String,
}

fn hash_of(r: &AuditRecord) -> String {
    let mut h = Sha256::new();
    let body =
        serde_json::json!([r.seq, r.time_unix_ms, r.principal, r.action, r.target, r.decision, r.detail, r.prev]);
    h.update(body.to_string().as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

struct Tail {
    file: std::fs::File,
    seq: u64,
    last: String,
}

pub struct AuditLog {
    path: PathBuf,
    tail: Mutex<Tail>,
}

impl AuditLog {
    /// Open (creating) the log and check its chain first: a broken log is not extended.
    pub fn open(path: &Path) -> Result<AuditLog, Error> {
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d).map_err(|e| Error::Storage { path: d.into(), reason: e.to_string() })?;
        }
        let (seq, last) = if path.exists() { verify(path)? } else { (0, GENESIS.to_string()) };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::Storage { path: path.into(), reason: e.to_string() })?;
        Ok(AuditLog { path: path.to_path_buf(), tail: Mutex::new(Tail { file, seq, last }) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn append(
        &self,
        principal: &str,
        action: &str,
        target: &str,
        decision: &str,
        detail: &str,
    ) -> Result<(), Error> {
        let mut t = self.tail.lock();
        let mut r = AuditRecord {
            seq: t.seq + 1,
            time_unix_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            principal: principal.into(),
            action: action.into(),
            target: target.into(),
            decision: decision.into(),
            detail: detail.into(),
            prev: t.last.clone(),
            hash: String::new(),
        };
        r.hash = hash_of(&r);
        let mut line = serde_json::to_string(&r).expect("serialisable");
        line.push('\n');
        let err = |e: std::io::Error| Error::Storage { path: self.path.clone(), reason: e.to_string() };
        t.file.write_all(line.as_bytes()).map_err(err)?;
        t.file.sync_data().map_err(err)?;
        t.seq = r.seq;
        t.last = r.hash;
        Ok(())
    }
}

/// Check the whole chain; returns (records, hash of the last record).
pub fn verify(path: &Path) -> Result<(u64, String), Error> {
    let f = std::fs::File::open(path).map_err(|e| Error::Storage { path: path.into(), reason: e.to_string() })?;
    let mut prev = GENESIS.to_string();
    let mut seq = 0u64;
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let bad = |why: String| Error::Storage { path: path.into(), reason: format!("line {}: {why}", i + 1) };
        let line = line.map_err(|e| bad(e.to_string()))?;
        if line.trim().is_empty() {
            continue;
        }
        let r: AuditRecord = serde_json::from_str(&line).map_err(|e| bad(format!("not an audit record: {e}")))?;
        if r.seq != seq + 1 {
            return Err(bad(format!("sequence {} follows {seq}: a record was removed or reordered", r.seq)));
        }
        if r.prev != prev {
            return Err(bad("previous-hash link broken: a record before it was removed, reordered or edited".into()));
        }
        if hash_of(&r) != r.hash {
            return Err(bad("record hash mismatch: the record was edited".into()));
        }
        seq = r.seq;
        prev = r.hash;
    }
    Ok((seq, prev))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_with(n: usize) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("audit.log");
        let log = AuditLog::open(&p).unwrap();
        for i in 0..n {
            log.append("key:abc", "/agentdb.v1.Items/Upsert", "c", "allow", &format!("op {i}")).unwrap();
        }
        (dir, p)
    }

    #[test]
    fn detects_edit_removal_and_reordering() {
        let (_d, p) = log_with(5);
        assert_eq!(verify(&p).unwrap().0, 5);
        // Reopening continues the chain.
        AuditLog::open(&p).unwrap().append("local", "x", "", "allow", "").unwrap();
        assert_eq!(verify(&p).unwrap().0, 6);
        let orig = std::fs::read_to_string(&p).unwrap();
        let lines: Vec<&str> = orig.lines().collect();

        std::fs::write(&p, orig.replace("op 2", "op 9")).unwrap();
        assert!(verify(&p).unwrap_err().to_string().contains("line 3"), "edit");

        let mut removed = lines.clone();
        removed.remove(1);
        std::fs::write(&p, removed.join("\n") + "\n").unwrap();
        assert!(verify(&p).unwrap_err().to_string().contains("line 2"), "removal");

        let mut swapped = lines.clone();
        swapped.swap(2, 3);
        std::fs::write(&p, swapped.join("\n") + "\n").unwrap();
        assert!(verify(&p).is_err(), "reorder");
        assert!(AuditLog::open(&p).is_err(), "a broken log is not extended");
    }
}
