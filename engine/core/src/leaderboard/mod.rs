//! Leaderboards: publishing changed entries into each board's rankings, and the reads (a page,
//! a rank, "around me"), overall and per team.
//!
//! Owns [`Boards`], the [`PublishQueue`] and the published side of each
//! [`Standing`](crate::components::Standing). A ranking is an order-statistic index
//! ([`ordered::OrderedIndex`]) over `(-value, seq, stakeholder)`: highest value first, and among
//! equal values whoever reached it first. Ranks follow the board's tie
//! policy: `shared` (1, 2, 2, 4), `dense` (1, 2, 2, 3) or `first_come` (1, 2, 3, 4). There is
//! no participant ceiling.
//!
//! Publishing is lazy. Scoring only queues the stakeholders whose entries changed (once each,
//! whatever the number of batches); [`publish`] runs before a read needs the rankings
//! ([`crate::OrgWorld`]'s reads call it), and moves every queued entry in one sorted merge per
//! ranking ([`ordered::OrderedIndex::apply`]). So ingesting costs nothing per ranking, and a read
//! pays for what changed since the one before it, touching each block of a ranking at most once.
//! What a read sees is a function of the entries alone, never of when publishing ran.
//!
//! A team board (`teams = "sum" | "average"`) ranks teams instead: publishing moves each entry
//! between its teams' aggregates ([`teams::TeamBoard`]) and keeps no stakeholder ranking for it.

pub mod ordered;
pub mod teams;

use bevy_ecs::prelude::*;
use rustc_hash::FxHashMap;

use crate::components::Scorecard;
use crate::ids::Sym;
use crate::resources::ProgramRes;
use crate::ruleset::program::{Leaderboard, Program, Ties};
use ordered::{DistinctCounter, OrderedIndex};
use teams::TeamBoard;

/// Ranking order: `(-value, seq, directory number)`.
pub type Key = (i64, u64, u64);

/// One ranking: the ordered entries, and the distinct values for dense ranks.
#[derive(Debug, Default, Clone)]
pub struct Ranking {
    pub index: OrderedIndex<Key>,
    /// Kept only on boards ranked `dense`.
    pub distinct: Option<DistinctCounter<i64>>,
    /// Keys to remove and to insert, gathered by [`publish`] and applied together.
    staged: (Vec<Key>, Vec<Key>),
}

impl Ranking {
    fn new(ties: Ties) -> Ranking {
        Ranking {
            index: OrderedIndex::new(),
            distinct: (ties == Ties::Dense).then(DistinctCounter::new),
            staged: Default::default(),
        }
    }

    /// Stages moving an entry from `old` to `new` (either may be absent).
    fn update(&mut self, old: Option<Key>, new: Option<Key>) {
        if old == new {
            return;
        }
        self.staged.0.extend(old);
        self.staged.1.extend(new);
    }

    /// Applies the staged moves.
    fn commit(&mut self) {
        let (remove, insert) = &mut self.staged;
        if remove.is_empty() && insert.is_empty() {
            return;
        }
        remove.sort_unstable();
        insert.sort_unstable();
        self.index.apply(remove, insert);
        if let Some(d) = &mut self.distinct {
            remove.iter().for_each(|k| _ = d.remove(k.0));
            insert.iter().for_each(|k| d.add(k.0));
        }
        remove.clear();
        insert.clear();
    }

    /// The rank of the entry `k` at position `pos` under `ties`.
    pub fn rank(&self, ties: Ties, pos: usize, k: &Key) -> usize {
        1 + match (ties, &self.distinct) {
            (Ties::FirstCome, _) => pos,
            (Ties::Dense, Some(d)) => d.distinct_less_than(&k.0),
            // Everyone with a higher value: (-value, 0, 0) sorts before every key of that value.
            _ => self.index.position_of_first_not_less(&(k.0, 0, 0)),
        }
    }
}

/// The live state of one leaderboard.
#[derive(Debug, Clone)]
pub struct Board {
    /// The window shown (windowed boards); all-time boards use 0.
    pub window: i32,
    pub ties: Ties,
    pub all: Ranking,
    pub teams: FxHashMap<u32, Ranking>,
    /// A team board's teams (then `all` and `teams` stay empty); `None` on a stakeholder board.
    pub team_board: Option<Box<TeamBoard>>,
}

impl Board {
    fn new(def: &Leaderboard) -> Board {
        Board {
            window: if def.window.is_some() { i32::MIN } else { 0 },
            ties: def.ties,
            all: Ranking::new(def.ties),
            teams: FxHashMap::default(),
            team_board: def.teams.map(|how| Box::new(TeamBoard::new(how, def.ties))),
        }
    }

    pub fn ranking(&self, team: Option<Sym>) -> Option<&Ranking> {
        match team {
            None => Some(&self.all),
            Some(t) => self.teams.get(&t.0),
        }
    }
}

/// All leaderboards of the organisation, in rule-set order.
#[derive(Resource, Debug, Clone)]
pub struct Boards(pub Vec<Board>);

