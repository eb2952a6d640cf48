//! Binary encoding helpers and the checksummed file envelope every engine file uses.
//!
//! Envelope: `"AGDB"` · kind (4 bytes) · format version (u32 LE) · body length (u64 LE)
//! · body · CRC-32C (u32 LE) of everything before it. A reader checks all of it and
//! names the file in the error, so a damaged file never turns into a panic or silently
//! wrong data.
//!
//! Encrypted files (a data directory with a `KEYRING`, see `crypto`) set the top bit of
//! the version field ([`ENCRYPTED`]) and their body is `nonce · AES-256-GCM ciphertext ·
//! tag` of the plaintext body, authenticated with associated data `kind · version ·
//! context` (the context names the file's place, e.g. `seg-000000000003/ids.bin`). The
//! CRC still covers the stored bytes, so plain damage is reported the same way.

pub mod crypto;

use self::crypto::Cipher;
use crate::error::{Error, Result};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

pub const MAGIC: &[u8; 4] = b"AGDB";
/// Version-field flag of an encrypted file.
pub const ENCRYPTED: u32 = 0x8000_0000;
const HEADER: usize = 4 + 4 + 4 + 8;

/// Little-endian writer.
#[derive(Default)]
pub struct Writer(pub Vec<u8>);

impl Writer {
    pub fn with_capacity(n: usize) -> Self {
        Writer(Vec::with_capacity(n))
    }
    pub fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    pub fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub fn bytes(&mut self, b: &[u8]) {
        self.u64(b.len() as u64);
        self.0.extend_from_slice(b);
    }
    pub fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    pub fn f32s(&mut self, v: &[f32]) {
        self.u64(v.len() as u64);
        self.0.reserve(v.len() * 4);
        for x in v {
            self.0.extend_from_slice(&x.to_le_bytes());
        }
    }
}

/// Little-endian reader over a buffer whose integrity was already checked; any
/// overrun still becomes an error (never a panic) in case the format is wrong.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

pub type DecodeResult<T> = std::result::Result<T, String>;

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }
    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }
    fn take(&mut self, n: usize) -> DecodeResult<&'a [u8]> {
        if self.buf.len() - self.pos < n {
            return Err(format!("unexpected end of data at byte {} (needed {n} more)", self.pos));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    pub fn u8(&mut self) -> DecodeResult<u8> {
        Ok(self.take(1)?[0])
    }
    pub fn u32(&mut self) -> DecodeResult<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    pub fn u64(&mut self) -> DecodeResult<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    fn len(&mut self, elem: usize) -> DecodeResult<usize> {
        let n = self.u64()?;
        let remaining = (self.buf.len() - self.pos) as u64;
        if n.saturating_mul(elem as u64) > remaining {
            return Err(format!("length {n} at byte {} exceeds the data", self.pos - 8));
        }
        Ok(n as usize)
    }
    pub fn bytes(&mut self) -> DecodeResult<&'a [u8]> {
        let n = self.len(1)?;
        self.take(n)
    }
    pub fn str(&mut self) -> DecodeResult<&'a str> {
        let at = self.pos;
        std::str::from_utf8(self.bytes()?).map_err(|_| format!("invalid UTF-8 at byte {at}"))
    }
    pub fn f32s(&mut self) -> DecodeResult<Vec<f32>> {
        let n = self.len(4)?;
        let raw = self.take(n * 4)?;
        Ok(raw.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect())
    }
}

/// Wrap `body` in the envelope.
pub fn seal(kind: &[u8; 4], version: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + body.len() + 4);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(kind);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(body);
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Check the envelope of `data` read from `path` and return (version, body). An
/// encrypted file is refused (use [`open_crypt`]).
pub fn open<'a>(path: &Path, kind: &[u8; 4], max_version: u32, data: &'a [u8]) -> Result<(u32, &'a [u8])> {
    open_envelope(path, kind, max_version, data, None)
}

fn no_key(path: &Path) -> Error {
    Error::Encryption(format!(
        "{} is encrypted but no encryption key was given; set {} or {}",
        path.display(),
        self::crypto::KEY_FILE_CONFIG,
        self::crypto::KEY_ENV
    ))
}

