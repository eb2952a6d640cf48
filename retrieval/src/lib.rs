//! AgentDB retrieval: what turns files into items and questions into ranked sources,
//! with no transport in sight. The gRPC and A2A edges, the workflow executor and the
//! command-line tools all call these functions directly.
//!
//! - [`encoders`]: the encoders the server loaded (text, image label bridge, speech
//!   bridge, sound labels, a user's CLIP, CLAP or ONNX image encoder) and which one fills
//!   which space; [`towers`]: each of them behind the [`Encoder`] trait.
//! - [`ingest`]: one file → detect its type from the bytes → decode → split → embed into
//!   every space of the collection → one atomic upsert ([`IngestOutcome`]).
//! - [`query`]: one query (text, image, recording, video, or keywords) → embedded into
//!   each space → per-space, per-modality dense lists and a keyword list → fused by
//!   source → [`Hit`]s with an optional explanation.
//! - [`sound`]: recordings without speech, named by the sound-event classifier, and
//!   query recordings listened to.
//! - [`Observer`]: what the caller wants told about writes (standing queries, events).
//!
//! Layering: this crate uses `agentdb-engine` and `agentdb-models` only. It never
//! imports the orchestrator, the server, tonic, prost or HTTP types.

pub mod config;
pub mod encoders;
mod error;
pub mod ingest;
mod observer;
pub mod query;
pub mod sound;
mod target;
pub mod towers;

pub use agentdb_models::batcher::with_tenant;
pub use encoders::{Encoder, EncoderSet, Encoders, GpuChoice, Modal};
pub use error::{Error, Result};
pub use ingest::{ingest_file, IngestLimits, IngestOutcome, IngestStatus, VideoOptions};
pub use observer::{NoObserver, Observer};
pub use query::{CrossQuery, Hit, KeywordQuery, QueryInput, Retrieval};
pub use target::Target;
