//! The installed models folder, which must hold ONNX Runtime (tests that run ONNX graphs).

use agentdb_models::registry;
use std::path::PathBuf;

pub fn models_dir() -> PathBuf {
    let root = registry::default_dir();
    assert!(
        root.join("onnxruntime").exists(),
        "{} has no ONNX Runtime: install the models first with `make models` (.ci/models.sh)",
        root.display()
    );
    root
}
