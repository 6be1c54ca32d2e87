//! Changes: a rule set published, a plugin installed or removed, the rule set in force applied
//! to history. Each is checked first, recorded in the log after the last record, then applied
//! to the world; a replay applies it at the same point ([`Organisation::apply`]).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use plaudit_core::OrgWorld;
use plaudit_core::application::Mode;
use plaudit_core::ids::{OrgId, Seq};
use plaudit_core::plugins::{LoadError, Loaded, PluginStatus, TimedOutCalls};
use plaudit_core::ruleset::Format;
use plaudit_store::{Change, LoggedChange, Store, StoreError, module_hash};

use super::*;

/// A rule set applied to history ([`Organisation::apply_to_history`]).
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

/// An organisation's history up to a record, as [`Organisation::rebuild_plan`] names it.
#[derive(Debug)]
pub struct RebuildPlan {
    store: Arc<dyn Store>,
    org: OrgId,
    rules: Published,
    until: Seq,
    /// The last change the history includes, by number (see [`ReplayOptions::changes`]).
    changes: u64,
    /// Plugin calls under the wall-clock backstop (an application made now, whose stopped calls
    /// its change records), or not (one replayed from the log, which fails `recorded` again).
    backstop: bool,
    recorded: TimedOutCalls,
}

/// The history of an organisation replayed from the start under one rule set, in a scratch
/// organisation (plugin changes where they were logged): what an application to history
/// merges ([`Organisation::apply_rebuilt_history`]).
pub struct Rebuilt {
    scratch: Organisation,
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
pub fn rebuild(plan: RebuildPlan) -> Result<Rebuilt, OrgError> {
    let options = ReplayOptions {
        candidate: Some((plan.rules.text.as_str(), plan.rules.format)),
        until: plan.until,
        changes: plan.changes,
        snapshot: false,
        backstop: plan.backstop,
        recorded: &plan.recorded,
    };
    let (mut scratch, _) = Organisation::replay(plan.store, plan.org, options, &mut |_, _| {}, Effects::Count)?;
    // Kept on until the catch-up ([`Organisation::caught_up`]) is done too.
    scratch.world.set_backstop(plan.backstop);
    Ok(Rebuilt { scratch, rules: plan.rules })
}

impl Organisation {
    /// Applies a logged change to the world, on replay.
    pub(super) fn apply(&mut self, logged: &LoggedChange) -> Result<(), OrgError> {
        let org = self.org.clone();
        let bad = |detail: String| OrgError::BadChange { org: org.clone(), number: logged.number, detail };
        match &logged.change {
            Change::Rules { text, format } => {
                let doc = plaudit_core::ruleset::parse(text, *format, "rule set").map_err(|e| bad(e.to_string()))?;
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
            Change::Erased { pseudonym } => {
                // Its one effect (`stakeholder_erased`) is numbered in the feed like any other.
                if self.world.erase(pseudonym) {
                    self.effects += 1;
                }
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
            changes: self.changes,
            backstop: true,
            recorded: Vec::new(),
        }
    }

    /// `rebuilt` brought up to the world's last record (see [`Rebuilt`]), rebuilt here if
    /// another rule set came into force since it was planned.
    ///
    /// Returns it with the plugin calls its replay ran that passed the wall-clock backstop, by
    /// plugin (when it ran under the backstop: an application made now, which records them).
    fn caught_up(&self, rebuilt: Rebuilt) -> Result<(OrgWorld, TimedOutCalls), OrgError> {
        let changes = self.store.changes(&self.org)?;
        // An erasure since it was planned rewrote the records it replayed: it is replayed anew.
        let erased_since =
            changes.iter().any(|c| c.number > rebuilt.scratch.changes && matches!(c.change, Change::Erased { .. }));
        let mut rebuilt =
            if rebuilt.rules == self.rules && !erased_since { rebuilt } else { rebuild(self.rebuild_plan())? };
        let scratch = &mut rebuilt.scratch;
        let until = self.world.last_seq();
        if scratch.world.last_seq() < until {
            let later: Vec<LoggedChange> = changes.iter().filter(|c| c.number > scratch.changes).cloned().collect();
            record_timeouts(&mut scratch.world, &later);
            scratch.advance(&changes, (until, self.changes), true, &mut OrgWorld::clear_effects)?;
        }
        let timeouts = scratch.world.take_plugin_timeouts().into_iter().collect();
        Ok((rebuilt.scratch.world, timeouts))
    }

    /// Merges `rebuilt` (see [`Organisation::rebuilt`]) into the world in `mode`; its effects wait
    /// in the world's journal. Returns how many.
    fn apply_rebuilt(&mut self, rebuilt: OrgWorld, mode: Mode) -> Result<usize, OrgError> {
        let n = plaudit_core::retroactive::apply(&mut self.world, rebuilt, mode, self.rules.version).map_err(|e| {
            OrgError::Diverged { org: self.org.clone(), seq: self.world.last_seq(), detail: e.to_string() }
        })?;
        self.effects += n as u64;
        Ok(n)
    }

    /// Applies the rule set in force to the history so far, in `mode` (see
    /// [`plaudit_core::retroactive`]): the history replayed under it in a scratch world, the
    /// application recorded in the log, then merged into the world, its effects fed. Ingestion
    /// waits meanwhile (the replay's time). A replay of the log makes the same application at
    /// the same point. On `Err` nothing changed.
    pub fn apply_to_history(&mut self, mode: Mode) -> Result<Applied, OrgError> {
        self.writable()?;
        let rebuilt = rebuild(self.rebuild_plan())?;
        self.apply_rebuilt_history(rebuilt, mode)
    }

    /// [`Organisation::apply_to_history`] with the replay under the rule set in force already
    /// built ([`rebuild`], on another thread while this organisation went on): it is brought
    /// up to the last record (the records and plugin changes logged since), then applied. The
    /// organisation waits only for that catch-up and the merge. The result is the one
    /// `apply_to_history` gives at this point (a replay of the log makes it so).
    pub fn apply_rebuilt_history(&mut self, rebuilt: Rebuilt, mode: Mode) -> Result<Applied, OrgError> {
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
    fn load(&mut self, name: &str, wasm: &[u8]) -> Result<Loaded, OrgError> {
        let limits = self.world.program().plugin_limits.clone();
        load_module(&mut self.host, &limits, name, wasm)
    }

    /// Publishes a new rule set, in force from the next record: checked, recorded in the log,
    /// then applied (see [`plaudit_core::publish`]). Returns the new version. On `Err` nothing changed.
    pub fn publish_rules(&mut self, text: &str, format: Format) -> Result<&Published, OrgError> {
        self.writable()?;
        let doc = plaudit_core::ruleset::parse(text, format, "rule set")?;
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

    /// Installs `wasm` as plugin `name` (replacing one of that name) from the next record:
    /// compiled and its manifest checked, recorded in the log with its module, then installed.
    /// On `Err` nothing changed.
    pub fn install_plugin(&mut self, name: &str, wasm: &[u8]) -> Result<PluginStatus, OrgError> {
        self.writable()?;
        let limit = self.world.program().plugin_limits.installed;
        if self.plugins.len() >= limit && !self.plugins.contains_key(name) {
            return Err(OrgError::Plugin { name: name.to_string(), source: LoadError::TooMany { limit } });
        }
        let loaded = self.load(name, wasm)?;
        let after = self.world.last_seq();
        let module = module_hash(wasm);
        let change = Change::InstallPlugin { name: name.to_string(), module: module.clone() };
        self.changes = self.store.append_change(&self.org, after, &change, Some(wasm))?;
        self.world.install_plugin(name, Arc::new(loaded));
        tracing::info!(org = %self.org, plugin = name, module = %module, after = after.0, "plugin installed");
        self.plugins.insert(name.to_string(), Installed { module, after });
        self.world.plugin(name).ok_or_else(|| OrgError::Diverged {
            org: self.org.clone(),
            seq: after,
            detail: format!("plugin {name} was installed but the world does not list it"),
        })
    }

    /// Removes plugin `name` and its saved state from the next record; false if there is none.
    pub fn remove_plugin(&mut self, name: &str) -> Result<bool, OrgError> {
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
}
