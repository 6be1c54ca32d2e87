//! What the world remembers of past records: the ids of accepted moments (idempotency) and the
//! ledger of what each moment earned (retraction).
//!
//! Each ledger entry names what gave it by an [`Origin`] (a rule, a badge, a challenge, a
//! plugin, an application to history), interned once, so that a stakeholder's history
//! ([`crate::insights::people`]) still says why after the rule set that gave it was replaced.
//!
//! This is history, not stakeholder state: it grows with the number of moments and is left out
//! of the memory-per-stakeholder figure. The durable store keeps the log; this is the in-memory
//! index over it. It is kept in blocks of [`BLOCK`] moments ([`crate::chunks`]), each with the
//! ledger entries of its own moments, so that a snapshot shares the full blocks rather than
//! copying a history that only grows.

use std::sync::Arc;

use bevy_ecs::prelude::*;

use crate::chunks::{BLOCK, Block, Chunked, split};
use rustc_hash::FxHashMap;

use crate::application::Mode;
use crate::fingerprint::Fingerprint;
use crate::intern::Interner;
use crate::journal::Source;
use crate::ruleset::program::{CurrencyIx, Program};

/// One thing a moment earned: points and badges, which a retraction reverses, and the level
/// reached and the challenge window completed, which stay (they are records of activity).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Earned {
    Points {
        currency: CurrencyIx,
        amount: i64,
    },
    Badge {
        badge: u16,
        tier: Option<u8>,
    },
    /// Level `index` of the rule set's levels reached.
    Level {
        index: u32,
    },
    /// The window of the challenge named by the entry's origin completed.
    Completed {
        window: i32,
    },
}

/// What a moment earned for one stakeholder, named by its directory number, and what gave it
/// (an index into [`History::origins`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LedgerEntry {
    pub stakeholder: u32,
    pub origin: u16,
    /// Given by a challenge's completion (the completion itself, its rewards, its badge and
    /// what they led to): a retraction takes these back only when the completion is no longer
    /// reached ([`crate::passes::effects::retraction`]), not with the moment that happened to complete it.
    pub completion: bool,
    pub earned: Earned,
}

/// The stakeholder of a ledger entry taken back since (a completion revoked): it names no
/// one, so that nothing reads it as earned and no retraction reverses it twice.
pub const VOID: u32 = u32::MAX;

/// What gave a ledger entry, by name: it outlives the rule set in force when it was given.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Origin {
    Rule(Box<str>),
    Badge(Box<str>),
    Challenge(Box<str>),
    Streak(Box<str>),
    Level,
    /// The plugin in this slot (slots keep their plugin's name for good).
    Plugin(u16),
    /// Rule-set version `version` applied to history.
    History {
        version: u32,
        mode: Mode,
    },
    /// Anything else (more origins than an index holds).
    Other,
}

impl Origin {
    /// The origin of an effect of `source` under program `p`.
    pub fn of(source: Source, p: &Program) -> Origin {
        let id = |s: &str| Box::from(s);
        match source {
            Source::Rule(r) => p.rules.get(r as usize).map_or(Origin::Other, |r| Origin::Rule(id(&r.id))),
            Source::Badge(b) => p.badges.get(b as usize).map_or(Origin::Other, |b| Origin::Badge(id(&b.id))),
            Source::Challenge(c) => {
                p.challenges.get(c as usize).map_or(Origin::Other, |c| Origin::Challenge(id(&c.id)))
            }
            Source::Streak(s) => p.streaks.get(s as usize).map_or(Origin::Other, |s| Origin::Streak(id(&s.id))),
            Source::Level => Origin::Level,
            Source::Plugin(slot) => Origin::Plugin(slot),
            Source::History { version, mode } => Origin::History { version, mode },
            Source::Guard | Source::Retraction | Source::Erasure => Origin::Other,
        }
    }
}

/// The origins ledger entries name, each once; and, for the rule set in force, which index each
/// effect source has (a lookup per entry in the scoring loop, not a string).
#[derive(Clone, Debug, Default)]
pub struct Origins {
    names: Vec<Origin>,
    index: FxHashMap<Origin, u16>,
    /// By source kind, then the source's index in the rule set in force ([`NOT_YET`] for one
    /// not looked up): a vector index per ledger entry.
    of_source: [Vec<u16>; 6],
}

