//! FAISS indexes through the C API (`faiss-sys`).
//!
//! Rows of a segment are added in order, so FAISS labels are row numbers. Searches take
//! `&self` (FAISS search is const and thread-safe) and may carry an id selector: a
//! bitmap of rows allowed by the deletion set and the payload filter.
//!
//! HNSW indexes are searched through `hnsw_shim.cpp` (built by `build.rs` against the
//! same FAISS): per-call efSearch, SIMD distances chosen at run time, and storage that
//! is a view of the segment's own vectors (written without them).

use crate::error::{Error, Result};
use crate::types::{CollectionSpec, Metric, MAX_DIM};
use faiss_sys as sys;
use std::ffi::{CStr, CString};
use std::os::raw::c_int;
use std::ptr;
use std::sync::Arc;

fn last_error() -> String {
    unsafe {
        let p = sys::faiss_get_last_error();
        if p.is_null() {
            "unknown FAISS error".into()
        } else {
            CStr::from_ptr(p).to_string_lossy().trim().to_string()
        }
    }
}

fn check(code: c_int) -> Result<()> {
    if code == 0 {
        Ok(())
    } else {
        Err(Error::Faiss(last_error()))
    }
}

fn faiss_metric(m: Metric) -> sys::FaissMetricType {
    match m {
        Metric::Cosine | Metric::InnerProduct => sys::FaissMetricType_METRIC_INNER_PRODUCT,
        Metric::L2 => sys::FaissMetricType_METRIC_L2,
    }
}

/// What family an index belongs to; decides which search parameters FAISS accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Hnsw,
    Ivf,
    Other,
}

fn family_of(desc: &str) -> Family {
    if let Ok(d) = crate::index_desc::parse(desc) {
        return if d.is_ivf() {
            Family::Ivf
        } else if d.is_hnsw() {
            Family::Hnsw
        } else {
            Family::Other
        };
    }
    // Kinds stored by older versions that the grammar does not know.
    let parts: Vec<&str> = desc.split(',').map(str::trim).collect();
    if parts.iter().any(|p| p.starts_with("IVF")) {
        Family::Ivf
    } else if parts.iter().any(|p| p.starts_with("HNSW")) {
        Family::Hnsw
    } else {
        Family::Other
    }
}

/// Check an index-factory description without training anything: first against
/// AgentDB's grammar and bounds ([`crate::index_desc`], which never calls FAISS: FAISS
/// crashes on descriptions such as `PQ0` or `HNSW0`), then by letting FAISS create the
/// (empty) index, whose memory the grammar's estimate bounds.
pub fn validate_factory(desc: &str, dim: usize, metric: Metric) -> Result<()> {
    let parsed = crate::index_desc::validate(desc, dim, metric)?;
    let d = desc.trim();
    let raw = RawIndex::factory(&parsed.faiss_string(), dim, metric)
        .map_err(|e| Error::invalid(format!("invalid index description '{d}': {e}")))?;
    drop(raw);
    Ok(())
}

/// `hnsw_shim.cpp`, compiled by `build.rs` against FAISS's C++ headers.
mod shim {
    use std::os::raw::{c_char, c_int, c_void};
    extern "C" {
        pub fn agentdb_hnsw_search(
            index: *const c_void,
            n: i64,
            x: *const f32,
            k: i64,
            ef: c_int,
            bitmap: *const u8,
            bitmap_len: usize,
            xh: *const u16,
            scale: f32,
            distances: *mut f32,
            labels: *mut i64,
            err: *mut c_char,
            err_len: usize,
        ) -> c_int;
        pub fn agentdb_hnsw_simd_level() -> *const c_char;
        pub fn agentdb_hnsw_share_storage(
            index: *mut c_void,
            xb: *const f32,
            n: i64,
            err: *mut c_char,
            err_len: usize,
        ) -> c_int;
        pub fn agentdb_hnsw_lacks_storage(index: *const c_void) -> c_int;
        pub fn agentdb_write_index_skip_storage(
            index: *const c_void,
            f: *mut libc::FILE,
            err: *mut c_char,
            err_len: usize,
        ) -> c_int;
        pub fn agentdb_simd_distance(
            a: *const f32,
            b: *const f32,
            d: usize,
            inner_product: c_int,
            portable: c_int,
        ) -> f32;
        #[allow(clippy::too_many_arguments)]
        pub fn agentdb_simd_distance4(
            q: *const f32,
            b0: *const f32,
            b1: *const f32,
            b2: *const f32,
            b3: *const f32,
            d: usize,
            inner_product: c_int,
            portable: c_int,
            out: *mut f32,
        );
    }
}

fn shim_error(err: &[u8]) -> String {
    CStr::from_bytes_until_nul(err).map_or("FAISS error".into(), |c| c.to_string_lossy().into_owned())
}

/// The SIMD level of the HNSW distance kernels in this process ("avx512", "avx2" or
/// "generic"; `AGENTDB_SIMD=avx2|generic` caps it).
pub fn simd_level() -> &'static str {
    // SAFETY: a pointer to a static C string.
    unsafe { CStr::from_ptr(shim::agentdb_hnsw_simd_level()) }.to_str().unwrap_or("generic")
}

