//! Encryption at rest: AES-256-GCM envelope encryption of every engine file.
//!
//! A *master key* (KEK, 32 bytes) is given by the operator (`storage.encryption_key_file`
//! or `AGENTDB_ENCRYPTION_KEY`). It never encrypts data itself: each data directory has a
//! random *data key* (DEK), stored in `<data>/KEYRING` wrapped (AES-256-GCM) under the
//! master key together with the master key's id. Every file body and every WAL record
//! is sealed under the data key with a fresh random 96-bit nonce stored in front of the
//! ciphertext and associated data naming what the blob is (file kind and place, or WAL
//! LSN), so a blob moved to another place fails authentication. Rotating the master key
//! re-wraps the data key only (one small atomic file write); data files are untouched.
//!
//! KEYRING is a codec envelope (kind `KEYR`, version 1) whose body is: master key id
//! (str) · wrapped data key (bytes: nonce 12 · ciphertext 32 · tag 16). It holds no
//! secret in the clear.

use super::{Reader, Writer};
use crate::codec;
use crate::error::{Error, Result};
use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;

/// Environment variable holding the master key as 64 hex characters.
pub const KEY_ENV: &str = "AGENTDB_ENCRYPTION_KEY";
/// Configuration key naming a file that holds the master key.
pub const KEY_FILE_CONFIG: &str = "storage.encryption_key_file";
/// The wrapped data key, in the data directory.
pub const KEYRING_FILE: &str = "KEYRING";
pub const NONCE_LEN: usize = 12;
pub const TAG_LEN: usize = 16;
/// Bytes an encrypted blob adds to its plaintext.
pub const OVERHEAD: usize = NONCE_LEN + TAG_LEN;
const KEYRING_KIND: &[u8; 4] = b"KEYR";
const KEYRING_VERSION: u32 = 1;
const WRAP_AAD: &[u8] = b"agentdb KEYRING data key v1\0";

/// A 32-byte master key (key-encryption key). Its bytes are wiped on drop and never
/// printed; only its id (a truncated SHA-256, safe to show) is.
pub struct MasterKey {
    bytes: [u8; 32],
    id: String,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey(id {})", self.id)
    }
}

impl Drop for MasterKey {
    fn drop(&mut self) {
        for b in self.bytes.iter_mut() {
            // SAFETY: a plain write to an owned byte; volatile so it is not optimised out.
            unsafe { std::ptr::write_volatile(b, 0) };
        }
    }
}

fn key_id(bytes: &[u8; 32]) -> String {
    let mut h = Sha256::new();
    h.update(b"agentdb master key id\0");
    h.update(bytes);
    h.finalize()[..8].iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

impl MasterKey {
    pub fn from_bytes(bytes: [u8; 32]) -> MasterKey {
        let id = key_id(&bytes);
        MasterKey { bytes, id }
    }

    /// A new random key.
    pub fn generate() -> MasterKey {
        let k = Aes256Gcm::generate_key(&mut OsRng);
        MasterKey::from_bytes(k.into())
    }

    /// Parse key material: 64 hex characters (surrounding whitespace ignored) or exactly
    /// 32 raw bytes.
    pub fn parse(data: &[u8]) -> std::result::Result<MasterKey, String> {
        if let Some(b) = std::str::from_utf8(data).ok().and_then(|s| from_hex(s.trim())) {
            return Ok(MasterKey::from_bytes(b));
        }
        if data.len() == 32 {
            return Ok(MasterKey::from_bytes(data.try_into().expect("32 bytes")));
        }
        Err(format!(
            "an encryption key must be 64 hex characters (32 bytes, e.g. from `openssl rand -hex 32`) or exactly 32 raw bytes; got {} bytes",
            data.len()
        ))
    }

    /// Read a key file (see [`MasterKey::parse`]).
    pub fn from_file(path: &Path) -> Result<MasterKey> {
        let data = std::fs::read(path)
            .map_err(|e| Error::Encryption(format!("cannot read the encryption key file {}: {e}", path.display())))?;
        if let Ok(m) = std::fs::metadata(path) {
            use std::os::unix::fs::PermissionsExt;
            if m.permissions().mode() & 0o077 != 0 {
                tracing::warn!(file = %path.display(), "the encryption key file is readable by other users; chmod 600 it");
            }
        }
        MasterKey::parse(&data).map_err(|e| Error::Encryption(format!("encryption key file {}: {e}", path.display())))
    }

    /// The key in `AGENTDB_ENCRYPTION_KEY` (hex), if that is set and not empty.
    pub fn from_env() -> Result<Option<MasterKey>> {
        match std::env::var(KEY_ENV) {
            Ok(v) if !v.trim().is_empty() => {
                let s = v.trim();
                from_hex(s).map(|b| Some(MasterKey::from_bytes(b))).ok_or_else(|| {
                    Error::Encryption(format!(
                        "{KEY_ENV} must hold 64 hex characters (32 bytes), got {} characters",
                        s.len()
                    ))
                })
            }
            _ => Ok(None),
        }
    }

    /// Key id: the first 8 bytes of a SHA-256 over the key, in hex. Safe to log.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn to_hex(&self) -> String {
        self.bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn aead(&self) -> Aes256Gcm {
        Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&self.bytes))
    }
}

