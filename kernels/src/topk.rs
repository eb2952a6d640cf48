//! Exact top-k search for a batch of queries (CPU twin).
//!
//! Scores follow FAISS conventions: inner product is a similarity (higher is better),
//! L2 is the squared Euclidean distance (lower is better).

use rayon::prelude::*;
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// How two vectors are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Distance {
    /// Dot product; larger is closer.
    InnerProduct,
    /// Squared Euclidean distance; smaller is closer.
    L2,
}

impl Distance {
    /// True when `a` ranks before `b`.
    #[inline]
    pub fn better(self, a: f32, b: f32) -> bool {
        match self {
            Distance::InnerProduct => a > b,
            Distance::L2 => a < b,
        }
    }
}

/// One search result: a row of the base matrix and its score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Neighbor {
    pub row: u32,
    pub score: f32,
}

/// Which rows of the base matrix may be returned.
#[derive(Debug, Clone, Copy)]
pub enum Candidates<'a> {
    /// Every row.
    All,
    /// Only these rows (any order, no duplicates expected).
    Rows(&'a [u32]),
}

/// Inner product, with AVX2+FMA where the CPU has it (checked once per process; the
/// portable loop otherwise, or when `AGENTDB_SIMD=generic`).
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if simd::avx2() {
        // SAFETY: the CPU supports AVX2 and FMA (checked at run time).
        return unsafe { simd::dot_avx2(a, b) };
    }
    dot_portable(a, b)
}

/// Squared Euclidean distance, dispatched like [`dot`].
#[inline]
pub fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if simd::avx2() {
        // SAFETY: as in `dot`.
        return unsafe { simd::l2_avx2(a, b) };
    }
    l2_portable(a, b)
}

/// The portable inner product (the SIMD versions' twin; x86-64's baseline SSE2).
#[inline]
pub fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
    // Eight independent accumulators let the compiler vectorise without fast-math.
    let mut acc = [0f32; 8];
    let chunks = a.len() / 8;
    for i in 0..chunks {
        let o = i * 8;
        for j in 0..8 {
            acc[j] += a[o + j] * b[o + j];
        }
    }
    let mut s = 0f32;
    for (x, y) in a[chunks * 8..].iter().zip(&b[chunks * 8..]) {
        s += x * y;
    }
    acc.iter().sum::<f32>() + s
}

/// The portable squared Euclidean distance.
#[inline]
pub fn l2_portable(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = a.len() / 8;
    for i in 0..chunks {
        let o = i * 8;
        for j in 0..8 {
            let d = a[o + j] - b[o + j];
            acc[j] += d * d;
        }
    }
    let mut s = 0f32;
    for (x, y) in a[chunks * 8..].iter().zip(&b[chunks * 8..]) {
        let d = x - y;
        s += d * d;
    }
    acc.iter().sum::<f32>() + s
}

/// Which distance kernels [`dot`] and [`l2_squared`] use in this process.
pub fn simd_level() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    if simd::avx2() {
        return "avx2+fma";
    }
    "portable"
}

#[cfg(target_arch = "x86_64")]
mod simd {
    use std::sync::OnceLock;

    pub fn avx2() -> bool {
        static ON: OnceLock<bool> = OnceLock::new();
        *ON.get_or_init(|| {
            std::env::var("AGENTDB_SIMD").map_or(true, |v| v != "generic")
                && std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
        })
    }

    /// Sixteen accumulators (two AVX registers) with fused multiply-add.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let mut acc = [0f32; 16];
        let chunks = n / 16;
        for i in 0..chunks {
            let o = i * 16;
            for j in 0..16 {
                acc[j] = a[o + j].mul_add(b[o + j], acc[j]);
            }
        }
        let mut s = 0f32;
        for i in chunks * 16..n {
            s = a[i].mul_add(b[i], s);
        }
        let mut h = [0f32; 8];
        for j in 0..8 {
            h[j] = acc[j] + acc[j + 8];
        }
        h.iter().sum::<f32>() + s
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn l2_avx2(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let mut acc = [0f32; 16];
        let chunks = n / 16;
        for i in 0..chunks {
            let o = i * 16;
            for j in 0..16 {
                let d = a[o + j] - b[o + j];
                acc[j] = d.mul_add(d, acc[j]);
            }
        }
        let mut s = 0f32;
        for i in chunks * 16..n {
            let d = a[i] - b[i];
            s = d.mul_add(d, s);
        }
        let mut h = [0f32; 8];
        for j in 0..8 {
            h[j] = acc[j] + acc[j + 8];
        }
        h.iter().sum::<f32>() + s
    }
}

