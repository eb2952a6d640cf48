//! `agentdb bench search`: a gRPC load generator that also measures recall@k against
//! exact search, and runs the same queries on an in-process FAISS index built with the
//! same description and parameters as the baseline (served / in-process ratios).

pub mod agents;
pub mod hybrid;
pub mod workflows;

use crate::client::{clients, connect, status_err};
use agentdb_engine::index::{AnnIndex, IndexTuning};
use agentdb_engine::Metric;
use agentdb_kernels::{topk_exact, Candidates};
use agentdb_proto::v1;
use anyhow::Result;
use clap::{Args, Subcommand};
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Subcommand)]
pub enum BenchCmd {
    /// Load random vectors, then measure served search QPS, latency and recall.
    Search(SearchBench),
    /// Text encoder throughput against batch size (in-process, real weights).
    Embed(EmbedBench),
    /// Image decode+embed throughput and audio transcription real-time factor over a
    /// folder of media (in-process, real weights).
    Media(MediaBench),
    /// Exact top-k on the GPU (cuBLAS GEMM + fused selection kernel) against the CPU
    /// kernel and the memory-bandwidth roofline (needs a `cuda` build and a GPU).
    Gpu(GpuBench),
    /// Keyword (BM25), dense and hybrid search over the same text items, and upsert
    /// throughput with and without the keyword index.
    Hybrid(crate::client::bench::hybrid::HybridBench),
    /// The image classifier (EfficientNet-Lite0) and the preprocessing kernel on the GPU
    /// against the CPU in the same run, with the agreement of their outputs (needs a
    /// `cuda` build and a GPU).
    GpuImage(GpuImageBench),
    /// Agents and event subscriptions at scale against a running server: registration
    /// rate, resident memory per idle agent and per subscription, delivery to all.
    Agents(crate::client::bench::agents::AgentsBench),
    /// The workflow engine's overhead against a running server: runs of no-op steps,
    /// runs/s, persisted records/s and queue-to-finish latency.
    Workflows(crate::client::bench::workflows::WorkflowsBench),
}

#[derive(Args, Clone)]
pub struct GpuImageBench {
    /// Images per measurement (synthetic 640×480 scenes, or `--photos`).
    #[arg(long, default_value_t = 256)]
    pub images: usize,
    #[arg(long, value_delimiter = ',', default_value = "1,32,128")]
    pub batch_sizes: Vec<usize>,
    /// Model folder (default: the installed efficientnet-lite0).
    #[arg(long)]
    pub model: Option<std::path::PathBuf>,
    /// A folder of photographs to cycle through instead of synthetic scenes.
    #[arg(long)]
    pub photos: Option<std::path::PathBuf>,
    #[arg(long, default_value_t = 0)]
    pub gpu: usize,
    /// GEMM modes (comma-separated: fp32, tf32, fp16).
    #[arg(long, value_delimiter = ',', default_value = "fp32,tf32")]
    pub math: Vec<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Clone)]
pub struct GpuBench {
    #[arg(long, default_value_t = 1_000_000)]
    pub n: usize,
    #[arg(long, default_value_t = 768)]
    pub dim: usize,
    #[arg(long, value_delimiter = ',', default_value = "1,64,1024")]
    pub batches: Vec<usize>,
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    #[arg(long, default_value_t = 0)]
    pub gpu: usize,
    /// Device memory bandwidth for the roofline, GB/s (H100 SXM: 3350).
    #[arg(long, default_value_t = 3350.0)]
    pub bandwidth_gbs: f64,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// Storage precisions to measure (comma-separated: fp16, fp32).
    #[arg(long, value_delimiter = ',', default_value = "fp16,fp32")]
    pub precision: Vec<String>,
    /// Skip the CPU baseline (the exact CPU kernel, batch 64).
    #[arg(long)]
    pub no_cpu: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Clone)]
pub struct MediaBench {
    /// Folder of images and recordings (type from content; others are skipped).
    pub dir: std::path::PathBuf,
    /// Models folder (default: the installed models).
    #[arg(long)]
    pub models: Option<std::path::PathBuf>,
    /// Passes over the images.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Clone)]
pub struct EmbedBench {
    /// Sentences embedded per measurement.
    #[arg(long, default_value_t = 512)]
    pub texts: usize,
    /// Batch sizes to measure (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,8,16,32,64")]
    pub batch_sizes: Vec<usize>,
    /// Concurrent single-sentence callers for the dynamic-batcher rows.
    #[arg(long, default_value_t = 64)]
    pub callers: usize,
    /// Model folder (default: the installed all-minilm-l6-v2).
    #[arg(long)]
    pub model: Option<std::path::PathBuf>,
    /// CPU kernels: auto (ONNX Runtime when the model has its ONNX graph), onnx or candle.
    #[arg(long, default_value = "auto")]
    pub backend: String,
    /// Also run the encoder on this GPU (`cuda:N`, needs a `cuda` build): GPU rows for
    /// each `--math` against the CPU rows of the same run, and the cosine between them.
    #[arg(long)]
    pub device: Option<String>,
    /// GEMM modes to measure on the GPU (comma-separated: fp32, tf32, fp16).
    #[arg(long, value_delimiter = ',', default_value = "fp32,tf32,fp16")]
    pub math: Vec<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Clone)]
pub struct SearchBench {
    #[arg(long, default_value_t = 100_000)]
    pub n: usize,
    #[arg(long, default_value_t = 384)]
    pub dim: usize,
    #[arg(long, default_value = agentdb_engine::DEFAULT_INDEX)]
    pub index: String,
    #[arg(long, default_value = "cosine")]
    pub metric: String,
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// Concurrent client requests.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Seconds of load per measured phase.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Distinct query vectors (recall is averaged over these).
    #[arg(long, default_value_t = 500)]
    pub queries: usize,
    /// efSearch the server uses (search.hnsw_ef_search) — the baseline uses the same.
    #[arg(long, default_value_t = agentdb_engine::IndexTuning::default().hnsw_ef_search)]
    pub hnsw_ef_search: usize,
    /// efConstruction the server uses (search.hnsw_ef_construction).
    #[arg(long, default_value_t = agentdb_engine::IndexTuning::default().hnsw_ef_construction)]
    pub hnsw_ef_construction: usize,
    #[arg(long, default_value_t = 1000)]
    pub upsert_batch: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Reuse this collection if it exists with n items (skips loading).
    #[arg(long)]
    pub collection: Option<String>,
    /// Cluster mode: create the collection with this many shards (docs/CLUSTER.md).
    #[arg(long, default_value_t = 0)]
    pub shards: u32,
    /// Cluster mode: replicas per shard (with --shards).
    #[arg(long, default_value_t = 0)]
    pub replicas: u32,
    /// Keep the collection afterwards.
    #[arg(long)]
    pub keep: bool,
    /// Also measure these efSearch values (comma-separated), per query, on the same index.
    #[arg(long, value_delimiter = ',')]
    pub ef_sweep: Vec<usize>,
    /// Skip the in-process FAISS baseline.
    #[arg(long)]
    pub no_baseline: bool,
    /// Print one JSON object with every number.
    #[arg(long)]
    pub json: bool,
    /// Read the vectors from DIR/base.npy and the queries from DIR/queries.npy (float32
    /// matrices, e.g. the side-by-side benchmark's data from ../shared/peers/make_data.py)
    /// instead of generating random ones; --n and --queries then cap how many are used.
    #[arg(long)]
    pub data: Option<std::path::PathBuf>,
}

