//! Exact top-k on an NVIDIA GPU: a cuBLAS GEMM computes query·base scores for a block
//! of base rows, then a fused selection kernel (compiled at run time with NVRTC) keeps
//! the k best of each chunk of columns, and the host merges chunk winners. L2 uses
//! ‖x‖² − 2·q·x from precomputed row norms (‖q‖² is added back on the host).
//!
//! [`topk_blocked`] is the CPU twin of exactly this algorithm (same blocking, same L2
//! rewrite, same merge), always compiled, so the algorithm is tested everywhere and the
//! GPU is checked against it where one is present (`tests/parity.rs`).
//!
//! Everything CUDA is behind the `cuda` feature and loaded dynamically (cudarc): the
//! crate builds on machines without a CUDA toolkit or driver, and [`GpuTopK::new`]
//! reports why no GPU is usable instead of failing to start.

use crate::topk::{dot, Distance, Neighbor};

/// Base rows per GEMM block (bounds the score matrix: queries × BLOCK_ROWS floats).
pub const BLOCK_ROWS: usize = 65_536;
/// Columns each selection thread block reduces to its k best.
pub const CHUNK: usize = 4_096;

/// The selection kernel. One thread block per (column chunk, query): k rounds of a
/// block-wide arg-max over the chunk's keys, each winner masked out for the next round.
pub const SELECT_KERNEL: &str = r#"
#define NEG_INF __int_as_float(0xff800000)
extern "C" __global__ void topk_select(const float* scores, const float* norms, int n_cols, int chunk, int k,
                                       int l2, float* scratch, float* out_key, unsigned int* out_idx) {
    const int q = blockIdx.y;
    const int c0 = blockIdx.x * chunk;
    const int c1 = min(c0 + chunk, n_cols);
    const float* row = scores + (size_t)q * n_cols;
    float* s = scratch + (size_t)q * n_cols;
    for (int c = c0 + threadIdx.x; c < c1; c += blockDim.x) {
        float v = row[c];
        s[c] = l2 ? -(norms[c] - 2.0f * v) : v;
    }
    __syncthreads();
    __shared__ float bk[256];
    __shared__ int bi[256];
    const size_t obase = ((size_t)q * gridDim.x + blockIdx.x) * (size_t)k;
    for (int r = 0; r < k; r++) {
        float best = NEG_INF;
        int besti = -1;
        for (int c = c0 + threadIdx.x; c < c1; c += blockDim.x) {
            float v = s[c];
            if (v > best || (v == best && besti >= 0 && c < besti)) { best = v; besti = c; }
        }
        bk[threadIdx.x] = best;
        bi[threadIdx.x] = besti;
        __syncthreads();
        for (int w = blockDim.x / 2; w > 0; w >>= 1) {
            if (threadIdx.x < w) {
                float ov = bk[threadIdx.x + w];
                int oi = bi[threadIdx.x + w];
                if (oi >= 0 && (bi[threadIdx.x] < 0 || ov > bk[threadIdx.x] ||
                                (ov == bk[threadIdx.x] && oi < bi[threadIdx.x]))) {
                    bk[threadIdx.x] = ov;
                    bi[threadIdx.x] = oi;
                }
            }
            __syncthreads();
        }
        if (threadIdx.x == 0) {
            out_key[obase + r] = bk[0];
            out_idx[obase + r] = (unsigned int)bi[0];
            if (bi[0] >= 0) s[bi[0]] = NEG_INF;
        }
        __syncthreads();
    }
}
"#;

/// Merge per-chunk winners (key = higher is better) into the final top-k of one query,
/// converting keys back to scores. Shared by the GPU path and its CPU twin.
fn merge(cands: &mut [(f32, u32)], k: usize, distance: Distance, q_norm: f32) -> Vec<Neighbor> {
    cands.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    cands
        .iter()
        .filter(|(key, idx)| *idx != u32::MAX && key.is_finite())
        .take(k)
        .map(|&(key, row)| Neighbor {
            row,
            score: match distance {
                Distance::InnerProduct => key,
                Distance::L2 => (q_norm - key).max(0.0),
            },
        })
        .collect()
}

