//! WASM rule plugins end to end: the example plugins (built from source by
//! `scripts/build-plugins.sh`) scoring through the real world, hostile modules contained while
//! another organisation keeps scoring, hot reload, determinism, and each example's fuel per
//! moment pinned.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use plaudit_core::plugins::{DISABLE_AFTER, Limits, LoadError, Loaded, PluginError, PluginHost, PluginState};
use plaudit_core::reads::PageQuery;
use plaudit_sdk::{Effect, EffectKind, Moment, Record};
use plaudit_tests::*;

/// One engine for every test, as in the server: plugins of all organisations share it.
fn host() -> &'static PluginHost {
    static HOST: OnceLock<PluginHost> = OnceLock::new();
    HOST.get_or_init(|| PluginHost::new(&Limits::default()).expect("the plugin engine starts"))
}

fn load(name: &str, wasm: &[u8]) -> Arc<Loaded> {
    Arc::new(
        plaudit_core::plugins::load(host(), name, wasm, Limits::default()).unwrap_or_else(|e| panic!("{name}: {e}")),
    )
}

/// An example module, compiled once per test binary (compiling is the slow part in a debug
/// build); the name it is installed under is the world's business.
fn example(crate_name: &str, _installed_as: &str) -> Arc<Loaded> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<Loaded>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
    cache.entry(crate_name.to_string()).or_insert_with(|| load(crate_name, &example_plugin(crate_name))).clone()
}

const RULES: &str = r#"
[[rule]]
id = "meetup"
match = { kind = ["meetup"] }
award = [{ to = "actor", currency = "xp", amount = 10 }]

[[rule]]
id = "share"
match = { kind = ["share"] }
award = [{ to = "actor", currency = "coins", amount = 3 }]

[levels]
currency = "xp"
steps = [{ name = "Newcomer", at = 0 }, { name = "Regular", at = 30 }]

[[badge]]
id = "bridge-builder"
name = "Bridge builder"

[[leaderboard]]
id = "xp"
name = "Experience"
metric = "xp"
"#;

/// `second` seconds after 2026-03-02T08:00:00Z (under a day).
fn at(second: u32) -> String {
    format!("2026-03-02T{:02}:{:02}:{:02}Z", 8 + second / 3600, second / 60 % 60, second % 60)
}

fn meetup(id: &str, who: &str, with: &str, second: u32) -> Moment {
    m(id, who, "meetup", "event", &at(second)).with(with)
}

fn from<'a>(effects: &'a [Effect], source: &str) -> Vec<&'a Effect> {
    effects.iter().filter(|e| e.source == source).collect()
}

fn teams() -> Vec<Record> {
    vec![
        profile("ann", "employee", "sales"),
        profile("bob", "employee", "ops"),
        profile("cy", "employee", "ops"),
        profile("dee", "employee", "sales"),
        profile("eve", "employee", "legal"),
    ]
}

#[test]
fn bridge_builder_awards_once_per_new_team_through_levels_and_leaderboards() {
    let mut w = world(RULES);
    w.install_plugin("bridge-builder", example("bridge_builder", "bridge-builder"));
    run(&mut w, teams());
    let effects = score(
        &mut w,
        vec![
            meetup("m1", "ann", "bob", 0),  // sales -> ops: new
            meetup("m2", "ann", "cy", 10),  // ops again: nothing
            meetup("m3", "ann", "dee", 20), // own team: nothing
            meetup("m4", "ann", "eve", 30), // legal: new
        ],
    );
    let bonus = from(&effects, "bridge-builder");
    let awarded: Vec<&str> = bonus
        .iter()
        .filter(|e| matches!(e.kind, EffectKind::PointsAwarded { .. }))
        .map(|e| e.moment.as_str())
        .collect();
    assert_eq!(awarded, ["m1", "m4"], "{bonus:#?}");
    assert!(bonus.iter().any(|e| matches!(&e.kind, EffectKind::Custom { name, .. } if name == "bridge_built")));
    // 4 meetups x 10 + 2 bonuses x 25: the plugin's points count for levels and leaderboards.
    assert_eq!(balance(&mut w, "ann", "xp"), 40 + 50);
    assert!(
        effects.iter().any(|e| e.stakeholder == "ann"
            && matches!(&e.kind, EffectKind::LevelReached { level, .. } if level == "Regular"))
    );
    let board = w.leaderboard("xp", &PageQuery { limit: 10, ..Default::default() }).expect("board");
    assert_eq!((board.rows.stakeholders()[0].stakeholder.as_str(), board.rows.stakeholders()[0].value), ("ann", 90));
    let status = w.plugin("bridge-builder").expect("installed");
    assert_eq!((status.calls, status.failed_calls, status.moments), (1, 0, 4));
    assert_eq!(status.stakeholders_with_state, 1);
}