/// A float32 C-order matrix from a `.npy` file: (rows, cols, values).
fn read_npy_f32(path: &std::path::Path) -> Result<(usize, usize, Vec<f32>)> {
    let bytes = std::fs::read(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let bad = |why: &str| anyhow::anyhow!("{}: not a float32 .npy matrix ({why})", path.display());
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("no NUMPY magic"));
    }
    let (hlen, at) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        _ => return Err(bad("unknown version")),
    };
    let header = std::str::from_utf8(bytes.get(at..at + hlen).ok_or_else(|| bad("short header"))?)
        .map_err(|_| bad("header is not text"))?;
    if !header.contains("'descr': '<f4'") || header.contains("'fortran_order': True") {
        return Err(bad("dtype must be <f4, C order"));
    }
    let shape = header.split("'shape': (").nth(1).and_then(|s| s.split(')').next()).ok_or_else(|| bad("no shape"))?;
    let dims: Vec<usize> = shape.split(',').filter_map(|x| x.trim().parse().ok()).collect();
    let [rows, cols] = dims[..] else { return Err(bad("not two-dimensional")) };
    let body = &bytes[at + hlen..];
    if body.len() != rows * cols * 4 {
        return Err(bad("size does not match the shape"));
    }
    Ok((rows, cols, body.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()))
}

pub fn run(server: &str, cmd: BenchCmd) -> Result<()> {
    match cmd {
        BenchCmd::Search(b) => {
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            rt.block_on(search_bench(server, b))
        }
        BenchCmd::Embed(b) => embed_bench(b),
        BenchCmd::Media(b) => media_bench(b),
        BenchCmd::Gpu(b) => gpu_bench(b),
        BenchCmd::GpuImage(b) => gpu_image_bench(b),
        BenchCmd::Agents(b) => {
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            rt.block_on(crate::client::bench::agents::agents_bench(server, b))
        }
        BenchCmd::Workflows(b) => {
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            rt.block_on(crate::client::bench::workflows::workflows_bench(server, b))
        }
        BenchCmd::Hybrid(b) => {
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            rt.block_on(crate::client::bench::hybrid::hybrid_bench(server, b))
        }
    }
}

