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
//! (one per source); it reports recall@1, recall@5 and MRR (over the top 10) per kind.
//! `benches/eval/make_dataset.py` builds the dataset from real photographs and
//! synthesised speech.

use crate::cli::{status_err, CollectionsClient, IngestArgs, ItemsClient};
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
    /// rrf or weighted.
    #[arg(long, default_value = "rrf", value_parser = ["rrf", "weighted"])]
    pub fusion: String,
    /// Search only items of the modality the query kind targets ("text→image" searches
    /// images only): measures each bridge apart from the fusion across modalities.
    #[arg(long)]
    pub within_modality: bool,
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
}

#[derive(Default, Debug)]
struct Tally {
    n: usize,
    errors: usize,
    r1: usize,
    r5: usize,
    rr: f64,
}

pub async fn eval(cols: &mut CollectionsClient, items: &mut ItemsClient, a: EvalArgs) -> Result<()> {
    let root = a.dataset.canonicalize().with_context(|| format!("dataset {}", a.dataset.display()))?;
    let queries = read_queries(&root)?;
    let name = a.collection.clone().unwrap_or_else(|| {
        format!("eval-{}", root.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default())
    });
    let exists = cols.list(v1::ListCollectionsRequest {}).await.map_err(status_err)?.into_inner();
    if !exists.collections.iter().any(|c| c.name == name) {
        cols.create(v1::CreateCollectionRequest { name: name.clone(), spaces: Vec::new(), multimodal: true })
            .await
            .map_err(status_err)?;
    }
    let ing = crate::cli_ingest::run_ingest(
        items,
        &IngestArgs { collection: name.clone(), paths: vec![root.join("media")], concurrency: 4, json: true },
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
    let fusion = if a.fusion == "weighted" { v1::Fusion::Weighted } else { v1::Fusion::Rrf };
    let mut by_kind: BTreeMap<String, Tally> = BTreeMap::new();
    let mut per_query = Vec::new();
    let started = std::time::Instant::now();
    for q in &queries {
        let read = |p: &PathBuf| std::fs::read(root.join(p)).with_context(|| format!("query file {}", p.display()));
        let mut req =
            v1::SearchRequest { collection: name.clone(), top_k: 10, fusion: fusion as i32, ..Default::default() };
        if a.within_modality {
            if let Some(target) = q.kind.split('→').nth(1) {
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
                Vec::new()
            }
        };
        let rank =
            hits.iter().position(|h| q.relevant.iter().any(|r| Path::new(&h.source).ends_with(r))).map(|i| i + 1);
        let t = by_kind.entry(q.kind.clone()).or_default();
        t.n += 1;
        if let Some(r) = rank {
            t.r1 += (r == 1) as usize;
            t.r5 += (r <= 5) as usize;
            t.rr += 1.0 / r as f64;
        }
        let top = hits.first().map(|h| h.source.rsplit('/').next().unwrap_or("").to_string()).unwrap_or_default();
        per_query.push(serde_json::json!({"kind": q.kind, "query": label, "rank": rank, "top": top}));
    }
    let secs = started.elapsed().as_secs_f64();
    if !a.keep {
        cols.drop(v1::DropCollectionRequest { name: name.clone() }).await.map_err(status_err)?;
    }
    let mut all = Tally::default();
    for t in by_kind.values() {
        all.n += t.n;
        all.r1 += t.r1;
        all.r5 += t.r5;
        all.rr += t.rr;
        all.errors += t.errors;
    }
    let row = |t: &Tally| {
        let n = t.n.max(1) as f64;
        (t.r1 as f64 / n, t.r5 as f64 / n, t.rr / n)
    };
    if a.json {
        let mut kinds = serde_json::Map::new();
        for (k, t) in by_kind.iter().chain(std::iter::once((&"all".to_string(), &all))) {
            let (r1, r5, mrr) = row(t);
            kinds.insert(
                k.clone(),
                serde_json::json!({"queries": t.n, "errors": t.errors, "recall@1": r1, "recall@5": r5, "mrr": mrr}),
            );
        }
        let mut o = serde_json::json!({
            "dataset": root, "fusion": a.fusion, "within_modality": a.within_modality, "kinds": kinds, "query_seconds": secs,
        });
        if a.verbose {
            o["queries"] = per_query.into();
        }
        println!("{o}");
    } else {
        if a.verbose {
            for q in &per_query {
                println!(
                    "{:<14} rank {:<4} top {:<28} {}",
                    q["kind"].as_str().unwrap_or(""),
                    q["rank"],
                    q["top"].as_str().unwrap_or(""),
                    q["query"].as_str().unwrap_or("")
                );
            }
        }
        println!("{:<16} {:>7} {:>9} {:>9} {:>7} {:>7}", "kind", "queries", "recall@1", "recall@5", "MRR", "errors");
        for (k, t) in by_kind.iter().chain(std::iter::once((&"all".to_string(), &all))) {
            let (r1, r5, mrr) = row(t);
            println!("{k:<16} {:>7} {r1:>9.3} {r5:>9.3} {mrr:>7.3} {:>7}", t.n, t.errors);
        }
        let scope = if a.within_modality { "target modality only" } else { "all modalities, fused" };
        println!("({} queries in {secs:.1}s, fusion {}, {scope})", all.n, a.fusion);
    }
    Ok(())
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