/// An [`Origins::of_source`] slot not filled yet.
const NOT_YET: u16 = u16::MAX;

impl Origins {
    /// The index of `source`'s origin under program `p`, interned on first use.
    #[inline]
    pub fn of(&mut self, source: Source, p: &Program) -> u16 {
        let (kind, at) = match source {
            Source::Rule(i) => (0, i),
            Source::Badge(i) => (1, i),
            Source::Challenge(i) => (2, i),
            Source::Streak(i) => (3, i),
            Source::Plugin(i) => (4, i),
            Source::Level => (5, 0),
            // Rare (an application to history): interned each time.
            Source::History { .. } | Source::Guard | Source::Retraction | Source::Erasure => {
                return self.intern(Origin::of(source, p));
            }
        };
        let slots = &mut self.of_source[kind];
        if let Some(&i) = slots.get(at as usize).filter(|&&i| i != NOT_YET) {
            return i;
        }
        let i = self.intern(Origin::of(source, p));
        let slots = &mut self.of_source[kind];
        if slots.len() <= at as usize {
            slots.resize(at as usize + 1, NOT_YET);
        }
        slots[at as usize] = i;
        i
    }

    /// The index of `origin`, interned on first use; the last index stands for
    /// [`Origin::Other`] once every other one is taken.
    pub fn intern(&mut self, origin: Origin) -> u16 {
        if let Some(&i) = self.index.get(&origin) {
            return i;
        }
        let Ok(i) = u16::try_from(self.names.len()) else { return u16::MAX };
        let origin = if i == u16::MAX { Origin::Other } else { origin };
        self.names.push(origin.clone());
        self.index.insert(origin, i);
        i
    }

    /// The origin at `i` ([`Origin::Other`] for one never interned).
    pub fn get(&self, i: u16) -> &Origin {
        self.names.get(i as usize).unwrap_or(&Origin::Other)
    }

    /// Every origin, by index (for a snapshot).
    pub fn names(&self) -> &[Origin] {
        &self.names
    }

    /// The origins a snapshot listed, by index.
    pub fn restore(names: Vec<Origin>) -> Origins {
        let index = names.iter().enumerate().map(|(i, o)| (o.clone(), i as u16)).collect();
        Origins { names, index, of_source: Default::default() }
    }

    /// Sources are indexes into one rule set: a publication forgets them (the origins stay).
    pub fn forget_program(&mut self) {
        self.of_source.iter_mut().for_each(Vec::clear);
    }
}

/// Per moment: where its ledger entries are in its block, whether it was retracted, and its
/// content's fingerprint (to tell a resend from another moment under the same id).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MomentInfo {
    pub ledger_start: u32,
    pub ledger_len: u32,
    pub retracted: bool,
    pub print: Fingerprint,
    /// Which of the metrics, streaks and challenges listed for the moment's kind its attributes
    /// matched, by position in the kind's lists ([`crate::passes::effects::retraction::Activity`]): a
    /// retraction recounts the actor's activity without the attributes, which are not kept.
    pub activity: u64,
}

/// What became of a moment's id offered to the history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accepted {
    /// A new moment, with its number.
    New(u32),
    /// The same moment again (same id, same content): a duplicate.
    Duplicate,
    /// The id of an accepted moment with other content: the first field that differs, if the
    /// fingerprints can tell.
    Conflict(Option<&'static str>),
}

/// [`BLOCK`] moments (fewer in the last block) and what they earned.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Moments {
    info: Vec<MomentInfo>,
    ledger: Vec<LedgerEntry>,
}

impl Block for Moments {
    fn items(&self) -> usize {
        self.info.len()
    }

    fn next(&self) -> Moments {
        // A quarter more than the last block's ledger: rarely outgrown (a grown ledger is a
        // copy of a megabyte), and the room left over is given back as the block freezes.
        let ledger = self.ledger.len() + self.ledger.len() / 4;
        Moments { info: Vec::with_capacity(BLOCK), ledger: Vec::with_capacity(ledger) }
    }

