//! Standing queries: an agent registers a query vector (a text query is embedded once,
//! by the server, at creation), an optional payload filter and a threshold on a
//! collection; every item written to that collection afterwards that scores within the
//! threshold in the query's space and passes the filter produces one `standing_query`
//! event on the bus.
//!
//! Standing queries are records of the internal collection `_standing` (id = the
//! query id `<agent>.<name>`, payload = the whole query including its vector), so they
//! survive restarts like agents and queues. Matching is in memory: one similarity per
//! (query, item) in the query's space.

use crate::agents::{AgentState, Registry};
use crate::bus::{Bus, Topic};
use crate::{Error, Result};
use agentdb_engine::{Database, Filter, Metric};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

pub const COLLECTION: &str = "_standing";
/// At most this many standing queries per collection (each costs one similarity per
/// written item).
pub const MAX_PER_COLLECTION: usize = 1000;
/// At most this many standing queries in all.
pub const MAX_TOTAL: usize = 10_000;

/// The durable form of a standing query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StandingQuery {
    /// `<agent>.<name>`.
    pub id: String,
    pub agent: String,
    pub name: String,
    pub collection: String,
    pub space: String,
    pub metric: Metric,
    /// The query vector (normalised for cosine spaces).
    pub vector: Vec<f32>,
    /// The query text, when the vector was embedded from text ("" otherwise).
    #[serde(default)]
    pub text: String,
    /// A filter expression over the payload ("" = none).
    #[serde(default)]
    pub filter: String,
    /// Cosine / inner product: the lowest similarity that matches. L2: the largest
    /// squared distance that matches (the engine's L2 scores).
    pub threshold: f32,
    pub created_unix_ms: u64,
}

/// What an agent asks for; the server resolves `space` and embeds text first.
#[derive(Debug, Clone, Default)]
pub struct NewStandingQuery {
    pub agent: String,
    pub name: String,
    pub collection: String,
    /// "" = the collection's only space, else its first space of the vector's dimension.
    pub space: String,
    pub vector: Vec<f32>,
    pub text: String,
    pub filter: String,
    pub threshold: f32,
}

/// An item that was just written, as far as matching needs it.
#[derive(Debug, Clone)]
pub struct Written {
    pub id: String,
    /// Space name -> vector; "" = the collection's only space.
    pub vectors: BTreeMap<String, Vec<f32>>,
    pub payload: serde_json::Value,
}

/// One (standing query, item) match.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Match {
    pub agent: String,
    pub query_id: String,
    pub query_name: String,
    pub collection: String,
    pub item_id: String,
    pub score: f32,
}

struct Compiled {
    q: StandingQuery,
    filter: Option<Filter>,
}

impl Compiled {
    fn new(q: StandingQuery) -> Result<Compiled> {
        let filter = parse_filter(&q.filter)?;
        Ok(Compiled { q, filter })
    }

    /// The item's score when it matches.
    fn score(&self, it: &Written) -> Option<f32> {
        let v = it.vectors.get(&self.q.space).or_else(|| match it.vectors.len() {
            1 => it.vectors.get(""),
            _ => None,
        })?;
        if v.len() != self.q.vector.len() {
            return None;
        }
        let s = score(self.q.metric, &self.q.vector, v)?;
        let hit = match self.q.metric {
            Metric::L2 => s <= self.q.threshold,
            Metric::Cosine | Metric::InnerProduct => s >= self.q.threshold,
        };
        if !hit || self.filter.as_ref().is_some_and(|f| !f.matches(&it.payload)) {
            return None;
        }
        Some(s)
    }
}

fn parse_filter(expr: &str) -> Result<Option<Filter>> {
    if expr.trim().is_empty() {
        return Ok(None);
    }
    agentdb_engine::filter::parse(expr).map(Some).map_err(|e| Error::Invalid(format!("filter: {e}")))
}

fn normalize(v: &mut [f32]) -> bool {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n == 0.0 || !n.is_finite() {
        return false;
    }
    v.iter_mut().for_each(|x| *x /= n);
    true
}

/// The similarity (cosine, inner product) or squared distance (L2) of `q` and `v`, as
/// the engine scores search hits. Cosine normalises `v` (stored items are normalised
/// on write; the vector seen here may not be yet); `q` is already normalised.
pub fn score(metric: Metric, q: &[f32], v: &[f32]) -> Option<f32> {
    let dot: f32 = q.iter().zip(v).map(|(a, b)| a * b).sum();
    match metric {
        Metric::InnerProduct => Some(dot),
        Metric::Cosine => {
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            (n > 0.0 && n.is_finite()).then(|| dot / n)
        }
        Metric::L2 => Some(q.iter().zip(v).map(|(a, b)| (a - b) * (a - b)).sum()),
    }
}