/// The data key of one data directory: seals and opens blobs.
pub struct Cipher {
    aead: Aes256Gcm,
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cipher(AES-256-GCM)")
    }
}

impl Cipher {
    pub fn new(key: &[u8; 32]) -> Cipher {
        Cipher { aead: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key)) }
    }

    /// A cipher over a fresh random data key (for tests and new data directories).
    pub fn random() -> Cipher {
        Cipher { aead: Aes256Gcm::new(&Aes256Gcm::generate_key(&mut OsRng)) }
    }

    /// `nonce · ciphertext · tag`, authenticated together with `aad`.
    pub fn encrypt(&self, aad: &[u8], plain: &[u8]) -> Vec<u8> {
        seal_with(&self.aead, aad, plain)
    }

    /// Open a blob from [`Cipher::encrypt`]; any damage, a different `aad` or another
    /// key is an error, never a panic.
    pub fn decrypt(&self, aad: &[u8], blob: &[u8]) -> std::result::Result<Vec<u8>, String> {
        open_with(&self.aead, aad, blob)
    }
}

fn seal_with(aead: &Aes256Gcm, aad: &[u8], plain: &[u8]) -> Vec<u8> {
    let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
    let ct = aead.encrypt(&nonce, Payload { msg: plain, aad }).expect("AES-GCM encryption of an in-memory buffer");
    let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    out
}

fn open_with(aead: &Aes256Gcm, aad: &[u8], blob: &[u8]) -> std::result::Result<Vec<u8>, String> {
    if blob.len() < OVERHEAD {
        return Err(format!("encrypted blob of {} bytes is shorter than nonce and tag", blob.len()));
    }
    let (nonce, ct) = blob.split_at(NONCE_LEN);
    aead.decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad }).map_err(|_| {
        "decryption failed: the data was altered, moved from another file, or written under another key".to_string()
    })
}

/// The KEYRING file as stored.
struct Keyring {
    master_id: String,
    wrapped: Vec<u8>,
}

impl Keyring {
    fn read(path: &Path) -> Result<Keyring> {
        let (_, body) = codec::read_file(path, KEYRING_KIND, KEYRING_VERSION)?;
        let mut r = Reader::new(&body);
        let (master_id, wrapped) = (|| Ok::<_, String>((r.str()?.to_string(), r.bytes()?.to_vec())))()
            .map_err(|e| Error::corrupted(path, e))?;
        Ok(Keyring { master_id, wrapped })
    }

