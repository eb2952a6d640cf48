//! The smart cache: an edge's bounded copy of a hub collection it does not mirror. While
//! the hub is reachable, a search or get on the collection is answered by the hub (over
//! the leaf link, core NATS request/reply on `agentdb.edge.fetch.<hub domain>`) and the
//! items it returns are kept locally; the least recently used are dropped once the
//! cached bytes pass the budget. Offline, the cache answers, and says the answer may be
//! partial. Items a local query touches (hits, gets) count as used.

use agentdb_engine::{Collection, Filter, Item, SearchParams, SearchRequest, StoredItem};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// A cached collection and its budget.
#[derive(Debug, Clone)]
pub struct CacheSpec {
    pub name: String,
    /// Bytes of items (id, payload as JSON, vectors as f32) the cache may hold.
    pub budget: u64,
}

/// Parse a byte size: `65536`, `64KiB`, `64MiB`, `2GiB` (also `KB`/`MB`/`GB`, powers of 1000).
pub fn parse_bytes(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: f64 = n.parse().ok()?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mib" => 1048576.0,
        "g" | "gb" => 1e9,
        "gib" => 1073741824.0,
        _ => return None,
    };
    (n >= 0.0).then_some((n * mult) as u64)
}

/// The size an item counts for in the budget.
pub fn item_bytes(id: &str, payload: &serde_json::Value, vectors: &BTreeMap<String, Vec<f32>>) -> u64 {
    (id.len() + payload.to_string().len() + vectors.values().map(|v| v.len() * 4).sum::<usize>()) as u64
}

/// Least-recently-used order of the cached items and their sizes.
#[derive(Debug, Default)]
pub struct Lru {
    pub budget: u64,
    pub bytes: u64,
    tick: u64,
    by_id: HashMap<String, (u64, u64)>,
    order: BTreeMap<u64, String>,
}

impl Lru {
    pub fn new(budget: u64) -> Lru {
        Lru { budget, ..Default::default() }
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    pub fn contains(&self, id: &str) -> bool {
        self.by_id.contains_key(id)
    }

    /// Mark `id` as just used; `size` (re)sets its size (an item stored or replaced).
    pub fn touch(&mut self, id: &str, size: Option<u64>) {
        self.tick += 1;
        let t = self.tick;
        match self.by_id.get_mut(id) {
            Some((old_t, old_size)) => {
                self.order.remove(old_t);
                *old_t = t;
                if let Some(s) = size {
                    self.bytes = self.bytes - *old_size + s;
                    *old_size = s;
                }
            }
            None => {
                let Some(s) = size else { return };
                self.by_id.insert(id.to_string(), (t, s));
                self.bytes += s;
            }
        }
        self.order.insert(t, id.to_string());
    }

    pub fn remove(&mut self, id: &str) {
        if let Some((t, s)) = self.by_id.remove(id) {
            self.order.remove(&t);
            self.bytes -= s;
        }
    }

    /// The least recently used ids to drop so the cache is within its budget again
    /// (removed from the order already).
    pub fn over_budget(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        while self.bytes > self.budget {
            let Some((_, id)) = self.order.pop_first() else { break };
            if let Some((_, s)) = self.by_id.remove(&id) {
                self.bytes -= s;
            }
            out.push(id);
        }
        out
    }
}

/// A request to the hub.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Fetch {
    Search { collection: String, space: String, vector: Vec<f32>, k: usize, filter: Option<Filter> },
    Get { collection: String, ids: Vec<String> },
}

/// One item in the hub's answer.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Fetched {
    pub id: String,
    pub score: f32,
    pub payload: serde_json::Value,
    pub vectors: BTreeMap<String, Vec<f32>>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum FetchReply {
    Items(Vec<Fetched>),
    Error(String),
}

