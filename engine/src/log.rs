//! The log step: a batch is checked, appended durably to the organisation's log and scored,
//! and nothing of it is answered or fed before it is durable, so that what was acknowledged is
//! exactly what the world holds, and a restart rebuilds the world by replaying the log.
//!
//! **Owns** [`Durable`]: one organisation's [`OrgWorld`] together with its [`Store`]. Ingestion
//! goes: the world resolves every record (checks, duplicates, ids, sequence numbers: the first
//! half of [`OrgWorld::ingest`]) -> one [`Store::append`] of exactly the accepted ones (one
//! group commit; nothing refused reaches the log), on the organisation's commit thread, while
//! the world scores them ->
//! once the commit is in, the effects fed and the outcome returned; if it failed, the world is
//! rebuilt from the log instead. Recovery ([`Durable::open`])
//! restores the latest snapshot, if there is a good one, and replays the log after it through
//! the same `ingest`; without one it replays the log from the start.
//!
//! Snapshots ([`Durable::capture`], then [`Capture::store`], which can run on another thread)
//! hold the world ([`crate::snapshot`]) with what the log step knows at that point: the rule
//! set in force, the changes applied, the plugins installed, the effects produced. A snapshot
//! is a cache of the log, never the record: one that fails its checksum, or that this version
//! cannot read, is reported and the log is replayed from the start instead.
//!
//! Changes go the same way: a rule set or a plugin is checked first (compiled, its manifest
//! read), then recorded in the log ([`Store::append_change`]) after the last record, then
//! applied to the world. A replay applies each change at the point it was recorded, so a world
//! rebuilt from the log has lived through the same versions at the same moments. An
//! organisation exists once its first rule set is in its log ([`Durable::create`]).
//!
//! **Must not touch** the passes or the store's encoding; it sequences the two.
//!
//! Invariant: the world's sequence numbers are the log's. Every appended record was accepted
//! by the world before it was handed to the commit, so both count the same records in the
//! same order; a mismatch is reported as [`LogError::Diverged`], never papered over. One found
//! just after an append halts the organisation's writes ([`LogError::Halted`]): nothing more
//! is recorded that its world did not take.

use std::collections::BTreeMap;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use plaudit_sdk::Record;
use serde::{Deserialize, Serialize};

use crate::feed::{Feed, FeedItem};
use crate::ids::{OrgId, Seq};
use crate::plugins::{LoadError, Loaded, PluginError, PluginHost, PluginStatus, TimedOutCalls};
use crate::retroactive::Mode;
use crate::ruleset::{Format, RuleSetError};
use crate::store::{Change, LoggedChange, Store, StoreError, module_hash};
use crate::world::{Arrival, OrgWorld, Outcome};

/// Records read from the log per replayed batch.
const REPLAY_BATCH: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The world did not accept what the log holds: a bug, reported rather than hidden.
    #[error("organisation {org}: the world and the log disagree at sequence {seq}: {detail}")]
    Diverged { org: OrgId, seq: Seq, detail: String },
    /// The world disagreed with what the log had just recorded (a [`LogError::Diverged`] after
    /// an append): the organisation takes no more writes, so that nothing more is recorded
    /// that its world did not take. Its reads go on; its log holds everything acknowledged.
    #[error(
        "organisation {org} takes no more writes: its world and its log disagree since sequence {seq} ({detail}); \
         its log keeps every record it stored. This is a bug in Plaudit: please report it"
    )]
    Halted { org: OrgId, seq: Seq, detail: String },
    /// A rule set was refused; nothing was recorded.
    #[error(transparent)]
    Rules(#[from] RuleSetError),
    /// A plugin module was refused; nothing was recorded.
    #[error("plugin {name}: {source}")]
    Plugin { name: String, source: LoadError },
    /// The plugin sandbox could not start.
    #[error("the plugin sandbox cannot start: {0}")]
    Sandbox(PluginError),
    /// The organisation has no rule set in its log: it was never created.
    #[error("organisation {0} does not exist (it has no rule set in the log)")]
    Missing(OrgId),
    /// [`Durable::create`] for an organisation that exists.
    #[error("organisation {0} exists already")]
    Exists(OrgId),
    /// A logged change cannot be applied on replay (a rule set this version of Plaudit refuses,
    /// a module it cannot load).
    #[error("organisation {org}: change {number} of the log cannot be applied: {detail}")]
    BadChange { org: OrgId, number: u64, detail: String },
    /// The commit thread stopped before it said whether a group's commit went in: the world
    /// was rebuilt from what the log holds, which may or may not include the group.
    #[error(
        "organisation {0}: the commit of a group stopped half way; retry it (moments already stored are recognised as duplicates)"
    )]
    CommitLost(OrgId),
    /// A snapshot could not be taken or restored. On open this is not fatal: the log is
    /// replayed from the start instead.
    #[error("organisation {org}: snapshot: {detail}")]
    Snapshot { org: OrgId, detail: String },
}

/// Upper bounds of the commit-time buckets, in seconds.
pub const COMMIT_BUCKETS: [f64; 8] = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1];

/// The steps of ingesting a batch or a group, as [`IngestTimes::steps`] counts their time.
pub const INGEST_STEPS: [&str; 4] = ["resolve", "commit", "score", "render"];

/// How long ingestion takes, for the server's metrics: each commit (a durable `Store::append`
/// of a batch or a group) in a histogram, and the time the world spent in each of
/// [`INGEST_STEPS`] (resolving the records: checks, duplicates, ids; waiting for their commit,
/// which runs while they are scored and rendered, once that is done; scoring them; rendering
/// their effects for the answers and the feed). Shared by every organisation's [`Durable`].
#[derive(Debug, Default)]
pub struct IngestTimes {
    /// Per bucket (not cumulative), then over the last bound.
    buckets: [std::sync::atomic::AtomicU64; COMMIT_BUCKETS.len() + 1],
    micros: std::sync::atomic::AtomicU64,
    /// Nanoseconds per step of [`INGEST_STEPS`].
    steps: [std::sync::atomic::AtomicU64; INGEST_STEPS.len()],
}

impl IngestTimes {
    /// Seconds spent in each of [`INGEST_STEPS`], in that order.
    pub fn steps(&self) -> [f64; INGEST_STEPS.len()] {
        self.steps.each_ref().map(|n| n.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1e9)
    }

