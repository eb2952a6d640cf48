//! Signed checkpoints of the audit chain's head, written to a sink apart from the log.
//!
//! The hash chain shows edits, removals and reorderings inside the log, but not that the
//! last records were cut off (the shorter chain is still valid), nor that someone who can
//! write the file rewrote it and recomputed every hash. A checkpoint — the number of
//! records so far, the hash of the last one, the time and the key's id, signed with
//! HMAC-SHA256 under a key the log's writer does not need to share with the data
//! directory — pins the chain: a later log must still hold at least that many records,
//! and its record `seq` must still have that hash.
//!
//! The sink is one JSON object per line, appended and fsynced. It protects only as much
//! as it is out of reach of whoever can rewrite the log: put it on another volume (an
//! append-only or WORM mount, `chattr +a`) or ship it off the host with a log shipper,
//! and keep the key file readable only by the server (and the auditor).

use super::Error;
use super::{verify_each, AuditRecord, GENESIS};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

type HmacSha256 = Hmac<Sha256>;

/// Checkpoint every this many records by default ...
pub const DEFAULT_EVERY_RECORDS: u64 = 1000;
/// ... or this many seconds after the first record no checkpoint covers.
pub const DEFAULT_EVERY_SECS: u64 = 60;

/// What is signed, first: a version tag, so a MAC over anything else never verifies.
const DOMAIN: &str = "agentdb-audit-checkpoint/1";

/// The HMAC key (32 bytes or more). Its id, the first 16 hex digits of a SHA-256 of the
/// key, names it in each checkpoint without revealing it.
#[derive(Clone)]
pub struct CheckpointKey {
    key: Vec<u8>,
    id: String,
}

impl std::fmt::Debug for CheckpointKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CheckpointKey({})", self.id)
    }
}

impl CheckpointKey {
    pub const MIN_BYTES: usize = 32;

    pub fn from_bytes(key: &[u8]) -> Result<CheckpointKey, Error> {
        if key.len() < Self::MIN_BYTES {
            return Err(Error::Invalid(format!(
                "an audit checkpoint key needs at least {} bytes ({} hex digits), got {}",
                Self::MIN_BYTES,
                Self::MIN_BYTES * 2,
                key.len()
            )));
        }
        let mut h = Sha256::new();
        h.update(b"agentdb audit checkpoint key id\0");
        h.update(key);
        let id = hex(&h.finalize()[..8]);
        Ok(CheckpointKey { key: key.to_vec(), id })
    }

    /// The key as hex digits (surrounding whitespace ignored), e.g. `openssl rand -hex 32`.
    pub fn from_hex(text: &str) -> Result<CheckpointKey, Error> {
        let bytes = unhex(text.trim()).ok_or_else(|| {
            Error::Invalid("an audit checkpoint key must be hex digits (e.g. openssl rand -hex 32)".into())
        })?;
        Self::from_bytes(&bytes)
    }

    /// Read the key file (hex) once.
    pub fn load(path: &Path) -> Result<CheckpointKey, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Storage { path: path.into(), reason: format!("audit checkpoint key: {e}") })?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if let Ok(m) = std::fs::metadata(path) {
                if m.permissions().mode() & 0o077 != 0 {
                    tracing::warn!(file = %path.display(), "the audit checkpoint key file is readable by other users; chmod 600 it");
                }
            }
        }
        Self::from_hex(&text).map_err(|e| Error::Storage { path: path.into(), reason: e.to_string() })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    fn mac(&self) -> HmacSha256 {
        <HmacSha256 as Mac>::new_from_slice(&self.key).expect("HMAC takes any key length")
    }
}

/// Where and how often an [`super::AuditLog`] writes checkpoints (0 turns a limit off).
#[derive(Debug, Clone)]
pub struct CheckpointSink {
    pub path: PathBuf,
    pub key: CheckpointKey,
    pub every_records: u64,
    pub every_secs: u64,
}

