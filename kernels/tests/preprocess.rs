//! Batched image preprocessing (resize + centre crop + normalise) against image-rs and
//! against its GPU version. On every machine: the CPU twin against
//! `image::imageops::resize(.., Triangle)` + crop + normalise (what the image encoder
//! does), and bad input. With `--features cuda`: NVRTC compiles the kernels (when libnvrtc
//! is found), and on a machine with a GPU the GPU output must equal the twin's.

use agentdb_kernels::preprocess::{preprocess_batch_cpu, ImageRef, PreprocessParams};
use image::imageops::{resize, FilterType};
use image::RgbImage;

fn noise(w: u32, h: u32, seed: u64) -> Vec<u8> {
    let mut s = seed;
    (0..w as usize * h as usize * 3)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (s >> 56) as u8
        })
        .collect()
}

/// Random content, but with some smooth regions so that not only noise is resampled.
fn test_image(w: u32, h: u32, seed: u64) -> Vec<u8> {
    let mut px = noise(w, h, seed);
    for y in 0..h as usize {
        for x in 0..(w as usize / 2) {
            let i = (y * w as usize + x) * 3;
            px[i] = (x * 255 / w as usize) as u8;
            px[i + 1] = (y * 255 / h as usize) as u8;
        }
    }
    px
}

/// What `models::image::preprocess` does, with the parameters as arguments.
fn reference(w: u32, h: u32, rgb: &[u8], p: &PreprocessParams) -> Vec<f32> {
    let r = p.resize_to;
    let (nw, nh) = if w <= h {
        (r, ((h as f64 * r as f64 / w as f64).round() as u32).max(r))
    } else {
        (((w as f64 * r as f64 / h as f64).round() as u32).max(r), r)
    };
    let img = RgbImage::from_raw(w, h, rgb.to_vec()).unwrap();
    let resized = resize(&img, nw, nh, FilterType::Triangle);
    let (x0, y0) = ((nw - p.crop) / 2, (nh - p.crop) / 2);
    let mut out = Vec::new();
    for y in 0..p.crop {
        for x in 0..p.crop {
            let px = resized.get_pixel(x0 + x, y0 + y);
            for c in 0..3 {
                out.push((px[c] as f32 / 255.0 - p.mean[c]) / p.std[c]);
            }
        }
    }
    out
}

const SIZES: [(u32, u32); 7] = [(300, 600), (640, 480), (257, 256), (1000, 333), (100, 80), (256, 256), (731, 1999)];

fn imagenet() -> PreprocessParams {
    PreprocessParams { resize_to: 160, crop: 128, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] }
}

#[test]
fn cpu_twin_matches_image_rs() {
    for p in [PreprocessParams::default(), imagenet()] {
        let tol = 1.0 / 255.0 / p.std.iter().cloned().fold(f32::INFINITY, f32::min) + 1e-5;
        for (i, &(w, h)) in SIZES.iter().enumerate() {
            let rgb = test_image(w, h, i as u64 + 1);
            let want = reference(w, h, &rgb, &p);
            let got = preprocess_batch_cpu(&[ImageRef { width: w, height: h, rgb: &rgb }], &p).unwrap();
            assert_eq!(got.len(), want.len(), "{w}x{h}");
            let worst = want.iter().zip(&got).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            let exact = want.iter().zip(&got).filter(|(a, b)| a == b).count();
            assert!(worst <= tol, "{w}x{h} {p:?}: worst difference {worst} > {tol}");
            // The twin replicates image-rs's arithmetic, so it should be exact in practice.
            assert_eq!(exact, want.len(), "{w}x{h} {p:?}: {} values differ (worst {worst})", want.len() - exact);
        }
    }
}

