//! Insights for community managers: who engages, where, across which teams, over time.
//!
//! **Owns** [`Insights`]: what scoring records for them, and the views derived from it.
//! Scoring (the effects pass, which walks a batch in order) records three things, cheaply:
//!
//! - a [`Fact`] per accepted moment, by moment id: who (actor, counterpart, their kinds and
//!   teams at the time), what (kind, channel), when (the instant and its week in the
//!   organisation's time zone), and whether it was scored and later retracted;
//! - per week, the effects that count ([`Totals`]): points per currency (less what
//!   retractions took back), badges earned (less those revoked) and challenge completions,
//!   each in the week of the moment that caused it;
//! - per challenge and window, each participant's progress ([`ChallengeLog`]): every window
//!   is kept, not only the latest.
//!
//! Everything a manager reads (activity, bridges between teams, champions, who went quiet,
//! goals) is derived from the facts at read time, week by week ([`view`]): a week's view folds
//! the facts that arrived since it was last read, and is rebuilt whole when a retraction
//! touched it. So scoring pays for a few stores per moment, not for distinct counts, and the
//! insights are a function of the facts: they come back identically after a replay, a
//! snapshot restore (the facts, totals and challenge logs are in it) or another batching.
//!
//! **Must not touch** stakeholders' scorecards, balances or boards: insights observe scoring,
//! they never change it. The effects pass is the only writer during scoring; a rule-set
//! publication ([`Insights::forget_program`]) and an application to history
//! ([`crate::retroactive`]) are the others.

pub mod people;
pub mod reads;
pub mod view;

use std::collections::BTreeMap;
use std::sync::Arc;

use bevy_ecs::prelude::*;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::batch::{Action, MomentRec};
use crate::chunks::{Chunked, split};
use crate::ids::Sym;
use crate::journal::Kind;
use crate::ruleset::program::{ChallengeWindow, Program};

pub use view::Derived;

/// What one accepted moment was, as insights need it. Stakeholders by directory number, names
/// by symbol; kinds and teams as they were when the moment was scored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fact {
    pub at: i64,
    pub actor: u32,
    /// [`NO_ONE`] for a moment without a counterpart.
    pub counterpart: u32,
    pub kind: Sym,
    pub channel: Sym,
    pub actor_kind: Sym,
    pub actor_team: Sym,
    pub counterpart_kind: Sym,
    pub counterpart_team: Sym,
    /// Week index in the organisation's calendar ([`crate::calendar`]).
    pub week: i32,
    /// [`state`] bits.
    pub state: u8,
}

/// No counterpart.
pub const NO_ONE: u32 = u32::MAX;

/// Bits of [`Fact::state`].
pub mod state {
    /// Scored (not held back by the cheat guard): only scored moments count in insights.
    pub const SCORED: u8 = 1;
    /// Retracted since: it no longer counts.
    pub const RETRACTED: u8 = 2;
}

impl Fact {
    const PLACEHOLDER: Fact = Fact {
        at: 0,
        actor: NO_ONE,
        counterpart: NO_ONE,
        kind: Sym::NONE,
        channel: Sym::NONE,
        actor_kind: Sym::NONE,
        actor_team: Sym::NONE,
        counterpart_kind: Sym::NONE,
        counterpart_team: Sym::NONE,
        week: 0,
        state: 0,
    };

    /// Whether it counts: scored and not retracted.
    pub fn counts(&self) -> bool {
        self.state & (state::SCORED | state::RETRACTED) == state::SCORED
    }

    pub fn has_counterpart(&self) -> bool {
        self.counterpart != NO_ONE
    }
}

/// What counted in one week's effects.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Points issued, by currency slot ([`Insights::currencies`]), less points retracted.
    pub points: Vec<i64>,
    /// Badges (and badge tiers) earned, less those revoked.
    pub badges: i64,
    /// Challenge completions.
    pub completions: i64,
}

/// One contributor's progress in one window of a team challenge: the team's progress when
/// they last contributed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub progress: u32,
    pub completed: bool,
}

impl Progress {
    fn halfway(self, goal: u32) -> bool {
        self.completed || 2 * u64::from(self.progress) >= u64::from(goal)
    }
}

