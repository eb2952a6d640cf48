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

/// Base rows per GEMM block of the CPU twin (the GPU sizes its blocks from
/// [`SCORE_FLOATS`]; blocking changes only the order of equal scores).
pub const BLOCK_ROWS: usize = 65_536;
/// Columns each selection thread block reduces to its k best (256 threads × 16 registers).
pub const CHUNK: usize = 4_096;
/// The largest k the device selects; larger k runs on the CPU.
pub const MAX_GPU_K: usize = 1_024;
/// Upper bound on the score matrix (queries × block rows) the GPU holds at once.
pub const SCORE_FLOATS: usize = 1 << 28;

/// Storage precision of vectors on the device. `F16` halves memory and bandwidth; the
/// GEMM still accumulates in fp32 (cuBLAS `GemmEx`, compute type 32F).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    F32,
    F16,
}

impl Precision {
    pub fn parse(s: &str) -> Result<Precision, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "fp32" | "f32" => Ok(Precision::F32),
            "fp16" | "f16" | "half" => Ok(Precision::F16),
            other => Err(format!("precision '{other}' is not fp32 or fp16")),
        }
    }
    pub fn bytes(self) -> usize {
        match self {
            Precision::F32 => 4,
            Precision::F16 => 2,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "fp32",
            Precision::F16 => "fp16",
        }
    }
}

/// Round every value to fp16 and back: what the device sees of an fp16 upload.
pub fn round_f16(v: &[f32]) -> Vec<f32> {
    v.iter().map(|&x| half::f16::from_f32(x).to_f32()).collect()
}

