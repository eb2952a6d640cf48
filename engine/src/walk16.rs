//! Half-float rows for the HNSW graph walk (`search.hnsw_walk = "fp16"`).
//!
//! A graph walk over 100k × 384 float rows reads 1.5 KB per visited row from memory far
//! larger than the CPU's caches; it is bound by that traffic. With this copy the walk
//! reads 768 bytes per row (the `HalfDC` distance computer in `hnsw_f16.h`); the float
//! rows stay the stored truth, and the engine re-scores every hit from them exactly, so
//! scores are the same as with a float walk and only the walk's candidate order can
//! differ (by half's 11-bit precision). Costs half the vectors' size again in memory.

use std::os::raw::c_int;

/// A segment's rows times `scale`, as IEEE half floats (row-major).
pub struct HalfRows {
    pub data: Vec<u16>,
    /// A power of two bringing the largest magnitude into (128, 256]: far from half's
    /// limit (65504) and from its subnormals. Distances on these rows are scale² times
    /// the float ones, so the walk's order is unchanged by it.
    pub scale: f32,
}

impl HalfRows {
    /// `None` when a value is not finite (nothing to scale by).
    pub fn from_f32(rows: &[f32]) -> Option<HalfRows> {
        let mut max = 0f32;
        for &x in rows {
            if !x.is_finite() {
                return None;
            }
            max = max.max(x.abs());
        }
        let scale = if max > 0.0 { 2f32.powi((8 - max.log2().ceil() as i32).clamp(-120, 120)) } else { 1.0 };
        let data = rows.iter().map(|&x| half::f16::from_f32(x * scale).to_bits()).collect();
        Some(HalfRows { data, scale })
    }
}

mod shim {
    use std::os::raw::c_int;
    extern "C" {
        pub fn agentdb_half_distance(
            q: *const f32,
            b: *const u16,
            d: usize,
            inner_product: c_int,
            portable: c_int,
        ) -> f32;
        #[allow(clippy::too_many_arguments)]
        pub fn agentdb_half_distance4(
            q: *const f32,
            b0: *const u16,
            b1: *const u16,
            b2: *const u16,
            b3: *const u16,
            d: usize,
            inner_product: c_int,
            portable: c_int,
            out: *mut f32,
        );
    }
}

/// One distance from `q` to a half-float row with the walk's selected kernel (or the
/// portable one), for parity tests.
pub fn half_distance(q: &[f32], b: &[u16], inner_product: bool, portable: bool) -> f32 {
    assert_eq!(q.len(), b.len());
    // SAFETY: q.len() floats and as many halves.
    unsafe { shim::agentdb_half_distance(q.as_ptr(), b.as_ptr(), q.len(), inner_product as c_int, portable as c_int) }
}