impl Boards {
    pub fn new(p: &Program) -> Boards {
        Boards(p.leaderboards.iter().map(Board::new).collect())
    }
}

/// The ranking key of a stakeholder (`ext`, its number in the directory) with `value`, reached
/// at record `seq`.
pub fn key(value: i64, seq: u64, ext: u32) -> Key {
    (value.saturating_neg(), seq, u64::from(ext))
}

/// The period each streak's boards were last brought up to the organisation's clock in (by
/// streak index; not kept in snapshots: a sweep that finds nothing lapsed changes nothing). See
/// `OrgWorld`'s sweep of lapsed streaks.
#[derive(Resource, Debug, Default)]
pub struct StreakSweep {
    pub upto: Vec<i32>,
}

/// Stakeholders whose leaderboard entries changed since the last [`publish`], each once.
#[derive(Resource, Debug, Default)]
pub struct PublishQueue {
    pub queue: Vec<Entity>,
    /// One bit per entity index: queued. Cleared as the queue drains, so it costs a bit per
    /// stakeholder instead of a field in every `Standing`.
    queued: Vec<u64>,
}

impl PublishQueue {
    /// Queues `e` unless it is queued already.
    pub fn push(&mut self, e: Entity) {
        let i = e.index_u32() as usize;
        if self.queued.len() <= i / 64 {
            self.queued.resize(i / 64 + 1, 0);
        }
        let (word, bit) = (&mut self.queued[i / 64], 1u64 << (i % 64));
        if *word & bit == 0 {
            *word |= bit;
            self.queue.push(e);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Takes the queued entities, in the order queued, and clears their marks.
    fn take(&mut self) -> Vec<Entity> {
        for e in &self.queue {
            let i = e.index_u32() as usize;
            self.queued[i / 64] &= !(1u64 << (i % 64));
        }
        std::mem::take(&mut self.queue)
    }

    /// Hands back the buffer `take` returned, so the next round reuses its capacity.
    fn recycle(&mut self, mut buffer: Vec<Entity>) {
        if self.queue.is_empty() {
            buffer.clear();
            self.queue = buffer;
        }
    }
}

/// Publishes the queued entries: every ranking they are on ends as if each entry had been
/// moved as it changed.
pub fn publish(
    program: Res<ProgramRes>,
    mut boards: ResMut<Boards>,
    mut queue: ResMut<PublishQueue>,
    dir: Res<crate::resources::Directory>,
    mut q: Query<&mut Scorecard>,
) {
    let p = &*program.0;
    let queued = queue.take();
    for &who in &queued {
        let Ok(card) = q.get_mut(who) else { continue };
        let card = card.into_inner();
        let id = card.identity;
        // The erased are on no board, whatever their entries say.
        let erased = dir.is_erased(id.ext);
        for entry in card.standing.entries.iter_mut() {
            let target = (entry.window, entry.value, entry.seq);
            if entry.published() == Some(target) && entry.published_team == id.team {
                continue;
            }
            let Some(board) = boards.0.get_mut(entry.board as usize) else { continue };
            let def = &p.leaderboards[entry.board as usize];
            if def.window.is_some() && entry.window > board.window {
                // A new window begins: last window's entries leave the board.
                *board = Board::new(def);
                board.window = entry.window;
            }
            let published = entry.published().filter(|pb| pb.0 == board.window);
            let old = published.map(|(_, v, s)| key(v, s, id.ext));
            entry.set_published(None);
            let new = (entry.window == board.window && entry.value != 0 && !erased)
                .then(|| key(entry.value, entry.seq, id.ext));
            let ties = board.ties;
            if let Some(tb) = &mut board.team_board {
                // Stakeholders without a team count in no team.
                if let Some((_, v, s)) = published.filter(|_| !entry.published_team.is_none()) {
                    tb.remove(entry.published_team.0, v, s);
                }
                if new.is_some() && !id.team.is_none() {
                    tb.add(id.team.0, entry.value, entry.seq);
                }
            } else if entry.published_team == id.team {
                board.all.update(old, new);
                if !id.team.is_none() {
                    board.teams.entry(id.team.0).or_insert_with(|| Ranking::new(ties)).update(old, new);
                }
            } else {
                board.all.update(old, new);
                if let Some(t) = board.teams.get_mut(&entry.published_team.0) {
                    t.update(old, None);
                }
                if !id.team.is_none() {
                    board.teams.entry(id.team.0).or_insert_with(|| Ranking::new(ties)).update(None, new);
                }
            }
            if new.is_some() {
                entry.set_published(Some(target));
                entry.published_team = id.team;
            } else {
                entry.published_team = Sym::NONE;
            }
        }
    }
    for board in &mut boards.0 {
        board.all.commit();
        board.teams.values_mut().for_each(Ranking::commit);
        if let Some(tb) = &mut board.team_board {
            tb.commit();
        }
    }
    queue.recycle(queued);
}
