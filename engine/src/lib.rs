//! AgentDB's storage engine: collections of items (string id, one vector per named
//! space, JSON payload), made durable by a write-ahead log and immutable segments,
//! searched through FAISS indexes with payload filters.
//!
//! This crate knows nothing of gRPC, HTTP, tokio or CUDA: the server converts at the
//! edge, and GPU kernels live in `agentdb-kernels`.

pub mod accel;
pub mod bitmap;
pub mod codec;
/// Encryption at rest (the codec's envelopes; also `agentdb_engine::crypto`).
pub use codec::crypto;
pub mod collection;
pub mod combine;
pub mod db;
pub mod error;
pub mod filter;
pub mod fusion;
pub mod index;
pub mod index_desc;
pub mod keyword;
mod maintenance;
pub mod manifest;
mod media;
pub mod payload;
mod scan;
pub mod search;
pub mod segment;
pub mod types;
pub mod wal;
pub mod walk16;

pub use collection::{Collection, CollectionOptions, Limits, WriteHook};
pub use db::Database;
pub use error::{Error, Result};
pub use filter::Filter;
pub use index::IndexTuning;
pub use media::is_sha256;
pub use scan::MAX_SCROLL_LIMIT;
pub use search::SearchRequest;
pub use types::*;
