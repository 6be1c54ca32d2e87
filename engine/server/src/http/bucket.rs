//! A token bucket: the tokens it holds as of an instant, refilled at a rate up to a burst. A
//! key's request rate ([`super::limit`]) and an organisation's records-a-second quota
//! ([`super::quotas`]) both take from one.
//!
//! **Owns** the refill and the take. **Must not touch** what a token stands for.

use std::sync::Mutex;
use std::time::Instant;

/// A token bucket's state: the tokens it holds as of an instant. Refilled at `rate` a second up
/// to `burst` as time passes; one request takes one token (a key's rate), or one per record (an
/// organisation's records-a-second quota).
#[derive(Debug)]
pub struct Tokens(Mutex<(f64, Instant)>);

impl Tokens {
    /// A full bucket of `burst` tokens.
    pub fn full(burst: f64) -> Tokens {
        Tokens(Mutex::new((burst, Instant::now())))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, (f64, Instant)> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The tokens held at `now`.
    pub fn available(&self, rate: f64, burst: f64, now: Instant) -> f64 {
        let (tokens, last) = *self.state();
        (tokens + now.saturating_duration_since(last).as_secs_f64() * rate).min(burst)
    }

    /// Takes `wanted` tokens at `now`, or none and `Err(seconds)` to wait until they are there.
    pub fn take(&self, wanted: f64, rate: f64, burst: f64, now: Instant) -> Result<(), u64> {
        let mut state = self.state();
        let (tokens, last) = *state;
        let tokens = (tokens + now.saturating_duration_since(last).as_secs_f64() * rate).min(burst);
        if tokens >= wanted {
            *state = (tokens - wanted, now);
            Ok(())
        } else {
            *state = (tokens, now);
            Err(((wanted - tokens) / rate).ceil().max(1.0) as u64)
        }
    }

    /// Holds at most `burst` tokens from now on (a lowered burst).
    pub fn cap(&self, burst: f64) {
        let mut state = self.state();
        state.0 = state.0.min(burst);
    }
}
