//! Retroactive application: the rule set in force applied to the organisation's history, as an
//! explicit operation (publishing alone applies going forward). Two modes:
//!
//! - **additive**: award what the rule set in force would have given over the history and was
//!   not given, and take nothing back. Per moment and stakeholder, each currency gets the
//!   positive difference between what the moment earns under the rule set in force and what it
//!   earned; each badge (tier, count) the rule set in force would have reached and the
//!   stakeholder has not is awarded at the moment it would have been; levels follow the new
//!   balances; all-time leaderboards follow the balances. Metrics, streaks, challenge progress
//!   and windowed leaderboards, records of activity, carry on as they are.
//! - **rebase**: the world becomes exactly what a replay of the history under the rule set in
//!   force leaves (currencies, badges, levels, metrics, streaks, challenges, ranks), and
//!   compensating entries say what changed for whom: per moment, the points it earns more or
//!   less; per stakeholder, the badges gained or lost and the levels reached.
//!
//! Either way the grants are entries of the moments' ledger: the ledger is keyed by moment,
//! and the rule-set version of an application names its effects (`history:v3:additive`), so a
//! second application of the same version finds nothing more to give, and a later retraction of
//! a moment reverses what an application gave for it too.
//!
//! **Owns** the merge of a scratch world (the history replayed under the rule set in force,
//! which the log step in `plaudit-server` builds) into the live one, and the effects it emits into
//! the live world's journal. **Must not touch** the store or the scoring passes: the scratch
//! world was scored by the ordinary passes, so what is applied is what scoring gives.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;

use crate::application::Mode;
use crate::components::{Scorecard, Tally, tally_key};
use crate::history::{Earned, History, LedgerEntry};
use crate::insights::Insights;
use crate::journal::{EffectRec, Journal, Kind, NO_MOMENT, Source};
use crate::leaderboard::PublishQueue;
use crate::resources::{Directory, ProgramRes};
use crate::ruleset::program::{CurrencyIx, Program};
use crate::world::OrgWorld;
use bevy_ecs::prelude::*;

/// The two worlds did not score the same history under the same rule set: a bug, reported.
#[derive(Debug, thiserror::Error)]
#[error("the history replayed under the rule set in force does not match the live world: {0}")]
pub struct Mismatch(String);

/// What the live world and the replayed one have in common, by number.
struct Pairing {
    /// Replayed moment number -> live moment number.
    moments: Vec<u32>,
    /// Replayed directory number -> (live entity, live directory number).
    people: Vec<(Entity, u32)>,
}

fn pair(live: &World, new: &World) -> Result<Pairing, Mismatch> {
    let (lp, np) = (&live.resource::<ProgramRes>().0, &new.resource::<ProgramRes>().0);
    let same = |a: &Program, b: &Program| {
        a.currencies.iter().map(|c| &c.id).eq(b.currencies.iter().map(|c| &c.id))
            && a.badges.iter().map(|b| &b.id).eq(b.badges.iter().map(|b| &b.id))
            && a.leaderboards.len() == b.leaderboards.len()
    };
    if !same(lp, np) {
        return Err(Mismatch("the rule sets differ in currencies, badges or leaderboards".to_string()));
    }
    let (lh, nh) = (live.resource::<History>(), new.resource::<History>());
    if lh.len() != nh.len() || lh.last_seq != nh.last_seq {
        return Err(Mismatch(format!(
            "{} moments up to {} live, {} up to {} replayed",
            lh.len(),
            lh.last_seq,
            nh.len(),
            nh.last_seq
        )));
    }
    let mut moments = Vec::with_capacity(nh.len());
    for m in 0..nh.len() as u32 {
        let id = nh.ids.resolve(m);
        let l = lh.ids.get(id).ok_or_else(|| Mismatch(format!("moment {id:?} is not in the live world")))?;
        if lh.retracted(l) != nh.retracted(m) {
            return Err(Mismatch(format!("moment {id:?} is retracted in one world only")));
        }
        moments.push(l);
    }
    let (ld, nd) = (live.resource::<Directory>(), new.resource::<Directory>());
    let mut people = Vec::with_capacity(nd.entries.len());
    for i in 0..nd.entries.len() as u32 {
        let id = nd.ids.resolve(i);
        let l = ld.ids.get(id).ok_or_else(|| Mismatch(format!("stakeholder {id:?} is not in the live world")))?;
        people.push((ld.entries[l as usize].entity, l));
    }
    Ok(Pairing { moments, people })
}

