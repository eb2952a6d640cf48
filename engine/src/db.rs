//! The database: a data directory holding one folder per collection, guarded by a
//! lock file, with a background thread doing flushes and compactions.

use crate::codec::crypto::{self, MasterKey};
use crate::collection::{Collection, CollectionOptions};
use crate::error::{Error, Result};
use crate::types::{CollectionInfo, CollectionSpec};
use parking_lot::{Condvar, Mutex, RwLock};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

pub struct Database {
    dir: PathBuf,
    options: CollectionOptions,
    collections: RwLock<BTreeMap<String, Arc<Collection>>>,
    /// Collections whose folder could not be opened at start (name -> reason, which
    /// names the file): not served, never maintained, droppable.
    damaged: RwLock<BTreeMap<String, String>>,
    /// Serialises create and drop.
    ddl: Mutex<()>,
    _lock: File,
    stop: Arc<(Mutex<bool>, Condvar)>,
    worker: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Set on every collection it wants, present and future (`collection::WriteHook`).
    hook: RwLock<Option<Arc<dyn crate::collection::WriteHook>>>,
}

fn acquire_lock(dir: &Path) -> Result<File> {
    let path = dir.join("LOCK");
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let mut holder = String::new();
        let _ = f.read_to_string(&mut holder);
        let holder = holder.trim();
        return Err(Error::Locked {
            path: dir.to_path_buf(),
            holder: if holder.is_empty() { String::new() } else { format!(" (pid {holder})") },
        });
    }
    f.set_len(0).map_err(|e| Error::io(&path, e))?;
    f.rewind().map_err(|e| Error::io(&path, e))?;
    write!(f, "{}", std::process::id()).map_err(|e| Error::io(&path, e))?;
    f.sync_all().map_err(|e| Error::io(&path, e))?;
    Ok(f)
}

impl Database {
    /// Open (creating if needed) an unencrypted data directory and every collection in
    /// it. An encrypted one (with a KEYRING) is refused: use [`Database::open_with_key`].
    pub fn open(dir: &Path, options: CollectionOptions) -> Result<Arc<Database>> {
        Self::open_with_key(dir, options, None)
    }

    /// Open the data directory with an optional encryption master key (see `crypto`):
    /// the key is checked against the KEYRING before any collection is read or any file
    /// changed; a fresh directory opened with a key becomes encrypted. A wrong or
    /// missing key fails the whole open; a collection that fails to open (a corrupted
    /// or undecryptable file, an index description this version refuses, an unreadable
    /// manifest) is logged, left on disk and reported by [`Database::damaged`], and the
    /// others are served.
    pub fn open_with_key(dir: &Path, mut options: CollectionOptions, key: Option<&MasterKey>) -> Result<Arc<Database>> {
        fs::create_dir_all(dir.join("collections")).map_err(|e| Error::io(dir, e))?;
        let lock = acquire_lock(dir)?;
        let cdir = dir.join("collections");
        let has_data = fs::read_dir(&cdir)
            .map_err(|e| Error::io(&cdir, e))?
            .flatten()
            .any(|e| !e.file_name().to_string_lossy().starts_with('.'));
        options.cipher = crypto::open_keyring(dir, key, has_data)?;
        let mut collections = BTreeMap::new();
        let mut damaged = BTreeMap::new();
        for e in fs::read_dir(&cdir).map_err(|e| Error::io(&cdir, e))? {
            let e = e.map_err(|e| Error::io(&cdir, e))?;
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with('.') {
                // Half-created or half-dropped collection from a crash.
                tracing::info!(dir = %name, "removing leftover collection folder");
                let _ = fs::remove_dir_all(e.path());
                continue;
            }
            match Collection::open(&e.path(), options.clone()) {
                Ok(c) => {
                    collections.insert(name, Arc::new(c));
                }
                Err(err) => {
                    let reason = err.to_string();
                    tracing::error!(
                        collection = %name,
                        dir = %e.path().display(),
                        reason = %reason,
                        "collection cannot be opened: it is damaged and will not be served (drop it to remove it)"
                    );
                    damaged.insert(name, reason);
                }
            }
        }
        let db = Arc::new(Database {
            dir: dir.to_path_buf(),
            options,
            collections: RwLock::new(collections),
            damaged: RwLock::new(damaged),
            ddl: Mutex::new(()),
            _lock: lock,
            stop: Arc::new((Mutex::new(false), Condvar::new())),
            worker: Mutex::new(None),
            hook: RwLock::new(None),
        });
        Ok(db)
    }

