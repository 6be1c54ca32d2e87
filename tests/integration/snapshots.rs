//! Snapshots of a world: a world restored from one is the world it was taken from, and scores
//! on exactly as that world would have.

use std::sync::{Arc, OnceLock};

use plaudit_core::OrgWorld;
use plaudit_core::plugins::{Limits, Loaded, PluginHost};
use plaudit_core::snapshot::WorldSnapshot;
use plaudit_core::workload::{Spec, Workload};
use plaudit_sdk::{Record, Retraction};
use plaudit_tests::*;

fn acme_text() -> String {
    std::fs::read_to_string(repo_root().join("rules/acme.toml")).expect("rules/acme.toml")
}

fn bridge_builder() -> Arc<Loaded> {
    static HOST: OnceLock<PluginHost> = OnceLock::new();
    let host = HOST.get_or_init(|| PluginHost::new(&Limits::default()).expect("the plugin engine starts"));
    Arc::new(
        plaudit_core::plugins::load(host, "bridge", &example_plugin("bridge_builder"), Limits::default())
            .expect("bridge_builder loads"),
    )
}

/// The workload's records with a retraction every 97 moments (of the moment 40 before).
fn records(stakeholders: usize, moments: usize) -> Vec<Record> {
    let w = Workload::new(Spec { stakeholders, moments, days: 30, ..Spec::default() });
    let mut out: Vec<Record> = w.profiles().map(Record::Profile).collect();
    for (i, m) in w.moments(0, moments).enumerate() {
        out.push(Record::Moment(m));
        if i % 97 == 96 {
            out.push(Record::Retract(Retraction { retract: format!("m{}", i - 40), reason: None }));
        }
    }
    out
}

/// Scores `records` in batches of 500, returning the effects as JSON lines.
fn score_all(w: &mut OrgWorld, records: &[Record]) -> String {
    let mut out = String::new();
    for chunk in records.chunks(500) {
        let outcome = w.ingest(chunk.to_vec());
        assert!(outcome.rejected.is_empty(), "{:?}", outcome.rejected);
        for e in w.drain_effects() {
            out += &serde_json::to_string(&e).expect("effect serializes");
            out.push('\n');
        }
    }
    out
}

fn state(w: &mut OrgWorld) -> String {
    serde_json::to_string(&w.summary(100)).expect("summary serializes")
}

/// Through the bytes, as the store keeps it.
pub(crate) fn round_trip(s: WorldSnapshot) -> WorldSnapshot {
    use plaudit_store::format::{SNAPSHOT_VERSION, Snapshot, decode_snapshot, encode_snapshot};
    let snapshot = Snapshot {
        version: SNAPSHOT_VERSION,
        org: "test".into(),
        rules_version: 1,
        rules_text: String::new(),
        rules_format: plaudit_core::ruleset::Format::Toml,
        rules_after: 0,
        changes: 1,
        plugins: Vec::new(),
        effects: 0,
        feed: Vec::new(),
        world: s,
    };
    let bytes = encode_snapshot(&snapshot).expect("encodes");
    decode_snapshot(&bytes).expect("decodes").world
}

#[test]
fn a_restored_world_is_the_world_it_was_taken_from_and_scores_on_the_same() {
    let text = acme_text();
    let doc = plaudit_core::ruleset::parse_toml(&text, "acme.toml").expect("acme parses");
    let all = records(300, 4000);
    let (before, after) = all.split_at(all.len() / 2);
    let mut live = OrgWorld::from_doc(&doc, "acme.toml").expect("acme compiles");
    live.install_plugin("bridge", bridge_builder());
    score_all(&mut live, before);

    let taken = live.snapshot();
    let decoded = round_trip(taken.clone());
    assert_eq!(decoded, taken, "the snapshot survives its encoding");
    let mut restored = OrgWorld::restore(decoded, &doc, &mut |name| (name == "bridge").then(bridge_builder))
        .expect("the snapshot restores");
    assert_eq!(state(&mut restored), state(&mut live), "the same profiles, leaderboards and challenges");
    assert_eq!(restored.plugins(), live.plugins(), "the same plugins, with their status");
    assert_eq!(restored.snapshot(), live.snapshot(), "a snapshot of the restored world is the same snapshot");

    let expected = score_all(&mut live, after);
    let got = score_all(&mut restored, after);
    assert!(!expected.is_empty());
    assert!(got == expected, "the same effects after the restore");
    assert_eq!(state(&mut restored), state(&mut live));
    // Idempotency and retraction reach back before the snapshot.
    let again = restored.ingest(before[before.len() - 10..].to_vec());
    assert_eq!(again.accepted, 0, "moments from before the snapshot are duplicates");
}

