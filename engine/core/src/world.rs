//! One organisation's world: the bevy `World` holding its stakeholders and the scoring
//! schedule, and the library API the CLI and the server call.
//!
//! A batch goes: [`OrgWorld::ingest`] validates and resolves records (interns ids, creates
//! stakeholders, computes windows) -> the schedule runs the passes in order
//! ([`Pass`]: guard -> rules -> plugins -> effects, after [`passes::warm`] has started loading
//! the chunk's scorecards) -> effects wait in the journal for
//! [`OrgWorld::drain_effects`]. Leaderboards publish lazily: the reads that need rankings run
//! the [`Publishing`] schedule first (see [`crate::leaderboard`]). The passes do no IO and never
//! block; this type is the only place the world is touched.

use std::sync::Arc;

use bevy_ecs::prelude::*;
use bevy_ecs::schedule::SingleThreadedExecutor;
use plaudit_sdk::{Effect, Record};

use crate::batch::{Awards, Batch, Chunk, PluginActs, Source};
use crate::calendar::PeriodCache;
use crate::components::Details;
use crate::history::History;
use crate::ids::Seq;
use crate::insights::{Insights, reads::Reader};
use crate::intern::Interner;
use crate::journal::{EffectRec, Journal, Names, render};
use crate::leaderboard::{Boards, PublishQueue, StreakSweep};
use crate::passes::{Pass, Publishing, Scoring};
use crate::plugins::{CallId, Loaded, PluginStatus, Plugins};
use crate::resolve::{Admission, Arrival, Outcome, Resolved, Resolver};
use crate::resources::{Directory, ProgramRes, Vocab};
use crate::ruleset::program::Program;
use crate::team::TeamChallenges;
use crate::{leaderboard, passes};

/// A rule set compiled against a world's vocabulary and checked to be publishable there.
#[derive(Debug)]
pub struct Prepared {
    program: Program,
    vocab: Interner,
}

/// One organisation's scoring world.
pub struct OrgWorld {
    world: World,
    schedule: Schedule,
    publishing: Schedule,
    periods: PeriodCache,
}

impl std::fmt::Debug for OrgWorld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrgWorld")
            .field("org", &self.program().org_id)
            .field("stakeholders", &self.stakeholders())
            .finish()
    }
}

impl OrgWorld {
    /// A world for `program`, whose symbols live in `vocab`.
    pub fn new(program: Program, vocab: Interner) -> OrgWorld {
        let mut world = World::new();
        // Registered up front, so that queries over stakeholders (snapshots, memory reports)
        // exist before the first profile with a name.
        world.register_component::<Details>();
        world.insert_resource(Boards::new(&program));
        world.insert_resource(ProgramRes(Arc::new(program)));
        world.insert_resource(Vocab(vocab));
        world.init_resource::<Directory>();
        world.init_resource::<Batch>();
        world.init_resource::<Awards>();
        world.init_resource::<PluginActs>();
        world.init_resource::<Plugins>();
        world.init_resource::<Journal>();
        world.init_resource::<History>();
        world.init_resource::<TeamChallenges>();
        world.init_resource::<Insights>();
        world.init_resource::<PublishQueue>();
        world.init_resource::<StreakSweep>();
        let mut schedule = Schedule::new(Scoring);
        schedule.set_executor(SingleThreadedExecutor::new());
        schedule.configure_sets((Pass::Guard, Pass::Rules, Pass::Plugins, Pass::Effects).chain());
        schedule.add_systems((
            passes::warm::warm.before(Pass::Guard),
            passes::guard::screen.in_set(Pass::Guard),
            passes::rules::score.in_set(Pass::Rules),
            passes::plugins::run.in_set(Pass::Plugins),
            passes::effects::apply.in_set(Pass::Effects),
        ));
        let mut publishing = Schedule::new(Publishing);
        publishing.set_executor(SingleThreadedExecutor::new());
        publishing.add_systems(leaderboard::publish);
        OrgWorld { world, schedule, publishing, periods: PeriodCache::default() }
    }

