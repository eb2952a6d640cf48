//! `agentdb ingest`: walk files and folders, stream them to the server over one
//! bidirectional gRPC call with bounded in-flight files, show progress, report
//! failures without stopping, print a summary. Re-running skips what is already
//! ingested (the server recognises content by its hash).

use crate::client::{status_err, IngestArgs, ItemsClient};
use agentdb_proto::v1;
use anyhow::Result;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// Files larger than this are reported as failed without sending them (the server's
/// default message limit is 64 MiB, its ingest limit 32 MiB).
const MAX_FILE: u64 = 32 << 20;

fn walk(p: &Path, out: &mut Vec<PathBuf>, errors: &mut Vec<(String, String)>) {
    match std::fs::metadata(p) {
        Ok(m) if m.is_dir() => match std::fs::read_dir(p) {
            Ok(rd) => {
                let mut entries: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
                entries.sort();
                for e in entries {
                    let hidden = e.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'));
                    if !hidden {
                        walk(&e, out, errors);
                    }
                }
            }
            Err(e) => errors.push((p.display().to_string(), e.to_string())),
        },
        Ok(m) if m.is_file() => out.push(p.to_path_buf()),
        Ok(_) => {}
        Err(e) => errors.push((p.display().to_string(), e.to_string())),
    }
}

/// What one ingest run did.
pub struct IngestSummary {
    pub ingested: u64,
    pub skipped: u64,
    pub items: u64,
    /// (source, reason)
    pub failed: Vec<(String, String)>,
    pub seconds: f64,
}

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

/// Stream every file under `a.paths` to the server (bounded in flight), with a progress
/// bar on a terminal; failures are collected, never fatal.
pub async fn run_ingest(items: &mut ItemsClient, a: &IngestArgs) -> Result<IngestSummary> {
    let mut files = Vec::new();
    let mut failed: Vec<(String, String)> = Vec::new();
    for p in &a.paths {
        walk(p, &mut files, &mut failed);
    }
    let total = files.len() as u64;
    let bar = if std::io::stderr().is_terminal() && !a.json {
        let b = indicatif::ProgressBar::new(total);
        b.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} files  {per_sec}  ETA {eta}  {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<v1::IngestRequest>(a.concurrency.max(1));
    let (local_fail_tx, mut local_fail_rx) = tokio::sync::mpsc::unbounded_channel::<(String, String)>();
    let collection = a.collection.clone();
    let reader = tokio::spawn(async move {
        for f in files {
            let source = f.display().to_string();
            match tokio::fs::metadata(&f).await {
                Ok(m) if m.len() > MAX_FILE => {
                    let _ = local_fail_tx
                        .send((source, format!("file is {} bytes; the ingest limit is {MAX_FILE}", m.len())));
                    continue;
                }
                Err(e) => {
                    let _ = local_fail_tx.send((source, e.to_string()));
                    continue;
                }
                _ => {}
            }
            match tokio::fs::read(&f).await {
                Ok(content) => {
                    if tx.send(v1::IngestRequest { collection: collection.clone(), source, content }).await.is_err() {
                        break;
                    }
                }
                Err(e) => {
                    let _ = local_fail_tx.send((source, e.to_string()));
                }
            }
        }
    });
    let t = std::time::Instant::now();
    let mut results =
        items.ingest(tokio_stream::wrappers::ReceiverStream::new(rx)).await.map_err(status_err)?.into_inner();
    let (mut ingested, mut skipped, mut chunks) = (0u64, 0u64, 0u64);
    loop {
        tokio::select! {
            r = results.message() => {
                match r.map_err(status_err)? {
                    Some(r) => {
                        match r.status.as_str() {
                            "ingested" => { ingested += 1; chunks += r.items as u64; }
                            "skipped" => skipped += 1,
                            _ => {
                                let msg = if r.error.contains(&r.source) { r.error.clone() } else { format!("{}: {}", r.source, r.error) };
                                bar.println(format!("failed: {msg}"));
                                failed.push((r.source, r.error));
                            }
                        }
                        bar.inc(1);
                    }
                    None => break,
                }
            }
            Some((src, why)) = local_fail_rx.recv() => {
                bar.println(format!("failed: {src}: {why}"));
                failed.push((src, why));
                bar.inc(1);
            }
        }
    }
    let _ = reader.await;
    while let Ok((src, why)) = local_fail_rx.try_recv() {
        failed.push((src, why));
    }
    bar.finish_and_clear();
    Ok(IngestSummary { ingested, skipped, items: chunks, failed, seconds: t.elapsed().as_secs_f64() })
}