    fn seal(master: &MasterKey, dek: &[u8; 32]) -> Vec<u8> {
        let mut w = Writer::default();
        w.str(master.id());
        w.bytes(&seal_with(&master.aead(), &wrap_aad(master.id()), dek));
        codec::seal(KEYRING_KIND, KEYRING_VERSION, &w.0)
    }

    fn unwrap(&self, path: &Path, master: &MasterKey) -> Result<[u8; 32]> {
        if self.master_id != master.id() {
            return Err(Error::Encryption(format!(
                "the encryption key does not match this data directory (the data directory's key id is {}, the given key's id is {}); no file was changed",
                self.master_id,
                master.id()
            )));
        }
        let dek = open_with(&master.aead(), &wrap_aad(&self.master_id), &self.wrapped)
            .map_err(|e| Error::corrupted(path, format!("wrapped data key: {e}")))?;
        dek.as_slice().try_into().map_err(|_| Error::corrupted(path, "wrapped data key is not 32 bytes"))
    }
}

fn wrap_aad(master_id: &str) -> Vec<u8> {
    let mut aad = WRAP_AAD.to_vec();
    aad.extend_from_slice(master_id.as_bytes());
    aad
}

/// The id of the master key a data directory's KEYRING is wrapped under, if it has one.
pub fn keyring_master_id(data_dir: &Path) -> Result<Option<String>> {
    let path = data_dir.join(KEYRING_FILE);
    if !path.exists() {
        return Ok(None);
    }
    Ok(Some(Keyring::read(&path)?.master_id))
}

/// Decide how a data directory is opened, before anything in it is read or changed:
/// - KEYRING present: a key is required and must be the one it is wrapped under;
/// - no KEYRING, a key given: allowed only while the directory holds no collections
///   (`has_data` false), and then a new data key is created and wrapped;
/// - neither: the directory is not encrypted (`None`).
pub fn open_keyring(data_dir: &Path, master: Option<&MasterKey>, has_data: bool) -> Result<Option<Arc<Cipher>>> {
    let path = data_dir.join(KEYRING_FILE);
    if path.exists() {
        let ring = Keyring::read(&path)?;
        let Some(master) = master else {
            return Err(Error::Encryption(format!(
                "data directory {} is encrypted (key id {}) but no encryption key was given; set {KEY_FILE_CONFIG} or {KEY_ENV}",
                data_dir.display(),
                ring.master_id
            )));
        };
        let dek = ring.unwrap(&path, master)?;
        return Ok(Some(Arc::new(Cipher::new(&dek))));
    }
    let Some(master) = master else { return Ok(None) };
    if has_data {
        return Err(Error::Encryption(format!(
            "an encryption key was given but data directory {} already holds unencrypted collections; \
             encryption can only be enabled on a new data directory (export and re-import the data), \
             or start without {KEY_FILE_CONFIG} / {KEY_ENV} (if it was encrypted, its {KEYRING_FILE} file \
             is missing: restore it from a backup)",
            data_dir.display()
        )));
    }
    let dek: [u8; 32] = Aes256Gcm::generate_key(&mut OsRng).into();
    codec::write_atomic(&path, &Keyring::seal(master, &dek))?;
    tracing::info!(key_id = %master.id(), "created the data key for encryption at rest (KEYRING)");
    Ok(Some(Arc::new(Cipher::new(&dek))))
}

