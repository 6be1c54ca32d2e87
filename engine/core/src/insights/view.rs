//! Per-week views derived from the facts: who was active, in which groups, whom they met,
//! and the bridges between teams.
//!
//! **Owns** [`Derived`] and [`WeekView`]. A view is a function of its week's counting facts,
//! folded in moment order: facts that arrived since the last read are folded in; a week a
//! retraction touched is dropped and rebuilt whole on its next read. **Must not touch** the
//! facts themselves or anything scoring reads: none of this is stored or snapshotted.

use std::collections::BTreeMap;

use rustc_hash::{FxHashMap, FxHashSet};

use super::{Fact, Insights};
use crate::chunks::split;
use crate::ids::Sym;

/// What a stakeholder's moments of one week met, as keys `tag << 32 | id`.
pub mod met {
    pub const COUNTERPART: u64 = 0;
    pub const TEAM: u64 = 1 << 32;
    pub const CHANNEL: u64 = 2 << 32;
    pub const TAG: u64 = 0xFFFF_FFFF << 32;
}

/// One stakeholder's week.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PersonWeek {
    /// Moments taken part in, as actor or counterpart.
    pub moments: u32,
    pub last_at: i64,
    /// Counterparts, their teams and the channels used ([`met`] keys), sorted.
    pub met: Vec<u64>,
}

impl PersonWeek {
    fn meet(&mut self, key: u64) {
        if let Err(i) = self.met.binary_search(&key) {
            self.met.insert(i, key);
        }
    }
}

/// The ways moments and people are grouped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dim {
    /// The teams taking part (actor's and counterpart's).
    Team,
    /// The stakeholder kinds taking part.
    Kind,
    Channel,
    /// The moment's kind.
    MomentKind,
}

/// A group's week: moments in which it took part, and its people who did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Group {
    pub moments: u64,
    pub people: FxHashSet<u32>,
}

/// Moments from one team to another in a week: how many, and the distinct people on each side.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Bridge {
    pub moments: u64,
    pub actors: FxHashSet<u32>,
    pub counterparts: FxHashSet<u32>,
}

/// A week, derived from its counting facts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WeekView {
    /// Facts of the week's list folded in so far.
    folded: usize,
    pub moments: u64,
    pub people: FxHashMap<u32, PersonWeek>,
    pub groups: FxHashMap<(Dim, Sym), Group>,
    /// By (actor's team, counterpart's team), for moments with a counterpart and both teams.
    pub bridges: FxHashMap<(Sym, Sym), Bridge>,
}

impl WeekView {
    fn fold(&mut self, f: &Fact) {
        self.moments += 1;
        let cp = f.has_counterpart().then_some(f.counterpart);
        let mut person = |who: u32, other: Option<u32>, other_team: Sym| {
            let p = self.people.entry(who).or_default();
            p.moments += 1;
            p.last_at = p.last_at.max(f.at);
            if let Some(o) = other {
                p.meet(met::COUNTERPART | u64::from(o));
                if !other_team.is_none() {
                    p.meet(met::TEAM | u64::from(other_team.0));
                }
            }
            if !f.channel.is_none() {
                p.meet(met::CHANNEL | u64::from(f.channel.0));
            }
        };
        person(f.actor, cp, f.counterpart_team);
        if let Some(c) = cp {
            person(c, Some(f.actor), f.actor_team);
        }
        let both: &[u32] = match cp {
            Some(c) => &[f.actor, c],
            None => &[f.actor],
        };
        for (dim, sym) in [(Dim::MomentKind, f.kind), (Dim::Channel, f.channel)] {
            if !sym.is_none() {
                let g = self.groups.entry((dim, sym)).or_default();
                g.moments += 1;
                g.people.extend(both.iter().copied());
            }
        }
        // A team (a kind) takes part through its members: the moment counts once for it, and
        // its members who took part are its active people.
        for (dim, a, c) in
            [(Dim::Team, f.actor_team, f.counterpart_team), (Dim::Kind, f.actor_kind, f.counterpart_kind)]
        {
            let c = if cp.is_some() { c } else { Sym::NONE };
            if !a.is_none() {
                let g = self.groups.entry((dim, a)).or_default();
                g.moments += u64::from(c != a);
                g.people.insert(f.actor);
            }
            if let (false, Some(who)) = (c.is_none(), cp) {
                let g = self.groups.entry((dim, c)).or_default();
                g.moments += 1;
                g.people.insert(who);
            }
        }
        if let Some(c) = cp
            && !f.actor_team.is_none()
            && !f.counterpart_team.is_none()
        {
            let b = self.bridges.entry((f.actor_team, f.counterpart_team)).or_default();
            b.moments += 1;
            b.actors.insert(f.actor);
            b.counterparts.insert(c);
        }
    }