/// Four distances from `q` to half-float rows with the walk's selected kernel (or the
/// portable one), for parity tests.
pub fn half_distance4(q: &[f32], b: [&[u16]; 4], inner_product: bool, portable: bool) -> [f32; 4] {
    assert!(b.iter().all(|r| r.len() == q.len()));
    let mut out = [0f32; 4];
    // SAFETY: one slice of q.len() floats, four of q.len() halves, four outputs.
    unsafe {
        shim::agentdb_half_distance4(
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

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn half_kernels_match_the_portable_one_and_the_float_distance() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(16);
        for d in (1..=70).chain([127, 128, 384, 385, 768]) {
            let q: Vec<f32> = (0..d).map(|_| rng.random_range(-1.0..1.0)).collect();
            let rows: Vec<Vec<f32>> = (0..4).map(|_| (0..d).map(|_| rng.random_range(-1.0..1.0)).collect()).collect();
            let halves: Vec<Vec<u16>> =
                rows.iter().map(|r| r.iter().map(|&x| half::f16::from_f32(x).to_bits()).collect()).collect();
            let b = [&halves[0][..], &halves[1][..], &halves[2][..], &halves[3][..]];
            for ip in [true, false] {
                let fast = half_distance4(&q, b, ip, false);
                let portable = half_distance4(&q, b, ip, true);
                for j in 0..4 {
                    // Same halves, different summation order: float rounding only.
                    let tol = 1e-5 * (d as f32) + 1e-5 * portable[j].abs();
                    assert!((fast[j] - portable[j]).abs() <= tol, "d {d} ip {ip}: {} vs {}", fast[j], portable[j]);
                    // The single-row kernel (the walk's greedy descent) agrees with both.
                    let one = half_distance(&q, b[j], ip, false);
                    assert!((one - portable[j]).abs() <= tol, "d {d} ip {ip}: single {one} vs {}", portable[j]);
                    assert_eq!(half_distance(&q, b[j], ip, true), portable[j], "portable single and four");
                    // Against the float rows: half's rounding (2^-11 relative per value).
                    let exact: f32 = if ip {
                        q.iter().zip(&rows[j]).map(|(a, b)| a * b).sum()
                    } else {
                        q.iter().zip(&rows[j]).map(|(a, b)| (a - b) * (a - b)).sum()
                    };
                    assert!((portable[j] - exact).abs() <= 2e-3 * (d as f32).sqrt() + 1e-3 * exact.abs(), "d {d}");
                }
            }
        }
    }

    #[test]
    fn rows_are_scaled_into_half_range_and_back() {
        for magnitude in [1e-6f32, 1e-2, 1.0, 300.0, 1e5, 1e30] {
            let rows: Vec<f32> = (0..64).map(|i| magnitude * ((i as f32) - 31.5) / 31.5).collect();
            let h = HalfRows::from_f32(&rows).unwrap();
            let top = half::f16::from_bits(h.data[0]).to_f32().abs();
            assert!(top > 128.0 && top <= 256.0, "{magnitude}: largest {top}");
            for (x, &b) in rows.iter().zip(&h.data) {
                let back = half::f16::from_bits(b).to_f32() / h.scale;
                assert!((back - x).abs() <= magnitude * 1e-3, "{magnitude}: {x} came back {back}");
            }
        }
        assert!(HalfRows::from_f32(&[1.0, f32::NAN]).is_none());
        assert_eq!(HalfRows::from_f32(&[0.0; 8]).unwrap().scale, 1.0);
    }

    /// Real HNSW graphs walked over float and over half rows: the same neighbours (up to
    /// half's rounding), the same recall against exact search, distances close; rows far
    /// outside half's range (1e6) are walked as well as unit ones.
    #[test]
    fn a_half_float_walk_finds_what_the_float_walk_finds() {
        use crate::index::{AnnIndex, IndexTuning};
        use crate::types::Metric;
        use std::sync::Arc;
        let (n, dim, nq, k) = (4000, 64, 200, 10);
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut v: Vec<f32> = (0..n * dim).map(|_| rng.random::<f32>() - 0.5).collect();
        for row in v.chunks_mut(dim) {
            let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
            row.iter_mut().for_each(|x| *x /= norm);
        }
        let qs: Vec<f32> = v[..nq * dim].iter().map(|x| x + 0.05 * (rng.random::<f32>() - 0.5)).collect();
        for metric in [Metric::InnerProduct, Metric::L2] {
            let dist = |a: &[f32], b: &[f32]| -> f32 {
                match metric {
                    Metric::L2 => a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum(),
                    _ => -a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>(),
                }
            };
            let truth: Vec<Vec<u32>> = qs
                .chunks(dim)
                .map(|q| {
                    let mut all: Vec<(f32, u32)> =
                        v.chunks(dim).enumerate().map(|(r, row)| (dist(q, row), r as u32)).collect();
                    all.sort_by(|a, b| a.0.total_cmp(&b.0));
                    all[..k].iter().map(|p| p.1).collect()
                })
                .collect();
            let run = |scale: f32, f16: bool| {
                let rows: Vec<f32> = v.iter().map(|x| x * scale).collect();
                let queries: Vec<f32> = qs.iter().map(|x| x * scale).collect();
                let tuning = IndexTuning { hnsw_walk_f16: f16, ..IndexTuning::default() };
                let mut ix = AnnIndex::build("HNSW16", dim, metric, &rows, tuning).unwrap();
                assert!(ix.share_storage(Arc::new(rows)).unwrap());
                ix.search_ef(&queries, k, None, 0, 32).unwrap()
            };
            let recall = |res: &[Vec<(u32, f32)>]| -> f64 {
                let hits: usize =
                    res.iter().zip(&truth).map(|(r, t)| r.iter().filter(|(row, _)| t.contains(row)).count()).sum();
                hits as f64 / (nq * k) as f64
            };
            let float = run(1.0, false);
            for scale in [1.0f32, 1e6] {
                let half = run(scale, true);
                let (rf, rh) = (recall(&float), recall(&half));
                assert!(rh >= rf - 0.01, "{metric:?} x{scale}: recall {rh} with halves, {rf} with floats");
                let (mut same, mut rounded) = (0, 0);
                for (a, b) in float.iter().zip(&half) {
                    for (row, d) in b {
                        if let Some((_, fd)) = a.iter().find(|(r, _)| r == row) {
                            same += 1;
                            let d = d / (scale * scale);
                            rounded += (d != *fd) as usize;
                            assert!((d - fd).abs() <= 1e-2 * fd.abs().max(0.1), "{metric:?} x{scale}: {d} vs {fd}");
                        }
                    }
                }
                assert!(same * 100 >= nq * k * 97, "{metric:?} x{scale}: {same} of {} hits shared", nq * k);
                // The walk really read the halves: its distances carry their rounding.
                assert!(rounded * 2 > same, "{metric:?} x{scale}: {rounded} of {same} distances differ");
            }
        }
    }
}
