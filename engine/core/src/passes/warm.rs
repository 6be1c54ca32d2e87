//! The first step over a chunk of records: every scorecard the chunk touches starts loading
//! before any pass needs one ([`warm`]).
//!
//! **Owns** nothing; reads the batch and the scorecards' addresses, writes nothing.

use bevy_ecs::prelude::{Query, Res};

use crate::batch::{Action, Batch};
use crate::components::Scorecard;
use crate::prefetch::prefetch;

/// The first step over a chunk of records: starts loading the scorecard of every stakeholder
/// the chunk touches, before any pass needs one.
///
/// Why a loop of its own: finding a scorecard's row is a read of bevy's entity table, which
/// misses the cache as often as the row itself, and the row's address depends on it. Inside a
/// pass, each such miss stalls that pass's work on the records before it; in a loop that does
/// nothing else, the reads of many records are in flight at once. The guard pass spent about 8 %
/// of a replay's scoring thread waiting on them, and `hot_loop` ran 5 % faster without that
/// (docs/performance.md).
pub fn warm(batch: Res<Batch>, cards: Query<&mut Scorecard>) {
    for m in batch.records[batch.chunk.clone()].iter().filter(|m| m.action != Action::Retract) {
        for e in std::iter::once(m.actor).chain(m.counterpart) {
            if let Ok(card) = cards.get(e) {
                // Its two lines.
                prefetch(&card.guard);
                prefetch(&card.wallet);
            }
        }
    }
}
