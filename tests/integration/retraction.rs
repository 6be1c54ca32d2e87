//! Exact retraction: retracting a moment leaves the state the history without it would have
//! given, for every quantity `rules/README.md` says a retraction restores (balances, badges
//! granted by completions, metrics, streaks, individual challenge progress and completions,
//! leaderboards, the insights' weekly totals), for histories without caps, guards, chance
//! rewards, threshold badges and levels (whose later effects stay, as documented).

use plaudit_core::OrgWorld;
use plaudit_core::ruleset::parse_toml;
use plaudit_sdk::{Record, Value};
use plaudit_tests::*;
use proptest::prelude::*;
use serde_json::Value as Json;

/// The metrics, each a block, so that a publication can list them in another order.
const METRICS: [&str; 3] = [
    r#"[[metric]]
id = "big-meetups"
count = { kind = ["meetup"], attrs = { size = { min = 3 } } }"#,
    r#"[[metric]]
id = "people-met"
distinct = "counterparts""#,
    r#"[[metric]]
id = "channels"
distinct = "channels""#,
];

/// The rule set, with its metrics in the given order.
fn rules(order: [usize; 3]) -> String {
    RULES.replace("{METRICS}", &order.map(|i| METRICS[i]).join("\n\n"))
}

const RULES: &str = r#"
[[rule]]
id = "meetup"
match = { kind = ["meetup"] }
award = [{ to = "actor", currency = "xp", amount = 10 }]

[[rule]]
id = "thanks"
match = { has_counterpart = true }
award = [{ to = "counterpart", currency = "coins", amount = 3 }]

[[rule]]
id = "post"
match = { kind = ["post"] }
award = [{ to = "actor", currency = "xp", amount = 4 }]

{METRICS}

[[streak]]
id = "daily"
period = "day"

[[streak]]
id = "weekly-meetups"
period = "week"
match = { kind = ["meetup"] }

[[badge]]
id = "trophy"

[[challenge]]
id = "three-a-week"
window = "week"
match = { kind = ["meetup"] }
goal = { moments = 3 }
reward = [{ currency = "coins", amount = 50 }]
badge = "trophy"

[[challenge]]
id = "meet-two"
window = "week"
goal = { moments = 2, distinct_counterparts = 2 }
reward = [{ currency = "xp", amount = 7 }]

[[leaderboard]]
id = "xp"
metric = "xp"

[[leaderboard]]
id = "xp-weekly"
metric = "xp"
window = "week"

[[leaderboard]]
id = "coins"
metric = "coins"

[[leaderboard]]
id = "big"
metric = "big-meetups"

[[leaderboard]]
id = "big-weekly"
metric = "big-meetups"
window = "week"

[[leaderboard]]
id = "met"
metric = "people-met"

[[leaderboard]]
id = "daily"
metric = "daily"
"#;

const PEOPLE: [&str; 4] = ["ann", "bob", "cy", "dee"];

/// One generated moment: (actor, counterpart, meetup?, channel, day, minute, size).
type Spec = (usize, Option<usize>, bool, usize, u32, u32, i64);

fn record(i: usize, &(who, with, meetup, channel, day, minute, size): &Spec) -> Record {
    let at = format!("2026-03-{:02}T{:02}:{:02}:00Z", 2 + day, 8 + minute / 60, minute % 60);
    let kind = if meetup { "meetup" } else { "post" };
    let mut moment =
        m(&format!("m{i}"), PEOPLE[who], kind, ["forum", "event", "chat"][channel], &at).attr("size", Value::Int(size));
    if let Some(c) = with.filter(|&c| c != who) {
        moment = moment.with(PEOPLE[c]);
    }
    Record::Moment(moment)
}

/// What happens to the world between its history and the retractions.
#[derive(Clone, Copy, Debug)]
enum Between {
    Nothing,
    /// Taken as a snapshot (encoded and decoded) and restored.
    Restored,
    /// The same rule set published again with its metrics in another order (what each moment
    /// matched is kept by position, so a publication moves it).
    Republished,
}

