//! Dynamic batching in front of an encoder: concurrent requests are gathered into one
//! batch (up to `max_batch`, waiting at most `max_wait` after the first), run on the
//! batcher's own threads (never on tokio workers), and answered one by one. The queue
//! is bounded: when it is full, `submit` fails fast with `Overloaded`.
//!
//! **Fair share.** Inputs wait in one queue per tenant (the agent or principal the
//! calling thread works for, see [`with_tenant`]); a batch is filled by deficit round
//! robin across the tenants with inputs waiting, each taking up to its weight
//! ([`set_tenant_weights`], default 1) per round. So when the encoder is busy, tenants
//! get encoder (and GPU) time in proportion to their weights, whatever their request
//! sizes: one tenant's 10,000-chunk ingest does not delay another's one-line query by
//! more than a batch.

use crate::error::{Error, Result};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant};

type Run<I, O> = dyn Fn(Vec<I>) -> Result<Vec<O>> + Send + Sync;

struct Job<I, O> {
    input: I,
    reply: tokio::sync::oneshot::Sender<Result<O>>,
}

thread_local! {
    static TENANT: std::cell::RefCell<Option<Arc<str>>> = const { std::cell::RefCell::new(None) };
}

/// Inputs submitted without a tenant wait in this one's queue.
pub const DEFAULT_TENANT: &str = "default";

static WEIGHTS: RwLock<Option<HashMap<String, u32>>> = RwLock::new(None);

/// Run `f` with inputs it submits counted against `tenant` (for the fair share).
pub fn with_tenant<T>(tenant: &str, f: impl FnOnce() -> T) -> T {
    let prev = TENANT.with(|t| t.replace(Some(Arc::from(tenant))));
    struct Restore(Option<Arc<str>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let p = self.0.take();
            TENANT.with(|t| *t.borrow_mut() = p);
        }
    }
    let _restore = Restore(prev);
    f()
}

fn current_tenant() -> Arc<str> {
    TENANT.with(|t| t.borrow().clone()).unwrap_or_else(|| Arc::from(DEFAULT_TENANT))
}

/// Each tenant's weight in every batcher (absent: 1).
pub fn set_tenant_weights(weights: HashMap<String, u32>) {
    *WEIGHTS.write().unwrap_or_else(|e| e.into_inner()) = Some(weights);
}