    /// Adds the time of each step of one ingestion, in the order of [`INGEST_STEPS`].
    fn record_steps(&self, took: [Duration; INGEST_STEPS.len()]) {
        for (step, took) in self.steps.iter().zip(took) {
            step.fetch_add(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX), std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Records one commit's time in the histogram.
    pub fn record(&self, took: Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        let secs = took.as_secs_f64();
        let i = COMMIT_BUCKETS.iter().position(|b| secs <= *b).unwrap_or(COMMIT_BUCKETS.len());
        self.buckets[i].fetch_add(1, Relaxed);
        self.micros.fetch_add(u64::try_from(took.as_micros()).unwrap_or(u64::MAX), Relaxed);
    }

    /// Cumulative counts per bucket (the last is the total) and the sum in seconds.
    pub fn cumulative(&self) -> (Vec<u64>, f64) {
        use std::sync::atomic::Ordering::Relaxed;
        let mut total = 0;
        let counts = self.buckets.iter().map(|b| {
            total += b.load(Relaxed);
            total
        });
        (counts.collect(), self.micros.load(Relaxed) as f64 / 1e6)
    }
}

/// The rule set in force, as published.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    /// Its version: 1 for the rule set the organisation was created with, then one more for
    /// each rule set published.
    pub version: u64,
    pub text: String,
    pub format: Format,
    /// The log position it took effect after.
    pub after: Seq,
}

/// A plugin as installed, for status reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Installed {
    /// SHA-256 (hex) of its module.
    pub module: String,
    /// The log position it took effect after.
    pub after: Seq,
}

/// How a replay went.
#[derive(Clone, Debug, PartialEq)]
pub struct Replayed {
    /// Records replayed from the log (after the snapshot, if one was restored).
    pub records: u64,
    pub elapsed: Duration,
    /// The snapshot restored, if any.
    pub snapshot: Option<Restored>,
}

/// A rule set applied to history ([`Durable::apply_to_history`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// The version applied: the one in force.
    pub version: u64,
    pub mode: Mode,
    /// The history it was applied to: the records up to this one.
    pub after: Seq,
    /// The compensating entries and grants it produced.
    pub effects: usize,
}

/// A snapshot restored: the last record it holds, and the time its restore took.
pub type Restored = (Seq, Duration);

/// A snapshot as stored: the world and what the log step knows at that point.
#[derive(Serialize, Deserialize)]
struct Stored {
    org: String,
    rules_version: u64,
    rules_text: String,
    rules_format: Format,
    rules_after: u64,
    /// Changes of the log applied (the log's changes numbered up to this).
    changes: u64,
    /// Plugins installed: name, module hash, the record they took effect after.
    plugins: Vec<(String, String, u64)>,
    /// Effects produced since the first record (the next effect's number is one more).
    effects: u64,
    /// The effects feed as it was (the last effects, up to its capacity, the last numbered
    /// `effects`), so that a restart keeps every effect a reader or a webhook may still need:
    /// the replay of the log after the snapshot adds the rest.
    #[serde(default)]
    feed: Vec<Arc<FeedItem>>,
    world: crate::snapshot::WorldSnapshot,
}

/// A snapshot taken from a world, not yet encoded or stored (see [`Durable::capture`]).
pub struct Capture {
    org: OrgId,
    stored: Stored,
    /// How long taking it held the world.
    pub took: Duration,
}

impl std::fmt::Debug for Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capture").field("org", &self.org).field("seq", &self.stored.world.seq).finish_non_exhaustive()
    }
}

/// A stored snapshot.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Snapshotted {
    /// The last record it holds.
    pub seq: Seq,
    pub stakeholders: usize,
    pub moments: usize,
    pub bytes: usize,
    /// Taking it (the world held), then encoding and storing it (the world free).
    pub capture: Duration,
    pub write: Duration,
}

impl Capture {
    /// Encodes the snapshot and stores it, durably; the store keeps only the newest.
    pub fn store(self, store: &dyn Store) -> Result<Snapshotted, LogError> {
        let started = Instant::now();
        let bytes = crate::snapshot::encode(&self.stored)
            .map_err(|e| LogError::Snapshot { org: self.org.clone(), detail: format!("cannot encode: {e}") })?;
        let seq = Seq(self.stored.world.seq);
        store.put_snapshot(&self.org, seq, &bytes)?;
        Ok(Snapshotted {
            seq,
            stakeholders: self.stored.world.people.len(),
            moments: self.stored.world.moment_info.len(),
            bytes: bytes.len(),
            capture: self.took,
            write: started.elapsed(),
        })
    }
}

/// One organisation's world, backed by its durable log.
pub struct Durable {
    org: OrgId,
    world: OrgWorld,
    store: Arc<dyn Store>,
    rules: Published,
    plugins: BTreeMap<String, Installed>,
    /// The plugin sandbox, shared by the process, taken at the first plugin.
    host: Option<Arc<PluginHost>>,
    /// Where every effect goes, rendered, when someone reads them (the server).
    feed: Option<Arc<Feed>>,
    /// Where ingestion times go, when someone watches them (the server).
    ingest_times: Option<Arc<IngestTimes>>,
    /// Commits groups while the world scores them, from the first group on.
    commits: Option<CommitThread>,
    /// Changes of the log applied to the world (they are numbered from 1).
    changes: u64,
    /// Effects the world produced, since the first record.
    effects: u64,
    /// The last record of the latest snapshot taken or restored.
    snapshotted: Seq,
    /// A snapshot is worth taking whatever the records since: an application to history, which
    /// a replay would redo with a replay of its own, came after the latest.
    snapshot_due: bool,
    /// Set when the world disagreed with what the log had just recorded: writes are refused
    /// from then on (see [`LogError::Halted`]).
    halted: Option<(Seq, String)>,
    /// The instant records are received at, in Unix milliseconds: the system clock, or another
    /// one given with [`Durable::set_clock`].
    clock: fn() -> i64,
    /// The effects feed a restored snapshot held, until the replay that restored it hands them
    /// on (see [`Durable::open_with_feed`]).
    restored_feed: Vec<Arc<FeedItem>>,
}

impl std::fmt::Debug for Durable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Durable").field("org", &self.org).field("world", &self.world).finish_non_exhaustive()
    }
}

/// Compiles a plugin module under `limits`, starting the sandbox in `host` if needed.
fn load_module(
    host: &mut Option<Arc<PluginHost>>,
    limits: &crate::plugins::Limits,
    name: &str,
    wasm: &[u8],
) -> Result<Loaded, LogError> {
    let host = match host {
        Some(host) => host,
        slot => slot.insert(PluginHost::shared(limits).map_err(LogError::Sandbox)?),
    };
    host.load(name, wasm, limits.clone()).map_err(|source| LogError::Plugin { name: name.to_string(), source })
}

/// A rule set text checked and compiled into a fresh world (the first version).
fn first_world(org: &OrgId, text: &str, format: Format, origin: &str) -> Result<OrgWorld, RuleSetError> {
    let doc = crate::ruleset::parse(text, format, origin)?;
    let world = OrgWorld::from_doc(&doc, origin)?;
    if world.program().org_id != org.as_str() {
        return Err(RuleSetError::Invalid {
            origin: origin.to_string(),
            problems: vec![(
                "organisation.id".to_string(),
                format!("is {:?}; this rule set is for organisation {org}", world.program().org_id),
            )],
        });
    }
    Ok(world)
}

