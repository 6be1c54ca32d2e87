//! Opening an organisation: its latest snapshot restored, if there is a good one, and the log
//! after it replayed, segment by segment as the records arrived, with its changes where they
//! were logged ([`Organisation::open`], [`ReplayOptions`] for the what-ifs and applications to
//! history that replay too).
//!
//! **Owns** reading the log back (pages of whole segments, read ahead on a thread of their own)
//! and what a replay does with the effects it produces.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use plaudit_sdk::Record;

use crate::feed::Feed;
use plaudit_core::ids::{OrgId, Seq};
use plaudit_core::journal::FeedItem;
use plaudit_core::plugins::TimedOutCalls;
use plaudit_core::ruleset::Format;
use plaudit_core::{Arrival, OrgWorld};
use plaudit_store::{Change, LoggedChange, Store, StoreError};

use super::*;

/// Records read from the log per replayed batch.
const REPLAY_BATCH: usize = 4096;

/// How a replay went.
#[derive(Clone, Debug, PartialEq)]
pub struct Replayed {
    /// Records replayed from the log (after the snapshot, if one was restored).
    pub records: u64,
    pub elapsed: Duration,
    /// The snapshot restored, if any.
    pub snapshot: Option<Restored>,
}

/// A snapshot restored: the last record it holds, and the time its restore took.
pub type Restored = (Seq, Duration);

/// How [`Organisation::replay`] rebuilds an organisation.
#[derive(Clone, Copy, Debug)]
pub(super) struct ReplayOptions<'a> {
    /// This rule set in force from the start instead of the logged versions (plugin changes
    /// still apply where they were logged): a what-if, or an application to history.
    pub(super) candidate: Option<(&'a str, Format)>,
    /// The last record replayed; `Seq(u64::MAX)`: the whole log.
    pub(super) until: Seq,
    /// The last change applied, by number; `u64::MAX`: every one up to `until`. An application
    /// to history replayed from the log rebuilds the history as it was when it was made: the
    /// changes logged after it at the same position (an erasure, say) are not yet in it.
    pub(super) changes: u64,
    /// The latest snapshot restored first (if there is one, not beyond `until`).
    pub(super) snapshot: bool,
    /// Plugin calls run under the wall-clock backstop, and the calls it stops are collected:
    /// a replay made to be recorded (an application to history) or thrown away (a what-if).
    /// Otherwise (a replay of the log) fuel bounds each call, and the calls the log records as
    /// stopped fail again without running.
    pub(super) backstop: bool,
    /// Calls stopped by the backstop when this very replay was first made, besides those the
    /// log records for its records: an application to history's, replayed.
    pub(super) recorded: &'a TimedOutCalls,
}

/// No recorded calls (see [`ReplayOptions::recorded`]).
pub(super) static NO_TIMEOUTS: TimedOutCalls = Vec::new();

impl ReplayOptions<'_> {
    /// The whole log as it happened: what opening an organisation replays.
    pub(super) fn log(snapshot: bool) -> ReplayOptions<'static> {
        ReplayOptions {
            candidate: None,
            until: Seq(u64::MAX),
            changes: u64::MAX,
            snapshot,
            backstop: false,
            recorded: &NO_TIMEOUTS,
        }
    }
}

/// Takes into `world` what the log's `changes` record of the wall-clock backstop: the calls it
/// stopped when first scored, which a replay fails again without running.
pub(super) fn record_timeouts(world: &mut OrgWorld, changes: &[LoggedChange]) {
    for c in changes {
        match &c.change {
            Change::PluginCallsTimedOut { name, calls } => world.record_plugin_timeouts(name, calls),
            Change::PluginTimeouts { name, seqs } => world.record_timed_out_moments(name, seqs),
            _ => {}
        }
    }
}

/// What a replay does with the effects it produces.
pub(super) enum Effects<'a> {
    /// Counts them (the feed numbers effects on from there), keeping none.
    Count,
    /// Hands each batch's to the closure, which must drain them.
    Observe(&'a mut dyn FnMut(&mut OrgWorld)),
}

/// A page of the log, as a replay scores it: whole segments, each an arrival.
#[derive(Debug, Default)]
struct Page {
    records: Vec<Record>,
    arrivals: Vec<Arrival>,
    /// The sequence of its last record; `None` for an empty page (the log's end).
    last: Option<Seq>,
}

