//! Fusing ranked lists (one per space and item modality) into one ranking of sources.
//!
//! Scores from different spaces and modalities are not on one scale (a transcript scores
//! 0.45–0.70 against a paraphrase, an image-label prompt 0.30–0.50), so the default is
//! reciprocal-rank fusion, which only uses ranks. Hits are grouped by a key (the source
//! file): a source's rank in a list is the rank of its best part there, and the fused
//! hit shows the part that ranked best anywhere.

use crate::types::Hit;
use std::collections::HashMap;

/// The `k` of reciprocal-rank fusion (Cormack et al.): score = Σ weight / (K + rank).
pub const RRF_K: f32 = 60.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FusionMode {
    #[default]
    Rrf,
    /// Σ weight × raw similarity of the source's best part in each list.
    Weighted,
}

/// One ranked list, best first.
#[derive(Debug, Clone)]
pub struct RankedList {
    pub name: String,
    pub weight: f32,
    pub hits: Vec<Hit>,
    /// Weighted fusion multiplies raw scores by this, bringing unbounded scores (BM25)
    /// to the 0–1 range of similarities: 1 / the list's best score for keyword lists.
    pub scale: f32,
    /// Per hit (parallel to `hits`, or empty): matched terms and a snippet, for explain.
    pub details: Vec<(Vec<String>, String)>,
}

impl RankedList {
    pub fn new(name: impl Into<String>, weight: f32, hits: Vec<Hit>) -> RankedList {
        RankedList { name: name.into(), weight, hits, scale: 1.0, details: Vec::new() }
    }

    /// The keyword (BM25) list: scores normalised by the best one for weighted fusion.
    pub fn keyword(weight: f32, hits: Vec<crate::keyword::KeywordHit>) -> RankedList {
        let best = hits.iter().map(|h| h.hit.score).fold(0f32, f32::max);
        let details = hits
            .iter()
            .map(|h| (h.matched.iter().map(|(f, t)| format!("{f}: {}", t.join(" "))).collect(), h.snippet.clone()))
            .collect();
        RankedList {
            name: "keyword".into(),
            weight,
            hits: hits.into_iter().map(|h| h.hit).collect(),
            scale: if best > 0.0 { 1.0 / best } else { 1.0 },
            details,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListScore {
    pub list: String,
    /// 1-based rank of the source in the list.
    pub rank: usize,
    /// Raw similarity of the source's best part in the list (BM25 for keyword lists).
    pub score: f32,
    /// Keyword lists: "field: term term" per matched field.
    pub matched: Vec<String>,
    /// Keyword lists: a passage of the best field, matched words in `**`.
    pub snippet: String,
}

#[derive(Debug, Clone)]
pub struct FusedHit {
    pub key: String,
    pub score: f32,
    /// The part that ranked best in any list.
    pub hit: Hit,
    pub explain: Vec<ListScore>,
}

/// Fuse `lists` by `key` (hits with the same key are one result) and keep the top `k`.
pub fn fuse(lists: Vec<RankedList>, mode: FusionMode, key: impl Fn(&Hit) -> String, k: usize) -> Vec<FusedHit> {
    struct Acc {
        score: f32,
        best_rank: usize,
        hit: Hit,
        explain: Vec<ListScore>,
        first_seen: usize,
    }
    let mut acc: HashMap<String, Acc> = HashMap::new();
    let mut seen = 0usize;
    for list in lists {
        let mut rank = 0usize;
        let mut in_list: HashMap<String, ()> = HashMap::new();
        let mut details = list.details.into_iter();
        for hit in list.hits {
            let (matched, snippet) = details.next().unwrap_or_default();
            let key = key(&hit);
            if in_list.insert(key.clone(), ()).is_some() {
                continue; // a later, worse part of a source already ranked in this list
            }
            rank += 1;
            let contribution = match mode {
                FusionMode::Rrf => list.weight / (RRF_K + rank as f32),
                FusionMode::Weighted => list.weight * hit.score * list.scale,
            };
            let entry = ListScore { list: list.name.clone(), rank, score: hit.score, matched, snippet };
            match acc.get_mut(&key) {
                Some(a) => {
                    a.score += contribution;
                    a.explain.push(entry);
                    if rank < a.best_rank || (rank == a.best_rank && hit.score > a.hit.score) {
                        a.best_rank = rank;
                        a.hit = hit;
                    }
                }
                None => {
                    seen += 1;
                    acc.insert(
                        key,
                        Acc { score: contribution, best_rank: rank, hit, explain: vec![entry], first_seen: seen },
                    );
                }
            }
        }
    }
    let mut out: Vec<(usize, FusedHit)> = acc
        .into_iter()
        .map(|(key, a)| (a.first_seen, FusedHit { key, score: a.score, hit: a.hit, explain: a.explain }))
        .collect();
    // Higher fused score first; ties broken by the best part's similarity, then by
    // order of appearance so results are deterministic.
    out.sort_by(|(fa, a), (fb, b)| {
        b.score.total_cmp(&a.score).then(b.hit.score.total_cmp(&a.hit.score)).then(fa.cmp(fb))
    });
    out.into_iter().take(k).map(|(_, f)| f).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(id: &str, score: f32) -> Hit {
        Hit { id: id.into(), score, payload: None, vector: None }
    }

    fn src(h: &Hit) -> String {
        h.id.split('#').next().unwrap().to_string()
    }

    #[test]
    fn rrf_rewards_sources_found_in_several_lists() {
        // "video" is 2nd by what is seen and 2nd by what is said; "photo" and "doc" are
        // first in one list each and absent from the other.
        let seen = RankedList::new("text/image", 1.0, vec![hit("photo#0", 0.5), hit("video#frame3", 0.45)]);
        let said =
            RankedList::new("text/text", 1.0, vec![hit("doc#0", 0.7), hit("video#seg1", 0.6), hit("doc#1", 0.55)]);
        let f = fuse(vec![seen, said], FusionMode::Rrf, src, 10);
        assert_eq!(f[0].key, "video");
        assert_eq!(f[0].explain.len(), 2);
        assert!((f[0].score - 2.0 / 62.0).abs() < 1e-6);
        // The best-ranked part stands for the source (rank 2 in both: higher raw score).
        assert_eq!(f[0].hit.id, "video#seg1");
        // A source's second part does not take a rank of its own: doc ranks 1 only.
        let doc = f.iter().find(|h| h.key == "doc").unwrap();
        assert_eq!(
            doc.explain,
            vec![ListScore { list: "text/text".into(), rank: 1, score: 0.7, ..Default::default() }]
        );
        assert_eq!(f.len(), 3);
    }

    #[test]
    fn weights_and_weighted_mode() {
        let a = RankedList::new("a", 1.0, vec![hit("x", 0.9), hit("y", 0.8)]);
        let b = RankedList::new("b", 3.0, vec![hit("y", 0.3), hit("x", 0.2)]);
        // RRF: the heavier list decides.
        let f = fuse(vec![a.clone(), b.clone()], FusionMode::Rrf, |h| h.id.clone(), 10);
        assert_eq!(f[0].key, "y");
        // Weighted: x = 0.9 + 3*0.2 = 1.5, y = 0.8 + 3*0.3 = 1.7.
        let f = fuse(vec![a, b], FusionMode::Weighted, |h| h.id.clone(), 1);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].key, "y");
        assert!((f[0].score - 1.7).abs() < 1e-6);
    }

    #[test]
    fn empty_lists_fuse_to_nothing() {
        assert!(fuse(Vec::new(), FusionMode::Rrf, |h| h.id.clone(), 5).is_empty());
    }
}
