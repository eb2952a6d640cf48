//! The keyword index: BM25 over every piece of text an item carries (text chunks,
//! transcripts, OCR, image labels, metadata), one `tantivy` field per kind so a query can
//! weight or exclude each.
//!
//! The index lives in memory and is derived data: the items' payloads (in the WAL and the
//! segments, encrypted at rest like everything else) are the source of truth. A collection
//! builds it at open from its live items after WAL replay, and every upsert and delete
//! updates it under the same lock that applies the write, so it is never behind an
//! acknowledged write and a kill -9 cannot leave it out of step.
//!
//! Queries use a small syntax of our own (so errors can name their position):
//! `word`, `"a phrase"`, `field:word`, `field:"a phrase"`, `+must`, `-must_not`, `word^2`.

use crate::error::{Error, Result};
use crate::types::Hit;
use parking_lot::Mutex;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use tantivy::collector::TopDocs;
use tantivy::query::{
    Bm25StatisticsProvider, BooleanQuery, BoostQuery, EmptyQuery, Occur, PhraseQuery, Query, TermQuery,
};
use tantivy::schema::{Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, Value as _, STORED, STRING};
use tantivy::tokenizer::{
    Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, StopWordFilter, TextAnalyzer,
};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

/// The text fields of the keyword index, in the order `--explain` lists them.
pub const FIELDS: [&str; 8] = ["text", "transcript", "ocr", "labels", "filename", "title", "tags", "meta"];

pub use crate::types::KeywordSpec;

impl KeywordSpec {
    pub fn validate(&self) -> Result<()> {
        language(&self.language)?;
        for f in &self.searchable {
            if f.is_empty() || f.len() > 256 {
                return Err(Error::InvalidArgument(format!("searchable payload field '{f}' must be 1-256 bytes")));
            }
        }
        Ok(())
    }
}

const LANGUAGES: [(&str, Language); 18] = [
    ("arabic", Language::Arabic),
    ("danish", Language::Danish),
    ("dutch", Language::Dutch),
    ("english", Language::English),
    ("finnish", Language::Finnish),
    ("french", Language::French),
    ("german", Language::German),
    ("greek", Language::Greek),
    ("hungarian", Language::Hungarian),
    ("italian", Language::Italian),
    ("norwegian", Language::Norwegian),
    ("portuguese", Language::Portuguese),
    ("romanian", Language::Romanian),
    ("russian", Language::Russian),
    ("spanish", Language::Spanish),
    ("swedish", Language::Swedish),
    ("tamil", Language::Tamil),
    ("turkish", Language::Turkish),
];

fn language(name: &str) -> Result<Language> {
    LANGUAGES.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, l)| *l).ok_or_else(|| {
        let known: Vec<&str> = LANGUAGES.iter().map(|(n, _)| *n).collect();
        Error::InvalidArgument(format!("unknown keyword language '{name}' (one of: {})", known.join(", ")))
    })
}

/// Lower-case, drop stop words (where the language has a list) and stem.
fn analyzer(lang: Language) -> TextAnalyzer {
    let b = TextAnalyzer::builder(SimpleTokenizer::default()).filter(RemoveLongFilter::limit(40)).filter(LowerCaser);
    match StopWordFilter::new(lang) {
        Some(stop) => b.filter(stop).filter(Stemmer::new(lang)).build(),
        None => TextAnalyzer::builder(SimpleTokenizer::default())
            .filter(RemoveLongFilter::limit(40))
            .filter(LowerCaser)
            .filter(Stemmer::new(lang))
            .build(),
    }
}

const TOKENIZER: &str = "agentdb";

/// The text of each field for one item's payload.
pub fn field_texts(payload: &Value, searchable: &[String]) -> [String; 8] {
    let mut out: [String; 8] = Default::default();
    use crate::payload::keys;
    let s = |k: &str| payload.get(k).map(flatten).unwrap_or_default();
    let speech = payload.get(keys::MODALITY).and_then(Value::as_str) == Some("speech");
    out[if speech { 1 } else { 0 }] = s(keys::TEXT);
    // What a recording carries besides speech is transcript too (a sound's description
    // by the speech model).
    if let Some(heard) = payload.get(keys::SOUND).map(flatten).filter(|h| !h.is_empty()) {
        out[1] = if out[1].is_empty() { heard } else { format!("{}. {heard}", out[1]) };
    }
    out[2] = s(keys::OCR);
    out[3] = s(keys::LABELS);
    if let Some(src) = payload.get(keys::SOURCE).and_then(Value::as_str) {
        let name = src.rsplit(['/', '\\']).next().unwrap_or(src);
        out[4] = name.rsplit_once('.').map_or(name, |(stem, _)| stem).to_string();
    }
    out[5] = s(keys::TITLE);
    out[6] = s(keys::TAGS);
    out[7] = searchable.iter().filter_map(|k| payload.get(k).map(flatten)).collect::<Vec<_>>().join(". ");
    out
}

