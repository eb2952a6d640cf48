//! A write hook: something beside the engine (edge sync, `agentdb-edge`) that takes over
//! the writes of chosen collections — to stamp them with a version, record them for
//! replication and merge them with concurrent writes — before they reach the WAL through
//! [`Collection::upsert_direct`] and [`Collection::delete_direct`]. Every write path of
//! the server (gRPC, REST, MCP, ingestion, workflows) goes through `Collection::upsert`,
//! `delete` and `delete_by_filter`, so a hook sees them all. The engine knows nothing of
//! what the hook does.

use crate::collection::Collection;
use crate::error::Result;
use crate::types::Item;

pub trait WriteHook: Send + Sync {
    /// Whether this hook takes the writes of the collection `name`.
    fn wants(&self, name: &str) -> bool;
    /// An upsert to `col`: validated by the hook through [`Collection::validate_items`]
    /// and applied through [`Collection::upsert_direct`]; the ids in order.
    fn upsert(&self, col: &Collection, items: Vec<Item>) -> Result<Vec<String>>;
    /// A delete of `ids` (by id, or the matches of a filter); how many existed.
    fn delete(&self, col: &Collection, ids: &[String]) -> Result<usize>;
}
