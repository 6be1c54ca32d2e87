//! The effects pass: applies the batch's award requests and advances everything that follows
//! from a moment, strictly in moment order, so that state and effects are the same whatever the
//! batch boundaries:
//!
//! 1. awards -> balances -> levels, badges on currencies, leaderboard entries;
//! 2. metrics (counts of matching moments, distinct counterparts/teams/channels) -> badges;
//! 3. streaks -> badges on streaks;
//! 4. challenges (individual and team) -> completion rewards and badges;
//! 5. retractions: the compensating entries of a withdrawn moment.
//!
//! Owns the [`Wallet`], [`Tally`] and pending [`Standing`] parts of a [`Scorecard`], the
//! challenge part of its [`Seen`], the [`History`] ledger and [`TeamChallenges`], and records
//! for [`Insights`] each moment as it reaches it and each effect as it emits it. Does not
//! publish leaderboards (it queues the stakeholders whose entries changed; see
//! [`crate::leaderboard`]) and does no IO.

use bevy_ecs::prelude::*;

use crate::batch::{Action, Awards, Batch, Hold, MomentRec, PluginActs, PluginWhat, first};
use crate::bounds::Bound;
use crate::components::{Scorecard, Seen, Standing, Tally, Wallet, seen_tag, tally_key};
use crate::history::{Earned, History};
use crate::insights::Insights;
use crate::journal::{EffectRec, Journal, Kind, Source};
use crate::leaderboard::PublishQueue;
use crate::prefetch::{AHEAD, prefetch_items};
use crate::resources::{Directory, ProgramRes};
use crate::ruleset::program::{
    BadgeShape, ChallengeWindow, CurrencyIx, Distinct, MetricKind, MetricRef, Program, Reward,
};
use crate::team::TeamChallenges;
use crate::team::TeamProgress;

pub mod retraction;

/// Rewards may trigger badges whose rewards trigger badges: this bounds the cascade.
const MAX_CASCADE: u8 = 4;

pub(crate) type StateQuery<'w, 's> = Query<'w, 's, &'static mut Scorecard>;

/// One stakeholder's state, fetched once and borrowed for one step: each lookup of an entity's
/// components is a chain of dependent memory reads, so the pass makes as few as it can.
pub(crate) struct Member<'a> {
    pub(crate) entity: Entity,
    pub(crate) ext: u32,
    pub(crate) wallet: &'a mut Wallet,
    pub(crate) tally: &'a mut Tally,
    pub(crate) seen: &'a mut Seen,
    pub(crate) standing: &'a mut Standing,
}

impl<'a> Member<'a> {
    fn new(entity: Entity, card: Mut<'a, Scorecard>) -> Member<'a> {
        let card = card.into_inner();
        Member {
            entity,
            ext: card.identity.ext,
            wallet: &mut card.wallet,
            tally: &mut card.tally,
            seen: &mut card.seen,
            standing: &mut card.standing,
        }
    }
}

pub(crate) fn member<'a>(q: &'a mut StateQuery, e: Entity) -> Option<Member<'a>> {
    q.get_mut(e).ok().map(|item| Member::new(e, item))
}

/// The actor and the counterpart of `m`, fetched together: one lookup each for the whole
/// moment, whatever the number of awards.
fn pair<'a>(q: &'a mut StateQuery, m: &MomentRec) -> (Option<Member<'a>>, Option<Member<'a>>) {
    match m.counterpart {
        None => (member(q, m.actor), None),
        // Never the same entity: a moment's counterpart differs from its actor.
        Some(c) => match q.get_many_mut([m.actor, c]) {
            Ok([a, b]) => (Some(Member::new(m.actor, a)), Some(Member::new(c, b))),
            Err(_) => (None, None),
        },
    }
}

/// Which of the pair an award or a plugin's act goes to (rules and plugins only ever name
/// the actor or the counterpart).
fn of_pair<'p, 'a>(pair: &'p mut (Option<Member<'a>>, Option<Member<'a>>), to: Entity) -> Option<&'p mut Member<'a>> {
    match pair {
        (Some(a), _) if a.entity == to => Some(a),
        (_, Some(c)) if c.entity == to => Some(c),
        _ => None,
    }
}

