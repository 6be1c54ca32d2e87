//! `plaudit gen`: writes a synthetic workload as JSON lines.

use std::io::{BufWriter, Write};
use std::process::ExitCode;

use anyhow::Context;
use plaudit_core::workload::{Spec, Workload};

pub fn run(stakeholders: usize, moments: usize, seed: u64, days: u32) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(stakeholders >= 2, "--stakeholders must be at least 2");
    let w = Workload::new(Spec { stakeholders, moments, seed, days, ..Spec::default() });
    let out = std::io::stdout().lock();
    let mut out = BufWriter::with_capacity(1 << 16, out);
    for r in w.records() {
        serde_json::to_writer(&mut out, &r).context("writing to stdout")?;
        out.write_all(b"\n").context("writing to stdout")?;
    }
    out.flush().context("writing to stdout")?;
    Ok(ExitCode::SUCCESS)
}