#[test]
fn story_echo_gives_diminishing_returns_per_day() {
    let mut w = world(RULES);
    w.install_plugin("story-echo", example("story_echo", "story-echo"));
    let shares: Vec<Moment> = (0..6).map(|i| m(&format!("s{i}"), "ann", "share", "social", &at(i * 60))).collect();
    let effects = score(&mut w, shares);
    let echo: Vec<i64> = from(&effects, "story-echo")
        .iter()
        .filter_map(|e| match e.kind {
            EffectKind::PointsAwarded { amount, .. } => Some(amount),
            _ => None,
        })
        .collect();
    assert_eq!(echo.len(), 6, "every share earns something: {echo:?}");
    assert!(echo.windows(2).all(|w| w[0] >= w[1]), "returns diminish: {echo:?}");
    assert!(echo[0] > echo[5], "{echo:?}");
    // The next day starts afresh.
    let next_day = score(&mut w, vec![m("s-next", "ann", "share", "social", "2026-03-03T09:00:00Z")]);
    let first_again: i64 = from(&next_day, "story-echo")
        .iter()
        .filter_map(|e| match e.kind {
            EffectKind::PointsAwarded { amount, .. } => Some(amount),
            _ => None,
        })
        .sum();
    assert_eq!(first_again, echo[0]);
}

#[test]
fn burst_guard_withholds_native_points_of_a_burst_and_says_why() {
    let mut w = world(RULES);
    w.install_plugin("burst-guard", example("burst_guard", "burst-guard"));
    // Eight meetups two seconds apart: a burst from the sixth on.
    let burst: Vec<Moment> = (0..8).map(|i| meetup(&format!("b{i}"), "ann", "bob", i * 2)).collect();
    let effects = score(&mut w, burst);
    let withheld: Vec<&Effect> =
        effects.iter().filter(|e| matches!(e.kind, EffectKind::PointsWithheld { .. })).collect();
    assert!(!withheld.is_empty(), "{effects:#?}");
    for e in &withheld {
        let EffectKind::PointsWithheld { reason, .. } = &e.kind else { unreachable!() };
        assert!(reason.contains("burst-guard"), "{reason}");
        assert_eq!(e.source, "meetup", "the native rule's award is what is held back");
    }
    assert_eq!(moments_of(&effects, "points_withheld").first().map(String::as_str), Some("b5"));
    let scored = points(&effects, "ann", "xp");
    assert_eq!(scored, 10 * (8 - withheld.len() as i64));
    assert_eq!(balance(&mut w, "ann", "xp"), scored);
    // Spread out again, meetups score.
    let later = score(&mut w, vec![meetup("calm", "ann", "bob", 600)]);
    assert_eq!(points(&later, "ann", "xp"), 10);
}

/// Effects and final state of `records` scored in batches of `size` with every example plugin.
fn scored_in_batches(records: &[Record], size: usize) -> (Vec<Effect>, Vec<(String, i64)>) {
    let mut w = world(RULES);
    w.install_plugin("bridge-builder", example("bridge_builder", "bridge-builder"));
    w.install_plugin("story-echo", example("story_echo", "story-echo"));
    w.install_plugin("burst-guard", example("burst_guard", "burst-guard"));
    let mut effects = Vec::new();
    for chunk in records.chunks(size) {
        effects.extend(run(&mut w, chunk.to_vec()));
    }
    let balances =
        ["ann", "bob", "cy", "dee", "eve"].iter().map(|who| (who.to_string(), balance(&mut w, who, "xp"))).collect();
    (effects, balances)
}