/// CPU twin of the GPU algorithm: GEMM per block of `BLOCK_ROWS` rows, the L2 rewrite,
/// per-`CHUNK` top-k selection, then the merge.
pub fn topk_blocked(queries: &[f32], base: &[f32], dim: usize, k: usize, distance: Distance) -> Vec<Vec<Neighbor>> {
    let nq = queries.len() / dim.max(1);
    let n = base.len() / dim.max(1);
    let norms: Vec<f32> = base.chunks_exact(dim).map(|r| dot(r, r)).collect();
    let mut cands: Vec<Vec<(f32, u32)>> = vec![Vec::new(); nq];
    for b0 in (0..n).step_by(BLOCK_ROWS) {
        let b1 = (b0 + BLOCK_ROWS).min(n);
        for (qi, q) in queries.chunks_exact(dim).enumerate() {
            let keys: Vec<f32> = (b0..b1)
                .map(|r| {
                    let s = dot(q, &base[r * dim..(r + 1) * dim]);
                    match distance {
                        Distance::InnerProduct => s,
                        Distance::L2 => -(norms[r] - 2.0 * s),
                    }
                })
                .collect();
            for (ci, chunk) in keys.chunks(CHUNK).enumerate() {
                let mut idx: Vec<usize> = (0..chunk.len()).collect();
                idx.sort_by(|&a, &b| chunk[b].total_cmp(&chunk[a]).then(a.cmp(&b)));
                for &i in idx.iter().take(k) {
                    cands[qi].push((chunk[i], (b0 + ci * CHUNK + i) as u32));
                }
            }
        }
    }
    queries.chunks_exact(dim).zip(cands.iter_mut()).map(|(q, c)| merge(c, k, distance, dot(q, q))).collect()
}

#[cfg(feature = "cuda")]
pub use cuda::{probe, GpuBase, GpuInfo, GpuTopK};

#[cfg(feature = "cuda")]
mod cuda {
    use super::*;
    use cudarc::cublas::{sys::cublasOperation_t, CudaBlas, Gemm, GemmConfig};
    use cudarc::driver::{CudaContext, CudaFunction, CudaSlice, CudaStream, LaunchConfig, PushKernelArg};
    use std::sync::Arc;

    /// A usable GPU.
    #[derive(Debug, Clone)]
    pub struct GpuInfo {
        pub ordinal: usize,
        pub name: String,
        pub total_bytes: usize,
        pub free_bytes: usize,
    }

    fn libs_present() -> Result<(), String> {
        // Safety: these only try to dlopen the libraries.
        unsafe {
            if !cudarc::driver::sys::is_culib_present() {
                return Err("no CUDA driver (libcuda) on this machine".into());
            }
            if !cudarc::cublas::sys::is_culib_present() {
                return Err("CUDA driver found but no cuBLAS library (libcublas)".into());
            }
            if !cudarc::nvrtc::sys::is_culib_present() {
                return Err("CUDA driver found but no NVRTC library (libnvrtc)".into());
            }
        }
        Ok(())
    }

    /// Describe GPU `ordinal`, or say why it cannot be used.
    pub fn probe(ordinal: usize) -> Result<GpuInfo, String> {
        libs_present()?;
        let count = CudaContext::device_count().map_err(|e| format!("CUDA driver error: {e}"))?;
        if ordinal >= count.max(0) as usize {
            return Err(format!("GPU {ordinal} requested, {count} present"));
        }
        let ctx = CudaContext::new(ordinal).map_err(|e| format!("cannot open GPU {ordinal}: {e}"))?;
        let name = ctx.name().unwrap_or_else(|_| "unknown GPU".into());
        let (free_bytes, total_bytes) = ctx.mem_get_info().map_err(|e| e.to_string())?;
        Ok(GpuInfo { ordinal, name, total_bytes, free_bytes })
    }

    /// Base vectors resident on the GPU.
    pub struct GpuBase {
        rows: usize,
        dim: usize,
        data: CudaSlice<f32>,
        norms: CudaSlice<f32>,
    }

    pub struct GpuTopK {
        pub info: GpuInfo,
        stream: Arc<CudaStream>,
        blas: CudaBlas,
        select: CudaFunction,
    }

    fn err(e: impl std::fmt::Display) -> String {
        e.to_string()
    }

    impl GpuTopK {
        pub fn new(ordinal: usize) -> Result<GpuTopK, String> {
            let info = probe(ordinal)?;
            let ctx = CudaContext::new(ordinal).map_err(err)?;
            let stream = ctx.default_stream();
            let blas = CudaBlas::new(stream.clone()).map_err(err)?;
            let ptx = cudarc::nvrtc::compile_ptx(SELECT_KERNEL).map_err(|e| format!("NVRTC: {e}"))?;
            let module = ctx.load_module(ptx).map_err(err)?;
            let select = module.load_function("topk_select").map_err(err)?;
            Ok(GpuTopK { info, stream, blas, select })
        }

        /// Copy `base` (row-major, `rows × dim`) and its row norms to the device.
        pub fn upload(&self, base: &[f32], dim: usize) -> Result<GpuBase, String> {
            let rows = base.len() / dim.max(1);
            let need = (base.len() + rows) * 4;
            let (free, _) = self.stream.context().mem_get_info().map_err(err)?;
            if need > free {
                return Err(format!("{need} bytes of vectors do not fit in {free} bytes of free GPU memory"));
            }
            let norms: Vec<f32> = base.chunks_exact(dim).map(|r| dot(r, r)).collect();
            Ok(GpuBase {
                rows,
                dim,
                data: self.stream.clone_htod(base).map_err(err)?,
                norms: self.stream.clone_htod(&norms).map_err(err)?,
            })
        }

