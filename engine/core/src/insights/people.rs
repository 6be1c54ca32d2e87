//! People: the stakeholders, listed and filtered by team and kind, and one stakeholder's
//! history — every entry of the ledger that names them, newest first, with what gave it.
//!
//! **Owns** these two read shapes and their cursors. **Must not touch** any state: it reads the
//! directory, the scorecards, the history's ledger ([`crate::history`], kept for every accepted
//! moment, so the history is not limited by the effects feed's size) and the insights' facts
//! (a moment's time and kind).
//!
//! The history holds what changed what a stakeholder has: points given (negative for a
//! penalty), badges earned, levels reached, challenge windows completed. A retracted moment's
//! entries stay, marked `retracted`: its points and badges were taken back then. Progress
//! (streaks, challenge steps) and awards held back are in the effects feed only.

use std::collections::BTreeMap;

use serde::Serialize;

use super::reads::{InsightsError, MAX_LIMIT, Reader, check_name, rfc3339};
use crate::components::{Details, Scorecard, tally_key};
use crate::history::{Earned, History, Origin};
use crate::journal::window_label;
use crate::plugins::Plugins;
use crate::ruleset::program::BadgeShape;

/// Rows a page gives when the read does not say.
pub const DEFAULT_PAGE: usize = 100;

/// A listing of stakeholders: who to list and from where.
#[derive(Clone, Debug, Default)]
pub struct PeopleQuery {
    pub team: Option<String>,
    pub kind: Option<String>,
    /// The stakeholder after whom the page starts (the previous page's `next`).
    pub after: Option<String>,
    pub limit: Option<usize>,
}

/// One stakeholder in a listing.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StakeholderRow {
    pub stakeholder: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub kind: Option<String>,
    pub team: Option<String>,
    /// Balance per currency.
    pub currencies: BTreeMap<String, i64>,
    /// The level reached, if the rule set has levels and one is reached.
    pub level: Option<String>,
}

/// A page of stakeholders, in the order they were first seen.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Stakeholders {
    /// Stakeholders matching the filters, on every page.
    pub total: u64,
    pub stakeholders: Vec<StakeholderRow>,
    /// The `after` of the next page; absent on the last.
    pub next: Option<String>,
}

/// What a history entry gave.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Gain {
    PointsAwarded { currency: String, amount: i64 },
    BadgeEarned { badge: String, tier: Option<String> },
    LevelReached { level: String, index: u32 },
    ChallengeCompleted { challenge: String, window: String },
}

/// One entry of a stakeholder's history.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HistoryRow {
    /// The moment that gave it, its time and kind.
    pub moment: String,
    pub at: Option<String>,
    pub moment_kind: Option<String>,
    /// The moment was retracted later: its points and badges were taken back.
    pub retracted: bool,
    #[serde(flatten)]
    pub gain: Gain,
    /// What gave it, as the effects feed names it: a rule, badge, challenge or plugin id,
    /// `level`, or `history:vN:mode`.
    pub source: String,
    /// `rule`, `badge`, `challenge`, `streak`, `level`, `plugin`, `history` or `other`.
    pub source_type: &'static str,
    /// Its human description in the rule set in force (absent if it has none, or is gone).
    pub description: Option<String>,
}

/// A page of a stakeholder's history, newest first.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StakeholderHistory {
    pub stakeholder: String,
    pub effects: Vec<HistoryRow>,
    /// The `after` of the next page; absent on the last.
    pub next: Option<String>,
}

/// A position in the ledger: a moment's number and an entry of it, `"{moment}.{entry}"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cursor {
    moment: u32,
    entry: u32,
}

impl Cursor {
    /// Digits past what a position holds read as its largest (from the newest entry).
    fn parse(text: &str) -> Option<Cursor> {
        let (m, e) = text.split_once('.')?;
        let number = |t: &str| {
            (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit())).then(|| t.parse::<u32>().unwrap_or(u32::MAX))
        };
        Some(Cursor { moment: number(m)?, entry: number(e)? })
    }

    fn text(self) -> String {
        format!("{}.{}", self.moment, self.entry)
    }
}