#[allow(clippy::too_many_arguments)]
pub fn apply(
    program: Res<ProgramRes>,
    batch: Res<Batch>,
    awards: Res<Awards>,
    acts: Res<PluginActs>,
    mut journal: ResMut<Journal>,
    mut history: ResMut<History>,
    dir: Res<Directory>,
    mut teams: ResMut<TeamChallenges>,
    mut queue: ResMut<PublishQueue>,
    mut insights: ResMut<Insights>,
    mut sweep: ResMut<crate::leaderboard::StreakSweep>,
    mut q: StateQuery,
) {
    let mut out = Out {
        p: &program.0,
        journal: &mut journal,
        history: &mut history,
        dir: &dir,
        queue: &mut queue,
        insights: &mut insights,
        completing: false,
        activity: Activity::default(),
        late: false,
        resweep: false,
    };
    let mut completions = Vec::new();
    let mut next_award = 0;
    let mut next_act = 0;
    for ix in batch.chunk.clone() {
        let m = &batch.records[ix];
        if let Some(ahead) = batch.records.get(ix + AHEAD) {
            prefetch_ahead(&q, ahead);
        }
        match m.action {
            Action::Retract => {
                retraction::retract(&mut out, &mut q, m);
                continue;
            }
            Action::Guarded(reason) => {
                out.insights.moment(m);
                if let Some(who) = member(&mut q, m.actor) {
                    out.emit(m, &who, Source::Guard, Kind::Guarded(reason));
                }
                continue;
            }
            Action::Score => out.insights.moment(m),
        }
        let mut both = pair(&mut q, m);
        while let Some(a) = awards.0.get(next_award).filter(|a| a.record as usize == ix) {
            next_award += 1;
            let Some(who) = of_pair(&mut both, a.to) else { continue };
            let (currency, amount) = (a.currency, a.amount);
            match a.withheld {
                Hold::No => out.credit(m, who, currency, amount, a.source.into(), 0),
                Hold::Cap => out.emit(m, who, a.source.into(), Kind::Withheld { currency, amount, reason: None }),
                Hold::Plugin(r) => {
                    let reason = acts.reasons.get(r as usize).cloned();
                    out.emit(m, who, a.source.into(), Kind::Withheld { currency, amount, reason });
                }
                Hold::Bound => out.beyond(m, who, a.source.into(), currency, amount, Bound::Award),
            }
        }
        // Plugins' badges and custom effects come after the moment's points.
        while let Some(act) = acts.acts.get(next_act).filter(|a| a.record as usize == ix) {
            next_act += 1;
            let Some(who) = of_pair(&mut both, act.to) else { continue };
            match &act.what {
                PluginWhat::Badge(b) => out.grant_badge(m, who, *b, 0),
                PluginWhat::Custom(c) => out.emit(m, who, Source::Plugin(act.plugin), Kind::Custom(c.clone())),
            }
        }
        let attrs = batch.source.attrs(m);
        if let Some(actor) = &mut both.0 {
            out.activity = Activity::default();
            out.metrics(m, actor, attrs);
            out.streaks(m, actor, attrs);
            out.challenges(m, actor, attrs, &mut teams, &mut completions);
            if out.activity.0 != 0 {
                out.history.set_activity(m.moment, out.activity.0);
            }
        }
        // Team challenges completed by this moment reward every contributor.
        for (who, ci, window) in completions.drain(..) {
            if let Some(mut who) = member(&mut q, who) {
                out.completed(m, &mut who, ci, window);
            }
        }
    }
    if out.resweep {
        sweep.upto.clear();
    }
}

/// Starts loading what the effects pass will read of `m`'s stakeholders.
fn prefetch_ahead(q: &StateQuery, m: &MomentRec) {
    if m.action == Action::Retract {
        return;
    }
    for e in std::iter::once(m.actor).chain(m.counterpart) {
        if let Ok(card) = q.get(e) {
            prefetch_items(&card.wallet.0);
            prefetch_items(&card.tally.0);
            prefetch_items(&card.standing.entries);
            // Only the actor's challenges read what it has met.
            if let (true, Seen::Small(v)) = (e == m.actor, &card.seen) {
                prefetch_items(v);
            }
        }
    }
}