#[test]
fn bad_input_is_an_error() {
    let rgb = noise(10, 10, 3);
    let p = PreprocessParams { resize_to: 8, crop: 4, ..PreprocessParams::default() };
    let ok = ImageRef { width: 10, height: 10, rgb: &rgb };
    assert_eq!(preprocess_batch_cpu(&[ok], &p).unwrap().len(), 4 * 4 * 3);
    assert!(preprocess_batch_cpu(&[], &p).unwrap().is_empty());

    let short = ImageRef { width: 10, height: 10, rgb: &rgb[..299] };
    let e = preprocess_batch_cpu(&[ok, short], &p).unwrap_err();
    assert!(e.contains("image 1") && e.contains("300 bytes") && e.contains("299"), "{e}");
    let zero = ImageRef { width: 0, height: 10, rgb: &[] };
    let e = preprocess_batch_cpu(&[zero], &p).unwrap_err();
    assert!(e.contains("0x10"), "{e}");
    let e = preprocess_batch_cpu(&[ok], &PreprocessParams { crop: 9, ..p }).unwrap_err();
    assert!(e.contains("crop (9) is larger than resize_to (8)"), "{e}");
    let e = preprocess_batch_cpu(&[ok], &PreprocessParams { resize_to: 0, crop: 0, ..p }).unwrap_err();
    assert!(e.contains("positive"), "{e}");
    let e = preprocess_batch_cpu(&[ok], &PreprocessParams { std: [0.5, 0.0, 0.5], ..p }).unwrap_err();
    assert!(e.contains("std[1]"), "{e}");
}

#[test]
fn gpu_preprocess_matches_its_cpu_twin() {
    // One batch of images of different sizes; the twin's batch equals its single images.
    let pixels: Vec<Vec<u8>> = SIZES.iter().enumerate().map(|(i, &(w, h))| test_image(w, h, 100 + i as u64)).collect();
    let images: Vec<ImageRef> =
        SIZES.iter().zip(&pixels).map(|(&(width, height), rgb)| ImageRef { width, height, rgb }).collect();
    for p in [PreprocessParams::default(), imagenet()] {
        let twin = preprocess_batch_cpu(&images, &p).unwrap();
        let per = (p.crop * p.crop * 3) as usize;
        assert_eq!(twin.len(), images.len() * per);
        for (im, chunk) in images.iter().zip(twin.chunks_exact(per)) {
            assert_eq!(preprocess_batch_cpu(std::slice::from_ref(im), &p).unwrap(), chunk);
        }
        #[cfg(feature = "cuda")]
        gpu::check(&images, &p, &twin);
    }
}

#[cfg(feature = "cuda")]
mod gpu {
    use super::*;
    use agentdb_kernels::cudarc;
    use agentdb_kernels::preprocess::{GpuPreprocess, PREPROCESS_KERNEL};
    use std::sync::OnceLock;

    static GPU: OnceLock<Option<GpuPreprocess>> = OnceLock::new();

    pub fn check(images: &[ImageRef], p: &PreprocessParams, twin: &[f32]) {
        let gpu = GPU.get_or_init(|| {
            // Safety: only tries to dlopen libnvrtc.
            if unsafe { cudarc::nvrtc::sys::is_culib_present() } {
                let ptx = cudarc::nvrtc::compile_ptx(PREPROCESS_KERNEL).expect("the kernels compile");
                let src = ptx.to_src();
                assert!(src.contains("pp_vertical") && src.contains("pp_horizontal"));
                eprintln!("NVRTC compiled PREPROCESS_KERNEL");
            } else {
                eprintln!("libnvrtc not found (LD_LIBRARY_PATH): kernels not compiled; `make test` provides it");
            }
            match GpuPreprocess::new(0) {
                Ok(g) => {
                    eprintln!("GPU preprocessing parity on {}", g.name);
                    Some(g)
                }
                Err(why) => {
                    eprintln!("no GPU: {why}; CPU twin only");
                    None
                }
            }
        });
        if let Some(g) = gpu {
            let got = g.run(images, p).expect("GPU preprocess");
            assert_eq!(got.len(), twin.len());
            let worst = twin.iter().zip(&got).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(worst <= 1e-4, "GPU vs twin {p:?}: worst difference {worst}");
            assert!(g.run(&[], p).unwrap().is_empty());
        }
    }
}
