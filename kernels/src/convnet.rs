//! A mobile convolutional network (EfficientNet-Lite's MBConv blocks: dense stem,
//! 1×1 expand, depthwise, 1×1 project, residual; ReLU6; BatchNorm folded into the
//! weights by the caller; TensorFlow SAME padding) on the GPU, NHWC.
//!
//! 1×1 convolutions and the classifier are cuBLAS `GemmEx` over all pixels of the batch
//! (in a [`GemmMath`](crate::bert::GemmMath) mode); the stem and depthwise convolutions, bias + ReLU6, the
//! residual add and the global average pool are NVRTC kernels. The CPU twin is
//! `agentdb_models::image::EfficientNet`, which describes its layers to [`GpuConvNet`]
//! with the same folded weights (`models/tests/gpu_image.rs` compares the logits).

/// One layer, weights already folded with BatchNorm.
#[derive(Debug, Clone)]
pub enum ConvLayer {
    /// Dense k×k convolution, weights `[k][k][cin][cout]`, or depthwise (`cin == cout`),
    /// weights `[k][k][c]`; SAME padding; ReLU6 when `relu6`.
    Spatial {
        w: Vec<f32>,
        bias: Vec<f32>,
        k: usize,
        stride: usize,
        cin: usize,
        cout: usize,
        depthwise: bool,
        relu6: bool,
    },
    /// 1×1 convolution, weights `[cin][cout]`.
    Pointwise { w: Vec<f32>, bias: Vec<f32>, cin: usize, cout: usize, relu6: bool },
    /// Remember the current feature map (the input of a residual block)...
    SaveSkip,
    /// ...and add it to the current one.
    AddSkip,
}

/// TensorFlow SAME padding: (output size, padding before).
pub fn same_pad(size: usize, k: usize, stride: usize) -> (usize, usize) {
    let out = size.div_ceil(stride);
    let total = ((out - 1) * stride + k).saturating_sub(size);
    (out, total / 2)
}

pub const CONVNET_KERNELS: &str = r#"
extern "C" __global__ void cn_spatial(const float* x, const float* w, const float* bias, float* out,
                                      int n, int h, int wd, int cin, int oh, int ow, int cout, int k, int s,
                                      int pad_t, int pad_l, int depthwise, int relu6) {
    const long long total = (long long)n * oh * ow * cout;
    for (long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x; idx < total;
         idx += (long long)gridDim.x * blockDim.x) {
        const int co = idx % cout;
        long long r = idx / cout;
        const int ox = r % ow; r /= ow;
        const int oy = r % oh;
        const int b = r / oh;
        float acc = bias[co];
        for (int ky = 0; ky < k; ky++) {
            const int iy = oy * s + ky - pad_t;
            if (iy < 0 || iy >= h) continue;
            for (int kx = 0; kx < k; kx++) {
                const int ix = ox * s + kx - pad_l;
                if (ix < 0 || ix >= wd) continue;
                const float* px = x + (((size_t)b * h + iy) * wd + ix) * cin;
                if (depthwise) {
                    acc += px[co] * w[(ky * k + kx) * cout + co];
                } else {
                    for (int ci = 0; ci < cin; ci++) acc += px[ci] * w[((ky * k + kx) * cin + ci) * cout + co];
                }
            }
        }
        if (relu6) acc = fminf(fmaxf(acc, 0.0f), 6.0f);
        out[idx] = acc;
    }
}

extern "C" __global__ void cn_bias_act(float* y, const float* bias, int cols, long long n, int relu6) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        float v = y[i] + bias[i % cols];
        if (relu6) v = fminf(fmaxf(v, 0.0f), 6.0f);
        y[i] = v;
    }
}

extern "C" __global__ void cn_add(float* y, const float* x, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        y[i] += x[i];
}

// out[b][c] = mean over the hw pixels of x[b][p][c]; one thread per (b, c).
extern "C" __global__ void cn_avgpool(const float* x, float* out, int n, int hw, int c) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n * c) return;
    const int b = i / c, ch = i % c;
    float acc = 0.0f;
    for (int p = 0; p < hw; p++) acc += x[((size_t)b * hw + p) * c + ch];
    out[i] = acc / hw;
}
"#;

#[cfg(not(feature = "cuda"))]
pub use nocuda::GpuConvNet;

/// Without the `cuda` feature: [`GpuConvNet::new`] fails with [`crate::gpu::NOT_BUILT`].
#[cfg(not(feature = "cuda"))]
mod nocuda {
    use super::*;
    use crate::bert::GemmMath;
    use crate::gpu::GpuError;

    pub struct GpuConvNet {
        pub math: GemmMath,
        pub device_name: String,
        never: std::convert::Infallible,
    }

    impl GpuConvNet {
        pub fn new(
            _ordinal: usize,
            _math: GemmMath,
            _input: (usize, usize, usize),
            _layers: &[ConvLayer],
            _fc_w: &[f32],
            _fc_b: &[f32],
        ) -> Result<GpuConvNet, GpuError> {
            Err(GpuError::NotBuilt)
        }
        pub fn logits(&self, _inputs: &[f32], _n: usize) -> Result<Vec<Vec<f32>>, GpuError> {
            match self.never {}
        }
    }
}

