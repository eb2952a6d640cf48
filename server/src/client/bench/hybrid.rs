//! `agentdb bench hybrid`: keyword (BM25), dense and hybrid search side by side over the
//! same collection of text items, served over gRPC, plus upsert throughput with and
//! without the keyword index (the baseline, in the same run).
//!
//! Texts are drawn from the text model's own word list with Zipf-distributed word
//! frequencies (so common words are common and BM25's IDF has work to do), and one item
//! in ten carries a product code. The vectors are random unit vectors tagged as nothing
//! (the point is the cost of each retrieval path, not its quality: `agentdb eval`
//! measures that); queries are 2–4 words taken from a random item, so they match, and
//! the dense side embeds each query with the real text encoder, as a client's query is.

use crate::client::bench::{summarize, Phase};
use crate::client::{clients, connect, status_err};
use agentdb_proto::v1;
use anyhow::{Context, Result};
use clap::Args;
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Args, Clone)]
pub struct HybridBench {
    #[arg(long, default_value_t = 100_000)]
    pub n: usize,
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// Concurrent client requests in the throughput phases (latency phases use 1).
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Seconds of load per measured phase.
    #[arg(long, default_value_t = 8.0)]
    pub duration: f64,
    /// Distinct queries.
    #[arg(long, default_value_t = 300)]
    pub queries: usize,
    #[arg(long, default_value_t = 1000)]
    pub upsert_batch: usize,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Models folder holding all-minilm-l6-v2/vocab.txt (default: the installed models).
    #[arg(long)]
    pub models: Option<std::path::PathBuf>,
    /// Keep the collections afterwards.
    #[arg(long)]
    pub keep: bool,
    #[arg(long)]
    pub json: bool,
}

/// Lower-case whole words of the text model's vocabulary.
fn words(models: Option<&std::path::Path>) -> Result<Vec<String>> {
    let dir = models.map(|p| p.to_path_buf()).unwrap_or_else(agentdb_models::registry::default_dir);
    let p = dir.join("all-minilm-l6-v2/vocab.txt");
    let text =
        std::fs::read_to_string(&p).with_context(|| format!("{} (install models with `make models`)", p.display()))?;
    let w: Vec<String> = text
        .lines()
        .filter(|l| l.len() >= 3 && l.chars().all(|c| c.is_ascii_lowercase()))
        .map(str::to_string)
        .collect();
    anyhow::ensure!(w.len() > 1000, "{} has too few words", p.display());
    Ok(w)
}

/// `n` texts of 12–40 words with Zipf(1.07) word frequencies; every tenth has a code.
fn corpus(words: &[String], n: usize, seed: u64) -> Vec<String> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    // Inverse-CDF sampling over ranks.
    let weights: Vec<f64> = (1..=words.len()).map(|r| 1.0 / (r as f64).powf(1.07)).collect();
    let total: f64 = weights.iter().sum();
    let mut cdf = Vec::with_capacity(weights.len());
    let mut acc = 0.0;
    for w in weights {
        acc += w / total;
        cdf.push(acc);
    }
    (0..n)
        .map(|i| {
            let len = rng.random_range(12..=40);
            let mut t: Vec<&str> = (0..len)
                .map(|_| {
                    let u: f64 = rng.random();
                    &words[cdf.partition_point(|c| *c < u).min(words.len() - 1)][..]
                })
                .collect();
            let code;
            if i % 10 == 0 {
                code = format!("SKU-{:06}", i);
                t.push(&code);
                return t.join(" ");
            }
            t.join(" ")
        })
        .collect()
}