    /// Compiles a rule set into a fresh world.
    pub fn from_doc(doc: &crate::ruleset::RuleSetDoc, origin: &str) -> Result<OrgWorld, crate::ruleset::RuleSetError> {
        let mut vocab = Interner::new();
        let program = crate::ruleset::compile::compile(doc, &mut vocab, origin)?;
        Ok(OrgWorld::new(program, vocab))
    }

    /// Compiles a TOML rule-set file into a fresh world.
    pub fn from_rules_file(path: &std::path::Path) -> Result<OrgWorld, crate::ruleset::RuleSetError> {
        let mut vocab = Interner::new();
        let (_, program) = crate::ruleset::load(path, &mut vocab)?;
        Ok(OrgWorld::new(program, vocab))
    }

    pub fn program(&self) -> &Program {
        &self.world.resource::<ProgramRes>().0
    }

    /// Whether stakeholder `id` was ever seen (in a profile or a moment).
    pub fn has_stakeholder(&self, id: &str) -> bool {
        self.world.resource::<Directory>().ids.get(id).is_some()
    }

    pub fn stakeholders(&self) -> usize {
        self.world.resource::<Directory>().entries.len()
    }

    /// Publishes `doc` as the rule set from the next record on: everything stakeholders have
    /// carries over by id (see [`crate::publish`]). On `Err` (the rule set is invalid, or
    /// changes the organisation's id or time zone) nothing changed. Effects still waiting in the
    /// journal are returned, rendered under the version that produced them.
    pub fn publish_rules(
        &mut self,
        doc: &crate::ruleset::RuleSetDoc,
        origin: &str,
    ) -> Result<Vec<Effect>, crate::ruleset::RuleSetError> {
        let prepared = self.prepare_rules(doc, origin)?;
        Ok(self.publish_prepared(prepared))
    }

    /// The checks and the compilation of [`OrgWorld::publish_rules`], changing nothing: the log
    /// step records a version only once it is known to apply.
    pub fn prepare_rules(
        &self,
        doc: &crate::ruleset::RuleSetDoc,
        origin: &str,
    ) -> Result<Prepared, crate::ruleset::RuleSetError> {
        let mut vocab = self.world.resource::<Vocab>().0.clone();
        let program = crate::ruleset::compile::compile(doc, &mut vocab, origin)?;
        let problems = crate::publish::check_compatible(self.program(), &program);
        if !problems.is_empty() {
            return Err(crate::ruleset::RuleSetError::Invalid { origin: origin.to_string(), problems });
        }
        Ok(Prepared { program, vocab })
    }

    /// Publishes a rule set [`OrgWorld::prepare_rules`] accepted.
    pub fn publish_prepared(&mut self, prepared: Prepared) -> Vec<Effect> {
        let pending = self.drain_effects();
        let seq = self.last_seq().0;
        let old = Arc::clone(&self.world.resource::<ProgramRes>().0);
        crate::publish::carry_over(&mut self.world, prepared.program, seq);
        let new = Arc::clone(&self.world.resource::<ProgramRes>().0);
        self.world.resource_mut::<Insights>().forget_program(&old, &new);
        self.world.insert_resource(Vocab(prepared.vocab));
        self.periods = PeriodCache::default();
        pending
    }

    /// Whether `id` names a stakeholder of this world (one not erased).
    pub fn knows(&self, id: &str) -> bool {
        let dir = self.world.resource::<Directory>();
        dir.ids.get(id).is_some_and(|no| !dir.is_erased(no))
    }

    /// Erases the stakeholder known as `pseudonym` (the id an erasure gave them in the log:
    /// the store rewrote every record naming them). They leave every leaderboard, their own
    /// balances, badges and progress go, and from here on nothing is given to or taken from
    /// them (a retraction of one of their moments still takes back what it gave others); the
    /// moments others took part in with them keep their effects. One `stakeholder_erased` effect.
    /// False, changing nothing, if no stakeholder is known by `pseudonym` or they were erased.
    pub fn erase(&mut self, pseudonym: &str) -> bool {
        let seq = self.last_seq().0;
        let mut dir = self.world.resource_mut::<Directory>();
        let Some(no) = dir.ids.get(pseudonym) else { return false };
        if !dir.erased.insert(no) {
            return false;
        }
        let entity = dir.entries[no as usize].entity;
        if let Some(mut card) = self.world.get_mut::<crate::components::Scorecard>(entity) {
            let identity = card.identity;
            let mut standing = std::mem::take(&mut card.standing);
            // Entries at 0 leave their boards when published; the erased are never put back.
            standing.entries.iter_mut().for_each(|e| e.value = 0);
            *card = crate::components::Scorecard { standing, ..crate::components::Scorecard::new(identity) };
            self.world.resource_mut::<PublishQueue>().push(entity);
        }
        use crate::journal::{Kind, NO_MOMENT, Source as By};
        let record = EffectRec { seq, moment: NO_MOMENT, stakeholder: no, source: By::Erasure, kind: Kind::Erased };
        self.world.resource_mut::<Journal>().push(record);
        true
    }

