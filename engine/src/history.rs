//! What the world remembers of past records: the ids of accepted moments (idempotency) and the
//! ledger of what each moment earned (retraction).
//!
//! This is history, not stakeholder state: it grows with the number of moments and is left out
//! of the memory-per-stakeholder figure. The durable store keeps the log; this is the in-memory
//! index over it.

use bevy_ecs::prelude::*;

use crate::intern::Interner;
use crate::ruleset::program::CurrencyIx;

/// One thing a moment earned, so that a retraction can reverse it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Earned {
    Points { currency: CurrencyIx, amount: i64 },
    Badge { badge: u16, tier: Option<u8> },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LedgerEntry {
    pub moment: u32,
    pub entity: Entity,
    pub earned: Earned,
}

/// Per moment: where its ledger entries are, and whether it was retracted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MomentInfo {
    pub ledger_start: u32,
    pub ledger_len: u32,
    pub retracted: bool,
}

#[derive(Resource, Debug, Default)]
pub struct History {
    /// Moment ids, in acceptance order.
    pub ids: Interner,
    /// Indexed by moment id.
    pub info: Vec<MomentInfo>,
    pub ledger: Vec<LedgerEntry>,
    /// The sequence number of the last accepted record.
    pub last_seq: u64,
    /// The latest `at` of any accepted moment (event time: what "now" means for reads).
    pub latest_at: Option<i64>,
}

impl History {
    /// Registers a moment id. `None` if it was seen before (a duplicate).
    pub fn accept(&mut self, id: &str) -> Option<u32> {
        self.accept_hashed(id, Interner::hash(id))
    }

    /// [`History::accept`] with `hash == Interner::hash(id)`.
    pub fn accept_hashed(&mut self, id: &str, hash: u64) -> Option<u32> {
        let (m, new) = self.ids.intern_hashed(id, hash);
        if !new {
            return None;
        }
        self.info.push(MomentInfo::default());
        Some(m)
    }

    /// Records that `moment` earned `earned` for `entity`. Entries of one moment are contiguous
    /// because the effects pass handles moments in order.
    pub fn record(&mut self, moment: u32, entity: Entity, earned: Earned) {
        let at = self.ledger.len() as u32;
        let info = &mut self.info[moment as usize];
        if info.ledger_len == 0 {
            info.ledger_start = at;
        }
        info.ledger_len += 1;
        self.ledger.push(LedgerEntry { moment, entity, earned });
    }

    pub fn earned(&self, moment: u32) -> &[LedgerEntry] {
        let i = self.info[moment as usize];
        &self.ledger[i.ledger_start as usize..(i.ledger_start + i.ledger_len) as usize]
    }
}
