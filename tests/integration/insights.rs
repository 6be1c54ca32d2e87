//! Insights over HTTP and from `plaudit insights`: a small riverside history of four weeks
//! (from Monday 2026-06-15, New York time) whose every number is worked out by hand below,
//! under a rule set publishing `[insights]`, a weekly challenge and `[[goal]]`s; CSV, content
//! negotiation, bad queries, other organisations' keys, a restart, and the CLI's report.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::app::App;
use plaudit_tests::scratch_dir;

/// Appended to `rules/riverside.toml`: the score counts a moment 3, a counterpart 1, a team 2
/// and a channel 0.5, over one week against the week before; quiet needs 2 active weeks.
const INSIGHTS: &str = r#"
[[challenge]]
id = "three-shifts"
name = "Three shifts a week"
window = "week"
match = { kind = ["shift"] }
goal = { moments = 3 }
reward = [{ currency = "thanks", amount = 1 }]

[insights]
champion_weeks = 1
quiet_min_weeks = 2

[insights.weights]
moments = 3
counterparts = 1
teams = 2
channels = 0.5

[[goal]]
id = "bridges"
name = "Moments across teams, a week"
measure = "cross_team_moments"
target = 2

[[goal]]
id = "hours"
measure = "points"
currency = "hours"
target = 10

[[goal]]
id = "shift-rate"
measure = "completion_rate"
challenge = "three-shifts"
target = 50
"#;

/// (id, kind, team)
const PEOPLE: &[(&str, &str, &str)] = &[
    ("ann", "community", "readers"),
    ("bob", "community", "readers"),
    ("cat", "employee", "staff"),
    ("dan", "partner", "schools"),
    ("eve", "community", "makers"),
];

/// (id, actor, counterpart, kind, channel, hours, at). Riverside's rules: a shift earns its
/// hours; a thanks earns the counterpart 1 thanks; a visit to a partner earns 2 hours and the
/// partner 1 thanks. Every instant is 10:00 or 11:00 in New York, well inside its day.
const HISTORY: &[(&str, &str, &str, &str, &str, u32, &str)] = &[
    // Week 1, 2026-06-15.
    ("a1", "ann", "", "shift", "library", 3, "2026-06-15T14:00:00Z"),
    ("a2", "ann", "cat", "thanks", "app", 0, "2026-06-16T14:00:00Z"),
    ("a3", "bob", "", "shift", "library", 2, "2026-06-16T15:00:00Z"),
    ("a4", "cat", "dan", "visit", "school", 0, "2026-06-17T14:00:00Z"),
    // Week 2, 2026-06-22: ann's third shift (b5) completes three-shifts; readers meet makers.
    ("b1", "ann", "", "shift", "library", 4, "2026-06-22T14:00:00Z"),
    ("b2", "ann", "", "shift", "library", 1, "2026-06-23T14:00:00Z"),
    ("b3", "bob", "eve", "thanks", "app", 0, "2026-06-23T15:00:00Z"),
    ("b4", "cat", "dan", "visit", "school", 0, "2026-06-24T14:00:00Z"),
    ("b5", "ann", "", "shift", "library", 1, "2026-06-24T15:00:00Z"),
    ("b6", "eve", "", "shift", "library", 3, "2026-06-25T14:00:00Z"),
    ("b7", "ann", "eve", "thanks", "app", 0, "2026-06-26T14:00:00Z"),
    ("b8", "cat", "bob", "thanks", "app", 0, "2026-06-27T14:00:00Z"),
    // Week 3, 2026-06-29: ann reaches 3 + 4 + 1 + 1 + 2 = 11 hours (c4): bronze `dedicated`.
    ("c1", "ann", "dan", "thanks", "app", 0, "2026-06-29T14:00:00Z"),
    ("c2", "cat", "", "shift", "library", 2, "2026-06-30T14:00:00Z"),
    ("c3", "dan", "cat", "thanks", "school", 0, "2026-07-01T14:00:00Z"),
    ("c4", "ann", "", "shift", "library", 2, "2026-07-02T14:00:00Z"),
    // Week 4, 2026-07-06: the latest moment, so "now". bob and eve are silent since week 2.
    ("d1", "cat", "", "shift", "library", 1, "2026-07-06T14:00:00Z"),
    ("d2", "cat", "ann", "thanks", "app", 0, "2026-07-07T14:00:00Z"),
];