/// The payload keys each field (in [`FIELDS`] order) is read from by [`field_texts`]; a
/// caller that hides a key (masking) leaves out the fields reading it.
pub fn field_payload_keys(searchable: &[String]) -> [Vec<String>; 8] {
    use crate::payload::keys;
    let one = |k: &str| vec![k.to_string()];
    [
        one(keys::TEXT),
        vec![keys::TEXT.to_string(), keys::SOUND.to_string()],
        one(keys::OCR),
        one(keys::LABELS),
        one(keys::SOURCE),
        one(keys::TITLE),
        one(keys::TAGS),
        searchable.to_vec(),
    ]
}

/// Strings (and numbers) anywhere in a JSON value, joined into one text.
fn flatten(v: &Value) -> String {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) => out.push(s.clone()),
            Value::Number(n) => out.push(n.to_string()),
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            Value::Object(o) => o.values().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, &mut out);
    out.join(". ")
}

// ---------------------------------------------------------------------------------------
// Query syntax

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Occurs {
    Should,
    Must,
    MustNot,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Clause {
    pub occur: Occurs,
    /// One of [`FIELDS`], or every weighted field.
    pub field: Option<String>,
    /// The raw words (a phrase when quoted).
    pub text: String,
    pub phrase: bool,
    pub boost: f32,
}

fn syntax(pos: usize, msg: impl std::fmt::Display) -> Error {
    Error::InvalidArgument(format!("keyword query syntax error at position {pos}: {msg}"))
}

/// Natural-language text (a text query, a transcript) as a keyword query of plain words:
/// the syntax characters (`+`/`-` in front, quotes, `field:`, `^boost`) lose their
/// meaning, so "recall: who feeds the cats?" searches those words instead of failing on
/// an unknown field. Words keep inner hyphens ("ZX-9921"). None when no word is left.
pub fn plain_query(text: &str) -> Option<String> {
    let mut words = Vec::new();
    for tok in text.split_whitespace() {
        let tok = tok.trim_start_matches(['+', '-']).replace(['"', ':', '^'], " ");
        for w in tok.split_whitespace() {
            let w = w.trim_start_matches(['+', '-']);
            if w.chars().any(char::is_alphanumeric) {
                words.push(w.to_string());
            }
        }
    }
    (!words.is_empty()).then(|| words.join(" "))
}

/// Parse the keyword query syntax. Positions in errors are 1-based character offsets.
pub fn parse_query(q: &str) -> Result<Vec<Clause>> {
    let chars: Vec<char> = q.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < chars.len() {
        if chars[i].is_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        let occur = match chars[i] {
            '+' => {
                i += 1;
                Occurs::Must
            }
            '-' => {
                i += 1;
                Occurs::MustNot
            }
            _ => Occurs::Should,
        };
        if i >= chars.len() || chars[i].is_whitespace() {
            return Err(syntax(start + 1, format!("'{}' must be followed by a word or a phrase", chars[start])));
        }
        let mut field = None;
        // field:...
        let word_end = (i..chars.len()).find(|&j| chars[j].is_whitespace() || chars[j] == '"').unwrap_or(chars.len());
        if let Some(colon) = (i..word_end).find(|&j| chars[j] == ':') {
            let name: String = chars[i..colon].iter().collect();
            if !FIELDS.contains(&name.as_str()) {
                return Err(syntax(i + 1, format!("unknown field '{name}' (fields: {})", FIELDS.join(", "))));
            }
            field = Some(name);
            i = colon + 1;
            if i >= chars.len() || chars[i].is_whitespace() {
                return Err(syntax(i + 1, "a field name must be followed by a word or a phrase"));
            }
        }
        let (text, phrase) = if chars[i] == '"' {
            let open = i;
            let close = (i + 1..chars.len())
                .find(|&j| chars[j] == '"')
                .ok_or_else(|| syntax(open + 1, "unterminated phrase (no closing '\"')"))?;
            i = close + 1;
            (chars[open + 1..close].iter().collect::<String>(), true)
        } else {
            let end = (i..chars.len())
                .find(|&j| chars[j].is_whitespace() || chars[j] == '^' || chars[j] == '"')
                .unwrap_or(chars.len());
            if end < chars.len() && chars[end] == '"' {
                return Err(syntax(end + 1, "a quote must start a phrase, not end a word"));
            }
            let t: String = chars[i..end].iter().collect();
            i = end;
            (t, false)
        };
        let mut boost = 1.0f32;
        if i < chars.len() && chars[i] == '^' {
            let bstart = i + 1;
            let end = (bstart..chars.len()).find(|&j| chars[j].is_whitespace()).unwrap_or(chars.len());
            let s: String = chars[bstart..end].iter().collect();
            boost = s
                .parse::<f32>()
                .ok()
                .filter(|b| b.is_finite() && *b >= 0.0 && *b <= 1000.0)
                .ok_or_else(|| syntax(bstart + 1, format!("boost '{s}' is not a number between 0 and 1000")))?;
            i = end;
        }
        if i < chars.len() && !chars[i].is_whitespace() {
            return Err(syntax(i + 1, format!("unexpected '{}'", chars[i])));
        }
        if text.trim().is_empty() {
            return Err(syntax(start + 1, "empty phrase"));
        }
        out.push(Clause { occur, field, text, phrase, boost });
    }
    if out.is_empty() {
        return Err(Error::InvalidArgument("keyword query is empty".into()));
    }
    if out.iter().all(|c| c.occur == Occurs::MustNot) {
        return Err(Error::InvalidArgument(
            "keyword query has only excluded terms ('-'); add a term to search for".into(),
        ));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// The index

/// Per-field weights for one query; a weight of 0 leaves the field out.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldWeights(pub [f32; 8]);

impl Default for FieldWeights {
    fn default() -> Self {
        FieldWeights([1.0; 8])
    }
}

impl FieldWeights {
    /// Apply `name=weight` overrides; unknown names are an error.
    pub fn with(mut self, overrides: &[(String, f32)]) -> Result<FieldWeights> {
        for (name, w) in overrides {
            let i = FIELDS.iter().position(|f| f == name).ok_or_else(|| {
                Error::InvalidArgument(format!("unknown keyword field '{name}' (fields: {})", FIELDS.join(", ")))
            })?;
            if !w.is_finite() || *w < 0.0 {
                return Err(Error::InvalidArgument(format!("keyword field weight for '{name}' must be >= 0")));
            }
            self.0[i] = *w;
        }
        Ok(self)
    }
}

/// A keyword hit with what it matched, for `--explain`.
#[derive(Debug, Clone)]
pub struct KeywordHit {
    pub hit: Hit,
    /// (field, analysed terms of the query found in it)
    pub matched: Vec<(String, Vec<String>)>,
    /// A short passage of the best matching field with the matched words in `**`.
    pub snippet: String,
    /// How much of the query it matched, weighted by how rare each term is: Σ idf of
    /// the query terms found in any field / Σ idf of all query terms (0–1).
    pub coverage: f32,
}

/// The BM25 statistics a keyword query needs (documents, tokens per field, document
/// frequency of each query term per field), from one index. A sharded collection sums
/// its shards' ([`KeywordStats::add`]) and has every shard score with the sums, so a
/// hit scores as it would in one index over all the shards' items (Elasticsearch's
/// "DFS query then fetch") and the shards' hits merge exactly.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct KeywordStats {
    pub docs: u64,
    pub tokens: [u64; 8],
    /// `"FIELD_INDEX:term"` -> documents whose field holds the term.
    pub df: BTreeMap<String, u64>,
}

impl KeywordStats {
    pub fn add(&mut self, o: &KeywordStats) {
        self.docs += o.docs;
        for (a, b) in self.tokens.iter_mut().zip(o.tokens) {
            *a += b;
        }
        for (k, v) in &o.df {
            *self.df.entry(k.clone()).or_default() += v;
        }
    }

    fn df_of(&self, field: usize, term: &str) -> u64 {
        self.df.get(&format!("{field}:{term}")).copied().unwrap_or(0)
    }
}

/// Given statistics in tantivy's terms.
struct GivenStats<'a> {
    stats: &'a KeywordStats,
    fields: &'a [Field; 8],
}

impl GivenStats<'_> {
    fn index(&self, f: Field) -> usize {
        self.fields.iter().position(|x| *x == f).unwrap_or(0)
    }
}

