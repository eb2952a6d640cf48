//! Images: decoding with limits enforced before the pixels are allocated, the
//! preprocessing EfficientNet-Lite0 was trained with, and the network itself.
//!
//! EfficientNet-Lite0 (no squeeze-excitation, ReLU6, BatchNorm eps 1e-3, TensorFlow
//! "SAME" padding) runs in NHWC layout: every 1×1 convolution is one matrix product
//! (candle's gemm), depthwise and stem convolutions are direct loops parallel over
//! rows. BatchNorm is folded into the convolution weights at load.

use crate::error::{Error, Result};
use crate::registry::ModelInfo;
use candle_core::{DType, Device, Tensor};
pub use image::RgbImage;
use image::{DynamicImage, ImageDecoder};
use rayon::prelude::*;
use std::io::Cursor;

/// Limits checked from the header, before any pixel is decoded.
#[derive(Debug, Clone, Copy)]
pub struct ImageLimits {
    /// Width × height above this is refused (decompression bombs).
    pub max_pixels: u64,
    /// Either side above this is refused.
    pub max_side: u32,
}

impl Default for ImageLimits {
    fn default() -> Self {
        ImageLimits { max_pixels: 50_000_000, max_side: 30_000 }
    }
}

/// Decode an image (JPEG, PNG, WebP, GIF first frame, BMP, TIFF first page) to RGB,
/// applying its EXIF orientation. The format comes from the bytes, not a file name.
pub fn decode_image(bytes: &[u8], lim: ImageLimits) -> Result<RgbImage> {
    let reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::InvalidInput(format!("cannot read image: {e}")))?;
    let Some(format) = reader.format() else {
        return Err(Error::InvalidInput("not an image in a supported format".into()));
    };
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(lim.max_side);
    limits.max_image_height = Some(lim.max_side);
    // Decoders may hold a few copies of the frame (RGBA, 16-bit); cap the allocation.
    limits.max_alloc = Some(lim.max_pixels.saturating_mul(16).max(1 << 20));
    let mut reader = reader;
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(|e| bad_image(format, e))?;
    let (w, h) = decoder.dimensions();
    if w == 0 || h == 0 {
        return Err(Error::InvalidInput(format!("{format:?} image has no pixels ({w}x{h})")));
    }
    let pixels = w as u64 * h as u64;
    if pixels > lim.max_pixels {
        return Err(Error::InvalidInput(format!(
            "{format:?} image is {w}x{h} = {pixels} pixels, above limits.max_image_pixels ({})",
            lim.max_pixels
        )));
    }
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| bad_image(format, e))?;
    img.apply_orientation(orientation);
    Ok(flatten(img))
}

/// RGB pixels as a viewer shows them: an image with an alpha channel (a cut-out, a logo,
/// a sticker) is composited over white, so the colour stored under transparent pixels
/// (often black or leftover garbage) is not what the models see.
fn flatten(img: DynamicImage) -> RgbImage {
    if !img.color().has_alpha() {
        return img.to_rgb8();
    }
    let rgba = img.to_rgba8();
    let mut out = RgbImage::new(rgba.width(), rgba.height());
    for (o, p) in out.pixels_mut().zip(rgba.pixels()) {
        let a = p[3] as u32;
        for c in 0..3 {
            o[c] = ((p[c] as u32 * a + 255 * (255 - a) + 127) / 255) as u8;
        }
    }
    out
}

fn bad_image(format: image::ImageFormat, e: image::ImageError) -> Error {
    match e {
        image::ImageError::Limits(l) => Error::InvalidInput(format!(
            "{format:?} image exceeds the decoding limits ({l}); see limits.max_image_pixels"
        )),
        other => Error::InvalidInput(format!("corrupt or truncated {format:?} image: {other}")),
    }
}

pub const INPUT_SIZE: usize = 224;
const RESIZE_TO: u32 = 256;

