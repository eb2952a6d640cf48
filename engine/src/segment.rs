//! Segments: immutable batches of rows (ids, payloads, one vector per space) with a
//! FAISS index per space, persisted as one folder of enveloped files.
//!
//! The only mutable part of a segment is its deletion bitmap, which lives in the
//! collection manifest. A segment whose indexes are still being built is searched
//! exactly.

use crate::bitmap::Bitmap;
use crate::codec::crypto::Cipher;
use crate::codec::{self, Reader, Writer};
use crate::error::{Error, Result};
use crate::index::{AnnIndex, IndexTuning};
use crate::types::CollectionSpec;
use parking_lot::RwLock;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

const SEG_VERSION: u32 = 1;
/// An index file whose FAISS index was written without its stored vectors (they are the
/// segment's `vectors-*.bin`); versions that cannot restore them refuse the file.
const INDEX_NO_VECTORS: &[u8; 4] = b"FIDS";

pub struct Segment {
    pub id: u64,
    /// Unique in this process (ids repeat across collections and after a drop and
    /// re-create): what device caches key a segment's vectors by.
    pub uid: u64,
    pub ids: Vec<String>,
    pub payloads: Vec<serde_json::Value>,
    /// Row-major vectors, one buffer per space in the collection's space order (shared
    /// with the space's HNSW index, which searches them in place).
    pub vectors: Vec<Arc<Vec<f32>>>,
    pub deleted: RwLock<Bitmap>,
    /// One index per space; `None` while it is being built.
    pub indexes: RwLock<Vec<Option<Arc<AnnIndex>>>>,
    pub disk_bytes: AtomicU64,
    /// Rows whose payload matches a filter, for the last few filters (a segment's
    /// payloads never change, so the answer holds until the segment is replaced).
    /// Cross-modal search runs the same per-modality filters on every query.
    filter_cache: parking_lot::Mutex<Vec<(String, Arc<Bitmap>)>>,
}

/// Filters whose row sets a segment remembers.
const FILTER_CACHE_ENTRIES: usize = 16;
/// Longer filter descriptions (huge `in` lists) are not cached.
const FILTER_CACHE_MAX_KEY: usize = 4096;

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment").field("id", &self.id).field("rows", &self.ids.len()).finish()
    }
}

pub fn dir_name(id: u64) -> String {
    format!("seg-{id:012}")
}

impl Segment {
    pub fn new(
        id: u64,
        ids: Vec<String>,
        payloads: Vec<serde_json::Value>,
        vectors: Vec<impl Into<Arc<Vec<f32>>>>,
        deleted: Bitmap,
    ) -> Segment {
        let spaces = vectors.len();
        static NEXT_UID: AtomicU64 = AtomicU64::new(1);
        Segment {
            id,
            uid: NEXT_UID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            ids,
            payloads,
            vectors: vectors.into_iter().map(Into::into).collect(),
            deleted: RwLock::new(deleted),
            indexes: RwLock::new(vec![None; spaces]),
            disk_bytes: AtomicU64::new(0),
            filter_cache: parking_lot::Mutex::new(Vec::new()),
        }
    }

    /// Rows whose payload matches `f`, deleted or not (cached per filter).
    pub fn matching(&self, f: &crate::filter::Filter) -> Arc<Bitmap> {
        let key = format!("{f:?}");
        if let Some((_, b)) = self.filter_cache.lock().iter().find(|(k, _)| *k == key) {
            return b.clone();
        }
        let mut b = Bitmap::new(self.rows());
        for (row, p) in self.payloads.iter().enumerate() {
            if f.matches(p) {
                b.set(row);
            }
        }
        let b = Arc::new(b);
        if key.len() <= FILTER_CACHE_MAX_KEY {
            let mut c = self.filter_cache.lock();
            if !c.iter().any(|(k, _)| *k == key) {
                if c.len() >= FILTER_CACHE_ENTRIES {
                    c.remove(0);
                }
                c.push((key, b.clone()));
            }
        }
        b
    }

    pub fn rows(&self) -> usize {
        self.ids.len()
    }

    pub fn live_rows(&self) -> usize {
        self.rows() - self.deleted.read().count_ones()
    }

    pub fn vector(&self, space: usize, dim: usize, row: usize) -> &[f32] {
        &self.vectors[space][row * dim..(row + 1) * dim]
    }