/// The envelope checks; `cipher` is the data key when the directory is encrypted.
fn open_envelope<'a>(
    path: &Path,
    kind: &[u8; 4],
    max_version: u32,
    data: &'a [u8],
    cipher: Option<&Cipher>,
) -> Result<(u32, &'a [u8])> {
    let bad = |reason: String| Error::corrupted(path, reason);
    if data.len() < HEADER + 4 {
        return Err(bad(format!("file is {} bytes, too short for a header", data.len())));
    }
    if &data[0..4] != MAGIC {
        return Err(bad("not an AgentDB file (bad magic)".into()));
    }
    if &data[4..8] != kind {
        return Err(bad(format!(
            "wrong file kind {:?}, expected {:?}",
            String::from_utf8_lossy(&data[4..8]),
            String::from_utf8_lossy(kind)
        )));
    }
    let stored = u32::from_le_bytes(data[8..12].try_into().expect("4 bytes"));
    if stored & ENCRYPTED != 0 && cipher.is_none() && stored & !ENCRYPTED <= max_version {
        return Err(no_key(path));
    }
    let version = if cipher.is_some() { stored & !ENCRYPTED } else { stored };
    if version == 0 || version > max_version {
        return Err(bad(format!(
            "format version {version} is not supported by this build (max {max_version}); upgrade agentdb"
        )));
    }
    let len = u64::from_le_bytes(data[12..20].try_into().expect("8 bytes"));
    if len != (data.len() - HEADER - 4) as u64 {
        return Err(bad(format!(
            "length field says {len} body bytes but the file holds {} (truncated?)",
            data.len() - HEADER - 4
        )));
    }
    let split = data.len() - 4;
    let want = u32::from_le_bytes(data[split..].try_into().expect("4 bytes"));
    let got = crc32c::crc32c(&data[..split]);
    if want != got {
        return Err(bad(format!("checksum mismatch (stored {want:08x}, computed {got:08x})")));
    }
    Ok((version, &data[HEADER..split]))
}

/// Associated data binding an encrypted body to its kind, version and place.
fn aad(kind: &[u8; 4], version: u32, context: &str) -> Vec<u8> {
    let mut a = Vec::with_capacity(8 + context.len());
    a.extend_from_slice(kind);
    a.extend_from_slice(&version.to_le_bytes());
    a.extend_from_slice(context.as_bytes());
    a
}

/// [`seal`], encrypting the body when `cipher` is set. `context` names the file's place
/// (the same string must be given to [`open_crypt`]).
pub fn seal_crypt(kind: &[u8; 4], version: u32, body: &[u8], cipher: Option<&Cipher>, context: &str) -> Vec<u8> {
    match cipher {
        None => seal(kind, version, body),
        Some(c) => seal(kind, version | ENCRYPTED, &c.encrypt(&aad(kind, version, context), body)),
    }
}

/// [`open`], then decrypt the body. With a cipher every file must be encrypted; without
/// one an encrypted file is refused with a clear error (no key configured).
pub fn open_crypt(
    path: &Path,
    kind: &[u8; 4],
    max_version: u32,
    data: &[u8],
    cipher: Option<&Cipher>,
    context: &str,
) -> Result<(u32, Vec<u8>)> {
    let (version, body) = open_envelope(path, kind, max_version, data, cipher)?;
    let encrypted = u32::from_le_bytes(data[8..12].try_into().expect("4 bytes")) & ENCRYPTED != 0;
    match (encrypted, cipher) {
        (false, None) => Ok((version, body.to_vec())),
        (true, Some(c)) => {
            let plain = c.decrypt(&aad(kind, version, context), body).map_err(|e| Error::corrupted(path, e))?;
            Ok((version, plain))
        }
        (true, None) => Err(no_key(path)),
        (false, Some(_)) => Err(Error::corrupted(
            path,
            "file is not encrypted but this data directory is (a plaintext file put in place of an encrypted one?)",
        )),
    }
}

/// Read a whole enveloped, possibly encrypted file and return its plaintext body.
pub fn read_file_crypt(
    path: &Path,
    kind: &[u8; 4],
    max_version: u32,
    cipher: Option<&Cipher>,
    context: &str,
) -> Result<(u32, Vec<u8>)> {
    let data = fs::read(path).map_err(|e| Error::io(path, e))?;
    open_crypt(path, kind, max_version, &data, cipher, context)
}

/// Seal (encrypting when `cipher` is set) and write atomically.
pub fn write_file_crypt(
    path: &Path,
    kind: &[u8; 4],
    version: u32,
    body: &[u8],
    cipher: Option<&Cipher>,
    context: &str,
) -> Result<()> {
    write_atomic(path, &seal_crypt(kind, version, body, cipher, context))
}

/// Read a whole enveloped file and return its body.
pub fn read_file(path: &Path, kind: &[u8; 4], max_version: u32) -> Result<(u32, Vec<u8>)> {
    let data = fs::read(path).map_err(|e| Error::io(path, e))?;
    let (v, body) = open(path, kind, max_version, &data)?;
    Ok((v, body.to_vec()))
}