/// Resize the shorter side to 256 (antialiased bilinear), centre-crop 224×224 and scale
/// to `(x - 0.5) / 0.5`. Output is HWC (RGB interleaved), 224·224·3 floats.
pub fn preprocess(img: &RgbImage) -> Vec<f32> {
    let (w, h) = img.dimensions();
    let (nw, nh) = if w <= h {
        (RESIZE_TO, ((h as f64 * RESIZE_TO as f64 / w as f64).round() as u32).max(RESIZE_TO))
    } else {
        (((w as f64 * RESIZE_TO as f64 / h as f64).round() as u32).max(RESIZE_TO), RESIZE_TO)
    };
    let resized = image::imageops::resize(img, nw, nh, image::imageops::FilterType::Triangle);
    let x0 = (nw - INPUT_SIZE as u32) / 2;
    let y0 = (nh - INPUT_SIZE as u32) / 2;
    crop_normalise(&resized, x0, y0)
}

/// Crop 224×224 at (x0, y0) and normalise, with no resizing (used by tests that
/// compare against a reference implementation pixel for pixel).
pub fn crop_normalise(img: &RgbImage, x0: u32, y0: u32) -> Vec<f32> {
    let mut out = Vec::with_capacity(INPUT_SIZE * INPUT_SIZE * 3);
    for y in 0..INPUT_SIZE as u32 {
        for x in 0..INPUT_SIZE as u32 {
            let p = img.get_pixel(x0 + x, y0 + y);
            for c in 0..3 {
                out.push((p[c] as f32 / 255.0 - 0.5) / 0.5);
            }
        }
    }
    out
}

/// A feature map batch in NHWC layout.
struct Fm {
    n: usize,
    h: usize,
    w: usize,
    c: usize,
    data: Vec<f32>,
}

/// A convolution with BatchNorm folded in.
struct Conv {
    /// Pointwise: [cin, cout] as a tensor for the matmul. Others: raw weights.
    pw: Option<Tensor>,
    /// Depthwise [k, k, c] or stem [k, k, cin, cout] weights.
    raw: Vec<f32>,
    bias: Vec<f32>,
    k: usize,
    stride: usize,
    cin: usize,
    cout: usize,
}

struct Block {
    expand: Option<Conv>,
    depthwise: Conv,
    project: Conv,
    skip: bool,
}

/// EfficientNet-Lite0 ImageNet classifier.
pub struct EfficientNet {
    pub info: ModelInfo,
    stem: Conv,
    blocks: Vec<Block>,
    head: Conv,
    /// [1280, 1000]
    fc_w: Tensor,
    fc_b: Vec<f32>,
    /// The same network on the GPU (`use_gpu`); the CPU layers stay as the fallback.
    gpu: Option<std::sync::Mutex<agentdb_kernels::convnet::GpuConvNet>>,
}

/// (repeats, kernel, stride, expand ratio, in, out) for EfficientNet-Lite0.
const STAGES: [(usize, usize, usize, usize, usize, usize); 7] = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
];

struct Weights {
    map: std::collections::HashMap<String, Tensor>,
    path: std::path::PathBuf,
}

impl Weights {
    fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let t = self.map.get(name).ok_or_else(|| Error::ModelLoad {
            path: self.path.clone(),
            reason: format!("tensor '{name}' is missing"),
        })?;
        if t.dims() != shape {
            return Err(Error::ModelLoad {
                path: self.path.clone(),
                reason: format!("tensor '{name}' has shape {:?}, expected {shape:?}", t.dims()),
            });
        }
        Ok(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?)
    }

    /// Conv weight [cout, cin/groups, k, k] + BatchNorm `bn` folded: returns
    /// (weights as [cout][cin/groups][k][k] scaled, bias).
    fn conv_bn(&self, conv: &str, bn: &str, cout: usize, cin_g: usize, k: usize) -> Result<(Vec<f32>, Vec<f32>)> {
        let mut w = self.get(&format!("{conv}.weight"), &[cout, cin_g, k, k])?;
        let gamma = self.get(&format!("{bn}.weight"), &[cout])?;
        let beta = self.get(&format!("{bn}.bias"), &[cout])?;
        let mean = self.get(&format!("{bn}.running_mean"), &[cout])?;
        let var = self.get(&format!("{bn}.running_var"), &[cout])?;
        let per = cin_g * k * k;
        let mut bias = vec![0f32; cout];
        for o in 0..cout {
            let s = gamma[o] / (var[o] + 1e-3).sqrt();
            for v in &mut w[o * per..(o + 1) * per] {
                *v *= s;
            }
            bias[o] = beta[o] - mean[o] * s;
        }
        Ok((w, bias))
    }

    fn pointwise(&self, conv: &str, bn: &str, cin: usize, cout: usize) -> Result<Conv> {
        let (w, bias) = self.conv_bn(conv, bn, cout, cin, 1)?;
        // [cout, cin] -> [cin, cout] so that NHWC rows [pixels, cin] x [cin, cout].
        let t = Tensor::from_vec(w, (cout, cin), &Device::Cpu)?.t()?.contiguous()?;
        Ok(Conv { pw: Some(t), raw: Vec::new(), bias, k: 1, stride: 1, cin, cout })
    }

    fn depthwise(&self, conv: &str, bn: &str, c: usize, k: usize, stride: usize) -> Result<Conv> {
        let (w, bias) = self.conv_bn(conv, bn, c, 1, k)?;
        // [c][k][k] -> [k][k][c] so the channel loop is innermost.
        let mut raw = vec![0f32; k * k * c];
        for ch in 0..c {
            for i in 0..k * k {
                raw[i * c + ch] = w[ch * k * k + i];
            }
        }
        Ok(Conv { pw: None, raw, bias, k, stride, cin: c, cout: c })
    }
}

