//! The native rules pass: for every scored moment, in order, evaluate the declarative rules and
//! emit award requests: which stakeholder, which currency, how much, or withheld by a cap.
//!
//! Owns the [`Caps`](crate::components::Caps) and [`Seen`] parts of a [`Scorecard`] (first
//! contact with a counterpart, a channel, a team), and sets [`MomentRec::first`]. Touches no
//! balance: the effects pass applies awards, so that everything downstream sees them in moment
//! order whatever the batch boundaries.

use bevy_ecs::prelude::*;
use rand::{RngExt, SeedableRng};

use crate::batch::{Action, Award, AwardSource, Awards, Batch, Hold, MomentRec, first};
use crate::components::{Scorecard, Seen, seen_tag};
use crate::prefetch::{AHEAD, prefetch_items};
use crate::resources::ProgramRes;
use crate::ruleset::program::{Program, Rule, Target};

pub fn score(
    program: Res<ProgramRes>,
    mut batch: ResMut<Batch>,
    mut awards: ResMut<Awards>,
    mut q: Query<&mut Scorecard>,
) {
    let p = &*program.0;
    let batch = &mut *batch;
    awards.0.clear();
    for ix in batch.chunk.clone() {
        if let Some(ahead) = batch.records.get(ix + AHEAD).filter(|a| a.action == Action::Score) {
            prefetch_ahead(&q, ahead);
        }
        let m = &mut batch.records[ix];
        if m.action != Action::Score {
            continue;
        }
        let mut both = pair(&mut q, m);
        if p.tracks_seen
            && let Some(actor) = &mut both[0]
        {
            mark_firsts(m, &mut actor.seen);
        }
        let attrs = batch.source.attrs(m);
        for &r in p.rules_by_kind.get(m.kind) {
            let rule = &p.rules[r as usize];
            if rule.paused || !rule.matcher.matches(m, attrs) {
                continue;
            }
            if let Some(chance) = rule.chance
                && !draw(p, m.seq, r, chance)
            {
                continue;
            }
            fire(rule, r, ix as u32, m, &mut both, &mut awards.0);
        }
    }
}

/// Starts loading the cap counters of `m`'s stakeholders, and where [`mark_firsts`] will look
/// up what the actor has met.
fn prefetch_ahead(q: &Query<&mut Scorecard>, m: &MomentRec) {
    if let Ok(actor) = q.get(m.actor) {
        prefetch_items(&actor.caps.0);
        let channel = (seen_tag::CHANNEL, m.channel.0);
        match m.counterpart_no {
            Some(cp) => {
                actor.seen.prefetch(&[(seen_tag::COUNTERPART, cp), (seen_tag::TEAM, m.counterpart_team.0), channel])
            }
            None => actor.seen.prefetch(&[channel]),
        }
    }
    if let Some(Ok(counterpart)) = m.counterpart.map(|c| q.get(c)) {
        prefetch_items(&counterpart.caps.0);
    }
}

/// The actor's and the counterpart's rule state, fetched together once per moment.
type Pair<'a> = [Option<&'a mut Scorecard>; 2];

fn pair<'a>(q: &'a mut Query<&mut Scorecard>, m: &MomentRec) -> Pair<'a> {
    match m.counterpart {
        None => [q.get_mut(m.actor).ok().map(Mut::into_inner), None],
        // Never the same entity: a moment's counterpart differs from its actor.
        Some(c) => match q.get_many_mut([m.actor, c]) {
            Ok([a, b]) => [Some(a.into_inner()), Some(b.into_inner())],
            Err(_) => [None, None],
        },
    }
}

/// Records what the actor meets for the first time: the counterpart, the channel, and the
/// counterpart's team.
pub(crate) fn mark_firsts(m: &mut MomentRec, seen: &mut Seen) {
    let mut bits = 0;
    if let Some(cp) = m.counterpart_no {
        if seen.insert(seen_tag::COUNTERPART, cp) {
            bits |= first::COUNTERPART;
        }
        if !m.counterpart_team.is_none()
            && m.counterpart_team != m.actor_team
            && seen.insert(seen_tag::TEAM, m.counterpart_team.0)
        {
            bits |= first::TEAM;
        }
    }
    if seen.insert(seen_tag::CHANNEL, m.channel.0) {
        bits |= first::CHANNEL;
    }
    m.first = bits;
}

/// The chance draw of rule `rule` on the moment with sequence `seq`: seeded from (organisation
/// seed, sequence, a hash of the rule's id), never from the clock, so a replay draws the same
/// and reordering the rule set changes no draw.
fn draw(p: &Program, seq: u64, rule: u16, chance: f64) -> bool {
    let seed = splitmix(p.seed ^ splitmix(seq) ^ p.rules[rule as usize].id_hash);
    rand_pcg::Pcg64Mcg::seed_from_u64(seed).random_bool(chance)
}

pub(crate) fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn fire(rule: &Rule, r: u16, ix: u32, m: &MomentRec, both: &mut Pair, out: &mut Vec<Award>) {
    let multiplier = rule.multiplier(m.at);
    let source = AwardSource::Rule(r);
    for (target, state) in [Target::Actor, Target::Counterpart].into_iter().zip(both.iter_mut()) {
        let to = match (target, m.counterpart) {
            (Target::Actor, _) => m.actor,
            (Target::Counterpart, Some(c)) => c,
            (Target::Counterpart, None) => continue,
        };
        let awards = rule.awards_to(target);
        if awards.is_empty() {
            continue;
        }
        // Caps count per stakeholder: one firing toward `to`, and its points together.
        let mut slot = match (rule.cap, state) {
            (Some(cap), Some(card)) => Some((cap, card.caps.slot(rule.cap_slot, m.window(cap.per)))),
            _ => None,
        };
        let (allowed, mut points_left) = match &slot {
            Some((cap, slot)) => (
                cap.times.is_none_or(|max| slot.times < max),
                cap.points.map_or(i64::MAX, |max| (max - slot.points).max(0)),
            ),
            None => (true, i64::MAX),
        };
        let mut granted_total = 0;
        for a in awards {
            let (amount, beyond) = crate::bounds::split_award(a.amount(m.value, multiplier));
            if beyond != 0 {
                let over =
                    Award { record: ix, to, currency: a.currency, amount: beyond, source, withheld: Hold::Bound };
                out.push(over);
            }
            if amount == 0 {
                continue;
            }
            // Penalties (negative awards) are never capped.
            let granted = if amount < 0 {
                amount
            } else if allowed {
                amount.min(points_left)
            } else {
                0
            };
            if amount > 0 {
                points_left -= granted;
                granted_total += granted;
            }
            if granted != 0 {
                out.push(Award { record: ix, to, currency: a.currency, amount: granted, source, withheld: Hold::No });
            }
            if granted < amount {
                out.push(Award {
                    record: ix,
                    to,
                    currency: a.currency,
                    amount: amount - granted,
                    source,
                    withheld: Hold::Cap,
                });
            }
        }
        if let (Some((_, slot)), true) = (&mut slot, allowed) {
            slot.times = slot.times.saturating_add(1);
            slot.points = slot.points.saturating_add(granted_total);
        }
    }
}
