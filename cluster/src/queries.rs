//! Reads of sharded collections beyond vector search: keyword (BM25) search scored
//! with cluster-wide statistics, and paging through items in id order. Both scatter to
//! one replica per shard and merge exactly.
//!
//! Keyword scores stay comparable across shards because no shard scores with its own
//! statistics: a first round collects each shard's document count, tokens per field and
//! the document frequency of every query term ([`KeywordStats`]); their sums go back
//! with the query, and each shard scores its hits as one index holding every shard's
//! items would (Elasticsearch's "DFS query then fetch"). The merged top k is then the
//! single index's top k (`engine::keyword` tests it).

use crate::{Cluster, Error, Read, ReadReply, Result, Token, WireItem, WireKeywordHit};
use agentdb_engine::keyword::{FieldWeights, KeywordStats};
use agentdb_engine::{Collection, Filter};

/// A keyword or scroll read on this node's replica (`Cluster::serve_read`).
pub(crate) fn serve_local(c: &Collection, read: Read) -> agentdb_engine::Result<ReadReply> {
    Ok(match read {
        Read::KeywordStats { query, weights, .. } => {
            ReadReply::KeywordStats(c.keyword_stats(&query, &FieldWeights(weights))?)
        }
        Read::Keyword { query, weights, k, filter, stats, .. } => ReadReply::KeywordHits(
            c.keyword_search_with(&query, &FieldWeights(weights), k, filter.as_ref(), Some(&stats))?
                .into_iter()
                .map(|h| WireKeywordHit {
                    id: h.hit.id,
                    score: h.hit.score,
                    payload: h.hit.payload,
                    matched: h.matched,
                    snippet: h.snippet,
                    coverage: h.coverage,
                })
                .collect(),
        ),
        Read::Scroll { filter, after, limit, with_vectors, .. } => {
            let (items, next) = c.scroll(filter.as_ref(), &after, limit, with_vectors)?;
            ReadReply::Page {
                items: items
                    .into_iter()
                    .map(|it| WireItem { id: it.id, vectors: it.vectors, payload: it.payload })
                    .collect(),
                more: next.is_some(),
            }
        }
        other => return Err(agentdb_engine::Error::invalid(format!("not a keyword or scroll read: {other:?}"))),
    })
}

fn unexpected(what: &str, r: &ReadReply) -> Error {
    Error::Nats(format!("unexpected answer to a {what}: {r:?}"))
}

impl Cluster {
    /// BM25 search across every shard with cluster-wide statistics; the best `k` hits.
    pub async fn keyword_search(
        &self,
        name: &str,
        query: &str,
        weights: &FieldWeights,
        k: usize,
        filter: Option<Filter>,
        token: &Token,
    ) -> Result<Vec<WireKeywordHit>> {
        let meta = self.meta(name)?;
        let w = weights.0;
        let reads = (0..meta.shards).map(|shard| {
            let read = Read::KeywordStats {
                collection: name.to_string(),
                shard,
                query: query.to_string(),
                weights: w,
                min_seq: token.min_seq(shard),
            };
            self.read(name, shard, read, token)
        });
        let mut stats = KeywordStats::default();
        for r in futures_util::future::join_all(reads).await {
            match r? {
                ReadReply::KeywordStats(s) => stats.add(&s),
                other => return Err(unexpected("keyword statistics read", &other)),
            }
        }
        let reads = (0..meta.shards).map(|shard| {
            let read = Read::Keyword {
                collection: name.to_string(),
                shard,
                query: query.to_string(),
                weights: w,
                k,
                filter: filter.clone(),
                stats: stats.clone(),
                min_seq: token.min_seq(shard),
            };
            self.read(name, shard, read, token)
        });
        let mut hits = Vec::new();
        for r in futures_util::future::join_all(reads).await {
            match r? {
                ReadReply::KeywordHits(h) => hits.extend(h),
                other => return Err(unexpected("keyword search", &other)),
            }
        }
        hits.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.id.cmp(&b.id)));
        hits.truncate(k);
        Ok(hits)
    }

    /// One page of items in id order across the shards: the first `limit` ids after
    /// `after` (they are among each shard's own first `limit`), and the id to continue
    /// after (`None` at the end).
    pub async fn scroll(
        &self,
        name: &str,
        filter: Option<Filter>,
        after: &str,
        limit: usize,
        with_vectors: bool,
        token: &Token,
    ) -> Result<(Vec<WireItem>, Option<String>)> {
        let meta = self.meta(name)?;
        let reads = (0..meta.shards).map(|shard| {
            let read = Read::Scroll {
                collection: name.to_string(),
                shard,
                filter: filter.clone(),
                after: after.to_string(),
                limit,
                with_vectors,
                min_seq: token.min_seq(shard),
            };
            self.read(name, shard, read, token)
        });
        let (mut items, mut more) = (Vec::new(), false);
        for r in futures_util::future::join_all(reads).await {
            match r? {
                ReadReply::Page { items: page, more: m } => {
                    items.extend(page);
                    more |= m;
                }
                other => return Err(unexpected("scroll", &other)),
            }
        }
        items.sort_by(|a, b| a.id.cmp(&b.id));
        more |= items.len() > limit;
        items.truncate(limit);
        let next = if more { items.last().map(|i| i.id.clone()) } else { None };
        Ok((items, next))
    }
}