impl CheckpointSink {
    /// Every [`DEFAULT_EVERY_RECORDS`] records or [`DEFAULT_EVERY_SECS`] seconds.
    pub fn new(path: impl Into<PathBuf>, key: CheckpointKey) -> CheckpointSink {
        CheckpointSink { path: path.into(), key, every_records: DEFAULT_EVERY_RECORDS, every_secs: DEFAULT_EVERY_SECS }
    }
}

/// One line of the sink.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Records in the log when it was written (the last one's `seq`).
    pub seq: u64,
    /// That record's hash (hex); all zeros for an empty log.
    pub head: String,
    pub time_unix_ms: u64,
    pub key_id: String,
    /// HMAC-SHA256 (hex) of `["agentdb-audit-checkpoint/1", seq, head, time_unix_ms, key_id]`
    /// as compact JSON.
    pub mac: String,
}

impl Checkpoint {
    fn message(seq: u64, head: &str, time_unix_ms: u64, key_id: &str) -> Vec<u8> {
        serde_json::json!([DOMAIN, seq, head, time_unix_ms, key_id]).to_string().into_bytes()
    }

    pub fn sign(seq: u64, head: &str, time_unix_ms: u64, key: &CheckpointKey) -> Checkpoint {
        let mut m = key.mac();
        m.update(&Self::message(seq, head, time_unix_ms, &key.id));
        Checkpoint {
            seq,
            head: head.to_string(),
            time_unix_ms,
            key_id: key.id.clone(),
            mac: hex(&m.finalize().into_bytes()),
        }
    }

    /// Whether the MAC verifies under `key` (compared in constant time).
    pub fn verify(&self, key: &CheckpointKey) -> bool {
        let Some(tag) = unhex(&self.mac) else { return false };
        let mut m = key.mac();
        m.update(&Self::message(self.seq, &self.head, self.time_unix_ms, &self.key_id));
        self.key_id == key.id && m.verify_slice(&tag).is_ok()
    }
}

/// What a sink holds: its checkpoints, each with its line number, every signature
/// checked and their counts never going back.
#[derive(Debug, Clone, Default)]
pub struct SinkContents {
    pub checkpoints: Vec<(usize, Checkpoint)>,
    /// Lines cut short by a crash mid-write (JSON that ends early), left out.
    pub torn_lines: Vec<usize>,
    /// The file does not end with a newline (the next checkpoint starts a new line).
    pub missing_newline: bool,
}

/// Read and check a sink: a line that is not a checkpoint is an error, except a line
/// that stops mid-JSON (a torn write), which is left out and listed.
pub fn read_checkpoints(path: &Path, key: &CheckpointKey) -> Result<SinkContents, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Storage { path: path.into(), reason: format!("audit checkpoints: {e}") })?;
    let mut out = SinkContents { missing_newline: !text.is_empty() && !text.ends_with('\n'), ..Default::default() };
    for (i, line) in text.lines().enumerate() {
        let no = i + 1;
        let bad = |why: String| Error::Storage { path: path.into(), reason: format!("checkpoint line {no}: {why}") };
        if line.trim().is_empty() {
            continue;
        }
        let c: Checkpoint = match serde_json::from_str(line) {
            Ok(c) => c,
            Err(e) if e.is_eof() && line.starts_with('{') => {
                out.torn_lines.push(no);
                continue;
            }
            Err(e) => return Err(bad(format!("not a checkpoint: {e}"))),
        };
        if !c.verify(key) {
            let which = if c.key_id != key.id {
                format!(" (signed with key id {}, this key is {})", c.key_id, key.id)
            } else {
                String::new()
            };
            return Err(bad(format!("bad signature{which}")));
        }
        if let Some((pl, p)) = out.checkpoints.last() {
            if c.seq < p.seq {
                return Err(bad(format!(
                    "covers {} records, fewer than checkpoint line {pl} ({}): the file was edited or mixes logs",
                    c.seq, p.seq
                )));
            }
        }
        out.checkpoints.push((no, c));
    }
    Ok(out)
}

