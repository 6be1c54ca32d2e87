//! The allocator the binaries (`plaudit`, the benches' programs) install: mimalloc, with freed
//! memory returned to the OS after 100 ms and no transparent huge pages.
//!
//! Why mimalloc: the server renders effects and JSON on several threads, and glibc's malloc
//! spent a large share of its time under load on contended arenas; mimalloc's thread-local
//! heaps made durable ingestion and the scoring loop faster and the single-moment tail shorter.
//!
//! Why no transparent huge pages: mimalloc (v3) advises its arenas `MADV_HUGEPAGE`, so once a
//! purge has returned 64 KiB of an arena, the next allocation there faults in and zeroes a
//! whole 2 MiB page (`clear_page_erms` under `do_huge_pmd_anonymous_page` in a profile of the
//! organisation worker under durable load).
//!
//! Why purge after 100 ms rather than mimalloc's 10 ms or at once: without huge pages, holding
//! freed pages that long costs a few bytes a stakeholder, and a page freed and used again within
//! a batch (the records of a replay page, an answer's effects) is no longer returned and faulted
//! in again each time.
//!
//! Each choice was measured in interleaved A/B runs; the figures are in docs/performance.md
//! (allocator).
//!
//! **Owns** only that choice; the library allocates through the global allocator like any
//! crate and works under any. Each binary declares
//! `#[global_allocator] static ALLOCATOR: plaudit_allocator::Allocator = plaudit_allocator::Allocator;`
//! and calls [`configure`] first thing in `main`.

/// The global allocator of the binaries.
pub use mimalloc::MiMalloc as Allocator;

/// `mi_option_purge_delay` in mimalloc.h (v2 and v3 alike): libmimalloc-sys names no constant.
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// How long freed memory is kept before it goes back to the OS (mimalloc's default is 10 ms).
const PURGE_AFTER_MS: std::ffi::c_long = 100;

/// `mi_option_allow_thp` in v3's mimalloc.h (the version the crate builds by default).
const ALLOW_THP: libmimalloc_sys::mi_option_t = 43;

/// Purges freed memory after 100 ms unless `MIMALLOC_PURGE_DELAY` says otherwise,
/// and turns transparent huge pages off for the process unless `MIMALLOC_ALLOW_THP` says
/// otherwise. Call it at the start of `main`.
pub fn configure() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        set(PURGE_DELAY, PURGE_AFTER_MS);
    }
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        set(ALLOW_THP, 0);
        // mimalloc reads the option when it maps new memory; the arenas it reserved before
        // `main` were advised already, and this flag overrides that advice for the whole
        // process (what mimalloc itself does when `MIMALLOC_ALLOW_THP=0` is set at start).
        // Where the kernel refuses it (no THP support), there are no huge pages to avoid.
        // SAFETY: PR_SET_THP_DISABLE takes one integer argument and touches no memory of ours.
        #[cfg(target_os = "linux")]
        #[allow(unsafe_code)]
        unsafe {
            libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
        }
    }
}

fn set(option: libmimalloc_sys::mi_option_t, value: std::ffi::c_long) {
    // SAFETY: `mi_option_set` only stores an option value, read by later allocations and
    // purges; any thread may call it at any time. The option numbers are checked against the
    // bundled mimalloc's headers (c_src/mimalloc/v3/include/mimalloc.h: purge_delay 15,
    // allow_thp 43).
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_option_set(option, value);
    }
}
