//! `plaudit import` and `plaudit replay`: an organisation's durable log in a data directory.
//!
//! The layout is `plaudit_engine::datadir`'s; the first import of an organisation copies its
//! rule set there.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use plaudit_engine::OrgWorld;
use plaudit_engine::datadir::DataDir;
use plaudit_engine::ids::OrgId;
use plaudit_engine::input::{ReadRecordError, records};
use plaudit_engine::log::Durable;
use plaudit_engine::store::{RedbStore, Store};

pub struct Options {
    pub data: PathBuf,
    pub org: String,
    pub rules: Option<PathBuf>,
}

/// Opens the organisation's world from its log, after settling which rule set it runs.
fn open(o: &Options) -> anyhow::Result<(Durable, plaudit_engine::log::Replayed)> {
    let org = OrgId::parse(&o.org).map_err(|e| anyhow::anyhow!("--org {:?}: {e}", o.org))?;
    std::fs::create_dir_all(&o.data).with_context(|| format!("cannot create {}", o.data.display()))?;
    let data = DataDir::new(&o.data);
    let kept = data.rules(&org);
    let rules = match (&o.rules, kept.exists()) {
        (Some(given), true) => {
            let (a, b) = (std::fs::read(given)?, std::fs::read(&kept)?);
            if a != b {
                bail!(
                    "{} differs from the rule set {org} was imported with ({}); rule-set changes are \
                     not versioned in the log yet, so a replay could not reproduce them",
                    given.display(),
                    kept.display()
                );
            }
            kept
        }
        (None, true) => kept,
        (Some(given), false) => {
            OrgWorld::from_rules_file(given)?; // refuse a bad rule set before keeping it
            std::fs::create_dir_all(kept.parent().unwrap_or(&o.data))?;
            std::fs::copy(given, &kept).with_context(|| format!("cannot copy the rule set to {}", kept.display()))?;
            kept
        }
        (None, false) => bail!("organisation {org} has no rule set in {} yet: pass --rules", o.data.display()),
    };
    let world = OrgWorld::from_rules_file(&rules)?;
    let store: Arc<dyn Store> = Arc::new(RedbStore::open(data.store())?);
    Ok(Durable::open(store, org, world)?)
}

/// Appends a moments file to the organisation's log, durably, batch by batch. With `ack`, each
/// durable batch is acknowledged on stdout as `ack LINE` (every line up to LINE is in the log,
/// a duplicate, or was reported bad).
pub fn import(o: &Options, moments: &Path, batch: usize, ack: bool) -> anyhow::Result<ExitCode> {
    let (mut durable, replayed) = open(o)?;
    eprintln!("{}: {} records in the log (replayed in {:.2?})", durable.org(), replayed.records, replayed.elapsed);
    let crate::source::Source { name, reader, bar } = crate::source::open(moments, !ack)?;
    let started = Instant::now();
    let (mut accepted, mut duplicates, mut bad, mut unparsable) = (0usize, 0usize, 0usize, 0usize);
    let mut pending = Vec::with_capacity(batch);
    let mut lines = Vec::with_capacity(batch);
    let mut out = std::io::stdout().lock();
    let mut flush = |pending: &mut Vec<_>, lines: &mut Vec<usize>, durable: &mut Durable| -> anyhow::Result<()> {
        let Some(&last) = lines.last() else { return Ok(()) };
        let outcome = durable.ingest(std::mem::take(pending))?;
        for e in &outcome.rejected {
            bad += 1;
            eprintln!("{name}:{}: {}: {}", lines[e.index], e.field, e.message);
        }
        accepted += outcome.accepted;
        duplicates += outcome.duplicates;
        lines.clear();
        if ack {
            writeln!(out, "ack {last}")?;
            out.flush()?;
        }
        Ok(())
    };
    for item in records(reader) {
        match item {
            Ok((line, record)) => {
                pending.push(record);
                lines.push(line);
                if pending.len() >= batch {
                    flush(&mut pending, &mut lines, &mut durable)?;
                }
            }
            Err(ReadRecordError::Parse { line, message }) => {
                unparsable += 1;
                eprintln!("{name}:{line}: {message}");
            }
            Err(e @ ReadRecordError::Io { .. }) => return Err(e).with_context(|| format!("reading {name}")),
        }
    }
    flush(&mut pending, &mut lines, &mut durable)?;
    bar.finish_and_clear();
    let bad = bad + unparsable;
    let elapsed = started.elapsed();
    eprintln!(
        "{name}: {accepted} accepted, {duplicates} duplicates, {bad} bad lines in {elapsed:.2?} ({:.0} records/s, durable); \
         the log ends at {}",
        accepted as f64 / elapsed.as_secs_f64().max(1e-9),
        durable.world().last_seq()
    );
    Ok(if bad > 0 { ExitCode::from(2) } else { ExitCode::SUCCESS })
}

/// Rebuilds the organisation's state from its log and reports how fast; `summary` prints the
/// final profiles, leaderboards and challenges (the same document as `score --summary`).
pub fn replay(o: &Options, summary: bool, top: usize) -> anyhow::Result<ExitCode> {
    let (durable, replayed) = open(o)?;
    let secs = replayed.elapsed.as_secs_f64().max(1e-9);
    eprintln!(
        "{}: replayed {} records in {:.2?} ({:.0} records/s), {} stakeholders",
        durable.org(),
        replayed.records,
        replayed.elapsed,
        replayed.records as f64 / secs,
        durable.world().stakeholders()
    );
    if summary {
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, &durable.world().summary(top))?;
        writeln!(out)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// An organisation's rule set (as kept by `import`) and its whole log, for `simulate --data`.
pub fn history(data: &Path, org: &str) -> anyhow::Result<(PathBuf, Vec<plaudit_sdk::Record>)> {
    let id = OrgId::parse(org).map_err(|e| anyhow::anyhow!("--org {org:?}: {e}"))?;
    let dir = DataDir::new(data);
    let rules = dir.rules(&id);
    if !rules.exists() {
        bail!("organisation {id} has no rule set in {}: import its moments first", data.display());
    }
    let store = RedbStore::open(dir.store())?;
    let mut records = Vec::new();
    let mut after = plaudit_engine::ids::Seq(0);
    loop {
        let page = store.read(&id, after, 4096)?;
        let Some(&(last, _)) = page.last() else { break };
        records.extend(page.into_iter().map(|(_, r)| r));
        after = last;
    }
    Ok((rules, records))
}
