//! Flat combining: concurrent callers of one serial resource (a GPU stream) hand their
//! jobs to whichever caller holds the resource, which runs everything pending as one
//! batch (one GEMM for many queries instead of one per request).
//!
//! A caller queues its job, then either takes the resource's lock and runs all pending
//! jobs (its own among them) until none are left, or waits briefly for a result and
//! tries again — so a job is never stranded, whoever queued it last.

use parking_lot::{Condvar, Mutex};
use std::sync::Arc;
use std::time::Duration;

struct Slot<R> {
    result: Mutex<Option<R>>,
    ready: Condvar,
}

pub struct Combiner<J, R> {
    pending: Mutex<Vec<(J, Arc<Slot<R>>)>>,
}

impl<J, R> Default for Combiner<J, R> {
    fn default() -> Self {
        Combiner { pending: Mutex::new(Vec::new()) }
    }
}

impl<J, R: Default> Combiner<J, R> {
    /// Queue `job` and return its result. `exec` runs a batch of jobs with the resource
    /// behind `lock` and returns one result per job, in order. If `exec` panics, the
    /// other jobs of its batch get `R::default()` (for the GPU: "search on the CPU") and
    /// the panic continues in the caller that ran it.
    pub fn run<L>(&self, job: J, lock: &Mutex<L>, mut exec: impl FnMut(&mut L, Vec<J>) -> Vec<R>) -> R {
        let slot = Arc::new(Slot { result: Mutex::new(None), ready: Condvar::new() });
        self.pending.lock().push((job, slot.clone()));
        loop {
            if let Some(r) = slot.result.lock().take() {
                return r;
            }
            if let Some(mut res) = lock.try_lock() {
                loop {
                    let batch = std::mem::take(&mut *self.pending.lock());
                    if batch.is_empty() {
                        break;
                    }
                    let (jobs, slots): (Vec<J>, Vec<Arc<Slot<R>>>) = batch.into_iter().unzip();
                    let n = jobs.len();
                    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| exec(&mut res, jobs)));
                    let (results, panic) = match run {
                        Ok(r) if r.len() == n => (r, None),
                        Ok(_) => ((0..n).map(|_| R::default()).collect(), None),
                        Err(p) => ((0..n).map(|_| R::default()).collect(), Some(p)),
                    };
                    for (s, r) in slots.into_iter().zip(results) {
                        *s.result.lock() = Some(r);
                        s.ready.notify_one();
                    }
                    if let Some(p) = panic {
                        std::panic::resume_unwind(p);
                    }
                }
                continue;
            }
            let mut g = slot.result.lock();
            if g.is_none() {
                slot.ready.wait_for(&mut g, Duration::from_micros(200));
            }
            if let Some(r) = g.take() {
                return r;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_caller_gets_its_own_result_and_calls_are_batched() {
        let combiner = Arc::new(Combiner::<u64, u64>::default());
        let resource = Arc::new(Mutex::new(Vec::<usize>::new())); // batch sizes seen
        let threads: Vec<_> = (0..8u64)
            .map(|t| {
                let (c, r) = (combiner.clone(), resource.clone());
                std::thread::spawn(move || {
                    for i in 0..500u64 {
                        let job = t * 1_000_000 + i;
                        let got = c.run(job, &r, |sizes, jobs| {
                            sizes.push(jobs.len());
                            std::thread::sleep(Duration::from_micros(50));
                            jobs.iter().map(|j| j * 2 + 1).collect()
                        });
                        assert_eq!(got, job * 2 + 1);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let sizes = resource.lock();
        assert_eq!(sizes.iter().sum::<usize>(), 8 * 500, "every job ran exactly once");
        assert!(sizes.iter().any(|&s| s > 1), "concurrent jobs were combined: {:?}", &sizes[..sizes.len().min(20)]);
    }

    #[test]
    fn a_panicking_batch_releases_the_other_callers() {
        let combiner = Arc::new(Combiner::<u64, Option<u64>>::default());
        let resource = Arc::new(Mutex::new(()));
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let (c, r) = (combiner.clone(), resource.clone());
                std::thread::spawn(move || {
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        c.run(t, &r, |_, jobs| {
                            std::thread::sleep(Duration::from_millis(5));
                            if jobs.contains(&0) {
                                panic!("device error");
                            }
                            jobs.iter().map(|j| Some(j * 10)).collect()
                        })
                    }))
                })
            })
            .collect();
        // Every caller returns: with its result, with None (its batch panicked), or by
        // panicking itself (it ran the batch that panicked); none hangs.
        let outcomes: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        for (t, o) in outcomes.iter().enumerate() {
            if let Ok(Some(v)) = o {
                assert_eq!(*v, t as u64 * 10);
            }
        }
        assert!(outcomes.iter().any(|o| o.is_err()), "the panic reached the caller that ran the batch");
    }
}