/// Heap entry ordered so that the *worst* kept neighbour is at the top.
struct Worst {
    key: f32,
    row: u32,
}
impl PartialEq for Worst {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Worst {}
impl PartialOrd for Worst {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Worst {
    fn cmp(&self, o: &Self) -> Ordering {
        // `key` is "larger is better"; the max-heap must surface the smallest key,
        // ties broken towards the larger row so results are deterministic.
        o.key.total_cmp(&self.key).then(self.row.cmp(&o.row))
    }
}

struct TopK {
    k: usize,
    heap: BinaryHeap<Worst>,
}

impl TopK {
    fn new(k: usize) -> Self {
        TopK { k, heap: BinaryHeap::with_capacity(k + 1) }
    }
    #[inline]
    fn push(&mut self, row: u32, key: f32) {
        if self.heap.len() < self.k {
            self.heap.push(Worst { key, row });
        } else if let Some(top) = self.heap.peek() {
            if key > top.key || (key == top.key && row < top.row) {
                self.heap.pop();
                self.heap.push(Worst { key, row });
            }
        }
    }
    fn merge(mut self, other: TopK) -> TopK {
        for w in other.heap {
            self.push(w.row, w.key);
        }
        self
    }
    fn into_sorted(self, distance: Distance) -> Vec<Neighbor> {
        let mut v: Vec<Worst> = self.heap.into_vec();
        v.sort();
        v.into_iter()
            .map(|w| Neighbor {
                row: w.row,
                score: match distance {
                    Distance::InnerProduct => w.key,
                    Distance::L2 => -w.key,
                },
            })
            .collect()
    }
}

/// Rows per parallel task when a single query scans a large matrix.
const SCAN_BLOCK: usize = 16 * 1024;

/// Exact top-k of each query in `queries` (row-major, `nq * dim`) against `base`
/// (row-major, `n * dim`), restricted to `candidates`. Results are sorted best first;
/// a query gets fewer than `k` results only when fewer candidates exist.
pub fn topk_exact(
    queries: &[f32],
    base: &[f32],
    dim: usize,
    candidates: Candidates<'_>,
    k: usize,
    distance: Distance,
) -> Vec<Vec<Neighbor>> {
    assert!(dim > 0, "dimension must be positive");
    assert_eq!(queries.len() % dim, 0, "query buffer is not a multiple of dim");
    assert_eq!(base.len() % dim, 0, "base buffer is not a multiple of dim");
    let nq = queries.len() / dim;
    let n = base.len() / dim;
    if k == 0 {
        return vec![Vec::new(); nq];
    }
    let key = |q: &[f32], row: usize| -> f32 {
        let v = &base[row * dim..(row + 1) * dim];
        match distance {
            Distance::InnerProduct => dot(q, v),
            Distance::L2 => -l2_squared(q, v),
        }
    };
    let scan = |q: &[f32], rows: Candidates<'_>, lo: usize, hi: usize| -> TopK {
        let mut top = TopK::new(k);
        match rows {
            Candidates::All => {
                for row in lo..hi {
                    top.push(row as u32, key(q, row));
                }
            }
            Candidates::Rows(rs) => {
                for &row in &rs[lo..hi] {
                    if (row as usize) < n {
                        top.push(row, key(q, row as usize));
                    }
                }
            }
        }
        top
    };
    let total = match candidates {
        Candidates::All => n,
        Candidates::Rows(rs) => rs.len(),
    };
    let one_query = |q: &[f32]| -> Vec<Neighbor> {
        if total <= SCAN_BLOCK || nq > 1 {
            scan(q, candidates, 0, total).into_sorted(distance)
        } else {
            let blocks: Vec<(usize, usize)> =
                (0..total).step_by(SCAN_BLOCK).map(|lo| (lo, (lo + SCAN_BLOCK).min(total))).collect();
            blocks
                .into_par_iter()
                .map(|(lo, hi)| scan(q, candidates, lo, hi))
                .reduce(|| TopK::new(k), TopK::merge)
                .into_sorted(distance)
        }
    };
    if nq == 1 {
        vec![one_query(queries)]
    } else {
        queries.par_chunks(dim).map(one_query).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// The dispatched kernels (AVX2+FMA here when the CPU has it) and their portable
    /// twins agree with a double-precision reference on every length, tails included.
    #[test]
    fn simd_distances_match_portable_ones() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(21);
        for n in (0..=70).chain([127, 128, 384, 385, 1024]) {
            let a: Vec<f32> = (0..n).map(|_| rng.random::<f32>() - 0.5).collect();
            let b: Vec<f32> = (0..n).map(|_| rng.random::<f32>() - 0.5).collect();
            let rd: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
            let rl: f64 = a.iter().zip(&b).map(|(x, y)| ((*x - *y) as f64).powi(2)).sum();
            let tol = |r: f64| 1e-4 * (1.0 + r.abs());
            for (got, r, what) in [
                (dot(&a, &b), rd, "dot"),
                (dot_portable(&a, &b), rd, "dot_portable"),
                (l2_squared(&a, &b), rl, "l2"),
                (l2_portable(&a, &b), rl, "l2_portable"),
            ] {
                assert!((got as f64 - r).abs() < tol(r), "{what} ({}) n={n}: {got} vs {r}", simd_level());
            }
        }
    }