        /// Exact top-k of each query against a resident base.
        pub fn search(
            &self,
            base: &GpuBase,
            queries: &[f32],
            k: usize,
            distance: Distance,
        ) -> Result<Vec<Vec<Neighbor>>, String> {
            let (dim, n) = (base.dim, base.rows);
            let nq = queries.len() / dim.max(1);
            if nq == 0 || n == 0 || k == 0 {
                return Ok(vec![Vec::new(); nq]);
            }
            let k_sel = k.min(CHUNK) as i32;
            let q_dev = self.stream.clone_htod(queries).map_err(err)?;
            let block = BLOCK_ROWS.min(n);
            let mut scores = self.stream.alloc_zeros::<f32>(nq * block).map_err(err)?;
            let mut scratch = self.stream.alloc_zeros::<f32>(nq * block).map_err(err)?;
            let mut cands: Vec<Vec<(f32, u32)>> = vec![Vec::new(); nq];
            for b0 in (0..n).step_by(BLOCK_ROWS) {
                let rows = (n - b0).min(BLOCK_ROWS);
                // Column-major view: C (rows × nq) = A^T (rows × dim) · Q (dim × nq), which
                // is the row-major nq × rows score matrix.
                let cfg = GemmConfig {
                    transa: cublasOperation_t::CUBLAS_OP_T,
                    transb: cublasOperation_t::CUBLAS_OP_N,
                    m: rows as i32,
                    n: nq as i32,
                    k: dim as i32,
                    alpha: 1.0f32,
                    lda: dim as i32,
                    ldb: dim as i32,
                    beta: 0.0f32,
                    ldc: rows as i32,
                };
                let a = base.data.slice(b0 * dim..(b0 + rows) * dim);
                // Safety: the shapes above match the buffers' lengths.
                unsafe { self.blas.gemm(cfg, &a, &q_dev, &mut scores) }.map_err(err)?;
                let chunks = rows.div_ceil(CHUNK);
                let mut out_key = self.stream.alloc_zeros::<f32>(nq * chunks * k_sel as usize).map_err(err)?;
                let mut out_idx = self.stream.alloc_zeros::<u32>(nq * chunks * k_sel as usize).map_err(err)?;
                let norms = base.norms.slice(b0..b0 + rows);
                let (n_cols, chunk, l2) = (rows as i32, CHUNK as i32, (distance == Distance::L2) as i32);
                let launch = LaunchConfig {
                    grid_dim: (chunks as u32, nq as u32, 1),
                    block_dim: (256, 1, 1),
                    shared_mem_bytes: 0,
                };
                let mut b = self.stream.launch_builder(&self.select);
                b.arg(&scores).arg(&norms).arg(&n_cols).arg(&chunk).arg(&k_sel).arg(&l2);
                b.arg(&mut scratch).arg(&mut out_key).arg(&mut out_idx);
                // Safety: the kernel's arguments match its signature and buffer sizes.
                unsafe { b.launch(launch) }.map_err(err)?;
                let keys = self.stream.clone_dtoh(&out_key).map_err(err)?;
                let idx = self.stream.clone_dtoh(&out_idx).map_err(err)?;
                let per_q = chunks * k_sel as usize;
                for (qi, c) in cands.iter_mut().enumerate() {
                    for j in 0..per_q {
                        let i = idx[qi * per_q + j];
                        if i != u32::MAX {
                            c.push((keys[qi * per_q + j], b0 as u32 + i));
                        }
                    }
                }
            }
            Ok(queries.chunks_exact(dim).zip(cands.iter_mut()).map(|(q, c)| merge(c, k, distance, dot(q, q))).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topk::{topk_exact, Candidates};

    fn vecs(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n * dim)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
            .collect()
    }

    #[test]
    fn blocked_twin_matches_the_exact_kernel() {
        let (n, dim, nq) = (BLOCK_ROWS + 5_000, 16, 3);
        let base = vecs(n, dim, 1);
        let q = vecs(nq, dim, 2);
        for distance in [Distance::InnerProduct, Distance::L2] {
            let want = topk_exact(&q, &base, dim, Candidates::All, 10, distance);
            let got = topk_blocked(&q, &base, dim, 10, distance);
            for (w, g) in want.iter().zip(&got) {
                assert_eq!(w.iter().map(|n| n.row).collect::<Vec<_>>(), g.iter().map(|n| n.row).collect::<Vec<_>>());
                for (a, b) in w.iter().zip(g) {
                    assert!((a.score - b.score).abs() < 1e-4 * (1.0 + a.score.abs()), "{a:?} {b:?}");
                }
            }
        }
    }
}