fn media_bench(b: MediaBench) -> Result<()> {
    use agentdb_models::image::preprocess;
    use agentdb_models::{detect, registry, AudioLimits, ImageLimits, LabelBridge, Modality, TextEncoder};
    let e = |e: agentdb_models::Error| anyhow::anyhow!("{e}");
    let dir = b.models.clone().unwrap_or_else(registry::default_dir);
    let mut images = Vec::new();
    let mut audio = Vec::new();
    let mut videos = Vec::new();
    for f in std::fs::read_dir(&b.dir)?.flatten() {
        let bytes = std::fs::read(f.path())?;
        match detect(&bytes).map(|m| m.modality) {
            Some(Modality::Image) => images.push(bytes),
            Some(Modality::Audio) => audio.push(bytes),
            Some(Modality::Video) => videos.push(bytes),
            _ => {}
        }
    }
    let text =
        TextEncoder::load(registry::read_model(&dir.join("all-minilm-l6-v2")).map_err(e)?, candle_core::Device::Cpu)
            .map_err(e)?;
    let bridge =
        LabelBridge::load(registry::read_model(&dir.join("efficientnet-lite0")).map_err(e)?, &text, None).map_err(e)?;
    let threads = rayon::current_num_threads();
    let mut out = serde_json::json!({"threads": threads, "images": images.len(), "recordings": audio.len()});
    if !images.is_empty() {
        let lim = ImageLimits::default();
        // Decode + preprocess alone: the baseline the embedding cost is measured against.
        let t = Instant::now();
        let mut inputs = Vec::new();
        for _ in 0..b.rounds {
            inputs.clear();
            for bytes in &images {
                inputs.push(preprocess(&agentdb_models::decode_image(bytes, lim).map_err(e)?));
            }
        }
        let n = (images.len() * b.rounds) as f64;
        let decode_per_s = n / t.elapsed().as_secs_f64();
        bridge.embed(&inputs[..1]).map_err(e)?; // warm-up
        let mut rows = Vec::new();
        for bs in [1usize, 8] {
            let t = Instant::now();
            for _ in 0..b.rounds {
                for chunk in inputs.chunks(bs) {
                    bridge.embed(chunk).map_err(e)?;
                }
            }
            rows.push(serde_json::json!({"batch": bs, "embed_per_s": n / t.elapsed().as_secs_f64()}));
        }
        let t = Instant::now();
        for _ in 0..b.rounds {
            for bytes in &images {
                bridge.embed(&[preprocess(&agentdb_models::decode_image(bytes, lim).map_err(e)?)]).map_err(e)?;
            }
        }
        let end_to_end = n / t.elapsed().as_secs_f64();
        out["image"] = serde_json::json!({"decode_preprocess_per_s": decode_per_s, "embed": rows, "decode_embed_per_s": end_to_end});
    }
    let speech = if audio.is_empty() && videos.is_empty() {
        None
    } else {
        agentdb_models::vad::init_runtime(&dir).map_err(e)?;
        let vad_info = registry::read_model(&dir.join("silero-vad")).map_err(e)?;
        let vad = agentdb_models::vad::Vad::load(vad_info.clone(), &dir).map_err(e)?;
        let w_info = registry::read_model(&dir.join("whisper-base")).map_err(e)?;
        let whisper = agentdb_models::whisper::Whisper::load(w_info.clone()).map_err(e)?;
        Some(agentdb_models::SpeechService::new(vad, vad_info, whisper, w_info, Default::default()))
    };
    if !videos.is_empty() {
        let Some(svc) = speech.as_ref() else { anyhow::bail!("speech models not loaded") };
        let (mut secs, mut decode_s, mut total_s, mut frames) = (0f64, 0f64, 0f64, 0usize);
        for bytes in &videos {
            let t = Instant::now();
            let v = agentdb_models::video::decode_video(bytes, Default::default(), 10.0, 0.3).map_err(e)?;
            decode_s += t.elapsed().as_secs_f64();
            let images: Vec<_> = v.keyframes.iter().map(|k| k.image.clone()).collect();
            frames += images.len();
            let inputs: Vec<Vec<f32>> = images.iter().map(preprocess).collect();
            bridge.embed(&inputs).map_err(e)?;
            if let Some((samples, rate)) = &v.audio {
                svc.transcribe_at(samples, *rate).map_err(e)?;
            }
            total_s += t.elapsed().as_secs_f64();
            secs += v.duration as f64;
        }
        out["video"] = serde_json::json!({
            "video_seconds": secs, "keyframes": frames, "decode_seconds": decode_s, "total_seconds": total_s,
            "real_time_factor": total_s / secs.max(1e-9),
        });
    }
    if let (false, Some(svc)) = (audio.is_empty(), speech.as_ref()) {
        let (mut secs, mut speech, mut decode_s, mut total_s) = (0f64, 0f64, 0f64, 0f64);
        for bytes in &audio {
            let t = Instant::now();
            let a = agentdb_models::audio::decode_audio(bytes, AudioLimits::default()).map_err(e)?;
            let pcm = agentdb_models::audio::resample(&a.samples, a.rate, 16_000);
            decode_s += t.elapsed().as_secs_f64();
            let tr = svc.transcribe_blocking(&pcm).map_err(e)?;
            total_s += t.elapsed().as_secs_f64();
            secs += tr.seconds as f64;
            speech += tr.speech_seconds as f64;
        }
        out["audio"] = serde_json::json!({
            "audio_seconds": secs, "speech_seconds": speech, "decode_resample_seconds": decode_s,
            "total_seconds": total_s, "real_time_factor": total_s / secs.max(1e-9),
        });
    }
    if b.json {
        println!("{out}");
        return Ok(());
    }
    println!("media bench over {} ({threads} threads)", b.dir.display());
    if let Some(i) = out.get("image") {
        println!(
            "images: {} files x {} rounds: decode+preprocess {:.1}/s (baseline), decode+embed {:.1}/s",
            images.len(),
            b.rounds,
            i["decode_preprocess_per_s"].as_f64().unwrap_or(0.0),
            i["decode_embed_per_s"].as_f64().unwrap_or(0.0)
        );
        for r in i["embed"].as_array().into_iter().flatten() {
            println!("  embed only, batch {:>2}: {:.1} images/s", r["batch"], r["embed_per_s"].as_f64().unwrap_or(0.0));
        }
    }
    if let Some(v) = out.get("video") {
        println!(
            "video: {} files, {:.1} s, {} keyframes: decode {:.2} s, decode+keyframes+speech {:.1} s, real-time factor {:.3}",
            videos.len(),
            v["video_seconds"].as_f64().unwrap_or(0.0),
            v["keyframes"],
            v["decode_seconds"].as_f64().unwrap_or(0.0),
            v["total_seconds"].as_f64().unwrap_or(0.0),
            v["real_time_factor"].as_f64().unwrap_or(0.0)
        );
    }
    if let Some(a) = out.get("audio") {
        println!(
            "audio: {} recordings, {:.1} s ({:.1} s speech): decode+resample {:.2} s, total {:.1} s, real-time factor {:.3}",
            audio.len(),
            a["audio_seconds"].as_f64().unwrap_or(0.0),
            a["speech_seconds"].as_f64().unwrap_or(0.0),
            a["decode_resample_seconds"].as_f64().unwrap_or(0.0),
            a["total_seconds"].as_f64().unwrap_or(0.0),
            a["real_time_factor"].as_f64().unwrap_or(0.0)
        );
    }
    Ok(())
}