/// Which of the metrics, streaks and challenges listed for a moment's kind (in that order, by
/// position in the kind's lists) its attributes matched: kept per moment
/// ([`crate::history::MomentInfo::activity`]) so that a retraction can recount the actor's
/// activity without the attributes. Positions past 63 are not kept (see the rule-set reference).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Activity(pub u64);

impl Activity {
    /// The bit of the item at `pos` of the kind's concatenated lists.
    #[inline]
    pub(crate) fn bit(pos: usize) -> u64 {
        if pos < 64 { 1 << pos } else { 0 }
    }

    /// Where the streaks' and the challenges' positions start for a moment of `kind`.
    #[inline]
    pub(crate) fn offsets(p: &Program, kind: crate::ids::Sym) -> (usize, usize) {
        let metrics = p.metrics_by_kind.get(kind).len();
        (metrics, metrics + p.streaks_by_kind.get(kind).len())
    }
}

/// Where the pass writes: the journal, the ledger, the publish queue.
pub(crate) struct Out<'a> {
    pub(crate) p: &'a Program,
    pub(crate) journal: &'a mut Journal,
    pub(crate) history: &'a mut History,
    /// Who a ledger entry's stakeholder is (a retraction reverses what it earned).
    pub(crate) dir: &'a Directory,
    pub(crate) queue: &'a mut PublishQueue,
    pub(crate) insights: &'a mut Insights,
    /// Set while a challenge's completion is being given: its ledger entries say so.
    completing: bool,
    /// Which activity the moment being scored matched ([`Activity`]).
    activity: Activity,
    /// Set while a retraction gives what an earlier moment now earns (see [`Out::late`]).
    late: bool,
    /// A retraction recounted a streak: lapsed streaks are to be swept again before a read.
    pub(crate) resweep: bool,
}

