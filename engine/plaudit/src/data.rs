//! `plaudit import` and `plaudit replay`: an organisation's durable log in a data directory.
//!
//! The layout is `plaudit_server::datadir`'s; the first import of an organisation records its
//! rule set in the log as version 1, and a later `--rules` that differs as the next version.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use plaudit_core::application::Mode;
use plaudit_core::ids::OrgId;
use plaudit_core::input::{ReadRecordError, records};
use plaudit_core::ruleset::Format;
use plaudit_server::datadir::DataDir;
use plaudit_server::organisation::Organisation;
use plaudit_store::Store;

pub struct Options {
    pub data: PathBuf,
    pub org: String,
    pub rules: Option<PathBuf>,
    /// Replay every record of the log, ignoring the snapshot.
    pub from_start: bool,
}

/// Opens the organisation's world from its log. With `--rules`, an organisation without a log
/// is created with that rule set, and one whose rule set differs gets it published as a new
/// version, in force from the next record.
pub fn open(o: &Options) -> anyhow::Result<(Organisation, plaudit_server::organisation::Replayed)> {
    let org = OrgId::parse(&o.org).map_err(|e| anyhow::anyhow!("--org {:?}: {e}", o.org))?;
    let data = DataDir::new(&o.data);
    // Only a command that can create the organisation makes the directory and the store: a
    // mistyped `--data` for a read leaves nothing behind.
    let setting = store_setting();
    if o.rules.is_none() && setting.is_none() && !data.store().exists() {
        bail!("no data in {}: `plaudit import --rules FILE` or `plaudit serve` creates it", o.data.display());
    }
    std::fs::create_dir_all(&o.data).with_context(|| format!("cannot create {}", o.data.display()))?;
    let store = data.open_store(setting.as_deref())?;
    let given = match &o.rules {
        Some(path) => Some(std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?),
        None => None,
    };
    let Some((mut durable, replayed)) = data.open_org(&store, &org, None, o.from_start)? else {
        let (Some(text), Some(path)) = (given, &o.rules) else {
            bail!(
                "organisation {org} has no log in {} yet: `plaudit import --rules FILE` creates it",
                o.data.display()
            );
        };
        std::fs::create_dir_all(data.org(&org))?;
        let durable = Organisation::create(store, org, &text, Format::Toml)
            .with_context(|| format!("creating the organisation from {}", path.display()))?;
        eprintln!("{}: created with {} as rule-set version 1", durable.org(), path.display());
        return Ok((
            durable,
            plaudit_server::organisation::Replayed { records: 0, elapsed: std::time::Duration::ZERO, snapshot: None },
        ));
    };
    if let (Some(text), Some(path)) = (given, &o.rules)
        && (text != durable.rules().text || durable.rules().format != Format::Toml)
    {
        let published =
            durable.publish_rules(&text, Format::Toml).with_context(|| format!("publishing {}", path.display()))?;
        eprintln!(
            "{}: published {} as rule-set version {}, in force after record {}",
            o.org,
            path.display(),
            published.version,
            published.after
        );
    }
    Ok((durable, replayed))
}

