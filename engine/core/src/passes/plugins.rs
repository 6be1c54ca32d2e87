//! The plugins pass: after the native rules, before the effects pass. For every active plugin
//! of the organisation, the batch's scored moments go to the guest in calls of at most
//! [`MAX_MOMENTS_PER_CALL`] moments (fewer if the encoded input would pass the input limit),
//! each with only the context the plugin declared, and what comes back is checked in full
//! before any of it is used:
//!
//! - points become award requests ([`AwardSource::Plugin`]) that the effects pass applies like
//!   native ones: balances, levels, badges, leaderboards;
//! - a withhold holds back the moment's native awards;
//! - badges (metric-less ones only) and custom effects become [`PluginAct`]s;
//! - the plugin's per-stakeholder state is saved.
//!
//! A call that fails (a trap, a limit, output that breaks the ABI) changes nothing: its moments
//! keep their native scoring and the failure is recorded in the plugin's status. Its two halves
//! are then retried, down to single moments, so a limit that is per call (fuel, output size)
//! is in effect per moment, and only the moments that fail on their own lose their plugin
//! effects, whatever the batch boundaries. A plugin that fails on [`crate::plugins::DISABLE_AFTER`]
//! single moments in a row is disabled (an always-failing plugin gets there in about
//! log2(512) + 3 calls).
//!
//! **Owns** the encoding of moments for the guest (`Call::encode`) and the checking of its
//! output (`check_output`). Reads the batch and the native awards; writes only [`Awards`],
//! [`PluginActs`] and the [`Plugins`] registry.

use bevy_ecs::prelude::*;
use plaudit_sdk::plugin::wire::{
    self, Bytes, Input, MomentIn, OP_AWARD, OP_BADGE, OP_CUSTOM, OP_WITHHOLD, Output, TO_ACTOR, TO_COUNTERPART,
};
use rustc_hash::FxHashMap;

use crate::batch::{Action, Award, AwardSource, Awards, Batch, Hold, MomentRec, PluginAct, PluginActs, PluginWhat};
use crate::ids::Sym;
use crate::intern::Interner;
use crate::plugins::{FailureReport, Loaded, MAX_STATE_BYTES, PluginFailure, Plugins, Slot};
use crate::resources::{ProgramRes, Vocab};
use crate::ruleset::program::{BadgeShape, CurrencyIx, Program};

/// Most moments in one call.
pub const MAX_MOMENTS_PER_CALL: usize = crate::batch::CHUNK;

/// Largest amount a plugin may award (or take) at once: any award's bound.
pub const MAX_AMOUNT: i64 = crate::bounds::MAX_AWARD;

/// Longest withhold reason and custom effect name, in bytes.
const MAX_TEXT: usize = 200;

/// Most attributes on a custom effect.
const MAX_CUSTOM_ATTRS: usize = 32;