/// One inner product (or squared L2) with the selected SIMD kernel, or the portable one.
pub fn simd_distance(a: &[f32], b: &[f32], inner_product: bool, portable: bool) -> f32 {
    assert_eq!(a.len(), b.len());
    unsafe { shim::agentdb_simd_distance(a.as_ptr(), b.as_ptr(), a.len(), inner_product as c_int, portable as c_int) }
}

/// Four distances from `q` with the selected batch-of-4 SIMD kernel (the one HNSW's
/// neighbour expansion uses), or the portable one.
pub fn simd_distance4(q: &[f32], b: [&[f32]; 4], inner_product: bool, portable: bool) -> [f32; 4] {
    assert!(b.iter().all(|r| r.len() == q.len()));
    let mut out = [0f32; 4];
    // SAFETY: five slices of q.len() floats, four outputs.
    unsafe {
        shim::agentdb_simd_distance4(
            q.as_ptr(),
            b[0].as_ptr(),
            b[1].as_ptr(),
            b[2].as_ptr(),
            b[3].as_ptr(),
            q.len(),
            inner_product as c_int,
            portable as c_int,
            out.as_mut_ptr(),
        )
    };
    out
}

/// Owned FAISS index pointer.
struct RawIndex(*mut sys::FaissIndex);

// FAISS indexes may be moved between threads; concurrent `search` calls are safe
// (const in C++); mutation (`add`, `train`, parameter changes) needs `&mut`.
unsafe impl Send for RawIndex {}
unsafe impl Sync for RawIndex {}

impl Drop for RawIndex {
    fn drop(&mut self) {
        unsafe { sys::faiss_Index_free(self.0) }
    }
}

impl RawIndex {
    fn factory(desc: &str, dim: usize, metric: Metric) -> std::result::Result<RawIndex, String> {
        let c = CString::new(desc).map_err(|_| "description contains a NUL byte".to_string())?;
        let mut p = ptr::null_mut();
        let code = unsafe { sys::faiss_index_factory(&mut p, dim as c_int, c.as_ptr(), faiss_metric(metric)) };
        if code != 0 || p.is_null() {
            return Err(last_error());
        }
        Ok(RawIndex(p))
    }
}

/// Build- and search-time knobs.
#[derive(Debug, Clone, Copy)]
pub struct IndexTuning {
    pub hnsw_ef_search: usize,
    /// HNSW efConstruction (FAISS's factory default is 40).
    pub hnsw_ef_construction: usize,
    pub ivf_nprobe: usize,
    /// Walk HNSW graphs over half-float copies of the rows (`search.hnsw_walk = "fp16"`,
    /// see `walk16`): half the memory traffic per visited row, half the vectors' size
    /// again in memory; hits are re-scored exactly either way.
    pub hnsw_walk_f16: bool,
}

impl Default for IndexTuning {
    fn default() -> Self {
        IndexTuning { hnsw_ef_search: 128, hnsw_ef_construction: 100, ivf_nprobe: 16, hnsw_walk_f16: false }
    }
}

/// FAISS's C API has no setter for HNSW efConstruction. An empty HNSW index serialises
/// `entry_point=-1, max_level=-1, efConstruction, efSearch, upper_beam=1` as five i32s
/// (FAISS 1.12 `write_HNSW`); patch efConstruction in that image and read it back.
/// Returns false (index untouched) if the pattern is not found exactly once.
fn set_ef_construction(raw: &mut RawIndex, ef_construction: usize) -> Result<bool> {
    let mut bytes = write_raw(raw)?;
    let mut pat = Vec::with_capacity(20);
    for v in [-1i32, -1, 40, 16, 1] {
        pat.extend_from_slice(&v.to_le_bytes());
    }
    let hits: Vec<usize> =
        bytes.windows(20).enumerate().filter(|(_, w)| *w == pat.as_slice()).map(|(i, _)| i).collect();
    if hits.len() != 1 {
        return Ok(false);
    }
    let at = hits[0] + 8;
    bytes[at..at + 4].copy_from_slice(&(ef_construction.min(i32::MAX as usize) as i32).to_le_bytes());
    *raw = read_raw(&bytes)?;
    Ok(true)
}

fn write_raw(raw: &RawIndex) -> Result<Vec<u8>> {
    write_raw_with(raw, false)
}

/// Serialise; `skip_storage`: an HNSW index without its stored vectors.
fn write_raw_with(raw: &RawIndex, skip_storage: bool) -> Result<Vec<u8>> {
    unsafe {
        let mut buf: *mut libc::c_char = ptr::null_mut();
        let mut len: libc::size_t = 0;
        let f = libc::open_memstream(&mut buf, &mut len);
        if f.is_null() {
            return Err(Error::Faiss("open_memstream failed".into()));
        }
        let r = if skip_storage {
            let mut err = [0u8; 512];
            match shim::agentdb_write_index_skip_storage(
                raw.0 as *const libc::c_void,
                f,
                err.as_mut_ptr() as *mut libc::c_char,
                err.len(),
            ) {
                0 => Ok(()),
                _ => Err(Error::Faiss(shim_error(&err))),
            }
        } else {
            check(sys::faiss_write_index(raw.0, f as *mut sys::FILE))
        };
        libc::fclose(f);
        let out = if buf.is_null() { Vec::new() } else { std::slice::from_raw_parts(buf as *const u8, len).to_vec() };
        libc::free(buf as *mut libc::c_void);
        r?;
        Ok(out)
    }
}

