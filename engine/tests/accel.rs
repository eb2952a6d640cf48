//! The engine's accelerator path (what a GPU serves): a sealed segment's candidate rows
//! come from the accelerator, and deletions, filters, fp32 re-scoring and the merge
//! stay in the engine. Here the accelerator is the CPU twin of the GPU kernel over
//! fp16-rounded vectors (`topk_blocked_f16`, what `GpuAccelerator` computes on the
//! device), so results must equal a collection searched without one.

use agentdb_engine::accel::{AcceleratorMemory, ExactAccelerator};
use agentdb_engine::segment::Segment;
use agentdb_engine::*;
use agentdb_kernels::Distance;
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[derive(Debug, Default)]
struct TwinAccelerator {
    calls: AtomicUsize,
}

impl ExactAccelerator for TwinAccelerator {
    fn candidates(
        &self,
        seg: &Arc<Segment>,
        space: usize,
        dim: usize,
        queries: &[f32],
        fetch: usize,
        distance: Distance,
    ) -> Option<Vec<Vec<u32>>> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let base = &seg.vectors[space];
        // As GpuAccelerator does for fp16: fetch a margin, the engine re-scores.
        let fetch = (fetch * 2).max(fetch + 16).min(seg.rows());
        let res = agentdb_kernels::gpu::topk_blocked_f16(queries, base, dim, fetch, distance);
        Some(res.into_iter().map(|v| v.into_iter().map(|n| n.row).collect()).collect())
    }
    fn max_fetch(&self) -> usize {
        1024
    }
    fn memory(&self) -> AcceleratorMemory {
        AcceleratorMemory::default()
    }
    fn describe(&self) -> String {
        "cpu twin".into()
    }
}

fn spec(index: &str, metric: Metric) -> CollectionSpec {
    CollectionSpec {
        keyword: None,
        name: "c".into(),
        spaces: vec![SpaceSpec { name: "v".into(), dim: 24, metric, index: index.into(), encoder: None }],
    }
}

fn build(
    dir: &std::path::Path,
    index: &str,
    metric: Metric,
    acc: Option<Arc<dyn ExactAccelerator>>,
) -> Arc<Collection> {
    let opts = CollectionOptions { flush_rows: 1_500, exact_threshold: 64, accelerator: acc, ..Default::default() };
    let c = Collection::create(dir, spec(index, metric), opts).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    for chunk in 0..5 {
        let items = (0..1_000)
            .map(|j| {
                let i = chunk * 1_000 + j;
                let v: Vec<f32> = (0..24).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect();
                Item {
                    id: format!("i{i}"),
                    vectors: BTreeMap::from([("v".to_string(), v)]),
                    payload: json!({"g": i % 3, "rare": i % 500 == 0}),
                }
            })
            .collect();
        c.upsert(items).unwrap();
    }
    c.flush().unwrap();
    // Deletions in sealed segments: the accelerator still returns those rows.
    let gone: Vec<String> = (0..200).map(|i| format!("i{}", i * 7)).collect();
    c.delete(&gone).unwrap();
    Arc::new(c)
}

fn hits(c: &Collection, q: &[f32], filter: Option<&Filter>, exact: bool) -> Vec<(String, f32)> {
    c.search(SearchRequest {
        space: "v",
        queries: vec![q.to_vec()],
        k: 10,
        filter,
        params: SearchParams { exact, ..Default::default() },
        with_payload: false,
        with_vectors: false,
    })
    .unwrap()
    .remove(0)
    .into_iter()
    .map(|h| (h.id, h.score))
    .collect()
}

#[test]
fn accelerated_search_equals_the_cpu_search() {
    for (index, metric) in [("Flat", Metric::Cosine), ("Flat", Metric::L2), ("HNSW16", Metric::InnerProduct)] {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let twin = Arc::new(TwinAccelerator::default());
        let fast = build(a.path(), index, metric, Some(twin.clone()));
        let plain = build(b.path(), index, metric, None);
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        let g1 = filter::parse("g = 1").unwrap();
        let rare = filter::parse("rare = true").unwrap();
        // Excludes a few rows per segment: still on the accelerator, filtered here.
        let common = filter::parse("rare = false").unwrap();
        for _ in 0..20 {
            let q: Vec<f32> = (0..24).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect();
            // Exact searches always take the accelerator; Flat spaces take it for ANN too.
            for (filter, exact) in
                [(None, true), (None, false), (Some(&common), false), (Some(&rare), true), (Some(&g1), true)]
            {
                if !exact && index != "Flat" {
                    continue;
                }
                let (x, y) = (hits(&fast, &q, filter, exact), hits(&plain, &q, filter, exact));
                assert_eq!(x.len(), y.len(), "{index} {metric:?} filter {filter:?}");
                for (h1, h2) in x.iter().zip(&y) {
                    assert_eq!(h1.0, h2.0, "{index} {metric:?} filter {filter:?}: {x:?} vs {y:?}");
                    assert_eq!(h1.1, h2.1, "scores are the engine's fp32 scores");
                }
                let deleted = |id: &str| id[1..].parse::<usize>().is_ok_and(|n| n % 7 == 0 && n < 1_400);
                assert!(x.iter().all(|(id, _)| !deleted(id)), "deleted rows never come back: {x:?}");
            }
        }
        assert!(twin.calls.load(Ordering::Relaxed) > 0, "{index}: the accelerator was used");
    }
}