/// One window of a challenge: how many took part, got halfway (half the goal's moments, or
/// completed) and completed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WindowLog {
    /// The window's name as the rule set in force when it opened gave it: a date (its first
    /// day, or its first hour for an hourly window), or `fixed`.
    pub label: String,
    pub goal: u32,
    pub participants: u64,
    pub halfway: u64,
    pub completed: u64,
    /// Team challenges only: each contributor by directory number. An individual challenge
    /// needs none: a participant's progress there counts their moments, 1 on their first,
    /// so each step of it is known from the effect alone (no lookup per effect).
    pub people: FxHashMap<u32, Progress>,
}

impl WindowLog {
    fn new(p: &Program, challenge: u16, index: i32) -> WindowLog {
        let label = match p.challenges.get(challenge as usize).map(|c| c.window) {
            Some(ChallengeWindow::Recurring(w)) => match w.period() {
                Some(period) => p.calendar.period_label(period, index),
                None => reads::rfc3339(i64::from(index) * 3600),
            },
            Some(ChallengeWindow::Fixed { .. }) => "fixed".to_string(),
            None => String::new(),
        };
        WindowLog { label, ..WindowLog::default() }
    }

    /// A participant's progress went to `progress` (an individual's moments; for a team
    /// challenge, their team's, through `who`'s contribution).
    fn progressed(&mut self, team: bool, who: u32, progress: u32, goal: u32) {
        self.goal = self.goal.max(goal);
        if team {
            let new = !self.people.contains_key(&who);
            let p = self.people.entry(who).or_default();
            let was = !new && p.halfway(goal);
            p.progress = p.progress.max(progress);
            self.participants += u64::from(new);
            self.halfway += u64::from(!was && p.halfway(goal));
        } else {
            self.participants += u64::from(progress == 1);
            let crossed = 2 * u64::from(progress) >= u64::from(goal)
                && (progress == 1 || 2 * u64::from(progress - 1) < u64::from(goal));
            self.halfway += u64::from(crossed);
        }
    }

    /// `who` completed the window.
    fn completed(&mut self, team: bool, who: u32) {
        if team {
            let goal = self.goal;
            let new = !self.people.contains_key(&who);
            let p = self.people.entry(who).or_default();
            if p.completed {
                return;
            }
            let was = !new && p.halfway(goal);
            p.completed = true;
            self.participants += u64::from(new);
            self.halfway += u64::from(!was);
        }
        self.completed += 1;
    }
}

/// A challenge's windows, by window index (0 for a fixed window).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChallengeLog {
    pub id: String,
    pub windows: BTreeMap<i32, WindowLog>,
}

/// An organisation's insights: what scoring recorded for them, and the views derived from it.
#[derive(Resource, Debug, Default)]
pub struct Insights {
    /// By moment id.
    facts: Chunked<Vec<Fact>>,
    /// By week index, in order.
    totals: Vec<(i32, Totals)>,
    /// The currency ids [`Totals::points`] is indexed by, in the order first seen.
    currencies: Vec<String>,
    challenges: Vec<ChallengeLog>,
    /// The current program's currency and challenge indexes, to slots here (filled as used;
    /// cleared when a new rule set is published).
    currency_slot: Vec<Option<u16>>,
    challenge_slot: Vec<Option<u16>>,
    /// The slot of the last week [`Insights::totals`] was written in: moments come mostly in
    /// time order, so this spares a search per effect.
    last_week: usize,
    /// Derived views: never stored, rebuilt from the above on demand.
    pub(crate) derived: Derived,
}

impl Insights {
    /// Records an accepted moment (scored or held back by the guard) as the effects pass
    /// reaches it, before its effects.
    #[inline]
    pub fn moment(&mut self, m: &MomentRec) {
        let scored = if m.action == Action::Score { state::SCORED } else { 0 };
        let fact = Fact {
            at: m.at,
            actor: m.actor_no,
            counterpart: m.counterpart_no.unwrap_or(NO_ONE),
            kind: m.kind,
            channel: m.channel,
            actor_kind: m.actor_kind,
            actor_team: m.actor_team,
            counterpart_kind: m.counterpart_kind,
            counterpart_team: m.counterpart_team,
            week: m.window(crate::ruleset::program::Window::Week),
            state: scored,
        };
        // Moment ids are given in the order the effects pass sees moments; a gap (which does
        // not happen) is filled so that ids still index facts.
        while self.facts.len() < m.moment as usize {
            self.facts.open().push(Fact::PLACEHOLDER);
        }
        if self.facts.len() == m.moment as usize {
            self.facts.open().push(fact);
        }
    }