    /// Re-wrap the data key of the encrypted data directory `dir` under `new_key`. The
    /// server must be stopped (the directory's lock is taken, so a running server makes
    /// this fail with `Locked`); `old_key` must be the current key. Data files are not
    /// rewritten; the KEYRING is replaced atomically.
    pub fn rotate_encryption_key(dir: &Path, old_key: &MasterKey, new_key: &MasterKey) -> Result<()> {
        if !dir.join("collections").is_dir() {
            return Err(Error::invalid(format!("{} is not an AgentDB data directory", dir.display())));
        }
        let _lock = acquire_lock(dir)?;
        crypto::rotate_keyring(dir, old_key, new_key)
    }

    /// Whether the data is encrypted at rest.
    pub fn encrypted(&self) -> bool {
        self.options.cipher.is_some()
    }

    /// Start the background flush/compaction thread, ticking every `every`.
    pub fn start_maintenance(self: &Arc<Self>, every: Duration) {
        let weak = Arc::downgrade(self);
        let stop = self.stop.clone();
        let h = std::thread::Builder::new()
            .name("agentdb-maintenance".into())
            .spawn(move || loop {
                {
                    let (m, cv) = &*stop;
                    let mut stopped = m.lock();
                    if !*stopped {
                        cv.wait_for(&mut stopped, every);
                    }
                    if *stopped {
                        return;
                    }
                }
                let Some(db) = weak.upgrade() else { return };
                let cols: Vec<Arc<Collection>> = db.collections.read().values().cloned().collect();
                drop(db);
                for c in cols {
                    if let Err(e) = c.maintain() {
                        tracing::error!(collection = %c.name(), error = %e, "background flush/compaction failed; will retry");
                    }
                }
            })
            .expect("spawn maintenance thread");
        *self.worker.lock() = Some(h);
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn options(&self) -> &CollectionOptions {
        &self.options
    }

    pub fn create_collection(&self, spec: CollectionSpec) -> Result<Arc<Collection>> {
        spec.validate()?;
        let _g = self.ddl.lock();
        if self.collections.read().contains_key(&spec.name) {
            return Err(Error::CollectionExists(spec.name));
        }
        if let Some(reason) = self.damaged.read().get(&spec.name) {
            return Err(Error::CollectionDamaged {
                reason: format!("{reason} (the name exists (damaged); drop the collection to reuse it)"),
                name: spec.name,
            });
        }
        let cdir = self.dir.join("collections");
        let tmp = cdir.join(format!(".tmp-{}-{}", spec.name, uuid::Uuid::new_v4().simple()));
        let name = spec.name.clone();
        let c = Collection::create(&tmp, spec, self.options.clone())?;
        drop(c);
        let final_dir = cdir.join(&name);
        fs::rename(&tmp, &final_dir).map_err(|e| Error::io(&final_dir, e))?;
        crate::codec::fsync_dir(&cdir)?;
        let c = Arc::new(Collection::open(&final_dir, self.options.clone())?);
        if let Some(h) = self.hook.read().clone().filter(|h| h.wants(&name)) {
            c.set_write_hook(Some(h));
        }
        self.collections.write().insert(name, c.clone());
        Ok(c)
    }

    /// Drop a collection: its folder is moved aside, then removed. A damaged collection
    /// may be dropped too (that is how an operator clears it).
    pub fn drop_collection(&self, name: &str) -> Result<()> {
        let _g = self.ddl.lock();
        let cdir = self.dir.join("collections");
        if self.damaged.read().contains_key(name) {
            let dir = cdir.join(name);
            let gone = cdir.join(format!(".dropped-{}-{}", name, uuid::Uuid::new_v4().simple()));
            fs::rename(&dir, &gone).map_err(|e| Error::io(&dir, e))?;
            crate::codec::fsync_dir(&cdir)?;
            self.damaged.write().remove(name);
            tracing::info!(collection = %name, "damaged collection dropped");
            if let Err(e) = fs::remove_dir_all(&gone) {
                tracing::warn!(dir = %gone.display(), error = %e, "could not remove dropped collection; it will be removed at next start");
            }
            return Ok(());
        }
        let c = self.collections.write().remove(name).ok_or_else(|| Error::CollectionNotFound(name.to_string()))?;
        c.dropped.store(true, Ordering::Release);
        // Wait for maintenance and in-flight writes to finish before moving files, taking
        // the locks in the order every other path does (maintenance, WAL, state).
        let _m = c.maintenance.lock();
        let _w = c.wal.lock();
        let gone = cdir.join(format!(".dropped-{}-{}", name, uuid::Uuid::new_v4().simple()));
        fs::rename(&c.dir, &gone).map_err(|e| Error::io(&c.dir, e))?;
        crate::codec::fsync_dir(&cdir)?;
        if let Err(e) = fs::remove_dir_all(&gone) {
            tracing::warn!(dir = %gone.display(), error = %e, "could not remove dropped collection; it will be removed at next start");
        }
        Ok(())
    }

    /// Route the writes of the collections `hook` wants, present and future, through it
    /// (`collection::WriteHook`).
    pub fn set_write_hook(&self, hook: Arc<dyn crate::collection::WriteHook>) {
        let _g = self.ddl.lock();
        for c in self.collections.read().values() {
            c.set_write_hook(hook.wants(c.name()).then(|| hook.clone()));
        }
        *self.hook.write() = Some(hook);
    }

    pub fn collection(&self, name: &str) -> Result<Arc<Collection>> {
        if let Some(c) = self.collections.read().get(name) {
            return Ok(c.clone());
        }
        match self.damaged.read().get(name) {
            Some(reason) => Err(Error::CollectionDamaged { name: name.to_string(), reason: reason.clone() }),
            None => Err(Error::CollectionNotFound(name.to_string())),
        }
    }

    /// Collections that failed to open at start and are not served: (name, reason).
    pub fn damaged(&self) -> Vec<(String, String)> {
        self.damaged.read().iter().map(|(n, r)| (n.clone(), r.clone())).collect()
    }

    pub fn collections(&self) -> Vec<Arc<Collection>> {
        self.collections.read().values().cloned().collect()
    }

    pub fn list(&self) -> Vec<CollectionInfo> {
        let cols: Vec<Arc<Collection>> = self.collections.read().values().cloned().collect();
        cols.iter().filter_map(|c| c.info().ok()).collect()
    }

    /// Stop background work. Every acknowledged write is already durable in the WAL;
    /// this only lets a running flush finish so the next start replays less.
    pub fn close(&self) {
        {
            let (m, cv) = &*self.stop;
            *m.lock() = true;
            cv.notify_all();
        }
        if let Some(h) = self.worker.lock().take() {
            let _ = h.join();
        }
        for c in self.collections.read().values() {
            let _m = c.maintenance.lock();
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let (m, cv) = &*self.stop;
        *m.lock() = true;
        cv.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Item;

    fn spec() -> CollectionSpec {
        serde_json::from_value(serde_json::json!({
            "name": "secret-col",
            "spaces": [{"name": "v", "dim": 4, "metric": "cosine", "index": "Flat"}]
        }))
        .unwrap()
    }

    fn item(i: usize) -> Item {
        Item {
            id: format!("MARKERID{i}"),
            vectors: [("v".to_string(), vec![1.0, i as f32, 0.5, -1.0])].into(),
            payload: serde_json::json!({"text": format!("MARKERPAYLOAD{i}")}),
        }
    }

    /// Every file under `dir`, path -> bytes.
    fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut out = BTreeMap::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.insert(p.clone(), fs::read(&p).unwrap());
                }
            }
        }
        out
    }

    #[test]
    fn encrypted_database_hides_data_and_checks_keys() {
        let dir = tempfile::tempdir().unwrap();
        let (k1, k2) = (MasterKey::generate(), MasterKey::generate());
        {
            let db = Database::open_with_key(dir.path(), CollectionOptions::default(), Some(&k1)).unwrap();
            assert!(db.encrypted());
            let c = db.create_collection(spec()).unwrap();
            c.upsert((0..20).map(item).collect()).unwrap();
            assert!(c.flush().unwrap(), "a segment was written");
            c.upsert((20..30).map(item).collect()).unwrap();
            db.close();
        }
        let files = snapshot(dir.path());
        assert!(files.keys().any(|p| p.ends_with("ids.bin")) && files.keys().any(|p| p.ends_with("MANIFEST")));
        for (p, bytes) in &files {
            for m in [&b"MARKER"[..], b"text", b"secret-col"] {
                assert!(!bytes.windows(m.len()).any(|w| w == m), "{} holds {:?}", p.display(), m);
            }
        }
        let keep: BTreeMap<_, _> = files.iter().filter(|(p, _)| !p.ends_with("LOCK")).collect();

        let err = Database::open_with_key(dir.path(), CollectionOptions::default(), None).err().unwrap().to_string();
        assert!(err.contains("no encryption key was given") && err.contains("AGENTDB_ENCRYPTION_KEY"), "{err}");
        let err = Database::open(dir.path(), CollectionOptions::default()).err().unwrap().to_string();
        assert!(err.contains("no encryption key was given"), "{err}");
        let err =
            Database::open_with_key(dir.path(), CollectionOptions::default(), Some(&k2)).err().unwrap().to_string();
        assert!(err.contains("does not match this data directory") && err.contains(k1.id()), "{err}");
        let after = snapshot(dir.path());
        assert_eq!(keep, after.iter().filter(|(p, _)| !p.ends_with("LOCK")).collect(), "nothing changed on disk");

        // Rotation: the old key stops working, the new one opens everything.
        assert!(Database::rotate_encryption_key(dir.path(), &k2, &k1).is_err());
        Database::rotate_encryption_key(dir.path(), &k1, &k2).unwrap();
        let err =
            Database::open_with_key(dir.path(), CollectionOptions::default(), Some(&k1)).err().unwrap().to_string();
        assert!(err.contains("does not match"), "{err}");
        let db = Database::open_with_key(dir.path(), CollectionOptions::default(), Some(&k2)).unwrap();
        // Rotation needs the directory unlocked.
        let err = Database::rotate_encryption_key(dir.path(), &k2, &k1).unwrap_err().to_string();
        assert!(err.contains("locked"), "{err}");
        let c = db.collection("secret-col").unwrap();
        let ids: Vec<String> = (0..30).map(|i| format!("MARKERID{i}")).collect();
        let got = c.get(&ids, true).unwrap();
        assert_eq!(got.len(), 30);
        assert_eq!(got[25].payload, serde_json::json!({"text": "MARKERPAYLOAD25"}));
        let healthy = db.create_collection(CollectionSpec { name: "healthy".into(), ..spec() }).unwrap();
        healthy.upsert((0..5).map(item).collect()).unwrap();
        assert!(healthy.flush().unwrap());
        drop((c, healthy));
        db.close();
        drop(db);

        // Tampering with a segment file is reported as corruption, never a panic.
        let ids_file = files.keys().find(|p| p.ends_with("ids.bin")).unwrap().clone();
        let mut data = fs::read(&ids_file).unwrap();
        let n = data.len();
        data[n - 8] ^= 1;
        let crc = crc32c::crc32c(&data[..n - 4]);
        data[n - 4..].copy_from_slice(&crc.to_le_bytes());
        fs::write(&ids_file, &data).unwrap();
        // The damaged collection is reported and not served; the healthy one is.
        let db = Database::open_with_key(dir.path(), CollectionOptions::default(), Some(&k2)).unwrap();
        let damaged = db.damaged();
        assert_eq!(damaged.len(), 1, "{damaged:?}");
        let (name, reason) = &damaged[0];
        assert_eq!(name, "secret-col");
        assert!(reason.contains("corrupted file") && reason.contains("decryption failed"), "{reason}");
        assert!(reason.contains("ids.bin"), "the reason names the file: {reason}");
        let err = db.collection("secret-col").unwrap_err();
        assert!(matches!(err, Error::CollectionDamaged { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.starts_with("collection 'secret-col' is damaged and not served: corrupted file"), "{msg}");
        assert!(db.collections().iter().all(|c| c.name() != "secret-col"), "not served, not maintained");
        let h = db.collection("healthy").unwrap();
        assert_eq!(h.get(&["MARKERID3".to_string()], true).unwrap().len(), 1);
        assert!(matches!(db.collection("nope").unwrap_err(), Error::CollectionNotFound(_)));
        // Its name stays taken until an operator drops it; then it can be created anew.
        let err = db.create_collection(spec()).unwrap_err();
        assert!(matches!(err, Error::CollectionDamaged { .. }), "{err:?}");
        assert!(err.to_string().contains("exists (damaged)"), "{err}");
        db.drop_collection("secret-col").unwrap();
        assert!(db.damaged().is_empty());
        assert!(!dir.path().join("collections").join("secret-col").exists());
        let c = db.create_collection(spec()).unwrap();
        assert_eq!(c.count(None).unwrap(), 0);
        drop(c);
        db.close();
        drop(db);
        let db = Database::open_with_key(dir.path(), CollectionOptions::default(), Some(&k2)).unwrap();
        assert!(db.damaged().is_empty() && db.collection("secret-col").is_ok() && db.collection("healthy").is_ok());
    }

    #[test]
    fn stored_index_description_that_would_crash_faiss_is_damaged_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = Database::open(dir.path(), CollectionOptions::default()).unwrap();
            let c = db.create_collection(spec()).unwrap();
            c.upsert((0..3).map(item).collect()).unwrap();
        }
        // A manifest written by an older version that accepted `PQ0` (SIGFPE in FAISS).
        let bad = dir.path().join("collections").join("bad");
        fs::create_dir_all(bad.join("segments")).unwrap();
        let mut s = spec();
        s.name = "bad".into();
        s.spaces[0].index = "PQ0".into();
        crate::manifest::Manifest::new(s).write(&bad, None).unwrap();
        assert!(Collection::open(&bad, CollectionOptions::default()).is_err());
        // A folder without a manifest.
        fs::create_dir_all(dir.path().join("collections").join("empty")).unwrap();

        let db = Database::open(dir.path(), CollectionOptions::default()).unwrap();
        let damaged: BTreeMap<String, String> = db.damaged().into_iter().collect();
        assert_eq!(damaged.keys().collect::<Vec<_>>(), ["bad", "empty"], "{damaged:?}");
        let r = &damaged["bad"];
        assert!(
            r.contains("MANIFEST")
                && r.contains("space 'v'")
                && r.contains("invalid index description 'PQ0': PQ m (number of sub-quantizers) must be between 1"),
            "{r}"
        );
        assert!(damaged["empty"].contains("MANIFEST"), "{}", damaged["empty"]);
        let msg = db.collection("bad").unwrap_err().to_string();
        assert!(msg.starts_with("collection 'bad' is damaged and not served: "), "{msg}");
        let c = db.collection("secret-col").unwrap();
        assert_eq!(c.count(None).unwrap(), 3);
        db.start_maintenance(Duration::from_millis(10));
        std::thread::sleep(Duration::from_millis(50));
        db.drop_collection("bad").unwrap();
        db.drop_collection("empty").unwrap();
        assert!(db.damaged().is_empty());
        db.close();
    }

    #[test]
    fn key_for_existing_plaintext_data_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = Database::open(dir.path(), CollectionOptions::default()).unwrap();
            db.create_collection(spec()).unwrap();
        }
        let k = MasterKey::generate();
        let err =
            Database::open_with_key(dir.path(), CollectionOptions::default(), Some(&k)).err().unwrap().to_string();
        assert!(err.contains("already holds unencrypted collections"), "{err}");
        assert!(!dir.path().join(crypto::KEYRING_FILE).exists());
        let db = Database::open(dir.path(), CollectionOptions::default()).unwrap();
        assert!(!db.encrypted() && db.collection("secret-col").is_ok());
    }
}
