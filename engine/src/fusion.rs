//! Fusing ranked lists (one per space and item modality) into one ranking of sources.
//!
//! Scores from different spaces and modalities are not on one scale (a transcript scores
//! 0.45–0.70 against a paraphrase, an image-label prompt 0.30–0.50), and a list always
//! has a first hit however badly it matches. The default, [`FusionMode::Calibrated`],
//! turns each list's (score, rank) into a probability of relevance with that list's own
//! [`Calibration`] (logistic, fitted on labelled queries: see docs/SEARCH.md) and ranks a
//! source by its *best* list: appearing in more lists, or having more parts, adds
//! nothing. Reciprocal-rank fusion (sum over lists) and a weighted sum of raw scores
//! remain as options. Hits are grouped by a key (the source file): a source's rank in a
//! list is the rank of its best part there, and the fused hit shows the part that ranked
//! best anywhere.

use crate::types::Hit;
use std::collections::HashMap;

/// The `k` of reciprocal-rank fusion (Cormack et al.): score = Σ weight / (K + rank).
pub const RRF_K: f32 = 60.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FusionMode {
    /// max over lists of weight × the list's calibrated probability of relevance.
    #[default]
    Calibrated,
    /// Σ over lists of weight / (60 + rank).
    Rrf,
    /// Σ weight × raw similarity of the source's best part in each list.
    Weighted,
}

/// How a list's evidence for a source becomes a probability of relevance (Platt
/// scaling): `p = σ(score·s + inv_rank/rank + coverage·c + short_field·f + bias)`, where
/// `s` is the source's raw score in the list, and for keyword lists `c` is the share of
/// the query it matched (idf-weighted, [`crate::keyword::KeywordHit::coverage`]) and `f`
/// is 1 when a match is in a short field (OCR, labels, file name, title, tags, meta).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Calibration {
    pub score: f32,
    pub inv_rank: f32,
    pub coverage: f32,
    pub short_field: f32,
    pub bias: f32,
}

/// What a keyword list knows about each hit beyond its BM25 score.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct KeywordEvidence {
    /// The share of the query matched, idf-weighted (0–1).
    pub coverage: f32,
    /// A match in a short field (not `text` or `transcript`).
    pub short_field: bool,
}

impl Calibration {
    /// For a list nothing was fitted for: rank alone (fitted on every dense list of the
    /// eval's tune half; see docs/SEARCH.md).
    pub const RANK_ONLY: Calibration =
        Calibration { score: 0.0, inv_rank: 4.107, coverage: 0.0, short_field: 0.0, bias: -6.045 };

    /// The probability of relevance of the source at `rank` (1-based) with raw score `s`;
    /// `coverage` (0–1) and `short_field` for keyword hits (0 elsewhere).
    pub fn probability(&self, s: f32, rank: usize, coverage: f32, short_field: bool) -> f32 {
        let logit = self.score * s
            + self.inv_rank / rank.max(1) as f32
            + self.coverage * coverage
            + if short_field { self.short_field } else { 0.0 }
            + self.bias;
        1.0 / (1.0 + (-logit).exp())
    }
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
    /// Calibrated fusion reads the list's scores and ranks through this.
    pub calibration: Calibration,
    /// Keyword lists: per hit (parallel to `hits`), the terms and fields it matched.
    pub evidence: Vec<KeywordEvidence>,
}

impl RankedList {
    pub fn new(name: impl Into<String>, weight: f32, hits: Vec<Hit>) -> RankedList {
        RankedList {
            name: name.into(),
            weight,
            hits,
            scale: 1.0,
            details: Vec::new(),
            calibration: Calibration::RANK_ONLY,
            evidence: Vec::new(),
        }
    }

    pub fn with_calibration(mut self, c: Calibration) -> RankedList {
        self.calibration = c;
        self
    }

