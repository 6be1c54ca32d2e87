//! Software prefetch: asking the CPU to start loading a cache line that will be needed soon.
//!
//! Much of the scoring loop's time is memory latency: a stakeholder, a moment id or a
//! leaderboard block that is not in cache costs a dependent read of 100-200 ns on the reference
//! machine, while independent reads overlap (about 10 ns each). The batch passes therefore
//! start loading every scorecard of a chunk before the first of them runs (`passes::warm`),
//! then prefetch the heap blocks of the sorted collections a record will touch, [`AHEAD`]
//! records ahead, so that its misses overlap the work on the records before it. (Prefetching
//! the scorecards again inside the passes, after `warm`, only cost instructions.)
//!
//! This module owns the one `unsafe` call in the crate and the helpers that make it; it knows
//! nothing of what it prefetches.

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

/// How many records ahead of the one being scored a pass prefetches: far enough for a miss to
/// land (a record's work is a few hundred nanoseconds), near enough that what it brought is
/// still in cache when the record comes.
pub const AHEAD: usize = 12;

/// Lines of a vector [`prefetch_items`] loads: enough for the binary searches of a typical
/// stakeholder's sorted vectors; the few with longer ones are the most active, whose state
/// stays in cache anyway.
const LINES: usize = 6;

/// Prefetches the first few cache lines of `items` (a heap block of a stakeholder's state).
#[inline]
pub fn prefetch_items<T>(items: &[T]) {
    let per_line = (64 / size_of::<T>().max(1)).max(1);
    for item in items.iter().step_by(per_line).take(LINES) {
        prefetch(item);
    }
}
