//! Search: per source (write buffer and each segment) an ANN or exact search over the
//! rows allowed by deletions and the payload filter, then a merge of the top-k.
//!
//! A filtered search returns k results whenever k items match: small candidate sets
//! are searched exactly, large ones through FAISS with a row selector, and any query
//! for which the ANN search comes back short is re-run exactly.

use crate::collection::{Collection, Source};
use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::index::RowFilter;
use crate::types::{Hit, SearchParams, SpaceSpec};
use agentdb_kernels::{topk_exact, Candidates, Distance};

/// One search over one space for a batch of query vectors.
pub struct SearchRequest<'a> {
    /// Space name; empty means the collection's only space.
    pub space: &'a str,
    pub queries: Vec<Vec<f32>>,
    pub k: usize,
    pub filter: Option<&'a Filter>,
    pub params: SearchParams,
    pub with_payload: bool,
    pub with_vectors: bool,
}

fn exact_score(distance: Distance, q: &[f32], v: &[f32]) -> f32 {
    match distance {
        Distance::InnerProduct => agentdb_kernels::topk::dot(q, v),
        Distance::L2 => agentdb_kernels::topk::l2_squared(q, v),
    }
}

/// Ask for every cache line of `v` now. The rows a query re-scores are scattered
/// misses (with `search.hnsw_walk = "fp16"` the walk did not read them at all); asked
/// for together, their latencies overlap instead of adding up.
#[inline]
fn prefetch(v: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    for line in v.chunks(16) {
        // SAFETY: a prefetch is a hint; the address is inside `v`.
        unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(line.as_ptr() as *const i8) };
    }
}

/// Whether an index family returns approximate distances worth re-ranking more of.
fn quantized(kind: &str) -> bool {
    ["PQ", "SQ", "LSH", "RaBitQ"].iter().any(|q| kind.contains(q))
}

