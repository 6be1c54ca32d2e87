//! The log step: a batch is checked, appended durably to the organisation's log and scored,
//! and nothing of it is answered or fed before it is durable, so that what was acknowledged is
//! exactly what the world holds, and a restart rebuilds the world by replaying the log.
//!
//! **Owns** [`Organisation`]: one organisation's [`OrgWorld`] together with its [`Store`]. Ingestion
//! goes: the world resolves every record (checks, duplicates, ids, sequence numbers: the first
//! half of [`OrgWorld::ingest`]) -> one [`Store::append`] of exactly the accepted ones (one
//! group commit; nothing refused reaches the log), on the organisation's commit thread, while
//! the world scores them ->
//! once the commit is in, the effects fed and the outcome returned; if it failed, the world is
//! rebuilt from the log instead. Recovery ([`Organisation::open`])
//! restores the latest snapshot, if there is a good one, and replays the log after it through
//! the same `ingest`; without one it replays the log from the start.
//!
//! Snapshots ([`Organisation::capture`], then [`Capture::store`], which can run on another thread)
//! hold the world ([`plaudit_core::snapshot`]) with what the log step knows at that point: the rule
//! set in force, the changes applied, the plugins installed, the effects produced. A snapshot
//! is a cache of the log, never the record: one that fails its checksum, or that this version
//! cannot read, is reported and the log is replayed from the start instead.
//!
//! Changes go the same way: a rule set or a plugin is checked first (compiled, its manifest
//! read), then recorded in the log ([`Store::append_change`]) after the last record, then
//! applied to the world. A replay applies each change at the point it was recorded, so a world
//! rebuilt from the log has lived through the same versions at the same moments. An
//! organisation exists once its first rule set is in its log ([`Organisation::create`]).
//!
//! **Must not touch** the passes or the store's encoding; it sequences the two.
//!
//! Invariant: the world's sequence numbers are the log's. Every appended record was accepted
//! by the world before it was handed to the commit, so both count the same records in the
//! same order; a mismatch is reported as [`OrgError::Diverged`], never papered over. One found
//! just after an append halts the organisation's writes ([`OrgError::Halted`]): nothing more
//! is recorded that its world did not take.

mod changes;
pub mod erasure;
pub mod export;
mod ingest;
mod replay;
mod snapshot;
mod what_if;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::feed::Feed;
use plaudit_core::ids::{OrgId, Seq};
use plaudit_core::journal::FeedItem;
use plaudit_core::plugins::{LoadError, Loaded, PluginError, PluginHost};
use plaudit_core::ruleset::{Format, RuleSetError};
use plaudit_core::{OrgWorld, Outcome};
use plaudit_store::{Change, Store, StoreError};

use ingest::CommitThread;
use replay::{Effects, ReplayOptions, record_timeouts};

pub use changes::{Applied, RebuildPlan, Rebuilt, rebuild};
pub use ingest::{COMMIT_BUCKETS, GroupEffects, INGEST_STEPS, IngestTimes};
pub use replay::{Replayed, Restored};
pub use snapshot::{Capture, Snapshotted};
pub use what_if::what_if;

#[derive(Debug, thiserror::Error)]
pub enum OrgError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The world did not accept what the log holds: a bug, reported rather than hidden.
    #[error("organisation {org}: the world and the log disagree at sequence {seq}: {detail}")]
    Diverged { org: OrgId, seq: Seq, detail: String },
    /// The world disagreed with what the log had just recorded (a [`OrgError::Diverged`] after
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
    /// An erasure failed: before its commit nothing changed; after it, the next start
    /// completes it (the message says which is likely).
    #[error("the erasure failed: {0}")]
    Erasure(String),
    /// The organisation has no rule set in its log: it was never created.
    #[error("organisation {0} does not exist (it has no rule set in the log)")]
    Missing(OrgId),
    /// [`Organisation::create`] for an organisation that exists.
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

/// One organisation's world, backed by its durable log.
pub struct Organisation {
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
    /// from then on (see [`OrgError::Halted`]).
    halted: Option<(Seq, String)>,
    /// Set when the world went ahead of the log and could not be brought back to it because
    /// the store is out of reach, or when another node took the organisation over (its writes
    /// are fenced): this world must be dropped, and the organisation opened again from the
    /// log (by whichever node owns it) once the store answers.
    lost: bool,
    /// The instant records are received at, in Unix milliseconds: the system clock, or another
    /// one given with [`Organisation::set_clock`].
    clock: fn() -> i64,
    /// The effects feed a restored snapshot held, until the replay that restored it hands them
    /// on (see [`Organisation::open_with_feed`]).
    restored_feed: Vec<Arc<FeedItem>>,
    /// What live records must keep to (the server's limits of the organisation); by default
    /// everything is admitted (`plaudit import`, which loads history).
    admission: plaudit_core::Admission,
    /// Where the bytes the store holds for the organisation are kept after each commit, when
    /// someone watches them (the server's storage quota).
    stored: Option<Arc<std::sync::atomic::AtomicU64>>,
}

impl std::fmt::Debug for Organisation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Organisation").field("org", &self.org).field("world", &self.world).finish_non_exhaustive()
    }
}