/// The tally of the stakeholder `e` of `world`.
fn tally(world: &World, e: Entity) -> Option<&Tally> {
    world.get::<Scorecard>(e).map(|c| &c.tally)
}

/// Points per (stakeholder, currency) that a moment's ledger entries earned.
fn points(ledger: &[LedgerEntry], out: &mut Vec<(u32, u8, i64)>) {
    out.clear();
    for l in ledger {
        if let Earned::Points { currency, amount } = l.earned {
            let who = l.stakeholder;
            match out.iter_mut().find(|(w, c, _)| *w == who && *c == currency) {
                Some(slot) => slot.2 = slot.2.saturating_add(amount),
                None => out.push((who, currency, amount)),
            }
        }
    }
}

/// Per replayed moment, in order: (replayed moment, stakeholder's replayed directory number,
/// currency, what the moment earns under the rule set in force minus what it earned live), for
/// every difference. Retracted moments earn nothing in either world.
fn point_deltas(live: &World, new: &World, pairing: &Pairing) -> Vec<(u32, u32, u8, i64)> {
    let (lh, nh) = (live.resource::<History>(), new.resource::<History>());
    let live_dir_to_new: FxHashMap<u32, u32> =
        pairing.people.iter().enumerate().map(|(n, &(_, l))| (l, n as u32)).collect();
    let (mut was, mut now) = (Vec::new(), Vec::new());
    let mut deltas = Vec::new();
    for (m, &l) in pairing.moments.iter().enumerate() {
        if nh.retracted(m as u32) {
            continue;
        }
        points(nh.earned(m as u32), &mut now);
        points(lh.earned(l), &mut was);
        for (who, c, amount) in was.iter_mut() {
            *who = live_dir_to_new.get(who).copied().unwrap_or(u32::MAX);
            if let Some(n) = now.iter_mut().find(|(w, nc, _)| w == who && nc == c) {
                n.2 = n.2.saturating_sub(*amount);
            } else {
                now.push((*who, *c, amount.saturating_neg()));
            }
        }
        deltas.extend(now.iter().filter(|d| d.2 != 0 && d.0 != u32::MAX).map(|&(w, c, d)| (m as u32, w, c, d)));
    }
    deltas
}

/// Applies `new` — the live world's history replayed under the rule set in force, version
/// `version` — to `live` in `mode`. The effects go to the live world's journal at its last
/// sequence number; returns how many there are.
pub fn apply(live: &mut OrgWorld, new: OrgWorld, mode: Mode, version: u64) -> Result<usize, Mismatch> {
    let pairing = pair(live.world(), new.world())?;
    let source = Source::History { version: u32::try_from(version).unwrap_or(u32::MAX), mode };
    match mode {
        Mode::Additive => Ok(additive(live.world_mut(), new.world(), &pairing, source)),
        Mode::Rebase => Ok(rebase(live, new, &pairing, source)),
    }
}

