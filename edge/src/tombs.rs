//! Tombstones: the versions of deleted items, kept so that an older write arriving later
//! loses to the delete, until every node has seen the delete (then they are collected).
//! One append-only JSON-lines file per collection under the edge's data folder, read into
//! memory at start and rewritten without the dead lines then and after each collection.

use crate::hlc::{Hlc, Stamp};
use crate::merge::Version;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Serialize, Deserialize)]
struct Line {
    id: String,
    /// None: the tombstone is gone (the item came back, or it was collected).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    s: Option<Stamp>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    p: Map<String, Value>,
}

struct Coll {
    path: PathBuf,
    live: HashMap<String, (Stamp, Map<String, Value>)>,
    file: std::fs::File,
}

pub struct Tombstones {
    dir: PathBuf,
    colls: Mutex<BTreeMap<String, Coll>>,
}

fn io(path: &Path, e: std::io::Error) -> agentdb_engine::Error {
    agentdb_engine::Error::io(path, e)
}

impl Tombstones {
    pub fn open(dir: &Path) -> agentdb_engine::Result<Tombstones> {
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        Ok(Tombstones { dir: dir.to_path_buf(), colls: Mutex::new(BTreeMap::new()) })
    }

    fn with<R>(
        &self,
        collection: &str,
        f: impl FnOnce(&mut Coll) -> agentdb_engine::Result<R>,
    ) -> agentdb_engine::Result<R> {
        let mut colls = self.colls.lock();
        if !colls.contains_key(collection) {
            let path = self.dir.join(format!("{collection}.jsonl"));
            let mut live = HashMap::new();
            if let Ok(text) = std::fs::read_to_string(&path) {
                for (n, line) in text.lines().enumerate() {
                    match serde_json::from_str::<Line>(line) {
                        Ok(Line { id, s: Some(s), p }) => {
                            live.insert(id, (s, p));
                        }
                        Ok(Line { id, s: None, .. }) => {
                            live.remove(&id);
                        }
                        // A torn last line from a crash: the write it belonged to was not
                        // acknowledged; it is replayed from the change stream.
                        Err(e) => {
                            tracing::warn!(file = %path.display(), line = n + 1, error = %e, "edge: unreadable tombstone line skipped")
                        }
                    }
                }
            }
            let file = rewrite(&path, &live)?;
            colls.insert(collection.to_string(), Coll { path, live, file });
        }
        f(colls.get_mut(collection).expect("inserted above"))
    }

    /// The tombstone of `id`, as a version.
    pub fn get(&self, collection: &str, id: &str) -> agentdb_engine::Result<Option<Version>> {
        self.with(collection, |c| {
            Ok(c.live.get(id).map(|(s, p)| Version {
                stamp: s.clone(),
                deleted: true,
                vectors: BTreeMap::new(),
                payload: p.clone(),
            }))
        })
    }

    /// Record tombstones (`Some`) and remove them (`None`), durably, in one append.
    pub fn write(&self, collection: &str, changes: Vec<(String, Option<Version>)>) -> agentdb_engine::Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        self.with(collection, |c| {
            let mut buf = Vec::new();
            for (id, v) in &changes {
                let line = Line {
                    id: id.clone(),
                    s: v.as_ref().map(|v| v.stamp.clone()),
                    p: v.as_ref().map(|v| v.payload.clone()).unwrap_or_default(),
                };
                serde_json::to_writer(&mut buf, &line).map_err(|e| agentdb_engine::Error::invalid(e.to_string()))?;
                buf.push(b'\n');
            }
            c.file.write_all(&buf).map_err(|e| io(&c.path, e))?;
            c.file.sync_data().map_err(|e| io(&c.path, e))?;
            for (id, v) in changes {
                match v {
                    Some(v) => {
                        c.live.insert(id, (v.stamp, v.payload));
                    }
                    None => {
                        c.live.remove(&id);
                    }
                }
            }
            Ok(())
        })
    }

    pub fn count(&self, collection: &str) -> usize {
        self.with(collection, |c| Ok(c.live.len())).unwrap_or(0)
    }

    /// The ids and stamps of a collection's tombstones.
    pub fn list(&self, collection: &str) -> Vec<(String, Stamp)> {
        self.with(collection, |c| Ok(c.live.iter().map(|(id, (s, _))| (id.clone(), s.clone())).collect()))
            .unwrap_or_default()
    }

    /// Drop the tombstones stamped before `floor` (every node has seen them); how many.
    pub fn collect(&self, collection: &str, floor: Hlc) -> agentdb_engine::Result<usize> {
        self.with(collection, |c| {
            let before = c.live.len();
            c.live.retain(|_, (s, _)| s.hlc >= floor);
            let n = before - c.live.len();
            if n > 0 {
                c.file = rewrite(&c.path, &c.live)?;
            }
            Ok(n)
        })
    }
}

/// Write the live tombstones to a fresh file (atomically) and open it for appending.
fn rewrite(path: &Path, live: &HashMap<String, (Stamp, Map<String, Value>)>) -> agentdb_engine::Result<std::fs::File> {
    let tmp = path.with_extension("jsonl.tmp");
    let mut buf = Vec::new();
    for (id, (s, p)) in live {
        serde_json::to_writer(&mut buf, &Line { id: id.clone(), s: Some(s.clone()), p: p.clone() })
            .map_err(|e| agentdb_engine::Error::invalid(e.to_string()))?;
        buf.push(b'\n');
    }
    std::fs::write(&tmp, &buf).map_err(|e| io(&tmp, e))?;
    std::fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(|e| io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io(path, e))?;
    std::fs::OpenOptions::new().append(true).open(path).map_err(|e| io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tomb(wall: u64) -> Version {
        Version {
            stamp: Stamp { hlc: Hlc { wall, logical: 0 }, origin: "a".into() },
            deleted: true,
            vectors: BTreeMap::new(),
            payload: Map::new(),
        }
    }

    #[test]
    fn tombstones_survive_a_restart_and_are_collected_below_the_floor() {
        let dir = tempfile::tempdir().unwrap();
        {
            let t = Tombstones::open(dir.path()).unwrap();
            t.write("c", vec![("x".into(), Some(tomb(5))), ("y".into(), Some(tomb(9))), ("z".into(), Some(tomb(1)))])
                .unwrap();
            t.write("c", vec![("z".into(), None)]).unwrap();
        }
        // A torn last line is skipped.
        let path = dir.path().join("c.jsonl");
        let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"id\":\"w\",\"s\":{\"v\":").unwrap();
        drop(f);
        let t = Tombstones::open(dir.path()).unwrap();
        assert_eq!(t.count("c"), 2);
        assert_eq!(t.get("c", "x").unwrap().unwrap().stamp.hlc.wall, 5);
        assert!(t.get("c", "z").unwrap().is_none());
        assert_eq!(t.collect("c", Hlc { wall: 6, logical: 0 }).unwrap(), 1);
        drop(t);
        let t = Tombstones::open(dir.path()).unwrap();
        assert_eq!(t.list("c").into_iter().map(|(id, _)| id).collect::<Vec<_>>(), vec!["y".to_string()]);
    }
}