impl EfficientNet {
    pub fn load(info: ModelInfo) -> Result<EfficientNet> {
        let path = info.dir.join(&info.manifest.weights);
        crate::registry::verify(&info)?;
        let map = candle_core::safetensors::load(&path, &Device::Cpu)
            .map_err(|e| Error::ModelLoad { path: path.clone(), reason: e.to_string() })?;
        let wts = Weights { map, path };
        // Stem: [32, 3, 3, 3] -> [k][k][cin][cout].
        let (w, bias) = wts.conv_bn("_conv_stem", "_bn0", 32, 3, 3)?;
        let mut raw = vec![0f32; 3 * 3 * 3 * 32];
        for o in 0..32 {
            for ci in 0..3 {
                for i in 0..9 {
                    raw[(i * 3 + ci) * 32 + o] = w[(o * 3 + ci) * 9 + i];
                }
            }
        }
        let stem = Conv { pw: None, raw, bias, k: 3, stride: 2, cin: 3, cout: 32 };
        let mut blocks = Vec::new();
        for &(repeats, k, stride, expand, cin, cout) in &STAGES {
            for r in 0..repeats {
                let (cin, stride) = if r == 0 { (cin, stride) } else { (cout, 1) };
                let b = format!("_blocks.{}", blocks.len());
                let mid = cin * expand;
                let expand_conv = if expand != 1 {
                    Some(wts.pointwise(&format!("{b}._expand_conv"), &format!("{b}._bn0"), cin, mid)?)
                } else {
                    None
                };
                let depthwise = wts.depthwise(&format!("{b}._depthwise_conv"), &format!("{b}._bn1"), mid, k, stride)?;
                let project = wts.pointwise(&format!("{b}._project_conv"), &format!("{b}._bn2"), mid, cout)?;
                blocks.push(Block { expand: expand_conv, depthwise, project, skip: stride == 1 && cin == cout });
            }
        }
        let head = wts.pointwise("_conv_head", "_bn1", 320, 1280)?;
        let fc = wts.get("_fc.weight", &[1000, 1280])?;
        let fc_w = Tensor::from_vec(fc, (1000, 1280), &Device::Cpu)?.t()?.contiguous()?;
        let fc_b = wts.get("_fc.bias", &[1000])?;
        Ok(EfficientNet { info, stem, blocks, head, fc_w, fc_b, gpu: None })
    }

