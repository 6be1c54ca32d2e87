//! The per-batch buffers the passes share: resolved moments in, award requests between the
//! rules and the effects passes. Reused from batch to batch, so scoring allocates nothing per
//! moment once the buffers have grown.

use std::sync::Arc;

use bevy_ecs::prelude::*;
use plaudit_sdk::{Attrs, Record};

use crate::ids::Sym;
use crate::ruleset::program::{CurrencyIx, Window};

/// What a resolved record asks the passes to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Score a contact moment.
    Score,
    /// A contact moment the cheat guard held back: accepted, scores nothing.
    Guarded(GuardReason),
    /// Reverse what the moment `MomentRec::moment` earned.
    Retract,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuardReason {
    /// More watched moments in the window than the guard allows.
    Rate,
    /// The same moment again sooner than the minimum gap.
    Gap,
}

impl GuardReason {
    pub fn describe(self) -> &'static str {
        match self {
            GuardReason::Rate => "too many moments in the guard window",
            GuardReason::Gap => "the same moment again too soon",
        }
    }
}

/// Bits of [`MomentRec::first`], set by the rules pass.
pub mod first {
    pub const COUNTERPART: u8 = 1;
    pub const CHANNEL: u8 = 2;
    pub const TEAM: u8 = 4;
}

/// A record resolved for scoring: ids interned, entities found, windows computed.
#[derive(Clone, Copy, Debug)]
pub struct MomentRec {
    pub seq: u64,
    /// The moment's id in the history's interner.
    pub moment: u32,
    /// Index of the moment in [`Batch::source`] (attributes); unused for retractions.
    pub input: u32,
    pub action: Action,
    pub actor: Entity,
    pub counterpart: Option<Entity>,
    /// The actor's and the counterpart's numbers in the directory (what plugins see).
    pub actor_no: u32,
    pub counterpart_no: Option<u32>,
    pub kind: Sym,
    pub channel: Sym,
    pub actor_kind: Sym,
    pub actor_team: Sym,
    pub counterpart_kind: Sym,
    pub counterpart_team: Sym,
    /// Unix seconds.
    pub at: i64,
    /// Index of the hour, day, week and month containing `at` (see [`Window`]).
    pub windows: [i32; 4],
    pub value: Option<f64>,
    /// What was met for the first time ([`first`] bits).
    pub first: u8,
}

impl MomentRec {
    /// A retraction of the moment with history id `moment`: only `seq` and `moment` matter, the
    /// passes other than the effects pass skip it.
    pub fn retraction(seq: u64, moment: u32) -> MomentRec {
        MomentRec {
            seq,
            moment,
            input: 0,
            action: Action::Retract,
            actor: Entity::PLACEHOLDER,
            counterpart: None,
            actor_no: 0,
            counterpart_no: None,
            kind: Sym::NONE,
            channel: Sym::NONE,
            actor_kind: Sym::NONE,
            actor_team: Sym::NONE,
            counterpart_kind: Sym::NONE,
            counterpart_team: Sym::NONE,
            at: 0,
            windows: [0; 4],
            value: None,
            first: 0,
        }
    }

    pub fn window(&self, w: Window) -> i32 {
        self.windows[w as usize]
    }
}

/// The batch being scored.
#[derive(Resource, Debug, Default)]
pub struct Batch {
    pub records: Vec<MomentRec>,
    /// The records as received.
    pub source: Source,
    /// Where each arrival's records begin in `records` ([`crate::resolve::Arrival`]), in order,
    /// the first at 0: plugin calls never span two.
    pub arrivals: Vec<u32>,
    /// The plugin calls of the batch, as ranges of `records`: each arrival's records, [`CHUNK`]
    /// at a time from its first ([`Batch::plan_calls`]).
    pub calls: Vec<std::ops::Range<u32>>,
    /// The records this run of the passes scores: [`crate::world::OrgWorld::ingest`] runs them
    /// over a batch a chunk at a time, whole calls of at most [`CHUNK`] records together.
    pub chunk: std::ops::Range<usize>,
    /// The calls (indexes into `calls`) that make up `chunk`.
    pub chunk_calls: std::ops::Range<usize>,
}

