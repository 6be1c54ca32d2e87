//! What the criterion benches share: the reference workload of docs/design.md's figures (100k stakeholders, Zipf-skewed
//! actors, the `acme` rule set) and the timed loop that scores batches of fresh moments.

use std::cell::Cell;
use std::path::{Path, PathBuf};

use criterion::{BatchSize, Criterion, Throughput};
use plaudit_core::OrgWorld;
use plaudit_core::reads::PageQuery;
use plaudit_core::workload::{Spec, Workload};
use plaudit_sdk::Record;

pub const STAKEHOLDERS: usize = 100_000;
/// Moments scored per batch (and per iteration).
pub const BATCH: usize = 4096;
/// Moments scored before timing, so that state has grown to a realistic size.
pub const WARMUP_MOMENTS: usize = 400_000;

/// The repository's root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A fresh world for `rules/acme.toml`.
pub fn acme() -> OrgWorld {
    match OrgWorld::from_rules_file(&root().join("rules/acme.toml")) {
        Ok(w) => w,
        Err(e) => panic!("{e}"),
    }
}

/// The workload: enough moments that a bench never runs out (~40 days at this rate).
pub fn workload() -> Workload {
    Workload::new(Spec { stakeholders: STAKEHOLDERS, moments: 50_000_000, days: 1000, ..Spec::default() })
}

/// Loads the workload's profiles and [`WARMUP_MOMENTS`] moments into `world`.
pub fn warm_up(world: &mut OrgWorld, workload: &Workload) {
    world.ingest(workload.profiles().map(Record::Profile));
    for start in (0..WARMUP_MOMENTS).step_by(BATCH) {
        world.ingest(workload.moments(start, start + BATCH).map(Record::Moment));
        world.clear_effects();
    }
}

/// Benches `group/name`: each iteration scores a batch of fresh moments (new ids, later times),
/// generated outside the timed section; throughput in moments per second.
pub fn bench_batches(c: &mut Criterion, group: &str, name: &str, world: &mut OrgWorld, workload: &Workload) {
    bench_batches_then(c, group, name, world, workload, |_| {});
}

/// The top 10 of every leaderboard: what a product page shows, and what makes the lazily
/// published rankings catch up.
pub fn read_leaderboards(world: &mut OrgWorld) {
    let boards: Vec<String> = world.program().leaderboards.iter().map(|b| b.id.clone()).collect();
    for board in &boards {
        let page = world.leaderboard(board, &PageQuery { limit: 10, ..PageQuery::default() });
        std::hint::black_box(page.is_ok());
    }
}

/// [`bench_batches`], with `then` timed after every batch.
pub fn bench_batches_then(
    c: &mut Criterion,
    group: &str,
    name: &str,
    world: &mut OrgWorld,
    workload: &Workload,
    mut then: impl FnMut(&mut OrgWorld),
) {
    let next = Cell::new(WARMUP_MOMENTS);
    let mut group = c.benchmark_group(group);
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function(name, |b| {
        b.iter_batched(
            || {
                let start = next.get();
                next.set(start + BATCH);
                workload.moments(start, start + BATCH).map(Record::Moment).collect::<Vec<_>>()
            },
            |batch| {
                let outcome = world.ingest(batch);
                world.clear_effects();
                then(world);
                outcome
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}