fn read_raw(bytes: &[u8]) -> Result<RawIndex> {
    if bytes.is_empty() {
        return Err(Error::Faiss("empty index data".into()));
    }
    unsafe {
        let f = libc::fmemopen(bytes.as_ptr() as *mut libc::c_void, bytes.len(), c"rb".as_ptr());
        if f.is_null() {
            return Err(Error::Faiss("fmemopen failed".into()));
        }
        let mut p = ptr::null_mut();
        let r = check(sys::faiss_read_index(f as *mut sys::FILE, 0, &mut p));
        libc::fclose(f);
        r?;
        Ok(RawIndex(p))
    }
}

/// A trained, filled FAISS index over the rows of one segment for one space.
pub struct AnnIndex {
    raw: RawIndex,
    /// The description actually built (may be a fallback such as `Flat`).
    pub kind: String,
    family: Family,
    ntotal: usize,
    dim: usize,
    /// False for FAISS indexes that refuse an id selector (a standalone `PQ`, FAISS's
    /// IndexPQ): filtered searches fetch enough extra results and filter them here.
    selector_ok: bool,
    ef_search: usize,
    nprobe: usize,
    /// The segment's vectors when FAISS's storage is a view of them (HNSW over flat
    /// storage): kept alive here; the index file is then written without them.
    shared: Option<Arc<Vec<f32>>>,
    /// Whether `share_storage` makes `half` (from the tuning).
    walk_f16: bool,
    /// Half-float rows the shim's graph walk reads instead of `shared`.
    half: Option<crate::walk16::HalfRows>,
    /// Only for HNSW indexes the shim cannot search (e.g. `PCA64,HNSW32`): searches hold
    /// it shared; a search with its own efSearch holds it exclusively
    /// while the index's efSearch is temporarily changed (FAISS's C API has no
    /// per-query HNSW parameters).
    ef_lock: parking_lot::RwLock<()>,
}

impl std::fmt::Debug for AnnIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnnIndex").field("kind", &self.kind).field("ntotal", &self.ntotal).finish()
    }
}

/// Per query, (row, FAISS score) best first.
type PerQuery = Vec<Vec<(u32, f32)>>;

/// Rows (a bitmap, bit i = row i) that a search may return.
pub struct RowFilter<'a> {
    pub bitmap: &'a [u8],
}

impl AnnIndex {
    /// Build `desc` over `vectors` (row-major, `n * dim`). If the description cannot be
    /// trained on this data (too few rows for its clusters or codebooks), fall back to
    /// an exact `Flat` index and say why in `kind`.
    ///
    /// A description the grammar ([`crate::index_desc`]) refuses is an error (no
    /// fallback): it never reaches FAISS.
    pub fn build(desc: &str, dim: usize, metric: Metric, vectors: &[f32], tuning: IndexTuning) -> Result<AnnIndex> {
        let desc = desc.trim();
        crate::index_desc::validate(desc, dim, metric)?;
        let n = vectors.len() / dim;
        match Self::try_build(desc, dim, metric, vectors, n, tuning) {
            Ok(ix) => Ok(ix),
            Err(e @ Error::InvalidArgument(_)) => Err(e),
            Err(e) if desc != "Flat" => {
                tracing::warn!(index = desc, rows = n, error = %e, "index cannot be built on this segment; using exact Flat instead");
                let mut ix = Self::try_build("Flat", dim, metric, vectors, n, tuning)?;
                ix.kind = format!("Flat (fallback from {desc}: {n} rows too few to train)");
                Ok(ix)
            }
            Err(e) => Err(e),
        }
    }

    fn try_build(
        desc: &str,
        dim: usize,
        metric: Metric,
        vectors: &[f32],
        n: usize,
        tuning: IndexTuning,
    ) -> Result<AnnIndex> {
        // Defensive: every caller has validated already, but nothing unchecked may
        // reach FAISS's factory, which gets the canonical spelling without polysemous
        // training (see `IndexDesc::faiss_string`).
        let parsed = crate::index_desc::validate(desc, dim, metric)?;
        let mut raw = RawIndex::factory(&parsed.faiss_string(), dim, metric).map_err(Error::Faiss)?;
        if family_of(desc) == Family::Hnsw
            && tuning.hnsw_ef_construction != 40
            && !set_ef_construction(&mut raw, tuning.hnsw_ef_construction)?
        {
            tracing::warn!(
                index = desc,
                "cannot set HNSW efConstruction for this index description; FAISS default (40) used"
            );
        }
        unsafe {
            if sys::faiss_Index_is_trained(raw.0) == 0 {
                check(sys::faiss_Index_train(raw.0, n as i64, vectors.as_ptr()))?;
            }
            if n > 0 {
                check(sys::faiss_Index_add(raw.0, n as i64, vectors.as_ptr()))?;
            }
        }
        Self::wrap(raw, desc.to_string(), family_of(desc), n, dim, tuning)
    }

    fn wrap(
        raw: RawIndex,
        kind: String,
        family: Family,
        ntotal: usize,
        dim: usize,
        tuning: IndexTuning,
    ) -> Result<AnnIndex> {
        let base = kind.split(" (").next().unwrap_or(&kind);
        let selector_ok =
            !matches!(crate::index_desc::parse(base).map(|d| d.main), Ok(crate::index_desc::Main::Pq { .. }));
        let mut ix = AnnIndex {
            raw,
            kind,
            family,
            ntotal,
            dim,
            selector_ok,
            ef_search: 0,
            nprobe: 0,
            shared: None,
            walk_f16: tuning.hnsw_walk_f16,
            half: None,
            ef_lock: Default::default(),
        };
        ix.tune(tuning)?;
        Ok(ix)
    }

