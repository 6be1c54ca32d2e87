//! Reads over a world: a stakeholder's profile, a leaderboard page (overall or per team, from an
//! offset or around a stakeholder; on a team board, the teams, from an offset or around a
//! team), and the challenges with their status. Serializable shapes,
//! the same for the CLI's `--summary` and, later, the HTTP API.
//!
//! Reads only; they change no state. Those that show ranks publish queued leaderboard entries
//! first ([`OrgWorld::publish_leaderboards`]), hence `&mut self`.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::components::{Details, Scorecard, tally_key};
use crate::ids::Sym;
use crate::journal::window_label;
use crate::leaderboard::teams::TeamBoard;
use crate::leaderboard::{Board, Boards};
use crate::resources::{Directory, Vocab};
use crate::ruleset::program::{BadgeShape, ChallengeWindow};
use crate::team::TeamChallenges;
use crate::world::OrgWorld;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Profile {
    pub id: String,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub currencies: BTreeMap<String, i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<LevelView>,
    pub metrics: BTreeMap<String, i64>,
    pub badges: Vec<BadgeView>,
    pub streaks: Vec<StreakView>,
    pub challenges: Vec<ProgressView>,
    /// Rank on every leaderboard the stakeholder is on.
    pub ranks: BTreeMap<String, usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LevelView {
    pub index: u32,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BadgeView {
    pub badge: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    pub count: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StreakView {
    pub streak: String,
    /// Periods in a row, as of the last matching moment.
    pub length: u32,
    pub best: u32,
    /// Start date of the last period with a matching moment.
    pub last: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProgressView {
    pub challenge: String,
    pub window: String,
    pub moments: u32,
    pub goal: u32,
    pub completed: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub rank: usize,
    pub stakeholder: String,
    pub value: i64,
}

/// A row of a team board: a team, its value (the sum or the average of its members' values) and
/// how many members count in it (those with a nonzero value on the board).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TeamRow {
    pub rank: usize,
    pub team: String,
    pub value: i64,
    pub members: u32,
}

/// A page's rows: stakeholders, or teams on a team board. Serialized as the bare array.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Rows {
    Stakeholders(Vec<Row>),
    Teams(Vec<TeamRow>),
}

impl Rows {
    /// The stakeholder rows (none on a team board).
    pub fn stakeholders(&self) -> &[Row] {
        match self {
            Rows::Stakeholders(rows) => rows,
            Rows::Teams(_) => &[],
        }
    }

    /// The team rows (none on a stakeholder board).
    pub fn teams(&self) -> &[TeamRow] {
        match self {
            Rows::Teams(rows) => rows,
            Rows::Stakeholders(_) => &[],
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Rows::Stakeholders(rows) => rows.len(),
            Rows::Teams(rows) => rows.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page {
    pub board: String,
    pub metric: String,
    pub ties: &'static str,
    /// The window shown, for windowed boards.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// On a team board, how it combines the members' values: `sum` or `average`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub teams: Option<&'static str>,
    /// Participants on this board (or team ranking): stakeholders, or teams on a team board.
    pub total: usize,
    pub rows: Rows,
}

/// Which part of a board to read.
#[derive(Debug, Clone, Default)]
pub struct PageQuery {
    pub team: Option<String>,
    /// Rows around this stakeholder (± `limit / 2`) instead of from `offset`; on a team board,
    /// around this team.
    pub around: Option<String>,
    pub offset: usize,
    pub limit: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("no leaderboard {0:?}")]
    UnknownBoard(String),
    #[error("no stakeholder {0:?}")]
    UnknownStakeholder(String),
    #[error("stakeholder {0:?} is not on this leaderboard")]
    NotRanked(String),
    #[error("team {0:?} is not on this leaderboard")]
    TeamNotRanked(String),
    #[error("leaderboard {0:?} ranks teams: it has no ranking within a team")]
    TeamOfTeamBoard(String),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChallengeView {
    pub id: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub scope: &'static str,
    /// day, week, month, or fixed.
    pub window: String,
    /// active, paused, upcoming or ended (fixed windows, against the latest moment's time).
    pub status: &'static str,
    pub goal: GoalView,
    /// Teams' progress in their current window (team challenges).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub teams: Vec<TeamView>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GoalView {
    pub moments: u32,
    pub distinct_teams: u32,
    pub distinct_counterparts: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TeamView {
    pub team: String,
    pub window: String,
    pub moments: u32,
    pub completed: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub organisation: String,
    pub stakeholders: usize,
    pub profiles: Vec<Profile>,
    pub leaderboards: Vec<Page>,
    pub challenges: Vec<ChallengeView>,
}

impl OrgWorld {
    fn sym_name(&self, s: Sym) -> Option<String> {
        (!s.is_none()).then(|| self.world().resource::<Vocab>().0.resolve(s.0).to_string())
    }

    /// A stakeholder's profile, or `None` if the id was never seen. A streak's `length` is its
    /// current run as of the organisation's clock (the latest moment's time): 0 once the
    /// periods since its last one exceed its grace.
    pub fn profile(&mut self, id: &str) -> Option<Profile> {
        self.publish_leaderboards();
        self.profile_published(id)
    }

    /// [`OrgWorld::profile`], once the leaderboards are published.
    fn profile_published(&self, id: &str) -> Option<Profile> {
        let w = self.world();
        let p = self.program();
        let dir = w.resource::<Directory>();
        let no = dir.ids.get(id)?;
        if dir.is_erased(no) {
            return None;
        }
        let e = dir.entries[no as usize].entity;
        let card = w.get::<Scorecard>(e)?;
        let (ident, wallet, tally) = (&card.identity, &card.wallet, &card.tally);
        let currencies =
            p.currencies.iter().enumerate().map(|(i, c)| (c.id.clone(), wallet.balance(i as u8))).collect();
        let level = p.levels.as_ref().and_then(|l| {
            let reached = tally.value(tally_key::LEVEL) as usize;
            let index = reached.checked_sub(1)?;
            Some(LevelView {
                index: index as u32,
                name: l.steps[index].0.clone(),
                next: l.steps.get(index + 1).map(|s| s.0.clone()),
                next_at: l.steps.get(index + 1).map(|s| s.1),
            })
        });
        let metrics = p
            .metrics
            .iter()
            .enumerate()
            .map(|(i, m)| (m.id.clone(), tally.value(tally_key::METRIC | i as u32)))
            .collect();
        let mut badges = Vec::new();
        for (i, b) in p.badges.iter().enumerate() {
            let n = tally.value(tally_key::BADGE | i as u32);
            if n <= 0 {
                continue;
            }
            let tier = match &b.shape {
                BadgeShape::Tiers(t) => t.get(n as usize - 1).map(|t| t.name.clone()),
                _ => None,
            };
            let count = n as u32;
            badges.push(BadgeView { badge: b.id.clone(), name: b.name.clone(), tier, count });
        }
        // As of the organisation's clock (the latest moment's time): a streak whose grace has
        // run out reads as broken, before the person's next moment says so.
        let now = w.resource::<crate::history::History>().latest_at;
        let streaks = p
            .streaks
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let slot = tally.get(tally_key::STREAK | i as u32)?;
                let lapsed = now.is_some_and(|t| s.lapsed(p.calendar.period_index(s.period, t), slot.a));
                Some(StreakView {
                    streak: s.id.clone(),
                    length: if lapsed { 0 } else { (slot.b & 0xFFFF_FFFF) as u32 },
                    best: (slot.b >> 32) as u32,
                    last: p.calendar.period_label(s.period, slot.a),
                })
            })
            .collect();
        let mut challenges = Vec::new();
        for (i, c) in p.challenges.iter().enumerate() {
            if c.team {
                let Some(t) = w.resource::<TeamChallenges>().progress.get(&(i as u16, ident.team.0)) else { continue };
                challenges.push(ProgressView {
                    challenge: c.id.clone(),
                    window: window_label(p, i as u16, t.window),
                    moments: t.moments,
                    goal: c.goal.moments,
                    completed: t.completed,
                });
                continue;
            }
            let Some(slot) = tally.get(tally_key::CHALLENGE | i as u32) else { continue };
            challenges.push(ProgressView {
                challenge: c.id.clone(),
                window: window_label(p, i as u16, slot.a),
                moments: (slot.b & 0xFFFF_FFFF) as u32,
                goal: c.goal.moments,
                completed: slot.b & (1 << 62) != 0,
            });
        }
        let mut ranks = BTreeMap::new();
        {
            let boards = w.resource::<Boards>();
            for entry in &card.standing.entries {
                let (Some((_, v, s)), Some(board)) = (entry.published(), boards.0.get(entry.board as usize)) else {
                    continue;
                };
                let k = crate::leaderboard::key(v, s, ident.ext);
                if let Some(pos) = board.all.index.rank(&k) {
                    let def = &p.leaderboards[entry.board as usize];
                    ranks.insert(def.id.clone(), board.all.rank(def.ties, pos, &k));
                }
            }
        }
        Some(Profile {
            id: id.to_string(),
            kind: self.sym_name(ident.kind).unwrap_or_default(),
            team: self.sym_name(ident.team),
            name: w.get::<Details>(e).and_then(|d| d.name.as_deref().map(str::to_string)),
            currencies,
            level,
            metrics,
            badges,
            streaks,
            challenges,
            ranks,
        })
    }

    /// A page of a leaderboard.
    pub fn leaderboard(&mut self, board: &str, q: &PageQuery) -> Result<Page, ReadError> {
        self.publish_leaderboards();
        self.leaderboard_published(board, q)
    }

    /// [`OrgWorld::leaderboard`], once the leaderboards are published.
    fn leaderboard_published(&self, board: &str, q: &PageQuery) -> Result<Page, ReadError> {
        let w = self.world();
        let p = self.program();
        let ix = p.board_ix(board).ok_or_else(|| ReadError::UnknownBoard(board.to_string()))?;
        let def = &p.leaderboards[ix];
        let b = &w.resource::<Boards>().0[ix];
        if let Some(tb) = &b.team_board {
            if q.team.is_some() {
                return Err(ReadError::TeamOfTeamBoard(def.id.clone()));
            }
            return self.team_page(ix, b, tb, q);
        }
        let team_sym = q.team.as_deref().map(|t| w.resource::<Vocab>().0.get(t).map_or(Sym::NONE, Sym));
        let ranking =
            team_sym.and_then(|t| b.ranking(Some(t))).or(if team_sym.is_some() { None } else { Some(&b.all) });
        let limit = q.limit.clamp(1, 1000);
        let mut page = Page {
            board: def.id.clone(),
            metric: p.metric_name(def.metric).to_string(),
            ties: def.ties.name(),
            window: def.window.filter(|_| b.window != i32::MIN).map(|per| p.calendar.period_label(per, b.window)),
            team: q.team.clone(),
            teams: None,
            total: ranking.map_or(0, |r| r.index.len()),
            rows: Rows::Stakeholders(Vec::new()),
        };
        let Some(ranking) = ranking else { return Ok(page) };
        let start = match &q.around {
            None => q.offset,
            Some(id) => {
                let dir = w.resource::<Directory>();
                let ext = dir.ids.get(id).ok_or_else(|| ReadError::UnknownStakeholder(id.clone()))?;
                let e = dir.entries[ext as usize].entity;
                let entry = w.get::<Scorecard>(e).and_then(|c| c.standing.get(ix as u16).copied());
                let published = entry.and_then(|en| en.published().filter(|pb| pb.0 == b.window));
                let (_, v, s) = published.ok_or_else(|| ReadError::NotRanked(id.clone()))?;
                let pos = ranking
                    .index
                    .rank(&crate::leaderboard::key(v, s, ext))
                    .ok_or_else(|| ReadError::NotRanked(id.clone()))?;
                pos.saturating_sub(limit / 2)
            }
        };
        let dir = w.resource::<Directory>();
        let mut rows = Vec::new();
        for (i, k) in ranking.index.iter_from(start).take(limit).enumerate() {
            let Some(name) = u32::try_from(k.2).ok().and_then(|ext| dir.ids.try_resolve(ext)) else { continue };
            rows.push(Row { rank: ranking.rank(def.ties, start + i, &k), stakeholder: name.to_string(), value: -k.0 });
        }
        page.rows = Rows::Stakeholders(rows);
        Ok(page)
    }

    /// A page of the team board `ix` (whose live state is `b`, `tb`), once published: the teams
    /// from `q.offset`, or around the team `q.around`.
    fn team_page(&self, ix: usize, b: &Board, tb: &TeamBoard, q: &PageQuery) -> Result<Page, ReadError> {
        let p = self.program();
        let def = &p.leaderboards[ix];
        let vocab = &self.world().resource::<Vocab>().0;
        let ranking = &tb.ranking;
        let limit = q.limit.clamp(1, 1000);
        let start = match &q.around {
            None => q.offset,
            Some(team) => {
                let not_ranked = || ReadError::TeamNotRanked(team.clone());
                let published = vocab.get(team).and_then(|t| tb.team(t)).and_then(|t| t.published);
                let pos = published.and_then(|k| ranking.index.rank(&k)).ok_or_else(not_ranked)?;
                pos.saturating_sub(limit / 2)
            }
        };
        let mut rows = Vec::new();
        for (i, k) in ranking.index.iter_from(start).take(limit).enumerate() {
            let Some((team, name)) = u32::try_from(k.2).ok().and_then(|t| Some((t, vocab.try_resolve(t)?))) else {
                continue;
            };
            rows.push(TeamRow {
                rank: ranking.rank(def.ties, start + i, &k),
                team: name.to_string(),
                value: -k.0,
                members: tb.team(team).map_or(0, |t| t.members),
            });
        }
        Ok(Page {
            board: def.id.clone(),
            metric: p.metric_name(def.metric).to_string(),
            ties: def.ties.name(),
            window: def.window.filter(|_| b.window != i32::MIN).map(|per| p.calendar.period_label(per, b.window)),
            team: None,
            teams: def.teams.map(|how| how.name()),
            total: ranking.index.len(),
            rows: Rows::Teams(rows),
        })
    }

    /// Every challenge with its status.
    pub fn challenges(&self) -> Vec<ChallengeView> {
        let w = self.world();
        let p = self.program();
        let now = self.latest_time();
        let teams = w.resource::<TeamChallenges>();
        let vocab = &w.resource::<Vocab>().0;
        p.challenges
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let (window, status) = match c.window {
                    ChallengeWindow::Recurring(win) => {
                        (win.name().to_string(), if c.paused { "paused" } else { "active" })
                    }
                    ChallengeWindow::Fixed { from, until } => (
                        "fixed".to_string(),
                        if c.paused {
                            "paused"
                        } else if now.is_some_and(|t| t >= until) {
                            "ended"
                        } else if now.is_none_or(|t| t < from) {
                            "upcoming"
                        } else {
                            "active"
                        },
                    ),
                };
                let mut team_views: Vec<TeamView> = teams
                    .progress
                    .iter()
                    .filter(|((ci, _), _)| *ci as usize == i)
                    .map(|((_, t), prog)| TeamView {
                        team: vocab.resolve(*t).to_string(),
                        window: window_label(p, i as u16, prog.window),
                        moments: prog.moments,
                        completed: prog.completed,
                    })
                    .collect();
                team_views.sort_by(|a, b| b.moments.cmp(&a.moments).then_with(|| a.team.cmp(&b.team)));
                ChallengeView {
                    id: c.id.clone(),
                    name: c.name.clone(),
                    description: c.description.clone(),
                    scope: if c.team { "team" } else { "individual" },
                    window,
                    status,
                    goal: GoalView {
                        moments: c.goal.moments,
                        distinct_teams: c.goal.distinct_teams,
                        distinct_counterparts: c.goal.distinct_counterparts,
                    },
                    teams: team_views,
                }
            })
            .collect()
    }

    /// The time of the latest moment scored (event time), if any.
    pub fn latest_time(&self) -> Option<i64> {
        self.world().resource::<crate::history::History>().latest_at
    }

    /// Every stakeholder's id, in first-seen order.
    pub fn stakeholder_ids(&self) -> Vec<String> {
        let dir = self.world().resource::<Directory>();
        (0..dir.ids.len() as u32).map(|i| dir.ids.resolve(i).to_string()).collect()
    }

    /// Profiles of every stakeholder (in first-seen order), every leaderboard's top `top`, and
    /// the challenges.
    pub fn summary(&mut self, top: usize) -> Summary {
        self.publish_leaderboards();
        let dir = self.world().resource::<Directory>();
        let profiles = (0..dir.ids.len() as u32).filter_map(|i| self.profile_published(dir.ids.resolve(i))).collect();
        let leaderboards = self
            .program()
            .leaderboards
            .iter()
            .filter_map(|b| self.leaderboard_published(&b.id, &PageQuery { limit: top, ..PageQuery::default() }).ok())
            .collect();
        Summary {
            organisation: self.program().org_id.clone(),
            stakeholders: dir.entries.len(),
            profiles,
            leaderboards,
            challenges: self.challenges(),
        }
    }
}