fn additive(live: &mut World, new: &World, pairing: &Pairing, source: Source) -> usize {
    let program = std::sync::Arc::clone(&live.resource::<ProgramRes>().0);
    let seq = live.resource::<History>().last_seq;
    let origin = live.resource_mut::<History>().origins.of(source, &program);
    let deltas = point_deltas(live, new, pairing);
    let nh = new.resource::<History>();
    // What the ledger gains, by live moment; the effects, in moment order.
    let mut gains: BTreeMap<u32, Vec<LedgerEntry>> = BTreeMap::new();
    let mut effects = Vec::new();
    // Who was granted points of which currency.
    let mut touched: Vec<(Entity, CurrencyIx)> = Vec::new();
    let mut next = deltas.iter().peekable();
    // Badges the replay reached, counted per (stakeholder, badge) as its ledger goes by.
    let mut reached: FxHashMap<(u32, u16), i64> = FxHashMap::default();
    for (m, &lm) in pairing.moments.iter().enumerate() {
        while let Some(&&(_, who, currency, delta)) = next.peek().filter(|d| d.0 as usize == m) {
            next.next();
            let Some(&(entity, ext)) = pairing.people.get(who as usize) else { continue };
            if delta <= 0 {
                continue; // additive: nothing is taken back
            }
            let Some(mut card) = live.get_mut::<Scorecard>(entity) else { continue };
            let (delta, balance) = card.wallet.credit(program.currencies.len(), currency, delta);
            if delta == 0 {
                continue; // at the balance's bound
            }
            gains.entry(lm).or_default().push(LedgerEntry {
                stakeholder: ext,
                origin,
                completion: false,
                earned: Earned::Points { currency, amount: delta },
            });
            effects.push(EffectRec {
                seq,
                moment: lm,
                stakeholder: ext,
                source,
                kind: Kind::Points { currency, amount: delta, balance },
            });
            touched.push((entity, currency));
        }
        if nh.retracted(m as u32) {
            continue;
        }
        for l in nh.earned(m as u32) {
            let Earned::Badge { badge, tier } = l.earned else { continue };
            let who = l.stakeholder;
            let Some(&(entity, ext)) = pairing.people.get(who as usize) else { continue };
            let count = reached.entry((who, badge)).or_default();
            *count += 1;
            let needed = tier.map_or(*count, |t| i64::from(t) + 1);
            let Some(mut card) = live.get_mut::<Scorecard>(entity) else { continue };
            let slot = card.tally.slot(tally_key::BADGE | u32::from(badge));
            if slot.b >= needed {
                continue;
            }
            slot.b = needed;
            gains.entry(lm).or_default().push(LedgerEntry {
                stakeholder: ext,
                origin,
                completion: false,
                earned: Earned::Badge { badge, tier },
            });
            let kind = Kind::Badge { badge, tier, count: u32::try_from(needed).unwrap_or(u32::MAX) };
            effects.push(EffectRec { seq, moment: lm, stakeholder: ext, source, kind });
        }
    }
    touched.sort_unstable();
    touched.dedup();
    for people in touched.chunk_by(|a, b| a.0 == b.0) {
        let currencies: Vec<CurrencyIx> = people.iter().map(|&(_, c)| c).collect();
        follow_balances(live, &program, people[0].0, &currencies, seq, source, &mut effects);
    }
    let mut history = live.resource_mut::<History>();
    insert_into_ledger(&mut history, gains);
    // The insights count what was granted in the weeks of the moments that earned it.
    let mut insights = live.resource_mut::<Insights>();
    for e in &effects {
        insights.effect(&program, e.moment, e.stakeholder, &e.kind);
    }
    let n = effects.len();
    live.resource_mut::<Journal>().extend(effects);
    let mut queue = live.resource_mut::<PublishQueue>();
    for (e, _) in touched {
        queue.push(e);
    }
    n
}

/// After an additive grant to `entity` of `currencies`: its level follows its balance (up only),
/// and its entries on all-time leaderboards of those currencies follow their balances.
fn follow_balances(
    live: &mut World,
    program: &Program,
    entity: Entity,
    currencies: &[CurrencyIx],
    seq: u64,
    source: Source,
    effects: &mut Vec<EffectRec>,
) {
    let Some(card) = live.get_mut::<Scorecard>(entity) else { return };
    let card = card.into_inner();
    let ext = card.identity.ext;
    if let Some(levels) = &program.levels {
        let balance = card.wallet.balance(levels.currency);
        let reached = levels.reached(balance);
        let slot = card.tally.slot(tally_key::LEVEL);
        for index in slot.b..reached {
            effects.push(EffectRec {
                seq,
                moment: NO_MOMENT,
                stakeholder: ext,
                source,
                kind: Kind::Level { index: index as u32 },
            });
        }
        slot.b = slot.b.max(reached);
    }
    for &c in currencies {
        let balance = card.wallet.balance(c);
        crate::passes::effects::follow_balance(program, &mut card.standing, c, balance, seq);
    }
}

/// Adds `gains` (by moment, in moment order) to the ledger, keeping each moment's entries
/// together: the ledger is rebuilt once, in moment order.
fn insert_into_ledger(history: &mut History, gains: BTreeMap<u32, Vec<LedgerEntry>>) {
    if gains.is_empty() {
        return;
    }
    history.rewrite_ledger(|m, old, ledger| {
        ledger.extend_from_slice(old);
        if let Some(more) = gains.get(&m) {
            ledger.extend_from_slice(more);
        }
    });
}

