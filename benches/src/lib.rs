//! Shared, seeded data generation for AgentDB's criterion benchmarks (`benches/index.rs`).
//!
//! Everything here is deterministic: the same seed gives the same vectors on every run,
//! so numbers from different runs and machines measure the same work.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Dimension of the benchmark vectors (a typical sentence-embedding size).
pub const DIM: usize = 384;

/// `n` vectors of `dim` components, row-major, uniform in [-0.5, 0.5).
pub fn random_vectors(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n * dim).map(|_| rng.random::<f32>() - 0.5).collect()
}

/// Scale every row of `v` (row-major, `dim` components each) to unit L2 norm.
pub fn normalize_rows(v: &mut [f32], dim: usize) {
    for row in v.chunks_mut(dim) {
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            row.iter_mut().for_each(|x| *x /= norm);
        }
    }
}

/// `n` unit-norm vectors of `dim` components, row-major: what a cosine space stores,
/// so inner product equals cosine similarity.
pub fn unit_vectors(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut v = random_vectors(n, dim, seed);
    normalize_rows(&mut v, dim);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_are_seeded_and_unit_norm() {
        let a = unit_vectors(5, DIM, 1);
        assert_eq!(a, unit_vectors(5, DIM, 1));
        assert_ne!(a, unit_vectors(5, DIM, 2));
        for row in a.chunks(DIM) {
            let n: f32 = row.iter().map(|x| x * x).sum();
            assert!((n - 1.0).abs() < 1e-4, "{n}");
        }
    }
}
