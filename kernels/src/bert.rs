//! A BERT sentence encoder on the GPU (the architecture of all-MiniLM-L6-v2 and
//! all-mpnet-base-v2's BERT siblings): embeddings + LayerNorm, N layers of self-attention
//! and GELU feed-forward with post-LayerNorm, then the mean of the last hidden states over
//! real tokens, L2-normalised.
//!
//! The dense layers are cuBLAS `GemmEx` calls on fp32 buffers; [`GemmMath`] picks the
//! tensor-core mode (exact fp32, TF32, or fp16 inputs with fp32 accumulation), traded
//! against the cosine to the CPU embeddings (`models/tests/gpu_text.rs`). Everything else
//! (embedding gather, bias + GELU, residual + LayerNorm, attention, pooling) is five small
//! kernels compiled at run time with NVRTC. The CPU twin is the Candle BERT the CPU path
//! runs (`agentdb_models::TextEncoder`).

/// Shapes of a BERT encoder (from its `config.json`).
#[derive(Debug, Clone, PartialEq)]
pub struct BertShape {
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub intermediate: usize,
    pub vocab: usize,
    pub max_positions: usize,
    pub type_vocab: usize,
    pub eps: f32,
}

/// How the dense layers use the tensor cores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GemmMath {
    /// IEEE fp32 (no tensor cores).
    F32,
    /// fp32 storage, TF32 tensor-core products.
    Tf32,
    /// fp32 storage, fp16 tensor-core products, fp32 accumulation.
    F16,
}

impl GemmMath {
    pub fn parse(s: &str) -> Result<GemmMath, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "fp32" | "f32" => Ok(GemmMath::F32),
            "tf32" => Ok(GemmMath::Tf32),
            "fp16" | "f16" => Ok(GemmMath::F16),
            other => Err(format!("GEMM math '{other}' is not fp32, tf32 or fp16")),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            GemmMath::F32 => "fp32",
            GemmMath::Tf32 => "tf32",
            GemmMath::F16 => "fp16",
        }
    }
}

/// The kernels besides the GEMMs. Tokens are rows of `hidden` floats, row t = b·len + i.
pub const BERT_KERNELS: &str = r#"
__device__ float block_sum(float v, float* sh) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    __syncthreads();
    if (lane == 0) sh[w] = v;
    __syncthreads();
    const int nw = (blockDim.x + 31) >> 5;
    v = threadIdx.x < nw ? sh[threadIdx.x] : 0.0f;
    if (w == 0) for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    if (threadIdx.x == 0) sh[0] = v;
    __syncthreads();
    const float r = sh[0];
    __syncthreads();
    return r;
}

// LayerNorm of row `x` (length h) in place, using buffer `row` in shared memory.
__device__ void layer_norm(float* row, int h, const float* g, const float* b, float eps, float* out, float* sh) {
    float s = 0.0f;
    for (int i = threadIdx.x; i < h; i += blockDim.x) s += row[i];
    const float mean = block_sum(s, sh) / h;
    float v = 0.0f;
    for (int i = threadIdx.x; i < h; i += blockDim.x) { const float d = row[i] - mean; v += d * d; }
    const float inv = rsqrtf(block_sum(v, sh) / h + eps);
    for (int i = threadIdx.x; i < h; i += blockDim.x) out[i] = (row[i] - mean) * inv * g[i] + b[i];
}

extern "C" __global__ void bert_embed(const unsigned int* ids, const unsigned int* types, const float* word,
                                      const float* pos, const float* typ, const float* g, const float* b,
                                      float* out, int len, int h, float eps) {
    extern __shared__ float row[];
    __shared__ float sh[32];
    const int t = blockIdx.x, p = t % len;
    const size_t id = ids[t], ty = types[t];
    for (int i = threadIdx.x; i < h; i += blockDim.x)
        row[i] = word[id * h + i] + pos[(size_t)p * h + i] + typ[ty * h + i];
    __syncthreads();
    layer_norm(row, h, g, b, eps, out + (size_t)t * h, sh);
}