/// Compiles a plugin module under `limits`, starting the sandbox in `host` if needed.
fn load_module(
    host: &mut Option<Arc<PluginHost>>,
    limits: &plaudit_core::plugins::Limits,
    name: &str,
    wasm: &[u8],
) -> Result<Loaded, OrgError> {
    let host = match host {
        Some(host) => host,
        slot => slot.insert(PluginHost::shared(limits).map_err(OrgError::Sandbox)?),
    };
    plaudit_core::plugins::load(host, name, wasm, limits.clone())
        .map_err(|source| OrgError::Plugin { name: name.to_string(), source })
}

/// A rule set text checked and compiled into a fresh world (the first version).
fn first_world(org: &OrgId, text: &str, format: Format, origin: &str) -> Result<OrgWorld, RuleSetError> {
    let doc = plaudit_core::ruleset::parse(text, format, origin)?;
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

/// Now, in Unix milliseconds.
fn unix_millis() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}

impl Organisation {
    /// Creates organisation `org` with its first rule set, recorded in the log. Fails with
    /// [`OrgError::Exists`] if the organisation has a log already, with [`OrgError::Rules`] if
    /// the rule set is refused (its `organisation.id` must be `org`).
    pub fn create(store: Arc<dyn Store>, org: OrgId, text: &str, format: Format) -> Result<Organisation, OrgError> {
        Organisation::create_with_key(store, org, None, text, format)
    }

    /// [`Organisation::create`] with the SHA-256 of the organisation's API key, stored in the same
    /// commit as its first rule set: an organisation exists whole or not at all.
    pub fn create_with_key(
        store: Arc<dyn Store>,
        org: OrgId,
        key_hash: Option<[u8; 32]>,
        text: &str,
        format: Format,
    ) -> Result<Organisation, OrgError> {
        let world = first_world(&org, text, format, "rule set")?;
        let change = Change::Rules { text: text.to_string(), format };
        match store.create_org(&org, key_hash, &change) {
            Err(StoreError::OrgExists(org)) => return Err(OrgError::Exists(org)),
            created => created?,
        }
        let rules = Published { version: 1, text: text.to_string(), format, after: Seq(0) };
        Ok(Organisation::new(org, world, store, rules))
    }

    pub(super) fn new(org: OrgId, world: OrgWorld, store: Arc<dyn Store>, rules: Published) -> Organisation {
        Organisation {
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
            lost: false,
            clock: unix_millis,
            restored_feed: Vec::new(),
            admission: plaudit_core::Admission::default(),
            stored: None,
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

    /// Starts an empty effects feed (for a new organisation, whose log holds no effect yet).
    pub fn start_feed(&mut self, capacity: usize) -> Arc<Feed> {
        Arc::clone(self.feed.insert(Arc::new(Feed::new(capacity))))
    }

    /// Records the time of every commit, and of every step of ingestion, into `times`.
    pub fn time_ingest(&mut self, times: Arc<IngestTimes>) {
        self.ingest_times = Some(times);
    }

    /// Admits live records only as `admission` says, from the next batch on (records refused
    /// for it are refused alone and never logged).
    pub fn set_admission(&mut self, admission: plaudit_core::Admission) {
        self.admission = admission;
    }

    /// Keeps in `stored` the bytes the store holds for the organisation ([`Store::stored_bytes`]),
    /// read now and after each commit.
    pub fn track_stored(&mut self, stored: Arc<std::sync::atomic::AtomicU64>) -> Result<(), OrgError> {
        stored.store(self.store.stored_bytes(&self.org)?, std::sync::atomic::Ordering::Relaxed);
        self.stored = Some(stored);
        Ok(())
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

    /// The rule set in force.
    pub fn rules(&self) -> &Published {
        &self.rules
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

    /// `Ok` unless the organisation was halted (see [`OrgError::Halted`]).
    pub(super) fn writable(&self) -> Result<(), OrgError> {
        match &self.halted {
            None => Ok(()),
            Some((seq, detail)) => Err(OrgError::Halted { org: self.org.clone(), seq: *seq, detail: detail.clone() }),
        }
    }

    /// Whether this world must be dropped (see the `lost` field): the store was out of reach
    /// when it had to be brought back to the log, or another node owns the organisation now.
    pub fn lost(&self) -> bool {
        self.lost
    }

    /// Halts the organisation on `e`, a disagreement with what the log has just recorded, and
    /// says so.
    pub(super) fn halt(&mut self, e: OrgError) -> OrgError {
        let (seq, detail) = match e {
            OrgError::Diverged { seq, detail, .. } => (seq, detail),
            other => (self.world.last_seq(), other.to_string()),
        };
        tracing::error!(org = %self.org, seq = seq.0, %detail, "the world disagrees with the log: writes halted");
        self.halted = Some((seq, detail.clone()));
        OrgError::Halted { org: self.org.clone(), seq, detail }
    }

    /// The world accepted all `n` records the log holds up to `last`.
    pub(super) fn agree(&self, outcome: &Outcome, n: usize, last: Seq) -> Result<(), OrgError> {
        let seq = self.world.last_seq();
        if outcome.accepted == n && outcome.rejected.is_empty() && seq == last {
            return Ok(());
        }
        Err(OrgError::Diverged {
            org: self.org.clone(),
            seq: last,
            detail: format!(
                "{n} records logged, {} accepted, {} duplicates, rejected {:?}; the world is at {}",
                outcome.accepted, outcome.duplicates, outcome.rejected, seq.0
            ),
        })
    }
}