    /// The sequence number of the last accepted record.
    pub fn last_seq(&self) -> Seq {
        Seq(self.world.resource::<History>().last_seq)
    }

    /// Installs a plugin under `name`, replacing one of that name (see [`Plugins::install`]).
    /// The world is only ever between batches here, so no moment sees half of a reload.
    pub fn install_plugin(&mut self, name: &str, loaded: Arc<Loaded>) {
        self.world.resource_mut::<Plugins>().install(name, loaded);
    }

    /// Removes the plugin called `name` and its saved state; false if there is none.
    pub fn remove_plugin(&mut self, name: &str) -> bool {
        self.world.resource_mut::<Plugins>().remove(name)
    }

    /// Plugin calls run under the wall-clock backstop (the default: live scoring), or not (a
    /// replay of the log: fuel bounds them, and the calls the log records as having passed it
    /// fail again without running).
    pub fn set_backstop(&mut self, backstop: bool) {
        self.world.resource_mut::<Plugins>().set_backstop(backstop);
    }

    /// Calls to plugin `name` that passed the wall-clock backstop when first scored, as the log
    /// records them: they fail again without running.
    pub fn record_plugin_timeouts(&mut self, name: &str, calls: &[CallId]) {
        self.world.resource_mut::<Plugins>().record_timeouts(name, calls);
    }

    /// Moments whose call to plugin `name` passed the backstop, as earlier builds logged them:
    /// every call holding one fails again without running.
    pub fn record_timed_out_moments(&mut self, name: &str, seqs: &[u64]) {
        self.world.resource_mut::<Plugins>().record_timed_out_moments(name, seqs);
    }

    /// Forgets the recorded plugin timeouts (a replay is over; live calls come after them all).
    pub fn forget_plugin_timeouts(&mut self) {
        self.world.resource_mut::<Plugins>().forget_recorded();
    }

    /// Takes, by plugin, the calls that passed the backstop since the last call: the log step
    /// records them.
    pub fn take_plugin_timeouts(&mut self) -> std::collections::BTreeMap<String, Vec<CallId>> {
        self.world.resource_mut::<Plugins>().take_timeouts()
    }

    /// The organisation's plugins, in install order.
    pub fn plugins(&self) -> Vec<PluginStatus> {
        self.world.resource::<Plugins>().statuses().cloned().collect()
    }

    pub fn plugin(&self, name: &str) -> Option<PluginStatus> {
        self.world.resource::<Plugins>().status(name).cloned()
    }

    pub(crate) fn world(&self) -> &World {
        &self.world
    }

    pub(crate) fn world_mut(&mut self) -> &mut World {
        &mut self.world
    }

    /// Reads insights (see [`crate::insights::reads`]): `read` gets a reader over this world.
    pub fn insights<R>(&mut self, read: impl FnOnce(&mut Reader) -> R) -> R {
        self.world.resource_scope(|w, mut insights: Mut<Insights>| {
            let history = w.resource::<History>();
            let mut reader = Reader {
                insights: &mut insights,
                program: &w.resource::<ProgramRes>().0,
                vocab: &w.resource::<Vocab>().0,
                dir: w.resource::<Directory>(),
                latest_at: history.latest_at,
                world: w,
            };
            read(&mut reader)
        })
    }

