//! Publishing a new version of an organisation's rule set, going forward: the world keeps
//! everything stakeholders have (balances, badges, levels, streaks, metrics, challenge progress,
//! cap counters, leaderboard entries) and scores the next record under the new rules.
//!
//! **Owns** carrying state from one [`Program`] to the next. Stakeholder state is indexed by
//! the program's positions (a wallet by currency index, a cap counter by cap slot, a tally slot
//! by metric, streak, badge or challenge index, a leaderboard entry by board index), so the
//! carry-over matches everything **by id** and rewrites the indexes:
//!
//! - an item whose id is in both versions keeps its state under its new index;
//! - an item the new version drops loses its state (a removed currency's balance is gone, and
//!   so are its ledger entries: a later retraction has nothing of it to reverse);
//! - a new item starts empty, except an all-time leaderboard, which is filled at once from the
//!   values stakeholders already have, so that a new board over an existing currency is not
//!   empty until people score again;
//! - state whose meaning depends on a definition that changed is reset rather than
//!   misread: cap counters when the cap's window changed, a streak when its period changed,
//!   challenge progress when its window or its team flag changed, a leaderboard's entries when
//!   what it measures or its window changed (an all-time one is then refilled), the guard's count
//!   when its window changed;
//! - levels are recomputed from the balance under the new steps, never lower than reached
//!   (levels only rise, as in scoring).
//!
//! Leaderboards are rebuilt from the carried entries. The time zone and the organisation id
//! cannot change: every window number held in state is counted in the zone.
//!
//! **Must not touch** records, the log, or plugins: those are the log step's and the registry's.
//! Publishing is a deterministic function of (state, old program, new program), so a replay of
//! the log that publishes the same versions at the same positions ends in the same state.

use bevy_ecs::prelude::*;
use rustc_hash::FxHashMap;

use crate::components::{GuardState, Scorecard, seen_tag, tally_key};
use crate::history::{Earned, History, LedgerEntry};
use crate::ids::Sym;
use crate::leaderboard::{Boards, PublishQueue};
use crate::ruleset::program::{MetricRef, Program};
use crate::team::TeamChallenges;

/// Why a rule set cannot replace the one in force; each names the field.
pub fn check_compatible(old: &Program, new: &Program) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    if old.org_id != new.org_id {
        problems.push((
            "organisation.id".to_string(),
            format!("is {:?}; a rule set for {:?} cannot be published here", new.org_id, old.org_id),
        ));
    }
    if old.timezone != new.timezone {
        problems.push((
            "organisation.timezone".to_string(),
            format!(
                "cannot change from {:?} to {:?}: the windows already counted are in {:?}",
                old.timezone, new.timezone, old.timezone
            ),
        ));
    }
    problems
}

/// Old index -> new index of the items whose id is in both.
fn by_id<T>(old: &[T], new: &[T], id: impl Fn(&T) -> &str) -> Vec<Option<u16>> {
    let index: FxHashMap<&str, u16> = new.iter().enumerate().map(|(i, x)| (id(x), i as u16)).collect();
    old.iter().map(|x| index.get(id(x)).copied()).collect()
}

/// What a metric reference measures, by id: (kind, id).
fn measures(p: &Program, m: MetricRef) -> (u8, &str) {
    let kind = match m {
        MetricRef::Currency(_) => 0,
        MetricRef::Metric(_) => 1,
        MetricRef::Streak(_) => 2,
    };
    (kind, p.metric_name(m))
}

/// How each kind of old index maps to the new program.
struct Maps {
    currencies: Vec<Option<u16>>,
    /// By old cap slot.
    caps: FxHashMap<u16, u16>,
    metrics: Vec<Option<u16>>,
    streaks: Vec<Option<u16>>,
    badges: Vec<Option<u16>>,
    challenges: Vec<Option<u16>>,
    boards: Vec<Option<u16>>,
    /// New boards to fill from current values: all-time boards that are new or changed.
    fill: Vec<u16>,
    guard_reset: bool,
}

impl Maps {
    fn new(old: &Program, new: &Program) -> Maps {
        let mut caps = FxHashMap::default();
        let rules = by_id(&old.rules, &new.rules, |r| &r.id);
        for (r, to) in old.rules.iter().zip(&rules) {
            let Some(to) = to else { continue };
            let n = &new.rules[*to as usize];
            if let (Some(a), Some(b)) = (r.cap, n.cap)
                && a.per == b.per
            {
                caps.insert(r.cap_slot, n.cap_slot);
            }
        }
        let mut streaks = by_id(&old.streaks, &new.streaks, |s| &s.id);
        for (s, to) in old.streaks.iter().zip(streaks.iter_mut()) {
            if to.is_some_and(|t| new.streaks[t as usize].period != s.period) {
                *to = None;
            }
        }
        let mut challenges = by_id(&old.challenges, &new.challenges, |c| &c.id);
        for (c, to) in old.challenges.iter().zip(challenges.iter_mut()) {
            if to.is_some_and(|t| {
                let n = &new.challenges[t as usize];
                n.window != c.window || n.team != c.team
            }) {
                *to = None;
            }
        }
        let mut boards = by_id(&old.leaderboards, &new.leaderboards, |b| &b.id);
        for (b, to) in old.leaderboards.iter().zip(boards.iter_mut()) {
            if to.is_some_and(|t| {
                let n = &new.leaderboards[t as usize];
                n.window != b.window || measures(new, n.metric) != measures(old, b.metric)
            }) {
                *to = None;
            }
        }
        let kept: Vec<u16> = boards.iter().flatten().copied().collect();
        let fill = (0..new.leaderboards.len() as u16)
            .filter(|b| new.leaderboards[*b as usize].window.is_none() && !kept.contains(b))
            .collect();
        let guard_window = |p: &Program| p.guard.as_ref().and_then(|g| g.max_moments).map(|(_, w)| w);
        Maps {
            currencies: by_id(&old.currencies, &new.currencies, |c| &c.id),
            caps,
            metrics: by_id(&old.metrics, &new.metrics, |m| &m.id),
            streaks,
            badges: by_id(&old.badges, &new.badges, |b| &b.id),
            challenges,
            boards,
            fill,
            guard_reset: guard_window(old) != guard_window(new),
        }
    }

