//! `agentdb eval DATASET`: retrieval quality on a labelled query set, through the
//! server like any client. The dataset folder holds `media/` (ingested into a fresh
//! multimodal collection) and `queries.jsonl`, one query per line:
//!
//! ```json
//! {"kind": "text→image", "text": "a cat", "relevant": ["media/p03.png"]}
//! {"kind": "image→image", "image": "queries/q1.png", "relevant": ["media/p07.png"]}
//! {"kind": "audio→text", "audio": "queries/q2.wav", "relevant": ["media/t01.txt"]}
//! ```
//!
//! A query's rank is the rank of the first relevant source among the fused results
//! (one per source); it reports recall@1, recall@5 and MRR (over the top 10) per kind,
//! and per half when queries carry `"half": "tune"` or `"test"` (or `"unseen"`), and per
//! level when they carry `"level": "easy"` or `"hard"`.
//! `benches/eval/make_dataset.py` builds the dataset from real photographs and
//! synthesised speech.

use crate::client::{status_err, CollectionsClient, IngestArgs, ItemsClient};
use agentdb_proto::v1;
use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct EvalArgs {
    /// Dataset folder with media/ and queries.jsonl.
    pub dataset: PathBuf,
    /// Collection to ingest into (default: eval-<dataset folder name>; created if missing).
    #[arg(long)]
    pub collection: Option<String>,
    /// Keep the collection afterwards (default: drop it).
    #[arg(long)]
    pub keep: bool,
    /// calibrated, rrf or weighted.
    #[arg(long, default_value = "calibrated", value_parser = ["calibrated", "rrf", "weighted"])]
    pub fusion: String,
    /// Search only items of the modality the query kind targets ("text→image" searches
    /// images only): measures each bridge apart from the fusion across modalities.
    #[arg(long)]
    pub within_modality: bool,
    /// Retrieval modes to compare, comma-separated: default (the server's: hybrid for
    /// text when the collection has a keyword index), dense, keyword, hybrid.
    #[arg(long, value_delimiter = ',', default_value = "default", value_parser = ["default", "dense", "keyword", "hybrid"])]
    pub modes: Vec<String>,
    /// Keyword metadata fields (file name, title, tags, searchable payload): on, off
    /// (content only: text, transcripts, OCR, labels) or both.
    #[arg(long, default_value = "on", value_parser = ["on", "off", "both"])]
    pub metadata: String,
    /// Print the per-query ranks too.
    #[arg(long)]
    pub verbose: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Deserialize)]
struct Query {
    kind: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    image: Option<PathBuf>,
    #[serde(default)]
    audio: Option<PathBuf>,
    relevant: Vec<String>,
    /// "tune" or "test": which half of the set the query is in (defaults may be chosen
    /// on the tune half only; both are reported).
    #[serde(default)]
    half: Option<String>,
    /// "easy" or "hard" (a plain name, or a description without it): reported apart too.
    #[serde(default)]
    level: Option<String>,
}

#[derive(Default, Debug)]
struct Tally {
    n: usize,
    errors: usize,
    r1: usize,
    r5: usize,
    rr: f64,
}

impl Tally {
    fn add(&mut self, t: &Tally) {
        self.n += t.n;
        self.r1 += t.r1;
        self.r5 += t.r5;
        self.rr += t.rr;
        self.errors += t.errors;
    }
}