    /// Brings the leaderboards up to date with every entry scoring changed (see
    /// [`crate::leaderboard`]). The reads that show ranks call it; it is cheap when nothing
    /// changed.
    pub fn publish_leaderboards(&mut self) {
        if !self.world.resource::<PublishQueue>().is_empty() {
            self.publishing.run(&mut self.world);
        }
    }

    /// Scores a batch of records, in order. Invalid records are refused (and reported) without
    /// affecting the others; duplicates are counted and score nothing.
    pub fn ingest<I: IntoIterator<Item = Record>>(&mut self, records: I) -> Outcome {
        self.ingest_shared(Arc::new(records.into_iter().collect()))
    }

    /// [`OrgWorld::ingest`] of records someone else reads too.
    pub fn ingest_shared(&mut self, records: Arc<Vec<Record>>) -> Outcome {
        self.ingest_arrivals(records, &[Arrival::default()])
    }

    /// [`OrgWorld::ingest`] of records that arrived as `arrivals` (by their first record's
    /// index, in order, the first at 0): a replay of several segments of the log.
    pub fn ingest_arrivals(&mut self, records: Arc<Vec<Record>>, arrivals: &[Arrival]) -> Outcome {
        let mut outcome = self.resolve(records, arrivals).outcome;
        outcome.effects = self.score_resolved();
        outcome
    }

    /// The first half of [`OrgWorld::ingest_shared`]: `records` checked and resolved in order
    /// (duplicates dropped, ids interned, stakeholders created, profiles applied, sequence
    /// numbers given), not yet scored; what became of each. The log step hands the accepted
    /// ones to its commit while [`OrgWorld::score_resolved`] scores them.
    pub fn resolve(&mut self, records: Arc<Vec<Record>>, arrivals: &[Arrival]) -> Resolved {
        self.resolve_admitted(records, arrivals, Admission::default())
    }

    /// [`OrgWorld::resolve`] of live arrivals, refusing what `admission` does not admit (moments
    /// dated outside its window, stakeholders beyond its quota) as records refused alone.
    pub fn resolve_admitted(
        &mut self,
        records: Arc<Vec<Record>>,
        arrivals: &[Arrival],
        admission: Admission,
    ) -> Resolved {
        let mut resolved = Resolved { outcome: Outcome::default(), accepted: Vec::with_capacity(records.len()) };
        let mut batch = std::mem::take(&mut *self.world.resource_mut::<Batch>());
        let program = Arc::clone(&self.world.resource::<ProgramRes>().0);
        let periods = &mut self.periods;
        self.world.resource_scope(|world, mut history: Mut<History>| {
            world.resource_scope(|world, mut dir: Mut<Directory>| {
                world.resource_scope(|world, mut vocab: Mut<Vocab>| {
                    let mut resolver = Resolver {
                        world,
                        history: &mut history,
                        dir: &mut dir,
                        vocab: &mut vocab,
                        program: &program,
                        periods,
                        admission,
                    };
                    resolver.run(&records, arrivals, &mut batch, &mut resolved);
                })
            })
        });
        batch.source = Source(records);
        self.world.insert_resource(batch);
        resolved
    }

    /// The second half of [`OrgWorld::ingest_shared`]: the batch [`OrgWorld::resolve`] just
    /// resolved, scored (once: call it once per `resolve`). Returns the effects it produced,
    /// waiting in the journal.
    pub fn score_resolved(&mut self) -> usize {
        let before = self.world.resource::<Journal>().produced;
        let chunks = self.world.resource_mut::<Batch>().plan_calls();
        // At least one run: an empty batch runs the passes over nothing, as it always did.
        if chunks.is_empty() {
            self.world.resource_mut::<Batch>().select(Chunk::default());
            self.schedule.run(&mut self.world);
        }
        for chunk in chunks {
            self.world.resource_mut::<Batch>().select(chunk);
            self.schedule.run(&mut self.world);
        }
        self.sweep_lapsed_streaks();
        (self.world.resource::<Journal>().produced - before) as usize
    }

