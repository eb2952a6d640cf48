//! The engine's one error type. `server` maps every variant to a gRPC status.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request that can never succeed as written (bad spec, bad vector, bad id).
    #[error("{0}")]
    InvalidArgument(String),
    #[error("wrong dimension for space '{space}': expected {expected}, got {got}")]
    DimensionMismatch { space: String, expected: usize, got: usize },
    #[error("{0}")]
    InvalidFilter(#[from] crate::filter::FilterError),
    #[error("collection '{0}' not found")]
    CollectionNotFound(String),
    #[error("collection '{0}' already exists")]
    CollectionExists(String),
    /// A collection whose files could not be opened (a corrupted or undecryptable file,
    /// an index description this version refuses, ...): it is kept on disk, not served,
    /// and may be dropped. `reason` names the file.
    #[error("collection '{name}' is damaged and not served: {reason}")]
    CollectionDamaged { name: String, reason: String },
    #[error("collection '{collection}' has no vector space '{space}' (spaces: {known})")]
    SpaceNotFound { collection: String, space: String, known: String },
    /// A configured limit was exceeded (batch size, payload size, top-k, ...).
    #[error("{0}")]
    LimitExceeded(String),
    /// A file on disk failed its format or checksum checks.
    #[error("corrupted file {path}: {reason}")]
    Corrupted { path: PathBuf, reason: String },
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The data directory is held by another process.
    #[error("data directory {path} is locked by another agentdb process{holder}; stop it or use another --data-dir")]
    Locked { path: PathBuf, holder: String },
    #[error("FAISS error: {0}")]
    Faiss(String),
    /// Encryption at rest: a missing, wrong or unusable key (see `crypto`).
    #[error("{0}")]
    Encryption(String),
    /// The collection was dropped or the database is shutting down.
    #[error("{0}")]
    Unavailable(String),
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
    pub fn corrupted(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Corrupted { path: path.into(), reason: reason.into() }
    }
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidArgument(msg.into())
    }
}
