//! `plaudit score`: scores a moments file against a rule set.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use indicatif::ProgressBar;
use plaudit_core::OrgWorld;
use plaudit_core::input::{ReadRecordError, records};
use plaudit_sdk::Record;

pub struct Options {
    pub rules: PathBuf,
    pub moments: PathBuf,
    pub summary: bool,
    pub top: usize,
    pub skip_bad: bool,
    pub batch: usize,
    pub plugins: Vec<PathBuf>,
}

pub fn run(o: &Options) -> anyhow::Result<ExitCode> {
    let mut world = OrgWorld::from_rules_file(&o.rules)?;
    // The sandbox engine lives as long as the run; it is only started if a plugin is given.
    let _host = if o.plugins.is_empty() { None } else { Some(crate::plugin::install(&mut world, &o.plugins)?) };
    let crate::source::Source { name, reader, bar: progress } = crate::source::open(&o.moments, true)?;
    let out = BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let mut run = Run {
        world: &mut world,
        o,
        name: &name,
        out,
        pending: Vec::with_capacity(o.batch),
        lines: Vec::with_capacity(o.batch),
        accepted: 0,
        duplicates: 0,
        bad: 0,
    };
    for item in records(reader) {
        match item {
            Ok((line, record)) => {
                run.pending.push(record);
                run.lines.push(line);
                if run.pending.len() >= o.batch && run.flush()? {
                    return stopped(&progress);
                }
            }
            Err(ReadRecordError::Parse { line, source }) => {
                run.bad += 1;
                match &source.field {
                    Some(field) => eprintln!("{name}:{line}: {field}: {}", source.message),
                    None => eprintln!("{name}:{line}: {}", source.message),
                }
                if !o.skip_bad {
                    run.flush()?;
                    run.out.flush()?;
                    return stopped(&progress);
                }
            }
            Err(e @ ReadRecordError::Io { .. }) => return Err(e).with_context(|| format!("reading {name}")),
        }
    }
    if run.flush()? {
        return stopped(&progress);
    }
    progress.finish_and_clear();
    if o.summary {
        serde_json::to_writer_pretty(&mut run.out, &run.world.summary(o.top))?;
        run.out.write_all(b"\n")?;
    }
    run.out.flush().context("writing to stdout")?;
    eprintln!(
        "{name}: {} accepted, {} duplicates, {} bad lines, {} stakeholders",
        run.accepted,
        run.duplicates,
        run.bad,
        run.world.stakeholders()
    );
    crate::plugin::report(run.world);
    Ok(if run.bad > 0 { ExitCode::from(2) } else { ExitCode::SUCCESS })
}

/// A scoring run in progress: records waiting for the next batch, and the counts so far.
struct Run<'a, W: Write> {
    world: &'a mut OrgWorld,
    o: &'a Options,
    name: &'a str,
    out: W,
    pending: Vec<Record>,
    /// Line number of each pending record.
    lines: Vec<usize>,
    accepted: usize,
    duplicates: usize,
    bad: usize,
}

impl<W: Write> Run<'_, W> {
    /// Scores the pending records and writes their effects. True if a bad record should stop
    /// the run.
    fn flush(&mut self) -> anyhow::Result<bool> {
        let outcome = self.world.ingest(self.pending.drain(..));
        self.accepted += outcome.accepted;
        self.duplicates += outcome.duplicates;
        let mut stop = false;
        for e in &outcome.rejected {
            self.bad += 1;
            eprintln!("{}:{}: {}: {}", self.name, self.lines[e.index], e.field, e.message);
            stop |= !self.o.skip_bad;
        }
        self.lines.clear();
        if self.o.summary {
            self.world.clear_effects();
        } else {
            for effect in self.world.drain_effects() {
                serde_json::to_writer(&mut self.out, &effect)?;
                self.out.write_all(b"\n")?;
            }
        }
        Ok(stop)
    }
}

fn stopped(progress: &ProgressBar) -> anyhow::Result<ExitCode> {
    progress.finish_and_clear();
    eprintln!("stopped at the first bad line (use --on-error skip to go on)");
    Ok(ExitCode::FAILURE)
}