impl Out<'_> {
    pub(crate) fn emit(&mut self, m: &MomentRec, who: &Member, source: Source, kind: Kind) {
        self.insights.effect(self.p, m.moment, who.ext, &kind);
        self.journal.push(EffectRec { seq: m.seq, moment: m.moment, stakeholder: who.ext, source, kind });
    }

    /// An effect for the feed alone: one the insights are told of otherwise (a retraction's).
    pub(crate) fn journal_only(&mut self, m: &MomentRec, who: &Member, source: Source, kind: Kind) {
        self.journal.push(EffectRec { seq: m.seq, moment: m.moment, stakeholder: who.ext, source, kind });
    }

    /// Runs `give` for an earlier moment than the one being scored (a retraction's recount):
    /// its ledger entries go after that moment's others ([`History::record_late`]).
    pub(crate) fn late(&mut self, give: impl FnOnce(&mut Self)) {
        self.late = true;
        give(self);
        self.late = false;
    }

    /// Writes to the ledger what `m` gave `who`, and what gave it.
    #[inline]
    fn record(&mut self, m: &MomentRec, who: &Member, source: Source, earned: Earned) {
        let origin = self.history.origins.of(source, self.p);
        if self.late {
            self.history.record_late(m.moment, who.ext, origin, self.completing, earned);
        } else {
            self.history.record(m.moment, who.ext, origin, self.completing, earned);
        }
    }

    /// Adds `amount` of `currency` to the balance, and everything that follows from it.
    fn credit(
        &mut self,
        m: &MomentRec,
        who: &mut Member,
        currency: CurrencyIx,
        amount: i64,
        source: Source,
        depth: u8,
    ) {
        let old = who.wallet.balance(currency);
        let (given, new) = who.wallet.credit(self.p.currencies.len(), currency, amount);
        if given != amount {
            self.beyond(m, who, source, currency, amount - given, Bound::Balance);
            if given == 0 {
                return;
            }
        }
        self.emit(m, who, source, Kind::Points { currency, amount: given, balance: new });
        self.record(m, who, source, Earned::Points { currency, amount: given });
        self.changed(m, who, MetricRef::Currency(currency), old, new, depth);
        if self.p.levels.as_ref().is_some_and(|l| l.currency == currency) {
            self.level(m, who, new);
        }
    }

    /// `amount` of an award held back by `bound` (see [`crate::bounds`]).
    fn beyond(&mut self, m: &MomentRec, who: &Member, source: Source, currency: CurrencyIx, amount: i64, bound: Bound) {
        let reason = Some(crate::bounds::withheld_reason(bound).into());
        self.emit(m, who, source, Kind::Withheld { currency, amount, reason });
    }

    /// A measured quantity went from `old` to `new`: update leaderboard entries and badges.
    fn changed(&mut self, m: &MomentRec, who: &mut Member, metric: MetricRef, old: i64, new: i64, depth: u8) {
        let p = self.p;
        for &b in p.watchers.boards(metric) {
            let e = who.standing.entry(b);
            match p.leaderboards[b as usize].window {
                None => e.value = new,
                Some(period) => {
                    let w = m.window(period.into());
                    if w < e.window && e.value != 0 {
                        continue; // a late moment: its window is over
                    }
                    if w != e.window {
                        e.window = w;
                        e.value = 0;
                    }
                    e.value = crate::bounds::sum(e.value, new.saturating_sub(old));
                }
            }
            e.seq = m.seq;
            self.enqueue(who);
        }
        for &b in p.watchers.badges(metric) {
            self.badge_progress(m, who, b, new, depth);
        }
    }

    /// Queues `who` for publishing to the leaderboards (once until then).
    pub(crate) fn enqueue(&mut self, who: &mut Member) {
        self.queue.push(who.entity);
    }

    fn level(&mut self, m: &MomentRec, who: &mut Member, balance: i64) {
        let Some(levels) = &self.p.levels else { return };
        let reached = levels.reached(balance);
        // Read first: a slot is made only once there is something to keep in it.
        let had = who.tally.value(tally_key::LEVEL);
        if reached > had {
            who.tally.slot(tally_key::LEVEL).b = reached;
            for index in had..reached {
                self.emit(m, who, Source::Level, Kind::Level { index: index as u32 });
                self.record(m, who, Source::Level, Earned::Level { index: index as u32 });
            }
        }
    }

    /// Badge `b` watches a metric that is now `value`.
    fn badge_progress(&mut self, m: &MomentRec, who: &mut Member, b: u16, value: i64, depth: u8) {
        let badge = &self.p.badges[b as usize];
        if value < badge.shape.first_at() {
            return; // nothing earned below the first threshold, whatever was earned before
        }
        let key = tally_key::BADGE | u32::from(b);
        // Most changes earn nothing: a badge's slot is made only when it is first earned, so
        // a stakeholder's tally holds no empty slot for every badge its metrics are watched by.
        let had = who.tally.value(key);
        let now = match &badge.shape {
            BadgeShape::Once(t) => i64::from(value >= *t).max(had),
            BadgeShape::Tiers(tiers) => tiers.iter().take_while(|t| value >= t.at).count() as i64,
            BadgeShape::Every(n) => value.div_euclid(*n).max(had),
            BadgeShape::Granted => had,
        };
        if now <= had {
            return;
        }
        who.tally.slot(key).b = now;
        if let BadgeShape::Tiers(tiers) = &badge.shape {
            for tier in had..now {
                self.earned_badge(m, who, b, Some(tier as u8), (tier + 1) as u32);
                self.rewards(m, who, &tiers[tier as usize].reward, Source::Badge(b), depth);
            }
        } else {
            self.earned_badge(m, who, b, None, now as u32);
            for _ in had..now {
                self.rewards(m, who, &badge.reward, Source::Badge(b), depth);
            }
        }
    }

    fn earned_badge(&mut self, m: &MomentRec, who: &Member, badge: u16, tier: Option<u8>, count: u32) {
        self.emit(m, who, Source::Badge(badge), Kind::Badge { badge, tier, count });
        self.record(m, who, Source::Badge(badge), Earned::Badge { badge, tier });
    }

    /// A challenge grants badge `b` outright.
    fn grant_badge(&mut self, m: &MomentRec, who: &mut Member, b: u16, depth: u8) {
        let slot = who.tally.slot(tally_key::BADGE | u32::from(b));
        slot.b = slot.b.saturating_add(1);
        let count = u32::try_from(slot.b).unwrap_or(u32::MAX);
        self.earned_badge(m, who, b, None, count);
        let reward = &self.p.badges[b as usize].reward;
        self.rewards(m, who, reward, Source::Badge(b), depth);
    }

    fn rewards(&mut self, m: &MomentRec, who: &mut Member, rewards: &[Reward], source: Source, depth: u8) {
        if depth >= MAX_CASCADE {
            return;
        }
        for r in rewards {
            self.credit(m, who, r.currency, r.amount, source, depth + 1);
        }
    }

    fn metrics(&mut self, m: &MomentRec, who: &mut Member, attrs: &plaudit_sdk::Attrs) {
        for (pos, &i) in self.p.metrics_by_kind.get(m.kind).iter().enumerate() {
            let metric = &self.p.metrics[i as usize];
            let counts = match &metric.kind {
                MetricKind::Count(matcher) => {
                    let matched = matcher.matches(m, attrs);
                    if matched {
                        self.activity.0 |= Activity::bit(pos);
                    }
                    matched
                }
                MetricKind::Distinct(Distinct::Counterparts) => m.first & first::COUNTERPART != 0,
                MetricKind::Distinct(Distinct::Teams) => m.first & first::TEAM != 0,
                MetricKind::Distinct(Distinct::Channels) => m.first & first::CHANNEL != 0,
            };
            if counts {
                let slot = who.tally.slot(tally_key::METRIC | u32::from(i));
                slot.b = slot.b.saturating_add(1);
                let new = slot.b;
                self.changed(m, who, MetricRef::Metric(i), new - 1, new, 0);
            }
        }
    }

    fn streaks(&mut self, m: &MomentRec, who: &mut Member, attrs: &plaudit_sdk::Attrs) {
        let (first, _) = Activity::offsets(self.p, m.kind);
        for (pos, &si) in self.p.streaks_by_kind.get(m.kind).iter().enumerate() {
            let s = &self.p.streaks[si as usize];
            if !s.matcher.matches(m, attrs) {
                continue;
            }
            self.activity.0 |= Activity::bit(first + pos);
            let slot = who.tally.slot(tally_key::STREAK | u32::from(si));
            let Some((len, new_len, broken)) = streak_step(slot, s, m.window(s.period.into())) else { continue };
            if let Some(length) = broken {
                self.emit(m, who, Source::Streak(si), Kind::StreakBroken { streak: si, length });
            }
            self.emit(m, who, Source::Streak(si), Kind::StreakExtended { streak: si, length: new_len });
            self.changed(m, who, MetricRef::Streak(si), i64::from(len), i64::from(new_len), 0);
        }
    }

    fn challenges(
        &mut self,
        m: &MomentRec,
        who: &mut Member,
        attrs: &plaudit_sdk::Attrs,
        teams: &mut TeamChallenges,
        completions: &mut Vec<(Entity, u16, i32)>,
    ) {
        let (_, first) = Activity::offsets(self.p, m.kind);
        for (pos, &ci) in self.p.challenges_by_kind.get(m.kind).iter().enumerate() {
            let c = &self.p.challenges[ci as usize];
            if c.paused {
                continue;
            }
            let Some(window) = challenge_window(c, m) else { continue };
            if !c.matcher.matches(m, attrs) {
                continue;
            }
            self.activity.0 |= Activity::bit(first + pos);
            if c.team {
                self.team_challenge(m, who, ci, window, teams, completions);
            } else {
                self.individual_challenge(m, who, ci, window);
            }
        }
    }

    fn individual_challenge(&mut self, m: &MomentRec, who: &mut Member, ci: u16, window: i32) {
        let goal = self.p.challenges[ci as usize].goal;
        let Some((moments, done)) = individual_step(who.tally, who.seen, goal, ci, window, m) else { return };
        let kind = Kind::ChallengeProgressed { challenge: ci, window, progress: moments, goal: goal.moments };
        self.emit(m, who, Source::Challenge(ci), kind);
        if done {
            self.completed(m, who, ci, window);
        }
    }

    /// Advances the actor's team; a completion is queued for every contributor.
    fn team_challenge(
        &mut self,
        m: &MomentRec,
        who: &mut Member,
        ci: u16,
        window: i32,
        teams: &mut TeamChallenges,
        completions: &mut Vec<(Entity, u16, i32)>,
    ) {
        if m.actor_team.is_none() {
            return;
        }
        let goal = self.p.challenges[ci as usize].goal;
        let generations = &mut teams.generations;
        let t = teams.progress.entry((ci, m.actor_team.0)).or_default();
        if window < t.window && t.generation != 0 {
            return; // a late moment: its window is over
        }
        if t.window != window || t.generation == 0 {
            *generations += 1;
            *t = TeamProgress { window, generation: *generations, ..TeamProgress::default() };
        }
        if t.completed {
            return;
        }
        t.moments = t.moments.saturating_add(1);
        // Each member joins the contributors once per window, marked on the member: O(1).
        let mark = who.tally.slot(tally_key::TEAM_CONTRIBUTION | u32::from(ci));
        if mark.b != t.generation as i64 {
            mark.b = t.generation as i64;
            t.contributors.push(who.entity);
        }
        let progress = t.moments;
        t.completed = progress >= goal.moments;
        if t.completed {
            completions.extend(std::mem::take(&mut t.contributors).into_iter().map(|e| (e, ci, window)));
        }
        let kind = Kind::ChallengeProgressed { challenge: ci, window, progress, goal: goal.moments };
        self.emit(m, who, Source::Challenge(ci), kind);
    }

    pub(crate) fn completed(&mut self, m: &MomentRec, who: &mut Member, ci: u16, window: i32) {
        let c = &self.p.challenges[ci as usize];
        self.completing = true;
        self.emit(m, who, Source::Challenge(ci), Kind::ChallengeCompleted { challenge: ci, window });
        self.record(m, who, Source::Challenge(ci), Earned::Completed { window });
        self.rewards(m, who, &c.reward, Source::Challenge(ci), 0);
        if let Some(b) = c.badge {
            self.grant_badge(m, who, b, 0);
        }
        self.completing = false;
    }
}

