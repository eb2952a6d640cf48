//! Where ingestion writes and cross-modal queries read: a local collection, or a
//! collection sharded across a cluster (the server implements [`Target`] over
//! `agentdb-cluster`), so one pipeline — decode, embed, split, fuse — serves both.

use agentdb_engine::keyword::{FieldWeights, KeywordHit};
use agentdb_engine::{Collection, CollectionSpec, Filter, Hit, Item, Result, SearchRequest, StoredItem};

/// The collection operations ingestion and cross-modal search use.
pub trait Target: Send + Sync {
    fn name(&self) -> &str;
    fn spec(&self) -> &CollectionSpec;
    /// Most items per write and most results per list.
    fn max_batch(&self) -> usize;
    fn max_top_k(&self) -> usize;
    fn has_keyword_index(&self) -> bool;
    /// Items by id (found ones), without vectors.
    fn get(&self, ids: &[String]) -> Result<Vec<StoredItem>>;
    /// Write items (acknowledged once durable); their ids in order.
    fn upsert(&self, items: Vec<Item>) -> Result<Vec<String>>;
    /// Keep an ingested file's bytes for clients (a target may not keep them).
    fn put_media(&self, bytes: &[u8]) -> Result<()>;
    /// Nearest neighbours, one list per query vector.
    fn search(&self, req: SearchRequest) -> Result<Vec<Vec<Hit>>>;
    /// BM25 over the keyword index, with matched terms, snippets and coverage.
    fn keyword_search(
        &self,
        query: &str,
        weights: &FieldWeights,
        k: usize,
        filter: Option<&Filter>,
    ) -> Result<Vec<KeywordHit>>;
}

impl Target for Collection {
    fn name(&self) -> &str {
        Collection::name(self)
    }
    fn spec(&self) -> &CollectionSpec {
        &self.spec
    }
    fn max_batch(&self) -> usize {
        self.options().limits.max_batch.max(1)
    }
    fn max_top_k(&self) -> usize {
        self.options().limits.max_top_k
    }
    fn has_keyword_index(&self) -> bool {
        Collection::has_keyword_index(self)
    }
    fn get(&self, ids: &[String]) -> Result<Vec<StoredItem>> {
        Collection::get(self, ids, false)
    }
    fn upsert(&self, items: Vec<Item>) -> Result<Vec<String>> {
        Collection::upsert(self, items)
    }
    fn put_media(&self, bytes: &[u8]) -> Result<()> {
        Collection::put_media(self, bytes).map(|_| ())
    }
    fn search(&self, req: SearchRequest) -> Result<Vec<Vec<Hit>>> {
        Collection::search(self, req)
    }
    fn keyword_search(
        &self,
        query: &str,
        weights: &FieldWeights,
        k: usize,
        filter: Option<&Filter>,
    ) -> Result<Vec<KeywordHit>> {
        Collection::keyword_search(self, query, weights, k, filter)
    }
}
