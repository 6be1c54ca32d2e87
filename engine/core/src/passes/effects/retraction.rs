//! Retraction, the effects pass's step for a withdrawn moment: everything the moment itself
//! contributed is taken back, each change as a compensating effect named after the retraction.
//!
//! 1. **What it earned** (its ledger): points come back out of both stakeholders' balances and
//!    every leaderboard that counted them (all-time ones follow the balance, a windowed one loses
//!    the points if it is still in the moment's window); badges it earned are revoked.
//! 2. **The actor's activity is recounted** from their moments without this one
//!    ([`recount`]): the scoring code's own steps ([`effects::streak_step`],
//!    [`effects::individual_step`]) run over the actor's remaining moments (their facts, kept for
//!    insights, and which metrics, streaks and challenges each matched, kept as
//!    [`Activity`]), once with and once without the moment. What differs is applied: metric
//!    values (counts and distinct counts) and their boards, streak lengths, individual
//!    challenge progress and its insights, what the actor has met (so that a later moment with
//!    the same counterpart counts as a first again), and every challenge window no longer
//!    completed: the completion is revoked with its reward and badge ([`revoke_completion`]).
//!
//! What stays, by design (documented in `rules/README.md`): levels (they never drop), badges
//! earned by *other* moments whose threshold is no longer met, team challenges' progress and
//! completions, and knock-on effects on later moments (a cap that held a later moment back, a
//! chance draw). A recount reads the actor's facts in full: its cost grows with the
//! organisation's moments (measured in `docs/performance.md`), paid by retractions only.
//!
//! **Owns** undoing; **must not touch** anything the moment did not contribute to.

use bevy_ecs::prelude::Entity;
use rustc_hash::{FxHashMap, FxHashSet};

use crate::batch::{Action, MomentRec};
use crate::components::{Seen, Slot, Tally, seen_tag, tally_key};
use crate::history::Earned;
use crate::insights::Fact;
use crate::journal::{Kind, Source};
use crate::ruleset::program::{Distinct, MetricKind, MetricRef, Program, Window};

use crate::passes::effects::{self, Activity, Member, Out, StateQuery, member};
use crate::passes::rules::mark_firsts;

/// Takes back what moment `m.moment` contributed (see the module's documentation).
pub(crate) fn retract(out: &mut Out, q: &mut StateQuery, m: &MomentRec) {
    let Some(fact) = out.insights.fact(m.moment).copied() else { return };
    // The moment as it was scored, for its windows (a retraction record has none of its own).
    let was = rec_of(out.p, out.dir, &fact, m.moment, m.seq);
    let earned: Vec<_> = out.history.earned(m.moment).to_vec();
    out.history.retract(m.moment);
    let n = out.p.currencies.len();
    for e in earned {
        // A completion is taken back only when no longer reached: the recount decides. An
        // erased stakeholder is given nothing and loses nothing.
        if e.completion || out.dir.is_erased(e.stakeholder) {
            continue;
        }
        let Some(entity) = out.dir.entries.get(e.stakeholder as usize).map(|d| d.entity) else { continue };
        let Some(mut who) = member(q, entity) else { continue };
        match e.earned {
            Earned::Points { currency, amount } => take_points(out, &mut who, m, &was, currency, amount, n),
            Earned::Badge { badge, tier } => {
                let slot = who.tally.slot(tally_key::BADGE | u32::from(badge));
                slot.b = match tier {
                    Some(t) => slot.b.min(i64::from(t)),
                    None => (slot.b - 1).max(0),
                };
                out.emit(m, &who, Source::Retraction, Kind::BadgeRevoked { badge, tier });
            }
            // Levels never drop (a record of activity); completions: above.
            Earned::Level { .. } | Earned::Completed { .. } => {}
        }
    }
    if fact.state & crate::insights::state::SCORED != 0 && !out.dir.is_erased(fact.actor) {
        recount_actor(out, q, m, &was, &fact);
    }
    out.insights.retract(m.moment);
}

/// `amount` of `currency` that moment `was` gave `who` comes back out, at retraction `m`.
fn take_points(out: &mut Out, who: &mut Member, m: &MomentRec, was: &MomentRec, currency: u8, amount: i64, n: usize) {
    // At the balance's bound a retraction stops there (see `crate::bounds`).
    let (taken, balance) = who.wallet.credit(n, currency, amount.saturating_neg());
    out.emit(m, who, Source::Retraction, Kind::Revoked { currency, amount: taken.saturating_neg(), balance });
    let mut watched = effects::follow_balance(out.p, who.standing, currency, balance, m.seq);
    watched |= windowed_back(out.p, who, MetricRef::Currency(currency), was, taken, m.seq);
    if watched {
        out.enqueue(who);
    }
}

