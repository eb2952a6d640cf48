//! Durable A2A tasks: the server's A2A task table (`server/src/a2a.rs`) writes each
//! task's durable part (ids, owner, status, artifacts, bounded history) here, one record
//! per task in the internal collection `_a2a_tasks`, and reads them all back on start.
//! The record's JSON is the server's; this store only keeps writes in order.

use crate::{Internal, Result};
use agentdb_engine::Database;
use std::collections::HashMap;
use std::sync::Arc;

/// The internal collection of A2A task records.
pub const COLLECTION: &str = "_a2a_tasks";

/// The `_a2a_tasks` collection (created on the first write).
pub struct A2aTaskStore {
    col: Internal,
    /// The version last written per task: a write older than it is skipped, so
    /// concurrent writers of one task (its worker, a cancel) cannot go back in time.
    /// Held across the write, which serialises writes.
    written: parking_lot::Mutex<HashMap<String, u64>>,
}

impl A2aTaskStore {
    pub fn open(db: Arc<Database>) -> A2aTaskStore {
        A2aTaskStore { col: Internal::open(db, COLLECTION), written: parking_lot::Mutex::new(HashMap::new()) }
    }

    /// Every stored task record: (task id, record).
    pub fn load(&self) -> Result<Vec<(String, serde_json::Value)>> {
        self.col.scan()
    }

    /// Store `record` as task `id`'s, unless a later `version` of it was written.
    pub fn put(&self, id: &str, version: u64, record: serde_json::Value) -> Result<()> {
        let mut w = self.written.lock();
        if w.get(id).is_some_and(|v| *v >= version) {
            return Ok(());
        }
        self.col.upsert(vec![crate::record(id.to_string(), record)])?;
        w.insert(id.to_string(), version);
        Ok(())
    }

    /// Forget tasks (evicted from the bounded table).
    pub fn delete(&self, ids: &[String]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut w = self.written.lock();
        self.col.delete(ids)?;
        for id in ids {
            w.remove(id);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_reopening_and_stale_writes_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path(), Default::default()).unwrap();
        let s = A2aTaskStore::open(db.clone());
        assert!(s.load().unwrap().is_empty());
        s.put("t1", 2, serde_json::json!({"state": "working"})).unwrap();
        s.put("t1", 1, serde_json::json!({"state": "submitted"})).unwrap();
        s.put("t2", 1, serde_json::json!({"state": "completed"})).unwrap();
        s.delete(&["t2".to_string()]).unwrap();
        drop(s);
        let s = A2aTaskStore::open(db);
        let got = s.load().unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0], ("t1".to_string(), serde_json::json!({"state": "working"})));
    }
}