    fn naive(q: &[f32], base: &[f32], dim: usize, rows: &[u32], k: usize, d: Distance) -> Vec<u32> {
        let mut scored: Vec<(u32, f32)> = rows
            .iter()
            .map(|&r| {
                let v = &base[r as usize * dim..(r as usize + 1) * dim];
                let s: f32 = match d {
                    Distance::InnerProduct => q.iter().zip(v).map(|(a, b)| a * b).sum(),
                    Distance::L2 => q.iter().zip(v).map(|(a, b)| (a - b) * (a - b)).sum(),
                };
                (r, s)
            })
            .collect();
        scored.sort_by(|a, b| match d {
            Distance::InnerProduct => b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)),
            Distance::L2 => a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)),
        });
        scored.into_iter().take(k).map(|x| x.0).collect()
    }

    #[test]
    fn matches_naive_scan_for_both_metrics_and_subsets() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let dim = 37; // not a multiple of 8: exercises the tail loop
        let n = 40_000; // more than one scan block
        let base: Vec<f32> = (0..n * dim).map(|_| rng.random::<f32>() - 0.5).collect();
        let queries: Vec<f32> = (0..3 * dim).map(|_| rng.random::<f32>() - 0.5).collect();
        let all: Vec<u32> = (0..n as u32).collect();
        let subset: Vec<u32> = (0..n as u32).filter(|r| r % 7 == 3).collect();
        for d in [Distance::InnerProduct, Distance::L2] {
            for q in queries.chunks(dim) {
                let got = topk_exact(q, &base, dim, Candidates::All, 10, d);
                let want = naive(q, &base, dim, &all, 10, d);
                assert_eq!(got[0].iter().map(|x| x.row).collect::<Vec<_>>(), want);
                let got = topk_exact(q, &base, dim, Candidates::Rows(&subset), 10, d);
                let want = naive(q, &base, dim, &subset, 10, d);
                assert_eq!(got[0].iter().map(|x| x.row).collect::<Vec<_>>(), want);
            }
            let batch = topk_exact(&queries, &base, dim, Candidates::All, 5, d);
            assert_eq!(batch.len(), 3);
            for (i, q) in queries.chunks(dim).enumerate() {
                assert_eq!(batch[i].iter().map(|x| x.row).collect::<Vec<_>>(), naive(q, &base, dim, &all, 5, d));
            }
        }
    }

    #[test]
    fn fewer_candidates_than_k() {
        let base = vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
        let r = topk_exact(&[1.0, 0.0], &base, 2, Candidates::Rows(&[0, 2]), 10, Distance::L2);
        assert_eq!(r[0].len(), 2);
        assert_eq!(r[0][0], Neighbor { row: 0, score: 0.0 });
        assert_eq!(r[0][1], Neighbor { row: 2, score: 1.0 });
        assert!(topk_exact(&[1.0, 0.0], &base, 2, Candidates::All, 0, Distance::L2)[0].is_empty());
    }
}
