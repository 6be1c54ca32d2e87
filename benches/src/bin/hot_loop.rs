//! The scoring loop alone, for profiling (`perf record`) and quick A/B runs: the bench's world and
//! workload, then `BATCHES` batches of fresh moments scored and timed, with no harness around
//! them. Criterion's figure (`cargo bench --bench scoring`) is the one to report.
//!
//! `cargo run --release -p plaudit-benches --bin hot_loop -- [BATCHES] [--reads] [--stakeholders N]`
//! (`--reads`: read the top 10 of each leaderboard after every batch).

/// The `plaudit` binary's allocator (`plaudit_allocator`), so that these figures are
/// the shipped binary's.
#[global_allocator]
static ALLOCATOR: plaudit_allocator::Allocator = plaudit_allocator::Allocator;

use std::time::Instant;

use plaudit_benches::{BATCH, WARMUP_MOMENTS, acme, warm_up};
use plaudit_core::reads::PageQuery;
use plaudit_core::workload::{Spec, Workload};
use plaudit_sdk::Record;

fn main() -> Result<(), String> {
    plaudit_allocator::configure();
    let mut batches = 100;
    let mut reads = false;
    let mut stakeholders = plaudit_benches::STAKEHOLDERS;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--reads" => reads = true,
            "--stakeholders" => {
                stakeholders = args.next().and_then(|v| v.parse().ok()).ok_or("--stakeholders N")?;
            }
            n => batches = n.parse().map_err(|e| format!("{n:?}: {e}"))?,
        }
    }
    let workload = Workload::new(Spec { stakeholders, moments: 50_000_000, days: 1000, ..Spec::default() });
    let mut world = acme();
    warm_up(&mut world, &workload);
    let input: Vec<Vec<Record>> = (0..batches)
        .map(|i| {
            let start = WARMUP_MOMENTS + i * BATCH;
            workload.moments(start, start + BATCH).map(Record::Moment).collect()
        })
        .collect();
    let boards: Vec<String> = world.program().leaderboards.iter().map(|b| b.id.clone()).collect();
    let started = Instant::now();
    let mut effects = 0;
    for batch in input {
        effects += world.ingest(batch).effects;
        world.clear_effects();
        if reads {
            for board in &boards {
                let page = world.leaderboard(board, &PageQuery { limit: 10, ..PageQuery::default() });
                std::hint::black_box(page.map_err(|e| e.to_string())?);
            }
        }
    }
    let took = started.elapsed();
    let moments = batches * BATCH;
    println!(
        "{moments} moments in {took:.2?}: {:.0} moments/s, {effects} effects ({stakeholders} stakeholders{})",
        moments as f64 / took.as_secs_f64(),
        if reads { ", leaderboards read after every batch" } else { "" }
    );
    // Dropping a world of 100k stakeholders takes longer than a batch; leave it to the OS.
    std::process::exit(0)
}