    fn freeze(&mut self) {
        self.ledger.shrink_to_fit();
    }
}

impl Moments {
    /// Moments and ledger entries as a snapshot decodes them, not laid out in blocks: only to
    /// be read in order, to restore a history ([`History::restore_moment`]).
    pub fn loose(info: Vec<MomentInfo>, ledger: Vec<LedgerEntry>) -> Moments {
        Moments { info, ledger }
    }

    /// The block's moments, in order.
    pub fn info(&self) -> &[MomentInfo] {
        &self.info
    }

    /// What the block's moments earned, moment after moment.
    pub fn ledger(&self) -> &[LedgerEntry] {
        &self.ledger
    }

    fn earned(&self, i: usize) -> &[LedgerEntry] {
        let Some(info) = self.info.get(i) else { return &[] };
        let start = info.ledger_start as usize;
        self.ledger.get(start..start + info.ledger_len as usize).unwrap_or_default()
    }
}

#[derive(Resource, Debug, Default)]
pub struct History {
    /// Moment ids, in acceptance order.
    pub ids: Interner,
    /// By moment id.
    moments: Chunked<Moments>,
    /// The sequence number of the last accepted record.
    pub last_seq: u64,
    /// The latest `at` of any accepted moment (event time: what "now" means for reads).
    pub latest_at: Option<i64>,
    /// What gave the ledger's entries.
    pub origins: Origins,
}

impl History {
    /// Registers a moment id whose content has fingerprint `print`.
    pub fn accept(&mut self, id: &str, print: Fingerprint) -> Accepted {
        self.accept_hashed(id, Interner::hash(id), print)
    }

    /// [`History::accept`] with `hash == Interner::hash(id)`.
    pub fn accept_hashed(&mut self, id: &str, hash: u64, print: Fingerprint) -> Accepted {
        let (m, new) = self.ids.intern_hashed(id, hash);
        if !new {
            let (k, i) = split(m as usize);
            let held = self.moments.block(k).and_then(|b| b.info.get(i)).map_or(print, |info| info.print);
            return if held.content == print.content {
                Accepted::Duplicate
            } else {
                Accepted::Conflict(held.first_difference(&print))
            };
        }
        self.moments.open().info.push(MomentInfo { print, ..MomentInfo::default() });
        Accepted::New(m)
    }

    /// Moments accepted.
    pub fn len(&self) -> usize {
        self.moments.len()
    }

    pub fn is_empty(&self) -> bool {
        self.moments.is_empty()
    }

    /// Whether `moment` was retracted (false for an unknown one).
    pub fn retracted(&self, moment: u32) -> bool {
        let (k, i) = split(moment as usize);
        self.moments.block(k).and_then(|b| b.info.get(i)).is_some_and(|i| i.retracted)
    }

    /// Marks `moment` retracted.
    pub fn retract(&mut self, moment: u32) {
        let (k, i) = split(moment as usize);
        if let Some(info) = self.moments.block_mut(k).and_then(|b| b.info.get_mut(i)) {
            info.retracted = true;
        }
    }

    /// Which activity `moment`'s attributes matched (see [`MomentInfo::activity`]).
    pub fn activity(&self, moment: u32) -> u64 {
        let (k, i) = split(moment as usize);
        self.moments.block(k).and_then(|b| b.info.get(i)).map_or(0, |i| i.activity)
    }

    /// Sets which activity `moment`'s attributes matched.
    #[inline]
    pub fn set_activity(&mut self, moment: u32, activity: u64) {
        let (k, i) = split(moment as usize);
        if let Some(info) = self.moments.block_mut(k).and_then(|b| b.info.get_mut(i)) {
            info.activity = activity;
        }
    }

    /// Rewrites every moment's activity: `rewrite(moment, activity)` gives the new one.
    pub fn rewrite_activity(&mut self, mut rewrite: impl FnMut(u32, u64) -> u64) {
        for (k, block) in self.moments.blocks_mut().enumerate() {
            for (i, info) in block.info.iter_mut().enumerate() {
                if info.activity != 0 {
                    info.activity = rewrite((k * BLOCK + i) as u32, info.activity);
                }
            }
        }
    }