    /// Run the network on GPU `ordinal` from now on (1×1 convolutions in `math`: fp32,
    /// tf32 or fp16 GEMMs), with the same folded weights as the CPU layers.
    pub fn use_gpu(&mut self, ordinal: usize, math: &str) -> Result<String> {
        use agentdb_kernels::bert::GemmMath;
        use agentdb_kernels::convnet::{ConvLayer, GpuConvNet};
        let fail = |e: String| Error::ModelLoad { path: self.info.dir.clone(), reason: format!("GPU: {e}") };
        let math = GemmMath::parse(math).map_err(fail)?;
        let pw = |c: &Conv, relu6: bool| -> Result<ConvLayer> {
            let w = c.pw.as_ref().ok_or_else(|| fail("pointwise weights missing".into()))?;
            Ok(ConvLayer::Pointwise {
                w: w.flatten_all()?.to_vec1::<f32>()?,
                bias: c.bias.clone(),
                cin: c.cin,
                cout: c.cout,
                relu6,
            })
        };
        let sp = |c: &Conv, depthwise: bool| ConvLayer::Spatial {
            w: c.raw.clone(),
            bias: c.bias.clone(),
            k: c.k,
            stride: c.stride,
            cin: c.cin,
            cout: c.cout,
            depthwise,
            relu6: true,
        };
        let mut layers = vec![sp(&self.stem, false)];
        for b in &self.blocks {
            if b.skip {
                layers.push(ConvLayer::SaveSkip);
            }
            if let Some(e) = &b.expand {
                layers.push(pw(e, true)?);
            }
            layers.push(sp(&b.depthwise, true));
            layers.push(pw(&b.project, false)?);
            if b.skip {
                layers.push(ConvLayer::AddSkip);
            }
        }
        layers.push(pw(&self.head, true)?);
        let fc_w = self.fc_w.flatten_all()?.to_vec1::<f32>()?;
        let net = GpuConvNet::new(ordinal, math, (INPUT_SIZE, INPUT_SIZE, 3), &layers, &fc_w, &self.fc_b)
            .map_err(|e| fail(e.to_string()))?;
        let label = format!("cuda:{ordinal} ({}, {} GEMMs)", net.device_name, math.name());
        self.gpu = Some(std::sync::Mutex::new(net));
        Ok(label)
    }

    /// Whether batches run on the GPU.
    pub fn on_gpu(&self) -> bool {
        self.gpu.is_some()
    }

    pub fn classes(&self) -> usize {
        self.fc_b.len()
    }

    /// Logits for a batch of preprocessed images (each 224·224·3 HWC floats).
    pub fn logits(&self, inputs: &[Vec<f32>]) -> Result<Vec<Vec<f32>>> {
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        let n = inputs.len();
        let mut data = Vec::with_capacity(n * INPUT_SIZE * INPUT_SIZE * 3);
        for x in inputs {
            if x.len() != INPUT_SIZE * INPUT_SIZE * 3 {
                return Err(Error::InvalidInput(format!("image tensor has {} values, expected 224x224x3", x.len())));
            }
            data.extend_from_slice(x);
        }
        if let Some(gpu) = &self.gpu {
            let g = gpu.lock().unwrap_or_else(|p| p.into_inner());
            match g.logits(&data, n) {
                Ok(v) => return Ok(v),
                Err(e) => tracing::warn!(error = %e, "image encoder: GPU batch failed; running on the CPU"),
            }
        }
        let x = Fm { n, h: INPUT_SIZE, w: INPUT_SIZE, c: 3, data };
        let mut x = spatial(&x, &self.stem, false, true);
        for b in &self.blocks {
            let input = if b.skip { Some(x.data.clone()) } else { None };
            if let Some(e) = &b.expand {
                x = pointwise(&x, e, true)?;
            }
            x = spatial(&x, &b.depthwise, true, true);
            x = pointwise(&x, &b.project, false)?;
            if let Some(inp) = input {
                x.data.iter_mut().zip(inp).for_each(|(a, b)| *a += b);
            }
        }
        let x = pointwise(&x, &self.head, true)?;
        // Global average pool -> [n, 1280].
        let hw = x.h * x.w;
        let mut pooled = vec![0f32; n * x.c];
        for i in 0..n {
            for p in 0..hw {
                let row = &x.data[(i * hw + p) * x.c..(i * hw + p + 1) * x.c];
                for (acc, v) in pooled[i * x.c..(i + 1) * x.c].iter_mut().zip(row) {
                    *acc += v;
                }
            }
        }
        pooled.iter_mut().for_each(|v| *v /= hw as f32);
        let t = Tensor::from_vec(pooled, (n, x.c), &Device::Cpu)?.matmul(&self.fc_w)?;
        let mut out = t.to_vec2::<f32>()?;
        for row in &mut out {
            row.iter_mut().zip(&self.fc_b).for_each(|(v, b)| *v += b);
        }
        Ok(out)
    }
}

