//! What-if over an organisation's history ([`what_if`]): its log replayed as it happened against
//! what a candidate rule set would make of it, in scratch worlds.

use std::collections::BTreeMap;
use std::sync::Arc;

use plaudit_core::OrgWorld;
use plaudit_core::application::Mode;
use plaudit_core::ids::OrgId;
use plaudit_core::ruleset::Format;
use plaudit_store::Store;

use super::*;

/// What-if over an organisation's history: its log replayed as it happened (every rule-set
/// version and plugin change where it was logged), against what `mode` would make of it with
/// the candidate rule set, up to the log's end when called:
///
/// - [`Mode::Rebase`]: the same log with the candidate in force from the start — what
///   publishing the candidate and applying it to history as a rebase leaves;
/// - [`Mode::Additive`]: the history as it happened, the candidate published at its end, then
///   applied to it additively (a third replay).
///
/// All run in scratch worlds; nothing is written, and the organisation keeps serving meanwhile.
/// An erasure committed while the replays read the log rewrites what they read (some would see
/// the erased id, some the pseudonym): they are made again, a few times at most.
pub fn what_if(
    store: Arc<dyn Store>,
    org: &OrgId,
    candidate: &str,
    format: Format,
    mode: Mode,
) -> Result<plaudit_core::simulate::Diff, OrgError> {
    let erasures = |store: &dyn Store| -> Result<usize, OrgError> {
        Ok(store.changes(org)?.iter().filter(|c| matches!(c.change, Change::Erased { .. })).count())
    };
    for _ in 0..3 {
        let before = erasures(store.as_ref())?;
        let diff = what_if_once(Arc::clone(&store), org, candidate, format, mode);
        if erasures(store.as_ref())? == before {
            return diff;
        }
    }
    what_if_once(store, org, candidate, format, mode)
}

fn what_if_once(
    store: Arc<dyn Store>,
    org: &OrgId,
    candidate: &str,
    format: Format,
    mode: Mode,
) -> Result<plaudit_core::simulate::Diff, OrgError> {
    let until = store.last_seq(org)?;
    let mut completions: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut worlds = Vec::with_capacity(2);
    let mut records = 0;
    for side in [None, Some((candidate, format))] {
        let mut observe = |w: &mut OrgWorld| {
            for e in w.drain_effects() {
                if let plaudit_sdk::EffectKind::ChallengeCompleted { challenge, .. } = e.kind {
                    let c = completions.entry(challenge).or_default();
                    if side.is_none() { c.0 += 1 } else { c.1 += 1 }
                }
            }
        };
        // The history as it happened is a replay of the log (the calls it records as stopped
        // fail again); the candidate's, a preview, runs under the backstop.
        let options = ReplayOptions { candidate: side, until, backstop: side.is_some(), ..ReplayOptions::log(false) };
        let (durable, replayed) = Organisation::replay(
            Arc::clone(&store),
            org.clone(),
            options,
            &mut |_, _| {},
            Effects::Observe(&mut observe),
        )?;
        records = replayed.records;
        worlds.push(durable.world);
    }
    if mode == Mode::Additive {
        // Completions are records of activity: an additive application leaves them.
        completions.values_mut().for_each(|c| c.1 = c.0);
        let rebuilt = worlds.pop().expect("two worlds");
        let options = ReplayOptions { until, ..ReplayOptions::log(false) };
        let (mut applied, _) =
            Organisation::replay(Arc::clone(&store), org.clone(), options, &mut |_, _| {}, Effects::Count)?;
        let doc = plaudit_core::ruleset::parse(candidate, format, "candidate rule set")?;
        applied.world.publish_rules(&doc, "candidate rule set")?;
        plaudit_core::retroactive::apply(&mut applied.world, rebuilt, mode, applied.rules.version + 1)
            .map_err(|e| OrgError::Diverged { org: org.clone(), seq: until, detail: e.to_string() })?;
        applied.world.clear_effects();
        worlds.push(applied.world);
    }
    let (current, candidate) = worlds.split_at_mut(1);
    let mut diff = plaudit_core::simulate::compare(&mut current[0], &mut candidate[0]);
    diff.records = records as usize;
    diff.completions = completions;
    Ok(diff)
}
