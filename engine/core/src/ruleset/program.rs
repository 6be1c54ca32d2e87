//! The compiled rule set ("program"): every name resolved to an index or an interned symbol,
//! every time parsed, ready for the hot loop. Built only by [`super::compile`]; read by the
//! scoring passes, never mutated while a batch runs.

use plaudit_sdk::Value;

use crate::calendar::{Calendar, Period};
use crate::ids::Sym;

/// A window for caps, the guard and recurring challenges.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Window {
    Hour = 0,
    Day = 1,
    Week = 2,
    Month = 3,
}

impl Window {
    pub const ALL: [Window; 4] = [Window::Hour, Window::Day, Window::Week, Window::Month];

    pub fn name(self) -> &'static str {
        match self {
            Window::Hour => "hour",
            Window::Day => "day",
            Window::Week => "week",
            Window::Month => "month",
        }
    }

    /// The calendar period, for windows counted in the organisation's time zone.
    pub fn period(self) -> Option<Period> {
        match self {
            Window::Hour => None,
            Window::Day => Some(Period::Day),
            Window::Week => Some(Period::Week),
            Window::Month => Some(Period::Month),
        }
    }
}

/// The window a calendar period is counted in.
impl From<Period> for Window {
    fn from(p: Period) -> Window {
        match p {
            Period::Day => Window::Day,
            Period::Week => Window::Week,
            Period::Month => Window::Month,
        }
    }
}

/// A currency's index in the program (and in every wallet).
pub type CurrencyIx = u8;

/// What a badge, a level or a leaderboard measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MetricRef {
    Currency(CurrencyIx),
    Metric(u16),
    Streak(u16),
}

#[derive(Clone, Debug, Default)]
pub struct Matcher {
    pub kind: Box<[Sym]>,
    pub channel: Box<[Sym]>,
    pub stakeholder_kind: Box<[Sym]>,
    pub team: Box<[Sym]>,
    pub counterpart_kind: Box<[Sym]>,
    pub counterpart_team: Box<[Sym]>,
    pub has_counterpart: Option<bool>,
    pub cross_team: Option<bool>,
    pub first: Option<First>,
    pub value: Option<(f64, f64)>,
    pub attrs: Box<[(String, AttrCond)]>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum First {
    Counterpart,
    Channel,
    Team,
}

#[derive(Clone, Debug)]
pub enum AttrCond {
    Equals(Value),
    OneOf(Vec<Value>),
    Range(f64, f64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Actor,
    Counterpart,
}

#[derive(Clone, Debug)]
pub struct AwardDef {
    pub to: Target,
    pub currency: CurrencyIx,
    pub amount: i64,
    pub value_factor: f64,
}

impl AwardDef {
    /// What the award comes to for a moment of value `value` under a campaign `multiplier`:
    /// `round((amount + floor(value * value_factor)) * multiplier)`.
    #[inline]
    pub fn amount(&self, value: Option<f64>, multiplier: f64) -> i64 {
        if self.value_factor == 0.0 && multiplier == 1.0 {
            // The same, without the floating point: `amount` is at most 10^9 in size, exact in
            // an f64, and a finite value times zero adds nothing.
            return self.amount;
        }
        let base = self.amount as f64 + (value.unwrap_or(0.0) * self.value_factor).floor();
        (base * multiplier).round() as i64
    }
}

impl Rule {
    /// The awards to `target`.
    #[inline]
    pub fn awards_to(&self, target: Target) -> &[AwardDef] {
        let split = self.awards.partition_point(|a| a.to == Target::Actor);
        match target {
            Target::Actor => &self.awards[..split],
            Target::Counterpart => &self.awards[split..],
        }
    }

