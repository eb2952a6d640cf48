//! Criterion micro-benchmarks for AgentDB's index and collection paths.
//!
//! Groups (all data is 384-d, unit-norm, seeded; see `agentdb_benches`). Indexes use the
//! engine's `IndexTuning` defaults (so HNSW's efConstruction is whatever collections use)
//! with efSearch pinned to 128:
//! - `index_build`: building FAISS `Flat`, `HNSW32` and `IVF64,Flat` over 10k vectors.
//! - `search_k10`: top-10 over 20k vectors: the exact CPU kernel, FAISS `Flat` and FAISS
//!   `HNSW32` (efSearch 128) for one query, and the kernel and `Flat` for a batch of 64.
//! - `filtered_search`: a flushed `HNSW32` collection of 20k items with payload
//!   `{"bucket": i % 100}`, searched with no filter and with filters of 50%, 5% and 1%
//!   selectivity. With the default options a 50% filter goes through the HNSW graph with a
//!   row selector, while 5% and 1% (at most `exact_threshold` = 2048 candidates, or fewer
//!   than 1/20 of the rows) take the exact-scan fallback.
//! - `upsert`: `Collection::upsert` of 100-item batches; every call appends one WAL record
//!   and fsyncs it.
//!
//! `cargo bench -p agentdb-benches` runs everything (add `-- --quick` for a faster, rougher
//! pass, or a name filter such as `-- search_k10`). Fixtures are built lazily, once per
//! group, inside the first benchmark that needs them, so a name filter skips the set-up of
//! the groups it excludes; they are dropped (temp directories removed) when the group ends.
//!
//! In criterion's test mode (`cargo test --benches`, as CI runs it, or `-- --test`) each
//! benchmark runs once as a smoke test, and the row counts are cut to a quarter so that the
//! HNSW builds stay cheap; every code path (including the filtered-search selector path,
//! which needs more than `exact_threshold` candidates) is still exercised.

use agentdb_benches::{unit_vectors, DIM};
use agentdb_engine::index::{AnnIndex, IndexTuning};
use agentdb_engine::{
    filter, Collection, CollectionOptions, CollectionSpec, Item, Metric, SearchParams, SearchRequest, SpaceSpec,
};
use agentdb_kernels::{topk_exact, Candidates, Distance};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput};
use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// Results per query.
const K: usize = 10;
/// Rows indexed by `index_build` (see [`rows`]).
const BUILD_ROWS: usize = 10_000;
/// Rows searched by `search_k10` and `filtered_search` (see [`rows`]).
const SEARCH_ROWS: usize = 20_000;
/// Query pool; single-query benchmarks cycle through it so no one query is cached.
const QUERY_POOL: usize = 256;
/// Queries per call in the batch benchmarks.
const BATCH: usize = 64;
/// Items per `upsert` call.
const UPSERT_BATCH: usize = 100;
/// Distinct vectors cycled through by the `upsert` benchmark.
const UPSERT_POOL: usize = 1_000;

const SEED_BUILD: u64 = 1;
const SEED_BASE: u64 = 2;
const SEED_QUERIES: u64 = 3;
const SEED_UPSERT: u64 = 4;

/// Whether criterion runs in test mode: each benchmark once, nothing measured. Mirrors
/// criterion's own rule: without `--bench` (what `cargo bench` passes), or with `--test`.
fn smoke_test() -> bool {
    static SMOKE: OnceLock<bool> = OnceLock::new();
    *SMOKE.get_or_init(|| {
        let args: Vec<String> = std::env::args().skip(1).collect();
        !args.iter().any(|a| a == "--bench") || args.iter().any(|a| a == "--test")
    })
}

/// Data size for `full` rows: all of them when benchmarking, a quarter in test mode.
fn rows(full: usize) -> usize {
    if smoke_test() {
        full / 4
    } else {
        full
    }
}

fn tuning() -> IndexTuning {
    IndexTuning { hnsw_ef_search: 128, ..IndexTuning::default() }
}

fn build_index(desc: &str, vectors: &[f32]) -> AnnIndex {
    let ix = AnnIndex::build(desc, DIM, Metric::Cosine, vectors, tuning()).expect("build index");
    // `build` silently falls back to Flat when a description cannot be trained; that
    // would make the numbers lie.
    assert_eq!(ix.kind, desc, "index fell back");
    ix
}