fn random_vectors(n: usize, dim: usize, seed: u64, normalize: bool) -> Vec<f32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut v: Vec<f32> = (0..n * dim).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect();
    if normalize {
        for row in v.chunks_mut(dim) {
            let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
            row.iter_mut().for_each(|x| *x /= norm);
        }
    }
    v
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Phase {
    pub name: String,
    pub requests: usize,
    pub qps: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub recall: f64,
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn recall(found: &[u32], truth: &[u32], k: usize) -> f64 {
    let t: std::collections::HashSet<u32> = truth.iter().take(k).copied().collect();
    if t.is_empty() {
        return 1.0;
    }
    found.iter().take(k).filter(|x| t.contains(x)).count() as f64 / t.len() as f64
}

pub(crate) fn summarize(name: &str, mut lat: Vec<Duration>, elapsed: f64, recalls: &[f64]) -> Phase {
    lat.sort();
    Phase {
        name: name.into(),
        requests: lat.len(),
        qps: lat.len() as f64 / elapsed,
        p50_ms: percentile(&lat, 0.50),
        p95_ms: percentile(&lat, 0.95),
        p99_ms: percentile(&lat, 0.99),
        recall: if recalls.is_empty() { 0.0 } else { recalls.iter().sum::<f64>() / recalls.len() as f64 },
    }
}

async fn search_bench(server: &str, mut b: SearchBench) -> Result<()> {
    let metric = Metric::parse(&b.metric).map_err(|e| anyhow::anyhow!("{e}"))?;
    let normalize = metric == Metric::Cosine;
    let (mut cols, items) = clients(connect(server).await?);
    let name = b.collection.clone().unwrap_or_else(|| format!("bench-{}", rand::rng().random::<u32>()));
    let (base, queries) = match &b.data {
        Some(dir) => {
            let (n, dim, mut base) = read_npy_f32(&dir.join("base.npy"))?;
            let (nq, qdim, mut queries) = read_npy_f32(&dir.join("queries.npy"))?;
            if qdim != dim {
                anyhow::bail!("queries have dimension {qdim}, vectors {dim}");
            }
            b.dim = dim;
            b.n = b.n.min(n);
            b.queries = b.queries.min(nq);
            base.truncate(b.n * dim);
            queries.truncate(b.queries * dim);
            eprintln!("read {} {}-d vectors and {} queries from {}", b.n, dim, b.queries, dir.display());
            (base, queries)
        }
        None => {
            eprintln!("generating {} random {}-d vectors (seed {})", b.n, b.dim, b.seed);
            (
                random_vectors(b.n, b.dim, b.seed, normalize),
                random_vectors(b.queries, b.dim, b.seed ^ 0x5eed, normalize),
            )
        }
    };

    let existing = cols
        .describe(v1::DescribeCollectionRequest { name: name.clone() })
        .await
        .ok()
        .and_then(|r| r.into_inner().info);
    let mut load_secs = 0.0;
    let mut index_secs = 0.0;
    if existing.as_ref().is_none_or(|i| i.count != b.n as u64) {
        if existing.is_some() {
            anyhow::bail!(
                "collection '{name}' exists with a different item count; drop it or pick another --collection"
            );
        }
        cols.create(v1::CreateCollectionRequest {
            name: name.clone(),
            spaces: vec![v1::SpaceSpec {
                name: "default".into(),
                dim: b.dim as u32,
                metric: agentdb_proto::convert::metric_to_wire(metric) as i32,
                index: b.index.clone(),
                ..Default::default()
            }],
            keyword: Some(v1::KeywordOptions { disabled: true, ..Default::default() }),
            multimodal: false,
            shards: b.shards,
            replicas: b.replicas,
        })
        .await
        .map_err(status_err)?;
        eprintln!("loading into collection '{name}'");
        let t = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        let next = Arc::new(AtomicUsize::new(0));
        let base = Arc::new(base.clone());
        for _ in 0..4 {
            let (mut items, next, base, name) = (items.clone(), next.clone(), base.clone(), name.clone());
            let (dim, batch, n) = (b.dim, b.upsert_batch, b.n);
            tasks.spawn(async move {
                loop {
                    let start = next.fetch_add(batch, Ordering::Relaxed);
                    if start >= n {
                        return Ok::<_, anyhow::Error>(());
                    }
                    let end = (start + batch).min(n);
                    let its = (start..end)
                        .map(|i| v1::Item {
                            id: i.to_string(),
                            vectors: [(
                                String::new(),
                                v1::Vector { values: base[i * dim..(i + 1) * dim].to_vec(), ..Default::default() },
                            )]
                            .into(),
                            payload_json: format!("{{\"i\":{i}}}"),
                        })
                        .collect();
                    items
                        .upsert(v1::UpsertRequest { collection: name.clone(), items: its })
                        .await
                        .map_err(status_err)?;
                }
            });
        }
        while let Some(r) = tasks.join_next().await {
            r??;
        }
        load_secs = t.elapsed().as_secs_f64();
        eprintln!("loaded {} items in {load_secs:.1}s; building the index (flush + optimize)", b.n);
        let t = Instant::now();
        cols.flush(v1::FlushRequest { collection: name.clone(), optimize: true }).await.map_err(status_err)?;
        index_secs = t.elapsed().as_secs_f64();
    }

    eprintln!("computing exact top-{} for {} queries", b.k, b.queries);
    let truth: Vec<Vec<u32>> = topk_exact(&queries, &base, b.dim, Candidates::All, b.k, metric.distance())
        .into_iter()
        .map(|v| v.into_iter().map(|n| n.row).collect())
        .collect();
    let queries = Arc::new(queries);
    let truth = Arc::new(truth);

    let index = if b.no_baseline {
        None
    } else {
        eprintln!("in-process baseline: building {} over the same vectors", b.index);
        let tuning = IndexTuning {
            hnsw_ef_search: b.hnsw_ef_search,
            hnsw_ef_construction: b.hnsw_ef_construction,
            ..IndexTuning::default()
        };
        let t = Instant::now();
        let ix = AnnIndex::build(&b.index, b.dim, metric, &base, tuning).map_err(|e| anyhow::anyhow!("{e}"))?;
        Some((Arc::new(ix), t.elapsed().as_secs_f64()))
    };
    let mut efs = vec![0usize];
    efs.extend(b.ef_sweep.iter().copied().filter(|&e| e != b.hnsw_ef_search));
    let mut rows = Vec::new();
    for ef in efs {
        let label = if ef == 0 { b.hnsw_ef_search } else { ef };
        eprintln!("efSearch {label}: served search, {} concurrent clients for {:.0}s", b.concurrency, b.duration);
        let served = served_phase(&items, &name, &b, queries.clone(), truth.clone(), ef).await?;
        let inproc = match &index {
            Some((ix, _)) => {
                eprintln!("efSearch {label}: in-process FAISS, {} threads for {:.0}s", b.concurrency, b.duration);
                Some(inprocess_phase(ix.clone(), &b, queries.clone(), truth.clone(), ef)?)
            }
            None => None,
        };
        rows.push((label, served, inproc));
    }
    let (served, baseline) = (rows[0].1.clone(), rows[0].2.clone().zip(index.as_ref().map(|(_, s)| *s)));

    if !b.keep && b.collection.is_none() {
        let _ = cols.drop(v1::DropCollectionRequest { name: name.clone() }).await;
    }

    let report = serde_json::json!({
        "n": b.n, "dim": b.dim, "index": b.index, "metric": b.metric, "k": b.k,
        "concurrency": b.concurrency, "duration_s": b.duration, "queries": b.queries,
        "hnsw_ef_search": b.hnsw_ef_search, "hnsw_ef_construction": b.hnsw_ef_construction,
        "load_s": load_secs, "load_items_per_s": if load_secs > 0.0 { b.n as f64 / load_secs } else { 0.0 },
        "index_build_s": index_secs,
        "served": served,
        "baseline": baseline.as_ref().map(|(p, s)| serde_json::json!({"phase": p, "build_s": s})),
        "ratio_qps_served_over_inprocess": baseline.as_ref().map(|(p, _)| served.qps / p.qps),
        "ratio_p50_served_over_inprocess": baseline.as_ref().map(|(p, _)| served.p50_ms / p.p50_ms.max(1e-9)),
        "ef_sweep": rows.iter().map(|(ef, s, i)| serde_json::json!({"ef": ef, "served": s, "in_process": i})).collect::<Vec<_>>(),
    });
    if b.json {
        println!("{report}");
        return Ok(());
    }
    println!(
        "AgentDB search benchmark: n={} dim={} index={} metric={} k={} concurrency={} efSearch={}",
        b.n, b.dim, b.index, b.metric, b.k, b.concurrency, b.hnsw_ef_search
    );
    if load_secs > 0.0 {
        println!(
            "load: {:.1}s ({:.0} items/s), index build (flush+optimize): {:.1}s",
            load_secs,
            b.n as f64 / load_secs,
            index_secs
        );
    }
    println!(
        "{:<20} {:>9} {:>10} {:>9} {:>9} {:>9} {:>10}",
        "phase", "requests", "QPS", "p50 ms", "p95 ms", "p99 ms", "recall@k"
    );
    let mut phases = vec![served.clone()];
    if let Some((p, _)) = &baseline {
        phases.push(p.clone());
    }
    for p in &phases {
        println!(
            "{:<20} {:>9} {:>10.1} {:>9.3} {:>9.3} {:>9.3} {:>10.4}",
            p.name, p.requests, p.qps, p.p50_ms, p.p95_ms, p.p99_ms, p.recall
        );
    }
    if rows.len() > 1 {
        println!("efSearch sweep (same index, same queries):");
        println!(
            "{:>8} {:>12} {:>12} {:>12} {:>14} {:>14}",
            "ef", "served QPS", "served p50", "recall@k", "in-proc QPS", "in-proc recall"
        );
        for (ef, s, i) in &rows {
            println!(
                "{:>8} {:>12.1} {:>12.3} {:>12.4} {:>14} {:>14}",
                ef,
                s.qps,
                s.p50_ms,
                s.recall,
                i.as_ref().map_or("-".into(), |p| format!("{:.1}", p.qps)),
                i.as_ref().map_or("-".into(), |p| format!("{:.4}", p.recall))
            );
        }
    }
    if let Some((p, build)) = &baseline {
        println!("in-process index build: {build:.1}s");
        println!(
            "served/in-process: QPS ratio {:.3}, p50 ratio {:.2}",
            served.qps / p.qps,
            served.p50_ms / p.p50_ms.max(1e-9)
        );
    }
    Ok(())
}

type Shared<T> = Arc<Vec<T>>;

async fn served_phase(
    items: &crate::client::ItemsClient,
    name: &str,
    b: &SearchBench,
    queries: Shared<f32>,
    truth: Shared<Vec<u32>>,
    ef: usize,
) -> Result<Phase> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = tokio::task::JoinSet::new();
    let t0 = Instant::now();
    for w in 0..b.concurrency {
        let (mut items, stop, queries, truth, name) =
            (items.clone(), stop.clone(), queries.clone(), truth.clone(), name.to_string());
        let (dim, k, nq) = (b.dim, b.k, b.queries);
        tasks.spawn(async move {
            let mut lat = Vec::new();
            let mut rec = Vec::new();
            let mut q = w;
            while !stop.load(Ordering::Relaxed) {
                let qi = q % nq;
                let t = Instant::now();
                let r = items
                    .search(v1::SearchRequest {
                        collection: name.clone(),
                        vector: Some(v1::Vector {
                            values: queries[qi * dim..(qi + 1) * dim].to_vec(),
                            ..Default::default()
                        }),
                        top_k: k as u32,
                        params: Some(v1::SearchParams { ef: ef as u32, ..Default::default() }),
                        ..Default::default()
                    })
                    .await
                    .map_err(status_err)?;
                lat.push(t.elapsed());
                let found: Vec<u32> = r.into_inner().hits.iter().filter_map(|h| h.id.parse().ok()).collect();
                rec.push(recall(&found, &truth[qi], k));
                q += 1;
            }
            Ok::<_, anyhow::Error>((lat, rec))
        });
    }
    tokio::time::sleep(Duration::from_secs_f64(b.duration)).await;
    stop.store(true, Ordering::Relaxed);
    let mut lat = Vec::new();
    let mut rec = Vec::new();
    while let Some(r) = tasks.join_next().await {
        let (l, r) = r??;
        lat.extend(l);
        rec.extend(r);
    }
    Ok(summarize("served (gRPC)", lat, t0.elapsed().as_secs_f64(), &rec))
}