impl Collection {
    pub fn search(&self, req: SearchRequest<'_>) -> Result<Vec<Vec<Hit>>> {
        self.check_open()?;
        let (s, space) = self.spec.resolve_space(req.space)?;
        let space: SpaceSpec = space.clone();
        if req.k == 0 {
            return Err(Error::invalid("top_k must be at least 1"));
        }
        if req.k > self.options.limits.max_top_k {
            return Err(Error::LimitExceeded(format!(
                "top_k {} exceeds the limit of {}",
                req.k, self.options.limits.max_top_k
            )));
        }
        if req.queries.is_empty() {
            return Err(Error::invalid("search needs at least one query vector"));
        }
        if req.queries.len() > self.options.limits.max_batch {
            return Err(Error::LimitExceeded(format!(
                "{} queries exceed the batch limit of {}",
                req.queries.len(),
                self.options.limits.max_batch
            )));
        }
        let mut flat = Vec::with_capacity(req.queries.len() * space.dim);
        for (i, q) in req.queries.into_iter().enumerate() {
            flat.extend(self.prepare_vector(&space, q, &format!("query {i}"))?);
        }
        let nq = flat.len() / space.dim;
        let k = req.k;
        self.stats.searches.fetch_add(nq as u64, std::sync::atomic::Ordering::Relaxed);

        let st = self.state.read();
        let sources = st.sources();
        // Per query: (score, source index, row)
        let mut merged: Vec<Vec<(f32, usize, u32)>> = vec![Vec::new(); nq];
        for (si, src) in sources.iter().enumerate() {
            if src.rows() == 0 {
                continue;
            }
            let allowed = src.allowed(req.filter);
            let candidates = allowed.as_ref().map_or(src.rows(), |b| b.count_ones());
            if candidates == 0 {
                continue;
            }
            let results = self.search_source(src, s, &space, &flat, k, allowed.as_ref(), candidates, req.params)?;
            for (q, res) in results.into_iter().enumerate() {
                merged[q].extend(res.into_iter().map(|(row, score)| (score, si, row)));
            }
        }
        tracing::debug!(collection = %self.spec.name, space = %space.name, queries = nq, k, sources = sources.len(), "search");
        let mut out = Vec::with_capacity(nq);
        for mut cands in merged {
            cands.sort_by(|a, b| {
                let o = if space.metric.higher_is_better() { b.0.total_cmp(&a.0) } else { a.0.total_cmp(&b.0) };
                o.then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2))
            });
            cands.truncate(k);
            out.push(
                cands
                    .into_iter()
                    .map(|(score, si, row)| {
                        let src = &sources[si];
                        let row = row as usize;
                        Hit {
                            id: src.ids()[row].clone(),
                            score,
                            payload: req.with_payload.then(|| src.payloads()[row].clone()),
                            vector: req
                                .with_vectors
                                .then(|| src.vectors(s)[row * space.dim..(row + 1) * space.dim].to_vec()),
                        }
                    })
                    .collect(),
            );
        }
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    fn search_source(
        &self,
        src: &Source<'_>,
        s: usize,
        space: &SpaceSpec,
        queries: &[f32],
        k: usize,
        allowed: Option<&crate::bitmap::Bitmap>,
        candidates: usize,
        params: SearchParams,
    ) -> Result<Vec<Vec<(u32, f32)>>> {
        let dim = space.dim;
        let distance = space.metric.distance();
        let base = src.vectors(s);
        let rows: std::cell::OnceCell<Vec<u32>> = Default::default();
        let exact = |qs: &[f32]| -> Vec<Vec<(u32, f32)>> {
            let cand = match allowed {
                None => Candidates::All,
                Some(b) => Candidates::Rows(rows.get_or_init(|| b.iter_ones().map(|r| r as u32).collect())),
            };
            topk_exact(qs, base, dim, cand, k, distance)
                .into_iter()
                .map(|v| v.into_iter().map(|n| (n.row, n.score)).collect())
                .collect()
        };
        if let Some(out) = self.search_accelerated(src, s, space, queries, k, allowed, candidates, params, &exact) {
            return Ok(out);
        }
        let index = match src {
            Source::Seg(seg) => seg.indexes.read()[s].clone(),
            Source::Mem(_) => None,
        };
        let fetch = index.as_ref().map_or(k, |ix| if quantized(&ix.kind) { k * 4 } else { k });
        let base_ef = if params.ef > 0 { params.ef } else { index.as_ref().map_or(0, |ix| ix.ef_search()) };
        let ef = filtered_ef(base_ef.max(fetch), candidates, src.rows());
        let Some(index) = index.filter(|ix| {
            !params.exact && candidates > self.options.exact_threshold.max(k) && !exact_is_cheaper(ix, candidates, ef)
        }) else {
            return Ok(exact(queries));
        };
        let ef = if params.ef > 0 || ef != base_ef { ef } else { 0 };
        let ann = match index.search_ef(
            queries,
            fetch,
            allowed.map(|b| RowFilter { bitmap: b.bytes() }),
            params.nprobe,
            ef,
        ) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(collection = %self.spec.name, index = %index.kind, error = %e, "ANN search failed; searching exactly");
                return Ok(exact(queries));
            }
        };
        let want = k.min(candidates);
        // Re-rank with exact scores from the stored vectors: every path (index, exact
        // scan, accelerator) gives an item the same fp32 score. `None`: the graph walk
        // ran out of allowed rows, and this query is searched exactly below.
        let rescore = |(q, res): (usize, Vec<(u32, f32)>)| -> Option<Vec<(u32, f32)>> {
            if res.len() < want {
                return None;
            }
            let qv = &queries[q * dim..(q + 1) * dim];
            for (row, _) in &res {
                prefetch(&base[*row as usize * dim..(*row as usize + 1) * dim]);
            }
            let mut scored: Vec<(u32, f32)> = res
                .into_iter()
                .map(|(row, _)| (row, exact_score(distance, qv, &base[row as usize * dim..(row as usize + 1) * dim])))
                .collect();
            sort_scored(distance, &mut scored);
            scored.truncate(k);
            Some(scored)
        };
        // A large batch re-ranks on the rayon pool, as its graph walks ran: serially, the
        // re-ranking (a cache miss per row) was the batch's longest serial stretch.
        let ranked: Vec<Option<Vec<(u32, f32)>>> = if ann.len() >= PARALLEL_RESCORE {
            use rayon::prelude::*;
            ann.into_par_iter().enumerate().map(rescore).collect()
        } else {
            ann.into_iter().enumerate().map(rescore).collect()
        };
        Ok(ranked
            .into_iter()
            .enumerate()
            .map(|(q, r)| r.unwrap_or_else(|| exact(&queries[q * dim..(q + 1) * dim]).pop().unwrap_or_default()))
            .collect())
    }

    /// A sealed segment of a `Flat` space (or an exact search) on the accelerator: it
    /// names candidate rows, enough to survive the rows deletions and the filter drop;
    /// scores are computed here from the stored fp32 vectors. `None`: search on the CPU.
    #[allow(clippy::too_many_arguments)]
    fn search_accelerated(
        &self,
        src: &Source<'_>,
        s: usize,
        space: &SpaceSpec,
        queries: &[f32],
        k: usize,
        allowed: Option<&crate::bitmap::Bitmap>,
        candidates: usize,
        params: SearchParams,
        exact: &ExactFn<'_>,
    ) -> Option<Vec<Vec<(u32, f32)>>> {
        let (Source::Seg(seg), Some(acc)) = (src, self.options.accelerator.as_ref()) else { return None };
        if !(params.exact || space.index.trim().eq_ignore_ascii_case("flat")) {
            return None;
        }
        let fetch = k + (src.rows() - candidates);
        if fetch > acc.max_fetch() {
            return None;
        }
        let (dim, distance) = (space.dim, space.metric.distance());
        let base = src.vectors(s);
        let rows = acc.candidates(seg, s, dim, queries, fetch, distance)?;
        let want = k.min(candidates);
        let mut out = Vec::with_capacity(rows.len());
        for (q, cand) in rows.into_iter().enumerate() {
            let qv = &queries[q * dim..(q + 1) * dim];
            let mut scored: Vec<(u32, f32)> = cand
                .into_iter()
                .filter(|&r| allowed.is_none_or(|b| b.get(r as usize)))
                .map(|r| (r, exact_score(distance, qv, &base[r as usize * dim..(r as usize + 1) * dim])))
                .collect();
            sort_scored(distance, &mut scored);
            scored.truncate(k);
            if scored.len() < want {
                scored = exact(qv).pop().unwrap_or_default();
            }
            out.push(scored);
        }
        Some(out)
    }
}

