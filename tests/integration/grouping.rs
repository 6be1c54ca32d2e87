//! A replay makes exactly the plugin calls the live scoring made, so that state = replay holds
//! for any module, also one whose output depends on how moments were grouped into calls (the
//! ABI allows it: a call is a run of moments), and a hostile one that spins on some calls.
//!
//! The log keeps each group commit as a segment; a replay scores segments as the arrivals they
//! were, so plugins are called with the same moments, and the calls the wall-clock backstop
//! stopped (every one of them, also those whose halves were retried) fail again from the log's
//! record instead of running to their fuel.

use std::sync::Arc;

use plaudit_core::ids::OrgId;
use plaudit_core::ruleset::Format;
use plaudit_sdk::Record;
use plaudit_server::organisation::Organisation;
use plaudit_store::Change;
use plaudit_tests::*;
use proptest::prelude::*;

fn rules(plugins: &str) -> String {
    format!(
        r#"{HEADER}
[[rule]]
id = "meetup"
match = {{ kind = ["meetup"] }}
award = [{{ to = "actor", currency = "xp", amount = 10 }}]

[[leaderboard]]
id = "xp"
name = "Experience"
metric = "xp"

[[leaderboard]]
id = "coins"
name = "Coins"
metric = "coins"

{plugins}
"#
    )
}

fn org() -> OrgId {
    OrgId::parse("test").expect("an organisation id")
}

fn moments(n: usize) -> Vec<Record> {
    let who = ["ann", "bob", "cy", "dee", "eve"];
    (0..n)
        .map(|i| {
            let at = format!("2026-03-02T{:02}:{:02}:00Z", 8 + i / 60 % 10, i % 60);
            Record::Moment(m(&format!("m{i}"), who[i % who.len()], "meetup", "event", &at))
        })
        .collect()
}

/// The state a reader can see: profiles (balances, badges...), boards, challenges, and each
/// plugin's status (calls, failures, state, fuel).
fn state(d: &mut Organisation) -> String {
    let summary = serde_json::to_string(&d.world_mut().summary(100)).expect("a summary");
    format!("{summary}\n{:?}", d.world().plugins())
}

/// `records` ingested live in batches of the given sizes (cycled), a snapshot taken after
/// batch `snapshot_after`; returns the live state.
fn live(d: &mut Organisation, records: &[Record], sizes: &[usize], snapshot_after: usize) -> String {
    let mut rest = records;
    let mut batch = 0;
    while !rest.is_empty() {
        let n = sizes[batch % sizes.len()].clamp(1, rest.len());
        let (now, later) = rest.split_at(n);
        let outcome = d.ingest(now.to_vec()).expect("ingests");
        assert!(outcome.rejected.is_empty(), "{:?}", outcome.rejected);
        rest = later;
        batch += 1;
        if batch == snapshot_after {
            d.snapshot().expect("a snapshot");
        }
    }
    state(d)
}

/// A plugin whose output depends on the calls: it awards 5 coins to the first moment of each.
fn first_of_each_call() -> Vec<u8> {
    fixed_output_plugin("first-of-call", &award_first("coins", 5), None)
}

/// A plugin that also runs out of fuel on every call longer than one moment (its input is
/// then over 40 bytes), so that calls fail, are retried in halves, and count towards
/// disabling it, all depending on the grouping.
fn costly_when_grouped() -> Vec<u8> {
    fixed_output_plugin("costly", &award_first("coins", 7), Some((40, 2_000_000)))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn replay_and_restore_equal_the_live_state_for_plugins_that_see_their_grouping(
        sizes in prop::collection::vec(1usize..40, 1..6),
        count in 20usize..160,
        snapshot_after in 1usize..6,
    ) {
        let dir = ScratchStore::new("plaudit-grouping-property");
        let store = dir.store();
        let text = rules("[plugins]\nfuel = 1000000\n");
        let mut d = Organisation::create(Arc::clone(&store), org(), &text, Format::Toml).expect("created");
        d.install_plugin("first-of-call", &first_of_each_call()).expect("installs");
        d.install_plugin("costly", &costly_when_grouped()).expect("installs");
        let records = moments(count);
        let live = live(&mut d, &records, &sizes, snapshot_after);
        drop(d);
        let (mut replayed, _) = Organisation::open_from_start(Arc::clone(&store), org()).expect("replays");
        prop_assert_eq!(&state(&mut replayed), &live, "a replay from the start");
        drop(replayed);
        let (mut restored, _) = Organisation::open(Arc::clone(&store), org()).expect("restores");
        prop_assert_eq!(&state(&mut restored), &live, "the snapshot and the log after it");
    }
}

