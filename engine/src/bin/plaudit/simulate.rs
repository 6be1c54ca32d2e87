//! `plaudit simulate`: the what-if preview of a candidate rule set over a history.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use plaudit_engine::OrgWorld;
use plaudit_engine::input::records;
use plaudit_engine::retroactive::Mode;
use plaudit_engine::simulate::{Diff, simulate};
use plaudit_sdk::Record;

/// Sorts out where the history and the two rule sets come from (see `plaudit simulate --help`).
pub fn dispatch(
    rules: Option<PathBuf>,
    candidate: Option<PathBuf>,
    moments: Option<PathBuf>,
    log: Option<(PathBuf, String)>,
    json: bool,
    top: usize,
    mode: Mode,
) -> anyhow::Result<ExitCode> {
    match (log, moments) {
        (Some((data, org)), _) => {
            let candidate = match (candidate, rules) {
                (Some(c), None) | (None, Some(c)) => c,
                (Some(_), Some(_)) => bail!("with --data, give the candidate once: --rules NEW or --candidate NEW"),
                (None, None) => bail!("with --data, give the candidate rule set: --rules NEW"),
            };
            let text =
                std::fs::read_to_string(&candidate).with_context(|| format!("cannot read {}", candidate.display()))?;
            let diff = crate::data::what_if(&data, &org, &text, mode)?;
            let name = format!("the log of {org} in {}", data.display());
            print(&diff, "the published versions", &candidate.display().to_string(), &name, json, top)
        }
        (None, Some(moments)) => {
            if mode != Mode::Rebase {
                bail!(
                    "--mode {mode} needs an organisation's log (--data DIR --org ORG): a moments file has no history of versions"
                );
            }
            let (Some(rules), Some(candidate)) = (rules, candidate) else {
                bail!("give --rules CURRENT and --candidate NEW with a moments file");
            };
            let crate::source::Source { name, reader, bar } = crate::source::open(&moments, true)?;
            let mut history: Vec<Record> = Vec::new();
            for item in records(reader) {
                let (_, record) = item.with_context(|| format!("reading {name}"))?;
                history.push(record);
            }
            bar.finish_and_clear();
            run(&rules, &candidate, &name, history, json, top)
        }
        (None, None) => bail!("give a moments file, or --data DIR --org ORG for an organisation's log"),
    }
}

fn run(
    rules: &Path,
    candidate: &Path,
    name: &str,
    history: Vec<Record>,
    json: bool,
    top: usize,
) -> anyhow::Result<ExitCode> {
    let mut current = OrgWorld::from_rules_file(rules)?;
    let mut proposed = OrgWorld::from_rules_file(candidate)?;
    let diff = simulate(&mut current, &mut proposed, history, 1024);
    print(&diff, &rules.display().to_string(), &candidate.display().to_string(), name, json, top)
}

pub fn print(d: &Diff, current: &str, candidate: &str, name: &str, json: bool, top: usize) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, d)?;
        writeln!(out)?;
    } else {
        table(&mut out, d, current, candidate, name, top)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn signed(d: i64) -> String {
    if d > 0 { format!("+{d}") } else { d.to_string() }
}

fn table(out: &mut impl Write, d: &Diff, current: &str, candidate: &str, name: &str, top: usize) -> anyhow::Result<()> {
    writeln!(out, "what-if: {current} -> {candidate} over {name}")?;
    writeln!(out, "{} records, {} stakeholders, {} would change", d.records, d.stakeholders, d.changed)?;
    writeln!(out, "\n{:<16} {:>14} {:>14} {:>12}", "currency", "current", "candidate", "change")?;
    for (c, (a, b)) in &d.totals {
        writeln!(out, "{c:<16} {a:>14} {b:>14} {:>12}", signed(b - a))?;
    }
    writeln!(
        out,
        "\nbadges: {} gained, {} lost, {} changed tier or count; levels changed: {}; rank changes: {}",
        d.badges_gained, d.badges_lost, d.badges_changed, d.level_changes, d.rank_changes
    )?;
    if !d.completions.is_empty() {
        writeln!(out, "\n{:<24} {:>10} {:>10} {:>8}", "challenge completions", "current", "candidate", "change")?;
        for (c, (a, b)) in &d.completions {
            writeln!(out, "{c:<24} {a:>10} {b:>10} {:>8}", signed(*b as i64 - *a as i64))?;
        }
    }
    if !d.details.is_empty() {
        writeln!(out, "\nlargest changes:")?;
    }
    for s in d.details.iter().take(top) {
        let mut parts: Vec<String> =
            s.currencies.iter().map(|(c, (a, b))| format!("{c} {a} -> {b} ({})", signed(b - a))).collect();
        let standing = |x: &Option<String>| x.clone().unwrap_or_else(|| "none".to_string());
        parts.extend(s.badges.iter().map(|(b, (x, y))| format!("badge {b} {} -> {}", standing(x), standing(y))));
        if let Some((a, b)) = &s.level {
            parts.push(format!("level {} -> {}", a.as_deref().unwrap_or("-"), b.as_deref().unwrap_or("-")));
        }
        let rank = |r: &Option<usize>| r.map_or("-".to_string(), |r| r.to_string());
        parts.extend(s.ranks.iter().map(|(board, (a, b))| format!("rank {board} {} -> {}", rank(a), rank(b))));
        writeln!(out, "  {:<12} {}", s.id, parts.join("; "))?;
    }
    Ok(())
}
