//! Write-ahead log: checksummed, numbered records, fsynced before a write is
//! acknowledged.
//!
//! A collection's WAL is a folder of files `wal-<first lsn>.log`. File header:
//! `"AGDB" "WAL "` · version u32 · first LSN u64 · CRC-32C of those 20 bytes. Record:
//! payload length u32 · CRC-32C u32 over (LSN ‖ payload) · LSN u64 · payload. A torn
//! record at the end of the newest file (a crash during a write that was never
//! acknowledged) is cut off at recovery; damage anywhere else is reported as corruption
//! naming the file and offset.
//!
//! Encrypted logs (the data directory has a `KEYRING`) set the top bit of the header's
//! version ([`crate::codec::ENCRYPTED`]) and each record's payload is `nonce ·
//! AES-256-GCM ciphertext · tag` with associated data `"WAL " · LSN`; the record CRC
//! covers the stored (encrypted) bytes. A record whose CRC is right but which does not
//! decrypt is an error wherever it is (it was written whole, so it is not a torn tail).

use crate::codec::crypto::Cipher;
use crate::codec::{Reader, Writer, ENCRYPTED};
use crate::error::{Error, Result};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const WAL_VERSION: u32 = 1;
const FILE_HEADER: usize = 24;
const RECORD_HEADER: usize = 16;
/// A record larger than this is certainly damage, not data (the server's message limit
/// is far below it).
const MAX_RECORD: usize = 1 << 30;

/// One item as logged: vectors are already validated and normalised.
#[derive(Debug, Clone, PartialEq)]
pub struct WalItem {
    pub id: String,
    /// One vector per space, in the collection's space order.
    pub vectors: Vec<Vec<f32>>,
    pub payload_json: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum WalRecord {
    Upsert(Vec<WalItem>),
    Delete(Vec<String>),
}

impl WalRecord {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        match self {
            WalRecord::Upsert(items) => {
                w.u8(1);
                w.u64(items.len() as u64);
                for it in items {
                    w.str(&it.id);
                    w.u32(it.vectors.len() as u32);
                    for v in &it.vectors {
                        w.f32s(v);
                    }
                    w.str(&it.payload_json);
                }
            }
            WalRecord::Delete(ids) => {
                w.u8(2);
                w.u64(ids.len() as u64);
                for id in ids {
                    w.str(id);
                }
            }
        }
        w.0
    }

    pub fn decode(buf: &[u8]) -> std::result::Result<WalRecord, String> {
        let mut r = Reader::new(buf);
        let rec = match r.u8()? {
            1 => {
                let n = r.u64()? as usize;
                let mut items = Vec::with_capacity(n.min(1 << 16));
                for _ in 0..n {
                    let id = r.str()?.to_string();
                    let nv = r.u32()? as usize;
                    let mut vectors = Vec::with_capacity(nv.min(64));
                    for _ in 0..nv {
                        vectors.push(r.f32s()?);
                    }
                    let payload_json = r.str()?.to_string();
                    items.push(WalItem { id, vectors, payload_json });
                }
                WalRecord::Upsert(items)
            }
            2 => {
                let n = r.u64()? as usize;
                let mut ids = Vec::with_capacity(n.min(1 << 16));
                for _ in 0..n {
                    ids.push(r.str()?.to_string());
                }
                WalRecord::Delete(ids)
            }
            t => return Err(format!("unknown record type {t}")),
        };
        if !r.is_empty() {
            return Err("trailing bytes after record".into());
        }
        Ok(rec)
    }
}

fn file_name(first_lsn: u64) -> String {
    format!("wal-{first_lsn:020}.log")
}

fn list_files(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let e = e.map_err(|e| Error::io(dir, e))?;
        let name = e.file_name().to_string_lossy().to_string();
        if let Some(n) = name.strip_prefix("wal-").and_then(|s| s.strip_suffix(".log")) {
            if let Ok(lsn) = n.parse::<u64>() {
                out.push((lsn, e.path()));
            }
        }
    }
    out.sort();
    Ok(out)
}

fn header(first_lsn: u64, encrypted: bool) -> [u8; FILE_HEADER] {
    let mut h = [0u8; FILE_HEADER];
    h[0..4].copy_from_slice(b"AGDB");
    h[4..8].copy_from_slice(b"WAL ");
    let version = if encrypted { WAL_VERSION | ENCRYPTED } else { WAL_VERSION };
    h[8..12].copy_from_slice(&version.to_le_bytes());
    h[12..20].copy_from_slice(&first_lsn.to_le_bytes());
    let crc = crc32c::crc32c(&h[..20]);
    h[20..24].copy_from_slice(&crc.to_le_bytes());
    h
}