/// A server over a fresh data directory with the history above in riverside; its key.
fn history(name: &str) -> (PathBuf, App, String) {
    let data = scratch_dir(name);
    let server = App::start(&data);
    let key = server.key("riverside").to_string();
    let riverside =
        std::fs::read_to_string(plaudit_tests::repo_root().join("rules/riverside.toml")).expect("riverside");
    let text = format!("{riverside}\n{INSIGHTS}");
    let (status, _, published) =
        server.send("PUT", "/v1/orgs/riverside/rules", Some(&key), "application/toml", text.as_bytes());
    assert_eq!(status, 200, "{published}");
    let profiles: Vec<Value> =
        PEOPLE.iter().map(|(id, kind, team)| json!({"profile": {"id": id, "kind": kind, "team": team}})).collect();
    post(&server, &key, profiles);
    // A batch per week.
    for week in ["a", "b", "c", "d"] {
        let moments = HISTORY
            .iter()
            .filter(|m| m.0.starts_with(week))
            .map(|&(id, actor, counterpart, kind, channel, hours, at)| {
                let mut m = json!({"id": id, "stakeholder": actor, "kind": kind, "channel": channel, "at": at});
                if !counterpart.is_empty() {
                    m["counterpart"] = json!(counterpart);
                }
                if hours > 0 {
                    m["value"] = json!(hours);
                }
                m
            })
            .collect();
        post(&server, &key, moments);
    }
    (data, server, key)
}

fn post(server: &App, key: &str, records: Vec<Value>) {
    let n = records.len();
    let (status, body) =
        server.request("POST", "/v1/orgs/riverside/moments", Some(key), &Value::Array(records).to_string());
    assert_eq!((status, body["accepted"].as_u64()), (201, Some(n as u64)), "{body}");
}

/// `GET /v1/orgs/riverside/insights/{path}` as JSON; it must answer 200.
fn get(server: &App, key: &str, path: &str) -> Value {
    let (status, body) = server.request("GET", &format!("/v1/orgs/riverside/insights/{path}"), Some(key), "");
    assert_eq!(status, 200, "{path}: {body}");
    body
}

fn finish(server: App, data: &Path) {
    drop(server);
    let _ = std::fs::remove_dir_all(data);
}

/// The stakeholders of a list of champions, in order.
fn ids(rows: &Value) -> Vec<&str> {
    rows.as_array().expect("a list").iter().map(|r| r["stakeholder"].as_str().unwrap_or("?")).collect()
}

/// Each group of a week of `activity?by=...` as (name, active, moments).
fn groups(week: &Value) -> Vec<(&str, u64, u64)> {
    let groups = week["groups"].as_array().expect("grouped");
    groups
        .iter()
        .map(|g| {
            (g["name"].as_str().unwrap_or("?"), g["active"].as_u64().unwrap_or(0), g["moments"].as_u64().unwrap_or(0))
        })
        .collect()
}

/// A week of activity: `[active, moments, new_stakeholders]`, `[hours, thanks, badges,
/// completions]`.
fn week(label: &str, [active, moments, new]: [u64; 3], [hours, thanks, badges, done]: [i64; 4]) -> Value {
    json!({
        "week": label,
        "active": active,
        "moments": moments,
        "new_stakeholders": new,
        "points": {"hours": hours, "thanks": thanks},
        "badges": badges,
        "completions": done,
    })
}

/// The four weeks of activity. Week 2: 8 moments by ann, bob, cat, dan and eve (eve new);
/// hours 4 + 1 + 2 (cat's visit) + 1 + 3; thanks to eve twice, dan, bob, and ann's reward for
/// three-shifts (its one completion).
fn four_weeks() -> Vec<Value> {
    vec![
        week("2026-06-15", [4, 4, 4], [3 + 2 + 2, 2, 0, 0]),
        week("2026-06-22", [5, 8, 1], [11, 5, 0, 1]),
        week("2026-06-29", [3, 4, 0], [2 + 2, 2, 1, 0]),
        week("2026-07-06", [2, 2, 0], [1, 1, 0, 0]),
    ]
}