    /// Build every missing index (slow; call without holding collection locks).
    pub fn build_indexes(&self, spec: &CollectionSpec, tuning: IndexTuning) -> Result<()> {
        for (s, space) in spec.spaces.iter().enumerate() {
            if self.indexes.read()[s].is_some() {
                continue;
            }
            let mut ix = AnnIndex::build(&space.index, space.dim, space.metric, &self.vectors[s], tuning)?;
            ix.share_storage(self.vectors[s].clone())?;
            self.indexes.write()[s] = Some(Arc::new(ix));
        }
        Ok(())
    }

    /// Write the segment under `segments_dir/seg-N` (via a temporary folder and an
    /// atomic rename). Indexes must be built. Every file is encrypted when `cipher` is
    /// set, bound to its segment and file name.
    pub fn persist(&self, segments_dir: &Path, spec: &CollectionSpec, cipher: Option<&Cipher>) -> Result<()> {
        let final_dir = segments_dir.join(dir_name(self.id));
        let tmp = segments_dir.join(format!("{}.tmp", dir_name(self.id)));
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        }
        fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let indexes = self.indexes.read().clone();
        let mut total = 0u64;
        let mut put = |name: &str, kind: &[u8; 4], body: &[u8]| -> Result<()> {
            let p = tmp.join(name);
            let context = format!("{}/{name}", dir_name(self.id));
            let sealed = codec::seal_crypt(kind, SEG_VERSION, body, cipher, &context);
            total += sealed.len() as u64;
            write_synced(&p, &sealed)
        };

        let mut meta = Writer::default();
        meta.u64(self.id);
        meta.u64(self.rows() as u64);
        meta.u32(spec.spaces.len() as u32);
        for (s, space) in spec.spaces.iter().enumerate() {
            meta.str(&space.name);
            meta.u32(space.dim as u32);
            let kind = indexes[s].as_ref().map(|ix| ix.kind.clone()).ok_or_else(|| {
                Error::Faiss(format!("segment {} space '{}' has no index to persist", self.id, space.name))
            })?;
            meta.str(&kind);
        }
        put("meta.bin", b"SEGM", &meta.0)?;

        let mut w = Writer::default();
        w.u64(self.ids.len() as u64);
        for id in &self.ids {
            w.str(id);
        }
        put("ids.bin", b"IDS ", &w.0)?;

        let mut w = Writer::default();
        w.u64(self.payloads.len() as u64);
        for p in &self.payloads {
            w.str(&p.to_string());
        }
        put("payloads.bin", b"PAYL", &w.0)?;

