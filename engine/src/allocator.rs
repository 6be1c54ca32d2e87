//! The allocator the binaries (`plaudit`, the benches' programs) install: mimalloc, with freed
//! memory returned to the OS at once.
//!
//! Why: the server renders effects and JSON on several threads, and glibc's malloc took about a
//! third of its time under load (`perf`); mimalloc's thread-local heaps made durable batches
//! of 100 about 25 % faster and halved the single-moment p99, and the scoring loop 15-20 %
//! faster (README, performance). With mimalloc's default purge delay (10 ms) the resident set
//! holds freed pages longer: 517 B a stakeholder at 1 M instead of 491 B; purging at once
//! brings it to 507 B at no measured cost in speed.
//!
//! **Owns** only that choice; the library allocates through the global allocator like any
//! crate and works under any. Each binary declares
//! `#[global_allocator] static ALLOCATOR: plaudit_engine::allocator::Allocator = plaudit_engine::allocator::Allocator;`
//! and calls [`configure`] first thing in `main`.

/// The global allocator of the binaries.
pub use mimalloc::MiMalloc as Allocator;

/// `mi_option_purge_delay` in mimalloc.h (v2 and v3 alike): libmimalloc-sys names no constant.
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Purges freed memory at once (mimalloc's `purge_delay` 0) unless `MIMALLOC_PURGE_DELAY` says
/// otherwise. Call it at the start of `main`.
pub fn configure() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: `mi_option_set` only stores an option value, read by later purges; any thread
        // may call it at any time, and option 15 is `mi_option_purge_delay` in the bundled
        // mimalloc's headers (checked: c_src/mimalloc/{v2,v3}/include/mimalloc.h).
        #[allow(unsafe_code)]
        unsafe {
            libmimalloc_sys::mi_option_set(PURGE_DELAY, 0);
        }
    }
}
