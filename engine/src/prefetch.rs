//! Software prefetch: asking the CPU to start loading a cache line that will be needed soon.
//!
//! The scoring loop is bound by memory latency, not arithmetic: a stakeholder, a moment id or a
//! leaderboard block that is not in cache costs a dependent read of 100-200 ns on the reference
//! machine, while independent reads overlap (about 10 ns each). The batch passes therefore
//! prefetch what a record a few places ahead will touch, so that its misses overlap the work
//! on the records before it.
//!
//! This module owns the one `unsafe` call in the crate and nothing else.

/// Hints that the cache line holding `*x` will be read soon. It has no effect on what the
/// program computes, only on when memory is loaded.
#[inline(always)]
pub fn prefetch<T: ?Sized>(x: &T) {
    #[cfg(target_arch = "x86_64")]
    #[allow(unsafe_code)]
    // SAFETY: `_mm_prefetch` (SSE, part of the x86_64 baseline) is only a hint: it reads no
    // memory the program can observe and cannot fault, whatever the address; and `x` is a valid
    // reference anyway.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>((x as *const T).cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = x;
}