impl Bm25StatisticsProvider for GivenStats<'_> {
    fn total_num_tokens(&self, field: Field) -> tantivy::Result<u64> {
        Ok(self.stats.tokens[self.index(field)])
    }
    fn total_num_docs(&self) -> tantivy::Result<u64> {
        Ok(self.stats.docs.max(1))
    }
    fn doc_freq(&self, term: &Term) -> tantivy::Result<u64> {
        let value = term.value();
        Ok(self.stats.df_of(self.index(term.field()), value.as_str().unwrap_or_default()))
    }
}

pub struct KeywordIndex {
    spec: KeywordSpec,
    _index: Index,
    id: Field,
    fields: [Field; 8],
    analyzer: Mutex<TextAnalyzer>,
    writer: Mutex<IndexWriter<TantivyDocument>>,
    reader: IndexReader,
    dirty: AtomicBool,
}

fn tv(e: tantivy::TantivyError) -> Error {
    Error::Unavailable(format!("keyword index: {e}"))
}

impl KeywordIndex {
    pub fn new(spec: &KeywordSpec) -> Result<KeywordIndex> {
        spec.validate()?;
        let lang = language(&spec.language)?;
        let mut sb = Schema::builder();
        let id = sb.add_text_field("_id", STRING | STORED);
        let opts = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(TOKENIZER)
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        );
        let fields = FIELDS.map(|f| sb.add_text_field(f, opts.clone()));
        let index = Index::create_in_ram(sb.build());
        index.tokenizers().register(TOKENIZER, analyzer(lang));
        let writer = index.writer_with_num_threads(1, 15_000_000).map_err(tv)?;
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into().map_err(tv)?;
        Ok(KeywordIndex {
            spec: spec.clone(),
            _index: index,
            id,
            fields,
            analyzer: Mutex::new(analyzer(lang)),
            writer: Mutex::new(writer),
            reader,
            dirty: AtomicBool::new(false),
        })
    }

    pub fn spec(&self) -> &KeywordSpec {
        &self.spec
    }

    fn document(&self, id: &str, payload: &Value) -> Option<TantivyDocument> {
        let texts = field_texts(payload, &self.spec.searchable);
        if texts.iter().all(|t| t.is_empty()) {
            return None;
        }
        let mut doc = TantivyDocument::default();
        doc.add_text(self.id, id);
        for (f, t) in self.fields.iter().zip(texts) {
            if !t.is_empty() {
                doc.add_text(*f, t);
            }
        }
        Some(doc)
    }

    /// Replace the item's text (callers hold the collection's state write lock).
    pub fn upsert(&self, id: &str, payload: &Value) -> Result<()> {
        let w = self.writer.lock();
        w.delete_term(Term::from_field_text(self.id, id));
        if let Some(doc) = self.document(id, payload) {
            w.add_document(doc).map_err(tv)?;
        }
        self.dirty.store(true, Ordering::Release);
        Ok(())
    }

    pub fn delete(&self, id: &str) {
        self.writer.lock().delete_term(Term::from_field_text(self.id, id));
        self.dirty.store(true, Ordering::Release);
    }

    /// Make every write so far visible to searches.
    pub fn refresh(&self) -> Result<()> {
        if !self.dirty.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut w = self.writer.lock();
        if self.dirty.swap(false, Ordering::AcqRel) {
            if let Err(e) = w.commit() {
                self.dirty.store(true, Ordering::Release);
                return Err(tv(e));
            }
            self.reader.reload().map_err(tv)?;
        }
        Ok(())
    }

    /// Documents in the index (after a refresh).
    pub fn num_docs(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// The analysed tokens of `text`: (term, position, byte range). Stop words leave
    /// gaps in the positions.
    fn tokens(&self, text: &str) -> Vec<(String, usize, usize, usize)> {
        let mut a = self.analyzer.lock();
        let mut ts = a.token_stream(text);
        let mut out = Vec::new();
        while ts.advance() {
            let t = ts.token();
            out.push((t.text.clone(), t.position, t.offset_from, t.offset_to));
        }
        out
    }

    fn build_query(&self, clauses: &[Clause], weights: &FieldWeights) -> (Box<dyn Query>, BTreeSet<String>) {
        let mut parts: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        let mut terms = BTreeSet::new();
        for c in clauses {
            let fields: Vec<(usize, f32)> = match &c.field {
                // An explicit field keeps its own boost, unless its weight left it out.
                Some(name) => FIELDS
                    .iter()
                    .position(|f| f == name)
                    .filter(|&i| weights.0[i] > 0.0)
                    .map(|i| vec![(i, 1.0)])
                    .unwrap_or_default(),
                None => weights.0.iter().enumerate().filter(|(_, w)| **w > 0.0).map(|(i, w)| (i, *w)).collect(),
            };
            let tokens = self.tokens(&c.text);
            let words: Vec<String> = tokens.iter().map(|(t, ..)| t.clone()).collect();
            if words.is_empty() {
                // Only stop words: nothing to look for (a required one cannot fail).
                continue;
            }
            if c.occur != Occurs::MustNot {
                terms.extend(words.iter().cloned());
            }
            let base = tokens.first().map_or(0, |(_, p, ..)| *p);
            let mut alts: Vec<(Occur, Box<dyn Query>)> = Vec::new();
            for (fi, w) in fields {
                let f = self.fields[fi];
                let q: Box<dyn Query> = if words.len() == 1 {
                    Box::new(TermQuery::new(Term::from_field_text(f, &words[0]), IndexRecordOption::WithFreqs))
                } else if c.phrase || c.occur != Occurs::Should {
                    // A quoted phrase, or one word the analyser split ("e-mail"): in order.
                    let ts: Vec<(usize, Term)> =
                        tokens.iter().map(|(t, p, ..)| (p - base, Term::from_field_text(f, t))).collect();
                    Box::new(PhraseQuery::new_with_offset(ts))
                } else {
                    let ws: Vec<(Occur, Box<dyn Query>)> = words
                        .iter()
                        .map(|t| {
                            let q: Box<dyn Query> =
                                Box::new(TermQuery::new(Term::from_field_text(f, t), IndexRecordOption::WithFreqs));
                            (Occur::Should, q)
                        })
                        .collect();
                    Box::new(BooleanQuery::new(ws))
                };
                let boost = w * c.boost;
                alts.push((Occur::Should, if boost == 1.0 { q } else { Box::new(BoostQuery::new(q, boost)) }));
            }
            if alts.is_empty() {
                continue;
            }
            let q: Box<dyn Query> = Box::new(BooleanQuery::new(alts));
            let occur = match c.occur {
                Occurs::Should => Occur::Should,
                Occurs::Must => Occur::Must,
                Occurs::MustNot => Occur::MustNot,
            };
            parts.push((occur, q));
        }
        if parts.iter().all(|(o, _)| *o == Occur::MustNot) {
            return (Box::new(EmptyQuery), terms);
        }
        (Box::new(BooleanQuery::new(parts)), terms)
    }

    /// BM25 search. `lookup(id)` returns the live payload of an item that the caller's
    /// filter admits (None skips the hit), so filters and row policies apply here exactly
    /// as in vector search; the candidate window grows until `k` hits pass or every
    /// matching document was seen.
    /// This index's statistics for `query` (see [`KeywordStats`]).
    pub fn stats(&self, query: &str, weights: &FieldWeights) -> Result<KeywordStats> {
        let clauses = parse_query(query)?;
        self.refresh()?;
        let (_, terms) = self.build_query(&clauses, weights);
        let searcher = self.reader.searcher();
        let mut st = KeywordStats { docs: searcher.num_docs(), ..Default::default() };
        for (i, f) in self.fields.iter().enumerate() {
            st.tokens[i] = Bm25StatisticsProvider::total_num_tokens(&searcher, *f).map_err(tv)?;
            for t in &terms {
                let df = searcher.doc_freq(&Term::from_field_text(*f, t)).map_err(tv)?;
                if df > 0 {
                    st.df.insert(format!("{i}:{t}"), df);
                }
            }
        }
        Ok(st)
    }

    pub fn search(
        &self,
        query: &str,
        weights: &FieldWeights,
        k: usize,
        lookup: impl Fn(&str) -> Option<Value>,
    ) -> Result<Vec<KeywordHit>> {
        self.search_with(query, weights, k, None, lookup)
    }

    /// [`KeywordIndex::search`], scoring with `stats` (summed over a sharded
    /// collection's shards) instead of this index's own when given.
    pub fn search_with(
        &self,
        query: &str,
        weights: &FieldWeights,
        k: usize,
        stats: Option<&KeywordStats>,
        lookup: impl Fn(&str) -> Option<Value>,
    ) -> Result<Vec<KeywordHit>> {
        let clauses = parse_query(query)?;
        if k == 0 {
            return Ok(Vec::new());
        }
        self.refresh()?;
        let (q, terms) = self.build_query(&clauses, weights);
        let searcher = self.reader.searcher();
        let mut window = (k * 4).max(32);
        let mut out: Vec<KeywordHit> = Vec::new();
        loop {
            out.clear();
            let collector = TopDocs::with_limit(window).order_by_score();
            let top = match stats {
                Some(st) => searcher
                    .search_with_statistics_provider(&*q, &collector, &GivenStats { stats: st, fields: &self.fields })
                    .map_err(tv)?,
                None => searcher.search(&*q, &collector).map_err(tv)?,
            };
            let exhausted = top.len() < window;
            for (score, addr) in &top {
                let doc: TantivyDocument = searcher.doc(*addr).map_err(tv)?;
                let Some(id) = doc.get_first(self.id).and_then(|v| v.as_str()).map(str::to_string) else { continue };
                let Some(payload) = lookup(&id) else { continue };
                out.push(KeywordHit {
                    hit: Hit { id, score: *score, payload: Some(payload), vector: None },
                    matched: Vec::new(),
                    snippet: String::new(),
                    coverage: 0.0,
                });
                if out.len() == k {
                    break;
                }
            }
            if out.len() >= k || exhausted {
                break;
            }
            window = window.saturating_mul(4);
        }
        // BM25's idf of each query term, its document frequency taken as the largest over
        // the fields.
        let docs = stats.map_or(searcher.num_docs(), |s| s.docs) as f32;
        let idf: Vec<(String, f32)> = terms
            .iter()
            .map(|t| {
                let df = (0..self.fields.len())
                    .map(|i| match stats {
                        Some(s) => s.df_of(i, t),
                        None => searcher.doc_freq(&Term::from_field_text(self.fields[i], t)).unwrap_or(0),
                    })
                    .max()
                    .unwrap_or(0) as f32;
                (t.clone(), (1.0 + (docs - df + 0.5) / (df + 0.5)).ln().max(0.0))
            })
            .collect();
        let total: f32 = idf.iter().map(|(_, w)| w).sum();
        for h in &mut out {
            if let Some(p) = &h.hit.payload {
                let (m, s) = self.explain(p, &terms, weights);
                let found: BTreeSet<&String> = m.iter().flat_map(|(_, t)| t).collect();
                let got: f32 = idf.iter().filter(|(t, _)| found.contains(t)).map(|(_, w)| w).sum();
                h.coverage = if total > 0.0 { (got / total).clamp(0.0, 1.0) } else { 0.0 };
                h.matched = m;
                h.snippet = s;
            }
        }
        Ok(out)
    }

    /// Which query terms each field of `payload` contains, and a highlighted snippet of
    /// the first (most heavily weighted) field that matched.
    fn explain(
        &self,
        payload: &Value,
        terms: &BTreeSet<String>,
        weights: &FieldWeights,
    ) -> (Vec<(String, Vec<String>)>, String) {
        let texts = field_texts(payload, &self.spec.searchable);
        let mut matched = Vec::new();
        // (weight, field, matched byte spans) of the best field so far.
        type Best = (f32, usize, Vec<(usize, usize)>);
        let mut best: Option<Best> = None;
        for (i, t) in texts.iter().enumerate() {
            // A field left out (weight 0, e.g. masked for this principal) is not shown.
            if t.is_empty() || weights.0[i] <= 0.0 {
                continue;
            }
            let toks = self.tokens(t);
            let hits: Vec<&(String, usize, usize, usize)> = toks.iter().filter(|(w, ..)| terms.contains(w)).collect();
            if hits.is_empty() {
                continue;
            }
            let found: BTreeSet<String> = hits.iter().map(|(w, ..)| w.clone()).collect();
            matched.push((FIELDS[i].to_string(), found.into_iter().collect()));
            let w = weights.0[i];
            if best.as_ref().is_none_or(|(bw, _, _)| w > *bw) {
                best = Some((w, i, hits.iter().map(|(_, _, a, b)| (*a, *b)).collect()));
            }
        }
        let snippet = best.map(|(_, i, spans)| highlight(&texts[i], &spans)).unwrap_or_default();
        (matched, snippet)
    }
}

