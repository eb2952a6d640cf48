//! `agentdb ingest`: walk files and folders, stream them to the server over one
//! bidirectional gRPC call with bounded in-flight files, show progress, report
//! failures without stopping, print a summary. Re-running skips what is already
//! ingested (the server recognises content by its hash).

use crate::client::{IngestArgs, ItemsClient};
use anyhow::Result;
use std::io::IsTerminal;

pub use agentdb_client::IngestSummary;

pub async fn ingest(items: &mut ItemsClient, a: IngestArgs) -> Result<()> {
    let s = run_ingest(items, &a).await?;
    let (ingested, skipped, chunks, failed, secs) = (s.ingested, s.skipped, s.items, s.failed, s.seconds);
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "files": ingested + skipped + failed.len() as u64, "ingested": ingested, "skipped": skipped,
                "failed": failed.iter().map(|(s, e)| serde_json::json!({"source": s, "error": e})).collect::<Vec<_>>(),
                "items": chunks, "seconds": secs,
            })
        );
    } else {
        if !std::io::stderr().is_terminal() {
            for (s, e) in &failed {
                if e.contains(s.as_str()) {
                    eprintln!("failed: {e}");
                } else {
                    eprintln!("failed: {s}: {e}");
                }
            }
        }
        println!(
            "ingested {ingested} files ({chunks} items), skipped {skipped} already ingested, {} failed, in {secs:.1}s ({:.1} files/s)",
            failed.len(),
            (ingested + skipped) as f64 / secs.max(1e-9)
        );
    }
    Ok(())
}

/// Stream every file under `a.paths` to the server (agentdb_client: bounded in flight),
/// with a progress bar on a terminal; failures are collected, never fatal.
pub async fn run_ingest(items: &mut ItemsClient, a: &IngestArgs) -> Result<IngestSummary> {
    let bar = if std::io::stderr().is_terminal() && !a.json {
        let b = indicatif::ProgressBar::new(0);
        b.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} files  {per_sec}  ETA {eta}  {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let show = |p: &agentdb_client::IngestProgress| {
        bar.set_length(p.total);
        if p.status == "failed" {
            let msg = if p.error.contains(&p.source) { p.error.clone() } else { format!("{}: {}", p.source, p.error) };
            bar.println(format!("failed: {msg}"));
        }
        bar.set_position(p.done);
    };
    // A slice: this worker's files only (walk errors are reported by every worker).
    let sliced;
    let paths = match a.slice {
        Some((i, n)) => {
            let (files, errors) = agentdb_client::walk_files(&a.paths);
            for (p, e) in &errors {
                eprintln!("failed: {p}: {e}");
            }
            sliced = files
                .into_iter()
                .filter(|f| agentdb_client::in_slice(&f.display().to_string(), i, n))
                .collect::<Vec<_>>();
            if sliced.is_empty() {
                eprintln!("slice {i}/{n}: no files");
            }
            &sliced
        }
        None => &a.paths,
    };
    let s = agentdb_client::ingest_with(items.clone(), &a.collection, paths, a.concurrency, show)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    bar.finish_and_clear();
    Ok(s)
}
