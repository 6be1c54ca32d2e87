//! The rule set in force applied to history (additive or rebase), through the log step: the
//! preview is what applying gives, applying is recorded in the log and replayed, and nothing is
//! given twice.

use std::sync::Arc;

use plaudit_core::application::Mode;
use plaudit_core::ids::OrgId;
use plaudit_core::ruleset::Format;
use plaudit_sdk::{Effect, EffectKind, Record};
use plaudit_server::organisation::{Organisation, what_if};
use plaudit_store::Store;
use plaudit_tests::*;

fn rules(answer: i64, referral: i64) -> String {
    format!(
        r#"
[organisation]
id = "retro"
timezone = "Europe/Amsterdam"
seed = 7

[[currency]]
id = "xp"

[[rule]]
id = "answer"
match = {{ kind = ["answer"] }}
award = [{{ to = "actor", currency = "xp", amount = {answer} }}]

[[rule]]
id = "referral"
match = {{ kind = ["referral"] }}
award = [{{ to = "actor", currency = "xp", amount = {referral} }}]

[[badge]]
id = "forty"
metric = "xp"
threshold = 40

[[leaderboard]]
id = "xp"
metric = "xp"
"#
    )
}

/// ann: two answers and a referral; bob: three answers.
fn history() -> Vec<Record> {
    let at = |d: u32| format!("2026-03-{d:02}T10:00:00Z");
    vec![
        Record::Moment(m("a1", "ann", "answer", "forum", &at(2))),
        Record::Moment(m("a2", "ann", "answer", "forum", &at(3))),
        Record::Moment(m("r1", "ann", "referral", "email", &at(4))),
        Record::Moment(m("b1", "bob", "answer", "forum", &at(2))),
        Record::Moment(m("b2", "bob", "answer", "forum", &at(3))),
        Record::Moment(m("b3", "bob", "answer", "forum", &at(4))),
    ]
}

struct Org {
    /// Holds the folder until the test ends.
    _dir: ScratchStore,
    store: Arc<dyn Store>,
    id: OrgId,
}

impl Org {
    /// An organisation created with v1 (answer 10, referral 30) that scored the history, then
    /// published v2 (answer 15, referral 20): nothing of the history changed yet.
    fn new(name: &str) -> (Org, Organisation) {
        let dir = ScratchStore::new(&format!("plaudit-retro-{name}"));
        let store = dir.store();
        let id = OrgId::parse("retro").expect("org id");
        let mut d =
            Organisation::create(Arc::clone(&store), id.clone(), &rules(10, 30), Format::Toml).expect("created");
        d.start_feed(10_000);
        d.ingest(history()).expect("ingest");
        assert_eq!(d.publish_rules(&rules(15, 20), Format::Toml).expect("v2").version, 2);
        (Org { _dir: dir, store, id }, d)
    }

    fn reopen(&self) -> Organisation {
        Organisation::open(Arc::clone(&self.store), self.id.clone()).expect("replays").0
    }
}

fn xp(d: &mut Organisation, who: &str) -> i64 {
    balance(d.world_mut(), who, "xp")
}

fn has_badge(d: &mut Organisation, who: &str, badge: &str) -> bool {
    d.world_mut().profile(who).is_some_and(|p| p.badges.iter().any(|b| b.badge == badge))
}

/// Every effect in the organisation's feed after `after`.
fn fed(d: &Organisation, after: u64) -> Vec<Effect> {
    d.feed().expect("a feed").after(Some(after), 10_000).expect("kept").iter().map(|i| i.effect.clone()).collect()
}

fn summary(d: &mut Organisation) -> String {
    serde_json::to_string(&d.world_mut().summary(100)).expect("summary")
}

