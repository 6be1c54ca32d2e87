//! WebAssembly rule plugins (docs/design.md, the plugin ABI): the per-organisation registry, loading a
//! module, and the plugins pass.
//!
//! - [`plaudit_sandbox`] owns wasmtime: the shared engine, compiling and pre-linking a module,
//!   and running one call in a fresh, limited store. It moves opaque bytes.
//! - [`load`] (here) compiles a module and reads its manifest: a [`Loaded`] plugin, shareable
//!   between organisations' worlds.
//! - [`Plugins`] (here) is one organisation's registry: a slot per plugin name with the loaded
//!   module, the plugin's saved per-stakeholder state, and its [`PluginStatus`]. Installing a
//!   module under a name already in use replaces it between batches and keeps the state.
//! - [`crate::passes::plugins`] is the scoring pass that calls them, after the native rules and before the
//!   effects pass.
//!
//! **Must not touch:** balances, badges or any other stakeholder component (the pass only
//! writes award and act requests for the effects pass), and no IO besides running the guest.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bevy_ecs::prelude::*;
use plaudit_sdk::plugin::Need;
use plaudit_sdk::plugin::wire::{self, ABI_VERSION, Manifest};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

pub use plaudit_sandbox::{CallFailed, CallOutput, Limits, Plugin, PluginError, PluginFailure, PluginHost};

/// A plugin that fails on this many single moments in a row is disabled until it is replaced.
pub const DISABLE_AFTER: u32 = 3;

/// Largest per-stakeholder state a plugin may save, in bytes.
pub const MAX_STATE_BYTES: usize = 4096;

/// Longest failure reason kept of a failed call, in bytes: a plugin's own error text is cut
/// there (and says so), so that a status stays small whatever the plugin returns.
pub const MAX_REPORT: usize = 1024;

/// Longest name and version a plugin's manifest may give, in bytes.
pub const MAX_MANIFEST_TEXT: usize = 64;

/// `text` cut to at most `most` bytes on a character boundary, ending with `…` if it was cut.
pub fn cut(mut text: String, most: usize) -> String {
    if text.len() > most {
        let mut end = most.saturating_sub('…'.len_utf8());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

/// Why a module could not be installed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    #[error("plugin name: {0}")]
    Name(String),
    #[error(transparent)]
    Module(#[from] PluginError),
    #[error("the `manifest` export failed: {0}")]
    Manifest(PluginFailure),
    #[error("the manifest does not decode ({0}); was the plugin built with plaudit-sdk's `plugin!`?")]
    BadManifest(String),
    #[error("the plugin speaks plugin ABI version {found}; this host speaks version {expected}")]
    Abi { found: u32, expected: u32 },
    #[error("the manifest asks for context `{0}`, which the host does not provide (it knows: teams, awards, state)")]
    UnknownNeed(String),
    #[error("the manifest's {field} is {len} bytes; give 1 to {MAX_MANIFEST_TEXT} bytes")]
    ManifestText { field: &'static str, len: usize },
    #[error(
        "the organisation has {limit} plugins installed, its limit (`[plugins] installed`, at most {}): remove one first",
        crate::ruleset::compile::MAX_INSTALLED
    )]
    TooMany { limit: usize },
}

/// The context a plugin declared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Needs {
    pub teams: bool,
    pub awards: bool,
    pub state: bool,
}

/// A compiled plugin with its manifest: what an organisation installs.
#[derive(Debug)]
pub struct Loaded {
    pub manifest: Manifest,
    pub needs: Needs,
    /// Size of the module, in bytes.
    pub module_bytes: usize,
    /// Time to validate, compile and pre-link the module.
    pub compile_time: Duration,
    plugin: Plugin,
}

impl Loaded {
    pub fn plugin(&self) -> &Plugin {
        &self.plugin
    }
}

pub fn load(host: &PluginHost, name: &str, wasm: &[u8], limits: Limits) -> Result<Loaded, LoadError> {
    check_name(name)?;
    let started = Instant::now();
    let plugin = host.compile(name, wasm, limits)?;
    let compile_time = started.elapsed();
    let bytes = plugin.manifest().map_err(|f| LoadError::Manifest(f.failure))?.output;
    let manifest: Manifest = wire::decode(&bytes).map_err(|e| LoadError::BadManifest(e.to_string()))?;
    if manifest.abi != ABI_VERSION {
        return Err(LoadError::Abi { found: manifest.abi, expected: ABI_VERSION });
    }
    for (field, text) in [("name", &manifest.name), ("version", &manifest.version)] {
        if text.is_empty() || text.len() > MAX_MANIFEST_TEXT {
            return Err(LoadError::ManifestText { field, len: text.len() });
        }
    }
    let mut needs = Needs::default();
    for name in &manifest.context {
        match Need::from_name(name) {
            Some(Need::Teams) => needs.teams = true,
            Some(Need::Awards) => needs.awards = true,
            Some(Need::State) => needs.state = true,
            None => return Err(LoadError::UnknownNeed(name.clone())),
        }
    }
    Ok(Loaded { manifest, needs, module_bytes: wasm.len(), compile_time, plugin })
}