#[test]
fn plugin_results_do_not_depend_on_batch_boundaries() {
    let mut records = teams();
    let people = ["ann", "bob", "cy", "dee", "eve"];
    for i in 0..120u32 {
        let who = people[(i * 7 % 5) as usize];
        let with = people[((i * 3 + 1) % 5) as usize];
        let moment = if i % 3 == 0 {
            m(&format!("x{i}"), who, "share", "social", &at(i * 4))
        } else {
            meetup(&format!("x{i}"), who, if with == who { "bob" } else { with }, i * 4)
        };
        records.push(Record::Moment(moment));
    }
    let whole = scored_in_batches(&records, records.len());
    assert!(whole.0.iter().any(|e| e.source == "bridge-builder"));
    assert!(whole.0.iter().any(|e| e.source == "story-echo"));
    for size in [1, 7, 50] {
        assert_eq!(scored_in_batches(&records, size), whole, "batches of {size}");
    }
}

#[test]
fn hot_reload_takes_effect_between_batches_without_losing_or_repeating_a_moment() {
    let mut w = world(RULES);
    w.install_plugin("bonus", example("story_echo", "bonus"));
    run(&mut w, teams());
    let before = score(&mut w, vec![m("s1", "ann", "share", "social", &at(0))]);
    assert_eq!(from(&before, "bonus").len(), 1);
    // Replace the module under the same name: the next batch runs the new one, once.
    w.install_plugin("bonus", example("bridge_builder", "bonus"));
    let after = score(&mut w, vec![meetup("m1", "ann", "bob", 10), m("s2", "ann", "share", "social", &at(20))]);
    let by_moment: Vec<&str> = from(&after, "bonus")
        .iter()
        .filter(|e| matches!(e.kind, EffectKind::PointsAwarded { .. }))
        .map(|e| e.moment.as_str())
        .collect();
    assert_eq!(by_moment, ["m1"], "the bridge builder now, and only for the meetup");
    let status = w.plugin("bonus").expect("installed");
    assert_eq!((status.installs, status.calls, status.moments), (2, 1, 2));
    // Removing it stops it; the moments still score natively.
    assert!(w.remove_plugin("bonus"));
    let removed = score(&mut w, vec![meetup("m2", "ann", "eve", 30)]);
    assert!(from(&removed, "bonus").is_empty());
    assert_eq!(points(&removed, "ann", "xp"), 10);
    assert_eq!(w.plugin("bonus").map(|s| s.state), Some(PluginState::Removed));
}

/// The runtime-hostile fixtures and what their failure report must say.
const HOSTILE: [(&str, &str); 6] = [
    ("infinite-loop", "fuel"),
    ("memory-bomb", "memory limit"),
    ("deep-recursion", "stack"),
    ("huge-output", "output is 60000 bytes"),
    ("trap", "unreachable"),
    ("garbage-output", "does not decode"),
];

/// Org B's effects for `batches` of meetups, with no plugin anywhere.
fn reference_effects(batches: &[Vec<Moment>]) -> Vec<Effect> {
    let mut w = world(RULES);
    batches.iter().flat_map(|b| score(&mut w, b.clone())).collect()
}

