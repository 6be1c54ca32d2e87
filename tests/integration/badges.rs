//! Badges (one-off, tiered, repeatable) on every kind of metric, with rewards; levels.

use plaudit_tests::*;

const RULES: &str = r#"
[[rule]]
id = "answer"
match = { kind = ["answer"] }
award = [{ to = "actor", currency = "xp", amount = 10 }]

[[metric]]
id = "answers"
count = { kind = ["answer"] }

[[metric]]
id = "people"
distinct = "counterparts"

[[metric]]
id = "teams"
distinct = "teams"

[[metric]]
id = "channels"
distinct = "channels"

[[streak]]
id = "daily"
period = "day"

[[badge]]
id = "helper"
metric = "answers"
tiers = [
  { name = "bronze", at = 1, reward = [{ currency = "coins", amount = 1 }] },
  { name = "silver", at = 3, reward = [{ currency = "coins", amount = 10 }] },
]

[[badge]]
id = "xp-30"
metric = "xp"
threshold = 30

[[badge]]
id = "every-20"
metric = "xp"
every = 20

[[badge]]
id = "connector"
metric = "people"
threshold = 2

[[badge]]
id = "bridge"
metric = "teams"
threshold = 1

[[badge]]
id = "omni"
metric = "channels"
threshold = 2

[[badge]]
id = "streak-2"
metric = "daily"
threshold = 2

[levels]
currency = "xp"
steps = [{ name = "New", at = 0 }, { name = "Known", at = 20 }, { name = "Star", at = 40 }]
"#;

#[test]
fn tiered_one_off_and_repeatable_badges_are_earned_in_order_with_rewards() {
    let mut w = world(RULES);
    let fx =
        score(&mut w, (0..4).map(|i| m(&format!("{i}"), "ann", "answer", "forum", "2026-03-02T10:00:00Z")).collect());
    assert_eq!(badges(&fx, "ann"), ["helper:bronze", "every-20#1", "xp-30#1", "helper:silver", "every-20#2"]);
    assert_eq!(balance(&mut w, "ann", "coins"), 11);
    let p = w.profile("ann").expect("ann exists");
    let names: Vec<String> = p.badges.iter().map(|b| format!("{}:{:?}:{}", b.badge, b.tier, b.count)).collect();
    assert_eq!(names, ["helper:Some(\"silver\"):2", "xp-30:None:1", "every-20:None:2"]);
}

#[test]
fn levels_are_reached_once_each_even_when_one_award_crosses_several() {
    let mut w = world(&RULES.replace("amount = 10 }]\n\n[[metric]]", "amount = 45 }]\n\n[[metric]]"));
    let fx = score(&mut w, vec![m("1", "ann", "answer", "forum", "2026-03-02T10:00:00Z")]);
    let levels: Vec<String> = of_type(&fx, "level_reached")
        .iter()
        .map(|e| match &e.kind {
            plaudit_sdk::EffectKind::LevelReached { level, .. } => level.clone(),
            _ => String::new(),
        })
        .collect();
    assert_eq!(levels, ["New", "Known", "Star"]);
    assert_eq!(w.profile("ann").and_then(|p| p.level).map(|l| l.name), Some("Star".to_string()));
    assert!(
        of_type(&score(&mut w, vec![m("2", "ann", "answer", "forum", "2026-03-02T11:00:00Z")]), "level_reached")
            .is_empty()
    );
}

#[test]
fn distinct_counterparts_teams_and_channels_badges() {
    let mut w = world(RULES);
    let fx = run(
        &mut w,
        vec![
            profile("ann", "employee", "sales"),
            profile("bob", "employee", "sales"),
            profile("cid", "employee", "hr"),
            plaudit_sdk::Record::Moment(m("1", "ann", "chat", "chat", "2026-03-02T10:00:00Z").with("bob")),
            plaudit_sdk::Record::Moment(m("2", "ann", "chat", "chat", "2026-03-02T10:00:00Z").with("bob")),
            plaudit_sdk::Record::Moment(m("3", "ann", "chat", "email", "2026-03-02T10:00:00Z").with("cid")),
        ],
    );
    let got = badges(&fx, "ann");
    for b in ["connector#1", "bridge#1", "omni#1"] {
        assert!(got.contains(&b.to_string()), "{b} missing from {got:?}");
    }
    let metrics = w.profile("ann").expect("ann").metrics;
    // Teams met count other teams only: bob is in ann's own team.
    assert_eq!((metrics["people"], metrics["teams"], metrics["channels"]), (2, 1, 2));
}

#[test]
fn streak_badge_follows_streak_length() {
    let mut w = world(RULES);
    let fx = score(
        &mut w,
        vec![
            m("1", "ann", "post", "forum", "2026-03-02T10:00:00Z"),
            m("2", "ann", "post", "forum", "2026-03-03T10:00:00Z"),
        ],
    );
    assert_eq!(badges(&fx, "ann"), ["streak-2#1"]);
}
