//! Native rules: matching, awards to actor and counterpart, first-time bonuses, campaigns,
//! chance rewards, value factors, retraction.

use plaudit_sdk::Value;
use plaudit_tests::*;

/// One xp for every moment.
const ONE_XP: &str = r#"
[[rule]]
id = "r"
award = [{ to = "actor", currency = "xp", amount = 1 }]
"#;

#[test]
fn rule_rewards_actor_and_counterpart_and_names_itself() {
    let mut w = world(
        r#"
[[rule]]
id = "intro"
match = { kind = ["introduction"], has_counterpart = true }
award = [{ to = "actor", currency = "xp", amount = 10 }, { to = "counterpart", currency = "coins", amount = 3 }]
"#,
    );
    let fx = score(&mut w, vec![m("1", "ann", "introduction", "chat", "2026-03-02T10:00:00Z").with("bob")]);
    assert_eq!(points(&fx, "ann", "xp"), 10);
    assert_eq!(points(&fx, "bob", "coins"), 3);
    assert!(fx.iter().all(|e| e.source == "intro" && e.moment == "1"));
    assert_eq!(balance(&mut w, "bob", "coins"), 3);
}

#[test]
fn every_match_condition_narrows() {
    let mut w = world(
        r#"
[[rule]]
id = "r"
match = { kind = ["answer"], channel = ["forum"], stakeholder_kind = ["employee"], team = ["support"], attrs = { accepted = true, words = { min = 10 } }, value = { min = 3.0 } }
award = [{ to = "actor", currency = "xp", amount = 1 }]
"#,
    );
    let base = || {
        m("x", "ann", "answer", "forum", "2026-03-02T10:00:00Z")
            .attr("accepted", Value::Bool(true))
            .attr("words", Value::Int(12))
            .value(4.0)
    };
    let mut records = vec![profile("ann", "employee", "support"), profile("bob", "customer", "support")];
    let cases = [
        (base(), true),
        (base().attr("accepted", Value::Bool(false)), false),
        (base().attr("words", Value::Int(9)), false),
        (base().value(2.0), false),
        (
            {
                let mut x = base();
                x.channel = "chat".into();
                x
            },
            false,
        ),
        (
            {
                let mut x = base();
                x.kind = "post".into();
                x
            },
            false,
        ),
        (
            {
                let mut x = base();
                x.stakeholder = "bob".into();
                x
            },
            false,
        ),
    ];
    for (i, (mut moment, _)) in cases.clone().into_iter().enumerate() {
        moment.id = format!("m{i}");
        records.push(plaudit_sdk::Record::Moment(moment));
    }
    let fx = run(&mut w, records);
    let scored = moments_of(&fx, "points_awarded");
    let expected: Vec<String> = cases.iter().enumerate().filter(|(_, c)| c.1).map(|(i, _)| format!("m{i}")).collect();
    assert_eq!(scored, expected);
}

#[test]
fn first_time_bonuses_fire_once_per_counterpart_channel_and_team() {
    let mut w = world(
        r#"
[[rule]]
id = "new-person"
match = { first = "counterpart" }
award = [{ to = "actor", currency = "xp", amount = 5 }]

[[rule]]
id = "new-channel"
match = { first = "channel" }
award = [{ to = "actor", currency = "coins", amount = 1 }]

[[rule]]
id = "new-team"
match = { first = "team" }
award = [{ to = "actor", currency = "coins", amount = 100 }]
"#,
    );
    let fx = run(
        &mut w,
        vec![
            profile("ann", "employee", "sales"),
            profile("bob", "employee", "sales"),
            profile("cid", "employee", "sales"),
            profile("dan", "employee", "hr"),
            plaudit_sdk::Record::Moment(m("1", "ann", "chat", "chat", "2026-03-02T10:00:00Z").with("bob")),
            plaudit_sdk::Record::Moment(m("2", "ann", "chat", "chat", "2026-03-02T11:00:00Z").with("bob")),
            plaudit_sdk::Record::Moment(m("3", "ann", "chat", "email", "2026-03-02T12:00:00Z").with("cid")),
            plaudit_sdk::Record::Moment(m("4", "ann", "chat", "email", "2026-03-02T13:00:00Z").with("dan")),
        ],
    );
    let by = |rule: &str| -> Vec<&str> { fx.iter().filter(|e| e.source == rule).map(|e| e.moment.as_str()).collect() };
    assert_eq!(by("new-person"), ["1", "3", "4"]);
    assert_eq!(by("new-channel"), ["1", "3"]);
    // Teams other than ann's own (sales): only dan's hr.
    assert_eq!(by("new-team"), ["4"]);
}

#[test]
fn campaign_multiplies_inside_its_window_only() {
    let mut w = world(
        r#"
[[rule]]
id = "referral"
match = { kind = ["referral"] }
award = [{ to = "actor", currency = "xp", amount = 10 }]

[[campaign]]
id = "march"
from = "2026-03-01T00:00:00+01:00"
until = "2026-04-01T00:00:00+02:00"
multiplier = 2.5
"#,
    );
    let fx = score(
        &mut w,
        vec![
            m("before", "ann", "referral", "email", "2026-02-28T22:59:59Z"),
            m("start", "ann", "referral", "email", "2026-02-28T23:00:00Z"),
            m("last", "ann", "referral", "email", "2026-03-31T21:59:59Z"),
            m("end", "ann", "referral", "email", "2026-03-31T22:00:00Z"),
        ],
    );
    let amounts: Vec<i64> = of_type(&fx, "points_awarded")
        .iter()
        .map(|e| match e.kind {
            plaudit_sdk::EffectKind::PointsAwarded { amount, .. } => amount,
            _ => 0,
        })
        .collect();
    assert_eq!(amounts, [10, 25, 25, 10]);
}

