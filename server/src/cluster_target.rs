//! A sharded collection as a retrieval [`Target`]: the same ingest and cross-modal
//! query pipeline as a local collection (decode, embed and fuse on the node that took
//! the request), with every collection operation going through the cluster: writes to
//! the shards' JetStream streams, vector lists and keyword search scattered to one
//! replica per shard and merged exactly (keyword scores with cluster-wide BM25
//! statistics, `agentdb_cluster::queries`). Runs on a blocking thread (the admission
//! gate's), waiting on the cluster's async calls through the runtime handle.

use agentdb_cluster::{Cluster, CollectionMeta, Token, WireHit};
use agentdb_engine::keyword::{FieldWeights, KeywordHit};
use agentdb_engine::{CollectionSpec, Filter, Hit, Item, SearchRequest, StoredItem};
use agentdb_retrieval::Target;
use parking_lot::Mutex;
use std::sync::Arc;

pub struct ShardedTarget {
    cluster: Arc<Cluster>,
    meta: CollectionMeta,
    /// Reads wait for this (a request's consistency token); writes extend it, so an
    /// ingest's "already there?" check sees its own earlier writes.
    token: Mutex<Token>,
    limits: agentdb_engine::Limits,
    rt: tokio::runtime::Handle,
}

fn engine_err(e: agentdb_cluster::Error) -> agentdb_engine::Error {
    use agentdb_cluster::Error as C;
    match e {
        C::Engine(e) => e,
        C::Invalid(m) => agentdb_engine::Error::InvalidArgument(m),
        C::NotFound(m) => agentdb_engine::Error::CollectionNotFound(m),
        other => agentdb_engine::Error::Unavailable(other.to_string()),
    }
}

fn hit(h: WireHit) -> Hit {
    Hit { id: h.id, score: h.score, payload: h.payload, vector: None }
}

impl ShardedTarget {
    pub fn new(
        cluster: Arc<Cluster>,
        meta: CollectionMeta,
        token: Token,
        limits: agentdb_engine::Limits,
    ) -> ShardedTarget {
        ShardedTarget { cluster, meta, token: Mutex::new(token), limits, rt: tokio::runtime::Handle::current() }
    }

    /// The consistency token covering every write made through this target.
    pub fn token(&self) -> Token {
        self.token.lock().clone()
    }
}

impl Target for ShardedTarget {
    fn name(&self) -> &str {
        &self.meta.spec.name
    }
    fn spec(&self) -> &CollectionSpec {
        &self.meta.spec
    }
    fn max_batch(&self) -> usize {
        self.limits.max_batch.max(1)
    }
    fn max_top_k(&self) -> usize {
        self.limits.max_top_k
    }
    fn has_keyword_index(&self) -> bool {
        self.meta.spec.keyword.is_some()
    }
    fn get(&self, ids: &[String]) -> agentdb_engine::Result<Vec<StoredItem>> {
        let t = self.token();
        let items = self.rt.block_on(self.cluster.get(self.name(), ids.to_vec(), false, &t)).map_err(engine_err)?;
        Ok(items.into_iter().map(StoredItem::from).collect())
    }
    fn upsert(&self, items: Vec<Item>) -> agentdb_engine::Result<Vec<String>> {
        let (ids, t) = self.rt.block_on(self.cluster.upsert(self.name(), items)).map_err(engine_err)?;
        let mut mine = self.token.lock();
        for (shard, seq) in t.seqs {
            mine.observe(shard, seq);
        }
        Ok(ids)
    }
    /// Kept in the cluster's object store, where every node reads it.
    fn put_media(&self, bytes: &[u8]) -> agentdb_engine::Result<()> {
        use sha2::Digest;
        let sha: String = sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect();
        self.rt.block_on(self.cluster.put_media(self.name(), &sha, bytes)).map_err(engine_err)
    }
    fn search(&self, req: SearchRequest) -> agentdb_engine::Result<Vec<Vec<Hit>>> {
        let t = self.token();
        let mut out = Vec::with_capacity(req.queries.len());
        for q in req.queries {
            let hits = self
                .rt
                .block_on(self.cluster.search(
                    self.name(),
                    req.space,
                    q,
                    req.k,
                    req.filter.cloned(),
                    req.with_payload,
                    req.params,
                    &t,
                ))
                .map_err(engine_err)?;
            out.push(hits.into_iter().map(hit).collect());
        }
        Ok(out)
    }
    fn keyword_search(
        &self,
        query: &str,
        weights: &FieldWeights,
        k: usize,
        filter: Option<&Filter>,
    ) -> agentdb_engine::Result<Vec<KeywordHit>> {
        let t = self.token();
        let hits = self
            .rt
            .block_on(self.cluster.keyword_search(self.name(), query, weights, k, filter.cloned(), &t))
            .map_err(engine_err)?;
        Ok(hits
            .into_iter()
            .map(|h| KeywordHit {
                hit: Hit { id: h.id, score: h.score, payload: h.payload, vector: None },
                matched: h.matched,
                snippet: h.snippet,
                coverage: h.coverage,
            })
            .collect())
    }
}
