//! `agentdb bench workflows`: the workflow engine's own overhead against a running
//! server. Applies a workflow of `--steps` no-op steps (`sleep: 0ms`, in a chain or all
//! in parallel), starts `--runs` runs as fast as the server takes them, waits for all to
//! finish, and reports runs/s, run records written/s (each a persisted WAL record) and
//! the queue-to-finish latency of the runs. The server's `workflows.max_concurrent_runs`
//! bounds how many execute at once.

use crate::client::{connect, status_err};
use agentdb_proto::v1;
use anyhow::Result;
use clap::Args;
use std::time::{Duration, Instant};

#[derive(Args, Clone)]
pub struct WorkflowsBench {
    /// Runs started.
    #[arg(long, default_value_t = 500)]
    pub runs: usize,
    /// Steps per run (no-op `sleep: 0ms` steps).
    #[arg(long, default_value_t = 5)]
    pub steps: usize,
    /// Steps independent of each other (else a chain, each needing the previous).
    #[arg(long)]
    pub parallel: bool,
    /// Concurrent Run requests.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    #[arg(long, default_value = "bench-workflow")]
    pub name: String,
    #[arg(long)]
    pub json: bool,
}

fn yaml(b: &WorkflowsBench) -> String {
    let mut y = format!("name: {}\ndescription: agentdb bench workflows\nsteps:\n", b.name);
    for i in 0..b.steps.max(1) {
        y.push_str(&format!("  - id: s{i}\n    sleep: 0ms\n"));
        if i > 0 && !b.parallel {
            y.push_str(&format!("    needs: [s{}]\n", i - 1));
        }
    }
    y
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

pub async fn workflows_bench(server: &str, b: WorkflowsBench) -> Result<()> {
    let ch = connect(server).await?;
    let mut c = v1::workflows_client::WorkflowsClient::new(ch.clone());
    c.apply(v1::ApplyWorkflowRequest { yaml: yaml(&b) }).await.map_err(status_err)?;
    let t = Instant::now();
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..b.concurrency.max(1) {
        let (ch, next, name, n) = (ch.clone(), next.clone(), b.name.clone(), b.runs);
        tasks.spawn(async move {
            let mut c = v1::workflows_client::WorkflowsClient::new(ch);
            let mut ids = Vec::new();
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < n {
                let r = c
                    .run(v1::RunWorkflowRequest { name: name.clone(), ..Default::default() })
                    .await
                    .map_err(status_err)?;
                ids.push(r.into_inner().run.unwrap_or_default().id);
            }
            anyhow::Ok(ids)
        });
    }
    let mut ids = Vec::new();
    while let Some(r) = tasks.join_next().await {
        ids.extend(r??);
    }
    let submitted = t.elapsed().as_secs_f64();
    // Wait for every run to finish, then read their times.
    let mut lat = Vec::new();
    let mut failed = 0;
    for id in &ids {
        loop {
            let r = c
                .get_run(v1::GetWorkflowRunRequest { id: id.clone() })
                .await
                .map_err(status_err)?
                .into_inner()
                .run
                .unwrap_or_default();
            if matches!(r.state.as_str(), "succeeded" | "failed" | "canceled") {
                if r.state != "succeeded" {
                    failed += 1;
                }
                lat.push(r.finished_unix_ms.saturating_sub(r.created_unix_ms) as f64);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let total = t.elapsed().as_secs_f64();
    lat.sort_by(|a, b| a.total_cmp(b));
    let runs_per_s = ids.len() as f64 / total;
    // Run records written per run (server/src/workflows.rs): queued, started, one per
    // batch of steps started (every step in a chain, one for all in parallel), one per
    // finished step, finished.
    let s = b.steps.max(1);
    let per_run = if b.parallel { s + 4 } else { 2 * s + 3 };
    let transitions = ids.len() * per_run;
    let out = serde_json::json!({
        "runs": ids.len(), "steps_per_run": b.steps.max(1), "parallel": b.parallel,
        "failed": failed, "submit_s": submitted, "total_s": total,
        "runs_per_s": runs_per_s, "run_records_per_s": transitions as f64 / total,
        "latency_ms": { "p50": pct(&lat, 0.5), "p90": pct(&lat, 0.9), "p99": pct(&lat, 0.99), "max": pct(&lat, 1.0) },
    });
    if b.json {
        println!("{out}");
    } else {
        println!(
            "{} runs of {} {} no-op steps in {total:.2} s: {runs_per_s:.1} runs/s, {:.0} persisted run \
             records/s; queue-to-finish p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms; {failed} not succeeded",
            ids.len(),
            b.steps.max(1),
            if b.parallel { "parallel" } else { "chained" },
            out["run_records_per_s"].as_f64().unwrap_or(0.0),
            pct(&lat, 0.5),
            pct(&lat, 0.9),
            pct(&lat, 0.99)
        );
    }
    Ok(())
}