    /// The product of the multipliers of the rule's campaigns running at `at`.
    #[inline]
    pub fn multiplier(&self, at: i64) -> f64 {
        self.campaigns.iter().filter(|c| c.from <= at && at < c.until).map(|c| c.multiplier).product()
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Cap {
    pub times: Option<u32>,
    pub points: Option<i64>,
    pub per: Window,
}

#[derive(Clone, Copy, Debug)]
pub struct Campaign {
    pub from: i64,
    pub until: i64,
    pub multiplier: f64,
}

#[derive(Clone, Debug)]
pub struct Rule {
    pub id: String,
    /// A stable hash of `id` (FNV-1a), part of the seed of chance draws.
    pub id_hash: u64,
    pub description: Option<String>,
    pub matcher: Matcher,
    /// The actor's awards, then the counterpart's, each in the order the rule set gives them.
    pub awards: Vec<AwardDef>,
    pub cap: Option<Cap>,
    /// Index among the capped rules: the slot in a stakeholder's cap state.
    pub cap_slot: u16,
    pub chance: Option<f64>,
    pub campaigns: Vec<Campaign>,
    pub paused: bool,
}

#[derive(Clone, Debug)]
pub struct Guard {
    pub matcher: Matcher,
    pub max_moments: Option<(u32, Window)>,
    pub min_gap_seconds: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Distinct {
    Counterparts,
    Teams,
    Channels,
}

#[derive(Clone, Debug)]
pub enum MetricKind {
    Count(Matcher),
    Distinct(Distinct),
}

#[derive(Clone, Debug)]
pub struct Metric {
    pub id: String,
    pub description: Option<String>,
    pub kind: MetricKind,
}

#[derive(Clone, Debug)]
pub struct Streak {
    pub id: String,
    pub description: Option<String>,
    pub period: Period,
    pub grace: u32,
    pub matcher: Matcher,
}

impl Streak {
    /// Whether a run last extended in period `last` is broken by period `current`: more than
    /// `grace` periods between them (a moment then starts a new run).
    pub fn lapsed(&self, current: i32, last: i32) -> bool {
        i64::from(current) - i64::from(last) - 1 > i64::from(self.grace)
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Reward {
    pub currency: CurrencyIx,
    pub amount: i64,
}

#[derive(Clone, Debug)]
pub struct Tier {
    pub name: String,
    pub at: i64,
    pub reward: Vec<Reward>,
}

#[derive(Clone, Debug)]
pub enum BadgeShape {
    /// Earned once at the threshold.
    Once(i64),
    /// Each tier earned once, in order.
    Tiers(Vec<Tier>),
    /// Earned at every multiple.
    Every(i64),
    /// Granted by challenges only.
    Granted,
}

impl BadgeShape {
    /// The least value of its metric at which the badge can be earned (`i64::MAX`: never, by
    /// its metric).
    #[inline]
    pub fn first_at(&self) -> i64 {
        match self {
            BadgeShape::Once(t) => *t,
            BadgeShape::Tiers(tiers) => tiers.first().map_or(i64::MAX, |t| t.at),
            BadgeShape::Every(n) => *n,
            BadgeShape::Granted => i64::MAX,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Badge {
    pub id: String,
    pub name: String,
    pub metric: Option<MetricRef>,
    pub shape: BadgeShape,
    pub reward: Vec<Reward>,
}

#[derive(Clone, Debug)]
pub struct Levels {
    pub currency: CurrencyIx,
    pub steps: Vec<(String, i64)>,
}

impl Levels {
    /// How many levels a balance of `balance` has reached (the level's index + 1; 0 for none).
    pub fn reached(&self, balance: i64) -> i64 {
        self.steps.iter().take_while(|(_, at)| balance >= *at).count() as i64
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChallengeWindow {
    Recurring(Window),
    Fixed { from: i64, until: i64 },
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Goal {
    pub moments: u32,
    pub distinct_teams: u32,
    pub distinct_counterparts: u32,
}

#[derive(Clone, Debug)]
pub struct Challenge {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub window: ChallengeWindow,
    pub team: bool,
    pub matcher: Matcher,
    pub goal: Goal,
    pub reward: Vec<Reward>,
    pub badge: Option<u16>,
    pub paused: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ties {
    Shared,
    Dense,
    FirstCome,
}

impl Ties {
    pub fn name(self) -> &'static str {
        match self {
            Ties::Shared => "shared",
            Ties::Dense => "dense",
            Ties::FirstCome => "first_come",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Leaderboard {
    pub id: String,
    pub name: String,
    pub metric: MetricRef,
    pub window: Option<Period>,
    pub ties: Ties,
    /// A team board: teams ranked by their members' values, combined so. `None`: stakeholders.
    pub teams: Option<TeamValue>,
}

/// How a team board combines its members' values (see [`crate::leaderboard::teams`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TeamValue {
    /// The members' values added up.
    Sum,
    /// The sum divided by the members with a nonzero value, rounded to the nearest integer,
    /// halves away from zero.
    Average,
}

impl TeamValue {
    pub fn name(self) -> &'static str {
        match self {
            TeamValue::Sum => "sum",
            TeamValue::Average => "average",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Currency {
    pub id: String,
    pub name: String,
}

/// A compiled rule set.
#[derive(Clone, Debug)]
pub struct Program {
    pub org_id: String,
    pub org_name: String,
    pub timezone: String,
    pub calendar: Calendar,
    pub seed: u64,
    pub currencies: Vec<Currency>,
    pub guard: Option<Guard>,
    pub rules: Vec<Rule>,
    pub capped_rules: u16,
    pub metrics: Vec<Metric>,
    pub streaks: Vec<Streak>,
    pub badges: Vec<Badge>,
    pub levels: Option<Levels>,
    pub challenges: Vec<Challenge>,
    pub leaderboards: Vec<Leaderboard>,
    /// Which badges and leaderboards watch each metric: filled by `compile`.
    pub watchers: Watchers,
    /// Whether any rule, metric or challenge needs first-time / distinct tracking.
    pub tracks_seen: bool,
    /// Which rules, metrics, streaks and challenges a moment of a given kind can match.
    pub rules_by_kind: ByKind,
    pub metrics_by_kind: ByKind,
    pub streaks_by_kind: ByKind,
    pub challenges_by_kind: ByKind,
    /// Sandbox limits for the organisation's rule plugins.
    pub plugin_limits: plaudit_sandbox::Limits,
    /// How insights score engagement and find who went quiet.
    pub insights: InsightSettings,
    /// Weekly targets, in rule-set order.
    pub goals: Vec<GoalDef>,
}

/// `[insights]`, with its defaults filled in.
#[derive(Clone, Debug, PartialEq)]
pub struct InsightSettings {
    pub champion_weeks: u32,
    pub quiet_min_weeks: u32,
    pub weights: Weights,
}

/// Weights of the engagement score (see `rules/README.md`, `[insights]`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Weights {
    pub moments: f64,
    pub counterparts: f64,
    pub teams: f64,
    pub channels: f64,
}

impl Default for InsightSettings {
    fn default() -> InsightSettings {
        InsightSettings {
            champion_weeks: 4,
            quiet_min_weeks: 3,
            weights: Weights { moments: 1.0, counterparts: 2.0, teams: 3.0, channels: 1.0 },
        }
    }
}

/// A weekly target (`[[goal]]`).
#[derive(Clone, Debug, PartialEq)]
pub struct GoalDef {
    pub id: String,
    pub name: String,
    pub measure: Measure,
    pub target: f64,
}

/// What a goal counts each week. Names stay strings: a kind, team or channel no moment has
/// used yet is not in the vocabulary, and counts 0.
#[derive(Clone, Debug, PartialEq)]
pub enum Measure {
    ActiveStakeholders {
        stakeholder_kind: Option<String>,
        team: Option<String>,
    },
    Moments {
        kind: Option<String>,
        stakeholder_kind: Option<String>,
        team: Option<String>,
        channel: Option<String>,
    },
    CrossTeamMoments {
        kind: Option<String>,
    },
    NewStakeholders,
    Points {
        currency: String,
    },
    Badges,
    Completions,
    /// Percent of participants completing, in the challenge's windows that start in the week.
    CompletionRate {
        challenge: String,
    },
}

impl Measure {
    pub fn name(&self) -> &'static str {
        match self {
            Measure::ActiveStakeholders { .. } => "active_stakeholders",
            Measure::Moments { .. } => "moments",
            Measure::CrossTeamMoments { .. } => "cross_team_moments",
            Measure::NewStakeholders => "new_stakeholders",
            Measure::Points { .. } => "points",
            Measure::Badges => "badges",
            Measure::Completions => "completions",
            Measure::CompletionRate { .. } => "completion_rate",
        }
    }
}

/// Which items of a list (rules, metrics, streaks, challenges) can match a moment of a given
/// kind: those whose matcher names that kind, and those whose matcher names none, in list
/// order. The passes evaluate only these, instead of every matcher on every moment.
#[derive(Clone, Debug, Default)]
pub struct ByKind {
    /// Indexed by the kind's symbol, up to the largest kind any matcher names.
    by_kind: Vec<Box<[u16]>>,
    /// The items that match any kind: all a moment of another kind can match.
    any: Box<[u16]>,
}

impl ByKind {
    /// The index of a list whose item `i` has matcher `matchers[i]` (`None`: it applies to
    /// every kind).
    pub fn new<'a>(matchers: impl IntoIterator<Item = Option<&'a Matcher>>) -> ByKind {
        let kinds: Vec<&[Sym]> = matchers.into_iter().map(|m| m.map_or(&[][..], |m| &m.kind[..])).collect();
        let len = kinds.iter().flat_map(|k| k.iter()).map(|k| k.0 as usize + 1).max().unwrap_or(0);
        let items = |applies: &dyn Fn(&[Sym]) -> bool| -> Box<[u16]> {
            (0..kinds.len()).filter(|&i| applies(kinds[i])).map(|i| i as u16).collect()
        };
        ByKind {
            by_kind: (0..len).map(|k| items(&|ks: &[Sym]| ks.is_empty() || ks.contains(&Sym(k as u32)))).collect(),
            any: items(&|ks: &[Sym]| ks.is_empty()),
        }
    }

    /// The items a moment of kind `kind` can match, in list order.
    #[inline]
    pub fn get(&self, kind: Sym) -> &[u16] {
        self.by_kind.get(kind.0 as usize).unwrap_or(&self.any)
    }
}

/// Reverse indexes from a measured quantity to what watches it.
#[derive(Clone, Debug, Default)]
pub struct Watchers {
    pub badges_by_currency: Vec<Vec<u16>>,
    pub badges_by_metric: Vec<Vec<u16>>,
    pub badges_by_streak: Vec<Vec<u16>>,
    pub boards_by_currency: Vec<Vec<u16>>,
    pub boards_by_metric: Vec<Vec<u16>>,
    pub boards_by_streak: Vec<Vec<u16>>,
}

impl Watchers {
    pub fn badges(&self, m: MetricRef) -> &[u16] {
        match m {
            MetricRef::Currency(c) => &self.badges_by_currency[c as usize],
            MetricRef::Metric(i) => &self.badges_by_metric[i as usize],
            MetricRef::Streak(i) => &self.badges_by_streak[i as usize],
        }
    }

    pub fn boards(&self, m: MetricRef) -> &[u16] {
        match m {
            MetricRef::Currency(c) => &self.boards_by_currency[c as usize],
            MetricRef::Metric(i) => &self.boards_by_metric[i as usize],
            MetricRef::Streak(i) => &self.boards_by_streak[i as usize],
        }
    }
}

impl Program {
    pub fn metric_name(&self, m: MetricRef) -> &str {
        match m {
            MetricRef::Currency(c) => &self.currencies[c as usize].id,
            MetricRef::Metric(i) => &self.metrics[i as usize].id,
            MetricRef::Streak(i) => &self.streaks[i as usize].id,
        }
    }

    pub fn currency_ix(&self, id: &str) -> Option<CurrencyIx> {
        self.currencies.iter().position(|c| c.id == id).map(|i| i as CurrencyIx)
    }

    pub fn board_ix(&self, id: &str) -> Option<usize> {
        self.leaderboards.iter().position(|b| b.id == id)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn kinds(k: &[u32]) -> Matcher {
        Matcher { kind: k.iter().map(|&k| Sym(k)).collect(), ..Matcher::default() }
    }

    #[test]
    fn by_kind_lists_the_items_naming_the_kind_and_those_naming_none_in_order() {
        let (a, none, ab) = (kinds(&[0]), kinds(&[]), kinds(&[0, 1]));
        let index = ByKind::new([Some(&a), Some(&none), Some(&ab), None]);
        assert_eq!(index.get(Sym(0)), [0, 1, 2, 3]);
        assert_eq!(index.get(Sym(1)), [1, 2, 3]);
        // A kind no matcher names (interned later, say) matches the kind-less items only.
        assert_eq!(index.get(Sym(7)), [1, 3]);
        assert_eq!(index.get(Sym::NONE), [1, 3]);
    }

    /// `AwardDef::amount` without its integer shortcut.
    fn by_the_formula(a: &AwardDef, value: Option<f64>, multiplier: f64) -> i64 {
        let base = a.amount as f64 + (value.unwrap_or(0.0) * a.value_factor).floor();
        (base * multiplier).round() as i64
    }

    proptest! {
        #[test]
        fn an_award_comes_to_what_the_formula_says_with_or_without_its_shortcut(
            amount in -1_000_000_000i64..=1_000_000_000,
            value_factor in prop_oneof![Just(0.0), -1e6f64..1e6],
            value in proptest::option::of(-1e12f64..1e12),
            multiplier in prop_oneof![Just(1.0), 0.0f64..10.0],
        ) {
            let a = AwardDef { to: Target::Actor, currency: 0, amount, value_factor };
            prop_assert_eq!(a.amount(value, multiplier), by_the_formula(&a, value, multiplier));
        }
    }
}
