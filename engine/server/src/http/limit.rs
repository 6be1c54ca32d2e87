//! Per-key request rates: a token bucket per API key (each organisation's, and the admin's),
//! refilled at the configured rate and holding at most the configured burst. A request over
//! the rate gets `429 rate_limited` with `Retry-After`; requests without a valid key never reach
//! a bucket (they are refused first), so a stranger cannot spend an organisation's allowance.

use std::time::Instant;

use super::bucket::Tokens;
use super::config::RateLimit;

/// One key's bucket.
#[derive(Debug)]
pub struct Bucket {
    limit: RateLimit,
    tokens: Tokens,
}

impl Bucket {
    pub fn new(limit: RateLimit) -> Bucket {
        Bucket { limit, tokens: Tokens::full(f64::from(limit.burst)) }
    }

    /// Takes a token at `now`; `Err(seconds)` to wait if there is none.
    pub fn take(&self, now: Instant) -> Result<(), u64> {
        self.tokens.take(1.0, self.limit.requests_per_second, f64::from(self.limit.burst), now)
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