    /// The fact of moment `moment`.
    pub fn fact(&self, moment: u32) -> Option<&Fact> {
        let (k, i) = split(moment as usize);
        self.facts.block(k).and_then(|b| b.get(i))
    }

    /// Facts recorded (one per moment id).
    pub fn len(&self) -> usize {
        self.facts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.facts.is_empty()
    }

    /// Moment `moment` was retracted: it leaves every view of its week.
    pub fn retract(&mut self, moment: u32) {
        let (k, i) = split(moment as usize);
        let Some(fact) = self.facts.block_mut(k).and_then(|b| b.get_mut(i)) else { return };
        if fact.state & state::RETRACTED == 0 {
            fact.state |= state::RETRACTED;
            let week = fact.week;
            self.derived.touched(week);
        }
    }

    /// Counts an effect of moment `moment` in its week's totals.
    #[inline]
    pub fn effect(&mut self, p: &Program, moment: u32, stakeholder: u32, kind: &Kind) {
        match kind {
            Kind::Points { currency, amount, .. } => {
                let c = self.currency(p, *currency);
                if let Some(t) = self.totals_of(moment) {
                    add_points(t, c, *amount);
                }
            }
            Kind::Revoked { currency, amount, .. } => {
                let c = self.currency(p, *currency);
                if let Some(t) = self.totals_of(moment) {
                    add_points(t, c, amount.saturating_neg());
                }
            }
            Kind::Badge { .. } => {
                if let Some(t) = self.totals_of(moment) {
                    t.badges += 1;
                }
            }
            Kind::BadgeRevoked { .. } => {
                if let Some(t) = self.totals_of(moment) {
                    t.badges -= 1;
                }
            }
            Kind::ChallengeProgressed { challenge, window, progress, goal } => {
                let team = p.challenges.get(*challenge as usize).is_some_and(|c| c.team);
                let c = self.challenge(p, *challenge);
                let log =
                    self.challenges[c].windows.entry(*window).or_insert_with(|| WindowLog::new(p, *challenge, *window));
                log.progressed(team, stakeholder, *progress, *goal);
            }
            Kind::ChallengeCompleted { challenge, window } => {
                let team = p.challenges.get(*challenge as usize).is_some_and(|c| c.team);
                let c = self.challenge(p, *challenge);
                let log =
                    self.challenges[c].windows.entry(*window).or_insert_with(|| WindowLog::new(p, *challenge, *window));
                log.completed(team, stakeholder);
                if let Some(t) = self.totals_of(moment) {
                    t.completions += 1;
                }
            }
            Kind::ChallengeRevoked { challenge, window } => {
                let team = p.challenges.get(*challenge as usize).is_some_and(|c| c.team);
                let c = self.challenge(p, *challenge);
                if let Some(log) = self.challenges[c].windows.get_mut(window) {
                    if team && let Some(person) = log.people.get_mut(&stakeholder) {
                        person.completed = false;
                    }
                    log.completed = log.completed.saturating_sub(1);
                }
                if let Some(t) = self.totals_of(moment) {
                    t.completions -= 1;
                }
            }
            _ => {}
        }
    }