    /// Marks the entries `range` of `moment`'s ledger taken back ([`VOID`]); levels stay (they
    /// never drop).
    pub fn void(&mut self, moment: u32, range: std::ops::Range<usize>) {
        let (k, i) = split(moment as usize);
        let Some(block) = self.moments.block_mut(k) else { return };
        let Some(info) = block.info.get(i) else { return };
        let start = info.ledger_start as usize;
        let end = (start + range.end).min(start + info.ledger_len as usize);
        if let Some(entries) = block.ledger.get_mut(start + range.start..end) {
            entries.iter_mut().filter(|e| !matches!(e.earned, Earned::Level { .. })).for_each(|e| e.stakeholder = VOID);
        }
    }

    /// Records that `moment` earned `earned` for `stakeholder`. Entries of one moment are
    /// contiguous because the effects pass handles moments in order.
    #[inline]
    pub fn record(&mut self, moment: u32, stakeholder: u32, origin: u16, completion: bool, earned: Earned) {
        let (k, i) = split(moment as usize);
        let Some(block) = self.moments.block_mut(k) else { return };
        let at = block.ledger.len() as u32;
        let Some(info) = block.info.get_mut(i) else { return };
        if info.ledger_len == 0 {
            info.ledger_start = at;
        }
        info.ledger_len += 1;
        block.ledger.push(LedgerEntry { stakeholder, origin, completion, earned });
    }

    /// [`History::record`] for a moment whose entries are not the last of its block (a
    /// retraction's recount gives a completion to an earlier moment): the block's ledger is
    /// laid out again with the entry after the moment's others. Costs a copy of the block's
    /// ledger; rare.
    pub fn record_late(&mut self, moment: u32, stakeholder: u32, origin: u16, completion: bool, earned: Earned) {
        let (k, target) = split(moment as usize);
        let Some(block) = self.moments.block_mut(k) else { return };
        if target >= block.info.len() {
            return;
        }
        let old = std::mem::take(&mut block.ledger);
        let mut ledger = Vec::with_capacity(old.len() + 1);
        for (i, info) in block.info.iter_mut().enumerate() {
            let start = ledger.len() as u32;
            let range = info.ledger_start as usize..(info.ledger_start + info.ledger_len) as usize;
            ledger.extend_from_slice(old.get(range).unwrap_or_default());
            if i == target {
                ledger.push(LedgerEntry { stakeholder, origin, completion, earned });
            }
            (info.ledger_start, info.ledger_len) = (start, ledger.len() as u32 - start);
        }
        block.ledger = ledger;
    }

    /// What `moment` earned (nothing for an unknown one).
    pub fn earned(&self, moment: u32) -> &[LedgerEntry] {
        let (k, i) = split(moment as usize);
        self.moments.block(k).map_or(&[], |b| b.earned(i))
    }

    /// Rewrites the ledger moment by moment: `rewrite(moment, entries, out)` pushes to `out`
    /// what the moment's entries become.
    pub fn rewrite_ledger(&mut self, mut rewrite: impl FnMut(u32, &[LedgerEntry], &mut Vec<LedgerEntry>)) {
        for (k, block) in self.moments.blocks_mut().enumerate() {
            let old = std::mem::take(&mut block.ledger);
            let mut ledger = Vec::with_capacity(old.len());
            for (i, info) in block.info.iter_mut().enumerate() {
                let start = ledger.len() as u32;
                let range = info.ledger_start as usize..(info.ledger_start + info.ledger_len) as usize;
                rewrite((k * BLOCK + i) as u32, old.get(range).unwrap_or_default(), &mut ledger);
                *info = MomentInfo { ledger_start: start, ledger_len: ledger.len() as u32 - start, ..*info };
            }
            block.ledger = ledger;
        }
    }