#[test]
fn activity_counts_each_week_by_its_first_day_and_groups_it() {
    let (data, server, key) = history("plaudit-insights-activity");
    // Any day names its week: a Wednesday and a Sunday.
    let a = get(&server, &key, "activity?from=2026-06-17&to=2026-07-12");
    assert_eq!(a, json!({"from": "2026-06-15", "to": "2026-07-06", "weeks": four_weeks()}));
    // Unbounded: the 12 weeks up to the week of the latest moment, empty ones included.
    let a = get(&server, &key, "activity");
    assert_eq!((a["from"].as_str(), a["to"].as_str()), (Some("2026-04-20"), Some("2026-07-06")), "{a}");
    let weeks = a["weeks"].as_array().expect("weeks");
    assert_eq!(weeks.len(), 12);
    assert_eq!(weeks[0], week("2026-04-20", [0, 0, 0], [0, 0, 0, 0]));
    assert_eq!(weeks[8..], four_weeks()[..]);

    // A team takes part through its members: a moment inside a team counts once for it.
    let by_team = get(&server, &key, "activity?from=2026-06-15&by=team");
    assert_eq!(by_team["by"], "team");
    let w = by_team["weeks"].as_array().expect("weeks");
    assert_eq!(groups(&w[0]), [("readers", 2, 3), ("staff", 1, 2), ("schools", 1, 1)]);
    assert_eq!(groups(&w[1]), [("readers", 2, 6), ("makers", 1, 3), ("staff", 1, 2), ("schools", 1, 1)]);
    assert_eq!(groups(&w[2]), [("readers", 1, 2), ("schools", 1, 2), ("staff", 1, 2)]);
    assert_eq!(groups(&w[3]), [("staff", 1, 2), ("readers", 1, 1)]);
    assert_eq!(w[1]["moments"], 8, "the totals stay beside the groups");

    // Week 2 by the other dimensions.
    let week2 = |by: &str| get(&server, &key, &format!("activity?from=2026-06-22&to=2026-06-22&by={by}"));
    let kinds = week2("kind");
    assert_eq!(groups(&kinds["weeks"][0]), [("community", 3, 7), ("employee", 1, 2), ("partner", 1, 1)]);
    let channels = week2("channel");
    assert_eq!(groups(&channels["weeks"][0]), [("library", 2, 4), ("app", 4, 3), ("school", 2, 1)]);
    let moment_kinds = week2("moment_kind");
    assert_eq!(moment_kinds["by"], "moment_kind");
    assert_eq!(groups(&moment_kinds["weeks"][0]), [("shift", 2, 4), ("thanks", 4, 3), ("visit", 2, 1)]);
    finish(server, &data);
}

fn bridge(team: &str, other: &str, moments: u64, actors: u64, counterparts: u64, new: bool) -> Value {
    json!({
        "team": team,
        "counterpart_team": other,
        "moments": moments,
        "actors": actors,
        "counterparts": counterparts,
        "new": new,
    })
}

#[test]
fn bridges_give_a_weeks_team_matrix_and_the_pairs_meeting_for_the_first_time() {
    let (data, server, key) = history("plaudit-insights-bridges");
    // Week 1: every pair is new.
    let b = get(&server, &key, "bridges?week=2026-06-15");
    let expected = json!({
        "week": "2026-06-15",
        "matrix": [bridge("readers", "staff", 1, 1, 1, true), bridge("staff", "schools", 1, 1, 1, true)],
        "new_pairs": [["readers", "staff"], ["schools", "staff"]],
    });
    assert_eq!(b, expected);
    // Week 2: bob and ann thank eve (2 moments, 2 actors, 1 counterpart): readers meet makers.
    // cat thanking bob is staff -> readers, a pair met in week 1 the other way round.
    let b = get(&server, &key, "bridges?week=2026-06-28");
    let expected = json!({
        "week": "2026-06-22",
        "matrix": [
            bridge("readers", "makers", 2, 2, 1, true),
            bridge("staff", "readers", 1, 1, 1, false),
            bridge("staff", "schools", 1, 1, 1, false),
        ],
        "new_pairs": [["makers", "readers"]],
    });
    assert_eq!(b, expected);
    let b = get(&server, &key, "bridges?week=2026-06-29");
    let expected = json!({
        "week": "2026-06-29",
        "matrix": [bridge("readers", "schools", 1, 1, 1, true), bridge("schools", "staff", 1, 1, 1, false)],
        "new_pairs": [["readers", "schools"]],
    });
    assert_eq!(b, expected);
    // By default, the week of the latest moment.
    let b = get(&server, &key, "bridges");
    let expected =
        json!({"week": "2026-07-06", "matrix": [bridge("staff", "readers", 1, 1, 1, false)], "new_pairs": []});
    assert_eq!(b, expected);
    // A week without moments.
    let b = get(&server, &key, "bridges?week=2026-08-03");
    assert_eq!(b, json!({"week": "2026-08-03", "matrix": [], "new_pairs": []}));
    finish(server, &data);
}