impl Batch {
    /// Plans the batch's plugin calls ([`Batch::calls`]) and returns the chunks the passes run
    /// over: consecutive whole calls, at most [`CHUNK`] records each. With one arrival the
    /// chunks are the calls, [`CHUNK`] records at a time; with many small ones (a replay of
    /// small group commits) several calls share a chunk, so that the passes still run over
    /// hundreds of records at once.
    ///
    /// A retraction ends its call and its chunk: the passes before the effects pass (the rules'
    /// first-time flags above all) then see what the retraction changed, as they would had it
    /// come alone, so a replay that scores many arrivals as one batch agrees with live scoring.
    pub fn plan_calls(&mut self) -> Vec<Chunk> {
        let n = self.records.len() as u32;
        self.calls.clear();
        let after_retractions =
            self.records.iter().enumerate().filter(|(_, r)| r.action == Action::Retract).map(|(i, _)| i as u32 + 1);
        let mut later: Vec<u32> =
            self.arrivals.iter().copied().chain(after_retractions).filter(|&s| s > 0 && s < n).collect();
        later.sort_unstable();
        later.dedup();
        let mut starts = std::iter::once(0).chain(later).peekable();
        while let Some(start) = starts.next() {
            let end = starts.peek().copied().unwrap_or(n);
            let mut from = start;
            while from < end {
                let to = end.min(from + CHUNK as u32);
                self.calls.push(from..to);
                from = to;
            }
        }
        let mut chunks: Vec<Chunk> = Vec::new();
        for (i, call) in self.calls.iter().enumerate() {
            let call = call.start as usize..call.end as usize;
            match chunks.last_mut() {
                Some(chunk)
                    if call.end - chunk.records.start <= CHUNK
                        && self.records.get(chunk.records.end - 1).is_none_or(|r| r.action != Action::Retract) =>
                {
                    chunk.records.end = call.end;
                    chunk.calls.end = i + 1;
                }
                _ => chunks.push(Chunk { records: call, calls: i..i + 1 }),
            }
        }
        chunks
    }

    /// Makes `chunk` the one the passes run over next.
    pub fn select(&mut self, chunk: Chunk) {
        self.chunk = chunk.records;
        self.chunk_calls = chunk.calls;
    }

    /// The plugin calls within the current chunk.
    pub fn calls_in_chunk(&self) -> impl Iterator<Item = std::ops::Range<u32>> + '_ {
        self.calls[self.chunk_calls.clone()].iter().cloned()
    }
}

/// A run of the passes: consecutive records, and the whole plugin calls they make up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chunk {
    /// The records, as indexes into [`Batch::records`].
    pub records: std::ops::Range<usize>,
    /// The calls, as indexes into [`Batch::calls`].
    pub calls: std::ops::Range<usize>,
}

/// A batch's records as received, shared with the log step, which stores them while they are
/// scored. The passes read only moments' attributes here ([`Source::attrs`]).
#[derive(Debug, Default)]
pub struct Source(pub Arc<Vec<Record>>);

/// What [`Source::attrs`] answers for a record that is not a moment (never asked).
static NO_ATTRS: Attrs = Attrs::new();

impl Source {
    /// The attributes of moment `m` as received.
    pub fn attrs(&self, m: &MomentRec) -> &Attrs {
        match self.0.get(m.input as usize) {
            Some(Record::Moment(moment)) => &moment.attrs,
            _ => &NO_ATTRS,
        }
    }
}

/// Records the passes score in one run. A pass fetches a stakeholder's scorecard (two cache
/// lines and the heap blocks they point to) from memory; the passes after it find it in cache
/// only if few records come between, so they take a batch a chunk at a time: the four passes
/// over 512 records, then over the next 512. As many as a plugin call takes, so that plugins
/// are called as often as over the whole batch.
pub const CHUNK: usize = 512;

/// Where an award came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AwardSource {
    Rule(u16),
    /// The organisation's plugin in this slot.
    Plugin(u16),
}

/// Whether an award is held back, and by what.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hold {
    No,
    /// The cap of the award's rule.
    Cap,
    /// A plugin withheld the moment's native awards; the reason is [`PluginActs::reasons`]'s.
    Plugin(u32),
    /// The part of an award computed beyond [`crate::bounds::MAX_AWARD`].
    Bound,
}

/// An award request from a rule (or a plugin) for the effects pass to apply.
#[derive(Clone, Copy, Debug)]
pub struct Award {
    /// Index of the record in the batch.
    pub record: u32,
    pub to: Entity,
    pub currency: CurrencyIx,
    pub amount: i64,
    pub source: AwardSource,
    /// Held back: reported, not applied.
    pub withheld: Hold,
}

/// Award requests of the batch, in record order.
#[derive(Resource, Debug, Default)]
pub struct Awards(pub Vec<Award>);

/// What plugins asked for besides points, for the effects pass to apply in record order.
#[derive(Resource, Debug, Default)]
pub struct PluginActs {
    pub acts: Vec<PluginAct>,
    /// Texts of [`Hold::Plugin`] reasons, already naming the plugin.
    pub reasons: Vec<Box<str>>,
}

#[derive(Clone, Debug)]
pub struct PluginAct {
    /// Index of the record in the batch.
    pub record: u32,
    pub to: Entity,
    pub plugin: u16,
    pub what: PluginWhat,
}

#[derive(Clone, Debug)]
pub enum PluginWhat {
    /// Grant this (metric-less) badge.
    Badge(u16),
    Custom(Box<(String, plaudit_sdk::Attrs)>),
}