/// Up to ~200 bytes of `text` around the first span, matched spans wrapped in `**`.
fn highlight(text: &str, spans: &[(usize, usize)]) -> String {
    let Some(&(first, _)) = spans.first() else { return String::new() };
    let floor = |mut i: usize| {
        while i > 0 && !text.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    let start = floor(first.saturating_sub(60));
    let start = if start == 0 { 0 } else { text[start..].find(' ').map_or(start, |p| start + p + 1) };
    let end = floor((start + 200).min(text.len()));
    let end = if end == text.len() { end } else { text[..end].rfind(' ').filter(|&p| p > first).unwrap_or(end) };
    let mut out = String::new();
    if start > 0 {
        out.push('…');
    }
    let mut at = start;
    for &(a, b) in spans.iter().filter(|(a, b)| *a >= start && *b <= end) {
        out.push_str(&text[at..a]);
        out.push_str("**");
        out.push_str(&text[a..b]);
        out.push_str("**");
        at = b;
    }
    out.push_str(&text[at..end]);
    if end < text.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn idx() -> KeywordIndex {
        KeywordIndex::new(&KeywordSpec { language: "english".into(), searchable: vec!["description".into()] }).unwrap()
    }

    #[test]
    fn plain_queries_have_no_syntax() {
        assert_eq!(plain_query("recall: who feeds the cats?").as_deref(), Some("recall who feeds the cats?"));
        assert_eq!(plain_query("+title:\"red fox\" -dog^2 ZX-9921").as_deref(), Some("title red fox dog 2 ZX-9921"));
        assert_eq!(plain_query(" -- : ^ \"\" "), None);
        for q in ["recall: who", "a:b:c", "x^y", "\"unterminated", "+ -", "- dog"] {
            if let Some(p) = plain_query(q) {
                parse_query(&p).unwrap();
            }
        }
    }

    #[test]
    fn parse_and_errors_name_positions() {
        let c = parse_query(r#"cat +title:"red fox" -dog^2 labels:tabby^1.5"#).unwrap();
        assert_eq!(c.len(), 4);
        assert_eq!((c[1].occur, c[1].field.as_deref(), c[1].phrase), (Occurs::Must, Some("title"), true));
        assert_eq!((c[2].occur, c[2].boost), (Occurs::MustNot, 2.0));
        assert_eq!(c[3].boost, 1.5);
        let e = parse_query(r#"cat "red fox"#).unwrap_err().to_string();
        assert!(e.contains("position 5") && e.contains("unterminated"), "{e}");
        let e = parse_query("cat colour:red").unwrap_err().to_string();
        assert!(e.contains("position 5") && e.contains("unknown field 'colour'"), "{e}");
        let e = parse_query("cat^x").unwrap_err().to_string();
        assert!(e.contains("position 5") && e.contains("boost"), "{e}");
        assert!(parse_query("   ").unwrap_err().to_string().contains("empty"));
        assert!(parse_query("-dog").unwrap_err().to_string().contains("only excluded"));
        assert!(parse_query("cat + dog").unwrap_err().to_string().contains("position 5"));
    }

    #[test]
    fn shards_scoring_with_summed_statistics_score_as_one_index() {
        let docs = [
            ("a", "the quick brown fox jumps over the lazy dog"),
            ("b", "a fox in the snow"),
            ("c", "brown bread and butter"),
            ("d", "the dog barks at the brown fox twice fox"),
            ("e", "invoice for bread delivery"),
            ("f", "lazy afternoon with a quick nap"),
        ];
        let (one, s1, s2) = (idx(), idx(), idx());
        for (i, (id, text)) in docs.iter().enumerate() {
            one.upsert(id, &json!({ "text": text })).unwrap();
            (if i % 2 == 0 { &s1 } else { &s2 }).upsert(id, &json!({ "text": text })).unwrap();
        }
        let w = FieldWeights::default();
        let all = |_: &str| Some(json!({}));
        for q in ["brown fox", "lazy dog", "\"brown fox\" bread", "quick -nap"] {
            let mut sum = s1.stats(q, &w).unwrap();
            sum.add(&s2.stats(q, &w).unwrap());
            assert_eq!(sum, one.stats(q, &w).unwrap(), "{q}");
            let want: Vec<(String, f32)> =
                one.search(q, &w, 10, all).unwrap().into_iter().map(|h| (h.hit.id, h.hit.score)).collect();
            let mut got: Vec<(String, f32, f32)> = Vec::new();
            for s in [&s1, &s2] {
                got.extend(
                    s.search_with(q, &w, 10, Some(&sum), all)
                        .unwrap()
                        .into_iter()
                        .map(|h| (h.hit.id, h.hit.score, h.coverage)),
                );
            }
            got.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            assert_eq!(got.len(), want.len(), "{q}");
            for ((gid, gs, _), (wid, ws)) in got.iter().zip(&want) {
                assert_eq!(gid, wid, "{q}: {got:?} vs {want:?}");
                assert!((gs - ws).abs() < 1e-4, "{q}: {gid} scores {gs} with summed statistics, {ws} in one index");
            }
            // Without the sums a shard scores by its own statistics: not comparable.
            let own: Vec<f32> = s1.search(q, &w, 10, all).unwrap().iter().map(|h| h.hit.score).collect();
            let with: Vec<f32> =
                s1.search_with(q, &w, 10, Some(&sum), all).unwrap().iter().map(|h| h.hit.score).collect();
            assert_eq!(own.len(), with.len());
        }
    }

    #[test]
    fn bm25_fields_stemming_phrases_and_deletes() {
        let k = idx();
        k.upsert("a", &json!({"text": "The running foxes jumped over a lazy dog", "source": "/x/notes.txt"})).unwrap();
        k.upsert("b", &json!({"modality": "speech", "text": "invoice number AX-4471 was paid"})).unwrap();
        k.upsert("c", &json!({"labels": ["tabby cat", "tiger cat"], "source": "/p/golden_retriever.jpg"})).unwrap();
        k.upsert("d", &json!({"ocr": "EXIT ONLY", "description": "a red fox in snow"})).unwrap();
        let all = |_: &str| Some(json!({}));
        let ids = |q: &str, w: &FieldWeights| -> Vec<String> {
            k.search(q, w, 10, all).unwrap().into_iter().map(|h| h.hit.id).collect()
        };
        let w = FieldWeights::default();
        assert_eq!(ids("fox run", &w), vec!["a", "d"], "stemming: foxes/running");
        assert_eq!(ids("\"ax 4471\"", &w), vec!["b"], "phrase over a transcript");
        assert_eq!(ids("transcript:invoice", &w), vec!["b"]);
        assert!(ids("text:invoice", &w).is_empty(), "transcripts are their own field");
        assert_eq!(ids("retriever", &w), vec!["c"], "file names are indexed");
        assert_eq!(ids("exit", &w), vec!["d"]);
        assert_eq!(ids("fox -snow", &w), vec!["a"]);
        let no_meta = FieldWeights::default().with(&[("meta".into(), 0.0)]).unwrap();
        assert_eq!(ids("fox", &no_meta), vec!["a"], "a zero weight excludes the field");
        assert!(FieldWeights::default().with(&[("colour".into(), 1.0)]).is_err());
        let text = json!({"text": "The running foxes jumped over a lazy dog", "source": "/x/notes.txt"});
        let h = &k.search("lazy dogs", &w, 1, |_: &str| Some(text.clone())).unwrap()[0];
        assert_eq!(h.matched, vec![("text".to_string(), vec!["dog".to_string(), "lazi".to_string()])]);
        assert!((h.coverage - 1.0).abs() < 1e-6, "both query terms matched: {}", h.coverage);
        assert!(h.snippet.contains("**lazy** **dog**"), "{}", h.snippet);
        // Replace and delete.
        k.upsert("a", &json!({"text": "nothing here"})).unwrap();
        k.delete("d");
        assert!(ids("fox", &w).is_empty());
        assert_eq!(k.num_docs(), 3);
    }

    #[test]
    fn filters_apply_and_window_grows() {
        let k = idx();
        for i in 0..300 {
            k.upsert(&format!("i{i}"), &json!({"text": format!("common word {i}")})).unwrap();
        }
        // Only every 100th item is admitted: the window must grow past the first 32.
        let hits = k
            .search("common", &FieldWeights::default(), 5, |id: &str| {
                let n: usize = id[1..].parse().unwrap();
                n.is_multiple_of(100).then(|| json!({}))
            })
            .unwrap();
        assert_eq!(hits.len(), 3);
    }

    #[test]
    fn languages() {
        assert!(KeywordIndex::new(&KeywordSpec { language: "klingon".into(), searchable: vec![] }).is_err());
        let k = KeywordIndex::new(&KeywordSpec { language: "french".into(), searchable: vec![] }).unwrap();
        k.upsert("x", &json!({"text": "les chevaux mangeaient"})).unwrap();
        assert_eq!(k.search("cheval", &FieldWeights::default(), 3, |_: &str| Some(json!({}))).unwrap().len(), 1);
    }

    #[test]
    fn highlight_is_char_safe() {
        let t = "é".repeat(100) + " target " + &"ü".repeat(200);
        let p = t.find("target").unwrap();
        let s = highlight(&t, &[(p, p + 6)]);
        assert!(s.contains("**target**"));
    }
}
