//! A small history whose every insight is worked out by hand, and the equalities insights keep
//! (replay, snapshot, batching, retraction).

use plaudit_sdk::Record;

use super::people::{HistoryRow, PeopleQuery};
use super::reads::{Activity, By, InsightsError, PeopleFilter};
use crate::OrgWorld;
use crate::ruleset::parse_toml;

const RULES: &str = r#"
[organisation]
id = "test"
timezone = "UTC"

[[currency]]
id = "xp"

[[rule]]
id = "intro"
description = "An introduction"
match = { kind = ["intro"] }
award = [{ to = "actor", currency = "xp", amount = 10 }]

[levels]
currency = "xp"
steps = [{ name = "Newcomer", at = 0 }, { name = "Connector", at = 20 }]

[[challenge]]
id = "meet2"
name = "Two meets a week"
window = "week"
match = { kind = ["meet"] }
goal = { moments = 2 }
reward = [{ currency = "xp", amount = 5 }]

[insights]
champion_weeks = 2

[[goal]]
id = "bridges"
name = "Cross-team moments a week"
measure = "cross_team_moments"
target = 2

[[goal]]
id = "meet-rate"
measure = "completion_rate"
challenge = "meet2"
target = 50
"#;

/// (id, actor, counterpart, kind, channel, at)
const MOMENTS: &[(&str, &str, &str, &str, &str, &str)] = &[
    // Week 1, from Monday 2026-03-02.
    ("m1", "ann", "bob", "intro", "chat", "2026-03-02T10:00:00Z"),
    ("m2", "dan", "", "post", "forum", "2026-03-03T10:00:00Z"),
    ("m3", "dan", "bob", "answer", "email", "2026-03-04T10:00:00Z"),
    // Week 2: sales meets customers for the first time.
    ("m4", "ann", "cat", "intro", "chat", "2026-03-09T10:00:00Z"),
    ("m5", "dan", "bob", "answer", "email", "2026-03-10T10:00:00Z"),
    ("m6", "eve", "bob", "intro", "chat", "2026-03-11T10:00:00Z"),
    // Week 3.
    ("m7", "dan", "", "post", "forum", "2026-03-16T10:00:00Z"),
    ("m8", "ann", "bob", "intro", "chat", "2026-03-17T10:00:00Z"),
    // Week 4.
    ("m9", "eve", "cat", "intro", "chat", "2026-03-23T10:00:00Z"),
    ("m10", "eve", "gus", "answer", "event", "2026-03-24T10:00:00Z"),
    // Week 5: five take part in the challenge, two complete it.
    ("m11", "ann", "", "meet", "app", "2026-03-30T10:00:00Z"),
    ("m12", "ann", "", "meet", "app", "2026-03-30T11:00:00Z"),
    ("m13", "eve", "", "meet", "app", "2026-03-31T10:00:00Z"),
    ("m14", "eve", "", "meet", "app", "2026-03-31T11:00:00Z"),
    ("m15", "bob", "", "meet", "app", "2026-04-01T10:00:00Z"),
    ("m16", "cat", "", "meet", "app", "2026-04-01T11:00:00Z"),
    ("m17", "fay", "", "meet", "app", "2026-04-02T10:00:00Z"),
];

const PEOPLE: &[(&str, &str, &str)] = &[
    ("ann", "employee", "sales"),
    ("bob", "employee", "support"),
    ("cat", "customer", "customers"),
    ("dan", "partner", "partners"),
    ("eve", "employee", "sales"),
    ("fay", "employee", "support"),
    ("gus", "customer", "customers"),
];

fn record(json: String) -> Record {
    crate::input::parse_record(&json).expect("a record")
}