/// The page of `org`'s log after record `at`: whole segments of about [`REPLAY_BATCH`] records
/// in all, none beyond record `until` (changes come between segments, so `until`, a change's
/// position or the log's end, ends one).
fn read_page(store: &dyn Store, org: &OrgId, at: Seq, until: Seq) -> Result<Page, StoreError> {
    let mut page = Page::default();
    if at >= until {
        return Ok(page);
    }
    let limit = (until.0 - at.0).min(REPLAY_BATCH as u64) as usize;
    for segment in store.read_segments(org, at, limit)? {
        if segment.first > until {
            break;
        }
        let mut records = segment.records;
        records.truncate(usize::try_from(until.0 - segment.first.0 + 1).unwrap_or(usize::MAX));
        page.arrivals.push(Arrival { start: page.records.len(), received: segment.received });
        page.records.extend(records);
        page.last = Some(Seq(at.0 + page.records.len() as u64));
    }
    Ok(page)
}

impl Organisation {
    /// Opens `org`: its latest snapshot, if it has a good one, then every record and change of
    /// its log after it, in order.
    pub fn open(store: Arc<dyn Store>, org: OrgId) -> Result<(Organisation, Replayed), OrgError> {
        Organisation::replay(store, org, ReplayOptions::log(true), &mut |_, _| {}, Effects::Count)
    }

    /// [`Organisation::open`] ignoring snapshots: every record of the log replayed.
    pub fn open_from_start(store: Arc<dyn Store>, org: OrgId) -> Result<(Organisation, Replayed), OrgError> {
        Organisation::replay(store, org, ReplayOptions::log(false), &mut |_, _| {}, Effects::Count)
    }

    /// [`Organisation::open`] with an effects feed keeping the last `capacity` effects, as they were
    /// before the restart: the feed the snapshot restored holds, then the effects of the records
    /// replayed after it (those of the last `capacity` records rendered, older ones only
    /// counted), numbered as they were first. So readers' cursors and webhooks carry on across
    /// a restart; a cursor older than the last `capacity` effects is answered `gone`.
    pub fn open_with_feed(
        store: Arc<dyn Store>,
        org: OrgId,
        capacity: usize,
    ) -> Result<(Organisation, Replayed), OrgError> {
        let feed = Arc::new(Feed::new(capacity));
        let tail_from = store.last_seq(&org)?.0.saturating_sub(capacity as u64);
        let mut start = |effects: u64, kept: Vec<Arc<FeedItem>>| {
            // The snapshot's feed ends at its last effect, numbered without a gap.
            let whole = kept.last().is_some_and(|l| l.id == effects) && kept.windows(2).all(|w| w[1].id == w[0].id + 1);
            let kept = if whole { kept } else { Vec::new() };
            feed.skip(effects - kept.len() as u64);
            feed.push_numbered(kept);
        };
        let mut observe = |w: &mut OrgWorld| {
            let records = w.take_effect_records();
            let old = records.iter().take_while(|r| r.seq <= tail_from).count();
            feed.skip(old as u64);
            feed.push(records[old..].iter().map(|r| (r.seq, w.render(r))));
        };
        let (mut durable, replayed) =
            Organisation::replay(store, org, ReplayOptions::log(true), &mut start, Effects::Observe(&mut observe))?;
        durable.feed = Some(feed);
        Ok((durable, replayed))
    }

    /// Rebuilds `org`'s world from its log, up to record `until`, counting its effects or
    /// handing each replayed batch's to an observer (see [`Effects`]), after telling `start` how
    /// many effects came before the first it will see. With `snapshot`, the latest snapshot (if
    /// any, and not beyond `until`) is restored first. With `candidate`, that rule set is in force from the
    /// start instead of the logged versions (plugin changes still apply where they were
    /// logged): the what-if of [`what_if`].
    pub(super) fn replay(
        store: Arc<dyn Store>,
        org: OrgId,
        options: ReplayOptions,
        start: &mut dyn FnMut(u64, Vec<Arc<FeedItem>>),
        effects: Effects,
    ) -> Result<(Organisation, Replayed), OrgError> {
        let ReplayOptions { candidate, until, changes: last_change, snapshot, backstop, recorded } = options;
        let started = Instant::now();
        let changes = store.changes(&org)?;
        let Some(first) = changes.first() else { return Err(OrgError::Missing(org)) };
        let bad = |c: &LoggedChange, detail: String| OrgError::BadChange { org: org.clone(), number: c.number, detail };
        let restored = match (snapshot, candidate) {
            (true, None) => Organisation::restore(&store, &org, &changes, until)?,
            _ => None,
        };
        let (mut durable, snapshot) = match restored {
            Some((durable, restored)) => (durable, Some(restored)),
            None => {
                let Change::Rules { text, format } = &first.change else {
                    return Err(bad(first, "the first change of a log must be a rule set".to_string()));
                };
                let world = match candidate {
                    Some((text, format)) => first_world(&org, text, format, "candidate rule set")?,
                    None => {
                        first_world(&org, text, *format, "the first rule set").map_err(|e| bad(first, e.to_string()))?
                    }
                };
                let rules = Published { version: 1, text: text.clone(), format: *format, after: first.after };
                (Organisation::new(org, world, store, rules), None)
            }
        };
        // What the clock decided when the records were first scored is in the log: replayed,
        // never recomputed.
        record_timeouts(&mut durable.world, &changes);
        for (name, calls) in recorded {
            durable.world.record_plugin_timeouts(name, calls);
        }
        let mut clear = OrgWorld::clear_effects;
        let observe: &mut dyn FnMut(&mut OrgWorld) = match effects {
            Effects::Count => {
                durable.world.keep_effects(false);
                &mut clear
            }
            Effects::Observe(observe) => observe,
        };
        durable.world.set_backstop(backstop);
        start(durable.effects, std::mem::take(&mut durable.restored_feed));
        let records = durable.advance(&changes, (until, last_change), candidate.is_some(), observe)?;
        durable.world.set_backstop(true);
        if !backstop {
            durable.world.forget_plugin_timeouts();
        }
        durable.world.keep_effects(true);
        Ok((durable, Replayed { records, elapsed: started.elapsed(), snapshot }))
    }