    /// A tally slot key under the new program, if its state carries over.
    fn tally_key(&self, key: u32) -> Option<u32> {
        let (tag, ix) = (key & 0xFFFF_0000, (key & 0xFFFF) as usize);
        let map = match tag {
            tally_key::METRIC => &self.metrics,
            tally_key::STREAK => &self.streaks,
            tally_key::BADGE => &self.badges,
            tally_key::LEVEL => return Some(key),
            tally_key::CHALLENGE | tally_key::CHALLENGE_DISTINCT | tally_key::TEAM_CONTRIBUTION => &self.challenges,
            _ => return None,
        };
        map.get(ix).copied().flatten().map(|to| tag | u32::from(to))
    }

    /// A seen tag under the new program: challenge tags follow their challenge.
    fn seen_tag(&self, tag: u32) -> Option<u32> {
        if tag < seen_tag::CHALLENGE_TEAMS {
            return Some(tag);
        }
        let rel = tag - seen_tag::CHALLENGE_TEAMS;
        let to = self.challenges.get((rel / 2) as usize).copied().flatten()?;
        Some(seen_tag::CHALLENGE_TEAMS + 2 * u32::from(to) + rel % 2)
    }

    fn is_identity_for_seen(&self) -> bool {
        self.challenges.iter().enumerate().all(|(i, to)| *to == Some(i as u16))
    }
}

/// Carries `world`'s state from its program to `new` (already checked with
/// [`check_compatible`]).
/// `seq` is the log position the new version takes effect after: the tie-break sequence of
/// the entries filled into new leaderboards. Installs `new` and queues every carried
/// leaderboard entry; the caller runs the scoring schedule over an empty batch to publish them.
pub fn carry_over(world: &mut World, new: Program, seq: u64) {
    let old = world.resource::<crate::resources::ProgramRes>().0.clone();
    let (old, new) = (&*old, &new);
    let maps = Maps::new(old, new);
    let seen_stays = maps.is_identity_for_seen();
    let n_currencies = new.currencies.len();
    let mut queue = Vec::new();
    let mut q = world.query::<(Entity, &mut Scorecard)>();
    for (entity, card) in q.iter_mut(world) {
        let Scorecard { wallet, caps, seen, tally, standing, guard, .. } = card.into_inner();
        if !wallet.0.is_empty() {
            let mut balances = vec![0i64; n_currencies].into_boxed_slice();
            for (c, to) in maps.currencies.iter().enumerate() {
                if let Some(to) = to {
                    balances[*to as usize] = wallet.balance(c as u8);
                }
            }
            wallet.0 = balances;
        }
        if !caps.0.is_empty() {
            let mut slots: Vec<_> = caps
                .0
                .iter()
                .filter_map(|s| maps.caps.get(&s.rule).map(|&rule| crate::components::CapSlot { rule, ..*s }))
                .collect();
            slots.sort_by_key(|s| s.rule);
            caps.0 = slots.into_boxed_slice();
        }
        if !seen_stays {
            seen.remap(|tag| maps.seen_tag(tag));
        }
        let mut slots: Vec<_> = tally
            .0
            .iter()
            .filter_map(|s| maps.tally_key(s.key).map(|key| crate::components::Slot { key, ..*s }))
            .collect();
        if let Some(levels) = &new.levels {
            let balance = wallet.balance(levels.currency);
            let reached = levels.reached(balance);
            let had = slots.iter().find(|s| s.key == tally_key::LEVEL).map(|s| s.b.min(levels.steps.len() as i64));
            slots.retain(|s| s.key != tally_key::LEVEL);
            // As in scoring, a level is held once the levels' currency moved for someone.
            if had.is_some() || balance != 0 {
                let had = had.unwrap_or(0);
                slots.push(crate::components::Slot { key: tally_key::LEVEL, a: 0, b: reached.max(had) });
            }
        } else {
            slots.retain(|s| s.key != tally_key::LEVEL);
        }
        slots.sort_by_key(|s| s.key);
        tally.0 = slots.into_boxed_slice();
        let mut entries: Vec<_> = standing
            .entries
            .iter()
            .filter_map(|e| {
                let board = maps.boards.get(e.board as usize).copied().flatten()?;
                let mut e = crate::components::Entry { board, ..*e };
                e.set_published(None);
                e.published_team = Sym::NONE;
                Some(e)
            })
            .collect();
        for &b in &maps.fill {
            let value = match new.leaderboards[b as usize].metric {
                MetricRef::Currency(c) => wallet.balance(c),
                MetricRef::Metric(m) => tally.value(tally_key::METRIC | u32::from(m)),
                MetricRef::Streak(s) => tally.value(tally_key::STREAK | u32::from(s)) & 0xFFFF_FFFF,
            };
            if value != 0 {
                entries.push(crate::components::Entry { board: b, value, seq, ..Default::default() });
            }
        }
        entries.sort_by_key(|e| e.board);
        let publish = !entries.is_empty();
        standing.entries = entries.into_boxed_slice();
        if publish {
            queue.push(entity);
        }
        if maps.guard_reset {
            *guard = GuardState { window: 0, count: 0, ..*guard };
        }
    }

    carry_ledger(&mut world.resource_mut::<History>(), &maps);
    carry_activity(world, old, new, &maps);
    let mut teams = world.resource_mut::<TeamChallenges>();
    teams.progress = std::mem::take(&mut teams.progress)
        .into_iter()
        .filter_map(|((c, team), progress)| {
            let to = maps.challenges.get(c as usize).copied().flatten()?;
            Some(((to, team), progress))
        })
        .collect();

    world.insert_resource(Boards::new(new));
    // Streak indices are the new rule set's: sweep them anew.
    world.insert_resource(crate::leaderboard::StreakSweep::default());
    world.insert_resource(crate::resources::ProgramRes(std::sync::Arc::new(new.clone())));
    let mut publish = world.resource_mut::<PublishQueue>();
    for e in queue {
        publish.push(e);
    }
}