fn profiles() -> Vec<Record> {
    PEOPLE
        .iter()
        .map(|(id, kind, team)| record(format!(r#"{{"profile":{{"id":"{id}","kind":"{kind}","team":"{team}"}}}}"#)))
        .collect()
}

fn moments(skip: &[&str]) -> Vec<Record> {
    MOMENTS
        .iter()
        .filter(|m| !skip.contains(&m.0))
        .map(|(id, actor, cp, kind, channel, at)| {
            let cp = if cp.is_empty() { String::new() } else { format!(r#","counterpart":"{cp}""#) };
            record(format!(
                r#"{{"id":"{id}","stakeholder":"{actor}"{cp},"kind":"{kind}","channel":"{channel}","at":"{at}"}}"#
            ))
        })
        .collect()
}

fn world() -> OrgWorld {
    OrgWorld::from_doc(&parse_toml(RULES, "test").expect("rules parse"), "test").expect("rules compile")
}

/// Everything the insights API answers, as JSON, for comparing worlds.
fn everything(w: &mut OrgWorld) -> serde_json::Value {
    w.insights(|r| {
        let all = PeopleFilter { limit: Some(100), ..PeopleFilter::default() };
        let from = Some("2026-03-02");
        serde_json::json!({
            "activity": r.activity(from, None, None).expect("activity"),
            "by_team": r.activity(from, None, Some(By::Team)).expect("activity"),
            "by_kind": r.activity(from, None, Some(By::Kind)).expect("activity"),
            "by_channel": r.activity(from, None, Some(By::Channel)).expect("activity"),
            "by_moment_kind": r.activity(from, None, Some(By::MomentKind)).expect("activity"),
            "bridges": [
                r.bridges(Some("2026-03-02")).expect("bridges"),
                r.bridges(Some("2026-03-09")).expect("bridges"),
                r.bridges(None).expect("bridges"),
            ],
            "champions": r.champions(&all).expect("champions"),
            "quiet": r.quiet(&all).expect("quiet"),
            "challenge": r.challenge("meet2", None).expect("challenge"),
            "goals": r.goals(from, None).expect("goals"),
        })
    })
}

/// The stakeholders listed, and every history, as JSON.
fn people(w: &mut OrgWorld) -> serde_json::Value {
    w.insights(|r| {
        let all = r.stakeholders(&PeopleQuery { limit: Some(100), ..PeopleQuery::default() }).expect("listing");
        let histories: Vec<_> =
            PEOPLE.iter().map(|(id, _, _)| r.history_of(id, None, Some(1000)).expect("a history")).collect();
        serde_json::json!({ "stakeholders": all, "histories": histories })
    })
}

fn scored(batch: usize, skip: &[&str]) -> OrgWorld {
    let mut w = world();
    w.ingest(profiles());
    for chunk in moments(skip).chunks(batch) {
        w.ingest(chunk.to_vec());
        w.clear_effects();
    }
    w
}

fn week<'a>(a: &'a Activity, label: &str) -> &'a super::reads::ActivityWeek {
    a.weeks.iter().find(|w| w.week == label).expect("the week")
}

#[test]
fn activity_per_week_and_team_is_what_was_worked_out_by_hand() {
    let mut w = scored(100, &[]);
    let (all, by_team) = w.insights(|r| {
        (
            r.activity(Some("2026-03-02"), None, None).expect("ok"),
            r.activity(Some("2026-03-02"), None, Some(By::Team)).expect("ok"),
        )
    });
    assert_eq!((all.from.as_str(), all.to.as_str()), ("2026-03-02", "2026-03-30"));
    let row = |w: &super::reads::ActivityWeek| (w.active, w.moments, w.new_stakeholders, w.points["xp"], w.completions);
    assert_eq!(row(week(&all, "2026-03-02")), (3, 3, 3, 10, 0));
    assert_eq!(row(week(&all, "2026-03-09")), (5, 3, 2, 20, 0));
    assert_eq!(row(week(&all, "2026-03-16")), (3, 2, 0, 10, 0));
    assert_eq!(row(week(&all, "2026-03-23")), (3, 2, 1, 10, 0));
    // Two completions of the challenge, each rewarded with 5 xp.
    assert_eq!(row(week(&all, "2026-03-30")), (5, 7, 1, 10, 2));
    let groups = |label: &str| -> Vec<(String, u64, u64)> {
        let g = week(&by_team, label).groups.as_ref().expect("grouped");
        g.iter().map(|g| (g.name.clone(), g.active, g.moments)).collect()
    };
    let g = |n: &str, a, m| (n.to_string(), a, m);
    assert_eq!(groups("2026-03-02"), [g("partners", 1, 2), g("support", 1, 2), g("sales", 1, 1)]);
    assert_eq!(groups("2026-03-09"), [g("sales", 2, 2), g("support", 1, 2), g("customers", 1, 1), g("partners", 1, 1)]);
}

#[test]
fn a_bridge_between_two_teams_is_new_in_the_week_they_first_meet() {
    let mut w = scored(100, &[]);
    let (w1, w2, w3) = w.insights(|r| {
        (
            r.bridges(Some("2026-03-02")).expect("ok"),
            r.bridges(Some("2026-03-11")).expect("ok"),
            r.bridges(Some("2026-03-16")).expect("ok"),
        )
    });
    let rows = |b: &super::reads::Bridges| -> Vec<(String, String, u64, u64, u64, bool)> {
        b.matrix
            .iter()
            .map(|r| (r.team.clone(), r.counterpart_team.clone(), r.moments, r.actors, r.counterparts, r.new))
            .collect()
    };
    let r = |a: &str, b: &str, n| (a.to_string(), b.to_string(), n, 1, 1, false);
    let first = |a: &str, b: &str| (a.to_string(), b.to_string(), 1, 1, 1, true);
    assert_eq!(rows(&w1), [first("partners", "support"), first("sales", "support")]);
    assert_eq!(w2.week, "2026-03-09");
    assert_eq!(rows(&w2), [r("partners", "support", 1), first("sales", "customers"), r("sales", "support", 1)]);
    assert_eq!(w2.new_pairs, [["customers".to_string(), "sales".to_string()]]);
    assert_eq!(rows(&w3), [r("sales", "support", 1)]);
    assert!(w3.new_pairs.is_empty());
}

#[test]
fn champions_rise_and_fall_against_the_window_before() {
    let mut w = scored(100, &[]);
    let c = w.insights(|r| r.champions(&PeopleFilter { limit: Some(100), ..PeopleFilter::default() }).expect("ok"));
    assert_eq!((c.from.as_str(), c.to.as_str()), ("2026-03-23", "2026-03-30"));
    let ids = |rows: &[super::reads::Champion]| rows.iter().map(|r| r.stakeholder.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&c.top), ["eve", "cat", "gus", "ann", "bob", "fay"]);
    let eve = &c.top[0];
    // 4 moments, 2 counterparts, 1 team, 3 channels: 4 + 2*2 + 3*1 + 1*3; before: 1 + 2 + 3 + 1.
    assert_eq!((eve.score, eve.previous_score), (14.0, 7.0));
    assert_eq!((eve.moments, eve.counterparts, eve.teams, eve.channels), (4, 2, 1, 3));
    assert_eq!(eve.trend, [0, 0, 0, 0, 1, 0, 2, 2]);
    assert_eq!(ids(&c.rising), ["eve", "gus", "cat", "fay"]);
    assert_eq!(ids(&c.falling), ["bob", "ann", "dan"]);
    assert_eq!(ids(&c.connectors), ["eve", "cat", "gus"]);
    let sales = w.insights(|r| {
        r.champions(&PeopleFilter { team: Some("sales".into()), limit: Some(1), ..PeopleFilter::default() })
            .expect("ok")
    });
    assert_eq!(ids(&sales.top), ["eve"]);
    let nobody = w.insights(|r| {
        r.champions(&PeopleFilter { kind: Some("robot".into()), ..PeopleFilter::default() }).expect("ok")
    });
    assert!(nobody.top.is_empty());
}

#[test]
fn someone_active_three_weeks_then_silent_for_two_has_gone_quiet() {
    let mut w = scored(100, &[]);
    let q = w.insights(|r| r.quiet(&PeopleFilter::default()).expect("ok"));
    assert_eq!(q.week, "2026-03-30");
    let rows: Vec<_> =
        q.stakeholders.iter().map(|r| (r.stakeholder.as_str(), r.weeks_active, r.last_moment.as_str())).collect();
    assert_eq!(rows, [("dan", 3, "2026-03-16T10:00:00Z")]);
    // A week later, bob and cat (seen in week 5 only once since week 3) are not quiet yet;
    // as of week 3 nobody is.
    let early = w.insights(|r| {
        r.quiet(&PeopleFilter { week: Some("2026-03-16".into()), ..PeopleFilter::default() }).expect("ok")
    });
    assert!(early.stakeholders.is_empty());
}

#[test]
fn a_challenge_completed_by_two_of_five_participants() {
    let mut w = scored(100, &[]);
    let c = w.insights(|r| r.challenge("meet2", None).expect("ok"));
    assert_eq!(c.windows.len(), 1);
    let win = &c.windows[0];
    assert_eq!(win.window, "2026-03-30");
    assert_eq!((win.goal, win.participants, win.progressing, win.halfway, win.completed), (2, 5, 3, 5, 2));
    assert_eq!(win.completion_rate, 40.0);
    let unknown = w.insights(|r| r.challenge("nope", None));
    assert!(unknown.is_err());
}

#[test]
fn a_goal_is_met_one_week_and_missed_the_next() {
    let mut w = scored(100, &[]);
    let g = w.insights(|r| r.goals(Some("2026-03-02"), None).expect("ok"));
    let bridges = &g.goals[0];
    assert_eq!((bridges.goal.as_str(), bridges.measure, bridges.target), ("bridges", "cross_team_moments", 2.0));
    let weeks: Vec<_> = bridges.weeks.iter().map(|w| (w.week.as_str(), w.actual, w.met)).collect();
    assert_eq!(
        weeks,
        [
            ("2026-03-02", 2.0, true),
            ("2026-03-09", 3.0, true),
            ("2026-03-16", 1.0, false),
            ("2026-03-23", 2.0, true),
            ("2026-03-30", 0.0, false)
        ]
    );
    let rate: Vec<_> = g.goals[1].weeks.iter().map(|w| (w.actual, w.met)).collect();
    assert_eq!(rate, [(0.0, false), (0.0, false), (0.0, false), (0.0, false), (40.0, false)]);
}

#[test]
fn insights_are_the_same_whatever_the_batch_sizes() {
    let whole = everything(&mut scored(100, &[]));
    let listed = people(&mut scored(100, &[]));
    for batch in [1, 2, 3, 7] {
        let mut w = scored(batch, &[]);
        assert_eq!(everything(&mut w), whole, "batches of {batch}");
        assert_eq!(people(&mut w), listed, "batches of {batch}");
    }
}

#[test]
fn insights_come_back_identically_from_a_snapshot() {
    let mut w = scored(4, &[]);
    let before = everything(&mut w);
    let doc = parse_toml(RULES, "test").expect("rules parse");
    let mut restored = OrgWorld::restore(w.snapshot(), &doc, &mut |_| None).expect("restores");
    assert_eq!(everything(&mut restored), before);
    assert_eq!(people(&mut restored), people(&mut w));
    // And they go on from there as the original does.
    let more = || {
        moments(&[]).into_iter().take(3).map(|r| match r {
            Record::Moment(mut m) => {
                m.id.push_str("-again");
                m.at = "2026-04-06T09:00:00Z".into();
                Record::Moment(m)
            }
            other => other,
        })
    };
    w.ingest(more());
    restored.ingest(more());
    assert_eq!(everything(&mut restored), everything(&mut w));
    assert_eq!(people(&mut restored), people(&mut w));
}

#[test]
fn retracting_a_moment_gives_the_insights_of_the_history_without_it() {
    let mut w = scored(5, &[]);
    // Read first, so that the retraction has views to take the moment out of.
    let _ = everything(&mut w);
    w.ingest([record(r#"{"retract":"m6"}"#.to_string())]);
    assert_eq!(everything(&mut w), everything(&mut scored(5, &["m6"])));
}

#[test]
fn insights_carry_over_a_rule_set_publication() {
    let mut w = scored(100, &[]);
    let before = everything(&mut w);
    let doc = parse_toml(&RULES.replace("amount = 10", "amount = 20"), "v2").expect("parses");
    w.publish_rules(&doc, "v2").expect("publishes");
    let after = everything(&mut w);
    assert_eq!(after["activity"], before["activity"]);
    assert_eq!(after["champions"], before["champions"]);
}

/// A history row as (moment, what, source, description, retracted).
fn brief(row: &HistoryRow) -> (String, String, String, Option<String>, bool) {
    let what = match &row.gain {
        super::people::Gain::PointsAwarded { currency, amount } => format!("{amount:+} {currency}"),
        super::people::Gain::BadgeEarned { badge, tier } => format!("badge {badge} {tier:?}"),
        super::people::Gain::LevelReached { level, index } => format!("level {index} {level}"),
        super::people::Gain::ChallengeCompleted { challenge, window } => format!("completed {challenge} {window}"),
    };
    (row.moment.clone(), what, format!("{}:{}", row.source_type, row.source), row.description.clone(), row.retracted)
}

fn history_of(w: &mut OrgWorld, id: &str, after: Option<&str>, limit: usize) -> (Vec<String>, Option<String>) {
    let page = w.insights(|r| r.history_of(id, after, Some(limit))).expect("a history");
    let rows = page.effects.iter().map(|r| format!("{:?}", brief(r))).collect();
    (rows, page.next)
}

fn row(m: &str, what: &str, source: &str, description: Option<&str>, retracted: bool) -> String {
    format!("{:?}", (m.to_string(), what.to_string(), source.to_string(), description.map(str::to_string), retracted))
}

#[test]
fn a_stakeholders_history_is_every_gain_newest_first_with_what_gave_it_page_by_page() {
    let mut w = scored(3, &[]);
    let intro = Some("An introduction");
    let meet2 = Some("Two meets a week");
    // ann: intro m1 (+10, level Newcomer), m4 (+10, level Connector), m8 (+10); meets m11, m12
    // complete meet2 in the week of 2026-03-30 (+5). Within a moment, the latest gain first.
    let all = [
        row("m12", "+5 xp", "challenge:meet2", meet2, false),
        row("m12", "completed meet2 2026-03-30", "challenge:meet2", meet2, false),
        row("m8", "+10 xp", "rule:intro", intro, false),
        row("m4", "level 1 Connector", "level:level", None, false),
        row("m4", "+10 xp", "rule:intro", intro, false),
        row("m1", "level 0 Newcomer", "level:level", None, false),
        row("m1", "+10 xp", "rule:intro", intro, false),
    ];
    let (first, next) = history_of(&mut w, "ann", None, 3);
    assert_eq!(first, all[..3]);
    let (second, next) = history_of(&mut w, "ann", next.as_deref(), 3);
    assert_eq!(second, all[3..6]);
    let (third, next) = history_of(&mut w, "ann", next.as_deref(), 3);
    assert_eq!((third, next), (all[6..].to_vec(), None));
    assert_eq!(history_of(&mut w, "ann", None, 100).0, all);

    // A retracted moment's gains stay, marked: they were taken back.
    w.ingest([record(r#"{"retract":"m8"}"#.to_string())]);
    assert_eq!(history_of(&mut w, "ann", None, 3).0[2], row("m8", "+10 xp", "rule:intro", intro, true));

    // A rule set without the rule: the entries still name it, without a description.
    let renamed = RULES.replace(r#"id = "intro""#, r#"id = "introduction""#);
    w.publish_rules(&parse_toml(&renamed, "v2").expect("parses"), "v2").expect("publishes");
    assert_eq!(history_of(&mut w, "ann", None, 100).0[6], row("m1", "+10 xp", "rule:intro", None, false));
    // And what the new rule gives is named after it.
    w.ingest(moments(&[]).into_iter().take(1).map(|r| match r {
        Record::Moment(mut m) => {
            m.id = "m18".into();
            Record::Moment(m)
        }
        other => other,
    }));
    assert_eq!(history_of(&mut w, "ann", None, 1).0, [row("m18", "+10 xp", "rule:introduction", intro, false)]);
}

#[test]
fn a_history_read_names_the_stakeholder_and_cursor_it_cannot_read() {
    let mut w = scored(100, &[]);
    assert_eq!(w.insights(|r| r.history_of("zed", None, None)), Err(InsightsError::UnknownStakeholder("zed".into())));
    for bad in ["x", "1", "a.b", "-1.0", ".1", "1.", "1.+2"] {
        let err = w.insights(|r| r.history_of("ann", Some(bad), None)).expect_err(bad);
        assert!(matches!(err, InsightsError::Invalid { field: "after", .. }), "{bad}: {err:?}");
    }
    // A position past any held reads from the newest.
    let far = w.insights(|r| r.history_of("ann", Some("99999999999999.99999999999"), Some(1))).expect("far");
    assert_eq!(far.effects[0].moment, "m12");
    let long = "t".repeat(65);
    for (team, kind) in [(Some(long.as_str()), None), (None, Some("")), (None, Some(long.as_str()))] {
        let q = PeopleQuery { team: team.map(Into::into), kind: kind.map(Into::into), ..PeopleQuery::default() };
        let err = w.insights(|r| r.stakeholders(&q)).expect_err("too long");
        assert!(matches!(err, InsightsError::Invalid { field: "team" | "kind", .. }), "{err:?}");
        let f = PeopleFilter { team: team.map(Into::into), kind: kind.map(Into::into), ..PeopleFilter::default() };
        assert!(w.insights(|r| r.champions(&f)).is_err() && w.insights(|r| r.quiet(&f)).is_err());
    }
    let err = w.insights(|r| r.history_of("ann", None, Some(0))).expect_err("limit 0");
    assert!(matches!(err, InsightsError::Invalid { field: "limit", .. }), "{err:?}");
    // Someone who never gained anything has an empty history.
    let dan = w.insights(|r| r.history_of("dan", None, None)).expect("dan");
    assert_eq!((dan.effects.len(), dan.next), (0, None));
}

#[test]
fn stakeholders_are_listed_by_team_and_kind_in_the_order_first_seen_page_by_page() {
    let mut w = scored(100, &[]);
    let list = |w: &mut OrgWorld, q: PeopleQuery| {
        let page = w.insights(|r| r.stakeholders(&q)).expect("a listing");
        let ids: Vec<String> = page.stakeholders.iter().map(|s| s.stakeholder.clone()).collect();
        (page.total, ids, page.next)
    };
    let q = |team: Option<&str>, kind: Option<&str>, after: Option<&str>, limit: usize| PeopleQuery {
        team: team.map(Into::into),
        kind: kind.map(Into::into),
        after: after.map(Into::into),
        limit: Some(limit),
    };
    let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(list(&mut w, q(Some("sales"), None, None, 10)), (2, ids(&["ann", "eve"]), None));
    assert_eq!(list(&mut w, q(None, Some("employee"), None, 2)), (4, ids(&["ann", "bob"]), Some("bob".into())));
    assert_eq!(list(&mut w, q(None, Some("employee"), Some("bob"), 2)), (4, ids(&["eve", "fay"]), None));
    assert_eq!(list(&mut w, q(Some("support"), Some("employee"), None, 10)), (2, ids(&["bob", "fay"]), None));
    assert_eq!(list(&mut w, q(Some("nobody"), None, None, 10)), (0, ids(&[]), None));
    assert_eq!(list(&mut w, q(None, None, None, 100)).0, 7);
    // ann's row: her balance and level (30 from intros, 5 from the challenge).
    let ann = w.insights(|r| r.stakeholders(&q(Some("sales"), None, None, 1))).expect("a listing");
    let ann = &ann.stakeholders[0];
    assert_eq!(
        (ann.currencies["xp"], ann.level.as_deref(), ann.team.as_deref()),
        (35, Some("Connector"), Some("sales"))
    );
    let err = w.insights(|r| r.stakeholders(&q(None, None, Some("zed"), 10))).expect_err("unknown after");
    assert!(matches!(err, InsightsError::Invalid { field: "after", .. }), "{err:?}");
}

#[test]
fn a_goal_filtered_on_a_team_no_one_has_yet_counts_no_one_not_those_without_a_team() {
    let rules =
        format!("{RULES}\n[[goal]]\nid = \"marketing\"\nmeasure = \"moments\"\nteam = \"marketing\"\ntarget = 1\n");
    let mut w = OrgWorld::from_doc(&parse_toml(&rules, "test").expect("parses"), "test").expect("compiles");
    w.ingest(profiles());
    w.ingest(moments(&[]));
    // hal has no profile, so no team.
    w.ingest([record(
        r#"{"id":"h1","stakeholder":"hal","kind":"post","channel":"forum","at":"2026-03-31T10:00:00Z"}"#.to_string(),
    )]);
    let g = w.insights(|r| r.goals(Some("2026-03-30"), None)).expect("goals");
    let marketing = g.goals.iter().find(|g| g.goal == "marketing").expect("the goal");
    assert_eq!(marketing.weeks.iter().map(|w| w.actual).collect::<Vec<_>>(), [0.0]);
    let nobody = PeopleFilter { team: Some("marketing".into()), ..PeopleFilter::default() };
    assert!(w.insights(|r| r.quiet(&nobody)).expect("quiet").stakeholders.is_empty());
}

#[test]
fn a_challenge_whose_window_changes_starts_a_new_log_labelled_by_the_new_windows() {
    let mut w = scored(100, &[]);
    let weekly = w.insights(|r| r.challenge("meet2", None)).expect("meet2");
    assert_eq!(weekly.windows.iter().map(|w| w.window.as_str()).collect::<Vec<_>>(), ["2026-03-30"]);
    let daily = RULES.replace("window = \"week\"", "window = \"day\"");
    w.publish_rules(&parse_toml(&daily, "v2").expect("parses"), "v2").expect("publishes");
    assert!(w.insights(|r| r.challenge("meet2", None)).expect("meet2").windows.is_empty());
    w.ingest([record(
        r#"{"id":"d1","stakeholder":"ann","kind":"meet","channel":"app","at":"2026-04-07T10:00:00Z"}"#.to_string(),
    )]);
    let daily = w.insights(|r| r.challenge("meet2", None)).expect("meet2");
    let windows: Vec<_> = daily.windows.iter().map(|w| (w.window.as_str(), w.participants, w.completed)).collect();
    assert_eq!(windows, [("2026-04-07", 1, 0)]);
    // A publication that leaves the window alone keeps the log.
    w.publish_rules(&parse_toml(&daily_again(), "v3").expect("parses"), "v3").expect("publishes");
    assert_eq!(w.insights(|r| r.challenge("meet2", None)).expect("meet2").windows.len(), 1);
}

fn daily_again() -> String {
    RULES.replace("window = \"week\"", "window = \"day\"").replace("amount = 10", "amount = 11")
}

#[test]
fn an_organisation_without_moments_still_names_a_bad_date() {
    let mut w = world();
    let err = w.insights(|r| r.activity(Some("2026-02-30"), None, None)).expect_err("a bad date");
    assert!(matches!(err, InsightsError::Invalid { field: "from", .. }), "{err:?}");
    let err = w.insights(|r| r.goals(Some("soon"), None)).expect_err("a bad date");
    assert!(matches!(err, InsightsError::Invalid { field: "from", .. }), "{err:?}");
    assert!(w.insights(|r| r.activity(Some("2026-02-03"), None, None)).expect("empty").weeks.is_empty());
}

#[test]
fn a_dropped_challenge_keeps_its_windows_read_by_id() {
    let mut w = scored(100, &[]);
    let before = w.insights(|r| r.challenge("meet2", None)).expect("meet2");
    let start = RULES.find("[[challenge]]").expect("the challenge");
    let end = RULES.find("[insights]").expect("insights");
    let goal = RULES.find("[[goal]]\nid = \"meet-rate\"").expect("the rate goal");
    let dropped = format!("{}{}{}", &RULES[..start], &RULES[end..goal], "");
    w.publish_rules(&parse_toml(&dropped, "v2").expect("parses"), "v2").expect("publishes");
    let after = w.insights(|r| r.challenge("meet2", None)).expect("still read by id");
    assert_eq!(after.windows, before.windows);
}

#[test]
fn a_team_challenges_window_counts_each_contributor_once_at_their_teams_progress() {
    let team = "\n[[challenge]]\nid = \"team3\"\nname = \"Three meets a team\"\nscope = \"team\"\nwindow = \"week\"\nmatch = { kind = [\"meet\"] }\ngoal = { moments = 3 }\n";
    let rules = RULES.replacen("[insights]", &format!("{team}\n[insights]"), 1);
    let mut w = OrgWorld::from_doc(&parse_toml(&rules, "test").expect("parses"), "test").expect("compiles");
    w.ingest(profiles());
    for batch in moments(&[]).chunks(2) {
        w.ingest(batch.to_vec());
    }
    // Week 5's meets: ann, ann, eve (sales: 3, done: ann and eve complete), bob (support: 1),
    // cat (customers: 1), fay (support: 2, halfway of 3).
    let c = w.insights(|r| r.challenge("team3", None)).expect("team3");
    let win = &c.windows[0];
    assert_eq!(
        (win.window.as_str(), win.goal, win.participants, win.completed, win.halfway, win.progressing),
        ("2026-03-30", 3, 5, 2, 3, 3)
    );
    assert!(c.team);
}

#[test]
fn a_week_before_any_moment_or_far_out_reads_as_empty_not_as_a_fault() {
    let mut w = scored(100, &[]);
    for week in ["0001-09-05", "1970-01-01", "2026-02-23", "9999-12-31"] {
        let b = w.insights(|r| r.bridges(Some(week))).expect("bridges");
        assert!(b.matrix.is_empty() && b.new_pairs.is_empty(), "{week}");
        let all = PeopleFilter { week: Some(week.into()), ..PeopleFilter::default() };
        let c = w.insights(|r| r.champions(&all)).expect("champions");
        assert!(c.top.is_empty(), "{week}");
        assert!(w.insights(|r| r.quiet(&all)).expect("quiet").stakeholders.is_empty(), "{week}");
        let a = w.insights(|r| r.activity(Some(week), Some(week), None)).expect("activity");
        assert_eq!(a.weeks.iter().map(|w| w.moments).sum::<u64>(), 0, "{week}");
    }
}