/// A plugin name: 1 to 64 lowercase ASCII letters, digits, `-` and `_`, starting with a letter
/// or digit (it ends up in URLs, file names and effect sources).
pub fn check_name(name: &str) -> Result<(), LoadError> {
    let ok = (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && name.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(LoadError::Name(format!(
            "{name:?}: use 1 to 64 lowercase letters, digits, `-` and `_`, starting with a letter or digit"
        )))
    }
}

/// Whether a slot's plugin runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PluginState {
    Active,
    /// Failed on [`DISABLE_AFTER`] single moments in a row; installing a new module re-enables it.
    Disabled,
    Removed,
}

/// A failed call, with what its author needs to act on it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureReport {
    /// Sequence numbers of the first and last moment of the call.
    pub first_seq: u64,
    pub last_seq: u64,
    pub moments: usize,
    pub reason: String,
    /// What the plugin logged before it failed (a panic message, say).
    pub logs: String,
}

/// What an organisation's plugin is doing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginStatus {
    pub name: String,
    pub version: String,
    pub state: PluginState,
    pub context: Vec<String>,
    /// Times a module was installed under this name.
    pub installs: u32,
    pub calls: u64,
    pub failed_calls: u64,
    pub consecutive_failures: u32,
    /// Moments handed to successful calls, and the fuel those calls used.
    pub moments: u64,
    pub fuel_used: u64,
    pub stakeholders_with_state: usize,
    pub last_failure: Option<FailureReport>,
}

pub(crate) struct Slot {
    pub(crate) loaded: Option<Arc<Loaded>>,
    /// The plugin's saved state, by stakeholder number.
    pub(crate) states: FxHashMap<u32, Vec<u8>>,
    pub(crate) status: PluginStatus,
}

impl Slot {
    /// The module, if the slot runs.
    pub(crate) fn active(&self) -> Option<Arc<Loaded>> {
        (self.status.state == PluginState::Active).then(|| self.loaded.clone()).flatten()
    }

    /// Records a failed call. Only a call of a single moment counts towards disabling: a longer
    /// one is retried in halves, and may have failed only for being long (output, fuel).
    pub(crate) fn failed(&mut self, mut report: FailureReport) {
        // (The logs are bounded by the rule set's `[plugins] log_bytes` already.)
        report.reason = cut(report.reason, MAX_REPORT);
        let s = &mut self.status;
        s.calls += 1;
        s.failed_calls += 1;
        if report.moments == 1 {
            s.consecutive_failures += 1;
        }
        tracing::debug!(plugin = %s.name, moments = report.moments, reason = %report.reason, "plugin call failed");
        s.last_failure = Some(report);
        if s.consecutive_failures >= DISABLE_AFTER && s.state != PluginState::Disabled {
            s.state = PluginState::Disabled;
            let reason = s.last_failure.as_ref().map_or("", |f| f.reason.as_str());
            tracing::warn!(plugin = %s.name, failures = s.consecutive_failures, reason, "plugin disabled until a new module is installed");
        }
    }
}

/// A plugin call, as the log names it: its first moment's sequence number and its number of
/// moments. Calls are the same on every replay (see [`crate::resolve::Arrival`]), so this names
/// one call.
pub type CallId = (u64, u32);

/// Calls stopped by the wall-clock backstop, by plugin name.
pub type TimedOutCalls = Vec<(String, Vec<CallId>)>;

/// One organisation's plugins, in install order. Slots are never reused, so a slot number in
/// an effect's source keeps naming the same plugin.
#[derive(Resource, Default)]
pub struct Plugins {
    pub(crate) slots: Vec<Slot>,
    pub(crate) timeouts: Timeouts,
}

/// What the wall-clock backstop decided, and whether it runs (see [`plaudit_sandbox`]'s
/// determinism note).
#[derive(Debug)]
pub(crate) struct Timeouts {
    /// Whether calls run under the wall-clock backstop (live scoring, and replays made to be
    /// recorded: an application to history) or without it (a replay of the log: fuel bounds
    /// each call, and the calls that passed the backstop when first scored fail again from
    /// `recorded`).
    pub(crate) backstop: bool,
    /// By plugin name: the calls that passed the wall-clock backstop when first scored, as the
    /// log records them.
    recorded: FxHashMap<String, rustc_hash::FxHashSet<CallId>>,
    /// By plugin name: moments whose call passed the backstop, as earlier builds recorded
    /// them (every call holding one fails).
    recorded_moments: FxHashMap<String, rustc_hash::FxHashSet<u64>>,
    /// Calls of the current batch that passed the backstop, to be recorded: (plugin, call).
    pub(crate) timed_out: Vec<(String, CallId)>,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            backstop: true,
            recorded: FxHashMap::default(),
            recorded_moments: FxHashMap::default(),
            timed_out: Vec::new(),
        }
    }
}

