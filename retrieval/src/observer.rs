//! Side effects that other layers hang on the write path (standing queries, events),
//! installed by the caller instead of reached through globals.

use agentdb_engine::Item;

/// Told about every batch ingestion writes (and, by the server, every upsert).
pub trait Observer: Send + Sync {
    /// Whether anything watches `collection` (callers copy written items only then).
    fn watches(&self, _collection: &str) -> bool {
        false
    }
    /// `items` were written to `collection`; `ids` are the ids the engine returned, in order.
    fn items_written(&self, _collection: &str, _items: &[Item], _ids: &[String]) {}
}

/// An observer that observes nothing (tools, tests, and servers without orchestration).
pub struct NoObserver;

impl Observer for NoObserver {}