fn record_aad(lsn: u64) -> [u8; 12] {
    let mut a = [0u8; 12];
    a[..4].copy_from_slice(b"WAL ");
    a[4..].copy_from_slice(&lsn.to_le_bytes());
    a
}

pub struct Wal {
    dir: PathBuf,
    cipher: Option<Arc<Cipher>>,
    file: File,
    path: PathBuf,
    len: u64,
    next_lsn: u64,
    /// Set after a failed write that could not be rolled back: the log refuses further
    /// writes rather than risk a hole before later records.
    poisoned: Option<String>,
}

/// Records recovered from the log, in order.
pub type Replay = Vec<(u64, WalRecord)>;

impl Wal {
    /// Open (or create) the log in `dir` and return the records after `checkpoint`.
    /// With a cipher every file must be encrypted, without one none may be.
    pub fn open(dir: &Path, checkpoint: u64, cipher: Option<Arc<Cipher>>) -> Result<(Wal, Replay)> {
        let encrypted = cipher.is_some();
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let files = list_files(dir)?;
        let mut replay = Vec::new();
        let mut expected: Option<u64> = None;
        let mut tail: Option<(PathBuf, u64)> = None;
        for (i, (first, path)) in files.iter().enumerate() {
            let last_file = i + 1 == files.len();
            let data = fs::read(path).map_err(|e| Error::io(path, e))?;
            if data.len() < FILE_HEADER {
                if last_file {
                    // Crashed while creating the file: nothing in it was acknowledged.
                    tracing::warn!(file = %path.display(), "removing WAL file with a torn header");
                    fs::remove_file(path).map_err(|e| Error::io(path, e))?;
                    continue;
                }
                return Err(Error::corrupted(path, "WAL file shorter than its header"));
            }
            if data[..FILE_HEADER] == header(*first, !encrypted) {
                return Err(if encrypted {
                    Error::corrupted(path, "WAL file is not encrypted but this data directory is")
                } else {
                    Error::Encryption(format!(
                        "{} is encrypted but no encryption key was given; set {} or {}",
                        path.display(),
                        crate::codec::crypto::KEY_FILE_CONFIG,
                        crate::codec::crypto::KEY_ENV
                    ))
                });
            }
            if data[..FILE_HEADER] != header(*first, encrypted) {
                return Err(Error::corrupted(path, "bad WAL file header (magic, version, LSN or checksum)"));
            }
            if let Some(e) = expected {
                if *first != e {
                    return Err(Error::corrupted(path, format!("WAL gap: file starts at LSN {first}, expected {e}")));
                }
            }
            let mut pos = FILE_HEADER;
            let mut lsn_next = *first;
            while pos < data.len() {
                let problem = Self::check_record(&data, pos, lsn_next, cipher.as_deref());
                match problem {
                    Ok((rec, size)) => {
                        if lsn_next > checkpoint {
                            replay.push((lsn_next, rec));
                        }
                        lsn_next += 1;
                        pos += size;
                    }
                    Err((reason, false)) if last_file => {
                        tracing::warn!(file = %path.display(), offset = pos, %reason,
                            "cutting torn record at the end of the WAL (it was never acknowledged)");
                        break;
                    }
                    Err((reason, _)) => {
                        return Err(Error::corrupted(path, format!("record at offset {pos}: {reason}")));
                    }
                }
            }
            expected = Some(lsn_next);
            if last_file {
                tail = Some((path.clone(), pos as u64));
            }
        }
        let next_lsn = expected.unwrap_or(checkpoint + 1).max(checkpoint + 1);
        let (file, path, len) = match tail {
            Some((path, len)) => {
                let f = OpenOptions::new().write(true).open(&path).map_err(|e| Error::io(&path, e))?;
                f.set_len(len).map_err(|e| Error::io(&path, e))?;
                f.sync_all().map_err(|e| Error::io(&path, e))?;
                (f, path, len)
            }
            None => Self::create_file(dir, next_lsn, encrypted)?,
        };
        let mut wal = Wal { dir: dir.to_path_buf(), cipher, file, path, len, next_lsn, poisoned: None };
        use std::io::Seek;
        wal.file.seek(std::io::SeekFrom::Start(len)).map_err(|e| Error::io(&wal.path, e))?;
        Ok((wal, replay))
    }

