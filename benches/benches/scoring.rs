//! The hot scoring loop on the DESIGN section 7 workload: 100k stakeholders, Zipf-skewed actors,
//! the `acme` rule set (20 rules, 10 badges, 5 challenges, 3 leaderboards), batches of 4096.
//!
//! Each iteration scores a batch of fresh moments (new ids, later times), generated outside the
//! timed section; throughput is reported in moments per second.

use criterion::{Criterion, criterion_group, criterion_main};
use plaudit_benches::{acme, bench_batches, warm_up, workload};

fn scoring(c: &mut Criterion) {
    let workload = workload();
    let mut world = acme();
    warm_up(&mut world, &workload);
    bench_batches(c, "scoring", "native_acme_100k", &mut world, &workload);
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = scoring
}
criterion_main!(benches);