#[test]
fn every_hostile_plugin_is_contained_while_another_organisation_keeps_scoring() {
    let batches: Vec<Vec<Moment>> = (0..6u32)
        .map(|b| (0..20u32).map(|i| meetup(&format!("b{b}-{i}"), "ann", "bob", b * 100 + i)).collect())
        .collect();
    let expected_b = reference_effects(&batches);
    for (fixture, says) in HOSTILE {
        let plugin = load(fixture, &hostile_fixture(fixture));
        // Organisation B scores on another thread the whole time, with a well-behaved plugin.
        let b_batches = batches.clone();
        let other = std::thread::spawn(move || {
            let mut b = world(RULES);
            b.install_plugin("story-echo", example("story_echo", "story-echo"));
            let effects: Vec<Effect> = b_batches.into_iter().flat_map(|batch| score(&mut b, batch)).collect();
            (effects, b.plugin("story-echo").expect("installed"))
        });
        let mut a = world(RULES);
        a.install_plugin(fixture, plugin);
        for (i, batch) in batches.iter().enumerate() {
            let outcome = a.ingest(batch.iter().cloned().map(Record::Moment));
            assert_eq!(outcome.accepted, batch.len(), "{fixture}: every moment is accepted");
            let effects = a.drain_effects();
            assert_eq!(points(&effects, "ann", "xp"), 200, "{fixture}: batch {i} still scored natively");
            assert!(effects.iter().all(|e| e.source != fixture), "{fixture}: nothing from the plugin");
        }
        let status = a.plugin(fixture).expect("installed");
        assert_eq!(status.state, PluginState::Disabled, "{fixture}");
        assert_eq!(status.consecutive_failures, DISABLE_AFTER, "{fixture}");
        // 20 moments, then halves down to single moments (0..10, 0..5, 0..2, 0, 1, 2..5, 2): the
        // third single moment to fail disables it, in the first batch; later batches make no call.
        assert_eq!(status.failed_calls, 8, "{fixture}");
        assert_eq!(status.calls, 8, "{fixture}");
        let failure = status.last_failure.expect("a failure report");
        assert!(failure.reason.contains(says), "{fixture}: {failure:?}");
        assert_eq!((failure.moments, failure.first_seq), (1, 3), "{fixture}");
        if fixture == "trap" {
            assert_eq!(failure.logs, "about to trap", "what it logged before trapping is kept");
        }
        // Replacing the plugin re-enables the slot.
        a.install_plugin(fixture, example("story_echo", fixture));
        assert_eq!(a.plugin(fixture).map(|s| s.state), Some(PluginState::Active));

        let (b_effects, b_status) = other.join().expect("organisation B never panics");
        let b_native: Vec<&Effect> = b_effects.iter().filter(|e| e.source != "story-echo").collect();
        assert_eq!(b_native, expected_b.iter().collect::<Vec<_>>(), "{fixture}: organisation B unaffected");
        assert_eq!(b_status.failed_calls, 0);
    }
}

#[test]
fn modules_that_break_the_abi_are_refused_at_install_with_a_reason() {
    let refused = |name: &str| {
        plaudit_core::plugins::load(host(), name, &hostile_fixture(name), Limits::default()).expect_err(name)
    };
    assert_eq!(
        refused("unknown-import"),
        LoadError::Module(PluginError::UnknownImport { module: "env".into(), name: "clock".into() })
    );
    assert!(
        matches!(refused("missing-export"), LoadError::Module(PluginError::MissingExport { ref name, .. }) if name == "score")
    );
    assert!(matches!(refused("malformed"), LoadError::Module(PluginError::Invalid { .. })));
    let big = example_plugin("bridge_builder");
    let small = Limits { module_bytes: 1024, ..Limits::default() };
    assert!(matches!(
        plaudit_core::plugins::load(host(), "big", &big, small),
        Err(LoadError::Module(PluginError::ModuleTooLarge { .. }))
    ));
    let err = plaudit_core::plugins::load(host(), "../etc", &big, Limits::default()).expect_err("bad name");
    assert!(matches!(err, LoadError::Name(_)), "{err}");
}

/// Fuel per moment of each example over a fixed workload, pinned for the toolchain CI builds the
/// plugins with (Debian's rustc 1.63, `opt-level = "s"`): an SDK, ABI or plugin change that
/// makes a plugin cheaper or dearer shows here without any timing. Other toolchains compile to
/// other code, so their numbers are only printed.
#[test]
fn example_plugins_fuel_per_moment_is_pinned() {
    let toolchain = std::fs::read_to_string(repo_root().join("plugins/dist/TOOLCHAIN")).unwrap_or_default();
    let pinned: [(&str, u64); 3] = [("bridge_builder", 2851), ("story_echo", 2742), ("burst_guard", 3713)];
    let mut records = teams();
    for i in 0..500u32 {
        let who = ["ann", "bob", "cy", "dee", "eve"][(i % 5) as usize];
        let with = ["bob", "cy", "dee", "eve", "ann"][(i % 5) as usize];
        let moment = if i % 2 == 0 {
            meetup(&format!("f{i}"), who, with, i * 30)
        } else {
            m(&format!("f{i}"), who, "share", "social", &at(i * 30))
        };
        records.push(Record::Moment(moment));
    }
    let (mut report, mut off) = (Vec::new(), Vec::new());
    for (crate_name, pin) in pinned {
        let mut w = world(RULES);
        w.install_plugin(crate_name, example(crate_name, crate_name));
        run(&mut w, records.clone());
        let status = w.plugin(crate_name).expect("installed");
        assert_eq!(status.moments, 500);
        let per_moment = status.fuel_used / status.moments;
        report.push(format!("{crate_name}: {per_moment} fuel/moment"));
        if toolchain.trim().starts_with("rustc 1.63") && !(pin * 97 / 100..=pin * 103 / 100).contains(&per_moment) {
            off.push(format!("{crate_name}: {per_moment} fuel a moment, pinned at {pin} (+/-3%)"));
        }
    }
    eprintln!("fuel per moment ({}): {}", toolchain.trim(), report.join(", "));
    assert!(off.is_empty(), "fuel per moment moved; if on purpose, update the pins:\n{}", off.join("\n"));
}