    /// Apply search-time parameters (efSearch for HNSW, nprobe for IVF).
    pub fn tune(&mut self, t: IndexTuning) -> Result<()> {
        match self.family {
            Family::Hnsw if t.hnsw_ef_search != self.ef_search => {
                self.set_param("efSearch", t.hnsw_ef_search as f64)?;
                self.ef_search = t.hnsw_ef_search;
            }
            Family::Ivf => self.nprobe = t.ivf_nprobe.max(1),
            _ => {}
        }
        Ok(())
    }

    /// Whether this is an HNSW index (its efSearch applies).
    pub fn is_hnsw(&self) -> bool {
        self.family == Family::Hnsw
    }

    pub fn ef_search(&self) -> usize {
        self.ef_search
    }

    fn set_param(&mut self, name: &str, v: f64) -> Result<()> {
        self.set_param_shared(name, v)
    }

    pub fn len(&self) -> usize {
        self.ntotal
    }
    pub fn is_empty(&self) -> bool {
        self.ntotal == 0
    }

    /// Search `nq` queries; returns per query (row, FAISS score) best first, with
    /// missing results (-1 labels) dropped.
    pub fn search(
        &self,
        queries: &[f32],
        k: usize,
        filter: Option<RowFilter<'_>>,
        nprobe: usize,
    ) -> Result<Vec<Vec<(u32, f32)>>> {
        self.search_ef(queries, k, filter, nprobe, 0)
    }

    /// Like [`AnnIndex::search`], with an HNSW efSearch for this call (0 = the index's).
    pub fn search_ef(
        &self,
        queries: &[f32],
        k: usize,
        filter: Option<RowFilter<'_>>,
        nprobe: usize,
        ef: usize,
    ) -> Result<Vec<Vec<(u32, f32)>>> {
        if self.family == Family::Hnsw && self.selector_ok {
            if let Some(r) = self.search_hnsw(queries, k, filter.as_ref(), ef)? {
                return Ok(r);
            }
        }
        // Not a plain IndexHNSW (e.g. `PCA64,HNSW32`): FAISS's C API has no per-call
        // HNSW parameters, so a different efSearch is set on the index exclusively.
        if self.family == Family::Hnsw && ef > 0 && ef != self.ef_search {
            let _g = self.ef_lock.write();
            self.set_param_shared("efSearch", ef as f64)?;
            let r = self.search_raw(queries, k, filter, nprobe);
            self.set_param_shared("efSearch", self.ef_search as f64)?;
            return r;
        }
        let _g = self.ef_lock.read();
        self.search_raw(queries, k, filter, nprobe)
    }

    /// An IndexHNSW searched through the shim (`hnsw_shim.cpp`): this call's efSearch
    /// (0 = the index's) without touching the index, SIMD distances for flat storage.
    /// Large batches are split over the rayon pool. `None`: not an IndexHNSW.
    fn search_hnsw(
        &self,
        queries: &[f32],
        k: usize,
        filter: Option<&RowFilter<'_>>,
        ef: usize,
    ) -> Result<Option<PerQuery>> {
        use rayon::prelude::*;
        let nq = queries.len() / self.dim;
        let k = k.min(self.ntotal.max(1));
        let ef = if ef > 0 { ef } else { self.ef_search };
        let bitmap: Option<&[u8]> = filter.map(|f| f.bitmap);
        let one = |qs: &[f32]| -> Result<Option<PerQuery>> {
            let n = qs.len() / self.dim;
            let mut dist = vec![0f32; n * k];
            let mut labels = vec![-1i64; n * k];
            let mut err = [0u8; 512];
            let code = unsafe {
                shim::agentdb_hnsw_search(
                    self.raw.0 as *const libc::c_void,
                    n as i64,
                    qs.as_ptr(),
                    k as i64,
                    ef.min(i32::MAX as usize) as c_int,
                    bitmap.map_or(ptr::null(), |b| b.as_ptr()),
                    bitmap.map_or(0, |b| b.len()),
                    self.half.as_ref().map_or(ptr::null(), |h| h.data.as_ptr()),
                    self.half.as_ref().map_or(1.0, |h| h.scale),
                    dist.as_mut_ptr(),
                    labels.as_mut_ptr(),
                    err.as_mut_ptr() as *mut libc::c_char,
                    err.len(),
                )
            };
            match code {
                0 => Ok(Some(self.collect(n, k, &dist, &labels, k, |_| true))),
                1 => Ok(None),
                _ => Err(Error::Faiss(shim_error(&err))),
            }
        };
        const CHUNK: usize = 8;
        if nq < 2 * CHUNK {
            return one(queries);
        }
        let parts: Vec<Option<PerQuery>> = queries.par_chunks(CHUNK * self.dim).map(one).collect::<Result<_>>()?;
        Ok(parts.into_iter().collect::<Option<Vec<_>>>().map(|p| p.into_iter().flatten().collect()))
    }