pub async fn eval(cols: &mut CollectionsClient, items: &mut ItemsClient, a: EvalArgs) -> Result<()> {
    let root = a.dataset.canonicalize().with_context(|| format!("dataset {}", a.dataset.display()))?;
    let queries = read_queries(&root)?;
    let name = a.collection.clone().unwrap_or_else(|| {
        format!("eval-{}", root.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default())
    });
    let exists = cols.list(v1::ListCollectionsRequest {}).await.map_err(status_err)?.into_inner();
    if !exists.collections.iter().any(|c| c.name == name) {
        cols.create(v1::CreateCollectionRequest {
            name: name.clone(),
            spaces: Vec::new(),
            multimodal: true,
            keyword: None,
            ..Default::default()
        })
        .await
        .map_err(status_err)?;
    }
    let ing = crate::client::ingest::run_ingest(
        items,
        &IngestArgs {
            collection: name.clone(),
            paths: vec![root.join("media")],
            concurrency: 4,
            json: true,
            slice: None,
            create_multimodal: false,
        },
    )
    .await?;
    eprintln!(
        "eval: ingested {} files ({} items), {} already there, {} failed in {:.1}s",
        ing.ingested,
        ing.items,
        ing.skipped,
        ing.failed.len(),
        ing.seconds
    );
    for (s, e) in &ing.failed {
        eprintln!("eval: failed: {s}: {e}");
    }
    let fusion = crate::client::fusion_arg(&a.fusion);
    let metadata: Vec<bool> = match a.metadata.as_str() {
        "off" => vec![false],
        "both" => vec![true, false],
        _ => vec![true],
    };
    let mut runs = Vec::new();
    for mode in &a.modes {
        for &md in &metadata {
            let started = std::time::Instant::now();
            let (by_kind, by_half, per_query) =
                run_queries(items, &name, &root, &queries, &a, fusion, mode, md).await?;
            runs.push(Run {
                mode: mode.clone(),
                metadata: md,
                by_kind,
                by_half,
                per_query,
                secs: started.elapsed().as_secs_f64(),
            });
        }
    }
    if !a.keep {
        cols.drop(v1::DropCollectionRequest { name: name.clone() }).await.map_err(status_err)?;
    }
    let row = |t: &Tally| {
        let n = t.n.max(1) as f64;
        (t.r1 as f64 / n, t.r5 as f64 / n, t.rr / n)
    };
    let mut json_runs = Vec::new();
    for run in runs {
        let mut all = Tally::default();
        for t in run.by_kind.values() {
            all.add(t);
        }
        // Rows: each kind, all, and all of each half and of each level.
        let halves: Vec<(String, &Tally)> = run.by_half.iter().map(|(h, t)| (format!("all · {h}"), t)).collect();
        let rows: Vec<(&str, &Tally)> = run
            .by_kind
            .iter()
            .map(|(k, t)| (k.as_str(), t))
            .chain(std::iter::once(("all", &all)))
            .chain(halves.iter().map(|(h, t)| (h.as_str(), *t)))
            .collect();
        let meta = if run.metadata { "with metadata" } else { "without metadata (file names, titles, tags)" };
        if a.json {
            let mut kinds = serde_json::Map::new();
            for (k, t) in &rows {
                let (r1, r5, mrr) = row(t);
                kinds.insert(
                    k.to_string(),
                    serde_json::json!({"queries": t.n, "errors": t.errors, "recall@1": r1, "recall@5": r5, "mrr": mrr}),
                );
            }
            let mut o = serde_json::json!({
                "mode": run.mode, "metadata": run.metadata, "kinds": kinds, "query_seconds": run.secs,
            });
            if a.verbose {
                o["queries"] = run.per_query.into();
            }
            json_runs.push(o);
            continue;
        }
        println!("\nmode {}, {meta}", run.mode);
        if a.verbose {
            for q in &run.per_query {
                println!(
                    "{:<16} rank {:<4} top {:<28} {}",
                    q["kind"].as_str().unwrap_or(""),
                    q["rank"],
                    q["top"].as_str().unwrap_or(""),
                    q["query"].as_str().unwrap_or("")
                );
            }
        }
        println!("{:<18} {:>7} {:>9} {:>9} {:>7} {:>7}", "kind", "queries", "recall@1", "recall@5", "MRR", "errors");
        for (k, t) in &rows {
            let (r1, r5, mrr) = row(t);
            println!("{k:<18} {:>7} {r1:>9.3} {r5:>9.3} {mrr:>7.3} {:>7}", t.n, t.errors);
        }
        let scope = if a.within_modality { "target modality only" } else { "all modalities, fused" };
        println!("({} queries in {:.1}s, fusion {}, {scope})", all.n, run.secs, a.fusion);
    }
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "dataset": root, "fusion": a.fusion, "within_modality": a.within_modality, "runs": json_runs,
            })
        );
    }
    Ok(())
}

struct Run {
    mode: String,
    metadata: bool,
    by_kind: BTreeMap<String, Tally>,
    by_half: BTreeMap<String, Tally>,
    per_query: Vec<serde_json::Value>,
    secs: f64,
}

