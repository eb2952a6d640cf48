//! Folder ingest: walk files and folders, stream them to the server over one
//! bidirectional call with bounded in-flight files, report each file as it completes.
//! Re-running skips what is already ingested (the server recognises content by hash).

use crate::{v1, Channel, Error};
use std::path::{Path, PathBuf};

/// Files larger than this are reported as failed without sending them (the server's
/// default ingest limit).
pub const MAX_FILE: u64 = 32 << 20;

/// One file done.
#[derive(Clone, Debug)]
pub struct IngestProgress {
    pub source: String,
    /// `ingested`, `skipped` (same content already there) or `failed`.
    pub status: String,
    pub items: u32,
    pub error: String,
    /// Files finished so far, and in all (known once the walk is done: it is, before any
    /// file is sent).
    pub done: u64,
    pub total: u64,
}

/// What one ingest run did.
#[derive(Clone, Debug, Default)]
pub struct IngestSummary {
    pub ingested: u64,
    pub skipped: u64,
    pub items: u64,
    /// (source, reason)
    pub failed: Vec<(String, String)>,
    pub seconds: f64,
}

/// The files under `paths` in the order an ingest sends them (folders walked
/// recursively, hidden entries skipped), and the paths that could not be read.
pub fn walk_files(paths: &[PathBuf]) -> (Vec<PathBuf>, Vec<(String, String)>) {
    let (mut files, mut errors) = (Vec::new(), Vec::new());
    for p in paths {
        walk(p, &mut files, &mut errors);
    }
    (files, errors)
}

/// Whether `source` belongs to slice `index` of `count`: a stable hash of the path
/// (FNV-1a, the same on every machine and run), so parallel workers given the same
/// folder split it without talking to each other and a rerun takes the same files.
pub fn in_slice(source: &str, index: u32, count: u32) -> bool {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in source.as_bytes() {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    count <= 1 || h % count as u64 == index as u64
}

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

/// [`crate::Client::ingest_paths`] over an items stub of its own.
pub async fn run(
    mut items: v1::items_client::ItemsClient<Channel>,
    collection: &str,
    paths: &[PathBuf],
    concurrency: usize,
    mut progress: impl FnMut(&IngestProgress),
) -> Result<IngestSummary, Error> {
    let mut files = Vec::new();
    let mut walk_failed: Vec<(String, String)> = Vec::new();
    for p in paths {
        walk(p, &mut files, &mut walk_failed);
    }
    let total = (files.len() + walk_failed.len()) as u64;
    let mut s = IngestSummary::default();
    let mut done = 0u64;
    let mut report = |s: &mut IngestSummary, source: String, status: &str, n: u32, error: String| {
        done += 1;
        match status {
            "ingested" => {
                s.ingested += 1;
                s.items += n as u64;
            }
            "skipped" => s.skipped += 1,
            _ => s.failed.push((source.clone(), error.clone())),
        }
        progress(&IngestProgress { source, status: status.to_string(), items: n, error, done, total });
    };
    for (src, why) in walk_failed {
        report(&mut s, src, "failed", 0, why);
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<v1::IngestRequest>(concurrency.max(1));
    let (local_fail_tx, mut local_fail_rx) = tokio::sync::mpsc::unbounded_channel::<(String, String)>();
    let collection = collection.to_string();
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
    let mut results = items.ingest(tokio_stream::wrappers::ReceiverStream::new(rx)).await?.into_inner();
    loop {
        tokio::select! {
            r = results.message() => {
                match r? {
                    Some(r) => report(&mut s, r.source, &r.status, r.items, r.error),
                    None => break,
                }
            }
            Some((src, why)) = local_fail_rx.recv() => report(&mut s, src, "failed", 0, why),
        }
    }
    let _ = reader.await;
    while let Ok((src, why)) = local_fail_rx.try_recv() {
        report(&mut s, src, "failed", 0, why);
    }
    s.seconds = t.elapsed().as_secs_f64();
    Ok(s)
}
