//! Resident memory per stakeholder at 1 M stakeholders, without history and insights (target:
//! <= 512 B).
//!
//! ```text
//! cargo run --release -p plaudit-benches --bin memory -- [MOMENTS] [STAKEHOLDERS]
//! ```
//!
//! Builds the `acme` world, ingests the profiles of a synthetic workload (defaults: 1,000,000
//! stakeholders, 10,000,000 moments over 60 days, Zipf-skewed actors) and then its moments in
//! batches of 4096, dropping the effects after each batch. Reports the process's resident set
//! (`VmRSS` from `/proc/self/status`, Linux only) at each step, and splits it with
//! [`OrgWorld::memory`]: history (moment ids and the award ledger) and insights (a fact per
//! moment), which grow with the moments and are not part of the target, and stakeholder state
//! by part. What the world's own counts
//! do not explain (bevy's per-entity bookkeeping, allocator overhead, spare capacity) is shown
//! as "not counted".
//!
//! The workload generator's tables are built before the first reading, so they are not
//! charged to the world.

/// The `plaudit` binary's allocator (`plaudit_allocator`), so that these figures are
/// the shipped binary's.
#[global_allocator]
static ALLOCATOR: plaudit_allocator::Allocator = plaudit_allocator::Allocator;

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use plaudit_core::OrgWorld;
use plaudit_core::workload::{Spec, Workload};
use plaudit_sdk::Record;

const BATCH: usize = 4096;
const TARGET: f64 = 512.0;
const MIB: f64 = 1024.0 * 1024.0;

/// A field of `/proc/self/status` (`VmRSS`, `VmHWM`), in bytes.
fn status_bytes(field: &str) -> Result<usize, String> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(|e| format!("/proc/self/status: {e}"))?;
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .ok_or_else(|| format!("no {field} in /proc/self/status"))?;
    let kib: usize = line
        .trim()
        .strip_suffix("kB")
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| format!("unreadable {field}: {line:?}"))?;
    Ok(kib * 1024)
}

fn rss() -> Result<usize, String> {
    status_bytes("VmRSS")
}

/// A count from the command line; `_` separators allowed (`10_000_000`).
fn count(arg: Option<String>, default: usize, what: &str) -> Result<usize, String> {
    match arg {
        None => Ok(default),
        Some(a) => a.replace('_', "").parse().map_err(|_| format!("{what}: not a count: {a:?}")),
    }
}