/// Row `i` of a row-major pool of vectors, wrapping around.
fn row(pool: &[f32], i: usize) -> &[f32] {
    let i = i % (pool.len() / DIM);
    &pool[i * DIM..(i + 1) * DIM]
}

fn index_build(c: &mut Criterion) {
    let base: OnceCell<Vec<f32>> = OnceCell::new();
    let mut g = c.benchmark_group("index_build");
    // One build is milliseconds (Flat) to seconds (HNSW32): a few flat samples suffice.
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Elements(rows(BUILD_ROWS) as u64));
    for desc in ["Flat", "HNSW32", "IVF64,Flat"] {
        g.bench_function(BenchmarkId::from_parameter(desc), |b| {
            let base = base.get_or_init(|| unit_vectors(rows(BUILD_ROWS), DIM, SEED_BUILD));
            b.iter(|| build_index(desc, black_box(base)));
        });
    }
    g.finish();
}

fn search_k10(c: &mut Criterion) {
    let (base_cell, queries_cell) = (OnceCell::<Vec<f32>>::new(), OnceCell::<Vec<f32>>::new());
    let (flat_cell, hnsw_cell) = (OnceCell::<AnnIndex>::new(), OnceCell::<AnnIndex>::new());
    let base = || base_cell.get_or_init(|| unit_vectors(rows(SEARCH_ROWS), DIM, SEED_BASE)).as_slice();
    let queries = || queries_cell.get_or_init(|| unit_vectors(QUERY_POOL, DIM, SEED_QUERIES)).as_slice();
    let flat = || flat_cell.get_or_init(|| build_index("Flat", base()));
    let hnsw = || hnsw_cell.get_or_init(|| build_index("HNSW32", base()));

    let mut g = c.benchmark_group("search_k10");
    g.sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(2));

    g.throughput(Throughput::Elements(1));
    g.bench_function(BenchmarkId::new("exact_kernel", 1), |b| {
        let (base, queries) = (base(), queries());
        let mut i = 0;
        b.iter(|| {
            i += 1;
            topk_exact(row(queries, i), base, DIM, Candidates::All, K, Distance::InnerProduct)
        });
    });
    g.bench_function(BenchmarkId::new("faiss_flat", 1), |b| {
        let (ix, queries) = (flat(), queries());
        let mut i = 0;
        b.iter(|| {
            i += 1;
            ix.search(row(queries, i), K, None, 0).expect("search")
        });
    });
    g.bench_function(BenchmarkId::new("faiss_hnsw32_ef128", 1), |b| {
        let (ix, queries) = (hnsw(), queries());
        assert_eq!(ix.ef_search(), 128);
        let mut i = 0;
        b.iter(|| {
            i += 1;
            ix.search(row(queries, i), K, None, 0).expect("search")
        });
    });

    // A batch takes 50-200 ms: fewer, longer samples.
    g.throughput(Throughput::Elements(BATCH as u64)).sample_size(10).measurement_time(Duration::from_secs(3));
    g.bench_function(BenchmarkId::new("exact_kernel", BATCH), |b| {
        let (base, batch) = (base(), &queries()[..BATCH * DIM]);
        b.iter(|| topk_exact(black_box(batch), base, DIM, Candidates::All, K, Distance::InnerProduct));
    });
    g.bench_function(BenchmarkId::new("faiss_flat", BATCH), |b| {
        let (ix, batch) = (flat(), &queries()[..BATCH * DIM]);
        b.iter(|| ix.search(black_box(batch), K, None, 0).expect("search"));
    });
    g.finish();
}

fn spec(index: &str) -> CollectionSpec {
    CollectionSpec {
        keyword: None,
        name: "bench".into(),
        spaces: vec![SpaceSpec {
            name: "v".into(),
            dim: DIM,
            metric: Metric::Cosine,
            index: index.into(),
            encoder: None,
        }],
    }
}

/// An item for the collection's only space.
fn item(id: String, vector: &[f32], bucket: usize) -> Item {
    Item {
        id,
        vectors: BTreeMap::from([(String::new(), vector.to_vec())]),
        payload: serde_json::json!({ "bucket": bucket }),
    }
}

