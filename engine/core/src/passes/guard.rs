//! The cheat guard pass: holds back moments that come too fast (more than N watched moments per
//! window) or repeat too soon (the same kind, channel and counterpart within a minimum gap).
//! A held-back moment is accepted and logged, and scores nothing.
//!
//! Owns the [`GuardState`](crate::components::GuardState) part of a [`Scorecard`]. Reads the
//! batch; writes only `MomentRec::action`.

use bevy_ecs::prelude::*;

use crate::batch::{Action, Batch, GuardReason};
use crate::components::Scorecard;
use crate::resources::ProgramRes;

pub fn screen(program: Res<ProgramRes>, mut batch: ResMut<Batch>, mut cards: Query<&mut Scorecard>) {
    let Some(guard) = &program.0.guard else { return };
    let batch = &mut *batch;
    for ix in batch.chunk.clone() {
        let m = &mut batch.records[ix];
        if m.action != Action::Score {
            continue;
        }
        let attrs = batch.source.attrs(m);
        if !guard.matcher.matches(m, attrs) {
            continue;
        }
        let Ok(card) = cards.get_mut(m.actor) else { continue };
        let g = &mut card.into_inner().guard;
        let key = moment_key(m.kind.0, m.channel.0, m.counterpart_no.unwrap_or(u32::MAX));
        if let Some(gap) = guard.min_gap_seconds
            && g.last_key == key
            && m.at >= g.last_at
            && m.at.saturating_sub(g.last_at) < i64::from(gap)
        {
            m.action = Action::Guarded(GuardReason::Gap);
            continue;
        }
        if let Some((max, per)) = guard.max_moments {
            let w = m.window(per);
            // A late moment counts against the current window; windows never move backwards.
            if w > g.window || g.count == 0 {
                g.window = g.window.max(w);
                g.count = 0;
            }
            if g.count >= max {
                m.action = Action::Guarded(GuardReason::Rate);
                continue;
            }
        }
        g.count = g.count.saturating_add(1);
        g.last_key = key;
        g.last_at = m.at;
    }
}

/// A 32-bit digest of what makes two moments "the same" for the minimum gap.
fn moment_key(kind: u32, channel: u32, counterpart: u32) -> u32 {
    let mut h = u64::from(kind).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    h ^= u64::from(channel).wrapping_add(0x632B_E59B_D9B4_E019).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h ^= u64::from(counterpart).wrapping_add(0x94D0_49BB_1331_11EB).wrapping_mul(0x94D0_49BB_1331_11EB);
    (h ^ (h >> 32)) as u32
}
