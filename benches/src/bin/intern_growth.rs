//! The longest single insert into an interner as it grows to `N` strings (default 26 M, the
//! moment ids of a large organisation's history): what one moment can wait while the id table
//! grows. Prints every insert over 3 ms, then the longest, how many took over 1 ms, and the
//! total.
//!
//! `cargo run --release -p plaudit-benches --bin intern_growth -- [N]`

/// The `plaudit` binary's allocator (`plaudit_allocator`), so that these figures are
/// the shipped binary's.
#[global_allocator]
static ALLOCATOR: plaudit_allocator::Allocator = plaudit_allocator::Allocator;

use std::fmt::Write;
use std::time::{Duration, Instant};

use plaudit_core::intern::Interner;

fn main() -> Result<(), String> {
    plaudit_allocator::configure();
    let n: u64 = match std::env::args().nth(1) {
        Some(a) => a.parse().map_err(|e| format!("{a:?}: {e}"))?,
        None => 26_000_000,
    };
    let mut interner = Interner::new();
    let (mut longest, mut over_1ms) = (Duration::ZERO, 0);
    let mut id = String::new();
    let started = Instant::now();
    for k in 0..n {
        id.clear();
        write!(id, "m{k}").map_err(|e| e.to_string())?;
        let at = Instant::now();
        interner.intern_hashed(&id, Interner::hash(&id));
        let took = at.elapsed();
        if took > Duration::from_millis(3) {
            println!("insert {k}: {took:.1?}");
        }
        over_1ms += usize::from(took > Duration::from_millis(1));
        longest = longest.max(took);
    }
    println!("{n} inserts in {:.2?}; the longest {longest:.2?}; {over_1ms} over 1 ms", started.elapsed());
    Ok(())
}