    /// A retraction's recount took an individual's progress in challenge `challenge`'s
    /// `window` from `from` moments to `to`: the window's participants and halfway count follow
    /// (a window nobody is left in goes, as if it never opened).
    pub fn recounted(&mut self, p: &Program, challenge: u16, window: i32, from: u32, to: u32) {
        if from == to {
            return;
        }
        let goal = p.challenges.get(challenge as usize).map_or(0, |c| c.goal.moments);
        let c = self.challenge(p, challenge);
        let log = self.challenges[c].windows.entry(window).or_insert_with(|| WindowLog::new(p, challenge, window));
        log.goal = log.goal.max(goal);
        let halfway = |n: u32| n > 0 && 2 * u64::from(n) >= u64::from(log.goal);
        let step = |count: &mut u64, was: bool, is: bool| match (was, is) {
            (false, true) => *count += 1,
            (true, false) => *count = count.saturating_sub(1),
            _ => {}
        };
        step(&mut log.participants, from > 0, to > 0);
        step(&mut log.halfway, halfway(from), halfway(to));
        if log.participants == 0 && log.completed == 0 {
            self.challenges[c].windows.remove(&window);
        }
    }

    fn currency(&mut self, p: &Program, c: u8) -> usize {
        if let Some(Some(slot)) = self.currency_slot.get(c as usize) {
            return *slot as usize;
        }
        let id = p.currencies.get(c as usize).map_or("", |c| c.id.as_str());
        let slot = match self.currencies.iter().position(|x| x == id) {
            Some(s) => s,
            None => {
                self.currencies.push(id.to_string());
                self.currencies.len() - 1
            }
        };
        if self.currency_slot.len() <= c as usize {
            self.currency_slot.resize(c as usize + 1, None);
        }
        self.currency_slot[c as usize] = Some(slot as u16);
        slot
    }

    fn challenge(&mut self, p: &Program, c: u16) -> usize {
        if let Some(Some(slot)) = self.challenge_slot.get(c as usize) {
            return *slot as usize;
        }
        let id = p.challenges.get(c as usize).map_or("", |c| c.id.as_str());
        let slot = match self.challenges.iter().position(|x| x.id == id) {
            Some(s) => s,
            None => {
                self.challenges.push(ChallengeLog { id: id.to_string(), windows: BTreeMap::new() });
                self.challenges.len() - 1
            }
        };
        if self.challenge_slot.len() <= c as usize {
            self.challenge_slot.resize(c as usize + 1, None);
        }
        self.challenge_slot[c as usize] = Some(slot as u16);
        slot
    }

    /// The totals of the week moment `moment` is in (none for an effect of no moment).
    #[inline]
    fn totals_of(&mut self, moment: u32) -> Option<&mut Totals> {
        let week = self.fact(moment)?.week;
        let i = match self.totals.get(self.last_week) {
            Some((w, _)) if *w == week => self.last_week,
            _ => match self.totals.binary_search_by_key(&week, |t| t.0) {
                Ok(i) => i,
                Err(i) => {
                    self.totals.insert(i, (week, Totals::default()));
                    i
                }
            },
        };
        self.last_week = i;
        Some(&mut self.totals[i].1)
    }

    /// Rule set `new` replaces `old`: indexes into it are looked up afresh (ids carry over),
    /// and a challenge whose window changed starts a new log (its windows' numbers meant
    /// other periods, and a reader would label them by the new ones); a dropped one keeps it.
    pub fn forget_program(&mut self, old: &crate::ruleset::program::Program, new: &crate::ruleset::program::Program) {
        self.currency_slot.clear();
        self.challenge_slot.clear();
        let window =
            |p: &crate::ruleset::program::Program, id: &str| p.challenges.iter().find(|c| c.id == id).map(|c| c.window);
        for log in &mut self.challenges {
            // A dropped challenge keeps its windows, still read by id.
            if let (Some(was), Some(is)) = (window(old, &log.id), window(new, &log.id))
                && was != is
            {
                log.windows.clear();
            }
        }
    }

    /// Per week, what counted in its effects.
    pub fn totals(&self) -> &[(i32, Totals)] {
        &self.totals
    }

    /// The currency ids [`Totals::points`] is indexed by.
    pub fn currencies(&self) -> &[String] {
        &self.currencies
    }

    pub fn challenge_log(&self, id: &str) -> Option<&ChallengeLog> {
        self.challenges.iter().find(|c| c.id == id)
    }

    /// Every fact, in moment order.
    pub fn facts(&self) -> impl Iterator<Item = &Fact> {
        self.facts.blocks().flatten()
    }