fn page_limit(limit: Option<usize>) -> Result<usize, InsightsError> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(n @ 1..=MAX_LIMIT) => Ok(n),
        Some(_) => Err(InsightsError::invalid("limit", format!("must be 1 to {MAX_LIMIT}"))),
    }
}

impl Reader<'_> {
    /// Stakeholders with `team` and `kind` (each if given), in the order first seen, from after
    /// `after`.
    pub fn stakeholders(&self, q: &PeopleQuery) -> Result<Stakeholders, InsightsError> {
        let limit = page_limit(q.limit)?;
        let start = match &q.after {
            None => 0,
            Some(id) => match self.dir.ids.get(id) {
                Some(n) => n as usize + 1,
                None => return Err(InsightsError::invalid("after", format!("unknown stakeholder {id:?}"))),
            },
        };
        // A filter naming what nobody has matches nobody (not everybody).
        let want = |name: &Option<String>| name.as_deref().map(|n| self.sym(n));
        let (team, kind) = (want(&q.team), want(&q.kind));
        check_name("team", q.team.as_deref())?;
        check_name("kind", q.kind.as_deref())?;
        let matches =
            |e: &crate::resources::DirEntry| team.is_none_or(|t| e.team == t) && kind.is_none_or(|k| e.kind == k);
        // The erased are listed nowhere.
        let listed = |n: usize, e: &crate::resources::DirEntry| matches(e) && !self.dir.is_erased(n as u32);
        let entries = &self.dir.entries;
        let total = entries.iter().enumerate().filter(|(n, e)| listed(*n, e)).count() as u64;
        let mut rows = Vec::new();
        let mut next = None;
        for (n, e) in entries.iter().enumerate().skip(start).filter(|(n, e)| listed(*n, e)) {
            if rows.len() == limit {
                next = rows.last().map(|r: &StakeholderRow| r.stakeholder.clone());
                break;
            }
            rows.push(self.row(n as u32, e));
        }
        Ok(Stakeholders { total, stakeholders: rows, next })
    }

    fn row(&self, n: u32, e: &crate::resources::DirEntry) -> StakeholderRow {
        let p = self.program;
        let card = self.world.get::<Scorecard>(e.entity);
        let currencies = p
            .currencies
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id.clone(), card.map_or(0, |card| card.wallet.balance(i as u8))))
            .collect();
        let level = p.levels.as_ref().zip(card).and_then(|(l, card)| {
            let reached = card.tally.value(tally_key::LEVEL) as usize;
            l.steps.get(reached.checked_sub(1)?).map(|s| s.0.clone())
        });
        StakeholderRow {
            stakeholder: self.dir.ids.resolve(n).to_string(),
            name: self.world.get::<Details>(e.entity).and_then(|d| d.name.as_deref().map(str::to_string)),
            kind: self.name(e.kind),
            team: self.name(e.team),
            currencies,
            level,
        }
    }

    /// Stakeholder `id`'s history, newest first (in the order moments were accepted), from
    /// after `after` (the previous page's `next`).
    pub fn history_of(
        &self,
        id: &str,
        after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<StakeholderHistory, InsightsError> {
        let limit = page_limit(limit)?;
        let Some(who) = self.dir.ids.get(id).filter(|&no| !self.dir.is_erased(no)) else {
            return Err(InsightsError::UnknownStakeholder(id.to_string()));
        };
        let history = self.world.resource::<History>();
        let from = match after {
            None => None,
            Some(text) => Some(Cursor::parse(text).ok_or_else(|| {
                InsightsError::invalid("after", format!("{text:?} is not a cursor (a `next` of a previous page)"))
            })?),
        };
        let mut rows = Vec::new();
        let mut next = None;
        let last = u32::try_from(history.len()).unwrap_or(u32::MAX);
        let top = from.map_or(last, |c| c.moment.saturating_add(1).min(last));
        'moments: for m in (0..top).rev() {
            let earned = history.earned(m);
            // Within the cursor's moment, only the entries before it.
            let end = match from {
                Some(c) if c.moment == m => (c.entry as usize).min(earned.len()),
                _ => earned.len(),
            };
            for (i, entry) in earned[..end].iter().enumerate().rev() {
                if entry.stakeholder != who {
                    continue;
                }
                if rows.len() == limit {
                    next = Some(Cursor { moment: m, entry: i as u32 + 1 }.text());
                    break 'moments;
                }
                rows.push(self.history_row(history, m, entry));
            }
        }
        Ok(StakeholderHistory { stakeholder: id.to_string(), effects: rows, next })
    }

    fn history_row(&self, history: &History, m: u32, entry: &crate::history::LedgerEntry) -> HistoryRow {
        let p = self.program;
        let origin = history.origins.get(entry.origin);
        let gain = match entry.earned {
            Earned::Points { currency, amount } => Gain::PointsAwarded {
                currency: p.currencies.get(currency as usize).map_or_else(String::new, |c| c.id.clone()),
                amount,
            },
            Earned::Badge { badge, tier } => {
                let b = p.badges.get(badge as usize);
                let tier = match (b.map(|b| &b.shape), tier) {
                    (Some(BadgeShape::Tiers(tiers)), Some(t)) => tiers.get(t as usize).map(|t| t.name.clone()),
                    _ => None,
                };
                Gain::BadgeEarned { badge: b.map_or_else(String::new, |b| b.id.clone()), tier }
            }
            Earned::Level { index } => Gain::LevelReached {
                level: p
                    .levels
                    .as_ref()
                    .and_then(|l| l.steps.get(index as usize))
                    .map_or_else(String::new, |s| s.0.clone()),
                index,
            },
            Earned::Completed { window } => {
                let challenge = match origin {
                    Origin::Challenge(id) => id.to_string(),
                    _ => String::new(),
                };
                let c = p.challenges.iter().position(|c| c.id == challenge);
                let window = c.map_or_else(|| window.to_string(), |c| window_label(p, c as u16, window));
                Gain::ChallengeCompleted { challenge, window }
            }
        };
        let fact = self.insights.fact(m);
        let (source, source_type, description) = self.describe(origin);
        HistoryRow {
            moment: history.ids.resolve(m).to_string(),
            at: fact.map(|f| rfc3339(f.at)),
            moment_kind: fact.and_then(|f| self.name(f.kind)),
            retracted: history.retracted(m),
            gain,
            source,
            source_type,
            description,
        }
    }

    /// An origin's name (as the feed gives it), type and description in the rule set in force.
    fn describe(&self, origin: &Origin) -> (String, &'static str, Option<String>) {
        let p = self.program;
        match origin {
            Origin::Rule(id) => {
                let description = p.rules.iter().find(|r| *r.id == **id).and_then(|r| r.description.clone());
                (id.to_string(), "rule", description)
            }
            Origin::Badge(id) => {
                (id.to_string(), "badge", p.badges.iter().find(|b| *b.id == **id).map(|b| b.name.clone()))
            }
            Origin::Challenge(id) => {
                let c = p.challenges.iter().find(|c| *c.id == **id);
                (id.to_string(), "challenge", c.map(|c| c.description.clone().unwrap_or_else(|| c.name.clone())))
            }
            Origin::Streak(id) => {
                let description = p.streaks.iter().find(|s| *s.id == **id).and_then(|s| s.description.clone());
                (id.to_string(), "streak", description)
            }
            Origin::Level => ("level".to_string(), "level", None),
            Origin::Plugin(slot) => {
                let name =
                    self.world.get_resource::<Plugins>().map_or_else(String::new, |ps| ps.name(*slot).to_string());
                (name, "plugin", None)
            }
            Origin::History { version, mode } => (
                format!("history:v{version}:{mode}"),
                "history",
                Some(format!("rule-set version {version} applied to history ({mode})")),
            ),
            Origin::Other => (String::new(), "other", None),
        }
    }
}