#[test]
fn champions_score_a_week_with_the_published_weights_against_the_week_before() {
    let (data, server, key) = history("plaudit-insights-champions");
    let c = get(&server, &key, "champions?week=2026-06-22");
    assert_eq!((c["from"].as_str(), c["to"].as_str()), (Some("2026-06-22"), Some("2026-06-22")), "{c}");
    // Week 2 (3 a moment, 1 a counterpart, 2 a team, 0.5 a channel):
    //   ann: 4 moments, eve, makers, library + app:           12 + 1 + 2 + 1   = 16
    //   eve: 3 moments, bob + ann, readers, app + library:      9 + 2 + 2 + 1   = 14
    //   cat: 2 moments, dan + bob, schools + readers, 2 channels: 6 + 2 + 4 + 1 = 13
    //   bob: 2 moments, eve + cat, makers + staff, app:         6 + 2 + 4 + 0.5 = 12.5
    //   dan: 1 moment, cat, staff, school:                      3 + 1 + 2 + 0.5 = 6.5
    // Week 1: ann 6 + 1 + 2 + 1 = 10, cat 13, bob 3 + 0.5 = 3.5, dan 6.5, eve 0.
    assert_eq!(ids(&c["top"]), ["ann", "eve", "cat", "bob", "dan"]);
    assert_eq!(
        c["top"][0],
        json!({
            "stakeholder": "ann", "kind": "community", "team": "readers",
            "score": 16.0, "previous_score": 10.0,
            "moments": 4, "counterparts": 1, "teams": 1, "channels": 2,
            "trend": [0, 0, 0, 0, 0, 0, 2, 4],
        })
    );
    assert_eq!(
        c["top"][3],
        json!({
            "stakeholder": "bob", "kind": "community", "team": "readers",
            "score": 12.5, "previous_score": 3.5,
            "moments": 2, "counterparts": 2, "teams": 2, "channels": 1,
            "trend": [0, 0, 0, 0, 0, 0, 1, 2],
        })
    );
    // Rises: eve 14, bob 9, ann 6; cat and dan stay where they were.
    assert_eq!(ids(&c["rising"]), ["eve", "bob", "ann"]);
    assert_eq!(ids(&c["falling"]), Vec::<&str>::new());
    // Teams met other than their own: cat and bob 2, the others 1; then by score.
    assert_eq!(ids(&c["connectors"]), ["cat", "bob", "ann", "eve", "dan"]);

    // Week 3 against week 2: dan 6 + 2 + 4 + 1 = 13, ann and cat 6 + 1 + 2 + 1 = 10 (equal
    // scores in id order); eve and bob, silent, fall the furthest.
    let c = get(&server, &key, "champions?week=2026-07-01");
    assert_eq!(ids(&c["top"]), ["dan", "ann", "cat"]);
    assert_eq!(ids(&c["rising"]), ["dan"]);
    assert_eq!(ids(&c["falling"]), ["eve", "bob", "ann", "cat"]);

    // Filters and the limit.
    let c = get(&server, &key, "champions?week=2026-06-22&team=readers");
    assert_eq!(ids(&c["top"]), ["ann", "bob"]);
    let c = get(&server, &key, "champions?week=2026-06-22&kind=partner");
    assert_eq!(ids(&c["top"]), ["dan"]);
    let c = get(&server, &key, "champions?week=2026-06-22&team=nobody");
    assert_eq!(ids(&c["top"]), Vec::<&str>::new());
    let c = get(&server, &key, "champions?week=2026-06-22&limit=2");
    assert_eq!((ids(&c["top"]), ids(&c["connectors"])), (vec!["ann", "eve"], vec!["cat", "bob"]));
    // Now is the week of the latest moment.
    let c = get(&server, &key, "champions");
    assert_eq!((c["from"].as_str(), c["to"].as_str()), (Some("2026-07-06"), Some("2026-07-06")), "{c}");
    assert_eq!(ids(&c["top"]), ["cat", "ann"]);
    finish(server, &data);
}

#[test]
fn someone_active_two_weeks_then_silent_for_two_has_gone_quiet() {
    let (data, server, key) = history("plaudit-insights-quiet");
    // As of week 4, weeks 3 and 4 are the last two. bob was active in weeks 1 and 2 (his last
    // moment: cat thanked him, b8); eve in week 2 only, under the published 2 weeks.
    let bob = json!({
        "stakeholder": "bob",
        "kind": "community",
        "team": "readers",
        "weeks_active": 2,
        "last_moment": "2026-06-27T14:00:00Z",
    });
    let q = get(&server, &key, "quiet");
    assert_eq!(q, json!({"week": "2026-07-06", "min_weeks": 2, "stakeholders": [bob]}));
    assert_eq!(get(&server, &key, "quiet?team=readers")["stakeholders"], json!([bob]));
    assert_eq!(get(&server, &key, "quiet?kind=employee")["stakeholders"], json!([]));
    // As of week 3, bob was active the week before: nobody has gone quiet.
    let q = get(&server, &key, "quiet?week=2026-06-29");
    assert_eq!(q, json!({"week": "2026-06-29", "min_weeks": 2, "stakeholders": []}));
    finish(server, &data);
}