/// How [`Durable::replay`] rebuilds an organisation.
#[derive(Clone, Copy, Debug)]
struct ReplayOptions<'a> {
    /// This rule set in force from the start instead of the logged versions (plugin changes
    /// still apply where they were logged): a what-if, or an application to history.
    candidate: Option<(&'a str, Format)>,
    /// The last record replayed; `Seq(u64::MAX)`: the whole log.
    until: Seq,
    /// The latest snapshot restored first (if there is one, not beyond `until`).
    snapshot: bool,
    /// Plugin calls run under the wall-clock backstop, and the calls it stops are collected:
    /// a replay made to be recorded (an application to history) or thrown away (a what-if).
    /// Otherwise (a replay of the log) fuel bounds each call, and the calls the log records as
    /// stopped fail again without running.
    backstop: bool,
    /// Calls stopped by the backstop when this very replay was first made, besides those the
    /// log records for its records: an application to history's, replayed.
    recorded: &'a TimedOutCalls,
}

/// No recorded calls (see [`ReplayOptions::recorded`]).
static NO_TIMEOUTS: TimedOutCalls = Vec::new();

impl ReplayOptions<'_> {
    /// The whole log as it happened: what opening an organisation replays.
    fn log(snapshot: bool) -> ReplayOptions<'static> {
        ReplayOptions { candidate: None, until: Seq(u64::MAX), snapshot, backstop: false, recorded: &NO_TIMEOUTS }
    }
}

/// Takes into `world` what the log's `changes` record of the wall-clock backstop: the calls it
/// stopped when first scored, which a replay fails again without running.
fn record_timeouts(world: &mut OrgWorld, changes: &[LoggedChange]) {
    for c in changes {
        match &c.change {
            Change::PluginCallsTimedOut { name, calls } => world.record_plugin_timeouts(name, calls),
            Change::PluginTimeouts { name, seqs } => world.record_timed_out_moments(name, seqs),
            _ => {}
        }
    }
}

/// What a replay does with the effects it produces.
enum Effects<'a> {
    /// Counts them (the feed numbers effects on from there), keeping none.
    Count,
    /// Hands each batch's to the closure, which must drain them.
    Observe(&'a mut dyn FnMut(&mut OrgWorld)),
}

impl Durable {
    /// Creates organisation `org` with its first rule set, recorded in the log. Fails with
    /// [`LogError::Exists`] if the organisation has a log already, with [`LogError::Rules`] if
    /// the rule set is refused (its `organisation.id` must be `org`).
    pub fn create(store: Arc<dyn Store>, org: OrgId, text: &str, format: Format) -> Result<Durable, LogError> {
        Durable::create_with_key(store, org, None, text, format)
    }

    /// [`Durable::create`] with the SHA-256 of the organisation's API key, stored in the same
    /// commit as its first rule set: an organisation exists whole or not at all.
    pub fn create_with_key(
        store: Arc<dyn Store>,
        org: OrgId,
        key_hash: Option<[u8; 32]>,
        text: &str,
        format: Format,
    ) -> Result<Durable, LogError> {
        let world = first_world(&org, text, format, "rule set")?;
        let change = Change::Rules { text: text.to_string(), format };
        match store.create_org(&org, key_hash, &change) {
            Err(StoreError::OrgExists(org)) => return Err(LogError::Exists(org)),
            created => created?,
        }
        let rules = Published { version: 1, text: text.to_string(), format, after: Seq(0) };
        Ok(Durable::new(org, world, store, rules))
    }

    fn new(org: OrgId, world: OrgWorld, store: Arc<dyn Store>, rules: Published) -> Durable {
        Durable {
            org,
            world,
            store,
            rules,
            plugins: BTreeMap::new(),
            host: None,
            feed: None,
            ingest_times: None,
            commits: None,
            changes: 1,
            effects: 0,
            snapshotted: Seq(0),
            snapshot_due: false,
            halted: None,
            clock: unix_millis,
            restored_feed: Vec::new(),
        }
    }

    /// Receives records at the instants `clock` gives (Unix milliseconds) instead of the system
    /// clock's: for tests, and tools that must date what they receive as of another instant.
    /// The log keeps the instant with the records either way.
    pub fn set_clock(&mut self, clock: fn() -> i64) {
        self.clock = clock;
    }

    /// Whether `org` exists in `store` (has a rule set in its log).
    pub fn exists(store: &dyn Store, org: &OrgId) -> Result<bool, StoreError> {
        Ok(!store.changes(org)?.is_empty())
    }

    /// Opens `org`: its latest snapshot, if it has a good one, then every record and change of
    /// its log after it, in order.
    pub fn open(store: Arc<dyn Store>, org: OrgId) -> Result<(Durable, Replayed), LogError> {
        Durable::replay(store, org, ReplayOptions::log(true), &mut |_, _| {}, Effects::Count)
    }

    /// [`Durable::open`] ignoring snapshots: every record of the log replayed.
    pub fn open_from_start(store: Arc<dyn Store>, org: OrgId) -> Result<(Durable, Replayed), LogError> {
        Durable::replay(store, org, ReplayOptions::log(false), &mut |_, _| {}, Effects::Count)
    }

    /// [`Durable::open`] with an effects feed keeping the last `capacity` effects, as they were
    /// before the restart: the feed the snapshot restored holds, then the effects of the records
    /// replayed after it (those of the last `capacity` records rendered, older ones only
    /// counted), numbered as they were first. So readers' cursors and webhooks carry on across
    /// a restart; a cursor older than the last `capacity` effects is answered `gone`.
    pub fn open_with_feed(store: Arc<dyn Store>, org: OrgId, capacity: usize) -> Result<(Durable, Replayed), LogError> {
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
            Durable::replay(store, org, ReplayOptions::log(true), &mut start, Effects::Observe(&mut observe))?;
        durable.feed = Some(feed);
        Ok((durable, replayed))
    }

    /// Starts an empty effects feed (for a new organisation, whose log holds no effect yet).
    pub fn start_feed(&mut self, capacity: usize) {
        self.feed = Some(Arc::new(Feed::new(capacity)));
    }

    /// Records the time of every commit, and of every step of ingestion, into `times`.
    pub fn time_ingest(&mut self, times: Arc<IngestTimes>) {
        self.ingest_times = Some(times);
    }

    /// Effects produced since the organisation began, counted the same whether or not a
    /// replay kept them: what the feed numbers effects by.
    pub fn effects_produced(&self) -> u64 {
        self.effects
    }

    /// The effects feed, if the organisation has one.
    pub fn feed(&self) -> Option<&Arc<Feed>> {
        self.feed.as_ref()
    }

