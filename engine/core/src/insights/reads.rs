//! The insights a community manager reads: activity per week, bridges between teams, champions,
//! who went quiet, challenges over their windows, goals against targets.
//!
//! **Owns** the read shapes (plain serde types, the HTTP bodies) and how each is computed
//! from the week views ([`super::view`]), the totals and the challenge logs. **Must not
//! touch** what scoring recorded: reads only bring derived views up to date.
//!
//! "Now" is the organisation's clock as the history knows it: the week of the latest accepted
//! moment (never the wall clock, so a read is a function of the log), unless a read names a
//! week.

use std::collections::BTreeSet;

use rustc_hash::{FxHashMap, FxHashSet};
use serde::Serialize;

use super::view::{Dim, met};
use super::{Fact, Insights, NO_ONE};
use crate::calendar::Period;
use crate::ids::Sym;
use crate::intern::Interner;
use crate::resources::Directory;
use crate::ruleset::program::{Measure, Program};

/// Weeks a range may span (ten years).
pub const MAX_WEEKS: i32 = 520;
/// Weeks of activity an unbounded read shows, ending at the current week.
pub const DEFAULT_WEEKS: i32 = 12;
/// Weeks before the last two that gone-quiet looks at.
pub const QUIET_LOOKBACK: i32 = 8;
/// The symbol of a filter's name that no one has: it matches no one.
const NOBODY: Sym = Sym(u32::MAX - 1);
/// Most rows a list of people gives.
pub const MAX_LIMIT: usize = 1000;

/// Why an insights read cannot be answered; each names the parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InsightsError {
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    #[error("unknown challenge {0:?}")]
    UnknownChallenge(String),
    #[error("unknown stakeholder {0:?}")]
    UnknownStakeholder(String),
}

impl InsightsError {
    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> InsightsError {
        InsightsError::Invalid { field, message: message.into() }
    }
}

/// What an activity read is grouped by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum By {
    Team,
    /// Stakeholder kind.
    Kind,
    Channel,
    MomentKind,
}

impl By {
    fn dim(self) -> Dim {
        match self {
            By::Team => Dim::Team,
            By::Kind => Dim::Kind,
            By::Channel => Dim::Channel,
            By::MomentKind => Dim::MomentKind,
        }
    }
}

/// One group's week.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GroupRow {
    pub name: String,
    /// Its people with a moment this week (for a team or kind: its members; for a channel or
    /// moment kind: everyone who took part in one).
    pub active: u64,
    pub moments: u64,
}

/// One week of activity.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ActivityWeek {
    /// The week's Monday, in the organisation's time zone.
    pub week: String,
    /// Stakeholders with at least one scored moment as actor or counterpart.
    pub active: u64,
    pub moments: u64,
    /// Stakeholders whose first scored moment is in this week.
    pub new_stakeholders: u64,
    /// Points issued per currency, less points retracted.
    pub points: std::collections::BTreeMap<String, i64>,
    pub badges: i64,
    pub completions: i64,
    /// With `by`: each group's week, largest first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<GroupRow>>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Activity {
    pub from: String,
    pub to: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<By>,
    pub weeks: Vec<ActivityWeek>,
}

/// Moments from one team's members to another's in a week.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BridgeRow {
    pub team: String,
    pub counterpart_team: String,
    pub moments: u64,
    /// Distinct actors on the team's side, and counterparts on the other.
    pub actors: u64,
    pub counterparts: u64,
    /// The two teams never met (either way) in an earlier week.
    pub new: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Bridges {
    pub week: String,
    /// Every (team, counterpart team) with moments, most moments first.
    pub matrix: Vec<BridgeRow>,
    /// Pairs of distinct teams that met for the first time this week, each pair in name order.
    pub new_pairs: Vec<[String; 2]>,
}

