//! What travels through NATS: cluster metadata in the KV buckets, shard write records in
//! the JetStream streams, and the read requests nodes send each other. All JSON, each
//! with a format version where it is stored.

use agentdb_engine::keyword::KeywordStats;
use agentdb_engine::{CollectionSpec, Filter, SearchParams};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Format version of the stored records (collection metadata, assignments, writes).
pub const FORMAT: u32 = 1;

/// A sharded collection (`meta` bucket, key `coll.NAME`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectionMeta {
    pub format: u32,
    /// The collection as each replica creates it locally (its name is the cluster name).
    pub spec: CollectionSpec,
    pub shards: u32,
    pub replicas: u32,
    /// Replicas of each shard's JetStream stream (1 on a single NATS server).
    pub stream_replicas: u32,
}

/// Which nodes hold a shard (`meta` bucket, key `assign.NAME.SHARD`), set by the leader.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    pub format: u32,
    pub nodes: Vec<String>,
    /// Nodes of `nodes` still catching up with the stream (a replica being added: by a
    /// move, a drain or a replacement). Reads go to them last; once one has caught up the
    /// leader drops the replica it replaces ("catch up, then switch").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub catching_up: Vec<String>,
}

/// A node's heartbeat (`nodes` bucket, key = node id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub id: String,
    /// The node's gRPC address, for clients and tools.
    pub addr: String,
    pub started_unix_ms: u64,
    /// Applied stream sequence per local shard replica (`NAME/SHARD`).
    pub applied: BTreeMap<String, u64>,
}

/// An item in a write record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireItem {
    pub id: String,
    pub vectors: BTreeMap<String, Vec<f32>>,
    pub payload: serde_json::Value,
}

impl From<agentdb_engine::Item> for WireItem {
    fn from(it: agentdb_engine::Item) -> WireItem {
        WireItem { id: it.id, vectors: it.vectors, payload: it.payload }
    }
}

impl From<WireItem> for agentdb_engine::Item {
    fn from(it: WireItem) -> agentdb_engine::Item {
        agentdb_engine::Item { id: it.id, vectors: it.vectors, payload: it.payload }
    }
}

impl From<WireItem> for agentdb_engine::StoredItem {
    fn from(it: WireItem) -> agentdb_engine::StoredItem {
        agentdb_engine::StoredItem { id: it.id, vectors: it.vectors, payload: it.payload }
    }
}

/// One record of a shard's write stream: what every replica applies, in stream order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Write {
    Upsert {
        format: u32,
        items: Vec<WireItem>,
    },
    Delete {
        format: u32,
        ids: Vec<String>,
    },
    /// Delete the items matching a filter: every replica resolves it at the same point of
    /// the stream, so they delete the same items.
    DeleteFilter {
        format: u32,
        filter: Filter,
    },
}

/// A read one node asks another to run on its replica of a shard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Read {
    Search {
        collection: String,
        shard: u32,
        space: String,
        vector: Vec<f32>,
        k: usize,
        filter: Option<Filter>,
        with_payload: bool,
        /// Wait until the replica has applied this far (read-your-writes).
        min_seq: u64,
        /// The query's ef / nprobe / exact (absent from older nodes: the defaults).
        #[serde(default)]
        params: SearchParams,
    },
    Get {
        collection: String,
        shard: u32,
        ids: Vec<String>,
        with_vectors: bool,
        min_seq: u64,
    },
    Count {
        collection: String,
        shard: u32,
        filter: Option<Filter>,
        min_seq: u64,
    },
    /// The replica's BM25 statistics for a keyword query (summed over the shards, then
    /// sent back with [`Read::Keyword`]).
    KeywordStats {
        collection: String,
        shard: u32,
        query: String,
        weights: [f32; 8],
        min_seq: u64,
    },
    /// A keyword search scored with the cluster-wide statistics.
    Keyword {
        collection: String,
        shard: u32,
        query: String,
        weights: [f32; 8],
        k: usize,
        filter: Option<Filter>,
        stats: KeywordStats,
        min_seq: u64,
    },
    /// One page of the replica's items in id order after `after`.
    Scroll {
        collection: String,
        shard: u32,
        filter: Option<Filter>,
        after: String,
        limit: usize,
        with_vectors: bool,
        min_seq: u64,
    },
    /// Seal the replica's buffered writes into indexed segments (and merge them).
    Flush {
        collection: String,
        shard: u32,
        optimize: bool,
        min_seq: u64,
    },
}

/// A hit as nodes exchange it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireHit {
    pub id: String,
    pub score: f32,
    pub payload: Option<serde_json::Value>,
}

/// A keyword hit as nodes exchange it (what `--explain` shows travels with it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireKeywordHit {
    pub id: String,
    pub score: f32,
    pub payload: Option<serde_json::Value>,
    pub matched: Vec<(String, Vec<String>)>,
    pub snippet: String,
    pub coverage: f32,
}

/// The answer to a [`Read`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadReply {
    Hits(Vec<WireHit>),
    Items(Vec<WireItem>),
    Count(u64),
    KeywordStats(KeywordStats),
    KeywordHits(Vec<WireKeywordHit>),
    /// A scroll page, and whether the replica has more items after it.
    Page {
        items: Vec<WireItem>,
        more: bool,
    },
    Error {
        unavailable: bool,
        message: String,
    },
}
