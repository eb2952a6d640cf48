//! The GPU exact top-k against its CPU twins. On every machine: the CPU twin of the GPU
//! algorithm (`topk_blocked`) against the plain exact kernel. With `--features cuda`:
//! NVRTC compiles the selection kernel (when libnvrtc is found, e.g. from the
//! `nvidia-cuda-nvrtc` wheel the test set-up installs), and on a machine with a GPU the
//! GPU results must equal the twin's.

#[cfg(feature = "cuda")]
use agentdb_kernels::gpu::Precision;
use agentdb_kernels::gpu::{topk_blocked, topk_blocked_f16};
use agentdb_kernels::{topk_exact, Candidates, Distance, Neighbor};

fn vecs(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n * dim)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect()
}

fn same(a: &[Vec<Neighbor>], b: &[Vec<Neighbor>], what: &str) {
    assert_eq!(a.len(), b.len());
    for (qa, qb) in a.iter().zip(b) {
        assert_eq!(qa.len(), qb.len(), "{what}");
        for (x, y) in qa.iter().zip(qb) {
            // Equal scores may swap rows; scores must agree.
            assert!((x.score - y.score).abs() <= 1e-3 * (1.0 + x.score.abs()), "{what}: {x:?} vs {y:?}");
        }
    }
}

#[test]
fn gpu_topk_matches_its_cpu_twins() {
    let (n, dim) = (70_000, 64);
    let base = vecs(n, dim, 7);
    // (2, 1000): the device needs several selection stages (18 chunks × 1000 keys).
    for (nq, k) in [(1, 10), (64, 10), (5, 100), (2, 1000)] {
        let q = vecs(nq, dim, 11 + nq as u64);
        for d in [Distance::InnerProduct, Distance::L2] {
            let exact = topk_exact(&q, &base, dim, Candidates::All, k, d);
            let twin = topk_blocked(&q, &base, dim, k, d);
            same(&exact, &twin, &format!("CPU twin, {nq} queries, k {k}, {d:?}"));
            #[cfg(feature = "cuda")]
            gpu::check(&base, dim, &q, k, d, &twin, Precision::F32);
            // fp16 storage: the twin over the rounded values; its scores stay within
            // fp16 rounding of the exact ones.
            let twin16 = topk_blocked_f16(&q, &base, dim, k, d);
            for (a, b) in exact.iter().zip(&twin16) {
                assert!(
                    (a[0].score - b[0].score).abs() <= 2e-2 * (1.0 + a[0].score.abs()),
                    "fp16 twin: {:?} vs {:?}",
                    a[0],
                    b[0]
                );
            }
            #[cfg(feature = "cuda")]
            gpu::check(&base, dim, &q, k, d, &twin16, Precision::F16);
        }
    }
}

#[cfg(feature = "cuda")]
mod gpu {
    use super::*;
    use agentdb_kernels::cudarc;
    use agentdb_kernels::gpu::{GpuTopK, SELECT_KERNEL};
    use std::sync::OnceLock;

    static GPU: OnceLock<Option<GpuTopK>> = OnceLock::new();

    pub fn check(base: &[f32], dim: usize, q: &[f32], k: usize, d: Distance, twin: &[Vec<Neighbor>], p: Precision) {
        let gpu = GPU.get_or_init(|| match GpuTopK::new(0) {
            Ok(g) => {
                eprintln!("GPU parity on {} ({} MiB)", g.info.name, g.info.total_bytes >> 20);
                Some(g)
            }
            Err(why) => {
                eprintln!("no GPU here ({why}): CPU twins only");
                None
            }
        });
        if let Some(g) = gpu {
            let b = g.upload_as(base, dim, p).expect("upload");
            let got = g.search(&b, q, k, d).expect("GPU search");
            same(twin, &got, &format!("GPU {}, {} queries, k {k}, {d:?}", p.name(), q.len() / dim));
        }
    }

    #[test]
    fn nvrtc_compiles_the_selection_kernel() {
        // Safety: only tries to dlopen libnvrtc.
        if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
            eprintln!("libnvrtc not found (LD_LIBRARY_PATH): skipped; `make test` provides it");
            return;
        }
        let ptx = cudarc::nvrtc::compile_ptx(SELECT_KERNEL).expect("the kernel compiles");
        assert!(ptx.to_src().contains("topk_select"));
    }
}