/// The window of challenge `c` moment `m` falls in, if it falls in one.
pub(crate) fn challenge_window(c: &crate::ruleset::program::Challenge, m: &MomentRec) -> Option<i32> {
    match c.window {
        ChallengeWindow::Recurring(w) => Some(m.window(w)),
        ChallengeWindow::Fixed { from, until } if from <= m.at && m.at < until => Some(0),
        ChallengeWindow::Fixed { .. } => None,
    }
}

/// A moment of streak `s` in `period` meets the streak's slot: the length before and after,
/// and the length of the run it broke; `None` when it changes nothing (the same period, or an
/// older one arriving late). Scoring and a retraction's recount both step streaks here.
pub(crate) fn streak_step(
    slot: &mut crate::components::Slot,
    s: &crate::ruleset::program::Streak,
    period: i32,
) -> Option<(u32, u32, Option<u32>)> {
    let (len, best) = ((slot.b & 0xFFFF_FFFF) as u32, (slot.b >> 32) as u32);
    let (new_len, broken) = if len == 0 {
        (1, None)
    } else if period <= slot.a {
        return None;
    } else if !s.lapsed(period, slot.a) {
        (len + 1, None)
    } else {
        (1, Some(len))
    };
    slot.a = period;
    slot.b = i64::from(new_len) | (i64::from(best.max(new_len)) << 32);
    Some((len, new_len, broken))
}

