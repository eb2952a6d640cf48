//! FAISS indexes through the C API (`faiss-sys`).
//!
//! Rows of a segment are added in order, so FAISS labels are row numbers. Searches take
//! `&self` (FAISS search is const and thread-safe) and may carry an id selector: a
//! bitmap of rows allowed by the deletion set and the payload filter.

use crate::error::{Error, Result};
use crate::types::{CollectionSpec, Metric, MAX_DIM};
use faiss_sys as sys;
use std::ffi::{CStr, CString};
use std::os::raw::c_int;
use std::ptr;

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
}

impl Default for IndexTuning {
    fn default() -> Self {
        IndexTuning { hnsw_ef_search: 128, hnsw_ef_construction: 100, ivf_nprobe: 16 }
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
    unsafe {
        let mut buf: *mut libc::c_char = ptr::null_mut();
        let mut len: libc::size_t = 0;
        let f = libc::open_memstream(&mut buf, &mut len);
        if f.is_null() {
            return Err(Error::Faiss("open_memstream failed".into()));
        }
        let r = check(sys::faiss_write_index(raw.0, f as *mut sys::FILE));
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
    /// Searches hold it shared; a search with its own efSearch holds it exclusively
    /// while the index's efSearch is temporarily changed (FAISS's C API has no
    /// per-query HNSW parameters).
    ef_lock: parking_lot::RwLock<()>,
}

impl std::fmt::Debug for AnnIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnnIndex").field("kind", &self.kind).field("ntotal", &self.ntotal).finish()
    }
}

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
        Ok((0..nq)
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
            .collect())
    }

    /// Serialise with FAISS's own format (wrapped by the caller in our envelope).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        write_raw(&self.raw)
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