/// The world after the profiles and `specs` (with the moment at `skip` left out), `between`,
/// then `after` records, one batch each.
fn history(specs: &[Spec], skip: Option<usize>, between: Between, after: Vec<Record>) -> OrgWorld {
    let mut w = world(&rules([0, 1, 2]));
    let profiles = PEOPLE.iter().enumerate().map(|(i, p)| profile(p, "employee", ["red", "blue"][i % 2]));
    run(&mut w, profiles.collect());
    let records: Vec<Record> =
        specs.iter().enumerate().filter(|(i, _)| Some(*i) != skip).map(|(i, s)| record(i, s)).collect();
    for chunk in records.chunks(5) {
        run(&mut w, chunk.to_vec());
    }
    // The same clock for both: a last moment after every other, by someone else, which also
    // keeps every windowed board on the clock's week (a windowed board shows the latest window
    // anyone scored in, and a retraction does not move it back: see rules/README.md).
    let clock = m("clock", "zed", "meetup", "forum", "2026-03-30T23:00:00Z").attr("size", Value::Int(3));
    run(&mut w, vec![Record::Moment(clock)]);
    let doc = |order| parse_toml(&format!("{HEADER}\n{}", rules(order)), "test.toml").expect("valid rules");
    match between {
        Between::Nothing => {}
        Between::Restored => {
            let snapshot = crate::snapshots::round_trip(w.snapshot());
            w = OrgWorld::restore(snapshot, &doc([0, 1, 2]), &mut |_| None).expect("restores");
        }
        Between::Republished => {
            w.publish_rules(&doc([2, 0, 1]), "test.toml").expect("publishes");
        }
    }
    for r in after {
        run(&mut w, vec![r]);
    }
    w
}

/// What retraction restores, as readers see it: profiles without ranks (ties are broken by
/// sequence numbers, which a retraction adds), boards as sorted (stakeholder, value) rows, the
/// challenges, and the insights (weekly activity and totals, challenge windows).
fn restored(w: &mut OrgWorld) -> Json {
    let mut summary = serde_json::to_value(w.summary(100)).expect("a summary");
    for p in summary["profiles"].as_array_mut().expect("profiles") {
        p.as_object_mut().expect("a profile").remove("ranks");
    }
    for page in summary["leaderboards"].as_array_mut().expect("boards") {
        let rows = page["rows"].as_array_mut().expect("rows");
        for row in rows.iter_mut() {
            row.as_object_mut().expect("a row").remove("rank");
        }
        rows.sort_by_key(|r| r["stakeholder"].as_str().map(str::to_string));
    }
    let activity = w.insights(|r| r.activity(None, None, None).map(|a| serde_json::to_value(a).expect("json")));
    let challenges = ["three-a-week", "meet-two"]
        .map(|c| w.insights(|r| r.challenge(c, None).map(|c| serde_json::to_value(c).expect("json"))).ok());
    serde_json::json!({ "summary": summary, "activity": activity.ok(), "challenges": challenges })
}

/// The first place `a` and `b` differ, by path (a whole document is too long to read).
fn difference(a: &Json, b: &Json, path: &str) -> Option<String> {
    match (a, b) {
        (Json::Object(x), Json::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            let first = keys.into_iter().find_map(|k| {
                difference(x.get(k).unwrap_or(&Json::Null), y.get(k).unwrap_or(&Json::Null), &format!("{path}.{k}"))
            });
            // A small object is shown whole: the fields around the difference explain it.
            match first {
                Some(d) if a.to_string().len() < 300 => Some(format!("{d}\n  retracted {a}\n  without   {b}")),
                other => other,
            }
        }
        (Json::Array(x), Json::Array(y)) if x.len() == y.len() => {
            x.iter().zip(y).enumerate().find_map(|(i, (x, y))| difference(x, y, &format!("{path}[{i}]")))
        }
        _ if a == b => None,
        // A currency given and taken back is listed at 0 where it was never given: the same.
        (Json::Null, Json::Number(n)) | (Json::Number(n), Json::Null) if n.as_i64() == Some(0) => None,
        _ => Some(format!("{path}: retracted {a}, without {b}")),
    }
}

fn between() -> impl Strategy<Value = Between> {
    prop_oneof![Just(Between::Nothing), Just(Between::Restored), Just(Between::Republished)]
}

