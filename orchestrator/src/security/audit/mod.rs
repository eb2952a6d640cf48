//! The audit log: append-only JSON Lines, each record carrying the SHA-256 of the
//! previous one, so editing, removing or reordering any record breaks the chain at a
//! line `verify` names.
//!
//! The chain alone cannot show that records were cut off the end, nor that someone who
//! can write the file rewrote it and recomputed every hash. Against both, the log can
//! write HMAC-signed checkpoints of its head (record count and last hash) to a separate
//! sink ([`AuditLog::open_with_checkpoints`], [`checkpoint`]), which
//! [`checkpoint::verify_with_checkpoints`] checks the log against.

pub mod checkpoint;

use self::checkpoint::{CheckpointKey, CheckpointSink};
use super::Error;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

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

/// The record's hash: SHA-256 (hex) of the JSON array
/// `[seq, time_unix_ms, principal, action, target, decision, detail, prev]`.
pub fn hash_of(r: &AuditRecord) -> String {
    let mut h = Sha256::new();
    let body =
        serde_json::json!([r.seq, r.time_unix_ms, r.principal, r.action, r.target, r.decision, r.detail, r.prev]);
    h.update(body.to_string().as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn now_unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

struct Tail {
    file: std::fs::File,
    seq: u64,
    last: String,
    ck: Option<Checkpointer>,
}

/// The checkpoint side of an open log: the sink, the key and when the next one is due.
struct Checkpointer {
    path: PathBuf,
    file: std::fs::File,
    key: CheckpointKey,
    every_records: u64,
    every_secs: u64,
    /// Records the last checkpoint covers.
    covered: u64,
    /// When the oldest record no checkpoint covers was appended (or the log opened).
    uncovered_since: Option<Instant>,
    /// The sink ends in a torn line (a crash mid-write): start the next on a new line.
    needs_newline: bool,
}

impl Tail {
    /// Write a checkpoint of the current head if records were added since the last one
    /// and `force`, or a limit (records or seconds) is reached.
    fn checkpoint_if_due(&mut self, force: bool) -> Result<(), Error> {
        let (seq, last) = (self.seq, &self.last);
        let Some(ck) = self.ck.as_mut() else { return Ok(()) };
        if seq <= ck.covered {
            return Ok(());
        }
        let by_count = ck.every_records > 0 && seq - ck.covered >= ck.every_records;
        let by_time =
            ck.every_secs > 0 && ck.uncovered_since.is_some_and(|t| t.elapsed() >= Duration::from_secs(ck.every_secs));
        if !(force || by_count || by_time) {
            return Ok(());
        }
        let c = checkpoint::Checkpoint::sign(seq, last, now_unix_ms(), &ck.key);
        let mut line = if ck.needs_newline { "\n".to_string() } else { String::new() };
        line.push_str(&serde_json::to_string(&c).expect("serialisable"));
        line.push('\n');
        let err = |e: std::io::Error| Error::Storage { path: ck.path.clone(), reason: e.to_string() };
        ck.file.write_all(line.as_bytes()).map_err(err)?;
        ck.file.sync_data().map_err(err)?;
        ck.needs_newline = false;
        ck.covered = seq;
        ck.uncovered_since = None;
        Ok(())
    }

    /// How long the ticker may sleep before a time-based checkpoint can be due.
    fn next_tick(&self) -> Option<Duration> {
        let ck = self.ck.as_ref()?;
        if ck.every_secs == 0 {
            return None;
        }
        let every = Duration::from_secs(ck.every_secs);
        Some(match ck.uncovered_since {
            Some(t) if self.seq > ck.covered => every.saturating_sub(t.elapsed()),
            _ => every,
        })
    }
}

fn checkpoint_failed(e: &Error) {
    tracing::error!(error = %e, "cannot write an audit checkpoint (retried at the next one due)");
}

pub struct AuditLog {
    path: PathBuf,
    tail: Arc<Mutex<Tail>>,
    /// The thread writing time-based checkpoints; dropping the sender stops it.
    ticker: Option<(std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>)>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = self.tail.lock();
        f.debug_struct("AuditLog")
            .field("path", &self.path)
            .field("records", &t.seq)
            .field("checkpoints", &t.ck.as_ref().map(|c| &c.path))
            .finish()
    }
}

impl AuditLog {
    /// Open (creating) the log and check its chain first: a broken log is not extended.
    pub fn open(path: &Path) -> Result<AuditLog, Error> {
        Self::open_inner(path, None)
    }

    /// Like [`AuditLog::open`], and also write signed checkpoints of the chain's head to
    /// `sink.path` every `sink.every_records` records and/or `sink.every_secs` seconds
    /// (whichever comes first; 0 turns a limit off), and when the log is dropped if
    /// records were added since the last one. The log is first checked against the
    /// checkpoints already in the sink: a truncated or rewritten log is not extended.
    pub fn open_with_checkpoints(path: &Path, sink: CheckpointSink) -> Result<AuditLog, Error> {
        Self::open_inner(path, Some(sink))
    }

    fn open_inner(path: &Path, sink: Option<CheckpointSink>) -> Result<AuditLog, Error> {
        let mkdir = |p: &Path| -> Result<(), Error> {
            if let Some(d) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(d).map_err(|e| Error::Storage { path: d.into(), reason: e.to_string() })?;
            }
            Ok(())
        };
        mkdir(path)?;
        let open_append = |p: &Path| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| Error::Storage { path: p.into(), reason: e.to_string() })
        };
        let Some(sink) = sink else {
            let (seq, last) = if path.exists() { verify(path)? } else { (0, GENESIS.to_string()) };
            let file = open_append(path)?;
            let tail = Tail { file, seq, last, ck: None };
            return Ok(AuditLog { path: path.to_path_buf(), tail: Arc::new(Mutex::new(tail)), ticker: None });
        };
        mkdir(&sink.path)?;
        // Both files exist before the check, so a missing log reads as an empty one
        // (and is refused when the checkpoints cover records).
        let file = open_append(path)?;
        let ck_file = open_append(&sink.path)?;
        let report = checkpoint::verify_with_checkpoints(path, &sink.path, &sink.key)?;
        let covered = report.last.as_ref().map_or(0, |c| c.seq);
        let ck = Checkpointer {
            needs_newline: report.sink_missing_newline,
            path: sink.path,
            file: ck_file,
            key: sink.key,
            every_records: sink.every_records,
            every_secs: sink.every_secs,
            covered,
            uncovered_since: (report.records > covered).then(Instant::now),
        };
        let tail = Arc::new(Mutex::new(Tail { file, seq: report.records, last: report.last_hash, ck: Some(ck) }));
        let ticker = if sink.every_secs > 0 {
            let (tx, rx) = std::sync::mpsc::channel::<()>();
            let t = tail.clone();
            let h = std::thread::Builder::new()
                .name("audit-checkpoint".into())
                .spawn(move || loop {
                    let wait = t.lock().next_tick().unwrap_or(Duration::from_secs(3600));
                    match rx.recv_timeout(wait.max(Duration::from_millis(10))) {
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                            if let Err(e) = t.lock().checkpoint_if_due(false) {
                                checkpoint_failed(&e);
                            }
                        }
                        _ => return,
                    }
                })
                .map_err(|e| Error::Storage { path: path.into(), reason: format!("checkpoint thread: {e}") })?;
            Some((tx, h))
        } else {
            None
        };
        Ok(AuditLog { path: path.to_path_buf(), tail, ticker })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Write a checkpoint now if records were added since the last one (no-op without a
    /// checkpoint sink).
    pub fn checkpoint_now(&self) -> Result<(), Error> {
        self.tail.lock().checkpoint_if_due(true)
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
            time_unix_ms: now_unix_ms(),
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
        if let Some(ck) = t.ck.as_mut() {
            ck.uncovered_since.get_or_insert_with(Instant::now);
        }
        // The record is written; a checkpoint that cannot be is logged and retried.
        if let Err(e) = t.checkpoint_if_due(false) {
            checkpoint_failed(&e);
        }
        Ok(())
    }
}

impl Drop for AuditLog {
    /// Clean shutdown: stop the ticker and checkpoint the records added since the last one.
    fn drop(&mut self) {
        if let Some((tx, h)) = self.ticker.take() {
            drop(tx);
            let _ = h.join();
        }
        if let Err(e) = self.checkpoint_now() {
            checkpoint_failed(&e);
        }
    }
}

/// Check the whole chain; returns (records, hash of the last record).
pub fn verify(path: &Path) -> Result<(u64, String), Error> {
    verify_each(path, |_, _| Ok(()))
}

/// [`verify`], calling `visit(line number, record)` on each record whose links checked.
pub fn verify_each(
    path: &Path,
    mut visit: impl FnMut(usize, &AuditRecord) -> Result<(), Error>,
) -> Result<(u64, String), Error> {
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
        visit(i + 1, &r)?;
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