/// A moment of individual challenge `ci` in `window` meets the actor's progress: the moments
/// counted in the window and whether this one completed it; `None` when it counts for nothing
/// (its window is over, or already completed). Scoring and a retraction's recount both step
/// challenges here.
pub(crate) fn individual_step(
    tally: &mut Tally,
    seen: &mut Seen,
    goal: crate::ruleset::program::Goal,
    ci: u16,
    window: i32,
    m: &MomentRec,
) -> Option<(u32, bool)> {
    let teams_tag = seen_tag::CHALLENGE_TEAMS + 2 * u32::from(ci);
    let cps_tag = seen_tag::CHALLENGE_COUNTERPARTS + 2 * u32::from(ci);
    let slot = tally.slot(tally_key::CHALLENGE | u32::from(ci));
    if window < slot.a && slot.b != 0 {
        return None; // a late moment: its window is over
    }
    let fresh = slot.a != window || slot.b == 0;
    if fresh {
        slot.a = window;
        slot.b = 0;
    }
    if slot.b & CHALLENGE_DONE != 0 {
        return None;
    }
    // The count of moments is the low 32 bits: it stops at their maximum.
    if slot.b & 0xFFFF_FFFF != 0xFFFF_FFFF {
        slot.b += 1;
    }
    let moments = (slot.b & 0xFFFF_FFFF) as u32;
    if fresh {
        seen.clear_tag(teams_tag);
        seen.clear_tag(cps_tag);
    }
    let new_team = goal.distinct_teams > 0
        && !m.counterpart_team.is_none()
        && m.counterpart_team != m.actor_team
        && seen.insert(teams_tag, m.counterpart_team.0);
    let new_cp = goal.distinct_counterparts > 0 && m.counterpart_no.is_some_and(|cp| seen.insert(cps_tag, cp));
    let distinct = tally.slot(tally_key::CHALLENGE_DISTINCT | u32::from(ci));
    if fresh {
        (distinct.a, distinct.b) = (0, 0);
    }
    distinct.a += i32::from(new_team);
    distinct.b += i64::from(new_cp);
    let done = moments >= goal.moments
        && distinct.a as u32 >= goal.distinct_teams
        && distinct.b as u32 >= goal.distinct_counterparts;
    if done {
        tally.slot(tally_key::CHALLENGE | u32::from(ci)).b |= CHALLENGE_DONE;
    }
    Some((moments, done))
}