#[test]
fn the_grouping_decides_what_such_a_plugin_gives_so_a_replay_must_keep_it() {
    // The same moments in batches of 1 and in one batch: 6 awards against 1, live.
    let coins = |size: usize| {
        let dir = ScratchStore::new(&format!("plaudit-grouping-sizes-{size}"));
        let mut d = Organisation::create(dir.store(), org(), &rules(""), Format::Toml).expect("created");
        d.install_plugin("first-of-call", &first_of_each_call()).expect("installs");
        for batch in moments(6).chunks(size) {
            d.ingest(batch.to_vec()).expect("ingests");
        }
        let total: i64 = ["ann", "bob", "cy", "dee", "eve"].iter().map(|w| balance(d.world_mut(), w, "coins")).sum();
        drop(d);
        let (mut replayed, _) = Organisation::open_from_start(dir.store(), org()).expect("replays");
        let again: i64 =
            ["ann", "bob", "cy", "dee", "eve"].iter().map(|w| balance(replayed.world_mut(), w, "coins")).sum();
        (total, again)
    };
    assert_eq!(coins(1), (30, 30));
    assert_eq!(coins(6), (5, 5));
}

/// A tenant may set a high fuel and a low wall clock, then install a plugin that spins on
/// calls of more than one moment: live, each such call hits the backstop and its halves are
/// retried down to single moments, which succeed. Every stopped call is recorded, so a replay
/// fails them again at once instead of running each to its fuel: it makes no call the live
/// scoring did not finish, and ends in the live state (calls, failures, fuel and awards).
#[test]
fn every_call_the_backstop_stopped_is_recorded_and_a_replay_never_runs_it() {
    let dir = ScratchStore::new("plaudit-grouping-backstop");
    let store = dir.store();
    let text = rules("[plugins]\nfuel = 1000000000\nwall_clock_ms = 10\n");
    let mut d = Organisation::create(Arc::clone(&store), org(), &text, Format::Toml).expect("created");
    // About 0.4 billion fuel a grouped call: far past 10 ms, within the fuel.
    let spinning = fixed_output_plugin("spinner", &award_first("coins", 3), Some((40, 80_000_000)));
    d.install_plugin("spinner", &spinning).expect("installs");
    let records = moments(8);
    for batch in records.chunks(4) {
        d.ingest(batch.to_vec()).expect("ingests");
    }
    let live = state(&mut d);
    let status = d.world().plugin("spinner").expect("installed");
    assert!(status.failed_calls >= 2, "the grouped calls timed out: {status:?}");
    assert_eq!(status.moments, 8, "every moment was scored alone in the end: {status:?}");
    drop(d);
    let recorded: Vec<(u64, u32)> = store
        .changes(&org())
        .expect("changes")
        .into_iter()
        .filter_map(|c| match c.change {
            Change::PluginCallsTimedOut { name, calls } if name == "spinner" => Some(calls),
            _ => None,
        })
        .flatten()
        .collect();
    assert!(recorded.contains(&(1, 4)) && recorded.contains(&(5, 4)), "the calls of 4 are recorded: {recorded:?}");
    assert!(recorded.iter().all(|&(_, n)| n > 1), "the single moments were not stopped: {recorded:?}");
    // Had the replay run a recorded call, it would have finished (its fuel allows it) and
    // counted as a successful call with its award: the statuses and balances would differ.
    let (mut replayed, _) = Organisation::open_from_start(Arc::clone(&store), org()).expect("replays");
    assert_eq!(state(&mut replayed), live);
}

/// An application to history replays the log under the rule set in force: made now, it runs
/// plugin calls under the backstop and its change records the ones stopped; replayed, it fails
/// those again. So a hostile plugin can hold neither the application nor a later restart.
#[test]
fn an_application_to_history_records_the_calls_its_replay_had_stopped_and_a_replay_of_it_agrees() {
    let dir = ScratchStore::new("plaudit-grouping-history");
    let store = dir.store();
    let text = rules("[plugins]\nfuel = 1000000000\nwall_clock_ms = 10\n");
    let mut d = Organisation::create(Arc::clone(&store), org(), &text, Format::Toml).expect("created");
    let spinning = fixed_output_plugin("spinner", &award_first("coins", 3), Some((40, 80_000_000)));
    d.install_plugin("spinner", &spinning).expect("installs");
    for batch in moments(6).chunks(3) {
        d.ingest(batch.to_vec()).expect("ingests");
    }
    let v2 = text.replace("amount = 10", "amount = 12");
    d.publish_rules(&v2, Format::Toml).expect("publishes");
    d.apply_to_history(plaudit_core::application::Mode::Rebase).expect("applies");
    let live = state(&mut d);
    drop(d);
    let timeouts: Vec<(String, Vec<(u64, u32)>)> = store
        .changes(&org())
        .expect("changes")
        .into_iter()
        .filter_map(|c| match c.change {
            Change::History { timeouts, .. } => Some(timeouts),
            _ => None,
        })
        .flatten()
        .collect();
    assert!(
        timeouts.iter().any(|(name, calls)| name == "spinner" && calls.contains(&(1, 3))),
        "the application's own stopped calls are in its change: {timeouts:?}"
    );
    let (mut replayed, _) = Organisation::open_from_start(Arc::clone(&store), org()).expect("replays");
    assert_eq!(state(&mut replayed), live);
}
