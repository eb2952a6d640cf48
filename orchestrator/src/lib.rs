//! AgentDB orchestration and policy: who may do what (API keys, roles, the audit
//! log and its signed checkpoints), the agent registry, the event bus, durable message
//! queues, standing queries, workflows (definitions, runs and the engine that executes
//! them), cron, AgentDB's own skills (`skills`: search, ingest, remember, recall, run
//! through `agentdb-retrieval`), the A2A task records and the outbound A2A client that
//! workflow steps call agents with (`a2a_client`). Free of the server's transport: the
//! server extracts credentials, converts wire types, implements `skills::Host` (its
//! policy checks and admission gate) and calls in here.
//!
//! Durable state (agents, queues) lives in the engine's own storage, in internal
//! collections whose names start with `_` (see [`is_internal`]): every change is a WAL
//! record, so it survives a crash and is encrypted at rest like user data.

pub mod a2a_client;
pub mod a2a_tasks;
pub mod agents;
pub mod bus;
pub mod cron;
pub mod queue;
pub mod security;
pub mod skills;
pub mod standing;
pub mod time;
pub mod workflow;

use agentdb_engine::{Collection, CollectionSpec, Database, Item, Metric, SpaceSpec};
use std::sync::Arc;

/// Errors of the agent registry, the event bus and the queues. The server maps each
/// variant to a gRPC status.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    /// The request is valid but not in the current state (an illegal lifecycle
    /// transition, a stale receipt).
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    LimitExceeded(String),
    /// A bug or a lost task (a panic on the blocking pool).
    #[error("{0}")]
    Internal(String),
    #[error(transparent)]
    Engine(#[from] agentdb_engine::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Internal collections (`_agents`, `_queues`) start with `_`; they are hidden from
/// collection listings and cannot be created or dropped through the API.
pub fn is_internal(collection: &str) -> bool {
    collection.starts_with('_')
}

/// The single placeholder space of an internal collection: the engine needs at least
/// one vector space, internal items only use payloads, so each carries `[0.0]`.
const PLACEHOLDER_SPACE: &str = "_";

/// An internal collection, created on first write (so a server that never uses agents
/// or queues has no internal collections at all).
pub(crate) struct Internal {
    db: Arc<Database>,
    name: &'static str,
    col: parking_lot::Mutex<Option<Arc<Collection>>>,
}

impl Internal {
    pub(crate) fn open(db: Arc<Database>, name: &'static str) -> Internal {
        let col = db.collection(name).ok();
        Internal { db, name, col: parking_lot::Mutex::new(col) }
    }

    /// Every record, if the collection exists.
    pub(crate) fn scan(&self) -> Result<Vec<(String, serde_json::Value)>> {
        match self.col.lock().clone() {
            Some(c) => Ok(c.scan_payloads()?),
            None => Ok(Vec::new()),
        }
    }

    pub(crate) fn collection(&self) -> Result<Arc<Collection>> {
        let mut g = self.col.lock();
        if let Some(c) = &*g {
            return Ok(c.clone());
        }
        let c = internal_collection(&self.db, self.name)?;
        *g = Some(c.clone());
        Ok(c)
    }

    pub(crate) fn upsert(&self, items: Vec<Item>) -> Result<()> {
        self.collection()?.upsert(items)?;
        Ok(())
    }

    pub(crate) fn delete(&self, ids: &[String]) -> Result<()> {
        self.collection()?.delete(ids)?;
        Ok(())
    }
}

/// Open (creating on first use) an internal collection.
fn internal_collection(db: &Database, name: &str) -> Result<Arc<Collection>> {
    match db.collection(name) {
        Ok(c) => Ok(c),
        Err(agentdb_engine::Error::CollectionNotFound(_)) => {
            let spec = CollectionSpec {
                name: name.to_string(),
                spaces: vec![SpaceSpec {
                    name: PLACEHOLDER_SPACE.into(),
                    dim: 1,
                    metric: Metric::L2,
                    index: "Flat".into(),
                    encoder: None,
                }],
                keyword: None,
            };
            match db.create_collection(spec) {
                Ok(c) => Ok(c),
                Err(agentdb_engine::Error::CollectionExists(_)) => Ok(db.collection(name)?),
                Err(e) => Err(e.into()),
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// An internal record: id and JSON payload, with the placeholder vector.
pub(crate) fn record(id: String, payload: serde_json::Value) -> Item {
    Item { id, vectors: [(String::new(), vec![0.0])].into(), payload }
}

/// Engine work (an fsync per change) on the blocking pool; a lost task is `Internal`.
pub async fn blocking<T, F>(f: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f).await.map_err(|e| Error::Internal(format!("task failed: {e}")))?
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}
