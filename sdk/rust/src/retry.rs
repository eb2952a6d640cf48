//! Retries with exponential backoff and jitter that honour the server's hint.

use crate::Error;
use std::future::Future;
use std::time::Duration;

/// How often and how patiently to retry.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Attempts in all (1: no retries).
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    pub fn none() -> Self {
        RetryPolicy { max_attempts: 1, ..Default::default() }
    }

    /// The wait before attempt `n + 1` (n ≥ 1): the server's hint when it gave one,
    /// else exponential backoff with ±20 % jitter, capped.
    pub fn backoff(&self, attempt: u32, hint: Option<Duration>) -> Duration {
        if let Some(h) = hint {
            return h.min(self.max_backoff.max(h));
        }
        let exp = self.initial_backoff.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        let base = exp.min(self.max_backoff);
        let jitter = 0.8 + rand::random::<f64>() * 0.4;
        base.mul_f64(jitter)
    }
}

/// May a call that failed with `e` be sent again? A write only when the server refused
/// it before doing anything (it says so with a retry hint); a read also when the server
/// was unreachable.
fn retryable(e: &Error, write: bool) -> bool {
    match e {
        Error::Status { code, retry_after, .. } => {
            retry_after.is_some() || (!write && *code == tonic::Code::Unavailable)
        }
        Error::Connect(_) => !write,
        _ => false,
    }
}

async fn attempt<T, F, Fut>(p: &RetryPolicy, write: bool, mut f: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    let mut n = 0;
    loop {
        n += 1;
        let e: Error = match f().await {
            Ok(r) => return Ok(r.into_inner()),
            Err(s) => s.into(),
        };
        if n >= p.max_attempts.max(1) || !retryable(&e, write) {
            return Err(e);
        }
        tokio::time::sleep(p.backoff(n, e.retry_after())).await;
    }
}

pub(crate) async fn read<T, F, Fut>(p: &RetryPolicy, f: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    attempt(p, false, f).await
}

pub(crate) async fn write<T, F, Fut>(p: &RetryPolicy, f: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    attempt(p, true, f).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_retry_only_on_a_refusal_with_a_hint() {
        let hinted = Error::Status {
            code: tonic::Code::ResourceExhausted,
            message: "x".into(),
            retry_after: Some(Duration::from_millis(5)),
        };
        let quota = Error::Status { code: tonic::Code::ResourceExhausted, message: "quota".into(), retry_after: None };
        let down = Error::Status { code: tonic::Code::Unavailable, message: "down".into(), retry_after: None };
        assert!(retryable(&hinted, true) && retryable(&hinted, false));
        assert!(!retryable(&quota, true) && !retryable(&quota, false));
        assert!(!retryable(&down, true) && retryable(&down, false));
    }

    #[test]
    fn backoff_grows_is_capped_and_follows_the_hint() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff(3, Some(Duration::from_millis(700))), Duration::from_millis(700));
        let b1 = p.backoff(1, None);
        assert!(b1 >= Duration::from_millis(80) && b1 <= Duration::from_millis(120), "{b1:?}");
        assert!(p.backoff(30, None) <= Duration::from_secs(6));
    }

    #[tokio::test]
    async fn a_hinted_refusal_is_retried_until_it_passes() {
        let p = RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(10),
        };
        let mut calls = 0;
        let r: Result<u32, Error> = write(&p, || {
            calls += 1;
            let n = calls;
            async move {
                if n < 3 {
                    let mut s = tonic::Status::resource_exhausted("overloaded");
                    s.metadata_mut().insert("retry-after-ms", "1".parse().unwrap());
                    Err(s)
                } else {
                    Ok(tonic::Response::new(7))
                }
            }
        })
        .await;
        assert_eq!(r.unwrap(), 7);
        assert_eq!(calls, 3);
    }
}