    /// Appends a moment as a snapshot describes it: its id must be interned in [`History::ids`]
    /// already, in order.
    pub fn restore_moment(
        &mut self,
        retracted: bool,
        print: Fingerprint,
        activity: u64,
        earned: impl IntoIterator<Item = LedgerEntry>,
    ) {
        let block = self.moments.open();
        let ledger_start = block.ledger.len() as u32;
        block.ledger.extend(earned);
        let ledger_len = block.ledger.len() as u32 - ledger_start;
        block.info.push(MomentInfo { ledger_start, ledger_len, retracted, print, activity });
    }

    /// The blocks of moments as they are now, for a snapshot (full ones shared, not copied).
    pub fn share(&self) -> Vec<Arc<Moments>> {
        self.moments.share()
    }

    /// Bytes in use and bytes held by the moments and the ledger (not the ids).
    pub fn bytes(&self) -> (usize, usize) {
        self.moments.blocks().fold((0, 0), |(used, held), b| {
            (
                used + b.info.len() * size_of::<MomentInfo>() + b.ledger.len() * size_of::<LedgerEntry>(),
                held + b.info.capacity() * size_of::<MomentInfo>() + b.ledger.capacity() * size_of::<LedgerEntry>(),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_moments_ledger_stays_its_own_across_blocks_and_a_share_keeps_what_it_saw() {
        let mut h = History::default();
        let points = |amount| Earned::Points { currency: 0, amount };
        let n = (BLOCK + 3) as u32;
        for m in 0..n {
            assert_eq!(h.accept(&format!("m{m}"), Fingerprint::default()), Accepted::New(m));
            h.record(m, m % 7, 0, false, points(i64::from(m)));
            h.record(m, 9, 1, true, points(1));
        }
        assert_eq!(h.accept("m0", Fingerprint::default()), Accepted::Duplicate, "a duplicate");
        let other = Fingerprint { content: 1, fields: 0xff00 };
        assert_eq!(h.accept("m1", other), Accepted::Conflict(Some("counterpart")), "the same id, other content");
        let shared = h.share();
        h.retract(3);
        h.record(n - 1, 2, 0, false, points(5));
        assert!(h.retracted(3) && !h.retracted(4) && !h.retracted(n + 10));
        assert_eq!(
            h.earned(BLOCK as u32),
            [
                LedgerEntry {
                    stakeholder: (BLOCK as u32) % 7,
                    origin: 0,
                    completion: false,
                    earned: points(BLOCK as i64)
                },
                LedgerEntry { stakeholder: 9, origin: 1, completion: true, earned: points(1) },
            ]
        );
        assert_eq!(h.earned(n - 1).len(), 3);
        assert_eq!(h.share().iter().map(|b| b.ledger().len()).sum::<usize>(), 2 * n as usize + 1);
        assert!(!shared[0].info()[3].retracted, "the share is as it was");
        assert_eq!(shared.iter().map(|b| b.ledger().len()).sum::<usize>(), 2 * n as usize);
        h.rewrite_ledger(|m, old, out| out.extend(old.iter().filter(|_| m % 2 == 0)));
        assert_eq!((h.earned(2).len(), h.earned(3).len()), (2, 0));
    }

    #[test]
    fn an_origin_keeps_its_index_for_good_and_the_last_index_stands_for_any_other() {
        let mut o = Origins::default();
        let (a, b) = (o.intern(Origin::Rule("a".into())), o.intern(Origin::Badge("a".into())));
        assert_eq!((a, b, o.intern(Origin::Rule("a".into()))), (0, 1, 0));
        o.forget_program();
        assert_eq!(
            (o.get(0), o.get(1), o.get(7)),
            (&Origin::Rule("a".into()), &Origin::Badge("a".into()), &Origin::Other)
        );
        for i in 2..u32::from(u16::MAX) + 10 {
            o.intern(Origin::Plugin(i as u16).clone());
            o.intern(Origin::History { version: i, mode: Mode::Additive });
        }
        assert_eq!(o.names().len(), usize::from(u16::MAX) + 1);
        assert_eq!(o.get(u16::MAX), &Origin::Other);
        assert_eq!(o.intern(Origin::Rule("new".into())), u16::MAX, "full: any other");
        assert_eq!(Origins::restore(o.names().to_vec()).intern(Origin::Badge("a".into())), 1);
    }
}
