//! The models crate's one error type; the server maps each variant to a gRPC status.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input cannot be decoded or embedded as given (bad UTF-8, empty text, ...).
    #[error("{0}")]
    InvalidInput(String),
    /// A named model is not installed or not known.
    #[error("{0}")]
    ModelNotFound(String),
    /// Model files exist but cannot be used (checksum mismatch, bad config, bad weights).
    #[error("cannot load model from {path}: {reason}")]
    ModelLoad { path: PathBuf, reason: String },
    /// The inference engine failed.
    #[error("inference failed: {0}")]
    Inference(String),
    /// Queues in front of an encoder are full.
    #[error("{0}")]
    Overloaded(String),
}

impl From<candle_core::Error> for Error {
    fn from(e: candle_core::Error) -> Self {
        Error::Inference(e.to_string())
    }
}