#[test]
fn a_snapshot_of_another_format_is_refused_not_misread() {
    let doc = plaudit_core::ruleset::parse_toml(&acme_text(), "acme.toml").expect("acme parses");
    let mut w = OrgWorld::from_doc(&doc, "acme.toml").expect("acme compiles");
    score_all(&mut w, &records(20, 100));
    let mut s = w.snapshot();
    s.format += 1;
    let err = OrgWorld::restore(s.clone(), &doc, &mut |_| None).expect_err("refused");
    assert!(err.to_string().contains("format"), "{err}");
    s.format -= 1;
    s.people.pop();
    let err = OrgWorld::restore(s, &doc, &mut |_| None).expect_err("refused");
    assert!(err.to_string().contains("inconsistent"), "{err}");
}

mod durable {
    use std::sync::Arc;

    use plaudit_core::ids::{OrgId, Seq};
    use plaudit_core::ruleset::Format;
    use plaudit_sdk::Record;
    use plaudit_server::organisation::Organisation;
    use plaudit_store::{Store, StoreError};

    use super::{acme_text, records};
    use plaudit_tests::{Fault, FaultyStore, ScratchStore, Snapshot, example_plugin};

    fn acme() -> OrgId {
        OrgId::parse("acme").expect("org id")
    }

    fn summary(d: &mut Organisation) -> String {
        serde_json::to_string(&d.world_mut().summary(1000)).expect("summary")
    }

    fn ingest(d: &mut Organisation, records: &[Record]) {
        for chunk in records.chunks(300) {
            let outcome = d.ingest(chunk.to_vec()).expect("ingest");
            assert!(outcome.rejected.is_empty(), "{:?}", outcome.rejected);
        }
    }

    /// A log with a snapshot in the middle and, after it, more records, a new rule-set version
    /// and a plugin; returns the live state at the end.
    fn history(dir: &ScratchStore) -> (String, Vec<Record>, Seq) {
        let v1 = acme_text();
        let v2 = v1.replace("amount = 20 }]", "amount = 45 }]");
        let all = records(100, 1200);
        let (a, rest) = all.split_at(600);
        let (b, c) = rest.split_at(300);
        let mut d = Organisation::create(dir.store(), acme(), &v1, Format::Toml).expect("created");
        d.install_plugin("bridge", &example_plugin("bridge_builder")).expect("installs");
        ingest(&mut d, a);
        let taken = d.snapshot().expect("snapshot stored");
        assert_eq!(taken.seq, d.world().last_seq());
        ingest(&mut d, b);
        d.publish_rules(&v2, Format::Toml).expect("v2");
        d.remove_plugin("bridge").expect("removes");
        d.install_plugin("bridge", &example_plugin("bridge_builder")).expect("installs again");
        ingest(&mut d, &c[..200]);
        (summary(&mut d), c[200..].to_vec(), taken.seq)
    }