/// A stakeholder in a list of champions or of people who went quiet.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Champion {
    pub stakeholder: String,
    pub kind: Option<String>,
    pub team: Option<String>,
    /// The engagement score over the window (see `rules/README.md`, `[insights]`).
    pub score: f64,
    /// The score over the window before.
    pub previous_score: f64,
    pub moments: u64,
    pub counterparts: u64,
    pub teams: u64,
    pub channels: u64,
    /// Moments per week over the last 8 weeks, oldest first.
    pub trend: Vec<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Champions {
    /// The window: its first and last week.
    pub from: String,
    pub to: String,
    /// Highest score first.
    pub top: Vec<Champion>,
    /// Largest rise of the score against the window before.
    pub rising: Vec<Champion>,
    /// Largest fall.
    pub falling: Vec<Champion>,
    /// Most distinct teams met (their own team aside).
    pub connectors: Vec<Champion>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct QuietRow {
    pub stakeholder: String,
    pub kind: Option<String>,
    pub team: Option<String>,
    /// Weeks with a moment, of the 8 before the last 2.
    pub weeks_active: u32,
    /// Their last scored moment (RFC 3339, UTC).
    pub last_moment: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Quiet {
    /// The current week: quiet means no moment in it or in the week before.
    pub week: String,
    pub min_weeks: u32,
    /// Most recently active first.
    pub stakeholders: Vec<QuietRow>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WindowRow {
    /// The window's start (a date, a month, or an instant for hourly windows); `fixed` for a
    /// fixed window.
    pub window: String,
    pub goal: u32,
    /// Stakeholders with progress in the window.
    pub participants: u64,
    /// Participants who have not completed.
    pub progressing: u64,
    /// Participants at half the goal or more (completed included).
    pub halfway: u64,
    pub completed: u64,
    /// Completed per participant, in percent (0 without participants).
    pub completion_rate: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChallengeInsight {
    pub challenge: String,
    pub name: String,
    pub team: bool,
    /// Newest first.
    pub windows: Vec<WindowRow>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GoalWeek {
    pub week: String,
    pub actual: f64,
    pub met: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GoalRow {
    pub goal: String,
    pub name: String,
    pub measure: &'static str,
    pub target: f64,
    pub weeks: Vec<GoalWeek>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Goals {
    pub from: String,
    pub to: String,
    pub goals: Vec<GoalRow>,
}

/// Filters of a champions or gone-quiet read.
#[derive(Clone, Debug, Default)]
pub struct PeopleFilter {
    pub team: Option<String>,
    pub kind: Option<String>,
    pub limit: Option<usize>,
    /// A date in the week taken as the current one (`YYYY-MM-DD`).
    pub week: Option<String>,
}

/// Insights read against one organisation's world: [`crate::OrgWorld::insights`].
#[derive(Debug)]
pub struct Reader<'a> {
    pub(crate) insights: &'a mut Insights,
    pub(crate) program: &'a Program,
    pub(crate) vocab: &'a Interner,
    pub(crate) dir: &'a Directory,
    pub(crate) latest_at: Option<i64>,
    /// The rest of the world, read only: scorecards, the history's ledger, plugin names.
    pub(crate) world: &'a bevy_ecs::world::World,
}

impl Reader<'_> {
    fn label(&self, week: i32) -> String {
        self.program.calendar.period_label(Period::Week, week)
    }

    pub(crate) fn name(&self, s: Sym) -> Option<String> {
        (!s.is_none()).then(|| self.vocab.resolve(s.0).to_string())
    }

    /// The symbol of a name a filter gives: one no one has is [`NOBODY`], which no one passes
    /// (not [`Sym::NONE`], which those without a team or kind have).
    pub(crate) fn sym(&self, name: &str) -> Sym {
        self.vocab.get(name).map_or(NOBODY, Sym)
    }

    /// The week of a date (`YYYY-MM-DD`) in the organisation's time zone.
    pub fn week_of(&self, field: &'static str, date: &str) -> Result<i32, InsightsError> {
        self.program
            .calendar
            .period_of_date(Period::Week, date)
            .ok_or_else(|| InsightsError::invalid(field, format!("{date:?} is not a date (YYYY-MM-DD)")))
    }

    /// The current week: that of the latest moment, or of `date`.
    fn now(&self, field: &'static str, date: Option<&str>) -> Result<Option<i32>, InsightsError> {
        match date {
            Some(d) => self.week_of(field, d).map(Some),
            None => Ok(self.latest_at.map(|at| self.program.calendar.period_index(Period::Week, at))),
        }
    }

    /// `from`..=`to` as weeks: both given, or the last [`DEFAULT_WEEKS`] up to `to` (the current
    /// week by default).
    fn range(&mut self, from: Option<&str>, to: Option<&str>) -> Result<Option<(i32, i32)>, InsightsError> {
        let from = from.map(|f| self.week_of("from", f)).transpose()?;
        let Some(to) = self.now("to", to)? else { return Ok(None) };
        let from = from.unwrap_or(to - (DEFAULT_WEEKS - 1));
        if from > to {
            return Err(InsightsError::invalid("from", "must not be after `to`"));
        }
        if to - from >= MAX_WEEKS {
            return Err(InsightsError::invalid("from", format!("a range is at most {MAX_WEEKS} weeks")));
        }
        Ok(Some((from, to)))
    }

    /// Per week from `from` to `to` (dates, inclusive), the organisation's activity, grouped
    /// `by` if asked.
    pub fn activity(
        &mut self,
        from: Option<&str>,
        to: Option<&str>,
        by: Option<By>,
    ) -> Result<Activity, InsightsError> {
        let Some((from, to)) = self.range(from, to)? else {
            return Ok(Activity { from: String::new(), to: String::new(), by, weeks: Vec::new() });
        };
        let new = self.new_stakeholders(to);
        self.insights.refresh(from..=to);
        let mut weeks = Vec::with_capacity((to - from + 1) as usize);
        for w in from..=to {
            let view = self.insights.cached(w);
            let totals =
                self.insights.totals().binary_search_by_key(&w, |t| t.0).ok().map(|i| &self.insights.totals()[i].1);
            let points = self
                .insights
                .currencies()
                .iter()
                .enumerate()
                .map(|(c, id)| (id.clone(), totals.and_then(|t| t.points.get(c)).copied().unwrap_or(0)))
                .collect();
            let groups = by.map(|by| {
                let mut rows: Vec<GroupRow> = view
                    .into_iter()
                    .flat_map(|v| v.groups.iter())
                    .filter(|((d, _), _)| *d == by.dim())
                    .map(|((_, s), g)| GroupRow {
                        name: self.name(*s).unwrap_or_default(),
                        active: g.people.len() as u64,
                        moments: g.moments,
                    })
                    .collect();
                rows.sort_by(|a, b| b.moments.cmp(&a.moments).then_with(|| a.name.cmp(&b.name)));
                rows
            });
            weeks.push(ActivityWeek {
                week: self.label(w),
                active: view.map_or(0, |v| v.active() as u64),
                moments: view.map_or(0, |v| v.moments),
                new_stakeholders: new.get(&w).copied().unwrap_or(0),
                points,
                badges: totals.map_or(0, |t| t.badges),
                completions: totals.map_or(0, |t| t.completions),
                groups,
            });
        }
        Ok(Activity { from: self.label(from), to: self.label(to), by, weeks })
    }

    /// Per week up to `to`, how many stakeholders had their first scored moment in it.
    fn new_stakeholders(&mut self, to: i32) -> FxHashMap<i32, u64> {
        let Some((first, _)) = self.insights.week_span() else { return FxHashMap::default() };
        self.insights.refresh(first..=to);
        let mut seen = FxHashSet::default();
        let mut new = FxHashMap::default();
        for w in self.insights.weeks().into_iter().filter(|w| *w <= to) {
            if let Some(v) = self.insights.cached(w) {
                let n = v.people.keys().filter(|p| seen.insert(**p)).count();
                new.insert(w, n as u64);
            }
        }
        new
    }

    /// The bridges between teams in the week of `week` (a date; the current week by default).
    pub fn bridges(&mut self, week: Option<&str>) -> Result<Bridges, InsightsError> {
        let Some(w) = self.now("week", week)? else {
            return Ok(Bridges { week: String::new(), matrix: Vec::new(), new_pairs: Vec::new() });
        };
        let pair = |a: Sym, b: Sym| if a.0 <= b.0 { (a, b) } else { (b, a) };
        let mut before = FxHashSet::default();
        if let Some((first, _)) = self.insights.week_span() {
            self.insights.refresh(first..=w);
            for earlier in first..w {
                if let Some(v) = self.insights.cached(earlier) {
                    before.extend(v.bridges.keys().map(|&(a, b)| pair(a, b)));
                }
            }
        }
        let mut matrix = Vec::new();
        let mut new_pairs = BTreeSet::new();
        if let Some(v) = self.insights.cached(w) {
            for (&(a, b), bridge) in &v.bridges {
                let new = a != b && !before.contains(&pair(a, b));
                let (ta, tb) = (self.name(a).unwrap_or_default(), self.name(b).unwrap_or_default());
                if new {
                    new_pairs.insert(if ta <= tb { [ta.clone(), tb.clone()] } else { [tb.clone(), ta.clone()] });
                }
                matrix.push(BridgeRow {
                    team: ta,
                    counterpart_team: tb,
                    moments: bridge.moments,
                    actors: bridge.actors.len() as u64,
                    counterparts: bridge.counterparts.len() as u64,
                    new,
                });
            }
        }
        matrix.sort_by(|a, b| {
            b.moments.cmp(&a.moments).then_with(|| (&a.team, &a.counterpart_team).cmp(&(&b.team, &b.counterpart_team)))
        });
        Ok(Bridges { week: self.label(w), matrix, new_pairs: new_pairs.into_iter().collect() })
    }

    /// Whether stakeholder `who` passes a filter on their current kind and team.
    fn passes(&self, who: u32, kind: Sym, team: Sym) -> bool {
        let Some(e) = self.dir.entries.get(who as usize) else { return false };
        (kind.is_none() || e.kind == kind) && (team.is_none() || e.team == team)
    }

    fn filter_syms(&self, f: &PeopleFilter) -> Result<(Sym, Sym, usize), InsightsError> {
        check_name("team", f.team.as_deref())?;
        check_name("kind", f.kind.as_deref())?;
        let limit = f.limit.unwrap_or(10);
        if limit == 0 || limit > MAX_LIMIT {
            return Err(InsightsError::invalid("limit", format!("must be 1 to {MAX_LIMIT}")));
        }
        // A name no one has is a filter no one passes.
        let named = |n: &Option<String>| n.as_deref().map(|n| self.sym(n));
        Ok((named(&f.kind).unwrap_or(Sym::NONE), named(&f.team).unwrap_or(Sym::NONE), limit))
    }

    /// Champions over the trailing window ending with the current week.
    pub fn champions(&mut self, f: &PeopleFilter) -> Result<Champions, InsightsError> {
        let (kind, team, limit) = self.filter_syms(f)?;
        let Some(now) = self.now("week", f.week.as_deref())? else {
            return Ok(Champions {
                from: String::new(),
                to: String::new(),
                top: Vec::new(),
                rising: Vec::new(),
                falling: Vec::new(),
                connectors: Vec::new(),
            });
        };
        let span = self.program.insights.champion_weeks as i32;
        let trend_weeks = 8.max(span);
        let first = now - (2 * span - 1).max(trend_weeks - 1);
        self.insights.refresh(first..=now);
        let window = (now - span + 1)..=now;
        let previous = (now - 2 * span + 1)..=(now - span);
        // Scores by directory number, through a dense index: no hashing, no rehash of a
        // hundred thousand entries.
        let mut slot = vec![u32::MAX; self.dir.entries.len()];
        let mut people: Vec<(u32, Score)> = Vec::with_capacity(self.dir.entries.len());
        for w in first..=now {
            let Some(v) = self.insights.cached(w) else { continue };
            for (&who, pw) in &v.people {
                if !self.passes(who, kind, team) {
                    continue;
                }
                let Some(at) = slot.get_mut(who as usize) else { continue };
                if *at == u32::MAX {
                    *at = people.len() as u32;
                    people.push((who, Score::default()));
                }
                let s = &mut people[*at as usize].1;
                if window.contains(&w) {
                    s.now.add(pw);
                } else if previous.contains(&w) {
                    s.before.add(pw);
                }
                if now - w < 8 {
                    s.trend[(7 - (now - w)) as usize] += pw.moments;
                }
            }
        }
        let weights = self.program.insights.weights;
        let own_team = |who: u32| self.dir.entries.get(who as usize).map_or(Sym::NONE, |e| e.team);
        let mut scratch = Vec::new();
        let candidates: Vec<Candidate> = people
            .iter()
            .enumerate()
            .map(|(i, (who, s))| {
                let own = own_team(*who);
                let now = s.now.counts(own, &mut scratch);
                let before = s.before.counts(own, &mut scratch);
                Candidate { at: i as u32, who: *who, score: now.score(&weights), previous: before.score(&weights), now }
            })
            .collect();
        // Each list: the best `limit` by its order, equals in stakeholder id order, without
        // sorting (or naming) everyone.
        let id = |c: &Candidate| self.dir.ids.resolve(c.who);
        let row = |c: &Candidate| {
            let s = &people[c.at as usize].1;
            Champion {
                stakeholder: id(c).to_string(),
                kind: self.dir.entries.get(c.who as usize).and_then(|e| self.name(e.kind)),
                team: self.name(own_team(c.who)),
                score: c.score,
                previous_score: c.previous,
                moments: c.now.moments,
                counterparts: c.now.counterparts,
                teams: c.now.teams,
                channels: c.now.channels,
                trend: s.trend.iter().map(|&m| u64::from(m)).collect(),
            }
        };
        let pick = |keep: fn(&Candidate) -> bool, order: fn(&Candidate, &Candidate) -> std::cmp::Ordering| {
            let chosen: Vec<&Candidate> = candidates.iter().filter(|c| keep(c)).collect();
            best(chosen, limit, order, &id).into_iter().map(&row).collect::<Vec<_>>()
        };
        let top = pick(|c| c.score > 0.0, |a, b| b.score.total_cmp(&a.score));
        let rising = pick(|c| c.delta() > 0.0, |a, b| b.delta().total_cmp(&a.delta()));
        let falling = pick(|c| c.delta() < 0.0, |a, b| a.delta().total_cmp(&b.delta()));
        let connectors = pick(
            |c| c.now.other_teams > 0,
            |a, b| b.now.other_teams.cmp(&a.now.other_teams).then_with(|| b.score.total_cmp(&a.score)),
        );
        Ok(Champions { from: self.label(*window.start()), to: self.label(now), top, rising, falling, connectors })
    }

    /// Stakeholders active in at least `quiet_min_weeks` of the 8 weeks before the last two,
    /// with no moment in the last two (the current week and the one before).
    pub fn quiet(&mut self, f: &PeopleFilter) -> Result<Quiet, InsightsError> {
        let (kind, team, limit) = self.filter_syms(f)?;
        let min_weeks = self.program.insights.quiet_min_weeks;
        let Some(now) = self.now("week", f.week.as_deref())? else {
            return Ok(Quiet { week: String::new(), min_weeks, stakeholders: Vec::new() });
        };
        let first = now - 1 - QUIET_LOOKBACK;
        self.insights.refresh(first..=now);
        let mut recent = FxHashSet::default();
        for w in now - 1..=now {
            if let Some(v) = self.insights.cached(w) {
                recent.extend(v.people.keys().copied());
            }
        }
        let mut before: FxHashMap<u32, (u32, i64)> = FxHashMap::default();
        for w in first..now - 1 {
            let Some(v) = self.insights.cached(w) else { continue };
            for (&who, pw) in &v.people {
                if recent.contains(&who) || !self.passes(who, kind, team) {
                    continue;
                }
                let e = before.entry(who).or_insert((0, i64::MIN));
                e.0 += 1;
                e.1 = e.1.max(pw.last_at);
            }
        }
        let mut rows: Vec<(i64, QuietRow)> = before
            .into_iter()
            .filter(|(_, (weeks, _))| *weeks >= min_weeks)
            .map(|(who, (weeks, last))| {
                let e = self.dir.entries.get(who as usize);
                (
                    last,
                    QuietRow {
                        stakeholder: self.dir.ids.resolve(who).to_string(),
                        kind: e.and_then(|e| self.name(e.kind)),
                        team: e.and_then(|e| self.name(e.team)),
                        weeks_active: weeks,
                        last_moment: rfc3339(last),
                    },
                )
            })
            .collect();
        rows.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.stakeholder.cmp(&b.1.stakeholder)));
        Ok(Quiet {
            week: self.label(now),
            min_weeks,
            stakeholders: rows.into_iter().take(limit).map(|r| r.1).collect(),
        })
    }

    /// Challenge `id` over its windows, newest first (at most `limit`, 12 by default).
    pub fn challenge(&mut self, id: &str, limit: Option<usize>) -> Result<ChallengeInsight, InsightsError> {
        let limit = limit.unwrap_or(12);
        if limit == 0 || limit > MAX_LIMIT {
            return Err(InsightsError::invalid("limit", format!("must be 1 to {MAX_LIMIT}")));
        }
        let def = self.program.challenges.iter().find(|c| c.id == id);
        let log = self.insights.challenge_log(id);
        if def.is_none() && log.is_none() {
            return Err(InsightsError::UnknownChallenge(id.to_string()));
        }
        let windows = log
            .map(|log| {
                log.windows
                    .iter()
                    .rev()
                    .take(limit)
                    .map(|(&index, w)| WindowRow {
                        window: if w.label.is_empty() { index.to_string() } else { w.label.clone() },
                        goal: w.goal,
                        participants: w.participants,
                        progressing: w.participants.saturating_sub(w.completed),
                        halfway: w.halfway,
                        completed: w.completed,
                        completion_rate: percent(w.completed, w.participants),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(ChallengeInsight {
            challenge: id.to_string(),
            name: def.map_or_else(|| id.to_string(), |d| d.name.clone()),
            team: def.is_some_and(|d| d.team),
            windows,
        })
    }

    /// Each goal's actual per week from `from` to `to` against its target.
    pub fn goals(&mut self, from: Option<&str>, to: Option<&str>) -> Result<Goals, InsightsError> {
        let Some((from, to)) = self.range(from, to)? else {
            return Ok(Goals { from: String::new(), to: String::new(), goals: Vec::new() });
        };
        let goals = self.program.goals.clone();
        let new = if goals.iter().any(|g| g.measure == Measure::NewStakeholders) {
            self.new_stakeholders(to)
        } else {
            FxHashMap::default()
        };
        self.insights.refresh(from..=to);
        let mut rows = Vec::with_capacity(goals.len());
        for g in &goals {
            let mut weeks = Vec::with_capacity((to - from + 1) as usize);
            for w in from..=to {
                let actual = self.measure(&g.measure, w, &new);
                weeks.push(GoalWeek { week: self.label(w), actual, met: actual >= g.target });
            }
            rows.push(GoalRow {
                goal: g.id.clone(),
                name: g.name.clone(),
                measure: g.measure.name(),
                target: g.target,
                weeks,
            });
        }
        Ok(Goals { from: self.label(from), to: self.label(to), goals: rows })
    }

    fn measure(&mut self, m: &Measure, w: i32, new: &FxHashMap<i32, u64>) -> f64 {
        let totals =
            |ins: &Insights| ins.totals().binary_search_by_key(&w, |t| t.0).ok().map(|i| ins.totals()[i].1.clone());
        let opt = |n: &Option<String>| n.as_deref().map(|n| self.sym(n));
        let is = |want: Option<Sym>, got: Sym| want.is_none_or(|s| s == got);
        match m {
            Measure::ActiveStakeholders { stakeholder_kind, team } => {
                let (kind, team) = (opt(stakeholder_kind), opt(team));
                let mut people = FxHashSet::default();
                for f in self.insights.week_facts(w) {
                    if is(kind, f.actor_kind) && is(team, f.actor_team) {
                        people.insert(f.actor);
                    }
                    if f.counterpart != NO_ONE && is(kind, f.counterpart_kind) && is(team, f.counterpart_team) {
                        people.insert(f.counterpart);
                    }
                }
                people.len() as f64
            }
            Measure::Moments { kind, stakeholder_kind, team, channel } => {
                let (kind, sk, team, channel) = (opt(kind), opt(stakeholder_kind), opt(team), opt(channel));
                let side = |k: Sym, t: Sym| is(sk, k) && is(team, t);
                let takes_part = |f: &Fact| {
                    side(f.actor_kind, f.actor_team)
                        || (f.counterpart != NO_ONE && side(f.counterpart_kind, f.counterpart_team))
                };
                self.insights
                    .week_facts(w)
                    .filter(|f| is(kind, f.kind) && is(channel, f.channel) && takes_part(f))
                    .count() as f64
            }
            Measure::CrossTeamMoments { kind } => {
                let kind = opt(kind);
                self.insights
                    .week_facts(w)
                    .filter(|f| {
                        is(kind, f.kind)
                            && f.counterpart != NO_ONE
                            && !f.actor_team.is_none()
                            && !f.counterpart_team.is_none()
                            && f.actor_team != f.counterpart_team
                    })
                    .count() as f64
            }
            Measure::NewStakeholders => new.get(&w).copied().unwrap_or(0) as f64,
            Measure::Points { currency } => {
                let c = self.insights.currencies().iter().position(|x| x == currency);
                totals(self.insights).and_then(|t| c.and_then(|c| t.points.get(c).copied())).unwrap_or(0) as f64
            }
            Measure::Badges => totals(self.insights).map_or(0, |t| t.badges) as f64,
            Measure::Completions => totals(self.insights).map_or(0, |t| t.completions) as f64,
            Measure::CompletionRate { challenge } => {
                let Some(def) = self.program.challenges.iter().find(|c| &c.id == challenge) else { return 0.0 };
                let Some(log) = self.insights.challenge_log(challenge) else { return 0.0 };
                let (mut participants, mut completed) = (0u64, 0u64);
                for (&index, window) in &log.windows {
                    if super::window_starts_in(self.program, &def.window, index, w) {
                        participants += window.participants;
                        completed += window.completed;
                    }
                }
                percent(completed, participants)
            }
        }
    }
}

/// A stakeholder's weeks in a window: their moments, and what they met each week (borrowed
/// from the week views, not copied).
#[derive(Default)]
struct Tally<'v> {
    moments: u32,
    len: u32,
    /// The first weeks in place (a window is 4 weeks unless the rule set says otherwise), as
    /// thin pointers: scores are gathered in random order, so a smaller one is fewer misses.
    few: [Option<&'v super::view::PersonWeek>; 4],
    more: Vec<&'v super::view::PersonWeek>,
}

/// What a [`Tally`] counts, each thing met once.
#[derive(Clone, Copy, Default)]
struct Counts {
    moments: u64,
    counterparts: u64,
    teams: u64,
    channels: u64,
    /// Teams met other than the stakeholder's own.
    other_teams: u64,
}

impl Counts {
    fn score(&self, w: &crate::ruleset::program::Weights) -> f64 {
        let s = w.moments * self.moments as f64
            + w.counterparts * self.counterparts as f64
            + w.teams * self.teams as f64
            + w.channels * self.channels as f64;
        (s * 100.0).round() / 100.0
    }
}

impl<'v> Tally<'v> {
    fn add(&mut self, pw: &'v super::view::PersonWeek) {
        self.moments = self.moments.saturating_add(pw.moments);
        match self.few.get_mut(self.len as usize) {
            Some(slot) => *slot = Some(pw),
            None => self.more.push(pw),
        }
        self.len += 1;
    }

    /// The counts, in one pass over what was met: a single week's (sorted) keys as they are,
    /// several weeks' merged in `scratch`.
    fn counts(&self, own: Sym, scratch: &mut Vec<u64>) -> Counts {
        let weeks = self.few.iter().flatten().chain(&self.more);
        let met: &[u64] = match (self.len, self.few[0]) {
            (1, Some(only)) => &only.met,
            _ => {
                scratch.clear();
                for week in weeks {
                    scratch.extend_from_slice(&week.met);
                }
                scratch.sort_unstable();
                scratch.dedup();
                scratch
            }
        };
        let mut c = Counts { moments: u64::from(self.moments), ..Counts::default() };
        for &k in met {
            match k & met::TAG {
                met::COUNTERPART => c.counterparts += 1,
                met::TEAM => {
                    c.teams += 1;
                    c.other_teams += u64::from(k as u32 != own.0);
                }
                met::CHANNEL => c.channels += 1,
                _ => {}
            }
        }
        c
    }
}

/// A champion's scores and the distinct teams met other than their own (what makes a
/// connector); `at` indexes their [`Score`].
struct Candidate {
    at: u32,
    who: u32,
    score: f64,
    previous: f64,
    now: Counts,
}

impl Candidate {
    fn delta(&self) -> f64 {
        self.score - self.previous
    }
}

#[derive(Default)]
struct Score<'v> {
    now: Tally<'v>,
    before: Tally<'v>,
    trend: [u32; 8],
}

/// The first `limit` of `items` by `order`, equals by `id`: a selection, then a sort of the
/// few that can make it (those not behind the `limit`-th).
fn best<'a, C>(
    mut items: Vec<&'a C>,
    limit: usize,
    order: fn(&C, &C) -> std::cmp::Ordering,
    id: &dyn Fn(&C) -> &'a str,
) -> Vec<&'a C> {
    if items.len() > limit {
        items.select_nth_unstable_by(limit - 1, |a, b| order(a, b));
        let edge = items[limit - 1];
        items.retain(|c| order(c, edge) != std::cmp::Ordering::Greater);
    }
    items.sort_by(|a, b| order(a, b).then_with(|| id(a).cmp(id(b))));
    items.truncate(limit);
    items
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { (part as f64 * 1000.0 / whole as f64).round() / 10.0 }
}

/// A team or kind a filter names: 1 to 64 characters, as profiles have them.
pub(crate) fn check_name(field: &'static str, name: Option<&str>) -> Result<(), InsightsError> {
    match name {
        Some(n) if !crate::resolve::name_length_ok(n) => {
            Err(InsightsError::invalid(field, "must be 1 to 64 characters"))
        }
        _ => Ok(()),
    }
}

pub(crate) fn rfc3339(at: i64) -> String {
    crate::calendar::timestamp(at).to_string()
}
