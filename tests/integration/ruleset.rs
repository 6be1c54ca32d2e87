//! The rule-set format: the shipped samples compile, and bad rule sets are refused with the
//! file, the field path and what is wrong.

use plaudit_core::intern::Interner;
use plaudit_core::ruleset::load;
use plaudit_tests::*;

#[test]
fn shipped_rule_sets_compile() {
    let dir = plaudit_tests::repo_root().join("rules");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).expect("rules/ exists") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            load(&path, &mut Interner::new()).unwrap_or_else(|e| panic!("{e}"));
            count += 1;
        }
    }
    assert!(count >= 2, "acme and a second sample");
}

#[test]
fn acme_uses_the_design_workload_shape() {
    let path = plaudit_tests::repo_root().join("rules/acme.toml");
    let (_, p) = load(&path, &mut Interner::new()).expect("acme compiles");
    assert_eq!((p.rules.len(), p.badges.len(), p.challenges.len(), p.leaderboards.len()), (20, 10, 5, 3));
}

#[test]
fn unknown_field_is_refused_with_its_path_and_line() {
    let e = rules_error("[[rule]]\nid = \"r\"\naward = [{ to = \"actor\", currency = \"xp\", amout = 1 }]\n");
    assert!(e.starts_with("test.toml:"), "{e}");
    assert!(e.contains("rule[0].award[0]"), "{e}");
    assert!(e.contains("unknown field `amout`"), "{e}");
    let line: usize = e.split(':').nth(1).and_then(|l| l.trim().parse().ok()).expect("a line number");
    assert_eq!(line, 15, "{e}");
}

#[test]
fn wrong_type_is_refused_with_its_path() {
    let e = rules_error(
        "[[rule]]\nid = \"r\"\nchance = \"often\"\naward = [{ to = \"actor\", currency = \"xp\", amount = 1 }]\n",
    );
    assert!(e.contains("rule[0].chance"), "{e}");
}

#[test]
fn semantic_problems_are_all_reported_with_paths() {
    let e = rules_error(
        r#"
[[rule]]
id = "r"
award = [{ to = "actor", currency = "gold", amount = 1 }, { to = "counterpart", currency = "xp", amount = 1 }]
cap = { per = "day" }
chance = 1.5

[[rule]]
id = "r"
award = [{ to = "actor", currency = "xp" }]

[[badge]]
id = "b"
metric = "nothing"
threshold = 1

[[badge]]
id = "t"
metric = "xp"
tiers = [{ name = "a", at = 10 }, { name = "b", at = 5 }]

[[challenge]]
id = "c"
window = "week"
from = "2026-03-01T00:00:00Z"
goal = {}

[[leaderboard]]
id = "l"
metric = "xp"

[[leaderboard]]
id = "l"
metric = "xp"
"#,
    );
    for expected in [
        "rule[0].award[0].currency: unknown currency \"gold\" (defined: xp, coins)",
        "rule[0].award[1].to: awards to the counterpart need a match that requires one",
        "rule[0].cap: give `times`, `points` or both",
        "rule[0].chance: must be above 0 and at most 1",
        "rule[1].id: duplicate id \"r\"",
        "rule[1].award[0].amount: give `amount`, `value_factor` or both",
        "badge[0].metric: unknown metric \"nothing\"",
        "badge[1].tiers[1].at: tiers must rise",
        "challenge[0]: give either `window`",
        "challenge[0].goal: give at least one of",
        "leaderboard[1].id: duplicate id \"l\"",
    ] {
        assert!(e.contains(expected), "missing {expected:?} in:\n{e}");
    }
}

#[test]
fn bad_time_zone_and_timestamps_are_named() {
    let text = HEADER.replace("Europe/Amsterdam", "Mars/Olympus");
    let doc = plaudit_core::ruleset::parse_toml(&text, "t.toml").expect("parses");
    let e =
        plaudit_core::ruleset::compile::compile(&doc, &mut Interner::new(), "t.toml").expect_err("refused").to_string();
    assert!(e.contains("organisation.timezone") && e.contains("Mars/Olympus"), "{e}");
    let e =
        rules_error("[[campaign]]\nid = \"c\"\nfrom = \"March\"\nuntil = \"2026-04-01T00:00:00Z\"\nmultiplier = 2.0\n");
    assert!(e.contains("campaign[0].from"), "{e}");
}

#[test]
fn json_form_is_accepted_and_errors_name_the_path() {
    let ok = r#"{"organisation": {"id": "j", "timezone": "UTC"}, "currency": [{"id": "xp"}],
        "rule": [{"id": "r", "award": [{"to": "actor", "currency": "xp", "amount": 1}]}]}"#;
    let doc = plaudit_core::ruleset::parse_json(ok, "body").expect("parses");
    assert!(plaudit_core::ruleset::compile::compile(&doc, &mut Interner::new(), "body").is_ok());
    let bad = ok.replace("\"amount\": 1", "\"amount\": \"one\"");
    let e = plaudit_core::ruleset::parse_json(&bad, "body").expect_err("refused").to_string();
    assert!(e.contains("rule[0].award[0].amount"), "{e}");
}

#[test]
fn challenge_may_grant_only_a_badge_without_a_metric() {
    let e = rules_error(
        r#"
[[badge]]
id = "tiered"
metric = "xp"
tiers = [{ name = "bronze", at = 10 }]

[[challenge]]
id = "c"
window = "week"
goal = { moments = 1 }
badge = "tiered"
"#,
    );
    assert!(e.contains("challenge[0].badge: badge \"tiered\" has a metric"), "{e}");
}