    #[test]
    fn open_restores_the_snapshot_and_replays_only_the_log_after_it() {
        let dir = ScratchStore::new("plaudit-snap-tail");
        let (live, more, at) = history(&dir);
        let (mut restored, replayed) = Organisation::open(dir.store(), acme()).expect("opens");
        assert_eq!(replayed.snapshot.map(|s| s.0), Some(at), "the snapshot was restored");
        assert_eq!(replayed.records, restored.world().last_seq().0 - at.0, "only the tail was replayed");
        assert_eq!(restored.rules().version, 2);
        assert!(restored.installed().contains_key("bridge"));
        assert!(summary(&mut restored) == live, "the same state as the live world, bit for bit");
        drop(restored);
        let (mut full, replayed) = Organisation::open_from_start(dir.store(), acme()).expect("replays");
        assert!(replayed.snapshot.is_none());
        assert!(summary(&mut full) == live, "the same state as a replay of the whole log");
        drop(full);

        // And scores on the same: the same history in a second log, replayed from the start.
        let effects = |d: &mut Organisation| {
            let (_, effects) = d.ingest_group(vec![more.clone()], true).expect("ingest");
            (serde_json::to_string(&effects).expect("effects"), summary(d))
        };
        let (mut restored, _) = Organisation::open(dir.store(), acme()).expect("opens");
        let other = ScratchStore::new("plaudit-snap-tail-full");
        assert!(history(&other).0 == live);
        let (mut full, _) = Organisation::open_from_start(other.store(), acme()).expect("replays");
        let (expected, got) = (effects(&mut full), effects(&mut restored));
        assert!(!expected.0.is_empty());
        assert!(got == expected, "the same effects and state after a restore as after a replay");
    }

    #[test]
    fn the_feed_keeps_its_effects_across_a_restart_from_a_snapshot_numbered_as_they_were() {
        let dir = ScratchStore::new("plaudit-snap-feed");
        let all = records(100, 1200);
        let (a, b) = all.split_at(800);
        let latest = {
            let mut d = Organisation::create(dir.store(), acme(), &acme_text(), Format::Toml).expect("created");
            d.start_feed(100_000);
            ingest(&mut d, a);
            d.snapshot().expect("snapshot");
            ingest(&mut d, b);
            d.feed().expect("feed").latest()
        };
        let (d, replayed) = Organisation::open_with_feed(dir.store(), acme(), 100_000).expect("opens");
        assert!(replayed.snapshot.is_some());
        let feed = d.feed().expect("feed");
        assert_eq!(feed.latest(), latest, "the last effect has the same number");
        let all = feed.after(Some(0), usize::MAX).expect("effects before the snapshot are kept too");
        assert_eq!(all.len() as u64, latest, "every effect, numbered from 1 without a gap");
        assert!(all.iter().enumerate().all(|(i, item)| item.id == i as u64 + 1));
        assert_eq!(feed.after(Some(latest - 1), 10).expect("the tail is kept").len(), 1);
        // Beyond its capacity a feed keeps the newest, across a restart as before it.
        drop(d);
        let (d, _) = Organisation::open_with_feed(dir.store(), acme(), 1000).expect("opens");
        let feed = d.feed().expect("feed");
        assert_eq!((feed.oldest(), feed.latest()), (latest - 999, latest));
    }

    /// A store whose snapshot fails its checksum: what a torn or flipped snapshot looks like
    /// from the log step (the store's own tests damage real files).
    #[derive(Debug)]
    struct Damaged;

    impl Fault for Damaged {
        fn latest_snapshot(&self, inner: &dyn Store, org: &OrgId) -> Option<Result<Option<Snapshot>, StoreError>> {
            let (seq, _) = inner.latest_snapshot(org).expect("reads").expect("a snapshot was stored");
            Some(Err(StoreError::CorruptSnapshot { org: org.clone(), seq }))
        }
    }

    #[test]
    fn a_damaged_or_unreadable_snapshot_is_not_used_the_whole_log_is_replayed() {
        let dir = ScratchStore::new("plaudit-snap-damaged");
        let (live, _, at) = history(&dir);
        let (mut d, replayed) =
            Organisation::open(Arc::new(FaultyStore { inner: dir.store(), fault: Damaged }), acme())
                .expect("opens from the log");
        assert!(replayed.snapshot.is_none(), "the damaged snapshot was not restored");
        assert_eq!(replayed.records, d.world().last_seq().0);
        assert!(summary(&mut d) == live, "recovered, never silently wrong");
        drop(d);
        // Checksummed but not a snapshot this version reads: replayed too.
        dir.store().put_snapshot(&acme(), at, b"\x93not a snapshot").expect("stored");
        let (mut d, replayed) = Organisation::open(dir.store(), acme()).expect("opens from the log");
        assert!(replayed.snapshot.is_none());
        assert!(summary(&mut d) == live);
    }
}
