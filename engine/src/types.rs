//! The data model: collections, vector spaces, items and search hits.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How vectors in a space are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Cosine similarity; vectors are L2-normalised on the way in, then compared by
    /// inner product. Score in [-1, 1], higher is closer.
    Cosine,
    /// Raw inner product; higher is closer.
    InnerProduct,
    /// Squared Euclidean distance; lower is closer.
    L2,
}

impl Metric {
    pub fn parse(s: &str) -> Result<Metric> {
        match s.to_ascii_lowercase().as_str() {
            "cosine" | "cos" => Ok(Metric::Cosine),
            "ip" | "dot" | "inner_product" | "innerproduct" => Ok(Metric::InnerProduct),
            "l2" | "euclid" | "euclidean" => Ok(Metric::L2),
            other => Err(Error::invalid(format!("unknown metric '{other}' (expected cosine, ip or l2)"))),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Cosine => "cosine",
            Metric::InnerProduct => "ip",
            Metric::L2 => "l2",
        }
    }
    pub fn distance(self) -> agentdb_kernels::Distance {
        match self {
            Metric::Cosine | Metric::InnerProduct => agentdb_kernels::Distance::InnerProduct,
            Metric::L2 => agentdb_kernels::Distance::L2,
        }
    }
    /// True when a larger score means a closer match.
    pub fn higher_is_better(self) -> bool {
        !matches!(self, Metric::L2)
    }
}

/// The FAISS index-factory string used when a space does not name one.
pub const DEFAULT_INDEX: &str = "HNSW32";

pub const MAX_DIM: usize = 65_536;
pub const MAX_NAME_LEN: usize = 128;

/// One named vector space of a collection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpaceSpec {
    pub name: String,
    pub dim: usize,
    pub metric: Metric,
    /// FAISS index-factory description, e.g. `Flat`, `HNSW32`, `IVF1024,PQ32`.
    pub index: String,
    /// The encoder whose vectors this space holds (`name@version#sha`), if bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoder: Option<String>,
}

/// What a collection is: its name, its vector spaces and its keyword index (if any).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CollectionSpec {
    pub name: String,
    pub spaces: Vec<SpaceSpec>,
    /// BM25 over the items' text (see [`crate::keyword`]); None = no keyword index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyword: Option<KeywordSpec>,
}

/// What a collection's keyword index does (stored in its spec; absent = no index).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeywordSpec {
    /// Stemming and stop-word language (`english`, `french`, `german`, ...).
    #[serde(default = "default_language")]
    pub language: String,
    /// Payload fields (beyond the built-in ones) indexed into the `meta` field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub searchable: Vec<String>,
}

fn default_language() -> String {
    "english".into()
}

impl Default for KeywordSpec {
    fn default() -> Self {
        KeywordSpec { language: default_language(), searchable: Vec::new() }
    }
}

/// Names of collections and spaces end up in file names: keep them boring.
pub fn validate_name(kind: &str, name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(Error::invalid(format!("{kind} name must be 1 to {MAX_NAME_LEN} characters, got {}", name.len())));
    }
    let ok = name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !name.starts_with('-')
        && !name.starts_with('.');
    if !ok {
        return Err(Error::invalid(format!(
            "invalid {kind} name '{name}': use letters, digits, '_' and '-' (not leading '-')"
        )));
    }
    Ok(())
}

impl CollectionSpec {
    pub fn space(&self, name: &str) -> Result<(usize, &SpaceSpec)> {
        self.spaces.iter().enumerate().find(|(_, s)| s.name == name).ok_or_else(|| Error::SpaceNotFound {
            collection: self.name.clone(),
            space: name.to_string(),
            known: self.spaces.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", "),
        })
    }

    /// The first space whose vectors are comparable with `encoder`'s (an encoder id such
    /// as `name@version#sha`): same embedding family (see [`embedding_family`]).
    pub fn space_for_encoder(&self, encoder: &str) -> Option<&SpaceSpec> {
        let fam = embedding_family(encoder);
        self.spaces.iter().find(|s| s.encoder.as_deref().map(embedding_family) == Some(fam))
    }

    /// Resolve a space name from a request; an empty name means "the only space".
    pub fn resolve_space(&self, name: &str) -> Result<(usize, &SpaceSpec)> {
        if name.is_empty() {
            if self.spaces.len() == 1 {
                return Ok((0, &self.spaces[0]));
            }
            return Err(Error::invalid(format!(
                "collection '{}' has {} spaces ({}); name one",
                self.name,
                self.spaces.len(),
                self.spaces.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
            )));
        }
        self.space(name)
    }
}

/// An item as written by a client: an id, one vector per space, a JSON payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub id: String,
    /// Space name -> vector. An empty name means the collection's only space.
    pub vectors: BTreeMap<String, Vec<f32>>,
    pub payload: serde_json::Value,
}

/// An item as stored, returned by `get`.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredItem {
    pub id: String,
    pub vectors: BTreeMap<String, Vec<f32>>,
    pub payload: serde_json::Value,
}

/// One search result.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub id: String,
    /// Similarity (cosine, ip: higher is closer) or squared distance (l2: lower is closer).
    pub score: f32,
    pub payload: Option<serde_json::Value>,
    pub vector: Option<Vec<f32>>,
}

/// Per-query knobs; zero means "use the collection default".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SearchParams {
    /// HNSW efSearch for this query (0 = the configured default).
    pub ef: usize,
    /// IVF nprobe.
    pub nprobe: usize,
    /// Force exact search (no ANN index).
    pub exact: bool,
}

/// Per-space information for `describe`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpaceInfo {
    pub spec: SpaceSpec,
    /// Index kinds in use across segments, e.g. "HNSW32 (3 segments), Flat (growing)".
    pub index_kinds: Vec<String>,
}

/// What `describe` shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CollectionInfo {
    pub name: String,
    pub spaces: Vec<SpaceInfo>,
    /// The keyword index, if the collection has one.
    pub keyword: Option<KeywordSpec>,
    /// Live items.
    pub count: u64,
    /// Items still in the write buffer (not yet in an indexed segment).
    pub unindexed: u64,
    pub segments: u64,
    /// Rows marked deleted but not yet compacted away.
    pub deleted_rows: u64,
    pub disk_bytes: u64,
    pub last_lsn: u64,
}

/// The embedding space an encoder id writes into. A bridge encoder that maps one
/// modality into another encoder's space is named `bridge>target` (for example
/// `efficientnet-lite0@0.1.0#…>all-minilm-l6-v2@0.1.0#…`); its family is the target's.
/// Vectors of one family are comparable, whichever encoder produced them.
pub fn embedding_family(encoder_id: &str) -> &str {
    encoder_id.rsplit('>').next().unwrap_or(encoder_id)
}