    /// Per query (row, score) from FAISS's output arrays: -1 labels and rows `row_ok`
    /// refuses dropped, at most `k_out` each.
    fn collect(
        &self,
        nq: usize,
        k: usize,
        dist: &[f32],
        labels: &[i64],
        k_out: usize,
        row_ok: impl Fn(usize) -> bool,
    ) -> Vec<Vec<(u32, f32)>> {
        (0..nq)
            .map(|q| {
                (0..k)
                    .filter_map(|j| {
                        let l = labels[q * k + j];
                        (l >= 0 && (l as usize) < self.ntotal && row_ok(l as usize))
                            .then(|| (l as u32, dist[q * k + j]))
                    })
                    .take(k_out)
                    .collect()
            })
            .collect()
    }

    /// Set a FAISS parameter through `&self`; only call with `ef_lock` held exclusively.
    fn set_param_shared(&self, name: &str, v: f64) -> Result<()> {
        let c = CString::new(name).expect("static name");
        unsafe {
            let mut ps = ptr::null_mut();
            check(sys::faiss_ParameterSpace_new(&mut ps))?;
            let r = check(sys::faiss_ParameterSpace_set_index_parameter(ps, self.raw.0, c.as_ptr(), v));
            sys::faiss_ParameterSpace_free(ps);
            r
        }
    }

    fn search_raw(
        &self,
        queries: &[f32],
        k: usize,
        filter: Option<RowFilter<'_>>,
        nprobe: usize,
    ) -> Result<Vec<Vec<(u32, f32)>>> {
        let nq = queries.len() / self.dim;
        let k_out = k.min(self.ntotal.max(1));
        // An index that refuses a selector searches unfiltered for k plus the number of
        // excluded rows (so the k best allowed rows are among them), filtered below.
        let (filter, post) = match filter {
            Some(f) if !self.selector_ok => (None, Some(f.bitmap)),
            f => (f, None),
        };
        let row_ok = |row: usize| post.is_none_or(|bm| bm.get(row / 8).is_some_and(|b| b >> (row % 8) & 1 == 1));
        let k = match post {
            Some(_) => {
                let excluded = (0..self.ntotal).filter(|&r| !row_ok(r)).count();
                (k_out + excluded).min(self.ntotal.max(1))
            }
            None => k_out,
        };
        let mut dist = vec![0f32; nq * k];
        let mut labels = vec![-1i64; nq * k];
        unsafe {
            let mut sel: *mut sys::FaissIDSelectorBitmap = ptr::null_mut();
            if let Some(f) = &filter {
                check(sys::faiss_IDSelectorBitmap_new(&mut sel, f.bitmap.len(), f.bitmap.as_ptr()))?;
            }
            let nprobe = if nprobe > 0 { nprobe } else { self.nprobe };
            let mut params: *mut sys::FaissSearchParameters = ptr::null_mut();
            let r = if self.family == Family::Ivf {
                let mut p: *mut sys::FaissSearchParametersIVF = ptr::null_mut();
                let r = check(sys::faiss_SearchParametersIVF_new_with(&mut p, sel as *mut _, nprobe.max(1), 0));
                params = p as *mut _;
                r
            } else if !sel.is_null() {
                check(sys::faiss_SearchParameters_new(&mut params, sel as *mut _))
            } else {
                Ok(())
            };
            let r = r.and_then(|_| {
                check(if params.is_null() {
                    sys::faiss_Index_search(
                        self.raw.0,
                        nq as i64,
                        queries.as_ptr(),
                        k as i64,
                        dist.as_mut_ptr(),
                        labels.as_mut_ptr(),
                    )
                } else {
                    sys::faiss_Index_search_with_params(
                        self.raw.0,
                        nq as i64,
                        queries.as_ptr(),
                        k as i64,
                        params,
                        dist.as_mut_ptr(),
                        labels.as_mut_ptr(),
                    )
                })
            });
            if !params.is_null() {
                sys::faiss_SearchParameters_free(params);
            }
            if !sel.is_null() {
                sys::faiss_IDSelector_free(sel as *mut _);
            }
            r?;
        }
        Ok(self.collect(nq, k, &dist, &labels, k_out, row_ok))
    }

