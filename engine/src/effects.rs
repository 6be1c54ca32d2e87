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
//! Owns [`Wallet`], [`Tally`], the challenge part of [`Seen`], the pending side of
//! [`Standing`], the [`History`] ledger and [`TeamChallenges`]. Does not publish leaderboards
//! (the leaderboard pass does) and does no IO.

use bevy_ecs::prelude::*;
use rustc_hash::FxHashMap;

use crate::batch::{Action, Awards, Batch, MomentRec, first};
use crate::calendar::Period;
use crate::components::{Identity, Seen, Standing, Tally, Wallet, seen_tag, tally_key};
use crate::history::{Earned, History};
use crate::journal::{EffectRec, Journal, Kind, Source};
use crate::ruleset::program::{
    BadgeShape, ChallengeWindow, CurrencyIx, Distinct, MetricKind, MetricRef, Program, Reward, Window,
};
use crate::world::ProgramRes;

/// Rewards may trigger badges whose rewards trigger badges: this bounds the cascade.
const MAX_CASCADE: u8 = 4;

/// Progress of team challenges, per (challenge, team).
#[derive(Resource, Debug, Default)]
pub struct TeamChallenges(pub FxHashMap<(u16, u32), TeamProgress>);

#[derive(Clone, Debug, Default)]
pub struct TeamProgress {
    pub window: i32,
    pub moments: u32,
    pub completed: bool,
    /// Members who contributed in this window: they share the reward.
    pub contributors: Vec<Entity>,
}

/// Stakeholders whose leaderboard entries changed in this batch.
#[derive(Resource, Debug, Default)]
pub struct PublishQueue(pub Vec<Entity>);

type StateQuery<'w, 's> = Query<
    'w,
    's,
    (&'static Identity, &'static mut Wallet, &'static mut Tally, &'static mut Seen, &'static mut Standing),
>;

#[allow(clippy::too_many_arguments)]
pub fn apply(
    program: Res<ProgramRes>,
    batch: Res<Batch>,
    awards: Res<Awards>,
    mut journal: ResMut<Journal>,
    mut history: ResMut<History>,
    mut teams: ResMut<TeamChallenges>,
    mut queue: ResMut<PublishQueue>,
    mut q: StateQuery,
) {
    let mut cx = Apply {
        p: &program.0,
        q: &mut q,
        journal: &mut journal.0,
        history: &mut history,
        queue: &mut queue.0,
        batch_no: batch.number,
    };
    let mut next_award = 0;
    for (ix, m) in batch.records.iter().enumerate() {
        match m.action {
            Action::Retract => {
                cx.retract(m);
                continue;
            }
            Action::Guarded(reason) => {
                cx.emit(m, m.actor, Source::Guard, Kind::Guarded(reason));
                continue;
            }
            Action::Score => {}
        }
        while let Some(a) = awards.0.get(next_award).filter(|a| a.record as usize == ix) {
            next_award += 1;
            if a.withheld {
                cx.emit(m, a.to, a.source.into(), Kind::Withheld { currency: a.currency, amount: a.amount });
            } else {
                cx.credit(m, a.to, a.currency, a.amount, a.source.into(), 0);
            }
        }
        let attrs = &batch.inputs[m.input as usize].attrs;
        cx.metrics(m, attrs);
        cx.streaks(m, attrs);
        cx.challenges(m, attrs, &mut teams);
    }
}

struct Apply<'a, 'w, 's> {
    p: &'a Program,
    q: &'a mut StateQuery<'w, 's>,
    journal: &'a mut Vec<EffectRec>,
    history: &'a mut History,
    queue: &'a mut Vec<Entity>,
    batch_no: u64,
}