/// The hub's side: answer a fetch from its own collection.
pub(crate) fn serve(db: &agentdb_engine::Database, req: Fetch) -> FetchReply {
    let run = || -> agentdb_engine::Result<Vec<Fetched>> {
        match req {
            Fetch::Search { collection, space, vector, k, filter } => {
                let col = db.collection(&collection)?;
                let hits = col.search(SearchRequest {
                    space: &space,
                    queries: vec![vector],
                    k,
                    filter: filter.as_ref(),
                    params: SearchParams::default(),
                    with_payload: true,
                    with_vectors: false,
                })?;
                let hits = hits.into_iter().next().unwrap_or_default();
                let ids: Vec<String> = hits.iter().map(|h| h.id.clone()).collect();
                let mut full: HashMap<String, StoredItem> =
                    col.get(&ids, true)?.into_iter().map(|it| (it.id.clone(), it)).collect();
                Ok(hits
                    .into_iter()
                    .filter_map(|h| {
                        let it = full.remove(&h.id)?;
                        Some(Fetched { id: h.id, score: h.score, payload: it.payload, vectors: it.vectors })
                    })
                    .collect())
            }
            Fetch::Get { collection, ids } => {
                let col = db.collection(&collection)?;
                Ok(col
                    .get(&ids, true)?
                    .into_iter()
                    .map(|it| Fetched { id: it.id, score: 0.0, payload: it.payload, vectors: it.vectors })
                    .collect())
            }
        }
    };
    match run() {
        Ok(items) => FetchReply::Items(items),
        Err(e) => FetchReply::Error(e.to_string()),
    }
}

/// Store what the hub returned in the local cache collection and account for it; drop
/// the least recently used beyond the budget. Returns how many were evicted.
pub(crate) fn keep(col: &Collection, lru: &mut Lru, items: &[Fetched]) -> agentdb_engine::Result<usize> {
    if items.is_empty() {
        return Ok(0);
    }
    let max = col.options().limits.max_batch.max(1);
    for chunk in items.chunks(max) {
        col.upsert_direct(
            chunk
                .iter()
                .map(|f| Item { id: f.id.clone(), vectors: f.vectors.clone(), payload: f.payload.clone() })
                .collect(),
        )?;
    }
    for f in items {
        lru.touch(&f.id, Some(item_bytes(&f.id, &f.payload, &f.vectors)));
    }
    let gone = lru.over_budget();
    for chunk in gone.chunks(max) {
        col.delete_direct(chunk)?;
    }
    Ok(gone.len())
}

/// Rebuild the accounting of a cache collection from what it holds (at start).
pub(crate) fn load(col: &Collection, budget: u64) -> agentdb_engine::Result<Lru> {
    let mut lru = Lru::new(budget);
    let mut after = String::new();
    loop {
        let (items, next) = col.scroll(None, &after, agentdb_engine::MAX_SCROLL_LIMIT, true)?;
        for it in items {
            lru.touch(&it.id, Some(item_bytes(&it.id, &it.payload, &it.vectors)));
        }
        match next {
            Some(n) => after = n,
            None => break,
        }
    }
    let gone = lru.over_budget();
    if !gone.is_empty() {
        col.delete_direct(&gone)?;
    }
    Ok(lru)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_bytes("65536"), Some(65536));
        assert_eq!(parse_bytes("64KiB"), Some(65536));
        assert_eq!(parse_bytes("2 MiB"), Some(2 * 1048576));
        assert_eq!(parse_bytes("1.5GB"), Some(1_500_000_000));
        assert_eq!(parse_bytes("12 parsecs"), None);
        assert_eq!(parse_bytes(""), None);
    }

    #[test]
    fn the_least_recently_used_go_first_and_the_budget_holds() {
        let mut lru = Lru::new(100);
        for id in ["a", "b", "c"] {
            lru.touch(id, Some(30));
        }
        assert!(lru.over_budget().is_empty());
        lru.touch("a", None); // used: b is now the oldest
        lru.touch("d", Some(30));
        assert_eq!(lru.over_budget(), vec!["b".to_string()]);
        assert_eq!(lru.bytes, 90);
        lru.touch("c", Some(80)); // replaced by a bigger version
        assert_eq!(lru.over_budget(), vec!["a".to_string(), "d".to_string()]);
        assert_eq!((lru.len(), lru.bytes), (1, 80));
        lru.touch("never-stored", None);
        assert!(!lru.contains("never-stored"));
        lru.remove("c");
        assert!(lru.is_empty() && lru.bytes == 0);
    }
}
