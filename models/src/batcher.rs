//! Dynamic batching in front of an encoder: concurrent requests are gathered into one
//! batch (up to `max_batch`, waiting at most `max_wait` after the first), run on the
//! batcher's own threads (never on tokio workers), and answered one by one. The queue
//! is bounded: when it is full, `submit` fails fast with `Overloaded`.

use crate::error::{Error, Result};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Run<I, O> = dyn Fn(Vec<I>) -> Result<Vec<O>> + Send + Sync;

struct Job<I, O> {
    input: I,
    reply: tokio::sync::oneshot::Sender<Result<O>>,
}

/// Counters for metrics and benchmarks.
#[derive(Debug, Default)]
pub struct BatcherStats {
    pub batches: AtomicU64,
    pub items: AtomicU64,
    pub rejected: AtomicU64,
    pub queued: AtomicU64,
}

#[derive(Debug, Clone, Copy)]
pub struct BatcherConfig {
    pub max_batch: usize,
    pub max_wait: Duration,
    pub queue: usize,
    pub workers: usize,
}

impl Default for BatcherConfig {
    fn default() -> Self {
        BatcherConfig { max_batch: 32, max_wait: Duration::from_millis(2), queue: 1024, workers: 1 }
    }
}

pub struct Batcher<I, O> {
    name: String,
    tx: SyncSender<Job<I, O>>,
    pub stats: Arc<BatcherStats>,
}

impl<I: Send + 'static, O: Send + 'static> Batcher<I, O> {
    pub fn new(name: &str, cfg: BatcherConfig, run: Arc<Run<I, O>>) -> Self {
        let (tx, rx) = sync_channel::<Job<I, O>>(cfg.queue.max(1));
        let rx = Arc::new(Mutex::new(rx));
        let stats = Arc::new(BatcherStats::default());
        for w in 0..cfg.workers.max(1) {
            let (rx, run, stats) = (rx.clone(), run.clone(), stats.clone());
            std::thread::Builder::new()
                .name(format!("batcher-{name}-{w}"))
                .spawn(move || worker(rx, run, stats, cfg))
                .expect("spawn batcher thread");
        }
        Batcher { name: name.to_string(), tx, stats }
    }

    fn enqueue(&self, input: I) -> Result<tokio::sync::oneshot::Receiver<Result<O>>> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        match self.tx.try_send(Job { input, reply }) {
            Ok(()) => {
                self.stats.queued.fetch_add(1, Ordering::Relaxed);
                Ok(rx)
            }
            Err(TrySendError::Full(_)) => {
                self.stats.rejected.fetch_add(1, Ordering::Relaxed);
                Err(Error::Overloaded(format!("encoder '{}' queue is full; retry with backoff", self.name)))
            }
            Err(TrySendError::Disconnected(_)) => Err(Error::Inference(format!("encoder '{}' stopped", self.name))),
        }
    }

    /// Submit one input and wait for its output.
    pub async fn submit(&self, input: I) -> Result<O> {
        let rx = self.enqueue(input)?;
        rx.await.map_err(|_| Error::Inference(format!("encoder '{}' dropped the request", self.name)))?
    }

    /// Blocking variant for code already off the async runtime.
    pub fn submit_blocking(&self, input: I) -> Result<O> {
        let rx = self.enqueue(input)?;
        rx.blocking_recv().map_err(|_| Error::Inference(format!("encoder '{}' dropped the request", self.name)))?
    }

    /// Submit many inputs at once (they may be split across batches).
    pub fn submit_many_blocking(&self, inputs: Vec<I>) -> Result<Vec<O>> {
        let rxs = inputs.into_iter().map(|i| self.enqueue(i)).collect::<Result<Vec<_>>>()?;
        rxs.into_iter()
            .map(|rx| {
                rx.blocking_recv()
                    .map_err(|_| Error::Inference(format!("encoder '{}' dropped the request", self.name)))?
            })
            .collect()
    }
}

fn worker<I, O>(
    rx: Arc<Mutex<Receiver<Job<I, O>>>>,
    run: Arc<Run<I, O>>,
    stats: Arc<BatcherStats>,
    cfg: BatcherConfig,
) {
    loop {
        let jobs = {
            let rx = match rx.lock() {
                Ok(g) => g,
                Err(_) => return,
            };
            let Ok(first) = rx.recv() else { return };
            let mut jobs = vec![first];
            let deadline = Instant::now() + cfg.max_wait;
            while jobs.len() < cfg.max_batch {
                let left = deadline.saturating_duration_since(Instant::now());
                match rx.recv_timeout(left) {
                    Ok(j) => jobs.push(j),
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
            jobs
        };
        stats.queued.fetch_sub(jobs.len() as u64, Ordering::Relaxed);
        stats.batches.fetch_add(1, Ordering::Relaxed);
        stats.items.fetch_add(jobs.len() as u64, Ordering::Relaxed);
        let (inputs, replies): (Vec<I>, Vec<_>) = jobs.into_iter().map(|j| (j.input, j.reply)).unzip();
        let n = inputs.len();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(inputs))) {
            Ok(Ok(outputs)) if outputs.len() == n => {
                for (reply, out) in replies.into_iter().zip(outputs) {
                    let _ = reply.send(Ok(out));
                }
            }
            Ok(Ok(outputs)) => {
                for reply in replies {
                    let _ = reply.send(Err(Error::Inference(format!(
                        "encoder returned {} outputs for {n} inputs",
                        outputs.len()
                    ))));
                }
            }
            Ok(Err(e)) => {
                let msg = e.to_string();
                for reply in replies {
                    let _ = reply.send(Err(Error::Inference(msg.clone())));
                }
            }
            Err(_) => {
                for reply in replies {
                    let _ = reply.send(Err(Error::Inference("encoder panicked".into())));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batches_concurrent_requests_and_rejects_when_full() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let b = Arc::new(Batcher::new(
            "t",
            BatcherConfig { max_batch: 8, max_wait: Duration::from_millis(50), queue: 64, workers: 1 },
            Arc::new(move |xs: Vec<u32>| {
                s2.lock().unwrap().push(xs.len());
                Ok(xs.into_iter().map(|x| x * 2).collect())
            }),
        ));
        let handles: Vec<_> = (0..16)
            .map(|i| {
                let b = b.clone();
                tokio::spawn(async move { b.submit(i).await.unwrap() })
            })
            .collect();
        for (i, h) in handles.into_iter().enumerate() {
            assert_eq!(h.await.unwrap(), i as u32 * 2);
        }
        let sizes = seen.lock().unwrap().clone();
        assert_eq!(sizes.iter().sum::<usize>(), 16);
        assert!(sizes.iter().any(|&s| s > 1), "some requests shared a batch: {sizes:?}");
        assert!(sizes.iter().all(|&s| s <= 8));

        // A tiny queue in front of a slow encoder: excess requests are refused, not queued.
        let slow = Batcher::new(
            "slow",
            BatcherConfig { max_batch: 1, max_wait: Duration::ZERO, queue: 1, workers: 1 },
            Arc::new(|xs: Vec<u32>| {
                std::thread::sleep(Duration::from_millis(200));
                Ok(xs)
            }),
        );
        let mut rejected = 0;
        let mut pending = Vec::new();
        for i in 0..5 {
            match slow.enqueue(i) {
                Ok(rx) => pending.push(rx),
                Err(Error::Overloaded(_)) => rejected += 1,
                Err(e) => panic!("{e}"),
            }
        }
        assert!(rejected >= 2, "rejected {rejected}");
        for rx in pending {
            assert!(rx.await.unwrap().is_ok());
        }
    }
}