    /// As data, for a snapshot: the facts' full blocks shared, not copied.
    pub fn share(&self) -> InsightsRows {
        InsightsRows {
            facts: FactRows(self.facts.share()),
            totals: self.totals.clone(),
            currencies: self.currencies.clone(),
            challenges: self.challenges.clone(),
        }
    }

    /// The insights `rows` describe; `None` if they are not laid out as [`Insights::share`]
    /// gives them.
    pub fn restore(rows: InsightsRows) -> Option<Insights> {
        let facts = Chunked::from_blocks(rows.facts.0)?;
        let mut totals = rows.totals;
        totals.sort_by_key(|t| t.0);
        Some(Insights {
            facts,
            totals,
            currencies: rows.currencies,
            challenges: rows.challenges,
            ..Insights::default()
        })
    }

    /// Bytes in use by the facts, the totals, the challenge windows and the derived views.
    pub fn bytes(&self) -> usize {
        let windows: usize = self
            .challenges
            .iter()
            .flat_map(|c| c.windows.values())
            .map(|w| {
                size_of::<(i32, WindowLog)>()
                    + w.label.capacity()
                    + w.people.capacity() * (size_of::<(u32, Progress)>() + 1)
            })
            .sum();
        let totals: usize =
            self.totals.iter().map(|(_, t)| size_of::<(i32, Totals)>() + t.points.capacity() * size_of::<i64>()).sum();
        self.facts.len() * size_of::<Fact>() + totals + windows + self.derived.bytes()
    }
}

fn add_points(t: &mut Totals, slot: usize, amount: i64) {
    if t.points.len() <= slot {
        t.points.resize(slot + 1, 0);
    }
    t.points[slot] = t.points[slot].saturating_add(amount);
}

/// Whether a challenge window is counted in week `week`: recurring windows by when they start,
/// a fixed one in the week it starts.
pub(crate) fn window_starts_in(p: &Program, window: &ChallengeWindow, index: i32, week: i32) -> bool {
    use crate::calendar::Period;
    let cal = &p.calendar;
    let start = match window {
        ChallengeWindow::Recurring(w) => match w.period() {
            Some(period) => cal.period_bounds(period, index).0,
            None => i64::from(index) * 3600,
        },
        ChallengeWindow::Fixed { from, .. } => *from,
    };
    cal.period_index(Period::Week, start) == week
}

/// The facts of a snapshot: blocks of facts, written as one array of tuples.
#[derive(Clone, Debug, PartialEq)]
pub struct FactRows(pub Vec<Arc<Vec<Fact>>>);

/// A fact, as a snapshot writes it.
#[derive(Serialize, Deserialize)]
struct FactRow(i64, u32, u32, u32, u32, u32, u32, u32, u32, i32, u8);

impl Serialize for FactRows {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(self.0.iter().map(|b| b.len()).sum()))?;
        for f in self.0.iter().flat_map(|b| b.iter()) {
            seq.serialize_element(&FactRow(
                f.at,
                f.actor,
                f.counterpart,
                f.kind.0,
                f.channel.0,
                f.actor_kind.0,
                f.actor_team.0,
                f.counterpart_kind.0,
                f.counterpart_team.0,
                f.week,
                f.state,
            ))?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for FactRows {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let rows: Vec<FactRow> = Vec::deserialize(d)?;
        let mut facts = Chunked::<Vec<Fact>>::default();
        for FactRow(at, actor, counterpart, kind, channel, ak, at_, ck, ct, week, state) in rows {
            facts.open().push(Fact {
                at,
                actor,
                counterpart,
                kind: Sym(kind),
                channel: Sym(channel),
                actor_kind: Sym(ak),
                actor_team: Sym(at_),
                counterpart_kind: Sym(ck),
                counterpart_team: Sym(ct),
                week,
                state,
            });
        }
        Ok(FactRows(facts.share()))
    }
}

/// Insights as a snapshot holds them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InsightsRows {
    pub facts: FactRows,
    pub totals: Vec<(i32, Totals)>,
    pub currencies: Vec<String>,
    pub challenges: Vec<ChallengeLog>,
}

#[cfg(test)]
mod tests;
