//! The database: a data directory holding one folder per collection, guarded by a
//! lock file, with a background thread doing flushes and compactions.

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
    /// Serialises create and drop.
    ddl: Mutex<()>,
    _lock: File,
    stop: Arc<(Mutex<bool>, Condvar)>,
    worker: Mutex<Option<std::thread::JoinHandle<()>>>,
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
    /// Open (creating if needed) the data directory and every collection in it.
    pub fn open(dir: &Path, options: CollectionOptions) -> Result<Arc<Database>> {
        fs::create_dir_all(dir.join("collections")).map_err(|e| Error::io(dir, e))?;
        let lock = acquire_lock(dir)?;
        let cdir = dir.join("collections");
        let mut collections = BTreeMap::new();
        for e in fs::read_dir(&cdir).map_err(|e| Error::io(&cdir, e))? {
            let e = e.map_err(|e| Error::io(&cdir, e))?;
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with('.') {
                // Half-created or half-dropped collection from a crash.
                tracing::info!(dir = %name, "removing leftover collection folder");
                let _ = fs::remove_dir_all(e.path());
                continue;
            }
            let c = Collection::open(&e.path(), options)?;
            collections.insert(name, Arc::new(c));
        }
        let db = Arc::new(Database {
            dir: dir.to_path_buf(),
            options,
            collections: RwLock::new(collections),
            ddl: Mutex::new(()),
            _lock: lock,
            stop: Arc::new((Mutex::new(false), Condvar::new())),
            worker: Mutex::new(None),
        });
        Ok(db)
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
        let cdir = self.dir.join("collections");
        let tmp = cdir.join(format!(".tmp-{}-{}", spec.name, uuid::Uuid::new_v4().simple()));
        let name = spec.name.clone();
        let c = Collection::create(&tmp, spec, self.options)?;
        drop(c);
        let final_dir = cdir.join(&name);
        fs::rename(&tmp, &final_dir).map_err(|e| Error::io(&final_dir, e))?;
        crate::codec::fsync_dir(&cdir)?;
        let c = Arc::new(Collection::open(&final_dir, self.options)?);
        self.collections.write().insert(name, c.clone());
        Ok(c)
    }

    pub fn drop_collection(&self, name: &str) -> Result<()> {
        let _g = self.ddl.lock();
        let c = self.collections.write().remove(name).ok_or_else(|| Error::CollectionNotFound(name.to_string()))?;
        c.dropped.store(true, Ordering::Release);
        // Wait for maintenance and in-flight writes to finish before moving files, taking
        // the locks in the order every other path does (maintenance, WAL, state).
        let _m = c.maintenance.lock();
        let _w = c.wal.lock();
        let cdir = self.dir.join("collections");
        let gone = cdir.join(format!(".dropped-{}-{}", name, uuid::Uuid::new_v4().simple()));
        fs::rename(&c.dir, &gone).map_err(|e| Error::io(&c.dir, e))?;
        crate::codec::fsync_dir(&cdir)?;
        if let Err(e) = fs::remove_dir_all(&gone) {
            tracing::warn!(dir = %gone.display(), error = %e, "could not remove dropped collection; it will be removed at next start");
        }
        Ok(())
    }

    pub fn collection(&self, name: &str) -> Result<Arc<Collection>> {
        self.collections.read().get(name).cloned().ok_or_else(|| Error::CollectionNotFound(name.to_string()))
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
