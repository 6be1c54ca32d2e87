//! No number a moment can reach overflows (see `plaudit_core::bounds`): values, awards of
//! rules and plugins, campaign multipliers, balances, windowed leaderboards. Each case is one
//! an integrator or a hostile tenant can send; in a release build an `i64` past its range
//! wraps silently, so these run the real scoring path and read back every sum.

use std::sync::Arc;

use plaudit_core::bounds::{MAX_AWARD, MAX_BALANCE};
use plaudit_core::plugins::{Limits, PluginHost};
use plaudit_core::reads::PageQuery;
use plaudit_sdk::{EffectKind, Record};
use plaudit_tests::*;

const RULES: &str = r#"
[[rule]]
id = "sale"
match = { kind = ["sale"] }
award = [{ to = "actor", currency = "xp", value_factor = 1000000.0 }]

[[rule]]
id = "boosted"
match = { kind = ["boost"] }
award = [{ to = "actor", currency = "xp", amount = 1000000000 }]

[[campaign]]
id = "spring"
from = "2026-01-01T00:00:00Z"
until = "2027-01-01T00:00:00Z"
multiplier = 100.0
rules = ["boosted"]

[[campaign]]
id = "also-spring"
from = "2026-01-01T00:00:00Z"
until = "2027-01-01T00:00:00Z"
multiplier = 100.0
rules = ["boosted"]

[[rule]]
id = "penalty"
match = { kind = ["spam"] }
award = [{ to = "actor", currency = "xp", value_factor = -1000000.0 }]

[[leaderboard]]
id = "weekly"
name = "This week"
metric = "xp"
window = "week"

[[leaderboard]]
id = "all"
name = "All time"
metric = "xp"
"#;

const AT: &str = "2026-03-02T10:00:00Z";

fn board_value(w: &mut plaudit_core::OrgWorld, board: &str, who: &str) -> Option<i64> {
    let q = PageQuery { team: None, around: None, offset: 0, limit: 10 };
    let page = w.leaderboard(board, &q).expect("a board");
    page.rows.stakeholders().iter().find(|r| r.stakeholder == who).map(|r| r.value)
}