fn per(bytes: usize, n: usize) -> f64 {
    bytes as f64 / n.max(1) as f64
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let moments = count(args.next(), 10_000_000, "MOMENTS")?;
    let stakeholders = count(args.next(), 1_000_000, "STAKEHOLDERS")?;
    if args.next().is_some() {
        return Err("usage: memory [MOMENTS] [STAKEHOLDERS]".to_string());
    }

    let workload = Workload::new(Spec { stakeholders, moments, days: 60, ..Spec::default() });
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules/acme.toml");
    let start = rss()?;
    let t0 = Instant::now();

    let mut world = OrgWorld::from_rules_file(&rules).map_err(|e| format!("{}: {e}", rules.display()))?;
    world.ingest(workload.profiles().map(Record::Profile));
    world.clear_effects();
    let profiles_rss = rss()?;
    let profiles_mem = world.memory();
    eprintln!("profiles: {} stakeholders in {:.1?}", world.stakeholders(), t0.elapsed());

    let mut rejected = 0;
    let mut next_report = moments / 10;
    for from in (0..moments).step_by(BATCH) {
        let outcome = world.ingest(workload.moments(from, (from + BATCH).min(moments)).map(Record::Moment));
        rejected += outcome.rejected.len();
        world.clear_effects();
        if from + BATCH >= next_report && from + BATCH < moments {
            eprintln!("moments: {} in {:.1?}, RSS {:.0} MiB", from + BATCH, t0.elapsed(), rss()? as f64 / MIB);
            next_report += moments / 10;
        }
    }
    let elapsed = t0.elapsed();
    let end = rss()?;
    let peak = status_bytes("VmHWM")?;
    let mem = world.memory();
    if rejected > 0 {
        return Err(format!("{rejected} records rejected: the workload no longer fits the rule set"));
    }

    let n = mem.stakeholders;
    let total = end.saturating_sub(start);
    let state = total.saturating_sub(mem.history_bytes + mem.insights_bytes);
    println!("plaudit memory: rules/acme.toml, {n} stakeholders, {moments} moments over 60 days, batches of {BATCH}");
    println!();
    println!(
        "| stakeholders | moments | RSS total | RSS / stakeholder | history | insights | (RSS - history - insights) / stakeholder | time |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {n} | {moments} | {:.1} MiB | {:.0} B | {:.1} MiB | {:.1} MiB | **{:.0} B** | {:.1} s |",
        total as f64 / MIB,
        per(total, n),
        mem.history_bytes as f64 / MIB,
        mem.insights_bytes as f64 / MIB,
        per(state, n),
        elapsed.as_secs_f64(),
    );
    println!();
    println!(
        "target <= {TARGET:.0} B per stakeholder without history and insights: {}",
        if per(state, n) <= TARGET { "met" } else { "NOT met" }
    );
    println!(
        "RSS at start {:.1} MiB, after profiles {:.1} MiB (+{:.0} B / stakeholder), at end {:.1} MiB, peak {:.1} MiB",
        start as f64 / MIB,
        profiles_rss as f64 / MIB,
        per(profiles_rss.saturating_sub(start), n),
        end as f64 / MIB,
        peak as f64 / MIB,
    );

    println!(
        "history counted by length (resident); with spare capacity it has reserved {:.1} MiB",
        mem.history_capacity_bytes as f64 / MIB
    );
    println!();
    println!("Where it goes (bytes per stakeholder; counted from the world's collections):");
    println!();
    println!("| part | after profiles | at end | heap allocations at end |");
    println!("|---|---:|---:|---:|");
    let mut rows: Vec<(String, usize, usize, Option<usize>)> = vec![
        ("history: moment ids + ledger (excluded)".into(), profiles_mem.history_bytes, mem.history_bytes, None),
        (
            "insights: a fact per moment, weekly totals, challenge windows (excluded)".into(),
            profiles_mem.insights_bytes,
            mem.insights_bytes,
            None,
        ),
        ("directory: stakeholder ids + entries".into(), profiles_mem.directory_bytes, mem.directory_bytes, None),
        (
            format!("leaderboards: {} keys (lower bound)", mem.leaderboard_keys),
            profiles_mem.leaderboard_bytes,
            mem.leaderboard_bytes,
            None,
        ),
        ("team challenges".into(), profiles_mem.team_challenge_bytes, mem.team_challenge_bytes, None),
    ];
    for (before, after) in profiles_mem.components.iter().zip(&mem.components) {
        rows.push((format!("{} (inline in bevy's table)", after.name), before.inline, after.inline, None));
        if after.heap > 0 {
            rows.push((format!("{} (heap)", after.name), before.heap, after.heap, Some(after.allocations)));
        }
    }
    let counted_before: usize = rows.iter().map(|r| r.1).sum();
    let counted: usize = rows.iter().map(|r| r.2).sum();
    rows.push((
        "not counted: bevy bookkeeping, allocator overhead, spare capacity".into(),
        profiles_rss.saturating_sub(start).saturating_sub(counted_before),
        total.saturating_sub(counted),
        None,
    ));
    rows.sort_by_key(|r| std::cmp::Reverse(r.2));
    for (name, before, after, allocations) in rows {
        let allocations = allocations.map_or(String::new(), |a| a.to_string());
        println!("| {name} | {:.1} | {:.1} | {allocations} |", per(before, n), per(after, n));
    }
    Ok(())
}

fn main() -> ExitCode {
    plaudit_allocator::configure();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("memory: {e}");
            ExitCode::FAILURE
        }
    }
}