/// The bit of an individual challenge's slot that says its window is completed.
pub(crate) const CHALLENGE_DONE: i64 = 1 << 62;

/// A balance of `currency` changed outside a moment's awards (a retraction, an application to
/// history): the stakeholder's entries on all-time boards of it follow the balance, as of
/// record `seq`; windowed ones keep their window's record. True if any board watches it (the
/// stakeholder is then to be queued for publishing).
pub(crate) fn follow_balance(
    p: &Program,
    standing: &mut Standing,
    currency: CurrencyIx,
    balance: i64,
    seq: u64,
) -> bool {
    let mut watched = false;
    for &b in p.watchers.boards(MetricRef::Currency(currency)) {
        if p.leaderboards[b as usize].window.is_none() {
            let entry = standing.entry(b);
            entry.value = balance;
            entry.seq = seq;
            watched = true;
        }
    }
    watched
}

#[cfg(test)]
mod tests {
    use plaudit_sdk::{Moment, Record};

    use crate::OrgWorld;
    use crate::components::{Scorecard, tally_key};
    use crate::ruleset::parse_toml;

    const RULES: &str = r#"
[organisation]
id = "test"
timezone = "UTC"

[[currency]]
id = "xp"

[[rule]]
id = "post"
match = { kind = ["post"] }
award = [{ to = "actor", currency = "xp", amount = 10 }]

[[badge]]
id = "xp-100"
metric = "xp"
threshold = 100

[[badge]]
id = "xp-20"
metric = "xp"
threshold = 20

[levels]
currency = "xp"
steps = [{ name = "New", at = 0 }, { name = "Known", at = 50 }]
"#;

