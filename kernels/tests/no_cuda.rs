//! A build without the `cuda` feature has the same GPU API as one with it: every entry
//! point compiles, and every constructor says why it cannot run (`GpuError::NotBuilt`),
//! so callers need no `cfg` of their own and fall back to the CPU twins at run time.
#![cfg(not(feature = "cuda"))]

use agentdb_kernels::bert::{BertShape, GemmMath, GpuBert};
use agentdb_kernels::convnet::GpuConvNet;
use agentdb_kernels::gpu::{probe, GpuError, GpuTopK, NOT_BUILT};
use agentdb_kernels::preprocess::GpuPreprocess;

#[test]
fn every_gpu_entry_point_says_the_build_has_no_cuda() {
    assert_eq!(probe(0).unwrap_err(), GpuError::NotBuilt);
    assert_eq!(GpuTopK::new(0).err(), Some(GpuError::NotBuilt));
    let shape = BertShape {
        hidden: 384,
        layers: 6,
        heads: 12,
        intermediate: 1536,
        vocab: 30522,
        max_positions: 512,
        type_vocab: 2,
        eps: 1e-12,
    };
    let get = |name: &str| -> Result<Vec<f32>, String> { Err(format!("{name} not asked for")) };
    assert_eq!(GpuBert::new(0, shape, GemmMath::F32, &get).err(), Some(GpuError::NotBuilt));
    assert_eq!(GpuConvNet::new(0, GemmMath::F32, (224, 224, 3), &[], &[], &[]).err(), Some(GpuError::NotBuilt));
    assert_eq!(GpuPreprocess::new(0).err(), Some(GpuError::NotBuilt));
    // What a user reads in the log when the server falls back to the CPU.
    assert_eq!(GpuError::NotBuilt.to_string(), NOT_BUILT);
    assert!(NOT_BUILT.contains("FEATURES=cuda"));
}