fn window(label: &str, goal: u64, participants: u64, progressing: u64, halfway: u64, done: u64, rate: f64) -> Value {
    json!({
        "window": label,
        "goal": goal,
        "participants": participants,
        "progressing": progressing,
        "halfway": halfway,
        "completed": done,
        "completion_rate": rate,
    })
}

/// three-shifts, newest window first: week 2, ann completes (3 shifts) and eve has 1 of 3
/// (under half); the other weeks, 1 shift each.
fn three_shifts_windows() -> Vec<Value> {
    vec![
        window("2026-07-06", 3, 1, 1, 0, 0, 0.0),
        window("2026-06-29", 3, 2, 2, 0, 0, 0.0),
        window("2026-06-22", 3, 2, 1, 1, 1, 50.0),
        window("2026-06-15", 3, 2, 2, 0, 0, 0.0),
    ]
}

#[test]
fn a_challenge_is_read_window_by_window_newest_first() {
    let (data, server, key) = history("plaudit-insights-challenge");
    let c = get(&server, &key, "challenges/three-shifts");
    let expected = json!({
        "challenge": "three-shifts",
        "name": "Three shifts a week",
        "team": false,
        "windows": three_shifts_windows(),
    });
    assert_eq!(c, expected);
    let c = get(&server, &key, "challenges/three-shifts?limit=2");
    assert_eq!(c["windows"], json!(three_shifts_windows()[..2]));
    // riverside's own fixed-window challenge: everyone with a shift takes part; ann's 5 shifts
    // are half of 8 or more, cat's 2 are not.
    let c = get(&server, &key, "challenges/summer-reading");
    let expected = json!({
        "challenge": "summer-reading",
        "name": "Summer reading sprint",
        "team": false,
        "windows": [window("fixed", 8, 4, 4, 1, 0, 0.0)],
    });
    assert_eq!(c, expected);
    finish(server, &data);
}

fn goal_weeks(weeks: &[(&str, f64, bool)]) -> Value {
    weeks.iter().map(|(week, actual, met)| json!({"week": week, "actual": actual, "met": met})).collect()
}

#[test]
fn goals_are_met_one_week_and_missed_the_next() {
    let (data, server, key) = history("plaudit-insights-goals");
    let g = get(&server, &key, "goals?from=2026-06-15");
    // Moments between two teams: a2 a4 | b3 b4 b7 b8 | c1 c3 | d2.
    let bridges = json!({
        "goal": "bridges",
        "name": "Moments across teams, a week",
        "measure": "cross_team_moments",
        "target": 2.0,
        "weeks": goal_weeks(&[
            ("2026-06-15", 2.0, true),
            ("2026-06-22", 4.0, true),
            ("2026-06-29", 2.0, true),
            ("2026-07-06", 1.0, false),
        ]),
    });
    let hours = json!({
        "goal": "hours",
        "name": "hours",
        "measure": "points",
        "target": 10.0,
        "weeks": goal_weeks(&[
            ("2026-06-15", 7.0, false),
            ("2026-06-22", 11.0, true),
            ("2026-06-29", 4.0, false),
            ("2026-07-06", 1.0, false),
        ]),
    });
    let rate = json!({
        "goal": "shift-rate",
        "name": "shift-rate",
        "measure": "completion_rate",
        "target": 50.0,
        "weeks": goal_weeks(&[
            ("2026-06-15", 0.0, false),
            ("2026-06-22", 50.0, true),
            ("2026-06-29", 0.0, false),
            ("2026-07-06", 0.0, false),
        ]),
    });
    assert_eq!(g, json!({"from": "2026-06-15", "to": "2026-07-06", "goals": [bridges, hours, rate]}));
    let g = get(&server, &key, "goals?from=2026-06-22&to=2026-06-29");
    assert_eq!(g["goals"][0]["weeks"], goal_weeks(&[("2026-06-22", 4.0, true), ("2026-06-29", 2.0, true)]));
    finish(server, &data);
}

/// Lines of a CSV body, CRLF-terminated.
fn csv(lines: &[&str]) -> Value {
    Value::String(lines.iter().map(|l| format!("{l}\r\n")).collect())
}