impl Apply<'_, '_, '_> {
    fn emit(&mut self, m: &MomentRec, who: Entity, source: Source, kind: Kind) {
        let Ok((id, ..)) = self.q.get(who) else { return };
        self.journal.push(EffectRec { seq: m.seq, moment: m.moment, stakeholder: id.ext, source, kind });
    }

    /// Adds `amount` of `currency` to `who`'s balance, and everything that follows from it.
    fn credit(&mut self, m: &MomentRec, who: Entity, currency: CurrencyIx, amount: i64, source: Source, depth: u8) {
        let n = self.p.currencies.len();
        let Ok((_, mut wallet, ..)) = self.q.get_mut(who) else { return };
        let old = wallet.balance(currency);
        let new = wallet.add(n, currency, amount);
        self.emit(m, who, source, Kind::Points { currency, amount, balance: new });
        self.history.record(m.moment, who, Earned::Points { currency, amount });
        self.changed(m, who, MetricRef::Currency(currency), old, new, depth);
        if let Some(levels) = &self.p.levels {
            if levels.currency == currency {
                self.level(m, who, new);
            }
        }
    }

    /// A measured quantity of `who` went from `old` to `new`: update leaderboards and badges.
    fn changed(&mut self, m: &MomentRec, who: Entity, metric: MetricRef, old: i64, new: i64, depth: u8) {
        let p = self.p;
        for &b in p.watchers.boards(metric) {
            let board = &p.leaderboards[b as usize];
            let Ok((.., mut standing)) = self.q.get_mut(who) else { return };
            let queued = standing.queued_in == self.batch_no;
            standing.queued_in = self.batch_no;
            let e = standing.entry(b);
            match board.window {
                None => e.value = new,
                Some(period) => {
                    let w = m.window(window_of(period));
                    if e.window != w {
                        e.window = w;
                        e.value = 0;
                    }
                    e.value += new - old;
                }
            }
            e.seq = m.seq;
            if !queued {
                self.queue.push(who);
            }
        }
        for &b in p.watchers.badges(metric) {
            self.badge_progress(m, who, b, new, depth);
        }
    }

    fn level(&mut self, m: &MomentRec, who: Entity, balance: i64) {
        let Some(levels) = &self.p.levels else { return };
        let reached = levels.steps.iter().take_while(|(_, at)| balance >= *at).count() as i64;
        let Ok((_, _, mut tally, ..)) = self.q.get_mut(who) else { return };
        let slot = tally.slot(tally_key::LEVEL);
        let had = slot.b;
        if reached > had {
            slot.b = reached;
            for index in had..reached {
                self.emit(m, who, Source::Level, Kind::Level { index: index as u32 });
            }
        }
    }

    /// Badge `b` watches a metric of `who` that is now `value`.
    fn badge_progress(&mut self, m: &MomentRec, who: Entity, b: u16, value: i64, depth: u8) {
        let p = self.p;
        let badge = &p.badges[b as usize];
        let Ok((_, _, mut tally, ..)) = self.q.get_mut(who) else { return };
        let slot = tally.slot(tally_key::BADGE | u32::from(b));
        let had = slot.b;
        let (now, tiered) = match &badge.shape {
            BadgeShape::Once(t) => (i64::from(value >= *t).max(had), false),
            BadgeShape::Tiers(tiers) => (tiers.iter().take_while(|t| value >= t.at).count() as i64, true),
            BadgeShape::Every(n) => (value.div_euclid(*n).max(had), false),
            BadgeShape::Granted => (had, false),
        };
        if now <= had {
            return;
        }
        slot.b = now;
        if tiered {
            for tier in had..now {
                let t = tier as u8;
                self.earned_badge(m, who, b, Some(t), (tier + 1) as u32);
                if let BadgeShape::Tiers(tiers) = &badge.shape {
                    self.rewards(m, who, &tiers[tier as usize].reward, Source::Badge(b), depth);
                }
            }
        } else {
            self.earned_badge(m, who, b, None, now as u32);
            for _ in had..now {
                self.rewards(m, who, &badge.reward, Source::Badge(b), depth);
            }
        }
    }

    fn earned_badge(&mut self, m: &MomentRec, who: Entity, badge: u16, tier: Option<u8>, count: u32) {
        self.emit(m, who, Source::Badge(badge), Kind::Badge { badge, tier, count });
        self.history.record(m.moment, who, Earned::Badge { badge, tier });
    }

    /// A challenge grants badge `b` outright.
    fn grant_badge(&mut self, m: &MomentRec, who: Entity, b: u16, depth: u8) {
        let Ok((_, _, mut tally, ..)) = self.q.get_mut(who) else { return };
        let slot = tally.slot(tally_key::BADGE | u32::from(b));
        slot.b += 1;
        let count = slot.b as u32;
        self.earned_badge(m, who, b, None, count);
        let reward = &self.p.badges[b as usize].reward;
        self.rewards(m, who, reward, Source::Badge(b), depth);
    }

    fn rewards(&mut self, m: &MomentRec, who: Entity, rewards: &[Reward], source: Source, depth: u8) {
        if depth >= MAX_CASCADE {
            return;
        }
        for r in rewards {
            self.credit(m, who, r.currency, r.amount, source, depth + 1);
        }
    }

    fn metrics(&mut self, m: &MomentRec, attrs: &plaudit_sdk::Attrs) {
        for (i, metric) in self.p.metrics.iter().enumerate() {
            let counts = match &metric.kind {
                MetricKind::Count(matcher) => matcher.matches(m, attrs),
                MetricKind::Distinct(Distinct::Counterparts) => m.first & first::COUNTERPART != 0,
                MetricKind::Distinct(Distinct::Teams) => m.first & first::TEAM != 0,
                MetricKind::Distinct(Distinct::Channels) => m.first & first::CHANNEL != 0,
            };
            if counts {
                let Ok((_, _, mut tally, ..)) = self.q.get_mut(m.actor) else { return };
                let slot = tally.slot(tally_key::METRIC | i as u32);
                slot.b += 1;
                let new = slot.b;
                self.changed(m, m.actor, MetricRef::Metric(i as u16), new - 1, new, 0);
            }
        }
    }

    fn streaks(&mut self, m: &MomentRec, attrs: &plaudit_sdk::Attrs) {
        for (i, s) in self.p.streaks.iter().enumerate() {
            if !s.matcher.matches(m, attrs) {
                continue;
            }
            let period = m.window(window_of(s.period));
            let Ok((_, _, mut tally, ..)) = self.q.get_mut(m.actor) else { return };
            let slot = tally.slot(tally_key::STREAK | i as u32);
            let (len, best) = ((slot.b & 0xFFFF_FFFF) as u32, (slot.b >> 32) as u32);
            let last = slot.a;
            let (new_len, broken) = if len == 0 {
                (1, None)
            } else if period <= last {
                continue; // the same period, or an older one arriving late
            } else if (period - last - 1) as u32 <= s.grace {
                (len + 1, None)
            } else {
                (1, Some(len))
            };
            slot.a = period;
            slot.b = i64::from(new_len) | (i64::from(best.max(new_len)) << 32);
            if let Some(length) = broken {
                self.emit(m, m.actor, Source::Streak(i as u16), Kind::StreakBroken { streak: i as u16, length });
            }
            self.emit(m, m.actor, Source::Streak(i as u16), Kind::StreakExtended { streak: i as u16, length: new_len });
            self.changed(m, m.actor, MetricRef::Streak(i as u16), i64::from(len), i64::from(new_len), 0);
        }
    }

    fn challenges(&mut self, m: &MomentRec, attrs: &plaudit_sdk::Attrs, teams: &mut TeamChallenges) {
        for (i, c) in self.p.challenges.iter().enumerate() {
            let ci = i as u16;
            if c.paused {
                continue;
            }
            let window = match c.window {
                ChallengeWindow::Recurring(w) => m.window(w),
                ChallengeWindow::Fixed { from, until } if from <= m.at && m.at < until => 0,
                ChallengeWindow::Fixed { .. } => continue,
            };
            if !c.matcher.matches(m, attrs) {
                continue;
            }
            if c.team {
                self.team_challenge(m, ci, window, teams);
                continue;
            }
            let Ok((_, _, mut tally, mut seen, _)) = self.q.get_mut(m.actor) else { return };
            let (teams_tag, cps_tag) =
                (seen_tag::CHALLENGE_TEAMS + 2 * u32::from(ci), seen_tag::CHALLENGE_COUNTERPARTS + 2 * u32::from(ci));
            let slot = tally.slot(tally_key::CHALLENGE | u32::from(ci));
            if slot.a != window {
                slot.a = window;
                slot.b = 0;
                seen.clear_tag(teams_tag);
                seen.clear_tag(cps_tag);
            }
            const DONE: i64 = 1 << 62;
            if slot.b & DONE != 0 {
                continue;
            }
            slot.b += 1;
            let moments = (slot.b & 0xFFFF_FFFF) as u32;
            if c.goal.distinct_teams > 0 && !m.counterpart_team.is_none() && m.counterpart_team != m.actor_team {
                seen.insert(teams_tag, m.counterpart_team.0);
            }
            if let (true, Some(cp)) = (c.goal.distinct_counterparts > 0, m.counterpart) {
                seen.insert(cps_tag, cp.index_u32());
            }
            let done = moments >= c.goal.moments
                && seen.count(teams_tag) as u32 >= c.goal.distinct_teams
                && seen.count(cps_tag) as u32 >= c.goal.distinct_counterparts;
            if done {
                slot.b |= DONE;
            }
            self.emit(
                m,
                m.actor,
                Source::Challenge(ci),
                Kind::ChallengeProgressed { challenge: ci, window, progress: moments, goal: c.goal.moments },
            );
            if done {
                self.completed(m, m.actor, ci, window);
            }
        }
    }

    fn team_challenge(&mut self, m: &MomentRec, ci: u16, window: i32, teams: &mut TeamChallenges) {
        if m.actor_team.is_none() {
            return;
        }
        let goal = self.p.challenges[ci as usize].goal;
        let t = teams.0.entry((ci, m.actor_team.0)).or_default();
        if t.window != window || (t.moments == 0 && !t.completed) {
            *t = TeamProgress { window, ..TeamProgress::default() };
        }
        if t.completed {
            return;
        }
        t.moments += 1;
        if !t.contributors.contains(&m.actor) {
            t.contributors.push(m.actor);
        }
        let progress = t.moments;
        let done = progress >= goal.moments;
        t.completed = done;
        let contributors = if done { std::mem::take(&mut t.contributors) } else { Vec::new() };
        self.emit(
            m,
            m.actor,
            Source::Challenge(ci),
            Kind::ChallengeProgressed { challenge: ci, window, progress, goal: goal.moments },
        );
        for who in contributors {
            self.completed(m, who, ci, window);
        }
    }

    fn completed(&mut self, m: &MomentRec, who: Entity, ci: u16, window: i32) {
        let c = &self.p.challenges[ci as usize];
        self.emit(m, who, Source::Challenge(ci), Kind::ChallengeCompleted { challenge: ci, window });
        self.rewards(m, who, &c.reward, Source::Challenge(ci), 0);
        if let Some(b) = c.badge {
            self.grant_badge(m, who, b, 0);
        }
    }

    /// Reverses what moment `m.moment` earned: points come back out, badges it granted go.
    /// Metrics, streaks, challenge progress and levels are records of activity and stay.
    fn retract(&mut self, m: &MomentRec) {
        let earned: Vec<_> = self.history.earned(m.moment).to_vec();
        self.history.info[m.moment as usize].retracted = true;
        let n = self.p.currencies.len();
        for e in earned {
            match e.earned {
                Earned::Points { currency, amount } => {
                    let Ok((_, mut wallet, ..)) = self.q.get_mut(e.entity) else { continue };
                    let old = wallet.balance(currency);
                    let balance = wallet.add(n, currency, -amount);
                    self.emit(m, e.entity, Source::Retraction, Kind::Revoked { currency, amount, balance });
                    let metric = MetricRef::Currency(currency);
                    // All-time boards follow the balance; windowed ones keep the window's record.
                    for &b in self.p.watchers.boards(metric) {
                        if self.p.leaderboards[b as usize].window.is_some() {
                            continue;
                        }
                        let Ok((.., mut standing)) = self.q.get_mut(e.entity) else { continue };
                        let queued = standing.queued_in == self.batch_no;
                        standing.queued_in = self.batch_no;
                        let entry = standing.entry(b);
                        entry.value = balance;
                        entry.seq = m.seq;
                        if !queued {
                            self.queue.push(e.entity);
                        }
                    }
                    let _ = old;
                }
                Earned::Badge { badge, tier } => {
                    let Ok((_, _, mut tally, ..)) = self.q.get_mut(e.entity) else { continue };
                    let slot = tally.slot(tally_key::BADGE | u32::from(badge));
                    slot.b = match tier {
                        Some(t) => slot.b.min(i64::from(t)),
                        None => (slot.b - 1).max(0),
                    };
                    self.emit(m, e.entity, Source::Retraction, Kind::BadgeRevoked { badge, tier });
                }
            }
        }
    }
}

/// The window a calendar period is counted in.
pub fn window_of(p: Period) -> Window {
    match p {
        Period::Day => Window::Day,
        Period::Week => Window::Week,
        Period::Month => Window::Month,
    }
}