pub fn run(
    program: Res<ProgramRes>,
    vocab: Res<Vocab>,
    batch: Res<Batch>,
    mut awards: ResMut<Awards>,
    mut acts: ResMut<PluginActs>,
    mut plugins: ResMut<Plugins>,
) {
    acts.acts.clear();
    acts.reasons.clear();
    if plugins.slots.iter().all(|s| s.active().is_none()) {
        return;
    }
    // The chunk's scored moments, and the calls they make: each of the batch's calls in the
    // chunk (see `Batch::plan_calls`), as a range of `scored`.
    let mut scored: Vec<u32> = Vec::new();
    let mut spans: Vec<(usize, usize)> = Vec::new();
    for call in batch.calls_in_chunk() {
        let from = scored.len();
        scored.extend(call.filter(|&i| batch.records[i as usize].action == Action::Score));
        for s in (from..scored.len()).step_by(MAX_MOMENTS_PER_CALL) {
            spans.push((s, scored.len().min(s + MAX_MOMENTS_PER_CALL)));
        }
    }
    let p = &*program.0;
    let native = awards.0.len();
    let mut extra = Vec::new();
    let mut buffer = Vec::new();
    let Plugins { slots, timeouts } = &mut *plugins;
    for (slot_ix, slot) in slots.iter_mut().enumerate() {
        let Some(loaded) = slot.active() else { continue };
        // Ranges of `scored` still to run, the next on top.
        let mut todo: Vec<(usize, usize)> = spans.iter().rev().copied().collect();
        let limit = loaded.plugin().limits().input_bytes;
        while let Some((start, mut end)) = todo.pop() {
            if slot.active().is_none() {
                break;
            }
            let seeds = loop {
                let call = Call {
                    p,
                    vocab: &vocab.0,
                    batch: &batch,
                    native: &awards.0[..native],
                    records: &scored[start..end],
                };
                let seeds = call.encode(&loaded, slot, &mut buffer);
                if buffer.len() <= limit || end - start == 1 {
                    break seeds;
                }
                let mid = start + (end - start) / 2;
                todo.push((mid, end));
                end = mid;
            };
            let records = &scored[start..end];
            let seq = |i: usize| batch.records[records[i] as usize].seq;
            let id = (seq(0), records.len() as u32);
            // Passed the backstop when first scored: fails again, without running.
            let call = if timeouts.before(&slot.status.name, id, (0..records.len()).map(seq)) {
                Err(plaudit_sandbox::CallFailed { failure: PluginFailure::Timeout, logs: String::new(), fuel_used: 0 })
            } else {
                loaded.plugin().call_with(&buffer, &seeds, timeouts.backstop)
            };
            let outcome = call.map_err(|f| (f.failure, f.logs)).and_then(|out| {
                let checked = check_output(p, &batch.records, records, &out.output)
                    .map_err(|reason| (PluginFailure::BadOutput { reason }, out.logs.clone()))?;
                Ok((checked, out.fuel_used))
            });
            match outcome {
                Ok((checked, fuel)) => {
                    apply(slot, slot_ix as u16, checked, &mut awards.0[..native], &mut extra, &mut acts);
                    let s = &mut slot.status;
                    s.calls += 1;
                    s.consecutive_failures = 0;
                    s.moments += records.len() as u64;
                    s.fuel_used += fuel;
                    s.stakeholders_with_state = slot.states.len();
                }
                Err((failure, mut logs)) => {
                    // What a call stopped by the clock logged depends on how far it got: not
                    // kept, so that its replay, which does not run it, reports the same.
                    if failure == PluginFailure::Timeout {
                        logs.clear();
                    }
                    // Every call the backstop stopped, also one whose halves then succeed: a
                    // replay makes the same call and must not run it to its fuel instead.
                    if failure == PluginFailure::Timeout && timeouts.backstop {
                        timeouts.timed_out.push((slot.status.name.clone(), id));
                    }
                    slot.failed(FailureReport {
                        first_seq: seq(0),
                        last_seq: seq(records.len() - 1),
                        moments: records.len(),
                        reason: failure.to_string(),
                        logs,
                    });
                    // Retry the halves: the moments that fail even alone are the only ones to
                    // lose their plugin effects, whatever the batch boundaries were.
                    if end - start > 1 {
                        let mid = start + (end - start) / 2;
                        todo.push((mid, end));
                        todo.push((start, mid));
                    }
                }
            }
        }
    }
    if !extra.is_empty() {
        awards.0.extend(extra);
        // Stable: a moment's native awards stay before its plugins' ones.
        awards.0.sort_by_key(|a| a.record);
    }
    acts.acts.sort_by_key(|a| a.record);
}

/// One call's moments and what encoding them needs.
struct Call<'a> {
    p: &'a Program,
    vocab: &'a Interner,
    batch: &'a Batch,
    /// The native award requests of the batch, in record order.
    native: &'a [Award],
    /// Indices of the call's records in the batch.
    records: &'a [u32],
}