/// Windowed boards of `metric` still in moment `was`'s window take `delta` (the change the
/// retraction made to what the moment had added). True if any entry changed.
fn windowed_back(p: &Program, who: &mut Member, metric: MetricRef, was: &MomentRec, delta: i64, seq: u64) -> bool {
    let mut changed = false;
    for &b in p.watchers.boards(metric) {
        let Some(period) = p.leaderboards[b as usize].window else { continue };
        let w = was.window(period.into());
        let e = who.standing.entry(b);
        if e.window == w && delta != 0 {
            e.value = crate::bounds::sum(e.value, delta);
            e.seq = seq;
            changed = true;
        }
    }
    changed
}

/// A moment rebuilt from its fact, as far as the activity steps read one.
fn rec_of(p: &Program, dir: &crate::resources::Directory, fact: &Fact, moment: u32, seq: u64) -> MomentRec {
    let entity = |no: u32| dir.entries.get(no as usize).map(|d| d.entity);
    let mut rec = MomentRec::retraction(seq, moment);
    rec.action = Action::Score;
    rec.actor = entity(fact.actor).unwrap_or(Entity::PLACEHOLDER);
    rec.actor_no = fact.actor;
    if fact.has_counterpart() {
        rec.counterpart = entity(fact.counterpart);
        rec.counterpart_no = Some(fact.counterpart);
    }
    (rec.kind, rec.channel) = (fact.kind, fact.channel);
    (rec.actor_kind, rec.actor_team) = (fact.actor_kind, fact.actor_team);
    (rec.counterpart_kind, rec.counterpart_team) = (fact.counterpart_kind, fact.counterpart_team);
    rec.at = fact.at;
    rec.windows = Window::ALL.map(|w| match w.period() {
        None => fact.at.div_euclid(3600) as i32,
        Some(period) => p.calendar.period_index(period, fact.at),
    });
    rec
}

/// The activity a run of moments adds up to, on a blank scorecard.
#[derive(Default)]
struct Recount {
    tally: Tally,
    seen: Seen,
    /// Individual challenge windows completed, each once, with the moment that completed it.
    completed: FxHashMap<(u16, i32), u32>,
    /// Individual challenge progress per window, as the last counted moment left it.
    progress: FxHashMap<(u16, i32), u32>,
}

/// Runs the scoring's activity steps over `moments` (in acceptance order, with their
/// [`Activity`]).
fn recount(p: &Program, moments: &[(MomentRec, u64)]) -> Recount {
    let mut r = Recount::default();
    for (rec, activity) in moments {
        let mut m = *rec;
        if p.tracks_seen {
            mark_firsts(&mut m, &mut r.seen);
        }
        let (streaks_at, challenges_at) = Activity::offsets(p, m.kind);
        let matched = |pos: usize| activity & Activity::bit(pos) != 0;
        for (pos, &i) in p.metrics_by_kind.get(m.kind).iter().enumerate() {
            let counts = match &p.metrics[i as usize].kind {
                MetricKind::Count(_) => matched(pos),
                MetricKind::Distinct(Distinct::Counterparts) => m.first & crate::batch::first::COUNTERPART != 0,
                MetricKind::Distinct(Distinct::Teams) => m.first & crate::batch::first::TEAM != 0,
                MetricKind::Distinct(Distinct::Channels) => m.first & crate::batch::first::CHANNEL != 0,
            };
            if counts {
                let slot = r.tally.slot(tally_key::METRIC | u32::from(i));
                slot.b = slot.b.saturating_add(1);
            }
        }
        for (pos, &si) in p.streaks_by_kind.get(m.kind).iter().enumerate() {
            if matched(streaks_at + pos) {
                let s = &p.streaks[si as usize];
                effects::streak_step(r.tally.slot(tally_key::STREAK | u32::from(si)), s, m.window(s.period.into()));
            }
        }
        for (pos, &ci) in p.challenges_by_kind.get(m.kind).iter().enumerate() {
            let c = &p.challenges[ci as usize];
            if c.team || !matched(challenges_at + pos) {
                continue;
            }
            let Some(window) = effects::challenge_window(c, &m) else { continue };
            if let Some((moments, done)) = effects::individual_step(&mut r.tally, &mut r.seen, c.goal, ci, window, &m) {
                r.progress.insert((ci, window), moments);
                if done {
                    r.completed.insert((ci, window), m.moment);
                }
            }
        }
    }
    r
}

