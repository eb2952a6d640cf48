//! Exact search on an accelerator. The engine asks an [`ExactAccelerator`] for the
//! candidate rows of a sealed segment and does the rest itself (deleted and filtered
//! rows, exact fp32 re-scoring, the merge with other sources), so an accelerator only
//! ever narrows the rows and never decides a score.
//!
//! [`GpuAccelerator`] (feature `cuda`) keeps segments' vectors resident on the GPU
//! (fp16 or fp32) within a memory budget: the least recently searched segments are
//! evicted to make room; a segment larger than the whole budget stays on the CPU, with
//! a log line saying so; dropped segments (merged, compacted, collection dropped) are
//! freed on the next search. Concurrent searches are combined: whichever caller holds
//! the GPU runs every pending query of a segment as one GEMM ([`crate::combine`]).

use crate::segment::Segment;
use agentdb_kernels::Distance;
use std::sync::Arc;

/// Device memory an accelerator holds, for metrics and `status`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AcceleratorMemory {
    /// Bytes of vectors (and norms) resident on the device.
    pub resident_bytes: u64,
    pub resident_segments: u64,
    /// The budget resident vectors may use.
    pub budget_bytes: u64,
    pub device_free_bytes: u64,
    pub device_total_bytes: u64,
}

pub trait ExactAccelerator: Send + Sync + std::fmt::Debug {
    /// The `fetch` best rows of `seg`'s vectors in space `space` for each query (row
    /// indices into the segment, best first, deleted rows included), or `None` when
    /// this segment is not searched here (too small, too large, device error): the
    /// caller then searches on the CPU.
    fn candidates(
        &self,
        seg: &Arc<Segment>,
        space: usize,
        dim: usize,
        queries: &[f32],
        fetch: usize,
        distance: Distance,
    ) -> Option<Vec<Vec<u32>>>;

    /// The most rows [`ExactAccelerator::candidates`] returns per query.
    fn max_fetch(&self) -> usize;

    fn memory(&self) -> AcceleratorMemory;

    /// e.g. `cuda:0 (NVIDIA H100, fp16)`.
    fn describe(&self) -> String;
}

pub use gpu::{GpuAccelerator, GpuAcceleratorConfig};

mod gpu {
    use super::*;
    use agentdb_kernels::gpu::{GpuBase, GpuTopK, Precision, MAX_GPU_K};
    use parking_lot::Mutex;
    use std::collections::{HashMap, HashSet};
    use std::sync::Weak;

    #[derive(Debug, Clone)]
    pub struct GpuAcceleratorConfig {
        pub ordinal: usize,
        pub precision: Precision,
        /// Share of the device memory free at start that resident vectors may use.
        pub memory_fraction: f64,
        /// Segments with fewer rows are searched on the CPU (launch overhead wins).
        pub min_rows: usize,
    }

    struct Entry {
        seg: Weak<Segment>,
        base: GpuBase,
        last_used: u64,
    }

    #[derive(Default)]
    struct Cache {
        entries: HashMap<(u64, usize), Entry>,
        /// Segments (uid, space) that do not fit the budget at all (logged once).
        too_big: HashSet<(u64, usize)>,
        clock: u64,
        resident: usize,
    }

    pub struct GpuAccelerator {
        cfg: GpuAcceleratorConfig,
        budget: usize,
        /// One stream; concurrent searches are combined into batches (`combiner`).
        gpu: Mutex<GpuTopK>,
        combiner: crate::combine::Combiner<Job, Rows>,
        cache: Mutex<Cache>,
        name: String,
        total: usize,
    }

