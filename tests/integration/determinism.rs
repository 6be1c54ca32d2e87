//! Determinism: the same rule set and the same ordered records give the same effects and the
//! same state, bit for bit, whatever the batch boundaries.

use plaudit_core::OrgWorld;
use plaudit_core::workload::{Spec, Workload};
use plaudit_sdk::Record;

fn acme() -> OrgWorld {
    let path = plaudit_tests::repo_root().join("rules/acme.toml");
    OrgWorld::from_rules_file(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// Scores the workload in batches of `size`; returns every effect and the final summary.
fn score_in_batches(size: usize) -> (String, String) {
    let workload = Workload::new(Spec { stakeholders: 300, moments: 6000, days: 40, ..Spec::default() });
    let records: Vec<Record> = workload.records().collect();
    let mut w = acme();
    let mut effects = String::new();
    for chunk in records.chunks(size) {
        let outcome = w.ingest(chunk.to_vec());
        assert!(outcome.rejected.is_empty());
        for e in w.drain_effects() {
            effects.push_str(&serde_json::to_string(&e).expect("effect serializes"));
            effects.push('\n');
        }
    }
    let summary = serde_json::to_string(&w.summary(50)).expect("summary serializes");
    (effects, summary)
}

#[test]
fn same_records_twice_give_identical_effects_and_state() {
    let a = score_in_batches(500);
    let b = score_in_batches(500);
    assert!(a.0.lines().count() > 6000, "the workload produces effects");
    assert_eq!(a, b);
}

#[test]
fn batch_boundaries_change_nothing() {
    let whole = score_in_batches(100_000);
    for size in [1, 7, 1024] {
        let other = score_in_batches(size);
        assert_eq!(whole.1, other.1, "state differs with batches of {size}");
        assert_eq!(whole.0, other.0, "effects differ with batches of {size}");
    }
}