    /// Rebuilds `org`'s world from its log, up to record `until`, counting its effects or
    /// handing each replayed batch's to an observer (see [`Effects`]), after telling `start` how
    /// many effects came before the first it will see. With `snapshot`, the latest snapshot (if
    /// any, and not beyond `until`) is restored first. With `candidate`, that rule set is in force from the
    /// start instead of the logged versions (plugin changes still apply where they were
    /// logged): the what-if of [`what_if`].
    fn replay(
        store: Arc<dyn Store>,
        org: OrgId,
        options: ReplayOptions,
        start: &mut dyn FnMut(u64, Vec<Arc<FeedItem>>),
        effects: Effects,
    ) -> Result<(Durable, Replayed), LogError> {
        let ReplayOptions { candidate, until, snapshot, backstop, recorded } = options;
        let started = Instant::now();
        let changes = store.changes(&org)?;
        let Some(first) = changes.first() else { return Err(LogError::Missing(org)) };
        let bad = |c: &LoggedChange, detail: String| LogError::BadChange { org: org.clone(), number: c.number, detail };
        let restored = match (snapshot, candidate) {
            (true, None) => Durable::restore(&store, &org, &changes, until)?,
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
                (Durable::new(org, world, store, rules), None)
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
        let records = durable.advance(&changes, until, candidate.is_some(), observe)?;
        durable.world.set_backstop(true);
        if !backstop {
            durable.world.forget_plugin_timeouts();
        }
        durable.world.keep_effects(true);
        Ok((durable, Replayed { records, elapsed: started.elapsed(), snapshot }))
    }

    /// Replays the log's records and changes after the world's, up to record `until`; with
    /// `candidate`, the rule set in force stays the one the world started with (no other is
    /// published nor applied). Returns the records replayed.
    fn advance(
        &mut self,
        changes: &[LoggedChange],
        until: Seq,
        candidate: bool,
        observe: &mut dyn FnMut(&mut OrgWorld),
    ) -> Result<u64, LogError> {
        let mut records = 0;
        let applied = self.changes;
        for change in changes.iter().filter(|c| c.number > applied) {
            if change.after > until {
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
    ) -> Result<Option<(Durable, Restored)>, LogError> {
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
        match Durable::from_snapshot(store, org, changes, seq, &bytes) {
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
    ) -> Result<Durable, LogError> {
        let bad = |detail: String| LogError::Snapshot { org: org.clone(), detail };
        let stored: Stored = crate::snapshot::decode(bytes).map_err(|e| bad(format!("cannot decode: {e}")))?;
        if stored.org != org.as_str() || stored.world.seq != seq.0 || stored.changes as usize > changes.len() {
            return Err(bad(format!(
                "it is of organisation {:?} at {} with {} changes; the log is of {org} with {} changes",
                stored.org,
                stored.world.seq,
                stored.changes,
                changes.len()
            )));
        }
        let doc = crate::ruleset::parse(&stored.rules_text, stored.rules_format, "rule set")?;
        let limits =
            crate::ruleset::compile::compile(&doc, &mut crate::intern::Interner::new(), "rule set")?.plugin_limits;
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
        let mut durable = Durable::new(org.clone(), world, Arc::clone(store), rules);
        (durable.changes, durable.effects, durable.plugins, durable.host, durable.restored_feed) =
            (stored.changes, stored.effects, plugins, host, stored.feed);
        durable.snapshotted = seq;
        Ok(durable)
    }

    /// Takes a snapshot of the organisation as it is now (between batches): the world copied
    /// out, with what the log step knows. It holds the world only for the copy; encoding and
    /// storing it ([`Capture::store`]) can happen on another thread while scoring goes on.
    pub fn capture(&mut self) -> Capture {
        let started = Instant::now();
        self.snapshotted = self.world.last_seq();
        self.snapshot_due = false;
        let world = self.world.snapshot();
        let stored = Stored {
            org: self.org.to_string(),
            rules_version: self.rules.version,
            rules_text: self.rules.text.clone(),
            rules_format: self.rules.format,
            rules_after: self.rules.after.0,
            changes: self.changes,
            plugins: self.plugins.iter().map(|(n, i)| (n.clone(), i.module.clone(), i.after.0)).collect(),
            effects: self.effects,
            feed: self.feed.as_ref().map(|f| f.after(None, usize::MAX).unwrap_or_default()).unwrap_or_default(),
            world,
        };
        Capture { org: self.org.clone(), stored, took: started.elapsed() }
    }

    /// [`Durable::capture`] and [`Capture::store`] in one go.
    pub fn snapshot(&mut self) -> Result<Snapshotted, LogError> {
        self.capture().store(self.store.as_ref())
    }

    /// Records accepted since the latest snapshot taken or restored; `u64::MAX` once an
    /// application to history came after it (a snapshot then saves a replay's replay).
    pub fn since_snapshot(&self) -> u64 {
        if self.snapshot_due {
            return u64::MAX;
        }
        self.world.last_seq().0.saturating_sub(self.snapshotted.0)
    }

    /// Replays the log's records after the world's last one, up to `until` included, a page of
    /// whole segments of about [`REPLAY_BATCH`] records at a time, each segment as it arrived
    /// ([`crate::world::Arrival`]). Beyond one page, the pages are read and decoded on a thread
    /// of their own, one or two ahead of the page being scored.
    fn replay_until(&mut self, until: Seq, observe: &mut dyn FnMut(&mut OrgWorld)) -> Result<u64, LogError> {
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

    /// [`Durable::replay_until`] with the pages read on a thread of their own; `None` if that
    /// thread cannot start (nothing was replayed then).
    fn replay_reading_ahead(
        &mut self,
        until: Seq,
        observe: &mut dyn FnMut(&mut OrgWorld),
    ) -> Option<Result<u64, LogError>> {
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
                match page.map_err(LogError::from).and_then(|page| self.replay_page(page, observe)) {
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
    fn replay_page(&mut self, page: Page, observe: &mut dyn FnMut(&mut OrgWorld)) -> Result<u64, LogError> {
        let Some(last) = page.last else { return Ok(0) };
        let n = page.records.len();
        let outcome = self.world.ingest_arrivals(Arc::new(page.records), &page.arrivals);
        self.effects += outcome.effects as u64;
        observe(&mut self.world);
        self.agree(&outcome, n, last)?;
        Ok(n as u64)
    }

    /// Applies a logged change to the world, on replay.
    fn apply(&mut self, logged: &LoggedChange) -> Result<(), LogError> {
        let org = self.org.clone();
        let bad = |detail: String| LogError::BadChange { org: org.clone(), number: logged.number, detail };
        match &logged.change {
            Change::Rules { text, format } => {
                let doc = crate::ruleset::parse(text, *format, "rule set").map_err(|e| bad(e.to_string()))?;
                let prepared = self.world.prepare_rules(&doc, "rule set").map_err(|e| bad(e.to_string()))?;
                self.world.publish_prepared(prepared);
                let version = self.rules.version + 1;
                self.rules = Published { version, text: text.clone(), format: *format, after: logged.after };
            }
            Change::InstallPlugin { name, module } => {
                let bytes = self.store.module(module)?.ok_or_else(|| StoreError::MissingModule {
                    org: self.org.clone(),
                    number: logged.number,
                    module: module.clone(),
                })?;
                let loaded = self.load(name, &bytes).map_err(|e| bad(e.to_string()))?;
                self.world.install_plugin(name, Arc::new(loaded));
                self.plugins.insert(name.clone(), Installed { module: module.clone(), after: logged.after });
            }
            Change::RemovePlugin { name } => {
                self.world.remove_plugin(name);
                self.plugins.remove(name);
            }
            Change::History { mode, timeouts } => {
                let plan = RebuildPlan { backstop: false, recorded: timeouts.clone(), ..self.rebuild_plan() };
                let rebuilt = rebuild(plan)?;
                let (rebuilt, _) = self.caught_up(rebuilt)?;
                self.apply_rebuilt(rebuilt, *mode)?;
            }
            // Taken into the world before the replay began.
            Change::PluginTimeouts { .. } | Change::PluginCallsTimedOut { .. } => {}
        }
        self.changes = logged.number;
        Ok(())
    }

    /// What [`rebuild`] needs to replay this organisation's history, up to its last record,
    /// under the rule set in force: taken on the organisation's thread, used on any.
    pub fn rebuild_plan(&self) -> RebuildPlan {
        RebuildPlan {
            store: Arc::clone(&self.store),
            org: self.org.clone(),
            rules: self.rules.clone(),
            until: self.world.last_seq(),
            backstop: true,
            recorded: Vec::new(),
        }
    }

    /// `rebuilt` brought up to the world's last record (see [`Rebuilt`]), rebuilt here if
    /// another rule set came into force since it was planned.
    ///
    /// Returns it with the plugin calls its replay ran that passed the wall-clock backstop, by
    /// plugin (when it ran under the backstop: an application made now, which records them).
    fn caught_up(&self, rebuilt: Rebuilt) -> Result<(OrgWorld, TimedOutCalls), LogError> {
        let mut rebuilt = if rebuilt.rules == self.rules { rebuilt } else { rebuild(self.rebuild_plan())? };
        let scratch = &mut rebuilt.scratch;
        let until = self.world.last_seq();
        if scratch.world.last_seq() < until {
            let changes = self.store.changes(&self.org)?;
            let later: Vec<LoggedChange> = changes.iter().filter(|c| c.number > scratch.changes).cloned().collect();
            record_timeouts(&mut scratch.world, &later);
            scratch.advance(&changes, until, true, &mut OrgWorld::clear_effects)?;
        }
        let timeouts = scratch.world.take_plugin_timeouts().into_iter().collect();
        Ok((rebuilt.scratch.world, timeouts))
    }

    /// Merges `rebuilt` (see [`Durable::rebuilt`]) into the world in `mode`; its effects wait
    /// in the world's journal. Returns how many.
    fn apply_rebuilt(&mut self, rebuilt: OrgWorld, mode: Mode) -> Result<usize, LogError> {
        let n = crate::retroactive::apply(&mut self.world, rebuilt, mode, self.rules.version).map_err(|e| {
            LogError::Diverged { org: self.org.clone(), seq: self.world.last_seq(), detail: e.to_string() }
        })?;
        self.effects += n as u64;
        Ok(n)
    }

    /// Applies the rule set in force to the history so far, in `mode` (see
    /// [`crate::retroactive`]): the history replayed under it in a scratch world, the
    /// application recorded in the log, then merged into the world, its effects fed. Ingestion
    /// waits meanwhile (the replay's time). A replay of the log makes the same application at
    /// the same point. On `Err` nothing changed.
    pub fn apply_to_history(&mut self, mode: Mode) -> Result<Applied, LogError> {
        self.writable()?;
        let rebuilt = rebuild(self.rebuild_plan())?;
        self.apply_rebuilt_history(rebuilt, mode)
    }

    /// [`Durable::apply_to_history`] with the replay under the rule set in force already
    /// built ([`rebuild`], on another thread while this organisation went on): it is brought
    /// up to the last record (the records and plugin changes logged since), then applied. The
    /// organisation waits only for that catch-up and the merge. The result is the one
    /// `apply_to_history` gives at this point (a replay of the log makes it so).
    pub fn apply_rebuilt_history(&mut self, rebuilt: Rebuilt, mode: Mode) -> Result<Applied, LogError> {
        self.writable()?;
        let (rebuilt, timeouts) = self.caught_up(rebuilt)?;
        let after = self.world.last_seq();
        self.changes = self.store.append_change(&self.org, after, &Change::History { mode, timeouts }, None)?;
        let effects = self.apply_rebuilt(rebuilt, mode).map_err(|e| self.halt(e))?;
        self.snapshot_due = true;
        let records = self.world.take_effect_records();
        if let Some(feed) = &self.feed {
            feed.push(records.iter().map(|r| (r.seq, self.world.render(r))).collect::<Vec<_>>());
        }
        tracing::info!(org = %self.org, version = self.rules.version, %mode, after = after.0, effects, "rule set applied to history");
        Ok(Applied { version: self.rules.version, mode, after, effects })
    }

    /// Compiles a plugin module under the rule set's limits, starting the sandbox if needed.
    fn load(&mut self, name: &str, wasm: &[u8]) -> Result<Loaded, LogError> {
        let limits = self.world.program().plugin_limits.clone();
        load_module(&mut self.host, &limits, name, wasm)
    }

    /// Publishes a new rule set, in force from the next record: checked, recorded in the log,
    /// then applied (see [`crate::publish`]). Returns the new version. On `Err` nothing changed.
    pub fn publish_rules(&mut self, text: &str, format: Format) -> Result<&Published, LogError> {
        self.writable()?;
        let doc = crate::ruleset::parse(text, format, "rule set")?;
        let prepared = self.world.prepare_rules(&doc, "rule set")?;
        let after = self.world.last_seq();
        let change = Change::Rules { text: text.to_string(), format };
        self.changes = self.store.append_change(&self.org, after, &change, None)?;
        self.world.publish_prepared(prepared);
        let version = self.rules.version + 1;
        self.rules = Published { version, text: text.to_string(), format, after };
        tracing::info!(org = %self.org, version, after = after.0, "rule set published");
        Ok(&self.rules)
    }

    /// The rule set in force.
    pub fn rules(&self) -> &Published {
        &self.rules
    }

    /// Installs `wasm` as plugin `name` (replacing one of that name) from the next record:
    /// compiled and its manifest checked, recorded in the log with its module, then installed.
    /// On `Err` nothing changed.
    pub fn install_plugin(&mut self, name: &str, wasm: &[u8]) -> Result<PluginStatus, LogError> {
        self.writable()?;
        let limit = self.world.program().plugin_limits.installed;
        if self.plugins.len() >= limit && !self.plugins.contains_key(name) {
            return Err(LogError::Plugin { name: name.to_string(), source: LoadError::TooMany { limit } });
        }
        let loaded = self.load(name, wasm)?;
        let after = self.world.last_seq();
        let module = module_hash(wasm);
        let change = Change::InstallPlugin { name: name.to_string(), module: module.clone() };
        self.changes = self.store.append_change(&self.org, after, &change, Some(wasm))?;
        self.world.install_plugin(name, Arc::new(loaded));
        tracing::info!(org = %self.org, plugin = name, module = %module, after = after.0, "plugin installed");
        self.plugins.insert(name.to_string(), Installed { module, after });
        self.world.plugin(name).ok_or_else(|| LogError::Diverged {
            org: self.org.clone(),
            seq: after,
            detail: format!("plugin {name} was installed but the world does not list it"),
        })
    }

    /// Removes plugin `name` and its saved state from the next record; false if there is none.
    pub fn remove_plugin(&mut self, name: &str) -> Result<bool, LogError> {
        self.writable()?;
        if !self.plugins.contains_key(name) {
            return Ok(false);
        }
        let change = Change::RemovePlugin { name: name.to_string() };
        self.changes = self.store.append_change(&self.org, self.world.last_seq(), &change, None)?;
        self.world.remove_plugin(name);
        self.plugins.remove(name);
        tracing::info!(org = %self.org, plugin = name, "plugin removed");
        Ok(true)
    }

    /// The installed plugins: module and position in the log.
    pub fn installed(&self) -> &BTreeMap<String, Installed> {
        &self.plugins
    }

    /// The store this organisation's log is in.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The world, to read.
    pub fn world(&self) -> &OrgWorld {
        &self.world
    }

    pub fn world_mut(&mut self) -> &mut OrgWorld {
        &mut self.world
    }

    pub fn org(&self) -> &OrgId {
        &self.org
    }

    /// Checks, appends and scores `records`. On `Ok`, the accepted records are durable and
    /// scored (their effects are counted, not kept: [`Durable::ingest_group`] renders them); on
    /// `Err`, nothing of the batch was stored or scored, and the caller may retry it whole.
    pub fn ingest(&mut self, records: Vec<Record>) -> Result<Outcome, LogError> {
        let (mut outcomes, _) = self.ingest_group(vec![records], false)?;
        Ok(outcomes.pop().unwrap_or_default())
    }

    /// [`Durable::ingest`] for several requests at once, in order, with one commit for all of
    /// them (the group commit of a busy server). Each request gets its own outcome and, with
    /// `render`, its own effects (numbered and shared as in the feed); on `Err` nothing of any
    /// of them was stored or scored.
    ///
    /// The steps: the records resolved by the world ([`Durable::stage`]: checked, duplicates
    /// dropped, ids and sequence numbers given); the accepted ones handed to the commit thread,
    /// which appends them in one durable commit while the world scores them
    /// ([`Durable::score`]) and renders their effects ([`Durable::render`]); then, once the
    /// commit is in, the effects fed and the outcomes returned ([`Durable::confirm`]). So the
    /// world is ahead of the log only inside this call, and nothing of the group leaves it (an
    /// answer, the feed, a read between two calls) before its records are durable. If the
    /// commit fails, the world is rebuilt from the log ([`Durable::rewind`]).
    pub fn ingest_group(
        &mut self,
        requests: Vec<Vec<Record>>,
        render: bool,
    ) -> Result<(Vec<Outcome>, Vec<GroupEffects>), LogError> {
        let (staged, keep) = self.stage(requests)?;
        if keep.is_empty() {
            self.record_steps(staged.took);
            let n = staged.outcomes.len();
            return Ok((staged.outcomes, vec![Vec::new(); n]));
        }
        let commit = self.start_commit(&keep, staged.received);
        drop(keep);
        if let Commit::Done(Err(e)) = commit {
            self.rewind();
            return Err(e);
        }
        let scored = self.score(staged);
        let rendered = self.render(scored, render);
        let committed = self.finish_commit(commit);
        self.confirm(rendered, committed)
    }

    /// The first step: the group's records resolved by the world, in order (see
    /// [`OrgWorld::resolve`]): what each request got, and the records to store.
    fn stage(&mut self, requests: Vec<Vec<Record>>) -> Result<(Staged, Arc<Vec<Record>>), LogError> {
        self.writable()?;
        let started = Instant::now();
        // Request r's records are records[starts[r]..starts[r + 1]].
        let mut starts = Vec::with_capacity(requests.len() + 1);
        let mut records = Vec::with_capacity(requests.iter().map(Vec::len).sum());
        for request in requests {
            starts.push(records.len());
            records.extend(request);
        }
        starts.push(records.len());
        let records = Arc::new(records);
        let after = self.world.last_seq();
        // The one reading of the clock that scoring depends on: kept with the records in the
        // log, so that a replay dates their moments the same way.
        let received = (self.clock)();
        let resolved = self.world.resolve(Arc::clone(&records), &[Arrival { start: 0, received: Some(received) }]);
        let mut outcomes = vec![Outcome::default(); starts.len() - 1];
        let mut ends = Vec::new();
        let mut seq = after.0;
        for (r, outcome) in outcomes.iter_mut().enumerate() {
            let (from, to) = (starts[r], starts[r + 1]);
            outcome.accepted = resolved.accepted[from..to].iter().filter(|a| **a).count();
            outcome.duplicates = to - from - outcome.accepted;
            seq += outcome.accepted as u64;
            if outcome.accepted > 0 {
                ends.push((seq, r));
            }
        }
        for mut e in resolved.outcome.rejected {
            let r = starts.partition_point(|&s| s <= e.index) - 1;
            e.index -= starts[r];
            outcomes[r].duplicates -= 1;
            outcomes[r].rejected.push(e);
        }
        let keep = if resolved.outcome.accepted == records.len() {
            records
        } else {
            let accepted = records.iter().zip(&resolved.accepted).filter(|(_, a)| **a);
            Arc::new(accepted.map(|(record, _)| record.clone()).collect())
        };
        let mut took = [Duration::ZERO; INGEST_STEPS.len()];
        took[0] = started.elapsed();
        Ok((Staged { outcomes, ends, received, took }, keep))
    }

    /// Hands `records` to the commit thread (started on the first call), or, if it cannot
    /// run, commits them here and now.
    fn start_commit(&mut self, records: &Arc<Vec<Record>>, received: i64) -> Commit {
        let committer =
            Committer { store: Arc::clone(&self.store), org: self.org.clone(), times: self.ingest_times.clone() };
        if self.commits.is_none() {
            match CommitThread::start(committer.clone()) {
                Ok(thread) => self.commits = Some(thread),
                Err(e) => {
                    tracing::warn!(org = %self.org, error = %e, "cannot start a commit thread: committing before scoring")
                }
            }
        }
        match &self.commits {
            Some(thread) if thread.send(records, received) => Commit::Running,
            _ => {
                self.commits = None;
                Commit::Done(committer.commit(records, received))
            }
        }
    }

    /// Waits for the commit `commit` started, if it is still under way.
    fn finish_commit(&mut self, commit: Commit) -> Result<Committed, LogError> {
        match commit {
            Commit::Done(done) => done,
            Commit::Running => {
                let started = Instant::now();
                let done = self.commits.as_ref().and_then(|t| t.committed.recv().ok());
                let mut committed = done.unwrap_or_else(|| {
                    self.commits = None;
                    Err(LogError::CommitLost(self.org.clone()))
                })?;
                committed.waited = started.elapsed();
                Ok(committed)
            }
        }
    }

    /// The second step, while the commit is under way: the staged records scored.
    fn score(&mut self, staged: Staged) -> Scored {
        let Staged { outcomes, ends, received: _, mut took } = staged;
        let started = Instant::now();
        self.effects += self.world.score_resolved() as u64;
        let records = self.world.take_effect_records();
        took[2] = started.elapsed();
        Scored { outcomes, ends, records, took }
    }

    /// The third step, while the commit may still be under way: the effects of a scored group
    /// counted per request, and rendered once each (numbered as the feed numbers them), for
    /// the requests (with `render`) and for the feed.
    fn render(&mut self, scored: Scored, render: bool) -> Rendered {
        let started = Instant::now();
        let Scored { mut outcomes, ends, records, mut took } = scored;
        let mut effects = vec![Vec::new(); outcomes.len()];
        let feed = self.feed.is_some();
        let mut fed = Vec::with_capacity(if feed { records.len() } else { 0 });
        let first = self.effects + 1 - records.len() as u64;
        for (id, rec) in (first..).zip(&records) {
            let r = ends.iter().find(|(end, _)| rec.seq <= *end).map_or(outcomes.len() - 1, |&(_, r)| r);
            outcomes[r].effects += 1;
            if !(render || feed) {
                continue;
            }
            let item = Arc::new(FeedItem { id, seq: rec.seq, effect: self.world.render(rec) });
            if render {
                effects[r].push(Arc::clone(&item));
            }
            if feed {
                fed.push(item);
            }
        }
        took[3] = started.elapsed();
        Rendered { outcomes, effects, fed, took }
    }

    /// The last step, once the commit is done: if it went in, the group's effects fed and its
    /// outcomes returned; if not, the world rebuilt from the log.
    fn confirm(
        &mut self,
        rendered: Rendered,
        committed: Result<Committed, LogError>,
    ) -> Result<(Vec<Outcome>, Vec<GroupEffects>), LogError> {
        let Rendered { outcomes, effects, fed, mut took } = rendered;
        let committed = match committed {
            Ok(committed) => committed,
            Err(e) => {
                self.rewind();
                return Err(e);
            }
        };
        took[1] = committed.waited;
        let scored = self.world.last_seq();
        if committed.last != scored {
            let detail = format!("the world scored up to {}, the log stored up to {}", scored.0, committed.last.0);
            return Err(self.halt(LogError::Diverged { org: self.org.clone(), seq: committed.last, detail }));
        }
        self.record_timeouts(committed.last)?;
        if let Some(feed) = &self.feed {
            feed.push_numbered(fed);
        }
        self.record_steps(took);
        Ok((outcomes, effects))
    }

    /// After a failed commit under a group already scored: the world goes back to what the log
    /// holds (its latest snapshot, and the records after it replayed), keeping the feed and
    /// the timers. If even that fails, the organisation is halted: its log is intact, and a
    /// restart replays it.
    fn rewind(&mut self) {
        match Durable::open(Arc::clone(&self.store), self.org.clone()) {
            Ok((mut fresh, _)) => {
                if let Some(feed) = &self.feed {
                    // A commit reported failed that went in after all: its effects are counted.
                    let missed = fresh.effects.saturating_sub(feed.latest());
                    if missed > 0 {
                        feed.skip(missed);
                    }
                }
                (fresh.feed, fresh.ingest_times, fresh.commits, fresh.clock) =
                    (self.feed.take(), self.ingest_times.take(), self.commits.take(), self.clock);
                *self = fresh;
            }
            Err(e) => {
                self.halt(e);
            }
        }
    }

    fn record_steps(&self, took: [Duration; INGEST_STEPS.len()]) {
        if let Some(times) = &self.ingest_times {
            times.record_steps(took);
        }
    }

    /// Records in the log the plugin calls of the batch ending at `last` that passed the
    /// wall-clock backstop (see [`Change::PluginCallsTimedOut`]). A crash before this lands
    /// loses only that: the replay then runs those calls again, without the backstop (bounded
    /// by their fuel); the group they belong to was never answered.
    fn record_timeouts(&mut self, last: Seq) -> Result<(), LogError> {
        for (name, calls) in self.world.take_plugin_timeouts() {
            tracing::warn!(org = %self.org, plugin = %name, calls = calls.len(), "plugin calls passed the wall-clock backstop: recorded in the log");
            let change = Change::PluginCallsTimedOut { name, calls };
            self.changes = self.store.append_change(&self.org, last, &change, None)?;
        }
        Ok(())
    }

    /// `Ok` unless the organisation was halted (see [`LogError::Halted`]).
    fn writable(&self) -> Result<(), LogError> {
        match &self.halted {
            None => Ok(()),
            Some((seq, detail)) => Err(LogError::Halted { org: self.org.clone(), seq: *seq, detail: detail.clone() }),
        }
    }

    /// Halts the organisation on `e`, a disagreement with what the log has just recorded, and
    /// says so.
    fn halt(&mut self, e: LogError) -> LogError {
        let (seq, detail) = match e {
            LogError::Diverged { seq, detail, .. } => (seq, detail),
            other => (self.world.last_seq(), other.to_string()),
        };
        tracing::error!(org = %self.org, seq = seq.0, %detail, "the world disagrees with the log: writes halted");
        self.halted = Some((seq, detail.clone()));
        LogError::Halted { org: self.org.clone(), seq, detail }
    }

    /// The world accepted all `n` records the log holds up to `last`.
    fn agree(&self, outcome: &Outcome, n: usize, last: Seq) -> Result<(), LogError> {
        let seq = self.world.last_seq();
        if outcome.accepted == n && outcome.rejected.is_empty() && seq == last {
            return Ok(());
        }
        Err(LogError::Diverged {
            org: self.org.clone(),
            seq: last,
            detail: format!(
                "{n} records logged, {} accepted, {} duplicates, rejected {:?}; the world is at {}",
                outcome.accepted, outcome.duplicates, outcome.rejected, seq.0
            ),
        })
    }
}

/// One request's effects in a group ([`Durable::ingest_group`]), as the feed numbers them
/// and shares them.
pub type GroupEffects = Vec<Arc<FeedItem>>;

/// A group of requests resolved ([`Durable::stage`]): what each request got so far.
#[derive(Debug)]
struct Staged {
    outcomes: Vec<Outcome>,
    /// The last sequence number of each request's accepted records, and the request.
    ends: Vec<(u64, usize)>,
    /// When the group was received (Unix milliseconds), stored with it.
    received: i64,
    /// The time of each of [`INGEST_STEPS`] so far.
    took: [Duration; INGEST_STEPS.len()],
}

/// A staged group scored ([`Durable::score`]), its effects not yet rendered.
#[derive(Debug)]
struct Scored {
    outcomes: Vec<Outcome>,
    /// The last sequence number of each request's records, and the request.
    ends: Vec<(u64, usize)>,
    records: Vec<crate::journal::EffectRec>,
    took: [Duration; INGEST_STEPS.len()],
}

/// A scored group's effects rendered ([`Durable::render`]), waiting for its commit.
#[derive(Debug)]
struct Rendered {
    outcomes: Vec<Outcome>,
    /// Per request, when asked for.
    effects: Vec<GroupEffects>,
    /// For the feed.
    fed: Vec<Arc<FeedItem>>,
    took: [Duration; INGEST_STEPS.len()],
}

/// A group's records stored.
#[derive(Debug)]
struct Committed {
    /// The last one's sequence.
    last: Seq,
    /// How long the world waited for the commit once it had scored and rendered the group.
    waited: Duration,
}

/// A commit [`Durable::start_commit`] started.
enum Commit {
    /// Under way on the commit thread.
    Running,
    /// Done in line.
    Done(Result<Committed, LogError>),
}

/// Commits staged records to an organisation's log.
#[derive(Debug, Clone)]
struct Committer {
    store: Arc<dyn Store>,
    org: OrgId,
    times: Option<Arc<IngestTimes>>,
}

impl Committer {
    /// `records` appended in one durable commit. On `Err` nothing was stored.
    fn commit(&self, records: &[Record], received: i64) -> Result<Committed, LogError> {
        let started = Instant::now();
        let last = self.store.append(&self.org, records, received)?;
        if let Some(times) = &self.times {
            times.record(started.elapsed());
        }
        Ok(Committed { last, waited: Duration::ZERO })
    }
}

/// An organisation's commit thread: it commits the groups [`Durable::ingest_group`] hands it,
/// one at a time, while the world scores them. Dropping it stops the thread and waits for it,
/// so that the store is let go of with the [`Durable`].
#[derive(Debug)]
struct CommitThread {
    groups: Option<mpsc::Sender<(Arc<Vec<Record>>, i64)>>,
    committed: mpsc::Receiver<Result<Committed, LogError>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl CommitThread {
    fn start(committer: Committer) -> std::io::Result<CommitThread> {
        let (groups, inbox) = mpsc::channel::<(Arc<Vec<Record>>, i64)>();
        let (outbox, committed) = mpsc::channel();
        let thread = std::thread::Builder::new().name(format!("commit-{}", committer.org)).spawn(move || {
            for (records, received) in inbox {
                let done = committer.commit(&records, received);
                // Let go of once stored (the world holds them until its next batch).
                drop(records);
                if outbox.send(done).is_err() {
                    return;
                }
            }
        })?;
        Ok(CommitThread { groups: Some(groups), committed, thread: Some(thread) })
    }

    /// Hands `records`, received at `received`, over; false if the thread has stopped.
    fn send(&self, records: &Arc<Vec<Record>>, received: i64) -> bool {
        self.groups.as_ref().is_some_and(|g| g.send((Arc::clone(records), received)).is_ok())
    }
}

impl Drop for CommitThread {
    fn drop(&mut self) {
        drop(self.groups.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
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

/// Now, in Unix milliseconds.
fn unix_millis() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}

/// An organisation's history up to a record, as [`Durable::rebuild_plan`] names it.
#[derive(Debug)]
pub struct RebuildPlan {
    store: Arc<dyn Store>,
    org: OrgId,
    rules: Published,
    until: Seq,
    /// Plugin calls under the wall-clock backstop (an application made now, whose stopped calls
    /// its change records), or not (one replayed from the log, which fails `recorded` again).
    backstop: bool,
    recorded: TimedOutCalls,
}

/// The history of an organisation replayed from the start under one rule set, in a scratch
/// organisation (plugin changes where they were logged): what an application to history
/// merges ([`Durable::apply_rebuilt_history`]).
pub struct Rebuilt {
    scratch: Durable,
    /// The rule set it was replayed under.
    rules: Published,
}

impl std::fmt::Debug for Rebuilt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rebuilt").field("version", &self.rules.version).field("scratch", &self.scratch).finish()
    }
}

/// Replays the history `plan` names under its rule set, reading only the store: on any
/// thread, while the organisation goes on.
pub fn rebuild(plan: RebuildPlan) -> Result<Rebuilt, LogError> {
    let options = ReplayOptions {
        candidate: Some((plan.rules.text.as_str(), plan.rules.format)),
        until: plan.until,
        snapshot: false,
        backstop: plan.backstop,
        recorded: &plan.recorded,
    };
    let (mut scratch, _) = Durable::replay(plan.store, plan.org, options, &mut |_, _| {}, Effects::Count)?;
    // Kept on until the catch-up ([`Durable::caught_up`]) is done too.
    scratch.world.set_backstop(plan.backstop);
    Ok(Rebuilt { scratch, rules: plan.rules })
}

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
pub fn what_if(
    store: Arc<dyn Store>,
    org: &OrgId,
    candidate: &str,
    format: Format,
    mode: Mode,
) -> Result<crate::simulate::Diff, LogError> {
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
        let options =
            ReplayOptions { candidate: side, until, snapshot: false, backstop: side.is_some(), recorded: &NO_TIMEOUTS };
        let (durable, replayed) =
            Durable::replay(Arc::clone(&store), org.clone(), options, &mut |_, _| {}, Effects::Observe(&mut observe))?;
        records = replayed.records;
        worlds.push(durable.world);
    }
    if mode == Mode::Additive {
        // Completions are records of activity: an additive application leaves them.
        completions.values_mut().for_each(|c| c.1 = c.0);
        let rebuilt = worlds.pop().expect("two worlds");
        let options = ReplayOptions { until, ..ReplayOptions::log(false) };
        let (mut applied, _) =
            Durable::replay(Arc::clone(&store), org.clone(), options, &mut |_, _| {}, Effects::Count)?;
        let doc = crate::ruleset::parse(candidate, format, "candidate rule set")?;
        applied.world.publish_rules(&doc, "candidate rule set")?;
        crate::retroactive::apply(&mut applied.world, rebuilt, mode, applied.rules.version + 1)
            .map_err(|e| LogError::Diverged { org: org.clone(), seq: until, detail: e.to_string() })?;
        applied.world.clear_effects();
        worlds.push(applied.world);
    }
    let (current, candidate) = worlds.split_at_mut(1);
    let mut diff = crate::simulate::compare(&mut current[0], &mut candidate[0]);
    diff.records = records as usize;
    diff.completions = completions;
    Ok(diff)
}