    /// The record at `pos`, or (reason, fatal): a fatal problem (a whole record that
    /// does not decrypt) is never cut off as a torn tail.
    fn check_record(
        data: &[u8],
        pos: usize,
        lsn: u64,
        cipher: Option<&Cipher>,
    ) -> std::result::Result<(WalRecord, usize), (String, bool)> {
        if data.len() - pos < RECORD_HEADER {
            return Err(("incomplete record header".into(), false));
        }
        let len = u32::from_le_bytes(data[pos..pos + 4].try_into().expect("4")) as usize;
        let crc = u32::from_le_bytes(data[pos + 4..pos + 8].try_into().expect("4"));
        let rec_lsn = u64::from_le_bytes(data[pos + 8..pos + 16].try_into().expect("8"));
        if len > MAX_RECORD || data.len() - pos - RECORD_HEADER < len {
            return Err((format!("record length {len} runs past the end of the file"), false));
        }
        let body = &data[pos + 8..pos + RECORD_HEADER + len];
        if crc32c::crc32c(body) != crc {
            return Err(("record checksum mismatch".into(), false));
        }
        if rec_lsn != lsn {
            return Err((format!("record has LSN {rec_lsn}, expected {lsn}"), false));
        }
        let stored = &data[pos + RECORD_HEADER..pos + RECORD_HEADER + len];
        let plain;
        let payload = match cipher {
            Some(c) => {
                plain = c.decrypt(&record_aad(lsn), stored).map_err(|e| (e, true))?;
                &plain[..]
            }
            None => stored,
        };
        let rec = WalRecord::decode(payload).map_err(|e| (e, false))?;
        Ok((rec, RECORD_HEADER + len))
    }

    fn create_file(dir: &Path, first_lsn: u64, encrypted: bool) -> Result<(File, PathBuf, u64)> {
        let path = dir.join(file_name(first_lsn));
        let mut f =
            OpenOptions::new().create(true).truncate(true).write(true).open(&path).map_err(|e| Error::io(&path, e))?;
        f.write_all(&header(first_lsn, encrypted)).map_err(|e| Error::io(&path, e))?;
        f.sync_all().map_err(|e| Error::io(&path, e))?;
        crate::codec::fsync_dir(dir)?;
        Ok((f, path, FILE_HEADER as u64))
    }

    /// LSN of the last record written (0 when none ever was).
    pub fn last_lsn(&self) -> u64 {
        self.next_lsn - 1
    }

    /// Append one record and fsync; returns its LSN once it is durable.
    pub fn append(&mut self, rec: &WalRecord) -> Result<u64> {
        if let Some(why) = &self.poisoned {
            return Err(Error::Unavailable(format!("write-ahead log is unusable after an earlier I/O error: {why}")));
        }
        let lsn = self.next_lsn;
        let payload = match &self.cipher {
            Some(c) => c.encrypt(&record_aad(lsn), &rec.encode()),
            None => rec.encode(),
        };
        if payload.len() > MAX_RECORD {
            return Err(Error::LimitExceeded(format!("write of {} bytes exceeds the WAL record limit", payload.len())));
        }
        let mut buf = Vec::with_capacity(RECORD_HEADER + payload.len());
        buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        buf.extend_from_slice(&[0; 4]);
        buf.extend_from_slice(&lsn.to_le_bytes());
        buf.extend_from_slice(&payload);
        let crc = crc32c::crc32c(&buf[8..]);
        buf[4..8].copy_from_slice(&crc.to_le_bytes());
        let res = self.file.write_all(&buf).and_then(|_| self.file.sync_data());
        if let Err(e) = res {
            // Roll back so a later record never follows a torn one.
            let rolled = self.file.set_len(self.len).and_then(|_| {
                use std::io::Seek;
                self.file.seek(std::io::SeekFrom::Start(self.len)).map(|_| ())
            });
            if let Err(e2) = rolled {
                self.poisoned = Some(format!("{e}; rollback failed: {e2}"));
            }
            return Err(Error::io(&self.path, e));
        }
        self.len += buf.len() as u64;
        self.next_lsn += 1;
        Ok(lsn)
    }

    /// Start a new file; later records go there. Returns the last LSN of the old files.
    pub fn rotate(&mut self) -> Result<u64> {
        let last = self.last_lsn();
        let (f, p, len) = Self::create_file(&self.dir, self.next_lsn, self.cipher.is_some())?;
        self.file = f;
        self.path = p;
        self.len = len;
        Ok(last)
    }