/// Re-wrap the data key under `new` (the caller holds the data directory's lock). The
/// data files are not rewritten. Atomic: temp file, fsync, rename, fsync the directory.
pub fn rotate_keyring(data_dir: &Path, old: &MasterKey, new: &MasterKey) -> Result<()> {
    let path = data_dir.join(KEYRING_FILE);
    if !path.exists() {
        return Err(Error::Encryption(format!(
            "data directory {} is not encrypted (it has no {KEYRING_FILE} file); nothing to rotate",
            data_dir.display()
        )));
    }
    let dek = Keyring::read(&path)?.unwrap(&path, old)?;
    codec::write_atomic(&path, &Keyring::seal(new, &dek))?;
    // Read it back before reporting success.
    let back = Keyring::read(&path)?.unwrap(&path, new)?;
    if back != dek {
        return Err(Error::corrupted(&path, "re-wrapped data key does not read back"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_round_trip_and_tamper_detection() {
        let c = Cipher::random();
        let blob = c.encrypt(b"ctx", b"secret marker");
        assert!(!blob.windows(6).any(|w| w == b"secret"));
        assert_eq!(c.decrypt(b"ctx", &blob).unwrap(), b"secret marker");
        assert!(c.decrypt(b"other", &blob).is_err(), "associated data is bound");
        for i in 0..blob.len() {
            let mut bad = blob.clone();
            bad[i] ^= 1;
            assert!(c.decrypt(b"ctx", &bad).is_err());
        }
        for cut in 0..blob.len() {
            assert!(c.decrypt(b"ctx", &blob[..cut]).is_err());
        }
        assert!(Cipher::random().decrypt(b"ctx", &blob).is_err());
        assert_ne!(c.encrypt(b"ctx", b"x"), c.encrypt(b"ctx", b"x"), "fresh nonce per blob");
    }

    #[test]
    fn key_parsing() {
        let k = MasterKey::generate();
        let hex = format!("{}\n", k.to_hex());
        let k2 = MasterKey::parse(hex.as_bytes()).unwrap();
        assert_eq!(k.id(), k2.id());
        assert_eq!(MasterKey::parse(&[7u8; 32]).unwrap().id(), MasterKey::from_bytes([7; 32]).id());
        assert!(MasterKey::parse(b"abcd").unwrap_err().contains("64 hex"));
        assert!(!format!("{k:?}").contains(&k.to_hex()));
    }

    #[test]
    fn keyring_open_wrong_key_missing_key_and_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let (k1, k2) = (MasterKey::generate(), MasterKey::generate());
        assert!(open_keyring(dir.path(), None, false).unwrap().is_none());
        let err = open_keyring(dir.path(), Some(&k1), true).unwrap_err().to_string();
        assert!(err.contains("already holds unencrypted collections"), "{err}");
        assert!(!dir.path().join(KEYRING_FILE).exists());

        let c1 = open_keyring(dir.path(), Some(&k1), false).unwrap().unwrap();
        let blob = c1.encrypt(b"a", b"data");
        let before = std::fs::read(dir.path().join(KEYRING_FILE)).unwrap();
        let err = open_keyring(dir.path(), None, true).unwrap_err().to_string();
        assert!(err.contains("no encryption key was given") && err.contains(KEY_ENV), "{err}");
        let err = open_keyring(dir.path(), Some(&k2), true).unwrap_err().to_string();
        assert!(err.contains("does not match this data directory") && err.contains(k1.id()), "{err}");
        assert_eq!(std::fs::read(dir.path().join(KEYRING_FILE)).unwrap(), before, "nothing changed");

        assert!(rotate_keyring(dir.path(), &k2, &k1).is_err());
        rotate_keyring(dir.path(), &k1, &k2).unwrap();
        assert!(open_keyring(dir.path(), Some(&k1), true).unwrap_err().to_string().contains("does not match"));
        let c2 = open_keyring(dir.path(), Some(&k2), true).unwrap().unwrap();
        assert_eq!(c2.decrypt(b"a", &blob).unwrap(), b"data", "same data key after rotation");

        // A tampered KEYRING is an error, not a panic.
        let path = dir.path().join(KEYRING_FILE);
        let mut data = std::fs::read(&path).unwrap();
        let n = data.len();
        data[n - 10] ^= 0xff;
        std::fs::write(&path, &data).unwrap();
        assert!(open_keyring(dir.path(), Some(&k2), true).is_err());
    }
}