/// Write bytes to `path` atomically: temp file, fsync, rename, fsync the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f =
            OpenOptions::new().write(true).create(true).truncate(true).open(&tmp).map_err(|e| Error::io(&tmp, e))?;
        f.write_all(bytes).map_err(|e| Error::io(&tmp, e))?;
        f.sync_all().map_err(|e| Error::io(&tmp, e))?;
    }
    fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    if let Some(dir) = path.parent() {
        fsync_dir(dir)?;
    }
    Ok(())
}

/// Seal and write atomically.
pub fn write_file(path: &Path, kind: &[u8; 4], version: u32, body: &[u8]) -> Result<()> {
    write_atomic(path, &seal(kind, version, body))
}

pub fn fsync_dir(dir: &Path) -> Result<()> {
    let f = File::open(dir).map_err(|e| Error::io(dir, e))?;
    f.sync_all().map_err(|e| Error::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_round_trip_and_damage_detection() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.bin");
        write_file(&p, b"TEST", 1, b"hello").unwrap();
        assert_eq!(read_file(&p, b"TEST", 1).unwrap().1, b"hello");

        let mut data = fs::read(&p).unwrap();
        data[HEADER + 1] ^= 0x40;
        fs::write(&p, &data).unwrap();
        let err = read_file(&p, b"TEST", 1).unwrap_err().to_string();
        assert!(err.contains("checksum mismatch") && err.contains("x.bin"), "{err}");

        fs::write(&p, &data[..data.len() - 3]).unwrap();
        let err = read_file(&p, b"TEST", 1).unwrap_err().to_string();
        assert!(err.contains("truncated"), "{err}");

        write_file(&p, b"TEST", 9, b"future").unwrap();
        let err = read_file(&p, b"TEST", 1).unwrap_err().to_string();
        assert!(err.contains("format version 9"), "{err}");
        assert!(read_file(&p, b"OTHR", 9).unwrap_err().to_string().contains("wrong file kind"));
    }

    #[test]
    fn encrypted_envelope_round_trip_mismatch_and_tamper() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.bin");
        let c = Cipher::random();
        write_file_crypt(&p, b"TEST", 1, b"marker-plaintext", Some(&c), "x.bin").unwrap();
        let raw = fs::read(&p).unwrap();
        assert!(!raw.windows(6).any(|w| w == b"marker"));
        assert_eq!(read_file_crypt(&p, b"TEST", 1, Some(&c), "x.bin").unwrap().1, b"marker-plaintext");
        // Wrong place, wrong key, no key, plaintext in an encrypted directory.
        let e = read_file_crypt(&p, b"TEST", 1, Some(&c), "y.bin").unwrap_err().to_string();
        assert!(e.contains("decryption failed") && e.contains("x.bin"), "{e}");
        assert!(read_file_crypt(&p, b"TEST", 1, Some(&Cipher::random()), "x.bin").is_err());
        let e = read_file_crypt(&p, b"TEST", 1, None, "x.bin").unwrap_err().to_string();
        assert!(e.contains("is encrypted but no encryption key"), "{e}");
        write_file(&p, b"TEST", 1, b"plain").unwrap();
        let e = read_file_crypt(&p, b"TEST", 1, Some(&c), "x.bin").unwrap_err().to_string();
        assert!(e.contains("not encrypted"), "{e}");
        // Tampering with the ciphertext and fixing the CRC: authentication still fails.
        let mut data = seal_crypt(b"TEST", 1, b"hello", Some(&c), "x.bin");
        data[HEADER + 14] ^= 1;
        let n = data.len() - 4;
        let crc = crc32c::crc32c(&data[..n]);
        data[n..].copy_from_slice(&crc.to_le_bytes());
        let e = open_crypt(&p, b"TEST", 1, &data, Some(&c), "x.bin").unwrap_err().to_string();
        assert!(e.contains("corrupted file") && e.contains("decryption failed"), "{e}");
    }

    #[test]
    fn reader_never_panics_on_short_input() {
        let mut w = Writer::default();
        w.str("abc");
        w.f32s(&[1.0, 2.0]);
        let full = w.0.clone();
        for cut in 0..full.len() {
            let mut r = Reader::new(&full[..cut]);
            let ok = r.str().and_then(|_| r.f32s());
            assert!(ok.is_err());
        }
        let mut r = Reader::new(&full);
        assert_eq!(r.str().unwrap(), "abc");
        assert_eq!(r.f32s().unwrap(), vec![1.0, 2.0]);
        // A huge length prefix must not allocate or panic.
        let mut r = Reader::new(&[0xff; 16]);
        assert!(r.bytes().is_err());
    }
}
