//! Publishing a new rule-set version going forward: what stakeholders have carries over by id,
//! the next moments score under the new rules.

use plaudit_core::OrgWorld;
use plaudit_core::reads::PageQuery;
use plaudit_core::ruleset::{RuleSetDoc, parse_toml};
use plaudit_core::workload::{Spec, Workload};
use plaudit_sdk::{Effect, Record};
use plaudit_tests::*;

fn acme_text() -> String {
    std::fs::read_to_string(repo_root().join("rules/acme.toml")).expect("rules/acme.toml")
}

fn doc(text: &str) -> RuleSetDoc {
    parse_toml(text, "candidate.toml").unwrap_or_else(|e| panic!("{e}"))
}

/// Every array sorted by its elements' JSON, so that two summaries compare whatever order the
/// rule set lists its items in (ranks and values are inside the elements).
fn normalized(v: serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Array(items) => {
            let mut items: Vec<_> = items.into_iter().map(normalized).collect();
            items.sort_by_key(|x| x.to_string());
            serde_json::Value::Array(items)
        }
        serde_json::Value::Object(map) => map.into_iter().map(|(k, v)| (k, normalized(v))).collect(),
        other => other,
    }
}

/// The first path where two JSON documents differ, with both values (short enough to read).
fn difference(a: &serde_json::Value, b: &serde_json::Value, path: &str) -> Option<String> {
    use serde_json::Value::{Array, Object};
    match (a, b) {
        (Object(x), Object(y)) => {
            let keys: std::collections::BTreeSet<_> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| match (x.get(k), y.get(k)) {
                (Some(u), Some(v)) => difference(u, v, &format!("{path}.{k}")),
                (u, v) => Some(format!("{path}.{k}: {u:?} vs {v:?}")),
            })
        }
        (Array(x), Array(y)) if x.len() == y.len() => {
            x.iter().zip(y).enumerate().find_map(|(i, (u, v))| difference(u, v, &format!("{path}[{i}]")))
        }
        _ if a == b => None,
        _ => Some(format!("{path}: {:.300} vs {:.300}", a.to_string(), b.to_string())),
    }
}

fn assert_same_state(a: &mut OrgWorld, b: &mut OrgWorld) {
    if let Some(d) = difference(&state(a), &state(b), "") {
        panic!("the states differ at {d}");
    }
}

fn state(w: &mut OrgWorld) -> serde_json::Value {
    normalized(serde_json::to_value(w.summary(1000)).expect("summary serializes"))
}

/// The effects as sorted JSON; without `balance` fields when `balances` is false (a balance
/// after each award depends on the order of a moment's awards, which is the rules' order).
fn sorted_json(effects: &[Effect], balances: bool) -> Vec<String> {
    let json = |e: &Effect| {
        let mut v = serde_json::to_value(e).expect("effect serializes");
        if !balances && let Some(o) = v.as_object_mut() {
            o.remove("balance");
        }
        v.to_string()
    };
    let mut v: Vec<String> = effects.iter().map(json).collect();
    v.sort();
    v
}

fn workload() -> Vec<Record> {
    Workload::new(Spec { stakeholders: 300, moments: 6000, days: 40, ..Spec::default() }).records().collect()
}

/// Scores `records` in two halves, publishing `candidate` (or nothing) in between.
fn score_publishing(candidate: Option<&RuleSetDoc>, records: &[Record]) -> (OrgWorld, Vec<Effect>) {
    let mut w = world_from(&acme_text());
    let (first, second) = records.split_at(records.len() / 2);
    w.ingest(first.to_vec());
    w.drain_effects();
    if let Some(doc) = candidate {
        let pending = w.publish_rules(doc, "candidate.toml").unwrap_or_else(|e| panic!("{e}"));
        assert!(pending.is_empty());
    }
    let outcome = w.ingest(second.to_vec());
    assert!(outcome.rejected.is_empty());
    let effects = w.drain_effects();
    (w, effects)
}

#[test]
fn publishing_the_same_rules_changes_nothing() {
    let records = workload();
    let (mut plain, plain_effects) = score_publishing(None, &records);
    let (mut published, effects) = score_publishing(Some(&doc(&acme_text())), &records);
    assert!(plain_effects.len() > 1000);
    assert_same_state(&mut plain, &mut published);
    let balances = true;
    let (a, b) = (sorted_json(&plain_effects, balances), sorted_json(&effects, balances));
    if let Some(i) = (0..a.len().max(b.len())).find(|&i| a.get(i) != b.get(i)) {
        panic!("effects differ: {:?} vs {:?} ({} vs {} effects)", a.get(i), b.get(i), a.len(), b.len());
    }
}

#[test]
fn reordering_every_section_carries_all_state_by_id() {
    let mut reversed = doc(&acme_text());
    reversed.currencies.reverse();
    reversed.rules.reverse();
    reversed.metrics.reverse();
    reversed.streaks.reverse();
    reversed.badges.reverse();
    reversed.challenges.reverse();
    reversed.leaderboards.reverse();
    let records = workload();
    let (mut plain, plain_effects) = score_publishing(None, &records);
    let (mut published, effects) = score_publishing(Some(&reversed), &records);
    assert_same_state(&mut plain, &mut published);
    let balances = false;
    let (a, b) = (sorted_json(&plain_effects, balances), sorted_json(&effects, balances));
    if let Some(i) = (0..a.len().max(b.len())).find(|&i| a.get(i) != b.get(i)) {
        panic!("effects differ: {:?} vs {:?} ({} vs {} effects)", a.get(i), b.get(i), a.len(), b.len());
    }
}