#[test]
fn every_insights_route_answers_csv_when_asked_and_refuses_what_it_cannot_give() {
    let (data, server, key) = history("plaudit-insights-csv");
    let bridges_goal = "bridges,\"Moments across teams, a week\",cross_team_moments,2";
    let cases: Vec<(&str, Value)> = vec![
        (
            "activity?from=2026-06-15",
            csv(&[
                "week,active,moments,new_stakeholders,badges,completions,points_hours,points_thanks",
                "2026-06-15,4,4,4,0,0,7,2",
                "2026-06-22,5,8,1,0,1,11,5",
                "2026-06-29,3,4,0,1,0,4,2",
                "2026-07-06,2,2,0,0,0,1,1",
            ]),
        ),
        (
            "activity?from=2026-06-22&to=2026-06-29&by=moment_kind",
            csv(&[
                "week,moment_kind,active,moments",
                "2026-06-22,shift,2,4",
                "2026-06-22,thanks,4,3",
                "2026-06-22,visit,2,1",
                "2026-06-29,shift,2,2",
                "2026-06-29,thanks,3,2",
            ]),
        ),
        (
            "bridges?week=2026-06-22",
            csv(&[
                "week,team,counterpart_team,moments,actors,counterparts,new",
                "2026-06-22,readers,makers,2,2,1,true",
                "2026-06-22,staff,readers,1,1,1,false",
                "2026-06-22,staff,schools,1,1,1,false",
            ]),
        ),
        (
            "champions?week=2026-06-22&limit=2",
            csv(&[
                "list,rank,stakeholder,kind,team,score,previous_score,moments,counterparts,teams,channels",
                "top,1,ann,community,readers,16,10,4,1,1,2",
                "top,2,eve,community,makers,14,0,3,2,1,2",
                "rising,1,eve,community,makers,14,0,3,2,1,2",
                "rising,2,bob,community,readers,12.5,3.5,2,2,2,1",
                "connectors,1,cat,employee,staff,13,13,2,2,2,2",
                "connectors,2,bob,community,readers,12.5,3.5,2,2,2,1",
            ]),
        ),
        (
            "quiet",
            csv(&["stakeholder,kind,team,weeks_active,last_moment", "bob,community,readers,2,2026-06-27T14:00:00Z"]),
        ),
        (
            "challenges/three-shifts",
            csv(&[
                "challenge,window,goal,participants,progressing,halfway,completed,completion_rate",
                "three-shifts,2026-07-06,3,1,1,0,0,0",
                "three-shifts,2026-06-29,3,2,2,0,0,0",
                "three-shifts,2026-06-22,3,2,1,1,1,50",
                "three-shifts,2026-06-15,3,2,2,0,0,0",
            ]),
        ),
        (
            "goals?from=2026-06-22&to=2026-06-29",
            csv(&[
                "goal,name,measure,target,week,actual,met",
                &format!("{bridges_goal},2026-06-22,4,true"),
                &format!("{bridges_goal},2026-06-29,2,true"),
                "hours,hours,points,10,2026-06-22,11,true",
                "hours,hours,points,10,2026-06-29,4,false",
                "shift-rate,shift-rate,completion_rate,50,2026-06-22,50,true",
                "shift-rate,shift-rate,completion_rate,50,2026-06-29,0,false",
            ]),
        ),
    ];
    for (path, expected) in &cases {
        let url = format!("/v1/orgs/riverside/insights/{path}");
        let fetch = |accept: Option<&str>| server.get_accepting(&url, Some(&key), accept);
        let (status, head, body) = fetch(Some("text/csv"));
        assert_eq!(status, 200, "{path}: {body}");
        assert!(head.contains("content-type: text/csv"), "{path}: {head}");
        assert_eq!(&body, expected, "{path}");
        // Preferred over JSON by quality.
        let (_, head, preferred) = fetch(Some("application/json;q=0.5, text/csv"));
        assert!(head.contains("content-type: text/csv"), "{path}: {head}");
        assert_eq!(&preferred, expected, "{path}");
        // JSON when asked, for anything, or without a word.
        let json = get(&server, &key, path);
        assert!(json.is_object(), "{path}: {json}");
        for accept in [Some("application/json"), Some("*/*"), None] {
            let (status, head, body) = fetch(accept);
            assert_eq!(status, 200, "{path} {accept:?}: {body}");
            assert!(head.contains("content-type: application/json"), "{path} {accept:?}: {head}");
            assert_eq!(body, json, "{path} {accept:?}");
        }
        for accept in ["application/xml", "text/csv;q=0"] {
            let (status, _, body) = fetch(Some(accept));
            assert_eq!((status, body["error"]["code"].as_str()), (406, Some("not_acceptable")), "{path}: {body}");
        }
    }
    finish(server, &data);
}