// x = LayerNorm(x + y + bias), one block per token.
extern "C" __global__ void bert_add_ln(float* x, const float* y, const float* bias, const float* g,
                                       const float* b, int h, float eps) {
    extern __shared__ float row[];
    __shared__ float sh[32];
    const size_t t = blockIdx.x;
    for (int i = threadIdx.x; i < h; i += blockDim.x) row[i] = x[t * h + i] + y[t * h + i] + bias[i];
    __syncthreads();
    layer_norm(row, h, g, b, eps, x + t * h, sh);
}

// y += bias (per column), then GELU (erf form) when gelu != 0.
extern "C" __global__ void bert_bias_act(float* y, const float* bias, int cols, long long n, int gelu) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        float v = y[i] + bias[i % cols];
        if (gelu) v = 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
        y[i] = v;
    }
}

// Self-attention for one (query token, head): qkv rows are [Q | K | V] (3h floats);
// masked keys are left out (Candle adds f32::MIN, which softmax turns into 0).
extern "C" __global__ void bert_attention(const float* qkv, const unsigned int* mask, float* ctx, int len,
                                          int h, int hd, float scale) {
    extern __shared__ float s[];   // len scores, then hd query values
    __shared__ float sh[32];
    const int i = blockIdx.x, head = blockIdx.y, bt = blockIdx.z;
    const size_t stride = 3 * (size_t)h;
    const float* q = qkv + ((size_t)bt * len + i) * stride + (size_t)head * hd;
    float* qs = s + len;
    for (int d = threadIdx.x; d < hd; d += blockDim.x) qs[d] = q[d];
    __syncthreads();
    float mx = -3.402823466e38f;
    for (int j = threadIdx.x; j < len; j += blockDim.x) {
        float v = -3.402823466e38f;
        if (mask[(size_t)bt * len + j]) {
            const float* k = qkv + ((size_t)bt * len + j) * stride + h + (size_t)head * hd;
            float acc = 0.0f;
            for (int d = 0; d < hd; d++) acc += qs[d] * k[d];
            v = acc * scale;
            mx = fmaxf(mx, v);
        }
        s[j] = v;
    }
    // block max
    for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_down_sync(0xffffffffu, mx, o));
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    if (lane == 0) sh[w] = mx;
    __syncthreads();
    if (threadIdx.x == 0) {
        float m = sh[0];
        for (int k = 1; k < (int)((blockDim.x + 31) >> 5); k++) m = fmaxf(m, sh[k]);
        sh[0] = m;
    }
    __syncthreads();
    mx = sh[0];
    __syncthreads();
    float sum = 0.0f;
    for (int j = threadIdx.x; j < len; j += blockDim.x) {
        const float e = mask[(size_t)bt * len + j] ? __expf(s[j] - mx) : 0.0f;
        s[j] = e;
        sum += e;
    }
    const float total = block_sum(sum, sh);
    const float inv = total > 0.0f ? 1.0f / total : 0.0f;
    float* out = ctx + ((size_t)bt * len + i) * h + (size_t)head * hd;
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float acc = 0.0f;
        for (int j = 0; j < len; j++) {
            const float p = s[j];
            if (p != 0.0f) acc += p * qkv[((size_t)bt * len + j) * stride + 2 * h + (size_t)head * hd + d];
        }
        out[d] = acc * inv;
    }
}

// Mean over real tokens, then L2 normalisation; one block per sequence.
extern "C" __global__ void bert_pool(const float* x, const unsigned int* mask, float* out, int len, int h) {
    extern __shared__ float row[];
    __shared__ float sh[32];
    const int bt = blockIdx.x;
    float cnt = 0.0f;
    for (int j = 0; j < len; j++) cnt += mask[(size_t)bt * len + j] ? 1.0f : 0.0f;
    cnt = fmaxf(cnt, 1e-9f);
    float sq = 0.0f;
    for (int i = threadIdx.x; i < h; i += blockDim.x) {
        float acc = 0.0f;
        for (int j = 0; j < len; j++)
            if (mask[(size_t)bt * len + j]) acc += x[((size_t)bt * len + j) * h + i];
        acc /= cnt;
        row[i] = acc;
        sq += acc * acc;
    }
    const float norm = fmaxf(sqrtf(block_sum(sq, sh)), 1e-12f);
    for (int i = threadIdx.x; i < h; i += blockDim.x) out[(size_t)bt * h + i] = row[i] / norm;
}
"#;