fn withheld(effects: &[plaudit_sdk::Effect]) -> Vec<(i64, String)> {
    effects
        .iter()
        .filter_map(|e| match &e.kind {
            EffectKind::PointsWithheld { amount, reason, .. } => Some((*amount, reason.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_value_beyond_its_bound_is_refused_naming_value_and_one_within_it_awards_at_most_the_award_bound() {
    let mut w = world(RULES);
    for huge in [1e300, -1e300, 1.0e12 + 1e6] {
        let outcome = w.ingest(vec![Record::Moment(m("big", "ann", "sale", "shop", AT).value(huge))]);
        assert_eq!(outcome.rejected.len(), 1, "{huge}");
        assert_eq!(outcome.rejected[0].field, "value", "{huge}");
    }
    // 10^12 x 10^6 is 10^18 points: the award gives 10^9 and says the rest was held back.
    let effects = score(&mut w, vec![m("s1", "ann", "sale", "shop", AT).value(1e12)]);
    assert_eq!(points(&effects, "ann", "xp"), MAX_AWARD);
    let held = withheld(&effects);
    assert_eq!(held.len(), 1, "{effects:?}");
    assert_eq!(held[0].0, 1_000_000_000_000_000_000 - MAX_AWARD);
    assert!(held[0].1.contains("bound"), "{}", held[0].1);
    // Two campaigns of x100 on an award of 10^9: the product is cut to the bound too.
    let effects = score(&mut w, vec![m("b1", "ann", "boost", "shop", AT)]);
    assert_eq!(points(&effects, "ann", "xp"), MAX_AWARD);
    assert_eq!(balance(&mut w, "ann", "xp"), 2 * MAX_AWARD);
    assert_eq!(board_value(&mut w, "weekly", "ann"), Some(2 * MAX_AWARD));
    assert_eq!(board_value(&mut w, "all", "ann"), Some(2 * MAX_AWARD));
    // A penalty of the same size the other way.
    let effects = score(&mut w, vec![m("p1", "ann", "spam", "shop", AT).value(1e12)]);
    assert_eq!(points(&effects, "ann", "xp"), -MAX_AWARD);
    assert_eq!(balance(&mut w, "ann", "xp"), MAX_AWARD);
    assert_eq!(board_value(&mut w, "weekly", "ann"), Some(MAX_AWARD));
}

#[test]
fn retracting_a_bounded_award_takes_back_exactly_what_was_given() {
    let mut w = world(RULES);
    score(&mut w, vec![m("s1", "ann", "sale", "shop", AT).value(1e12)]);
    let effects = run(&mut w, vec![retract("s1")]);
    assert_eq!(points(&effects, "ann", "xp"), -MAX_AWARD);
    assert_eq!(balance(&mut w, "ann", "xp"), 0);
}

/// The balance bound needs 10^6 awards of the largest size to reach: far too many moments for
/// a test, so a moment's own award is raised to it through the value instead: a rule with a
/// factor of 10^6 on values up to 10^12 gives 10^9 a moment, and 10^6 such moments are what a
/// hostile tenant would send. Here the same arithmetic is checked where the bound bites, on
/// the function the effects pass calls (`bounds::credit`), and end to end below that no sum
/// wraps on the way there.
#[test]
fn many_awards_of_the_largest_size_never_wrap_a_balance_or_a_windowed_board() {
    let mut w = world(RULES);
    let moments: Vec<_> =
        (0..2000).map(|i| m(&format!("b{i}"), "ann", "boost", "shop", AT)).map(Record::Moment).collect();
    let outcome = w.ingest(moments);
    assert_eq!(outcome.accepted, 2000);
    let expected = 2000 * MAX_AWARD;
    assert!(expected < MAX_BALANCE);
    assert_eq!(balance(&mut w, "ann", "xp"), expected);
    assert_eq!(board_value(&mut w, "weekly", "ann"), Some(expected));
    assert_eq!(board_value(&mut w, "all", "ann"), Some(expected));
    assert_eq!(plaudit_core::bounds::credit(MAX_BALANCE - 5, MAX_AWARD), (5, MAX_BALANCE));
}

fn host() -> Arc<PluginHost> {
    PluginHost::shared(&Limits::default()).expect("the plugin engine starts")
}

#[test]
fn a_plugin_awarding_beyond_the_bound_fails_its_call_and_changes_no_balance_whatever_the_amount() {
    for amount in [i64::MIN, i64::MIN + 1, i64::MAX, MAX_AWARD + 1, -MAX_AWARD - 1] {
        let mut w = world(RULES);
        let wasm = fixed_output_plugin("greedy", &award_first("xp", amount), None);
        let loaded = plaudit_core::plugins::load(&host(), "greedy", &wasm, Limits::default()).expect("loads");
        w.install_plugin("greedy", Arc::new(loaded));
        let effects = score(&mut w, vec![m("s1", "ann", "sale", "shop", AT).value(1.0)]);
        assert_eq!(points(&effects, "ann", "xp"), 1_000_000, "{amount}: only the native award");
        let status = w.plugin("greedy").expect("installed");
        assert_eq!(status.failed_calls, 1, "{amount}");
        let reason = status.last_failure.expect("a failure").reason;
        assert!(reason.contains("beyond"), "{amount}: {reason}");
        run(&mut w, vec![retract("s1")]);
        assert_eq!(balance(&mut w, "ann", "xp"), 0, "{amount}: the retraction gives back exactly that");
    }
    // At the bound it is taken.
    let mut w = world(RULES);
    let loaded = plaudit_core::plugins::load(
        &host(),
        "generous",
        &fixed_output_plugin("generous", &award_first("xp", -MAX_AWARD), None),
        Limits::default(),
    )
    .expect("loads");
    w.install_plugin("generous", Arc::new(loaded));
    score(&mut w, vec![m("s1", "ann", "sale", "shop", AT).value(1.0)]);
    assert_eq!(balance(&mut w, "ann", "xp"), 1_000_000 - MAX_AWARD);
}