impl Call<'_> {
    /// Encodes the call's [`Input`] into `buffer`; returns the moments' random seeds.
    fn encode(&self, loaded: &Loaded, slot: &Slot, buffer: &mut Vec<u8>) -> Vec<u64> {
        let needs = loaded.needs;
        let mut input = Input::default();
        let mut words: FxHashMap<u64, u32> = FxHashMap::default();
        let mut dict = Vec::new();
        let mut word = |key: u64, text: &dyn Fn() -> String| -> u32 {
            *words.entry(key).or_insert_with(|| {
                dict.push(text());
                dict.len() as u32 - 1
            })
        };
        let vocab = self.vocab;
        let sym = |s: Sym| move || vocab.resolve(s.0).to_string();
        let mut seeds = Vec::with_capacity(self.records.len());
        // Actors whose saved state is in the input already (once per call).
        let mut sent: rustc_hash::FxHashSet<u32> = rustc_hash::FxHashSet::default();
        for &r in self.records {
            let m: &MomentRec = &self.batch.records[r as usize];
            seeds.push(wire::moment_seed(self.p.seed, m.seq));
            let mut moment = MomentIn {
                seq: m.seq,
                actor: m.actor_no,
                counterpart: m.counterpart_no,
                kind: word(u64::from(m.kind.0), &sym(m.kind)),
                channel: word(u64::from(m.channel.0), &sym(m.channel)),
                at: m.at,
                value: m.value,
                actor_team: None,
                counterpart_team: None,
                awards: Vec::new(),
            };
            if needs.teams {
                let team = |t: Sym, word: &mut dyn FnMut(u64, &dyn Fn() -> String) -> u32| {
                    (!t.is_none()).then(|| word(u64::from(t.0), &sym(t)))
                };
                moment.actor_team = team(m.actor_team, &mut word);
                moment.counterpart_team = team(m.counterpart_team, &mut word);
            }
            if needs.awards {
                let from = self.native.partition_point(|a| a.record < r);
                for a in self.native[from..].iter().take_while(|a| a.record == r) {
                    if a.withheld != Hold::No {
                        continue;
                    }
                    let to = if a.to == m.actor { wire::TO_ACTOR } else { wire::TO_COUNTERPART };
                    let currency = self.p.currencies[a.currency as usize].id.as_str();
                    let c = word(1 << 32 | u64::from(a.currency), &|| currency.to_string());
                    moment.awards.push((to, c, a.amount));
                }
            }
            if needs.state
                && let Some(saved) = slot.states.get(&m.actor_no)
                && sent.insert(m.actor_no)
            {
                input.states.push((m.actor_no, Bytes(saved.clone())));
            }
            input.moments.push(moment);
        }
        input.dict = dict;
        // Encoding plain data into a Vec cannot fail; an empty buffer would fail the call cleanly.
        if wire::encode_into(buffer, &input).is_err() {
            buffer.clear();
        }
        seeds
    }
}

/// A call's output, checked and resolved against the rule set.
struct Checked {
    awards: Vec<(u32, Entity, CurrencyIx, i64)>,
    withholds: Vec<(u32, String)>,
    acts: Vec<(u32, Entity, PluginWhat)>,
    states: Vec<(u32, Option<Vec<u8>>)>,
}