pub fn query_id(agent: &str, name: &str) -> String {
    format!("{agent}.{name}")
}

pub struct StandingQueries {
    col: crate::Internal,
    db: Arc<Database>,
    bus: Arc<Bus>,
    agents: Arc<Registry>,
    /// collection -> its queries.
    by_collection: RwLock<BTreeMap<String, Vec<Arc<Compiled>>>>,
}

impl StandingQueries {
    /// Load every standing query from `_standing`.
    pub fn open(db: Arc<Database>, bus: Arc<Bus>, agents: Arc<Registry>) -> Result<StandingQueries> {
        let col = crate::Internal::open(db.clone(), COLLECTION);
        let mut by_collection: BTreeMap<String, Vec<Arc<Compiled>>> = BTreeMap::new();
        let mut n = 0;
        for (id, payload) in col.scan()? {
            let q: StandingQuery = serde_json::from_value(payload)
                .map_err(|e| Error::Invalid(format!("standing query record '{id}' is unreadable: {e}")))?;
            let c = Compiled::new(q)?;
            by_collection.entry(c.q.collection.clone()).or_default().push(Arc::new(c));
            n += 1;
        }
        tracing::info!(standing_queries = n, "standing queries loaded");
        Ok(StandingQueries { col, db, bus, agents, by_collection: RwLock::new(by_collection) })
    }

    /// Validate, persist and start matching a standing query.
    pub fn create(&self, r: NewStandingQuery) -> Result<StandingQuery> {
        crate::agents::validate_agent_name(&r.agent)?;
        agentdb_engine::types::validate_name("standing query", &r.name).map_err(|e| Error::Invalid(e.to_string()))?;
        if r.name.len() > 100 {
            return Err(Error::Invalid("standing query name must be at most 100 characters".into()));
        }
        let agent = self.agents.get(&r.agent)?;
        if agent.record.state == AgentState::Retired {
            return Err(Error::FailedPrecondition(format!("agent '{}' is retired", r.agent)));
        }
        if crate::is_internal(&r.collection) {
            return Err(Error::Invalid(format!("'{}' is an internal collection", r.collection)));
        }
        let col = self.db.collection(&r.collection).map_err(|e| match e {
            agentdb_engine::Error::CollectionNotFound(_) => {
                Error::NotFound(format!("collection '{}' not found", r.collection))
            }
            e => e.into(),
        })?;
        let spaces = &col.spec.spaces;
        let space = if r.space.is_empty() {
            if spaces.len() == 1 {
                &spaces[0]
            } else {
                spaces.iter().find(|s| s.dim == r.vector.len()).ok_or_else(|| {
                    Error::Invalid(format!(
                        "no space of collection '{}' has dimension {}; name one with space",
                        r.collection,
                        r.vector.len()
                    ))
                })?
            }
        } else {
            spaces.iter().find(|s| s.name == r.space).ok_or_else(|| {
                Error::NotFound(format!(
                    "collection '{}' has no space '{}' (spaces: {})",
                    r.collection,
                    r.space,
                    spaces.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
                ))
            })?
        };
        if r.vector.len() != space.dim {
            return Err(Error::Invalid(format!(
                "the query vector has dimension {} but space '{}' of '{}' has dimension {}",
                r.vector.len(),
                space.name,
                r.collection,
                space.dim
            )));
        }
        if r.vector.iter().any(|x| !x.is_finite()) || !r.threshold.is_finite() {
            return Err(Error::Invalid("the query vector and threshold must be finite".into()));
        }
        let mut vector = r.vector;
        if space.metric == Metric::Cosine && !normalize(&mut vector) {
            return Err(Error::Invalid(format!("zero query vector for cosine space '{}'", space.name)));
        }
        let filter = parse_filter(&r.filter)?;
        let id = query_id(&r.agent, &r.name);
        let q = StandingQuery {
            id: id.clone(),
            agent: r.agent,
            name: r.name,
            collection: r.collection,
            space: space.name.clone(),
            metric: space.metric,
            vector,
            text: r.text,
            filter: r.filter,
            threshold: r.threshold,
            created_unix_ms: crate::now_ms(),
        };
        let mut g = self.by_collection.write();
        if g.values().flatten().any(|c| c.q.id == id) {
            return Err(Error::AlreadyExists(format!("standing query '{id}' exists; delete it first")));
        }
        if g.values().map(Vec::len).sum::<usize>() >= MAX_TOTAL {
            return Err(Error::LimitExceeded(format!("at most {MAX_TOTAL} standing queries")));
        }
        if g.get(&q.collection).map_or(0, Vec::len) >= MAX_PER_COLLECTION {
            return Err(Error::LimitExceeded(format!(
                "at most {MAX_PER_COLLECTION} standing queries per collection ('{}')",
                q.collection
            )));
        }
        self.col.upsert(vec![crate::record(id, serde_json::to_value(&q).expect("serialisable"))])?;
        g.entry(q.collection.clone()).or_default().push(Arc::new(Compiled { q: q.clone(), filter }));
        Ok(q)
    }