    /// The keyword (BM25) list: scores normalised by the best one for weighted fusion.
    pub fn keyword(weight: f32, hits: Vec<crate::keyword::KeywordHit>) -> RankedList {
        let best = hits.iter().map(|h| h.hit.score).fold(0f32, f32::max);
        let details = hits
            .iter()
            .map(|h| (h.matched.iter().map(|(f, t)| format!("{f}: {}", t.join(" "))).collect(), h.snippet.clone()))
            .collect();
        let evidence = hits
            .iter()
            .map(|h| KeywordEvidence {
                coverage: h.coverage,
                short_field: h.matched.iter().any(|(f, _)| f != "text" && f != "transcript"),
            })
            .collect();
        RankedList {
            name: "keyword".into(),
            weight,
            hits: hits.into_iter().map(|h| h.hit).collect(),
            scale: if best > 0.0 { 1.0 / best } else { 1.0 },
            details,
            calibration: Calibration::RANK_ONLY,
            evidence,
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
    /// What the list added to the fused score: weight × calibrated probability
    /// (calibrated fusion; the source's score is the largest), weight / (60 + rank)
    /// (RRF) or weight × scaled score (weighted).
    pub contribution: f32,
    /// Keyword lists: the share of the query matched, idf-weighted (0–1).
    pub coverage: f32,
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
        let mut evidence = list.evidence.into_iter();
        for hit in list.hits {
            let (matched, snippet) = details.next().unwrap_or_default();
            let ev = evidence.next().unwrap_or_default();
            let key = key(&hit);
            if in_list.insert(key.clone(), ()).is_some() {
                continue; // a later, worse part of a source already ranked in this list
            }
            rank += 1;
            let contribution = match mode {
                FusionMode::Calibrated => {
                    list.weight * list.calibration.probability(hit.score, rank, ev.coverage, ev.short_field)
                }
                FusionMode::Rrf => list.weight / (RRF_K + rank as f32),
                FusionMode::Weighted => list.weight * hit.score * list.scale,
            };
            let entry = ListScore {
                list: list.name.clone(),
                rank,
                score: hit.score,
                matched,
                snippet,
                contribution,
                coverage: ev.coverage,
            };
            match acc.get_mut(&key) {
                Some(a) => {
                    a.score = match mode {
                        FusionMode::Calibrated => a.score.max(contribution),
                        _ => a.score + contribution,
                    };
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
            vec![ListScore {
                list: "text/text".into(),
                rank: 1,
                score: 0.7,
                contribution: 1.0 / 61.0,
                ..Default::default()
            }]
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
    fn calibrated_fusion_takes_the_best_list_not_the_sum() {
        // The same source second in two lists does not beat a source first in one: its
        // score is its best list's probability, not their sum.
        let c = Calibration { score: 8.0, inv_rank: 4.0, bias: -9.0, ..Default::default() };
        let seen = RankedList::new("text/image", 1.0, vec![hit("photo#0", 0.6), hit("video#frame3", 0.45)])
            .with_calibration(c);
        let said =
            RankedList::new("text/speech", 1.0, vec![hit("doc#0", 0.7), hit("video#seg1", 0.5)]).with_calibration(c);
        let f = fuse(vec![seen, said], FusionMode::Calibrated, src, 10);
        let order: Vec<&str> = f.iter().map(|h| h.key.as_str()).collect();
        assert_eq!(order, ["doc", "photo", "video"]);
        let video = &f[2];
        assert_eq!(video.explain.len(), 2);
        let best = video.explain.iter().map(|e| e.contribution).fold(0.0, f32::max);
        assert_eq!(video.score, best);
        // σ(8·0.5 + 4/2 − 9) = σ(−3)
        assert!((best - 1.0 / (1.0 + 3f32.exp())).abs() < 1e-6, "{best}");
    }

    #[test]
    fn keyword_calibration_reads_coverage_and_fields() {
        let kw = Calibration { inv_rank: 1.0, coverage: 3.0, short_field: 1.0, bias: -5.0, ..Default::default() };
        // Both query terms in an OCR field, ranked 2nd, beats one term in a long text ranked 1st.
        let kh = |id: &str, score: f32, coverage: f32, matched: Vec<(&str, Vec<&str>)>| crate::keyword::KeywordHit {
            hit: hit(id, score),
            matched: matched.into_iter().map(|(f, t)| (f.into(), t.into_iter().map(String::from).collect())).collect(),
            snippet: String::new(),
            coverage,
        };
        let list = RankedList::keyword(
            1.0,
            vec![
                kh("licence", 7.5, 0.5, vec![("text", vec!["password"])]),
                kh("card", 0.7, 1.0, vec![("ocr", vec!["guest", "password"])]),
            ],
        )
        .with_calibration(kw);
        assert_eq!(list.evidence[1], KeywordEvidence { coverage: 1.0, short_field: true });
        let f = fuse(vec![list], FusionMode::Calibrated, |h| h.id.clone(), 10);
        assert_eq!(f[0].key, "card");
        // σ(1/2 + 3·1 + 1 − 5) = σ(−0.5); the licence: σ(1 + 3·0.5 − 5) = σ(−2.5)
        assert!((f[0].score - 1.0 / (1.0 + 0.5f32.exp())).abs() < 1e-6, "{}", f[0].score);
        assert!((f[1].score - 1.0 / (1.0 + 2.5f32.exp())).abs() < 1e-6, "{}", f[1].score);
        assert!(
            Calibration::RANK_ONLY.probability(0.9, 1, 0.0, false)
                > Calibration::RANK_ONLY.probability(0.9, 2, 0.0, false)
        );
    }

    #[test]
    fn empty_lists_fuse_to_nothing() {
        assert!(fuse(Vec::new(), FusionMode::Rrf, |h| h.id.clone(), 5).is_empty());
    }
}