    /// Serialise with FAISS's own format (wrapped by the caller in our envelope).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        write_raw(&self.raw)
    }

    /// Serialise for a segment: without the stored vectors when they are the segment's
    /// own (see [`AnnIndex::share_storage`]); the flag says which.
    pub fn to_segment_bytes(&self) -> Result<(Vec<u8>, bool)> {
        let skip = self.shared.is_some();
        Ok((write_raw_with(&self.raw, skip)?, skip))
    }

    /// Use `vectors` (this index's rows, row-major) as the index's stored vectors
    /// instead of FAISS's own copy, which is freed: one copy in memory, and none in the
    /// index file. For HNSW over flat storage; `Ok(false)` (nothing changed) otherwise.
    /// An index read without its storage needs this before any search.
    pub fn share_storage(&mut self, vectors: Arc<Vec<f32>>) -> Result<bool> {
        if vectors.len() != self.ntotal * self.dim {
            return Err(Error::Faiss(format!(
                "{} floats for {} rows of dimension {}",
                vectors.len(),
                self.ntotal,
                self.dim
            )));
        }
        let mut err = [0u8; 512];
        let code = unsafe {
            shim::agentdb_hnsw_share_storage(
                self.raw.0 as *mut libc::c_void,
                vectors.as_ptr(),
                self.ntotal as i64,
                err.as_mut_ptr() as *mut libc::c_char,
                err.len(),
            )
        };
        match code {
            0 => {
                if self.walk_f16 && self.family == Family::Hnsw {
                    self.half = crate::walk16::HalfRows::from_f32(&vectors);
                }
                self.shared = Some(vectors);
                Ok(true)
            }
            1 => Ok(false),
            _ => Err(Error::Faiss(shim_error(&err))),
        }
    }

    /// Load an index written by [`AnnIndex::to_segment_bytes`] over its segment's vectors.
    pub fn from_segment_bytes(
        bytes: &[u8],
        kind: &str,
        dim: usize,
        tuning: IndexTuning,
        vectors: Arc<Vec<f32>>,
    ) -> Result<AnnIndex> {
        let mut ix = Self::from_bytes(bytes, kind, dim, tuning)?;
        let lacks = unsafe { shim::agentdb_hnsw_lacks_storage(ix.raw.0 as *const libc::c_void) } != 0;
        if !ix.share_storage(vectors)? && lacks {
            return Err(Error::Faiss("index was saved without its vectors and cannot take them".into()));
        }
        Ok(ix)
    }

    /// Load bytes written by [`AnnIndex::to_bytes`].
    pub fn from_bytes(bytes: &[u8], kind: &str, dim: usize, tuning: IndexTuning) -> Result<AnnIndex> {
        let raw = read_raw(bytes)?;
        let d = unsafe { sys::faiss_Index_d(raw.0) } as usize;
        if d != dim {
            return Err(Error::Faiss(format!("index has dimension {d}, expected {dim}")));
        }
        let ntotal = unsafe { sys::faiss_Index_ntotal(raw.0) } as usize;
        let base = kind.split(" (").next().unwrap_or(kind);
        Self::wrap(raw, kind.to_string(), family_of(base), ntotal, dim, tuning)
    }
}

/// Checking a collection spec builds each space's index description with FAISS and
/// looks up the keyword language, so it lives here with the index layer rather than in
/// `types` (which stays free of FAISS).
impl CollectionSpec {
    pub fn validate(&self) -> Result<()> {
        crate::types::validate_name("collection", &self.name)?;
        if self.spaces.is_empty() {
            return Err(Error::invalid("a collection needs at least one vector space"));
        }
        if let Some(k) = &self.keyword {
            k.validate()?;
        }
        let mut seen = std::collections::HashSet::new();
        for s in &self.spaces {
            crate::types::validate_name("space", &s.name)?;
            if !seen.insert(s.name.as_str()) {
                return Err(Error::invalid(format!("duplicate space name '{}'", s.name)));
            }
            if s.dim == 0 || s.dim > MAX_DIM {
                return Err(Error::invalid(format!(
                    "space '{}': dimension must be between 1 and {MAX_DIM}, got {}",
                    s.name, s.dim
                )));
            }
            validate_factory(&s.index, s.dim, s.metric)
                .map_err(|e| Error::invalid(format!("space '{}': {e}", s.name)))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn data(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..n * dim).map(|_| rng.random::<f32>() - 0.5).collect()
    }

    #[test]
    fn validate_rejects_bad_descriptions() {
        assert!(validate_factory("HNSW32", 16, Metric::Cosine).is_ok());
        assert!(validate_factory("IVF64,PQ4", 16, Metric::L2).is_ok());
        assert!(validate_factory("Nonsense42", 16, Metric::L2).is_err());
        assert!(validate_factory("IVF64,PQ5", 16, Metric::L2).is_err(), "16 is not a multiple of 5");
        assert!(validate_factory("IDMap,Flat", 16, Metric::L2).is_err());
    }

    #[test]
    fn flat_hnsw_ivf_search_serialize_and_filter() {
        let dim = 16;
        let v = data(2000, dim, 1);
        for desc in ["Flat", "HNSW16", "IVF16,Flat"] {
            let ix = AnnIndex::build(
                desc,
                dim,
                Metric::L2,
                &v,
                IndexTuning { hnsw_ef_search: 64, ivf_nprobe: 16, ..IndexTuning::default() },
            )
            .unwrap();
            assert_eq!(ix.kind, desc);
            // A stored vector finds itself.
            let r = ix.search(&v[7 * dim..8 * dim], 5, None, 0).unwrap();
            assert_eq!(r[0][0].0, 7, "{desc}");
            // Filter: only even rows.
            let mut bm = vec![0u8; 2000usize.div_ceil(8)];
            for row in (0..2000).step_by(2) {
                bm[row / 8] |= 1 << (row % 8);
            }
            let r = ix.search(&v[7 * dim..8 * dim], 5, Some(RowFilter { bitmap: &bm }), 0).unwrap();
            assert!(!r[0].is_empty() && r[0].iter().all(|(row, _)| row % 2 == 0), "{desc}: {:?}", r[0]);
            let bytes = ix.to_bytes().unwrap();
            let back = AnnIndex::from_bytes(&bytes, &ix.kind, dim, IndexTuning::default()).unwrap();
            assert_eq!(back.len(), 2000);
            assert_eq!(back.search(&v[9 * dim..10 * dim], 1, None, 0).unwrap()[0][0].0, 9);
        }
    }

    #[test]
    fn simd_kernels_match_the_portable_ones() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        for d in (1..=70).chain([127, 128, 384, 385, 768]) {
            let a: Vec<f32> = (0..d).map(|_| rng.random::<f32>() - 0.5).collect();
            let b: Vec<f32> = (0..d).map(|_| rng.random::<f32>() - 0.5).collect();
            for ip in [true, false] {
                let fast = simd_distance(&a, &b, ip, false);
                let slow = simd_distance(&a, &b, ip, true);
                let exact: f64 = a
                    .iter()
                    .zip(&b)
                    .map(|(x, y)| if ip { (*x as f64) * (*y as f64) } else { ((*x - *y) as f64).powi(2) })
                    .sum();
                let tol = 1e-4 * (1.0 + exact.abs());
                assert!((fast as f64 - exact).abs() < tol, "{} d={d} ip={ip}: {fast} vs {exact}", simd_level());
                assert!((slow as f64 - exact).abs() < tol, "portable d={d} ip={ip}: {slow} vs {exact}");
            }
        }
    }