fn relu6(v: f32) -> f32 {
    v.clamp(0.0, 6.0)
}

/// 1×1 convolution as one matmul over all pixels of the batch.
fn pointwise(x: &Fm, conv: &Conv, act: bool) -> Result<Fm> {
    let rows = x.n * x.h * x.w;
    let w = conv.pw.as_ref().expect("pointwise weights");
    debug_assert_eq!(x.c, conv.cin);
    let t = Tensor::from_slice(&x.data, (rows, x.c), &Device::Cpu)?.matmul(w)?;
    let mut data = t.flatten_all()?.to_vec1::<f32>()?;
    data.par_chunks_mut(conv.cout).for_each(|row| {
        for (v, b) in row.iter_mut().zip(&conv.bias) {
            *v += b;
            if act {
                *v = relu6(*v);
            }
        }
    });
    Ok(Fm { n: x.n, h: x.h, w: x.w, c: conv.cout, data })
}

/// TensorFlow "SAME" padding: output ceil(in / stride), padding split with the extra
/// pixel at the bottom/right.
fn same_pad(size: usize, k: usize, stride: usize) -> (usize, usize) {
    let out = size.div_ceil(stride);
    let total = ((out - 1) * stride + k).saturating_sub(size);
    (out, total / 2)
}

/// Depthwise (`depthwise = true`, weights [k][k][c]) or dense stem convolution
/// (weights [k][k][cin][cout]) with SAME padding, bias and optional ReLU6.
fn spatial(x: &Fm, conv: &Conv, depthwise: bool, act: bool) -> Fm {
    let (k, s) = (conv.k, conv.stride);
    let (oh, pad_t) = same_pad(x.h, k, s);
    let (ow, pad_l) = same_pad(x.w, k, s);
    let co = conv.cout;
    let mut data = vec![0f32; x.n * oh * ow * co];
    data.par_chunks_mut(ow * co).enumerate().for_each(|(row_idx, out_row)| {
        let i = row_idx / oh;
        let oy = row_idx % oh;
        let img = &x.data[i * x.h * x.w * x.c..(i + 1) * x.h * x.w * x.c];
        for ox in 0..ow {
            let acc = &mut out_row[ox * co..(ox + 1) * co];
            acc.copy_from_slice(&conv.bias);
            for ky in 0..k {
                let iy = (oy * s + ky) as isize - pad_t as isize;
                if iy < 0 || iy >= x.h as isize {
                    continue;
                }
                for kx in 0..k {
                    let ix = (ox * s + kx) as isize - pad_l as isize;
                    if ix < 0 || ix >= x.w as isize {
                        continue;
                    }
                    let px = &img[(iy as usize * x.w + ix as usize) * x.c..][..x.c];
                    if depthwise {
                        let w = &conv.raw[(ky * k + kx) * co..][..co];
                        for ((a, v), w) in acc.iter_mut().zip(px).zip(w) {
                            *a += v * w;
                        }
                    } else {
                        for (ci, v) in px.iter().enumerate() {
                            let w = &conv.raw[((ky * k + kx) * conv.cin + ci) * co..][..co];
                            for (a, w) in acc.iter_mut().zip(w) {
                                *a += v * w;
                            }
                        }
                    }
                }
            }
            if act {
                acc.iter_mut().for_each(|v| *v = relu6(*v));
            }
        }
    });
    Fm { n: x.n, h: oh, w: ow, c: co, data }
}

pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let m = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = logits.iter().map(|v| (v - m).exp()).collect();
    let s: f32 = e.iter().sum();
    e.into_iter().map(|v| v / s).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transparent_pixels_are_white_whatever_colour_they_store() {
        // Opaque red, transparent "black" (what many cut-outs store), half-transparent blue.
        let img = image::RgbaImage::from_fn(3, 1, |x, _| match x {
            0 => image::Rgba([255, 0, 0, 255]),
            1 => image::Rgba([0, 0, 0, 0]),
            _ => image::Rgba([0, 0, 255, 128]),
        });
        let mut png = Vec::new();
        DynamicImage::ImageRgba8(img).write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
        let rgb = decode_image(&png, ImageLimits::default()).unwrap();
        assert_eq!(rgb.get_pixel(0, 0).0, [255, 0, 0]);
        assert_eq!(rgb.get_pixel(1, 0).0, [255, 255, 255]);
        assert_eq!(rgb.get_pixel(2, 0).0, [127, 127, 255]);
    }

    #[test]
    fn same_padding_matches_tensorflow() {
        assert_eq!(same_pad(224, 3, 2), (112, 0));
        assert_eq!(same_pad(112, 3, 1), (112, 1));
        assert_eq!(same_pad(28, 5, 2), (14, 1));
        assert_eq!(same_pad(7, 5, 1), (7, 2));
    }

    #[test]
    fn decode_refuses_pixel_bombs_from_the_header() {
        // A valid 1-colour PNG of 20000x20000: tiny file, 400M pixels.
        let mut png = Vec::new();
        let enc = image::codecs::png::PngEncoder::new(&mut png);
        let big = image::GrayImage::new(20000, 1);
        image::ImageEncoder::write_image(enc, big.as_raw(), 20000, 1, image::ExtendedColorType::L8).unwrap();
        let lim = ImageLimits { max_pixels: 10_000, max_side: 30_000 };
        let err = decode_image(&png, lim).unwrap_err().to_string();
        assert!(err.contains("20000x1") && err.contains("max_image_pixels"), "{err}");
    }

    #[test]
    fn decode_reports_truncation() {
        let mut png = Vec::new();
        let img = image::RgbImage::from_fn(64, 64, |x, y| image::Rgb([x as u8, y as u8, 7]));
        img.write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
        let err = decode_image(&png[..png.len() / 2], ImageLimits::default()).unwrap_err().to_string();
        assert!(err.contains("Png"), "{err}");
        let ok = decode_image(&png, ImageLimits::default()).unwrap();
        assert_eq!(ok.dimensions(), (64, 64));
    }

    #[test]
    fn every_format_decodes_and_every_truncation_is_an_error_not_a_panic() {
        let img = image::RgbImage::from_fn(97, 61, |x, y| image::Rgb([(x * 2) as u8, (y * 4) as u8, (x + y) as u8]));
        for fmt in [
            image::ImageFormat::Png,
            image::ImageFormat::Jpeg,
            image::ImageFormat::Gif,
            image::ImageFormat::Bmp,
            image::ImageFormat::Tiff,
            image::ImageFormat::WebP,
        ] {
            let mut bytes = Vec::new();
            image::DynamicImage::ImageRgb8(img.clone()).write_to(&mut Cursor::new(&mut bytes), fmt).unwrap();
            let back = decode_image(&bytes, ImageLimits::default()).unwrap_or_else(|e| panic!("{fmt:?}: {e}"));
            assert_eq!(back.dimensions(), (97, 61), "{fmt:?}");
            // Cut anywhere: a clear error (or, for formats that tolerate a short tail, an image).
            for cut in [8, 16, 40, bytes.len() / 2, bytes.len() - 3] {
                if let Err(e) = decode_image(&bytes[..cut], ImageLimits::default()) {
                    assert!(!e.to_string().is_empty());
                }
            }
            // Garbage after a valid header.
            let mut bad = bytes.clone();
            for b in bad.iter_mut().skip(bytes.len() / 3).step_by(7) {
                *b ^= 0x5a;
            }
            let _ = decode_image(&bad, ImageLimits::default());
        }
        assert!(decode_image(b"GIF89a", ImageLimits::default()).is_err());
    }

    #[test]
    fn preprocess_centres_and_scales() {
        let img = image::RgbImage::from_pixel(300, 600, image::Rgb([255, 0, 128]));
        let x = preprocess(&img);
        assert_eq!(x.len(), 224 * 224 * 3);
        assert!((x[0] - 1.0).abs() < 1e-6 && (x[1] + 1.0).abs() < 1e-6 && (x[2] - 0.0039).abs() < 1e-3);
    }
}