impl Timeouts {
    /// Whether `call` to plugin `name`, of the moments `seqs`, passed the backstop when first
    /// scored, as recorded.
    pub(crate) fn before(&self, name: &str, call: CallId, mut seqs: impl Iterator<Item = u64>) -> bool {
        self.recorded.get(name).is_some_and(|r| r.contains(&call))
            || self.recorded_moments.get(name).is_some_and(|r| seqs.any(|s| r.contains(&s)))
    }
}

impl std::fmt::Debug for Plugins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.slots.iter().map(|s| &s.status.name)).finish()
    }
}

impl Plugins {
    /// Installs `loaded` under `name`, replacing (and re-enabling) a plugin of that name. If the
    /// new module is the same plugin (the same manifest name), its saved per-stakeholder state
    /// is kept: the new version carries on where the old one was; another plugin starts afresh.
    pub fn install(&mut self, name: &str, loaded: Arc<Loaded>) {
        let status = |installs: u32, loaded: &Loaded| PluginStatus {
            name: name.to_string(),
            version: loaded.manifest.version.clone(),
            state: PluginState::Active,
            context: loaded.manifest.context.clone(),
            installs,
            calls: 0,
            failed_calls: 0,
            consecutive_failures: 0,
            moments: 0,
            fuel_used: 0,
            stakeholders_with_state: 0,
            last_failure: None,
        };
        match self.slots.iter_mut().find(|s| s.status.name == name) {
            Some(slot) => {
                if slot.loaded.as_ref().is_none_or(|old| old.manifest.name != loaded.manifest.name) {
                    slot.states = FxHashMap::default();
                }
                let mut fresh = status(slot.status.installs + 1, &loaded);
                fresh.stakeholders_with_state = slot.states.len();
                slot.status = fresh;
                slot.loaded = Some(loaded);
            }
            None => {
                let status = status(1, &loaded);
                self.slots.push(Slot { loaded: Some(loaded), states: FxHashMap::default(), status });
            }
        }
    }

    /// Removes the plugin called `name` and its saved state; false if there is none.
    pub fn remove(&mut self, name: &str) -> bool {
        match self.slots.iter_mut().find(|s| s.status.name == name && s.loaded.is_some()) {
            Some(slot) => {
                slot.loaded = None;
                slot.states = FxHashMap::default();
                slot.status.state = PluginState::Removed;
                slot.status.stakeholders_with_state = 0;
                true
            }
            None => false,
        }
    }

    /// Appends a slot as a snapshot held it (see [`crate::snapshot`]).
    pub(crate) fn restore_slot(
        &mut self,
        loaded: Option<Arc<Loaded>>,
        states: FxHashMap<u32, Vec<u8>>,
        status: PluginStatus,
    ) {
        self.slots.push(Slot { loaded, states, status });
    }

    pub fn status(&self, name: &str) -> Option<&PluginStatus> {
        self.slots.iter().map(|s| &s.status).find(|s| s.name == name)
    }

    pub fn statuses(&self) -> impl Iterator<Item = &PluginStatus> {
        self.slots.iter().map(|s| &s.status)
    }

    /// Runs calls under the wall-clock backstop from now on, or not (see [`Timeouts::backstop`]).
    pub fn set_backstop(&mut self, backstop: bool) {
        self.timeouts.backstop = backstop;
    }

    /// Adds calls to plugin `name` that passed the wall-clock backstop (as logged).
    pub fn record_timeouts(&mut self, name: &str, calls: &[CallId]) {
        self.timeouts.recorded.entry(name.to_string()).or_default().extend(calls.iter().copied());
    }

    /// Adds moments whose call to plugin `name` passed the backstop, as earlier builds logged
    /// them (`plaudit_store::Change::PluginTimeouts`).
    pub fn record_timed_out_moments(&mut self, name: &str, seqs: &[u64]) {
        self.timeouts.recorded_moments.entry(name.to_string()).or_default().extend(seqs.iter().copied());
    }

    /// Forgets the recorded calls (once a replay is done: live calls come after all of them).
    pub fn forget_recorded(&mut self) {
        self.timeouts.recorded = FxHashMap::default();
        self.timeouts.recorded_moments = FxHashMap::default();
    }

    /// Takes the calls that passed the backstop since the last call, by plugin.
    pub fn take_timeouts(&mut self) -> std::collections::BTreeMap<String, Vec<CallId>> {
        let mut by_name: std::collections::BTreeMap<String, Vec<CallId>> = std::collections::BTreeMap::new();
        for (name, call) in self.timeouts.timed_out.drain(..) {
            by_name.entry(name).or_default().push(call);
        }
        by_name
    }

    /// The name of the plugin in slot `slot`.
    pub fn name(&self, slot: u16) -> &str {
        self.slots.get(slot as usize).map_or("plugin", |s| s.status.name.as_str())
    }
}