fn inprocess_phase(
    index: Arc<AnnIndex>,
    b: &SearchBench,
    queries: Shared<f32>,
    truth: Shared<Vec<u32>>,
    ef: usize,
) -> Result<Phase> {
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let handles: Vec<_> = (0..b.concurrency)
        .map(|w| {
            let (index, stop, queries, truth) = (index.clone(), stop.clone(), queries.clone(), truth.clone());
            let (dim, k, nq) = (b.dim, b.k, b.queries);
            std::thread::spawn(move || {
                let mut lat = Vec::new();
                let mut rec = Vec::new();
                let mut q = w;
                while !stop.load(Ordering::Relaxed) {
                    let qi = q % nq;
                    let t = Instant::now();
                    let r =
                        index.search_ef(&queries[qi * dim..(qi + 1) * dim], k, None, 0, ef).expect("in-process search");
                    lat.push(t.elapsed());
                    let found: Vec<u32> = r[0].iter().map(|x| x.0).collect();
                    rec.push(recall(&found, &truth[qi], k));
                    q += 1;
                }
                (lat, rec)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(b.duration));
    stop.store(true, Ordering::Relaxed);
    let mut lat = Vec::new();
    let mut rec = Vec::new();
    for h in handles {
        let (l, r) = h.join().map_err(|_| anyhow::anyhow!("baseline thread panicked"))?;
        lat.extend(l);
        rec.extend(r);
    }
    Ok(summarize("in-process FAISS", lat, t0.elapsed().as_secs_f64(), &rec))
}

/// Varied English sentences of 8 to 30 words.
fn sentences(n: usize) -> Vec<String> {
    let subjects = [
        "The engineer",
        "A small dog",
        "Our quarterly report",
        "The river",
        "My neighbour",
        "The new database",
        "A violinist",
        "The committee",
    ];
    let verbs = ["describes", "crosses", "improves", "ignores", "celebrates", "measures", "questions", "repairs"];
    let objects = [
        "the old bridge near the station",
        "a surprising increase in cloud revenue",
        "the melody of an early symphony",
        "every index in the cluster",
        "the garden after a long winter",
        "a forecast of heavy rain",
        "the latency of each request",
        "the rules of the tournament",
    ];
    let tails = [
        "",
        " before the meeting on Friday",
        " while everyone else was asleep",
        " with great care and a lot of patience",
        " because nobody else had time to do it properly this year",
    ];
    (0..n)
        .map(|i| format!("{} {} {}{}.", subjects[i % 8], verbs[(i / 8) % 8], objects[(i / 64) % 8], tails[(i / 7) % 5]))
        .collect()
}

/// CPU vs GPU text embedding: throughput per batch size (direct calls) and the cosine
/// between the CPU's and the GPU's embedding of every sentence.
fn embed_gpu_bench(b: &EmbedBench, dir: &std::path::Path, device: &str) -> Result<()> {
    use agentdb_models::{registry, TextEncoder};
    let ordinal: usize = device
        .strip_prefix("cuda:")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("--device must be cuda:N, got '{device}'"))?;
    let load = || -> Result<TextEncoder> {
        let info = registry::read_model(dir).map_err(|e| anyhow::anyhow!("{e}"))?;
        TextEncoder::load(info, candle_core::Device::Cpu).map_err(|e| anyhow::anyhow!("{e}"))
    };
    let texts = sentences(b.texts);
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let rate = |enc: &TextEncoder, bs: usize| -> Result<f64> {
        enc.embed(&refs[..bs.min(refs.len())]).map_err(|e| anyhow::anyhow!("{e}"))?; // warm-up
        let t = Instant::now();
        for chunk in refs.chunks(bs.max(1)) {
            enc.embed(chunk).map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        Ok(texts.len() as f64 / t.elapsed().as_secs_f64())
    };
    let cpu = load()?;
    let cpu_vecs = cpu.embed(&refs).map_err(|e| anyhow::anyhow!("{e}"))?;
    let cpu_rows: Vec<(usize, f64)> =
        b.batch_sizes.iter().map(|&bs| Ok((bs, rate(&cpu, bs)?))).collect::<Result<_>>()?;
    let mut gpu_rows = Vec::new();
    for math in &b.math {
        let mut enc = load()?;
        let label = enc.use_gpu(ordinal, math).map_err(|e| anyhow::anyhow!("{e}"))?;
        let vecs = enc.embed(&refs).map_err(|e| anyhow::anyhow!("{e}"))?;
        let cos: Vec<f64> = cpu_vecs
            .iter()
            .zip(&vecs)
            .map(|(a, g)| a.iter().zip(g).map(|(x, y)| (*x as f64) * (*y as f64)).sum::<f64>())
            .collect();
        let min_cos = cos.iter().cloned().fold(f64::INFINITY, f64::min);
        let mean_cos = cos.iter().sum::<f64>() / cos.len().max(1) as f64;
        for &bs in &b.batch_sizes {
            let r = rate(&enc, bs)?;
            let cpu_r = cpu_rows.iter().find(|(c, _)| *c == bs).map(|x| x.1).unwrap_or(f64::NAN);
            gpu_rows.push(serde_json::json!({
                "math": math, "device": label, "batch": bs, "texts_per_s": r, "cpu_texts_per_s": cpu_r,
                "speedup_vs_cpu": r / cpu_r, "min_cosine_vs_cpu": min_cos, "mean_cosine_vs_cpu": mean_cos,
            }));
        }
    }
    let out = serde_json::json!({
        "encoder": cpu.info.encoder_id(), "texts": b.texts, "cpu_threads": rayon::current_num_threads(),
        "cpu": cpu_rows.iter().map(|(bs, r)| serde_json::json!({"batch": bs, "texts_per_s": r})).collect::<Vec<_>>(),
        "gpu": gpu_rows,
    });
    if b.json {
        println!("{out}");
        return Ok(());
    }
    println!(
        "text encoder {}, {} sentences: GPU vs CPU ({} threads)",
        cpu.info.encoder_id(),
        b.texts,
        rayon::current_num_threads()
    );
    println!(
        "{:>6} {:>6} {:>12} {:>12} {:>8} {:>10} {:>10}",
        "math", "batch", "GPU texts/s", "CPU texts/s", "speedup", "min cos", "mean cos"
    );
    for r in &gpu_rows {
        println!(
            "{:>6} {:>6} {:>12.1} {:>12.1} {:>8.2} {:>10.6} {:>10.6}",
            r["math"].as_str().unwrap_or(""),
            r["batch"],
            r["texts_per_s"].as_f64().unwrap_or(0.0),
            r["cpu_texts_per_s"].as_f64().unwrap_or(0.0),
            r["speedup_vs_cpu"].as_f64().unwrap_or(0.0),
            r["min_cosine_vs_cpu"].as_f64().unwrap_or(0.0),
            r["mean_cosine_vs_cpu"].as_f64().unwrap_or(0.0)
        );
    }
    Ok(())
}

fn embed_bench(b: EmbedBench) -> Result<()> {
    use agentdb_models::{registry, BatcherConfig, TextEncoder, TextService};
    let dir = b.model.clone().unwrap_or_else(|| registry::default_dir().join("all-minilm-l6-v2"));
    if let Some(device) = &b.device {
        return embed_gpu_bench(&b, &dir, device);
    }
    // The model with the CPU kernels `--backend` asks for.
    let load = || -> Result<TextEncoder> {
        let info = registry::read_model(&dir).map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut enc = TextEncoder::load(info, candle_core::Device::Cpu).map_err(|e| anyhow::anyhow!("{e}"))?;
        let models_dir = dir.parent().map(std::path::Path::to_path_buf).unwrap_or_default();
        let has_graph = dir.join(agentdb_models::text::ONNX_SUBDIR).exists();
        match b.backend.as_str() {
            "candle" => {}
            "auto" if !has_graph => {}
            "auto" | "onnx" => {
                enc.use_onnx(&models_dir).map_err(|e| anyhow::anyhow!("{e}"))?;
            }
            other => anyhow::bail!("--backend must be auto, onnx or candle, not '{other}'"),
        }
        Ok(enc)
    };
    let enc = load()?;
    let backend = enc.cpu_backend();
    let texts = sentences(b.texts);
    let threads = rayon::current_num_threads();
    enc.embed(&[texts[0].as_str()]).map_err(|e| anyhow::anyhow!("{e}"))?; // warm-up
    let mut direct = Vec::new();
    for &bs in &b.batch_sizes {
        let t = Instant::now();
        for chunk in texts.chunks(bs.max(1)) {
            let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
            enc.embed(&refs).map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        direct.push((bs, texts.len() as f64 / t.elapsed().as_secs_f64()));
    }
    let id = enc.info.encoder_id();
    drop(enc);
    let mut batched = Vec::new();
    for &bs in &b.batch_sizes {
        let svc2 = Arc::new(TextService::new(
            load()?,
            BatcherConfig { max_batch: bs.max(1), max_wait: Duration::from_millis(2), queue: 4096, workers: 1 },
        ));
        let next = Arc::new(AtomicUsize::new(0));
        let texts = Arc::new(texts.clone());
        let t = Instant::now();
        let handles: Vec<_> = (0..b.callers)
            .map(|_| {
                let (svc2, next, texts) = (svc2.clone(), next.clone(), texts.clone());
                std::thread::spawn(move || loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= texts.len() {
                        return;
                    }
                    svc2.batcher.submit_blocking(texts[i].clone()).expect("embed");
                })
            })
            .collect();
        for h in handles {
            h.join().map_err(|_| anyhow::anyhow!("caller panicked"))?;
        }
        let secs = t.elapsed().as_secs_f64();
        let st = &svc2.batcher.stats;
        let mean = st.items.load(Ordering::Relaxed) as f64 / st.batches.load(Ordering::Relaxed).max(1) as f64;
        batched.push((bs, texts.len() as f64 / secs, mean));
    }
    if b.json {
        println!(
            "{}",
            serde_json::json!({
                "encoder": id, "backend": backend, "texts": b.texts, "threads": threads, "callers": b.callers,
                "direct": direct.iter().map(|(bs, r)| serde_json::json!({"batch": bs, "texts_per_s": r})).collect::<Vec<_>>(),
                "dynamic_batcher": batched.iter().map(|(bs, r, m)| serde_json::json!({"max_batch": bs, "texts_per_s": r, "mean_batch": m})).collect::<Vec<_>>(),
            })
        );
        return Ok(());
    }
    println!("text encoder {id} ({backend}), {} sentences, CPU ({threads} threads)", b.texts);
    println!("{:>10} {:>16} {:>28} {:>12}", "batch", "direct texts/s", "batcher texts/s (callers)", "mean batch");
    for ((bs, d), (_, r, m)) in direct.iter().zip(&batched) {
        println!("{:>10} {:>16.1} {:>22.1} ({:>3}) {:>12.1}", bs, d, r, b.callers, m);
    }
    Ok(())
}

fn gpu_image_bench(b: GpuImageBench) -> Result<()> {
    use agentdb_kernels::preprocess::{GpuPreprocess, ImageRef, PreprocessParams};
    use agentdb_models::image::{decode_image, preprocess, EfficientNet, ImageLimits, RgbImage};
    use agentdb_models::registry;
    use rayon::prelude::*;
    let e = |e: agentdb_models::Error| anyhow::anyhow!("{e}");
    let dir = b.model.clone().unwrap_or_else(|| registry::default_dir().join("efficientnet-lite0"));
    let load = || -> Result<EfficientNet> { EfficientNet::load(registry::read_model(&dir).map_err(e)?).map_err(e) };
    // Decoded images: photographs, or deterministic synthetic scenes.
    let images: Vec<RgbImage> = match &b.photos {
        Some(d) => {
            let mut v = Vec::new();
            for p in std::fs::read_dir(d)?.flatten().filter(|p| p.path().is_file()) {
                if let Ok(img) = decode_image(&std::fs::read(p.path())?, ImageLimits::default()) {
                    v.push(img);
                }
            }
            anyhow::ensure!(!v.is_empty(), "no decodable images in {}", d.display());
            (0..b.images).map(|i| v[i % v.len()].clone()).collect()
        }
        None => (0..b.images)
            .map(|i| {
                let mut px = Vec::with_capacity(640 * 480 * 3);
                for y in 0..480u32 {
                    for x in 0..640u32 {
                        let t = (x * 3 + y * 5 + (i as u32) * 17) ^ (x * y / 97);
                        px.extend([(t % 251) as u8, ((x + i as u32 * 7) % 256) as u8, ((y * 2 + t / 3) % 256) as u8]);
                    }
                }
                RgbImage::from_raw(640, 480, px).expect("640x480x3 bytes")
            })
            .collect(),
    };
    // Preprocessing: the CPU path the server runs (image-rs, rayon over images) vs the kernel.
    let t = Instant::now();
    let inputs: Vec<Vec<f32>> = images.par_iter().map(preprocess).collect();
    let cpu_pre = images.len() as f64 / t.elapsed().as_secs_f64();
    let pre = GpuPreprocess::new(b.gpu).map_err(anyhow::Error::msg)?;
    let refs: Vec<ImageRef> =
        images.iter().map(|i| ImageRef { width: i.width(), height: i.height(), rgb: i.as_raw() }).collect();
    pre.run(&refs[..1], &PreprocessParams::default()).map_err(anyhow::Error::msg)?; // warm-up
    let t = Instant::now();
    let gpu_in = pre.run(&refs, &PreprocessParams::default()).map_err(anyhow::Error::msg)?;
    let gpu_pre = images.len() as f64 / t.elapsed().as_secs_f64();
    let pre_diff = inputs.iter().flatten().zip(&gpu_in).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    // The network.
    let rate = |net: &EfficientNet, bs: usize| -> Result<f64> {
        net.logits(&inputs[..bs.min(inputs.len())]).map_err(e)?; // warm-up
        let t = Instant::now();
        for chunk in inputs.chunks(bs.max(1)) {
            net.logits(chunk).map_err(e)?;
        }
        Ok(inputs.len() as f64 / t.elapsed().as_secs_f64())
    };
    let cpu = load()?;
    let want = cpu.logits(&inputs).map_err(e)?;
    let cpu_rows: Vec<(usize, f64)> =
        b.batch_sizes.iter().map(|&bs| Ok((bs, rate(&cpu, bs)?))).collect::<Result<_>>()?;
    let argmax = |v: &[f32]| (0..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b])).unwrap_or(0);
    let mut rows = Vec::new();
    for math in &b.math {
        let mut net = load()?;
        let label = net.use_gpu(b.gpu, math).map_err(e)?;
        let got = net.logits(&inputs).map_err(e)?;
        let same_top1 =
            want.iter().zip(&got).filter(|(a, b)| argmax(a) == argmax(b)).count() as f64 / want.len() as f64;
        let max_diff = want.iter().flatten().zip(got.iter().flatten()).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        for &bs in &b.batch_sizes {
            let r = rate(&net, bs)?;
            let c = cpu_rows.iter().find(|(x, _)| *x == bs).map(|x| x.1).unwrap_or(f64::NAN);
            rows.push(serde_json::json!({
                "math": math, "device": label, "batch": bs, "images_per_s": r, "cpu_images_per_s": c,
                "speedup_vs_cpu": r / c, "top1_agreement": same_top1, "max_abs_logit_diff": max_diff,
            }));
        }
    }
    let out = serde_json::json!({
        "model": cpu.info.encoder_id(), "images": images.len(), "cpu_threads": rayon::current_num_threads(),
        "preprocess": {"cpu_images_per_s": cpu_pre, "gpu_images_per_s": gpu_pre, "max_abs_diff": pre_diff,
                       "input": format!("{}x{}", images[0].width(), images[0].height())},
        "cpu": cpu_rows.iter().map(|(bs, r)| serde_json::json!({"batch": bs, "images_per_s": r})).collect::<Vec<_>>(),
        "gpu": rows,
    });
    if b.json {
        println!("{out}");
        return Ok(());
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

fn gpu_bench(b: GpuBench) -> Result<()> {
    use agentdb_kernels::gpu::{round_f16, GpuTopK, Precision};
    use agentdb_kernels::{topk_exact, Candidates, Distance};
    use rand::Rng;
    let gpu = GpuTopK::new(b.gpu).map_err(|e| anyhow::anyhow!("GPU {}: {e}", b.gpu))?;
    let precisions: Vec<Precision> = b
        .precision
        .iter()
        .map(|p| Precision::parse(p))
        .collect::<std::result::Result<_, _>>()
        .map_err(anyhow::Error::msg)?;
    let gen = |rows: usize, seed: u64| -> Vec<f32> {
        use rand::SeedableRng;
        let mut r = rand::rngs::StdRng::seed_from_u64(seed);
        (0..rows * b.dim).map(|_| r.random_range(-1.0f32..1.0)).collect()
    };
    let base = gen(b.n, 1);
    let mut rows = Vec::new();
    let mut uploads = serde_json::Map::new();
    for &p in &precisions {
        let t = Instant::now();
        let resident = gpu.upload_as(&base, b.dim, p).map_err(|e| anyhow::anyhow!("{e}"))?;
        uploads.insert(p.name().into(), serde_json::json!(t.elapsed().as_secs_f64()));
        // What the device holds, for the parity check.
        let held = match p {
            Precision::F32 => None,
            Precision::F16 => Some(round_f16(&base)),
        };
        let bytes = (b.n * b.dim * p.bytes()) as f64;
        for &bs in &b.batches {
            let q = gen(bs, 100 + bs as u64);
            let first = gpu.search(&resident, &q, b.k, Distance::InnerProduct).map_err(|e| anyhow::anyhow!("{e}"))?;
            // Parity on up to 4 queries against the CPU kernel over the same values.
            let nq = bs.min(4);
            let (qh, bh) = match &held {
                None => (q[..nq * b.dim].to_vec(), &base),
                Some(h) => (round_f16(&q[..nq * b.dim]), h),
            };
            let cpu = topk_exact(&qh, bh, b.dim, Candidates::All, b.k, Distance::InnerProduct);
            let agree = cpu
                .iter()
                .zip(&first)
                .all(|(c, g)| c.iter().zip(g).all(|(x, y)| (x.score - y.score).abs() <= 1e-3 * (1.0 + x.score.abs())));
            let mut times = Vec::new();
            let t = Instant::now();
            while t.elapsed().as_secs_f64() < b.seconds || times.len() < 3 {
                let t1 = Instant::now();
                gpu.search(&resident, &q, b.k, Distance::InnerProduct).map_err(|e| anyhow::anyhow!("{e}"))?;
                times.push(t1.elapsed().as_secs_f64());
            }
            times.sort_by(f64::total_cmp);
            let median = times[times.len() / 2];
            let qps = bs as f64 / median;
            let roofline_qps = b.bandwidth_gbs * 1e9 / bytes * bs as f64;
            rows.push(serde_json::json!({
                "precision": p.name(), "batch": bs, "qps": qps, "ms_per_batch": median * 1e3,
                "reps": times.len(), "effective_gbs": bytes / median / 1e9, "roofline_qps": roofline_qps,
                "fraction_of_roofline": qps / roofline_qps, "matches_cpu": agree,
            }));
        }
    }
    // CPU baseline in the same run: batch 64 through the exact CPU kernel.
    let cpu_qps = if b.no_cpu {
        None
    } else {
        let q = gen(64, 7);
        let t = Instant::now();
        topk_exact(&q, &base, b.dim, Candidates::All, b.k, Distance::InnerProduct);
        Some(64.0 / t.elapsed().as_secs_f64())
    };
    let out = serde_json::json!({
        "gpu": gpu.info.name, "n": b.n, "dim": b.dim, "k": b.k, "upload_seconds": uploads,
        "bandwidth_gbs": b.bandwidth_gbs,
        "cpu_threads": rayon::current_num_threads(), "cpu_qps_batch64_fp32": cpu_qps, "rows": rows,
    });
    if b.json {
        println!("{out}");
        return Ok(());
    }
    println!(
        "GPU exact top-{} over {} x {} on {} (roofline at {} GB/s)",
        b.k, b.n, b.dim, gpu.info.name, b.bandwidth_gbs
    );
    println!(
        "{:>6} {:>6} {:>12} {:>10} {:>10} {:>14} {:>9} {:>8}",
        "prec", "batch", "QPS", "ms/batch", "GB/s", "roofline QPS", "fraction", "= CPU"
    );
    for r in &rows {
        println!(
            "{:>6} {:>6} {:>12.1} {:>10.3} {:>10.1} {:>14.1} {:>9.3} {:>8}",
            r["precision"].as_str().unwrap_or(""),
            r["batch"],
            r["qps"].as_f64().unwrap_or(0.0),
            r["ms_per_batch"].as_f64().unwrap_or(0.0),
            r["effective_gbs"].as_f64().unwrap_or(0.0),
            r["roofline_qps"].as_f64().unwrap_or(0.0),
            r["fraction_of_roofline"].as_f64().unwrap_or(0.0),
            r["matches_cpu"]
        );
    }
    if let Some(c) = cpu_qps {
        println!("CPU exact kernel, fp32, batch 64, {} threads: {c:.2} QPS", rayon::current_num_threads());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::read_npy_f32;

    fn npy(header: &str, body: &[u8]) -> Vec<u8> {
        let mut h = header.to_string();
        while !(10 + h.len() + 1).is_multiple_of(64) {
            h.push(' ');
        }
        h.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(h.len() as u16).to_le_bytes());
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn reads_float32_matrices_and_names_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.npy");
        let body: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0].iter().flat_map(|x| x.to_le_bytes()).collect();
        std::fs::write(&p, npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", &body)).unwrap();
        assert_eq!(read_npy_f32(&p).unwrap(), (2, 3, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));
        for (header, body, why) in [
            ("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", &body[..], "dtype"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 4), }", &body[..], "size"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }", &body[..], "two-dimensional"),
        ] {
            std::fs::write(&p, npy(header, body)).unwrap();
            let e = read_npy_f32(&p).unwrap_err().to_string();
            assert!(e.contains(why) && e.contains("m.npy"), "{e}");
        }
        std::fs::write(&p, b"not numpy").unwrap();
        assert!(read_npy_f32(&p).unwrap_err().to_string().contains("magic"));
    }
}
