//! Challenges: recurring windows, fixed windows, distinct-team goals, team challenges with
//! shared rewards, pausing.

use plaudit_sdk::{EffectKind, Record};
use plaudit_tests::*;

fn completed(fx: &[plaudit_sdk::Effect]) -> Vec<String> {
    fx.iter()
        .filter_map(|e| match &e.kind {
            EffectKind::ChallengeCompleted { challenge, window } => {
                Some(format!("{}:{challenge}@{window}", e.stakeholder))
            }
            _ => None,
        })
        .collect()
}

const BRIDGE: &str = r#"
[[challenge]]
id = "bridge"
window = "week"
match = { has_counterpart = true }
goal = { moments = 3, distinct_teams = 2 }
reward = [{ currency = "coins", amount = 30 }]
"#;

fn people() -> Vec<Record> {
    vec![
        profile("ann", "employee", "sales"),
        profile("s1", "employee", "sales"),
        profile("h1", "employee", "hr"),
        profile("f1", "employee", "finance"),
    ]
}

#[test]
fn individual_challenge_needs_every_part_of_its_goal() {
    let mut w = world(BRIDGE);
    let mut records = people();
    for (i, cp) in ["s1", "h1", "h1", "s1"].iter().enumerate() {
        records.push(Record::Moment(m(&format!("{i}"), "ann", "chat", "chat", "2026-03-03T10:00:00Z").with(cp)));
    }
    let fx = run(&mut w, records);
    assert!(completed(&fx).is_empty(), "4 moments but only one other team");
    let fx = score(&mut w, vec![m("5", "ann", "chat", "chat", "2026-03-04T10:00:00Z").with("f1")]);
    assert_eq!(completed(&fx), ["ann:bridge@2026-03-02"]);
    assert_eq!(points(&fx, "ann", "coins"), 30);
    let again = score(&mut w, vec![m("6", "ann", "chat", "chat", "2026-03-05T10:00:00Z").with("f1")]);
    assert!(of_type(&again, "challenge_progressed").is_empty(), "completed for this week");
}

#[test]
fn recurring_window_starts_over_each_week() {
    let mut w = world(BRIDGE);
    let mut records = people();
    for (i, (cp, at)) in
        [("h1", "2026-03-06T10:00:00Z"), ("f1", "2026-03-07T10:00:00Z"), ("h1", "2026-03-09T10:00:00Z")]
            .iter()
            .enumerate()
    {
        records.push(Record::Moment(m(&format!("{i}"), "ann", "chat", "chat", at).with(cp)));
    }
    let fx = run(&mut w, records);
    let progress: Vec<u32> = fx
        .iter()
        .filter_map(|e| match &e.kind {
            EffectKind::ChallengeProgressed { progress, .. } => Some(*progress),
            _ => None,
        })
        .collect();
    assert_eq!(progress, [1, 2, 1]);
    assert!(completed(&fx).is_empty());
}

#[test]
fn fixed_window_counts_only_between_from_and_until() {
    let mut w = world(
        r#"
[[challenge]]
id = "launch"
from = "2026-03-15T00:00:00+01:00"
until = "2026-03-16T00:00:00+01:00"
match = { kind = ["referral"] }
goal = { moments = 2 }
"#,
    );
    let fx = score(
        &mut w,
        vec![
            m("early", "ann", "referral", "email", "2026-03-14T22:59:59Z"),
            m("in1", "ann", "referral", "email", "2026-03-14T23:00:00Z"),
            m("late", "ann", "referral", "email", "2026-03-15T23:00:00Z"),
            m("in2", "ann", "referral", "email", "2026-03-15T22:59:59Z"),
        ],
    );
    assert_eq!(completed(&fx), ["ann:launch@2026-03-15"]);
    assert_eq!(fx.iter().filter(|e| e.moment == "early" || e.moment == "late").count(), 0);
}

#[test]
fn team_challenge_rewards_every_contributor_once() {
    let mut w = world(
        r#"
[[challenge]]
id = "team-meetups"
scope = "team"
window = "month"
match = { kind = ["meetup"] }
goal = { moments = 3 }
reward = [{ currency = "coins", amount = 10 }]
"#,
    );
    let mut records = vec![
        profile("a", "employee", "sales"),
        profile("b", "employee", "sales"),
        profile("c", "employee", "sales"),
        profile("x", "employee", "hr"),
    ];
    for (i, who) in ["a", "b", "x", "a", "c"].iter().enumerate() {
        records.push(Record::Moment(m(&format!("{i}"), who, "meetup", "event", "2026-03-10T10:00:00Z")));
    }
    let fx = run(&mut w, records);
    assert_eq!(completed(&fx), ["a:team-meetups@2026-03", "b:team-meetups@2026-03"]);
    assert_eq!(
        (points(&fx, "a", "coins"), points(&fx, "b", "coins"), points(&fx, "c", "coins"), points(&fx, "x", "coins")),
        (10, 10, 0, 0)
    );
    let status = w.challenges();
    let sales = status[0].teams.iter().find(|t| t.team == "sales").expect("sales progress");
    assert!(sales.completed);
    assert!(w.profile("c").expect("c").challenges[0].completed);
}

#[test]
fn paused_challenge_makes_no_progress_and_shows_paused() {
    let mut w = world(&BRIDGE.replace("window = \"week\"", "window = \"week\"\npaused = true"));
    let mut records = people();
    records.push(Record::Moment(m("1", "ann", "chat", "chat", "2026-03-03T10:00:00Z").with("h1")));
    assert!(run(&mut w, records).is_empty());
    assert_eq!(w.challenges()[0].status, "paused");
}

#[test]
fn completing_a_challenge_grants_its_badge_each_time() {
    let mut w = world(
        r#"
[[badge]]
id = "daily-hero"

[[challenge]]
id = "daily"
window = "day"
goal = { moments = 1 }
badge = "daily-hero"
"#,
    );
    let fx = score(
        &mut w,
        vec![
            m("1", "ann", "post", "forum", "2026-03-02T10:00:00Z"),
            m("2", "ann", "post", "forum", "2026-03-03T10:00:00Z"),
        ],
    );
    assert_eq!(badges(&fx, "ann"), ["daily-hero#1", "daily-hero#2"]);
    assert_eq!(w.profile("ann").expect("ann").badges[0].count, 2);
}