/// Decodes and checks everything a call returned; the first problem fails the whole call.
fn check_output(p: &Program, all: &[MomentRec], records: &[u32], bytes: &[u8]) -> Result<Checked, String> {
    let output: Output = wire::decode(bytes).map_err(|e| format!("the output does not decode: {e}"))?;
    if let Some(message) = output.error {
        return Err(format!("the plugin reported: {}", crate::plugins::cut(message, crate::plugins::MAX_REPORT)));
    }
    let mut checked = Checked { awards: Vec::new(), withholds: Vec::new(), acts: Vec::new(), states: Vec::new() };
    for e in output.effects {
        let Some(&r) = records.get(e.moment as usize) else {
            return Err(format!("an effect names moment {} of a call of {} moments", e.moment, records.len()));
        };
        let m = &all[r as usize];
        let to = match e.to {
            TO_ACTOR => m.actor,
            TO_COUNTERPART => match m.counterpart {
                Some(c) => c,
                None => continue,
            },
            other => return Err(format!("effect target {other} is neither the actor (0) nor the counterpart (1)")),
        };
        match e.op {
            OP_AWARD => {
                let Some(c) = p.currencies.iter().position(|c| c.id == e.name) else {
                    let known: Vec<&str> = p.currencies.iter().map(|c| c.id.as_str()).collect();
                    return Err(format!("award in unknown currency {:?} (the rule set has {known:?})", e.name));
                };
                // `unsigned_abs`: `abs` of i64::MIN wraps to itself in a release build.
                if e.amount.unsigned_abs() > MAX_AMOUNT.unsigned_abs() {
                    return Err(format!("award of {} is beyond +/-{MAX_AMOUNT}", e.amount));
                }
                if e.amount != 0 {
                    checked.awards.push((r, to, c as CurrencyIx, e.amount));
                }
            }
            OP_WITHHOLD => checked.withholds.push((r, truncate(e.name))),
            OP_BADGE => {
                let Some(b) = p.badges.iter().position(|b| b.id == e.name) else {
                    return Err(format!("grant of unknown badge {:?}", e.name));
                };
                if !matches!(p.badges[b].shape, BadgeShape::Granted) {
                    return Err(format!(
                        "badge {:?} is earned from its metric; a plugin may grant only badges without one",
                        e.name
                    ));
                }
                checked.acts.push((r, to, PluginWhat::Badge(b as u16)));
            }
            OP_CUSTOM => {
                if e.name.is_empty() || e.name.len() > MAX_TEXT {
                    return Err(format!("a custom effect's name must be 1 to {MAX_TEXT} bytes"));
                }
                if e.data.len() > MAX_CUSTOM_ATTRS {
                    return Err(format!("custom effect {:?} has over {MAX_CUSTOM_ATTRS} attributes", e.name));
                }
                checked.acts.push((r, to, PluginWhat::Custom(Box::new((e.name, e.data)))));
            }
            other => return Err(format!("unknown effect operation {other}")),
        }
    }
    let mut actors: Vec<u32> = Vec::new();
    if !output.states.is_empty() {
        actors = records.iter().map(|&r| all[r as usize].actor_no).collect();
        actors.sort_unstable();
    }
    for (who, state) in output.states {
        if actors.binary_search(&who).is_err() {
            return Err(format!("state for stakeholder {who}, who is no actor of this call"));
        }
        if let Some(bytes) = &state
            && bytes.0.len() > MAX_STATE_BYTES
        {
            return Err(format!("state of stakeholder {who} is {} bytes, over {MAX_STATE_BYTES}", bytes.0.len()));
        }
        checked.states.push((who, state.map(|b| b.0)));
    }
    Ok(checked)
}

fn truncate(text: String) -> String {
    crate::plugins::cut(text, MAX_TEXT)
}

/// Applies a checked call: saves states, queues awards and acts, holds back withheld moments'
/// native awards.
fn apply(
    slot: &mut Slot,
    slot_ix: u16,
    checked: Checked,
    native: &mut [Award],
    extra: &mut Vec<Award>,
    acts: &mut PluginActs,
) {
    for (who, state) in checked.states {
        match state {
            Some(bytes) => slot.states.insert(who, bytes),
            None => slot.states.remove(&who),
        };
    }
    for (record, to, currency, amount) in checked.awards {
        extra.push(Award { record, to, currency, amount, source: AwardSource::Plugin(slot_ix), withheld: Hold::No });
    }
    for (record, reason) in checked.withholds {
        let text = format!("withheld by plugin {}: {reason}", slot.status.name);
        let from = native.partition_point(|a| a.record < record);
        let mut held = false;
        for a in native[from..].iter_mut().take_while(|a| a.record == record) {
            if a.withheld == Hold::No && matches!(a.source, AwardSource::Rule(_)) {
                a.withheld = Hold::Plugin(acts.reasons.len() as u32);
                held = true;
            }
        }
        if held {
            acts.reasons.push(text.into());
        }
    }
    for (record, to, what) in checked.acts {
        acts.acts.push(PluginAct { record, to, plugin: slot_ix, what });
    }
}

#[cfg(test)]
mod tests {
    use plaudit_sdk::plugin::wire::EffectOut;

    use super::*;
    use crate::ruleset::{compile::compile, parse_toml};

    const RULES: &str = r#"
[organisation]
id = "t"
[[currency]]
id = "xp"
[[metric]]
id = "answers"
count = { kind = ["answer"] }
[[badge]]
id = "granted"
name = "Granted"
[[badge]]
id = "earned"
name = "Earned"
metric = "answers"
threshold = 3
"#;

    fn program() -> Program {
        let doc = parse_toml(RULES, "t.toml").expect("parses");
        compile(&doc, &mut Interner::new(), "t.toml").expect("compiles")
    }