#[test]
fn bad_insights_queries_name_their_parameter_and_other_keys_reach_nothing() {
    let (data, server, key) = history("plaudit-insights-errors");
    let cases = [
        ("activity?from=2026-13-01", "from"),
        ("activity?to=2026-02-30", "to"),
        ("activity?from=2026-07-06&to=2026-06-15", "from"),
        ("activity?by=colour", "by"),
        ("activity?week=2026-06-15", "week"),
        ("bridges?week=last-week", "week"),
        ("bridges?colour=red", "colour"),
        ("champions?limit=0", "limit"),
        ("champions?limit=ten", "limit"),
        ("quiet?limit=1001", "limit"),
        ("quiet?week=2026-06-31", "week"),
        ("challenges/three-shifts?limit=0", "limit"),
        ("challenges/three-shifts?week=2026-06-15", "week"),
        ("goals?from=June", "from"),
        ("goals?by=team", "by"),
    ];
    for (path, field) in cases {
        let (status, body) = server.request("GET", &format!("/v1/orgs/riverside/insights/{path}"), Some(&key), "");
        assert_eq!(
            (status, body["error"]["code"].as_str(), body["error"]["field"].as_str()),
            (400, Some("invalid_query"), Some(field)),
            "{path}: {body}"
        );
    }
    let (status, body) = server.request("GET", "/v1/orgs/riverside/insights/challenges/nope", Some(&key), "");
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")), "{body}");
    // An acme challenge is not riverside's.
    let (status, _) = server.request("GET", "/v1/orgs/riverside/insights/challenges/bridge-week", Some(&key), "");
    assert_eq!(status, 404);

    // Another organisation's key, no key, or an organisation no one has: 401 before anything
    // else is looked at, the query and the Accept header included.
    let acme = server.key("acme").to_string();
    let routes = ["activity", "bridges", "champions", "quiet", "challenges/three-shifts", "goals"];
    for route in routes {
        for query in ["", "?limit=0&colour=red"] {
            let path = format!("/v1/orgs/riverside/insights/{route}{query}");
            for accept in [None, Some("text/csv"), Some("application/xml")] {
                let (status, _, body) = server.get_accepting(&path, Some(&acme), accept);
                assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unauthorized")), "{path}: {body}");
                let (status, _, _) = server.get_accepting(&path, None, accept);
                assert_eq!(status, 401, "{path} without a key");
            }
        }
        let (status, _) = server.request("GET", &format!("/v1/orgs/nobody/insights/{route}"), Some(&key), "");
        assert_eq!(status, 401, "{route} of an unknown organisation");
    }
    // acme's own insights answer acme's key, and know nothing of riverside's history.
    let (status, a) = server.request("GET", "/v1/orgs/acme/insights/activity", Some(&acme), "");
    assert_eq!((status, &a["weeks"]), (200, &json!([])), "{a}");
    finish(server, &data);
}

/// Every read of the history, as JSON.
fn everything(server: &App, key: &str) -> Vec<Value> {
    [
        "activity?from=2026-06-15",
        "activity?from=2026-06-15&by=team",
        "activity?from=2026-06-15&by=channel",
        "bridges?week=2026-06-22",
        "bridges",
        "champions?week=2026-06-22",
        "champions",
        "quiet",
        "challenges/three-shifts",
        "challenges/summer-reading",
        "goals?from=2026-06-15",
    ]
    .iter()
    .map(|path| get(server, key, path))
    .collect()
}

#[test]
fn insights_read_the_same_after_a_restart() {
    let (data, server, key) = history("plaudit-insights-restart");
    let before = everything(&server, &key);
    assert_eq!(before[0]["weeks"], json!(four_weeks()), "the history is in");
    drop(server);
    // Replayed from the log (the rule set published over HTTP included).
    let server = App::start(&data);
    assert_eq!(everything(&server, &key), before);
    // And they go on from there: eve's shift in week 5 moves "now", so that weeks 4 and 5 are
    // the last two: dan (weeks 1 to 3, last on 1 July) has gone quiet too, before bob.
    let shift = json!({"id": "e1", "stakeholder": "eve", "kind": "shift", "channel": "library", "at": "2026-07-13T14:00:00Z", "value": 1});
    post(&server, &key, vec![shift]);
    let q = get(&server, &key, "quiet");
    assert_eq!((q["week"].as_str(), ids(&q["stakeholders"])), (Some("2026-07-13"), vec!["dan", "bob"]), "{q}");
    assert_eq!(q["stakeholders"][0]["weeks_active"], 3, "{q}");
    finish(server, &data);
}