#[test]
fn value_factor_pays_per_unit_of_value() {
    let mut w = world(
        r#"
[[rule]]
id = "rated"
match = { kind = ["answer"] }
award = [{ to = "actor", currency = "xp", amount = 1, value_factor = 2.0 }]
"#,
    );
    let fx = score(
        &mut w,
        vec![
            m("1", "ann", "answer", "forum", "2026-03-02T10:00:00Z").value(4.5),
            m("2", "ann", "answer", "forum", "2026-03-02T10:00:00Z"),
        ],
    );
    assert_eq!(points(&fx, "ann", "xp"), 1 + 9 + 1);
}

#[test]
fn chance_rewards_are_reproducible_and_near_their_probability() {
    let rules = r#"
[[rule]]
id = "lucky"
match = { kind = ["meetup"] }
chance = 0.25
award = [{ to = "actor", currency = "coins", amount = 1 }]
"#;
    let moments = || {
        (0..2000)
            .map(|i| m(&format!("{i}"), &format!("p{}", i % 50), "meetup", "event", "2026-03-02T10:00:00Z"))
            .collect()
    };
    let a = score(&mut world(rules), moments());
    let b = score(&mut world(rules), moments());
    assert_eq!(a, b, "same seed and sequence, same draws");
    let wins = moments_of(&a, "points_awarded").len();
    assert!((400..600).contains(&wins), "{wins} wins of 2000 at p = 0.25");
    let reseeded = score(&mut world_from(&format!("{}\n{rules}", HEADER.replace("seed = 7", "seed = 8"))), moments());
    assert_ne!(a, reseeded, "another organisation seed draws differently");
}

#[test]
fn paused_rule_awards_nothing() {
    let mut w = world(
        r#"
[[rule]]
id = "r"
paused = true
award = [{ to = "actor", currency = "xp", amount = 1 }]
"#,
    );
    assert!(score(&mut w, vec![m("1", "ann", "post", "forum", "2026-03-02T10:00:00Z")]).is_empty());
}

#[test]
fn duplicate_ids_score_once_within_and_across_batches() {
    let mut w = world(ONE_XP);
    let one = || m("same", "ann", "post", "forum", "2026-03-02T10:00:00Z");
    let outcome = w.ingest([one(), one()].map(plaudit_sdk::Record::Moment));
    assert_eq!((outcome.accepted, outcome.duplicates), (1, 1));
    let outcome = w.ingest([one()].map(plaudit_sdk::Record::Moment));
    assert_eq!((outcome.accepted, outcome.duplicates), (0, 1));
    assert_eq!(balance(&mut w, "ann", "xp"), 1);
}

#[test]
fn invalid_moments_are_refused_with_the_field_and_others_still_score() {
    let mut w = world(ONE_XP);
    let outcome = w.ingest(
        [
            m("ok", "ann", "post", "forum", "2026-03-02T10:00:00Z"),
            m("bad-time", "ann", "post", "forum", "yesterday"),
            m("self", "ann", "post", "forum", "2026-03-02T10:00:00Z").with("ann"),
            m("", "ann", "post", "forum", "2026-03-02T10:00:00Z"),
        ]
        .map(plaudit_sdk::Record::Moment),
    );
    let fields: Vec<(usize, &str)> = outcome.rejected.iter().map(|e| (e.index, e.field)).collect();
    assert_eq!(fields, [(1, "at"), (2, "counterpart"), (3, "id")]);
    assert_eq!(outcome.accepted, 1);
    assert_eq!(balance(&mut w, "ann", "xp"), 1);
}

#[test]
fn retraction_reverses_points_and_badges_the_moment_earned() {
    let mut w = world(
        r#"
[[rule]]
id = "r"
award = [{ to = "actor", currency = "xp", amount = 10 }]

[[badge]]
id = "ten"
metric = "xp"
threshold = 10
reward = [{ currency = "coins", amount = 5 }]
"#,
    );
    score(&mut w, vec![m("1", "ann", "post", "forum", "2026-03-02T10:00:00Z")]);
    assert_eq!((balance(&mut w, "ann", "xp"), balance(&mut w, "ann", "coins")), (10, 5));
    let fx = run(&mut w, vec![retract("1")]);
    assert_eq!(points(&fx, "ann", "xp"), -10);
    assert_eq!(points(&fx, "ann", "coins"), -5);
    assert_eq!(of_type(&fx, "badge_revoked").len(), 1);
    assert!(fx.iter().all(|e| e.moment == "1" && e.source == "retraction"));
    assert_eq!((balance(&mut w, "ann", "xp"), balance(&mut w, "ann", "coins")), (0, 0));
    assert!(w.profile("ann").is_some_and(|p| p.badges.is_empty()));
    let again = w.ingest([retract("1")]);
    assert_eq!((again.accepted, again.duplicates), (0, 1));
    let unknown = w.ingest([retract("nope")]);
    assert_eq!(unknown.rejected[0].field, "retract");
}