    fn records() -> Vec<MomentRec> {
        let mut world = World::new();
        let (a, b) = (world.spawn_empty().id(), world.spawn_empty().id());
        let mut m = MomentRec::retraction(1, 0);
        (m.action, m.actor, m.actor_no, m.counterpart, m.counterpart_no) = (Action::Score, a, 0, Some(b), Some(1));
        let mut alone = m;
        (alone.seq, alone.counterpart, alone.counterpart_no) = (2, None, None);
        vec![m, alone]
    }

    fn effect(moment: u32, to: u8, op: u8, name: &str, amount: i64) -> EffectOut {
        EffectOut { moment, to, op, name: name.into(), amount, data: Default::default() }
    }

    fn check(output: Output) -> Result<Checked, String> {
        let bytes = wire::encode(&output).expect("encodes");
        check_output(&program(), &records(), &[0, 1], &bytes)
    }

    fn with(effects: Vec<EffectOut>) -> Output {
        Output { effects, ..Output::default() }
    }

    #[test]
    fn output_naming_what_the_rule_set_lacks_is_refused_with_a_reason() {
        let err = |o| check(o).err().expect("refused");
        assert!(err(with(vec![effect(0, TO_ACTOR, OP_AWARD, "gold", 1)])).contains("unknown currency \"gold\""));
        assert!(err(with(vec![effect(0, TO_ACTOR, OP_BADGE, "nope", 0)])).contains("unknown badge \"nope\""));
        assert!(err(with(vec![effect(0, TO_ACTOR, OP_BADGE, "earned", 0)])).contains("earned from its metric"));
        assert!(err(with(vec![effect(5, TO_ACTOR, OP_AWARD, "xp", 1)])).contains("moment 5 of a call of 2"));
        assert!(err(with(vec![effect(0, 7, OP_AWARD, "xp", 1)])).contains("neither the actor"));
        assert!(err(with(vec![effect(0, TO_ACTOR, 9, "xp", 1)])).contains("unknown effect operation 9"));
        // Every amount beyond the bound, `i64::MIN` included (its `abs` wraps in release builds).
        for amount in [MAX_AMOUNT + 1, -MAX_AMOUNT - 1, i64::MAX, i64::MIN, i64::MIN + 1] {
            assert!(err(with(vec![effect(0, TO_ACTOR, OP_AWARD, "xp", amount)])).contains("beyond"), "{amount}");
        }
        assert!(err(with(vec![effect(0, TO_ACTOR, OP_CUSTOM, "", 0)])).contains("name must be 1 to"));
        let stranger = Output { states: vec![(1, Some(Bytes(vec![1])))], ..Output::default() };
        assert!(err(stranger).contains("no actor of this call"));
        let huge = Output { states: vec![(0, Some(Bytes(vec![0; MAX_STATE_BYTES + 1])))], ..Output::default() };
        assert!(err(huge).contains("over 4096"));
        let reported = Output { error: Some("bad day".into()), ..Output::default() };
        assert!(err(reported).contains("the plugin reported: bad day"));
        let garbage = check_output(&program(), &records(), &[0, 1], &[0xc1]).err().expect("refused");
        assert!(garbage.contains("does not decode"), "{garbage}");
    }

    #[test]
    fn good_output_is_resolved_against_the_moment_and_the_rule_set() {
        let checked = check(Output {
            effects: vec![
                effect(0, TO_COUNTERPART, OP_AWARD, "xp", 4),
                effect(1, TO_COUNTERPART, OP_AWARD, "xp", 4), // no counterpart: dropped
                effect(1, TO_ACTOR, OP_AWARD, "xp", 0),       // nothing: dropped
                effect(0, TO_ACTOR, OP_BADGE, "granted", 0),
                effect(1, TO_ACTOR, OP_WITHHOLD, &"x".repeat(500), 0),
            ],
            states: vec![(0, None)],
            error: None,
        })
        .expect("accepted");
        let recs = records();
        assert_eq!(checked.awards, vec![(0, recs[0].counterpart.expect("has one"), 0, 4)]);
        assert!(matches!(checked.acts.as_slice(), [(0, _, PluginWhat::Badge(0))]));
        assert_eq!(checked.withholds[0].1.len(), MAX_TEXT, "long reasons are cut, not refused");
        assert_eq!(checked.states, vec![(0, None)]);
    }
}
