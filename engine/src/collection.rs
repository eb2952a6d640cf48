//! A collection: the write path (validate → WAL → apply), reads, and recovery.
//!
//! Concurrency: writers take the WAL mutex, append and fsync, then apply to the
//! in-memory state under its write lock before releasing the WAL, so state order is
//! log order. Readers hold the state read lock for a whole request, so a search never
//! sees an item twice or half-replaced.

use crate::bitmap::Bitmap;
use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::index::IndexTuning;
use crate::keyword::{FieldWeights, KeywordHit, KeywordIndex};
use crate::manifest::Manifest;
use crate::segment::Segment;
use crate::types::*;
use crate::wal::{Wal, WalItem, WalRecord};
use parking_lot::{Mutex, RwLock};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Request-size limits enforced by the engine (the server adds message-size limits).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub max_batch: usize,
    pub max_payload_bytes: usize,
    pub max_payload_depth: usize,
    pub max_top_k: usize,
    pub max_id_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_batch: 10_000,
            max_payload_bytes: 1 << 20,
            max_payload_depth: 32,
            max_top_k: 10_000,
            max_id_len: 256,
        }
    }
}

/// Tuning for storage and search.
#[derive(Debug, Clone)]
pub struct CollectionOptions {
    /// Seal the write buffer into an indexed segment at this many rows...
    pub flush_rows: usize,
    /// ...or when it has held rows this long.
    pub flush_interval: Duration,
    /// During a bulk load, full write buffers are sealed without an index until this
    /// many rows (at most ten buffers) wait, searched exactly meanwhile, then indexed
    /// together once (see `Collection::maintain`). 0 indexes each sealed buffer at once.
    pub index_defer_rows: usize,
    /// Merge the smallest segments when there are more than this.
    pub max_segments: usize,
    /// Rewrite a segment once this share of its rows is deleted.
    pub compact_deleted_ratio: f64,
    /// Search exactly (no ANN index) when at most this many rows are candidates.
    pub exact_threshold: usize,
    pub tuning: IndexTuning,
    pub limits: Limits,
    /// The data key when the data directory is encrypted (set by `Database::open_with_key`
    /// from the KEYRING); `None` reads and writes plaintext files.
    pub cipher: Option<Arc<crate::codec::crypto::Cipher>>,
    /// Exact search on another device (the GPU) for sealed segments of `Flat` spaces
    /// and exact searches; `None` searches on the CPU.
    pub accelerator: Option<Arc<dyn crate::accel::ExactAccelerator>>,
}

impl Default for CollectionOptions {
    fn default() -> Self {
        CollectionOptions {
            flush_rows: 20_000,
            flush_interval: Duration::from_secs(30),
            index_defer_rows: 200_000,
            max_segments: 8,
            compact_deleted_ratio: 0.2,
            exact_threshold: 2_048,
            tuning: IndexTuning::default(),
            limits: Limits::default(),
            cipher: None,
            accelerator: None,
        }
    }
}

/// The growing buffer of rows written since the last flush (searched exactly).
pub(crate) struct MemTable {
    pub id: u64,
    pub ids: Vec<String>,
    pub payloads: Vec<serde_json::Value>,
    pub vectors: Vec<Vec<f32>>,
    pub deleted: Bitmap,
    pub since: Option<Instant>,
}

impl MemTable {
    pub(crate) fn new(id: u64, spaces: usize) -> Self {
        MemTable {
            id,
            ids: Vec::new(),
            payloads: Vec::new(),
            vectors: vec![Vec::new(); spaces],
            deleted: Bitmap::new(0),
            since: None,
        }
    }
    pub fn rows(&self) -> usize {
        self.ids.len()
    }
    pub(crate) fn into_segment(self) -> Segment {
        Segment::new(self.id, self.ids, self.payloads, self.vectors, self.deleted)
    }
}

pub(crate) struct State {
    pub mem: MemTable,
    pub segments: BTreeMap<u64, Arc<Segment>>,
    /// Live id -> (segment or memtable id, row).
    pub locations: HashMap<String, (u64, u32)>,
    pub next_segment_id: u64,
    /// The checkpoint recorded in the manifest on disk.
    pub checkpoint: u64,
    /// Segments sealed but not yet in the manifest, with the checkpoint they complete.
    pub unpersisted: Vec<(u64, u64)>,
}