        for (s, space) in spec.spaces.iter().enumerate() {
            let mut w = Writer::with_capacity(self.vectors[s].len() * 4 + 16);
            w.u32(space.dim as u32);
            w.f32s(&self.vectors[s]);
            put(&format!("vectors-{}.bin", space.name), b"VECS", &w.0)?;
            let ix = indexes[s].as_ref().expect("checked above");
            // Without the vectors just written when the index searches them in place.
            let (bytes, skipped) = ix.to_segment_bytes()?;
            put(&format!("index-{}.faiss", space.name), if skipped { INDEX_NO_VECTORS } else { b"FIDX" }, &bytes)?;
        }
        codec::fsync_dir(&tmp)?;
        if final_dir.exists() {
            fs::remove_dir_all(&final_dir).map_err(|e| Error::io(&final_dir, e))?;
        }
        fs::rename(&tmp, &final_dir).map_err(|e| Error::io(&final_dir, e))?;
        codec::fsync_dir(segments_dir)?;
        self.disk_bytes.store(total, Ordering::Relaxed);
        Ok(())
    }

    /// Load `segments_dir/seg-N`, checking every file.
    pub fn load(
        segments_dir: &Path,
        id: u64,
        spec: &CollectionSpec,
        deleted: Bitmap,
        tuning: IndexTuning,
        cipher: Option<&Cipher>,
    ) -> Result<Segment> {
        let dir = segments_dir.join(dir_name(id));
        let mut total = 0u64;
        let mut read = |name: &str, kind: &[u8; 4]| -> Result<(PathBuf, Vec<u8>)> {
            let p = dir.join(name);
            let context = format!("{}/{name}", dir_name(id));
            let (_, body) = codec::read_file_crypt(&p, kind, SEG_VERSION, cipher, &context)?;
            total += body.len() as u64 + 24 + if cipher.is_some() { crate::codec::crypto::OVERHEAD as u64 } else { 0 };
            Ok((p, body))
        };
        let bad = |p: &Path, e: String| Error::corrupted(p, e);

        let (p, meta) = read("meta.bin", b"SEGM")?;
        let mut r = Reader::new(&meta);
        let (mid, rows, nspaces) =
            (|| Ok::<_, String>((r.u64()?, r.u64()? as usize, r.u32()? as usize)))().map_err(|e| bad(&p, e))?;
        if mid != id || nspaces != spec.spaces.len() {
            return Err(bad(
                &p,
                format!(
                    "segment header says id {mid} with {nspaces} spaces; manifest expects id {id} with {}",
                    spec.spaces.len()
                ),
            ));
        }
        let mut kinds = Vec::new();
        for space in &spec.spaces {
            let (name, dim, kind) =
                (|| Ok::<_, String>((r.str()?.to_string(), r.u32()? as usize, r.str()?.to_string())))()
                    .map_err(|e| bad(&p, e))?;
            if name != space.name || dim != space.dim {
                return Err(bad(
                    &p,
                    format!(
                        "space '{name}' dim {dim} does not match the collection's '{}' dim {}",
                        space.name, space.dim
                    ),
                ));
            }
            kinds.push(kind);
        }
        if deleted.len() != rows {
            return Err(Error::corrupted(
                segments_dir.join(dir_name(id)),
                format!("manifest deletion bitmap has {} rows, segment has {rows}", deleted.len()),
            ));
        }

        let (p, body) = read("ids.bin", b"IDS ")?;
        let mut r = Reader::new(&body);
        let ids = (|| {
            let n = r.u64()? as usize;
            if n != rows {
                return Err(format!("{n} ids, expected {rows}"));
            }
            (0..n).map(|_| r.str().map(str::to_string)).collect::<std::result::Result<Vec<_>, _>>()
        })()
        .map_err(|e| bad(&p, e))?;

        let (p, body) = read("payloads.bin", b"PAYL")?;
        let mut r = Reader::new(&body);
        let payloads = (|| {
            let n = r.u64()? as usize;
            if n != rows {
                return Err(format!("{n} payloads, expected {rows}"));
            }
            (0..n)
                .map(|i| r.str().and_then(|s| serde_json::from_str(s).map_err(|e| format!("payload {i}: {e}"))))
                .collect::<std::result::Result<Vec<serde_json::Value>, _>>()
        })()
        .map_err(|e| bad(&p, e))?;

        let mut vectors = Vec::new();
        let mut indexes = Vec::new();
        for (s, space) in spec.spaces.iter().enumerate() {
            let (p, body) = read(&format!("vectors-{}.bin", space.name), b"VECS")?;
            let mut r = Reader::new(&body);
            let v = (|| {
                let dim = r.u32()? as usize;
                let v = r.f32s()?;
                if dim != space.dim || v.len() != rows * dim {
                    return Err(format!("{} floats of dim {dim}, expected {rows} rows of dim {}", v.len(), space.dim));
                }
                Ok(v)
            })()
            .map_err(|e| bad(&p, e))?;
            let v = Arc::new(v);
            vectors.push(v.clone());
            let name = format!("index-{}.faiss", space.name);
            // FIDX: written with its vectors (not an HNSW, or by an earlier version).
            let kind = if file_kind(&dir.join(&name)) == Some(*INDEX_NO_VECTORS) { INDEX_NO_VECTORS } else { b"FIDX" };
            let (p, body) = read(&name, kind)?;
            let ix = AnnIndex::from_segment_bytes(&body, &kinds[s], space.dim, tuning, v)
                .map_err(|e| bad(&p, e.to_string()))?;
            if ix.len() != rows {
                return Err(bad(&p, format!("index holds {} vectors, segment has {rows} rows", ix.len())));
            }
            indexes.push(Some(Arc::new(ix)));
        }
        let seg = Segment::new(id, ids, payloads, vectors, deleted);
        *seg.indexes.write() = indexes;
        seg.disk_bytes.store(total, Ordering::Relaxed);
        Ok(seg)
    }
}

/// The envelope kind of a file (bytes 4..8, never encrypted), if it can be read.
fn file_kind(path: &Path) -> Option<[u8; 4]> {
    use std::io::Read;
    let mut head = [0u8; 8];
    fs::File::open(path).ok()?.read_exact(&mut head).ok()?;
    Some([head[4], head[5], head[6], head[7]])
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut f = fs::File::create(path).map_err(|e| Error::io(path, e))?;
    f.write_all(bytes).map_err(|e| Error::io(path, e))?;
    f.sync_all().map_err(|e| Error::io(path, e))
}
