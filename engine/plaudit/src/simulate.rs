//! `plaudit simulate`: the what-if preview of a candidate rule set over a history.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use plaudit_core::OrgWorld;
use plaudit_core::application::Mode;
use plaudit_core::input::records;
use plaudit_core::simulate::simulate;
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
            crate::diff::print(&diff, "the published versions", &candidate.display().to_string(), &name, json, top)
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
    crate::diff::print(&diff, &rules.display().to_string(), &candidate.display().to_string(), name, json, top)
}