    /// Every standing query (of `agent`, if given), by id.
    pub fn list(&self, agent: Option<&str>) -> Vec<StandingQuery> {
        let mut v: Vec<StandingQuery> = self
            .by_collection
            .read()
            .values()
            .flatten()
            .filter(|c| agent.is_none_or(|a| c.q.agent == a))
            .map(|c| c.q.clone())
            .collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    pub fn get(&self, id: &str) -> Result<StandingQuery> {
        self.by_collection
            .read()
            .values()
            .flatten()
            .find(|c| c.q.id == id)
            .map(|c| c.q.clone())
            .ok_or_else(|| Error::NotFound(format!("standing query '{id}' not found")))
    }

    pub fn delete(&self, id: &str) -> Result<StandingQuery> {
        let mut g = self.by_collection.write();
        let q = g
            .values()
            .flatten()
            .find(|c| c.q.id == id)
            .map(|c| c.q.clone())
            .ok_or_else(|| Error::NotFound(format!("standing query '{id}' not found")))?;
        self.col.delete(&[id.to_string()])?;
        if let Some(v) = g.get_mut(&q.collection) {
            v.retain(|c| c.q.id != id);
            if v.is_empty() {
                g.remove(&q.collection);
            }
        }
        Ok(q)
    }

    /// Whether any standing query watches `collection` (cheap; callers skip copying
    /// written items when not).
    pub fn watches(&self, collection: &str) -> bool {
        self.by_collection.read().contains_key(collection)
    }

    /// Match written items against the collection's standing queries and publish one
    /// `standing_query.match` event per match. Queries of retired or suspended agents
    /// do not fire.
    pub fn evaluate(&self, collection: &str, items: &[Written]) -> Vec<Match> {
        let queries = match self.by_collection.read().get(collection) {
            Some(v) => v.clone(),
            None => return Vec::new(),
        };
        let mut out = Vec::new();
        let mut firing: BTreeMap<&str, bool> = BTreeMap::new();
        for c in &queries {
            let fires = *firing.entry(&c.q.agent).or_insert_with(|| {
                self.agents
                    .get(&c.q.agent)
                    .is_ok_and(|a| matches!(a.record.state, AgentState::Registered | AgentState::Active))
            });
            if !fires {
                continue;
            }
            for it in items {
                let Some(score) = c.score(it) else { continue };
                let mut data = serde_json::json!({
                    "agent": c.q.agent,
                    "query_id": c.q.id,
                    "query_name": c.q.name,
                    "collection": collection,
                    "space": c.q.space,
                    "item_id": it.id,
                    "score": score,
                });
                for k in ["source", "modality"] {
                    if let Some(v) = it.payload.get(k) {
                        data[k] = v.clone();
                    }
                }
                // Only principals that may read the whole collection see the match.
                let audience = crate::bus::Audience::Collections(vec![collection.to_string()]);
                self.bus.publish_to(Topic::StandingQuery, "standing_query.match", &c.q.id, data, audience);
                out.push(Match {
                    agent: c.q.agent.clone(),
                    query_id: c.q.id.clone(),
                    query_name: c.q.name.clone(),
                    collection: collection.to_string(),
                    item_id: it.id.clone(),
                    score,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agents::AgentCard;
    use agentdb_engine::{CollectionSpec, SpaceSpec};

    fn setup(dir: &std::path::Path) -> (Arc<Database>, Arc<Bus>, Arc<Registry>) {
        let db = Database::open(dir, Default::default()).unwrap();
        let bus = Arc::new(Bus::new(100));
        let reg = Arc::new(Registry::open(db.clone(), bus.clone(), 1000).unwrap());
        reg.register(AgentCard { name: "scout".into(), ..Default::default() }, 0, String::new()).unwrap();
        let space =
            |name: &str, metric| SpaceSpec { name: name.into(), dim: 2, metric, index: "Flat".into(), encoder: None };
        db.create_collection(CollectionSpec {
            name: "docs".into(),
            spaces: vec![space("a", Metric::Cosine), space("b", Metric::L2)],
            keyword: None,
        })
        .unwrap();
        (db, bus, reg)
    }

    fn written(id: &str, space: &str, v: Vec<f32>, payload: serde_json::Value) -> Written {
        Written { id: id.into(), vectors: [(space.to_string(), v)].into(), payload }
    }

    fn new(name: &str, space: &str, vector: Vec<f32>, filter: &str, threshold: f32) -> NewStandingQuery {
        NewStandingQuery {
            agent: "scout".into(),
            name: name.into(),
            collection: "docs".into(),
            space: space.into(),
            vector,
            filter: filter.into(),
            threshold,
            ..Default::default()
        }
    }

    #[test]
    fn matches_by_score_and_filter_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (db, bus, reg) = setup(dir.path());
        let sq = StandingQueries::open(db.clone(), bus.clone(), reg.clone()).unwrap();
        let q = sq.create(new("cats", "a", vec![3.0, 0.0], "kind = 'cat'", 0.9)).unwrap();
        assert_eq!((q.id.as_str(), q.vector.as_slice()), ("scout.cats", &[1.0f32, 0.0][..]));
        sq.create(new("near", "b", vec![0.0, 0.0], "", 1.0)).unwrap();
        assert!(sq.watches("docs") && !sq.watches("other"));
        let items = vec![
            written("hit", "a", vec![2.0, 0.2], serde_json::json!({"kind": "cat", "source": "s.txt"})),
            written("far", "a", vec![1.0, 1.0], serde_json::json!({"kind": "cat"})),
            written("dog", "a", vec![1.0, 0.0], serde_json::json!({"kind": "dog"})),
            written("l2", "b", vec![0.5, 0.5], serde_json::json!({})),
            written("l2far", "b", vec![1.0, 1.0], serde_json::json!({})),
        ];
        let m = sq.evaluate("docs", &items);
        let got: Vec<(&str, &str)> = m.iter().map(|m| (m.query_id.as_str(), m.item_id.as_str())).collect();
        assert_eq!(got, vec![("scout.cats", "hit"), ("scout.near", "l2")]);
        assert!((m[0].score - 2.0 / (4.04f32).sqrt()).abs() < 1e-5);
        assert!((m[1].score - 0.5).abs() < 1e-6);
        match bus.read(&[Topic::StandingQuery], 0, 10) {
            crate::bus::Read::Events(ev) => {
                assert_eq!(ev.len(), 2);
                assert_eq!(ev[0].data["source"], "s.txt");
                assert_eq!(ev[0].data["agent"], "scout");
            }
            other => panic!("{other:?}"),
        }
        // Errors.
        let e = |r: Result<StandingQuery>| r.unwrap_err().to_string();
        assert!(e(sq.create(new("cats", "a", vec![1.0, 0.0], "", 0.5))).contains("exists"));
        assert!(e(sq.create(new("x", "a", vec![1.0, 0.0, 0.0], "", 0.5))).contains("dimension 3"));
        assert!(e(sq.create(new("x", "zz", vec![1.0, 0.0], "", 0.5))).contains("no space 'zz'"));
        assert!(e(sq.create(new("x", "a", vec![1.0, 0.0], "kind = ", 0.5))).contains("filter"));
        assert!(matches!(
            sq.create(NewStandingQuery { agent: "nobody".into(), ..new("x", "a", vec![1.0, 0.0], "", 0.5) }),
            Err(Error::NotFound(_))
        ));
        assert!(matches!(
            sq.create(NewStandingQuery { collection: "nope".into(), ..new("x", "a", vec![1.0, 0.0], "", 0.5) }),
            Err(Error::NotFound(_))
        ));
        drop(sq);
        let sq = StandingQueries::open(db.clone(), bus.clone(), reg.clone()).unwrap();
        assert_eq!(sq.list(Some("scout")).len(), 2);
        assert_eq!(sq.evaluate("docs", &items).len(), 2);
        sq.delete("scout.near").unwrap();
        assert!(matches!(sq.delete("scout.near"), Err(Error::NotFound(_))));
        // Retired agents' queries stop firing; retired agents cannot create any.
        reg.transition("scout", AgentState::Retired, "").unwrap();
        assert!(sq.evaluate("docs", &items).is_empty());
        assert!(matches!(sq.create(new("y", "a", vec![1.0, 0.0], "", 0.5)), Err(Error::FailedPrecondition(_))));
        drop(sq);
        let sq = StandingQueries::open(db, bus, reg).unwrap();
        assert_eq!(sq.list(None).iter().map(|q| q.id.as_str()).collect::<Vec<_>>(), vec!["scout.cats"]);
    }
}