/// What [`verify_with_checkpoints`] found.
#[derive(Debug, Clone)]
pub struct CheckpointReport {
    /// Records in the log and the last one's hash.
    pub records: u64,
    pub last_hash: String,
    /// Signed checkpoints checked against the log.
    pub checkpoints: usize,
    /// The last checkpoint (None: the sink is empty).
    pub last: Option<Checkpoint>,
    /// Sink lines cut short by a crash mid-write, left out.
    pub torn_lines: Vec<usize>,
    /// The sink does not end with a newline.
    pub sink_missing_newline: bool,
}

impl CheckpointReport {
    /// Records after the last checkpoint, which no signature covers yet.
    pub fn uncovered(&self) -> u64 {
        self.records - self.last.as_ref().map_or(0, |c| c.seq)
    }
}

/// Check the log's chain and check it against every checkpoint of the sink: each
/// checkpoint's signature, the log still holding the records it covers ("truncated"),
/// and its record `seq` still having the signed hash ("rewritten").
pub fn verify_with_checkpoints(log: &Path, checkpoints: &Path, key: &CheckpointKey) -> Result<CheckpointReport, Error> {
    let sink = read_checkpoints(checkpoints, key)?;
    let cks = &sink.checkpoints;
    let rewritten = |c: &Checkpoint, line: usize| Error::Storage {
        path: log.into(),
        reason: format!(
            "rewritten: record {}'s hash differs from the signed checkpoint of {} (checkpoint line {line} of {})",
            c.seq,
            crate::time::rfc3339(c.time_unix_ms),
            checkpoints.display()
        ),
    };
    let mut next = 0;
    // Checkpoints of an empty log pin the genesis hash.
    while let Some((line, c)) = cks.get(next).filter(|(_, c)| c.seq == 0) {
        if c.head != GENESIS {
            return Err(rewritten(c, *line));
        }
        next += 1;
    }
    let (records, last_hash) = verify_each(log, |_, r: &AuditRecord| {
        while let Some((line, c)) = cks.get(next).filter(|(_, c)| c.seq == r.seq) {
            if c.head != r.hash {
                return Err(rewritten(c, *line));
            }
            next += 1;
        }
        Ok(())
    })?;
    if let Some((line, c)) = cks.last() {
        if c.seq > records {
            return Err(Error::Storage {
                path: log.into(),
                reason: format!(
                    "truncated: checkpoint line {line} at {} covers {} records but the log has {records} ({})",
                    crate::time::rfc3339(c.time_unix_ms),
                    c.seq,
                    checkpoints.display()
                ),
            });
        }
    }
    Ok(CheckpointReport {
        records,
        last_hash,
        checkpoints: cks.len(),
        last: cks.last().map(|(_, c)| c.clone()),
        torn_lines: sink.torn_lines.clone(),
        sink_missing_newline: sink.missing_newline,
    })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::super::{hash_of, verify, AuditLog};
    use super::*;
    use std::time::Duration;

    const KEY_HEX: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    fn key() -> CheckpointKey {
        CheckpointKey::from_hex(KEY_HEX).unwrap()
    }

    fn sink(dir: &Path, every_records: u64, every_secs: u64) -> CheckpointSink {
        CheckpointSink { path: dir.join("sink/checkpoints.jsonl"), key: key(), every_records, every_secs }
    }

    fn append(log: &AuditLog, n: usize) {
        for i in 0..n {
            log.append("key:abc", "/agentdb.v1.Items/Upsert", "c", "allow", &format!("op {i}")).unwrap();
        }
    }

    fn checkpoints(p: &Path) -> Vec<Checkpoint> {
        read_checkpoints(p, &key()).unwrap().checkpoints.into_iter().map(|(_, c)| c).collect()
    }

    fn err(r: Result<CheckpointReport, Error>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn key_parsing() {
        assert!(CheckpointKey::from_hex(&KEY_HEX[..62]).unwrap_err().to_string().contains("at least 32 bytes"));
        assert!(CheckpointKey::from_hex("zz").unwrap_err().to_string().contains("hex"));
        let k = CheckpointKey::from_hex(&format!("  {KEY_HEX}\n")).unwrap();
        assert_eq!(k.id().len(), 16);
        assert!(!format!("{k:?}").contains("0011"), "Debug does not print the key");
        let other = CheckpointKey::from_hex(&KEY_HEX.replace('0', "1")).unwrap();
        assert_ne!(k.id(), other.id());
        let c = Checkpoint::sign(3, GENESIS, 1, &k);
        assert!(c.verify(&k) && !c.verify(&other));
        assert_eq!(crate::time::rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(crate::time::rfc3339(1_709_210_096_789), "2024-02-29T12:34:56.789Z");
    }

    #[test]
    fn append_and_verify_ok_with_a_final_checkpoint_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let (p, s) = (dir.path().join("audit.log"), sink(dir.path(), 5, 0));
        let log = AuditLog::open_with_checkpoints(&p, s.clone()).unwrap();
        append(&log, 12);
        assert_eq!(checkpoints(&s.path).iter().map(|c| c.seq).collect::<Vec<_>>(), vec![5, 10]);
        drop(log);
        let cks = checkpoints(&s.path);
        assert_eq!(cks.iter().map(|c| c.seq).collect::<Vec<_>>(), vec![5, 10, 12], "final checkpoint on drop");
        let r = verify_with_checkpoints(&p, &s.path, &s.key).unwrap();
        assert_eq!((r.records, r.checkpoints, r.uncovered()), (12, 3, 0));
        assert_eq!(r.last_hash, verify(&p).unwrap().1);
        assert_eq!(cks[2].head, r.last_hash);
        // Reopening continues both; nothing added = no extra checkpoint on drop.
        drop(AuditLog::open_with_checkpoints(&p, s.clone()).unwrap());
        assert_eq!(checkpoints(&s.path).len(), 3);
        let log = AuditLog::open_with_checkpoints(&p, s.clone()).unwrap();
        append(&log, 1);
        drop(log);
        let r = verify_with_checkpoints(&p, &s.path, &s.key).unwrap();
        assert_eq!((r.records, r.checkpoints), (13, 4));
        // The plain API keeps working on the same log.
        AuditLog::open(&p).unwrap().append("local", "x", "", "allow", "").unwrap();
        assert_eq!(verify(&p).unwrap().0, 14);
        assert_eq!(verify_with_checkpoints(&p, &s.path, &s.key).unwrap().uncovered(), 1);
    }

    #[test]
    fn truncation_of_the_last_record_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let (p, s) = (dir.path().join("audit.log"), sink(dir.path(), 1000, 0));
        append(&AuditLog::open_with_checkpoints(&p, s.clone()).unwrap(), 7);
        let text = std::fs::read_to_string(&p).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        std::fs::write(&p, lines[..6].join("\n") + "\n").unwrap();
        assert_eq!(verify(&p).unwrap().0, 6, "the chain alone still verifies");
        let e = err(verify_with_checkpoints(&p, &s.path, &s.key));
        assert!(
            e.contains("truncated: checkpoint line 1 at ") && e.contains("covers 7 records but the log has 6"),
            "{e}"
        );
        // A truncated log is not extended; a deleted one neither.
        assert!(AuditLog::open_with_checkpoints(&p, s.clone()).unwrap_err().to_string().contains("truncated"));
        std::fs::remove_file(&p).unwrap();
        let e = AuditLog::open_with_checkpoints(&p, s.clone()).unwrap_err().to_string();
        assert!(e.contains("the log has 0"), "{e}");
    }

    /// What an attacker with write access to the log can do: edit a record and recompute
    /// every hash after it.
    fn rewrite(p: &Path, line: usize, detail: &str) {
        let text = std::fs::read_to_string(p).unwrap();
        let mut prev = GENESIS.to_string();
        let mut out = String::new();
        for (i, l) in text.lines().enumerate() {
            let mut r: AuditRecord = serde_json::from_str(l).unwrap();
            if i + 1 == line {
                r.detail = detail.into();
            }
            r.prev = prev;
            r.hash = hash_of(&r);
            prev = r.hash.clone();
            out.push_str(&serde_json::to_string(&r).unwrap());
            out.push('\n');
        }
        std::fs::write(p, out).unwrap();
    }

    #[test]
    fn a_rewrite_with_a_recomputed_chain_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let (p, s) = (dir.path().join("audit.log"), sink(dir.path(), 4, 0));
        append(&AuditLog::open_with_checkpoints(&p, s.clone()).unwrap(), 10);
        rewrite(&p, 2, "nothing to see");
        assert_eq!(verify(&p).unwrap().0, 10, "the recomputed chain alone verifies");
        let e = err(verify_with_checkpoints(&p, &s.path, &s.key));
        assert!(e.contains("rewritten: record 4's hash differs from the signed checkpoint of "), "{e}");
        assert!(e.contains("checkpoint line 1"), "{e}");
        assert!(AuditLog::open_with_checkpoints(&p, s.clone()).unwrap_err().to_string().contains("rewritten"));
        // A change after the last checkpoint is beyond what the checkpoints cover...
        let (p2, s2) = (dir.path().join("b/audit.log"), sink(&dir.path().join("b"), 4, 0));
        let log = AuditLog::open_with_checkpoints(&p2, s2.clone()).unwrap();
        append(&log, 5);
        rewrite(&p2, 5, "after the checkpoint");
        assert_eq!(verify_with_checkpoints(&p2, &s2.path, &s2.key).unwrap().uncovered(), 1);
        // ... until the next checkpoint, which signs the head the log wrote, not the file's.
        drop(log);
        let e = err(verify_with_checkpoints(&p2, &s2.path, &s2.key));
        assert!(e.contains("rewritten: record 5's hash"), "{e}");
    }

    #[test]
    fn a_forged_checkpoint_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let (p, s) = (dir.path().join("audit.log"), sink(dir.path(), 3, 0));
        append(&AuditLog::open_with_checkpoints(&p, s.clone()).unwrap(), 6);
        let good = std::fs::read_to_string(&s.path).unwrap();
        // The attacker truncates the log and rewrites the checkpoints to match, without the key.
        let text = std::fs::read_to_string(&p).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        std::fs::write(&p, lines[..4].join("\n") + "\n").unwrap();
        let head4: AuditRecord = serde_json::from_str(lines[3]).unwrap();
        let mut cks = checkpoints(&s.path);
        cks[1].seq = 4;
        cks[1].head = head4.hash.clone();
        let forged: String = cks.iter().map(|c| serde_json::to_string(c).unwrap() + "\n").collect();
        std::fs::write(&s.path, forged).unwrap();
        let e = err(verify_with_checkpoints(&p, &s.path, &s.key));
        assert!(e.contains("checkpoint line 2: bad signature"), "{e}");
        // Signed with another key: refused too, naming both ids.
        let other = CheckpointKey::from_hex(&KEY_HEX.replace('f', "e")).unwrap();
        let c = Checkpoint::sign(4, &head4.hash, 1, &other);
        std::fs::write(&s.path, serde_json::to_string(&c).unwrap() + "\n").unwrap();
        let e = err(verify_with_checkpoints(&p, &s.path, &s.key));
        assert!(e.contains("checkpoint line 1: bad signature (signed with key id"), "{e}");
        // Not JSON: named; a torn last line (crash mid-write): left out, and the next
        // checkpoint starts on a new line.
        std::fs::write(&s.path, "garbage\n").unwrap();
        assert!(err(verify_with_checkpoints(&p, &s.path, &s.key)).contains("checkpoint line 1: not a checkpoint"));
        std::fs::write(&p, text).unwrap();
        std::fs::write(&s.path, good.clone() + "{\"seq\":7,\"he").unwrap();
        let r = verify_with_checkpoints(&p, &s.path, &s.key).unwrap();
        assert!(r.sink_missing_newline && r.torn_lines == vec![3] && r.checkpoints == 2, "{r:?}");
        append(&AuditLog::open_with_checkpoints(&p, s.clone()).unwrap(), 1);
        let r = verify_with_checkpoints(&p, &s.path, &s.key).unwrap();
        assert!(!r.sink_missing_newline && r.torn_lines == vec![3], "{r:?}");
        assert!(r.checkpoints == 3 && r.records == 7 && r.uncovered() == 0, "{r:?}");
        // Checkpoints going back (lines swapped): refused.
        let mut l: Vec<&str> = good.lines().collect();
        l.swap(0, 1);
        std::fs::write(&s.path, l.join("\n") + "\n").unwrap();
        assert!(err(verify_with_checkpoints(&p, &s.path, &s.key)).contains("fewer than checkpoint line 1"));
    }

    #[test]
    fn checkpoint_intervals_are_respected() {
        let dir = tempfile::tempdir().unwrap();
        // By count only: every 3 records, none in between.
        let (p, s) = (dir.path().join("a/audit.log"), sink(&dir.path().join("a"), 3, 0));
        let log = AuditLog::open_with_checkpoints(&p, s.clone()).unwrap();
        for n in 1..=8u64 {
            append(&log, 1);
            assert_eq!(checkpoints(&s.path).len() as u64, n / 3, "after {n} records");
        }
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(checkpoints(&s.path).len(), 2, "no time-based checkpoint when every_secs = 0");
        log.checkpoint_now().unwrap();
        assert_eq!(checkpoints(&s.path).last().unwrap().seq, 8);
        log.checkpoint_now().unwrap();
        assert_eq!(checkpoints(&s.path).len(), 3, "nothing new: no checkpoint");
        drop(log);
        assert_eq!(checkpoints(&s.path).len(), 3);

        // By time: one record, then a checkpoint about every_secs later without further appends.
        let (p, s) = (dir.path().join("b/audit.log"), sink(&dir.path().join("b"), 1000, 1));
        let log = AuditLog::open_with_checkpoints(&p, s.clone()).unwrap();
        std::thread::sleep(Duration::from_millis(1300));
        assert!(checkpoints(&s.path).is_empty(), "nothing to checkpoint while the log is empty");
        let t0 = std::time::Instant::now();
        append(&log, 2);
        assert!(checkpoints(&s.path).is_empty(), "not before the interval");
        while checkpoints(&s.path).is_empty() {
            assert!(t0.elapsed() < Duration::from_secs(5), "time-based checkpoint not written");
            std::thread::sleep(Duration::from_millis(20));
        }
        let waited = t0.elapsed();
        assert!(waited >= Duration::from_millis(950), "written after {waited:?}, before the interval");
        assert_eq!(checkpoints(&s.path)[0].seq, 2);
        std::thread::sleep(Duration::from_millis(1300));
        assert_eq!(checkpoints(&s.path).len(), 1, "no new records: no new checkpoint");
        // Whichever comes first: with a count of 2, the count wins.
        drop(log);
        let (p, s) = (dir.path().join("c/audit.log"), sink(&dir.path().join("c"), 2, 60));
        let log = AuditLog::open_with_checkpoints(&p, s.clone()).unwrap();
        append(&log, 2);
        assert_eq!(checkpoints(&s.path).len(), 1);
        let t = std::time::Instant::now();
        drop(log);
        assert!(t.elapsed() < Duration::from_secs(1), "drop does not wait for the ticker's interval");
    }
}