fn weight(tenant: &str) -> usize {
    WEIGHTS.read().ok().and_then(|w| w.as_ref().and_then(|w| w.get(tenant).copied())).unwrap_or(1).max(1) as usize
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

/// The waiting inputs, one FIFO per tenant, and the round-robin order of the tenants
/// that have some.
struct Queues<I, O> {
    tenants: HashMap<Arc<str>, VecDeque<Job<I, O>>>,
    ring: VecDeque<Arc<str>>,
    len: usize,
    closed: bool,
}

impl<I, O> Queues<I, O> {
    /// Up to `max` inputs, each tenant in turn taking up to its weight.
    fn take(&mut self, max: usize) -> Vec<Job<I, O>> {
        let mut out = Vec::new();
        while out.len() < max {
            let Some(t) = self.ring.pop_front() else { break };
            let Some(q) = self.tenants.get_mut(&t) else { continue };
            let n = weight(&t).min(max - out.len()).min(q.len());
            out.extend(q.drain(..n));
            if q.is_empty() {
                self.tenants.remove(&t);
            } else {
                self.ring.push_back(t);
            }
        }
        self.len -= out.len();
        out
    }
}

struct Shared<I, O> {
    q: Mutex<Queues<I, O>>,
    cv: Condvar,
}

pub struct Batcher<I, O> {
    name: String,
    shared: Arc<Shared<I, O>>,
    capacity: usize,
    pub stats: Arc<BatcherStats>,
}

impl<I, O> Drop for Batcher<I, O> {
    fn drop(&mut self) {
        if let Ok(mut q) = self.shared.q.lock() {
            q.closed = true;
        }
        self.shared.cv.notify_all();
    }
}

impl<I: Send + 'static, O: Send + 'static> Batcher<I, O> {
    pub fn new(name: &str, cfg: BatcherConfig, run: Arc<Run<I, O>>) -> Self {
        let shared = Arc::new(Shared {
            q: Mutex::new(Queues { tenants: HashMap::new(), ring: VecDeque::new(), len: 0, closed: false }),
            cv: Condvar::new(),
        });
        let stats = Arc::new(BatcherStats::default());
        for w in 0..cfg.workers.max(1) {
            let (shared, run, stats) = (shared.clone(), run.clone(), stats.clone());
            std::thread::Builder::new()
                .name(format!("batcher-{name}-{w}"))
                .spawn(move || worker(shared, run, stats, cfg))
                .expect("spawn batcher thread");
        }
        Batcher { name: name.to_string(), shared, capacity: cfg.queue.max(1), stats }
    }

    /// Queue inputs as one unit (all or none), for the calling thread's tenant.
    fn enqueue_all(&self, inputs: Vec<I>) -> Result<Vec<tokio::sync::oneshot::Receiver<Result<O>>>> {
        let tenant = current_tenant();
        let mut q = self.shared.q.lock().map_err(|_| Error::Inference(format!("encoder '{}' stopped", self.name)))?;
        if q.closed {
            return Err(Error::Inference(format!("encoder '{}' stopped", self.name)));
        }
        // A call larger than the whole queue is still taken when the queue is empty (it
        // would never fit otherwise); anything else must fit.
        if q.len + inputs.len() > self.capacity && q.len > 0 {
            self.stats.rejected.fetch_add(inputs.len() as u64, Ordering::Relaxed);
            return Err(Error::Overloaded(format!("encoder '{}' queue is full; retry with backoff", self.name)));
        }
        let n = inputs.len();
        let mut rxs = Vec::with_capacity(n);
        let tq = q.tenants.entry(tenant.clone()).or_default();
        let first = tq.is_empty();
        for input in inputs {
            let (reply, rx) = tokio::sync::oneshot::channel();
            tq.push_back(Job { input, reply });
            rxs.push(rx);
        }
        if first && n > 0 {
            q.ring.push_back(tenant);
        }
        q.len += n;
        drop(q);
        self.stats.queued.fetch_add(n as u64, Ordering::Relaxed);
        self.shared.cv.notify_all();
        Ok(rxs)
    }

    fn enqueue(&self, input: I) -> Result<tokio::sync::oneshot::Receiver<Result<O>>> {
        Ok(self.enqueue_all(vec![input])?.remove(0))
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
        let rxs = self.enqueue_all(inputs)?;
        rxs.into_iter()
            .map(|rx| {
                rx.blocking_recv()
                    .map_err(|_| Error::Inference(format!("encoder '{}' dropped the request", self.name)))?
            })
            .collect()
    }
}

fn worker<I, O>(shared: Arc<Shared<I, O>>, run: Arc<Run<I, O>>, stats: Arc<BatcherStats>, cfg: BatcherConfig) {
    let max = cfg.max_batch.max(1);
    loop {
        let jobs = {
            let Ok(mut q) = shared.q.lock() else { return };
            while q.len == 0 {
                if q.closed {
                    return;
                }
                q = match shared.cv.wait(q) {
                    Ok(g) => g,
                    Err(_) => return,
                };
            }
            // Wait (at most max_wait after the first input) for a full batch.
            let deadline = Instant::now() + cfg.max_wait;
            while q.len < max && !q.closed {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                q = match shared.cv.wait_timeout(q, left) {
                    Ok((g, _)) => g,
                    Err(_) => return,
                };
            }
            q.take(max)
        };
        if jobs.is_empty() {
            continue;
        }
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

    /// A tenant that floods the encoder does not delay another's few inputs behind its
    /// backlog, and weights split the encoder between busy tenants.
    #[test]
    fn tenants_share_the_encoder_by_weight() {
        let order = Arc::new(Mutex::new(Vec::<String>::new()));
        let o2 = order.clone();
        let b = Arc::new(Batcher::new(
            "fair",
            BatcherConfig { max_batch: 4, max_wait: Duration::ZERO, queue: 10_000, workers: 1 },
            Arc::new(move |xs: Vec<String>| {
                std::thread::sleep(Duration::from_millis(2));
                o2.lock().unwrap().extend(xs.iter().cloned());
                Ok(xs)
            }),
        ));
        let flood = {
            let b = b.clone();
            std::thread::spawn(move || {
                with_tenant("flood", || b.submit_many_blocking((0..400).map(|i| format!("flood-{i}")).collect()))
            })
        };
        std::thread::sleep(Duration::from_millis(20));
        let quiet = with_tenant("quiet", || b.submit_many_blocking((0..4).map(|i| format!("quiet-{i}")).collect()));
        assert_eq!(quiet.unwrap().len(), 4);
        assert_eq!(flood.join().unwrap().unwrap().len(), 400);
        let seen = order.lock().unwrap().clone();
        let last_quiet = seen.iter().rposition(|x| x.starts_with("quiet")).unwrap();
        let flood_before = seen[..last_quiet].iter().filter(|x| x.starts_with("flood")).count();
        assert!(flood_before < 100, "the quiet tenant waited behind {flood_before} flood inputs");

        // Weights: while both are backlogged, "big" (weight 3) gets 3 of every 4 slots.
        set_tenant_weights([("big".to_string(), 3)].into());
        order.lock().unwrap().clear();
        let hold = Arc::new(std::sync::Barrier::new(3));
        let spawn = |t: &'static str| {
            let (b, hold) = (b.clone(), hold.clone());
            std::thread::spawn(move || {
                hold.wait();
                with_tenant(t, || b.submit_many_blocking((0..200).map(|i| format!("{t}-{i}")).collect()))
            })
        };
        let (x, y) = (spawn("big"), spawn("small"));
        hold.wait();
        x.join().unwrap().unwrap();
        y.join().unwrap().unwrap();
        set_tenant_weights(HashMap::new());
        let seen = order.lock().unwrap().clone();
        // Look at a window where both were waiting: the first 160 inputs.
        let big = seen[..160].iter().filter(|x| x.starts_with("big")).count();
        assert!((100..=140).contains(&big), "big got {big} of the first 160");
    }
}