#[test]
fn the_rule_set_sets_the_organisations_plugin_limits_within_safe_ranges() {
    let w = world("[plugins]\nfuel = 50000\nmemory_mb = 2\nwall_clock_ms = 500\n");
    let limits = &w.program().plugin_limits;
    assert_eq!((limits.fuel, limits.memory_bytes), (50_000, 2 << 20));
    assert_eq!(limits.wall_clock, std::time::Duration::from_millis(500));
    assert_eq!(limits.output_bytes, Limits::default().output_bytes, "unset fields keep the defaults");
    let err = rules_error("[plugins]\nfuel = 5\nmemory_mb = 4096\n");
    assert!(err.contains("plugins.fuel: must be 10000 to 1000000000, got 5"), "{err}");
    assert!(err.contains("plugins.memory_mb: must be 1 to 256, got 4096"), "{err}");

    // A tight fuel budget fails the call (the moments still score natively) and says so.
    let mut tight = world(&format!("[plugins]\nfuel = 20000\n{RULES}"));
    let limits = tight.program().plugin_limits.clone();
    let loaded =
        plaudit_core::plugins::load(host(), "story-echo", &example_plugin("story_echo"), limits).expect("loads");
    tight.install_plugin("story-echo", Arc::new(loaded));
    let moments: Vec<Moment> = (0..50).map(|i| m(&format!("s{i}"), "ann", "share", "social", &at(i))).collect();
    let effects = score(&mut tight, moments);
    assert_eq!(points(&effects, "ann", "coins"), 150);
    let failure = tight.plugin("story-echo").and_then(|s| s.last_failure).expect("a failure");
    assert!(failure.reason.contains("ran out of fuel (20000 units)"), "{failure:?}");
}

#[test]
fn a_call_too_big_for_the_output_limit_is_split_and_no_moment_loses_its_effects() {
    // 1 kB of output holds a few dozen awards: 200 shares must be split into smaller calls.
    let text = format!("[plugins]\noutput_kb = 1\n{RULES}");
    let shares: Vec<Record> = (0..200)
        .map(|i| Record::Moment(m(&format!("s{i}"), &format!("p{}", i % 40), "share", "social", &at(i))))
        .collect();
    let mut split = world(&text);
    let limits = split.program().plugin_limits.clone();
    let loaded =
        plaudit_core::plugins::load(host(), "story-echo", &example_plugin("story_echo"), limits).expect("loads");
    split.install_plugin("story-echo", Arc::new(loaded));
    let effects = run(&mut split, shares.clone());
    let status = split.plugin("story-echo").expect("installed");
    assert_eq!(status.state, PluginState::Active, "{status:?}");
    assert!(status.failed_calls > 0, "the first call was over the limit: {status:?}");
    assert_eq!(status.moments, 200, "every moment was handled once in the end");
    // The same as one moment at a time, where every call fits.
    let mut single = world(&text);
    single.install_plugin("story-echo", example("story_echo", "story-echo"));
    let one_by_one: Vec<Effect> = shares.chunks(1).flat_map(|c| run(&mut single, c.to_vec())).collect();
    assert_eq!(effects, one_by_one);
}
