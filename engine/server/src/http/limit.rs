//! Per-key request rates: a token bucket per API key (each organisation's, and the admin's),
//! refilled at the configured rate and holding at most the configured burst. A request over
//! the rate gets `429 rate_limited` with `Retry-After`; requests without a valid key never reach
//! a bucket (they are refused first), so a stranger cannot spend an organisation's allowance.

use std::sync::Mutex;
use std::time::Instant;

use super::config::RateLimit;

/// One key's bucket.
#[derive(Debug)]
pub struct Bucket {
    limit: RateLimit,
    state: Mutex<(f64, Instant)>,
}

impl Bucket {
    pub fn new(limit: RateLimit) -> Bucket {
        Bucket { limit, state: Mutex::new((f64::from(limit.burst), Instant::now())) }
    }

    /// Takes a token at `now`; `Err(seconds)` to wait if there is none.
    pub fn take(&self, now: Instant) -> Result<(), u64> {
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (tokens, last) = *state;
        let elapsed = now.saturating_duration_since(last).as_secs_f64();
        let tokens = (tokens + elapsed * self.limit.requests_per_second).min(f64::from(self.limit.burst));
        if tokens >= 1.0 {
            *state = (tokens - 1.0, now);
            Ok(())
        } else {
            *state = (tokens, now);
            Err(((1.0 - tokens) / self.limit.requests_per_second).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_burst_passes_then_requests_wait_for_the_refill() {
        let bucket = Bucket::new(RateLimit { requests_per_second: 2.0, burst: 3 });
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(bucket.take(t0), Ok(()));
        }
        assert_eq!(bucket.take(t0), Err(1), "empty: half a second to the next token, said as 1 s");
        assert_eq!(bucket.take(t0 + Duration::from_millis(500)), Ok(()), "refilled at 2 a second");
        assert!(bucket.take(t0 + Duration::from_millis(500)).is_err());
        assert_eq!(bucket.take(t0 + Duration::from_secs(60)), Ok(()), "never more than the burst");
        assert_eq!(bucket.take(t0 + Duration::from_secs(60)), Ok(()));
        assert_eq!(bucket.take(t0 + Duration::from_secs(60)), Ok(()));
        assert!(bucket.take(t0 + Duration::from_secs(60)).is_err());
    }
}