#[test]
fn additive_awards_only_what_the_rules_in_force_would_have_given_and_was_not() {
    let (org, mut d) = Org::new("additive");
    assert_eq!((xp(&mut d, "ann"), xp(&mut d, "bob")), (50, 30), "v1 as it happened");
    assert!(has_badge(&mut d, "ann", "forty") && !has_badge(&mut d, "bob", "forty"));
    let before = d.feed().expect("feed").latest();

    let preview =
        what_if(Arc::clone(&org.store), &org.id, &rules(15, 20), Format::Toml, Mode::Additive).expect("what-if");
    let applied = d.apply_to_history(Mode::Additive).expect("applies");
    assert_eq!((applied.version, applied.mode, applied.after.0), (2, Mode::Additive, 6));

    // ann: +5 per answer, the referral's 10 less not taken back; bob: +5 per answer, and the
    // badge v2 gives him at his third answer (45 xp).
    assert_eq!((xp(&mut d, "ann"), xp(&mut d, "bob")), (60, 45));
    assert!(has_badge(&mut d, "bob", "forty"));
    let effects = fed(&d, before);
    assert_eq!(effects.len(), applied.effects);
    let grants: Vec<(&str, &str, i64)> = effects
        .iter()
        .filter_map(|e| match e.kind {
            EffectKind::PointsAwarded { amount, .. } => Some((e.moment.as_str(), e.stakeholder.as_str(), amount)),
            _ => None,
        })
        .collect();
    assert_eq!(grants, vec![("a1", "ann", 5), ("a2", "ann", 5), ("b1", "bob", 5), ("b2", "bob", 5), ("b3", "bob", 5)]);
    let badge = effects.iter().find(|e| matches!(e.kind, EffectKind::BadgeEarned { .. })).expect("a badge");
    assert_eq!((badge.moment.as_str(), badge.stakeholder.as_str()), ("b3", "bob"), "at the moment it would have been");
    assert!(effects.iter().all(|e| e.source == "history:v2:additive"), "each names the application");
    assert!(!effects.iter().any(|e| matches!(e.kind, EffectKind::PointsRevoked { .. })), "nothing taken back");
    let q = plaudit_core::reads::PageQuery { limit: 10, ..Default::default() };
    let board = d.world_mut().leaderboard("xp", &q).expect("board");
    assert_eq!(board.rows.stakeholders()[0].stakeholder, "ann", "the all-time board follows the balances");
    assert_eq!(board.rows.stakeholders()[0].value, 60);

    // The preview said exactly this.
    assert_eq!(preview.totals["xp"], (80, 105));
    assert_eq!((preview.badges_gained, preview.badges_lost), (1, 0));

    // Nothing twice: a second application finds nothing more to give.
    let again = d.apply_to_history(Mode::Additive).expect("applies");
    assert_eq!(again.effects, 0);
    assert_eq!((xp(&mut d, "ann"), xp(&mut d, "bob")), (60, 45));

    // A retraction reverses what the moment earned, the grant included: 10 + 5.
    d.ingest(vec![retract("a1")]).expect("retracts");
    assert_eq!(xp(&mut d, "ann"), 45);

    // The log holds the applications where they happened: a replay gives the same state.
    let live = summary(&mut d);
    drop(d);
    assert!(summary(&mut org.reopen()) == live, "replayed, the same state");
}

#[test]
fn a_rebase_ends_exactly_as_a_replay_under_the_rules_in_force_would() {
    let (org, mut d) = Org::new("rebase");
    let before = d.feed().expect("feed").latest();
    let preview =
        what_if(Arc::clone(&org.store), &org.id, &rules(15, 20), Format::Toml, Mode::Rebase).expect("what-if");
    let applied = d.apply_to_history(Mode::Rebase).expect("applies");
    assert_eq!(d.since_snapshot(), u64::MAX, "a snapshot is due: a replay would redo the rebase");

    // What v2 from the start gives: ann 15 + 15 + 20, bob 45; both have the badge.
    let mut fresh = world_from(&rules(15, 20));
    run(&mut fresh, history());
    assert!(summary(&mut d) == serde_json::to_string(&fresh.summary(100)).expect("summary"), "state, bit for bit");
    assert_eq!((xp(&mut d, "ann"), xp(&mut d, "bob")), (50, 45));
    assert_eq!(preview.totals["xp"], (80, 95), "the preview is what applying gives");

    // The compensating entries, per moment: ann's answers +5 each, her referral -10; bob's +5s.
    let effects = fed(&d, before);
    assert_eq!(effects.len(), applied.effects);
    assert_eq!(points(&effects, "ann", "xp"), 0);
    assert_eq!(points(&effects, "bob", "xp"), 15);
    let revoked = effects.iter().find(|e| matches!(e.kind, EffectKind::PointsRevoked { .. })).expect("revoked");
    assert_eq!((revoked.moment.as_str(), revoked.stakeholder.as_str()), ("r1", "ann"));
    assert_eq!(badges(&effects, "bob"), vec!["forty#1".to_string()]);
    assert!(badges(&effects, "ann").is_empty(), "ann had it already");

    // Going on from the rebased state, and a restart replays the rebase at the same record.
    d.ingest(vec![Record::Moment(m("a3", "ann", "answer", "forum", "2026-03-05T10:00:00Z"))]).expect("ingest");
    assert_eq!(xp(&mut d, "ann"), 65);
    d.ingest(vec![retract("r1")]).expect("retracts");
    assert_eq!(xp(&mut d, "ann"), 45, "the referral now reverses what v2 gave it");
    let live = summary(&mut d);
    d.snapshot().expect("snapshot");
    drop(d);
    assert!(summary(&mut org.reopen()) == live, "from the snapshot");
    let (mut again, _) = Organisation::open_from_start(Arc::clone(&org.store), org.id.clone()).expect("replays");
    assert!(summary(&mut again) == live, "from the start");
}

