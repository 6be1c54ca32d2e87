//! The hot scoring loop on the reference workload (docs/design.md, the figures): 100k stakeholders, Zipf-skewed actors,
//! the `acme` rule set (20 rules, 10 badges, 5 challenges, 3 leaderboards), batches of 4096.
//!
//! Each iteration scores a batch of fresh moments (new ids, later times), generated outside the
//! timed section; throughput is reported in moments per second. `native_acme_100k` scores only
//! (leaderboards publish lazily, when read); `native_acme_100k_read_every_batch` also reads the
//! top 10 of every leaderboard after each batch, so it pays for publishing every change.

use criterion::{Criterion, criterion_group, criterion_main};
use plaudit_benches::{acme, bench_batches, bench_batches_then, read_leaderboards, warm_up, workload};

/// The `plaudit` binary's allocator (`plaudit_allocator`), so that the figure is the
/// shipped binary's.
#[global_allocator]
static ALLOCATOR: plaudit_allocator::Allocator = plaudit_allocator::Allocator;

fn scoring(c: &mut Criterion) {
    plaudit_allocator::configure();
    let workload = workload();
    let mut world = acme();
    warm_up(&mut world, &workload);
    bench_batches(c, "scoring", "native_acme_100k", &mut world, &workload);
    let mut world = acme();
    warm_up(&mut world, &workload);
    bench_batches_then(c, "scoring", "native_acme_100k_read_every_batch", &mut world, &workload, read_leaderboards);
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = scoring
}
criterion_main!(benches);