/// The selection kernel. One thread block of 256 threads per (chunk of 4096 columns,
/// query): each thread keeps its 16 keys in registers; k rounds of a warp-shuffle
/// arg-max pick the chunk's k best (ties: lower column first). The output of one launch
/// (queries × chunks·k keys, with their original columns) is the input of the next
/// until one chunk is left, so only queries × k results leave the device.
/// Stage 1 reads GEMM scores (L2 turns them into −‖x‖² + 2·q·x); later stages carry
/// the column each key came from in `idx_in`.
pub const SELECT_KERNEL: &str = r#"
#define NEG_INF __int_as_float(0xff800000)
#define THREADS 256
#define PER 16
#define CHUNK (THREADS * PER)
__device__ __forceinline__ void better(float& bk, int& bi, float ok, int oi) {
    if (oi >= 0 && (bi < 0 || ok > bk || (ok == bk && oi < bi))) { bk = ok; bi = oi; }
}
extern "C" __global__ void topk_select(const float* keys, const unsigned int* idx_in, int has_idx,
                                       const float* norms, int l2, int n_cols, int k,
                                       float* out_key, unsigned int* out_idx) {
    const int q = blockIdx.y;
    const int c0 = blockIdx.x * CHUNK;
    const float* row = keys + (size_t)q * n_cols;
    float v[PER];
#pragma unroll
    for (int j = 0; j < PER; j++) {
        const int c = c0 + j * THREADS + threadIdx.x;
        float x = NEG_INF;
        if (c < n_cols) {
            x = row[c];
            if (l2) x = -(norms[c] - 2.0f * x);
            if (x != x) x = NEG_INF;
        }
        v[j] = x;
    }
    __shared__ float wk[THREADS / 32];
    __shared__ int wi[THREADS / 32];
    __shared__ int winner;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const size_t obase = ((size_t)q * gridDim.x + blockIdx.x) * (size_t)k;
    for (int r = 0; r < k; r++) {
        float best = NEG_INF;
        int bi = -1;
#pragma unroll
        for (int j = 0; j < PER; j++) {
            if (v[j] > best) { best = v[j]; bi = c0 + j * THREADS + threadIdx.x; }
        }
        for (int off = 16; off > 0; off >>= 1) {
            const float ok = __shfl_down_sync(0xffffffffu, best, off);
            const int oi = __shfl_down_sync(0xffffffffu, bi, off);
            better(best, bi, ok, oi);
        }
        if (lane == 0) { wk[warp] = best; wi[warp] = bi; }
        __syncthreads();
        if (warp == 0) {
            best = lane < THREADS / 32 ? wk[lane] : NEG_INF;
            bi = lane < THREADS / 32 ? wi[lane] : -1;
            for (int off = 16; off > 0; off >>= 1) {
                const float ok = __shfl_down_sync(0xffffffffu, best, off);
                const int oi = __shfl_down_sync(0xffffffffu, bi, off);
                better(best, bi, ok, oi);
            }
            if (lane == 0) {
                out_key[obase + r] = best;
                out_idx[obase + r] = bi < 0 ? 0xffffffffu : (has_idx ? idx_in[(size_t)q * n_cols + bi] : (unsigned int)bi);
                winner = bi;
            }
        }
        __syncthreads();
        const int w = winner;
        if (w < 0) {
            for (int r2 = r + 1 + threadIdx.x; r2 < k; r2 += THREADS) {
                out_key[obase + r2] = NEG_INF;
                out_idx[obase + r2] = 0xffffffffu;
            }
            break;
        }
        const int rel = w - c0;
        if (rel % THREADS == (int)threadIdx.x) {
#pragma unroll
            for (int j = 0; j < PER; j++) if (j == rel / THREADS) v[j] = NEG_INF;
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

/// CPU twin of fp16 storage: the same algorithm over the fp16-rounded queries and base.
pub fn topk_blocked_f16(queries: &[f32], base: &[f32], dim: usize, k: usize, distance: Distance) -> Vec<Vec<Neighbor>> {
    topk_blocked(&round_f16(queries), &round_f16(base), dim, k, distance)
}

/// A usable GPU.
#[derive(Debug, Clone)]
pub struct GpuInfo {
    pub ordinal: usize,
    pub name: String,
    pub total_bytes: usize,
    pub free_bytes: usize,
}

/// What a GPU call says in a build without the `cuda` feature.
pub const NOT_BUILT: &str = "this binary was built without the `cuda` feature (make build FEATURES=cuda)";

/// Why a GPU kernel could not run. Every GPU entry point returns it, in builds with and
/// without the `cuda` feature, so callers handle one type and fall back to the CPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GpuError {
    /// This binary was built without the `cuda` feature.
    NotBuilt,
    /// No usable device here: no driver, cuBLAS or NVRTC library, or no such ordinal.
    Unavailable(String),
    /// The device, a library or the input refused the work (out of memory, a kernel
    /// that failed to compile or launch, sizes beyond a kernel's limits).
    Failed(String),
}

impl std::fmt::Display for GpuError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GpuError::NotBuilt => f.write_str(NOT_BUILT),
            GpuError::Unavailable(m) | GpuError::Failed(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for GpuError {}

impl From<String> for GpuError {
    fn from(m: String) -> Self {
        GpuError::Failed(m)
    }
}

impl From<&str> for GpuError {
    fn from(m: &str) -> Self {
        GpuError::Failed(m.to_string())
    }
}

/// For callers whose errors are messages.
impl From<GpuError> for String {
    fn from(e: GpuError) -> Self {
        e.to_string()
    }
}

#[cfg(not(feature = "cuda"))]
pub use nocuda::{probe, GpuBase, GpuTopK};

/// The GPU API in a build without the `cuda` feature (as candle's dummy backend): the
/// same types and signatures, whose constructors fail with [`NOT_BUILT`], so callers
/// compile one way and fall back to the CPU at run time.
#[cfg(not(feature = "cuda"))]
mod nocuda {
    use super::*;
    use std::convert::Infallible;

    pub fn probe(_ordinal: usize) -> Result<GpuInfo, GpuError> {
        Err(GpuError::NotBuilt)
    }

    pub struct GpuBase(Infallible);

    impl GpuBase {
        pub fn rows(&self) -> usize {
            match self.0 {}
        }
        pub fn precision(&self) -> Precision {
            match self.0 {}
        }
        pub fn bytes(&self) -> usize {
            match self.0 {}
        }
    }

    pub struct GpuTopK {
        pub info: GpuInfo,
        never: Infallible,
    }

    impl GpuTopK {
        pub fn new(_ordinal: usize) -> Result<GpuTopK, GpuError> {
            Err(GpuError::NotBuilt)
        }
        pub fn mem_info(&self) -> Result<(usize, usize), GpuError> {
            match self.never {}
        }
        pub fn upload(&self, _base: &[f32], _dim: usize) -> Result<GpuBase, GpuError> {
            match self.never {}
        }
        pub fn upload_as(&self, _base: &[f32], _dim: usize, _precision: Precision) -> Result<GpuBase, GpuError> {
            match self.never {}
        }
        pub fn search(
            &self,
            _base: &GpuBase,
            _queries: &[f32],
            _k: usize,
            _distance: Distance,
        ) -> Result<Vec<Vec<Neighbor>>, GpuError> {
            match self.never {}
        }
    }
}

#[cfg(feature = "cuda")]
pub(crate) use cuda::{open, Opened};
#[cfg(feature = "cuda")]
pub use cuda::{probe, GpuBase, GpuTopK};

#[cfg(feature = "cuda")]
mod cuda {
    use super::*;
    use cudarc::cublas::sys::{cublasComputeType_t, cublasGemmAlgo_t, cublasOperation_t, cudaDataType_t};
    use cudarc::cublas::CudaBlas;
    use cudarc::driver::{
        CudaContext, CudaFunction, CudaSlice, CudaStream, DevicePtr, DevicePtrMut, LaunchConfig, PushKernelArg,
    };
    use std::sync::Arc;

    fn libs_present() -> Result<(), GpuError> {
        // Safety: these only try to dlopen the libraries.
        unsafe {
            if !cudarc::driver::sys::is_culib_present() {
                return Err(GpuError::Unavailable("no CUDA driver (libcuda) on this machine".into()));
            }
            if !cudarc::cublas::sys::is_culib_present() {
                return Err(GpuError::Unavailable("CUDA driver found but no cuBLAS library (libcublas)".into()));
            }
            if !cudarc::nvrtc::sys::is_culib_present() {
                return Err(GpuError::Unavailable("CUDA driver found but no NVRTC library (libnvrtc)".into()));
            }
        }
        Ok(())
    }

    /// Describe GPU `ordinal`, or say why it cannot be used.
    pub fn probe(ordinal: usize) -> Result<GpuInfo, GpuError> {
        libs_present()?;
        let count =
            CudaContext::device_count().map_err(|e| GpuError::Unavailable(format!("CUDA driver error: {e}")))?;
        if ordinal >= count.max(0) as usize {
            return Err(GpuError::Unavailable(format!("GPU {ordinal} requested, {count} present")));
        }
        let ctx =
            CudaContext::new(ordinal).map_err(|e| GpuError::Unavailable(format!("cannot open GPU {ordinal}: {e}")))?;
        let name = ctx.name().unwrap_or_else(|_| "unknown GPU".into());
        let (free_bytes, total_bytes) = ctx.mem_get_info().map_err(|e| e.to_string())?;
        Ok(GpuInfo { ordinal, name, total_bytes, free_bytes })
    }

    enum Data {
        F32(CudaSlice<f32>),
        F16(CudaSlice<half::f16>),
    }

    /// Base vectors resident on the GPU.
    pub struct GpuBase {
        rows: usize,
        dim: usize,
        data: Data,
        norms: CudaSlice<f32>,
    }

    impl GpuBase {
        pub fn rows(&self) -> usize {
            self.rows
        }
        pub fn precision(&self) -> Precision {
            match self.data {
                Data::F32(_) => Precision::F32,
                Data::F16(_) => Precision::F16,
            }
        }
        /// Device memory the vectors and their norms take.
        pub fn bytes(&self) -> usize {
            self.rows * self.dim * self.precision().bytes() + self.rows * 4
        }
    }

    pub struct GpuTopK {
        pub info: GpuInfo,
        stream: Arc<CudaStream>,
        blas: CudaBlas,
        select: CudaFunction,
    }

    fn err(e: impl std::fmt::Display) -> GpuError {
        GpuError::Failed(e.to_string())
    }

    /// GPU `ordinal` opened for one family of kernels: its default stream, a cuBLAS
    /// handle on that stream and `src` compiled with NVRTC.
    pub(crate) struct Opened {
        pub info: GpuInfo,
        pub stream: Arc<CudaStream>,
        pub blas: CudaBlas,
        pub module: Arc<cudarc::driver::CudaModule>,
    }

    pub(crate) fn open(ordinal: usize, src: &str) -> Result<Opened, GpuError> {
        let info = probe(ordinal)?;
        let ctx = CudaContext::new(ordinal).map_err(err)?;
        let stream = ctx.default_stream();
        let blas = CudaBlas::new(stream.clone()).map_err(err)?;
        let ptx = cudarc::nvrtc::compile_ptx(src).map_err(|e| format!("NVRTC: {e}"))?;
        let module = ctx.load_module(ptx).map_err(err)?;
        Ok(Opened { info, stream, blas, module })
    }

    impl GpuTopK {
        pub fn new(ordinal: usize) -> Result<GpuTopK, GpuError> {
            let Opened { info, stream, blas, module } = open(ordinal, SELECT_KERNEL)?;
            let select = module.load_function("topk_select").map_err(err)?;
            Ok(GpuTopK { info, stream, blas, select })
        }

        /// Free and total device memory now.
        pub fn mem_info(&self) -> Result<(usize, usize), GpuError> {
            self.stream.context().bind_to_thread().map_err(err)?;
            self.stream.context().mem_get_info().map_err(err)
        }

        /// Copy `base` (row-major, `rows × dim`) and its row norms to the device, fp32.
        pub fn upload(&self, base: &[f32], dim: usize) -> Result<GpuBase, GpuError> {
            self.upload_as(base, dim, Precision::F32)
        }

        /// Copy `base` to the device in `precision` (norms from the stored values, so L2
        /// is exact for what the device holds).
        pub fn upload_as(&self, base: &[f32], dim: usize, precision: Precision) -> Result<GpuBase, GpuError> {
            // Callers come from any thread (the server's blocking pool).
            self.stream.context().bind_to_thread().map_err(err)?;
            let rows = base.len() / dim.max(1);
            let need = rows * dim * precision.bytes() + rows * 4;
            let (free, _) = self.mem_info()?;
            if need > free {
                return Err(format!("{need} bytes of vectors do not fit in {free} bytes of free GPU memory").into());
            }
            let (data, norms) = match precision {
                Precision::F32 => {
                    let norms: Vec<f32> = base.chunks_exact(dim).map(|r| dot(r, r)).collect();
                    (Data::F32(self.stream.clone_htod(base).map_err(err)?), norms)
                }
                Precision::F16 => {
                    let h: Vec<half::f16> = base.iter().map(|&x| half::f16::from_f32(x)).collect();
                    let norms: Vec<f32> =
                        h.chunks_exact(dim).map(|r| r.iter().map(|x| x.to_f32() * x.to_f32()).sum::<f32>()).collect();
                    (Data::F16(self.stream.clone_htod(&h).map_err(err)?), norms)
                }
            };
            Ok(GpuBase { rows, dim, data, norms: self.stream.clone_htod(&norms).map_err(err)? })
        }

        /// Rows per GEMM block for `nq` queries: the score matrix stays under
        /// [`SCORE_FLOATS`], a whole number of selection chunks.
        fn block_rows(n: usize, nq: usize) -> usize {
            let r = (SCORE_FLOATS / nq.max(1)).max(CHUNK) / CHUNK * CHUNK;
            r.min(n)
        }

        /// `C (rows × nq, column-major) = A^T · Q`: the row-major nq × rows score matrix.
        unsafe fn gemm(
            &self,
            base: &GpuBase,
            b0: usize,
            rows: usize,
            q: &QueryBuf,
            nq: usize,
            scores: &mut CudaSlice<f32>,
        ) -> Result<(), GpuError> {
            let dim = base.dim;
            let (alpha, beta) = (1.0f32, 0.0f32);
            let (c, _rc) = scores.device_ptr_mut(&self.stream);
            let offset = (b0 * dim * base.precision().bytes()) as u64;
            let (a, _ra, qp, _rq, ty) = match (&base.data, q) {
                (Data::F32(d), QueryBuf::F32(qd)) => {
                    let (a, ra) = d.device_ptr(&self.stream);
                    let (qp, rq) = qd.device_ptr(&self.stream);
                    (a + offset, ra, qp, rq, cudaDataType_t::CUDA_R_32F)
                }
                (Data::F16(d), QueryBuf::F16(qd)) => {
                    let (a, ra) = d.device_ptr(&self.stream);
                    let (qp, rq) = qd.device_ptr(&self.stream);
                    (a + offset, ra, qp, rq, cudaDataType_t::CUDA_R_16F)
                }
                _ => return Err("query and base precision differ".into()),
            };
            cudarc::cublas::result::gemm_ex(
                *self.blas.handle(),
                cublasOperation_t::CUBLAS_OP_T,
                cublasOperation_t::CUBLAS_OP_N,
                rows as i32,
                nq as i32,
                dim as i32,
                (&alpha) as *const f32 as *const _,
                a as *const _,
                ty,
                dim as i32,
                qp as *const _,
                ty,
                dim as i32,
                (&beta) as *const f32 as *const _,
                c as *mut _,
                cudaDataType_t::CUDA_R_32F,
                rows as i32,
                cublasComputeType_t::CUBLAS_COMPUTE_32F,
                cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
            )
            .map_err(err)
        }

        /// Exact top-k of each query against a resident base. Queries are rounded to
        /// the base's precision; scores are the device's (fp32 accumulation).
        pub fn search(
            &self,
            base: &GpuBase,
            queries: &[f32],
            k: usize,
            distance: Distance,
        ) -> Result<Vec<Vec<Neighbor>>, GpuError> {
            let (dim, n) = (base.dim, base.rows);
            let nq = queries.len() / dim.max(1);
            if nq == 0 || n == 0 || k == 0 {
                return Ok(vec![Vec::new(); nq]);
            }
            if k > MAX_GPU_K {
                return Err(format!("k {k} exceeds the GPU selection limit of {MAX_GPU_K}").into());
            }
            self.stream.context().bind_to_thread().map_err(err)?;
            let (q_host, q_dev) = match base.precision() {
                Precision::F32 => (queries.to_vec(), QueryBuf::F32(self.stream.clone_htod(queries).map_err(err)?)),
                Precision::F16 => {
                    let h: Vec<half::f16> = queries.iter().map(|&x| half::f16::from_f32(x)).collect();
                    (h.iter().map(|x| x.to_f32()).collect(), QueryBuf::F16(self.stream.clone_htod(&h).map_err(err)?))
                }
            };
            let block = Self::block_rows(n, nq);
            let mut scores = self.stream.alloc_zeros::<f32>(nq * block).map_err(err)?;
            // Stage buffers: the first stage leaves nq × chunks·k candidates.
            let stage_cols = block.div_ceil(CHUNK) * k;
            let mut key_a = self.stream.alloc_zeros::<f32>(nq * stage_cols).map_err(err)?;
            let mut idx_a = self.stream.alloc_zeros::<u32>(nq * stage_cols).map_err(err)?;
            let mut key_b = self.stream.alloc_zeros::<f32>(nq * stage_cols.div_ceil(CHUNK) * k).map_err(err)?;
            let mut idx_b = self.stream.alloc_zeros::<u32>(nq * stage_cols.div_ceil(CHUNK) * k).map_err(err)?;
            let mut cands: Vec<Vec<(f32, u32)>> = vec![Vec::with_capacity(k * n.div_ceil(block)); nq];
            let (k_i, l2) = (k as i32, (distance == Distance::L2) as i32);
            for b0 in (0..n).step_by(block) {
                let rows = (n - b0).min(block);
                // Safety: the shapes match the buffers' lengths.
                unsafe { self.gemm(base, b0, rows, &q_dev, nq, &mut scores)? };
                let norms = base.norms.slice(b0..b0 + rows);
                // Stage 1: scores -> A.
                let mut cols = rows;
                let mut chunks = cols.div_ceil(CHUNK);
                {
                    let (has_idx, n_cols) = (0i32, cols as i32);
                    let mut b = self.stream.launch_builder(&self.select);
                    b.arg(&scores).arg(&idx_b).arg(&has_idx).arg(&norms).arg(&l2).arg(&n_cols).arg(&k_i);
                    b.arg(&mut key_a).arg(&mut idx_a);
                    let cfg = LaunchConfig {
                        grid_dim: (chunks as u32, nq as u32, 1),
                        block_dim: (256, 1, 1),
                        shared_mem_bytes: 0,
                    };
                    // Safety: arguments match the kernel's signature and buffer sizes.
                    unsafe { b.launch(cfg) }.map_err(err)?;
                }
                // Later stages: A -> B -> A ... until one chunk is left.
                let mut in_a = true;
                while chunks > 1 {
                    cols = chunks * k;
                    chunks = cols.div_ceil(CHUNK);
                    let (has_idx, no_l2, n_cols) = (1i32, 0i32, cols as i32);
                    let cfg = LaunchConfig {
                        grid_dim: (chunks as u32, nq as u32, 1),
                        block_dim: (256, 1, 1),
                        shared_mem_bytes: 0,
                    };
                    let mut b = self.stream.launch_builder(&self.select);
                    if in_a {
                        b.arg(&key_a).arg(&idx_a).arg(&has_idx).arg(&norms).arg(&no_l2).arg(&n_cols).arg(&k_i);
                        b.arg(&mut key_b).arg(&mut idx_b);
                    } else {
                        b.arg(&key_b).arg(&idx_b).arg(&has_idx).arg(&norms).arg(&no_l2).arg(&n_cols).arg(&k_i);
                        b.arg(&mut key_a).arg(&mut idx_a);
                    }
                    // Safety: as above; each stage's output fits the other buffer.
                    unsafe { b.launch(cfg) }.map_err(err)?;
                    in_a = !in_a;
                }
                let (keys, idx) = if in_a {
                    (
                        self.stream.clone_dtoh(&key_a.slice(..nq * k)).map_err(err)?,
                        self.stream.clone_dtoh(&idx_a.slice(..nq * k)).map_err(err)?,
                    )
                } else {
                    (
                        self.stream.clone_dtoh(&key_b.slice(..nq * k)).map_err(err)?,
                        self.stream.clone_dtoh(&idx_b.slice(..nq * k)).map_err(err)?,
                    )
                };
                for (qi, c) in cands.iter_mut().enumerate() {
                    for j in qi * k..(qi + 1) * k {
                        if idx[j] != u32::MAX {
                            c.push((keys[j], b0 as u32 + idx[j]));
                        }
                    }
                }
            }
            Ok(q_host.chunks_exact(dim).zip(cands.iter_mut()).map(|(q, c)| merge(c, k, distance, dot(q, q))).collect())
        }
    }

    enum QueryBuf {
        F32(CudaSlice<f32>),
        F16(CudaSlice<half::f16>),
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