#[test]
fn a_rebase_replayed_beside_the_organisation_is_caught_up_with_what_came_meanwhile() {
    use plaudit_server::organisation::rebuild;
    let (org, mut d) = Org::new("beside");
    let plan = d.rebuild_plan();
    let beside = std::thread::spawn(move || rebuild(plan).expect("replays under v2"));
    // Meanwhile the organisation goes on: a moment, a retraction.
    let later = vec![Record::Moment(m("a3", "ann", "answer", "forum", "2026-03-05T10:00:00Z")), retract("b1")];
    d.ingest(later.clone()).expect("ingest");
    let applied = d.apply_rebuilt_history(beside.join().expect("the thread"), Mode::Rebase).expect("applies");
    assert_eq!(applied.after.0, 8, "applied after every record, those that came meanwhile too");

    let mut fresh = world_from(&rules(15, 20));
    run(&mut fresh, history().into_iter().chain(later).collect());
    assert!(summary(&mut d) == serde_json::to_string(&fresh.summary(100)).expect("summary"), "state, bit for bit");
    let live = summary(&mut d);
    drop(d);
    let (mut again, _) = Organisation::open_from_start(Arc::clone(&org.store), org.id.clone()).expect("replays");
    assert!(summary(&mut again) == live, "a replay of the log makes the same application");
}

#[test]
fn a_replay_planned_before_another_rule_set_came_into_force_is_made_again_under_it() {
    use plaudit_server::organisation::rebuild;
    let (_org, mut d) = Org::new("republished");
    let rebuilt = rebuild(d.rebuild_plan()).expect("replays under v2");
    assert_eq!(d.publish_rules(&rules(12, 20), Format::Toml).expect("v3").version, 3);
    let applied = d.apply_rebuilt_history(rebuilt, Mode::Rebase).expect("applies");
    assert_eq!(applied.version, 3);
    let mut fresh = world_from(&rules(12, 20));
    run(&mut fresh, history());
    assert!(summary(&mut d) == serde_json::to_string(&fresh.summary(100)).expect("summary"), "v3's, not v2's");
}

#[test]
fn on_the_sample_organisation_both_modes_replay_to_the_same_state_and_additive_takes_nothing() {
    use plaudit_core::workload::{Spec, Workload};
    let v1 = std::fs::read_to_string(repo_root().join("rules/acme.toml")).expect("rules");
    let v2 = v1.replace("amount = 20 }]", "amount = 45 }]").replace("amount = 10 }", "amount = 4 }");
    assert_ne!(v1, v2);
    let records: Vec<Record> =
        Workload::new(Spec { stakeholders: 120, moments: 1500, days: 40, ..Spec::default() }).records().collect();
    for mode in [Mode::Additive, Mode::Rebase] {
        let dir = ScratchStore::new(&format!("plaudit-retro-acme-{mode}"));
        let store = dir.store();
        let acme = OrgId::parse("acme").expect("org id");
        let mut d = Organisation::create(Arc::clone(&store), acme.clone(), &v1, Format::Toml).expect("created");
        for chunk in records.chunks(200) {
            d.ingest(chunk.to_vec()).expect("ingest");
        }
        d.publish_rules(&v2, Format::Toml).expect("v2");
        let ids: Vec<String> = d.world().stakeholder_ids();
        let wallets = |d: &mut Organisation| -> Vec<_> {
            ids.iter().map(|id| d.world_mut().profile(id).map(|p| p.currencies).unwrap_or_default()).collect()
        };
        let before = wallets(&mut d);
        let preview = what_if(Arc::clone(&store), &acme, &v2, Format::Toml, mode).expect("what-if");
        assert!(preview.changed > 10, "{mode}: v2 changes the history for many: {}", preview.changed);
        d.apply_to_history(mode).expect("applies");
        let after = wallets(&mut d);
        let totals =
            |w: &[std::collections::BTreeMap<String, i64>], c: &str| w.iter().filter_map(|b| b.get(c)).sum::<i64>();
        for (c, (_, candidate)) in &preview.totals {
            assert_eq!(totals(&after, c), *candidate, "{mode}: the preview's total of {c} is what applying gives");
        }
        if mode == Mode::Additive {
            for (b, a) in before.iter().zip(&after) {
                assert!(b.iter().all(|(c, v)| a.get(c).copied().unwrap_or(0) >= *v), "{mode} took something back");
            }
        } else {
            let mut fresh = world_from(&v2);
            fresh.ingest(records.clone());
            assert!(summary(&mut d) == serde_json::to_string(&fresh.summary(100)).expect("summary"));
        }
        let live = summary(&mut d);
        drop(d);
        let (mut again, _) = Organisation::open(Arc::clone(&store), acme.clone()).expect("replays");
        assert!(summary(&mut again) == live, "{mode}: replayed, the same state");
        drop((again, store));
    }
}