/// A compensating entry: `delta` points of `currency` given (or, negative, taken back), leaving
/// `balance`.
fn compensation(currency: CurrencyIx, delta: i64, balance: i64) -> Kind {
    if delta > 0 {
        Kind::Points { currency, amount: delta, balance }
    } else {
        Kind::Revoked { currency, amount: -delta, balance }
    }
}

fn rebase(live: &mut OrgWorld, mut new: OrgWorld, pairing: &Pairing, source: Source) -> usize {
    let deltas = point_deltas(live.world(), new.world(), pairing);
    let (lw, nw) = (live.world(), new.world());
    let program = std::sync::Arc::clone(&nw.resource::<ProgramRes>().0);
    let seq = nw.resource::<History>().last_seq;
    let currencies = program.currencies.len();
    let mut effects = Vec::new();
    // Balances as the compensating entries go, from the live ones.
    let mut running: FxHashMap<(u32, u8), i64> = FxHashMap::default();
    let live_balance = |who: u32, c: u8| {
        pairing.people.get(who as usize).and_then(|&(e, _)| lw.get::<Scorecard>(e)).map_or(0, |w| w.wallet.balance(c))
    };
    for &(m, who, currency, delta) in &deltas {
        let balance = running.entry((who, currency)).or_insert_with(|| live_balance(who, currency));
        *balance = crate::bounds::credit(*balance, delta).1;
        effects.push(EffectRec {
            seq,
            moment: m,
            stakeholder: who,
            source,
            kind: compensation(currency, delta, *balance),
        });
    }
    let nd = nw.resource::<Directory>();
    for (who, entry) in nd.entries.iter().enumerate() {
        let who = who as u32;
        let Some(&(live_entity, _)) = pairing.people.get(who as usize) else { continue };
        let new_wallet = nw.get::<Scorecard>(entry.entity).map(|c| &c.wallet);
        // What the per-moment entries did not account for (balances changed otherwise).
        for c in 0..currencies as u8 {
            let target = new_wallet.map_or(0, |w| w.balance(c));
            let now = running.get(&(who, c)).copied().unwrap_or_else(|| live_balance(who, c));
            let delta = target.saturating_sub(now);
            if delta != 0 {
                let kind = compensation(c, delta, target);
                effects.push(EffectRec { seq, moment: NO_MOMENT, stakeholder: who, source, kind });
            }
        }
        let (was, now) = (tally(lw, live_entity), tally(nw, entry.entity));
        let value = |t: Option<&Tally>, key: u32| t.map_or(0, |t| t.value(key));
        for (b, badge) in program.badges.iter().enumerate() {
            let key = tally_key::BADGE | b as u32;
            let (before, after) = (value(was, key), value(now, key));
            let b = b as u16;
            let tiered = matches!(badge.shape, crate::ruleset::program::BadgeShape::Tiers(_));
            let mut emit = |kind| effects.push(EffectRec { seq, moment: NO_MOMENT, stakeholder: who, source, kind });
            match (tiered, after.cmp(&before)) {
                (_, std::cmp::Ordering::Equal) => {}
                (true, std::cmp::Ordering::Greater) => {
                    for t in before..after {
                        emit(Kind::Badge { badge: b, tier: Some(t as u8), count: (t + 1) as u32 });
                    }
                }
                (true, std::cmp::Ordering::Less) => {
                    for t in (after..before).rev() {
                        emit(Kind::BadgeRevoked { badge: b, tier: Some(t as u8) });
                    }
                }
                (false, std::cmp::Ordering::Greater) => {
                    emit(Kind::Badge { badge: b, tier: None, count: u32::try_from(after).unwrap_or(u32::MAX) })
                }
                (false, std::cmp::Ordering::Less) => emit(Kind::BadgeRevoked { badge: b, tier: None }),
            }
        }
        let (before, after) = (value(was, tally_key::LEVEL), value(now, tally_key::LEVEL));
        for index in before..after {
            effects.push(EffectRec {
                seq,
                moment: NO_MOMENT,
                stakeholder: who,
                source,
                kind: Kind::Level { index: index as u32 },
            });
        }
    }
    let n = effects.len();
    let mut journal = new.world_mut().resource_mut::<Journal>();
    journal.records.clear();
    journal.extend(effects);
    *live = new;
    n
}