#[cfg(not(feature = "cuda"))]
pub use nocuda::GpuBert;

/// Without the `cuda` feature: [`GpuBert::new`] fails with [`crate::gpu::NOT_BUILT`].
#[cfg(not(feature = "cuda"))]
mod nocuda {
    use super::*;
    use crate::gpu::GpuError;

    pub struct GpuBert {
        pub shape: BertShape,
        pub math: GemmMath,
        pub device_name: String,
        never: std::convert::Infallible,
    }

    impl GpuBert {
        pub fn new(
            _ordinal: usize,
            _shape: BertShape,
            _math: GemmMath,
            _get: &dyn Fn(&str) -> Result<Vec<f32>, String>,
        ) -> Result<GpuBert, GpuError> {
            Err(GpuError::NotBuilt)
        }
        pub fn embed(
            &self,
            _ids: &[u32],
            _types: &[u32],
            _mask: &[u32],
            _n: usize,
            _len: usize,
        ) -> Result<Vec<Vec<f32>>, GpuError> {
            match self.never {}
        }
    }
}

#[cfg(feature = "cuda")]
pub(crate) use cuda::sgemm;
#[cfg(feature = "cuda")]
pub use cuda::GpuBert;

#[cfg(feature = "cuda")]
mod cuda {
    use super::*;
    use crate::gpu::GpuError;
    use cudarc::cublas::sys::{cublasComputeType_t, cublasGemmAlgo_t, cublasOperation_t, cudaDataType_t};
    use cudarc::cublas::CudaBlas;
    use cudarc::driver::{CudaFunction, CudaSlice, CudaStream, DevicePtr, DevicePtrMut, LaunchConfig, PushKernelArg};
    use std::sync::Arc;

    fn err(e: impl std::fmt::Display) -> GpuError {
        GpuError::Failed(e.to_string())
    }