impl State {
    fn mark_deleted(&mut self, loc: (u64, u32)) {
        if loc.0 == self.mem.id {
            self.mem.deleted.set(loc.1 as usize);
        } else if let Some(seg) = self.segments.get(&loc.0) {
            seg.deleted.write().set(loc.1 as usize);
        }
    }

    fn apply_upsert(&mut self, items: Vec<(String, Vec<Vec<f32>>, serde_json::Value)>) {
        if self.mem.since.is_none() && !items.is_empty() {
            self.mem.since = Some(Instant::now());
        }
        for (id, vectors, payload) in items {
            let row = self.mem.rows() as u32;
            if let Some(old) = self.locations.insert(id.clone(), (self.mem.id, row)) {
                self.mark_deleted(old);
            }
            self.mem.ids.push(id);
            self.mem.payloads.push(payload);
            for (s, v) in vectors.into_iter().enumerate() {
                self.mem.vectors[s].extend_from_slice(&v);
            }
            self.mem.deleted.push(false);
        }
    }

    fn apply_delete(&mut self, ids: &[String]) -> usize {
        let mut n = 0;
        for id in ids {
            if let Some(loc) = self.locations.remove(id) {
                self.mark_deleted(loc);
                n += 1;
            }
        }
        n
    }

    /// Rows of every source (memtable first), for reads.
    pub fn sources(&self) -> Vec<Source<'_>> {
        let mut v = vec![Source::Mem(&self.mem)];
        v.extend(self.segments.values().map(Source::Seg));
        v
    }
}

/// Uniform read access to the memtable and to segments.
pub(crate) enum Source<'a> {
    Mem(&'a MemTable),
    Seg(&'a Arc<Segment>),
}

impl Source<'_> {
    pub fn id(&self) -> u64 {
        match self {
            Source::Mem(m) => m.id,
            Source::Seg(s) => s.id,
        }
    }
    pub fn rows(&self) -> usize {
        match self {
            Source::Mem(m) => m.rows(),
            Source::Seg(s) => s.rows(),
        }
    }
    pub fn ids(&self) -> &[String] {
        match self {
            Source::Mem(m) => &m.ids,
            Source::Seg(s) => &s.ids,
        }
    }
    pub fn payloads(&self) -> &[serde_json::Value] {
        match self {
            Source::Mem(m) => &m.payloads,
            Source::Seg(s) => &s.payloads,
        }
    }
    pub fn vectors(&self, space: usize) -> &[f32] {
        match self {
            Source::Mem(m) => &m.vectors[space],
            Source::Seg(s) => &s.vectors[space],
        }
    }
    /// Rows that are live and pass `filter`; `None` means every row qualifies.
    pub fn allowed(&self, filter: Option<&Filter>) -> Option<Bitmap> {
        if let (Source::Seg(s), Some(f)) = (self, filter) {
            // Immutable payloads: the rows matching `f` are cached on the segment.
            let matched = s.matching(f);
            let deleted = s.deleted.read();
            let mut allowed = Bitmap::new(self.rows());
            for row in matched.iter_ones() {
                if !deleted.get(row) {
                    allowed.set(row);
                }
            }
            return Some(allowed);
        }
        let guard;
        let deleted = match self {
            Source::Mem(m) => &m.deleted,
            Source::Seg(s) => {
                guard = s.deleted.read();
                &*guard
            }
        };
        if filter.is_none() && deleted.count_ones() == 0 {
            return None;
        }
        let payloads = self.payloads();
        let mut allowed = Bitmap::new(self.rows());
        for (row, p) in payloads.iter().enumerate() {
            if !deleted.get(row) && filter.is_none_or(|f| f.matches(p)) {
                allowed.set(row);
            }
        }
        Some(allowed)
    }
}

