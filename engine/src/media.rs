//! The original bytes of ingested files, kept beside a collection (`<collection>/media/`)
//! so a client can show what a hit came from (a thumbnail, the recording at the matched
//! time). Content-addressed by SHA-256: the same file ingested twice is stored once, a
//! file is read back only if its bytes still hash to its name, and it is encrypted with
//! the data key when the data directory is. Dropping the collection removes them.

use std::fs;
use std::path::PathBuf;

use sha2::{Digest, Sha256};

use crate::collection::Collection;
use crate::error::{Error, Result};

/// Whether `sha` names kept media: 64 lowercase hex digits.
pub fn is_sha256(sha: &str) -> bool {
    sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

impl Collection {
    fn media_path(&self, sha: &str) -> Result<PathBuf> {
        if !is_sha256(sha) {
            return Err(Error::invalid(format!("'{sha}' is not a SHA-256 (64 lowercase hex digits)")));
        }
        Ok(self.dir.join("media").join(sha))
    }

    fn media_aad(&self, sha: &str) -> Vec<u8> {
        format!("agentdb-media:{}:{sha}", self.spec.name).into_bytes()
    }

    /// Keep `bytes` (an ingested file) under its SHA-256; a no-op when already kept.
    /// Returns the hash.
    pub fn put_media(&self, bytes: &[u8]) -> Result<String> {
        self.check_open()?;
        let sha = hex(&Sha256::digest(bytes));
        let path = self.media_path(&sha)?;
        if path.exists() {
            return Ok(sha);
        }
        let dir = self.dir.join("media");
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let body = match &self.options.cipher {
            Some(c) => c.encrypt(&self.media_aad(&sha), bytes),
            None => bytes.to_vec(),
        };
        // A temporary file of its own (the same file may be ingested by two requests at
        // once), then an atomic rename; losing the race to the other writer is fine.
        let tmp = dir.join(format!(".tmp-{sha}-{}", uuid::Uuid::new_v4().simple()));
        {
            use std::io::Write;
            let mut f = fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
            f.write_all(&body).map_err(|e| Error::io(&tmp, e))?;
            f.sync_all().map_err(|e| Error::io(&tmp, e))?;
        }
        if let Err(e) = fs::rename(&tmp, &path) {
            let _ = fs::remove_file(&tmp);
            if !path.exists() {
                return Err(Error::io(&path, e));
            }
        }
        crate::codec::fsync_dir(&dir)?;
        Ok(sha)
    }

    /// The kept file with this SHA-256, `None` when it was not kept. A file whose bytes
    /// no longer match its hash (damage on disk) is an error, not returned.
    pub fn media(&self, sha: &str) -> Result<Option<Vec<u8>>> {
        self.check_open()?;
        let path = self.media_path(sha)?;
        let body = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&path, e)),
        };
        let bytes = match &self.options.cipher {
            Some(c) => c.decrypt(&self.media_aad(sha), &body).map_err(|e| Error::corrupted(&path, e))?,
            None => body,
        };
        if hex(&Sha256::digest(&bytes)) != sha {
            return Err(Error::corrupted(&path, "the kept file's bytes do not match its SHA-256"));
        }
        Ok(Some(bytes))
    }

    /// Bytes the kept files take on disk (temporary files of interrupted writes too).
    pub fn media_bytes(&self) -> u64 {
        fs::read_dir(self.dir.join("media"))
            .map(|d| d.filter_map(|e| e.ok()?.metadata().ok()).map(|m| m.len()).sum())
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use crate::collection::CollectionOptions;
    use crate::types::{CollectionSpec, Item};
    use crate::Database;

    fn spec() -> CollectionSpec {
        serde_json::from_value(serde_json::json!({
            "name": "m",
            "spaces": [{"name": "v", "dim": 2, "metric": "cosine", "index": "Flat"}]
        }))
        .unwrap()
    }

    #[test]
    fn media_round_trip_dedup_and_damage() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path(), CollectionOptions::default()).unwrap();
        let c = db.create_collection(spec()).unwrap();
        let sha = c.put_media(b"hello media").unwrap();
        assert_eq!(sha.len(), 64);
        assert_eq!(c.media(&sha).unwrap().as_deref(), Some(&b"hello media"[..]));
        assert_eq!(c.put_media(b"hello media").unwrap(), sha);
        // The same new file from many requests at once: every one succeeds, one copy.
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| assert_eq!(c.put_media(b"raced bytes").unwrap().len(), 64));
            }
        });
        let names: Vec<String> = std::fs::read_dir(dir.path().join("collections/m/media"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        assert_eq!(names.len(), 2, "no temporary file left behind: {names:?}");
        assert!(c.media(&"0".repeat(64)).unwrap().is_none());
        let e = c.media("../../etc/passwd").unwrap_err().to_string();
        assert!(e.contains("not a SHA-256"), "{e}");
        std::fs::write(dir.path().join("collections/m/media").join(&sha), b"tampered").unwrap();
        let e = c.media(&sha).unwrap_err().to_string();
        assert!(e.contains("do not match"), "{e}");
    }

    #[test]
    fn scroll_pages_in_id_order_with_filter_deletes_and_replacements() {
        let dir = tempfile::tempdir().unwrap();
        let opts = CollectionOptions { flush_rows: 7, ..Default::default() };
        let db = Database::open(dir.path(), opts).unwrap();
        let c = db.create_collection(spec()).unwrap();
        let items: Vec<Item> = (0..40)
            .map(|i| Item {
                id: format!("id{i:03}"),
                vectors: [("v".to_string(), vec![1.0, i as f32])].into(),
                payload: serde_json::json!({"even": i % 2 == 0, "i": i}),
            })
            .collect();
        for chunk in items.chunks(9) {
            c.upsert(chunk.to_vec()).unwrap();
        }
        // Replace some (a newer row in another source) and delete others.
        c.upsert(items[3..6].to_vec()).unwrap();
        c.delete(&["id010".to_string(), "id011".to_string()]).unwrap();
        let mut seen = Vec::new();
        let mut after = String::new();
        loop {
            let (page, next) = c.scroll(None, &after, 6, false).unwrap();
            assert!(page.len() <= 6);
            seen.extend(page.iter().map(|i| i.id.clone()));
            match next {
                Some(n) => after = n,
                None => break,
            }
        }
        let want: Vec<String> = (0..40).filter(|i| *i != 10 && *i != 11).map(|i| format!("id{i:03}")).collect();
        assert_eq!(seen, want);
        let f = crate::filter::parse("even = true").unwrap();
        let (page, next) = c.scroll(Some(&f), "id030", 100, true).unwrap();
        let ids: Vec<&str> = page.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["id032", "id034", "id036", "id038"]);
        assert!(next.is_none());
        let v = &page[0].vectors["v"]; // cosine spaces store unit vectors
        assert!((v[1] / v[0] - 32.0).abs() < 1e-3, "{v:?}");
        assert_eq!(page[0].payload["i"], 32);
        assert!(c.scroll(None, "", 0, false).unwrap_err().to_string().contains("between 1 and"));
    }
}