/// Appends a moments file to the organisation's log, durably, batch by batch. With `ack`, each
/// durable batch is acknowledged on stdout as `ack LINE` (every line up to LINE is in the log,
/// a duplicate, or was reported bad).
pub fn import(o: &Options, moments: &Path, batch: usize, ack: bool, snapshot_every: u64) -> anyhow::Result<ExitCode> {
    let (mut durable, replayed) = open(o)?;
    eprintln!("{}: {} (in {:.2?})", durable.org(), opened(&durable, &replayed), replayed.elapsed);
    let crate::source::Source { name, reader, bar } = crate::source::open(moments, !ack)?;
    let started = Instant::now();
    let (mut accepted, mut duplicates, mut bad, mut unparsable) = (0usize, 0usize, 0usize, 0usize);
    let mut pending = Vec::with_capacity(batch);
    let mut lines = Vec::with_capacity(batch);
    let mut out = std::io::stdout().lock();
    let mut flush = |pending: &mut Vec<_>, lines: &mut Vec<usize>, durable: &mut Organisation| -> anyhow::Result<()> {
        let Some(&last) = lines.last() else { return Ok(()) };
        let outcome = durable.ingest(std::mem::take(pending))?;
        for e in &outcome.rejected {
            bad += 1;
            let conflict = if e.code == plaudit_core::resolve::ID_CONFLICT { "id conflict: " } else { "" };
            eprintln!("{name}:{}: {conflict}{}: {}", lines[e.index], e.field, e.message);
        }
        accepted += outcome.accepted;
        duplicates += outcome.duplicates;
        lines.clear();
        if snapshot_every > 0 && durable.since_snapshot() >= snapshot_every {
            durable.snapshot()?;
        }
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
            Err(ReadRecordError::Parse { line, source }) => {
                unparsable += 1;
                match &source.field {
                    Some(field) => eprintln!("{name}:{line}: {field}: {}", source.message),
                    None => eprintln!("{name}:{line}: {}", source.message),
                }
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
    if accepted > 0 {
        report_snapshot(&mut durable)?;
    }
    Ok(if bad > 0 { ExitCode::from(2) } else { ExitCode::SUCCESS })
}

/// How the organisation was opened: from a snapshot and the log after it, or the log alone.
fn opened(durable: &Organisation, replayed: &plaudit_server::organisation::Replayed) -> String {
    let last = durable.world().last_seq();
    match replayed.snapshot {
        Some((seq, took)) => format!(
            "{last} records in the log; snapshot at {seq} restored in {took:.2?}, {} records replayed after it",
            replayed.records
        ),
        None => format!("{last} records in the log, {} replayed", replayed.records),
    }
}

/// Takes a snapshot of the organisation and says what it cost.
fn report_snapshot(durable: &mut Organisation) -> anyhow::Result<()> {
    let s = durable.snapshot()?;
    eprintln!(
        "{}: snapshot at {}: {} stakeholders, {} moments, {:.1} MB, taken in {:.2?}, stored in {:.2?}",
        durable.org(),
        s.seq,
        s.stakeholders,
        s.moments,
        s.bytes as f64 / 1e6,
        s.capture,
        s.write
    );
    Ok(())
}

/// Takes a snapshot of an organisation now, so that the next start replays only what comes
/// after it.
pub fn snapshot(o: &Options) -> anyhow::Result<ExitCode> {
    let (mut durable, replayed) = open(o)?;
    eprintln!("{}: {} (in {:.2?})", durable.org(), opened(&durable, &replayed), replayed.elapsed);
    report_snapshot(&mut durable)?;
    Ok(ExitCode::SUCCESS)
}

/// Rebuilds the organisation's state from its log and reports how fast; `summary` prints the
/// final profiles, leaderboards and challenges (the same document as `score --summary`).
pub fn replay(o: &Options, summary: bool, top: usize) -> anyhow::Result<ExitCode> {
    let (mut durable, replayed) = open(o)?;
    let secs = replayed.elapsed.as_secs_f64().max(1e-9);
    let from = match replayed.snapshot {
        Some((seq, took)) => format!(" after the snapshot at {seq} (restored in {took:.2?})"),
        None => " from the start".to_string(),
    };
    eprintln!(
        "{}: replayed {} records{from} in {:.2?} ({:.0} records/s), {} stakeholders",
        durable.org(),
        replayed.records,
        replayed.elapsed,
        replayed.records as f64 / secs,
        durable.world().stakeholders()
    );
    if summary {
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, &durable.world_mut().summary(top))?;
        writeln!(out)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `plaudit export`: everything held about stakeholder `id`, as one JSON document on stdout.
pub fn export(o: &Options, id: &str) -> anyhow::Result<ExitCode> {
    let (mut durable, _) = open(o)?;
    let Some(held) = durable.export_state(id)? else {
        bail!("{}: no stakeholder {id:?}", durable.org());
    };
    let export = plaudit_server::organisation::export::assemble(durable.store().as_ref(), durable.org(), id, held)?;
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &export)?;
    writeln!(out)?;
    eprintln!(
        "{}: {id}: {} records of the log, {} gains, as of record {}",
        durable.org(),
        export.records.len(),
        export.effects.len(),
        export.as_of
    );
    Ok(ExitCode::SUCCESS)
}

/// `plaudit erase`: erases stakeholder `id` (see [`plaudit_server::organisation::erasure`]),
/// revoking their scoped keys first, then takes a snapshot of the organisation without them.
pub fn erase(o: &Options, id: &str) -> anyhow::Result<ExitCode> {
    let (mut durable, _) = open(o)?;
    if !durable.world().knows(id) {
        bail!("{}: no stakeholder {id:?}", durable.org());
    }
    let keys = plaudit_server::http::keys::revoke_stored(durable.store().as_ref(), durable.org(), id)?;
    let Some(erased) = durable.erase(id)? else {
        bail!("{}: no stakeholder {id:?}", durable.org());
    };
    durable.snapshot()?;
    println!("{}", erased.pseudonym);
    eprintln!(
        "{}: {id} erased in {} ms: {} records of the log now name {}, {} scoped keys revoked; no file of {} holds them",
        durable.org(),
        erased.took.as_millis(),
        erased.records,
        erased.pseudonym,
        keys.len(),
        o.data.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// What-if over an organisation's log: the candidate rule set `text` against the versions it
/// lived through, as applying it to history in `mode` would leave it.
pub fn what_if(data: &Path, org: &str, text: &str, mode: Mode) -> anyhow::Result<plaudit_core::simulate::Diff> {
    let (store, id) = org_store(data, org)?;
    Ok(plaudit_server::organisation::what_if(store, &id, text, Format::Toml, mode)?)
}

/// `plaudit key`: a new API key for `org`, stored hashed and printed once.
pub fn key(data: &Path, org: &str) -> anyhow::Result<ExitCode> {
    let (store, id) = org_store(data, org)?;
    let key = plaudit_server::http::new_key()?;
    store.set_org_key(&id, plaudit_server::http::key_hash(&key))?;
    println!("{key}");
    eprintln!(
        "{id}: a new API key (shown once; only its SHA-256 is kept). A server running now takes it at its next start."
    );
    Ok(ExitCode::SUCCESS)
}

/// The store the commands use, as the server's `store` setting names it: `PLAUDIT_STORE` (a
/// `postgres://` URL), or, unset, the embedded store of the data directory.
fn store_setting() -> Option<String> {
    std::env::var("PLAUDIT_STORE").ok().filter(|s| !s.trim().is_empty())
}

/// The store of `data`, holding organisation `org`'s log.
fn org_store(data: &Path, org: &str) -> anyhow::Result<(Arc<dyn Store>, OrgId)> {
    let id = OrgId::parse(org).map_err(|e| anyhow::anyhow!("--org {org:?}: {e}"))?;
    let dir = DataDir::new(data);
    let store = dir.open_store(store_setting().as_deref())?;
    if !Organisation::exists(store.as_ref(), &id)? {
        bail!("organisation {id} has no log in {}: import its moments first", data.display());
    }
    Ok((store, id))
}

/// `plaudit apply`: previews applying the rule set in force (or `--rules`) to history in
/// `mode`; with `confirm`, publishes `--rules` if it differs and applies it.
pub fn apply(o: &Options, mode: Mode, confirm: bool, json: bool, top: usize) -> anyhow::Result<ExitCode> {
    if !confirm {
        let (store, id) = org_store(&o.data, &o.org)?;
        let (text, name) = match &o.rules {
            Some(path) => (
                std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?,
                path.display().to_string(),
            ),
            None => {
                let changes = store.changes(&id)?;
                let in_force = changes.iter().rev().find_map(|c| match &c.change {
                    plaudit_store::Change::Rules { text, .. } => Some(text.clone()),
                    _ => None,
                });
                let n = changes.iter().filter(|c| matches!(c.change, plaudit_store::Change::Rules { .. })).count();
                (in_force.context("the log holds no rule set")?, format!("rule-set version {n}"))
            }
        };
        let diff = plaudit_server::organisation::what_if(store, &id, &text, Format::Toml, mode)?;
        let history = format!("the log of {id} in {}", o.data.display());
        crate::diff::print(&diff, "the published versions", &format!("{name}, {mode}"), &history, json, top)?;
        eprintln!("preview only: nothing was changed; add --confirm to apply it ({mode})");
        return Ok(ExitCode::SUCCESS);
    }
    let (mut durable, _) = open(o)?;
    let started = Instant::now();
    let applied = durable.apply_to_history(mode)?;
    eprintln!(
        "{}: rule-set version {} applied to the history up to record {} ({mode}): {} effects, in {:.2?}",
        durable.org(),
        applied.version,
        applied.after.0,
        applied.effects,
        started.elapsed()
    );
    report_snapshot(&mut durable)?;
    Ok(ExitCode::SUCCESS)
}