#[cfg(feature = "cuda")]
pub use cuda::GpuConvNet;

#[cfg(feature = "cuda")]
mod cuda {
    use super::*;
    use crate::bert::GemmMath;
    use crate::gpu::GpuError;
    use cudarc::cublas::CudaBlas;
    use cudarc::driver::{CudaFunction, CudaSlice, CudaStream, LaunchConfig, PushKernelArg};
    use std::sync::Arc;

    fn err(e: impl std::fmt::Display) -> GpuError {
        GpuError::Failed(e.to_string())
    }

    enum Layer {
        Spatial {
            w: CudaSlice<f32>,
            bias: CudaSlice<f32>,
            k: usize,
            stride: usize,
            cin: usize,
            cout: usize,
            depthwise: bool,
            relu6: bool,
        },
        Pointwise {
            w: CudaSlice<f32>,
            bias: CudaSlice<f32>,
            cin: usize,
            cout: usize,
            relu6: bool,
        },
        SaveSkip,
        AddSkip,
    }

    /// A convolutional classifier resident on the GPU.
    pub struct GpuConvNet {
        pub math: GemmMath,
        pub device_name: String,
        input: (usize, usize, usize),
        stream: Arc<CudaStream>,
        blas: CudaBlas,
        spatial: CudaFunction,
        bias_act: CudaFunction,
        add: CudaFunction,
        avgpool: CudaFunction,
        layers: Vec<Layer>,
        fc_w: CudaSlice<f32>,
        fc_b: CudaSlice<f32>,
        features: usize,
        classes: usize,
    }