    /// Replays the log's records and changes after the world's, up to record `until` and change
    /// `last_change` (by number); with `candidate`, the rule set in force stays the one the
    /// world started with (no other is published nor applied). Returns the records replayed.
    pub(super) fn advance(
        &mut self,
        changes: &[LoggedChange],
        (until, last_change): (Seq, u64),
        candidate: bool,
        observe: &mut dyn FnMut(&mut OrgWorld),
    ) -> Result<u64, OrgError> {
        let mut records = 0;
        let applied = self.changes;
        for change in changes.iter().filter(|c| c.number > applied) {
            if change.after > until || change.number > last_change {
                break;
            }
            records += self.replay_until(change.after, observe)?;
            if candidate && matches!(change.change, Change::Rules { .. } | Change::History { .. }) {
                self.changes = change.number;
                continue;
            }
            self.apply(change)?;
            observe(&mut self.world);
        }
        records += self.replay_until(until, observe)?;
        Ok(records)
    }

    /// The organisation as its latest snapshot holds it, or `None` to replay from the start:
    /// there is none, it is beyond `until`, or it cannot be used (a failed checksum, another
    /// format, a module missing), which is logged as a warning.
    fn restore(
        store: &Arc<dyn Store>,
        org: &OrgId,
        changes: &[LoggedChange],
        until: Seq,
    ) -> Result<Option<(Organisation, Restored)>, OrgError> {
        let started = Instant::now();
        let (seq, bytes) = match store.latest_snapshot(org) {
            Ok(Some(found)) => found,
            Ok(None) => return Ok(None),
            Err(e @ StoreError::CorruptSnapshot { .. }) => {
                tracing::warn!(org = %org, error = %e, "snapshot not used: replaying the log from the start");
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        if seq > until {
            return Ok(None);
        }
        match Organisation::from_snapshot(store, org, changes, seq, &bytes) {
            Ok(durable) => Ok(Some((durable, (seq, started.elapsed())))),
            Err(e) => {
                tracing::warn!(org = %org, error = %e, "snapshot not used: replaying the log from the start");
                Ok(None)
            }
        }
    }

    fn from_snapshot(
        store: &Arc<dyn Store>,
        org: &OrgId,
        changes: &[LoggedChange],
        seq: Seq,
        bytes: &[u8],
    ) -> Result<Organisation, OrgError> {
        let bad = |detail: String| OrgError::Snapshot { org: org.clone(), detail };
        let stored = plaudit_store::format::decode_snapshot(bytes).map_err(|e| bad(e.to_string()))?;
        if stored.org != org.as_str() || stored.world.seq != seq.0 || stored.changes as usize > changes.len() {
            return Err(bad(format!(
                "it is of organisation {:?} at {} with {} changes; the log is of {org} with {} changes",
                stored.org,
                stored.world.seq,
                stored.changes,
                changes.len()
            )));
        }
        let doc = plaudit_core::ruleset::parse(&stored.rules_text, stored.rules_format, "rule set")?;
        let limits =
            plaudit_core::ruleset::compile::compile(&doc, &mut plaudit_core::intern::Interner::new(), "rule set")?
                .plugin_limits;
        let mut host = None;
        let mut modules = BTreeMap::new();
        let mut plugins = BTreeMap::new();
        for (name, module, after) in &stored.plugins {
            let wasm =
                store.module(module)?.ok_or_else(|| bad(format!("plugin {name}: module {module} is not stored")))?;
            let loaded = load_module(&mut host, &limits, name, &wasm)?;
            modules.insert(name.clone(), Arc::new(loaded));
            plugins.insert(name.clone(), Installed { module: module.clone(), after: Seq(*after) });
        }
        let world = OrgWorld::restore(stored.world, &doc, &mut |name| modules.get(name).cloned())
            .map_err(|e| bad(e.to_string()))?;
        let rules = Published {
            version: stored.rules_version,
            text: stored.rules_text,
            format: stored.rules_format,
            after: Seq(stored.rules_after),
        };
        let mut durable = Organisation::new(org.clone(), world, Arc::clone(store), rules);
        (durable.changes, durable.effects, durable.plugins, durable.host, durable.restored_feed) =
            (stored.changes, stored.effects, plugins, host, stored.feed);
        durable.snapshotted = seq;
        Ok(durable)
    }

    /// Replays the log's records after the world's last one, up to `until` included, a page of
    /// whole segments of about [`REPLAY_BATCH`] records at a time, each segment as it arrived
    /// ([`plaudit_core::world::Arrival`]). Beyond one page, the pages are read and decoded on a thread
    /// of their own, one or two ahead of the page being scored.
    fn replay_until(&mut self, until: Seq, observe: &mut dyn FnMut(&mut OrgWorld)) -> Result<u64, OrgError> {
        // `until` may be past the log's end ("all of it"): what comes is up to the end.
        let end = until.min(self.store.last_seq(&self.org)?);
        let coming = end.0.saturating_sub(self.world.last_seq().0);
        self.world.reserve_moments(usize::try_from(coming).unwrap_or(0));
        if coming > REPLAY_BATCH as u64
            && let Some(replayed) = self.replay_reading_ahead(until, observe)
        {
            return replayed;
        }
        let mut records = 0;
        while self.world.last_seq() < until {
            let page = read_page(self.store.as_ref(), &self.org, self.world.last_seq(), until)?;
            match self.replay_page(page, observe)? {
                0 => break,
                n => records += n,
            }
        }
        Ok(records)
    }

    /// [`Organisation::replay_until`] with the pages read on a thread of their own; `None` if that
    /// thread cannot start (nothing was replayed then).
    fn replay_reading_ahead(
        &mut self,
        until: Seq,
        observe: &mut dyn FnMut(&mut OrgWorld),
    ) -> Option<Result<u64, OrgError>> {
        let (store, org, after) = (Arc::clone(&self.store), self.org.clone(), self.world.last_seq());
        std::thread::scope(|s| {
            let (pages, ahead) = std::sync::mpsc::sync_channel(2);
            // Scored pages go back to the reader to be freed where they were allocated: a free
            // from another thread costs the scoring one about a tenth of its time.
            let (spent, scored) = std::sync::mpsc::channel::<Arc<Vec<Record>>>();
            let reader = move || {
                let mut at = after;
                while at < until {
                    scored.try_iter().for_each(drop);
                    let page = read_page(store.as_ref(), &org, at, until);
                    let last = page.as_ref().ok().and_then(|p| p.last);
                    if pages.send(page).is_err() {
                        break;
                    }
                    match last {
                        Some(last) => at = last,
                        None => break,
                    }
                }
                // No more pages: the scoring side finishes, then drops `spent`.
                drop(pages);
                scored.iter().for_each(drop);
            };
            let thread = std::thread::Builder::new().name(format!("replay-{}", self.org));
            if let Err(e) = thread.spawn_scoped(s, reader) {
                tracing::warn!(error = %e, "cannot start a reader thread: replaying without one");
                return None;
            }
            let mut records = 0;
            for page in ahead {
                match page.map_err(OrgError::from).and_then(|page| self.replay_page(page, observe)) {
                    Ok(n) => records += n,
                    Err(e) => return Some(Err(e)),
                }
                // If the reader is gone, the records are freed here.
                let _ = spent.send(self.world.release_records());
            }
            Some(Ok(records))
        })
    }

    /// Scores one page of the log read after the world's last record; returns its records.
    fn replay_page(&mut self, page: Page, observe: &mut dyn FnMut(&mut OrgWorld)) -> Result<u64, OrgError> {
        let Some(last) = page.last else { return Ok(0) };
        let n = page.records.len();
        let outcome = self.world.ingest_arrivals(Arc::new(page.records), &page.arrivals);
        self.effects += outcome.effects as u64;
        observe(&mut self.world);
        self.agree(&outcome, n, last)?;
        Ok(n as u64)
    }
}