/// Counters for metrics, since the collection was opened.
#[derive(Debug, Default)]
pub struct CollectionStats {
    pub flushes: std::sync::atomic::AtomicU64,
    pub compactions: std::sync::atomic::AtomicU64,
    pub upserted: std::sync::atomic::AtomicU64,
    pub deleted: std::sync::atomic::AtomicU64,
    pub searches: std::sync::atomic::AtomicU64,
    /// Rows put into new segment indexes (flushes and merges): a bulk load followed by
    /// an optimize adds each row once.
    pub indexed_rows: std::sync::atomic::AtomicU64,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub flushes: u64,
    pub compactions: u64,
    pub upserted: u64,
    pub deleted: u64,
    pub searches: u64,
    pub indexed_rows: u64,
}

impl CollectionStats {
    pub fn snapshot(&self) -> StatsSnapshot {
        let l = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        StatsSnapshot {
            flushes: l(&self.flushes),
            compactions: l(&self.compactions),
            upserted: l(&self.upserted),
            deleted: l(&self.deleted),
            searches: l(&self.searches),
            indexed_rows: l(&self.indexed_rows),
        }
    }
}

pub struct Collection {
    pub spec: CollectionSpec,
    pub stats: CollectionStats,
    pub(crate) dir: PathBuf,
    pub(crate) options: CollectionOptions,
    pub(crate) wal: Mutex<Wal>,
    pub(crate) state: RwLock<State>,
    /// One flush or compaction at a time.
    pub(crate) maintenance: Mutex<()>,
    pub(crate) dropped: AtomicBool,
    /// BM25 over the items' text, derived from the live items (see `keyword.rs`).
    pub(crate) keyword: Option<crate::keyword::KeywordIndex>,
    /// Takes over this collection's writes when set ([`WriteHook`]: edge sync).
    pub(crate) hook: RwLock<Option<Arc<dyn WriteHook>>>,
}

impl std::fmt::Debug for Collection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collection").field("name", &self.spec.name).field("dir", &self.dir).finish()
    }
}

/// A write hook: something beside the engine (edge sync, `agentdb-edge`) that takes over
/// the writes of chosen collections — to stamp them with a version, record them for
/// replication and merge them with concurrent writes — before they reach the WAL through
/// [`Collection::upsert_direct`] and [`Collection::delete_direct`]. Every write path of
/// the server (gRPC, REST, MCP, ingestion, workflows) goes through `Collection::upsert`,
/// `delete` and `delete_by_filter`, so a hook sees them all. The engine knows nothing of
/// what the hook does.
pub trait WriteHook: Send + Sync {
    /// Whether this hook takes the writes of the collection `name`.
    fn wants(&self, name: &str) -> bool;
    /// An upsert to `col`: validated by the hook through [`Collection::validate_items`]
    /// and applied through [`Collection::upsert_direct`]; the ids in order.
    fn upsert(&self, col: &Collection, items: Vec<Item>) -> Result<Vec<String>>;
    /// A delete of `ids` (by id, or the matches of a filter); how many existed.
    fn delete(&self, col: &Collection, ids: &[String]) -> Result<usize>;
}

/// An upsert that passed validation, ready for the log.
struct Prepared {
    items: Vec<WalItem>,
    payloads: Vec<serde_json::Value>,
}

fn json_depth(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::Array(a) => 1 + a.iter().map(json_depth).max().unwrap_or(0),
        serde_json::Value::Object(o) => 1 + o.values().map(json_depth).max().unwrap_or(0),
        _ => 0,
    }
}

pub(crate) fn normalize(v: &mut [f32]) -> bool {
    let n = v.iter().map(|x| (*x as f64) * (*x as f64)).sum::<f64>().sqrt();
    if n == 0.0 || !n.is_finite() {
        return false;
    }
    // Already unit length (to f32 precision): left as it is, so normalising is idempotent
    // and a stored vector written again stays bit for bit the same (edge sync compares
    // replicas by digest).
    if (n - 1.0).abs() < 1e-7 {
        return true;
    }
    for x in v.iter_mut() {
        *x = (*x as f64 / n) as f32;
    }
    true
}

impl Collection {
    /// Rows a search scans exactly rather than through an index: the write buffer and
    /// segments whose index is still being built (the cost of a search beyond its
    /// index lookups).
    pub fn exact_rows(&self) -> usize {
        let st = self.state.read();
        st.mem.rows()
            + st.segments
                .values()
                .filter(|s| s.indexes.read().iter().any(Option::is_none))
                .map(|s| s.live_rows())
                .sum::<usize>()
    }

