//! Organisation appends to the embedded store ([`RedbStore`]): one fsync'd commit per call, for
//! batches of 100 moments (group commit) and of 1 moment (a commit per moment). Throughput is
//! reported in moments per second.
//!
//! The database lives in a fresh directory under the system temp dir (override with
//! `PLAUDIT_BENCH_DIR`), which must be on a real disk for the numbers to mean anything: on
//! tmpfs an fsync is free.

use std::cell::Cell;
use std::path::PathBuf;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use plaudit_core::ids::OrgId;
use plaudit_sdk::{Attrs, Moment, Record};
use plaudit_store::{RedbStore, Store};

/// The `plaudit` binary's allocator (`plaudit_allocator`), so that the figure is the
/// shipped binary's.
#[global_allocator]
static ALLOCATOR: plaudit_allocator::Allocator = plaudit_allocator::Allocator;

fn moment(n: usize) -> Record {
    Record::Moment(Moment {
        id: format!("m{n}"),
        stakeholder: format!("s{}", n % 1000),
        counterpart: None,
        kind: "answer".into(),
        channel: "forum".into(),
        at: "2026-03-01T09:30:00Z".into(),
        value: Some(1.0),
        attrs: Attrs::new(),
    })
}

fn store(c: &mut Criterion) {
    plaudit_allocator::configure();
    let base = std::env::var_os("PLAUDIT_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    let dir = base.join(format!("plaudit-store-bench-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        panic!("{}: {e}", dir.display());
    }
    let store = match RedbStore::open(dir.join("bench.redb")) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    let org = match OrgId::parse("bench") {
        Ok(o) => o,
        Err(e) => panic!("{e}"),
    };
    let next = Cell::new(0usize);

    let mut group = c.benchmark_group("store");
    for batch in [100usize, 1] {
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(format!("durable_append_batch_{batch}"), |b| {
            b.iter_batched(
                || {
                    let start = next.get();
                    next.set(start + batch);
                    (start..start + batch).map(moment).collect::<Vec<_>>()
                },
                |records| match store.append(&org, &records, 0) {
                    Ok(last) => last,
                    Err(e) => panic!("{e}"),
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = store
}
criterion_main!(benches);