fn plaudit_insights(data: &Path, args: &[&str]) -> std::process::Output {
    Command::new(crate::plaudit_bin())
        .args(["insights", "--data"])
        .arg(data)
        .args(args)
        .output()
        .expect("plaudit insights runs")
}

#[test]
fn plaudit_insights_prints_the_http_answers_from_the_data_directory() {
    let (data, server, key) = history("plaudit-insights-cli");
    let http = |path: &str| get(&server, &key, path);
    let expected = json!({
        "organisation": "riverside",
        "activity": http("activity"),
        "bridges": http("bridges"),
        "champions": http("champions?limit=10"),
        "quiet": http("quiet"),
        "challenges": [http("challenges/summer-reading"), http("challenges/three-shifts")],
        "goals": http("goals"),
    });
    let week2 = (
        http("activity?from=2026-06-15&to=2026-06-22"),
        http("bridges?week=2026-06-22"),
        http("champions?week=2026-06-22&limit=2"),
        http("quiet?week=2026-06-22&limit=2"),
        http("goals?from=2026-06-15&to=2026-06-22"),
    );
    drop(server);

    let out = plaudit_insights(&data, &["--org", "riverside", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(report, expected);
    // --week is the current week, and the end of the range unless --to says otherwise.
    let out = plaudit_insights(
        &data,
        &["--org", "riverside", "--json", "--from", "2026-06-15", "--week", "2026-06-22", "--limit", "2"],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    let got = (&report["activity"], &report["bridges"], &report["champions"], &report["quiet"], &report["goals"]);
    assert_eq!(got, (&week2.0, &week2.1, &week2.2, &week2.3, &week2.4));

    // The text: each week of activity, the bridges, who went quiet, the challenges and goals.
    let out = plaudit_insights(&data, &["--org", "riverside", "--from", "2026-06-15"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let row = |week: &str| -> Vec<&str> {
        let line = text.lines().find(|l| l.trim_start().starts_with(week)).unwrap_or_else(|| panic!("{week}:\n{text}"));
        line.split_whitespace().collect()
    };
    assert_eq!(row("2026-06-15"), ["2026-06-15", "4", "4", "4", "0", "0", "hours", "7,", "thanks", "2"], "{text}");
    assert_eq!(row("2026-06-22"), ["2026-06-22", "5", "8", "1", "0", "1", "hours", "11,", "thanks", "5"], "{text}");
    assert_eq!(row("2026-06-29"), ["2026-06-29", "3", "4", "0", "1", "0", "hours", "4,", "thanks", "2"], "{text}");
    for line in [
        "organisation riverside",
        "activity per week (2026-06-15 to 2026-07-06)",
        "bridges in the week of 2026-07-06",
        "  staff -> readers: 1 moments, 1 -> 1 people",
        "champions, 2026-07-06 to 2026-07-06",
        "gone quiet (active 2+ of the 8 weeks before the last 2), as of 2026-07-06",
        "  bob (community, readers): 2 weeks active, last moment 2026-06-27T14:00:00Z",
        "challenge three-shifts (Three shifts a week)",
        "  2026-06-22: 2 participants, 1 halfway, 1 completed (50%)",
        "goal bridges (Moments across teams, a week): cross_team_moments >= 2 a week",
        "  2026-06-29: 2 met",
        "  2026-07-06: 1 missed",
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} in:\n{text}");
    }
    assert!(!text.contains("2026-04-20"), "--from bounds the weeks:\n{text}");

    // A bad option is named as an option.
    let out = plaudit_insights(&data, &["--org", "riverside", "--week", "2026-13-01"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--week: \"2026-13-01\" is not a date"), "{err}");
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn plaudit_insights_refuses_an_organisation_without_a_log() {
    let (data, server, _) = history("plaudit-insights-cli-missing");
    drop(server);
    let out = plaudit_insights(&data, &["--org", "nobody"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("organisation nobody has no log in"), "{err}");
    assert!(out.stdout.is_empty(), "nothing on stdout: {}", String::from_utf8_lossy(&out.stdout));
    // A mistyped data directory is named, and nothing is made there.
    let typo = data.join("no-such-dir");
    let out = plaudit_insights(&typo, &["--org", "riverside"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no data in") && err.contains("no-such-dir"), "{err}");
    assert!(!typo.exists(), "a read creates nothing");
    let _ = std::fs::remove_dir_all(&data);
}