    pub(crate) fn segments_dir(&self) -> PathBuf {
        self.dir.join("segments")
    }

    /// Create the on-disk layout for a new collection in `dir` (which must not exist).
    pub fn create(dir: &Path, spec: CollectionSpec, options: CollectionOptions) -> Result<Collection> {
        spec.validate()?;
        std::fs::create_dir_all(dir.join("segments")).map_err(|e| Error::io(dir, e))?;
        Manifest::new(spec).write(dir, options.cipher.as_deref())?;
        Self::open(dir, options)
    }

    /// Open an existing collection: load the manifest and segments, replay the WAL.
    pub fn open(dir: &Path, options: CollectionOptions) -> Result<Collection> {
        let manifest = Manifest::read(dir, options.cipher.as_deref())?;
        let spec = manifest.spec.clone();
        // A stored index description is checked like a new one (grammar and bounds,
        // no FAISS call): one that FAISS would crash on at the next flush makes the
        // collection unservable instead of crashing the server again at every start.
        for s in &spec.spaces {
            crate::index_desc::validate(&s.index, s.dim, s.metric).map_err(|e| {
                Error::invalid(format!(
                    "{}: space '{}' has an index description this version refuses: {e}",
                    dir.join(crate::manifest::FILE).display(),
                    s.name
                ))
            })?;
        }
        let segments_dir = dir.join("segments");
        std::fs::create_dir_all(&segments_dir).map_err(|e| Error::io(&segments_dir, e))?;
        // Leftovers of a flush or compaction that crashed before the manifest switch.
        let keep: std::collections::HashSet<String> =
            manifest.segments.iter().map(|(id, _)| crate::segment::dir_name(*id)).collect();
        for e in std::fs::read_dir(&segments_dir).map_err(|e| Error::io(&segments_dir, e))?.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if !keep.contains(&name) {
                tracing::info!(collection = %spec.name, dir = %name, "removing segment folder not in the manifest");
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        use rayon::prelude::*;
        let loaded: Vec<Result<Segment>> = manifest
            .segments
            .par_iter()
            .map(|(id, del)| {
                Segment::load(&segments_dir, *id, &spec, del.clone(), options.tuning, options.cipher.as_deref())
            })
            .collect();
        let mut segments = BTreeMap::new();
        let mut locations = HashMap::new();
        for seg in loaded {
            let seg = Arc::new(seg?);
            segments.insert(seg.id, seg);
        }
        for seg in segments.values() {
            let deleted = seg.deleted.read().clone();
            for (row, id) in seg.ids.iter().enumerate() {
                if !deleted.get(row) {
                    if let Some((old_seg, old_row)) = locations.insert(id.clone(), (seg.id, row as u32)) {
                        // Should not happen; keep the newer segment's row.
                        tracing::warn!(id = %id, "id live in two segments; keeping the newer");
                        if let Some(s) = segments.get(&old_seg) {
                            s.deleted.write().set(old_row as usize);
                        }
                    }
                }
            }
        }
        let mem_id = manifest.next_segment_id;
        let mut state = State {
            mem: MemTable::new(mem_id, spec.spaces.len()),
            segments,
            locations,
            next_segment_id: mem_id + 1,
            checkpoint: manifest.checkpoint_lsn,
            unpersisted: Vec::new(),
        };
        let (wal, replay) = Wal::open(&dir.join("wal"), manifest.checkpoint_lsn, options.cipher.clone())?;
        let replayed = replay.len();
        for (lsn, rec) in replay {
            match rec {
                WalRecord::Upsert(items) => {
                    let mut out = Vec::with_capacity(items.len());
                    for it in items {
                        if it.vectors.len() != spec.spaces.len() {
                            return Err(Error::corrupted(
                                dir.join("wal"),
                                format!(
                                    "record {lsn}: item has {} vectors, collection has {} spaces",
                                    it.vectors.len(),
                                    spec.spaces.len()
                                ),
                            ));
                        }
                        let payload = serde_json::from_str(&it.payload_json)
                            .map_err(|e| Error::corrupted(dir.join("wal"), format!("record {lsn}: payload: {e}")))?;
                        out.push((it.id, it.vectors, payload));
                    }
                    state.apply_upsert(out);
                }
                WalRecord::Delete(ids) => {
                    state.apply_delete(&ids);
                }
            }
        }
        let keyword = build_keyword_index(&spec, &state)?;
        tracing::info!(collection = %spec.name, segments = state.segments.len(), items = state.locations.len(), wal_records_replayed = replayed, "collection opened");
        Ok(Collection {
            spec,
            dir: dir.to_path_buf(),
            options,
            wal: Mutex::new(wal),
            state: RwLock::new(state),
            maintenance: Mutex::new(()),
            dropped: AtomicBool::new(false),
            stats: CollectionStats::default(),
            keyword,
            hook: RwLock::new(None),
        })
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    pub fn options(&self) -> &CollectionOptions {
        &self.options
    }

    pub(crate) fn check_open(&self) -> Result<()> {
        if self.dropped.load(Ordering::Acquire) {
            return Err(Error::CollectionNotFound(self.spec.name.clone()));
        }
        Ok(())
    }

    /// Validate a vector for `space` and bring it into stored form.
    pub fn prepare_vector(&self, space: &SpaceSpec, mut v: Vec<f32>, what: &str) -> Result<Vec<f32>> {
        if v.len() != space.dim {
            return Err(Error::DimensionMismatch { space: space.name.clone(), expected: space.dim, got: v.len() });
        }
        if let Some(i) = v.iter().position(|x| !x.is_finite()) {
            return Err(Error::invalid(format!(
                "{what}: vector for space '{}' has a non-finite value ({}) at index {i}",
                space.name, v[i]
            )));
        }
        if space.metric == Metric::Cosine && !normalize(&mut v) {
            return Err(Error::invalid(format!("{what}: zero vector for cosine space '{}'", space.name)));
        }
        Ok(v)
    }

    fn prepare(&self, items: Vec<Item>) -> Result<Prepared> {
        let lim = &self.options.limits;
        if items.is_empty() {
            return Err(Error::invalid("upsert needs at least one item"));
        }
        if items.len() > lim.max_batch {
            return Err(Error::LimitExceeded(format!(
                "batch of {} items exceeds the limit of {} per request",
                items.len(),
                lim.max_batch
            )));
        }
        let mut out = Prepared { items: Vec::with_capacity(items.len()), payloads: Vec::with_capacity(items.len()) };
        for (i, mut it) in items.into_iter().enumerate() {
            if it.id.is_empty() {
                it.id = uuid::Uuid::new_v4().to_string();
            }
            if it.id.len() > lim.max_id_len {
                return Err(Error::invalid(format!(
                    "item {i}: id is {} bytes, the limit is {}",
                    it.id.len(),
                    lim.max_id_len
                )));
            }
            if it.id.chars().any(char::is_control) {
                return Err(Error::invalid(format!("item {i}: id contains control characters")));
            }
            let what = format!("item {i} ('{}')", it.id);
            let mut vectors = Vec::with_capacity(self.spec.spaces.len());
            let mut given = std::mem::take(&mut it.vectors);
            if self.spec.spaces.len() == 1 {
                if let Some(v) = given.remove("") {
                    given.insert(self.spec.spaces[0].name.clone(), v);
                }
            }
            for space in &self.spec.spaces {
                let v = given
                    .remove(&space.name)
                    .ok_or_else(|| Error::invalid(format!("{what}: missing vector for space '{}'", space.name)))?;
                vectors.push(self.prepare_vector(space, v, &what)?);
            }
            if let Some(extra) = given.keys().next() {
                return Err(Error::SpaceNotFound {
                    collection: self.spec.name.clone(),
                    space: extra.clone(),
                    known: self.spec.spaces.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", "),
                });
            }
            let payload = match it.payload {
                serde_json::Value::Null => serde_json::Value::Object(Default::default()),
                p @ serde_json::Value::Object(_) => p,
                _ => return Err(Error::invalid(format!("{what}: payload must be a JSON object"))),
            };
            if json_depth(&payload) > lim.max_payload_depth {
                return Err(Error::invalid(format!(
                    "{what}: payload nesting deeper than {} levels",
                    lim.max_payload_depth
                )));
            }
            let payload_json = payload.to_string();
            if payload_json.len() > lim.max_payload_bytes {
                return Err(Error::LimitExceeded(format!(
                    "{what}: payload is {} bytes, the limit is {}",
                    payload_json.len(),
                    lim.max_payload_bytes
                )));
            }
            out.items.push(WalItem { id: it.id, vectors, payload_json });
            out.payloads.push(payload);
        }
        Ok(out)
    }

    /// Insert or replace items. Returns the ids (generated where none was given) once
    /// the write is durable. A write hook, where one is set, takes the write over.
    pub fn upsert(&self, items: Vec<Item>) -> Result<Vec<String>> {
        if let Some(h) = self.write_hook() {
            self.check_open()?;
            return h.upsert(self, items);
        }
        self.upsert_direct(items)
    }

    /// The write hook set on this collection, if any.
    pub fn write_hook(&self) -> Option<Arc<dyn WriteHook>> {
        self.hook.read().clone()
    }

    pub(crate) fn set_write_hook(&self, hook: Option<Arc<dyn WriteHook>>) {
        *self.hook.write() = hook;
    }

    /// Validate items as an upsert would and return them as they would be stored: ids
    /// generated where empty, vectors keyed by space name and normalised for cosine
    /// spaces, payloads as JSON objects. Nothing is written.
    pub fn validate_items(&self, items: Vec<Item>) -> Result<Vec<Item>> {
        self.check_open()?;
        let prepared = self.prepare(items)?;
        Ok(prepared
            .items
            .into_iter()
            .zip(prepared.payloads)
            .map(|(it, payload)| Item {
                id: it.id,
                vectors: self.spec.spaces.iter().map(|s| s.name.clone()).zip(it.vectors).collect(),
                payload,
            })
            .collect())
    }

    /// [`Collection::upsert`] without the write hook: for the hook itself.
    pub fn upsert_direct(&self, items: Vec<Item>) -> Result<Vec<String>> {
        self.check_open()?;
        let prepared = self.prepare(items)?;
        let mut wal = self.wal.lock();
        self.check_open()?;
        let rec = WalRecord::Upsert(prepared.items);
        wal.append(&rec)?;
        let WalRecord::Upsert(items) = rec else { unreachable!("built as upsert above") };
        let ids: Vec<String> = items.iter().map(|i| i.id.clone()).collect();
        let rows: Vec<_> = items.into_iter().zip(prepared.payloads).map(|(it, p)| (it.id, it.vectors, p)).collect();
        let mut st = self.state.write();
        if let Some(k) = &self.keyword {
            for (id, _, p) in &rows {
                if let Err(e) = k.upsert(id, p) {
                    tracing::error!(collection = %self.spec.name, id = %id, error = %e, "keyword index update failed; rebuilt at the next open");
                }
            }
        }
        st.apply_upsert(rows);
        self.stats.upserted.fetch_add(ids.len() as u64, Ordering::Relaxed);
        Ok(ids)
    }

    fn check_id_batch(&self, ids: &[String]) -> Result<()> {
        if ids.len() > self.options.limits.max_batch {
            return Err(Error::LimitExceeded(format!(
                "{} ids exceed the limit of {} per request",
                ids.len(),
                self.options.limits.max_batch
            )));
        }
        Ok(())
    }

    /// Delete by id; returns how many existed. A write hook, where one is set, takes
    /// the delete over.
    pub fn delete(&self, ids: &[String]) -> Result<usize> {
        if let Some(h) = self.write_hook() {
            self.check_open()?;
            self.check_id_batch(ids)?;
            return h.delete(self, ids);
        }
        self.delete_direct(ids)
    }

    /// [`Collection::delete`] without the write hook: for the hook itself.
    pub fn delete_direct(&self, ids: &[String]) -> Result<usize> {
        self.check_open()?;
        self.check_id_batch(ids)?;
        let mut wal = self.wal.lock();
        let present: Vec<String> = {
            let st = self.state.read();
            ids.iter().filter(|id| st.locations.contains_key(*id)).cloned().collect()
        };
        if present.is_empty() {
            return Ok(0);
        }
        wal.append(&WalRecord::Delete(present.clone()))?;
        let mut st = self.state.write();
        if let Some(k) = &self.keyword {
            present.iter().for_each(|id| k.delete(id));
        }
        let n = st.apply_delete(&present);
        self.stats.deleted.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    /// The ids of the live items matching `filter`.
    fn matching_ids(&self, filter: &Filter) -> Vec<String> {
        let st = self.state.read();
        let mut out = Vec::new();
        for src in st.sources() {
            if let Some(allowed) = src.allowed(Some(filter)) {
                out.extend(allowed.iter_ones().map(|r| src.ids()[r].clone()));
            }
        }
        out
    }

    /// Delete every item matching `filter`; returns how many.
    pub fn delete_by_filter(&self, filter: &Filter) -> Result<usize> {
        self.check_open()?;
        if let Some(h) = self.write_hook() {
            let ids = self.matching_ids(filter);
            let mut total = 0;
            for chunk in ids.chunks(self.options.limits.max_batch.max(1)) {
                total += h.delete(self, chunk)?;
            }
            return Ok(total);
        }
        let mut wal = self.wal.lock();
        let ids = self.matching_ids(filter);
        if ids.is_empty() {
            return Ok(0);
        }
        // Log in bounded records so no single record grows without limit.
        let mut total = 0;
        for chunk in ids.chunks(self.options.limits.max_batch.max(1)) {
            wal.append(&WalRecord::Delete(chunk.to_vec()))?;
            let mut st = self.state.write();
            if let Some(k) = &self.keyword {
                chunk.iter().for_each(|id| k.delete(id));
            }
            total += st.apply_delete(chunk);
        }
        self.stats.deleted.fetch_add(total as u64, Ordering::Relaxed);
        Ok(total)
    }

    /// Fetch items by id (missing ids are skipped), in request order.
    pub fn get(&self, ids: &[String], with_vectors: bool) -> Result<Vec<StoredItem>> {
        self.check_open()?;
        self.check_id_batch(ids)?;
        let st = self.state.read();
        let sources = st.sources();
        let mut out = Vec::new();
        for id in ids {
            let Some(&(sid, row)) = st.locations.get(id) else { continue };
            let Some(src) = sources.iter().find(|s| s.id() == sid) else { continue };
            let row = row as usize;
            let mut vectors = BTreeMap::new();
            if with_vectors {
                for (s, space) in self.spec.spaces.iter().enumerate() {
                    vectors.insert(space.name.clone(), src.vectors(s)[row * space.dim..(row + 1) * space.dim].to_vec());
                }
            }
            out.push(StoredItem { id: id.clone(), vectors, payload: src.payloads()[row].clone() });
        }
        Ok(out)
    }

    /// Number of live items, optionally only those matching `filter`.
    pub fn count(&self, filter: Option<&Filter>) -> Result<u64> {
        self.check_open()?;
        let st = self.state.read();
        let Some(f) = filter else { return Ok(st.locations.len() as u64) };
        Ok(st.sources().iter().map(|s| s.allowed(Some(f)).map_or(s.rows(), |b| b.count_ones()) as u64).sum())
    }

    pub fn info(&self) -> Result<CollectionInfo> {
        self.check_open()?;
        // Lock order everywhere is WAL, then state: read the WAL figures before taking
        // the state lock (a writer holds the WAL while it waits for the state).
        let (wal_bytes, last_lsn) = {
            let wal = self.wal.lock();
            (wal.disk_bytes(), wal.last_lsn())
        };
        let st = self.state.read();
        let mut spaces = Vec::new();
        for (s, spec) in self.spec.spaces.iter().enumerate() {
            let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
            let mut building = 0;
            for seg in st.segments.values() {
                match &seg.indexes.read()[s] {
                    Some(ix) => *kinds.entry(ix.kind.clone()).or_default() += 1,
                    None => building += 1,
                }
            }
            let mut index_kinds: Vec<String> =
                kinds.into_iter().map(|(k, n)| format!("{k} ({n} segment{})", if n == 1 { "" } else { "s" })).collect();
            if building > 0 {
                index_kinds.push(format!(
                    "exact, index being built ({building} segment{})",
                    if building == 1 { "" } else { "s" }
                ));
            }
            if st.mem.rows() > 0 {
                index_kinds.push("exact (write buffer)".into());
            }
            spaces.push(SpaceInfo { spec: spec.clone(), index_kinds });
        }
        let mem_live = st.mem.rows() - st.mem.deleted.count_ones();
        let unindexed_segments: usize =
            st.segments.values().filter(|s| s.indexes.read().iter().any(Option::is_none)).map(|s| s.live_rows()).sum();
        let disk: u64 = st.segments.values().map(|s| s.disk_bytes.load(Ordering::Relaxed)).sum::<u64>()
            + wal_bytes
            + std::fs::metadata(self.dir.join(crate::manifest::FILE)).map(|m| m.len()).unwrap_or(0);
        Ok(CollectionInfo {
            name: self.spec.name.clone(),
            spaces,
            keyword: self.spec.keyword.clone(),
            count: st.locations.len() as u64,
            unindexed: (mem_live + unindexed_segments) as u64,
            segments: st.segments.len() as u64,
            deleted_rows: (st.mem.deleted.count_ones()
                + st.segments.values().map(|s| s.deleted.read().count_ones()).sum::<usize>())
                as u64,
            disk_bytes: disk,
            last_lsn,
        })
    }
}

// ---- keyword search (the index itself is crate::keyword) ----

/// Build a collection's keyword index from its live items (at open, after WAL replay).
pub(crate) fn build_keyword_index(spec: &CollectionSpec, st: &State) -> Result<Option<KeywordIndex>> {
    let Some(ks) = &spec.keyword else { return Ok(None) };
    let t = std::time::Instant::now();
    let k = KeywordIndex::new(ks)?;
    let sources = st.sources();
    for (id, &(sid, row)) in &st.locations {
        if let Some(src) = sources.iter().find(|s| s.id() == sid) {
            k.upsert(id, &src.payloads()[row as usize])?;
        }
    }
    k.refresh()?;
    tracing::info!(collection = %spec.name, docs = k.num_docs(), ms = t.elapsed().as_millis() as u64, "keyword index built");
    Ok(Some(k))
}

impl Collection {
    /// Whether this collection has a keyword index.
    pub fn has_keyword_index(&self) -> bool {
        self.keyword.is_some()
    }

    /// BM25 search over the collection's text; `filter` (the caller's filter and row
    /// policy) applies exactly as in vector search.
    pub fn keyword_search(
        &self,
        query: &str,
        weights: &FieldWeights,
        k: usize,
        filter: Option<&Filter>,
    ) -> Result<Vec<KeywordHit>> {
        self.keyword_search_with(query, weights, k, filter, None)
    }

    /// This collection's BM25 statistics for `query` (a sharded collection sums its
    /// shards' and scores every shard with the sums: `keyword_search_with`).
    pub fn keyword_stats(&self, query: &str, weights: &FieldWeights) -> Result<crate::keyword::KeywordStats> {
        self.check_open()?;
        match &self.keyword {
            Some(kw) => kw.stats(query, weights),
            None => Ok(Default::default()),
        }
    }

    /// [`Collection::keyword_search`] scoring with the given statistics.
    pub fn keyword_search_with(
        &self,
        query: &str,
        weights: &FieldWeights,
        k: usize,
        filter: Option<&Filter>,
        stats: Option<&crate::keyword::KeywordStats>,
    ) -> Result<Vec<KeywordHit>> {
        self.check_open()?;
        let Some(kw) = &self.keyword else {
            return Err(Error::InvalidArgument(format!(
                "collection '{}' has no keyword index (create it with one, e.g. `agentdb collection create --keyword`)",
                self.spec.name
            )));
        };
        if k > self.options.limits.max_top_k {
            return Err(Error::LimitExceeded(format!(
                "top_k {k} exceeds the limit of {}",
                self.options.limits.max_top_k
            )));
        }
        let st = self.state.read();
        let sources = st.sources();
        kw.search_with(query, weights, k, stats, |id| {
            let &(sid, row) = st.locations.get(id)?;
            let p = &sources.iter().find(|s| s.id() == sid)?.payloads()[row as usize];
            filter.is_none_or(|f| f.matches(p)).then(|| p.clone())
        })
    }
}