    /// Active people: those with a counting moment this week.
    pub fn active(&self) -> usize {
        self.people.len()
    }

    pub fn group(&self, dim: Dim, sym: Sym) -> Option<&Group> {
        self.groups.get(&(dim, sym))
    }

    fn bytes(&self) -> usize {
        let people: usize = self.people.values().map(|p| 48 + p.met.capacity() * 8).sum();
        let groups: usize = self.groups.values().map(|g| 40 + g.people.capacity() * 8).sum();
        let bridges: usize =
            self.bridges.values().map(|b| 56 + (b.actors.capacity() + b.counterparts.capacity()) * 8).sum();
        people + groups + bridges
    }
}

/// The views derived from an organisation's facts.
#[derive(Debug, Default)]
pub struct Derived {
    /// Facts placed in `weeks` so far (moment ids below this).
    indexed: usize,
    /// By week: the moment ids of its scored facts, in moment order.
    weeks: BTreeMap<i32, Vec<u32>>,
    views: FxHashMap<i32, WeekView>,
}

impl Derived {
    /// A fact of `week` changed (retracted): its view is rebuilt on the next read.
    pub(crate) fn touched(&mut self, week: i32) {
        self.views.remove(&week);
    }

    pub(crate) fn bytes(&self) -> usize {
        self.weeks.values().map(|w| w.capacity() * 4 + 48).sum::<usize>()
            + self.views.values().map(WeekView::bytes).sum::<usize>()
    }
}

impl Insights {
    /// Places the facts recorded since the last read in their weeks' lists.
    fn index(&mut self) {
        let d = &mut self.derived;
        let total = self.facts.len();
        while d.indexed < total {
            let (k, i) = split(d.indexed);
            let Some(block) = self.facts.block(k) else { break };
            for (j, f) in block.iter().enumerate().skip(i) {
                if f.state & super::state::SCORED != 0 {
                    d.weeks.entry(f.week).or_default().push((k * crate::chunks::BLOCK + j) as u32);
                }
            }
            d.indexed = k * crate::chunks::BLOCK + block.len();
        }
    }

    /// The weeks with scored moments, in order.
    pub fn weeks(&mut self) -> Vec<i32> {
        self.index();
        self.derived.weeks.keys().copied().collect()
    }

    /// The first and last week with scored moments.
    pub fn week_span(&mut self) -> Option<(i32, i32)> {
        self.index();
        let w = &self.derived.weeks;
        Some((*w.keys().next()?, *w.keys().next_back()?))
    }

    /// Week `week`'s view, brought up to date.
    pub fn view(&mut self, week: i32) -> &WeekView {
        self.index();
        let ids: &[u32] = self.derived.weeks.get(&week).map_or(&[], |v| v.as_slice());
        let view = self.derived.views.entry(week).or_default();
        for &m in &ids[view.folded..] {
            let (k, i) = split(m as usize);
            if let Some(f) = self.facts.block(k).and_then(|b| b.get(i))
                && f.counts()
            {
                view.fold(f);
            }
        }
        view.folded = ids.len();
        view
    }
}

impl Insights {
    /// Brings the views of `weeks` up to date, for [`Insights::cached`].
    pub fn refresh(&mut self, weeks: std::ops::RangeInclusive<i32>) {
        if weeks.is_empty() {
            return; // before the first week recorded, say: nothing to bring up to date
        }
        self.index();
        let wanted: Vec<i32> = self.derived.weeks.range(weeks).map(|(w, _)| *w).collect();
        for w in wanted {
            self.view(w);
        }
    }

    /// Week `week`'s view as last brought up to date (`None` for a week without moments).
    pub fn cached(&self, week: i32) -> Option<&WeekView> {
        self.derived.views.get(&week)
    }

    /// The counting facts of week `week`, in moment order.
    pub fn week_facts(&mut self, week: i32) -> impl Iterator<Item = &Fact> {
        self.index();
        let ids: &[u32] = self.derived.weeks.get(&week).map_or(&[], |v| v.as_slice());
        ids.iter().filter_map(|&m| self.fact(m)).filter(|f| f.counts())
    }
}