const V1: &str = r#"
[[rule]]
id = "answer"
match = { kind = ["answer"] }
award = [{ to = "actor", currency = "xp", amount = 10 }, { to = "actor", currency = "coins", amount = 1 }]

[[badge]]
id = "thirty"
metric = "xp"
threshold = 30

[levels]
currency = "xp"
steps = [{ name = "novice", at = 0 }, { name = "regular", at = 50 }]
"#;

fn answer(id: &str, who: &str) -> Record {
    Record::Moment(m(id, who, "answer", "forum", "2026-03-02T10:00:00Z"))
}

fn publish(w: &mut OrgWorld, rules: &str) {
    let text = format!("{HEADER}\n{rules}");
    w.publish_rules(&doc(&text), "candidate.toml").unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn a_new_amount_applies_going_forward_and_keeps_what_was_earned() {
    let mut w = world(V1);
    run(&mut w, vec![answer("a1", "ann"), answer("a2", "ann")]);
    publish(&mut w, &V1.replace("amount = 10", "amount = 25"));
    assert_eq!(balance(&mut w, "ann", "xp"), 20, "history keeps its points");
    let effects = run(&mut w, vec![answer("a3", "ann")]);
    assert_eq!(points(&effects, "ann", "xp"), 25);
    assert_eq!(balance(&mut w, "ann", "xp"), 45);
    assert_eq!(badges(&effects, "ann"), vec!["thirty#1".to_string()], "the badge watches the carried balance");
}

#[test]
fn a_removed_currency_drops_its_balance_and_a_retraction_reverses_only_what_remains() {
    let mut w = world(V1);
    run(&mut w, vec![answer("a1", "ann")]);
    let without_coins = HEADER.replace("[[currency]]\nid = \"coins\"\n", "")
        + &V1.replace(", { to = \"actor\", currency = \"coins\", amount = 1 }", "");
    w.publish_rules(&doc(&without_coins), "candidate.toml").unwrap_or_else(|e| panic!("{e}"));
    let profile = w.profile("ann").expect("ann");
    assert_eq!(profile.currencies.get("xp"), Some(&10));
    assert!(!profile.currencies.contains_key("coins"));
    let effects = run(&mut w, vec![retract("a1")]);
    assert_eq!(of_type(&effects, "points_revoked").len(), 1, "only the xp comes back out: {effects:?}");
    assert_eq!(balance(&mut w, "ann", "xp"), 0);
}

#[test]
fn a_new_all_time_board_is_filled_from_current_balances() {
    let mut w = world(V1);
    run(&mut w, vec![answer("a1", "ann"), answer("b1", "bob"), answer("b2", "bob")]);
    publish(&mut w, &format!("{V1}\n[[leaderboard]]\nid = \"coins\"\nmetric = \"coins\"\n"));
    let page = w.leaderboard("coins", &PageQuery { limit: 10, ..PageQuery::default() }).expect("the new board exists");
    let rows: Vec<(String, i64, usize)> =
        page.rows.stakeholders().iter().map(|r| (r.stakeholder.clone(), r.value, r.rank)).collect();
    assert_eq!(rows, vec![("bob".to_string(), 2, 1), ("ann".to_string(), 1, 2)]);
    assert_eq!(w.profile("bob").expect("bob").ranks.get("coins"), Some(&1));
}

#[test]
fn lowered_level_steps_raise_levels_at_once_and_never_lower_them() {
    let mut w = world(V1);
    run(&mut w, vec![answer("a1", "ann"), answer("a2", "ann")]);
    publish(&mut w, &V1.replace("at = 50", "at = 20"));
    assert_eq!(w.profile("ann").expect("ann").level.map(|l| l.name), Some("regular".to_string()));
    publish(&mut w, &V1.replace("at = 50", "at = 500"));
    assert_eq!(w.profile("ann").expect("ann").level.map(|l| l.name), Some("regular".to_string()));
}

#[test]
fn a_changed_time_zone_or_organisation_is_refused_naming_the_field_and_changes_nothing() {
    let mut w = world(V1);
    run(&mut w, vec![answer("a1", "ann")]);
    let other_zone = format!("{}\n{V1}", HEADER.replace("Europe/Amsterdam", "Asia/Tokyo"));
    let err = w.publish_rules(&doc(&other_zone), "candidate.toml").expect_err("refused");
    assert_eq!(err.problems()[0].0, "organisation.timezone", "{err}");
    let other_org = format!("{}\n{V1}", HEADER.replace("id = \"test\"", "id = \"other\""));
    let err = w.publish_rules(&doc(&other_org), "candidate.toml").expect_err("refused");
    assert_eq!(err.problems()[0].0, "organisation.id", "{err}");
    let effects = run(&mut w, vec![answer("a2", "ann")]);
    assert_eq!(points(&effects, "ann", "xp"), 10, "the old rules are still in force");
}