/// Recounts the activity of the actor of retracted moment `was` (fact `fact`) and applies what
/// changed.
fn recount_actor(out: &mut Out, q: &mut StateQuery, m: &MomentRec, was: &MomentRec, fact: &Fact) {
    let p = out.p;
    // The actor's moments that count, in order: the retracted one among them for `before`.
    let mut mine = Vec::new();
    let mut all_mine = Vec::new();
    for (no, f) in out.insights.facts().enumerate() {
        if f.actor != fact.actor {
            continue;
        }
        let no = no as u32;
        all_mine.push(no);
        if f.counts() || no == m.moment {
            let rec = rec_of(p, out.dir, f, no, m.seq);
            mine.push((rec, out.history.activity(no)));
        }
    }
    let before = recount(p, &mine);
    mine.retain(|(rec, _)| rec.moment != m.moment);
    let after = recount(p, &mine);
    let Some(mut who) = member(q, was.actor) else { return };

    // Metrics: the real value moves by the recount's difference.
    for i in 0..p.metrics.len() as u16 {
        let key = tally_key::METRIC | u32::from(i);
        let delta = after.tally.value(key) - before.tally.value(key);
        if delta == 0 {
            continue;
        }
        let old = who.tally.value(key);
        let new = (old + delta).max(0);
        who.tally.slot(key).b = new;
        follow(out, &mut who, MetricRef::Metric(i), was, old, new, m.seq);
    }
    // Streaks and individual challenges: replaced by the recount where the scorecard agrees
    // with the recount before it (a publication may have reset them since: then they stay).
    for si in 0..p.streaks.len() {
        let key = tally_key::STREAK | si as u32;
        let (b, a) = (before.tally.get(key), after.tally.get(key));
        if b == a || who.tally.get(key) != b {
            continue;
        }
        let old = who.tally.value(key) & 0xFFFF_FFFF;
        set_slot(who.tally, key, a);
        let new = who.tally.value(key) & 0xFFFF_FFFF;
        out.emit(m, &who, Source::Retraction, Kind::StreakShortened { streak: si as u16, length: new as u32 });
        follow(out, &mut who, MetricRef::Streak(si as u16), was, old, new, m.seq);
        // All-time boards show a lapsed streak as broken: the next read sweeps this streak again
        // (as of the organisation's clock then, whatever the batching).
        out.resweep = true;
    }
    for (ci, c) in p.challenges.iter().enumerate() {
        let ci = ci as u16;
        if c.team {
            continue;
        }
        for key in [tally_key::CHALLENGE | u32::from(ci), tally_key::CHALLENGE_DISTINCT | u32::from(ci)] {
            let (b, a) = (before.tally.get(key), after.tally.get(key));
            if b != a && who.tally.get(key) == b {
                set_slot(who.tally, key, a);
                if key & 0xFFFF_0000 == tally_key::CHALLENGE {
                    let tags =
                        [seen_tag::CHALLENGE_TEAMS, seen_tag::CHALLENGE_COUNTERPARTS].map(|t| t + 2 * u32::from(ci));
                    replace_tags(who.seen, &after.seen, &tags);
                }
            }
        }
    }
    // Progress per window: every window whose count changed (the retracted moment's, and an
    // older one where a late moment counts now that a later one is gone).
    let mut windows: Vec<(u16, i32)> = before.progress.keys().chain(after.progress.keys()).copied().collect();
    windows.sort_unstable();
    windows.dedup();
    for (ci, window) in windows {
        let progress = |r: &Recount| r.progress.get(&(ci, window)).copied().unwrap_or(0);
        let (from, to) = (progress(&before), progress(&after));
        if from != to {
            out.insights.recounted(p, ci, window, from, to);
            let goal = p.challenges[ci as usize].goal.moments;
            let kind = Kind::ChallengeProgressed { challenge: ci, window, progress: to, goal };
            out.journal_only(m, &who, Source::Retraction, kind);
        }
    }
    // What the actor met: keys only the retracted moment brought are forgotten.
    let gone: FxHashSet<u64> = {
        let kept: FxHashSet<u64> = after.seen.keys().into_iter().collect();
        before.seen.keys().into_iter().filter(|k| !seen_tag::is_window((k >> 32) as u32) && !kept.contains(k)).collect()
    };
    if !gone.is_empty() {
        let keys = who.seen.keys().into_iter().filter(|k| !gone.contains(k)).collect();
        *who.seen = Seen::from_keys(keys);
    }
    // Windows no longer completed.
    let mut lost: Vec<_> = before.completed.keys().filter(|k| !after.completed.contains_key(k)).copied().collect();
    lost.sort_unstable();
    for (ci, window) in lost {
        revoke_completion(out, &mut who, m, &all_mine, ci, window);
    }
    // Windows completed now (a late moment that counts once a later one is gone): given at the
    // retraction, in the ledger of the moment that completes them now.
    let mut gained: Vec<_> =
        after.completed.iter().filter(|(k, _)| !before.completed.contains_key(k)).map(|(&k, &no)| (k, no)).collect();
    gained.sort_unstable();
    for ((ci, window), no) in gained {
        // Given as of the moment that completes it now (its week, in the insights).
        let Some(f) = out.insights.fact(no).copied() else { continue };
        let by = rec_of(p, out.dir, &f, no, m.seq);
        out.late(|out| out.completed(&by, &mut who, ci, window));
    }
}