/// The efSearch for a graph search whose results must pass a filter that allows
/// `candidates` of `rows` rows. The graph walk meets allowed rows at about the filter's
/// selectivity, so it needs that many times more candidates to find `ef` allowed ones
/// (what hnswlib's filtered search does implicitly by walking until it has `ef`
/// allowed results). Capped at the candidate count and at 4,096.
pub(crate) fn filtered_ef(ef: usize, candidates: usize, rows: usize) -> usize {
    if candidates >= rows || candidates == 0 {
        return ef;
    }
    let scaled = (ef as u128 * rows as u128).div_ceil(candidates as u128);
    (scaled.min(candidates.max(ef) as u128).min(4096) as usize).max(ef)
}

/// Whether scanning the `candidates` allowed rows exactly costs less than a graph
/// search with efSearch `ef` (which computes roughly 16 distances per unit of ef on an
/// HNSW graph; other index kinds keep the old rule: exact below 5 % selectivity).
fn exact_is_cheaper(index: &crate::index::AnnIndex, candidates: usize, ef: usize) -> bool {
    if index.is_hnsw() {
        candidates <= ef.saturating_mul(16)
    } else {
        candidates * 20 < index.len()
    }
}

/// Queries in one search from which re-ranking runs on the rayon pool.
const PARALLEL_RESCORE: usize = 16;

/// The CPU exact search of one source for a batch of queries: (row, score) per query.
type ExactFn<'a> = dyn Fn(&[f32]) -> Vec<Vec<(u32, f32)>> + 'a;

/// Best first; equal scores by row.
fn sort_scored(distance: Distance, scored: &mut [(u32, f32)]) {
    scored.sort_by(|a, b| {
        if distance.better(a.1, b.1) {
            std::cmp::Ordering::Less
        } else if distance.better(b.1, a.1) {
            std::cmp::Ordering::Greater
        } else {
            a.0.cmp(&b.0)
        }
    });
}
