//! Snapshots of a world: a world restored from one is the world it was taken from, and scores
//! on exactly as that world would have.

use std::sync::{Arc, OnceLock};

use plaudit_engine::OrgWorld;
use plaudit_engine::plugins::{Limits, Loaded, PluginHost};
use plaudit_engine::snapshot::{self, WorldSnapshot};
use plaudit_engine::workload::{Spec, Workload};
use plaudit_sdk::{Record, Retraction};
use plaudit_tests::*;

fn acme_text() -> String {
    std::fs::read_to_string(repo_root().join("rules/acme.toml")).expect("rules/acme.toml")
}

fn bridge_builder() -> Arc<Loaded> {
    static HOST: OnceLock<PluginHost> = OnceLock::new();
    let host = HOST.get_or_init(|| PluginHost::new(&Limits::default()).expect("the plugin engine starts"));
    Arc::new(host.load("bridge", &example_plugin("bridge_builder"), Limits::default()).expect("bridge_builder loads"))
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

/// Through the bytes, as the log step stores it.
fn round_trip(s: &WorldSnapshot) -> WorldSnapshot {
    let bytes = snapshot::encode(s).expect("encodes");
    snapshot::decode(&bytes).expect("decodes")
}

#[test]
fn a_restored_world_is_the_world_it_was_taken_from_and_scores_on_the_same() {
    let text = acme_text();
    let doc = plaudit_engine::ruleset::parse_toml(&text, "acme.toml").expect("acme parses");
    let all = records(400, 8000);
    let (before, after) = all.split_at(all.len() / 2);
    let mut live = OrgWorld::from_doc(&doc, "acme.toml").expect("acme compiles");
    live.install_plugin("bridge", bridge_builder());
    score_all(&mut live, before);

    let taken = live.snapshot();
    let decoded = round_trip(&taken);
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
    let doc = plaudit_engine::ruleset::parse_toml(&acme_text(), "acme.toml").expect("acme parses");
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