    fn post(id: &str) -> Record {
        Record::Moment(Moment {
            id: id.to_string(),
            stakeholder: "ann".to_string(),
            counterpart: None,
            kind: "post".to_string(),
            channel: "forum".to_string(),
            at: "2026-03-02T10:00:00Z".to_string(),
            value: None,
            attrs: Default::default(),
        })
    }

    /// Ann's tally slots of badges and the level: (key, value).
    fn earned(w: &mut OrgWorld) -> Vec<(u32, i64)> {
        let world = w.world_mut();
        let mut q = world.query::<&Scorecard>();
        let card = q.single(world).expect("one stakeholder");
        let slots = card.tally.0.iter().map(|s| (s.key, s.b));
        slots.filter(|(k, _)| k & 0xFFFF_0000 == tally_key::BADGE || *k == tally_key::LEVEL).collect()
    }

    #[test]
    fn a_badge_or_level_gets_a_tally_slot_only_once_earned() {
        let doc = parse_toml(RULES, "test.toml").expect("valid rules");
        let mut w = OrgWorld::from_doc(&doc, "test.toml").expect("compiles");
        let (xp_20, level) = (tally_key::BADGE | 1, tally_key::LEVEL);
        w.ingest(vec![post("1")]);
        // 10 xp: the first level ("New", at 0) is reached; neither badge is, and neither has a slot.
        assert_eq!(earned(&mut w), [(level, 1)]);
        w.ingest(vec![post("2")]);
        // 20 xp: "xp-20" (badge 1) is earned; "xp-100" still has no slot.
        assert_eq!(earned(&mut w), [(xp_20, 1), (level, 1)]);
        w.ingest((3..=5).map(|i| post(&i.to_string())).collect::<Vec<_>>());
        // 50 xp: the second level.
        assert_eq!(earned(&mut w), [(xp_20, 1), (level, 2)]);
    }

    /// Ann's balance of xp, set directly (what 10^6 awards of the largest size would leave).
    fn set_xp(w: &mut OrgWorld, balance: i64) {
        let world = w.world_mut();
        let mut q = world.query::<&mut Scorecard>();
        let mut card = q.single_mut(world).expect("one stakeholder");
        card.wallet.0[0] = balance;
    }

    #[test]
    fn an_award_that_would_pass_the_balance_bound_gives_what_fits_and_reports_the_rest_as_withheld() {
        use crate::bounds::MAX_BALANCE;
        let doc = parse_toml(RULES, "test.toml").expect("valid rules");
        let mut w = OrgWorld::from_doc(&doc, "test.toml").expect("compiles");
        w.ingest(vec![post("1")]);
        w.drain_effects();
        set_xp(&mut w, MAX_BALANCE - 4);
        w.ingest(vec![post("2")]);
        let effects = w.drain_effects();
        let kinds: Vec<_> = effects.iter().map(|e| e.kind.clone()).collect();
        use plaudit_sdk::EffectKind::*;
        assert!(kinds.contains(&PointsAwarded { currency: "xp".into(), amount: 4, balance: MAX_BALANCE }), "{kinds:?}");
        assert!(
            kinds.iter().any(|k| matches!(k, PointsWithheld { amount: 6, reason, .. } if reason.contains("bound")))
        );
        // At the bound: nothing more is given, all of it is reported.
        w.ingest(vec![post("3")]);
        let kinds: Vec<_> = w.drain_effects().into_iter().map(|e| e.kind).collect();
        assert!(!kinds.iter().any(|k| matches!(k, PointsAwarded { .. })), "{kinds:?}");
        assert!(kinds.iter().any(|k| matches!(k, PointsWithheld { amount: 10, .. })), "{kinds:?}");
        // A retraction takes back what was given, no more.
        w.ingest(vec![plaudit_sdk::Record::Retract(plaudit_sdk::Retraction { retract: "2".into(), reason: None })]);
        let kinds: Vec<_> = w.drain_effects().into_iter().map(|e| e.kind).collect();
        assert!(
            kinds.contains(&PointsRevoked { currency: "xp".into(), amount: 4, balance: MAX_BALANCE - 4 }),
            "{kinds:?}"
        );
    }
}