/// Every query once in one retrieval mode; image queries have no words, so a
/// keyword-only run leaves them out (they are not counted as misses).
#[allow(clippy::too_many_arguments)]
async fn run_queries(
    items: &mut ItemsClient,
    name: &str,
    root: &Path,
    queries: &[Query],
    a: &EvalArgs,
    fusion: v1::Fusion,
    mode: &str,
    metadata: bool,
) -> Result<(BTreeMap<String, Tally>, BTreeMap<String, Tally>, Vec<serde_json::Value>)> {
    let mut by_kind: BTreeMap<String, Tally> = BTreeMap::new();
    let mut by_half: BTreeMap<String, Tally> = BTreeMap::new();
    let mut per_query = Vec::new();
    let wire_mode = match mode {
        "dense" => v1::RetrievalMode::RetrievalDense,
        "keyword" => v1::RetrievalMode::RetrievalKeyword,
        "hybrid" => v1::RetrievalMode::RetrievalHybrid,
        _ => v1::RetrievalMode::RetrievalDefault,
    };
    for q in queries {
        if mode == "keyword" && q.image.is_some() {
            continue;
        }
        let read = |p: &PathBuf| std::fs::read(root.join(p)).with_context(|| format!("query file {}", p.display()));
        let mut req = v1::SearchRequest {
            collection: name.to_string(),
            top_k: 10,
            fusion: fusion as i32,
            mode: wire_mode as i32,
            ..Default::default()
        };
        if !metadata {
            for f in ["filename", "title", "tags", "meta"] {
                req.keyword_fields.insert(f.to_string(), 0.0);
            }
        }
        if a.within_modality {
            // "text→image+text" targets images (those with text in them).
            if let Some(target) = q.kind.split('→').nth(1).and_then(|t| t.split('+').next()) {
                req.filter = format!("modality = {}", serde_json::Value::from(target));
            }
        }
        let label = match (&q.text, &q.image, &q.audio) {
            (Some(t), None, None) => {
                req.text = t.clone();
                t.clone()
            }
            (None, Some(p), None) => {
                req.image = read(p)?;
                p.display().to_string()
            }
            (None, None, Some(p)) => {
                req.audio = read(p)?;
                p.display().to_string()
            }
            _ => bail!("each query needs exactly one of text, image or audio ({})", q.kind),
        };
        let hits = match items.search(req).await {
            Ok(r) => r.into_inner().hits,
            Err(e) => {
                // Counted as a miss and reported: a query the server cannot answer.
                eprintln!("eval: {} query {label:?} failed: {}", q.kind, e.message());
                by_kind.entry(q.kind.clone()).or_default().errors += 1;
                for g in q.half.iter().chain(&q.level) {
                    by_half.entry(g.clone()).or_default().errors += 1;
                }
                Vec::new()
            }
        };
        let rank =
            hits.iter().position(|h| q.relevant.iter().any(|r| Path::new(&h.source).ends_with(r))).map(|i| i + 1);
        let mut one = Tally { n: 1, ..Default::default() };
        if let Some(r) = rank {
            one.r1 = (r == 1) as usize;
            one.r5 = (r <= 5) as usize;
            one.rr = 1.0 / r as f64;
        }
        by_kind.entry(q.kind.clone()).or_default().add(&one);
        for g in q.half.iter().chain(&q.level) {
            by_half.entry(g.clone()).or_default().add(&one);
        }
        let top = hits.first().map(|h| h.source.rsplit('/').next().unwrap_or("").to_string()).unwrap_or_default();
        per_query.push(
            serde_json::json!({"kind": q.kind, "half": q.half, "level": q.level, "query": label, "rank": rank, "top": top}),
        );
    }
    Ok((by_kind, by_half, per_query))
}

fn read_queries(root: &Path) -> Result<Vec<Query>> {
    let p = root.join("queries.jsonl");
    let text = std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let q: Query = serde_json::from_str(line).with_context(|| format!("{}:{}: bad query", p.display(), i + 1))?;
        if q.relevant.is_empty() {
            bail!("{}:{}: `relevant` is empty", p.display(), i + 1);
        }
        out.push(q);
    }
    if out.is_empty() {
        bail!("{} has no queries", p.display());
    }
    Ok(out)
}