fn open_collection(dir: &Path, index: &str) -> Collection {
    Collection::create(&dir.join("bench"), spec(index), CollectionOptions::default()).expect("create collection")
}

/// A collection of `rows(SEARCH_ROWS)` items, flushed into one HNSW32 segment. The collection
/// comes first so that it is dropped before its directory is removed.
fn filtered_fixture() -> (Collection, TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let col = open_collection(dir.path(), "HNSW32");
    let n = rows(SEARCH_ROWS);
    let base = unit_vectors(n, DIM, SEED_BASE);
    let vectors: Vec<&[f32]> = base.chunks(DIM).collect();
    for (c, chunk) in vectors.chunks(1_000).enumerate() {
        let items = chunk.iter().enumerate().map(|(j, v)| {
            let i = c * 1_000 + j;
            item(format!("item-{i}"), v, i % 100)
        });
        col.upsert(items.collect()).expect("upsert");
    }
    assert!(col.flush().expect("flush"), "nothing flushed");
    let info = col.info().expect("info");
    assert_eq!((info.count, info.unindexed, info.segments), (n as u64, 0, 1));
    (col, dir)
}

fn filtered_search(c: &mut Criterion) {
    let fixture: OnceCell<(Collection, TempDir)> = OnceCell::new();
    let queries: OnceCell<Vec<f32>> = OnceCell::new();
    let mut g = c.benchmark_group("filtered_search");
    g.sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(2));
    // (label, filter, share of the rows it allows)
    let cases: [(&str, Option<&str>, f64); 4] = [
        ("none", None, 1.0),
        ("50pct", Some("bucket < 50"), 0.5),
        ("5pct", Some("bucket < 5"), 0.05),
        ("1pct", Some("bucket = 7"), 0.01),
    ];
    for (label, expr, share) in cases {
        let parsed = expr.map(|e| filter::parse(e).expect("filter"));
        g.bench_function(BenchmarkId::new("hnsw32_k10", label), |b| {
            let (col, _) = fixture.get_or_init(filtered_fixture);
            let queries = queries.get_or_init(|| unit_vectors(QUERY_POOL, DIM, SEED_QUERIES));
            let matching = col.count(parsed.as_ref()).expect("count");
            assert_eq!(matching, (rows(SEARCH_ROWS) as f64 * share).round() as u64, "{label}");
            let search = |i: usize| {
                col.search(SearchRequest {
                    space: "",
                    queries: vec![row(queries, i).to_vec()],
                    k: K,
                    filter: parsed.as_ref(),
                    params: SearchParams::default(),
                    with_payload: false,
                    with_vectors: false,
                })
                .expect("search")
            };
            assert_eq!(search(0)[0].len(), K, "{label}: short result");
            let mut i = 0;
            b.iter(|| {
                i += 1;
                search(i)
            });
        });
    }
    g.finish();
}

fn upsert(c: &mut Criterion) {
    let pool: OnceCell<Vec<f32>> = OnceCell::new();
    let mut g = c.benchmark_group("upsert");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(UPSERT_BATCH as u64));
    g.bench_function(BenchmarkId::new("batch", UPSERT_BATCH), |b| {
        let pool = pool.get_or_init(|| unit_vectors(UPSERT_POOL, DIM, SEED_UPSERT));
        // A fresh collection per measurement bounds the write buffer and WAL to one
        // sample's worth of items; building the items is not timed.
        b.iter_custom(|iters| {
            let dir = tempfile::tempdir().expect("temp dir");
            let col = open_collection(dir.path(), "HNSW32");
            let mut spent = Duration::ZERO;
            for n in 0..iters as usize {
                let items: Vec<Item> = (0..UPSERT_BATCH)
                    .map(|j| {
                        let i = n * UPSERT_BATCH + j;
                        item(format!("item-{i}"), row(pool, i), i % 100)
                    })
                    .collect();
                let t = Instant::now();
                black_box(col.upsert(items).expect("upsert"));
                spent += t.elapsed();
            }
            drop(col);
            spent
        });
    });
    g.finish();
}

criterion_group!(benches, index_build, search_k10, filtered_search, upsert);
criterion_main!(benches);
