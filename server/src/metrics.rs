//! Prometheus metrics, rendered in the text exposition format at `/metrics` on the
//! HTTP listener. Request metrics come from the gRPC edge layer; collection, encoder and
//! process figures are read at scrape time.

use agentdb_engine::Database;
use agentdb_retrieval::Encoders;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Latency buckets (seconds).
const BUCKETS: [f64; 14] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// (name, type, help, value) of a per-collection gauge.
type Gauge = (&'static str, &'static str, &'static str, fn(&agentdb_engine::CollectionInfo) -> u64);
/// (name, help, value) of a per-collection counter.
type Counter = (&'static str, &'static str, fn(&agentdb_engine::collection::StatsSnapshot) -> u64);

#[derive(Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Default)]
pub struct Metrics {
    /// (method, grpc code) -> requests
    requests: Mutex<BTreeMap<(String, String), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    /// (status, media type) -> files
    ingest_files: Mutex<BTreeMap<(String, String), u64>>,
    pub ingest_items: AtomicU64,
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

impl Metrics {
    pub fn observe_request(&self, method: &str, code: &str, seconds: f64) {
        *self.requests.lock().entry((method.to_string(), code.to_string())).or_default() += 1;
        let mut l = self.latency.lock();
        let h = l.entry(method.to_string()).or_default();
        for (i, b) in BUCKETS.iter().enumerate() {
            if seconds <= *b {
                h.counts[i] += 1;
            }
        }
        h.sum += seconds;
        h.count += 1;
    }

    /// (count, latency sum in seconds) of one method so far.
    pub fn latency_totals(&self, method: &str) -> (u64, f64) {
        self.latency.lock().get(method).map_or((0, 0.0), |h| (h.count, h.sum))
    }

    /// (all requests, server-side errors) so far. Server-side: INTERNAL, UNAVAILABLE,
    /// DATA_LOSS, UNKNOWN, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED.
    pub fn error_totals(&self) -> (u64, u64) {
        let r = self.requests.lock();
        let all = r.values().sum();
        let bad = r
            .iter()
            .filter(|((_, c), _)| matches!(c.as_str(), "2" | "4" | "8" | "13" | "14" | "15"))
            .map(|(_, n)| n)
            .sum();
        (all, bad)
    }

    pub fn observe_ingest(&self, status: &str, media_type: &str, items: u64) {
        *self.ingest_files.lock().entry((status.to_string(), media_type.to_string())).or_default() += 1;
        self.ingest_items.fetch_add(items, Ordering::Relaxed);
    }

    pub fn render(&self, db: &Database, enc: &Encoders) -> String {
        let mut o = String::with_capacity(8192);
        let family = |o: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };

        family(&mut o, "agentdb_grpc_requests_total", "counter", "gRPC requests by method and status code.");
        for ((m, c), n) in self.requests.lock().iter() {
            let _ = writeln!(o, "agentdb_grpc_requests_total{{method=\"{}\",code=\"{}\"}} {n}", escape(m), escape(c));
        }
        family(
            &mut o,
            "agentdb_grpc_request_duration_seconds",
            "histogram",
            "gRPC request latency until the response head.",
        );
        for (m, h) in self.latency.lock().iter() {
            let m = escape(m);
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    o,
                    "agentdb_grpc_request_duration_seconds_bucket{{method=\"{m}\",le=\"{b}\"}} {}",
                    h.counts[i]
                );
            }
            let _ =
                writeln!(o, "agentdb_grpc_request_duration_seconds_bucket{{method=\"{m}\",le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(o, "agentdb_grpc_request_duration_seconds_sum{{method=\"{m}\"}} {}", h.sum);
            let _ = writeln!(o, "agentdb_grpc_request_duration_seconds_count{{method=\"{m}\"}} {}", h.count);
        }

        family(
            &mut o,
            "agentdb_ingest_files_total",
            "counter",
            "Files handled by ingestion, by outcome and detected media type.",
        );
        for ((s, t), n) in self.ingest_files.lock().iter() {
            let _ =
                writeln!(o, "agentdb_ingest_files_total{{status=\"{}\",media_type=\"{}\"}} {n}", escape(s), escape(t));
        }
        family(&mut o, "agentdb_ingest_items_total", "counter", "Items written by ingestion (text chunks, ...).");
        let _ = writeln!(o, "agentdb_ingest_items_total {}", self.ingest_items.load(Ordering::Relaxed));

        let infos = db.list();
        let per_collection: [Gauge; 6] = [
            ("agentdb_collection_items", "gauge", "Live items per collection.", |i| i.count),
            ("agentdb_collection_unindexed_items", "gauge", "Items not yet in an indexed segment.", |i| i.unindexed),
            ("agentdb_collection_segments", "gauge", "Segments per collection.", |i| i.segments),
            ("agentdb_collection_deleted_rows", "gauge", "Deleted rows awaiting compaction.", |i| i.deleted_rows),
            (
                "agentdb_collection_disk_bytes",
                "gauge",
                "Bytes on disk per collection (segments, WAL, manifest).",
                |i| i.disk_bytes,
            ),
            ("agentdb_wal_last_lsn", "gauge", "Last write-ahead log sequence number per collection.", |i| i.last_lsn),
        ];
        for (name, kind, help, get) in per_collection {
            family(&mut o, name, kind, help);
            for i in &infos {
                let _ = writeln!(o, "{name}{{collection=\"{}\"}} {}", escape(&i.name), get(i));
            }
        }
        family(&mut o, "agentdb_collection_vectors", "gauge", "Stored vectors per collection and space.");
        for i in &infos {
            for s in &i.spaces {
                let _ = writeln!(
                    o,
                    "agentdb_collection_vectors{{collection=\"{}\",space=\"{}\"}} {}",
                    escape(&i.name),
                    escape(&s.spec.name),
                    i.count
                );
            }
        }
        let stats: Vec<(String, agentdb_engine::collection::StatsSnapshot)> =
            db.collections().iter().map(|c| (c.name().to_string(), c.stats.snapshot())).collect();
        let counters: [Counter; 5] = [
            ("agentdb_flushes_total", "Write buffers sealed into indexed segments.", |s| s.flushes),
            ("agentdb_compactions_total", "Segment compactions.", |s| s.compactions),
            ("agentdb_items_upserted_total", "Items written by upserts.", |s| s.upserted),
            ("agentdb_items_deleted_total", "Items deleted.", |s| s.deleted),
            ("agentdb_searches_total", "Search queries answered (batch searches count each query).", |s| s.searches),
        ];
        for (name, help, get) in counters {
            family(&mut o, name, "counter", help);
            for (c, s) in &stats {
                let _ = writeln!(o, "{name}{{collection=\"{}\"}} {}", escape(c), get(s));
            }
        }

        // The families are always there (dashboards and rules name them); samples once
        // the text encoder is loaded (models load on first use).
        let text = enc.loaded().and_then(|e| e.text.as_ref());
        let stat = |f: fn(&agentdb_models::batcher::BatcherStats) -> u64| {
            text.map(|t| (escape(&t.encoder.info.manifest.name), f(&t.batcher.stats)))
        };
        for (name, kind, help, v) in [
            (
                "agentdb_encoder_batches_total",
                "counter",
                "Batches run by each encoder.",
                stat(|s| s.batches.load(Ordering::Relaxed)),
            ),
            (
                "agentdb_encoder_items_total",
                "counter",
                "Inputs embedded by each encoder.",
                stat(|s| s.items.load(Ordering::Relaxed)),
            ),
            (
                "agentdb_encoder_rejected_total",
                "counter",
                "Inputs refused because the encoder queue was full.",
                stat(|s| s.rejected.load(Ordering::Relaxed)),
            ),
            (
                "agentdb_encoder_queue_depth",
                "gauge",
                "Inputs waiting for each encoder.",
                stat(|s| s.queued.load(Ordering::Relaxed)),
            ),
        ] {
            family(&mut o, name, kind, help);
            if let Some((e, v)) = v {
                let _ = writeln!(o, "{name}{{encoder=\"{e}\"}} {v}");
            }
        }

        let p = process_stats();
        family(&mut o, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
        let _ = writeln!(o, "process_resident_memory_bytes {}", p.rss_bytes);
        family(&mut o, "process_cpu_seconds_total", "counter", "User and system CPU time in seconds.");
        let _ = writeln!(o, "process_cpu_seconds_total {}", p.cpu_seconds);
        family(&mut o, "process_open_fds", "gauge", "Open file descriptors.");
        let _ = writeln!(o, "process_open_fds {}", p.open_fds);
        let gpu = db.options().accelerator.as_ref().map(|a| a.memory()).unwrap_or_default();
        for (name, help, v) in [
            (
                "agentdb_gpu_memory_used_bytes",
                "GPU memory holding vectors (0: this server runs on the CPU).",
                gpu.resident_bytes,
            ),
            ("agentdb_gpu_memory_budget_bytes", "GPU memory vectors may use (gpu.memory_fraction).", gpu.budget_bytes),
            ("agentdb_gpu_resident_segments", "Segments whose vectors are on the GPU.", gpu.resident_segments),
            ("agentdb_gpu_device_free_bytes", "Free memory on the GPU, all users.", gpu.device_free_bytes),
            ("agentdb_gpu_device_total_bytes", "Total memory of the GPU.", gpu.device_total_bytes),
        ] {
            family(&mut o, name, "gauge", help);
            let _ = writeln!(o, "{name} {v}");
        }
        o
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct ProcessStats {
    pub rss_bytes: u64,
    pub cpu_seconds: f64,
    pub open_fds: u64,
}

pub fn process_stats() -> ProcessStats {
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let rss_bytes = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()))
        .map_or(0, |p| p * page);
    // Fields 14 and 15 (utime, stime) after the parenthesised command name.
    let cpu_seconds = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some((f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) / ticks)
        })
        .unwrap_or(0.0);
    let open_fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64);
    ProcessStats { rss_bytes, cpu_seconds, open_fds }
}