/// Sets slot `key` to `to` (or removes it).
fn set_slot(tally: &mut Tally, key: u32, to: Option<Slot>) {
    match to {
        Some(to) => *tally.slot(key) = to,
        None => tally.remove(key),
    }
}

/// `who`'s keys under `tags` become those of `from`.
fn replace_tags(seen: &mut Seen, from: &Seen, tags: &[u32]) {
    let under = |k: &u64| tags.contains(&((k >> 32) as u32));
    let mut keys: Vec<u64> = seen.keys().into_iter().filter(|k| !under(k)).collect();
    keys.extend(from.keys().into_iter().filter(under));
    *seen = Seen::from_keys(keys);
}

/// Metric `metric` of `who` went from `old` to `new` by a retraction: all-time boards follow,
/// windowed ones still in moment `was`'s window take the difference.
fn follow(out: &mut Out, who: &mut Member, metric: MetricRef, was: &MomentRec, old: i64, new: i64, seq: u64) {
    let mut changed = windowed_back(out.p, who, metric, was, new - old, seq);
    for &b in out.p.watchers.boards(metric) {
        if out.p.leaderboards[b as usize].window.is_none() {
            let e = who.standing.entry(b);
            e.value = new;
            e.seq = seq;
            changed = true;
        }
    }
    if changed {
        out.enqueue(who);
    }
}

/// `who`'s completion of challenge `ci`'s `window` is no longer reached: the completion, its
/// reward and its badge (with what they gave) are taken back, and their ledger entries voided.
fn revoke_completion(out: &mut Out, who: &mut Member, m: &MomentRec, theirs: &[u32], ci: u16, window: i32) {
    let origin = out.history.origins.of(Source::Challenge(ci), out.p);
    let ext = who.ext;
    // The moment that completed it: its ledger holds the completion and what followed from it.
    let found = theirs.iter().rev().find_map(|&no| {
        let ledger = out.history.earned(no);
        let start = ledger.iter().position(|e| {
            e.stakeholder == ext && e.origin == origin && e.completion && e.earned == Earned::Completed { window }
        })?;
        let len = ledger[start + 1..]
            .iter()
            .take_while(|e| e.stakeholder == ext && e.completion && !matches!(e.earned, Earned::Completed { .. }))
            .count();
        Some((no, start, ledger[start..=start + len].to_vec()))
    });
    let Some((no, start, entries)) = found else { return };
    let completing = out.insights.fact(no).copied().map(|f| rec_of(out.p, out.dir, &f, no, m.seq));
    let n = out.p.currencies.len();
    for e in &entries {
        match e.earned {
            Earned::Points { currency, amount } => {
                let was = completing.unwrap_or(*m);
                take_points(out, who, m, &was, currency, amount, n);
            }
            Earned::Badge { badge, tier } => {
                let slot = who.tally.slot(tally_key::BADGE | u32::from(badge));
                slot.b = (slot.b - 1).max(0);
                out.emit(m, who, Source::Retraction, Kind::BadgeRevoked { badge, tier });
            }
            Earned::Completed { window } => {
                let kind = Kind::ChallengeRevoked { challenge: ci, window };
                // Counted in the insights of the week the completion was counted in.
                out.insights.effect(out.p, no, ext, &kind);
                out.journal_only(m, who, Source::Retraction, kind);
            }
            Earned::Level { .. } => {}
        }
    }
    out.history.void(no, start..start + entries.len());
}
