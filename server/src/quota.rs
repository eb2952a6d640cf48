//! Per-principal request-rate quotas: a token bucket per principal (API key id, or the
//! peer address when authentication is off). Over the limit a request gets
//! RESOURCE_EXHAUSTED with a `retry-after-ms` hint, in the metadata and the message.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::Instant;

pub struct RateLimiter {
    per_sec: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

/// Buckets kept before idle ones are pruned (bounded memory under many principals).
const MAX_BUCKETS: usize = 100_000;

impl RateLimiter {
    /// `None` when `per_sec` is 0 (no limit).
    pub fn new(per_sec: f64, burst: f64) -> Option<RateLimiter> {
        (per_sec > 0.0).then(|| RateLimiter { per_sec, burst: burst.max(1.0), buckets: Mutex::new(HashMap::new()) })
    }

    /// Take one token for `who`; on refusal, the milliseconds until one is available.
    pub fn check(&self, who: &str) -> Result<(), u64> {
        let now = Instant::now();
        let mut b = self.buckets.lock();
        if b.len() >= MAX_BUCKETS && !b.contains_key(who) {
            let (per_sec, burst) = (self.per_sec, self.burst);
            b.retain(|_, (tokens, at)| *tokens + now.duration_since(*at).as_secs_f64() * per_sec < burst);
        }
        let (tokens, at) = b.entry(who.to_string()).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.per_sec).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err((((1.0 - *tokens) / self.per_sec) * 1000.0).ceil() as u64)
        }
    }

    pub fn per_sec(&self) -> f64 {
        self.per_sec
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill() {
        let r = RateLimiter::new(10.0, 3.0).unwrap();
        assert!(r.check("a").is_ok() && r.check("a").is_ok() && r.check("a").is_ok());
        let wait = r.check("a").unwrap_err();
        assert!(wait > 0 && wait <= 100, "{wait}");
        assert!(r.check("b").is_ok(), "buckets are per principal");
        std::thread::sleep(std::time::Duration::from_millis(120));
        assert!(r.check("a").is_ok());
        assert!(RateLimiter::new(0.0, 5.0).is_none());
    }
}
