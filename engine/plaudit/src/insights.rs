//! `plaudit insights`: what a community manager reads, from a data directory (the numbers the
//! HTTP API's `/insights/...` routes give, all at once).
//!
//! **Owns** the command's text layout. The numbers are the core's
//! ([`plaudit_core::insights::reads`]) over the organisation's world rebuilt from its log.

use std::fmt::Write as _;
use std::io::Write as _;
use std::process::ExitCode;

use anyhow::anyhow;
use plaudit_core::insights::reads::{
    Activity, Bridges, ChallengeInsight, Champion, Champions, Goals, PeopleFilter, Quiet,
};

use crate::data::{Options, open};

/// Everything, as `--json` prints it.
struct Report {
    organisation: String,
    activity: Activity,
    bridges: Bridges,
    champions: Champions,
    quiet: Quiet,
    challenges: Vec<ChallengeInsight>,
    goals: Goals,
}

pub struct Args {
    pub from: Option<String>,
    pub to: Option<String>,
    pub week: Option<String>,
    pub limit: usize,
    pub json: bool,
}

pub fn run(o: &Options, a: &Args) -> anyhow::Result<ExitCode> {
    let (mut durable, _) = open(o)?;
    let organisation = durable.org().to_string();
    let challenges: Vec<String> = durable.world().program().challenges.iter().map(|c| c.id.clone()).collect();
    let people = PeopleFilter { limit: Some(a.limit), week: a.week.clone(), ..PeopleFilter::default() };
    let to = a.to.as_deref().or(a.week.as_deref());
    let report = durable.world_mut().insights(|r| -> Result<Report, plaudit_core::insights::reads::InsightsError> {
        if let Some(week) = a.week.as_deref() {
            r.week_of("week", week)?;
        }
        Ok(Report {
            organisation,
            activity: r.activity(a.from.as_deref(), to, None)?,
            bridges: r.bridges(a.week.as_deref())?,
            champions: r.champions(&people)?,
            quiet: r.quiet(&people)?,
            challenges: challenges.iter().map(|c| r.challenge(c, None)).collect::<Result<_, _>>()?,
            goals: r.goals(a.from.as_deref(), to)?,
        })
    });
    let report = report.map_err(|e| anyhow!("{}", cli_message(&e)))?;
    let mut out = std::io::stdout().lock();
    if a.json {
        let r = &report;
        let doc = serde_json::json!({
            "organisation": r.organisation,
            "activity": r.activity,
            "bridges": r.bridges,
            "champions": r.champions,
            "quiet": r.quiet,
            "challenges": r.challenges,
            "goals": r.goals,
        });
        serde_json::to_writer_pretty(&mut out, &doc)?;
        writeln!(out)?;
    } else {
        out.write_all(text(&report).as_bytes())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// An error naming the option rather than the HTTP parameter.
fn cli_message(e: &plaudit_core::insights::reads::InsightsError) -> String {
    use plaudit_core::insights::reads::InsightsError;
    match e {
        InsightsError::Invalid { field, message } => format!("--{field}: {message}"),
        other => other.to_string(),
    }
}

fn text(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "organisation {}", r.organisation);
    if r.activity.weeks.is_empty() {
        let _ = writeln!(s, "\nno scored moments yet");
        return s;
    }
    let _ = writeln!(s, "\nactivity per week ({} to {})", r.activity.from, r.activity.to);
    let _ = writeln!(
        s,
        "  {:<10} {:>8} {:>9} {:>5} {:>7} {:>11}  points",
        "week", "active", "moments", "new", "badges", "completions"
    );
    for w in &r.activity.weeks {
        let points: Vec<String> = w.points.iter().map(|(c, n)| format!("{c} {n}")).collect();
        let _ = writeln!(
            s,
            "  {:<10} {:>8} {:>9} {:>5} {:>7} {:>11}  {}",
            w.week,
            w.active,
            w.moments,
            w.new_stakeholders,
            w.badges,
            w.completions,
            points.join(", ")
        );
    }
    let _ = writeln!(s, "\nbridges in the week of {}", r.bridges.week);
    for b in &r.bridges.matrix {
        let new = if b.new { "  new" } else { "" };
        let _ = writeln!(
            s,
            "  {} -> {}: {} moments, {} -> {} people{new}",
            b.team, b.counterpart_team, b.moments, b.actors, b.counterparts
        );
    }
    let c = &r.champions;
    let _ = writeln!(s, "\nchampions, {} to {}", c.from, c.to);
    for (title, rows) in
        [("top", &c.top), ("rising", &c.rising), ("falling", &c.falling), ("connectors", &c.connectors)]
    {
        let _ = writeln!(s, "  {title}:");
        for (i, ch) in rows.iter().enumerate() {
            let _ = writeln!(s, "    {:>3}. {}", i + 1, champion(ch));
        }
    }
    let _ = writeln!(
        s,
        "\ngone quiet (active {}+ of the 8 weeks before the last 2), as of {}",
        r.quiet.min_weeks, r.quiet.week
    );
    for q in &r.quiet.stakeholders {
        let _ = writeln!(
            s,
            "  {} ({}, {}): {} weeks active, last moment {}",
            q.stakeholder,
            q.kind.as_deref().unwrap_or("-"),
            q.team.as_deref().unwrap_or("-"),
            q.weeks_active,
            q.last_moment
        );
    }
    for ch in &r.challenges {
        let _ = writeln!(s, "\nchallenge {} ({})", ch.challenge, ch.name);
        for w in &ch.windows {
            let _ = writeln!(
                s,
                "  {}: {} participants, {} halfway, {} completed ({}%)",
                w.window, w.participants, w.halfway, w.completed, w.completion_rate
            );
        }
    }
    for g in &r.goals.goals {
        let _ = writeln!(s, "\ngoal {} ({}): {} >= {} a week", g.goal, g.name, g.measure, g.target);
        for w in &g.weeks {
            let _ = writeln!(s, "  {}: {} {}", w.week, w.actual, if w.met { "met" } else { "missed" });
        }
    }
    s
}

fn champion(c: &Champion) -> String {
    format!(
        "{} ({}, {}): score {} (before {}), {} moments, {} counterparts, {} teams, {} channels",
        c.stakeholder,
        c.kind.as_deref().unwrap_or("-"),
        c.team.as_deref().unwrap_or("-"),
        c.score,
        c.previous_score,
        c.moments,
        c.counterparts,
        c.teams,
        c.channels
    )
}