    /// Delete files all of whose records are at or below `checkpoint`.
    pub fn remove_up_to(&self, checkpoint: u64) -> Result<()> {
        let files = list_files(&self.dir)?;
        for w in files.windows(2) {
            let (_, path) = &w[0];
            let (next_first, _) = w[1];
            if next_first <= checkpoint + 1 && path != &self.path {
                fs::remove_file(path).map_err(|e| Error::io(path, e))?;
            }
        }
        Ok(())
    }

    pub fn disk_bytes(&self) -> u64 {
        list_files(&self.dir)
            .map(|fs| fs.iter().filter_map(|(_, p)| p.metadata().ok()).map(|m| m.len()).sum())
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(id: &str) -> WalRecord {
        WalRecord::Upsert(vec![WalItem { id: id.into(), vectors: vec![vec![1.0, 2.0]], payload_json: "{}".into() }])
    }

    #[test]
    fn append_replay_rotate_truncate() {
        let dir = tempfile::tempdir().unwrap();
        let (mut w, r) = Wal::open(dir.path(), 0, None).unwrap();
        assert!(r.is_empty());
        assert_eq!(w.append(&up("a")).unwrap(), 1);
        assert_eq!(w.append(&WalRecord::Delete(vec!["a".into()])).unwrap(), 2);
        let last = w.rotate().unwrap();
        assert_eq!(last, 2);
        assert_eq!(w.append(&up("b")).unwrap(), 3);
        drop(w);
        let (w, r) = Wal::open(dir.path(), 0, None).unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(r[2], (3, up("b")));
        w.remove_up_to(2).unwrap();
        drop(w);
        let (mut w, r) = Wal::open(dir.path(), 2, None).unwrap();
        assert_eq!(r, vec![(3, up("b"))]);
        assert_eq!(w.append(&up("c")).unwrap(), 4);
    }

    #[test]
    fn torn_tail_is_cut_but_middle_damage_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let (mut w, _) = Wal::open(dir.path(), 0, None).unwrap();
        for i in 0..5 {
            w.append(&up(&format!("id{i}"))).unwrap();
        }
        let path = w.path.clone();
        drop(w);
        // Torn last record: chop a few bytes.
        let data = fs::read(&path).unwrap();
        fs::write(&path, &data[..data.len() - 3]).unwrap();
        let (mut w, r) = Wal::open(dir.path(), 0, None).unwrap();
        assert_eq!(r.len(), 4);
        assert_eq!(w.append(&up("next")).unwrap(), 5, "LSN continues after the cut");
        w.rotate().unwrap();
        w.append(&up("later")).unwrap();
        drop(w);
        // Damage in a file that is not the newest one: corruption, with the file named.
        let mut data = fs::read(&path).unwrap();
        data[FILE_HEADER + 20] ^= 0xff;
        fs::write(&path, &data).unwrap();
        let err = Wal::open(dir.path(), 0, None).err().unwrap().to_string();
        assert!(err.contains("corrupted file") && err.contains("wal-"), "{err}");
    }

    #[test]
    fn encrypted_log_round_trip_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let c = Arc::new(Cipher::random());
        let (mut w, _) = Wal::open(dir.path(), 0, Some(c.clone())).unwrap();
        for i in 0..3 {
            w.append(&up(&format!("marker-{i}"))).unwrap();
        }
        let path = w.path.clone();
        drop(w);
        let raw = fs::read(&path).unwrap();
        assert!(!raw.windows(6).any(|x| x == b"marker"), "ids are not in the clear");
        let (_, r) = Wal::open(dir.path(), 0, Some(c.clone())).unwrap();
        assert_eq!(r, (1..=3).map(|i| (i as u64, up(&format!("marker-{}", i - 1)))).collect::<Vec<_>>());
        let e = Wal::open(dir.path(), 0, None).err().unwrap().to_string();
        assert!(e.contains("no encryption key"), "{e}");
        // A wrong data key: the last record is whole (CRC fine), so this is an error, not
        // a torn tail to cut, and the file is left as it was.
        let e = Wal::open(dir.path(), 0, Some(Arc::new(Cipher::random()))).err().unwrap().to_string();
        assert!(e.contains("decryption failed"), "{e}");
        assert_eq!(fs::read(&path).unwrap(), raw);
        // A plaintext log in an encrypted directory is refused.
        let d2 = tempfile::tempdir().unwrap();
        drop(Wal::open(d2.path(), 0, None).unwrap());
        assert!(Wal::open(d2.path(), 0, Some(c)).err().unwrap().to_string().contains("not encrypted"));
    }
}
