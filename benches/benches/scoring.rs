//! The hot scoring loop on the DESIGN section 7 workload: 100k stakeholders, Zipf-skewed actors,
//! the `acme` rule set (20 rules, 10 badges, 5 challenges, 3 leaderboards), batches of 4096.
//!
//! Each iteration scores a batch of fresh moments (new ids, later times), generated outside the
//! timed section; throughput is reported in moments per second.

use std::cell::Cell;
use std::path::Path;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use plaudit_engine::OrgWorld;
use plaudit_engine::workload::{Spec, Workload};
use plaudit_sdk::Record;

const STAKEHOLDERS: usize = 100_000;
const BATCH: usize = 4096;
const WARMUP_MOMENTS: usize = 400_000;

fn acme() -> OrgWorld {
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules/acme.toml");
    match OrgWorld::from_rules_file(&rules) {
        Ok(w) => w,
        Err(e) => panic!("{e}"),
    }
}

fn scoring(c: &mut Criterion) {
    // Enough moments that the bench never runs out: ~40 days at this rate.
    let workload =
        Workload::new(Spec { stakeholders: STAKEHOLDERS, moments: 50_000_000, days: 1000, ..Spec::default() });
    let mut world = acme();
    world.ingest(workload.profiles().map(Record::Profile));
    for start in (0..WARMUP_MOMENTS).step_by(BATCH) {
        world.ingest(workload.moments(start, start + BATCH).map(Record::Moment));
        world.clear_effects();
    }
    let next = Cell::new(WARMUP_MOMENTS);
    let mut group = c.benchmark_group("scoring");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("native_acme_100k", |b| {
        b.iter_batched(
            || {
                let start = next.get();
                next.set(start + BATCH);
                workload.moments(start, start + BATCH).map(Record::Moment).collect::<Vec<_>>()
            },
            |batch| {
                let outcome = world.ingest(batch);
                world.clear_effects();
                outcome
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = scoring
}
criterion_main!(benches);