    #[test]
    fn batch_of_four_kernels_match_the_single_ones() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(10);
        for d in (1..=70).chain([127, 128, 384, 385, 768]) {
            let q: Vec<f32> = (0..d).map(|_| rng.random::<f32>() - 0.5).collect();
            let rows: Vec<Vec<f32>> = (0..4).map(|_| (0..d).map(|_| rng.random::<f32>() - 0.5).collect()).collect();
            let b = [&rows[0][..], &rows[1][..], &rows[2][..], &rows[3][..]];
            for ip in [true, false] {
                for portable in [false, true] {
                    let four = simd_distance4(&q, b, ip, portable);
                    for j in 0..4 {
                        let one = simd_distance(&q, b[j], ip, true) as f64;
                        let tol = 1e-4 * (1.0 + one.abs());
                        assert!(
                            (four[j] as f64 - one).abs() < tol,
                            "{} d={d} ip={ip} portable={portable} row {j}: {} vs {one}",
                            simd_level(),
                            four[j]
                        );
                    }
                }
            }
        }
    }

    /// The shim's HNSW search (per-call efSearch, SIMD distances) walks the same graph
    /// as FAISS's own `search` and returns the same neighbours.
    #[test]
    fn shim_search_matches_faiss_search() {
        let dim = 64;
        let n = 4000;
        let mut v = data(n, dim, 11);
        for row in v.chunks_mut(dim) {
            let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
            row.iter_mut().for_each(|x| *x /= norm);
        }
        for metric in [Metric::InnerProduct, Metric::L2] {
            let ix = AnnIndex::build("HNSW16", dim, metric, &v, IndexTuning::default()).unwrap();
            let qs = &v[..40 * dim];
            for ef in [16, 64] {
                let ours = ix.search_hnsw(qs, 10, None, ef).unwrap().expect("an IndexHNSW");
                let theirs = {
                    let _g = ix.ef_lock.write();
                    ix.set_param_shared("efSearch", ef as f64).unwrap();
                    let r = ix.search_raw(qs, 10, None, 0).unwrap();
                    ix.set_param_shared("efSearch", ix.ef_search as f64).unwrap();
                    r
                };
                let (mut same, mut total) = (0, 0);
                for (a, b) in ours.iter().zip(&theirs) {
                    assert_eq!(a.len(), b.len());
                    for ((ra, sa), (rb, sb)) in a.iter().zip(b) {
                        total += 1;
                        if ra == rb {
                            same += 1;
                            assert!((sa - sb).abs() < 1e-4, "{metric:?} ef {ef}: {sa} vs {sb}");
                        }
                    }
                }
                assert!(same * 100 >= total * 98, "{metric:?} ef {ef}: {same}/{total} identical");
            }
            // Filtered through the shim: only allowed rows, each query's own row first.
            let mut bm = vec![0u8; n.div_ceil(8)];
            for row in (0..n).step_by(2) {
                bm[row / 8] |= 1 << (row % 8);
            }
            let r = ix.search_ef(&v[..20 * dim], 5, Some(RowFilter { bitmap: &bm }), 0, 200).unwrap();
            for (q, res) in r.iter().enumerate() {
                assert!(res.iter().all(|(row, _)| row % 2 == 0), "{res:?}");
                if q % 2 == 0 {
                    assert_eq!(res[0].0 as usize, q);
                }
            }
            // A batch large enough to be split over threads gives what one call gives.
            let batch = ix.search_ef(&v[..100 * dim], 3, None, 0, 32).unwrap();
            for (q, res) in batch.iter().enumerate() {
                assert_eq!(res, &ix.search_ef(&v[q * dim..(q + 1) * dim], 3, None, 0, 32).unwrap()[0]);
            }
        }
    }

    /// Searches with different efSearch run at once on one index, each with its own.
    #[test]
    fn concurrent_searches_keep_their_own_ef() {
        let dim = 32;
        let v = data(3000, dim, 12);
        let ix = AnnIndex::build("HNSW16", dim, Metric::L2, &v, IndexTuning::default()).unwrap();
        let expect: Vec<_> =
            [8usize, 300].iter().map(|&ef| ix.search_ef(&v[..50 * dim], 10, None, 0, ef).unwrap()).collect();
        std::thread::scope(|s| {
            for t in 0..4 {
                let (ix, v, expect) = (&ix, &v, &expect);
                s.spawn(move || {
                    for i in 0..20 {
                        let which = (t + i) % 2;
                        let ef = [8usize, 300][which];
                        assert_eq!(ix.search_ef(&v[..50 * dim], 10, None, 0, ef).unwrap(), expect[which]);
                    }
                });
            }
        });
    }

    /// An HNSW index searches the segment's own vectors in place, is written without
    /// them, and reads back over them; full files (earlier versions) read back too.
    #[test]
    fn hnsw_storage_is_shared_and_not_written_twice() {
        let dim = 32;
        let v = Arc::new(data(3000, dim, 13));
        let mut ix = AnnIndex::build("HNSW16", dim, Metric::L2, &v, IndexTuning::default()).unwrap();
        let before = ix.search(&v[5 * dim..6 * dim], 5, None, 0).unwrap();
        let full = ix.to_bytes().unwrap();
        assert!(ix.share_storage(v.clone()).unwrap());
        assert_eq!(ix.search(&v[5 * dim..6 * dim], 5, None, 0).unwrap(), before);
        let (slim, skipped) = ix.to_segment_bytes().unwrap();
        assert!(skipped);
        assert!(slim.len() + v.len() * 4 <= full.len() + 64, "{} + vectors vs {}", slim.len(), full.len());
        for bytes in [&slim, &full] {
            let back = AnnIndex::from_segment_bytes(bytes, "HNSW16", dim, IndexTuning::default(), v.clone()).unwrap();
            assert_eq!(back.search(&v[5 * dim..6 * dim], 5, None, 0).unwrap(), before);
        }
        // Without its vectors the index answers with an error, never a crash.
        let bare = AnnIndex::from_bytes(&slim, "HNSW16", dim, IndexTuning::default()).unwrap();
        assert!(bare.search(&v[..dim], 5, None, 0).is_err());
        // Other vectors than the ones it was built on are refused.
        let other = Arc::new(data(3000, dim, 14));
        assert!(AnnIndex::from_segment_bytes(&full, "HNSW16", dim, IndexTuning::default(), other).is_err());
        // Not an HNSW: nothing shared, the file keeps its vectors.
        let mut flat = AnnIndex::build("Flat", dim, Metric::L2, &v, IndexTuning::default()).unwrap();
        assert!(!flat.share_storage(v.clone()).unwrap());
        assert!(!flat.to_segment_bytes().unwrap().1);
    }

    #[test]
    fn ef_construction_is_applied() {
        let dim = 8;
        let v = data(500, dim, 3);
        let t = IndexTuning { hnsw_ef_construction: 123, ..IndexTuning::default() };
        let ix = AnnIndex::build("HNSW16", dim, Metric::L2, &v, t).unwrap();
        let bytes = ix.to_bytes().unwrap();
        let mut pat = Vec::new();
        for x in [123i32, ix.ef_search() as i32, 1] {
            pat.extend_from_slice(&x.to_le_bytes());
        }
        assert!(bytes.windows(12).any(|w| w == pat.as_slice()), "efConstruction 123 is in the serialised index");
        assert_eq!(ix.search(&v[..dim], 1, None, 0).unwrap()[0][0].0, 0);
    }

    #[test]
    fn crashing_descriptions_never_reach_faiss() {
        let v = data(300, 16, 4);
        for desc in ["PQ0", "IVF4,PQ0", "HNSW0", "IVF0,Flat", "PQ1x0", "PQ4x0", "OPQ0,PQ2", "HNSW1000000"] {
            let e = validate_factory(desc, 16, Metric::L2).unwrap_err().to_string();
            assert!(e.starts_with(&format!("invalid index description '{desc}': ")), "{e}");
            // No Flat fallback either: the build is refused.
            let e = AnnIndex::build(desc, 16, Metric::L2, &v, IndexTuning::default()).unwrap_err();
            assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
        }
    }

    #[test]
    fn pq_filters_without_a_faiss_selector() {
        // FAISS's IndexPQ refuses id selectors: filtered searches fetch k + excluded rows.
        let dim = 8;
        let v = data(600, dim, 5);
        for desc in ["PQ4", "PCA8,PQ2x6"] {
            let ix = AnnIndex::build(desc, dim, Metric::L2, &v, IndexTuning::default()).unwrap();
            assert_eq!(ix.kind, desc);
            let mut bm = vec![0u8; 600usize.div_ceil(8)];
            for row in (0..600).step_by(3) {
                bm[row / 8] |= 1 << (row % 8);
            }
            let q = &v[9 * dim..10 * dim];
            let filtered = ix.search(q, 10, Some(RowFilter { bitmap: &bm }), 0).unwrap();
            let all = ix.search(q, 600, None, 0).unwrap();
            let expected: Vec<u32> = all[0].iter().map(|(r, _)| *r).filter(|r| r % 3 == 0).take(10).collect();
            assert_eq!(filtered[0].iter().map(|(r, _)| *r).collect::<Vec<_>>(), expected, "{desc}");
            assert_eq!(filtered[0][0].0, 9, "{desc}: an allowed stored vector finds itself");
        }
    }

    #[test]
    fn untrainable_description_falls_back_to_flat() {
        let dim = 8;
        let v = data(50, dim, 2);
        let ix = AnnIndex::build("IVF1024,Flat", dim, Metric::InnerProduct, &v, IndexTuning::default()).unwrap();
        assert!(ix.kind.starts_with("Flat (fallback"), "{}", ix.kind);
        assert_eq!(ix.len(), 50);
        assert!(AnnIndex::from_bytes(b"garbage", "Flat", dim, IndexTuning::default()).is_err());
    }
}