    /// Column-major `C (m × n) = op(A) · B (k × n)` on fp32 buffers, `op(A)` = Aᵀ when
    /// `a_t` (A stored `k × m`) else A (`m × k`), in `math`'s tensor-core mode.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn sgemm(
        blas: &CudaBlas,
        stream: &Arc<CudaStream>,
        math: GemmMath,
        a_t: bool,
        (m, n, k): (usize, usize, usize),
        (a, lda): (&CudaSlice<f32>, usize),
        (b, ldb): (&CudaSlice<f32>, usize),
        (c, ldc): (&mut CudaSlice<f32>, usize),
    ) -> Result<(), GpuError> {
        let (alpha, beta) = (1.0f32, 0.0f32);
        let compute = match math {
            GemmMath::F32 => cublasComputeType_t::CUBLAS_COMPUTE_32F,
            GemmMath::Tf32 => cublasComputeType_t::CUBLAS_COMPUTE_32F_FAST_TF32,
            GemmMath::F16 => cublasComputeType_t::CUBLAS_COMPUTE_32F_FAST_16F,
        };
        let op_a = if a_t { cublasOperation_t::CUBLAS_OP_T } else { cublasOperation_t::CUBLAS_OP_N };
        let (ap, _ra) = a.device_ptr(stream);
        let (bp, _rb) = b.device_ptr(stream);
        let (cp, _rc) = c.device_ptr_mut(stream);
        // Safety: the callers pass buffers holding m·k, k·n and m·n floats.
        unsafe {
            cudarc::cublas::result::gemm_ex(
                *blas.handle(),
                op_a,
                cublasOperation_t::CUBLAS_OP_N,
                m as i32,
                n as i32,
                k as i32,
                (&alpha) as *const f32 as *const _,
                ap as *const _,
                cudaDataType_t::CUDA_R_32F,
                lda as i32,
                bp as *const _,
                cudaDataType_t::CUDA_R_32F,
                ldb as i32,
                (&beta) as *const f32 as *const _,
                cp as *mut _,
                cudaDataType_t::CUDA_R_32F,
                ldc as i32,
                compute,
                cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
            )
        }
        .map_err(err)
    }

    struct Layer {
        wqkv: CudaSlice<f32>,
        bqkv: CudaSlice<f32>,
        wo: CudaSlice<f32>,
        bo: CudaSlice<f32>,
        ln1_g: CudaSlice<f32>,
        ln1_b: CudaSlice<f32>,
        w1: CudaSlice<f32>,
        b1: CudaSlice<f32>,
        w2: CudaSlice<f32>,
        b2: CudaSlice<f32>,
        ln2_g: CudaSlice<f32>,
        ln2_b: CudaSlice<f32>,
    }

    struct Fns {
        embed: CudaFunction,
        add_ln: CudaFunction,
        bias_act: CudaFunction,
        attention: CudaFunction,
        pool: CudaFunction,
    }

    /// A BERT encoder resident on the GPU.
    pub struct GpuBert {
        pub shape: BertShape,
        pub math: GemmMath,
        pub device_name: String,
        stream: Arc<CudaStream>,
        blas: CudaBlas,
        fns: Fns,
        word: CudaSlice<f32>,
        pos: CudaSlice<f32>,
        typ: CudaSlice<f32>,
        emb_g: CudaSlice<f32>,
        emb_b: CudaSlice<f32>,
        layers: Vec<Layer>,
    }

    impl GpuBert {
        /// Upload the weights. `get(name)` returns a tensor of the Hugging Face BERT
        /// layout (`embeddings.word_embeddings.weight`, `encoder.layer.N.…`) as row-major
        /// fp32 with its element count checked here.
        pub fn new(
            ordinal: usize,
            shape: BertShape,
            math: GemmMath,
            get: &dyn Fn(&str) -> Result<Vec<f32>, String>,
        ) -> Result<GpuBert, GpuError> {
            let crate::gpu::Opened { info, stream, blas, module } = crate::gpu::open(ordinal, BERT_KERNELS)?;
            if shape.heads == 0
                || !shape.hidden.is_multiple_of(shape.heads)
                || shape.hidden > 4096
                || shape.intermediate == 0
            {
                return Err(format!("unsupported BERT shape {shape:?}").into());
            }
            let f = |n: &str| module.load_function(n).map_err(err);
            let fns = Fns {
                embed: f("bert_embed")?,
                add_ln: f("bert_add_ln")?,
                bias_act: f("bert_bias_act")?,
                attention: f("bert_attention")?,
                pool: f("bert_pool")?,
            };
            let (h, i) = (shape.hidden, shape.intermediate);
            let up = |name: &str, n: usize| -> Result<CudaSlice<f32>, GpuError> {
                let v = get(name)?;
                if v.len() != n {
                    return Err(format!("{name}: {} values, expected {n}", v.len()).into());
                }
                stream.clone_htod(&v).map_err(err)
            };
            let mut layers = Vec::with_capacity(shape.layers);
            for l in 0..shape.layers {
                let p = format!("encoder.layer.{l}");
                // Q, K and V as one [3h, h] matrix: one GEMM per layer.
                let mut wqkv = Vec::with_capacity(3 * h * h);
                let mut bqkv = Vec::with_capacity(3 * h);
                for m in ["query", "key", "value"] {
                    let w = get(&format!("{p}.attention.self.{m}.weight"))?;
                    let b = get(&format!("{p}.attention.self.{m}.bias"))?;
                    if w.len() != h * h || b.len() != h {
                        return Err(format!("{p}.attention.self.{m}: wrong shape").into());
                    }
                    wqkv.extend(w);
                    bqkv.extend(b);
                }
                layers.push(Layer {
                    wqkv: stream.clone_htod(&wqkv).map_err(err)?,
                    bqkv: stream.clone_htod(&bqkv).map_err(err)?,
                    wo: up(&format!("{p}.attention.output.dense.weight"), h * h)?,
                    bo: up(&format!("{p}.attention.output.dense.bias"), h)?,
                    ln1_g: up(&format!("{p}.attention.output.LayerNorm.weight"), h)?,
                    ln1_b: up(&format!("{p}.attention.output.LayerNorm.bias"), h)?,
                    w1: up(&format!("{p}.intermediate.dense.weight"), i * h)?,
                    b1: up(&format!("{p}.intermediate.dense.bias"), i)?,
                    w2: up(&format!("{p}.output.dense.weight"), h * i)?,
                    b2: up(&format!("{p}.output.dense.bias"), h)?,
                    ln2_g: up(&format!("{p}.output.LayerNorm.weight"), h)?,
                    ln2_b: up(&format!("{p}.output.LayerNorm.bias"), h)?,
                });
            }
            Ok(GpuBert {
                word: up("embeddings.word_embeddings.weight", shape.vocab * h)?,
                pos: up("embeddings.position_embeddings.weight", shape.max_positions * h)?,
                typ: up("embeddings.token_type_embeddings.weight", shape.type_vocab * h)?,
                emb_g: up("embeddings.LayerNorm.weight", h)?,
                emb_b: up("embeddings.LayerNorm.bias", h)?,
                shape,
                math,
                device_name: info.name,
                stream,
                blas,
                fns,
                layers,
            })
        }

        /// `y [rows × out] = x [rows × inp] · wᵀ` (w is `[out × inp]`, PyTorch Linear).
        fn linear(
            &self,
            x: &CudaSlice<f32>,
            w: &CudaSlice<f32>,
            y: &mut CudaSlice<f32>,
            rows: usize,
            inp: usize,
            out: usize,
        ) -> Result<(), GpuError> {
            sgemm(&self.blas, &self.stream, self.math, true, (out, rows, inp), (w, inp), (x, inp), (y, out))
        }

        fn bias_act(
            &self,
            y: &mut CudaSlice<f32>,
            bias: &CudaSlice<f32>,
            cols: usize,
            n: usize,
            gelu: bool,
        ) -> Result<(), GpuError> {
            let (cols_i, n_i, g) = (cols as i32, n as i64, gelu as i32);
            let blocks = n.div_ceil(256).min(65_535) as u32;
            let mut b = self.stream.launch_builder(&self.fns.bias_act);
            b.arg(y).arg(bias).arg(&cols_i).arg(&n_i).arg(&g);
            let cfg = LaunchConfig { grid_dim: (blocks, 1, 1), block_dim: (256, 1, 1), shared_mem_bytes: 0 };
            // Safety: arguments match the kernel's signature.
            unsafe { b.launch(cfg) }.map(|_| ()).map_err(err)
        }

        #[allow(clippy::too_many_arguments)]
        fn add_ln(
            &self,
            x: &mut CudaSlice<f32>,
            y: &CudaSlice<f32>,
            bias: &CudaSlice<f32>,
            g: &CudaSlice<f32>,
            beta: &CudaSlice<f32>,
            tokens: usize,
        ) -> Result<(), GpuError> {
            let (h, eps) = (self.shape.hidden as i32, self.shape.eps);
            let mut b = self.stream.launch_builder(&self.fns.add_ln);
            b.arg(x).arg(y).arg(bias).arg(g).arg(beta).arg(&h).arg(&eps);
            let cfg = LaunchConfig {
                grid_dim: (tokens as u32, 1, 1),
                block_dim: (128, 1, 1),
                shared_mem_bytes: (self.shape.hidden * 4) as u32,
            };
            // Safety: as above; `hidden` floats of dynamic shared memory.
            unsafe { b.launch(cfg) }.map(|_| ()).map_err(err)
        }

        /// Embeddings of `n` sequences of `len` tokens (`ids`, `types`, `mask` row-major,
        /// padded with mask 0): the L2-normalised mean of the last layer over real tokens.
        pub fn embed(
            &self,
            ids: &[u32],
            types: &[u32],
            mask: &[u32],
            n: usize,
            len: usize,
        ) -> Result<Vec<Vec<f32>>, GpuError> {
            let s = &self.shape;
            let t = n * len;
            if n == 0 {
                return Ok(Vec::new());
            }
            if ids.len() != t || types.len() != t || mask.len() != t {
                return Err(format!("{n} sequences of {len} tokens need {t} ids, types and mask values").into());
            }
            if len > s.max_positions {
                return Err(format!("{len} tokens exceed the model's {} positions", s.max_positions).into());
            }
            if let Some(bad) = ids.iter().find(|&&i| i as usize >= s.vocab) {
                return Err(format!("token id {bad} is outside the vocabulary of {}", s.vocab).into());
            }
            if let Some(bad) = types.iter().find(|&&i| i as usize >= s.type_vocab) {
                return Err(format!("token type {bad} is outside the {} types", s.type_vocab).into());
            }
            self.stream.context().bind_to_thread().map_err(err)?;
            let (h, inter) = (s.hidden, s.intermediate);
            let ids_d = self.stream.clone_htod(ids).map_err(err)?;
            let types_d = self.stream.clone_htod(types).map_err(err)?;
            let mask_d = self.stream.clone_htod(mask).map_err(err)?;
            let mut x = self.stream.alloc_zeros::<f32>(t * h).map_err(err)?;
            let mut qkv = self.stream.alloc_zeros::<f32>(t * 3 * h).map_err(err)?;
            let mut ctx = self.stream.alloc_zeros::<f32>(t * h).map_err(err)?;
            let mut tmp = self.stream.alloc_zeros::<f32>(t * h).map_err(err)?;
            let mut mid = self.stream.alloc_zeros::<f32>(t * inter).map_err(err)?;
            let mut out = self.stream.alloc_zeros::<f32>(n * h).map_err(err)?;
            let (len_i, h_i, eps) = (len as i32, h as i32, s.eps);
            {
                let mut b = self.stream.launch_builder(&self.fns.embed);
                b.arg(&ids_d).arg(&types_d).arg(&self.word).arg(&self.pos).arg(&self.typ);
                b.arg(&self.emb_g).arg(&self.emb_b).arg(&mut x).arg(&len_i).arg(&h_i).arg(&eps);
                let cfg = LaunchConfig {
                    grid_dim: (t as u32, 1, 1),
                    block_dim: (128, 1, 1),
                    shared_mem_bytes: (h * 4) as u32,
                };
                // Safety: arguments match the kernel's signature; ids and types were checked.
                unsafe { b.launch(cfg) }.map_err(err)?;
            }
            let hd = h / s.heads;
            let scale = 1.0f32 / (hd as f32).sqrt();
            let hd_i = hd as i32;
            for l in &self.layers {
                self.linear(&x, &l.wqkv, &mut qkv, t, h, 3 * h)?;
                self.bias_act(&mut qkv, &l.bqkv, 3 * h, t * 3 * h, false)?;
                {
                    let mut b = self.stream.launch_builder(&self.fns.attention);
                    b.arg(&qkv).arg(&mask_d).arg(&mut ctx).arg(&len_i).arg(&h_i).arg(&hd_i).arg(&scale);
                    let cfg = LaunchConfig {
                        grid_dim: (len as u32, s.heads as u32, n as u32),
                        block_dim: (64, 1, 1),
                        shared_mem_bytes: ((len + hd) * 4) as u32,
                    };
                    // Safety: arguments match the kernel's signature; len + hd floats of shared memory.
                    unsafe { b.launch(cfg) }.map_err(err)?;
                }
                self.linear(&ctx, &l.wo, &mut tmp, t, h, h)?;
                self.add_ln(&mut x, &tmp, &l.bo, &l.ln1_g, &l.ln1_b, t)?;
                self.linear(&x, &l.w1, &mut mid, t, h, inter)?;
                self.bias_act(&mut mid, &l.b1, inter, t * inter, true)?;
                self.linear(&mid, &l.w2, &mut tmp, t, inter, h)?;
                self.add_ln(&mut x, &tmp, &l.b2, &l.ln2_g, &l.ln2_b, t)?;
            }
            {
                let mut b = self.stream.launch_builder(&self.fns.pool);
                b.arg(&x).arg(&mask_d).arg(&mut out).arg(&len_i).arg(&h_i);
                let cfg = LaunchConfig {
                    grid_dim: (n as u32, 1, 1),
                    block_dim: (128, 1, 1),
                    shared_mem_bytes: (h * 4) as u32,
                };
                // Safety: arguments match the kernel's signature.
                unsafe { b.launch(cfg) }.map_err(err)?;
            }
            let flat = self.stream.clone_dtoh(&out).map_err(err)?;
            Ok(flat.chunks_exact(h).map(|r| r.to_vec()).collect())
        }
    }
}