    fn grid(n: usize) -> LaunchConfig {
        LaunchConfig {
            grid_dim: (n.div_ceil(256).clamp(1, 65_535) as u32, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        }
    }

    impl GpuConvNet {
        /// `input`: (height, width, channels) of one NHWC image; `fc_w`: `[features][classes]`.
        pub fn new(
            ordinal: usize,
            math: GemmMath,
            input: (usize, usize, usize),
            layers: &[ConvLayer],
            fc_w: &[f32],
            fc_b: &[f32],
        ) -> Result<GpuConvNet, GpuError> {
            let crate::gpu::Opened { info, stream, blas, module } = crate::gpu::open(ordinal, CONVNET_KERNELS)?;
            let f = |n: &str| module.load_function(n).map_err(err);
            let up = |v: &[f32]| stream.clone_htod(v).map_err(err);
            let mut c = input.2;
            let mut dev = Vec::with_capacity(layers.len());
            for l in layers {
                dev.push(match l {
                    ConvLayer::Spatial { w, bias, k, stride, cin, cout, depthwise, relu6 } => {
                        let want = if *depthwise { k * k * cout } else { k * k * cin * cout };
                        if *cin != c
                            || w.len() != want
                            || bias.len() != *cout
                            || (*depthwise && cin != cout)
                            || *stride == 0
                        {
                            return Err(
                                format!("spatial layer {cin}->{cout} k{k}: shapes do not match the network").into()
                            );
                        }
                        c = *cout;
                        Layer::Spatial {
                            w: up(w)?,
                            bias: up(bias)?,
                            k: *k,
                            stride: *stride,
                            cin: *cin,
                            cout: *cout,
                            depthwise: *depthwise,
                            relu6: *relu6,
                        }
                    }
                    ConvLayer::Pointwise { w, bias, cin, cout, relu6 } => {
                        if *cin != c || w.len() != cin * cout || bias.len() != *cout {
                            return Err(
                                format!("pointwise layer {cin}->{cout}: shapes do not match the network").into()
                            );
                        }
                        c = *cout;
                        Layer::Pointwise { w: up(w)?, bias: up(bias)?, cin: *cin, cout: *cout, relu6: *relu6 }
                    }
                    ConvLayer::SaveSkip => Layer::SaveSkip,
                    ConvLayer::AddSkip => Layer::AddSkip,
                });
            }
            let classes = fc_b.len();
            if classes == 0 || fc_w.len() != c * classes {
                return Err(format!("classifier: {} weights for {c} features and {classes} classes", fc_w.len()).into());
            }
            Ok(GpuConvNet {
                math,
                device_name: info.name,
                input,
                spatial: f("cn_spatial")?,
                bias_act: f("cn_bias_act")?,
                add: f("cn_add")?,
                avgpool: f("cn_avgpool")?,
                layers: dev,
                fc_w: up(fc_w)?,
                fc_b: up(fc_b)?,
                features: c,
                classes,
                stream,
                blas,
            })
        }

        /// `y [rows × cout] = x [rows × cin] · w [cin × cout]` (all row-major): column-major
        /// `yᵀ (cout × rows) = wᵀ (cout × cin) · xᵀ (cin × rows)`.
        fn matmul(
            &self,
            x: &CudaSlice<f32>,
            w: &CudaSlice<f32>,
            y: &mut CudaSlice<f32>,
            rows: usize,
            cin: usize,
            cout: usize,
        ) -> Result<(), GpuError> {
            crate::bert::sgemm(
                &self.blas,
                &self.stream,
                self.math,
                false,
                (cout, rows, cin),
                (w, cout),
                (x, cin),
                (y, cout),
            )
        }

        fn bias_act(
            &self,
            y: &mut CudaSlice<f32>,
            bias: &CudaSlice<f32>,
            cols: usize,
            n: usize,
            relu6: bool,
        ) -> Result<(), GpuError> {
            let (cols_i, n_i, r) = (cols as i32, n as i64, relu6 as i32);
            let mut b = self.stream.launch_builder(&self.bias_act);
            b.arg(y).arg(bias).arg(&cols_i).arg(&n_i).arg(&r);
            // Safety: arguments match the kernel's signature.
            unsafe { b.launch(grid(n)) }.map(|_| ()).map_err(err)
        }

        /// Logits of `n` images (`inputs`: n·h·w·c floats, NHWC).
        pub fn logits(&self, inputs: &[f32], n: usize) -> Result<Vec<Vec<f32>>, GpuError> {
            let (h0, w0, c0) = self.input;
            if n == 0 {
                return Ok(Vec::new());
            }
            if inputs.len() != n * h0 * w0 * c0 {
                return Err(format!("{n} images need {} values, got {}", n * h0 * w0 * c0, inputs.len()).into());
            }
            self.stream.context().bind_to_thread().map_err(err)?;
            let (mut h, mut w, mut c) = (h0, w0, c0);
            let mut x = self.stream.clone_htod(inputs).map_err(err)?;
            let mut skip: Option<CudaSlice<f32>> = None;
            for l in &self.layers {
                match l {
                    Layer::Spatial { w: wt, bias, k, stride, cin, cout, depthwise, relu6 } => {
                        let (oh, pad_t) = same_pad(h, *k, *stride);
                        let (ow, pad_l) = same_pad(w, *k, *stride);
                        let total = n * oh * ow * cout;
                        let mut y = self.stream.alloc_zeros::<f32>(total).map_err(err)?;
                        let a = [
                            n,
                            h,
                            w,
                            *cin,
                            oh,
                            ow,
                            *cout,
                            *k,
                            *stride,
                            pad_t,
                            pad_l,
                            *depthwise as usize,
                            *relu6 as usize,
                        ]
                        .map(|v| v as i32);
                        let mut b = self.stream.launch_builder(&self.spatial);
                        b.arg(&x).arg(wt).arg(bias).arg(&mut y);
                        for v in &a {
                            b.arg(v);
                        }
                        // Safety: arguments match the kernel's signature and buffer sizes.
                        unsafe { b.launch(grid(total)) }.map_err(err)?;
                        (x, h, w, c) = (y, oh, ow, *cout);
                    }
                    Layer::Pointwise { w: wt, bias, cin, cout, relu6 } => {
                        let rows = n * h * w;
                        let mut y = self.stream.alloc_zeros::<f32>(rows * cout).map_err(err)?;
                        self.matmul(&x, wt, &mut y, rows, *cin, *cout)?;
                        self.bias_act(&mut y, bias, *cout, rows * cout, *relu6)?;
                        (x, c) = (y, *cout);
                    }
                    Layer::SaveSkip => skip = Some(self.stream.clone_dtod(&x).map_err(err)?),
                    Layer::AddSkip => {
                        let s = skip.take().ok_or("residual add without a saved input")?;
                        if s.len() != x.len() {
                            return Err("residual shapes differ".into());
                        }
                        let len = x.len() as i64;
                        let mut b = self.stream.launch_builder(&self.add);
                        b.arg(&mut x).arg(&s).arg(&len);
                        // Safety: both buffers hold `len` floats.
                        unsafe { b.launch(grid(len as usize)) }.map_err(err)?;
                    }
                }
            }
            debug_assert_eq!(c, self.features);
            let mut pooled = self.stream.alloc_zeros::<f32>(n * c).map_err(err)?;
            {
                let (n_i, hw, c_i) = (n as i32, (h * w) as i32, c as i32);
                let mut b = self.stream.launch_builder(&self.avgpool);
                b.arg(&x).arg(&mut pooled).arg(&n_i).arg(&hw).arg(&c_i);
                // Safety: arguments match the kernel's signature.
                unsafe { b.launch(grid(n * c)) }.map_err(err)?;
            }
            let mut logits = self.stream.alloc_zeros::<f32>(n * self.classes).map_err(err)?;
            self.matmul(&pooled, &self.fc_w, &mut logits, n, c, self.classes)?;
            self.bias_act(&mut logits, &self.fc_b, self.classes, n * self.classes, false)?;
            let flat = self.stream.clone_dtoh(&logits).map_err(err)?;
            Ok(flat.chunks_exact(self.classes).map(|r| r.to_vec()).collect())
        }
    }
}
