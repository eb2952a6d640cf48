//! AgentDB compute kernels.
//!
//! Every kernel here has a CPU implementation that is always compiled and is the
//! reference ("twin") for any accelerated version. The engine calls these for exact
//! search over small or filtered candidate sets, where building or querying an ANN
//! index would cost more than scanning.

pub mod bert;
pub mod convnet;
pub mod gpu;
pub mod preprocess;
pub mod topk;

pub use topk::{topk_exact, Candidates, Distance, Neighbor};

/// The CUDA bindings the GPU kernels use (for callers that probe libraries themselves).
#[cfg(feature = "cuda")]
pub use cudarc;