pub async fn hybrid_bench(server: &str, b: HybridBench) -> Result<()> {
    let (mut cols, items) = clients(connect(server).await?);
    let texts = Arc::new(corpus(&words(b.models.as_deref())?, b.n, b.seed));
    let tag = b.seed;
    let (kw_name, plain_name) = (format!("bench-hybrid-{tag}"), format!("bench-dense-{tag}"));
    for name in [&kw_name, &plain_name] {
        let _ = cols.drop(v1::DropCollectionRequest { name: name.clone() }).await;
    }
    // The same items into a collection without (baseline) and with the keyword index.
    let mut load = Vec::new();
    for (name, keyword) in [(&plain_name, false), (&kw_name, true)] {
        cols.create(v1::CreateCollectionRequest {
            name: name.clone(),
            multimodal: true,
            keyword: Some(v1::KeywordOptions { disabled: !keyword, ..Default::default() }),
            ..Default::default()
        })
        .await
        .map_err(status_err)?;
        let info = cols
            .describe(v1::DescribeCollectionRequest { name: name.clone() })
            .await
            .map_err(status_err)?
            .into_inner()
            .info
            .unwrap_or_default();
        let spaces: Vec<(String, usize)> =
            info.spaces.iter().filter_map(|s| s.spec.as_ref()).map(|s| (s.name.clone(), s.dim as usize)).collect();
        eprintln!("loading {} items into '{name}' (keyword index: {keyword})", b.n);
        let t = Instant::now();
        let mut items = items.clone();
        let mut rng = rand::rngs::StdRng::seed_from_u64(b.seed ^ 0x5eed);
        for start in (0..b.n).step_by(b.upsert_batch.max(1)) {
            let batch: Vec<v1::Item> = (start..(start + b.upsert_batch).min(b.n))
                .map(|i| {
                    let vectors = spaces
                        .iter()
                        .map(|(s, dim)| {
                            let mut v: Vec<f32> = (0..*dim).map(|_| rng.random::<f32>() - 0.5).collect();
                            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                            v.iter_mut().for_each(|x| *x /= norm);
                            (s.clone(), v1::Vector { values: v, ..Default::default() })
                        })
                        .collect();
                    v1::Item {
                        id: i.to_string(),
                        vectors,
                        payload_json: serde_json::json!({"modality": "text", "text": texts[i]}).to_string(),
                    }
                })
                .collect();
            items.upsert(v1::UpsertRequest { collection: name.clone(), items: batch }).await.map_err(status_err)?;
        }
        let secs = t.elapsed().as_secs_f64();
        // Measure search on built indexes, as a settled collection is searched (sealed
        // and indexed segments; not merged into one, which would rebuild the graph).
        let ti = Instant::now();
        cols.flush(v1::FlushRequest { collection: name.clone(), optimize: false }).await.map_err(status_err)?;
        let index_secs = ti.elapsed().as_secs_f64();
        eprintln!("  upserted in {secs:.1}s, HNSW built in {index_secs:.1}s");
        load.push(serde_json::json!({"collection": name, "keyword": keyword, "seconds": secs, "items_per_s": b.n as f64 / secs, "index_seconds": index_secs}));
    }
    // Queries: 2-4 consecutive words of a random item.
    let mut rng = rand::rngs::StdRng::seed_from_u64(b.seed ^ 0xbeef);
    let queries: Arc<Vec<String>> = Arc::new(
        (0..b.queries)
            .map(|_| {
                let t: Vec<&str> = texts[rng.random_range(0..b.n)].split(' ').collect();
                let len = rng.random_range(2..=4).min(t.len());
                let s = rng.random_range(0..=t.len() - len);
                t[s..s + len].join(" ")
            })
            .collect(),
    );
    let mut phases: Vec<(String, usize, Phase)> = Vec::new();
    for mode in ["dense", "keyword", "hybrid"] {
        for conc in [1, b.concurrency] {
            let p = phase(&items, &kw_name, mode, &queries, &b, conc).await?;
            eprintln!("{mode:<8} c={conc:<3} {:>8.1} q/s  p50 {:>7.2} ms  p95 {:>7.2} ms", p.qps, p.p50_ms, p.p95_ms);
            phases.push((mode.to_string(), conc, p));
        }
    }
    if !b.keep {
        for name in [&kw_name, &plain_name] {
            let _ = cols.drop(v1::DropCollectionRequest { name: name.clone() }).await;
        }
    }
    let ips = |i: usize| load[i]["items_per_s"].as_f64().unwrap_or(0.0);
    let get = |m: &str, c: usize| phases.iter().find(|(mm, cc, _)| mm == m && *cc == c).map(|(_, _, p)| p.clone());
    if b.json {
        let ph: Vec<_> = phases
            .iter()
            .map(|(m, c, p)| serde_json::json!({"mode": m, "concurrency": c, "qps": p.qps, "p50_ms": p.p50_ms, "p95_ms": p.p95_ms, "p99_ms": p.p99_ms, "requests": p.requests}))
            .collect();
        println!("{}", serde_json::json!({"n": b.n, "k": b.k, "load": load, "phases": ph}));
        return Ok(());
    }
    println!("{} text items, top-{}, {} distinct queries of 2-4 words", b.n, b.k, b.queries);
    println!(
        "upsert: {:.0} items/s without the keyword index, {:.0} with it ({:.2}x)",
        ips(0),
        ips(1),
        ips(1) / ips(0).max(1e-9)
    );
    println!("{:<8} {:>4} {:>10} {:>9} {:>9} {:>14}", "mode", "conc", "q/s", "p50 ms", "p95 ms", "q/s vs dense");
    for (m, c, p) in &phases {
        let base = get("dense", *c).map(|d| d.qps).unwrap_or(p.qps);
        println!("{m:<8} {c:>4} {:>10.1} {:>9.2} {:>9.2} {:>13.2}x", p.qps, p.p50_ms, p.p95_ms, p.qps / base.max(1e-9));
    }
    Ok(())
}

async fn phase(
    items: &crate::client::ItemsClient,
    name: &str,
    mode: &str,
    queries: &Arc<Vec<String>>,
    b: &HybridBench,
    concurrency: usize,
) -> Result<Phase> {
    let wire = match mode {
        "dense" => v1::RetrievalMode::RetrievalDense,
        "keyword" => v1::RetrievalMode::RetrievalKeyword,
        _ => v1::RetrievalMode::RetrievalHybrid,
    } as i32;
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = tokio::task::JoinSet::new();
    let t0 = Instant::now();
    for w in 0..concurrency {
        let (mut items, stop, queries, name, k) = (items.clone(), stop.clone(), queries.clone(), name.to_string(), b.k);
        tasks.spawn(async move {
            let mut lat = Vec::new();
            let mut q = w * 7919;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                items
                    .search(v1::SearchRequest {
                        collection: name.clone(),
                        text: queries[q % queries.len()].clone(),
                        top_k: k as u32,
                        mode: wire,
                        ..Default::default()
                    })
                    .await
                    .map_err(status_err)?;
                lat.push(t.elapsed());
                q += 1;
            }
            Ok::<_, anyhow::Error>(lat)
        });
    }
    tokio::time::sleep(Duration::from_secs_f64(b.duration)).await;
    stop.store(true, Ordering::Relaxed);
    let mut lat = Vec::new();
    while let Some(r) = tasks.join_next().await {
        lat.extend(r??);
    }
    Ok(summarize(mode, lat, t0.elapsed().as_secs_f64(), &[]))
}