/// Rewrites which activity each moment matched ([`crate::history::MomentInfo::activity`]: bits
/// by position in its kind's lists) for the new program's lists; items dropped, or whose state
/// is reset (a streak whose period changed, a challenge whose window changed), lose their bit.
fn carry_activity(world: &mut World, old: &Program, new: &Program, maps: &Maps) {
    use crate::passes::effects::Activity;
    let kinds: Vec<Sym> = world.resource::<crate::insights::Insights>().facts().map(|f| f.kind).collect();
    let moves = |kind: Sym| -> Vec<(u64, u64)> {
        let lists = |p: &Program| {
            let (m, s, c) = (p.metrics_by_kind.get(kind), p.streaks_by_kind.get(kind), p.challenges_by_kind.get(kind));
            (m.to_vec(), s.to_vec(), c.to_vec())
        };
        let ((om, os, oc), (nm, ns, nc)) = (lists(old), lists(new));
        let mut moves = Vec::new();
        let mut add = |from: usize, to: Option<usize>| {
            if let Some(to) = to {
                moves.push((Activity::bit(from), Activity::bit(to)));
            }
        };
        let find = |list: &[u16], ix: Option<u16>| ix.and_then(|ix| list.iter().position(|&x| x == ix));
        for (j, &i) in om.iter().enumerate() {
            add(j, find(&nm, maps.metrics[i as usize]));
        }
        for (j, &i) in os.iter().enumerate() {
            add(om.len() + j, find(&ns, maps.streaks[i as usize]).map(|t| nm.len() + t));
        }
        for (j, &i) in oc.iter().enumerate() {
            add(om.len() + os.len() + j, find(&nc, maps.challenges[i as usize]).map(|t| nm.len() + ns.len() + t));
        }
        moves
    };
    let mut by_kind: FxHashMap<Sym, Vec<(u64, u64)>> = FxHashMap::default();
    world.resource_mut::<History>().rewrite_activity(|moment, activity| {
        let Some(&kind) = kinds.get(moment as usize) else { return 0 };
        let moves = by_kind.entry(kind).or_insert_with(|| moves(kind));
        moves.iter().filter(|(from, _)| activity & from != 0).fold(0, |acc, (_, to)| acc | to)
    });
}

/// Rewrites the ledger's indexes; entries of dropped currencies and badges go. Origins name
/// what gave the entries and stay; which index each effect source has is the new rule set's.
fn carry_ledger(history: &mut History, maps: &Maps) {
    history.origins.forget_program();
    history.rewrite_ledger(|_, old, ledger| {
        for entry in old {
            let earned = match entry.earned {
                Earned::Points { currency, amount } => {
                    maps.currencies[currency as usize].map(|to| Earned::Points { currency: to as u8, amount })
                }
                Earned::Badge { badge, tier } => {
                    maps.badges[badge as usize].map(|to| Earned::Badge { badge: to, tier })
                }
                // The level's index in the new steps; the challenge is named by the origin.
                Earned::Level { .. } | Earned::Completed { .. } => Some(entry.earned),
            };
            if let Some(earned) = earned {
                ledger.push(LedgerEntry { earned, ..*entry });
            }
        }
    });
}