    /// Streak leaderboards follow the organisation's clock (the latest moment's time): a run
    /// that has lapsed leaves its boards without waiting for the person's next moment. Looks
    /// when the clock enters a new period of a streak that an unwindowed board ranks, at every
    /// stakeholder (a board's value is then the run as of the clock, whenever it looked: a replay
    /// that scores several segments at once ends in the same state). Windowed streak boards
    /// sum a window's changes and are left to the next moment.
    fn sweep_lapsed_streaks(&mut self) {
        let program = Arc::clone(&self.world.resource::<ProgramRes>().0);
        if program.watchers.boards_by_streak.iter().all(Vec::is_empty) {
            return;
        }
        let Some(now) = self.world.resource::<History>().latest_at else { return };
        let mut due: Vec<(u16, i32, Vec<u16>)> = Vec::new();
        {
            let mut sweep = self.world.resource_mut::<StreakSweep>();
            sweep.upto.resize(program.streaks.len(), i32::MIN);
            for (s, boards) in program.watchers.boards_by_streak.iter().enumerate() {
                let boards: Vec<u16> =
                    boards.iter().copied().filter(|&b| program.leaderboards[b as usize].window.is_none()).collect();
                let current = program.calendar.period_index(program.streaks[s].period, now);
                if boards.is_empty() || sweep.upto[s] >= current {
                    continue;
                }
                sweep.upto[s] = current;
                due.push((s as u16, current, boards));
            }
        }
        if due.is_empty() {
            return;
        }
        let mut queue = std::mem::take(&mut *self.world.resource_mut::<PublishQueue>());
        let mut cards = self.world.query::<(Entity, &mut crate::components::Scorecard)>();
        for (entity, mut card) in cards.iter_mut(&mut self.world) {
            for (s, current, boards) in &due {
                let Some(slot) = card.tally.get(crate::components::tally_key::STREAK | u32::from(*s)) else { continue };
                if slot.b & 0xFFFF_FFFF == 0 || !program.streaks[*s as usize].lapsed(*current, slot.a) {
                    continue;
                }
                for &b in boards {
                    let entries = &mut card.standing.entries;
                    if let Ok(i) = entries.binary_search_by_key(&b, |e| e.board)
                        && entries[i].value != 0
                    {
                        entries[i].value = 0;
                        queue.push(entity);
                    }
                }
            }
        }
        self.world.insert_resource(queue);
    }

    /// Makes room for `records` more moment ids, so that a replay that knows its length does
    /// not grow the id table step by step.
    pub fn reserve_moments(&mut self, records: usize) {
        self.world.resource_mut::<History>().ids.reserve(records);
    }

    /// Whether the effects scoring produces are kept for [`OrgWorld::take_effect_records`] and
    /// the like (the default), or only counted: for a replay that would drop them unread.
    pub fn keep_effects(&mut self, keep: bool) {
        self.world.resource_mut::<Journal>().keep = keep;
    }

    /// Takes the records of the batch scored last out of the world (the passes are done with
    /// them), so that the caller can let go of them where it likes: a replay frees them on its
    /// reader thread, which allocated them, rather than on the scoring one.
    pub fn release_records(&mut self) -> Arc<Vec<Record>> {
        std::mem::take(&mut self.world.resource_mut::<Batch>().source).0
    }

    /// Takes the effects produced since the last call, compact.
    pub fn take_effect_records(&mut self) -> Vec<EffectRec> {
        std::mem::take(&mut self.world.resource_mut::<Journal>().records)
    }

    /// Drops the effects produced since the last call (when only the state matters).
    pub fn clear_effects(&mut self) {
        self.world.resource_mut::<Journal>().records.clear();
    }

    /// Takes the effects produced since the last call, rendered.
    pub fn drain_effects(&mut self) -> Vec<Effect> {
        let recs = self.take_effect_records();
        recs.iter().map(|r| self.render(r)).collect()
    }

    pub fn render(&self, r: &EffectRec) -> Effect {
        let history = self.world.resource::<History>();
        let dir = self.world.resource::<Directory>();
        let moment = |m: u32| history.ids.resolve(m);
        let stakeholder = |s: u32| dir.ids.resolve(s);
        let plugins = self.world.resource::<Plugins>();
        let plugin = |slot: u16| plugins.name(slot);
        render(r, &Names { program: self.program(), moment: &moment, stakeholder: &stakeholder, plugin: &plugin })
    }
}