fn spec() -> impl Strategy<Value = Spec> {
    // Days in the first two weeks and in the clock's week and the one before it.
    let day = prop_oneof![0..9u32, 27..29u32];
    (0..4usize, proptest::option::of(0..4usize), any::<bool>(), 0..3usize, day, 0..600u32, 0..5i64)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, .. ProptestConfig::default() })]

    #[test]
    fn retracting_a_moment_leaves_the_state_of_the_history_without_it(
        specs in proptest::collection::vec(spec(), 1..40),
        pick in any::<prop::sample::Index>(),
        between in between(),
    ) {
        let k = pick.index(specs.len());
        let mut retracted = history(&specs, None, between, vec![retract(&format!("m{k}"))]);
        let mut without = history(&specs, Some(k), Between::Nothing, Vec::new());
        let diff = difference(&restored(&mut retracted), &restored(&mut without), "");
        prop_assert!(diff.is_none(), "{}", diff.unwrap_or_default());
    }

    #[test]
    fn retracting_two_moments_in_turn_leaves_the_state_of_the_history_without_both(
        specs in proptest::collection::vec(spec(), 2..30),
        picks in (any::<prop::sample::Index>(), any::<prop::sample::Index>()),
        between in between(),
    ) {
        let (a, b) = (picks.0.index(specs.len()), picks.1.index(specs.len()));
        prop_assume!(a != b);
        let mut retracted = history(&specs, None, between, vec![retract(&format!("m{a}")), retract(&format!("m{b}"))]);
        let rest: Vec<Spec> = specs.iter().enumerate().filter(|(i, _)| *i != a).map(|(_, s)| *s).collect();
        // Ids follow positions: renumber by leaving `b`'s spec where it falls in `rest`.
        let b_in_rest = if b > a { b - 1 } else { b };
        let mut without = history(&rest, Some(b_in_rest), Between::Nothing, Vec::new());
        let diff = difference(&restored(&mut retracted), &restored(&mut without), "");
        prop_assert!(diff.is_none(), "{}", diff.unwrap_or_default());
    }
}

#[test]
fn a_completion_no_longer_reached_is_revoked_with_its_reward_and_badge() {
    let specs: Vec<Spec> = (0..3).map(|i| (0, None, true, 0, 0, i * 10, 0)).collect();
    let mut w = history(&specs, None, Between::Nothing, Vec::new());
    assert_eq!(balance(&mut w, "ann", "coins"), 50, "three meetups completed the week");
    w.ingest(vec![retract("m0")]);
    let effects = w.drain_effects();
    let types: Vec<String> = effects
        .iter()
        .map(|e| serde_json::to_value(&e.kind).expect("an effect")["type"].as_str().unwrap_or_default().to_string())
        .collect();
    for expected in ["points_revoked", "challenge_revoked", "badge_revoked", "challenge_progressed"] {
        assert!(types.iter().any(|t| t == expected), "{expected} in {types:?}");
    }
    assert!(effects.iter().all(|e| e.moment == "m0"), "every change names the retracted moment");
    assert_eq!(balance(&mut w, "ann", "coins"), 0, "the reward is taken back");
    let profile = w.profile("ann").expect("ann");
    assert!(profile.badges.is_empty(), "{:?}", profile.badges);
    // Another meetup that week completes it again, and rewards it again.
    run(&mut w, vec![record(9, &(0, None, true, 0, 0, 100, 0))]);
    assert_eq!(balance(&mut w, "ann", "coins"), 50);
    // Retracting the moment that completed it now leaves two: revoked again, once.
    w.ingest(vec![retract("m9")]);
    assert_eq!(balance(&mut w, "ann", "coins"), 0);
    w.ingest(vec![retract("m1")]);
    assert_eq!(balance(&mut w, "ann", "coins"), 0, "nothing taken twice");
}

#[test]
fn a_retracted_first_meeting_lets_the_next_meeting_count_as_first_again() {
    let specs: Vec<Spec> = vec![(0, Some(1), false, 0, 0, 0, 0)];
    let mut w = history(&specs, None, Between::Nothing, vec![retract("m0")]);
    assert_eq!(w.profile("ann").expect("ann").metrics.get("people-met"), Some(&0));
    run(&mut w, vec![record(5, &(0, Some(1), false, 0, 1, 0, 0))]);
    assert_eq!(w.profile("ann").expect("ann").metrics.get("people-met"), Some(&1));
}