    impl std::fmt::Debug for GpuAccelerator {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.describe())
        }
    }

    impl GpuAccelerator {
        pub fn new(cfg: GpuAcceleratorConfig) -> Result<GpuAccelerator, String> {
            if !(cfg.memory_fraction > 0.0 && cfg.memory_fraction <= 1.0) {
                return Err(format!("gpu memory fraction {} is not in (0, 1]", cfg.memory_fraction));
            }
            let gpu = GpuTopK::new(cfg.ordinal)?;
            let (free, total) = gpu.mem_info()?;
            let budget = (free as f64 * cfg.memory_fraction) as usize;
            let name = gpu.info.name.clone();
            tracing::info!(
                gpu = %name, budget_mib = budget >> 20, free_mib = free >> 20, precision = cfg.precision.name(),
                "GPU exact search: sealed segments of Flat spaces (and exact searches) run on the GPU"
            );
            Ok(GpuAccelerator {
                cfg,
                budget,
                gpu: Mutex::new(gpu),
                combiner: Default::default(),
                cache: Mutex::new(Cache::default()),
                name,
                total,
            })
        }

        /// Free the vectors of segments that no longer exist.
        fn sweep(cache: &mut Cache) {
            let dead: Vec<(u64, usize)> =
                cache.entries.iter().filter(|(_, e)| e.seg.strong_count() == 0).map(|(k, _)| *k).collect();
            for k in dead {
                if let Some(e) = cache.entries.remove(&k) {
                    cache.resident -= e.base.bytes();
                    tracing::debug!(
                        segment_uid = k.0,
                        bytes = e.base.bytes(),
                        "GPU: freed a dropped segment's vectors"
                    );
                }
            }
        }
    }

    /// One caller's search, run in a batch with the others pending (`Combiner`).
    struct Job {
        seg: Arc<Segment>,
        space: usize,
        dim: usize,
        queries: Vec<f32>,
        fetch: usize,
        distance: Distance,
    }

    type Rows = Option<Vec<Vec<u32>>>;

    impl GpuAccelerator {
        /// Make `seg`'s vectors of `space` resident (evicting the least recently used
        /// segments to fit the budget); false when they cannot be (logged).
        fn ensure_resident(
            &self,
            gpu: &GpuTopK,
            cache: &mut Cache,
            seg: &Arc<Segment>,
            space: usize,
            dim: usize,
        ) -> bool {
            let key = (seg.uid, space);
            cache.clock += 1;
            let now = cache.clock;
            if let Some(e) = cache.entries.get_mut(&key) {
                e.last_used = now;
                return true;
            }
            if cache.too_big.contains(&key) {
                return false;
            }
            let rows = seg.rows();
            let need = rows * dim * self.cfg.precision.bytes() + rows * 4;
            if need > self.budget {
                tracing::warn!(
                    segment = seg.id,
                    rows,
                    bytes = need,
                    budget = self.budget,
                    "GPU: segment is larger than the GPU memory budget; it is searched on the CPU"
                );
                cache.too_big.insert(key);
                return false;
            }
            while cache.resident + need > self.budget {
                let Some((&victim, _)) = cache.entries.iter().min_by_key(|(_, e)| e.last_used) else { break };
                if let Some(e) = cache.entries.remove(&victim) {
                    cache.resident -= e.base.bytes();
                    tracing::info!(
                        segment_uid = victim.0,
                        bytes = e.base.bytes(),
                        "GPU: evicted the least recently searched segment to make room"
                    );
                }
            }
            let t = std::time::Instant::now();
            match gpu.upload_as(&seg.vectors[space], dim, self.cfg.precision) {
                Ok(base) => {
                    tracing::info!(
                        segment = seg.id,
                        rows,
                        bytes = base.bytes(),
                        ms = t.elapsed().as_millis() as u64,
                        "GPU: segment vectors uploaded"
                    );
                    cache.resident += base.bytes();
                    cache.entries.insert(key, Entry { seg: Arc::downgrade(seg), base, last_used: now });
                    true
                }
                Err(e) => {
                    tracing::warn!(segment = seg.id, error = %e, "GPU: upload failed; searching on the CPU");
                    false
                }
            }
        }

        /// Run pending searches: one GEMM per (segment, space, metric) for all their queries.
        fn run_batch(&self, gpu: &mut GpuTopK, jobs: Vec<Job>) -> Vec<Rows> {
            let mut out: Vec<Rows> = vec![None; jobs.len()];
            let mut cache = self.cache.lock();
            Self::sweep(&mut cache);
            let mut groups: Vec<((u64, usize, bool), Vec<usize>)> = Vec::new();
            for (i, j) in jobs.iter().enumerate() {
                let key = (j.seg.uid, j.space, j.distance == Distance::L2);
                match groups.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, v)) => v.push(i),
                    None => groups.push((key, vec![i])),
                }
            }
            for ((uid, space, _), idx) in groups {
                let first = &jobs[idx[0]];
                if !self.ensure_resident(gpu, &mut cache, &first.seg, space, first.dim) {
                    continue;
                }
                let Some(entry) = cache.entries.get(&(uid, space)) else { continue };
                let all: Vec<f32> = idx.iter().flat_map(|&i| jobs[i].queries.iter().copied()).collect();
                let fetch = idx.iter().map(|&i| jobs[i].fetch).max().unwrap_or(1);
                match gpu.search(&entry.base, &all, fetch, first.distance) {
                    Ok(res) => {
                        let mut res = res.into_iter();
                        for &i in &idx {
                            let nq = jobs[i].queries.len() / jobs[i].dim.max(1);
                            out[i] = Some(
                                res.by_ref()
                                    .take(nq)
                                    .map(|v| v.into_iter().take(jobs[i].fetch).map(|n| n.row).collect())
                                    .collect(),
                            );
                        }
                    }
                    Err(e) => {
                        tracing::warn!(segment = first.seg.id, error = %e, "GPU search failed; searching on the CPU")
                    }
                }
            }
            out
        }
    }

    impl ExactAccelerator for GpuAccelerator {
        fn candidates(
            &self,
            seg: &Arc<Segment>,
            space: usize,
            dim: usize,
            queries: &[f32],
            fetch: usize,
            distance: Distance,
        ) -> Option<Vec<Vec<u32>>> {
            let rows = seg.rows();
            if rows < self.cfg.min_rows || fetch == 0 || fetch > MAX_GPU_K {
                return None;
            }
            // fp16 scores can reorder near-ties: fetch a margin; the engine re-scores in fp32.
            let fetch = match self.cfg.precision {
                Precision::F16 => (fetch * 2).max(fetch + 16),
                Precision::F32 => fetch,
            }
            .min(MAX_GPU_K)
            .min(rows);
            let job = Job { seg: seg.clone(), space, dim, queries: queries.to_vec(), fetch, distance };
            // Concurrent searches share one GEMM: whoever holds the GPU runs them all.
            self.combiner.run(job, &self.gpu, |gpu, jobs| self.run_batch(gpu, jobs))
        }

        fn max_fetch(&self) -> usize {
            MAX_GPU_K
        }

        fn memory(&self) -> AcceleratorMemory {
            let (resident, segments) = {
                let c = self.cache.lock();
                (c.resident, c.entries.len())
            };
            let (free, total) = self.gpu.lock().mem_info().unwrap_or((0, self.total));
            AcceleratorMemory {
                resident_bytes: resident as u64,
                resident_segments: segments as u64,
                budget_bytes: self.budget as u64,
                device_free_bytes: free as u64,
                device_total_bytes: total as u64,
            }
        }

        fn describe(&self) -> String {
            format!("cuda:{} ({}, {})", self.cfg.ordinal, self.name, self.cfg.precision.name())
        }
    }
}
