//! A what-if's diff as `plaudit simulate` and `plaudit apply` print it: a summary for people,
//! or the whole diff as JSON.

use std::io::Write;
use std::process::ExitCode;

use plaudit_core::simulate::Diff;

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

fn signed(d: i64) -> String {
    if d > 0 { format!("+{d}") } else { d.to_string() }
}
